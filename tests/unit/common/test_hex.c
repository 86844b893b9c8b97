/* Unit tests for common/hex: digits in both cases, byte and number decoding, encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "hex.h"

static void test_digits(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        int want_any = c >= '0' && c <= '9'   ? c - '0'
                       : c >= 'a' && c <= 'f' ? c - 'a' + 10
                       : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                              : -1;
        int want_lower = c >= 'A' && c <= 'F' ? -1 : want_any;
        assert_int_equal(hex_digit((char)c, HEX_ANY_CASE), want_any);
        assert_int_equal(hex_digit((char)c, HEX_LOWER), want_lower);
    }
}

static void test_decode(void **state)
{
    (void)state;
    uint8_t out[8];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(hex_decode("00ff7a", 6, HEX_LOWER, out), 0);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(out[2], 0x7a);
    assert_int_equal(out[3], 0xee); /* nothing past len / 2 */

    assert_int_equal(hex_decode("DeadBEEF", 8, HEX_ANY_CASE, out), 0);
    static const uint8_t beef[] = {0xde, 0xad, 0xbe, 0xef};
    assert_memory_equal(out, beef, 4);
    assert_int_equal(hex_decode("DeadBEEF", 8, HEX_LOWER, out), -1);
    assert_int_equal(hex_decode("deadbeef", 8, HEX_LOWER, out), 0);
    assert_memory_equal(out, beef, 4);

    assert_int_equal(hex_decode("abc", 3, HEX_ANY_CASE, out), -1); /* odd length */
    assert_int_equal(hex_decode("0g", 2, HEX_ANY_CASE, out), -1);
    assert_int_equal(hex_decode("g0", 2, HEX_ANY_CASE, out), -1);
    assert_int_equal(hex_decode("0x12", 4, HEX_ANY_CASE, out), -1);
    assert_int_equal(hex_decode(" 1", 2, HEX_ANY_CASE, out), -1);
    assert_int_equal(hex_decode("1\0", 2, HEX_ANY_CASE, out), -1); /* an embedded NUL is a bad char */
    assert_int_equal(hex_decode("", 0, HEX_ANY_CASE, out), 0);
    /* only len chars are read: the rest of the string does not matter */
    assert_int_equal(hex_decode("12zz", 2, HEX_ANY_CASE, out), 0);
    assert_int_equal(out[0], 0x12);
}

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(hex_parse_u64("", 0, HEX_ANY_CASE, &v), 0);
    assert_true(v == 0);
    assert_int_equal(hex_parse_u64("ffffffffffffffff", 16, HEX_LOWER, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(hex_parse_u64("0000000000000aBc", 16, HEX_ANY_CASE, &v), 0);
    assert_true(v == 0xabc);
    assert_int_equal(hex_parse_u64("abc", 3, HEX_LOWER, &v), 0);
    assert_true(v == 0xabc);

    v = 7;
    assert_int_equal(hex_parse_u64("0000000000000aBc", 16, HEX_LOWER, &v), -1);
    assert_int_equal(hex_parse_u64("10000000000000000", 17, HEX_ANY_CASE, &v), -1); /* would overflow */
    assert_int_equal(hex_parse_u64("12-4", 4, HEX_ANY_CASE, &v), -1);
    assert_true(v == 7); /* untouched on failure */
}

static void test_encode(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[16];
    memset(out, '#', sizeof(out));
    hex_encode(in, sizeof(in), out);
    assert_memory_equal(out, "00017f80abff", 12);
    assert_int_equal(out[12], '#'); /* no NUL written */

    /* every byte survives encode then decode */
    uint8_t all[256], back[256];
    char text[512];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    hex_encode(all, sizeof(all), text);
    assert_int_equal(hex_decode(text, sizeof(text), HEX_LOWER, back), 0);
    assert_memory_equal(all, back, sizeof(all));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
