/*
 * config: the collector's settings table; see config.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ingest_auth.h"
#include "ingest_tls.h"

#define F(field) offsetof(collector_config_t, field)

static int check_cert(const char *path, char *why, size_t why_len)
{
    return ingest_tls_check_cert_file(path, why, why_len);
}

static int check_key(const char *path, char *why, size_t why_len)
{
    return ingest_tls_check_key_file(path, why, why_len);
}

typedef struct first_error {
    char *why;
    size_t len;
    int n;
} first_error_t;

static void keep_first(void *ctx, const char *message)
{
    first_error_t *e = ctx;
    if (e->n++ == 0)
        snprintf(e->why, e->len, "%s", message);
}

/* The tokens file must parse: its first error (FILE:LINE:COL: reason) is the setting's. */
static int check_tokens(const char *path, char *why, size_t why_len)
{
    first_error_t e = {why, why_len, 0};
    ingest_tokens_t *t = ingest_tokens_load(path, keep_first, &e);
    if (t == NULL && e.n > 1) {
        size_t k = strlen(why);
        snprintf(why + k, why_len - k, " (and %d more errors)", e.n - 1);
    }
    ingest_tokens_destroy(t);
    return t != NULL ? 0 : -1;
}

/* rows leave out the trailing fields they do not use (choices) */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

const setting_t collector_settings[] = {
    {"role", SETTING_STRING, F(role), "all", 0, 0,
     "all: one process does everything (Kafka optional); ingest: receives OTLP and Zipkin and publishes spans, "
     "metrics and logs to Kafka, storing nothing; store: a member of kafka.consume.group holding the traces and "
     "series of its partitions; query: answers the Zipkin API from the store members (query.peers)",
     "all|ingest|store|query"},
    {"zipkin.listen", SETTING_HOSTPORT, F(zipkin_listen), "0.0.0.0:9411", 0, 0,
     "Zipkin API (/api/v2), Zipkin UI paths (/zipkin), /metrics, /health; port 0 picks a free port"},
    {"otlp.listen", SETTING_HOSTPORT, F(otlp_listen), "0.0.0.0:4318", 0, 0,
     "OTLP/HTTP ingest (/v1/traces, /v1/metrics, /v1/logs); port 0 picks a free port"},
    {"query.listen", SETTING_HOSTPORT, F(query_listen), NULL, 0, 0,
     "the Zipkin API (GET /api/v2), UI paths (/zipkin), /mesh, /info, /health and (without metrics.listen) "
     "/metrics on a listener of their own; zipkin.listen then serves only POST /api/v2/spans and /health; "
     "empty: all on zipkin.listen"},
    {"metrics.listen", SETTING_HOSTPORT, F(metrics_listen), NULL, 0, 0,
     "/metrics (and /health) on a listener of their own, served nowhere else; empty: with the query API"},
    {"ingest.tls.certFile", SETTING_STRING, F(tls_cert_file), "", 0, 0,
     "PEM certificate (then its chain) of the ingest listeners, otlp.listen and zipkin.listen; set, they speak "
     "HTTPS only (with ingest.tls.keyFile); read again on SIGHUP with keyFile and clientCaFile: new connections get "
     "the new files, open ones keep theirs, files that do not load keep the ones before",
     NULL, check_cert},
    {"ingest.tls.keyFile", SETTING_STRING, F(tls_key_file), "", 0, 0,
     "PEM private key (unencrypted) of ingest.tls.certFile; read again on SIGHUP", NULL, check_key},
    {"ingest.tls.clientCaFile", SETTING_STRING, F(tls_client_ca_file), "", 0, 0,
     "PEM CAs a client certificate must chain to (the mesh root of `outriderctl ca init`); set, ingest "
     "clients without one are refused in the TLS handshake (mutual TLS); read again on SIGHUP (turning mutual TLS on "
     "or off needs a restart)",
     NULL, check_cert},
    {"ingest.tls.clientIds", SETTING_LIST, F(tls_client_ids), "", 0, 0,
     "SPIFFE ids a client certificate may carry to send (spiffe://cluster.local/ns/shop/sa/otel), or prefixes "
     "ending in / (spiffe://cluster.local/ns/shop/: a namespace); others get 403; empty: any certificate from "
     "ingest.tls.clientCaFile"},
    {"ingest.auth.tokens", SETTING_STRING, F(auth_tokens), "", 0, 0,
     "file of bearer tokens, one a line: TOKEN [NAME] (# comments); ingest requests without "
     "\"Authorization: Bearer TOKEN\" of one get 401; read again on SIGHUP (a bad file keeps the tokens before); "
     "empty: no token needed",
     NULL, check_tokens},
    {"server.threads", SETTING_UINT, F(threads), "2", 1, 256, "HTTP worker threads per listener"},
    {"server.maxConcurrentRequests", SETTING_UINT, F(max_concurrent_requests), "1024", 1, 1000000,
     "connections served at once per listener"},
    {"log.level", SETTING_STRING, F(log_level), "info", 0, 0, "debug, info, warn or error"},
    {"store.maxSpans", SETTING_UINT, F(max_spans), "1000000", 1, 0,
     "spans kept in memory; past it the oldest traces are evicted"},
    {"store.maxBytes", SETTING_BYTES, F(max_store_bytes), "512MiB", 1024 * 1024, 0,
     "memory the trace store may use; past it the oldest traces are evicted"},
    {"store.maxSpansPerTrace", SETTING_UINT, F(max_trace_spans), "100000", 0, UINT32_MAX,
     "spans kept in one trace; later spans of a bigger trace are dropped and counted (0 = no cap)"},
    {"store.preTouch", SETTING_BOOL, F(store_pretouch), "false", 0, 0,
     "map and write store.maxBytes of span memory at start (it is resident from then on), so ingest never waits "
     "for the kernel to zero fresh pages; as the JVM's AlwaysPreTouch"},
    {"store.strictTraceId", SETTING_BOOL, F(strict_trace_id), "true", 0, 0,
     "a 128-bit trace id matches only itself (false: also its lower 64 bits), as Zipkin's STRICT_TRACE_ID"},
    {"store.autocompleteKeys", SETTING_LIST, F(autocomplete_keys), "http.method,http.status_code,response_flags,error",
     0, 0, "span tag keys whose values /api/v2/autocompleteValues serves, as Zipkin's AUTOCOMPLETE_KEYS"},
    {"query.lookback", SETTING_DURATION, F(default_lookback_ms), "1d", 1, 0,
     "default lookback of /api/v2/traces and /dependencies, as Zipkin's QUERY_LOOKBACK"},
    {"query.peers", SETTING_LIST, F(query_peers), "", 0, 0,
     "the query role of a scaled-out collector: the store members' Zipkin ports, each HOST:PORT ([::1]:9411 for "
     "IPv6) or dns+NAME:PORT (every address NAME resolves to, as a headless Service gives them); the Zipkin API "
     "is then answered by asking every member and merging; empty: from the local store"},
    {"query.timeout", SETTING_DURATION, F(query_timeout_ms), "5s", 1, 0,
     "a store member that has not answered whole within this is left out of the answer"},
    {"query.refreshInterval", SETTING_DURATION, F(query_refresh_ms), "30s", 1000, 0,
     "how often dns+NAME:PORT peers are resolved again"},
    {"query.maxResponseBytes", SETTING_BYTES, F(query_max_response_bytes), "64MiB", 1024, 0,
     "a store member's answer larger than this is left out of the answer (counted as too_large)"},
    {"limits.maxBodyBytes", SETTING_BYTES, F(max_body_bytes), "16MiB", 1024, 0,
     "largest request body as sent (compressed); more gets 413"},
    {"limits.maxDecodedBytes", SETTING_BYTES, F(max_decoded_bytes), "64MiB", 1024, 0,
     "largest request body after decompression; more gets 413 without allocating it"},
    {"limits.maxSpansPerRequest", SETTING_UINT, F(max_spans_per_request), "100000", 1, 0,
     "spans in one request; more are rejected (OTLP: partial success, Zipkin: 400)"},
    {"limits.maxTagsPerSpan", SETTING_UINT, F(max_tags_per_span), "256", 1, 65535, "tags (attributes) per span"},
    {"limits.maxTagValueBytes", SETTING_BYTES, F(max_tag_value_bytes), "64KiB", 16, 16 * 1024 * 1024,
     "longest tag value; longer values are truncated"},
    {"limits.maxJsonDepth", SETTING_UINT, F(max_json_depth), "32", 4, 1024, "deepest JSON nesting accepted"},
    {"limits.memoryLimit", SETTING_BYTES, F(memory_limit_bytes), "2GiB", 16 * 1024 * 1024, 0,
     "resident memory above which ingest answers 503 with Retry-After"},
    {"limits.retryAfter", SETTING_DURATION, F(retry_after_ms), "5s", 1000, 3600000,
     "Retry-After sent with 503 and 429 (rounded to seconds)"},
    {"limits.lingerTime", SETTING_DURATION, F(linger_time_ms), "30s", 0, 0,
     "a connection closed while its client may still be sending (after an early 413, 431, 414 or 400) first "
     "reads and drops input this long at most, so the client gets to read the answer (0 = close at once)"},
    {"limits.lingerTimeout", SETTING_DURATION, F(linger_timeout_ms), "5s", 1, 0,
     "a lingering connection closes sooner when nothing arrives for this long"},
    {"limits.lingerBytes", SETTING_BYTES, F(linger_bytes), "64MiB", 1, 0,
     "a lingering connection closes after reading this much"},
    {"kafka.brokers", SETTING_STRING, F(kafka_brokers), "", 0, 0,
     "Kafka bootstrap brokers, comma-separated HOST:PORT; empty turns Kafka off"},
    {"kafka.spans.topic", SETTING_STRING, F(kafka_spans_topic), "zipkin", 0, 0,
     "topic of the spans, one message per trace keyed by trace id"},
    {"kafka.spans.encoding", SETTING_STRING, F(kafka_spans_encoding), "json", 0, 0,
     "json (a Zipkin v2 span list, as Zipkin's Kafka collector reads), proto3 (Zipkin's ListOfSpans) or otlp "
     "(ExportTraceServiceRequest, as the OpenTelemetry Collector's Kafka receiver reads with otlp_proto)",
     "json|proto3|otlp"},
    {"kafka.spans.batch", SETTING_BOOL, F(kafka_spans_batch), "true", 0, 0,
     "true: the traces of one ingest request that hash to the same partition share a message, keyed by the first "
     "trace's id (a trace still stays in one partition; far cheaper than a message per trace); false: one message "
     "per trace, keyed by its id"},
    {"kafka.spans.maxMessageBytes", SETTING_BYTES, F(kafka_spans_max_message_bytes), "900KB", 1024, 0,
     "a batched message is cut before this size (keep it under the producer's message.max.bytes and the "
     "topic's max.message.bytes)"},
    {"kafka.logs.topic", SETTING_STRING, F(kafka_logs_topic), "outrider-access-logs", 0, 0,
     "topic of the access logs (and other OTLP log records)"},
    {"kafka.metrics.topic", SETTING_STRING, F(kafka_metrics_topic), "outrider-metrics", 0, 0,
     "topic of metric points, published by role ingest (one OTLP ExportMetricsServiceRequest per point, keyed by "
     "series identity) and read by role store"},
    {"kafka.logs.encoding", SETTING_STRING, F(kafka_logs_encoding), "json", 0, 0,
     "json (one object per record) or otlp (one ExportLogsServiceRequest per ingest request)", "json|otlp"},
    {"kafka.producer", SETTING_MAP, F(kafka_producer),
     "compression.type=zstd,compression.level=1,acks=all,enable.idempotence=true", 0, 0,
     "librdkafka producer properties, passed through (kafka.producer.linger.ms=5; TLS and SASL too); a key set "
     "replaces its default"},
    {"kafka.queue.maxBytes", SETTING_BYTES, F(kafka_queue_max_bytes), "256MiB", 1024 * 1024, 0,
     "bytes the producer queue holds while brokers are slow or away; messages past it are dropped and counted"},
    {"kafka.queue.maxMessages", SETTING_UINT, F(kafka_queue_max_messages), "1000000", 1, 10000000,
     "messages the producer queue holds; past it they are dropped and counted"},
    {"kafka.drainTimeout", SETTING_DURATION, F(kafka_drain_timeout_ms), "10s", 0, 0,
     "on shutdown, how long queued messages may take to be sent; the rest is counted as failed and logged"},
    {"kafka.unhealthyAfter", SETTING_DURATION, F(kafka_unhealthy_after_ms), "30s", 0, 0,
     "/health shows Kafka DOWN once no broker has been reachable this long"},
    {"kafka.consume.topics", SETTING_LIST, F(kafka_consume_topics), "", 0, 0,
     "topics whose spans the collector reads into its store as a member of kafka.consume.group, as Zipkin's "
     "Kafka collector does; empty: none"},
    {"kafka.consume.group", SETTING_STRING, F(kafka_consume_group), "outrider-collector", 0, 0,
     "consumer group of kafka.consume.topics: members share the partitions"},
    {"kafka.consume.encoding", SETTING_STRING, F(kafka_consume_encoding), "json", 0, 0,
     "json (Zipkin v2 JSON lists, or proto3 ListOfSpans told apart per message, as Zipkin reads them) or otlp "
     "(ExportTraceServiceRequest)",
     "json|otlp"},
    {"kafka.consume.replay", SETTING_BOOL, F(kafka_consume_replay), "false", 0, 0,
     "the store role of a scaled-out collector: each partition assigned is read from its beginning (the topic's "
     "retention is the trace window) and a revoked partition's traces are dropped, so every trace is held by the "
     "one member that owns its partition; offsets are not committed"},
    {"kafka.consumer", SETTING_MAP, F(kafka_consumer), "", 0, 0,
     "librdkafka consumer properties, passed through (TLS, SASL, fetch sizes)"},
    {"metrics.seriesTtl", SETTING_DURATION, F(metric_series_ttl_ms), "5m", 1000, 0,
     "OTLP metric series not updated for this long stop being exported"},
    {"metrics.maxSeries", SETTING_UINT, F(max_metric_series), "200000", 1, 0,
     "most metric series kept; points of new series past it are rejected, counted and logged"},
    {"metrics.maxSeriesPerMetric", SETTING_UINT, F(max_metric_series_per_metric), "100000", 0, UINT32_MAX,
     "most series of one metric (a label that explodes stays within it); past it its new series are rejected, "
     "counted (reason metric_max_series) and logged; 0 = no limit"},
    {"mesh.zipkinUi", SETTING_STRING, F(mesh_zipkin_ui), "/zipkin/", 0, 0,
     "the Zipkin UI (zipkin-lens) that /mesh links each edge to, with its search filled in; relative to the "
     "collector, or a full URL; empty: the links go to the collector's /api/v2/traces"},
    {"mesh.maxNodes", SETTING_UINT, F(mesh_max_nodes), "200", 1, 100000,
     "services in one /api/mesh answer; past it the least busy are left out and the answer says truncated"},
    {"mesh.maxEdges", SETTING_UINT, F(mesh_max_edges), "500", 1, 1000000,
     "calls in one /api/mesh answer; past it the least busy are left out and the answer says truncated"},
    {"mesh.maxRows", SETTING_UINT, F(mesh_max_rows), "8192", 1, 1048576,
     "source/destination/version rows the service graph's history keeps; rows past it are counted as dropped"},
    {"mesh.maxSeries", SETTING_UINT, F(mesh_max_series), "65536", 1, 16777216,
     "istio_* series the service graph's history follows (histograms at most half of them); series past it are "
     "counted as dropped"},
    {"remoteWrite.url", SETTING_STRING, F(remote_write_url), "", 0, 0,
     "Prometheus remote write 1.0 receiver (Prometheus /api/v1/write, Mimir, Thanos receive) the metric store is "
     "pushed to (roles all and store); empty turns remote write off"},
    {"remoteWrite.interval", SETTING_DURATION, F(remote_write_interval_ms), "15s", 100, 0,
     "how often every series of the metric store is pushed, stamped with the push time"},
    {"remoteWrite.headers", SETTING_MAP, F(remote_write_headers), "", 0, 0,
     "extra HTTP headers of every push (remoteWrite.headers.X-Scope-OrgID=tenant); the protocol's own and "
     "Authorization are refused"},
    {"remoteWrite.basicAuth.username", SETTING_STRING, F(remote_write_username), "", 0, 0,
     "HTTP basic authentication user"},
    {"remoteWrite.basicAuth.password", SETTING_STRING, F(remote_write_password), "", 0, 0,
     "HTTP basic authentication password"},
    {"remoteWrite.bearerToken", SETTING_STRING, F(remote_write_bearer_token), "", 0, 0,
     "sent as Authorization: Bearer (not together with basicAuth)"},
    {"remoteWrite.tls.caFile", SETTING_STRING, F(remote_write_ca_file), "", 0, 0,
     "PEM file of the CAs that sign the receiver's certificate (empty: the system's)"},
    {"remoteWrite.tls.certFile", SETTING_STRING, F(remote_write_cert_file), "", 0, 0,
     "PEM client certificate, with remoteWrite.tls.keyFile"},
    {"remoteWrite.tls.keyFile", SETTING_STRING, F(remote_write_key_file), "", 0, 0,
     "PEM key of the client certificate"},
    {"remoteWrite.tls.insecureSkipVerify", SETTING_BOOL, F(remote_write_insecure), "false", 0, 0,
     "do not check the receiver's certificate or name"},
    {"remoteWrite.timeout", SETTING_DURATION, F(remote_write_timeout_ms), "30s", 1, 0,
     "one request, connection included; past it the batch is retried"},
    {"remoteWrite.maxSamplesPerSend", SETTING_UINT, F(remote_write_max_samples_per_send), "2000", 1, 1000000,
     "samples per request, as Prometheus's max_samples_per_send"},
    {"remoteWrite.queue.maxSamples", SETTING_UINT, F(remote_write_queue_max_samples), "1000000", 1, 0,
     "samples waiting to be sent while the receiver is slow or away; past it the oldest batches are dropped and "
     "counted"},
    {"remoteWrite.retry.minBackoff", SETTING_DURATION, F(remote_write_min_backoff_ms), "100ms", 1, 0,
     "first wait before a batch that got no answer, a 5xx or a 429 is sent again; doubled per try"},
    {"remoteWrite.retry.maxBackoff", SETTING_DURATION, F(remote_write_max_backoff_ms), "5s", 1, 0,
     "longest wait between tries (a Retry-After answer is honoured up to 5 minutes)"},
    {"remoteWrite.drainTimeout", SETTING_DURATION, F(remote_write_drain_ms), "5s", 0, 0,
     "on shutdown, how long a last push and the queued batches may take; the rest is counted as failed"},
};

const size_t collector_settings_count = sizeof(collector_settings) / sizeof(collector_settings[0]);

__attribute__((format(printf, 5, 6))) static void check_error(const collector_config_t *cfg, settings_error_fn err,
                                                              void *ctx, const char *name, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    char msg[2048];
    snprintf(msg, sizeof(msg), "%s%s: %s", settings_where(collector_settings, collector_settings_count, cfg, name),
             name, why);
    err(ctx, msg);
}

static int set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int collector_config_check(const collector_config_t *cfg, settings_error_fn err, void *ctx)
{
    int errors = 0;
    char why[1024];
    if (set(cfg->tls_cert_file) != set(cfg->tls_key_file)) {
        const char *given = set(cfg->tls_cert_file) ? "ingest.tls.certFile" : "ingest.tls.keyFile";
        check_error(cfg, err, ctx, given, "needs %s too",
                    set(cfg->tls_cert_file) ? "ingest.tls.keyFile" : "ingest.tls.certFile");
        errors++;
    } else if (set(cfg->tls_cert_file) &&
               ingest_tls_check_pair(cfg->tls_cert_file, cfg->tls_key_file, why, sizeof(why)) != 0) {
        check_error(cfg, err, ctx, "ingest.tls.keyFile", "%s", why);
        errors++;
    }
    if (set(cfg->tls_client_ca_file) && !set(cfg->tls_cert_file)) {
        check_error(cfg, err, ctx, "ingest.tls.clientCaFile",
                    "client certificates are asked for in a TLS handshake: set ingest.tls.certFile and "
                    "ingest.tls.keyFile too");
        errors++;
    }
    if (cfg->tls_client_ids.n > 0 && !set(cfg->tls_client_ca_file)) {
        check_error(cfg, err, ctx, "ingest.tls.clientIds",
                    "the ids are those of client certificates: set ingest.tls.clientCaFile too");
        errors++;
    }
    for (size_t i = 0; i < cfg->tls_client_ids.n; i++) {
        if (ingest_auth_check_id_pattern(cfg->tls_client_ids.items[i], why, sizeof(why)) != 0) {
            check_error(cfg, err, ctx, "ingest.tls.clientIds", "item %zu: %s", i, why);
            errors++;
        }
    }
    return errors;
}

void collector_config_init(collector_config_t *cfg)
{
    *cfg = (collector_config_t){0};
    settings_defaults(collector_settings, collector_settings_count, cfg);
}

void collector_config_dispose(collector_config_t *cfg)
{
    settings_dispose(collector_settings, collector_settings_count, cfg);
}
