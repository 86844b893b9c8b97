/*
 * query_merge: combining store members' answers; see query_merge.h.
 *
 * Traces are matched by sorting the parts on (trace id, position), so a
 * search answer of many traces from many members merges in O(n log n);
 * within a trace held by several members, duplicates are found the same
 * way, by sorting its spans on (span id, position).
 */
#include "query_merge.h"

#include <stdlib.h>
#include <string.h>

static int name_cmp(const void *x, const void *y)
{
    return str_compare(*(const str_t *)x, *(const str_t *)y);
}

size_t query_merge_names(str_t *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), name_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (str_compare(v[i], v[k - 1]) != 0)
            v[k++] = v[i];
    return k;
}

static int link_cmp(const void *x, const void *y)
{
    const zipkin_dep_link_t *a = x, *b = y;
    int c = str_compare(a->parent, b->parent);
    return c != 0 ? c : str_compare(a->child, b->child);
}

size_t query_merge_links(zipkin_dep_link_t *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), link_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (link_cmp(&v[i], &v[k - 1]) == 0) {
            v[k - 1].call_count += v[i].call_count;
            v[k - 1].error_count += v[i].error_count;
        } else {
            v[k++] = v[i];
        }
    }
    return k;
}

uint64_t query_trace_timestamp(const span_t *spans, size_t n)
{
    uint64_t min = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t ts = spans[i].timestamp_us;
        if (ts == 0)
            continue;
        if (spans[i].parent_id == 0)
            return ts;
        if (min == 0 || ts < min)
            min = ts;
    }
    return min;
}

/* A part or span with its trace (or span) id and its position, for sorting. */
typedef struct keyed {
    uint64_t hi, lo;
    size_t pos;
} keyed_t;

static int keyed_cmp(const void *x, const void *y)
{
    const keyed_t *a = x, *b = y;
    if (a->hi != b->hi)
        return a->hi < b->hi ? -1 : 1;
    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Concatenate the parts by[0..n) (positions into parts) into one trace, without exact duplicates. */
static int join(const query_trace_t *parts, const keyed_t *by, size_t n, arena_t *arena, query_trace_t *out)
{
    size_t total = 0;
    uint32_t order = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        total += parts[by[i].pos].n_spans;
        if (parts[by[i].pos].order < order)
            order = parts[by[i].pos].order;
    }
    span_t *spans = arena_alloc(arena, total * sizeof(*spans));
    keyed_t *ids = arena_alloc(arena, total * sizeof(*ids));
    uint8_t *dup = arena_calloc(arena, total, 1);
    if (spans == NULL || ids == NULL || dup == NULL)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const query_trace_t *p = &parts[by[i].pos];
        for (size_t j = 0; j < p->n_spans; j++, k++) {
            spans[k] = p->spans[j];
            ids[k] = (keyed_t){0, spans[k].id, k};
        }
    }
    if (n > 1) {
        qsort(ids, total, sizeof(*ids), keyed_cmp);
        for (size_t i = 1; i < total; i++)
            for (size_t j = i; j-- > 0 && ids[j].lo == ids[i].lo;)
                if (!dup[ids[j].pos] && span_equal(&spans[ids[j].pos], &spans[ids[i].pos])) {
                    dup[ids[i].pos] = 1;
                    break;
                }
    }
    size_t m = 0;
    for (size_t i = 0; i < total; i++)
        if (!dup[i])
            spans[m++] = spans[i];
    *out = (query_trace_t){spans, m, query_trace_timestamp(spans, m), order};
    return 0;
}

int query_merge_traces(const query_trace_t *parts, size_t n_parts, int strict, arena_t *arena, query_trace_t **out,
                       size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    keyed_t *by = arena_alloc(arena, (n_parts + 1) * sizeof(*by));
    query_trace_t *res = arena_alloc(arena, (n_parts + 1) * sizeof(*res));
    if (by == NULL || res == NULL)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].n_spans == 0)
            continue;
        const span_t *s = &parts[i].spans[0];
        by[n++] = (keyed_t){strict ? s->trace_id_high : 0, s->trace_id_low, i};
    }
    qsort(by, n, sizeof(*by), keyed_cmp);
    /* groups come out in id order; put them back in order of first appearance */
    keyed_t *first = arena_alloc(arena, (n + 1) * sizeof(*first));
    if (first == NULL)
        return -1;
    size_t k = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && by[j].hi == by[i].hi && by[j].lo == by[i].lo;)
            j++;
        if (join(parts, &by[i], j - i, arena, &res[k]) != 0)
            return -1;
        first[k] = (keyed_t){0, by[i].pos, k};
        k++;
    }
    qsort(first, k, sizeof(*first), keyed_cmp);
    query_trace_t *sorted = arena_alloc(arena, (k + 1) * sizeof(*sorted));
    if (sorted == NULL)
        return -1;
    for (size_t i = 0; i < k; i++)
        sorted[i] = res[first[i].pos];
    *out = sorted;
    *n_out = k;
    return 0;
}

/* Trace id of a merged trace, for a fixed order among equals. */
static int id_cmp(const query_trace_t *a, const query_trace_t *b)
{
    const span_t *x = &a->spans[0], *y = &b->spans[0];
    if (x->trace_id_high != y->trace_id_high)
        return x->trace_id_high < y->trace_id_high ? -1 : 1;
    return (x->trace_id_low > y->trace_id_low) - (x->trace_id_low < y->trace_id_low);
}

static int recent_cmp(const void *x, const void *y)
{
    const query_trace_t *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts > b->ts ? -1 : 1;
    return -id_cmp(a, b);
}

void query_merge_by_recent(query_trace_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), recent_cmp);
}

static int order_cmp(const void *x, const void *y)
{
    const query_trace_t *a = x, *b = y;
    if (a->order != b->order)
        return a->order < b->order ? -1 : 1;
    return id_cmp(a, b);
}

void query_merge_by_order(query_trace_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), order_cmp);
}
