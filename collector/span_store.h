/*
 * span_store: the collector's in-memory trace store, with the indexes the
 * Zipkin query API needs.
 *
 * Semantics follow the Zipkin server's in-memory storage and QueryRequest:
 *
 *  - Spans are grouped into traces by trace id. With strict_trace_id (the
 *    Zipkin default) a 128-bit id must match exactly; without it traces are
 *    keyed by the low 64 bits and each span keeps its own high bits.
 *  - A span arriving with the same (span id, shared flag, compatible local
 *    endpoint) as a stored span of the same trace is merged into it like
 *    zipkin2.Span.Builder.merge (stored scalar fields win, missing ones are
 *    filled in, tags are unioned with the newer value winning, annotations
 *    unioned and de-duplicated). A client span and the shared server span
 *    with the same id stay two spans. Spans are normalised as Zipkin's span
 *    builder does (parent id equal to id dropped, shared dropped on CLIENT,
 *    tags sorted by key, annotations sorted by time and de-duplicated).
 *  - Reads return the stored spans as they are: like Zipkin's server, whose
 *    /api/v2/trace/{id} returns the raw stored spans and leaves
 *    Trace.merge's clean-ups (shared flag backfill, parent of a shared
 *    server span) to the UI. The dependency linker applies them, as Zipkin's
 *    DependencyLinker does.
 *  - A trace's timestamp is QueryRequest.test's: the first root span's
 *    timestamp, else the earliest span timestamp. Searches return the most
 *    recent traces first.
 *  - When the store holds more than max_spans spans or max_bytes bytes,
 *    whole traces are evicted, oldest arrival first.
 *
 * Thread-safe: one rwlock; inserts take it once per batch, queries share it
 * (span_store_dependencies takes it exclusively to settle pending link
 * updates). Query results are decoded into a caller arena and stay valid
 * after the lock is released.
 */
#ifndef OUTRIDER_SPAN_STORE_H
#define OUTRIDER_SPAN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "span.h"

typedef struct span_store span_store_t;

typedef struct span_store_config {
    size_t max_spans;                     /* evict above this many spans; 0 = no span bound */
    size_t max_bytes;                     /* evict above this many bytes of store memory; 0 = no bound */
    int strict_trace_id;                  /* 1 (default): 128-bit ids match exactly; 0: low 64 bits */
    const char *const *autocomplete_keys; /* tag keys whose values are indexed; copied */
    size_t n_autocomplete_keys;
    uint32_t dep_bucket_ms;   /* dependency link time grain (default 60000) */
    uint32_t dep_settle_ms;   /* a changed trace's links are recomputed after this (default 1000) */
    uint32_t max_trace_spans; /* spans beyond this many in one trace are dropped; 0 = no cap.
                                 Dependency links are recomputed per changed trace, so a cap
                                 bounds what one hostile trace can cost. */
    int pretouch;             /* 1: map and write max_bytes of span memory at create, so ingest never waits
                                 for the kernel to zero fresh pages (like the JVM's AlwaysPreTouch) */
} span_store_config_t;

/* Fill cfg with the defaults: 500000 spans, no byte bound, strict ids, no autocomplete keys. */
void span_store_config_default(span_store_config_t *cfg);

typedef struct span_store_stats {
    uint64_t spans;
    uint64_t traces;
    uint64_t bytes; /* store's own accounting: blobs, indexes, interned strings */
    uint64_t evicted_spans;
    uint64_t evicted_traces;
    uint64_t services;
} span_store_stats_t;

/* One trace of a result: spans in arrival order. */
typedef struct span_trace {
    const span_t *spans;
    size_t n_spans;
} span_trace_t;

typedef struct trace_result {
    span_trace_t *traces;
    size_t n_traces;
} trace_result_t;

/* A trace id as the API passes it: high is 0 for a 64-bit id. */
typedef struct span_trace_id {
    uint64_t high;
    uint64_t low;
} span_trace_id_t;

/* One annotationQuery term: a bare key (value.len == 0) or key=value. */
typedef struct span_query_term {
    str_t key;
    str_t value;
} span_query_term_t;

/* Mirrors zipkin2.storage.QueryRequest. Strings with len 0 are unset. */
typedef struct span_query {
    str_t service_name;
    str_t remote_service_name;
    str_t span_name;                /* "all" means unset, as in Zipkin */
    const span_query_term_t *terms; /* from span_query_parse_annotation_query */
    size_t n_terms;
    uint64_t min_duration_us; /* 0 = unset */
    uint64_t max_duration_us; /* 0 = unset; only valid with min_duration_us */
    uint64_t end_ts_ms;       /* required, > 0 */
    uint64_t lookback_ms;     /* required, > 0 */
    uint32_t limit;           /* required, > 0 */
} span_query_t;

typedef struct span_dep_link {
    str_t parent;
    str_t child;
    uint64_t call_count;
    uint64_t error_count;
} span_dep_link_t;

/* Create a store (cfg NULL = defaults). Returns NULL on a bad config. Free with span_store_destroy. */
span_store_t *span_store_create(const span_store_config_t *cfg);

/* Free the store and everything in it; NULL is a no-op. */
void span_store_destroy(span_store_t *st);

/*
 * Copy n spans in (the caller's memory may die afterwards), merge duplicates,
 * update the indexes and evict to stay within bounds. now_us is the arrival
 * time (used for spans without timestamps and for settling dependency
 * links). Spans without a trace id or span id, and any span for a trace
 * already at max_trace_spans, are skipped. Returns the number of spans
 * accepted (>= 0).
 */
int span_store_insert(span_store_t *st, const span_t *spans, size_t n, uint64_t now_us);

/*
 * span_store_insert for spans read from one origin (a Kafka partition the
 * caller numbers 1..65535): traces it creates remember it, so that
 * span_store_drop_origin can take them out again.
 */
int span_store_insert_from(span_store_t *st, const span_t *spans, size_t n, uint64_t now_us, uint16_t origin);

/*
 * Remove every trace created from origin (not counted as evicted): the
 * store's side of a Kafka partition this collector no longer owns. O(traces
 * stored). Returns the number of traces removed.
 */
size_t span_store_drop_origin(span_store_t *st, uint16_t origin);

/*
 * Spans of one trace, decoded into arena (strings included). Returns 0 and
 * sets *spans / *n when found, -1 when not found or the arena is exhausted.
 */
int span_store_get_trace(span_store_t *st, uint64_t trace_id_high, uint64_t trace_id_low, arena_t *arena,
                         const span_t **spans, size_t *n);

/*
 * Check a query the way QueryRequest.Builder.build does. Returns 0, or -1
 * with *reason set to a static message (e.g. "maxDuration is only valid with
 * minDuration").
 */
int span_query_validate(const span_query_t *q, const char **reason);

/*
 * Parse Zipkin's annotationQuery syntax ("http.method=GET and error"): terms
 * split on " and ", each trimmed; "key=value" constrains a tag, a bare key
 * matches an annotation value or a tag key. A later key=value replaces an
 * earlier term with the same key; a bare key never replaces one. Terms are
 * allocated from arena and point into it. Returns 0, or -1 with *reason for
 * an empty term or key, more than 100 terms, or arena exhaustion.
 */
int span_query_parse_annotation_query(const char *s, size_t len, arena_t *arena, span_query_term_t **terms, size_t *n,
                                      const char **reason);

/*
 * Traces matching q (QueryRequest.test semantics), most recent first, at
 * most q->limit. Results are decoded into arena. Returns 0, or -1 for an
 * invalid query (see span_query_validate) or arena exhaustion.
 */
int span_store_get_traces(span_store_t *st, const span_query_t *q, arena_t *arena, trace_result_t *out);

/* The traces among ids that are stored (duplicates once), in request order. 0, or -1 on arena exhaustion. */
int span_store_get_many(span_store_t *st, const span_trace_id_t *ids, size_t n_ids, arena_t *arena,
                        trace_result_t *out);

/* Sorted local service names. Strings are copied into arena. 0, or -1 on arena exhaustion. */
int span_store_service_names(span_store_t *st, arena_t *arena, str_t **names, size_t *n);

/* Sorted span names recorded by service (matched lowercased). 0, or -1 on arena exhaustion. */
int span_store_span_names(span_store_t *st, str_t service, arena_t *arena, str_t **names, size_t *n);

/* Sorted remote service names seen by service. 0, or -1 on arena exhaustion. */
int span_store_remote_service_names(span_store_t *st, str_t service, arena_t *arena, str_t **names, size_t *n);

/*
 * Dependency links of the traces whose timestamp falls in the dependency
 * buckets overlapping [end_ts_ms - lookback_ms, end_ts_ms], summed per
 * (parent, child) and sorted by parent then child. Links follow Zipkin's
 * DependencyLinker. 0, or -1 on arena exhaustion.
 */
int span_store_dependencies(span_store_t *st, uint64_t end_ts_ms, uint64_t lookback_ms, arena_t *arena,
                            span_dep_link_t **links, size_t *n);

/* The configured autocomplete keys, sorted. 0, or -1 on arena exhaustion. */
int span_store_autocomplete_keys(span_store_t *st, arena_t *arena, str_t **keys, size_t *n);

/* Sorted values seen for a configured autocomplete key (none for other keys). 0, or -1 on arena exhaustion. */
int span_store_autocomplete_values(span_store_t *st, str_t key, arena_t *arena, str_t **values, size_t *n);

/* Current counters. */
void span_store_stats(span_store_t *st, span_store_stats_t *out);

#endif
