/*
 * Unit tests for collector/mesh_history and collector/mesh_graph: rates
 * over a window from snapshots (fine and coarse rings), counter resets and
 * expired series, success rates, p99 interpolated as Prometheus's
 * histogram_quantile against hand-computed values, canary shares, one count
 * per call seen by both sidecars, trace edges, the row and answer limits,
 * empty data and JSON escaping of non-ASCII names.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "mesh_graph.h"
#include "mesh_history.h"
#include "metric_store.h"

#define T0 1000000u /* the tests' clock starts here (ms) */

static const double dur_bounds[] = {1, 5, 10, 25};

/* The labels of one istio series. */
typedef struct istio {
    const char *reporter, *src, *src_ns, *dst, *dst_ns, *version, *code;
} istio_t;

static uint32_t labels_of(const istio_t *s, metric_label_t *l)
{
    char *fqdn = test_malloc(256);
    snprintf(fqdn, 256, "%s.%s.svc.cluster.local", s->dst, s->dst_ns);
    const char *kv[][2] = {
        {"reporter", s->reporter},
        {"source_canonical_service", s->src},
        {"source_workload", s->src},
        {"source_workload_namespace", s->src_ns},
        {"destination_service", fqdn},
        {"destination_service_name", s->dst},
        {"destination_service_namespace", s->dst_ns},
        {"destination_version", s->version},
        {"response_code", s->code},
    };
    uint32_t n = sizeof(kv) / sizeof(kv[0]);
    for (uint32_t i = 0; i < n; i++)
        l[i] = (metric_label_t){{kv[i][0], (uint32_t)strlen(kv[i][0])}, {kv[i][1], (uint32_t)strlen(kv[i][1])}};
    return n;
}

static void free_fqdn(metric_label_t *l)
{
    test_free((void *)l[4].value.ptr);
}

static void add_requests(metric_store_t *ms, const istio_t *s, double n, uint64_t t)
{
    metric_label_t l[16];
    metric_point_t p = {0};
    p.name = STR_LIT("istio_requests_total");
    p.type = METRIC_SUM;
    p.temporality = METRIC_TEMPORALITY_DELTA;
    p.monotonic = 1;
    p.labels = l;
    p.n_labels = labels_of(s, l);
    p.value = n;
    assert_int_equal(metric_store_add(ms, &p, t, NULL), 0);
    free_fqdn(l);
}

/* A cumulative counter (an exporter that is not one of our sidecars), to show resets. */
static void set_requests(metric_store_t *ms, const istio_t *s, double v, uint64_t t)
{
    metric_label_t l[16];
    metric_point_t p = {0};
    p.name = STR_LIT("istio_requests_total");
    p.type = METRIC_SUM;
    p.temporality = METRIC_TEMPORALITY_CUMULATIVE;
    p.monotonic = 1;
    p.labels = l;
    p.n_labels = labels_of(s, l);
    p.value = v;
    assert_int_equal(metric_store_add(ms, &p, t, NULL), 0);
    free_fqdn(l);
}

static void add_durations(metric_store_t *ms, const istio_t *s, const uint64_t *counts, uint64_t t)
{
    metric_label_t l[16];
    metric_point_t p = {0};
    p.name = STR_LIT("istio_request_duration_milliseconds");
    p.type = METRIC_HISTOGRAM;
    p.temporality = METRIC_TEMPORALITY_DELTA;
    p.labels = l;
    p.n_labels = labels_of(s, l);
    p.n_bounds = 4;
    p.bounds = dur_bounds;
    p.bucket_counts = counts;
    for (int i = 0; i < 5; i++)
        p.count += counts[i];
    assert_int_equal(metric_store_add(ms, &p, t, NULL), 0);
    free_fqdn(l);
}

/* One sample of the whole store (in parts of 2 series, to cross part boundaries) and a snapshot. */
static void sample(mesh_history_t *h, metric_store_t *ms, uint64_t t)
{
    metric_render_cursor_t cur = {0};
    mesh_history_sample_begin(h, t);
    while (metric_store_visit_chunk(ms, &cur, mesh_history_sample_series, h, 2, t) == 1)
        ;
    metric_render_cursor_dispose(&cur);
    mesh_history_sample_end(h);
    mesh_history_tick(h);
}

/* A history of 1 s snapshots: fine ring 10 s, coarse ring (every 5th) 60 s. */
static mesh_history_t *small_history(uint32_t max_rows)
{
    mesh_history_config_t cfg = {
        .interval_ms = 1000, .fine_slots = 11, .coarse_every = 5, .coarse_slots = 13, .max_rows = max_rows};
    return mesh_history_create(&cfg);
}

static const char *zipkin_ui = "/zipkin/"; /* mesh.zipkinUi of graph() */

/* The graph of a window as a parsed JSON tree (free with yajl_tree_free). */
static yajl_val graph(mesh_history_t *h, uint64_t window_ms, const span_dep_link_t *links, size_t n_links,
                      uint32_t max_nodes, uint32_t max_edges)
{
    mesh_window_t w;
    mesh_history_stats_t st;
    assert_int_equal(mesh_history_window(h, window_ms, &w), 0);
    mesh_history_stats(h, &st);
    mesh_graph_opts_t o = {.window = "test",
                           .window_ms = window_ms,
                           .generated_ms = 1700000000123ull,
                           .max_nodes = max_nodes,
                           .max_edges = max_edges,
                           .zipkin_ui = zipkin_ui};
    buf_t b = BUF_INIT;
    mesh_graph_json(&w, links, n_links, &st, &o, &b);
    mesh_window_dispose(&w);
    char err[256];
    yajl_val root = yajl_tree_parse(b.data, err, sizeof(err));
    if (root == NULL)
        fail_msg("not JSON (%s): %s", err, b.data);
    buf_dispose(&b);
    return root;
}

static yajl_val get(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val r = yajl_tree_get(v, path, yajl_t_any);
    if (r == NULL)
        fail_msg("no \"%s\"", key);
    return r;
}

static double num(yajl_val v, const char *key)
{
    yajl_val r = get(v, key);
    if (YAJL_IS_NULL(r))
        return NAN;
    assert_true(YAJL_IS_NUMBER(r));
    return YAJL_GET_DOUBLE(r);
}

static const char *str(yajl_val v, const char *key)
{
    yajl_val r = get(v, key);
    assert_true(YAJL_IS_STRING(r));
    return YAJL_GET_STRING(r);
}

static size_t count(yajl_val root, const char *key)
{
    yajl_val a = get(root, key);
    assert_true(YAJL_IS_ARRAY(a));
    return a->u.array.len;
}

static yajl_val find(yajl_val root, const char *array, const char *key, const char *value)
{
    yajl_val a = get(root, array);
    for (size_t i = 0; i < a->u.array.len; i++)
        if (strcmp(str(a->u.array.values[i], key), value) == 0)
            return a->u.array.values[i];
    return NULL;
}

static yajl_val find_edge(yajl_val root, const char *src, const char *dst)
{
    yajl_val a = get(root, "edges");
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val e = a->u.array.values[i];
        if (strcmp(str(e, "source"), src) == 0 && strcmp(str(e, "destination"), dst) == 0)
            return e;
    }
    fail_msg("no edge %s -> %s", src, dst);
    return NULL;
}

#define PP "productpage.shop.svc.cluster.local"
#define REVIEWS "reviews.shop.svc.cluster.local"

static const istio_t pp_reviews_200 = {"source", "productpage", "shop", "reviews", "shop", "v1", "200"};
static const istio_t pp_reviews_503 = {"source", "productpage", "shop", "reviews", "shop", "v1", "503"};

/* ------------------------------------------------------------------ */

static void test_quantile_hand_computed(void **state)
{
    (void)state;
    /* 4 observations: (1,5] 1, (5,10] 2, (10,25] 1 */
    uint64_t b[] = {0, 1, 2, 1, 0};
    /* p99: rank 3.96 in (10,25], 3 below, 1 in it: 10 + 15 * 0.96 */
    assert_float_equal(mesh_histogram_quantile(0.99, dur_bounds, 4, b), 24.4, 1e-9);
    /* p50: rank 2 in (5,10], 1 below, 2 in it: 5 + 5 * 0.5 */
    assert_float_equal(mesh_histogram_quantile(0.5, dur_bounds, 4, b), 7.5, 1e-9);
    /* the first bucket starts at 0: rank 9.9 of 10 in (0,1] */
    uint64_t first[] = {10, 0, 0, 0, 0};
    assert_float_equal(mesh_histogram_quantile(0.99, dur_bounds, 4, first), 0.99, 1e-9);
    /* the rank in +Inf: the highest finite bound */
    uint64_t inf[] = {1, 0, 0, 0, 5};
    assert_float_equal(mesh_histogram_quantile(0.99, dur_bounds, 4, inf), 25, 1e-9);
    /* a rank exactly at a bucket's top stays in that bucket */
    uint64_t edge[] = {0, 2, 2, 0, 0};
    assert_float_equal(mesh_histogram_quantile(0.5, dur_bounds, 4, edge), 5, 1e-9);
    uint64_t none[] = {0, 0, 0, 0, 0};
    assert_true(isnan(mesh_histogram_quantile(0.99, dur_bounds, 4, none)));
    assert_true(isnan(mesh_histogram_quantile(0.99, dur_bounds, 0, first)));
    assert_true(isinf(mesh_histogram_quantile(1.5, dur_bounds, 4, b)));
}

static void test_rates_over_windows(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    mesh_history_t *h = small_history(0);
    add_requests(ms, &pp_reviews_200, 1000, T0 - 1); /* before the first sample: the baseline, not an increase */
    sample(h, ms, T0);
    for (uint64_t k = 1; k <= 20; k++) {
        add_requests(ms, &pp_reviews_200, 10, T0 + k * 1000);
        add_requests(ms, &pp_reviews_503, 1, T0 + k * 1000);
        sample(h, ms, T0 + k * 1000);
    }
    /* 5 s from the fine ring: snapshots 15..20, 11 requests a second, 1 failing */
    yajl_val g = graph(h, 5000, NULL, 0, 0, 0);
    assert_float_equal(num(g, "coveredSeconds"), 5, 1e-9);
    assert_float_equal(num(g, "resolutionSeconds"), 1, 1e-9);
    yajl_val e = find_edge(g, PP, REVIEWS);
    assert_float_equal(num(e, "requests"), 55, 0);
    assert_float_equal(num(e, "errors"), 5, 0);
    assert_float_equal(num(e, "rps"), 11, 1e-9);
    assert_float_equal(num(e, "successRate"), 50.0 / 55.0, 1e-5);
    assert_true(isnan(num(e, "p99Ms")));
    assert_string_equal(str(e, "reporter"), "source");
    yajl_tree_free(g);

    /* 10 s, the whole fine ring */
    g = graph(h, 10000, NULL, 0, 0, 0);
    assert_float_equal(num(find_edge(g, PP, REVIEWS), "requests"), 110, 0);
    yajl_tree_free(g);

    /* 30 s from the coarse ring (a snapshot every 5 s): younger than the window, so from the first */
    g = graph(h, 30000, NULL, 0, 0, 0);
    assert_float_equal(num(g, "resolutionSeconds"), 5, 1e-9);
    assert_float_equal(num(g, "coveredSeconds"), 20, 1e-9);
    e = find_edge(g, PP, REVIEWS);
    assert_float_equal(num(e, "requests"), 220, 0);
    assert_float_equal(num(e, "rps"), 11, 1e-9);
    yajl_tree_free(g);

    /* 12 s from the coarse ring: the newest coarse snapshot at least 12 s old is t=5 s (covers 15 s) */
    g = graph(h, 12000, NULL, 0, 0, 0);
    assert_float_equal(num(g, "coveredSeconds"), 15, 1e-9);
    assert_float_equal(num(find_edge(g, PP, REVIEWS), "requests"), 165, 0);
    yajl_tree_free(g);

    /* the history spans 60 s */
    mesh_window_t w;
    assert_int_equal(mesh_history_max_window_ms(h), 60000);
    assert_int_equal(mesh_history_window(h, 60001, &w), -1);
    assert_int_equal(mesh_history_window(h, 0, &w), -1);

    /* past the fine ring, old snapshots are overwritten: 10 s still reads 10 s */
    for (uint64_t k = 21; k <= 40; k++) {
        add_requests(ms, &pp_reviews_200, 2, T0 + k * 1000);
        sample(h, ms, T0 + k * 1000);
    }
    g = graph(h, 10000, NULL, 0, 0, 0);
    assert_float_equal(num(g, "coveredSeconds"), 10, 1e-9);
    assert_float_equal(num(find_edge(g, PP, REVIEWS), "requests"), 20, 0);
    yajl_tree_free(g);
    /* no request in the last 5 s: no edge, no node */
    sample(h, ms, T0 + 46000);
    g = graph(h, 5000, NULL, 0, 0, 0);
    assert_int_equal(count(g, "edges"), 0);
    assert_int_equal(count(g, "nodes"), 0);
    yajl_tree_free(g);

    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

static void test_resets_and_expiry(void **state)
{
    (void)state;
    metric_store_config_t mc = {.series_ttl_ms = 3000};
    metric_store_t *ms = metric_store_create(&mc);
    mesh_history_t *h = small_history(0);
    sample(h, ms, T0);
    /* a cumulative counter: 100 (new after the baseline: counts whole), 150 (+50), then 20 (a restart: +20) */
    set_requests(ms, &pp_reviews_200, 100, T0 + 1000);
    sample(h, ms, T0 + 1000);
    set_requests(ms, &pp_reviews_200, 150, T0 + 2000);
    sample(h, ms, T0 + 2000);
    set_requests(ms, &pp_reviews_200, 20, T0 + 3000);
    sample(h, ms, T0 + 3000);
    yajl_val g = graph(h, 10000, NULL, 0, 0, 0);
    assert_float_equal(num(find_edge(g, PP, REVIEWS), "requests"), 170, 0);
    yajl_tree_free(g);

    /* the 503 series expires from the store: the row does not go back */
    add_requests(ms, &pp_reviews_503, 7, T0 + 3000);
    sample(h, ms, T0 + 3500);
    sample(h, ms, T0 + 8000); /* both series expired by now */
    mesh_history_stats_t st;
    mesh_history_stats(h, &st);
    assert_int_equal(st.series, 0);
    g = graph(h, 10000, NULL, 0, 0, 0);
    yajl_val e = find_edge(g, PP, REVIEWS);
    assert_float_equal(num(e, "requests"), 177, 0);
    assert_float_equal(num(e, "errors"), 7, 0);
    yajl_tree_free(g);
    /* and comes back as a new series: its value is new requests */
    add_requests(ms, &pp_reviews_503, 3, T0 + 9000);
    sample(h, ms, T0 + 9000);
    g = graph(h, 10000, NULL, 0, 0, 0);
    assert_float_equal(num(find_edge(g, PP, REVIEWS), "errors"), 10, 0);
    yajl_tree_free(g);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

static void test_canary_shares_and_reporters(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    mesh_history_t *h = small_history(0);
    sample(h, ms, T0);
    /* productpage -> reviews, 80/20 between v1 and v2, seen by both sidecars */
    const istio_t src_v1 = {"source", "productpage", "shop", "reviews", "shop", "v1", "200"};
    const istio_t src_v2 = {"source", "productpage", "shop", "reviews", "shop", "v2", "200"};
    const istio_t dst_v1 = {"destination", "productpage", "shop", "reviews", "shop", "v1", "200"};
    const istio_t dst_v2 = {"destination", "productpage", "shop", "reviews", "shop", "v2", "200"};
    /* a caller outside the mesh, seen by productpage's sidecar only */
    const istio_t outside = {"destination", "unknown", "unknown", "productpage", "shop", "v1", "200"};
    add_requests(ms, &src_v1, 80, T0 + 1000);
    add_requests(ms, &src_v2, 20, T0 + 1000);
    add_requests(ms, &dst_v1, 80, T0 + 1000);
    add_requests(ms, &dst_v2, 20, T0 + 1000);
    add_requests(ms, &outside, 100, T0 + 1000);
    uint64_t d1[] = {0, 40, 40, 0, 0}, d2[] = {0, 0, 10, 10, 0};
    add_durations(ms, &src_v1, d1, T0 + 1000);
    add_durations(ms, &src_v2, d2, T0 + 1000);
    sample(h, ms, T0 + 1000);

    yajl_val g = graph(h, 5000, NULL, 0, 0, 0);
    assert_int_equal(count(g, "nodes"), 3);
    assert_int_equal(count(g, "edges"), 2);
    yajl_val e = find_edge(g, PP, REVIEWS);
    assert_float_equal(num(e, "requests"), 100, 0); /* once, not once per sidecar */
    assert_string_equal(str(e, "reporter"), "source");
    assert_float_equal(num(e, "successRate"), 1, 0);
    /* 100 observations summed over v1 and v2: (1,5] 40, (5,10] 50, (10,25] 10; rank 99 in (10,25]: 10 + 15 * 9/10 */
    assert_float_equal(num(e, "p99Ms"), 23.5, 1e-4);
    assert_string_equal(str(e, "traces"), "/api/v2/traces?serviceName=productpage.shop&remoteServiceName=reviews"
                                          "&lookback=5000&limit=10");
    /* the same search on zipkin-lens's discover page, over the window ending when the answer was made */
    assert_string_equal(str(e, "zipkin"), "/zipkin/?serviceName=productpage.shop&remoteServiceName=reviews"
                                          "&lookback=millis&millis=5000&endTs=1700000000123&limit=10");
    yajl_val in = find_edge(g, "unknown", PP);
    assert_string_equal(str(in, "reporter"), "destination");
    assert_float_equal(num(in, "requests"), 100, 0);
    assert_string_equal(str(in, "traces"), "/api/v2/traces?serviceName=productpage.shop&lookback=5000&limit=10");

    yajl_val reviews = find(g, "nodes", "service", REVIEWS);
    assert_non_null(reviews);
    assert_string_equal(str(reviews, "name"), "reviews");
    assert_string_equal(str(reviews, "namespace"), "shop");
    assert_string_equal(str(reviews, "kind"), "service");
    assert_float_equal(num(reviews, "requests"), 100, 0);
    yajl_val versions = get(reviews, "versions");
    assert_int_equal(versions->u.array.len, 2);
    assert_string_equal(str(versions->u.array.values[0], "version"), "v1");
    assert_float_equal(num(versions->u.array.values[0], "share"), 0.8, 1e-9);
    assert_float_equal(num(versions->u.array.values[0], "requests"), 80, 0);
    assert_string_equal(str(versions->u.array.values[1], "version"), "v2");
    assert_float_equal(num(versions->u.array.values[1], "share"), 0.2, 1e-9);
    yajl_val unknown = find(g, "nodes", "service", "unknown");
    assert_string_equal(str(unknown, "kind"), "unknown");
    assert_float_equal(num(unknown, "outRequests"), 100, 0);
    yajl_tree_free(g);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

static void test_trace_edges(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    mesh_history_t *h = small_history(0);
    sample(h, ms, T0);
    const istio_t cafe = {"source", "café", "shop", "reviews", "shop", "v1", "200"};
    add_requests(ms, &cafe, 4, T0 + 1000);
    sample(h, ms, T0 + 1000);
    span_dep_link_t links[] = {
        {STR_LIT("legacy-web"), STR_LIT("café.shop"), 6, 2},   /* no sidecar at the caller: a trace edge */
        {STR_LIT("café.shop"), STR_LIT("reviews.shop"), 3, 0}, /* the sidecars saw it: theirs */
        {STR_LIT("legacy-web"), STR_LIT("legacy-db"), 0, 0},   /* no calls */
    };
    yajl_val g = graph(h, 5000, links, 3, 0, 0);
    assert_int_equal(count(g, "edges"), 2);
    assert_float_equal(num(find_edge(g, "café.shop.svc.cluster.local", REVIEWS), "requests"), 4, 0);
    yajl_val e = find_edge(g, "legacy-web", "café.shop.svc.cluster.local");
    assert_string_equal(str(e, "reporter"), "trace");
    assert_float_equal(num(e, "requests"), 6, 0);
    assert_float_equal(num(e, "successRate"), 4.0 / 6.0, 1e-5);
    assert_true(isnan(num(e, "p99Ms")));
    assert_string_equal(
        str(e, "traces"),
        "/api/v2/traces?serviceName=legacy-web&remoteServiceName=caf%C3%A9.shop&lookback=5000&limit=10");
    yajl_tree_free(g);

    /* a UI elsewhere, its address with a query of its own; then none at all */
    zipkin_ui = "https://zipkin.example/zipkin/?theme=dark";
    g = graph(h, 5000, links, 3, 0, 0);
    e = find_edge(g, "legacy-web", "café.shop.svc.cluster.local");
    assert_string_equal(str(e, "zipkin"), "https://zipkin.example/zipkin/?theme=dark&serviceName=legacy-web"
                                          "&remoteServiceName=caf%C3%A9.shop&lookback=millis&millis=5000"
                                          "&endTs=1700000000123&limit=10");
    yajl_tree_free(g);
    zipkin_ui = "";
    g = graph(h, 5000, links, 3, 0, 0);
    e = find_edge(g, "legacy-web", "café.shop.svc.cluster.local");
    assert_int_equal(get(e, "zipkin")->type, yajl_t_null);
    zipkin_ui = "/zipkin/";
    yajl_val legacy = find(g, "nodes", "service", "legacy-web");
    assert_string_equal(str(legacy, "kind"), "traced");
    yajl_val node = find(g, "nodes", "service", "café.shop.svc.cluster.local");
    assert_string_equal(str(node, "name"), "café");
    assert_float_equal(num(node, "requests"), 6, 0);
    assert_float_equal(num(node, "outRequests"), 4, 0);
    yajl_tree_free(g);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

static void test_escaping(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    mesh_history_t *h = small_history(0);
    sample(h, ms, T0);
    const istio_t odd = {"source", "caf\xc3\xa9 \"q\"\\", "sh\xc3\xb6p", "\xe6\x9d\xb1\xe4\xba\xac", "shop", "v\n1",
                         "200"};
    add_requests(ms, &odd, 1, T0 + 1000);
    sample(h, ms, T0 + 1000);
    mesh_window_t w;
    mesh_history_stats_t st;
    assert_int_equal(mesh_history_window(h, 5000, &w), 0);
    mesh_history_stats(h, &st);
    mesh_graph_opts_t o = {.window = "5\"s", .window_ms = 5000, .generated_ms = 0};
    buf_t b = BUF_INIT;
    mesh_graph_json(&w, NULL, 0, &st, &o, &b);
    mesh_window_dispose(&w);
    assert_non_null(strstr(b.data, "\"window\":\"5\\\"s\""));
    assert_non_null(strstr(b.data, "\"service\":\"caf\xc3\xa9 \\\"q\\\"\\\\.sh\xc3\xb6p.svc.cluster.local\""));
    assert_non_null(strstr(b.data, "\"version\":\"v\\n1\""));
    assert_non_null(
        strstr(b.data, "serviceName=caf%C3%A9%20%22q%22%5C.sh%C3%B6p&remoteServiceName=%E6%9D%B1%E4%BA%AC"));
    assert_non_null(strstr(b.data, "\"generatedAt\":\"1970-01-01T00:00:00.000Z\""));
    yajl_val g = yajl_tree_parse(b.data, NULL, 0);
    assert_non_null(g);
    assert_non_null(find(g, "nodes", "service", "\xe6\x9d\xb1\xe4\xba\xac.shop.svc.cluster.local"));
    yajl_tree_free(g);
    buf_dispose(&b);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

static void test_limits(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    mesh_history_t *h = small_history(2);
    sample(h, ms, T0);
    const istio_t a = {"source", "a", "ns", "b", "ns", "v1", "200"};
    const istio_t b = {"source", "a", "ns", "c", "ns", "v1", "200"};
    const istio_t c = {"source", "a", "ns", "d", "ns", "v1", "200"};
    add_requests(ms, &a, 30, T0 + 1000);
    add_requests(ms, &b, 20, T0 + 1000);
    add_requests(ms, &c, 10, T0 + 1000);
    sample(h, ms, T0 + 1000);
    mesh_history_stats_t st;
    mesh_history_stats(h, &st);
    assert_int_equal(st.rows, 2);
    assert_int_equal(st.rows_dropped, 1); /* the third row did not fit */

    /* answer limits: one edge, the busiest */
    yajl_val g = graph(h, 5000, NULL, 0, 0, 1);
    assert_true(YAJL_IS_TRUE(get(g, "truncated")));
    assert_int_equal(count(g, "edges"), 1);
    assert_int_equal(count(g, "nodes"), 2);
    assert_float_equal(num(get(g, "dropped"), "edges"), 1, 0);
    assert_float_equal(num(get(g, "dropped"), "nodes"), 1, 0);
    assert_float_equal(num(get(g, "dropped"), "rows"), 1, 0);
    assert_float_equal(num(get(g, "limits"), "maxEdges"), 1, 0);
    assert_float_equal(num(find_edge(g, "a.ns.svc.cluster.local", "b.ns.svc.cluster.local"), "requests"), 30, 0);
    yajl_tree_free(g);
    /* node limit: two nodes hold one edge */
    g = graph(h, 5000, NULL, 0, 2, 0);
    assert_true(YAJL_IS_TRUE(get(g, "truncated")));
    assert_int_equal(count(g, "edges"), 1);
    yajl_tree_free(g);
    g = graph(h, 5000, NULL, 0, 0, 0);
    assert_true(YAJL_IS_FALSE(get(g, "truncated")));
    assert_int_equal(count(g, "edges"), 2);
    yajl_tree_free(g);

    /* a row idle for longer than the history (65 s) is reused for a new one */
    add_requests(ms, &c, 5, T0 + 70000);
    sample(h, ms, T0 + 70000);
    g = graph(h, 5000, NULL, 0, 0, 0);
    assert_int_equal(count(g, "edges"), 1);
    assert_float_equal(num(find_edge(g, "a.ns.svc.cluster.local", "d.ns.svc.cluster.local"), "requests"), 5, 0);
    yajl_tree_free(g);
    mesh_history_stats(h, &st);
    assert_int_equal(st.rows, 2);
    assert_int_equal(st.rows_dropped, 1);

    /* series limit */
    mesh_history_config_t cfg = {.interval_ms = 1000, .max_series = 1};
    mesh_history_t *h1 = mesh_history_create(&cfg);
    sample(h1, ms, T0 + 71000);
    mesh_history_stats(h1, &st);
    assert_int_equal(st.series, 1);
    assert_int_equal(st.series_dropped, 2);
    mesh_history_destroy(h1);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

/* Past mesh.maxSeries, histograms (visited first: the store is in name order) leave room for the counts. */
static void test_series_limit_keeps_counts(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    mesh_history_config_t cfg = {.interval_ms = 1000, .max_series = 4};
    mesh_history_t *h = mesh_history_create(&cfg);
    sample(h, ms, T0);
    const istio_t calls[] = {
        {"source", "a", "ns", "b", "ns", "v1", "200"},
        {"source", "a", "ns", "c", "ns", "v1", "200"},
        {"source", "a", "ns", "d", "ns", "v1", "200"},
    };
    uint64_t d[] = {0, 1, 0, 0, 0};
    for (size_t i = 0; i < 3; i++) {
        add_durations(ms, &calls[i], d, T0 + 1000);
        add_requests(ms, &calls[i], 7, T0 + 1000);
    }
    sample(h, ms, T0 + 1000);
    mesh_history_stats_t st;
    mesh_history_stats(h, &st);
    assert_int_equal(st.series, 4); /* 2 histograms (half), then 2 counters */
    assert_int_equal(st.series_dropped, 2);
    yajl_val g = graph(h, 5000, NULL, 0, 0, 0);
    assert_int_equal(count(g, "edges"), 2); /* calls with counts, not rows of histograms alone */
    size_t with_p99 = 0;
    yajl_val edges = get(g, "edges");
    for (size_t i = 0; i < edges->u.array.len; i++) {
        assert_float_equal(num(edges->u.array.values[i], "requests"), 7, 0);
        with_p99 += !isnan(num(edges->u.array.values[i], "p99Ms"));
    }
    assert_true(with_p99 >= 1);
    yajl_tree_free(g);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

static void test_histogram_bounds(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    mesh_history_t *h = small_history(0);
    sample(h, ms, T0);
    uint64_t counts[] = {0, 1, 2, 1, 0};
    add_durations(ms, &pp_reviews_200, counts, T0 + 1000);
    add_requests(ms, &pp_reviews_200, 4, T0 + 1000);
    /* another series of the same row with other bounds: left out of p99 and counted */
    metric_label_t l[16];
    static const double other[] = {2, 4};
    static const uint64_t oc[] = {100, 0, 0};
    metric_point_t p = {0};
    p.name = STR_LIT("istio_request_duration_milliseconds");
    p.type = METRIC_HISTOGRAM;
    p.temporality = METRIC_TEMPORALITY_DELTA;
    p.labels = l;
    p.n_labels = labels_of(&pp_reviews_503, l);
    p.n_bounds = 2;
    p.bounds = other;
    p.bucket_counts = oc;
    p.count = 100;
    assert_int_equal(metric_store_add(ms, &p, T0 + 1000, NULL), 0);
    free_fqdn(l);
    sample(h, ms, T0 + 1000);
    yajl_val g = graph(h, 5000, NULL, 0, 0, 0);
    assert_float_equal(num(find_edge(g, PP, REVIEWS), "p99Ms"), 24.4, 1e-4);
    assert_float_equal(num(get(g, "dropped"), "histograms"), 1, 0);
    yajl_tree_free(g);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
}

static void test_empty(void **state)
{
    (void)state;
    mesh_history_t *h = small_history(0);
    /* before any sample */
    yajl_val g = graph(h, 5000, NULL, 0, 0, 0);
    assert_int_equal(count(g, "nodes"), 0);
    assert_int_equal(count(g, "edges"), 0);
    assert_float_equal(num(g, "coveredSeconds"), 0, 0);
    assert_string_equal(str(g, "generatedAt"), "2023-11-14T22:13:20.123Z");
    yajl_tree_free(g);
    /* an empty store; other families and other reporters are left alone */
    metric_store_t *ms = metric_store_create(NULL);
    metric_point_t p = {0};
    p.name = STR_LIT("other_total");
    p.type = METRIC_SUM;
    p.temporality = METRIC_TEMPORALITY_DELTA;
    p.monotonic = 1;
    p.value = 3;
    assert_int_equal(metric_store_add(ms, &p, T0, NULL), 0);
    sample(h, ms, T0);
    const istio_t waypoint = {"waypoint", "a", "ns", "b", "ns", "v1", "200"};
    add_requests(ms, &waypoint, 5, T0 + 1000);
    sample(h, ms, T0 + 1000);
    g = graph(h, 5000, NULL, 0, 0, 0);
    assert_int_equal(count(g, "edges"), 0);
    yajl_tree_free(g);
    mesh_history_destroy(h);
    metric_store_destroy(ms);
    mesh_history_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_hand_computed),
        cmocka_unit_test(test_rates_over_windows),
        cmocka_unit_test(test_resets_and_expiry),
        cmocka_unit_test(test_canary_shares_and_reporters),
        cmocka_unit_test(test_trace_edges),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_series_limit_keeps_counts),
        cmocka_unit_test(test_histogram_bounds),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
