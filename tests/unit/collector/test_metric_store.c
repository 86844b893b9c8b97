/*
 * Unit tests for collector/metric_store: DELTA aggregation across proxies,
 * CUMULATIVE pass-through, histogram merging and bound mismatches,
 * exemplars, expiry, limits, name sanitising and type conflicts.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "metric_store.h"

static metric_point_t counter(const char *name, const metric_label_t *labels, uint32_t n, double v)
{
    metric_point_t p = {0};
    p.name = (str_t){name, (uint32_t)strlen(name)};
    p.type = METRIC_SUM;
    p.temporality = METRIC_TEMPORALITY_DELTA;
    p.monotonic = 1;
    p.labels = labels;
    p.n_labels = n;
    p.value = v;
    return p;
}

static metric_point_t histogram(const char *name, const metric_label_t *labels, uint32_t n, uint32_t n_bounds,
                                const double *bounds, const uint64_t *counts, double sum)
{
    metric_point_t p = {0};
    p.name = (str_t){name, (uint32_t)strlen(name)};
    p.type = METRIC_HISTOGRAM;
    p.temporality = METRIC_TEMPORALITY_DELTA;
    p.labels = labels;
    p.n_labels = n;
    p.n_bounds = n_bounds;
    p.bounds = bounds;
    p.bucket_counts = counts;
    for (uint32_t i = 0; i <= n_bounds; i++)
        p.count += counts[i];
    p.sum = sum;
    p.has_sum = 1;
    return p;
}

static char *render(metric_store_t *ms, int om, uint64_t now, buf_t *b)
{
    b->len = 0;
    metric_store_render(ms, b, om, now);
    buf_append_char(b, '\0');
    return b->data;
}

static void test_delta_sums_from_three_proxies(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    buf_t b = BUF_INIT;
    /* the same series sent by three proxies, labels in different orders */
    metric_label_t l1[2] = {{STR_LIT("response_code"), STR_LIT("200")}, {STR_LIT("destination_service"), STR_LIT("b")}};
    metric_label_t l2[2] = {{STR_LIT("destination_service"), STR_LIT("b")}, {STR_LIT("response_code"), STR_LIT("200")}};
    metric_point_t p = counter("istio_requests_total", l1, 2, 5);
    p.description = STR_LIT("Requests \"seen\"\nby proxies \\o/");
    assert_int_equal(metric_store_add(ms, &p, 1000, NULL), 0);
    p = counter("istio_requests_total", l2, 2, 7);
    assert_int_equal(metric_store_add(ms, &p, 1001, NULL), 0);
    p = counter("istio_requests_total", l1, 2, 30);
    assert_int_equal(metric_store_add(ms, &p, 1002, NULL), 0);
    /* same OTLP name without _total is the same Prometheus series */
    metric_label_t l3[2] = {{STR_LIT("response_code"), STR_LIT("500")}, {STR_LIT("destination_service"), STR_LIT("b")}};
    p = counter("istio_requests", l3, 2, 1);
    assert_int_equal(metric_store_add(ms, &p, 1003, NULL), 0);

    char *text = render(ms, 0, 2000, &b);
    assert_string_equal(text, "# HELP istio_requests_total Requests \"seen\"\\nby proxies \\\\o/\n"
                              "# TYPE istio_requests_total counter\n"
                              "istio_requests_total{destination_service=\"b\",response_code=\"200\"} 42\n"
                              "istio_requests_total{destination_service=\"b\",response_code=\"500\"} 1\n");
    text = render(ms, 1, 2000, &b);
    assert_string_equal(text, "# HELP istio_requests Requests \\\"seen\\\"\\nby proxies \\\\o/\n"
                              "# TYPE istio_requests counter\n"
                              "istio_requests_total{destination_service=\"b\",response_code=\"200\"} 42\n"
                              "istio_requests_total{destination_service=\"b\",response_code=\"500\"} 1\n");
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.series, 2);
    assert_int_equal(st.families, 1);
    assert_int_equal(st.points_accepted, 4);
    assert_int_equal(st.points_rejected, 0);
    buf_dispose(&b);
    metric_store_destroy(ms);
}

static void test_cumulative_and_gauges(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    buf_t b = BUF_INIT;
    metric_point_t p = counter("bytes_sent", NULL, 0, 100);
    p.temporality = METRIC_TEMPORALITY_CUMULATIVE;
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), 0);
    p.value = 150;
    assert_int_equal(metric_store_add(ms, &p, 2, NULL), 0);
    p.value = 20; /* a reset passes through as sent */
    assert_int_equal(metric_store_add(ms, &p, 3, NULL), 0);

    metric_point_t g = {0};
    g.name = STR_LIT("queue.depth");
    g.type = METRIC_GAUGE;
    g.value = 3;
    assert_int_equal(metric_store_add(ms, &g, 4, NULL), 0);
    g.value = 1.5;
    assert_int_equal(metric_store_add(ms, &g, 5, NULL), 0);

    metric_point_t ud = counter("active_connections", NULL, 0, 4);
    ud.monotonic = 0; /* a DELTA UpDownCounter: summed, rendered as a gauge */
    assert_int_equal(metric_store_add(ms, &ud, 6, NULL), 0);
    ud.value = -1;
    assert_int_equal(metric_store_add(ms, &ud, 7, NULL), 0);
    ud.temporality = METRIC_TEMPORALITY_CUMULATIVE;
    ud.name = STR_LIT("pool_size");
    ud.value = 8;
    assert_int_equal(metric_store_add(ms, &ud, 8, NULL), 0);

    char *text = render(ms, 0, 10, &b);
    assert_string_equal(text, "# TYPE active_connections gauge\nactive_connections 3\n"
                              "# TYPE bytes_sent_total counter\nbytes_sent_total 20\n"
                              "# TYPE pool_size gauge\npool_size 8\n"
                              "# TYPE queue_depth gauge\nqueue_depth 1.5\n");
    buf_dispose(&b);
    metric_store_destroy(ms);
}

static void test_histogram_deltas_and_bounds(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    buf_t b = BUF_INIT;
    double bounds[3] = {5, 10, 100};
    metric_label_t l[1] = {{STR_LIT("service.name"), STR_LIT("web")}};
    uint64_t c1[4] = {1, 2, 3, 0};
    uint64_t c2[4] = {4, 0, 1, 2};
    metric_point_t p = histogram("request_duration_ms", l, 1, 3, bounds, c1, 100.5);
    p.description = STR_LIT("Request duration");
    p.unit = STR_LIT("ms");
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), 0);
    p = histogram("request_duration_ms", l, 1, 3, bounds, c2, 400);
    assert_int_equal(metric_store_add(ms, &p, 2, NULL), 0);

    double other[3] = {5, 10, 50};
    p = histogram("request_duration_ms", l, 1, 3, other, c2, 1);
    const char *why = NULL;
    assert_int_equal(metric_store_add(ms, &p, 3, &why), -1);
    assert_non_null(why);
    double fewer[2] = {5, 10};
    p = histogram("request_duration_ms", l, 1, 2, fewer, c2, 1);
    assert_int_equal(metric_store_add(ms, &p, 3, NULL), -1);
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.rejected[METRIC_REJECT_BOUNDS_MISMATCH], 2);

    char *text = render(ms, 0, 10, &b);
    assert_string_equal(text, "# HELP request_duration_ms Request duration\n"
                              "# TYPE request_duration_ms histogram\n"
                              "request_duration_ms_bucket{service_name=\"web\",le=\"5\"} 5\n"
                              "request_duration_ms_bucket{service_name=\"web\",le=\"10\"} 7\n"
                              "request_duration_ms_bucket{service_name=\"web\",le=\"100\"} 11\n"
                              "request_duration_ms_bucket{service_name=\"web\",le=\"+Inf\"} 13\n"
                              "request_duration_ms_count{service_name=\"web\"} 13\n"
                              "request_duration_ms_sum{service_name=\"web\"} 500.5\n");
    text = render(ms, 1, 10, &b);
    assert_non_null(strstr(text, "# TYPE request_duration_ms histogram\n# UNIT request_duration_ms ms\n"));

    /* CUMULATIVE replaces everything, bounds included */
    uint64_t c3[3] = {1, 1, 1};
    p = histogram("request_duration_ms", l, 1, 2, fewer, c3, 9);
    p.temporality = METRIC_TEMPORALITY_CUMULATIVE;
    assert_int_equal(metric_store_add(ms, &p, 11, NULL), 0);
    text = render(ms, 0, 12, &b);
    assert_non_null(strstr(text, "request_duration_ms_bucket{service_name=\"web\",le=\"10\"} 2\n"
                                 "request_duration_ms_bucket{service_name=\"web\",le=\"+Inf\"} 3\n"
                                 "request_duration_ms_count{service_name=\"web\"} 3\n"
                                 "request_duration_ms_sum{service_name=\"web\"} 9\n"));

    /* count must match the buckets; bounds must increase */
    p = histogram("request_duration_ms", l, 1, 2, fewer, c3, 9);
    p.count = 99;
    assert_int_equal(metric_store_add(ms, &p, 13, NULL), -1);
    double bad[2] = {10, 5};
    p = histogram("other_ms", l, 1, 2, bad, c3, 9);
    assert_int_equal(metric_store_add(ms, &p, 13, NULL), -1);
    buf_dispose(&b);
    metric_store_destroy(ms);
}

static void test_exemplars(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    buf_t b = BUF_INIT;
    double bounds[2] = {0.1, 1};
    uint64_t c[3] = {1, 1, 0};
    metric_exemplar_t ex[3] = {
        {.value = 0.5, .time_unix_nano = 2000000000ull, .trace_id_high = 0xa, .trace_id_low = 0xb, .span_id = 0xc},
        {.value = 0.05, .time_unix_nano = 1000000000ull},                     /* no trace: ignored */
        {.value = 0.7, .time_unix_nano = 1000000000ull, .trace_id_low = 0x5}, /* older, same bucket */
    };
    metric_point_t p = histogram("latency_seconds", NULL, 0, 2, bounds, c, 0.55);
    p.exemplars = ex;
    p.n_exemplars = 3;
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), 0);

    metric_exemplar_t cex[2] = {
        {.value = 1, .time_unix_nano = 5000000000ull, .trace_id_low = 0x77},
        {.value = 1, .time_unix_nano = 6000000000ull}, /* newer but no trace id */
    };
    metric_point_t q = counter("calls", NULL, 0, 3);
    q.exemplars = cex;
    q.n_exemplars = 2;
    assert_int_equal(metric_store_add(ms, &q, 1, NULL), 0);

    char *text = render(ms, 1, 2, &b);
    assert_string_equal(text, "# TYPE calls counter\n"
                              "calls_total 3 # {trace_id=\"0000000000000077\"} 1 5.000\n"
                              "# TYPE latency_seconds histogram\n"
                              "latency_seconds_bucket{le=\"0.1\"} 1\n"
                              "latency_seconds_bucket{le=\"1\"} 2 # {trace_id=\"000000000000000a000000000000000b\","
                              "span_id=\"000000000000000c\"} 0.5 2.000\n"
                              "latency_seconds_bucket{le=\"+Inf\"} 2\n"
                              "latency_seconds_count 2\n"
                              "latency_seconds_sum 0.55\n");
    text = render(ms, 0, 2, &b);
    assert_null(strstr(text, " # {"));
    assert_null(strstr(text, "trace_id"));
    buf_dispose(&b);
    metric_store_destroy(ms);
}

static void test_expiry(void **state)
{
    (void)state;
    metric_store_config_t cfg = {.series_ttl_ms = 1000};
    metric_store_t *ms = metric_store_create(&cfg);
    buf_t b = BUF_INIT;
    metric_label_t a = {STR_LIT("k"), STR_LIT("a")}, c = {STR_LIT("k"), STR_LIT("c")};
    metric_point_t p = counter("x", &a, 1, 1);
    metric_store_add(ms, &p, 100, NULL);
    p = counter("x", &c, 1, 1);
    metric_store_add(ms, &p, 600, NULL);
    p = counter("y", NULL, 0, 1);
    metric_store_add(ms, &p, 100, NULL);
    assert_int_equal(metric_store_expire(ms, 1099), 0);
    assert_int_equal(metric_store_expire(ms, 1100), 2);
    char *text = render(ms, 0, 1200, &b);
    assert_string_equal(text, "# TYPE x_total counter\nx_total{k=\"c\"} 1\n");
    text = render(ms, 0, 1600, &b);
    assert_string_equal(text, "");
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.families, 0);
    assert_int_equal(st.series_expired, 3);
    /* an expired series starts again from zero */
    p = counter("x", &a, 1, 2);
    metric_store_add(ms, &p, 2000, NULL);
    text = render(ms, 0, 2000, &b);
    assert_string_equal(text, "# TYPE x_total counter\nx_total{k=\"a\"} 2\n");
    buf_dispose(&b);
    metric_store_destroy(ms);
}

static void test_shared_bounds_after_expiry(void **state)
{
    (void)state;
    metric_store_config_t cfg = {.series_ttl_ms = 100};
    metric_store_t *ms = metric_store_create(&cfg);
    buf_t b = BUF_INIT;
    double bounds[2] = {0.25, 2};
    uint64_t c[3] = {1, 1, 1};
    metric_label_t la = {STR_LIT("k"), STR_LIT("a")}, lb = {STR_LIT("k"), STR_LIT("b")},
                   lc = {STR_LIT("k"), STR_LIT("c")};
    metric_point_t p = histogram("h_seconds", &la, 1, 2, bounds, c, 1);
    assert_int_equal(metric_store_add(ms, &p, 0, NULL), 0);
    p = histogram("h_seconds", &lb, 1, 2, bounds, c, 1);
    assert_int_equal(metric_store_add(ms, &p, 50, NULL), 0);
    assert_int_equal(metric_store_expire(ms, 100), 1); /* the series that formatted the bounds goes */
    p = histogram("h_seconds", &lc, 1, 2, bounds, c, 1);
    assert_int_equal(metric_store_add(ms, &p, 100, NULL), 0);
    double other[2] = {0.5, 3};
    p = histogram("h_seconds", &lb, 1, 2, other, c, 1);
    p.temporality = METRIC_TEMPORALITY_CUMULATIVE;
    assert_int_equal(metric_store_add(ms, &p, 100, NULL), 0);
    char *text = render(ms, 0, 120, &b);
    assert_non_null(strstr(text, "h_seconds_bucket{k=\"b\",le=\"0.5\"} 1\nh_seconds_bucket{k=\"b\",le=\"3\"} 2\n"));
    assert_non_null(strstr(text, "h_seconds_bucket{k=\"c\",le=\"0.25\"} 1\nh_seconds_bucket{k=\"c\",le=\"2\"} 2\n"));
    buf_dispose(&b);
    metric_store_destroy(ms);
}

static void test_limits(void **state)
{
    (void)state;
    metric_store_config_t cfg = {.max_series = 3, .max_label_count = 2, .max_name_len = 16, .max_label_value_len = 4};
    metric_store_t *ms = metric_store_create(&cfg);
    char v[8];
    const char *why = NULL;
    for (int i = 0; i < 5; i++) {
        snprintf(v, sizeof(v), "%d", i);
        metric_label_t l = {STR_LIT("n"), {v, (uint32_t)strlen(v)}};
        metric_point_t p = counter("c", &l, 1, 1);
        assert_int_equal(metric_store_add(ms, &p, 1, &why), i < 3 ? 0 : -1);
    }
    /* existing series still take points when the store is full */
    metric_label_t l0 = {STR_LIT("n"), STR_LIT("0")};
    metric_point_t p = counter("c", &l0, 1, 1);
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), 0);
    metric_label_t three[3] = {
        {STR_LIT("a"), STR_LIT("1")}, {STR_LIT("b"), STR_LIT("1")}, {STR_LIT("c"), STR_LIT("1")}};
    p = counter("c", three, 3, 1);
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), -1);
    metric_label_t longv = {STR_LIT("n"), STR_LIT("12345")};
    p = counter("c", &longv, 1, 1);
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), -1);
    p = counter("a_very_long_metric_name", NULL, 0, 1);
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), -1);
    p = counter("c", &l0, 1, -1);
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), -1);
    p = counter("c", &l0, 1, 1);
    p.temporality = METRIC_TEMPORALITY_UNSPECIFIED;
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), -1);
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.series, 3);
    assert_int_equal(st.rejected[METRIC_REJECT_MAX_SERIES], 2);
    assert_int_equal(st.rejected[METRIC_REJECT_LIMIT], 3);
    assert_int_equal(st.rejected[METRIC_REJECT_INVALID], 2);
    assert_int_equal(st.points_rejected, 7);
    assert_string_equal(metric_store_reject_name(METRIC_REJECT_MAX_SERIES), "max_series");
    metric_store_destroy(ms);
}

static void test_sanitising(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    buf_t b = BUF_INIT;
    metric_label_t l[4] = {
        {STR_LIT("http.method"), STR_LIT("GET")},
        {STR_LIT("2xx"), STR_LIT("q\"uote\\back\nline")},
        {STR_LIT("http_method"), STR_LIT("dup")}, /* collides with http.method after sanitising */
        {STR_LIT("bad.utf8"), {"a\xff", 2}},
    };
    metric_point_t p = {0};
    p.name = STR_LIT("1st.metric-name");
    p.type = METRIC_GAUGE;
    p.labels = l;
    p.n_labels = 4;
    p.value = 2;
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), 0);
    char *text = render(ms, 0, 2, &b);
    assert_string_equal(text, "# TYPE _st_metric_name gauge\n"
                              "_st_metric_name{_xx=\"q\\\"uote\\\\back\\nline\",bad_utf8=\"a\xef\xbf\xbd\","
                              "http_method=\"GET\"} 2\n");
    /* a histogram label called le is renamed */
    double bounds[1] = {1};
    uint64_t c[2] = {1, 0};
    metric_label_t le = {STR_LIT("le"), STR_LIT("x")};
    metric_point_t h = histogram("h", &le, 1, 1, bounds, c, 1);
    assert_int_equal(metric_store_add(ms, &h, 1, NULL), 0);
    text = render(ms, 0, 2, &b);
    assert_non_null(strstr(text, "h_bucket{exported_le=\"x\",le=\"1\"} 1\n"));
    buf_dispose(&b);
    metric_store_destroy(ms);
}

static void test_type_conflict(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    metric_point_t p = counter("requests", NULL, 0, 1);
    assert_int_equal(metric_store_add(ms, &p, 1, NULL), 0);
    metric_point_t g = {0};
    g.name = STR_LIT("requests");
    g.type = METRIC_GAUGE;
    const char *why = NULL;
    assert_int_equal(metric_store_add(ms, &g, 1, &why), -1);
    assert_non_null(why);
    metric_label_t l = {STR_LIT("a"), STR_LIT("b")};
    g.labels = &l;
    g.n_labels = 1; /* a new series of the same family, still a conflict */
    assert_int_equal(metric_store_add(ms, &g, 1, NULL), -1);
    double bounds[1] = {1};
    uint64_t c[2] = {1, 0};
    metric_point_t h = histogram("requests_total", NULL, 0, 1, bounds, c, 1);
    assert_int_equal(metric_store_add(ms, &h, 1, NULL), -1); /* would write requests_total too */
    metric_point_t p2 = counter("requests_total", NULL, 0, 1);
    assert_int_equal(metric_store_add(ms, &p2, 1, NULL), 0);
    /* sample-name clashes between families of different names */
    h = histogram("latency", NULL, 0, 1, bounds, c, 1);
    assert_int_equal(metric_store_add(ms, &h, 1, NULL), 0);
    g.name = STR_LIT("latency_count");
    assert_int_equal(metric_store_add(ms, &g, 1, NULL), -1);
    g.name = STR_LIT("depth_sum");
    assert_int_equal(metric_store_add(ms, &g, 1, NULL), 0);
    h = histogram("depth", NULL, 0, 1, bounds, c, 1);
    assert_int_equal(metric_store_add(ms, &h, 1, NULL), -1);
    g.name = STR_LIT("hits_total");
    assert_int_equal(metric_store_add(ms, &g, 1, NULL), 0);
    metric_point_t p3 = counter("hits", NULL, 0, 1);
    assert_int_equal(metric_store_add(ms, &p3, 1, NULL), -1);
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.rejected[METRIC_REJECT_TYPE_CONFLICT], 6);
    metric_store_destroy(ms);
}

static void test_many_series(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    char v[16];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 50000; i++) {
            snprintf(v, sizeof(v), "%d", i);
            metric_label_t l[2] = {{STR_LIT("pod"), {v, (uint32_t)strlen(v)}}, {STR_LIT("ns"), STR_LIT("default")}};
            metric_point_t p = counter("load_total", l, 2, 1);
            assert_int_equal(metric_store_add(ms, &p, 1, NULL), 0);
        }
    buf_t b = BUF_INIT;
    metric_store_render(ms, &b, 1, 2);
    assert_non_null(strstr(b.data, "load_total{ns=\"default\",pod=\"49999\"} 2\n"));
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.series, 50000);
    buf_dispose(&b);
    metric_store_destroy(ms);
    metric_store_destroy(NULL);
}

static void test_reserved_prefixes(void **state)
{
    (void)state;
    static const char *const reserved[] = {"zipkin_collector_", "process_start_time_seconds"};
    metric_store_config_t cfg = {0};
    cfg.reserved_prefixes = reserved;
    cfg.n_reserved_prefixes = 2;
    metric_store_t *ms = metric_store_create(&cfg);
    metric_point_t a = counter("zipkin_collector_spans_total", NULL, 0, 1);
    metric_point_t b = counter("process_start_time_seconds", NULL, 0, 1);
    metric_point_t c = counter("istio_requests_total", NULL, 0, 1);
    const char *why = NULL;
    assert_int_equal(metric_store_add(ms, &a, 1000, &why), -1);
    assert_non_null(strstr(why, "reserved"));
    assert_int_equal(metric_store_add(ms, &b, 1000, &why), -1);
    assert_int_equal(metric_store_add(ms, &c, 1000, &why), 0);
    buf_t out = BUF_INIT;
    char *text = render(ms, 0, 1000, &out);
    assert_null(strstr(text, "zipkin_collector"));
    assert_non_null(strstr(text, "istio_requests_total 1"));
    buf_dispose(&out);
    metric_store_destroy(ms);
}

static void test_help_fallback(void **state)
{
    (void)state;
    metric_store_config_t cfg = {0};
    cfg.help_fallback = 1;
    metric_store_t *ms = metric_store_create(&cfg);
    metric_point_t a = counter("requests_total", NULL, 0, 2);
    metric_point_t b = counter("described_total", NULL, 0, 1);
    b.description = (str_t){"Described here", 14};
    assert_int_equal(metric_store_add(ms, &a, 1000, NULL), 0);
    assert_int_equal(metric_store_add(ms, &b, 1000, NULL), 0);
    buf_t out = BUF_INIT;
    char *text = render(ms, 0, 1000, &out);
    assert_non_null(strstr(text, "# HELP requests_total OTLP metric requests (no description sent)\n"));
    assert_non_null(strstr(text, "# HELP described_total Described here\n"));
    buf_dispose(&out);
    metric_store_destroy(ms);
}

static void *add_thread(void *arg)
{
    metric_store_t *ms = arg;
    metric_label_t l = {STR_LIT("k"), STR_LIT("v")};
    for (int i = 0; i < 2000; i++) {
        metric_point_t p = counter("concurrent", &l, 1, 1);
        metric_store_add(ms, &p, 1, NULL);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_thread, ms), 0);
    buf_t b = BUF_INIT;
    for (int i = 0; i < 50; i++) {
        b.len = 0;
        metric_store_render(ms, &b, i & 1, 2);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    char *text = render(ms, 0, 2, &b);
    assert_string_equal(text, "# TYPE concurrent_total counter\nconcurrent_total{k=\"v\"} 6000\n");
    buf_dispose(&b);
    metric_store_destroy(ms);
}

/* role ingest keys Kafka messages by series identity: the store's own, whatever the label order or spelling */
static void test_identity_is_the_series(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    buf_t sc = BUF_INIT, key = BUF_INIT;
    metric_label_t l1[2] = {{STR_LIT("response.code"), STR_LIT("200")}, {STR_LIT("destination"), STR_LIT("b")}};
    metric_label_t l2[2] = {{STR_LIT("destination"), STR_LIT("b")}, {STR_LIT("response_code"), STR_LIT("200")}};
    metric_label_t l3[2] = {{STR_LIT("destination"), STR_LIT("c")}, {STR_LIT("response_code"), STR_LIT("200")}};
    uint64_t a = 0, b = 1, c = 2, d = 3;
    metric_point_t p = counter("istio_requests_total", l1, 2, 1);
    assert_int_equal(metric_store_identity(ms, &p, &sc, &key, &a, NULL), 0);
    p = counter("istio_requests", l2, 2, 1); /* `_total` and a dotted label name: the same Prometheus series */
    assert_int_equal(metric_store_identity(ms, &p, &sc, &key, &b, NULL), 0);
    assert_true(a == b);
    p = counter("istio_requests_total", l3, 2, 1);
    assert_int_equal(metric_store_identity(ms, &p, &sc, &key, &c, NULL), 0);
    assert_true(a != c);
    p = counter("istio_requests_total", l1, 2, 1);
    p.type = METRIC_GAUGE; /* a gauge keeps its `_total`: another series */
    assert_int_equal(metric_store_identity(ms, &p, &sc, &key, &d, NULL), 0);
    assert_true(a != d);
    /* checked as metric_store_add checks: a negative counter delta is rejected, counted and explained */
    const char *why = NULL;
    p = counter("istio_requests_total", l1, 2, -1);
    assert_int_equal(metric_store_identity(ms, &p, &sc, &key, &a, &why), -1);
    assert_non_null(why);
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.rejected[METRIC_REJECT_INVALID], 1);
    assert_int_equal(st.series, 0); /* nothing stored */
    buf_dispose(&sc);
    buf_dispose(&key);
    metric_store_destroy(ms);
}

/* a store member drops what one partition brought when that partition moves to another member */
static void test_drop_origin(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    buf_t b = BUF_INIT;
    metric_label_t la[1] = {{STR_LIT("d"), STR_LIT("a")}}, lb[1] = {{STR_LIT("d"), STR_LIT("b")}};
    metric_point_t p = counter("x_total", la, 1, 2);
    assert_int_equal(metric_store_add_from(ms, &p, 1000, 7, NULL), 0);
    p = counter("x_total", lb, 1, 3);
    assert_int_equal(metric_store_add_from(ms, &p, 1000, 8, NULL), 0);
    p = counter("y_total", lb, 1, 4);
    assert_int_equal(metric_store_add_from(ms, &p, 1000, 8, NULL), 0);
    assert_int_equal(metric_store_drop_origin(ms, 0), 0);
    assert_int_equal(metric_store_drop_origin(ms, 9), 0);
    assert_int_equal(metric_store_drop_origin(ms, 8), 2);
    char *text = render(ms, 0, 2000, &b);
    assert_non_null(strstr(text, "x_total{d=\"a\"} 2\n"));
    assert_null(strstr(text, "d=\"b\""));
    assert_null(strstr(text, "y_total")); /* its family went with its last series */
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.series, 1);
    assert_int_equal(st.families, 1);
    /* the series comes back from a replay of its partition */
    p = counter("x_total", lb, 1, 3);
    assert_int_equal(metric_store_add_from(ms, &p, 1000, 8, NULL), 0);
    text = render(ms, 0, 2000, &b);
    assert_non_null(strstr(text, "x_total{d=\"b\"} 3\n"));
    buf_dispose(&b);
    metric_store_destroy(ms);
}

/* a render in parts (a streamed scrape) writes what one render writes, and stays whole while the store changes */
static void test_render_in_parts(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    char v[3][16];
    metric_label_t l[3][1];
    static const char *const fams[] = {"a_total", "m_total", "z_total"};
    for (int f = 0; f < 3; f++)
        for (int i = 0; i < 50; i++) {
            snprintf(v[0], sizeof(v[0]), "s%02d", i);
            l[0][0] = (metric_label_t){STR_LIT("k"), {v[0], (uint32_t)strlen(v[0])}};
            metric_point_t p = counter(fams[f], l[0], 1, (double)(f * 100 + i));
            assert_int_equal(metric_store_add_from(ms, &p, 1000, (uint16_t)(1 + i % 2), NULL), 0);
        }
    buf_t whole = BUF_INIT, parts = BUF_INIT;
    for (int om = 0; om < 2; om++) {
        whole.len = parts.len = 0;
        metric_store_render(ms, &whole, om, 2000);
        metric_render_cursor_t cur = {.openmetrics = om};
        int n = 0;
        while (metric_store_render_chunk(ms, &cur, &parts, 10, 2000) == 1)
            n++;
        assert_int_equal(n, 150); /* one series a part, then a last call that finds the end */
        assert_int_equal(parts.len, whole.len);
        assert_memory_equal(parts.data, whole.data, whole.len);
    }
    /* between parts: new series in a family passed and in one ahead, then half the series removed */
    metric_render_cursor_t cur = {.openmetrics = 0};
    parts.len = 0;
    while (parts.len < whole.len / 2)
        assert_int_equal(metric_store_render_chunk(ms, &cur, &parts, 100, 2000), 1);
    assert_non_null(strstr(parts.data, "# TYPE m_total counter")); /* halfway: in m */
    assert_null(strstr(parts.data, "z_total"));
    l[1][0] = (metric_label_t){STR_LIT("k"), STR_LIT("late")};
    metric_point_t p = counter("a_total", l[1], 1, 1);
    assert_int_equal(metric_store_add_from(ms, &p, 1000, 3, NULL), 0);
    p = counter("z_total", l[1], 1, 2);
    assert_int_equal(metric_store_add_from(ms, &p, 1000, 3, NULL), 0);
    assert_int_equal(metric_store_drop_origin(ms, 2), 75); /* odd series: 25 per family */
    while (metric_store_render_chunk(ms, &cur, &parts, 100, 2000) == 1)
        ;
    buf_append_char(&parts, '\0');
    assert_null(strstr(parts.data, "a_total{k=\"late\"}")); /* its family was already written */
    assert_non_null(strstr(parts.data, "z_total{k=\"late\"} 2\n"));
    assert_null(strstr(strstr(parts.data, "# TYPE z_total"), "k=\"s01\"")); /* removed before z was reached */
    assert_non_null(strstr(parts.data, "z_total{k=\"s02\"} 202\n"));
    /* no series twice */
    for (int i = 0; i < 50; i += 2) {
        char line[64];
        snprintf(line, sizeof(line), "m_total{k=\"s%02d\"}", i);
        const char *first = strstr(parts.data, line);
        assert_non_null(first);
        assert_null(strstr(first + 1, line));
    }
    /* a cursor left before the end is freed */
    metric_render_cursor_t left = {.openmetrics = 1};
    buf_t b = BUF_INIT;
    assert_int_equal(metric_store_render_chunk(ms, &left, &b, 10, 2000), 1);
    metric_render_cursor_dispose(&left);
    buf_dispose(&b);
    buf_dispose(&whole);
    buf_dispose(&parts);
    metric_store_destroy(ms);
}

/* a label that explodes fills its own metric's quota, not the store: the other metrics go on */
static void test_series_per_metric_limit(void **state)
{
    (void)state;
    metric_store_config_t cfg = {.max_series_per_metric = 3};
    metric_store_t *ms = metric_store_create(&cfg);
    char v[16];
    metric_label_t l[1];
    const char *why = NULL;
    for (int i = 0; i < 5; i++) {
        snprintf(v, sizeof(v), "u%d", i);
        l[0] = (metric_label_t){STR_LIT("user_id"), {v, (uint32_t)strlen(v)}};
        metric_point_t p = counter("exploding_total", l, 1, 1);
        assert_int_equal(metric_store_add_from(ms, &p, 1000, (uint16_t)(i + 1), &why), i < 3 ? 0 : -1);
    }
    assert_string_equal(why, "too many series of this metric");
    l[0] = (metric_label_t){STR_LIT("user_id"), STR_LIT("u1")};
    metric_point_t p = counter("exploding_total", l, 1, 1); /* an existing series still takes points */
    assert_int_equal(metric_store_add(ms, &p, 1000, NULL), 0);
    p = counter("calm_total", l, 1, 1);
    assert_int_equal(metric_store_add(ms, &p, 1000, NULL), 0);
    metric_store_stats_t st;
    metric_store_stats(ms, &st);
    assert_int_equal(st.rejected[METRIC_REJECT_METRIC_MAX_SERIES], 2);
    assert_string_equal(metric_store_reject_name(METRIC_REJECT_METRIC_MAX_SERIES), "metric_max_series");
    assert_int_equal(st.series, 4);
    /* room again once one of its series went */
    assert_int_equal(metric_store_drop_origin(ms, 1), 1);
    l[0] = (metric_label_t){STR_LIT("user_id"), STR_LIT("u9")};
    p = counter("exploding_total", l, 1, 1);
    assert_int_equal(metric_store_add(ms, &p, 1000, NULL), 0);
    metric_store_destroy(ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta_sums_from_three_proxies),
        cmocka_unit_test(test_cumulative_and_gauges),
        cmocka_unit_test(test_histogram_deltas_and_bounds),
        cmocka_unit_test(test_exemplars),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_shared_bounds_after_expiry),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_sanitising),
        cmocka_unit_test(test_type_conflict),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_reserved_prefixes),
        cmocka_unit_test(test_help_fallback),
        cmocka_unit_test(test_identity_is_the_series),
        cmocka_unit_test(test_drop_origin),
        cmocka_unit_test(test_render_in_parts),
        cmocka_unit_test(test_series_per_metric_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
