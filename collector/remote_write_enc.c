/*
 * remote_write_enc: see remote_write_enc.h.
 */
#include "remote_write_enc.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "pbwrite.h"
#include "xalloc.h"

/* WriteRequest / TimeSeries / Sample / Exemplar / Label field numbers (common/proto/prometheus/). */
enum { WR_TIMESERIES = 1 };
enum { TS_LABELS = 1, TS_SAMPLES = 2, TS_EXEMPLARS = 3 };
enum { SAMPLE_VALUE = 1, SAMPLE_TIMESTAMP = 2 };
enum { EX_LABELS = 1, EX_VALUE = 2, EX_TIMESTAMP = 3 };
enum { LABEL_NAME = 1, LABEL_VALUE = 2 };

/* A Label whose value is the concatenation a + b (the sample name is family + suffix). */
static void put_label2(buf_t *b, const char *name, size_t nlen, const char *a, size_t alen, const char *v2, size_t blen)
{
    size_t at = pb_open(b, TS_LABELS);
    pb_bytes(b, LABEL_NAME, name, nlen);
    buf_reserve(b, 20 + alen + blen);
    pb_put_varint(b, (uint64_t)LABEL_VALUE << 3 | PB_LEN);
    pb_put_varint(b, alen + blen);
    buf_append(b, a, alen);
    buf_append(b, v2, blen);
    pb_close(b, at);
}

static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c != 0 ? c : (al > bl) - (al < bl);
}

typedef struct sample_name {
    const char *family, *suffix;
    const char *le; /* bucket bound, or NULL */
} sample_name_t;

/*
 * The labels of one sample: the series' sorted labels with __name__ (and le)
 * merged in by name, leaving out those with an empty value.
 */
static void put_labels(buf_t *b, const metric_series_view_t *s, const sample_name_t *sn)
{
    struct {
        const char *name, *v1, *v2;
        size_t nlen;
    } extra[2] = {{"__name__", sn->family, sn->suffix, 8}, {"le", sn->le, "", 2}};
    size_t n_extra = sn->le != NULL ? 2 : 1, e = 0;
    for (uint32_t i = 0; i <= s->n_labels; i++) {
        const metric_label_t *l = i < s->n_labels ? &s->labels[i] : NULL;
        while (e < n_extra && (l == NULL || name_cmp(extra[e].name, extra[e].nlen, l->name.ptr, l->name.len) < 0)) {
            put_label2(b, extra[e].name, extra[e].nlen, extra[e].v1, strlen(extra[e].v1), extra[e].v2,
                       strlen(extra[e].v2));
            e++;
        }
        if (l != NULL && l->value.len > 0) /* remote write 1.0: no empty values (empty is absent) */
            put_label2(b, l->name.ptr, l->name.len, l->value.ptr, l->value.len, "", 0);
    }
}

static void put_hex_label(rw_series_buf_t *sb, const char *name, const uint64_t *words, size_t n_words)
{
    uint8_t bytes[16];
    size_t n = 0;
    for (size_t w = 0; w < n_words; w++)
        for (int i = 7; i >= 0; i--)
            bytes[n++] = (uint8_t)(words[w] >> (i * 8));
    sb->scratch.len = 0;
    buf_append_hex(&sb->scratch, bytes, n);
    put_label2(&sb->data, name, strlen(name), sb->scratch.data, sb->scratch.len, "", 0);
}

/* The exemplar as /metrics writes it: trace_id (16 hex digits when its high half is 0, else 32), span_id if set. */
static void put_exemplar(rw_series_buf_t *sb, const metric_exemplar_t *ex)
{
    buf_t *b = &sb->data;
    size_t at = pb_open(b, TS_EXEMPLARS);
    uint64_t trace[2] = {ex->trace_id_high, ex->trace_id_low};
    if (ex->trace_id_high != 0)
        put_hex_label(sb, "trace_id", trace, 2);
    else
        put_hex_label(sb, "trace_id", trace + 1, 1);
    if (ex->span_id != 0)
        put_hex_label(sb, "span_id", &ex->span_id, 1);
    pb_double(b, EX_VALUE, ex->value);
    int64_t ms = ex->time_unix_nano != 0 ? (int64_t)(ex->time_unix_nano / 1000000u) : sb->ts_ms;
    pb_varint(b, EX_TIMESTAMP, (uint64_t)ms);
    pb_close(b, at);
}

static void put_series(rw_series_buf_t *sb, const metric_series_view_t *s, const sample_name_t *sn, double v,
                       const metric_exemplar_t *ex)
{
    buf_t *b = &sb->data;
    size_t at = pb_open(b, WR_TIMESERIES);
    put_labels(b, s, sn);
    size_t sa = pb_open(b, TS_SAMPLES);
    pb_double(b, SAMPLE_VALUE, v);
    pb_varint(b, SAMPLE_TIMESTAMP, (uint64_t)sb->ts_ms);
    pb_close(b, sa);
    if (ex != NULL && (ex->trace_id_high | ex->trace_id_low) != 0)
        put_exemplar(sb, ex);
    pb_close(b, at);
    if (sb->n == sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 256;
        sb->ends = xrealloc(sb->ends, sb->cap * sizeof(*sb->ends));
    }
    sb->ends[sb->n++] = b->len;
}

size_t rw_series_samples(const metric_series_view_t *s)
{
    return s->kind == METRIC_SERIES_HISTOGRAM ? (size_t)s->n_bounds + 2 + (s->has_sum != 0) : 1;
}

size_t rw_encode_series(void *ctx, const metric_series_view_t *s)
{
    rw_series_buf_t *sb = ctx;
    switch (s->kind) {
    case METRIC_SERIES_COUNTER:
        put_series(sb, s, &(sample_name_t){s->family, "_total", NULL}, s->value, s->exemplar);
        break;
    case METRIC_SERIES_GAUGE: put_series(sb, s, &(sample_name_t){s->family, "", NULL}, s->value, NULL); break;
    case METRIC_SERIES_HISTOGRAM: {
        uint64_t cum = 0;
        const char *le = s->le;
        for (uint32_t i = 0; i <= s->n_bounds; i++) {
            cum += s->buckets[i];
            const char *bound = i < s->n_bounds ? le : "+Inf";
            put_series(sb, s, &(sample_name_t){s->family, "_bucket", bound}, (double)cum,
                       s->exemplars ? &s->exemplars[i] : NULL);
            if (i < s->n_bounds)
                le += strlen(le) + 1;
        }
        put_series(sb, s, &(sample_name_t){s->family, "_count", NULL}, (double)cum, NULL);
        if (s->has_sum)
            put_series(sb, s, &(sample_name_t){s->family, "_sum", NULL}, s->sum, NULL);
        break;
    }
    }
    return rw_series_samples(s);
}

size_t rw_series_buf_bytes(const rw_series_buf_t *sb, size_t k)
{
    return k == 0 ? 0 : sb->ends[k - 1];
}

void rw_series_buf_take(rw_series_buf_t *sb, size_t k)
{
    size_t cut = rw_series_buf_bytes(sb, k);
    memmove(sb->data.data, sb->data.data + cut, sb->data.len - cut);
    sb->data.len -= cut;
    for (size_t i = k; i < sb->n; i++)
        sb->ends[i - k] = sb->ends[i] - cut;
    sb->n -= k;
}

void rw_series_buf_dispose(rw_series_buf_t *sb)
{
    buf_dispose(&sb->data);
    buf_dispose(&sb->scratch);
    free(sb->ends);
    *sb = (rw_series_buf_t){0};
}

int rw_snappy_compress(const char *in, size_t len, buf_t *out)
{
    size_t cap = snappy_max_compressed_length(len);
    out->len = 0;
    buf_reserve(out, cap + 1);
    size_t n = cap;
    if (snappy_compress(in, len, out->data, &n) != SNAPPY_OK)
        return -1;
    out->len = n;
    return 0;
}

int rw_snappy_uncompress(const char *in, size_t len, buf_t *out)
{
    size_t n;
    if (snappy_uncompressed_length(in, len, &n) != SNAPPY_OK)
        return -1;
    out->len = 0;
    buf_reserve(out, n + 1);
    if (snappy_uncompress(in, len, out->data, &n) != SNAPPY_OK)
        return -1;
    out->len = n;
    return 0;
}

rw_batch_t *rw_batch_create(const char *body, size_t len, uint32_t samples)
{
    rw_batch_t *b = xcalloc(1, sizeof(*b));
    b->body = xmalloc(len ? len : 1);
    if (len)
        memcpy(b->body, body, len);
    b->len = len;
    b->samples = samples;
    return b;
}

void rw_batch_free(rw_batch_t *b)
{
    if (b == NULL)
        return;
    free(b->body);
    free(b);
}

rw_batch_t *rw_queue_pop(rw_queue_t *q)
{
    rw_batch_t *b = q->head;
    if (b == NULL)
        return NULL;
    q->head = b->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->samples -= b->samples;
    b->next = NULL;
    return b;
}

uint64_t rw_queue_push(rw_queue_t *q, rw_batch_t *b)
{
    if (b->samples > q->max_samples) {
        uint64_t n = b->samples;
        rw_batch_free(b);
        return n;
    }
    uint64_t dropped = 0;
    while (q->samples + b->samples > q->max_samples) {
        rw_batch_t *old = rw_queue_pop(q);
        dropped += old->samples;
        rw_batch_free(old);
    }
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->samples += b->samples;
    return dropped;
}

uint64_t rw_queue_clear(rw_queue_t *q)
{
    uint64_t n = 0;
    rw_batch_t *b;
    while ((b = rw_queue_pop(q)) != NULL) {
        n += b->samples;
        rw_batch_free(b);
    }
    return n;
}

enum rw_outcome rw_classify(long http_code)
{
    if (http_code >= 200 && http_code < 300)
        return RW_SENT;
    if (http_code == 0 || http_code == 429 || http_code >= 500)
        return RW_RETRY;
    return RW_FAIL;
}

uint64_t rw_backoff_ms(uint32_t attempts, uint64_t min_ms, uint64_t max_ms, int64_t retry_after_s)
{
    if (retry_after_s > 0)
        return (uint64_t)(retry_after_s < RW_MAX_RETRY_AFTER_S ? retry_after_s : RW_MAX_RETRY_AFTER_S) * 1000u;
    uint64_t d = min_ms ? min_ms : 1;
    for (uint32_t i = 1; i < attempts && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}
