/*
 * telemetry: the proxy's Istio metrics, spans and access logs, and their
 * export to an OTLP/HTTP endpoint (the collector) as protobuf + zstd.
 *
 * Threads. Each worker owns a tele_worker_t and records into it on its
 * own thread; per request it allocates nothing, takes no lock and makes no
 * system call (a request that starts a new series or meets a new
 * destination or peer allocates that once).
 *
 * Metrics are aggregated by small integer keys, not by their label
 * strings. A destination (service, name, namespace, and the endpoint's
 * version and app labels) and a peer (the labelled fields of its
 * metadata) are interned once per worker into immutable, reference-counted
 * "dims" and named by 64-bit handles (slot | generation << 32); callers
 * keep the handle where its inputs are fixed - the proxy per (runtime
 * view, cluster, endpoint) and per connection for the peer - so a request
 * costs a handle check, a hash of (destination, peer, code, flags, kind,
 * reporter) over a few integers and the histogram update. Each flush
 * interval (a timer on the worker's loop) the changed series go to the
 * exporter as a batch of (dim references, code, flags, deltas) through a
 * bounded queue (a mutex held for the hand-over, once per interval); the
 * exporter resolves them to Istio's label sets there. A worker forgets a
 * series unchanged for 10 flushes and then the dims no series names; a
 * handle of a forgotten dim stops matching (its slot's generation moved
 * on), and the caller's strings are interned again.
 *
 * Exemplars. A request whose span is reported (sampled, span reporting
 * not disabled by the Telemetry API, its record taken by the ring) also
 * leaves its trace id, span id, duration and end time in the series slot
 * it was counted in: one exemplar per series and flush interval, the most
 * recent, a 40-byte copy into the slot (tele_exemplar_t). It goes out on
 * the istio_request_duration_milliseconds data point; where series merge
 * (the exporter's label sets), the later exemplar is kept. Unsampled
 * requests leave none: their trace ids lead nowhere.
 *
 * Istio's Telemetry API (telemetry_policy.h) decides per side which
 * metrics are recorded, with which labels (tag overrides are applied on
 * the worker and in the exporter before aggregation, so removed labels
 * merge series on the wire too), the span sampling and custom tags, and
 * which requests are logged.
 *
 * Spans and access log records go through one single-producer
 * single-consumer ring per worker (telemetry_ring.h, ring_bytes, 512 KiB by
 * default): a record is one reservation, a copy of the fixed fields and of
 * the request's strings cut to their bounds, and a commit. When the ring
 * is full the record is dropped and counted; the worker never waits and
 * never wakes the exporter. The exporter polls the rings every 20 ms while
 * records come (backing off to 160 ms while none do), repairs UTF-8 and
 * turns records into tele_rec_t; they are exported with the next metric
 * batch, when max_batch_records have gathered, or a flush interval after
 * the oldest of them arrived. What it holds (metric batches and drained
 * records) is bounded by max_queue_bytes, past which more is dropped and
 * counted.
 *
 * The exporter thread (started by tele_start, at nice 19 so that it only
 * takes CPU the workers leave) adds metric deltas into the cumulative
 * table served by /stats/prometheus, encodes OTLP
 * ExportTraceServiceRequest, ExportMetricsServiceRequest (sums and
 * histograms with AGGREGATION_TEMPORALITY_DELTA, one data point per label
 * set and flush interval) and ExportLogsServiceRequest, compresses with
 * zstd and POSTs them to /v1/traces, /v1/metrics and /v1/logs on one
 * keep-alive connection. A failed export is retried with exponential
 * back-off (100 ms doubling to 10 s); while the endpoint is down the rings
 * and the queue fill and further records and batches are dropped and
 * counted.
 *
 * Metrics, with Istio's names and label sets (reporter "source" on the
 * outbound side, "destination" on the inbound side):
 *   istio_requests_total                      counter
 *   istio_request_duration_milliseconds       histogram, Envoy's default buckets
 *     0.5 1 5 10 25 50 100 250 500 1000 2500 5000 10000 30000 60000
 *     300000 600000 1800000 3600000
 *   istio_request_bytes, istio_response_bytes histograms, buckets
 *     1 10 100 1000 10000 100000 1e6 1e7 1e8 1e9
 *   istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
 *   istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total (tunnels)
 * Labels: reporter, source_workload, source_workload_namespace,
 * source_principal, source_app, source_version, source_cluster,
 * source_canonical_service, source_canonical_revision,
 * destination_workload, destination_workload_namespace,
 * destination_principal, destination_app, destination_version,
 * destination_service, destination_service_name,
 * destination_service_namespace, destination_cluster,
 * destination_canonical_service, destination_canonical_revision,
 * request_protocol, response_code, grpc_response_status, response_flags,
 * connection_security_policy. Unknown values are "unknown", as in Istio.
 * The resource of every export carries service.name (the proxy's
 * "<app>.<namespace>"), service.namespace, service.instance.id and
 * k8s-style workload attributes.
 *
 * Bounds: at most 10000 series per worker table, 20000 dims per worker and
 * 10000 label sets in the cumulative table (updates for further ones are
 * counted in outrider_proxy_telemetry_series_dropped_total); label values
 * are cut to 256 bytes, paths and span names to 1 KiB, other record
 * strings to 256 bytes, and invalid UTF-8 bytes become '?'. The encoders and the data model are
 * in telemetry_otlp.h.
 */
#ifndef OUTRIDER_PROXY_TELEMETRY_H
#define OUTRIDER_PROXY_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "http1.h" /* http1_header_t */
#include "span.h"  /* str_t */
#include "tracectx.h"

typedef struct tele tele_t;
typedef struct tele_worker tele_worker_t;
typedef struct tele_policy tele_policy_t; /* Istio's Telemetry API applied (telemetry_policy.h) */
struct tls_ctx;                           /* transport.h */

typedef struct tele_opts {
    const char *otlp_url;       /* base URL, http:// or https:// ("/v1/traces"... appended); or: */
    const char *otlp_host;      /* with otlp_port, http://HOST:PORT; both NULL: no export, no spans or logs */
    uint16_t otlp_port;         /* (metrics still feed /stats/prometheus) */
    const char *otlp_ca_file;   /* https: trusted CAs (PEM); NULL: the system's */
    uint64_t flush_interval_ms; /* > 0 */
    size_t max_queue_bytes;     /* 0 = 16 MiB: metric batches and drained records waiting in the exporter */
    size_t max_batch_records;   /* 0 = 1024: spans or logs the exporter gathers before an early export */
    size_t ring_bytes;          /* 0 = 512 KiB: each worker's ring of spans and log records (at least 4 KiB) */
    bool access_log;            /* produce access log records */
    const peer_info_t *self;    /* this proxy (copied) */
    const char *self_principal; /* its SPIFFE id (spec.identity), NULL: none (copied) */
    const char *service_name;   /* resource service.name, "<app>.<namespace>" (copied) */
    const char *instance_id;    /* resource service.instance.id (copied) */
    /*
     * The endpoint's credentials. otlp_token_file: sent as "Authorization:
     * Bearer TOKEN", the file's content without the whitespace around it,
     * read again within a second of a change and after a 401 or 403; NULL:
     * none. https only: otlp_cert_file and otlp_key_file, a client
     * certificate (mutual TLS; the endpoint is connected to again when
     * either file changes), or otlp_identity_cert, the workload certificate
     * tele_set_identity hands over.
     */
    const char *otlp_token_file;
    const char *otlp_cert_file, *otlp_key_file;
    bool otlp_identity_cert;
} tele_opts_t;

enum tele_reporter { TELE_SOURCE, TELE_DESTINATION };

/* Envoy's response flags, as bits: bit i is named tele_flag_names[i] ("UF"...). */
enum tele_flag {
    TELE_RF_NR = 1 << 0,    /* no route */
    TELE_RF_UH = 1 << 1,    /* no healthy upstream */
    TELE_RF_UF = 1 << 2,    /* upstream connection failure */
    TELE_RF_UC = 1 << 3,    /* upstream connection termination */
    TELE_RF_UT = 1 << 4,    /* upstream request timeout */
    TELE_RF_URX = 1 << 5,   /* upstream retry limit exceeded */
    TELE_RF_DC = 1 << 6,    /* downstream connection termination */
    TELE_RF_UPE = 1 << 7,   /* upstream protocol error */
    TELE_RF_DI = 1 << 8,    /* delayed by fault injection */
    TELE_RF_FI = 1 << 9,    /* aborted by fault injection */
    TELE_RF_UO = 1 << 10,   /* upstream overflow (circuit breaker) */
    TELE_RF_RL = 1 << 11,   /* rate limited */
    TELE_RF_RLSE = 1 << 12, /* the rate limit service failed */
};
#define TELE_NFLAGS 13
extern const char *const tele_flag_names[TELE_NFLAGS];

/*
 * One finished HTTP request as one proxy hop saw it. Slices are copied by
 * tele_record (only what a span or log record needs, into the worker's
 * ring). dest_handle and peer_handle are the caller's caches of the
 * interned destination and peer (see the header comment): when one holds a
 * handle still valid on this worker, the strings it stands for are not
 * read; otherwise they are interned and the new handle is written back.
 */
/* Bytes of a peer's SPIFFE id kept for telemetry (labels are cut at TELE_LABEL_MAX). */
#define TELE_PRINCIPAL_MAX 384

typedef struct tele_request {
    enum tele_reporter reporter;
    tele_policy_t *policy;         /* the configuration's Telemetry, NULL: Istio's defaults */
    const http1_header_t *headers; /* request headers, for Telemetry tag values, custom tags and log filters */
    size_t n_headers;
    uint32_t destination_port; /* the service port (destination.port), 0 when none */
    const peer_info_t *peer;   /* the other side's metadata (source on inbound, destination on outbound), or NULL */
    uint64_t *peer_handle;     /* cache for *peer and peer_principal (reset it to 0 when either changes), or NULL */
    str_t peer_principal;      /* the other side's verified SPIFFE id (mutual TLS), empty when none */
    str_t self_principal;      /* ours, when this exchange was mutual TLS; empty otherwise */
    bool mtls;                 /* the exchange's hop between sidecars was mutual TLS */
    uint64_t *dest_handle;     /* cache for the five destination_* strings below, or NULL */
    str_t destination_service; /* FQDN ("reviews.default.svc.cluster.local") */
    str_t destination_service_name;      /* "reviews" */
    str_t destination_service_namespace; /* "default" */
    str_t destination_version;           /* from the chosen endpoint's labels when the peer did not say; may be empty */
    str_t destination_app;               /* ditto */
    int response_code;                   /* 0 when no response (downstream went away) */
    uint32_t response_flags;             /* TELE_RF_* bits; 0 is Envoy's "-" */
    uint64_t request_bytes, response_bytes; /* bodies as received / sent */
    uint64_t start_unix_ns;
    uint64_t duration_ns; /* first request byte to last response byte */
    /* access log and span */
    str_t method, path, authority, user_agent, protocol; /* path with its query; protocol "HTTP/1.1" */
    str_t upstream_host;                                 /* endpoint "127.0.0.1:19081", empty when none */
    str_t upstream_cluster;                              /* cluster name */
    str_t downstream_peer;                               /* the client's address */
    str_t route_name;                                    /* VirtualService route name, may be empty */
    /* AuthorizationPolicy (inbound): Envoy's response_code_details of a denial
     * ("rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[N]]"), the deciding policy and the AUDIT
     * policy that matched ("NS/NAME"); empty when none */
    str_t response_details, authz_policy, authz_audit;
    str_t authz_dry_run, authz_dry_run_policy; /* istio.io/dry-run policies: "allowed"/"denied", and which decided */
    uint32_t attempts;                         /* upstream tries (1 + retries) */
    const trace_ctx_t *trace; /* the hop's context after tracectx_begin; a span is recorded when sampled == 1 */
    str_t span_name;          /* Envoy's: the service FQDN, ":", the port and "/" plus a "*" */
} tele_request_t;

/* A tunnelled (Upgrade) connection: counted with the istio_tcp_* metrics. */
typedef struct tele_tcp {
    enum tele_reporter reporter;
    tele_policy_t *policy;
    uint32_t destination_port;
    const peer_info_t *peer;
    str_t peer_principal, self_principal; /* as in tele_request_t */
    bool mtls;
    str_t destination_service, destination_service_name, destination_service_namespace;
    str_t destination_version, destination_app; /* outbound: the endpoint's labels, as for requests */
    bool opened;                                /* counts a connection opened */
    bool closed;                                /* counts a connection closed */
    uint64_t sent_bytes, received_bytes;        /* since the last report for this connection */
} tele_tcp_t;

/* Create the telemetry hub; NULL only when out of memory. */
tele_t *tele_create(const tele_opts_t *opts);

/*
 * With otlp_identity_cert: the sidecar's current workload certificate (its
 * ctx, identity.h: our certificate, and the mesh roots that then verify
 * the endpoint); exports wait for the first one, and the exporter's next
 * connection uses a new one. The hub takes its own reference. Any thread;
 * a no-op without otlp_identity_cert.
 */
void tele_set_identity(tele_t *t, struct tls_ctx *ctx);

/* Start the exporter thread (also when there is no endpoint: it folds metrics into /stats/prometheus). */
int tele_start(tele_t *t);

/*
 * Stop: the exporter sends what is queued (waiting at most timeout_ms for
 * the endpoint), then its thread ends. Workers must have flushed
 * (tele_worker_flush) and be gone first.
 */
void tele_stop(tele_t *t, uint64_t timeout_ms);
void tele_destroy(tele_t *t);

/* Per worker: create on the worker's thread (starts the flush timer on loop). */
tele_worker_t *tele_worker_create(tele_t *t, uv_loop_t *loop);
/* Hand everything recorded so far to the exporter now. */
void tele_worker_flush(tele_worker_t *w);
/*
 * Flush, stop the timer and free once its handle is closed (call on the
 * worker's thread; the loop must run again for the close callback, which
 * frees w).
 */
void tele_worker_destroy(tele_worker_t *w);

void tele_record(tele_worker_t *w, const tele_request_t *r);
void tele_record_tcp(tele_worker_t *w, const tele_tcp_t *r);

/*
 * The /stats/prometheus page (text format 0.0.4), appended to out: the
 * cumulative istio_* series the exporter has taken off the queue (families
 * without series are left out), and the proxy's own counters
 * (outrider_proxy_telemetry_dropped_total{signal="traces|metrics|logs"},
 * outrider_proxy_telemetry_exported_total{signal},
 * outrider_proxy_export_requests_total{signal,result="success|failure"},
 * outrider_proxy_telemetry_series_dropped_total,
 * outrider_proxy_telemetry_queue_bytes). Thread-safe.
 */
void tele_render_prometheus(tele_t *t, buf_t *out);

/*
 * Counters for tests and /stats: records dropped (and metric batches
 * dropped) because the queue was full or because tele_stop's deadline
 * passed before they were sent; export requests that failed (each retry
 * counts); exported items count what the endpoint answered 2xx to.
 */
typedef struct tele_stats {
    uint64_t spans_exported, logs_exported, metric_points_exported;
    uint64_t spans_dropped, logs_dropped, metric_batches_dropped;
    uint64_t export_failures;
    size_t queue_bytes;
} tele_stats_t;
void tele_get_stats(tele_t *t, tele_stats_t *out);

#endif
