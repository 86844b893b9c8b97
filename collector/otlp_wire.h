/*
 * otlp_wire: a hand-written, single-pass protobuf decoder for exactly one
 * message, OTLP's ExportTraceServiceRequest. It fills the very same
 * protobuf-c generated structs that protobuf_c_message_unpack would, so
 * otlp.c keeps one mapping from structs to span_t. The collector's hot path
 * is otlp_direct (wire straight to span_t); otlp_wire decodes the bodies
 * otlp_direct declines, and on their own (otlp_wire_decode_part) the
 * messages it hands over. Its wire primitives (bottom of this header) are
 * shared with otlp_direct so that both accept exactly the same encodings.
 *
 * Design: the body is copied once into the arena (or taken as is, see
 * otlp_wire_decode_traces_inplace) and decoded in place. bytes fields
 * point into that copy; a string is moved back over its own tag (at least
 * 1 byte, already consumed), its length is re-encoded just before it
 * (otlp_wire_strlen reads it back, so nobody needs strlen) and it is
 * NUL-terminated, so no string costs an allocation. Repeated fields
 * of the outer messages (request, ResourceSpans, ScopeSpans, ArrayValue)
 * are counted by a cheap scan of their parent message first, then element
 * structs and pointer arrays come from one arena allocation per field;
 * the others (attributes, events, links), where a counting pass would
 * cost as much as the decode, grow by doubling in the arena instead.
 * Nesting is bounded during the pass itself (AnyValue <-> ArrayValue /
 * KeyValueList is the only recursion).
 *
 * Acceptance is that of the generic path it replaces (the depth pre-check
 * plus protobuf-c 1.4 unpack): tags of at most 5 bytes with field numbers
 * 1..2^29-1, varints of at most 10 bytes, length prefixes of at most 5
 * bytes that fit the enclosing message, wire types 0/1/2/5 only (groups
 * are rejected), the declared wire type for every known field (bool takes
 * any, as protobuf-c does), unknown fields skipped. Scalars and strings:
 * last value wins; oneof: last member wins; a singular message field given
 * twice is merged the way protobuf-c merges (repeated fields concatenated,
 * strings and oneofs of the later copy win when present, scalars of the
 * later copy win, and protobuf-c's oneof merge quirks are kept, see
 * merge_any). No packable repeated fields exist in these messages.
 *
 * Threading: none; reentrant.
 */
#ifndef OUTRIDER_OTLP_WIRE_H
#define OUTRIDER_OTLP_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#define OTLP_WIRE_INVALID (-1) /* body is not a valid request; err says why */
#define OTLP_WIRE_NOMEM (-2)   /* the arena refused an allocation */

/*
 * Decode data/len (a serialized ExportTraceServiceRequest) into *out.
 * max_depth bounds message nesting, the request itself being level 1 (0 is
 * taken as 1). Everything *out points to lives in arena (data is not
 * modified and may be freed after the call); the structs are only for
 * reading: do not pass them to protobuf_c_message_free_unpacked.
 * Returns 0; OTLP_WIRE_INVALID with "invalid protobuf: ... at offset N" in
 * err (err_size bytes, always NUL-terminated); or OTLP_WIRE_NOMEM (err
 * untouched). *out is set only on success, and then *ascii (unless ascii is
 * NULL) to 1 when no string of the request has a byte >= 0x80 (so none
 * needs a UTF-8 check), else 0.
 */
int otlp_wire_decode_traces(const uint8_t *data, size_t len, unsigned max_depth, arena_t *arena,
                            Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest **out, int *ascii,
                            char *err, size_t err_size);

/*
 * Length of a string field of a decoded request, without scanning it:
 * every string the decoder produces (any char * in *out, or the shared
 * protobuf_c_empty_string of absent fields, or NULL, both 0) carries its
 * length in the bytes just before it. Only for strings of otlp_wire's
 * output; anything else is undefined.
 */
static inline size_t otlp_wire_strlen(const char *str)
{
    if (str == NULL || str == protobuf_c_empty_string)
        return 0;
    const uint8_t *p = (const uint8_t *)str - 1;
    size_t v = *p & 0x7f;
    unsigned shift = 7;
    while ((*p & 0x80) && shift < 35) {
        p--;
        v |= (size_t)(*p & 0x7f) << shift;
        shift += 7;
    }
    return v;
}

/*
 * The same, decoding data/len in place instead of a copy: data is
 * overwritten (strings are moved within it), and the bytes and strings of
 * *out point into it, so data must outlive every use of *out and not be
 * changed meanwhile. Saves copying the body when the caller owns a
 * scratch copy anyway (a decompressed body). data may be NULL when len is 0.
 */
int otlp_wire_decode_traces_inplace(uint8_t *data, size_t len, unsigned max_depth, arena_t *arena,
                                    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest **out,
                                    int *ascii, char *err, size_t err_size);

/* The messages otlp_wire_decode_part decodes on their own. */
enum otlp_wire_part {
    OTLP_WIRE_PART_RESOURCE, /* *out: Opentelemetry__Proto__Resource__V1__Resource */
    OTLP_WIRE_PART_SCOPE,    /* *out: Opentelemetry__Proto__Common__V1__InstrumentationScope */
    OTLP_WIRE_PART_SPAN,     /* *out: Opentelemetry__Proto__Trace__V1__Span */
};

/*
 * Decode one message of a request on its own, in place like
 * otlp_wire_decode_traces_inplace: data/len is the message's payload (a
 * copy the caller owns), depth the level it has in the request (a
 * Resource 3, a Scope or a Span 4), so nesting is bounded exactly as in a
 * whole-request decode. This is how otlp_direct hands an unusual part to
 * the general decoder. Offsets in err are relative to data.
 * Returns 0, OTLP_WIRE_INVALID or OTLP_WIRE_NOMEM like the above.
 */
int otlp_wire_decode_part(enum otlp_wire_part part, uint8_t *data, size_t len, unsigned depth, unsigned max_depth,
                          arena_t *arena, void **out, char *err, size_t err_size);

/*
 * Wire primitives, with protobuf-c 1.4's acceptance, shared by otlp_wire
 * and otlp_direct. Each reads at p (p < end for the tag) and returns the
 * number of bytes it consumed, or one of these negative codes.
 */
enum {
    OTLP_PB_TRUNCATED = -1, /* the input ends inside the item */
    OTLP_PB_TOO_LONG = -2,  /* a varint past 10 bytes, a tag or length prefix past 5 */
    OTLP_PB_BAD_FIELD = -3, /* field number 0 or above 2^29-1 */
};

#define OTLP_PB_MAX_FIELD 536870911u

/* Varint of at most 10 bytes; bits past 64 are dropped (as protobuf-c does). */
static inline int otlp_pb_varint(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    if (p < end && *p < 0x80) {
        *out = *p;
        return 1;
    }
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p + i >= end)
            return OTLP_PB_TRUNCATED;
        uint8_t b = p[i];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return p + 10 >= end ? OTLP_PB_TRUNCATED : OTLP_PB_TOO_LONG;
}

/* Tag of at most 5 bytes: *key = field number << 3 | wire type, numbers 1..2^29-1. */
static inline int otlp_pb_tag(const uint8_t *p, const uint8_t *end, uint32_t *key)
{
    uint8_t b = *p;
    if (b < 0x80) {
        if (b < 8)
            return OTLP_PB_BAD_FIELD;
        *key = b;
        return 1;
    }
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (p + i >= end)
            return OTLP_PB_TRUNCATED;
        b = p[i];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            uint64_t n = v >> 3;
            if (n == 0 || n > OTLP_PB_MAX_FIELD)
                return OTLP_PB_BAD_FIELD;
            *key = (uint32_t)v;
            return i + 1;
        }
    }
    return OTLP_PB_TOO_LONG;
}

/* Length prefix of at most 5 bytes whose payload fits before end (and INT_MAX): *n. */
static inline int otlp_pb_len(const uint8_t *p, const uint8_t *end, size_t *n)
{
    uint64_t v;
    int k;
    if (p < end && *p < 0x80) {
        v = *p;
        k = 1;
    } else {
        v = 0;
        for (k = 0;; k++) {
            if (p + k >= end)
                return OTLP_PB_TRUNCATED;
            if (k == 5)
                return OTLP_PB_TOO_LONG;
            uint8_t b = p[k];
            v |= (uint64_t)(b & 0x7f) << (7 * k);
            if (!(b & 0x80))
                break;
        }
        k++;
    }
    if (v > (uint64_t)(end - (p + k)) || v > 2147483647u)
        return OTLP_PB_TRUNCATED;
    *n = (size_t)v;
    return k;
}

/* Little-endian fixed64 / fixed32 at p. */
static inline uint64_t otlp_pb_ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t otlp_pb_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* protobuf-c's bool: true when any 7-bit group of the field's bytes [s, e) is non-zero, whatever the wire type. */
static inline int otlp_pb_raw_bool(const uint8_t *s, const uint8_t *e)
{
    for (; s < e; s++)
        if (*s & 0x7f)
            return 1;
    return 0;
}

#endif
