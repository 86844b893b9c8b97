/*
 * mesh_graph: the service graph of one window, as GET /api/mesh serves it
 * and the /mesh page draws it.
 *
 * Edges come from the increases of mesh_history's rows (the sidecars'
 * istio_* metrics) and, for calls between traced services that no sidecar
 * reported, from the trace store's dependency links. A pair of services
 * seen by both sidecars is counted once: from the caller's side
 * (reporter="source", which also sees requests that failed before reaching
 * the callee) when it reported any in the window, else from the callee's
 * (reporter="destination": callers outside the mesh, source "unknown").
 * Rates divide by the covered time. p99 is interpolated within the
 * histogram's buckets as Prometheus's histogram_quantile does. A node's
 * figures are its inbound calls; its versions are the destination_version
 * split of its inbound metric requests (the canary split). Trace edges
 * count the calls of sampled traces in the dependency buckets (1 minute
 * grain) overlapping the window, and have no p99.
 *
 * Limits: past max_nodes or max_edges, the busiest edges (by rps) are kept
 * while both limits hold, and "truncated" is true.
 *
 * JSON shape (numbers without units are counts; rates are per second):
 *
 *   {"window": "5m", "windowSeconds": 300,
 *    "coveredSeconds": 297.5,     what the figures cover: less than the window while the history is younger
 *    "resolutionSeconds": 5,      interval of the snapshots read (5 s up to 5m, 60 s beyond)
 *    "generatedAt": "2025-01-02T03:04:05.678Z", "generatedAtMs": 1735787045678,
 *    "truncated": false,
 *    "limits": {"maxNodes": 200, "maxEdges": 500, "maxRows": 1024, "maxSeries": 20000},
 *    "dropped": {"nodes": 0, "edges": 0,      left out of this answer for the limits
 *                "rows": 0, "series": 0, "histograms": 0},   since start: see mesh_history_stats_t
 *    "nodes": [{"service": "reviews.shop.svc.cluster.local",  FQDN; "unknown"; or a traced service's Zipkin name
 *               "name": "reviews", "namespace": "shop",
 *               "kind": "service" | "unknown" | "traced",
 *               "rps": 4.2, "requests": 1260, "errors": 3, "successRate": 0.99762 | null,   inbound
 *               "outRps": 0, "outRequests": 0,
 *               "versions": [{"version": "v1", "rps": 3.36, "requests": 1008, "share": 0.8}, ...]}],
 *    "edges": [{"source": "productpage.shop.svc.cluster.local", "destination": "reviews.shop.svc.cluster.local",
 *               "reporter": "source" | "destination" | "trace",
 *               "rps": 4.2, "requests": 1260, "errors": 3, "successRate": 0.99762 | null, "p99Ms": 48.1 | null,
 *               "traces": "/api/v2/traces?serviceName=productpage.shop&remoteServiceName=reviews
 *                          &lookback=300000&limit=10",     (one string)
 *               "zipkin": "/zipkin/?serviceName=productpage.shop&remoteServiceName=reviews
 *                          &lookback=millis&millis=300000&endTs=1735787045678&limit=10" | null}]}
 *
 * Nodes are sorted by service, edges by source then destination. Strings
 * are UTF-8 as the metric labels and span names hold them, escaped per
 * RFC 8259. successRate is the share of requests that did not fail (5xx,
 * or no response); null without requests. Both links search the same
 * traces: "traces" with the collector's Zipkin API, "zipkin" with the
 * Zipkin UI's discover page (zipkin-lens reads those query parameters)
 * at opts.zipkin_ui, null when there is none. They ask for the caller's
 * spans (Zipkin service name NAME.NAMESPACE, as the sidecars name it)
 * whose remote service is the callee (its bare name, as the sidecars
 * record it), over the window ending at generatedAtMs.
 */
#ifndef OUTRIDER_COLLECTOR_MESH_GRAPH_H
#define OUTRIDER_COLLECTOR_MESH_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mesh_history.h"
#include "span_store.h"

#define MESH_MAX_NODES 200u /* nodes in one answer */
#define MESH_MAX_EDGES 500u /* edges in one answer */

typedef struct mesh_graph_opts {
    const char *window; /* as asked ("5m"); written back as is */
    uint64_t window_ms;
    uint64_t generated_ms; /* epoch milliseconds */
    uint32_t max_nodes;    /* 0 = MESH_MAX_NODES */
    uint32_t max_edges;    /* 0 = MESH_MAX_EDGES */
    const char *zipkin_ui; /* the Zipkin UI's search page ("/zipkin/"); NULL or "" = none */
} mesh_graph_opts_t;

/*
 * Append the graph of window w (mesh_history_window) and the dependency
 * links of the same window (NULL when n_links is 0) to out as JSON (the
 * shape above). st gives the limits and the dropped counters. Reads w's
 * row keys, so the history must not be sampled meanwhile.
 */
void mesh_graph_json(const mesh_window_t *w, const span_dep_link_t *links, size_t n_links,
                     const mesh_history_stats_t *st, const mesh_graph_opts_t *o, buf_t *out);

/*
 * The q-quantile (0..1) of a histogram with n_bounds ascending upper bounds
 * and n_bounds + 1 per-bucket (not cumulative) counts, the last one the
 * +Inf bucket, as Prometheus's histogram_quantile: linear within the bucket
 * holding the rank, the first bucket starting at 0, the highest finite
 * bound when the rank falls in +Inf. NaN without observations or finite
 * bounds.
 */
double mesh_histogram_quantile(double q, const double *bounds, uint32_t n_bounds, const uint64_t *buckets);

#endif
