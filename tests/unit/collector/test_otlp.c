/*
 * Tests for collector/otlp: OTLP protobuf and JSON decoding into spans,
 * metric points and log records, the OTel -> Zipkin mapping, limits and
 * malformed input, and response encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "google/rpc/status.pb-c.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "otlp.h"

typedef Opentelemetry__Proto__Common__V1__AnyValue any_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Trace__V1__Span pspan_t;

/* ---- helpers to build requests ---- */

#define MAXKV 64
static any_t g_any[MAXKV];
static kv_t g_kv[MAXKV];
static int g_nkv;

static kv_t *kv_str(const char *k, const char *v)
{
    any_t *a = &g_any[g_nkv];
    kv_t *kv = &g_kv[g_nkv++];
    opentelemetry__proto__common__v1__any_value__init(a);
    opentelemetry__proto__common__v1__key_value__init(kv);
    a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    a->string_value = (char *)v;
    kv->key = (char *)k;
    kv->value = a;
    return kv;
}

static kv_t *kv_int(const char *k, int64_t v)
{
    kv_t *kv = kv_str(k, "");
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    kv->value->int_value = v;
    return kv;
}

static kv_t *kv_double(const char *k, double v)
{
    kv_t *kv = kv_str(k, "");
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    kv->value->double_value = v;
    return kv;
}

static kv_t *kv_bool(const char *k, int v)
{
    kv_t *kv = kv_str(k, "");
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    kv->value->bool_value = v;
    return kv;
}

static const uint8_t TRACE_ID[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                     0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};
static const uint8_t SPAN_ID[8] = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
static const uint8_t PARENT_ID[8] = {0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8};

static void span_basic(pspan_t *s, const char *name)
{
    opentelemetry__proto__trace__v1__span__init(s);
    s->trace_id.data = (uint8_t *)TRACE_ID;
    s->trace_id.len = 16;
    s->span_id.data = (uint8_t *)SPAN_ID;
    s->span_id.len = 8;
    s->name = (char *)name;
    s->start_time_unix_nano = 1700000000123456789ull;
    s->end_time_unix_nano = 1700000000123456789ull + 2500000;
}

/* Pack a request holding spans (one resource, one scope) into a malloc'd buffer. */
static uint8_t *pack_spans(kv_t **res_attrs, size_t n_res, pspan_t **spans, size_t n_spans, size_t *len)
{
    Opentelemetry__Proto__Resource__V1__Resource r = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    r.attributes = res_attrs;
    r.n_attributes = n_res;
    Opentelemetry__Proto__Common__V1__InstrumentationScope sc =
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    sc.name = "io.outrider.proxy";
    sc.version = "0.1.0";
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.scope = &sc;
    ss.spans = spans;
    ss.n_spans = n_spans;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs.resource = &r;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
    rs.scope_spans = &ssp;
    rs.n_scope_spans = 1;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
    req.resource_spans = &rsp;
    req.n_resource_spans = 1;
    *len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(*len + 1);
    protobuf_c_message_pack(&req.base, buf);
    return buf;
}

/* ---- sinks ---- */

#define MAXSPANS 16
typedef struct spans {
    span_t s[MAXSPANS];
    int n;
    int stop_after; /* 0 = never */
} spans_t;

static int span_sink(void *ctx, const span_t *s)
{
    spans_t *c = ctx;
    if (c->stop_after && c->n >= c->stop_after)
        return -1;
    assert_true(c->n < MAXSPANS);
    c->s[c->n++] = *s;
    return 0;
}

typedef struct points {
    metric_point_t p[MAXSPANS];
    int n;
} points_t;

static int point_sink(void *ctx, const metric_point_t *p)
{
    points_t *c = ctx;
    assert_true(c->n < MAXSPANS);
    c->p[c->n++] = *p;
    return 0;
}

typedef struct logs {
    otlp_log_t l[MAXSPANS];
    int n;
} logs_t;

static int log_sink(void *ctx, const otlp_log_t *l)
{
    logs_t *c = ctx;
    assert_true(c->n < MAXSPANS);
    c->l[c->n++] = *l;
    return 0;
}

static int str_eq(str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

#define assert_str(s, lit)                                                                                             \
    do {                                                                                                               \
        str_t s_ = (s);                                                                                                \
        if (!str_eq(s_, (lit)))                                                                                        \
            fail_msg("expected \"%s\", got \"%.*s\"", (lit), (int)s_.len, s_.ptr ? s_.ptr : "");                       \
    } while (0)

static const str_t *tag(const span_t *s, const char *key)
{
    for (uint32_t i = 0; i < s->n_tags; i++)
        if (str_eq(s->tags[i].key, key))
            return &s->tags[i].value;
    return NULL;
}

static int tag_count(const span_t *s, const char *key)
{
    int n = 0;
    for (uint32_t i = 0; i < s->n_tags; i++)
        n += str_eq(s->tags[i].key, key);
    return n;
}

#define assert_tag(s, key, lit)                                                                                        \
    do {                                                                                                               \
        const str_t *t_ = tag((s), (key));                                                                             \
        if (t_ == NULL)                                                                                                \
            fail_msg("tag %s missing", (key));                                                                         \
        assert_str(*t_, (lit));                                                                                        \
    } while (0)

/* ---- traces: protobuf ---- */

static void test_trace_proto_full_mapping(void **state)
{
    (void)state;
    g_nkv = 0;
    kv_t *res_attrs[] = {kv_str("service.name", "Frontend"), kv_str("host.name", "node-1"),
                         kv_str("http.method", "resource-loses")};
    pspan_t s;
    span_basic(&s, "GET /Users");
    s.parent_span_id.data = (uint8_t *)PARENT_ID;
    s.parent_span_id.len = 8;
    s.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;

    any_t arr_items[3];
    any_t *arr_ptrs[3] = {&arr_items[0], &arr_items[1], &arr_items[2]};
    for (int i = 0; i < 3; i++)
        opentelemetry__proto__common__v1__any_value__init(&arr_items[i]);
    arr_items[0].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    arr_items[0].int_value = -7;
    arr_items[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    arr_items[1].string_value = "a\"b";
    arr_items[2].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    arr_items[2].bool_value = 1;
    Opentelemetry__Proto__Common__V1__ArrayValue av = OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    av.values = arr_ptrs;
    av.n_values = 3;
    kv_t *arr = kv_str("list", "");
    arr->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    arr->value->array_value = &av;

    kv_t *attrs[] = {kv_str("http.method", "GET"),
                     kv_int("http.status_code", 503),
                     kv_int("small", 7),
                     kv_double("ratio", 0.1),
                     kv_bool("cached", 1),
                     arr,
                     kv_str("peer.service", "Backend"),
                     kv_str("network.peer.address", "10.1.2.3"),
                     kv_int("network.peer.port", 8080),
                     kv_bool("error", 1)};
    s.attributes = attrs;
    s.n_attributes = sizeof(attrs) / sizeof(attrs[0]);

    Opentelemetry__Proto__Trace__V1__Status st = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    st.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    st.message = "boom";
    s.status = &st;

    Opentelemetry__Proto__Trace__V1__Span__Event e1 = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
    e1.name = "retry";
    e1.time_unix_nano = 1700000000124000999ull;
    Opentelemetry__Proto__Trace__V1__Span__Event e2 = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
    e2.name = "exception";
    e2.time_unix_nano = 1700000000125000000ull;
    kv_t *eattrs[] = {kv_str("exception.message", "x\"y"), kv_int("n", 2)};
    e2.attributes = eattrs;
    e2.n_attributes = 2;
    Opentelemetry__Proto__Trace__V1__Span__Event *events[] = {&e1, &e2};
    s.events = events;
    s.n_events = 2;

    pspan_t *sp = &s;
    size_t len;
    uint8_t *body = pack_spans(res_attrs, 3, &sp, 1, &len);

    arena_t arena;
    arena_init(&arena, 0);
    spans_t out = {0};
    otlp_result_t res;
    assert_int_equal(otlp_traces_decode_proto(body, len, NULL, &arena, span_sink, &out, &res), 0);
    /* nothing may point into the body */
    memset(body, 0xee, len);
    free(body);

    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.rejected, 0);
    assert_string_equal(res.error, "");
    assert_int_equal(out.n, 1);
    const span_t *z = &out.s[0];
    assert_true(z->trace_id_high == 0x0102030405060708ull);
    assert_true(z->trace_id_low == 0x090a0b0c0d0e0f10ull);
    assert_true(z->id == 0xa1a2a3a4a5a6a7a8ull);
    assert_true(z->parent_id == 0xb1b2b3b4b5b6b7b8ull);
    assert_int_equal(z->kind, SPAN_KIND_CLIENT);
    assert_str(z->name, "get /users");
    assert_true(z->timestamp_us == 1700000000123456ull);
    assert_true(z->duration_us == 2500);
    assert_true(z->has_local);
    assert_str(z->local.service_name, "frontend");
    assert_true(z->has_remote);
    assert_str(z->remote.service_name, "backend");
    assert_true(z->remote.has_ipv4);
    assert_false(z->remote.has_ipv6);
    assert_memory_equal(z->remote.ipv4, ((uint8_t[]){10, 1, 2, 3}), 4);
    assert_int_equal(z->remote.port, 8080);

    assert_tag(z, "http.method", "GET");
    assert_int_equal(tag_count(z, "http.method"), 1); /* span attribute wins over resource */
    assert_tag(z, "http.status_code", "503");
    assert_tag(z, "small", "7");
    assert_tag(z, "ratio", "0.1");
    assert_tag(z, "cached", "true");
    assert_tag(z, "list", "[-7,\"a\\\"b\",true]");
    assert_tag(z, "peer.service", "Backend");
    assert_tag(z, "host.name", "node-1");
    assert_null(tag(z, "service.name"));
    assert_tag(z, "otel.scope.name", "io.outrider.proxy");
    assert_tag(z, "otel.library.name", "io.outrider.proxy");
    assert_tag(z, "otel.scope.version", "0.1.0");
    assert_tag(z, "otel.library.version", "0.1.0");
    assert_tag(z, "otel.status_code", "ERROR");
    assert_tag(z, "otel.status_description", "boom");
    assert_tag(z, "error", "boom");
    assert_int_equal(tag_count(z, "error"), 1);
    assert_null(tag(z, "span.kind"));

    assert_int_equal(z->n_annotations, 2);
    assert_true(z->annotations[0].timestamp_us == 1700000000124000ull);
    assert_str(z->annotations[0].value, "retry");
    assert_true(z->annotations[1].timestamp_us == 1700000000125000ull);
    assert_str(z->annotations[1].value, "\"exception\":{\"exception.message\":\"x\\\"y\",\"n\":2}");
    arena_dispose(&arena);
}

static void test_trace_proto_kinds_status_endpoints(void **state)
{
    (void)state;
    g_nkv = 0;
    kv_t *res_attrs[] = {kv_int("k", 1)}; /* no service.name */
    pspan_t a, b, c;
    uint8_t ids[3][8] = {{0, 0, 0, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 0, 0, 0, 2}, {0, 0, 0, 0, 0, 0, 0, 3}};

    span_basic(&a, "internal-op");
    a.span_id.data = ids[0];
    a.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
    a.end_time_unix_nano = a.start_time_unix_nano + 300; /* < 1 us */
    Opentelemetry__Proto__Trace__V1__Status ok = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    ok.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK;
    a.status = &ok;
    kv_t *aattrs[] = {kv_str("error", "false")};
    a.attributes = aattrs;
    a.n_attributes = 1;

    span_basic(&b, "srv");
    b.span_id.data = ids[1];
    b.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
    b.end_time_unix_nano = 0; /* not ended: no duration */
    kv_t *battrs[] = {kv_str("net.peer.ip", "2001:db8::1"), kv_str("net.peer.port", "443"),
                      kv_str("server.address", "ignored-for-server")};
    b.attributes = battrs;
    b.n_attributes = 3;
    Opentelemetry__Proto__Trace__V1__Status err = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    err.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    b.status = &err; /* no message */

    span_basic(&c, "cli");
    c.span_id.data = ids[2];
    c.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_PRODUCER;
    kv_t *cattrs[] = {kv_str("server.address", "Kafka.Local"), kv_int("server.port", 9092),
                      kv_str("network.peer.address", "192.168.0.9")};
    c.attributes = cattrs;
    c.n_attributes = 3;

    pspan_t *sp[] = {&a, &b, &c};
    size_t len;
    uint8_t *body = pack_spans(res_attrs, 1, sp, 3, &len);
    arena_t arena;
    arena_init(&arena, 0);
    spans_t out = {0};
    otlp_result_t res;
    assert_int_equal(otlp_traces_decode_proto(body, len, NULL, &arena, span_sink, &out, &res), 0);
    free(body);
    assert_int_equal(out.n, 3);

    const span_t *z = &out.s[0];
    assert_int_equal(z->kind, SPAN_KIND_UNSPECIFIED);
    assert_tag(z, "span.kind", "internal");
    assert_true(z->duration_us == 1);
    assert_true(z->parent_id == 0);
    assert_str(z->local.service_name, "unknown_service");
    assert_tag(z, "otel.status_code", "OK");
    assert_null(tag(z, "error"));
    assert_null(tag(z, "otel.status_description"));
    assert_false(z->has_remote);
    assert_tag(z, "k", "1");

    z = &out.s[1];
    assert_int_equal(z->kind, SPAN_KIND_SERVER);
    assert_true(z->duration_us == 0);
    assert_tag(z, "otel.status_code", "ERROR");
    assert_tag(z, "error", "");
    assert_true(z->has_remote);
    assert_int_equal(z->remote.service_name.len, 0);
    assert_true(z->remote.has_ipv6);
    assert_int_equal(z->remote.ipv6[0], 0x20);
    assert_int_equal(z->remote.ipv6[15], 0x01);
    assert_int_equal(z->remote.port, 443);

    z = &out.s[2];
    assert_int_equal(z->kind, SPAN_KIND_PRODUCER);
    assert_true(z->has_remote);
    assert_str(z->remote.service_name, "kafka.local");
    assert_true(z->remote.has_ipv4);
    assert_int_equal(z->remote.port, 9092);
    assert_null(tag(z, "otel.status_code"));
    arena_dispose(&arena);
}

static void test_trace_proto_partial_success(void **state)
{
    (void)state;
    g_nkv = 0;
    kv_t *res_attrs[] = {kv_str("service.name", "svc")};
    static const uint8_t zero16[16] = {0};
    pspan_t s[5];
    span_basic(&s[0], "short-trace");
    s[0].trace_id.len = 8;
    span_basic(&s[1], "zero-trace");
    s[1].trace_id.data = (uint8_t *)zero16;
    span_basic(&s[2], "zero-span");
    s[2].span_id.data = (uint8_t *)zero16;
    span_basic(&s[3], "bad-parent");
    s[3].parent_span_id.data = (uint8_t *)PARENT_ID;
    s[3].parent_span_id.len = 3;
    span_basic(&s[4], "good");
    pspan_t *sp[] = {&s[0], &s[1], &s[2], &s[3], &s[4]};
    size_t len;
    uint8_t *body = pack_spans(res_attrs, 1, sp, 5, &len);
    arena_t arena;
    arena_init(&arena, 0);
    spans_t out = {0};
    otlp_result_t res;
    assert_int_equal(otlp_traces_decode_proto(body, len, NULL, &arena, span_sink, &out, &res), 0);
    free(body);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.rejected, 4);
    assert_non_null(strstr(res.error, "trace_id"));
    assert_int_equal(out.n, 1);
    assert_str(out.s[0].name, "good");

    buf_t b = BUF_INIT;
    otlp_encode_response(OTLP_SIGNAL_TRACES, 0, &res, &b);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *r =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(NULL, b.len,
                                                                                          (uint8_t *)b.data);
    assert_non_null(r);
    assert_non_null(r->partial_success);
    assert_int_equal(r->partial_success->rejected_spans, 4);
    assert_string_equal(r->partial_success->error_message, res.error);
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(r, NULL);
    b.len = 0;
    otlp_encode_response(OTLP_SIGNAL_TRACES, 1, &res, &b);
    char expect[512];
    snprintf(expect, sizeof(expect), "{\"partialSuccess\":{\"rejectedSpans\":\"4\",\"errorMessage\":\"%s\"}}",
             res.error);
    assert_string_equal(b.data, expect);

    /* no rejection: empty message */
    otlp_result_t ok = {3, 0, ""};
    b.len = 0;
    otlp_encode_response(OTLP_SIGNAL_METRICS, 0, &ok, &b);
    assert_int_equal(b.len, 0);
    otlp_encode_response(OTLP_SIGNAL_METRICS, 1, &ok, &b);
    assert_string_equal(b.data, "{}");
    buf_dispose(&b);
    arena_dispose(&arena);
}

static void test_trace_limits(void **state)
{
    (void)state;
    g_nkv = 0;
    kv_t *res_attrs[] = {kv_str("service.name", "svc")};
    /* 3-byte UTF-8 char straddling the cut at 5 bytes */
    kv_t *attrs[] = {kv_str("long", "abcd\xe2\x82\xac"
                                    "xyz"),
                     kv_str("a2", "v2"), kv_str("a3", "v3")};
    pspan_t s[3];
    for (int i = 0; i < 3; i++) {
        span_basic(&s[i], "x");
        s[i].attributes = attrs;
        s[i].n_attributes = 3;
    }
    pspan_t *sp[] = {&s[0], &s[1], &s[2]};
    size_t len;
    uint8_t *body = pack_spans(res_attrs, 1, sp, 3, &len);
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    lim.max_items = 2;
    lim.max_attributes = 2;
    lim.max_attribute_value_len = 5;
    arena_t arena;
    arena_init(&arena, 0);
    spans_t out = {0};
    otlp_result_t res;
    assert_int_equal(otlp_traces_decode_proto(body, len, &lim, &arena, span_sink, &out, &res), 0);
    assert_int_equal(res.accepted, 2);
    assert_int_equal(res.rejected, 1);
    assert_non_null(strstr(res.error, "too many spans"));
    assert_tag(&out.s[0], "long", "abcd");
    assert_tag(&out.s[0], "a2", "v2");
    assert_null(tag(&out.s[0], "a3"));

    /* arena limit */
    arena_t small;
    arena_init(&small, 256);
    out.n = 0;
    assert_int_equal(otlp_traces_decode_proto(body, len, NULL, &small, span_sink, &out, &res), -1);
    assert_non_null(strstr(res.error, "memory limit"));
    arena_dispose(&small);

    /* sink stops */
    out.n = 0;
    out.stop_after = 1;
    arena_reset(&arena);
    assert_int_equal(otlp_traces_decode_proto(body, len, NULL, &arena, span_sink, &out, &res), -1);
    assert_string_equal(res.error, "stopped by sink");
    assert_int_equal(res.accepted, 1);
    free(body);
    arena_dispose(&arena);
}

static void test_trace_proto_malformed(void **state)
{
    (void)state;
    arena_t arena;
    arena_init(&arena, 0);
    spans_t out = {0};
    otlp_result_t res;

    static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_int_equal(otlp_traces_decode_proto(garbage, sizeof(garbage), NULL, &arena, span_sink, &out, &res), -1);
    assert_non_null(strstr(res.error, "invalid protobuf"));

    static const uint8_t badwire[] = {0x0f};
    assert_int_equal(otlp_traces_decode_proto(badwire, 1, NULL, &arena, span_sink, &out, &res), -1);
    assert_non_null(strstr(res.error, "wire type"));

    /* a real request cut short */
    g_nkv = 0;
    kv_t *res_attrs[] = {kv_str("service.name", "svc")};
    pspan_t s;
    span_basic(&s, "x");
    pspan_t *sp = &s;
    size_t len;
    uint8_t *body = pack_spans(res_attrs, 1, &sp, 1, &len);
    for (size_t cut = 1; cut < len; cut += 7) {
        int rc = otlp_traces_decode_proto(body, cut, NULL, &arena, span_sink, &out, &res);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(res.error, "truncated"));
    }

    /* empty body is an empty request */
    assert_int_equal(otlp_traces_decode_proto((const uint8_t *)"", 0, NULL, &arena, span_sink, &out, &res), 0);
    assert_int_equal(res.accepted + res.rejected, 0);

    /* AnyValue -> ArrayValue -> AnyValue ... 300 levels deep in a resource attribute */
    enum { DEPTH = 300 };
    static any_t chain[DEPTH];
    static Opentelemetry__Proto__Common__V1__ArrayValue arrs[DEPTH];
    static any_t *links[DEPTH];
    for (int i = 0; i < DEPTH; i++) {
        opentelemetry__proto__common__v1__any_value__init(&chain[i]);
        opentelemetry__proto__common__v1__array_value__init(&arrs[i]);
        links[i] = &chain[i];
        if (i + 1 < DEPTH) {
            chain[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
            chain[i].array_value = &arrs[i];
            arrs[i].values = &links[i + 1];
            arrs[i].n_values = 1;
        }
    }
    kv_t *deepkv = kv_str("deep", "");
    deepkv->value = &chain[0];
    kv_t *deep_attrs[] = {deepkv};
    uint8_t *wrapped = pack_spans(deep_attrs, 1, &sp, 1, &len);
    size_t w = len;
    assert_int_equal(otlp_traces_decode_proto(wrapped, w, NULL, &arena, span_sink, &out, &res), -1);
    assert_non_null(strstr(res.error, "nested deeper"));
    /* within the limit it decodes, and the array renders as JSON */
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    lim.max_depth = 1000;
    out.n = 0;
    assert_int_equal(otlp_traces_decode_proto(wrapped, w, &lim, &arena, span_sink, &out, &res), 0);
    assert_int_equal(out.n, 1);
    const str_t *dv = tag(&out.s[0], "deep");
    assert_non_null(dv);
    assert_int_equal(dv->len, 2 * (DEPTH - 1) + 4);
    assert_memory_equal(dv->ptr, "[[[", 3);
    free(wrapped);
    free(body);
    arena_dispose(&arena);
}

/* ---- traces: JSON ---- */

static const char trace_json[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
    "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"Frontend\"}},"
    "{\"key\":\"host.name\",\"value\":{\"stringValue\":\"node-1\"}}]},"
    "\"unknownField\":{\"deep\":[1,2,3]},"
    "\"scopeSpans\":[{\"scope\":{\"name\":\"io.outrider.proxy\",\"version\":\"0.1.0\"},\"spans\":["
    "{\"traceId\":\"0102030405060708090A0B0C0D0E0F10\",\"spanId\":\"a1a2a3a4a5a6a7a8\","
    "\"parentSpanId\":\"b1b2b3b4b5b6b7b8\",\"name\":\"GET /Users\",\"kind\":3,"
    "\"startTimeUnixNano\":\"1700000000123456789\",\"endTimeUnixNano\":1700000000125956789,"
    "\"attributes\":[{\"key\":\"http.status_code\",\"value\":{\"intValue\":\"503\"}},"
    "{\"key\":\"ratio\",\"value\":{\"doubleValue\":0.1}},"
    "{\"key\":\"cached\",\"value\":{\"boolValue\":true}},"
    "{\"key\":\"blob\",\"value\":{\"bytesValue\":\"aGk=\"}},"
    "{\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"a\",\"value\":{\"intValue\":1}}]}}},"
    "{\"key\":\"peer.service\",\"value\":{\"stringValue\":\"Backend\"}},"
    "{\"key\":\"network.peer.address\",\"value\":{\"stringValue\":\"10.1.2.3\"}},"
    "{\"key\":\"network.peer.port\",\"value\":{\"intValue\":8080}}],"
    "\"events\":[{\"timeUnixNano\":\"1700000000124000999\",\"name\":\"retry\"},"
    "{\"time_unix_nano\":\"1700000000125000000\",\"name\":\"exception\",\"attributes\":"
    "[{\"key\":\"exception.message\",\"value\":{\"stringValue\":\"x\\\"y\"}}]}],"
    "\"status\":{\"code\":\"STATUS_CODE_ERROR\",\"message\":\"boom\"}},"
    "{\"traceId\":\"0102\",\"spanId\":\"a1a2a3a4a5a6a7a8\",\"name\":\"bad\"},"
    "{\"traceId\":\"zz02030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\",\"name\":\"bad2\"},"
    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\",\"kind\":\"SPAN_KIND_SERVER\","
    "\"name\":\"ok\",\"parentSpanId\":\"\"}"
    "]}]}]}";

static void test_trace_json(void **state)
{
    (void)state;
    arena_t arena;
    arena_init(&arena, 0);
    spans_t out = {0};
    otlp_result_t res;
    size_t len = sizeof(trace_json) - 1;
    char *body = malloc(len);
    memcpy(body, trace_json, len);
    int rc = otlp_traces_decode_json((const uint8_t *)body, len, NULL, &arena, span_sink, &out, &res);
    if (rc != 0)
        fail_msg("decode failed: %s", res.error);
    memset(body, 0, len);
    free(body);
    assert_int_equal(res.accepted, 2);
    assert_int_equal(res.rejected, 2);
    assert_non_null(strstr(res.error, "trace_id"));

    const span_t *z = &out.s[0];
    assert_true(z->trace_id_high == 0x0102030405060708ull);
    assert_true(z->trace_id_low == 0x090a0b0c0d0e0f10ull);
    assert_true(z->id == 0xa1a2a3a4a5a6a7a8ull);
    assert_true(z->parent_id == 0xb1b2b3b4b5b6b7b8ull);
    assert_int_equal(z->kind, SPAN_KIND_CLIENT);
    assert_str(z->name, "get /users");
    assert_true(z->timestamp_us == 1700000000123456ull);
    assert_true(z->duration_us == 2500);
    assert_str(z->local.service_name, "frontend");
    assert_str(z->remote.service_name, "backend");
    assert_memory_equal(z->remote.ipv4, ((uint8_t[]){10, 1, 2, 3}), 4);
    assert_int_equal(z->remote.port, 8080);
    assert_tag(z, "http.status_code", "503");
    assert_tag(z, "ratio", "0.1");
    assert_tag(z, "cached", "true");
    assert_tag(z, "blob", "aGk=");
    assert_tag(z, "kv", "{\"a\":1}");
    assert_tag(z, "host.name", "node-1");
    assert_tag(z, "otel.scope.name", "io.outrider.proxy");
    assert_tag(z, "error", "boom");
    assert_tag(z, "otel.status_code", "ERROR");
    assert_int_equal(z->n_annotations, 2);
    assert_str(z->annotations[0].value, "retry");
    assert_true(z->annotations[0].timestamp_us == 1700000000124000ull);
    assert_str(z->annotations[1].value, "\"exception\":{\"exception.message\":\"x\\\"y\"}");

    z = &out.s[1];
    assert_int_equal(z->kind, SPAN_KIND_SERVER);
    assert_str(z->name, "ok");
    assert_true(z->parent_id == 0);
    assert_true(z->timestamp_us == 0);
    arena_dispose(&arena);
}

static void test_json_malformed(void **state)
{
    (void)state;
    arena_t arena;
    arena_init(&arena, 0);
    spans_t out = {0};
    otlp_result_t res;
    const char *bad[] = {
        "{\"resourceSpans\":[",                                                       /* truncated */
        "[]",                                                                         /* not an object */
        "{\"resourceSpans\":{}}",                                                     /* object where array expected */
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"kind\":\"NOPE\"}]}]}]}", /* bad enum */
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"startTimeUnixNano\":\"-5\"}]}]}]}",
        "{\"a\":tru}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = otlp_traces_decode_json((const uint8_t *)bad[i], strlen(bad[i]), NULL, &arena, span_sink, &out, &res);
        if (rc != -1)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(res.error, "invalid JSON"));
    }
    /* deep nesting, even inside ignored fields */
    char deep[512];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "{\"x\":");
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(otlp_traces_decode_json((const uint8_t *)deep, n, NULL, &arena, span_sink, &out, &res), -1);
    assert_non_null(strstr(res.error, "nesting deeper than 32"));

    /* arena limit */
    arena_t small;
    arena_init(&small, 512);
    assert_int_equal(otlp_traces_decode_json((const uint8_t *)trace_json, sizeof(trace_json) - 1, NULL, &small,
                                             span_sink, &out, &res),
                     -1);
    assert_non_null(strstr(res.error, "memory limit"));
    arena_dispose(&small);
    arena_dispose(&arena);
}

/* ---- metrics ---- */

static void test_metrics_proto(void **state)
{
    (void)state;
    g_nkv = 0;
    /* sum: delta, monotonic, int */
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint np = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT;
    kv_t *labels[] = {kv_str("route", "/a"), kv_int("code", 200)};
    np.attributes = labels;
    np.n_attributes = 2;
    np.start_time_unix_nano = 100;
    np.time_unix_nano = 200;
    np.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
    np.as_int = 42;
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint *nps[] = {&np};
    Opentelemetry__Proto__Metrics__V1__Sum sum = OPENTELEMETRY__PROTO__METRICS__V1__SUM__INIT;
    sum.data_points = nps;
    sum.n_data_points = 1;
    sum.aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
    sum.is_monotonic = 1;
    Opentelemetry__Proto__Metrics__V1__Metric m1 = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT;
    m1.name = "requests_total";
    m1.unit = "1";
    m1.description = "requests";
    m1.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
    m1.sum = &sum;

    /* histogram with exemplar, plus a bad one */
    double bounds[] = {0.1, 0.5, 1};
    uint64_t counts[] = {1, 2, 3, 4};
    Opentelemetry__Proto__Metrics__V1__Exemplar ex = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__INIT;
    ex.value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
    ex.as_double = 0.3;
    ex.time_unix_nano = 150;
    ex.trace_id.data = (uint8_t *)TRACE_ID;
    ex.trace_id.len = 16;
    ex.span_id.data = (uint8_t *)SPAN_ID;
    ex.span_id.len = 8;
    Opentelemetry__Proto__Metrics__V1__Exemplar *exs[] = {&ex};
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint hp =
        OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__INIT;
    hp.count = 10;
    hp._sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
    hp.sum = 5.5;
    hp.explicit_bounds = bounds;
    hp.n_explicit_bounds = 3;
    hp.bucket_counts = counts;
    hp.n_bucket_counts = 4;
    hp.exemplars = exs;
    hp.n_exemplars = 1;
    hp.time_unix_nano = 300;
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint bad = hp;
    bad.n_bucket_counts = 3;
    bad.n_exemplars = 0;
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hps[] = {&hp, &bad};
    Opentelemetry__Proto__Metrics__V1__Histogram h = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM__INIT;
    h.data_points = hps;
    h.n_data_points = 2;
    h.aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    Opentelemetry__Proto__Metrics__V1__Metric m2 = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT;
    m2.name = "latency";
    m2.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    m2.histogram = &h;

    /* gauge, double */
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint gp = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT;
    gp.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    gp.as_double = 2.5;
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint *gps[] = {&gp};
    Opentelemetry__Proto__Metrics__V1__Gauge g = OPENTELEMETRY__PROTO__METRICS__V1__GAUGE__INIT;
    g.data_points = gps;
    g.n_data_points = 1;
    Opentelemetry__Proto__Metrics__V1__Metric m3 = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT;
    m3.name = "temp";
    m3.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
    m3.gauge = &g;

    /* summary: not supported */
    Opentelemetry__Proto__Metrics__V1__SummaryDataPoint sdp =
        OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY_DATA_POINT__INIT;
    Opentelemetry__Proto__Metrics__V1__SummaryDataPoint *sdps[] = {&sdp, &sdp};
    Opentelemetry__Proto__Metrics__V1__Summary su = OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY__INIT;
    su.data_points = sdps;
    su.n_data_points = 2;
    Opentelemetry__Proto__Metrics__V1__Metric m4 = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT;
    m4.name = "quantiles";
    m4.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY;
    m4.summary = &su;

    Opentelemetry__Proto__Metrics__V1__Metric *ms[] = {&m1, &m2, &m3, &m4};
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm = OPENTELEMETRY__PROTO__METRICS__V1__SCOPE_METRICS__INIT;
    sm.metrics = ms;
    sm.n_metrics = 4;
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics *smp = &sm;
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm = OPENTELEMETRY__PROTO__METRICS__V1__RESOURCE_METRICS__INIT;
    rm.scope_metrics = &smp;
    rm.n_scope_metrics = 1;
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rmp = &rm;
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    req.resource_metrics = &rmp;
    req.n_resource_metrics = 1;
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *body = malloc(len);
    protobuf_c_message_pack(&req.base, body);

    arena_t arena;
    arena_init(&arena, 0);
    points_t out = {0};
    otlp_result_t res;
    assert_int_equal(otlp_metrics_decode_proto(body, len, NULL, &arena, point_sink, &out, &res), 0);
    free(body);
    assert_int_equal(res.accepted, 3);
    assert_int_equal(res.rejected, 3);
    assert_non_null(strstr(res.error, "latency"));
    assert_int_equal(out.n, 3);

    const metric_point_t *p = &out.p[0];
    assert_str(p->name, "requests_total");
    assert_str(p->unit, "1");
    assert_str(p->description, "requests");
    assert_int_equal(p->type, METRIC_SUM);
    assert_int_equal(p->temporality, METRIC_TEMPORALITY_DELTA);
    assert_int_equal(p->monotonic, 1);
    assert_true(p->value == 42.0);
    assert_true(p->start_time_unix_nano == 100 && p->time_unix_nano == 200);
    assert_int_equal(p->n_labels, 2);
    assert_str(p->labels[0].name, "route");
    assert_str(p->labels[0].value, "/a");
    assert_str(p->labels[1].name, "code");
    assert_str(p->labels[1].value, "200");

    p = &out.p[1];
    assert_str(p->name, "latency");
    assert_int_equal(p->type, METRIC_HISTOGRAM);
    assert_int_equal(p->temporality, METRIC_TEMPORALITY_CUMULATIVE);
    assert_true(p->count == 10);
    assert_true(p->has_sum);
    assert_true(p->sum == 5.5);
    assert_int_equal(p->n_bounds, 3);
    assert_true(p->bounds[0] == 0.1 && p->bounds[2] == 1.0);
    assert_true(p->bucket_counts[0] == 1 && p->bucket_counts[3] == 4);
    assert_int_equal(p->n_exemplars, 1);
    assert_true(p->exemplars[0].value == 0.3);
    assert_true(p->exemplars[0].time_unix_nano == 150);
    assert_true(p->exemplars[0].trace_id_high == 0x0102030405060708ull);
    assert_true(p->exemplars[0].trace_id_low == 0x090a0b0c0d0e0f10ull);
    assert_true(p->exemplars[0].span_id == 0xa1a2a3a4a5a6a7a8ull);

    p = &out.p[2];
    assert_int_equal(p->type, METRIC_GAUGE);
    assert_true(p->value == 2.5);
    assert_int_equal(p->n_labels, 0);

    buf_t b = BUF_INIT;
    otlp_encode_response(OTLP_SIGNAL_METRICS, 0, &res, &b);
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *r =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(NULL, b.len,
                                                                                              (uint8_t *)b.data);
    assert_non_null(r);
    assert_int_equal(r->partial_success->rejected_data_points, 3);
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__free_unpacked(r, NULL);
    b.len = 0;
    otlp_encode_response(OTLP_SIGNAL_METRICS, 1, &res, &b);
    assert_non_null(strstr(b.data, "\"rejectedDataPoints\":\"3\""));
    buf_dispose(&b);
    arena_dispose(&arena);
}

static void test_metrics_json(void **state)
{
    (void)state;
    static const char body[] =
        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":["
        "{\"name\":\"requests_total\",\"sum\":{\"aggregationTemporality\":1,\"isMonotonic\":true,"
        "\"dataPoints\":[{\"asInt\":\"42\",\"timeUnixNano\":\"200\",\"attributes\":"
        "[{\"key\":\"route\",\"value\":{\"stringValue\":\"/a\"}}]}]}},"
        "{\"name\":\"latency\",\"histogram\":{\"aggregationTemporality\":\"AGGREGATION_TEMPORALITY_DELTA\","
        "\"dataPoints\":[{\"count\":\"10\",\"sum\":5.5,\"explicitBounds\":[0.1,0.5,1],\"bucketCounts\":[\"1\",2,3,4],"
        "\"exemplars\":[{\"asDouble\":0.3,\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":"
        "\"a1a2a3a4a5a6a7a8\"}]},"
        "{\"count\":\"3\"}]}},"
        "{\"name\":\"exp\",\"exponentialHistogram\":{\"aggregationTemporality\":1,\"dataPoints\":[{\"count\":\"1\"}]}}"
        "]}]}]}";
    arena_t arena;
    arena_init(&arena, 0);
    points_t out = {0};
    otlp_result_t res;
    int rc = otlp_metrics_decode_json((const uint8_t *)body, sizeof(body) - 1, NULL, &arena, point_sink, &out, &res);
    if (rc != 0)
        fail_msg("decode failed: %s", res.error);
    assert_int_equal(res.accepted, 3);
    assert_int_equal(res.rejected, 1);
    assert_non_null(strstr(res.error, "exponential histograms are not supported"));
    const metric_point_t *p = &out.p[0];
    assert_int_equal(p->type, METRIC_SUM);
    assert_int_equal(p->temporality, METRIC_TEMPORALITY_DELTA);
    assert_true(p->monotonic);
    assert_true(p->value == 42.0);
    assert_str(p->labels[0].value, "/a");
    p = &out.p[1];
    assert_int_equal(p->type, METRIC_HISTOGRAM);
    assert_int_equal(p->temporality, METRIC_TEMPORALITY_DELTA);
    assert_true(p->has_sum && p->sum == 5.5);
    assert_int_equal(p->n_bounds, 3);
    assert_true(p->bucket_counts[0] == 1 && p->bucket_counts[3] == 4);
    assert_true(p->exemplars[0].span_id == 0xa1a2a3a4a5a6a7a8ull);
    p = &out.p[2];
    assert_false(p->has_sum);
    assert_int_equal(p->n_bounds, 0);
    assert_true(p->bucket_counts[0] == 3);
    arena_dispose(&arena);
}

/* ---- logs ---- */

static void test_logs(void **state)
{
    (void)state;
    g_nkv = 0;
    kv_t *rattrs[] = {kv_str("service.name", "Checkout")};
    kv_t *attrs[] = {kv_str("http.method", "GET"), kv_int("status", 200)};
    Opentelemetry__Proto__Logs__V1__LogRecord lr = OPENTELEMETRY__PROTO__LOGS__V1__LOG_RECORD__INIT;
    lr.time_unix_nano = 11;
    lr.observed_time_unix_nano = 12;
    lr.severity_number = OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_WARN;
    lr.severity_text = "WARN";
    kv_t *bodykv = kv_str("", "request done");
    lr.body = bodykv->value;
    lr.attributes = attrs;
    lr.n_attributes = 2;
    lr.trace_id.data = (uint8_t *)TRACE_ID;
    lr.trace_id.len = 16;
    lr.span_id.data = (uint8_t *)SPAN_ID;
    lr.span_id.len = 8;
    Opentelemetry__Proto__Logs__V1__LogRecord badrec = OPENTELEMETRY__PROTO__LOGS__V1__LOG_RECORD__INIT;
    badrec.trace_id.data = (uint8_t *)TRACE_ID;
    badrec.trace_id.len = 5;
    Opentelemetry__Proto__Logs__V1__LogRecord *lrs[] = {&lr, &badrec};
    Opentelemetry__Proto__Common__V1__InstrumentationScope sc =
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    sc.name = "access";
    Opentelemetry__Proto__Logs__V1__ScopeLogs sl = OPENTELEMETRY__PROTO__LOGS__V1__SCOPE_LOGS__INIT;
    sl.scope = &sc;
    sl.log_records = lrs;
    sl.n_log_records = 2;
    Opentelemetry__Proto__Logs__V1__ScopeLogs *slp = &sl;
    Opentelemetry__Proto__Resource__V1__Resource r = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    r.attributes = rattrs;
    r.n_attributes = 1;
    Opentelemetry__Proto__Logs__V1__ResourceLogs rl = OPENTELEMETRY__PROTO__LOGS__V1__RESOURCE_LOGS__INIT;
    rl.resource = &r;
    rl.scope_logs = &slp;
    rl.n_scope_logs = 1;
    Opentelemetry__Proto__Logs__V1__ResourceLogs *rlp = &rl;
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_SERVICE_REQUEST__INIT;
    req.resource_logs = &rlp;
    req.n_resource_logs = 1;
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *body = malloc(len);
    protobuf_c_message_pack(&req.base, body);

    arena_t arena;
    arena_init(&arena, 0);
    logs_t out = {0};
    otlp_result_t res;
    assert_int_equal(otlp_logs_decode_proto(body, len, NULL, &arena, log_sink, &out, &res), 0);
    free(body);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.rejected, 1);
    const otlp_log_t *l = &out.l[0];
    assert_true(l->time_unix_nano == 11 && l->observed_time_unix_nano == 12);
    assert_int_equal(l->severity_number, 13);
    assert_str(l->severity_text, "WARN");
    assert_str(l->body, "request done");
    assert_str(l->service_name, "Checkout");
    assert_str(l->scope_name, "access");
    assert_true(l->trace_id_high == 0x0102030405060708ull && l->span_id == 0xa1a2a3a4a5a6a7a8ull);
    assert_int_equal(l->n_attributes, 2);
    assert_str(l->attributes[1].key, "status");
    assert_str(l->attributes[1].value, "200");

    static const char json[] =
        "{\"resourceLogs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":"
        "\"svc\"}}]},"
        "\"scopeLogs\":[{\"logRecords\":[{\"timeUnixNano\":\"5\",\"severityNumber\":\"SEVERITY_NUMBER_ERROR\","
        "\"severityText\":\"ERROR\",\"body\":{\"kvlistValue\":{\"values\":[{\"key\":\"m\",\"value\":{\"stringValue\":"
        "\"x\"}}]}},"
        "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\"}]}]}]}";
    out.n = 0;
    int rc = otlp_logs_decode_json((const uint8_t *)json, sizeof(json) - 1, NULL, &arena, log_sink, &out, &res);
    if (rc != 0)
        fail_msg("decode failed: %s", res.error);
    assert_int_equal(res.accepted, 1);
    l = &out.l[0];
    assert_true(l->time_unix_nano == 5);
    assert_int_equal(l->severity_number, 17);
    assert_str(l->body, "{\"m\":\"x\"}");
    assert_str(l->service_name, "svc");
    assert_true(l->trace_id_low == 0x090a0b0c0d0e0f10ull);
    arena_dispose(&arena);
}

static void test_status(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    otlp_encode_status(1, 3, "invalid protobuf: \"x\"", &b);
    assert_string_equal(b.data, "{\"code\":3,\"message\":\"invalid protobuf: \\\"x\\\"\"}");
    b.len = 0;
    otlp_encode_status(0, 8, "too big", &b);
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, b.len, (uint8_t *)b.data);
    assert_non_null(st);
    assert_int_equal(st->code, 8);
    assert_string_equal(st->message, "too big");
    google__rpc__status__free_unpacked(st, NULL);
    buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_proto_full_mapping),
        cmocka_unit_test(test_trace_proto_kinds_status_endpoints),
        cmocka_unit_test(test_trace_proto_partial_success),
        cmocka_unit_test(test_trace_limits),
        cmocka_unit_test(test_trace_proto_malformed),
        cmocka_unit_test(test_trace_json),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_metrics_proto),
        cmocka_unit_test(test_metrics_json),
        cmocka_unit_test(test_logs),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
