/*
 * span: helpers for ids and kinds; see span.h.
 */
#include "span.h"

#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "log.h"

static const char *const kind_names[] = {NULL, "CLIENT", "SERVER", "PRODUCER", "CONSUMER"};

const char *span_kind_name(enum span_kind kind)
{
    if ((unsigned)kind > SPAN_KIND_CONSUMER)
        return NULL;
    return kind_names[kind];
}

int span_kind_parse(const char *s, size_t len)
{
    for (int k = SPAN_KIND_CLIENT; k <= SPAN_KIND_CONSUMER; k++)
        if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0)
            return k;
    return -1;
}

int span_parse_id(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 16 || hex_parse_u64(s, len, HEX_ANY_CASE, out) != 0 || *out == 0)
        return -1;
    return 0;
}

int span_parse_trace_id(const char *s, size_t len, uint64_t *high, uint64_t *low)
{
    if (len == 0 || len > 32)
        return -1;
    size_t lo_len = len > 16 ? 16 : len;
    *high = 0;
    if (len > 16 && hex_parse_u64(s, len - 16, HEX_ANY_CASE, high) != 0)
        return -1;
    if (hex_parse_u64(s + len - lo_len, lo_len, HEX_ANY_CASE, low) != 0)
        return -1;
    if (*high == 0 && *low == 0)
        return -1;
    return 0;
}

void span_format_id(uint64_t id, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[id & 15];
        id >>= 4;
    }
    out[16] = '\0';
}

size_t span_format_trace_id(uint64_t high, uint64_t low, char out[33])
{
    if (high == 0) {
        span_format_id(low, out);
        return 16;
    }
    span_format_id(high, out);
    span_format_id(low, out + 16);
    return 32;
}

uint64_t span_id_from_bytes(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

void span_id_to_bytes(uint64_t id, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(id & 0xff);
        id >>= 8;
    }
}

int span_vec_sink(void *ctx, const span_t *span)
{
    span_vec_t *v = ctx;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        span_t *items = realloc(v->items, cap * sizeof(*items));
        if (items == NULL)
            log_fatal("out of memory growing a span array to %zu", cap);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = *span;
    return 0;
}

int span_count_sink(void *ctx, const span_t *span)
{
    (void)span;
    (*(size_t *)ctx)++;
    return 0;
}

void span_vec_dispose(span_vec_t *v)
{
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

int str_equal(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int str_compare(str_t a, str_t b)
{
    uint32_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

static int endpoint_equal(const span_endpoint_t *a, const span_endpoint_t *b)
{
    return str_equal(a->service_name, b->service_name) && memcmp(a->ipv4, b->ipv4, 4) == 0 &&
           memcmp(a->ipv6, b->ipv6, 16) == 0 && a->port == b->port && a->has_ipv4 == b->has_ipv4 &&
           a->has_ipv6 == b->has_ipv6;
}

int span_equal(const span_t *a, const span_t *b)
{
    if (a->trace_id_high != b->trace_id_high || a->trace_id_low != b->trace_id_low || a->parent_id != b->parent_id ||
        a->id != b->id || a->kind != b->kind || !str_equal(a->name, b->name) || a->timestamp_us != b->timestamp_us ||
        a->duration_us != b->duration_us || a->has_local != b->has_local || a->has_remote != b->has_remote ||
        a->debug != b->debug || a->shared != b->shared || !endpoint_equal(&a->local, &b->local) ||
        !endpoint_equal(&a->remote, &b->remote) || a->n_tags != b->n_tags || a->n_annotations != b->n_annotations)
        return 0;
    for (uint32_t i = 0; i < a->n_tags; i++)
        if (!str_equal(a->tags[i].key, b->tags[i].key) || !str_equal(a->tags[i].value, b->tags[i].value))
            return 0;
    for (uint32_t i = 0; i < a->n_annotations; i++)
        if (a->annotations[i].timestamp_us != b->annotations[i].timestamp_us ||
            !str_equal(a->annotations[i].value, b->annotations[i].value))
            return 0;
    return 1;
}
