/*
 * Tests for the span store's time lists (B+trees on (timestamp, trace)):
 * random inserts and removals, checked after every step against a sorted
 * reference array (order, membership, the walk from a timestamp back to the
 * start), with enough entries for several levels, splits, merges and
 * redistributions at every level, and the memory accounting back at zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "span_store_internal.h"

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int ref_cmp(const void *a, const void *b)
{
    const trace_t *x = *(trace_t *const *)a, *y = *(trace_t *const *)b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return (uintptr_t)x < (uintptr_t)y ? -1 : (uintptr_t)x > (uintptr_t)y;
}

/* The walk from ts back to the start yields exactly the reference entries with ts <= ts, newest first. */
static void check_walk(const tlist_t *l, trace_t **ref, size_t n, uint64_t ts)
{
    size_t i = n;
    while (i > 0 && ref[i - 1]->ts > ts)
        i--;
    tlist_iter_t it;
    tlist_seek(l, ts, &it);
    trace_t *t;
    while ((t = tlist_prev(&it)) != NULL) {
        assert_true(i > 0);
        assert_ptr_equal(t, ref[--i]);
    }
    assert_int_equal(i, 0);
}

static void check(const tlist_t *l, trace_t **ref, size_t n)
{
    assert_int_equal(tlist_check(l), 0);
    assert_int_equal(l->len, n);
    qsort(ref, n, sizeof(*ref), ref_cmp);
    check_walk(l, ref, n, UINT64_MAX);
}

/* n traces with timestamps from a small range, so many share one and order falls to the pointer. */
static trace_t *make_traces(size_t n, uint64_t ts_range)
{
    trace_t *ts = calloc(n, sizeof(*ts));
    assert_non_null(ts);
    for (size_t i = 0; i < n; i++)
        ts[i].ts = 1 + rnd() % ts_range;
    return ts;
}

static void random_ops(uint64_t ts_range, size_t n, size_t rounds)
{
    trace_t *ts = make_traces(n, ts_range);
    uint8_t *in = calloc(n, 1);
    trace_t **ref = calloc(n, sizeof(*ref));
    tlist_t l = {0};
    int64_t acct = 0;
    size_t n_in = 0;
    for (size_t r = 0; r < rounds; r++) {
        /* phases that grow, shrink, and churn, so every level splits and merges */
        size_t phase = (r * 8 / rounds) % 4;
        int add = phase == 0 ? rnd() % 10 < 9 : phase == 2 ? rnd() % 10 < 1 : rnd() % 2;
        size_t i = rnd() % n;
        if (add && !in[i]) {
            tlist_insert(&l, &ts[i], &acct);
            in[i] = 1;
            n_in++;
        } else if (!add && in[i]) {
            assert_true(tlist_contains(&l, &ts[i]));
            tlist_remove(&l, &ts[i], &acct);
            in[i] = 0;
            n_in--;
        }
        assert_int_equal(tlist_contains(&l, &ts[i]), in[i]);
        if (r % 4999 == 0 || r + 1 == rounds) {
            size_t k = 0;
            for (size_t j = 0; j < n; j++)
                if (in[j])
                    ref[k++] = &ts[j];
            assert_int_equal(k, n_in);
            check(&l, ref, k);
            for (int w = 0; w < 4; w++)
                check_walk(&l, ref, k, rnd() % (ts_range + 2));
        }
    }
    /* removing something absent changes nothing */
    for (size_t j = 0; j < n; j++)
        if (!in[j]) {
            tlist_remove(&l, &ts[j], &acct);
            break;
        }
    assert_int_equal(l.len, n_in);
    /* empty it from the oldest end, as eviction does */
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        if (in[j])
            ref[k++] = &ts[j];
    qsort(ref, k, sizeof(*ref), ref_cmp);
    for (size_t j = 0; j < k; j++) {
        tlist_remove(&l, ref[j], &acct);
        if (j % 1001 == 0)
            assert_int_equal(tlist_check(&l), 0);
    }
    assert_int_equal(l.len, 0);
    assert_null(l.root);
    assert_int_equal(acct, 0);
    tlist_dispose(&l, &acct);
    free(ts);
    free(in);
    free(ref);
}

static void test_random_wide_range(void **state)
{
    (void)state;
    random_ops(1000000000, 60000, 400000);
}

static void test_random_equal_timestamps(void **state)
{
    (void)state;
    random_ops(3, 20000, 150000);
}

static void test_in_order_and_reverse(void **state)
{
    (void)state;
    size_t n = 100000;
    trace_t *ts = calloc(n, sizeof(*ts));
    trace_t **ref = calloc(n, sizeof(*ref));
    tlist_t l = {0};
    int64_t acct = 0;
    for (size_t i = 0; i < n; i++) {
        ts[i].ts = i < n / 2 ? 1000000 + i : 1000000 - (i - n / 2); /* ascending, then descending below */
        tlist_insert(&l, &ts[i], &acct);
        ref[i] = &ts[i];
    }
    assert_true(l.height >= 2);
    assert_true(acct > 0);
    check(&l, ref, n);
    /* dispose frees every node */
    tlist_dispose(&l, &acct);
    assert_int_equal(acct, 0);
    assert_null(l.root);
    /* walking an empty list yields nothing */
    tlist_iter_t it;
    tlist_seek(&l, 5, &it);
    assert_null(tlist_prev(&it));
    free(ts);
    free(ref);
}

/* Removing from the middle of a big list keeps it compact: no more than 4x the entries' own size. */
static void test_memory_after_random_removal(void **state)
{
    (void)state;
    size_t n = 200000;
    trace_t *ts = make_traces(n, 1000000000);
    tlist_t l = {0};
    int64_t acct = 0;
    for (size_t i = 0; i < n; i++)
        tlist_insert(&l, &ts[i], &acct);
    int64_t full = acct;
    assert_true(full < (int64_t)(n * 16 * 2)); /* leaves at least half full after splits */
    for (size_t i = 0; i < n; i++)
        if (i % 10 != 0)
            tlist_remove(&l, &ts[i], &acct);
    assert_int_equal(tlist_check(&l), 0);
    assert_int_equal(l.len, n / 10);
    assert_true(acct < (int64_t)(l.len * 16 * 4 + 4096));
    tlist_dispose(&l, &acct);
    assert_int_equal(acct, 0);
    free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_wide_range),
        cmocka_unit_test(test_random_equal_timestamps),
        cmocka_unit_test(test_in_order_and_reverse),
        cmocka_unit_test(test_memory_after_random_removal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
