/*
 * kafka: the collector's Kafka producer; see kafka.h.
 */
#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector.h"
#include "kafka_enc.h"
#include "log.h"
#include "mono.h"
#include "prom_text.h"
#include "xalloc.h"

enum { KT_SPANS = 0, KT_LOGS, KT_METRICS, KT_COUNT };
enum { KR_QUEUED = 0, KR_DELIVERED, KR_FAILED, KR_DROPPED, KR_COUNT };

static const char *const result_names[KR_COUNT] = {"queued", "delivered", "failed", "dropped"};

typedef struct topic_stats {
    prom_counter_t messages[KR_COUNT];
    prom_counter_t records[KR_COUNT]; /* spans, log records or metric points */
    prom_counter_t bytes[KR_COUNT];
    prom_histogram_t latency; /* produce call to broker acknowledgement, delivered messages */
} topic_stats_t;

struct kafka {
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic[KT_COUNT]; /* NULL: not published (metrics outside role ingest) */
    char *topic_name[KT_COUNT];
    char *brokers;
    enum kafka_span_encoding span_enc;
    int batch;                             /* kafka.spans.batch: one message per partition per request */
    size_t max_message;                    /* kafka.spans.maxMessageBytes: a batch message is cut before this */
    _Atomic uint32_t partitions[KT_COUNT]; /* per topic, from metadata; 0 = not known yet */
    enum kafka_log_encoding log_enc;
    topic_stats_t stats[KT_COUNT];
    uint64_t drain_ms, unhealthy_ms;
    pthread_t thread;
    _Atomic int stop;
    _Atomic uint64_t up_ms;         /* last time a broker was seen reachable (0 = never) */
    _Atomic uint64_t down_since_ms; /* when brokers were first seen unreachable since the last up (0 = up) */
    _Atomic uint64_t started_ms;
    _Atomic uint64_t last_delivery_ms;
    char last_error[256]; /* guarded by err_lock */
    pthread_mutex_t err_lock;
};

/* A message's opaque: its topic in the low byte, its record count above. */
static void *msg_opaque(int topic, size_t records)
{
    return (void *)(uintptr_t)((uint64_t)records << 8 | (uint64_t)topic);
}

static void count(kafka_t *k, int topic, int result, size_t records, size_t bytes)
{
    topic_stats_t *s = &k->stats[topic];
    prom_counter_add(&s->messages[result], 1);
    prom_counter_add(&s->records[result], records);
    prom_counter_add(&s->bytes[result], bytes);
}

static void set_error(kafka_t *k, const char *what)
{
    pthread_mutex_lock(&k->err_lock);
    snprintf(k->last_error, sizeof(k->last_error), "%s", what);
    pthread_mutex_unlock(&k->err_lock);
}

static void mark_up(kafka_t *k)
{
    atomic_store(&k->up_ms, mono_now_ms());
    uint64_t was = atomic_exchange(&k->down_since_ms, 0);
    if (was != 0)
        log_info("kafka: brokers %s reachable again", k->brokers);
}

static void mark_down(kafka_t *k)
{
    uint64_t zero = 0;
    if (atomic_compare_exchange_strong(&k->down_since_ms, &zero, mono_now_ms()))
        log_warn("kafka: no broker of %s is reachable; messages wait in the queue", k->brokers);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka_t *k = opaque;
    uint64_t o = (uint64_t)(uintptr_t)m->_private;
    int topic = (int)(o & 0xff);
    size_t records = (size_t)(o >> 8);
    if (topic >= KT_COUNT)
        return;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        count(k, topic, KR_DELIVERED, records, m->len);
        int64_t us = rd_kafka_message_latency(m);
        if (us >= 0)
            prom_histogram_observe(&k->stats[topic].latency, (double)us / 1e6);
        atomic_store(&k->last_delivery_ms, mono_now_ms());
        mark_up(k);
    } else {
        count(k, topic, KR_FAILED, records, m->len);
        char why[256];
        snprintf(why, sizeof(why), "delivery to %s failed: %s", k->topic_name[topic], rd_kafka_err2str(m->err));
        set_error(k, why);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    kafka_t *k = opaque;
    set_error(k, reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        mark_down(k);
    else if (err == RD_KAFKA_RESP_ERR__FATAL)
        log_error("kafka: fatal producer error: %s", reason);
    else
        log_debug("kafka: %s", reason);
}

void kafka_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const char *who = rd_kafka_type(rk) == RD_KAFKA_CONSUMER ? "kafka consumer" : "kafka";
    if (level <= 4)
        log_warn("%s: %s: %s", who, fac, buf);
    else
        log_debug("%s: %s: %s", who, fac, buf);
}

/*
 * Delivery reports and the brokers' reachability. With no recent delivery
 * a metadata request (bounded at one second, at most every two) tells
 * whether a broker answers.
 */
/* A topic's partition count, for messages grouped by partition (a count that changes moves keys, as in Kafka). */
static void refresh_partitions(kafka_t *k, int t)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(k->rk, 0, k->topic[t], &md, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR || md == NULL)
        return;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0) {
        uint32_t n = (uint32_t)md->topics[0].partition_cnt;
        if (atomic_exchange(&k->partitions[t], n) != n)
            log_info("kafka: %s has %u partitions", k->topic_name[t], n);
    }
    rd_kafka_metadata_destroy(md);
}

static void *kafka_main(void *arg)
{
    kafka_t *k = arg;
    uint64_t last_probe = 0, last_parts = 0;
    while (!atomic_load(&k->stop)) {
        rd_kafka_poll(k->rk, 100);
        uint64_t now = mono_now_ms();
        int want[KT_COUNT] = {k->batch, 0, k->topic[KT_METRICS] != NULL};
        if (now - last_parts >= (atomic_load(&k->partitions[KT_SPANS]) ? 30000u : 1000u)) {
            last_parts = now;
            for (int t = 0; t < KT_COUNT; t++)
                if (want[t])
                    refresh_partitions(k, t);
        }
        if (now - atomic_load(&k->last_delivery_ms) < 2000 || now - last_probe < 2000)
            continue;
        last_probe = now;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 0, NULL, &md, 1000);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md != NULL && md->broker_cnt > 0) {
            mark_up(k);
        } else {
            mark_down(k);
            set_error(k, e == RD_KAFKA_RESP_ERR_NO_ERROR ? "no brokers in metadata" : rd_kafka_err2str(e));
        }
        if (md != NULL)
            rd_kafka_metadata_destroy(md);
    }
    return NULL;
}

int kafka_conf_set(rd_kafka_conf_t *conf, const char *what, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        log_error("%s.%s=%s: %s", what, key, value, err);
        return -1;
    }
    return 0;
}

int kafka_conf_apply(rd_kafka_conf_t *conf, const char *what, const setting_list_t *props)
{
    int bad = 0;
    for (size_t i = 0; i < props->n; i++) { /* "key=value", checked by the settings loader */
        char *kv = xstrdup(props->items[i]);
        char *eq = strchr(kv, '=');
        if (eq != NULL) {
            *eq = '\0';
            bad |= kafka_conf_set(conf, what, kv, eq + 1);
        }
        free(kv);
    }
    return bad;
}

kafka_t *kafka_start(const collector_config_t *cfg)
{
    int se = kafka_span_encoding_parse(cfg->kafka_spans_encoding);
    int le = kafka_log_encoding_parse(cfg->kafka_logs_encoding);
    if (se < 0) {
        log_error("kafka.spans.encoding: \"%s\" is not one of json, proto3, otlp", cfg->kafka_spans_encoding);
        return NULL;
    }
    if (le < 0) {
        log_error("kafka.logs.encoding: \"%s\" is not one of json, otlp", cfg->kafka_logs_encoding);
        return NULL;
    }
    kafka_t *k = xcalloc(1, sizeof(*k));
    k->span_enc = (enum kafka_span_encoding)se;
    k->log_enc = (enum kafka_log_encoding)le;
    k->batch = cfg->kafka_spans_batch;
    k->max_message = cfg->kafka_spans_max_message_bytes;
    k->drain_ms = cfg->kafka_drain_timeout_ms;
    k->unhealthy_ms = cfg->kafka_unhealthy_after_ms;
    k->brokers = xstrdup(cfg->kafka_brokers);
    k->topic_name[KT_SPANS] = xstrdup(cfg->kafka_spans_topic);
    k->topic_name[KT_LOGS] = xstrdup(cfg->kafka_logs_topic);
    k->topic_name[KT_METRICS] = xstrdup(cfg->kafka_metrics_topic);
    pthread_mutex_init(&k->err_lock, NULL);
    atomic_store(&k->started_ms, mono_now_ms());
    for (int t = 0; t < KT_COUNT; t++)
        prom_histogram_init(&k->stats[t].latency, prom_latency_bounds_seconds, PROM_LATENCY_BOUNDS_N);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32];
    int bad = kafka_conf_set(conf, "kafka.producer", "bootstrap.servers", cfg->kafka_brokers);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)(cfg->kafka_queue_max_bytes / 1024u));
    bad |= kafka_conf_set(conf, "kafka.producer", "queue.buffering.max.kbytes", num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)cfg->kafka_queue_max_messages);
    bad |= kafka_conf_set(conf, "kafka.producer", "queue.buffering.max.messages", num);
    bad |= kafka_conf_set(conf, "kafka.producer", "client.id", "outrider-collector");
    /* keyed messages go where Kafka's Java client puts them, as kafka.spans.batch computes it */
    bad |= kafka_conf_set(conf, "kafka.producer", "partitioner", "murmur2_random");
    bad |= kafka_conf_apply(conf, "kafka.producer", &cfg->kafka_producer);
    if (bad) {
        rd_kafka_conf_destroy(conf);
        kafka_stop(k);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, kafka_on_log);
    char err[512];
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (k->rk == NULL) {
        log_error("kafka: cannot create the producer: %s", err);
        rd_kafka_conf_destroy(conf);
        kafka_stop(k);
        return NULL;
    }
    for (int t = 0; t < KT_COUNT; t++)
        if (t != KT_METRICS || cfg->role_id == ROLE_INGEST)
            k->topic[t] = rd_kafka_topic_new(k->rk, k->topic_name[t], NULL);
    if (pthread_create(&k->thread, NULL, kafka_main, k) != 0)
        log_fatal("kafka: cannot start its thread");
    log_info("kafka: producing spans to %s (%s)%s%s and access logs to %s (%s) via %s", k->topic_name[KT_SPANS],
             cfg->kafka_spans_encoding, k->topic[KT_METRICS] ? ", metric points to " : "",
             k->topic[KT_METRICS] ? k->topic_name[KT_METRICS] : "", k->topic_name[KT_LOGS], cfg->kafka_logs_encoding,
             k->brokers);
    return k;
}

/* Hand one message to librdkafka (copied) for partition (RD_KAFKA_PARTITION_UA: its partitioner picks);
 * counts it queued or dropped. */
static void produce_to(kafka_t *k, int topic, int32_t partition, const buf_t *key, const buf_t *value, size_t records)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->rk, RD_KAFKA_V_RKT(k->topic[topic]), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key->len ? key->data : NULL, key->len),
        RD_KAFKA_V_VALUE(value->data, value->len), RD_KAFKA_V_OPAQUE(msg_opaque(topic, records)), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        count(k, topic, KR_QUEUED, records, value->len);
        return;
    }
    count(k, topic, KR_DROPPED, records, value->len);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        char why[256];
        snprintf(why, sizeof(why), "produce to %s: %s", k->topic_name[topic], rd_kafka_err2str(e));
        set_error(k, why);
    }
}

static void produce(kafka_t *k, int topic, const buf_t *key, const buf_t *value, size_t records)
{
    produce_to(k, topic, RD_KAFKA_PARTITION_UA, key, value, records);
}

/* What publish_items sends: n items (traces, metric points), each with a key and an encoding that joins a message. */
typedef struct kafka_items {
    int topic;
    size_t n;
    const void *ctx;
    void (*key)(const void *ctx, size_t i, buf_t *out);
    size_t (*add)(const void *ctx, size_t i, kafka_scratch_t *sc); /* append item i to sc->value; its records */
    void (*end)(const void *ctx, buf_t *out);                      /* close a message; NULL: nothing to do */
} kafka_items_t;

/*
 * Publish items. Once the topic's partition count is known, the items that
 * hash to one partition go in one message (cut before
 * kafka.spans.maxMessageBytes), keyed by the first one's key: per message,
 * librdkafka's cost and the broker's are those of one item, and messages
 * of a few spans made it most of the export's cost (docs/benchmarks.md).
 * Before that, one message per item, which librdkafka's murmur2 partitioner
 * sends to the same partition.
 */
static void publish_items(kafka_t *k, uint32_t np, const kafka_items_t *it, arena_t *a, kafka_scratch_t *sc)
{
    if (np == 0) {
        for (size_t i = 0; i < it->n; i++) {
            sc->key.len = sc->value.len = 0;
            it->key(it->ctx, i, &sc->key);
            size_t records = it->add(it->ctx, i, sc);
            if (it->end != NULL)
                it->end(it->ctx, &sc->value);
            produce(k, it->topic, &sc->key, &sc->value, records);
        }
        return;
    }
    size_t n = it->n ? it->n : 1;
    uint32_t *part = arena_alloc(a, n * sizeof(*part));
    uint32_t *count = arena_alloc(a, ((size_t)np + 1) * sizeof(*count));
    size_t *order = arena_alloc(a, n * sizeof(*order));
    memset(count, 0, ((size_t)np + 1) * sizeof(*count));
    for (size_t i = 0; i < it->n; i++) {
        sc->key.len = 0;
        it->key(it->ctx, i, &sc->key);
        part[i] = kafka_partition_of(sc->key.data, sc->key.len, np);
        count[part[i] + 1]++;
    }
    for (uint32_t p = 0; p < np; p++)
        count[p + 1] += count[p];
    for (size_t i = 0; i < it->n; i++) /* counting sort: items by partition, in arrival order within */
        order[count[part[i]]++] = i;
    size_t i = 0;
    while (i < it->n) {
        uint32_t p = part[order[i]];
        sc->key.len = sc->value.len = 0;
        it->key(it->ctx, order[i], &sc->key);
        size_t records = 0;
        for (; i < it->n && part[order[i]] == p; i++) {
            size_t before = sc->value.len, r = it->add(it->ctx, order[i], sc);
            if (sc->value.len > k->max_message && records > 0) {
                sc->value.len = before; /* this item starts the next message */
                break;
            }
            records += r;
        }
        if (it->end != NULL)
            it->end(it->ctx, &sc->value);
        produce_to(k, it->topic, (int32_t)p, &sc->key, &sc->value, records);
    }
}

typedef struct trace_items {
    enum kafka_span_encoding enc;
    const span_t *sorted;
    const size_t *starts;
} trace_items_t;

static void trace_key(const void *ctx, size_t i, buf_t *out)
{
    const trace_items_t *t = ctx;
    kafka_enc_trace_key(t->sorted + t->starts[i], out);
}

static size_t trace_add(const void *ctx, size_t i, kafka_scratch_t *sc)
{
    const trace_items_t *t = ctx;
    size_t cnt = t->starts[i + 1] - t->starts[i];
    kafka_enc_batch_add(t->enc, t->sorted + t->starts[i], cnt, &sc->trace, &sc->value);
    return cnt;
}

static void trace_end(const void *ctx, buf_t *out)
{
    kafka_enc_batch_end(((const trace_items_t *)ctx)->enc, out);
}

void kafka_publish_spans(kafka_t *k, const span_t *spans, size_t n, arena_t *a, kafka_scratch_t *sc)
{
    if (k == NULL || n == 0)
        return;
    span_t *sorted;
    size_t *starts;
    size_t traces = kafka_group_traces(spans, n, a, &sorted, &starts);
    trace_items_t t = {k->span_enc, sorted, starts};
    kafka_items_t it = {KT_SPANS, traces, &t, trace_key, trace_add, trace_end};
    publish_items(k, k->batch ? atomic_load(&k->partitions[KT_SPANS]) : 0, &it, a, sc);
}

typedef struct point_items {
    const char *enc;
    const size_t *starts;
    const uint64_t *ids;
} point_items_t;

static void point_key(const void *ctx, size_t i, buf_t *out)
{
    kafka_enc_series_key(((const point_items_t *)ctx)->ids[i], out);
}

static size_t point_add(const void *ctx, size_t i, kafka_scratch_t *sc)
{
    const point_items_t *p = ctx;
    buf_append(&sc->value, p->enc + p->starts[i], p->starts[i + 1] - p->starts[i]);
    return 1;
}

int kafka_publishes_metrics(const kafka_t *k)
{
    return k != NULL && k->topic[KT_METRICS] != NULL;
}

void kafka_publish_metrics(kafka_t *k, const char *enc, const size_t *starts, const uint64_t *ids, size_t n, arena_t *a,
                           kafka_scratch_t *sc)
{
    if (!kafka_publishes_metrics(k) || n == 0)
        return;
    point_items_t p = {enc, starts, ids};
    kafka_items_t it = {KT_METRICS, n, &p, point_key, point_add, NULL};
    publish_items(k, atomic_load(&k->partitions[KT_METRICS]), &it, a, sc);
}

void kafka_publish_logs(kafka_t *k, const otlp_log_t *logs, size_t n, kafka_scratch_t *sc)
{
    if (k == NULL || n == 0)
        return;
    if (k->log_enc == KAFKA_LOGS_OTLP) {
        sc->key.len = sc->value.len = 0;
        kafka_enc_logs_otlp(logs, n, &sc->value);
        produce(k, KT_LOGS, &sc->key, &sc->value, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sc->key.len = sc->value.len = 0;
        if (logs[i].trace_id_high != 0 || logs[i].trace_id_low != 0) {
            span_t s = {.trace_id_high = logs[i].trace_id_high, .trace_id_low = logs[i].trace_id_low};
            kafka_enc_trace_key(&s, &sc->key);
        }
        kafka_enc_log_json(&logs[i], &sc->value);
        produce(k, KT_LOGS, &sc->key, &sc->value, 1);
    }
}

void kafka_stop(kafka_t *k)
{
    if (k == NULL)
        return;
    if (k->rk != NULL) {
        atomic_store(&k->stop, 1);
        pthread_join(k->thread, NULL);
        int left = rd_kafka_outq_len(k->rk);
        if (left > 0) {
            log_info("kafka: flushing %d queued messages (up to %llu ms)", left, (unsigned long long)k->drain_ms);
            rd_kafka_flush(k->rk, (int)(k->drain_ms > INT32_MAX ? INT32_MAX : k->drain_ms));
        }
        left = rd_kafka_outq_len(k->rk);
        if (left > 0) {
            uint64_t before[KT_COUNT];
            for (int t = 0; t < KT_COUNT; t++)
                before[t] = prom_counter_get(&k->stats[t].records[KR_FAILED]);
            rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(k->rk, 1000); /* serves the purged messages' delivery reports */
            for (int t = 0; t < KT_COUNT; t++) {
                uint64_t lost = prom_counter_get(&k->stats[t].records[KR_FAILED]) - before[t];
                if (lost > 0)
                    log_error("kafka: %llu %s not sent to %s within kafka.drainTimeout: lost", (unsigned long long)lost,
                              t == KT_SPANS  ? "spans"
                              : t == KT_LOGS ? "log records"
                                             : "metric points",
                              k->topic_name[t]);
            }
        }
        for (int t = 0; t < KT_COUNT; t++)
            if (k->topic[t] != NULL)
                rd_kafka_topic_destroy(k->topic[t]);
        rd_kafka_destroy(k->rk);
    }
    for (int t = 0; t < KT_COUNT; t++)
        free(k->topic_name[t]);
    free(k->brokers);
    pthread_mutex_destroy(&k->err_lock);
    free(k);
}

static void write_topic_family(kafka_t *k, buf_t *b, const char *name, const char *help, size_t offset, int om)
{
    prom_write_family_header(b, name, PROM_COUNTER, help, strlen(help), NULL, om);
    for (int t = 0; t < KT_COUNT; t++) {
        for (int r = 0; r < KR_COUNT && k->topic[t] != NULL; r++) {
            metric_label_t l[2] = {
                {STR_LIT("topic"), {k->topic_name[t], (uint32_t)strlen(k->topic_name[t])}},
                {STR_LIT("result"), {result_names[r], (uint32_t)strlen(result_names[r])}},
            };
            const prom_counter_t *c = (const prom_counter_t *)((const char *)&k->stats[t] + offset) + r;
            prom_write_counter(b, name, l, 2, c, om);
        }
    }
}

void kafka_render_metrics(kafka_t *k, buf_t *b, int om)
{
    if (k == NULL)
        return;
    write_topic_family(k, b, "outrider_kafka_messages",
                       "Kafka messages by topic and result: queued (handed to the producer), then delivered, "
                       "failed (delivery error or purged at shutdown) or dropped (producer queue full)",
                       offsetof(topic_stats_t, messages), om);
    write_topic_family(k, b, "outrider_kafka_records",
                       "Spans, log records or metric points in those messages, by topic and result",
                       offsetof(topic_stats_t, records), om);
    write_topic_family(k, b, "outrider_kafka_bytes", "Message bytes (before compression) by topic and result",
                       offsetof(topic_stats_t, bytes), om);
    static const char lh[] = "Time from handing a message to the producer to the brokers' acknowledgement";
    prom_write_family_header(b, "outrider_kafka_produce_latency_seconds", PROM_HISTOGRAM, lh, sizeof(lh) - 1, NULL, om);
    for (int t = 0; t < KT_COUNT; t++) {
        if (k->topic[t] == NULL)
            continue;
        metric_label_t l = {STR_LIT("topic"), {k->topic_name[t], (uint32_t)strlen(k->topic_name[t])}};
        prom_write_histogram_cell(b, "outrider_kafka_produce_latency_seconds", &l, 1, &k->stats[t].latency, om);
    }
    static const char qh[] = "Messages waiting in the producer queue or in flight";
    prom_write_family_header(b, "outrider_kafka_queue_messages", PROM_GAUGE, qh, sizeof(qh) - 1, NULL, om);
    uint64_t waiting = 0;
    for (int t = 0; t < KT_COUNT; t++) { /* queued and not yet delivered or failed */
        const topic_stats_t *ts = &k->stats[t];
        uint64_t done = prom_counter_get(&ts->messages[KR_DELIVERED]) + prom_counter_get(&ts->messages[KR_FAILED]);
        uint64_t queued = prom_counter_get(&ts->messages[KR_QUEUED]);
        waiting += queued > done ? queued - done : 0;
    }
    prom_write_sample(b, "outrider_kafka_queue_messages", "", NULL, 0, NULL, NULL, (double)waiting, NULL, om);
    uint64_t down = atomic_load(&k->down_since_ms);
    static const char uh[] = "1 when a Kafka broker answered lately, 0 while none is reachable";
    prom_write_family_header(b, "outrider_kafka_up", PROM_GAUGE, uh, sizeof(uh) - 1, NULL, om);
    prom_write_sample(b, "outrider_kafka_up", "", NULL, 0, NULL, NULL, down == 0 && atomic_load(&k->up_ms) ? 1 : 0,
                      NULL, om);
}

int kafka_health(kafka_t *k, buf_t *b)
{
    if (k == NULL)
        return 0;
    uint64_t now = mono_now_ms();
    uint64_t down = atomic_load(&k->down_since_ms);
    uint64_t since = down ? down : (atomic_load(&k->up_ms) ? 0 : atomic_load(&k->started_ms));
    int is_down = since != 0 && now - since >= k->unhealthy_ms;
    buf_append_str(b, ",\"KafkaSender{bootstrapServers=");
    buf_append_json_escaped(b, k->brokers, strlen(k->brokers));
    buf_append_str(b, "}\":{\"status\":\"");
    buf_append_str(b, is_down ? "DOWN" : "UP");
    buf_append_char(b, '"');
    if (is_down) {
        char last[256];
        pthread_mutex_lock(&k->err_lock);
        snprintf(last, sizeof(last), "%s", k->last_error);
        pthread_mutex_unlock(&k->err_lock);
        buf_printf(b, ",\"details\":{\"error\":\"no broker reachable for %llu s",
                   (unsigned long long)((now - since) / 1000u));
        if (last[0] != '\0') {
            buf_append_str(b, ": ");
            buf_append_json_escaped(b, last, strlen(last));
        }
        buf_append_str(b, "\"}");
    }
    buf_append_char(b, '}');
    return is_down;
}
