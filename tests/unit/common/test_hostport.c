/* Unit tests for common/hostport: HOST:PORT splitting and numeric socket addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "hostport.h"

static void split_ok(const char *s, const char *want_host, uint16_t want_port)
{
    char host[64];
    uint16_t port = 1;
    const char *why = "untouched";
    if (hostport_split(s, host, sizeof(host), &port, &why) != 0)
        fail_msg("\"%s\" refused: %s", s, why);
    assert_string_equal(host, want_host);
    assert_int_equal(port, want_port);
}

static void split_bad(const char *s, size_t hostlen, const char *want_why)
{
    char host[64] = "x";
    uint16_t port = 7;
    const char *why = NULL;
    assert_true(hostlen <= sizeof(host));
    if (hostport_split(s, host, hostlen, &port, &why) == 0)
        fail_msg("\"%s\" accepted as %s port %u", s, host, (unsigned)port);
    assert_non_null(why);
    assert_string_equal(why, want_why);
    assert_string_equal(host, "x"); /* outputs untouched */
    assert_int_equal(port, 7);
}

static void test_split(void **state)
{
    (void)state;
    split_ok("127.0.0.1:80", "127.0.0.1", 80);
    split_ok("[::1]:4318", "::1", 4318);
    split_ok("[fe80::1%eth0]:1", "fe80::1%eth0", 1);
    split_ok("0.0.0.0:0", "0.0.0.0", 0); /* port 0: any free port, for listeners */
    split_ok("h:65535", "h", 65535);
    split_ok("h:00080", "h", 80);
    split_ok("redis.default.svc:6379", "redis.default.svc", 6379); /* names are split, not resolved */
    split_ok("localhost:9411", "localhost", 9411);

    split_bad("", 64, "missing \":PORT\"");
    split_bad("127.0.0.1", 64, "missing \":PORT\"");
    split_bad("[::1]", 64, "missing \":PORT\"");
    split_bad("[::1]4318", 64, "missing \":PORT\"");
    split_bad("[::1:4318", 64, "missing \"]\" after an IPv6 address");
    split_bad("::1:4318", 64, "IPv6 addresses need brackets ([::1]:PORT)");
    split_bad(":80", 64, "empty host");
    split_bad("[]:80", 64, "empty host");
    split_bad("h:", 64, "empty port");
    split_bad("[::1]:", 64, "empty port");
    split_bad("h:65536", 64, "port is above 65535");
    split_bad("h:70000", 64, "port is above 65535");
    split_bad("h:99999999999999999999999", 64, "port is above 65535");
    split_bad("h:-1", 64, "port is not a decimal number");
    split_bad("h:+80", 64, "port is not a decimal number");
    split_bad("h:80 ", 64, "port is not a decimal number");
    split_bad("h: 80", 64, "port is not a decimal number");
    split_bad("h:0x50", 64, "port is not a decimal number");
    split_bad("h:http", 64, "port is not a decimal number");
    /* host and NUL must fit in hostlen */
    split_bad("abcd:80", 4, "host too long");
    char host[5];
    uint16_t port;
    assert_int_equal(hostport_split("abcd:80", host, sizeof(host), &port, NULL), 0);
    assert_string_equal(host, "abcd");
    assert_int_equal(hostport_split("abcde:80", host, sizeof(host), &port, NULL), -1); /* why may be NULL */
}

static void test_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;

    assert_int_equal(hostport_sockaddr("127.0.0.1", 15001, &ss, &len), 0);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(sin->sin_port), 15001);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);

    assert_int_equal(hostport_sockaddr("::1", 0, &ss, &len), 0);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(sin6->sin6_port), 0);
    assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
    assert_int_equal(sin6->sin6_scope_id, 0);

    assert_int_equal(hostport_sockaddr("::ffff:10.0.0.1", 65535, &ss, NULL), 0); /* len may be NULL */
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(sin6->sin6_port), 65535);

    static const char *bad[] = {
        "",          "localhost", "example.com", "[::1]",    "::1%lo",   "fe80::1%1",    "1.2.3.04",
        "256.1.1.1", "1.2.3",     "1.2.3.4.5",   " 1.2.3.4", "1.2.3.4 ", "127.0.0.1:80", ":::",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&ss, 0x5a, sizeof(ss));
        len = 99;
        if (hostport_sockaddr(bad[i], 80, &ss, &len) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(ss.ss_family, 0); /* zeroed on failure */
        assert_int_equal(len, 99);
    }
    assert_int_equal(hostport_sockaddr(NULL, 80, &ss, &len), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_sockaddr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
