/*
 * kafka_enc: message bodies for Kafka; see kafka_enc.h.
 */
#include "kafka_enc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pbwrite.h"
#include "zipkin_json.h"
#include "zipkin_proto.h"
#include "zipkin_span.h"

int kafka_span_encoding_parse(const char *s)
{
    if (strcmp(s, "json") == 0)
        return KAFKA_SPANS_JSON;
    if (strcmp(s, "proto3") == 0)
        return KAFKA_SPANS_PROTO3;
    if (strcmp(s, "otlp") == 0)
        return KAFKA_SPANS_OTLP;
    return -1;
}

int kafka_log_encoding_parse(const char *s)
{
    if (strcmp(s, "json") == 0)
        return KAFKA_LOGS_JSON;
    if (strcmp(s, "otlp") == 0)
        return KAFKA_LOGS_OTLP;
    return -1;
}

/* ---- grouping ---- */

static uint64_t group_hash(uint64_t hi, uint64_t lo)
{
    uint64_t h = (hi ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull ^ lo;
    h ^= h >> 31;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}

/* An open-addressing table from trace id to group, chains of spans per group: no sort, O(n). */
size_t kafka_group_traces(const span_t *spans, size_t n, arena_t *a, span_t **sorted, size_t **starts)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *tab = arena_alloc(a, cap * sizeof(*tab));             /* slot -> group + 1, 0 = empty */
    uint32_t *first = arena_alloc(a, (n ? n : 1) * sizeof(*first)); /* group -> its first span */
    uint32_t *last = arena_alloc(a, (n ? n : 1) * sizeof(*last));
    uint32_t *count = arena_alloc(a, (n ? n : 1) * sizeof(*count));
    uint32_t *next = arena_alloc(a, (n ? n : 1) * sizeof(*next)); /* span -> next span of its group */
    span_t *out = arena_alloc(a, (n ? n : 1) * sizeof(*out));
    size_t *st = arena_alloc(a, (n + 1) * sizeof(*st));
    memset(tab, 0, cap * sizeof(*tab));
    size_t groups = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t hi = spans[i].trace_id_high, lo = spans[i].trace_id_low;
        next[i] = UINT32_MAX;
        for (size_t j = group_hash(hi, lo) & (cap - 1);; j = (j + 1) & (cap - 1)) {
            if (tab[j] == 0) {
                tab[j] = (uint32_t)++groups;
                first[groups - 1] = last[groups - 1] = (uint32_t)i;
                count[groups - 1] = 1;
                break;
            }
            uint32_t g = tab[j] - 1;
            const span_t *f = &spans[first[g]];
            if (f->trace_id_low == lo && f->trace_id_high == hi) {
                next[last[g]] = (uint32_t)i;
                last[g] = (uint32_t)i;
                count[g]++;
                break;
            }
        }
    }
    size_t k = 0;
    for (size_t g = 0; g < groups; g++) {
        st[g] = k;
        for (uint32_t i = first[g]; i != UINT32_MAX; i = next[i])
            out[k++] = spans[i];
    }
    st[groups] = n;
    *sorted = out;
    *starts = st;
    return groups;
}

void kafka_enc_trace_key(const span_t *s, buf_t *out)
{
    char id[33];
    size_t len = span_format_trace_id(s->trace_id_high, s->trace_id_low, id);
    buf_append(out, id, len);
}

uint32_t kafka_partition_of(const void *key, size_t len, uint32_t n)
{
    /* MurmurHash2, 32-bit, as Kafka's Utils.murmur2: seed 0x9747b28c, little-endian blocks */
    const uint32_t m = 0x5bd1e995u;
    const uint8_t *d = key;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len - i) {
    case 3: h ^= (uint32_t)d[i + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)d[i + 1] << 8;  /* fall through */
    case 1: h ^= d[i]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return n ? (h & 0x7fffffffu) % n : 0;
}

/* ---- OTLP traces ---- */

#define KV(b, f, key, val, len) pb_kv_bytes(b, f, key, sizeof(key) - 1, val, len)

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static int otlp_kind(enum span_kind k)
{
    switch (k) {
    case SPAN_KIND_SERVER: return 2;
    case SPAN_KIND_CLIENT: return 3;
    case SPAN_KIND_PRODUCER: return 4;
    case SPAN_KIND_CONSUMER: return 5;
    default: return 1; /* INTERNAL: Zipkin's spans without a kind */
    }
}

static int str_is(str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* One Span as field 2 of ScopeSpans. */
static void otlp_span(buf_t *b, const span_t *s)
{
    size_t at = pb_open(b, 2);
    uint8_t id[16];
    put_be64(id, s->trace_id_high);
    put_be64(id + 8, s->trace_id_low);
    pb_bytes(b, 1, id, 16);
    put_be64(id, s->id);
    pb_bytes(b, 2, id, 8);
    if (s->parent_id != 0) {
        put_be64(id, s->parent_id);
        pb_bytes(b, 4, id, 8);
    }
    pb_bytes(b, 5, s->name.ptr, s->name.len);
    pb_varint(b, 6, (uint64_t)otlp_kind(s->kind));
    uint64_t start = s->timestamp_us * 1000u;
    pb_fixed(b, 7, start, 8);
    pb_fixed(b, 8, start + s->duration_us * 1000u, 8);
    str_t error = STR_NULL;
    int has_error = 0;
    for (uint32_t i = 0; i < s->n_tags; i++) {
        const span_tag_t *t = &s->tags[i];
        if (str_is(t->key, "error")) {
            error = t->value;
            has_error = 1;
        }
        pb_kv_bytes(b, 9, t->key.ptr, t->key.len, t->value.ptr, t->value.len);
    }
    if (s->has_remote) {
        if (s->remote.service_name.len > 0)
            KV(b, 9, "peer.service", s->remote.service_name.ptr, s->remote.service_name.len);
        char ip[40];
        if (s->remote.has_ipv4)
            KV(b, 9, "net.peer.ip", ip, zipkin_span_format_ipv4(s->remote.ipv4, ip));
        else if (s->remote.has_ipv6)
            KV(b, 9, "net.peer.ip", ip, zipkin_span_format_ipv6(s->remote.ipv6, ip));
        if (s->remote.port != 0)
            pb_kv_int(b, 9, "net.peer.port", 13, s->remote.port);
    }
    for (uint32_t i = 0; i < s->n_annotations; i++) {
        size_t ev = pb_open(b, 11); /* Span.events: Event{time_unix_nano, name} */
        pb_fixed(b, 1, s->annotations[i].timestamp_us * 1000u, 8);
        pb_bytes(b, 2, s->annotations[i].value.ptr, s->annotations[i].value.len);
        pb_close(b, ev);
    }
    if (has_error) {
        size_t stt = pb_open(b, 15); /* Status{message = 2, code = 3} */
        if (error.len > 0)
            pb_bytes(b, 2, error.ptr, error.len);
        pb_varint(b, 3, 2); /* STATUS_CODE_ERROR */
        pb_close(b, stt);
    }
    pb_close(b, at);
}

/* The spans of one trace: one ResourceSpans per local service, in order of first appearance. */
static void otlp_trace(const span_t *spans, size_t n, buf_t *out)
{
    unsigned char done_stack[256];
    unsigned char *done = n <= sizeof(done_stack) ? done_stack : calloc(n, 1);
    if (done == NULL)
        log_fatal("out of memory");
    memset(done, 0, n);
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        str_t svc = spans[i].has_local ? spans[i].local.service_name : STR_NULL;
        size_t rs = pb_open(out, 1);  /* ExportTraceServiceRequest.resource_spans */
        size_t res = pb_open(out, 1); /* ResourceSpans.resource */
        if (svc.len > 0)
            KV(out, 1, "service.name", svc.ptr, svc.len);
        pb_close(out, res);
        size_t ss = pb_open(out, 2); /* ResourceSpans.scope_spans, no scope: Zipkin spans carry none */
        for (size_t j = i; j < n; j++) {
            str_t sj = spans[j].has_local ? spans[j].local.service_name : STR_NULL;
            if (done[j] || !str_equal(sj, svc))
                continue;
            otlp_span(out, &spans[j]);
            done[j] = 1;
        }
        pb_close(out, ss);
        pb_close(out, rs);
    }
    if (done != done_stack)
        free(done);
}

void kafka_enc_spans(enum kafka_span_encoding enc, const span_t *spans, size_t n, buf_t *out)
{
    switch (enc) {
    case KAFKA_SPANS_JSON: zipkin_json_encode_spans(spans, n, out); break;
    case KAFKA_SPANS_PROTO3: zipkin_proto_encode_spans(spans, n, out); break;
    case KAFKA_SPANS_OTLP: otlp_trace(spans, n, out); break;
    }
}

void kafka_enc_batch_add(enum kafka_span_encoding enc, const span_t *spans, size_t n, buf_t *tmp, buf_t *out)
{
    if (enc != KAFKA_SPANS_JSON) {
        kafka_enc_spans(enc, spans, n, out);
        return;
    }
    tmp->len = 0;
    zipkin_json_encode_spans(spans, n, tmp);
    if (tmp->len < 2)
        return;
    buf_append_char(out, out->len == 0 ? '[' : ',');
    buf_append(out, tmp->data + 1, tmp->len - 2); /* without the list's brackets */
}

void kafka_enc_batch_end(enum kafka_span_encoding enc, buf_t *out)
{
    if (enc == KAFKA_SPANS_JSON && out->len > 0)
        buf_append_char(out, ']');
}

/* ---- logs ---- */

static void json_key(buf_t *b, int *first, const char *key, size_t klen)
{
    buf_append(b, *first ? "{\"" : ",\"", 2);
    *first = 0;
    buf_append_json_escaped(b, key, klen);
    buf_append(b, "\":", 2);
}

static void json_str(buf_t *b, int *first, const char *key, const char *v, size_t n)
{
    json_key(b, first, key, strlen(key));
    buf_append_char(b, '"');
    buf_append_json_escaped(b, v, n);
    buf_append_char(b, '"');
}

/* Attributes whose values are numbers in Envoy's and Istio's JSON access logs. */
static int numeric_key(str_t k)
{
    static const char *const keys[] = {"response_code",         "duration", "bytes_received", "bytes_sent",
                                       "upstream_service_time", "attempts"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (str_is(k, keys[i]))
            return 1;
    return 0;
}

static int all_digits(str_t v)
{
    if (v.len == 0 || v.len > 19 || (v.len > 1 && v.ptr[0] == '0'))
        return 0;
    for (uint32_t i = 0; i < v.len; i++)
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return 0;
    return 1;
}

/* RFC 3339 UTC with milliseconds, as Envoy's %START_TIME%. */
static void append_time(buf_t *b, uint64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char s[40];
    int n = snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ns / 1000000u % 1000u));
    buf_append(b, s, (size_t)n);
}

void kafka_enc_log_json(const otlp_log_t *log, buf_t *out)
{
    int first = 1;
    uint64_t t = log->time_unix_nano ? log->time_unix_nano : log->observed_time_unix_nano;
    if (t != 0) {
        json_key(out, &first, "start_time", 10);
        buf_append_char(out, '"');
        append_time(out, t);
        buf_append_char(out, '"');
    }
    if (log->trace_id_high != 0 || log->trace_id_low != 0) {
        char id[33];
        size_t n = span_format_trace_id(log->trace_id_high, log->trace_id_low, id);
        if (log->trace_id_high == 0) { /* OTLP ids are 16 bytes: keep the 32 digits */
            memmove(id + 16, id, n + 1);
            memset(id, '0', 16);
            n = 32;
        }
        json_str(out, &first, "trace_id", id, n);
    }
    if (log->span_id != 0) {
        char id[17];
        span_format_id(log->span_id, id);
        json_str(out, &first, "span_id", id, 16);
    }
    if (log->service_name.len > 0)
        json_str(out, &first, "service", log->service_name.ptr, log->service_name.len);
    if (log->severity_text.len > 0)
        json_str(out, &first, "severity", log->severity_text.ptr, log->severity_text.len);
    int access = 0;
    for (uint32_t i = 0; i < log->n_attributes; i++) {
        const span_tag_t *a = &log->attributes[i];
        access |= str_is(a->key, "response_code");
        json_key(out, &first, a->key.ptr, a->key.len);
        if (numeric_key(a->key) && all_digits(a->value)) {
            buf_append(out, a->value.ptr, a->value.len);
        } else {
            buf_append_char(out, '"');
            buf_append_json_escaped(out, a->value.ptr, a->value.len);
            buf_append_char(out, '"');
        }
    }
    /* an access log's body is its text line, which the fields above already carry */
    if (!access && log->body.len > 0)
        json_str(out, &first, "message", log->body.ptr, log->body.len);
    buf_append(out, first ? "{}" : "}", first ? 2 : 1);
}

static void otlp_log(buf_t *b, const otlp_log_t *l)
{
    size_t at = pb_open(b, 2); /* ScopeLogs.log_records */
    if (l->time_unix_nano != 0)
        pb_fixed(b, 1, l->time_unix_nano, 8);
    if (l->severity_number != 0)
        pb_varint(b, 2, l->severity_number);
    if (l->severity_text.len > 0)
        pb_bytes(b, 3, l->severity_text.ptr, l->severity_text.len);
    if (l->body.len > 0) {
        size_t body = pb_open(b, 5);
        pb_bytes(b, 1, l->body.ptr, l->body.len);
        pb_close(b, body);
    }
    for (uint32_t i = 0; i < l->n_attributes; i++)
        pb_kv_bytes(b, 6, l->attributes[i].key.ptr, l->attributes[i].key.len, l->attributes[i].value.ptr,
                    l->attributes[i].value.len);
    if (l->flags != 0)
        pb_fixed(b, 8, l->flags, 4);
    if (l->trace_id_high != 0 || l->trace_id_low != 0) {
        uint8_t id[16];
        put_be64(id, l->trace_id_high);
        put_be64(id + 8, l->trace_id_low);
        pb_bytes(b, 9, id, 16);
    }
    if (l->span_id != 0) {
        uint8_t id[8];
        put_be64(id, l->span_id);
        pb_bytes(b, 10, id, 8);
    }
    if (l->observed_time_unix_nano != 0)
        pb_fixed(b, 11, l->observed_time_unix_nano, 8);
    if (l->event_name.len > 0)
        pb_bytes(b, 12, l->event_name.ptr, l->event_name.len);
    pb_close(b, at);
}

void kafka_enc_logs_otlp(const otlp_log_t *logs, size_t n, buf_t *out)
{
    size_t i = 0;
    while (i < n) {
        str_t svc = logs[i].service_name;
        size_t rl = pb_open(out, 1); /* ExportLogsServiceRequest.resource_logs */
        size_t res = pb_open(out, 1);
        if (svc.len > 0)
            KV(out, 1, "service.name", svc.ptr, svc.len);
        pb_close(out, res);
        while (i < n && str_equal(logs[i].service_name, svc)) {
            str_t scope = logs[i].scope_name;
            size_t sl = pb_open(out, 2); /* ResourceLogs.scope_logs */
            size_t sc = pb_open(out, 1);
            if (scope.len > 0)
                pb_bytes(out, 1, scope.ptr, scope.len);
            pb_close(out, sc);
            while (i < n && str_equal(logs[i].service_name, svc) && str_equal(logs[i].scope_name, scope))
                otlp_log(out, &logs[i++]);
            pb_close(out, sl);
        }
        pb_close(out, rl);
    }
}

static void otlp_metric_exemplars(buf_t *out, uint32_t field, const metric_point_t *p)
{
    for (uint32_t i = 0; i < p->n_exemplars; i++) {
        const metric_exemplar_t *e = &p->exemplars[i];
        size_t ex = pb_open(out, field);
        pb_fixed(out, 2, e->time_unix_nano, 8);
        pb_double(out, 3, e->value); /* as_double */
        uint8_t id[16];
        if (e->span_id != 0) {
            put_be64(id, e->span_id);
            pb_bytes(out, 4, id, 8);
        }
        if (e->trace_id_high != 0 || e->trace_id_low != 0) {
            put_be64(id, e->trace_id_high);
            put_be64(id + 8, e->trace_id_low);
            pb_bytes(out, 5, id, 16);
        }
        pb_close(out, ex);
    }
}

void kafka_enc_metric_otlp(const metric_point_t *p, buf_t *out)
{
    size_t rm = pb_open(out, 1); /* ExportMetricsServiceRequest.resource_metrics */
    size_t sm = pb_open(out, 2); /* ResourceMetrics.scope_metrics */
    size_t scope = pb_open(out, 1);
    pb_bytes(out, 1, "outrider-collector", 18);
    pb_close(out, scope);
    size_t m = pb_open(out, 2); /* ScopeMetrics.metrics */
    pb_bytes(out, 1, p->name.ptr, p->name.len);
    if (p->description.len > 0)
        pb_bytes(out, 2, p->description.ptr, p->description.len);
    if (p->unit.len > 0)
        pb_bytes(out, 3, p->unit.ptr, p->unit.len);
    int hist = p->type == METRIC_HISTOGRAM;
    size_t data = pb_open(out, hist ? 9 : p->type == METRIC_SUM ? 7 : 5);
    size_t dp = pb_open(out, 1);
    for (uint32_t i = 0; i < p->n_labels; i++)
        pb_kv_bytes(out, hist ? 9 : 7, p->labels[i].name.ptr, p->labels[i].name.len, p->labels[i].value.ptr,
                    p->labels[i].value.len);
    if (p->start_time_unix_nano != 0)
        pb_fixed(out, 2, p->start_time_unix_nano, 8);
    pb_fixed(out, 3, p->time_unix_nano, 8);
    if (hist) {
        pb_fixed(out, 4, p->count, 8);
        if (p->has_sum)
            pb_double(out, 5, p->sum);
        size_t bc = pb_open(out, 6); /* packed fixed64 */
        for (uint32_t i = 0; i <= p->n_bounds; i++) {
            buf_reserve(out, 8);
            for (int b = 0; b < 8; b++)
                out->data[out->len++] = (char)(uint8_t)(p->bucket_counts[i] >> (8 * b));
        }
        pb_close(out, bc);
        if (p->n_bounds > 0) {
            size_t eb = pb_open(out, 7); /* packed double */
            buf_append(out, p->bounds, (size_t)p->n_bounds * sizeof(double)); /* x86 and arm64: little-endian */
            pb_close(out, eb);
        }
        otlp_metric_exemplars(out, 8, p);
    } else {
        pb_double(out, 4, p->value); /* as_double */
        otlp_metric_exemplars(out, 5, p);
    }
    pb_close(out, dp);
    if (p->type != METRIC_GAUGE)
        pb_varint(out, 2, (uint64_t)p->temporality);
    if (p->type == METRIC_SUM && p->monotonic)
        pb_varint(out, 3, 1);
    pb_close(out, data);
    pb_close(out, m);
    pb_close(out, sm);
    pb_close(out, rm);
}

void kafka_enc_series_key(uint64_t id, buf_t *out)
{
    uint8_t be[8];
    put_be64(be, id);
    buf_append(out, be, sizeof(be));
}
