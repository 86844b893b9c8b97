/*
 * span_store_deps: dependency links, maintained incrementally.
 *
 * Each trace remembers the links it currently contributes and the time
 * bucket (trace timestamp / dep_bucket_ms) they were added to. A trace
 * whose root span is in gets its links computed at the end of the insert
 * batch, while its spans are in cache (once per trace). Any other change
 * queues the trace as dirty; once it has been quiet for dep_settle_ms (or
 * before a dependency query) its links are recomputed from its spans with
 * Zipkin's DependencyLinker rules and the difference is applied to the
 * buckets. Eviction withdraws a trace's links. No operation walks the whole
 * store: settling costs the size of the changed trace, a query the number
 * of buckets in its window.
 *
 * Traces without a repeated span id or a shared span (the common case)
 * get their tree from the ids alone; others go through the general
 * SpanNode.Builder emulation below. The linker follows
 * zipkin2.internal.DependencyLinker over the tree that
 * SpanNode.Builder builds after Trace.merge's clean-ups (spans sorted by id
 * with clients first; a SERVER after a CLIENT of the same id is marked
 * shared; a shared server without a parent inherits the client's parent).
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "span_store_internal.h"

#define NO_BUCKET UINT32_MAX

typedef struct bucket_link {
    uint32_t parent, child;
    uint64_t calls, errors;
} bucket_link_t;

typedef struct dep_bucket {
    bucket_link_t *v;
    uint32_t n, cap;
} dep_bucket_t;

/* ---- dirty queue ---- */

void deps_mark_dirty(span_store_t *st, trace_t *t, uint64_t now_us)
{
    if (t->dirty)
        return;
    if (st->dirty_tail - st->dirty_head == st->dirty_cap) {
        uint32_t ncap = st->dirty_cap * 2;
        dirty_ent_t *nd = store_alloc((size_t)ncap * sizeof(*nd), &st->bytes);
        for (uint32_t pos = st->dirty_head; pos != st->dirty_tail; pos++)
            nd[pos & (ncap - 1)] = st->dirty[pos & (st->dirty_cap - 1)];
        store_free(st->dirty, (size_t)st->dirty_cap * sizeof(*nd), &st->bytes);
        st->dirty = nd;
        st->dirty_cap = ncap;
    }
    uint32_t pos = st->dirty_tail++;
    st->dirty[pos & (st->dirty_cap - 1)] = (dirty_ent_t){t, now_us};
    t->dirty_pos = pos;
    t->dirty = 1;
}

/* ---- buckets ---- */

static void bucket_apply(span_store_t *st, uint32_t bno, const dep_rec_t *links, uint32_t n, int sign)
{
    if (bno == NO_BUCKET || n == 0)
        return;
    uint64_t *slot = sign > 0 ? u64map_put(&st->buckets, bno, &st->bytes) : u64map_get(&st->buckets, bno);
    if (slot == NULL)
        return;
    dep_bucket_t *b = (dep_bucket_t *)(uintptr_t)*slot;
    if (b == NULL) {
        b = store_alloc(sizeof(*b), &st->bytes);
        memset(b, 0, sizeof(*b));
        *slot = (uint64_t)(uintptr_t)b;
    }
    for (uint32_t i = 0; i < n; i++) {
        const dep_rec_t *l = &links[i];
        uint32_t k = 0;
        while (k < b->n && !(b->v[k].parent == l->parent && b->v[k].child == l->child))
            k++;
        if (sign > 0) {
            if (k == b->n) {
                if (b->n == b->cap) {
                    uint32_t ncap = b->cap ? b->cap * 2 : 4;
                    b->v =
                        store_realloc(b->v, (size_t)b->cap * sizeof(*b->v), (size_t)ncap * sizeof(*b->v), &st->bytes);
                    b->cap = ncap;
                }
                b->v[b->n++] = (bucket_link_t){l->parent, l->child, 0, 0};
                intern_ref(st->strs, l->parent);
                intern_ref(st->strs, l->child);
            }
            b->v[k].calls += l->calls;
            b->v[k].errors += l->errors;
        } else if (k < b->n) {
            b->v[k].calls -= l->calls;
            b->v[k].errors -= l->errors;
            if (b->v[k].calls == 0) {
                intern_release(st->strs, b->v[k].parent);
                intern_release(st->strs, b->v[k].child);
                b->v[k] = b->v[--b->n];
            }
        }
    }
    if (b->n == 0) {
        store_free(b->v, (size_t)b->cap * sizeof(*b->v), &st->bytes);
        store_free(b, sizeof(*b), &st->bytes);
        u64map_del(&st->buckets, bno, &st->bytes);
    }
}

void deps_forget(span_store_t *st, trace_t *t)
{
    if (t->links != NULL) {
        bucket_apply(st, t->links->bucket, t->links->v, t->links->n, -1);
        store_free(t->links, trace_links_size(t->links->n), &st->bytes);
        t->links = NULL;
    }
    if (t->dirty) {
        st->dirty[t->dirty_pos & (st->dirty_cap - 1)].t = NULL;
        t->dirty = 0;
    }
}

void deps_dispose(span_store_t *st)
{
    if (st->buckets.slots != NULL) {
        for (uint32_t i = 0; i <= st->buckets.mask; i++) {
            if (st->buckets.slots[i].key == U64MAP_EMPTY)
                continue;
            dep_bucket_t *b = (dep_bucket_t *)(uintptr_t)st->buckets.slots[i].val;
            free(b->v);
            free(b);
        }
    }
    u64map_dispose(&st->buckets, &st->bytes);
}

/* ---- the linker ---- */

typedef struct lnode {
    srec_t r;
    uint64_t parent; /* after clean-up */
    uint32_t pos;    /* arrival position, for a stable sort */
    uint8_t shared;
    int32_t up; /* tree parent: node index, VROOT, or UNSET */
    int32_t n_children;
} lnode_t;

#define VROOT (-1)
#define UNSET (-2)

typedef struct linker {
    const span_store_t *st;
    lnode_t *nodes;
    uint32_t n;
    dep_rec_t *out;
    uint32_t n_out, cap_out;
} linker_t;

static int ep_cmp(const span_store_t *st, const ep_rec_t *a, const ep_rec_t *b)
{
    if (!a->present)
        return b->present ? -1 : 0;
    if (!b->present)
        return 1;
    if (a->svc != b->svc) {
        if (a->svc == SID_NONE)
            return 1;
        if (b->svc == SID_NONE)
            return -1;
        str_t x = intern_str(st->strs, a->svc), y = intern_str(st->strs, b->svc);
        uint32_t m = x.len < y.len ? x.len : y.len;
        int c = m ? memcmp(x.ptr, y.ptr, m) : 0;
        if (c != 0)
            return c;
        return (x.len > y.len) - (x.len < y.len);
    }
    if (a->has_ipv4 != b->has_ipv4)
        return a->has_ipv4 ? -1 : 1;
    if (a->has_ipv4) {
        int c = memcmp(a->ipv4, b->ipv4, 4);
        if (c != 0)
            return c;
    }
    if (a->has_ipv6 != b->has_ipv6)
        return a->has_ipv6 ? -1 : 1;
    return a->has_ipv6 ? memcmp(a->ipv6, b->ipv6, 16) : 0;
}

/* Trace.merge's order: id, then clients before servers before shared, then endpoint. */
static int node_cmp(const void *x, const void *y, void *arg)
{
    const span_store_t *sort_st = arg;
    const lnode_t *a = x, *b = y;
    if (a->r.id != b->r.id)
        return a->r.id < b->r.id ? -1 : 1;
    if (a->shared != b->shared)
        return a->shared ? 1 : -1;
    if (!a->shared) {
        int ac = a->r.kind == SPAN_KIND_CLIENT, bc = b->r.kind == SPAN_KIND_CLIENT;
        if (ac != bc)
            return ac ? -1 : 1;
    }
    int c = ep_cmp(sort_st, &a->r.local, &b->r.local);
    if (c != 0)
        return c;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

typedef struct lkey {
    uint64_t id;
    uint32_t svc;
    uint16_t port;
    uint8_t shared, ep, has4, has6;
    uint8_t ip4[4];
    uint8_t ip6[16];
    uint8_t pad[2]; /* keys are hashed and compared as bytes: no implicit padding */
    uint32_t h;     /* hash of the bytes above, set by key_seal */
    uint32_t pad2;
} lkey_t;

static lkey_t key_seal(lkey_t k)
{
    uint64_t w[5];
    memcpy(w, &k, sizeof(w));
    uint64_t x = w[0] * 0x9E3779B97F4A7C15ULL ^ w[1] * 0xC2B2AE3D27D4EB4FULL ^ w[2] * 0x165667B19E3779F9ULL ^
                 w[3] * 0xff51afd7ed558ccdULL ^ w[4];
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    k.h = (uint32_t)x;
    return k;
}

static lkey_t key_plain(uint64_t id)
{
    lkey_t k;
    memset(&k, 0, sizeof(k));
    k.id = id;
    return key_seal(k);
}

static lkey_t key_shared(uint64_t id, const ep_rec_t *ep)
{
    lkey_t k;
    memset(&k, 0, sizeof(k));
    k.id = id;
    k.shared = 1;
    if (ep != NULL && ep->present) {
        k.ep = 1;
        k.svc = ep->svc;
        k.port = ep->port;
        k.has4 = ep->has_ipv4;
        k.has6 = ep->has_ipv6;
        if (ep->has_ipv4)
            memcpy(k.ip4, ep->ipv4, 4);
        if (ep->has_ipv6)
            memcpy(k.ip6, ep->ipv6, 16);
    }
    return key_seal(k);
}

/*
 * A tiny key -> int map sized for one trace: a table of entry numbers over
 * entry arrays, so clearing it costs 4 bytes a slot. Deleted entries stay
 * as tombstones.
 */
typedef struct kmap {
    uint32_t *slot; /* entry + 1; 0 = free */
    lkey_t *keys;
    int32_t *vals;
    uint8_t *dead;
    uint32_t mask;
    uint32_t n, cap; /* entries used / allocated */
} kmap_t;

static int kmap_init(kmap_t *m, arena_t *a, uint32_t n)
{
    uint32_t cap = 8;
    while (cap < n * 2)
        cap *= 2;
    m->slot = arena_calloc(a, cap, sizeof(*m->slot));
    m->keys = arena_alloc(a, (size_t)n * sizeof(*m->keys));
    m->vals = arena_alloc(a, (size_t)n * sizeof(*m->vals));
    m->dead = arena_alloc(a, n ? n : 1);
    m->mask = cap - 1;
    m->n = 0;
    m->cap = n;
    return m->slot && m->keys && m->vals && m->dead ? 0 : -1;
}

static int lkey_eq(const lkey_t *a, const lkey_t *b)
{
    return a->h == b->h && a->id == b->id && memcmp(a, b, sizeof(*a)) == 0;
}

/* Entry number of k (not deleted), or -1. */
static int32_t kmap_find(const kmap_t *m, const lkey_t *k)
{
    for (uint32_t i = k->h & m->mask;; i = (i + 1) & m->mask) {
        uint32_t e = m->slot[i];
        if (e == 0)
            return -1;
        if (!m->dead[e - 1] && lkey_eq(&m->keys[e - 1], k))
            return (int32_t)(e - 1);
    }
}

static void kmap_put(kmap_t *m, const lkey_t *k, int32_t val)
{
    int32_t f = kmap_find(m, k);
    if (f >= 0) {
        m->vals[f] = val;
        return;
    }
    if (m->n == m->cap)
        log_fatal("span store link map overflow");
    uint32_t e = m->n++;
    m->keys[e] = *k;
    m->vals[e] = val;
    m->dead[e] = 0;
    uint32_t i = k->h & m->mask;
    while (m->slot[i] != 0)
        i = (i + 1) & m->mask;
    m->slot[i] = e + 1;
}

static void add_link(linker_t *lk, arena_t *a, uint32_t parent, uint32_t child, int error)
{
    for (uint32_t i = 0; i < lk->n_out; i++) {
        if (lk->out[i].parent == parent && lk->out[i].child == child) {
            lk->out[i].calls++;
            lk->out[i].errors += error ? 1 : 0;
            return;
        }
    }
    if (lk->n_out == lk->cap_out) {
        uint32_t ncap = lk->cap_out ? lk->cap_out * 2 : 8;
        dep_rec_t *n = arena_alloc(a, (size_t)ncap * sizeof(*n));
        if (n == NULL)
            log_fatal("span store scratch memory exhausted");
        if (lk->n_out)
            memcpy(n, lk->out, (size_t)lk->n_out * sizeof(*n));
        lk->out = n;
        lk->cap_out = ncap;
    }
    lk->out[lk->n_out++] = (dep_rec_t){parent, child, 1, error ? 1 : 0};
}

/* DependencyLinker.putTrace for one node of the tree. */
static void link_node(linker_t *lk, arena_t *a, int32_t idx, int32_t root)
{
    lnode_t *nd = &lk->nodes[idx];
    const srec_t *r = &nd->r;
    int kind = r->kind;
    if (kind == SPAN_KIND_CLIENT && nd->n_children > 0)
        return;
    uint32_t svc = r->local.svc, rsvc = r->remote.svc;
    if (kind == SPAN_KIND_UNSPECIFIED) {
        if (svc == SID_NONE || rsvc == SID_NONE)
            return;
        kind = SPAN_KIND_CLIENT;
    }
    uint32_t parent, child;
    if (kind == SPAN_KIND_SERVER || kind == SPAN_KIND_CONSUMER) {
        child = svc;
        parent = rsvc;
        if (idx == root && parent == SID_NONE)
            return;
    } else {
        parent = svc;
        child = rsvc;
    }
    int error = r->error;
    if (kind == SPAN_KIND_PRODUCER || kind == SPAN_KIND_CONSUMER) {
        if (parent != SID_NONE && child != SID_NONE)
            add_link(lk, a, parent, child, error);
        return;
    }
    const lnode_t *anc = NULL;
    for (int32_t up = nd->up; up >= 0; up = lk->nodes[up].up) {
        if (lk->nodes[up].r.kind != SPAN_KIND_UNSPECIFIED) {
            anc = &lk->nodes[up];
            break;
        }
    }
    if (anc != NULL && anc->r.local.svc != SID_NONE) {
        uint32_t aname = anc->r.local.svc;
        if (kind == SPAN_KIND_CLIENT && svc != SID_NONE && aname != svc)
            add_link(lk, a, aname, svc, 0);
        if (kind == SPAN_KIND_SERVER || parent == SID_NONE)
            parent = aname;
        if (!error && anc->r.kind == SPAN_KIND_CLIENT && nd->parent != 0 && nd->parent == anc->r.id)
            error = anc->r.error;
    }
    if (parent == SID_NONE || child == SID_NONE)
        return;
    add_link(lk, a, parent, child, error);
}

typedef struct pentry {
    lkey_t child;
    lkey_t parent;
    uint8_t has_parent;
    uint8_t valid;
} pentry_t;

static void link_tree(linker_t *lk, arena_t *a, int32_t root);

/*
 * The common case, without the key maps: nodes sorted by id with no id
 * twice and nothing shared. Every span is then keyed by its id alone, so
 * SpanNode.Builder reduces to: the first span without a parent is the
 * root, a span's tree parent is the span whose id is its parent id, and
 * spans whose parent is missing (or absent) hang off the root. Returns 0,
 * leaving nodes untouched, when the trace needs the general builder.
 */
static int tree_by_ids(lnode_t *nodes, uint32_t n, int32_t *root_out)
{
    for (uint32_t i = 0; i < n; i++)
        if (nodes[i].shared || (i > 0 && nodes[i - 1].r.id == nodes[i].r.id))
            return 0;
    int32_t root = VROOT;
    for (uint32_t i = 0; i < n && root == VROOT; i++)
        if (nodes[i].parent == 0)
            root = (int32_t)i;
    for (uint32_t i = 0; i < n; i++) {
        if ((int32_t)i == root)
            continue;
        int32_t up = root;
        uint64_t pid = nodes[i].parent;
        if (pid != 0) {
            uint32_t lo = 0, hi = n;
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (nodes[mid].r.id < pid)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < n && nodes[lo].r.id == pid)
                up = (int32_t)lo;
        }
        if (up != (int32_t)i)
            nodes[i].up = up;
    }
    if (root != VROOT)
        nodes[root].up = VROOT;
    *root_out = root;
    return 1;
}

/* Links of t into lk->out (scratch memory). */
static void compute_links(span_store_t *st, const trace_t *t, linker_t *lk)
{
    arena_t *a = &st->scratch;
    memset(lk, 0, sizeof(*lk));
    lk->st = st;
    uint32_t n = t->n_spans;
    if (n == 0)
        return;
    lnode_t *nodes = arena_alloc(a, (size_t)n * sizeof(*nodes));
    if (nodes == NULL)
        log_fatal("span store scratch memory exhausted");
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    uint32_t k = 0;
    while (p < end && k < n) {
        srec_decode(t, p, &nodes[k].r);
        p = nodes[k].r.next;
        nodes[k].parent = nodes[k].r.parent;
        nodes[k].shared = nodes[k].r.shared;
        nodes[k].pos = k;
        nodes[k].up = UNSET;
        nodes[k].n_children = 0;
        k++;
    }
    n = k;
    if (n <= 32) {
        /* insertion sort of pointers, then one permuting copy: nodes are large */
        const lnode_t *ord[32];
        for (uint32_t i = 0; i < n; i++) {
            uint32_t j = i;
            while (j > 0 && node_cmp(ord[j - 1], &nodes[i], st) > 0) {
                ord[j] = ord[j - 1];
                j--;
            }
            ord[j] = &nodes[i];
        }
        lnode_t *sorted = arena_alloc(a, (size_t)n * sizeof(*sorted));
        if (sorted == NULL)
            log_fatal("span store scratch memory exhausted");
        for (uint32_t i = 0; i < n; i++)
            sorted[i] = *ord[i];
        nodes = sorted;
    } else {
        qsort_r(nodes, n, sizeof(*nodes), node_cmp, st);
    }
    for (uint32_t i = 1; i < n; i++) {
        lnode_t *prev = &nodes[i - 1], *cur = &nodes[i];
        if (prev->r.id != cur->r.id)
            continue;
        if (prev->r.kind == SPAN_KIND_CLIENT && cur->r.kind == SPAN_KIND_SERVER && !cur->shared)
            cur->shared = 1;
        if (cur->shared && cur->parent == 0 && prev->parent != 0)
            cur->parent = prev->parent;
    }
    lk->nodes = nodes;
    lk->n = n;

    int32_t root = VROOT;
    if (!st->deps_generic && tree_by_ids(nodes, n, &root)) {
        link_tree(lk, a, root);
        return;
    }
    kmap_t to_parent, to_node;
    pentry_t *ents = arena_alloc(a, (size_t)n * 2 * sizeof(*ents));
    if (ents == NULL || kmap_init(&to_parent, a, n * 3) < 0 || kmap_init(&to_node, a, n * 3) < 0)
        log_fatal("span store scratch memory exhausted");

    /* SpanNode.Builder.index: child key -> parent key */
    uint32_t n_ents = 0;
    for (uint32_t i = 0; i < n; i++) {
        lkey_t ck, pk;
        int has_parent = 1;
        if (nodes[i].shared) {
            ck = key_shared(nodes[i].r.id, &nodes[i].r.local);
            pk = key_plain(nodes[i].r.id);
        } else {
            ck = key_plain(nodes[i].r.id);
            pk = key_plain(nodes[i].parent);
            has_parent = nodes[i].parent != 0;
        }
        int32_t s = kmap_find(&to_parent, &ck);
        uint32_t e = s >= 0 ? (uint32_t)to_parent.vals[s] : n_ents++;
        ents[e] = (pentry_t){ck, pk, (uint8_t)has_parent, 1};
        if (s < 0)
            kmap_put(&to_parent, &ck, (int32_t)e);
    }
    /* SpanNode.Builder.process */
    for (uint32_t i = 0; i < n; i++) {
        lnode_t *nd = &nodes[i];
        int shared = nd->shared;
        lkey_t key = shared ? key_shared(nd->r.id, &nd->r.local) : key_plain(nd->r.id);
        lkey_t noep = shared ? key_shared(nd->r.id, NULL) : key;
        int has_parent = 0;
        if (shared) {
            has_parent = 1;
        } else if (nd->parent != 0) {
            has_parent = 1;
            lkey_t pk = key_shared(nd->parent, &nd->r.local);
            if (kmap_find(&to_parent, &pk) >= 0) {
                int32_t s = kmap_find(&to_parent, &noep);
                uint32_t e = s >= 0 ? (uint32_t)to_parent.vals[s] : n_ents++;
                ents[e] = (pentry_t){noep, pk, 1, 1};
                if (s < 0)
                    kmap_put(&to_parent, &noep, (int32_t)e);
            }
        }
        if (!has_parent && root == VROOT) {
            root = (int32_t)i;
            int32_t s = kmap_find(&to_parent, &noep);
            if (s >= 0) {
                ents[to_parent.vals[s]].valid = 0;
                to_parent.dead[s] = 1;
            }
        } else if (shared) {
            kmap_put(&to_node, &key, (int32_t)i);
            kmap_put(&to_node, &noep, (int32_t)i);
        } else {
            kmap_put(&to_node, &noep, (int32_t)i);
        }
    }
    for (uint32_t e = 0; e < n_ents; e++) {
        if (!ents[e].valid)
            continue;
        int32_t c = kmap_find(&to_node, &ents[e].child);
        if (c < 0)
            continue;
        int32_t pn = ents[e].has_parent ? kmap_find(&to_node, &ents[e].parent) : -1;
        int32_t up = pn >= 0 ? to_node.vals[pn] : root;
        if (up == to_node.vals[c])
            continue;
        nodes[to_node.vals[c]].up = up;
    }
    if (root != VROOT)
        nodes[root].up = VROOT;
    link_tree(lk, a, root);
}

/* Visit the tree set up in lk->nodes[].up breadth-first from root, linking each node. */
#define LINK_SMALL 32

static void link_tree(linker_t *lk, arena_t *a, int32_t root)
{
    lnode_t *nodes = lk->nodes;
    uint32_t n = lk->n;
    /* breadth-first from the root; nodes in cycles or shadowed by duplicates are never reached */
    int32_t small[4][LINK_SMALL + 1]; /* most traces: no arena work */
    int32_t *queue = small[0], *first = small[1], *order = small[2], *fill = small[3];
    if (n > LINK_SMALL) {
        queue = arena_alloc(a, (size_t)(n + 1) * sizeof(*queue));
        first = arena_alloc(a, (size_t)(n + 1) * sizeof(*first));
        order = arena_alloc(a, (size_t)n * sizeof(*order));
        fill = arena_alloc(a, (size_t)(n + 1) * sizeof(*fill));
        if (queue == NULL || first == NULL || order == NULL || fill == NULL)
            log_fatal("span store scratch memory exhausted");
    }
    /* children grouped by parent (index n stands for the virtual root) */
    memset(first, 0, (size_t)(n + 1) * sizeof(*first));
    for (uint32_t i = 0; i < n; i++) {
        if ((int32_t)i == root || nodes[i].up == UNSET)
            continue;
        int32_t up = nodes[i].up == VROOT ? (int32_t)n : nodes[i].up;
        first[up]++;
        if (up != (int32_t)n)
            nodes[up].n_children++;
    }
    int32_t sum = 0;
    for (uint32_t i = 0; i <= n; i++) {
        int32_t c = first[i];
        first[i] = sum;
        sum += c;
    }
    memcpy(fill, first, (size_t)(n + 1) * sizeof(*fill));
    for (uint32_t i = 0; i < n; i++) {
        if ((int32_t)i == root || nodes[i].up == UNSET)
            continue;
        int32_t up = nodes[i].up == VROOT ? (int32_t)n : nodes[i].up;
        order[fill[up]++] = (int32_t)i;
    }
    uint32_t qh = 0, qt = 0;
    if (root != VROOT)
        queue[qt++] = root;
    else
        for (int32_t j = first[n]; j < fill[n]; j++)
            queue[qt++] = order[j];
    while (qh < qt && qt <= n) {
        int32_t cur = queue[qh++];
        link_node(lk, a, cur, root);
        for (int32_t j = first[cur]; j < fill[cur] && qt < n; j++)
            queue[qt++] = order[j];
    }
}

static void settle_trace(span_store_t *st, trace_t *t)
{
    arena_reset(&st->scratch);
    linker_t lk;
    compute_links(st, t, &lk);
    uint32_t bno = t->ts ? (uint32_t)((t->ts / 1000) / st->bucket_ms) : NO_BUCKET;
    trace_links_t *cur = t->links;
    uint32_t cur_n = cur ? cur->n : 0;
    if (lk.n_out == cur_n &&
        (lk.n_out == 0 || (bno == cur->bucket && memcmp(lk.out, cur->v, (size_t)lk.n_out * sizeof(*lk.out)) == 0)))
        return;
    if (cur != NULL)
        bucket_apply(st, cur->bucket, cur->v, cur_n, -1);
    bucket_apply(st, bno, lk.out, lk.n_out, 1);
    if (lk.n_out != cur_n) {
        if (cur != NULL)
            store_free(cur, trace_links_size(cur_n), &st->bytes);
        cur = lk.n_out ? store_alloc(trace_links_size(lk.n_out), &st->bytes) : NULL;
        t->links = cur;
    }
    if (lk.n_out) {
        memcpy(cur->v, lk.out, (size_t)lk.n_out * sizeof(*lk.out));
        cur->n = lk.n_out;
        cur->bucket = bno;
    }
}

void deps_batch_done(span_store_t *st, trace_t *t, uint64_t now_us)
{
    if (!t->ts_root || t->linked_now) {
        deps_mark_dirty(st, t, now_us);
        return;
    }
    /* once per trace, so a hostile trace growing one span per batch still costs one settle per quiet period */
    t->linked_now = 1;
    if (t->dirty) {
        st->dirty[t->dirty_pos & (st->dirty_cap - 1)].t = NULL;
        t->dirty = 0;
    }
    settle_trace(st, t);
}

#define DIRTY_MAX 65536

void deps_settle(span_store_t *st, uint64_t now_us)
{
    while (st->dirty_head != st->dirty_tail) {
        dirty_ent_t *e = &st->dirty[st->dirty_head & (st->dirty_cap - 1)];
        if (e->t != NULL) {
            if (now_us != 0 && e->since_us + st->settle_us > now_us && st->dirty_tail - st->dirty_head <= DIRTY_MAX)
                break;
            e->t->dirty = 0;
            settle_trace(st, e->t);
        }
        st->dirty_head++;
    }
}

/* ---- query ---- */

static int link_cmp(const void *x, const void *y)
{
    const span_dep_link_t *a = x, *b = y;
    int c = str_compare(a->parent, b->parent);
    return c != 0 ? c : str_compare(a->child, b->child);
}

static void sum_bucket(const dep_bucket_t *b, u64map_t *agg, bucket_link_t **acc, uint32_t *n, uint32_t *cap,
                       int64_t *acct)
{
    for (uint32_t i = 0; i < b->n; i++) {
        const bucket_link_t *l = &b->v[i];
        uint64_t *slot = u64map_put(agg, ((uint64_t)l->parent << 32) | l->child, acct);
        if (*slot == 0) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 16;
                *acc = realloc(*acc, (size_t)*cap * sizeof(**acc));
                if (*acc == NULL)
                    log_fatal("out of memory");
            }
            (*acc)[*n] = (bucket_link_t){l->parent, l->child, 0, 0};
            *slot = ++*n;
        }
        (*acc)[*slot - 1].calls += l->calls;
        (*acc)[*slot - 1].errors += l->errors;
    }
}

int span_store_dependencies(span_store_t *st, uint64_t end_ts_ms, uint64_t lookback_ms, arena_t *arena,
                            span_dep_link_t **links, size_t *n)
{
    *links = NULL;
    *n = 0;
    pthread_rwlock_wrlock(&st->lock);
    deps_settle(st, 0);
    arena_reset(&st->scratch);
    uint64_t begin_ms = lookback_ms > end_ts_ms ? 0 : end_ts_ms - lookback_ms;
    uint64_t b0 = begin_ms / st->bucket_ms, b1 = end_ts_ms / st->bucket_ms;
    u64map_t agg = {0};
    int64_t acct = 0;
    bucket_link_t *acc = NULL;
    uint32_t n_acc = 0, cap_acc = 0;
    if (st->buckets.len != 0) {
        if (b1 - b0 + 1 > st->buckets.len) {
            for (uint32_t i = 0; i <= st->buckets.mask; i++) {
                uint64_t key = st->buckets.slots[i].key;
                if (key == U64MAP_EMPTY || key < b0 || key > b1)
                    continue;
                sum_bucket((const dep_bucket_t *)(uintptr_t)st->buckets.slots[i].val, &agg, &acc, &n_acc, &cap_acc,
                           &acct);
            }
        } else {
            for (uint64_t b = b0; b <= b1; b++) {
                uint64_t *v = u64map_get(&st->buckets, b);
                if (v != NULL)
                    sum_bucket((const dep_bucket_t *)(uintptr_t)*v, &agg, &acc, &n_acc, &cap_acc, &acct);
            }
        }
    }
    int rc = 0;
    span_dep_link_t *out = n_acc ? arena_alloc(arena, (size_t)n_acc * sizeof(*out)) : NULL;
    if (n_acc && out == NULL)
        rc = -1;
    for (uint32_t i = 0; rc == 0 && i < n_acc; i++) {
        str_t ps = intern_str(st->strs, acc[i].parent), cs = intern_str(st->strs, acc[i].child);
        char *pp = arena_strndup(arena, ps.ptr, ps.len), *cp = arena_strndup(arena, cs.ptr, cs.len);
        if (pp == NULL || cp == NULL) {
            rc = -1;
            break;
        }
        out[i] = (span_dep_link_t){{pp, ps.len}, {cp, cs.len}, acc[i].calls, acc[i].errors};
    }
    pthread_rwlock_unlock(&st->lock);
    u64map_dispose(&agg, &acct);
    free(acc);
    if (rc == 0 && n_acc) {
        qsort(out, n_acc, sizeof(*out), link_cmp);
        *links = out;
        *n = n_acc;
    }
    return rc;
}
