/*
 * Unit tests for proxy/attr_expr: every attribute read from a filled
 * context (and missing from an empty one), case-insensitive header lookup,
 * peer fields and labels, each operator and the precedence between them,
 * CEL's error rules with short-circuit (and has()), the ternary, in-lists,
 * string methods, int() and string() conversions, response.flags in
 * Envoy's bit values, literals and escapes, parse errors with their
 * messages and offsets, the limits, and a property test: random (mostly
 * well-typed, sometimes mangled) expressions over random contexts parse or
 * fail cleanly and evaluate consistently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/attr_expr.h"
#include "proxy/telemetry.h"

#define H(n, v)                                                                                                        \
    {                                                                                                                  \
        {(n), sizeof(n) - 1},                                                                                          \
        {                                                                                                              \
            (v), sizeof(v) - 1                                                                                         \
        }                                                                                                              \
    }
#define MISSING "<missing>"

static const peer_info_t UP = {
    .name = "reviews-v2-5d8f",
    .namespace = "bookinfo",
    .workload = "reviews-v2",
    .app = "reviews",
    .version = "v2",
    .canonical_service = "reviews-svc",
    .canonical_revision = "rev2",
    .cluster_id = "Kubernetes",
};
static const peer_info_t DOWN = {
    .name = "productpage-v1-77",
    .namespace = "front",
    .workload = "productpage-v1",
    .app = "productpage",
    .version = "v1",
    .canonical_service = "productpage",
    .canonical_revision = "v1",
    .cluster_id = "east",
};
static const peer_info_t NO_APP = {.namespace = "ns"};

static const http1_header_t HDRS[] = {
    H("Host", "reviews:9080"),  H("X-User", "jason"),       H("User-Agent", "curl/8.0"),
    H("Referer", "http://a/b"), H("x-request-id", "rid-1"), H("x-empty", ""),
    H("x-num", "42"),           H("x-bad-num", "4x2"),      H("x-neg", "-17"),
    H("x-user", "second"),
};

static ax_ctx_t full_ctx(void)
{
    return (ax_ctx_t){
        .method = STR_LIT("GET"),
        .path = STR_LIT("/reviews/1?x=1&y=2#frag"),
        .host = STR_LIT("reviews:9080"),
        .scheme = STR_LIT("http"),
        .protocol = STR_LIT("HTTP/1.1"),
        .headers = HDRS,
        .n_headers = sizeof(HDRS) / sizeof(HDRS[0]),
        .response_code = 503,
        .response_flags = TELE_RF_UF | TELE_RF_URX,
        .duration_ms = 250,
        .request_size = 10,
        .response_size = 2048,
        .source_address = STR_LIT("10.0.0.1"),
        .source_port = 34567,
        .destination_address = STR_LIT("10.0.0.2"),
        .destination_port = 9080,
        .downstream_peer = &DOWN,
        .upstream_peer = &UP,
    };
}

static ax_expr_t *parse_ok(const char *src, enum ax_type want)
{
    char err[256];
    size_t off = 99;
    ax_expr_t *e = ax_parse(src, want, err, sizeof(err), &off);
    if (!e)
        fail_msg("%s: parse error at %zu: %s", src, off, err);
    assert_int_equal(off, 0);
    assert_string_equal(ax_source(e), src);
    return e;
}

/* The text of a tag value, or MISSING. */
static const char *eval_s(const char *src, const ax_ctx_t *c)
{
    static char out[512];
    char scratch[AX_SCRATCH];
    ax_expr_t *e = parse_ok(src, AX_STRING);
    str_t s;
    if (ax_eval_string(e, c, scratch, &s) < 0) {
        strcpy(out, MISSING);
    } else {
        assert_true(s.len < sizeof(out));
        memcpy(out, s.ptr, s.len);
        out[s.len] = '\0';
    }
    ax_free(e);
    return out;
}

static int eval_b(const char *src, const ax_ctx_t *c)
{
    ax_expr_t *e = parse_ok(src, AX_BOOL);
    int r = ax_eval_bool(e, c);
    ax_free(e);
    return r;
}

#define ASSERT_S(src, want) assert_string_equal(eval_s(src, &c), want)
#define ASSERT_TRUE(src) assert_int_equal(eval_b(src, &c), 1)
#define ASSERT_FALSE(src) assert_int_equal(eval_b(src, &c), 0)

static void test_request_attributes(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_S("request.path", "/reviews/1?x=1&y=2#frag");
    ASSERT_S("request.url_path", "/reviews/1");
    ASSERT_S("request.query", "x=1&y=2");
    ASSERT_S("request.host", "reviews:9080");
    ASSERT_S("request.scheme", "http");
    ASSERT_S("request.method", "GET");
    ASSERT_S("request.protocol", "HTTP/1.1");
    ASSERT_S("request.useragent", "curl/8.0");
    ASSERT_S("request.referer", "http://a/b");
    ASSERT_S("request.id", "rid-1");
    ASSERT_S("request.size", "10");
    ASSERT_S("request.duration", "250");
    ASSERT_S("response.code", "503");
    ASSERT_S("response.size", "2048");
    ASSERT_S("source.address", "10.0.0.1:34567");
    ASSERT_S("source.port", "34567");
    ASSERT_S("destination.address", "10.0.0.2:9080");
    ASSERT_S("destination.port", "9080");
    ASSERT_S("connection.mtls", "false");
    ASSERT_TRUE("request.duration > 200 && request.duration <= 250");
    ASSERT_TRUE("response.size == 2048 && request.size < 11");
    ASSERT_TRUE("destination.port == 9080 && source.port != 9080");
    ASSERT_FALSE("connection.mtls");

    c.path = STR_LIT("/plain");
    ASSERT_S("request.url_path", "/plain");
    ASSERT_S("request.query", "");
    c.source_address = STR_LIT("fd00::1");
    ASSERT_S("source.address", "[fd00::1]:34567");
    c.source_port = 0;
    ASSERT_S("source.address", "fd00::1");
    ASSERT_S("source.port", MISSING);
    c.request_size = UINT64_MAX;
    ASSERT_S("request.size", "9223372036854775807");

    /* an empty context: strings and response.code are missing, sizes are 0 */
    ax_ctx_t z = {0};
    const char *missing[] = {"request.path",       "request.url_path",    "request.query",    "request.host",
                             "request.scheme",     "request.method",      "request.protocol", "request.useragent",
                             "request.referer",    "request.id",          "response.code",    "source.address",
                             "source.port",        "destination.address", "destination.port", "upstream_peer.app",
                             "downstream_peer.app"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
        assert_string_equal(eval_s(missing[i], &z), MISSING);
    assert_string_equal(eval_s("request.size", &z), "0");
    assert_string_equal(eval_s("response.flags", &z), "0");
    assert_string_equal(eval_s("request.duration", &z), "0");
}

static void test_headers(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_S("request.headers['x-user']", "jason"); /* the first of two */
    ASSERT_S("request.headers['X-USER']", "jason");
    ASSERT_S("request.headers[\"X-User\"]", "jason");
    ASSERT_S("request.headers [ 'user-agent' ]", "curl/8.0");
    ASSERT_S("request.headers['x-empty']", "");
    ASSERT_S("request.headers['x-missing']", MISSING);
    ASSERT_S("request.headers['x-use']", MISSING);
    ASSERT_S("request.headers[':authority']", "reviews:9080");
    ASSERT_S("request.headers[':path']", "/reviews/1?x=1&y=2#frag");
    ASSERT_S("request.headers[':method']", "GET");
    ASSERT_S("request.headers[':scheme']", "http");
    ASSERT_TRUE("request.headers['x-user'] == 'jason'");
    ASSERT_TRUE("request.headers['x-empty'] == ''");
    ASSERT_TRUE("has(request.headers['x-empty'])");
    ASSERT_TRUE("has(request.headers['X-User'])");
    ASSERT_FALSE("has(request.headers['x-missing'])");
    /* a missing field makes every comparison an error: the filter does not match */
    ASSERT_FALSE("request.headers['x-missing'] == 'a'");
    ASSERT_FALSE("request.headers['x-missing'] != 'a'");
    ASSERT_FALSE("!(request.headers['x-missing'] == 'a')");
    ASSERT_FALSE("request.headers['x-missing'].startsWith('')");

    ax_ctx_t z = {0}; /* headers NULL, n_headers 0 */
    assert_string_equal(eval_s("request.headers['x-user']", &z), MISSING);
    assert_int_equal(eval_b("has(request.headers['x-user'])", &z), 0);
}

static void test_peers(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_S("upstream_peer.app", "reviews");
    ASSERT_S("upstream_peer.version", "v2");
    ASSERT_S("upstream_peer.namespace", "bookinfo");
    ASSERT_S("upstream_peer.workload", "reviews-v2");
    ASSERT_S("upstream_peer.name", "reviews-v2-5d8f");
    ASSERT_S("upstream_peer.service", "reviews-svc");
    ASSERT_S("upstream_peer.revision", "rev2");
    ASSERT_S("upstream_peer.cluster", "Kubernetes");
    ASSERT_S("downstream_peer.app", "productpage");
    ASSERT_S("downstream_peer.namespace", "front");
    ASSERT_S("downstream_peer.cluster", "east");
    ASSERT_S("upstream_peer.labels['app']", "reviews");
    ASSERT_S("upstream_peer.labels['app'].value", "reviews");
    ASSERT_S("upstream_peer.labels[\"version\"].value", "v2");
    ASSERT_S("upstream_peer.labels['service.istio.io/canonical-name']", "reviews-svc");
    ASSERT_S("downstream_peer.labels['service.istio.io/canonical-revision'].value", "v1");
    ASSERT_TRUE("upstream_peer.labels['app'].value.startsWith('rev')");
    ASSERT_TRUE("has(upstream_peer) && has(downstream_peer.app)");

    c.upstream_peer = NULL;
    c.downstream_peer = &NO_APP;
    ASSERT_S("upstream_peer.app", MISSING);
    ASSERT_S("upstream_peer.labels['app'].value", MISSING);
    ASSERT_S("downstream_peer.app", MISSING); /* known peer, empty field */
    ASSERT_S("downstream_peer.namespace", "ns");
    ASSERT_FALSE("has(upstream_peer)");
    ASSERT_TRUE("has(downstream_peer)");
    ASSERT_FALSE("has(downstream_peer.app)");
    ASSERT_S("has(upstream_peer) ? upstream_peer.app : 'unknown'", "unknown");
}

static void test_comparisons(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_TRUE("response.code == 503");
    ASSERT_FALSE("response.code == 500");
    ASSERT_TRUE("response.code != 500");
    ASSERT_FALSE("response.code != 503");
    ASSERT_TRUE("response.code < 504");
    ASSERT_FALSE("response.code < 503");
    ASSERT_TRUE("response.code <= 503");
    ASSERT_FALSE("response.code <= 502");
    ASSERT_TRUE("response.code > 502");
    ASSERT_FALSE("response.code > 503");
    ASSERT_TRUE("response.code >= 503");
    ASSERT_FALSE("response.code >= 504");
    ASSERT_TRUE("-5 < 0 && 0 > -9223372036854775808");
    ASSERT_TRUE("request.method == 'GET'");
    ASSERT_FALSE("request.method == 'get'");
    ASSERT_TRUE("request.method != \"POST\"");
    ASSERT_TRUE("'a' < 'b' && 'ab' > 'a' && 'a' <= 'a' && 'b' >= 'a' && '' < 'a'");
    ASSERT_FALSE("'b' < 'a'");
    ASSERT_TRUE("connection.mtls == false && true != false");
    ASSERT_TRUE("(response.code >= 500) == true");
    ASSERT_TRUE("response.code == 503 == true"); /* left-associative, as in CEL */
}

static void test_precedence_and_logic(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_TRUE("true || false && false"); /* && binds tighter */
    ASSERT_FALSE("(true || false) && false");
    ASSERT_TRUE("false && false || true");
    ASSERT_FALSE("!true || false");
    ASSERT_TRUE("!false && true");
    ASSERT_TRUE("!!true");
    ASSERT_FALSE("!(response.code == 503)");
    ASSERT_TRUE("response.code >= 400 || request.method == 'POST'");
    ASSERT_TRUE("response.code < 400 || request.method == 'GET' && request.host == 'reviews:9080'");
    ASSERT_FALSE("response.code < 400 || request.method == 'POST' && true");
    ASSERT_TRUE("\n\tresponse.code\n>= 400 ");
}

static void test_errors_short_circuit(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
#define M "request.headers['x-missing'] == 'a'"
    ASSERT_FALSE("false && " M);
    ASSERT_FALSE(M " && false");
    ASSERT_FALSE("true && " M);
    ASSERT_TRUE("true || " M);
    ASSERT_TRUE(M " || true");
    ASSERT_FALSE(M " || false");
    ASSERT_FALSE("!(" M ")");
    ASSERT_FALSE("(" M ") ? true : true");
    ASSERT_FALSE("(" M ") == false");
    ASSERT_FALSE("has(request.headers['x-missing']) && " M);
    ASSERT_TRUE("!has(request.headers['x-missing']) || " M);
    ASSERT_TRUE("has(request.headers['x-user']) && request.headers['x-user'] == 'jason'");
#undef M
    ASSERT_S("has(request.headers['x-user']) ? request.headers['x-user'] : 'anonymous'", "jason");
    ASSERT_S("has(request.headers['x-missing']) ? request.headers['x-missing'] : 'anonymous'", "anonymous");
    ASSERT_S("request.headers['x-missing'] == 'a' ? 'x' : 'y'", MISSING);
    ASSERT_S("request.headers['x-missing'] == 'a' || true", "true");
    ASSERT_S("request.headers['x-missing'] == 'a' || false", MISSING);
    ASSERT_S("string(response.code) == '503' && has(upstream_peer)", "true");

    ax_ctx_t z = {0};
    assert_int_equal(eval_b("response.code >= 400", &z), 0); /* no response */
    assert_int_equal(eval_b("!(response.code >= 400)", &z), 0);
    assert_int_equal(eval_b("!has(response.code)", &z), 1);
}

static void test_ternary(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_S("response.code >= 500 ? 'error' : 'ok'", "error");
    ASSERT_S("response.code < 500 ? 'error' : 'ok'", "ok");
    ASSERT_S("false ? 'a' : true ? 'b' : 'c'", "b"); /* right-associative */
    ASSERT_S("true ? 'a' : false ? 'b' : 'c'", "a");
    ASSERT_S("(true ? false : true) ? 'a' : 'b'", "b");
    ASSERT_S("response.code == 503 ? response.code : 0", "503");
    ASSERT_S("response.code == 503 ? source.address : destination.address", "10.0.0.1:34567");
    ASSERT_TRUE("(response.code > 0 ? request.method : 'x') == 'GET'");
    ASSERT_TRUE("true ? true : "
                "request.headers['x-missing'] == 'a'"); /* the other branch is not evaluated */
}

static void test_in_lists(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_TRUE("request.method in ['GET', 'HEAD']");
    ASSERT_FALSE("request.method in ['POST', 'PUT']");
    ASSERT_TRUE("response.code in [500, 503, 504]");
    ASSERT_FALSE("response.code in [-1, 200,]");
    ASSERT_FALSE("request.method in []");
    ASSERT_TRUE("connection.mtls in [false]");
    ASSERT_TRUE("!(request.method in ['POST'])");
    ASSERT_TRUE("upstream_peer.app in ['ratings', 'reviews'] && response.code in [503]");
    ASSERT_FALSE("request.headers['x-missing'] in ['a']");
    ASSERT_TRUE("request.headers['x-empty'] in ['', 'a']");
    ASSERT_TRUE("response.code in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 503]"); /* 16 */
}

static void test_string_methods(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_TRUE("request.path.startsWith('/reviews')");
    ASSERT_FALSE("request.path.startsWith('/ratings')");
    ASSERT_TRUE("request.path.endsWith('#frag')");
    ASSERT_FALSE("request.path.endsWith('/reviews')");
    ASSERT_TRUE("request.path.contains('x=1')");
    ASSERT_FALSE("request.path.contains('x=2')");
    ASSERT_TRUE("request.path.contains('') && ''.startsWith('') && 'abc'.endsWith('')");
    ASSERT_FALSE("'ab'.startsWith('abc') || 'ab'.endsWith('xab') || 'ab'.contains('abc')");
    ASSERT_TRUE("request.path.startsWith(request.url_path)");
    ASSERT_TRUE("request.path . startsWith ( '/' )");
    ASSERT_TRUE("string(response.code).startsWith('5')");
    ASSERT_TRUE("(response.code > 0 ? 'abc' : 'x').contains('b')");
    ASSERT_TRUE("request.headers['user-agent'].startsWith('curl/')");
    ASSERT_FALSE("request.headers['x-missing'].contains('')");
}

static void test_conversions(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_TRUE("int(request.headers['x-num']) == 42");
    ASSERT_TRUE("int(request.headers['x-neg']) == -17");
    ASSERT_TRUE("int('+5') == 5 && int('0') == 0 && int('-0') == 0");
    ASSERT_TRUE("int('9223372036854775807') == 9223372036854775807");
    ASSERT_TRUE("int('-9223372036854775808') == -9223372036854775808");
    ASSERT_FALSE("int(request.headers['x-bad-num']) == 42");
    ASSERT_FALSE("int(request.headers['x-bad-num']) != 42");
    ASSERT_FALSE("int('9223372036854775808') > 0");
    ASSERT_FALSE("int('') == 0 || int('-') == 0 || int(' 1') == 1 || int('1 ') == 1 || int('0x10') == 16");
    ASSERT_S("int(request.headers['x-num'])", "42");
    ASSERT_S("int(request.headers['x-bad-num'])", MISSING);
    ASSERT_S("int(request.headers['x-missing'])", MISSING);
    ASSERT_S("int(response.code)", "503");
    ASSERT_S("string(response.code)", "503");
    ASSERT_S("string(destination.port)", "9080");
    ASSERT_S("string(-9223372036854775808)", "-9223372036854775808");
    ASSERT_S("string(true)", "true");
    ASSERT_S("string(connection.mtls)", "false");
    ASSERT_S("string('x')", "x");
    ASSERT_S("response.code >= 500", "true");
    ASSERT_S("response.code", "503");
    ASSERT_S("-42", "-42");
    /* each side of a comparison has its own buffer */
    ASSERT_TRUE("string(response.code) == string(503)");
    ASSERT_TRUE("string(source.port) < string(destination.port)"); /* "34567" < "9080" bytewise */
    ASSERT_FALSE("string(source.port) < string(request.size)");
    ASSERT_TRUE("source.address != destination.address");
}

static void test_response_flags(void **state)
{
    (void)state;
    ax_ctx_t c = full_ctx();
    ASSERT_S("response.flags", "32800"); /* UF 0x20 | URX 0x8000 */
    ASSERT_TRUE("response.flags == 32800");
    static const struct {
        uint32_t ours;
        const char *envoy;
    } CASES[] = {
        {0, "0"},
        {TELE_RF_NR, "256"},      /* NoRouteFound 0x100 */
        {TELE_RF_UH, "2"},        /* NoHealthyUpstream 0x2 */
        {TELE_RF_UT, "4"},        /* UpstreamRequestTimeout 0x4 */
        {TELE_RF_UC, "64"},       /* UpstreamConnectionTermination 0x40 */
        {TELE_RF_UO, "128"},      /* UpstreamOverflow 0x80 */
        {TELE_RF_DC, "16384"},    /* DownstreamConnectionTermination 0x4000 */
        {TELE_RF_UPE, "8388608"}, /* UpstreamProtocolError 0x800000 */
        {TELE_RF_RL, "2048"},     /* RateLimited 0x800 */
        {TELE_RF_RLSE, "8192"},   /* RateLimitServiceError 0x2000 */
        {TELE_RF_DI | TELE_RF_FI, "1536"},
        {(1u << TELE_NFLAGS) - 1, "8450022"},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        c.response_flags = CASES[i].ours;
        ASSERT_S("response.flags", CASES[i].envoy);
    }
    c.response_flags = TELE_RF_UH | TELE_RF_NR;
    ASSERT_TRUE("response.flags == 258");
}

static void test_literals(void **state)
{
    (void)state;
    ax_ctx_t c = {0};
    ASSERT_S("'literal'", "literal");
    ASSERT_S("\"double\"", "double");
    ASSERT_S("'it\\'s'", "it's");
    ASSERT_S("\"say \\\"hi\\\"\"", "say \"hi\"");
    ASSERT_S("'a\\\\b'", "a\\b");
    ASSERT_S("\"it's\"", "it's");
    ASSERT_S("''", "");
    ASSERT_S("9223372036854775807", "9223372036854775807");
    ASSERT_S("-9223372036854775808", "-9223372036854775808");
    ASSERT_S("007", "7");
    ASSERT_S("true", "true");
    ASSERT_S("(('x'))", "x");
}

static void test_api(void **state)
{
    (void)state;
    static const struct {
        const char *src;
        enum ax_type type;
        bool per_request;
    } CASES[] = {
        {"'x'", AX_STRING, false},
        {"42", AX_INT, false},
        {"true", AX_BOOL, false},
        {"destination.port", AX_INT, false},
        {"string(destination.port)", AX_STRING, false},
        {"destination.address", AX_STRING, false},
        {"upstream_peer.app", AX_STRING, false},
        {"downstream_peer.labels['version'].value", AX_STRING, false},
        {"has(downstream_peer) ? downstream_peer.workload : 'x'", AX_STRING, false},
        {"request.path", AX_STRING, true},
        {"request.headers['x-user']", AX_STRING, true},
        {"source.port", AX_INT, true},
        {"source.address", AX_STRING, true},
        {"response.code >= 400", AX_BOOL, true},
        {"connection.mtls", AX_BOOL, true},
        {"upstream_peer.app == 'a' && request.method == 'GET'", AX_BOOL, true},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        ax_expr_t *e = parse_ok(CASES[i].src, AX_STRING);
        assert_int_equal(ax_type_of(e), CASES[i].type);
        assert_int_equal(ax_per_request(e), CASES[i].per_request);
        assert_ptr_not_equal(ax_source(e), CASES[i].src);
        ax_free(e);
    }
    ax_free(NULL);

    ax_ctx_t c = full_ctx();
    ax_expr_t *e = parse_ok("request.method", AX_STRING);
    assert_int_equal(ax_eval_bool(e, &c), 0); /* not a boolean expression */
    ax_free(e);
    e = parse_ok("response.code", AX_INT);
    assert_int_equal(ax_type_of(e), AX_INT);
    ax_free(e);

    /* results point into the context, the scratch or the expression, never elsewhere */
    char scratch[AX_SCRATCH];
    str_t out;
    e = parse_ok("request.headers['x-user']", AX_STRING);
    assert_int_equal(ax_eval_string(e, &c, scratch, &out), 0);
    assert_ptr_equal(out.ptr, HDRS[1].value.ptr);
    ax_free(e);
    e = parse_ok("string(response.size)", AX_STRING);
    assert_int_equal(ax_eval_string(e, &c, scratch, &out), 0);
    assert_ptr_equal(out.ptr, scratch);
    assert_int_equal(out.len, 4);
    ax_free(e);

    /* error reporting with a short, absent or NULL buffer */
    char small[8];
    size_t off = 0;
    assert_null(ax_parse("request.nope", AX_STRING, small, sizeof(small), &off));
    assert_string_equal(small, "unknown");
    assert_null(ax_parse("request.nope", AX_STRING, NULL, 0, NULL));
    assert_null(ax_parse("(", AX_BOOL, small, 0, &off));
    assert_int_equal(off, 1);
}

static void expect_error(const char *src, enum ax_type want, const char *msg, size_t want_off)
{
    char err[256] = "unset";
    size_t off = 12345;
    ax_expr_t *e = ax_parse(src, want, err, sizeof(err), &off);
    if (e)
        fail_msg("'%s' parsed, expected an error \"%s\"", src, msg);
    if (!strstr(err, msg))
        fail_msg("'%s': error \"%s\" does not contain \"%s\"", src, err, msg);
    if (off != want_off)
        fail_msg("'%s': error \"%s\" at %zu, expected at %zu", src, err, off, want_off);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("request.foo", AX_STRING, "unknown attribute 'request.foo'", 0);
    expect_error("response.code == 200 && request.foo.bar == 'x'", AX_BOOL, "unknown attribute 'request.foo.bar'", 24);
    expect_error("foo", AX_STRING, "unknown attribute 'foo'", 0);
    expect_error("'abc", AX_STRING, "unterminated string", 0);
    expect_error("request.path == \"abc\\", AX_BOOL, "unterminated string", 16);
    expect_error("'a\\nb'", AX_STRING, "unsupported escape '\\n'", 2);
    expect_error("response.code == 'x'", AX_BOOL, "cannot compare int with string", 14);
    expect_error("request.method != 1", AX_BOOL, "cannot compare string with int", 15);
    expect_error("connection.mtls < true", AX_BOOL, "bools can only be compared with == and !=", 16);
    expect_error("response.code == 200 foo", AX_BOOL, "unexpected 'foo' after the end of the expression", 21);
    expect_error("'a' 'b'", AX_STRING, "unexpected ''b'' after the end", 4);
    expect_error("request.method == 'GET' &&", AX_BOOL, "unexpected end of expression", 26);
    expect_error("(true", AX_BOOL, "expected ')'", 5);
    expect_error("", AX_STRING, "empty expression", 0);
    expect_error("  ", AX_STRING, "empty expression", 2);
    expect_error("request.path", AX_BOOL, "must be a boolean expression", 0);
    expect_error("response.code", AX_BOOL, "must be a boolean expression, not int", 0);
    expect_error("'x'", AX_INT, "must be an int expression", 0);
    expect_error("response.code + 1", AX_INT, "arithmetic is not supported", 14);
    expect_error("-response.code", AX_INT, "arithmetic is not supported", 0);
    expect_error("{'a': 1}", AX_STRING, "maps are not supported", 0);
    expect_error("['a']", AX_STRING, "lists are only supported after 'in'", 0);
    expect_error("response.headers['x']", AX_STRING, "attribute 'response.headers' is not supported", 0);
    expect_error("response.grpc_status", AX_STRING, "attribute 'response.grpc_status' is not supported", 0);
    expect_error("xds.cluster_name", AX_STRING, "'xds' attributes are not supported", 0);
    expect_error("node.id", AX_STRING, "'node' attributes are not supported", 0);
    expect_error("filter_state['upstream_peer']", AX_STRING, "'filter_state' attributes are not supported", 0);
    expect_error("size(request.path) > 1", AX_BOOL, "function 'size' is not supported", 0);
    expect_error("request.path.matches('x')", AX_BOOL, "method 'matches' is not supported", 13);
    expect_error("response.code.startsWith('5')", AX_BOOL, "startsWith() needs a string, not int", 14);
    expect_error("request.path.contains(1)", AX_BOOL, "the argument of contains() must be a string, not int", 22);
    expect_error("('a').size", AX_STRING, "field selection is only supported on attributes", 5);
    expect_error("request.path['x']", AX_STRING, "indexing is only supported on request.headers", 0);
    expect_error("request.headers", AX_STRING, "request.headers needs a key", 0);
    expect_error("request.headers['']", AX_STRING, "empty header name", 16);
    expect_error("request.headers[1]", AX_STRING, "expected a quoted key", 16);
    expect_error("upstream_peer.labels['team']", AX_STRING, "unknown label 'team'", 21);
    expect_error("upstream_peer.labels['app'].name", AX_STRING, "expected 'value' after a label", 28);
    expect_error("upstream_peer.labels", AX_STRING, "needs a key", 0);
    expect_error("upstream_peer.foo", AX_STRING, "unknown attribute 'upstream_peer.foo'", 0);
    expect_error("upstream_peer", AX_STRING, "'upstream_peer' is not a value", 0);
    expect_error("has(request.path.startsWith('x'))", AX_BOOL, "expected ')'", 16);
    expect_error("has('x')", AX_BOOL, "has() takes an attribute", 4);
    expect_error("int(true)", AX_INT, "int() of a bool is not supported", 0);
    expect_error("99999999999999999999", AX_INT, "integer literal out of range", 0);
    expect_error("9223372036854775808", AX_INT, "integer literal out of range", 0);
    expect_error("1.5", AX_STRING, "only decimal integer literals are supported", 0);
    expect_error("0x10", AX_STRING, "only decimal integer literals are supported", 0);
    expect_error("null", AX_STRING, "null is not supported", 0);
    expect_error("!response.code", AX_BOOL, "'!' needs a bool, not int", 0);
    expect_error("response.code || true", AX_BOOL, "'||' needs bools, not int and bool", 14);
    expect_error("response.code ? 'a' : 'b'", AX_STRING, "the condition of '?:' must be a bool", 14);
    expect_error("true ? 'a' : 1", AX_STRING, "the branches of '?:' have different types (string and int)", 11);
    expect_error("true ? 'a' 'b'", AX_STRING, "expected ':'", 11);
    expect_error("request.method in ['GET', 1]", AX_BOOL, "list item is a int, not a string", 26);
    expect_error("request.method in [request.path]", AX_BOOL, "an 'in' list holds literals only", 19);
    expect_error("request.method in ['GET' 'PUT']", AX_BOOL, "expected ',' or ']'", 25);
    expect_error("request.method in ['GET',", AX_BOOL, "expected ']'", 25);
    expect_error("request.method in 'GET'", AX_BOOL, "expected '['", 18);
    expect_error("response.code in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]", AX_BOOL,
                 "an 'in' list holds at most 16 literals", 73);
    expect_error("response.code = 1", AX_BOOL, "unexpected '=' after the end", 14);
    expect_error("request.path & 1", AX_BOOL, "unexpected '&' after the end", 13);
    expect_error("@", AX_BOOL, "unexpected '@'", 0);
}

static void test_limits(void **state)
{
    (void)state;
    char src[2 * AX_MAX_LEN];

    /* length: AX_MAX_LEN bytes parse, one more does not */
    memset(src, 'x', AX_MAX_LEN);
    src[0] = '\'';
    src[AX_MAX_LEN - 1] = '\'';
    src[AX_MAX_LEN] = '\0';
    ax_free(parse_ok(src, AX_STRING));
    src[AX_MAX_LEN - 1] = 'x';
    src[AX_MAX_LEN] = '\'';
    src[AX_MAX_LEN + 1] = '\0';
    expect_error(src, AX_STRING, "expression longer than 1024 bytes", AX_MAX_LEN);

    /* nesting: 31 parentheses (depth 32 with the top level) parse, 32 do not */
    for (int n = 31; n <= 40; n += 9) {
        size_t k = 0;
        for (int i = 0; i < n; i++)
            src[k++] = '(';
        k += (size_t)sprintf(src + k, "true");
        for (int i = 0; i < n; i++)
            src[k++] = ')';
        src[k] = '\0';
        if (n == 31)
            ax_free(parse_ok(src, AX_BOOL));
        else
            expect_error(src, AX_BOOL, "expression nested deeper than 32", 32);
    }
    memset(src, '!', 32);
    strcpy(src + 32, "true");
    expect_error(src, AX_BOOL, "expression nested deeper than 32", 31);
    ax_free(parse_ok(src + 1, AX_BOOL));

    /* nodes: 32 literals and 31 || are 63 nodes; one more literal and || make 65 */
    for (int n = 32; n <= 33; n++) {
        size_t k = 0;
        for (int i = 0; i < n; i++)
            k += (size_t)sprintf(src + k, "%strue", i ? " || " : "");
        if (n == 32)
            ax_free(parse_ok(src, AX_BOOL));
        else
            expect_error(src, AX_BOOL, "expression has more than 64 nodes", 253);
    }
}

/* ---- property test ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static const char *const STR_ATTRS[] = {
    "request.path",
    "request.url_path",
    "request.query",
    "request.host",
    "request.scheme",
    "request.method",
    "request.protocol",
    "request.useragent",
    "request.referer",
    "request.id",
    "source.address",
    "destination.address",
    "upstream_peer.app",
    "downstream_peer.name",
    "upstream_peer.cluster",
    "request.headers['x-a']",
    "request.headers['X-B']",
    "upstream_peer.labels['version'].value",
    "'lit'",
    "''",
    "\"d\\\"q\"",
};
static const char *const INT_ATTRS[] = {"request.size",
                                        "request.duration",
                                        "response.code",
                                        "response.size",
                                        "response.flags",
                                        "source.port",
                                        "destination.port",
                                        "0",
                                        "-1",
                                        "503",
                                        "9223372036854775807"};

static void gen(char *out, size_t cap, int t, int depth);

/* out = a X b Y c, with X and Y generated expressions of types tx and ty (ty < 0: no Y). */
static void gen3(char *out, size_t cap, const char *a, int tx, const char *b, int ty, const char *c, int depth)
{
    char x[1024] = "", y[1024] = "";
    gen(x, sizeof(x), tx, depth + 1);
    if (ty >= 0)
        gen(y, sizeof(y), ty, depth + 1);
    snprintf(out, cap, "%s%s%s%s%s", a, x, b, y, c);
}

/* A random expression of type t, mostly well-typed (a mismatch now and then). */
static void gen(char *out, size_t cap, int t, int depth)
{
    static const char *const CMP[] = {" == ", " != ", " < ", " <= ", " > ", " >= "};
    static const char *const METHODS[] = {".startsWith(", ".endsWith(", ".contains("};
    uint32_t k = depth > 3 ? 0 : rnd(6);
    int other = rnd(10) == 0 ? (t + 1) % 3 : t;
    if (t == AX_STRING) {
        if (k < 3)
            snprintf(out, cap, "%s", STR_ATTRS[rnd(sizeof(STR_ATTRS) / sizeof(STR_ATTRS[0]))]);
        else if (k == 3)
            gen3(out, cap, "string(", rnd(2) ? AX_INT : AX_BOOL, ")", -1, "", depth);
        else
            gen3(out, cap, "(response.code > 400 ? ", t, " : ", other, ")", depth);
    } else if (t == AX_INT) {
        if (k < 4)
            snprintf(out, cap, "%s", INT_ATTRS[rnd(sizeof(INT_ATTRS) / sizeof(INT_ATTRS[0]))]);
        else
            gen3(out, cap, "int(", AX_STRING, ")", -1, "", depth);
    } else {
        int side = rnd(2) ? AX_INT : AX_STRING;
        switch (k) {
        case 0: snprintf(out, cap, "%s", rnd(3) ? (rnd(2) ? "true" : "false") : "has(request.headers['x-a'])"); break;
        case 1: gen3(out, cap, "(", side, CMP[rnd(6)], rnd(10) ? side : other, ")", depth); break;
        case 2: gen3(out, cap, "(", AX_BOOL, rnd(2) ? " && " : " || ", other, ")", depth); break;
        case 3: gen3(out, cap, "!", other, "", -1, "", depth); break;
        case 4: gen3(out, cap, "", AX_STRING, METHODS[rnd(3)], AX_STRING, ")", depth); break;
        default: gen3(out, cap, "", other, " in ['a', '', 'GET', 'x-a']", -1, "", depth); break;
        }
    }
}

static str_t rand_str(char *buf, size_t cap)
{
    static const char *const POOL[] = {"", "a", "GET", "/p?q=1#f", "503", "-7", "x", "10.1.2.3", "fd00::9", "?", "#"};
    if (rnd(4) == 0) {
        size_t n = rnd((uint32_t)cap);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)rnd(256);
        return (str_t){buf, (uint32_t)n};
    }
    const char *s = POOL[rnd(sizeof(POOL) / sizeof(POOL[0]))];
    return (str_t){s, (uint32_t)strlen(s)};
}

static void test_random(void **state)
{
    (void)state;
    static char bufs[16][80];
    peer_info_t peer = UP;
    for (int iter = 0; iter < 20000; iter++) {
        char src[4096];
        enum ax_type want = (enum ax_type)rnd(3);
        gen(src, sizeof(src), (int)want, 0);
        size_t len = strlen(src);
        if (rnd(4) == 0 && len) { /* mangle: drop, change or insert a byte */
            size_t at = rnd((uint32_t)len);
            uint32_t how = rnd(3);
            if (how == 0)
                memmove(src + at, src + at + 1, len - at);
            else if (how == 1)
                src[at] = (char)(1 + rnd(255));
            else if (len + 1 < sizeof(src)) {
                memmove(src + at + 1, src + at, len - at + 1);
                src[at] = "()[]'\".,!?:|&=<>- 0aZ\\"[rnd(23)];
            }
        }

        http1_header_t h[4];
        size_t nh = rnd(5);
        for (size_t i = 0; i < nh; i++) {
            h[i].name = rnd(2) ? STR_LIT("x-a") : rand_str(bufs[2 * i], 8);
            h[i].value = rand_str(bufs[2 * i + 1], 80);
        }
        ax_ctx_t c = {
            .method = rand_str(bufs[8], 10),
            .path = rand_str(bufs[9], 80),
            .host = rand_str(bufs[10], 20),
            .headers = nh ? h : NULL,
            .n_headers = nh,
            .response_code = (int)rnd(700),
            .response_flags = (uint32_t)rnd(1u << 14),
            .duration_ms = rnd(2) ? rng_state : rnd(1000),
            .source_address = rand_str(bufs[11], 80),
            .source_port = rnd(3) ? rnd(65536) : UINT32_MAX,
            .destination_address = rand_str(bufs[12], 50),
            .destination_port = rnd(65536),
            .upstream_peer = rnd(2) ? &peer : NULL,
            .downstream_peer = rnd(2) ? &NO_APP : NULL,
        };

        char err[128];
        size_t off;
        ax_expr_t *e = ax_parse(src, want, err, sizeof(err), &off);
        if (!e) {
            assert_true(off <= strlen(src));
            assert_true(strlen(err) > 0);
            continue;
        }
        assert_true(want != AX_BOOL || ax_type_of(e) == AX_BOOL);
        char scratch[AX_SCRATCH], copy[4096];
        str_t out, again;
        int rs = ax_eval_string(e, &c, scratch, &out);
        if (rs == 0) {
            memcpy(copy, out.ptr, out.len); /* ASan checks the slice is readable */
            assert_int_equal(ax_eval_string(e, &c, scratch, &again), 0);
            assert_int_equal(again.len, out.len);
            assert_memory_equal(again.ptr, copy, out.len);
        }
        int rb = ax_eval_bool(e, &c);
        if (ax_type_of(e) == AX_BOOL)
            assert_int_equal(rb, rs == 0 && out.len == 4 && memcmp(out.ptr, "true", 4) == 0);
        else
            assert_int_equal(rb, 0);
        ax_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_attributes),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_peers),
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_precedence_and_logic),
        cmocka_unit_test(test_errors_short_circuit),
        cmocka_unit_test(test_ternary),
        cmocka_unit_test(test_in_lists),
        cmocka_unit_test(test_string_methods),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_response_flags),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
