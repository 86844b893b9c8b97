/*
 * xalloc: heap allocation that cannot fail.
 *
 * For fixed-size and config-sized allocations (STYLE.md: out of memory on
 * those aborts with a message). Sizes that come from the network are checked
 * against limits before they get here; arenas with a byte limit are the tool
 * for anything a peer can grow.
 */
#ifndef OUTRIDER_XALLOC_H
#define OUTRIDER_XALLOC_H

#include <stddef.h>

/*
 * malloc, calloc, realloc and strdup that never return NULL: out of memory
 * (or a calloc size that overflows) logs "out of memory ..." with the size
 * and aborts. A size of 0 allocates one byte, so the result is always a
 * unique pointer. The caller frees the result with free().
 */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);

/* A heap copy of the NUL-terminated s (which must not be NULL). */
char *xstrdup(const char *s);

#endif
