/*
 * Unit tests for exporters/prom_text: number formatting, escaping, name
 * sanitising, family/sample/histogram writers in both formats, Accept
 * negotiation and the self-metric cells.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prom_text.h"

static void expect_double(double v, const char *want)
{
    char out[PROM_DOUBLE_MAX];
    size_t n = prom_format_double(out, v);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_format_double(void **state)
{
    (void)state;
    expect_double(0, "0");
    expect_double(1, "1");
    expect_double(-3, "-3");
    expect_double(1e6, "1000000");
    expect_double(123456789012.0, "123456789012");
    expect_double(0.5, "0.5");
    expect_double(0.1, "0.1");
    expect_double(2.5e-7, "2.5e-07");
    expect_double(1e300, "1e+300");
    expect_double(NAN, "NaN");
    expect_double(INFINITY, "+Inf");
    expect_double(-INFINITY, "-Inf");
    char out[PROM_DOUBLE_MAX];
    prom_format_double(out, 0.1 + 0.2);
    assert_true(strtod(out, NULL) == 0.1 + 0.2);
}

static void test_escaping(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    const char v[] = "a\\b\"c\nd";
    prom_append_label_value(&b, v, sizeof(v) - 1);
    assert_string_equal(b.data, "a\\\\b\\\"c\\nd");
    b.len = 0;
    prom_append_help(&b, v, sizeof(v) - 1, 0);
    assert_string_equal(b.data, "a\\\\b\"c\\nd");
    b.len = 0;
    prom_append_help(&b, v, sizeof(v) - 1, 1);
    assert_string_equal(b.data, "a\\\\b\\\"c\\nd");
    buf_dispose(&b);
}

static void test_sanitize(void **state)
{
    (void)state;
    char n1[] = "http.server.duration";
    assert_int_equal(prom_sanitize_name(n1, strlen(n1), sizeof(n1), 0), strlen(n1));
    assert_string_equal(n1, "http_server_duration");
    char n2[] = "9lives-x";
    prom_sanitize_name(n2, strlen(n2), sizeof(n2), 0);
    assert_string_equal(n2, "_lives_x");
    char n3[] = "ns:metric";
    prom_sanitize_name(n3, strlen(n3), sizeof(n3), 0);
    assert_string_equal(n3, "ns:metric");
    char n4[] = "a:b";
    prom_sanitize_name(n4, strlen(n4), sizeof(n4), 1);
    assert_string_equal(n4, "a_b");
    char n5[2] = {0};
    assert_int_equal(prom_sanitize_name(n5, 0, sizeof(n5), 1), 1);
    assert_int_equal(n5[0], '_');
    assert_true(prom_name_valid("istio_requests_total", 20, 0));
    assert_false(prom_name_valid("1x", 2, 0));
    assert_false(prom_name_valid("a:b", 3, 1));
}

static void test_family_header(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    prom_write_family_header(&b, "reqs", PROM_COUNTER, "Requests\nserved", 15, NULL, 0);
    assert_string_equal(b.data, "# HELP reqs_total Requests\\nserved\n# TYPE reqs_total counter\n");
    b.len = 0;
    prom_write_family_header(&b, "reqs", PROM_COUNTER, "Requests", 8, NULL, 1);
    assert_string_equal(b.data, "# HELP reqs Requests\n# TYPE reqs counter\n");
    b.len = 0;
    prom_write_family_header(&b, "x", PROM_UNTYPED, NULL, 0, NULL, 0);
    assert_string_equal(b.data, "# TYPE x untyped\n");
    b.len = 0;
    prom_write_family_header(&b, "x", PROM_UNTYPED, "", 0, NULL, 1);
    assert_string_equal(b.data, "# TYPE x unknown\n");
    b.len = 0;
    prom_write_family_header(&b, "latency_seconds", PROM_HISTOGRAM, NULL, 0, "seconds", 1);
    assert_string_equal(b.data, "# TYPE latency_seconds histogram\n# UNIT latency_seconds seconds\n");
    b.len = 0;
    prom_write_family_header(&b, "latency_seconds", PROM_HISTOGRAM, NULL, 0, "seconds", 0);
    assert_string_equal(b.data, "# TYPE latency_seconds histogram\n");
    b.len = 0;
    prom_write_family_header(&b, "latency", PROM_HISTOGRAM, NULL, 0, "s", 1);
    assert_string_equal(b.data, "# TYPE latency histogram\n");
    buf_dispose(&b);
}

static void test_sample_and_exemplar(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    metric_label_t labels[2] = {
        {STR_LIT("code"), STR_LIT("200")},
        {STR_LIT("path"), STR_LIT("/a\"b")},
    };
    metric_exemplar_t ex = {.value = 0.25,
                            .time_unix_nano = 1520879607789000000ull,
                            .trace_id_high = 0x0102030405060708ull,
                            .trace_id_low = 0x090a0b0c0d0e0f10ull,
                            .span_id = 0xaabbccddeeff0011ull};
    prom_write_sample(&b, "reqs", "_total", labels, 2, NULL, NULL, 7, &ex, 0);
    assert_string_equal(b.data, "reqs_total{code=\"200\",path=\"/a\\\"b\"} 7\n");
    b.len = 0;
    prom_write_sample(&b, "reqs", "_total", labels, 2, NULL, NULL, 7, &ex, 1);
    assert_string_equal(b.data, "reqs_total{code=\"200\",path=\"/a\\\"b\"} 7 # "
                                "{trace_id=\"0102030405060708090a0b0c0d0e0f10\",span_id=\"aabbccddeeff0011\"} "
                                "0.25 1520879607.789\n");
    b.len = 0;
    metric_exemplar_t short_ex = {.value = 1, .trace_id_low = 0xabcull};
    prom_write_sample(&b, "up", "", NULL, 0, NULL, NULL, 1, &short_ex, 1);
    assert_string_equal(b.data, "up 1 # {trace_id=\"0000000000000abc\"} 1\n");
    b.len = 0;
    metric_exemplar_t none = {.value = 1};
    prom_write_sample(&b, "up", "", NULL, 0, "le", "+Inf", 1, &none, 1);
    assert_string_equal(b.data, "up{le=\"+Inf\"} 1\n");
    buf_dispose(&b);
}

static void test_histogram_writer(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    double bounds[2] = {0.1, 1};
    uint64_t counts[3] = {1, 2, 3};
    metric_label_t l = {STR_LIT("svc"), STR_LIT("a")};
    metric_exemplar_t ex[3] = {{.value = 0}, {.value = 0.5, .trace_id_low = 1}, {.value = 0}};
    prom_write_histogram(&b, "lat", &l, 1, 2, bounds, counts, 4.5, 1, ex, 1);
    assert_string_equal(b.data, "lat_bucket{svc=\"a\",le=\"0.1\"} 1\n"
                                "lat_bucket{svc=\"a\",le=\"1\"} 3 # {trace_id=\"0000000000000001\"} 0.5\n"
                                "lat_bucket{svc=\"a\",le=\"+Inf\"} 6\n"
                                "lat_count{svc=\"a\"} 6\n"
                                "lat_sum{svc=\"a\"} 4.5\n");
    b.len = 0;
    prom_write_histogram(&b, "lat", NULL, 0, 2, bounds, counts, 0, 0, ex, 0);
    assert_string_equal(b.data, "lat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"1\"} 3\nlat_bucket{le=\"+Inf\"} 6\n"
                                "lat_count 6\n");
    b.len = 0;
    prom_write_eof(&b, 0);
    assert_int_equal(b.len, 0);
    prom_write_eof(&b, 1);
    assert_string_equal(b.data, "# EOF\n");
    buf_dispose(&b);
}

static void test_accept(void **state)
{
    (void)state;
    assert_false(prom_accepts_openmetrics(NULL));
    assert_false(prom_accepts_openmetrics(""));
    assert_false(prom_accepts_openmetrics("text/plain;version=0.0.4"));
    assert_false(prom_accepts_openmetrics("*/*"));
    assert_true(prom_accepts_openmetrics(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    assert_true(prom_accepts_openmetrics("Application/OpenMetrics-Text; version=1.0.0"));
    assert_false(prom_accepts_openmetrics("application/openmetrics-text;q=0"));
    assert_false(prom_accepts_openmetrics("application/openmetrics-text; q=0.0, text/plain"));
    assert_false(prom_accepts_openmetrics("application/openmetrics-text;q=0.2,text/plain;q=0.9"));
    assert_true(prom_accepts_openmetrics("text/plain;q=0.3, application/openmetrics-text ;q=0.4"));
    assert_string_equal(prom_content_type(0), "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(prom_content_type(1), "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

static void test_self_metrics(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    prom_counter_t c = {0};
    prom_counter_add(&c, 3);
    prom_counter_add(&c, 2);
    metric_label_t t = {STR_LIT("transport"), STR_LIT("http")};
    prom_write_counter(&b, "zipkin_collector_messages", &t, 1, &c, 0);
    assert_string_equal(b.data, "zipkin_collector_messages_total{transport=\"http\"} 5\n");
    b.len = 0;
    prom_gauge_t g = {0};
    prom_gauge_set(&g, 10);
    prom_gauge_add(&g, -2.5);
    prom_write_gauge(&b, "zipkin_collector_message_spans", &t, 1, &g, 0);
    assert_string_equal(b.data, "zipkin_collector_message_spans{transport=\"http\"} 7.5\n");
    b.len = 0;
    prom_histogram_t h;
    double bounds[2] = {1, 2};
    prom_histogram_init(&h, bounds, 2);
    prom_histogram_observe(&h, 0.5);
    prom_histogram_observe(&h, 1);
    prom_histogram_observe(&h, 1.5);
    prom_histogram_observe(&h, 9);
    prom_write_histogram_cell(&b, "h", NULL, 0, &h, 0);
    assert_string_equal(b.data, "h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 3\nh_bucket{le=\"+Inf\"} 4\n"
                                "h_count 4\nh_sum 12\n");
    buf_dispose(&b);
}

static void test_histogram_vec(void **state)
{
    (void)state;
    const char *names[3] = {"method", "uri", "status"};
    assert_null(prom_histogram_vec_create("bad name", "", names, 3, NULL, 0, 4));
    prom_histogram_vec_t *v = prom_histogram_vec_create("http_server_requests_seconds", "HTTP latency", names, 3,
                                                        prom_latency_bounds_seconds, PROM_LATENCY_BOUNDS_N, 2);
    assert_non_null(v);
    const char *a[3] = {"GET", "/metrics", "200"};
    const char *bb[3] = {"POST", "/api/v2/spans", "202"};
    const char *c[3] = {"GET", "/health", "200"};
    prom_histogram_vec_observe(v, a, 0.002);
    prom_histogram_vec_observe(v, a, 0.02);
    prom_histogram_vec_observe(v, bb, 0.2);
    prom_histogram_vec_observe(v, c, 0.2);
    assert_int_equal(prom_histogram_vec_overflow(v), 1);
    buf_t b = BUF_INIT;
    prom_histogram_vec_render(v, &b, 1);
    assert_non_null(strstr(b.data, "# HELP http_server_requests_seconds HTTP latency\n"
                                   "# TYPE http_server_requests_seconds histogram\n"));
    assert_non_null(strstr(b.data, "http_server_requests_seconds_count{method=\"GET\",uri=\"/metrics\","
                                   "status=\"200\"} 2\n"));
    assert_non_null(strstr(b.data, "http_server_requests_seconds_bucket{method=\"POST\",uri=\"/api/v2/spans\","
                                   "status=\"202\",le=\"0.25\"} 1\n"));
    assert_null(strstr(b.data, "/health"));
    buf_dispose(&b);
    prom_histogram_vec_destroy(v);
    prom_histogram_vec_destroy(NULL);
}

/* printf's shortest round-trip form (%.15g, then 16 and 17 digits), the reference the fast paths must match */
static size_t reference_double(char *out, double v)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, PROM_DOUBLE_MAX, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v)
            break;
    }
    return (size_t)n;
}

/* numbers are written without printf where they can be, and exactly as printf would write them */
static void test_double_fast_paths(void **state)
{
    (void)state;
    static const double fixed[] = {41.25, 0.1, 0.5, -2.75, 1e-4, 0.00012345, 999999.5, 123456.789, 0.3, 100.01,
                                   5e-5, 1e6 + 0.5, 0.1 + 0.2, 1.0 / 3, 2.5e-7, 12345678.9, -0.0001, 7.0, 1e21};
    char a[PROM_DOUBLE_MAX], b[PROM_DOUBLE_MAX];
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        reference_double(b, fixed[i]);
        prom_format_double(a, fixed[i]);
        assert_string_equal(a, b);
    }
    uint64_t x = 88172645463325252ull; /* xorshift: the same values every run */
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        switch (i % 4) {
        case 0: v = (double)(x % 100000000) / pow(10, (double)((x >> 40) % 10)); break; /* decimal fractions */
        case 1: v = (double)(x >> 11) / 9007199254740992.0 * 1000; break;          /* any double */
        case 2: v = (double)(x % 1000) * 0.001; break;                              /* latencies in s */
        default: v = (double)(x % 2000000) / 1000.0 - 1000; break;                  /* signed */
        }
        reference_double(b, v);
        prom_format_double(a, v);
        if (strcmp(a, b) != 0)
            fail_msg("%.17g: %s, printf writes %s", v, a, b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_family_header),
        cmocka_unit_test(test_sample_and_exemplar),
        cmocka_unit_test(test_histogram_writer),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_self_metrics),
        cmocka_unit_test(test_histogram_vec),
        cmocka_unit_test(test_double_fast_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
