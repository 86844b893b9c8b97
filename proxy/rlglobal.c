/*
 * rlglobal: global rate limits in Redis, asynchronous (see rlglobal.h).
 *
 * Lifetimes. A call is "live" from rlg_check until done is called or it is
 * cancelled; while live it is on its rlg's list, so rlg_destroy can cancel
 * it. Its memory outlives that: hiredis holds a pointer to each of its
 * slots until the reply (or a NULL reply when the context dies) comes back,
 * and its timer must be closed; the call is freed when both are over
 * (outstanding == 0 and timer closed). A connection's memory likewise goes
 * when its timer has closed; its hiredis context, whose data points back
 * at it, is always gone by then (freed synchronously by rlg_destroy, or by
 * hiredis itself before the disconnect callback returns).
 */
#include "rlglobal.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "xalloc.h"

/* Fixed window: KEYS[1] the window's key, ARGV[1] ms to the window's end. Returns the count. */
static const char FIXED_LUA[] = "local c = redis.call('INCR', KEYS[1])\n"
                                "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                                "return c\n";

/*
 * Sliding window: KEYS[1] the current window, KEYS[2] the previous one,
 * ARGV[1] the lifetime of a key (two windows). Returns {current, previous}.
 */
static const char SLIDING_LUA[] = "local c = redis.call('INCR', KEYS[1])\n"
                                  "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                                  "local p = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
                                  "return {c, p}\n";

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_UP, CONN_BACKOFF };

typedef struct conn {
    struct conn *next;
    rlg_t *g; /* NULL once rlg_destroy has let it go */
    char *host;
    uint16_t port;
    enum conn_state state;
    redisAsyncContext *ac; /* CONNECTING and UP only */
    uv_timer_t timer;      /* connect timeout in CONNECTING, the back-off in BACKOFF */
    uint64_t backoff_ms;   /* the next back-off */
    unsigned timeouts;     /* calls timed out in a row since the last reply */
} conn_t;

typedef struct slot {
    rlg_call_t *call;
    uint64_t per, window_ms;
    uint64_t elapsed_ms; /* into the current window when the check was made */
    int replied;
    double count; /* the count (fixed) or the estimate (sliding) */
} slot_t;

struct rlg_call {
    rlg_call_t *prev, *next; /* on g->calls while live */
    rlg_t *g;
    struct conn *conn;
    rlg_done_fn done; /* NULL once finished */
    void *ctx;
    int live;
    int timer_open;
    size_t outstanding; /* hiredis callbacks still to come */
    size_t pending;     /* limits without a reply yet */
    enum proxy_rl_algorithm algorithm;
    uv_timer_t timer;
    size_t n;
    slot_t slots[];
};

struct rlg {
    uv_loop_t *loop;
    conn_t *conns;
    rlg_call_t *calls;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- calls ---- */

static void call_maybe_free(rlg_call_t *c)
{
    if (!c->live && !c->timer_open && c->outstanding == 0)
        free(c);
}

static void on_call_timer_closed(uv_handle_t *h)
{
    rlg_call_t *c = h->data;
    c->timer_open = 0;
    call_maybe_free(c);
}

/* Make c not live: off the list, timer closing. Returns nothing; the memory stays until call_maybe_free. */
static void call_retire(rlg_call_t *c)
{
    if (!c->live)
        return;
    c->live = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->g->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->done = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_call_timer_closed);
}

/* Deliver the verdict and retire c; done runs last, so it may call into rlg freely. */
static void call_finish(rlg_call_t *c, enum rlg_verdict v, uint64_t remaining, uint64_t reset_s)
{
    if (!c->live)
        return;
    rlg_done_fn done = c->done;
    void *ctx = c->ctx;
    call_retire(c);
    if (done)
        done(ctx, v, remaining, reset_s);
}

static void call_decide(rlg_call_t *c)
{
    int deny = 0;
    uint64_t best_remaining = UINT64_MAX, best_reset = 0;
    for (size_t i = 0; i < c->n; i++) {
        const slot_t *s = &c->slots[i];
        uint64_t remaining = 0;
        if (s->count > (double)s->per)
            deny = 1;
        else
            remaining = (uint64_t)((double)s->per - s->count);
        uint64_t left_ms = s->window_ms - s->elapsed_ms;
        uint64_t reset_s = (left_ms + 999) / 1000;
        if (reset_s == 0)
            reset_s = 1;
        if (remaining < best_remaining || (remaining == best_remaining && reset_s > best_reset)) {
            best_remaining = remaining;
            best_reset = reset_s;
        }
    }
    call_finish(c, deny ? RLG_DENY : RLG_ALLOW, best_remaining, best_reset);
}

static void conn_close_context(conn_t *cn);

/*
 * hiredis' libuv adapter drops poll errors (POLLERR after a reset, a refused
 * connect), so such a connection would never learn it is dead: after
 * RLG_TIMEOUTS_RESET timeouts in a row with no reply it is dropped.
 */
static void on_call_timeout(uv_timer_t *t)
{
    rlg_call_t *c = t->data;
    conn_t *cn = c->conn;
    call_finish(c, RLG_ERROR, 0, 0);
    if (cn->g && cn->state == CONN_UP && ++cn->timeouts >= RLG_TIMEOUTS_RESET) {
        log_warn("rlglobal: redis %s:%u: %u timeouts in a row, reconnecting", cn->host, (unsigned)cn->port,
                 cn->timeouts);
        conn_close_context(cn);
    }
}

/* ---- connections ---- */

static void on_conn_timer(uv_timer_t *t)
{
    conn_t *cn = t->data;
    if (cn->state == CONN_BACKOFF) {
        cn->state = CONN_IDLE;
    } else if (cn->state == CONN_CONNECTING) {
        log_warn("rlglobal: connect to redis %s:%u timed out", cn->host, (unsigned)cn->port);
        conn_close_context(cn);
    }
}

/* The connection failed: forget its context (being freed by the caller or hiredis) and back off. */
static void conn_down(conn_t *cn)
{
    cn->ac = NULL;
    cn->timeouts = 0;
    cn->state = CONN_BACKOFF;
    uv_timer_stop(&cn->timer);
    uv_timer_start(&cn->timer, on_conn_timer, cn->backoff_ms, 0);
    cn->backoff_ms *= 2;
    if (cn->backoff_ms > RLG_BACKOFF_MAX_MS)
        cn->backoff_ms = RLG_BACKOFF_MAX_MS;
}

/* Free the context from outside any hiredis callback: its commands get NULL replies now. */
static void conn_close_context(conn_t *cn)
{
    redisAsyncContext *ac = cn->ac;
    conn_down(cn);
    if (ac)
        redisAsyncFree(ac);
}

static void on_redis_connect(const redisAsyncContext *ac, int status)
{
    conn_t *cn = ac->data;
    if (!cn || !cn->g || cn->ac != ac)
        return;
    if (status != REDIS_OK) {
        log_warn("rlglobal: cannot connect to redis %s:%u: %s", cn->host, (unsigned)cn->port, ac->errstr);
        conn_down(cn); /* hiredis frees ac after this returns */
        return;
    }
    cn->state = CONN_UP;
    cn->backoff_ms = RLG_BACKOFF_MIN_MS;
    uv_timer_stop(&cn->timer);
}

static void on_redis_disconnect(const redisAsyncContext *ac, int status)
{
    conn_t *cn = ac->data;
    (void)status;
    if (!cn || !cn->g || cn->ac != ac)
        return;
    log_warn("rlglobal: redis %s:%u disconnected: %s", cn->host, (unsigned)cn->port, ac->err ? ac->errstr : "closed");
    conn_down(cn); /* hiredis frees ac after this returns */
}

/* Start a connect (IDLE -> CONNECTING, or BACKOFF on an immediate failure). */
static void conn_start(conn_t *cn, uv_loop_t *loop)
{
    redisAsyncContext *ac = redisAsyncConnect(cn->host, cn->port);
    if (!ac) {
        conn_down(cn);
        return;
    }
    if (ac->err) {
        log_warn("rlglobal: cannot connect to redis %s:%u: %s", cn->host, (unsigned)cn->port, ac->errstr);
        redisAsyncFree(ac);
        conn_down(cn);
        return;
    }
    ac->data = cn;
    if (redisLibuvAttach(ac, loop) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_down(cn);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_redis_connect);
    redisAsyncSetDisconnectCallback(ac, on_redis_disconnect);
    cn->ac = ac;
    cn->state = CONN_CONNECTING;
    uv_timer_start(&cn->timer, on_conn_timer, RLG_CONNECT_TIMEOUT_MS, 0);
}

static void on_conn_timer_closed(uv_handle_t *h)
{
    conn_t *cn = h->data;
    free(cn->host);
    free(cn);
}

static conn_t *conn_get(rlg_t *g, const proxy_hostport_t *addr)
{
    const char *host = addr->host ? addr->host : "";
    for (conn_t *cn = g->conns; cn; cn = cn->next)
        if (cn->port == addr->port && strcmp(cn->host, host) == 0)
            return cn;
    conn_t *cn = xcalloc(1, sizeof(*cn));
    cn->g = g;
    cn->host = strdup(host);
    if (!cn->host)
        log_fatal("rlglobal: out of memory");
    cn->port = addr->port;
    cn->state = CONN_IDLE;
    cn->backoff_ms = RLG_BACKOFF_MIN_MS;
    uv_timer_init(g->loop, &cn->timer);
    cn->timer.data = cn;
    cn->next = g->conns;
    g->conns = cn;
    return cn;
}

/* ---- replies ---- */

static int reply_int(const redisReply *r, long long *out)
{
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < 0)
        return -1;
    *out = r->integer;
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    slot_t *s = privdata;
    rlg_call_t *c = s->call;
    redisReply *r = reply;

    c->outstanding--;
    if (r) {
        conn_t *cn = ac->data;
        if (cn && cn->g && cn->ac == ac)
            cn->timeouts = 0;
    } else {
        /* the context is going away: make later checks fail fast until the disconnect callback runs */
        conn_t *cn = ac->data;
        if (cn && cn->g && cn->ac == ac)
            conn_down(cn);
    }
    if (!c->live) {
        call_maybe_free(c);
        return;
    }
    if (!r)
        goto fail;
    long long cur, prev = 0;
    if (c->algorithm == PROXY_RL_SLIDING_WINDOW) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || reply_int(r->element[0], &cur) < 0 ||
            reply_int(r->element[1], &prev) < 0)
            goto fail;
        double frac = (double)s->elapsed_ms / (double)s->window_ms;
        s->count = (double)prev * (1.0 - frac) + (double)cur;
    } else {
        if (reply_int(r, &cur) < 0)
            goto fail;
        s->count = (double)cur;
    }
    if (!s->replied) {
        s->replied = 1;
        c->pending--;
    }
    if (c->pending == 0)
        call_decide(c);
    return;
fail:
    if (r && r->type == REDIS_REPLY_ERROR)
        log_warn("rlglobal: redis error: %s", r->str);
    call_finish(c, RLG_ERROR, 0, 0);
}

/* ---- public ---- */

rlg_t *rlg_create(uv_loop_t *loop)
{
    rlg_t *g = xcalloc(1, sizeof(*g));
    g->loop = loop;
    return g;
}

void rlg_destroy(rlg_t *g)
{
    if (!g)
        return;
    while (g->calls)
        call_retire(g->calls);
    conn_t *cn = g->conns;
    while (cn) {
        conn_t *next = cn->next;
        redisAsyncContext *ac = cn->ac;
        cn->g = NULL;
        cn->ac = NULL;
        if (ac)
            redisAsyncFree(ac);
        uv_timer_stop(&cn->timer);
        uv_close((uv_handle_t *)&cn->timer, on_conn_timer_closed);
        cn = next;
    }
    free(g);
}

/* Send one EVAL for slot i; 0 when queued. */
static int send_limit(redisAsyncContext *ac, rlg_call_t *c, size_t i, const char *key, uint64_t now)
{
    slot_t *s = &c->slots[i];
    uint64_t idx = now / s->window_ms;
    s->elapsed_ms = now - idx * s->window_ms;
    size_t klen = strlen(key);
    char *k1 = malloc(klen + 24), *k2 = malloc(klen + 24);
    if (!k1 || !k2)
        log_fatal("rlglobal: out of memory");
    int l1 = snprintf(k1, klen + 24, "%s:%" PRIu64, key, idx);
    int l2 = snprintf(k2, klen + 24, "%s:%" PRIu64, key, idx ? idx - 1 : 0);
    char ttl[24];
    int rc;
    if (c->algorithm == PROXY_RL_SLIDING_WINDOW) {
        int lt = snprintf(ttl, sizeof(ttl), "%" PRIu64, 2 * s->window_ms);
        const char *argv[] = {"EVAL", SLIDING_LUA, "2", k1, k2, ttl};
        size_t argvlen[] = {4, sizeof(SLIDING_LUA) - 1, 1, (size_t)l1, (size_t)l2, (size_t)lt};
        rc = redisAsyncCommandArgv(ac, on_reply, s, 6, argv, argvlen);
    } else {
        int lt = snprintf(ttl, sizeof(ttl), "%" PRIu64, s->window_ms - s->elapsed_ms);
        const char *argv[] = {"EVAL", FIXED_LUA, "1", k1, ttl};
        size_t argvlen[] = {4, sizeof(FIXED_LUA) - 1, 1, (size_t)l1, (size_t)lt};
        rc = redisAsyncCommandArgv(ac, on_reply, s, 5, argv, argvlen);
    }
    free(k1);
    free(k2);
    return rc == REDIS_OK ? 0 : -1;
}

rlg_call_t *rlg_check(rlg_t *g, const proxy_rl_global_t *gl, const char *const *keys, const uint64_t *per,
                      const uint64_t *window_ms, size_t n, rlg_done_fn done, void *ctx)
{
    if (n == 0 || n > RLG_LIMITS_MAX)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (!keys[i] || strnlen(keys[i], RLG_KEY_MAX + 1) > RLG_KEY_MAX || per[i] == 0 || window_ms[i] == 0)
            goto fail;

    conn_t *cn = conn_get(g, &gl->redis);
    if (cn->state == CONN_IDLE)
        conn_start(cn, g->loop);
    if (cn->state != CONN_CONNECTING && cn->state != CONN_UP)
        goto fail;

    rlg_call_t *c = xcalloc(1, sizeof(*c) + n * sizeof(slot_t));
    c->g = g;
    c->conn = cn;
    c->done = done;
    c->ctx = ctx;
    c->n = n;
    c->pending = n;
    c->algorithm = gl->algorithm;
    c->live = 1;
    c->next = g->calls;
    if (g->calls)
        g->calls->prev = c;
    g->calls = c;
    uv_timer_init(g->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = 1;
    /* the loop's cached time may be stale by a long iteration: the timeout counts from now */
    uv_update_time(g->loop);
    uv_timer_start(&c->timer, on_call_timeout, gl->timeout_ms ? gl->timeout_ms : 50, 0);

    uint64_t now = now_ms();
    redisAsyncContext *ac = cn->ac;
    for (size_t i = 0; i < n; i++) {
        c->slots[i].call = c;
        c->slots[i].per = per[i];
        c->slots[i].window_ms = window_ms[i];
        if (send_limit(ac, c, i, keys[i], now) < 0) {
            /* commands already queued still call back (with NULL when the context dies) */
            call_finish(c, RLG_ERROR, 0, 0);
            return NULL;
        }
        c->outstanding++;
    }
    return c;
fail:
    if (done)
        done(ctx, RLG_ERROR, 0, 0);
    return NULL;
}

void rlg_cancel(rlg_call_t *c)
{
    if (c)
        call_retire(c);
}
