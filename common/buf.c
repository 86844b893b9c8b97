/*
 * buf: see buf.h.
 */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "log.h"

void buf_dispose(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_grow(buf_t *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        log_fatal("out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
}

void buf_reserve_exact(buf_t *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return;
    size_t cap = b->len + extra + 1;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        log_fatal("out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
}

void buf_append(buf_t *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_append_str(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        buf_append(b, tmp, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n + 1);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *buf_put_u64(char *p, uint64_t v)
{
    char tmp[20];
    char *q = tmp + sizeof(tmp);
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t n = (size_t)(tmp + sizeof(tmp) - q);
    memcpy(p, q, n);
    return p + n;
}

void buf_append_u64(buf_t *b, uint64_t v)
{
    buf_reserve(b, 20);
    b->len = (size_t)(buf_put_u64(b->data + b->len, v) - b->data);
    b->data[b->len] = '\0';
}

void buf_append_i64(buf_t *b, int64_t v)
{
    if (v < 0) {
        buf_append_char(b, '-');
        buf_append_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        buf_append_u64(b, (uint64_t)v);
    }
}

void buf_append_prom_label(buf_t *b, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c != '\\' && c != '"' && c != '\n')
            continue;
        buf_append(b, s + start, i - start);
        start = i + 1;
        buf_append(b, c == '\\' ? "\\\\" : c == '"' ? "\\\"" : "\\n", 2);
    }
    buf_append(b, s + start, len - start);
}

void buf_append_json_escaped(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, len + 2);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        case '\b': buf_append(b, "\\b", 2); break;
        case '\f': buf_append(b, "\\f", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, u, 6);
        }
        }
    }
    buf_append(b, s + start, len - start);
}

void buf_append_hex(buf_t *b, const uint8_t *bytes, size_t len)
{
    buf_reserve(b, len * 2);
    hex_encode(bytes, len, b->data + b->len);
    b->len += len * 2;
    b->data[b->len] = '\0';
}

char *buf_steal(buf_t *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
