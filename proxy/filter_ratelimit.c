/*
 * filter_ratelimit: RateLimit local and global as exchange filters; see
 * filter_ratelimit.h.
 */
#include "filter_ratelimit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "telemetry.h"

/* Whether RateLimit document rl applies to the request's destination (and route, when it names routes). */
static bool applies(const filter_exchange_t *x, const proxy_rate_limit_t *rl)
{
    bool host = false;
    for (size_t i = 0; i < rl->n_hosts && !host; i++)
        host = rl->services[i] == x->cl->service;
    if (!host)
        return false;
    if (rl->n_routes == 0)
        return true;
    const char *name = x->d->route != NULL ? x->d->route->name : NULL;
    for (size_t i = 0; name != NULL && i < rl->n_routes; i++)
        if (strcmp(rl->routes[i].name, name) == 0)
            return true;
    return false;
}

/* The document with a local (or global) block for this request: one naming its route wins. */
static const proxy_rate_limit_t *find(const filter_exchange_t *x, enum runtime_rl_kind kind)
{
    const proxy_config_t *cfg = x->view->rt->cfg;
    const proxy_rate_limit_t *found = NULL;
    for (size_t i = 0; i < cfg->n_rate_limits; i++) {
        const proxy_rate_limit_t *rl = &cfg->rate_limits[i];
        if (!(kind == RL_LOCAL ? rl->local.given : rl->global.given) || !applies(x, rl))
            continue;
        if (found == NULL || (rl->n_routes > 0 && found->n_routes == 0))
            found = rl;
    }
    return found;
}

static atomic_ullong *counts(const filter_exchange_t *x, const proxy_rate_limit_t *rl, enum runtime_rl_kind kind)
{
    runtime_t *rt = x->view->rt;
    return rt->buckets[rl - rt->cfg->rate_limits].counts[kind];
}

/* 429 with flag RL and the x-ratelimit-* fields. */
static void limited(filter_exchange_t *x, uint64_t limit, uint64_t remaining, uint64_t reset_s, const char *text)
{
    char lim[24], rem[24], reset[24];
    snprintf(lim, sizeof lim, "%llu", (unsigned long long)limit);
    snprintf(rem, sizeof rem, "%llu", (unsigned long long)remaining);
    snprintf(reset, sizeof reset, "%llu", (unsigned long long)reset_s);
    filter_reply_t r = {.status = 429,
                        .flags = TELE_RF_RL,
                        .text = text,
                        .fields = {{{"x-ratelimit-limit", 17}, {lim, strlen(lim)}},
                                   {{"x-ratelimit-remaining", 21}, {rem, strlen(rem)}},
                                   {{"x-ratelimit-reset", 17}, {reset, strlen(reset)}}},
                        .n_fields = 3};
    x->reply(x, &r);
}

enum filter_result filter_rl_local(filter_exchange_t *x)
{
    if (x->view->rt->cfg->n_rate_limits == 0)
        return FILTER_CONTINUE;
    const proxy_rate_limit_t *rl = find(x, RL_LOCAL);
    if (rl == NULL)
        return FILTER_CONTINUE;
    runtime_t *rt = x->view->rt;
    atomic_ullong *n = counts(x, rl, RL_LOCAL);
    uint64_t remaining, reset_s;
    if (runtime_bucket_take(rt, (size_t)(rl - rt->cfg->rate_limits), &remaining, &reset_s)) {
        atomic_fetch_add(&n[RL_ALLOWED], 1);
        return FILTER_CONTINUE;
    }
    if (rl->local.shadow) {
        atomic_fetch_add(&n[RL_SHADOW_LIMITED], 1);
        return FILTER_CONTINUE;
    }
    atomic_fetch_add(&n[RL_LIMITED], 1);
    limited(x, rl->local.max_tokens, remaining, reset_s, "local rate limited\n");
    return FILTER_REPLIED;
}

/* The descriptor key of a global limit for this request into out; false when an entry is missing (no limit). */
static bool global_key(const filter_exchange_t *x, const proxy_rate_limit_t *rl, const proxy_rl_limit_t *lim,
                       buf_t *out)
{
    buf_printf(out, "outrider:rl:%s/%s:%s", rl->meta.namespace, rl->meta.name, lim->name);
    for (size_t k = 0; k < lim->n_keys; k++) {
        const proxy_rl_key_t *e = &lim->keys[k];
        buf_append_char(out, '|');
        switch (e->kind) {
        case PROXY_RL_KEY_REQUEST_HEADER: {
            const http1_header_t *h = http1_header_find(x->req->headers, x->req->header_count, e->header);
            if (h == NULL)
                return false;
            buf_append(out, h->value.ptr, h->value.len);
            break;
        }
        case PROXY_RL_KEY_REMOTE_ADDRESS: buf_append_str(out, x->peer); break;
        case PROXY_RL_KEY_PATH: buf_append(out, x->req->path.ptr, x->req->path.len); break;
        case PROXY_RL_KEY_DESTINATION_SERVICE: buf_append_str(out, x->cl->host); break;
        }
    }
    return true;
}

static void on_verdict(void *ctx, enum rlg_verdict v, uint64_t remaining, uint64_t reset_s)
{
    filter_rl_global_t *st = ctx;
    filter_exchange_t *x = st->x;
    st->call = NULL;
    st->waiting = false;
    const proxy_rate_limit_t *rl = st->doc;
    if (x->over(x))
        return;
    atomic_ullong *n = counts(x, rl, RL_GLOBAL);
    if (v == RLG_DENY && !rl->global.shadow) {
        atomic_fetch_add(&n[RL_LIMITED], 1);
        limited(x, st->limit, remaining, reset_s, "global rate limited\n");
        return;
    }
    if (v == RLG_ERROR) {
        atomic_fetch_add(&n[RL_ERROR], 1);
        if (rl->global.failure_mode == PROXY_RL_FAILURE_DENY) {
            filter_reply_t r = {.status = 500, .flags = TELE_RF_RLSE, .text = "rate limit service unavailable\n"};
            x->reply(x, &r);
            return;
        }
    } else if (v == RLG_DENY) {
        atomic_fetch_add(&n[RL_SHADOW_LIMITED], 1);
    } else {
        atomic_fetch_add(&n[RL_ALLOWED], 1);
    }
    if (st->in_check)
        st->went_on = true; /* filter_rl_global returns FILTER_CONTINUE */
    else
        x->resume(x);
}

enum filter_result filter_rl_global(filter_exchange_t *x, filter_rl_global_t *st)
{
    if (x->view->rt->cfg->n_rate_limits == 0 || x->rlg == NULL)
        return FILTER_CONTINUE;
    const proxy_rate_limit_t *found = find(x, RL_GLOBAL);
    if (found == NULL)
        return FILTER_CONTINUE;
    const proxy_rl_global_t *gl = &found->global;
    /* the keys, NUL-separated in the exchange's scratch (rlg_check copies them) */
    buf_t *keys = x->scratch;
    keys->len = 0;
    size_t off[RLG_LIMITS_MAX];
    const char *kp[RLG_LIMITS_MAX];
    uint64_t per[RLG_LIMITS_MAX], win[RLG_LIMITS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < gl->n_limits && n < RLG_LIMITS_MAX; i++) {
        size_t start = keys->len;
        if (!global_key(x, found, &gl->limits[i], keys)) {
            keys->len = start;
            continue;
        }
        buf_append(keys, "", 1);
        off[n] = start;
        per[n] = gl->limits[i].requests_per_unit;
        win[n] = gl->limits[i].unit_ms;
        n++;
    }
    if (n == 0)
        return FILTER_CONTINUE;
    st->limit = per[0];
    for (size_t i = 0; i < n; i++) {
        kp[i] = keys->data + off[i];
        if (per[i] < st->limit)
            st->limit = per[i]; /* of the limits this request is counted against only */
    }
    st->x = x;
    st->doc = found;
    st->call = NULL;
    st->waiting = true;
    st->in_check = true;
    st->went_on = false;
    rlg_call_t *call = rlg_check(x->rlg, gl, kp, per, win, n, on_verdict, st);
    st->in_check = false;
    if (!st->waiting) /* the verdict came at once (Redis is known to be down) */
        return st->went_on ? FILTER_CONTINUE : FILTER_REPLIED;
    st->call = call;
    return FILTER_WAIT;
}

void filter_rl_global_cancel(filter_rl_global_t *st)
{
    if (st->call != NULL)
        rlg_cancel(st->call);
    st->call = NULL;
    st->waiting = false;
}
