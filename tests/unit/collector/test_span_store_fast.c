/*
 * Tests for the span store's insert fast paths, each against the slow path
 * it replaces:
 *  - dependency links from the id-only tree builder (traces without
 *    duplicate ids or shared spans) and links computed at the end of a
 *    batch equal the general SpanNode builder's links settled later;
 *  - span_encode lower-casing names and sorting tags through the cached
 *    key orders stores exactly what span_normalize produces;
 *  - the blob heap keeps contents across size classes and its accounting
 *    returns to the chunk tails once everything is freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "span_store_internal.h"

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

static str_t cstr(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static const char *svcs[] = {"frontend", "Backend", "db", "cache", "auth", "Zone"};
static const char *names[] = {"get /", "POST /x", "query", "lookup"};
static const char *keys[] = {
    "http.method", "error", "http.url", "component", "peer.address", "zone", "Zone", "a", "http.status_code", "b",
    /* keys that share their first 8 bytes: the sort's prefix ties */
    "istio.canonical_service", "istio.canonical_revision", "istio.canonical", "http.response.status_code",
    "http.request.method", "network.peer.address", "network.peer.port", "upstream_cluster.name",
    /* bytes >= 0x80 in and after the first 8: ordered as unsigned bytes */
    "\xc3\xa9mail.sender", "\xc3\xa9mail.s\xc3\xa9nder", "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

typedef struct gspan {
    span_t s;
    span_tag_t tags[100];
    span_annotation_t ann[2];
} gspan_t;

/*
 * Spans of n_traces traces. With clean, ids are unique per trace and
 * nothing is shared (the id-only tree builder's case); otherwise ids
 * repeat (merges) and some servers are shared halves.
 */
static void gen(gspan_t *g, size_t n, uint64_t n_traces, int clean)
{
    for (size_t i = 0; i < n; i++) {
        span_t *s = &g[i].s;
        memset(s, 0, sizeof(*s));
        uint64_t t = rnd() % n_traces + 1;
        s->trace_id_low = t * 0x9E3779B97F4A7C15ULL;
        s->id = clean ? i + 1 : rnd() % 12 + 1;
        uint64_t max_parent = clean ? i + 1 : s->id;
        s->parent_id = rnd() % 4 ? rnd() % (max_parent + 2) : 0; /* some parents missing, some later */
        s->kind = (enum span_kind)(rnd() % 5);
        s->shared = !clean && s->kind == SPAN_KIND_SERVER && rnd() % 3 == 0;
        if (rnd() % 8) {
            s->has_local = 1;
            s->local.service_name = cstr(svcs[rnd() % 6]);
        }
        if (rnd() % 2) {
            s->has_remote = 1;
            s->remote.service_name = cstr(svcs[rnd() % 6]);
        }
        s->name = cstr(names[rnd() % 4]);
        s->timestamp_us = rnd() % 7 ? MS(t * 10 + rnd() % 9) : 0;
        s->duration_us = rnd() % 1000 + 1;
        if (rnd() % 5 == 0) {
            g[i].tags[0] = (span_tag_t){cstr("error"), cstr("")};
            s->n_tags = 1;
        }
        s->tags = g[i].tags;
    }
}

static char *deps_dump(span_store_t *st)
{
    arena_t a;
    arena_init(&a, 0);
    span_dep_link_t *links;
    size_t n;
    assert_int_equal(span_store_dependencies(st, T0_MS + 100000, 200000, &a, &links, &n), 0);
    size_t cap = 64 + n * 80, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%.*s>%.*s %llu %llu\n", (int)links[i].parent.len,
                                links[i].parent.ptr, (int)links[i].child.len, links[i].child.ptr,
                                (unsigned long long)links[i].call_count, (unsigned long long)links[i].error_count);
    arena_dispose(&a);
    return out;
}

static void check_deps(uint64_t seed, size_t n, uint64_t n_traces, int clean, size_t batch)
{
    rng_state = seed;
    gspan_t *g = calloc(n, sizeof(*g));
    span_t *spans = calloc(n, sizeof(*spans));
    assert_non_null(g);
    assert_non_null(spans);
    gen(g, n, n_traces, clean);
    for (size_t i = 0; i < n; i++)
        spans[i] = g[i].s;
    /* reference: general builder, every trace settled at query time */
    span_store_t *ref = span_store_create(NULL), *fast = span_store_create(NULL);
    ref->deps_generic = 1;
    ref->settle_us = UINT64_MAX / 4; /* nothing settles during inserts */
    for (size_t i = 0; i < n; i++)
        span_store_insert(ref, &spans[i], 1, 1);
    for (size_t i = 0; i < n; i += batch)
        span_store_insert(fast, &spans[i], n - i < batch ? n - i : batch, 1 + i * 1000);
    char *d1 = deps_dump(ref), *d2 = deps_dump(fast);
    if (strcmp(d1, d2) != 0) {
        print_error("links differ:\n--- general\n%s\n--- fast\n%s\n", d1, d2);
        fail();
    }
    assert_true(strlen(d1) > 0);
    free(d1);
    free(d2);
    span_store_destroy(ref);
    span_store_destroy(fast);
    free(g);
    free(spans);
}

static void test_deps_fast_equals_general(void **state)
{
    (void)state;
    check_deps(0x1111ULL, 4000, 300, 1, 50);  /* id-only trees, links computed at batch end */
    check_deps(0x2222ULL, 4000, 300, 1, 1);   /* one span per batch: later spans re-dirty linked traces */
    check_deps(0x3333ULL, 4000, 300, 0, 64);  /* duplicates and shared halves: the general builder */
    check_deps(0x4444ULL, 3000, 40, 1, 3000); /* one batch, bigger traces (sorted with qsort) */
}

/* A trace linked at the end of its batch is recomputed when a span comes later. */
static void test_deps_after_batch_link(void **state)
{
    (void)state;
    span_store_t *st = span_store_create(NULL);
    span_t s[3];
    memset(s, 0, sizeof(s));
    const char *svc[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        s[i].trace_id_low = 42;
        s[i].id = (uint64_t)i + 1;
        s[i].parent_id = (uint64_t)i;
        s[i].kind = SPAN_KIND_SERVER;
        s[i].has_local = 1;
        s[i].local.service_name = cstr(svc[i]);
        s[i].timestamp_us = MS(i);
    }
    assert_int_equal(span_store_insert(st, s, 2, MS(0)), 2); /* root included: linked now */
    char *d = deps_dump(st);
    assert_string_equal(d, "a>b 1 0\n");
    free(d);
    assert_int_equal(span_store_insert(st, &s[2], 1, MS(1)), 1);
    d = deps_dump(st);
    assert_string_equal(d, "a>b 1 0\nb>c 1 0\n");
    free(d);
    span_store_destroy(st);
}

static int str_same(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Stored spans equal span_normalize's output, whatever the tag order and case. */
static void test_encode_matches_normalize(void **state)
{
    (void)state;
    rng_state = 0x5555ULL;
    span_store_t *st = span_store_create(NULL);
    arena_t a, na;
    arena_init(&a, 0);
    arena_init(&na, 0);
    enum { N = 3000 };
    /*
     * A few recurring tag key sequences (cache hits; two longer than 16, as
     * a sidecar's spans are) and random ones (misses, replacement), some
     * longer than the order cache and the insertion sort take (64).
     */
    uint32_t seqs[6][70];
    uint32_t seq_len[6];
    for (int q = 0; q < 6; q++) {
        seq_len[q] = q == 5   ? 60 + (uint32_t)(rnd() % 10)
                     : q == 4 ? 30 + (uint32_t)(rnd() % 10)
                              : (uint32_t)(rnd() % 8) + 1;
        for (uint32_t k = 0; k < seq_len[q]; k++)
            seqs[q][k] = (uint32_t)(rnd() % N_KEYS);
    }
    char vals[N][8];
    for (int i = 0; i < N; i++) {
        gspan_t g;
        memset(&g, 0, sizeof(g));
        span_t *s = &g.s;
        s->trace_id_low = (uint64_t)i + 1;
        s->id = 7;
        s->kind = SPAN_KIND_CLIENT;
        s->has_local = 1;
        s->local.service_name = cstr(svcs[rnd() % 6]);
        s->has_remote = rnd() % 2;
        s->remote.service_name = cstr(svcs[rnd() % 6]);
        s->name = cstr(names[rnd() % 4]);
        s->timestamp_us = MS(i);
        int q = (int)(rnd() % 8);
        uint32_t nt = q < 6 ? seq_len[q] : q == 6 ? (uint32_t)(rnd() % 40) : (uint32_t)(rnd() % 100);
        snprintf(vals[i], sizeof(vals[i]), "v%d", i);
        for (uint32_t k = 0; k < nt; k++) {
            g.tags[k].key = cstr(keys[q < 6 ? seqs[q][k] : rnd() % N_KEYS]);
            g.tags[k].value = k & 1 ? cstr(vals[i]) : cstr(keys[k % N_KEYS]);
        }
        s->tags = g.tags;
        s->n_tags = nt;
        assert_int_equal(span_store_insert(st, s, 1, 1), 1);

        span_t want;
        arena_reset(&na);
        assert_int_equal(span_normalize(&na, s, &want), 0);
        arena_reset(&a);
        const span_t *got;
        size_t n;
        assert_int_equal(span_store_get_trace(st, 0, s->trace_id_low, &a, &got, &n), 0);
        assert_int_equal(n, 1);
        assert_true(str_same(got->name, want.name));
        assert_true(str_same(got->local.service_name, want.local.service_name));
        assert_int_equal(got->has_remote, want.has_remote);
        if (want.has_remote)
            assert_true(str_same(got->remote.service_name, want.remote.service_name));
        assert_int_equal(got->n_tags, want.n_tags);
        for (uint32_t k = 0; k < want.n_tags; k++) {
            assert_true(str_same(got->tags[k].key, want.tags[k].key));
            assert_true(str_same(got->tags[k].value, want.tags[k].value));
        }
        /* and, apart from span_normalize: keys strictly ascending, each with the last value it was given */
        uint32_t distinct = 0;
        for (uint32_t k = 0; k < nt; k++) {
            uint32_t j = 0;
            while (j < k && !str_same(g.tags[j].key, g.tags[k].key))
                j++;
            distinct += j == k;
        }
        assert_int_equal(got->n_tags, distinct);
        for (uint32_t k = 0; k < got->n_tags; k++) {
            if (k > 0) {
                str_t x = got->tags[k - 1].key, y = got->tags[k].key;
                size_t m = x.len < y.len ? x.len : y.len;
                int c = memcmp(x.ptr, y.ptr, m);
                assert_true(c < 0 || (c == 0 && x.len < y.len));
            }
            uint32_t last = nt;
            for (uint32_t j = 0; j < nt; j++)
                if (str_same(g.tags[j].key, got->tags[k].key))
                    last = j;
            assert_true(last < nt);
            assert_true(str_same(got->tags[k].value, g.tags[last].value));
        }
    }
    arena_dispose(&a);
    arena_dispose(&na);
    span_store_destroy(st);
}

/* Spans evicted: the intern table only keeps what the key order cache holds. */
static void test_intern_refs_released(void **state)
{
    (void)state;
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_spans = 1;
    span_store_t *st = span_store_create(&cfg);
    span_tag_t tags[3] = {{cstr("zz"), cstr("1")}, {cstr("Aa"), cstr("2")}, {cstr("zz"), cstr("3")}};
    for (int i = 0; i < 100; i++) {
        span_t s;
        memset(&s, 0, sizeof(s));
        s.trace_id_low = (uint64_t)i + 1;
        s.id = 1;
        s.has_local = 1;
        char svc[16], name[16];
        snprintf(svc, sizeof(svc), "Svc-%d", i);
        snprintf(name, sizeof(name), "Op-%d", i);
        s.local.service_name = cstr(svc);
        s.name = cstr(name);
        s.tags = tags;
        s.n_tags = 3;
        assert_int_equal(span_store_insert(st, &s, 1, 1), 1);
    }
    /* the last span's strings (svc, name, 2 keys) plus the cached order's keys */
    assert_true(intern_count(st->strs) <= 6);
    arena_t a;
    arena_init(&a, 0);
    const span_t *got;
    size_t n;
    assert_int_equal(span_store_get_trace(st, 0, 100, &a, &got, &n), 0);
    assert_int_equal(got->n_tags, 2);
    assert_true(str_same(got->tags[0].key, cstr("Aa")));
    assert_true(str_same(got->tags[1].key, cstr("zz")));
    assert_true(str_same(got->tags[1].value, cstr("3")));
    assert_true(str_same(got->local.service_name, cstr("svc-99")));
    assert_true(str_same(got->name, cstr("op-99")));
    arena_dispose(&a);
    span_store_destroy(st);
}

static void test_blob_heap(void **state)
{
    (void)state;
    blob_heap_t h;
    memset(&h, 0, sizeof(h));
    int64_t acct = 0;
    enum { K = 400 };
    uint8_t *p[K];
    size_t len[K];
    for (int i = 0; i < K; i++) {
        len[i] = (size_t)(rnd() % (i % 10 == 0 ? 40000 : 3000)) + 1;
        p[i] = blob_alloc(&h, len[i], &acct);
        memset(p[i], i & 0xff, len[i]);
    }
    /* grow and shrink through the classes, contents kept */
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < K; i++) {
            size_t nl = (size_t)(rnd() % (i % 10 == 0 ? 40000 : 3000)) + 1;
            p[i] = blob_realloc(&h, p[i], len[i], nl, &acct);
            for (size_t k = 0; k < (nl < len[i] ? nl : len[i]); k++)
                assert_int_equal(p[i][k], i & 0xff);
            memset(p[i], i & 0xff, nl);
            len[i] = nl;
        }
    }
    assert_true(acct > 0);
    for (int i = 0; i < K; i++)
        blob_free(&h, p[i], len[i], &acct);
    /* what stays counted is the lost tails of full chunks */
    assert_true(acct >= 0);
    assert_true((size_t)acct <= (h.n_chunks ? h.n_chunks - 1 : 0) * BLOB_MAX);
    blob_heap_dispose(&h);
}

/* Every service list and the unnamed list are valid B+trees whose entries are live traces listed once. */
static void check_lists(span_store_t *st)
{
    assert_int_equal(tlist_check(&st->unnamed), 0);
    size_t listed = 0;
    for (uint32_t i = 0; st->services.slots != NULL && i <= st->services.mask; i++) {
        if (st->services.slots[i].key == U64MAP_EMPTY)
            continue;
        const service_t *sv = (const service_t *)(uintptr_t)st->services.slots[i].val;
        assert_int_equal(tlist_check(&sv->traces), 0);
        tlist_iter_t it;
        tlist_seek(&sv->traces, UINT64_MAX, &it);
        trace_t *t, *prev = NULL;
        while ((t = tlist_prev(&it)) != NULL) {
            assert_ptr_not_equal(t, prev); /* no trace twice (equal keys would sit side by side) */
            assert_non_null(store_find_trace(st, t->id_hi, t->id_lo));
            prev = t;
            listed++;
        }
    }
    assert_true(listed <= st->n_traces * 64);
}

/*
 * Traces spread over many services (past the 32 that the common path
 * tracks, so the per-span slow path runs), spans without a service, merges
 * and timestamps that move earlier, inserted in batches with eviction in
 * between: the lists stay valid and hold only live traces.
 */
static void test_lists_many_services(void **state)
{
    (void)state;
    rng_state = 0x51ED270B27CFA1ULL;
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_spans = 3000;
    span_store_t *st = span_store_create(&cfg);
    char names_buf[64][8];
    for (int i = 0; i < 64; i++)
        snprintf(names_buf[i], sizeof(names_buf[i]), "s%d", i);
    span_t batch[400];
    for (int round = 0; round < 60; round++) {
        for (int i = 0; i < 400; i++) {
            span_t *s = &batch[i];
            memset(s, 0, sizeof(*s));
            uint64_t t = (uint64_t)(round * 5) + rnd() % 10 + 1; /* traces recur across rounds, ~80 spans each */
            s->trace_id_low = t * 0x9E3779B97F4A7C15ULL;
            s->id = rnd() % 200 + 1; /* repeats merge */
            s->parent_id = rnd() % 3 ? rnd() % 200 : 0;
            s->kind = (enum span_kind)(rnd() % 5);
            if (rnd() % 6) {
                s->has_local = 1;
                s->local.service_name = cstr(names_buf[rnd() % 64]);
            }
            s->name = cstr("op");
            s->timestamp_us = MS(t * 10 + 1000 - (uint64_t)round - rnd() % 500); /* later rounds move ts earlier */
            s->duration_us = 5;
        }
        span_store_insert(st, batch, 400, (uint64_t)round + 1);
        check_lists(st);
    }
    span_store_destroy(st);
}

/*
 * The trace table grows and shrinks a few slots at a time: every stored
 * trace is found while a move is under way (some in the old table, some in
 * the new), removals during a move leave nothing behind, and the table
 * shrinks back once eviction empties the store.
 */
static void test_trace_table_moves(void **state)
{
    (void)state;
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_spans = 40000;
    span_store_t *st = span_store_create(&cfg);
    enum { N = 60000 };
    int seen_moving = 0, seen_shrink = 0;
    uint32_t peak = 0;
    for (uint64_t t = 1; t <= N; t++) {
        span_t s;
        memset(&s, 0, sizeof(s));
        s.trace_id_high = t * 0xC2B2AE3D27D4EB4FULL;
        s.trace_id_low = t * 0x9E3779B97F4A7C15ULL;
        s.id = t;
        s.timestamp_us = MS(t);
        span_store_insert(st, &s, 1, t);
        if (st->tab.mask > peak)
            peak = st->tab.mask;
        if (st->tab.old != NULL && (t % 97 == 0 || !seen_moving)) {
            seen_moving = 1;
            /* every live trace is found, wherever it is */
            uint64_t first = t > 40000 ? t - 40000 + 1 : 1;
            for (uint64_t k = first; k <= t; k += (t % 7) + 1)
                assert_non_null(store_find_trace(st, k * 0xC2B2AE3D27D4EB4FULL, k * 0x9E3779B97F4A7C15ULL));
            if (first > 1)
                assert_null(
                    store_find_trace(st, (first - 1) * 0xC2B2AE3D27D4EB4FULL, (first - 1) * 0x9E3779B97F4A7C15ULL));
        }
    }
    assert_true(seen_moving);
    assert_true(peak + 1 >= 65536);
    /* shrink: a store limited to a few spans evicts nearly everything on the next inserts */
    st->max_spans = 10;
    for (uint64_t t = N + 1; t <= N + 40000; t++) {
        span_t s;
        memset(&s, 0, sizeof(s));
        s.trace_id_low = t * 0x9E3779B97F4A7C15ULL;
        s.trace_id_high = t * 0xC2B2AE3D27D4EB4FULL;
        s.id = t;
        s.timestamp_us = MS(t);
        span_store_insert(st, &s, 1, t);
        if (st->tab.old != NULL)
            seen_shrink = 1;
        assert_non_null(store_find_trace(st, t * 0xC2B2AE3D27D4EB4FULL, t * 0x9E3779B97F4A7C15ULL));
    }
    assert_true(seen_shrink);
    assert_true(st->tab.mask + 1 <= 8192); /* halved a few slots at a time, several times over */
    assert_int_equal(st->n_traces, 10);
    for (uint64_t t = N + 39991; t <= N + 40000; t++)
        assert_non_null(store_find_trace(st, t * 0xC2B2AE3D27D4EB4FULL, t * 0x9E3779B97F4A7C15ULL));
    assert_null(store_find_trace(st, (N + 39990) * 0xC2B2AE3D27D4EB4FULL, (N + 39990) * 0x9E3779B97F4A7C15ULL));
    span_store_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deps_fast_equals_general),
        cmocka_unit_test(test_deps_after_batch_link),
        cmocka_unit_test(test_encode_matches_normalize),
        cmocka_unit_test(test_intern_refs_released),
        cmocka_unit_test(test_blob_heap),
        cmocka_unit_test(test_lists_many_services),
        cmocka_unit_test(test_trace_table_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
