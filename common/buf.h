/*
 * buf: a growable byte buffer for building responses and encodings.
 *
 * Append functions never fail: out of memory aborts (sizes here come from
 * our own encoders, which are bounded by limits checked upstream).
 */
#ifndef OUTRIDER_BUF_H
#define OUTRIDER_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data; /* heap; owned by the buf; NUL-terminated past len when len > 0 */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} buf_t;

#define BUF_INIT                                                                                                       \
    {                                                                                                                  \
        NULL, 0, 0                                                                                                     \
    }

/* Free the storage; the buf is empty afterwards and can be reused. */
void buf_dispose(buf_t *b);

/* Grow to room for at least extra more bytes (buf_reserve's slow path). */
void buf_grow(buf_t *b, size_t extra);

/* Make room for at least extra more bytes (inline: encoders call it for every field). */
static inline void buf_reserve(buf_t *b, size_t extra)
{
    if (b->cap - b->len <= extra)
        buf_grow(b, extra);
}

/* Make room for exactly extra more bytes (plus the NUL), no geometric slack: for bounded decoders. */
void buf_reserve_exact(buf_t *b, size_t extra);

void buf_append(buf_t *b, const void *data, size_t len);
void buf_append_str(buf_t *b, const char *s);
static inline void buf_append_char(buf_t *b, char c)
{
    buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_append_u64(buf_t *b, uint64_t v);

/* Write v in decimal at p (room for 20 bytes, no NUL); returns the end. For writers that reserved ahead. */
char *buf_put_u64(char *p, uint64_t v);
void buf_append_i64(buf_t *b, int64_t v);

/* Append s as the inside of a JSON string (no surrounding quotes), escaping per RFC 8259. */
void buf_append_json_escaped(buf_t *b, const char *s, size_t len);
/* s[0..len) as a label value of the Prometheus text format: backslash, double quote and newline escaped. */
void buf_append_prom_label(buf_t *b, const char *s, size_t len);

/* Append len bytes as lowercase hex. */
void buf_append_hex(buf_t *b, const uint8_t *bytes, size_t len);

/* Hand the storage to the caller (who frees it with free()); the buf becomes empty. */
char *buf_steal(buf_t *b, size_t *len);

#endif
