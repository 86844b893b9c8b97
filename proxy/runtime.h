/*
 * runtime: one loaded configuration made ready to serve, and each
 * worker's view of it.
 *
 * A runtime_t bundles a proxy_config_t with the router built from it and
 * the proxy's own peer metadata. It is immutable and shared by every
 * worker thread; its reference count (atomic) keeps it alive while any
 * worker still uses it, so a reload (SIGHUP) can swap in a new one while
 * requests routed by the old one finish.
 *
 * A runtime_view_t is a worker's mutable state for one runtime: a load
 * balancer per cluster and upstream connection pools per (cluster,
 * endpoint), created on first use with the cluster's connection policy.
 * Views are touched only by their worker's thread. Exchanges in flight
 * hold the view (runtime_view_hold/_drop); a view retired by a reload is
 * freed, and its runtime reference dropped, when the last of them ends.
 */
#ifndef OUTRIDER_PROXY_RUNTIME_H
#define OUTRIDER_PROXY_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster.h"
#include "config.h"
#include "router.h"
#include "telemetry.h"
#include "tracectx.h"
#include "upstream.h"

/* How a rate limit treated a request, for the counters at /stats/prometheus. */
enum runtime_rl_result { RL_ALLOWED, RL_LIMITED, RL_SHADOW_LIMITED, RL_ERROR, RL_RESULTS };
enum runtime_rl_kind { RL_LOCAL, RL_GLOBAL };

/* One RateLimit document's state, shared by every worker: its `local` token bucket and its counters. */
typedef struct runtime_bucket {
    atomic_llong tokens;
    atomic_ullong last_fill_ms;          /* monotonic clock */
    atomic_ullong counts[2][RL_RESULTS]; /* [runtime_rl_kind][runtime_rl_result] */
} runtime_bucket_t;

/*
 * Per-cluster counters of retries, mirrors and outlier ejections, shared by every worker, at
 * /stats/prometheus (admin_stats in main.c, which says what each counts).
 * Workers bump them with runtime_count: one relaxed atomic add, no lock.
 */
enum runtime_cluster_counter {
    RC_RETRY,                /* a retry attempt started */
    RC_RETRY_SUCCESS,        /* a retried request's final response is one its policy does not retry */
    RC_RETRY_LIMIT_EXCEEDED, /* a request wanted one more retry after using all of them */
    RC_MIRROR_SENT,          /* a shadow copy started (mirror cluster) */
    RC_MIRROR_FAILED,        /* ... which was not delivered, or its upstream failed (a subset of sent) */
    RC_OUTLIER_EJECTION,     /* an endpoint ejected by outlier detection */
    RC_OUTLIER_RETURN,       /* an ejected endpoint back in the pool */
    RC_COUNTERS
};

typedef struct runtime_cluster_counters {
    atomic_ullong n[RC_COUNTERS];
} runtime_cluster_counters_t;

typedef struct runtime {
    proxy_config_t *cfg;
    router_t *router;
    peer_info_t self;
    char service_name[2 * PEER_FIELD_MAX + 2]; /* "<app>.<namespace>", the span's local service */
    char self_fqdn[2 * PEER_FIELD_MAX + 24];   /* "<app>.<namespace>.svc.cluster.local": inbound destination_service */
    runtime_bucket_t *buckets;                 /* per RateLimit document (cfg->rate_limits) */
    atomic_uint *ejected;                      /* per cluster: endpoints ejected now (summed over workers) */
    runtime_cluster_counters_t *counters;      /* per cluster, all workers: retries, mirrors, ejections */
    http1_header_t peer_fields[2];             /* x-envoy-peer-metadata and -id for self (values allocated) */
    tele_policy_t *tele_policy;                /* the Telemetry documents applied; NULL: Istio's defaults */
    struct tls_ctx **tls;                      /* per cluster: its DestinationRule's TLS (SIMPLE, MUTUAL), or NULL */
    struct authz *authz;                       /* the AuthorizationPolicies of the inbound side, NULL: none apply */
    uint64_t serial; /* unique per runtime of the process (what a connection's once-sent metadata was) */
    atomic_int refs;
} runtime_t;

/*
 * Take a token from the bucket of RateLimit document i (its local block).
 * Returns true when one was left; *remaining is what is left after it,
 * *reset_s the seconds until the next fill.
 */
bool runtime_bucket_take(runtime_t *rt, size_t i, uint64_t *remaining, uint64_t *reset_s);

/* Count one event of kind k for cluster cl (any worker). */
static inline void runtime_count(runtime_t *rt, const router_cluster_t *cl, enum runtime_cluster_counter k)
{
    atomic_fetch_add_explicit(&rt->counters[cl->index].n[k], 1, memory_order_relaxed);
}

/*
 * The destination_service label of requests to cluster cl, the string
 * istio_requests_total carries for them (record() in conn.c): the
 * cluster's host for an outbound cluster, the proxy's own FQDN for the
 * inbound one.
 */
const char *runtime_destination_service(const runtime_t *rt, const router_cluster_t *cl);

/* Build the runtime for cfg; on success it owns cfg. NULL and a reason in err on failure (cfg untouched). */
runtime_t *runtime_create(proxy_config_t *cfg, char *err, size_t errlen);
void runtime_ref(runtime_t *rt);
/* Drop a reference; the last one frees the runtime and its configuration. */
void runtime_unref(runtime_t *rt);

typedef struct runtime_view {
    runtime_t *rt; /* one reference held */
    uv_loop_t *loop;
    router_lb_t *lbs;         /* per cluster */
    upstream_pool_t ***pools; /* [cluster][endpoint], NULL until first use */
    cluster_state_t *cs;      /* per cluster: breaker and outlier detection (cluster.h) */
    uint64_t **tele_dest;     /* [cluster][endpoint + 1]: telemetry destination handles, rows made on first use */
    uint32_t users;           /* exchanges holding the view */
    bool retired;
    struct tls_ctx *const *mesh_tls; /* the worker's slot for the sidecar's certificate (NULL: no identity) */
    struct tls_stats *tls_stats;     /* handshake counters, all workers */
    struct addr_pool *addr_pools;    /* pools by address: original destinations (interceptionMode REDIRECT) */
    size_t n_addr_pools;
} runtime_view_t;

runtime_view_t *runtime_view_create(runtime_t *rt, uv_loop_t *loop);
/*
 * Whether connections to endpoint ep of cl use mutual TLS with the
 * sidecar's identity: DestinationRule tls ISTIO_MUTUAL, or, with no tls
 * setting, an endpoint labelled security.istio.io/tlsMode: istio (Istio's
 * auto mTLS). Never without an identity (spec.identity).
 */
bool runtime_mesh_mtls(const runtime_t *rt, const router_cluster_t *cl, int ep);
/* The pool of endpoint ep of cluster cl, created on first use with the cluster's connection policy. */
upstream_pool_t *runtime_view_pool(runtime_view_t *v, const router_cluster_t *cl, int ep);
/*
 * A plain pool for the address addr in place of cl's endpoint (the
 * PassthroughCluster's original destinations; the inbound cluster's app
 * port of a redirected connection), created on first use with cl's
 * connection policy. A view makes at most RUNTIME_ADDR_POOLS of them; past
 * that, NULL (the exchange answers 503) until a reload makes a new view.
 */
#define RUNTIME_ADDR_POOLS 1024
upstream_pool_t *runtime_view_addr_pool(runtime_view_t *v, const router_cluster_t *cl,
                                        const struct sockaddr_storage *addr);
/*
 * The cache of telemetry's destination handle (tele_request_t.dest_handle)
 * for requests to endpoint ep of cluster cl (-1: no endpoint chosen),
 * 0 until telemetry first fills it.
 */
uint64_t *runtime_view_tele_dest(runtime_view_t *v, const router_cluster_t *cl, int ep);
/* upstream_pool_trim on every pool of the view; how many connections gave their buffers up. */
size_t runtime_view_trim(runtime_view_t *v);
/* Open upstream connections of cluster cl in this worker: leased plus idle in its pools. */
uint32_t runtime_view_connections(const runtime_view_t *v, const router_cluster_t *cl);
void runtime_view_hold(runtime_view_t *v);
void runtime_view_drop(runtime_view_t *v);
/* No new exchange will use v: it is freed (pools closed, runtime unreferenced) once no exchange holds it. */
void runtime_view_retire(runtime_view_t *v);

#endif
