/*
 * Unit tests for ctl/redirect.c: the transparent-capture rules for each
 * family, the include and exclude lists, and the refusals. (The rules are
 * installed for real in a network namespace by tests/integration/
 * test_proxy_transparent.sh.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "redirect.h"

static char text[8192];

static const char *rules(const redirect_opts_t *o, enum redirect_family f)
{
    buf_t b = BUF_INIT;
    char err[256];
    if (redirect_rules(o, f, &b, err, sizeof err) != 0)
        fail_msg("redirect_rules: %s", err);
    snprintf(text, sizeof text, "%.*s", (int)b.len, b.data);
    buf_dispose(&b);
    return text;
}

static const char *refused(const redirect_opts_t *o)
{
    static char err[256];
    buf_t b = BUF_INIT;
    err[0] = '\0';
    assert_int_equal(redirect_rules(o, REDIRECT_IPV4, &b, err, sizeof err), -1);
    assert_int_equal(b.len, 0);
    buf_dispose(&b);
    return err;
}

static void has(const char *t, const char *line)
{
    char want[300];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (strstr(t, want) == NULL)
        fail_msg("no line \"%s\" in:\n%s", line, t);
}

static void lacks(const char *t, const char *part)
{
    if (strstr(t, part) != NULL)
        fail_msg("\"%s\" should not be in:\n%s", part, t);
}

static void test_defaults(void **state)
{
    (void)state;
    redirect_opts_t o;
    redirect_opts_init(&o);
    o.proxy_uid = 1337;
    const char *t = rules(&o, REDIRECT_IPV4);
    assert_true(strncmp(t, "*nat\n", 5) == 0);
    has(t, ":OUTRIDER_OUTPUT - [0:0]");
    has(t, "-A OUTRIDER_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006");
    has(t, "-A OUTRIDER_REDIRECT -p tcp -j REDIRECT --to-ports 15001");
    has(t, "-A PREROUTING -p tcp -j OUTRIDER_INBOUND");
    has(t, "-A OUTRIDER_INBOUND -p tcp --dport 15090 -j RETURN");
    has(t, "-A OUTRIDER_INBOUND -p tcp -j OUTRIDER_IN_REDIRECT");
    has(t, "-A OUTPUT -p tcp -j OUTRIDER_OUTPUT");
    has(t, "-A OUTRIDER_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 -j OUTRIDER_IN_REDIRECT");
    has(t, "-A OUTRIDER_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN");
    has(t, "-A OUTRIDER_OUTPUT -m owner --uid-owner 1337 -j RETURN");
    has(t, "-A OUTRIDER_OUTPUT -d 127.0.0.1/32 -j RETURN");
    has(t, "-A OUTRIDER_OUTPUT -p tcp --dport 53 -j RETURN");
    has(t, "-A OUTRIDER_OUTPUT -j OUTRIDER_REDIRECT");
    assert_non_null(strstr(t, "\nCOMMIT\n"));
    /* the catch-all comes after every RETURN of its chain */
    assert_true(strstr(t, "-A OUTRIDER_OUTPUT -j OUTRIDER_REDIRECT") > strstr(t, "--dport 53 -j RETURN"));
    assert_true(strstr(t, "-A OUTRIDER_INBOUND -p tcp -j OUTRIDER_IN_REDIRECT") > strstr(t, "--dport 15090 -j RETURN"));
    t = rules(&o, REDIRECT_IPV6);
    has(t, "-A OUTRIDER_OUTPUT -d ::1/128 -j RETURN");
    lacks(t, "127.0.0.1");
}

static void test_lists(void **state)
{
    (void)state;
    redirect_opts_t o;
    redirect_opts_init(&o);
    o.proxy_gid = 1337;
    o.proxy_port = 16001;
    o.inbound_port = 16006;
    o.inbound_ports = "9080, 8080";
    o.outbound_ports = "80,443";
    o.exclude_outbound_ports = "3306";
    o.outbound_ip_ranges = "10.0.0.0/8,fd00::/8";
    o.exclude_outbound_ip_ranges = "10.9.0.0/16";
    const char *t = rules(&o, REDIRECT_IPV4);
    has(t, "-A OUTRIDER_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006");
    has(t, "-A OUTRIDER_REDIRECT -p tcp -j REDIRECT --to-ports 16001");
    has(t, "-A OUTRIDER_INBOUND -p tcp --dport 9080 -j OUTRIDER_IN_REDIRECT");
    has(t, "-A OUTRIDER_INBOUND -p tcp --dport 8080 -j OUTRIDER_IN_REDIRECT");
    lacks(t, "--dport 15090"); /* excluded ports only mean something with "*" */
    has(t, "-A OUTRIDER_OUTPUT -m owner --gid-owner 1337 -j RETURN");
    has(t, "-A OUTRIDER_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN");
    lacks(t, "uid-owner");
    has(t, "-A OUTRIDER_OUTPUT -p tcp --dport 3306 -j RETURN");
    has(t, "-A OUTRIDER_OUTPUT -d 10.9.0.0/16 -j RETURN");
    has(t, "-A OUTRIDER_OUTPUT -d 10.0.0.0/8 -p tcp --dport 80 -j OUTRIDER_REDIRECT");
    has(t, "-A OUTRIDER_OUTPUT -d 10.0.0.0/8 -p tcp --dport 443 -j OUTRIDER_REDIRECT");
    lacks(t, "fd00::/8");
    lacks(t, "-A OUTRIDER_OUTPUT -j OUTRIDER_REDIRECT");
    t = rules(&o, REDIRECT_IPV6);
    has(t, "-A OUTRIDER_OUTPUT -d fd00::/8 -p tcp --dport 80 -j OUTRIDER_REDIRECT");
    lacks(t, "10.0.0.0/8");
    lacks(t, "10.9.0.0/16");

    /* no inbound capture; no outbound capture for a family without a range */
    redirect_opts_init(&o);
    o.proxy_uid = 0;
    o.inbound_ports = "";
    o.outbound_ip_ranges = "192.168.0.0/16";
    t = rules(&o, REDIRECT_IPV4);
    lacks(t, "-A PREROUTING");
    has(t, "-A OUTRIDER_OUTPUT -d 192.168.0.0/16 -j OUTRIDER_REDIRECT");
    t = rules(&o, REDIRECT_IPV6);
    lacks(t, "-A OUTPUT");
    lacks(t, "-A PREROUTING");
}

static void test_refusals(void **state)
{
    (void)state;
    redirect_opts_t o;
    redirect_opts_init(&o);
    assert_non_null(strstr(refused(&o), "--proxy-uid or --proxy-gid"));
    o.proxy_uid = 1337;
    o.exclude_outbound_ports = "3306,70000";
    assert_string_equal(refused(&o), "--exclude-outbound-ports: \"70000\" is not a port (1-65535)");
    o.exclude_outbound_ports = "";
    o.inbound_ports = "80,-1";
    assert_string_equal(refused(&o), "--inbound-ports: \"-1\" is not a port (1-65535)");
    o.inbound_ports = "*,80";
    assert_string_equal(refused(&o), "--inbound-ports: \"*\" and a list together");
    o.inbound_ports = "*";
    o.outbound_ip_ranges = "10.0.0.0/33";
    assert_non_null(strstr(refused(&o), "\"10.0.0.0/33\" is not an address or CIDR"));
    o.outbound_ip_ranges = "example.com";
    assert_non_null(strstr(refused(&o), "\"example.com\" is not an address or CIDR"));
    o.outbound_ip_ranges = "*";
    o.exclude_outbound_ip_ranges = "fd00::/129";
    assert_non_null(strstr(refused(&o), "--exclude-outbound-ip-ranges"));
    o.exclude_outbound_ip_ranges = "";
    o.outbound_ports = "*";
    assert_non_null(strstr(refused(&o), "--outbound-ports"));
}

static void test_cleanup(void **state)
{
    (void)state;
    /* the jumps go before the chains they reach, and every chain is flushed before it is deleted */
    size_t n = 0;
    bool seen_x = false;
    for (; redirect_cleanup[n] != NULL; n++) {
        const char *const *a = redirect_cleanup[n];
        assert_string_equal(a[0], "-t");
        assert_string_equal(a[1], "nat");
        if (strcmp(a[2], "-D") == 0)
            assert_false(seen_x);
        if (strcmp(a[2], "-X") == 0) {
            seen_x = true;
            assert_string_equal(redirect_cleanup[n - 1][2], "-F");
            assert_string_equal(redirect_cleanup[n - 1][3], a[3]);
        }
    }
    assert_int_equal(n, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
