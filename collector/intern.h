/*
 * intern: a refcounted string intern table for the span store.
 *
 * Low-cardinality strings (service names, span names, tag keys) are kept
 * once and referred to by a small integer id, so a stored span holds a
 * 1-2 byte varint instead of the bytes. Every reference is counted; when
 * the last reference goes the string is freed and its id reused, so
 * high-cardinality input does not accumulate. Ids stay small because freed
 * ids are handed out again first.
 *
 * Not thread-safe: the span store serialises access with its own lock
 * (lookups without references are safe under a shared lock).
 */
#ifndef OUTRIDER_INTERN_H
#define OUTRIDER_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "span.h"

#define INTERN_NONE UINT32_MAX

typedef struct intern intern_t;

/* Create an empty table; aborts on out of memory. Free with intern_destroy. */
intern_t *intern_create(void);

/* Free the table and every string; NULL is a no-op. */
void intern_destroy(intern_t *t);

/* Id of s (created when new) with one more reference held by the caller. */
uint32_t intern_acquire(intern_t *t, const char *s, size_t len);

/*
 * Like intern_acquire, but first tries hint (any value, e.g. the id this
 * caller got for the same kind of string last time): when hint is a live id
 * whose bytes equal s, it is taken without hashing.
 */
uint32_t intern_acquire_hint(intern_t *t, uint32_t hint, const char *s, size_t len);

/*
 * Id of s lower-cased as Zipkin does (utf8_lower: Unicode, ill-formed UTF-8
 * repaired), created when new, with one more reference held by the caller.
 * hint is tried first as in intern_acquire_hint. Input that is lower-case
 * already is neither copied nor scanned separately: each entry records
 * whether lowercasing would change its bytes.
 */
uint32_t intern_acquire_lower(intern_t *t, uint32_t hint, const char *s, size_t len);

/* Id of s without taking a reference, or INTERN_NONE. */
uint32_t intern_find(const intern_t *t, const char *s, size_t len);

/* Take one more reference on a live id. */
void intern_ref(intern_t *t, uint32_t id);

/* Drop one reference; the string is freed when it was the last one. */
void intern_release(intern_t *t, uint32_t id);

/* The bytes of a live id; valid until its last reference is released. */
str_t intern_str(const intern_t *t, uint32_t id);

/* Bytes held by the table (strings, entries, hash slots, malloc overhead estimate). */
size_t intern_bytes(const intern_t *t);

/* Number of live strings. */
size_t intern_count(const intern_t *t);

#endif
