/*
 * ingest: the write side of the collector. One function per endpoint:
 * POST /api/v2/spans (Zipkin v2 JSON or proto3) and POST /v1/{traces,
 * metrics,logs} (OTLP/HTTP protobuf or JSON).
 *
 * Every request goes through the same steps: memory guard (503 +
 * Retry-After), content type (415), Content-Encoding and bounded
 * decompression (413/400), decoding into a per-thread arena, then one
 * store insert for the whole batch. The arena is kept per thread and reset
 * after each request so steady traffic allocates nothing per request.
 * An OTLP protobuf trace body, the hot path, is decoded from our own
 * scratch copy (the decompressed body, or a copy of an uncompressed one)
 * straight into one array of spans in the arena (otlp_direct), which
 * goes to the store as is: neither the body's strings nor the spans are
 * copied again. A protobuf logs body is read the same way into an array
 * of records (otlp_direct_logs).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "collector.h"
#include "compress.h"
#include "kafka.h"
#include "kafka_enc.h"
#include "log.h"
#include "xalloc.h"
#include "metric_store.h"
#include "otlp.h"
#include "span_store.h"
#include "zipkin_json.h"
#include "zipkin_proto.h"

/* arenas bigger than this are freed after a request instead of being kept */
#define ARENA_KEEP_BYTES (8u << 20)

static _Thread_local span_vec_t tl_spans;
static _Thread_local buf_t tl_decoded; /* decompressed body, reused across requests */
static _Thread_local arena_t tl_arena;
static _Thread_local int tl_arena_ready;
static _Thread_local kafka_scratch_t tl_kafka; /* message keys and values */

/* JSON log records, gathered for Kafka: what they point to lives in the request arena. */
typedef struct log_vec {
    otlp_log_t *items;
    size_t n, cap;
} log_vec_t;

static _Thread_local log_vec_t tl_logs;

/* Metric points encoded for Kafka (role ingest): point i is enc[starts[i]..starts[i+1]), its series ids[i]. */
typedef struct point_vec {
    buf_t enc;
    buf_t scratch, key; /* metric_store_identity's */
    size_t *starts;     /* n + 1 entries */
    uint64_t *ids;
    size_t n, cap;
} point_vec_t;

static _Thread_local point_vec_t tl_points;

static void point_vec_dispose(point_vec_t *v)
{
    buf_dispose(&v->enc);
    buf_dispose(&v->scratch);
    buf_dispose(&v->key);
    free(v->starts);
    free(v->ids);
    *v = (point_vec_t){0};
}

static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

/* Runs when an HTTP thread exits: free what the thread kept for reuse. */
static void thread_buffers_free(void *unused)
{
    (void)unused;
    arena_dispose(&tl_arena);
    buf_dispose(&tl_decoded);
    span_vec_dispose(&tl_spans);
    buf_dispose(&tl_kafka.key);
    buf_dispose(&tl_kafka.value);
    buf_dispose(&tl_kafka.trace);
    free(tl_logs.items);
    tl_logs = (log_vec_t){0};
    point_vec_dispose(&tl_points);
    tl_arena_ready = 0;
}

static void tl_key_create(void)
{
    if (pthread_key_create(&tl_key, thread_buffers_free) != 0)
        log_fatal("pthread_key_create failed");
}

static arena_t *request_arena(collector_t *c)
{
    if (!tl_arena_ready) {
        arena_init(&tl_arena, 0);
        tl_arena_ready = 1;
        pthread_once(&tl_once, tl_key_create);
        pthread_setspecific(tl_key, &tl_arena);
    }
    /* decoded structures are a few times the decoded body at most */
    tl_arena.limit = c->cfg.max_decoded_bytes * 4 + (1u << 20);
    return &tl_arena;
}

static void request_done(void)
{
    if (tl_decoded.cap > ARENA_KEEP_BYTES)
        buf_dispose(&tl_decoded);
    tl_decoded.len = 0;
    if (tl_arena.total > ARENA_KEEP_BYTES)
        arena_dispose(&tl_arena);
    else
        arena_reset(&tl_arena);
    tl_spans.n = 0;
    if (tl_spans.cap > 65536)
        span_vec_dispose(&tl_spans);
    if (tl_kafka.value.cap > ARENA_KEEP_BYTES)
        buf_dispose(&tl_kafka.value);
    if (tl_kafka.trace.cap > ARENA_KEEP_BYTES)
        buf_dispose(&tl_kafka.trace);
    tl_logs.n = 0;
    if (tl_logs.cap > 65536) {
        free(tl_logs.items);
        tl_logs = (log_vec_t){0};
    }
    tl_points.n = 0;
    tl_points.enc.len = 0;
    if (tl_points.cap > 65536 || tl_points.enc.cap > ARENA_KEEP_BYTES)
        point_vec_dispose(&tl_points);
}

/* Keep spans the store accepts (role ingest keeps none: they are published); returns how many were accepted. */
static int store_spans(collector_t *c, const span_t *spans, size_t n)
{
    if (c->cfg.role_id == ROLE_INGEST)
        return (int)n;
    return span_store_insert(c->store, spans, n, collector_now_us());
}

static void set_retry_after(collector_t *c, http_response_t *resp)
{
    snprintf(resp->retry_after, sizeof(resp->retry_after), "%llu",
             (unsigned long long)((c->cfg.retry_after_ms + 999) / 1000));
}

/* Media type without parameters, lowercased, into out. */
static void media_type(const char *ct, char *out, size_t outlen)
{
    size_t n = 0;
    if (ct != NULL) {
        while (*ct == ' ')
            ct++;
        while (ct[n] && ct[n] != ';' && ct[n] != ' ' && n + 1 < outlen) {
            out[n] = (char)(ct[n] >= 'A' && ct[n] <= 'Z' ? ct[n] + 32 : ct[n]);
            n++;
        }
    }
    out[n] = '\0';
}

/*
 * Steps shared by every ingest endpoint up to a decoded body. Returns 0 and
 * sets *body and *len (pointing into decoded or the request), or -1 with resp set.
 */
static int prepare_body(collector_t *c, collector_transport_stats_t *ts, const http_request_t *req,
                        http_response_t *resp, buf_t *decoded, const char **body, size_t *len)
{
    request_arena(c); /* registers this thread's buffers for freeing at thread exit */
    prom_counter_add(&ts->messages, 1);
    prom_counter_add(&ts->bytes, req->body_len);
    if (collector_over_memory(c)) {
        prom_counter_add(&c->memory_refusals, 1);
        prom_counter_add(&ts->messages_dropped, 1);
        set_retry_after(c, resp);
        http_respond_text(resp, 503, "collector is over its memory limit (limits.memoryLimit); retry later");
        return -1;
    }
    int codec = compress_codec_parse(req->content_encoding);
    if (codec < 0) {
        prom_counter_add(&ts->messages_dropped, 1);
        http_respond_text(resp, 415, "unsupported Content-Encoding \"%s\"; use gzip, deflate, zstd or none",
                          req->content_encoding);
        return -1;
    }
    if (codec == COMPRESS_NONE) {
        if (req->body_len > c->cfg.max_decoded_bytes) {
            prom_counter_add(&ts->messages_dropped, 1);
            http_respond_text(resp, 413, "body exceeds limits.maxDecodedBytes (%llu)",
                              (unsigned long long)c->cfg.max_decoded_bytes);
            return -1;
        }
        *body = req->body ? req->body : "";
        *len = req->body_len;
        return 0;
    }
    char err[128];
    int rc = compress_decode((enum compress_codec)codec, req->body, req->body_len, c->cfg.max_decoded_bytes, decoded,
                             err, sizeof(err));
    if (rc != COMPRESS_OK) {
        prom_counter_add(&ts->messages_dropped, 1);
        if (rc == COMPRESS_TOO_LARGE)
            http_respond_text(resp, 413, "%s body: decompressed size exceeds limits.maxDecodedBytes (%llu)",
                              compress_codec_name((enum compress_codec)codec),
                              (unsigned long long)c->cfg.max_decoded_bytes);
        else
            http_respond_text(resp, 400, "cannot decompress %s body: %s",
                              compress_codec_name((enum compress_codec)codec), err);
        return -1;
    }
    *body = decoded->data ? decoded->data : "";
    *len = decoded->len;
    return 0;
}

static void zipkin_limits_from(const collector_t *c, zipkin_limits_t *lim)
{
    *lim = (zipkin_limits_t){
        .max_spans = (uint32_t)c->cfg.max_spans_per_request,
        .max_tags = (uint32_t)c->cfg.max_tags_per_span,
        .max_tag_value_len = (uint32_t)c->cfg.max_tag_value_bytes,
        .max_depth = (uint32_t)c->cfg.max_json_depth,
    };
}

/* A Zipkin span list (JSON, or proto3 ListOfSpans) into tl_spans, within the configured limits. */
static int decode_zipkin(collector_t *c, const uint8_t *body, size_t len, int proto, arena_t *a, zipkin_result_t *res)
{
    zipkin_limits_t lim;
    zipkin_limits_from(c, &lim);
    memset(res, 0, sizeof(*res));
    return proto ? zipkin_proto_decode(body, len, a, &lim, span_vec_sink, &tl_spans, res)
                 : zipkin_json_decode((const char *)body, len, a, &lim, span_vec_sink, &tl_spans, res);
}

/*
 * OTLP protobuf spans straight from the wire into one array. The decoder
 * may write into the body when it falls back to decoding in place, so it
 * gets our scratch copy: a decompressed body already is one, anything else
 * is copied there first.
 */
static int decode_otlp_spans(const uint8_t *body, size_t len, const otlp_limits_t *lim, arena_t *a,
                             const span_t **spans, size_t *n, otlp_result_t *res)
{
    if (len > 0 && body != (const uint8_t *)tl_decoded.data) {
        tl_decoded.len = 0;
        buf_append(&tl_decoded, body, len);
    }
    return otlp_traces_decode_proto_spans((uint8_t *)tl_decoded.data, len, lim, a, spans, n, res);
}

void ingest_zipkin(collector_t *c, const http_request_t *req, http_response_t *resp)
{
    collector_transport_stats_t *ts = &c->transport[TRANSPORT_ZIPKIN_HTTP];
    const char *body;
    size_t len;
    if (prepare_body(c, ts, req, resp, &tl_decoded, &body, &len) != 0)
        goto done;

    char mt[64];
    media_type(req->content_type, mt, sizeof(mt));
    int proto;
    if (strcmp(mt, "application/x-protobuf") == 0 || strcmp(mt, "application/protobuf") == 0)
        proto = 1;
    else if (strcmp(mt, "application/json") == 0)
        proto = 0;
    else
        proto = zipkin_sniff_proto((const uint8_t *)body, len); /* as Zipkin does for other types */

    arena_t *a = request_arena(c);
    zipkin_result_t res;
    int rc = decode_zipkin(c, (const uint8_t *)body, len, proto, a, &res);
    if (rc != 0) {
        prom_counter_add(&ts->messages_dropped, 1);
        prom_counter_add(&ts->spans_dropped, tl_spans.n + res.rejected);
        http_respond_text(resp, 400, "%s", res.error[0] ? res.error : "cannot decode spans");
        goto done;
    }
    int kept = store_spans(c, tl_spans.items, tl_spans.n);
    kafka_publish_spans(c->kafka, tl_spans.items, tl_spans.n, a, &tl_kafka);
    kept = kept < 0 ? 0 : kept;
    prom_counter_add(&ts->spans, (uint64_t)kept);
    prom_counter_add(&ts->spans_dropped, res.rejected + (tl_spans.n - (size_t)kept));
    resp->status = 202;
    resp->content_type = NULL;
done:
    request_done();
}

static void otlp_limits_from(const collector_t *c, otlp_limits_t *lim);

int ingest_kafka_spans(collector_t *c, const uint8_t *data, size_t len, int otlp, uint16_t origin, char *why,
                       size_t why_len)
{
    collector_transport_stats_t *ts = &c->transport[TRANSPORT_KAFKA];
    prom_counter_add(&ts->messages, 1);
    prom_counter_add(&ts->bytes, len);
    arena_t *a = request_arena(c);
    const span_t *spans = NULL;
    size_t n = 0, rejected;
    int rc;
    if (otlp) {
        otlp_limits_t lim;
        otlp_limits_from(c, &lim);
        otlp_result_t res = {0};
        rc = decode_otlp_spans(data, len, &lim, a, &spans, &n, &res);
        rejected = res.rejected;
        snprintf(why, why_len, "%s", res.error);
    } else {
        /* as Zipkin's Kafka collector: a JSON list or a proto3 ListOfSpans, told apart by the first bytes */
        zipkin_result_t res;
        rc = decode_zipkin(c, data, len, zipkin_sniff_proto(data, len), a, &res);
        spans = tl_spans.items;
        n = tl_spans.n;
        rejected = res.rejected;
        snprintf(why, why_len, "%s", res.error);
    }
    if (rc != 0) {
        prom_counter_add(&ts->messages_dropped, 1);
        prom_counter_add(&ts->spans_dropped, n + rejected);
        if (why[0] == '\0')
            snprintf(why, why_len, "cannot decode");
        request_done();
        return -1;
    }
    int kept = span_store_insert_from(c->store, spans, n, collector_now_us(), origin);
    kept = kept < 0 ? 0 : kept;
    prom_counter_add(&ts->spans, (uint64_t)kept);
    prom_counter_add(&ts->spans_dropped, rejected + (n - (size_t)kept));
    request_done();
    return kept;
}

/* OTLP/HTTP: content type picks protobuf or JSON; answers in the same encoding. */
static int otlp_content_type(const http_request_t *req, http_response_t *resp, int *json)
{
    char mt[64];
    media_type(req->content_type, mt, sizeof(mt));
    if (strcmp(mt, "application/x-protobuf") == 0 || strcmp(mt, "application/protobuf") == 0) {
        *json = 0;
        return 0;
    }
    if (strcmp(mt, "application/json") == 0) {
        *json = 1;
        return 0;
    }
    http_respond_text(resp, 415,
                      "unsupported Content-Type \"%s\"; OTLP/HTTP takes application/x-protobuf or "
                      "application/json",
                      req->content_type ? req->content_type : "");
    return -1;
}

static void otlp_fail(http_response_t *resp, int json, int status, const char *message)
{
    resp->status = status;
    resp->content_type = json ? "application/json" : "application/x-protobuf";
    resp->body.len = 0;
    /* google.rpc.Code: INVALID_ARGUMENT 3, RESOURCE_EXHAUSTED 8, UNAVAILABLE 14 */
    int code = status == 400 ? 3 : status == 413 ? 8 : status == 503 || status == 429 ? 14 : 2;
    otlp_encode_status(json, code, message, &resp->body);
}

static void otlp_limits_from(const collector_t *c, otlp_limits_t *lim)
{
    otlp_limits_default(lim);
    lim->max_items = (uint32_t)c->cfg.max_spans_per_request;
    lim->max_attributes = (uint32_t)c->cfg.max_tags_per_span;
    lim->max_attribute_value_len = (uint32_t)c->cfg.max_tag_value_bytes;
    lim->max_depth = (uint32_t)c->cfg.max_json_depth;
}

/*
 * The common OTLP flow; decode() runs the signal's decoder and its store
 * work, returning the decoder's result. Counters are updated by the caller.
 */
typedef int (*otlp_decode_fn)(collector_t *c, const uint8_t *body, size_t len, int json, const otlp_limits_t *lim,
                              arena_t *a, otlp_result_t *res);

static int otlp_handle(collector_t *c, const http_request_t *req, http_response_t *resp, enum otlp_signal sig,
                       otlp_decode_fn decode, otlp_result_t *res)
{
    collector_transport_stats_t *ts = &c->transport[TRANSPORT_OTLP_HTTP];
    int json;
    if (otlp_content_type(req, resp, &json) != 0) {
        prom_counter_add(&ts->messages, 1);
        prom_counter_add(&ts->messages_dropped, 1);
        return -1;
    }
    const char *body;
    size_t len;
    int rc = -1;
    if (prepare_body(c, ts, req, resp, &tl_decoded, &body, &len) != 0) {
        /* keep the status and reason, but in OTLP's Status encoding */
        char msg[256];
        snprintf(msg, sizeof(msg), "%.*s", (int)(resp->body.len ? resp->body.len - 1 : 0),
                 resp->body.data ? resp->body.data : "");
        if (resp->status != 415)
            otlp_fail(resp, json, resp->status, msg);
        goto done;
    }
    otlp_limits_t lim;
    otlp_limits_from(c, &lim);
    memset(res, 0, sizeof(*res));
    if (decode(c, (const uint8_t *)body, len, json, &lim, request_arena(c), res) != 0) {
        prom_counter_add(&ts->messages_dropped, 1);
        otlp_fail(resp, json, 400, res->error[0] ? res->error : "cannot decode the request");
        goto done;
    }
    resp->status = 200;
    resp->content_type = json ? "application/json" : "application/x-protobuf";
    otlp_encode_response(sig, json, res, &resp->body);
    rc = 0;
done:
    request_done();
    return rc;
}

static int decode_traces(collector_t *c, const uint8_t *body, size_t len, int json, const otlp_limits_t *lim,
                         arena_t *a, otlp_result_t *res)
{
    const span_t *spans = tl_spans.items;
    size_t n = 0;
    int rc;
    if (!json) {
        rc = decode_otlp_spans(body, len, lim, a, &spans, &n, res);
    } else {
        rc = otlp_traces_decode_json(body, len, lim, a, span_vec_sink, &tl_spans, res);
        spans = tl_spans.items;
        n = tl_spans.n;
    }
    if (rc == 0) {
        int kept = store_spans(c, spans, n);
        kafka_publish_spans(c->kafka, spans, n, a, &tl_kafka);
        size_t dropped = n - (size_t)(kept < 0 ? 0 : kept);
        if (dropped > 0) {
            /* spans past store.maxSpansPerTrace: part of the partial success */
            res->accepted -= dropped < res->accepted ? dropped : res->accepted;
            res->rejected += dropped;
            if (res->error[0] == '\0')
                snprintf(res->error, sizeof(res->error),
                         "%zu spans dropped: their trace is over store.maxSpansPerTrace", dropped);
        }
    }
    return rc;
}

void ingest_otlp_traces(collector_t *c, const http_request_t *req, http_response_t *resp)
{
    collector_transport_stats_t *ts = &c->transport[TRANSPORT_OTLP_HTTP];
    otlp_result_t res = {0};
    if (otlp_handle(c, req, resp, OTLP_SIGNAL_TRACES, decode_traces, &res) == 0)
        prom_counter_add(&ts->spans, res.accepted);
    prom_counter_add(&ts->spans_dropped, res.rejected);
}

typedef struct metric_ctx {
    collector_t *c;
    uint16_t origin; /* the Kafka partition the points came from (role store); 0 = none */
    uint64_t now_ms;
    uint64_t rejected;
    char reason[128];
} metric_ctx_t;

/* Role ingest: check p as the store would, and encode it for Kafka with its series identity. */
static int metric_encode(collector_t *c, const metric_point_t *p, const char **why)
{
    point_vec_t *v = &tl_points;
    uint64_t id;
    if (metric_store_identity(c->metrics, p, &v->scratch, &v->key, &id, why) != 0)
        return -1;
    if (v->n + 2 > v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->starts = xrealloc(v->starts, v->cap * sizeof(*v->starts));
        v->ids = xrealloc(v->ids, v->cap * sizeof(*v->ids));
    }
    v->starts[v->n] = v->enc.len;
    v->ids[v->n++] = id;
    kafka_enc_metric_otlp(p, &v->enc);
    v->starts[v->n] = v->enc.len;
    return 0;
}

static int metric_sink(void *ctx, const metric_point_t *p)
{
    metric_ctx_t *m = ctx;
    const char *why = NULL;
    int rc = kafka_publishes_metrics(m->c->kafka) ? metric_encode(m->c, p, &why)
                                                  : metric_store_add_from(m->c->metrics, p, m->now_ms, m->origin, &why);
    if (rc != 0) {
        if (m->rejected++ == 0)
            snprintf(m->reason, sizeof(m->reason), "%.*s: %s", (int)p->name.len, p->name.ptr, why ? why : "rejected");
    }
    return 0;
}

static _Thread_local metric_ctx_t tl_metric_ctx;

/* Decode OTLP metrics into the store (origin: see metric_store_add_from), or for Kafka in role ingest. */
static int decode_metrics_from(collector_t *c, const uint8_t *body, size_t len, int json, uint16_t origin,
                               const otlp_limits_t *lim, arena_t *a, otlp_result_t *res)
{
    tl_metric_ctx = (metric_ctx_t){c, origin, collector_now_ms(), 0, ""};
    int rc = json ? otlp_metrics_decode_json(body, len, lim, a, metric_sink, &tl_metric_ctx, res)
                  : otlp_metrics_decode_proto(body, len, lim, a, metric_sink, &tl_metric_ctx, res);
    if (rc == 0)
        kafka_publish_metrics(c->kafka, tl_points.enc.data, tl_points.starts, tl_points.ids, tl_points.n, a,
                              &tl_kafka);
    if (rc == 0 && tl_metric_ctx.rejected > 0) {
        /* points the store refused are part of the partial success */
        if (res->error[0] == '\0')
            snprintf(res->error, sizeof(res->error), "%s", tl_metric_ctx.reason);
        res->accepted -= tl_metric_ctx.rejected < res->accepted ? tl_metric_ctx.rejected : res->accepted;
        res->rejected += tl_metric_ctx.rejected;
    }
    return rc;
}

static int decode_metrics(collector_t *c, const uint8_t *body, size_t len, int json, const otlp_limits_t *lim,
                          arena_t *a, otlp_result_t *res)
{
    return decode_metrics_from(c, body, len, json, 0, lim, a, res);
}

void ingest_otlp_metrics(collector_t *c, const http_request_t *req, http_response_t *resp)
{
    collector_transport_stats_t *ts = &c->transport[TRANSPORT_OTLP_HTTP];
    otlp_result_t res = {0};
    if (otlp_handle(c, req, resp, OTLP_SIGNAL_METRICS, decode_metrics, &res) == 0)
        prom_counter_add(&ts->metric_points, res.accepted);
    prom_counter_add(&ts->metric_points_dropped, res.rejected);
}

int ingest_kafka_metrics(collector_t *c, const uint8_t *data, size_t len, uint16_t origin, char *why, size_t why_len)
{
    collector_transport_stats_t *ts = &c->transport[TRANSPORT_KAFKA];
    prom_counter_add(&ts->messages, 1);
    prom_counter_add(&ts->bytes, len);
    otlp_limits_t lim;
    otlp_limits_from(c, &lim);
    otlp_result_t res = {0};
    int rc = decode_metrics_from(c, data, len, 0, origin, &lim, request_arena(c), &res);
    snprintf(why, why_len, "%s", res.error[0] ? res.error : "cannot decode");
    if (rc != 0)
        prom_counter_add(&ts->messages_dropped, 1);
    prom_counter_add(&ts->metric_points, rc == 0 ? res.accepted : 0);
    prom_counter_add(&ts->metric_points_dropped, res.rejected);
    request_done();
    return rc;
}

static int log_sink(void *ctx, const otlp_log_t *log)
{
    log_vec_t *v = ctx;
    if (v == NULL)
        return 0;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->items = xrealloc(v->items, v->cap * sizeof(*v->items));
    }
    v->items[v->n++] = *log;
    return 0;
}

/*
 * Log records are validated, counted and, with Kafka on, published
 * (kafka.logs.topic). A protobuf body, the proxies' access logs, is read
 * straight into one array of records (otlp_direct_logs) whose strings point
 * into the body, which lives until request_done.
 */
static int decode_logs(collector_t *c, const uint8_t *body, size_t len, int json, const otlp_limits_t *lim, arena_t *a,
                       otlp_result_t *res)
{
    const otlp_log_t *logs;
    size_t n;
    int rc;
    if (json) {
        tl_logs.n = 0;
        rc = otlp_logs_decode_json(body, len, lim, a, log_sink, c->kafka ? &tl_logs : NULL, res);
        logs = tl_logs.items;
        n = tl_logs.n;
    } else {
        rc = otlp_logs_decode_proto_records(body, len, lim, a, &logs, &n, res);
    }
    if (rc == 0)
        kafka_publish_logs(c->kafka, logs, n, &tl_kafka);
    return rc;
}

void ingest_otlp_logs(collector_t *c, const http_request_t *req, http_response_t *resp)
{
    collector_transport_stats_t *ts = &c->transport[TRANSPORT_OTLP_HTTP];
    otlp_result_t res = {0};
    if (otlp_handle(c, req, resp, OTLP_SIGNAL_LOGS, decode_logs, &res) == 0)
        prom_counter_add(&ts->log_records, res.accepted);
    prom_counter_add(&ts->log_records_dropped, res.rejected);
}
