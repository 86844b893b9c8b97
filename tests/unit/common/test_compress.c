/* Unit tests for common/compress: round trips, limits, bombs, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <zstd.h>

#include "compress.h"

static void fill(buf_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_append_char(b, (char)('a' + (i * 7 + i / 13) % 26));
}

static void round_trip(enum compress_codec codec)
{
    buf_t in = BUF_INIT, enc = BUF_INIT, out = BUF_INIT;
    fill(&in, 100000);
    assert_int_equal(compress_encode(codec, in.data, in.len, 3, &enc), 0);
    assert_true(enc.len < in.len);
    char err[128];
    assert_int_equal(compress_decode(codec, enc.data, enc.len, in.len, &out, err, sizeof(err)), COMPRESS_OK);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    buf_dispose(&in);
    buf_dispose(&enc);
    buf_dispose(&out);
}

static void test_round_trips(void **state)
{
    (void)state;
    round_trip(COMPRESS_GZIP);
    round_trip(COMPRESS_DEFLATE);
    round_trip(COMPRESS_ZSTD);
}

/* A 64 MiB run of zeros compresses to a few KiB: decoding must stop at the limit, not inflate it. */
static void bomb(enum compress_codec codec)
{
    size_t big = 64u << 20;
    char *zeros = calloc(1, big);
    buf_t enc = BUF_INIT, out = BUF_INIT;
    assert_int_equal(compress_encode(codec, zeros, big, 9, &enc), 0);
    free(zeros);
    assert_true(enc.len < big / 100);
    char err[128] = "";
    assert_int_equal(compress_decode(codec, enc.data, enc.len, 1 << 20, &out, err, sizeof(err)), COMPRESS_TOO_LARGE);
    assert_true(out.len <= 1 << 20);
    assert_true(out.cap <= (1 << 20) + 1);
    assert_non_null(strstr(err, "limit"));
    buf_dispose(&enc);
    buf_dispose(&out);
}

static void test_bombs_stop_at_limit(void **state)
{
    (void)state;
    bomb(COMPRESS_GZIP);
    bomb(COMPRESS_ZSTD);
}

static void test_malformed(void **state)
{
    (void)state;
    buf_t out = BUF_INIT, enc = BUF_INIT;
    char err[128];
    const char junk[] = "this is not compressed at all";
    assert_int_equal(compress_decode(COMPRESS_GZIP, junk, sizeof(junk), 1 << 20, &out, err, sizeof(err)),
                     COMPRESS_MALFORMED);
    out.len = 0;
    assert_int_equal(compress_decode(COMPRESS_ZSTD, junk, sizeof(junk), 1 << 20, &out, err, sizeof(err)),
                     COMPRESS_MALFORMED);
    /* truncated streams */
    buf_t in = BUF_INIT;
    fill(&in, 50000);
    assert_int_equal(compress_encode(COMPRESS_GZIP, in.data, in.len, 6, &enc), 0);
    out.len = 0;
    assert_int_equal(compress_decode(COMPRESS_GZIP, enc.data, enc.len / 2, 1 << 20, &out, err, sizeof(err)),
                     COMPRESS_MALFORMED);
    enc.len = 0;
    assert_int_equal(compress_encode(COMPRESS_ZSTD, in.data, in.len, 3, &enc), 0);
    out.len = 0;
    assert_int_equal(compress_decode(COMPRESS_ZSTD, enc.data, enc.len - 3, 1 << 20, &out, err, sizeof(err)),
                     COMPRESS_MALFORMED);
    buf_dispose(&in);
    buf_dispose(&enc);
    buf_dispose(&out);
}

static void test_identity_limit_and_names(void **state)
{
    (void)state;
    buf_t out = BUF_INIT;
    char err[64];
    assert_int_equal(compress_decode(COMPRESS_NONE, "abcdef", 6, 5, &out, err, sizeof(err)), COMPRESS_TOO_LARGE);
    assert_int_equal(compress_decode(COMPRESS_NONE, "abcdef", 6, 6, &out, err, sizeof(err)), COMPRESS_OK);
    assert_int_equal(compress_codec_parse(NULL), COMPRESS_NONE);
    assert_int_equal(compress_codec_parse("identity"), COMPRESS_NONE);
    assert_int_equal(compress_codec_parse("GZIP"), COMPRESS_GZIP);
    assert_int_equal(compress_codec_parse("zstd"), COMPRESS_ZSTD);
    assert_int_equal(compress_codec_parse("br"), -1);
    buf_dispose(&out);
}

static void test_concatenated_gzip_members(void **state)
{
    (void)state;
    buf_t enc = BUF_INIT, out = BUF_INIT;
    assert_int_equal(compress_encode(COMPRESS_GZIP, "hello ", 6, 6, &enc), 0);
    assert_int_equal(compress_encode(COMPRESS_GZIP, "world", 5, 6, &enc), 0);
    assert_int_equal(compress_decode(COMPRESS_GZIP, enc.data, enc.len, 100, &out, NULL, 0), COMPRESS_OK);
    assert_int_equal(out.len, 11);
    assert_memory_equal(out.data, "hello world", 11);
    buf_dispose(&enc);
    buf_dispose(&out);
}

/* zstd without a declared content size (streaming encoders): the streamed path. */
static void zstd_unsized(const buf_t *in, buf_t *enc)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_non_null(cc);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    buf_reserve(enc, ZSTD_compressBound(in->len));
    ZSTD_inBuffer ib = {in->data, in->len, 0};
    ZSTD_outBuffer ob = {enc->data + enc->len, enc->cap - enc->len - 1, 0};
    size_t left;
    do {
        left = ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end);
        assert_false(ZSTD_isError(left));
    } while (left != 0);
    enc->len += ob.pos;
    ZSTD_freeCCtx(cc);
    assert_true(ZSTD_getFrameContentSize(enc->data, enc->len) == ZSTD_CONTENTSIZE_UNKNOWN);
}

/* Sized single frames (one-shot path), unsized and multi-frame bodies (streamed), limits on each, reuse. */
static void test_zstd_paths(void **state)
{
    (void)state;
    buf_t in = BUF_INIT, enc = BUF_INIT, unsized = BUF_INIT, two = BUF_INIT, out = BUF_INIT;
    fill(&in, 70000);
    char err[128];
    assert_int_equal(compress_encode(COMPRESS_ZSTD, in.data, in.len, 3, &enc), 0);
    zstd_unsized(&in, &unsized);
    buf_append(&two, enc.data, enc.len);
    buf_append(&two, enc.data, enc.len);
    for (int round = 0; round < 3; round++) { /* the per-thread context is reused across calls */
        /* exactly at the limit, appended after earlier data */
        out.len = 0;
        buf_append(&out, "xy", 2);
        assert_int_equal(compress_decode(COMPRESS_ZSTD, enc.data, enc.len, in.len, &out, err, sizeof(err)),
                         COMPRESS_OK);
        assert_int_equal(out.len, in.len + 2);
        assert_memory_equal(out.data, "xy", 2);
        assert_memory_equal(out.data + 2, in.data, in.len);
        assert_int_equal(out.data[out.len], '\0');
        /* one byte over the limit: refused, no more than the limit allocated */
        buf_dispose(&out);
        assert_int_equal(compress_decode(COMPRESS_ZSTD, enc.data, enc.len, in.len - 1, &out, err, sizeof(err)),
                         COMPRESS_TOO_LARGE);
        assert_true(out.cap <= in.len);
        /* unsized frame: same output and limits */
        out.len = 0;
        assert_int_equal(compress_decode(COMPRESS_ZSTD, unsized.data, unsized.len, in.len, &out, err, sizeof(err)),
                         COMPRESS_OK);
        assert_int_equal(out.len, in.len);
        assert_memory_equal(out.data, in.data, in.len);
        out.len = 0;
        assert_int_equal(compress_decode(COMPRESS_ZSTD, unsized.data, unsized.len, in.len - 1, &out, err, sizeof(err)),
                         COMPRESS_TOO_LARGE);
        /* two concatenated frames */
        out.len = 0;
        assert_int_equal(compress_decode(COMPRESS_ZSTD, two.data, two.len, 2 * in.len, &out, err, sizeof(err)),
                         COMPRESS_OK);
        assert_int_equal(out.len, 2 * in.len);
        assert_memory_equal(out.data + in.len, in.data, in.len);
        out.len = 0;
        assert_int_equal(compress_decode(COMPRESS_ZSTD, two.data, two.len, 2 * in.len - 1, &out, err, sizeof(err)),
                         COMPRESS_TOO_LARGE);
        /* trailing garbage after a sized frame, and a corrupted sized frame */
        buf_t bad = BUF_INIT;
        buf_append(&bad, enc.data, enc.len);
        buf_append(&bad, "junk", 4);
        out.len = 0;
        assert_int_equal(compress_decode(COMPRESS_ZSTD, bad.data, bad.len, 1 << 20, &out, err, sizeof(err)),
                         COMPRESS_MALFORMED);
        bad.len = 0;
        buf_append(&bad, enc.data, enc.len);
        for (size_t i = enc.len / 2; i < enc.len / 2 + 16; i++)
            bad.data[i] ^= 0x5a;
        out.len = 0;
        assert_int_equal(compress_decode(COMPRESS_ZSTD, bad.data, bad.len, 1 << 20, &out, err, sizeof(err)),
                         COMPRESS_MALFORMED);
        buf_dispose(&bad);
    }
    buf_dispose(&in);
    buf_dispose(&enc);
    buf_dispose(&unsized);
    buf_dispose(&two);
    buf_dispose(&out);
}

/* Accept-Encoding as RFC 9110 reads it: a listed coding with q > 0, or `*` */
static void test_accepts(void **state)
{
    (void)state;
    assert_int_equal(compress_accepts(NULL, "gzip"), 0);
    assert_int_equal(compress_accepts("", "gzip"), 0);
    assert_int_equal(compress_accepts("gzip", "gzip"), 1);
    assert_int_equal(compress_accepts("identity, GZip;q=0.5", "gzip"), 1); /* case-insensitive */
    assert_int_equal(compress_accepts("gzip;q=0", "gzip"), 0);
    assert_int_equal(compress_accepts("gzip; q=0.0, *", "gzip"), 0);        /* named beats the wildcard */
    assert_int_equal(compress_accepts("br, *;q=0.1", "gzip"), 1);
    assert_int_equal(compress_accepts("*;q=0", "gzip"), 0);
    assert_int_equal(compress_accepts("x-gzip, gzipped", "gzip"), 0);      /* whole tokens only */
    assert_int_equal(compress_accepts("deflate,gzip", "gzip"), 1);
}

/* a body gzipped in parts is one gzip member that decodes to the parts joined */
static void test_gzip_stream(void **state)
{
    (void)state;
    gzip_stream_t *g = gzip_stream_new(1);
    assert_non_null(g);
    buf_t z = BUF_INIT, plain = BUF_INIT, back = BUF_INIT;
    char part[1000];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(part, sizeof(part), "istio_requests_total{source_workload=\"w%d\",response_code=\"200\"} %d\n", i, i * 7);
        buf_append(&plain, part, (size_t)n);
        assert_int_equal(gzip_stream_write(g, part, (size_t)n, 0, &z), 0);
    }
    assert_int_equal(gzip_stream_write(g, NULL, 0, 1, &z), 0);
    gzip_stream_free(g);
    assert_true(z.len < plain.len / 3);
    assert_int_equal(compress_decode(COMPRESS_GZIP, z.data, z.len, plain.len, &back, NULL, 0), COMPRESS_OK);
    assert_int_equal(back.len, plain.len);
    assert_memory_equal(back.data, plain.data, plain.len);
    /* parts of every size, small ones gathered and large ones passed through, still one member */
    g = gzip_stream_new(1);
    z.len = plain.len = back.len = 0;
    static const size_t sizes[] = {5, 100000, 7, 65536, 65535, 1, 200000, 3};
    uint32_t x = 12345;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t at = plain.len;
        buf_reserve(&plain, sizes[k]);
        for (size_t i = 0; i < sizes[k]; i++) {
            x = x * 1103515245u + 12345u;
            plain.data[at + i] = (char)('a' + (x >> 16) % 8); /* compressible, not trivially */
        }
        plain.len += sizes[k];
        assert_int_equal(gzip_stream_write(g, plain.data + at, sizes[k], 0, &z), 0);
    }
    assert_int_equal(gzip_stream_write(g, NULL, 0, 1, &z), 0);
    assert_int_equal(gzip_stream_write(g, "x", 1, 0, &z), -1); /* the stream is done */
    gzip_stream_free(g);
    assert_true(z.len < plain.len / 2);
    assert_int_equal(compress_decode(COMPRESS_GZIP, z.data, z.len, plain.len, &back, NULL, 0), COMPRESS_OK);
    assert_int_equal(back.len, plain.len);
    assert_memory_equal(back.data, plain.data, plain.len);
    /* an empty stream is a valid empty member */
    g = gzip_stream_new(1);
    z.len = back.len = 0;
    assert_int_equal(gzip_stream_write(g, "", 0, 1, &z), 0);
    gzip_stream_free(g);
    assert_int_equal(compress_decode(COMPRESS_GZIP, z.data, z.len, 10, &back, NULL, 0), COMPRESS_OK);
    assert_int_equal(back.len, 0);
    buf_dispose(&z);
    buf_dispose(&plain);
    buf_dispose(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_bombs_stop_at_limit),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_identity_limit_and_names),
        cmocka_unit_test(test_concatenated_gzip_members),
        cmocka_unit_test(test_zstd_paths),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_gzip_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
