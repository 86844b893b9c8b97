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
#include "metric_store.h"
#include "span_store.h"
#include "log.h"
#include "xalloc.h"

struct kafka_consumer {
    collector_t *c;
    rd_kafka_t *rk;
    int otlp;
    int replay; /* kafka.consume.replay: the store role */
    int64_t *next; /* replay: per origin, the offset after the last message read; 0 = partition not held */
    uint16_t *revoked; /* replay: origins revoked at the last rebalance, dropped unless assigned back */
    size_t n_revoked;
    pthread_t thread;
    _Atomic int stop;
    _Atomic uint64_t assigned; /* partitions assigned now */
};

/*
 * The store's origin number of a partition: its topic's place in
 * kafka.consume.topics and the partition, 1..65535; 0 (not tracked) past 63
 * topics or 1023 partitions.
 */
static uint16_t origin_of(const kafka_consumer_t *k, const char *topic, int32_t partition)
{
    const setting_list_t *topics = &k->c->cfg.kafka_consume_topics;
    for (size_t i = 0; i < topics->n && i < 63; i++)
        if (strcmp(topics->items[i], topic) == 0)
            return partition >= 0 && partition < 1023 ? (uint16_t)(i * 1024 + (size_t)partition + 1) : 0;
    return 0;
}

/*
 * Rebalances. Kafka's eager protocol revokes every partition and then
 * assigns the new share. In the store role a partition kept across a
 * rebalance resumes where this member stopped (its traces and series stay:
 * no counter goes back to zero under Prometheus); a new one is read from
 * its beginning, the topic's retention being the store's window; one that
 * went to another member has its traces and series dropped, since that
 * member answers for them now.
 */
static void on_assign(kafka_consumer_t *k, rd_kafka_topic_partition_list_t *parts)
{
    size_t resumed = 0;
    for (int i = 0; i < parts->cnt && k->replay; i++) {
        uint16_t o = origin_of(k, parts->elems[i].topic, parts->elems[i].partition);
        int kept = 0;
        for (size_t r = 0; o != 0 && r < k->n_revoked; r++)
            if (k->revoked[r] == o) {
                k->revoked[r] = 0; /* assigned back: not dropped */
                kept = k->next[o] > 0;
            }
        parts->elems[i].offset = kept ? k->next[o] : RD_KAFKA_OFFSET_BEGINNING;
        resumed += (size_t)kept;
    }
    size_t traces = 0, series = 0;
    for (size_t r = 0; r < k->n_revoked; r++) {
        uint16_t o = k->revoked[r];
        if (o == 0)
            continue;
        traces += span_store_drop_origin(k->c->store, o);
        series += metric_store_drop_origin(k->c->metrics, o);
        k->next[o] = 0;
    }
    k->n_revoked = 0;
    if (k->replay)
        log_info("kafka consumer: assigned %d partitions: %zu resumed, %zu read from their beginning; %zu traces and "
                 "%zu series of partitions now elsewhere dropped",
                 parts->cnt, resumed, (size_t)parts->cnt - resumed, traces, series);
    else
        log_info("kafka consumer: assigned %d partitions", parts->cnt);
    atomic_store(&k->assigned, (uint64_t)parts->cnt);
    rd_kafka_assign(k->rk, parts);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_consumer_t *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(k, parts);
        return;
    }
    if (k->replay) { /* dropped at the next assignment unless they come back */
        k->revoked = xrealloc(k->revoked, ((size_t)parts->cnt + k->n_revoked + 1) * sizeof(*k->revoked));
        for (int i = 0; i < parts->cnt; i++)
            k->revoked[k->n_revoked++] = origin_of(k, parts->elems[i].topic, parts->elems[i].partition);
    }
    log_info("kafka consumer: revoked %d partitions", parts->cnt);
    atomic_store(&k->assigned, 0);
    rd_kafka_assign(rk, NULL);
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
            const char *topic = rd_kafka_topic_name(m->rkt);
            uint16_t origin = k->replay ? origin_of(k, topic, m->partition) : 0;
            if (origin != 0)
                k->next[origin] = m->offset + 1;
            int rc = strcmp(topic, k->c->cfg.kafka_metrics_topic) == 0
                         ? ingest_kafka_metrics(k->c, m->payload, m->len, origin, why, sizeof(why))
                         : ingest_kafka_spans(k->c, m->payload, m->len, k->otlp, origin, why, sizeof(why));
            if (rc < 0)
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
    k->replay = cfg->kafka_consume_replay;
    if (k->replay)
        k->next = xcalloc(UINT16_MAX + 1, sizeof(*k->next));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int bad = kafka_conf_set(conf, "kafka.consumer", "bootstrap.servers", cfg->kafka_brokers);
    bad |= kafka_conf_set(conf, "kafka.consumer", "group.id", cfg->kafka_consume_group);
    bad |= kafka_conf_set(conf, "kafka.consumer", "client.id", "outrider-collector");
    bad |= kafka_conf_set(conf, "kafka.consumer", "auto.offset.reset", "earliest");
    if (k->replay) /* every assignment starts from the beginning: nothing to remember */
        bad |= kafka_conf_set(conf, "kafka.consumer", "enable.auto.commit", "false");
    bad |= kafka_conf_apply(conf, "kafka.consumer", &cfg->kafka_consumer);
    char err[512];
    if (!bad) {
        rd_kafka_conf_set_opaque(conf, k);
        rd_kafka_conf_set_log_cb(conf, kafka_on_log);
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (k->rk == NULL)
            log_error("kafka consumer: %s", err);
    }
    if (k->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        free(k->next);
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
        free(k->next);
        free(k);
        return NULL;
    }
    if (pthread_create(&k->thread, NULL, consume_main, k) != 0)
        log_fatal("kafka consumer: cannot start its thread");
    int metrics = 0;
    for (size_t i = 0; i < cfg->kafka_consume_topics.n; i++)
        metrics |= strcmp(cfg->kafka_consume_topics.items[i], cfg->kafka_metrics_topic) == 0;
    log_info("kafka consumer: group %s reads spans (%s)%s from %zu topics via %s", cfg->kafka_consume_group,
             k->otlp ? "otlp" : "zipkin json or proto3", metrics ? " and metric points (otlp)" : "",
             cfg->kafka_consume_topics.n, cfg->kafka_brokers);
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
    free(k->next);
    free(k->revoked);
    free(k);
}
