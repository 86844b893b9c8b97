/*
 * conn_int: what conn.c, exchange.c and upstream_http1.c share, private to
 * them: one downstream connection and its current exchange (conn_t).
 *
 *   conn.c            the downstream HTTP/1 connection: the client's byte
 *                     stream (plain or mutual TLS), the request parser,
 *                     pipelining, back-pressure, local answers, lingering
 *                     close, tunnels' client side; accept and drain
 *   exchange.c        the protocol-neutral exchange: routing, the upstream
 *                     head (head.h), the filters (filter.h), attempts,
 *                     retries, timeouts, the cluster's breaker and outlier
 *                     detection (cluster.h), the telemetry record
 *   upstream_http1.c  the upstream client, HTTP/1: the leased connection's
 *                     events, the response parser, the response as it goes
 *                     to the client, the upstream side of a tunnel
 *
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
#ifndef OUTRIDER_PROXY_CONN_INT_H
#define OUTRIDER_PROXY_CONN_INT_H

#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <time.h>

#include "authz.h"
#include "buf.h"
#include "cluster.h"
#include "hostport.h"
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
    buf_t authz_target;               /* inbound with AuthorizationPolicies: the normalized path, '?', the query */
    authz_decision_t authz;           /* the exchange's decision (allowed without policies) */
    struct jwt *jwt;                  /* the exchange's verified JWT (RequestAuthentication), or NULL */
    const proxy_jwt_rule_t *jwt_rule; /* the rule that verified it */
    const http1_header_t *jwt_field;  /* the request field that carried it (dropped unless forwardOriginalToken) */
    str_t jwt_payload;                /* its payload part (base64url), in the request head */
    char peer[64];
    struct sockaddr_storage peer_addr; /* the client's address (peer in text), family 0 when unknown */
    bool has_orig;                     /* interceptionMode REDIRECT: the connection was redirected to us ... */
    struct sockaddr_storage orig_dst;  /* ... from this destination */
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
    bool in_parse;              /* inside http1_parse of the request parser */
    bool req_failed;            /* the request parser refused the input (HTTP1_ERROR) */
    bool peer_eof;              /* the client half-closed: no more input will come */
    bool lingering;             /* the answer is out; input is read and dropped until a bound (conn.h) */
    bool handshaking;           /* inbound mutual TLS: the handshake is under way (timer: the handshake timeout) */
    bool sniffing;              /* PERMISSIVE: the first bytes say whether the client speaks TLS */
    bool down_mtls;             /* the client came over mutual TLS (inbound) */
    bool down_md_once;          /* ... and chose PEER_ALPN: peer metadata once per connection, both ways */
    uint64_t md_sent_serial;    /* then: the runtime (serial) whose metadata a response carried, 0 none yet */
    bool up_mtls;               /* the current attempt's upstream connection is mutual TLS with our identity */
    const char *down_principal; /* the client's verified SPIFFE id (valid while tr is), or NULL */
    char up_principal[TELE_PRINCIPAL_MAX]; /* the upstream's verified SPIFFE id (copied: pooled connections go) */
    uint64_t linger_end;                   /* uv_now() past which a lingering conn closes */
    uint64_t linger_left;                  /* bytes a lingering conn still reads before it closes */

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
    bool leased_counted;          /* up counts in the cluster's leased connections */
    bool retry_counted;           /* counts in the cluster's retrying exchanges */
    cluster_waiter_t waiter;      /* queued for a connection of cl (circuit breaker) */
    int fail_status;              /* the retriable status that ended the attempt */
    const char *tls_failure;      /* the last attempt's TLS handshake failure (TRANSPORT_R_*), or NULL */
    filter_exchange_t fx;         /* what the filters (filter.h) see of this exchange */
    int filter_at;                /* the next filter of the chain (enum step) */
    bool filter_wait;             /* a filter holds the request (a Redis verdict, a fault delay) */
    filter_rl_global_t rl_global; /* the filters' state */
    filter_fault_t fault;
    filter_mirror_t mirrors;
    int status;                      /* final status sent to the client, 0 none */
    proxy_head_t uhead;              /* the upstream request head, structured until the client codec writes it */
    bool use_addr;                   /* attempts go to up_addr, not to an endpoint of cl (runtime_view_addr_pool) */
    struct sockaddr_storage up_addr; /* the original destination (PassthroughCluster), or the app's port (inbound) */
    char orig_authority[PROXY_HOST_MAX + 8]; /* "host:port" of the service the original destination belongs to */
    http1_header_t *up_fields;               /* its fields */
    uint32_t up_fields_cap;
    buf_t up_target;                 /* its target, after the route's rewrite */
    char tscratch[TRACECTX_SCRATCH]; /* the values of its trace fields */
    buf_t up_head;            /* the head as the HTTP/1 client wrote it (at the first attempt; retries reuse it) */
    uint8_t up_head_peer;     /* ... for that kind of server (enum proxy_head_peer) */
    buf_t body;               /* the request body as framed upstream, for replays */
    bool body_over;           /* the body outgrew the buffer: no more retries */
    uint64_t req_body_bytes;  /* request body bytes received */
    uint64_t resp_body_bytes; /* response body bytes sent */
    uint64_t tunnel_up, tunnel_down;
    uint64_t start_ns;      /* uv_hrtime at the request head */
    uint64_t start_unix_ns; /* wall clock at the request head */
    trace_ctx_t trace;
    peer_info_t peer_info; /* the other side's metadata, when have_peer */
    buf_t peer_raw;        /* the metadata header peer_info was decoded from (decoded again only when it differs) */
    bool peer_raw_valid;
    bool peer_raw_ok;   /* it decoded */
    uint64_t tele_peer; /* telemetry's handle for peer_info (tele_request_t.peer_handle); 0 when it changed */
    uint64_t excluded[ROUTER_MAX_ENDPOINTS / 64];
};

/* Bytes for the client not yet handed to the kernel: gathered in `pend` during this event, or queued. */
static inline size_t down_queued(const conn_t *c)
{
    return c->pend.len + transport_write_queued(&c->tr);
}

/* ---- across the three files ---- */

/* len body bytes as one chunk ("hex\r\n", the bytes, "\r\n") in c->out, replacing what it held. */
static inline void conn_chunk(conn_t *c, const char *data, size_t len)
{
    char hdr[19];
    size_t n = http1_chunk_header(hdr, len);
    c->out.len = 0;
    buf_append(&c->out, hdr, n);
    buf_append(&c->out, data, len);
    buf_append(&c->out, "\r\n", 2);
}

/* Outlier detection: how the attempt on c->ep ended (status 0 for a connection failure); inline: every answer. */
static inline void conn_outlier_result(conn_t *c, int status)
{
    if (c->cl != NULL && c->ep >= 0 && c->view->cs[c->cl->index].health != NULL)
        cluster_result(&c->view->cs[c->cl->index], c->view->rt, c->cl, c->ep, status, uv_now(c->env->w->loop));
}

/* conn.c: the downstream connection */
void conn_close(conn_t *c); /* close now; the memory goes in the last close callback */
void conn_down_write(conn_t *c, const void *data, size_t len); /* bytes for the client (gathered until down_flush) */
void conn_down_flush(conn_t *c);
/* A local answer (errors, 404 NR, 503 UH, filters' replies) with extra fields; close: Connection: close after it. */
void conn_local_reply_h(conn_t *c, int status, const char *text, bool close, const http1_header_t *extra,
                        uint32_t n_extra);
void conn_local_reply(conn_t *c, int status, const char *text, bool close);
void conn_process(conn_t *c);        /* parse what was read, end exchanges, go on with pipelined requests */
void conn_update_reading(conn_t *c); /* read or not, as back-pressure says */

/* exchange.c: the request parser's callbacks (conn.c's req_cb) and the exchange */
int conn_req_on_head(void *ctx, const http1_head_t *h);
int conn_req_on_body(void *ctx, const char *data, size_t len);
int conn_req_on_trailers(void *ctx, const http1_header_t *t, uint32_t n);
int conn_req_on_complete(void *ctx);
void conn_exchange_dispose(conn_t *c);                    /* timers, filters, upstream, the view */
void conn_release_upstream(conn_t *c, bool reusable);     /* give the attempt's connection back */
void conn_attempt_failed(conn_t *c, enum fail_kind kind); /* retry as the policy says, or answer */
bool conn_retriable_status(const proxy_retries_t *r, int status);
bool conn_retries_used_up(const conn_t *c);
void conn_record(conn_t *c);                     /* telemetry, once per exchange */
void conn_record_tunnel(conn_t *c, bool opened); /* istio_tcp_* of a tunnel */
void conn_ensure_hdrs(conn_t *c, uint32_t need); /* room for need fields in c->hdrs */
void conn_take_peer(conn_t *c, str_t value);     /* the other side's peer metadata */

/* upstream_http1.c: the HTTP/1 upstream client */
extern const upstream_handler_t conn_up_handler;          /* the leased connection's events */
extern const http1_callbacks_t conn_resp_cb;              /* the response parser's callbacks */
int conn_uclient_begin(conn_t *c, upstream_pool_t *pool); /* lease, then send the head and the body so far */

/* Inbound, redirected: the app at the inbound cluster's (forwardTo's) address, on the port the client asked for. */
static inline void conn_app_addr(const conn_t *c, const router_cluster_t *inbound, struct sockaddr_storage *out)
{
    *out = inbound->endpoints[0].addr;
    hostport_sockaddr_set_port(out, hostport_sockaddr_port(&c->orig_dst));
}

/* tcp_proxy.c: a redirected connection to a TCP service port, proxied as bytes; false when it is not one */
bool conn_start_tcp(conn_t *c);
/* The same inbound: to a TCP port of the app (spec.inbound.ports), after the handshake when mutual TLS */
bool conn_start_tcp_inbound(conn_t *c);

#endif
