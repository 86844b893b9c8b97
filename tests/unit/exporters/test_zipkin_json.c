/*
 * Tests for exporters/zipkin_json: decoding with Zipkin's rules, encoding in
 * Zipkin's field order, round trips and the error paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "zipkin_json.h"

#define MAX_COLLECT 64

typedef struct collect {
    span_t spans[MAX_COLLECT];
    size_t n;
    int stop_after; /* 0 = never */
} collect_t;

static int collect_sink(void *ctx, const span_t *s)
{
    collect_t *c = ctx;
    if (c->stop_after && (int)c->n >= c->stop_after)
        return -1;
    if (c->n < MAX_COLLECT)
        c->spans[c->n++] = *s;
    return 0;
}

static int str_eq(str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

#define assert_str(s, lit) assert_true(str_eq((s), (lit)))

typedef struct fixture {
    arena_t arena;
    collect_t c;
    zipkin_result_t res;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    arena_init(&f->arena, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    arena_dispose(&f->arena);
    free(f);
    return 0;
}

static int decode(fixture_t *f, const char *json, const zipkin_limits_t *lim)
{
    f->c.n = 0;
    return zipkin_json_decode(json, strlen(json), &f->arena, lim, collect_sink, &f->c, &f->res);
}

/* Decode must fail and the reason must contain want. */
static void expect_fail(fixture_t *f, const char *json, const char *want)
{
    int rc = decode(f, json, NULL);
    if (rc != -1 || strstr(f->res.error, want) == NULL)
        fail_msg("json %s: rc %d error '%s', wanted '%s'", json, rc, f->res.error, want);
    assert_true(strncmp(f->res.error, "Malformed reading List<Span> from json", 38) == 0 ||
                strstr(f->res.error, "too large") != NULL);
}

static const char *SIDECAR =
    "[{\"traceId\":\"4e441824ec2b6a44ffdc9bb9a6453df3\",\"parentId\":\"ffdc9bb9a6453df3\","
    "\"id\":\"5b4185666d50f68b\",\"kind\":\"CLIENT\",\"name\":\"GET /API/Items\","
    "\"timestamp\":1700000000123456,\"duration\":2345,"
    "\"localEndpoint\":{\"serviceName\":\"Frontend\",\"ipv4\":\"10.0.1.7\"},"
    "\"remoteEndpoint\":{\"serviceName\":\"checkout\",\"ipv4\":\"10.0.2.9\",\"port\":8080},"
    "\"annotations\":[{\"timestamp\":1700000000123500,\"value\":\"wr\"}],"
    "\"tags\":{\"http.method\":\"GET\",\"http.url\":\"http://checkout:8080/api/items?id=1\","
    "\"http.status_code\":\"200\",\"upstream_cluster\":\"outbound|8080||checkout.default.svc\","
    "\"response_flags\":\"-\",\"node_id\":\"sidecar~10.0.1.7~frontend-1.default\"},"
    "\"unknownField\":{\"nested\":[1,2,{\"x\":null}]},\"debug\":true},"
    "{\"traceId\":\"ffdc9bb9a6453df3\",\"id\":\"1\",\"kind\":\"SERVER\",\"shared\":true,"
    "\"localEndpoint\":{\"serviceName\":\"checkout\",\"ipv6\":\"2001:DB8:0:0:0:0:0:C001\",\"port\":8080}}]";

static void test_decode_sidecar_spans(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(decode(f, SIDECAR, NULL), 0);
    assert_int_equal(f->res.accepted, 2);
    assert_int_equal(f->res.rejected, 0);
    assert_string_equal(f->res.error, "");
    assert_int_equal(f->c.n, 2);

    const span_t *s = &f->c.spans[0];
    assert_true(s->trace_id_high == 0x4e441824ec2b6a44ull);
    assert_true(s->trace_id_low == 0xffdc9bb9a6453df3ull);
    assert_true(s->parent_id == 0xffdc9bb9a6453df3ull);
    assert_true(s->id == 0x5b4185666d50f68bull);
    assert_int_equal(s->kind, SPAN_KIND_CLIENT);
    assert_str(s->name, "get /api/items");
    assert_true(s->timestamp_us == 1700000000123456ull);
    assert_true(s->duration_us == 2345);
    assert_true(s->has_local);
    assert_str(s->local.service_name, "frontend");
    assert_true(s->local.has_ipv4);
    assert_memory_equal(s->local.ipv4, ((uint8_t[]){10, 0, 1, 7}), 4);
    assert_false(s->local.has_ipv6);
    assert_int_equal(s->local.port, 0);
    assert_true(s->has_remote);
    assert_str(s->remote.service_name, "checkout");
    assert_memory_equal(s->remote.ipv4, ((uint8_t[]){10, 0, 2, 9}), 4);
    assert_int_equal(s->remote.port, 8080);
    assert_int_equal(s->n_annotations, 1);
    assert_true(s->annotations[0].timestamp_us == 1700000000123500ull);
    assert_str(s->annotations[0].value, "wr");
    assert_int_equal(s->n_tags, 6);
    /* sorted by key */
    assert_str(s->tags[0].key, "http.method");
    assert_str(s->tags[0].value, "GET");
    assert_str(s->tags[1].key, "http.status_code");
    assert_str(s->tags[1].value, "200");
    assert_str(s->tags[2].key, "http.url");
    assert_str(s->tags[2].value, "http://checkout:8080/api/items?id=1");
    assert_str(s->tags[3].key, "node_id");
    assert_str(s->tags[4].key, "response_flags");
    assert_str(s->tags[4].value, "-");
    assert_str(s->tags[5].key, "upstream_cluster");
    assert_str(s->tags[5].value, "outbound|8080||checkout.default.svc");
    assert_true(s->debug);
    assert_false(s->shared);

    s = &f->c.spans[1];
    assert_true(s->trace_id_high == 0);
    assert_true(s->trace_id_low == 0xffdc9bb9a6453df3ull);
    assert_true(s->id == 1);
    assert_true(s->parent_id == 0);
    assert_int_equal(s->kind, SPAN_KIND_SERVER);
    assert_int_equal(s->name.len, 0);
    assert_true(s->shared);
    assert_false(s->debug);
    assert_true(s->local.has_ipv6);
    assert_false(s->local.has_ipv4);
    assert_memory_equal(s->local.ipv6, ((uint8_t[]){0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x01}),
                        16);
    assert_int_equal(s->local.port, 8080);
    assert_false(s->has_remote);
    assert_int_equal(s->n_tags, 0);
    assert_int_equal(s->n_annotations, 0);
}

static const char *CANONICAL_0 =
    "{\"traceId\":\"4e441824ec2b6a44ffdc9bb9a6453df3\",\"parentId\":\"ffdc9bb9a6453df3\","
    "\"id\":\"5b4185666d50f68b\",\"kind\":\"CLIENT\",\"name\":\"get /api/items\","
    "\"timestamp\":1700000000123456,\"duration\":2345,"
    "\"localEndpoint\":{\"serviceName\":\"frontend\",\"ipv4\":\"10.0.1.7\"},"
    "\"remoteEndpoint\":{\"serviceName\":\"checkout\",\"ipv4\":\"10.0.2.9\",\"port\":8080},"
    "\"annotations\":[{\"timestamp\":1700000000123500,\"value\":\"wr\"}],"
    "\"tags\":{\"http.method\":\"GET\",\"http.status_code\":\"200\","
    "\"http.url\":\"http://checkout:8080/api/items?id=1\",\"node_id\":\"sidecar~10.0.1.7~frontend-1.default\","
    "\"response_flags\":\"-\",\"upstream_cluster\":\"outbound|8080||checkout.default.svc\"},"
    "\"debug\":true}";

static const char *CANONICAL_1 =
    "{\"traceId\":\"ffdc9bb9a6453df3\",\"id\":\"0000000000000001\",\"kind\":\"SERVER\","
    "\"localEndpoint\":{\"serviceName\":\"checkout\",\"ipv6\":\"2001:db8::c001\",\"port\":8080},"
    "\"shared\":true}";

static void test_encode_zipkin_form(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(decode(f, SIDECAR, NULL), 0);
    buf_t b = BUF_INIT;
    zipkin_json_encode_span(&f->c.spans[0], &b);
    assert_string_equal(b.data, CANONICAL_0);
    b.len = 0;
    zipkin_json_encode_span(&f->c.spans[1], &b);
    assert_string_equal(b.data, CANONICAL_1);
    b.len = 0;
    zipkin_json_encode_spans(f->c.spans, 2, &b);
    char want[4096];
    snprintf(want, sizeof(want), "[%s,%s]", CANONICAL_0, CANONICAL_1);
    assert_string_equal(b.data, want);
    b.len = 0;
    zipkin_json_encode_spans(NULL, 0, &b);
    assert_string_equal(b.data, "[]");
    buf_dispose(&b);
}

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(decode(f, SIDECAR, NULL), 0);
    buf_t b1 = BUF_INIT, b2 = BUF_INIT;
    zipkin_json_encode_spans(f->c.spans, f->c.n, &b1);

    arena_t a2;
    arena_init(&a2, 0);
    collect_t c2 = {0};
    zipkin_result_t r2;
    assert_int_equal(zipkin_json_decode(b1.data, b1.len, &a2, NULL, collect_sink, &c2, &r2), 0);
    assert_int_equal(c2.n, 2);
    zipkin_json_encode_spans(c2.spans, c2.n, &b2);
    assert_string_equal(b1.data, b2.data);
    arena_dispose(&a2);
    buf_dispose(&b1);
    buf_dispose(&b2);
}

static void test_escapes_and_lowercase(void **state)
{
    fixture_t *f = *state;
    const char *json = "[{\"traceId\":\"a\",\"id\":\"b\",\"name\":\"Say \\\"HI\\\"\\n\\u00e9\","
                       "\"localEndpoint\":{\"serviceName\":\"My\\u0053vc\"},"
                       "\"tags\":{\"k\\u0031\":\"v\\t1\",\"n\":42,\"f\":1.5},"
                       "\"annotations\":[{\"timestamp\":\"5\",\"value\":\"a\\\\b\"}]}]";
    assert_int_equal(decode(f, json, NULL), 0);
    const span_t *s = &f->c.spans[0];
    assert_str(s->name, "say \"hi\"\n\xc3\xa9");
    assert_str(s->local.service_name, "mysvc");
    assert_int_equal(s->n_tags, 3);
    assert_str(s->tags[0].key, "f");
    assert_str(s->tags[0].value, "1.5");
    assert_str(s->tags[1].key, "k1");
    assert_str(s->tags[1].value, "v\t1");
    assert_str(s->tags[2].key, "n");
    assert_str(s->tags[2].value, "42");
    assert_true(s->annotations[0].timestamp_us == 5);
    assert_str(s->annotations[0].value, "a\\b");

    buf_t b = BUF_INIT;
    zipkin_json_encode_span(s, &b);
    assert_string_equal(b.data, "{\"traceId\":\"000000000000000a\",\"id\":\"000000000000000b\","
                                "\"name\":\"say \\\"hi\\\"\\n\xc3\xa9\","
                                "\"localEndpoint\":{\"serviceName\":\"mysvc\"},"
                                "\"annotations\":[{\"timestamp\":5,\"value\":\"a\\\\b\"}],"
                                "\"tags\":{\"f\":\"1.5\",\"k1\":\"v\\t1\",\"n\":\"42\"}}");
    buf_dispose(&b);
}

/* Names lowercase as Zipkin's Java does; ill-formed UTF-8 anywhere is repaired, not refused. */
static void test_unicode(void **state)
{
    fixture_t *f = *state;
    const char *json =
        "[{\"traceId\":\"a\",\"id\":\"b\",\"name\":\"\xc3\x9c"
        "BERWEISUNG \\u03a3\",\"kind\":\"CLIENT\","
        "\"localEndpoint\":{\"serviceName\":\"\xc3\x89mail-sender\"},"
        "\"remoteEndpoint\":{\"serviceName\":\"\xce\xa3\xce\x8a\xce\xa3\xce\xa5\xce\xa6\xce\x9f\xce\xa3\"},"
        "\"tags\":{\"k\xff\":\"caf\xc3\",\"ok\":\"\xc3\x89t\xc3\xa9\",\"sur\":\"\\udc00\"},"
        "\"annotations\":[{\"timestamp\":1,\"value\":\"\xed\xa0\x80!\"}]}]";
    assert_int_equal(decode(f, json, NULL), 0);
    assert_int_equal(f->res.accepted, 1);
    const span_t *s = &f->c.spans[0];
    assert_str(s->name, "\xc3\xbc"
                        "berweisung \xcf\x83");               /* "überweisung σ" */
    assert_str(s->local.service_name, "\xc3\xa9mail-sender"); /* "émail-sender" */
    assert_str(s->remote.service_name, "\xcf\x83\xce\xaf\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x82"); /* "σίσυφος" */
    assert_int_equal(s->n_tags, 3);
    assert_str(s->tags[0].key, "k\xef\xbf\xbd");
    assert_str(s->tags[0].value, "caf\xef\xbf\xbd");
    assert_str(s->tags[1].key, "ok");
    assert_str(s->tags[1].value, "\xc3\x89t\xc3\xa9"); /* tag values keep their case */
    assert_str(s->tags[2].key, "sur");
    assert_str(s->tags[2].value, "\xef\xbf\xbd");         /* yajl writes a lone surrogate escape as ED B0 80 */
    assert_str(s->annotations[0].value, "\xef\xbf\xbd!"); /* an encoded surrogate is one unit, as in Java */

    /* limits apply to the repaired strings: a 3-byte key that becomes 5 is over a limit of 4 */
    zipkin_limits_t lim = {.max_tag_key_len = 4, .max_tag_value_len = 4};
    assert_int_equal(decode(f, "[{\"traceId\":\"a\",\"id\":\"b\",\"tags\":{\"ab\xff\":\"v\"}}]", &lim), 0);
    assert_int_equal(f->res.accepted, 0);
    assert_int_equal(f->res.rejected, 1);
    assert_int_equal(decode(f, "[{\"traceId\":\"a\",\"id\":\"b\",\"tags\":{\"k\":\"ab\xff\"}}]", &lim), 0);
    assert_int_equal(f->res.rejected, 1);
    assert_int_equal(decode(f, "[{\"traceId\":\"a\",\"id\":\"b\",\"tags\":{\"k\":\"abc\"}}]", &lim), 0);
    assert_int_equal(f->res.accepted, 1);
}

static void test_ids(void **state)
{
    fixture_t *f = *state;
    /* 128-bit with a zero high half is a 64-bit id, as Zipkin normalises it */
    assert_int_equal(decode(f, "[{\"traceId\":\"00000000000000000000000000000abc\",\"id\":\"abc\"}]", NULL), 0);
    assert_true(f->c.spans[0].trace_id_high == 0);
    assert_true(f->c.spans[0].trace_id_low == 0xabc);
    assert_true(f->c.spans[0].id == 0xabc);
    /* 20 chars: high from the first 4 */
    assert_int_equal(decode(f, "[{\"traceId\":\"12340000000000000001\",\"id\":\"2\"}]", NULL), 0);
    assert_true(f->c.spans[0].trace_id_high == 0x1234);
    assert_true(f->c.spans[0].trace_id_low == 1);
    /* all-zero parent means root; parent == id is dropped */
    assert_int_equal(decode(f,
                            "[{\"traceId\":\"1\",\"id\":\"2\",\"parentId\":\"0000000000000000\"},"
                            "{\"traceId\":\"1\",\"id\":\"3\",\"parentId\":\"3\"},"
                            "{\"traceId\":\"1\",\"id\":\"4\",\"parentId\":null}]",
                            NULL),
                     0);
    assert_int_equal(f->c.n, 3);
    for (int i = 0; i < 3; i++)
        assert_true(f->c.spans[i].parent_id == 0);
    /* 64-bit round trip formatting */
    buf_t b = BUF_INIT;
    assert_int_equal(decode(f, "[{\"traceId\":\"463ac35c9f6413ad\",\"id\":\"72485a3953bb6124\"}]", NULL), 0);
    zipkin_json_encode_span(&f->c.spans[0], &b);
    assert_string_equal(b.data, "{\"traceId\":\"463ac35c9f6413ad\",\"id\":\"72485a3953bb6124\"}");
    buf_dispose(&b);
}

static void test_bad_ids(void **state)
{
    fixture_t *f = *state;
    expect_fail(f, "[{\"traceId\":\"463AC35C9F6413AD\",\"id\":\"1\"}]", "lower-hex");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"0x12\"}]", "lower-hex");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"12345678901234567\"}]", "id: length");
    expect_fail(f, "[{\"traceId\":\"123456789012345678901234567890123\",\"id\":\"1\"}]", "traceId: length");
    expect_fail(f, "[{\"traceId\":\"\",\"id\":\"1\"}]", "traceId: length");
    expect_fail(f, "[{\"traceId\":\"0000\",\"id\":\"1\"}]", "all zeros");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"0000000000000000\"}]", "all zeros");
    expect_fail(f, "[{\"traceId\":\"1\"}]", "Missing : id");
    expect_fail(f, "[{\"id\":\"1\"}]", "Missing : traceId");
    expect_fail(f, "[{}]", "Missing : traceId id");
    expect_fail(f, "[{\"traceId\":null,\"id\":\"1\"}]", "Expected a string but was NULL");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"parentId\":\"xyz\"}]", "lower-hex");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"parentId\":\"\"}]", "parentId: length");
}

static void test_malformed(void **state)
{
    fixture_t *f = *state;
    expect_fail(f, "{\"traceId\":\"1\",\"id\":\"2\"}", "Expected BEGIN_ARRAY but was BEGIN_OBJECT");
    expect_fail(f, "42", "Expected BEGIN_ARRAY but was NUMBER");
    expect_fail(f, "", "");
    expect_fail(f, "   ", "");
    expect_fail(f, "[1]", "Expected BEGIN_OBJECT but was NUMBER");
    expect_fail(f, "[[]]", "Expected BEGIN_OBJECT but was BEGIN_ARRAY");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\"}", "premature EOF");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",", "");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\"}] x", "trailing garbage");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"timestamp\":\"soon\"}]", "is not a long");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"timestamp\":1.5}]", "is not a long");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"timestamp\":true}]", "Expected a long but was BOOLEAN");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"debug\":\"true\"}]", "Expected a boolean");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"kind\":\"SIDEWAYS\"}]", "No enum constant");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"name\":{}}]", "Expected a string but was BEGIN_OBJECT");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"tags\":{\"a\":true}}]", "Expected a string but was BOOLEAN");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"tags\":{\"a\":null}}]", "No value at a");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"tags\":[]}]", "Expected BEGIN_OBJECT but was BEGIN_ARRAY");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"annotations\":{}}]", "Expected BEGIN_ARRAY");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"annotations\":[{\"value\":\"x\"}]}]", "Incomplete annotation");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"localEndpoint\":\"x\"}]", "Expected BEGIN_OBJECT");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"localEndpoint\":{\"port\":70000}}]", "invalid port");
    expect_fail(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"localEndpoint\":{\"port\":99999999999}}]", "not an int");
}

static void test_depth_limit(void **state)
{
    fixture_t *f = *state;
    /* unknown field nested to depth 16 (list=1, span=2, 14 more) is fine */
    char json[4096];
    size_t n = 0;
    n += (size_t)sprintf(json + n, "[{\"traceId\":\"1\",\"id\":\"2\",\"x\":");
    for (int i = 0; i < 14; i++)
        json[n++] = '[';
    for (int i = 0; i < 14; i++)
        json[n++] = ']';
    n += (size_t)sprintf(json + n, "}]");
    assert_int_equal(decode(f, json, NULL), 0);
    assert_int_equal(f->res.accepted, 1);

    n = 0;
    n += (size_t)sprintf(json + n, "[{\"traceId\":\"1\",\"id\":\"2\",\"x\":");
    for (int i = 0; i < 2000; i++)
        json[n++] = '[';
    json[n] = '\0';
    expect_fail(f, json, "nesting deeper than 16 levels");

    zipkin_limits_t lim = {.max_depth = 3};
    assert_int_equal(decode(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"tags\":{\"a\":\"b\"}}]", &lim), 0);
    assert_int_equal(
        decode(f, "[{\"traceId\":\"1\",\"id\":\"2\",\"annotations\":[{\"timestamp\":1,\"value\":\"v\"}]}]", &lim), -1);
    assert_non_null(strstr(f->res.error, "nesting deeper than 3 levels"));
}

static void test_span_count_limit(void **state)
{
    fixture_t *f = *state;
    zipkin_limits_t lim = {.max_spans = 2};
    const char *two = "[{\"traceId\":\"1\",\"id\":\"1\"},{\"traceId\":\"1\",\"id\":\"2\"}]";
    const char *three =
        "[{\"traceId\":\"1\",\"id\":\"1\"},{\"traceId\":\"1\",\"id\":\"2\"},{\"traceId\":\"1\",\"id\":\"3\"}]";
    assert_int_equal(decode(f, two, &lim), 0);
    assert_int_equal(f->res.accepted, 2);
    assert_int_equal(decode(f, three, &lim), -1);
    assert_non_null(strstr(f->res.error, "more than 2 spans"));
    assert_int_equal(f->res.accepted, 0);
    assert_int_equal(decode(f, "[]", &lim), 0);
    assert_int_equal(f->res.accepted, 0);
}

static void test_per_span_limits(void **state)
{
    fixture_t *f = *state;
    zipkin_limits_t lim = {.max_tags = 2, .max_tag_value_len = 4, .max_tag_key_len = 3, .max_annotations = 1};
    const char *json = "[{\"traceId\":\"1\",\"id\":\"1\",\"tags\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}},"
                       "{\"traceId\":\"1\",\"id\":\"2\",\"tags\":{\"a\":\"12345\"}},"
                       "{\"traceId\":\"1\",\"id\":\"3\",\"tags\":{\"abcd\":\"1\"}},"
                       "{\"traceId\":\"1\",\"id\":\"4\",\"annotations\":[{\"timestamp\":1,\"value\":\"a\"},"
                       "{\"timestamp\":2,\"value\":\"b\"}]},"
                       "{\"traceId\":\"1\",\"id\":\"5\",\"tags\":{\"a\":\"1234\",\"abc\":\"x\"}}]";
    assert_int_equal(decode(f, json, &lim), 0);
    assert_int_equal(f->res.accepted, 1);
    assert_int_equal(f->res.rejected, 4);
    assert_non_null(strstr(f->res.error, "more than 2 tags"));
    assert_true(f->c.spans[0].id == 5);
    assert_int_equal(f->c.spans[0].n_tags, 2);
}

static void test_span_rules(void **state)
{
    fixture_t *f = *state;
    const char *json = "[{\"traceId\":\"1\",\"id\":\"2\",\"kind\":\"CLIENT\",\"shared\":true,\"debug\":false,"
                       "\"timestamp\":-5,\"duration\":\"7\",\"name\":\"\","
                       "\"annotations\":[{\"timestamp\":3,\"value\":\"b\"},{\"timestamp\":1,\"value\":\"z\"},"
                       "{\"timestamp\":3,\"value\":\"a\"},{\"timestamp\":1,\"value\":\"z\"}],"
                       "\"tags\":{\"b\":\"1\",\"a\":\"2\",\"b\":\"3\"},"
                       "\"localEndpoint\":{\"serviceName\":\"\"},"
                       "\"remoteEndpoint\":{\"ipv4\":\"not an ip\",\"port\":-3,\"serviceName\":null}}]";
    assert_int_equal(decode(f, json, NULL), 0);
    const span_t *s = &f->c.spans[0];
    assert_false(s->shared); /* cleared on CLIENT */
    assert_false(s->debug);
    assert_true(s->timestamp_us == 0);
    assert_true(s->duration_us == 7);
    assert_int_equal(s->name.len, 0);
    assert_int_equal(s->n_annotations, 3);
    assert_true(s->annotations[0].timestamp_us == 1);
    assert_str(s->annotations[0].value, "z");
    assert_str(s->annotations[1].value, "a");
    assert_str(s->annotations[2].value, "b");
    assert_int_equal(s->n_tags, 2);
    assert_str(s->tags[0].key, "a");
    assert_str(s->tags[1].key, "b");
    assert_str(s->tags[1].value, "3"); /* last duplicate wins */
    assert_false(s->has_local);        /* empty endpoints are absent */
    assert_false(s->has_remote);
    buf_t b = BUF_INIT;
    zipkin_json_encode_span(s, &b);
    assert_string_equal(b.data, "{\"traceId\":\"0000000000000001\",\"id\":\"0000000000000002\",\"kind\":\"CLIENT\","
                                "\"duration\":7,\"annotations\":[{\"timestamp\":1,\"value\":\"z\"},"
                                "{\"timestamp\":3,\"value\":\"a\"},{\"timestamp\":3,\"value\":\"b\"}],"
                                "\"tags\":{\"a\":\"2\",\"b\":\"3\"}}");
    buf_dispose(&b);
}

static void test_addresses(void **state)
{
    fixture_t *f = *state;
    const char *json =
        "[{\"traceId\":\"1\",\"id\":\"1\",\"localEndpoint\":{\"ipv6\":\"::ffff:192.168.1.2\"}},"
        "{\"traceId\":\"1\",\"id\":\"2\",\"localEndpoint\":{\"ipv4\":\"::1\"}},"
        "{\"traceId\":\"1\",\"id\":\"3\",\"localEndpoint\":{\"ipv6\":\"2001:0:0:4:0:0:0:8\"}},"
        "{\"traceId\":\"1\",\"id\":\"4\",\"localEndpoint\":{\"ipv4\":\"1.2.3.4\",\"ipv6\":\"fe80::1:2\"}},"
        "{\"traceId\":\"1\",\"id\":\"5\",\"localEndpoint\":{\"ipv4\":\"256.1.1.1\",\"serviceName\":\"s\"}}]";
    assert_int_equal(decode(f, json, NULL), 0);
    assert_int_equal(f->c.n, 5);
    const char *want[] = {
        "{\"ipv4\":\"192.168.1.2\"}",   "{\"ipv6\":\"::1\"}",
        "{\"ipv6\":\"2001:0:0:4::8\"}", "{\"ipv4\":\"1.2.3.4\",\"ipv6\":\"fe80::1:2\"}",
        "{\"serviceName\":\"s\"}",
    };
    for (int i = 0; i < 5; i++) {
        buf_t b = BUF_INIT;
        zipkin_json_encode_span(&f->c.spans[i], &b);
        const char *ep = strstr(b.data, "\"localEndpoint\":");
        assert_non_null(ep);
        ep += strlen("\"localEndpoint\":");
        assert_memory_equal(ep, want[i], strlen(want[i]));
        buf_dispose(&b);
    }
}

static void test_ipv6_format(void **state)
{
    (void)state;
    char out[40];
    uint8_t all0[16] = {0};
    assert_int_equal(zipkin_span_format_ipv6(all0, out), 2);
    assert_string_equal(out, "::");
    uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    zipkin_span_format_ipv6(a, out);
    assert_string_equal(out, "2001:db8::1");
    uint8_t t[16] = {0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    zipkin_span_format_ipv6(t, out);
    assert_string_equal(out, "2001::");
    uint8_t full[16] = {0xfe, 0x80, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7};
    zipkin_span_format_ipv6(full, out);
    assert_string_equal(out, "fe80:1:2:3:4:5:6:7");
}

static void test_ip_text(void **state)
{
    (void)state;
    const char *ok4[] = {"0.0.0.0", "255.255.255.255", "10.0.1.7", "::ffff:1.2.3.4", "::1.2.3.4", "::0000:1.2.3.4"};
    const char *bad[] = {"01.2.3.4",           "1.2.3",        "1.2.3.4.5",  "256.0.0.1",      "1.2.3.4 ",  "", "host",
                         "1:2:3::4:5:6:7:8:9", "::ffff:1.2.3", "1::2.3.4.5", "::fffe:1.2.3.4", "1.2.3.4:80"};
    for (size_t i = 0; i < sizeof(ok4) / sizeof(ok4[0]); i++) {
        span_endpoint_t ep = {0};
        assert_int_equal(zipkin_span_ip_text(&ep, ok4[i], strlen(ok4[i])), 0);
        assert_true(ep.has_ipv4);
        assert_false(ep.has_ipv6);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        span_endpoint_t ep = {.ipv4 = {9, 9, 9, 9}, .has_ipv4 = 1};
        if (zipkin_span_ip_text(&ep, bad[i], strlen(bad[i])) != -1)
            fail_msg("%s parsed", bad[i]);
        assert_memory_equal(ep.ipv4, ((uint8_t[]){9, 9, 9, 9}), 4);
        assert_false(ep.has_ipv6);
    }
    span_endpoint_t ep = {0};
    assert_int_equal(zipkin_span_ip_text(&ep, "::1", 3), 0);
    assert_true(ep.has_ipv6);
    assert_int_equal(ep.ipv6[15], 1);
    /* proto byte forms: 16 bytes of IPv4-compatible become IPv4, ::1 stays IPv6 */
    span_endpoint_t e2 = {0};
    uint8_t compat[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1};
    assert_int_equal(zipkin_span_ip_bytes(&e2, compat, 16), 0);
    assert_true(e2.has_ipv4);
    assert_false(e2.has_ipv6);
    assert_int_equal(zipkin_span_ip_bytes(&e2, compat, 5), -1);
}

static void test_arena_limit(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 64);
    collect_t c = {0};
    zipkin_result_t r;
    const char *json = "[{\"traceId\":\"1\",\"id\":\"1\",\"tags\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\","
                       "\"e\":\"5\",\"f\":\"6\",\"g\":\"7\",\"h\":\"8\",\"i\":\"9\"}}]";
    assert_int_equal(zipkin_json_decode(json, strlen(json), &a, NULL, collect_sink, &c, &r), -1);
    assert_non_null(strstr(r.error, "too large"));
    arena_dispose(&a);
}

static void test_sink_stop(void **state)
{
    fixture_t *f = *state;
    f->c.stop_after = 1;
    assert_int_equal(decode(f, "[{\"traceId\":\"1\",\"id\":\"1\"},{\"traceId\":\"1\",\"id\":\"2\"}]", NULL), -1);
    assert_non_null(strstr(f->res.error, "refused by the span sink"));
    f->c.stop_after = 0;
}

static void test_encode_lists(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    str_t names[] = {STR_LIT("frontend"), STR_LIT("we\"ird")};
    zipkin_json_encode_strings(names, 2, &b);
    assert_string_equal(b.data, "[\"frontend\",\"we\\\"ird\"]");
    b.len = 0;
    zipkin_json_encode_strings(NULL, 0, &b);
    assert_string_equal(b.data, "[]");

    b.len = 0;
    zipkin_dep_link_t links[] = {
        {STR_LIT("frontend"), STR_LIT("checkout"), 10, 0},
        {STR_LIT("checkout"), STR_LIT("payments"), 7, 2},
    };
    zipkin_json_encode_dependencies(links, 2, &b);
    assert_string_equal(b.data, "[{\"parent\":\"frontend\",\"child\":\"checkout\",\"callCount\":10},"
                                "{\"parent\":\"checkout\",\"child\":\"payments\",\"callCount\":7,\"errorCount\":2}]");

    b.len = 0;
    span_t s1 = {.trace_id_low = 1, .id = 1};
    span_t s2[2] = {{.trace_id_low = 2, .id = 2}, {.trace_id_low = 2, .id = 3, .parent_id = 2}};
    const span_t *traces[] = {&s1, s2};
    size_t counts[] = {1, 2};
    zipkin_json_encode_traces(traces, counts, 2, &b);
    assert_string_equal(b.data, "[[{\"traceId\":\"0000000000000001\",\"id\":\"0000000000000001\"}],"
                                "[{\"traceId\":\"0000000000000002\",\"id\":\"0000000000000002\"},"
                                "{\"traceId\":\"0000000000000002\",\"parentId\":\"0000000000000002\","
                                "\"id\":\"0000000000000003\"}]]");
    b.len = 0;
    zipkin_json_encode_traces(NULL, NULL, 0, &b);
    assert_string_equal(b.data, "[]");
    buf_dispose(&b);
}

/* A list of traces: the sink sees NULL where each trace opens; anything else at the outer level fails. */
typedef struct bounds {
    char marks[32]; /* 'T' per trace opened, 's' per span */
    size_t n;
} bounds_t;

static int bounds_sink(void *ctx, const span_t *s)
{
    bounds_t *b = ctx;
    if (b->n + 1 < sizeof(b->marks))
        b->marks[b->n++] = s == NULL ? 'T' : 's';
    return 0;
}

static void test_decode_traces(void **state)
{
    fixture_t *f = *state;
    static const char *ok = "[[{\"traceId\":\"a\",\"id\":\"1\"},{\"traceId\":\"a\",\"id\":\"2\"}],[],"
                            "[{\"traceId\":\"b\",\"id\":\"1\",\"name\":\"x\"}]]";
    bounds_t b = {0};
    assert_int_equal(zipkin_json_decode_traces(ok, strlen(ok), &f->arena, NULL, bounds_sink, &b, &f->res), 0);
    assert_string_equal(b.marks, "TssTTs");
    assert_int_equal(f->res.accepted, 3);
    b = (bounds_t){0};
    assert_int_equal(zipkin_json_decode_traces("[]", 2, &f->arena, NULL, bounds_sink, &b, &f->res), 0);
    assert_int_equal(b.n, 0);
    static const char *bad[] = {"[{\"traceId\":\"a\",\"id\":\"1\"}]", "[[[]]]", "[1]", "{}", "[[]", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = (bounds_t){0};
        if (zipkin_json_decode_traces(bad[i], strlen(bad[i]), &f->arena, NULL, bounds_sink, &b, &f->res) != -1)
            fail_msg("accepted %s as a list of traces", bad[i]);
    }
    /* a plain span list is still only that */
    assert_int_equal(decode(f, ok, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decode_sidecar_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_zipkin_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes_and_lowercase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unicode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_span_count_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_span_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_span_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addresses, setup, teardown),
        cmocka_unit_test(test_ipv6_format),
        cmocka_unit_test(test_ip_text),
        cmocka_unit_test(test_arena_limit),
        cmocka_unit_test_setup_teardown(test_sink_stop, setup, teardown),
        cmocka_unit_test(test_encode_lists),
        cmocka_unit_test_setup_teardown(test_decode_traces, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
