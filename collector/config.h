/*
 * config: every setting of outrider-collector, as one table (see
 * common/settings.h). The same names work in the YAML file (nested by dots)
 * and, for the common ones, as command-line flags.
 */
#ifndef OUTRIDER_COLLECTOR_CONFIG_H
#define OUTRIDER_COLLECTOR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "settings.h"

enum collector_role { ROLE_ALL = 0, ROLE_INGEST, ROLE_STORE, ROLE_QUERY };

typedef struct collector_config {
    char *role;                  /* all, ingest, store, query (checked by the settings table) */
    enum collector_role role_id; /* role, parsed by collector_init */
    char *zipkin_listen;         /* host:port of the Zipkin API, UI paths and /metrics */
    char *otlp_listen;           /* host:port of OTLP/HTTP */
    char *query_listen;          /* host:port of the query API, UI paths, /mesh (and /metrics); NULL: zipkin_listen */
    char *metrics_listen;        /* host:port of /metrics alone; NULL: with the query API */
    char *tls_cert_file;         /* ingest listeners' certificate (PEM); "": plain HTTP */
    char *tls_key_file;
    char *tls_client_ca_file;      /* "": no client certificates (no mutual TLS) */
    setting_list_t tls_client_ids; /* SPIFFE ids (or prefixes ending in '/') allowed to send; empty: any */
    char *auth_tokens;             /* bearer tokens file; "": no token needed */
    uint64_t threads;              /* HTTP worker threads per listener */
    char *log_level;
    uint64_t max_spans;       /* store bound, spans */
    uint64_t max_store_bytes; /* store bound, bytes */
    uint64_t max_trace_spans; /* spans kept per trace */
    int strict_trace_id;
    int store_pretouch;
    char *kafka_brokers; /* empty: Kafka off */
    char *kafka_spans_topic;
    char *kafka_spans_encoding; /* json, proto3, otlp */
    int kafka_spans_batch;
    uint64_t kafka_spans_max_message_bytes;
    char *kafka_logs_topic;
    char *kafka_metrics_topic;
    char *kafka_logs_encoding;     /* json, otlp */
    setting_list_t kafka_producer; /* librdkafka properties, "key=value" */
    uint64_t kafka_queue_max_bytes;
    uint64_t kafka_queue_max_messages;
    uint64_t kafka_drain_timeout_ms;
    uint64_t kafka_unhealthy_after_ms;
    setting_list_t kafka_consume_topics; /* empty: no consumer */
    char *kafka_consume_group;
    char *kafka_consume_encoding; /* json (Zipkin JSON or proto3), otlp */
    int kafka_consume_replay;
    setting_list_t kafka_consumer; /* librdkafka consumer properties, "key=value" */
    setting_list_t autocomplete_keys;
    uint64_t default_lookback_ms; /* Zipkin's QUERY_LOOKBACK */
    setting_list_t query_peers;   /* store members' Zipkin ports (query role); empty: answer from the local store */
    uint64_t query_timeout_ms;
    uint64_t query_refresh_ms;
    uint64_t query_max_response_bytes;
    uint64_t max_body_bytes;    /* compressed request body */
    uint64_t max_decoded_bytes; /* after decompression */
    uint64_t max_spans_per_request;
    uint64_t max_tags_per_span;
    uint64_t max_tag_value_bytes;
    uint64_t max_json_depth;
    uint64_t memory_limit_bytes; /* above this, ingest answers 503 + Retry-After */
    uint64_t retry_after_ms;
    uint64_t linger_time_ms; /* lingering close after an early answer; 0 = off */
    uint64_t linger_timeout_ms;
    uint64_t linger_bytes;
    uint64_t metric_series_ttl_ms;
    uint64_t max_metric_series;
    uint64_t max_metric_series_per_metric;
    uint64_t max_concurrent_requests;
    char *mesh_zipkin_ui; /* empty: /mesh links to the API search */
    uint64_t mesh_max_nodes;
    uint64_t mesh_max_edges;
    uint64_t mesh_max_rows;
    uint64_t mesh_max_series;
    char *remote_write_url; /* empty: remote write off */
    uint64_t remote_write_interval_ms;
    setting_list_t remote_write_headers; /* "Name=value" */
    char *remote_write_username;
    char *remote_write_password;
    char *remote_write_bearer_token;
    char *remote_write_ca_file;
    char *remote_write_cert_file;
    char *remote_write_key_file;
    int remote_write_insecure;
    uint64_t remote_write_timeout_ms;
    uint64_t remote_write_max_samples_per_send;
    uint64_t remote_write_queue_max_samples;
    uint64_t remote_write_min_backoff_ms;
    uint64_t remote_write_max_backoff_ms;
    uint64_t remote_write_drain_ms;
} collector_config_t;

extern const setting_t collector_settings[];
extern const size_t collector_settings_count;

/*
 * The second pass over a loaded configuration: what spans several settings
 * (ingest.tls.* go together, the key belongs to the certificate,
 * ingest.tls.clientIds are SPIFFE ids and need ingest.tls.clientCaFile).
 * Each error is passed to err as "file:line:col: setting: reason" (the
 * location where the setting was written; none for a flag). Returns the
 * number of errors.
 */
int collector_config_check(const collector_config_t *cfg, settings_error_fn err, void *ctx);

/* Fill cfg with defaults. Free with collector_config_dispose. */
void collector_config_init(collector_config_t *cfg);
void collector_config_dispose(collector_config_t *cfg);

#endif
