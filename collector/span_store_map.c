/*
 * span_store_map: the small containers behind the span store's indexes: a
 * u64 -> u64 hash map and the blob heap; see
 * span_store_internal.h.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "span_store_internal.h"
#include "utf8.h"

void *store_alloc(size_t n, int64_t *acct)
{
    void *p = malloc(n);
    if (p == NULL)
        log_fatal("out of memory allocating %zu bytes", n);
    *acct += (int64_t)store_chunk(n);
    return p;
}

void *store_realloc(void *p, size_t old_n, size_t n, int64_t *acct)
{
    void *q = realloc(p, n);
    if (q == NULL)
        log_fatal("out of memory allocating %zu bytes", n);
    if (p != NULL)
        *acct -= (int64_t)store_chunk(old_n);
    *acct += (int64_t)store_chunk(n);
    return q;
}

#define BIG_MIN ((size_t)2 << 20)

static size_t big_size(size_t n)
{
    return (n + BIG_MIN - 1) & ~(BIG_MIN - 1);
}

void *store_big_alloc(size_t n, int64_t *acct)
{
    if (n < BIG_MIN) {
        void *p = calloc(1, n);
        if (p == NULL)
            log_fatal("out of memory allocating %zu bytes", n);
        *acct += (int64_t)store_chunk(n);
        return p;
    }
    size_t sz = big_size(n);
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        log_fatal("out of memory mapping %zu bytes", sz);
#ifdef MADV_HUGEPAGE
    madvise(p, sz, MADV_HUGEPAGE); /* a hint: without huge pages this is plain memory */
#endif
    *acct += (int64_t)sz;
    return p;
}

void store_big_free(void *p, size_t n, int64_t *acct)
{
    if (p == NULL)
        return;
    if (n < BIG_MIN) {
        store_free(p, n, acct);
        return;
    }
    munmap(p, big_size(n));
    *acct -= (int64_t)big_size(n);
}

void store_free(void *p, size_t n, int64_t *acct)
{
    if (p == NULL)
        return;
    *acct -= (int64_t)store_chunk(n);
    free(p);
}

/* ---- blob heap ---- */

#define BLOB_CHUNK ((size_t)2 << 20)

/* Class of n (1..BLOB_MAX): 16-byte steps to 1 KiB, 32 to 2 KiB, 128 to 8 KiB, 512 to 32 KiB. */
static uint32_t blob_class(size_t n)
{
    if (n <= 1024)
        return (uint32_t)((n + 15) / 16) - 1 + (n == 0);
    if (n <= 2048)
        return 64 + (uint32_t)((n - 1024 + 31) / 32) - 1;
    if (n <= 8192)
        return 96 + (uint32_t)((n - 2048 + 127) / 128) - 1;
    return 144 + (uint32_t)((n - 8192 + 511) / 512) - 1;
}

static size_t class_size(uint32_t c)
{
    if (c < 64)
        return (size_t)(c + 1) * 16;
    if (c < 96)
        return 1024 + (size_t)(c - 63) * 32;
    if (c < 144)
        return 2048 + (size_t)(c - 95) * 128;
    return 8192 + (size_t)(c - 143) * 512;
}

static void chunk_new(blob_heap_t *h, int64_t *acct)
{
    if (h->n_chunks == h->cap_chunks) {
        h->cap_chunks = h->cap_chunks ? h->cap_chunks * 2 : 16;
        h->chunks = realloc(h->chunks, h->cap_chunks * sizeof(*h->chunks));
        if (h->chunks == NULL)
            log_fatal("out of memory");
    }
    if (h->cur != NULL)
        *acct += (int64_t)(h->end - h->cur); /* the old chunk's tail is lost to blobs for good */
    void *c = NULL;
    if ((size_t)(h->pool_end - h->pool_cur) >= BLOB_CHUNK) {
        c = h->pool_cur;
        h->pool_cur += BLOB_CHUNK;
    } else {
        if (posix_memalign(&c, BLOB_CHUNK, BLOB_CHUNK) != 0)
            log_fatal("out of memory allocating %zu bytes", BLOB_CHUNK);
#ifdef MADV_HUGEPAGE
        madvise(c, BLOB_CHUNK, MADV_HUGEPAGE); /* a hint: without huge pages this is plain memory */
#endif
    }
    h->chunks[h->n_chunks++] = c;
    h->cur = c;
    h->end = h->cur + BLOB_CHUNK;
}

void *blob_alloc(blob_heap_t *h, size_t n, int64_t *acct)
{
    if (n > BLOB_MAX)
        return store_alloc(n, acct);
    uint32_t c = blob_class(n);
    size_t sz = class_size(c);
    *acct += (int64_t)sz;
    void *p = h->free[c];
    if (p != NULL) {
        memcpy(&h->free[c], p, sizeof(void *));
        return p;
    }
    if ((size_t)(h->end - h->cur) < sz)
        chunk_new(h, acct);
    p = h->cur;
    h->cur += sz;
    return p;
}

void blob_free(blob_heap_t *h, void *p, size_t n, int64_t *acct)
{
    if (p == NULL)
        return;
    if (n > BLOB_MAX) {
        store_free(p, n, acct);
        return;
    }
    uint32_t c = blob_class(n);
    *acct -= (int64_t)class_size(c);
    memcpy(p, &h->free[c], sizeof(void *));
    h->free[c] = p;
}

void *blob_realloc(blob_heap_t *h, void *p, size_t old_n, size_t n, int64_t *acct)
{
    if (p == NULL)
        return blob_alloc(h, n, acct);
    if (old_n > BLOB_MAX && n > BLOB_MAX)
        return store_realloc(p, old_n, n, acct);
    if (old_n <= BLOB_MAX && n <= BLOB_MAX && blob_class(old_n) == blob_class(n))
        return p;
    void *q = blob_alloc(h, n, acct);
    memcpy(q, p, old_n < n ? old_n : n);
    blob_free(h, p, old_n, acct);
    return q;
}

size_t blob_heap_pretouch(blob_heap_t *h, size_t bytes)
{
    size_t n = (bytes + BLOB_CHUNK - 1) & ~(BLOB_CHUNK - 1);
    if (h->pool != NULL || n == 0)
        return 0;
    /* one extra chunk of slack to align the start to the chunk size, as huge pages want */
    uint8_t *raw = mmap(NULL, n + BLOB_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        log_fatal("out of memory mapping %zu bytes to pre-touch", n + BLOB_CHUNK);
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + BLOB_CHUNK - 1) & ~(uintptr_t)(BLOB_CHUNK - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (p + n < raw + n + BLOB_CHUNK)
        munmap(p + n, (size_t)(raw + n + BLOB_CHUNK - (p + n)));
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE); /* a hint: without huge pages this is plain memory */
#endif
    long pg = sysconf(_SC_PAGESIZE);
    size_t step = pg > 0 ? (size_t)pg : 4096;
    for (size_t off = 0; off < n; off += step)
        ((volatile uint8_t *)p)[off] = 0;
    h->pool = h->pool_cur = p;
    h->pool_end = p + n;
    return n;
}

void blob_heap_dispose(blob_heap_t *h)
{
    for (size_t i = 0; i < h->n_chunks; i++) {
        uint8_t *c = h->chunks[i];
        if (c < h->pool || c >= h->pool_end)
            free(c);
    }
    if (h->pool != NULL)
        munmap(h->pool, (size_t)(h->pool_end - h->pool));
    free(h->chunks);
    memset(h, 0, sizeof(*h));
}

str_t store_lower(arena_t *arena, str_t s)
{
    /* names are usually lower-case already (decoders lowercase), and then not copied */
    if (utf8_lower(arena, &s, 0) != 0)
        return (str_t){NULL, 0};
    return s;
}

/* ---- u64map ---- */

static uint32_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

uint64_t *u64map_get(const u64map_t *m, uint64_t key)
{
    if (m->slots == NULL)
        return NULL;
    for (uint32_t i = mix(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key)
            return &m->slots[i].val;
        if (m->slots[i].key == U64MAP_EMPTY)
            return NULL;
    }
}

static void rehash(u64map_t *m, uint32_t ncap, int64_t *acct)
{
    u64map_slot_t *ns = store_alloc((size_t)ncap * sizeof(*ns), acct);
    for (uint32_t i = 0; i < ncap; i++)
        ns[i].key = U64MAP_EMPTY;
    if (m->slots != NULL) {
        for (uint32_t i = 0; i <= m->mask; i++) {
            if (m->slots[i].key == U64MAP_EMPTY)
                continue;
            uint32_t j = mix(m->slots[i].key) & (ncap - 1);
            while (ns[j].key != U64MAP_EMPTY)
                j = (j + 1) & (ncap - 1);
            ns[j] = m->slots[i];
        }
        store_free(m->slots, (size_t)(m->mask + 1) * sizeof(*ns), acct);
    }
    m->slots = ns;
    m->mask = ncap - 1;
}

uint64_t *u64map_put(u64map_t *m, uint64_t key, int64_t *acct)
{
    uint64_t *v = u64map_get(m, key);
    if (v != NULL)
        return v;
    if (m->slots == NULL)
        rehash(m, 4, acct);
    else if ((uint64_t)(m->len + 1) * 4 > (uint64_t)(m->mask + 1) * 3)
        rehash(m, (m->mask + 1) * 2, acct);
    uint32_t i = mix(key) & m->mask;
    while (m->slots[i].key != U64MAP_EMPTY)
        i = (i + 1) & m->mask;
    m->slots[i].key = key;
    m->slots[i].val = 0;
    m->len++;
    return &m->slots[i].val;
}

void u64map_del(u64map_t *m, uint64_t key, int64_t *acct)
{
    if (m->slots == NULL)
        return;
    uint32_t i = mix(key) & m->mask;
    while (m->slots[i].key != key) {
        if (m->slots[i].key == U64MAP_EMPTY)
            return;
        i = (i + 1) & m->mask;
    }
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->slots[j].key == U64MAP_EMPTY)
            break;
        uint32_t home = mix(m->slots[j].key) & m->mask;
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = U64MAP_EMPTY;
    m->len--;
    if (m->len == 0) {
        u64map_dispose(m, acct);
    } else if (m->mask + 1 > 16 && (uint64_t)m->len * 8 < (uint64_t)(m->mask + 1)) {
        rehash(m, (m->mask + 1) / 2, acct);
    }
}

void u64map_dispose(u64map_t *m, int64_t *acct)
{
    if (m->slots != NULL)
        store_free(m->slots, (size_t)(m->mask + 1) * sizeof(u64map_slot_t), acct);
    m->slots = NULL;
    m->mask = 0;
    m->len = 0;
}

/* ---- tlist ---- */
