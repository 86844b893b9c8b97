/*
 * linger_set: closes the collector's client sockets the way nginx's lingering
 * close does, once libmicrohttpd is done with them.
 *
 * When a server closes a TCP socket with input still unread, the kernel
 * sends a reset: the client's send fails, and a client that writes its
 * whole request before reading (most simple ones) never reads the answer
 * it was sent (a 413 for an oversized body, MHD's own 431, 414 or 400). So
 * the server hands such a socket here (a duplicate of its descriptor, taken
 * before MHD closes its own, with the answer written and the write side
 * already shut down by MHD): one thread reads and drops its input into a
 * single fixed buffer until the client closes, nothing came for
 * `timeout_ms`, `time_ms` passed or `bytes` were read, and then closes it.
 *
 * Design: one thread, one epoll set, a fixed table of `max_conns` slots
 * (the epoll data is the slot index), a mutex around the table and an
 * eventfd that wakes the thread when a socket is added. No MHD thread ever
 * waits for a lingering client; a full table closes the new socket at once.
 */
#ifndef OUTRIDER_COLLECTOR_LINGER_SET_H
#define OUTRIDER_COLLECTOR_LINGER_SET_H

#include <stddef.h>
#include <stdint.h>

typedef struct linger_set linger_set_t;

typedef struct linger_set_opts {
    uint64_t time_ms;    /* longest a socket lingers (> 0) */
    uint64_t timeout_ms; /* closed when no input came for this long (> 0) */
    uint64_t bytes;      /* closed after reading this many bytes (> 0) */
    size_t max_conns;    /* sockets lingering at once (> 0) */
} linger_set_opts_t;

/* Start the lingering thread. Returns NULL (errno set) when the thread, epoll or eventfd cannot be made. */
linger_set_t *linger_set_create(const linger_set_opts_t *opts);

/*
 * Take fd (a connected TCP socket whose answer is written) and close it
 * after lingering. The caller gives up fd in every case. Returns 0, or -1
 * when it was closed at once (the table is full, or epoll refused it).
 * Safe from any thread.
 */
int linger_set_add(linger_set_t *l, int fd);

/* Stop the thread and close every socket still lingering. NULL is a no-op. */
void linger_set_destroy(linger_set_t *l);

#endif
