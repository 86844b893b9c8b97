/*
 * conn: downstream connection, routing, attempts and retries; see conn.h.
 *
 * Memory and lifetime. The conn owns four handles (its transport, the
 * client's byte stream (transport.h); wait timer; route timer; try
 * timer), a request parser, a response parser reused for every attempt,
 * the input buffer `in` with bytes the request parser has
 * not consumed, the upstream request head of the current exchange (kept
 * for retries) and the replay buffer of its body. Closing is deferred:
 * conn_close() only starts uv_close, and the memory goes in the last close
 * callback, so code further up the stack may still look at the conn (and
 * must check `closing`).
 *
 * An exchange ends when its response is complete and either its request
 * is complete too or the connection will close (an early response, a
 * reset). Local replies (errors, 404, 503) count as the response; the rest
 * of the request body is then read and dropped.
 *
 * Ending a connection after its last answer goes through conn_finish: when
 * the client may still be sending (the request unfinished, bytes unread in
 * `in` or in the socket) the conn lingers (see conn.h) instead of closing.
 * A lingering conn has no exchange and no upstream, and no callback but
 * its reads and its wait timer reaches it; its buffers are freed at its
 * first read or timer (never from inside a parser callback, whose caller
 * still holds them), and what it reads lands in one buffer per thread.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <time.h>

#include "buf.h"
#include "cluster.h"
#include "filter.h"
#include "filter_fault.h"
#include "filter_mirror.h"
#include "filter_ratelimit.h"
#include "head.h"
#include "log.h"
#include "mirror.h"
#include "rlglobal.h"
#include "router.h"
#include "telemetry_policy.h"
#include "tracectx.h"
#include "transport.h"
#include "xalloc.h"

#define DOWN_WRITE_HIGH (256 * 1024) /* bytes queued to the client above which the upstream is not read */
#define DOWN_WRITE_LOW (64 * 1024)
#define READ_CHUNK (16 * 1024)
#define LINGER_CHUNK (64 * 1024)        /* the per-thread buffer lingering connections read into */
#define PIPELINE_BUFFER_MAX (64 * 1024) /* bytes read ahead of the request being answered (pipelining) */
#define MAX_EXTRA_FIELDS 48             /* fields an exchange may add to a request or response head */
#define BACKOFF_BASE_MS 25
#define BACKOFF_MAX_MS 250

/* Envoy's response flags: telemetry's bits (telemetry.h), which name them. */
enum {
    RF_NR = TELE_RF_NR,     /* no route */
    RF_UH = TELE_RF_UH,     /* no healthy upstream */
    RF_UF = TELE_RF_UF,     /* upstream connection failure */
    RF_UC = TELE_RF_UC,     /* upstream connection termination */
    RF_UT = TELE_RF_UT,     /* upstream request timeout */
    RF_URX = TELE_RF_URX,   /* upstream retry limit exceeded */
    RF_DC = TELE_RF_DC,     /* downstream connection termination */
    RF_UPE = TELE_RF_UPE,   /* upstream protocol error */
    RF_DI = TELE_RF_DI,     /* the request was delayed by fault injection */
    RF_FI = TELE_RF_FI,     /* the request was aborted by fault injection */
    RF_UO = TELE_RF_UO,     /* upstream overflow: a circuit-breaker limit */
    RF_RL = TELE_RF_RL,     /* rate limited */
    RF_RLSE = TELE_RF_RLSE, /* the rate limit service (Redis) failed, failureMode deny */
};


/* Why an attempt failed (retry conditions). */
enum fail_kind { FAIL_CONNECT, FAIL_RESET, FAIL_TRY_TIMEOUT, FAIL_STATUS };

struct conn {
    transport_t tr;         /* the client's byte stream */
    uv_timer_t timer;       /* header read / keep-alive idle / lingering */
    uv_timer_t route_timer; /* route timeout */
    uv_timer_t try_timer;   /* per-try timeout, retry back-off */
    conn_env_t *env;
    conn_t *next, *prev;
    http1_parser_t *req;
    http1_parser_t *resp;
    buf_t in;   /* unconsumed request bytes */
    buf_t out;  /* scratch for heads and chunks */
    buf_t pend; /* bytes for the client gathered during one event (down_flush) */
    http1_header_t *hdrs;
    uint32_t hdrs_cap;
    buf_t xff;
    char peer[64];
    int open_handles;
    upstream_t *up;
    uint64_t bytes_seen; /* request bytes read since the last exchange ended (408 vs idle close) */
    bool closing;
    bool reading;
    bool paused; /* request parser paused after on_complete */
    bool in_exchange;
    bool req_done;
    bool resp_done;
    bool resp_head_sent;
    bool resp_interim;
    bool close_after;  /* close once the exchange ends and writes drain */
    bool req_chunked;  /* request body re-chunked upstream */
    bool resp_chunked; /* response body re-chunked downstream */
    bool resp_no_body;
    bool resp_trailers_sent;
    bool up_reusable;
    bool up_read_paused;
    bool req_keep_alive;
    bool req_http11;
    bool in_parse;        /* inside http1_parse of the request parser */
    bool req_failed;      /* the request parser refused the input (HTTP1_ERROR) */
    bool peer_eof;        /* the client half-closed: no more input will come */
    bool lingering;       /* the answer is out; input is read and dropped until a bound (conn.h) */
    bool handshaking;     /* inbound mutual TLS: the handshake is under way (timer: the handshake timeout) */
    bool sniffing;        /* PERMISSIVE: the first bytes say whether the client speaks TLS */
    bool down_mtls;       /* the client came over mutual TLS (inbound) */
    bool up_mtls;         /* the current attempt's upstream connection is mutual TLS with our identity */
    const char *down_principal;           /* the client's verified SPIFFE id (valid while tr is), or NULL */
    char up_principal[TELE_PRINCIPAL_MAX]; /* the upstream's verified SPIFFE id (copied: pooled connections go) */
    uint64_t linger_end;  /* uv_now() past which a lingering conn closes */
    uint64_t linger_left; /* bytes a lingering conn still reads before it closes */

    /* ---- the current exchange ---- */
    const http1_head_t *head; /* valid while the request parser is paused at the exchange's end */
    runtime_view_t *view;     /* held for the exchange */
    router_request_t rreq;
    router_decision_t d;
    const router_cluster_t *cl;
    int ep;         /* endpoint of the current attempt, -1 none */
    bool lb_active; /* router_lb_begin was called for ep */
    uint32_t flags; /* RF_* */
    int attempts;   /* attempts started */
    int retries_left;
    const proxy_retries_t *retry;
    bool stale_retry_used; /* the free retry after a stale pooled connection */
    bool retry_due;        /* a retry was decided: the next attempt started counts as one (RC_RETRY) */
    bool retry_pending;    /* resp_on_head asked for a retry on a retriable status */
    bool upgrade;          /* the request asks for a protocol upgrade */
    bool tunnel;           /* 101 forwarded: bytes are copied both ways */
    bool recorded;         /* telemetry recorded */
    bool have_peer;
    bool leased_counted; /* up counts in the cluster's leased connections */
    bool retry_counted;  /* counts in the cluster's retrying exchanges */
    cluster_waiter_t waiter; /* queued for a connection of cl (circuit breaker) */
    int fail_status;                /* the retriable status that ended the attempt */
    const char *tls_failure;        /* the last attempt's TLS handshake failure (TRANSPORT_R_*), or NULL */
    filter_exchange_t fx;           /* what the filters (filter.h) see of this exchange */
    int filter_at;                  /* the next filter of the chain (enum step) */
    bool filter_wait;               /* a filter holds the request (a Redis verdict, a fault delay) */
    filter_rl_global_t rl_global;   /* the filters' state */
    filter_fault_t fault;
    filter_mirror_t mirrors;
    int status;                       /* final status sent to the client, 0 none */
    proxy_head_t uhead;             /* the upstream request head, structured until the client codec writes it */
    http1_header_t *up_fields;      /* its fields */
    uint32_t up_fields_cap;
    buf_t up_target;                /* its target, after the route's rewrite */
    char tscratch[TRACECTX_SCRATCH]; /* the values of its trace fields */
    buf_t up_head;                  /* the head as the HTTP/1 client wrote it (at the first attempt; retries reuse it) */
    buf_t body;                       /* the request body as framed upstream, for replays */
    bool body_over;                   /* the body outgrew the buffer: no more retries */
    uint64_t req_body_bytes;          /* request body bytes received */
    uint64_t resp_body_bytes;         /* response body bytes sent */
    uint64_t tunnel_up, tunnel_down;
    uint64_t start_ns;      /* uv_hrtime at the request head */
    uint64_t start_unix_ns; /* wall clock at the request head */
    trace_ctx_t trace;
    peer_info_t peer_info; /* the other side's metadata, when have_peer */
    uint64_t tele_peer;    /* telemetry's handle for peer_info (tele_request_t.peer_handle); 0 when it changed */
    uint64_t excluded[ROUTER_MAX_ENDPOINTS / 64];
};

static const proxy_retries_t no_retries = {0, 0, PROXY_UNSET, 0, {0}, 0};

static void process(conn_t *c);
static void update_reading(conn_t *c);
static void start_attempt(conn_t *c);
static void outlier_result(conn_t *c, int status);
static void run_filters(conn_t *c);
/* The filters (filter.h), in the order they run between routing and the first attempt. */
enum step { STEP_RL_LOCAL, STEP_RL_GLOBAL, STEP_FAULT, STEP_MIRROR, STEP_DONE };
static void fx_reply(filter_exchange_t *x, const filter_reply_t *r);
static void fx_resume(filter_exchange_t *x);
static bool fx_over(filter_exchange_t *x);
static void on_route_timeout(uv_timer_t *t);
static void record(conn_t *c);

/* Bytes for the client not yet handed to the kernel: gathered in `pend` during this event, or queued. */
static size_t down_queued(const conn_t *c)
{
    return c->pend.len + transport_write_queued(&c->tr);
}

static uint64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* True with probability percent/100 (0..100), from the worker's generator. */
static str_t s_of(const char *s)
{
    return (str_t){s, s != NULL ? strlen(s) : 0};
}

/*
 * The destination_service, _name and _namespace labels of the exchange, as
 * Istio sets them. Outbound: the cluster's host, or the request's
 * authority when no cluster was chosen; "reviews.default.svc.cluster.local"
 * gives its first two labels; any other host ("reviews", "api.example.com")
 * is the name itself, in its ServiceEntry's namespace (Istio 1.23 and later). Inbound: this workload's own service. The
 * slices point into the view's configuration (the authority: into the
 * request head). Needs c->view.
 */
static void destination_service(const conn_t *c, str_t *svc, str_t *name, str_t *ns)
{
    const runtime_t *rt = c->view->rt;
    if (c->env->mode != CONN_OUTBOUND) {
        *svc = s_of(rt->self_fqdn);
        *name = s_of(rt->self.canonical_service);
        *ns = s_of(rt->self.namespace);
        return;
    }
    const char *host = c->cl != NULL ? c->cl->host : NULL;
    *svc = host != NULL ? s_of(host) : c->rreq.authority;
    static const char k8s[] = ".svc.cluster.local";
    const size_t kl = sizeof k8s - 1;
    const char *dot = memchr(svc->ptr, '.', svc->len);
    if (dot != NULL && svc->len > kl && http1_span_ieq(svc->ptr + svc->len - kl, kl, k8s)) {
        /* NAME.NAMESPACE.svc.cluster.local: its first two labels */
        *name = (str_t){svc->ptr, (size_t)(dot - svc->ptr)};
        const char *p = dot + 1;
        size_t rest = svc->len - (size_t)(p - svc->ptr);
        const char *dot2 = memchr(p, '.', rest);
        *ns = (str_t){p, dot2 ? (size_t)(dot2 - p) : rest};
    } else {
        /* any other host (a short name, api.example.com): the whole host, in its ServiceEntry's namespace */
        *name = *svc;
        *ns = s_of(c->cl != NULL && c->cl->service != NULL ? c->cl->service->meta.namespace : rt->self.namespace);
    }
}

static const char *endpoint_label(const conn_t *c, const char *key);

/* Whether this hop between sidecars was mutual TLS, and the two identities it proved (telemetry). */
static void hop_security(const conn_t *c, bool *mtls, str_t *peer, str_t *self)
{
    bool out = c->env->mode == CONN_OUTBOUND;
    *mtls = out ? c->up_mtls : c->down_mtls;
    *peer = *mtls ? s_of(out ? c->up_principal : c->down_principal) : STR_NULL;
    *self = *mtls ? s_of(c->view->rt->cfg->proxy.identity.spiffe_id) : STR_NULL;
}

/* istio_tcp_* for a tunnel: opened, or closed with its byte counts. */
static void record_tunnel(conn_t *c, bool opened)
{
    if (c->env->w->tele == NULL)
        return;
    tele_tcp_t t;
    memset(&t, 0, sizeof t);
    t.reporter = c->env->mode == CONN_OUTBOUND ? TELE_SOURCE : TELE_DESTINATION;
    t.peer = c->have_peer ? &c->peer_info : NULL;
    if (c->view != NULL)
        hop_security(c, &t.mtls, &t.peer_principal, &t.self_principal);
    t.policy = c->view != NULL ? c->view->rt->tele_policy : NULL;
    t.destination_port = c->cl != NULL ? c->cl->port : 0;
    /* a tunnel has its upstream, so its cluster: the labels come from the configuration, not the request head */
    if (c->view != NULL)
        destination_service(c, &t.destination_service, &t.destination_service_name, &t.destination_service_namespace);
    if (c->view != NULL && c->env->mode == CONN_OUTBOUND) {
        t.destination_version = s_of(endpoint_label(c, "version"));
        t.destination_app = s_of(endpoint_label(c, "app"));
    }
    t.opened = opened;
    t.closed = !opened;
    if (!opened) {
        t.sent_bytes = c->tunnel_down;
        t.received_bytes = c->tunnel_up;
    }
    tele_record_tcp(c->env->w->tele, &t);
}

/* ---- closing ---- */

/* The conn's buffers (again: a lingering conn frees them early). */
static void buffers_free(conn_t *c)
{
    buf_dispose(&c->in);
    buf_dispose(&c->out);
    buf_dispose(&c->pend);
    buf_dispose(&c->xff);
    buf_dispose(&c->up_head);
    buf_dispose(&c->up_target);
    free(c->up_fields);
    c->up_fields = NULL;
    c->up_fields_cap = 0;
    buf_dispose(&c->body);
    free(c->hdrs);
    c->hdrs = NULL;
    c->hdrs_cap = 0;
}

static void handle_closed(conn_t *c)
{
    if (--c->open_handles > 0)
        return;
    conn_env_t *env = c->env;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        env->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    env->n_conns--;
    http1_parser_destroy(c->req);
    http1_parser_destroy(c->resp);
    buffers_free(c);
    free(c);
    if (env->draining && env->n_conns == 0 && env->on_empty != NULL)
        env->on_empty(env->owner);
}

static void on_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_transport_closed(transport_t *t)
{
    handle_closed((conn_t *)((char *)t - offsetof(conn_t, tr)));
}

static void lb_done(conn_t *c)
{
    if (c->lb_active) {
        router_lb_end(&c->view->lbs[c->cl->index], c->ep);
        c->lb_active = false;
    }
}

/* A connection of the cluster was given back or closed: this request, first in line, may go. */
static void on_connection_free(cluster_waiter_t *w)
{
    start_attempt((conn_t *)((char *)w - offsetof(conn_t, waiter)));
}

static void unwait(conn_t *c)
{
    if (c->waiter.queued)
        cluster_unwait(&c->view->cs[c->cl->index], &c->waiter);
}

static void release_upstream(conn_t *c, bool reusable)
{
    if (c->up != NULL) {
        upstream_release(c->up, reusable);
        c->up = NULL;
    }
    lb_done(c);
    if (c->leased_counted) {
        c->leased_counted = false;
        cluster_released(&c->view->cs[c->cl->index]); /* wakes the first request waiting for a connection */
    }
}

/* The exchange's resources: timers, upstream, the view. */
static void exchange_dispose(conn_t *c)
{
    if (c->filter_wait) { /* a filter holds the request: it lets go (the fault filter gives back its timer) */
        filter_fault_cancel(&c->fault);
        filter_rl_global_cancel(&c->rl_global);
        c->filter_wait = false;
    }
    uv_timer_stop(&c->route_timer);
    uv_timer_stop(&c->try_timer);
    filter_mirror_cancel(&c->mirrors);
    unwait(c);
    release_upstream(c, false);
    if (c->retry_counted) {
        c->retry_counted = false;
        cluster_retry_give(&c->view->cs[c->cl->index]);
    }
    if (c->view != NULL) {
        runtime_view_drop(c->view);
        c->view = NULL;
    }
}

static void conn_finish(conn_t *c);

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    if (c->in_exchange && !c->recorded) {
        if (!c->resp_done && !c->tunnel)
            c->flags |= RF_DC;
        record(c);
    }
    if (c->tunnel)
        record_tunnel(c, false);
    c->closing = true;
    exchange_dispose(c);
    transport_close(&c->tr, on_transport_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->route_timer, on_closed);
    uv_close((uv_handle_t *)&c->try_timer, on_closed);
}

/* ---- lingering ---- */

/* Whether the client may still be sending: the request is unfinished, or input is waiting unread. */
static bool client_may_send(conn_t *c)
{
    if (c->peer_eof)
        return false;
    if (c->req_failed || c->in.len > 0 || http1_parser_in_message(c->req) || transport_read_buffered(&c->tr) > 0)
        return true;
    uv_os_fd_t fd;
    int unread = 0;
    return uv_fileno((const uv_handle_t *)&c->tr.tcp, &fd) == 0 && ioctl(fd, FIONREAD, &unread) == 0 && unread > 0;
}

static void on_linger_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (!c->closing)
        conn_close(c);
}

/* (Re)start the timer: the next read must come within timeout_ms, and all of them before linger_end. */
static void linger_arm(conn_t *c)
{
    uint64_t now = uv_now(c->env->w->loop);
    if (now >= c->linger_end) {
        conn_close(c);
        return;
    }
    uint64_t ms = c->linger_end - now;
    if (ms > c->env->w->linger.timeout_ms)
        ms = c->env->w->linger.timeout_ms;
    uv_timer_start(&c->timer, on_linger_timer, ms ? ms : 1, 0);
}

static void linger_alloc(void *ctx, size_t suggested, uv_buf_t *b)
{
    /* one loop per thread, and each read reaches linger_read before the next alloc: one buffer serves all */
    static _Thread_local char drop[LINGER_CHUNK];
    (void)ctx;
    (void)suggested;
    *b = uv_buf_init(drop, sizeof drop);
}

static void linger_read(void *ctx, char *data, size_t n)
{
    (void)data;
    conn_t *c = ctx;
    if (c->closing)
        return;
    buffers_free(c);
    if ((uint64_t)n >= c->linger_left) {
        conn_close(c); /* the byte bound is reached */
        return;
    }
    c->linger_left -= (uint64_t)n;
    linger_arm(c);
}

/* The client closed or failed (also what a failed shutdown shows up as). */
static void linger_closed(void *ctx, int status)
{
    (void)status;
    conn_t *c = ctx;
    if (!c->closing)
        conn_close(c);
}

static const transport_handler_t linger_handler = {NULL, linger_alloc, linger_read, linger_closed, NULL};

/*
 * The connection is done (its last answer, if any, is written): close it,
 * lingering first when the client may still be sending.
 */
static void conn_finish(conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    const conn_linger_t *lg = &c->env->w->linger;
    if (lg->time_ms == 0 || !client_may_send(c)) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    uv_timer_stop(&c->timer);
    c->reading = false;
    c->linger_left = lg->bytes;
    c->linger_end = uv_now(c->env->w->loop) + lg->time_ms;
    transport_set_handler(&c->tr, &linger_handler, c);
    if (transport_shutdown(&c->tr) < 0) {
        conn_close(c);
        return;
    }
    transport_read_start(&c->tr);
    linger_arm(c);
}

/* ---- writing to the client ---- */

/* The transport's queue to the client fell below DOWN_WRITE_LOW, or emptied (transport_drain_when_empty). */
static void down_drained(void *ctx)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    if (c->up_read_paused && c->up != NULL && down_queued(c) < DOWN_WRITE_LOW) {
        c->up_read_paused = false;
        upstream_read_start(c->up);
    }
    if (c->close_after && !c->in_exchange && down_queued(c) == 0)
        conn_finish(c);
}

/*
 * Bytes for the client are gathered in `pend` while one event is handled
 * (a response head and its body usually arrive in one read) and written
 * by down_flush in one go; the transport sends them straight from the
 * buffer when nothing is in flight and copies only what the socket did
 * not take.
 */
static void down_write(conn_t *c, const void *data, size_t len)
{
    if (c->closing || c->lingering || len == 0)
        return;
    buf_append(&c->pend, data, len);
}

static void down_flush(conn_t *c)
{
    if (c->closing || c->lingering || c->pend.len == 0)
        return;
    int rc = transport_write(&c->tr, c->pend.data, c->pend.len);
    c->pend.len = 0;
    if (rc < 0) {
        conn_close(c);
        return;
    }
    if (down_queued(c) > 0)
        return;
    if (c->close_after && !c->in_exchange)
        conn_finish(c);
}

static void pause_upstream_if_full(conn_t *c)
{
    if (down_queued(c) >= DOWN_WRITE_HIGH && c->up != NULL && !c->up_read_paused) {
        c->up_read_paused = true;
        upstream_read_stop(c->up);
    }
}

/* A complete response made here (errors, 404, 503, redirects); ends the response side of the exchange. */
static void local_reply_h(conn_t *c, int status, const char *text, bool close, const http1_header_t *extra,
                          uint32_t n_extra)
{
    if (c->closing)
        return;
    if (c->resp_head_sent) {
        conn_close(c);
        return;
    }
    uv_timer_stop(&c->route_timer);
    uv_timer_stop(&c->try_timer);
    release_upstream(c, false);
    if (close || c->env->draining || !c->req_keep_alive || !c->in_exchange || c->upgrade)
        c->close_after = true;
    c->out.len = 0;
    size_t n = strlen(text);
    if (http1_write_simple_response(&c->out, status, NULL, extra, n_extra, "text/plain", text, n, c->close_after) < 0) {
        conn_close(c);
        return;
    }
    c->status = status;
    c->resp_head_sent = true;
    c->resp_done = true;
    c->resp_body_bytes += n;
    down_write(c, c->out.data, c->out.len);
    down_flush(c);
}

static void local_reply(conn_t *c, int status, const char *text, bool close)
{
    local_reply_h(c, status, text, close, NULL, 0);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || c->in_exchange)
        return;
    if (c->handshaking) {
        transport_handshake_timeout(&c->tr);
        tls_stats_count(c->env->w->tls_stats, TLS_STATS_INBOUND, &c->tr, UV_ETIMEDOUT);
        log_warn("inbound: TLS handshake from %s failed: %s", c->peer, TRANSPORT_R_HANDSHAKE_TIMEOUT);
        conn_close(c);
        return;
    }
    if (c->bytes_seen > 0 || http1_parser_in_message(c->req))
        local_reply(c, 408, "request header read timeout\n", true);
    else
        conn_close(c);
}

static void arm_wait_timer(conn_t *c)
{
    uint64_t ms = c->bytes_seen > 0 ? c->env->w->header_timeout_ms : c->env->w->idle_timeout_ms;
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

/* ---- attempts ---- */

static bool retriable_status(const proxy_retries_t *r, int status)
{
    if ((r->retry_on & PROXY_RETRY_5XX) && status >= 500 && status <= 599)
        return true;
    if ((r->retry_on & PROXY_RETRY_GATEWAY_ERROR) && (status == 502 || status == 503 || status == 504))
        return true;
    if ((r->retry_on & PROXY_RETRY_RETRIABLE_4XX) && status == 409)
        return true;
    if (r->retry_on & PROXY_RETRY_RETRIABLE_STATUS_CODES)
        for (size_t i = 0; i < r->n_codes; i++)
            if (r->codes[i] == status)
                return true;
    return false;
}

static bool retriable_failure(const proxy_retries_t *r, enum fail_kind k)
{
    switch (k) {
    case FAIL_CONNECT: return (r->retry_on & (PROXY_RETRY_CONNECT_FAILURE | PROXY_RETRY_5XX)) != 0;
    case FAIL_RESET: return (r->retry_on & (PROXY_RETRY_RESET | PROXY_RETRY_5XX)) != 0;
    case FAIL_TRY_TIMEOUT:
        return (r->retry_on & (PROXY_RETRY_5XX | PROXY_RETRY_GATEWAY_ERROR | PROXY_RETRY_RESET)) != 0;
    case FAIL_STATUS: return true;
    }
    return false;
}

/* DestinationRule http.maxRetries: retries in flight in the cluster (this worker); takes one when allowed. */
static bool retry_budget(conn_t *c)
{
    if (!c->retry_counted)
        c->retry_counted = cluster_retry_take(&c->view->cs[c->cl->index], c->cl);
    return c->retry_counted;
}

/* Every retry the policy allows was started: one more would exceed the limit (Envoy's retry_limit_exceeded). */
static bool retries_used_up(const conn_t *c)
{
    return c->retry->attempts > 0 && c->attempts > c->retry->attempts;
}

static void on_backoff(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || !c->in_exchange || c->resp_done)
        return;
    start_attempt(c);
}

/*
 * The current attempt failed before any response byte reached the client:
 * retry it when the policy allows, else answer with the failure.
 */
static void attempt_failed(conn_t *c, enum fail_kind kind)
{
    if (c->closing || c->resp_done)
        return;
    bool stale = kind == FAIL_RESET && c->up != NULL && upstream_reused(c->up);
    uv_timer_stop(&c->try_timer);
    if (!stale)
        outlier_result(c, kind == FAIL_STATUS ? c->fail_status : kind == FAIL_TRY_TIMEOUT ? 504 : 0);
    if (c->ep >= 0 && c->cl->n_endpoints > 1)
        c->excluded[c->ep / 64] |= 1ull << (c->ep % 64);
    release_upstream(c, false);
    if (stale && !c->stale_retry_used && !c->body_over) {
        /* a pooled connection the upstream had closed: once more on a fresh one, not counted */
        c->stale_retry_used = true;
        c->attempts--;
        start_attempt(c);
        return;
    }
    if (c->retries_left > 0 && !c->body_over && retriable_failure(c->retry, kind) && retry_budget(c)) {
        c->retries_left--;
        int n = c->attempts; /* retries so far + 1 */
        uint64_t cap = (uint64_t)BACKOFF_BASE_MS << (n < 4 ? n : 4);
        if (cap > BACKOFF_MAX_MS)
            cap = BACKOFF_MAX_MS;
        uint64_t ms = tracectx_rand(&c->env->w->rng) % (cap + 1);
        c->retry_due = true;
        uv_timer_start(&c->try_timer, on_backoff, ms ? ms : 1, 0);
        return;
    }
    if (retries_used_up(c) && retriable_failure(c->retry, kind))
        runtime_count(c->view->rt, c->cl, RC_RETRY_LIMIT_EXCEEDED);
    if (c->attempts > 1)
        c->flags |= RF_URX;
    switch (kind) {
    case FAIL_CONNECT:
        c->flags |= RF_UF;
        if (c->tls_failure != NULL) { /* Envoy's wording, with the transport's reason */
            char text[200];
            snprintf(text, sizeof text,
                     "upstream connect error or disconnect/reset before headers. reset reason: connection failure, "
                     "transport failure reason: TLS error: %s\n",
                     c->tls_failure);
            local_reply(c, 503, text, false);
        } else {
            local_reply(c, 503,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection failure\n",
                        false);
        }
        break;
    case FAIL_TRY_TIMEOUT:
        c->flags |= RF_UT;
        local_reply(c, 504, "upstream request timeout\n", false);
        break;
    default:
        c->flags |= RF_UC;
        local_reply(c, 503,
                    "upstream connect error or disconnect/reset before headers. reset reason: connection termination\n",
                    !c->req_done);
        break;
    }
    process(c);
}

static void on_try_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || !c->in_exchange || c->resp_done)
        return;
    if (c->resp_head_sent) {
        c->flags |= RF_UT;
        conn_close(c);
        return;
    }
    attempt_failed(c, FAIL_TRY_TIMEOUT);
}

static void on_route_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || !c->in_exchange || c->resp_done)
        return;
    c->flags |= RF_UT;
    if (c->resp_head_sent) {
        conn_close(c);
        return;
    }
    local_reply(c, 504, "upstream request timeout\n", !c->req_done);
    process(c);
}

/* ---- upstream events ---- */

static void up_on_connect(void *ctx, int status)
{
    conn_t *c = ctx;
    if (status == 0 || c->closing)
        return;
    log_debug("upstream connect to %s failed: %s", c->cl->endpoints[c->ep].name, uv_strerror(status));
    c->tls_failure = c->up != NULL ? upstream_tls_failure(c->up) : NULL;
    attempt_failed(c, FAIL_CONNECT);
}

static void after_response_progress(conn_t *c)
{
    if (c->closing || !c->resp_done)
        return;
    if (c->up != NULL) {
        /* a response that came before its request finished leaves the upstream mid-request */
        bool reusable = c->up_reusable && c->req_done;
        if (!c->req_done)
            c->close_after = true;
        release_upstream(c, reusable);
    }
    process(c);
}

static void tunnel_from_upstream(conn_t *c, const char *data, size_t len)
{
    c->tunnel_down += len;
    down_write(c, data, len);
    down_flush(c);
    pause_upstream_if_full(c);
}

static void enter_tunnel(conn_t *c)
{
    c->tunnel = true;
    c->resp_done = true;
    record_tunnel(c, true);
    record(c);
    c->paused = false;
    process(c); /* client bytes that came after the request head belong to the tunnel */
}

static void up_read(conn_t *c, const char *data, size_t len);

static void up_on_read(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    up_read(c, data, len);
    down_flush(c);
}

static void up_read(conn_t *c, const char *data, size_t len)
{
    if (c->closing)
        return;
    if (c->tunnel) {
        tunnel_from_upstream(c, data, len);
        return;
    }
    if (c->resp_done) {
        c->up_reusable = false; /* bytes after the response: the connection is not clean */
        release_upstream(c, false);
        return;
    }
    size_t used = 0;
    int rc = http1_parse(c->resp, data, len, &used);
    if (c->closing)
        return;
    if (rc == HTTP1_PAUSED && c->retry_pending) {
        c->retry_pending = false;
        attempt_failed(c, FAIL_STATUS);
        return;
    }
    if (rc == HTTP1_UPGRADED && c->upgrade && c->resp_head_sent) {
        enter_tunnel(c);
        if (used < len && !c->closing)
            tunnel_from_upstream(c, data + used, len - used);
        return;
    }
    if (rc == HTTP1_ERROR || rc == HTTP1_UPGRADED) {
        if (rc == HTTP1_ERROR)
            log_debug("bad upstream response: %s", http1_parser_error_reason(c->resp));
        if (c->resp_head_sent && !c->resp_done) {
            conn_close(c);
            return;
        }
        if (!c->resp_done) {
            c->flags |= RF_UPE;
            local_reply(c, 502, "upstream sent an invalid response\n", !c->req_done);
        }
        release_upstream(c, false);
        process(c);
        return;
    }
    if (c->resp_done && used < len)
        c->up_reusable = false;
    after_response_progress(c);
}

static void up_closed(conn_t *c, int status);

static void up_on_close(void *ctx, int status)
{
    conn_t *c = ctx;
    up_closed(c, status);
    down_flush(c);
}

static void up_closed(conn_t *c, int status)
{
    if (c->closing)
        return;
    if (c->tunnel) {
        conn_close(c);
        return;
    }
    c->up_reusable = false;
    if (!c->resp_done && c->resp_head_sent) {
        if (http1_finish(c->resp) == HTTP1_OK && c->resp_done) {
            after_response_progress(c);
            return;
        }
        /* reset mid-response: the client cannot be told, only cut off */
        log_debug("upstream closed mid-response: %s", uv_strerror(status));
        c->flags |= RF_UC;
        conn_close(c);
        return;
    }
    if (!c->resp_done) {
        log_debug("upstream closed before a response: %s", uv_strerror(status));
        attempt_failed(c, FAIL_RESET);
        return;
    }
    release_upstream(c, false);
    process(c);
}

static void up_on_drain(void *ctx)
{
    update_reading(ctx);
}

static const upstream_handler_t up_handler = {up_on_connect, up_on_read, up_on_close, up_on_drain};

/* ---- response parser callbacks ---- */

static void ensure_hdrs(conn_t *c, uint32_t need)
{
    if (c->hdrs_cap < need) {
        free(c->hdrs);
        c->hdrs_cap = need;
        c->hdrs = xmalloc(c->hdrs_cap * sizeof *c->hdrs);
    }
}

/*
 * Decode a peer metadata header into c->peer_info (zeroed when it does not
 * decode, as peer_decode leaves it); telemetry's handle for the peer is kept
 * when the metadata did not change, so a peer is interned once per connection.
 */
static void take_peer(conn_t *c, str_t value)
{
    peer_info_t pi;
    int rc = peer_decode(value, &pi);
    if (memcmp(&pi, &c->peer_info, sizeof pi) != 0) {
        c->peer_info = pi;
        c->tele_peer = 0;
    }
    if (rc == 0)
        c->have_peer = true;
}

/* The response's fields as the client gets them: peer metadata taken out (and read), route header operations. */
static uint32_t response_headers(conn_t *c, const http1_head_t *h)
{
    uint32_t cap = h->header_count + MAX_EXTRA_FIELDS;
    ensure_hdrs(c, 2 * cap);
    http1_header_t *tmp = c->hdrs + cap;
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->header_count; i++) {
        const http1_header_t *f = &h->headers[i];
        if (f->name.len >= 21 && peer_is_header(f->name)) {
            if (c->env->mode == CONN_OUTBOUND && http1_name_eq(f->name, PEER_HEADER))
                take_peer(c, f->value);
            continue;
        }
        tmp[n++] = *f;
    }
    if (c->env->mode == CONN_INBOUND) {
        memcpy(tmp + n, c->view->rt->peer_fields, sizeof c->view->rt->peer_fields);
        n += 2;
    }
    if (c->d.route != NULL)
        return router_response_headers(&c->d, tmp, n, c->hdrs, cap);
    memcpy(c->hdrs, tmp, n * sizeof *tmp);
    return n;
}

/* The answering upstream's verified identity, when the connection is mutual TLS with ours (telemetry). */
static void note_upstream_identity(conn_t *c)
{
    const char *id = c->up != NULL && c->env->w->mesh_tls != NULL ? upstream_peer_id(c->up) : NULL;
    c->up_mtls = id != NULL && runtime_mesh_mtls(c->view->rt, c->cl, c->ep);
    if (!c->up_mtls)
        id = NULL;
    if (strncmp(c->up_principal, id != NULL ? id : "", sizeof c->up_principal) != 0) {
        snprintf(c->up_principal, sizeof c->up_principal, "%s", id != NULL ? id : "");
        c->tele_peer = 0; /* the principal is part of the peer's telemetry handle */
    }
}

static int resp_on_head(void *ctx, const http1_head_t *h)
{
    conn_t *c = ctx;
    http1_head_opts_t o = {HTTP1_FRAME_NONE, 0, false, false, true};
    c->out.len = 0;
    if (h->status / 100 == 1 && h->status != 101) {
        c->resp_interim = true;
        if (http1_write_response_head(&c->out, h->status, NULL, h->headers, h->header_count, &o) == 0)
            down_write(c, c->out.data, c->out.len);
        return HTTP1_CB_OK;
    }
    if (h->status == 101 && !c->upgrade)
        return HTTP1_CB_ABORT;
    if (h->status != 101 && c->retries_left > 0 && !c->body_over && c->req_done &&
        retriable_status(c->retry, h->status)) {
        c->retry_pending = true;
        c->fail_status = h->status;
        return HTTP1_CB_PAUSE;
    }
    if (h->status != 101)
        outlier_result(c, h->status);
    note_upstream_identity(c);
    uv_timer_stop(&c->try_timer);
    if (c->attempts > 1 && c->retries_left == 0 && retriable_status(c->retry, h->status))
        c->flags |= RF_URX;
    /* the final response of the request: how its retries ended (Envoy's retry_success / retry_limit_exceeded) */
    if (!retriable_status(c->retry, h->status)) {
        if (c->attempts > 1)
            runtime_count(c->view->rt, c->cl, RC_RETRY_SUCCESS);
    } else if (retries_used_up(c)) {
        runtime_count(c->view->rt, c->cl, RC_RETRY_LIMIT_EXCEEDED);
    }
    c->resp_chunked = false;
    c->resp_no_body = false;
    c->resp_trailers_sent = false;
    c->up_reusable = h->keep_alive;
    c->status = h->status;
    if (c->env->draining || !c->req_keep_alive || c->upgrade)
        c->close_after = true;
    if (h->status == 101) {
        o.tunnel = true;
    } else if (h->method == HTTP1_METHOD_HEAD || h->status == 204 || h->status == 304) {
        c->resp_no_body = true;
        const http1_header_t *cl = http1_header_find(h->headers, h->header_count, "content-length");
        if (cl != NULL && h->status != 204 && cl->value.len > 0 && cl->value.len < 20) {
            char tmp[24];
            memcpy(tmp, cl->value.ptr, cl->value.len);
            tmp[cl->value.len] = '\0';
            char *end;
            unsigned long long v = strtoull(tmp, &end, 10);
            if (*end == '\0') {
                o.framing = HTTP1_FRAME_LENGTH;
                o.content_length = v;
            }
        }
    } else if (h->body == HTTP1_BODY_LENGTH) {
        o.framing = HTTP1_FRAME_LENGTH;
        o.content_length = h->content_length;
    } else if (h->body == HTTP1_BODY_NONE) {
        o.framing = HTTP1_FRAME_LENGTH;
        o.content_length = 0;
    } else if (c->req_http11) {
        o.framing = HTTP1_FRAME_CHUNKED;
        c->resp_chunked = true;
    } else {
        o.framing = HTTP1_FRAME_CLOSE;
        c->close_after = true;
    }
    o.close = c->close_after && h->status != 101;
    uint32_t n = response_headers(c, h);
    if (http1_write_response_head(&c->out, h->status, NULL, c->hdrs, n, &o) < 0)
        return HTTP1_CB_ABORT;
    c->resp_head_sent = true;
    down_write(c, c->out.data, c->out.len);
    return HTTP1_CB_OK;
}

static int resp_on_body(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    if (c->resp_no_body)
        return HTTP1_CB_OK;
    c->resp_body_bytes += len;
    if (c->resp_chunked) {
        char hdr[19];
        size_t n = http1_chunk_header(hdr, len);
        c->out.len = 0;
        buf_append(&c->out, hdr, n);
        buf_append(&c->out, data, len);
        buf_append(&c->out, "\r\n", 2);
        down_write(c, c->out.data, c->out.len);
    } else {
        down_write(c, data, len);
    }
    pause_upstream_if_full(c);
    return HTTP1_CB_OK;
}

static int resp_on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    conn_t *c = ctx;
    if (c->resp_chunked && !c->resp_interim) {
        c->out.len = 0;
        if (http1_write_last_chunk(&c->out, t, n) < 0)
            return HTTP1_CB_ABORT;
        down_write(c, c->out.data, c->out.len);
        c->resp_trailers_sent = true;
    }
    return HTTP1_CB_OK;
}

static int resp_on_complete(void *ctx)
{
    conn_t *c = ctx;
    if (c->resp_interim) {
        c->resp_interim = false;
        return HTTP1_CB_OK;
    }
    if (c->tunnel || (c->upgrade && c->status == 101))
        return HTTP1_CB_OK;
    if (c->resp_chunked && !c->resp_trailers_sent) {
        c->out.len = 0;
        http1_write_last_chunk(&c->out, NULL, 0);
        down_write(c, c->out.data, c->out.len);
    }
    c->resp_done = true;
    uv_timer_stop(&c->route_timer);
    return HTTP1_CB_OK;
}

static const http1_callbacks_t resp_cb = {resp_on_head, resp_on_body, resp_on_trailers, resp_on_complete};

/* ---- the request head ---- */

/*
 * The upstream request's fields: the request's, without the trace context,
 * peer metadata and x-forwarded-*, through the route's header operations,
 * then x-forwarded-for (the client appended), x-forwarded-proto, the trace
 * context and (outbound) this proxy's peer metadata. Values point into
 * the request head, the config, c->xff and tscratch.
 */
static uint32_t request_headers(conn_t *c, const http1_head_t *h, char *tscratch)
{
    uint32_t cap = h->header_count + MAX_EXTRA_FIELDS;
    ensure_hdrs(c, cap);
    http1_header_t *tmp = c->hdrs; /* scratch; the result goes to up_fields, which lives for the exchange */
    if (c->up_fields_cap < cap) {
        free(c->up_fields);
        c->up_fields_cap = cap;
        c->up_fields = xmalloc(cap * sizeof *c->up_fields);
    }
    c->xff.len = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->header_count; i++) {
        const http1_header_t *f = &h->headers[i];
        unsigned char c0 = f->name.len ? (unsigned char)(f->name.ptr[0] | 0x20) : 0;
        if (c0 != 'x' && c0 != 't' && c0 != 'b') {
            tmp[n++] = *f; /* none of the fields taken out below starts otherwise */
            continue;
        }
        if (http1_name_eq(f->name, "x-forwarded-for")) {
            if (f->value.len > 0) {
                buf_append(&c->xff, f->value.ptr, f->value.len);
                buf_append_str(&c->xff, ", ");
            }
            continue;
        }
        if (http1_name_eq(f->name, "x-forwarded-proto") || tracectx_is_own_header(f->name) || peer_is_header(f->name))
            continue;
        tmp[n++] = *f;
    }
    http1_header_t *out = c->up_fields;
    if (c->d.route != NULL) {
        n = router_request_headers(&c->d, tmp, n, out, cap - 8 - TRACECTX_MAX_FIELDS);
        if (n > cap - 8 - TRACECTX_MAX_FIELDS)
            n = cap - 8 - TRACECTX_MAX_FIELDS;
    } else {
        memcpy(out, tmp, n * sizeof *tmp);
    }
    buf_append_str(&c->xff, c->peer);
    out[n].name = (str_t){"x-forwarded-for", 15};
    out[n].value = (str_t){c->xff.data, c->xff.len};
    n++;
    const char *proto = c->env->proto ? c->env->proto : "http";
    out[n].name = (str_t){"x-forwarded-proto", 17};
    out[n].value = (str_t){proto, strlen(proto)};
    n++;
    n += tracectx_inject(&c->trace, tscratch, out + n);
    if (c->env->mode == CONN_OUTBOUND) {
        memcpy(out + n, c->view->rt->peer_fields, sizeof c->view->rt->peer_fields);
        n += 2;
    }
    return n;
}

static const http1_header_t *find_header(const http1_head_t *h, const char *name)
{
    return http1_header_find(h->headers, h->header_count, name);
}

static void begin_exchange(conn_t *c, const http1_head_t *h)
{
    c->in_exchange = true;
    c->req_done = false;
    c->up_mtls = false;
    c->resp_done = false;
    c->resp_head_sent = false;
    c->resp_interim = false;
    c->up_reusable = false;
    c->up_read_paused = false;
    c->req_keep_alive = h->keep_alive;
    c->req_http11 = h->version_major == 1 && h->version_minor >= 1;
    c->req_chunked = h->body == HTTP1_BODY_CHUNKED;
    c->head = h;
    c->d = (router_decision_t){ROUTER_NOT_FOUND, NULL, NULL, NULL, NULL, NULL};
    c->cl = NULL;
    c->ep = -1;
    c->lb_active = false;
    c->flags = 0;
    c->attempts = 0;
    c->retries_left = 0;
    c->retry = &no_retries;
    c->stale_retry_used = false;
    c->retry_due = false;
    c->retry_pending = false;
    c->upgrade = h->upgrade;
    c->tunnel = false;
    c->recorded = false;
    c->have_peer = false;
    c->filter_at = 0;
    c->filter_wait = false;
    memset(&c->rl_global, 0, sizeof c->rl_global);
    memset(&c->fault, 0, sizeof c->fault);
    c->mirrors.n = 0;
    c->leased_counted = false;
    c->retry_counted = false;
    c->status = 0;
    c->up_head.len = 0;
    c->body.len = 0;
    c->body_over = h->upgrade;
    c->req_body_bytes = c->resp_body_bytes = 0;
    c->tunnel_up = c->tunnel_down = 0;
    c->start_ns = uv_hrtime();
    c->start_unix_ns = now_unix_ns();
    memset(c->excluded, 0, sizeof c->excluded);
    c->view = c->env->w->view;
    runtime_view_hold(c->view);
    if (c->env->draining)
        c->close_after = true;
}

static int req_on_head(void *ctx, const http1_head_t *h)
{
    conn_t *c = ctx;
    uv_timer_stop(&c->timer);
    begin_exchange(c, h);
    const runtime_t *rt = c->view->rt;
    const proxy_spec_t *ps = &rt->cfg->proxy;

    tracectx_extract(h->headers, h->header_count, &c->trace);
    double sampling =
        tele_policy_sampling(rt->tele_policy, c->env->mode == CONN_OUTBOUND ? 0 : 1, ps->sampling_percent);
    tracectx_begin(&c->trace, c->env->w->tele != NULL ? sampling : 0, &c->env->w->rng);
    if (c->env->mode == CONN_INBOUND) {
        const http1_header_t *pm = find_header(h, PEER_HEADER);
        if (pm != NULL)
            take_peer(c, pm->value);
    }

    router_request_t *rq = &c->rreq;
    memset(rq, 0, sizeof *rq);
    rq->method = h->method_name;
    rq->headers = h->headers;
    rq->header_count = h->header_count;
    rq->source_ip = c->peer;
    if (h->method == HTTP1_METHOD_CONNECT ||
        router_split_target(h->target, &rq->authority, &rq->path, &rq->query) < 0) {
        local_reply(c, h->method == HTTP1_METHOD_CONNECT ? 501 : 400,
                    h->method == HTTP1_METHOD_CONNECT ? "CONNECT is not supported\n"
                                                      : "request-target form not supported\n",
                    true);
        return HTTP1_CB_OK;
    }
    if (rq->authority.len == 0) {
        const http1_header_t *host = find_header(h, "host");
        if (host != NULL)
            rq->authority = host->value;
    }

    if (c->env->mode == CONN_INBOUND) {
        c->cl = router_inbound(rt->router);
        c->d.action = ROUTER_FORWARD;
        c->d.cluster = c->cl;
    } else {
        router_route(rt->router, rq, (uint32_t)tracectx_rand(&c->env->w->rng), &c->d);
        c->cl = c->d.cluster;
    }
    switch (c->d.action) {
    case ROUTER_NOT_FOUND:
        c->flags |= RF_NR;
        local_reply(c, 404, "no route for this host and path\n", false);
        return HTTP1_CB_OK;
    case ROUTER_DIRECT: {
        const char *body = c->d.route->direct_body != NULL ? c->d.route->direct_body : "";
        local_reply(c, c->d.route->direct_status, body, false);
        return HTTP1_CB_OK;
    }
    case ROUTER_REDIRECT: {
        buf_t loc = BUF_INIT;
        router_redirect_location(&c->d, rq, &loc);
        http1_header_t f = {{"location", 8}, {loc.data, loc.len}};
        local_reply_h(c, c->d.route->redirect_code, "", false, &f, 1);
        buf_dispose(&loc);
        return HTTP1_CB_OK;
    }
    case ROUTER_FORWARD: break;
    }
    if (c->cl == NULL || c->cl->n_endpoints == 0) {
        c->flags |= RF_UH;
        local_reply(c, 503, "no healthy upstream\n", false);
        return HTTP1_CB_OK;
    }

    /* the upstream request head, structured (the HTTP/1 client writes it at the first attempt) */
    proxy_head_t *u = &c->uhead;
    memset(u, 0, sizeof *u);
    u->method = h->method_name;
    u->fields = c->up_fields; /* request_headers may grow the array: set again below */
    u->n_fields = request_headers(c, h, c->tscratch);
    u->fields = c->up_fields;
    u->authority = rq->authority;
    u->upgrade = h->upgrade;
    u->framing = h->body == HTTP1_BODY_LENGTH    ? HTTP1_FRAME_LENGTH
                 : h->body == HTTP1_BODY_CHUNKED ? HTTP1_FRAME_CHUNKED
                                                 : HTTP1_FRAME_NONE;
    u->content_length = h->content_length;
    /* the target in origin form, rewritten by the route if it says so */
    c->up_target.len = 0;
    router_rewrite_target(&c->d, rq, &c->up_target);
    u->target = (str_t){c->up_target.data, (uint32_t)c->up_target.len};
    if (!http1_request_target_ok(u->target)) {
        local_reply(c, 400, "bad request\n", true);
        return HTTP1_CB_OK;
    }
    if (c->env->mode == CONN_OUTBOUND && c->d.route != NULL) {
        c->retry = &c->d.route->retries;
    } else if (c->env->mode == CONN_OUTBOUND) {
        /* the default route: Istio's default retry policy */
        static const proxy_retries_t defaults = {
            0, 2, PROXY_UNSET, PROXY_RETRY_CONNECT_FAILURE | PROXY_RETRY_RETRIABLE_STATUS_CODES, {503}, 1};
        c->retry = &defaults;
    }
    c->retries_left = c->retry->attempts;
    const proxy_http_route_t *route = c->d.route;
    if ((c->env->mode == CONN_INBOUND || c->view->rt->cfg->n_rate_limits == 0) &&
        (route == NULL || (!route->fault.has_delay && !route->fault.has_abort && route->n_mirrors == 0))) {
        c->filter_at = STEP_DONE; /* no filter applies: straight to the first attempt */
        run_filters(c);
        return HTTP1_CB_OK;
    }
    c->fx = (filter_exchange_t){.req = &c->rreq,
                                .d = &c->d,
                                .cl = c->cl,
                                .view = c->view,
                                .loop = c->env->w->loop,
                                .rng = &c->env->w->rng,
                                .rlg = c->env->w->rlg,
                                .peer = c->peer,
                                .reply = fx_reply,
                                .resume = fx_resume,
                                .over = fx_over};
    run_filters(c);
    return HTTP1_CB_OK;
}


/* Run the filters from c->filter_at on; past the last, the route timeout and the first attempt. */
static void run_filters(conn_t *c)
{
    bool out = c->env->mode == CONN_OUTBOUND;
    while (c->filter_at < STEP_DONE) {
        enum filter_result r = FILTER_CONTINUE;
        switch (c->filter_at++) {
        case STEP_RL_LOCAL:
            if (out)
                r = filter_rl_local(&c->fx);
            break;
        case STEP_RL_GLOBAL:
            if (out)
                r = filter_rl_global(&c->fx, &c->rl_global);
            break;
        case STEP_FAULT: r = filter_fault(&c->fx, &c->fault, &c->try_timer, &c->flags); break;
        case STEP_MIRROR:
            if (!c->upgrade && !c->body_over)
                r = filter_mirror(&c->fx, &c->mirrors, &c->uhead, c->body.data, c->body.len, c->req_done);
            break;
        }
        if (r == FILTER_WAIT) {
            c->filter_wait = true; /* fx_resume or fx_reply comes from the loop */
            return;
        }
        if (r == FILTER_REPLIED)
            return;
    }
    if (c->d.route != NULL && c->d.route->timeout_ms > 0)
        uv_timer_start(&c->route_timer, on_route_timeout, (uint64_t)c->d.route->timeout_ms, 0);
    start_attempt(c);
}

static conn_t *fx_conn(filter_exchange_t *x)
{
    return (conn_t *)((char *)x - offsetof(conn_t, fx));
}

static bool fx_over(filter_exchange_t *x)
{
    conn_t *c = fx_conn(x);
    return c->closing || !c->in_exchange || c->resp_done;
}

static void fx_reply(filter_exchange_t *x, const filter_reply_t *r)
{
    conn_t *c = fx_conn(x);
    c->filter_wait = false;
    c->flags |= r->flags;
    local_reply_h(c, r->status, r->text, !c->req_done, r->fields, (uint32_t)r->n_fields);
    process(c); /* a no-op inside the parser's callback, which goes on itself */
}

static void fx_resume(filter_exchange_t *x)
{
    conn_t *c = fx_conn(x);
    c->filter_wait = false;
    run_filters(c);
    update_reading(c);
}

/* Outlier detection: how the attempt on c->ep ended (status 0 for a connection failure). */
static void outlier_result(conn_t *c, int status)
{
    if (c->cl != NULL && c->ep >= 0 && c->view->cs[c->cl->index].health != NULL)
        cluster_result(&c->view->cs[c->cl->index], c->view->rt, c->cl, c->ep, status, uv_now(c->env->w->loop));
}

static void start_attempt(conn_t *c)
{
    c->tls_failure = NULL;
    c->up_mtls = false; /* until this attempt's answer shows the upstream's identity */
    router_lb_t *lb = &c->view->lbs[c->cl->index];
    cluster_state_t *cs = &c->view->cs[c->cl->index];
    uint64_t buf[ROUTER_MAX_ENDPOINTS / 64];
    const uint64_t *mask = c->excluded; /* without outlier detection: just the endpoints tried */
    bool healthy = true;
    if (cs->health != NULL) {
        healthy = cluster_pick_mask(cs, c->view->rt, c->cl, uv_now(c->env->w->loop), c->excluded, buf);
        mask = buf;
    }
    c->ep = healthy ? router_lb_pick(lb, &c->rreq, tracectx_rand(&c->env->w->rng), mask) : -1;
    if (c->ep < 0) {
        c->flags |= RF_UH;
        local_reply(c, 503, "no healthy upstream\n", false);
        process(c);
        return;
    }
    upstream_pool_t *pool = runtime_view_pool(c->view, c->cl, c->ep);
    const proxy_traffic_policy_t *pol = c->cl->policy;
    enum cluster_admit admit = CLUSTER_GO;
    if (pol != NULL && pol->max_connections > 0) {
        c->waiter.wake = on_connection_free;
        admit = cluster_admit(cs, c->cl, runtime_view_connections(c->view, c->cl), upstream_pool_idle(pool),
                              &c->waiter);
    }
    if (admit == CLUSTER_WAIT)
        return; /* maxConnections reached: on_connection_free tries again */
    if (admit == CLUSTER_OVERFLOW) {
        c->flags |= RF_UO;
        local_reply(c, 503, "upstream connect error or disconnect/reset before headers. reset reason: overflow\n",
                    !c->req_done);
        process(c);
        return;
    }
    router_lb_begin(lb, c->ep);
    c->lb_active = true;
    c->attempts++;
    if (c->retry_due) {
        c->retry_due = false;
        runtime_count(c->view->rt, c->cl, RC_RETRY);
    }
    c->up = upstream_acquire(pool, &up_handler, c);
    if (c->up == NULL) {
        attempt_failed(c, FAIL_CONNECT);
        return;
    }
    c->leased_counted = true;
    cluster_leased(cs);
    http1_parser_reset(c->resp);
    http1_parser_set_method(c->resp, c->head->method);
    if (c->up_head.len == 0)
        proxy_head_write_http1(&c->uhead, &c->up_head); /* the target was checked; the fields are trusted */
    upstream_write(c->up, c->up_head.data, c->up_head.len);
    if (c->body.len > 0)
        upstream_write(c->up, c->body.data, c->body.len);
    if (c->retry->per_try_timeout_ms > 0)
        uv_timer_start(&c->try_timer, on_try_timeout, (uint64_t)c->retry->per_try_timeout_ms, 0);
}

/* ---- request body ---- */

/* Whether the request waits before its first attempt (fault delay, Redis verdict, a free connection). */
static bool held(const conn_t *c)
{
    return c->filter_wait || c->waiter.queued;
}

/* Send bytes of the framed request body upstream, and keep them for replays while they fit. */
static void body_out(conn_t *c, const char *data, size_t len)
{
    filter_mirror_body(&c->mirrors, data, len);
    if (!c->body_over) {
        if (c->body.len + len <= c->env->w->retry_buffer_bytes || held(c)) {
            /* held (no upstream yet): the bytes are kept past the limit, reading stops there, no replays later */
            if (c->body.len + len > c->env->w->retry_buffer_bytes)
                c->retries_left = 0;
            buf_append(&c->body, data, len);
        } else {
            c->body_over = true;
            buf_dispose(&c->body);
            if (c->up == NULL && !c->resp_done) {
                /* waiting to retry, and the body can no longer be replayed: give up now */
                uv_timer_stop(&c->try_timer);
                c->retries_left = 0;
                c->flags |= RF_URX;
                local_reply(c, 503, "upstream request failed and the request body is too large to retry\n", true);
                return;
            }
        }
    }
    if (c->up != NULL && !c->resp_done)
        upstream_write(c->up, data, len);
}

static int req_on_body(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    c->req_body_bytes += len;
    if (c->resp_done || c->cl == NULL)
        return HTTP1_CB_OK;
    if (c->req_chunked) {
        char hdr[19];
        size_t n = http1_chunk_header(hdr, len);
        c->out.len = 0;
        buf_append(&c->out, hdr, n);
        buf_append(&c->out, data, len);
        buf_append(&c->out, "\r\n", 2);
        body_out(c, c->out.data, c->out.len);
    } else {
        body_out(c, data, len);
    }
    return HTTP1_CB_OK;
}

static int req_on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    conn_t *c = ctx;
    if (c->cl != NULL && c->req_chunked && !c->resp_done) {
        c->out.len = 0;
        if (http1_write_last_chunk(&c->out, t, n) == 0)
            body_out(c, c->out.data, c->out.len);
        c->req_chunked = false; /* the last chunk is out */
    }
    return HTTP1_CB_OK;
}

static int req_on_complete(void *ctx)
{
    conn_t *c = ctx;
    if (c->cl != NULL && c->req_chunked && !c->resp_done) {
        c->out.len = 0;
        http1_write_last_chunk(&c->out, NULL, 0);
        body_out(c, c->out.data, c->out.len);
    }
    c->req_chunked = false;
    c->req_done = true;
    filter_mirror_end(&c->mirrors);
    return HTTP1_CB_PAUSE;
}

static const http1_callbacks_t req_cb = {req_on_head, req_on_body, req_on_trailers, req_on_complete};

/* ---- telemetry ---- */

static str_t header_value(const conn_t *c, const char *name)
{
    const http1_header_t *f = c->head != NULL ? find_header(c->head, name) : NULL;
    return f != NULL ? f->value : (str_t){"", 0};
}

static const char *endpoint_label(const conn_t *c, const char *key)
{
    if (c->cl == NULL || c->ep < 0 || c->cl->endpoints[c->ep].ep == NULL)
        return NULL;
    return proxy_kv_get(&c->cl->endpoints[c->ep].ep->labels, key);
}

/* Envoy's span name (the service, ":", the port, "/" and "*") into buf, cut to TELE_SPAN_NAME_MAX - 1 bytes. */
#define TELE_SPAN_NAME_MAX 300
static str_t span_name(char *buf, str_t svc, uint32_t port)
{
    char tail[16];
    char *t = tail + sizeof tail;
    *--t = '*';
    *--t = '/';
    do {
        *--t = (char)('0' + port % 10);
        port /= 10;
    } while (port != 0);
    *--t = ':';
    size_t tl = (size_t)(tail + sizeof tail - t);
    size_t n = svc.len < TELE_SPAN_NAME_MAX - 1 ? svc.len : TELE_SPAN_NAME_MAX - 1;
    if (n > 0)
        memcpy(buf, svc.ptr, n);
    size_t m = tl < TELE_SPAN_NAME_MAX - 1 - n ? tl : TELE_SPAN_NAME_MAX - 1 - n;
    memcpy(buf + n, t, m);
    return (str_t){buf, (uint32_t)(n + m)};
}

static void record(conn_t *c)
{
    if (c->recorded || c->view == NULL)
        return;
    c->recorded = true;
    tele_worker_t *tw = c->env->w->tele;
    if (tw == NULL)
        return;
    tele_request_t r;
    memset(&r, 0, sizeof r);
    char span_buf[TELE_SPAN_NAME_MAX];
    destination_service(c, &r.destination_service, &r.destination_service_name, &r.destination_service_namespace);
    if (c->trace.sampled == 1)
        r.span_name = span_name(span_buf, r.destination_service, c->cl != NULL ? c->cl->port : 0);
    if (c->env->mode == CONN_OUTBOUND) {
        r.reporter = TELE_SOURCE;
        r.destination_version = s_of(endpoint_label(c, "version"));
        r.destination_app = s_of(endpoint_label(c, "app"));
    } else {
        r.reporter = TELE_DESTINATION;
    }
    /* with a cluster, the destination strings above are fixed per (view, cluster, endpoint): cached there */
    r.dest_handle = c->cl != NULL ? runtime_view_tele_dest(c->view, c->cl, c->ep) : NULL;
    r.peer = c->have_peer ? &c->peer_info : NULL;
    r.peer_handle = &c->tele_peer;
    hop_security(c, &r.mtls, &r.peer_principal, &r.self_principal);
    r.response_code = c->status;
    r.response_flags = c->flags;
    r.request_bytes = c->req_body_bytes;
    r.response_bytes = c->resp_body_bytes;
    r.start_unix_ns = c->start_unix_ns;
    r.duration_ns = uv_hrtime() - c->start_ns;
    r.method = c->rreq.method;
    r.path = c->rreq.path; /* with its query, as Envoy's %REQ(:PATH)% and http.url have it */
    if (c->rreq.query.len > 0 && c->rreq.path.ptr + c->rreq.path.len + 1 == c->rreq.query.ptr)
        r.path.len += 1 + c->rreq.query.len;
    r.authority = c->rreq.authority;
    r.user_agent = header_value(c, "user-agent");
    r.protocol = c->req_http11 ? (str_t){"HTTP/1.1", 8} : (str_t){"HTTP/1.0", 8};
    if (c->cl != NULL && c->ep >= 0)
        r.upstream_host = s_of(c->cl->endpoints[c->ep].name);
    if (c->cl != NULL)
        r.upstream_cluster = s_of(c->cl->name);
    r.downstream_peer = s_of(c->peer);
    if (c->d.route != NULL && c->d.route->name != NULL)
        r.route_name = s_of(c->d.route->name);
    r.attempts = (uint32_t)c->attempts;
    r.trace = &c->trace;
    r.policy = c->view->rt->tele_policy;
    if (c->head != NULL) {
        r.headers = c->head->headers;
        r.n_headers = c->head->header_count;
    }
    r.destination_port = c->cl != NULL ? c->cl->port : 0;
    tele_record(tw, &r);
}

/* ---- the request side ---- */

/* When the current exchange is over: end it. Returns true when the connection goes on with the next request. */
static bool try_end_exchange(conn_t *c)
{
    if (!c->in_exchange || c->tunnel || !c->resp_done || !(c->req_done || c->close_after))
        return false;
    record(c);
    c->in_exchange = false;
    exchange_dispose(c);
    if (c->close_after || c->env->draining) {
        c->close_after = true;
        if (down_queued(c) == 0)
            conn_finish(c);
        return false;
    }
    c->paused = false;
    c->resp_done = false;
    c->bytes_seen = c->in.len;
    http1_parser_resume(c->req);
    arm_wait_timer(c);
    return true;
}

static void consume(conn_t *c, size_t n)
{
    if (n == 0)
        return;
    if (n < c->in.len)
        memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
}

static void process(conn_t *c)
{
    if (c->in_parse)
        return; /* called back from inside http1_parse: the loop below goes on when it returns */
    for (;;) {
        if (c->closing || c->lingering)
            return;
        if (c->tunnel) {
            if (c->in.len > 0 && c->up != NULL) {
                c->tunnel_up += c->in.len;
                upstream_write(c->up, c->in.data, c->in.len);
            }
            c->in.len = 0;
            break;
        }
        if (c->paused || (c->in_exchange && c->resp_done && c->close_after)) {
            if (!try_end_exchange(c))
                break;
            continue;
        }
        if (c->in.len == 0)
            break;
        size_t used = 0;
        c->in_parse = true;
        int rc = http1_parse(c->req, c->in.data, c->in.len, &used);
        c->in_parse = false;
        consume(c, used);
        if (c->closing || c->lingering)
            return;
        if (rc == HTTP1_ERROR) {
            c->req_failed = true;
            c->req_keep_alive = false;
            c->in_exchange = false;
            local_reply(c, http1_parser_error_status(c->req), http1_parser_error_reason(c->req), true);
            return;
        }
        if (rc == HTTP1_UPGRADED) {
            /* the bytes after the head wait in `in` for the tunnel; a refused upgrade closes */
            c->req_done = true;
            c->paused = true;
            break;
        }
        if (rc == HTTP1_PAUSED) {
            c->paused = true;
            continue;
        }
        break;
    }
    update_reading(c);
}

static void on_alloc(void *ctx, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn_t *c = ctx;
    buf_reserve(&c->in, READ_CHUNK);
    b->base = c->in.data + c->in.len;
    b->len = READ_CHUNK;
}

static void on_down_close(void *ctx, int status)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    if (!c->tunnel && c->in_exchange && c->req_done && status == UV_EOF) {
        /* the client half-closed after its request: answer, then close */
        c->close_after = true;
        c->peer_eof = true;
        transport_read_stop(&c->tr);
        c->reading = false;
        return;
    }
    conn_close(c);
}

static void start_down_tls(conn_t *c, const void *initial, size_t len);

static void on_read(void *ctx, char *data, size_t n)
{
    (void)data;
    conn_t *c = ctx;
    if (c->closing)
        return;
    c->in.len += n;
    if (c->sniffing) {
        enum transport_sniff k = transport_sniff(c->in.data, c->in.len);
        if (k == TRANSPORT_SNIFF_NEED_MORE)
            return;
        c->sniffing = false;
        if (k == TRANSPORT_SNIFF_TLS) {
            size_t len = c->in.len;
            c->in.len = 0;
            start_down_tls(c, c->in.data, len); /* the transport copies the ClientHello's first bytes */
            return;
        }
        if (c->env->w->tls_stats != NULL)
            atomic_fetch_add_explicit(&c->env->w->tls_stats->plaintext_permissive, 1, memory_order_relaxed);
    }
    if (!c->in_exchange && c->bytes_seen == 0) {
        c->bytes_seen += (size_t)n;
        arm_wait_timer(c); /* from the idle timeout to the header timeout */
    }
    process(c);
}

static void update_reading(conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    bool want;
    if (c->tunnel)
        want = c->up != NULL && upstream_write_queued(c->up) < UPSTREAM_WRITE_HIGH;
    else
        want = (!c->paused || c->in.len < PIPELINE_BUFFER_MAX) &&
               !(c->close_after && !c->in_exchange && c->resp_done) &&
               (c->up == NULL || upstream_write_queued(c->up) < UPSTREAM_WRITE_HIGH) &&
               (c->up != NULL || c->body_over || c->body.len < c->env->w->retry_buffer_bytes || !c->in_exchange);
    if (want && !c->reading) {
        transport_read_start(&c->tr);
        c->reading = true;
    } else if (!want && c->reading) {
        transport_read_stop(&c->tr);
        c->reading = false;
    }
}

/* ---- public ---- */

static void env_link(conn_env_t *env, conn_t *c)
{
    c->prev = NULL;
    c->next = env->conns;
    if (env->conns != NULL)
        env->conns->prev = c;
    env->conns = c;
    env->n_conns++;
}

static void on_down_open(void *ctx, int status);

static const transport_handler_t down_handler = {on_down_open, on_alloc, on_read, on_down_close, down_drained};

/* Inbound mutual TLS: the handshake ended. */
static void on_down_open(void *ctx, int status)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    c->handshaking = false;
    tls_stats_count(c->env->w->tls_stats, TLS_STATS_INBOUND, &c->tr, status);
    if (status != 0) {
        const char *why = transport_error_reason(&c->tr);
        log_warn("inbound: TLS handshake from %s failed: %s (%s)", c->peer, why != NULL ? why : "?",
                 transport_error_detail(&c->tr));
        conn_close(c);
        return;
    }
    c->down_mtls = true;
    c->down_principal = transport_peer_id(&c->tr);
    arm_wait_timer(c); /* from the handshake timeout to the idle timeout */
    update_reading(c);
}

/* Begin the server side of mutual TLS with the sidecar's certificate: only a client of the mesh's trust domain. */
static void start_down_tls(conn_t *c, const void *initial, size_t len)
{
    const proxy_identity_t *id = &c->env->w->view->rt->cfg->proxy.identity;
    char domain[300];
    snprintf(domain, sizeof domain, "spiffe://%s/", id->trust_domain);
    const char *expected[1] = {domain};
    transport_tls_opts_t o = {.role = TRANSPORT_SERVER,
                              .expected_ids = expected,
                              .n_expected_ids = 1,
                              .initial = initial,
                              .initial_len = len};
    c->handshaking = true;
    if (transport_start_tls(&c->tr, c->env->w->mesh_tls, &o, &down_handler, c) != 0) {
        log_warn("inbound: cannot start TLS for %s", c->peer);
        conn_close(c);
        return;
    }
    uint64_t ms = c->env->w->view->rt->cfg->proxy.tls_handshake_timeout_ms;
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

int conn_accept(conn_env_t *env, uv_stream_t *server)
{
    conn_t *c = xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->env = env;
    if (transport_init(env->w->loop, &c->tr) < 0) {
        free(c);
        return -1;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tr.tcp) < 0) {
        /* nothing was accepted: close the fresh handle, then free */
        c->open_handles = 1;
        c->closing = true;
        env_link(env, c);
        transport_close(&c->tr, on_transport_closed);
        return -1;
    }
    /* inbound with an identity: mutual TLS as PeerAuthentication says (STRICT, PERMISSIVE sniffs, DISABLE) */
    enum proxy_mtls_mode mtls = env->mode == CONN_INBOUND && env->w->mesh_tls != NULL
                                    ? env->w->view->rt->cfg->mtls.mode
                                    : PROXY_MTLS_DISABLE;
    if (mtls != PROXY_MTLS_STRICT)
        transport_start(&c->tr, &down_handler, c);
    c->sniffing = mtls == PROXY_MTLS_PERMISSIVE;
    transport_drain_when_empty(&c->tr, true);
    uv_timer_init(env->w->loop, &c->timer);
    uv_timer_init(env->w->loop, &c->route_timer);
    uv_timer_init(env->w->loop, &c->try_timer);
    c->timer.data = c->route_timer.data = c->try_timer.data = c;
    c->open_handles = 4;
    env_link(env, c);
    c->req = http1_parser_create(HTTP1_REQUEST, &env->w->limits, &req_cb, c);
    c->resp = http1_parser_create(HTTP1_RESPONSE, NULL, &resp_cb, c);
    uv_tcp_nodelay(&c->tr.tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    strcpy(c->peer, "unknown");
    if (uv_tcp_getpeername(&c->tr.tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    }
    c->req_keep_alive = true;
    c->ep = -1;
    if (mtls == PROXY_MTLS_STRICT) {
        start_down_tls(c, NULL, 0);
        if (c->closing)
            return 0;
    } else {
        arm_wait_timer(c);
    }
    update_reading(c);
    return 0;
}

void conn_env_drain(conn_env_t *env)
{
    env->draining = true;
    conn_t *next;
    for (conn_t *c = env->conns; c != NULL; c = next) {
        next = c->next;
        if (c->closing || c->lingering)
            continue; /* a lingering conn closes within its own bounds */
        c->close_after = true;
        if (!c->in_exchange && c->in.len == 0 && !http1_parser_in_message(c->req)) {
            c->resp_done = true; /* nothing more to read: close once the last response is written */
            if (down_queued(c) == 0)
                conn_finish(c);
            else
                update_reading(c);
        } else if (c->tunnel) {
            conn_close(c);
        } else {
            update_reading(c);
        }
    }
    if (env->n_conns == 0 && env->on_empty != NULL)
        env->on_empty(env->owner);
}

void conn_env_close_all(conn_env_t *env)
{
    conn_t *next;
    for (conn_t *c = env->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
}
