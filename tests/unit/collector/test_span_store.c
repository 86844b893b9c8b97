/*
 * Tests for the span store: storage, merge, eviction, every query
 * parameter, dependency links, autocomplete and concurrent use.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "span_store.h"

#define T0_MS 1700000000000ULL
#define MS(x) ((T0_MS + (x)) * 1000ULL) /* µs timestamp x ms after T0 */

static str_t S(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static int streq(str_t a, const char *b)
{
    return a.len == strlen(b) && memcmp(a.ptr, b, a.len) == 0;
}

static span_t mk(uint64_t lo, uint64_t id, uint64_t parent, enum span_kind kind, const char *svc, const char *remote,
                 const char *name, uint64_t ts, uint64_t dur)
{
    span_t s;
    memset(&s, 0, sizeof(s));
    s.trace_id_low = lo;
    s.id = id;
    s.parent_id = parent;
    s.kind = kind;
    if (svc) {
        s.has_local = 1;
        s.local.service_name = S(svc);
    }
    if (remote) {
        s.has_remote = 1;
        s.remote.service_name = S(remote);
    }
    if (name)
        s.name = S(name);
    s.timestamp_us = ts;
    s.duration_us = dur;
    return s;
}

static span_store_t *new_store(size_t max_spans, size_t max_bytes, int strict)
{
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_spans = max_spans;
    cfg.max_bytes = max_bytes;
    cfg.strict_trace_id = strict;
    return span_store_create(&cfg);
}

static const span_t *find_span(const span_t *spans, size_t n, uint64_t id, int shared)
{
    for (size_t i = 0; i < n; i++)
        if (spans[i].id == id && spans[i].shared == shared)
            return &spans[i];
    return NULL;
}

static const char *tag_value(const span_t *s, const char *key)
{
    static char buf[256];
    for (uint32_t i = 0; i < s->n_tags; i++) {
        if (streq(s->tags[i].key, key)) {
            snprintf(buf, sizeof(buf), "%.*s", (int)s->tags[i].value.len, s->tags[i].value.ptr);
            return buf;
        }
    }
    return NULL;
}

static void test_insert_get(void **state)
{
    (void)state;
    span_store_t *st = new_store(1000, 0, 1);
    span_tag_t tags[] = {{S("http.url"), S("http://a/b?c=1")}, {S("http.method"), S("GET")}};
    span_annotation_t anns[] = {{MS(1), S("wr")}};
    span_t s[3];
    s[0] = mk(0xabc, 1, 0, SPAN_KIND_SERVER, "Frontend", NULL, "GET /", MS(0), 5000);
    s[0].tags = tags;
    s[0].n_tags = 2;
    s[0].annotations = anns;
    s[0].n_annotations = 1;
    s[0].local.has_ipv4 = 1;
    memcpy(s[0].local.ipv4, "\x0a\x00\x00\x01", 4);
    s[0].local.port = 8080;
    s[0].debug = 1;
    s[1] = mk(0xabc, 2, 1, SPAN_KIND_CLIENT, "frontend", "backend", "call", MS(1), 3000);
    s[2] = mk(0xabc, 3, 2, SPAN_KIND_SERVER, "backend", NULL, "serve", MS(1) + 100, 2000);
    assert_int_equal(span_store_insert(st, s, 3, 1), 3);

    arena_t a;
    arena_init(&a, 0);
    const span_t *out;
    size_t n;
    assert_int_equal(span_store_get_trace(st, 0, 0xabc, &a, &out, &n), 0);
    assert_int_equal(n, 3);
    const span_t *r = find_span(out, n, 1, 0);
    assert_non_null(r);
    assert_true(streq(r->local.service_name, "frontend")); /* lowercased as Zipkin does */
    assert_true(streq(r->name, "get /"));
    assert_int_equal(r->kind, SPAN_KIND_SERVER);
    assert_int_equal(r->timestamp_us, MS(0));
    assert_int_equal(r->duration_us, 5000);
    assert_int_equal(r->local.port, 8080);
    assert_true(r->local.has_ipv4);
    assert_memory_equal(r->local.ipv4, "\x0a\x00\x00\x01", 4);
    assert_int_equal(r->debug, 1);
    assert_int_equal(r->n_tags, 2);
    /* tags come back sorted by key, as Zipkin's TreeMap does */
    assert_true(streq(r->tags[0].key, "http.method"));
    assert_true(streq(r->tags[1].value, "http://a/b?c=1"));
    assert_int_equal(r->n_annotations, 1);
    assert_int_equal(r->annotations[0].timestamp_us, MS(1));
    assert_true(streq(r->annotations[0].value, "wr"));
    const span_t *c = find_span(out, n, 2, 0);
    assert_non_null(c);
    assert_int_equal(c->parent_id, 1);
    assert_true(streq(c->remote.service_name, "backend"));
    assert_int_equal(c->trace_id_low, 0xabc);
    assert_int_equal(c->trace_id_high, 0);

    assert_int_equal(span_store_get_trace(st, 0, 0xabd, &a, &out, &n), -1);

    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, 3);
    assert_int_equal(ss.traces, 1);
    assert_int_equal(ss.services, 2);
    assert_true(ss.bytes > 0);

    str_t *names;
    assert_int_equal(span_store_service_names(st, &a, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_true(streq(names[0], "backend"));
    assert_true(streq(names[1], "frontend"));
    assert_int_equal(span_store_span_names(st, S("FRONTEND"), &a, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_true(streq(names[0], "call"));
    assert_true(streq(names[1], "get /"));
    assert_int_equal(span_store_remote_service_names(st, S("frontend"), &a, &names, &n), 0);
    assert_int_equal(n, 1);
    assert_true(streq(names[0], "backend"));
    assert_int_equal(span_store_span_names(st, S("nobody"), &a, &names, &n), 0);
    assert_int_equal(n, 0);

    arena_dispose(&a);
    span_store_destroy(st);
}

static void test_trace_id_128(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    const span_t *out;
    size_t n;
    span_t s = mk(0x1234, 1, 0, SPAN_KIND_SERVER, "svc", NULL, "op", MS(0), 10);
    s.trace_id_high = 0x77;
    span_t s64 = mk(0x1234, 2, 0, SPAN_KIND_SERVER, "svc", NULL, "op", MS(0), 10);

    span_store_t *st = new_store(1000, 0, 1);
    span_store_insert(st, &s, 1, 1);
    span_store_insert(st, &s64, 1, 1);
    assert_int_equal(span_store_get_trace(st, 0x77, 0x1234, &a, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].trace_id_high, 0x77);
    assert_int_equal(out[0].id, 1);
    assert_int_equal(span_store_get_trace(st, 0, 0x1234, &a, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].id, 2);
    assert_int_equal(span_store_get_trace(st, 0x78, 0x1234, &a, &out, &n), -1);
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.traces, 2);
    span_store_destroy(st);

    st = new_store(1000, 0, 0);
    span_store_insert(st, &s, 1, 1);
    span_store_insert(st, &s64, 1, 1);
    assert_int_equal(span_store_get_trace(st, 0, 0x1234, &a, &out, &n), 0);
    assert_int_equal(n, 2);
    const span_t *x = find_span(out, n, 1, 0), *y = find_span(out, n, 2, 0);
    assert_int_equal(x->trace_id_high, 0x77); /* each span keeps its own high bits */
    assert_int_equal(y->trace_id_high, 0);
    assert_int_equal(span_store_get_trace(st, 0x99, 0x1234, &a, &out, &n), 0);
    assert_int_equal(n, 2);
    span_store_destroy(st);
    arena_dispose(&a);
}

static void test_merge(void **state)
{
    (void)state;
    span_store_t *st = new_store(1000, 0, 1);
    arena_t a;
    arena_init(&a, 0);
    span_tag_t t1[] = {{S("b"), S("old")}, {S("a"), S("1")}};
    span_tag_t t2[] = {{S("b"), S("new")}, {S("c"), S("3")}};
    span_annotation_t a1[] = {{MS(2), S("x")}, {MS(1), S("y")}};
    span_annotation_t a2[] = {{MS(1), S("y")}, {MS(3), S("z")}};
    span_t first = mk(5, 10, 9, SPAN_KIND_SERVER, "svc", NULL, "op", MS(0), 0);
    first.tags = t1;
    first.n_tags = 2;
    first.annotations = a1;
    first.n_annotations = 2;
    span_t second = mk(5, 10, 0, SPAN_KIND_UNSPECIFIED, "svc", "peer", NULL, 0, 700);
    second.tags = t2;
    second.n_tags = 2;
    second.annotations = a2;
    second.n_annotations = 2;
    second.local.port = 80;
    span_store_insert(st, &first, 1, 1);
    span_store_insert(st, &second, 1, 1);
    span_store_insert(st, &second, 1, 1); /* an exact re-send changes nothing */

    const span_t *out;
    size_t n;
    assert_int_equal(span_store_get_trace(st, 0, 5, &a, &out, &n), 0);
    assert_int_equal(n, 1);
    const span_t *m = &out[0];
    assert_int_equal(m->parent_id, 9);
    assert_int_equal(m->kind, SPAN_KIND_SERVER);
    assert_true(streq(m->name, "op"));
    assert_int_equal(m->timestamp_us, MS(0));
    assert_int_equal(m->duration_us, 700);
    assert_true(streq(m->remote.service_name, "peer"));
    assert_int_equal(m->local.port, 80);
    assert_int_equal(m->n_tags, 3);
    assert_string_equal(tag_value(m, "a"), "1");
    assert_string_equal(tag_value(m, "b"), "new");
    assert_string_equal(tag_value(m, "c"), "3");
    assert_int_equal(m->n_annotations, 3);
    assert_int_equal(m->annotations[0].timestamp_us, MS(1));
    assert_int_equal(m->annotations[1].timestamp_us, MS(2));
    assert_int_equal(m->annotations[2].timestamp_us, MS(3));

    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, 1);
    /* the merged span's remote name is indexed once, under its service */
    str_t *names;
    assert_int_equal(span_store_remote_service_names(st, S("svc"), &a, &names, &n), 0);
    assert_int_equal(n, 1);

    /* a span of another service with the same id is a different span */
    span_t other = mk(5, 10, 9, SPAN_KIND_SERVER, "svc2", NULL, "op", MS(0), 0);
    span_store_insert(st, &other, 1, 1);
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, 2);
    arena_dispose(&a);
    span_store_destroy(st);
}

static void test_max_trace_spans(void **state)
{
    (void)state;
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_trace_spans = 3;
    span_store_t *st = span_store_create(&cfg);
    span_t s[5];
    for (int i = 0; i < 5; i++)
        s[i] = mk(9, (uint64_t)i + 1, 0, SPAN_KIND_SERVER, "svc", NULL, "n", MS(i), 1);
    assert_int_equal(span_store_insert(st, s, 5, 1), 3);
    span_t no_ids = s[0];
    no_ids.id = 0;
    assert_int_equal(span_store_insert(st, &no_ids, 1, 1), 0);
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, 3);
    span_store_destroy(st);
}

static void test_shared_kept_apart(void **state)
{
    (void)state;
    span_store_t *st = new_store(1000, 0, 1);
    arena_t a;
    arena_init(&a, 0);
    span_t c = mk(6, 7, 1, SPAN_KIND_CLIENT, "front", "back", "get", MS(0), 100);
    span_t s = mk(6, 7, 1, SPAN_KIND_SERVER, "front", NULL, "get", MS(0) + 10, 80);
    s.shared = 1;
    span_store_insert(st, &s, 1, 1);
    span_store_insert(st, &c, 1, 1);
    const span_t *out;
    size_t n;
    assert_int_equal(span_store_get_trace(st, 0, 6, &a, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_non_null(find_span(out, n, 7, 1));
    assert_non_null(find_span(out, n, 7, 0));
    /* a shared flag on a CLIENT is dropped, as Zipkin's span builder does */
    span_t bad = mk(8, 1, 0, SPAN_KIND_CLIENT, "front", NULL, "x", MS(0), 1);
    bad.shared = 1;
    span_store_insert(st, &bad, 1, 1);
    assert_int_equal(span_store_get_trace(st, 0, 8, &a, &out, &n), 0);
    assert_int_equal(out[0].shared, 0);
    arena_dispose(&a);
    span_store_destroy(st);
}

static int has_name(str_t *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (streq(names[i], s))
            return 1;
    return 0;
}

static void insert_trace(span_store_t *st, uint64_t lo, const char *svc, const char *name, int n_spans, uint64_t ts)
{
    span_t s[16];
    for (int i = 0; i < n_spans; i++)
        s[i] = mk(lo, (uint64_t)i + 1, (uint64_t)i, i ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER, svc, NULL, name,
                  ts + (uint64_t)i, 10);
    span_store_insert(st, s, (size_t)n_spans, 1);
}

static void test_evict_max_spans(void **state)
{
    (void)state;
    span_store_t *st = new_store(10, 0, 1);
    arena_t a;
    arena_init(&a, 0);
    char svc[16], name[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(svc, sizeof(svc), "svc-%d", i);
        snprintf(name, sizeof(name), "name-%d", i);
        insert_trace(st, (uint64_t)i, svc, name, 3, MS(i));
    }
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, 9);
    assert_int_equal(ss.traces, 3);
    assert_int_equal(ss.evicted_traces, 2);
    assert_int_equal(ss.evicted_spans, 6);
    assert_int_equal(ss.services, 3);
    const span_t *out;
    size_t n;
    assert_int_equal(span_store_get_trace(st, 0, 1, &a, &out, &n), -1);
    assert_int_equal(span_store_get_trace(st, 0, 2, &a, &out, &n), -1);
    assert_int_equal(span_store_get_trace(st, 0, 3, &a, &out, &n), 0);
    str_t *names;
    assert_int_equal(span_store_service_names(st, &a, &names, &n), 0);
    assert_int_equal(n, 3);
    assert_false(has_name(names, n, "svc-1"));
    assert_true(has_name(names, n, "svc-5"));
    assert_int_equal(span_store_span_names(st, S("svc-2"), &a, &names, &n), 0);
    assert_int_equal(n, 0);
    /* the evicted traces are gone from searches too */
    span_query_t q = {.end_ts_ms = T0_MS + 100, .lookback_ms = 100000, .limit = 100};
    trace_result_t res;
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 3);
    q.service_name = S("svc-1");
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 0);

    /* a late span of an old trace does not make it young: arrival order decides */
    insert_trace(st, 3, "svc-3", "late", 1, MS(50));
    insert_trace(st, 6, "svc-6", "name-6", 3, MS(6));
    assert_int_equal(span_store_get_trace(st, 0, 3, &a, &out, &n), -1);
    assert_int_equal(span_store_get_trace(st, 0, 4, &a, &out, &n), 0);
    arena_dispose(&a);
    span_store_destroy(st);
}

static void test_evict_max_bytes(void **state)
{
    (void)state;
    span_store_t *probe = new_store(0, 0, 1);
    span_store_stats_t empty, one;
    span_store_stats(probe, &empty);
    insert_trace(probe, 1, "svc-x", "n", 10, MS(0));
    span_store_stats(probe, &one);
    span_store_destroy(probe);
    size_t per_trace = (size_t)(one.bytes - empty.bytes);
    size_t bound = (size_t)empty.bytes + per_trace * 20;

    span_store_t *st = new_store(0, bound, 1);
    char svc[16];
    for (int i = 1; i <= 200; i++) {
        snprintf(svc, sizeof(svc), "svc-%d", i);
        insert_trace(st, (uint64_t)i, svc, "n", 10, MS(i));
        span_store_stats_t ss;
        span_store_stats(st, &ss);
        assert_true(ss.bytes <= bound);
    }
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_true(ss.evicted_traces > 100);
    assert_int_equal(ss.evicted_spans, ss.evicted_traces * 10);
    assert_int_equal(ss.traces + ss.evicted_traces, 200);
    assert_int_equal(ss.services, ss.traces);
    arena_t a;
    arena_init(&a, 0);
    str_t *names;
    size_t n;
    assert_int_equal(span_store_service_names(st, &a, &names, &n), 0);
    assert_int_equal(n, ss.traces);
    assert_false(has_name(names, n, "svc-1"));
    assert_true(has_name(names, n, "svc-200"));
    arena_dispose(&a);
    span_store_destroy(st);
}

static long resident_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident * 4096;
}

/* store.preTouch: the span memory is resident once the store exists; the byte bound and eviction work as
 * without it, past the pre-touched chunks too (fragmentation can ask for more than the bound). */
static void test_pretouch(void **state)
{
    (void)state;
    size_t bound = (size_t)6 << 20;
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_bytes = bound;
    cfg.pretouch = 1;
    long before = resident_bytes();
    span_store_t *st = span_store_create(&cfg);
    assert_non_null(st);
    long grown = resident_bytes() - before;
    assert_true(grown >= (long)bound);
    char svc[16];
    for (int i = 1; i <= 20000; i++) {
        snprintf(svc, sizeof(svc), "svc-%d", i % 7);
        insert_trace(st, (uint64_t)i, svc, i % 2 ? "op-a" : "op-b", 1 + i % 16, MS(i));
    }
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_true(ss.bytes <= bound);
    assert_true(ss.evicted_traces > 2000);
    assert_int_equal(ss.traces + ss.evicted_traces, 20000);
    arena_t a;
    arena_init(&a, 0);
    span_query_t q = {0};
    q.service_name = (str_t){"svc-6", 5};
    q.end_ts_ms = T0_MS + 30000;
    q.lookback_ms = 86400000;
    q.limit = 1;
    trace_result_t res;
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 1);
    assert_int_equal(res.traces[0].spans[0].trace_id_low, 19998); /* the newest trace of svc-6 */
    assert_int_equal(res.traces[0].n_spans, 1 + 19998 % 16);
    arena_dispose(&a);
    span_store_destroy(st);
}

/* Three traces for the query tests:
 *   A (T0+1000): frontend SERVER "get /" 5000µs [http.method=GET] -> CLIENT to backend -> backend SERVER
 *                "get /api" [http.status_code=500, annotation "retry"]
 *   B (T0+2000): frontend SERVER "post /" 100µs [http.method=POST]
 *   C (T0+3000): other SERVER "x" 10µs */
static span_store_t *query_store(void)
{
    span_store_t *st = new_store(1000, 0, 1);
    static span_tag_t ta[] = {{{"http.method", 11}, {"GET", 3}}};
    static span_tag_t tb[] = {{{"http.method", 11}, {"POST", 4}}};
    static span_tag_t tc[] = {{{"http.status_code", 16}, {"500", 3}}};
    static span_annotation_t an[] = {{0, {"retry", 5}}};
    an[0].timestamp_us = MS(1001);
    span_t s[5];
    s[0] = mk(0xA, 1, 0, SPAN_KIND_SERVER, "frontend", NULL, "get /", MS(1000), 5000);
    s[0].tags = ta;
    s[0].n_tags = 1;
    s[1] = mk(0xA, 2, 1, SPAN_KIND_CLIENT, "frontend", "backend", "call", MS(1000) + 10, 4000);
    s[2] = mk(0xA, 3, 2, SPAN_KIND_SERVER, "backend", NULL, "get /api", MS(1000) + 20, 3000);
    s[2].tags = tc;
    s[2].n_tags = 1;
    s[2].annotations = an;
    s[2].n_annotations = 1;
    s[3] = mk(0xB, 1, 0, SPAN_KIND_SERVER, "frontend", NULL, "post /", MS(2000), 100);
    s[3].tags = tb;
    s[3].n_tags = 1;
    s[4] = mk(0xC, 1, 0, SPAN_KIND_SERVER, "other", NULL, "x", MS(3000), 10);
    /* the child arrives before its root: the trace timestamp must still be the root's */
    span_store_insert(st, &s[2], 1, 1);
    span_store_insert(st, s, 2, 1);
    span_store_insert(st, &s[3], 2, 1);
    return st;
}

/* Run q and return the low trace ids of the result, newest first, as a string like "CBA". */
static const char *run(span_store_t *st, span_query_t q)
{
    static char buf[32];
    arena_t a;
    arena_init(&a, 0);
    if (q.end_ts_ms == 0)
        q.end_ts_ms = T0_MS + 10000;
    if (q.lookback_ms == 0)
        q.lookback_ms = 86400000;
    if (q.limit == 0)
        q.limit = 10;
    trace_result_t res;
    int rc = span_store_get_traces(st, &q, &a, &res);
    size_t k = 0;
    if (rc < 0) {
        strcpy(buf, "ERR");
    } else {
        for (size_t i = 0; i < res.n_traces && k < sizeof(buf) - 1; i++)
            buf[k++] = (char)("0123456789ABCDEF"[res.traces[i].spans[0].trace_id_low & 15]);
        buf[k] = '\0';
    }
    arena_dispose(&a);
    return buf;
}

static const char *run_aq(span_store_t *st, span_query_t q, const char *aq)
{
    static arena_t a;
    arena_init(&a, 0);
    span_query_term_t *terms;
    size_t n;
    const char *reason;
    assert_int_equal(span_query_parse_annotation_query(aq, strlen(aq), &a, &terms, &n, &reason), 0);
    q.terms = terms;
    q.n_terms = n;
    const char *r = run(st, q);
    arena_dispose(&a);
    return r;
}

static void test_query_params(void **state)
{
    (void)state;
    span_store_t *st = query_store();
    assert_string_equal(run(st, (span_query_t){0}), "CBA");
    assert_string_equal(run(st, (span_query_t){.service_name = S("frontend")}), "BA");
    assert_string_equal(run(st, (span_query_t){.service_name = S("FrontEnd")}), "BA");
    assert_string_equal(run(st, (span_query_t){.service_name = S("backend")}), "A");
    assert_string_equal(run(st, (span_query_t){.service_name = S("nobody")}), "");
    /* remoteServiceName */
    assert_string_equal(run(st, (span_query_t){.remote_service_name = S("backend")}), "A");
    assert_string_equal(run(st, (span_query_t){.service_name = S("frontend"), .remote_service_name = S("backend")}),
                        "A");
    assert_string_equal(run(st, (span_query_t){.service_name = S("backend"), .remote_service_name = S("backend")}), "");
    /* spanName, constrained by the service */
    assert_string_equal(run(st, (span_query_t){.span_name = S("post /")}), "B");
    assert_string_equal(run(st, (span_query_t){.span_name = S("all")}), "CBA");
    assert_string_equal(run(st, (span_query_t){.service_name = S("frontend"), .span_name = S("get /api")}), "");
    assert_string_equal(run(st, (span_query_t){.service_name = S("backend"), .span_name = S("get /api")}), "A");
    /* annotationQuery: annotation values, bare tag keys, key=value, "and" */
    assert_string_equal(run_aq(st, (span_query_t){0}, "retry"), "A");
    assert_string_equal(run_aq(st, (span_query_t){.service_name = S("frontend")}, "retry"), "");
    assert_string_equal(run_aq(st, (span_query_t){.service_name = S("backend")}, "retry"), "A");
    assert_string_equal(run_aq(st, (span_query_t){0}, "http.method"), "BA");
    assert_string_equal(run_aq(st, (span_query_t){0}, "http.method=POST"), "B");
    assert_string_equal(run_aq(st, (span_query_t){0}, "http.method=PUT"), "");
    assert_string_equal(run_aq(st, (span_query_t){0}, "http.method=GET and retry"), "A");
    assert_string_equal(run_aq(st, (span_query_t){0}, "http.method=GET and http.status_code=500"), "A");
    assert_string_equal(run_aq(st, (span_query_t){0}, "http.method=POST and retry"), "");
    assert_string_equal(run_aq(st, (span_query_t){0}, "nokey=1"), "");
    assert_string_equal(
        run_aq(st, (span_query_t){.service_name = S("frontend")}, "http.method=GET and http.status_code=500"), "");
    /* durations: any span of the service within [min, max] */
    assert_string_equal(run(st, (span_query_t){.min_duration_us = 1000}), "A");
    assert_string_equal(run(st, (span_query_t){.min_duration_us = 50, .max_duration_us = 200}), "B");
    assert_string_equal(run(st, (span_query_t){.min_duration_us = 5, .max_duration_us = 200}), "CB");
    assert_string_equal(
        run(st, (span_query_t){.service_name = S("backend"), .min_duration_us = 3500, .max_duration_us = 4500}), "");
    assert_string_equal(
        run(st, (span_query_t){.service_name = S("frontend"), .min_duration_us = 3500, .max_duration_us = 4500}), "A");
    assert_string_equal(run(st, (span_query_t){.max_duration_us = 200}), "ERR");
    /* endTs and lookback window on the trace timestamp (root's) */
    assert_string_equal(run(st, (span_query_t){.end_ts_ms = T0_MS + 1500, .lookback_ms = 1000}), "A");
    assert_string_equal(run(st, (span_query_t){.end_ts_ms = T0_MS + 2000, .lookback_ms = 1000}), "BA");
    assert_string_equal(run(st, (span_query_t){.end_ts_ms = T0_MS + 2999, .lookback_ms = 999}), "B");
    assert_string_equal(run(st, (span_query_t){.end_ts_ms = T0_MS + 2999, .lookback_ms = 998}), "");
    assert_string_equal(run(st, (span_query_t){.end_ts_ms = T0_MS + 999, .lookback_ms = 1000}), "");
    /* limit keeps the newest */
    assert_string_equal(run(st, (span_query_t){.limit = 1}), "C");
    assert_string_equal(run(st, (span_query_t){.limit = 2}), "CB");
    assert_string_equal(run(st, (span_query_t){.service_name = S("frontend"), .limit = 1}), "B");
    span_store_destroy(st);
}

static void test_query_parse_validate(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    span_query_term_t *t;
    size_t n;
    const char *reason = NULL;
    const char *q1 = " a and b=c and  a=d ";
    assert_int_equal(span_query_parse_annotation_query(q1, strlen(q1), &a, &t, &n, &reason), 0);
    assert_int_equal(n, 2);
    assert_true(streq(t[0].key, "a"));
    assert_true(streq(t[0].value, "d"));
    assert_true(streq(t[1].key, "b"));
    assert_true(streq(t[1].value, "c"));
    const char *q2 = "b=1 and b";
    assert_int_equal(span_query_parse_annotation_query(q2, strlen(q2), &a, &t, &n, &reason), 0);
    assert_int_equal(n, 1);
    assert_true(streq(t[0].value, "1"));
    const char *q3 = "x=a=b";
    assert_int_equal(span_query_parse_annotation_query(q3, strlen(q3), &a, &t, &n, &reason), 0);
    assert_true(streq(t[0].value, "a=b"));
    const char *q4 = "error";
    assert_int_equal(span_query_parse_annotation_query(q4, strlen(q4), &a, &t, &n, &reason), 0);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].value.len, 0);
    assert_int_equal(span_query_parse_annotation_query("=x", 2, &a, &t, &n, &reason), -1);
    assert_non_null(reason);
    assert_int_equal(span_query_parse_annotation_query("a and ", 6, &a, &t, &n, &reason), -1);
    assert_int_equal(span_query_parse_annotation_query("", 0, &a, &t, &n, &reason), 0);
    assert_int_equal(n, 0);

    span_query_t q = {.end_ts_ms = 1, .lookback_ms = 1, .limit = 1};
    assert_int_equal(span_query_validate(&q, &reason), 0);
    q.max_duration_us = 5;
    assert_int_equal(span_query_validate(&q, &reason), -1);
    assert_string_equal(reason, "maxDuration is only valid with minDuration");
    q.min_duration_us = 6;
    assert_int_equal(span_query_validate(&q, &reason), -1);
    q.min_duration_us = 5;
    assert_int_equal(span_query_validate(&q, &reason), 0);
    q.limit = 0;
    assert_int_equal(span_query_validate(&q, &reason), -1);
    q.limit = 1;
    q.end_ts_ms = 0;
    assert_int_equal(span_query_validate(&q, &reason), -1);
    arena_dispose(&a);
}

static void test_get_many(void **state)
{
    (void)state;
    span_store_t *st = query_store();
    arena_t a;
    arena_init(&a, 0);
    span_trace_id_t ids[] = {{0, 0xC}, {0, 0xDEAD}, {0, 0xA}, {0, 0xC}};
    trace_result_t res;
    assert_int_equal(span_store_get_many(st, ids, 4, &a, &res), 0);
    assert_int_equal(res.n_traces, 2);
    assert_int_equal(res.traces[0].spans[0].trace_id_low, 0xC);
    assert_int_equal(res.traces[1].n_spans, 3);
    arena_dispose(&a);
    span_store_destroy(st);
}

static const span_dep_link_t *find_link(const span_dep_link_t *l, size_t n, const char *p, const char *c)
{
    for (size_t i = 0; i < n; i++)
        if (streq(l[i].parent, p) && streq(l[i].child, c))
            return &l[i];
    return NULL;
}

static void test_dependencies(void **state)
{
    (void)state;
    span_store_t *st = new_store(1000, 0, 1);
    arena_t a;
    arena_init(&a, 0);
    span_tag_t err[] = {{{"error", 5}, {"boom", 4}}};
    /* trace 1: frontend root SERVER -> CLIENT to backend -> backend SERVER with error; server half first */
    span_t root = mk(1, 1, 0, SPAN_KIND_SERVER, "frontend", NULL, "get", MS(0), 100);
    span_t cli = mk(1, 2, 1, SPAN_KIND_CLIENT, "frontend", "backend", "get", MS(0) + 1, 90);
    span_t srv = mk(1, 3, 2, SPAN_KIND_SERVER, "backend", "frontend", "get", MS(0) + 2, 80);
    srv.tags = err;
    srv.n_tags = 1;
    span_store_insert(st, &srv, 1, 1);
    span_store_insert(st, &cli, 1, 1);
    span_store_insert(st, &root, 1, 1);
    /* trace 2: a leaf CLIENT with a remote endpoint counts client -> remote */
    span_t r2 = mk(2, 1, 0, SPAN_KIND_SERVER, "frontend", NULL, "get", MS(10), 100);
    span_t db = mk(2, 2, 1, SPAN_KIND_CLIENT, "frontend", "db", "query", MS(10) + 1, 50);
    span_t both[] = {db, r2};
    span_store_insert(st, both, 2, 1);
    /* trace 3: shared span ids (B3 style): client and server share id 7 */
    span_t c3 = mk(3, 7, 0, SPAN_KIND_CLIENT, "frontend", NULL, "get", MS(20), 100);
    span_t s3 = mk(3, 7, 0, SPAN_KIND_SERVER, "backend", NULL, "get", MS(20) + 1, 90);
    s3.shared = 1;
    span_store_insert(st, &s3, 1, 1);
    span_store_insert(st, &c3, 1, 1);
    /* trace 4: messaging */
    span_t prod = mk(4, 1, 0, SPAN_KIND_PRODUCER, "frontend", "kafka", "send", MS(30), 5);
    span_t cons = mk(4, 2, 1, SPAN_KIND_CONSUMER, "worker", "kafka", "recv", MS(30) + 9, 5);
    span_t msg[] = {prod, cons};
    span_store_insert(st, msg, 2, 1);

    span_dep_link_t *links;
    size_t n;
    assert_int_equal(span_store_dependencies(st, T0_MS + 60000, 3600000, &a, &links, &n), 0);
    const span_dep_link_t *fb = find_link(links, n, "frontend", "backend");
    assert_non_null(fb);
    assert_int_equal(fb->call_count, 2);
    assert_int_equal(fb->error_count, 1);
    const span_dep_link_t *fd = find_link(links, n, "frontend", "db");
    assert_non_null(fd);
    assert_int_equal(fd->call_count, 1);
    assert_int_equal(fd->error_count, 0);
    assert_non_null(find_link(links, n, "frontend", "kafka"));
    assert_non_null(find_link(links, n, "kafka", "worker"));
    assert_int_equal(n, 4);
    /* sorted by parent then child */
    assert_true(streq(links[0].parent, "frontend") && streq(links[0].child, "backend"));
    assert_true(streq(links[3].parent, "kafka"));

    /* the window excludes other times */
    assert_int_equal(span_store_dependencies(st, T0_MS - 120000, 60000, &a, &links, &n), 0);
    assert_int_equal(n, 0);

    /* the same trace again adds a call */
    span_t r5 = mk(5, 1, 0, SPAN_KIND_SERVER, "frontend", NULL, "get", MS(40), 100);
    span_t db5 = mk(5, 2, 1, SPAN_KIND_CLIENT, "frontend", "db", "query", MS(40) + 1, 50);
    span_t t5[] = {r5, db5};
    span_store_insert(st, t5, 2, 1);
    assert_int_equal(span_store_dependencies(st, T0_MS + 60000, 3600000, &a, &links, &n), 0);
    assert_int_equal(find_link(links, n, "frontend", "db")->call_count, 2);
    span_store_destroy(st);

    /* eviction withdraws links */
    st = new_store(2, 0, 1);
    span_store_insert(st, both, 2, 1);
    assert_int_equal(span_store_dependencies(st, T0_MS + 60000, 3600000, &a, &links, &n), 0);
    assert_int_equal(n, 1);
    span_store_insert(st, &c3, 1, 1);
    assert_int_equal(span_store_dependencies(st, T0_MS + 60000, 3600000, &a, &links, &n), 0);
    assert_int_equal(n, 0);
    arena_dispose(&a);
    span_store_destroy(st);
}

/* A client span of svc calling "db" and the server span that answers it, in one trace from origin. */
static void insert_call(span_store_t *st, uint64_t lo, const char *svc, uint16_t origin, uint64_t ts)
{
    span_t s[2];
    s[0] = mk(lo, 1, 0, SPAN_KIND_CLIENT, svc, "db", "query", ts, 10);
    s[1] = mk(lo, 2, 1, SPAN_KIND_SERVER, "db", NULL, "query", ts + 1, 8);
    span_store_insert_from(st, s, 2, 1, origin);
}

/* The store's side of a Kafka partition going away: exactly that origin's traces leave every index. */
static void test_drop_origin(void **state)
{
    (void)state;
    span_store_t *st = new_store(1000, 0, 1);
    for (uint64_t i = 1; i <= 30; i++)
        insert_call(st, i, i % 3 == 0 ? "orders" : "shop", (uint16_t)(i % 3), MS(i));
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.traces, 30);
    assert_int_equal(span_store_drop_origin(st, 2), 10);
    assert_int_equal(span_store_drop_origin(st, 2), 0);
    assert_int_equal(span_store_drop_origin(st, 0), 0); /* 0 is "from anywhere": never dropped */
    span_store_stats(st, &ss);
    assert_int_equal(ss.traces, 20);
    assert_int_equal(ss.spans, 40);
    assert_int_equal(ss.evicted_traces, 0);
    arena_t a;
    arena_init(&a, 0);
    for (uint64_t i = 1; i <= 30; i++) {
        const span_t *spans;
        size_t n = 0;
        int rc = span_store_get_trace(st, 0, i, &a, &spans, &n);
        assert_int_equal(rc == 0 && n == 2, i % 3 != 2);
    }
    /* dependencies count only the traces left: shop->db 10 (origin 1), orders->db 10 (origin 0) */
    span_dep_link_t *links;
    size_t nl;
    assert_int_equal(span_store_dependencies(st, T0_MS + 60000, 3600000, &a, &links, &nl), 0);
    const span_dep_link_t *l = find_link(links, nl, "shop", "db");
    assert_non_null(l);
    assert_int_equal(l->call_count, 10);
    assert_int_equal(find_link(links, nl, "orders", "db")->call_count, 10);
    span_query_t q = {0};
    q.service_name = (str_t){"shop", 4};
    q.end_ts_ms = T0_MS + 60000;
    q.lookback_ms = 3600000;
    q.limit = 100;
    trace_result_t res;
    assert_int_equal(span_store_get_traces(st, &q, &a, &res), 0);
    assert_int_equal(res.n_traces, 10);
    /* the ring closed up: eviction still takes the oldest of what is left */
    span_store_destroy(st);
    st = new_store(6, 0, 1);
    for (uint64_t i = 1; i <= 3; i++)
        insert_call(st, i, "shop", (uint16_t)i, MS(i));
    assert_int_equal(span_store_drop_origin(st, 1), 1);
    insert_call(st, 4, "shop", 0, MS(4));
    insert_call(st, 5, "shop", 0, MS(5)); /* 8 spans over a bound of 6: trace 2 goes */
    const span_t *spans;
    size_t n;
    assert_int_equal(span_store_get_trace(st, 0, 2, &a, &spans, &n), -1);
    assert_int_equal(span_store_get_trace(st, 0, 3, &a, &spans, &n), 0);
    span_store_stats(st, &ss);
    assert_int_equal(ss.traces, 3);
    assert_int_equal(ss.evicted_traces, 1);
    arena_dispose(&a);
    span_store_destroy(st);
}

static void test_autocomplete(void **state)
{
    (void)state;
    const char *keys[] = {"http.method", "environment"};
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_spans = 2;
    cfg.autocomplete_keys = keys;
    cfg.n_autocomplete_keys = 2;
    span_store_t *st = span_store_create(&cfg);
    arena_t a;
    arena_init(&a, 0);
    span_tag_t t1[] = {{S("http.method"), S("POST")}, {S("environment"), S("prod")}, {S("other"), S("x")}};
    span_tag_t t2[] = {{S("http.method"), S("GET")}};
    span_t s1 = mk(1, 1, 0, SPAN_KIND_SERVER, "a", NULL, "n", MS(0), 1);
    s1.tags = t1;
    s1.n_tags = 3;
    span_t s2 = mk(2, 1, 0, SPAN_KIND_SERVER, "a", NULL, "n", MS(1), 1);
    s2.tags = t2;
    s2.n_tags = 1;
    span_store_insert(st, &s1, 1, 1);
    span_store_insert(st, &s2, 1, 1);
    str_t *v;
    size_t n;
    assert_int_equal(span_store_autocomplete_keys(st, &a, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_true(streq(v[0], "environment"));
    assert_true(streq(v[1], "http.method"));
    assert_int_equal(span_store_autocomplete_values(st, S("http.method"), &a, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_true(streq(v[0], "GET"));
    assert_true(streq(v[1], "POST"));
    assert_int_equal(span_store_autocomplete_values(st, S("environment"), &a, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(span_store_autocomplete_values(st, S("other"), &a, &v, &n), 0);
    assert_int_equal(n, 0);
    /* evicting trace 1 removes its values */
    span_t s3 = mk(3, 1, 0, SPAN_KIND_SERVER, "a", NULL, "n", MS(2), 1);
    span_store_insert(st, &s3, 1, 1);
    assert_int_equal(span_store_autocomplete_values(st, S("http.method"), &a, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_true(streq(v[0], "GET"));
    assert_int_equal(span_store_autocomplete_values(st, S("environment"), &a, &v, &n), 0);
    assert_int_equal(n, 0);
    arena_dispose(&a);
    span_store_destroy(st);
}

typedef struct thr_arg {
    span_store_t *st;
    uint64_t base;
    volatile int *stop;
} thr_arg_t;

static void *writer(void *p)
{
    thr_arg_t *ta = p;
    span_t batch[100];
    for (int b = 0; b < 200; b++) {
        for (int i = 0; i < 100; i++) {
            uint64_t trace = ta->base + (uint64_t)(b * 10 + i / 10) + 1;
            batch[i] = mk(trace, (uint64_t)(i % 10) + 1, (uint64_t)(i % 10), SPAN_KIND_SERVER,
                          ta->base ? "writer-b" : "writer-a", "peer", "op", MS(b), 10);
        }
        span_store_insert(ta->st, batch, 100, 1);
    }
    return NULL;
}

static void *reader(void *p)
{
    thr_arg_t *ta = p;
    arena_t a;
    arena_init(&a, 0);
    while (!*ta->stop) {
        arena_reset(&a);
        span_query_t q = {
            .service_name = S("writer-a"), .end_ts_ms = T0_MS + 1000000, .lookback_ms = 10000000, .limit = 10};
        trace_result_t res;
        span_store_get_traces(ta->st, &q, &a, &res);
        str_t *names;
        size_t n;
        span_store_service_names(ta->st, &a, &names, &n);
        span_dep_link_t *links;
        span_store_dependencies(ta->st, T0_MS + 1000000, 10000000, &a, &links, &n);
        const span_t *spans;
        span_store_get_trace(ta->st, 0, 5, &a, &spans, &n);
    }
    arena_dispose(&a);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    span_store_t *st = new_store(1000000, 0, 1);
    volatile int stop = 0;
    thr_arg_t wa = {st, 0, &stop}, wb = {st, 1000000, &stop}, rd = {st, 0, &stop};
    pthread_t t1, t2, t3;
    pthread_create(&t3, NULL, reader, &rd);
    pthread_create(&t1, NULL, writer, &wa);
    pthread_create(&t2, NULL, writer, &wb);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    stop = 1;
    pthread_join(t3, NULL);
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, 40000);
    assert_int_equal(ss.traces, 4000);
    span_store_destroy(st);
}

static void test_many_spans(void **state)
{
    (void)state;
    enum { TRACES = 20000, PER = 10 };
    span_store_t *st = new_store(1000000, 0, 1);
    span_t batch[PER];
    char svc[16], name[16];
    for (uint64_t t = 1; t <= TRACES; t++) {
        snprintf(svc, sizeof(svc), "svc-%d", (int)(t % 20));
        snprintf(name, sizeof(name), "op-%d", (int)(t % 50));
        for (int i = 0; i < PER; i++)
            batch[i] = mk(t * 0x9E3779B97F4A7C15ULL, (uint64_t)i + 1, (uint64_t)i, SPAN_KIND_SERVER, svc, NULL, name,
                          MS(t) + (uint64_t)i, 10);
        span_store_insert(st, batch, PER, 1);
    }
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    assert_int_equal(ss.spans, TRACES * PER);
    assert_int_equal(ss.traces, TRACES);
    assert_int_equal(ss.services, 20);
    arena_t a;
    arena_init(&a, 0);
    for (uint64_t t = 1; t <= TRACES; t++) {
        arena_reset(&a);
        const span_t *out;
        size_t n;
        assert_int_equal(span_store_get_trace(st, 0, t * 0x9E3779B97F4A7C15ULL, &a, &out, &n), 0);
        assert_int_equal(n, PER);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(out[i].trace_id_low, t * 0x9E3779B97F4A7C15ULL);
            assert_int_equal(out[i].id, i + 1);
            assert_int_equal(out[i].timestamp_us, MS(t) + i);
        }
    }
    arena_dispose(&a);
    span_store_destroy(st);
}

/*
 * A search without a service walks every service's list and the list of
 * traces with spans that have none, merged newest first, each trace once:
 * traces in several lists, a trace whose only unnamed span gets its
 * service through a merge, and eviction of all of them.
 */
static void test_query_all_services(void **state)
{
    (void)state;
    span_store_t *st = new_store(8, 0, 1);
    span_t s[8];
    s[0] = mk(0x1, 1, 0, SPAN_KIND_SERVER, NULL, NULL, "x", MS(1000), 10); /* unnamed only */
    s[1] = mk(0x2, 1, 0, SPAN_KIND_SERVER, "a", NULL, "y", MS(2000), 10);  /* a */
    s[2] = mk(0x3, 1, 0, SPAN_KIND_SERVER, "a", NULL, "z", MS(3000), 10);  /* a and b */
    s[3] = mk(0x3, 2, 1, SPAN_KIND_CLIENT, "b", "a", "z", MS(3001), 5);
    s[4] = mk(0x4, 1, 0, SPAN_KIND_SERVER, NULL, NULL, "w", MS(1500), 10); /* unnamed and c */
    s[5] = mk(0x4, 2, 1, SPAN_KIND_SERVER, "c", NULL, "w", MS(1501), 10);
    span_store_insert(st, s, 6, 1);
    assert_string_equal(run(st, (span_query_t){0}), "3241");
    assert_string_equal(run(st, (span_query_t){.limit = 3}), "324");
    assert_string_equal(run(st, (span_query_t){.service_name = S("a")}), "32");
    assert_string_equal(run(st, (span_query_t){.service_name = S("c")}), "4");
    assert_string_equal(run(st, (span_query_t){.end_ts_ms = T0_MS + 1600, .lookback_ms = 1000}), "41");
    /* the same span again, now with a service: merged, trace 1 is named and found once */
    s[6] = mk(0x1, 1, 0, SPAN_KIND_SERVER, "late", NULL, "x", MS(1000), 10);
    span_store_insert(st, &s[6], 1, 2);
    assert_string_equal(run(st, (span_query_t){0}), "3241");
    assert_string_equal(run(st, (span_query_t){.service_name = S("late")}), "1");
    /* evict everything: every list forgets its traces (ASan sees any dangling entry) */
    for (uint64_t i = 0; i < 8; i++) {
        span_t e = mk(0x100 + i, 1, 0, SPAN_KIND_SERVER, "e", NULL, "e", MS(5000 + i), 1);
        span_store_insert(st, &e, 1, 3);
    }
    assert_string_equal(run(st, (span_query_t){.end_ts_ms = T0_MS + 4000, .lookback_ms = 100000}), "");
    assert_string_equal(run(st, (span_query_t){.limit = 3}), "765");
    span_store_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_get),
        cmocka_unit_test(test_trace_id_128),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_shared_kept_apart),
        cmocka_unit_test(test_max_trace_spans),
        cmocka_unit_test(test_evict_max_spans),
        cmocka_unit_test(test_evict_max_bytes),
        cmocka_unit_test(test_pretouch),
        cmocka_unit_test(test_query_params),
        cmocka_unit_test(test_query_all_services),
        cmocka_unit_test(test_query_parse_validate),
        cmocka_unit_test(test_get_many),
        cmocka_unit_test(test_dependencies),
        cmocka_unit_test(test_drop_origin),
        cmocka_unit_test(test_autocomplete),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_many_spans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
