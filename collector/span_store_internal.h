/*
 * span_store_internal: types and helpers shared by the span_store_*.c files
 * (not a public API; include span_store.h instead).
 *
 * Layout. Each trace is one trace_t plus one blob (from the store's blob
 * heap, see below) holding its spans back to back, each encoded as
 *
 *   varint body_len
 *   u64    span id (little endian)
 *   u8     f1: kind (bits 0-2), debug, shared, has_parent, has_ts, has_duration
 *   u8     f2: has_local, has_remote, has_name, has_hi
 *   [endpoint local]  u8 flags (svc, ipv4, ipv6, port), varint svc id, 4, 16, u16
 *   [u64 parent] [u64 trace id high when it differs from the trace's]
 *   [varint name id] [zigzag varint ts - trace base_ts] [varint duration]
 *   [endpoint remote]
 *   varint n_annotations, each: zigzag varint ts - base_ts, varint len, bytes
 *   varint n_tags, each: varint key id, varint len, bytes
 *
 * Names, service names and tag keys are intern ids; tag and annotation
 * values are inline. Each trace also keeps a filter of its span ids (a
 * 64-bit bloom in the trace, a fingerprint table once the trace is big) so
 * an insert scans the blob for a merge candidate only when one may exist. Traces are found through an open-addressing
 * hash on the trace id, evicted in arrival order from a FIFO ring, and listed in time order per service (and globally)
 * in sorted arrays of trace pointers.
 */
#ifndef OUTRIDER_SPAN_STORE_INTERNAL_H
#define OUTRIDER_SPAN_STORE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "intern.h"
#include "span.h"
#include "span_store.h"

#define SID_NONE INTERN_NONE

/* ---- u64 -> u64 map (open addressing, backward-shift delete) ---- */

typedef struct u64map_slot {
    uint64_t key; /* U64MAP_EMPTY when free */
    uint64_t val;
} u64map_slot_t;

#define U64MAP_EMPTY UINT64_MAX

typedef struct u64map {
    u64map_slot_t *slots;
    uint32_t mask; /* capacity - 1; slots NULL when empty */
    uint32_t len;
} u64map_t;

/* Value slot of key, or NULL. */
uint64_t *u64map_get(const u64map_t *m, uint64_t key);
/* Value slot of key, created as 0 when absent. acct tracks allocated bytes. */
uint64_t *u64map_put(u64map_t *m, uint64_t key, int64_t *acct);
/* Remove key when present. */
void u64map_del(u64map_t *m, uint64_t key, int64_t *acct);
void u64map_dispose(u64map_t *m, int64_t *acct);

/* ---- time-ordered list of traces (span_store_tlist.c: a B+tree on (ts, pointer)) ---- */

struct trace;
struct tl_leaf;

typedef struct tlist {
    void *root;      /* NULL when empty */
    uint32_t len;    /* entries */
    uint32_t height; /* inner levels above the leaves */
} tlist_t;

/* A position for walking a list from newer to older entries. */
typedef struct tlist_iter {
    struct tl_leaf *leaf; /* NULL when done */
    uint32_t pos;         /* entries of leaf before this position are still to come */
} tlist_iter_t;

/* Insert t under its current t->ts (O(log n)); t must not be listed already. */
void tlist_insert(tlist_t *l, struct trace *t, int64_t *acct);
/* Whether t is listed (under its current t->ts). */
int tlist_contains(const tlist_t *l, const struct trace *t);
/* Remove t, which must be listed with its current t->ts; no-op when absent. */
void tlist_remove(tlist_t *l, struct trace *t, int64_t *acct);
void tlist_dispose(tlist_t *l, int64_t *acct);
/* Position it just after the last entry with ts <= ts_us; tlist_prev then returns it and older ones. */
void tlist_seek(const tlist_t *l, uint64_t ts_us, tlist_iter_t *it);
/* The entry before the position (moving it back), or NULL at the start. */
struct trace *tlist_prev(tlist_iter_t *it);
/*
 * Several lists walked as one, newest first, each trace once (a trace in
 * several lists comes out once): for queries over every service. Memory
 * comes from arena; 0, or -1 when it is exhausted.
 */
typedef struct tlist_merge {
    tlist_iter_t *its;
    struct trace **heads; /* next entry of each list, NULL when it is done */
    uint32_t *heap;       /* lists with a head, newest head first */
    uint32_t n;
    struct trace *last;
} tlist_merge_t;
int tlist_merge_init(tlist_merge_t *m, const tlist_t *const *lists, uint32_t n, uint64_t ts_us, arena_t *arena);
/* The next trace (older than or as old as the last one), or NULL when every list is done. */
struct trace *tlist_merge_prev(tlist_merge_t *m);
/* Ask for the cache lines of the leaf where t would go (a hint: nothing changes). */
void tlist_prefetch(const tlist_t *l, const struct trace *t);
/* Tests: 0 when the entries are in order, linked and counted and nodes are full enough; -1 otherwise. */
int tlist_check(const tlist_t *l);

/*
 * Trace blobs come from size classes carved out of 2 MiB chunks (asked to
 * be backed by transparent huge pages: one page fault per chunk instead of
 * one per 4 KiB as the store grows), with a free list per class so memory
 * freed by eviction is reused by later blobs. Blobs above BLOB_MAX use
 * malloc. Accounting: a blob counts its class size; a chunk's unusable
 * tail counts once the chunk is full; free-listed blocks are not counted
 * (as glibc's free chunks were not), so eviction always lowers the total.
 */
#define BLOB_MAX 32768
#define BLOB_CLASSES 192

typedef struct blob_heap {
    void *free[BLOB_CLASSES]; /* free blocks per class, linked through their first bytes */
    uint8_t *cur, *end;       /* unused part of the current chunk */
    void **chunks;
    size_t n_chunks, cap_chunks;
    uint8_t *pool, *pool_cur, *pool_end; /* pre-touched chunks (blob_heap_pretouch), handed out first */
} blob_heap_t;

/* ---- stored objects ---- */

typedef struct dep_rec {
    uint32_t parent; /* intern ids */
    uint32_t child;
    uint32_t calls;
    uint32_t errors;
} dep_rec_t;

/* The links a trace currently contributes, and the bucket they were added to. */
typedef struct trace_links {
    uint32_t n;
    uint32_t bucket;
    dep_rec_t v[];
} trace_links_t;

static inline size_t trace_links_size(uint32_t n)
{
    return sizeof(trace_links_t) + (size_t)n * sizeof(dep_rec_t);
}

typedef struct trace {
    uint64_t id_hi; /* of the first span; the hash key uses 0 when ids are not strict */
    uint64_t id_lo;
    uint64_t ts;      /* trace timestamp in µs (QueryRequest.test); 0 = none */
    uint64_t base_ts; /* span timestamps are stored relative to this */
    uint8_t *blob;
    uint64_t ids;         /* span id filter: a 64-bit bloom, or with big_ids a span_idset pointer */
    trace_links_t *links; /* links currently applied to the dependency buckets; NULL = none */
    uint32_t blob_len;
    uint32_t n_spans;
    uint32_t dirty_pos; /* position in the dirty ring when dirty */
    uint8_t dirty;
    uint8_t ts_root;    /* ts is a root span's, so later spans cannot change it */
    uint8_t big_ids;    /* ids is a span_idset pointer (traces past a few dozen spans) */
    uint8_t linked_now; /* links were computed at the end of a batch (done at most once per trace) */
    uint16_t origin;    /* where it was read from (span_store_insert_from), 0 = anywhere else */
} trace_t;

typedef struct service {
    uint32_t sid;
    uint32_t n_spans; /* stored spans with this local service */
    tlist_t traces;   /* traces with a timestamp holding such spans */
    u64map_t names;   /* span name id -> span count */
    u64map_t remotes; /* remote service id -> span count */
} service_t;

typedef struct ac_key {
    uint32_t sid;
    u64map_t values;   /* value id -> span count; each entry holds one reference on the value */
    uint32_t last_vid; /* id of the last value indexed (SID_NONE: none), a cache for the next span */
    uint32_t last_len;
    char last[24];
} ac_key_t;

/*
 * Output order of a tag list, by its key ids in arrival order: spans of one
 * source carry the same keys in the same order, so the sort by key (and
 * the drop of duplicate keys) is done once per distinct key sequence.
 */
#define TAG_ORDER_MAX 64 /* longer tag lists are sorted by string each time (a sidecar's span has about 35) */
#define TAG_ORDERS 4

typedef struct tag_order {
    uint32_t n;                  /* tags in; 0 = unused slot */
    uint32_t n_out;              /* after dropping earlier duplicates of a key */
    uint32_t ids[TAG_ORDER_MAX]; /* key ids in arrival order, each holding one reference */
    uint8_t perm[TAG_ORDER_MAX]; /* arrival positions in output (key) order */
    uint64_t kept;               /* bit i: position i is in perm (TAG_ORDER_MAX <= 64) */
} tag_order_t;
_Static_assert(TAG_ORDER_MAX <= 64, "tag_order_t.kept is a 64-bit mask");

typedef struct dirty_ent {
    trace_t *t; /* NULL when the trace was evicted */
    uint64_t since_us;
} dirty_ent_t;

/* The table of traces by id (span_store_tab.c). */
typedef struct trace_tab {
    uint64_t *slots; /* tagged trace pointers, 0 = empty */
    uint32_t *hs;    /* each slot's low 32 hash bits (the same allocation, after slots) */
    uint32_t mask;   /* capacity - 1 */
    uint64_t *old;   /* the table being moved from during a resize, or NULL */
    uint32_t *old_hs;
    uint32_t old_mask;
    uint64_t old_pos; /* slots of old below this have moved */
    uint64_t key;     /* random per store: keys the hash */
} trace_tab_t;

typedef struct pend_insert {
    tlist_t *l;
    struct trace *t;
} pend_insert_t;

struct span_store {
    pthread_rwlock_t lock;
    size_t max_spans;
    size_t max_bytes;
    uint32_t max_trace_spans;
    int strict;
    uint32_t bucket_ms;
    uint64_t settle_us;

    intern_t *strs;
    int64_t bytes; /* own allocations, intern table excluded */

    trace_tab_t tab;
    uint64_t n_traces;

    trace_t **fifo; /* arrival order ring */
    size_t fifo_cap, fifo_head, fifo_len;

    tlist_t unnamed;   /* traces with a timestamp and a span without a local service */
    u64map_t services; /* service id -> service_t* */

    ac_key_t *ac;
    size_t n_ac;
    uint64_t ac_bits; /* bit (sid & 63) set for each autocomplete key: most tags skip the search */

    u64map_t buckets; /* bucket number -> dep_bucket_t* */
    dirty_ent_t *dirty;
    uint32_t dirty_cap;              /* power of two */
    uint32_t dirty_head, dirty_tail; /* free-running positions */

    uint64_t n_spans, evicted_spans, evicted_traces;

    arena_t scratch; /* write-locked work memory, reset per operation */
    arena_t batch;   /* write-locked work memory of one insert call */
    uint8_t *enc;
    size_t enc_cap;
    /* intern ids of the previous span's strings, tried first (intern_acquire_hint, _lower) */
    uint32_t hint_lsvc, hint_rsvc, hint_name;
    uint32_t hint_tag[TAG_ORDER_MAX]; /* by tag position */
    tag_order_t tag_orders[TAG_ORDERS];
    uint32_t tag_order_next; /* slot replaced next */
    uint8_t *stage;          /* records of one trace appended by the current batch, not yet in its blob */
    size_t stage_len, stage_cap;
    blob_heap_t blobs;
    pend_insert_t *pend; /* list inserts of the batch being inserted (span_store.c list_insert) */
    size_t pend_len, pend_cap;
    uint8_t deps_generic; /* tests: always use the general tree builder for dependency links */
};

/* ---- decoded span record (ids, pointers into the blob) ---- */

typedef struct ep_rec {
    uint8_t present;
    uint8_t has_ipv4, has_ipv6;
    uint32_t svc; /* SID_NONE when absent */
    uint8_t ipv4[4];
    uint8_t ipv6[16];
    uint16_t port;
} ep_rec_t;

typedef struct srec {
    const uint8_t *start; /* first byte of the length varint */
    const uint8_t *next;  /* first byte after this span */
    uint64_t id, parent, hi;
    uint64_t ts, duration; /* absolute; 0 = absent */
    uint8_t kind, debug, shared;
    uint8_t error; /* has a tag with the key "error" */
    uint32_t name;
    ep_rec_t local, remote;
    uint32_t n_ann, n_tags;
    const uint8_t *ann;  /* first annotation */
    const uint8_t *tags; /* first tag */
} srec_t;

/* Varint and record helpers. */
static inline const uint8_t *rd_varint(const uint8_t *p, uint64_t *v)
{
    uint64_t r = 0;
    int s = 0;
    while (*p & 0x80) {
        r |= (uint64_t)(*p++ & 0x7f) << s;
        s += 7;
    }
    *v = r | ((uint64_t)*p++ << s);
    return p;
}

/* Decode the span at p in t's blob. */
void srec_decode(const trace_t *t, const uint8_t *p, srec_t *r);

/* Decode only start, next, id, kind, debug, shared, error and local of the span at p. */
void srec_head(const uint8_t *p, srec_t *r);

/* Read one tag at p: key id and value slice; returns the next position. */
const uint8_t *srec_tag(const uint8_t *p, uint32_t *key, str_t *value);
/* Read one annotation at p; returns the next position. */
const uint8_t *srec_ann(const trace_t *t, const uint8_t *p, uint64_t *ts, str_t *value);

/*
 * Decode r into out; arrays come from arena. With copy, every string
 * (interned or inline) is copied into arena too; without, strings point
 * into the intern table and the blob. Returns 0, or -1 when the arena is
 * exhausted.
 */
int srec_to_span(const span_store_t *st, const trace_t *t, const srec_t *r, arena_t *arena, int copy, span_t *out);

/* What span_encode interned, and where the tags start in st->enc. */
typedef struct enc_info {
    uint32_t lsvc, rsvc, name; /* SID_NONE when absent */
    uint32_t n_tags;
    size_t tags_off;
} enc_info_t;

/*
 * Encode s for trace t into st->enc, taking intern references for its
 * names; returns the body length (without the length prefix). s must be
 * normalised at least by span_normalize_head: names are lower-cased and
 * tags sorted by key (the last of a duplicate key winning) here. Uses
 * st->scratch. info may be NULL.
 */
size_t span_encode(span_store_t *st, const trace_t *t, const span_t *s, enc_info_t *info);

/* Drop the intern references the encoded span r holds. */
void srec_release(span_store_t *st, const srec_t *r);

/*
 * Normalise in as Zipkin's span builder does (lower-case names, drop a
 * self-parent, shared only on non-CLIENT, empty endpoints absent, tags
 * sorted by key with the last duplicate winning, annotations sorted and
 * de-duplicated) into out, using arena for copies. 0, or -1 on exhaustion.
 */
int span_normalize(arena_t *arena, const span_t *in, span_t *out);

/*
 * The part of span_normalize that span_encode does not redo: everything
 * but lower-casing names and sorting tags. 0, or -1 on exhaustion.
 */
int span_normalize_head(arena_t *arena, const span_t *in, span_t *out);

/* Merge source into base like zipkin2.Span.Builder.merge; out uses arena. 0 or -1. */
int span_merge(arena_t *arena, const span_t *base, const span_t *source, span_t *out);

/*
 * Whether a stored local endpoint and an incoming one (b, absent when
 * !b_present, service id b_svc) may be the same host: no field set on both
 * sides differs (Trace.merge's EndpointTracker).
 */
int ep_rec_compatible(const ep_rec_t *a, int b_present, const span_endpoint_t *b, uint32_t b_svc);

/* Decode all spans of t into arena. 0, or -1 on arena exhaustion. */
int trace_to_spans(const span_store_t *st, const trace_t *t, arena_t *arena, span_trace_t *out);

/* ---- the trace table (span_store_tab.c) ---- */

/* The trace id's high half as the trace table and the batch grouping key it (ignored when ids are not strict). */
static inline uint64_t key_hi(const span_store_t *st, uint64_t hi)
{
    return st->strict ? hi : 0;
}

/*
 * The id's hash (hi already through key_hi): a multiply-xorshift mix keyed
 * with a random value per store, so ids chosen to collide in one process
 * do not in another. (XXH3 cost three times as much and is not keyed.)
 */
static inline uint64_t trace_hash(const span_store_t *st, uint64_t hi, uint64_t lo)
{
    uint64_t k = (lo ^ st->tab.key) * 0x9E3779B97F4A7C15ULL ^ (hi + st->tab.key) * 0xC2B2AE3D27D4EB4FULL;
    k ^= k >> 32;
    k *= 0xD6E8FEB86659FD93ULL;
    k ^= k >> 29;
    return k;
}

void tab_init(span_store_t *st);
void tab_dispose(span_store_t *st);
/* Find a trace by id (hi ignored when ids are not strict). */
trace_t *store_find_trace(const span_store_t *st, uint64_t hi, uint64_t lo);
/* Ask for the slot where the trace with this id is or would go (a hint). */
void tab_prefetch(const span_store_t *st, uint64_t trace_id_high, uint64_t trace_id_low);
/* Add t (not in the table; st->n_traces does not count it yet). Grows the table when due. */
void tab_add(span_store_t *st, trace_t *t);
/* Remove t (st->n_traces no longer counts it). Shrinks the table when due. */
void tab_del(span_store_t *st, trace_t *t);

/* Glibc chunk cost of malloc(n). */
static inline size_t store_chunk(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

/* Allocation helpers that abort on out of memory and keep *acct. */
void *store_alloc(size_t n, int64_t *acct);
void *store_realloc(void *p, size_t old_n, size_t n, int64_t *acct);
void store_free(void *p, size_t n, int64_t *acct);

/*
 * Zeroed memory for a large array (tables, rings): from 2 MiB on, its own
 * mapping asked to be backed by transparent huge pages (one fault per
 * 2 MiB as it is first written), below that calloc. Free with
 * store_big_free and the same n. Aborts on out of memory.
 */
void *store_big_alloc(size_t n, int64_t *acct);
void store_big_free(void *p, size_t n, int64_t *acct);

/* Memory for a blob of n bytes (n > 0). Aborts on out of memory. */
void *blob_alloc(blob_heap_t *h, size_t n, int64_t *acct);
/* Resize p (NULL = new) from old_n to n bytes, keeping the first min(old_n, n) bytes; may return p. */
void *blob_realloc(blob_heap_t *h, void *p, size_t old_n, size_t n, int64_t *acct);
/* Free p, a blob of n bytes; NULL is a no-op. */
void blob_free(blob_heap_t *h, void *p, size_t n, int64_t *acct);
/* Map about `bytes` of memory for h's future chunks and write every page of it now, so that later chunks
 * do not pay the kernel's first-touch cost (zeroing fresh pages) on the ingest path. Returns the bytes mapped. */
size_t blob_heap_pretouch(blob_heap_t *h, size_t bytes);
/* Release every chunk (blobs above BLOB_MAX must be freed first). */
void blob_heap_dispose(blob_heap_t *h);

/* s lowercased as Zipkin does (utf8_lower), copied into arena only when that changes it; NULL ptr on exhaustion. */
str_t store_lower(arena_t *arena, str_t s);

/* ---- dependency links (span_store_deps.c) ---- */

/* Mark t changed: its links are recomputed later. */
void deps_mark_dirty(span_store_t *st, trace_t *t, uint64_t now_us);
/*
 * t changed in the batch being inserted. A trace that has its root span is
 * probably complete: its links are computed now, while its spans are in
 * cache, the first time this happens; otherwise (and for later changes) t
 * is marked dirty.
 */
void deps_batch_done(span_store_t *st, trace_t *t, uint64_t now_us);
/* Recompute the links of traces dirty since before now_us - settle (all when now_us == 0). */
void deps_settle(span_store_t *st, uint64_t now_us);
/* Withdraw t's links before it is evicted. */
void deps_forget(span_store_t *st, trace_t *t);
/* Free every bucket. */
void deps_dispose(span_store_t *st);

#endif
