/*
 * Differential tests for collector/otlp_wire: random ExportTraceServiceRequest
 * bodies, written straight at the wire level (every field type, unknown
 * fields of every wire type, repeated singular fields that protobuf-c
 * merges, oneofs given twice, odd wire types, deep AnyValue nesting) plus
 * random mutations of them, are decoded by otlp_traces_decode_proto
 * (otlp_wire) and by otlp_traces_decode_proto_reference (protobuf-c), and
 * the spans produced must be identical, or both decodes must fail.
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
#include "otlp_wire.h"

/* ---- deterministic randomness ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static unsigned rn(unsigned n)
{
    return n == 0 ? 0 : (unsigned)(rnd() % n);
}

static int chance(unsigned pct)
{
    return rn(100) < pct;
}

/* ---- wire writer ---- */

static void put_varint(buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            tmp[n] |= 0x80;
        n++;
    } while (v != 0);
    buf_append(b, tmp, n);
}

static void put_tag(buf_t *b, uint32_t num, unsigned wt)
{
    put_varint(b, (uint64_t)num << 3 | wt);
}

static void put_len(buf_t *b, uint32_t num, const void *data, size_t len)
{
    put_tag(b, num, 2);
    put_varint(b, len);
    buf_append(b, data, len);
}

static void put_sub(buf_t *b, uint32_t num, buf_t *sub)
{
    put_len(b, num, sub->data, sub->len);
    buf_dispose(sub);
}

static void put_fixed64(buf_t *b, uint32_t num, uint64_t v)
{
    put_tag(b, num, 1);
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, t, 8);
}

static void put_fixed32(buf_t *b, uint32_t num, uint32_t v)
{
    put_tag(b, num, 5);
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, t, 4);
}

static void put_uint(buf_t *b, uint32_t num, uint64_t v)
{
    put_tag(b, num, 0);
    put_varint(b, v);
}

static void put_str(buf_t *b, uint32_t num, const char *s)
{
    put_len(b, num, s, strlen(s));
}

/* An unknown field with a random wire type; high field numbers take multi-byte tags. */
static void put_unknown(buf_t *b, uint32_t lo)
{
    uint32_t num = chance(50) ? lo + rn(20) : 1000 + rn(536000000);
    switch (rn(4)) {
    case 0: put_uint(b, num, rnd() >> rn(64)); break;
    case 1: put_fixed64(b, num, rnd()); break;
    case 2: put_fixed32(b, num, (uint32_t)rnd()); break;
    default: {
        char junk[16];
        size_t n = rn(sizeof(junk));
        for (size_t i = 0; i < n; i++)
            junk[i] = (char)rnd();
        put_len(b, num, junk, n);
    }
    }
}

static void maybe_unknown(buf_t *b, uint32_t lo)
{
    if (chance(8))
        put_unknown(b, lo);
}

/* ---- random OTLP messages ---- */

static const char *const KEYS[] = {
    "http.method",
    "http.url",
    "service.name",
    "error",
    "peer.service",
    "server.address",
    "net.peer.name",
    "network.peer.address",
    "network.peer.port",
    "server.port",
    "net.peer.ip",
    "net.sock.peer.addr",
    "server.socket.address",
    "peer.address",
    "db.name",
    "Mixed.Case",
    "",
    "k\xc3\xa9y",
    "k\xff", /* ill-formed UTF-8: both paths must repair it alike */
    "otel.scope.name",
    "a.very.long.attribute.key.that.is.longer.than.thirty.two.bytes",
};
static const char *const STRS[] = {
    "GET",
    "10.1.2.3",
    "::1",
    "fe80::1",
    "reviews",
    "Frontend",
    "",
    "false",
    "true",
    "8080",
    "99999",
    "x\"y\\z\n",
    "outbound|9080||reviews.default.svc.cluster.local",
    "\xe2\x82\xac\xe2\x82\xac",
    "a\0b",
    "host-1",
    "caf\xc3",                                          /* truncated */
    "\xed\xa0\x80x",                                    /* an encoded surrogate */
    "\xc4\xb0STANBUL \xce\x9f\xce\x94\xce\x9f\xce\xa3", /* İ and a final sigma when lowercased */
};

static const char *pick(const char *const *arr, size_t n)
{
    return arr[rn((unsigned)n)];
}

#define PICK(arr) pick(arr, sizeof(arr) / sizeof(arr[0]))

static void gen_any(buf_t *b, unsigned depth);

static void gen_kv(buf_t *b, unsigned depth)
{
    if (!chance(3))
        put_str(b, 1, PICK(KEYS));
    maybe_unknown(b, 3);
    if (!chance(3)) {
        buf_t v = BUF_INIT;
        gen_any(&v, depth + 1);
        put_sub(b, 2, &v);
    }
    if (chance(4)) { /* a second value: protobuf-c merges */
        buf_t v = BUF_INIT;
        if (!chance(30))
            gen_any(&v, depth + 1);
        put_sub(b, 2, &v);
    }
    if (chance(3))
        put_str(b, 1, PICK(KEYS));
}

static void gen_any(buf_t *b, unsigned depth)
{
    unsigned members = chance(10) ? 2 : chance(5) ? 0 : 1;
    for (unsigned m = 0; m < members; m++) {
        maybe_unknown(b, 8);
        unsigned which = rn(depth < 6 ? 8 : 5);
        switch (which) {
        case 0:
        case 1: put_str(b, 1, PICK(STRS)); break;
        case 2:
            switch (rn(8)) {
            case 0: put_fixed64(b, 2, rnd() & 1); break; /* protobuf-c takes any wire type for bool */
            case 1: put_len(b, 2, "\x00\x01", rn(3)); break;
            case 2: put_fixed32(b, 2, 0); break;
            default: put_uint(b, 2, rn(3) == 0 ? rnd() : rn(2)); break;
            }
            break;
        case 3: put_uint(b, 3, chance(30) ? (uint64_t) - (int64_t)rn(100000) : rnd() >> rn(64)); break;
        case 4: {
            double d;
            switch (rn(5)) {
            case 0: d = 0.1; break;
            case 1: d = -1e300; break;
            case 2: d = 1.0 / 0.0; break;
            case 3: d = (double)rn(1000) / 7; break;
            default: {
                uint64_t x = rnd();
                memcpy(&d, &x, 8);
            }
            }
            uint64_t bits;
            memcpy(&bits, &d, 8);
            put_fixed64(b, 4, bits);
            break;
        }
        case 5: {
            buf_t a = BUF_INIT;
            unsigned n = rn(4);
            for (unsigned i = 0; i < n; i++) {
                buf_t v = BUF_INIT;
                gen_any(&v, depth + 2);
                put_sub(&a, 1, &v);
                maybe_unknown(&a, 2);
            }
            put_sub(b, 5, &a);
            break;
        }
        case 6: {
            buf_t l = BUF_INIT;
            unsigned n = rn(4);
            for (unsigned i = 0; i < n; i++) {
                buf_t kv = BUF_INIT;
                gen_kv(&kv, depth + 2);
                put_sub(&l, 1, &kv);
            }
            put_sub(b, 6, &l);
            break;
        }
        default: {
            uint8_t raw[9];
            size_t n = rn(sizeof(raw) + 1);
            for (size_t i = 0; i < n; i++)
                raw[i] = (uint8_t)rnd();
            put_len(b, 7, raw, n);
        }
        }
    }
}

static void gen_attrs(buf_t *b, uint32_t num, unsigned n, unsigned depth)
{
    for (unsigned i = 0; i < n; i++) {
        buf_t kv = BUF_INIT;
        gen_kv(&kv, depth + 1);
        put_sub(b, num, &kv);
        maybe_unknown(b, 17);
    }
}

static void gen_id(buf_t *b, uint32_t num, size_t usual)
{
    uint8_t id[17];
    size_t n = chance(90) ? usual : rn(sizeof(id) + 1);
    for (size_t i = 0; i < n; i++)
        id[i] = chance(3) ? 0 : (uint8_t)rnd();
    if (chance(2))
        memset(id, 0, n);
    put_len(b, num, id, n);
}

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
        gen_attrs(&ev, 3, rn(3), depth + 1);
        if (chance(10))
            put_uint(&ev, 4, 2);
        maybe_unknown(&ev, 5);
        put_sub(b, 11, &ev);
    }
    if (chance(10))
        put_uint(b, 12, 1);
    unsigned nlk = chance(15) ? rn(3) : 0;
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
    unsigned nst = chance(60) ? 1 : chance(15) ? 2 : 0;
    for (unsigned i = 0; i < nst; i++)
        gen_status(b);
    if (chance(30))
        put_fixed32(b, 16, 0x101);
    maybe_unknown(b, 17);
    if (chance(5))
        put_str(b, 5, "Renamed"); /* last value wins */
}

static void gen_scope(buf_t *b)
{
    buf_t sc = BUF_INIT;
    if (chance(80))
        put_str(&sc, 1, chance(50) ? "io.outrider.proxy" : PICK(STRS));
    if (chance(60))
        put_str(&sc, 2, chance(50) ? "0.1.0" : "");
    gen_attrs(&sc, 3, rn(3), 4);
    if (chance(10))
        put_uint(&sc, 4, 1);
    maybe_unknown(&sc, 5);
    put_sub(b, 1, &sc);
}

static void gen_resource(buf_t *b)
{
    buf_t r = BUF_INIT;
    if (chance(85)) {
        buf_t kv = BUF_INIT;
        put_str(&kv, 1, "service.name");
        buf_t v = BUF_INIT;
        put_str(&v, 1, chance(50) ? "Frontend" : PICK(STRS));
        put_sub(&kv, 2, &v);
        put_sub(&r, 1, &kv);
    }
    gen_attrs(&r, 1, rn(4), 3);
    if (chance(10))
        put_uint(&r, 2, 3);
    maybe_unknown(&r, 3);
    put_sub(b, 1, &r);
}

static void gen_request(buf_t *b, unsigned max_spans)
{
    unsigned nrs = 1 + rn(3);
    for (unsigned i = 0; i < nrs; i++) {
        buf_t rs = BUF_INIT;
        unsigned nres = chance(85) ? 1 : rn(3);
        for (unsigned k = 0; k < nres; k++)
            gen_resource(&rs);
        unsigned nss = 1 + rn(3);
        for (unsigned j = 0; j < nss; j++) {
            buf_t ss = BUF_INIT;
            unsigned nsc = chance(80) ? 1 : rn(3);
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

static void dump(const char *what, const uint8_t *body, size_t len)
{
    fprintf(stderr, "%s, body of %zu bytes:", what, len);
    for (size_t i = 0; i < len && i < 512; i++)
        fprintf(stderr, "%s%02x", i % 32 == 0 ? "\n  " : " ", body[i]);
    fprintf(stderr, "\n");
}

static unsigned n_ok, n_fail;

/* Decode body with both decoders and require the same outcome. */
static void diff_one(const uint8_t *body, size_t len, const otlp_limits_t *lim)
{
    arena_t a1, a2;
    arena_init(&a1, 0);
    arena_init(&a2, 0);
    spans_t o1 = {0}, o2 = {0};
    otlp_result_t r1, r2;
    int rc1 = otlp_traces_decode_proto(body, len, lim, &a1, collect, &o1, &r1);
    int rc2 = otlp_traces_decode_proto_reference(body, len, lim, &a2, collect, &o2, &r2);
    int same = rc1 == rc2 && o1.n == o2.n;
    if (same && rc1 == 0)
        same = r1.accepted == r2.accepted && r1.rejected == r2.rejected && strcmp(r1.error, r2.error) == 0;
    for (size_t i = 0; same && i < o1.n; i++)
        same = span_equal(&o1.s[i], &o2.s[i]);
    {
        /* the in-place, array-returning variant must agree with the sink one */
        arena_t a3;
        arena_init(&a3, 0);
        uint8_t *copy = malloc(len + 1);
        assert_non_null(copy);
        if (len > 0)
            memcpy(copy, body, len);
        const span_t *arr = NULL;
        size_t n3 = 0;
        otlp_result_t r3;
        int rc3 = otlp_traces_decode_proto_spans(copy, len, lim, &a3, &arr, &n3, &r3);
        int same3 = rc3 == rc1 && (rc3 != 0 || n3 == o1.n);
        if (same3 && rc3 == 0)
            same3 = r3.accepted == r1.accepted && r3.rejected == r1.rejected && strcmp(r3.error, r1.error) == 0;
        for (size_t i = 0; same3 && rc3 == 0 && i < n3; i++)
            same3 = span_equal(&arr[i], &o1.s[i]);
        if (rc3 != 0)
            same3 = same3 && arr == NULL && n3 == 0;
        if (!same3)
            fprintf(stderr, "in-place rc=%d n=%zu err=\"%s\" / wire rc=%d n=%zu err=\"%s\"\n", rc3, n3, r3.error, rc1,
                    o1.n, r1.error);
        assert_true(same3);
        free(copy);
        arena_dispose(&a3);
    }
    for (size_t i = 0; !same && i < o1.n && i < o2.n; i++) {
        if (span_equal(&o1.s[i], &o2.s[i]))
            continue;
        for (int w = 0; w < 2; w++) {
            const span_t *s = w ? &o2.s[i] : &o1.s[i];
            fprintf(stderr, "%s span %zu: name=%.*s kind=%d remote=%.*s tags:", w ? "protobuf-c" : "wire", i,
                    (int)s->name.len, s->name.ptr, s->kind, (int)s->remote.service_name.len,
                    s->remote.service_name.ptr);
            for (uint32_t t = 0; t < s->n_tags; t++)
                fprintf(stderr, " %.*s=%.*s", (int)s->tags[t].key.len, s->tags[t].key.ptr, (int)s->tags[t].value.len,
                        s->tags[t].value.ptr);
            fprintf(stderr, "\n");
        }
        break;
    }
    if (!same) {
        fprintf(stderr, "wire rc=%d n=%zu err=\"%s\" / protobuf-c rc=%d n=%zu err=\"%s\"\n", rc1, o1.n, r1.error, rc2,
                o2.n, r2.error);
        dump("decoders disagree", body, len);
    }
    assert_true(same);
    if (rc1 == 0)
        n_ok++;
    else
        n_fail++;
    free(o1.s);
    free(o2.s);
    arena_dispose(&a1);
    arena_dispose(&a2);
}

static void mutate(buf_t *b)
{
    unsigned edits = 1 + rn(3);
    for (unsigned e = 0; e < edits && b->len > 0; e++) {
        size_t at = rn((unsigned)b->len);
        switch (rn(6)) {
        case 0: b->data[at] = (char)(b->data[at] ^ (1u << rn(8))); break;
        case 1: b->data[at] = (char)rnd(); break;
        case 2: /* insert a byte */
            buf_reserve(b, 1);
            memmove(b->data + at + 1, b->data + at, b->len - at);
            b->data[at] = (char)rnd();
            b->len++;
            break;
        case 3: /* delete a byte */
            memmove(b->data + at, b->data + at + 1, b->len - at - 1);
            b->len--;
            break;
        case 4: b->len = at; break;
        default: b->data[at] = (char)(rn(2) ? 0x80 : 0x7f); break;
        }
    }
}

static void test_wire_differential_valid(void **state)
{
    (void)state;
    rng_state = 0x1234567887654321ull;
    n_ok = n_fail = 0;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    for (int it = 0; it < 3000; it++) {
        buf_t b = BUF_INIT;
        gen_request(&b, it % 50 == 0 ? 200 : 6);
        diff_one((const uint8_t *)b.data, b.len, &lim);
        buf_dispose(&b);
    }
    assert_true(n_ok > 2500); /* generated bodies are valid, except the rare odd bool encodings */
}

static void test_wire_differential_mutated(void **state)
{
    (void)state;
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
