/*
 * kafka_consume: the collector as a member of a Kafka consumer group
 * (kafka.consume.group) reading spans from kafka.consume.topics into its
 * store, as Zipkin's Kafka collector does: Zipkin v2 JSON lists and proto3
 * ListOfSpans (told apart per message), or with kafka.consume.encoding=otlp
 * OTLP ExportTraceServiceRequests. The topic named kafka.metrics.topic
 * carries OTLP metric points instead (role ingest publishes them, role
 * store reads them). A new group starts at the earliest offsets; offsets
 * are committed as librdkafka does by default. What is read here is stored
 * and counted (transport="kafka"), never published again.
 *
 * With kafka.consume.replay (role store) each partition is the store's
 * window: a newly assigned one is read from its beginning, one kept across
 * a rebalance resumes where it was, and the traces and series of one that
 * moved to another member are dropped.
 */
#ifndef OUTRIDER_KAFKA_CONSUME_H
#define OUTRIDER_KAFKA_CONSUME_H

#include "collector.h"

typedef struct kafka_consumer kafka_consumer_t;

/* Join the group and start reading (a thread of its own); NULL with a logged error on a bad setting. */
kafka_consumer_t *kafka_consumer_start(collector_t *c);

/* Leave the group and stop. */
void kafka_consumer_stop(kafka_consumer_t *k);

#endif
