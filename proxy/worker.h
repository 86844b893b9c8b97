/*
 * worker: one event-loop thread of the proxy with its own listener sockets.
 *
 * Design. Every worker owns a libuv loop, its listening sockets (outbound
 * and, when configured, inbound) bound with SO_REUSEPORT (set before
 * uv_tcp_open, so the kernel spreads connections over the workers'
 * sockets), the downstream connections it accepted, its view of the
 * runtime (load balancers and upstream pools) and its telemetry recorder;
 * nothing mutable is shared between workers. Other threads talk to a
 * worker only through uv_async handles: worker_stop() makes it close its
 * listeners, let in-flight exchanges finish (their responses say
 * Connection: close) for up to the drain timeout, flush its telemetry and
 * leave its loop; worker_set_runtime() hands it a new configuration, which
 * new requests use while requests in flight finish on the old one.
 */
#ifndef OUTRIDER_PROXY_WORKER_H
#define OUTRIDER_PROXY_WORKER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "http1.h"
#include "runtime.h"
#include "telemetry.h"

typedef struct worker worker_t;

typedef struct worker_listen {
    const char *host; /* IP literal (IPv4 or IPv6); NULL = no such listener */
    uint16_t port;    /* 0 = any (read it back with worker_port) */
} worker_listen_t;

typedef struct worker_opts {
    worker_listen_t outbound;
    worker_listen_t inbound;
    runtime_t *rt;               /* the configuration to start with (the worker takes its own reference) */
    tele_t *tele;                /* NULL: telemetry off */
    http1_limits_t limits;       /* request head limits */
    uint64_t header_timeout_ms;  /* 0 = 10 s: a request head must arrive within this (408) */
    uint64_t idle_timeout_ms;    /* 0 = 60 s: idle keep-alive client connections */
    uint64_t drain_timeout_ms;   /* 0 = 5 s: in-flight requests may finish within this after a stop */
    size_t retry_buffer_bytes;   /* 0 = 64 KiB: request body kept for retries */
    conn_linger_t linger;        /* draining after an answer that closes (all 0: close at once) */
    struct tls_ctx *mesh_tls;    /* the sidecar's certificate (spec.identity), NULL: none; the worker takes a ref */
    struct tls_stats *tls_stats; /* handshake counters shared by the workers; NULL: not counted */
} worker_opts_t;

enum worker_listener { WORKER_OUTBOUND, WORKER_INBOUND };

/*
 * Create a worker and its listening sockets (bound and listening when this
 * returns, so the ports can be given to the next worker). Returns NULL and
 * writes a reason into err (errlen bytes) when an address is invalid or a
 * socket cannot be bound. Free with worker_destroy.
 */
worker_t *worker_create(const worker_opts_t *opts, char *err, size_t errlen);

/* The port a listener is bound to (0 when the worker has no such listener). */
uint16_t worker_port(const worker_t *w, enum worker_listener which);

/* Start the worker's thread. Returns 0 or -1. */
int worker_start(worker_t *w);

/* Ask the worker to drain and stop; safe from any thread and more than once. */
void worker_stop(worker_t *w);

/* Switch to rt for new requests (the worker takes its own reference); safe from any thread. */
void worker_set_runtime(worker_t *w, runtime_t *rt);

/*
 * Present ctx (the sidecar's renewed certificate) on new mutual TLS
 * connections, both sides, from now on; connections already open keep
 * theirs. ctx is not NULL; the worker takes its own reference. Safe from
 * any thread.
 */
void worker_set_identity(worker_t *w, struct tls_ctx *ctx);

/* Wait for a started worker's thread to end. */
void worker_join(worker_t *w);

/* Free a worker that was never started or has been joined; NULL is a no-op. */
void worker_destroy(worker_t *w);

/*
 * Fail (-1, reason in err) when something already listens on host:port.
 * SO_REUSEPORT would otherwise let a second proxy share the port silently;
 * call this once per listener before creating the workers. Port 0 always
 * passes.
 */
int worker_check_port_free(const char *host, uint16_t port, char *err, size_t errlen);

#endif
