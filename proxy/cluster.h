/*
 * cluster: a worker's state for one upstream cluster, and the policies that
 * live on it (DestinationRule connectionPool and outlierDetection): the
 * circuit breaker and outlier detection. The exchange asks the module, it
 * does not keep the counts itself.
 *
 * One cluster_state_t per (worker view, cluster), touched by that worker's
 * thread only; process-wide counters (ejections, returns, endpoints ejected
 * now) go to the runtime's atomics (runtime_count, rt->ejected).
 *
 * Breaker. Before an attempt leases a connection, cluster_admit says:
 *   CLUSTER_GO        lease it (cluster_leased counts it; cluster_released
 *                     gives it back and wakes the first waiter);
 *   CLUSTER_WAIT      tcp.maxConnections are in use: the waiter is queued
 *                     (FIFO) and its wake() is called when a connection is
 *                     released; cluster_unwait takes it out (the request
 *                     went away first);
 *   CLUSTER_OVERFLOW  http.http1MaxPendingRequests are waiting already (1024
 *                     when unset, Envoy's default): 503 with flag UO.
 * http.maxRetries bounds the exchanges retrying at once (cluster_retry_take
 * / cluster_retry_give).
 *
 * Outlier detection. cluster_result records how an attempt on an endpoint
 * ended (a status, 0 for a connection failure); consecutive5xxErrors (5)
 * or consecutiveGatewayErrors in a row eject the endpoint for
 * baseEjectionTime (30 s) times its ejections, unless maxEjectionPercent
 * (10) of the endpoints are out already. cluster_pick_mask gives the load
 * balancer the endpoints to avoid: those tried already and the ejected ones
 * (returning those whose time is over), unless fewer than minHealthPercent
 * would be left (then outlier detection steps aside, as in Envoy).
 */
#ifndef OUTRIDER_PROXY_CLUSTER_H
#define OUTRIDER_PROXY_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct runtime;
struct router_cluster;

/* Requests waiting for a connection when DestinationRule http1MaxPendingRequests is not set (Envoy's default). */
#define CLUSTER_DEFAULT_MAX_PENDING 1024

/* A request waiting for a connection; embedded in its owner. */
typedef struct cluster_waiter {
    struct cluster_waiter *next;
    void (*wake)(struct cluster_waiter *w); /* a connection is free: the owner tries again (not queued any more) */
    bool queued;
} cluster_waiter_t;

typedef struct cluster_endpoint_health {
    uint32_t consecutive_5xx;     /* 5xx answers and connection failures in a row */
    uint32_t consecutive_gateway; /* 502/503/504 and connection failures in a row */
    uint32_t times_ejected;       /* the ejection time is baseEjectionTime times this */
    uint64_t ejected_until_ms;    /* loop time; 0 = in the pool */
} cluster_endpoint_health_t;

typedef struct cluster_state {
    uint32_t leased;    /* upstream connections in use by exchanges */
    uint32_t retrying;  /* exchanges with a retry scheduled or running */
    uint32_t n_waiting; /* requests waiting for a connection */
    cluster_waiter_t *wait_head, *wait_tail;
    cluster_endpoint_health_t *health; /* per endpoint with outlierDetection, else NULL */
    uint32_t n_ejected;
} cluster_state_t;

/* Set up cs for cl (zeroed; health allocated when cl has outlier detection). Aborts on out of memory. */
void cluster_state_init(cluster_state_t *cs, const struct router_cluster *cl);

/* Free cs; its ejected endpoints leave rt's count. No waiter may be queued. */
void cluster_state_dispose(cluster_state_t *cs, struct runtime *rt, const struct router_cluster *cl);

/* ---- breaker ---- */

enum cluster_admit { CLUSTER_GO, CLUSTER_WAIT, CLUSTER_OVERFLOW };

/*
 * May an attempt open or lease a connection now? connections: the
 * cluster's open upstream connections in this worker; idle: idle ones in
 * the endpoint's pool (a lease of an idle one is always allowed). On
 * CLUSTER_WAIT, w is queued.
 */
enum cluster_admit cluster_admit(cluster_state_t *cs, const struct router_cluster *cl, uint32_t connections,
                                 size_t idle, cluster_waiter_t *w);

/* Take w out of the queue (no-op when not queued). */
void cluster_unwait(cluster_state_t *cs, cluster_waiter_t *w);

/* An exchange leased a connection / gave it back (then the first waiter is woken). */
void cluster_leased(cluster_state_t *cs);
void cluster_released(cluster_state_t *cs);

/* http.maxRetries: take a retry slot (false: none left) / give it back. */
bool cluster_retry_take(cluster_state_t *cs, const struct router_cluster *cl);
void cluster_retry_give(cluster_state_t *cs);

/* ---- outlier detection ---- */

/* An attempt on endpoint ep ended with status (0: connection failure) at loop time now_ms. */
void cluster_result(cluster_state_t *cs, struct runtime *rt, const struct router_cluster *cl, int ep, int status,
                    uint64_t now_ms);

/*
 * The endpoints a pick must avoid into mask (ROUTER_MAX_ENDPOINTS bits):
 * tried (those tried already) plus the ejected ones, as above. Returns
 * false when every endpoint is ejected (503 UH).
 */
bool cluster_pick_mask(cluster_state_t *cs, struct runtime *rt, const struct router_cluster *cl, uint64_t now_ms,
                       const uint64_t *tried, uint64_t *mask);

#endif
