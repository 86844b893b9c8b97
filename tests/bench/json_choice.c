/*
 * json_choice: decides between yajl (streaming) and jansson (DOM) for the
 * Zipkin v2 codecs (DESIGN.md leaves the choice to a benchmark).
 *
 * Builds one realistic 1000-span Zipkin v2 JSON array in memory (sidecar
 * spans: ids, kind, name, timestamps, both endpoints, six tags, one
 * annotation) and times, N times over:
 *   decode: yajl_parse with callbacks that extract every field into a span
 *           struct, vs jansson json_loadb + a walk that reads the same fields;
 *   encode: yajl_gen vs jansson (build the tree, json_dumps) vs a hand-rolled
 *           encoder appending into buf_t (what exporters/zipkin_json.c does).
 * Prints spans/s for each. Standalone, built by hand:
 *
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Icommon tests/bench/json_choice.c \
 *       common/buf.c common/log.c -lyajl -ljansson -o /tmp/json_choice
 *   /tmp/json_choice [iterations]
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "buf.h"

#define N_SPANS 1000
#define MAX_TAGS 8

typedef struct sl {
    const char *p;
    size_t n;
} sl_t;

typedef struct ep {
    sl_t service, ipv4;
    long port;
} ep_t;

typedef struct bspan {
    sl_t trace_id, id, parent_id, kind, name;
    long long timestamp, duration;
    ep_t local, remote;
    sl_t tag_k[MAX_TAGS], tag_v[MAX_TAGS];
    int n_tags;
    long long ann_ts;
    sl_t ann_v;
} bspan_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- input ---- */

static void build_input(buf_t *b)
{
    static const char *services[] = {"frontend", "checkout", "payments", "inventory", "users"};
    static const char *methods[] = {"GET", "POST", "PUT"};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    buf_append_char(b, '[');
    for (int i = 0; i < N_SPANS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const char *svc = services[i % 5], *peer = services[(i + 1) % 5];
        if (i)
            buf_append_char(b, ',');
        buf_printf(b,
                   "{\"traceId\":\"%016llx%016llx\",\"parentId\":\"%016llx\",\"id\":\"%016llx\","
                   "\"kind\":\"%s\",\"name\":\"%s /api/v1/%s/items\",\"timestamp\":%llu,"
                   "\"duration\":%u,",
                   (unsigned long long)(x * 3), (unsigned long long)x, (unsigned long long)(x >> 3),
                   (unsigned long long)(x * 7), i % 2 ? "CLIENT" : "SERVER", methods[i % 3], peer,
                   1700000000000000ull + (unsigned long long)i * 1000, 100u + (unsigned)(x % 50000));
        buf_printf(b,
                   "\"localEndpoint\":{\"serviceName\":\"%s\",\"ipv4\":\"10.0.%d.%d\"},"
                   "\"remoteEndpoint\":{\"serviceName\":\"%s\",\"ipv4\":\"10.0.%d.%d\",\"port\":8080},",
                   svc, i % 200, (i * 7) % 250 + 1, peer, (i + 3) % 200, (i * 11) % 250 + 1);
        buf_printf(b,
                   "\"annotations\":[{\"timestamp\":%llu,\"value\":\"wr\"}],"
                   "\"tags\":{\"http.method\":\"%s\",\"http.url\":\"http://%s:8080/api/v1/%s/items?id=%d\","
                   "\"http.status_code\":\"%d\",\"upstream_cluster\":\"outbound|8080||%s.default.svc.cluster.local\","
                   "\"response_flags\":\"-\",\"node_id\":\"sidecar~10.0.%d.%d~%s-7d9f8c6b5-x2x9k.default\"}}",
                   1700000000000000ull + (unsigned long long)i * 1000 + 50, methods[i % 3], peer, peer, i,
                   i % 17 ? 200 : 503, peer, i % 200, (i * 7) % 250 + 1, svc);
    }
    buf_append_char(b, ']');
}

/* ---- yajl streaming decode ---- */

enum ctx_kind { C_TOP, C_SPAN, C_LOCAL, C_REMOTE, C_TAGS, C_ANNS, C_ANN, C_SKIP };

typedef struct ydec {
    bspan_t *spans;
    int n;
    bspan_t cur;
    enum ctx_kind stack[32];
    int depth;
    const unsigned char *key;
    size_t key_len;
} ydec_t;

static int key_is(const ydec_t *d, const char *k)
{
    size_t n = strlen(k);
    return d->key_len == n && memcmp(d->key, k, n) == 0;
}

static int y_string(void *ctx, const unsigned char *s, size_t len)
{
    ydec_t *d = ctx;
    sl_t v = {(const char *)s, len};
    switch (d->stack[d->depth - 1]) {
    case C_SPAN:
        if (key_is(d, "traceId"))
            d->cur.trace_id = v;
        else if (key_is(d, "id"))
            d->cur.id = v;
        else if (key_is(d, "parentId"))
            d->cur.parent_id = v;
        else if (key_is(d, "kind"))
            d->cur.kind = v;
        else if (key_is(d, "name"))
            d->cur.name = v;
        break;
    case C_LOCAL:
    case C_REMOTE: {
        ep_t *e = d->stack[d->depth - 1] == C_LOCAL ? &d->cur.local : &d->cur.remote;
        if (key_is(d, "serviceName"))
            e->service = v;
        else if (key_is(d, "ipv4"))
            e->ipv4 = v;
        break;
    }
    case C_TAGS:
        if (d->cur.n_tags < MAX_TAGS) {
            d->cur.tag_k[d->cur.n_tags] = (sl_t){(const char *)d->key, d->key_len};
            d->cur.tag_v[d->cur.n_tags++] = v;
        }
        break;
    case C_ANN:
        if (key_is(d, "value"))
            d->cur.ann_v = v;
        break;
    default: break;
    }
    return 1;
}

static int y_number(void *ctx, const char *s, size_t len)
{
    ydec_t *d = ctx;
    long long v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (s[i] - '0');
    enum ctx_kind k = d->stack[d->depth - 1];
    if (k == C_SPAN && key_is(d, "timestamp"))
        d->cur.timestamp = v;
    else if (k == C_SPAN && key_is(d, "duration"))
        d->cur.duration = v;
    else if ((k == C_LOCAL || k == C_REMOTE) && key_is(d, "port"))
        (k == C_LOCAL ? &d->cur.local : &d->cur.remote)->port = (long)v;
    else if (k == C_ANN && key_is(d, "timestamp"))
        d->cur.ann_ts = v;
    return 1;
}

static int y_start_map(void *ctx)
{
    ydec_t *d = ctx;
    enum ctx_kind parent = d->stack[d->depth - 1], next = C_SKIP;
    if (parent == C_TOP) {
        memset(&d->cur, 0, sizeof(d->cur));
        next = C_SPAN;
    } else if (parent == C_SPAN) {
        if (key_is(d, "localEndpoint"))
            next = C_LOCAL;
        else if (key_is(d, "remoteEndpoint"))
            next = C_REMOTE;
        else if (key_is(d, "tags"))
            next = C_TAGS;
    } else if (parent == C_ANNS) {
        next = C_ANN;
    }
    if (d->depth >= 32)
        return 0;
    d->stack[d->depth++] = next;
    return 1;
}

static int y_map_key(void *ctx, const unsigned char *k, size_t len)
{
    ydec_t *d = ctx;
    d->key = k;
    d->key_len = len;
    return 1;
}

static int y_end_map(void *ctx)
{
    ydec_t *d = ctx;
    if (d->stack[--d->depth] == C_SPAN)
        d->spans[d->n++ % N_SPANS] = d->cur;
    return 1;
}

static int y_start_array(void *ctx)
{
    ydec_t *d = ctx;
    if (d->depth == 0) {
        d->stack[d->depth++] = C_TOP;
        return 1;
    }
    enum ctx_kind next = d->stack[d->depth - 1] == C_SPAN && key_is(d, "annotations") ? C_ANNS : C_SKIP;
    if (d->depth >= 32)
        return 0;
    d->stack[d->depth++] = next;
    return 1;
}

static int y_end_array(void *ctx)
{
    ydec_t *d = ctx;
    d->depth--;
    return 1;
}

static const yajl_callbacks ycb = {
    .yajl_number = y_number,
    .yajl_string = y_string,
    .yajl_start_map = y_start_map,
    .yajl_map_key = y_map_key,
    .yajl_end_map = y_end_map,
    .yajl_start_array = y_start_array,
    .yajl_end_array = y_end_array,
};

static int decode_yajl(const char *data, size_t len, bspan_t *out)
{
    ydec_t d = {.spans = out};
    yajl_handle h = yajl_alloc(&ycb, NULL, &d);
    if (yajl_parse(h, (const unsigned char *)data, len) != yajl_status_ok || yajl_complete_parse(h) != yajl_status_ok) {
        yajl_free(h);
        return -1;
    }
    yajl_free(h);
    return d.n;
}

/* ---- jansson DOM decode ---- */

static sl_t jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        return (sl_t){NULL, 0};
    return (sl_t){json_string_value(v), json_string_length(v)};
}

static void jep(json_t *o, ep_t *e)
{
    if (!json_is_object(o))
        return;
    e->service = jstr(o, "serviceName");
    e->ipv4 = jstr(o, "ipv4");
    e->port = (long)json_integer_value(json_object_get(o, "port"));
}

static int decode_jansson(const char *data, size_t len, bspan_t *out)
{
    json_error_t err;
    json_t *root = json_loadb(data, len, 0, &err);
    if (!json_is_array(root)) {
        json_decref(root);
        return -1;
    }
    size_t n = json_array_size(root);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(root, i);
        bspan_t *s = &out[i % N_SPANS];
        memset(s, 0, sizeof(*s));
        s->trace_id = jstr(o, "traceId");
        s->id = jstr(o, "id");
        s->parent_id = jstr(o, "parentId");
        s->kind = jstr(o, "kind");
        s->name = jstr(o, "name");
        s->timestamp = json_integer_value(json_object_get(o, "timestamp"));
        s->duration = json_integer_value(json_object_get(o, "duration"));
        jep(json_object_get(o, "localEndpoint"), &s->local);
        jep(json_object_get(o, "remoteEndpoint"), &s->remote);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(o, "tags"), k, v)
        {
            if (s->n_tags < MAX_TAGS && json_is_string(v)) {
                s->tag_k[s->n_tags] = (sl_t){k, strlen(k)};
                s->tag_v[s->n_tags++] = (sl_t){json_string_value(v), json_string_length(v)};
            }
        }
        json_t *anns = json_object_get(o, "annotations");
        if (json_array_size(anns) > 0) {
            json_t *a = json_array_get(anns, 0);
            s->ann_ts = json_integer_value(json_object_get(a, "timestamp"));
            s->ann_v = jstr(a, "value");
        }
    }
    /* a real decoder would copy the strings out before freeing the DOM */
    json_decref(root);
    return (int)n;
}

/* ---- encoders ---- */

#define YS(g, lit) yajl_gen_string(g, (const unsigned char *)(lit), sizeof(lit) - 1)
#define YSL(g, s) yajl_gen_string(g, (const unsigned char *)(s).p, (s).n)

static void yajl_ep(yajl_gen g, const ep_t *e)
{
    yajl_gen_map_open(g);
    YS(g, "serviceName");
    YSL(g, e->service);
    YS(g, "ipv4");
    YSL(g, e->ipv4);
    if (e->port) {
        YS(g, "port");
        yajl_gen_integer(g, e->port);
    }
    yajl_gen_map_close(g);
}

static size_t encode_yajl(const bspan_t *s, int n)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_array_open(g);
    for (int i = 0; i < n; i++, s++) {
        yajl_gen_map_open(g);
        YS(g, "traceId");
        YSL(g, s->trace_id);
        YS(g, "parentId");
        YSL(g, s->parent_id);
        YS(g, "id");
        YSL(g, s->id);
        YS(g, "kind");
        YSL(g, s->kind);
        YS(g, "name");
        YSL(g, s->name);
        YS(g, "timestamp");
        yajl_gen_integer(g, s->timestamp);
        YS(g, "duration");
        yajl_gen_integer(g, s->duration);
        YS(g, "localEndpoint");
        yajl_ep(g, &s->local);
        YS(g, "remoteEndpoint");
        yajl_ep(g, &s->remote);
        YS(g, "annotations");
        yajl_gen_array_open(g);
        yajl_gen_map_open(g);
        YS(g, "timestamp");
        yajl_gen_integer(g, s->ann_ts);
        YS(g, "value");
        YSL(g, s->ann_v);
        yajl_gen_map_close(g);
        yajl_gen_array_close(g);
        YS(g, "tags");
        yajl_gen_map_open(g);
        for (int t = 0; t < s->n_tags; t++) {
            YSL(g, s->tag_k[t]);
            YSL(g, s->tag_v[t]);
        }
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    const unsigned char *out;
    size_t len;
    yajl_gen_get_buf(g, &out, &len);
    yajl_gen_free(g);
    return len;
}

static json_t *jsl(sl_t s)
{
    return json_stringn_nocheck(s.p, s.n);
}

static json_t *jansson_ep(const ep_t *e)
{
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "serviceName", jsl(e->service));
    json_object_set_new_nocheck(o, "ipv4", jsl(e->ipv4));
    if (e->port)
        json_object_set_new_nocheck(o, "port", json_integer(e->port));
    return o;
}

static size_t encode_jansson(const bspan_t *s, int n)
{
    json_t *arr = json_array();
    char key[256];
    for (int i = 0; i < n; i++, s++) {
        json_t *o = json_object();
        json_object_set_new_nocheck(o, "traceId", jsl(s->trace_id));
        json_object_set_new_nocheck(o, "parentId", jsl(s->parent_id));
        json_object_set_new_nocheck(o, "id", jsl(s->id));
        json_object_set_new_nocheck(o, "kind", jsl(s->kind));
        json_object_set_new_nocheck(o, "name", jsl(s->name));
        json_object_set_new_nocheck(o, "timestamp", json_integer(s->timestamp));
        json_object_set_new_nocheck(o, "duration", json_integer(s->duration));
        json_object_set_new_nocheck(o, "localEndpoint", jansson_ep(&s->local));
        json_object_set_new_nocheck(o, "remoteEndpoint", jansson_ep(&s->remote));
        json_t *a = json_object();
        json_object_set_new_nocheck(a, "timestamp", json_integer(s->ann_ts));
        json_object_set_new_nocheck(a, "value", jsl(s->ann_v));
        json_t *anns = json_array();
        json_array_append_new(anns, a);
        json_object_set_new_nocheck(o, "annotations", anns);
        json_t *tags = json_object();
        for (int t = 0; t < s->n_tags; t++) {
            size_t kl = s->tag_k[t].n < sizeof(key) - 1 ? s->tag_k[t].n : sizeof(key) - 1;
            memcpy(key, s->tag_k[t].p, kl);
            key[kl] = '\0';
            json_object_set_new_nocheck(tags, key, jsl(s->tag_v[t]));
        }
        json_object_set_new_nocheck(o, "tags", tags);
        json_array_append_new(arr, o);
    }
    char *out = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t len = strlen(out);
    free(out);
    json_decref(arr);
    return len;
}

static void hand_str(buf_t *b, const char *lit, sl_t v)
{
    buf_append_str(b, lit);
    buf_append_json_escaped(b, v.p, v.n);
    buf_append_char(b, '"');
}

static void hand_ep(buf_t *b, const ep_t *e)
{
    hand_str(b, "{\"serviceName\":\"", e->service);
    hand_str(b, ",\"ipv4\":\"", e->ipv4);
    if (e->port) {
        buf_append_str(b, ",\"port\":");
        buf_append_u64(b, (uint64_t)e->port);
    }
    buf_append_char(b, '}');
}

static size_t encode_hand(const bspan_t *s, int n)
{
    buf_t b = BUF_INIT;
    buf_append_char(&b, '[');
    for (int i = 0; i < n; i++, s++) {
        if (i)
            buf_append_char(&b, ',');
        hand_str(&b, "{\"traceId\":\"", s->trace_id);
        hand_str(&b, ",\"parentId\":\"", s->parent_id);
        hand_str(&b, ",\"id\":\"", s->id);
        hand_str(&b, ",\"kind\":\"", s->kind);
        hand_str(&b, ",\"name\":\"", s->name);
        buf_append_str(&b, ",\"timestamp\":");
        buf_append_u64(&b, (uint64_t)s->timestamp);
        buf_append_str(&b, ",\"duration\":");
        buf_append_u64(&b, (uint64_t)s->duration);
        buf_append_str(&b, ",\"localEndpoint\":");
        hand_ep(&b, &s->local);
        buf_append_str(&b, ",\"remoteEndpoint\":");
        hand_ep(&b, &s->remote);
        buf_append_str(&b, ",\"annotations\":[{\"timestamp\":");
        buf_append_u64(&b, (uint64_t)s->ann_ts);
        hand_str(&b, ",\"value\":\"", s->ann_v);
        buf_append_str(&b, "}],\"tags\":{");
        for (int t = 0; t < s->n_tags; t++) {
            buf_append_str(&b, t ? ",\"" : "\"");
            buf_append_json_escaped(&b, s->tag_k[t].p, s->tag_k[t].n);
            hand_str(&b, "\":\"", s->tag_v[t]);
        }
        buf_append_str(&b, "}}");
    }
    buf_append_char(&b, ']');
    size_t len = b.len;
    buf_dispose(&b);
    return len;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 200;
    buf_t in = BUF_INIT;
    build_input(&in);
    bspan_t *spans = calloc(N_SPANS, sizeof(*spans));
    if (spans == NULL)
        return 1;
    printf("input: %d spans, %zu bytes (%.0f bytes/span), %d iterations\n", N_SPANS, in.len, (double)in.len / N_SPANS,
           iters);

    if (decode_yajl(in.data, in.len, spans) != N_SPANS || decode_jansson(in.data, in.len, spans) != N_SPANS) {
        fprintf(stderr, "decode check failed\n");
        return 1;
    }

    double t0 = now_s();
    for (int i = 0; i < iters; i++)
        decode_yajl(in.data, in.len, spans);
    double t_yd = now_s() - t0;

    t0 = now_s();
    for (int i = 0; i < iters; i++)
        decode_jansson(in.data, in.len, spans);
    double t_jd = now_s() - t0;

    decode_yajl(in.data, in.len, spans); /* spans point into `in` for the encoders */
    size_t sz_y = 0, sz_j = 0, sz_h = 0;
    t0 = now_s();
    for (int i = 0; i < iters; i++)
        sz_y = encode_yajl(spans, N_SPANS);
    double t_ye = now_s() - t0;

    t0 = now_s();
    for (int i = 0; i < iters; i++)
        sz_j = encode_jansson(spans, N_SPANS);
    double t_je = now_s() - t0;

    t0 = now_s();
    for (int i = 0; i < iters; i++)
        sz_h = encode_hand(spans, N_SPANS);
    double t_he = now_s() - t0;

    double total = (double)N_SPANS * iters;
    printf("decode yajl streaming (callbacks)   %12.0f spans/s\n", total / t_yd);
    printf("decode jansson json_loadb + walk    %12.0f spans/s\n", total / t_jd);
    printf("encode yajl_gen                     %12.0f spans/s  (%zu bytes)\n", total / t_ye, sz_y);
    printf("encode jansson tree + json_dumps    %12.0f spans/s  (%zu bytes)\n", total / t_je, sz_j);
    printf("encode hand-rolled into buf_t       %12.0f spans/s  (%zu bytes)\n", total / t_he, sz_h);
    free(spans);
    buf_dispose(&in);
    return 0;
}
