/*
 * Unit tests for proxy/tracectx: extraction of W3C, B3 single and B3
 * multi-header contexts, their precedence, invalid values ignored, the
 * sampling decision, tracectx_begin, exact injected fields, round trips
 * (128- and 64-bit trace ids), x-request-id kept or generated, and the
 * peer metadata codec (exact bytes, round trip, malformed input, unknown
 * keys and value types).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/tracectx.h"

#define H(n, v) ((http1_header_t){STR_LIT(n), STR_LIT(v)})
#define NH(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))

static const char TP_TRACE[] = "4bf92f3577b34da6a3ce929d0e0e4736";
static const char TP_SPAN[] = "00f067aa0ba902b7";

static void assert_hex(const uint8_t *id, size_t len, const char *want)
{
    char out[33];
    tracectx_hex(id, len, out);
    assert_string_equal(out, want);
}

static str_t S(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static trace_ctx_t extract(const http1_header_t *h, uint32_t n)
{
    trace_ctx_t c;
    memset(&c, 0x5a, sizeof(c)); /* extract must clear it */
    tracectx_extract(h, n, &c);
    return c;
}

/* Extract a single field. */
static trace_ctx_t extract1(const char *name, const char *value)
{
    http1_header_t h = {S(name), S(value)};
    return extract(&h, 1);
}

static void assert_no_trace(const trace_ctx_t *c)
{
    assert_false(c->has_trace);
    assert_false(c->has_parent);
    uint8_t z[16] = {0};
    assert_memory_equal(c->trace_id, z, 16);
    assert_memory_equal(c->parent_id, z, 8);
}

/* The value of the injected field name, or NULL. */
static const char *field(const http1_header_t *h, uint32_t n, const char *name)
{
    static char v[TRACECTX_SCRATCH];
    for (uint32_t i = 0; i < n; i++) {
        if (h[i].name.len == strlen(name) && memcmp(h[i].name.ptr, name, h[i].name.len) == 0) {
            memcpy(v, h[i].value.ptr, h[i].value.len);
            v[h[i].value.len] = '\0';
            return v;
        }
    }
    return NULL;
}

/* ---- extraction ---- */

static void test_traceparent(void **state)
{
    (void)state;
    trace_ctx_t c = extract1("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_true(c.has_trace);
    assert_true(c.has_parent);
    assert_hex(c.trace_id, 16, TP_TRACE);
    assert_hex(c.parent_id, 8, TP_SPAN);
    assert_int_equal(c.sampled, 1);
    assert_false(c.debug);
    assert_int_equal(c.request_id_len, 0);
    assert_int_equal(c.tracestate_len, 0);

    c = extract1("TraceParent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    assert_true(c.has_trace);
    assert_int_equal(c.sampled, 0);
    /* other flag bits are ignored */
    c = extract1("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
    assert_int_equal(c.sampled, 1);
    c = extract1("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02");
    assert_int_equal(c.sampled, 0);

    /* a future version: the first 55 chars count when followed by '-' or the end */
    c = extract1("traceparent", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever");
    assert_true(c.has_trace);
    assert_hex(c.parent_id, 8, TP_SPAN);
    c = extract1("traceparent", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_true(c.has_trace);
}

static void test_traceparent_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",      /* short flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",    /* v00 must be exactly 55 */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",    /* v00 too long */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",    /* future version, no '-' */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     /* version ff */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     /* bad version */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     /* uppercase trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",     /* uppercase span */
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     /* uppercase version */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",     /* uppercase flags */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     /* zero span */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",     /* dash misplaced */
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",     /* wrong separators */
        "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",     /* non-hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",     /* non-hex flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",      /* short span */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x01", /* trailing byte */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        trace_ctx_t c = extract1("traceparent", bad[i]);
        assert_no_trace(&c);
        assert_int_equal(c.sampled, -1);
    }
}

static void test_b3_single(void **state)
{
    (void)state;
    trace_ctx_t c = extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
    assert_true(c.has_trace);
    assert_true(c.has_parent);
    assert_hex(c.trace_id, 16, "80f198ee56343ba864fe8b2a57d3eff7");
    assert_hex(c.parent_id, 8, "e457b5a2e4d86bd1"); /* our parent is their span, not their parent */
    assert_int_equal(c.sampled, 1);
    assert_false(c.debug);

    c = extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1");
    assert_true(c.has_trace);
    assert_int_equal(c.sampled, -1);

    c = extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0");
    assert_int_equal(c.sampled, 0);

    c = extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d");
    assert_int_equal(c.sampled, 1);
    assert_true(c.debug);

    /* 64-bit trace id: bytes 8..15 */
    c = extract1("B3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    assert_true(c.has_trace);
    assert_hex(c.trace_id, 16, "000000000000000064fe8b2a57d3eff7");

    /* sampling state only */
    c = extract1("b3", "0");
    assert_no_trace(&c);
    assert_int_equal(c.sampled, 0);
    c = extract1("b3", "1");
    assert_no_trace(&c);
    assert_int_equal(c.sampled, 1);
    c = extract1("b3", "d");
    assert_no_trace(&c);
    assert_int_equal(c.sampled, 1);
    assert_true(c.debug);
}

static void test_b3_single_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "x",
        "2",
        "true",
        "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1-1",                    /* 31 chars */
        "80f198ee56343ba8064fe8b2a57d3eff7-e457b5a2e4d86bd1",                    /* 33 chars */
        "80f198ee56343b-e457b5a2e4d86bd1",                                       /* 14 chars */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd",                      /* short span */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1a",                    /* long span */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-",                    /* empty sampling */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",                   /* bad sampling */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-11",                  /* bad sampling */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",   /* short parent */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3bzz",  /* bad parent */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-", /* trailing */
        "00000000000000000000000000000000-e457b5a2e4d86bd1-1",                   /* zero trace */
        "0000000000000000-e457b5a2e4d86bd1-1",                                   /* zero trace */
        "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",                   /* zero span */
        "80f198ee56343ba864fe8b2a57d3eff7_e457b5a2e4d86bd1-1",                   /* separator */
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-0000000000000000",  /* zero parent */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        trace_ctx_t c = extract1("b3", bad[i]);
        assert_no_trace(&c);
        assert_int_equal(c.sampled, -1);
        assert_false(c.debug);
    }
}

static void test_b3_multi(void **state)
{
    (void)state;
    http1_header_t h[] = {
        H("X-B3-TraceId", "463AC35C9F6413AD48485A3953BB6124"), /* case-insensitive hex accepted */
        H("X-B3-SpanId", "a2fb4a1d1a96d312"),
        H("X-B3-ParentSpanId", "0020000000000001"),
        H("X-B3-Sampled", "1"),
    };
    trace_ctx_t c = extract(h, NH(h));
    assert_true(c.has_trace);
    assert_true(c.has_parent);
    assert_hex(c.trace_id, 16, "463ac35c9f6413ad48485a3953bb6124");
    assert_hex(c.parent_id, 8, "a2fb4a1d1a96d312");
    assert_int_equal(c.sampled, 1);

    http1_header_t h64[] = {
        H("x-b3-traceid", "48485a3953bb6124"),
        H("x-b3-spanid", "a2fb4a1d1a96d312"),
        H("x-b3-sampled", "false"),
    };
    c = extract(h64, NH(h64));
    assert_hex(c.trace_id, 16, "000000000000000048485a3953bb6124");
    assert_int_equal(c.sampled, 0);

    /* both ids needed */
    http1_header_t only_trace[] = {H("x-b3-traceid", "48485a3953bb6124"), H("x-b3-sampled", "true")};
    c = extract(only_trace, NH(only_trace));
    assert_no_trace(&c);
    assert_int_equal(c.sampled, 1);

    http1_header_t bad_span[] = {H("x-b3-traceid", "48485a3953bb6124"), H("x-b3-spanid", "a2fb4a1d1a96d31")};
    c = extract(bad_span, NH(bad_span));
    assert_no_trace(&c);

    http1_header_t zero[] = {H("x-b3-traceid", "0000000000000000"), H("x-b3-spanid", "a2fb4a1d1a96d312")};
    c = extract(zero, NH(zero));
    assert_no_trace(&c);

    http1_header_t odd[] = {H("x-b3-traceid", "48485a3953bb61245"), H("x-b3-spanid", "a2fb4a1d1a96d312")};
    c = extract(odd, NH(odd));
    assert_no_trace(&c);

    http1_header_t flags[] = {H("x-b3-flags", "1"), H("x-b3-sampled", "0")};
    c = extract(flags, NH(flags));
    assert_true(c.debug);
    assert_int_equal(c.sampled, 1);

    http1_header_t junk[] = {H("x-b3-flags", "2"), H("x-b3-sampled", "yes")};
    c = extract(junk, NH(junk));
    assert_false(c.debug);
    assert_int_equal(c.sampled, -1);
}

static void test_precedence(void **state)
{
    (void)state;
    http1_header_t all[] = {
        H("x-b3-traceid", "11111111111111111111111111111111"),
        H("x-b3-spanid", "1111111111111111"),
        H("b3", "22222222222222222222222222222222-2222222222222222"),
        H("traceparent", "00-33333333333333333333333333333333-3333333333333333-01"),
    };
    trace_ctx_t c = extract(all, NH(all));
    assert_hex(c.trace_id, 16, "33333333333333333333333333333333");
    assert_hex(c.parent_id, 8, "3333333333333333");

    c = extract(all, 3);
    assert_hex(c.trace_id, 16, "22222222222222222222222222222222");
    assert_hex(c.parent_id, 8, "2222222222222222");

    c = extract(all, 2);
    assert_hex(c.trace_id, 16, "11111111111111111111111111111111");

    /* an invalid higher-precedence header falls through to the next one */
    http1_header_t fall[] = {
        H("traceparent", "00-33333333333333333333333333333333-3333333333333333-0"),
        H("b3", "22222222222222222222222222222222-2222222222222222-2"),
        H("x-b3-traceid", "11111111111111111111111111111111"),
        H("x-b3-spanid", "1111111111111111"),
    };
    c = extract(fall, NH(fall));
    assert_hex(c.trace_id, 16, "11111111111111111111111111111111");

    /* the first field of a name counts */
    http1_header_t twice[] = {
        H("traceparent", "00-33333333333333333333333333333333-3333333333333333-01"),
        H("traceparent", "00-44444444444444444444444444444444-4444444444444444-01"),
    };
    c = extract(twice, NH(twice));
    assert_hex(c.trace_id, 16, "33333333333333333333333333333333");
}

static void test_sampling_combination(void **state)
{
    (void)state;
    /* traceparent 00 suppresses unless a B3 header forces */
    http1_header_t a[] = {
        H("traceparent", "00-33333333333333333333333333333333-3333333333333333-00"),
        H("x-b3-sampled", "1"),
    };
    trace_ctx_t c = extract(a, NH(a));
    assert_int_equal(c.sampled, 1);
    assert_hex(c.trace_id, 16, "33333333333333333333333333333333");

    http1_header_t b[] = {
        H("traceparent", "00-33333333333333333333333333333333-3333333333333333-00"),
        H("b3", "d"),
    };
    c = extract(b, NH(b));
    assert_int_equal(c.sampled, 1);
    assert_true(c.debug);

    http1_header_t d[] = {
        H("traceparent", "00-33333333333333333333333333333333-3333333333333333-00"),
        H("x-b3-sampled", "garbage"),
    };
    c = extract(d, NH(d));
    assert_int_equal(c.sampled, 0);

    /* a forcing value wins over a denying one */
    http1_header_t e[] = {H("b3", "0"), H("x-b3-sampled", "1")};
    c = extract(e, NH(e));
    assert_int_equal(c.sampled, 1);
}

static void test_tracestate(void **state)
{
    (void)state;
    http1_header_t h[] = {
        H("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        H("tracestate", "congo=t61rcWkgMzE"),
        H("Tracestate", "rojo=00f067aa0ba902b7"),
    };
    trace_ctx_t c = extract(h, NH(h));
    assert_string_equal(c.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    assert_int_equal(c.tracestate_len, strlen("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));

    /* without a valid traceparent it is dropped */
    c = extract(h + 1, 2);
    assert_int_equal(c.tracestate_len, 0);
    http1_header_t badtp[] = {
        H("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"),
        H("tracestate", "congo=t61rcWkgMzE"),
    };
    c = extract(badtp, NH(badtp));
    assert_int_equal(c.tracestate_len, 0);

    /* over the limit: dropped; exactly at the limit: kept */
    char big[TRACECTX_STATE_MAX + 2];
    memset(big, 'a', sizeof(big));
    big[TRACECTX_STATE_MAX + 1] = '\0';
    http1_header_t over[] = {h[0], {STR_LIT("tracestate"), S(big)}};
    c = extract(over, NH(over));
    assert_int_equal(c.tracestate_len, 0);
    big[TRACECTX_STATE_MAX] = '\0';
    over[1].value = S(big);
    c = extract(over, NH(over));
    assert_int_equal(c.tracestate_len, TRACECTX_STATE_MAX);
    assert_int_equal(strlen(c.tracestate), TRACECTX_STATE_MAX);
}

/* ---- begin ---- */

static void test_sampling_decisions(void **state)
{
    (void)state;
    static const struct {
        const char *name, *value;
        int want0, want100; /* decision with 0% and with 100% */
        bool debug;
    } cases[] = {
        {"x-b3-sampled", "1", 1, 1, false},
        {"x-b3-sampled", "0", 0, 0, false},
        {"x-b3-flags", "1", 1, 1, true},
        {"b3", "d", 1, 1, true},
        {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1, 1, false},
        {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0, 0, false},
        {"b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", 0, 1, false},
        {"x-other", "1", 0, 1, false},
    };
    uint64_t rng = 42;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        trace_ctx_t c = extract1(cases[i].name, cases[i].value);
        tracectx_begin(&c, 0.0, &rng);
        assert_int_equal(c.sampled, cases[i].want0);
        assert_int_equal(c.debug, cases[i].debug);
        c = extract1(cases[i].name, cases[i].value);
        tracectx_begin(&c, 100.0, &rng);
        assert_int_equal(c.sampled, cases[i].want100);
    }

    /* a percentage in between samples about that share */
    int hits = 0;
    for (int i = 0; i < 10000; i++) {
        trace_ctx_t c = extract(NULL, 0);
        tracectx_begin(&c, 25.0, &rng);
        hits += c.sampled;
    }
    assert_in_range(hits, 2200, 2800);
}

static void test_begin(void **state)
{
    (void)state;
    uint64_t rng = 7;
    uint8_t z[16] = {0};
    trace_ctx_t c = extract(NULL, 0);
    tracectx_begin(&c, 100, &rng);
    assert_false(c.has_trace);
    assert_false(c.has_parent);
    assert_memory_not_equal(c.trace_id, z, 8); /* 128-bit, high half non-zero */
    assert_memory_not_equal(c.span_id, z, 8);
    assert_memory_equal(c.parent_id, z, 8);

    c = extract1("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    tracectx_begin(&c, 0, &rng);
    assert_hex(c.trace_id, 16, TP_TRACE);
    assert_hex(c.parent_id, 8, TP_SPAN);
    assert_true(c.has_parent);
    assert_memory_not_equal(c.span_id, z, 8);
    assert_memory_not_equal(c.span_id, c.parent_id, 8);

    /* ids differ between hops; a zero rng state still works */
    uint64_t zero = 0;
    trace_ctx_t a = extract(NULL, 0), b = extract(NULL, 0);
    tracectx_begin(&a, 0, &zero);
    tracectx_begin(&b, 0, &zero);
    assert_memory_not_equal(a.trace_id, b.trace_id, 16);
    assert_memory_not_equal(a.span_id, b.span_id, 8);
    assert_string_not_equal(a.request_id, b.request_id);
}

static void assert_uuid_v4(const char *s)
{
    assert_int_equal(strlen(s), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(s[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", s[i]));
    }
    assert_int_equal(s[14], '4');
    assert_non_null(strchr("89ab", s[19]));
}

static void test_request_id(void **state)
{
    (void)state;
    uint64_t rng = 99;
    trace_ctx_t c = extract1("X-Request-Id", "abc-123");
    tracectx_begin(&c, 0, &rng);
    assert_string_equal(c.request_id, "abc-123");
    assert_int_equal(c.request_id_len, 7);

    c = extract(NULL, 0);
    tracectx_begin(&c, 0, &rng);
    assert_int_equal(c.request_id_len, 36);
    assert_uuid_v4(c.request_id);
    for (int i = 0; i < 100; i++) {
        trace_ctx_t d = extract(NULL, 0);
        tracectx_begin(&d, 0, &rng);
        assert_uuid_v4(d.request_id);
    }

    char big[TRACECTX_REQUEST_ID_MAX + 2];
    memset(big, 'r', sizeof(big));
    big[TRACECTX_REQUEST_ID_MAX] = '\0';
    c = extract1("x-request-id", big);
    tracectx_begin(&c, 0, &rng);
    assert_int_equal(c.request_id_len, TRACECTX_REQUEST_ID_MAX);
    assert_string_equal(c.request_id, big);
    big[TRACECTX_REQUEST_ID_MAX] = 'r';
    big[TRACECTX_REQUEST_ID_MAX + 1] = '\0';
    c = extract1("x-request-id", big);
    assert_int_equal(c.request_id_len, 0);
    tracectx_begin(&c, 0, &rng);
    assert_uuid_v4(c.request_id);

    c = extract1("x-request-id", "");
    tracectx_begin(&c, 0, &rng);
    assert_uuid_v4(c.request_id);
    c = extract1("x-request-id", "a\r\nb");
    tracectx_begin(&c, 0, &rng);
    assert_uuid_v4(c.request_id);
}

/* ---- inject ---- */

static trace_ctx_t fixed_ctx(void)
{
    trace_ctx_t c;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < 16; i++)
        c.trace_id[i] = (uint8_t)(0x10 + i);
    for (int i = 0; i < 8; i++) {
        c.span_id[i] = (uint8_t)(0xa0 + i);
        c.parent_id[i] = (uint8_t)(0xb0 + i);
    }
    c.has_trace = c.has_parent = true;
    c.sampled = 1;
    strcpy(c.request_id, "req-1");
    c.request_id_len = 5;
    return c;
}

static void test_inject_exact(void **state)
{
    (void)state;
    trace_ctx_t c = fixed_ctx();
    strcpy(c.tracestate, "k=v");
    c.tracestate_len = 3;
    char scratch[TRACECTX_SCRATCH];
    http1_header_t out[TRACECTX_MAX_FIELDS];
    uint32_t n_w3c, n = tracectx_inject(&c, scratch, out, &n_w3c);
    static const char *want[][2] = {
        {"traceparent", "00-101112131415161718191a1b1c1d1e1f-a0a1a2a3a4a5a6a7-01"},
        {"tracestate", "k=v"},
        {"x-request-id", "req-1"},
        {"b3", "101112131415161718191a1b1c1d1e1f-a0a1a2a3a4a5a6a7-1-b0b1b2b3b4b5b6b7"},
        {"x-b3-traceid", "101112131415161718191a1b1c1d1e1f"},
        {"x-b3-spanid", "a0a1a2a3a4a5a6a7"},
        {"x-b3-parentspanid", "b0b1b2b3b4b5b6b7"},
        {"x-b3-sampled", "1"},
    };
    assert_int_equal(n, 8);
    assert_int_equal(n_w3c, 3); /* traceparent, tracestate, x-request-id */
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(out[i].name.len, strlen(want[i][0]));
        assert_memory_equal(out[i].name.ptr, want[i][0], out[i].name.len);
        assert_int_equal(out[i].value.len, strlen(want[i][1]));
        assert_memory_equal(out[i].value.ptr, want[i][1], out[i].value.len);
        assert_true(out[i].value.ptr >= scratch && out[i].value.ptr + out[i].value.len < scratch + TRACECTX_SCRATCH);
        assert_true(tracectx_is_own_header(out[i].name));
    }

    /* root, not sampled, no tracestate */
    c.has_parent = false;
    c.sampled = 0;
    c.tracestate_len = 0;
    n = tracectx_inject(&c, scratch, out, &n_w3c);
    assert_int_equal(n, 6);
    assert_int_equal(n_w3c, 2);
    assert_string_equal(field(out, n, "traceparent"), "00-101112131415161718191a1b1c1d1e1f-a0a1a2a3a4a5a6a7-00");
    assert_string_equal(field(out, n, "b3"), "101112131415161718191a1b1c1d1e1f-a0a1a2a3a4a5a6a7-0");
    assert_string_equal(field(out, n, "x-b3-sampled"), "0");
    assert_null(field(out, n, "x-b3-parentspanid"));
    assert_null(field(out, n, "tracestate"));
    assert_null(field(out, n, "x-b3-flags"));

    /* debug */
    c.sampled = 1;
    c.debug = true;
    c.has_parent = true;
    n = tracectx_inject(&c, scratch, out, &n_w3c);
    assert_int_equal(n, 8);
    assert_string_equal(field(out, n, "b3"), "101112131415161718191a1b1c1d1e1f-a0a1a2a3a4a5a6a7-d-b0b1b2b3b4b5b6b7");
    assert_string_equal(field(out, n_w3c, "x-b3-flags"), "1"); /* debug travels with the W3C part too */
    trace_ctx_t d = extract(out, n_w3c);
    assert_true(d.debug);
    assert_int_equal(d.sampled, 1);
    assert_string_equal(field(out, n, "x-b3-sampled"), "1");

    /* every field at once, within the limits */
    memset(c.tracestate, 't', TRACECTX_STATE_MAX);
    c.tracestate_len = TRACECTX_STATE_MAX;
    memset(c.request_id, 'r', TRACECTX_REQUEST_ID_MAX);
    c.request_id_len = TRACECTX_REQUEST_ID_MAX;
    n = tracectx_inject(&c, scratch, out, NULL);
    assert_int_equal(n, TRACECTX_MAX_FIELDS);
    assert_string_equal(field(out, n, "x-request-id"), c.request_id);

    /* sampling undecided: only B3 can say so (by leaving it out), so no W3C-only part */
    c.sampled = -1;
    c.debug = false;
    n = tracectx_inject(&c, scratch, out, &n_w3c);
    assert_int_equal(n_w3c, 0);
    assert_null(field(out, n, "x-b3-sampled"));
}

static void test_inject_64bit(void **state)
{
    (void)state;
    uint64_t rng = 5;
    trace_ctx_t c = extract1("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    tracectx_begin(&c, 0, &rng);
    char scratch[TRACECTX_SCRATCH], span[17];
    http1_header_t out[TRACECTX_MAX_FIELDS];
    uint32_t n = tracectx_inject(&c, scratch, out, NULL);
    tracectx_hex(c.span_id, 8, span);
    char want[128];
    snprintf(want, sizeof(want), "00-000000000000000064fe8b2a57d3eff7-%s-01", span);
    assert_string_equal(field(out, n, "traceparent"), want);
    snprintf(want, sizeof(want), "64fe8b2a57d3eff7-%s-1-e457b5a2e4d86bd1", span);
    assert_string_equal(field(out, n, "b3"), want);
    assert_string_equal(field(out, n, "x-b3-traceid"), "64fe8b2a57d3eff7");
    assert_string_equal(field(out, n, "x-b3-parentspanid"), "e457b5a2e4d86bd1");

    /* and the next hop reads the same 64-bit id from any of the formats */
    for (uint32_t skip = 0; skip < 3; skip++) {
        trace_ctx_t d = extract(out + skip, n - skip);
        assert_hex(d.trace_id, 16, "000000000000000064fe8b2a57d3eff7");
        assert_memory_equal(d.parent_id, c.span_id, 8);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    uint64_t rng = 1234;
    static const struct {
        const char *name, *value;
    } in[] = {
        {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
        {"b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"},
        {"b3", "80f198ee56343ba8-e457b5a2e4d86bd1-0"},
        {"x-nothing", ""},
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        for (int pct = 0; pct <= 100; pct += 100) {
            trace_ctx_t c = extract1(in[i].name, in[i].value);
            tracectx_begin(&c, pct, &rng);
            char scratch[TRACECTX_SCRATCH];
            http1_header_t out[TRACECTX_MAX_FIELDS];
            uint32_t n_w3c, n = tracectx_inject(&c, scratch, out, &n_w3c);
            /* all formats together, each one alone, and the W3C part (what a sidecar of ours gets) */
            const char *only[] = {NULL, "traceparent", "b3", "x-b3-", "w3c"};
            for (size_t k = 0; k < 5; k++) {
                if (k == 4) {
                    assert_true(n_w3c > 0);
                    trace_ctx_t d = extract(out, n_w3c);
                    assert_memory_equal(d.trace_id, c.trace_id, 16);
                    assert_memory_equal(d.parent_id, c.span_id, 8);
                    assert_int_equal(d.sampled, c.sampled);
                    assert_int_equal(d.debug, c.debug);
                    assert_string_equal(d.request_id, c.request_id);
                    continue;
                }
                http1_header_t sel[TRACECTX_MAX_FIELDS];
                uint32_t m = 0;
                for (uint32_t j = 0; j < n; j++) {
                    if (!only[k] ||
                        (out[j].name.len >= strlen(only[k]) && memcmp(out[j].name.ptr, only[k], strlen(only[k])) == 0 &&
                         (k != 2 || out[j].name.len == 2)))
                        sel[m++] = out[j];
                }
                trace_ctx_t d = extract(sel, m);
                assert_true(d.has_trace);
                assert_memory_equal(d.trace_id, c.trace_id, 16);
                assert_true(d.has_parent);
                assert_memory_equal(d.parent_id, c.span_id, 8);
                assert_int_equal(d.sampled, c.sampled);
                if (k != 1) /* traceparent has no debug flag */
                    assert_int_equal(d.debug, c.debug);
            }
            trace_ctx_t d = extract(out, n);
            assert_string_equal(d.request_id, c.request_id);
        }
    }
}

static void test_own_headers(void **state)
{
    (void)state;
    static const char *own[] = {"traceparent",       "TraceState",   "B3",         "x-b3-traceid", "X-B3-SpanId",
                                "x-b3-parentspanid", "x-b3-sampled", "X-B3-Flags", "x-request-id"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        assert_true(tracectx_is_own_header(S(own[i])));
    static const char *other[] = {"b", "b33", "x-b3", "traceparentx", "host", "x-envoy-peer-metadata", ""};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        assert_false(tracectx_is_own_header(S(other[i])));
    assert_true(peer_is_header(S("X-Envoy-Peer-Metadata")));
    assert_true(peer_is_header(S("x-envoy-peer-metadata-id")));
    assert_false(peer_is_header(S("x-envoy-peer")));
    assert_false(peer_is_header(S("traceparent")));
}

/* ---- peer metadata ---- */

static peer_info_t sample_peer(void)
{
    peer_info_t p;
    memset(&p, 0, sizeof(p));
    strcpy(p.name, "reviews-v2-5c7b8d9f-abcde");
    strcpy(p.namespace, "default");
    strcpy(p.workload, "reviews-v2");
    strcpy(p.app, "reviews");
    strcpy(p.version, "v2");
    strcpy(p.canonical_service, "reviews");
    strcpy(p.canonical_revision, "v2");
    strcpy(p.cluster_id, "Kubernetes");
    return p;
}

static void test_peer_round_trip(void **state)
{
    (void)state;
    peer_info_t p = sample_peer(), q;
    buf_t b = BUF_INIT;
    peer_encode(&p, &b);
    assert_int_equal(b.len % 4, 0);
    assert_int_equal(peer_decode((str_t){b.data, (uint32_t)b.len}, &q), 0);
    assert_memory_equal(&p, &q, sizeof(p));

    /* empty fields are left out, and a field at its maximum length survives */
    memset(&p, 0, sizeof(p));
    memset(p.workload, 'w', PEER_FIELD_MAX - 1);
    strcpy(p.version, "v1");
    b.len = 0;
    peer_encode(&p, &b);
    assert_int_equal(peer_decode((str_t){b.data, (uint32_t)b.len}, &q), 0);
    assert_memory_equal(&p, &q, sizeof(p));

    /* nothing at all: an empty value, decoding to an empty peer */
    memset(&p, 0, sizeof(p));
    b.len = 0;
    peer_encode(&p, &b);
    assert_int_equal(b.len, 0);
    assert_int_equal(peer_decode(STR_NULL, &q), 0);
    assert_memory_equal(&p, &q, sizeof(p));
    buf_dispose(&b);
}

static void test_peer_exact(void **state)
{
    (void)state;
    peer_info_t p;
    memset(&p, 0, sizeof(p));
    strcpy(p.name, "a");
    buf_t b = BUF_INIT;
    peer_encode(&p, &b);
    /* Struct{fields{key:"NAME" value{string_value:"a"}}} */
    assert_string_equal(b.data, "CgsKBE5BTUUSAxoBYQ==");
    buf_dispose(&b);

    p = sample_peer();
    peer_encode_id(&p, "10.0.0.7", &b);
    assert_string_equal(b.data, "sidecar~10.0.0.7~reviews-v2-5c7b8d9f-abcde.default~default.svc.cluster.local");
    buf_dispose(&b);
}

/* ---- hand-built protobuf for the decoder ---- */

static void pb_varint(buf_t *b, uint64_t v)
{
    while (v >= 0x80) {
        buf_append_char(b, (char)(v | 0x80));
        v >>= 7;
    }
    buf_append_char(b, (char)v);
}

static void pb_bytes(buf_t *b, uint32_t field, const void *data, size_t len)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, len);
    buf_append(b, data, len);
}

static void pb_buf(buf_t *b, uint32_t field, buf_t *inner)
{
    pb_bytes(b, field, inner->data, inner->len);
    inner->len = 0;
}

/* Append a Struct entry {key, value} where value is already-encoded Value bytes. */
static void pb_entry(buf_t *s, const char *key, buf_t *value)
{
    buf_t e = BUF_INIT;
    pb_bytes(&e, 1, key, strlen(key));
    pb_buf(&e, 2, value);
    pb_buf(s, 1, &e);
    buf_dispose(&e);
}

static void pb_string_value(buf_t *s, const char *key, const char *v)
{
    buf_t val = BUF_INIT;
    pb_bytes(&val, 3, v, strlen(v));
    pb_entry(s, key, &val);
    buf_dispose(&val);
}

static char *b64(const buf_t *in)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = calloc(1, in->len / 3 * 4 + 8);
    const uint8_t *p = (const uint8_t *)in->data;
    size_t o = 0, i = 0;
    for (; i + 3 <= in->len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63], out[o++] = A[v >> 6 & 63], out[o++] = A[v & 63];
    }
    if (in->len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63], out[o++] = '=', out[o++] = '=';
    } else if (in->len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63], out[o++] = A[v >> 6 & 63], out[o++] = '=';
    }
    return out;
}

static int decode_buf(const buf_t *raw, peer_info_t *p)
{
    char *s = b64(raw);
    int rc = peer_decode(S(s), p);
    free(s);
    return rc;
}

static void test_peer_unknown(void **state)
{
    (void)state;
    buf_t s = BUF_INIT, val = BUF_INIT, labels = BUF_INIT;

    /* unknown key with a number value (double, wire type 1) */
    pb_varint(&val, 2 << 3 | 1);
    buf_append(&val, "\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
    pb_entry(&s, "MESH_ID", &val);
    /* known key with a bool value: ignored */
    pb_varint(&val, 4 << 3 | 0);
    pb_varint(&val, 1);
    pb_entry(&s, "CLUSTER_ID", &val);
    pb_string_value(&s, "NAME", "pod-1");
    /* unknown key with a list value */
    buf_t list = BUF_INIT, item = BUF_INIT;
    pb_bytes(&item, 3, "x", 1);
    pb_buf(&list, 1, &item);
    pb_buf(&val, 6, &list);
    pb_entry(&s, "PLATFORM_METADATA", &val);
    /* unknown key with a null value */
    pb_varint(&val, 1 << 3 | 0);
    pb_varint(&val, 0);
    pb_entry(&s, "NULLISH", &val);
    /* unknown fields in the Struct, the entry and the Value: varint, fixed32, fixed64, group */
    pb_varint(&s, 7 << 3 | 0);
    pb_varint(&s, 300);
    pb_varint(&s, 8 << 3 | 5);
    buf_append(&s, "abcd", 4);
    pb_varint(&s, 9 << 3 | 3); /* start group 9 ... */
    pb_varint(&s, 10 << 3 | 0);
    pb_varint(&s, 1);
    pb_varint(&s, 11 << 3 | 3); /* nested group 11 */
    pb_varint(&s, 11 << 3 | 4);
    pb_varint(&s, 9 << 3 | 4); /* ... end group 9 */
    {
        buf_t e = BUF_INIT, v = BUF_INIT;
        pb_varint(&e, 15 << 3 | 1);
        buf_append(&e, "12345678", 8);
        pb_bytes(&e, 1, "NAMESPACE", 9);
        pb_varint(&v, 20 << 3 | 0);
        pb_varint(&v, 5);
        pb_bytes(&v, 3, "ns", 2);
        pb_buf(&e, 2, &v);
        pb_buf(&s, 1, &e);
        buf_dispose(&e);
        buf_dispose(&v);
    }
    /* LABELS with a nested struct value (skipped, not recursed) and a number */
    pb_string_value(&labels, "app", "ratings");
    pb_bytes(&val, 5, "\x0a\x00", 2);
    pb_entry(&labels, "nested", &val);
    pb_varint(&val, 2 << 3 | 1);
    buf_append(&val, "\0\0\0\0\0\0\0\0", 8);
    pb_entry(&labels, "version", &val);
    pb_string_value(&labels, "service.istio.io/canonical-revision", "v9");
    pb_buf(&val, 5, &labels);
    pb_entry(&s, "LABELS", &val);
    /* a later string wins */
    pb_string_value(&s, "WORKLOAD_NAME", "first");
    pb_string_value(&s, "WORKLOAD_NAME", "second");

    peer_info_t p;
    assert_int_equal(decode_buf(&s, &p), 0);
    assert_string_equal(p.name, "pod-1");
    assert_string_equal(p.namespace, "ns");
    assert_string_equal(p.workload, "second");
    assert_string_equal(p.cluster_id, "");
    assert_string_equal(p.app, "ratings");
    assert_string_equal(p.version, "");
    assert_string_equal(p.canonical_service, "");
    assert_string_equal(p.canonical_revision, "v9");

    /* long values are cut */
    s.len = 0;
    char big[600];
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pb_string_value(&s, "NAME", big);
    assert_int_equal(decode_buf(&s, &p), 0);
    assert_int_equal(strlen(p.name), PEER_FIELD_MAX - 1);

    buf_dispose(&s);
    buf_dispose(&val);
    buf_dispose(&labels);
    buf_dispose(&list);
    buf_dispose(&item);
}

static void assert_decode_fails(const buf_t *raw)
{
    peer_info_t p;
    memset(&p, 0x41, sizeof(p));
    assert_int_equal(decode_buf(raw, &p), -1);
    peer_info_t z;
    memset(&z, 0, sizeof(z));
    assert_memory_equal(&p, &z, sizeof(p));
}

static void test_peer_malformed(void **state)
{
    (void)state;
    peer_info_t p = sample_peer(), q;
    buf_t good = BUF_INIT, raw = BUF_INIT;
    peer_encode(&p, &good);

    /* every truncation of the valid protobuf either fails or decodes a prefix: never crashes */
    uint8_t bin[4096];
    size_t n = 0;
    {
        /* decode the base64 ourselves via the round trip: re-encode from known bytes */
        static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < good.len && good.data[i] != '='; i++) {
            acc = acc << 6 | (uint32_t)(strchr(A, good.data[i]) - A);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                bin[n++] = (uint8_t)(acc >> bits);
            }
        }
    }
    for (size_t cut = 1; cut < n; cut++) {
        raw.len = 0;
        buf_append(&raw, bin, cut);
        /* the first entry is whole only past its own length: before that, always -1 */
        int rc = decode_buf(&raw, &q);
        if (cut < 2 + (size_t)bin[1])
            assert_int_equal(rc, -1);
    }

    /* garbage protobuf */
#define B(s)                                                                                                           \
    {                                                                                                                  \
        s, sizeof(s) - 1                                                                                               \
    }
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        B("\x0a"),                                         /* tag, no length */
        B("\x0a\x05\x0a"),                                 /* length past the end */
        B("\x00\x01"),                                     /* field 0 */
        B("\x4c"),                                         /* end group without start */
        B("\x4b\x10\x01"),                                 /* group never ended */
        B("\x4b\x54"),                                     /* end group of another field */
        B("\x0e"),                                         /* wire type 6 */
        B("\x0f"),                                         /* wire type 7 */
        B("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), /* varint too long */
        B("\x09\x01\x02"),                                 /* fixed64 cut */
        B("\x0d\x01"),                                     /* fixed32 cut */
        B("\x08"),                                         /* varint missing */
        B("\x0a\x02\x08\x01"),                             /* entry key with wire type 0 */
        B("\x0a\x02\x0a\x05"),                             /* key longer than the entry */
        B("\x0a\x02\x12\x01"),                             /* value longer than the entry */
        B("\x0a\x04\x12\x02\x18\x01"),                     /* string_value with wire type 0 */
        B("\x0a\x04\x12\x02\x28\x01"),                     /* struct_value with wire type 0 */
        B("\x0a\x02\x10\x01"),                             /* entry value with wire type 0 */
        B("\x08\x01"),                                     /* Struct field 1 with wire type 0 */
    };
#undef B
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        raw.len = 0;
        buf_append(&raw, bad[i].s, bad[i].len);
        assert_decode_fails(&raw);
    }

    /* a malformed LABELS struct fails the whole value */
    {
        buf_t s = BUF_INIT, val = BUF_INIT;
        pb_bytes(&val, 5, "\x0a\x05", 2);
        pb_entry(&s, "LABELS", &val);
        assert_decode_fails(&s);
        buf_dispose(&s);
        buf_dispose(&val);
    }

    /* deep groups are refused instead of recursing */
    raw.len = 0;
    for (int i = 0; i < 100; i++)
        pb_varint(&raw, 9 << 3 | 3);
    for (int i = 0; i < 100; i++)
        pb_varint(&raw, 9 << 3 | 4);
    assert_decode_fails(&raw);

    /* bad base64 */
    static const char *b64bad[] = {
        "C", "Cg=", "Cg===", "C=g=", "Cg!=", "Cg\n==", "=", "Cgs*", "CgsKBE5BTUUSAxoBYQ=", "Ch=="};
    for (size_t i = 0; i < sizeof(b64bad) / sizeof(b64bad[0]); i++) {
        memset(&q, 0x41, sizeof(q));
        assert_int_equal(peer_decode(S(b64bad[i]), &q), -1);
        assert_int_equal(q.name[0], 0);
    }
    /* an unknown varint field alone is fine; the same with non-zero spare bits is not canonical base64 */
    assert_int_equal(peer_decode(S("SAE="), &q), 0);
    assert_int_equal(peer_decode(S("SAF="), &q), -1);
    /* unpadded base64 is accepted */
    assert_int_equal(peer_decode(S("CgsKBE5BTUUSAxoBYQ"), &q), 0);
    assert_string_equal(q.name, "a");

    /* over 8 KiB */
    char *huge = malloc(20000);
    memset(huge, 'A', 20000);
    assert_int_equal(peer_decode((str_t){huge, 20000}, &q), -1);
    assert_int_equal(peer_decode((str_t){huge, 8192}, &q), -1); /* valid base64 of zeros: field 0 */
    free(huge);

    buf_dispose(&good);
    buf_dispose(&raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_traceparent_invalid),
        cmocka_unit_test(test_b3_single),
        cmocka_unit_test(test_b3_single_invalid),
        cmocka_unit_test(test_b3_multi),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_sampling_combination),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_sampling_decisions),
        cmocka_unit_test(test_begin),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_inject_exact),
        cmocka_unit_test(test_inject_64bit),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_own_headers),
        cmocka_unit_test(test_peer_round_trip),
        cmocka_unit_test(test_peer_exact),
        cmocka_unit_test(test_peer_unknown),
        cmocka_unit_test(test_peer_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
