/*
 * conn: one downstream (client) HTTP/1.1 connection of a listener, and the
 * exchange that routes each of its requests to an upstream endpoint.
 *
 * State machine per connection: WAIT (no request; header read timer or
 * idle timer running) -> EXCHANGE (request head parsed and routed; attempts
 * at an upstream endpoint; request body streamed up while the response
 * streams down) -> back to WAIT when both the request and the response are
 * complete, or CLOSING; or TUNNEL after a 101 to an Upgrade request (bytes
 * copied both ways until either side closes). A connection that ends after
 * its last answer while the client may still be sending (an early error such
 * as 431, 414, 400 or 408, or a response that came before the request body
 * ended) goes through LINGER first, as nginx's lingering close does: once the
 * answer is written the write side is shut down (the client reads the answer
 * and then end of stream), and input is read into one per-thread buffer and
 * dropped until the client closes, nothing came for `timeout_ms`,
 * `time_ms` passed or `bytes` were read; then the socket closes. Closing
 * with unread input makes the kernel send a reset, which fails the client's
 * send and can discard the answer before the client read it. The request parser is
 * paused after each request's on_complete and resumed only when its
 * response is done, so pipelined requests are answered one at a time, in
 * order; the paused parser keeps the request head valid for the whole
 * exchange (retries re-read it). Back-pressure: a side stops reading while
 * the other side's write queue is above its high mark and restarts below
 * the low mark. A connection lives on its env's list and touches only its
 * own loop.
 *
 * An exchange, outbound: the authority selects a route (router.h): local
 * answers (404 NR, redirect, direct response, 503 UH) or a cluster, whose
 * load balancer picks an endpoint per attempt. Attempts that fail before
 * any response byte went to the client (connect failure or timeout,
 * reset, per-try timeout, a retriable status) are retried as the route's
 * retry policy says, on another endpoint where there is one, after a
 * jittered back-off (25 ms base, doubling, capped at 250 ms, as Envoy
 * does); the request body is replayed from a bounded buffer, and a body
 * larger than the buffer ends retrying. A reused pooled connection that
 * turns out closed is retried once on a new connection without counting.
 * The route timeout (from the request head) gives 504 UT. Inbound: the
 * same without routing, to the inbound cluster, without retries.
 *
 * Telemetry: each hop extracts the trace context, begins its span and
 * propagates the context in all formats; outbound requests carry the
 * proxy's peer metadata and inbound responses carry it back; peer headers
 * never reach the app. Each exchange is recorded once (telemetry.h) when
 * it ends, or when the client goes away first (flag DC).
 */
#ifndef OUTRIDER_PROXY_CONN_H
#define OUTRIDER_PROXY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http1.h"
#include "runtime.h"
#include "telemetry.h"

typedef struct conn conn_t;

enum conn_mode { CONN_INBOUND, CONN_OUTBOUND };

/* Bounds of the LINGER state; time_ms 0 closes at once, without lingering. */
typedef struct conn_linger {
    uint64_t time_ms;    /* longest a connection lingers */
    uint64_t timeout_ms; /* closed when no input came for this long */
    uint64_t bytes;      /* closed after reading this many bytes */
} conn_linger_t;

/* What a worker's listeners share; owned by the worker (one thread). */
typedef struct conn_worker {
    uv_loop_t *loop;
    runtime_view_t *view; /* the current configuration; swapped by a reload */
    tele_worker_t *tele;  /* NULL: telemetry off */
    struct rlg *rlg;      /* Redis client for global rate limits (created on the worker's thread) */
    uint64_t rng;
    http1_limits_t limits;      /* request head limits */
    uint64_t header_timeout_ms; /* a request head must arrive within this (408 after) */
    uint64_t idle_timeout_ms;   /* a keep-alive connection with no request is closed after this */
    size_t retry_buffer_bytes;  /* request body kept for replays; larger bodies are not retried */
    conn_linger_t linger;
    struct tls_ctx *mesh_tls;    /* the sidecar's certificate for mutual TLS (swapped at rotation), NULL: none */
    struct tls_stats *tls_stats; /* handshake counters, all workers; NULL: not counted */
} conn_worker_t;

/* One listener's connections. */
typedef struct conn_env {
    conn_worker_t *w;
    enum conn_mode mode;
    const char *proto;             /* x-forwarded-proto value ("http") */
    void (*on_empty)(void *owner); /* called when draining and the last connection is freed */
    void *owner;
    /* managed by conn.c */
    bool draining;
    size_t n_conns;
    conn_t *conns;
} conn_env_t;

/*
 * Accept one pending connection from server into a new conn. Returns 0, or
 * -1 when uv_accept fails (nothing to accept; nothing leaks). The conn
 * frees itself when it closes.
 */
int conn_accept(conn_env_t *env, uv_stream_t *server);

/*
 * Graceful stop: connections waiting for a request close now; the others
 * finish their current exchange (the response says Connection: close) and
 * close. env->on_empty is called once no connection is left (at once when
 * there are none).
 */
void conn_env_drain(conn_env_t *env);

/* transport_trim on every connection (worker.c's sweep); how many gave their buffers up. */
size_t conn_env_trim(conn_env_t *env);

/* Close every connection now (after the drain timeout). */
void conn_env_close_all(conn_env_t *env);

#endif
