/*
 * kafka: the collector's Kafka producer. Spans and access logs that ingest
 * accepted (and, in role ingest, metric points) are encoded (kafka_enc.h) and handed to librdkafka, which
 * batches, compresses and sends them in its own threads.
 *
 * Never block, never lose silently:
 *   - librdkafka's producer queue is the bounded queue between ingest and
 *     the brokers (kafka.queue.maxBytes, kafka.queue.maxMessages). While
 *     the brokers are away, messages wait there and are retried until
 *     message.timeout.ms (a kafka.producer property). A message that does
 *     not fit is dropped at once and counted: ingest never waits for Kafka.
 *   - Every message ends in exactly one of delivered, failed (its delivery
 *     report carried an error, including a purge at shutdown) or dropped
 *     (the queue was full), counted per topic in messages, records (spans
 *     or log records) and bytes; /metrics shows them beside the queue depth.
 *   - A thread of ours serves the delivery reports and watches the
 *     brokers: /health shows Kafka DOWN once no broker has been reachable
 *     for kafka.unhealthyAfter.
 *   - kafka_stop (on SIGTERM) flushes for up to kafka.drainTimeout, then
 *     purges what is left, counts it as failed and logs how much.
 *
 * All functions may be called from any thread; k == NULL (Kafka off) is a
 * no-op everywhere.
 */
#ifndef OUTRIDER_KAFKA_H
#define OUTRIDER_KAFKA_H

#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "otlp.h"
#include "span.h"

typedef struct kafka kafka_t;

/* Buffers a publishing thread reuses for message keys and values (the caller owns and frees them). */
typedef struct kafka_scratch {
    buf_t key, value;
    buf_t trace; /* one trace's encoding, before it joins a batch message */
} kafka_scratch_t;

struct rd_kafka_conf_s;
struct rd_kafka_s;

/* librdkafka's log lines (producer and consumer): errors and warnings as warnings (a broker refusing
 * connections, TLS or SASL trouble), the rest at debug. */
void kafka_on_log(const struct rd_kafka_s *rk, int level, const char *fac, const char *buf);

/* Set one librdkafka property; logs "<what>.<key>=<value>: reason" and returns -1 when it is refused. */
int kafka_conf_set(struct rd_kafka_conf_s *conf, const char *what, const char *key, const char *value);

/* Set every "key=value" item of props (a SETTING_MAP); -1 when any is refused (each logged). */
int kafka_conf_apply(struct rd_kafka_conf_s *conf, const char *what, const setting_list_t *props);

/* Start the producer from cfg (kafka.brokers non-empty); NULL with a logged error on a bad setting. */
kafka_t *kafka_start(const collector_config_t *cfg);

/* Publish spans[0..n), one message per trace, keyed by trace id. a: scratch memory for this call. */
void kafka_publish_spans(kafka_t *k, const span_t *spans, size_t n, arena_t *a, kafka_scratch_t *sc);

/* 1 when this producer publishes metric points (role ingest). */
int kafka_publishes_metrics(const kafka_t *k);

/*
 * Publish n metric points to kafka.metrics.topic (role ingest): point i is
 * enc[starts[i]..starts[i+1]) (kafka_enc_metric_otlp), keyed by its series
 * identity ids[i] (metric_store_identity, 8 bytes big-endian), so every
 * series lands in one partition; the points of one partition share a
 * message once the partition count is known. a: scratch memory for this call.
 */
void kafka_publish_metrics(kafka_t *k, const char *enc, const size_t *starts, const uint64_t *ids, size_t n,
                           arena_t *a, kafka_scratch_t *sc);

/* Publish log records[0..n). */
void kafka_publish_logs(kafka_t *k, const otlp_log_t *logs, size_t n, kafka_scratch_t *sc);

/* Flush (up to kafka.drainTimeout), purge and count the rest, and free everything. */
void kafka_stop(kafka_t *k);

/* /metrics: outrider_kafka_* series. */
void kafka_render_metrics(kafka_t *k, buf_t *out, int openmetrics);

/* /health: append the Zipkin-style component entry (",\"KafkaSender{...}\":{...}"); 1 when it is DOWN. */
int kafka_health(kafka_t *k, buf_t *out);

#endif
