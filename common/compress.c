/*
 * compress: see compress.h. zlib for gzip/deflate, libzstd for zstd; both
 * decode into a buf_t that grows only as output appears. A zstd body that
 * is one frame declaring its size (within the limit) is decoded in one
 * call into an output reserved at exactly that size; anything else is
 * streamed. zstd contexts are kept per thread.
 */
#include "compress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>
#include <zstd.h>

#include "xalloc.h"

#define STEP_MIN 16384

int compress_codec_parse(const char *ce)
{
    if (ce == NULL || *ce == '\0' || strcasecmp(ce, "identity") == 0)
        return COMPRESS_NONE;
    if (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0)
        return COMPRESS_GZIP;
    if (strcasecmp(ce, "deflate") == 0)
        return COMPRESS_DEFLATE;
    if (strcasecmp(ce, "zstd") == 0)
        return COMPRESS_ZSTD;
    return -1;
}

const char *compress_codec_name(enum compress_codec codec)
{
    switch (codec) {
    case COMPRESS_GZIP: return "gzip";
    case COMPRESS_DEFLATE: return "deflate";
    case COMPRESS_ZSTD: return "zstd";
    default: return "identity";
    }
}

static void set_err(char *err, size_t errlen, const char *what)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", what);
}

/* Room for the next chunk: grow geometrically but never past the output limit. */
static size_t grow(buf_t *out, size_t base, size_t max_out)
{
    size_t produced = out->len - base;
    if (produced >= max_out)
        return 0;
    size_t step = produced < STEP_MIN ? STEP_MIN : produced;
    if (step > max_out - produced)
        step = max_out - produced;
    buf_reserve_exact(out, step);
    return step;
}

static int decode_zlib(int window_bits, const void *in, size_t in_len, size_t max_out, buf_t *out, char *err,
                       size_t errlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, window_bits) != Z_OK) {
        set_err(err, errlen, "inflateInit failed");
        return COMPRESS_MALFORMED;
    }
    size_t base = out->len;
    int rc = COMPRESS_OK;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)in_len;
    if (in_len > UINT32_MAX) {
        set_err(err, errlen, "compressed body too large");
        rc = COMPRESS_TOO_LARGE;
        goto done;
    }
    for (;;) {
        size_t room = grow(out, base, max_out);
        if (room == 0) {
            /* output limit reached: fine only if the stream has ended exactly here */
            set_err(err, errlen, "decompressed body exceeds the size limit");
            rc = COMPRESS_TOO_LARGE;
            goto done;
        }
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        int z = inflate(&zs, Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        if (z == Z_STREAM_END) {
            if (zs.avail_in == 0)
                break;
            /* concatenated gzip members (RFC 1952 2.2) */
            if (inflateReset(&zs) != Z_OK) {
                set_err(err, errlen, "invalid compressed data");
                rc = COMPRESS_MALFORMED;
                goto done;
            }
            continue;
        }
        if (z == Z_BUF_ERROR && zs.avail_in == 0) {
            set_err(err, errlen, "truncated compressed data");
            rc = COMPRESS_MALFORMED;
            goto done;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            set_err(err, errlen, zs.msg ? zs.msg : "invalid compressed data");
            rc = COMPRESS_MALFORMED;
            goto done;
        }
    }
done:
    inflateEnd(&zs);
    if (out->data != NULL)
        out->data[out->len] = '\0';
    return rc;
}

/*
 * One zstd context of each kind per thread, made on first use and reused:
 * making one per call costs its allocation and, worse, fresh pages for its
 * window buffers (ZSTD_compress makes and initialises a new one every time,
 * which for the proxy's exporter cost about as much as compressing). Both
 * are freed by one thread-exit destructor.
 */
typedef struct zctx {
    ZSTD_DCtx *d;
    ZSTD_CCtx *c;
} zctx_t;

static pthread_key_t zctx_key;
static pthread_once_t zctx_once = PTHREAD_ONCE_INIT;
static int zctx_key_ok;
static _Thread_local zctx_t tl_zctx;

static void zctx_free(void *p)
{
    zctx_t *z = p;
    ZSTD_freeDCtx(z->d);
    ZSTD_freeCCtx(z->c);
    z->d = NULL;
    z->c = NULL;
}

static void zctx_key_create(void)
{
    zctx_key_ok = pthread_key_create(&zctx_key, zctx_free) == 0;
}

/* Register this thread's contexts with the destructor (once a context exists). */
static void zctx_register(void)
{
    pthread_once(&zctx_once, zctx_key_create);
    if (zctx_key_ok)
        pthread_setspecific(zctx_key, &tl_zctx);
}

/* This thread's decompression context, reset for a new frame; NULL when out of memory. */
static ZSTD_DCtx *dctx_get(void)
{
    if (tl_zctx.d == NULL) {
        ZSTD_DCtx *d = ZSTD_createDCtx();
        if (d == NULL)
            return NULL;
        /* refuse frames that want a huge window: memory the peer does not get to pick */
        ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 24);
        tl_zctx.d = d;
        zctx_register();
    }
    ZSTD_DCtx_reset(tl_zctx.d, ZSTD_reset_session_only);
    return tl_zctx.d;
}

/* This thread's compression context; NULL when out of memory. */
static ZSTD_CCtx *cctx_get(void)
{
    if (tl_zctx.c == NULL) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        if (c == NULL)
            return NULL;
        tl_zctx.c = c;
        zctx_register();
    }
    return tl_zctx.c;
}

/*
 * Fast path: exactly one frame whose header declares a content size within
 * max_out. The output is reserved at that size and decoded in one call,
 * straight into it (no window buffer, no copy). zstd itself fails a frame
 * whose content does not match the declared size, as streaming would.
 * Returns 1 when the frame is not eligible (the caller streams).
 */
static int decode_zstd_sized(ZSTD_DCtx *dctx, const void *in, size_t in_len, size_t max_out, buf_t *out, char *err,
                             size_t errlen)
{
    unsigned long long size = ZSTD_getFrameContentSize(in, in_len);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR || size > max_out)
        return 1;
    size_t frame = ZSTD_findFrameCompressedSize(in, in_len);
    if (ZSTD_isError(frame) || frame != in_len)
        return 1;
    buf_reserve_exact(out, (size_t)size);
    size_t n = ZSTD_decompressDCtx(dctx, out->data + out->len, (size_t)size, in, in_len);
    if (ZSTD_isError(n)) {
        set_err(err, errlen, ZSTD_getErrorName(n));
        out->data[out->len] = '\0';
        return COMPRESS_MALFORMED;
    }
    out->len += n;
    out->data[out->len] = '\0';
    return COMPRESS_OK;
}

static int decode_zstd(const void *in, size_t in_len, size_t max_out, buf_t *out, char *err, size_t errlen)
{
    ZSTD_DCtx *dctx = dctx_get();
    if (dctx == NULL) {
        set_err(err, errlen, "out of memory");
        return COMPRESS_MALFORMED;
    }
    int rc = decode_zstd_sized(dctx, in, in_len, max_out, out, err, errlen);
    if (rc != 1)
        return rc;
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer ib = {in, in_len, 0};
    size_t base = out->len;
    size_t last = 1;
    rc = COMPRESS_OK;
    while (ib.pos < ib.size) {
        size_t room = grow(out, base, max_out);
        if (room == 0) {
            set_err(err, errlen, "decompressed body exceeds the size limit");
            rc = COMPRESS_TOO_LARGE;
            goto done;
        }
        ZSTD_outBuffer ob = {out->data + out->len, room, 0};
        last = ZSTD_decompressStream(dctx, &ob, &ib);
        out->len += ob.pos;
        if (ZSTD_isError(last)) {
            set_err(err, errlen, ZSTD_getErrorName(last));
            rc = COMPRESS_MALFORMED;
            goto done;
        }
        if (ob.pos == 0 && ib.pos == ib.size)
            break;
    }
    /* flush what the decoder still holds */
    while (last != 0) {
        size_t room = grow(out, base, max_out);
        if (room == 0) {
            set_err(err, errlen, "decompressed body exceeds the size limit");
            rc = COMPRESS_TOO_LARGE;
            goto done;
        }
        ZSTD_outBuffer ob = {out->data + out->len, room, 0};
        last = ZSTD_decompressStream(dctx, &ob, &ib);
        out->len += ob.pos;
        if (ZSTD_isError(last)) {
            set_err(err, errlen, ZSTD_getErrorName(last));
            rc = COMPRESS_MALFORMED;
            goto done;
        }
        if (ob.pos == 0 && last != 0) {
            set_err(err, errlen, "truncated zstd frame");
            rc = COMPRESS_MALFORMED;
            goto done;
        }
    }
done:
    /* a failed frame may leave the context mid-stream; the next use resets it */
    if (out->data != NULL)
        out->data[out->len] = '\0';
    return rc;
}

int compress_decode(enum compress_codec codec, const void *in, size_t in_len, size_t max_out, buf_t *out, char *err,
                    size_t errlen)
{
    switch (codec) {
    case COMPRESS_NONE:
        if (in_len > max_out) {
            set_err(err, errlen, "body exceeds the size limit");
            return COMPRESS_TOO_LARGE;
        }
        buf_append(out, in, in_len);
        return COMPRESS_OK;
    case COMPRESS_GZIP: return decode_zlib(16 + MAX_WBITS, in, in_len, max_out, out, err, errlen);
    case COMPRESS_DEFLATE: return decode_zlib(MAX_WBITS, in, in_len, max_out, out, err, errlen);
    case COMPRESS_ZSTD: return decode_zstd(in, in_len, max_out, out, err, errlen);
    }
    set_err(err, errlen, "unknown content encoding");
    return COMPRESS_MALFORMED;
}

int compress_encode(enum compress_codec codec, const void *in, size_t in_len, int level, buf_t *out)
{
    if (codec == COMPRESS_NONE) {
        buf_append(out, in, in_len);
        return 0;
    }
    if (codec == COMPRESS_ZSTD) {
        ZSTD_CCtx *c = cctx_get();
        if (c == NULL)
            return -1;
        size_t bound = ZSTD_compressBound(in_len);
        buf_reserve(out, bound);
        size_t n = ZSTD_compressCCtx(c, out->data + out->len, bound, in, in_len, level);
        if (ZSTD_isError(n))
            return -1;
        out->len += n;
        return 0;
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int wb = codec == COMPRESS_GZIP ? 16 + MAX_WBITS : MAX_WBITS;
    if (deflateInit2(&zs, level, Z_DEFLATED, wb, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t bound = deflateBound(&zs, (uLong)in_len) + 32;
    buf_reserve(out, bound);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)in_len;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)bound;
    int z = deflate(&zs, Z_FINISH);
    out->len += bound - zs.avail_out;
    deflateEnd(&zs);
    return z == Z_STREAM_END ? 0 : -1;
}

/*
 * Streaming gzip with ISA-L's igzip: its level 1 writes standard deflate
 * about twenty times faster than zlib's level 1 on /metrics text, and
 * smaller (docs/benchmarks.md, "/metrics at mesh scale"); one gzip member,
 * which every reader takes (curl 7.88 reads only the first of several).
 */
#define GZIP_STREAM_MIN_INPUT (64u << 10) /* igzip level 1 compresses small inputs poorly: gather to this */

struct gzip_stream {
    struct isal_zstream zs;
    uint8_t *level_buf;
    uint8_t *pend; /* input gathered until GZIP_STREAM_MIN_INPUT */
    size_t pend_len;
    int done;
};

gzip_stream_t *gzip_stream_new(int level)
{
    if (level < 0 || level > 3 || level == 2) /* igzip has levels 0, 1 and 3 */
        level = 1;
    gzip_stream_t *g = xcalloc(1, sizeof(*g));
    isal_deflate_init(&g->zs);
    g->zs.gzip_flag = IGZIP_GZIP;
    g->zs.level = (uint32_t)level;
    if (level > 0) {
        uint32_t size = level == 1 ? ISAL_DEF_LVL1_DEFAULT : ISAL_DEF_LVL3_DEFAULT;
        g->level_buf = xmalloc(size);
        g->zs.level_buf = g->level_buf;
        g->zs.level_buf_size = size;
    }
    g->pend = xmalloc(GZIP_STREAM_MIN_INPUT);
    return g;
}

/* Compress in[0..n) into out; finish ends the stream. */
static int deflate_part(gzip_stream_t *g, const void *in, size_t n, int finish, buf_t *out)
{
    g->zs.next_in = (uint8_t *)(uintptr_t)in;
    g->zs.avail_in = (uint32_t)n;
    g->zs.end_of_stream = finish ? 1 : 0;
    g->zs.flush = NO_FLUSH;
    for (;;) {
        /* deflate never grows data by more than its stored blocks' headers; 64 KiB spare covers the state */
        size_t room = (size_t)g->zs.avail_in + g->zs.avail_in / 8 + (64u << 10);
        buf_reserve(out, room);
        g->zs.next_out = (uint8_t *)out->data + out->len;
        g->zs.avail_out = (uint32_t)room;
        if (isal_deflate(&g->zs) != COMP_OK)
            return -1;
        out->len += room - g->zs.avail_out;
        if (finish && g->zs.internal_state.state == ZSTATE_END) {
            g->done = 1;
            return 0;
        }
        if (!finish && g->zs.avail_in == 0)
            return 0;
    }
}

int gzip_stream_write(gzip_stream_t *g, const void *in, size_t n, int finish, buf_t *out)
{
    if (g->done)
        return n == 0 ? 0 : -1;
    const uint8_t *p = in;
    while (n > 0) {
        if (g->pend_len == 0 && n >= GZIP_STREAM_MIN_INPUT) /* large parts go as they are, without a copy */
            return deflate_part(g, p, n, finish, out);
        size_t take = GZIP_STREAM_MIN_INPUT - g->pend_len;
        if (take > n)
            take = n;
        memcpy(g->pend + g->pend_len, p, take);
        g->pend_len += take;
        p += take;
        n -= take;
        if (g->pend_len == GZIP_STREAM_MIN_INPUT) {
            if (deflate_part(g, g->pend, g->pend_len, finish && n == 0, out) != 0)
                return -1;
            g->pend_len = 0;
            if (g->done)
                return 0;
        }
    }
    if (!finish)
        return 0;
    int rc = deflate_part(g, g->pend, g->pend_len, 1, out);
    g->pend_len = 0;
    return rc;
}

void gzip_stream_free(gzip_stream_t *g)
{
    if (g == NULL)
        return;
    free(g->level_buf);
    free(g->pend);
    free(g);
}

/* The q value of one Accept-Encoding item's parameters ("; q=0.5"); 1 when absent. */
static double item_q(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
            return strtod(p + 2, NULL);
        while (p < end && *p != ';')
            p++;
    }
    return 1.0;
}

int compress_accepts(const char *accept_encoding, const char *coding)
{
    if (accept_encoding == NULL)
        return 0;
    size_t clen = strlen(coding);
    double named = -1, star = -1;
    const char *p = accept_encoding;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *item = p, *end = p;
        while (*end != '\0' && *end != ',')
            end++;
        const char *name_end = item;
        while (name_end < end && *name_end != ';' && *name_end != ' ' && *name_end != '\t')
            name_end++;
        size_t n = (size_t)(name_end - item);
        if (n == clen && strncasecmp(item, coding, n) == 0)
            named = item_q(name_end, end);
        else if (n == 1 && item[0] == '*')
            star = item_q(name_end, end);
        p = end;
    }
    return named >= 0 ? named > 0 : star > 0;
}
