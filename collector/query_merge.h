/*
 * query_merge: how a query member (query.peers) combines the answers of
 * the store members into the answer one collector holding every trace
 * would give. Pure functions over decoded values; no I/O.
 *
 * The orders are the span store's: names and dependency links sorted by
 * their bytes (span_store.h), traces of a search most recent first by the
 * trace timestamp of QueryRequest.test. A trace held by several members
 * (during a Kafka rebalance) is the concatenation of their spans, member
 * by member, without the spans that are exact copies of an earlier one.
 */
#ifndef OUTRIDER_COLLECTOR_QUERY_MERGE_H
#define OUTRIDER_COLLECTOR_QUERY_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "span.h"
#include "zipkin_json.h"

/* Sort v[0..n) by bytes and drop repeats, in place. Returns the count left. */
size_t query_merge_names(str_t *v, size_t n);

/*
 * Sort links by (parent, child) bytes and sum call and error counts of
 * equal pairs into one, in place. Returns the count left.
 */
size_t query_merge_links(zipkin_dep_link_t *v, size_t n);

/*
 * One trace as one member answered it (a part), or a merged trace. order
 * is the caller's rank for query_merge_by_order (traceMany: the position
 * of its id in the request); ts is set by query_merge_traces.
 */
typedef struct query_trace {
    const span_t *spans;
    size_t n_spans;
    uint64_t ts;    /* QueryRequest.test's trace timestamp, µs; 0 = none */
    uint32_t order; /* caller's rank */
} query_trace_t;

/*
 * The trace timestamp the store lists a trace under: the first root span's
 * (no parent) timestamp, else the earliest span timestamp, else 0.
 */
uint64_t query_trace_timestamp(const span_t *spans, size_t n);

/*
 * Merge parts (in member order) into traces: parts with the same trace id
 * (the first span's; with strict 0 only its low 64 bits count) become one
 * trace holding their spans in part order, each exact duplicate (span_equal
 * with an earlier span) left out. Each result gets its timestamp, and the
 * smallest order of its parts. Results are in order of first appearance;
 * they and their span arrays are allocated from arena (spans point where
 * the parts' did). Empty parts are dropped. Returns 0, or -1 when the
 * arena is exhausted.
 */
int query_merge_traces(const query_trace_t *parts, size_t n_parts, int strict, arena_t *arena, query_trace_t **out,
                       size_t *n_out);

/*
 * Sort traces as a search returns them: most recent timestamp first (ties:
 * higher trace id first, a fixed order where the store's is arbitrary).
 */
void query_merge_by_recent(query_trace_t *v, size_t n);

/* Sort traces by their order field (ties: lower trace id first). */
void query_merge_by_order(query_trace_t *v, size_t n);

#endif
