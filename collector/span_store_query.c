/*
 * span_store_query: trace lookups and the QueryRequest search; see
 * span_store.h.
 *
 * A search walks one time-ordered list (the service's, or the global one
 * without a service name) from the newest trace at or before endTs
 * backwards, stops at the start of the lookback window or at limit
 * results, and tests each candidate against the query on its encoded spans
 * (intern ids compared as integers) before decoding it into the arena.
 */
#include <stdlib.h>
#include <string.h>

#include "span_store_internal.h"

#define MAX_TERMS 100

int span_query_validate(const span_query_t *q, const char **reason)
{
    if (q->end_ts_ms == 0) {
        *reason = "endTs <= 0";
        return -1;
    }
    if (q->limit == 0) {
        *reason = "limit <= 0";
        return -1;
    }
    if (q->lookback_ms == 0) {
        *reason = "lookback <= 0";
        return -1;
    }
    if (q->min_duration_us == 0 && q->max_duration_us != 0) {
        *reason = "maxDuration is only valid with minDuration";
        return -1;
    }
    if (q->min_duration_us != 0 && q->max_duration_us != 0 && q->max_duration_us < q->min_duration_us) {
        *reason = "maxDuration < minDuration";
        return -1;
    }
    if (q->n_terms > MAX_TERMS) {
        *reason = "too many annotationQuery terms";
        return -1;
    }
    for (size_t i = 0; i < q->n_terms; i++) {
        if (q->terms[i].key.len == 0) {
            *reason = "empty key in annotationQuery";
            return -1;
        }
    }
    return 0;
}

static int is_space(char c)
{
    return (unsigned char)c <= ' ';
}

static str_t trim(const char *p, size_t len)
{
    while (len > 0 && is_space(*p)) {
        p++;
        len--;
    }
    while (len > 0 && is_space(p[len - 1]))
        len--;
    return (str_t){p, (uint32_t)len};
}

static int str_eq(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static const char *find_and(const char *p, const char *end)
{
    for (; end - p >= 5; p++)
        if (memcmp(p, " and ", 5) == 0)
            return p;
    return NULL;
}

int span_query_parse_annotation_query(const char *s, size_t len, arena_t *arena, span_query_term_t **terms, size_t *n,
                                      const char **reason)
{
    *terms = NULL;
    *n = 0;
    if (len == 0)
        return 0;
    if (len > UINT32_MAX) {
        *reason = "annotationQuery too long";
        return -1;
    }
    char *copy = arena_strndup(arena, s, len);
    span_query_term_t *out = arena_alloc(arena, MAX_TERMS * sizeof(*out));
    if (copy == NULL || out == NULL) {
        *reason = "out of memory";
        return -1;
    }
    const char *p = copy, *end = copy + len;
    size_t k = 0;
    for (size_t piece = 0; p <= end; piece++) {
        /* like Java's split(" and ", 100): the 100th piece keeps the rest */
        const char *sep = piece + 1 < MAX_TERMS ? find_and(p, end) : NULL;
        const char *stop = sep ? sep : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        str_t key, value = {"", 0};
        if (eq == NULL) {
            key = trim(p, (size_t)(stop - p));
        } else {
            key = trim(p, (size_t)(eq - p));
            value = trim(eq + 1, (size_t)(stop - eq - 1));
        }
        if (key.len == 0) {
            *reason = eq == NULL ? "empty term in annotationQuery" : "empty key in annotationQuery";
            return -1;
        }
        size_t j = 0;
        while (j < k && !str_eq(out[j].key, key))
            j++;
        if (j == k)
            out[k++] = (span_query_term_t){key, value};
        else if (eq != NULL)
            out[j].value = value; /* a tag term replaces; a bare key never does */
        if (sep == NULL)
            break;
        p = sep + 5;
    }
    *terms = out;
    *n = k;
    return 0;
}

/* ---- lookups ---- */

int span_store_get_trace(span_store_t *st, uint64_t trace_id_high, uint64_t trace_id_low, arena_t *arena,
                         const span_t **spans, size_t *n)
{
    *spans = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&st->lock);
    int rc = -1;
    trace_t *t = store_find_trace(st, trace_id_high, trace_id_low);
    span_trace_t tr;
    if (t != NULL && trace_to_spans(st, t, arena, &tr) == 0) {
        *spans = tr.spans;
        *n = tr.n_spans;
        rc = 0;
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

int span_store_get_many(span_store_t *st, const span_trace_id_t *ids, size_t n_ids, arena_t *arena, trace_result_t *out)
{
    out->traces = NULL;
    out->n_traces = 0;
    if (n_ids == 0)
        return 0;
    pthread_rwlock_rdlock(&st->lock);
    int rc = -1;
    span_trace_t *res = arena_alloc(arena, n_ids * sizeof(*res));
    const trace_t **found = arena_alloc(arena, n_ids * sizeof(*found));
    size_t k = 0;
    if (res != NULL && found != NULL) {
        rc = 0;
        for (size_t i = 0; i < n_ids && rc == 0; i++) {
            const trace_t *t = store_find_trace(st, ids[i].high, ids[i].low);
            if (t == NULL)
                continue;
            size_t j = 0;
            while (j < k && found[j] != t)
                j++;
            if (j < k)
                continue;
            found[k] = t;
            if (trace_to_spans(st, t, arena, &res[k]) < 0)
                rc = -1;
            k++;
        }
    }
    pthread_rwlock_unlock(&st->lock);
    if (rc == 0) {
        out->traces = res;
        out->n_traces = k;
    }
    return rc;
}

/* ---- search ---- */

typedef struct matcher {
    uint32_t svc, remote, name; /* SID_NONE when not constrained */
    const span_query_term_t *terms;
    uint32_t *term_key; /* intern id of each term key, or SID_NONE */
    uint8_t *done;
    size_t n_terms;
    uint64_t min_dur, max_dur;
} matcher_t;

/* QueryRequest.test on an encoded trace (its timestamp is already in the window). */
static int trace_matches(const trace_t *t, const matcher_t *m)
{
    int remote_ok = m->remote == SID_NONE, name_ok = m->name == SID_NONE;
    int dur_ok = m->min_dur == 0 && m->max_dur == 0;
    size_t left = m->n_terms;
    if (left)
        memset(m->done, 0, left);
    const uint8_t *p = t->blob, *end = t->blob + t->blob_len;
    while (p < end) {
        srec_t r;
        srec_decode(t, p, &r);
        p = r.next;
        if (m->svc != SID_NONE && r.local.svc != m->svc)
            continue;
        if (left) {
            const uint8_t *q = r.ann;
            for (uint32_t i = 0; i < r.n_ann; i++) {
                uint64_t ts;
                str_t v;
                q = srec_ann(t, q, &ts, &v);
                for (size_t k = 0; k < m->n_terms; k++) {
                    if (!m->done[k] && m->terms[k].value.len == 0 && str_eq(m->terms[k].key, v)) {
                        m->done[k] = 1;
                        left--;
                    }
                }
            }
            q = r.tags;
            for (uint32_t i = 0; i < r.n_tags; i++) {
                uint32_t key;
                str_t v;
                q = srec_tag(q, &key, &v);
                for (size_t k = 0; k < m->n_terms; k++) {
                    if (!m->done[k] && m->term_key[k] == key &&
                        (m->terms[k].value.len == 0 || str_eq(m->terms[k].value, v))) {
                        m->done[k] = 1;
                        left--;
                    }
                }
            }
        }
        if (!remote_ok && r.remote.svc == m->remote)
            remote_ok = 1;
        if (!name_ok && r.name == m->name)
            name_ok = 1;
        if (!dur_ok) {
            if (m->max_dur != 0)
                dur_ok = r.duration >= m->min_dur && r.duration <= m->max_dur;
            else
                dur_ok = r.duration >= m->min_dur;
        }
    }
    return remote_ok && name_ok && dur_ok && left == 0;
}

/* Intern id of a required name; *missing set when it is not stored at all. */
static uint32_t resolve(const span_store_t *st, str_t s, int *missing)
{
    if (s.len == 0)
        return SID_NONE;
    uint32_t id = intern_find(st->strs, s.ptr, s.len);
    if (id == SID_NONE)
        *missing = 1;
    return id;
}

int span_store_get_traces(span_store_t *st, const span_query_t *q, arena_t *arena, trace_result_t *out)
{
    out->traces = NULL;
    out->n_traces = 0;
    const char *reason;
    if (span_query_validate(q, &reason) < 0)
        return -1;
    str_t svc = store_lower(arena, q->service_name);
    str_t remote = store_lower(arena, q->remote_service_name);
    str_t name = store_lower(arena, q->span_name);
    if ((q->service_name.len && svc.ptr == NULL) || (q->remote_service_name.len && remote.ptr == NULL) ||
        (q->span_name.len && name.ptr == NULL))
        return -1;
    if (str_eq(name, (str_t){"all", 3}))
        name.len = 0;
    matcher_t m = {0};
    m.terms = q->terms;
    m.n_terms = q->n_terms;
    m.min_dur = q->min_duration_us;
    m.max_dur = q->max_duration_us;
    if (m.n_terms) {
        m.term_key = arena_alloc(arena, m.n_terms * sizeof(*m.term_key));
        m.done = arena_alloc(arena, m.n_terms);
        if (m.term_key == NULL || m.done == NULL)
            return -1;
    }

    pthread_rwlock_rdlock(&st->lock);
    int rc = 0, missing = 0;
    m.svc = resolve(st, svc, &missing);
    m.remote = resolve(st, remote, &missing);
    m.name = resolve(st, name, &missing);
    for (size_t k = 0; k < m.n_terms; k++) {
        m.term_key[k] = intern_find(st->strs, m.terms[k].key.ptr, m.terms[k].key.len);
        /* a key=value term can only match a tag, so its key must be stored */
        if (m.term_key[k] == SID_NONE && m.terms[k].value.len != 0)
            missing = 1;
    }
    /* one service's list, or every service's and the unnamed list merged */
    const tlist_t **lists = NULL;
    uint32_t n_lists = 0;
    uint64_t total = 0;
    if (!missing && m.svc != SID_NONE) {
        uint64_t *v = u64map_get(&st->services, m.svc);
        if (v != NULL) {
            lists = arena_alloc(arena, sizeof(*lists));
            if (lists == NULL) {
                rc = -1;
                goto done;
            }
            lists[n_lists++] = &((const service_t *)(uintptr_t)*v)->traces;
        }
    } else if (!missing) {
        lists = arena_alloc(arena, ((size_t)st->services.len + 1) * sizeof(*lists));
        if (lists == NULL) {
            rc = -1;
            goto done;
        }
        for (uint32_t i = 0; st->services.slots != NULL && i <= st->services.mask; i++)
            if (st->services.slots[i].key != U64MAP_EMPTY)
                lists[n_lists++] = &((const service_t *)(uintptr_t)st->services.slots[i].val)->traces;
        lists[n_lists++] = &st->unnamed;
    }
    for (uint32_t i = 0; i < n_lists; i++)
        total += lists[i]->len;
    if (total == 0)
        goto done;

    uint64_t end_us = q->end_ts_ms * 1000;
    uint64_t begin_us = q->lookback_ms >= q->end_ts_ms ? 0 : (q->end_ts_ms - q->lookback_ms) * 1000;
    tlist_merge_t walk;
    if (tlist_merge_init(&walk, lists, n_lists, end_us, arena) < 0) {
        rc = -1;
        goto done;
    }
    size_t cap = q->limit < total ? q->limit : total;
    span_trace_t *res = cap ? arena_alloc(arena, cap * sizeof(*res)) : NULL;
    if (cap && res == NULL) {
        rc = -1;
        goto done;
    }
    size_t k = 0;
    const trace_t *t;
    while (k < cap && (t = tlist_merge_prev(&walk)) != NULL) {
        if (t->ts < begin_us)
            break;
        if (!trace_matches(t, &m))
            continue;
        if (trace_to_spans(st, t, arena, &res[k]) < 0) {
            rc = -1;
            goto done;
        }
        k++;
    }
    out->traces = res;
    out->n_traces = k;
done:
    pthread_rwlock_unlock(&st->lock);
    return rc;
}
