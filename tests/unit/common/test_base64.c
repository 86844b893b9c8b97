/* Unit tests for common/base64: RFC 4648 vectors, strict and lenient decoding, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base64.h"

/* RFC 4648 section 10 */
static const struct {
    const char *raw, *text;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};
#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

static int decode(const char *text, enum base64_mode mode, uint8_t *out, size_t cap, size_t *n)
{
    return base64_decode(text, strlen(text), mode, out, cap, n);
}

static void test_encode(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VECTORS; i++) {
        size_t n = strlen(vectors[i].raw);
        char out[16];
        memset(out, '#', sizeof(out));
        assert_int_equal(base64_encoded_len(n), strlen(vectors[i].text));
        base64_encode((const uint8_t *)vectors[i].raw, n, out);
        assert_memory_equal(out, vectors[i].text, strlen(vectors[i].text));
        assert_int_equal(out[strlen(vectors[i].text)], '#'); /* no NUL written */
    }
    static const uint8_t high[] = {0xfb, 0xff, 0xfe};
    char out[4];
    base64_encode(high, 3, out);
    assert_memory_equal(out, "+//+", 4); /* the standard alphabet, never the URL one */
}

static void test_decode_vectors(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n;
    for (size_t i = 0; i < N_VECTORS; i++) {
        const char *text = vectors[i].text;
        size_t rawlen = strlen(vectors[i].raw);
        for (int mode = BASE64_STRICT; mode <= BASE64_LENIENT; mode++) {
            /* padded, and with the padding left off */
            assert_int_equal(decode(text, mode, out, sizeof(out), &n), 0);
            assert_int_equal(n, rawlen);
            assert_memory_equal(out, vectors[i].raw, rawlen);
            size_t len = strlen(text);
            while (len > 0 && text[len - 1] == '=')
                len--;
            n = 0;
            assert_int_equal(base64_decode(text, len, mode, out, sizeof(out), &n), 0);
            assert_int_equal(n, rawlen);
            assert_memory_equal(out, vectors[i].raw, rawlen);
        }
    }
}

static void test_decode_strict(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n;
    static const char *bad[] = {
        "Z",      /* a dangling character carries no whole byte */
        "Zm9vY",  /* the same after a full group */
        "Zg=",    /* padded, but not to a multiple of 4 */
        "Zg===",  /* too much padding */
        "Z===",   /* three '=' */
        "====",   /* padding only */
        "=",      /* padding only */
        "Z=g=",   /* '=' inside */
        "Zh==",   /* unused bits not zero: not canonical */
        "Zm9=",   /* the same with one '=' */
        "Zm9v-_", /* URL-safe alphabet */
        "Zm 9v",  /* white space */
        "Zm9v\n", /* a line break */
        "Zm9*",   /* not base64 at all */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 777;
        assert_int_equal(decode(bad[i], BASE64_STRICT, out, sizeof(out), &n), -1);
        assert_int_equal(n, 777); /* length untouched on failure */
    }
    assert_int_equal(decode("", BASE64_STRICT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(decode("+//+", BASE64_STRICT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[2], 0xfe);

    /* output bound: exactly cap bytes fit, one more does not */
    assert_int_equal(decode("Zm9vYmFy", BASE64_STRICT, out, 6, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(decode("Zm9vYmFy", BASE64_STRICT, out, 5, &n), -1);
    assert_int_equal(decode("Zg==", BASE64_STRICT, out, 0, &n), -1);
}

static void test_decode_lenient(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n;
    /* URL-safe characters, alone or mixed with the standard ones */
    assert_int_equal(decode("-__-", BASE64_LENIENT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(out[2], 0xfe);
    assert_int_equal(decode("+_/-", BASE64_LENIENT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[2], 0xfe);
    /* decoding stops at the first '=', whatever follows */
    assert_int_equal(decode("Zg==!!!", BASE64_LENIENT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'f');
    assert_int_equal(decode("Zg=", BASE64_LENIENT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(decode("=", BASE64_LENIENT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    /* dangling characters and unused bits are dropped */
    assert_int_equal(decode("Z", BASE64_LENIENT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(decode("Zh", BASE64_LENIENT, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'f');
    /* characters outside both alphabets before any '=' still fail */
    n = 777;
    assert_int_equal(decode("Zm9*", BASE64_LENIENT, out, sizeof(out), &n), -1);
    assert_int_equal(decode("Zm 9v", BASE64_LENIENT, out, sizeof(out), &n), -1);
    assert_int_equal(decode("Zm9v\n", BASE64_LENIENT, out, sizeof(out), &n), -1);
    assert_int_equal(n, 777);
    assert_int_equal(decode("Zm9vYmFy", BASE64_LENIENT, out, 5, &n), -1);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t raw[300], back[300];
    char text[400];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(raw); len += 1 + len / 8) {
        size_t tl = base64_encoded_len(len);
        base64_encode(raw, len, text);
        for (int mode = BASE64_STRICT; mode <= BASE64_LENIENT; mode++) {
            size_t n = 0;
            assert_true(base64_decoded_max(tl) >= len);
            assert_int_equal(base64_decode(text, tl, mode, back, len, &n), 0); /* cap = exact size */
            assert_int_equal(n, len);
            assert_memory_equal(raw, back, len);
        }
    }
    /* the bound covers unpadded text of every length */
    for (size_t len = 0; len < 12; len++)
        assert_true(base64_decoded_max(len) >= len * 6 / 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),        cmocka_unit_test(test_decode_vectors),
        cmocka_unit_test(test_decode_strict), cmocka_unit_test(test_decode_lenient),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
