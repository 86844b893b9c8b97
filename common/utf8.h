/*
 * utf8: the collector's text rules for what it stores and matches.
 *
 * - Repair: ill-formed UTF-8 becomes U+FFFD, one replacement per ill-formed
 *   unit exactly as Java's UTF-8 decoder (new String(bytes, UTF_8)) makes
 *   them, so a span reads the same here as in a Zipkin server: a maximal
 *   prefix of a well-formed sequence is one unit, a lone or stray byte is
 *   one, and an encoded surrogate (ED A0..BF xx) is one.
 * - Lowercase: service, span and remote service names and the query
 *   parameters naming them are lowercased as Java's
 *   String.toLowerCase(Locale.ROOT) does: the simple lowercase mapping of
 *   every code point (utf8proc_tolower), plus Java's two special cases,
 *   U+0130 becoming "i" U+0307 and a capital sigma becoming final sigma at
 *   the end of a word (Java's word rules; see docs/decisions.md for what
 *   differs). Lowercasing also repairs.
 *
 * Both keep a fast path for ASCII, eight bytes at a time: strings without
 * a byte >= 0x80 never reach utf8proc, and strings that need no change are
 * not copied.
 */
#ifndef OUTRIDER_UTF8_H
#define OUTRIDER_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "span.h"

/* utf8_lower_to and utf8_repair_to write at most this many bytes per input byte. */
#define UTF8_MAX_GROWTH 3

/* 1 when s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), else 0. */
int utf8_valid(const char *s, size_t len);

/* 1 when s[0..len) is well-formed and lowercasing leaves it unchanged, else 0. */
int utf8_is_lower(const char *s, size_t len);

/*
 * Write s[0..len) repaired and lowercased (the rules above) to out, which
 * must hold UTF8_MAX_GROWTH * len bytes; out NULL only measures. Returns
 * the bytes written (no NUL is added).
 */
size_t utf8_lower_to(char *out, const char *s, size_t len);

/* Like utf8_lower_to, but only repairs. */
size_t utf8_repair_to(char *out, const char *s, size_t len);

/* The parts of utf8_lower and utf8_repair past their inline ASCII tests; call those instead. */
int utf8_lower_slow(arena_t *arena, str_t *s, int copy);
int utf8_repair_slow(arena_t *arena, str_t *s, int copy);

/*
 * The inline tests: every string the collector keeps passes one, so they
 * read eight bytes at a time and handle a short tail with at most three
 * loads, without a call. utf8__flags8 sets the high bit of each byte of x
 * that is >= 0x80 (ascii_only) or, in addition, an ASCII capital.
 */
static inline uint64_t utf8__flags8(uint64_t x, int ascii_only)
{
    const uint64_t high = 0x8080808080808080ull, ones = 0x0101010101010101ull;
    if (ascii_only)
        return x & high;
    uint64_t y = x & ~high; /* 7-bit bytes: the sums below cannot carry into a neighbour */
    /* a 7-bit byte's high bit is set in m exactly when it is in 'A'..'Z' */
    uint64_t m = (y + ones * (0x80 - 'A')) ^ (y + ones * (0x80 - 'Z' - 1));
    return (m | x) & high;
}

static inline int utf8__plain(const char *s, size_t len, int ascii_only)
{
    uint64_t x = 0;
    if (len >= 8) {
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&x, s + i, 8);
            if (utf8__flags8(x, ascii_only))
                return 0;
        }
        memcpy(&x, s + len - 8, 8); /* the last eight, overlapping what was read */
        return utf8__flags8(x, ascii_only) == 0;
    }
    const char *p = s;
    if (len & 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        x = v;
        p += 4;
    }
    if (len & 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        x |= (uint64_t)v << 32;
        p += 2;
    }
    if (len & 1)
        x |= (uint64_t)(unsigned char)*p << 48;
    return utf8__flags8(x, ascii_only) == 0;
}

/*
 * Replace *s by its lowercased (and repaired) form. *s is kept as it is,
 * without a copy, when it is empty, or when lowercasing does not change it
 * and copy is 0; otherwise the result is a NUL-terminated copy in arena.
 * 0, or -1 when the arena refuses (or the result would pass 4 GiB); *s is
 * then unchanged.
 */
static inline int utf8_lower(arena_t *arena, str_t *s, int copy)
{
    if (!copy && utf8__plain(s->ptr, s->len, 0))
        return 0;
    return utf8_lower_slow(arena, s, copy);
}

/* Like utf8_lower, but only repairs: *s stays when it is valid UTF-8 and copy is 0. */
static inline int utf8_repair(arena_t *arena, str_t *s, int copy)
{
    if (!copy && utf8__plain(s->ptr, s->len, 1))
        return 0;
    return utf8_repair_slow(arena, s, copy);
}

#endif
