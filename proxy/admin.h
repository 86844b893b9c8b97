/*
 * admin: the proxy's admin listener (Envoy's :15000), a small HTTP/1.1
 * server on the main thread's loop, parsed with the proxy's http1 codec.
 *
 *   GET  /ready            200 "LIVE\n" while serving; 503 with the reason ("DRAINING\n" once
 *                          draining, or what it still waits for) otherwise
 *   GET  /stats/prometheus the proxy's metrics (text format 0.0.4)
 *   GET  /config_dump      the effective configuration as JSON
 *   POST /quitquitquit     200 "OK\n", then the proxy drains and exits (as on SIGTERM)
 *   anything else          404 with the list of paths; wrong method 405
 *
 * Keep-alive, one request at a time per connection; request bodies are
 * read and dropped (limit 64 KiB, then 413). The content of each page
 * comes from the owner through callbacks, called on the main loop.
 * HEAD is answered wherever GET is; query strings are ignored for
 * matching; 405 carries Allow. Codec errors get their status (400, 414,
 * 431, 505) and close the connection; a connection with no complete
 * request for 60 s is closed (408 when a request was under way).
 */
#ifndef OUTRIDER_PROXY_ADMIN_H
#define OUTRIDER_PROXY_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

typedef struct admin admin_t;

typedef struct admin_handlers {
    const char *(*ready)(void *ctx);            /* NULL when ready, else why not: one line with its \n */
    void (*stats)(void *ctx, buf_t *out);       /* Prometheus text */
    void (*config_dump)(void *ctx, buf_t *out); /* JSON */
    void (*quit)(void *ctx);                    /* called after the 200 is queued */
    void *ctx;
} admin_handlers_t;

/*
 * Listen on host:port, host an IPv4 or IPv6 literal (port 0: any; read it
 * with admin_port). h is copied (NULL or a NULL member: /ready says LIVE,
 * /stats/prometheus is empty, /config_dump is "{}", quit does nothing).
 * Returns NULL and a reason in err on failure (bad address, address in
 * use...); in the rare case the failure comes after the listener handle was
 * made, its memory goes once the loop runs its close callback.
 */
admin_t *admin_create(uv_loop_t *loop, const char *host, uint16_t port, const admin_handlers_t *h, char *err,
                      size_t errlen);
/* The bound port (the real one when 0 was asked for). */
uint16_t admin_port(const admin_t *a);
/* Close connections with no complete request for ms (default 60000); for tests. Applies from the next request. */
void admin_set_idle_timeout(admin_t *a, uint64_t ms);
/*
 * Close the listener and every connection (a reply still being written gets
 * up to 1 s to reach its client); frees itself once its handles are closed,
 * so the loop must run on afterwards. NULL is a no-op. Safe to call from
 * the quit callback.
 */
void admin_close(admin_t *a);

#endif
