/*
 * filter_ratelimit: the RateLimit documents (kind RateLimit, config.h) as
 * two filters on the exchange (filter.h). Of the documents whose hosts
 * hold the request's destination service (and whose routes, when listed,
 * name its route), the one naming the route wins over one for the whole
 * host; local and global blocks are looked up separately.
 *
 * Local: the document's token bucket, shared by the workers (runtime.h);
 * empty: 429 with flag RL and x-ratelimit-limit/-remaining/-reset, unless
 * the document is in shadow mode (then only counted).
 *
 * Global: one Redis call (rlglobal.h) with a key per limit whose
 * descriptor entries the request has; the request waits for the verdict:
 * deny is 429 RL (shadow: counted, let through); Redis failing is counted
 * and, with failureMode deny, 500 with flag RLSE.
 *
 * Every decision is counted in the document's counters
 * (outrider_proxy_{local,global}_rate_limit_total).
 */
#ifndef OUTRIDER_PROXY_FILTER_RATELIMIT_H
#define OUTRIDER_PROXY_FILTER_RATELIMIT_H

#include "filter.h"
#include "rlglobal.h"

/* The global filter's state in one exchange (zero it at the exchange's start). */
typedef struct filter_rl_global {
    filter_exchange_t *x;
    rlg_call_t *call;              /* the Redis call being awaited, NULL: none */
    const proxy_rate_limit_t *doc; /* its document */
    uint64_t limit;                /* the tightest requestsPerUnit of the limits sent (x-ratelimit-limit) */
    bool waiting;
    bool in_check; /* inside rlg_check: a verdict given at once is returned, not resumed */
    bool went_on;  /* ...and it let the request through */
} filter_rl_global_t;

enum filter_result filter_rl_local(filter_exchange_t *x);
enum filter_result filter_rl_global(filter_exchange_t *x, filter_rl_global_t *st);
/* The exchange ended: drop the call being awaited, if any. */
void filter_rl_global_cancel(filter_rl_global_t *st);

#endif
