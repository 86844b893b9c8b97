/*
 * otlp: decoding of OTLP export requests (traces, metrics, logs) in both
 * OTLP/HTTP encodings, protobuf and JSON, into Outrider's models, and
 * encoding of the export responses.
 *
 * Design: trace protobuf bodies, the hot path, are read straight into
 * span_t by otlp_direct (otlp_traces_decode_proto_direct), which hands
 * whatever is unusual to otlp_wire (a specialised single-pass decoder into
 * the protobuf-c structs, also used for whole bodies it declines); metrics
 * and logs protobuf bodies are unpacked by protobuf-c with an allocator that
 * takes every byte from the caller's arena (free is a no-op). JSON bodies are
 * parsed by yajl into a small tree in the same arena and then filled into the
 * very same protobuf-c message structs, driven by the generated descriptors.
 * One mapping function per signal then turns the messages into span_t,
 * metric_point_t or otlp_log_t and hands them to a sink; for spans, its
 * rules are shared with otlp_direct (otlp_internal.h). Before protobuf-c
 * runs, a cheap wire-format scan checks the nesting depth (protobuf-c
 * recurses without a bound) and finds the offset of truncated or malformed
 * fields for the error message.
 *
 * Spans follow the OpenTelemetry -> Zipkin transformation
 * (opentelemetry-specification trace/sdk_exporters/zipkin.md) with the
 * collector-contrib translator's choices where the spec is silent:
 *   - local.service_name = resource service.name, else "unknown_service";
 *     span and service names are lowercased as Zipkin does (utf8_lower,
 *     copied only when needed);
 *   - strings: ill-formed UTF-8 in everything a span keeps (names, tag keys
 *     and values, annotations) is repaired to U+FFFD (utf8_repair), never
 *     refused, in protobuf and JSON bodies alike;
 *   - tags: resource attributes except service.name (a span attribute with
 *     the same key wins), otel.scope.name/version and the deprecated
 *     otel.library.name/version aliases, span attributes, span.kind=internal
 *     for INTERNAL spans, otel.status_code (OK/ERROR, absent when UNSET),
 *     otel.status_description (when non-empty) and, for ERROR only,
 *     error=<status message> ("" when none); an "error" attribute is dropped
 *     when the status is ERROR (replaced) and when it is false otherwise;
 *   - values: strings as sent, ints in decimal, doubles shortest round-trip,
 *     bools true/false, bytes base64, arrays and kvlists as JSON;
 *   - events -> annotations: the name alone, or "name":{attributes as JSON};
 *   - remote endpoint: service name from peer.service, and for CLIENT and
 *     PRODUCER spans the spec's fallbacks (server.address, net.peer.name,
 *     network.peer.address, server.socket.domain, server.socket.address,
 *     net.sock.peer.name, net.sock.peer.addr, peer.hostname, peer.address,
 *     db.name; address-valued ones only when they are not IP literals); IP
 *     from the first IP literal among network.peer.address,
 *     server.socket.address, net.sock.peer.addr, net.peer.ip, peer.address;
 *     port from the matching *.port attribute (network.peer.port,
 *     server.socket.port, net.sock.peer.port, net.peer.port) or, for CLIENT
 *     and PRODUCER, server.port. These attributes also stay as tags;
 *   - timestamp_us = start/1000 (absent when start is 0); duration_us =
 *     (end-start)/1000, at least 1 when end > start, absent otherwise;
 *   - trace ids must be 16 bytes and span ids 8 bytes, not all zero; an
 *     empty parent_span_id (or all zero) means root, another length rejects
 *     the span. Rejected spans are counted, not passed to the sink.
 * Links, trace_state and dropped_*_count are not mapped.
 *
 * Threading: none; the functions are reentrant.
 */
#ifndef OUTRIDER_OTLP_H
#define OUTRIDER_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "metric.h"
#include "span.h"

enum otlp_signal {
    OTLP_SIGNAL_TRACES = 0,
    OTLP_SIGNAL_METRICS,
    OTLP_SIGNAL_LOGS,
};

/* Outcome of one decode call. */
typedef struct otlp_result {
    uint64_t accepted; /* items handed to the sink */
    uint64_t rejected; /* items dropped: bad ids, unsupported types, limits */
    char error[256];   /* why the request failed (-1), or the first rejection's reason; "" if none */
} otlp_result_t;

/*
 * Per-request limits. Bodies are additionally bounded by the arena's byte
 * limit (decoding fails with -1 when it is reached).
 */
typedef struct otlp_limits {
    uint32_t max_items;      /* spans / data points / log records per request; the rest are rejected */
    uint32_t max_attributes; /* per span, event, data point or log record; extra ones are dropped, like SDKs do */
    uint32_t max_events;     /* per span; extra ones are dropped */
    uint32_t max_attribute_value_len; /* bytes of a rendered tag/label value or log body; longer values are truncated at
                                         a UTF-8 boundary */
    uint32_t max_depth; /* nesting of JSON containers and of protobuf messages; deeper bodies fail with -1 */
} otlp_limits_t;

#define OTLP_LIMITS_DEFAULT_MAX_ITEMS 100000u
#define OTLP_LIMITS_DEFAULT_MAX_ATTRIBUTES 128u
#define OTLP_LIMITS_DEFAULT_MAX_EVENTS 128u
#define OTLP_LIMITS_DEFAULT_MAX_ATTRIBUTE_VALUE_LEN 16384u
#define OTLP_LIMITS_DEFAULT_MAX_DEPTH 32u

/* Fill *l with the defaults above. */
void otlp_limits_default(otlp_limits_t *l);

/*
 * One OTLP LogRecord, flattened. A view like span_t: every pointer refers to
 * the decoder's arena or static storage, valid until the arena is reset.
 */
typedef struct otlp_log {
    uint64_t time_unix_nano;          /* 0 = unknown */
    uint64_t observed_time_unix_nano; /* 0 = unknown */
    uint32_t severity_number;         /* OTLP SeverityNumber, 0..24 */
    str_t severity_text;
    str_t body; /* strings as sent, other values rendered like tag values */
    str_t event_name;
    uint64_t trace_id_high, trace_id_low; /* both 0 = none */
    uint64_t span_id;                     /* 0 = none */
    uint32_t flags;
    str_t service_name; /* resource service.name as sent; len 0 when absent */
    str_t scope_name;
    uint32_t n_attributes;
    const span_tag_t *attributes; /* log record attributes, values rendered as text */
} otlp_log_t;

/* Receives decoded log records; return 0 to go on, -1 to stop decoding. */
typedef int (*otlp_log_sink_fn)(void *ctx, const otlp_log_t *log);

/*
 * Common contract of the six decoders below.
 *
 * data/len: the request body, already decompressed. It is not modified and
 * nothing produced points into it: it may be freed as soon as the call
 * returns. limits: NULL = otlp_limits_default(). arena: every allocation of
 * the decode comes from it (yajl keeps a few small buffers of its own, freed
 * before return). The item passed to the sink (span_t, metric_point_t,
 * otlp_log_t) is only valid during the call, but EVERYTHING it points to
 * (strings, tags, annotations, labels, bounds, exemplars) lives in the arena
 * or in static storage and stays valid until the arena is reset or disposed,
 * so a sink may keep a copy of the struct itself and use it after the decode
 * returns.
 *
 * Returns 0 when the body was decoded, possibly with rejected items (partial
 * success: res->rejected > 0 and res->error names the first reason). Returns
 * -1 when the body cannot be decoded at all ("invalid protobuf: ...",
 * "invalid JSON: ...", "nesting deeper than N"), when the arena limit is hit
 * ("request too large: decode memory limit of N bytes reached"), or when the
 * sink returns -1 (res->error is then "stopped by sink" unless the sink wrote
 * its own reason into it first, e.g. through ctx). Items given to the sink
 * before a -1 stay given. res is always fully written.
 */
int otlp_traces_decode_proto(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                             span_sink_fn sink, void *ctx, otlp_result_t *res);
int otlp_traces_decode_json(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                            span_sink_fn sink, void *ctx, otlp_result_t *res);

/*
 * otlp_traces_decode_proto for a caller that owns a scratch copy of the
 * body (a decompressed one) and wants the spans as one array: data may be
 * overwritten, and instead of a sink the accepted spans are returned in
 * *spans (an array of *n_spans in the arena; NULL/0 on -1). The spans'
 * strings point into data and the arena, so both must outlive every use
 * of the spans. Otherwise the same contract (results, limits, errors), and
 * the same spans in the same order. Tries otlp_traces_decode_proto_direct
 * first; when that declines, decodes with otlp_wire in place.
 */
int otlp_traces_decode_proto_spans(uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                   const span_t **spans, size_t *n_spans, otlp_result_t *res);

#define OTLP_DECLINED 1 /* otlp_*_decode_proto_direct: left to the general decoder */

/* What otlp_traces_decode_proto_direct did, for tests and benchmarks. */
typedef struct otlp_direct_stats {
    const char *declined;      /* why the body was declined (static text), NULL when it was not */
    uint64_t spans;            /* span messages read straight from the wire */
    uint64_t spans_handed;     /* span messages handed to otlp_wire + the struct mapping (unusual content) */
    uint64_t resources_handed; /* likewise for Resource and InstrumentationScope messages */
    uint64_t scopes_handed;
} otlp_direct_stats_t;

/*
 * The fast path of otlp_traces_decode_proto_spans: one read-only pass from
 * the wire straight to span_t. data is not modified; the spans' strings
 * point into data and the arena. Returns 0 or -1 as
 * otlp_traces_decode_proto_spans would (-1 only for the arena limit), with
 * the same spans and results; or OTLP_DECLINED, with *spans NULL/0 and res
 * to be ignored, when the body is one it leaves to the general decoder as
 * a whole: malformed (so that the error message is otlp_wire's), a
 * Resource or InstrumentationScope given twice or after the spans it
 * applies to, or limits->max_depth below 6. Unusual content inside a span,
 * resource or scope (arrays and kvlists, a value or status given twice,
 * links, events with attributes) is decoded by otlp_wire for that message
 * alone, so the rest of the body stays on the fast path. stats may be NULL.
 */
int otlp_traces_decode_proto_direct(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                    const span_t **spans, size_t *n_spans, otlp_result_t *res,
                                    otlp_direct_stats_t *stats);

/*
 * The same contract as otlp_traces_decode_proto, decoded by protobuf-c's
 * generic unpack (after a depth pre-check) instead of otlp_wire's
 * specialised decoder. Slower; kept as the reference the differential
 * tests and the fuzz target compare otlp_wire against. Error messages may
 * differ; accepted bodies and the spans produced must not.
 */
int otlp_traces_decode_proto_reference(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                       span_sink_fn sink, void *ctx, otlp_result_t *res);

/*
 * Metrics: one metric_point_t per Gauge, Sum or Histogram data point.
 * Rejected (counted, partial success): ExponentialHistogram and Summary
 * points ("not supported"), metrics without a name, number points without a
 * value, histogram points whose bucket_counts length is neither 0 nor
 * len(explicit_bounds)+1 or whose bounds are not increasing. A histogram
 * point without buckets is passed with n_bounds = 0 and one bucket holding
 * count. Exemplars with ids of the wrong length keep the value without ids.
 * Labels are the data point attributes only.
 */
int otlp_metrics_decode_proto(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                              metric_sink_fn sink, void *ctx, otlp_result_t *res);
int otlp_metrics_decode_json(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                             metric_sink_fn sink, void *ctx, otlp_result_t *res);

/*
 * Logs: one otlp_log_t per LogRecord. Records whose trace_id is neither
 * empty nor 16 bytes, or whose span_id is neither empty nor 8 bytes, are
 * rejected. otlp_logs_decode_proto tries otlp_logs_decode_proto_direct on
 * a copy of the body in the arena first (so that nothing points into
 * data), and decodes with protobuf-c when it declines; the sink sees the
 * records, and res the counts, that the protobuf-c path would give.
 */
int otlp_logs_decode_proto(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                           otlp_log_sink_fn sink, void *ctx, otlp_result_t *res);
int otlp_logs_decode_json(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                          otlp_log_sink_fn sink, void *ctx, otlp_result_t *res);

/*
 * otlp_logs_decode_proto for a caller that keeps the body until it is done
 * with the records (ingest: the decompressed body, or the request's): the
 * accepted records are returned in *logs (an array of *n_logs in the
 * arena; NULL/0 on -1), and their strings point into data and the arena,
 * so both must outlive every use of them. data is not modified. Otherwise
 * the same contract (results, limits, errors), and the same records in the
 * same order. Tries otlp_logs_decode_proto_direct first; when that
 * declines, decodes with protobuf-c.
 */
int otlp_logs_decode_proto_records(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                   const otlp_log_t **logs, size_t *n_logs, otlp_result_t *res);

/* What otlp_logs_decode_proto_direct did, for tests and benchmarks. */
typedef struct otlp_logs_direct_stats {
    const char *declined;      /* why the body was declined (static text), NULL when it was not */
    uint64_t records;          /* LogRecord messages read straight from the wire */
    uint64_t records_handed;   /* LogRecord messages handed to protobuf-c + the struct mapping (unusual content) */
    uint64_t resources_handed; /* likewise for Resource and InstrumentationScope messages */
    uint64_t scopes_handed;
} otlp_logs_direct_stats_t;

/*
 * The fast path of otlp_logs_decode_proto_records: one read-only pass from
 * the wire straight to otlp_log_t (otlp_direct_logs.c). Returns 0 or -1 as
 * otlp_logs_decode_proto_records would (-1 only for the arena limit), with
 * the same records and results; or OTLP_DECLINED, with *logs NULL/0 and
 * res to be ignored, when the body is one it leaves to protobuf-c as a
 * whole: malformed (so that the error message is the general path's), a
 * Resource or InstrumentationScope given twice or after the records it
 * applies to, or limits->max_depth below 6. Unusual content inside a log
 * record, resource or scope (array and kvlist values, a body or value given
 * twice, which protobuf-c merges) is decoded by protobuf-c for that message
 * alone, so the rest of the body stays on the fast path. stats may be NULL.
 */
int otlp_logs_decode_proto_direct(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                  const otlp_log_t **logs, size_t *n_logs, otlp_result_t *res,
                                  otlp_logs_direct_stats_t *stats);

/*
 * The same contract as otlp_logs_decode_proto, decoded by protobuf-c's
 * generic unpack (after a depth pre-check) alone: the reference the
 * differential tests and the fuzz target compare the direct path against.
 * Error messages may differ; accepted bodies and the records produced must
 * not.
 */
int otlp_logs_decode_proto_reference(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                     otlp_log_sink_fn sink, void *ctx, otlp_result_t *res);

/*
 * Append to out the Export{Trace,Metrics,Logs}ServiceResponse for res: in
 * protobuf (json = 0) or OTLP JSON (json = 1). partial_success is present
 * only when res->rejected > 0 (rejected count and res->error); otherwise the
 * message is empty (0 bytes, or "{}").
 */
void otlp_encode_response(enum otlp_signal sig, int json, const otlp_result_t *res, buf_t *out);

/*
 * Append to out a google.rpc.Status with code (a gRPC code: 3 =
 * INVALID_ARGUMENT, 8 = RESOURCE_EXHAUSTED, 14 = UNAVAILABLE...) and message
 * (NUL-terminated, may be NULL), in protobuf or JSON ({"code":3,"message":"..."}),
 * the body OTLP/HTTP sends with 4xx/5xx responses.
 */
void otlp_encode_status(int json, int code, const char *message, buf_t *out);

#endif
