/*
 * otlp_direct_logs: OTLP log protobuf straight from the wire to otlp_log_t
 * (otlp_logs_decode_proto_direct in otlp.h), the ingest path of the access
 * logs every sidecar sends, one record per request it proxies.
 *
 * Design: otlp_direct's, for logs, with the reading shared
 * (otlp_direct_read.h). Two read-only passes over the body, nothing
 * written into it. The first counts the log records (for the array the
 * records go to, at most the request's record limit); the second reads
 * each message's fields as it meets them and maps as it goes: the service
 * name once per ResourceLogs, the scope name once per ScopeLogs, and each
 * record's fields, body and attributes into the next otlp_log_t. Strings
 * are (pointer, length) slices of the body, their C-string view (up to a
 * NUL byte, as protobuf-c hands them out) cut to the value limit; the
 * log mapping repairs no UTF-8, so no string needs more than its NUL scan.
 * Attributes go to a per-request pool, contiguous per record, and ints
 * are rendered once per request, so an ordinary record costs no
 * allocation of its own. The proxy's field order (time, severity, its
 * text, body) is taken in one step before the general field loop. Every
 * rule the mapping decides is one of otlp_internal.h's (otlp_log_begin,
 * otlp_log_service_kv, otlp_render_val), shared with the struct path.
 *
 * Records are not handed to a sink as they are read: further on the body
 * may turn out to be malformed or to be declined, and the protobuf-c path
 * gives its sink nothing then. Each accepted record keeps the count of
 * rejections before it (c->logs_rejected), from which
 * otlp_logs_decode_proto replays to its sink exactly what the struct path
 * would have reported, a sink that stops early included.
 *
 * Exactness is kept by handing over rather than imitating: a record,
 * Resource or InstrumentationScope with an array or kvlist value, or with
 * a body or attribute value given twice (protobuf-c merges them), is
 * unpacked on its own by protobuf-c (otlp_logs_unpack, with the depth check
 * of a whole request) and mapped by the struct path; the rest of the body
 * stays on the fast path. A malformed body, a Resource or scope given
 * twice or after the records it applies to, or a max_depth below 6 (the
 * messages read here nest 6 deep) declines the whole body (OTLP_DECLINED),
 * which the caller then decodes with protobuf-c, so that errors and their
 * messages are the general path's.
 */
#include <string.h>

#define OTLP_DIRECT_LEN5 1 /* the proxy's five-byte lengths, read inline (otlp_direct_read.h) */
#include "otlp_direct_read.h"

/* The record just mapped into c->logs[c->n_logs] was accepted. */
static inline void accept_log(dctx_t *c)
{
    c->logs_rejected[c->n_logs] = c->res->rejected;
    c->n_logs++;
    c->res->accepted++;
}

/* ------------------------------------------------------------------ */
/* resource and scope                                                  */

/* Read kv from [s, s + n): the usual encoding at once, else field by field. D_OK, D_DECLINE or D_HAND. */
static inline int read_kv(const dx_t *x, const uint8_t *s, size_t n, otlp_kv_t *kv)
{
    if (kv_usual(x, s, s + n, kv, NULL))
        return D_OK;
    return parse_kv(x, s, s + n, kv);
}

/* A Resource: its service name into x->service (D_HAND: to protobuf-c). */
static int read_resource(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    int found = 0;
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        otlp_kv_t kv;
        int rc;
        if (key == K(1, WT_LEN)) {
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            if ((rc = read_kv(x, s, n, &kv)) != D_OK)
                return rc;
            if (!found && otlp_log_service_kv(kv.key, &kv.val)) {
                found = 1;
                x->service = cut(x, kv.val.u.str);
            }
        } else if (key == K(2, WT_VARINT)) {
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
        } else if (other_field(&p, end, key, 2) != D_OK) {
            return D_DECLINE;
        }
    }
    return D_OK;
}

/* An InstrumentationScope: its name into x->scope (D_HAND: to protobuf-c). */
static int read_scope(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    str_t name, version; /* the version is not mapped */
    int rc = read_scope_fields(x, p, end, &name, &version);
    if (rc == D_OK)
        x->scope = cut(x, name);
    return rc;
}

/* A Resource (resource = 1) or InstrumentationScope: read here, or by protobuf-c when unusual. */
static int do_head(dx_t *x, const uint8_t *p, const uint8_t *end, int resource)
{
    int rc = resource ? read_resource(x, p, end) : read_scope(x, p, end);
    if (rc != D_HAND)
        return rc;
    void *m;
    rc = otlp_logs_unpack(x->c, resource ? OTLP_LOGS_PART_RESOURCE : OTLP_LOGS_PART_SCOPE, p, (size_t)(end - p), &m);
    if (rc == OTLP_WIRE_NOMEM)
        return D_FATAL;
    if (rc != 0)
        return decline(x, "malformed protobuf");
    if (resource) {
        x->lstats->resources_handed++;
        x->service = otlp_log_service(x->c, m);
    } else {
        x->lstats->scopes_handed++;
        x->scope = otlp_log_scope(x->c, m);
    }
    return D_OK;
}

/* ------------------------------------------------------------------ */
/* log records                                                         */

/* One attribute of the record: validated always, rendered into the tag pool when within the limit. */
static inline int read_attr(dx_t *x, const uint8_t *s, size_t n, int keep)
{
    otlp_kv_t kv;
    if (!kv_usual(x, s, s + n, &kv, NULL)) {
        otlp_kv_t other; /* kept apart so that kv can live in registers */
        int rc = parse_kv(x, s, s + n, &other);
        if (rc != D_OK)
            return rc;
        kv = other;
    }
    if (!keep)
        return D_OK;
    span_tag_t *t = pool_push(x, &x->tags, sizeof(*t));
    if (t == NULL)
        return fatal(x);
    t->key = cut(x, kv.key);
    return render_value(x, &kv.val, &t->value) != 0 ? fatal(x) : D_OK;
}

/*
 * The usual attribute at p (its length byte; the record ends at end), as
 * the proxy writes them: a KeyValue of a one-byte length, the key then
 * the value, each once with a one-byte length, the value a string or an
 * int of at most two bytes alone, no NUL in key or string (so nothing to
 * cut while x->cut is at least 128: the caller checks). Written to *t;
 * returns the position past it, or NULL when the attribute is anything
 * else (read_attr takes it then).
 */
static inline const uint8_t *usual_attr(dx_t *x, const uint8_t *p, const uint8_t *end, span_tag_t *t)
{
    size_t kvl = p[0];
    if (kvl >= 0x80 || kvl >= (size_t)(end - p) || kvl < 6)
        return NULL;
    const uint8_t *s = p + 1;
    size_t kl = s[1];
    if (s[0] != K(1, WT_LEN) || kl > kvl - 6)
        return NULL;
    const uint8_t *q = s + 2 + kl; /* the value field */
    size_t vl = kvl - kl - 4;      /* what its length must be: at least 2 */
    if (q[0] != K(2, WT_LEN) || q[1] != vl)
        return NULL;
    const uint8_t *v = q + 2;
    if (v[0] == K(1, WT_LEN) && v[1] == vl - 2) {
        if (!nul_free(s + 2, kvl - 2)) /* key, value tags and string at once */
            return NULL;
        t->value = (str_t){(const char *)v + 2, (uint32_t)(vl - 2)};
    } else if (v[0] == K(3, WT_VARINT) && vl <= 3) {
        uint64_t u = v[1];
        if (vl == 3) {
            if (u < 0x80 || v[2] >= 0x80)
                return NULL;
            u = (u & 0x7f) | (uint64_t)v[2] << 7;
        } else if (vl != 2 || u >= 0x80) {
            return NULL;
        }
        if (!nul_free(s + 2, kl) || render_int(x, (int64_t)u, &t->value) != 0)
            return NULL;
    } else {
        return NULL;
    }
    t->key = (str_t){(const char *)s + 2, (uint32_t)kl};
    return s + kvl;
}

/*
 * A run of attributes (they come in runs) at *pp, past the first one's
 * tag: the usual ones in a tight loop (usual_attr) while under the limit
 * and with room in the tag pool, any other through read_attr. *pp ends
 * past the run, *n_attr counts them.
 */
static inline int read_attr_run(dx_t *x, const uint8_t **pp, const uint8_t *end, uint32_t *n_attr)
{
    const uint8_t *p = *pp;
    uint32_t n = *n_attr, max = x->c->lim.max_attributes;
    for (;;) {
        span_tag_t *t = (span_tag_t *)(void *)x->tags.cur;
        size_t fast = (size_t)(x->tags.end - x->tags.cur) / sizeof(*t);
        if (n >= max || x->cut < 128)
            fast = 0;
        else if (fast > max - n)
            fast = max - n;
        for (const uint8_t *next; fast > 0 && (next = usual_attr(x, p, end, t)) != NULL; fast--) {
            t++;
            n++;
            p = next;
            if (p >= end || *p != K(6, WT_LEN)) {
                x->tags.cur = (char *)t;
                *pp = p;
                *n_attr = n;
                return D_OK;
            }
            p++;
        }
        x->tags.cur = (char *)t;
        const uint8_t *s;
        size_t len;
        int rc;
        if (len_at(&p, end, &s, &len) != 0)
            return D_DECLINE;
        if ((rc = read_attr(x, s, len, n < max)) != D_OK)
            return rc;
        n++;
        if (p >= end || *p != K(6, WT_LEN))
            break;
        p++;
    }
    *pp = p;
    *n_attr = n;
    return D_OK;
}

/* Read the record [p, end) into in, body and the tag pool; the mapping happens in map_read_log. */
static int read_log(dx_t *x, const uint8_t *p, const uint8_t *end, otlp_log_in_t *in, otlp_val_t *body)
{
    uint32_t n_attr = 0;
    int have_body = 0;
    /* the proxy writes time, severity and its text first, in field order: take them without the loop */
    if (end - p >= 9 && p[0] == K(1, WT_I64)) {
        in->time_ns = otlp_pb_ld64(p + 1);
        p += 9;
        if (end - p >= 2 && p[0] == K(2, WT_VARINT) && p[1] < 0x80) {
            in->severity_number = p[1];
            p += 2;
            if (end - p >= 2 && p[0] == K(3, WT_LEN) && p[1] < 0x80 && p[1] <= end - p - 2) {
                in->severity_text = zstr_plain(x, p + 2, p[1]);
                p += 2 + p[1];
            }
        }
    }
    while (p < end) {
        uint32_t key = tag_at(&p, end);
        const uint8_t *s;
        size_t n;
        uint64_t u;
        int rc;
        switch (key) {
        case K(1, WT_I64):
        case K(11, WT_I64):
            if (fixed_at(&p, end, 8, &s) != 0)
                return D_DECLINE;
            *(key == K(1, WT_I64) ? &in->time_ns : &in->observed_ns) = otlp_pb_ld64(s);
            break;
        case K(2, WT_VARINT):
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            in->severity_number = (int32_t)(uint32_t)u;
            break;
        case K(3, WT_LEN):
        case K(12, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            *(key == K(3, WT_LEN) ? &in->severity_text : &in->event_name) = zstr_plain(x, s, n);
            break;
        case K(5, WT_LEN):
            if (len_at(&p, end, &s, &n) != 0)
                return D_DECLINE;
            if (have_body)
                return D_HAND; /* merged by protobuf-c */
            have_body = 1;
            if (n > 0 && s[0] == K(1, WT_LEN)) { /* a string alone, the usual body: without the AnyValue loop */
                const uint8_t *q = s + 1, *str;
                size_t sl;
                if (len_at(&q, s + n, &str, &sl) == 0 && q == s + n) {
                    body->kind = AV(STRING_VALUE);
                    body->u.str = nul_free(str, sl) ? (str_t){(const char *)str, (uint32_t)sl} : zstr_plain(x, str, sl);
                    break;
                }
            }
            if ((rc = parse_any(x, s, s + n, body)) != D_OK)
                return rc;
            break;
        case K(6, WT_LEN):
            if ((rc = read_attr_run(x, &p, end, &n_attr)) != D_OK)
                return rc;
            /* the proxy's last fields: flags (sampled records), the ids at their sizes, the observed time */
            if (end - p >= 5 && p[0] == K(8, WT_I32)) {
                in->flags = otlp_pb_ld32(p + 1);
                p += 5;
            }
            if (end - p >= 28 && p[0] == K(9, WT_LEN) && p[1] == 16 && p[18] == K(10, WT_LEN) && p[19] == 8) {
                in->trace_id = p + 2;
                in->trace_id_len = 16;
                in->span_id = p + 20;
                in->span_id_len = 8;
                p += 28;
            }
            if (end - p >= 9 && p[0] == K(11, WT_I64)) {
                in->observed_ns = otlp_pb_ld64(p + 1);
                p += 9;
            }
            break;
        case K(7, WT_VARINT): /* dropped_attributes_count */
            if (varint_at(&p, end, &u) != 0)
                return D_DECLINE;
            break;
        case K(8, WT_I32):
            if (fixed_at(&p, end, 4, &s) != 0)
                return D_DECLINE;
            in->flags = otlp_pb_ld32(s);
            break;
        case K(9, WT_LEN): /* ids: the last one given wins, checked when mapped */
            if (len_at(&p, end, &in->trace_id, &in->trace_id_len) != 0)
                return D_DECLINE;
            break;
        case K(10, WT_LEN):
            if (len_at(&p, end, &in->span_id, &in->span_id_len) != 0)
                return D_DECLINE;
            break;
        default:
            /* field 4 is reserved: skipped like any unknown field, whatever its wire type */
            if ((key >> 3) == 4 ? skip_at(&p, end, key) != 0 : other_field(&p, end, key, 12) != D_OK)
                return D_DECLINE;
        }
    }
    return D_OK;
}

/* The record read into in, body and the tag pool: mapped into the next slot of c->logs (or rejected). */
static int map_read_log(dx_t *x, const otlp_log_in_t *in, const otlp_val_t *body)
{
    dctx_t *c = x->c;
    otlp_log_t *o = &c->logs[c->n_logs];
    if (otlp_log_begin(c, in, x->service, x->scope, o) == 0)
        return D_OK;
    if (render_value(x, body, &o->body) != 0)
        return fatal(x);
    size_t nt = (size_t)(x->tags.cur - x->tags.base) / sizeof(span_tag_t);
    if (nt > 0) {
        o->attributes = (const span_tag_t *)(const void *)x->tags.base;
        o->n_attributes = (uint32_t)nt;
    }
    pool_commit(&x->tags);
    accept_log(c);
    return D_OK;
}

static int do_log(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    if (x->n_items++ >= x->max_items)
        return decline(x, "record count changed between passes");
    otlp_log_in_t in;
    in.trace_id = in.span_id = NULL;
    in.trace_id_len = in.span_id_len = 0;
    in.time_ns = in.observed_ns = 0;
    in.severity_number = 0;
    in.flags = 0;
    in.severity_text = in.event_name = (str_t){"", 0};
    otlp_val_t body = {.kind = OTLP_VAL_ABSENT};
    int rc = read_log(x, p, end, &in, &body);
    if (rc == D_OK)
        rc = map_read_log(x, &in, &body);
    pool_drop(&x->tags); /* a no-op after a mapped record */
    if (rc == D_OK)
        x->lstats->records++;
    if (rc != D_HAND)
        return rc;
    void *m;
    rc = otlp_logs_unpack(x->c, OTLP_LOGS_PART_RECORD, p, (size_t)(end - p), &m);
    if (rc == OTLP_WIRE_NOMEM)
        return D_FATAL;
    if (rc != 0)
        return decline(x, "malformed protobuf");
    x->lstats->records_handed++;
    rc = otlp_log_map(x->c, m, x->service, x->scope, &x->c->logs[x->c->n_logs]);
    if (rc < 0)
        return D_FATAL;
    if (rc > 0)
        accept_log(x->c);
    return D_OK;
}

/* ------------------------------------------------------------------ */
/* outer messages                                                      */

static int do_scope_logs(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    x->scope = (str_t){"", 0};
    return walk_parts(x, p, end, D_OK, do_log, do_head, 0, "InstrumentationScope given twice or after log records");
}

static int do_resource_logs(dx_t *x, const uint8_t *p, const uint8_t *end)
{
    x->service = (str_t){"", 0};
    return walk_parts(x, p, end, D_OK, do_scope_logs, do_head, 1, "Resource given twice or after scope_logs");
}

int otlp_direct_logs_decode(dctx_t *c, const uint8_t *data, size_t len, otlp_logs_direct_stats_t *stats)
{
    otlp_logs_direct_stats_t unused;
    if (stats == NULL)
        stats = &unused;
    memset(stats, 0, sizeof(*stats));
    const uint8_t *end;
    size_t total;
    if (direct_begin(c, &data, len, &end, &total, &stats->declined) != 0)
        return OTLP_DECLINED;
    size_t slots = total < c->lim.max_items ? total : c->lim.max_items;
    if (slots == 0)
        slots = 1;
    c->logs = otlp_alloc(c, slots * sizeof(otlp_log_t));
    c->logs_rejected = otlp_alloc(c, slots * sizeof(uint64_t));
    c->n_logs = 0;
    if (c->logs == NULL || c->logs_rejected == NULL)
        return otlp_fail_oom(c);
    dx_t x;
    dx_init(&x, c, end, total);
    x.lstats = stats;
    int rc = walk_request(&x, data, end, do_resource_logs);
    if (rc == D_DECLINE) {
        stats->declined = x.why != NULL ? x.why : "malformed protobuf";
        c->logs = NULL;
        c->logs_rejected = NULL;
        c->n_logs = 0;
        return OTLP_DECLINED;
    }
    return rc == D_OK ? 0 : -1;
}
