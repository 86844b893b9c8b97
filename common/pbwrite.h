/*
 * pbwrite: protobuf wire format written straight into a buf_t, for the
 * encoders that are hot enough not to build protobuf-c structs first (the
 * proxy's OTLP exporter, the collector's Kafka encoders).
 *
 * Fields are written in the order the caller calls; proto3 defaults are the
 * caller's to leave out. Small leaf messages (key/values) get their length
 * computed first; enclosing messages reserve a PB_SLOT-byte length
 * (pb_open) and back-patch it as a non-minimal varint (pb_close), which
 * every parser accepts.
 */
#ifndef OUTRIDER_PBWRITE_H
#define OUTRIDER_PBWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "varint.h"

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };
#define PB_SLOT 5 /* bytes of a back-patched length: 35 bits */


/* Caller has reserved 10 bytes. */
static inline void pb_put_varint(buf_t *b, uint64_t v)
{
    uint8_t *p = varint_write((uint8_t *)b->data + b->len, v);
    b->len = (size_t)((char *)p - b->data);
}

static inline void pb_varint(buf_t *b, uint32_t field, uint64_t v)
{
    buf_reserve(b, 20);
    pb_put_varint(b, (uint64_t)field << 3 | PB_VARINT);
    pb_put_varint(b, v);
    b->data[b->len] = '\0';
}

static inline void pb_fixed(buf_t *b, uint32_t field, uint64_t v, size_t width)
{
    buf_reserve(b, 18);
    pb_put_varint(b, (uint64_t)field << 3 | (width == 8 ? PB_I64 : PB_I32));
    for (size_t i = 0; i < width; i++)
        b->data[b->len++] = (char)(uint8_t)(v >> (8 * i));
    b->data[b->len] = '\0';
}

/* A double field (wire type I64, the IEEE 754 bits little-endian). */
static inline void pb_double(buf_t *b, uint32_t field, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    pb_fixed(b, field, u, 8);
}

static inline void pb_bytes(buf_t *b, uint32_t field, const void *p, size_t n)
{
    buf_reserve(b, 20 + n);
    pb_put_varint(b, (uint64_t)field << 3 | PB_LEN);
    pb_put_varint(b, n);
    buf_append(b, p, n);
}

/* Open a length-delimited field; returns where its length slot is, for pb_close. */
static inline size_t pb_open(buf_t *b, uint32_t field)
{
    buf_reserve(b, 10 + PB_SLOT);
    pb_put_varint(b, (uint64_t)field << 3 | PB_LEN);
    size_t at = b->len;
    b->len += PB_SLOT;
    b->data[b->len] = '\0';
    return at;
}

static inline void pb_close(buf_t *b, size_t at)
{
    uint64_t n = b->len - at - PB_SLOT;
    if (n >> (7 * PB_SLOT))
        log_fatal("protobuf message too large (%llu bytes)", (unsigned long long)n);
    uint8_t *p = (uint8_t *)b->data + at;
    for (int i = 0; i < PB_SLOT - 1; i++)
        p[i] = (uint8_t)((n >> (7 * i)) & 0x7f) | 0x80;
    p[PB_SLOT - 1] = (uint8_t)(n >> (7 * (PB_SLOT - 1)));
}

/* The head of KeyValue{key, AnyValue{...}} as field `field`, up to the AnyValue's body of `any` bytes;
 * room is reserved for that body. */
static inline void pb_kv_begin(buf_t *b, uint32_t field, const char *key, size_t klen, size_t any)
{
    size_t kv = 1 + varint_size(klen) + klen + 1 + varint_size(any) + any;
    buf_reserve(b, 10 + 1 + kv);
    pb_put_varint(b, (uint64_t)field << 3 | PB_LEN);
    pb_put_varint(b, kv);
    b->data[b->len++] = (char)(1 << 3 | PB_LEN);
    pb_put_varint(b, klen);
    memcpy(b->data + b->len, key, klen);
    b->len += klen;
    b->data[b->len++] = (char)(2 << 3 | PB_LEN);
    pb_put_varint(b, any);
}

/* KeyValue{key, AnyValue{string_value}} as field `field`, the value exactly its n bytes (written when empty). */
static inline void pb_kv_bytes(buf_t *b, uint32_t field, const char *key, size_t klen, const char *val, size_t vlen)
{
    pb_kv_begin(b, field, key, klen, 1 + varint_size(vlen) + vlen);
    b->data[b->len++] = (char)(1 << 3 | PB_LEN);
    pb_put_varint(b, vlen);
    if (vlen > 0)
        memcpy(b->data + b->len, val, vlen);
    b->len += vlen;
    b->data[b->len] = '\0';
}

/* KeyValue{key, AnyValue{string_value}} as field `field`, the value cut at vmax bytes or its first NUL;
 * nothing when val is NULL or empty. */
static inline void pb_kv_str(buf_t *b, uint32_t field, const char *key, size_t klen, const char *val, size_t vmax)
{
    if (val == NULL || val[0] == '\0')
        return;
    pb_kv_bytes(b, field, key, klen, val, strnlen(val, vmax));
}

/* KeyValue{key, AnyValue{int_value}} as field `field` (written even when 0: the oneof case is set). */
static inline void pb_kv_int(buf_t *b, uint32_t field, const char *key, size_t klen, int64_t val)
{
    pb_kv_begin(b, field, key, klen, 1 + varint_size((uint64_t)val));
    b->data[b->len++] = (char)(3 << 3 | PB_VARINT);
    pb_put_varint(b, (uint64_t)val);
    b->data[b->len] = '\0';
}

#define KV_STR(b, f, key, val, max) pb_kv_str(b, f, key, sizeof(key) - 1, val, max)
#define KV_INT(b, f, key, val) pb_kv_int(b, f, key, sizeof(key) - 1, val)

#endif
