/*
 * worker: one event-loop thread of the proxy with its own listener socket.
 *
 * Design. Every worker owns a libuv loop, a listening socket bound with
 * SO_REUSEPORT (set before uv_tcp_open, so the kernel spreads connections
 * over the workers' sockets), the downstream connections it accepted and a
 * pool of upstream connections; nothing is shared between workers. Other
 * threads talk to a worker only through worker_stop(), which posts a
 * uv_async: the worker closes its listener, lets in-flight exchanges
 * finish (their responses say Connection: close), closes its pool and
 * leaves its loop; worker_join() then returns.
 */
#ifndef OUTRIDER_PROXY_WORKER_H
#define OUTRIDER_PROXY_WORKER_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http1.h"

typedef struct worker worker_t;

typedef struct worker_opts {
    const char *listen_host;            /* IP literal (IPv4 or IPv6) */
    uint16_t listen_port;               /* 0 = any (read it back with worker_port) */
    struct sockaddr_storage forward_to; /* the upstream every request goes to */
    http1_limits_t limits;              /* request head limits */
    uint64_t header_timeout_ms;         /* 0 = 10 s: a request head must arrive within this (408) */
    uint64_t idle_timeout_ms;           /* 0 = 60 s: idle keep-alive client connections */
    uint64_t upstream_idle_timeout_ms;  /* 0 = 60 s: idle pooled upstream connections */
} worker_opts_t;

/*
 * Create a worker and its listening socket (bound and listening when this
 * returns, so the port can be given to the next worker). Returns NULL and
 * writes a reason into err (errlen bytes) when the address is invalid or
 * the socket cannot be bound. Free with worker_destroy.
 */
worker_t *worker_create(const worker_opts_t *opts, char *err, size_t errlen);

/* The port the listener is bound to. */
uint16_t worker_port(const worker_t *w);

/* Start the worker's thread. Returns 0 or -1. */
int worker_start(worker_t *w);

/* Ask the worker to drain and stop; safe from any thread and more than once. */
void worker_stop(worker_t *w);

/* Wait for a started worker's thread to end. */
void worker_join(worker_t *w);

/* Free a worker that was never started or has been joined; NULL is a no-op. */
void worker_destroy(worker_t *w);

/*
 * Fail (-1, reason in err) when something already listens on the listener's
 * address. SO_REUSEPORT would otherwise let a second proxy share the port
 * silently; call this once before creating the workers. Port 0 always passes.
 */
int worker_check_port_free(const worker_opts_t *o, char *err, size_t errlen);

#endif
