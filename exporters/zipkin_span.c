/*
 * zipkin_span: Zipkin's span normalisation rules and request limits; see
 * zipkin_span.h.
 */
#include "zipkin_span.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"

void zipkin_span_limits(const zipkin_limits_t *in, zipkin_limits_t *out)
{
    if (in != NULL)
        *out = *in;
    else
        memset(out, 0, sizeof(*out));
    if (out->max_spans == 0)
        out->max_spans = ZIPKIN_DEFAULT_MAX_SPANS;
    if (out->max_tags == 0)
        out->max_tags = ZIPKIN_DEFAULT_MAX_TAGS;
    if (out->max_tag_key_len == 0)
        out->max_tag_key_len = ZIPKIN_DEFAULT_MAX_TAG_KEY_LEN;
    if (out->max_tag_value_len == 0)
        out->max_tag_value_len = ZIPKIN_DEFAULT_MAX_TAG_VALUE_LEN;
    if (out->max_annotations == 0)
        out->max_annotations = ZIPKIN_DEFAULT_MAX_ANNOTATIONS;
    if (out->max_depth == 0)
        out->max_depth = ZIPKIN_DEFAULT_MAX_DEPTH;
    if (out->max_depth > ZIPKIN_MAX_DEPTH_CAP)
        out->max_depth = ZIPKIN_MAX_DEPTH_CAP;
}

void zipkin_span_result_init(zipkin_result_t *res)
{
    res->accepted = 0;
    res->rejected = 0;
    res->error[0] = '\0';
}

int zipkin_span_fail(zipkin_result_t *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
    return -1;
}

/* Strict dotted quad as inet_pton(AF_INET) takes it: four decimal octets, no leading zeros. */
static int ipv4_text(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    if (len < 7 || len > 15)
        return -1;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return -1;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
            return -1;
        out[part] = (uint8_t)v;
    }
    return i == len ? 0 : -1;
}

int zipkin_span_ip_text(span_endpoint_t *ep, const char *s, size_t len)
{
    int has_colon = 0, has_dot = 0;
    size_t last_colon = 0;
    if (len == 0 || len > 45)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            has_dot = 1;
        } else if (s[i] == ':') {
            if (has_dot)
                return -1; /* colons must not follow dots */
            has_colon = 1;
            last_colon = i;
        } else if (hex_digit(s[i], HEX_ANY_CASE) < 0) {
            return -1;
        }
    }
    if (has_colon && has_dot) {
        /* only ::a.b.c.d and ::ffff:a.b.c.d (or ::0000:) are taken, as IPv4 */
        if (len < 2 || s[0] != ':' || s[1] != ':')
            return -1;
        if (last_colon != 1) {
            if (last_colon != 6)
                return -1;
            for (size_t i = 2; i < 6; i++)
                if (s[i] != 'f' && s[i] != 'F' && s[i] != '0')
                    return -1;
        }
        uint8_t b[4];
        if (ipv4_text(s + last_colon + 1, len - last_colon - 1, b) != 0)
            return -1;
        memcpy(ep->ipv4, b, 4);
        ep->has_ipv4 = 1;
        return 0;
    }
    if (has_colon) {
        char tmp[46];
        uint8_t b[16];
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        if (inet_pton(AF_INET6, tmp, b) != 1)
            return -1;
        memcpy(ep->ipv6, b, 16);
        ep->has_ipv6 = 1;
        return 0;
    }
    if (has_dot) {
        uint8_t b[4];
        if (ipv4_text(s, len, b) != 0)
            return -1;
        memcpy(ep->ipv4, b, 4);
        ep->has_ipv4 = 1;
        return 0;
    }
    return -1;
}

int zipkin_span_ip_bytes(span_endpoint_t *ep, const uint8_t *b, size_t len)
{
    if (len == 4) {
        memcpy(ep->ipv4, b, 4);
        ep->has_ipv4 = 1;
        return 0;
    }
    if (len != 16)
        return -1;
    /* IPv4-compatible (80 zero bits, 16 zero bits, v4), except ::1 */
    int embedded = 1;
    for (int i = 0; i < 12; i++)
        if (b[i] != 0)
            embedded = 0;
    if (embedded && b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] == 1)
        embedded = 0;
    if (embedded) {
        memcpy(ep->ipv4, b + 12, 4);
        ep->has_ipv4 = 1;
    } else {
        memcpy(ep->ipv6, b, 16);
        ep->has_ipv6 = 1;
    }
    return 0;
}

static size_t put_dec(char *p, unsigned v)
{
    if (v >= 100) {
        p[0] = (char)('0' + v / 100);
        p[1] = (char)('0' + v / 10 % 10);
        p[2] = (char)('0' + v % 10);
        return 3;
    }
    if (v >= 10) {
        p[0] = (char)('0' + v / 10);
        p[1] = (char)('0' + v % 10);
        return 2;
    }
    p[0] = (char)('0' + v);
    return 1;
}

size_t zipkin_span_format_ipv4(const uint8_t ip[4], char out[16])
{
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        if (i)
            out[n++] = '.';
        n += put_dec(out + n, ip[i]);
    }
    out[n] = '\0';
    return n;
}

size_t zipkin_span_format_ipv6(const uint8_t ip[16], char out[40])
{
    static const char hex[] = "0123456789abcdef";
    unsigned g[8];
    int best = -1, best_len = -1, run = -1, all_zero = 1;
    for (int i = 0; i < 8; i++) {
        g[i] = (unsigned)ip[2 * i] << 8 | ip[2 * i + 1];
        if (g[i] == 0) {
            if (run < 0)
                run = i;
            continue;
        }
        all_zero = 0;
        if (run >= 0) {
            if (i - run > best_len) {
                best = run;
                best_len = i - run;
            }
            run = -1;
        }
    }
    size_t n = 0;
    if (all_zero) {
        memcpy(out, "::", 3);
        return 2;
    }
    /* as Zipkin's writeIpV6: a trailing run is compressed only if no other run was */
    if (best == -1 && run != -1) {
        best = run;
        best_len = 8 - run;
    }
    int i = 0;
    while (i < 8) {
        if (i == best) {
            out[n++] = ':';
            i += best_len;
            if (i == 8)
                out[n++] = ':';
            continue;
        }
        if (i != 0)
            out[n++] = ':';
        unsigned v = g[i++];
        int started = 0;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned d = (v >> shift) & 15;
            if (d || started || shift == 0) {
                out[n++] = hex[d];
                started = 1;
            }
        }
    }
    out[n] = '\0';
    return n;
}

static int str_cmp(str_t a, str_t b)
{
    uint32_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int ann_cmp(const span_annotation_t *a, const span_annotation_t *b)
{
    if (a->timestamp_us != b->timestamp_us)
        return a->timestamp_us < b->timestamp_us ? -1 : 1;
    return str_cmp(a->value, b->value);
}

/* Stable insertion sort by key, then keep the last of equal keys. Counts are bounded by limits. */
static uint32_t tags_sort_dedupe(span_tag_t *t, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        span_tag_t x = t[i];
        uint32_t j = i;
        while (j > 0 && str_cmp(t[j - 1].key, x.key) > 0) {
            t[j] = t[j - 1];
            j--;
        }
        t[j] = x;
    }
    uint32_t out = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + 1 < n && str_cmp(t[i].key, t[i + 1].key) == 0)
            continue;
        t[out++] = t[i];
    }
    return out;
}

static uint32_t anns_sort_dedupe(span_annotation_t *a, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        span_annotation_t x = a[i];
        uint32_t j = i;
        while (j > 0 && ann_cmp(&a[j - 1], &x) > 0) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
    uint32_t out = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (out > 0 && ann_cmp(&a[out - 1], &a[i]) == 0)
            continue;
        a[out++] = a[i];
    }
    return out;
}

static int endpoint_empty(const span_endpoint_t *e)
{
    return e->service_name.len == 0 && !e->has_ipv4 && !e->has_ipv6 && e->port == 0;
}

int zipkin_span_finish(span_t *s, span_tag_t *tags, uint32_t n_tags, span_annotation_t *anns, uint32_t n_anns,
                       arena_t *arena)
{
    if (s->parent_id == s->id)
        s->parent_id = 0;
    if (s->shared && s->kind == SPAN_KIND_CLIENT)
        s->shared = 0;
    if (s->has_local && endpoint_empty(&s->local))
        s->has_local = 0;
    if (s->has_remote && endpoint_empty(&s->remote))
        s->has_remote = 0;
    s->n_tags = 0;
    s->tags = NULL;
    s->n_annotations = 0;
    s->annotations = NULL;
    if (n_tags > 0) {
        n_tags = tags_sort_dedupe(tags, n_tags);
        span_tag_t *t = arena_alloc(arena, n_tags * sizeof(*t));
        if (t == NULL)
            return -1;
        memcpy(t, tags, n_tags * sizeof(*t));
        s->tags = t;
        s->n_tags = n_tags;
    }
    if (n_anns > 0) {
        n_anns = anns_sort_dedupe(anns, n_anns);
        span_annotation_t *a = arena_alloc(arena, n_anns * sizeof(*a));
        if (a == NULL)
            return -1;
        memcpy(a, anns, n_anns * sizeof(*a));
        s->annotations = a;
        s->n_annotations = n_anns;
    }
    return 0;
}
