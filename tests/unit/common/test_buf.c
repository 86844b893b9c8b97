/* common/buf.c: the Prometheus label-value escaper shared by the proxy's /stats/prometheus pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_prom_label_escapes_backslash_quote_newline(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_prom_label(&b, "a\"b\\c\nd", 7);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "a\\\"b\\\\c\\nd", 10);
    buf_dispose(&b);
}

static void test_prom_label_leaves_the_rest(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    /* tabs, UTF-8 and the '|' of Envoy cluster names pass as they are; the length bounds the input */
    static const char s[] = "outbound|80|v1|café\t東京XYZ";
    buf_append_prom_label(&b, s, sizeof s - 4);
    assert_int_equal(b.len, sizeof s - 4);
    assert_memory_equal(b.data, s, sizeof s - 4);
    buf_append_prom_label(&b, "", 0);
    assert_int_equal(b.len, sizeof s - 4);
    buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_label_escapes_backslash_quote_newline),
        cmocka_unit_test(test_prom_label_leaves_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
