/*
 * Tests for collector/query_merge (how the query role combines store
 * members' answers) and collector/query_peers (query.peers entries).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "query_merge.h"
#include "query_peers.h"

#define S(lit) STR_LIT(lit)

static void assert_names(const str_t *v, size_t n, const char *const *want, size_t n_want)
{
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        if (v[i].len != strlen(want[i]) || memcmp(v[i].ptr, want[i], v[i].len) != 0)
            fail_msg("name %zu: '%.*s', wanted '%s'", i, (int)v[i].len, v[i].ptr, want[i]);
}

static void test_names(void **state)
{
    (void)state;
    /* two members' sorted lists, overlapping; the order is the store's: by bytes, shorter first */
    str_t v[] = {S("api"), S("caf\xc3\xa9-\xc3\x9f"), S("web"), S("Web"), S("api"), S("cafe"), S("web"), S("ap")};
    static const char *const want[] = {"Web", "ap", "api", "cafe", "caf\xc3\xa9-\xc3\x9f", "web"};
    size_t n = query_merge_names(v, sizeof(v) / sizeof(v[0]));
    assert_names(v, n, want, sizeof(want) / sizeof(want[0]));
    assert_int_equal(query_merge_names(v, 0), 0);
    str_t one[] = {S("")};
    assert_int_equal(query_merge_names(one, 1), 1);
}

static void test_links(void **state)
{
    (void)state;
    zipkin_dep_link_t v[] = {
        {S("web"), S("api"), 3, 1}, {S("api"), S("db"), 2, 0},                             /* member A */
        {S("web"), S("api"), 4, 0}, {S("api"), S("dbx"), 1, 1}, {S("api"), S("db"), 5, 2}, /* member B */
    };
    size_t n = query_merge_links(v, sizeof(v) / sizeof(v[0]));
    assert_int_equal(n, 3);
    assert_true(str_equal(v[0].parent, S("api")) && str_equal(v[0].child, S("db")));
    assert_int_equal(v[0].call_count, 7);
    assert_int_equal(v[0].error_count, 2);
    assert_true(str_equal(v[1].child, S("dbx")));
    assert_int_equal(v[1].call_count, 1);
    assert_true(str_equal(v[2].parent, S("web")) && str_equal(v[2].child, S("api")));
    assert_int_equal(v[2].call_count, 7);
    assert_int_equal(v[2].error_count, 1);
}

static span_t sp(uint64_t trace, uint64_t id, uint64_t parent, uint64_t ts, const char *name)
{
    span_t s;
    memset(&s, 0, sizeof(s));
    s.trace_id_low = trace;
    s.id = id;
    s.parent_id = parent;
    s.timestamp_us = ts;
    s.name = (str_t){name, (uint32_t)strlen(name)};
    return s;
}

static void test_timestamp(void **state)
{
    (void)state;
    span_t v[] = {sp(1, 2, 1, 50, "child"), sp(1, 3, 1, 0, "no ts"), sp(1, 1, 0, 70, "root"), sp(1, 4, 0, 10, "root2")};
    assert_int_equal(query_trace_timestamp(v, 4), 70); /* the first root, not the earliest span */
    assert_int_equal(query_trace_timestamp(v, 2), 50); /* no root: the earliest */
    assert_int_equal(query_trace_timestamp(&v[1], 1), 0);
    assert_int_equal(query_trace_timestamp(NULL, 0), 0);
}

static void test_merge_traces(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    /* member A: traces 7 (half) and 9; member B: trace 8 and trace 7's other half, repeating A's root */
    span_t a7[] = {sp(7, 1, 0, 1000, "root"), sp(7, 3, 2, 1030, "server")};
    span_t a9[] = {sp(9, 1, 0, 3000, "root")};
    span_t b8[] = {sp(8, 1, 0, 2000, "root")};
    span_t b7[] = {sp(7, 2, 1, 1020, "client"), sp(7, 1, 0, 1000, "root"), sp(7, 3, 2, 1030, "server changed")};
    query_trace_t parts[] = {{a7, 2, 0, 5}, {a9, 1, 0, 1}, {NULL, 0, 0, 0}, {b8, 1, 0, 2}, {b7, 3, 0, 0}};
    query_trace_t *v;
    size_t n;
    assert_int_equal(query_merge_traces(parts, 5, 1, &a, &v, &n), 0);
    assert_int_equal(n, 3);
    /* first appearance order; trace 7 is A's spans then B's new ones, the exact copy of the root left out */
    assert_int_equal(v[0].spans[0].trace_id_low, 7);
    assert_int_equal(v[0].n_spans, 4);
    static const char *const names7[] = {"root", "server", "client", "server changed"};
    for (size_t i = 0; i < 4; i++)
        assert_true(str_equal(v[0].spans[i].name, (str_t){names7[i], (uint32_t)strlen(names7[i])}));
    assert_int_equal(v[0].ts, 1000);
    assert_int_equal(v[0].order, 0); /* the smallest of its parts' */
    assert_int_equal(v[1].spans[0].trace_id_low, 9);
    assert_int_equal(v[2].spans[0].trace_id_low, 8);

    query_merge_by_recent(v, n);
    assert_int_equal(v[0].ts, 3000);
    assert_int_equal(v[1].ts, 2000);
    assert_int_equal(v[2].ts, 1000);
    query_merge_by_order(v, n);
    assert_int_equal(v[0].spans[0].trace_id_low, 7);
    assert_int_equal(v[1].spans[0].trace_id_low, 9);
    assert_int_equal(v[2].spans[0].trace_id_low, 8);

    /* equal timestamps: higher trace id first, whatever the input order */
    span_t t1[] = {sp(1, 1, 0, 500, "a")}, t2[] = {sp(2, 1, 0, 500, "b")};
    query_trace_t same[] = {{t1, 1, 500, 0}, {t2, 1, 500, 0}};
    query_merge_by_recent(same, 2);
    assert_int_equal(same[0].spans[0].trace_id_low, 2);

    /* 128-bit ids: strict keeps different high bits apart, otherwise the low 64 bits match */
    span_t h1[] = {sp(5, 1, 0, 10, "x")}, h2[] = {sp(5, 2, 1, 11, "y")};
    h1[0].trace_id_high = 1;
    query_trace_t hp[] = {{h1, 1, 0, 0}, {h2, 1, 0, 0}};
    assert_int_equal(query_merge_traces(hp, 2, 1, &a, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(query_merge_traces(hp, 2, 0, &a, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].n_spans, 2);

    /* the limit is the arena's */
    arena_t tiny;
    arena_init(&tiny, 64);
    assert_int_equal(query_merge_traces(parts, 5, 1, &tiny, &v, &n), -1);
    arena_dispose(&tiny);
    arena_dispose(&a);
}

static void peer_ok(const char *entry, const char *host, uint16_t port, int dns)
{
    query_peer_spec_t s;
    const char *why = NULL;
    if (query_peer_parse(entry, &s, &why) != 0)
        fail_msg("\"%s\" refused: %s", entry, why);
    assert_string_equal(s.host, host);
    assert_int_equal(s.port, port);
    assert_int_equal(s.dns, dns);
}

static void peer_bad(const char *entry, const char *want)
{
    query_peer_spec_t s;
    const char *why = NULL;
    if (query_peer_parse(entry, &s, &why) == 0)
        fail_msg("\"%s\" accepted", entry);
    if (why == NULL || strstr(why, want) == NULL)
        fail_msg("\"%s\": reason '%s', wanted '%s'", entry, why ? why : "(none)", want);
}

static void test_peer_parse(void **state)
{
    (void)state;
    peer_ok("127.0.0.1:9411", "127.0.0.1", 9411, 0);
    peer_ok("[::1]:9411", "::1", 9411, 0);
    peer_ok("store-0.store.tracing.svc:9411", "store-0.store.tracing.svc", 9411, 0);
    peer_ok("dns+store.tracing.svc.cluster.local:9411", "store.tracing.svc.cluster.local", 9411, 1);
    peer_ok("dns+localhost:1", "localhost", 1, 1);

    peer_bad("", "empty entry");
    peer_bad("127.0.0.1", "missing \":PORT\"");
    peer_bad("::1:9411", "brackets");
    peer_bad("host:0", "port 0");
    peer_bad("host:65536", "above 65535");
    peer_bad("dns+:9411", "empty host");
    peer_bad("dns+[::1]:9411", "not an address");
    peer_bad("[zz::1]:9411", "not an IPv6 address");
    peer_bad("http://host:9411", "no scheme");
    peer_bad("ho st:9411", "character");
    peer_bad("user@host:9411", "character");
}

static void test_peer_resolve(void **state)
{
    (void)state;
    query_member_t *v = NULL;
    size_t n = 0, cap = 0;
    char why[128];
    query_peer_spec_t s;
    const char *reason;
    assert_int_equal(query_peer_parse("[::1]:9411", &s, &reason), 0);
    assert_int_equal(query_peer_resolve(&s, &v, &n, &cap, why, sizeof(why)), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, "[::1]:9411"); /* brackets back, as the metric label and the URL want */

    assert_int_equal(query_peer_parse("dns+localhost:7", &s, &reason), 0);
    assert_int_equal(query_peer_resolve(&s, &v, &n, &cap, why, sizeof(why)), 0);
    assert_true(n >= 2); /* 127.0.0.1, and ::1 where localhost has it */
    int v4 = 0;
    for (size_t i = 1; i < n; i++) {
        v4 |= strcmp(v[i].name, "127.0.0.1:7") == 0;
        assert_true(strcmp(v[i].name, "[::1]:7") == 0 || strcmp(v[i].name, "127.0.0.1:7") == 0);
        for (size_t j = 1; j < i; j++)
            assert_string_not_equal(v[i].name, v[j].name); /* each address once */
    }
    assert_true(v4);

    assert_int_equal(query_peer_parse("dns+no-such-host.invalid:7", &s, &reason), 0);
    size_t before = n;
    assert_int_equal(query_peer_resolve(&s, &v, &n, &cap, why, sizeof(why)), -1);
    assert_int_equal(n, before);
    assert_true(why[0] != '\0');
    free(v);

    /* the list object: order of the entries, each member once */
    char *entries[] = {"127.0.0.1:2", "dns+localhost:2", "[::1]:1"};
    query_peers_t *p = query_peers_create(entries, 3, 60000);
    assert_non_null(p);
    query_member_t *m;
    size_t k = query_peers_get(p, &m);
    assert_true(k >= 2);
    assert_int_equal(k, query_peers_count(p));
    assert_string_equal(m[0].name, "127.0.0.1:2");
    assert_string_equal(m[k - 1].name, "[::1]:1");
    free(m);
    query_peers_destroy(p);
    char *bad[] = {"127.0.0.1:2", "nope"};
    assert_null(query_peers_create(bad, 2, 60000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),        cmocka_unit_test(test_links),      cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_merge_traces), cmocka_unit_test(test_peer_parse), cmocka_unit_test(test_peer_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
