/*
 * cluster: the breaker and outlier detection of one cluster in one worker;
 * see cluster.h.
 */
#include "cluster.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "runtime.h"
#include "xalloc.h"

void cluster_state_init(cluster_state_t *cs, const router_cluster_t *cl)
{
    memset(cs, 0, sizeof *cs);
    if (cl->policy != NULL && cl->policy->has_outlier && cl->n_endpoints > 0)
        cs->health = xcalloc(cl->n_endpoints, sizeof *cs->health);
}

void cluster_state_dispose(cluster_state_t *cs, runtime_t *rt, const router_cluster_t *cl)
{
    if (cs->n_ejected > 0)
        atomic_fetch_sub(&rt->ejected[cl->index], cs->n_ejected);
    free(cs->health);
    cs->health = NULL;
    cs->n_ejected = 0;
}

/* ---- breaker ---- */

enum cluster_admit cluster_admit(cluster_state_t *cs, const router_cluster_t *cl, uint32_t connections, size_t idle,
                                 cluster_waiter_t *w)
{
    const proxy_traffic_policy_t *p = cl->policy;
    if (p == NULL || p->max_connections <= 0 || idle > 0 || connections < (uint64_t)p->max_connections)
        return CLUSTER_GO;
    int64_t max_pending =
        p->http1_max_pending_requests != PROXY_UNSET ? p->http1_max_pending_requests : CLUSTER_DEFAULT_MAX_PENDING;
    if ((int64_t)cs->n_waiting >= max_pending)
        return CLUSTER_OVERFLOW;
    w->next = NULL;
    w->queued = true;
    if (cs->wait_tail != NULL)
        cs->wait_tail->next = w;
    else
        cs->wait_head = w;
    cs->wait_tail = w;
    cs->n_waiting++;
    return CLUSTER_WAIT;
}

void cluster_unwait(cluster_state_t *cs, cluster_waiter_t *w)
{
    if (!w->queued)
        return;
    cluster_waiter_t **pp = &cs->wait_head, *prev = NULL;
    while (*pp != NULL && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == w) {
        *pp = w->next;
        if (cs->wait_tail == w)
            cs->wait_tail = prev;
        cs->n_waiting--;
    }
    w->next = NULL;
    w->queued = false;
}

void cluster_leased(cluster_state_t *cs)
{
    cs->leased++;
}

void cluster_released(cluster_state_t *cs)
{
    cs->leased--;
    cluster_waiter_t *w = cs->wait_head;
    if (w == NULL)
        return;
    cs->wait_head = w->next;
    if (cs->wait_head == NULL)
        cs->wait_tail = NULL;
    cs->n_waiting--;
    w->next = NULL;
    w->queued = false;
    w->wake(w);
}

bool cluster_retry_take(cluster_state_t *cs, const router_cluster_t *cl)
{
    const proxy_traffic_policy_t *p = cl->policy;
    if (p != NULL && p->max_retries != PROXY_UNSET && cs->retrying >= (uint64_t)p->max_retries)
        return false;
    cs->retrying++;
    return true;
}

void cluster_retry_give(cluster_state_t *cs)
{
    cs->retrying--;
}

/* ---- outlier detection ---- */

static int64_t policy_or(int64_t v, int64_t dflt)
{
    return v != PROXY_UNSET ? v : dflt;
}

/* Ejected endpoints whose time is over go back into the pool. */
static void refresh(cluster_state_t *cs, runtime_t *rt, const router_cluster_t *cl, uint64_t now_ms)
{
    if (cs->n_ejected == 0)
        return;
    for (size_t e = 0; e < cl->n_endpoints; e++) {
        cluster_endpoint_health_t *h = &cs->health[e];
        if (h->ejected_until_ms != 0 && h->ejected_until_ms <= now_ms) {
            h->ejected_until_ms = 0;
            cs->n_ejected--;
            atomic_fetch_sub(&rt->ejected[cl->index], 1);
            runtime_count(rt, cl, RC_OUTLIER_RETURN);
            log_info("outlier detection: %s returns to %s", cl->endpoints[e].name, cl->name);
        }
    }
}

void cluster_result(cluster_state_t *cs, runtime_t *rt, const router_cluster_t *cl, int ep, int status, uint64_t now_ms)
{
    if (ep < 0 || cs->health == NULL)
        return;
    cluster_endpoint_health_t *h = &cs->health[ep];
    const proxy_traffic_policy_t *p = cl->policy;
    bool err5 = status == 0 || status >= 500;
    bool gateway = status == 0 || (status >= 502 && status <= 504);
    h->consecutive_5xx = err5 ? h->consecutive_5xx + 1 : 0;
    h->consecutive_gateway = gateway ? h->consecutive_gateway + 1 : 0;
    int64_t max5 = policy_or(p->consecutive_5xx_errors, 5), maxgw = policy_or(p->consecutive_gateway_errors, 0);
    bool trip = (max5 > 0 && h->consecutive_5xx >= max5) || (maxgw > 0 && h->consecutive_gateway >= maxgw);
    if (!trip)
        return;
    refresh(cs, rt, cl, now_ms); /* ejections whose time is over do not count (nor keep this one out) */
    if (h->ejected_until_ms != 0)
        return;
    uint32_t n = (uint32_t)cl->n_endpoints;
    int64_t max_pct = policy_or(p->max_ejection_percent, 10);
    if (cs->n_ejected > 0 && (int64_t)(cs->n_ejected + 1) * 100 > max_pct * (int64_t)n) {
        log_debug("outlier detection: %s not ejected: maxEjectionPercent %lld reached", cl->endpoints[ep].name,
                  (long long)max_pct);
        return;
    }
    h->times_ejected++;
    uint64_t ms = (uint64_t)policy_or(p->base_ejection_time_ms, 30000) * h->times_ejected;
    h->ejected_until_ms = now_ms + ms;
    h->consecutive_5xx = h->consecutive_gateway = 0;
    cs->n_ejected++;
    atomic_fetch_add(&rt->ejected[cl->index], 1);
    runtime_count(rt, cl, RC_OUTLIER_EJECTION);
    log_info("outlier detection: ejected %s from %s for %llu ms (%s %u)", cl->endpoints[ep].name, cl->name,
             (unsigned long long)ms, status == 0 ? "connection failure, ejection" : "error status, ejection",
             h->times_ejected);
}

bool cluster_pick_mask(cluster_state_t *cs, runtime_t *rt, const router_cluster_t *cl, uint64_t now_ms,
                       const uint64_t *tried, uint64_t *mask)
{
    size_t words = (cl->n_endpoints + 63) / 64;
    memcpy(mask, tried, words * sizeof *mask);
    if (cs->health == NULL)
        return true;
    refresh(cs, rt, cl, now_ms);
    if (cs->n_ejected == 0)
        return true;
    size_t n = cl->n_endpoints;
    int64_t min_pct = policy_or(cl->policy->min_health_percent, 0);
    if (min_pct > 0 && (int64_t)(n - cs->n_ejected) * 100 < min_pct * (int64_t)n)
        return true; /* too few healthy: outlier detection steps aside, as in Envoy */
    if (cs->n_ejected >= n)
        return false;
    for (size_t e = 0; e < n; e++)
        if (cs->health[e].ejected_until_ms != 0)
            mask[e / 64] |= 1ull << (e % 64);
    /* every endpoint not yet ejected was tried already: let the pick retry one of them, never an ejected one */
    size_t free_left = 0;
    for (size_t e = 0; e < n; e++)
        free_left += !(mask[e / 64] & (1ull << (e % 64)));
    if (free_left == 0)
        for (size_t e = 0; e < n; e++)
            if (cs->health[e].ejected_until_ms == 0)
                mask[e / 64] &= ~(1ull << (e % 64));
    return true;
}
