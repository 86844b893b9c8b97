/* Unit tests for collector/kafka_enc: trace grouping, the partitioner, batch messages, log and metric encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "kafka_enc.h"
#include "otlp.h"
#include "zipkin_json.h"
#include "zipkin_proto.h"

/* Kafka's own test vectors for Utils.murmur2 (the Java client's default partitioner), as int32. */
static void test_partition_matches_kafka(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        int32_t h;
    } v[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint32_t want = (uint32_t)v[i].h & 0x7fffffffu;
        assert_int_equal(kafka_partition_of(v[i].key, strlen(v[i].key), 0x80000000u), want);
        assert_int_equal(kafka_partition_of(v[i].key, strlen(v[i].key), 7), want % 7);
    }
}

static span_t mk(uint64_t hi, uint64_t lo, uint64_t id, const char *svc)
{
    span_t s;
    memset(&s, 0, sizeof(s));
    s.trace_id_high = hi;
    s.trace_id_low = lo;
    s.id = id;
    s.name = (str_t){"op", 2};
    s.timestamp_us = 1700000000000000ull + id;
    s.duration_us = 5;
    s.has_local = 1;
    s.local.service_name = (str_t){svc, (uint32_t)strlen(svc)};
    return s;
}

/* Spans group by trace id, traces in order of first appearance, arrival order kept inside a trace. */
static void test_group_traces(void **state)
{
    (void)state;
    span_t in[5] = {mk(0, 9, 1, "a"), mk(1, 2, 2, "b"), mk(0, 9, 3, "a"), mk(0, 3, 4, "c"), mk(1, 2, 5, "b")};
    arena_t a;
    arena_init(&a, 0);
    span_t *out;
    size_t *starts;
    size_t n = kafka_group_traces(in, 5, &a, &out, &starts);
    assert_int_equal(n, 3);
    uint64_t want_ids[5] = {1, 3, 2, 5, 4}; /* traces (0,9), (1,2), (0,3) */
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i].id, want_ids[i]);
    assert_int_equal(starts[0], 0);
    assert_int_equal(starts[1], 2);
    assert_int_equal(starts[2], 4);
    assert_int_equal(starts[3], 5);
    buf_t key = BUF_INIT;
    kafka_enc_trace_key(&out[2], &key);
    assert_string_equal(key.data, "00000000000000010000000000000002");
    buf_dispose(&key);
    arena_dispose(&a);
}

static size_t count_decoded(const uint8_t *data, size_t len, int proto)
{
    arena_t a;
    arena_init(&a, 0);
    span_vec_t v = {0};
    zipkin_result_t res;
    memset(&res, 0, sizeof(res));
    zipkin_limits_t lim = {.max_spans = 1000, .max_tags = 64, .max_tag_value_len = 1024, .max_depth = 16};
    int rc = proto ? zipkin_proto_decode(data, len, &a, &lim, span_vec_sink, &v, &res)
                   : zipkin_json_decode((const char *)data, len, &a, &lim, span_vec_sink, &v, &res);
    size_t n = rc == 0 ? v.n : (size_t)-1;
    span_vec_dispose(&v);
    arena_dispose(&a);
    return n;
}

/* A batch message of several traces is one valid message of its encoding holding them all. */
static void test_batch_messages(void **state)
{
    (void)state;
    span_t t1[2] = {mk(0, 7, 1, "a"), mk(0, 7, 2, "a")};
    span_t t2[1] = {mk(0, 8, 3, "b")};
    buf_t out = BUF_INIT, tmp = BUF_INIT;
    kafka_enc_batch_add(KAFKA_SPANS_JSON, t1, 2, &tmp, &out);
    kafka_enc_batch_add(KAFKA_SPANS_JSON, t2, 1, &tmp, &out);
    kafka_enc_batch_end(KAFKA_SPANS_JSON, &out);
    assert_int_equal(count_decoded((const uint8_t *)out.data, out.len, 0), 3);
    assert_int_equal(out.data[0], '[');
    assert_int_equal(out.data[out.len - 1], ']');
    out.len = 0;
    kafka_enc_batch_add(KAFKA_SPANS_PROTO3, t1, 2, &tmp, &out);
    kafka_enc_batch_add(KAFKA_SPANS_PROTO3, t2, 1, &tmp, &out);
    kafka_enc_batch_end(KAFKA_SPANS_PROTO3, &out);
    assert_int_equal(count_decoded((const uint8_t *)out.data, out.len, 1), 3);
    buf_dispose(&out);
    buf_dispose(&tmp);
}

/* An access log record as JSON: typed access-log fields, the body only for a plain record. */
static void test_log_json(void **state)
{
    (void)state;
    span_tag_t attrs[] = {{{"method", 6}, {"GET", 3}},
                          {{"response_code", 13}, {"503", 3}},
                          {{"duration", 8}, {"012", 3}}, /* not a plain number: stays text */
                          {{"path", 4}, {"/a\"b", 4}}};
    otlp_log_t l;
    memset(&l, 0, sizeof(l));
    l.time_unix_nano = 1764968400123456789ull;
    l.trace_id_high = 0;
    l.trace_id_low = 0xabc;
    l.span_id = 0x12;
    l.service_name = (str_t){"svc", 3};
    l.body = (str_t){"line", 4};
    l.attributes = attrs;
    l.n_attributes = 4;
    buf_t out = BUF_INIT;
    kafka_enc_log_json(&l, &out);
    assert_string_equal(
        out.data, "{\"start_time\":\"2025-12-05T21:00:00.123Z\",\"trace_id\":\"00000000000000000000000000000abc\","
                  "\"span_id\":\"0000000000000012\",\"service\":\"svc\",\"method\":\"GET\","
                  "\"response_code\":503,\"duration\":\"012\",\"path\":\"/a\\\"b\"}");
    out.len = 0;
    l.n_attributes = 0;
    l.trace_id_low = 0;
    l.span_id = 0;
    l.time_unix_nano = 0;
    kafka_enc_log_json(&l, &out);
    assert_string_equal(out.data, "{\"service\":\"svc\",\"message\":\"line\"}");
    buf_dispose(&out);
}

typedef struct got_points {
    metric_point_t p[4];
    metric_label_t labels[4][4];
    metric_exemplar_t ex[4];
    double bounds[4][4];
    uint64_t counts[4][5];
    char text[512];
    size_t text_len;
    int n;
} got_points_t;

static str_t keep(got_points_t *g, str_t s)
{
    if (s.len > 0)
        memcpy(g->text + g->text_len, s.ptr, s.len);
    str_t r = {g->text + g->text_len, s.len};
    g->text_len += s.len;
    return r;
}

static int collect_point(void *ctx, const metric_point_t *p)
{
    got_points_t *g = ctx;
    int i = g->n++;
    g->p[i] = *p;
    g->p[i].name = keep(g, p->name);
    g->p[i].unit = keep(g, p->unit);
    for (uint32_t l = 0; l < p->n_labels && l < 4; l++) {
        g->labels[i][l].name = keep(g, p->labels[l].name);
        g->labels[i][l].value = keep(g, p->labels[l].value);
    }
    g->p[i].labels = g->labels[i];
    if (p->n_exemplars > 0)
        g->ex[i] = p->exemplars[0];
    if (p->n_bounds > 0)
        memcpy(g->bounds[i], p->bounds, p->n_bounds * sizeof(double));
    if (p->bucket_counts != NULL)
        memcpy(g->counts[i], p->bucket_counts, (p->n_bounds + 1) * sizeof(uint64_t));
    return 0;
}

/* role ingest's metric messages: the collector's own OTLP decoder (what role store reads them with) gives
 * back every field; two requests concatenated are one request of both points */
static void test_metric_otlp_round_trip(void **state)
{
    (void)state;
    metric_label_t labels[2] = {{STR_LIT("source_workload"), STR_LIT("caf\xc3\xa9")}, {STR_LIT("response_code"), STR_LIT("")}};
    double bounds[3] = {1, 5, 10};
    uint64_t counts[4] = {1, 0, 2, 3};
    metric_exemplar_t ex = {7.5, 1700000000123456789ull, 0x4bf92f3577b34da6ull, 0xa3ce929d0e0e4736ull, 0x00f067aa0ba902b7ull};
    metric_point_t h = {.name = STR_LIT("istio_request_duration_milliseconds"), .unit = STR_LIT("ms"),
                        .type = METRIC_HISTOGRAM, .temporality = METRIC_TEMPORALITY_DELTA, .has_sum = 1,
                        .n_labels = 2, .labels = labels, .start_time_unix_nano = 1700000000000000000ull,
                        .time_unix_nano = 1700000010000000000ull, .count = 6, .sum = 41.25, .n_bounds = 3,
                        .bounds = bounds, .bucket_counts = counts, .n_exemplars = 1, .exemplars = &ex};
    metric_point_t c = {.name = STR_LIT("istio_requests_total"), .type = METRIC_SUM,
                        .temporality = METRIC_TEMPORALITY_CUMULATIVE, .monotonic = 1, .n_labels = 1, .labels = labels,
                        .time_unix_nano = 1700000010000000000ull, .value = 12345.5};
    buf_t out = BUF_INIT;
    kafka_enc_metric_otlp(&h, &out);
    kafka_enc_metric_otlp(&c, &out);
    arena_t a;
    arena_init(&a, 0);
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    otlp_result_t res = {0};
    static got_points_t g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(otlp_metrics_decode_proto((const uint8_t *)out.data, out.len, &lim, &a, collect_point, &g, &res), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(res.accepted, 2);
    const metric_point_t *p = &g.p[0];
    assert_int_equal(p->type, METRIC_HISTOGRAM);
    assert_int_equal(p->temporality, METRIC_TEMPORALITY_DELTA);
    assert_true(str_equal(p->name, h.name) && str_equal(p->unit, h.unit));
    assert_int_equal(p->n_labels, 2);
    assert_true(str_equal(p->labels[0].name, labels[0].name) && str_equal(p->labels[0].value, labels[0].value));
    assert_true(str_equal(p->labels[1].name, labels[1].name) && p->labels[1].value.len == 0);
    assert_true(p->start_time_unix_nano == h.start_time_unix_nano && p->time_unix_nano == h.time_unix_nano);
    assert_true(p->count == 6 && p->has_sum && p->sum == 41.25 && p->n_bounds == 3);
    assert_memory_equal(g.bounds[0], bounds, sizeof(bounds));
    assert_memory_equal(g.counts[0], counts, sizeof(counts));
    assert_int_equal(p->n_exemplars, 1);
    assert_true(g.ex[0].value == 7.5 && g.ex[0].time_unix_nano == ex.time_unix_nano);
    assert_true(g.ex[0].trace_id_high == ex.trace_id_high && g.ex[0].trace_id_low == ex.trace_id_low);
    assert_true(g.ex[0].span_id == ex.span_id);
    p = &g.p[1];
    assert_int_equal(p->type, METRIC_SUM);
    assert_int_equal(p->temporality, METRIC_TEMPORALITY_CUMULATIVE);
    assert_true(p->monotonic && p->value == 12345.5 && p->start_time_unix_nano == 0);
    assert_true(str_equal(p->name, c.name) && p->n_labels == 1 && p->n_exemplars == 0);
    arena_dispose(&a);
    buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_matches_kafka),
        cmocka_unit_test(test_group_traces),
        cmocka_unit_test(test_batch_messages),
        cmocka_unit_test(test_log_json),
        cmocka_unit_test(test_metric_otlp_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
