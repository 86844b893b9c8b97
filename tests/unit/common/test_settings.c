/* Unit tests for common/settings: defaults, YAML loading, file:line:col errors, flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"

typedef struct cfg {
    char *listen;
    uint64_t count;
    uint64_t size;
    uint64_t timeout_ms;
    int flag;
    setting_list_t keys;
    char *enc;
    setting_list_t props;
} cfg_t;

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const setting_t table[] = {
    {"server.listen", SETTING_HOSTPORT, offsetof(cfg_t, listen), "0.0.0.0:9411", 0, 0, "listen"},
    {"store.count", SETTING_UINT, offsetof(cfg_t, count), "10", 1, 1000, "count"},
    {"store.size", SETTING_BYTES, offsetof(cfg_t, size), "1MiB", 0, 0, "size"},
    {"timeout", SETTING_DURATION, offsetof(cfg_t, timeout_ms), "5s", 0, 0, "timeout"},
    {"flag", SETTING_BOOL, offsetof(cfg_t, flag), "false", 0, 0, "flag"},
    {"keys", SETTING_LIST, offsetof(cfg_t, keys), "a,b", 0, 0, "keys"},
    {"out.encoding", SETTING_STRING, offsetof(cfg_t, enc), "json", 0, 0, "encoding", "json|proto3|otlp"},
    {"out.producer", SETTING_MAP, offsetof(cfg_t, props), "acks=all,compression.type=zstd", 0, 0, "props"},
};
#define N (sizeof(table) / sizeof(table[0]))

typedef struct errs {
    int n;
    char msgs[8][256];
} errs_t;

static void collect(void *ctx, const char *msg)
{
    errs_t *e = ctx;
    if (e->n < 8)
        snprintf(e->msgs[e->n], sizeof(e->msgs[0]), "%s", msg);
    e->n++;
}

static void test_defaults(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    assert_string_equal(c.listen, "0.0.0.0:9411");
    assert_int_equal(c.count, 10);
    assert_int_equal(c.size, 1024 * 1024);
    assert_int_equal(c.timeout_ms, 5000);
    assert_int_equal(c.flag, 0);
    assert_int_equal(c.keys.n, 2);
    assert_string_equal(c.keys.items[1], "b");
    settings_dispose(table, N, &c);
}

static void test_yaml_ok(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    const char *y = "server:\n  listen: 127.0.0.1:0\nstore: {count: 42, size: 2GiB}\ntimeout: 250ms\nflag: true\n"
                    "keys: [x, y, z]\n";
    errs_t e = {0};
    assert_int_equal(settings_load_yaml_string(table, N, &c, "c.yaml", y, strlen(y), collect, &e), 0);
    assert_int_equal(e.n, 0);
    assert_string_equal(c.listen, "127.0.0.1:0");
    assert_int_equal(c.count, 42);
    assert_int_equal(c.size, 2ull << 30);
    assert_int_equal(c.timeout_ms, 250);
    assert_int_equal(c.flag, 1);
    assert_int_equal(c.keys.n, 3);
    assert_string_equal(c.keys.items[2], "z");
    settings_dispose(table, N, &c);
}

static void test_yaml_errors_have_positions(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    const char *y = "server:\n  listen: nope\n  bogus: 1\nstore:\n  count: 5000\n  size: lots\ntimeout: [1]\n";
    errs_t e = {0};
    assert_int_equal(settings_load_yaml_string(table, N, &c, "c.yaml", y, strlen(y), collect, &e), 5);
    assert_int_equal(e.n, 5);
    assert_non_null(strstr(e.msgs[0], "c.yaml:2:11: server.listen: expected HOST:PORT"));
    assert_non_null(strstr(e.msgs[1], "c.yaml:3:3: server.bogus: unknown setting"));
    assert_non_null(strstr(e.msgs[2], "c.yaml:5:10: store.count: value out of range"));
    assert_non_null(strstr(e.msgs[3], "c.yaml:6:9: store.size: expected a size"));
    assert_non_null(strstr(e.msgs[4], "c.yaml:7:"));
    assert_non_null(strstr(e.msgs[4], "timeout: expected a scalar"));
    settings_dispose(table, N, &c);
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    const char *y = "store:\n  count: [1, 2\nflag: true\n";
    errs_t e = {0};
    assert_int_equal(settings_load_yaml_string(table, N, &c, "bad.yaml", y, strlen(y), collect, &e), -1);
    assert_true(e.n >= 1);
    assert_non_null(strstr(e.msgs[0], "bad.yaml:"));
    settings_dispose(table, N, &c);
}

/* libfyaml 0.7 hangs on some malformed directives (found by fuzz_settings): they must be refused first */
static void test_bad_directives_refused(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    const char *inputs[] = {"%\xb5\n", "flag: true\n%bogus\n", "a: 1\r%YA\xdck\n"};
    for (size_t i = 0; i < 3; i++) {
        errs_t e = {0};
        assert_int_equal(settings_load_yaml_string(table, N, &c, "d.yaml", inputs[i], strlen(inputs[i]), collect, &e),
                         -1);
        assert_int_equal(e.n, 1);
        assert_non_null(strstr(e.msgs[0], "unsupported YAML directive"));
    }
    const char *ok = "%YAML 1.2\n---\nflag: true\n";
    errs_t e = {0};
    assert_int_equal(settings_load_yaml_string(table, N, &c, "d.yaml", ok, strlen(ok), collect, &e), 0);
    assert_int_equal(c.flag, 1);
    settings_dispose(table, N, &c);
}

static void test_flags_and_hostport(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    errs_t e = {0};
    assert_int_equal(settings_set(table, N, &c, "store.count", "7", collect, &e), 0);
    assert_int_equal(c.count, 7);
    assert_int_equal(settings_set(table, N, &c, "store.count", "-1", collect, &e), -1);
    assert_int_equal(settings_set(table, N, &c, "nope", "1", collect, &e), -1);
    assert_int_equal(e.n, 2);
    assert_non_null(strstr(e.msgs[1], "nope: unknown setting"));
    /* HOST:PORT settings take IPv6 in brackets and refuse a bare one (rules: test_hostport.c) */
    assert_int_equal(settings_set(table, N, &c, "server.listen", "[::1]:4318", collect, &e), 0);
    assert_string_equal(c.listen, "[::1]:4318");
    assert_int_equal(settings_set(table, N, &c, "server.listen", "::1:4318", collect, &e), -1);
    assert_int_equal(e.n, 3);
    assert_non_null(strstr(e.msgs[2], "server.listen: expected HOST:PORT"));
    settings_dispose(table, N, &c);
}

static const char *prop(const cfg_t *c, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < c->props.n; i++)
        if (strncmp(c->props.items[i], key, n) == 0 && c->props.items[i][n] == '=')
            return c->props.items[i] + n + 1;
    return NULL;
}

/* SETTING_STRING with choices: anything else is refused with the list, at its position */
static void test_choices(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    assert_string_equal(c.enc, "json");
    errs_t e = {0};
    assert_int_equal(settings_set(table, N, &c, "out.encoding", "otlp", collect, &e), 0);
    assert_string_equal(c.enc, "otlp");
    assert_int_equal(settings_set(table, N, &c, "out.encoding", "proto", collect, &e), -1);
    assert_non_null(strstr(e.msgs[0], "out.encoding: expected one of json, proto3, otlp (got \"proto\")"));
    assert_string_equal(c.enc, "otlp");
    const char *y = "out:\n  encoding: xml\n";
    e.n = 0;
    assert_int_equal(settings_load_yaml_string(table, N, &c, "o.yaml", y, strlen(y), collect, &e), 1);
    assert_non_null(strstr(e.msgs[0], "o.yaml:2:13: out.encoding: expected one of json, proto3, otlp"));
    settings_dispose(table, N, &c);
}

/* SETTING_MAP: open-ended keys under its name, from flags and YAML (flat or nested), over the defaults */
static void test_map(void **state)
{
    (void)state;
    cfg_t c = {0};
    settings_defaults(table, N, &c);
    assert_int_equal(c.props.n, 2);
    assert_string_equal(prop(&c, "acks"), "all");
    errs_t e = {0};
    assert_int_equal(settings_set(table, N, &c, "out.producer.linger.ms", "5", collect, &e), 0);
    assert_int_equal(settings_set(table, N, &c, "out.producer.acks", "1", collect, &e), 0);
    assert_int_equal(c.props.n, 3);
    assert_string_equal(prop(&c, "linger.ms"), "5");
    assert_string_equal(prop(&c, "acks"), "1");
    const char *y = "out:\n  producer:\n    compression.type: lz4\n    sasl:\n      mechanism: PLAIN\n"
                    "    batch.size: [1]\n";
    assert_int_equal(settings_load_yaml_string(table, N, &c, "p.yaml", y, strlen(y), collect, &e), 1);
    assert_non_null(strstr(e.msgs[0], "p.yaml:6:"));
    assert_non_null(strstr(e.msgs[0], "out.producer: batch.size: expected a scalar value"));
    assert_string_equal(prop(&c, "compression.type"), "lz4");
    assert_string_equal(prop(&c, "sasl.mechanism"), "PLAIN");
    assert_string_equal(prop(&c, "linger.ms"), "5");
    /* the whole map as text replaces it; a pair without '=' is refused */
    assert_int_equal(settings_set(table, N, &c, "out.producer", "a=1,b=x=y", collect, &e), 0);
    assert_int_equal(c.props.n, 2);
    assert_string_equal(prop(&c, "b"), "x=y");
    e.n = 0;
    assert_int_equal(settings_set(table, N, &c, "out.producer", "novalue", collect, &e), -1);
    assert_non_null(strstr(e.msgs[0], "expected comma-separated key=value pairs"));
    /* a key under a non-map setting is still unknown */
    assert_int_equal(settings_set(table, N, &c, "out.encoding.x", "1", collect, &e), -1);
    settings_dispose(table, N, &c);
}

/* A check that refuses values starting with "bad". */
static int check_not_bad(const char *value, char *why, size_t why_len)
{
    if (strncmp(value, "bad", 3) != 0)
        return 0;
    snprintf(why, why_len, "%s: refused by the check", value);
    return -1;
}

typedef struct ccfg {
    char *file;
    char *other;
    setting_list_t ids;
} ccfg_t;

static const setting_t checked[] = {
    {"tls.file", SETTING_STRING, offsetof(ccfg_t, file), "", 0, 0, "file", NULL, check_not_bad},
    {"tls.other", SETTING_STRING, offsetof(ccfg_t, other), "", 0, 0, "other"},
    {"tls.ids", SETTING_LIST, offsetof(ccfg_t, ids), "", 0, 0, "ids"},
};
#define NC (sizeof(checked) / sizeof(checked[0]))

static void test_check_and_where(void **state)
{
    (void)state;
    ccfg_t c = {0};
    settings_defaults(checked, NC, &c); /* the empty default is not checked */
    assert_string_equal(settings_where(checked, NC, &c, "tls.file"), "");
    const char *y = "tls:\n  file: bad.pem\n  other: x\n  ids: [a, b]\n";
    errs_t e = {0};
    assert_int_equal(settings_load_yaml_string(checked, NC, &c, "c.yaml", y, strlen(y), collect, &e), 1);
    assert_string_equal(e.msgs[0], "c.yaml:2:9: tls.file: bad.pem: refused by the check (got \"bad.pem\")");
    assert_string_equal(c.file, ""); /* refused: the value before stays */
    assert_string_equal(settings_where(checked, NC, &c, "tls.file"), "");
    assert_string_equal(settings_where(checked, NC, &c, "tls.other"), "c.yaml:3:10: ");
    assert_string_equal(settings_where(checked, NC, &c, "tls.ids"), "c.yaml:4:9: ");
    assert_string_equal(settings_where(checked, NC, &c, "no.such"), "");
    y = "tls: {file: good.pem}\n";
    assert_int_equal(settings_load_yaml_string(checked, NC, &c, "d.yaml", y, strlen(y), collect, &e), 0);
    assert_string_equal(c.file, "good.pem");
    assert_string_equal(settings_where(checked, NC, &c, "tls.file"), "d.yaml:1:13: ");
    /* a flag wins and has no place in a file */
    assert_int_equal(settings_set(checked, NC, &c, "tls.file", "bad2", collect, &e), -1);
    assert_int_equal(settings_set(checked, NC, &c, "tls.file", "fine.pem", collect, &e), 0);
    assert_string_equal(settings_where(checked, NC, &c, "tls.file"), "");
    settings_dispose(checked, NC, &c);
    assert_string_equal(settings_where(checked, NC, &c, "tls.other"), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_yaml_ok),
        cmocka_unit_test(test_yaml_errors_have_positions),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_bad_directives_refused),
        cmocka_unit_test(test_flags_and_hostport),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_check_and_where),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
