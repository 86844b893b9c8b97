/*
 * Unit tests for proxy/rlglobal against a real redis-server started on a
 * free loopback port (missing redis-server fails the tests): fixed window
 * counting, two clients sharing a limit, the sliding window's carry-over,
 * a Redis that stops answering (timeouts), dies and comes back (errors,
 * back-off, reconnect), cancel, and destroy with calls pending (ASan checks
 * for leaks). Assertions are on verdicts only, with generous timing margins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/rlglobal.h"
#include "redis_harness.h"

static char redis_text[64];

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return 0;
    close(fd);
    return ntohs(a.sin_port);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    redis_port = free_port();
    snprintf(redis_text, sizeof(redis_text), "127.0.0.1:%u", (unsigned)redis_port);
    return redis_start();
}

static int group_teardown(void **state)
{
    (void)state;
    redis_kill();
    return 0;
}

/* ---- helpers ---- */

typedef struct result {
    int called;
    enum rlg_verdict v;
    uint64_t remaining, reset_s;
} result_t;

static void on_done(void *ctx, enum rlg_verdict v, uint64_t remaining, uint64_t reset_s)
{
    result_t *r = ctx;
    r->called++;
    r->v = v;
    r->remaining = remaining;
    r->reset_s = reset_s;
}

static proxy_rl_global_t global(enum proxy_rl_algorithm alg, uint64_t timeout_ms)
{
    proxy_rl_global_t gl;
    memset(&gl, 0, sizeof(gl));
    gl.given = 1;
    gl.redis.text = redis_text;
    gl.redis.host = "127.0.0.1";
    gl.redis.port = redis_port;
    gl.timeout_ms = timeout_ms;
    gl.algorithm = alg;
    return gl;
}

/* Run the loop until every result in r[0..n) is called, or 5 s passed. */
static void wait_all(uv_loop_t *loop, result_t *r, size_t n)
{
    uint64_t deadline = wall_ms() + 5000;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += r[i].called != 0;
        if (done == n || wall_ms() > deadline)
            break;
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(1);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r[i].called, 1);
}

/* Run the loop for about ms milliseconds. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uint64_t end = wall_ms() + ms;
    while (wall_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(1);
    }
}

/* One check of one limit, run to its verdict. */
static enum rlg_verdict check1(uv_loop_t *loop, rlg_t *g, const proxy_rl_global_t *gl, const char *key, uint64_t per,
                               uint64_t window_ms)
{
    result_t r = {0};
    rlg_check(g, gl, &key, &per, &window_ms, 1, on_done, &r);
    wait_all(loop, &r, 1);
    return r.v;
}

static void unique_key(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "outrider:rl:test:%s:%ld:%" PRIu64, name, (long)getpid(), wall_ms());
}

static void finish(uv_loop_t *loop, rlg_t *g)
{
    rlg_destroy(g);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/*
 * Sleep until `margin` ms past the start of a window of window_ms, when less is left of the current one.
 * The loop's clock is brought up to date after the sleep: timers armed next (a connect's timeout) would
 * otherwise count from before it and fire at once.
 */
static void avoid_window_end(uv_loop_t *loop, uint64_t window_ms, uint64_t margin_ms, uint64_t need_ms)
{
    uint64_t into = wall_ms() % window_ms;
    if (window_ms - into < need_ms) {
        sleep_ms(window_ms - into + margin_ms);
        uv_update_time(loop);
    }
}

/* The reply timeout of the tests that do not test it: long, so that a loaded machine (the sanitizer build beside
 * others) cannot fail them; the timeout tests use 100-200 ms against a Redis that does not answer. */
#define SLOW_OK_MS 10000

/* ---- tests ---- */

static void test_fixed_window(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    rlg_t *g = rlg_create(&loop);
    proxy_rl_global_t gl = global(PROXY_RL_FIXED_WINDOW, SLOW_OK_MS);
    char key[128];
    unique_key(key, sizeof(key), "fixed");
    avoid_window_end(&loop, 60000, 50, 3000);
    for (int i = 0; i < 10; i++) {
        result_t r = {0};
        const char *k = key;
        uint64_t per = 5, win = 60000;
        rlg_check(g, &gl, &k, &per, &win, 1, on_done, &r);
        wait_all(&loop, &r, 1);
        assert_int_equal(r.v, i < 5 ? RLG_ALLOW : RLG_DENY);
        assert_int_equal(r.remaining, i < 5 ? (uint64_t)(4 - i) : 0);
        assert_true(r.reset_s >= 1 && r.reset_s <= 60);
    }

    /* two limits: the tighter decides */
    char k2a[160], k2b[160];
    snprintf(k2a, sizeof(k2a), "%s:a", key);
    snprintf(k2b, sizeof(k2b), "%s:b", key);
    const char *keys[2] = {k2a, k2b};
    uint64_t per[2] = {100, 2}, win[2] = {60000, 60000};
    for (int i = 0; i < 3; i++) {
        result_t r = {0};
        rlg_check(g, &gl, keys, per, win, 2, on_done, &r);
        wait_all(&loop, &r, 1);
        assert_int_equal(r.v, i < 2 ? RLG_ALLOW : RLG_DENY);
    }

    /* bad arguments answer at once */
    result_t r = {0};
    assert_null(rlg_check(g, &gl, keys, per, win, 0, on_done, &r));
    assert_int_equal(r.called, 1);
    assert_int_equal(r.v, RLG_ERROR);
    finish(&loop, g);
}

static void test_two_workers(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    rlg_t *g1 = rlg_create(&loop), *g2 = rlg_create(&loop);
    proxy_rl_global_t gl = global(PROXY_RL_FIXED_WINDOW, SLOW_OK_MS);
    char key[128];
    unique_key(key, sizeof(key), "shared");
    avoid_window_end(&loop, 60000, 50, 3000);
    result_t r[20];
    memset(r, 0, sizeof(r));
    const char *k = key;
    uint64_t per = 7, win = 60000;
    for (int i = 0; i < 20; i++)
        rlg_check(i % 2 ? g2 : g1, &gl, &k, &per, &win, 1, on_done, &r[i]);
    wait_all(&loop, r, 20);
    int allowed = 0;
    for (int i = 0; i < 20; i++) {
        assert_int_not_equal(r[i].v, RLG_ERROR);
        allowed += r[i].v == RLG_ALLOW;
    }
    assert_int_equal(allowed, 7);
    rlg_destroy(g2);
    finish(&loop, g1);
}

static void test_sliding_window(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    rlg_t *g = rlg_create(&loop);
    /* 3 s windows: the checks of one phase fit in one window even on a loaded machine */
    const uint64_t w = 3000;
    proxy_rl_global_t gl = global(PROXY_RL_SLIDING_WINDOW, SLOW_OK_MS);
    char key[128];
    unique_key(key, sizeof(key), "sliding");

    /* connect first, then start 20 ms into a window */
    assert_int_equal(check1(&loop, g, &gl, "outrider:rl:test:warmup", 1000, w), RLG_ALLOW);
    sleep_ms(w - wall_ms() % w + 20);
    for (int i = 0; i < 11; i++)
        assert_int_equal(check1(&loop, g, &gl, key, 10, w), i < 10 ? RLG_ALLOW : RLG_DENY);

    /* ~300 ms into the next window, 11 * ~0.9 of the previous still counts: far fewer than 10 pass */
    sleep_ms(w - wall_ms() % w + 300);
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += check1(&loop, g, &gl, key, 10, w) == RLG_ALLOW;
    assert_true(allowed <= 6);

    /* two windows later nothing carries over */
    sleep_ms(2 * w - wall_ms() % w + 20);
    for (int i = 0; i < 10; i++)
        assert_int_equal(check1(&loop, g, &gl, key, 10, w), RLG_ALLOW);
    finish(&loop, g);
}

static void test_redis_down_and_back(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    rlg_t *g = rlg_create(&loop);
    proxy_rl_global_t gl = global(PROXY_RL_FIXED_WINDOW, 200);
    char key[128];
    unique_key(key, sizeof(key), "down");
    assert_int_equal(check1(&loop, g, &gl, key, 1000, 60000), RLG_ALLOW);

    /* a Redis that stops answering: the timeout fires; the late reply is ignored */
    kill(redis_pid, SIGSTOP);
    result_t r[3];
    memset(r, 0, sizeof(r));
    const char *k = key;
    uint64_t per = 1000, win = 60000;
    for (int i = 0; i < 3; i++)
        rlg_check(g, &gl, &k, &per, &win, 1, on_done, &r[i]);
    wait_all(&loop, r, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].v, RLG_ERROR);
    kill(redis_pid, SIGCONT);
    run_for(&loop, 100);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].called, 1);
    assert_int_equal(check1(&loop, g, &gl, key, 1000, 60000), RLG_ALLOW);

    /* Redis dies with calls in flight */
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++)
        rlg_check(g, &gl, &k, &per, &win, 1, on_done, &r[i]);
    redis_kill();
    wait_all(&loop, r, 3);
    for (int i = 0; i < 3; i++)
        assert_true(r[i].v == RLG_ERROR || r[i].v == RLG_ALLOW); /* some may have been answered before */

    /* while it is down: errors, never a hang */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(check1(&loop, g, &gl, key, 1000, 60000), RLG_ERROR);
        run_for(&loop, 30);
    }

    /* back on the same port: after the back-off, verdicts again */
    assert_int_equal(redis_start(), 0);
    enum rlg_verdict v = RLG_ERROR;
    uint64_t deadline = wall_ms() + 5000;
    while (v == RLG_ERROR && wall_ms() < deadline) {
        v = check1(&loop, g, &gl, key, 1000, 60000);
        if (v == RLG_ERROR)
            run_for(&loop, 50);
    }
    assert_int_equal(v, RLG_ALLOW);
    char key2[160];
    snprintf(key2, sizeof(key2), "%s:after", key);
    avoid_window_end(&loop, 60000, 50, 3000);
    assert_int_equal(check1(&loop, g, &gl, key2, 1, 60000), RLG_ALLOW);
    assert_int_equal(check1(&loop, g, &gl, key2, 1, 60000), RLG_DENY);
    finish(&loop, g);
}

static void test_unreachable(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    rlg_t *g = rlg_create(&loop);
    proxy_rl_global_t gl = global(PROXY_RL_FIXED_WINDOW, 100);
    gl.redis.port = free_port();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(check1(&loop, g, &gl, "outrider:rl:test:nowhere", 10, 1000), RLG_ERROR);
        run_for(&loop, 20);
    }
    finish(&loop, g);
}

static void test_cancel(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    rlg_t *g = rlg_create(&loop);
    proxy_rl_global_t gl = global(PROXY_RL_FIXED_WINDOW, 100);
    char key[128];
    unique_key(key, sizeof(key), "cancel");
    const char *k = key;
    uint64_t per = 10, win = 60000;
    result_t r = {0};
    rlg_call_t *c = rlg_check(g, &gl, &k, &per, &win, 1, on_done, &r);
    assert_non_null(c);
    rlg_cancel(c);
    run_for(&loop, 250); /* past the reply and the timeout */
    assert_int_equal(r.called, 0);
    assert_int_equal(check1(&loop, g, &gl, key, 10, 60000), RLG_ALLOW);
    finish(&loop, g);
}

static void test_destroy_pending(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    rlg_t *g = rlg_create(&loop);
    proxy_rl_global_t gl = global(PROXY_RL_SLIDING_WINDOW, SLOW_OK_MS);
    char key[128];
    unique_key(key, sizeof(key), "destroy");
    assert_int_equal(check1(&loop, g, &gl, key, 100, 1000), RLG_ALLOW);
    const char *keys[2] = {key, "outrider:rl:test:other"};
    uint64_t per[2] = {100, 100}, win[2] = {1000, 60000};
    result_t r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++)
        assert_non_null(rlg_check(g, &gl, keys, per, win, 2, on_done, &r[i]));
    rlg_destroy(g);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].called, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_window),        cmocka_unit_test(test_two_workers),
        cmocka_unit_test(test_sliding_window),      cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_destroy_pending),     cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_redis_down_and_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
