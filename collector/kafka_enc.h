/*
 * kafka_enc: the message bodies the collector publishes to Kafka, in the
 * formats the tools that read Kafka already decode.
 *
 * Spans go one message per trace (the spans of one ingest request that
 * share a trace id), keyed by that trace id:
 *   - json:   a Zipkin v2 JSON span list, what a Zipkin server's Kafka
 *             collector consumes (zipkin_json_encode_spans);
 *   - proto3: Zipkin's ListOfSpans (zipkin_proto_encode_spans);
 *   - otlp:   an ExportTraceServiceRequest, what the OpenTelemetry
 *             Collector's Kafka receiver reads with encoding otlp_proto.
 *             One ResourceSpans per local service, service.name set; Zipkin
 *             fields map back as the OpenTelemetry Collector's Zipkin
 *             receiver maps them in: kind, start and end time, tags as
 *             string attributes, annotations as events, the remote service
 *             as peer.service, an "error" tag as status ERROR.
 *
 * Access logs go one message per record (json) or one per ingest request
 * (otlp, an ExportLogsServiceRequest).
 */
#ifndef OUTRIDER_KAFKA_ENC_H
#define OUTRIDER_KAFKA_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "metric.h"
#include "otlp.h"
#include "span.h"

enum kafka_span_encoding { KAFKA_SPANS_JSON = 0, KAFKA_SPANS_PROTO3, KAFKA_SPANS_OTLP };
enum kafka_log_encoding { KAFKA_LOGS_JSON = 0, KAFKA_LOGS_OTLP };

/* Parse an encoding name ("json", "proto3", "otlp"); -1 when unknown. */
int kafka_span_encoding_parse(const char *s);
int kafka_log_encoding_parse(const char *s);

/*
 * Group spans[0..n) by trace id into a new array in the arena: traces in the
 * order their first span came, spans of a trace in arrival order; *starts
 * gets the index where each trace begins (n_traces + 1 entries, the last is
 * n). Returns the number of traces.
 */
size_t kafka_group_traces(const span_t *spans, size_t n, arena_t *a, span_t **sorted, size_t **starts);

/* Append the message body of the spans of one trace in enc. */
void kafka_enc_spans(enum kafka_span_encoding enc, const span_t *spans, size_t n, buf_t *out);

/* Append the message key of a trace: its id as Zipkin writes it (16 or 32 lowercase hex digits). */
void kafka_enc_trace_key(const span_t *s, buf_t *out);

/*
 * The partition of n that Kafka's default partitioner (the Java client's,
 * and librdkafka's murmur2_random) gives a message with this key: murmur2
 * of the key bytes, made positive, modulo n.
 */
uint32_t kafka_partition_of(const void *key, size_t len, uint32_t n);

/*
 * Append the spans of one more trace to a message of several (kafka.spans.batch):
 * the concatenation is itself a message of the encoding (a JSON list is
 * spliced; proto3 and OTLP messages concatenate by protobuf's rules for
 * repeated fields). kafka_enc_batch_end closes a JSON list.
 */
void kafka_enc_batch_add(enum kafka_span_encoding enc, const span_t *spans, size_t n, buf_t *tmp, buf_t *out);
void kafka_enc_batch_end(enum kafka_span_encoding enc, buf_t *out);

/* Append one log record as a JSON object (see docs/kafka.md for the fields). */
void kafka_enc_log_json(const otlp_log_t *log, buf_t *out);

/* Append logs[0..n) as one ExportLogsServiceRequest (one ResourceLogs per service.name). */
void kafka_enc_logs_otlp(const otlp_log_t *logs, size_t n, buf_t *out);

/*
 * Append one metric point as a whole ExportMetricsServiceRequest (one
 * ResourceMetrics, scope outrider-collector, one Metric with one data
 * point, its labels as string attributes); the ingest role publishes these,
 * keyed by series identity. Requests concatenate into one (repeated fields),
 * so a message may carry several.
 */
void kafka_enc_metric_otlp(const metric_point_t *p, buf_t *out);

/* Append the message key of a metric series: its identity (metric_store_identity), 8 bytes big-endian. */
void kafka_enc_series_key(uint64_t id, buf_t *out);

#endif
