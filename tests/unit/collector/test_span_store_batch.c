/*
 * Tests for the span store's batch insert path: a batch is grouped by
 * trace and each trace is updated once, so inserting the same spans in
 * big interleaved batches must give exactly what inserting them one at a
 * time gives (stored spans in arrival order, merges, trace timestamps and
 * search order, name indexes, dependency links). Also covers traces large
 * enough to switch from the in-trace span id bloom to the fingerprint
 * table, and merges within one batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "span_store.h"

#define T0_MS 1700000000000ULL
#define MS(x) ((T0_MS + (x)) * 1000ULL)

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *svcs[] = {"frontend", "Backend", "db", "cache", "auth"};
static const char *names[] = {"get /", "POST /x", "query", "lookup"};
static const char *keys[] = {"http.method", "error", "http.url", "component", "peer.address", "zone"};

typedef struct gspan {
    span_t s;
    span_tag_t tags[4];
    span_annotation_t ann[2];
} gspan_t;

/*
 * A workload with the awkward cases: duplicate span ids (merges, also
 * within one batch), shared server halves, children before roots, spans
 * without timestamps, unsorted and duplicate tag keys, upper-case names.
 */
static void gen(gspan_t *g, size_t n, uint64_t n_traces, uint32_t max_id)
{
    for (size_t i = 0; i < n; i++) {
        span_t *s = &g[i].s;
        memset(s, 0, sizeof(*s));
        uint64_t t = rnd() % n_traces + 1;
        s->trace_id_low = t * 0x9E3779B97F4A7C15ULL;
        s->trace_id_high = (t & 1) ? t : 0;
        s->id = rnd() % max_id + 1;
        s->parent_id = (s->id > 1 && rnd() % 4) ? rnd() % (s->id - 1) + 1 : 0;
        s->kind = (enum span_kind)(rnd() % 5);
        s->shared = s->kind == SPAN_KIND_SERVER && rnd() % 3 == 0;
        if (rnd() % 8) {
            s->has_local = 1;
            s->local.service_name = (str_t){svcs[rnd() % 5], 0};
            s->local.service_name.len = (uint32_t)strlen(s->local.service_name.ptr);
            if (rnd() % 2) {
                s->local.has_ipv4 = 1;
                s->local.ipv4[3] = (uint8_t)(rnd() % 3);
            }
        }
        if (rnd() % 2) {
            s->has_remote = 1;
            s->remote.service_name = (str_t){svcs[rnd() % 5], 0};
            s->remote.service_name.len = (uint32_t)strlen(s->remote.service_name.ptr);
        }
        if (rnd() % 6) {
            s->name = (str_t){names[rnd() % 4], 0};
            s->name.len = (uint32_t)strlen(s->name.ptr);
        }
        s->timestamp_us = rnd() % 7 ? MS(t * 10 + rnd() % 9) : 0;
        s->duration_us = rnd() % 5 ? rnd() % 1000 + 1 : 0;
        s->debug = rnd() % 20 == 0;
        uint32_t nt = (uint32_t)(rnd() % 5);
        for (uint32_t k = 0; k < nt; k++) {
            g[i].tags[k].key = (str_t){keys[rnd() % 6], 0};
            g[i].tags[k].key.len = (uint32_t)strlen(g[i].tags[k].key.ptr);
            g[i].tags[k].value = (k & 1) ? (str_t){"v1", 2} : (str_t){"value-two", 9};
        }
        s->tags = g[i].tags;
        s->n_tags = nt;
        uint32_t na = (uint32_t)(rnd() % 3);
        for (uint32_t k = 0; k < na; k++)
            g[i].ann[k] = (span_annotation_t){s->timestamp_us + rnd() % 3, {"ws", 2}};
        s->annotations = g[i].ann;
        s->n_annotations = na;
    }
}

static void put_str(buf_t *b, str_t s)
{
    buf_printf(b, "'%.*s'", (int)s.len, s.ptr ? s.ptr : "");
}

static void put_ep(buf_t *b, const span_endpoint_t *e)
{
    put_str(b, e->service_name);
    buf_printf(b, ",%d:%u.%u,%d,%u", e->has_ipv4, e->ipv4[0], e->ipv4[3], e->has_ipv6, e->port);
}

/* Every stored field of a span, as text. */
static void put_span(buf_t *b, const span_t *s)
{
    buf_printf(b, "[%llx:%llx %llx<%llx k%d ", (unsigned long long)s->trace_id_high,
               (unsigned long long)s->trace_id_low, (unsigned long long)s->id, (unsigned long long)s->parent_id,
               (int)s->kind);
    put_str(b, s->name);
    buf_printf(b, " ts%llu d%llu dbg%d sh%d L%d(", (unsigned long long)s->timestamp_us,
               (unsigned long long)s->duration_us, s->debug, s->shared, s->has_local);
    put_ep(b, &s->local);
    buf_printf(b, ") R%d(", s->has_remote);
    put_ep(b, &s->remote);
    buf_printf(b, ")");
    for (uint32_t i = 0; i < s->n_tags; i++) {
        buf_printf(b, " t:");
        put_str(b, s->tags[i].key);
        put_str(b, s->tags[i].value);
    }
    for (uint32_t i = 0; i < s->n_annotations; i++) {
        buf_printf(b, " a%llu:", (unsigned long long)s->annotations[i].timestamp_us);
        put_str(b, s->annotations[i].value);
    }
    buf_printf(b, "]\n");
}

/* Everything the query API can see of the store, as text. */
static char *dump(span_store_t *st, uint64_t n_traces)
{
    buf_t b = BUF_INIT;
    arena_t a;
    arena_init(&a, 0);
    for (uint64_t t = 1; t <= n_traces; t++) {
        arena_reset(&a);
        const span_t *spans;
        size_t n;
        uint64_t lo = t * 0x9E3779B97F4A7C15ULL;
        if (span_store_get_trace(st, (t & 1) ? t : 0, lo, &a, &spans, &n) != 0)
            continue;
        buf_printf(&b, "trace %llu\n", (unsigned long long)t);
        for (size_t i = 0; i < n; i++)
            put_span(&b, &spans[i]);
    }
    str_t *list;
    size_t n;
    arena_reset(&a);
    assert_int_equal(span_store_service_names(st, &a, &list, &n), 0);
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "service ");
        put_str(&b, list[i]);
        str_t *sub;
        size_t m;
        assert_int_equal(span_store_span_names(st, list[i], &a, &sub, &m), 0);
        for (size_t j = 0; j < m; j++)
            put_str(&b, sub[j]);
        buf_printf(&b, " remotes");
        assert_int_equal(span_store_remote_service_names(st, list[i], &a, &sub, &m), 0);
        for (size_t j = 0; j < m; j++)
            put_str(&b, sub[j]);
        buf_printf(&b, "\n");
        /* search order by service: trace timestamps and list membership */
        span_query_t q = {.service_name = list[i], .end_ts_ms = T0_MS + 100000, .lookback_ms = 200000, .limit = 1000};
        trace_result_t res;
        assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
        buf_printf(&b, "search");
        for (size_t j = 0; j < res.n_traces; j++)
            buf_printf(&b, " %llx", (unsigned long long)res.traces[j].spans[0].trace_id_low);
        buf_printf(&b, "\n");
    }
    span_query_t q = {.end_ts_ms = T0_MS + 100000, .lookback_ms = 200000, .limit = 1000};
    trace_result_t res;
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    buf_printf(&b, "all");
    for (size_t j = 0; j < res.n_traces; j++)
        buf_printf(&b, " %llx", (unsigned long long)res.traces[j].spans[0].trace_id_low);
    buf_printf(&b, "\n");
    span_dep_link_t *links;
    assert_int_equal(span_store_dependencies(st, T0_MS + 100000, 200000, &a, &links, &n), 0);
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "link ");
        put_str(&b, links[i].parent);
        put_str(&b, links[i].child);
        buf_printf(&b, " %llu %llu\n", (unsigned long long)links[i].call_count,
                   (unsigned long long)links[i].error_count);
    }
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    buf_printf(&b, "stats %llu %llu %llu\n", (unsigned long long)ss.spans, (unsigned long long)ss.traces,
               (unsigned long long)ss.services);
    arena_dispose(&a);
    buf_append(&b, "", 1);
    return b.data;
}

static void check_batches_equal_singles(uint64_t seed, size_t n, uint64_t n_traces, uint32_t max_id, size_t batch)
{
    rng_state = seed;
    gspan_t *g = calloc(n, sizeof(*g));
    span_t *spans = calloc(n, sizeof(*spans));
    assert_non_null(g);
    assert_non_null(spans);
    gen(g, n, n_traces, max_id);
    for (size_t i = 0; i < n; i++)
        spans[i] = g[i].s;

    span_store_t *one = span_store_create(NULL), *many = span_store_create(NULL);
    int acc_one = 0, acc_many = 0;
    for (size_t i = 0; i < n; i++)
        acc_one += span_store_insert(one, &spans[i], 1, 1);
    for (size_t i = 0; i < n; i += batch)
        acc_many += span_store_insert(many, &spans[i], n - i < batch ? n - i : batch, 1);
    assert_int_equal(acc_one, acc_many);
    char *d1 = dump(one, n_traces), *d2 = dump(many, n_traces);
    if (strcmp(d1, d2) != 0) {
        size_t k = 0;
        while (d1[k] == d2[k])
            k++;
        size_t from = k > 200 ? k - 200 : 0;
        print_error("stores differ at byte %zu:\n--- singles\n%.400s\n--- batches\n%.400s\n", k, d1 + from, d2 + from);
        fail();
    }
    free(d1);
    free(d2);
    span_store_destroy(one);
    span_store_destroy(many);
    free(g);
    free(spans);
}

static void test_batches_equal_singles(void **state)
{
    (void)state;
    /* small traces, many duplicate ids: merges inside batches */
    check_batches_equal_singles(0x1234567ULL, 3000, 40, 12, 97);
    /* one batch for everything */
    check_batches_equal_singles(0x7654321ULL, 2000, 25, 30, 2000);
    /* big traces: past the bloom, onto the fingerprint table, with merges */
    check_batches_equal_singles(0xABCDEFULL, 6000, 3, 400, 64);
}

static void test_big_trace_merges(void **state)
{
    (void)state;
    enum { N = 500 };
    span_store_t *st = span_store_create(NULL);
    span_t s[N];
    for (int i = 0; i < N; i++) {
        memset(&s[i], 0, sizeof(s[i]));
        s[i].trace_id_low = 77;
        s[i].id = (uint64_t)i + 1;
        s[i].parent_id = (uint64_t)i;
        s[i].kind = SPAN_KIND_SERVER;
        s[i].has_local = 1;
        s[i].local.service_name = (str_t){"svc", 3};
        s[i].timestamp_us = MS(i);
    }
    for (int i = 0; i < N; i += 7)
        assert_int_equal(span_store_insert(st, &s[i], N - i < 7 ? (size_t)(N - i) : 7, 1), N - i < 7 ? N - i : 7);
    /* the same ids again, now with a duration and a tag: merged, not added */
    span_tag_t tag = {{"late", 4}, {"yes", 3}};
    for (int i = 0; i < N; i++) {
        s[i].duration_us = 5;
        s[i].tags = &tag;
        s[i].n_tags = 1;
        s[i].timestamp_us = 0;
    }
    assert_int_equal(span_store_insert(st, s, N, 2), N);
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, N);
    assert_int_equal(ss.traces, 1);
    arena_t a;
    arena_init(&a, 0);
    const span_t *out;
    size_t n;
    assert_int_equal(span_store_get_trace(st, 0, 77, &a, &out, &n), 0);
    assert_int_equal(n, N);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].id, i + 1);
        assert_int_equal(out[i].duration_us, 5);
        assert_int_equal(out[i].timestamp_us, MS(i));
        assert_int_equal(out[i].n_tags, 1);
    }
    /* a shared half with a stored id is a new span */
    span_t sh = s[10];
    sh.shared = 1;
    assert_int_equal(span_store_insert(st, &sh, 1, 3), 1);
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, N + 1);
    arena_dispose(&a);
    span_store_destroy(st);
}

/* The trace timestamp is the root's even when the root arrives last in the batch. */
static void test_root_last_in_batch(void **state)
{
    (void)state;
    span_store_t *st = span_store_create(NULL);
    span_t s[3];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 3; i++) {
        s[i].trace_id_low = 5;
        s[i].id = (uint64_t)(3 - i);
        s[i].parent_id = (uint64_t)(2 - i);
        s[i].has_local = 1;
        s[i].local.service_name = (str_t){i == 0 ? "leaf" : "root", 4};
        s[i].timestamp_us = MS(10 - i * 5); /* the root (last) is not the earliest... */
    }
    s[1].timestamp_us = MS(1); /* ...the middle span is */
    s[2].timestamp_us = MS(3);
    assert_int_equal(span_store_insert(st, s, 3, 1), 3);
    arena_t a;
    arena_init(&a, 0);
    trace_result_t res;
    /* a window that holds the root's timestamp (T0+3) but not the earliest (T0+1) finds it */
    span_query_t q = {.service_name = {"leaf", 4}, .end_ts_ms = T0_MS + 3, .lookback_ms = 1, .limit = 10};
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 1);
    q.end_ts_ms = T0_MS + 2;
    q.lookback_ms = 1;
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 0);
    arena_dispose(&a);
    span_store_destroy(st);
}

/* A merge that gives the root its timestamp moves the trace in the time lists. */
static void test_merge_moves_timestamp(void **state)
{
    (void)state;
    span_store_t *st = span_store_create(NULL);
    span_t s[2];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 2; i++) {
        s[i].trace_id_low = 9;
        s[i].id = (uint64_t)i + 1;
        s[i].parent_id = (uint64_t)i;
        s[i].has_local = 1;
        s[i].local.service_name = (str_t){"svc", 3};
    }
    s[1].timestamp_us = MS(5); /* the root has no timestamp yet: the trace's is the child's */
    assert_int_equal(span_store_insert(st, s, 2, 1), 2);
    arena_t a;
    arena_init(&a, 0);
    trace_result_t res;
    span_query_t q = {.service_name = {"svc", 3}, .end_ts_ms = T0_MS + 3, .lookback_ms = 1, .limit = 10};
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 0);
    span_t late = s[0];
    late.timestamp_us = MS(3);
    span_t batch[] = {late, s[1]}; /* merged twice in one batch */
    assert_int_equal(span_store_insert(st, batch, 2, 2), 2);
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 1);
    assert_int_equal(res.traces[0].n_spans, 2);
    q.end_ts_ms = T0_MS + 5;
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 0);
    arena_dispose(&a);
    span_store_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_equal_singles),
        cmocka_unit_test(test_big_trace_merges),
        cmocka_unit_test(test_root_last_in_batch),
        cmocka_unit_test(test_merge_moves_timestamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
