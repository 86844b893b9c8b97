/* Unit tests for common/ident and ctl/ttl: the names in a SPIFFE id and the TTL strings every command takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ident.h"
#include "ttl.h"

typedef int (*check_fn)(const char *s, char *err, size_t errlen);

static void ok(check_fn f, const char *s)
{
    char err[256] = "";
    if (f(s, err, sizeof(err)) != 0)
        fail_msg("\"%s\" refused: %s", s, err);
}

/* Refused, with a reason that contains want. */
static void bad(check_fn f, const char *s, const char *want)
{
    char err[256] = "";
    if (f(s, err, sizeof(err)) == 0)
        fail_msg("\"%s\" accepted", s);
    if (strstr(err, want) == NULL)
        fail_msg("\"%s\": reason \"%s\" does not say \"%s\"", s, err, want);
}

static void test_labels(void **state)
{
    (void)state;
    char max[IDENT_LABEL_MAX + 2];
    memset(max, 'a', IDENT_LABEL_MAX);
    max[IDENT_LABEL_MAX] = '\0';
    ok(ident_check_label, "shop");
    ok(ident_check_label, "default");
    ok(ident_check_label, "istio-system");
    ok(ident_check_label, "0");
    ok(ident_check_label, "a1-b2");
    ok(ident_check_label, max);
    max[IDENT_LABEL_MAX] = 'a';
    max[IDENT_LABEL_MAX + 1] = '\0';
    bad(ident_check_label, max, "64 bytes long; at most 63");
    bad(ident_check_label, "", "empty");
    bad(ident_check_label, "Shop", "uppercase 'S' at byte 1");
    bad(ident_check_label, "wéb", "non-ASCII byte 0xc3 at byte 2");
    bad(ident_check_label, "сервис", "non-ASCII"); /* Cyrillic */
    bad(ident_check_label, "my_sa", "'_' at byte 3 is not allowed");
    bad(ident_check_label, "a.b", "'.' at byte 2"); /* a label, not a subdomain */
    bad(ident_check_label, "-web", "starts with '-' at byte 1");
    bad(ident_check_label, "web-", "ends with '-' at byte 4");
    bad(ident_check_label, "a b", "' ' at byte 2");
    bad(ident_check_label, "a\nb", "control byte 0x0a at byte 2");
    bad(ident_check_label, "a/b", "'/' at byte 2"); /* would forge a SPIFFE path */
}

static void test_trust_domains(void **state)
{
    (void)state;
    ok(ident_check_trust_domain, "cluster.local");
    ok(ident_check_trust_domain, "example.org");
    ok(ident_check_trust_domain, "prod-1.mesh.example.com");
    ok(ident_check_trust_domain, "localdomain");
    bad(ident_check_trust_domain, "", "empty");
    bad(ident_check_trust_domain, "Example.org", "uppercase 'E' at byte 1");
    bad(ident_check_trust_domain, ".example.org", "empty label at byte 1");
    bad(ident_check_trust_domain, "example.org.", "empty label at byte 13");
    bad(ident_check_trust_domain, "example..org", "empty label at byte 9");
    bad(ident_check_trust_domain, "-a.org", "starts with '-' at byte 1");
    bad(ident_check_trust_domain, "a-.org", "ends with '-' at byte 2");
    bad(ident_check_trust_domain, "ex_ample.org", "'_' at byte 3");
    bad(ident_check_trust_domain, "example.org:80", "':' at byte 12");
    bad(ident_check_trust_domain, "exämple.org", "non-ASCII byte 0xc3 at byte 3");

    char long_label[80];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".org");
    bad(ident_check_trust_domain, long_label, "label at byte 1 is 64 bytes long; at most 63");

    /* 255 bytes in labels of 63: accepted; 256: refused */
    char td[300];
    size_t n = 0;
    while (n < 255) {
        size_t take = 255 - n > 64 ? 63 : 255 - n;
        memset(td + n, 'b', take);
        n += take;
        if (n < 255)
            td[n++] = '.';
    }
    td[255] = '\0';
    ok(ident_check_trust_domain, td);
    td[255] = 'c';
    td[256] = '\0';
    bad(ident_check_trust_domain, td, "256 bytes long; at most 255");
}

static void test_dns_names(void **state)
{
    (void)state;
    ok(ident_check_dns_name, "web.shop.svc.cluster.local");
    ok(ident_check_dns_name, "Web.Example.COM"); /* DNS is case-insensitive */
    ok(ident_check_dns_name, "*.shop.svc");
    ok(ident_check_dns_name, "localhost");
    bad(ident_check_dns_name, "", "empty");
    bad(ident_check_dns_name, "a..b", "empty label");
    bad(ident_check_dns_name, "*", "'*' at byte 1");
    bad(ident_check_dns_name, "a.*.b", "'*' at byte 3");
    bad(ident_check_dns_name, "*.-a.b", "after the leading \"*.\": starts with '-'");
    bad(ident_check_dns_name, "a,DNS:evil.com", "',' at byte 2"); /* no injection into OpenSSL's config syntax */
    bad(ident_check_dns_name, "héllo.com", "non-ASCII");
}

static void test_spiffe_id(void **state)
{
    (void)state;
    char id[IDENT_SPIFFE_ID_MAX], err[256];
    assert_int_equal(ident_spiffe_id(id, sizeof(id), "example.org", "shop", "web", err, sizeof(err)), 0);
    assert_string_equal(id, "spiffe://example.org/ns/shop/sa/web");
    assert_int_equal(ident_spiffe_id(id, sizeof(id), "example.org", "shop", "Web", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "service account \"Web\": uppercase"));
    assert_int_equal(ident_spiffe_id(id, sizeof(id), "example.org", "a/b", "web", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "namespace \"a/b\""));
    assert_int_equal(ident_spiffe_id(id, 20, "example.org", "shop", "web", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than 19 bytes"));

    /* the longest names fit the documented buffer size */
    char td[IDENT_TRUST_DOMAIN_MAX + 1], label[IDENT_LABEL_MAX + 1];
    for (size_t i = 0; i < IDENT_TRUST_DOMAIN_MAX; i++)
        td[i] = i % 64 == 63 ? '.' : 'd';
    td[IDENT_TRUST_DOMAIN_MAX] = '\0';
    memset(label, 'l', IDENT_LABEL_MAX);
    label[IDENT_LABEL_MAX] = '\0';
    assert_int_equal(ident_spiffe_id(id, sizeof(id), td, label, label, err, sizeof(err)), 0);
    assert_int_equal(strlen(id), IDENT_SPIFFE_ID_MAX - 1);
}

static void ttl_ok(const char *s, int64_t want)
{
    int64_t got = -1;
    const char *why = "untouched";
    if (ttl_parse(s, &got, &why) != 0)
        fail_msg("ttl \"%s\" refused: %s", s, why);
    assert_int_equal(got, want);
}

static void ttl_bad(const char *s, const char *want)
{
    int64_t got = 42;
    const char *why = NULL;
    if (ttl_parse(s, &got, &why) == 0)
        fail_msg("ttl \"%s\" accepted as %lld", s, (long long)got);
    assert_int_equal(got, 42);
    if (strstr(why, want) == NULL)
        fail_msg("ttl \"%s\": reason \"%s\" does not say \"%s\"", s, why, want);
}

static void test_ttl_parse(void **state)
{
    (void)state;
    ttl_ok("90s", 90);
    ttl_ok("30m", 1800);
    ttl_ok("24h", 86400);
    ttl_ok("365d", 365 * 86400);
    ttl_ok("87600h", (int64_t)87600 * 3600);
    ttl_ok("1h30m", 5400);
    ttl_ok("1d12h", 129600);
    ttl_ok("0h1s", 1);
    ttl_ok("007m", 420);
    ttl_ok("36500d", TTL_MAX_S);
    ttl_bad("", "empty");
    ttl_bad("24", "missing unit");
    ttl_bad("5x", "unknown unit");
    ttl_bad("h", "expected a number");
    ttl_bad("-1h", "expected a number");
    ttl_bad("+1h", "expected a number");
    ttl_bad("1.5h", "unknown unit");
    ttl_bad(" 1h", "expected a number");
    ttl_bad("1h ", "expected a number");
    ttl_bad("1H", "unknown unit");
    ttl_bad("0s", "zero");
    ttl_bad("0d0h", "zero");
    ttl_bad("36500d1s", "longer than 100 years");
    ttl_bad("36501d", "longer than 100 years");
    ttl_bad("99999999999999999999999h", "longer than 100 years"); /* no overflow */
    ttl_bad("3153600000s1s", "longer than 100 years");
}

static void test_ttl_format(void **state)
{
    (void)state;
    char buf[TTL_TEXT_MAX];
    assert_string_equal(ttl_format(0, buf, sizeof(buf)), "0s");
    assert_string_equal(ttl_format(90, buf, sizeof(buf)), "1m30s");
    assert_string_equal(ttl_format(3600, buf, sizeof(buf)), "1h");
    assert_string_equal(ttl_format(86400, buf, sizeof(buf)), "24h");
    assert_string_equal(ttl_format(129600, buf, sizeof(buf)), "36h");
    assert_string_equal(ttl_format(2 * 86400, buf, sizeof(buf)), "2d");
    assert_string_equal(ttl_format(3 * 86400 + 3600 + 1, buf, sizeof(buf)), "3d1h1s");
    assert_string_equal(ttl_format(TTL_MAX_S + 86399, buf, sizeof(buf)), "36500d23h59m59s");
    /* what it writes, ttl_parse reads back */
    static const int64_t samples[] = {1, 59, 61, 3599, 86399, 86401, 172800, 31536000, TTL_MAX_S};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        int64_t back = 0;
        const char *why;
        ttl_format(samples[i], buf, sizeof(buf));
        assert_int_equal(ttl_parse(buf, &back, &why), 0);
        assert_int_equal(back, samples[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels),    cmocka_unit_test(test_trust_domains), cmocka_unit_test(test_dns_names),
        cmocka_unit_test(test_spiffe_id), cmocka_unit_test(test_ttl_parse),     cmocka_unit_test(test_ttl_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
