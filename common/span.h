/*
 * span: the Zipkin v2 span model that every decoder produces and every
 * encoder and the span store consume.
 *
 * A span_t is a plain view: its strings are (pointer, length) slices that
 * point into memory owned by someone else (a request arena, a decoded
 * protobuf, a store blob being read). Nothing in a span_t is freed through
 * it. Absent optional numbers are 0; absent strings have len 0.
 *
 * Ids: trace_id_high is 0 for 64-bit trace ids. span ids are never 0 in a
 * valid span; parent_id 0 means "root".
 */
#ifndef OUTRIDER_SPAN_H
#define OUTRIDER_SPAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct str {
    const char *ptr;
    uint32_t len;
} str_t;

#define STR_NULL ((str_t){NULL, 0})
#define STR_LIT(s) ((str_t){(s), (uint32_t)(sizeof(s) - 1)})

enum span_kind {
    SPAN_KIND_UNSPECIFIED = 0,
    SPAN_KIND_CLIENT,
    SPAN_KIND_SERVER,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_CONSUMER,
};

typedef struct span_endpoint {
    str_t service_name; /* stored and queried lowercased, as Zipkin does */
    uint8_t ipv4[4];
    uint8_t ipv6[16];
    uint16_t port; /* 0 = absent */
    uint8_t has_ipv4;
    uint8_t has_ipv6;
} span_endpoint_t;

typedef struct span_annotation {
    uint64_t timestamp_us;
    str_t value;
} span_annotation_t;

typedef struct span_tag {
    str_t key;
    str_t value;
} span_tag_t;

typedef struct span {
    uint64_t trace_id_high; /* 0 for a 64-bit trace id */
    uint64_t trace_id_low;
    uint64_t parent_id; /* 0 = root */
    uint64_t id;
    enum span_kind kind;
    str_t name;            /* lowercased, as Zipkin does */
    uint64_t timestamp_us; /* epoch microseconds; 0 = absent */
    uint64_t duration_us;  /* 0 = absent */
    span_endpoint_t local; /* has_local = 0: absent */
    span_endpoint_t remote;
    uint8_t has_local;
    uint8_t has_remote;
    uint8_t debug;
    uint8_t shared;
    uint32_t n_annotations;
    uint32_t n_tags;
    const span_annotation_t *annotations;
    const span_tag_t *tags;
} span_t;

/* Names of the kinds as Zipkin's JSON writes them ("CLIENT"...); NULL for unspecified. */
const char *span_kind_name(enum span_kind kind);

/* Parse "CLIENT", "SERVER", "PRODUCER", "CONSUMER"; -1 otherwise. */
int span_kind_parse(const char *s, size_t len);

/*
 * Parse a hex id of 1..16 chars (span ids, Zipkin accepts shorter ones
 * left-padded) into *out. Returns 0, or -1 for empty, too long, non-hex or
 * an all-zero id.
 */
int span_parse_id(const char *s, size_t len, uint64_t *out);

/*
 * Parse a trace id of 1..32 hex chars; >16 chars fill high. Returns 0 or -1
 * (empty, too long, non-hex, all zero).
 */
int span_parse_trace_id(const char *s, size_t len, uint64_t *high, uint64_t *low);

/* Write a 16-hex id (lowercase, zero-padded) plus NUL into out[17]. */
void span_format_id(uint64_t id, char out[17]);

/* Write the trace id as 16 or 32 hex chars plus NUL into out[33]; returns length. */
size_t span_format_trace_id(uint64_t high, uint64_t low, char out[33]);

/* Big-endian byte form of ids as used by protobuf: 8 or 16 bytes. */
uint64_t span_id_from_bytes(const uint8_t *b); /* reads 8 bytes */
void span_id_to_bytes(uint64_t id, uint8_t out[8]);

/*
 * Callback that receives decoded spans, one at a time. The span and the
 * memory it points to are valid only during the call. Return 0 to go on,
 * -1 to stop decoding (the decoder then returns -1 with the sink's reason).
 */
typedef int (*span_sink_fn)(void *ctx, const span_t *span);

/* 1 when a and b have the same bytes (both may be empty with any pointer). */
int str_equal(str_t a, str_t b);

/*
 * Order of a and b by their bytes (unsigned), a prefix first: <0, 0, >0.
 * The order of every sorted name list and of dependency links, which the
 * query role's merge must reproduce.
 */
int str_compare(str_t a, str_t b);

/* 1 when two spans are equal field by field: ids, names, times, endpoints, tags and annotations in order. */
int span_equal(const span_t *a, const span_t *b);

/* A growable array of span_t views, the usual sink target. Zero-initialise; free with span_vec_dispose. */
typedef struct span_vec {
    span_t *items; /* heap, owned */
    size_t n, cap;
} span_vec_t;

/* span_sink_fn that appends a copy of *span (the struct, not what it points to) to ctx, a span_vec_t. */
int span_vec_sink(void *ctx, const span_t *span);

/* span_sink_fn that only counts: ctx is a size_t. */
int span_count_sink(void *ctx, const span_t *span);

void span_vec_dispose(span_vec_t *v);

#endif
