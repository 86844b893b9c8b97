/*
 * collector: the state one outrider-collector process shares between its
 * HTTP threads: configuration, the trace store, the metric store and the
 * collector's own health counters. Created by main, read by every handler.
 *
 * The stores lock themselves; the counters are atomics, so handlers need
 * no lock of their own here.
 */
#ifndef OUTRIDER_COLLECTOR_H
#define OUTRIDER_COLLECTOR_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "prom_text.h"
#include "server.h"

/* the Zipkin server version whose API semantics we follow, reported by /info */
#define OUTRIDER_ZIPKIN_API_VERSION "2.24.0"

struct span_store;
struct metric_store;
struct kafka;
struct kafka_consumer;
struct query;
struct remote_write;
struct mesh_page;
struct ingest_auth;
struct ingest_tls;

enum collector_transport {
    TRANSPORT_ZIPKIN_HTTP = 0, /* POST /api/v2/spans; Zipkin's transport="http" */
    TRANSPORT_OTLP_HTTP,       /* POST /v1/...; transport="otlp_http" */
    TRANSPORT_KAFKA,           /* consumed from kafka.consume.topics; transport="kafka" */
    TRANSPORT_COUNT,
};

/* Counters per transport, with the names Zipkin's collector metrics use. */
typedef struct collector_transport_stats {
    prom_counter_t messages;         /* requests received */
    prom_counter_t messages_dropped; /* requests refused whole (4xx, 5xx) */
    prom_counter_t bytes;            /* body bytes as received */
    prom_counter_t spans;            /* spans accepted */
    prom_counter_t spans_dropped;    /* spans refused or rejected */
    prom_counter_t metric_points;    /* OTLP data points accepted */
    prom_counter_t metric_points_dropped;
    prom_counter_t log_records; /* OTLP log records accepted */
    prom_counter_t log_records_dropped;
} collector_transport_stats_t;

typedef struct collector {
    collector_config_t cfg;
    struct span_store *store;
    struct metric_store *metrics;
    struct kafka *kafka;               /* NULL: Kafka off (kafka.brokers empty) */
    struct kafka_consumer *consumer;   /* NULL: kafka.consume.topics empty */
    struct query *query;               /* NULL: query.peers empty (the API answers from the local store) */
    struct remote_write *remote_write; /* NULL: remoteWrite.url empty */
    struct mesh_page *mesh;            /* the service graph's sampler (server.c sets it); NULL before */
    struct ingest_auth *auth;          /* tokens and client ids of ingest requests (ingest_auth.h) */
    struct ingest_tls *tls;            /* the ingest listeners' credentials (ingest_tls.h); NULL: plain HTTP */
    collector_transport_stats_t transport[TRANSPORT_COUNT];
    prom_histogram_vec_t *http_latency;    /* http_server_requests_seconds{method,uri,status} */
    prom_counter_t memory_refusals;        /* requests refused with 503 for the memory limit */
    prom_counter_t scrapes_abandoned;      /* /metrics bodies stopped at the scraper's timeout */
    prom_counter_t tls_handshake_failures; /* ingest TLS connections closed without a finished handshake */
    _Atomic uint64_t rss_bytes;            /* last reading of resident memory */
    _Atomic uint64_t rss_read_ms;          /* when it was read */
    uint64_t started_ms;
} collector_t;

/*
 * Check what cfg->role needs and fill in what it implies (sets role_id;
 * role store reads the spans and metrics topics with replay). Part of the
 * configuration check: returns 0, or -1 with the reason logged.
 */
int collector_apply_role(collector_config_t *cfg);

/* Create the stores from c->cfg (already loaded, collector_apply_role done). Returns 0 or -1 (logged). */
int collector_init(collector_t *c);

/* Free what collector_init made (not the config), after server_stop. */
void collector_dispose(collector_t *c);

/* Milliseconds and microseconds since the epoch (CLOCK_REALTIME). */
uint64_t collector_now_ms(void);
uint64_t collector_now_us(void);

/*
 * 1 when resident memory is above limits.memoryLimit, reading
 * /proc/self/statm at most every 100 ms. Ingest answers 503 then.
 */
int collector_over_memory(collector_t *c);

/*
 * GET /metrics, the collector's own series followed by the OTLP ones, as a
 * stream (server.h): written in parts of about 64 KiB as
 * the client reads, the metric store locked for one part at a time, so a
 * scrape holds a part in memory, not the body, and never stops ingest for
 * longer than a part takes. timeout_s > 0 (the scraper's
 * X-Prometheus-Scrape-Timeout-Seconds): past it the body is cut short and
 * counted, since the scraper has given up on it.
 */
http_stream_t collector_metrics_stream(collector_t *c, int openmetrics, double timeout_s);

/* Handlers (ingest.c): POST /api/v2/spans and POST /v1/{traces,metrics,logs}. */
void ingest_zipkin(collector_t *c, const http_request_t *req, http_response_t *resp);
void ingest_otlp_traces(collector_t *c, const http_request_t *req, http_response_t *resp);
void ingest_otlp_metrics(collector_t *c, const http_request_t *req, http_response_t *resp);
void ingest_otlp_logs(collector_t *c, const http_request_t *req, http_response_t *resp);

/*
 * One message consumed from Kafka: a Zipkin span list (JSON, or proto3
 * ListOfSpans told apart by its first bytes, as Zipkin's Kafka collector
 * does) or, with otlp, an OTLP ExportTraceServiceRequest. Stores the spans
 * (never publishes them again; new traces remember origin, see
 * span_store_insert_from) and counts them under transport="kafka".
 * Returns the spans kept, or -1 with the reason in why when the message
 * cannot be decoded.
 */
int ingest_kafka_spans(collector_t *c, const uint8_t *data, size_t len, int otlp, uint16_t origin, char *why,
                       size_t why_len);

/*
 * One message consumed from kafka.metrics.topic (role store): OTLP
 * ExportMetricsServiceRequests, as role ingest publishes them. The points
 * go into the metric store remembering origin (metric_store_add_from) and
 * are counted under transport="kafka". Returns 0, or -1 with the reason in
 * why when the message cannot be decoded.
 */
int ingest_kafka_metrics(collector_t *c, const uint8_t *data, size_t len, uint16_t origin, char *why, size_t why_len);

/*
 * Zipkin query API and UI paths (zipkin_api.c): path is relative to the
 * API root ("/services", "/trace/abc"...). Returns 1 when it answered,
 * 0 when the path is not an API path.
 */
int zipkin_api_handle(collector_t *c, const http_request_t *req, const char *path, http_response_t *resp);

#endif
