/*
 * zipkin_span: the rules a Zipkin server applies to every incoming v2 span,
 * shared by the JSON (zipkin_json) and proto3 (zipkin_proto) decoders, plus
 * the request limits and result record both decoders use.
 *
 * Rules followed (openzipkin/zipkin Span.Builder, Endpoint.Builder):
 * name and serviceName are lowercased as Java's toLowerCase(Locale.ROOT)
 * does (utf8_lower) and empty means absent; tag keys and values and
 * annotation values are repaired to valid UTF-8 (utf8_repair), as a Java
 * decoder reads them, and the size limits apply to the repaired strings; a
 * parent id equal to the span id is
 * dropped; "shared" is cleared on CLIENT spans; tags are kept sorted by key
 * with the last duplicate winning (a TreeMap); annotations are sorted by
 * (timestamp, value) with exact duplicates removed; an endpoint with no
 * service name, address or port is absent; an address that does not parse is
 * ignored, and IPv4-embedded IPv6 addresses become IPv4.
 */
#ifndef OUTRIDER_ZIPKIN_SPAN_H
#define OUTRIDER_ZIPKIN_SPAN_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "span.h"

/* Per-request limits; a zero field means "use the default". */
typedef struct zipkin_limits {
    uint32_t max_spans;         /* per request; past it the request fails */
    uint32_t max_tags;          /* per span; past it the span is rejected */
    uint32_t max_tag_key_len;   /* bytes; a longer key rejects the span */
    uint32_t max_tag_value_len; /* bytes; a longer value rejects the span */
    uint32_t max_annotations;   /* per span; past it the span is rejected */
    uint32_t max_depth;         /* JSON nesting levels (the span list is level 1); capped at 64 */
} zipkin_limits_t;

#define ZIPKIN_DEFAULT_MAX_SPANS 10000u
#define ZIPKIN_DEFAULT_MAX_TAGS 128u
#define ZIPKIN_DEFAULT_MAX_TAG_KEY_LEN 256u
#define ZIPKIN_DEFAULT_MAX_TAG_VALUE_LEN 32768u
#define ZIPKIN_DEFAULT_MAX_ANNOTATIONS 128u
#define ZIPKIN_DEFAULT_MAX_DEPTH 16u
#define ZIPKIN_MAX_DEPTH_CAP 64u

/*
 * Outcome of one decode call. accepted: spans handed to the sink (which
 * returned 0). rejected: well-formed spans dropped for a per-span limit.
 * error: on -1 the reason the whole request failed ("Malformed reading
 * List<Span> from json: ..." and similar); on 0 the reason the first span
 * was rejected, or "" when none was.
 */
typedef struct zipkin_result {
    uint32_t accepted;
    uint32_t rejected;
    char error[256];
} zipkin_result_t;

/* Copy *in (or the defaults when in is NULL) into *out, filling zero fields with defaults. */
void zipkin_span_limits(const zipkin_limits_t *in, zipkin_limits_t *out);

/* Zero the counters and the error text. */
void zipkin_span_result_init(zipkin_result_t *res);

/* printf into res->error (truncating) and return -1. */
int zipkin_span_fail(zipkin_result_t *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Parse an address as Zipkin's Endpoint.parseIp(String) does: dotted IPv4,
 * IPv6 text, or "::a.b.c.d" / "::ffff:a.b.c.d" (stored as IPv4). Sets the
 * ipv4 or ipv6 field of ep and returns 0; returns -1 and leaves ep untouched
 * when the text is not an address (the caller ignores the field).
 */
int zipkin_span_ip_text(span_endpoint_t *ep, const char *s, size_t len);

/*
 * Like zipkin_span_ip_text for the proto3 byte forms: 4 bytes are IPv4, 16
 * bytes IPv6 (IPv4-compatible ::a.b.c.d becomes IPv4); other lengths -1.
 */
int zipkin_span_ip_bytes(span_endpoint_t *ep, const uint8_t *b, size_t len);

/* Dotted-quad text plus NUL into out[16]; returns the length. */
size_t zipkin_span_format_ipv4(const uint8_t ip[4], char out[16]);

/* Zipkin's IPv6 text form (longest zero run compressed) plus NUL into out[40]; returns the length. */
size_t zipkin_span_format_ipv6(const uint8_t ip[16], char out[40]);

/*
 * Apply the span rules above (but lowercasing and repair, which the
 * decoders do as they read strings, before the size limits) to *s and give
 * it its tags and annotations: tags[0..n_tags) and anns[0..n_anns) are
 * sorted and deduplicated in place (they may be scratch memory), then
 * copied into the arena and s->tags / s->annotations point at the copies.
 * Returns 0, or -1 when the arena limit is reached.
 */
int zipkin_span_finish(span_t *s, span_tag_t *tags, uint32_t n_tags, span_annotation_t *anns, uint32_t n_anns,
                       arena_t *arena);

#endif
