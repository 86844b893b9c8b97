/*
 * upstream: connection pool per worker and per upstream address; see upstream.h.
 *
 * A connection is in one of three states: LEASED (events go to the
 * leaser), IDLE (on the pool's idle list, idle timer running, reading to
 * notice a close) or CLOSING (handles being closed; freed in the last close
 * callback). Its byte stream is a transport (transport.h), started once the
 * TCP connect completes; bytes written before that wait in `pending`.
 * Writes copy what the socket does not take at once, so callers may reuse
 * their buffers.
 */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tracectx.h"
#include "transport.h"
#include "xalloc.h"

enum ustate { U_LEASED, U_IDLE, U_CLOSING };

struct upstream {
    transport_t tr;
    uv_timer_t idle_timer;
    uv_connect_t connect_req;
    upstream_pool_t *pool;
    const upstream_handler_t *h;
    void *ctx;
    enum ustate state;
    bool connected;
    bool tcp_up; /* the TCP connect is done; TLS may still be shaking hands */
    bool reused;
    bool dead;
    bool md_once; /* TLS with ALPN PEER_ALPN: metadata once per connection */
    bool md_sent; /* a request with our metadata was written */
    const char *tls_failure;
    int open_handles;
    uint64_t requests; /* leases served */
    char *peer_md;     /* the server's metadata as last sent (md_once), or NULL */
    size_t peer_md_len;
    char *pending; /* bytes written before the connect completed */
    size_t pending_len;
    upstream_t *idle_next;
    char rbuf[64 * 1024];
};

struct upstream_pool {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    uint64_t idle_timeout_ms;
    uint64_t connect_timeout_ms;
    uint64_t max_requests;
    size_t max_idle;
    upstream_pool_opts_t tls; /* its tls* fields; the strings copied */
    tls_session_cache_t *sessions;
    upstream_t *idle; /* most recently used first */
    size_t n_idle;
    size_t live; /* connections not yet freed */
    bool destroyed;
};

static void pool_maybe_free(upstream_pool_t *pool)
{
    if (!pool->destroyed || pool->live != 0)
        return;
    tls_ctx_unref(pool->tls.tls);
    tls_session_cache_destroy(pool->sessions);
    free((char *)pool->tls.tls_sni);
    free((char *)pool->tls.tls_verify_host);
    for (size_t i = 0; i < pool->tls.n_tls_expected; i++)
        free((char *)pool->tls.tls_expected[i]);
    free((void *)pool->tls.tls_expected);
    free(pool);
}

static void handle_closed(upstream_t *u)
{
    if (--u->open_handles > 0)
        return;
    upstream_pool_t *pool = u->pool;
    free(u->pending);
    free(u->peer_md);
    free(u);
    pool->live--;
    pool_maybe_free(pool);
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_transport_closed(transport_t *t)
{
    handle_closed((upstream_t *)((char *)t - offsetof(upstream_t, tr)));
}

static void idle_unlink(upstream_t *u)
{
    upstream_t **pp = &u->pool->idle;
    while (*pp != NULL && *pp != u)
        pp = &(*pp)->idle_next;
    if (*pp == u) {
        *pp = u->idle_next;
        u->pool->n_idle--;
    }
    u->idle_next = NULL;
}

static void conn_close(upstream_t *u)
{
    if (u->state == U_CLOSING)
        return;
    if (u->state == U_IDLE)
        idle_unlink(u);
    u->state = U_CLOSING;
    u->dead = true;
    transport_close(&u->tr, on_transport_closed);
    uv_close((uv_handle_t *)&u->idle_timer, on_handle_closed);
}

/* ---- the transport's events ---- */

static void tr_alloc(void *ctx, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    upstream_t *u = ctx;
    b->base = u->rbuf;
    b->len = sizeof u->rbuf;
}

static void tr_read(void *ctx, char *data, size_t len)
{
    upstream_t *u = ctx;
    if (u->state == U_IDLE) {
        /* an idle connection has nothing to say: data or EOF both end it */
        conn_close(u);
        return;
    }
    if (u->state == U_LEASED && u->h->on_read != NULL)
        u->h->on_read(u->ctx, data, len);
}

static void tr_close(void *ctx, int status)
{
    upstream_t *u = ctx;
    if (u->state == U_IDLE) {
        conn_close(u);
        return;
    }
    if (u->state != U_LEASED)
        return;
    u->dead = true;
    transport_read_stop(&u->tr);
    if (u->h->on_close != NULL)
        u->h->on_close(u->ctx, status);
}

static void tr_drain(void *ctx)
{
    upstream_t *u = ctx;
    if (u->state == U_LEASED && u->pending_len == 0 && u->h->on_drain != NULL)
        u->h->on_drain(u->ctx);
}

static void flush_pending(upstream_t *u, int *status)
{
    if (u->pending_len == 0)
        return;
    char *p = u->pending;
    size_t n = u->pending_len;
    u->pending = NULL;
    u->pending_len = 0;
    if (transport_write(&u->tr, p, n) < 0)
        *status = UV_ECONNRESET;
    free(p);
}

/* TLS: the handshake ended; only now is the connection up for the leaser. */
static void tr_open(void *ctx, int status)
{
    upstream_t *u = ctx;
    if (u->state != U_LEASED || u->dead)
        return;
    uv_timer_stop(&u->idle_timer);
    tls_stats_count(u->pool->tls.stats, TLS_STATS_OUTBOUND, &u->tr, status);
    if (status == 0) {
        const char *alpn = transport_alpn(&u->tr);
        u->md_once = alpn != NULL && strcmp(alpn, PEER_ALPN) == 0;
        u->connected = true;
        flush_pending(u, &status);
        if (status == 0)
            transport_read_start(&u->tr);
    } else {
        u->tls_failure = transport_error_reason(&u->tr);
        log_warn("upstream: TLS handshake failed: %s (%s)", u->tls_failure ? u->tls_failure : "?",
                 transport_error_detail(&u->tr));
    }
    if (status < 0)
        u->dead = true;
    if (u->h->on_connect != NULL)
        u->h->on_connect(u->ctx, status);
}

static const transport_handler_t tr_handler = {tr_open, tr_alloc, tr_read, tr_close, tr_drain};

static void on_connect(uv_connect_t *req, int status)
{
    upstream_t *u = req->data;
    if (u->state != U_LEASED || u->dead)
        return;
    tls_ctx_t *tls = u->pool->tls.tls;
    if (tls == NULL && u->pool->tls.tls_mesh != NULL)
        tls = *u->pool->tls.tls_mesh; /* the sidecar's current certificate */
    if (status == 0 && tls != NULL) {
        /* the connect timer keeps running through the handshake; tr_open reports to the leaser */
        upstream_pool_t *pool = u->pool;
        char key[32];
        snprintf(key, sizeof key, "%p", (void *)pool);
        transport_tls_opts_t o = {.role = TRANSPORT_CLIENT,
                                  .sni = pool->tls.tls_sni,
                                  .verify_host = pool->tls.tls_verify_host,
                                  .expected_ids = pool->tls.tls_expected,
                                  .n_expected_ids = pool->tls.n_tls_expected,
                                  .session_cache = pool->sessions,
                                  .session_key = key};
        u->tcp_up = true;
        if (transport_start_tls(&u->tr, tls, &o, &tr_handler, u) == 0) {
            transport_read_start(&u->tr);
            return;
        }
        status = UV_EPROTO;
    }
    uv_timer_stop(&u->idle_timer);
    if (status == 0) {
        u->connected = true;
        transport_start(&u->tr, &tr_handler, u);
        flush_pending(u, &status);
        if (status == 0)
            transport_read_start(&u->tr);
    }
    if (status < 0)
        u->dead = true;
    if (u->h->on_connect != NULL)
        u->h->on_connect(u->ctx, status);
}

static void on_idle_timeout(uv_timer_t *t)
{
    upstream_t *u = t->data;
    if (u->state == U_IDLE)
        conn_close(u);
}

/* The connect took longer than the pool's connect timeout: fail it (the handle is closed on release). */
static void on_connect_timeout(uv_timer_t *t)
{
    upstream_t *u = t->data;
    if (u->state != U_LEASED || u->connected || u->dead)
        return;
    u->dead = true;
    if (u->tcp_up) { /* the TLS handshake did not end in time: no on_open will come */
        transport_handshake_timeout(&u->tr);
        u->tls_failure = TRANSPORT_R_HANDSHAKE_TIMEOUT;
        tls_stats_count(u->pool->tls.stats, TLS_STATS_OUTBOUND, &u->tr, UV_ETIMEDOUT);
    }
    if (u->h->on_connect != NULL)
        u->h->on_connect(u->ctx, UV_ETIMEDOUT);
}

upstream_pool_t *upstream_pool_create(uv_loop_t *loop, const struct sockaddr *addr, const upstream_pool_opts_t *o)
{
    static const upstream_pool_opts_t defaults = {0};
    if (o == NULL)
        o = &defaults;
    upstream_pool_t *pool = xmalloc(sizeof *pool);
    memset(pool, 0, sizeof *pool);
    pool->loop = loop;
    memcpy(&pool->addr, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    pool->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 60000;
    pool->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    pool->max_requests = o->max_requests_per_conn;
    pool->max_idle = o->max_idle ? o->max_idle : 64;
    pool->tls.stats = o->stats;
    if (o->tls != NULL || o->tls_mesh != NULL) {
        if (o->tls != NULL)
            tls_ctx_ref(o->tls);
        pool->tls.tls = o->tls;
        pool->tls.tls_mesh = o->tls_mesh;
        pool->tls.tls_sni = o->tls_sni ? xstrdup(o->tls_sni) : NULL;
        pool->tls.tls_verify_host = o->tls_verify_host ? xstrdup(o->tls_verify_host) : NULL;
        if (o->n_tls_expected > 0) {
            const char **ids = xcalloc(o->n_tls_expected, sizeof *ids);
            for (size_t i = 0; i < o->n_tls_expected; i++)
                ids[i] = xstrdup(o->tls_expected[i]);
            pool->tls.tls_expected = ids;
            pool->tls.n_tls_expected = o->n_tls_expected;
        }
        pool->sessions = tls_session_cache_create(1);
    }
    return pool;
}

void upstream_pool_destroy(upstream_pool_t *pool)
{
    if (pool == NULL)
        return;
    pool->destroyed = true;
    while (pool->idle != NULL)
        conn_close(pool->idle);
    pool_maybe_free(pool);
}

upstream_t *upstream_acquire(upstream_pool_t *pool, const upstream_handler_t *h, void *ctx)
{
    if (pool->destroyed)
        return NULL;
    upstream_t *u = pool->idle;
    if (u != NULL) {
        idle_unlink(u);
        uv_timer_stop(&u->idle_timer);
        u->state = U_LEASED;
        u->h = h;
        u->ctx = ctx;
        u->reused = true;
        u->requests++;
        return u;
    }
    u = xmalloc(sizeof *u);
    memset(u, 0, offsetof(upstream_t, rbuf));
    u->pool = pool;
    u->h = h;
    u->ctx = ctx;
    u->state = U_LEASED;
    if (transport_init(pool->loop, &u->tr) < 0) {
        free(u);
        return NULL;
    }
    uv_timer_init(pool->loop, &u->idle_timer);
    u->idle_timer.data = u;
    u->open_handles = 2;
    pool->live++;
    uv_tcp_nodelay(&u->tr.tcp, 1);
    u->connect_req.data = u;
    u->requests = 1;
    if (uv_tcp_connect(&u->connect_req, &u->tr.tcp, (const struct sockaddr *)&pool->addr, on_connect) < 0) {
        conn_close(u);
        return NULL;
    }
    uv_timer_start(&u->idle_timer, on_connect_timeout, pool->connect_timeout_ms, 0);
    return u;
}

size_t upstream_pool_trim(upstream_pool_t *pool)
{
    size_t n = 0;
    for (upstream_t *u = pool->idle; u != NULL; u = u->idle_next)
        n += transport_trim(&u->tr); /* leased ones are not on the list: trimmed once back on it */
    return n;
}

size_t upstream_pool_idle(const upstream_pool_t *pool)
{
    return pool->n_idle;
}

bool upstream_connected(const upstream_t *u)
{
    return u->connected;
}

const char *upstream_peer_id(const upstream_t *u)
{
    return transport_peer_id(&u->tr);
}

const char *upstream_tls_failure(const upstream_t *u)
{
    return u->tls_failure;
}

bool upstream_md_once(const upstream_t *u)
{
    return u->md_once;
}

bool upstream_md_sent(const upstream_t *u)
{
    return u->md_sent;
}

void upstream_note_md_sent(upstream_t *u)
{
    u->md_sent = true;
}

const char *upstream_peer_md(const upstream_t *u, size_t *len)
{
    *len = u->peer_md_len;
    return u->peer_md;
}

void upstream_set_peer_md(upstream_t *u, const char *md, size_t len)
{
    if (u->peer_md != NULL && u->peer_md_len == len && memcmp(u->peer_md, md, len) == 0)
        return;
    free(u->peer_md);
    u->peer_md = xmalloc(len ? len : 1);
    memcpy(u->peer_md, md, len);
    u->peer_md_len = len;
}

bool upstream_reused(const upstream_t *u)
{
    return u->reused;
}

int upstream_write(upstream_t *u, const void *data, size_t len)
{
    if (u->dead)
        return -1;
    if (len == 0)
        return 0;
    if (!u->connected) {
        char *p = realloc(u->pending, u->pending_len + len);
        if (p == NULL)
            log_fatal("upstream: out of memory");
        memcpy(p + u->pending_len, data, len);
        u->pending = p;
        u->pending_len += len;
        return 0;
    }
    if (transport_write(&u->tr, data, len) < 0) {
        u->dead = true;
        return -1;
    }
    return 0;
}

size_t upstream_write_queued(const upstream_t *u)
{
    return u->connected ? transport_write_queued(&u->tr) : u->pending_len;
}

void upstream_read_stop(upstream_t *u)
{
    if (u->connected)
        transport_read_stop(&u->tr);
}

void upstream_read_start(upstream_t *u)
{
    if (u->connected && !u->dead)
        transport_read_start(&u->tr);
}

void upstream_release(upstream_t *u, bool reusable)
{
    upstream_pool_t *pool = u->pool;
    u->h = NULL;
    u->ctx = NULL;
    if (!reusable || u->dead || !u->connected || transport_write_queued(&u->tr) > 0 || pool->destroyed ||
        pool->n_idle >= pool->max_idle || (pool->max_requests > 0 && u->requests >= pool->max_requests)) {
        conn_close(u);
        return;
    }
    u->state = U_IDLE;
    u->idle_next = pool->idle;
    pool->idle = u;
    pool->n_idle++;
    transport_read_start(&u->tr);
    uv_timer_start(&u->idle_timer, on_idle_timeout, pool->idle_timeout_ms, 0);
}
