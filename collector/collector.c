/*
 * collector: shared state, clocks, the memory guard and /metrics; see
 * collector.h.
 */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest_auth.h"
#include "ingest_tls.h"
#include "kafka.h"
#include "kafka_consume.h"
#include "log.h"
#include "mesh_page.h"
#include "metric_store.h"
#include "mono.h"
#include "query.h"
#include "remote_write.h"
#include "span_store.h"
#include "xalloc.h"

static const char *const transport_names[TRANSPORT_COUNT] = {"http", "otlp_http", "kafka"};

uint64_t collector_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t collector_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t read_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

int collector_over_memory(collector_t *c)
{
    uint64_t now = collector_now_ms();
    uint64_t last = atomic_load_explicit(&c->rss_read_ms, memory_order_relaxed);
    if (now - last >= 100 && atomic_compare_exchange_strong(&c->rss_read_ms, &last, now))
        atomic_store_explicit(&c->rss_bytes, read_rss(), memory_order_relaxed);
    return atomic_load_explicit(&c->rss_bytes, memory_order_relaxed) > c->cfg.memory_limit_bytes;
}

/*
 * role: what this process does in a scaled-out collector (see the role
 * setting and docs/decisions.md). Checks what each role needs and fills in
 * what it implies: a store member reads the spans and metrics topics, each
 * assigned partition from its beginning.
 */
int collector_apply_role(collector_config_t *cfg)
{
    static const char *const names[] = {"all", "ingest", "store", "query"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(cfg->role, names[i]) == 0)
            cfg->role_id = (enum collector_role)i;
    int kafka = cfg->kafka_brokers != NULL && cfg->kafka_brokers[0] != '\0';
    if (cfg->role_id != ROLE_QUERY && cfg->query_peers.n > 0) {
        log_error("query.peers is for role query (set role=query): role %s answers from its own store", cfg->role);
        return -1;
    }
    if ((cfg->role_id == ROLE_INGEST || cfg->role_id == ROLE_QUERY) && cfg->remote_write_url[0] != '\0') {
        log_error("remoteWrite.url is for roles all and store: role %s holds no metric series to push", cfg->role);
        return -1;
    }
    switch (cfg->role_id) {
    case ROLE_ALL: break;
    case ROLE_INGEST:
        if (!kafka) {
            log_error("role ingest publishes what it receives to Kafka: set kafka.brokers");
            return -1;
        }
        if (cfg->kafka_consume_topics.n > 0) {
            log_error("role ingest does not read Kafka: kafka.consume.topics is for roles all and store");
            return -1;
        }
        break;
    case ROLE_STORE:
        if (!kafka) {
            log_error("role store reads its partitions from Kafka: set kafka.brokers");
            return -1;
        }
        if (cfg->kafka_consume_topics.n == 0) {
            cfg->kafka_consume_topics.items = xcalloc(2, sizeof(char *));
            cfg->kafka_consume_topics.items[0] = xstrdup(cfg->kafka_spans_topic);
            cfg->kafka_consume_topics.items[1] = xstrdup(cfg->kafka_metrics_topic);
            cfg->kafka_consume_topics.n = 2;
        }
        cfg->kafka_consume_replay = 1;
        break;
    case ROLE_QUERY:
        if (cfg->query_peers.n == 0) {
            log_error("role query answers from the store members: set query.peers (host:port, [v6]:port or "
                      "dns+NAME:PORT, comma-separated)");
            return -1;
        }
        if (cfg->kafka_consume_topics.n > 0) {
            log_error("role query holds nothing and reads no Kafka topic: kafka.consume.topics is for roles all "
                      "and store");
            return -1;
        }
        break;
    }
    return 0;
}

static void log_auth_error(void *ctx, const char *message)
{
    (void)ctx;
    log_error("ingest.auth.tokens: %s", message);
}

int collector_init(collector_t *c)
{
    c->auth = ingest_auth_create(c->cfg.auth_tokens, &c->cfg.tls_client_ids, log_auth_error, NULL);
    if (c->auth == NULL)
        return -1;
    if (c->cfg.tls_cert_file != NULL && c->cfg.tls_cert_file[0] != '\0') {
        char why[1024];
        c->tls =
            ingest_tls_create(c->cfg.tls_cert_file, c->cfg.tls_key_file, c->cfg.tls_client_ca_file, why, sizeof(why));
        if (c->tls == NULL) {
            log_error("ingest.tls: %s", why);
            return -1;
        }
    }
    span_store_config_t scfg;
    span_store_config_default(&scfg);
    scfg.max_spans = c->cfg.max_spans;
    scfg.max_bytes = c->cfg.max_store_bytes;
    scfg.strict_trace_id = c->cfg.strict_trace_id;
    scfg.pretouch = c->cfg.store_pretouch;
    if (scfg.pretouch && c->cfg.max_store_bytes >= c->cfg.memory_limit_bytes) {
        log_error("store.preTouch makes store.maxBytes (%llu bytes) resident at start, which is not below "
                  "limits.memoryLimit (%llu bytes): every ingest would get 503; raise limits.memoryLimit",
                  (unsigned long long)c->cfg.max_store_bytes, (unsigned long long)c->cfg.memory_limit_bytes);
        return -1;
    }
    scfg.max_trace_spans = (uint32_t)c->cfg.max_trace_spans;
    scfg.autocomplete_keys = (const char *const *)c->cfg.autocomplete_keys.items;
    scfg.n_autocomplete_keys = c->cfg.autocomplete_keys.n;
    c->store = span_store_create(&scfg);
    if (c->store == NULL) {
        log_error("cannot create the trace store");
        return -1;
    }
    /* names the collector renders itself: an OTLP family with one would duplicate it and fail the scrape */
    static const char *const reserved[] = {"zipkin_collector_",
                                           "outrider_store_",
                                           "outrider_metric_",
                                           "outrider_collector_",
                                           "outrider_memory_",
                                           "process_resident_memory_bytes",
                                           "process_start_time_seconds",
                                           "http_server_requests_seconds",
                                           "outrider_kafka_",
                                           "outrider_query_",
                                           "outrider_metrics_",
                                           "outrider_remote_write_",
                                           "outrider_mesh_"};
    metric_store_config_t mcfg = {0};
    mcfg.reserved_prefixes = reserved;
    mcfg.help_fallback = 1;
    mcfg.n_reserved_prefixes = sizeof(reserved) / sizeof(reserved[0]);
    mcfg.series_ttl_ms = c->cfg.metric_series_ttl_ms;
    mcfg.max_series = (uint32_t)(c->cfg.max_metric_series > UINT32_MAX ? UINT32_MAX : c->cfg.max_metric_series);
    mcfg.max_series_per_metric = (uint32_t)c->cfg.max_metric_series_per_metric;
    c->metrics = metric_store_create(&mcfg);
    if (c->metrics == NULL) {
        log_error("cannot create the metric store");
        return -1;
    }
    static const char *const latency_labels[] = {"method", "uri", "status"};
    c->http_latency =
        prom_histogram_vec_create("http_server_requests_seconds", "Latency of the collector's HTTP requests",
                                  latency_labels, 3, prom_latency_bounds_seconds, PROM_LATENCY_BOUNDS_N, 1024);
    c->started_ms = collector_now_ms();
    if (c->cfg.kafka_brokers != NULL && c->cfg.kafka_brokers[0] != '\0' && c->cfg.role_id != ROLE_STORE) {
        c->kafka = kafka_start(&c->cfg); /* a store member publishes nothing: what it reads came from Kafka */
        if (c->kafka == NULL)
            return -1;
    }
    if (c->cfg.kafka_consume_topics.n > 0) {
        c->consumer = kafka_consumer_start(c);
        if (c->consumer == NULL)
            return -1;
    }
    if (c->cfg.query_peers.n > 0) {
        c->query = query_create(&c->cfg);
        if (c->query == NULL)
            return -1;
    }
    if (c->cfg.remote_write_url[0] != '\0') {
        c->remote_write = remote_write_start(&c->cfg, c->metrics);
        if (c->remote_write == NULL)
            return -1;
    }
    return 0;
}

void collector_dispose(collector_t *c)
{
    kafka_consumer_stop(c->consumer); /* first: nothing more goes into the store */
    c->consumer = NULL;
    remote_write_stop(c->remote_write); /* a last push of the store, before it goes */
    c->remote_write = NULL;
    kafka_stop(c->kafka); /* flushes what ingest queued */
    c->kafka = NULL;
    query_destroy(c->query);
    c->query = NULL;
    ingest_auth_destroy(c->auth);
    c->auth = NULL;
    ingest_tls_destroy(c->tls); /* after server_stop: no connection holds its credentials any more */
    c->tls = NULL;
    span_store_destroy(c->store);
    metric_store_destroy(c->metrics);
    prom_histogram_vec_destroy(c->http_latency);
    c->store = NULL;
    c->metrics = NULL;
    c->http_latency = NULL;
}

/* One counter family with a transport label, from the field at offset in each transport's stats. */
static void write_transport_counter(collector_t *c, buf_t *b, const char *name, const char *help, size_t offset, int om)
{
    prom_write_family_header(b, name, PROM_COUNTER, help, strlen(help), NULL, om);
    for (int t = 0; t < TRANSPORT_COUNT; t++) {
        metric_label_t l = {STR_LIT("transport"), {transport_names[t], (uint32_t)strlen(transport_names[t])}};
        const prom_counter_t *ctr = (const prom_counter_t *)((const char *)&c->transport[t] + offset);
        prom_write_counter(b, name, &l, 1, ctr, om);
    }
}

static void write_gauge_value(buf_t *b, const char *name, const char *help, double v, int om)
{
    prom_write_family_header(b, name, PROM_GAUGE, help, strlen(help), NULL, om);
    prom_write_sample(b, name, "", NULL, 0, NULL, NULL, v, NULL, om);
}

static void write_counter_value(buf_t *b, const char *name, const char *help, double v, int om)
{
    prom_write_family_header(b, name, PROM_COUNTER, help, strlen(help), NULL, om);
    prom_write_sample(b, name, "_total", NULL, 0, NULL, NULL, v, NULL, om);
}

/* The collector's own series (not the OTLP ones): small, written in one go. */
static void render_own_metrics(collector_t *c, buf_t *b, int om)
{
#define TS(field) offsetof(collector_transport_stats_t, field)
    write_transport_counter(c, b, "zipkin_collector_messages", "Messages (requests) received", TS(messages), om);
    write_transport_counter(c, b, "zipkin_collector_messages_dropped",
                            "Messages refused whole (undecodable, too large, over the memory limit)",
                            TS(messages_dropped), om);
    write_transport_counter(c, b, "zipkin_collector_bytes", "Request body bytes received, as sent", TS(bytes), om);
    write_transport_counter(c, b, "zipkin_collector_spans", "Spans accepted", TS(spans), om);
    write_transport_counter(c, b, "zipkin_collector_spans_dropped", "Spans refused or rejected", TS(spans_dropped), om);
    write_transport_counter(c, b, "outrider_collector_metric_points", "OTLP metric data points accepted",
                            TS(metric_points), om);
    write_transport_counter(c, b, "outrider_collector_metric_points_dropped", "OTLP metric data points rejected",
                            TS(metric_points_dropped), om);
    write_transport_counter(c, b, "outrider_collector_log_records", "OTLP log records accepted", TS(log_records), om);
    write_transport_counter(c, b, "outrider_collector_log_records_dropped", "OTLP log records rejected",
                            TS(log_records_dropped), om);
#undef TS
    span_store_stats_t ss;
    span_store_stats(c->store, &ss);
    write_gauge_value(b, "outrider_store_spans", "Spans held by the trace store", (double)ss.spans, om);
    write_gauge_value(b, "outrider_store_traces", "Traces held by the trace store", (double)ss.traces, om);
    write_gauge_value(b, "outrider_store_bytes", "Bytes used by the trace store", (double)ss.bytes, om);
    write_gauge_value(b, "outrider_store_max_spans", "Span bound of the trace store", (double)c->cfg.max_spans, om);
    write_gauge_value(b, "outrider_store_max_bytes", "Byte bound of the trace store", (double)c->cfg.max_store_bytes,
                      om);
    write_counter_value(b, "outrider_store_evicted_spans", "Spans evicted to stay within the store's bounds",
                        (double)ss.evicted_spans, om);
    write_counter_value(b, "outrider_store_evicted_traces", "Traces evicted to stay within the store's bounds",
                        (double)ss.evicted_traces, om);

    metric_store_stats_t ms;
    metric_store_stats(c->metrics, &ms);
    write_gauge_value(b, "outrider_metric_series", "OTLP metric series held", (double)ms.series, om);
    write_counter_value(b, "outrider_metric_series_expired", "OTLP metric series expired after metrics.seriesTtl",
                        (double)ms.series_expired, om);
    const char *help = "OTLP metric data points the metric store rejected, by reason";
    prom_write_family_header(b, "outrider_metric_points_rejected", PROM_COUNTER, help, strlen(help), NULL, om);
    for (int r = 0; r < METRIC_REJECT_COUNT_; r++) {
        const char *name = metric_store_reject_name((enum metric_reject)r);
        metric_label_t l = {STR_LIT("reason"), {name, (uint32_t)strlen(name)}};
        prom_write_sample(b, "outrider_metric_points_rejected", "_total", &l, 1, NULL, NULL, (double)ms.rejected[r],
                          NULL, om);
    }
    write_counter_value(
        b, "outrider_metrics_scrapes_abandoned",
        "/metrics bodies cut short because the scraper's X-Prometheus-Scrape-Timeout-Seconds had passed",
        (double)prom_counter_get(&c->scrapes_abandoned), om);
    write_counter_value(b, "outrider_memory_refusals", "Ingest requests refused with 503 above limits.memoryLimit",
                        (double)prom_counter_get(&c->memory_refusals), om);
    collector_over_memory(c);
    write_gauge_value(b, "process_resident_memory_bytes", "Resident memory size in bytes",
                      (double)atomic_load(&c->rss_bytes), om);
    write_gauge_value(b, "process_start_time_seconds", "Start time of the process since unix epoch in seconds",
                      (double)c->started_ms / 1000.0, om);
    prom_histogram_vec_render(c->http_latency, b, om);
    ingest_auth_render_metrics(c->auth, b, om);
    if (c->cfg.tls_cert_file != NULL && c->cfg.tls_cert_file[0] != '\0')
        write_counter_value(b, "outrider_collector_ingest_tls_handshake_failures",
                            "Connections to the HTTPS ingest listeners closed without a finished TLS handshake (plain "
                            "HTTP, no client certificate or one not from ingest.tls.clientCaFile, or none begun)",
                            (double)prom_counter_get(&c->tls_handshake_failures), om);
    ingest_tls_render_metrics(c->tls, b, om);
    kafka_render_metrics(c->kafka, b, om);
    query_render_metrics(c->query, b, om);
    remote_write_render_metrics(c->remote_write, b, om);
    mesh_page_render_metrics(c->mesh, b, om);
}

/* A /metrics body in parts: the collector's own series, then the OTLP ones a part at a time, then EOF. */
typedef struct metrics_stream {
    collector_t *c;
    int own_done;
    uint64_t deadline_ms; /* the scraper gives up then (X-Prometheus-Scrape-Timeout-Seconds); 0 = none */
    metric_render_cursor_t cur;
} metrics_stream_t;

/* Text per part: the metric store's lock is held while one is written. */
#define METRICS_PART_BYTES (64u * 1024u)

static int metrics_next(void *ctx, buf_t *out)
{
    metrics_stream_t *m = ctx;
    if (!m->own_done) {
        render_own_metrics(m->c, out, m->cur.openmetrics);
        m->own_done = 1;
        return 1;
    }
    uint64_t now = collector_now_ms();
    if (m->deadline_ms != 0 && now >= m->deadline_ms) { /* nobody reads the rest: stop writing it */
        prom_counter_add(&m->c->scrapes_abandoned, 1);
        return -1;
    }
    if (metric_store_render_chunk(m->c->metrics, &m->cur, out, METRICS_PART_BYTES, now) == 1)
        return 1;
    prom_write_eof(out, m->cur.openmetrics);
    return 0;
}

static void metrics_free(void *ctx)
{
    metrics_stream_t *m = ctx;
    metric_render_cursor_dispose(&m->cur);
    free(m);
}

http_stream_t collector_metrics_stream(collector_t *c, int om, double timeout_s)
{
    metrics_stream_t *m = xcalloc(1, sizeof(*m));
    m->c = c;
    m->cur.openmetrics = om;
    if (timeout_s > 0 && timeout_s < 1e6)
        m->deadline_ms = collector_now_ms() + (uint64_t)(timeout_s * 1000.0);
    return (http_stream_t){metrics_next, metrics_free, m};
}
