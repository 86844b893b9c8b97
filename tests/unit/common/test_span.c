/* Unit tests for common/span (ids, kinds), common/arena and common/buf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "span.h"

static void test_ids(void **state)
{
    (void)state;
    uint64_t hi, lo, id;
    assert_int_equal(span_parse_trace_id("463ac35c9f6413ad48485a3953bb6124", 32, &hi, &lo), 0);
    assert_true(hi == 0x463ac35c9f6413adull && lo == 0x48485a3953bb6124ull);
    char out[33];
    assert_int_equal(span_format_trace_id(hi, lo, out), 32);
    assert_string_equal(out, "463ac35c9f6413ad48485a3953bb6124");
    assert_int_equal(span_parse_trace_id("abc", 3, &hi, &lo), 0);
    assert_true(hi == 0 && lo == 0xabc);
    assert_int_equal(span_format_trace_id(hi, lo, out), 16);
    assert_string_equal(out, "0000000000000abc");
    assert_int_equal(span_parse_trace_id("", 0, &hi, &lo), -1);
    assert_int_equal(span_parse_trace_id("0000000000000000", 16, &hi, &lo), -1);
    assert_int_equal(span_parse_trace_id("xyz", 3, &hi, &lo), -1);
    assert_int_equal(span_parse_trace_id("463ac35c9f6413ad48485a3953bb61240", 33, &hi, &lo), -1);
    assert_int_equal(span_parse_id("00000000000000aB", 16, &id), 0);
    assert_true(id == 0xab);
    assert_int_equal(span_parse_id("0", 1, &id), -1);
    uint8_t b[8];
    span_id_to_bytes(0x0102030405060708ull, b);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[7], 8);
    assert_true(span_id_from_bytes(b) == 0x0102030405060708ull);
}

static void test_kinds(void **state)
{
    (void)state;
    assert_string_equal(span_kind_name(SPAN_KIND_SERVER), "SERVER");
    assert_null(span_kind_name(SPAN_KIND_UNSPECIFIED));
    assert_int_equal(span_kind_parse("CONSUMER", 8), SPAN_KIND_CONSUMER);
    assert_int_equal(span_kind_parse("client", 6), -1);
}

static void test_arena_limit(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 10000);
    assert_non_null(arena_alloc(&a, 4000));
    assert_non_null(arena_alloc(&a, 4000));
    assert_null(arena_alloc(&a, 4000));
    assert_true(a.total <= 10000);
    arena_reset(&a);
    char *s = arena_strndup(&a, "hello", 5);
    assert_string_equal(s, "hello");
    arena_dispose(&a);
}

static void test_buf_json_escape(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_json_escaped(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\u0001");
    b.len = 0;
    buf_append_u64(&b, 18446744073709551615ull);
    buf_append_i64(&b, -42);
    assert_string_equal(b.data, "18446744073709551615-42");
    buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_arena_limit),
        cmocka_unit_test(test_buf_json_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
