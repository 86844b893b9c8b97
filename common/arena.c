/*
 * arena: bump allocation from a chain of blocks; see arena.h.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct arena_block {
    arena_block_t *next;
    size_t size; /* usable bytes after the header */
    _Alignas(16) unsigned char data[];
};

#define ARENA_FIRST_BLOCK 4096

void arena_init(arena_t *a, size_t limit)
{
    a->head = NULL;
    a->used = 0;
    a->total = 0;
    a->limit = limit;
}

void arena_dispose(arena_t *a)
{
    arena_block_t *b = a->head;
    while (b != NULL) {
        arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
    a->total = 0;
}

void arena_reset(arena_t *a)
{
    if (a->head == NULL)
        return;
    /* keep the largest (newest) block, free the rest */
    arena_block_t *b = a->head->next;
    while (b != NULL) {
        arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->head->next = NULL;
    a->total = a->head->size;
    a->used = 0;
}

void *arena_alloc(arena_t *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    if (size == 0)
        size = 8;
    if (a->head == NULL || a->head->size - a->used < size) {
        size_t want = a->head ? a->head->size * 2 : ARENA_FIRST_BLOCK;
        if (want < size)
            want = size;
        if (a->limit != 0) {
            if (a->total >= a->limit || a->limit - a->total < size)
                return NULL;
            if (want > a->limit - a->total)
                want = a->limit - a->total;
        }
        arena_block_t *b = malloc(sizeof(*b) + want);
        if (b == NULL)
            log_fatal("out of memory allocating %zu bytes", want);
        b->next = a->head;
        b->size = want;
        a->head = b;
        a->used = 0;
        a->total += want;
    }
    void *p = a->head->data + a->used;
    a->used += size;
    return p;
}

void *arena_calloc(arena_t *a, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = arena_alloc(a, n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
