/*
 * upstream: a worker's pool of connections to one upstream address
 * (keep-alive reuse, idle timeout), and the connection object a downstream
 * exchange leases from it.
 *
 * Design. A pool belongs to one worker loop and is touched only from that
 * loop's thread. upstream_acquire() hands out an idle connection when there
 * is one (most recently used first) or starts a new connect. Writes made
 * before the connect completes are queued and flushed on connect. While a
 * connection is leased, its reads, EOF and errors go to the leaser's
 * handler; on upstream_release() it either returns to the idle list (with
 * an idle timer, and reading so that a close by the peer is noticed and the
 * connection dropped) or is closed. upstream_pool_destroy() closes the idle
 * connections; the pool memory goes when the last connection's handles are
 * closed, so it is safe to destroy a pool while leased connections are
 * still being released.
 */
#ifndef OUTRIDER_PROXY_UPSTREAM_H
#define OUTRIDER_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct upstream_pool upstream_pool_t;
typedef struct upstream upstream_t;

/*
 * Events of a leased connection; ctx is the pointer given to
 * upstream_acquire. None is called after upstream_release().
 * on_connect: status 0 when connected (TLS: the handshake done), a libuv
 *   error code when the connect or the handshake failed (the connection is
 *   dead; release it; upstream_tls_failure says why a handshake failed).
 * on_read: bytes from the upstream (valid during the call only).
 * on_close: the peer closed (UV_EOF) or the connection failed (other libuv
 *   error); nothing more will be read; release it.
 * on_drain: the write queue went below UPSTREAM_WRITE_LOW bytes.
 */
typedef struct upstream_handler {
    void (*on_connect)(void *ctx, int status);
    void (*on_read)(void *ctx, const char *data, size_t len);
    void (*on_close)(void *ctx, int status);
    void (*on_drain)(void *ctx);
} upstream_handler_t;

#define UPSTREAM_WRITE_HIGH (256 * 1024) /* bytes queued above which a reader should stop feeding */
#define UPSTREAM_WRITE_LOW (64 * 1024)   /* bytes queued below which on_drain fires */

/* A pool's connection policy (DestinationRule connectionPool); zero fields take the defaults. */
typedef struct upstream_pool_opts {
    uint64_t connect_timeout_ms;    /* 0 = 10 s (Istio's default): a connect taking longer fails with UV_ETIMEDOUT */
    uint64_t idle_timeout_ms;       /* 0 = 60 s: an idle pooled connection is closed after this long */
    uint64_t max_requests_per_conn; /* 0 = unlimited: a connection is closed after serving this many requests */
    size_t max_idle;                /* 0 = 64: idle connections kept */
    /* TLS origination (DestinationRule tls SIMPLE/MUTUAL); NULL = plain. Referenced while the pool lives. */
    struct tls_ctx *tls;
    const char *tls_sni;             /* server name sent; NULL: none */
    const char *tls_verify_host;     /* the certificate must name it; NULL: not checked */
    const char *const *tls_expected; /* or carry one of these URI SANs (spiffe://...) */
    size_t n_tls_expected;
    /* mutual TLS with the sidecar's own identity (ISTIO_MUTUAL, auto mTLS), when tls is NULL: the ctx is read from
     * *tls_mesh at each connect (the worker swaps it when the certificate rotates); NULL there: plain */
    struct tls_ctx *const *tls_mesh;
    struct tls_stats *stats; /* handshakes counted (outbound side); NULL: not counted */
} upstream_pool_opts_t;

/*
 * Create a pool for addr (copied) on loop with the policy o (NULL =
 * defaults). Aborts on out of memory. Free with upstream_pool_destroy.
 */
upstream_pool_t *upstream_pool_create(uv_loop_t *loop, const struct sockaddr *addr, const upstream_pool_opts_t *o);

/* Close the idle connections and free the pool once every connection is closed; NULL is a no-op. */
void upstream_pool_destroy(upstream_pool_t *pool);

/*
 * Lease a connection: an idle one (upstream_connected() true, no on_connect
 * call) or a new one being connected (on_connect follows). Returns NULL
 * only when the socket cannot even be created (then the caller answers
 * 503). The leaser must call upstream_release exactly once.
 */
upstream_t *upstream_acquire(upstream_pool_t *pool, const upstream_handler_t *h, void *ctx);

/* transport_trim on every idle connection of the pool; how many gave their record buffers up. */
size_t upstream_pool_trim(upstream_pool_t *pool);
/* Idle connections the pool holds now (what an acquire would reuse). */
size_t upstream_pool_idle(const upstream_pool_t *pool);

/* Whether the connection is established (writes go out now rather than queue). */
bool upstream_connected(const upstream_t *u);

/* After a failed TLS handshake: its reason (transport.h's TRANSPORT_R_*), else NULL. */
const char *upstream_tls_failure(const upstream_t *u);

/* The verified peer identity (URI SAN) of a TLS connection, or NULL; valid until the connection is released. */
const char *upstream_peer_id(const upstream_t *u);

/*
 * Peer metadata once per connection (tracectx.h's PEER_ALPN): whether the
 * connection is up and its server chose that ALPN id, so that it keeps the
 * metadata of the first request that carried it.
 */
bool upstream_md_once(const upstream_t *u);
/* Whether a request carrying this proxy's metadata was written on the connection; and note that one was. */
bool upstream_md_sent(const upstream_t *u);
void upstream_note_md_sent(upstream_t *u);
/*
 * The server's metadata as it last sent it on this connection (its
 * PEER_HEADER value), kept for the responses that leave it out; NULL when
 * none was kept. set copies it; a value of the same bytes is not copied.
 */
const char *upstream_peer_md(const upstream_t *u, size_t *len);
void upstream_set_peer_md(upstream_t *u, const char *md, size_t len);
/* Whether this lease reuses a pooled connection (for retrying a request on a stale one). */
bool upstream_reused(const upstream_t *u);

/* Queue len bytes (copied) for the upstream. Returns 0, or -1 when the connection is dead. */
int upstream_write(upstream_t *u, const void *data, size_t len);

/* Bytes written but not yet sent (including those waiting for the connect). */
size_t upstream_write_queued(const upstream_t *u);

/* Stop / restart reading (back-pressure from the downstream side). */
void upstream_read_stop(upstream_t *u);
void upstream_read_start(upstream_t *u);

/*
 * End the lease. reusable: the exchange ended cleanly on a keep-alive
 * response and every byte was consumed, so the connection may serve
 * another request; otherwise (or when the pool is full or destroyed, or
 * writes are still queued) it is closed. u is invalid afterwards.
 */
void upstream_release(upstream_t *u, bool reusable);

#endif
