/*
 * zipkin_proto: Zipkin v2 proto3 ListOfSpans, both directions
 * (common/proto/zipkin/zipkin.proto, upstream field numbers).
 *
 * Decoding unpacks with protobuf-c through an allocator that bumps the
 * request arena (so nothing is freed piecemeal and the arena limit bounds a
 * hostile body), after a cheap scan of the top level that refuses too many
 * spans before anything is allocated. The same rules as the Zipkin server's
 * proto3 reader and the JSON decoder apply (zipkin_span.h): trace_id 1-16
 * bytes (8 or 16 in practice), id 1-8 bytes, both required and non-zero;
 * parent_id empty or all zero means root; unknown kinds are ignored;
 * annotations without a timestamp or value and tags without a key are
 * dropped, as Zipkin does; per-span limits drop the span.
 *
 * Encoding writes ListOfSpans by hand into a buf_t, in field-number order
 * with proto3 default values omitted, byte for byte what Zipkin writes.
 */
#ifndef OUTRIDER_ZIPKIN_PROTO_H
#define OUTRIDER_ZIPKIN_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "span.h"
#include "zipkin_span.h"

/*
 * Decode a proto3 ListOfSpans from data[0..len). Same contract as
 * zipkin_json_decode: spans go to sink one by one, their memory lives in the
 * arena until it is reset (nothing points into data), lim may be NULL, and
 * the return is 0 (res->accepted/rejected) or -1 (res->error, e.g.
 * "Malformed reading List<Span> from proto3: ..."). An empty body decodes
 * to zero spans.
 */
int zipkin_proto_decode(const uint8_t *data, size_t len, arena_t *arena, const zipkin_limits_t *lim, span_sink_fn sink,
                        void *ctx, zipkin_result_t *res);

/* Append spans[0..n) as a serialized ListOfSpans (nothing when n is 0). */
void zipkin_proto_encode_spans(const span_t *spans, size_t n, buf_t *out);

/*
 * Zipkin's SpanBytesDecoderDetector rule for bodies whose content type does
 * not say: 1 when data looks like proto3 ListOfSpans (first byte 0x0a, the
 * key of field 1 with wire type 2, and a non-zero second byte), 0 otherwise
 * (JSON starts with '['; the caller then decodes JSON).
 */
int zipkin_sniff_proto(const uint8_t *data, size_t len);

#endif
