/*
 * filter_mirror: shadow copies of a request; see filter_mirror.h.
 */
#include "filter_mirror.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tracectx.h"
#include "xalloc.h"

/* The cluster a mirror destination names (service, subset, port), or NULL. */
static const router_cluster_t *destination_cluster(const router_t *r, const proxy_destination_t *d)
{
    for (size_t i = 0; i < router_cluster_count(r); i++) {
        const router_cluster_t *cl = router_cluster(r, i);
        if (cl->service == NULL || cl->service != d->service)
            continue;
        if ((d->subset == NULL) != (cl->subset == NULL) ||
            (d->subset != NULL && strcmp(d->subset, cl->subset->name) != 0))
            continue;
        uint32_t port = d->port != PROXY_UNSET ? (uint32_t)d->port : cl->service->ports[0].number;
        if (cl->port == port)
            return cl;
    }
    return NULL;
}

/* h's bytes with the Host value "<host>-shadow[:port]" (the authority's host part, then its port). */
static int shadow_head(const proxy_head_t *h, buf_t *out)
{
    str_t a = h->authority;
    size_t host_len = a.len;
    for (size_t i = a.len; i > 0; i--) {
        if (a.ptr[i - 1] == ':') {
            host_len = i - 1;
            break;
        }
        if (a.ptr[i - 1] == ']')
            break;
    }
    buf_t value = BUF_INIT;
    buf_append(&value, a.ptr, host_len);
    buf_append_str(&value, "-shadow");
    buf_append(&value, a.ptr + host_len, a.len - host_len);
    http1_header_t *fields = xmalloc((h->n_fields + 1) * sizeof *fields);
    memcpy(fields, h->fields, h->n_fields * sizeof *fields);
    for (uint32_t i = 0; i < h->n_fields; i++)
        if (http1_name_eq(fields[i].name, "host"))
            fields[i].value = (str_t){value.data, (uint32_t)value.len};
    proxy_head_t s = *h;
    s.fields = fields;
    int rc = proxy_head_write_http1(&s, PROXY_HEAD_ANY, out);
    free(fields);
    buf_dispose(&value);
    return rc;
}

enum filter_result filter_mirror(filter_exchange_t *x, filter_mirror_t *st, const proxy_head_t *h, const char *body,
                                 size_t body_len, bool req_done)
{
    const proxy_http_route_t *r = x->d->route;
    if (r == NULL || r->n_mirrors == 0)
        return FILTER_CONTINUE;
    for (size_t i = 0; i < r->n_mirrors && st->n < FILTER_MIRRORS_MAX; i++) {
        const proxy_mirror_t *mi = &r->mirrors[i];
        if (!filter_chance(x, mi->percent))
            continue;
        const router_cluster_t *mcl = destination_cluster(x->view->rt->router, &mi->destination);
        if (mcl == NULL)
            continue;
        int ep = router_lb_pick(&x->view->lbs[mcl->index], x->req, tracectx_rand(x->rng), NULL);
        if (ep < 0) {
            /* no endpoint to send the copy to: mirrored, and failed (as mirror.c counts) */
            runtime_count(x->view->rt, mcl, RC_MIRROR_SENT);
            runtime_count(x->view->rt, mcl, RC_MIRROR_FAILED);
            continue;
        }
        buf_t head = BUF_INIT;
        mirror_t *m = shadow_head(h, &head) == 0 ? mirror_start(x->view, mcl, ep, head.data, head.len) : NULL;
        buf_dispose(&head);
        if (m == NULL)
            continue;
        if (body_len > 0)
            mirror_body(m, body, body_len);
        if (req_done)
            mirror_end(m);
        else
            st->m[st->n++] = m;
    }
    return FILTER_CONTINUE;
}

void filter_mirror_feed(filter_mirror_t *st, const char *data, size_t len)
{
    for (int i = 0; i < st->n; i++)
        mirror_body(st->m[i], data, len);
}

void filter_mirror_finish(filter_mirror_t *st, bool complete)
{
    for (int i = 0; i < st->n; i++) {
        if (complete)
            mirror_end(st->m[i]);
        else
            mirror_abort(st->m[i]);
    }
    st->n = 0;
}
