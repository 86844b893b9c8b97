/*
 * remote_write_enc: the pure parts of Prometheus remote write 1.0, kept
 * apart from the sending thread so unit tests can drive them: the
 * WriteRequest encoding of metric store series, snappy block compression,
 * the bounded queue of batches with exact drop accounting, and the
 * retry decisions (which answers are retried, and after how long).
 *
 * Encoding. A WriteRequest is a sequence of `timeseries` (field 1)
 * messages, so any run of encoded TimeSeries is itself a WriteRequest: a
 * batch is a byte range of rw_series_buf_t. Each Prometheus sample a scrape
 * would show is one TimeSeries with one Sample at the push time: counters
 * as `<family>_total`, gauges as `<family>`, histograms as
 * `<family>_bucket{le}` (cumulative, `+Inf` last), `_count` and `_sum` (when
 * the store has a sum). Labels are sorted by name (bytes), `__name__` and
 * `le` merged in place; a label with an empty value is left out (the spec
 * forbids empty values, `name=""` on /metrics means absent, and Thanos
 * receive refuses a whole request holding one with 409). Exemplars with a
 * trace id go with the series they belong to (labels trace_id and span_id,
 * as /metrics writes them).
 */
#ifndef OUTRIDER_REMOTE_WRITE_ENC_H
#define OUTRIDER_REMOTE_WRITE_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "metric_store.h"

/* Encoded TimeSeries messages back to back, and where each ends. init: zeroed; free with rw_series_buf_dispose. */
typedef struct rw_series_buf {
    buf_t data;
    size_t *ends; /* ends[i]: offset just past TimeSeries i */
    size_t n, cap;
    int64_t ts_ms; /* timestamp of the samples encoded next (ms since the epoch) */
    buf_t scratch; /* hex of exemplar ids */
} rw_series_buf_t;

/*
 * Append the samples of one series as TimeSeries (a metric_series_fn: ctx
 * is an rw_series_buf_t); returns how many samples (= TimeSeries) it added.
 */
size_t rw_encode_series(void *ctx, const metric_series_view_t *s);

/* Samples rw_encode_series writes for s. */
size_t rw_series_samples(const metric_series_view_t *s);

/* Drop the first k TimeSeries (k <= n), moving the rest to the front. */
void rw_series_buf_take(rw_series_buf_t *sb, size_t k);

/* Bytes of the first k TimeSeries (k <= n): a WriteRequest of them is data[0..that). */
size_t rw_series_buf_bytes(const rw_series_buf_t *sb, size_t k);

void rw_series_buf_dispose(rw_series_buf_t *sb);

/* Snappy block format (not framed), as remote write wants. Replace out's contents; 0, or -1 on failure. */
int rw_snappy_compress(const char *in, size_t len, buf_t *out);
int rw_snappy_uncompress(const char *in, size_t len, buf_t *out);

/* One request body waiting to be sent. */
typedef struct rw_batch {
    struct rw_batch *next;
    char *body; /* snappy-compressed WriteRequest (heap) */
    size_t len;
    uint32_t samples;
    uint32_t attempts;    /* sends tried so far */
    uint64_t next_try_ms; /* not before this (monotonic ms); 0 = now */
} rw_batch_t;

/* Create a batch owning a copy of body[0..len). Free with rw_batch_free (NULL: no-op). */
rw_batch_t *rw_batch_create(const char *body, size_t len, uint32_t samples);
void rw_batch_free(rw_batch_t *b);

/* FIFO of batches bounded in samples. init: zeroed, then set max_samples (>= 1). */
typedef struct rw_queue {
    rw_batch_t *head, *tail;
    uint64_t samples;     /* queued */
    uint64_t max_samples; /* bound */
} rw_queue_t;

/*
 * Queue b (ownership passes): the oldest batches are dropped (freed) until
 * b fits; a b larger than the whole bound is dropped itself. Returns the
 * samples dropped, exactly.
 */
uint64_t rw_queue_push(rw_queue_t *q, rw_batch_t *b);

/* Take the oldest batch off the queue (the caller owns it), or NULL. */
rw_batch_t *rw_queue_pop(rw_queue_t *q);

/* Free everything queued; returns the samples that were in it. */
uint64_t rw_queue_clear(rw_queue_t *q);

/* What to do with a batch after an answer. */
enum rw_outcome {
    RW_SENT = 0, /* 2xx */
    RW_RETRY,    /* no answer (connection, timeout), 5xx or 429: retried with back-off */
    RW_FAIL,     /* any other status: the receiver will never take it; dropped and counted as failed */
};

/* http_code: the status, or 0 when no answer came. */
enum rw_outcome rw_classify(long http_code);

/*
 * Wait before try number attempts + 1 (attempts >= 1 tries failed):
 * Retry-After when the answer had one (retry_after_s > 0, at most
 * RW_MAX_RETRY_AFTER_S honoured), else min_ms doubled per failed try, at
 * most max_ms.
 */
#define RW_MAX_RETRY_AFTER_S 300
uint64_t rw_backoff_ms(uint32_t attempts, uint64_t min_ms, uint64_t max_ms, int64_t retry_after_s);

#endif
