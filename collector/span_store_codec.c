/*
 * span_store_codec: the packed span encoding of the store's trace blobs
 * (layout in span_store_internal.h), decoding back to span_t, and the
 * Zipkin normalisation and merge rules applied on insert.
 *
 * Integers are written in host byte order (little endian on every target
 * we build for); blobs never leave the process.
 */
#include <stdlib.h>
#include <string.h>

#include "varint.h"
#include "log.h"
#include "span_store_internal.h"

enum {
    F1_KIND = 0x07,
    F1_DEBUG = 0x08,
    F1_SHARED = 0x10,
    F1_PARENT = 0x20,
    F1_TS = 0x40,
    F1_DUR = 0x80,
    F2_LOCAL = 0x01,
    F2_REMOTE = 0x02,
    F2_NAME = 0x04,
    F2_HI = 0x08,
    F2_ERROR = 0x10, /* a tag with the key "error" (the dependency linker's error test) */
    EP_SVC = 0x01,
    EP_IPV4 = 0x02,
    EP_IPV6 = 0x04,
    EP_PORT = 0x08,
};

static uint8_t *wr_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
    return p + 8;
}

static uint64_t rd_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint64_t zigzag(uint64_t delta)
{
    int64_t v = (int64_t)delta;
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static uint64_t unzigzag(uint64_t z)
{
    return (z >> 1) ^ (uint64_t)(-(int64_t)(z & 1));
}

static int ep_present(const span_endpoint_t *e)
{
    return e->service_name.len != 0 || e->has_ipv4 || e->has_ipv6 || e->port != 0;
}

static int tags_sorted(arena_t *arena, const span_tag_t *in, uint32_t n, const span_tag_t **out, uint32_t *n_out);
static const tag_order_t *tag_order(span_store_t *st, const span_tag_t *tags, const uint32_t *ids, uint32_t n);

static int is_error_key(str_t k)
{
    return k.len == 5 && memcmp(k.ptr, "error", 5) == 0;
}

/* Intern a span or service name lower-cased; *hint is tried first and becomes the id. */
static uint32_t intern_name(span_store_t *st, uint32_t *hint, str_t s)
{
    *hint = intern_acquire_lower(st->strs, *hint, s.ptr, s.len);
    return *hint;
}

static uint8_t *wr_ep(span_store_t *st, uint8_t *p, const span_endpoint_t *e, uint32_t *hint, uint32_t *sid)
{
    uint8_t f = (uint8_t)((e->service_name.len ? EP_SVC : 0) | (e->has_ipv4 ? EP_IPV4 : 0) |
                          (e->has_ipv6 ? EP_IPV6 : 0) | (e->port ? EP_PORT : 0));
    *p++ = f;
    if (f & EP_SVC) {
        *sid = intern_name(st, hint, e->service_name);
        p = varint_write(p, *sid);
    }
    if (f & EP_IPV4) {
        memcpy(p, e->ipv4, 4);
        p += 4;
    }
    if (f & EP_IPV6) {
        memcpy(p, e->ipv6, 16);
        p += 16;
    }
    if (f & EP_PORT) {
        memcpy(p, &e->port, 2);
        p += 2;
    }
    return p;
}

size_t span_encode(span_store_t *st, const trace_t *t, const span_t *s, enc_info_t *info)
{
    enc_info_t dummy;
    if (info == NULL)
        info = &dummy;
    info->lsvc = info->rsvc = info->name = SID_NONE;
    size_t bound = 128;
    for (uint32_t i = 0; i < s->n_tags; i++)
        bound += 20 + s->tags[i].value.len;
    for (uint32_t i = 0; i < s->n_annotations; i++)
        bound += 20 + s->annotations[i].value.len;
    if (bound > st->enc_cap) {
        size_t cap = st->enc_cap ? st->enc_cap : 1024;
        while (cap < bound)
            cap *= 2;
        free(st->enc);
        st->enc = malloc(cap);
        if (st->enc == NULL)
            log_fatal("out of memory allocating %zu bytes", cap);
        st->enc_cap = cap;
    }
    uint8_t *p = st->enc;
    p = wr_u64(p, s->id);
    uint8_t f1 =
        (uint8_t)((s->kind & F1_KIND) | (s->debug ? F1_DEBUG : 0) | (s->shared ? F1_SHARED : 0) |
                  (s->parent_id ? F1_PARENT : 0) | (s->timestamp_us ? F1_TS : 0) | (s->duration_us ? F1_DUR : 0));
    uint8_t f2 = (uint8_t)((s->has_local ? F2_LOCAL : 0) | (s->has_remote ? F2_REMOTE : 0) |
                           (s->name.len ? F2_NAME : 0) | (s->trace_id_high != t->id_hi ? F2_HI : 0));
    *p++ = f1;
    uint8_t *f2_at = p;
    *p++ = f2;
    if (f2 & F2_LOCAL)
        p = wr_ep(st, p, &s->local, &st->hint_lsvc, &info->lsvc);
    if (f1 & F1_PARENT)
        p = wr_u64(p, s->parent_id);
    if (f2 & F2_HI)
        p = wr_u64(p, s->trace_id_high);
    if (f2 & F2_NAME) {
        info->name = intern_name(st, &st->hint_name, s->name);
        p = varint_write(p, info->name);
    }
    if (f1 & F1_TS)
        p = varint_write(p, zigzag(s->timestamp_us - t->base_ts));
    if (f1 & F1_DUR)
        p = varint_write(p, s->duration_us);
    if (f2 & F2_REMOTE)
        p = wr_ep(st, p, &s->remote, &st->hint_rsvc, &info->rsvc);
    p = varint_write(p, s->n_annotations);
    for (uint32_t i = 0; i < s->n_annotations; i++) {
        const span_annotation_t *a = &s->annotations[i];
        p = varint_write(p, zigzag(a->timestamp_us - t->base_ts));
        p = varint_write(p, a->value.len);
        memcpy(p, a->value.ptr, a->value.len);
        p += a->value.len;
    }
    uint32_t nt = s->n_tags;
    if (nt > TAG_ORDER_MAX) {
        const span_tag_t *tags;
        if (tags_sorted(&st->scratch, s->tags, s->n_tags, &tags, &nt) < 0)
            log_fatal("span store scratch memory exhausted");
        info->tags_off = (size_t)(p - st->enc);
        p = varint_write(p, nt);
        for (uint32_t i = 0; i < nt; i++) {
            const span_tag_t *tg = &tags[i];
            if (is_error_key(tg->key))
                *f2_at |= F2_ERROR;
            p = varint_write(p, intern_acquire(st->strs, tg->key.ptr, tg->key.len));
            p = varint_write(p, tg->value.len);
            memcpy(p, tg->value.ptr, tg->value.len);
            p += tg->value.len;
        }
    } else {
        uint32_t ids[TAG_ORDER_MAX];
        for (uint32_t i = 0; i < nt; i++) {
            const span_tag_t *tg = &s->tags[i];
            ids[i] = st->hint_tag[i] = intern_acquire_hint(st->strs, st->hint_tag[i], tg->key.ptr, tg->key.len);
        }
        const tag_order_t *o = nt ? tag_order(st, s->tags, ids, nt) : NULL;
        if (o != NULL && o->n_out != nt) {
            for (uint32_t i = 0; i < nt; i++)
                if (!(o->kept >> i & 1))
                    intern_release(st->strs, ids[i]);
            nt = o->n_out;
        }
        info->tags_off = (size_t)(p - st->enc);
        p = varint_write(p, nt);
        for (uint32_t k = 0; k < nt; k++) {
            uint32_t i = o->perm[k];
            const span_tag_t *tg = &s->tags[i];
            if (is_error_key(tg->key))
                *f2_at |= F2_ERROR;
            p = varint_write(p, ids[i]);
            p = varint_write(p, tg->value.len);
            memcpy(p, tg->value.ptr, tg->value.len);
            p += tg->value.len;
        }
    }
    info->n_tags = nt;
    return (size_t)(p - st->enc);
}

static const uint8_t *rd_ep(const uint8_t *p, ep_rec_t *e)
{
    uint8_t f = *p++;
    uint64_t v;
    e->present = 1;
    e->svc = SID_NONE;
    e->has_ipv4 = (f & EP_IPV4) != 0;
    e->has_ipv6 = (f & EP_IPV6) != 0;
    e->port = 0;
    if (f & EP_SVC) {
        p = rd_varint(p, &v);
        e->svc = (uint32_t)v;
    }
    if (f & EP_IPV4) {
        memcpy(e->ipv4, p, 4);
        p += 4;
    }
    if (f & EP_IPV6) {
        memcpy(e->ipv6, p, 16);
        p += 16;
    }
    if (f & EP_PORT) {
        memcpy(&e->port, p, 2);
        p += 2;
    }
    return p;
}

/* The fixed head every reader needs: length, id, flags, local endpoint. Returns the pointer past it. */
static const uint8_t *read_head(const uint8_t *p, srec_t *r, uint8_t *f1, uint8_t *f2)
{
    uint64_t len;
    r->start = p;
    p = rd_varint(p, &len);
    r->next = p + len;
    r->id = rd_u64(p);
    p += 8;
    *f1 = *p++;
    *f2 = *p++;
    r->kind = *f1 & F1_KIND;
    r->debug = (*f1 & F1_DEBUG) != 0;
    r->shared = (*f1 & F1_SHARED) != 0;
    r->error = (*f2 & F2_ERROR) != 0;
    r->local.present = 0;
    r->local.svc = SID_NONE;
    if (*f2 & F2_LOCAL)
        p = rd_ep(p, &r->local);
    return p;
}

void srec_head(const uint8_t *p, srec_t *r)
{
    uint8_t f1, f2;
    read_head(p, r, &f1, &f2);
}

void srec_decode(const trace_t *t, const uint8_t *p, srec_t *r)
{
    uint64_t v;
    uint8_t f1, f2;
    p = read_head(p, r, &f1, &f2);
    r->remote.present = 0;
    r->remote.svc = SID_NONE;
    r->parent = 0;
    if (f1 & F1_PARENT) {
        r->parent = rd_u64(p);
        p += 8;
    }
    r->hi = t->id_hi;
    if (f2 & F2_HI) {
        r->hi = rd_u64(p);
        p += 8;
    }
    r->name = SID_NONE;
    if (f2 & F2_NAME) {
        p = rd_varint(p, &v);
        r->name = (uint32_t)v;
    }
    r->ts = 0;
    if (f1 & F1_TS) {
        p = rd_varint(p, &v);
        r->ts = t->base_ts + unzigzag(v);
    }
    r->duration = 0;
    if (f1 & F1_DUR)
        p = rd_varint(p, &r->duration);
    if (f2 & F2_REMOTE)
        p = rd_ep(p, &r->remote);
    p = rd_varint(p, &v);
    r->n_ann = (uint32_t)v;
    r->ann = p;
    for (uint32_t i = 0; i < r->n_ann; i++) {
        p = rd_varint(p, &v);
        p = rd_varint(p, &v);
        p += v;
    }
    p = rd_varint(p, &v);
    r->n_tags = (uint32_t)v;
    r->tags = p;
}

const uint8_t *srec_tag(const uint8_t *p, uint32_t *key, str_t *value)
{
    uint64_t v;
    p = rd_varint(p, &v);
    *key = (uint32_t)v;
    p = rd_varint(p, &v);
    value->ptr = (const char *)p;
    value->len = (uint32_t)v;
    return p + v;
}

const uint8_t *srec_ann(const trace_t *t, const uint8_t *p, uint64_t *ts, str_t *value)
{
    uint64_t v;
    p = rd_varint(p, &v);
    *ts = t->base_ts + unzigzag(v);
    p = rd_varint(p, &v);
    value->ptr = (const char *)p;
    value->len = (uint32_t)v;
    return p + v;
}

void srec_release(span_store_t *st, const srec_t *r)
{
    if (r->local.svc != SID_NONE)
        intern_release(st->strs, r->local.svc);
    if (r->remote.svc != SID_NONE)
        intern_release(st->strs, r->remote.svc);
    if (r->name != SID_NONE)
        intern_release(st->strs, r->name);
    const uint8_t *p = r->tags;
    for (uint32_t i = 0; i < r->n_tags; i++) {
        uint32_t key;
        str_t val;
        p = srec_tag(p, &key, &val);
        intern_release(st->strs, key);
    }
}

static int out_str(arena_t *arena, int copy, str_t in, str_t *out)
{
    if (!copy || in.len == 0) {
        *out = in;
        return 0;
    }
    char *p = arena_alloc(arena, in.len);
    if (p == NULL)
        return -1;
    memcpy(p, in.ptr, in.len);
    *out = (str_t){p, in.len};
    return 0;
}

static int ep_out(const span_store_t *st, const ep_rec_t *e, arena_t *arena, int copy, span_endpoint_t *out)
{
    memset(out, 0, sizeof(*out));
    if (e->svc != SID_NONE && out_str(arena, copy, intern_str(st->strs, e->svc), &out->service_name) < 0)
        return -1;
    out->has_ipv4 = e->has_ipv4;
    out->has_ipv6 = e->has_ipv6;
    if (e->has_ipv4)
        memcpy(out->ipv4, e->ipv4, 4);
    if (e->has_ipv6)
        memcpy(out->ipv6, e->ipv6, 16);
    out->port = e->port;
    return 0;
}

int srec_to_span(const span_store_t *st, const trace_t *t, const srec_t *r, arena_t *arena, int copy, span_t *out)
{
    memset(out, 0, sizeof(*out));
    out->trace_id_high = r->hi;
    out->trace_id_low = t->id_lo;
    out->parent_id = r->parent;
    out->id = r->id;
    out->kind = (enum span_kind)r->kind;
    out->timestamp_us = r->ts;
    out->duration_us = r->duration;
    out->debug = r->debug;
    out->shared = r->shared;
    if (r->name != SID_NONE && out_str(arena, copy, intern_str(st->strs, r->name), &out->name) < 0)
        return -1;
    out->has_local = r->local.present;
    if (r->local.present && ep_out(st, &r->local, arena, copy, &out->local) < 0)
        return -1;
    out->has_remote = r->remote.present;
    if (r->remote.present && ep_out(st, &r->remote, arena, copy, &out->remote) < 0)
        return -1;
    if (r->n_ann) {
        span_annotation_t *a = arena_alloc(arena, (size_t)r->n_ann * sizeof(*a));
        if (a == NULL)
            return -1;
        const uint8_t *p = r->ann;
        for (uint32_t i = 0; i < r->n_ann; i++) {
            str_t v;
            p = srec_ann(t, p, &a[i].timestamp_us, &v);
            if (out_str(arena, copy, v, &a[i].value) < 0)
                return -1;
        }
        out->annotations = a;
        out->n_annotations = r->n_ann;
    }
    if (r->n_tags) {
        span_tag_t *tg = arena_alloc(arena, (size_t)r->n_tags * sizeof(*tg));
        if (tg == NULL)
            return -1;
        const uint8_t *p = r->tags;
        for (uint32_t i = 0; i < r->n_tags; i++) {
            uint32_t key;
            str_t v;
            p = srec_tag(p, &key, &v);
            if (out_str(arena, copy, intern_str(st->strs, key), &tg[i].key) < 0 ||
                out_str(arena, copy, v, &tg[i].value) < 0)
                return -1;
        }
        out->tags = tg;
        out->n_tags = r->n_tags;
    }
    return 0;
}

int trace_to_spans(const span_store_t *st, const trace_t *t, arena_t *arena, span_trace_t *out)
{
    span_t *spans = arena_alloc(arena, (size_t)t->n_spans * sizeof(*spans));
    if (spans == NULL)
        return -1;
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    size_t n = 0;
    while (p < end) {
        srec_t r;
        srec_decode(t, p, &r);
        if (srec_to_span(st, t, &r, arena, 1, &spans[n++]) < 0)
            return -1;
        p = r.next;
    }
    out->spans = spans;
    out->n_spans = n;
    return 0;
}

int ep_rec_compatible(const ep_rec_t *a, int b_present, const span_endpoint_t *b, uint32_t b_svc)
{
    if (!a->present || !b_present)
        return 1;
    if (a->svc != SID_NONE && b_svc != SID_NONE && a->svc != b_svc)
        return 0;
    if (a->has_ipv4 && b->has_ipv4 && memcmp(a->ipv4, b->ipv4, 4) != 0)
        return 0;
    if (a->has_ipv6 && b->has_ipv6 && memcmp(a->ipv6, b->ipv6, 16) != 0)
        return 0;
    if (a->port && b->port && a->port != b->port)
        return 0;
    return 1;
}

/* ---- normalisation and merge ---- */

static int str_cmp(str_t a, str_t b)
{
    uint32_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

static int str_eq(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

typedef struct tag_pos {
    span_tag_t tag;
    uint32_t pos;
} tag_pos_t;

static int tag_pos_cmp(const void *x, const void *y)
{
    const tag_pos_t *a = x, *b = y;
    int c = str_cmp(a->tag.key, b->tag.key);
    if (c != 0)
        return c;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static int ann_cmp(const void *x, const void *y)
{
    const span_annotation_t *a = x, *b = y;
    if (a->timestamp_us != b->timestamp_us)
        return a->timestamp_us < b->timestamp_us ? -1 : 1;
    return str_cmp(a->value, b->value);
}

/* The first 8 bytes of s, big-endian, zero-padded: orders like str_cmp except on ties. */
static uint64_t key_prefix(str_t s)
{
    uint64_t v = 0;
    if (s.len >= 8) {
        memcpy(&v, s.ptr, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        return v;
    }
    for (uint32_t i = 0; i < s.len; i++)
        v |= (uint64_t)(uint8_t)s.ptr[i] << (56 - 8 * i);
    return v;
}

static int tag_cmp_pre(uint64_t pa, str_t a, uint64_t pb, str_t b)
{
    if (pa != pb)
        return pa < pb ? -1 : 1;
    return str_cmp(a, b);
}

/* Sort tags by key, keeping the last of equal keys (a map put in order). */
#define TAGS_SORT_SMALL 64 /* insertion sort up to this many tags, qsort beyond */
static int tags_sorted(arena_t *arena, const span_tag_t *in, uint32_t n, const span_tag_t **out, uint32_t *n_out)
{
    uint32_t i;
    if (n <= TAGS_SORT_SMALL) {
        /* up to a few dozen tags: compare 8-byte key prefixes, stable insertion sort of indexes */
        uint64_t pk[TAGS_SORT_SMALL];
        for (i = 0; i < n; i++)
            pk[i] = key_prefix(in[i].key);
        i = 1;
        while (i < n && tag_cmp_pre(pk[i - 1], in[i - 1].key, pk[i], in[i].key) < 0)
            i++;
        if (i >= n) {
            *out = in;
            *n_out = n;
            return 0;
        }
        uint8_t ord[TAGS_SORT_SMALL];
        for (i = 0; i < n; i++) {
            uint32_t j = i;
            while (j > 0 && tag_cmp_pre(pk[ord[j - 1]], in[ord[j - 1]].key, pk[i], in[i].key) > 0) {
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = (uint8_t)i;
        }
        span_tag_t *res = arena_alloc(arena, (size_t)n * sizeof(*res));
        if (res == NULL)
            return -1;
        uint32_t k = 0;
        for (i = 0; i < n; i++) {
            const span_tag_t *tg = &in[ord[i]];
            if (k > 0 && pk[ord[i - 1]] == pk[ord[i]] && str_eq(res[k - 1].key, tg->key))
                res[k - 1] = *tg;
            else
                res[k++] = *tg;
        }
        *out = res;
        *n_out = k;
        return 0;
    }
    i = 1;
    while (i < n && str_cmp(in[i - 1].key, in[i].key) < 0)
        i++;
    if (i >= n) {
        *out = in;
        *n_out = n;
        return 0;
    }
    span_tag_t *res = arena_alloc(arena, (size_t)n * sizeof(*res));
    tag_pos_t *tp = arena_alloc(arena, (size_t)n * sizeof(*tp));
    if (res == NULL || tp == NULL)
        return -1;
    for (i = 0; i < n; i++)
        tp[i] = (tag_pos_t){in[i], i};
    qsort(tp, n, sizeof(*tp), tag_pos_cmp);
    uint32_t k = 0;
    for (i = 0; i < n; i++) {
        if (k > 0 && str_eq(res[k - 1].key, tp[i].tag.key))
            res[k - 1] = tp[i].tag;
        else
            res[k++] = tp[i].tag;
    }
    *out = res;
    *n_out = k;
    return 0;
}

/* Order of n (1..TAG_ORDER_MAX) tags with key ids ids: from the cache, or sorted by key and cached. */
static const tag_order_t *tag_order(span_store_t *st, const span_tag_t *tags, const uint32_t *ids, uint32_t n)
{
    for (uint32_t c = 0; c < TAG_ORDERS; c++) {
        const tag_order_t *o = &st->tag_orders[c];
        if (o->n == n && memcmp(o->ids, ids, (size_t)n * sizeof(*ids)) == 0)
            return o;
    }
    tag_order_t *o = &st->tag_orders[st->tag_order_next++ % TAG_ORDERS];
    for (uint32_t i = 0; i < o->n; i++)
        intern_release(st->strs, o->ids[i]);
    /* stable insertion sort of positions by key, then keep the last of equal keys (equal keys = equal ids) */
    uint64_t pk[TAG_ORDER_MAX];
    uint8_t ord[TAG_ORDER_MAX];
    for (uint32_t i = 0; i < n; i++)
        pk[i] = key_prefix(tags[i].key);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = i;
        while (j > 0 && tag_cmp_pre(pk[ord[j - 1]], tags[ord[j - 1]].key, pk[i], tags[i].key) > 0) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = (uint8_t)i;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (k > 0 && ids[o->perm[k - 1]] == ids[ord[i]])
            o->perm[k - 1] = ord[i];
        else
            o->perm[k++] = ord[i];
    }
    o->n_out = k;
    o->kept = 0;
    for (uint32_t i = 0; i < k; i++)
        o->kept |= (uint64_t)1 << o->perm[i];
    for (uint32_t i = 0; i < n; i++) {
        o->ids[i] = ids[i];
        intern_ref(st->strs, ids[i]);
    }
    o->n = n;
    return o;
}

static int anns_sorted(arena_t *arena, const span_annotation_t *in, uint32_t n, const span_annotation_t **out,
                       uint32_t *n_out)
{
    uint32_t i = 1;
    while (i < n && ann_cmp(&in[i - 1], &in[i]) < 0)
        i++;
    if (i >= n) {
        *out = in;
        *n_out = n;
        return 0;
    }
    span_annotation_t *res = arena_alloc(arena, (size_t)n * sizeof(*res));
    if (res == NULL)
        return -1;
    memcpy(res, in, (size_t)n * sizeof(*res));
    qsort(res, n, sizeof(*res), ann_cmp);
    uint32_t k = 0;
    for (i = 0; i < n; i++)
        if (k == 0 || ann_cmp(&res[k - 1], &res[i]) != 0)
            res[k++] = res[i];
    *out = res;
    *n_out = k;
    return 0;
}

int span_normalize(arena_t *arena, const span_t *in, span_t *out)
{
    if (span_normalize_head(arena, in, out) < 0)
        return -1;
    out->name = store_lower(arena, out->name);
    out->local.service_name = store_lower(arena, out->local.service_name);
    out->remote.service_name = store_lower(arena, out->remote.service_name);
    if ((in->name.len && out->name.ptr == NULL) ||
        (in->local.service_name.len && out->local.service_name.ptr == NULL && out->has_local) ||
        (in->remote.service_name.len && out->remote.service_name.ptr == NULL && out->has_remote))
        return -1;
    return tags_sorted(arena, in->tags, in->n_tags, &out->tags, &out->n_tags);
}

int span_normalize_head(arena_t *arena, const span_t *in, span_t *out)
{
    *out = *in;
    if (out->parent_id == out->id)
        out->parent_id = 0;
    if ((unsigned)out->kind > SPAN_KIND_CONSUMER)
        out->kind = SPAN_KIND_UNSPECIFIED;
    if (out->shared && out->kind == SPAN_KIND_CLIENT)
        out->shared = 0;
    out->debug = out->debug ? 1 : 0;
    out->shared = out->shared ? 1 : 0;
    out->has_local = out->has_local && ep_present(&out->local);
    out->has_remote = out->has_remote && ep_present(&out->remote);
    if (!out->has_local)
        memset(&out->local, 0, sizeof(out->local));
    if (!out->has_remote)
        memset(&out->remote, 0, sizeof(out->remote));
    if (anns_sorted(arena, in->annotations, in->n_annotations, &out->annotations, &out->n_annotations) < 0)
        return -1;
    return 0;
}

static void ep_merge(span_endpoint_t *dst, const span_endpoint_t *src)
{
    if (dst->service_name.len == 0)
        dst->service_name = src->service_name;
    if (!dst->has_ipv4 && src->has_ipv4) {
        memcpy(dst->ipv4, src->ipv4, 4);
        dst->has_ipv4 = 1;
    }
    if (!dst->has_ipv6 && src->has_ipv6) {
        memcpy(dst->ipv6, src->ipv6, 16);
        dst->has_ipv6 = 1;
    }
    if (dst->port == 0)
        dst->port = src->port;
}

int span_merge(arena_t *arena, const span_t *base, const span_t *source, span_t *out)
{
    *out = *base;
    if (out->trace_id_high == 0)
        out->trace_id_high = source->trace_id_high;
    if (out->parent_id == 0)
        out->parent_id = source->parent_id;
    if (out->kind == SPAN_KIND_UNSPECIFIED)
        out->kind = source->kind;
    if (out->name.len == 0)
        out->name = source->name;
    if (out->timestamp_us == 0)
        out->timestamp_us = source->timestamp_us;
    if (out->duration_us == 0)
        out->duration_us = source->duration_us;
    if (!out->has_local) {
        out->local = source->local;
        out->has_local = source->has_local;
    } else if (source->has_local) {
        ep_merge(&out->local, &source->local);
    }
    if (!out->has_remote) {
        out->remote = source->remote;
        out->has_remote = source->has_remote;
    } else if (source->has_remote) {
        ep_merge(&out->remote, &source->remote);
    }
    out->debug = base->debug | source->debug;
    out->shared = base->shared | source->shared;

    /* both tag lists are sorted and unique: a sorted union where source wins */
    uint32_t na = base->n_tags, nb = source->n_tags, i = 0, j = 0, k = 0;
    if (nb) {
        span_tag_t *tags = arena_alloc(arena, ((size_t)na + nb) * sizeof(*tags));
        if (tags == NULL)
            return -1;
        while (i < na || j < nb) {
            int c = i == na ? 1 : j == nb ? -1 : str_cmp(base->tags[i].key, source->tags[j].key);
            if (c < 0)
                tags[k++] = base->tags[i++];
            else if (c > 0)
                tags[k++] = source->tags[j++];
            else {
                tags[k++] = source->tags[j++];
                i++;
            }
        }
        out->tags = tags;
        out->n_tags = k;
    }
    na = base->n_annotations;
    nb = source->n_annotations;
    if (nb) {
        span_annotation_t *anns = arena_alloc(arena, ((size_t)na + nb) * sizeof(*anns));
        if (anns == NULL)
            return -1;
        i = j = k = 0;
        while (i < na || j < nb) {
            int c = i == na ? 1 : j == nb ? -1 : ann_cmp(&base->annotations[i], &source->annotations[j]);
            if (c < 0)
                anns[k++] = base->annotations[i++];
            else if (c > 0)
                anns[k++] = source->annotations[j++];
            else {
                anns[k++] = base->annotations[i++];
                j++;
            }
        }
        out->annotations = anns;
        out->n_annotations = k;
    }
    if (out->parent_id == out->id)
        out->parent_id = 0;
    if (out->shared && out->kind == SPAN_KIND_CLIENT)
        out->shared = 0;
    return 0;
}
