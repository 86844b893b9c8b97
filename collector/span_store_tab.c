/*
 * span_store_tab: the span store's table of traces by id, an open-addressing
 * hash (linear probing) of trace pointers that grows and shrinks without a
 * pause.
 *
 * Slots. A slot holds the trace pointer with the top 16 bits of its hash
 * above it (user-space pointers fit in 48 bits), so a probe compares those
 * bits and reads a trace only when they match: a lookup for a new trace
 * (the common case) touches the table and no trace at all. The hash's low
 * 32 bits, which place the trace, are kept in an array beside the slots
 * (4 bytes a slot), so neither a resize nor a removal's backward shift
 * reads a trace to find where an entry belongs: at millions of traces
 * those reads were a cache miss each, a quarter of all misses while a
 * resize was under way.
 *
 * Resizing. Doubling a table of millions of traces at once reads every
 * trace for its id and zeroes tens of megabytes inside one insert: at 8M
 * stored spans that was a quarter of a second spent in one request. So a
 * resize only maps the new table (fresh memory, zeroed by the kernel page
 * by page as it is first written) and keeps the old one beside it; every
 * later insert or removal moves the next TAB_MIGRATE slots of the old table
 * over, in slot order, which ends the move halfway to the next resize (a
 * growth starts at half load, so the next one is old capacity / 2 inserts
 * away; after a shrink a growth can come sooner, and then finishes the
 * move of the shrink in one go). Moved entries land near their old slot or old capacity above it,
 * so the new table's pages are first written in two sweeps that follow the
 * move; a new trace whose home is in the part not moved yet goes into the
 * old table (unless its probe would wrap into the moved part) and moves
 * with the rest, so the cost of the new memory is spread over the move
 * rather than paid in the first requests after it starts. That part of
 * the old table takes at most a quarter of its capacity more meanwhile
 * (load 0.75 at worst). A lookup tries the new table, then the old. The
 * old table is never compacted: a moved or removed entry leaves a
 * tombstone there, which keeps its probe chains whole until it is freed.
 */
#include <string.h>

#include <sys/random.h>

#include "log.h"
#include "span_store_internal.h"

#define TAB_PTR_BITS 48
#define TAB_PTR_MASK (((uint64_t)1 << TAB_PTR_BITS) - 1)
#define TAB_TOMB ((uint64_t)1) /* old table only: a moved or removed entry */
#define TAB_MIGRATE 4          /* old slots moved per insert or removal */
#define TAB_MIN 1024

static trace_t *slot_trace(uint64_t v)
{
    return (trace_t *)(uintptr_t)(v & TAB_PTR_MASK);
}

static uint64_t slot_tag(uint64_t h)
{
    return h & ~TAB_PTR_MASK;
}

static uint64_t hash_of(const span_store_t *st, const trace_t *t)
{
    return trace_hash(st, key_hi(st, t->id_hi), t->id_lo);
}

/* A table of cap slots: the tagged pointers, then the 32-bit hashes, in one zeroed allocation. */
static uint64_t *table_alloc(span_store_t *st, uint64_t cap, uint32_t **hs)
{
    uint64_t *slots = store_big_alloc(cap * (sizeof(uint64_t) + sizeof(uint32_t)), &st->bytes);
    *hs = (uint32_t *)(slots + cap);
    return slots;
}

static void table_free(span_store_t *st, uint64_t *slots, uint64_t cap)
{
    store_big_free(slots, cap * (sizeof(uint64_t) + sizeof(uint32_t)), &st->bytes);
}

void tab_init(span_store_t *st)
{
    trace_tab_t *tb = &st->tab;
    memset(tb, 0, sizeof(*tb));
    if (getrandom(&tb->key, sizeof(tb->key), GRND_NONBLOCK) != (ssize_t)sizeof(tb->key))
        tb->key = (uint64_t)(uintptr_t)st * 0x9E3779B97F4A7C15ULL; /* no entropy yet: still differs per process */
    tb->mask = TAB_MIN - 1;
    tb->slots = table_alloc(st, TAB_MIN, &tb->hs);
}

void tab_dispose(span_store_t *st)
{
    trace_tab_t *tb = &st->tab;
    table_free(st, tb->slots, (uint64_t)tb->mask + 1);
    if (tb->old != NULL)
        table_free(st, tb->old, (uint64_t)tb->old_mask + 1);
    memset(tb, 0, sizeof(*tb));
}

static trace_t *probe(const span_store_t *st, const uint64_t *slots, uint32_t mask, uint64_t h, uint64_t hi,
                      uint64_t lo)
{
    uint64_t tag = slot_tag(h);
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        uint64_t v = slots[i];
        if (v == 0)
            return NULL;
        if (v == TAB_TOMB || slot_tag(v) != tag)
            continue;
        trace_t *t = slot_trace(v);
        if (t->id_lo == lo && key_hi(st, t->id_hi) == hi)
            return t;
    }
}

trace_t *store_find_trace(const span_store_t *st, uint64_t hi, uint64_t lo)
{
    const trace_tab_t *tb = &st->tab;
    hi = key_hi(st, hi);
    uint64_t h = trace_hash(st, hi, lo);
    trace_t *t = probe(st, tb->slots, tb->mask, h, hi, lo);
    if (t == NULL && tb->old != NULL)
        t = probe(st, tb->old, tb->old_mask, h, hi, lo);
    return t;
}

void tab_prefetch(const span_store_t *st, uint64_t trace_id_high, uint64_t trace_id_low)
{
    const trace_tab_t *tb = &st->tab;
    uint64_t h = trace_hash(st, key_hi(st, trace_id_high), trace_id_low);
    __builtin_prefetch(&tb->slots[(uint32_t)h & tb->mask]);
    if (tb->old != NULL)
        __builtin_prefetch(&tb->old[(uint32_t)h & tb->old_mask]);
}

static void place(uint64_t *slots, uint32_t *hs, uint32_t mask, trace_t *t, uint64_t h)
{
    uint32_t i = (uint32_t)h & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = slot_tag(h) | (uint64_t)(uintptr_t)t;
    hs[i] = (uint32_t)h;
}

/* Move the next n slots of the old table over; free it once every slot has moved. */
static void migrate(span_store_t *st, uint32_t n)
{
    trace_tab_t *tb = &st->tab;
    uint64_t old_cap = (uint64_t)tb->old_mask + 1;
    for (; n > 0 && tb->old_pos < old_cap; n--, tb->old_pos++) {
        uint64_t v = tb->old[tb->old_pos];
        if (v <= TAB_TOMB)
            continue;
        uint32_t h32 = tb->old_hs[tb->old_pos];
        place(tb->slots, tb->hs, tb->mask, slot_trace(v), (v & ~TAB_PTR_MASK) | h32);
        tb->old[tb->old_pos] = TAB_TOMB;
    }
    if (tb->old_pos >= old_cap) {
        table_free(st, tb->old, old_cap);
        tb->old = NULL;
        tb->old_hs = NULL;
    }
}

/* Start moving to a table of ncap slots (finishing any move still under way first). */
static void resize(span_store_t *st, uint64_t ncap)
{
    trace_tab_t *tb = &st->tab;
    if (tb->old != NULL)
        migrate(st, UINT32_MAX);
    if (ncap > ((uint64_t)1 << 32))
        log_fatal("trace table past 2^32 slots");
    tb->old = tb->slots;
    tb->old_hs = tb->hs;
    tb->old_mask = tb->mask;
    tb->old_pos = 0;
    tb->slots = table_alloc(st, ncap, &tb->hs);
    tb->mask = (uint32_t)(ncap - 1);
}

/* During a move: put t in the old table's part not moved yet, if its probe stays there. 1 if placed. */
static int place_old(trace_tab_t *tb, trace_t *t, uint64_t h)
{
    uint32_t i = (uint32_t)h & tb->old_mask;
    if (i < tb->old_pos)
        return 0;
    for (; tb->old[i] > TAB_TOMB; i = (i + 1) & tb->old_mask)
        if (i + 1 > tb->old_mask) /* the next probe wraps into the moved part */
            return 0;
    tb->old[i] = slot_tag(h) | (uint64_t)(uintptr_t)t;
    tb->old_hs[i] = (uint32_t)h;
    return 1;
}

void tab_add(span_store_t *st, trace_t *t)
{
    trace_tab_t *tb = &st->tab;
    if ((uint64_t)(uintptr_t)t & ~TAB_PTR_MASK)
        log_fatal("trace memory above 2^%d: the trace table cannot tag it", TAB_PTR_BITS);
    if ((st->n_traces + 1) * 2 > (uint64_t)tb->mask + 1)
        resize(st, ((uint64_t)tb->mask + 1) * 2);
    uint64_t h = hash_of(st, t);
    if (tb->old == NULL || !place_old(tb, t, h))
        place(tb->slots, tb->hs, tb->mask, t, h);
    if (tb->old != NULL)
        migrate(st, TAB_MIGRATE);
}

/* Remove t from slots (the current table) by backward shift; 0 when it is not there. */
static int remove_current(span_store_t *st, trace_t *t, uint64_t h)
{
    trace_tab_t *tb = &st->tab;
    uint32_t mask = tb->mask;
    uint32_t i = (uint32_t)h & mask;
    for (;; i = (i + 1) & mask) {
        if (tb->slots[i] == 0)
            return 0;
        if (slot_trace(tb->slots[i]) == t)
            break;
    }
    /* backward-shift deletion keeps every probe chain unbroken */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t v = tb->slots[j];
        if (v == 0)
            break;
        uint32_t home = tb->hs[j] & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            tb->slots[i] = v;
            tb->hs[i] = tb->hs[j];
            i = j;
        }
    }
    tb->slots[i] = 0;
    return 1;
}

void tab_del(span_store_t *st, trace_t *t)
{
    trace_tab_t *tb = &st->tab;
    uint64_t h = hash_of(st, t);
    if (!remove_current(st, t, h) && tb->old != NULL) {
        for (uint32_t i = (uint32_t)h & tb->old_mask;; i = (i + 1) & tb->old_mask) {
            uint64_t v = tb->old[i];
            if (v == 0)
                break;
            if (v != TAB_TOMB && slot_trace(v) == t) {
                tb->old[i] = TAB_TOMB;
                break;
            }
        }
    }
    /* n_traces already counts t out */
    if (tb->old == NULL && tb->mask + 1 > TAB_MIN && st->n_traces * 8 < (uint64_t)tb->mask + 1)
        resize(st, ((uint64_t)tb->mask + 1) / 2);
    else if (tb->old != NULL)
        migrate(st, TAB_MIGRATE);
}
