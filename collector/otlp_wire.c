/*
 * otlp_wire: single-pass ExportTraceServiceRequest decoder; see otlp_wire.h
 * for the contract and the acceptance rules it shares with protobuf-c.
 *
 * Every message has one dec_* function over its payload [p, end) inside
 * the mutable copy of the body (the arena's, or the caller's buffer for
 * the in-place entry). Offsets in errors are relative to the start of the
 * body. A field's start (its tag byte) is kept while it is decoded:
 * strings are slid down to just after their re-encoded length and
 * NUL-terminated in place, which only ever writes over bytes of that same
 * field that were already read.
 */
#include "otlp_wire.h"

#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req_t;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans rspans_t;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans sspans_t;
typedef Opentelemetry__Proto__Trace__V1__Span pspan_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Event pevent_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Link plink_t;
typedef Opentelemetry__Proto__Trace__V1__Status pstatus_t;
typedef Opentelemetry__Proto__Resource__V1__Resource resource_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope scope_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Common__V1__AnyValue any_t;
typedef Opentelemetry__Proto__Common__V1__ArrayValue array_t;
typedef Opentelemetry__Proto__Common__V1__KeyValueList kvlist_t;

#define AV(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct wctx {
    arena_t *arena;
    uint8_t *buf; /* start of the body copy */
    unsigned max_depth;
    int oom;
    int failed;
    char *err;
    size_t err_size;
    uint64_t high; /* OR of every string's bytes, in words: a byte >= 0x80 leaves a bit 7 set */
} wctx_t;

/* A KeyValue with room for its value, allocated n at a time. */
typedef struct kvslot {
    kv_t kv;
    any_t av;
} kvslot_t;

__attribute__((format(printf, 2, 3))) static int werr(wctx_t *c, const char *fmt, ...)
{
    if (!c->failed) {
        int n = snprintf(c->err, c->err_size, "invalid protobuf: ");
        if (n > 0 && (size_t)n < c->err_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
        c->failed = 1;
    }
    return -1;
}

static size_t off(const wctx_t *c, const uint8_t *p)
{
    return (size_t)(p - c->buf);
}

static void *walloc(wctx_t *c, size_t n)
{
    void *p = arena_alloc(c->arena, n);
    if (p == NULL)
        c->oom = 1;
    return p;
}

/* ------------------------------------------------------------------ */
/* wire primitives                                                     */

/* Varint of at most 10 bytes; bits past 64 are dropped (as protobuf-c does). */
static inline int rd_varint(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, const uint8_t *fs, uint64_t *out)
{
    int k = otlp_pb_varint(*pp, end, out);
    if (k > 0) {
        *pp += k;
        return 0;
    }
    *out = 0;
    if (k == OTLP_PB_TRUNCATED)
        return werr(c, "truncated varint in field %u at offset %zu", num, off(c, fs));
    return werr(c, "varint longer than 10 bytes in field %u at offset %zu", num, off(c, fs));
}

/* Tag of at most 5 bytes; field numbers 1..2^29-1. */
static inline int rd_tag(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t *num, unsigned *wt)
{
    uint32_t key = 0;
    int k = otlp_pb_tag(*pp, end, &key);
    *num = key >> 3;
    *wt = key & 7;
    if (k > 0) {
        *pp += k;
        return 0;
    }
    if (k == OTLP_PB_BAD_FIELD)
        return werr(c, "invalid field number at offset %zu", off(c, *pp));
    if (k == OTLP_PB_TRUNCATED)
        return werr(c, "truncated field tag at offset %zu", off(c, *pp));
    return werr(c, "field tag longer than 5 bytes at offset %zu", off(c, *pp));
}

static int bad_wire_type(wctx_t *c, uint32_t num, unsigned wt, const uint8_t *fs)
{
    if (wt == 3 || wt == 4 || wt > 5)
        return werr(c, "unsupported wire type %u in field %u at offset %zu", wt, num, off(c, fs));
    return werr(c, "wire type %u not allowed for field %u at offset %zu", wt, num, off(c, fs));
}

/* Length-delimited payload of field num: *sub .. *sub + *n. */
static inline int rd_len(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, const uint8_t *fs,
                         uint8_t **sub, size_t *n)
{
    *sub = NULL;
    *n = 0;
    if (wt != WT_LEN)
        return bad_wire_type(c, num, wt, fs);
    size_t v = 0;
    int k = otlp_pb_len(*pp, end, &v);
    if (k == OTLP_PB_TOO_LONG)
        return werr(c, "length prefix longer than 5 bytes in field %u at offset %zu", num, off(c, fs));
    if (k < 0)
        return werr(c, "truncated length-delimited field %u at offset %zu", num, off(c, fs));
    uint8_t *p = *pp + k;
    *sub = p;
    *n = (size_t)v;
    *pp = p + v;
    return 0;
}

static inline int rd_fixed64(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, const uint8_t *fs,
                             uint64_t *out)
{
    *out = 0;
    if (wt != WT_I64)
        return bad_wire_type(c, num, wt, fs);
    if (end - *pp < 8)
        return werr(c, "truncated fixed64 field %u at offset %zu", num, off(c, fs));
    *out = otlp_pb_ld64(*pp);
    *pp += 8;
    return 0;
}

static inline int rd_fixed32(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, const uint8_t *fs,
                             uint32_t *out)
{
    *out = 0;
    if (wt != WT_I32)
        return bad_wire_type(c, num, wt, fs);
    if (end - *pp < 4)
        return werr(c, "truncated fixed32 field %u at offset %zu", num, off(c, fs));
    *out = otlp_pb_ld32(*pp);
    *pp += 4;
    return 0;
}

static inline int rd_u64(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, const uint8_t *fs,
                         uint64_t *out)
{
    if (wt != WT_VARINT)
        return bad_wire_type(c, num, wt, fs);
    return rd_varint(c, pp, end, num, fs, out);
}

/* int32, uint32 and enums keep the low 32 bits of the varint. */
static inline int rd_u32(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, const uint8_t *fs,
                         uint32_t *out)
{
    uint64_t v;
    if (rd_u64(c, pp, end, num, wt, fs, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static inline int has_zero(uint64_t w)
{
    return ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) != 0;
}

/* Index, in memory order, of the first zero byte of a word that has one. */
static inline size_t first_zero(uint64_t w)
{
    uint8_t b[8];
    memcpy(b, &w, 8);
    size_t j = 0;
    while (b[j] != 0)
        j++;
    return j;
}

/*
 * A string field: slide it down over its own tag, write its length just
 * before it (see otlp_wire_strlen) and NUL-terminate it. With V bytes of
 * length prefix and T >= 1 of tag, the length takes V bytes (7 bits each)
 * and the string moves T bytes down, so the NUL lands inside the field.
 */
static inline int rd_str(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, uint8_t *fs, char **out)
{
    uint8_t *s;
    size_t n;
    if (rd_len(c, pp, end, num, wt, fs, &s, &n) != 0)
        return -1;
    /*
     * Readers see C strings (as protobuf-c gives them), so the length kept
     * is that up to the first NUL byte, found while copying. The copy goes
     * forward in words, which is safe: dst < s, so a word is loaded before
     * any store reaches it. dst is fs + 5 at most (5 groups of 7 bits hold
     * the largest length rd_len allows), never past s, since the varint
     * prefix has at least as many bytes as groups and the tag at least one.
     */
    unsigned groups = n < (1u << 7) ? 1 : n < (1u << 14) ? 2 : n < (1u << 21) ? 3 : n < (1u << 28) ? 4 : 5;
    uint8_t *dst = fs + groups;
    size_t eff = n;
    if (n >= 8) {
        /* the last word is loaded before any store can reach it and stored last, over the loop's tail */
        uint64_t last, high = 0;
        memcpy(&last, s + n - 8, 8);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            memcpy(dst + i, &w, 8);
            high |= w;
            if (has_zero(w) && eff == n)
                eff = i + first_zero(w);
        }
        memcpy(dst + n - 8, &last, 8);
        c->high |= high | last;
        if (eff == n && has_zero(last))
            eff = n - 8 + first_zero(last);
    } else {
        uint8_t high = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t b = s[i];
            dst[i] = b;
            high |= b;
            if (b == 0 && eff == n)
                eff = i;
        }
        c->high |= high;
    }
    dst[n] = '\0';
    /*
     * eff as 7-bit groups laid out backwards from the string: the byte d
     * before it holds group d-1 and has its high bit set when another
     * group precedes it. eff <= n, so it needs no more than groups bytes;
     * unused leading bytes hold a zero group with the flag set.
     */
    for (unsigned d = 1; d <= groups; d++)
        dst[-(ptrdiff_t)d] = (uint8_t)(((eff >> (7 * (d - 1))) & 0x7f) | (d < groups ? 0x80 : 0));
    *out = (char *)dst;
    return 0;
}

static inline int rd_bytes(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, const uint8_t *fs,
                           ProtobufCBinaryData *out)
{
    uint8_t *s;
    size_t n;
    if (rd_len(c, pp, end, num, wt, fs, &s, &n) != 0)
        return -1;
    out->data = n > 0 ? s : NULL;
    out->len = n;
    return 0;
}

/* Skip one field of any supported wire type. */
static int skip_field(wctx_t *c, uint8_t **pp, uint8_t *end, uint32_t num, unsigned wt, const uint8_t *fs)
{
    uint64_t v;
    uint8_t *s;
    size_t n;
    switch (wt) {
    case WT_VARINT: return rd_varint(c, pp, end, num, fs, &v);
    case WT_I64:
        if (end - *pp < 8)
            return werr(c, "truncated fixed64 field %u at offset %zu", num, off(c, fs));
        *pp += 8;
        return 0;
    case WT_I32:
        if (end - *pp < 4)
            return werr(c, "truncated fixed32 field %u at offset %zu", num, off(c, fs));
        *pp += 4;
        return 0;
    case WT_LEN: return rd_len(c, pp, end, num, wt, fs, &s, &n);
    default: return bad_wire_type(c, num, wt, fs);
    }
}

/*
 * Count the occurrences of up to three repeated fields (f[i], 0 = unused)
 * in the message [p, end); the framing is checked on the way.
 */
static int count_fields(wctx_t *c, uint8_t *p, uint8_t *end, const uint32_t f[3], size_t n[3])
{
    n[0] = n[1] = n[2] = 0;
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0 || skip_field(c, &p, end, num, wt, fs) != 0)
            return -1;
        if (num == f[0])
            n[0]++;
        else if (num == f[1])
            n[1]++;
        else if (num == f[2])
            n[2]++;
    }
    return 0;
}

static inline int depth_ok(wctx_t *c, unsigned depth, const uint8_t *p)
{
    if (depth > c->max_depth)
        return werr(c, "messages nested deeper than %u at offset %zu", c->max_depth, off(c, p));
    return 0;
}

/* Pointer array plus n elements of size esz in one allocation; ptrs[i] = elements + i. */
static void **alloc_block(wctx_t *c, size_t n, size_t esz, void **elems)
{
    size_t ptr_bytes = (n * sizeof(void *) + 7) & ~(size_t)7;
    char *m = walloc(c, ptr_bytes + n * esz);
    if (m == NULL)
        return NULL;
    *elems = m + ptr_bytes;
    return (void **)m;
}

/* Concatenate two pointer arrays (protobuf-c's merge of a repeated field). */
static int concat(wctx_t *c, void ***a, size_t *na, void **b, size_t nb)
{
    if (nb == 0)
        return 0;
    if (*na == 0) {
        *a = b;
        *na = nb;
        return 0;
    }
    void **m = walloc(c, (*na + nb) * sizeof(void *));
    if (m == NULL)
        return -1;
    memcpy(m, *a, *na * sizeof(void *));
    memcpy(m + *na, b, nb * sizeof(void *));
    *a = m;
    *na += nb;
    return 0;
}

static int string_present(const char *s)
{
    return s != protobuf_c_empty_string;
}

/* ------------------------------------------------------------------ */
/* common.v1                                                           */

static int dec_kv(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, kvslot_t *slot);
static int dec_any(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, any_t *v);

/*
 * Growth of a repeated message field without a counting pass: the pointer
 * array doubles (starting at `first`), and each growth allocates, in the
 * same arena block, exactly the elements the new pointer slots can take,
 * so elements never move and only old pointer arrays are left behind
 * (less than the final array's size in total).
 */
typedef struct grow {
    size_t cap;   /* pointer slots of the current array */
    size_t first; /* capacity of the first array */
    size_t esz;   /* element size, a multiple of 8 */
    char *elems;  /* next free element of the current block */
} grow_t;

static void grow_init(grow_t *g, size_t first, size_t esz)
{
    g->cap = 0;
    g->first = first;
    g->esz = esz;
    g->elems = NULL;
}

/* Storage for element `count` of the field whose pointer array is *field; NULL when the arena is full. */
static inline void *grow_next(wctx_t *c, grow_t *g, void ***field, size_t count)
{
    if (count == g->cap) {
        size_t cap = count ? count * 2 : g->first;
        size_t ptr_bytes = (cap * sizeof(void *) + 7) & ~(size_t)7;
        char *m = walloc(c, ptr_bytes + (cap - count) * g->esz);
        if (m == NULL)
            return NULL;
        if (count > 0)
            memcpy(m, *field, count * sizeof(void *));
        *field = (void **)m;
        g->cap = cap;
        g->elems = m + ptr_bytes;
    }
    void *e = g->elems;
    g->elems += g->esz;
    return e;
}

/* The elements of one repeated KeyValue field. */
typedef grow_t kvarr_t;

static void kvarr_init(kvarr_t *a, size_t first)
{
    grow_init(a, first, sizeof(kvslot_t));
}

/* Decode the KeyValue field at *pp (tag already read) as element *count of *arr. */
static int kvarr_add(wctx_t *c, kvarr_t *a, kv_t ***arr, size_t *count, uint8_t **pp, uint8_t *end, uint32_t num,
                     unsigned wt, uint8_t *fs, unsigned depth)
{
    uint8_t *s;
    size_t len;
    if (rd_len(c, pp, end, num, wt, fs, &s, &len) != 0)
        return -1;
    kvslot_t *slot = grow_next(c, a, (void ***)arr, *count);
    if (slot == NULL || dec_kv(c, s, s + len, depth, slot) != 0)
        return -1;
    (*arr)[(*count)++] = &slot->kv;
    return 0;
}

static int dec_array(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, array_t *a)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *a = (array_t)OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    static const uint32_t f[3] = {1, 0, 0};
    size_t n[3];
    if (count_fields(c, p, end, f, n) != 0)
        return -1;
    if (n[0] == 0)
        return 0;
    any_t *vals;
    void **ptrs = alloc_block(c, n[0], sizeof(any_t), (void **)&vals);
    if (ptrs == NULL)
        return -1;
    size_t i = 0;
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        if (num != 1) {
            if (skip_field(c, &p, end, num, wt, fs) != 0)
                return -1;
            continue;
        }
        uint8_t *s;
        size_t len;
        if (rd_len(c, &p, end, num, wt, fs, &s, &len) != 0)
            return -1;
        if (i >= n[0])
            return werr(c, "inconsistent field count at offset %zu", off(c, fs));
        if (dec_any(c, s, s + len, depth + 1, &vals[i]) != 0)
            return -1;
        ptrs[i] = &vals[i];
        i++;
    }
    a->values = (any_t **)ptrs;
    a->n_values = i;
    return 0;
}

static int dec_kvlist(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, kvlist_t *l)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *l = (kvlist_t)OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
    kvarr_t kva;
    kvarr_init(&kva, 4);
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        int rc = num == 1 ? kvarr_add(c, &kva, &l->values, &l->n_values, &p, end, num, wt, fs, depth + 1)
                          : skip_field(c, &p, end, num, wt, fs);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int dec_any(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, any_t *v)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *v = (any_t)OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        uint8_t *s;
        size_t n;
        switch (num) {
        case 1: {
            char *str;
            if (rd_str(c, &p, end, num, wt, fs, &str) != 0)
                return -1;
            v->string_value = str;
            v->value_case = AV(STRING_VALUE);
            break;
        }
        case 2: {
            uint8_t *vs = p;
            if (skip_field(c, &p, end, num, wt, fs) != 0)
                return -1;
            v->bool_value = otlp_pb_raw_bool(vs, p);
            v->value_case = AV(BOOL_VALUE);
            break;
        }
        case 3: {
            uint64_t x;
            if (rd_u64(c, &p, end, num, wt, fs, &x) != 0)
                return -1;
            v->int_value = (int64_t)x;
            v->value_case = AV(INT_VALUE);
            break;
        }
        case 4: {
            uint64_t x;
            if (rd_fixed64(c, &p, end, num, wt, fs, &x) != 0)
                return -1;
            memcpy(&v->double_value, &x, sizeof(x));
            v->value_case = AV(DOUBLE_VALUE);
            break;
        }
        case 5: {
            if (rd_len(c, &p, end, num, wt, fs, &s, &n) != 0)
                return -1;
            array_t *a = walloc(c, sizeof(*a));
            if (a == NULL || dec_array(c, s, s + n, depth + 1, a) != 0)
                return -1;
            v->array_value = a;
            v->value_case = AV(ARRAY_VALUE);
            break;
        }
        case 6: {
            if (rd_len(c, &p, end, num, wt, fs, &s, &n) != 0)
                return -1;
            kvlist_t *l = walloc(c, sizeof(*l));
            if (l == NULL || dec_kvlist(c, s, s + n, depth + 1, l) != 0)
                return -1;
            v->kvlist_value = l;
            v->value_case = AV(KVLIST_VALUE);
            break;
        }
        case 7: {
            ProtobufCBinaryData b;
            if (rd_bytes(c, &p, end, num, wt, fs, &b) != 0)
                return -1;
            v->bytes_value = b;
            v->value_case = AV(BYTES_VALUE);
            break;
        }
        default:
            if (skip_field(c, &p, end, num, wt, fs) != 0)
                return -1;
        }
    }
    return 0;
}

/*
 * A KeyValue given its value twice: protobuf-c 1.4 merges the two AnyValues.
 * The later member wins when set; when it is not, merge_messages keeps an
 * earlier bytes (non-empty), number, bool, array or kvlist member but drops
 * an earlier string (its default is the shared empty string, the zeroed
 * union is not), and fails the whole unpack when neither copy has a member.
 * Mirrored here so that both decoders accept the same bodies.
 */
static int merge_any(wctx_t *c, any_t *earlier, any_t *later, const uint8_t *fs, any_t **out)
{
    if (later->value_case != AV(_NOT_SET)) {
        *out = later;
        return 0;
    }
    switch (earlier->value_case) {
    case AV(_NOT_SET): return werr(c, "value without a member given twice at offset %zu", off(c, fs));
    case AV(STRING_VALUE): *out = later; return 0;
    case AV(BYTES_VALUE): *out = earlier->bytes_value.len > 0 ? earlier : later; return 0;
    default: *out = earlier; return 0;
    }
}

static int dec_kv(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, kvslot_t *slot)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    kv_t *kv = &slot->kv;
    *kv = (kv_t)OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        if (num == 1) {
            if (rd_str(c, &p, end, num, wt, fs, &kv->key) != 0)
                return -1;
        } else if (num == 2) {
            uint8_t *s;
            size_t n;
            if (rd_len(c, &p, end, num, wt, fs, &s, &n) != 0)
                return -1;
            if (kv->value == NULL) {
                if (dec_any(c, s, s + n, depth + 1, &slot->av) != 0)
                    return -1;
                kv->value = &slot->av;
            } else {
                any_t *later = walloc(c, sizeof(*later));
                if (later == NULL || dec_any(c, s, s + n, depth + 1, later) != 0)
                    return -1;
                if (merge_any(c, kv->value, later, fs, &kv->value) != 0)
                    return -1;
            }
        } else if (skip_field(c, &p, end, num, wt, fs) != 0) {
            return -1;
        }
    }
    return 0;
}

static int dec_scope(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, scope_t *sc)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *sc = (scope_t)OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    kvarr_t kva;
    kvarr_init(&kva, 4);
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        int rc;
        switch (num) {
        case 1: rc = rd_str(c, &p, end, num, wt, fs, &sc->name); break;
        case 2: rc = rd_str(c, &p, end, num, wt, fs, &sc->version); break;
        case 3: rc = kvarr_add(c, &kva, &sc->attributes, &sc->n_attributes, &p, end, num, wt, fs, depth + 1); break;
        case 4: rc = rd_u32(c, &p, end, num, wt, fs, &sc->dropped_attributes_count); break;
        default: rc = skip_field(c, &p, end, num, wt, fs); break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* resource.v1, trace.v1                                               */

static int dec_resource(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, resource_t *r)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *r = (resource_t)OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    kvarr_t kva;
    kvarr_init(&kva, 4);
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        int rc;
        if (num == 1)
            rc = kvarr_add(c, &kva, &r->attributes, &r->n_attributes, &p, end, num, wt, fs, depth + 1);
        else if (num == 2)
            rc = rd_u32(c, &p, end, num, wt, fs, &r->dropped_attributes_count);
        else
            rc = skip_field(c, &p, end, num, wt, fs);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int dec_status(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, pstatus_t *st)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *st = (pstatus_t)OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        int rc;
        if (num == 2) {
            rc = rd_str(c, &p, end, num, wt, fs, &st->message);
        } else if (num == 3) {
            uint32_t code = 0;
            rc = rd_u32(c, &p, end, num, wt, fs, &code);
            st->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)(int32_t)code;
        } else {
            rc = skip_field(c, &p, end, num, wt, fs);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int dec_event(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, pevent_t *e)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *e = (pevent_t)OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
    kvarr_t kva;
    kvarr_init(&kva, 4);
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        int rc;
        switch (num) {
        case 1: rc = rd_fixed64(c, &p, end, num, wt, fs, &e->time_unix_nano); break;
        case 2: rc = rd_str(c, &p, end, num, wt, fs, &e->name); break;
        case 3: rc = kvarr_add(c, &kva, &e->attributes, &e->n_attributes, &p, end, num, wt, fs, depth + 1); break;
        case 4: rc = rd_u32(c, &p, end, num, wt, fs, &e->dropped_attributes_count); break;
        default: rc = skip_field(c, &p, end, num, wt, fs); break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int dec_link(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, plink_t *l)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *l = (plink_t)OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT;
    kvarr_t kva;
    kvarr_init(&kva, 4);
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        int rc;
        switch (num) {
        case 1: rc = rd_bytes(c, &p, end, num, wt, fs, &l->trace_id); break;
        case 2: rc = rd_bytes(c, &p, end, num, wt, fs, &l->span_id); break;
        case 3: rc = rd_str(c, &p, end, num, wt, fs, &l->trace_state); break;
        case 4: rc = kvarr_add(c, &kva, &l->attributes, &l->n_attributes, &p, end, num, wt, fs, depth + 1); break;
        case 5: rc = rd_u32(c, &p, end, num, wt, fs, &l->dropped_attributes_count); break;
        case 6: rc = rd_fixed32(c, &p, end, num, wt, fs, &l->flags); break;
        default: rc = skip_field(c, &p, end, num, wt, fs); break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int dec_span(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, pspan_t *sp)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *sp = (pspan_t)OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
    kvarr_t kva;
    grow_t evg, lkg;
    kvarr_init(&kva, 8);
    grow_init(&evg, 2, sizeof(pevent_t));
    grow_init(&lkg, 2, sizeof(plink_t));
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        uint8_t *s;
        size_t len;
        int rc;
        switch (num) {
        case 1: rc = rd_bytes(c, &p, end, num, wt, fs, &sp->trace_id); break;
        case 2: rc = rd_bytes(c, &p, end, num, wt, fs, &sp->span_id); break;
        case 3: rc = rd_str(c, &p, end, num, wt, fs, &sp->trace_state); break;
        case 4: rc = rd_bytes(c, &p, end, num, wt, fs, &sp->parent_span_id); break;
        case 5: rc = rd_str(c, &p, end, num, wt, fs, &sp->name); break;
        case 6: {
            uint32_t k = 0;
            rc = rd_u32(c, &p, end, num, wt, fs, &k);
            sp->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)(int32_t)k;
            break;
        }
        case 7: rc = rd_fixed64(c, &p, end, num, wt, fs, &sp->start_time_unix_nano); break;
        case 8: rc = rd_fixed64(c, &p, end, num, wt, fs, &sp->end_time_unix_nano); break;
        case 9: rc = kvarr_add(c, &kva, &sp->attributes, &sp->n_attributes, &p, end, num, wt, fs, depth + 1); break;
        case 10: rc = rd_u32(c, &p, end, num, wt, fs, &sp->dropped_attributes_count); break;
        case 11:
            rc = rd_len(c, &p, end, num, wt, fs, &s, &len);
            if (rc == 0) {
                pevent_t *ev = grow_next(c, &evg, (void ***)&sp->events, sp->n_events);
                if (ev == NULL || dec_event(c, s, s + len, depth + 1, ev) != 0)
                    return -1;
                sp->events[sp->n_events++] = ev;
            }
            break;
        case 12: rc = rd_u32(c, &p, end, num, wt, fs, &sp->dropped_events_count); break;
        case 13:
            rc = rd_len(c, &p, end, num, wt, fs, &s, &len);
            if (rc == 0) {
                plink_t *lk = grow_next(c, &lkg, (void ***)&sp->links, sp->n_links);
                if (lk == NULL || dec_link(c, s, s + len, depth + 1, lk) != 0)
                    return -1;
                sp->links[sp->n_links++] = lk;
            }
            break;
        case 14: rc = rd_u32(c, &p, end, num, wt, fs, &sp->dropped_links_count); break;
        case 15: {
            rc = rd_len(c, &p, end, num, wt, fs, &s, &len);
            if (rc != 0)
                break;
            pstatus_t *st = walloc(c, sizeof(*st));
            if (st == NULL || dec_status(c, s, s + len, depth + 1, st) != 0)
                return -1;
            if (sp->status != NULL && !string_present(st->message))
                st->message = sp->status->message; /* merge: the earlier message survives an absent one */
            sp->status = st;
            break;
        }
        case 16: rc = rd_fixed32(c, &p, end, num, wt, fs, &sp->flags); break;
        default: rc = skip_field(c, &p, end, num, wt, fs); break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int dec_scope_spans(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, sspans_t *ss)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *ss = (sspans_t)OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    static const uint32_t f[3] = {2, 0, 0};
    size_t n[3];
    if (count_fields(c, p, end, f, n) != 0)
        return -1;
    pspan_t *spans = NULL;
    if (n[0] > 0) {
        void **ptrs = alloc_block(c, n[0], sizeof(pspan_t), (void **)&spans);
        if (ptrs == NULL)
            return -1;
        ss->spans = (pspan_t **)ptrs;
    }
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        uint8_t *s;
        size_t len;
        if (num == 1) {
            if (rd_len(c, &p, end, num, wt, fs, &s, &len) != 0)
                return -1;
            scope_t *sc = walloc(c, sizeof(*sc));
            if (sc == NULL || dec_scope(c, s, s + len, depth + 1, sc) != 0)
                return -1;
            if (ss->scope != NULL) {
                /* merge: attributes concatenate, strings of the later copy win when present */
                scope_t *e = ss->scope;
                if (!string_present(sc->name))
                    sc->name = e->name;
                if (!string_present(sc->version))
                    sc->version = e->version;
                if (e->n_attributes > 0) {
                    void **a = (void **)e->attributes;
                    size_t na = e->n_attributes;
                    if (concat(c, &a, &na, (void **)sc->attributes, sc->n_attributes) != 0)
                        return -1;
                    sc->attributes = (kv_t **)a;
                    sc->n_attributes = na;
                }
            }
            ss->scope = sc;
        } else if (num == 2) {
            if (rd_len(c, &p, end, num, wt, fs, &s, &len) != 0)
                return -1;
            if (ss->n_spans >= n[0])
                return werr(c, "inconsistent field count at offset %zu", off(c, fs));
            pspan_t *sp = &spans[ss->n_spans];
            if (dec_span(c, s, s + len, depth + 1, sp) != 0)
                return -1;
            ss->spans[ss->n_spans++] = sp;
        } else if (num == 3) {
            if (rd_str(c, &p, end, num, wt, fs, &ss->schema_url) != 0)
                return -1;
        } else if (skip_field(c, &p, end, num, wt, fs) != 0) {
            return -1;
        }
    }
    return 0;
}

static int dec_resource_spans(wctx_t *c, uint8_t *p, uint8_t *end, unsigned depth, rspans_t *rs)
{
    if (depth_ok(c, depth, p) != 0)
        return -1;
    *rs = (rspans_t)OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    static const uint32_t f[3] = {2, 0, 0};
    size_t n[3];
    if (count_fields(c, p, end, f, n) != 0)
        return -1;
    sspans_t *sss = NULL;
    if (n[0] > 0) {
        void **ptrs = alloc_block(c, n[0], sizeof(sspans_t), (void **)&sss);
        if (ptrs == NULL)
            return -1;
        rs->scope_spans = (sspans_t **)ptrs;
    }
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        uint8_t *s;
        size_t len;
        if (num == 1) {
            if (rd_len(c, &p, end, num, wt, fs, &s, &len) != 0)
                return -1;
            resource_t *r = walloc(c, sizeof(*r));
            if (r == NULL || dec_resource(c, s, s + len, depth + 1, r) != 0)
                return -1;
            if (rs->resource != NULL && rs->resource->n_attributes > 0) {
                void **a = (void **)rs->resource->attributes;
                size_t na = rs->resource->n_attributes;
                if (concat(c, &a, &na, (void **)r->attributes, r->n_attributes) != 0)
                    return -1;
                r->attributes = (kv_t **)a;
                r->n_attributes = na;
            }
            rs->resource = r;
        } else if (num == 2) {
            if (rd_len(c, &p, end, num, wt, fs, &s, &len) != 0)
                return -1;
            if (rs->n_scope_spans >= n[0])
                return werr(c, "inconsistent field count at offset %zu", off(c, fs));
            sspans_t *ss = &sss[rs->n_scope_spans];
            if (dec_scope_spans(c, s, s + len, depth + 1, ss) != 0)
                return -1;
            rs->scope_spans[rs->n_scope_spans++] = ss;
        } else if (num == 3) {
            if (rd_str(c, &p, end, num, wt, fs, &rs->schema_url) != 0)
                return -1;
        } else if (skip_field(c, &p, end, num, wt, fs) != 0) {
            return -1;
        }
    }
    return 0;
}

static int dec_request(wctx_t *c, uint8_t *p, uint8_t *end, req_t *req)
{
    if (depth_ok(c, 1, p) != 0)
        return -1;
    *req = (req_t)OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    static const uint32_t f[3] = {1, 0, 0};
    size_t n[3];
    if (count_fields(c, p, end, f, n) != 0)
        return -1;
    rspans_t *rss = NULL;
    if (n[0] > 0) {
        void **ptrs = alloc_block(c, n[0], sizeof(rspans_t), (void **)&rss);
        if (ptrs == NULL)
            return -1;
        req->resource_spans = (rspans_t **)ptrs;
    }
    while (p < end) {
        uint8_t *fs = p;
        uint32_t num;
        unsigned wt;
        if (rd_tag(c, &p, end, &num, &wt) != 0)
            return -1;
        if (num != 1) {
            if (skip_field(c, &p, end, num, wt, fs) != 0)
                return -1;
            continue;
        }
        uint8_t *s;
        size_t len;
        if (rd_len(c, &p, end, num, wt, fs, &s, &len) != 0)
            return -1;
        if (req->n_resource_spans >= n[0])
            return werr(c, "inconsistent field count at offset %zu", off(c, fs));
        rspans_t *rs = &rss[req->n_resource_spans];
        if (dec_resource_spans(c, s, s + len, 2, rs) != 0)
            return -1;
        req->resource_spans[req->n_resource_spans++] = rs;
    }
    return 0;
}

static int decode_buf(uint8_t *buf, size_t len, unsigned max_depth, arena_t *arena, req_t **out, int *ascii, char *err,
                      size_t err_size)
{
    wctx_t c = {arena, buf, max_depth == 0 ? 1 : max_depth, 0, 0, err, err_size, 0};
    if (err_size > 0)
        err[0] = '\0';
    req_t *req = walloc(&c, sizeof(*req));
    if (req == NULL)
        return OTLP_WIRE_NOMEM;
    if (dec_request(&c, buf, buf + len, req) != 0)
        return c.oom ? OTLP_WIRE_NOMEM : OTLP_WIRE_INVALID;
    *out = req;
    if (ascii != NULL)
        *ascii = (c.high & 0x8080808080808080ull) == 0;
    return 0;
}

int otlp_wire_decode_traces(const uint8_t *data, size_t len, unsigned max_depth, arena_t *arena, req_t **out,
                            int *ascii, char *err, size_t err_size)
{
    if (err_size > 0)
        err[0] = '\0';
    uint8_t *buf = arena_alloc(arena, len + 1);
    if (buf == NULL)
        return OTLP_WIRE_NOMEM;
    if (len > 0)
        memcpy(buf, data, len);
    buf[len] = '\0';
    return decode_buf(buf, len, max_depth, arena, out, ascii, err, err_size);
}

int otlp_wire_decode_traces_inplace(uint8_t *data, size_t len, unsigned max_depth, arena_t *arena, req_t **out,
                                    int *ascii, char *err, size_t err_size)
{
    static uint8_t empty[1];
    return decode_buf(len > 0 ? data : empty, len, max_depth, arena, out, ascii, err, err_size);
}

int otlp_wire_decode_part(enum otlp_wire_part part, uint8_t *data, size_t len, unsigned depth, unsigned max_depth,
                          arena_t *arena, void **out, char *err, size_t err_size)
{
    static uint8_t empty[1];
    uint8_t *buf = len > 0 ? data : empty;
    wctx_t c = {arena, buf, max_depth == 0 ? 1 : max_depth, 0, 0, err, err_size, 0};
    if (err_size > 0)
        err[0] = '\0';
    void *m = walloc(&c, part == OTLP_WIRE_PART_RESOURCE ? sizeof(resource_t)
                         : part == OTLP_WIRE_PART_SCOPE  ? sizeof(scope_t)
                                                         : sizeof(pspan_t));
    if (m == NULL)
        return OTLP_WIRE_NOMEM;
    int rc;
    switch (part) {
    case OTLP_WIRE_PART_RESOURCE: rc = dec_resource(&c, buf, buf + len, depth, m); break;
    case OTLP_WIRE_PART_SCOPE: rc = dec_scope(&c, buf, buf + len, depth, m); break;
    default: rc = dec_span(&c, buf, buf + len, depth, m); break;
    }
    if (rc != 0)
        return c.oom ? OTLP_WIRE_NOMEM : OTLP_WIRE_INVALID;
    *out = m;
    return 0;
}
