/*
 * kafka_consume: the collector as a member of a Kafka consumer group that
 * reads spans into its store, as Zipkin's Kafka collector does; see
 * kafka_consume.h.
 */
#include "kafka_consume.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "xalloc.h"

struct kafka_consumer {
    collector_t *c;
    rd_kafka_t *rk;
    int otlp;
    pthread_t thread;
    _Atomic int stop;
    _Atomic uint64_t assigned; /* partitions assigned now */
};

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 4)
        log_warn("kafka consumer: %s: %s", fac, buf);
    else
        log_debug("kafka consumer: %s: %s", fac, buf);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_consumer_t *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info("kafka consumer: assigned %d partitions", parts->cnt);
        atomic_store(&k->assigned, (uint64_t)parts->cnt);
        rd_kafka_assign(rk, parts);
    } else {
        log_info("kafka consumer: revoked %d partitions", parts->cnt);
        atomic_store(&k->assigned, 0);
        rd_kafka_assign(rk, NULL);
    }
}

static void *consume_main(void *arg)
{
    kafka_consumer_t *k = arg;
    while (!atomic_load(&k->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            char why[256] = "";
            if (ingest_kafka_spans(k->c, m->payload, m->len, k->otlp, why, sizeof(why)) < 0)
                log_warn("kafka consumer: %s [%d] offset %lld: message dropped: %s", rd_kafka_topic_name(m->rkt),
                         (int)m->partition, (long long)m->offset, why);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_warn("kafka consumer: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

kafka_consumer_t *kafka_consumer_start(collector_t *c)
{
    const collector_config_t *cfg = &c->cfg;
    if (cfg->kafka_brokers == NULL || cfg->kafka_brokers[0] == '\0') {
        log_error("kafka.consume.topics needs kafka.brokers");
        return NULL;
    }
    kafka_consumer_t *k = xcalloc(1, sizeof(*k));
    k->c = c;
    k->otlp = strcmp(cfg->kafka_consume_encoding, "otlp") == 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int bad = kafka_conf_set(conf, "kafka.consumer", "bootstrap.servers", cfg->kafka_brokers);
    bad |= kafka_conf_set(conf, "kafka.consumer", "group.id", cfg->kafka_consume_group);
    bad |= kafka_conf_set(conf, "kafka.consumer", "client.id", "outrider-collector");
    bad |= kafka_conf_set(conf, "kafka.consumer", "auto.offset.reset", "earliest");
    bad |= kafka_conf_apply(conf, "kafka.consumer", &cfg->kafka_consumer);
    char err[512];
    if (!bad) {
        rd_kafka_conf_set_opaque(conf, k);
        rd_kafka_conf_set_log_cb(conf, on_log);
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (k->rk == NULL)
            log_error("kafka consumer: %s", err);
    }
    if (k->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        free(k);
        return NULL;
    }
    rd_kafka_poll_set_consumer(k->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)cfg->kafka_consume_topics.n);
    for (size_t i = 0; i < cfg->kafka_consume_topics.n; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->kafka_consume_topics.items[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_error("kafka consumer: cannot subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(k->rk);
        free(k);
        return NULL;
    }
    if (pthread_create(&k->thread, NULL, consume_main, k) != 0)
        log_fatal("kafka consumer: cannot start its thread");
    log_info("kafka consumer: group %s reads spans (%s) from %zu topics via %s", cfg->kafka_consume_group,
             k->otlp ? "otlp" : "zipkin json or proto3", cfg->kafka_consume_topics.n, cfg->kafka_brokers);
    return k;
}

void kafka_consumer_stop(kafka_consumer_t *k)
{
    if (k == NULL)
        return;
    atomic_store(&k->stop, 1);
    pthread_join(k->thread, NULL);
    rd_kafka_consumer_close(k->rk); /* leaves the group: its partitions go to the others at once */
    rd_kafka_destroy(k->rk);
    free(k);
}
