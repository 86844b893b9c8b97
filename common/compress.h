/*
 * compress: bounded decoding of request bodies (Content-Encoding gzip,
 * deflate, zstd) and zstd/gzip encoding for our own exporters.
 *
 * Decoding never trusts sizes declared by the peer beyond the limit: output
 * grows in steps as data is actually produced and stops with
 * COMPRESS_TOO_LARGE the moment it would pass max_out, so a small bomb
 * costs at most max_out bytes. (A single zstd frame that declares a size
 * of at most max_out gets that much reserved up front and is decoded in
 * one call; the frame fails if its content does not match the size.)
 *
 * Threading: reentrant; zstd decoding keeps one context per thread, freed
 * when the thread exits.
 */
#ifndef OUTRIDER_COMPRESS_H
#define OUTRIDER_COMPRESS_H

#include <stddef.h>

#include "buf.h"

enum compress_codec {
    COMPRESS_NONE = 0,
    COMPRESS_GZIP,
    COMPRESS_DEFLATE, /* zlib-wrapped, as HTTP's "deflate" */
    COMPRESS_ZSTD,
};

enum {
    COMPRESS_OK = 0,
    COMPRESS_MALFORMED = -1, /* not valid data for the codec */
    COMPRESS_TOO_LARGE = -2, /* output would pass max_out */
};

/*
 * Map a Content-Encoding header value (case-insensitive; NULL, "" and
 * "identity" mean none) to a codec. Returns -1 for anything else.
 */
int compress_codec_parse(const char *content_encoding);

/* Name of a codec as it appears in Content-Encoding. */
const char *compress_codec_name(enum compress_codec codec);

/*
 * Decode in[0..in_len) into out (appended; out may hold earlier data). At
 * most max_out bytes are produced. Returns COMPRESS_OK, COMPRESS_MALFORMED
 * or COMPRESS_TOO_LARGE; on error err (if not NULL) gets a short reason and
 * out may hold partial output, which the caller discards.
 */
int compress_decode(enum compress_codec codec, const void *in, size_t in_len, size_t max_out, buf_t *out, char *err,
                    size_t errlen);

/* Encode in into out with the codec at the given level (zstd 1..19, gzip 1..9). Returns 0 or -1. */
int compress_encode(enum compress_codec codec, const void *in, size_t in_len, int level, buf_t *out);

/*
 * 1 when an Accept-Encoding value accepts coding (RFC 9110: listed with a q
 * above 0, or absent and `*` accepted); NULL accepts nothing here.
 */
int compress_accepts(const char *accept_encoding, const char *coding);

/*
 * Streaming gzip (RFC 1952) for bodies written in parts (a /metrics scrape):
 * gzip_stream_write appends the compressed form of in[0..n) to out, and
 * with finish set ends the stream (trailer included); the stream is then
 * done. level is igzip's (ISA-L): 0, 1 or 3 (others mean 1); about 400 KiB
 * of state at level 1. Returns 0 or -1. gzip_stream_new aborts when out of
 * memory.
 */
typedef struct gzip_stream gzip_stream_t;
gzip_stream_t *gzip_stream_new(int level);
int gzip_stream_write(gzip_stream_t *g, const void *in, size_t n, int finish, buf_t *out);
void gzip_stream_free(gzip_stream_t *g);

#endif
