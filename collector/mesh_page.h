/*
 * mesh_page: the live service graph on the Zipkin port, with no server
 * besides the collector:
 *
 *   GET /mesh                   the page (HTML; it polls /api/mesh and draws the graph as SVG)
 *   GET /mesh/NAME              its script, style sheet and icon
 *   GET /api/mesh?window=5m     the graph as JSON (mesh_graph.h); window: 10s to 1h, default 5m
 *
 * The page's files are embedded in the binary at build time from
 * collector/mesh_page/ (CMake turns each into a byte array), so nothing is
 * fetched from elsewhere when it is viewed; they are sent with a
 * Content-Security-Policy of default-src 'self'.
 *
 * Design. A sampler thread reads the metric store into a mesh_history
 * (mesh_history.h) every MESH_INTERVAL_MS and snapshots it; an /api/mesh
 * request samples again first (at most once a second), so an answer
 * includes what arrived up to then. One mutex guards the history; the
 * metric store is visited in parts of MESH_VISIT_SERIES series under it
 * (lock order: this mutex, then the store's). The trace store's dependency
 * links are read before the mutex is taken.
 *
 * Roles: the graph is built from this collector's own stores, so roles all
 * and store serve it (a store member: the series and traces of its
 * partitions); ingest and query keep no store and answer 404 saying so.
 */
#ifndef OUTRIDER_COLLECTOR_MESH_PAGE_H
#define OUTRIDER_COLLECTOR_MESH_PAGE_H

#include <stddef.h>

#include "server.h"

struct collector;

typedef struct mesh_page mesh_page_t;

/*
 * Create the page's state for c (its stores must outlive it) and, in roles
 * all and store, take the first sample (the baseline) and start the
 * sampler thread. Aborts when the thread cannot start. Free with
 * mesh_page_destroy once the listeners have stopped.
 */
mesh_page_t *mesh_page_create(struct collector *c);

/* Stop the sampler and free everything; NULL is a no-op. */
void mesh_page_destroy(mesh_page_t *m);

/*
 * Answer req when its path is one of the page's (above): 1 when it
 * answered, 0 otherwise (and for OPTIONS, left to the CORS preflight).
 * Methods other than GET and HEAD get 405; a bad window 400 with the reason.
 * NULL m answers nothing.
 */
int mesh_page_handle(mesh_page_t *m, const http_request_t *req, http_response_t *resp);

/*
 * The sampler's own series for /metrics: outrider_mesh_samples_total,
 * outrider_mesh_sample_cpu_seconds_total (the sampler's CPU time),
 * outrider_mesh_last_sample_seconds (wall time of the last), outrider_mesh_rows
 * and outrider_mesh_series (tracked, with their limits as *_limit),
 * outrider_mesh_bytes (the history's memory), and
 * outrider_mesh_dropped_total{what="rows"|"series"|"histograms"}. Nothing
 * for NULL m or a role without the page.
 */
void mesh_page_render_metrics(mesh_page_t *m, buf_t *b, int openmetrics);

/* The page's files, generated at build time from collector/mesh_page/ (mesh_page/embed.cmake). */
typedef struct mesh_asset {
    const char *name; /* file name, as served under /mesh/ */
    const unsigned char *data;
    size_t len;
} mesh_asset_t;

extern const mesh_asset_t mesh_assets[];
extern const size_t mesh_assets_count;

#endif
