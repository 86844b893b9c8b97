/*
 * Unit tests for collector/ingest_auth: the constant-time compare, the
 * tokens file (comments, names, CRLF, and every error with its
 * file:line:col), the Authorization header, SPIFFE id patterns and
 * matching, and the live state (checks counted by reason and sender, a
 * reload that swaps the set, a bad reload that keeps it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ingest_auth.h"

#define TOKEN_A "0123456789abcdef0123456789abcdef"
#define TOKEN_B "fedcba9876543210fedcba9876543210"
#define TOKEN_C "cccccccccccccccccccccccccccccccc"
#define NAME_65 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

typedef struct errs {
    int n;
    char msgs[32][512];
} errs_t;

static void collect(void *ctx, const char *msg)
{
    errs_t *e = ctx;
    if (e->n < 32)
        snprintf(e->msgs[e->n], sizeof(e->msgs[0]), "%s", msg);
    e->n++;
}

static ingest_tokens_t *parse(const char *text, errs_t *e)
{
    memset(e, 0, sizeof(*e));
    return ingest_tokens_parse("t.txt", text, strlen(text), collect, e);
}

static void test_ct_equal(void **state)
{
    (void)state;
    unsigned char a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(ingest_auth_ct_equal(a, b, 32), 1);
    assert_int_equal(ingest_auth_ct_equal(a, b, 0), 1);
    for (int i = 0; i < 32; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            assert_int_equal(ingest_auth_ct_equal(a, b, 32), 0);
            assert_int_equal(ingest_auth_ct_equal(b, a, 32), 0);
            b[i] ^= (unsigned char)(1u << bit);
        }
    }
    b[31] = (unsigned char)(a[31] ^ 0xff);
    assert_int_equal(ingest_auth_ct_equal(a, b, 31), 1); /* only n bytes count */
    assert_int_equal(ingest_auth_ct_equal(a, b, 32), 0);
}

static void test_parse_ok(void **state)
{
    (void)state;
    errs_t e;
    const char *text = "# the senders\r\n"
                       "\n"
                       "   \t\n" TOKEN_A " alice\r\n" TOKEN_B "\t# no name, a comment\n" TOKEN_C
                       "  ns/shop:otel@east-1.b_2   # named\n";
    ingest_tokens_t *t = parse(text, &e);
    assert_int_equal(e.n, 0);
    assert_non_null(t);
    assert_int_equal(ingest_tokens_count(t), 3);
    assert_int_equal(ingest_tokens_find(t, TOKEN_A, strlen(TOKEN_A)), 0);
    assert_int_equal(ingest_tokens_find(t, TOKEN_B, strlen(TOKEN_B)), 1);
    assert_int_equal(ingest_tokens_find(t, TOKEN_C, strlen(TOKEN_C)), 2);
    assert_string_equal(ingest_tokens_name(t, 0), "alice");
    assert_string_equal(ingest_tokens_name(t, 1), "");
    assert_string_equal(ingest_tokens_name(t, 2), "ns/shop:otel@east-1.b_2");
    /* prefixes, extensions and case changes of a token are other tokens */
    assert_int_equal(ingest_tokens_find(t, TOKEN_A, strlen(TOKEN_A) - 1), -1);
    assert_int_equal(ingest_tokens_find(t, TOKEN_A "0", strlen(TOKEN_A) + 1), -1);
    assert_int_equal(ingest_tokens_find(t, "0123456789ABCDEF0123456789abcdef", 32), -1);
    assert_int_equal(ingest_tokens_find(t, "", 0), -1);
    ingest_tokens_destroy(t);

    /* no newline at the end, one token */
    t = parse(TOKEN_A, &e);
    assert_non_null(t);
    assert_int_equal(ingest_tokens_count(t), 1);
    ingest_tokens_destroy(t);
    ingest_tokens_destroy(NULL);
}

static void test_parse_errors(void **state)
{
    (void)state;
    errs_t e;
    /* each error on its own line, with the column of what is wrong; every one is reported */
    static const char *const lines[] = {
        "short7chars",            /* 1 */
        "  " TOKEN_A " bad!name", /* 2: the '!' at column 39 */
        TOKEN_B " one two",       /* 3: an extra field */
        "0123456789\x01"
        "abcdef0123456789",    /* 4: a control byte at column 11 */
        TOKEN_C,               /* 5: fine */
        "\t" TOKEN_C " again", /* 6: the same token as line 5 */
        TOKEN_A " " NAME_65,   /* 7: a name of 65 bytes */
    };
    char text[1024] = "";
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        strcat(text, lines[i]);
        strcat(text, "\n");
    }
    ingest_tokens_t *t = parse(text, &e);
    assert_null(t);
    assert_int_equal(e.n, 6);
    assert_string_equal(e.msgs[0],
                        "t.txt:1:1: the token is 11 bytes long; use 16 to 4096 (e.g. `openssl rand -hex 32`)");
    assert_string_equal(e.msgs[1], "t.txt:2:39: a name is letters, digits and . _ : @ / - only");
    assert_non_null(strstr(e.msgs[2], "t.txt:3:38: expected TOKEN [NAME], found more fields"));
    assert_string_equal(e.msgs[3], "t.txt:4:11: the token has a byte that is not printable ASCII");
    assert_string_equal(e.msgs[4], "t.txt:6:2: the same token as line 5; a token may appear once");
    assert_string_equal(e.msgs[5], "t.txt:7:34: the name is longer than 64 bytes");
    for (int i = 0; i < e.n; i++) /* no message quotes a token */
        assert_null(strstr(e.msgs[i], TOKEN_C));

    /* a file without tokens would lock every sender out */
    t = parse("# nothing yet\n\n", &e);
    assert_null(t);
    assert_int_equal(e.n, 1);
    assert_non_null(strstr(e.msgs[0], "t.txt: no token in the file"));
    t = parse("", &e);
    assert_null(t);

    /* a NUL byte */
    char nul[64];
    memcpy(nul, TOKEN_A, 32);
    nul[5] = '\0';
    memset(&e, 0, sizeof(e));
    t = ingest_tokens_parse("t.txt", nul, 32, collect, &e);
    assert_null(t);
    assert_string_equal(e.msgs[0], "t.txt:1:6: NUL byte in the line");

    /* many errors: the first INGEST_TOKENS_ERRORS_MAX, then a count */
    char many[4096] = "";
    for (int i = 0; i < 30; i++)
        strcat(many, "x\n");
    t = parse(many, &e);
    assert_null(t);
    assert_int_equal(e.n, INGEST_TOKENS_ERRORS_MAX + 1);
    assert_string_equal(e.msgs[INGEST_TOKENS_ERRORS_MAX], "t.txt: ... and 10 more errors");
}

static void test_bearer(void **state)
{
    (void)state;
    const char *tok;
    size_t len;
    assert_int_equal(ingest_auth_bearer("Bearer abc", &tok, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(tok, "abc", 3);
    assert_int_equal(ingest_auth_bearer("  bEARER \t abc.def \t", &tok, &len), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(tok, "abc.def", 7);
    assert_int_equal(ingest_auth_bearer("Basic YTpi", &tok, &len), -1);
    assert_int_equal(ingest_auth_bearer("Bearer", &tok, &len), -1);
    assert_int_equal(ingest_auth_bearer("Bearer   ", &tok, &len), -1);
    assert_int_equal(ingest_auth_bearer("Bearerabc", &tok, &len), -1);
    assert_int_equal(ingest_auth_bearer("", &tok, &len), -1);
}

static void test_ids(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(ingest_auth_check_id_pattern("spiffe://cluster.local/", why, sizeof(why)), 0);
    assert_int_equal(ingest_auth_check_id_pattern("spiffe://cluster.local/ns/shop/", why, sizeof(why)), 0);
    assert_int_equal(ingest_auth_check_id_pattern("spiffe://cluster.local/ns/shop/sa/otel", why, sizeof(why)), 0);
    assert_int_equal(ingest_auth_check_id_pattern("spiffe://cluster.local", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "spiffe://cluster.local/"));
    assert_int_equal(ingest_auth_check_id_pattern("https://cluster.local/", why, sizeof(why)), -1);
    assert_int_equal(ingest_auth_check_id_pattern("spiffe:///ns/x", why, sizeof(why)), -1);
    assert_int_equal(ingest_auth_check_id_pattern("spiffe://Cluster.local/", why, sizeof(why)), -1);
    assert_int_equal(ingest_auth_check_id_pattern("spiffe://c/ns/a b", why, sizeof(why)), -1);

    char *items[] = {"spiffe://td/ns/shop/", "spiffe://td/ns/obs/sa/otel"};
    setting_list_t ids = {items, 2};
    assert_true(ingest_auth_id_allowed(&ids, "spiffe://td/ns/shop/sa/reviews"));
    assert_true(ingest_auth_id_allowed(&ids, "spiffe://td/ns/obs/sa/otel"));
    assert_false(ingest_auth_id_allowed(&ids, "spiffe://td/ns/obs/sa/otel2"));
    assert_false(ingest_auth_id_allowed(&ids, "spiffe://td/ns/shop/")); /* a prefix needs something after it */
    assert_false(ingest_auth_id_allowed(&ids, "spiffe://td/ns/shopping/sa/x"));
    assert_false(ingest_auth_id_allowed(&ids, "spiffe://other/ns/shop/sa/x"));
    assert_false(ingest_auth_id_allowed(&ids, NULL));
    setting_list_t none = {NULL, 0};
    assert_true(ingest_auth_id_allowed(&none, NULL));
    assert_true(ingest_auth_id_allowed(NULL, "spiffe://x/y"));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_live(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_ingest_auth.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/tokens", dir);
    write_file(path, TOKEN_A " alice\n" TOKEN_B "\n");
    errs_t e = {0};
    ingest_auth_t *a = ingest_auth_create(path, NULL, collect, &e);
    assert_non_null(a);
    assert_true(ingest_auth_tokens_required(a));
    assert_false(ingest_auth_ids_limited(a));
    assert_int_equal(ingest_auth_check(a, NULL, NULL), INGEST_AUTH_MISSING_TOKEN);
    assert_int_equal(ingest_auth_check(a, "Basic YTpi", NULL), INGEST_AUTH_NOT_BEARER);
    assert_int_equal(ingest_auth_check(a, "Bearer " TOKEN_C, NULL), INGEST_AUTH_INVALID_TOKEN);
    assert_int_equal(ingest_auth_check(a, "Bearer " TOKEN_A, NULL), INGEST_AUTH_OK);
    assert_int_equal(ingest_auth_check(a, "bearer " TOKEN_B, NULL), INGEST_AUTH_OK);
    assert_int_equal(ingest_auth_failures(a, INGEST_AUTH_MISSING_TOKEN), 1);
    assert_int_equal(ingest_auth_failures(a, INGEST_AUTH_NOT_BEARER), 1);
    assert_int_equal(ingest_auth_failures(a, INGEST_AUTH_INVALID_TOKEN), 1);

    /* a new file: the old token goes, the new one comes, alice's count carries over */
    write_file(path, TOKEN_C " alice\n");
    assert_int_equal(ingest_auth_reload(a, collect, &e), 1);
    assert_int_equal(ingest_auth_check(a, "Bearer " TOKEN_A, NULL), INGEST_AUTH_INVALID_TOKEN);
    assert_int_equal(ingest_auth_check(a, "Bearer " TOKEN_C, NULL), INGEST_AUTH_OK);

    /* a broken file keeps the set before */
    write_file(path, "short\n");
    memset(&e, 0, sizeof(e));
    assert_int_equal(ingest_auth_reload(a, collect, &e), -1);
    assert_int_equal(e.n, 1);
    assert_non_null(strstr(e.msgs[0], ":1:1: the token is 5 bytes long"));
    assert_int_equal(ingest_auth_check(a, "Bearer " TOKEN_C, NULL), INGEST_AUTH_OK);
    unlink(path);
    memset(&e, 0, sizeof(e));
    assert_int_equal(ingest_auth_reload(a, collect, &e), -1);
    assert_int_equal(ingest_auth_check(a, "Bearer " TOKEN_C, NULL), INGEST_AUTH_OK);

    buf_t b = BUF_INIT;
    ingest_auth_render_metrics(a, &b, 0);
    assert_non_null(strstr(b.data, "outrider_collector_ingest_auth_failures_total{reason=\"invalid_token\"} 2\n"));
    assert_non_null(strstr(b.data, "outrider_collector_ingest_auth_failures_total{reason=\"missing_token\"} 1\n"));
    assert_non_null(strstr(b.data, "outrider_collector_ingest_auth_requests_total{sender=\"alice\"} 4\n"));
    assert_non_null(strstr(b.data, "outrider_collector_ingest_auth_requests_total{sender=\"unnamed\"} 1\n"));
    assert_non_null(strstr(b.data, "outrider_collector_ingest_auth_tokens 1\n"));
    assert_non_null(strstr(b.data, "outrider_collector_ingest_auth_reload_success 0\n"));
    assert_null(strstr(b.data, TOKEN_C));
    buf_dispose(&b);
    ingest_auth_destroy(a);

    /* a bad file at the start: no state */
    write_file(path, "# none\n");
    memset(&e, 0, sizeof(e));
    assert_null(ingest_auth_create(path, NULL, collect, &e));
    assert_int_equal(e.n, 1);
    unlink(path);
    rmdir(dir);

    /* ids only: no token needed, the certificate's id decides */
    char *items[] = {"spiffe://td/ns/shop/"};
    setting_list_t ids = {items, 1};
    a = ingest_auth_create(NULL, &ids, collect, &e);
    assert_non_null(a);
    assert_false(ingest_auth_tokens_required(a));
    assert_true(ingest_auth_ids_limited(a));
    assert_int_equal(ingest_auth_check(a, NULL, "spiffe://td/ns/shop/sa/x"), INGEST_AUTH_OK);
    assert_int_equal(ingest_auth_check(a, NULL, "spiffe://td/ns/other/sa/x"), INGEST_AUTH_FORBIDDEN_ID);
    assert_int_equal(ingest_auth_check(a, NULL, NULL), INGEST_AUTH_FORBIDDEN_ID);
    assert_int_equal(ingest_auth_failures(a, INGEST_AUTH_FORBIDDEN_ID), 2);
    assert_int_equal(ingest_auth_reload(a, collect, &e), 0);
    ingest_auth_destroy(a);
    ingest_auth_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ct_equal), cmocka_unit_test(test_parse_ok), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_bearer),   cmocka_unit_test(test_ids),      cmocka_unit_test(test_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
