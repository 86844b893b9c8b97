/*
 * tracectx: trace context extraction/injection and the Istio peer metadata
 * exchange (see tracectx.h for the formats and the precedence rules).
 *
 * Extraction parses every recognised header independently into a small
 * "seen" record, then combines them: ids come from the highest-precedence
 * valid source (traceparent, b3, x-b3-*), the sampling decision from all
 * valid sources (any accept or debug wins, then any deny). A 64-bit B3
 * trace id is stored in bytes 8..15; the B3 writers emit 16 hex chars
 * whenever bytes 0..7 are zero, so it travels on unchanged (traceparent
 * always carries 32 chars, the id left-padded with zeros).
 *
 * Peer metadata is a hand-written encoder/decoder for the few
 * google.protobuf.Struct shapes Istio sends: a bounded, non-recursive
 * reader that skips unknown fields of every wire type (groups included)
 * and rejects anything malformed.
 */
#include "tracectx.h"

#include <math.h>
#include <string.h>

#include "base64.h"
#include "hex.h"
#include "varint.h"

/* ---- random and hex ---- */

uint64_t tracectx_rand(uint64_t *state)
{
    uint64_t x = *state;
    if (x == 0)
        x = 0x9e3779b97f4a7c15ull; /* xorshift never leaves 0 */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

void tracectx_hex(const uint8_t *id, size_t len, char *out)
{
    hex_encode(id, len, out);
    out[2 * len] = '\0';
}

/* Parse exactly 2*n hex chars into out[n]; -1 for a bad char or an all-zero id. */
static int parse_hex_id(const char *s, size_t n, uint8_t *out, enum hex_case cs)
{
    if (hex_decode(s, 2 * n, cs, out) < 0)
        return -1;
    uint8_t any = 0;
    for (size_t i = 0; i < n; i++)
        any |= out[i];
    return any ? 0 : -1;
}

/* A B3 trace id: 16 or 32 hex chars, stored right-aligned in out[16]. */
static int parse_b3_trace(const char *s, size_t len, uint8_t out[16])
{
    memset(out, 0, 16);
    if (len == 32)
        return parse_hex_id(s, 16, out, HEX_ANY_CASE);
    if (len == 16)
        return parse_hex_id(s, 8, out + 8, HEX_ANY_CASE);
    return -1;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Printable ASCII and HTAB only: what we echo back must be a safe field value. */
static bool safe_value(str_t v)
{
    for (uint32_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool str_eq_lit(str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* ---- extraction ---- */

typedef struct ids {
    bool ok;
    uint8_t trace[16];
    uint8_t span[8];
} ids_t;

typedef struct seen {
    ids_t tp, b3, mb3;
    int8_t tp_sampled;  /* -1 none, 0, 1 */
    int8_t b3_sampled;  /* -1 none, 0, 1, 2 = debug */
    int8_t mb3_sampled; /* -1 none, 0, 1 */
    bool mb3_debug;
    bool mb3_trace_ok, mb3_span_ok; /* the two halves of mb3 */
    bool tp_seen, b3_seen, tid_seen, sid_seen, smp_seen, flg_seen, rid_seen;
} seen_t;

/* W3C Trace Context 3.2: version-format, with the future-version rule of 4.3. */
static void parse_traceparent(str_t v, seen_t *s)
{
    const char *p = v.ptr;
    if (v.len < 55)
        return;
    int v1 = hex_digit(p[0], HEX_LOWER), v2 = hex_digit(p[1], HEX_LOWER);
    if (v1 < 0 || v2 < 0 || (v1 == 15 && v2 == 15))
        return;
    bool v00 = v1 == 0 && v2 == 0;
    if (v00 ? v.len != 55 : (v.len > 55 && p[55] != '-'))
        return;
    if (p[2] != '-' || p[35] != '-' || p[52] != '-')
        return;
    ids_t id = {0};
    if (parse_hex_id(p + 3, 16, id.trace, HEX_LOWER) < 0 || parse_hex_id(p + 36, 8, id.span, HEX_LOWER) < 0)
        return;
    int f1 = hex_digit(p[53], HEX_LOWER), f2 = hex_digit(p[54], HEX_LOWER);
    if (f1 < 0 || f2 < 0)
        return;
    id.ok = true;
    s->tp = id;
    s->tp_sampled = (int8_t)(f2 & 1);
}

static int b3_sampling_char(char c)
{
    switch (c) {
    case '0': return 0;
    case '1': return 1;
    case 'd': return 2;
    default: return -1;
    }
}

/* b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]] or {SamplingState}. */
static void parse_b3(str_t v, seen_t *s)
{
    if (v.len == 0)
        return;
    if (v.len == 1) {
        s->b3_sampled = (int8_t)b3_sampling_char(v.ptr[0]);
        return;
    }
    const char *p = v.ptr, *end = v.ptr + v.len;
    const char *dash = memchr(p, '-', v.len);
    if (!dash)
        return;
    ids_t id = {0};
    if (parse_b3_trace(p, (size_t)(dash - p), id.trace) < 0)
        return;
    p = dash + 1;
    if (end - p < 16 || parse_hex_id(p, 8, id.span, HEX_ANY_CASE) < 0)
        return;
    p += 16;
    int sampled = -1;
    if (p < end) {
        if (end - p < 2 || p[0] != '-' || (sampled = b3_sampling_char(p[1])) < 0)
            return;
        p += 2;
        if (p < end) {
            uint8_t parent[8];
            if (end - p != 17 || p[0] != '-' || parse_hex_id(p + 1, 8, parent, HEX_ANY_CASE) < 0)
                return;
        }
    }
    id.ok = true;
    s->b3 = id;
    s->b3_sampled = (int8_t)sampled;
}

static void add_tracestate(str_t v, trace_ctx_t *ctx, bool *overflow)
{
    if (*overflow || v.len == 0)
        return;
    if (v.len > TRACECTX_STATE_MAX) {
        *overflow = true;
        return;
    }
    uint32_t need = v.len + (ctx->tracestate_len ? 1 : 0);
    if (!safe_value(v) || ctx->tracestate_len + need > TRACECTX_STATE_MAX) {
        *overflow = true;
        return;
    }
    /* W3C 3.3.1: several tracestate fields are one comma-joined list. */
    if (ctx->tracestate_len)
        ctx->tracestate[ctx->tracestate_len++] = ',';
    memcpy(ctx->tracestate + ctx->tracestate_len, v.ptr, v.len);
    ctx->tracestate_len += v.len;
    ctx->tracestate[ctx->tracestate_len] = '\0';
}

/* The trace context fields this module reads and writes. */
enum own_kind {
    OWN_NONE,
    OWN_TRACEPARENT,
    OWN_TRACESTATE,
    OWN_B3,
    OWN_B3_TRACEID,
    OWN_B3_SPANID,
    OWN_B3_PARENTSPANID,
    OWN_B3_SAMPLED,
    OWN_B3_FLAGS,
    OWN_REQUEST_ID,
};

/*
 * Which of them name is: by its length first, then at most three
 * case-insensitive comparisons (every field of every request goes through
 * this, twice: extract and the upstream head).
 */
static inline enum own_kind own_kind(str_t name)
{
    if (name.ptr == NULL)
        return OWN_NONE;
    switch (name.len) {
    case 2: return http1_span_ieq(name.ptr, 2, "b3") ? OWN_B3 : OWN_NONE;
    case 10:
        return http1_span_ieq(name.ptr, 10, "tracestate")   ? OWN_TRACESTATE
               : http1_span_ieq(name.ptr, 10, "x-b3-flags") ? OWN_B3_FLAGS
                                                            : OWN_NONE;
    case 11:
        return http1_span_ieq(name.ptr, 11, "traceparent")   ? OWN_TRACEPARENT
               : http1_span_ieq(name.ptr, 11, "x-b3-spanid") ? OWN_B3_SPANID
                                                             : OWN_NONE;
    case 12:
        return http1_span_ieq(name.ptr, 12, "x-b3-traceid")   ? OWN_B3_TRACEID
               : http1_span_ieq(name.ptr, 12, "x-b3-sampled") ? OWN_B3_SAMPLED
               : http1_span_ieq(name.ptr, 12, "x-request-id") ? OWN_REQUEST_ID
                                                              : OWN_NONE;
    case 17: return http1_span_ieq(name.ptr, 17, "x-b3-parentspanid") ? OWN_B3_PARENTSPANID : OWN_NONE;
    default: return OWN_NONE;
    }
}

void tracectx_extract(const http1_header_t *h, uint32_t n, trace_ctx_t *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->sampled = -1;
    seen_t s;
    memset(&s, 0, sizeof(s));
    s.tp_sampled = s.b3_sampled = s.mb3_sampled = -1;
    bool state_overflow = false;

    /* The first field of each name counts (tracestate: all of them). */
    for (uint32_t i = 0; i < n; i++) {
        str_t name = h[i].name, v = h[i].value;
        if (!v.ptr)
            v.len = 0;
        switch (own_kind(name)) {
        case OWN_TRACEPARENT:
            if (!s.tp_seen)
                parse_traceparent(v, &s);
            s.tp_seen = true;
            break;
        case OWN_TRACESTATE: add_tracestate(v, ctx, &state_overflow); break;
        case OWN_B3:
            if (!s.b3_seen)
                parse_b3(v, &s);
            s.b3_seen = true;
            break;
        case OWN_B3_TRACEID:
            if (!s.tid_seen)
                s.mb3_trace_ok = parse_b3_trace(v.ptr, v.len, s.mb3.trace) == 0;
            s.tid_seen = true;
            break;
        case OWN_B3_SPANID:
            if (!s.sid_seen)
                s.mb3_span_ok = v.len == 16 && parse_hex_id(v.ptr, 8, s.mb3.span, HEX_ANY_CASE) == 0;
            s.sid_seen = true;
            break;
        case OWN_B3_SAMPLED:
            if (!s.smp_seen) {
                if (str_eq_lit(v, "1") || http1_name_eq(v, "true"))
                    s.mb3_sampled = 1;
                else if (str_eq_lit(v, "0") || http1_name_eq(v, "false"))
                    s.mb3_sampled = 0;
            }
            s.smp_seen = true;
            break;
        case OWN_B3_FLAGS:
            if (!s.flg_seen)
                s.mb3_debug = str_eq_lit(v, "1");
            s.flg_seen = true;
            break;
        case OWN_REQUEST_ID:
            if (!s.rid_seen && v.len > 0 && v.len <= TRACECTX_REQUEST_ID_MAX && safe_value(v)) {
                memcpy(ctx->request_id, v.ptr, v.len);
                ctx->request_id[v.len] = '\0';
                ctx->request_id_len = v.len;
            }
            s.rid_seen = true;
            break;
        case OWN_B3_PARENTSPANID: /* not read: the parent of this hop is the incoming span */
        case OWN_NONE: break;
        }
    }
    s.mb3.ok = s.mb3_trace_ok && s.mb3_span_ok;

    const ids_t *src = s.tp.ok ? &s.tp : s.b3.ok ? &s.b3 : s.mb3.ok ? &s.mb3 : NULL;
    if (src) {
        memcpy(ctx->trace_id, src->trace, 16);
        memcpy(ctx->parent_id, src->span, 8);
        ctx->has_trace = true;
        ctx->has_parent = true;
    }
    /* tracestate belongs to traceparent (W3C 3.3): without a valid one it is dropped. */
    if (!s.tp.ok || state_overflow) {
        ctx->tracestate_len = 0;
        ctx->tracestate[0] = '\0';
    }

    ctx->debug = s.b3_sampled == 2 || s.mb3_debug;
    if (ctx->debug || s.tp_sampled == 1 || s.b3_sampled == 1 || s.mb3_sampled == 1)
        ctx->sampled = 1;
    else if (s.b3_sampled == 0 || s.mb3_sampled == 0 || s.tp_sampled == 0)
        ctx->sampled = 0;
}

/* ---- begin / inject ---- */

static void random_id(uint8_t *out, size_t n, uint64_t *rng)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = tracectx_rand(rng);
            for (size_t j = 0; j < 8 && i + j < n; j++)
                out[i + j] = (uint8_t)(r >> (8 * j));
        }
    } while (all_zero(out, n));
}

void tracectx_begin(trace_ctx_t *ctx, double sampling_percent, uint64_t *rng)
{
    if (!ctx->has_trace) {
        /* A non-zero high half keeps our own ids 128-bit in B3 too. */
        do
            random_id(ctx->trace_id, 16, rng);
        while (all_zero(ctx->trace_id, 8));
        ctx->has_parent = false;
        memset(ctx->parent_id, 0, sizeof(ctx->parent_id));
    }
    random_id(ctx->span_id, 8, rng);

    if (ctx->debug)
        ctx->sampled = 1;
    if (ctx->sampled < 0) {
        if (!(sampling_percent > 0)) /* also NaN */
            ctx->sampled = 0;
        else if (sampling_percent >= 100)
            ctx->sampled = 1;
        else {
            double u = (double)(tracectx_rand(rng) >> 11) * 0x1.0p-53 * 100.0;
            ctx->sampled = u < sampling_percent ? 1 : 0;
        }
    }

    if (ctx->request_id_len == 0) {
        uint8_t u[16];
        uint64_t a = tracectx_rand(rng), b = tracectx_rand(rng);
        for (int i = 0; i < 8; i++) {
            u[i] = (uint8_t)(a >> (8 * i));
            u[8 + i] = (uint8_t)(b >> (8 * i));
        }
        u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* RFC 9562 5.4: version 4 */
        u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* variant 10 */
        char *o = ctx->request_id;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                *o++ = '-';
            hex_encode(&u[i], 1, o);
            o += 2;
        }
        *o = '\0';
        ctx->request_id_len = 36;
    }
}

bool tracectx_is_own_header(str_t name)
{
    return own_kind(name) != OWN_NONE;
}

/* Lowercase hex of the trace id for B3: 16 chars when the high half is zero. */
static size_t b3_trace_hex(const uint8_t trace[16], char *out)
{
    if (all_zero(trace, 8)) {
        tracectx_hex(trace + 8, 8, out);
        return 16;
    }
    tracectx_hex(trace, 16, out);
    return 32;
}

typedef struct writer {
    char *p; /* next free byte of scratch */
    http1_header_t *out;
    uint32_t n;
} writer_t;

/* Add the field whose value (len bytes plus a NUL) was just written at w->p. */
static void emit(writer_t *w, const char *name, size_t len)
{
    w->out[w->n].name = (str_t){name, (uint32_t)strlen(name)};
    w->out[w->n].value = (str_t){w->p, (uint32_t)len};
    w->n++;
    w->p += len + 1;
}

static void emit_copy(writer_t *w, const char *name, const char *value, size_t len)
{
    memcpy(w->p, value, len);
    w->p[len] = '\0';
    emit(w, name, len);
}

uint32_t tracectx_inject(const trace_ctx_t *ctx, char scratch[TRACECTX_SCRATCH], http1_header_t *out, uint32_t *n_w3c)
{
    writer_t w = {scratch, out, 0};
    char trace32[33], trace_b3[33], span[17], parent[17];
    tracectx_hex(ctx->trace_id, 16, trace32);
    size_t tlen = b3_trace_hex(ctx->trace_id, trace_b3);
    tracectx_hex(ctx->span_id, 8, span);
    tracectx_hex(ctx->parent_id, 8, parent);
    bool sampled = ctx->sampled > 0;

    char *p = w.p;
    memcpy(p, "00-", 3);
    memcpy(p + 3, trace32, 32);
    p[35] = '-';
    memcpy(p + 36, span, 16);
    memcpy(p + 52, sampled ? "-01" : "-00", 4);
    emit(&w, "traceparent", 55);

    if (ctx->tracestate_len > 0 && ctx->tracestate_len <= TRACECTX_STATE_MAX)
        emit_copy(&w, "tracestate", ctx->tracestate, ctx->tracestate_len);
    if (ctx->request_id_len > 0 && ctx->request_id_len <= TRACECTX_REQUEST_ID_MAX)
        emit_copy(&w, "x-request-id", ctx->request_id, ctx->request_id_len);
    if (ctx->debug)
        emit_copy(&w, "x-b3-flags", "1", 1);
    if (n_w3c != NULL)
        *n_w3c = ctx->sampled >= 0 ? w.n : 0; /* undecided sampling is only said by B3's absence */

    /* b3: trace-span[-sampling[-parent]]; the parent needs the sampling state before it. */
    p = w.p;
    size_t len = tlen;
    memcpy(p, trace_b3, tlen);
    p[len++] = '-';
    memcpy(p + len, span, 16);
    len += 16;
    if (ctx->sampled >= 0) {
        p[len++] = '-';
        p[len++] = ctx->debug ? 'd' : sampled ? '1' : '0';
        if (ctx->has_parent) {
            p[len++] = '-';
            memcpy(p + len, parent, 16);
            len += 16;
        }
    }
    p[len] = '\0';
    emit(&w, "b3", len);

    emit_copy(&w, "x-b3-traceid", trace_b3, tlen);
    emit_copy(&w, "x-b3-spanid", span, 16);
    if (ctx->has_parent)
        emit_copy(&w, "x-b3-parentspanid", parent, 16);
    if (ctx->sampled >= 0)
        emit_copy(&w, "x-b3-sampled", sampled ? "1" : "0", 1);
    return w.n;
}

/* ---- peer metadata: base64 ---- */

static void base64_append(buf_t *out, const uint8_t *in, size_t n)
{
    size_t len = base64_encoded_len(n);
    buf_reserve(out, len);
    base64_encode(in, n, out->data + out->len);
    out->len += len;
    out->data[out->len] = '\0';
}

/* ---- peer metadata: protobuf Struct ---- */

#define PB_VARINT 0
#define PB_I64 1
#define PB_LEN 2
#define PB_SGROUP 3
#define PB_EGROUP 4
#define PB_I32 5

#define PEER_B64_MAX 8192
#define PEER_RAW_MAX (PEER_B64_MAX / 4 * 3)
#define PEER_GROUP_DEPTH 16

static void pb_tag(buf_t *b, uint32_t field, uint32_t wire)
{
    uint8_t t[10];
    uint8_t *e = varint_write(t, (uint64_t)field << 3 | wire);
    buf_append(b, t, (size_t)(e - t));
}

static void pb_len(buf_t *b, uint32_t field, size_t len)
{
    uint8_t t[10];
    pb_tag(b, field, PB_LEN);
    uint8_t *e = varint_write(t, len);
    buf_append(b, t, (size_t)(e - t));
}

static size_t field_len(const char *s)
{
    return strnlen(s, PEER_FIELD_MAX - 1);
}

/* A Struct map entry {key: value{string_value}} as field 1 of a Struct. */
static void pb_string_entry(buf_t *b, const char *key, const char *val)
{
    size_t kl = strlen(key), vl = field_len(val);
    if (vl == 0)
        return;
    size_t value_len = 1 + varint_size(vl) + vl;
    size_t entry_len = 1 + varint_size(kl) + kl + 1 + varint_size(value_len) + value_len;
    pb_len(b, 1, entry_len);
    pb_len(b, 1, kl);
    buf_append(b, key, kl);
    pb_len(b, 2, value_len);
    pb_len(b, 3, vl);
    buf_append(b, val, vl);
}

void peer_encode(const peer_info_t *p, buf_t *out)
{
    buf_t pb = BUF_INIT, labels = BUF_INIT;
    pb_string_entry(&pb, "NAME", p->name);
    pb_string_entry(&pb, "NAMESPACE", p->namespace);
    pb_string_entry(&pb, "WORKLOAD_NAME", p->workload);
    pb_string_entry(&pb, "CLUSTER_ID", p->cluster_id);
    pb_string_entry(&labels, "app", p->app);
    pb_string_entry(&labels, "version", p->version);
    pb_string_entry(&labels, "service.istio.io/canonical-name", p->canonical_service);
    pb_string_entry(&labels, "service.istio.io/canonical-revision", p->canonical_revision);
    if (labels.len > 0) {
        static const char key[] = "LABELS";
        size_t kl = sizeof(key) - 1;
        size_t value_len = 1 + varint_size(labels.len) + labels.len;
        size_t entry_len = 1 + varint_size(kl) + kl + 1 + varint_size(value_len) + value_len;
        pb_len(&pb, 1, entry_len);
        pb_len(&pb, 1, kl);
        buf_append(&pb, key, kl);
        pb_len(&pb, 2, value_len);
        pb_len(&pb, 5, labels.len);
        buf_append(&pb, labels.data, labels.len);
    }
    base64_append(out, (const uint8_t *)pb.data, pb.len);
    buf_dispose(&pb);
    buf_dispose(&labels);
}

void peer_encode_id(const peer_info_t *p, const char *ip, buf_t *out)
{
    size_t nl = field_len(p->name), sl = field_len(p->namespace);
    buf_append_str(out, "sidecar~");
    if (ip)
        buf_append_str(out, ip);
    buf_append_char(out, '~');
    buf_append(out, p->name, nl);
    buf_append_char(out, '.');
    buf_append(out, p->namespace, sl);
    buf_append_char(out, '~');
    buf_append(out, p->namespace, sl);
    buf_append_str(out, ".svc.cluster.local");
}

typedef struct pb_reader {
    const uint8_t *p;
    size_t len, pos;
} pb_reader_t;

/* Read a tag; -1 at malformed input (field 0, field number over 2^29-1). */
static int pb_read_tag(pb_reader_t *r, uint32_t *field, uint32_t *wire)
{
    uint64_t t;
    if (varint_read(r->p, r->len, &r->pos, &t) < 0 || t > 0xffffffffu || (t >> 3) == 0)
        return -1;
    *field = (uint32_t)(t >> 3);
    *wire = (uint32_t)(t & 7);
    return 0;
}

/* A length-delimited payload that fits in the rest of the input. */
static int pb_read_len(pb_reader_t *r, pb_reader_t *sub)
{
    uint64_t n;
    if (varint_read(r->p, r->len, &r->pos, &n) < 0 || n > r->len - r->pos)
        return -1;
    sub->p = r->p + r->pos;
    sub->len = (size_t)n;
    sub->pos = 0;
    r->pos += (size_t)n;
    return 0;
}

/* Skip one non-group field body of the given wire type. */
static int pb_skip_scalar(pb_reader_t *r, uint32_t wire)
{
    uint64_t v;
    pb_reader_t sub;
    switch (wire) {
    case PB_VARINT: return varint_read(r->p, r->len, &r->pos, &v);
    case PB_I64:
        if (r->len - r->pos < 8)
            return -1;
        r->pos += 8;
        return 0;
    case PB_LEN: return pb_read_len(r, &sub);
    case PB_I32:
        if (r->len - r->pos < 4)
            return -1;
        r->pos += 4;
        return 0;
    default: return -1;
    }
}

/* Skip a field whose tag was just read; groups are walked with an explicit stack. */
static int pb_skip(pb_reader_t *r, uint32_t field, uint32_t wire)
{
    if (wire == PB_EGROUP)
        return -1;
    if (wire != PB_SGROUP)
        return pb_skip_scalar(r, wire);
    uint32_t stack[PEER_GROUP_DEPTH];
    int depth = 0;
    stack[depth++] = field;
    while (depth > 0) {
        uint32_t f, w;
        if (pb_read_tag(r, &f, &w) < 0)
            return -1;
        if (w == PB_SGROUP) {
            if (depth == PEER_GROUP_DEPTH)
                return -1;
            stack[depth++] = f;
        } else if (w == PB_EGROUP) {
            if (stack[--depth] != f)
                return -1;
        } else if (pb_skip_scalar(r, w) < 0) {
            return -1;
        }
    }
    return 0;
}

static void copy_field(char dst[PEER_FIELD_MAX], pb_reader_t s)
{
    size_t n = s.len < PEER_FIELD_MAX - 1 ? s.len : PEER_FIELD_MAX - 1;
    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

typedef struct pb_value {
    bool has_string, has_struct;
    pb_reader_t str; /* string_value or struct_value bytes (the last one wins) */
} pb_value_t;

/* google.protobuf.Value: string_value (3) or struct_value (5); every other member is skipped. */
static int pb_read_value(pb_reader_t r, pb_value_t *v)
{
    memset(v, 0, sizeof(*v));
    while (r.pos < r.len) {
        uint32_t f, w;
        if (pb_read_tag(&r, &f, &w) < 0)
            return -1;
        if (f == 3 || f == 5) {
            pb_reader_t sub;
            if (w != PB_LEN || pb_read_len(&r, &sub) < 0)
                return -1;
            /* oneof: the last member set wins */
            v->has_string = f == 3;
            v->has_struct = f == 5;
            v->str = sub;
        } else if (pb_skip(&r, f, w) < 0) {
            return -1;
        }
    }
    return 0;
}

/* One map entry {key = 1, value = 2}. */
static int pb_read_entry(pb_reader_t r, pb_reader_t *key, pb_value_t *val)
{
    memset(key, 0, sizeof(*key));
    memset(val, 0, sizeof(*val));
    while (r.pos < r.len) {
        uint32_t f, w;
        if (pb_read_tag(&r, &f, &w) < 0)
            return -1;
        if (f == 1 || f == 2) {
            pb_reader_t sub;
            if (w != PB_LEN || pb_read_len(&r, &sub) < 0)
                return -1;
            if (f == 1)
                *key = sub;
            else if (pb_read_value(sub, val) < 0)
                return -1;
        } else if (pb_skip(&r, f, w) < 0) {
            return -1;
        }
    }
    return 0;
}

static bool key_is(pb_reader_t k, const char *lit)
{
    size_t n = strlen(lit);
    return k.len == n && memcmp(k.p, lit, n) == 0;
}

/* A Struct; labels selects the LABELS key set (depth 1) instead of the top-level one. */
static int pb_read_struct(pb_reader_t r, peer_info_t *p, bool labels)
{
    while (r.pos < r.len) {
        uint32_t f, w;
        if (pb_read_tag(&r, &f, &w) < 0)
            return -1;
        if (f != 1) {
            if (pb_skip(&r, f, w) < 0)
                return -1;
            continue;
        }
        pb_reader_t entry, key;
        pb_value_t val;
        if (w != PB_LEN || pb_read_len(&r, &entry) < 0 || pb_read_entry(entry, &key, &val) < 0)
            return -1;
        char *dst = NULL;
        if (labels) {
            if (key_is(key, "app"))
                dst = p->app;
            else if (key_is(key, "version"))
                dst = p->version;
            else if (key_is(key, "service.istio.io/canonical-name"))
                dst = p->canonical_service;
            else if (key_is(key, "service.istio.io/canonical-revision"))
                dst = p->canonical_revision;
        } else if (key_is(key, "NAME")) {
            dst = p->name;
        } else if (key_is(key, "NAMESPACE")) {
            dst = p->namespace;
        } else if (key_is(key, "WORKLOAD_NAME")) {
            dst = p->workload;
        } else if (key_is(key, "CLUSTER_ID")) {
            dst = p->cluster_id;
        } else if (key_is(key, "LABELS") && val.has_struct) {
            if (pb_read_struct(val.str, p, true) < 0)
                return -1;
        }
        if (dst && val.has_string)
            copy_field(dst, val.str);
    }
    return 0;
}

int peer_decode(str_t value, peer_info_t *p)
{
    memset(p, 0, sizeof(*p));
    if (value.len > PEER_B64_MAX || (value.len > 0 && !value.ptr))
        return -1;
    uint8_t raw[PEER_RAW_MAX];
    size_t n;
    if (base64_decode(value.ptr, value.len, BASE64_STRICT, raw, sizeof(raw), &n) != 0)
        goto fail;
    pb_reader_t r = {raw, n, 0};
    if (pb_read_struct(r, p, false) < 0)
        goto fail;
    return 0;
fail:
    memset(p, 0, sizeof(*p));
    return -1;
}

bool peer_is_header(str_t name)
{
    return http1_name_eq(name, PEER_HEADER) || http1_name_eq(name, PEER_ID_HEADER);
}
