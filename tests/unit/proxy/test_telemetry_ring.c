/* Unit tests for proxy/telemetry_ring: the worker-to-exporter SPSC record ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>

#include "telemetry_ring.h"

/* Record i: its size and its bytes are functions of i, so a reader can check both. */
static size_t rec_size(uint64_t i, size_t max)
{
    return 1 + (size_t)((i * 2654435761u) % max);
}

static unsigned char rec_byte(uint64_t i, size_t k)
{
    return (unsigned char)((i * 31u + k * 7u) ^ (i >> 8));
}

static void rec_write(void *p, uint64_t i, size_t n)
{
    unsigned char *b = p;
    memcpy(b, &i, n < sizeof(i) ? n : sizeof(i));
    for (size_t k = sizeof(i); k < n; k++)
        b[k] = rec_byte(i, k);
}

/* Whether p/n is record i exactly. */
static bool rec_ok(const void *p, size_t n, uint64_t i, size_t max)
{
    if (n != rec_size(i, max))
        return false;
    const unsigned char *b = p;
    uint64_t got = 0;
    memcpy(&got, b, n < sizeof(got) ? n : sizeof(got));
    uint64_t want = 0;
    memcpy(&want, &i, n < sizeof(want) ? n : sizeof(want));
    if (got != want)
        return false;
    for (size_t k = sizeof(i); k < n; k++)
        if (b[k] != rec_byte(i, k))
            return false;
    return true;
}

static void test_capacity_and_limits(void **state)
{
    (void)state;
    tele_ring_t *r = tele_ring_create(5000);
    assert_int_equal(tele_ring_capacity(r), 8192);
    assert_int_equal(tele_ring_max_record(r), 2048);
    assert_null(tele_ring_reserve(r, 0));
    assert_null(tele_ring_reserve(r, 2049));
    assert_non_null(tele_ring_reserve(r, 2048));
    size_t n;
    assert_null(tele_ring_peek(r, &n)); /* reserved, not committed: invisible */
    tele_ring_commit(r);
    const unsigned char *p = tele_ring_peek(r, &n);
    assert_non_null(p);
    assert_int_equal(n, 2048);
    assert_int_equal((uintptr_t)p % 8, 0);
    assert_null(tele_ring_peek(r, &n));
    tele_ring_release(r);
    assert_int_equal(tele_ring_used(r), 0);
    tele_ring_destroy(r);
    tele_ring_destroy(NULL);
    /* small capacities are raised */
    r = tele_ring_create(1);
    assert_int_equal(tele_ring_capacity(r), TELE_RING_MIN);
    tele_ring_destroy(r);
}

/* Many wraps of a small ring with variable sizes, read in lockstep: every record intact and in order. */
static void test_wrap_around(void **state)
{
    (void)state;
    tele_ring_t *r = tele_ring_create(4096);
    size_t max = 700;
    uint64_t next_write = 0, next_read = 0;
    size_t wraps = 0;
    const unsigned char *prev = NULL;
    for (int round = 0; round < 20000; round++) {
        /* write up to three, read up to two: the ring keeps some records across each wrap */
        for (int k = 0; k < 3; k++) {
            size_t n = rec_size(next_write, max);
            void *p = tele_ring_reserve(r, n);
            if (p == NULL)
                break;
            if (prev != NULL && (const unsigned char *)p < prev)
                wraps++;
            prev = p;
            rec_write(p, next_write, n);
            tele_ring_commit(r);
            next_write++;
        }
        for (int k = 0; k < 2; k++) {
            size_t n;
            const void *p = tele_ring_peek(r, &n);
            if (p == NULL)
                break;
            assert_true(rec_ok(p, n, next_read, max));
            next_read++;
        }
        size_t before = tele_ring_used(r);
        tele_ring_release(r);
        assert_true(tele_ring_used(r) <= before);
        assert_true(tele_ring_used(r) <= tele_ring_capacity(r));
    }
    /* drain */
    size_t n;
    const void *p;
    while ((p = tele_ring_peek(r, &n)) != NULL) {
        assert_true(rec_ok(p, n, next_read, max));
        next_read++;
    }
    tele_ring_release(r);
    assert_int_equal(next_read, next_write);
    assert_int_equal(tele_ring_used(r), 0);
    /* about 350 bytes per record through 4 KiB: well over a thousand trips round the block */
    assert_true(wraps > 1000);
    tele_ring_destroy(r);
}

/* A record that does not fit before the end of the block starts at its beginning, whole. */
static void test_record_across_the_boundary(void **state)
{
    (void)state;
    tele_ring_t *r = tele_ring_create(4096);
    /* 3 records of 1000 (+8 header) bytes: 3024 used, 1072 left before the end */
    unsigned char *first = NULL;
    for (uint64_t i = 0; i < 3; i++) {
        unsigned char *p = tele_ring_reserve(r, 1000);
        assert_non_null(p);
        if (i == 0)
            first = p;
        memset(p, (int)('a' + i), 1000);
        tele_ring_commit(r);
    }
    size_t n;
    /* free the first two: 2016 bytes at the start */
    for (int i = 0; i < 2; i++)
        assert_non_null(tele_ring_peek(r, &n));
    tele_ring_release(r);
    /* 1024 bytes: fits before the end (1072 left) */
    unsigned char *p = tele_ring_reserve(r, 1024);
    assert_non_null(p);
    assert_true(p > first + 2000);
    memset(p, 'd', 1024);
    tele_ring_commit(r);
    /* 40 bytes left before the end: a 100-byte record goes to the start */
    p = tele_ring_reserve(r, 100);
    assert_non_null(p);
    assert_ptr_equal(p, first);
    memset(p, 'e', 100);
    tele_ring_commit(r);
    /* now the start is taken up to 116 and record 'c' sits at 2016: a 2000-byte record does not fit */
    assert_null(tele_ring_reserve(r, 2000));
    const char want[] = {'c', 'd', 'e'};
    const size_t want_n[] = {1000, 1024, 100};
    for (int i = 0; i < 3; i++) {
        const unsigned char *q = tele_ring_peek(r, &n);
        assert_non_null(q);
        assert_int_equal(n, want_n[i]);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(q[k], (unsigned char)want[i]);
    }
    assert_null(tele_ring_peek(r, &n));
    tele_ring_release(r);
    assert_int_equal(tele_ring_used(r), 0);
    tele_ring_destroy(r);
}

/* A full ring refuses records (the producer drops and counts them) and takes them again once read. */
static void test_full_ring_refuses_then_recovers(void **state)
{
    (void)state;
    tele_ring_t *r = tele_ring_create(4096);
    uint64_t written = 0, refused = 0;
    for (uint64_t i = 0; i < 100; i++) {
        void *p = tele_ring_reserve(r, 200);
        if (p == NULL) {
            refused++;
            continue;
        }
        rec_write(p, i, 200);
        tele_ring_commit(r);
        written++;
    }
    /* 208 bytes a record: 19 fit in 4096 */
    assert_int_equal(written, 19);
    assert_int_equal(refused, 81);
    assert_true(tele_ring_used(r) <= 4096);
    size_t n;
    uint64_t read = 0;
    const void *p;
    while ((p = tele_ring_peek(r, &n)) != NULL) {
        assert_int_equal(n, 200);
        uint64_t id;
        memcpy(&id, p, sizeof(id));
        assert_int_equal(id, read); /* the first 19 went in; the refused ones left no trace */
        read++;
    }
    assert_int_equal(read, 19);
    /* not released yet: still full for the producer */
    assert_null(tele_ring_reserve(r, 200));
    tele_ring_release(r);
    assert_non_null(tele_ring_reserve(r, 200));
    tele_ring_destroy(r);
}

/* ---- one producer thread, one consumer thread ---- */

#define SPSC_RECORDS 400000u
#define SPSC_MAX 300u

typedef struct spsc {
    tele_ring_t *r;
    bool retry; /* producer retries a refused record instead of dropping it */
    uint64_t committed, dropped, sum_in;
    uint64_t read, sum_out, bad;
    _Atomic int done;
} spsc_t;

static uint64_t mix(uint64_t sum, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sum = (sum ^ p[i]) * 1099511628211ull;
    return sum;
}

static void *producer(void *arg)
{
    spsc_t *s = arg;
    for (uint64_t i = 0; i < SPSC_RECORDS; i++) {
        size_t n = rec_size(i, SPSC_MAX);
        void *p;
        while ((p = tele_ring_reserve(s->r, n)) == NULL) {
            if (!s->retry)
                break;
            sched_yield();
        }
        if (p == NULL) {
            s->dropped++;
            continue;
        }
        rec_write(p, i, n);
        s->sum_in = mix(s->sum_in, p, n);
        tele_ring_commit(s->r);
        s->committed++;
    }
    atomic_store(&s->done, 1);
    return NULL;
}

static void *consumer(void *arg)
{
    spsc_t *s = arg;
    uint64_t last = 0;
    bool any = false;
    for (;;) {
        int done = atomic_load(&s->done);
        size_t n;
        const unsigned char *p;
        int got = 0;
        while ((p = tele_ring_peek(s->r, &n)) != NULL) {
            uint64_t id = 0;
            memcpy(&id, p, n < sizeof(id) ? n : sizeof(id));
            if (n >= sizeof(id)) {
                /* ids only grow (drops leave gaps) and each record is whole */
                if ((any && id <= last) || !rec_ok(p, n, id, SPSC_MAX))
                    s->bad++;
                last = id;
                any = true;
            }
            s->sum_out = mix(s->sum_out, p, n);
            s->read++;
            if (++got % 16 == 0)
                tele_ring_release(s->r);
        }
        tele_ring_release(s->r);
        if (done && got == 0)
            break;
        if (got == 0)
            sched_yield();
    }
    return NULL;
}

static void run_spsc(bool retry, size_t capacity)
{
    spsc_t s;
    memset(&s, 0, sizeof(s));
    s.r = tele_ring_create(capacity);
    s.retry = retry;
    s.sum_in = s.sum_out = 14695981039346656037ull;
    pthread_t pt, ct;
    assert_int_equal(pthread_create(&ct, NULL, consumer, &s), 0);
    assert_int_equal(pthread_create(&pt, NULL, producer, &s), 0);
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.read, s.committed);
    assert_int_equal(s.committed + s.dropped, SPSC_RECORDS);
    assert_true(s.sum_in == s.sum_out);
    if (retry)
        assert_int_equal(s.dropped, 0);
    assert_int_equal(tele_ring_used(s.r), 0);
    tele_ring_destroy(s.r);
}

static void test_spsc_threads_no_loss(void **state)
{
    (void)state;
    run_spsc(true, 4096);
}

static void test_spsc_threads_with_drops(void **state)
{
    (void)state;
    run_spsc(false, 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_and_limits),        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_record_across_the_boundary), cmocka_unit_test(test_full_ring_refuses_then_recovers),
        cmocka_unit_test(test_spsc_threads_no_loss),       cmocka_unit_test(test_spsc_threads_with_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
