/*
 * otlp_gen: random OTLP protobuf pieces written straight at the wire level,
 * shared by the differential tests of the trace decoders (test_otlp_wire.c)
 * and of the log decoders (test_otlp_logs_direct.c): a deterministic
 * generator, a wire writer, AnyValue / KeyValue / Resource /
 * InstrumentationScope messages with every value type, unknown fields of
 * every wire type, values that protobuf-c merges (unless plain), odd bool
 * encodings and deep nesting, and random mutations of a body.
 */
#ifndef OUTRIDER_TEST_OTLP_GEN_H
#define OUTRIDER_TEST_OTLP_GEN_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

/* each test uses what it needs of these */
#define GEN_STATIC static __attribute__((unused))

/* ---- deterministic randomness ---- */

GEN_STATIC uint64_t rng_state = 0x9e3779b97f4a7c15ull;

GEN_STATIC uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

GEN_STATIC unsigned rn(unsigned n)
{
    return n == 0 ? 0 : (unsigned)(rnd() % n);
}

GEN_STATIC int chance(unsigned pct)
{
    return rn(100) < pct;
}

/* ---- wire writer ---- */

GEN_STATIC void put_varint(buf_t *b, uint64_t v)
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

GEN_STATIC void put_tag(buf_t *b, uint32_t num, unsigned wt)
{
    put_varint(b, (uint64_t)num << 3 | wt);
}

GEN_STATIC void put_len(buf_t *b, uint32_t num, const void *data, size_t len)
{
    put_tag(b, num, 2);
    put_varint(b, len);
    buf_append(b, data, len);
}

GEN_STATIC void put_sub(buf_t *b, uint32_t num, buf_t *sub)
{
    put_len(b, num, sub->data, sub->len);
    buf_dispose(sub);
}

GEN_STATIC void put_fixed64(buf_t *b, uint32_t num, uint64_t v)
{
    put_tag(b, num, 1);
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, t, 8);
}

GEN_STATIC void put_fixed32(buf_t *b, uint32_t num, uint32_t v)
{
    put_tag(b, num, 5);
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, t, 4);
}

GEN_STATIC void put_uint(buf_t *b, uint32_t num, uint64_t v)
{
    put_tag(b, num, 0);
    put_varint(b, v);
}

GEN_STATIC void put_str(buf_t *b, uint32_t num, const char *s)
{
    put_len(b, num, s, strlen(s));
}

/* An unknown field with a random wire type; high field numbers take multi-byte tags. */
GEN_STATIC void put_unknown(buf_t *b, uint32_t lo)
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

GEN_STATIC void maybe_unknown(buf_t *b, uint32_t lo)
{
    if (chance(8))
        put_unknown(b, lo);
}

/* ---- random OTLP messages ---- */

GEN_STATIC const char *const KEYS[] = {
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
GEN_STATIC const char *const STRS[] = {
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

GEN_STATIC const char *pick(const char *const *arr, size_t n)
{
    return arr[rn((unsigned)n)];
}

#define PICK(arr) pick(arr, sizeof(arr) / sizeof(arr[0]))

/*
 * plain: only what the direct path reads itself (scalar values given once,
 * one status, no links, events without attributes, one resource and scope
 * per parent), still with unknown fields, odd encodings and NUL bytes.
 */
GEN_STATIC int plain;

GEN_STATIC void gen_any(buf_t *b, unsigned depth);

GEN_STATIC void gen_kv(buf_t *b, unsigned depth)
{
    if (!chance(3))
        put_str(b, 1, PICK(KEYS));
    maybe_unknown(b, 3);
    if (!chance(3)) {
        buf_t v = BUF_INIT;
        gen_any(&v, depth + 1);
        put_sub(b, 2, &v);
    }
    if (!plain && chance(4)) { /* a second value: protobuf-c merges */
        buf_t v = BUF_INIT;
        if (!chance(30))
            gen_any(&v, depth + 1);
        put_sub(b, 2, &v);
    }
    if (chance(3))
        put_str(b, 1, PICK(KEYS));
}

GEN_STATIC void gen_any(buf_t *b, unsigned depth)
{
    unsigned members = chance(10) ? 2 : chance(5) ? 0 : 1;
    for (unsigned m = 0; m < members; m++) {
        maybe_unknown(b, 8);
        unsigned which = plain ? (unsigned[]){0, 1, 2, 3, 4, 7}[rn(6)] : rn(depth < 6 ? 8 : 5);
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

GEN_STATIC void gen_attrs(buf_t *b, uint32_t num, unsigned n, unsigned depth)
{
    for (unsigned i = 0; i < n; i++) {
        buf_t kv = BUF_INIT;
        gen_kv(&kv, depth + 1);
        put_sub(b, num, &kv);
        maybe_unknown(b, 17);
    }
}

GEN_STATIC void gen_id(buf_t *b, uint32_t num, size_t usual)
{
    uint8_t id[17];
    size_t n = chance(90) ? usual : rn(sizeof(id) + 1);
    for (size_t i = 0; i < n; i++)
        id[i] = chance(3) ? 0 : (uint8_t)rnd();
    if (chance(2))
        memset(id, 0, n);
    put_len(b, num, id, n);
}


GEN_STATIC void gen_scope(buf_t *b)
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

GEN_STATIC void gen_resource(buf_t *b)
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


GEN_STATIC void dump(const char *what, const uint8_t *body, size_t len)
{
    fprintf(stderr, "%s, body of %zu bytes:", what, len);
    for (size_t i = 0; i < len && i < 512; i++)
        fprintf(stderr, "%s%02x", i % 32 == 0 ? "\n  " : " ", body[i]);
    fprintf(stderr, "\n");
}


GEN_STATIC void mutate(buf_t *b)
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


#endif
