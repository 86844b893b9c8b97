/*
 * filter: the policies an exchange runs between routing and its first
 * attempt, with one contract. In order (conn.c runs them):
 *
 *   local rate limit   filter_ratelimit.c  RateLimit local (token bucket)
 *   global rate limit  filter_ratelimit.c  RateLimit global (Redis), may wait for the answer
 *   fault              filter_fault.c      VirtualService fault: delay (waits on a timer), abort
 *   mirror             filter_mirror.c     VirtualService mirror(s): shadow copies, never waits
 *
 * and then the cluster module (cluster.h) at each attempt: the breaker,
 * which may make the attempt wait for a connection, and outlier detection.
 * RequestAuthentication and AuthorizationPolicy (jwt.c, authz.c) are not
 * filters: the inbound exchange runs them before routing, because they
 * change the request the upstream head is built from (the normalized path,
 * the token's header removed, claim headers added) and never wait.
 *
 * A filter is called with the exchange's filter_exchange_t and its own
 * per-exchange state, and returns:
 *   FILTER_CONTINUE  the next filter runs;
 *   FILTER_REPLIED   it answered (through x->reply): the chain stops;
 *   FILTER_WAIT      it holds the request; later it calls either x->resume
 *                    (the next filter runs) or x->reply, exactly once, from
 *                    the loop. The exchange calls the filter's cancel
 *                    function when it ends first; no call comes after that.
 * A waiting filter's callback first asks x->over(x): when the exchange
 * already answered (say, a request timeout), the filter drops its result.
 * Filters never touch the connection, the parser or the upstream.
 */
#ifndef OUTRIDER_PROXY_FILTER_H
#define OUTRIDER_PROXY_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http1.h"
#include "router.h"
#include "runtime.h"

enum filter_result { FILTER_CONTINUE, FILTER_REPLIED, FILTER_WAIT };

#define FILTER_REPLY_FIELDS 3 /* header fields a filter may add to its answer */

/* A local answer. */
typedef struct filter_reply {
    int status;
    uint32_t flags;   /* response flags (TELE_RF_*) */
    const char *text; /* the body */
    http1_header_t fields[FILTER_REPLY_FIELDS];
    size_t n_fields;
} filter_reply_t;

typedef struct filter_exchange filter_exchange_t;

/* What a filter sees of the exchange (read-only) and may ask of it. */
struct filter_exchange {
    const router_request_t *req; /* method, path, query, authority, headers, source ip */
    const router_decision_t *d;  /* the routing decision: d->route is NULL without a route (inbound) */
    const router_cluster_t *cl;  /* the destination cluster */
    runtime_view_t *view;        /* the configuration, and the worker's state of it */
    uv_loop_t *loop;
    uint64_t *rng;    /* the worker's random state (tracectx_rand) */
    struct rlg *rlg;  /* the worker's Redis client, NULL: none */
    const char *peer; /* the client's address */
    buf_t *scratch;   /* the exchange's scratch bytes: free to use during a filter call, not after it */
    void (*reply)(filter_exchange_t *x, const filter_reply_t *r); /* answer; the chain stops */
    void (*resume)(filter_exchange_t *x);                         /* a wait is over: go on */
    bool (*over)(filter_exchange_t *x);                           /* the exchange answered already */
};

/* Whether a percentage (0..100) chance comes up, from the exchange's random state. */
bool filter_chance(filter_exchange_t *x, double percent);

#endif
