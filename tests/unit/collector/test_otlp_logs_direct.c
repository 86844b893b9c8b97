/*
 * Differential tests for collector/otlp_direct_logs: random
 * ExportLogsServiceRequest bodies written at the wire level (otlp_gen.h:
 * every value type, unknown fields of every wire type, bodies, values,
 * resources and scopes given twice, which protobuf-c merges, odd bool
 * encodings, deep nesting; fields in the proxy's order or shuffled), random
 * mutations of them, hand-written corner cases and the proxy's own
 * encoder's output are decoded by otlp_logs_decode_proto_reference
 * (protobuf-c), otlp_logs_decode_proto_direct (straight to otlp_log_t; it
 * may decline), otlp_logs_decode_proto_records (what ingest runs) and
 * otlp_logs_decode_proto (the sink API, also with a sink that stops
 * early); the results and records must be identical, or every decode must
 * fail. Ordinary content and the proxy's requests must never be declined
 * nor handed to protobuf-c.
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
#include "telemetry_otlp.h"

/* ---- random log requests ---- */

typedef void (*field_fn)(buf_t *b);

static void f_time(buf_t *b)
{
    put_fixed64(b, 1, chance(5) ? 0 : 1700000000000000000ull + rn(1000000000));
}

static void f_severity(buf_t *b)
{
    put_uint(b, 2, chance(80) ? rn(25) : chance(50) ? (uint64_t)-(int64_t)rn(3) : rnd() >> rn(64));
}

static void f_severity_text(buf_t *b)
{
    put_str(b, 3, chance(60) ? "INFO" : PICK(STRS));
}

static void f_body(buf_t *b)
{
    buf_t v = BUF_INIT;
    if (chance(60))
        put_str(&v, 1, chance(30) ? "[2024-02-29T23:59:59.999Z] \"GET /reviews/1 HTTP/1.1\" 200 - 0 1024 1" : PICK(STRS));
    else
        gen_any(&v, 5);
    put_sub(b, 5, &v);
}

static void f_attrs(buf_t *b)
{
    gen_attrs(b, 6, rn(9), 4);
}

static void f_dropped(buf_t *b)
{
    if (chance(20))
        put_uint(b, 7, rn(4));
}

static void f_flags(buf_t *b)
{
    if (chance(50))
        put_fixed32(b, 8, chance(80) ? rn(2) : (uint32_t)rnd());
}

static void f_ids(buf_t *b)
{
    if (chance(80)) {
        gen_id(b, 9, 16);
        gen_id(b, 10, 8);
    }
}

static void f_observed(buf_t *b)
{
    if (chance(70))
        put_fixed64(b, 11, 1700000000000000000ull + rn(1000000000));
}

static void f_event_name(buf_t *b)
{
    if (chance(15))
        put_str(b, 12, chance(50) ? "access" : PICK(STRS));
}

static void f_reserved(buf_t *b)
{
    if (!chance(5))
        return;
    switch (rn(4)) { /* field 4 is reserved: an unknown field, whatever its wire type */
    case 0: put_uint(b, 4, rnd()); break;
    case 1: put_fixed64(b, 4, rnd()); break;
    case 2: put_fixed32(b, 4, 7); break;
    default: put_str(b, 4, "x"); break;
    }
}

/* One LogRecord: mostly in the proxy's field order, sometimes shuffled, now and then with repeated fields. */
static void gen_log(buf_t *b)
{
    field_fn fields[] = {f_time,  f_severity, f_severity_text, f_body,       f_attrs,   f_dropped,
                         f_flags, f_ids,      f_observed,      f_event_name, f_reserved};
    size_t n = sizeof(fields) / sizeof(fields[0]);
    if (chance(30)) {
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rn((unsigned)i + 1);
            field_fn t = fields[i];
            fields[i] = fields[j];
            fields[j] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((fields[i] == f_time || fields[i] == f_severity || fields[i] == f_severity_text ||
             fields[i] == f_body) &&
            chance(10))
            continue;
        fields[i](b);
        maybe_unknown(b, 13);
    }
    if (chance(5))
        f_severity_text(b); /* scalars and strings: the last one wins */
    if (chance(5))
        f_ids(b);
    if (!plain && chance(4))
        f_body(b); /* a second body: protobuf-c merges */
}

static void gen_logs_request(buf_t *b, unsigned max_records)
{
    unsigned nrl = 1 + rn(3);
    for (unsigned i = 0; i < nrl; i++) {
        buf_t rl = BUF_INIT;
        unsigned nres = chance(85) ? 1 : rn(plain ? 2 : 3);
        for (unsigned k = 0; k < nres; k++)
            gen_resource(&rl);
        unsigned nsl = 1 + rn(3);
        for (unsigned j = 0; j < nsl; j++) {
            buf_t sl = BUF_INIT;
            unsigned nsc = chance(80) ? 1 : rn(plain ? 2 : 3);
            for (unsigned k = 0; k < nsc; k++)
                gen_scope(&sl);
            unsigned nl = rn(max_records + 1);
            for (unsigned k = 0; k < nl; k++) {
                buf_t l = BUF_INIT;
                gen_log(&l);
                put_sub(&sl, 2, &l);
            }
            if (!plain && chance(3))
                gen_scope(&sl); /* after the records: the direct path declines */
            if (chance(20))
                put_str(&sl, 3, "https://schema");
            maybe_unknown(&sl, 4);
            put_sub(&rl, 2, &sl);
        }
        if (!plain && chance(3))
            gen_resource(&rl); /* after the scope_logs */
        if (chance(20))
            put_str(&rl, 3, "https://schema");
        maybe_unknown(&rl, 4);
        put_sub(b, 1, &rl);
        maybe_unknown(b, 2);
    }
}

/* ---- comparing the decoders ---- */

typedef struct logs {
    otlp_log_t *v;
    size_t n, cap;
    size_t stop_after; /* the sink returns -1 when given record number stop_after (0: never) */
} logs_t;

static int collect(void *ctx, const otlp_log_t *l)
{
    logs_t *o = ctx;
    if (o->stop_after != 0 && o->n + 1 == o->stop_after)
        return -1;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = realloc(o->v, o->cap * sizeof(*o->v));
        assert_non_null(o->v);
    }
    o->v[o->n++] = *l;
    return 0;
}

static int str_same(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int log_same(const otlp_log_t *a, const otlp_log_t *b)
{
    if (a->time_unix_nano != b->time_unix_nano || a->observed_time_unix_nano != b->observed_time_unix_nano ||
        a->severity_number != b->severity_number || a->trace_id_high != b->trace_id_high ||
        a->trace_id_low != b->trace_id_low || a->span_id != b->span_id || a->flags != b->flags ||
        a->n_attributes != b->n_attributes || !str_same(a->severity_text, b->severity_text) ||
        !str_same(a->body, b->body) || !str_same(a->event_name, b->event_name) ||
        !str_same(a->service_name, b->service_name) || !str_same(a->scope_name, b->scope_name))
        return 0;
    for (uint32_t i = 0; i < a->n_attributes; i++)
        if (!str_same(a->attributes[i].key, b->attributes[i].key) ||
            !str_same(a->attributes[i].value, b->attributes[i].value))
            return 0;
    return 1;
}

static void print_log(const char *who, size_t i, const otlp_log_t *l)
{
    fprintf(stderr, "%s log %zu: t=%llu sev=%u/%.*s svc=%.*s scope=%.*s body=%.*s attrs:", who, i,
            (unsigned long long)l->time_unix_nano, l->severity_number, (int)l->severity_text.len,
            l->severity_text.ptr, (int)l->service_name.len, l->service_name.ptr, (int)l->scope_name.len,
            l->scope_name.ptr, (int)l->body.len, l->body.ptr);
    for (uint32_t t = 0; t < l->n_attributes; t++)
        fprintf(stderr, " %.*s=%.*s", (int)l->attributes[t].key.len, l->attributes[t].key.ptr,
                (int)l->attributes[t].value.len, l->attributes[t].value.ptr);
    fprintf(stderr, "\n");
}

/* What one decoder made of a body. */
typedef struct outcome {
    const char *who;
    int rc;
    otlp_result_t r;
    const otlp_log_t *v;
    size_t n;
} outcome_t;

/* 1 when a and b agree (result, then records); otherwise say how, with the body. */
static int agree(const outcome_t *a, const outcome_t *b, const uint8_t *body, size_t len)
{
    int same = a->rc == b->rc && a->n == b->n &&
               (a->rc != 0 || (a->r.accepted == b->r.accepted && a->r.rejected == b->r.rejected &&
                               strcmp(a->r.error, b->r.error) == 0));
    for (size_t i = 0; same && i < a->n; i++) {
        if (!log_same(&a->v[i], &b->v[i])) {
            print_log(a->who, i, &a->v[i]);
            print_log(b->who, i, &b->v[i]);
            same = 0;
        }
    }
    if (!same) {
        fprintf(stderr, "%s rc=%d n=%zu acc=%llu rej=%llu err=\"%s\" / %s rc=%d n=%zu acc=%llu rej=%llu err=\"%s\"\n",
                a->who, a->rc, a->n, (unsigned long long)a->r.accepted, (unsigned long long)a->r.rejected, a->r.error,
                b->who, b->rc, b->n, (unsigned long long)b->r.accepted, (unsigned long long)b->r.rejected, b->r.error);
        dump("decoders disagree", body, len);
    }
    return same;
}

static unsigned n_ok, n_fail;

/* How the direct path fared over the bodies given to diff_one. */
static struct {
    unsigned bodies, declined, declined_valid; /* declined_valid: bodies protobuf-c accepts */
    uint64_t records, records_handed, resources_handed, scopes_handed;
} direct;

static uint8_t *body_copy(const uint8_t *body, size_t len)
{
    uint8_t *copy = malloc(len + 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, body, len);
    return copy;
}

/* The sink API against the reference, both with a sink that stops at record stop_after (0: never). */
static void diff_sink(const uint8_t *body, size_t len, const otlp_limits_t *lim, size_t stop_after)
{
    arena_t a1, a2;
    arena_init(&a1, 0);
    arena_init(&a2, 0);
    logs_t o1 = {.stop_after = stop_after}, o2 = {.stop_after = stop_after};
    outcome_t ref = {"protobuf-c", 0, {0}, NULL, 0}, api = {"sink API", 0, {0}, NULL, 0};
    ref.rc = otlp_logs_decode_proto_reference(body, len, lim, &a1, collect, &o1, &ref.r);
    /* nothing it produces may point into the body: decode a copy, then spoil and free it */
    uint8_t *copy = body_copy(body, len);
    api.rc = otlp_logs_decode_proto(copy, len, lim, &a2, collect, &o2, &api.r);
    memset(copy, 0xa5, len);
    free(copy);
    ref.v = o1.v;
    ref.n = o1.n;
    api.v = o2.v;
    api.n = o2.n;
    assert_true(agree(&api, &ref, body, len));
    if (ref.rc != 0) /* the counts so far, when the sink stopped it */
        assert_true(api.r.accepted == ref.r.accepted && api.r.rejected == ref.r.rejected &&
                    strcmp(api.r.error, ref.r.error) == 0);
    free(o1.v);
    free(o2.v);
    arena_dispose(&a1);
    arena_dispose(&a2);
}

/* Decode body with every decoder and require the same outcome; returns the reference's record count. */
static size_t diff_one(const uint8_t *body, size_t len, const otlp_limits_t *lim)
{
    arena_t a1, a2, a3;
    arena_init(&a1, 0);
    arena_init(&a2, 0);
    arena_init(&a3, 0);
    logs_t o1 = {0};
    outcome_t ref = {"protobuf-c", 0, {0}, NULL, 0};
    ref.rc = otlp_logs_decode_proto_reference(body, len, lim, &a1, collect, &o1, &ref.r);
    ref.v = o1.v;
    ref.n = o1.n;
    if (ref.rc != 0)
        ref.n = 0; /* the other paths hand out nothing on failure */

    /* the direct path, unless it declines, must give what protobuf-c gave, and leave the body alone */
    uint8_t *copy = body_copy(body, len);
    outcome_t d = {"direct", 0, {0}, NULL, 0};
    otlp_logs_direct_stats_t st;
    d.rc = otlp_logs_decode_proto_direct(copy, len, lim, &a2, &d.v, &d.n, &d.r, &st);
    assert_memory_equal(copy, body, len);
    direct.bodies++;
    direct.records += st.records;
    direct.records_handed += st.records_handed;
    direct.resources_handed += st.resources_handed;
    direct.scopes_handed += st.scopes_handed;
    if (d.rc == OTLP_DECLINED) {
        assert_non_null(st.declined);
        assert_true(d.v == NULL && d.n == 0);
        direct.declined++;
        direct.declined_valid += ref.rc == 0;
    } else {
        assert_null(st.declined);
        assert_true(agree(&d, &ref, body, len));
    }

    /* what ingest runs: the direct path, or protobuf-c when it declines */
    outcome_t rec = {"records", 0, {0}, NULL, 0};
    rec.rc = otlp_logs_decode_proto_records(copy, len, lim, &a3, &rec.v, &rec.n, &rec.r);
    assert_true(agree(&rec, &ref, body, len));
    free(copy);

    diff_sink(body, len, lim, 0);
    if (ref.rc == 0 && ref.n > 0)
        diff_sink(body, len, lim, 1 + rn((unsigned)ref.n));

    if (ref.rc == 0)
        n_ok++;
    else
        n_fail++;
    size_t n = ref.n;
    free(o1.v);
    arena_dispose(&a1);
    arena_dispose(&a2);
    arena_dispose(&a3);
    return n;
}

static void direct_report(const char *what)
{
    fprintf(stderr,
            "%s: %u bodies, %u declined (%u valid); records direct %llu, handed %llu; resources handed %llu, "
            "scopes %llu\n",
            what, direct.bodies, direct.declined, direct.declined_valid, (unsigned long long)direct.records,
            (unsigned long long)direct.records_handed, (unsigned long long)direct.resources_handed,
            (unsigned long long)direct.scopes_handed);
}

static void test_logs_differential_valid(void **state)
{
    (void)state;
    rng_state = 0x1234567887654321ull;
    n_ok = n_fail = 0;
    memset(&direct, 0, sizeof(direct));
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    for (int it = 0; it < 3000; it++) {
        buf_t b = BUF_INIT;
        gen_logs_request(&b, it % 50 == 0 ? 200 : 6);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    direct_report("valid");
    assert_true(n_ok > 2500); /* generated bodies are valid, except the rare odd bool encodings */
    assert_true(direct.records > 10000 && direct.records_handed > 100 && direct.resources_handed > 50 &&
                direct.scopes_handed > 10 && direct.declined > 100);
}

static void test_logs_differential_mutated(void **state)
{
    (void)state;
    rng_state = 0xfeedfacecafebeefull;
    n_ok = n_fail = 0;
    memset(&direct, 0, sizeof(direct));
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    for (int it = 0; it < 20000; it++) {
        buf_t b = BUF_INIT;
        gen_logs_request(&b, 3);
        mutate(&b);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    direct_report("mutated");
    assert_true(n_ok > 1000 && n_fail > 1000);
}

static void test_logs_differential_limits(void **state)
{
    (void)state;
    rng_state = 0xabcdef0123456789ull;
    memset(&direct, 0, sizeof(direct));
    for (int it = 0; it < 3000; it++) {
        otlp_limits_t lim;
        otlp_limits_default(&lim);
        lim.max_depth = rn(12);
        lim.max_attributes = rn(6);
        lim.max_items = 1 + rn(10);
        lim.max_attribute_value_len = rn(40);
        buf_t b = BUF_INIT;
        gen_logs_request(&b, 4);
        if (chance(30))
            mutate(&b);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    direct_report("limits");
}

/* Bodies of ordinary content never leave the direct path, and it agrees with protobuf-c on them. */
static void test_logs_plain(void **state)
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
            lim.max_items = 1 + rn(10);
            lim.max_attribute_value_len = rn(40);
        }
        buf_t b = BUF_INIT;
        gen_logs_request(&b, it % 50 == 0 ? 200 : 6);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    plain = 0;
    direct_report("plain");
    assert_int_equal(direct.declined_valid, 0);
    assert_int_equal(direct.records_handed, 0);
    assert_int_equal(direct.resources_handed, 0);
    assert_int_equal(direct.scopes_handed, 0);
    assert_true(direct.records > 20000);
}

/* ---- the proxy's own access-log requests ---- */

static str_t S(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static peer_info_t peer_of(const char *name, const char *workload, const char *app, const char *version)
{
    peer_info_t p;
    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "%s", name);
    snprintf(p.namespace, sizeof(p.namespace), "default");
    snprintf(p.workload, sizeof(p.workload), "%s", workload);
    snprintf(p.app, sizeof(p.app), "%s", app);
    snprintf(p.version, sizeof(p.version), "%s", version);
    snprintf(p.cluster_id, sizeof(p.cluster_id), "Kubernetes");
    return p;
}

#define PROXY_RECORDS 300

/*
 * A request as telemetry's exporter writes it (tele_otlp_logs), from
 * records as varied as the proxy's: both reporters, traced and not,
 * sampled and not, empty and long strings (paths past 127 bytes take
 * two-byte lengths), UTF-8, codes from 0 to 503 and large byte counts.
 */
static void proxy_request(buf_t *out, size_t *n_records)
{
    static char paths[PROXY_RECORDS][400];
    static const char *const agents[] = {"curl/8.5.0", "hey/0.0.1",
                                         "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                         "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0 with a long tail",
                                         ""};
    peer_info_t self = peer_of("productpage-v1-abc", "productpage-v1", "productpage", "v1");
    peer_info_t reviews = peer_of("reviews-v2-xyz", "reviews-v2", "reviews", "v2");
    tele_rec_t *recs = calloc(PROXY_RECORDS, sizeof(*recs));
    assert_non_null(recs);
    buf_t strings = BUF_INIT;
    trace_ctx_t tc;
    memset(&tc, 0, sizeof(tc));
    for (int i = 0; i < PROXY_RECORDS; i++) {
        tele_request_t r;
        memset(&r, 0, sizeof(r));
        r.reporter = i % 2 ? TELE_SOURCE : TELE_DESTINATION;
        r.peer = i % 3 ? &reviews : NULL;
        r.destination_service = i % 17 ? S("reviews.default.svc.cluster.local") : STR_NULL;
        r.destination_service_name = S("reviews");
        r.destination_service_namespace = S("default");
        r.response_code = i % 29 == 0 ? 0 : i % 7 == 0 ? 503 : 200;
        r.response_flags = i % 7 == 0 ? TELE_RF_UF : 0;
        r.request_bytes = i % 5 ? 0 : (uint64_t)i * 1000;
        r.response_bytes = i % 11 ? 1024 : 123456789012ull;
        r.start_unix_ns = 1709251199999000000ull + (uint64_t)i * 1234567;
        r.duration_ns = (uint64_t)(i % 13) * 1000000 + 345678;
        r.method = S(i % 4 ? "GET" : "POST");
        if (i % 10 == 3)
            snprintf(paths[i], sizeof(paths[i]), "/api/v1/products/%d/reviews?sort=newest&page=%d&filter=%0250d", i,
                     i % 9, i);
        else if (i % 10 == 5)
            snprintf(paths[i], sizeof(paths[i]), "/caf\xc3\xa9/%d/\xe2\x82\xac", i);
        else
            snprintf(paths[i], sizeof(paths[i]), "/reviews/%d", i);
        r.path = S(paths[i]);
        r.authority = S("reviews:9080");
        r.user_agent = S(agents[i % 4]);
        r.protocol = S("HTTP/1.1");
        r.upstream_host = i % 29 == 0 ? STR_NULL : S("127.0.0.1:19081");
        r.upstream_cluster = S("outbound|9080||reviews.default.svc.cluster.local");
        r.downstream_peer = S("127.0.0.1:40000");
        r.route_name = i % 3 == 0 ? S("default") : STR_NULL;
        r.attempts = 1;
        r.span_name = S("reviews.default.svc.cluster.local:9080/*");
        if (i % 4 != 0) {
            for (int k = 0; k < 16; k++)
                tc.trace_id[k] = (uint8_t)(i * 3 + k + 1);
            for (int k = 0; k < 8; k++)
                tc.span_id[k] = (uint8_t)(i * 5 + k + 1);
            tc.request_id_len = (uint8_t)snprintf(tc.request_id, sizeof(tc.request_id), "%08x-%04x-4000-8000-%012x",
                                                  (unsigned)i * 2654435761u, (unsigned)i & 0xffff, (unsigned)i * 7);
            r.trace = &tc;
        }
        tele_rec_fill(&recs[i], &strings, &r);
        recs[i].has_log = i % 23 != 22;
        recs[i].has_span = i % 4 == 1;
    }
    tele_resource_t res = {&self, "productpage.default", "productpage-v1-abc.default"};
    assert_int_equal(tele_otlp_logs(&res, recs, PROXY_RECORDS, strings.data, out, n_records), 0);
    buf_dispose(&strings);
    free(recs);
}

/* The proxy's requests stay on the direct path whole, with every limit the collector may set. */
static void test_logs_proxy_shape(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    size_t n_records;
    proxy_request(&b, &n_records);
    assert_true(n_records > 250);
    for (int variant = 0; variant < 4; variant++) {
        otlp_limits_t lim;
        otlp_limits_default(&lim);
        if (variant == 1) {
            lim.max_attribute_value_len = 5; /* cuts keys, the body, service and scope names too */
            lim.max_attributes = 3;
        } else if (variant == 2) {
            lim.max_items = 100;
        } else if (variant == 3) {
            lim.max_depth = 6;
            lim.max_attribute_value_len = 200;
        }
        rng_state = 42u + (unsigned)variant;
        size_t n = diff_one((const uint8_t *)b.data, b.len, &lim);
        assert_int_equal(n, variant == 2 ? 100 : n_records);
        arena_t a;
        arena_init(&a, 0);
        const otlp_log_t *v;
        otlp_result_t r;
        otlp_logs_direct_stats_t st;
        assert_int_equal(otlp_logs_decode_proto_direct((const uint8_t *)b.data, b.len, &lim, &a, &v, &n, &r, &st), 0);
        assert_null(st.declined);
        assert_int_equal(st.records, n_records);
        assert_int_equal(st.records_handed + st.resources_handed + st.scopes_handed, 0);
        assert_int_equal(r.rejected, variant == 2 ? n_records - 100 : 0);
        if (variant == 0) {
            assert_int_equal(v[0].service_name.len, strlen("productpage.default"));
            assert_memory_equal(v[0].service_name.ptr, "productpage.default", v[0].service_name.len);
            assert_int_equal(v[0].severity_number, 9);
            assert_true(v[0].n_attributes > 12);
        }
        arena_dispose(&a);
    }
    buf_dispose(&b);
}

/* ---- hand-written corner cases ---- */

/* A request of one ResourceLogs with resource r (NULL: none) and one ScopeLogs with scope sc and the records. */
static void one_request(buf_t *req, buf_t *r, buf_t *sc, buf_t *recs, size_t n)
{
    buf_t rl = BUF_INIT, sl = BUF_INIT;
    if (r != NULL)
        put_sub(&rl, 1, r);
    if (sc != NULL)
        put_sub(&sl, 1, sc);
    for (size_t i = 0; i < n; i++)
        put_sub(&sl, 2, &recs[i]);
    put_sub(&rl, 2, &sl);
    put_sub(req, 1, &rl);
}

static void kv_s(buf_t *b, uint32_t num, const char *key, const char *val, size_t vlen)
{
    buf_t kv = BUF_INIT, v = BUF_INIT;
    put_len(&v, 1, val, vlen);
    put_str(&kv, 1, key);
    put_sub(&kv, 2, &v);
    put_sub(b, num, &kv);
}

static void kv_i(buf_t *b, uint32_t num, const char *key, uint64_t val)
{
    buf_t kv = BUF_INIT, v = BUF_INIT;
    put_uint(&v, 3, val);
    put_str(&kv, 1, key);
    put_sub(&kv, 2, &v);
    put_sub(b, num, &kv);
}

/* A plain record with a string body and one attribute. */
static void plain_log(buf_t *b, const char *body)
{
    put_fixed64(b, 1, 1700000000000000000ull);
    put_uint(b, 2, 9);
    put_str(b, 3, "INFO");
    buf_t v = BUF_INIT;
    put_str(&v, 1, body);
    put_sub(b, 5, &v);
    kv_s(b, 6, "method", "GET", 3);
}

typedef struct expect {
    int declined;
    uint64_t handed_records, handed_resources, handed_scopes;
} expect_t;

/* diff_one, then the direct path's own account of the body. */
static void check_case(const char *what, buf_t *req, const otlp_limits_t *lim, expect_t e, int valid)
{
    otlp_limits_t def;
    otlp_limits_default(&def);
    if (lim == NULL)
        lim = &def;
    diff_one((const uint8_t *)req->data, req->len, lim);
    arena_t a;
    arena_init(&a, 0);
    const otlp_log_t *v;
    size_t n;
    otlp_result_t r;
    otlp_logs_direct_stats_t st;
    int rc = otlp_logs_decode_proto_direct((const uint8_t *)req->data, req->len, lim, &a, &v, &n, &r, &st);
    if (rc != (e.declined ? OTLP_DECLINED : 0) || st.records_handed != e.handed_records ||
        st.resources_handed != e.handed_resources || st.scopes_handed != e.handed_scopes)
        fprintf(stderr, "%s: rc %d declined %s, handed %llu/%llu/%llu\n", what, rc,
                st.declined ? st.declined : "-", (unsigned long long)st.records_handed,
                (unsigned long long)st.resources_handed, (unsigned long long)st.scopes_handed);
    assert_int_equal(rc, e.declined ? OTLP_DECLINED : 0);
    assert_int_equal(st.records_handed, e.handed_records);
    assert_int_equal(st.resources_handed, e.handed_resources);
    assert_int_equal(st.scopes_handed, e.handed_scopes);
    arena_dispose(&a);
    arena_init(&a, 0);
    logs_t o = {0};
    rc = otlp_logs_decode_proto_reference((const uint8_t *)req->data, req->len, lim, &a, collect, &o, &r);
    assert_int_equal(rc, valid ? 0 : -1);
    free(o.v);
    arena_dispose(&a);
    buf_dispose(req);
}

static void test_logs_hand_over_and_decline(void **state)
{
    (void)state;
    buf_t req = BUF_INIT, r = BUF_INIT, sc = BUF_INIT, l[3] = {BUF_INIT, BUF_INIT, BUF_INIT};

    /* a body given twice: merged by protobuf-c, so that record is handed over */
    plain_log(&l[0], "first");
    plain_log(&l[1], "second");
    buf_t v = BUF_INIT;
    put_uint(&v, 3, 7);
    put_sub(&l[1], 5, &v);
    plain_log(&l[2], "third");
    one_request(&req, NULL, NULL, l, 3);
    check_case("body twice", &req, NULL, (expect_t){0, 1, 0, 0}, 1);

    /* an attribute with a kvlist value, one with its value given twice */
    plain_log(&l[0], "a");
    buf_t kv = BUF_INIT, any = BUF_INIT, list = BUF_INIT;
    kv_s(&list, 1, "inner", "x", 1);
    put_sub(&any, 6, &list);
    put_str(&kv, 1, "map");
    put_sub(&kv, 2, &any);
    put_sub(&l[0], 6, &kv);
    plain_log(&l[1], "b");
    put_str(&kv, 1, "twice");
    put_str(&any, 1, "one");
    put_sub(&kv, 2, &any);
    put_uint(&any, 3, 2);
    put_sub(&kv, 2, &any);
    put_sub(&l[1], 6, &kv);
    one_request(&req, NULL, NULL, l, 2);
    check_case("kvlist, value twice", &req, NULL, (expect_t){0, 2, 0, 0}, 1);

    /* a resource with an array attribute before service.name, a scope with a kvlist attribute */
    put_str(&any, 1, "x");
    buf_t arr = BUF_INIT;
    put_sub(&arr, 1, &any);
    buf_t av = BUF_INIT;
    put_sub(&av, 5, &arr);
    put_str(&kv, 1, "tags");
    put_sub(&kv, 2, &av);
    put_sub(&r, 1, &kv);
    kv_s(&r, 1, "service.name", "Reviews", 7);
    put_str(&sc, 1, "outrider");
    kv_s(&list, 1, "k", "v", 1);
    put_sub(&any, 6, &list);
    put_str(&kv, 1, "scope.attr");
    put_sub(&kv, 2, &any);
    put_sub(&sc, 3, &kv);
    plain_log(&l[0], "c");
    one_request(&req, &r, &sc, l, 1);
    check_case("resource and scope handed", &req, NULL, (expect_t){0, 0, 1, 1}, 1);

    /* the service: the first service.name with a non-empty string (its C-string view), cut to the limit */
    kv_i(&r, 1, "service.name", 5);
    kv_s(&r, 1, "service.name", "", 0);
    kv_s(&r, 1, "service.name\0ignored", "Reviews\0tail", 12);
    kv_s(&r, 1, "service.name", "second", 6);
    plain_log(&l[0], "d");
    one_request(&req, &r, NULL, l, 1);
    check_case("service rule", &req, NULL, (expect_t){0}, 1);
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    lim.max_attribute_value_len = 4;
    kv_s(&r, 1, "service.name", "productpage", 11);
    put_str(&sc, 1, "outrider-proxy");
    plain_log(&l[0], "a body longer than four bytes");
    one_request(&req, &r, &sc, l, 1);
    check_case("cut service", &req, &lim, (expect_t){0}, 1);

    /* a resource given twice, after the scope_logs; a scope after the records: the whole body is declined */
    kv_s(&r, 1, "service.name", "a", 1);
    buf_t rl = BUF_INIT, sl = BUF_INIT;
    put_sub(&rl, 1, &r);
    kv_s(&r, 1, "service.name", "b", 1);
    put_sub(&rl, 1, &r);
    plain_log(&l[0], "e");
    put_sub(&sl, 2, &l[0]);
    put_sub(&rl, 2, &sl);
    put_sub(&req, 1, &rl);
    check_case("resource twice", &req, NULL, (expect_t){1, 0, 0, 0}, 1);
    plain_log(&l[0], "f");
    put_sub(&sl, 2, &l[0]);
    put_str(&sc, 1, "late");
    put_sub(&sl, 1, &sc);
    put_sub(&rl, 2, &sl);
    put_sub(&req, 1, &rl);
    check_case("scope after records", &req, NULL, (expect_t){1, 0, 0, 0}, 1);

    /* max_depth below 6: declined; 5 and 6 against protobuf-c's depth check */
    for (unsigned depth = 4; depth <= 7; depth++) {
        plain_log(&l[0], "g");
        one_request(&req, NULL, NULL, l, 1);
        otlp_limits_default(&lim);
        lim.max_depth = depth;
        check_case("depth", &req, &lim, (expect_t){depth < 6, 0, 0, 0}, depth >= 6);
    }

    /* reserved field 4 is skipped whatever its wire type; a group, or a known field of the wrong type, fails */
    for (int wt = 0; wt < 8; wt++) {
        plain_log(&l[0], "h");
        put_tag(&l[0], 4, (unsigned)wt);
        int valid = wt == 0 || wt == 1 || wt == 2 || wt == 5;
        if (wt == 0)
            put_varint(&l[0], 300);
        else if (wt == 1)
            buf_append(&l[0], "12345678", 8);
        else if (wt == 2)
            put_varint(&l[0], 0);
        else if (wt == 5)
            buf_append(&l[0], "1234", 4);
        one_request(&req, NULL, NULL, l, 1);
        check_case("reserved field", &req, NULL, (expect_t){!valid, 0, 0, 0}, valid);
    }
    plain_log(&l[0], "i");
    put_uint(&l[0], 1, 5); /* time_unix_nano is fixed64 */
    one_request(&req, NULL, NULL, l, 1);
    check_case("wrong wire type", &req, NULL, (expect_t){1, 0, 0, 0}, 0);

    /* truncated: every decoder fails */
    plain_log(&l[0], "j");
    one_request(&req, NULL, NULL, l, 1);
    req.len -= 3;
    check_case("truncated", &req, NULL, (expect_t){1, 0, 0, 0}, 0);
    buf_dispose(&req);
}

/* Severity numbers, ids and the record limit: the same values, rejections and reasons on both paths. */
static void test_logs_fields_and_rejections(void **state)
{
    (void)state;
    static const uint64_t sev[] = {0, 1, 9, 24, 25, 0xffffffffull, (uint64_t)-1, (uint64_t)-9, 1ull << 32 | 9};
    buf_t req = BUF_INIT, l[8];
    for (size_t i = 0; i < sizeof(sev) / sizeof(sev[0]); i++) {
        l[0] = (buf_t)BUF_INIT;
        plain_log(&l[0], "s");
        put_uint(&l[0], 2, sev[i]);
        one_request(&req, NULL, NULL, l, 1);
        check_case("severity", &req, NULL, (expect_t){0}, 1);
    }
    /* ids of every length, all-zero ones; then the limit on records */
    static const size_t tlen[] = {0, 16, 15, 17, 16, 16, 16, 16};
    static const size_t slen[] = {0, 8, 8, 8, 7, 0, 9, 8};
    for (unsigned max_items = 3; max_items <= 10; max_items += 7) {
        for (size_t i = 0; i < 8; i++) {
            l[i] = (buf_t)BUF_INIT;
            plain_log(&l[i], "ids");
            uint8_t id[17] = {0};
            if (i != 7)
                for (size_t k = 0; k < sizeof(id); k++)
                    id[k] = (uint8_t)(i + k + 1);
            put_len(&l[i], 9, id, tlen[i]);
            put_len(&l[i], 10, id, slen[i]);
        }
        otlp_limits_t lim;
        otlp_limits_default(&lim);
        lim.max_items = max_items;
        one_request(&req, NULL, NULL, l, 8);
        check_case("ids", &req, &lim, (expect_t){0}, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logs_fields_and_rejections),
        cmocka_unit_test(test_logs_hand_over_and_decline),
        cmocka_unit_test(test_logs_proxy_shape),
        cmocka_unit_test(test_logs_plain),
        cmocka_unit_test(test_logs_differential_valid),
        cmocka_unit_test(test_logs_differential_mutated),
        cmocka_unit_test(test_logs_differential_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
