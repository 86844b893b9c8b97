/* Unit tests for ctl/ca_server's Authorization header splitter, ca_server_bearer_token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ca_server.h"

/* h gives the token want. */
static void token_ok(const char *h, const char *want)
{
    const char *token = NULL;
    size_t len = 0;
    if (!ca_server_bearer_token(h, &token, &len))
        fail_msg("\"%s\" refused", h);
    if (len != strlen(want) || memcmp(token, want, len) != 0)
        fail_msg("\"%s\": token \"%.*s\", want \"%s\"", h, (int)len, token, want);
    assert_true(token >= h && token + len <= h + strlen(h)); /* a slice of h */
}

static void token_bad(const char *h)
{
    const char *token = NULL;
    size_t len = 0;
    if (ca_server_bearer_token(h, &token, &len))
        fail_msg("\"%s\" accepted as \"%.*s\"", h, (int)len, token);
    assert_null(token);
    assert_int_equal(len, 0);
}

static void test_bearer_token(void **state)
{
    (void)state;
    token_ok("Bearer abc", "abc");
    token_ok("bearer  abc", "abc"); /* the scheme in any case, and more than one blank */
    token_ok("BEARER\tabc \t", "abc");
    token_ok("Bearer a b", "a b"); /* blanks inside are the token's: the lookup refuses it */
    token_ok("Bearer abc=", "abc=");
    token_bad("Basic x");
    token_bad("Bearer");
    token_bad("Bearer ");
    token_bad("Bearer \t ");
    token_bad("Bearerabc");
    token_bad(" Bearer abc");
    token_bad("Bear");
    token_bad("");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
