/*
 * otlp_decode_bench: decode-only throughput of an OTLP trace request shaped
 * like span_load's (1000 spans, 6 attributes each, one resource and scope),
 * protobuf-c's generic unpack against otlp_wire, alone and with the mapping
 * to span_t (sink does nothing), and otlp_direct (wire straight to span_t,
 * what ingest runs). Arguments: iterations; the one variant to run (pbc,
 * wire, ref, wire+map, direct; "all" for every one), e.g. under callgrind;
 * "span_load" for span_load's request shape instead of the bench's.
 * With "logs" as the shape: an access-log request of 1024 records written
 * by the proxy's own encoder (tele_otlp_logs), decoded by the protobuf-c
 * path (ref), by otlp_logs_decode_proto_direct (direct, what ingest runs)
 * and by otlp_logs_decode_proto (sink: a copy, the direct path and a sink).
 * Not built by CMake; from a release build:
 *   cc -O2 -I collector -I common -I proxy -I <build>/gen tests/bench/otlp_decode_bench.c \
 *      <build>/liboutrider_collector.a <build>/liboutrider_proxy.a <build>/liboutrider_exporters.a \
 *      <build>/liboutrider_common.a -lprotobuf-c -lyajl -lzstd -lz -lfyaml -lxxhash -lutf8proc -lmicrohttpd -lm \
 *      -o /tmp/otlp_decode_bench
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otlp.h"
#include "otlp_wire.h"
#include "telemetry_otlp.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Common__V1__AnyValue any_t;

#define N_SPANS 1000

static void kv_set(kv_t *kv, any_t *v, const char *k, const char *s, int64_t i)
{
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    kv->key = (char *)k;
    kv->value = v;
    if (s != NULL) {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = (char *)s;
    } else {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = i;
    }
}

/*
 * The request: the bench's own shape (one resource and scope, an empty
 * status on every span) or, with span_load set, the shape of span_load
 * send --services 5 --spans-per-trace 4 (five resources without scope,
 * four spans per trace).
 */
static uint8_t *build(int span_load, size_t *len)
{
    static Opentelemetry__Proto__Trace__V1__Span spans[N_SPANS];
    static Opentelemetry__Proto__Trace__V1__Span *sp[N_SPANS];
    static kv_t kvs[N_SPANS][6];
    static any_t vals[N_SPANS][6];
    static kv_t *kvp[N_SPANS][6];
    static uint8_t ids[N_SPANS][32];
    static char urls[N_SPANS][48];
    static Opentelemetry__Proto__Trace__V1__Status st = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    static const char *const load_methods[] = {"GET", "POST", "GET", "GET"};
    for (int i = 0; i < N_SPANS; i++) {
        Opentelemetry__Proto__Trace__V1__Span *s = &spans[i];
        opentelemetry__proto__trace__v1__span__init(s);
        int k = span_load ? i % 4 : i % 2;
        for (int b = 0; b < 32; b++)
            ids[i][b] = (uint8_t)((span_load && b < 16 ? i / 4 : i) * 31 + b + 1);
        s->trace_id = (ProtobufCBinaryData){16, ids[i]};
        s->span_id = (ProtobufCBinaryData){8, ids[i] + 16};
        if (k > 0)
            s->parent_span_id = (ProtobufCBinaryData){8, ids[i] + 24};
        s->name = !span_load ? "ingress /productpage" : k % 2 ? "get /api/items" : "post /api/orders";
        s->kind = k % 2 ? OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
                        : OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
        s->start_time_unix_nano = 1700000000000000000ull + (uint64_t)i * 1000000;
        s->end_time_unix_nano = s->start_time_unix_nano + 2500000;
        if (span_load)
            snprintf(urls[i], sizeof(urls[i]), "http://reviews:9080/api/items/%d", (i * 7919 + 13) % 100000);
        else
            snprintf(urls[i], sizeof(urls[i]), "http://reviews:9080/reviews/%d", i);
        kv_set(&kvs[i][0], &vals[i][0], "http.method", span_load ? load_methods[k] : methods[i % 4], 0);
        kv_set(&kvs[i][1], &vals[i][1], "http.url", urls[i], 0);
        kv_set(&kvs[i][2], &vals[i][2], "http.status_code", NULL, i % 10 == 7 ? 503 : 200);
        kv_set(&kvs[i][3], &vals[i][3], "upstream_cluster", "outbound|9080||reviews.default.svc.cluster.local", 0);
        kv_set(&kvs[i][4], &vals[i][4], "response_flags", "-", 0);
        kv_set(&kvs[i][5], &vals[i][5], "peer.service", "reviews", 0);
        for (int k = 0; k < 6; k++)
            kvp[i][k] = &kvs[i][k];
        s->attributes = kvp[i];
        s->n_attributes = 6;
        s->status = span_load ? NULL : &st;
        sp[i] = s;
    }
    enum { MAX_RS = 5 };
    int n_rs = span_load ? MAX_RS : 1;
    static kv_t rkv[MAX_RS];
    static any_t rv[MAX_RS];
    static kv_t *rkvp[MAX_RS];
    static char names[MAX_RS][32];
    static Opentelemetry__Proto__Resource__V1__Resource res[MAX_RS];
    static Opentelemetry__Proto__Trace__V1__ScopeSpans ss[MAX_RS];
    static Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp[MAX_RS];
    static Opentelemetry__Proto__Trace__V1__ResourceSpans rs[MAX_RS];
    static Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp[MAX_RS];
    Opentelemetry__Proto__Common__V1__InstrumentationScope scope =
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    scope.name = "outrider-proxy";
    for (int j = 0; j < n_rs; j++) {
        snprintf(names[j], sizeof(names[j]), span_load ? "service-%d" : "productpage", j);
        kv_set(&rkv[j], &rv[j], "service.name", names[j], 0);
        rkvp[j] = &rkv[j];
        opentelemetry__proto__resource__v1__resource__init(&res[j]);
        res[j].attributes = &rkvp[j];
        res[j].n_attributes = 1;
        opentelemetry__proto__trace__v1__scope_spans__init(&ss[j]);
        ss[j].scope = span_load ? NULL : &scope;
        ss[j].spans = sp + j * (N_SPANS / n_rs);
        ss[j].n_spans = N_SPANS / n_rs;
        ssp[j] = &ss[j];
        opentelemetry__proto__trace__v1__resource_spans__init(&rs[j]);
        rs[j].resource = &res[j];
        rs[j].scope_spans = &ssp[j];
        rs[j].n_scope_spans = 1;
        rsp[j] = &rs[j];
    }
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.resource_spans = rsp;
    req.n_resource_spans = (size_t)n_rs;
    *len = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(&req);
    uint8_t *out = malloc(*len);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, out);
    return out;
}

static int null_sink(void *ctx, const span_t *s)
{
    (void)s;
    (*(uint64_t *)ctx)++;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *pb_alloc(void *data, size_t size)
{
    return arena_alloc(data, size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

enum { PBC_UNPACK, WIRE_DECODE, PBC_FULL, WIRE_FULL, DIRECT };

static void run(const char *label, int which, const uint8_t *body, size_t len, int iters)
{
    arena_t arena;
    arena_init(&arena, 0);
    uint64_t n = 0;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        otlp_result_t res;
        char err[128];
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
        ProtobufCAllocator alloc = {pb_alloc, pb_free, &arena};
        switch (which) {
        case PBC_UNPACK:
            if (protobuf_c_message_unpack(
                    &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, &alloc, len,
                    body) == NULL)
                abort();
            n += N_SPANS;
            break;
        case WIRE_DECODE:
            if (otlp_wire_decode_traces(body, len, 32, &arena, &req, NULL, err, sizeof(err)) != 0)
                abort();
            for (size_t r = 0; r < req->n_resource_spans; r++)
                n += req->resource_spans[r]->scope_spans[0]->n_spans;
            break;
        case PBC_FULL:
            if (otlp_traces_decode_proto_reference(body, len, NULL, &arena, null_sink, &n, &res) != 0)
                abort();
            break;
        case WIRE_FULL:
            if (otlp_traces_decode_proto(body, len, NULL, &arena, null_sink, &n, &res) != 0)
                abort();
            break;
        default: {
            const span_t *spans;
            size_t n_spans;
            if (otlp_traces_decode_proto_direct(body, len, NULL, &arena, &spans, &n_spans, &res, NULL) != 0)
                abort();
            n += n_spans;
            break;
        }
        }
        arena_reset(&arena);
    }
    double dt = now_s() - t0;
    printf("%-34s %10.0f spans/s  (%.0f ns/span)\n", label, (double)n / dt, dt * 1e9 / (double)n);
    arena_dispose(&arena);
}

/* ---- logs ---- */

#define N_LOGS 1024

static str_t S(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

/*
 * The access logs of N_LOGS requests through an inbound sidecar, as its
 * exporter sends them: a destination reporter, the peer's metadata, every
 * request traced (ids), 1% of them sampled as spans.
 */
static uint8_t *build_logs(size_t *len)
{
    static tele_rec_t recs[N_LOGS];
    static char paths[N_LOGS][32];
    peer_info_t self, peer;
    memset(&self, 0, sizeof(self));
    snprintf(self.name, sizeof(self.name), "productpage-v1-6b746f74dc-9stvn");
    snprintf(self.namespace, sizeof(self.namespace), "default");
    snprintf(self.workload, sizeof(self.workload), "productpage-v1");
    snprintf(self.app, sizeof(self.app), "productpage");
    snprintf(self.version, sizeof(self.version), "v1");
    peer = self;
    snprintf(peer.name, sizeof(peer.name), "reviews-v2-7bf8c9648f-2x7kp");
    snprintf(peer.workload, sizeof(peer.workload), "reviews-v2");
    buf_t strings = BUF_INIT;
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    for (int i = 0; i < N_LOGS; i++) {
        tele_request_t r;
        memset(&r, 0, sizeof(r));
        r.reporter = TELE_DESTINATION;
        r.peer = &peer;
        r.destination_service = S("productpage.default.svc.cluster.local");
        r.destination_service_name = S("productpage");
        r.destination_service_namespace = S("default");
        r.response_code = i % 50 == 7 ? 503 : 200;
        r.response_bytes = 1024;
        r.start_unix_ns = 1709251199999000000ull + (uint64_t)i * 117000;
        r.duration_ns = 300000 + (uint64_t)(i % 7) * 100000;
        r.method = S("GET");
        snprintf(paths[i], sizeof(paths[i]), "/productpage?u=%d", i % 100);
        r.path = S(paths[i]);
        r.authority = S("127.0.0.1:15006");
        r.user_agent = S("hey/0.0.1");
        r.protocol = S("HTTP/1.1");
        r.upstream_host = S("127.0.0.1:9080");
        r.upstream_cluster = S("inbound|9080||");
        r.downstream_peer = S("127.0.0.1:51234");
        r.attempts = 1;
        for (int k = 0; k < 16; k++)
            tc.trace_id[k] = (uint8_t)(i * 31 + k + 1);
        for (int k = 0; k < 8; k++)
            tc.span_id[k] = (uint8_t)(i * 17 + k + 1);
        tc.request_id_len = (uint8_t)snprintf(tc.request_id, sizeof(tc.request_id), "%08x-%04x-4%03x-8%03x-%012x",
                                              (unsigned)i * 2654435761u, (unsigned)i & 0xffff, (unsigned)i & 0xfff,
                                              (unsigned)(i * 7) & 0xfff, (unsigned)i * 40503u);
        r.trace = &tc;
        tele_rec_fill(&recs[i], &strings, &r);
        recs[i].has_log = true;
        recs[i].has_span = i % 100 == 0;
    }
    tele_resource_t res = {&self, "productpage.default", "productpage-v1-6b746f74dc-9stvn.default"};
    buf_t out = BUF_INIT;
    if (tele_otlp_logs(&res, recs, N_LOGS, strings.data, &out, NULL) != 0)
        abort();
    buf_dispose(&strings);
    *len = out.len;
    return (uint8_t *)out.data;
}

static int null_log_sink(void *ctx, const otlp_log_t *l)
{
    (void)l;
    (*(uint64_t *)ctx)++;
    return 0;
}

enum { LOGS_REF, LOGS_DIRECT, LOGS_SINK };

static void run_logs(const char *label, int which, const uint8_t *body, size_t len, int iters)
{
    arena_t arena;
    arena_init(&arena, 0);
    uint64_t n = 0;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        otlp_result_t res;
        const otlp_log_t *logs;
        size_t n_logs;
        switch (which) {
        case LOGS_REF:
            if (otlp_logs_decode_proto_reference(body, len, NULL, &arena, null_log_sink, &n, &res) != 0)
                abort();
            break;
        case LOGS_DIRECT:
            if (otlp_logs_decode_proto_direct(body, len, NULL, &arena, &logs, &n_logs, &res, NULL) != 0)
                abort();
            n += n_logs;
            break;
        default:
            if (otlp_logs_decode_proto(body, len, NULL, &arena, null_log_sink, &n, &res) != 0)
                abort();
            break;
        }
        arena_reset(&arena);
    }
    double dt = now_s() - t0;
    printf("%-34s %10.0f records/s  (%.0f ns/record)\n", label, (double)n / dt, dt * 1e9 / (double)n);
    arena_dispose(&arena);
}

static int main_logs(int argc, char **argv, int iters)
{
    size_t len;
    uint8_t *body = build_logs(&len);
    printf("request (proxy access logs): %d records, %zu bytes (%.1f bytes/record)\n", N_LOGS, len,
           (double)len / N_LOGS);
    static const struct {
        const char *name, *label;
        int which;
    } variants[] = {
        {"ref", "reference: depth check+unpack+map", LOGS_REF},
        {"direct", "otlp_direct_logs (wire -> log_t)", LOGS_DIRECT},
        {"sink", "otlp_logs_decode_proto (copy+sink)", LOGS_SINK},
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
        if (argc <= 2 || strcmp(argv[2], "all") == 0 || strcmp(argv[2], variants[i].name) == 0)
            run_logs(variants[i].label, variants[i].which, body, len, iters);
    free(body);
    return 0;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    if (argc > 3 && strcmp(argv[3], "logs") == 0)
        return main_logs(argc, argv, iters);
    int span_load = argc > 3 && strcmp(argv[3], "span_load") == 0;
    size_t len;
    uint8_t *body = build(span_load, &len);
    printf("request (%s shape): %d spans, %zu bytes (%.1f bytes/span)\n", span_load ? "span_load" : "bench", N_SPANS,
           len, (double)len / N_SPANS);
    static const struct {
        const char *name, *label;
        int which;
    } variants[] = {
        {"pbc", "protobuf-c unpack (no mapping)", PBC_UNPACK},
        {"wire", "otlp_wire decode (no mapping)", WIRE_DECODE},
        {"ref", "reference: depth check+unpack+map", PBC_FULL},
        {"wire+map", "otlp_traces_decode_proto (wire+map)", WIRE_FULL},
        {"direct", "otlp_direct (wire -> span_t)", DIRECT},
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
        if (argc <= 2 || strcmp(argv[2], "all") == 0 || strcmp(argv[2], variants[i].name) == 0)
            run(variants[i].label, variants[i].which, body, len, iters);
    free(body);
    return 0;
}
