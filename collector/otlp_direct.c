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

#include "otlp_direct_read.h"

#define MAX_ERROR_ATTRS 8 /* "error" attributes tracked per span; more go to the struct path */
#define MAX_RESOURCE_ATTRS 64

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
    str_t name, version;
    int rc = read_scope_fields(x, p, end, &name, &version);
    if (rc != D_OK)
        return rc;
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

/* Inlined into the walk of its ScopeSpans (walk_parts): split by GCC otherwise, it cost ~40 instructions a span more.
 */
static inline __attribute__((always_inline)) int do_span(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    if (x->n_items++ >= x->max_items)
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

static int do_scope_spans(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    int rc = otlp_scope_build(x->c, (str_t){"", 0}, (str_t){"", 0}, &x->rc) != 0 ? fatal(x) : D_OK;
    return walk_parts(x, p, end, rc, do_span, do_head, 0, "InstrumentationScope given twice or after spans");
}

static int do_resource_spans(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    int rc = otlp_resource_build(x->c, NULL, 0, &x->rc) != 0 ? fatal(x) : D_OK;
    return walk_parts(x, p, end, rc, do_scope_spans, do_head, 1, "Resource given twice or after scope_spans");
}

int otlp_direct_decode(dctx_t *c, const uint8_t *data, size_t len, otlp_direct_stats_t *stats)
{
    otlp_direct_stats_t unused;
    if (stats == NULL)
        stats = &unused;
    memset(stats, 0, sizeof(*stats));
    const uint8_t *end;
    size_t total;
    if (direct_begin(c, &data, len, &end, &total, &stats->declined) != 0)
        return OTLP_DECLINED;
    size_t slots = total < c->lim.max_items ? total : c->lim.max_items;
    c->batch = otlp_alloc(c, (slots > 0 ? slots : 1) * sizeof(span_t));
    c->n_batch = 0;
    if (c->batch == NULL)
        return otlp_fail_oom(c);
    dx_t x;
    dx_init(&x, c, end, total);
    x.stats = stats;
    int rc = walk_request(&x, data, end, do_resource_spans);
    if (rc == D_DECLINE) {
        stats->declined = x.why != NULL ? x.why : "malformed protobuf";
        c->batch = NULL;
        c->n_batch = 0;
        return OTLP_DECLINED;
    }
    return rc == D_OK ? 0 : -1;
}
