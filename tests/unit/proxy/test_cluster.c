/*
 * Unit tests for proxy/cluster: the breaker (admit below, at and past
 * tcp.maxConnections, the FIFO wait queue, http1MaxPendingRequests and its
 * default, wake-ups on release, unwait anywhere in the queue), the retry
 * budget (http.maxRetries), and outlier detection (5xx and gateway error
 * runs, ejection time growing with each ejection, maxEjectionPercent,
 * minHealthPercent, the pick mask, dispose). Every cluster is built from
 * real YAML through proxy_config_load_string and runtime_create.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy/cluster.h"
#include "proxy/config.h"
#include "proxy/router.h"
#include "proxy/runtime.h"

/* ---- building a cluster from YAML ---- */

#define CLUSTER_NAME "outbound|80||svc"

typedef struct fixture {
    runtime_t *rt;
    const router_cluster_t *cl;
    cluster_state_t cs;
} fixture_t;

typedef struct text {
    char s[16384];
    size_t len;
} text_t;

__attribute__((format(printf, 2, 3))) static void text_add(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->len, sizeof t->s - t->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof t->s - t->len);
    t->len += (size_t)n;
}

/*
 * A Proxy, a ServiceEntry "svc" (port 80) with n_endpoints STATIC endpoints
 * 127.0.0.1:19081, :19082, ..., and, when policy is not NULL, a
 * DestinationRule for it with trafficPolicy: policy (a YAML flow mapping).
 */
static void mesh_yaml(text_t *t, size_t n_endpoints, const char *policy)
{
    t->len = 0;
    text_add(t, "apiVersion: outrider.io/v1alpha1\n"
                "kind: Proxy\n"
                "metadata: {name: p, namespace: default}\n"
                "spec: {outbound: {listen: \"127.0.0.1:15001\"}}\n"
                "---\n"
                "apiVersion: networking.istio.io/v1\n"
                "kind: ServiceEntry\n"
                "metadata: {name: svc}\n"
                "spec:\n"
                "  hosts: [svc]\n"
                "  ports: [{number: 80, name: http}]\n"
                "  resolution: STATIC\n"
                "  endpoints:\n");
    for (size_t i = 0; i < n_endpoints; i++)
        text_add(t, "  - {address: 127.0.0.1, ports: {http: %zu}}\n", 19081 + i);
    if (policy != NULL)
        text_add(t,
                 "---\n"
                 "apiVersion: networking.istio.io/v1\n"
                 "kind: DestinationRule\n"
                 "metadata: {name: svc}\n"
                 "spec:\n"
                 "  host: svc\n"
                 "  trafficPolicy: %s\n",
                 policy);
}

static void on_msg(void *ctx, const char *m)
{
    (void)ctx;
    fprintf(stderr, "config: %s\n", m);
}

/* Load the mesh, build its runtime, find cluster "svc" and init one worker's state for it. */
static void fixture_open(fixture_t *f, size_t n_endpoints, const char *policy)
{
    static text_t t;
    mesh_yaml(&t, n_endpoints, policy);
    proxy_config_t *cfg = proxy_config_load_string("t.yaml", t.s, t.len, on_msg, on_msg, NULL);
    assert_non_null(cfg);
    char err[256] = "";
    f->rt = runtime_create(cfg, err, sizeof err);
    if (f->rt == NULL) {
        proxy_config_destroy(cfg);
        fail_msg("runtime_create: %s", err);
    }
    f->cl = NULL;
    for (size_t i = 0; i < router_cluster_count(f->rt->router); i++)
        if (strcmp(router_cluster(f->rt->router, i)->name, CLUSTER_NAME) == 0)
            f->cl = router_cluster(f->rt->router, i);
    assert_non_null(f->cl);
    assert_int_equal(f->cl->n_endpoints, n_endpoints);
    cluster_state_init(&f->cs, f->cl);
}

static void fixture_close(fixture_t *f)
{
    assert_int_equal(f->cs.n_waiting, 0);
    cluster_state_dispose(&f->cs, f->rt, f->cl);
    runtime_unref(f->rt);
}

static unsigned ejected_now(const fixture_t *f)
{
    return atomic_load(&f->rt->ejected[f->cl->index]);
}

static unsigned long long counter(const fixture_t *f, enum runtime_cluster_counter k)
{
    return atomic_load(&f->rt->counters[f->cl->index].n[k]);
}

/* ---- waiters ---- */

typedef struct test_waiter {
    cluster_waiter_t w;
    int id;
} test_waiter_t;

/* What each wake() saw, in order. */
static struct {
    cluster_state_t *cs;
    int ids[64];
    uint32_t n_waiting[64]; /* cs->n_waiting when woken */
    size_t n;
} woken;

static void woken_reset(cluster_state_t *cs)
{
    memset(&woken, 0, sizeof woken);
    woken.cs = cs;
}

static void on_wake(cluster_waiter_t *w)
{
    test_waiter_t *t = (test_waiter_t *)w;
    assert_false(w->queued);
    assert_null(w->next);
    assert_true(woken.n < 64);
    woken.ids[woken.n] = t->id;
    woken.n_waiting[woken.n] = woken.cs->n_waiting;
    woken.n++;
}

static void waiter_init(test_waiter_t *t, int id)
{
    memset(t, 0, sizeof *t);
    t->w.wake = on_wake;
    t->id = id;
}

/* The queue holds exactly ids, in that order, and head, tail and n_waiting agree. */
static void expect_queue(const cluster_state_t *cs, const int *ids, size_t n)
{
    assert_int_equal(cs->n_waiting, n);
    const cluster_waiter_t *w = cs->wait_head, *last = NULL;
    for (size_t i = 0; i < n; i++) {
        assert_non_null(w);
        assert_true(w->queued);
        assert_int_equal(((const test_waiter_t *)w)->id, ids[i]);
        last = w;
        w = w->next;
    }
    assert_null(w);
    assert_ptr_equal(cs->wait_tail, last);
}

/* ---- breaker ---- */

#define POOL_2_3_2 "{connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 3, maxRetries: 2}}}"

static void test_state_init(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 3, "{connectionPool: {tcp: {maxConnections: 2}}, outlierDetection: {consecutive5xxErrors: 2}}");
    assert_int_equal(f.cs.leased, 0);
    assert_int_equal(f.cs.retrying, 0);
    assert_int_equal(f.cs.n_waiting, 0);
    assert_null(f.cs.wait_head);
    assert_null(f.cs.wait_tail);
    assert_int_equal(f.cs.n_ejected, 0);
    assert_non_null(f.cs.health);
    for (size_t e = 0; e < 3; e++) {
        assert_int_equal(f.cs.health[e].consecutive_5xx, 0);
        assert_int_equal(f.cs.health[e].consecutive_gateway, 0);
        assert_int_equal(f.cs.health[e].times_ejected, 0);
        assert_int_equal(f.cs.health[e].ejected_until_ms, 0);
    }
    fixture_close(&f);
    assert_null(f.cs.health);

    fixture_open(&f, 3, POOL_2_3_2);
    assert_null(f.cs.health);
    fixture_close(&f);
    fixture_open(&f, 3, NULL);
    assert_null(f.cl->policy);
    assert_null(f.cs.health);
    fixture_close(&f);
}

static void test_admit_go(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 3, POOL_2_3_2);
    assert_int_equal(f.cl->policy->max_connections, 2);
    test_waiter_t a;
    waiter_init(&a, 1);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 0, 0, &a.w), CLUSTER_GO);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &a.w), CLUSTER_GO);
    /* at (and past) the limit, an idle connection may still be leased */
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 1, &a.w), CLUSTER_GO);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 5, 3, &a.w), CLUSTER_GO);
    assert_false(a.w.queued);
    assert_int_equal(f.cs.n_waiting, 0);
    assert_null(f.cs.wait_head);
    fixture_close(&f);
}

static void test_admit_wait_and_overflow(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 3, POOL_2_3_2);
    test_waiter_t w[5];
    for (int i = 0; i < 5; i++)
        waiter_init(&w[i], i);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &w[0].w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){0}, 1);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &w[1].w), CLUSTER_WAIT);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 3, 0, &w[2].w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){0, 1, 2}, 3);
    /* http1MaxPendingRequests (3) are waiting: overflow, and w[3] is not queued */
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &w[3].w), CLUSTER_OVERFLOW);
    assert_false(w[3].w.queued);
    expect_queue(&f.cs, (int[]){0, 1, 2}, 3);
    /* ... but an idle connection is leased even then */
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 1, &w[3].w), CLUSTER_GO);
    /* one leaves the queue: room for one more */
    cluster_unwait(&f.cs, &w[1].w);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &w[3].w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){0, 2, 3}, 3);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &w[4].w), CLUSTER_OVERFLOW);
    for (int i = 0; i < 4; i++)
        cluster_unwait(&f.cs, &w[i].w);
    expect_queue(&f.cs, NULL, 0);
    fixture_close(&f);
}

static void test_admit_default_max_pending(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 2, "{connectionPool: {tcp: {maxConnections: 1}}}");
    assert_int_equal(f.cl->policy->http1_max_pending_requests, PROXY_UNSET);
    static test_waiter_t w[CLUSTER_DEFAULT_MAX_PENDING + 1];
    for (int i = 0; i <= CLUSTER_DEFAULT_MAX_PENDING; i++)
        waiter_init(&w[i], i);
    for (int i = 0; i < CLUSTER_DEFAULT_MAX_PENDING; i++)
        assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[i].w), CLUSTER_WAIT);
    assert_int_equal(f.cs.n_waiting, 1024);
    assert_ptr_equal(f.cs.wait_head, &w[0].w);
    assert_ptr_equal(f.cs.wait_tail, &w[1023].w);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[1024].w), CLUSTER_OVERFLOW);
    assert_false(w[1024].w.queued);
    assert_int_equal(f.cs.n_waiting, 1024);
    for (int i = 0; i < CLUSTER_DEFAULT_MAX_PENDING; i++)
        cluster_unwait(&f.cs, &w[i].w);
    expect_queue(&f.cs, NULL, 0);
    fixture_close(&f);
}

static void test_admit_without_limit(void **state)
{
    (void)state;
    static const char *const policies[] = {
        NULL,                                                     /* no DestinationRule: cl->policy NULL */
        "{loadBalancer: {simple: RANDOM}}",                       /* a policy without connectionPool */
        "{connectionPool: {http: {http1MaxPendingRequests: 1}}}", /* a pool without maxConnections */
    };
    for (size_t i = 0; i < sizeof policies / sizeof *policies; i++) {
        fixture_t f;
        fixture_open(&f, 2, policies[i]);
        if (policies[i] != NULL)
            assert_int_equal(f.cl->policy->max_connections, PROXY_UNSET);
        test_waiter_t w;
        waiter_init(&w, 0);
        assert_int_equal(cluster_admit(&f.cs, f.cl, 0, 0, &w.w), CLUSTER_GO);
        assert_int_equal(cluster_admit(&f.cs, f.cl, 1000000, 0, &w.w), CLUSTER_GO);
        assert_int_equal(cluster_admit(&f.cs, f.cl, UINT32_MAX, 0, &w.w), CLUSTER_GO);
        assert_false(w.w.queued);
        assert_int_equal(f.cs.n_waiting, 0);
        fixture_close(&f);
    }
}

static void test_leased_released(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 2, POOL_2_3_2);
    woken_reset(&f.cs);
    cluster_leased(&f.cs);
    cluster_leased(&f.cs);
    cluster_leased(&f.cs);
    assert_int_equal(f.cs.leased, 3);
    cluster_released(&f.cs);
    assert_int_equal(f.cs.leased, 2);
    cluster_released(&f.cs);
    cluster_released(&f.cs);
    assert_int_equal(f.cs.leased, 0);
    assert_int_equal(woken.n, 0);
    fixture_close(&f);
}

static void test_released_wakes_fifo(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 2, POOL_2_3_2);
    woken_reset(&f.cs);
    cluster_leased(&f.cs);
    cluster_leased(&f.cs);
    test_waiter_t w[3];
    for (int i = 0; i < 3; i++) {
        waiter_init(&w[i], 10 + i);
        assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &w[i].w), CLUSTER_WAIT);
    }
    cluster_released(&f.cs);
    assert_int_equal(f.cs.leased, 1);
    assert_int_equal(woken.n, 1);
    assert_int_equal(woken.ids[0], 10);
    assert_int_equal(woken.n_waiting[0], 2); /* already out of the queue when woken */
    assert_false(w[0].w.queued);
    expect_queue(&f.cs, (int[]){11, 12}, 2);

    cluster_leased(&f.cs); /* the woken one leased it */
    cluster_released(&f.cs);
    assert_int_equal(woken.n, 2);
    assert_int_equal(woken.ids[1], 11);
    assert_int_equal(woken.n_waiting[1], 1);
    expect_queue(&f.cs, (int[]){12}, 1);

    cluster_leased(&f.cs);
    cluster_released(&f.cs);
    assert_int_equal(woken.n, 3);
    assert_int_equal(woken.ids[2], 12);
    assert_int_equal(woken.n_waiting[2], 0);
    expect_queue(&f.cs, NULL, 0);
    assert_null(f.cs.wait_head);
    assert_null(f.cs.wait_tail);

    /* an empty queue: nobody to wake */
    cluster_released(&f.cs);
    assert_int_equal(f.cs.leased, 0);
    assert_int_equal(woken.n, 3);

    /* the queue works again after it emptied */
    test_waiter_t late;
    waiter_init(&late, 20);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &late.w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){20}, 1);
    cluster_leased(&f.cs);
    cluster_released(&f.cs);
    assert_int_equal(woken.n, 4);
    assert_int_equal(woken.ids[3], 20);
    fixture_close(&f);
}

/* A woken waiter that finds the cluster full again goes back in the queue, at its tail. */
static fixture_t *requeue_fixture;

static void on_wake_requeue(cluster_waiter_t *w)
{
    on_wake(w);
    fixture_t *f = requeue_fixture;
    assert_int_equal(cluster_admit(&f->cs, f->cl, 2, 0, w), CLUSTER_WAIT);
}

static void test_released_wake_requeues(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 2, POOL_2_3_2);
    requeue_fixture = &f;
    woken_reset(&f.cs);
    test_waiter_t w[2];
    for (int i = 0; i < 2; i++) {
        waiter_init(&w[i], i);
        w[i].w.wake = on_wake_requeue;
        assert_int_equal(cluster_admit(&f.cs, f.cl, 2, 0, &w[i].w), CLUSTER_WAIT);
    }
    cluster_leased(&f.cs);
    cluster_released(&f.cs);
    expect_queue(&f.cs, (int[]){1, 0}, 2);
    cluster_leased(&f.cs);
    cluster_released(&f.cs);
    expect_queue(&f.cs, (int[]){0, 1}, 2);
    assert_int_equal(woken.n, 2);
    assert_int_equal(woken.ids[0], 0);
    assert_int_equal(woken.ids[1], 1);
    cluster_unwait(&f.cs, &w[0].w);
    cluster_unwait(&f.cs, &w[1].w);
    fixture_close(&f);
}

static void test_unwait(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 2, "{connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 8}}}");
    woken_reset(&f.cs);
    test_waiter_t w[7];
    for (int i = 0; i < 7; i++)
        waiter_init(&w[i], i);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[i].w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){0, 1, 2, 3, 4}, 5);

    cluster_unwait(&f.cs, &w[2].w); /* middle */
    assert_false(w[2].w.queued);
    assert_null(w[2].w.next);
    expect_queue(&f.cs, (int[]){0, 1, 3, 4}, 4);
    cluster_unwait(&f.cs, &w[0].w); /* head */
    assert_false(w[0].w.queued);
    expect_queue(&f.cs, (int[]){1, 3, 4}, 3);
    cluster_unwait(&f.cs, &w[4].w); /* tail */
    assert_false(w[4].w.queued);
    expect_queue(&f.cs, (int[]){1, 3}, 2);
    assert_ptr_equal(f.cs.wait_tail, &w[3].w);

    /* not queued (never, or not any more): no-op */
    cluster_unwait(&f.cs, &w[4].w);
    cluster_unwait(&f.cs, &w[5].w);
    assert_false(w[5].w.queued);
    expect_queue(&f.cs, (int[]){1, 3}, 2);

    /* a later admit appends after the new tail; wake order is kept */
    assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[5].w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){1, 3, 5}, 3);
    for (int i = 0; i < 3; i++) {
        cluster_leased(&f.cs);
        cluster_released(&f.cs);
    }
    assert_int_equal(woken.n, 3);
    assert_int_equal(woken.ids[0], 1);
    assert_int_equal(woken.ids[1], 3);
    assert_int_equal(woken.ids[2], 5);
    expect_queue(&f.cs, NULL, 0);

    /* the only waiter (head and tail at once) */
    assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[6].w), CLUSTER_WAIT);
    cluster_unwait(&f.cs, &w[6].w);
    expect_queue(&f.cs, NULL, 0);
    assert_null(f.cs.wait_head);
    assert_null(f.cs.wait_tail);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[0].w), CLUSTER_WAIT);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[1].w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){0, 1}, 2);
    cluster_unwait(&f.cs, &w[1].w); /* tail of two: the head becomes the tail */
    assert_ptr_equal(f.cs.wait_tail, &w[0].w);
    assert_int_equal(cluster_admit(&f.cs, f.cl, 1, 0, &w[2].w), CLUSTER_WAIT);
    expect_queue(&f.cs, (int[]){0, 2}, 2);
    cluster_unwait(&f.cs, &w[0].w);
    cluster_unwait(&f.cs, &w[2].w);
    fixture_close(&f);
}

/* ---- retries ---- */

static void test_retry_budget(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 2, POOL_2_3_2);
    assert_true(cluster_retry_take(&f.cs, f.cl));
    assert_true(cluster_retry_take(&f.cs, f.cl));
    assert_int_equal(f.cs.retrying, 2);
    assert_false(cluster_retry_take(&f.cs, f.cl));
    assert_false(cluster_retry_take(&f.cs, f.cl));
    assert_int_equal(f.cs.retrying, 2);
    cluster_retry_give(&f.cs);
    assert_int_equal(f.cs.retrying, 1);
    assert_true(cluster_retry_take(&f.cs, f.cl));
    assert_false(cluster_retry_take(&f.cs, f.cl));
    cluster_retry_give(&f.cs);
    cluster_retry_give(&f.cs);
    assert_int_equal(f.cs.retrying, 0);
    fixture_close(&f);

    fixture_open(&f, 2, "{connectionPool: {http: {maxRetries: 0}}}");
    assert_false(cluster_retry_take(&f.cs, f.cl));
    assert_int_equal(f.cs.retrying, 0);
    fixture_close(&f);
}

static void test_retry_unlimited(void **state)
{
    (void)state;
    static const char *const policies[] = {NULL, "{connectionPool: {tcp: {maxConnections: 1}}}"};
    for (size_t i = 0; i < 2; i++) {
        fixture_t f;
        fixture_open(&f, 2, policies[i]);
        for (int n = 0; n < 5000; n++)
            assert_true(cluster_retry_take(&f.cs, f.cl));
        assert_int_equal(f.cs.retrying, 5000);
        cluster_retry_give(&f.cs);
        assert_int_equal(f.cs.retrying, 4999);
        fixture_close(&f);
    }
}

/* ---- outlier detection ---- */

static void results(fixture_t *f, int ep, int status, int times, uint64_t now_ms)
{
    for (int i = 0; i < times; i++)
        cluster_result(&f->cs, f->rt, f->cl, ep, status, now_ms);
}

/* The mask of a pick at now_ms after tried (clusters of up to 64 endpoints); *ok: the return value. */
static uint64_t pick_mask(fixture_t *f, uint64_t now_ms, uint64_t tried, bool *ok)
{
    uint64_t mask = ~0ull;
    *ok = cluster_pick_mask(&f->cs, f->rt, f->cl, now_ms, &tried, &mask);
    return mask;
}

static void expect_mask(fixture_t *f, uint64_t now_ms, uint64_t tried, uint64_t want)
{
    bool ok = false;
    uint64_t got = pick_mask(f, now_ms, tried, &ok);
    assert_true(ok);
    assert_int_equal(got, want);
}

static void test_outlier_5xx_default(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4, "{outlierDetection: {baseEjectionTime: 10s}}");
    assert_int_equal(f.cl->policy->consecutive_5xx_errors, PROXY_UNSET);
    results(&f, 1, 500, 4, 1000);
    assert_int_equal(f.cs.health[1].consecutive_5xx, 4);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 0);
    assert_int_equal(ejected_now(&f), 0);
    expect_mask(&f, 1000, 0, 0);

    results(&f, 1, 503, 1, 2000); /* the fifth */
    assert_int_equal(f.cs.health[1].ejected_until_ms, 12000);
    assert_int_equal(f.cs.health[1].times_ejected, 1);
    assert_int_equal(f.cs.health[1].consecutive_5xx, 0);
    assert_int_equal(f.cs.health[1].consecutive_gateway, 0);
    assert_int_equal(f.cs.n_ejected, 1);
    assert_int_equal(ejected_now(&f), 1);
    assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 1);
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 0);
    expect_mask(&f, 2000, 0, 0x2);
    expect_mask(&f, 2000, 0x8, 0xa);
    /* more errors on an ejected endpoint do not eject it again */
    results(&f, 1, 500, 5, 2500);
    assert_int_equal(f.cs.health[1].times_ejected, 1);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 12000);
    assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 1);
    assert_int_equal(ejected_now(&f), 1);
    /* no endpoint: ignored */
    cluster_result(&f.cs, f.rt, f.cl, -1, 500, 2500);
    assert_int_equal(f.cs.n_ejected, 1);
    fixture_close(&f);
}

static void test_outlier_success_resets(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 3}}");
    results(&f, 0, 502, 2, 100);
    results(&f, 0, 200, 1, 100);
    assert_int_equal(f.cs.health[0].consecutive_5xx, 0);
    assert_int_equal(f.cs.health[0].consecutive_gateway, 0);
    results(&f, 0, 500, 2, 100);
    results(&f, 0, 404, 1, 100); /* any answer below 500 ends the run */
    assert_int_equal(f.cs.health[0].consecutive_5xx, 0);
    results(&f, 0, 500, 2, 100);
    assert_int_equal(f.cs.health[0].consecutive_5xx, 2);
    assert_int_equal(f.cs.n_ejected, 0);
    /* errors on another endpoint do not add up with this one's */
    results(&f, 1, 500, 2, 100);
    assert_int_equal(f.cs.n_ejected, 0);
    results(&f, 0, 599, 1, 100);
    assert_int_equal(f.cs.n_ejected, 1);
    assert_int_equal(f.cs.health[0].ejected_until_ms, 100 + 30000); /* baseEjectionTime default 30 s */
    assert_int_equal(f.cs.health[1].ejected_until_ms, 0);
    assert_int_equal(f.cs.health[1].consecutive_5xx, 2);
    assert_int_equal(ejected_now(&f), 1);
    assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 1);
    fixture_close(&f);
}

static void test_outlier_gateway_errors(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4,
                 "{outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, baseEjectionTime: 1s}}");
    /* 5xx detection off: 500s eject nothing and do not count as gateway errors */
    results(&f, 2, 500, 10, 0);
    assert_int_equal(f.cs.health[2].consecutive_5xx, 10);
    assert_int_equal(f.cs.health[2].consecutive_gateway, 0);
    assert_int_equal(f.cs.n_ejected, 0);
    results(&f, 2, 502, 1, 0);
    results(&f, 2, 503, 1, 0);
    assert_int_equal(f.cs.health[2].consecutive_gateway, 2);
    results(&f, 2, 500, 1, 0); /* a 5xx that is not a gateway error ends the gateway run */
    assert_int_equal(f.cs.health[2].consecutive_gateway, 0);
    results(&f, 2, 501, 1, 0);
    results(&f, 2, 505, 1, 0);
    assert_int_equal(f.cs.health[2].consecutive_gateway, 0);
    results(&f, 2, 504, 1, 0);
    results(&f, 2, 0, 1, 0); /* connection failure */
    assert_int_equal(f.cs.health[2].consecutive_gateway, 2);
    assert_int_equal(f.cs.n_ejected, 0);
    results(&f, 2, 502, 1, 5);
    assert_int_equal(f.cs.n_ejected, 1);
    assert_int_equal(f.cs.health[2].ejected_until_ms, 1005);
    assert_int_equal(f.cs.health[2].consecutive_gateway, 0);
    assert_int_equal(ejected_now(&f), 1);
    assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 1);
    expect_mask(&f, 5, 0, 0x4);
    fixture_close(&f);
}

static void test_outlier_connection_failures(void **state)
{
    (void)state;
    fixture_t f;
    /* both detectors on: a connection failure counts for each */
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 5}}");
    results(&f, 3, 0, 2, 0);
    assert_int_equal(f.cs.health[3].consecutive_5xx, 2);
    assert_int_equal(f.cs.health[3].consecutive_gateway, 2);
    results(&f, 3, 0, 1, 0);
    assert_int_equal(f.cs.health[3].times_ejected, 1);
    assert_int_equal(f.cs.n_ejected, 1);
    fixture_close(&f);

    /* 5xx detection alone (default 5) ejects on connection failures */
    fixture_open(&f, 4, "{outlierDetection: {baseEjectionTime: 2s}}");
    results(&f, 0, 0, 4, 0);
    assert_int_equal(f.cs.n_ejected, 0);
    results(&f, 0, 0, 1, 0);
    assert_int_equal(f.cs.n_ejected, 1);
    assert_int_equal(f.cs.health[0].ejected_until_ms, 2000);
    fixture_close(&f);

    /* gateway detection alone ejects on connection failures */
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 2}}");
    results(&f, 1, 0, 2, 0);
    assert_int_equal(f.cs.n_ejected, 1);
    assert_int_equal(f.cs.health[1].times_ejected, 1);
    fixture_close(&f);
}

static void test_outlier_ejection_time(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4,
                 "{outlierDetection: {consecutive5xxErrors: 1, baseEjectionTime: 10s, maxEjectionPercent: 100}}");
    assert_int_equal(f.cl->policy->base_ejection_time_ms, 10000);
    results(&f, 1, 500, 1, 1000);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 11000);
    expect_mask(&f, 10999, 0, 0x2);
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 0);
    assert_int_equal(ejected_now(&f), 1);
    expect_mask(&f, 11000, 0, 0x0); /* back at expiry */
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 1);
    assert_int_equal(ejected_now(&f), 0);
    assert_int_equal(f.cs.n_ejected, 0);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 0);
    assert_int_equal(f.cs.health[1].times_ejected, 1);
    expect_mask(&f, 11001, 0, 0x0);
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 1); /* counted once */

    /* the second ejection lasts twice as long */
    results(&f, 1, 503, 1, 20000);
    assert_int_equal(f.cs.health[1].times_ejected, 2);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 40000);
    assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 2);
    expect_mask(&f, 39999, 0, 0x2);
    expect_mask(&f, 45000, 0, 0x0); /* after expiry */
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 2);
    assert_int_equal(ejected_now(&f), 0);

    /* the third three times; another endpoint starts from one */
    results(&f, 1, 0, 1, 50000);
    results(&f, 2, 0, 1, 50000);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 80000);
    assert_int_equal(f.cs.health[2].ejected_until_ms, 60000);
    assert_int_equal(ejected_now(&f), 2);
    expect_mask(&f, 60000, 0, 0x2); /* 2 returns, 1 stays */
    assert_int_equal(ejected_now(&f), 1);
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 3);
    expect_mask(&f, 80000, 0, 0x0);
    assert_int_equal(ejected_now(&f), 0);
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 4);
    assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 4);
    fixture_close(&f);
}

static void test_outlier_max_ejection_percent(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 1s, maxEjectionPercent: 25}}");
    results(&f, 0, 500, 2, 0);
    assert_int_equal(f.cs.n_ejected, 1);
    results(&f, 1, 500, 2, 0); /* two of four would be 50% */
    assert_int_equal(f.cs.n_ejected, 1);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 0);
    assert_int_equal(f.cs.health[1].times_ejected, 0);
    assert_int_equal(f.cs.health[1].consecutive_5xx, 2); /* the run goes on */
    assert_int_equal(ejected_now(&f), 1);
    assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 1);
    expect_mask(&f, 0, 0, 0x1);
    /* once endpoint 0 is back, endpoint 1's next error ejects it */
    expect_mask(&f, 1000, 0, 0x0);
    results(&f, 1, 500, 1, 1000);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 2000);
    assert_int_equal(ejected_now(&f), 1);
    expect_mask(&f, 1000, 0, 0x2);
    fixture_close(&f);

    /* an ejection whose time is over does not count, even before a pick has returned the endpoint */
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 1s, maxEjectionPercent: 25}}");
    results(&f, 0, 500, 2, 0);    /* endpoint 0 out until 1000 */
    results(&f, 1, 500, 2, 5000); /* no pick since: endpoint 0's time is over, so endpoint 1 may go */
    assert_int_equal(f.cs.n_ejected, 1);
    assert_int_equal(f.cs.health[0].ejected_until_ms, 0);
    assert_int_equal(f.cs.health[1].ejected_until_ms, 6000);
    assert_int_equal(ejected_now(&f), 1);
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 1);
    /* and an endpoint whose own ejection is over is ejected again, for twice the time */
    results(&f, 0, 500, 2, 5000);
    assert_int_equal(f.cs.health[0].ejected_until_ms, 0); /* 25%: endpoint 1 is out now */
    results(&f, 1, 500, 2, 7000);                         /* endpoint 1 back (6000) and out again */
    assert_int_equal(f.cs.health[1].ejected_until_ms, 9000);
    assert_int_equal(f.cs.health[1].times_ejected, 2);
    fixture_close(&f);

    /* 4 endpoints, 50%: two out, not three */
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 50}}");
    results(&f, 0, 500, 1, 0);
    results(&f, 1, 500, 1, 0);
    results(&f, 2, 500, 1, 0);
    assert_int_equal(f.cs.n_ejected, 2);
    assert_int_equal(ejected_now(&f), 2);
    expect_mask(&f, 0, 0, 0x3);
    fixture_close(&f);

    /* the first ejection happens whatever the percentage (default 10% of 4 endpoints is less than one) */
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 1}}");
    results(&f, 3, 500, 1, 0);
    results(&f, 2, 500, 1, 0);
    assert_int_equal(f.cs.n_ejected, 1);
    expect_mask(&f, 0, 0, 0x8);
    fixture_close(&f);
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 0}}");
    results(&f, 3, 500, 1, 0);
    assert_int_equal(f.cs.n_ejected, 1);
    results(&f, 2, 500, 1, 0);
    assert_int_equal(f.cs.n_ejected, 1);
    fixture_close(&f);
}

static void test_outlier_min_health_percent(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 50}}");
    results(&f, 0, 500, 1, 0);
    expect_mask(&f, 0, 0, 0x1); /* 75% healthy */
    results(&f, 1, 500, 1, 0);
    expect_mask(&f, 0, 0, 0x3); /* 50%: not below */
    results(&f, 2, 500, 1, 0);
    assert_int_equal(ejected_now(&f), 3);
    expect_mask(&f, 0, 0, 0x0); /* 25%: ejections ignored, only the tried ones avoided */
    expect_mask(&f, 0, 0x9, 0x9);
    results(&f, 3, 500, 1, 0);
    expect_mask(&f, 0, 0, 0x0); /* all ejected: still picks */
    assert_int_equal(ejected_now(&f), 4);
    assert_int_equal(f.cs.n_ejected, 4);
    fixture_close(&f);
}

static void test_outlier_all_ejected(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 2, "{outlierDetection: {consecutive5xxErrors: 1, baseEjectionTime: 1s, maxEjectionPercent: 100}}");
    results(&f, 0, 500, 1, 0);
    results(&f, 1, 502, 1, 500);
    assert_int_equal(ejected_now(&f), 2);
    bool ok = true;
    pick_mask(&f, 999, 0, &ok);
    assert_false(ok);
    /* endpoint 0 is back at 1000 */
    expect_mask(&f, 1000, 0, 0x2);
    assert_int_equal(ejected_now(&f), 1);
    expect_mask(&f, 1500, 0, 0x0);
    assert_int_equal(ejected_now(&f), 0);
    fixture_close(&f);
}

static void test_outlier_all_tried(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}}");
    results(&f, 0, 500, 1, 0);
    expect_mask(&f, 0, 0x6, 0x7); /* endpoint 3 is left */
    expect_mask(&f, 0, 0xe, 0x1); /* every healthy one tried: they may be tried again, not 0 */
    expect_mask(&f, 0, 0xf, 0x1);
    results(&f, 2, 500, 1, 0);
    expect_mask(&f, 0, 0xa, 0x5);
    expect_mask(&f, 0, 0x2, 0x7);
    fixture_close(&f);
}

static void test_outlier_mask_words(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 70, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}}");
    results(&f, 65, 500, 1, 0);
    results(&f, 3, 500, 1, 0);
    uint64_t tried[2] = {0x1, 0x10}, mask[2] = {0, 0};
    assert_true(cluster_pick_mask(&f.cs, f.rt, f.cl, 0, tried, mask));
    assert_int_equal(mask[0], 0x9);
    assert_int_equal(mask[1], 0x12);
    /* every healthy one tried: the ejected stay masked, in both words */
    tried[0] = ~0ull;
    tried[1] = 0x3f;
    assert_true(cluster_pick_mask(&f.cs, f.rt, f.cl, 0, tried, mask));
    assert_int_equal(mask[0], 0x8);
    assert_int_equal(mask[1], 0x2);
    fixture_close(&f);
}

static void test_outlier_disabled(void **state)
{
    (void)state;
    static const char *const policies[] = {NULL, POOL_2_3_2};
    for (size_t i = 0; i < 2; i++) {
        fixture_t f;
        fixture_open(&f, 4, policies[i]);
        assert_null(f.cs.health);
        results(&f, 0, 500, 50, 0);
        results(&f, 1, 0, 50, 0);
        assert_int_equal(f.cs.n_ejected, 0);
        assert_int_equal(ejected_now(&f), 0);
        assert_int_equal(counter(&f, RC_OUTLIER_EJECTION), 0);
        expect_mask(&f, 0, 0xa, 0xa);
        expect_mask(&f, 0, 0xf, 0xf);
        expect_mask(&f, 0, 0, 0);
        fixture_close(&f);
    }
}

static void test_state_dispose(void **state)
{
    (void)state;
    fixture_t f;
    fixture_open(&f, 4, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}}");
    /* a second worker's state for the same cluster */
    cluster_state_t other;
    cluster_state_init(&other, f.cl);
    results(&f, 0, 500, 1, 0);
    results(&f, 1, 500, 1, 0);
    cluster_result(&other, f.rt, f.cl, 2, 500, 0);
    assert_int_equal(ejected_now(&f), 3);
    cluster_state_dispose(&other, f.rt, f.cl);
    assert_int_equal(ejected_now(&f), 2);
    assert_null(other.health);
    assert_int_equal(other.n_ejected, 0);
    assert_int_equal(counter(&f, RC_OUTLIER_RETURN), 0); /* leaving is not returning */
    cluster_state_dispose(&f.cs, f.rt, f.cl);
    assert_int_equal(ejected_now(&f), 0);
    assert_null(f.cs.health);
    assert_int_equal(f.cs.n_ejected, 0);
    runtime_unref(f.rt);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_init),
        cmocka_unit_test(test_admit_go),
        cmocka_unit_test(test_admit_wait_and_overflow),
        cmocka_unit_test(test_admit_default_max_pending),
        cmocka_unit_test(test_admit_without_limit),
        cmocka_unit_test(test_leased_released),
        cmocka_unit_test(test_released_wakes_fifo),
        cmocka_unit_test(test_released_wake_requeues),
        cmocka_unit_test(test_unwait),
        cmocka_unit_test(test_retry_budget),
        cmocka_unit_test(test_retry_unlimited),
        cmocka_unit_test(test_outlier_5xx_default),
        cmocka_unit_test(test_outlier_success_resets),
        cmocka_unit_test(test_outlier_gateway_errors),
        cmocka_unit_test(test_outlier_connection_failures),
        cmocka_unit_test(test_outlier_ejection_time),
        cmocka_unit_test(test_outlier_max_ejection_percent),
        cmocka_unit_test(test_outlier_min_health_percent),
        cmocka_unit_test(test_outlier_all_ejected),
        cmocka_unit_test(test_outlier_all_tried),
        cmocka_unit_test(test_outlier_mask_words),
        cmocka_unit_test(test_outlier_disabled),
        cmocka_unit_test(test_state_dispose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
