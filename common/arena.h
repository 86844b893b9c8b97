/*
 * arena: a bump allocator for request-scoped memory.
 *
 * Decoding one HTTP body allocates many small objects (spans, tags, strings)
 * that all die together when the response is sent. An arena hands them out
 * from large blocks and frees everything with one call. Blocks grow
 * geometrically; an optional byte limit makes allocation fail (NULL) instead
 * of growing past it, so a hostile body cannot make us allocate without bound.
 */
#ifndef OUTRIDER_ARENA_H
#define OUTRIDER_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block_t;

typedef struct arena {
    arena_block_t *head; /* current block, newest first */
    size_t used;         /* bytes handed out from head */
    size_t total;        /* bytes of all blocks */
    size_t limit;        /* 0 = unlimited; else total never exceeds it */
} arena_t;

/* Initialise an empty arena; limit is the most bytes it may hold (0 = no limit). */
void arena_init(arena_t *a, size_t limit);

/* Free every block. The arena may be reused after arena_init. */
void arena_dispose(arena_t *a);

/* Forget all allocations but keep the first block for reuse. */
void arena_reset(arena_t *a);

/* Return size bytes aligned to 8, or NULL when the limit would be passed. */
void *arena_alloc(arena_t *a, size_t size);

/* Like arena_alloc but zero-filled. */
void *arena_calloc(arena_t *a, size_t n, size_t size);

/* Copy len bytes of s into the arena and NUL-terminate; NULL on limit. */
char *arena_strndup(arena_t *a, const char *s, size_t len);

#endif
