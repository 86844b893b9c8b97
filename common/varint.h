/*
 * varint: base-128 varints as protobuf writes them (and as the trace store
 * packs its records). Header-only so hot loops inline them.
 */
#ifndef OUTRIDER_VARINT_H
#define OUTRIDER_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes that varint_write will use for v (1..10). */
static inline size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write v at p (room for varint_size(v) bytes); returns the pointer past it. */
static inline uint8_t *varint_write(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/*
 * Read a varint from p[*pos..len) into *out and advance *pos. Returns 0, or
 * -1 when the input ends first or the varint runs past 10 bytes.
 */
static inline int varint_read(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

#endif
