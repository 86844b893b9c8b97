/*
 * zipkin_proto: Zipkin proto3 ListOfSpans decoding (protobuf-c into the
 * request arena) and encoding (by hand); see zipkin_proto.h.
 */
#include "varint.h"
#include "zipkin_proto.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "zipkin/zipkin.pb-c.h"

#define LIST_PREFIX "Malformed reading List<Span> from proto3: "
#define TOO_LARGE "Request too large: span data exceeds the request memory limit"

typedef struct arena_alloc_ctx {
    arena_t *arena;
    int limit_hit;
} arena_alloc_ctx_t;

static void *pb_alloc(void *data, size_t size)
{
    arena_alloc_ctx_t *a = data;
    void *p = arena_alloc(a->arena, size);
    if (p == NULL)
        a->limit_hit = 1;
    return p;
}

static void pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr; /* the arena frees everything at once */
}

/* ---- top-level scan ---- */

/* Count the spans (field 1) of a ListOfSpans without allocating; -1 when truncated or malformed. */
static int count_spans(const uint8_t *p, size_t len, uint64_t *count)
{
    size_t pos = 0;
    *count = 0;
    while (pos < len) {
        uint64_t key, v;
        if (varint_read(p, len, &pos, &key) != 0)
            return -1;
        switch (key & 7) {
        case 0:
            if (varint_read(p, len, &pos, &v) != 0)
                return -1;
            break;
        case 1:
            if (len - pos < 8)
                return -1;
            pos += 8;
            break;
        case 2:
            if (varint_read(p, len, &pos, &v) != 0 || v > len - pos)
                return -1;
            pos += (size_t)v;
            if ((key >> 3) == 1)
                (*count)++;
            break;
        case 5:
            if (len - pos < 4)
                return -1;
            pos += 4;
            break;
        default: return -1;
        }
    }
    return 0;
}

/* ---- decoding ---- */

static uint64_t be_bytes(const uint8_t *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | b[i];
    return v;
}

/* s (NULL: empty) into *out, lowercased (utf8_lower) for a name, else repaired (utf8_repair); -1: arena full. */
static int text(arena_t *arena, const char *s, int name, str_t *out)
{
    *out = s == NULL ? (str_t){"", 0} : (str_t){s, (uint32_t)strlen(s)};
    return name ? utf8_lower(arena, out, 0) : utf8_repair(arena, out, 0);
}

static int convert_endpoint(const Zipkin__Proto3__Endpoint *in, span_endpoint_t *ep, uint32_t idx, arena_t *arena,
                            zipkin_result_t *res)
{
    memset(ep, 0, sizeof(*ep));
    if (in == NULL)
        return 0;
    if (text(arena, in->service_name, 1, &ep->service_name) != 0)
        return zipkin_span_fail(res, TOO_LARGE);
    if (in->ipv4.len > 0)
        (void)zipkin_span_ip_bytes(ep, in->ipv4.data, in->ipv4.len);
    if (in->ipv6.len > 0)
        (void)zipkin_span_ip_bytes(ep, in->ipv6.data, in->ipv6.len);
    if (in->port > 0xffff)
        return zipkin_span_fail(res, LIST_PREFIX "spans[%u]: invalid port %d", idx, (int)in->port);
    ep->port = in->port < 0 ? 0 : (uint16_t)in->port;
    return 1;
}

typedef struct scratch {
    span_tag_t *tags;
    span_annotation_t *anns;
} scratch_t;

/* 1: span ready; 0: dropped by a per-span limit; -1: the request fails. */
static int convert_span(const Zipkin__Proto3__Span *in, uint32_t idx, const zipkin_limits_t *lim, arena_t *arena,
                        scratch_t *sc, span_t *s, zipkin_result_t *res)
{
    memset(s, 0, sizeof(*s));
    if (in->trace_id.len == 0 || in->id.len == 0)
        return zipkin_span_fail(res, LIST_PREFIX "spans[%u]: Missing :%s%s", idx, in->trace_id.len ? "" : " traceId",
                                in->id.len ? "" : " id");
    if (in->trace_id.len > 16)
        return zipkin_span_fail(res, LIST_PREFIX "spans[%u]: traceId longer than 16 bytes", idx);
    if (in->id.len > 8)
        return zipkin_span_fail(res, LIST_PREFIX "spans[%u]: id longer than 8 bytes", idx);
    if (in->parent_id.len > 8)
        return zipkin_span_fail(res, LIST_PREFIX "spans[%u]: parentId longer than 8 bytes", idx);
    size_t tl = in->trace_id.len;
    s->trace_id_high = tl > 8 ? be_bytes(in->trace_id.data, tl - 8) : 0;
    s->trace_id_low = be_bytes(in->trace_id.data + (tl > 8 ? tl - 8 : 0), tl > 8 ? 8 : tl);
    if (s->trace_id_high == 0 && s->trace_id_low == 0)
        return zipkin_span_fail(res, LIST_PREFIX "spans[%u]: traceId is all zeros", idx);
    s->id = be_bytes(in->id.data, in->id.len);
    if (s->id == 0)
        return zipkin_span_fail(res, LIST_PREFIX "spans[%u]: id is all zeros", idx);
    s->parent_id = be_bytes(in->parent_id.data, in->parent_id.len);
    if ((int)in->kind >= SPAN_KIND_CLIENT && (int)in->kind <= SPAN_KIND_CONSUMER)
        s->kind = (enum span_kind)in->kind;
    if (text(arena, in->name, 1, &s->name) != 0)
        return zipkin_span_fail(res, TOO_LARGE);
    /* Zipkin reads these as signed longs: negative means absent */
    s->timestamp_us = in->timestamp > (uint64_t)INT64_MAX ? 0 : in->timestamp;
    s->duration_us = in->duration > (uint64_t)INT64_MAX ? 0 : in->duration;
    int r = convert_endpoint(in->local_endpoint, &s->local, idx, arena, res);
    if (r < 0)
        return -1;
    s->has_local = (uint8_t)r;
    r = convert_endpoint(in->remote_endpoint, &s->remote, idx, arena, res);
    if (r < 0)
        return -1;
    s->has_remote = (uint8_t)r;
    s->debug = in->debug ? 1 : 0;
    s->shared = in->shared ? 1 : 0;

    int reject = 0;
    if (in->n_tags > lim->max_tags) {
        reject = 1;
        if (res->error[0] == '\0')
            zipkin_span_fail(res, "span spans[%u] rejected: more than %u tags", idx, lim->max_tags);
    }
    if (in->n_annotations > lim->max_annotations) {
        reject = 1;
        if (res->error[0] == '\0')
            zipkin_span_fail(res, "span spans[%u] rejected: more than %u annotations", idx, lim->max_annotations);
    }
    uint32_t nt = 0, na = 0;
    for (size_t i = 0; !reject && i < in->n_tags; i++) {
        const Zipkin__Proto3__Span__TagsEntry *e = in->tags[i];
        str_t k, v;
        if (text(arena, e->key, 0, &k) != 0 || text(arena, e->value, 0, &v) != 0)
            return zipkin_span_fail(res, TOO_LARGE);
        if (k.len == 0)
            continue; /* Zipkin drops a tag without a key */
        if (k.len > lim->max_tag_key_len || v.len > lim->max_tag_value_len) {
            reject = 1;
            if (res->error[0] == '\0')
                zipkin_span_fail(res, "span spans[%u] rejected: tag key or value too long", idx);
            break;
        }
        sc->tags[nt++] = (span_tag_t){k, v};
    }
    for (size_t i = 0; !reject && i < in->n_annotations; i++) {
        const Zipkin__Proto3__Annotation *a = in->annotations[i];
        str_t v;
        if (text(arena, a->value, 0, &v) != 0)
            return zipkin_span_fail(res, TOO_LARGE);
        /* Zipkin drops incomplete annotations; a timestamp past INT64_MAX is negative there */
        if (a->timestamp == 0 || a->timestamp > (uint64_t)INT64_MAX || v.len == 0)
            continue;
        sc->anns[na++] = (span_annotation_t){a->timestamp, v};
    }
    if (reject) {
        res->rejected++;
        return 0;
    }
    if (zipkin_span_finish(s, sc->tags, nt, sc->anns, na, arena) != 0)
        return zipkin_span_fail(res, TOO_LARGE);
    return 1;
}

int zipkin_proto_decode(const uint8_t *data, size_t len, arena_t *arena, const zipkin_limits_t *lim_in,
                        span_sink_fn sink, void *ctx, zipkin_result_t *res)
{
    zipkin_limits_t lim;
    zipkin_span_limits(lim_in, &lim);
    zipkin_span_result_init(res);

    uint64_t count;
    if (count_spans(data, len, &count) != 0)
        return zipkin_span_fail(res, LIST_PREFIX "truncated or invalid protobuf");
    if (count > lim.max_spans)
        return zipkin_span_fail(res, LIST_PREFIX "more than %u spans in one request", lim.max_spans);
    if (count == 0)
        return 0;

    arena_alloc_ctx_t actx = {arena, 0};
    ProtobufCAllocator allocator = {pb_alloc, pb_free, &actx};
    Zipkin__Proto3__ListOfSpans *list = zipkin__proto3__list_of_spans__unpack(&allocator, len, data);
    if (list == NULL) {
        if (actx.limit_hit)
            return zipkin_span_fail(res, TOO_LARGE);
        return zipkin_span_fail(res, LIST_PREFIX "invalid protobuf");
    }

    size_t max_tags = 0, max_anns = 0;
    for (size_t i = 0; i < list->n_spans; i++) {
        if (list->spans[i]->n_tags > max_tags)
            max_tags = list->spans[i]->n_tags;
        if (list->spans[i]->n_annotations > max_anns)
            max_anns = list->spans[i]->n_annotations;
    }
    if (max_tags > lim.max_tags)
        max_tags = lim.max_tags;
    if (max_anns > lim.max_annotations)
        max_anns = lim.max_annotations;
    scratch_t sc = {malloc((max_tags ? max_tags : 1) * sizeof(span_tag_t)),
                    malloc((max_anns ? max_anns : 1) * sizeof(span_annotation_t))};
    int rc = -1;
    if (sc.tags == NULL || sc.anns == NULL) {
        zipkin_span_fail(res, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < list->n_spans; i++) {
        span_t s;
        int r = convert_span(list->spans[i], (uint32_t)i, &lim, arena, &sc, &s, res);
        if (r < 0)
            goto out;
        if (r == 0)
            continue;
        char saved = res->error[0];
        res->error[0] = '\0';
        if (sink(ctx, &s) != 0) {
            if (res->error[0] == '\0')
                zipkin_span_fail(res, "span spans[%zu] refused by the span sink", i);
            goto out;
        }
        res->error[0] = saved;
        res->accepted++;
    }
    rc = 0;
out:
    if (rc != 0)
        res->accepted = 0;
    free(sc.tags);
    free(sc.anns);
    return rc;
}

/* ---- encoding ---- */

static size_t ld_size(size_t n)
{
    return 1 + varint_size(n) + n;
}

static int endpoint_present(const span_endpoint_t *e)
{
    return e->service_name.len > 0 || e->has_ipv4 || e->has_ipv6 || e->port != 0;
}

static size_t endpoint_size(const span_endpoint_t *e)
{
    size_t n = 0;
    if (e->service_name.len)
        n += ld_size(e->service_name.len);
    if (e->has_ipv4)
        n += ld_size(4);
    if (e->has_ipv6)
        n += ld_size(16);
    if (e->port)
        n += 1 + varint_size(e->port);
    return n;
}

static size_t annotation_size(const span_annotation_t *a)
{
    return (a->timestamp_us ? 9 : 0) + (a->value.len ? ld_size(a->value.len) : 0);
}

static size_t tag_size(const span_tag_t *t)
{
    return (t->key.len ? ld_size(t->key.len) : 0) + (t->value.len ? ld_size(t->value.len) : 0);
}

static size_t span_size(const span_t *s)
{
    size_t n = ld_size(s->trace_id_high ? 16 : 8) + ld_size(8);
    if (s->parent_id && s->parent_id != s->id)
        n += ld_size(8);
    if (span_kind_name(s->kind) != NULL)
        n += 2;
    if (s->name.len)
        n += ld_size(s->name.len);
    if (s->timestamp_us)
        n += 9;
    if (s->duration_us)
        n += 1 + varint_size(s->duration_us);
    if (s->has_local && endpoint_present(&s->local))
        n += ld_size(endpoint_size(&s->local));
    if (s->has_remote && endpoint_present(&s->remote))
        n += ld_size(endpoint_size(&s->remote));
    for (uint32_t i = 0; i < s->n_annotations; i++) {
        size_t a = annotation_size(&s->annotations[i]);
        if (a)
            n += ld_size(a);
    }
    for (uint32_t i = 0; i < s->n_tags; i++) {
        size_t t = tag_size(&s->tags[i]);
        if (t)
            n += ld_size(t);
    }
    if (s->debug)
        n += 2;
    if (s->shared)
        n += 2;
    return n;
}

typedef struct wr {
    uint8_t *p;
} wr_t;

static void w_byte(wr_t *w, uint8_t b)
{
    *w->p++ = b;
}

static void w_varint(wr_t *w, uint64_t v)
{
    w->p = varint_write(w->p, v);
}

static void w_bytes(wr_t *w, uint8_t key, const void *data, size_t n)
{
    w_byte(w, key);
    w_varint(w, n);
    if (n)
        memcpy(w->p, data, n);
    w->p += n;
}

static void w_fixed64(wr_t *w, uint8_t key, uint64_t v)
{
    w_byte(w, key);
    for (int i = 0; i < 8; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

static void w_id(wr_t *w, uint8_t key, uint64_t id)
{
    uint8_t b[8];
    span_id_to_bytes(id, b);
    w_bytes(w, key, b, 8);
}

static void w_endpoint(wr_t *w, uint8_t key, const span_endpoint_t *e)
{
    w_byte(w, key);
    w_varint(w, endpoint_size(e));
    if (e->service_name.len)
        w_bytes(w, 0x0a, e->service_name.ptr, e->service_name.len);
    if (e->has_ipv4)
        w_bytes(w, 0x12, e->ipv4, 4);
    if (e->has_ipv6)
        w_bytes(w, 0x1a, e->ipv6, 16);
    if (e->port) {
        w_byte(w, 0x20);
        w_varint(w, e->port);
    }
}

static void w_span(wr_t *w, const span_t *s)
{
    if (s->trace_id_high) {
        uint8_t b[16];
        span_id_to_bytes(s->trace_id_high, b);
        span_id_to_bytes(s->trace_id_low, b + 8);
        w_bytes(w, 0x0a, b, 16);
    } else {
        w_id(w, 0x0a, s->trace_id_low);
    }
    if (s->parent_id && s->parent_id != s->id)
        w_id(w, 0x12, s->parent_id);
    w_id(w, 0x1a, s->id);
    if (span_kind_name(s->kind) != NULL) {
        w_byte(w, 0x20);
        w_byte(w, (uint8_t)s->kind);
    }
    if (s->name.len)
        w_bytes(w, 0x2a, s->name.ptr, s->name.len);
    if (s->timestamp_us)
        w_fixed64(w, 0x31, s->timestamp_us);
    if (s->duration_us) {
        w_byte(w, 0x38);
        w_varint(w, s->duration_us);
    }
    if (s->has_local && endpoint_present(&s->local))
        w_endpoint(w, 0x42, &s->local);
    if (s->has_remote && endpoint_present(&s->remote))
        w_endpoint(w, 0x4a, &s->remote);
    for (uint32_t i = 0; i < s->n_annotations; i++) {
        const span_annotation_t *a = &s->annotations[i];
        size_t n = annotation_size(a);
        if (!n)
            continue;
        w_byte(w, 0x52);
        w_varint(w, n);
        if (a->timestamp_us)
            w_fixed64(w, 0x09, a->timestamp_us);
        if (a->value.len)
            w_bytes(w, 0x12, a->value.ptr, a->value.len);
    }
    for (uint32_t i = 0; i < s->n_tags; i++) {
        const span_tag_t *t = &s->tags[i];
        size_t n = tag_size(t);
        if (!n)
            continue;
        w_byte(w, 0x5a);
        w_varint(w, n);
        if (t->key.len)
            w_bytes(w, 0x0a, t->key.ptr, t->key.len);
        if (t->value.len)
            w_bytes(w, 0x12, t->value.ptr, t->value.len);
    }
    if (s->debug) {
        w_byte(w, 0x60);
        w_byte(w, 1);
    }
    if (s->shared) {
        w_byte(w, 0x68);
        w_byte(w, 1);
    }
}

void zipkin_proto_encode_spans(const span_t *spans, size_t n, buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t sz = span_size(&spans[i]);
        buf_reserve(out, ld_size(sz));
        wr_t w = {(uint8_t *)out->data + out->len};
        w_byte(&w, 0x0a);
        w_varint(&w, sz);
        w_span(&w, &spans[i]);
        out->len = (size_t)((char *)w.p - out->data);
        out->data[out->len] = '\0';
    }
}

int zipkin_sniff_proto(const uint8_t *data, size_t len)
{
    return len >= 2 && data[0] == 0x0a && data[1] != 0;
}
