/*
 * mesh_history: the counters behind the service graph (/mesh) and their
 * recent history, so that rates can be taken over a window.
 *
 * Rows. The collector's istio_requests_total and
 * istio_request_duration_milliseconds series are summed into rows keyed by
 * (reporter, source service, destination service, destination version). A
 * row holds monotonic accumulators: requests, failed requests (response
 * code 5xx, or 0 = no response) and the duration histogram's buckets. They
 * grow by the increase of each series between two samples, tracked per
 * series (by a hash of its labels), so a series that expires from the
 * metric store, or restarts, never makes a row go backwards. A series first
 * seen after the first sample counts whole: the sidecars send deltas, so a
 * new series holds only what happened since it appeared. The first sample
 * is the baseline: what the store held then is not an increase.
 *
 * History. A sample every interval (5 s) is also a snapshot of every row,
 * kept in two rings: a fine one of a snapshot per interval (61 slots: 5
 * minutes) and a coarse one of every 12th (61 slots: 1 hour). A window is
 * read from the finest ring that spans it: the increase of each row between
 * the newest snapshot at least the window old (the oldest one while the
 * history is younger than the window) and the last sample; the time between
 * them is the covered time, which rates divide by. Snapshot values are kept
 * as 32-bit numbers and subtracted modulo 2^32, so a row's increase within
 * one window must stay below 2^32 (1.19M requests/s over an hour).
 *
 * Bounds. At most max_rows rows (a row idle for longer than the history is
 * reused when they are all taken; past that, increases whose row cannot be
 * made are dropped and counted) and max_series tracked series (series past
 * it are not tracked, and counted per sample; histograms take at most half,
 * so that a mesh past the limit still shows its calls, some without p99).
 * A histogram with more than
 * MESH_MAX_BUCKETS buckets, or whose bounds differ from its row's, is left
 * out of the row's histogram and counted. Memory is at most about
 * max_rows * (fine + coarse slots) * (2 + MESH_MAX_BUCKETS) * 4 bytes of
 * snapshots (12.7 KB a row once the hour is full: 104 MB with the default
 * 8192 rows) plus max_series * 200 bytes of series state (13 MB). Memory
 * follows the rows and series in use: a small mesh uses a few hundred KB, a
 * 1000-workload mesh with 5 peers each (about 5000 rows) about 62 MB.
 *
 * Not locked: the owner (mesh_page) serialises every call.
 */
#ifndef OUTRIDER_COLLECTOR_MESH_HISTORY_H
#define OUTRIDER_COLLECTOR_MESH_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "metric_store.h"

#define MESH_MAX_BUCKETS 24 /* histogram buckets (bounds + 1) a row keeps */

/* Defaults of mesh_history_config_t (a field left 0 takes its default). */
#define MESH_INTERVAL_MS 5000u
#define MESH_FINE_SLOTS 61u
#define MESH_COARSE_EVERY 12u
#define MESH_COARSE_SLOTS 61u
#define MESH_MAX_ROWS 8192u
#define MESH_MAX_SERIES 65536u

typedef struct mesh_history_config {
    uint32_t interval_ms;  /* between two snapshots of the fine ring */
    uint32_t fine_slots;   /* fine ring slots (>= 2): it spans interval_ms * (fine_slots - 1) */
    uint32_t coarse_every; /* a coarse snapshot every this many fine ones */
    uint32_t coarse_slots; /* coarse ring slots (>= 2) */
    uint32_t max_rows;
    uint32_t max_series;
} mesh_history_config_t;

typedef enum mesh_reporter { MESH_REPORTER_SOURCE = 0, MESH_REPORTER_DESTINATION = 1 } mesh_reporter_t;

/*
 * A row's identity. Services are FQDNs (NAME.NAMESPACE.svc.cluster.local)
 * when the namespace is known, else the bare name; a side without a name
 * (a caller outside the mesh) is the service "unknown". Strings are
 * NUL-terminated, never NULL ("" when absent).
 */
typedef struct mesh_row_key {
    mesh_reporter_t reporter;
    const char *src_service, *src_name, *src_namespace;
    const char *dst_service, *dst_name, *dst_namespace;
    const char *version; /* destination_version; "unknown" when absent */
} mesh_row_key_t;

typedef struct mesh_history_stats {
    uint32_t rows, max_rows;
    uint32_t series, max_series; /* series tracked at the last sample */
    uint64_t rows_dropped;       /* series increases lost: no row could be made for them */
    uint64_t series_dropped;     /* series left untracked at a sample (summed over samples) */
    uint64_t histograms_skipped; /* histograms left out: past MESH_MAX_BUCKETS (per sample), or an increase
                                    with other bounds than its row's */
    uint64_t samples;
    size_t bytes; /* memory held */
} mesh_history_stats_t;

typedef struct mesh_history mesh_history_t;

/* Create an empty history; cfg may be NULL (defaults). Free with mesh_history_destroy. */
mesh_history_t *mesh_history_create(const mesh_history_config_t *cfg);

/* NULL is a no-op. */
void mesh_history_destroy(mesh_history_t *h);

/*
 * A sample: mesh_history_sample_begin, mesh_history_sample_series for every
 * series of the metric store (it is a metric_series_fn; ctx is the
 * history; other families are skipped), then mesh_history_sample_end.
 * now_ms (monotonic) dates the values and decides which idle rows may be
 * reused.
 */
void mesh_history_sample_begin(mesh_history_t *h, uint64_t now_ms);
size_t mesh_history_sample_series(void *h, const metric_series_view_t *s);
void mesh_history_sample_end(mesh_history_t *h);

/* Snapshot every row as of the last sample (into the fine ring, and every coarse_every-th time the coarse one). */
void mesh_history_tick(mesh_history_t *h);

/* The increase of one row within a window. */
typedef struct mesh_row_delta {
    const mesh_row_key_t *key; /* the history's; valid until its next sample */
    uint64_t requests;
    uint64_t errors;
    uint32_t n_bounds;                  /* histogram bounds; 0 = no histogram */
    const double *bounds;               /* n_bounds upper bounds, ascending (the +Inf bucket is implied) */
    uint64_t buckets[MESH_MAX_BUCKETS]; /* per bucket, not cumulative: n_bounds + 1 used */
} mesh_row_delta_t;

typedef struct mesh_window {
    mesh_row_delta_t *rows; /* rows that grew within the window; xmalloc'ed */
    size_t n;
    uint64_t covered_ms;    /* from the snapshot the increases start at to the last sample */
    uint32_t resolution_ms; /* the interval of the ring read */
} mesh_window_t;

/* The longest window the history spans: interval * coarse_every * (coarse_slots - 1). */
uint64_t mesh_history_max_window_ms(const mesh_history_t *h);

/* The interval between two samples of the fine ring. */
uint32_t mesh_history_interval_ms(const mesh_history_t *h);

/*
 * Each row's increase over the window_ms ending at the last sample (see the
 * top). Returns 0, or -1 when window_ms is 0 or longer than
 * mesh_history_max_window_ms. Free out with mesh_window_dispose.
 */
int mesh_history_window(mesh_history_t *h, uint64_t window_ms, mesh_window_t *out);
void mesh_window_dispose(mesh_window_t *w);

void mesh_history_stats(const mesh_history_t *h, mesh_history_stats_t *st);

#endif
