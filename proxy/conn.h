/*
 * conn: one downstream (client) HTTP/1.1 connection of a listener, and the
 * exchange that forwards each of its requests to an upstream.
 *
 * State machine per connection: WAIT (no request; header read timer or
 * idle timer running) -> EXCHANGE (request head parsed, upstream leased;
 * request body streamed up while the response streams down) -> back to
 * WAIT when both the request and the response are complete, or CLOSING.
 * The request parser is paused after each request's on_complete and
 * resumed only when its response is done, so pipelined requests are
 * answered one at a time, in order. Back-pressure: a side stops reading
 * while the other side's write queue is above its high mark and restarts
 * below the low mark. A connection lives on its env's list and touches
 * only its own loop.
 */
#ifndef OUTRIDER_PROXY_CONN_H
#define OUTRIDER_PROXY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http1.h"
#include "upstream.h"

typedef struct conn conn_t;

/*
 * What the connections of one listener share; owned by the worker, which
 * fills the first block and leaves the rest zeroed.
 */
typedef struct conn_env {
    uv_loop_t *loop;
    upstream_pool_t *pool;         /* where requests go */
    http1_limits_t limits;         /* request head limits */
    uint64_t header_timeout_ms;    /* a request head must arrive within this (408 after) */
    uint64_t idle_timeout_ms;      /* a keep-alive connection with no request is closed after this */
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

#endif
