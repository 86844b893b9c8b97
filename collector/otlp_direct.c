/*
 * otlp_direct: OTLP trace protobuf straight from the wire to span_t, the
 * collector's hot ingest path (otlp_traces_decode_proto_direct in otlp.h).
 *
 * Design: two read-only passes over the body, nothing written into it.
 * The first only counts the span messages (for the one span_t array the
 * mapping fills, as map_traces allocates it). The second reads each
 * message's fields as it meets them and maps as it goes: the resource's
 * service and tags once per ResourceSpans, the scope tags once per
 * ScopeSpans, and each span's ids, name, times, status and attributes
 * into the span_t. Strings are (pointer, length) slices of the body (their
 * C-string view: up to a NUL byte, found 16 bytes at a time by the same
 * scan that tells whether a tag key or value has a byte >= 0x80 and so
 * may need otlp_repair), numbers are
 * rendered once per request into small bump space (a 16-entry cache keeps
 * repeated values, like status codes, from being rendered again), and
 * tags and annotations are appended to per-request pools, so an ordinary
 * span costs no allocation of its own. Every rule the mapping decides is
 * one of otlp_internal.h's, shared with the struct path.
 *
 * Exactness is kept by handing over rather than imitating: anything
 * unusual inside a Span, Resource or InstrumentationScope (an array or
 * kvlist value, a value or status given twice, which protobuf-c merges,
 * a link, an event with attributes, more "error" attributes than tracked)
 * sends that one message, copied, through otlp_wire_decode_part and the
 * struct mapping; anything unusual in the outer messages (a resource or
 * scope given twice or after its spans) and any malformed byte declines
 * the whole body (OTLP_DECLINED), which the caller then decodes with
 * otlp_wire, so errors and their messages are otlp_wire's.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "otlp_internal.h"
#include "otlp_wire.h"

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
#define MAX_ERROR_ATTRS 8 /* "error" attributes tracked per span; more go to the struct path */
#define MAX_RESOURCE_ATTRS 64

/* Per-request space for one kind of element (tags, annotations), kept contiguous per span. */
typedef struct pool {
    char *base; /* first element of the span being read */
    char *cur;  /* next free byte */
    char *end;
    size_t chunk; /* bytes of the next chunk */
} pool_t;

typedef struct dx {
    dctx_t *c;
    const uint8_t *body_end; /* words may be read up to here */
    uint32_t cut;            /* strings longer than this are cut: lim.max_attribute_value_len, or UINT32_MAX for 0 */
    otlp_direct_stats_t *stats;
    const char *why; /* reason for declining */
    rctx_t rc;
    size_t n_spans, max_spans; /* span messages met / counted by the first pass */
    pool_t tags, anns;
    char *txt, *txt_end; /* space for rendered numbers */
    struct {
        int64_t v;
        str_t s; /* ptr NULL: empty slot */
    } icache[16];
} dx_t;

static int fatal(dx_t *x)
{
    otlp_fail_oom(x->c);
    return D_FATAL;
}

static int decline(dx_t *x, const char *why)
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

/* A length prefix of 3 to 5 bytes, or one at the very end: (length << 3 | prefix bytes), 0 when malformed. */
static uint64_t len_slow(const uint8_t *p, const uint8_t *end)
{
    size_t n;
    int k = otlp_pb_len(p, end, &n);
    return k < 0 ? 0 : (uint64_t)n << 3 | (uint64_t)k;
}

/*
 * Length-delimited payload at *pp into [*s, *s + *n); -1 when malformed.
 * (Cursors are only ever passed to inline functions by address, so that
 * they stay in registers.)
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
static const uint8_t *skip_field(const uint8_t *p, const uint8_t *end, uint32_t key)
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
static int pool_grow(dx_t *x, pool_t *pl, size_t need)
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

/* Decimal text of v, rendered once per request and value (see the module comment). */
static int render_int(dx_t *x, int64_t v, str_t *out)
{
    unsigned h = (unsigned)((uint64_t)v ^ ((uint64_t)v >> 7)) & 15;
    if (x->icache[h].s.ptr != NULL && x->icache[h].v == v) {
        *out = x->icache[h].s;
        return 0;
    }
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
static int parse_any(const dx_t *x, const uint8_t *p, const uint8_t *end, otlp_val_t *v)
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
static int parse_kv(const dx_t *x, const uint8_t *p, const uint8_t *end, otlp_kv_t *kv)
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

/* Copy the message [p, p + n) and decode it with otlp_wire; *out is the struct. */
static int hand_over(dx_t *x, enum otlp_wire_part part, const uint8_t *p, size_t n, unsigned depth, void **out)
{
    uint8_t *copy = otlp_alloc(x->c, n + 1);
    if (copy == NULL)
        return fatal(x);
    if (n > 0)
        memcpy(copy, p, n);
    char err[8];
    int rc = otlp_wire_decode_part(part, copy, n, depth, x->c->lim.max_depth, x->c->arena, out, err, sizeof(err));
    if (rc == OTLP_WIRE_NOMEM)
        return fatal(x);
    if (rc != 0)
        return decline(x, "malformed protobuf");
    return D_OK;
}

/* ------------------------------------------------------------------ */
/* resource and scope                                                  */

static int read_resource(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    otlp_kv_t kvs[MAX_RESOURCE_ATTRS];
    size_t n_kvs = 0;
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        if (key == K(1, WT_LEN)) {
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            if (n_kvs == MAX_RESOURCE_ATTRS)
                return D_HAND;
            int rc = parse_kv(x, s, s + n, &kvs[n_kvs++]);
            if (rc != D_OK)
                return rc;
        } else if (key == K(2, WT_VARINT)) {
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
        } else if (other_field(&p, end, key, 2) != D_OK) {
            return D_DECLINE;
        }
    }
    return otlp_resource_build(x->c, kvs, n_kvs, &x->rc) != 0 ? fatal(x) : D_OK;
}

static int read_scope(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    str_t name = {"", 0}, version = {"", 0};
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
            *(key == K(1, WT_LEN) ? &name : &version) = zstr_plain(x, s, n);
            break;
        case K(3, WT_LEN): /* attributes: not mapped, but they must be valid */
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
    return otlp_scope_build(x->c, name, version, &x->rc) != 0 ? fatal(x) : D_OK;
}

/* ------------------------------------------------------------------ */
/* spans                                                               */

/* A span's "error" attributes, dropped or kept once its status is known. */
typedef struct err_attrs {
    uint32_t n;
    uint32_t at[MAX_ERROR_ATTRS]; /* tag index */
    uint8_t is_false[MAX_ERROR_ATTRS];
} err_attrs_t;

static int read_status(const dx_t *x, const uint8_t *p, const uint8_t *end, otlp_span_in_t *in)
{
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        if (key == K(2, WT_LEN)) {
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            in->status_msg = zstr_plain(x, s, n);
        } else if (key == K(3, WT_VARINT)) {
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            in->status_code = (int32_t)(uint32_t)u;
        } else if (key == 0 || (key >> 3) == 2 || (key >> 3) == 3 || skip_at(&p, end, key) != 0) {
            return D_DECLINE; /* field 1 is reserved: skipped like any unknown field */
        }
    }
    return D_OK;
}

/* An event without attributes becomes an annotation (when keep); one with attributes is D_HAND. */
static int read_event(dx_t *x, const uint8_t *p, const uint8_t *end, int keep)
{
    uint64_t t = 0;
    str_t name = {"", 0};
    unsigned high = 0;
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        switch (key) {
        case K(1, WT_I64):
            if (fixed_at(&p, end, 8, &s) != 0)
                return D_DECLINE;
            t = otlp_pb_ld64(s);
            break;
        case K(2, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            high = 0; /* the last name given is the one kept */
            name = zstr(x, s, n, &high);
            break;
        case K(3, WT_LEN): return D_HAND;
        case K(4, WT_VARINT):
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            break;
        default:
            if (other_field(&p, end, key, 4) != D_OK)
                return D_DECLINE;
        }
    }
    if (keep) {
        span_annotation_t *a = pool_push(x, &x->anns, sizeof(*a));
        if (a == NULL)
            return fatal(x);
        a->timestamp_us = t / 1000;
        a->value = otlp_str(x->c, name.ptr, name.len);
        if (high && otlp_repair(x->c, &a->value) != 0)
            return fatal(x);
    }
    return D_OK;
}

/* One attribute of the span: validated always, rendered into the tag pool when within the limit. */
static int read_attr(dx_t *x, const uint8_t *s, size_t n, int keep, peer_attrs_t *pa, err_attrs_t *ea)
{
    otlp_kv_t kv;
    unsigned high = 0;
    if (!kv_usual(x, s, s + n, &kv, &high)) {
        otlp_kv_t other; /* kept apart so that kv can live in registers */
        int rc = parse_kv(x, s, s + n, &other);
        if (rc != D_OK)
            return rc;
        kv = other;
        high = 1; /* not known: let otlp_repair look */
    }
    if (!keep)
        return D_OK;
    str_t key = cut(x, kv.key);
    int k = otlp_peer_key(key.ptr, key.len);
    if (k == PK_ERROR) {
        if (ea->n == MAX_ERROR_ATTRS)
            return D_HAND;
        ea->at[ea->n] = (uint32_t)((size_t)(x->tags.cur - x->tags.base) / sizeof(span_tag_t));
        ea->is_false[ea->n++] = (uint8_t)otlp_val_is_false(&kv.val);
    } else if (k != PK_NONE) {
        otlp_peer_note(pa, k, &kv.val);
    }
    span_tag_t *t = pool_push(x, &x->tags, sizeof(*t));
    if (t == NULL)
        return fatal(x);
    t->key = key;
    if (render_value(x, &kv.val, &t->value) != 0)
        return fatal(x);
    /* as the struct path: key and text repaired after the key was classified (only strings can need it) */
    if (high &&
        (otlp_repair(x->c, &t->key) != 0 || (kv.val.kind == AV(STRING_VALUE) && otlp_repair(x->c, &t->value) != 0)))
        return fatal(x);
    return D_OK;
}

/* Read the span [p, end) into in and the pools; the mapping happens in map_read_span. */
static int read_span(dx_t *x, const uint8_t *p, const uint8_t *end, otlp_span_in_t *in, peer_attrs_t *pa,
                     err_attrs_t *ea)
{
    const otlp_limits_t *lim = &x->c->lim;
    uint32_t n_attr = 0, n_ev = 0;
    int have_status = 0;
    /* exporters write the ids first, in field order and at their sizes: take them without the loop */
    if (end - p >= 28 && p[0] == K(1, WT_LEN) && p[1] == 16 && p[18] == K(2, WT_LEN) && p[19] == 8) {
        in->trace_id = p + 2;
        in->trace_id_len = 16;
        in->span_id = p + 20;
        in->span_id_len = 8;
        p += 28;
        if (end - p >= 10 && p[0] == K(4, WT_LEN) && p[1] == 8) {
            in->parent_id = p + 2;
            in->parent_id_len = 8;
            p += 10;
        }
        if (end - p >= 2 && p[0] == K(5, WT_LEN) && p[1] < 0x80 && p[1] <= end - p - 2) {
            in->name = zstr_plain(x, p + 2, p[1]);
            p += 2 + p[1];
        }
        if (end - p >= 2 && p[0] == K(6, WT_VARINT) && p[1] < 0x80) {
            in->kind = p[1];
            p += 2;
        }
        if (end - p >= 18 && p[0] == K(7, WT_I64) && p[9] == K(8, WT_I64)) {
            in->start_ns = otlp_pb_ld64(p + 1);
            in->end_ns = otlp_pb_ld64(p + 10);
            p += 18;
        }
    }
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        int rc;
        switch (key) {
        case K(1, WT_LEN): /* ids: the last one given wins, checked when mapped */
            if (len_at(&p, end, &in->trace_id, &in->trace_id_len) != 0)
                return D_DECLINE;
            break;
        case K(2, WT_LEN):
            if (len_at(&p, end, &in->span_id, &in->span_id_len) != 0)
                return D_DECLINE;
            break;
        case K(4, WT_LEN):
            if (len_at(&p, end, &in->parent_id, &in->parent_id_len) != 0)
                return D_DECLINE;
            break;
        case K(5, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            in->name = zstr_plain(x, s, n);
            break;
        case K(3, WT_LEN): /* trace_state: not mapped */
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            break;
        case K(6, WT_VARINT):
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            in->kind = (int32_t)(uint32_t)u;
            break;
        case K(7, WT_I64):
        case K(8, WT_I64):
            if (fixed_at(&p, end, 8, &s) != 0)
                return D_DECLINE;
            *(key == K(7, WT_I64) ? &in->start_ns : &in->end_ns) = otlp_pb_ld64(s);
            break;
        case K(9, WT_LEN):
            /* attributes come in runs: stay here while the next field is one too */
            do {
                if (len_at(&p, end, &s, &n) != 0)
                    return D_DECLINE;
                if ((rc = read_attr(x, s, n, n_attr < lim->max_attributes, pa, ea)) != D_OK)
                    return rc;
                n_attr++;
            } while (p < end && *p == K(9, WT_LEN) && ++p);
            break;
        case K(10, WT_VARINT):
        case K(12, WT_VARINT):
        case K(14, WT_VARINT): /* dropped_*_count */
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            break;
        case K(11, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            if ((rc = read_event(x, s, s + n, n_ev < lim->max_events)) != D_OK)
                return rc;
            n_ev++;
            break;
        case K(13, WT_LEN): return D_HAND; /* links: not mapped, validated by otlp_wire */
        case K(15, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            if (have_status)
                return D_HAND; /* merged by protobuf-c */
            have_status = 1;
            if ((rc = read_status(x, s, s + n, in)) != D_OK)
                return rc;
            break;
        case K(16, WT_I32): /* flags */
            if (fixed_at(&p, end, 4, &s) != 0)
                return D_DECLINE;
            break;
        default:
            if (other_field(&p, end, key, 16) != D_OK)
                return D_DECLINE;
        }
    }
    return D_OK;
}

/* The span read into in, the pools and pa: mapped into the next slot of the batch (or rejected). */
static int map_read_span(dx_t *x, const otlp_span_in_t *in, const peer_attrs_t *pa, const err_attrs_t *ea)
{
    dctx_t *c = x->c;
    span_t *s = &c->batch[c->n_batch];
    int rc = otlp_span_begin(c, &x->rc, in, s);
    if (rc <= 0)
        return rc < 0 ? fatal(x) : D_OK;
    uint32_t nt = (uint32_t)((size_t)(x->tags.cur - x->tags.base) / sizeof(span_tag_t));
    if (ea->n > 0) {
        int is_error = in->status_code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
        span_tag_t *tags = (span_tag_t *)(void *)x->tags.base;
        for (uint32_t i = ea->n; i-- > 0;) {
            if (!is_error && !ea->is_false[i])
                continue;
            uint32_t at = ea->at[i];
            memmove(&tags[at], &tags[at + 1], (nt - at - 1) * sizeof(*tags));
            nt--;
        }
    }
    size_t room = (size_t)x->rc.n_rtags + x->rc.n_scope_tags + 4;
    x->tags.cur = x->tags.base + (size_t)nt * sizeof(span_tag_t);
    if ((size_t)(x->tags.end - x->tags.cur) < room * sizeof(span_tag_t) &&
        pool_grow(x, &x->tags, room * sizeof(span_tag_t)) != 0)
        return fatal(x);
    span_tag_t *tags = (span_tag_t *)(void *)x->tags.base;
    if (otlp_span_finish_tags(c, &x->rc, in, tags, &nt) != 0)
        return fatal(x);
    s->tags = tags;
    s->n_tags = nt;
    x->tags.cur = x->tags.base + (size_t)nt * sizeof(span_tag_t);
    if (otlp_remote_endpoint(c, pa, s) != 0)
        return fatal(x);
    size_t n_ann = (size_t)(x->anns.cur - x->anns.base) / sizeof(span_annotation_t);
    if (n_ann > 0) {
        s->annotations = (const span_annotation_t *)(void *)x->anns.base;
        s->n_annotations = (uint32_t)n_ann;
    }
    pool_commit(&x->tags);
    pool_commit(&x->anns);
    c->n_batch++;
    c->res->accepted++;
    return D_OK;
}

static int do_span(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    if (x->n_spans++ >= x->max_spans)
        return decline(x, "span count changed between passes");
    otlp_span_in_t in = {.name = {"", 0}, .status_msg = {"", 0}};
    peer_attrs_t pa;
    err_attrs_t ea;
    pa.seen = 0;
    ea.n = 0;
    int rc = read_span(x, p, end, &in, &pa, &ea);
    if (rc == D_OK)
        rc = map_read_span(x, &in, &pa, &ea);
    pool_drop(&x->tags); /* a no-op after a mapped span */
    pool_drop(&x->anns);
    if (rc == D_OK)
        x->stats->spans++;
    if (rc != D_HAND)
        return rc;
    void *ps;
    if ((rc = hand_over(x, OTLP_WIRE_PART_SPAN, p, (size_t)(end - p), 4, &ps)) != D_OK)
        return rc;
    x->stats->spans_handed++;
    return otlp_map_span_batch(x->c, &x->rc, ps) != 0 ? D_FATAL : D_OK;
}

/* ------------------------------------------------------------------ */
/* outer messages                                                      */

/* A Resource (resource = 1) or InstrumentationScope into x->rc: read here, or by otlp_wire when unusual. */
static int do_head(dx_t *x, const uint8_t *p, const uint8_t *end, int resource)
{
    int rc = resource ? read_resource(x, p, end) : read_scope(x, p, end);
    if (rc != D_HAND)
        return rc;
    void *m;
    rc = hand_over(x, resource ? OTLP_WIRE_PART_RESOURCE : OTLP_WIRE_PART_SCOPE, p, (size_t)(end - p), resource ? 3 : 4,
                   &m);
    if (rc != D_OK)
        return rc;
    if (!resource) {
        x->stats->scopes_handed++;
        return otlp_scope_prepare(x->c, m, &x->rc) != 0 ? fatal(x) : D_OK;
    }
    x->stats->resources_handed++;
    return otlp_resource_prepare(x->c, m, &x->rc) != 0 ? fatal(x) : D_OK;
}

/*
 * ResourceSpans and ScopeSpans are laid out alike: field 1 is the message
 * that applies to the rest (Resource or InstrumentationScope), field 2
 * repeats (ScopeSpans or Span), field 3 is schema_url.
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

static int do_scope_spans(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    parts_t it = {p, end, 0, 0};
    const uint8_t *s;
    size_t n;
    int part = PART_END, rc = otlp_scope_build(x->c, (str_t){"", 0}, (str_t){"", 0}, &x->rc) != 0 ? fatal(x) : D_OK;
    while (rc == D_OK && (part = next_part(&it, &s, &n)) > 0)
        rc = part == PART_PART ? do_span(x, s, s + n) : do_head(x, s, s + n, 0);
    return parts_done(x, rc, part, "InstrumentationScope given twice or after spans");
}

static int do_resource_spans(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    parts_t it = {p, end, 0, 0};
    const uint8_t *s;
    size_t n;
    int part = PART_END, rc = otlp_resource_build(x->c, NULL, 0, &x->rc) != 0 ? fatal(x) : D_OK;
    while (rc == D_OK && (part = next_part(&it, &s, &n)) > 0)
        rc = part == PART_PART ? do_scope_spans(x, s, s + n) : do_head(x, s, s + n, 1);
    return parts_done(x, rc, part, "Resource given twice or after scope_spans");
}

/* Number of fields with this key in the message [p, end), checking its framing; -1 when malformed. */
static int count_key(const uint8_t *p, const uint8_t *end, uint32_t want, size_t *count)
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

/* First pass: the span messages of the request, as map_traces counts them. */
static int count_spans(const uint8_t *p, const uint8_t *end, size_t *total)
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

int otlp_direct_decode(dctx_t *c, const uint8_t *data, size_t len, otlp_direct_stats_t *stats)
{
    otlp_direct_stats_t unused;
    if (stats == NULL)
        stats = &unused;
    memset(stats, 0, sizeof(*stats));
    if (c->lim.max_depth < 6) {
        /* the messages read here nest 6 deep; shallower limits are checked by otlp_wire */
        stats->declined = "max_depth below 6";
        return OTLP_DECLINED;
    }
    if (len == 0)
        data = (const uint8_t *)"";
    const uint8_t *end = data + len;
    size_t total;
    if (count_spans(data, end, &total) != 0) {
        stats->declined = "malformed protobuf";
        return OTLP_DECLINED;
    }
    size_t slots = total < c->lim.max_items ? total : c->lim.max_items;
    c->batch = otlp_alloc(c, (slots > 0 ? slots : 1) * sizeof(span_t));
    c->n_batch = 0;
    if (c->batch == NULL)
        return otlp_fail_oom(c);
    dx_t x;
    memset(&x, 0, sizeof(x));
    x.c = c;
    x.body_end = end;
    x.cut = c->lim.max_attribute_value_len != 0 ? c->lim.max_attribute_value_len : UINT32_MAX;
    x.stats = stats;
    x.max_spans = total;
    static char none[1]; /* empty pools and text space until first used (pointer differences stay defined) */
    x.tags = (pool_t){none, none, none, POOL_FIRST_BYTES};
    x.anns = (pool_t){none, none, none, POOL_FIRST_BYTES / 4};
    x.txt = x.txt_end = none;
    int rc = D_OK;
    for (const uint8_t *p = data; p < end && rc == D_OK;) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        if (key == K(1, WT_LEN))
            rc = len_at(&p, end, &s, &n) != 0 ? D_DECLINE : do_resource_spans(&x, s, s + n);
        else
            rc = other_field(&p, end, key, 1);
    }
    if (rc == D_DECLINE) {
        stats->declined = x.why != NULL ? x.why : "malformed protobuf";
        c->batch = NULL;
        c->n_batch = 0;
        return OTLP_DECLINED;
    }
    return rc == D_OK ? 0 : -1;
}
