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
 * the collector's CPU. Here insert, remove and lookup are O(log n) with a
 * fan-out of 63 (four levels hold 15M traces), and the work per operation
 * is a binary search in each node on the path plus a memmove within one
 * leaf of at most 63 entries.
 *
 * Layout. Leaves hold up to TL_LEAF keys (timestamp and pointer copied into
 * the leaf, so a search reads no trace) and are linked both ways, so a
 * query walks back from a timestamp without climbing the tree. Inner
 * nodes hold up to TL_FAN children and the smallest key of every child but
 * the first. A node other than the root keeps at least a quarter of its
 * capacity: a removal that goes below merges the node with a sibling when
 * both fit in one, and otherwise evens the two out, so memory stays within
 * four times the entries even after random removals (eviction removes the
 * oldest entries, which empties whole leaves at the left end).
 */
#include <string.h>

#include "log.h"
#include "span_store_internal.h"

#define TL_LEAF 63
#define TL_FAN 63
#define TL_LEAF_MIN (TL_LEAF / 4)
#define TL_FAN_MIN (TL_FAN / 4)
#define TL_DEPTH_MAX 16

typedef struct tl_key {
    uint64_t ts;
    uintptr_t p;
} tl_key_t;

struct tl_leaf {
    uint32_t n;
    struct tl_leaf *prev, *next;
    tl_key_t k[TL_LEAF];
};

typedef struct tl_inner {
    uint32_t n;             /* children */
    tl_key_t k[TL_FAN - 1]; /* k[i - 1]: the smallest key under c[i] (or a bound below it) */
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

/* Index of the child of in whose range holds key: the number of separators <= key. */
static uint32_t inner_child(const tl_inner_t *in, tl_key_t key)
{
    uint32_t lo = 0, hi = in->n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (key_lt(key, in->k[mid]))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* First position in leaf whose key is not below key. */
static uint32_t leaf_lower(const tl_leaf_t *lf, tl_key_t key)
{
    uint32_t lo = 0, hi = lf->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (key_lt(lf->k[mid], key))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The leaf that holds key or would, and the path of inner nodes and child indexes above it. */
/*
 * Ask for every cache line of a leaf's keys at once (tlist_prefetch): a
 * binary search touches five or six of them one after another, and a leaf
 * that is not in the cache then costs that many misses in a row.
 */
static inline void prefetch_keys(const tl_key_t *k, uint32_t n)
{
    const char *p = (const char *)k, *end = (const char *)(k + n);
    for (; p < end; p += 64)
        __builtin_prefetch(p);
}

static tl_leaf_t *descend(const tlist_t *l, tl_key_t key, tl_inner_t **path, uint32_t *idx)
{
    void *node = l->root;
    for (uint32_t d = 0; d < l->height; d++) {
        tl_inner_t *in = node;
        uint32_t i = inner_child(in, key);
        if (path != NULL) {
            path[d] = in;
            idx[d] = i;
        }
        node = in->c[i];
    }
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
        lf->k[0] = key;
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
        memmove(&lf->k[pos + 1], &lf->k[pos], (lf->n - pos) * sizeof(tl_key_t));
        lf->k[pos] = key;
        lf->n++;
        return;
    }
    /* split the full leaf: the lower half stays, the upper half moves to a new right sibling */
    tl_leaf_t *right = node_alloc(sizeof(*right), acct);
    tl_key_t all[TL_LEAF + 1];
    memcpy(all, lf->k, pos * sizeof(tl_key_t));
    all[pos] = key;
    memcpy(&all[pos + 1], &lf->k[pos], (TL_LEAF - pos) * sizeof(tl_key_t));
    uint32_t keep = (TL_LEAF + 1) / 2;
    lf->n = keep;
    memcpy(lf->k, all, keep * sizeof(tl_key_t));
    right->n = TL_LEAF + 1 - keep;
    memcpy(right->k, &all[keep], right->n * sizeof(tl_key_t));
    right->prev = lf;
    right->next = lf->next;
    if (lf->next != NULL)
        lf->next->prev = right;
    lf->next = right;

    /* hand (separator, right) up until a node has room */
    tl_key_t sep = right->k[0];
    void *new_child = right;
    for (uint32_t d = l->height; d-- > 0;) {
        tl_inner_t *in = path[d];
        uint32_t at = idx[d] + 1; /* new_child goes right after the child that split */
        if (in->n < TL_FAN) {
            memmove(&in->c[at + 1], &in->c[at], (in->n - at) * sizeof(void *));
            memmove(&in->k[at], &in->k[at - 1], (in->n - at) * sizeof(tl_key_t));
            in->c[at] = new_child;
            in->k[at - 1] = sep;
            in->n++;
            return;
        }
        void *cs[TL_FAN + 1];
        tl_key_t ks[TL_FAN];
        memcpy(cs, in->c, at * sizeof(void *));
        cs[at] = new_child;
        memcpy(&cs[at + 1], &in->c[at], (TL_FAN - at) * sizeof(void *));
        memcpy(ks, in->k, (at - 1) * sizeof(tl_key_t));
        ks[at - 1] = sep;
        memcpy(&ks[at], &in->k[at - 1], (TL_FAN - at) * sizeof(tl_key_t));
        /* TL_FAN + 1 children: the left keeps lc, the right gets the rest; ks[lc - 1] moves up */
        uint32_t lc = (TL_FAN + 1) / 2;
        tl_inner_t *rin = node_alloc(sizeof(*rin), acct);
        in->n = lc;
        memcpy(in->c, cs, lc * sizeof(void *));
        memcpy(in->k, ks, (lc - 1) * sizeof(tl_key_t));
        rin->n = TL_FAN + 1 - lc;
        memcpy(rin->c, &cs[lc], rin->n * sizeof(void *));
        memcpy(rin->k, &ks[lc], (rin->n - 1) * sizeof(tl_key_t));
        sep = ks[lc - 1];
        new_child = rin;
    }
    /* the root split: a new root above the two halves */
    if (l->height + 1 >= TL_DEPTH_MAX)
        log_fatal("trace time index deeper than %d levels", TL_DEPTH_MAX);
    tl_inner_t *root = node_alloc(sizeof(*root), acct);
    root->n = 2;
    root->c[0] = l->root;
    root->c[1] = new_child;
    root->k[0] = sep;
    l->root = root;
    l->height++;
}

void tlist_prefetch(const tlist_t *l, const trace_t *t)
{
    if (l->root != NULL)
        prefetch_keys(descend(l, key_of(t), NULL, NULL)->k, TL_LEAF);
}

int tlist_contains(const tlist_t *l, const trace_t *t)
{
    if (l->root == NULL)
        return 0;
    tl_key_t key = key_of(t);
    const tl_leaf_t *lf = descend(l, key, NULL, NULL);
    uint32_t pos = leaf_lower(lf, key);
    return pos < lf->n && lf->k[pos].p == key.p && lf->k[pos].ts == key.ts;
}

/* Child i of in has too few entries: merge it with a sibling or even the two out. Returns 1 if a child was removed. */
static int fix_leaf(tl_inner_t *in, uint32_t i, int64_t *acct)
{
    uint32_t li = i > 0 ? i - 1 : i; /* left of the pair */
    tl_leaf_t *a = in->c[li], *b = in->c[li + 1];
    if (a->n + b->n <= TL_LEAF) {
        memcpy(&a->k[a->n], b->k, b->n * sizeof(tl_key_t));
        a->n += b->n;
        a->next = b->next;
        if (b->next != NULL)
            b->next->prev = a;
        store_free(b, sizeof(*b), acct);
        memmove(&in->c[li + 1], &in->c[li + 2], (in->n - li - 2) * sizeof(void *));
        memmove(&in->k[li], &in->k[li + 1], (in->n - li - 2) * sizeof(tl_key_t));
        in->n--;
        return 1;
    }
    uint32_t total = a->n + b->n, na = total / 2;
    if (a->n > na) { /* move a's tail to the front of b */
        uint32_t m = a->n - na;
        memmove(&b->k[m], b->k, b->n * sizeof(tl_key_t));
        memcpy(b->k, &a->k[na], m * sizeof(tl_key_t));
        a->n = na;
        b->n += m;
    } else if (a->n < na) { /* move b's head to the end of a */
        uint32_t m = na - a->n;
        memcpy(&a->k[a->n], b->k, m * sizeof(tl_key_t));
        memmove(b->k, &b->k[m], (b->n - m) * sizeof(tl_key_t));
        a->n = na;
        b->n -= m;
    }
    in->k[li] = b->k[0];
    return 0;
}

/* The same for inner children: the separator between them comes down and goes back up. */
static int fix_inner(tl_inner_t *in, uint32_t i, int64_t *acct)
{
    uint32_t li = i > 0 ? i - 1 : i;
    tl_inner_t *a = in->c[li], *b = in->c[li + 1];
    tl_key_t sep = in->k[li];
    if (a->n + b->n <= TL_FAN) {
        a->k[a->n - 1] = sep;
        memcpy(&a->k[a->n], b->k, (b->n - 1) * sizeof(tl_key_t));
        memcpy(&a->c[a->n], b->c, b->n * sizeof(void *));
        a->n += b->n;
        store_free(b, sizeof(*b), acct);
        memmove(&in->c[li + 1], &in->c[li + 2], (in->n - li - 2) * sizeof(void *));
        memmove(&in->k[li], &in->k[li + 1], (in->n - li - 2) * sizeof(tl_key_t));
        in->n--;
        return 1;
    }
    uint32_t total = a->n + b->n, na = total / 2;
    if (a->n > na) { /* a's last children go to the front of b */
        uint32_t m = a->n - na;
        memmove(&b->c[m], b->c, b->n * sizeof(void *));
        memmove(&b->k[m], b->k, (b->n - 1) * sizeof(tl_key_t));
        memcpy(b->c, &a->c[na], m * sizeof(void *));
        b->k[m - 1] = sep;
        memcpy(b->k, &a->k[na], (m - 1) * sizeof(tl_key_t));
        in->k[li] = a->k[na - 1];
        a->n = na;
        b->n += m;
    } else if (a->n < na) { /* b's first children go to the end of a */
        uint32_t m = na - a->n;
        a->k[a->n - 1] = sep;
        memcpy(&a->k[a->n], b->k, (m - 1) * sizeof(tl_key_t));
        memcpy(&a->c[a->n], b->c, m * sizeof(void *));
        in->k[li] = b->k[m - 1];
        memmove(b->c, &b->c[m], (b->n - m) * sizeof(void *));
        memmove(b->k, &b->k[m], (b->n - m - 1) * sizeof(tl_key_t));
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
    if (pos >= lf->n || lf->k[pos].p != key.p || lf->k[pos].ts != key.ts)
        return;
    memmove(&lf->k[pos], &lf->k[pos + 1], (lf->n - pos - 1) * sizeof(tl_key_t));
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
    return (struct trace *)it->leaf->k[--it->pos].p;
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
            if (count > 0 && !key_lt(last, lf->k[i]))
                return -1;
            last = lf->k[i];
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
