/*
 * prom_sample: fills a metric store with varied series (counters, gauges,
 * histograms with exemplars, hostile label values and HELP text), adds the
 * collector's self-metric primitives, and writes the result in both
 * exposition formats so tests/integration/test_promtool_format.sh can check
 * them with promtool.
 *
 * usage: prom_sample TEXT_OUT OPENMETRICS_OUT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metric_store.h"
#include "prom_text.h"

static void must_add(metric_store_t *ms, const metric_point_t *p)
{
    const char *why = NULL;
    if (metric_store_add(ms, p, 1000, &why) != 0) {
        fprintf(stderr, "prom_sample: point %.*s rejected: %s\n", (int)p->name.len, p->name.ptr, why);
        exit(1);
    }
}

static void fill_store(metric_store_t *ms)
{
    static const char *const codes[] = {"200", "404", "503"};
    static const char *const services[] = {"reviews.default.svc.cluster.local", "ratings", "we\"ird\\svc\nname"};
    for (int proxy = 0; proxy < 3; proxy++)
        for (int c = 0; c < 3; c++) {
            metric_label_t l[4] = {
                {STR_LIT("destination_service"), {services[c], (uint32_t)strlen(services[c])}},
                {STR_LIT("response_code"), {codes[c], 3}},
                {STR_LIT("reporter"), STR_LIT("source")},
                {STR_LIT("connection.security_policy"), STR_LIT("mutual_tls")},
            };
            metric_exemplar_t ex = {.value = 1,
                                    .time_unix_nano = 1700000000123000000ull,
                                    .trace_id_high = 0x4bf92f3577b34da6ull,
                                    .trace_id_low = 0xa3ce929d0e0e4736ull,
                                    .span_id = 0x00f067aa0ba902b7ull};
            metric_point_t p = {
                .name = STR_LIT("istio_requests_total"),
                .description = STR_LIT("Total requests\nseen by the \"mesh\" \\ proxies"),
                .type = METRIC_SUM,
                .temporality = METRIC_TEMPORALITY_DELTA,
                .monotonic = 1,
                .labels = l,
                .n_labels = 4,
                .value = 10 + proxy + c,
                .exemplars = &ex,
                .n_exemplars = 1,
            };
            must_add(ms, &p);

            double bounds[5] = {0.005, 0.01, 0.1, 1, 2.5};
            uint64_t counts[6] = {1, 2, 3, 4, 0, (uint64_t)proxy};
            metric_exemplar_t hex[2] = {
                {.value = 0.05, .time_unix_nano = 1700000000200000000ull, .trace_id_low = 0x1234ull + proxy},
                {.value = 7.5, .time_unix_nano = 1700000000300000000ull, .trace_id_high = 1, .trace_id_low = 2},
            };
            metric_point_t h = {
                .name = STR_LIT("istio.request.duration.seconds"),
                .description = STR_LIT("Request duration"),
                .unit = STR_LIT("seconds"),
                .type = METRIC_HISTOGRAM,
                .temporality = METRIC_TEMPORALITY_DELTA,
                .has_sum = 1,
                .labels = l,
                .n_labels = 3,
                .count = 10 + (uint64_t)proxy,
                .sum = 3.25 * (proxy + 1),
                .n_bounds = 5,
                .bounds = bounds,
                .bucket_counts = counts,
                .exemplars = hex,
                .n_exemplars = 2,
            };
            must_add(ms, &h);
        }

    metric_label_t gl[1] = {{STR_LIT("pool"), STR_LIT("upstream\\\"a\"\n")}};
    metric_point_t g = {
        .name = STR_LIT("outrider_proxy_active_connections"),
        .description = STR_LIT("Open upstream connections"),
        .type = METRIC_SUM,
        .temporality = METRIC_TEMPORALITY_DELTA,
        .monotonic = 0,
        .labels = gl,
        .n_labels = 1,
        .value = -2.5,
    };
    must_add(ms, &g);
    g.name = STR_LIT("process.cpu.utilization");
    g.description = STR_LIT("CPU share, 0..1");
    g.type = METRIC_GAUGE;
    g.n_labels = 0;
    g.value = 0.125;
    must_add(ms, &g);
    g.name = STR_LIT("outrider_proxy_memory_bytes");
    g.description = STR_LIT("Resident memory");
    g.unit = STR_LIT("bytes");
    g.value = 12345678901234.0;
    must_add(ms, &g);

    metric_point_t big = {
        .name = STR_LIT("outrider_proxy_received_bytes"),
        .description = STR_LIT("Bytes received from downstream"),
        .unit = STR_LIT("bytes"),
        .type = METRIC_SUM,
        .temporality = METRIC_TEMPORALITY_CUMULATIVE,
        .monotonic = 1,
        .value = 1e21,
    };
    must_add(ms, &big);
}

static void render_self(buf_t *b, int om)
{
    static prom_counter_t messages, spans;
    static prom_gauge_t message_spans;
    static int init;
    static prom_histogram_vec_t *http;
    if (!init) {
        prom_counter_add(&messages, 42);
        prom_counter_add(&spans, 4200);
        prom_gauge_set(&message_spans, 100);
        const char *names[3] = {"method", "uri", "status"};
        http = prom_histogram_vec_create("http_server_requests_seconds", "HTTP server request latency", names, 3,
                                         prom_latency_bounds_seconds, PROM_LATENCY_BOUNDS_N, 16);
        const char *v1[3] = {"POST", "/api/v2/spans", "202"};
        const char *v2[3] = {"GET", "/metrics", "200"};
        prom_histogram_vec_observe(http, v1, 0.0031);
        prom_histogram_vec_observe(http, v1, 0.2);
        prom_histogram_vec_observe(http, v2, 0.0009);
        init = 1;
    }
    metric_label_t t = {STR_LIT("transport"), STR_LIT("http")};
    prom_write_family_header(b, "zipkin_collector_messages", PROM_COUNTER, "Messages received", 17, NULL, om);
    prom_write_counter(b, "zipkin_collector_messages", &t, 1, &messages, om);
    prom_write_family_header(b, "zipkin_collector_spans", PROM_COUNTER, "Spans received", 14, NULL, om);
    prom_write_counter(b, "zipkin_collector_spans", &t, 1, &spans, om);
    prom_write_family_header(b, "zipkin_collector_message_spans", PROM_GAUGE, "Spans in the last message", 25, NULL,
                             om);
    prom_write_gauge(b, "zipkin_collector_message_spans", &t, 1, &message_spans, om);
    prom_histogram_vec_render(http, b, om);
    if (om) {
        prom_histogram_vec_destroy(http);
        http = NULL;
    }
}

static int write_file(const char *path, const buf_t *b)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TEXT_OUT OPENMETRICS_OUT\n", argv[0]);
        return 2;
    }
    metric_store_t *ms = metric_store_create(NULL);
    fill_store(ms);
    int rc = 0;
    for (int om = 0; om <= 1; om++) {
        buf_t b = BUF_INIT;
        metric_store_render(ms, &b, om, 2000);
        render_self(&b, om);
        prom_write_eof(&b, om);
        if (write_file(argv[1 + om], &b) != 0)
            rc = 1;
        buf_dispose(&b);
    }
    metric_store_destroy(ms);
    return rc;
}
