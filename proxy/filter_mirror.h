/*
 * filter_mirror: VirtualService mirror / mirrors as an exchange filter
 * (filter.h): for each mirror whose mirrorPercentage comes up, a shadow
 * copy of the request (mirror.h) goes to an endpoint of the mirror
 * destination's cluster, with "-shadow" added to the host part of its
 * Host, and is fed the request body as it arrives. It never waits and
 * never answers: a mirror without an endpoint counts as sent and failed.
 * No copy is made of an Upgrade request or of a body larger than the
 * exchange's replay buffer (the exchange says so with `skip`).
 */
#ifndef OUTRIDER_PROXY_FILTER_MIRROR_H
#define OUTRIDER_PROXY_FILTER_MIRROR_H

#include "filter.h"
#include "head.h"
#include "mirror.h"

#define FILTER_MIRRORS_MAX 4 /* mirrors per request */

typedef struct filter_mirror {
    mirror_t *m[FILTER_MIRRORS_MAX]; /* copies still being fed */
    int n;
} filter_mirror_t;

/*
 * Start the copies of the request with upstream head h; body holds the
 * body bytes received so far (framed as sent upstream), req_done whether
 * the request is complete. Always FILTER_CONTINUE.
 */
enum filter_result filter_mirror(filter_exchange_t *x, filter_mirror_t *st, const proxy_head_t *h, const char *body,
                                 size_t body_len, bool req_done);

/* More body bytes for every copy; the end of the request; the exchange ended before it (drop the copies). */
void filter_mirror_feed(filter_mirror_t *st, const char *data, size_t len);
void filter_mirror_finish(filter_mirror_t *st, bool complete);
/* inline: called for every request, most of which have no copies */
static inline void filter_mirror_body(filter_mirror_t *st, const char *data, size_t len)
{
    if (st->n > 0)
        filter_mirror_feed(st, data, len);
}
static inline void filter_mirror_end(filter_mirror_t *st)
{
    if (st->n > 0)
        filter_mirror_finish(st, true);
}
static inline void filter_mirror_cancel(filter_mirror_t *st)
{
    if (st->n > 0)
        filter_mirror_finish(st, false);
}

#endif
