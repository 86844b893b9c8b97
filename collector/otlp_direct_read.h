/*
 * otlp_direct_read: reading OTLP protobuf straight from the wire, shared by
 * the two direct decoders (otlp_direct.c for traces, otlp_direct_logs.c for
 * logs); not a public API, included by those two files only. Cursors over
 * the body, the C-string view of strings (a NUL scan 16 bytes at a time),
 * per-request pools, numbers rendered once per request, AnyValue and
 * KeyValue, the outer messages' layout and the first pass that counts the
 * leaf messages (spans, log records). Everything reads the body and writes
 * nothing into it; a malformed field makes the caller decline the body, so
 * that the general decoder gives the error message. The functions that are
 * not inline are static and marked unused, so that each decoder gets its own
 * copy that the compiler may inline as it sees fit.
 */
#ifndef OUTRIDER_OTLP_DIRECT_READ_H
#define OUTRIDER_OTLP_DIRECT_READ_H

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "otlp_internal.h"
#include "otlp_wire.h"

#define DR_FN static __attribute__((unused))

enum {
    D_OK = 0,
    D_FATAL = -1,              /* the arena is full; res->error says so */
    D_DECLINE = OTLP_DECLINED, /* the whole body goes to the general decoder */
    D_HAND = 2,                /* valid but unusual: this message goes to otlp_wire on its own */
};

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

#define K(num, wt) ((uint32_t)(num) << 3 | (wt))

#define POOL_FIRST_BYTES 8192
#define POOL_MAX_CHUNK (1u << 20)
#define TEXT_CHUNK 4096

/* Per-request space for one kind of element (tags, annotations), kept contiguous per span. */
typedef struct pool {
    char *base; /* first element of the span being read */
    char *cur;  /* next free byte */
    char *end;
    size_t chunk; /* bytes of the next chunk */
} pool_t;

/* State of one direct decode: what the shared reading needs, then each signal's own part. */
typedef struct dx {
    dctx_t *c;
    const uint8_t *body_end;   /* words may be read up to here */
    uint32_t cut;              /* strings longer than this are cut: lim.max_attribute_value_len, or UINT32_MAX for 0 */
    const char *why;           /* reason for declining */
    size_t n_items, max_items; /* leaf messages (spans, log records) met / counted by the first pass */
    pool_t tags;
    char *txt, *txt_end; /* space for rendered numbers */
    struct {
        int64_t v;
        str_t s; /* ptr NULL: empty slot */
    } icache[16];
    /* traces (otlp_direct.c) */
    otlp_direct_stats_t *stats;
    rctx_t rc;
    pool_t anns;
    /* logs (otlp_direct_logs.c) */
    otlp_logs_direct_stats_t *lstats;
    str_t service, scope; /* of the ResourceLogs and ScopeLogs being read */
} dx_t;

/* Start x for a decode of [data, end) by c with max_items leaf messages counted. */
static inline void dx_init(dx_t *x, dctx_t *c, const uint8_t *end, size_t max_items)
{
    static char none[1]; /* empty pools and text space until first used (pointer differences stay defined) */
    memset(x, 0, sizeof(*x));
    x->c = c;
    x->body_end = end;
    x->cut = c->lim.max_attribute_value_len != 0 ? c->lim.max_attribute_value_len : UINT32_MAX;
    x->max_items = max_items;
    x->tags = (pool_t){none, none, none, POOL_FIRST_BYTES};
    x->anns = (pool_t){none, none, none, POOL_FIRST_BYTES / 4};
    x->txt = x->txt_end = none;
}

DR_FN int fatal(dx_t *x)
{
    otlp_fail_oom(x->c);
    return D_FATAL;
}

DR_FN int decline(dx_t *x, const char *why)
{
    if (x->why == NULL)
        x->why = why;
    return D_DECLINE;
}

/* ------------------------------------------------------------------ */
/* reading (no error messages: a malformed body is declined)           */

/* Tag at *pp (< end): its key (number << 3 | wire type), or 0 when malformed. */
static inline uint32_t tag_at(const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    uint32_t key = *p;
    if (key >= 8 && key < 0x80) {
        *pp = p + 1;
        return key;
    }
    int n = otlp_pb_tag(p, end, &key);
    if (n < 0)
        return 0;
    *pp = p + n;
    return key;
}

/*
 * The length prefix at p (5 readable bytes) when it takes exactly five
 * bytes, how the proxy's encoders write the lengths they fill in
 * afterwards; SIZE_MAX when it does not, or exceeds otlp_pb_len's bound.
 */
static inline size_t len5(const uint8_t *p)
{
    uint32_t w = otlp_pb_ld32(p);
    if (p[4] >= 0x80 || (w & 0x80808080u) != 0x80808080u)
        return SIZE_MAX;
    uint64_t v = (w & 0x7f) | ((w >> 1) & (0x7fu << 7)) | ((w >> 2) & (0x7fu << 14)) | ((w >> 3) & (0x7fu << 21)) |
                 (uint64_t)p[4] << 28;
    return v > 2147483647u ? SIZE_MAX : (size_t)v;
}

/* A length prefix of 3 to 5 bytes, or one at the very end: (length << 3 | prefix bytes), 0 when malformed. */
DR_FN uint64_t len_slow(const uint8_t *p, const uint8_t *end)
{
    size_t v5;
    if (end - p >= 5 && (v5 = len5(p)) != SIZE_MAX)
        return v5 > (size_t)(end - p - 5) ? 0 : (uint64_t)v5 << 3 | 5;
    size_t n;
    int k = otlp_pb_len(p, end, &n);
    return k < 0 ? 0 : (uint64_t)n << 3 | (uint64_t)k;
}

/*
 * Length-delimited payload at *pp into [*s, *s + *n); -1 when malformed.
 * (Cursors are only ever passed to inline functions by address, so that
 * they stay in registers.) With OTLP_DIRECT_LEN5 defined to 1 before this
 * header, five-byte prefixes are read inline too: the logs decoder, whose
 * input is mostly the proxy's, wants that; the trace decoder keeps len_at
 * small, which leaves more of it inlined elsewhere.
 */
static inline int len_at(const uint8_t **pp, const uint8_t *end, const uint8_t **s, size_t *n)
{
    const uint8_t *p = *pp;
    size_t room = (size_t)(end - p);
    size_t v, k = 1;
    if (room >= 2 && p[0] < 0x80) {
        v = p[0];
    } else if (room >= 3 && p[1] < 0x80) {
        v = (size_t)(p[0] & 0x7f) | (size_t)p[1] << 7;
        k = 2;
#if OTLP_DIRECT_LEN5
    } else if (room >= 5 && (v = len5(p)) != SIZE_MAX) {
        k = 5;
#endif
    } else {
        uint64_t r = len_slow(p, end);
        if (r == 0)
            return -1;
        v = (size_t)(r >> 3);
        k = (size_t)(r & 7);
    }
    if (v > room - k)
        return -1;
    *n = v;
    *s = p + k;
    *pp = p + k + v;
    return 0;
}

static inline int varint_at(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    int k = otlp_pb_varint(*pp, end, v);
    if (k < 0)
        return -1;
    *pp += k;
    return 0;
}

static inline int fixed_at(const uint8_t **pp, const uint8_t *end, size_t w, const uint8_t **at)
{
    if ((size_t)(end - *pp) < w)
        return -1;
    *at = *pp;
    *pp += w;
    return 0;
}

/* Past the field of this key's wire type at p, or NULL when malformed (groups and wire types 6 and 7 are). */
DR_FN const uint8_t *skip_field(const uint8_t *p, const uint8_t *end, uint32_t key)
{
    uint64_t v;
    const uint8_t *s;
    size_t n;
    int rc;
    switch (key & 7) {
    case WT_VARINT: rc = varint_at(&p, end, &v); break;
    case WT_I64: rc = fixed_at(&p, end, 8, &s); break;
    case WT_LEN: rc = len_at(&p, end, &s, &n); break;
    case WT_I32: rc = fixed_at(&p, end, 4, &s); break;
    default: rc = -1; break;
    }
    return rc == 0 ? p : NULL;
}

static inline int skip_at(const uint8_t **pp, const uint8_t *end, uint32_t key)
{
    const uint8_t *q = skip_field(*pp, end, key);
    if (q == NULL)
        return -1;
    *pp = q;
    return 0;
}

/*
 * A field the message does not know (field number above last) is skipped;
 * a known one that reached here has the wrong wire type, and key 0 is a
 * malformed tag: both decline.
 */
static inline int other_field(const uint8_t **pp, const uint8_t *end, uint32_t key, uint32_t last)
{
    if (key == 0 || (key >> 3) <= last || skip_at(pp, end, key) != 0)
        return D_DECLINE;
    return D_OK;
}

/*
 * Length of the C-string view of the n bytes at s: n, or the offset of the
 * first NUL. Unless high is NULL, *high is or-ed with a non-zero value
 * when one of the bytes is >= 0x80 (then the string may need a UTF-8
 * repair; without one it cannot).
 */
static inline uint32_t zlen(const dx_t *x, const uint8_t *s, size_t n, unsigned *high)
{
#if defined(__SSE2__)
    if ((size_t)(x->body_end - s) >= n + 15) {
        /* 16 bytes at a time; what lies past the string is still the body, masked out in the last chunk */
        const __m128i zero = _mm_setzero_si128();
        unsigned h = 0, m = 0;
        size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            if (high != NULL)
                h |= (unsigned)_mm_movemask_epi8(v);
            if ((m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero))) != 0)
                break;
        }
        if (i < n && m == 0) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            unsigned keep = (1u << (n - i)) - 1;
            if (high != NULL)
                h |= (unsigned)_mm_movemask_epi8(v) & keep;
            m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) & keep;
        }
        if (high != NULL)
            *high |= h;
        return m != 0 ? (uint32_t)(i + (size_t)__builtin_ctz(m)) : (uint32_t)n;
    }
#else
    (void)x;
#endif
    if (high != NULL)
        *high |= 1;
    const uint8_t *z = memchr(s, 0, n);
    return (uint32_t)(z != NULL ? (size_t)(z - s) : n);
}

/* Non-zero when one of the bytes of v is 0. */
static inline uint64_t has_nul64(uint64_t v)
{
    return (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
}

/*
 * 1 when the n bytes at s hold no NUL. Reads only those bytes: the loads
 * overlap instead of running past the end (16 bytes at a time, the last
 * chunk ending at s + n; 8 or 4 for short strings).
 */
static inline int nul_free(const uint8_t *s, size_t n)
{
    if (n >= 16) {
#if defined(__SSE2__)
        const __m128i zero = _mm_setzero_si128();
        __m128i z = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + n - 16)), zero);
        for (size_t i = 0; i + 16 < n; i += 16)
            z = _mm_or_si128(z, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + i)), zero));
        return _mm_movemask_epi8(z) == 0;
#else
        uint64_t z = has_nul64(otlp_pb_ld64(s + n - 8));
        for (size_t i = 0; i + 8 < n; i += 8)
            z |= has_nul64(otlp_pb_ld64(s + i));
        return z == 0;
#endif
    }
    if (n >= 8)
        return (has_nul64(otlp_pb_ld64(s)) | has_nul64(otlp_pb_ld64(s + n - 8))) == 0;
    if (n >= 4)
        return has_nul64((uint64_t)otlp_pb_ld32(s) << 32 | otlp_pb_ld32(s + n - 4)) == 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == 0)
            return 0;
    return 1;
}

static inline str_t zstr(const dx_t *x, const uint8_t *s, size_t n, unsigned *high)
{
    return (str_t){(const char *)s, zlen(x, s, n, high)};
}

/* zstr for strings that are not repaired here (names are lowercased, which repairs; the shared steps repair the rest).
 */
static inline str_t zstr_plain(const dx_t *x, const uint8_t *s, size_t n)
{
    return zstr(x, s, n, NULL);
}

/* 1 when the n bytes at s hold no NUL (then every string inside is its own C-string view). */
static inline int no_nul(const dx_t *x, const uint8_t *s, size_t n, unsigned *high)
{
    return zlen(x, s, n, high) == n;
}

/* A string field's value as the mapping takes it: its C-string view, cut to the value limit. */
static inline str_t cut(const dx_t *x, str_t v)
{
    if (v.len > x->cut)
        return otlp_str(x->c, v.ptr, v.len);
    return v;
}

/* ------------------------------------------------------------------ */
/* pools and rendering                                                 */

/* Room for need more bytes at pl->cur; the span's elements so far move along. -1 when the arena is full. */
DR_FN int pool_grow(dx_t *x, pool_t *pl, size_t need)
{
    size_t have = (size_t)(pl->cur - pl->base);
    size_t size = pl->chunk;
    while (size < 2 * (have + need))
        size *= 2;
    char *m = otlp_alloc(x->c, size);
    if (m == NULL)
        return -1;
    if (have > 0)
        memcpy(m, pl->base, have);
    pl->base = m;
    pl->cur = m + have;
    pl->end = m + size;
    if (pl->chunk < POOL_MAX_CHUNK)
        pl->chunk = size * 2;
    return 0;
}

static inline void *pool_push(dx_t *x, pool_t *pl, size_t esz)
{
    if ((size_t)(pl->end - pl->cur) < esz && pool_grow(x, pl, esz) != 0)
        return NULL;
    void *e = pl->cur;
    pl->cur += esz;
    return e;
}

/* The elements of the span just read, now kept: the next span starts after them. */
static inline void pool_commit(pool_t *pl)
{
    pl->base = pl->cur;
}

static inline void pool_drop(pool_t *pl)
{
    pl->cur = pl->base;
}

/* Decimal text of v into the request's text space (a miss of render_int's cache, slot h). */
DR_FN int render_int_miss(dx_t *x, int64_t v, str_t *out, unsigned h)
{
    if (x->txt_end - x->txt < 24) {
        x->txt = otlp_alloc(x->c, TEXT_CHUNK);
        if (x->txt == NULL)
            return -1;
        x->txt_end = x->txt + TEXT_CHUNK;
    }
    size_t n = otlp_fmt_i64(v, x->txt);
    *out = otlp_str(x->c, x->txt, n);
    x->txt += n;
    x->icache[h].v = v;
    x->icache[h].s = *out;
    return 0;
}

/* Decimal text of v, rendered once per request and value (see the module comment); -1 when the arena is full. */
static inline int render_int(dx_t *x, int64_t v, str_t *out)
{
    unsigned h = (unsigned)((uint64_t)v ^ ((uint64_t)v >> 7)) & 15;
    if (x->icache[h].s.ptr != NULL && x->icache[h].v == v) {
        *out = x->icache[h].s;
        return 0;
    }
    return render_int_miss(x, v, out, h);
}

static inline int render_value(dx_t *x, const otlp_val_t *v, str_t *out)
{
    if (v->kind == AV(STRING_VALUE)) {
        *out = cut(x, v->u.str);
        return 0;
    }
    if (v->kind == AV(INT_VALUE))
        return render_int(x, v->u.i, out);
    otlp_val_t other = *v;
    return otlp_render_val(x->c, &other, out);
}

/* ------------------------------------------------------------------ */
/* common.v1                                                           */

/* An AnyValue [p, end): D_OK, D_DECLINE, or D_HAND for an array or kvlist. */
DR_FN int parse_any(const dx_t *x, const uint8_t *p, const uint8_t *end, otlp_val_t *v)
{
    v->kind = AV(_NOT_SET);
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        switch (key) {
        case K(1, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            v->kind = AV(STRING_VALUE);
            v->u.str = zstr_plain(x, s, n);
            break;
        case K(2, WT_VARINT):
        case K(2, WT_I64):
        case K(2, WT_LEN):
        case K(2, WT_I32): /* protobuf-c takes a bool in any wire type */
            s = p;
            if (skip_at(&p, end, key) != 0)
                return D_DECLINE;
            v->kind = AV(BOOL_VALUE);
            v->u.b = otlp_pb_raw_bool(s, p);
            break;
        case K(3, WT_VARINT):
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            v->kind = AV(INT_VALUE);
            v->u.i = (int64_t)u;
            break;
        case K(4, WT_I64):
            if (fixed_at(&p, end, 8, &s) != 0)
                return D_DECLINE;
            u = otlp_pb_ld64(s);
            v->kind = AV(DOUBLE_VALUE);
            memcpy(&v->u.d, &u, sizeof(u));
            break;
        case K(5, WT_LEN):
        case K(6, WT_LEN): return D_HAND;
        case K(7, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            v->kind = AV(BYTES_VALUE);
            v->u.bytes.data = n > 0 ? (uint8_t *)s : NULL;
            v->u.bytes.len = n;
            break;
        default:
            if (other_field(&p, end, key, 7) != D_OK)
                return D_DECLINE;
        }
    }
    return D_OK;
}

/* A KeyValue [p, end): D_OK, D_DECLINE, or D_HAND (its value given twice, or not a scalar). */
DR_FN int parse_kv(const dx_t *x, const uint8_t *p, const uint8_t *end, otlp_kv_t *kv)
{
    kv->key = (str_t){"", 0};
    kv->val.kind = OTLP_VAL_ABSENT;
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        if (key == K(1, WT_LEN)) {
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            kv->key = zstr_plain(x, s, n);
        } else if (key == K(2, WT_LEN)) {
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            if (kv->val.kind != OTLP_VAL_ABSENT)
                return D_HAND;
            int rc = parse_any(x, s, s + n, &kv->val);
            if (rc != D_OK)
                return rc;
        } else if (other_field(&p, end, key, 2) != D_OK) {
            return D_DECLINE;
        }
    }
    return D_OK;
}

/*
 * The usual encoding of a KeyValue: key, then value, each once and with
 * a one-byte length, the value a string or an int alone. Returns 1 with
 * *kv filled when [p, e) is exactly that (*high non-zero when the key or
 * value has a byte >= 0x80); 0 leaves it to parse_kv.
 */
static inline int kv_usual(const dx_t *x, const uint8_t *p, const uint8_t *e, otlp_kv_t *kv, unsigned *high)
{
    size_t rem = (size_t)(e - p);
    if (rem < 6 || p[0] != K(1, WT_LEN) || p[1] >= 0x80 || p[1] > rem - 6)
        return 0;
    size_t kl = p[1];
    const uint8_t *q = p + 2 + kl; /* the value field */
    size_t vl = rem - kl - 4;      /* what its length must be: at least 2 */
    if (q[0] != K(2, WT_LEN) || q[1] != vl || vl >= 0x80)
        return 0;
    const uint8_t *v = q + 2;
    if (v[0] == K(1, WT_LEN) && v[1] == vl - 2) {
        kv->val.kind = AV(STRING_VALUE);
        if (no_nul(x, p + 2, rem - 2, high)) { /* key, value tags and string at once */
            kv->key = (str_t){(const char *)p + 2, (uint32_t)kl};
            kv->val.u.str = (str_t){(const char *)v + 2, (uint32_t)(vl - 2)};
            return 1;
        }
        kv->val.u.str = zstr(x, v + 2, vl - 2, high);
    } else if (v[0] == K(3, WT_VARINT)) {
        uint64_t u = 0;
        if (otlp_pb_varint(v + 1, e, &u) != (int)vl - 1)
            return 0;
        kv->val.kind = AV(INT_VALUE);
        kv->val.u.i = (int64_t)u;
    } else {
        return 0;
    }
    kv->key = zstr(x, p + 2, kl, high);
    return 1;
}

/*
 * ResourceSpans and ScopeSpans (and ResourceLogs and ScopeLogs) are laid
 * out alike: field 1 is the message that applies to the rest (Resource or
 * InstrumentationScope), field 2 repeats (ScopeSpans or Span, ScopeLogs or
 * LogRecord), field 3 is schema_url.
 */
typedef struct parts {
    const uint8_t *p, *end;
    int have_head, have_parts;
} parts_t;

enum { PART_END = 0, PART_HEAD = 1, PART_PART = 2, PART_MALFORMED = -1, PART_HEAD_LATE = -2 };

/*
 * The next field 1 or 2 with its payload (field 3 and unknown ones are
 * skipped). The head must come once and before the parts (protobuf-c
 * would merge a second one into what came before): PART_HEAD_LATE else.
 */
static inline int next_part(parts_t *it, const uint8_t **s, size_t *n)
{
    while (it->p < it->end) {
        uint32_t key = tag_at(&it->p, it->end);
        if (key != K(1, WT_LEN) && key != K(2, WT_LEN) && key != K(3, WT_LEN)) {
            if (other_field(&it->p, it->end, key, 3) != D_OK)
                return PART_MALFORMED;
            continue;
        }
        if (len_at(&it->p, it->end, s, n) != 0)
            return PART_MALFORMED;
        if (key == K(2, WT_LEN)) {
            it->have_parts = 1;
            return PART_PART;
        }
        if (key == K(1, WT_LEN)) {
            if (it->have_head || it->have_parts)
                return PART_HEAD_LATE;
            it->have_head = 1;
            return PART_HEAD;
        }
    }
    return PART_END;
}

/* What the loop over a ResourceSpans or ScopeSpans ended with. */
static inline int parts_done(dx_t *x, int rc, int part, const char *late)
{
    if (rc != D_OK)
        return rc;
    return part == PART_END ? D_OK : part == PART_HEAD_LATE ? decline(x, late) : D_DECLINE;
}

/*
 * An InstrumentationScope's name and version, as slices of the body (its
 * attributes are checked, not mapped): D_OK, D_DECLINE, or D_HAND.
 */
DR_FN int read_scope_fields(const dx_t *x, const uint8_t *p, const uint8_t *end, str_t *name, str_t *version)
{
    *name = *version = (str_t){"", 0};
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        otlp_kv_t kv;
        int rc;
        switch (key) {
        case K(1, WT_LEN):
        case K(2, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            *(key == K(1, WT_LEN) ? name : version) = zstr_plain(x, s, n);
            break;
        case K(3, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            if ((rc = parse_kv(x, s, s + n, &kv)) != D_OK)
                return rc;
            break;
        case K(4, WT_VARINT):
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            break;
        default:
            if (other_field(&p, end, key, 4) != D_OK)
                return D_DECLINE;
        }
    }
    return D_OK;
}

typedef int (*dx_msg_fn)(dx_t *x, const uint8_t *p, const uint8_t *end);
typedef int (*dx_head_fn)(dx_t *x, const uint8_t *p, const uint8_t *end, int resource);

/*
 * The loop over a ResourceSpans or ScopeSpans (ResourceLogs, ScopeLogs),
 * started with rc: each part to part, the head (the Resource when resource
 * is 1, else the InstrumentationScope) to head; late names a head that came
 * twice or after the parts.
 */
static inline __attribute__((always_inline)) int walk_parts(dx_t *x, const uint8_t *p, const uint8_t *end, int rc,
                                                            dx_msg_fn part, dx_head_fn head, int resource,
                                                            const char *late)
{
    parts_t it = {p, end, 0, 0};
    const uint8_t *s;
    size_t n;
    int got = PART_END;
    while (rc == D_OK && (got = next_part(&it, &s, &n)) > 0)
        rc = got == PART_PART ? part(x, s, s + n) : head(x, s, s + n, resource);
    return parts_done(x, rc, got, late);
}

/* Number of fields with this key in the message [p, end), checking its framing; -1 when malformed. */
DR_FN int count_key(const uint8_t *p, const uint8_t *end, uint32_t want, size_t *count)
{
    size_t n = 0;
    const uint8_t *s;
    size_t len;
    while (p < end) {
        if (*p == want && want < 0x80) { /* the usual case, without the general tag and skip */
            p++;
            if (len_at(&p, end, &s, &len) != 0)
                return -1;
            n++;
            continue;
        }
        uint32_t key = tag_at(&p, end);
        if (key == 0 || skip_at(&p, end, key) != 0)
            return -1;
        n += key == want;
    }
    *count = n;
    return 0;
}

/*
 * First pass: the leaf messages of a request (field 2 of field 2 of field 1:
 * the spans of ExportTraceServiceRequest, the log records of
 * ExportLogsServiceRequest), as the struct mappings count them, checking
 * the framing of the outer messages; -1 when malformed.
 */
DR_FN int count_leaves(const uint8_t *p, const uint8_t *end, size_t *total)
{
    *total = 0;
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *rs;
        size_t rn;
        if (key != K(1, WT_LEN)) {
            if (key == 0 || skip_at(&p, end, key) != 0)
                return -1;
            continue;
        }
        if (len_at(&p, end, &rs, &rn) != 0)
            return -1;
        for (const uint8_t *q = rs, *qe = rs + rn; q < qe;) {
            uint32_t k2 = tag_at(&q, qe);
            const uint8_t *ss;
            size_t sn, n;
            if (k2 != K(2, WT_LEN)) {
                if (k2 == 0 || skip_at(&q, qe, k2) != 0)
                    return -1;
                continue;
            }
            if (len_at(&q, qe, &ss, &sn) != 0 || count_key(ss, ss + sn, K(2, WT_LEN), &n) != 0)
                return -1;
            *total += n;
        }
    }
    return 0;
}

/*
 * What both decoders check first: 0 with *data usable (never NULL), *end
 * and the number of leaf messages in *total; OTLP_DECLINED with *why when
 * the limits or the framing leave the body to the general decoder.
 */
DR_FN int direct_begin(const dctx_t *c, const uint8_t **data, size_t len, const uint8_t **end, size_t *total,
                       const char **why)
{
    if (c->lim.max_depth < 6) {
        /* the messages read here nest 6 deep; shallower limits are checked by the general decoder */
        *why = "max_depth below 6";
        return OTLP_DECLINED;
    }
    if (len == 0)
        *data = (const uint8_t *)"";
    *end = *data + len;
    if (count_leaves(*data, *end, total) != 0) {
        *why = "malformed protobuf";
        return OTLP_DECLINED;
    }
    return 0;
}

/* Each field 1 of the request (ResourceSpans, ResourceLogs) to fn, other fields skipped; D_* */
static inline __attribute__((always_inline)) int walk_request(dx_t *x, const uint8_t *p, const uint8_t *end,
                                                              dx_msg_fn fn)
{
    int rc = D_OK;
    while (p < end && rc == D_OK) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        if (key == K(1, WT_LEN))
            rc = len_at(&p, end, &s, &n) != 0 ? D_DECLINE : fn(x, s, s + n);
        else
            rc = other_field(&p, end, key, 1);
    }
    return rc;
}

#endif
