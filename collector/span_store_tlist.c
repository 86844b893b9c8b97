/*
 * span_store_tlist: the time-ordered trace lists of the span store (one for
 * all traces, one per service), as B+trees keyed by (timestamp, trace
 * pointer).
 *
 * Why a tree. Traces arrive with timestamps anywhere in the last minutes
 * (sidecars flush late, clocks differ, a trace's root comes last), so an
 * insert lands at a random place in the order. The sorted array this
 * replaced moved half of the list on every such insert: cost grew with the
 * number of stored traces, and at 1.5M stored spans the memmove was 55% of
 * the collector's CPU. Here insert, remove and lookup are O(log n) with an
 * inner fan-out of 63 (five levels hold 15M traces), and the work per
 * operation is a binary search in each node on the path plus a memmove
 * within one leaf of at most 15 entries.
 *
 * Why small leaves. Once the lists outgrow the last-level cache an insert
 * misses on its leaf, and everything it touches there (the search, the
 * memmove of the keys after it) is cache lines fetched from memory. A
 * 15-key leaf is four lines of keys where a 63-key leaf was sixteen; the
 * inner levels it adds stay cached. Measured with the collector at 9M
 * stored spans (tests/bench/collector_fill_callgrind.sh): last-level read
 * misses per span 2.70 -> 2.24, instructions per span about the same
 * (docs/benchmarks.md).
 *
 * Layout. Leaves hold up to TL_LEAF keys (timestamp and pointer copied into
 * the leaf, so a search reads no trace) and are linked both ways, so a
 * query walks back from a timestamp without climbing the tree. Inner
 * nodes hold up to TL_FAN children and the smallest key of every child but
 * the first. A node other than the root keeps at least a quarter of its
 * capacity (a leaf a third): a removal that goes below merges the node
 * with a sibling when both fit in one, and otherwise evens the two out, so
 * memory stays within four times the entries even after random removals
 * (eviction removes the oldest entries, which empties whole leaves at the
 * left end).
 */
#include <string.h>

#include "log.h"
#include "span_store_internal.h"

#define TL_LEAF 15
#define TL_FAN 63
#define TL_LEAF_MIN (TL_LEAF / 3) /* 5: a small leaf carries its header and links on few keys */
#define TL_FAN_MIN (TL_FAN / 4)
#define TL_DEPTH_MAX 16

typedef struct tl_key {
    uint64_t ts;
    uintptr_t p;
} tl_key_t;

/*
 * Keys are kept as two arrays, timestamps and pointers: a search reads the
 * timestamps (of a node's lines, all asked for at once) and a
 * pointer only where timestamps are equal.
 */
struct tl_leaf {
    uint32_t n;
    struct tl_leaf *prev, *next;
    uint64_t ts[TL_LEAF];
    uintptr_t p[TL_LEAF];
};

typedef struct tl_inner {
    uint32_t n;              /* children */
    uint64_t ts[TL_FAN - 1]; /* key i - 1: the smallest key under c[i] (or a bound below it) */
    uintptr_t p[TL_FAN - 1];
    void *c[TL_FAN];
} tl_inner_t;

typedef struct tl_leaf tl_leaf_t;

static int key_lt(tl_key_t a, tl_key_t b)
{
    return a.ts < b.ts || (a.ts == b.ts && a.p < b.p);
}

static tl_key_t key_of(const trace_t *t)
{
    return (tl_key_t){t->ts, (uintptr_t)t};
}

static tl_key_t key_at(const uint64_t *ts, const uintptr_t *p, uint32_t i)
{
    return (tl_key_t){ts[i], p[i]};
}

static void key_put(uint64_t *ts, uintptr_t *p, uint32_t i, tl_key_t k)
{
    ts[i] = k.ts;
    p[i] = k.p;
}

/* Move n keys from position from to position to within one node's arrays. */
static void keys_move(uint64_t *ts, uintptr_t *p, uint32_t to, uint32_t from, uint32_t n)
{
    memmove(&ts[to], &ts[from], n * sizeof(*ts));
    memmove(&p[to], &p[from], n * sizeof(*p));
}

/* Copy n keys from src[from] to dst[to] (two nodes). */
static void keys_copy(uint64_t *dts, uintptr_t *dp, uint32_t to, const uint64_t *sts, const uintptr_t *sp,
                      uint32_t from, uint32_t n)
{
    memcpy(&dts[to], &sts[from], n * sizeof(*dts));
    memcpy(&dp[to], &sp[from], n * sizeof(*dp));
}

/* Ask for all of a node's timestamps at once: a binary search would otherwise miss on five lines in a row. */
static inline void prefetch_ts(const uint64_t *ts, uint32_t n)
{
    const char *p = (const char *)ts, *end = (const char *)(ts + n);
    for (; p < end; p += 64)
        __builtin_prefetch(p);
}

/* First position in the n keys whose key is not below key (n when none). */
static uint32_t keys_lower(const uint64_t *ts, const uintptr_t *p, uint32_t n, tl_key_t key)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ts[mid] < key.ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo < n && ts[lo] == key.ts && p[lo] < key.p)
        lo++;
    return lo;
}

/* Index of the child of in whose range holds key: the number of separators <= key. */
static uint32_t inner_child(const tl_inner_t *in, tl_key_t key)
{
    uint32_t n = in->n - 1, i = keys_lower(in->ts, in->p, n, key);
    return i < n && in->ts[i] == key.ts && in->p[i] == key.p ? i + 1 : i;
}

/* First position in leaf whose key is not below key. */
static uint32_t leaf_lower(const tl_leaf_t *lf, tl_key_t key)
{
    return keys_lower(lf->ts, lf->p, lf->n, key);
}

/* The leaf that holds key or would, and the path of inner nodes and child indexes above it. */
static tl_leaf_t *descend(const tlist_t *l, tl_key_t key, tl_inner_t **path, uint32_t *idx)
{
    void *node = l->root;
    for (uint32_t d = 0; d < l->height; d++) {
        tl_inner_t *in = node;
        prefetch_ts(in->ts, TL_FAN - 1); /* by address: reading n first would wait for the miss */
        uint32_t i = inner_child(in, key);
        if (path != NULL) {
            path[d] = in;
            idx[d] = i;
        }
        node = in->c[i];
    }
    prefetch_ts(((tl_leaf_t *)node)->ts, TL_LEAF);
    return node;
}

static void *node_alloc(size_t n, int64_t *acct)
{
    return store_alloc(n, acct);
}

void tlist_insert(tlist_t *l, trace_t *t, int64_t *acct)
{
    tl_key_t key = key_of(t);
    if (l->root == NULL) {
        tl_leaf_t *lf = node_alloc(sizeof(*lf), acct);
        lf->n = 1;
        lf->prev = lf->next = NULL;
        key_put(lf->ts, lf->p, 0, key);
        l->root = lf;
        l->height = 0;
        l->len = 1;
        return;
    }
    tl_inner_t *path[TL_DEPTH_MAX];
    uint32_t idx[TL_DEPTH_MAX];
    tl_leaf_t *lf = descend(l, key, path, idx);
    uint32_t pos = leaf_lower(lf, key);
    l->len++;
    if (lf->n < TL_LEAF) {
        keys_move(lf->ts, lf->p, pos + 1, pos, lf->n - pos);
        key_put(lf->ts, lf->p, pos, key);
        lf->n++;
        return;
    }
    /* split the full leaf: the lower half stays, the upper half moves to a new right sibling */
    tl_leaf_t *right = node_alloc(sizeof(*right), acct);
    uint32_t keep = (TL_LEAF + 1) / 2;
    if (pos < keep) {
        /* the new key goes left: the left's last keep - 1 .. move right first */
        right->n = TL_LEAF - (keep - 1);
        keys_copy(right->ts, right->p, 0, lf->ts, lf->p, keep - 1, right->n);
        keys_move(lf->ts, lf->p, pos + 1, pos, keep - 1 - pos);
        key_put(lf->ts, lf->p, pos, key);
    } else {
        right->n = TL_LEAF + 1 - keep;
        uint32_t before = pos - keep; /* keys of the right half that come before the new one */
        keys_copy(right->ts, right->p, 0, lf->ts, lf->p, keep, before);
        key_put(right->ts, right->p, before, key);
        keys_copy(right->ts, right->p, before + 1, lf->ts, lf->p, pos, TL_LEAF - pos);
    }
    lf->n = keep;
    right->prev = lf;
    right->next = lf->next;
    if (lf->next != NULL)
        lf->next->prev = right;
    lf->next = right;

    /* hand (separator, right) up until a node has room */
    tl_key_t sep = key_at(right->ts, right->p, 0);
    void *new_child = right;
    for (uint32_t d = l->height; d-- > 0;) {
        tl_inner_t *in = path[d];
        uint32_t at = idx[d] + 1; /* new_child goes right after the child that split */
        if (in->n < TL_FAN) {
            memmove(&in->c[at + 1], &in->c[at], (in->n - at) * sizeof(void *));
            keys_move(in->ts, in->p, at, at - 1, in->n - at);
            in->c[at] = new_child;
            key_put(in->ts, in->p, at - 1, sep);
            in->n++;
            return;
        }
        /* TL_FAN + 1 children and TL_FAN keys in scratch arrays, then split in two */
        void *cs[TL_FAN + 1];
        uint64_t kts[TL_FAN];
        uintptr_t kp[TL_FAN];
        memcpy(cs, in->c, at * sizeof(void *));
        cs[at] = new_child;
        memcpy(&cs[at + 1], &in->c[at], (TL_FAN - at) * sizeof(void *));
        keys_copy(kts, kp, 0, in->ts, in->p, 0, at - 1);
        key_put(kts, kp, at - 1, sep);
        keys_copy(kts, kp, at, in->ts, in->p, at - 1, TL_FAN - at);
        /* the left keeps lc children, the right gets the rest; key lc - 1 moves up */
        uint32_t lc = (TL_FAN + 1) / 2;
        tl_inner_t *rin = node_alloc(sizeof(*rin), acct);
        in->n = lc;
        memcpy(in->c, cs, lc * sizeof(void *));
        keys_copy(in->ts, in->p, 0, kts, kp, 0, lc - 1);
        rin->n = TL_FAN + 1 - lc;
        memcpy(rin->c, &cs[lc], rin->n * sizeof(void *));
        keys_copy(rin->ts, rin->p, 0, kts, kp, lc, rin->n - 1);
        sep = key_at(kts, kp, lc - 1);
        new_child = rin;
    }
    /* the root split: a new root above the two halves */
    if (l->height + 1 >= TL_DEPTH_MAX)
        log_fatal("trace time index deeper than %d levels", TL_DEPTH_MAX);
    tl_inner_t *root = node_alloc(sizeof(*root), acct);
    root->n = 2;
    root->c[0] = l->root;
    root->c[1] = new_child;
    key_put(root->ts, root->p, 0, sep);
    l->root = root;
    l->height++;
}

void tlist_prefetch(const tlist_t *l, const trace_t *t)
{
    if (l->root == NULL)
        return;
    /* the pointers too: the insert moves the keys after its position */
    const tl_leaf_t *lf = descend(l, key_of(t), NULL, NULL);
    prefetch_ts((const uint64_t *)lf->p, TL_LEAF);
}

int tlist_contains(const tlist_t *l, const trace_t *t)
{
    if (l->root == NULL)
        return 0;
    tl_key_t key = key_of(t);
    const tl_leaf_t *lf = descend(l, key, NULL, NULL);
    uint32_t pos = leaf_lower(lf, key);
    return pos < lf->n && lf->p[pos] == key.p && lf->ts[pos] == key.ts;
}

/* Child i of in has too few entries: merge it with a sibling or even the two out. Returns 1 if a child was removed. */
static int fix_leaf(tl_inner_t *in, uint32_t i, int64_t *acct)
{
    uint32_t li = i > 0 ? i - 1 : i; /* left of the pair */
    tl_leaf_t *a = in->c[li], *b = in->c[li + 1];
    if (a->n + b->n <= TL_LEAF) {
        keys_copy(a->ts, a->p, a->n, b->ts, b->p, 0, b->n);
        a->n += b->n;
        a->next = b->next;
        if (b->next != NULL)
            b->next->prev = a;
        store_free(b, sizeof(*b), acct);
        memmove(&in->c[li + 1], &in->c[li + 2], (in->n - li - 2) * sizeof(void *));
        keys_move(in->ts, in->p, li, li + 1, in->n - li - 2);
        in->n--;
        return 1;
    }
    uint32_t total = a->n + b->n, na = total / 2;
    if (a->n > na) { /* move a's tail to the front of b */
        uint32_t m = a->n - na;
        keys_move(b->ts, b->p, m, 0, b->n);
        keys_copy(b->ts, b->p, 0, a->ts, a->p, na, m);
        a->n = na;
        b->n += m;
    } else if (a->n < na) { /* move b's head to the end of a */
        uint32_t m = na - a->n;
        keys_copy(a->ts, a->p, a->n, b->ts, b->p, 0, m);
        keys_move(b->ts, b->p, 0, m, b->n - m);
        a->n = na;
        b->n -= m;
    }
    key_put(in->ts, in->p, li, key_at(b->ts, b->p, 0));
    return 0;
}

/* The same for inner children: the separator between them comes down and goes back up. */
static int fix_inner(tl_inner_t *in, uint32_t i, int64_t *acct)
{
    uint32_t li = i > 0 ? i - 1 : i;
    tl_inner_t *a = in->c[li], *b = in->c[li + 1];
    tl_key_t sep = key_at(in->ts, in->p, li);
    if (a->n + b->n <= TL_FAN) {
        key_put(a->ts, a->p, a->n - 1, sep);
        keys_copy(a->ts, a->p, a->n, b->ts, b->p, 0, b->n - 1);
        memcpy(&a->c[a->n], b->c, b->n * sizeof(void *));
        a->n += b->n;
        store_free(b, sizeof(*b), acct);
        memmove(&in->c[li + 1], &in->c[li + 2], (in->n - li - 2) * sizeof(void *));
        keys_move(in->ts, in->p, li, li + 1, in->n - li - 2);
        in->n--;
        return 1;
    }
    uint32_t total = a->n + b->n, na = total / 2;
    if (a->n > na) { /* a's last children go to the front of b */
        uint32_t m = a->n - na;
        memmove(&b->c[m], b->c, b->n * sizeof(void *));
        keys_move(b->ts, b->p, m, 0, b->n - 1);
        memcpy(b->c, &a->c[na], m * sizeof(void *));
        key_put(b->ts, b->p, m - 1, sep);
        keys_copy(b->ts, b->p, 0, a->ts, a->p, na, m - 1);
        key_put(in->ts, in->p, li, key_at(a->ts, a->p, na - 1));
        a->n = na;
        b->n += m;
    } else if (a->n < na) { /* b's first children go to the end of a */
        uint32_t m = na - a->n;
        key_put(a->ts, a->p, a->n - 1, sep);
        keys_copy(a->ts, a->p, a->n, b->ts, b->p, 0, m - 1);
        memcpy(&a->c[a->n], b->c, m * sizeof(void *));
        key_put(in->ts, in->p, li, key_at(b->ts, b->p, m - 1));
        memmove(b->c, &b->c[m], (b->n - m) * sizeof(void *));
        keys_move(b->ts, b->p, 0, m, b->n - m - 1);
        a->n = na;
        b->n -= m;
    }
    return 0;
}

void tlist_remove(tlist_t *l, trace_t *t, int64_t *acct)
{
    if (l->root == NULL)
        return;
    tl_key_t key = key_of(t);
    tl_inner_t *path[TL_DEPTH_MAX];
    uint32_t idx[TL_DEPTH_MAX];
    tl_leaf_t *lf = descend(l, key, path, idx);
    uint32_t pos = leaf_lower(lf, key);
    if (pos >= lf->n || lf->p[pos] != key.p || lf->ts[pos] != key.ts)
        return;
    keys_move(lf->ts, lf->p, pos, pos + 1, lf->n - pos - 1);
    lf->n--;
    l->len--;
    if (l->height == 0) {
        if (lf->n == 0) {
            store_free(lf, sizeof(*lf), acct);
            l->root = NULL;
        }
        return;
    }
    if (lf->n >= TL_LEAF_MIN)
        return;
    uint32_t d = l->height - 1;
    if (!fix_leaf(path[d], idx[d], acct))
        return;
    /* a child left path[d]: climb while inner nodes run short */
    while (d > 0 && path[d]->n < TL_FAN_MIN) {
        d--;
        if (!fix_inner(path[d], idx[d], acct))
            return;
    }
    if (d == 0 && path[0]->n == 1) {
        tl_inner_t *root = path[0];
        l->root = root->c[0];
        l->height--;
        store_free(root, sizeof(*root), acct);
    }
}

static void free_node(void *node, uint32_t height, int64_t *acct)
{
    if (height == 0) {
        store_free(node, sizeof(tl_leaf_t), acct);
        return;
    }
    tl_inner_t *in = node;
    for (uint32_t i = 0; i < in->n; i++)
        free_node(in->c[i], height - 1, acct);
    store_free(in, sizeof(*in), acct);
}

void tlist_dispose(tlist_t *l, int64_t *acct)
{
    if (l->root != NULL)
        free_node(l->root, l->height, acct);
    memset(l, 0, sizeof(*l));
}

void tlist_seek(const tlist_t *l, uint64_t ts_us, tlist_iter_t *it)
{
    it->leaf = NULL;
    it->pos = 0;
    if (l->root == NULL)
        return;
    tl_key_t key = {ts_us, UINTPTR_MAX};
    tl_leaf_t *lf = descend(l, key, NULL, NULL);
    uint32_t pos = leaf_lower(lf, key); /* entries before pos are <= ts_us */
    while (pos == 0) {
        lf = lf->prev;
        if (lf == NULL)
            return;
        pos = lf->n;
    }
    it->leaf = lf;
    it->pos = pos;
}

struct trace *tlist_prev(tlist_iter_t *it)
{
    while (it->leaf != NULL && it->pos == 0) {
        it->leaf = it->leaf->prev;
        it->pos = it->leaf ? it->leaf->n : 0;
    }
    if (it->leaf == NULL)
        return NULL;
    return (struct trace *)it->leaf->p[--it->pos];
}

int tlist_check(const tlist_t *l)
{
    /* walk the leaves in order: keys ascending, links consistent, count equal to len */
    if (l->root == NULL)
        return l->len == 0 ? 0 : -1;
    const void *node = l->root;
    for (uint32_t d = 0; d < l->height; d++)
        node = ((const tl_inner_t *)node)->c[0];
    const tl_leaf_t *lf = node, *prev = NULL;
    uint64_t count = 0;
    tl_key_t last = {0, 0};
    for (; lf != NULL; prev = lf, lf = lf->next) {
        if (lf->prev != prev || lf->n == 0 || lf->n > TL_LEAF)
            return -1;
        if (lf != l->root && lf->n < TL_LEAF_MIN)
            return -1;
        for (uint32_t i = 0; i < lf->n; i++) {
            tl_key_t k = key_at(lf->ts, lf->p, i);
            if (count > 0 && !key_lt(last, k))
                return -1;
            last = k;
            count++;
        }
    }
    return count == l->len ? 0 : -1;
}

/* Max-heap order of the merge's heads: newer (then higher pointer) first. */
static int head_above(const tlist_merge_t *m, uint32_t a, uint32_t b)
{
    const struct trace *x = m->heads[a], *y = m->heads[b];
    return key_lt(key_of(y), key_of(x));
}

static void heap_down(tlist_merge_t *m, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < m->n && head_above(m, m->heap[l], m->heap[top]))
            top = l;
        if (r < m->n && head_above(m, m->heap[r], m->heap[top]))
            top = r;
        if (top == i)
            return;
        uint32_t tmp = m->heap[i];
        m->heap[i] = m->heap[top];
        m->heap[top] = tmp;
        i = top;
    }
}

int tlist_merge_init(tlist_merge_t *m, const tlist_t *const *lists, uint32_t n, uint64_t ts_us, arena_t *arena)
{
    memset(m, 0, sizeof(*m));
    if (n == 0)
        return 0;
    m->its = arena_alloc(arena, n * sizeof(*m->its));
    m->heads = arena_alloc(arena, n * sizeof(*m->heads));
    m->heap = arena_alloc(arena, n * sizeof(*m->heap));
    if (m->its == NULL || m->heads == NULL || m->heap == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        tlist_seek(lists[i], ts_us, &m->its[i]);
        m->heads[i] = tlist_prev(&m->its[i]);
        if (m->heads[i] != NULL)
            m->heap[m->n++] = i;
    }
    for (uint32_t i = m->n / 2; i-- > 0;)
        heap_down(m, i);
    return 0;
}

struct trace *tlist_merge_prev(tlist_merge_t *m)
{
    while (m->n > 0) {
        uint32_t top = m->heap[0];
        struct trace *t = m->heads[top];
        m->heads[top] = tlist_prev(&m->its[top]);
        if (m->heads[top] == NULL)
            m->heap[0] = m->heap[--m->n];
        heap_down(m, 0);
        /* a trace in several lists comes out of each in turn, one after the other */
        if (t != m->last) {
            m->last = t;
            return t;
        }
    }
    return NULL;
}
