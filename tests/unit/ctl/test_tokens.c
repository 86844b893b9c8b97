/* Unit tests for ctl/tokens: the ca serve tokens file, its errors (which must never show a token) and lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokens.h"

#define TOK_A "0123456789abcdef0123456789abcdef"
#define TOK_B "s3cr3t-T0ken_with.punct/+=~!"

typedef struct errors {
    char text[8192];
    int n;
} errors_t;

static void collect(void *ctx, const char *message)
{
    errors_t *e = ctx;
    size_t used = strlen(e->text);
    snprintf(e->text + used, sizeof(e->text) - used, "%s\n", message);
    e->n++;
}

static tokens_t *parse(const char *text, errors_t *e)
{
    memset(e, 0, sizeof(*e));
    return tokens_parse("tokens.txt", text, strlen(text), collect, e);
}

static void lookup_is(const tokens_t *t, const char *token, const char *ns, const char *sa)
{
    char got_ns[IDENT_LABEL_MAX + 1] = "", got_sa[IDENT_LABEL_MAX + 1] = "";
    if (tokens_lookup(t, token, strlen(token), got_ns, got_sa) != 0)
        fail_msg("token for %s/%s not found", ns, sa);
    assert_string_equal(got_ns, ns);
    assert_string_equal(got_sa, sa);
}

static void test_parse_and_lookup(void **state)
{
    (void)state;
    errors_t e;
    tokens_t *t = parse("# outrider tokens\n"
                        "\n"
                        "   # indented comment\n" TOK_A " shop web\n"
                        "\t" TOK_B "\tshop\t  api   # the API's sidecar\r\n"
                        "ffffffffffffffffffffffffffffffff payments default", /* no final newline */
                        &e);
    if (t == NULL)
        fail_msg("refused: %s", e.text);
    assert_int_equal(e.n, 0);
    assert_int_equal(tokens_count(t), 3);
    lookup_is(t, TOK_A, "shop", "web");
    lookup_is(t, TOK_B, "shop", "api");
    lookup_is(t, "ffffffffffffffffffffffffffffffff", "payments", "default");
    char ns[IDENT_LABEL_MAX + 1] = "x", sa[IDENT_LABEL_MAX + 1] = "y";
    assert_int_equal(tokens_lookup(t, TOK_A, strlen(TOK_A) - 1, ns, sa), -1); /* a prefix is not the token */
    assert_int_equal(tokens_lookup(t, "", 0, ns, sa), -1);
    assert_int_equal(tokens_lookup(t, TOK_A "0", strlen(TOK_A) + 1, ns, sa), -1);
    assert_string_equal(ns, "x");
    assert_string_equal(sa, "y");
    tokens_destroy(t);
    tokens_destroy(NULL);
    assert_int_equal(tokens_lookup(NULL, TOK_A, strlen(TOK_A), ns, sa), -1);

    t = parse("", &e);
    assert_non_null(t);
    assert_int_equal(tokens_count(t), 0);
    assert_int_equal(tokens_lookup(t, TOK_A, strlen(TOK_A), ns, sa), -1);
    tokens_destroy(t);
}

static void test_errors(void **state)
{
    (void)state;
    errors_t e;
    tokens_t *t = parse(TOK_A " shop web\n"                           /* 1: fine */
                              "shorttoken shop web\n"                 /* 2 */
                        TOK_B " Shop web\n"                           /* 3 */
                              "aaaaaaaaaaaaaaaaaaaaaaaa shop wéb\n"   /* 4 */
                              "bbbbbbbbbbbbbbbbbbbbbbbb shop\n"       /* 5 */
                              "cccccccccccccccccccccccc shop web x\n" /* 6 */
                        TOK_A " shop other\n"                         /* 7: duplicate */
                              "tokén-with-utf8-ééééééééé shop web\n", /* 8 */
                        &e);
    assert_null(t);
    assert_int_equal(e.n, 7);
    static const char *const want[] = {
        "tokens.txt:2: the token is 10 bytes long; use 16 to 1024",
        "tokens.txt:3: namespace \"Shop\": uppercase 'S' at byte 1",
        "tokens.txt:4: service account \"wéb\": non-ASCII byte 0xc3 at byte 2",
        "tokens.txt:5: expected TOKEN NAMESPACE SERVICE-ACCOUNT, found 2 fields",
        "tokens.txt:6: expected TOKEN NAMESPACE SERVICE-ACCOUNT, found 4 fields",
        "tokens.txt:7: this token is already listed (for shop/web)",
        "tokens.txt:8: the token has a byte that is not printable ASCII (at byte 4)",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(e.text, want[i]) == NULL)
            fail_msg("missing \"%s\" in:\n%s", want[i], e.text);
    /* the whole point: no message quotes a token */
    assert_null(strstr(e.text, "shorttoken"));
    assert_null(strstr(e.text, TOK_A));
    assert_null(strstr(e.text, TOK_B));
    assert_null(strstr(e.text, "aaaaaaaa"));
    assert_null(strstr(e.text, "tokén"));
}

static void test_error_cap_and_nul(void **state)
{
    (void)state;
    errors_t e;
    char text[4096] = "";
    for (int i = 0; i < TOKENS_ERRORS_MAX + 5; i++)
        strcat(text, "x y\n");
    tokens_t *t = parse(text, &e);
    assert_null(t);
    assert_int_equal(e.n, TOKENS_ERRORS_MAX + 1);
    assert_non_null(strstr(e.text, "tokens.txt: ... and 5 more errors"));

    static const char with_nul[] = TOK_A " shop web\n" TOK_B "\0 shop api\n";
    memset(&e, 0, sizeof(e));
    t = tokens_parse("tokens.txt", with_nul, sizeof(with_nul) - 1, collect, &e);
    assert_null(t);
    assert_non_null(strstr(e.text, "tokens.txt:2: NUL byte in the line"));
}

static void test_load(void **state)
{
    (void)state;
    errors_t e;
    memset(&e, 0, sizeof(e));
    assert_null(tokens_load("/nonexistent/outrider/tokens", collect, &e));
    assert_non_null(strstr(e.text, "cannot open /nonexistent/outrider/tokens"));

    char path[] = "/tmp/outrider-tokens-test.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    fprintf(fp, "%s shop web\n", TOK_A);
    fclose(fp);
    memset(&e, 0, sizeof(e));
    tokens_t *t = tokens_load(path, collect, &e);
    assert_non_null(t);
    lookup_is(t, TOK_A, "shop", "web");
    tokens_destroy(t);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_lookup),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_cap_and_nul),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
