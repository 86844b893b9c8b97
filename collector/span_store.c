/*
 * span_store: creation, insertion (normalise, merge, encode, index) and
 * eviction; see span_store.h for the semantics and span_store_internal.h
 * for the layout. Queries live in span_store_query.c, dependency links in
 * span_store_deps.c.
 *
 * Index invariants, kept by every insert, merge and eviction:
 *  - a service exists while some stored span has it as local service, and
 *    counts its span names and remote service names per span;
 *  - a trace is in a service's time list iff it has a timestamp and a span
 *    of that service, and in the global list iff it has a timestamp; lists
 *    are sorted by the trace timestamp, so a timestamp change removes the
 *    trace under its old value and re-inserts it;
 *  - every intern id in a blob holds one reference.
 *
 * Inserts work a batch at a time: the batch is grouped by trace id (in
 * order of first appearance, each trace's spans in arrival order), and each
 * trace is looked up once, its new records staged and appended to its blob
 * with one reallocation, and its timestamp, time-list entries and dirty
 * mark brought up to date once. A stored span is only looked for (a scan of
 * the trace) when the trace's span id filter says a merge is possible. The
 * observable result is the same as inserting the spans one by one.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "varint.h"
#include "log.h"
#include "span_store_internal.h"

void span_store_config_default(span_store_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_spans = 500000;
    cfg->strict_trace_id = 1;
    cfg->dep_bucket_ms = 60000;
    cfg->dep_settle_ms = 1000;
}

/* The batch's trace table slots are asked for this many traces ahead of their insert. */
#define TAB_PREFETCH 8

/* ---- services ---- */

static service_t *service_get(const span_store_t *st, uint32_t sid)
{
    uint64_t *v = u64map_get(&st->services, sid);
    return v ? (service_t *)(uintptr_t)*v : NULL;
}

static service_t *service_make(span_store_t *st, uint32_t sid)
{
    uint64_t *v = u64map_put(&st->services, sid, &st->bytes);
    if (*v == 0) {
        service_t *s = store_alloc(sizeof(*s), &st->bytes);
        memset(s, 0, sizeof(*s));
        s->sid = sid;
        *v = (uint64_t)(uintptr_t)s;
    }
    return (service_t *)(uintptr_t)*v;
}

static void service_free(span_store_t *st, service_t *s)
{
    u64map_del(&st->services, s->sid, &st->bytes);
    tlist_dispose(&s->traces, &st->bytes);
    u64map_dispose(&s->names, &st->bytes);
    u64map_dispose(&s->remotes, &st->bytes);
    store_free(s, sizeof(*s), &st->bytes);
}

static void count_add(span_store_t *st, u64map_t *m, uint32_t key, int delta)
{
    uint64_t *c = u64map_put(m, key, &st->bytes);
    *c += (uint64_t)(int64_t)delta;
    if (*c == 0)
        u64map_del(m, key, &st->bytes);
}

/* The value id of val for ac, through its one-entry cache of the last value seen (values repeat: GET, 200, -). */
static uint32_t ac_value_find(span_store_t *st, ac_key_t *ac, str_t val)
{
    if (ac->last_vid != SID_NONE && ac->last_len == val.len && memcmp(ac->last, val.ptr, val.len) == 0)
        return ac->last_vid;
    return intern_find(st->strs, val.ptr, val.len);
}

static void ac_value_seen(ac_key_t *ac, str_t val, uint32_t vid)
{
    if (val.len > sizeof(ac->last))
        return;
    memcpy(ac->last, val.ptr, val.len);
    ac->last_len = val.len;
    ac->last_vid = vid;
}

static void index_autocomplete(span_store_t *st, const srec_t *r, int delta)
{
    const uint8_t *p = r->tags;
    for (uint32_t i = 0; i < r->n_tags; i++) {
        uint32_t key;
        str_t val;
        p = srec_tag(p, &key, &val);
        if (!(st->ac_bits >> (key & 63) & 1))
            continue;
        for (size_t k = 0; k < st->n_ac; k++) {
            ac_key_t *ac = &st->ac[k];
            if (ac->sid != key)
                continue;
            uint32_t vid = ac_value_find(st, ac, val);
            uint64_t *c = vid == SID_NONE ? NULL : u64map_get(&ac->values, vid);
            if (delta > 0) {
                if (c != NULL) {
                    (*c)++;
                } else {
                    vid = intern_acquire(st->strs, val.ptr, val.len);
                    *u64map_put(&ac->values, vid, &st->bytes) = 1;
                }
                ac_value_seen(ac, val, vid);
            } else if (c != NULL && --*c == 0) {
                u64map_del(&ac->values, vid, &st->bytes);
                intern_release(st->strs, vid);
                if (ac->last_vid == vid)
                    ac->last_vid = SID_NONE; /* the id may be reused for another string */
            }
            break;
        }
    }
}

/* Add (delta 1) or withdraw (-1) one span's entries in the name indexes. */
static void index_rec(span_store_t *st, const srec_t *r, int delta)
{
    uint32_t svc = r->local.svc;
    if (svc != SID_NONE) {
        service_t *s = delta > 0 ? service_make(st, svc) : service_get(st, svc);
        if (s != NULL) {
            s->n_spans += (uint32_t)delta;
            if (r->name != SID_NONE)
                count_add(st, &s->names, r->name, delta);
            if (r->remote.svc != SID_NONE)
                count_add(st, &s->remotes, r->remote.svc, delta);
            if (s->n_spans == 0)
                service_free(st, s);
        }
    }
    if (st->n_ac)
        index_autocomplete(st, r, delta);
}

/* ---- time lists ---- */

/* QueryRequest.test's trace timestamp: the first root's, else the earliest. */
static uint64_t trace_timestamp(const trace_t *t, uint8_t *from_root)
{
    uint64_t min = 0;
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    *from_root = 0;
    while (p < end) {
        srec_t r;
        srec_decode(t, p, &r);
        p = r.next;
        if (r.ts == 0)
            continue;
        if (r.parent == 0) {
            *from_root = 1;
            return r.ts;
        }
        if (min == 0 || r.ts < min)
            min = r.ts;
    }
    return min;
}

/*
 * Distinct local services of t into out (at most cap; *more set when
 * there are more, in which case callers fall back to per-span calls);
 * *unnamed set when a span has no local service.
 */
static size_t trace_services(const trace_t *t, uint32_t *out, size_t cap, int *more, int *unnamed)
{
    size_t n = 0;
    *more = 0;
    *unnamed = 0;
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    while (p < end) {
        srec_t r;
        srec_head(p, &r);
        p = r.next;
        uint32_t svc = r.local.svc;
        if (svc == SID_NONE) {
            *unnamed = 1;
            continue;
        }
        size_t k = 0;
        while (k < n && out[k] != svc)
            k++;
        if (k < n)
            continue;
        if (n == cap) {
            *more = 1;
            continue;
        }
        out[n++] = svc;
    }
    return n;
}

/*
 * List inserts of a batch wait until its traces are all in, then go in as
 * a pipeline: the leaf of the insert a few places ahead is asked for while
 * the current one is done, so the leaf misses of a list larger than the
 * cache overlap instead of coming one after the other. Nothing reads the
 * lists in between (the store is locked, and each trace is touched once per
 * batch).
 */
#define LIST_PREFETCH 4

static void list_insert(span_store_t *st, tlist_t *l, trace_t *t)
{
    if (st->pend_len == st->pend_cap) {
        size_t cap = st->pend_cap ? st->pend_cap * 2 : 256;
        st->pend = realloc(st->pend, cap * sizeof(*st->pend));
        if (st->pend == NULL)
            log_fatal("out of memory allocating %zu bytes", cap * sizeof(*st->pend));
        st->pend_cap = cap;
    }
    st->pend[st->pend_len++] = (pend_insert_t){l, t};
}

static void list_flush(span_store_t *st)
{
    size_t n = st->pend_len;
    for (size_t i = 0; i < n && i < LIST_PREFETCH; i++)
        tlist_prefetch(st->pend[i].l, st->pend[i].t);
    for (size_t i = 0; i < n; i++) {
        if (i + LIST_PREFETCH < n)
            tlist_prefetch(st->pend[i + LIST_PREFETCH].l, st->pend[i + LIST_PREFETCH].t);
        tlist_insert(st->pend[i].l, st->pend[i].t, &st->bytes);
    }
    st->pend_len = 0;
}

/* Slow path for traces with many services: visit every span's service (duplicates included). */
static void relist_each_span(span_store_t *st, trace_t *t, int insert)
{
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    while (p < end) {
        srec_t r;
        srec_head(p, &r);
        p = r.next;
        service_t *s = r.local.svc == SID_NONE ? NULL : service_get(st, r.local.svc);
        if (s == NULL)
            continue;
        tlist_remove(&s->traces, t, &st->bytes);
        if (insert)
            tlist_insert(&s->traces, t, &st->bytes);
    }
}

/*
 * Move t from timestamp t->ts to new_ts in every list (0 = not listed):
 * the list of each of its local services, and the list of traces with a
 * span without one. A trace is in no list for all traces: a query without
 * a service merges the lists (one list per trace is half the tree work of
 * two).
 */
static void relist(span_store_t *st, trace_t *t, uint64_t new_ts)
{
    uint32_t svcs[32];
    int more, unnamed;
    size_t n = trace_services(t, svcs, 32, &more, &unnamed);
    if (t->ts != 0) {
        for (size_t i = 0; i < n; i++)
            tlist_remove(&service_get(st, svcs[i])->traces, t, &st->bytes);
        if (more)
            relist_each_span(st, t, 0);
        /* whatever unnamed says now: a merge may have named the span that put t there */
        tlist_remove(&st->unnamed, t, &st->bytes);
    }
    t->ts = new_ts;
    if (new_ts != 0) {
        for (size_t i = 0; i < n; i++) {
            tlist_t *l = &service_get(st, svcs[i])->traces;
            /* the slow path inserts at once (after a removal that must find t): so must these */
            if (more)
                tlist_insert(l, t, &st->bytes);
            else
                list_insert(st, l, t);
        }
        if (more)
            relist_each_span(st, t, 1);
        if (unnamed)
            list_insert(st, &st->unnamed, t);
    }
}

/* ---- create / destroy ---- */

span_store_t *span_store_create(const span_store_config_t *cfg)
{
    span_store_config_t def;
    if (cfg == NULL) {
        span_store_config_default(&def);
        cfg = &def;
    }
    span_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        log_fatal("out of memory");
    if (pthread_rwlock_init(&st->lock, NULL) != 0) {
        free(st);
        return NULL;
    }
    st->max_spans = cfg->max_spans;
    st->max_bytes = cfg->max_bytes;
    st->strict = cfg->strict_trace_id != 0;
    st->max_trace_spans = cfg->max_trace_spans;
    st->bucket_ms = cfg->dep_bucket_ms ? cfg->dep_bucket_ms : 60000;
    st->settle_us = (uint64_t)(cfg->dep_settle_ms ? cfg->dep_settle_ms : 1000) * 1000;
    st->strs = intern_create();
    arena_init(&st->scratch, 0);
    arena_init(&st->batch, 0);
    st->hint_lsvc = st->hint_rsvc = st->hint_name = SID_NONE;
    for (size_t i = 0; i < TAG_ORDER_MAX; i++)
        st->hint_tag[i] = SID_NONE;
    st->bytes += (int64_t)store_chunk(sizeof(*st));
    if (cfg->pretouch && cfg->max_bytes) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        size_t n = blob_heap_pretouch(&st->blobs, cfg->max_bytes);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        log_info("store: pre-touched %zu MiB of span memory in %.1f s", n >> 20,
                 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    tab_init(st);
    st->fifo_cap = 1024;
    st->fifo = store_big_alloc(st->fifo_cap * sizeof(*st->fifo), &st->bytes);
    st->dirty_cap = 1024;
    st->dirty = store_alloc(st->dirty_cap * sizeof(*st->dirty), &st->bytes);
    if (cfg->n_autocomplete_keys) {
        st->ac = store_alloc(cfg->n_autocomplete_keys * sizeof(*st->ac), &st->bytes);
        for (size_t i = 0; i < cfg->n_autocomplete_keys; i++) {
            const char *k = cfg->autocomplete_keys[i];
            if (k == NULL || *k == '\0')
                continue;
            uint32_t sid = intern_acquire(st->strs, k, strlen(k));
            size_t j = 0;
            while (j < st->n_ac && st->ac[j].sid != sid)
                j++;
            if (j < st->n_ac) {
                intern_release(st->strs, sid);
                continue;
            }
            memset(&st->ac[st->n_ac], 0, sizeof(*st->ac));
            st->ac[st->n_ac].last_vid = SID_NONE;
            st->ac[st->n_ac++].sid = sid;
            st->ac_bits |= (uint64_t)1 << (sid & 63);
        }
    }
    return st;
}

static void ids_free(span_store_t *st, trace_t *t);

static void trace_free(span_store_t *st, trace_t *t)
{
    blob_free(&st->blobs, t->blob, t->blob_len, &st->bytes);
    if (t->links != NULL)
        store_free(t->links, trace_links_size(t->links->n), &st->bytes);
    ids_free(st, t);
    blob_free(&st->blobs, t, sizeof(*t), &st->bytes);
}

void span_store_destroy(span_store_t *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->fifo_len; i++)
        trace_free(st, st->fifo[(st->fifo_head + i) % st->fifo_cap]);
    if (st->services.slots != NULL) {
        for (uint32_t i = 0; i <= st->services.mask; i++) {
            if (st->services.slots[i].key == U64MAP_EMPTY)
                continue;
            service_t *s = (service_t *)(uintptr_t)st->services.slots[i].val;
            tlist_dispose(&s->traces, &st->bytes);
            u64map_dispose(&s->names, &st->bytes);
            u64map_dispose(&s->remotes, &st->bytes);
            store_free(s, sizeof(*s), &st->bytes);
        }
    }
    u64map_dispose(&st->services, &st->bytes);
    for (size_t i = 0; i < st->n_ac; i++)
        u64map_dispose(&st->ac[i].values, &st->bytes);
    deps_dispose(st);
    tlist_dispose(&st->unnamed, &st->bytes);
    free(st->ac);
    tab_dispose(st);
    store_big_free(st->fifo, st->fifo_cap * sizeof(*st->fifo), &st->bytes);
    free(st->dirty);
    free(st->enc);
    free(st->stage);
    free(st->pend);
    blob_heap_dispose(&st->blobs);
    arena_dispose(&st->scratch);
    arena_dispose(&st->batch);
    intern_destroy(st->strs);
    pthread_rwlock_destroy(&st->lock);
    free(st);
}

/* ---- span id filter ---- */

/*
 * Each trace keeps a filter of its span ids so an insert only scans the
 * trace for a merge candidate when one may exist: a 2-bit-per-id bloom in
 * the trace itself while the trace is small, then a table of 32-bit
 * fingerprints (a lookup costs O(1), memory ~4-7 bytes per span).
 */
#define BLOOM_MAX 32
#define SID_UNSEEN (SID_NONE - 1) /* a service name the intern table has never seen */

typedef struct span_idset {
    uint32_t mask; /* capacity - 1 */
    uint32_t len;
    uint32_t fp[]; /* 0 = free */
} span_idset_t;

static uint64_t id_mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t bloom_bits(uint64_t h)
{
    return (1ULL << (h & 63)) | (1ULL << ((h >> 6) & 63));
}

static uint32_t fp_of(uint64_t h)
{
    return (uint32_t)(h >> 32) | 1;
}

static uint32_t fp_home(uint32_t fp)
{
    return (fp * 0x9E3779B1u) >> 7;
}

static size_t idset_size(uint32_t cap)
{
    return sizeof(span_idset_t) + (size_t)cap * sizeof(uint32_t);
}

static void idset_place(span_idset_t *s, uint32_t fp)
{
    uint32_t i = fp_home(fp) & s->mask;
    while (s->fp[i] != 0) {
        if (s->fp[i] == fp)
            return;
        i = (i + 1) & s->mask;
    }
    s->fp[i] = fp;
    s->len++;
}

static span_idset_t *idset_new(span_store_t *st, uint32_t cap)
{
    span_idset_t *s = store_alloc(idset_size(cap), &st->bytes);
    memset(s, 0, idset_size(cap));
    s->mask = cap - 1;
    return s;
}

static void ids_free(span_store_t *st, trace_t *t)
{
    if (t->big_ids) {
        span_idset_t *s = (span_idset_t *)(uintptr_t)t->ids;
        store_free(s, idset_size(s->mask + 1), &st->bytes);
    }
    t->ids = 0;
    t->big_ids = 0;
}

/* Whether t may hold a span with this id. */
static int ids_maybe(const trace_t *t, uint64_t id)
{
    uint64_t h = id_mix(id);
    if (!t->big_ids)
        return (t->ids & bloom_bits(h)) == bloom_bits(h);
    const span_idset_t *s = (const span_idset_t *)(uintptr_t)t->ids;
    uint32_t fp = fp_of(h);
    for (uint32_t i = fp_home(fp) & s->mask;; i = (i + 1) & s->mask) {
        if (s->fp[i] == fp)
            return 1;
        if (s->fp[i] == 0)
            return 0;
    }
}

static void idset_add_records(span_idset_t *s, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        srec_t r;
        srec_head(p, &r);
        idset_place(s, fp_of(id_mix(r.id)));
        p = r.next;
    }
}

/* Record id in t's filter; t->n_spans already counts the span, which is in the blob or the stage. */
static void ids_add(span_store_t *st, trace_t *t, uint64_t id)
{
    uint64_t h = id_mix(id);
    if (!t->big_ids && t->n_spans <= BLOOM_MAX) {
        t->ids |= bloom_bits(h);
        return;
    }
    span_idset_t *s = t->big_ids ? (span_idset_t *)(uintptr_t)t->ids : NULL;
    if (s != NULL && (uint64_t)(s->len + 1) * 5 <= (uint64_t)(s->mask + 1) * 4) {
        idset_place(s, fp_of(h));
        return;
    }
    /* (re)build from the stored records: the fingerprints alone cannot be rehashed by position */
    uint32_t cap = 64;
    while ((uint64_t)cap * 2 < (uint64_t)t->n_spans * 3)
        cap *= 2;
    span_idset_t *ns = idset_new(st, cap);
    idset_add_records(ns, t->blob, t->blob + t->blob_len);
    idset_add_records(ns, st->stage, st->stage + st->stage_len);
    ids_free(st, t);
    t->ids = (uint64_t)(uintptr_t)ns;
    t->big_ids = 1;
}

/* ---- insert ---- */

static trace_t *trace_new(span_store_t *st, const span_t *s, uint64_t now_us)
{
    trace_t *t = blob_alloc(&st->blobs, sizeof(*t), &st->bytes); /* no malloc header: 16 bytes a trace */
    memset(t, 0, sizeof(*t));
    t->id_hi = s->trace_id_high;
    t->id_lo = s->trace_id_low;
    t->base_ts = s->timestamp_us ? s->timestamp_us : now_us;
    tab_add(st, t);
    if (st->fifo_len == st->fifo_cap) {
        size_t ncap = st->fifo_cap * 2;
        trace_t **nf = store_big_alloc(ncap * sizeof(*nf), &st->bytes);
        for (size_t i = 0; i < st->fifo_len; i++)
            nf[i] = st->fifo[(st->fifo_head + i) % st->fifo_cap];
        store_big_free(st->fifo, st->fifo_cap * sizeof(*nf), &st->bytes);
        st->fifo = nf;
        st->fifo_cap = ncap;
        st->fifo_head = 0;
    }
    st->fifo[(st->fifo_head + st->fifo_len++) % st->fifo_cap] = t;
    st->n_traces++;
    return t;
}

/*
 * What one batch changed in one trace; the trace's timestamp and list
 * entries are brought up to date once, when its spans of the batch are in.
 */
#define TOUCH_SVCS 16

typedef struct touch {
    uint64_t ts;       /* trace timestamp after the spans so far */
    uint8_t root;      /* ts is a root span's */
    uint8_t recompute; /* a merge happened: recompute ts from the blob */
    uint8_t svc_overflow;
    uint8_t unnamed; /* a new or merged span has no local service */
    uint32_t n_svcs;
    uint32_t svcs[TOUCH_SVCS]; /* distinct local services of the new or merged spans */
} touch_t;

static void touch_svc(touch_t *b, uint32_t svc)
{
    if (svc == SID_NONE) {
        b->unnamed = 1;
        return;
    }
    for (uint32_t i = 0; i < b->n_svcs; i++)
        if (b->svcs[i] == svc)
            return;
    if (b->n_svcs == TOUCH_SVCS)
        b->svc_overflow = 1;
    else
        b->svcs[b->n_svcs++] = svc;
}

/* Move the staged records to the end of t's blob (one reallocation per trace and batch). */
static void stage_flush(span_store_t *st, trace_t *t)
{
    if (st->stage_len == 0)
        return;
    t->blob = blob_realloc(&st->blobs, t->blob, t->blob_len, t->blob_len + st->stage_len, &st->bytes);
    memcpy(t->blob + t->blob_len, st->stage, st->stage_len);
    t->blob_len += (uint32_t)st->stage_len;
    st->stage_len = 0;
}

/* Append the normalised span s to t (through the stage). */
static void append_one(span_store_t *st, trace_t *t, const span_t *s, touch_t *b)
{
    enc_info_t info;
    size_t body = span_encode(st, t, s, &info);
    uint8_t hdr[10];
    size_t hl = (size_t)(varint_write(hdr, body) - hdr);
    size_t rec_len = hl + body;
    if (st->stage_len + rec_len > st->stage_cap) {
        size_t cap = st->stage_cap ? st->stage_cap : 4096;
        while (cap < st->stage_len + rec_len)
            cap *= 2;
        st->stage = realloc(st->stage, cap);
        if (st->stage == NULL)
            log_fatal("out of memory allocating %zu bytes", cap);
        st->stage_cap = cap;
    }
    uint8_t *rec = st->stage + st->stage_len;
    memcpy(rec, hdr, hl);
    memcpy(rec + hl, st->enc, body);
    st->stage_len += rec_len;
    /* what index_rec reads, from the encoder rather than by decoding the record again */
    srec_t nr;
    nr.local.svc = info.lsvc;
    nr.remote.svc = info.rsvc;
    nr.name = info.name;
    nr.n_tags = info.n_tags;
    uint64_t n_tags;
    nr.tags = rd_varint(rec + hl + info.tags_off, &n_tags); /* first tag, after the count */
    index_rec(st, &nr, 1);
    t->n_spans++;
    st->n_spans++;
    ids_add(st, t, s->id);
    touch_svc(b, nr.local.svc);
    /* appended last, so it only matters as the first root or as a new minimum */
    if (!b->root && s->timestamp_us != 0) {
        if (s->parent_id == 0) {
            b->ts = s->timestamp_us;
            b->root = 1;
        } else if (b->ts == 0 || s->timestamp_us < b->ts) {
            b->ts = s->timestamp_us;
        }
    }
}

/*
 * Merge s into the stored span it duplicates, when there is one (the
 * caller checked the id filter). Returns 1 when merged, 0 when s is new.
 */
static int merge_one(span_store_t *st, trace_t *t, const span_t *s, touch_t *b)
{
    stage_flush(st, t);
    uint32_t lsvc = SID_NONE;
    if (s->has_local && s->local.service_name.len) {
        lsvc = intern_find(st->strs, s->local.service_name.ptr, s->local.service_name.len);
        if (lsvc == SID_NONE)
            lsvc = SID_UNSEEN;
    }
    srec_t old;
    int have = 0;
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    while (p < end) {
        srec_t r;
        srec_head(p, &r);
        if (r.id == s->id && r.shared == s->shared && ep_rec_compatible(&r.local, s->has_local, &s->local, lsvc)) {
            srec_decode(t, p, &old);
            have = 1;
            break;
        }
        p = r.next;
    }
    if (!have)
        return 0;

    span_t prev, merged;
    if (srec_to_span(st, t, &old, &st->scratch, 0, &prev) < 0 || span_merge(&st->scratch, &prev, s, &merged) < 0)
        log_fatal("span store scratch memory exhausted");
    size_t body = span_encode(st, t, &merged, NULL);
    uint8_t hdr[10];
    size_t hl = (size_t)(varint_write(hdr, body) - hdr);
    size_t rec_len = hl + body;
    /* index the new version before withdrawing the old one, so nothing shared drops to zero */
    uint8_t *tmp = arena_alloc(&st->scratch, rec_len);
    if (tmp == NULL)
        log_fatal("span store scratch memory exhausted");
    memcpy(tmp, hdr, hl);
    memcpy(tmp + hl, st->enc, body);
    srec_t nr;
    srec_decode(t, tmp, &nr);
    index_rec(st, &nr, 1);
    index_rec(st, &old, -1);
    srec_release(st, &old);
    touch_svc(b, nr.local.svc);
    size_t off = (size_t)(old.start - t->blob);
    size_t old_len = (size_t)(old.next - old.start);
    size_t tail = t->blob_len - off - old_len;
    size_t nlen = t->blob_len - old_len + rec_len;
    if (rec_len > old_len)
        t->blob = blob_realloc(&st->blobs, t->blob, t->blob_len, nlen, &st->bytes);
    memmove(t->blob + off + rec_len, t->blob + off + old_len, tail);
    memcpy(t->blob + off, tmp, rec_len);
    if (rec_len < old_len)
        t->blob = blob_realloc(&st->blobs, t->blob, t->blob_len, nlen, &st->bytes);
    t->blob_len = (uint32_t)nlen;
    b->recompute = 1;
    return 1;
}

/* Bring t's timestamp and list entries up to date after its spans of one batch. */
static void touch_finish(span_store_t *st, trace_t *t, const touch_t *b)
{
    uint64_t new_ts = b->ts;
    uint8_t root = b->root;
    if (b->recompute)
        new_ts = trace_timestamp(t, &root);
    t->ts_root = root;
    if (new_ts != t->ts) {
        relist(st, t, new_ts);
    } else if (t->ts != 0) {
        if (b->svc_overflow) {
            relist(st, t, t->ts);
        } else {
            for (uint32_t i = 0; i < b->n_svcs; i++) {
                service_t *s = service_get(st, b->svcs[i]);
                if (s != NULL && !tlist_contains(&s->traces, t))
                    list_insert(st, &s->traces, t);
            }
            if (b->unnamed && !tlist_contains(&st->unnamed, t))
                list_insert(st, &st->unnamed, t);
        }
    }
}

/*
 * Store the spans of one trace (first, then next[] links, in arrival
 * order); returns how many were accepted.
 */
static int insert_trace(span_store_t *st, const span_t *spans, const uint32_t *next, uint32_t first, uint64_t now_us,
                        uint16_t origin)
{
    trace_t *t = store_find_trace(st, spans[first].trace_id_high, spans[first].trace_id_low);
    touch_t b;
    b.ts = t ? t->ts : 0;
    b.root = t ? t->ts_root : 0;
    b.recompute = 0;
    b.svc_overflow = 0;
    b.unnamed = 0;
    b.n_svcs = 0;
    int accepted = 0;
    for (uint32_t i = first; i != UINT32_MAX; i = next[i]) {
        arena_reset(&st->scratch);
        /* names are lower-cased and tags sorted by span_encode, or here before a merge */
        span_t s;
        if (span_normalize_head(&st->scratch, &spans[i], &s) < 0)
            continue;
        if (t == NULL) {
            t = trace_new(st, &s, now_us);
            t->origin = origin;
        } else if (st->max_trace_spans && t->n_spans >= st->max_trace_spans)
            continue;
        accepted++;
        if (ids_maybe(t, s.id)) {
            if (span_normalize(&st->scratch, &spans[i], &s) < 0)
                log_fatal("span store scratch memory exhausted");
            if (merge_one(st, t, &s, &b))
                continue;
        }
        append_one(st, t, &s, &b);
    }
    if (accepted == 0)
        return 0;
    stage_flush(st, t);
    touch_finish(st, t, &b);
    deps_batch_done(st, t, now_us);
    return accepted;
}

static uint64_t store_bytes(const span_store_t *st)
{
    return (uint64_t)st->bytes + intern_bytes(st->strs);
}

/* Take t out of every index and free it (its fifo slot is the caller's). */
static void trace_remove(span_store_t *st, trace_t *t)
{
    relist(st, t, 0);
    deps_forget(st, t);
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    while (p < end) {
        srec_t r;
        srec_decode(t, p, &r);
        index_rec(st, &r, -1);
        srec_release(st, &r);
        p = r.next;
    }
    st->n_traces--;
    tab_del(st, t);
    st->n_spans -= t->n_spans;
    trace_free(st, t);
}

static void evict_oldest(span_store_t *st)
{
    trace_t *t = st->fifo[st->fifo_head];
    st->fifo_head = (st->fifo_head + 1) % st->fifo_cap;
    st->fifo_len--;
    st->evicted_spans += t->n_spans;
    st->evicted_traces++;
    trace_remove(st, t);
}

size_t span_store_drop_origin(span_store_t *st, uint16_t origin)
{
    size_t dropped = 0, kept = 0;
    pthread_rwlock_wrlock(&st->lock);
    for (size_t i = 0; i < st->fifo_len; i++) {
        trace_t *t = st->fifo[(st->fifo_head + i) % st->fifo_cap];
        if (origin != 0 && t->origin == origin) {
            trace_remove(st, t);
            dropped++;
        } else { /* the ring closes up behind: kept <= i, so nothing unread is overwritten */
            st->fifo[(st->fifo_head + kept++) % st->fifo_cap] = t;
        }
    }
    st->fifo_len = kept;
    pthread_rwlock_unlock(&st->lock);
    return dropped;
}

/*
 * Group the batch by trace: *first gets each trace's first span in order of
 * first appearance, next[] chains the rest in arrival order (UINT32_MAX
 * ends a chain). Spans without ids are left out. Returns the number of
 * groups. Memory comes from st->batch.
 */
static size_t batch_group(span_store_t *st, const span_t *spans, uint32_t n, uint32_t **first_out, uint32_t **next_out)
{
    uint32_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    uint32_t *tab = arena_alloc(&st->batch, (size_t)cap * sizeof(*tab));   /* group index */
    uint32_t *first = arena_alloc(&st->batch, (size_t)n * sizeof(*first)); /* group -> first span */
    uint32_t *last = arena_alloc(&st->batch, (size_t)n * sizeof(*last));   /* group -> last span */
    uint32_t *next = arena_alloc(&st->batch, (size_t)n * sizeof(*next));
    if (tab == NULL || first == NULL || last == NULL || next == NULL)
        log_fatal("span store batch memory exhausted");
    memset(tab, 0xff, (size_t)cap * sizeof(*tab));
    size_t n_groups = 0;
    for (uint32_t i = 0; i < n; i++) {
        const span_t *s = &spans[i];
        if ((s->trace_id_high == 0 && s->trace_id_low == 0) || s->id == 0)
            continue;
        next[i] = UINT32_MAX;
        uint64_t hi = key_hi(st, s->trace_id_high), lo = s->trace_id_low;
        uint32_t j = (uint32_t)trace_hash(st, hi, lo) & (cap - 1); /* keyed: a sender cannot choose collisions */
        for (;; j = (j + 1) & (cap - 1)) {
            uint32_t g = tab[j];
            if (g == UINT32_MAX) {
                tab[j] = (uint32_t)n_groups;
                first[n_groups] = last[n_groups] = i;
                n_groups++;
                break;
            }
            const span_t *f = &spans[first[g]];
            if (f->trace_id_low == lo && key_hi(st, f->trace_id_high) == hi) {
                next[last[g]] = i;
                last[g] = i;
                break;
            }
        }
    }
    *first_out = first;
    *next_out = next;
    return n_groups;
}

int span_store_insert(span_store_t *st, const span_t *spans, size_t n, uint64_t now_us)
{
    return span_store_insert_from(st, spans, n, now_us, 0);
}

int span_store_insert_from(span_store_t *st, const span_t *spans, size_t n, uint64_t now_us, uint16_t origin)
{
    int accepted = 0;
    pthread_rwlock_wrlock(&st->lock);
    for (size_t off = 0; off < n;) {
        /* chunks keep the grouping arrays' indexes in 32 bits */
        uint32_t chunk = n - off > 1u << 20 ? 1u << 20 : (uint32_t)(n - off);
        arena_reset(&st->batch);
        uint32_t *first, *next;
        size_t n_groups = batch_group(st, spans + off, chunk, &first, &next);
        for (size_t g = 0; g < n_groups; g++) {
            if (g + TAB_PREFETCH < n_groups) {
                const span_t *ahead = &spans[off + first[g + TAB_PREFETCH]];
                tab_prefetch(st, ahead->trace_id_high, ahead->trace_id_low);
            }
            accepted += insert_trace(st, spans + off, next, first[g], now_us, origin);
        }
        list_flush(st);
        off += chunk;
    }
    while (st->fifo_len > 0 &&
           ((st->max_spans && st->n_spans > st->max_spans) || (st->max_bytes && store_bytes(st) > st->max_bytes)))
        evict_oldest(st);
    deps_settle(st, now_us);
    arena_reset(&st->scratch);
    arena_reset(&st->batch);
    if (st->stage_cap > 65536) {
        free(st->stage);
        st->stage = NULL;
        st->stage_cap = 0;
    }
    pthread_rwlock_unlock(&st->lock);
    return accepted;
}

void span_store_stats(span_store_t *st, span_store_stats_t *out)
{
    pthread_rwlock_rdlock(&st->lock);
    out->spans = st->n_spans;
    out->traces = st->n_traces;
    out->bytes = store_bytes(st);
    out->evicted_spans = st->evicted_spans;
    out->evicted_traces = st->evicted_traces;
    out->services = st->services.len;
    pthread_rwlock_unlock(&st->lock);
}

/* ---- name listings ---- */

static int str_sort_cmp(const void *a, const void *b)
{
    return str_compare(*(const str_t *)a, *(const str_t *)b);
}

/* Copy the intern strings of the keys of m into arena, sorted. */
static int list_keys(const span_store_t *st, const u64map_t *m, arena_t *arena, str_t **names, size_t *n)
{
    *names = NULL;
    *n = 0;
    if (m == NULL || m->len == 0)
        return 0;
    str_t *v = arena_alloc(arena, (size_t)m->len * sizeof(*v));
    if (v == NULL)
        return -1;
    size_t k = 0;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].key == U64MAP_EMPTY)
            continue;
        str_t s = intern_str(st->strs, (uint32_t)m->slots[i].key);
        char *p = arena_alloc(arena, s.len ? s.len : 1);
        if (p == NULL)
            return -1;
        memcpy(p, s.ptr, s.len);
        v[k++] = (str_t){p, s.len};
    }
    qsort(v, k, sizeof(*v), str_sort_cmp);
    *names = v;
    *n = k;
    return 0;
}

int span_store_service_names(span_store_t *st, arena_t *arena, str_t **names, size_t *n)
{
    pthread_rwlock_rdlock(&st->lock);
    int rc = list_keys(st, &st->services, arena, names, n);
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

static int service_list(span_store_t *st, str_t service, int remote, arena_t *arena, str_t **names, size_t *n)
{
    *names = NULL;
    *n = 0;
    str_t svc = store_lower(arena, service);
    if (svc.len == 0)
        return svc.ptr == NULL && service.len ? -1 : 0;
    pthread_rwlock_rdlock(&st->lock);
    int rc = 0;
    uint32_t sid = intern_find(st->strs, svc.ptr, svc.len);
    service_t *s = sid == SID_NONE ? NULL : service_get(st, sid);
    if (s != NULL)
        rc = list_keys(st, remote ? &s->remotes : &s->names, arena, names, n);
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

int span_store_span_names(span_store_t *st, str_t service, arena_t *arena, str_t **names, size_t *n)
{
    return service_list(st, service, 0, arena, names, n);
}

int span_store_remote_service_names(span_store_t *st, str_t service, arena_t *arena, str_t **names, size_t *n)
{
    return service_list(st, service, 1, arena, names, n);
}

int span_store_autocomplete_keys(span_store_t *st, arena_t *arena, str_t **keys, size_t *n)
{
    *keys = NULL;
    *n = 0;
    if (st->n_ac == 0)
        return 0;
    pthread_rwlock_rdlock(&st->lock);
    int rc = -1;
    str_t *v = arena_alloc(arena, st->n_ac * sizeof(*v));
    if (v != NULL) {
        size_t i;
        for (i = 0; i < st->n_ac; i++) {
            str_t s = intern_str(st->strs, st->ac[i].sid);
            char *p = arena_strndup(arena, s.ptr, s.len);
            if (p == NULL)
                break;
            v[i] = (str_t){p, s.len};
        }
        if (i == st->n_ac) {
            qsort(v, st->n_ac, sizeof(*v), str_sort_cmp);
            *keys = v;
            *n = st->n_ac;
            rc = 0;
        }
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

int span_store_autocomplete_values(span_store_t *st, str_t key, arena_t *arena, str_t **values, size_t *n)
{
    *values = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&st->lock);
    int rc = 0;
    uint32_t sid = key.len ? intern_find(st->strs, key.ptr, key.len) : SID_NONE;
    for (size_t i = 0; sid != SID_NONE && i < st->n_ac; i++) {
        if (st->ac[i].sid == sid) {
            rc = list_keys(st, &st->ac[i].values, arena, values, n);
            break;
        }
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}
