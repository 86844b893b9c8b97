/*
 * Tests for exporters/zipkin_proto: decoding ListOfSpans packed by
 * protobuf-c, our encoder against protobuf-c's packer, round trips through
 * JSON, the error paths and content sniffing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "zipkin/zipkin.pb-c.h"
#include "zipkin_json.h"
#include "zipkin_proto.h"

#define MAX_COLLECT 64

typedef struct collect {
    span_t spans[MAX_COLLECT];
    size_t n;
} collect_t;

static int collect_sink(void *ctx, const span_t *s)
{
    collect_t *c = ctx;
    if (c->n < MAX_COLLECT)
        c->spans[c->n++] = *s;
    return 0;
}

static int str_eq(str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

#define assert_str(s, lit) assert_true(str_eq((s), (lit)))

static uint8_t TRACE16[16] = {0x4e, 0x44, 0x18, 0x24, 0xec, 0x2b, 0x6a, 0x44,
                              0xff, 0xdc, 0x9b, 0xb9, 0xa6, 0x45, 0x3d, 0xf3};
static uint8_t PARENT[8] = {0xff, 0xdc, 0x9b, 0xb9, 0xa6, 0x45, 0x3d, 0xf3};
static uint8_t ID[8] = {0x5b, 0x41, 0x85, 0x66, 0x6d, 0x50, 0xf6, 0x8b};
static uint8_t IP4[4] = {10, 0, 1, 7};
static uint8_t IP6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x01};

/* Pack one realistic span with protobuf-c's own encoder. */
static uint8_t *pack_sample(size_t *len, const char *name, const char *service)
{
    Zipkin__Proto3__Endpoint local = ZIPKIN__PROTO3__ENDPOINT__INIT;
    local.service_name = (char *)service;
    local.ipv4 = (ProtobufCBinaryData){4, IP4};
    Zipkin__Proto3__Endpoint remote = ZIPKIN__PROTO3__ENDPOINT__INIT;
    remote.service_name = "checkout";
    remote.ipv6 = (ProtobufCBinaryData){16, IP6};
    remote.port = 8080;
    Zipkin__Proto3__Annotation ann = ZIPKIN__PROTO3__ANNOTATION__INIT;
    ann.timestamp = 1700000000123500ull;
    ann.value = "wr";
    Zipkin__Proto3__Annotation *anns[] = {&ann};
    Zipkin__Proto3__Span__TagsEntry t1 = ZIPKIN__PROTO3__SPAN__TAGS_ENTRY__INIT;
    t1.key = "http.method";
    t1.value = "GET";
    Zipkin__Proto3__Span__TagsEntry t2 = ZIPKIN__PROTO3__SPAN__TAGS_ENTRY__INIT;
    t2.key = "http.status_code";
    t2.value = "200";
    Zipkin__Proto3__Span__TagsEntry *tags[] = {&t1, &t2};

    Zipkin__Proto3__Span sp = ZIPKIN__PROTO3__SPAN__INIT;
    sp.trace_id = (ProtobufCBinaryData){16, TRACE16};
    sp.parent_id = (ProtobufCBinaryData){8, PARENT};
    sp.id = (ProtobufCBinaryData){8, ID};
    sp.kind = ZIPKIN__PROTO3__SPAN__KIND__CLIENT;
    sp.name = (char *)name;
    sp.timestamp = 1700000000123456ull;
    sp.duration = 2345;
    sp.local_endpoint = &local;
    sp.remote_endpoint = &remote;
    sp.n_annotations = 1;
    sp.annotations = anns;
    sp.n_tags = 2;
    sp.tags = tags;
    sp.debug = 1;
    Zipkin__Proto3__Span *spans[] = {&sp};
    Zipkin__Proto3__ListOfSpans list = ZIPKIN__PROTO3__LIST_OF_SPANS__INIT;
    list.n_spans = 1;
    list.spans = spans;
    *len = zipkin__proto3__list_of_spans__get_packed_size(&list);
    uint8_t *out = malloc(*len);
    zipkin__proto3__list_of_spans__pack(&list, out);
    return out;
}

static void test_decode_fields(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = pack_sample(&len, "GET /Items", "FrontEnd");
    arena_t a;
    arena_init(&a, 0);
    collect_t c = {0};
    zipkin_result_t r;
    assert_int_equal(zipkin_proto_decode(data, len, &a, NULL, collect_sink, &c, &r), 0);
    assert_int_equal(r.accepted, 1);
    assert_int_equal(c.n, 1);
    const span_t *s = &c.spans[0];
    assert_true(s->trace_id_high == 0x4e441824ec2b6a44ull);
    assert_true(s->trace_id_low == 0xffdc9bb9a6453df3ull);
    assert_true(s->parent_id == 0xffdc9bb9a6453df3ull);
    assert_true(s->id == 0x5b4185666d50f68bull);
    assert_int_equal(s->kind, SPAN_KIND_CLIENT);
    assert_str(s->name, "get /items");
    assert_true(s->timestamp_us == 1700000000123456ull);
    assert_true(s->duration_us == 2345);
    assert_true(s->has_local);
    assert_str(s->local.service_name, "frontend");
    assert_true(s->local.has_ipv4);
    assert_memory_equal(s->local.ipv4, IP4, 4);
    assert_true(s->has_remote);
    assert_str(s->remote.service_name, "checkout");
    assert_true(s->remote.has_ipv6);
    assert_memory_equal(s->remote.ipv6, IP6, 16);
    assert_int_equal(s->remote.port, 8080);
    assert_int_equal(s->n_annotations, 1);
    assert_true(s->annotations[0].timestamp_us == 1700000000123500ull);
    assert_str(s->annotations[0].value, "wr");
    assert_int_equal(s->n_tags, 2);
    assert_str(s->tags[0].key, "http.method");
    assert_str(s->tags[0].value, "GET");
    assert_str(s->tags[1].key, "http.status_code");
    assert_str(s->tags[1].value, "200");
    assert_true(s->debug);
    assert_false(s->shared);

    /* our encoder writes exactly what protobuf-c packs from the normalised span */
    size_t len2;
    uint8_t *lower = pack_sample(&len2, "get /items", "frontend");
    buf_t b = BUF_INIT;
    zipkin_proto_encode_spans(s, 1, &b);
    assert_int_equal(b.len, len2);
    assert_memory_equal(b.data, lower, len2);
    buf_dispose(&b);
    free(lower);
    free(data);
    arena_dispose(&a);
}

static const char *JSON_SPANS =
    "[{\"traceId\":\"4e441824ec2b6a44ffdc9bb9a6453df3\",\"parentId\":\"ffdc9bb9a6453df3\","
    "\"id\":\"5b4185666d50f68b\",\"kind\":\"SERVER\",\"name\":\"post /pay\",\"timestamp\":1700000000123456,"
    "\"duration\":2345,\"localEndpoint\":{\"serviceName\":\"payments\",\"ipv4\":\"10.0.1.7\",\"port\":9000},"
    "\"remoteEndpoint\":{\"ipv6\":\"2001:db8::c001\"},"
    "\"annotations\":[{\"timestamp\":1700000000123500,\"value\":\"wr\"},{\"timestamp\":1700000000123600,\"value\":"
    "\"ws\"}],"
    "\"tags\":{\"empty\":\"\",\"http.method\":\"POST\"},\"shared\":true},"
    "{\"traceId\":\"00000000000000ab\",\"id\":\"00000000000000cd\",\"kind\":\"PRODUCER\"},"
    "{\"traceId\":\"0000000000000001\",\"id\":\"0000000000000002\",\"debug\":true}]";

/* Unicode names lowercase as Zipkin's Java does; ill-formed UTF-8 is repaired before the size limits apply. */
static void test_unicode(void **state)
{
    (void)state;
    size_t len;
    /* ÜBERWEISUNG ΣΊΣΥΦΟΣ from Émail-Sender */
    uint8_t *data = pack_sample(&len,
                                "\xc3\x9c"
                                "BERWEISUNG \xce\xa3\xce\x8a\xce\xa3\xce\xa5\xce\xa6\xce\x9f\xce\xa3",
                                "\xc3\x89mail-Sender\xff");
    arena_t a;
    arena_init(&a, 0);
    collect_t c = {0};
    zipkin_result_t r;
    assert_int_equal(zipkin_proto_decode(data, len, &a, NULL, collect_sink, &c, &r), 0);
    assert_int_equal(r.accepted, 1);
    assert_str(c.spans[0].name, "\xc3\xbc"
                                "berweisung \xcf\x83\xce\xaf\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x82");
    assert_str(c.spans[0].local.service_name, "\xc3\xa9mail-sender\xef\xbf\xbd");
    free(data);

    /* a tag value, annotation value and key with ill-formed bytes */
    Zipkin__Proto3__Annotation ann = ZIPKIN__PROTO3__ANNOTATION__INIT;
    ann.timestamp = 5;
    ann.value = "\xed\xa0\x80!";
    Zipkin__Proto3__Annotation *anns[] = {&ann};
    Zipkin__Proto3__Span__TagsEntry t = ZIPKIN__PROTO3__SPAN__TAGS_ENTRY__INIT;
    t.key = "k\xc0\xaf";
    t.value = "caf\xc3";
    Zipkin__Proto3__Span__TagsEntry *tags[] = {&t};
    Zipkin__Proto3__Span sp = ZIPKIN__PROTO3__SPAN__INIT;
    sp.trace_id = (ProtobufCBinaryData){16, TRACE16};
    sp.id = (ProtobufCBinaryData){8, ID};
    sp.n_annotations = 1;
    sp.annotations = anns;
    sp.n_tags = 1;
    sp.tags = tags;
    Zipkin__Proto3__Span *spans[] = {&sp};
    Zipkin__Proto3__ListOfSpans list = ZIPKIN__PROTO3__LIST_OF_SPANS__INIT;
    list.n_spans = 1;
    list.spans = spans;
    uint8_t buf[256];
    len = zipkin__proto3__list_of_spans__pack(&list, buf);
    c.n = 0;
    assert_int_equal(zipkin_proto_decode(buf, len, &a, NULL, collect_sink, &c, &r), 0);
    assert_int_equal(c.n, 1);
    assert_str(c.spans[0].tags[0].key, "k\xef\xbf\xbd\xef\xbf\xbd"); /* an overlong pair is two units */
    assert_str(c.spans[0].tags[0].value, "caf\xef\xbf\xbd");
    assert_str(c.spans[0].annotations[0].value, "\xef\xbf\xbd!"); /* an encoded surrogate is one */

    /* the key grows from 3 to 7 bytes: over a limit of 5, the span is dropped */
    zipkin_limits_t lim = {.max_tag_key_len = 5};
    c.n = 0;
    assert_int_equal(zipkin_proto_decode(buf, len, &a, &lim, collect_sink, &c, &r), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(r.rejected, 1);
    arena_dispose(&a);
}

static void test_round_trip_via_json(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    collect_t c1 = {0}, c2 = {0};
    zipkin_result_t r;
    assert_int_equal(zipkin_json_decode(JSON_SPANS, strlen(JSON_SPANS), &a, NULL, collect_sink, &c1, &r), 0);
    assert_int_equal(c1.n, 3);

    buf_t pb = BUF_INIT, js = BUF_INIT;
    zipkin_proto_encode_spans(c1.spans, c1.n, &pb);
    assert_true(zipkin_sniff_proto((const uint8_t *)pb.data, pb.len));
    assert_int_equal(zipkin_proto_decode((const uint8_t *)pb.data, pb.len, &a, NULL, collect_sink, &c2, &r), 0);
    assert_int_equal(r.accepted, 3);
    assert_int_equal(c2.n, 3);
    zipkin_json_encode_spans(c2.spans, c2.n, &js);
    assert_string_equal(js.data, JSON_SPANS);

    /* protobuf-c reads our encoding too */
    Zipkin__Proto3__ListOfSpans *l = zipkin__proto3__list_of_spans__unpack(NULL, pb.len, (const uint8_t *)pb.data);
    assert_non_null(l);
    assert_int_equal(l->n_spans, 3);
    assert_int_equal(l->spans[0]->trace_id.len, 16);
    assert_int_equal(l->spans[1]->trace_id.len, 8);
    assert_int_equal(l->spans[0]->n_tags, 2);
    assert_int_equal(l->spans[0]->kind, ZIPKIN__PROTO3__SPAN__KIND__SERVER);
    assert_true(l->spans[0]->shared);
    zipkin__proto3__list_of_spans__free_unpacked(l, NULL);

    buf_dispose(&pb);
    buf_dispose(&js);
    arena_dispose(&a);
}

/* Build a one-span list from raw span bytes. */
static size_t wrap_span(const uint8_t *span, size_t n, uint8_t *out)
{
    out[0] = 0x0a;
    out[1] = (uint8_t)n;
    memcpy(out + 2, span, n);
    return n + 2;
}

static int decode_raw(const uint8_t *span, size_t n, zipkin_result_t *r, collect_t *c)
{
    uint8_t buf[256];
    size_t len = wrap_span(span, n, buf);
    arena_t a;
    arena_init(&a, 0);
    c->n = 0;
    int rc = zipkin_proto_decode(buf, len, &a, NULL, collect_sink, c, r);
    arena_dispose(&a);
    return rc;
}

static void test_ids(void **state)
{
    (void)state;
    zipkin_result_t r;
    collect_t c = {0};
    /* 8-byte trace, 4-byte id (left-padded as Zipkin does), zero parent = root */
    const uint8_t ok[] = {0x0a, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0x12, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, 4, 0, 0, 0, 9};
    assert_int_equal(decode_raw(ok, sizeof(ok), &r, &c), 0);
    assert_int_equal(c.n, 1);
    assert_true(c.spans[0].trace_id_low == 1);
    assert_true(c.spans[0].id == 9);
    assert_true(c.spans[0].parent_id == 0);

    const uint8_t no_id[] = {0x0a, 8, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(decode_raw(no_id, sizeof(no_id), &r, &c), -1);
    assert_non_null(strstr(r.error, "Missing : id"));

    const uint8_t zero_id[] = {0x0a, 1, 1, 0x1a, 8, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_raw(zero_id, sizeof(zero_id), &r, &c), -1);
    assert_non_null(strstr(r.error, "id is all zeros"));

    const uint8_t long_id[] = {0x0a, 1, 1, 0x1a, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_raw(long_id, sizeof(long_id), &r, &c), -1);
    assert_non_null(strstr(r.error, "id longer than 8 bytes"));

    uint8_t long_trace[2 + 17 + 3] = {0x0a, 17};
    long_trace[2] = 1;
    memcpy(long_trace + 19, (uint8_t[]){0x1a, 1, 5}, 3);
    assert_int_equal(decode_raw(long_trace, sizeof(long_trace), &r, &c), -1);
    assert_non_null(strstr(r.error, "traceId longer than 16 bytes"));
    assert_true(strncmp(r.error, "Malformed reading List<Span> from proto3", 40) == 0);

    /* unknown kind ignored, incomplete annotation and keyless tag dropped, empty endpoint absent */
    const uint8_t odd[] = {0x0a, 1,    1,    0x1a, 1,   2,   0x20,
                           9,    0x52, 3,    0x12, 1,   'x', /* annotation without timestamp */
                           0x5a, 3,    0x12, 1,    'v',      /* tag without key */
                           0x42, 0,                          /* empty local endpoint */
                           0x4a, 4,    0x12, 2,    1,   2};  /* remote with a 2-byte ip: ignored */
    assert_int_equal(decode_raw(odd, sizeof(odd), &r, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.spans[0].kind, SPAN_KIND_UNSPECIFIED);
    assert_int_equal(c.spans[0].n_annotations, 0);
    assert_int_equal(c.spans[0].n_tags, 0);
    assert_false(c.spans[0].has_local);
    assert_false(c.spans[0].has_remote);
}

static void test_malformed(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    collect_t c = {0};
    zipkin_result_t r;
    size_t len;
    uint8_t *data = pack_sample(&len, "n", "s");
    for (size_t cut = 1; cut < len; cut++) {
        assert_int_equal(zipkin_proto_decode(data, cut, &a, NULL, collect_sink, &c, &r), -1);
        assert_true(strncmp(r.error, "Malformed reading List<Span> from proto3", 40) == 0);
        arena_reset(&a);
    }
    /* empty body: nothing to store */
    assert_int_equal(zipkin_proto_decode(data, 0, &a, NULL, collect_sink, &c, &r), 0);
    assert_int_equal(r.accepted, 0);
    /* a group wire type at the top level */
    const uint8_t grp[] = {0x0b, 0x0c};
    assert_int_equal(zipkin_proto_decode(grp, sizeof(grp), &a, NULL, collect_sink, &c, &r), -1);

    /* too many spans: refused by the scan, before unpacking */
    buf_t many = BUF_INIT;
    for (int i = 0; i < 5; i++)
        buf_append(&many, data, len);
    zipkin_limits_t lim = {.max_spans = 4};
    assert_int_equal(zipkin_proto_decode((const uint8_t *)many.data, many.len, &a, &lim, collect_sink, &c, &r), -1);
    assert_non_null(strstr(r.error, "more than 4 spans"));
    lim.max_spans = 5;
    c.n = 0;
    assert_int_equal(zipkin_proto_decode((const uint8_t *)many.data, many.len, &a, &lim, collect_sink, &c, &r), 0);
    assert_int_equal(r.accepted, 5);

    /* per-span limit: the span is dropped, not the request */
    lim.max_tags = 1;
    assert_int_equal(zipkin_proto_decode((const uint8_t *)many.data, many.len, &a, &lim, collect_sink, &c, &r), 0);
    assert_int_equal(r.accepted, 0);
    assert_int_equal(r.rejected, 5);
    assert_non_null(strstr(r.error, "more than 1 tags"));

    /* arena limit */
    arena_t small;
    arena_init(&small, 128);
    assert_int_equal(zipkin_proto_decode((const uint8_t *)many.data, many.len, &small, NULL, collect_sink, &c, &r), -1);
    assert_non_null(strstr(r.error, "too large"));
    arena_dispose(&small);

    buf_dispose(&many);
    free(data);
    arena_dispose(&a);
}

static void test_sniff(void **state)
{
    (void)state;
    assert_true(zipkin_sniff_proto((const uint8_t *)"\x0a\x10", 2));
    assert_false(zipkin_sniff_proto((const uint8_t *)"\x0a\x00", 2));
    assert_false(zipkin_sniff_proto((const uint8_t *)"[{}]", 4));
    assert_false(zipkin_sniff_proto((const uint8_t *)"\x0a", 1));
    assert_false(zipkin_sniff_proto((const uint8_t *)"", 0));
    assert_false(zipkin_sniff_proto((const uint8_t *)"\x0c\x00", 2)); /* thrift list */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_fields), cmocka_unit_test(test_round_trip_via_json),
        cmocka_unit_test(test_ids),           cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_sniff),         cmocka_unit_test(test_unicode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
