/*
 * telemetry_ring: the SPSC byte ring (see telemetry_ring.h).
 *
 * Invariants. 0 <= head - tail <= cap. Each side keeps a private copy of
 * the other side's position and reloads it (acquire) only when its copy
 * says the ring is full (producer) or empty (consumer), so the shared
 * cache lines move only when they must. A record header is 8 bytes: its
 * size, or PAD for "the rest of the block is unused, go to offset 0".
 */
#include "telemetry_ring.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PAD UINT32_MAX
#define HDR 8u
#define LINE 64

struct tele_ring {
    /* producer */
    _Alignas(LINE) _Atomic uint64_t head;
    uint64_t tail_seen; /* last tail the producer read */
    uint64_t next_head; /* head once the current reservation is committed */
    /* consumer */
    _Alignas(LINE) _Atomic uint64_t tail;
    uint64_t head_seen; /* last head the consumer read */
    uint64_t read;      /* position after the records peeked so far */
    /* fixed */
    _Alignas(LINE) size_t cap, mask;
    unsigned char *data;
};

static size_t round8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

tele_ring_t *tele_ring_create(size_t capacity)
{
    size_t cap = TELE_RING_MIN;
    while (cap < capacity && cap < ((size_t)1 << 40))
        cap <<= 1;
    tele_ring_t *r = aligned_alloc(LINE, (sizeof(*r) + LINE - 1) / LINE * LINE);
    unsigned char *data = aligned_alloc(LINE, cap);
    if (r == NULL || data == NULL)
        log_fatal("telemetry: out of memory allocating a %zu-byte ring", cap);
    memset(r, 0, sizeof(*r));
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->cap = cap;
    r->mask = cap - 1;
    r->data = data;
    return r;
}

void tele_ring_destroy(tele_ring_t *r)
{
    if (r == NULL)
        return;
    free(r->data);
    free(r);
}

size_t tele_ring_capacity(const tele_ring_t *r)
{
    return r->cap;
}

size_t tele_ring_max_record(const tele_ring_t *r)
{
    /* a quarter of the ring, and below PAD: a record's size is a 32-bit header */
    size_t q = r->cap / 4;
    return q < (size_t)PAD - 8 ? q : (size_t)PAD - 8;
}

void *tele_ring_reserve(tele_ring_t *r, size_t size)
{
    if (size == 0 || size > tele_ring_max_record(r))
        return NULL;
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t off = (size_t)(pos & r->mask);
    size_t need = HDR + round8(size);
    size_t to_end = r->cap - off;
    uint64_t start = need <= to_end ? pos : pos + to_end;
    uint64_t end = start + need;
    if (end - r->tail_seen > r->cap) {
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (end - r->tail_seen > r->cap)
            return NULL;
    }
    if (start != pos)
        memcpy(r->data + off, &(uint32_t){PAD}, sizeof(uint32_t));
    unsigned char *p = r->data + (size_t)(start & r->mask);
    uint32_t sz = (uint32_t)size;
    memcpy(p, &sz, sizeof(sz));
    r->next_head = end;
    return p + HDR;
}

void tele_ring_commit(tele_ring_t *r)
{
    atomic_store_explicit(&r->head, r->next_head, memory_order_release);
}

const void *tele_ring_peek(tele_ring_t *r, size_t *size)
{
    for (;;) {
        if (r->read == r->head_seen) {
            r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
            if (r->read == r->head_seen)
                return NULL;
        }
        size_t off = (size_t)(r->read & r->mask);
        uint32_t sz;
        memcpy(&sz, r->data + off, sizeof(sz));
        if (sz == PAD) {
            r->read += r->cap - off;
            continue;
        }
        *size = sz;
        r->read += HDR + round8(sz);
        return r->data + off + HDR;
    }
}

void tele_ring_release(tele_ring_t *r)
{
    atomic_store_explicit(&r->tail, r->read, memory_order_release);
}

size_t tele_ring_used(const tele_ring_t *r)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    return h >= t ? (size_t)(h - t) : 0;
}
