/* Unit tests for proxy/telemetry: recording, the Prometheus page, the queue limit, exemplars and the OTLP encoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compress.h"

#include "telemetry.h"
#include "telemetry_otlp.h"
#include "telemetry_policy.h"

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

static str_t S(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static peer_info_t self_info(void)
{
    peer_info_t p;
    memset(&p, 0, sizeof(p));
    strcpy(p.name, "productpage-v1-abc");
    strcpy(p.namespace, "default");
    strcpy(p.workload, "productpage-v1");
    strcpy(p.app, "productpage");
    strcpy(p.version, "v1");
    strcpy(p.cluster_id, "Kubernetes");
    return p;
}

static peer_info_t reviews_info(void)
{
    peer_info_t p;
    memset(&p, 0, sizeof(p));
    strcpy(p.name, "reviews-v2-xyz");
    strcpy(p.namespace, "default");
    strcpy(p.workload, "reviews-v2");
    strcpy(p.app, "reviews");
    strcpy(p.version, "v2");
    strcpy(p.cluster_id, "Kubernetes");
    return p;
}

static tele_request_t base_request(enum tele_reporter rep, const peer_info_t *peer)
{
    tele_request_t r;
    memset(&r, 0, sizeof(r));
    r.reporter = rep;
    r.peer = peer;
    r.destination_service = S("reviews.default.svc.cluster.local");
    r.destination_service_name = S("reviews");
    r.destination_service_namespace = S("default");
    r.response_code = 200;
    r.response_flags = 0;
    r.start_unix_ns = 1700000000000000000ull;
    r.duration_ns = 1000000;
    r.method = S("GET");
    r.path = S("/reviews/1");
    r.authority = S("reviews:9080");
    r.user_agent = S("curl/8");
    r.protocol = S("HTTP/1.1");
    r.upstream_host = S("127.0.0.1:19081");
    r.upstream_cluster = S("outbound|9080||reviews.default.svc.cluster.local");
    r.downstream_peer = S("127.0.0.1:40000");
    r.attempts = 1;
    r.span_name = S("reviews.default.svc.cluster.local:9080/*");
    return r;
}

typedef struct fixture {
    uv_loop_t loop;
    peer_info_t self;
    tele_t *t;
    tele_worker_t *w;
} fixture_t;

static const char *fx_self_principal; /* tele_opts_t.self_principal of the next fx_open */

static void fx_open(fixture_t *f, const char *host, size_t max_queue, bool start)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->self = self_info();
    tele_opts_t o = {0};
    o.otlp_host = host;
    o.otlp_port = 9;
    o.flush_interval_ms = 60000;
    o.max_queue_bytes = max_queue;
    o.access_log = true;
    o.self = &f->self;
    o.service_name = "productpage.default";
    o.instance_id = "productpage-v1-abc.default";
    o.self_principal = fx_self_principal;
    f->t = tele_create(&o);
    assert_non_null(f->t);
    if (start)
        assert_int_equal(tele_start(f->t), 0);
    f->w = tele_worker_create(f->t, &f->loop);
    assert_non_null(f->w);
}

/* Flush the worker, end it, drain the exporter; the page is then final. */
static void fx_finish(fixture_t *f)
{
    tele_worker_destroy(f->w);
    f->w = NULL;
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    tele_stop(f->t, 2000);
}

static void fx_close(fixture_t *f)
{
    tele_destroy(f->t);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static const char *SRC_LABELS =
    "reporter=\"source\",source_workload=\"productpage-v1\",source_workload_namespace=\"default\","
    "source_principal=\"unknown\",source_app=\"productpage\",source_version=\"v1\",source_cluster=\"Kubernetes\","
    "source_canonical_service=\"productpage\",source_canonical_revision=\"v1\",destination_workload=\"reviews-v2\","
    "destination_workload_namespace=\"default\",destination_principal=\"unknown\",destination_app=\"reviews\","
    "destination_version=\"v2\",destination_service=\"reviews.default.svc.cluster.local\","
    "destination_service_name=\"reviews\",destination_service_namespace=\"default\","
    "destination_cluster=\"Kubernetes\",destination_canonical_service=\"reviews\","
    "destination_canonical_revision=\"v2\",request_protocol=\"http\",response_code=\"200\","
    "grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"unknown\"";

static void assert_has_line(const char *page, const char *line)
{
    char *want = malloc(strlen(line) + 3);
    sprintf(want, "\n%s\n", line);
    if (strstr(page, want) == NULL) {
        fprintf(stderr, "missing line: %s\n--- page ---\n%s\n", line, page);
        fail();
    }
    free(want);
}

static void assert_series_line(const char *page, const char *name, const char *labels, const char *extra,
                               const char *value)
{
    char line[4096];
    snprintf(line, sizeof(line), "%s{%s%s} %s", name, labels, extra, value);
    assert_has_line(page, line);
}

static void test_render_source_histograms(void **state)
{
    (void)state;
    fixture_t f;
    fx_open(&f, NULL, 0, true);
    peer_info_t reviews = reviews_info();
    tele_request_t r = base_request(TELE_SOURCE, &reviews);
    r.duration_ns = 300000; /* 0.3 ms */
    r.request_bytes = 0;
    r.response_bytes = 5;
    tele_record(f.w, &r);
    r.duration_ns = 7000000; /* 7 ms */
    r.request_bytes = 10;
    r.response_bytes = 2000;
    tele_record(f.w, &r);
    r.duration_ns = 40000000000ull; /* 40 s */
    r.request_bytes = 1500000000ull;
    r.response_bytes = 0;
    tele_record(f.w, &r);
    fx_finish(&f);

    buf_t out = BUF_INIT;
    tele_render_prometheus(f.t, &out);
    const char *p = out.data;
    assert_non_null(strstr(p, "# HELP istio_requests_total "));
    assert_non_null(strstr(p, "# TYPE istio_requests_total counter\n"));
    assert_non_null(strstr(p, "# TYPE istio_request_duration_milliseconds histogram\n"));
    assert_non_null(strstr(p, "# TYPE istio_request_bytes histogram\n"));
    assert_non_null(strstr(p, "# TYPE istio_response_bytes histogram\n"));
    assert_series_line(p, "istio_requests_total", SRC_LABELS, "", "3");

    static const struct {
        const char *le, *count;
    } dur[] = {{"0.5", "1"},   {"1", "1"},     {"5", "1"},      {"10", "2"},      {"25", "2"},
               {"30000", "2"}, {"60000", "3"}, {"300000", "3"}, {"3600000", "3"}, {"+Inf", "3"}};
    char extra[64];
    for (size_t i = 0; i < sizeof(dur) / sizeof(dur[0]); i++) {
        snprintf(extra, sizeof(extra), ",le=\"%s\"", dur[i].le);
        assert_series_line(p, "istio_request_duration_milliseconds_bucket", SRC_LABELS, extra, dur[i].count);
    }
    assert_series_line(p, "istio_request_duration_milliseconds_sum", SRC_LABELS, "", "40007.3");
    assert_series_line(p, "istio_request_duration_milliseconds_count", SRC_LABELS, "", "3");

    /* request bytes 0, 10, 1.5e9 */
    static const struct {
        const char *le, *count;
    } req[] = {{"1", "1"}, {"10", "2"}, {"100", "2"}, {"1000000000", "2"}, {"+Inf", "3"}};
    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
        snprintf(extra, sizeof(extra), ",le=\"%s\"", req[i].le);
        assert_series_line(p, "istio_request_bytes_bucket", SRC_LABELS, extra, req[i].count);
    }
    assert_series_line(p, "istio_request_bytes_sum", SRC_LABELS, "", "1500000010");
    /* response bytes 5, 2000, 0 */
    static const struct {
        const char *le, *count;
    } resp[] = {{"1", "1"}, {"10", "2"}, {"1000", "2"}, {"10000", "3"}, {"+Inf", "3"}};
    for (size_t i = 0; i < sizeof(resp) / sizeof(resp[0]); i++) {
        snprintf(extra, sizeof(extra), ",le=\"%s\"", resp[i].le);
        assert_series_line(p, "istio_response_bytes_bucket", SRC_LABELS, extra, resp[i].count);
    }
    assert_series_line(p, "istio_response_bytes_count", SRC_LABELS, "", "3");
    /* self counters are always there */
    assert_has_line(p, "outrider_proxy_telemetry_dropped_total{signal=\"traces\"} 0");
    assert_has_line(p, "outrider_proxy_telemetry_queue_bytes 0");
    assert_null(strstr(p, "istio_tcp_"));
    buf_dispose(&out);
    fx_close(&f);
}

static void test_destination_labels_and_series(void **state)
{
    (void)state;
    fixture_t f;
    fx_open(&f, NULL, 0, true);
    tele_request_t r = base_request(TELE_DESTINATION, NULL);
    tele_record(f.w, &r);
    tele_record(f.w, &r);
    r.response_code = 503;
    r.response_flags = TELE_RF_UF | TELE_RF_URX;
    tele_record(f.w, &r);
    /* a source-side request without peer metadata: destination_* from the request */
    tele_request_t s = base_request(TELE_SOURCE, NULL);
    s.destination_app = S("reviews");
    s.destination_version = S("v3");
    s.response_code = 0;
    s.response_flags = TELE_RF_DC;
    tele_record(f.w, &s);
    /* a tunnel */
    tele_tcp_t tcp = {0};
    tcp.reporter = TELE_DESTINATION;
    tcp.destination_service = S("reviews.default.svc.cluster.local");
    tcp.destination_service_name = S("reviews");
    tcp.destination_service_namespace = S("default");
    tcp.opened = true;
    tcp.sent_bytes = 100;
    tele_record_tcp(f.w, &tcp);
    tcp.opened = false;
    tcp.closed = true;
    tcp.sent_bytes = 20;
    tcp.received_bytes = 7;
    tele_record_tcp(f.w, &tcp);
    fx_finish(&f);

    buf_t out = BUF_INIT;
    tele_render_prometheus(f.t, &out);
    const char *p = out.data;
    const char *dst_common =
        "reporter=\"destination\",source_workload=\"unknown\",source_workload_namespace=\"unknown\","
        "source_principal=\"unknown\",source_app=\"unknown\",source_version=\"unknown\",source_cluster=\"unknown\","
        "source_canonical_service=\"unknown\",source_canonical_revision=\"unknown\","
        "destination_workload=\"productpage-v1\",destination_workload_namespace=\"default\","
        "destination_principal=\"unknown\",destination_app=\"productpage\",destination_version=\"v1\","
        "destination_service=\"reviews.default.svc.cluster.local\",destination_service_name=\"reviews\","
        "destination_service_namespace=\"default\",destination_cluster=\"Kubernetes\","
        "destination_canonical_service=\"productpage\",destination_canonical_revision=\"v1\",";
    char labels[2048];
    snprintf(labels, sizeof(labels),
             "%srequest_protocol=\"http\",response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
             "connection_security_policy=\"none\"",
             dst_common);
    assert_series_line(p, "istio_requests_total", labels, "", "2");
    snprintf(labels, sizeof(labels),
             "%srequest_protocol=\"http\",response_code=\"503\",grpc_response_status=\"\","
             "response_flags=\"UF,URX\",connection_security_policy=\"none\"",
             dst_common);
    assert_series_line(p, "istio_requests_total", labels, "", "1");
    const char *src_no_peer =
        "reporter=\"source\",source_workload=\"productpage-v1\",source_workload_namespace=\"default\","
        "source_principal=\"unknown\",source_app=\"productpage\",source_version=\"v1\",source_cluster=\"Kubernetes\","
        "source_canonical_service=\"productpage\",source_canonical_revision=\"v1\",destination_workload=\"unknown\","
        "destination_workload_namespace=\"default\",destination_principal=\"unknown\",destination_app=\"reviews\","
        "destination_version=\"v3\",destination_service=\"reviews.default.svc.cluster.local\","
        "destination_service_name=\"reviews\",destination_service_namespace=\"default\","
        "destination_cluster=\"unknown\",destination_canonical_service=\"reviews\","
        "destination_canonical_revision=\"v3\",request_protocol=\"http\",response_code=\"0\","
        "grpc_response_status=\"\",response_flags=\"DC\",connection_security_policy=\"unknown\"";
    assert_series_line(p, "istio_requests_total", src_no_peer, "", "1");
    /* exactly three request series */
    size_t n = 0;
    for (const char *q = p; (q = strstr(q, "\nistio_requests_total{")) != NULL; q++)
        n++;
    assert_int_equal(n, 3);

    snprintf(labels, sizeof(labels),
             "%srequest_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"none\"", dst_common);
    assert_non_null(strstr(p, "# TYPE istio_tcp_connections_opened_total counter\n"));
    assert_series_line(p, "istio_tcp_connections_opened_total", labels, "", "1");
    assert_series_line(p, "istio_tcp_connections_closed_total", labels, "", "1");
    assert_series_line(p, "istio_tcp_sent_bytes_total", labels, "", "120");
    assert_series_line(p, "istio_tcp_received_bytes_total", labels, "", "7");
    buf_dispose(&out);
    fx_close(&f);
}


/* Mutual TLS: the principals are the handshake's SPIFFE ids, and the destination side says mutual_tls. */
static void test_principals(void **state)
{
    (void)state;
    fixture_t f;
    fx_self_principal = "spiffe://cluster.local/ns/default/sa/productpage";
    fx_open(&f, NULL, 0, true);
    fx_self_principal = NULL;
    /* destination side, over mTLS, with and without the peer's metadata; a plaintext one stays apart */
    tele_request_t r = base_request(TELE_DESTINATION, NULL);
    r.mtls = true;
    r.peer_principal = S("spiffe://cluster.local/ns/shop/sa/reviews");
    r.self_principal = S("spiffe://cluster.local/ns/default/sa/productpage");
    tele_record(f.w, &r);
    tele_record(f.w, &r);
    tele_request_t plain = base_request(TELE_DESTINATION, NULL);
    tele_record(f.w, &plain);
    /* source side over mTLS: our principal is the source, the upstream's the destination */
    tele_request_t s = base_request(TELE_SOURCE, NULL);
    s.mtls = true;
    s.peer_principal = S("spiffe://cluster.local/ns/shop/sa/reviews");
    tele_record(f.w, &s);
    /* a tunnel over mTLS */
    tele_tcp_t tcp = {0};
    tcp.reporter = TELE_DESTINATION;
    tcp.destination_service = S("reviews.default.svc.cluster.local");
    tcp.destination_service_name = S("reviews");
    tcp.destination_service_namespace = S("default");
    tcp.mtls = true;
    tcp.peer_principal = S("spiffe://cluster.local/ns/shop/sa/reviews");
    tcp.opened = true;
    tele_record_tcp(f.w, &tcp);
    fx_finish(&f);

    buf_t out = BUF_INIT;
    tele_render_prometheus(f.t, &out);
    const char *p = out.data;
    const char *mtls_dst = "reporter=\"destination\",source_workload=\"unknown\",source_workload_namespace=\"unknown\","
                           "source_principal=\"spiffe://cluster.local/ns/shop/sa/reviews\",";
    const char *self_dst = "destination_principal=\"spiffe://cluster.local/ns/default/sa/productpage\"";
    /* the two mTLS requests share a series; the plaintext one has unknown principals and none */
    size_t mtls_series = 0, plain_series = 0;
    for (const char *q = p; (q = strstr(q, "\nistio_requests_total{")) != NULL; q++) {
        const char *end = strchr(q + 1, '\n');
        char line[4096];
        size_t n = end != NULL ? (size_t)(end - q) : strlen(q);
        snprintf(line, sizeof line, "%.*s", (int)n, q + 1);
        if (strstr(line, "reporter=\"destination\"") == NULL)
            continue;
        if (strstr(line, "connection_security_policy=\"mutual_tls\"") != NULL) {
            assert_non_null(strstr(line, mtls_dst));
            assert_non_null(strstr(line, self_dst));
            assert_non_null(strstr(line, "} 2"));
            mtls_series++;
        } else {
            assert_non_null(strstr(line, "source_principal=\"unknown\""));
            assert_non_null(strstr(line, "destination_principal=\"unknown\""));
            assert_non_null(strstr(line, "connection_security_policy=\"none\"} 1"));
            plain_series++;
        }
    }
    assert_int_equal(mtls_series, 1);
    assert_int_equal(plain_series, 1);
    /* source side: ours is the source, the upstream's the destination; Istio's source reporter says unknown */
    const char *src = strstr(p, "\nistio_requests_total{reporter=\"source\"");
    assert_non_null(src);
    const char *src_end = strchr(src + 1, '\n');
    char line[4096];
    snprintf(line, sizeof line, "%.*s", (int)(src_end - src), src + 1);
    assert_non_null(strstr(line, "source_principal=\"spiffe://cluster.local/ns/default/sa/productpage\""));
    assert_non_null(strstr(line, "destination_principal=\"spiffe://cluster.local/ns/shop/sa/reviews\""));
    assert_non_null(strstr(line, "connection_security_policy=\"unknown\""));
    const char *tcp_line = strstr(p, "\nistio_tcp_connections_opened_total{");
    assert_non_null(tcp_line);
    snprintf(line, sizeof line, "%.*s", (int)(strchr(tcp_line + 1, '\n') - tcp_line), tcp_line + 1);
    assert_non_null(strstr(line, "source_principal=\"spiffe://cluster.local/ns/shop/sa/reviews\""));
    assert_non_null(strstr(line, "connection_security_policy=\"mutual_tls\""));
    buf_dispose(&out);
    fx_close(&f);
}

static void test_label_escaping_and_cut(void **state)
{
    (void)state;
    fixture_t f;
    fx_open(&f, NULL, 0, true);
    tele_request_t r = base_request(TELE_DESTINATION, NULL);
    r.destination_service = S("we\"ird\\svc\nname");
    char longname[600];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    r.destination_service_name = S(longname);
    r.destination_service_namespace = S("ns\xff");
    tele_record(f.w, &r);
    tele_record(f.w, &r);
    fx_finish(&f);
    buf_t out = BUF_INIT;
    tele_render_prometheus(f.t, &out);
    assert_non_null(strstr(out.data, "destination_service=\"we\\\"ird\\\\svc\\nname\""));
    char want[TELE_LABEL_MAX + 64];
    snprintf(want, sizeof(want), "destination_service_name=\"%.*s\",", TELE_LABEL_MAX, longname);
    assert_non_null(strstr(out.data, want));
    assert_non_null(strstr(out.data, "destination_service_namespace=\"ns?\""));
    /* one series, counted twice */
    assert_non_null(strstr(out.data, "connection_security_policy=\"none\"} 2\n"));
    buf_dispose(&out);
    fx_close(&f);
}

static void test_queue_limit_drops(void **state)
{
    (void)state;
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    tc.trace_id[15] = 1;
    tc.span_id[7] = 2;
    tc.sampled = 1;
    /*
     * A 4 KiB ring (the smallest) and no exporter draining it: it takes a
     * few records, the rest are dropped and counted; metrics are kept.
     * Room in the queue for two metric batches of one series (about 540
     * bytes each), not three.
     */
    fixture_t f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    f.self = self_info();
    tele_opts_t o = {0};
    o.otlp_host = "127.0.0.1";
    o.otlp_port = 9;
    o.flush_interval_ms = 60000;
    o.max_queue_bytes = 1100;
    o.ring_bytes = 1;
    o.access_log = true;
    o.self = &f.self;
    o.service_name = "productpage.default";
    f.t = tele_create(&o);
    f.w = tele_worker_create(f.t, &f.loop);
    peer_info_t reviews = reviews_info();
    tele_request_t r = base_request(TELE_SOURCE, &reviews);
    r.trace = &tc;
    for (int i = 0; i < 40; i++)
        tele_record(f.w, &r);
    tele_stats_t st;
    tele_get_stats(f.t, &st);
    assert_true(st.spans_dropped > 0 && st.spans_dropped < 40);
    assert_int_equal(st.logs_dropped, st.spans_dropped);
    assert_true(st.queue_bytes > 0 && st.queue_bytes <= 4096); /* what the ring holds */
    size_t ring_fill = st.queue_bytes;
    tele_worker_flush(f.w);
    tele_get_stats(f.t, &st);
    assert_int_equal(st.metric_batches_dropped, 0);
    assert_true(st.queue_bytes > ring_fill && st.queue_bytes <= ring_fill + 1100);
    tele_record(f.w, &r);
    tele_worker_flush(f.w);
    tele_record(f.w, &r);
    tele_worker_flush(f.w);
    tele_get_stats(f.t, &st);
    assert_int_equal(st.metric_batches_dropped, 1);
    fx_finish(&f);
    /* without an exporter thread, what the ring held is dropped at stop: every record is accounted for */
    tele_get_stats(f.t, &st);
    assert_int_equal(st.spans_dropped, 42);
    assert_int_equal(st.logs_dropped, 42);
    assert_int_equal(st.queue_bytes, 0);
    buf_t out = BUF_INIT;
    tele_render_prometheus(f.t, &out);
    assert_has_line(out.data, "outrider_proxy_telemetry_dropped_total{signal=\"traces\"} 42");
    assert_has_line(out.data, "outrider_proxy_telemetry_dropped_total{signal=\"logs\"} 42");
    assert_has_line(out.data, "outrider_proxy_telemetry_dropped_total{signal=\"metrics\"} 1");
    /* the two queued metric batches were folded at stop */
    assert_series_line(out.data, "istio_requests_total", SRC_LABELS, "", "41");
    buf_dispose(&out);
    fx_close(&f);
}

static const Opentelemetry__Proto__Common__V1__AnyValue *attr(Opentelemetry__Proto__Common__V1__KeyValue **kv, size_t n,
                                                              const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i]->key, key) == 0)
            return kv[i]->value;
    return NULL;
}

static const char *attr_str(Opentelemetry__Proto__Common__V1__KeyValue **kv, size_t n, const char *key)
{
    const Opentelemetry__Proto__Common__V1__AnyValue *v = attr(kv, n, key);
    if (v == NULL || v->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
        return NULL;
    return v->string_value;
}

static int64_t attr_int(Opentelemetry__Proto__Common__V1__KeyValue **kv, size_t n, const char *key)
{
    const Opentelemetry__Proto__Common__V1__AnyValue *v = attr(kv, n, key);
    if (v == NULL || v->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE)
        return -1;
    return v->int_value;
}

static void test_otlp_traces_and_logs(void **state)
{
    (void)state;
    peer_info_t self = self_info(), reviews = reviews_info();
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    for (int i = 0; i < 16; i++)
        tc.trace_id[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 8; i++) {
        tc.span_id[i] = (uint8_t)(0x10 + i);
        tc.parent_id[i] = (uint8_t)(0x20 + i);
    }
    tc.has_parent = true;
    tc.sampled = 1;
    strcpy(tc.request_id, "req-123");
    tc.request_id_len = 7;

    tele_rec_t recs[2];
    buf_t strings = BUF_INIT;
    tele_request_t r = base_request(TELE_SOURCE, &reviews);
    r.trace = &tc;
    r.response_code = 503;
    r.request_bytes = 12;
    r.response_bytes = 345;
    tele_rec_fill(&recs[0], &strings, &r);
    recs[0].has_span = recs[0].has_log = true;
    tele_request_t d = base_request(TELE_DESTINATION, NULL);
    d.trace = &tc;
    d.duration_ns = 2500000;
    tele_rec_fill(&recs[1], &strings, &d);
    recs[1].has_span = true;
    recs[1].has_log = false;

    tele_resource_t res = {&self, "productpage.default", "productpage-v1-abc.default"};
    buf_t out = BUF_INIT;
    size_t n = 0;
    assert_int_equal(tele_otlp_traces(&res, recs, 2, strings.data, &out, &n), 0);
    assert_int_equal(n, 2);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *tr =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, out.len,
                                                                                         (uint8_t *)out.data);
    assert_non_null(tr);
    assert_int_equal(tr->n_resource_spans, 1);
    Opentelemetry__Proto__Resource__V1__Resource *rsrc = tr->resource_spans[0]->resource;
    assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, "service.name"), "productpage.default");
    assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, "service.namespace"), "default");
    assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, "service.instance.id"),
                        "productpage-v1-abc.default");
    assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, "k8s.pod.name"), "productpage-v1-abc");
    assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, "k8s.deployment.name"), "productpage-v1");
    assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, "telemetry.sdk.name"), "outrider");
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = tr->resource_spans[0]->scope_spans[0];
    assert_int_equal(ss->n_spans, 2);
    Opentelemetry__Proto__Trace__V1__Span *c = ss->spans[0], *sv = ss->spans[1];
    assert_int_equal(c->trace_id.len, 16);
    assert_memory_equal(c->trace_id.data, tc.trace_id, 16);
    assert_int_equal(c->span_id.len, 8);
    assert_memory_equal(c->span_id.data, tc.span_id, 8);
    assert_int_equal(c->parent_span_id.len, 8);
    assert_memory_equal(c->parent_span_id.data, tc.parent_id, 8);
    assert_string_equal(c->name, "reviews.default.svc.cluster.local:9080/*");
    assert_int_equal(c->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT);
    assert_int_equal(sv->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
    assert_int_equal(c->start_time_unix_nano, r.start_unix_ns);
    assert_int_equal(c->end_time_unix_nano, r.start_unix_ns + r.duration_ns);
    assert_int_equal(sv->end_time_unix_nano, d.start_unix_ns + 2500000);
    assert_non_null(c->status);
    assert_int_equal(c->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
    assert_true(sv->status == NULL ||
                sv->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET);
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "http.method"), "GET");
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "http.request.method"), "GET");
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "http.url"), "http://reviews:9080/reviews/1");
    assert_int_equal(attr_int(c->attributes, c->n_attributes, "http.status_code"), 503);
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "upstream_cluster"),
                        "outbound|9080||reviews.default.svc.cluster.local");
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "guid:x-request-id"), "req-123");
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "peer.service"), "reviews");
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "network.peer.address"), "127.0.0.1");
    assert_int_equal(attr_int(c->attributes, c->n_attributes, "network.peer.port"), 19081);
    assert_int_equal(attr_int(c->attributes, c->n_attributes, "request_size"), 12);
    assert_int_equal(attr_int(c->attributes, c->n_attributes, "response_size"), 345);
    assert_string_equal(attr_str(c->attributes, c->n_attributes, "istio.canonical_service"), "productpage");
    assert_string_equal(attr_str(sv->attributes, sv->n_attributes, "peer.address"), "127.0.0.1:40000");
    assert_int_equal(attr_int(sv->attributes, sv->n_attributes, "http.status_code"), 200);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(tr, NULL);

    out.len = 0;
    assert_int_equal(tele_otlp_logs(&res, recs, 2, strings.data, &out, &n), 0);
    assert_int_equal(n, 1);
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *lr =
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(NULL, out.len,
                                                                                       (uint8_t *)out.data);
    assert_non_null(lr);
    Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = lr->resource_logs[0]->scope_logs[0];
    assert_int_equal(sl->n_log_records, 1);
    Opentelemetry__Proto__Logs__V1__LogRecord *l = sl->log_records[0];
    assert_int_equal(l->time_unix_nano, r.start_unix_ns);
    assert_int_equal(l->severity_number, OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO);
    assert_int_equal(l->trace_id.len, 16);
    assert_memory_equal(l->trace_id.data, tc.trace_id, 16);
    assert_int_equal(l->span_id.len, 8);
    assert_memory_equal(l->span_id.data, tc.span_id, 8);
    assert_int_equal(l->body->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    assert_string_equal(l->body->string_value,
                        "[2023-11-14T22:13:20.000Z] \"GET /reviews/1 HTTP/1.1\" 503 - 12 345 1 - \"-\" \"curl/8\" "
                        "\"req-123\" \"reviews:9080\" \"127.0.0.1:19081\" "
                        "outbound|9080||reviews.default.svc.cluster.local 127.0.0.1:40000 -");
    assert_string_equal(attr_str(l->attributes, l->n_attributes, "method"), "GET");
    assert_string_equal(attr_str(l->attributes, l->n_attributes, "path"), "/reviews/1");
    assert_string_equal(attr_str(l->attributes, l->n_attributes, "authority"), "reviews:9080");
    assert_int_equal(attr_int(l->attributes, l->n_attributes, "response_code"), 503);
    assert_int_equal(attr_int(l->attributes, l->n_attributes, "duration"), 1);
    assert_int_equal(attr_int(l->attributes, l->n_attributes, "bytes_sent"), 345);
    assert_string_equal(attr_str(l->attributes, l->n_attributes, "x_request_id"), "req-123");
    assert_string_equal(attr_str(l->attributes, l->n_attributes, "upstream_host"), "127.0.0.1:19081");
    opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(lr, NULL);

    /* nothing to encode */
    recs[0].has_span = recs[1].has_span = false;
    assert_int_equal(tele_otlp_traces(&res, recs, 2, strings.data, &out, &n), -1);
    assert_int_equal(n, 0);
    buf_dispose(&out);
    buf_dispose(&strings);
}

/* Every field of every record of a logs request, decoded back with protobuf-c. */
static void test_otlp_logs_every_field(void **state)
{
    (void)state;
    peer_info_t self = self_info(), reviews = reviews_info();
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    for (int i = 0; i < 16; i++)
        tc.trace_id[i] = (uint8_t)(0x30 + i);
    for (int i = 0; i < 8; i++)
        tc.span_id[i] = (uint8_t)(0x50 + i);
    strcpy(tc.request_id, "rid-9");
    tc.request_id_len = 5;

    enum { NREC = 4 };
    tele_rec_t recs[NREC];
    buf_t strings = BUF_INIT;
    /* 0: traced and sampled, leap day, 3-digit ms */
    tele_request_t r0 = base_request(TELE_SOURCE, &reviews);
    r0.trace = &tc;
    r0.start_unix_ns = 1709251199999000000ull; /* 2024-02-29T23:59:59.999Z */
    r0.duration_ns = 1234567890;
    r0.request_bytes = 7;
    r0.response_bytes = 123456789012ull;
    r0.response_code = 503;
    r0.response_flags = TELE_RF_UF;
    r0.route_name = S("default");
    tele_rec_fill(&recs[0], &strings, &r0);
    recs[0].has_log = recs[0].has_span = true;
    /* 1: not exported as a log */
    tele_request_t r1 = base_request(TELE_DESTINATION, NULL);
    tele_rec_fill(&recs[1], &strings, &r1);
    /* 2: traced but not sampled; empty strings become dashes in the line and are left out of the attributes */
    tele_request_t r2 = base_request(TELE_DESTINATION, NULL);
    r2.trace = &tc;
    r2.start_unix_ns = 86400000000000ull + 5000000ull; /* 1970-01-02T00:00:00.005Z */
    r2.duration_ns = 0;
    r2.user_agent = STR_NULL;
    r2.protocol = STR_NULL;
    r2.upstream_host = STR_NULL;
    r2.destination_service = STR_NULL;
    r2.response_code = 0;
    tele_rec_fill(&recs[2], &strings, &r2);
    recs[2].has_log = true;
    /* 3: no trace; over mutual TLS (the principals are attributes) */
    tele_request_t r3 = base_request(TELE_SOURCE, &reviews);
    r3.start_unix_ns = 4102444800000000000ull; /* 2100-01-01T00:00:00.000Z */
    r3.mtls = true;
    r3.self_principal = S("spiffe://cluster.local/ns/default/sa/productpage");
    r3.peer_principal = S("spiffe://cluster.local/ns/default/sa/reviews");
    tele_rec_fill(&recs[3], &strings, &r3);
    recs[3].has_log = true;

    static const char *const lines[NREC] = {
        "[2024-02-29T23:59:59.999Z] \"GET /reviews/1 HTTP/1.1\" 503 UF 7 123456789012 1234 - \"-\" \"curl/8\" "
        "\"rid-9\" \"reviews:9080\" \"127.0.0.1:19081\" outbound|9080||reviews.default.svc.cluster.local "
        "127.0.0.1:40000 default",
        NULL,
        "[1970-01-02T00:00:00.005Z] \"GET /reviews/1 -\" 0 - 0 0 0 - \"-\" \"-\" \"rid-9\" \"reviews:9080\" \"-\" "
        "outbound|9080||reviews.default.svc.cluster.local 127.0.0.1:40000 -",
        "[2100-01-01T00:00:00.000Z] \"GET /reviews/1 HTTP/1.1\" 200 - 0 0 1 - \"-\" \"curl/8\" \"-\" "
        "\"reviews:9080\" \"127.0.0.1:19081\" outbound|9080||reviews.default.svc.cluster.local 127.0.0.1:40000 -",
    };
    for (int i = 0; i < NREC; i++) {
        if (lines[i] == NULL)
            continue;
        buf_t line = BUF_INIT;
        tele_access_line(&recs[i], strings.data, &line);
        assert_string_equal(line.data, lines[i]);
        buf_dispose(&line);
    }

    tele_resource_t res = {&self, "productpage.default", "productpage-v1-abc.default"};
    buf_t out = BUF_INIT;
    buf_append_str(&out, "prefix");
    size_t n = 0;
    assert_int_equal(tele_otlp_logs(&res, recs, NREC, strings.data, &out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out.data, "prefix", 6);
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req =
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(NULL, out.len - 6,
                                                                                       (uint8_t *)out.data + 6);
    assert_non_null(req);
    assert_int_equal(req->n_resource_logs, 1);
    Opentelemetry__Proto__Logs__V1__ResourceLogs *rl = req->resource_logs[0];
    assert_string_equal(rl->schema_url, "");

    Opentelemetry__Proto__Resource__V1__Resource *rsrc = rl->resource;
    assert_non_null(rsrc);
    static const char *const res_attrs[][2] = {
        {"service.name", "productpage.default"},
        {"service.namespace", "default"},
        {"service.version", "v1"},
        {"service.instance.id", "productpage-v1-abc.default"},
        {"k8s.pod.name", "productpage-v1-abc"},
        {"k8s.namespace.name", "default"},
        {"k8s.deployment.name", "productpage-v1"},
        {"telemetry.sdk.name", "outrider"},
        {"telemetry.sdk.language", "c"},
        {"telemetry.sdk.version", OUTRIDER_VERSION},
    };
    assert_int_equal(rsrc->n_attributes, sizeof(res_attrs) / sizeof(res_attrs[0]));
    for (size_t i = 0; i < rsrc->n_attributes; i++) {
        assert_string_equal(rsrc->attributes[i]->key, res_attrs[i][0]);
        assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, res_attrs[i][0]), res_attrs[i][1]);
    }

    assert_int_equal(rl->n_scope_logs, 1);
    Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = rl->scope_logs[0];
    assert_non_null(sl->scope);
    assert_string_equal(sl->scope->name, "outrider");
    assert_string_equal(sl->scope->version, OUTRIDER_VERSION);
    assert_int_equal(sl->n_log_records, 3);

    const tele_request_t *reqs[NREC] = {&r0, &r1, &r2, &r3};
    size_t k = 0;
    for (int i = 0; i < NREC; i++) {
        if (!recs[i].has_log)
            continue;
        const tele_request_t *q = reqs[i];
        Opentelemetry__Proto__Logs__V1__LogRecord *l = sl->log_records[k++];
        assert_int_equal(l->time_unix_nano, q->start_unix_ns);
        assert_int_equal(l->observed_time_unix_nano, q->start_unix_ns + q->duration_ns);
        assert_int_equal(l->severity_number, OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO);
        assert_string_equal(l->severity_text, "INFO");
        assert_non_null(l->body);
        assert_int_equal(l->body->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
        assert_string_equal(l->body->string_value, lines[i]);
        assert_int_equal(l->dropped_attributes_count, 0);
        assert_string_equal(l->event_name, "");
        if (q->trace != NULL) {
            assert_int_equal(l->trace_id.len, 16);
            assert_memory_equal(l->trace_id.data, tc.trace_id, 16);
            assert_int_equal(l->span_id.len, 8);
            assert_memory_equal(l->span_id.data, tc.span_id, 8);
            assert_int_equal(l->flags, recs[i].has_span ? 1 : 0);
        } else {
            assert_int_equal(l->trace_id.len, 0);
            assert_int_equal(l->span_id.len, 0);
            assert_int_equal(l->flags, 0);
        }

        /* string attributes: present exactly when the value is not empty, in this order */
        const char *dest_svc = q->destination_service.len ? "reviews.default.svc.cluster.local" : NULL;
        const char *rid = q->trace != NULL ? "rid-9" : NULL;
        int out_ = q->reporter == TELE_SOURCE;
        const char *peer_w = q->peer != NULL ? q->peer->workload : "unknown";
        const char *peer_ns = q->peer != NULL ? q->peer->namespace : "unknown";
        struct {
            const char *key, *s;
            int64_t i;
            bool is_int;
        } want[] = {
            {"reporter", q->reporter == TELE_SOURCE ? "source" : "destination", 0, false},
            {"method", "GET", 0, false},
            {"path", "/reviews/1", 0, false},
            {"authority", "reviews:9080", 0, false},
            {"protocol", q->protocol.len ? "HTTP/1.1" : NULL, 0, false},
            {"response_code", NULL, q->response_code, true},
            {"response_flags", "-", 0, false},
            {"duration", NULL, (int64_t)(q->duration_ns / 1000000u), true},
            {"bytes_received", NULL, (int64_t)q->request_bytes, true},
            {"bytes_sent", NULL, (int64_t)q->response_bytes, true},
            {"upstream_host", q->upstream_host.len ? "127.0.0.1:19081" : NULL, 0, false},
            {"upstream_cluster", "outbound|9080||reviews.default.svc.cluster.local", 0, false},
            {"downstream_remote_address", "127.0.0.1:40000", 0, false},
            {"user_agent", q->user_agent.len ? "curl/8" : NULL, 0, false},
            {"x_request_id", rid, 0, false},
            {"route_name", q->route_name.len ? "default" : NULL, 0, false},
            {"destination_service", dest_svc, 0, false},
            /* the mutual TLS identities: this proxy's is the source on outbound */
            {"source_principal", q->mtls ? (out_ ? q->self_principal.ptr : q->peer_principal.ptr) : NULL, 0, false},
            {"destination_principal", q->mtls ? (out_ ? q->peer_principal.ptr : q->self_principal.ptr) : NULL, 0,
             false},
            /* both sides: this proxy (productpage-v1) and the peer's metadata (reviews-v2, or none) */
            {"source_workload", out_ ? "productpage-v1" : peer_w, 0, false},
            {"source_namespace", out_ ? "default" : peer_ns, 0, false},
            {"destination_workload", out_ ? peer_w : "productpage-v1", 0, false},
            {"destination_namespace", out_ ? peer_ns : "default", 0, false},
        };
        if (i == 0)
            want[6].s = "UF";
        size_t a = 0;
        for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
            if (!want[w].is_int && want[w].s == NULL) {
                assert_null(attr(l->attributes, l->n_attributes, want[w].key));
                continue;
            }
            assert_true(a < l->n_attributes);
            assert_string_equal(l->attributes[a]->key, want[w].key);
            assert_non_null(l->attributes[a]->value);
            if (want[w].is_int) {
                assert_int_equal(l->attributes[a]->value->value_case,
                                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
                assert_int_equal(l->attributes[a]->value->int_value, want[w].i);
            } else {
                assert_int_equal(l->attributes[a]->value->value_case,
                                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
                assert_string_equal(l->attributes[a]->value->string_value, want[w].s);
            }
            a++;
        }
        assert_int_equal(l->n_attributes, a);
    }
    opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(req, NULL);
    buf_dispose(&out);
    buf_dispose(&strings);
}

/* Every field of every span of a traces request, decoded back with protobuf-c. */
static void test_otlp_traces_every_field(void **state)
{
    (void)state;
    peer_info_t self = self_info(), reviews = reviews_info();
    trace_ctx_t tc, tc2;
    memset(&tc, 0, sizeof(tc));
    for (int i = 0; i < 16; i++)
        tc.trace_id[i] = (uint8_t)(0x70 + i);
    for (int i = 0; i < 8; i++) {
        tc.span_id[i] = (uint8_t)(0x90 + i);
        tc.parent_id[i] = (uint8_t)(0xb0 + i);
    }
    tc.has_trace = tc.has_parent = true;
    tc.sampled = 1;
    strcpy(tc.request_id, "rid-1");
    tc.request_id_len = 5;
    strcpy(tc.tracestate, "vendor=abc");
    tc.tracestate_len = 10;
    tc2 = tc;
    tc2.has_parent = false; /* a root span */
    tc2.tracestate_len = 0;
    tc2.request_id_len = 0;
    tc2.span_id[0] = 0x01;

    enum { NREC = 5 };
    tele_rec_t recs[NREC];
    buf_t strings = BUF_INIT;
    /* 0: CLIENT with a parent and tracestate, 503, retried */
    tele_request_t r0 = base_request(TELE_SOURCE, &reviews);
    r0.trace = &tc;
    r0.response_code = 503;
    r0.request_bytes = 17;
    r0.response_bytes = 9876543210ull;
    r0.attempts = 3;
    r0.route_name = S("reviews-route");
    r0.response_flags = TELE_RF_UF;
    tele_rec_fill(&recs[0], &strings, &r0);
    recs[0].has_span = true;
    /* 1: SERVER root span, 200, no span name (the method is the name) */
    tele_request_t r1 = base_request(TELE_DESTINATION, NULL);
    r1.trace = &tc2;
    r1.span_name = STR_NULL;
    r1.upstream_host = S("127.0.0.1:9080");
    tele_rec_fill(&recs[1], &strings, &r1);
    recs[1].has_span = true;
    /* 2: a span without a trace: not exported */
    tele_request_t r2 = base_request(TELE_SOURCE, &reviews);
    tele_rec_fill(&recs[2], &strings, &r2);
    recs[2].has_span = true;
    /* 3: traced but not a span: not exported */
    tele_request_t r3 = base_request(TELE_SOURCE, &reviews);
    r3.trace = &tc;
    tele_rec_fill(&recs[3], &strings, &r3);
    /* 4: CLIENT root span to an unknown peer ([v6]:port), no response, few strings */
    tele_request_t r4 = base_request(TELE_SOURCE, NULL);
    r4.trace = &tc2;
    r4.response_code = 0;
    r4.destination_service_name = STR_NULL;
    r4.upstream_host = S("[::1]:8080");
    r4.user_agent = STR_NULL;
    r4.protocol = STR_NULL;
    r4.upstream_cluster = STR_NULL;
    r4.start_unix_ns = 0;
    r4.duration_ns = 0;
    r4.response_bytes = 1;
    tele_rec_fill(&recs[4], &strings, &r4);
    recs[4].has_span = true;

    tele_resource_t res = {&self, "productpage.default", "productpage-v1-abc.default"};
    buf_t out = BUF_INIT;
    buf_append_str(&out, "prefix");
    size_t n = 0;
    assert_int_equal(tele_otlp_traces(&res, recs, NREC, strings.data, &out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out.data, "prefix", 6);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, out.len - 6,
                                                                                         (uint8_t *)out.data + 6);
    assert_non_null(req);

    assert_int_equal(req->n_resource_spans, 1);
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = req->resource_spans[0];
    assert_string_equal(rs->schema_url, "");
    Opentelemetry__Proto__Resource__V1__Resource *rsrc = rs->resource;
    assert_non_null(rsrc);
    static const char *const res_attrs[][2] = {
        {"service.name", "productpage.default"},
        {"service.namespace", "default"},
        {"service.version", "v1"},
        {"service.instance.id", "productpage-v1-abc.default"},
        {"k8s.pod.name", "productpage-v1-abc"},
        {"k8s.namespace.name", "default"},
        {"k8s.deployment.name", "productpage-v1"},
        {"telemetry.sdk.name", "outrider"},
        {"telemetry.sdk.language", "c"},
        {"telemetry.sdk.version", OUTRIDER_VERSION},
    };
    assert_int_equal(rsrc->n_attributes, sizeof(res_attrs) / sizeof(res_attrs[0]));
    for (size_t i = 0; i < rsrc->n_attributes; i++) {
        assert_string_equal(rsrc->attributes[i]->key, res_attrs[i][0]);
        assert_string_equal(attr_str(rsrc->attributes, rsrc->n_attributes, res_attrs[i][0]), res_attrs[i][1]);
    }
    assert_int_equal(rs->n_scope_spans, 1);
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[0];
    assert_non_null(ss->scope);
    assert_string_equal(ss->scope->name, "outrider");
    assert_string_equal(ss->scope->version, OUTRIDER_VERSION);
    assert_int_equal(ss->scope->n_attributes, 0);
    assert_string_equal(ss->schema_url, "");
    assert_int_equal(ss->n_spans, 3);

    static const int exported[] = {0, 1, 4};
    const tele_request_t *reqs[NREC] = {&r0, &r1, &r2, &r3, &r4};
    for (size_t k = 0; k < 3; k++) {
        int i = exported[k];
        const tele_request_t *q = reqs[i];
        const trace_ctx_t *t = q->trace;
        bool client = q->reporter == TELE_SOURCE;
        Opentelemetry__Proto__Trace__V1__Span *sp = ss->spans[k];
        assert_int_equal(sp->trace_id.len, 16);
        assert_memory_equal(sp->trace_id.data, t->trace_id, 16);
        assert_int_equal(sp->span_id.len, 8);
        assert_memory_equal(sp->span_id.data, t->span_id, 8);
        if (t->has_parent) {
            assert_int_equal(sp->parent_span_id.len, 8);
            assert_memory_equal(sp->parent_span_id.data, t->parent_id, 8);
        } else {
            assert_int_equal(sp->parent_span_id.len, 0);
        }
        assert_string_equal(sp->trace_state, t->tracestate_len ? "vendor=abc" : "");
        assert_int_equal(sp->flags, 1);
        assert_string_equal(sp->name, q->span_name.len ? "reviews.default.svc.cluster.local:9080/*" : "GET");
        assert_int_equal(sp->kind, client ? OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
                                          : OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
        assert_int_equal(sp->start_time_unix_nano, q->start_unix_ns);
        assert_int_equal(sp->end_time_unix_nano, q->start_unix_ns + q->duration_ns);
        assert_int_equal(sp->dropped_attributes_count, 0);
        assert_int_equal(sp->n_events, 0);
        assert_int_equal(sp->n_links, 0);
        assert_non_null(sp->status);
        assert_string_equal(sp->status->message, "");
        assert_int_equal(sp->status->code,
                         q->response_code >= 500 || q->response_code == 0
                             ? OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR
                             : OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET);

        const char *ua = q->user_agent.len ? "curl/8" : NULL;
        const char *cluster = q->upstream_cluster.len ? "outbound|9080||reviews.default.svc.cluster.local" : NULL;
        const char *uhost = i == 0 ? "127.0.0.1:19081" : i == 1 ? "127.0.0.1:9080" : "[::1]:8080";
        const char *peer_svc = i == 0 ? "reviews" : NULL;
        struct {
            const char *key, *s;
            int64_t i;
            bool is_int;
        } want[] = {
            {"http.method", "GET", 0, false},
            {"http.request.method", "GET", 0, false},
            {"http.url", "http://reviews:9080/reviews/1", 0, false},
            {"url.full", "http://reviews:9080/reviews/1", 0, false},
            {"url.path", "/reviews/1", 0, false},
            {"http.protocol", q->protocol.len ? "HTTP/1.1" : NULL, 0, false},
            {"http.status_code", NULL, q->response_code, true},
            {"http.response.status_code", NULL, q->response_code, true},
            {"user_agent", ua, 0, false},
            {"user_agent.original", ua, 0, false},
            {"guid:x-request-id", t->request_id_len ? "rid-1" : NULL, 0, false},
            {"request_size", NULL, (int64_t)q->request_bytes, true},
            {"response_size", NULL, (int64_t)q->response_bytes, true},
            {"response_flags", i == 0 ? "UF" : "-", 0, false},
            {"component", "proxy", 0, false},
            {"upstream_cluster", cluster, 0, false},
            {"upstream_cluster.name", cluster, 0, false},
            {"upstream_host", uhost, 0, false},
            {"route_name", q->route_name.len ? "reviews-route" : NULL, 0, false},
            {"upstream_attempts", NULL, 3, q->attempts > 1},
            {"peer.service", peer_svc, 0, false},
            {"net.peer.name", client && peer_svc ? uhost : NULL, 0, false},
            {"peer.address", client ? NULL : "127.0.0.1:40000", 0, false},
            {"network.peer.address",
             i == 0   ? "127.0.0.1"
             : i == 1 ? "127.0.0.1"
                      : "::1",
             0, false},
            {"network.peer.port", NULL,
             i == 0   ? 19081
             : i == 1 ? 40000
                      : 8080,
             true},
            {"node_id", "sidecar~productpage-v1-abc.default", 0, false},
            {"istio.canonical_service", "productpage", 0, false},
            {"istio.canonical_revision", "v1", 0, false},
            {"istio.namespace", "default", 0, false},
            {"istio.cluster_id", "Kubernetes", 0, false},
        };
        size_t a = 0;
        for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
            if (!want[w].is_int && want[w].s == NULL) {
                assert_null(attr(sp->attributes, sp->n_attributes, want[w].key));
                continue;
            }
            assert_true(a < sp->n_attributes);
            assert_string_equal(sp->attributes[a]->key, want[w].key);
            assert_non_null(sp->attributes[a]->value);
            if (want[w].is_int) {
                assert_int_equal(sp->attributes[a]->value->value_case,
                                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
                assert_int_equal(sp->attributes[a]->value->int_value, want[w].i);
            } else {
                assert_int_equal(sp->attributes[a]->value->value_case,
                                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
                assert_string_equal(sp->attributes[a]->value->string_value, want[w].s);
            }
            a++;
        }
        assert_int_equal(sp->n_attributes, a);
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
    buf_dispose(&out);
    buf_dispose(&strings);
}

static void test_otlp_metrics(void **state)
{
    (void)state;
    peer_info_t self = self_info(), reviews = reviews_info();
    tele_request_t r = base_request(TELE_SOURCE, &reviews);
    str_t v[TELE_NLABELS];
    char code[12], flags[TELE_FLAGS_MAX];
    tele_request_labels(&r, &self, code, flags, v);
    tele_series_t series[2];
    memset(series, 0, sizeof(series));
    tele_label_list_t ll;
    tele_label_list_standard(&ll, TELE_SERIES_HTTP, v);
    series[0].labels = tele_labels_new(&ll, tele_labels_hash(&ll));
    tele_values_observe(&series[0].val, 300000, 0, 5);
    tele_values_observe(&series[0].val, 7000000, 10, 2000);
    static const uint8_t trace_id[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                         0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t span_id[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    tele_values_exemplar(&series[0].val, trace_id, span_id, 7000000, 1700000000007000000ull);
    tele_tcp_t tcp = {0};
    tcp.reporter = TELE_SOURCE;
    tcp.peer = &reviews;
    tele_tcp_labels(&tcp, &self, v);
    tele_label_list_standard(&ll, TELE_SERIES_TCP, v);
    series[1].labels = tele_labels_new(&ll, tele_labels_hash(&ll));
    series[1].val.tcp_opened = 2;
    series[1].val.tcp_sent = 99;

    tele_resource_t res = {&self, "productpage.default", "i-1"};
    buf_t out = BUF_INIT;
    size_t n = 0;
    assert_int_equal(tele_otlp_metrics(&res, series, 2, 1000, 2000, &out, &n), 0);
    assert_int_equal(n, 6); /* requests + 3 histograms, tcp opened + sent */
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *mr =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(NULL, out.len,
                                                                                             (uint8_t *)out.data);
    assert_non_null(mr);
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = mr->resource_metrics[0]->scope_metrics[0];
    assert_int_equal(sm->n_metrics, 6);
    Opentelemetry__Proto__Metrics__V1__Metric *m = sm->metrics[0];
    assert_string_equal(m->name, "istio_requests_total");
    assert_int_equal(m->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
    assert_true(m->sum->is_monotonic);
    assert_int_equal(m->sum->aggregation_temporality,
                     OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
    assert_int_equal(m->sum->n_data_points, 1);
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint *np = m->sum->data_points[0];
    assert_int_equal(np->as_int, 2);
    assert_int_equal(np->start_time_unix_nano, 1000);
    assert_int_equal(np->time_unix_nano, 2000);
    assert_int_equal(np->n_attributes, TELE_NLABELS);
    assert_string_equal(attr_str(np->attributes, np->n_attributes, "reporter"), "source");
    assert_string_equal(attr_str(np->attributes, np->n_attributes, "destination_workload"), "reviews-v2");
    assert_string_equal(attr_str(np->attributes, np->n_attributes, "response_code"), "200");

    m = sm->metrics[1];
    assert_string_equal(m->name, "istio_request_duration_milliseconds");
    assert_int_equal(m->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM);
    assert_int_equal(m->histogram->aggregation_temporality,
                     OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp = m->histogram->data_points[0];
    assert_int_equal(hp->n_explicit_bounds, 19);
    assert_true(hp->explicit_bounds[0] == 0.5 && hp->explicit_bounds[18] == 3600000);
    assert_int_equal(hp->n_bucket_counts, 20);
    assert_int_equal(hp->bucket_counts[0], 1);
    assert_int_equal(hp->bucket_counts[3], 1);
    assert_int_equal(hp->count, 2);
    assert_true(hp->sum > 7.29 && hp->sum < 7.31);
    /* the exemplar: raw ids, the duration in ms (in bucket 3, (5, 10]) and the request's end */
    assert_int_equal(hp->n_exemplars, 1);
    Opentelemetry__Proto__Metrics__V1__Exemplar *ex = hp->exemplars[0];
    assert_int_equal(ex->value_case, OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE);
    assert_true(ex->as_double == 7.0);
    assert_int_equal(ex->time_unix_nano, 1700000000007000000ull);
    assert_int_equal(ex->trace_id.len, 16);
    assert_memory_equal(ex->trace_id.data, trace_id, 16);
    assert_int_equal(ex->span_id.len, 8);
    assert_memory_equal(ex->span_id.data, span_id, 8);
    assert_int_equal(ex->n_filtered_attributes, 0);
    assert_string_equal(sm->metrics[2]->name, "istio_request_bytes");
    assert_int_equal(sm->metrics[2]->histogram->data_points[0]->n_bucket_counts, 11);
    /* only the duration histogram carries it */
    assert_int_equal(sm->metrics[2]->histogram->data_points[0]->n_exemplars, 0);
    assert_int_equal(sm->metrics[3]->histogram->data_points[0]->n_exemplars, 0);
    assert_int_equal(sm->metrics[0]->sum->data_points[0]->n_exemplars, 0);
    assert_string_equal(sm->metrics[3]->name, "istio_response_bytes");
    assert_string_equal(sm->metrics[4]->name, "istio_tcp_connections_opened_total");
    np = sm->metrics[4]->sum->data_points[0];
    assert_int_equal(np->as_int, 2);
    assert_int_equal(np->n_attributes, TELE_NLABELS - 2);
    assert_null(attr(np->attributes, np->n_attributes, "response_code"));
    assert_string_equal(attr_str(np->attributes, np->n_attributes, "request_protocol"), "tcp");
    assert_string_equal(sm->metrics[5]->name, "istio_tcp_sent_bytes_total");
    assert_int_equal(sm->metrics[5]->sum->data_points[0]->as_int, 99);
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(mr, NULL);
    free(series[0].labels);
    free(series[1].labels);
    buf_dispose(&out);
}

static void test_stop_without_endpoint_is_quick(void **state)
{
    (void)state;
    /* nothing listens on port 9: the exporter gives up at the deadline and counts */
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    tc.trace_id[0] = 1;
    tc.span_id[0] = 1;
    tc.sampled = 1;
    fixture_t f;
    fx_open(&f, "127.0.0.1", 0, true);
    tele_request_t r = base_request(TELE_DESTINATION, NULL);
    r.trace = &tc;
    tele_record(f.w, &r);
    tele_worker_destroy(f.w);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    tele_stop(f.t, 300);
    tele_stats_t st;
    tele_get_stats(f.t, &st);
    assert_true(st.export_failures > 0);
    assert_int_equal(st.spans_dropped, 1);
    assert_int_equal(st.logs_dropped, 1);
    assert_int_equal(st.metric_batches_dropped, 1);
    assert_int_equal(st.queue_bytes, 0);
    fx_close(&f);
}

/* ---- a scripted OTLP/HTTP endpoint on a thread ---- */

#define FAKE_MAX 8

typedef struct fake {
    int lfd;
    uint16_t port;
    pthread_t th;
    const char *const *responses; /* one per request; NULL ends the script */
    int n_reqs, conns;
    char heads[FAKE_MAX][1024];
    buf_t bodies[FAKE_MAX];
} fake_t;

/* Read one request; 0 ok, -1 closed or timed out. */
static int fake_read(fake_t *f, int fd, int i)
{
    buf_t in = BUF_INIT;
    char *end = NULL;
    while (end == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char tmp[4096];
        if (poll(&p, 1, 5000) <= 0)
            goto fail;
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r <= 0)
            goto fail;
        buf_append(&in, tmp, (size_t)r);
        end = strstr(in.data, "\r\n\r\n");
    }
    size_t head = (size_t)(end + 4 - in.data);
    snprintf(f->heads[i], sizeof(f->heads[i]), "%.*s", (int)head, in.data);
    const char *cl = strstr(f->heads[i], "Content-Length: ");
    size_t len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    while (in.len < head + len) {
        char tmp[4096];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r <= 0)
            goto fail;
        buf_append(&in, tmp, (size_t)r);
    }
    buf_append(&f->bodies[i], in.data + head, len);
    buf_dispose(&in);
    return 0;
fail:
    buf_dispose(&in);
    return -1;
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    while (f->responses[f->n_reqs] != NULL) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            break;
        f->conns++;
        while (f->responses[f->n_reqs] != NULL && f->n_reqs < FAKE_MAX) {
            int i = f->n_reqs;
            if (fake_read(f, fd, i) != 0)
                break;
            f->n_reqs++;
            const char *resp = f->responses[i];
            if (write(fd, resp, strlen(resp)) < 0)
                break;
            if (strstr(resp, "Connection: close") != NULL)
                break;
        }
        close(fd);
    }
    return NULL;
}

static void fake_start(fake_t *f, const char *const *responses)
{
    memset(f, 0, sizeof(*f));
    f->responses = responses;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_join(fake_t *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static void fake_dispose(fake_t *f)
{
    for (int i = 0; i < FAKE_MAX; i++)
        buf_dispose(&f->bodies[i]);
}

static void test_export_retry_and_keepalive(void **state)
{
    (void)state;
    static const char *const script[] = {
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy!",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        NULL,
    };
    fake_t srv;
    fake_start(&srv, script);
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    tc.trace_id[3] = 7;
    tc.span_id[5] = 9;
    tc.sampled = 1;

    fixture_t f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    f.self = self_info();
    tele_opts_t o = {0};
    o.otlp_host = "127.0.0.1";
    o.otlp_port = srv.port;
    o.flush_interval_ms = 60000;
    o.access_log = true;
    o.self = &f.self;
    o.service_name = "productpage.default";
    f.t = tele_create(&o);
    assert_int_equal(tele_start(f.t), 0);
    f.w = tele_worker_create(f.t, &f.loop);
    tele_request_t r = base_request(TELE_SOURCE, NULL);
    r.trace = &tc;
    tele_record(f.w, &r);
    fx_finish(&f);
    fake_join(&srv);

    tele_stats_t st;
    tele_get_stats(f.t, &st);
    assert_int_equal(srv.n_reqs, 4);
    assert_int_equal(srv.conns, 2); /* kept alive through the 503 and the chunked answer, then closed */
    assert_int_equal(st.export_failures, 1);
    assert_int_equal(st.spans_exported, 1);
    assert_int_equal(st.logs_exported, 1);
    assert_int_equal(st.metric_points_exported, 4);
    assert_int_equal(st.spans_dropped + st.logs_dropped + st.metric_batches_dropped, 0);
    assert_non_null(strstr(srv.heads[0], "POST /v1/traces HTTP/1.1\r\n"));
    assert_non_null(strstr(srv.heads[1], "POST /v1/traces HTTP/1.1\r\n"));
    assert_non_null(strstr(srv.heads[2], "POST /v1/metrics HTTP/1.1\r\n"));
    assert_non_null(strstr(srv.heads[3], "POST /v1/logs HTTP/1.1\r\n"));
    assert_non_null(strstr(srv.heads[1], "\r\nContent-Type: application/x-protobuf\r\n"));
    assert_non_null(strstr(srv.heads[1], "\r\nContent-Encoding: zstd\r\n"));
    /* the retried body is the same batch, and decodes */
    assert_int_equal(srv.bodies[0].len, srv.bodies[1].len);
    assert_memory_equal(srv.bodies[0].data, srv.bodies[1].data, srv.bodies[0].len);
    buf_t raw = BUF_INIT;
    assert_int_equal(compress_decode(COMPRESS_ZSTD, srv.bodies[1].data, srv.bodies[1].len, 1 << 20, &raw, NULL, 0),
                     COMPRESS_OK);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *tr =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, raw.len,
                                                                                         (uint8_t *)raw.data);
    assert_non_null(tr);
    assert_int_equal(tr->resource_spans[0]->scope_spans[0]->n_spans, 1);
    assert_memory_equal(tr->resource_spans[0]->scope_spans[0]->spans[0]->trace_id.data, tc.trace_id, 16);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(tr, NULL);
    buf_dispose(&raw);
    fake_dispose(&srv);
    fx_close(&f);
}

/* ---- exemplars ---- */

/* The later of two exemplars is kept, wherever values meet; an exemplar never goes back in time. */
static void test_exemplar_merge(void **state)
{
    (void)state;
    uint8_t t1[16] = {1}, s1[8] = {1}, t2[16] = {2}, s2[8] = {2};
    tele_values_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tele_values_exemplar(&a, t1, s1, 2000000, 5000);
    tele_values_exemplar(&a, t2, s2, 9000000, 4000); /* ended earlier: not taken */
    assert_int_equal(a.dur_exemplar.time_unix_ns, 5000);
    assert_memory_equal(a.dur_exemplar.span_id, s1, 8);
    assert_true(a.dur_exemplar.value_ms == 2.0);
    tele_values_add(&b, &a); /* none + one: the one */
    assert_memory_equal(&b.dur_exemplar, &a.dur_exemplar, sizeof(a.dur_exemplar));
    tele_values_t none;
    memset(&none, 0, sizeof(none));
    tele_values_add(&b, &none); /* adding none keeps it */
    assert_int_equal(b.dur_exemplar.time_unix_ns, 5000);
    tele_values_t later;
    memset(&later, 0, sizeof(later));
    tele_values_exemplar(&later, t2, s2, 9000000, 6000);
    tele_values_add(&b, &later);
    assert_int_equal(b.dur_exemplar.time_unix_ns, 6000);
    assert_memory_equal(b.dur_exemplar.trace_id, t2, 16);
    assert_true(b.dur_exemplar.value_ms == 9.0);
    tele_values_add(&b, &a); /* an older one does not replace it */
    assert_memory_equal(b.dur_exemplar.trace_id, t2, 16);
}

static const char *const OK_200 = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/* A worker exporting to the fake endpoint on port; access logs off, so only spans and metrics are sent. */
static void fx_open_port(fixture_t *f, uint16_t port, size_t ring_bytes, bool start)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->self = self_info();
    tele_opts_t o = {0};
    o.otlp_host = "127.0.0.1";
    o.otlp_port = port;
    o.flush_interval_ms = 60000;
    o.ring_bytes = ring_bytes;
    o.self = &f->self;
    o.service_name = "productpage.default";
    f->t = tele_create(&o);
    assert_non_null(f->t);
    if (start)
        assert_int_equal(tele_start(f->t), 0);
    f->w = tele_worker_create(f->t, &f->loop);
}

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest mreq_t;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint hpoint_t;

/* The one /v1/metrics request the fake endpoint got, decoded. */
static mreq_t *fake_metrics(const fake_t *srv)
{
    int at = -1;
    for (int i = 0; i < srv->n_reqs; i++) {
        if (strstr(srv->heads[i], "POST /v1/metrics HTTP/1.1\r\n") != NULL) {
            assert_int_equal(at, -1);
            at = i;
        }
    }
    assert_true(at >= 0);
    buf_t raw = BUF_INIT;
    assert_int_equal(compress_decode(COMPRESS_ZSTD, srv->bodies[at].data, srv->bodies[at].len, 1 << 20, &raw, NULL, 0),
                     COMPRESS_OK);
    mreq_t *mr = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
        NULL, raw.len, (uint8_t *)raw.data);
    assert_non_null(mr);
    buf_dispose(&raw);
    return mr;
}

/* The istio_request_duration_milliseconds point with this response_code, or NULL. */
static const hpoint_t *duration_point(const mreq_t *mr, const char *code)
{
    const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = mr->resource_metrics[0]->scope_metrics[0];
    for (size_t i = 0; i < sm->n_metrics; i++) {
        const Opentelemetry__Proto__Metrics__V1__Metric *m = sm->metrics[i];
        if (strcmp(m->name, "istio_request_duration_milliseconds") != 0)
            continue;
        for (size_t j = 0; j < m->histogram->n_data_points; j++) {
            const hpoint_t *p = m->histogram->data_points[j];
            if (strcmp(attr_str(p->attributes, p->n_attributes, "response_code"), code) == 0)
                return p;
        }
    }
    return NULL;
}

static trace_ctx_t traced(uint8_t id, int8_t sampled)
{
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    tc.trace_id[0] = 0xab;
    tc.trace_id[15] = id;
    tc.span_id[0] = 0xcd;
    tc.span_id[7] = id;
    tc.sampled = sampled;
    return tc;
}

/*
 * The worker keeps the latest request whose span it reported: a sampled
 * request is the exemplar of its series, with its own trace and span ids
 * and duration; an unsampled one, later, does not replace it; a series of
 * unsampled requests has none; nor has one under disableSpanReporting.
 */
static void test_worker_exemplars(void **state)
{
    (void)state;
    static const char *const script[] = {OK_200, OK_200, NULL}; /* traces, metrics */
    fake_t srv;
    fake_start(&srv, script);
    fixture_t f;
    fx_open_port(&f, srv.port, 0, true);

    proxy_tm_effective_t eff;
    memset(&eff, 0, sizeof(eff));
    eff.sampling[0] = eff.sampling[1] = -1;
    eff.disable_spans[0] = 1;
    eff.log_disabled[0] = eff.log_disabled[1] = PROXY_UNSET;
    tele_policy_t *spans_off = NULL;
    char err[128];
    assert_int_equal(tele_policy_create(&eff, &spans_off, err, sizeof(err)), 0);
    assert_non_null(spans_off);

    peer_info_t reviews = reviews_info();
    tele_request_t r = base_request(TELE_SOURCE, &reviews);
    trace_ctx_t s1 = traced(1, 1), u2 = traced(2, 0), s3 = traced(3, 1), u4 = traced(4, 0), u5 = traced(5, 0),
                s6 = traced(6, 1);
    const struct {
        const trace_ctx_t *tc;
        int code;
        uint64_t duration_ms;
        tele_policy_t *policy;
    } reqs[] = {
        {&s1, 200, 3, NULL},      /* sampled */
        {&u2, 200, 2, NULL},      /* unsampled, later: s1 stays */
        {&s3, 200, 42, NULL},     /* sampled, later: the exemplar */
        {&u4, 200, 1, NULL},      /* unsampled, later again: s3 stays */
        {&u5, 404, 7, NULL},      /* a series of unsampled requests only */
        {&s6, 503, 9, spans_off}, /* sampled, but the Telemetry API reports no span */
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        r.trace = reqs[i].tc;
        r.response_code = reqs[i].code;
        r.policy = reqs[i].policy;
        r.start_unix_ns = 1700000000000000000ull + i * 1000000000ull;
        r.duration_ns = reqs[i].duration_ms * 1000000u;
        tele_record(f.w, &r);
    }
    fx_finish(&f);
    fake_join(&srv);
    tele_stats_t st;
    tele_get_stats(f.t, &st);
    assert_int_equal(srv.n_reqs, 2);
    assert_int_equal(st.spans_exported, 2); /* s1 and s3 */

    mreq_t *mr = fake_metrics(&srv);
    const hpoint_t *p = duration_point(mr, "200");
    assert_non_null(p);
    assert_int_equal(p->count, 4);
    assert_int_equal(p->n_exemplars, 1);
    const Opentelemetry__Proto__Metrics__V1__Exemplar *ex = p->exemplars[0];
    assert_memory_equal(ex->trace_id.data, s3.trace_id, 16);
    assert_memory_equal(ex->span_id.data, s3.span_id, 8); /* this hop's span, the one exported */
    assert_true(ex->as_double == 42.0);
    assert_int_equal(ex->time_unix_nano, 1700000000000000000ull + 2 * 1000000000ull + 42000000ull);
    assert_int_equal(p->bucket_counts[5], 1); /* (25, 50]: the bucket its value is in holds it */
    p = duration_point(mr, "404");
    assert_non_null(p);
    assert_int_equal(p->n_exemplars, 0);
    p = duration_point(mr, "503");
    assert_non_null(p);
    assert_int_equal(p->n_exemplars, 0);
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(mr, NULL);
    tele_policy_unref(spans_off);
    fake_dispose(&srv);
    fx_close(&f);
}

/* A span dropped because the ring is full leaves no exemplar: the last one the ring took stays. */
static void test_exemplar_needs_the_span(void **state)
{
    (void)state;
    static const char *const script[] = {OK_200, OK_200, NULL};
    fake_t srv;
    fake_start(&srv, script);
    fixture_t f;
    fx_open_port(&f, srv.port, 4096, false); /* the exporter starts after the ring has filled */
    tele_request_t r = base_request(TELE_SOURCE, NULL);
    trace_ctx_t tcs[64];
    int n = 0;
    tele_stats_t st;
    for (;;) {
        assert_true(n < 64);
        tcs[n] = traced((uint8_t)(n + 1), 1);
        r.trace = &tcs[n];
        r.start_unix_ns = 1700000000000000000ull + (uint64_t)n * 1000000ull;
        tele_record(f.w, &r);
        n++;
        tele_get_stats(f.t, &st);
        if (st.spans_dropped > 0)
            break;
    }
    assert_int_equal(st.spans_dropped, 1);
    assert_true(n >= 2);
    assert_int_equal(tele_start(f.t), 0);
    fx_finish(&f);
    fake_join(&srv);
    tele_get_stats(f.t, &st);
    assert_int_equal(st.spans_exported, n - 1);
    mreq_t *mr = fake_metrics(&srv);
    const hpoint_t *p = duration_point(mr, "200");
    assert_non_null(p);
    assert_int_equal(p->count, n);
    assert_int_equal(p->n_exemplars, 1);
    assert_memory_equal(p->exemplars[0]->span_id.data, tcs[n - 2].span_id, 8);
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(mr, NULL);
    fake_dispose(&srv);
    fx_close(&f);
}

/* ---- aggregation by interned handles against a per-request reference ---- */

#define REF_MAX 256

/* The reference: every request's label set computed the way Istio's labels are defined, counted per set. */
typedef struct ref_series {
    char labels[2048];
    uint64_t count, req_sum;
} ref_series_t;

typedef struct ref {
    ref_series_t s[REF_MAX];
    size_t n;
} ref_t;

static void ref_add(ref_t *ref, const tele_request_t *r, const peer_info_t *self)
{
    str_t v[TELE_NLABELS];
    char code[12], flags[TELE_FLAGS_MAX], line[2048];
    tele_request_labels(r, self, code, flags, v);
    size_t n = 0;
    for (int k = 0; k < TELE_NLABELS; k++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s=\"%.*s\"", k ? "," : "",
                              tele_label_name((enum tele_label)k), (int)v[k].len, v[k].ptr ? v[k].ptr : "");
    for (size_t i = 0; i < ref->n; i++) {
        if (strcmp(ref->s[i].labels, line) == 0) {
            ref->s[i].count++;
            ref->s[i].req_sum += r->request_bytes;
            return;
        }
    }
    assert_true(ref->n < REF_MAX);
    snprintf(ref->s[ref->n].labels, sizeof(ref->s[ref->n].labels), "%s", line);
    ref->s[ref->n].count = 1;
    ref->s[ref->n].req_sum = r->request_bytes;
    ref->n++;
}

/* The page holds exactly the reference's istio_requests_total series, with its counts and request byte sums. */
static void assert_page_matches(const char *page, const ref_t *ref)
{
    size_t lines = 0;
    for (const char *q = page; (q = strstr(q, "\nistio_requests_total{")) != NULL; q++)
        lines++;
    assert_int_equal(lines, ref->n);
    char want[64];
    for (size_t i = 0; i < ref->n; i++) {
        snprintf(want, sizeof(want), "%llu", (unsigned long long)ref->s[i].count);
        assert_series_line(page, "istio_requests_total", ref->s[i].labels, "", want);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)ref->s[i].req_sum);
        assert_series_line(page, "istio_request_bytes_sum", ref->s[i].labels, "", want);
    }
}

static peer_info_t peer_of(const char *name, const char *workload, const char *app, const char *version)
{
    peer_info_t p;
    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "%s", name);
    strcpy(p.namespace, "default");
    snprintf(p.workload, sizeof(p.workload), "%s", workload);
    snprintf(p.app, sizeof(p.app), "%s", app);
    snprintf(p.version, sizeof(p.version), "%s", version);
    strcpy(p.cluster_id, "Kubernetes");
    return p;
}

/*
 * A mix of reporters, destinations (cached per endpoint as the proxy's
 * views do), peers (cached per connection, two pods of one workload
 * among them), codes and flags: the page has the same series and totals
 * as labelling each request on its own gives. Midway everything goes idle
 * long enough for the worker to forget its series and handles, a new
 * destination takes a freed slot, and the old (stale) cached handles are
 * used again: they must not be taken for the new destination.
 */
static void test_handle_aggregation_matches_per_request_labels(void **state)
{
    (void)state;
    fixture_t f;
    fx_open(&f, NULL, 0, true);
    ref_t *ref = calloc(1, sizeof(*ref));
    static const struct {
        const char *svc, *name, *ns, *version, *app;
    } dests[] = {
        {"reviews.default.svc.cluster.local", "reviews", "default", "v1", "reviews"},
        {"reviews.default.svc.cluster.local", "reviews", "default", "v2", "reviews"},
        {"ratings.default.svc.cluster.local", "ratings", "default", "", ""},
        {"details.shop.svc.cluster.local", "details", "shop", "v1", "details"},
    };
    enum { ND = 4, NP = 4 };
    peer_info_t peers[NP] = {
        peer_of("reviews-v1-aaa", "reviews-v1", "reviews", "v1"),
        peer_of("reviews-v1-bbb", "reviews-v1", "reviews", "v1"), /* another pod: same labels */
        peer_of("ratings-v1-ccc", "ratings-v1", "ratings", "v1"),
        peer_of("web-xyz", "web", "", ""),
    };
    uint64_t dest_cache[2][ND]; /* [reporter][dest] */
    uint64_t peer_cache[NP + 1];
    memset(dest_cache, 0, sizeof(dest_cache));
    memset(peer_cache, 0, sizeof(peer_cache));
    static const int codes[] = {200, 200, 404, 503, 0, 201};
    static const uint32_t flag_mix[] = {0, 0, TELE_RF_UF | TELE_RF_URX, TELE_RF_DC, TELE_RF_UO, TELE_RF_NR};
    uint64_t x = 88172645463325252ull;
    for (int phase = 0; phase < 2; phase++) {
        for (int i = 0; i < 3000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int rep = (int)(x % 2), d = (int)((x >> 8) % ND), p = (int)((x >> 16) % (NP + 1)), c = (int)((x >> 24) % 6);
            tele_request_t r = base_request(rep ? TELE_DESTINATION : TELE_SOURCE, p < NP ? &peers[p] : NULL);
            r.destination_service = S(dests[d].svc);
            r.destination_service_name = S(dests[d].name);
            r.destination_service_namespace = S(dests[d].ns);
            r.destination_version = S(dests[d].version);
            r.destination_app = S(dests[d].app);
            r.dest_handle = &dest_cache[rep][d];
            r.peer_handle = p < NP ? &peer_cache[p] : NULL;
            r.response_code = codes[c];
            r.response_flags = flag_mix[(c + d) % 6];
            r.request_bytes = (uint64_t)(x >> 40) % 5000;
            tele_record(f.w, &r);
            ref_add(ref, &r, &f.self);
            if (i % 1000 == 999)
                tele_worker_flush(f.w);
        }
        if (phase == 1)
            break;
        /* idle: series and then their destinations and peers are forgotten; cached handles go stale */
        for (int k = 0; k < 12; k++)
            tele_worker_flush(f.w);
        tele_request_t n = base_request(TELE_SOURCE, NULL);
        n.destination_service = S("newcomer.default.svc.cluster.local");
        n.destination_service_name = S("newcomer");
        uint64_t fresh = 0;
        n.dest_handle = &fresh;
        tele_record(f.w, &n);
        ref_add(ref, &n, &f.self);
        assert_true(fresh != 0);
        bool stale_seen = false;
        for (int d = 0; d < ND; d++)
            stale_seen |=
                (uint32_t)dest_cache[0][d] == (uint32_t)fresh || (uint32_t)dest_cache[1][d] == (uint32_t)fresh;
        assert_true(stale_seen); /* the newcomer took a slot an old handle still names */
    }
    fx_finish(&f);
    buf_t out = BUF_INIT;
    tele_render_prometheus(f.t, &out);
    assert_page_matches(out.data, ref);
    /* Istio's labels for one of them, spelled out: the peer's version wins over the endpoint's */
    assert_non_null(strstr(out.data,
                           "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\","
                           "source_workload_namespace=\"default\",source_principal=\"unknown\","
                           "source_app=\"productpage\",source_version=\"v1\",source_cluster=\"Kubernetes\","
                           "source_canonical_service=\"productpage\",source_canonical_revision=\"v1\","
                           "destination_workload=\"ratings-v1\",destination_workload_namespace=\"default\","
                           "destination_principal=\"unknown\",destination_app=\"ratings\","
                           "destination_version=\"v1\",destination_service=\"details.shop.svc.cluster.local\","
                           "destination_service_name=\"details\",destination_service_namespace=\"shop\","));
    buf_dispose(&out);
    free(ref);
    fx_close(&f);
}

/* The same requests without caches (every request interned from its strings) give the same page. */
static void test_uncached_and_cached_pages_equal(void **state)
{
    (void)state;
    buf_t pages[2] = {BUF_INIT, BUF_INIT};
    peer_info_t reviews = reviews_info();
    for (int cached = 0; cached < 2; cached++) {
        fixture_t f;
        fx_open(&f, NULL, 0, true);
        uint64_t dcache[3] = {0, 0, 0}, pcache = 0;
        for (int i = 0; i < 600; i++) {
            tele_request_t r = base_request(i % 3 == 0 ? TELE_DESTINATION : TELE_SOURCE, i % 2 ? &reviews : NULL);
            r.destination_version = S(i % 3 == 1 ? "v3" : "");
            r.response_code = i % 5 == 0 ? 503 : 200;
            r.response_flags = i % 5 == 0 ? TELE_RF_UF : 0;
            r.duration_ns = (uint64_t)i * 100000;
            r.response_bytes = (uint64_t)i;
            if (cached) {
                r.dest_handle = &dcache[i % 3];
                r.peer_handle = &pcache;
            }
            tele_record(f.w, &r);
        }
        fx_finish(&f);
        tele_render_prometheus(f.t, &pages[cached]);
        fx_close(&f);
    }
    assert_string_equal(pages[0].data, pages[1].data);
    assert_non_null(strstr(pages[0].data, "response_flags=\"UF\""));
    buf_dispose(&pages[0]);
    buf_dispose(&pages[1]);
}

static void test_worker_forgets_idle_series(void **state)
{
    (void)state;
    fixture_t f;
    fx_open(&f, NULL, 0, true);
    tele_request_t r = base_request(TELE_DESTINATION, NULL);
    tele_record(f.w, &r);
    r.response_code = 404;
    for (int i = 0; i < 12; i++) {
        tele_record(f.w, &r);
        tele_worker_flush(f.w);
    }
    r.response_code = 200;
    tele_record(f.w, &r);
    fx_finish(&f);
    buf_t out = BUF_INIT;
    tele_render_prometheus(f.t, &out);
    assert_non_null(strstr(out.data, "response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
                                     "connection_security_policy=\"none\"} 2\n"));
    assert_non_null(strstr(out.data, "response_code=\"404\",grpc_response_status=\"\",response_flags=\"-\","
                                     "connection_security_policy=\"none\"} 12\n"));
    buf_dispose(&out);
    fx_close(&f);
}

/* addresses as the proxy writes them: "ip:port", "[v6]:port", and bare IPs (a client's, IPv6 too) */
static void test_host_port(void **state)
{
    (void)state;
    static const struct {
        const char *in, *host;
        uint32_t port;
    } cases[] = {
        {"127.0.0.1:9080", "127.0.0.1", 9080},
        {"[::1]:15006", "::1", 15006},
        {"::1", "::1", 0},
        {"fe80::1:2", "fe80::1:2", 0},
        {"10.0.0.7", "10.0.0.7", 0},
        {"reviews:99999", "reviews", 0},
        {"", "", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        str_t host;
        uint32_t port = 7;
        tele_host_port((str_t){cases[i].in, (uint32_t)strlen(cases[i].in)}, &host, &port);
        assert_int_equal(host.len, strlen(cases[i].host));
        assert_memory_equal(host.ptr ? host.ptr : "", cases[i].host, host.len);
        assert_int_equal(port, cases[i].port);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_port),
        cmocka_unit_test(test_render_source_histograms),
        cmocka_unit_test(test_destination_labels_and_series),
        cmocka_unit_test(test_principals),
        cmocka_unit_test(test_label_escaping_and_cut),
        cmocka_unit_test(test_queue_limit_drops),
        cmocka_unit_test(test_otlp_traces_and_logs),
        cmocka_unit_test(test_otlp_logs_every_field),
        cmocka_unit_test(test_otlp_traces_every_field),
        cmocka_unit_test(test_otlp_metrics),
        cmocka_unit_test(test_stop_without_endpoint_is_quick),
        cmocka_unit_test(test_export_retry_and_keepalive),
        cmocka_unit_test(test_exemplar_merge),
        cmocka_unit_test(test_worker_exemplars),
        cmocka_unit_test(test_exemplar_needs_the_span),
        cmocka_unit_test(test_worker_forgets_idle_series),
        cmocka_unit_test(test_handle_aggregation_matches_per_request_labels),
        cmocka_unit_test(test_uncached_and_cached_pages_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
