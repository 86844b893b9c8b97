/*
 * mirror: a shadow copy of a request sent to a mirror destination
 * (VirtualService mirror / mirrors), whose response is read and dropped.
 *
 * A mirror never slows or fails the request it copies: it has its own
 * upstream connection from the worker's pools, its bytes are queued without
 * back-pressure to the client, and when its queue passes MIRROR_MAX_QUEUED
 * (a slow mirror) or its connection fails, it is abandoned. It lives on
 * after the primary exchange ends, until its response is complete, its
 * connection closes or MIRROR_TIMEOUT_MS passes, holding the runtime view
 * meanwhile. The exchange that started it calls mirror_end (request
 * complete) or mirror_abort exactly once, after which it must not use it.
 */
#ifndef OUTRIDER_PROXY_MIRROR_H
#define OUTRIDER_PROXY_MIRROR_H

#include <stddef.h>

#include "router.h"
#include "runtime.h"

#define MIRROR_MAX_QUEUED (1024 * 1024)
#define MIRROR_TIMEOUT_MS 10000

typedef struct mirror mirror_t;

/*
 * Send head (len bytes, copied: a complete request head with the mirror's
 * Host) to endpoint ep of cluster cl. Returns NULL when no connection can be
 * started (nothing to release).
 */
mirror_t *mirror_start(runtime_view_t *v, const router_cluster_t *cl, int ep, const char *head, size_t len);

/* Request body bytes, framed as sent upstream (copied). */
void mirror_body(mirror_t *m, const char *data, size_t len);

/* The request is complete: the mirror finishes on its own. */
void mirror_end(mirror_t *m);

/* The primary exchange ended before its request was complete: drop the mirror. */
void mirror_abort(mirror_t *m);

#endif
