/*
 * mirror: shadow requests; see mirror.h.
 *
 * Two references keep a mirror alive: the exchange's (dropped by mirror_end
 * or mirror_abort) and its own work (dropped by finish: response complete,
 * connection failed or closed, timeout, abandoned). The memory goes when
 * both are gone and the timer handle is closed.
 *
 * Counters (runtime.h): every mirror_start counts a copy sent to its
 * cluster (RC_MIRROR_SENT) and, when it returns NULL or the mirror finishes
 * otherwise than with a complete final response below 500 (connect or
 * write failure, reset, invalid response, timeout, abandoned, aborted, or
 * a 5xx), that it failed (RC_MIRROR_FAILED): once per mirror, so failed
 * is a subset of sent.
 */
#include "mirror.h"

#include <stdbool.h>
#include <stdlib.h>

#include "http1.h"
#include "log.h"

struct mirror {
    uv_timer_t timer;
    runtime_view_t *view;
    upstream_t *up;
    http1_parser_t *resp;
    const router_cluster_t *cl;
    int status;    /* of the response being read, 0 before its head */
    bool ended;    /* the request is complete */
    bool finished; /* its own work is over (upstream released) */
    bool owned;    /* the exchange still holds it */
    bool closing;  /* the timer handle is closing */
    bool resp_done;
};

static void on_timer_closed(uv_handle_t *h)
{
    mirror_t *m = h->data;
    http1_parser_destroy(m->resp);
    runtime_view_drop(m->view);
    free(m);
}

static void maybe_free(mirror_t *m)
{
    if (m->finished && !m->owned && !m->closing) {
        m->closing = true;
        uv_close((uv_handle_t *)&m->timer, on_timer_closed);
    }
}

/* The mirror's own work is over: ok when its final response came complete. */
static void finish(mirror_t *m, bool ok, bool reusable)
{
    if (m->finished)
        return;
    m->finished = true;
    if (!ok || m->status >= 500)
        runtime_count(m->view->rt, m->cl, RC_MIRROR_FAILED);
    uv_timer_stop(&m->timer);
    if (m->up != NULL) {
        upstream_release(m->up, reusable && m->ended);
        m->up = NULL;
    }
    maybe_free(m);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, false, false);
}

static void up_connect(void *ctx, int status)
{
    if (status != 0)
        finish(ctx, false, false);
}

static void up_read(void *ctx, const char *data, size_t len)
{
    mirror_t *m = ctx;
    size_t used = 0;
    int rc = http1_parse(m->resp, data, len, &used);
    if (rc == HTTP1_ERROR || rc == HTTP1_UPGRADED)
        finish(m, false, false);
    else if (m->resp_done)
        finish(m, true, used == len);
}

static void up_close(void *ctx, int status)
{
    (void)status;
    finish(ctx, false, false);
}

static const upstream_handler_t handler = {up_connect, up_read, up_close, NULL};

static int resp_head(void *ctx, const http1_head_t *h)
{
    mirror_t *m = ctx;
    m->status = h->status;
    return HTTP1_CB_OK;
}

static int resp_complete(void *ctx)
{
    mirror_t *m = ctx;
    if (m->status / 100 == 1 && m->status != 101)
        return HTTP1_CB_OK; /* an interim response (100 Continue): the final one follows */
    m->resp_done = true;
    return HTTP1_CB_PAUSE;
}

static const http1_callbacks_t resp_cb = {resp_head, NULL, NULL, resp_complete};

mirror_t *mirror_start(runtime_view_t *v, const router_cluster_t *cl, int ep, const char *head, size_t len)
{
    runtime_count(v->rt, cl, RC_MIRROR_SENT);
    mirror_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        log_fatal("mirror: out of memory");
    m->cl = cl;
    m->up = upstream_acquire(runtime_view_pool(v, cl, ep), &handler, m);
    if (m->up == NULL) {
        runtime_count(v->rt, cl, RC_MIRROR_FAILED);
        free(m);
        return NULL;
    }
    m->view = v;
    runtime_view_hold(v);
    m->owned = true;
    uv_timer_init(v->loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, on_timeout, MIRROR_TIMEOUT_MS, 0);
    m->resp = http1_parser_create(HTTP1_RESPONSE, NULL, &resp_cb, m);
    if (upstream_write(m->up, head, len) < 0)
        finish(m, false, false);
    return m;
}

void mirror_body(mirror_t *m, const char *data, size_t len)
{
    if (m->finished)
        return;
    if (upstream_write_queued(m->up) + len > MIRROR_MAX_QUEUED) {
        log_debug("mirror: abandoned, %zu bytes queued", upstream_write_queued(m->up));
        finish(m, false, false); /* a slow mirror is dropped, never waited for */
        return;
    }
    if (upstream_write(m->up, data, len) < 0)
        finish(m, false, false);
}

void mirror_end(mirror_t *m)
{
    m->ended = true;
    m->owned = false;
    maybe_free(m);
}

void mirror_abort(mirror_t *m)
{
    m->owned = false;
    finish(m, false, false); /* the copy was cut short: failed, unless its response was already complete */
    maybe_free(m);
}
