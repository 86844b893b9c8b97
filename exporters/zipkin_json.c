/*
 * zipkin_json: Zipkin v2 JSON decoding (yajl callbacks) and encoding (by
 * hand into buf_t); see zipkin_json.h for what is accepted.
 *
 * The decoder is a small state machine driven by yajl's callbacks: a stack
 * of contexts (the span list, a span, an endpoint, the annotation list, an
 * annotation, the tag map, or a value being skipped) and the field named by
 * the last key. Depth is checked on every open bracket, so a hostile
 * document is refused at the first level past the limit. Tags and
 * annotations of the current span collect in two scratch arrays (bounded by
 * the limits, reused for every span) and are copied into the arena once the
 * span closes, so the cost per field is a key compare and at most one bump
 * allocation.
 */
#include "zipkin_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <yajl/yajl_parse.h>

#include "hex.h"
#include "utf8.h"

#define LIST_PREFIX "Malformed reading List<Span> from json: "

enum ctx_kind {
    X_ROOT,
    X_TRACES, /* the outer list of zipkin_json_decode_traces */
    X_LIST,
    X_SPAN,
    X_ENDPOINT,
    X_ANNOTATIONS,
    X_ANNOTATION,
    X_TAGS,
    X_SKIP,
};

enum field {
    F_UNKNOWN,
    F_TRACE_ID,
    F_PARENT_ID,
    F_ID,
    F_KIND,
    F_NAME,
    F_TIMESTAMP,
    F_DURATION,
    F_LOCAL,
    F_REMOTE,
    F_ANNOTATIONS,
    F_TAGS,
    F_DEBUG,
    F_SHARED,
    F_SERVICE_NAME,
    F_IPV4,
    F_IPV6,
    F_PORT,
    F_VALUE,
};

static const char *const field_names[] = {
    "?",           "traceId",       "parentId",       "id",          "kind",  "name",  "timestamp",
    "duration",    "localEndpoint", "remoteEndpoint", "annotations", "tags",  "debug", "shared",
    "serviceName", "ipv4",          "ipv6",           "port",        "value",
};

enum vtype { V_NULL, V_BOOL, V_NUMBER, V_STRING, V_OBJECT, V_ARRAY };

static const char *const vtype_names[] = {"NULL", "BOOLEAN", "NUMBER", "STRING", "BEGIN_OBJECT", "BEGIN_ARRAY"};

typedef struct dec {
    const char *data;
    size_t len;
    arena_t *arena;
    zipkin_limits_t lim;
    span_sink_fn sink;
    void *sink_ctx;
    zipkin_result_t *res;

    uint8_t stack[ZIPKIN_MAX_DEPTH_CAP + 1]; /* stack[0] is X_ROOT */
    uint32_t depth;                          /* entries used in stack */
    enum field field;                        /* field of the last key in the open object */
    uint32_t n_spans;                        /* spans opened so far */
    int failed;                              /* res->error holds our reason */
    int list_done;
    int traces; /* a list of span lists (zipkin_json_decode_traces) */

    span_t span;
    span_endpoint_t *ep;
    uint8_t has_trace_id, has_id, over_limit, skip_tag;
    str_t tag_key;
    span_tag_t *tags;
    uint32_t n_tags, cap_tags;
    span_annotation_t *anns;
    uint32_t n_anns, cap_anns;
    uint64_t ann_ts;
    str_t ann_value;
    uint8_t ann_has_ts, ann_has_value;
} dec_t;

/* ---- small parsers ---- */

/* Integer text (optionally a fraction-free float such as 1.0e3), into int64. */
static int parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;
    if (len > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == len)
        return -1;
    for (; i < len; i++) {
        unsigned d = (unsigned)(uint8_t)s[i] - '0';
        if (d > 9)
            goto not_integer;
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return -1;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)v;
    }
    return 0;

not_integer:;
    /* as Java's nextLong: a double is accepted when it is exactly an integer */
    char tmp[64];
    if (len >= sizeof(tmp))
        return -1;
    for (size_t j = 0; j < len; j++) {
        char c = s[j];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'))
            return -1;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    double dv = strtod(tmp, &end);
    if (*end != '\0' || !isfinite(dv) || dv != floor(dv) || dv < -9.2e18 || dv > 9.2e18)
        return -1;
    *out = (int64_t)dv;
    return 0;
}

/* ---- errors ---- */

static int dfail(dec_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record the reason the request fails and cancel the parse (yajl callbacks return 0). */
static int dfail(dec_t *d, const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    zipkin_span_fail(d->res, LIST_PREFIX "%s", detail);
    d->failed = 1;
    return 0;
}

static int too_large(dec_t *d)
{
    zipkin_span_fail(d->res, "Request too large: span data exceeds the request memory limit");
    d->failed = 1;
    return 0;
}

static void reject_span(dec_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A per-span limit: the span will be dropped; the first reason of the request is kept. */
static void reject_span(dec_t *d, const char *fmt, ...)
{
    d->over_limit = 1;
    if (d->res->error[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->res->error, sizeof(d->res->error), fmt, ap);
    va_end(ap);
}

static uint32_t span_index(const dec_t *d)
{
    return d->n_spans ? d->n_spans - 1 : 0;
}

/* ---- strings ---- */

static int in_input(const dec_t *d, const unsigned char *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)d->data;
    return a >= lo && a - lo < d->len;
}

/*
 * Make s outlive the callback, repaired to valid UTF-8 (limits apply to what
 * is kept): a slice of the input when it is one and valid, else an arena copy.
 */
static int keep(dec_t *d, const unsigned char *s, size_t len, str_t *out)
{
    if (len > UINT32_MAX)
        return too_large(d);
    *out = (str_t){len ? (const char *)s : "", (uint32_t)len};
    if (utf8_repair(d->arena, out, len > 0 && !in_input(d, s)) != 0)
        return too_large(d);
    return 1;
}

static int keep_lower(dec_t *d, const unsigned char *s, size_t len, str_t *out)
{
    if (len > UINT32_MAX)
        return too_large(d);
    *out = (str_t){(const char *)s, (uint32_t)len};
    if (utf8_lower(d->arena, out, !in_input(d, s)) != 0)
        return too_large(d);
    return 1;
}

/* ---- values of each context ---- */

static int expect_text(dec_t *d, enum vtype t, const char *where)
{
    if (t == V_STRING || t == V_NUMBER)
        return 1;
    return dfail(d, "$[%u]%s.%s: Expected a string but was %s", span_index(d), where, field_names[d->field],
                 vtype_names[t]);
}

static int wrong_type(dec_t *d, const char *where, const char *expected, enum vtype t)
{
    return dfail(d, "$[%u]%s.%s: Expected %s but was %s", span_index(d), where, field_names[d->field], expected,
                 vtype_names[t]);
}

static int span_value(dec_t *d, enum vtype t, const unsigned char *s, size_t len)
{
    span_t *sp = &d->span;
    const char *str = (const char *)s;
    int64_t n;

    if (d->field == F_UNKNOWN)
        return 1;
    if (t == V_NULL && d->field != F_TRACE_ID && d->field != F_ID)
        return 1; /* null optional fields are skipped */
    switch (d->field) {
    case F_TRACE_ID:
        if (!expect_text(d, t, ""))
            return 0;
        if (len == 0 || len > 32)
            return dfail(d, "$[%u].traceId: length must be 1-32 hex characters", span_index(d));
        sp->trace_id_high = 0;
        if ((len > 16 && hex_parse_u64(str, len - 16, HEX_LOWER, &sp->trace_id_high) != 0) ||
            hex_parse_u64(str + (len > 16 ? len - 16 : 0), len > 16 ? 16 : len, HEX_LOWER, &sp->trace_id_low) != 0)
            return dfail(d, "$[%u].traceId: %.*s should be lower-hex encoded with no prefix", span_index(d),
                         (int)(len > 32 ? 32 : len), str);
        if (sp->trace_id_high == 0 && sp->trace_id_low == 0)
            return dfail(d, "$[%u].traceId is all zeros", span_index(d));
        d->has_trace_id = 1;
        return 1;
    case F_ID:
        if (!expect_text(d, t, ""))
            return 0;
        if (len == 0 || len > 16)
            return dfail(d, "$[%u].id: length must be 1-16 hex characters", span_index(d));
        if (hex_parse_u64(str, len, HEX_LOWER, &sp->id) != 0)
            return dfail(d, "$[%u].id: %.*s should be lower-hex encoded with no prefix", span_index(d), (int)len, str);
        if (sp->id == 0)
            return dfail(d, "$[%u].id is all zeros", span_index(d));
        d->has_id = 1;
        return 1;
    case F_PARENT_ID:
        if (!expect_text(d, t, ""))
            return 0;
        if (len == 0 || len > 16)
            return dfail(d, "$[%u].parentId: length must be 1-16 hex characters", span_index(d));
        if (hex_parse_u64(str, len, HEX_LOWER, &sp->parent_id) != 0)
            return dfail(d, "$[%u].parentId: %.*s should be lower-hex encoded with no prefix", span_index(d), (int)len,
                         str);
        return 1;
    case F_KIND: {
        if (!expect_text(d, t, ""))
            return 0;
        int k = span_kind_parse(str, len);
        if (k < 0)
            return dfail(d, "$[%u].kind: No enum constant Span.Kind.%.*s", span_index(d), (int)(len > 32 ? 32 : len),
                         str);
        sp->kind = (enum span_kind)k;
        return 1;
    }
    case F_NAME:
        if (!expect_text(d, t, ""))
            return 0;
        return keep_lower(d, s, len, &sp->name);
    case F_TIMESTAMP:
    case F_DURATION:
        if (t != V_STRING && t != V_NUMBER)
            return wrong_type(d, "", "a long", t);
        if (parse_i64(str, len, &n) != 0)
            return dfail(d, "$[%u].%s: %.*s is not a long", span_index(d), field_names[d->field],
                         (int)(len > 32 ? 32 : len), str);
        *(d->field == F_TIMESTAMP ? &sp->timestamp_us : &sp->duration_us) = n < 0 ? 0 : (uint64_t)n;
        return 1;
    case F_DEBUG:
    case F_SHARED:
        if (t != V_BOOL)
            return wrong_type(d, "", "a boolean", t);
        if (len)
            *(d->field == F_DEBUG ? &sp->debug : &sp->shared) = 1;
        return 1;
    case F_LOCAL:
    case F_REMOTE:
    case F_TAGS: return wrong_type(d, "", "BEGIN_OBJECT", t);
    case F_ANNOTATIONS: return wrong_type(d, "", "BEGIN_ARRAY", t);
    default: return 1;
    }
}

static int endpoint_value(dec_t *d, enum vtype t, const unsigned char *s, size_t len)
{
    span_endpoint_t *ep = d->ep;
    int64_t n;
    if (d->field == F_UNKNOWN || t == V_NULL)
        return 1;
    switch (d->field) {
    case F_SERVICE_NAME:
        if (!expect_text(d, t, ".endpoint"))
            return 0;
        return keep_lower(d, s, len, &ep->service_name);
    case F_IPV4:
    case F_IPV6:
        if (!expect_text(d, t, ".endpoint"))
            return 0;
        (void)zipkin_span_ip_text(ep, (const char *)s, len); /* Zipkin ignores bad addresses */
        return 1;
    case F_PORT:
        if (t != V_STRING && t != V_NUMBER)
            return wrong_type(d, ".endpoint", "an int", t);
        if (parse_i64((const char *)s, len, &n) != 0 || n > INT32_MAX || n < INT32_MIN)
            return dfail(d, "$[%u].endpoint.port: %.*s is not an int", span_index(d), (int)(len > 32 ? 32 : len),
                         (const char *)s);
        if (n > 0xffff)
            return dfail(d, "$[%u].endpoint.port: invalid port %lld", span_index(d), (long long)n);
        ep->port = n < 0 ? 0 : (uint16_t)n;
        return 1;
    default: return 1;
    }
}

static int annotation_value(dec_t *d, enum vtype t, const unsigned char *s, size_t len)
{
    int64_t n;
    switch (d->field) {
    case F_TIMESTAMP:
        if (t != V_STRING && t != V_NUMBER)
            return wrong_type(d, ".annotations[]", "a long", t);
        if (parse_i64((const char *)s, len, &n) != 0)
            return dfail(d, "$[%u].annotations[].timestamp: %.*s is not a long", span_index(d),
                         (int)(len > 32 ? 32 : len), (const char *)s);
        d->ann_ts = n < 0 ? 0 : (uint64_t)n;
        d->ann_has_ts = 1;
        return 1;
    case F_VALUE:
        if (!expect_text(d, t, ".annotations[]"))
            return 0;
        if (!keep(d, s, len, &d->ann_value))
            return 0;
        d->ann_has_value = 1;
        return 1;
    default: return 1;
    }
}

static int grow(void **arr, uint32_t *cap, size_t elem, uint32_t limit)
{
    uint32_t want = *cap ? *cap * 2 : 16;
    if (want > limit)
        want = limit;
    void *p = realloc(*arr, (size_t)want * elem);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = want;
    return 0;
}

static int tag_value(dec_t *d, enum vtype t, const unsigned char *s, size_t len)
{
    if (t == V_NULL)
        return dfail(d, "$[%u].tags: No value at %.*s", span_index(d), (int)(d->tag_key.len > 64 ? 64 : d->tag_key.len),
                     d->tag_key.ptr);
    if (t != V_STRING && t != V_NUMBER)
        return dfail(d, "$[%u].tags.%.*s: Expected a string but was %s", span_index(d),
                     (int)(d->tag_key.len > 64 ? 64 : d->tag_key.len), d->tag_key.ptr, vtype_names[t]);
    if (d->skip_tag || d->over_limit)
        return 1;
    str_t value;
    if (!keep(d, s, len, &value))
        return 0;
    if (value.len > d->lim.max_tag_value_len) {
        reject_span(d, "span $[%u] rejected: tag %.*s value longer than %u bytes", span_index(d),
                    (int)(d->tag_key.len > 64 ? 64 : d->tag_key.len), d->tag_key.ptr, d->lim.max_tag_value_len);
        return 1;
    }
    if (d->n_tags >= d->lim.max_tags) {
        reject_span(d, "span $[%u] rejected: more than %u tags", span_index(d), d->lim.max_tags);
        return 1;
    }
    if (d->n_tags == d->cap_tags && grow((void **)&d->tags, &d->cap_tags, sizeof(*d->tags), d->lim.max_tags) != 0)
        return too_large(d);
    d->tags[d->n_tags++] = (span_tag_t){d->tag_key, value};
    return 1;
}

static int on_value(dec_t *d, enum vtype t, const unsigned char *s, size_t len)
{
    switch ((enum ctx_kind)d->stack[d->depth - 1]) {
    case X_ROOT:
    case X_TRACES: return dfail(d, "Expected BEGIN_ARRAY but was %s", vtype_names[t]);
    case X_LIST: return dfail(d, "$[%u]: Expected BEGIN_OBJECT but was %s", d->n_spans, vtype_names[t]);
    case X_ANNOTATIONS:
        return dfail(d, "$[%u].annotations[]: Expected BEGIN_OBJECT but was %s", span_index(d), vtype_names[t]);
    case X_SPAN: return span_value(d, t, s, len);
    case X_ENDPOINT: return endpoint_value(d, t, s, len);
    case X_ANNOTATION: return annotation_value(d, t, s, len);
    case X_TAGS: return tag_value(d, t, s, len);
    case X_SKIP:
    default: return 1;
    }
}

/* ---- yajl callbacks ---- */

static int cb_null(void *ctx)
{
    return on_value(ctx, V_NULL, NULL, 0);
}

static int cb_boolean(void *ctx, int v)
{
    /* the length carries the value: 1 = true */
    return on_value(ctx, V_BOOL, (const unsigned char *)"", v ? 1 : 0);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    return on_value(ctx, V_NUMBER, (const unsigned char *)s, len);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    return on_value(ctx, V_STRING, s, len);
}

static int push(dec_t *d, enum ctx_kind k)
{
    if (d->depth - 1 >= d->lim.max_depth)
        return dfail(d, "nesting deeper than %u levels", d->lim.max_depth);
    d->stack[d->depth++] = (uint8_t)k;
    return 1;
}

static int start_span(dec_t *d)
{
    if (d->n_spans >= d->lim.max_spans)
        return dfail(d, "more than %u spans in one request", d->lim.max_spans);
    d->n_spans++;
    memset(&d->span, 0, sizeof(d->span));
    d->has_trace_id = d->has_id = d->over_limit = 0;
    d->n_tags = d->n_anns = 0;
    return push(d, X_SPAN);
}

static int cb_start_map(void *ctx)
{
    dec_t *d = ctx;
    enum ctx_kind top = (enum ctx_kind)d->stack[d->depth - 1];
    switch (top) {
    case X_ROOT:
    case X_TRACES: return dfail(d, "Expected BEGIN_ARRAY but was BEGIN_OBJECT");
    case X_LIST: return start_span(d);
    case X_SPAN:
        if (d->field == F_LOCAL || d->field == F_REMOTE) {
            d->ep = d->field == F_LOCAL ? &d->span.local : &d->span.remote;
            memset(d->ep, 0, sizeof(*d->ep));
            return push(d, X_ENDPOINT);
        }
        if (d->field == F_TAGS)
            return push(d, X_TAGS);
        if (d->field == F_UNKNOWN)
            return push(d, X_SKIP);
        return on_value(d, V_OBJECT, NULL, 0);
    case X_ANNOTATIONS: d->ann_has_ts = d->ann_has_value = 0; return push(d, X_ANNOTATION);
    case X_ENDPOINT:
    case X_ANNOTATION:
        if (d->field == F_UNKNOWN)
            return push(d, X_SKIP);
        return on_value(d, V_OBJECT, NULL, 0);
    case X_TAGS: return on_value(d, V_OBJECT, NULL, 0);
    case X_SKIP:
    default: return push(d, X_SKIP);
    }
}

static int cb_start_array(void *ctx)
{
    dec_t *d = ctx;
    enum ctx_kind top = (enum ctx_kind)d->stack[d->depth - 1];
    switch (top) {
    case X_ROOT: return push(d, d->traces ? X_TRACES : X_LIST);
    case X_TRACES:
        if (d->sink(d->sink_ctx, NULL) != 0) {
            zipkin_span_fail(d->res, "trace refused by the span sink");
            d->failed = 1;
            return 0;
        }
        return push(d, X_LIST);
    case X_SPAN:
        if (d->field == F_ANNOTATIONS)
            return push(d, X_ANNOTATIONS);
        if (d->field == F_UNKNOWN)
            return push(d, X_SKIP);
        return on_value(d, V_ARRAY, NULL, 0);
    case X_ENDPOINT:
    case X_ANNOTATION:
        if (d->field == F_UNKNOWN)
            return push(d, X_SKIP);
        return on_value(d, V_ARRAY, NULL, 0);
    case X_LIST:
    case X_ANNOTATIONS:
    case X_TAGS: return on_value(d, V_ARRAY, NULL, 0);
    case X_SKIP:
    default: return push(d, X_SKIP);
    }
}

#define KEY_IS(lit) (len == sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)

static enum field span_field(const unsigned char *k, size_t len)
{
    switch (len) {
    case 2: return KEY_IS("id") ? F_ID : F_UNKNOWN;
    case 4:
        if (KEY_IS("name"))
            return F_NAME;
        if (KEY_IS("kind"))
            return F_KIND;
        return KEY_IS("tags") ? F_TAGS : F_UNKNOWN;
    case 5: return KEY_IS("debug") ? F_DEBUG : F_UNKNOWN;
    case 6: return KEY_IS("shared") ? F_SHARED : F_UNKNOWN;
    case 7: return KEY_IS("traceId") ? F_TRACE_ID : F_UNKNOWN;
    case 8:
        if (KEY_IS("parentId"))
            return F_PARENT_ID;
        return KEY_IS("duration") ? F_DURATION : F_UNKNOWN;
    case 9: return KEY_IS("timestamp") ? F_TIMESTAMP : F_UNKNOWN;
    case 11: return KEY_IS("annotations") ? F_ANNOTATIONS : F_UNKNOWN;
    case 13: return KEY_IS("localEndpoint") ? F_LOCAL : F_UNKNOWN;
    case 14: return KEY_IS("remoteEndpoint") ? F_REMOTE : F_UNKNOWN;
    default: return F_UNKNOWN;
    }
}

static enum field endpoint_field(const unsigned char *k, size_t len)
{
    if (len == 4) {
        if (KEY_IS("ipv4"))
            return F_IPV4;
        if (KEY_IS("ipv6"))
            return F_IPV6;
        return KEY_IS("port") ? F_PORT : F_UNKNOWN;
    }
    return KEY_IS("serviceName") ? F_SERVICE_NAME : F_UNKNOWN;
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t len)
{
    dec_t *d = ctx;
    switch ((enum ctx_kind)d->stack[d->depth - 1]) {
    case X_SPAN: d->field = span_field(k, len); return 1;
    case X_ENDPOINT: d->field = endpoint_field(k, len); return 1;
    case X_ANNOTATION: d->field = KEY_IS("timestamp") ? F_TIMESTAMP : KEY_IS("value") ? F_VALUE : F_UNKNOWN; return 1;
    case X_TAGS:
        d->skip_tag = 0;
        if (d->over_limit)
            return 1;
        /* copy now: an escaped key lives in yajl's buffer, which the value reuses */
        if (!keep(d, k, len, &d->tag_key))
            return 0;
        if (d->tag_key.len > d->lim.max_tag_key_len) {
            reject_span(d, "span $[%u] rejected: tag key longer than %u bytes", span_index(d), d->lim.max_tag_key_len);
            d->skip_tag = 1;
            d->tag_key = (str_t){"", 0};
        }
        return 1;
    default: d->field = F_UNKNOWN; return 1;
    }
}

static int finish_span(dec_t *d)
{
    span_t *sp = &d->span;
    if (!d->has_trace_id || !d->has_id)
        return dfail(d, "$[%u]: Missing :%s%s", span_index(d), d->has_trace_id ? "" : " traceId",
                     d->has_id ? "" : " id");
    if (d->over_limit) {
        d->res->rejected++;
        return 1;
    }
    if (zipkin_span_finish(sp, d->tags, d->n_tags, d->anns, d->n_anns, d->arena) != 0)
        return too_large(d);
    char saved = d->res->error[0];
    d->res->error[0] = '\0';
    if (d->sink(d->sink_ctx, sp) != 0) {
        if (d->res->error[0] == '\0')
            zipkin_span_fail(d->res, "span $[%u] refused by the span sink", span_index(d));
        d->failed = 1;
        return 0;
    }
    d->res->error[0] = saved;
    d->res->accepted++;
    return 1;
}

static int finish_annotation(dec_t *d)
{
    if (!d->ann_has_ts || !d->ann_has_value)
        return dfail(d, "$[%u]: Incomplete annotation at annotations[%u]", span_index(d), d->n_anns);
    if (d->over_limit)
        return 1;
    if (d->n_anns >= d->lim.max_annotations) {
        reject_span(d, "span $[%u] rejected: more than %u annotations", span_index(d), d->lim.max_annotations);
        return 1;
    }
    if (d->n_anns == d->cap_anns &&
        grow((void **)&d->anns, &d->cap_anns, sizeof(*d->anns), d->lim.max_annotations) != 0)
        return too_large(d);
    d->anns[d->n_anns++] = (span_annotation_t){d->ann_ts, d->ann_value};
    return 1;
}

static int cb_end_map(void *ctx)
{
    dec_t *d = ctx;
    enum ctx_kind k = (enum ctx_kind)d->stack[--d->depth];
    d->field = F_UNKNOWN;
    switch (k) {
    case X_SPAN: return finish_span(d);
    case X_ENDPOINT:
        if (d->ep == &d->span.local)
            d->span.has_local = 1;
        else
            d->span.has_remote = 1;
        return 1;
    case X_ANNOTATION: return finish_annotation(d);
    default: return 1;
    }
}

static int cb_end_array(void *ctx)
{
    dec_t *d = ctx;
    if (d->depth == 2) /* the outermost list closed */
        d->list_done = 1;
    d->depth--;
    d->field = F_UNKNOWN;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

static void yajl_reason(dec_t *d, yajl_handle h, size_t at)
{
    unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)d->data, d->len);
    const char *m = msg ? (const char *)msg : "parse error";
    size_t n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    zipkin_span_fail(d->res, LIST_PREFIX "%.*s at byte %zu", (int)n, m, at);
    if (msg)
        yajl_free_error(h, msg);
}

static int decode(const char *data, size_t len, int traces, arena_t *arena, const zipkin_limits_t *lim,
                  span_sink_fn sink, void *ctx, zipkin_result_t *res)
{
    dec_t d;
    memset(&d, 0, sizeof(d));
    d.traces = traces;
    d.data = data;
    d.len = len;
    d.arena = arena;
    d.sink = sink;
    d.sink_ctx = ctx;
    d.res = res;
    zipkin_span_limits(lim, &d.lim);
    zipkin_span_result_init(res);
    d.stack[0] = X_ROOT;
    d.depth = 1;

    int rc = -1;
    yajl_handle h = yajl_alloc(&callbacks, NULL, &d);
    if (h == NULL) {
        zipkin_span_fail(res, "out of memory");
        return -1;
    }
    /* ill-formed UTF-8 is repaired where strings are kept, as a Zipkin server's decoder does */
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)data, len);
    size_t at = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at = len; /* an error now means the input ended early */
    }
    if (st == yajl_status_client_canceled || d.failed) {
        if (!d.failed)
            zipkin_span_fail(res, LIST_PREFIX "parse cancelled");
        goto out;
    }
    if (st != yajl_status_ok) {
        if (len == 0)
            zipkin_span_fail(res, LIST_PREFIX "empty body");
        else
            yajl_reason(&d, h, at);
        goto out;
    }
    if (!d.list_done) {
        zipkin_span_fail(res, LIST_PREFIX "empty body");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        res->accepted = 0;
    }
    yajl_free(h);
    free(d.tags);
    free(d.anns);
    return rc;
}

int zipkin_json_decode(const char *data, size_t len, arena_t *arena, const zipkin_limits_t *lim, span_sink_fn sink,
                       void *ctx, zipkin_result_t *res)
{
    return decode(data, len, 0, arena, lim, sink, ctx, res);
}

int zipkin_json_decode_traces(const char *data, size_t len, arena_t *arena, const zipkin_limits_t *lim,
                              span_sink_fn sink, void *ctx, zipkin_result_t *res)
{
    return decode(data, len, 1, arena, lim, sink, ctx, res);
}

/* ---- encoding ---- */

/*
 * The span writer reserves an upper bound of the span's JSON once (every
 * string byte may become a 6-byte \u escape) and then writes through a
 * pointer: no call per field, no capacity check per append. Strings are
 * scanned for bytes that need escaping 16 at a time (SSE2); the common
 * string has none and is one memcpy.
 */
#define PUT_LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) += sizeof(s) - 1)

/* Bytes of s[0..n) before the first one JSON must escape (a control byte, '"' or '\'). */
static inline size_t json_safe_prefix(const char *s, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl)); /* v <= 0x1f, unsigned */
        int mask = _mm_movemask_epi8(bad);
        if (mask != 0)
            return i + (size_t)__builtin_ctz((unsigned)mask);
    }
#endif
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return i;
    }
    return n;
}

/*
 * Short strings (most tag keys and values) are read as one 16-byte load
 * when that cannot cross into the next page, and written as one 16-byte
 * store: the writer's bound leaves that much room past every string. Not
 * under AddressSanitizer, which rightly sees bytes past the string read.
 */
#if defined(__SSE2__) && !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer)
#define JSON_SHORT_LOAD 1
#endif
#else
#define JSON_SHORT_LOAD 1
#endif
#endif

/* Write s as a JSON string with its quotes at p (room for 6 * len + 18 bytes); returns the end. */
static char *put_quoted(char *p, str_t s)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    size_t i = 0, n = s.len;
#ifdef JSON_SHORT_LOAD
    if (n < 16 && ((uintptr_t)s.ptr & 4095) <= 4096 - 16) {
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s.ptr);
        __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
        if ((_mm_movemask_epi8(bad) & ((1u << n) - 1)) == 0) {
            _mm_storeu_si128((__m128i *)(void *)p, v);
            p += n;
            *p++ = '"';
            return p;
        }
    }
#endif
    while (i < n) {
        size_t k = json_safe_prefix(s.ptr + i, n - i);
        memcpy(p, s.ptr + i, k);
        p += k;
        i += k;
        if (i == n)
            break;
        unsigned char c = (unsigned char)s.ptr[i++];
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p++ = '"';
    return p;
}

/* put_quoted into a buf. */
static void buf_put_quoted(buf_t *b, str_t s)
{
    buf_reserve(b, 6 * (size_t)s.len + 18);
    char *p = put_quoted(b->data + b->len, s);
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
}

#define LIT(b, s) buf_append((b), (s), sizeof(s) - 1)

static int endpoint_present(const span_endpoint_t *e)
{
    return e->service_name.len > 0 || e->has_ipv4 || e->has_ipv6 || e->port != 0;
}

/* An endpoint object: its fields joined by commas. Room: 6 * service name + 100. */
static char *put_endpoint(char *p, const span_endpoint_t *e)
{
    char *start;
    *p++ = '{';
    start = p;
    if (e->service_name.len > 0) {
        PUT_LIT(p, "\"serviceName\":");
        p = put_quoted(p, e->service_name);
    }
    if (e->has_ipv4) {
        if (p != start)
            *p++ = ',';
        PUT_LIT(p, "\"ipv4\":\"");
        p += zipkin_span_format_ipv4(e->ipv4, p);
        *p++ = '"';
    }
    if (e->has_ipv6) {
        if (p != start)
            *p++ = ',';
        PUT_LIT(p, "\"ipv6\":\"");
        p += zipkin_span_format_ipv6(e->ipv6, p);
        *p++ = '"';
    }
    if (e->port != 0) {
        if (p != start)
            *p++ = ',';
        PUT_LIT(p, "\"port\":");
        p = buf_put_u64(p, e->port);
    }
    *p++ = '}';
    return p;
}

/* Bytes the JSON of s can take at most (and 16 to spare after every string, for put_quoted). */
static size_t span_json_bound(const span_t *s)
{
    size_t n = 400 + 6 * (size_t)s->name.len; /* ids, kind, numbers, flags, punctuation */
    n += 2 * 100 + 6 * ((size_t)s->local.service_name.len + s->remote.service_name.len);
    for (uint32_t i = 0; i < s->n_annotations; i++)
        n += 64 + 6 * (size_t)s->annotations[i].value.len;
    for (uint32_t i = 0; i < s->n_tags; i++)
        n += 40 + 6 * ((size_t)s->tags[i].key.len + s->tags[i].value.len);
    return n;
}

void zipkin_json_encode_span(const span_t *s, buf_t *out)
{
    buf_reserve(out, span_json_bound(s));
    char *p = out->data + out->len;
    PUT_LIT(p, "{\"traceId\":\"");
    p += span_format_trace_id(s->trace_id_high, s->trace_id_low, p);
    if (s->parent_id != 0 && s->parent_id != s->id) {
        PUT_LIT(p, "\",\"parentId\":\"");
        span_format_id(s->parent_id, p);
        p += 16;
    }
    PUT_LIT(p, "\",\"id\":\"");
    span_format_id(s->id, p);
    p += 16;
    *p++ = '"';
    const char *kind = span_kind_name(s->kind);
    if (kind != NULL) {
        PUT_LIT(p, ",\"kind\":\"");
        size_t kl = strlen(kind);
        memcpy(p, kind, kl);
        p += kl;
        *p++ = '"';
    }
    if (s->name.len > 0) {
        PUT_LIT(p, ",\"name\":");
        p = put_quoted(p, s->name);
    }
    if (s->timestamp_us != 0) {
        PUT_LIT(p, ",\"timestamp\":");
        p = buf_put_u64(p, s->timestamp_us);
    }
    if (s->duration_us != 0) {
        PUT_LIT(p, ",\"duration\":");
        p = buf_put_u64(p, s->duration_us);
    }
    if (s->has_local && endpoint_present(&s->local)) {
        PUT_LIT(p, ",\"localEndpoint\":");
        p = put_endpoint(p, &s->local);
    }
    if (s->has_remote && endpoint_present(&s->remote)) {
        PUT_LIT(p, ",\"remoteEndpoint\":");
        p = put_endpoint(p, &s->remote);
    }
    if (s->n_annotations > 0) {
        PUT_LIT(p, ",\"annotations\":[");
        for (uint32_t i = 0; i < s->n_annotations; i++) {
            if (i)
                *p++ = ',';
            PUT_LIT(p, "{\"timestamp\":");
            p = buf_put_u64(p, s->annotations[i].timestamp_us);
            PUT_LIT(p, ",\"value\":");
            p = put_quoted(p, s->annotations[i].value);
            *p++ = '}';
        }
        *p++ = ']';
    }
    if (s->n_tags > 0) {
        PUT_LIT(p, ",\"tags\":{");
        for (uint32_t i = 0; i < s->n_tags; i++) {
            if (i)
                *p++ = ',';
            p = put_quoted(p, s->tags[i].key);
            *p++ = ':';
            p = put_quoted(p, s->tags[i].value);
        }
        *p++ = '}';
    }
    if (s->debug)
        PUT_LIT(p, ",\"debug\":true");
    if (s->shared)
        PUT_LIT(p, ",\"shared\":true");
    *p++ = '}';
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
}

void zipkin_json_encode_spans(const span_t *spans, size_t n, buf_t *out)
{
    buf_append_char(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append_char(out, ',');
        zipkin_json_encode_span(&spans[i], out);
    }
    buf_append_char(out, ']');
}

void zipkin_json_encode_traces(const span_t *const *traces, const size_t *counts, size_t n_traces, buf_t *out)
{
    buf_append_char(out, '[');
    for (size_t i = 0; i < n_traces; i++) {
        if (i)
            buf_append_char(out, ',');
        zipkin_json_encode_spans(traces[i], counts[i], out);
    }
    buf_append_char(out, ']');
}

void zipkin_json_encode_strings(const str_t *v, size_t n, buf_t *out)
{
    buf_append_char(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append_char(out, ',');
        buf_put_quoted(out, v[i]);
    }
    buf_append_char(out, ']');
}

void zipkin_json_encode_dependencies(const zipkin_dep_link_t *links, size_t n, buf_t *out)
{
    buf_append_char(out, '[');
    for (size_t i = 0; i < n; i++) {
        const zipkin_dep_link_t *l = &links[i];
        if (i)
            buf_append_char(out, ',');
        LIT(out, "{\"parent\":");
        buf_put_quoted(out, l->parent);
        LIT(out, ",\"child\":");
        buf_put_quoted(out, l->child);
        LIT(out, ",\"callCount\":");
        buf_append_u64(out, l->call_count);
        if (l->error_count > 0) {
            LIT(out, ",\"errorCount\":");
            buf_append_u64(out, l->error_count);
        }
        buf_append_char(out, '}');
    }
    buf_append_char(out, ']');
}
