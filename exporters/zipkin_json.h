/*
 * zipkin_json: Zipkin v2 JSON, both directions.
 *
 * Decoding streams a JSON array of spans through yajl's callback parser (no
 * document tree): field values are taken as slices of the input where they
 * need no unescaping or lowercasing, and copied into the request arena
 * otherwise. Each span is handed to a sink as soon as its object closes.
 * The accepted shapes and the normalisation follow the Zipkin server's
 * V2SpanReader (see zipkin_span.h for the span rules):
 *   - traceId: 1-32 lowercase hex, required; id: 1-16 lowercase hex,
 *     required (shorter ids are left-padded); all-zero ids are rejected;
 *   - parentId: 1-16 lowercase hex, all zeros means absent, null ignored;
 *   - kind: CLIENT, SERVER, PRODUCER or CONSUMER (anything else rejects);
 *   - timestamp, duration, annotation timestamp: integers (or integer
 *     strings), negatives become 0; port: 0..65535 (negative becomes 0);
 *   - tag values: strings or numbers (taken as their text); null or a
 *     boolean rejects; string fields also accept numbers as their text;
 *   - debug, shared: booleans; unknown fields and null optional fields are
 *     skipped;
 *   - strings with ill-formed UTF-8 are repaired (U+FFFD), not refused, as
 *     the Zipkin server's decoder does.
 * Any violation, a syntax error, a body that is not an array
 * of objects, more spans than the limit, nesting deeper than the limit or
 * the arena limit fails the whole request (-1), as Zipkin answers 400.
 * Per-span limits (tags, tag sizes, annotations) drop just that span.
 *
 * Encoding writes Zipkin's exact field order and omission rules into a
 * buf_t by hand (measured 2x faster than yajl_gen, docs/decisions.md).
 */
#ifndef OUTRIDER_ZIPKIN_JSON_H
#define OUTRIDER_ZIPKIN_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "span.h"
#include "zipkin_span.h"

/* One edge of the dependency graph, as GET /api/v2/dependencies returns it. */
typedef struct zipkin_dep_link {
    str_t parent;
    str_t child;
    uint64_t call_count;
    uint64_t error_count; /* omitted from JSON when 0, as Zipkin does */
} zipkin_dep_link_t;

/*
 * Decode a JSON array of v2 spans from data[0..len) (need not be
 * NUL-terminated). Each valid span is passed to sink; its strings, tags and
 * annotations live in the arena or in data, so the span (copied by value)
 * stays valid until the arena is reset and data is freed, even after the
 * sink returns. lim may be NULL for the defaults. Returns 0 with
 * res->accepted / res->rejected set, or -1 with res->error set (spans
 * already given to the sink must then be discarded by the caller). When the
 * sink returns -1 decoding stops and -1 is returned; the sink may write its
 * own reason into res->error first, otherwise a generic one is set.
 */
int zipkin_json_decode(const char *data, size_t len, arena_t *arena, const zipkin_limits_t *lim, span_sink_fn sink,
                       void *ctx, zipkin_result_t *res);

/*
 * Decode a JSON array of traces, each a JSON array of v2 spans (the body
 * of GET /api/v2/traces and /traceMany), as zipkin_json_decode does. The
 * sink is called with a NULL span when a trace's array opens, then with
 * its spans; the span limit counts every span of every trace.
 */
int zipkin_json_decode_traces(const char *data, size_t len, arena_t *arena, const zipkin_limits_t *lim,
                              span_sink_fn sink, void *ctx, zipkin_result_t *res);

/* Append one span as a Zipkin v2 JSON object. */
void zipkin_json_encode_span(const span_t *s, buf_t *out);

/* Append spans[0..n) as a JSON array ("[]" when n is 0). */
void zipkin_json_encode_spans(const span_t *spans, size_t n, buf_t *out);

/*
 * Append a JSON array of traces, each an array of spans: trace i is
 * traces[i][0..counts[i]). This is the body of GET /api/v2/traces.
 */
void zipkin_json_encode_traces(const span_t *const *traces, const size_t *counts, size_t n_traces, buf_t *out);

/* Append v[0..n) as a JSON array of strings (service, span and remote service names). */
void zipkin_json_encode_strings(const str_t *v, size_t n, buf_t *out);

/* Append links[0..n) as Zipkin DependencyLink JSON: [{"parent","child","callCount"[,"errorCount"]}]. */
void zipkin_json_encode_dependencies(const zipkin_dep_link_t *links, size_t n, buf_t *out);

#endif
