/*
 * otlp: OTLP protobuf/JSON decoding and response encoding; see otlp.h for
 * the mapping rules and the memory contract.
 *
 * Flow of a decode: (trace proto, ingest's path) otlp_direct maps the wire
 * straight to span_t, or declines and otlp_wire decodes the request in one
 * pass into the protobuf-c structs; (other proto) wire_check walks the wire format once against
 * the generated descriptors to bound nesting and name the offset of a
 * malformed field, then protobuf-c unpacks into the arena; (JSON) yajl
 * builds a jnode tree in the arena, json_msg fills the protobuf-c structs
 * from it using the descriptors. The structs end in map_traces /
 * map_metrics / map_logs. What the span mapping decides (rejections, names,
 * value text, added tags, remote endpoint) lives in the otlp_* functions of
 * otlp_internal.h, which otlp_direct calls too, over attribute value views
 * (otlp_val_t); span and peer service names go through lower() behind a
 * small per-request cache (c->lowered).
 *
 * Rendering: values that need formatting (ints, doubles, bytes, arrays) are
 * written straight into the arena; arrays and kvlists as JSON are rendered
 * twice through a counting writer (measure, then write) so nothing is
 * reallocated. Strings from the messages are used in place (they already
 * live in the arena).
 */
#include "varint.h"
#include "otlp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "base64.h"
#include "google/rpc/status.pb-c.h"
#include "hex.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "otlp_internal.h"
#include "otlp_wire.h"
#include "utf8.h"

typedef Opentelemetry__Proto__Trace__V1__Span__Event pevent_t;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest trace_req_t;
typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest metrics_req_t;
typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest logs_req_t;
typedef Opentelemetry__Proto__Metrics__V1__Metric pmetric_t;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint number_point_t;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint hist_point_t;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar pexemplar_t;

void otlp_limits_default(otlp_limits_t *l)
{
    l->max_items = OTLP_LIMITS_DEFAULT_MAX_ITEMS;
    l->max_attributes = OTLP_LIMITS_DEFAULT_MAX_ATTRIBUTES;
    l->max_events = OTLP_LIMITS_DEFAULT_MAX_EVENTS;
    l->max_attribute_value_len = OTLP_LIMITS_DEFAULT_MAX_ATTRIBUTE_VALUE_LEN;
    l->max_depth = OTLP_LIMITS_DEFAULT_MAX_DEPTH;
}

/* ------------------------------------------------------------------ */
/* decode context                                                      */

static void dctx_init(dctx_t *c, const otlp_limits_t *lim, arena_t *arena, otlp_result_t *res)
{
    c->arena = arena;
    if (lim != NULL)
        c->lim = *lim;
    else
        otlp_limits_default(&c->lim);
    if (c->lim.max_depth == 0)
        c->lim.max_depth = 1;
    c->res = res;
    c->oom = 0;
    c->failed = 0;
    c->reason[0] = '\0';
    c->wire = 0;
    c->ascii = 0;
    c->batch = NULL;
    c->n_batch = 0;
    for (size_t i = 0; i < sizeof(c->lowered) / sizeof(c->lowered[0]); i++)
        c->lowered[i].in.ptr = NULL;
    res->accepted = 0;
    res->rejected = 0;
    res->error[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static int fail(dctx_t *c, const char *fmt, ...)
{
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->res->error, sizeof(c->res->error), fmt, ap);
        va_end(ap);
        c->failed = 1;
    }
    return -1;
}

static int fail_oom(dctx_t *c)
{
    c->oom = 1;
    return fail(c, "request too large: decode memory limit of %zu bytes reached", c->arena->limit);
}

/* Count n rejected items; the first reason is kept for the partial-success message. */
__attribute__((format(printf, 3, 4))) static void reject(dctx_t *c, uint64_t n, const char *fmt, ...)
{
    if (n == 0)
        return;
    c->res->rejected += n;
    if (c->res->error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->res->error, sizeof(c->res->error), fmt, ap);
        va_end(ap);
        memcpy(c->reason, c->res->error, sizeof(c->reason));
    }
}

static void *dalloc(dctx_t *c, size_t size)
{
    void *p = arena_alloc(c->arena, size);
    if (p == NULL)
        c->oom = 1;
    return p;
}

static int sink_stopped(dctx_t *c)
{
    /* keep a reason the sink wrote itself; replace an earlier rejection reason */
    if (c->res->error[0] == '\0' || strcmp(c->res->error, c->reason) == 0)
        snprintf(c->res->error, sizeof(c->res->error), "stopped by sink");
    c->failed = 1;
    return -1;
}

int otlp_fail_oom(dctx_t *c)
{
    return fail_oom(c);
}

void *otlp_alloc(dctx_t *c, size_t size)
{
    return dalloc(c, size);
}

/* ------------------------------------------------------------------ */
/* strings                                                             */

static inline str_t mkstr(const dctx_t *c, const char *p, size_t len)
{
    return otlp_str(c, p, len);
}

/* Length of a string of the decoded message (s not NULL). */
static inline size_t rawlen(const dctx_t *c, const char *s)
{
    return c->wire ? otlp_wire_strlen(s) : strlen(s);
}

static inline str_t cstr(const dctx_t *c, const char *s)
{
    if (s == NULL)
        return (str_t){"", 0};
    return mkstr(c, s, rawlen(c, s));
}

/* Lowercase a name (utf8_lower: copied only when it changes). */
static inline int lower(dctx_t *c, str_t *s)
{
    if (utf8_lower(c->arena, s, 0) == 0)
        return 0;
    c->oom = 1;
    return -1;
}

/* Repair ill-formed UTF-8 in a stored string (copied only then); the length limit applies to the result. */
static inline int repair(dctx_t *c, str_t *s)
{
    if (c->ascii)
        return 0;
    const char *was = s->ptr;
    if (utf8_repair(c->arena, s, 0) != 0) {
        c->oom = 1;
        return -1;
    }
    if (s->ptr != was)
        *s = mkstr(c, s->ptr, s->len);
    return 0;
}

int otlp_repair(dctx_t *c, str_t *s)
{
    return repair(c, s);
}

static inline uint64_t ld8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t ld4(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* a[0..n) == b[0..n), reading neither past n (overlapping loads). */
static inline int same_bytes(const char *a, const char *b, uint32_t n)
{
    if (n >= 8) {
        for (uint32_t i = 0; i + 8 < n; i += 8)
            if (ld8(a + i) != ld8(b + i))
                return 0;
        return ld8(a + n - 8) == ld8(b + n - 8);
    }
    if (n >= 4)
        return ld4(a) == ld4(b) && ld4(a + n - 4) == ld4(b + n - 4);
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* (out of line, so that the cache test inlines where names are lowercased) */
__attribute__((noinline)) static int lower_miss(dctx_t *c, str_t *s, unsigned h)
{
    str_t in = *s;
    if (lower(c, s) != 0)
        return -1;
    c->lowered[h].in = in;
    c->lowered[h].out = *s;
    return 0;
}

/* lower() behind the cache in c->lowered: span and peer service names repeat within a request. */
static inline int lower_name(dctx_t *c, str_t *s)
{
    if (s->len == 0)
        return 0;
    unsigned h = (s->len * 7u + (unsigned char)s->ptr[0] + (unsigned char)s->ptr[s->len - 1]) & 7u;
    str_t in = c->lowered[h].in;
    if (in.ptr != NULL && in.len == s->len && same_bytes(in.ptr, s->ptr, s->len)) {
        *s = c->lowered[h].out;
        return 0;
    }
    return lower_miss(c, s, h);
}

/* Writes the decimal digits of v ending just before end, two at a time; returns the start. */
static char *fmt_u64(uint64_t v, char *end)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char *p = end;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    return p;
}

size_t otlp_fmt_i64(int64_t v, char out[24])
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    char *p = fmt_u64(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, end);
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(end - p);
    memcpy(out, p, n);
    return n;
}

/* Shortest %g form that reads back as the same double; "NaN"/"Infinity" otherwise. */
static size_t fmt_double(double d, char out[40])
{
    if (isnan(d))
        return (size_t)snprintf(out, 40, "NaN");
    if (isinf(d))
        return (size_t)snprintf(out, 40, d < 0 ? "-Infinity" : "Infinity");
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 40, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d)
            break;
    }
    return (size_t)n;
}

/* ------------------------------------------------------------------ */
/* value rendering                                                     */

/* Counting writer: with p == NULL only n advances (the measuring pass). */
typedef struct wr {
    char *p;
    size_t n;
} wr_t;

static void wr_put(wr_t *w, const char *s, size_t len)
{
    if (w->p != NULL)
        memcpy(w->p + w->n, s, len);
    w->n += len;
}

static void wr_ch(wr_t *w, char ch)
{
    if (w->p != NULL)
        w->p[w->n] = ch;
    w->n++;
}

static void wr_json_str(wr_t *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    wr_ch(w, '"');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        wr_put(w, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        switch (ch) {
        case '"':
            esc[1] = '"';
            wr_put(w, esc, 2);
            break;
        case '\\':
            esc[1] = '\\';
            wr_put(w, esc, 2);
            break;
        case '\n':
            esc[1] = 'n';
            wr_put(w, esc, 2);
            break;
        case '\r':
            esc[1] = 'r';
            wr_put(w, esc, 2);
            break;
        case '\t':
            esc[1] = 't';
            wr_put(w, esc, 2);
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            wr_put(w, esc, 6);
        }
    }
    wr_put(w, s + run, len - run);
    wr_ch(w, '"');
}

static void wr_json_kvs(wr_t *w, key_value_t *const *kvs, size_t n);

/* An AnyValue as JSON: typed (numbers, bools, strings, arrays, objects). */
static void wr_json_value(wr_t *w, const any_value_t *v)
{
    char tmp[40];
    if (v == NULL) {
        wr_put(w, "null", 4);
        return;
    }
    switch (v->value_case) {
    case AV(STRING_VALUE):
        wr_json_str(w, v->string_value ? v->string_value : "", v->string_value ? strlen(v->string_value) : 0);
        break;
    case AV(BOOL_VALUE):
        if (v->bool_value)
            wr_put(w, "true", 4);
        else
            wr_put(w, "false", 5);
        break;
    case AV(INT_VALUE): wr_put(w, tmp, otlp_fmt_i64(v->int_value, tmp)); break;
    case AV(DOUBLE_VALUE): {
        size_t n = fmt_double(v->double_value, tmp);
        if (isfinite(v->double_value)) {
            wr_put(w, tmp, n);
        } else {
            wr_ch(w, '"');
            wr_put(w, tmp, n);
            wr_ch(w, '"');
        }
        break;
    }
    case AV(BYTES_VALUE): {
        size_t n = base64_encoded_len(v->bytes_value.len);
        wr_ch(w, '"');
        if (w->p != NULL)
            base64_encode(v->bytes_value.data, v->bytes_value.len, w->p + w->n);
        w->n += n;
        wr_ch(w, '"');
        break;
    }
    case AV(ARRAY_VALUE):
        wr_ch(w, '[');
        if (v->array_value != NULL) {
            for (size_t i = 0; i < v->array_value->n_values; i++) {
                if (i > 0)
                    wr_ch(w, ',');
                wr_json_value(w, v->array_value->values[i]);
            }
        }
        wr_ch(w, ']');
        break;
    case AV(KVLIST_VALUE):
        if (v->kvlist_value != NULL)
            wr_json_kvs(w, v->kvlist_value->values, v->kvlist_value->n_values);
        else
            wr_put(w, "{}", 2);
        break;
    default: wr_put(w, "null", 4); break;
    }
}

static void wr_json_kvs(wr_t *w, key_value_t *const *kvs, size_t n)
{
    wr_ch(w, '{');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            wr_ch(w, ',');
        const char *k = kvs[i]->key ? kvs[i]->key : "";
        wr_json_str(w, k, strlen(k));
        wr_ch(w, ':');
        wr_json_value(w, kvs[i]->value);
    }
    wr_ch(w, '}');
}

/* Run a measuring pass and a writing pass of a JSON rendering into the arena. */
#define RENDER_TWICE(c, out, call)                                                                                     \
    do {                                                                                                               \
        wr_t w_ = {NULL, 0};                                                                                           \
        {                                                                                                              \
            wr_t *w = &w_;                                                                                             \
            call;                                                                                                      \
        }                                                                                                              \
        char *p_ = dalloc((c), w_.n + 1);                                                                              \
        if (p_ == NULL)                                                                                                \
            return -1;                                                                                                 \
        w_.p = p_;                                                                                                     \
        w_.n = 0;                                                                                                      \
        {                                                                                                              \
            wr_t *w = &w_;                                                                                             \
            call;                                                                                                      \
        }                                                                                                              \
        p_[w_.n] = '\0';                                                                                               \
        *(out) = mkstr((c), p_, w_.n);                                                                                 \
    } while (0)

static int copy_small(dctx_t *c, const char *s, size_t n, str_t *out)
{
    char *p = dalloc(c, n + 1);
    if (p == NULL)
        return -1;
    memcpy(p, s, n);
    p[n] = '\0';
    *out = mkstr(c, p, n);
    return 0;
}

/* The view of a decoded AnyValue (NULL: absent). */
static void val_of(const dctx_t *c, const any_value_t *v, otlp_val_t *out)
{
    if (v == NULL) {
        out->kind = OTLP_VAL_ABSENT;
        return;
    }
    out->kind = (int)v->value_case;
    switch (v->value_case) {
    case AV(STRING_VALUE):
        out->u.str = v->string_value ? (str_t){v->string_value, (uint32_t)rawlen(c, v->string_value)} : (str_t){"", 0};
        break;
    case AV(BOOL_VALUE): out->u.b = v->bool_value != 0; break;
    case AV(INT_VALUE): out->u.i = v->int_value; break;
    case AV(DOUBLE_VALUE): out->u.d = v->double_value; break;
    case AV(BYTES_VALUE): out->u.bytes = v->bytes_value; break;
    default: out->u.msg = v; break;
    }
}

int otlp_render_val(dctx_t *c, const otlp_val_t *v, str_t *out)
{
    char tmp[40];
    switch (v->kind) {
    case AV(STRING_VALUE): *out = mkstr(c, v->u.str.ptr, v->u.str.len); return 0;
    case AV(BOOL_VALUE): *out = v->u.b ? STR_LIT("true") : STR_LIT("false"); return 0;
    case AV(INT_VALUE):
        if (v->u.i >= 0 && v->u.i < 10) {
            static const char digits[] = "0\0001\0002\0003\0004\0005\0006\0007\0008\0009";
            *out = (str_t){digits + 2 * v->u.i, 1};
            return 0;
        }
        return copy_small(c, tmp, otlp_fmt_i64(v->u.i, tmp), out);
    case AV(DOUBLE_VALUE): return copy_small(c, tmp, fmt_double(v->u.d, tmp), out);
    case AV(BYTES_VALUE): {
        size_t n = base64_encoded_len(v->u.bytes.len);
        char *p = dalloc(c, n + 1);
        if (p == NULL)
            return -1;
        base64_encode(v->u.bytes.data, v->u.bytes.len, p);
        p[n] = '\0';
        *out = mkstr(c, p, n);
        return 0;
    }
    case AV(ARRAY_VALUE):
    case AV(KVLIST_VALUE): RENDER_TWICE(c, out, wr_json_value(w, v->u.msg)); return 0;
    default: *out = (str_t){"", 0}; return 0;
    }
}

/* Render an attribute value as tag text (see otlp.h). -1 only when the arena is full. */
static int render_text(dctx_t *c, const any_value_t *v, str_t *out)
{
    otlp_val_t val;
    val_of(c, v, &val);
    return otlp_render_val(c, &val, out);
}

/* Render up to max attributes into tags[]; returns how many were written, -1 on arena full. */
static long render_attrs(dctx_t *c, key_value_t *const *kvs, size_t n, span_tag_t *tags)
{
    size_t max = c->lim.max_attributes;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        tags[i].key = cstr(c, kvs[i]->key);
        if (render_text(c, kvs[i]->value, &tags[i].value) != 0)
            return -1;
    }
    return (long)n;
}

/* ------------------------------------------------------------------ */
/* ids                                                                 */

static int id_nonzero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 1;
    return 0;
}

/* 16-byte trace id: 0 ok, -1 otherwise. */
static int trace_id_get(const ProtobufCBinaryData *b, uint64_t *high, uint64_t *low)
{
    if (b->len != 16 || b->data == NULL || !id_nonzero(b->data, 16))
        return -1;
    *high = span_id_from_bytes(b->data);
    *low = span_id_from_bytes(b->data + 8);
    return 0;
}

static int span_id_get(const ProtobufCBinaryData *b, uint64_t *id)
{
    if (b->len != 8 || b->data == NULL || !id_nonzero(b->data, 8))
        return -1;
    *id = span_id_from_bytes(b->data);
    return 0;
}

/* An 8-byte big-endian id. */
static inline uint64_t be64(const uint8_t *p)
{
    return __builtin_bswap64(otlp_pb_ld64(p));
}

/* ------------------------------------------------------------------ */
/* traces                                                              */

#define KEYIS(k, lit) (memcmp((k), (lit), sizeof(lit) - 1) == 0)

int otlp_peer_key_match(const char *k, uint32_t len)
{
    switch (len) {
    case 5: return KEYIS(k, "error") ? PK_ERROR : PK_NONE;
    case 7: return KEYIS(k, "db.name") ? PK_DB_NAME : PK_NONE;
    case 11:
        if (KEYIS(k, "net.peer.ip"))
            return PK_NET_PEER_IP;
        return KEYIS(k, "server.port") ? PK_SERVER_PORT : PK_NONE;
    case 12:
        if (KEYIS(k, "peer.service"))
            return PK_PEER_SERVICE;
        return KEYIS(k, "peer.address") ? PK_PEER_ADDRESS : PK_NONE;
    case 13:
        if (KEYIS(k, "net.peer.name"))
            return PK_NET_PEER_NAME;
        if (KEYIS(k, "net.peer.port"))
            return PK_NET_PEER_PORT;
        return KEYIS(k, "peer.hostname") ? PK_PEER_HOSTNAME : PK_NONE;
    case 14: return KEYIS(k, "server.address") ? PK_SERVER_ADDRESS : PK_NONE;
    case 17: return KEYIS(k, "network.peer.port") ? PK_NETWORK_PEER_PORT : PK_NONE;
    case 18:
        if (KEYIS(k, "server.socket.port"))
            return PK_SERVER_SOCKET_PORT;
        if (KEYIS(k, "net.sock.peer.name"))
            return PK_NET_SOCK_PEER_NAME;
        if (KEYIS(k, "net.sock.peer.addr"))
            return PK_NET_SOCK_PEER_ADDR;
        return KEYIS(k, "net.sock.peer.port") ? PK_NET_SOCK_PEER_PORT : PK_NONE;
    case 20:
        if (KEYIS(k, "network.peer.address"))
            return PK_NETWORK_PEER_ADDRESS;
        return KEYIS(k, "server.socket.domain") ? PK_SERVER_SOCKET_DOMAIN : PK_NONE;
    case 21: return KEYIS(k, "server.socket.address") ? PK_SERVER_SOCKET_ADDRESS : PK_NONE;
    default: return PK_NONE;
    }
}

/* Fill ep's address from an IP literal; 0 when it was one. */
static int parse_ip(str_t s, span_endpoint_t *ep)
{
    char text[64]; /* longer than any address inet_pton takes */
    if (s.len == 0 || s.len >= sizeof(text))
        return -1;
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    if (memchr(text, ':', s.len) != NULL) {
        if (inet_pton(AF_INET6, text, ep->ipv6) == 1) {
            ep->has_ipv6 = 1;
            return 0;
        }
        return -1;
    }
    if (inet_pton(AF_INET, text, ep->ipv4) == 1) {
        ep->has_ipv4 = 1;
        return 0;
    }
    return -1;
}

static int is_ip(str_t s)
{
    span_endpoint_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    return parse_ip(s, &tmp) == 0;
}

/* The non-empty string value of peer key k, or an empty str_t. */
static str_t peer_str(const peer_attrs_t *pa, int k)
{
    if (!(pa->seen & (1u << k)) || pa->vals[k].kind != AV(STRING_VALUE))
        return (str_t){NULL, 0};
    return pa->vals[k].u.str;
}

static uint16_t peer_port(const peer_attrs_t *pa, int k)
{
    if (!(pa->seen & (1u << k)))
        return 0;
    const otlp_val_t *v = &pa->vals[k];
    if (v->kind == AV(INT_VALUE))
        return v->u.i > 0 && v->u.i <= 65535 ? (uint16_t)v->u.i : 0;
    if (v->kind == AV(STRING_VALUE) && v->u.str.len > 0) {
        uint32_t p = 0;
        for (uint32_t i = 0; i < v->u.str.len; i++) {
            char ch = v->u.str.ptr[i];
            if (ch < '0' || ch > '9')
                return 0;
            p = p * 10 + (uint32_t)(ch - '0');
            if (p > 65535)
                return 0;
        }
        return (uint16_t)p;
    }
    return 0;
}

/* Resolve the remote endpoint from the peer attributes found on the span (ranked, see otlp.h). */
int otlp_remote_endpoint(dctx_t *c, const peer_attrs_t *pa, span_t *s)
{
#define B(k) (1u << (k))
    const uint32_t service_keys = B(PK_SERVER_ADDRESS) | B(PK_NET_PEER_NAME) | B(PK_NETWORK_PEER_ADDRESS) |
                                  B(PK_SERVER_SOCKET_DOMAIN) | B(PK_SERVER_SOCKET_ADDRESS) | B(PK_NET_SOCK_PEER_NAME) |
                                  B(PK_NET_SOCK_PEER_ADDR) | B(PK_PEER_HOSTNAME) | B(PK_PEER_ADDRESS) | B(PK_DB_NAME);
    const uint32_t address_keys = B(PK_NETWORK_PEER_ADDRESS) | B(PK_SERVER_SOCKET_ADDRESS) | B(PK_NET_SOCK_PEER_ADDR) |
                                  B(PK_NET_PEER_IP) | B(PK_PEER_ADDRESS);
    const uint32_t port_keys_all = B(PK_NETWORK_PEER_PORT) | B(PK_NET_PEER_PORT) | B(PK_NET_SOCK_PEER_PORT) |
                                   B(PK_SERVER_SOCKET_PORT) | B(PK_SERVER_PORT);
#undef B
    if (pa->seen == 0)
        return 0; /* no peer attribute: no remote endpoint */
    span_endpoint_t *ep = &s->remote;
    str_t svc = peer_str(pa, PK_PEER_SERVICE);
    int outgoing = s->kind == SPAN_KIND_CLIENT || s->kind == SPAN_KIND_PRODUCER;
    if (svc.len == 0 && outgoing && (pa->seen & service_keys)) {
        static const int ranked[] = {PK_SERVER_ADDRESS,        PK_NET_PEER_NAME,
                                     PK_NETWORK_PEER_ADDRESS,  PK_SERVER_SOCKET_DOMAIN,
                                     PK_SERVER_SOCKET_ADDRESS, PK_NET_SOCK_PEER_NAME,
                                     PK_NET_SOCK_PEER_ADDR,    PK_PEER_HOSTNAME,
                                     PK_PEER_ADDRESS,          PK_DB_NAME};
        for (size_t i = 0; i < sizeof(ranked) / sizeof(ranked[0]) && svc.len == 0; i++) {
            int k = ranked[i];
            str_t v = peer_str(pa, k);
            int address_valued = k == PK_NETWORK_PEER_ADDRESS || k == PK_SERVER_SOCKET_ADDRESS ||
                                 k == PK_NET_SOCK_PEER_ADDR || k == PK_PEER_ADDRESS;
            if (v.len > 0 && !(address_valued && is_ip(v)))
                svc = v;
        }
    }
    static const int ip_keys[][2] = {
        {PK_NETWORK_PEER_ADDRESS, PK_NETWORK_PEER_PORT},
        {PK_SERVER_SOCKET_ADDRESS, PK_SERVER_SOCKET_PORT},
        {PK_NET_SOCK_PEER_ADDR, PK_NET_SOCK_PEER_PORT},
        {PK_NET_PEER_IP, PK_NET_PEER_PORT},
        {PK_PEER_ADDRESS, -1},
    };
    for (size_t i = 0; i < sizeof(ip_keys) / sizeof(ip_keys[0]) && (pa->seen & address_keys); i++) {
        if (parse_ip(peer_str(pa, ip_keys[i][0]), ep) == 0) {
            if (ip_keys[i][1] >= 0)
                ep->port = peer_port(pa, ip_keys[i][1]);
            break;
        }
    }
    if (ep->port == 0 && (pa->seen & port_keys_all)) {
        static const int port_keys[] = {PK_NETWORK_PEER_PORT, PK_NET_PEER_PORT, PK_NET_SOCK_PEER_PORT,
                                        PK_SERVER_SOCKET_PORT};
        for (size_t i = 0; i < sizeof(port_keys) / sizeof(port_keys[0]) && ep->port == 0; i++)
            ep->port = peer_port(pa, port_keys[i]);
        if (ep->port == 0 && outgoing)
            ep->port = peer_port(pa, PK_SERVER_PORT);
    }
    if (svc.len > 0) {
        ep->service_name = mkstr(c, svc.ptr, svc.len);
        if (lower_name(c, &ep->service_name) != 0)
            return -1;
    }
    s->has_remote = svc.len > 0 || ep->has_ipv4 || ep->has_ipv6;
    if (!s->has_remote)
        ep->port = 0;
    return 0;
}

int otlp_resource_build(dctx_t *c, const otlp_kv_t *kvs, size_t n, rctx_t *rc)
{
    rc->service = STR_LIT("unknown_service");
    rc->rtags = NULL;
    rc->n_rtags = 0;
    rc->rfalse = NULL;
    rc->rkey_lens = 0;
    if (n == 0)
        return 0;
    size_t cap = n < c->lim.max_attributes ? n : c->lim.max_attributes;
    if (cap > 0) {
        rc->rtags = dalloc(c, cap * sizeof(*rc->rtags));
        rc->rfalse = dalloc(c, cap);
        if (rc->rtags == NULL || rc->rfalse == NULL)
            return -1;
    }
    int have_service = 0;
    for (size_t i = 0; i < n; i++) {
        const otlp_kv_t *kv = &kvs[i];
        if (!have_service && kv->key.len == 12 && memcmp(kv->key.ptr, "service.name", 12) == 0 &&
            kv->val.kind == AV(STRING_VALUE) && kv->val.u.str.len > 0) {
            rc->service = mkstr(c, kv->val.u.str.ptr, kv->val.u.str.len);
            have_service = 1;
            continue;
        }
        if (rc->n_rtags >= c->lim.max_attributes)
            continue;
        span_tag_t *t = &rc->rtags[rc->n_rtags];
        t->key = mkstr(c, kv->key.ptr, kv->key.len);
        if (otlp_render_val(c, &kv->val, &t->value) != 0 || repair(c, &t->key) != 0 || repair(c, &t->value) != 0)
            return -1;
        rc->rfalse[rc->n_rtags++] = (uint8_t)otlp_val_is_false(&kv->val);
        rc->rkey_lens |= 1ull << (t->key.len & 63);
    }
    return lower(c, &rc->service);
}

int otlp_resource_prepare(dctx_t *c, const resource_t *r, rctx_t *rc)
{
    size_t n = r != NULL ? r->n_attributes : 0;
    otlp_kv_t *kvs = NULL;
    if (n > 0) {
        kvs = dalloc(c, n * sizeof(*kvs));
        if (kvs == NULL)
            return -1;
        for (size_t i = 0; i < n; i++) {
            const key_value_t *kv = r->attributes[i];
            kvs[i].key = kv->key != NULL ? (str_t){kv->key, (uint32_t)rawlen(c, kv->key)} : (str_t){"", 0};
            val_of(c, kv->value, &kvs[i].val);
        }
    }
    return otlp_resource_build(c, kvs, n, rc);
}

int otlp_scope_build(dctx_t *c, str_t name, str_t version, rctx_t *rc)
{
    rc->n_scope_tags = 0;
    if (name.len > 0) {
        str_t v = mkstr(c, name.ptr, name.len);
        if (repair(c, &v) != 0)
            return -1;
        rc->scope_tags[rc->n_scope_tags++] = (span_tag_t){STR_LIT("otel.scope.name"), v};
        rc->scope_tags[rc->n_scope_tags++] = (span_tag_t){STR_LIT("otel.library.name"), v};
    }
    if (version.len > 0) {
        str_t v = mkstr(c, version.ptr, version.len);
        if (repair(c, &v) != 0)
            return -1;
        rc->scope_tags[rc->n_scope_tags++] = (span_tag_t){STR_LIT("otel.scope.version"), v};
        rc->scope_tags[rc->n_scope_tags++] = (span_tag_t){STR_LIT("otel.library.version"), v};
    }
    return 0;
}

/* C-string view of a string of the decoded messages (NULL = empty). */
static str_t cview(const dctx_t *c, const char *s)
{
    return s != NULL ? (str_t){s, (uint32_t)rawlen(c, s)} : (str_t){"", 0};
}

int otlp_scope_prepare(dctx_t *c, const scope_t *sc, rctx_t *rc)
{
    if (sc == NULL)
        return otlp_scope_build(c, (str_t){"", 0}, (str_t){"", 0}, rc);
    return otlp_scope_build(c, cview(c, sc->name), cview(c, sc->version), rc);
}

static int event_annotation(dctx_t *c, const pevent_t *e, span_annotation_t *a)
{
    a->timestamp_us = e->time_unix_nano / 1000;
    if (e->n_attributes == 0) {
        a->value = cstr(c, e->name);
        return 0;
    }
    const char *name = e->name ? e->name : "";
    size_t nlen = e->name ? rawlen(c, e->name) : 0;
    size_t n = e->n_attributes;
    if (n > c->lim.max_attributes)
        n = c->lim.max_attributes;
    RENDER_TWICE(c, &a->value, {
        wr_json_str(w, name, nlen);
        wr_ch(w, ':');
        wr_json_kvs(w, e->attributes, n);
    });
    return 0;
}

int otlp_span_begin(dctx_t *c, const rctx_t *rc, const otlp_span_in_t *in, span_t *s)
{
    otlp_result_t *res = c->res;
    if (res->accepted + res->rejected >= c->lim.max_items) {
        reject(c, 1, "too many spans in one request (limit %u)", c->lim.max_items);
        return 0;
    }
    static const span_t zero;
    *s = zero;
    if (in->trace_id_len != 16 || in->trace_id == NULL ||
        ((s->trace_id_high = be64(in->trace_id)) | (s->trace_id_low = be64(in->trace_id + 8))) == 0) {
        reject(c, 1, "span with invalid trace_id (must be 16 bytes, not all zero)");
        return 0;
    }
    if (in->span_id_len != 8 || in->span_id == NULL || (s->id = be64(in->span_id)) == 0) {
        reject(c, 1, "span with invalid span_id (must be 8 bytes, not all zero)");
        return 0;
    }
    if (in->parent_id_len == 8 && in->parent_id != NULL) {
        s->parent_id = be64(in->parent_id);
    } else if (in->parent_id_len != 0) {
        reject(c, 1, "span with invalid parent_span_id (must be empty or 8 bytes)");
        return 0;
    }

    switch (in->kind) {
    case OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER: s->kind = SPAN_KIND_SERVER; break;
    case OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT: s->kind = SPAN_KIND_CLIENT; break;
    case OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_PRODUCER: s->kind = SPAN_KIND_PRODUCER; break;
    case OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CONSUMER: s->kind = SPAN_KIND_CONSUMER; break;
    default: s->kind = SPAN_KIND_UNSPECIFIED; break;
    }

    s->name = mkstr(c, in->name.ptr, in->name.len);
    if (lower_name(c, &s->name) != 0)
        return -1;
    if (in->start_ns != 0) {
        s->timestamp_us = in->start_ns / 1000;
        if (in->end_ns > in->start_ns) {
            s->duration_us = (in->end_ns - in->start_ns) / 1000;
            if (s->duration_us == 0)
                s->duration_us = 1;
        }
    }
    s->local.service_name = rc->service;
    s->has_local = 1;
    return 1;
}

int otlp_span_finish_tags(dctx_t *c, const rctx_t *rc, const otlp_span_in_t *in, span_tag_t *tags, uint32_t *n_tags)
{
    uint32_t nt = *n_tags;
    int is_error = in->status_code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    int is_ok = in->status_code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK;
    if (rc->n_rtags > 0) {
        /* a span attribute overrides the resource attribute of the same key */
        uint64_t lens = 0;
        for (uint32_t j = 0; j < nt; j++)
            lens |= 1ull << (tags[j].key.len & 63);
        int clash = (lens & rc->rkey_lens) != 0;
        uint32_t n_span_tags = nt;
        for (uint32_t i = 0; i < rc->n_rtags; i++) {
            const span_tag_t *rt = &rc->rtags[i];
            if (rt->key.len == 5 && memcmp(rt->key.ptr, "error", 5) == 0 && (is_error || rc->rfalse[i]))
                continue;
            uint32_t j = n_span_tags;
            if (clash && (lens & (1ull << (rt->key.len & 63)))) {
                j = 0;
                while (j < n_span_tags &&
                       !(tags[j].key.len == rt->key.len && memcmp(tags[j].key.ptr, rt->key.ptr, rt->key.len) == 0))
                    j++;
            }
            if (j == n_span_tags)
                tags[nt++] = *rt;
        }
    }
    for (uint32_t i = 0; i < rc->n_scope_tags; i++)
        tags[nt++] = rc->scope_tags[i];
    if (in->kind == OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL)
        tags[nt++] = (span_tag_t){STR_LIT("span.kind"), STR_LIT("internal")};
    if (is_error || is_ok) {
        str_t msg = mkstr(c, in->status_msg.ptr, in->status_msg.len);
        if (repair(c, &msg) != 0)
            return -1;
        tags[nt++] = (span_tag_t){STR_LIT("otel.status_code"), is_error ? STR_LIT("ERROR") : STR_LIT("OK")};
        if (msg.len > 0)
            tags[nt++] = (span_tag_t){STR_LIT("otel.status_description"), msg};
        if (is_error)
            tags[nt++] = (span_tag_t){STR_LIT("error"), msg};
    }
    *n_tags = nt;
    return 0;
}

static void bytes_of(const ProtobufCBinaryData *b, const uint8_t **ptr, size_t *len)
{
    *ptr = b->data;
    *len = b->len;
}

/*
 * Map one span into *s and hand it to the sink, or, without a sink, keep it
 * in c->batch. 0 (also when rejected), -1 fatal.
 */
static int map_span(dctx_t *c, const rctx_t *rc, const pspan_t *ps, span_t *s, span_sink_fn sink, void *ctx)
{
    otlp_span_in_t in;
    bytes_of(&ps->trace_id, &in.trace_id, &in.trace_id_len);
    bytes_of(&ps->span_id, &in.span_id, &in.span_id_len);
    bytes_of(&ps->parent_span_id, &in.parent_id, &in.parent_id_len);
    in.name = cview(c, ps->name);
    in.kind = (int32_t)ps->kind;
    in.status_code = ps->status ? (int32_t)ps->status->code : 0;
    in.status_msg = ps->status ? cview(c, ps->status->message) : (str_t){"", 0};
    in.start_ns = ps->start_time_unix_nano;
    in.end_ns = ps->end_time_unix_nano;
    int rc_begin = otlp_span_begin(c, rc, &in, s);
    if (rc_begin <= 0)
        return rc_begin < 0 ? fail_oom(c) : 0;
    int is_error = in.status_code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;

    size_t n_attr = ps->n_attributes;
    if (n_attr > c->lim.max_attributes)
        n_attr = c->lim.max_attributes;
    size_t cap = n_attr + rc->n_rtags + rc->n_scope_tags + 4;
    span_tag_t *tags = dalloc(c, cap * sizeof(*tags));
    if (tags == NULL)
        return fail_oom(c);
    peer_attrs_t pa;
    pa.seen = 0;
    uint32_t nt = 0;
    for (size_t i = 0; i < n_attr; i++) {
        const key_value_t *kv = ps->attributes[i];
        span_tag_t *t = &tags[nt];
        otlp_val_t v;
        val_of(c, kv->value, &v);
        t->key = cstr(c, kv->key);
        int k = otlp_peer_key(t->key.ptr, t->key.len);
        if (k == PK_ERROR && (is_error || otlp_val_is_false(&v)))
            continue;
        if (k != PK_NONE)
            otlp_peer_note(&pa, k, &v);
        if (otlp_render_val(c, &v, &t->value) != 0 || repair(c, &t->key) != 0 || repair(c, &t->value) != 0)
            return fail_oom(c);
        nt++;
    }
    if (otlp_span_finish_tags(c, rc, &in, tags, &nt) != 0)
        return fail_oom(c);
    s->tags = tags;
    s->n_tags = nt;

    if (otlp_remote_endpoint(c, &pa, s) != 0)
        return fail_oom(c);

    size_t n_ev = ps->n_events;
    if (n_ev > c->lim.max_events)
        n_ev = c->lim.max_events;
    if (n_ev > 0) {
        span_annotation_t *ann = dalloc(c, n_ev * sizeof(*ann));
        if (ann == NULL)
            return fail_oom(c);
        for (size_t i = 0; i < n_ev; i++)
            if (event_annotation(c, ps->events[i], &ann[i]) != 0 || repair(c, &ann[i].value) != 0)
                return fail_oom(c);
        s->annotations = ann;
        s->n_annotations = (uint32_t)n_ev;
    }

    if (sink == NULL)
        c->n_batch++;
    else if (sink(ctx, s) != 0)
        return sink_stopped(c);
    c->res->accepted++;
    return 0;
}

int otlp_map_span_batch(dctx_t *c, const rctx_t *rc, const pspan_t *ps)
{
    return map_span(c, rc, ps, &c->batch[c->n_batch], NULL, NULL);
}

static int map_traces(dctx_t *c, const trace_req_t *req, span_sink_fn sink, void *ctx)
{
    span_t one;
    if (sink == NULL) {
        /* batch: one array for every span that can be accepted */
        size_t total = 0;
        for (size_t i = 0; i < req->n_resource_spans; i++)
            for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++)
                total += req->resource_spans[i]->scope_spans[j]->n_spans;
        if (total > c->lim.max_items)
            total = c->lim.max_items;
        c->batch = dalloc(c, (total > 0 ? total : 1) * sizeof(span_t));
        c->n_batch = 0;
        if (c->batch == NULL)
            return fail_oom(c);
    }
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = req->resource_spans[i];
        rctx_t rc;
        if (otlp_resource_prepare(c, rs->resource, &rc) != 0)
            return fail_oom(c);
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[j];
            if (otlp_scope_prepare(c, ss->scope, &rc) != 0)
                return fail_oom(c);
            for (size_t k = 0; k < ss->n_spans; k++) {
                span_t *dst = sink == NULL ? &c->batch[c->n_batch] : &one;
                if (map_span(c, &rc, ss->spans[k], dst, sink, ctx) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* metrics                                                             */

static int render_labels(dctx_t *c, key_value_t *const *kvs, size_t n, metric_point_t *mp)
{
    if (n > c->lim.max_attributes)
        n = c->lim.max_attributes;
    mp->n_labels = 0;
    mp->labels = NULL;
    if (n == 0)
        return 0;
    /* metric_label_t and span_tag_t are both two str_t */
    metric_label_t *labels = dalloc(c, n * sizeof(*labels));
    if (labels == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        labels[i].name = cstr(c, kvs[i]->key);
        if (render_text(c, kvs[i]->value, &labels[i].value) != 0)
            return -1;
    }
    mp->labels = labels;
    mp->n_labels = (uint32_t)n;
    return 0;
}

static int map_exemplars(dctx_t *c, pexemplar_t *const *ex, size_t n, metric_point_t *mp)
{
    mp->n_exemplars = 0;
    mp->exemplars = NULL;
    if (n == 0)
        return 0;
    metric_exemplar_t *out = dalloc(c, n * sizeof(*out));
    if (out == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const pexemplar_t *e = ex[i];
        metric_exemplar_t *o = &out[i];
        memset(o, 0, sizeof(*o));
        if (e->value_case == OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_INT)
            o->value = (double)e->as_int;
        else
            o->value = e->as_double;
        o->time_unix_nano = e->time_unix_nano;
        if (trace_id_get(&e->trace_id, &o->trace_id_high, &o->trace_id_low) != 0)
            o->trace_id_high = o->trace_id_low = 0;
        if (span_id_get(&e->span_id, &o->span_id) != 0)
            o->span_id = 0;
    }
    mp->exemplars = out;
    mp->n_exemplars = (uint32_t)n;
    return 0;
}

static int room_for_point(dctx_t *c)
{
    if (c->res->accepted + c->res->rejected >= c->lim.max_items) {
        reject(c, 1, "too many data points in one request (limit %u)", c->lim.max_items);
        return 0;
    }
    return 1;
}

static int emit_point(dctx_t *c, const metric_point_t *mp, metric_sink_fn sink, void *ctx)
{
    if (sink(ctx, mp) != 0)
        return sink_stopped(c);
    c->res->accepted++;
    return 0;
}

static int map_number_points(dctx_t *c, metric_point_t *base, number_point_t *const *pts, size_t n, metric_sink_fn sink,
                             void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        const number_point_t *p = pts[i];
        if (!room_for_point(c))
            continue;
        metric_point_t mp = *base;
        if (p->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE) {
            mp.value = p->as_double;
        } else if (p->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT) {
            mp.value = (double)p->as_int;
        } else {
            reject(c, 1, "metric %.*s: data point without a value", (int)base->name.len, base->name.ptr);
            continue;
        }
        mp.start_time_unix_nano = p->start_time_unix_nano;
        mp.time_unix_nano = p->time_unix_nano;
        if (render_labels(c, p->attributes, p->n_attributes, &mp) != 0 ||
            map_exemplars(c, p->exemplars, p->n_exemplars, &mp) != 0)
            return fail_oom(c);
        if (emit_point(c, &mp, sink, ctx) != 0)
            return -1;
    }
    return 0;
}

static int map_hist_points(dctx_t *c, metric_point_t *base, hist_point_t *const *pts, size_t n, metric_sink_fn sink,
                           void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        const hist_point_t *p = pts[i];
        if (!room_for_point(c))
            continue;
        metric_point_t mp = *base;
        if (p->n_bucket_counts != 0 && p->n_bucket_counts != p->n_explicit_bounds + 1) {
            reject(c, 1, "metric %.*s: histogram has %zu bucket counts for %zu bounds", (int)base->name.len,
                   base->name.ptr, p->n_bucket_counts, p->n_explicit_bounds);
            continue;
        }
        int sorted = 1;
        for (size_t b = 0; b < p->n_explicit_bounds; b++)
            if (isnan(p->explicit_bounds[b]) || (b > 0 && !(p->explicit_bounds[b] > p->explicit_bounds[b - 1])))
                sorted = 0;
        if (!sorted) {
            reject(c, 1, "metric %.*s: histogram bounds are not increasing", (int)base->name.len, base->name.ptr);
            continue;
        }
        mp.start_time_unix_nano = p->start_time_unix_nano;
        mp.time_unix_nano = p->time_unix_nano;
        mp.count = p->count;
        mp.has_sum = p->_sum_case == OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
        mp.sum = mp.has_sum ? p->sum : 0;
        if (p->n_bucket_counts == 0) {
            uint64_t *one = dalloc(c, sizeof(*one));
            if (one == NULL)
                return fail_oom(c);
            *one = p->count;
            mp.n_bounds = 0;
            mp.bounds = NULL;
            mp.bucket_counts = one;
        } else {
            mp.n_bounds = (uint32_t)p->n_explicit_bounds;
            mp.bounds = p->explicit_bounds;
            mp.bucket_counts = p->bucket_counts;
        }
        if (render_labels(c, p->attributes, p->n_attributes, &mp) != 0 ||
            map_exemplars(c, p->exemplars, p->n_exemplars, &mp) != 0)
            return fail_oom(c);
        if (emit_point(c, &mp, sink, ctx) != 0)
            return -1;
    }
    return 0;
}

static enum metric_temporality temporality_of(int t)
{
    if (t == METRIC_TEMPORALITY_DELTA || t == METRIC_TEMPORALITY_CUMULATIVE)
        return (enum metric_temporality)t;
    return METRIC_TEMPORALITY_UNSPECIFIED;
}

static size_t metric_point_count(const pmetric_t *m)
{
    switch (m->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE: return m->gauge ? m->gauge->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM: return m->sum ? m->sum->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        return m->histogram ? m->histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        return m->exponential_histogram ? m->exponential_histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY: return m->summary ? m->summary->n_data_points : 0;
    default: return 0;
    }
}

static int map_metric(dctx_t *c, const pmetric_t *m, metric_sink_fn sink, void *ctx)
{
    metric_point_t base;
    memset(&base, 0, sizeof(base));
    base.name = cstr(c, m->name);
    base.description = cstr(c, m->description);
    base.unit = cstr(c, m->unit);
    if (base.name.len == 0) {
        reject(c, metric_point_count(m), "metric without a name");
        return 0;
    }
    switch (m->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        if (m->gauge == NULL)
            return 0;
        base.type = METRIC_GAUGE;
        return map_number_points(c, &base, m->gauge->data_points, m->gauge->n_data_points, sink, ctx);
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        if (m->sum == NULL)
            return 0;
        base.type = METRIC_SUM;
        base.temporality = temporality_of((int)m->sum->aggregation_temporality);
        base.monotonic = m->sum->is_monotonic ? 1 : 0;
        if (base.temporality == METRIC_TEMPORALITY_UNSPECIFIED) {
            reject(c, m->sum->n_data_points, "metric %.*s: aggregation temporality unspecified", (int)base.name.len,
                   base.name.ptr);
            return 0;
        }
        return map_number_points(c, &base, m->sum->data_points, m->sum->n_data_points, sink, ctx);
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        if (m->histogram == NULL)
            return 0;
        base.type = METRIC_HISTOGRAM;
        base.temporality = temporality_of((int)m->histogram->aggregation_temporality);
        if (base.temporality == METRIC_TEMPORALITY_UNSPECIFIED) {
            reject(c, m->histogram->n_data_points, "metric %.*s: aggregation temporality unspecified",
                   (int)base.name.len, base.name.ptr);
            return 0;
        }
        return map_hist_points(c, &base, m->histogram->data_points, m->histogram->n_data_points, sink, ctx);
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        reject(c, metric_point_count(m), "metric %.*s: exponential histograms are not supported", (int)base.name.len,
               base.name.ptr);
        return 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        reject(c, metric_point_count(m), "metric %.*s: summaries are not supported", (int)base.name.len, base.name.ptr);
        return 0;
    default: return 0;
    }
}

static int map_metrics(dctx_t *c, const metrics_req_t *req, metric_sink_fn sink, void *ctx)
{
    for (size_t i = 0; i < req->n_resource_metrics; i++) {
        const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = req->resource_metrics[i];
        for (size_t j = 0; j < rm->n_scope_metrics; j++) {
            const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = rm->scope_metrics[j];
            for (size_t k = 0; k < sm->n_metrics; k++)
                if (map_metric(c, sm->metrics[k], sink, ctx) != 0)
                    return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* logs                                                                */

int otlp_log_reject(dctx_t *c, enum otlp_log_rejection why)
{
    switch (why) {
    case OTLP_LOG_TOO_MANY: reject(c, 1, "too many log records in one request (limit %u)", c->lim.max_items); break;
    case OTLP_LOG_BAD_TRACE_ID: reject(c, 1, "log record with invalid trace_id (must be empty or 16 bytes)"); break;
    case OTLP_LOG_BAD_SPAN_ID: reject(c, 1, "log record with invalid span_id (must be empty or 8 bytes)"); break;
    }
    return 0;
}

int otlp_log_map(dctx_t *c, const plog_t *l, str_t service, str_t scope, otlp_log_t *o)
{
    otlp_log_in_t in;
    bytes_of(&l->trace_id, &in.trace_id, &in.trace_id_len);
    bytes_of(&l->span_id, &in.span_id, &in.span_id_len);
    in.time_ns = l->time_unix_nano;
    in.observed_ns = l->observed_time_unix_nano;
    in.severity_number = (int32_t)l->severity_number;
    in.flags = l->flags;
    in.severity_text = cview(c, l->severity_text);
    in.event_name = cview(c, l->event_name);
    if (otlp_log_begin(c, &in, service, scope, o) == 0)
        return 0;
    if (render_text(c, l->body, &o->body) != 0)
        return fail_oom(c);
    size_t n = l->n_attributes;
    if (n > c->lim.max_attributes)
        n = c->lim.max_attributes;
    if (n > 0) {
        span_tag_t *attrs = dalloc(c, n * sizeof(*attrs));
        if (attrs == NULL || render_attrs(c, l->attributes, n, attrs) < 0)
            return fail_oom(c);
        o->attributes = attrs;
        o->n_attributes = (uint32_t)n;
    }
    return 1;
}

str_t otlp_log_service(const dctx_t *c, const resource_t *r)
{
    for (size_t a = 0; r != NULL && a < r->n_attributes; a++) {
        const key_value_t *kv = r->attributes[a];
        otlp_val_t v;
        val_of(c, kv->value, &v);
        if (otlp_log_service_kv(cview(c, kv->key), &v))
            return mkstr(c, v.u.str.ptr, v.u.str.len);
    }
    return (str_t){"", 0};
}

str_t otlp_log_scope(const dctx_t *c, const scope_t *sc)
{
    return sc != NULL ? cstr(c, sc->name) : (str_t){"", 0};
}

static int map_log(dctx_t *c, const plog_t *l, str_t service, str_t scope, otlp_log_sink_fn sink, void *ctx)
{
    otlp_log_t o;
    int rc = otlp_log_map(c, l, service, scope, &o);
    if (rc <= 0)
        return rc;
    if (sink(ctx, &o) != 0)
        return sink_stopped(c);
    c->res->accepted++;
    return 0;
}

static int map_logs(dctx_t *c, const logs_req_t *req, otlp_log_sink_fn sink, void *ctx)
{
    for (size_t i = 0; i < req->n_resource_logs; i++) {
        const Opentelemetry__Proto__Logs__V1__ResourceLogs *rl = req->resource_logs[i];
        str_t service = otlp_log_service(c, rl->resource);
        for (size_t j = 0; j < rl->n_scope_logs; j++) {
            const Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = rl->scope_logs[j];
            str_t scope = otlp_log_scope(c, sl->scope);
            for (size_t k = 0; k < sl->n_log_records; k++)
                if (map_log(c, sl->log_records[k], service, scope, sink, ctx) != 0)
                    return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* protobuf                                                            */

static void *pb_alloc(void *data, size_t size)
{
    return dalloc(data, size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

/*
 * Walk the wire format of a message of type d: every field well-formed,
 * messages nested no deeper than max_depth. protobuf-c recurses once per
 * nesting level without a bound, so this check is what keeps a hostile body
 * from exhausting the stack. base is the offset of p within the body.
 */
static int wire_check(dctx_t *c, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, size_t base,
                      unsigned depth)
{
    if (depth > c->lim.max_depth)
        return fail(c, "invalid protobuf: messages nested deeper than %u at offset %zu", c->lim.max_depth, base);
    size_t pos = 0;
    while (pos < len) {
        size_t at = pos;
        uint64_t tag, v;
        if (varint_read(p, len, &pos, &tag) != 0)
            return fail(c, "invalid protobuf: truncated field tag at offset %zu", base + at);
        uint64_t num = tag >> 3;
        unsigned wt = (unsigned)(tag & 7);
        if (num == 0 || num > 536870911)
            return fail(c, "invalid protobuf: invalid field number at offset %zu", base + at);
        /* only length-delimited fields can hold messages: look the others up never */
        const ProtobufCFieldDescriptor *f =
            wt == 2 && d != NULL ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
        switch (wt) {
        case 0:
            if (varint_read(p, len, &pos, &v) != 0)
                return fail(c, "invalid protobuf: truncated varint in field %llu at offset %zu",
                            (unsigned long long)num, base + at);
            break;
        case 1:
        case 5: {
            size_t w = wt == 1 ? 8 : 4;
            if (len - pos < w)
                return fail(c, "invalid protobuf: truncated fixed%zu field %llu at offset %zu", w * 8,
                            (unsigned long long)num, base + at);
            pos += w;
            break;
        }
        case 2:
            if (varint_read(p, len, &pos, &v) != 0 || v > len - pos)
                return fail(c, "invalid protobuf: truncated length-delimited field %llu at offset %zu",
                            (unsigned long long)num, base + at);
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                wire_check(c, f->descriptor, p + pos, (size_t)v, base + pos, depth + 1) != 0)
                return -1;
            pos += (size_t)v;
            break;
        default:
            return fail(c, "invalid protobuf: unsupported wire type %u in field %llu at offset %zu", wt,
                        (unsigned long long)num, base + at);
        }
    }
    return 0;
}

/* A message of type d at nesting level depth (the request is 1): depth check, then protobuf-c. NULL on failure. */
static ProtobufCMessage *unpack_at(dctx_t *c, const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                                   unsigned depth)
{
    if (wire_check(c, d, data, len, 0, depth) != 0)
        return NULL;
    ProtobufCAllocator alloc = {pb_alloc, pb_free, c};
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &alloc, len, data);
    if (m == NULL) {
        if (c->oom)
            fail_oom(c);
        else
            fail(c, "invalid protobuf: cannot decode %s", d->short_name);
    }
    return m;
}

static ProtobufCMessage *proto_unpack(dctx_t *c, const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len)
{
    return unpack_at(c, d, data, len, 1);
}

int otlp_traces_decode_proto(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                             span_sink_fn sink, void *ctx, otlp_result_t *res)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    trace_req_t *req = NULL;
    c.wire = 1;
    int rc = otlp_wire_decode_traces(data, len, c.lim.max_depth, arena, &req, &c.ascii, res->error, sizeof(res->error));
    if (rc == OTLP_WIRE_NOMEM)
        return fail_oom(&c);
    if (rc != 0) {
        c.failed = 1;
        return -1;
    }
    return map_traces(&c, req, sink, ctx);
}

int otlp_traces_decode_proto_direct(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                    const span_t **spans, size_t *n_spans, otlp_result_t *res,
                                    otlp_direct_stats_t *stats)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    c.wire = 1; /* parts handed to otlp_wire */
    *spans = NULL;
    *n_spans = 0;
    int rc = otlp_direct_decode(&c, data, len, stats);
    if (rc == 0) {
        *spans = c.batch;
        *n_spans = c.n_batch;
    }
    return rc;
}

int otlp_traces_decode_proto_spans(uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                   const span_t **spans, size_t *n_spans, otlp_result_t *res)
{
    int rc = otlp_traces_decode_proto_direct(data, len, limits, arena, spans, n_spans, res, NULL);
    if (rc != OTLP_DECLINED)
        return rc;
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    *spans = NULL;
    *n_spans = 0;
    trace_req_t *req = NULL;
    c.wire = 1;
    rc = otlp_wire_decode_traces_inplace(data, len, c.lim.max_depth, arena, &req, &c.ascii, res->error,
                                         sizeof(res->error));
    if (rc == OTLP_WIRE_NOMEM)
        return fail_oom(&c);
    if (rc != 0) {
        c.failed = 1;
        return -1;
    }
    if (map_traces(&c, req, NULL, NULL) != 0)
        return -1;
    *spans = c.batch;
    *n_spans = c.n_batch;
    return 0;
}

int otlp_traces_decode_proto_reference(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                       span_sink_fn sink, void *ctx, otlp_result_t *res)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    const ProtobufCMessage *m = proto_unpack(
        &c, &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, data, len);
    if (m == NULL)
        return -1;
    return map_traces(&c, (const trace_req_t *)m, sink, ctx);
}

int otlp_metrics_decode_proto(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                              metric_sink_fn sink, void *ctx, otlp_result_t *res)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    const ProtobufCMessage *m = proto_unpack(
        &c, &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor, data, len);
    if (m == NULL)
        return -1;
    return map_metrics(&c, (const metrics_req_t *)m, sink, ctx);
}

int otlp_logs_decode_proto_reference(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                     otlp_log_sink_fn sink, void *ctx, otlp_result_t *res)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    const ProtobufCMessage *m = proto_unpack(
        &c, &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor, data, len);
    if (m == NULL)
        return -1;
    return map_logs(&c, (const logs_req_t *)m, sink, ctx);
}

int otlp_logs_unpack(dctx_t *c, enum otlp_logs_part part, const uint8_t *data, size_t len, void **out)
{
    /* the level each message has in a request, so that nesting is bounded as in a whole-request decode */
    static const struct {
        const ProtobufCMessageDescriptor *d;
        unsigned depth;
    } parts[] = {
        [OTLP_LOGS_PART_RESOURCE] = {&opentelemetry__proto__resource__v1__resource__descriptor, 3},
        [OTLP_LOGS_PART_SCOPE] = {&opentelemetry__proto__common__v1__instrumentation_scope__descriptor, 4},
        [OTLP_LOGS_PART_RECORD] = {&opentelemetry__proto__logs__v1__log_record__descriptor, 4},
    };
    ProtobufCMessage *m = unpack_at(c, parts[part].d, data, len, parts[part].depth);
    if (m == NULL)
        return c->oom ? OTLP_WIRE_NOMEM : OTLP_WIRE_INVALID;
    *out = m;
    return 0;
}

int otlp_logs_decode_proto_direct(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                  const otlp_log_t **logs, size_t *n_logs, otlp_result_t *res,
                                  otlp_logs_direct_stats_t *stats)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    *logs = NULL;
    *n_logs = 0;
    int rc = otlp_direct_logs_decode(&c, data, len, stats);
    if (rc == 0) {
        *logs = c.logs;
        *n_logs = c.n_logs;
    }
    return rc;
}

/* Records given to logs_collect: an array in the arena, grown by doubling. */
typedef struct log_vec {
    dctx_t *c;
    otlp_log_t *v;
    size_t n, cap;
} log_vec_t;

static int logs_collect(void *ctx, const otlp_log_t *l)
{
    log_vec_t *lv = ctx;
    if (lv->n == lv->cap) {
        size_t cap = lv->cap ? lv->cap * 2 : 64;
        otlp_log_t *v = dalloc(lv->c, cap * sizeof(*v));
        if (v == NULL) {
            fail_oom(lv->c); /* the reason stays: sink_stopped keeps a reason the sink wrote */
            return -1;
        }
        if (lv->n > 0)
            memcpy(v, lv->v, lv->n * sizeof(*v));
        lv->v = v;
        lv->cap = cap;
    }
    lv->v[lv->n++] = *l;
    return 0;
}

int otlp_logs_decode_proto_records(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                                   const otlp_log_t **logs, size_t *n_logs, otlp_result_t *res)
{
    int rc = otlp_logs_decode_proto_direct(data, len, limits, arena, logs, n_logs, res, NULL);
    if (rc != OTLP_DECLINED)
        return rc;
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    log_vec_t lv = {&c, NULL, 0, 0};
    const ProtobufCMessage *m = proto_unpack(
        &c, &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor, data, len);
    if (m == NULL || map_logs(&c, (const logs_req_t *)m, logs_collect, &lv) != 0)
        return -1;
    *logs = lv.v;
    *n_logs = lv.n;
    return 0;
}

/* The rejections counted before a record (upto): res as map_logs would have it when that record reaches the sink. */
static void rejected_upto(dctx_t *c, uint64_t upto, const char *first_reason)
{
    if (upto == c->res->rejected)
        return;
    if (c->res->error[0] == '\0') {
        snprintf(c->res->error, sizeof(c->res->error), "%s", first_reason);
        memcpy(c->reason, c->res->error, sizeof(c->reason));
    }
    c->res->rejected = upto;
}

int otlp_logs_decode_proto(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                           otlp_log_sink_fn sink, void *ctx, otlp_result_t *res)
{
    /* the direct path reads a copy in the arena, so that nothing it produces points into data */
    uint8_t *copy = len > 0 ? arena_alloc(arena, len) : NULL;
    if (len > 0 && copy == NULL)
        return otlp_logs_decode_proto_reference(data, len, limits, arena, sink, ctx, res);
    if (len > 0)
        memcpy(copy, data, len);
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    int rc = otlp_direct_logs_decode(&c, copy, len, NULL);
    if (rc == OTLP_DECLINED)
        return otlp_logs_decode_proto_reference(data, len, limits, arena, sink, ctx, res);
    if (rc != 0)
        return rc;
    /* hand the records over with res as the struct path has it at each one (the sink may stop it) */
    uint64_t rejected = res->rejected;
    char first[sizeof(res->error)];
    memcpy(first, res->error, sizeof(first));
    res->accepted = 0;
    res->rejected = 0;
    res->error[0] = '\0';
    c.reason[0] = '\0';
    for (size_t i = 0; i < c.n_logs; i++) {
        rejected_upto(&c, c.logs_rejected[i], first);
        if (sink(ctx, &c.logs[i]) != 0)
            return sink_stopped(&c);
        res->accepted++;
    }
    rejected_upto(&c, rejected, first);
    return 0;
}

/* ------------------------------------------------------------------ */
/* JSON: yajl -> jnode tree in the arena                               */

enum jtype { JT_NULL, JT_BOOL, JT_NUM, JT_STR, JT_MAP, JT_ARR };

typedef struct jnode jnode_t;
struct jnode {
    jnode_t *next;  /* next sibling */
    jnode_t *child; /* first child (maps, arrays) */
    jnode_t *last;  /* last child, for appending */
    jnode_t *parent;
    const char *key; /* member name when the parent is a map; NUL-terminated */
    const char *s;   /* string or number text; NUL-terminated */
    uint32_t klen;
    uint32_t n; /* string length, or number of children */
    uint8_t type;
    uint8_t b; /* bool value */
};

typedef struct jparse {
    dctx_t *c;
    jnode_t *root;
    jnode_t *cur;    /* open container */
    const char *key; /* pending member name */
    uint32_t klen;
    unsigned depth;
} jparse_t;

static jnode_t *jadd(jparse_t *jp, enum jtype type)
{
    jnode_t *n = dalloc(jp->c, sizeof(*n));
    if (n == NULL)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->type = (uint8_t)type;
    if (jp->cur == NULL) {
        jp->root = n;
    } else {
        n->parent = jp->cur;
        if (jp->cur->type == JT_MAP) {
            n->key = jp->key;
            n->klen = jp->klen;
        }
        if (jp->cur->last != NULL)
            jp->cur->last->next = n;
        else
            jp->cur->child = n;
        jp->cur->last = n;
        jp->cur->n++;
    }
    return n;
}

static int jcb_null(void *ctx)
{
    return jadd(ctx, JT_NULL) != NULL;
}

static int jcb_bool(void *ctx, int v)
{
    jnode_t *n = jadd(ctx, JT_BOOL);
    if (n == NULL)
        return 0;
    n->b = v ? 1 : 0;
    return 1;
}

static int jcb_text(jparse_t *jp, enum jtype type, const unsigned char *s, size_t len)
{
    if (len > UINT32_MAX)
        return 0;
    jnode_t *n = jadd(jp, type);
    if (n == NULL)
        return 0;
    char *p = dalloc(jp->c, len + 1);
    if (p == NULL)
        return 0;
    memcpy(p, s, len);
    p[len] = '\0';
    n->s = p;
    n->n = (uint32_t)len;
    return 1;
}

static int jcb_number(void *ctx, const char *s, size_t len)
{
    return jcb_text(ctx, JT_NUM, (const unsigned char *)s, len);
}

static int jcb_string(void *ctx, const unsigned char *s, size_t len)
{
    return jcb_text(ctx, JT_STR, s, len);
}

static int jcb_open(jparse_t *jp, enum jtype type)
{
    if (++jp->depth > jp->c->lim.max_depth) {
        fail(jp->c, "invalid JSON: nesting deeper than %u", jp->c->lim.max_depth);
        return 0;
    }
    jnode_t *n = jadd(jp, type);
    if (n == NULL)
        return 0;
    jp->cur = n;
    return 1;
}

static int jcb_close(jparse_t *jp)
{
    jp->depth--;
    jp->cur = jp->cur->parent;
    return 1;
}

static int jcb_start_map(void *ctx)
{
    return jcb_open(ctx, JT_MAP);
}

static int jcb_start_array(void *ctx)
{
    return jcb_open(ctx, JT_ARR);
}

static int jcb_end(void *ctx)
{
    return jcb_close(ctx);
}

static int jcb_key(void *ctx, const unsigned char *s, size_t len)
{
    jparse_t *jp = ctx;
    if (len > UINT32_MAX)
        return 0;
    char *p = dalloc(jp->c, len + 1);
    if (p == NULL)
        return 0;
    memcpy(p, s, len);
    p[len] = '\0';
    jp->key = p;
    jp->klen = (uint32_t)len;
    return 1;
}

static const yajl_callbacks jcallbacks = {
    jcb_null, jcb_bool, NULL, NULL, jcb_number, jcb_string, jcb_start_map, jcb_key, jcb_end, jcb_start_array, jcb_end,
};

static const jnode_t *json_parse(dctx_t *c, const uint8_t *data, size_t len)
{
    jparse_t jp = {c, NULL, NULL, NULL, 0, 0};
    yajl_handle h = yajl_alloc(&jcallbacks, NULL, &jp);
    if (h == NULL) {
        fail(c, "out of memory");
        return NULL;
    }
    /* ill-formed UTF-8 is repaired where spans are mapped, as in protobuf bodies */
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, data, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        if (c->oom) {
            fail_oom(c);
        } else if (!c->failed) {
            unsigned char *e = yajl_get_error(h, 0, data, len);
            size_t at = yajl_get_bytes_consumed(h);
            char *nl = e ? strchr((char *)e, '\n') : NULL;
            if (nl != NULL)
                *nl = '\0';
            fail(c, "invalid JSON: %s at offset %zu", e ? (const char *)e : "parse error", at);
            if (e != NULL)
                yajl_free_error(h, e);
        }
        yajl_free(h);
        return NULL;
    }
    yajl_free(h);
    if (jp.root == NULL || jp.root->type != JT_MAP) {
        fail(c, "invalid JSON: the body must be an object");
        return NULL;
    }
    return jp.root;
}

/* ------------------------------------------------------------------ */
/* JSON: jnode tree -> protobuf-c messages, driven by descriptors      */

/* A JSON member name matches a proto field name as written or in lowerCamelCase. */
static int name_match(const char *name, const char *key, uint32_t klen)
{
    uint32_t i = 0;
    const char *p = name;
    for (; *p != '\0'; p++, i++) {
        if (i >= klen)
            return 0;
        if (*p == '_' && p[1] != '\0' && key[i] != '_') {
            p++;
            char up = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
            if (key[i] != up)
                return 0;
        } else if (key[i] != *p) {
            return 0;
        }
    }
    return i == klen;
}

static const ProtobufCFieldDescriptor *field_by_json_name(const ProtobufCMessageDescriptor *d, const jnode_t *v)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (name_match(d->fields[i].name, v->key, v->klen))
            return &d->fields[i];
    return NULL;
}

static int jfail(dctx_t *c, const ProtobufCFieldDescriptor *f, const char *what)
{
    return fail(c, "invalid JSON: field \"%s\": %s", f->name, what);
}

static int json_num_text(const jnode_t *v, const char **s)
{
    if (v->type != JT_NUM && v->type != JT_STR)
        return -1;
    if (v->n == 0)
        return -1;
    *s = v->s;
    return 0;
}

static int json_i64(const jnode_t *v, int64_t *out)
{
    const char *s;
    if (json_num_text(v, &s) != 0)
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno == 0 && *end == '\0' && end != s) {
        *out = x;
        return 0;
    }
    errno = 0;
    double d = strtod(s, &end);
    if (errno != 0 || *end != '\0' || end == s || d != floor(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0)
        return -1;
    *out = (int64_t)d;
    return 0;
}

static int json_u64(const jnode_t *v, uint64_t *out)
{
    const char *s;
    if (json_num_text(v, &s) != 0 || s[0] == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno == 0 && *end == '\0' && end != s) {
        *out = x;
        return 0;
    }
    errno = 0;
    double d = strtod(s, &end);
    if (errno != 0 || *end != '\0' || end == s || d != floor(d) || d < 0 || d >= 18446744073709551616.0)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int json_double(const jnode_t *v, double *out)
{
    const char *s;
    if (json_num_text(v, &s) != 0)
        return -1;
    if (v->type == JT_STR) {
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return 0;
        }
        if (strcmp(s, "Infinity") == 0) {
            *out = INFINITY;
            return 0;
        }
        if (strcmp(s, "-Infinity") == 0) {
            *out = -INFINITY;
            return 0;
        }
    }
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end != '\0' || end == s)
        return -1;
    *out = d;
    return 0;
}

static int is_id_field(const char *name)
{
    return strcmp(name, "trace_id") == 0 || strcmp(name, "span_id") == 0 || strcmp(name, "parent_span_id") == 0;
}

/* OTLP/JSON ids are hex; an id that is not valid hex becomes 1 byte, which the mapping rejects. */
static int json_bytes(dctx_t *c, const ProtobufCFieldDescriptor *f, const jnode_t *v, ProtobufCBinaryData *out)
{
    if (v->type != JT_STR)
        return jfail(c, f, "expected a string");
    const char *s = v->s;
    size_t n = v->n;
    out->len = 0;
    out->data = NULL;
    if (n == 0)
        return 0;
    if (is_id_field(f->name)) {
        uint8_t *p = dalloc(c, n / 2 + 1);
        if (p == NULL)
            return fail_oom(c);
        int ok = hex_decode(s, n, HEX_ANY_CASE, p) == 0;
        out->data = p;
        out->len = ok ? n / 2 : 1;
        if (!ok)
            p[0] = 0;
        return 0;
    }
    size_t cap = base64_decoded_max(n);
    uint8_t *p = dalloc(c, cap);
    if (p == NULL)
        return fail_oom(c);
    size_t o;
    if (base64_decode(s, n, BASE64_LENIENT, p, cap, &o) != 0)
        return jfail(c, f, "invalid base64");
    out->data = p;
    out->len = o;
    return 0;
}

static int json_msg(dctx_t *c, const ProtobufCMessageDescriptor *d, const jnode_t *obj, ProtobufCMessage *m);

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    default: return 4;
    }
}

/* Decode one value of field f into dst (a struct member or an array element). */
static int json_value(dctx_t *c, const ProtobufCFieldDescriptor *f, const jnode_t *v, void *dst)
{
    int64_t i64;
    uint64_t u64;
    double dbl;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (json_i64(v, &i64) != 0 || i64 < INT32_MIN || i64 > INT32_MAX)
            return jfail(c, f, "expected a 32-bit integer");
        *(int32_t *)dst = (int32_t)i64;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (json_u64(v, &u64) != 0 || u64 > UINT32_MAX)
            return jfail(c, f, "expected an unsigned 32-bit integer");
        *(uint32_t *)dst = (uint32_t)u64;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (json_i64(v, &i64) != 0)
            return jfail(c, f, "expected a 64-bit integer");
        *(int64_t *)dst = i64;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (json_u64(v, &u64) != 0)
            return jfail(c, f, "expected an unsigned 64-bit integer");
        *(uint64_t *)dst = u64;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (json_double(v, &dbl) != 0)
            return jfail(c, f, "expected a number");
        *(float *)dst = (float)dbl;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (json_double(v, &dbl) != 0)
            return jfail(c, f, "expected a number");
        *(double *)dst = dbl;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (v->type != JT_BOOL)
            return jfail(c, f, "expected true or false");
        *(protobuf_c_boolean *)dst = v->b;
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        if (v->type == JT_STR) {
            const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, v->s);
            if (ev == NULL)
                return jfail(c, f, "unknown enum value name");
            *(int32_t *)dst = ev->value;
            return 0;
        }
        if (json_i64(v, &i64) != 0 || i64 < INT32_MIN || i64 > INT32_MAX)
            return jfail(c, f, "expected an enum number or name");
        *(int32_t *)dst = (int32_t)i64;
        return 0;
    case PROTOBUF_C_TYPE_STRING:
        if (v->type != JT_STR)
            return jfail(c, f, "expected a string");
        *(const char **)dst = v->s;
        return 0;
    case PROTOBUF_C_TYPE_BYTES: return json_bytes(c, f, v, dst);
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (v->type != JT_MAP)
            return jfail(c, f, "expected an object");
        const ProtobufCMessageDescriptor *md = f->descriptor;
        ProtobufCMessage *sub = dalloc(c, md->sizeof_message);
        if (sub == NULL)
            return fail_oom(c);
        if (json_msg(c, md, v, sub) != 0)
            return -1;
        *(ProtobufCMessage **)dst = sub;
        return 0;
    }
    default: return jfail(c, f, "unsupported field type");
    }
}

static int json_msg(dctx_t *c, const ProtobufCMessageDescriptor *d, const jnode_t *obj, ProtobufCMessage *m)
{
    protobuf_c_message_init(d, m);
    char *base = (char *)m;
    for (const jnode_t *v = obj->child; v != NULL; v = v->next) {
        const ProtobufCFieldDescriptor *f = field_by_json_name(d, v);
        if (f == NULL || v->type == JT_NULL)
            continue; /* OTLP/JSON: unknown fields are ignored */
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (v->type != JT_ARR)
                return jfail(c, f, "expected an array");
            size_t esz = elem_size(f->type);
            char *arr = NULL;
            if (v->n > 0) {
                arr = dalloc(c, (size_t)v->n * esz);
                if (arr == NULL)
                    return fail_oom(c);
                memset(arr, 0, (size_t)v->n * esz);
            }
            size_t i = 0;
            for (const jnode_t *e = v->child; e != NULL; e = e->next, i++)
                if (json_value(c, f, e, arr + i * esz) != 0)
                    return -1;
            *(size_t *)(base + f->quantifier_offset) = i;
            *(void **)(base + f->offset) = arr;
            continue;
        }
        if (json_value(c, f, v, base + f->offset) != 0)
            return -1;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
                 f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}

static ProtobufCMessage *json_unpack(dctx_t *c, const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len)
{
    const jnode_t *root = json_parse(c, data, len);
    if (root == NULL)
        return NULL;
    ProtobufCMessage *m = dalloc(c, d->sizeof_message);
    if (m == NULL) {
        fail_oom(c);
        return NULL;
    }
    if (json_msg(c, d, root, m) != 0)
        return NULL;
    return m;
}

int otlp_traces_decode_json(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                            span_sink_fn sink, void *ctx, otlp_result_t *res)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    const ProtobufCMessage *m = json_unpack(
        &c, &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, data, len);
    if (m == NULL)
        return -1;
    return map_traces(&c, (const trace_req_t *)m, sink, ctx);
}

int otlp_metrics_decode_json(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                             metric_sink_fn sink, void *ctx, otlp_result_t *res)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    const ProtobufCMessage *m = json_unpack(
        &c, &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor, data, len);
    if (m == NULL)
        return -1;
    return map_metrics(&c, (const metrics_req_t *)m, sink, ctx);
}

int otlp_logs_decode_json(const uint8_t *data, size_t len, const otlp_limits_t *limits, arena_t *arena,
                          otlp_log_sink_fn sink, void *ctx, otlp_result_t *res)
{
    dctx_t c;
    dctx_init(&c, limits, arena, res);
    const ProtobufCMessage *m =
        json_unpack(&c, &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor, data, len);
    if (m == NULL)
        return -1;
    return map_logs(&c, (const logs_req_t *)m, sink, ctx);
}

/* ------------------------------------------------------------------ */
/* responses                                                           */

static void pack_into(const ProtobufCMessage *m, buf_t *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n == 0)
        return;
    buf_reserve(out, n);
    protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
    out->len += n;
    out->data[out->len] = '\0';
}

void otlp_encode_response(enum otlp_signal sig, int json, const otlp_result_t *res, buf_t *out)
{
    int partial = res != NULL && res->rejected > 0;
    char *msg = partial ? (char *)res->error : NULL;
    if (json) {
        if (!partial) {
            buf_append(out, "{}", 2);
            return;
        }
        static const char *const counters[] = {"rejectedSpans", "rejectedDataPoints", "rejectedLogRecords"};
        buf_printf(out, "{\"partialSuccess\":{\"%s\":\"%llu\",\"errorMessage\":\"",
                   counters[sig <= OTLP_SIGNAL_LOGS ? sig : 0], (unsigned long long)res->rejected);
        buf_append_json_escaped(out, res->error, strnlen(res->error, sizeof(res->error)));
        buf_append(out, "\"}}", 3);
        return;
    }
    if (!partial)
        return; /* an empty message packs to zero bytes */
    int64_t rejected = res->rejected > INT64_MAX ? INT64_MAX : (int64_t)res->rejected;
    switch (sig) {
    case OTLP_SIGNAL_METRICS: {
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsPartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse r =
            OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
        ps.rejected_data_points = rejected;
        ps.error_message = msg;
        r.partial_success = &ps;
        pack_into(&r.base, out);
        break;
    }
    case OTLP_SIGNAL_LOGS: {
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsPartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_PARTIAL_SUCCESS__INIT;
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse r =
            OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_SERVICE_RESPONSE__INIT;
        ps.rejected_log_records = rejected;
        ps.error_message = msg;
        r.partial_success = &ps;
        pack_into(&r.base, out);
        break;
    }
    default: {
        Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse r =
            OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
        ps.rejected_spans = rejected;
        ps.error_message = msg;
        r.partial_success = &ps;
        pack_into(&r.base, out);
        break;
    }
    }
}

void otlp_encode_status(int json, int code, const char *message, buf_t *out)
{
    if (message == NULL)
        message = "";
    if (json) {
        buf_printf(out, "{\"code\":%d,\"message\":\"", code);
        buf_append_json_escaped(out, message, strlen(message));
        buf_append(out, "\"}", 2);
        return;
    }
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = code;
    st.message = (char *)message;
    pack_into(&st.base, out);
}
