/*
 * head: a request head as the exchange keeps it between routing and the
 * upstream client: structured, not bytes, until a client codec writes it
 * (http1_write_request_head for the HTTP/1 client). Mirrors derive their
 * heads from it (another Host) and retries reuse it, so nothing is parsed
 * twice. The strings and the fields belong to the exchange and live as
 * long as it does.
 */
#ifndef OUTRIDER_PROXY_HEAD_H
#define OUTRIDER_PROXY_HEAD_H

#include <stdbool.h>
#include <stdint.h>

#include "http1.h"

typedef struct proxy_head {
    str_t method;
    str_t target;                 /* origin form: path and query, after the route's rewrite */
    str_t authority;              /* the request's authority (its Host field's value, or the target's) */
    const http1_header_t *fields; /* as they go upstream: Host included, hop-by-hop fields out, x-forwarded-*, trace
                                     and peer metadata fields in */
    uint32_t n_fields;
    uint32_t n_foreign;         /* the last n_foreign fields (B3 trace forms, x-forwarded-proto) are only for a server
                                   that is not an Outrider sidecar (one that did not agree to tracectx.h's PEER_ALPN) */
    uint32_t n_once;            /* the n_once fields before those are this proxy's peer metadata, which a client
                                   leaves out on a PEER_ALPN connection whose server has them already */
    enum http1_framing framing; /* of the body */
    uint64_t content_length;    /* with HTTP1_FRAME_LENGTH */
    bool upgrade;               /* the request asks for a protocol upgrade (kept as Upgrade + Connection) */
} proxy_head_t;

/* Which of h's fields a server gets: all; an Outrider sidecar's (PEER_ALPN) the first time; or its later. */
enum proxy_head_peer { PROXY_HEAD_ANY, PROXY_HEAD_OURS_MD, PROXY_HEAD_OURS };

/*
 * Append the HTTP/1.1 bytes of h to out (the HTTP/1 client's codec), with
 * the fields peer gets. The exchange checked the target
 * (http1_request_target_ok); the fields are the parser's or the proxy's
 * own, so they are written as trusted. Returns 0.
 */
static inline int proxy_head_write_http1(const proxy_head_t *h, enum proxy_head_peer peer, buf_t *out)
{
    http1_head_opts_t o = {h->framing, h->content_length, false, h->upgrade, true};
    uint32_t n = h->n_fields;
    if (peer != PROXY_HEAD_ANY)
        n -= h->n_foreign + (peer == PROXY_HEAD_OURS ? h->n_once : 0);
    return http1_write_request_head(out, h->method, h->target, h->fields, n, &o);
}

#endif
