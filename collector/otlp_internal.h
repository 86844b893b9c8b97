/*
 * otlp_internal: the OTLP -> span_t and OTLP -> otlp_log_t rules shared by
 * the struct decoders and the direct ones (not a public API; include otlp.h
 * instead). otlp.c maps protobuf-c structs (from otlp_wire, protobuf-c or
 * JSON); otlp_direct.c (traces) and otlp_direct_logs.c (logs) map straight
 * from the wire. Both describe an attribute value as an otlp_val_t view and
 * a span's or log record's own fields as an otlp_span_in_t / otlp_log_in_t,
 * and go through the same functions below for everything the mapping
 * decides (rejections and their reasons, lowercasing, UTF-8 repair, value
 * text, the tags added after a span's own, the remote endpoint, a log
 * record's fields and service), so the two cannot drift apart.
 */
#ifndef OUTRIDER_OTLP_INTERNAL_H
#define OUTRIDER_OTLP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "otlp.h"
#include "otlp_wire.h"

typedef Opentelemetry__Proto__Common__V1__AnyValue any_value_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue key_value_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope scope_t;
typedef Opentelemetry__Proto__Resource__V1__Resource resource_t;
typedef Opentelemetry__Proto__Trace__V1__Span pspan_t;
typedef Opentelemetry__Proto__Logs__V1__LogRecord plog_t;

#define AV(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x

/* Decode state of one call. */
typedef struct dctx {
    arena_t *arena;
    otlp_limits_t lim;
    otlp_result_t *res;
    int oom;                                          /* the arena refused an allocation */
    int failed;                                       /* res->error holds a fatal reason */
    char reason[sizeof(((otlp_result_t *)0)->error)]; /* copy of the first rejection reason */
    int wire;      /* the messages come from otlp_wire: otlp_wire_strlen gives string lengths */
    int ascii;     /* otlp_wire found no byte >= 0x80 in any string: nothing to repair */
    span_t *batch; /* traces without a sink: accepted spans, in the arena */
    size_t n_batch;
    otlp_log_t *logs;        /* logs without a sink (otlp_direct_logs): accepted records, in the arena */
    uint64_t *logs_rejected; /* per accepted record: res->rejected when it was accepted */
    size_t n_logs;
    struct {
        str_t in, out; /* in.ptr NULL: empty */
    } lowered[8];      /* recent names and their lowercased form: they repeat within a request */
} dctx_t;

/* -1 after recording that the arena is full ("request too large: ..."). */
int otlp_fail_oom(dctx_t *c);

/* Arena allocation that records a refusal in c->oom. */
void *otlp_alloc(dctx_t *c, size_t size);

/*
 * Repair ill-formed UTF-8 in a string a span keeps (utf8_repair; copied
 * only then, and cut again to the value limit); -1 when the arena is full.
 */
int otlp_repair(dctx_t *c, str_t *s);

/* A string of the messages as a tag value: cut to lim.max_attribute_value_len at a UTF-8 boundary. */
static inline str_t otlp_str(const dctx_t *c, const char *p, size_t len)
{
    size_t max = c->lim.max_attribute_value_len;
    if (max != 0 && len > max) {
        len = max;
        /* do not cut a UTF-8 sequence: drop the whole character at the cut */
        while (len > 0 && ((unsigned char)p[len] & 0xC0) == 0x80)
            len--;
    }
    if (len > UINT32_MAX)
        len = UINT32_MAX;
    return (str_t){p, (uint32_t)len};
}

/* Writes the decimal form of v into out (no NUL); returns its length. */
size_t otlp_fmt_i64(int64_t v, char out[24]);

/* ---- attribute values ---- */

#define OTLP_VAL_ABSENT (-1) /* a KeyValue without a value field */

/*
 * An AnyValue as the mapping sees it. Strings are their C-string view
 * (up to the first NUL byte, as protobuf-c hands them out), not yet cut.
 * Arrays and kvlists exist only as protobuf-c structs (msg).
 */
typedef struct otlp_val {
    int kind; /* AV(...) value case, AV(_NOT_SET) for an empty AnyValue, or OTLP_VAL_ABSENT */
    union {
        str_t str;                 /* STRING_VALUE */
        int64_t i;                 /* INT_VALUE */
        double d;                  /* DOUBLE_VALUE */
        int b;                     /* BOOL_VALUE */
        ProtobufCBinaryData bytes; /* BYTES_VALUE */
        const any_value_t *msg;    /* ARRAY_VALUE, KVLIST_VALUE */
    } u;
} otlp_val_t;

/* A KeyValue: key as its C-string view. */
typedef struct otlp_kv {
    str_t key;
    otlp_val_t val;
} otlp_kv_t;

/* Render v as tag text (see otlp.h); -1 only when the arena is full. */
int otlp_render_val(dctx_t *c, const otlp_val_t *v, str_t *out);

/* 1 for bool false and the string "false": an "error" attribute that says no error. */
static inline int otlp_val_is_false(const otlp_val_t *v)
{
    if (v->kind == AV(BOOL_VALUE))
        return !v->u.b;
    return v->kind == AV(STRING_VALUE) && v->u.str.len == 5 && memcmp(v->u.str.ptr, "false", 5) == 0;
}

/* ---- keys the mapping looks at ---- */

enum peer_key {
    PK_PEER_SERVICE,
    PK_SERVER_ADDRESS,
    PK_NET_PEER_NAME,
    PK_NETWORK_PEER_ADDRESS,
    PK_SERVER_SOCKET_DOMAIN,
    PK_SERVER_SOCKET_ADDRESS,
    PK_NET_SOCK_PEER_NAME,
    PK_NET_SOCK_PEER_ADDR,
    PK_PEER_HOSTNAME,
    PK_PEER_ADDRESS,
    PK_DB_NAME,
    PK_NET_PEER_IP,
    PK_NETWORK_PEER_PORT,
    PK_SERVER_SOCKET_PORT,
    PK_NET_SOCK_PEER_PORT,
    PK_NET_PEER_PORT,
    PK_SERVER_PORT,
    PK_ERROR,
    PK_COUNT,
    PK_NONE = -1,
};

/* Which of the keys above k[0..len) is (a switch on length, then compares), or PK_NONE. */
int otlp_peer_key_match(const char *k, uint32_t len);

/* The same, with the lengths and first letters of those keys checked inline first. */
static inline int otlp_peer_key(const char *k, uint32_t len)
{
    const uint32_t lens =
        1u << 5 | 1u << 7 | 1u << 11 | 1u << 12 | 1u << 13 | 1u << 14 | 1u << 17 | 1u << 18 | 1u << 20 | 1u << 21;
    if (len > 21 || !((lens >> len) & 1))
        return PK_NONE;
    char c0 = k[0];
    if (c0 != 'n' && c0 != 's' && c0 != 'p' && c0 != 'e' && c0 != 'd')
        return PK_NONE;
    return otlp_peer_key_match(k, len);
}

/* The first value of each peer key among a span's attributes. */
typedef struct peer_attrs {
    uint32_t seen; /* bit k set: vals[k] is valid */
    otlp_val_t vals[PK_COUNT];
} peer_attrs_t;

/* Record v for key k unless an earlier attribute with a value had that key (PK_ERROR is not kept). */
static inline void otlp_peer_note(peer_attrs_t *pa, int k, const otlp_val_t *v)
{
    if (k == PK_ERROR || v->kind == OTLP_VAL_ABSENT || (pa->seen & (1u << k)))
        return;
    pa->seen |= 1u << k;
    pa->vals[k] = *v;
}

/* ---- spans ---- */

/* Per ResourceSpans (and ScopeSpans) state shared by its spans. */
typedef struct rctx {
    str_t service;     /* lowercased */
    span_tag_t *rtags; /* resource attributes other than service.name */
    uint32_t n_rtags;
    uint8_t *rfalse;    /* per rtag: its value says false (the "error" rule) */
    uint64_t rkey_lens; /* bit (len & 63) set for the length of each rtag key */
    span_tag_t scope_tags[4];
    uint32_t n_scope_tags;
} rctx_t;

/* Fill rc's resource part from the resource's attributes (n = 0: no resource); -1 when the arena is full. */
int otlp_resource_build(dctx_t *c, const otlp_kv_t *kvs, size_t n, rctx_t *rc);

/* Fill rc's scope part from the scope's name and version (C-string views; empty = absent); -1 when the arena is full.
 */
int otlp_scope_build(dctx_t *c, str_t name, str_t version, rctx_t *rc);

/* The fields of one OTLP span the mapping reads, as they came. */
typedef struct otlp_span_in {
    const uint8_t *trace_id, *span_id, *parent_id;
    size_t trace_id_len, span_id_len, parent_id_len;
    str_t name; /* C-string view */
    int32_t kind;
    int32_t status_code; /* 0 without a status */
    str_t status_msg;    /* C-string view; empty without a status */
    uint64_t start_ns, end_ns;
} otlp_span_in_t;

/*
 * First step of a span: the request's span limit, ids, kind, lowercased
 * name, times and local endpoint into *s (zeroed first). Returns 1 to go
 * on, 0 when the span was rejected (counted with its reason), -1 when the
 * arena is full.
 */
int otlp_span_begin(dctx_t *c, const rctx_t *rc, const otlp_span_in_t *in, span_t *s);

/*
 * After a span's own tags (tags[0..*n_tags), repaired, "error" ones
 * already dropped per the rule): append the resource tags it does not
 * override, the scope tags, span.kind and the status tags, and update
 * *n_tags. tags must have room for rc->n_rtags + rc->n_scope_tags + 4
 * more. 0, or -1 when the arena is full.
 */
int otlp_span_finish_tags(dctx_t *c, const rctx_t *rc, const otlp_span_in_t *in, span_tag_t *tags, uint32_t *n_tags);

/* The remote endpoint of s (its kind set) from the peer attributes; -1 when the arena is full. */
int otlp_remote_endpoint(dctx_t *c, const peer_attrs_t *pa, span_t *s);

/*
 * The struct path for parts otlp_direct hands over: resource and scope
 * decoded by otlp_wire_decode_part, and a whole span, mapped into
 * c->batch[c->n_batch] (0 also when rejected, -1 fatal).
 */
int otlp_resource_prepare(dctx_t *c, const resource_t *r, rctx_t *rc);
int otlp_scope_prepare(dctx_t *c, const scope_t *sc, rctx_t *rc);
int otlp_map_span_batch(dctx_t *c, const rctx_t *rc, const pspan_t *ps);

/*
 * otlp_direct.c: decode data/len straight into c->batch / c->n_batch
 * (c initialised for traces without a sink). Returns 0, -1 (res->error
 * set) or OTLP_DECLINED. stats may be NULL.
 */
int otlp_direct_decode(dctx_t *c, const uint8_t *data, size_t len, otlp_direct_stats_t *stats);

/* ---- logs ---- */

/* The fields of one LogRecord the mapping reads, as they came (strings: C-string views, not yet cut). */
typedef struct otlp_log_in {
    const uint8_t *trace_id, *span_id;
    size_t trace_id_len, span_id_len;
    uint64_t time_ns, observed_ns;
    int32_t severity_number;
    uint32_t flags;
    str_t severity_text, event_name;
} otlp_log_in_t;

/* Why a log record is rejected; otlp_log_reject counts it with its reason and returns 0. */
enum otlp_log_rejection { OTLP_LOG_TOO_MANY, OTLP_LOG_BAD_TRACE_ID, OTLP_LOG_BAD_SPAN_ID };
int otlp_log_reject(dctx_t *c, enum otlp_log_rejection why);

/*
 * First step of a log record: the request's record limit, the ids, the
 * plain fields, service and scope (as given) into *o; the body and
 * attributes are left to the caller (empty). Returns 1 to go on, 0 when
 * the record was rejected (counted with its reason). Inline: both paths
 * run it for every record.
 */
static inline int otlp_log_begin(dctx_t *c, const otlp_log_in_t *in, str_t service, str_t scope, otlp_log_t *o)
{
    if (c->res->accepted + c->res->rejected >= c->lim.max_items)
        return otlp_log_reject(c, OTLP_LOG_TOO_MANY);
    if (in->trace_id_len != 0 && (in->trace_id_len != 16 || in->trace_id == NULL))
        return otlp_log_reject(c, OTLP_LOG_BAD_TRACE_ID);
    if (in->span_id_len != 0 && (in->span_id_len != 8 || in->span_id == NULL))
        return otlp_log_reject(c, OTLP_LOG_BAD_SPAN_ID);
    o->time_unix_nano = in->time_ns;
    o->observed_time_unix_nano = in->observed_ns;
    o->severity_number = (uint32_t)in->severity_number <= 24 ? (uint32_t)in->severity_number : 0;
    o->severity_text = otlp_str(c, in->severity_text.ptr, in->severity_text.len);
    o->body = (str_t){"", 0};
    o->event_name = otlp_str(c, in->event_name.ptr, in->event_name.len);
    o->trace_id_high = in->trace_id_len == 16 ? __builtin_bswap64(otlp_pb_ld64(in->trace_id)) : 0;
    o->trace_id_low = in->trace_id_len == 16 ? __builtin_bswap64(otlp_pb_ld64(in->trace_id + 8)) : 0;
    o->span_id = in->span_id_len == 8 ? __builtin_bswap64(otlp_pb_ld64(in->span_id)) : 0;
    o->flags = in->flags;
    o->service_name = service;
    o->scope_name = scope;
    o->n_attributes = 0;
    o->attributes = NULL;
    return 1;
}

/*
 * Whether a resource attribute (key: its C-string view, uncut) gives the
 * service of the resource's log records: key service.name with a non-empty
 * string value. The first such attribute does.
 */
static inline int otlp_log_service_kv(str_t key, const otlp_val_t *v)
{
    return key.len == 12 && memcmp(key.ptr, "service.name", 12) == 0 && v->kind == AV(STRING_VALUE) && v->u.str.len > 0;
}

/*
 * The struct path for what otlp_direct_logs hands over. otlp_logs_unpack:
 * the message data/len (a Resource, an InstrumentationScope or a
 * LogRecord of a request), unpacked by protobuf-c on its own after the
 * same depth check as in a whole request; returns 0 with *out, or
 * OTLP_WIRE_INVALID / OTLP_WIRE_NOMEM (res->error set either way). Nothing
 * in *out points into data. Then otlp_log_service (r may be NULL: "") and
 * otlp_log_scope (sc may be NULL: "") give what the records of a resource
 * or scope take, and otlp_log_map maps a record into *o: 1 accepted, 0
 * rejected (counted), -1 when the arena is full.
 */
enum otlp_logs_part { OTLP_LOGS_PART_RESOURCE, OTLP_LOGS_PART_SCOPE, OTLP_LOGS_PART_RECORD };
int otlp_logs_unpack(dctx_t *c, enum otlp_logs_part part, const uint8_t *data, size_t len, void **out);
str_t otlp_log_service(const dctx_t *c, const resource_t *r);
str_t otlp_log_scope(const dctx_t *c, const scope_t *sc);
int otlp_log_map(dctx_t *c, const plog_t *l, str_t service, str_t scope, otlp_log_t *o);

/*
 * otlp_direct_logs.c: decode data/len straight into c->logs /
 * c->logs_rejected / c->n_logs (c initialised without a sink). Returns 0,
 * -1 (res->error set) or OTLP_DECLINED. stats may be NULL.
 */
int otlp_direct_logs_decode(dctx_t *c, const uint8_t *data, size_t len, otlp_logs_direct_stats_t *stats);

#endif
