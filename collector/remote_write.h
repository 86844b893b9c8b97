/*
 * remote_write: pushes the metric store to a Prometheus remote write 1.0
 * receiver (Prometheus with --web.enable-remote-write-receiver, Mimir,
 * Thanos receive, ...) every remoteWrite.interval.
 *
 * Design. One thread of its own does everything, so neither ingest nor a
 * scrape ever waits for the receiver:
 *   - a push walks the store in parts of remoteWrite.maxSamplesPerSend
 *     samples (metric_store_visit_chunk: the store's lock is held for one
 *     part at a time), encodes each part as a WriteRequest
 *     (remote_write_enc.h), compresses it with snappy and queues it;
 *   - the queue is bounded by remoteWrite.queue.maxSamples: a batch that
 *     does not fit pushes the oldest ones out, and their samples are
 *     counted as dropped;
 *   - batches are sent oldest first over one keep-alive libcurl handle.
 *     No answer, 5xx and 429 are retried with exponential back-off
 *     (remoteWrite.retry.minBackoff doubling up to .maxBackoff, or the
 *     answer's Retry-After); the head of the queue waits for its retry
 *     while new pushes queue behind it, so order is kept. Any other status
 *     means the receiver will never take the batch: its samples are
 *     counted as failed, never retried.
 *   - remote_write_stop (SIGTERM) pushes once more and sends what it can
 *     within remoteWrite.drainTimeout; what is left is counted as failed
 *     and logged.
 * Every sample queued ends as exactly one of sent, failed or dropped, or is
 * still queued: queued = sent + failed + dropped + queue depth, and /metrics
 * shows a consistent snapshot of all of them.
 */
#ifndef OUTRIDER_REMOTE_WRITE_H
#define OUTRIDER_REMOTE_WRITE_H

#include "buf.h"
#include "config.h"
#include "metric_store.h"

typedef struct remote_write remote_write_t;

/*
 * Start pushing store to cfg->remote_write_url (non-empty). The store must
 * outlive remote_write_stop. NULL with a logged error on a bad setting.
 */
remote_write_t *remote_write_start(const collector_config_t *cfg, metric_store_t *store);

/* One last push within remoteWrite.drainTimeout, count what is left as failed, free everything; NULL: no-op. */
void remote_write_stop(remote_write_t *rw);

/* Append the outrider_remote_write_* families to b; NULL: nothing. */
void remote_write_render_metrics(remote_write_t *rw, buf_t *b, int openmetrics);

#endif
