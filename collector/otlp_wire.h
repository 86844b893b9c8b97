/*
 * otlp_wire: a hand-written, single-pass protobuf decoder for exactly one
 * message, OTLP's ExportTraceServiceRequest, the collector's hot ingest
 * path. It fills the very same protobuf-c generated structs that
 * protobuf_c_message_unpack would, so otlp.c keeps one mapping to span_t.
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
                            Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest **out,
                            int *ascii, char *err, size_t err_size);

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

#endif
