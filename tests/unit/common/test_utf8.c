/*
 * Tests for common/utf8: Java-compatible lowercasing (ASCII, Latin-1,
 * Greek with the final sigma, Cyrillic, U+0130, sharp s), repair of
 * ill-formed UTF-8 as Java's decoder does it, the ASCII fast paths at every
 * offset, and the copy / no-copy contract of the arena functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

#define FFFD "\xef\xbf\xbd"

/* utf8_lower_to of in must be want (both NUL-terminated here), and lowercasing it again changes nothing. */
static void expect_lower(const char *in, const char *want)
{
    char out[256], again[256];
    size_t n = utf8_lower_to(out, in, strlen(in));
    assert_true(n < sizeof(out) && n <= UTF8_MAX_GROWTH * strlen(in));
    out[n] = '\0';
    if (strcmp(out, want) != 0)
        fail_msg("lower(\"%s\") = \"%s\", wanted \"%s\"", in, out, want);
    assert_int_equal(utf8_lower_to(NULL, in, strlen(in)), n);
    size_t m = utf8_lower_to(again, out, n);
    assert_int_equal(m, n);
    assert_memory_equal(again, out, n);
    assert_true(utf8_is_lower(out, n));
}

static void expect_repair(const char *in, size_t len, const char *want)
{
    char out[256];
    size_t n = utf8_repair_to(out, in, len);
    assert_true(n < sizeof(out) && n <= UTF8_MAX_GROWTH * len);
    out[n] = '\0';
    if (strcmp(out, want) != 0)
        fail_msg("repair of %zu bytes gave \"%s\", wanted \"%s\"", len, out, want);
    assert_int_equal(utf8_repair_to(NULL, in, len), n);
    assert_true(utf8_valid(out, n));
    assert_int_equal(utf8_valid(in, len), strcmp(in, want) == 0 && strlen(in) == len);
}

static void test_ascii(void **state)
{
    (void)state;
    expect_lower("", "");
    expect_lower("frontend", "frontend");
    expect_lower("Order-Service_V2 GET /API/Items?ID=7", "order-service_v2 get /api/items?id=7");
    expect_lower("@[`{AZaz09", "@[`{azaz09"); /* the neighbours of 'A'..'Z' stay */
    assert_true(utf8_is_lower("get /api/items", 14));
    assert_false(utf8_is_lower("get /api/Items", 14));
}

static void test_latin_cyrillic(void **state)
{
    (void)state;
    expect_lower("\xc3\x89mail-sender", "\xc3\xa9mail-sender"); /* Émail -> émail */
    expect_lower("\xc3\x9c"
                 "BERWEISUNG",
                 "\xc3\xbc"
                 "berweisung");                                                           /* ÜBERWEISUNG */
    expect_lower("\xc3\x80\xc3\x96\xc3\x98\xc3\x9e", "\xc3\xa0\xc3\xb6\xc3\xb8\xc3\xbe"); /* ÀÖØÞ */
    expect_lower("\xc3\x97", "\xc3\x97");                                                 /* × has no case */
    expect_lower("\xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90",
                 "\xd0\xbc\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0"); /* МОСКВА -> москва */
    expect_lower("\xd0\x80", "\xd1\x90");                             /* Ѐ -> ѐ */
    expect_lower("\xc7\x85", "\xc7\x86");                             /* titlecase ǅ -> ǆ */
    expect_lower("\xf0\x90\x90\x80", "\xf0\x90\x90\xa8");             /* Deseret, 4 bytes */
    expect_lower("\xe2\x84\xaa", "k");                                /* KELVIN SIGN -> k, as Java */
}

static void test_special_cases(void **state)
{
    (void)state;
    /* sharp s is lowercase already (full case folding would give "ss"; lowercasing does not) */
    expect_lower("STRA\xc3\x9f"
                 "E",
                 "stra\xc3\x9f"
                 "e");
    expect_lower("\xe1\xba\x9e", "\xc3\x9f"); /* capital sharp s */
    /* U+0130 becomes "i" + U+0307 (one byte longer), as Java writes it in every locale but tr/az/lt */
    expect_lower("\xc4\xb0STANBUL", "i\xcc\x87stanbul");
    expect_lower("\xc4\xb0", "i\xcc\x87");
    assert_false(utf8_is_lower("\xc4\xb0", 2));
}

static void test_final_sigma(void **state)
{
    (void)state;
    /* each result was checked against Java's "...".toLowerCase(Locale.ROOT) */
    expect_lower("\xce\xa3\xce\x8a\xce\xa3\xce\xa5\xce\xa6\xce\x9f\xce\xa3",
                 "\xcf\x83\xce\xaf\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x82"); /* ΣΊΣΥΦΟΣ -> σίσυφος */
    expect_lower("\xce\xa3", "\xcf\x83");                                     /* Σ alone */
    expect_lower("\xce\x91\xce\xa3", "\xce\xb1\xcf\x82");                     /* ΑΣ -> ας */
    expect_lower("\xce\x91\xce\xa3 \xce\x92\xce\xa3", "\xce\xb1\xcf\x82 \xce\xb2\xcf\x82");
    expect_lower("A \xce\xa3", "a \xcf\x83"); /* nothing cased before it in its word */
    expect_lower("1\xce\xa3", "1\xcf\x83");   /* a digit is not cased */
    expect_lower("A1\xce\xa3", "a1\xcf\x82"); /* digits stay in the word */
    expect_lower("\xce\x91\xce\xa3"
                 "1",
                 "\xce\xb1\xcf\x82"
                 "1");
    expect_lower("\xce\x91\xce\xa3"
                 "1\xce\x92",
                 "\xce\xb1\xcf\x83"
                 "1\xce\xb2");
    /* Java's words keep one dash, connector, apostrophe, quote or period between letters */
    expect_lower("\xce\x9f\xce\x94\xce\x9f\xce\xa3-\xce\xa3\xce\x95\xce\xa1\xce\x92\xce\x99\xce\xa3",
                 "\xce\xbf\xce\xb4\xce\xbf\xcf\x83-\xcf\x83\xce\xb5\xcf\x81\xce\xb2\xce\xb9\xcf\x82"); /* οδοσ-σερβις */
    expect_lower("\xce\x91\xce\xa3"
                 ".\xce\x92",
                 "\xce\xb1\xcf\x83"
                 ".\xce\xb2");
    expect_lower("\xce\x91\xce\xa3"
                 "_\xce\x92",
                 "\xce\xb1\xcf\x83"
                 "_\xce\xb2");
    expect_lower("\xce\x91\xce\xa3"
                 ":\xce\x92",
                 "\xce\xb1\xcf\x82"
                 ":\xce\xb2"); /* a colon ends it */
    expect_lower("\xce\x91\xce\xa3"
                 "/\xce\x92",
                 "\xce\xb1\xcf\x82"
                 "/\xce\xb2");
    expect_lower("\xce\x91\xce\xa3"
                 "--\xce\x92",
                 "\xce\xb1\xcf\x82"
                 "--\xce\xb2"); /* two in a row end it */
    expect_lower("\xce\x91\xce\xa3"
                 "-",
                 "\xce\xb1\xcf\x82"
                 "-");
    /* marks stay with their letter; a cased letter after Σ keeps it medial */
    expect_lower("\xce\x91\xce\xa3\xcc\x81", "\xce\xb1\xcf\x82\xcc\x81");
    expect_lower("\xce\x91\xce\xa3\xcc\x81\xce\x92", "\xce\xb1\xcf\x83\xcc\x81\xce\xb2");
    /* kanji are words of their own */
    expect_lower("\xce\x91\xce\xa3\xe6\xbc\xa2", "\xce\xb1\xcf\x82\xe6\xbc\xa2");
    /* an ill-formed byte ends the word */
    expect_lower("\xce\x91\xce\xa3\xff\xce\x92", "\xce\xb1\xcf\x82" FFFD "\xce\xb2");
    assert_false(utf8_is_lower("\xcf\x83\xce\xa3", 4));
    assert_true(utf8_is_lower("\xcf\x83\xcf\x82", 4));
}

static void test_repair(void **state)
{
    (void)state;
    expect_repair("plain", 5, "plain");
    expect_repair("\xc3\xa9t\xc3\xa9", 5, "\xc3\xa9t\xc3\xa9");
    expect_repair(FFFD, 3, FFFD);                             /* a real U+FFFD is valid */
    expect_repair("\xef\xbf\xbf", 3, "\xef\xbf\xbf");         /* noncharacters are valid */
    expect_repair("\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    expect_repair("a\xff"
                  "b",
                  3, "a" FFFD "b");                                     /* never a lead byte */
    expect_repair("\x80\x80", 2, FFFD FFFD);                            /* stray continuations: one each */
    expect_repair("\xc0\xaf", 2, FFFD FFFD);                            /* overlong '/' */
    expect_repair("\xe0\x80\xaf", 3, FFFD FFFD FFFD);                   /* overlong, 3 bytes */
    expect_repair("\xf0\x80\x80\xaf", 4, FFFD FFFD FFFD FFFD);          /* overlong, 4 bytes */
    expect_repair("\xed\xa0\x80", 3, FFFD);                             /* surrogate: one unit, as Java */
    expect_repair("\xed\xa0\x80\xed\xb0\x80", 6, FFFD FFFD);            /* a surrogate pair, CESU-style */
    expect_repair("\xed\x9f\xbf", 3, "\xed\x9f\xbf");                   /* U+D7FF is fine */
    expect_repair("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);          /* past U+10FFFF */
    expect_repair("\xf8\x88\x80\x80\x80", 5, FFFD FFFD FFFD FFFD FFFD); /* 5-byte form */
    expect_repair("\xe2\x82", 2, FFFD);                                 /* truncated at the end: one unit */
    expect_repair("\xe2\x82"
                  "A",
                  3, FFFD "A"); /* truncated before ASCII */
    expect_repair("\xf0\x9f\x98", 3, FFFD);
    expect_repair("\xc3", 1, FFFD);
    expect_repair("ok\xff\xc3\xa9\xe2\x82", 7, "ok" FFFD "\xc3\xa9" FFFD);
    /* lowercasing repairs the same way */
    expect_lower("A\xff"
                 "B\xed\xa0\x80"
                 "C\xc0\xaf",
                 "a" FFFD "b" FFFD "c" FFFD FFFD);
    assert_false(utf8_is_lower("a\xff", 2));
}

/* Whether utf8_lower (inline test, then the slow part) left s uncopied, after checking what it gave. */
static int lower_kept(arena_t *a, const char *in, size_t len, const char *want, size_t want_len)
{
    str_t s = {in, (uint32_t)len};
    assert_int_equal(utf8_lower(a, &s, 0), 0);
    assert_int_equal(s.len, want_len);
    assert_memory_equal(s.ptr, want, want_len);
    return s.ptr == in;
}

static int repair_kept(arena_t *a, const char *in, size_t len, size_t want_len)
{
    str_t s = {in, (uint32_t)len};
    assert_int_equal(utf8_repair(a, &s, 0), 0);
    assert_int_equal(s.len, want_len);
    assert_true(utf8_valid(s.ptr, s.len));
    return s.ptr == in;
}

/* The 8-byte scans and the inline tests must find a capital or a non-ASCII byte at any offset of any length. */
static void test_fast_path_offsets(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    for (size_t len = 1; len <= 40; len++) {
        char in[64], want[64], out[200];
        memset(in, 'x', len);
        assert_true(lower_kept(&a, in, len, in, len));
        assert_true(repair_kept(&a, in, len, len));
        for (size_t at = 0; at < len; at++) {
            memset(in, 'x', len);
            memcpy(want, in, len);
            in[at] = 'Q';
            want[at] = 'q';
            assert_int_equal(utf8_lower_to(out, in, len), len);
            assert_memory_equal(out, want, len);
            assert_false(utf8_is_lower(in, len));
            assert_true(utf8_valid(in, len));
            assert_false(lower_kept(&a, in, len, want, len));
            assert_true(repair_kept(&a, in, len, len));
            in[at] = (char)0xff;
            assert_false(utf8_valid(in, len));
            assert_false(utf8_is_lower(in, len));
            assert_int_equal(utf8_repair_to(out, in, len), len + 2);
            assert_memory_equal(out + at, FFFD, 3);
            assert_false(repair_kept(&a, in, len, len + 2));
            in[at] = '@'; /* and the bytes next to the capitals are not capitals */
            assert_true(lower_kept(&a, in, len, in, len));
            in[at] = '[';
            assert_true(lower_kept(&a, in, len, in, len));
            in[at] = 'x';
            assert_true(utf8_is_lower(in, len));
        }
    }
    arena_dispose(&a);
}

/* Every code point: lowercasing is idempotent (stored names are lowercased again before a merge or a query). */
static void test_all_code_points_idempotent(void **state)
{
    (void)state;
    for (int32_t cp = 1; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        char in[4], once[12], twice[36];
        size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n == 1) {
            in[0] = (char)cp;
        } else {
            for (size_t i = n - 1; i > 0; i--)
                in[i] = (char)(0x80 | ((cp >> (6 * (n - 1 - i))) & 0x3F));
            in[0] = (char)((0xF00 >> n) | (cp >> (6 * (n - 1))));
        }
        assert_true(utf8_valid(in, n));
        size_t a = utf8_lower_to(once, in, n);
        size_t b = utf8_lower_to(twice, once, a);
        if (a != b || memcmp(once, twice, a) != 0 || !utf8_is_lower(once, a))
            fail_msg("U+%04X: lowercasing twice differs from once", (unsigned)cp);
    }
}

static void test_arena_contract(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    const char *low = "already-lower";
    str_t s = {low, (uint32_t)strlen(low)};
    assert_int_equal(utf8_lower(&a, &s, 0), 0);
    assert_ptr_equal(s.ptr, low); /* not copied */
    assert_int_equal(utf8_lower(&a, &s, 1), 0);
    assert_ptr_not_equal(s.ptr, low); /* copied when asked */
    assert_string_equal(s.ptr, low);  /* and NUL-terminated */

    const char *greek = "\xcf\x83\xce\xaf\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x82";
    s = (str_t){greek, (uint32_t)strlen(greek)};
    assert_int_equal(utf8_lower(&a, &s, 0), 0);
    assert_ptr_equal(s.ptr, greek); /* lower-case non-ASCII is not copied either */

    s = (str_t){"\xc4\xb0Z", 3};
    assert_int_equal(utf8_lower(&a, &s, 0), 0);
    assert_int_equal(s.len, 4);
    assert_string_equal(s.ptr, "i\xcc\x87z");

    s = STR_NULL;
    assert_int_equal(utf8_lower(&a, &s, 1), 0);
    assert_null(s.ptr);
    assert_int_equal(utf8_repair(&a, &s, 0), 0);

    const char *ok = "caf\xc3\xa9";
    s = (str_t){ok, 5};
    assert_int_equal(utf8_repair(&a, &s, 0), 0);
    assert_ptr_equal(s.ptr, ok);
    s = (str_t){"caf\xc3", 4};
    assert_int_equal(utf8_repair(&a, &s, 0), 0);
    assert_string_equal(s.ptr, "caf" FFFD);
    assert_int_equal(s.len, 6);
    arena_dispose(&a);

    /* a full arena: -1, and *s is left as it was */
    arena_init(&a, 1);
    const char *up = "UPPER";
    s = (str_t){up, 5};
    assert_int_equal(utf8_lower(&a, &s, 0), -1);
    assert_ptr_equal(s.ptr, up);
    assert_int_equal(s.len, 5);
    s = (str_t){"\xff", 1};
    assert_int_equal(utf8_repair(&a, &s, 0), -1);
    assert_int_equal(s.len, 1);
    arena_dispose(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_latin_cyrillic),
        cmocka_unit_test(test_special_cases),
        cmocka_unit_test(test_final_sigma),
        cmocka_unit_test(test_repair),
        cmocka_unit_test(test_fast_path_offsets),
        cmocka_unit_test(test_all_code_points_idempotent),
        cmocka_unit_test(test_arena_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
