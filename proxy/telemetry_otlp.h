/*
 * telemetry_otlp: the data model telemetry hands from the workers to the
 * exporter (label sets, metric values, request records) and the OTLP
 * protobuf encoders for it. Split out of telemetry.c so that the encoders
 * can be tested on their own; nothing here owns threads.
 *
 * Label sets are immutable once built (tele_labels_new) and hashed over
 * their values. Records keep their strings in a byte buffer beside them
 * (offsets, NUL-terminated, cut to TELE_STR_MAX / TELE_PATH_MAX bytes and
 * made valid UTF-8), so a batch of records is two allocations.
 */
#ifndef OUTRIDER_PROXY_TELEMETRY_OTLP_H
#define OUTRIDER_PROXY_TELEMETRY_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "span.h"
#include "telemetry.h"
#include "tracectx.h"

/* Istio's standard labels, in the order they are written. */
enum tele_label {
    TL_REPORTER,
    TL_SOURCE_WORKLOAD,
    TL_SOURCE_WORKLOAD_NAMESPACE,
    TL_SOURCE_PRINCIPAL,
    TL_SOURCE_APP,
    TL_SOURCE_VERSION,
    TL_SOURCE_CLUSTER,
    TL_SOURCE_CANONICAL_SERVICE,
    TL_SOURCE_CANONICAL_REVISION,
    TL_DESTINATION_WORKLOAD,
    TL_DESTINATION_WORKLOAD_NAMESPACE,
    TL_DESTINATION_PRINCIPAL,
    TL_DESTINATION_APP,
    TL_DESTINATION_VERSION,
    TL_DESTINATION_SERVICE,
    TL_DESTINATION_SERVICE_NAME,
    TL_DESTINATION_SERVICE_NAMESPACE,
    TL_DESTINATION_CLUSTER,
    TL_DESTINATION_CANONICAL_SERVICE,
    TL_DESTINATION_CANONICAL_REVISION,
    TL_REQUEST_PROTOCOL,
    TL_RESPONSE_CODE,
    TL_GRPC_RESPONSE_STATUS,
    TL_RESPONSE_FLAGS,
    TL_CONNECTION_SECURITY_POLICY,
    TELE_NLABELS
};

/* Label name of l ("source_workload"...). */
const char *tele_label_name(enum tele_label l);

enum tele_series_kind { TELE_SERIES_HTTP = 0, TELE_SERIES_TCP = 1 };

/* Whether label l is part of a series of this kind (TCP series have no response_code, grpc_response_status). */
bool tele_label_used(enum tele_series_kind kind, enum tele_label l);

/* The standard label of a series of this kind called name, or -1 (a name of its own). */
int tele_label_find(enum tele_series_kind kind, const char *name);

#define TELE_LABEL_MAX 256 /* bytes of one label value; longer values are cut */

/* "host:port", "[v6]:port" or a bare host into the host (brackets off) and the port (0 when none). */
void tele_host_port(str_t hostport, str_t *host, uint32_t *port);

/* Copy n bytes of src to dst, each byte of an invalid UTF-8 sequence replaced by '?'. */
void tele_utf8_copy(char *dst, const char *src, size_t n);

/*
 * Istio's metrics, in the order of the Telemetry API's enum (config.h's
 * proxy_tm_metric): bit m of a label set's `metrics` says it carries
 * metric m. The first four are HTTP series, the last four TCP series.
 */
enum tele_metric {
    TELE_M_REQUESTS,
    TELE_M_DURATION,
    TELE_M_REQ_BYTES,
    TELE_M_RESP_BYTES,
    TELE_M_TCP_OPENED,
    TELE_M_TCP_CLOSED,
    TELE_M_TCP_SENT,
    TELE_M_TCP_RECEIVED,
    TELE_NMETRICS
};
#define TELE_HTTP_METRICS 0x0fu /* bits of the HTTP metrics */
#define TELE_TCP_METRICS 0xf0u

#define TELE_MAX_EXTRA 8                                /* labels a Telemetry tag override adds to a metric */
#define TELE_MAX_LABELS (TELE_NLABELS + TELE_MAX_EXTRA) /* labels of one label set */

/*
 * A label set being built: names and values as slices (values not cut or
 * repaired yet). Standard names point at tele_label_name's strings, added
 * names at the Telemetry policy's.
 */
typedef struct tele_label_list {
    uint8_t kind;    /* enum tele_series_kind */
    uint8_t metrics; /* bits (1 << enum tele_metric) of the metrics this label set is for */
    uint8_t n;
    const char *name[TELE_MAX_LABELS];
    str_t v[TELE_MAX_LABELS];
} tele_label_list_t;

/* Istio's standard label set of a series of this kind from v (tele_request_labels), for every metric of it. */
void tele_label_list_standard(tele_label_list_t *out, enum tele_series_kind kind, const str_t v[TELE_NLABELS]);

/* One label set: immutable, one heap block (free with free()). */
typedef struct tele_labels {
    uint64_t hash;
    uint8_t kind;    /* enum tele_series_kind */
    uint8_t metrics; /* bits (1 << enum tele_metric): part of the identity */
    uint8_t n;
    uint16_t len[TELE_MAX_LABELS];
    const char *name[TELE_MAX_LABELS]; /* NUL-terminated: static strings, or into data for added names */
    const char *v[TELE_MAX_LABELS];    /* NUL-terminated, into data */
    size_t size;                       /* bytes used: offsetof(tele_labels_t, data) + the strings with their NULs */
    char data[];
} tele_labels_t;

/* Hash of a label set as tele_labels_new computes it (values cut to TELE_LABEL_MAX and repaired first). */
uint64_t tele_labels_hash(const tele_label_list_t *l);

/* Build a label set (values cut to TELE_LABEL_MAX, made valid UTF-8); aborts on out of memory. */
tele_labels_t *tele_labels_new(const tele_label_list_t *l, uint64_t hash);
tele_labels_t *tele_labels_dup(const tele_labels_t *l);

/* Whether l is exactly this label set. */
bool tele_labels_equal(const tele_labels_t *l, const tele_label_list_t *x);
/* Whether two label sets are the same. */
bool tele_labels_same(const tele_labels_t *a, const tele_labels_t *b);

#define TELE_DUR_BOUNDS 19
#define TELE_BYTES_BOUNDS 10
extern const double tele_duration_bounds_ms[TELE_DUR_BOUNDS];
extern const double tele_bytes_bounds[TELE_BYTES_BOUNDS];

/*
 * An exemplar of the duration histogram: one sampled request whose span
 * the proxy reported, so that a latency point links to its trace. A
 * series keeps one, the most recent (by time_unix_ns) of its interval.
 */
typedef struct tele_exemplar {
    uint64_t time_unix_ns; /* when the request ended; 0 = none */
    double value_ms;       /* its duration, as the histogram counted it */
    uint8_t trace_id[16], span_id[8];
} tele_exemplar_t;

/* The values of one series: deltas on a worker, totals in the cumulative table. Buckets are not cumulative. */
typedef struct tele_values {
    uint64_t requests;
    uint64_t dur_buckets[TELE_DUR_BOUNDS + 1];
    double dur_sum_ms;
    tele_exemplar_t dur_exemplar; /* the interval's latest traced request, or none */
    uint64_t req_buckets[TELE_BYTES_BOUNDS + 1];
    uint64_t req_sum;
    uint64_t resp_buckets[TELE_BYTES_BOUNDS + 1];
    uint64_t resp_sum;
    uint64_t tcp_opened, tcp_closed, tcp_sent, tcp_received;
} tele_values_t;

/* Add one request (duration in ns, body bytes) to v. */
void tele_values_observe(tele_values_t *v, uint64_t duration_ns, uint64_t request_bytes, uint64_t response_bytes);

/*
 * Make the request of trace_id/span_id (16 and 8 raw bytes), which ended at
 * end_unix_ns after duration_ns, v's duration exemplar unless v holds a
 * later one. Only for a request whose span is reported: an exemplar must
 * lead to a trace. A copy of 40 bytes, no allocation.
 */
void tele_values_exemplar(tele_values_t *v, const uint8_t trace_id[16], const uint8_t span_id[8], uint64_t duration_ns,
                          uint64_t end_unix_ns);

/* Add the deltas d into v (of two exemplars the later is kept). */
void tele_values_add(tele_values_t *v, const tele_values_t *d);

typedef struct tele_series {
    tele_labels_t *labels; /* owned by whoever holds the series */
    tele_values_t val;
} tele_series_t;

#define TELE_FLAGS_MAX 64 /* bytes of every flag name joined by commas, with the NUL */

/* Envoy's text of response flag bits ("UF,URX"; "-" for none) into out; returns its length. */
size_t tele_flags_format(uint32_t bits, char out[TELE_FLAGS_MAX]);

/*
 * The label values of a request as Istio sets them (see telemetry.h), as
 * slices into r, *self, *r->peer, the buffers or static strings. code_buf
 * receives the response code text, flags_buf the response flags.
 */
void tele_request_labels(const tele_request_t *r, const peer_info_t *self, char code_buf[12],
                         char flags_buf[TELE_FLAGS_MAX], str_t out[TELE_NLABELS]);

/* Same for a tunnelled connection (request_protocol "tcp"). */
void tele_tcp_labels(const tele_tcp_t *r, const peer_info_t *self, str_t out[TELE_NLABELS]);

/* ---- request records (spans and access log entries) ---- */

enum tele_rec_str {
    TS_METHOD,
    TS_PATH,
    TS_AUTHORITY,
    TS_USER_AGENT,
    TS_PROTOCOL,
    TS_UPSTREAM_HOST,
    TS_UPSTREAM_CLUSTER,
    TS_DOWNSTREAM,
    TS_ROUTE,
    TS_SPAN_NAME,
    TS_REQUEST_ID,
    TS_FLAGS,
    TS_DEST_SERVICE,
    TS_PEER_SERVICE,   /* the other side's canonical service, when known */
    TS_PEER_WORKLOAD,  /* the other side's workload, when its metadata came */
    TS_PEER_NAMESPACE, /* its namespace (outbound: the destination service's when no metadata came) */
    TS_TRACESTATE,
    TS_SOURCE_PRINCIPAL, /* SPIFFE ids from the mutual TLS handshake; empty when the hop was not */
    TS_DESTINATION_PRINCIPAL,
    TS_TAGS,        /* the span's custom tags: "name\0value\0"... */
    TS_DETAILS,     /* response_code_details (AuthorizationPolicy denials) */
    TS_AUTHZ,       /* the AuthorizationPolicy that decided, "NS/NAME" */
    TS_AUTHZ_AUDIT, /* the AUDIT policy that matched */
    TS_DRY_RUN,     /* what the istio.io/dry-run policies would have decided */
    TS_DRY_RUN_POLICY,
    TS_COUNT
};

#define TELE_STR_MAX 256   /* bytes kept of most record strings */
#define TELE_PATH_MAX 1024 /* bytes kept of the path and span name */

typedef struct tele_rec {
    uint32_t off[TS_COUNT]; /* into the strings buffer; each string is NUL-terminated there */
    uint16_t len[TS_COUNT];
    uint64_t start_ns, duration_ns;
    uint64_t request_bytes, response_bytes;
    int32_t response_code;
    uint32_t attempts;
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint8_t reporter; /* enum tele_reporter */
    bool has_span;    /* export as a span */
    bool has_log;     /* export as a log record */
    bool has_trace;   /* ids are set */
    bool has_parent;
} tele_rec_t;

/*
 * Raw records: what a worker writes into its ring for one request. The
 * fixed fields below, then the bytes of each string in enum order, cut to
 * its bound but neither repaired nor NUL-terminated (TS_FLAGS has none: it
 * is made from response_flags). Building one is copying; repairing UTF-8,
 * formatting the flags and the encoders' work happen when the exporter
 * reads it back (tele_raw_read).
 */
typedef struct tele_raw {
    uint64_t start_ns, duration_ns;
    uint64_t request_bytes, response_bytes;
    int32_t response_code;
    uint32_t attempts;
    uint32_t response_flags; /* TELE_RF_* */
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint8_t reporter;
    bool has_span, has_log, has_trace, has_parent;
    uint16_t len[TS_COUNT]; /* bytes of each string after the header */
} tele_raw_t;

/*
 * Fill *hdr from r (has_span and has_log false) and s[] with the slices to
 * copy, already cut; custom_tags is the span's TS_TAGS ("name\0value\0"...,
 * STR_NULL for none). Returns the raw record's size in bytes.
 */
size_t tele_raw_prepare(const tele_request_t *r, str_t custom_tags, tele_raw_t *hdr, str_t s[TS_COUNT]);

/* Write the raw record (hdr, then the bytes of s[]) to dst, which has tele_raw_prepare's size. */
void tele_raw_write(void *dst, const tele_raw_t *hdr, const str_t s[TS_COUNT]);

/*
 * Read a raw record of n bytes back into *rec, its strings appended to
 * strings (valid UTF-8, NUL-terminated, as tele_rec_t says). Returns 0, or
 * -1 when n does not match the record's lengths (nothing appended).
 */
int tele_raw_read(const void *raw, size_t n, tele_rec_t *rec, buf_t *strings);

/* Copy r into *rec, its strings appended to strings (bounded, see above). has_span/has_log are left false. */
void tele_rec_fill(tele_rec_t *rec, buf_t *strings, const tele_request_t *r);

/* Resource of every export. */
typedef struct tele_resource {
    const peer_info_t *self;
    const char *service_name;
    const char *instance_id;
} tele_resource_t;

/*
 * Encoders: append one serialized Export*ServiceRequest to out (not
 * compressed). *n_items (if not NULL) gets the spans, data points or log
 * records written. Return 0, or -1 when there was nothing to encode.
 * A duration histogram point carries its series' exemplar, if any
 * (Exemplar{time_unix_nano, as_double in ms, span_id, trace_id}).
 */
int tele_otlp_traces(const tele_resource_t *res, const tele_rec_t *recs, size_t n, const char *strings, buf_t *out,
                     size_t *n_items);
int tele_otlp_logs(const tele_resource_t *res, const tele_rec_t *recs, size_t n, const char *strings, buf_t *out,
                   size_t *n_items);
int tele_otlp_metrics(const tele_resource_t *res, const tele_series_t *series, size_t n, uint64_t start_ns,
                      uint64_t end_ns, buf_t *out, size_t *n_items);

/* Envoy-like one-line access log text of a record (appended to out, no newline). */
void tele_access_line(const tele_rec_t *rec, const char *strings, buf_t *out);

#endif
