/*
 * Unit tests for collector/remote_write_enc: the WriteRequest of a metric
 * store, decoded back with protobuf-c code generated from
 * common/proto/prometheus/ (names, sorted labels, cumulative buckets,
 * exemplars, timestamps), snappy round trips, the bounded queue's drop
 * accounting and the retry decisions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metric_store.h"
#include "prometheus/remote.pb-c.h"
#include "remote_write_enc.h"

#define TS_MS 1700000000123LL

static metric_store_t *filled_store(void)
{
    metric_store_t *ms = metric_store_create(NULL);
    /* "Zone" sorts before "__name__" (bytes), "zone" after it */
    metric_label_t cl[] = {{STR_LIT("zone"), STR_LIT("eu")},
                           {STR_LIT("Zone"), STR_LIT("Z")},
                           {STR_LIT("workload"), STR_LIT("Grüße/東京")}};
    metric_exemplar_t cex = {.value = 1, .time_unix_nano = 1700000000000000000ull, .trace_id_low = 0xabcull};
    metric_point_t c = {.name = STR_LIT("requests"),
                        .type = METRIC_SUM,
                        .temporality = METRIC_TEMPORALITY_DELTA,
                        .monotonic = 1,
                        .labels = cl,
                        .n_labels = 3,
                        .value = 12,
                        .n_exemplars = 1,
                        .exemplars = &cex};
    assert_int_equal(metric_store_add(ms, &c, 1, NULL), 0);
    double bounds[] = {1, 5, 10, 25};
    uint64_t counts[] = {0, 1, 2, 1, 0};
    metric_exemplar_t hex = {.value = 7,
                             .time_unix_nano = 1700000000500000000ull,
                             .trace_id_high = 0x4bf92f3577b34da6ull,
                             .trace_id_low = 0xa3ce929d0e0e4736ull,
                             .span_id = 0x00f067aa0ba902b7ull};
    metric_label_t hl[] = {{STR_LIT("reporter"), STR_LIT("destination")}};
    metric_point_t h = {.name = STR_LIT("latency"),
                        .type = METRIC_HISTOGRAM,
                        .temporality = METRIC_TEMPORALITY_DELTA,
                        .labels = hl,
                        .n_labels = 1,
                        .count = 4,
                        .sum = 31,
                        .has_sum = 1,
                        .n_bounds = 4,
                        .bounds = bounds,
                        .bucket_counts = counts,
                        .n_exemplars = 1,
                        .exemplars = &hex};
    assert_int_equal(metric_store_add(ms, &h, 1, NULL), 0);
    metric_point_t g = {.name = STR_LIT("temperature"), .type = METRIC_GAUGE, .value = -3.5};
    assert_int_equal(metric_store_add(ms, &g, 1, NULL), 0);
    return ms;
}

/* The label value of name in ts, or NULL. */
static const char *label(const Prometheus__TimeSeries *ts, const char *name)
{
    for (size_t i = 0; i < ts->n_labels; i++)
        if (strcmp(ts->labels[i]->name, name) == 0)
            return ts->labels[i]->value;
    return NULL;
}

static const Prometheus__TimeSeries *find(const Prometheus__WriteRequest *wr, const char *name, const char *le)
{
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = wr->timeseries[i];
        if (strcmp(label(ts, "__name__"), name) == 0 && (le == NULL || strcmp(label(ts, "le"), le) == 0))
            return ts;
    }
    fail_msg("no series %s le=%s", name, le ? le : "-");
    return NULL;
}

static void test_write_request_decodes(void **state)
{
    (void)state;
    metric_store_t *ms = filled_store();
    rw_series_buf_t sb = {0};
    sb.ts_ms = TS_MS;
    metric_render_cursor_t cur = {0};
    size_t parts = 1;
    while (metric_store_visit_chunk(ms, &cur, rw_encode_series, &sb, 3, 1) == 1) /* parts of >= 3 samples */
        parts++;
    metric_render_cursor_dispose(&cur);
    assert_int_equal(parts, 2);                  /* latency (7); requests (1) + temperature (1) */
    assert_int_equal(sb.n, 1 + (4 + 1 + 2) + 1); /* one TimeSeries per sample */

    Prometheus__WriteRequest *wr = prometheus__write_request__unpack(NULL, sb.data.len, (const uint8_t *)sb.data.data);
    assert_non_null(wr);
    assert_int_equal(wr->n_timeseries, sb.n);
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = wr->timeseries[i];
        assert_int_equal(ts->n_samples, 1);
        assert_int_equal(ts->samples[0]->timestamp, TS_MS);
        for (size_t l = 1; l < ts->n_labels; l++) /* sorted by name, no duplicates */
            assert_true(strcmp(ts->labels[l - 1]->name, ts->labels[l]->name) < 0);
    }

    const Prometheus__TimeSeries *c = find(wr, "requests_total", NULL);
    assert_int_equal(c->n_labels, 4);
    assert_string_equal(c->labels[0]->name, "Zone");
    assert_string_equal(c->labels[1]->name, "__name__");
    assert_string_equal(label(c, "workload"), "Grüße/東京");
    assert_true(c->samples[0]->value == 12);
    assert_int_equal(c->n_exemplars, 1);
    assert_string_equal(c->exemplars[0]->labels[0]->value, "0000000000000abc");
    assert_int_equal(c->exemplars[0]->timestamp, 1700000000000LL);

    static const char *const les[] = {"1", "5", "10", "25", "+Inf"};
    static const double cum[] = {0, 1, 3, 4, 4};
    for (int i = 0; i < 5; i++) {
        const Prometheus__TimeSeries *b = find(wr, "latency_bucket", les[i]);
        assert_true(b->samples[0]->value == cum[i]);
        assert_string_equal(label(b, "reporter"), "destination");
        assert_int_equal(b->n_exemplars, i == 2 ? 1 : 0); /* 7 falls in (5, 10] */
    }
    const Prometheus__Exemplar *ex = find(wr, "latency_bucket", "10")->exemplars[0];
    assert_int_equal(ex->n_labels, 2);
    assert_string_equal(ex->labels[0]->name, "trace_id");
    assert_string_equal(ex->labels[0]->value, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(ex->labels[1]->name, "span_id");
    assert_string_equal(ex->labels[1]->value, "00f067aa0ba902b7");
    assert_true(ex->value == 7);
    assert_int_equal(ex->timestamp, 1700000000500LL);
    assert_true(find(wr, "latency_count", NULL)->samples[0]->value == 4);
    assert_true(find(wr, "latency_sum", NULL)->samples[0]->value == 31);
    const Prometheus__TimeSeries *g = find(wr, "temperature", NULL);
    assert_int_equal(g->n_labels, 1);
    assert_true(g->samples[0]->value == -3.5);
    prometheus__write_request__free_unpacked(wr, NULL);

    /* a batch is a prefix of the series: taking k leaves a valid WriteRequest of the rest */
    size_t n = sb.n;
    rw_series_buf_take(&sb, 3);
    assert_int_equal(sb.n, n - 3);
    assert_int_equal(rw_series_buf_bytes(&sb, sb.n), sb.data.len);
    wr = prometheus__write_request__unpack(NULL, sb.data.len, (const uint8_t *)sb.data.data);
    assert_non_null(wr);
    assert_int_equal(wr->n_timeseries, n - 3);
    prometheus__write_request__free_unpacked(wr, NULL);
    rw_series_buf_dispose(&sb);
    metric_store_destroy(ms);
}

/*
 * Remote write 1.0: a label set MUST NOT hold an empty value (an empty value
 * is the label's absence). Istio's grpc_response_status is "" on every HTTP
 * series; Thanos receive refuses a whole request holding one with 409.
 */
static void test_empty_label_values_are_left_out(void **state)
{
    (void)state;
    metric_store_t *ms = metric_store_create(NULL);
    metric_label_t cl[] = {{STR_LIT("response_code"), STR_LIT("200")},
                           {STR_LIT("grpc_response_status"), STR_LIT("")},
                           {STR_LIT("a"), STR_LIT("")}};
    metric_point_t c = {.name = STR_LIT("istio_requests"),
                        .type = METRIC_SUM,
                        .temporality = METRIC_TEMPORALITY_DELTA,
                        .monotonic = 1,
                        .labels = cl,
                        .n_labels = 3,
                        .value = 3};
    assert_int_equal(metric_store_add(ms, &c, 1, NULL), 0);
    double bounds[] = {1};
    uint64_t counts[] = {1, 1};
    metric_label_t hl[] = {{STR_LIT("zz"), STR_LIT("")}};
    metric_point_t h = {.name = STR_LIT("latency"),
                        .type = METRIC_HISTOGRAM,
                        .temporality = METRIC_TEMPORALITY_DELTA,
                        .labels = hl,
                        .n_labels = 1,
                        .count = 2,
                        .n_bounds = 1,
                        .bounds = bounds,
                        .bucket_counts = counts};
    assert_int_equal(metric_store_add(ms, &h, 1, NULL), 0);
    rw_series_buf_t sb = {.ts_ms = TS_MS};
    metric_render_cursor_t cur = {0};
    while (metric_store_visit_chunk(ms, &cur, rw_encode_series, &sb, 1000, 1) == 1)
        ;
    metric_render_cursor_dispose(&cur);
    Prometheus__WriteRequest *wr = prometheus__write_request__unpack(NULL, sb.data.len, (const uint8_t *)sb.data.data);
    assert_non_null(wr);
    assert_int_equal(wr->n_timeseries, 1 + 2 + 1); /* counter; 2 buckets and _count (no sum) */
    for (size_t i = 0; i < wr->n_timeseries; i++)
        for (size_t l = 0; l < wr->timeseries[i]->n_labels; l++)
            assert_true(wr->timeseries[i]->labels[l]->value[0] != '\0');
    const Prometheus__TimeSeries *ts = find(wr, "istio_requests_total", NULL);
    assert_int_equal(ts->n_labels, 2);
    assert_string_equal(label(ts, "response_code"), "200");
    assert_int_equal(find(wr, "latency_bucket", "+Inf")->n_labels, 2); /* __name__, le */
    assert_int_equal(find(wr, "latency_count", NULL)->n_labels, 1);
    prometheus__write_request__free_unpacked(wr, NULL);
    rw_series_buf_dispose(&sb);
    metric_store_destroy(ms);
}

static void test_snappy_round_trip(void **state)
{
    (void)state;
    buf_t in = {0}, z = {0}, out = {0};
    for (int i = 0; i < 100000; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "series_%d{le=\"%d\"} %u\n", i % 50, i % 7, (unsigned)(i * 2654435761u));
        buf_append(&in, line, (size_t)n);
    }
    assert_int_equal(rw_snappy_compress(in.data, in.len, &z), 0);
    assert_true(z.len < in.len);
    assert_int_equal(rw_snappy_uncompress(z.data, z.len, &out), 0);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    assert_int_equal(rw_snappy_compress("", 0, &z), 0); /* empty */
    assert_int_equal(rw_snappy_uncompress(z.data, z.len, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(rw_snappy_uncompress("\xff\xff\xff\xff\xff\x0f garbage", 15, &out), -1);
    buf_dispose(&in);
    buf_dispose(&z);
    buf_dispose(&out);
}

static rw_batch_t *batch(uint32_t samples)
{
    return rw_batch_create("x", 1, samples);
}

static void test_queue_drops_oldest_exactly(void **state)
{
    (void)state;
    rw_queue_t q = {.max_samples = 10};
    assert_int_equal(rw_queue_push(&q, batch(4)), 0);
    assert_int_equal(rw_queue_push(&q, batch(3)), 0);
    assert_int_equal(rw_queue_push(&q, batch(3)), 0); /* exactly full */
    assert_int_equal(q.samples, 10);
    assert_int_equal(rw_queue_push(&q, batch(5)), 4 + 3); /* the two oldest make room */
    assert_int_equal(q.samples, 8);
    assert_int_equal(rw_queue_push(&q, batch(11)), 11); /* larger than the bound: itself */
    assert_int_equal(q.samples, 8);
    rw_batch_t *b = rw_queue_pop(&q);
    assert_int_equal(b->samples, 3); /* FIFO */
    rw_batch_free(b);
    assert_int_equal(q.samples, 5);
    assert_int_equal(rw_queue_clear(&q), 5);
    assert_null(rw_queue_pop(&q));
    assert_int_equal(q.samples, 0);
    rw_batch_free(NULL);
}

static void test_retry_decisions(void **state)
{
    (void)state;
    assert_int_equal(rw_classify(200), RW_SENT);
    assert_int_equal(rw_classify(204), RW_SENT);
    assert_int_equal(rw_classify(0), RW_RETRY); /* no answer */
    assert_int_equal(rw_classify(429), RW_RETRY);
    assert_int_equal(rw_classify(500), RW_RETRY);
    assert_int_equal(rw_classify(503), RW_RETRY);
    assert_int_equal(rw_classify(400), RW_FAIL);
    assert_int_equal(rw_classify(404), RW_FAIL);
    assert_int_equal(rw_classify(413), RW_FAIL);
    assert_int_equal(rw_classify(301), RW_FAIL);
    assert_int_equal(rw_backoff_ms(1, 100, 5000, 0), 100);
    assert_int_equal(rw_backoff_ms(2, 100, 5000, 0), 200);
    assert_int_equal(rw_backoff_ms(3, 100, 5000, 0), 400);
    assert_int_equal(rw_backoff_ms(7, 100, 5000, 0), 5000); /* capped */
    assert_int_equal(rw_backoff_ms(4000000000u, 100, 5000, 0), 5000);
    assert_int_equal(rw_backoff_ms(1, 100, 5000, 3), 3000); /* Retry-After wins */
    assert_int_equal(rw_backoff_ms(1, 100, 5000, 100000), RW_MAX_RETRY_AFTER_S * 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_request_decodes), cmocka_unit_test(test_empty_label_values_are_left_out),
        cmocka_unit_test(test_snappy_round_trip),     cmocka_unit_test(test_queue_drops_oldest_exactly),
        cmocka_unit_test(test_retry_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
