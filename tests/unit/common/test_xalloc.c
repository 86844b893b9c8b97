/* Unit tests for common/xalloc: allocations that cannot fail, and the abort with a message when they would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xalloc.h"

/* Under ASan, let impossible sizes fail as malloc would instead of stopping in the sanitizer. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static void test_allocations(void **state)
{
    (void)state;
    char *p = xmalloc(16);
    memset(p, 'a', 16);
    uint32_t *z = xcalloc(8, sizeof(uint32_t));
    for (int i = 0; i < 8; i++)
        assert_int_equal(z[i], 0);
    p = xrealloc(p, 1 << 20);
    for (int i = 0; i < 16; i++)
        assert_int_equal(p[i], 'a'); /* content kept */
    char *s = xstrdup("outrider");
    assert_string_equal(s, "outrider");
    char *e = xstrdup("");
    assert_string_equal(e, "");
    assert_ptr_not_equal(e, s);
    free(p);
    free(z);
    free(s);
    free(e);

    /* size 0 still gives distinct pointers the caller can free */
    void *a = xmalloc(0), *b = xmalloc(0), *c = xcalloc(0, 8), *d = xcalloc(8, 0), *r = xrealloc(NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    assert_non_null(r);
    assert_ptr_not_equal(a, b);
    r = xrealloc(r, 0);
    assert_non_null(r);
    free(a);
    free(b);
    free(c);
    free(d);
    free(r);
}

enum { DO_MALLOC, DO_CALLOC, DO_CALLOC_OVERFLOW, DO_REALLOC };

/* Run one impossible allocation in a child; returns what it wrote to stderr and asserts it aborted. */
static void expect_abort(int what, const char *want)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        volatile size_t huge = SIZE_MAX - 4096;
        void *p = NULL;
        switch (what) {
        case DO_MALLOC: p = xmalloc(huge); break;
        case DO_CALLOC: p = xcalloc(1, huge); break;
        case DO_CALLOC_OVERFLOW: p = xcalloc(huge, 16); break;
        case DO_REALLOC: p = xrealloc(NULL, huge); break;
        }
        _exit(p == NULL ? 3 : 4); /* not reached when xalloc works */
    }
    close(fds[1]);
    char out[512];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(out) - 1 && (r = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fail_msg("child did not abort (status %d), stderr: %s", status, out);
    if (strstr(out, want) == NULL)
        fail_msg("stderr lacks \"%s\": %s", want, out);
}

static void test_out_of_memory_aborts(void **state)
{
    (void)state;
    char want[128];
    snprintf(want, sizeof(want), "out of memory allocating %zu bytes", (size_t)SIZE_MAX - 4096);
    expect_abort(DO_MALLOC, want);
    snprintf(want, sizeof(want), "out of memory allocating 1 x %zu bytes", (size_t)SIZE_MAX - 4096);
    expect_abort(DO_CALLOC, want);
    snprintf(want, sizeof(want), "out of memory allocating %zu x 16 bytes", (size_t)SIZE_MAX - 4096);
    expect_abort(DO_CALLOC_OVERFLOW, want);
    snprintf(want, sizeof(want), "out of memory reallocating to %zu bytes", (size_t)SIZE_MAX - 4096);
    expect_abort(DO_REALLOC, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocations),
        cmocka_unit_test(test_out_of_memory_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
