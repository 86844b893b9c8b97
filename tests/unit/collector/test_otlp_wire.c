/*
 * Differential tests for collector/otlp_wire and collector/otlp_direct:
 * random ExportTraceServiceRequest bodies, written straight at the wire
 * level (every field type, unknown fields of every wire type, repeated
 * singular fields that protobuf-c merges, oneofs given twice, odd wire
 * types, deep AnyValue nesting) plus random mutations of them, are decoded
 * by otlp_traces_decode_proto (otlp_wire), by
 * otlp_traces_decode_proto_direct (straight to span_t), by
 * otlp_traces_decode_proto_spans (what ingest runs) and by
 * otlp_traces_decode_proto_reference (protobuf-c); the results and spans
 * must be identical, or every decode must fail. The direct path may
 * decline a body instead (counted): bodies of ordinary content and the
 * request shapes exporters send must never be declined nor handed over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "otlp.h"
#include "otlp_gen.h"
#include "otlp_wire.h"

static void gen_status(buf_t *b)
{
    buf_t st = BUF_INIT;
    if (chance(60))
        put_str(&st, 2, PICK(STRS));
    if (chance(80))
        put_uint(&st, 3, chance(90) ? rn(4) : rnd());
    if (chance(10))
        put_uint(&st, 1, 7); /* reserved field number: unknown */
    maybe_unknown(&st, 4);
    put_sub(b, 15, &st);
}

static void gen_span(buf_t *b, unsigned depth)
{
    if (chance(97))
        gen_id(b, 1, 16);
    if (chance(97))
        gen_id(b, 2, 8);
    if (chance(20))
        put_str(b, 3, "rojo=00f067aa0ba902b7");
    if (chance(50))
        gen_id(b, 4, 8);
    if (chance(95))
        put_str(b, 5, chance(50) ? "GET /Users" : PICK(STRS));
    if (chance(90))
        put_uint(b, 6, chance(95) ? rn(7) : rnd());
    uint64_t start = 1700000000000000000ull + rn(1000000000);
    if (chance(95))
        put_fixed64(b, 7, chance(5) ? 0 : start);
    if (chance(95))
        put_fixed64(b, 8, start + (chance(5) ? 0 : rn(100000000)));
    gen_attrs(b, 9, rn(9), depth);
    if (chance(20))
        put_uint(b, 10, rn(5));
    unsigned nev = chance(30) ? rn(4) : 0;
    for (unsigned i = 0; i < nev; i++) {
        buf_t ev = BUF_INIT;
        put_fixed64(&ev, 1, start + rn(1000000));
        if (chance(90))
            put_str(&ev, 2, chance(50) ? "retry" : PICK(STRS));
        gen_attrs(&ev, 3, plain ? 0 : rn(3), depth + 1);
        if (chance(10))
            put_uint(&ev, 4, 2);
        maybe_unknown(&ev, 5);
        put_sub(b, 11, &ev);
    }
    if (chance(10))
        put_uint(b, 12, 1);
    unsigned nlk = !plain && chance(15) ? rn(3) : 0;
    for (unsigned i = 0; i < nlk; i++) {
        buf_t lk = BUF_INIT;
        gen_id(&lk, 1, 16);
        gen_id(&lk, 2, 8);
        if (chance(30))
            put_str(&lk, 3, "k=v");
        gen_attrs(&lk, 4, rn(3), depth + 1);
        if (chance(20))
            put_uint(&lk, 5, 1);
        if (chance(30))
            put_fixed32(&lk, 6, 1);
        maybe_unknown(&lk, 7);
        put_sub(b, 13, &lk);
    }
    if (chance(5))
        put_uint(b, 14, 3);
    unsigned nst = chance(60) ? 1 : !plain && chance(15) ? 2 : 0;
    for (unsigned i = 0; i < nst; i++)
        gen_status(b);
    if (chance(30))
        put_fixed32(b, 16, 0x101);
    maybe_unknown(b, 17);
    if (chance(5))
        put_str(b, 5, "Renamed"); /* last value wins */
}

static void gen_request(buf_t *b, unsigned max_spans)
{
    unsigned nrs = 1 + rn(3);
    for (unsigned i = 0; i < nrs; i++) {
        buf_t rs = BUF_INIT;
        unsigned nres = chance(85) ? 1 : rn(plain ? 2 : 3);
        for (unsigned k = 0; k < nres; k++)
            gen_resource(&rs);
        unsigned nss = 1 + rn(3);
        for (unsigned j = 0; j < nss; j++) {
            buf_t ss = BUF_INIT;
            unsigned nsc = chance(80) ? 1 : rn(plain ? 2 : 3);
            for (unsigned k = 0; k < nsc; k++)
                gen_scope(&ss);
            unsigned nsp = rn(max_spans + 1);
            for (unsigned k = 0; k < nsp; k++) {
                buf_t sp = BUF_INIT;
                gen_span(&sp, 4);
                put_sub(&ss, 2, &sp);
            }
            if (chance(20))
                put_str(&ss, 3, "https://schema");
            maybe_unknown(&ss, 4);
            put_sub(&rs, 2, &ss);
        }
        if (chance(20))
            put_str(&rs, 3, "https://schema");
        maybe_unknown(&rs, 4);
        put_sub(b, 1, &rs);
        maybe_unknown(b, 2);
    }
}

/* ---- comparing the two decoders ---- */

typedef struct spans {
    span_t *s;
    size_t n, cap;
} spans_t;

static int collect(void *ctx, const span_t *s)
{
    spans_t *o = ctx;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->s = realloc(o->s, o->cap * sizeof(*o->s));
        assert_non_null(o->s);
    }
    o->s[o->n++] = *s;
    return 0;
}

static unsigned n_ok, n_fail;

/* How the direct path fared over the bodies given to diff_one. */
static struct {
    unsigned bodies, declined, declined_valid; /* declined_valid: bodies protobuf-c accepts */
    uint64_t spans, spans_handed, resources_handed, scopes_handed;
} direct;

static void print_span(const char *who, size_t i, const span_t *s)
{
    fprintf(stderr, "%s span %zu: name=%.*s kind=%d remote=%.*s tags:", who, i, (int)s->name.len, s->name.ptr, s->kind,
            (int)s->remote.service_name.len, s->remote.service_name.ptr);
    for (uint32_t t = 0; t < s->n_tags; t++)
        fprintf(stderr, " %.*s=%.*s", (int)s->tags[t].key.len, s->tags[t].key.ptr, (int)s->tags[t].value.len,
                s->tags[t].value.ptr);
    fprintf(stderr, "\n");
}

/* What one decoder made of a body. */
typedef struct outcome {
    const char *who;
    int rc;
    otlp_result_t r;
    const span_t *s;
    size_t n;
} outcome_t;

/* 1 when a and b agree (result, then spans); otherwise say how, with the body. */
static int agree(const outcome_t *a, const outcome_t *b, const uint8_t *body, size_t len)
{
    int same =
        a->rc == b->rc && (a->rc != 0 || (a->n == b->n && a->r.accepted == b->r.accepted &&
                                          a->r.rejected == b->r.rejected && strcmp(a->r.error, b->r.error) == 0));
    for (size_t i = 0; same && a->rc == 0 && i < a->n; i++) {
        if (!span_equal(&a->s[i], &b->s[i])) {
            print_span(a->who, i, &a->s[i]);
            print_span(b->who, i, &b->s[i]);
            same = 0;
        }
    }
    if (!same) {
        fprintf(stderr, "%s rc=%d n=%zu err=\"%s\" / %s rc=%d n=%zu err=\"%s\"\n", a->who, a->rc, a->n, a->r.error,
                b->who, b->rc, b->n, b->r.error);
        dump("decoders disagree", body, len);
    }
    return same;
}

/* A scratch copy of the body for the decoders that take one. */
static uint8_t *body_copy(const uint8_t *body, size_t len)
{
    uint8_t *copy = malloc(len + 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, body, len);
    return copy;
}

/*
 * The direct path on body against the reference's outcome: unless it
 * declines, the same result and the same spans; and it never writes into
 * the body.
 */
static void diff_direct(const uint8_t *body, size_t len, const otlp_limits_t *lim, const outcome_t *ref)
{
    arena_t a;
    arena_init(&a, 0);
    uint8_t *copy = body_copy(body, len);
    outcome_t d = {"direct", 0, {0}, NULL, 0};
    otlp_direct_stats_t st;
    d.rc = otlp_traces_decode_proto_direct(copy, len, lim, &a, &d.s, &d.n, &d.r, &st);
    assert_memory_equal(copy, body, len);
    direct.bodies++;
    direct.spans += st.spans;
    direct.spans_handed += st.spans_handed;
    direct.resources_handed += st.resources_handed;
    direct.scopes_handed += st.scopes_handed;
    if (d.rc == OTLP_DECLINED) {
        assert_non_null(st.declined);
        assert_null(d.s);
        direct.declined++;
        direct.declined_valid += ref->rc == 0;
    } else {
        assert_null(st.declined);
        assert_true(agree(&d, ref, body, len));
    }
    free(copy);
    arena_dispose(&a);
}

/* Decode body with every decoder and require the same outcome. */
static void diff_one(const uint8_t *body, size_t len, const otlp_limits_t *lim)
{
    arena_t a1, a2, a3;
    arena_init(&a1, 0);
    arena_init(&a2, 0);
    arena_init(&a3, 0);
    spans_t o1 = {0}, o2 = {0};
    outcome_t wire = {"wire", 0, {0}, NULL, 0}, ref = {"protobuf-c", 0, {0}, NULL, 0};
    wire.rc = otlp_traces_decode_proto(body, len, lim, &a1, collect, &o1, &wire.r);
    ref.rc = otlp_traces_decode_proto_reference(body, len, lim, &a2, collect, &o2, &ref.r);
    wire.s = o1.s;
    wire.n = o1.n;
    ref.s = o2.s;
    ref.n = o2.n;
    assert_true(agree(&wire, &ref, body, len));
    diff_direct(body, len, lim, &ref);

    /* what ingest runs: the direct path, or otlp_wire in place when it declines */
    uint8_t *copy = body_copy(body, len);
    outcome_t spans = {"in-place", 0, {0}, NULL, 0};
    spans.rc = otlp_traces_decode_proto_spans(copy, len, lim, &a3, &spans.s, &spans.n, &spans.r);
    assert_true(agree(&spans, &ref, body, len));
    if (spans.rc != 0)
        assert_true(spans.s == NULL && spans.n == 0);
    free(copy);

    if (wire.rc == 0)
        n_ok++;
    else
        n_fail++;
    free(o1.s);
    free(o2.s);
    arena_dispose(&a1);
    arena_dispose(&a2);
    arena_dispose(&a3);
}

static void direct_report(const char *what)
{
    fprintf(stderr, "%s: %u bodies, %u declined; spans direct %llu, handed %llu; resources handed %llu, scopes %llu\n",
            what, direct.bodies, direct.declined, (unsigned long long)direct.spans,
            (unsigned long long)direct.spans_handed, (unsigned long long)direct.resources_handed,
            (unsigned long long)direct.scopes_handed);
}

static void test_wire_differential_valid(void **state)
{
    (void)state;
    rng_state = 0x1234567887654321ull;
    n_ok = n_fail = 0;
    memset(&direct, 0, sizeof(direct));
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    for (int it = 0; it < 3000; it++) {
        buf_t b = BUF_INIT;
        gen_request(&b, it % 50 == 0 ? 200 : 6);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    assert_true(n_ok > 2500); /* generated bodies are valid, except the rare odd bool encodings */
    direct_report("valid");
}

static void test_wire_differential_mutated(void **state)
{
    (void)state;
    memset(&direct, 0, sizeof(direct));
    rng_state = 0xfeedfacecafebeefull;
    n_ok = n_fail = 0;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    for (int it = 0; it < 20000; it++) {
        buf_t b = BUF_INIT;
        gen_request(&b, 3);
        mutate(&b);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    assert_true(n_ok > 1000 && n_fail > 1000);
    direct_report("mutated");
}

static void test_wire_differential_limits(void **state)
{
    (void)state;
    rng_state = 0xabcdef0123456789ull;
    for (int it = 0; it < 3000; it++) {
        otlp_limits_t lim;
        otlp_limits_default(&lim);
        lim.max_depth = rn(12);
        lim.max_attributes = rn(6);
        lim.max_events = rn(3);
        lim.max_items = 1 + rn(10);
        lim.max_attribute_value_len = rn(40);
        buf_t b = BUF_INIT;
        gen_request(&b, 4);
        if (chance(30))
            mutate(&b);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
}

/* Bodies of ordinary content never leave the direct path, and it agrees with protobuf-c on them. */
static void test_direct_plain(void **state)
{
    (void)state;
    rng_state = 0x0123456789abcdefull;
    memset(&direct, 0, sizeof(direct));
    plain = 1;
    for (int it = 0; it < 4000; it++) {
        otlp_limits_t lim;
        otlp_limits_default(&lim);
        if (it % 2) {
            lim.max_depth = 6 + rn(6);
            lim.max_attributes = rn(6);
            lim.max_events = rn(3);
            lim.max_items = 1 + rn(10);
            lim.max_attribute_value_len = rn(40);
        }
        buf_t b = BUF_INIT;
        gen_request(&b, it % 50 == 0 ? 200 : 6);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    plain = 0;
    direct_report("plain");
    assert_int_equal(direct.declined_valid, 0);
    assert_int_equal(direct.spans_handed, 0);
    assert_int_equal(direct.resources_handed, 0);
    assert_int_equal(direct.scopes_handed, 0);
    assert_true(direct.spans > 20000);
}

/* ---- requests as exporters write them (protobuf-c packs them) ---- */

typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Common__V1__AnyValue any_t;
typedef Opentelemetry__Proto__Trace__V1__Span pspan_t;

#define SHAPE_SPANS 600
#define SHAPE_ATTRS 8

/* Storage for one request: everything static, filled by shape_build. */
static struct {
    pspan_t spans[SHAPE_SPANS];
    pspan_t *sp[SHAPE_SPANS];
    kv_t kvs[SHAPE_SPANS][SHAPE_ATTRS];
    any_t vals[SHAPE_SPANS][SHAPE_ATTRS];
    kv_t *kvp[SHAPE_SPANS][SHAPE_ATTRS];
    uint8_t ids[SHAPE_SPANS][32];
    char urls[SHAPE_SPANS][48];
    Opentelemetry__Proto__Trace__V1__Status status[SHAPE_SPANS];
    Opentelemetry__Proto__Trace__V1__Span__Event events[SHAPE_SPANS][2];
    Opentelemetry__Proto__Trace__V1__Span__Event *evp[SHAPE_SPANS][2];
    kv_t ev_kv[3];
    any_t ev_val[3];
    kv_t *ev_kvp[3];
    Opentelemetry__Proto__Trace__V1__Span__Link link;
    Opentelemetry__Proto__Trace__V1__Span__Link *linkp;
    any_t arr_items[2];
    any_t *arr_itemp[2];
    Opentelemetry__Proto__Common__V1__ArrayValue arr;
    kv_t rkv[5][8];
    any_t rval[5][8];
    kv_t *rkvp[5][8];
    char names[5][32];
    Opentelemetry__Proto__Resource__V1__Resource res[5];
    Opentelemetry__Proto__Common__V1__InstrumentationScope scope;
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss[5];
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp[5];
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs[5];
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp[5];
} shape;

static void kv_str(kv_t *kv, any_t *v, const char *k, const char *s)
{
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    kv->key = (char *)k;
    kv->value = v;
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
}

static void kv_int(kv_t *kv, any_t *v, const char *k, int64_t i)
{
    kv_str(kv, v, k, NULL);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
}

static void kv_bool(kv_t *kv, any_t *v, const char *k, int b)
{
    kv_str(kv, v, k, NULL);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
}

enum shape_kind {
    SHAPE_SPAN_LOAD, /* tests/tools/span_load's requests: 5 services, 6 attributes, no scope */
    SHAPE_SDK,       /* an OpenTelemetry SDK's: rich resource, scope, status, events, int and bool attributes */
    SHAPE_SDK_ODD,   /* SHAPE_SDK plus one exception event with attributes, one link and one array attribute */
};

/* Pack a request of the given shape into out. */
static void shape_build(enum shape_kind kind, buf_t *out)
{
    static const char *const methods[] = {"GET", "POST", "GET", "GET"};
    int sdk = kind != SHAPE_SPAN_LOAD;
    int n_res = sdk ? 2 : 5;
    for (int i = 0; i < SHAPE_SPANS; i++) {
        pspan_t *s = &shape.spans[i];
        opentelemetry__proto__trace__v1__span__init(s);
        shape.sp[i] = s;
        int k = i % 4;
        for (int b = 0; b < 32; b++)
            shape.ids[i][b] = (uint8_t)(i * 7 + b * 13 + 1);
        s->trace_id = (ProtobufCBinaryData){16, shape.ids[i]};
        s->span_id = (ProtobufCBinaryData){8, shape.ids[i] + 16};
        if (k > 0)
            s->parent_span_id = (ProtobufCBinaryData){8, shape.ids[i] + 24};
        s->name = (char *)(k % 2 ? "get /api/items" : sdk ? "POST /API/Orders" : "post /api/orders");
        s->kind = k % 2 ? OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
                        : OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
        if (sdk && i % 10 == 9)
            s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
        s->start_time_unix_nano = 1700000000000000000ull + (uint64_t)i * 1000123;
        s->end_time_unix_nano = s->start_time_unix_nano + 150000 + (uint64_t)i * 977;
        snprintf(shape.urls[i], sizeof(shape.urls[i]), "http://reviews:9080/api/items/%d", i * 37 % 1000);
        kv_t *kv = shape.kvs[i];
        any_t *v = shape.vals[i];
        int n = 0;
        if (!sdk) {
            kv_str(&kv[n], &v[n], "http.method", methods[k]), n++;
            kv_str(&kv[n], &v[n], "http.url", shape.urls[i]), n++;
            kv_int(&kv[n], &v[n], "http.status_code", k == 3 && i % 8 == 7 ? 503 : 200), n++;
            kv_str(&kv[n], &v[n], "upstream_cluster", "outbound|9080||reviews.default.svc.cluster.local"), n++;
            kv_str(&kv[n], &v[n], "response_flags", "-"), n++;
            kv_str(&kv[n], &v[n], "peer.service", "reviews"), n++;
        } else {
            kv_str(&kv[n], &v[n], "http.request.method", methods[k]), n++;
            kv_str(&kv[n], &v[n], "url.full", shape.urls[i]), n++;
            kv_int(&kv[n], &v[n], "http.response.status_code", i % 13 == 0 ? 500 : 200 + i % 3), n++;
            kv_str(&kv[n], &v[n], "server.address", i % 5 ? "Reviews.Default" : "10.1.2.3"), n++;
            kv_int(&kv[n], &v[n], "server.port", i % 7 ? 9080 : -1), n++;
            kv_str(&kv[n], &v[n], "network.peer.address", i % 3 ? "10.0.0.7" : "fe80::1"), n++;
            kv_int(&kv[n], &v[n], "thread.id", i * 1013), n++;
            kv_bool(&kv[n], &v[n], "error", i % 11 == 0), n++;
            Opentelemetry__Proto__Trace__V1__Status *st = &shape.status[i];
            opentelemetry__proto__trace__v1__status__init(st);
            st->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)(i % 13 == 0 ? 2 : i % 2);
            st->message = (char *)(i % 13 == 0 ? "Internal Error" : "");
            s->status = st;
            s->trace_state = (char *)(i % 4 == 0 ? "vendor=1" : "");
            if (i % 6 == 0) {
                for (int e = 0; e < 2; e++) {
                    opentelemetry__proto__trace__v1__span__event__init(&shape.events[i][e]);
                    shape.events[i][e].time_unix_nano = s->start_time_unix_nano + (uint64_t)e * 1000;
                    shape.events[i][e].name = (char *)(e ? "retry" : "message");
                    shape.evp[i][e] = &shape.events[i][e];
                }
                s->events = shape.evp[i];
                s->n_events = 2;
            }
        }
        for (int j = 0; j < n; j++)
            shape.kvp[i][j] = &kv[j];
        s->attributes = shape.kvp[i];
        s->n_attributes = (size_t)n;
    }
    if (kind == SHAPE_SDK_ODD) {
        kv_str(&shape.ev_kv[0], &shape.ev_val[0], "exception.type", "IOError");
        kv_str(&shape.ev_kv[1], &shape.ev_val[1], "exception.message", "connection reset");
        kv_bool(&shape.ev_kv[2], &shape.ev_val[2], "exception.escaped", 1);
        for (int j = 0; j < 3; j++)
            shape.ev_kvp[j] = &shape.ev_kv[j];
        shape.events[6][1].attributes = shape.ev_kvp; /* span 6 has events */
        shape.events[6][1].n_attributes = 3;
        opentelemetry__proto__trace__v1__span__link__init(&shape.link);
        shape.link.trace_id = (ProtobufCBinaryData){16, shape.ids[1]};
        shape.link.span_id = (ProtobufCBinaryData){8, shape.ids[1] + 16};
        shape.linkp = &shape.link;
        shape.spans[101].links = &shape.linkp;
        shape.spans[101].n_links = 1;
        for (int j = 0; j < 2; j++) {
            opentelemetry__proto__common__v1__any_value__init(&shape.arr_items[j]);
            shape.arr_items[j].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            shape.arr_items[j].string_value = (char *)(j ? "gzip" : "br");
            shape.arr_itemp[j] = &shape.arr_items[j];
        }
        opentelemetry__proto__common__v1__array_value__init(&shape.arr);
        shape.arr.values = shape.arr_itemp;
        shape.arr.n_values = 2;
        shape.vals[202][1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
        shape.vals[202][1].array_value = &shape.arr;
    }
    int per = SHAPE_SPANS / n_res;
    for (int j = 0; j < n_res; j++) {
        int n = 0;
        snprintf(shape.names[j], sizeof(shape.names[j]), sdk ? "Service-%d" : "service-%d", j);
        kv_str(&shape.rkv[j][n], &shape.rval[j][n], "service.name", shape.names[j]), n++;
        if (sdk) {
            kv_str(&shape.rkv[j][n], &shape.rval[j][n], "telemetry.sdk.name", "opentelemetry"), n++;
            kv_str(&shape.rkv[j][n], &shape.rval[j][n], "telemetry.sdk.language", "go"), n++;
            kv_str(&shape.rkv[j][n], &shape.rval[j][n], "telemetry.sdk.version", "1.24.0"), n++;
            kv_str(&shape.rkv[j][n], &shape.rval[j][n], "host.name", "node-7"), n++;
            kv_int(&shape.rkv[j][n], &shape.rval[j][n], "process.pid", 4242 + j), n++;
            kv_str(&shape.rkv[j][n], &shape.rval[j][n], "url.full", "overridden by the span's"), n++;
        }
        for (int a = 0; a < n; a++)
            shape.rkvp[j][a] = &shape.rkv[j][a];
        opentelemetry__proto__resource__v1__resource__init(&shape.res[j]);
        shape.res[j].attributes = shape.rkvp[j];
        shape.res[j].n_attributes = (size_t)n;
        opentelemetry__proto__trace__v1__scope_spans__init(&shape.ss[j]);
        shape.ss[j].spans = shape.sp + j * per;
        shape.ss[j].n_spans = (size_t)per;
        if (sdk) {
            opentelemetry__proto__common__v1__instrumentation_scope__init(&shape.scope);
            shape.scope.name = "io.opentelemetry.http";
            shape.scope.version = "0.49b0";
            shape.ss[j].scope = &shape.scope;
        }
        shape.ssp[j] = &shape.ss[j];
        opentelemetry__proto__trace__v1__resource_spans__init(&shape.rs[j]);
        shape.rs[j].resource = &shape.res[j];
        shape.rs[j].scope_spans = &shape.ssp[j];
        shape.rs[j].n_scope_spans = 1;
        shape.rsp[j] = &shape.rs[j];
    }
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.resource_spans = shape.rsp;
    req.n_resource_spans = (size_t)n_res;
    size_t len = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(&req);
    buf_reserve(out, len);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, (uint8_t *)out->data);
    out->len = len;
}

static void direct_stats_of(const buf_t *b, const otlp_limits_t *lim, otlp_direct_stats_t *st)
{
    arena_t a;
    arena_init(&a, 0);
    const span_t *spans;
    size_t n;
    otlp_result_t r;
    assert_int_equal(otlp_traces_decode_proto_direct((const uint8_t *)b->data, b->len, lim, &a, &spans, &n, &r, st), 0);
    arena_dispose(&a);
}

/* The shapes exporters send stay on the direct path; the odd parts of one are handed over alone. */
static void test_direct_exporter_shapes(void **state)
{
    (void)state;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    otlp_direct_stats_t st;
    for (int kind = SHAPE_SPAN_LOAD; kind <= SHAPE_SDK_ODD; kind++) {
        buf_t b = BUF_INIT;
        shape_build((enum shape_kind)kind, &b);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        direct_stats_of(&b, &lim, &st);
        assert_null(st.declined);
        assert_int_equal(st.spans + st.spans_handed, SHAPE_SPANS);
        assert_int_equal(st.spans_handed, kind == SHAPE_SDK_ODD ? 3 : 0);
        assert_int_equal(st.resources_handed + st.scopes_handed, 0);
        lim.max_attribute_value_len = 5; /* cuts keys and names too */
        lim.max_attributes = 3;
        diff_one((const uint8_t *)b.data, b.len, &lim);
        otlp_limits_default(&lim);
        buf_dispose(&b);
    }
}

/*
 * UTF-8 on the direct path: a byte >= 0x80 (ill-formed alone, or part of
 * a well-formed sequence) at every position around its 16-byte scans, in
 * every string a span keeps (tag keys and values of span and resource,
 * event names, the status message, scope name and version, span and peer
 * service names). The direct path must repair exactly as protobuf-c's
 * decode does, and read all of it itself.
 */
static void test_direct_utf8_positions(void **state)
{
    (void)state;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    static const char *const inserts[] = {"\xff", "\xc3\xa9", "\xe2\x82", "\xed\xa0\x80", "\xc4\xb0"};
    char text[48];
    for (size_t len = 1; len <= 40; len++) {
        for (size_t at = 0; at<len; at += len> 20 ? 3 : 1) {
            for (size_t w = 0; w < sizeof(inserts) / sizeof(inserts[0]); w++) {
                for (size_t i = 0; i < len; i++)
                    text[i] = (char)('a' + i % 26 - (i % 7 == 3 ? 32 : 0));
                size_t n = strlen(inserts[w]);
                memcpy(text + at, inserts[w], at + n <= len ? n : len - at);
                text[len] = '\0';
                buf_t kv = BUF_INIT, any = BUF_INIT, peer = BUF_INIT, pany = BUF_INIT, ev = BUF_INIT, st = BUF_INIT;
                buf_t sp = BUF_INIT, sc = BUF_INIT, r = BUF_INIT, rkv = BUF_INIT, rany = BUF_INIT;
                buf_t ss = BUF_INIT, rs = BUF_INIT, req = BUF_INIT;
                put_str(&any, 1, text);
                put_str(&kv, 1, text);
                put_sub(&kv, 2, &any);
                put_str(&pany, 1, text);
                put_str(&peer, 1, "peer.service");
                put_sub(&peer, 2, &pany);
                put_fixed64(&ev, 1, 1700000000000000000ull);
                put_str(&ev, 2, text);
                put_str(&st, 2, text);
                put_uint(&st, 3, 2);
                put_len(&sp, 1, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
                put_len(&sp, 2, "\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8", 8);
                put_str(&sp, 5, text);
                put_uint(&sp, 6, 3);
                put_sub(&sp, 9, &kv);
                put_sub(&sp, 9, &peer);
                put_sub(&sp, 11, &ev);
                put_sub(&sp, 15, &st);
                put_str(&sc, 1, text);
                put_str(&sc, 2, text);
                put_str(&rany, 1, text);
                put_str(&rkv, 1, text);
                put_sub(&rkv, 2, &rany);
                put_sub(&r, 1, &rkv);
                put_sub(&ss, 1, &sc);
                put_sub(&ss, 2, &sp);
                put_sub(&rs, 1, &r);
                put_sub(&rs, 2, &ss);
                put_sub(&req, 1, &rs);
                lim.max_attribute_value_len = len % 3 == 0 ? (uint32_t)(len / 2 + 1) : 0; /* cut, then repaired */
                diff_one((const uint8_t *)req.data, req.len, &lim);
                otlp_direct_stats_t stats;
                direct_stats_of(&req, &lim, &stats);
                assert_null(stats.declined);
                assert_int_equal(stats.spans, 1);
                assert_int_equal(stats.spans_handed + stats.resources_handed + stats.scopes_handed, 0);
                buf_dispose(&req);
            }
        }
    }
}

/* What the direct path hands to otlp_wire as a whole message, and what it declines. */
static void test_direct_hand_over_and_decline(void **state)
{
    (void)state;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    otlp_direct_stats_t st;
    buf_t kv = BUF_INIT, any = BUF_INIT, arr = BUF_INIT, item = BUF_INIT;
    put_str(&item, 1, "x");
    put_sub(&arr, 1, &item);
    put_sub(&any, 5, &arr); /* an array value */
    put_str(&kv, 1, "tags");
    put_sub(&kv, 2, &any);
    buf_t span = BUF_INIT, r = BUF_INIT, sc = BUF_INIT, ss = BUF_INIT, rs = BUF_INIT, req = BUF_INIT;
    put_len(&span, 1, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
    put_len(&span, 2, "\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8", 8);
    put_str(&span, 5, "x");
    put_len(&r, 1, kv.data, kv.len); /* resource attribute: array */
    put_str(&sc, 1, "scope");
    put_len(&sc, 3, kv.data, kv.len); /* scope attribute: array */
    put_len(&ss, 1, sc.data, sc.len);
    put_len(&ss, 2, span.data, span.len);
    put_len(&rs, 1, r.data, r.len);
    put_len(&rs, 2, ss.data, ss.len);
    put_len(&req, 1, rs.data, rs.len);
    diff_one((const uint8_t *)req.data, req.len, &lim);
    direct_stats_of(&req, &lim, &st);
    assert_null(st.declined);
    assert_int_equal(st.resources_handed, 1);
    assert_int_equal(st.scopes_handed, 1);
    assert_int_equal(st.spans, 1);

    /* more "error" attributes than the direct path tracks: that span alone is handed over */
    for (int many = 0; many < 2; many++) {
        buf_t sp2 = BUF_INIT, st2 = BUF_INIT, ss3 = BUF_INIT, rs3 = BUF_INIT, req3 = BUF_INIT;
        buf_append(&sp2, span.data, span.len);
        for (int i = 0; i < (many ? 9 : 8); i++) {
            buf_t ekv = BUF_INIT, ev = BUF_INIT;
            put_uint(&ev, 2, (unsigned)i % 2);
            put_str(&ekv, 1, "error");
            put_sub(&ekv, 2, &ev);
            put_sub(&sp2, 9, &ekv);
        }
        put_uint(&st2, 3, 1);
        put_sub(&sp2, 15, &st2);
        put_len(&ss3, 2, sp2.data, sp2.len);
        put_len(&ss3, 2, span.data, span.len);
        put_len(&rs3, 2, ss3.data, ss3.len);
        put_len(&req3, 1, rs3.data, rs3.len);
        diff_one((const uint8_t *)req3.data, req3.len, &lim);
        direct_stats_of(&req3, &lim, &st);
        assert_int_equal(st.spans, many ? 1 : 2);
        assert_int_equal(st.spans_handed, many ? 1 : 0);
        buf_dispose(&sp2);
        buf_dispose(&ss3);
        buf_dispose(&rs3);
        buf_dispose(&req3);
    }

    static const struct {
        const char *what;
        unsigned depth;
        const char *declined;
    } cases[] = {
        {"resource twice", 32, "Resource given twice or after scope_spans"},
        {"resource after scope_spans", 32, "Resource given twice or after scope_spans"},
        {"scope after a span", 32, "InstrumentationScope given twice or after spans"},
        {"max_depth 5", 5, "max_depth below 6"},
        {"truncated", 32, "malformed protobuf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_t ss2 = BUF_INIT, rs2 = BUF_INIT, req2 = BUF_INIT;
        if (i == 2) {
            put_len(&ss2, 2, span.data, span.len);
            put_len(&ss2, 1, sc.data, sc.len);
        } else {
            put_len(&ss2, 2, span.data, span.len);
        }
        if (i == 0)
            put_len(&rs2, 1, r.data, r.len);
        if (i != 1)
            put_len(&rs2, 1, r.data, r.len);
        put_len(&rs2, 2, ss2.data, ss2.len);
        if (i == 1)
            put_len(&rs2, 1, r.data, r.len);
        put_len(&req2, 1, rs2.data, rs2.len);
        if (i == 4)
            req2.len--;
        lim.max_depth = cases[i].depth;
        diff_one((const uint8_t *)req2.data, req2.len, &lim);
        arena_t a;
        arena_init(&a, 0);
        const span_t *spans;
        size_t n;
        otlp_result_t res;
        assert_int_equal(
            otlp_traces_decode_proto_direct((const uint8_t *)req2.data, req2.len, &lim, &a, &spans, &n, &res, &st),
            OTLP_DECLINED);
        assert_string_equal(st.declined, cases[i].declined);
        arena_dispose(&a);
        buf_dispose(&ss2);
        buf_dispose(&rs2);
        buf_dispose(&req2);
        otlp_limits_default(&lim);
    }
    buf_dispose(&kv);
    buf_dispose(&span);
    buf_dispose(&r);
    buf_dispose(&sc);
    buf_dispose(&ss);
    buf_dispose(&rs);
    buf_dispose(&req);
}

/* Hand-written encodings of the corner cases the generator only hits by luck. */
static void test_wire_corner_cases(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *hex;
    } cases[] = {
        {"empty", ""},
        {"group start", "0b"},
        {"group end", "0c"},
        {"wire type 6", "0e"},
        {"field 0", "02 00"},
        {"field 0 in two bytes", "80 00 00"},
        {"tag of 5 bytes", "8a 80 80 80 00 00"},
        {"tag of 6 bytes", "8a 80 80 80 80 00 00"},
        {"field number 2^29", "82 80 80 80 10 00"},
        {"field number 2^29-1", "fa ff ff ff 0f 00"},
        {"varint of 10 bytes", "10 ff ff ff ff ff ff ff ff ff 01"},
        {"varint of 11 bytes", "10 ff ff ff ff ff ff ff ff ff ff 01"},
        {"length of 5 bytes", "0a 80 80 80 80 00"},
        {"length of 6 bytes", "0a 80 80 80 80 80 00"},
        {"length past the end", "0a 05 00"},
        {"resource_spans as varint", "08 01"},
        {"empty resource spans", "0a 00 0a 00"},
        {"fixed64 truncated", "19 00 00"},
        {"fixed32 truncated", "1d 00"},
        /* "span:" cases: the hex is appended to a valid span (ids and name) inside a request */
        {"span: kind as fixed32", "35 01 00 00 00"},
        {"span: kind of 10 bytes", "30 83 80 80 80 80 80 80 80 80 01"},
        {"span: kind negative", "30 ff ff ff ff ff ff ff ff ff 01"},
        {"span: status twice, second without message", "7a 08 12 04 62 6f 6f 6d 18 02 7a 02 18 01"},
        {"span: status twice, second with empty message", "7a 08 12 04 62 6f 6f 6d 18 02 7a 04 12 00 18 01"},
        {"span: status code as fixed64", "7a 09 19 02 00 00 00 00 00 00 00"},
        {"span: bool as length-delimited",
         "4a 0c 0a 01 62 12 07 12 05 80 00 00 00 00 4a 0a 0a 01 63 12 05 12 03 00 80 00"},
        {"span: bool as fixed64 and fixed32",
         "4a 0e 0a 01 62 12 09 11 00 00 00 00 00 01 00 00 4a 0a 0a 01 63 12 05 15 00 00 00 00"},
        {"span: value twice, second empty", "4a 0a 0a 01 62 12 03 0a 01 7a 12 00"},
        {"span: value twice, both empty", "4a 07 0a 01 62 12 00 12 00"},
        {"span: int value twice, second empty", "4a 09 0a 01 62 12 02 18 05 12 00"},
        {"span: bytes value twice, second empty", "4a 0a 0a 01 62 12 03 3a 01 ff 12 00"},
        {"span: empty bytes value twice, second empty", "4a 09 0a 01 62 12 02 3a 00 12 00"},
        {"span: array value twice, second empty", "4a 0e 0a 01 62 12 07 2a 05 0a 03 0a 01 61 12 00"},
        {"span: oneof given twice", "4a 0d 0a 01 62 12 08 0a 02 68 69 18 07 0a 00"},
        {"span: array replaced by array", "4a 12 0a 01 62 12 0d 2a 05 0a 03 0a 01 61 2a 04 0a 02 18 01"},
        {"span: event with attributes", "5a 12 09 00 00 00 00 00 00 00 01 12 01 65 1a 04 0a 02 6b 31"},
        {"span: link with bad attribute", "6a 04 22 02 12 05"},
        {"span: repeated attributes as varint", "48 01"},
        {"span: group inside", "4b 4c"},
        {"span: unknown fields of each wire type", "a0 1f 01 a9 1f 00 00 00 00 00 00 00 00 ad 1f 00 00 00 00 b2 1f 00"},
        {"span: name twice", "2a 01 59"},
        {"span: parent of 3 bytes", "22 03 01 02 03"},
        {"resource twice",
         "0a 2e 0a 15 0a 13 0a 0c 73 65 72 76 69 63 65 2e 6e 61 6d 65 12 03 0a 01 41 0a 0b 0a 09 0a 01 62 12 04 0a 02 "
         "42 42 0a 08 0a 06 0a 04 0a 02 61 61"},
    };
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t body[256];
        size_t n = 0;
        for (const char *h = cases[i].hex; *h;) {
            if (*h == ' ') {
                h++;
                continue;
            }
            unsigned v;
            assert_int_equal(sscanf(h, "%2x", &v), 1);
            body[n++] = (uint8_t)v;
            h += 2;
        }
        buf_t b = BUF_INIT;
        if (strncmp(cases[i].what, "span:", 5) == 0) {
            buf_t sp = BUF_INIT, ss = BUF_INIT, rs = BUF_INIT;
            put_len(&sp, 1, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
            put_len(&sp, 2, "\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8", 8);
            put_str(&sp, 5, "x");
            buf_append(&sp, body, n);
            put_sub(&ss, 2, &sp);
            put_sub(&rs, 2, &ss);
            put_sub(&b, 1, &rs);
        } else {
            buf_append(&b, body, n);
        }
        diff_one((const uint8_t *)b.data, b.len, &lim);
        for (size_t cut = 0; cut < b.len; cut++)
            diff_one((const uint8_t *)b.data, cut, &lim);
        buf_dispose(&b);
    }
}

/* The decoder alone: errors name an offset, structs are filled, the arena limit is honoured. */
static void test_wire_api(void **state)
{
    (void)state;
    arena_t arena;
    arena_init(&arena, 0);
    char err[128];
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req = NULL;
    static const uint8_t bad[] = {0x0a, 0x02, 0x12, 0x05};
    assert_int_equal(otlp_wire_decode_traces(bad, sizeof(bad), 32, &arena, &req, NULL, err, sizeof(err)),
                     OTLP_WIRE_INVALID);
    assert_null(req);
    assert_string_equal(err, "invalid protobuf: truncated length-delimited field 2 at offset 2");

    buf_t b = BUF_INIT;
    rng_state = 42;
    gen_request(&b, 50);
    assert_int_equal(otlp_wire_decode_traces((const uint8_t *)b.data, b.len, 32, &arena, &req, NULL, err, sizeof(err)),
                     0);
    assert_non_null(req);
    assert_true(req->n_resource_spans >= 1);
    arena_dispose(&arena);

    arena_init(&arena, 4096);
    assert_int_equal(otlp_wire_decode_traces((const uint8_t *)b.data, b.len, 32, &arena, &req, NULL, err, sizeof(err)),
                     OTLP_WIRE_NOMEM);
    arena_dispose(&arena);
    buf_dispose(&b);
}

/* Request with one span whose name is name (and ids with bytes >= 0x80, which are not strings). */
static void one_span_request(buf_t *req, const char *name)
{
    static const uint8_t trace[16] = {0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0x80};
    static const uint8_t id[8] = {0x81, 1, 2, 3, 4, 5, 6, 0xf0};
    buf_t span = BUF_INIT, scope = BUF_INIT, rs = BUF_INIT;
    put_len(&span, 1, trace, sizeof(trace));
    put_len(&span, 2, id, sizeof(id));
    put_str(&span, 5, name);
    put_fixed64(&span, 7, 0xfedcba9876543210ull);
    put_sub(&scope, 2, &span);
    put_sub(&rs, 2, &scope);
    req->len = 0;
    put_sub(req, 1, &rs);
    buf_dispose(&span);
    buf_dispose(&scope);
    buf_dispose(&rs);
}

/* *ascii tells whether any string (not bytes, ids or numbers) has a byte >= 0x80, in short and long strings. */
static void test_wire_ascii_flag(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int ascii;
    } cases[] = {
        {"", 1},
        {"get", 1},
        {"get /api/items/1234", 1},
        {"\xc3\xa9", 0},
        {"caf\xc3\xa9", 0},
        {"abcdefgh\xff", 0},
        {"\xff"
         "abcdefghijklmnop",
         0},
        {"abcdefghijklmnop\x80", 0},
    };
    buf_t req = BUF_INIT;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        arena_t arena;
        arena_init(&arena, 0);
        char err[128];
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r = NULL;
        one_span_request(&req, cases[i].name);
        int ascii = -1;
        assert_int_equal(
            otlp_wire_decode_traces((const uint8_t *)req.data, req.len, 32, &arena, &r, &ascii, err, sizeof(err)), 0);
        if (ascii != cases[i].ascii)
            fail_msg("name \"%s\": ascii %d, wanted %d", cases[i].name, ascii, cases[i].ascii);
        assert_string_equal(r->resource_spans[0]->scope_spans[0]->spans[0]->name, cases[i].name);
        ascii = -1;
        assert_int_equal(
            otlp_wire_decode_traces_inplace((uint8_t *)req.data, req.len, 32, &arena, &r, &ascii, err, sizeof(err)), 0);
        assert_int_equal(ascii, cases[i].ascii);
        arena_dispose(&arena);
    }
    buf_dispose(&req);
}

/*
 * Strings whose lengths otlp_wire re-encodes before them: every size class
 * of the length (1..3 groups), embedded NULs (the length is the C string's),
 * non-minimal length prefixes and multi-byte tags; both decoders must
 * agree, and otlp_wire_strlen must equal strlen on the decoded structs.
 */
static void put_str_odd(buf_t *b, uint32_t num, const char *s, size_t n, unsigned variant)
{
    if (variant & 1) { /* tag in 3 bytes */
        uint64_t t = (uint64_t)num << 3 | 2;
        uint8_t tb[3] = {(uint8_t)(0x80 | (t & 0x7f)), (uint8_t)(0x80 | ((t >> 7) & 0x7f)), (uint8_t)(t >> 14)};
        buf_append(b, tb, 3);
    } else {
        put_tag(b, num, 2);
    }
    if (variant & 2) { /* length in 4 bytes */
        uint8_t lb[4] = {(uint8_t)(0x80 | (n & 0x7f)), (uint8_t)(0x80 | ((n >> 7) & 0x7f)),
                         (uint8_t)(0x80 | ((n >> 14) & 0x7f)), (uint8_t)(n >> 21)};
        buf_append(b, lb, 4);
    } else {
        put_varint(b, n);
    }
    buf_append(b, s, n);
}

static void test_wire_string_lengths(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 126, 127, 128, 129, 200, 16383, 16384, 20000};
    char *text = malloc(20001);
    assert_non_null(text);
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    lim.max_attribute_value_len = 0; /* no truncation: the whole length must come through */
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t n = sizes[si];
        for (unsigned variant = 0; variant < 4; variant++) {
            for (int nul = -1; nul < 20; nul += 3) {
                for (size_t i = 0; i < n; i++)
                    text[i] = (char)('a' + (i * 7 + si) % 26 - (i % 5 == 0 ? 32 : 0));
                if (nul >= 0 && (size_t)nul < n)
                    text[nul] = '\0';
                buf_t kv = BUF_INIT, any = BUF_INIT, span = BUF_INIT, ss = BUF_INIT, rs = BUF_INIT, req = BUF_INIT;
                put_str_odd(&any, 1, text, n, variant);
                put_str_odd(&kv, 1, text, n, variant ^ 1);
                put_sub(&kv, 2, &any);
                uint8_t id[16];
                for (int i = 0; i < 16; i++)
                    id[i] = (uint8_t)(i + 1);
                put_len(&span, 1, id, 16);
                put_len(&span, 2, id, 8);
                put_str_odd(&span, 5, text, n, variant ^ 2);
                put_sub(&span, 9, &kv);
                put_sub(&ss, 2, &span);
                put_sub(&rs, 2, &ss);
                put_sub(&req, 1, &rs);
                diff_one((const uint8_t *)req.data, req.len, &lim);

                arena_t arena;
                arena_init(&arena, 0);
                char err[128];
                Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r = NULL;
                assert_int_equal(
                    otlp_wire_decode_traces((const uint8_t *)req.data, req.len, 32, &arena, &r, NULL, err, sizeof(err)),
                    0);
                const Opentelemetry__Proto__Trace__V1__Span *sp = r->resource_spans[0]->scope_spans[0]->spans[0];
                assert_int_equal(otlp_wire_strlen(sp->name), strlen(sp->name));
                assert_int_equal(otlp_wire_strlen(sp->attributes[0]->key), strlen(sp->attributes[0]->key));
                assert_int_equal(otlp_wire_strlen(sp->attributes[0]->value->string_value),
                                 strlen(sp->attributes[0]->value->string_value));
                assert_int_equal(otlp_wire_strlen(sp->trace_state), 0);
                assert_int_equal(otlp_wire_strlen(sp->name), nul >= 0 && (size_t)nul < n ? (size_t)nul : n);
                arena_dispose(&arena);
                buf_dispose(&req);
            }
        }
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_api),
        cmocka_unit_test(test_wire_ascii_flag),
        cmocka_unit_test(test_wire_corner_cases),
        cmocka_unit_test(test_wire_string_lengths),
        cmocka_unit_test(test_wire_differential_valid),
        cmocka_unit_test(test_wire_differential_mutated),
        cmocka_unit_test(test_wire_differential_limits),
        cmocka_unit_test(test_direct_plain),
        cmocka_unit_test(test_direct_exporter_shapes),
        cmocka_unit_test(test_direct_utf8_positions),
        cmocka_unit_test(test_direct_hand_over_and_decline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
