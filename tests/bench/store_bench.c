/*
 * store_bench: span store throughput, memory and query latency.
 *
 * Inserts 1,000,000 generated sidecar-like spans (100,000 traces of 10
 * spans, 20 services, 128-bit trace ids, local and remote endpoints, 6 tags
 * of which http.url is unique, an annotation on every fifth span) in
 * batches of 100 spans that interleave 10 traces, as proxies' OTLP batches
 * do. Then reports insert rate, bytes per span (the store's accounting and
 * the RSS delta) and p50/p99 of 10,000 trace-by-id lookups and 10,000
 * searches by service name (limit 10), each decoded into an arena.
 *
 * Build and run from the repository root (not part of the CMake build):
 *   gcc -O2 -g -std=c11 -D_GNU_SOURCE -Icommon -Icollector tests/bench/store_bench.c \
 *       collector/span_store*.c collector/intern.c common/arena.c common/log.c \
 *       -lxxhash -lpthread -o /tmp/store_bench && /tmp/store_bench [spans]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "span_store.h"

#define PER_TRACE 10
#define SERVICES 20
#define BATCH_TRACES 10

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static str_t str_of(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static char svc_names[SERVICES][16];
static char cluster_names[SERVICES][64];
static const char *span_names[] = {"get /api/v1/items", "post /api/v1/items", "get /api/v1/users/{id}",
                                   "get /health",       "put /api/v1/cart",   "get /api/v1/catalog"};

typedef struct gen_span {
    span_t s;
    span_tag_t tags[6];
    span_annotation_t ann;
    char url[128];
    char peer[24];
} gen_span_t;

static uint64_t trace_hi(uint64_t t)
{
    return t * 0xC2B2AE3D27D4EB4FULL + 1;
}

static uint64_t trace_lo(uint64_t t)
{
    return t * 0x9E3779B97F4A7C15ULL + 7;
}

/* Span i of trace t: even spans are SERVER on service a, odd are CLIENT from a to b. */
static void gen(gen_span_t *g, uint64_t t, int i, uint64_t base_us)
{
    span_t *s = &g->s;
    memset(s, 0, sizeof(*s));
    int hop = i / 2;
    int svc = (int)((t + (uint64_t)hop) % SERVICES), next = (int)((t + (uint64_t)hop + 1) % SERVICES);
    s->trace_id_high = trace_hi(t);
    s->trace_id_low = trace_lo(t);
    s->id = trace_lo(t) ^ ((uint64_t)(i + 1) * 0xFF51AFD7ED558CCDULL);
    s->parent_id = i ? trace_lo(t) ^ ((uint64_t)i * 0xFF51AFD7ED558CCDULL) : 0;
    s->kind = (i & 1) ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER;
    s->name = str_of(span_names[(t + (uint64_t)i) % 6]);
    s->timestamp_us = base_us + (uint64_t)i * 150;
    s->duration_us = 20000 - (uint64_t)i * 1500 + rnd() % 500;
    s->has_local = 1;
    s->local.service_name = str_of(svc_names[svc]);
    s->local.has_ipv4 = 1;
    s->local.ipv4[0] = 10;
    s->local.ipv4[3] = (uint8_t)svc;
    s->local.port = 8080;
    s->has_remote = 1;
    int peer = (i & 1) ? next : (svc + SERVICES - 1) % SERVICES;
    if (i & 1)
        s->remote.service_name = str_of(svc_names[peer]);
    s->remote.has_ipv4 = 1;
    s->remote.ipv4[0] = 10;
    s->remote.ipv4[3] = (uint8_t)peer;
    s->remote.port = (i & 1) ? 8080 : (uint16_t)(30000 + rnd() % 30000);
    snprintf(g->url, sizeof(g->url), "http://%.15s:8080/api/v1/items/%u", svc_names[svc], (unsigned)(rnd() % 10000000));
    snprintf(g->peer, sizeof(g->peer), "10.0.0.%d:%u", peer, (unsigned)s->remote.port);
    g->tags[0] = (span_tag_t){str_of("http.method"), str_of((t & 3) ? "GET" : "POST")};
    g->tags[1] = (span_tag_t){str_of("http.url"), str_of(g->url)};
    g->tags[2] = (span_tag_t){str_of("http.status_code"), str_of((t % 50) ? "200" : "503")};
    g->tags[3] = (span_tag_t){str_of("component"), str_of("proxy")};
    g->tags[4] = (span_tag_t){str_of("peer.address"), str_of(g->peer)};
    g->tags[5] = (span_tag_t){str_of("upstream_cluster"), str_of(cluster_names[(i & 1) ? next : svc])};
    s->tags = g->tags;
    s->n_tags = 6;
    if ((t + (uint64_t)i) % 5 == 0) {
        g->ann = (span_annotation_t){s->timestamp_us + 10, str_of("retry")};
        s->annotations = &g->ann;
        s->n_annotations = 1;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("%-34s p50 %7.1f us   p99 %7.1f us   max %7.1f us\n", what, ns[n / 2] / 1e3, ns[n * 99 / 100] / 1e3,
           ns[n - 1] / 1e3);
}

int main(int argc, char **argv)
{
    size_t n_spans = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    size_t n_traces = n_spans / PER_TRACE;
    for (int i = 0; i < SERVICES; i++) {
        snprintf(svc_names[i], sizeof(svc_names[i]), "service-%02d", i);
        snprintf(cluster_names[i], sizeof(cluster_names[i]), "outbound|8080||service-%02d.default", i);
    }
    uint64_t base_ms = 1700000000000ULL;

    size_t rss0 = rss_bytes();
    span_store_config_t cfg;
    span_store_config_default(&cfg);
    cfg.max_spans = n_spans * 2;
    span_store_t *st = span_store_create(&cfg);

    gen_span_t *g = malloc(sizeof(*g) * BATCH_TRACES * PER_TRACE);
    span_t *batch = malloc(sizeof(*batch) * BATCH_TRACES * PER_TRACE);
    uint64_t insert_ns = 0;
    size_t rss_gen = 0;
    for (size_t t0 = 0; t0 < n_traces; t0 += BATCH_TRACES) {
        size_t k = 0;
        for (int i = 0; i < PER_TRACE; i++)
            for (size_t t = t0; t < t0 + BATCH_TRACES && t < n_traces; t++) {
                uint64_t base_us = (base_ms + t * 10) * 1000;
                gen(&g[k], t, PER_TRACE - 1 - i, base_us); /* children first, as they finish first */
                batch[k] = g[k].s;
                k++;
            }
        if (t0 == 0)
            rss_gen = rss_bytes();
        uint64_t a = now_ns();
        span_store_insert(st, batch, k, (base_ms + t0 * 10) * 1000);
        insert_ns += now_ns() - a;
    }
    (void)rss_gen;
    size_t rss1 = rss_bytes();
    span_store_stats_t ss;
    span_store_stats(st, &ss);
    printf("spans %llu traces %llu services %llu\n", (unsigned long long)ss.spans, (unsigned long long)ss.traces,
           (unsigned long long)ss.services);
    printf("insert: %.0f spans/s (%.0f ns/span, batches of %d)\n", n_spans / (insert_ns / 1e9),
           (double)insert_ns / n_spans, BATCH_TRACES * PER_TRACE);
    printf("memory: store accounting %.1f bytes/span, RSS delta %.1f bytes/span\n", (double)ss.bytes / ss.spans,
           (double)(rss1 - rss0) / ss.spans);

    if (getenv("STORE_BENCH_INSERT_ONLY") != NULL) {
        span_store_destroy(st);
        return 0;
    }
    enum { Q = 10000 };
    uint64_t *lat = malloc(sizeof(*lat) * Q);
    arena_t arena;
    arena_init(&arena, 0);
    size_t found = 0;
    for (int q = 0; q < Q; q++) {
        uint64_t t = rnd() % n_traces;
        arena_reset(&arena);
        const span_t *spans;
        size_t n;
        uint64_t a = now_ns();
        if (span_store_get_trace(st, trace_hi(t), trace_lo(t), &arena, &spans, &n) == 0 && n == PER_TRACE)
            found++;
        lat[q] = now_ns() - a;
    }
    report("get_trace by id", lat, Q);
    if (found != Q)
        printf("  (only %zu of %d found!)\n", found, Q);

    size_t results = 0;
    for (int q = 0; q < Q; q++) {
        span_query_t qr = {0};
        qr.service_name = str_of(svc_names[rnd() % SERVICES]);
        qr.end_ts_ms = base_ms + n_traces * 10 - (rnd() % (n_traces * 10));
        qr.lookback_ms = 86400000;
        qr.limit = 10;
        arena_reset(&arena);
        trace_result_t res;
        uint64_t a = now_ns();
        span_store_get_traces(st, &qr, &arena, &res);
        lat[q] = now_ns() - a;
        results += res.n_traces;
    }
    report("get_traces(serviceName, limit 10)", lat, Q);
    printf("  (%.1f traces per result)\n", (double)results / Q);

    for (int q = 0; q < 1000; q++) {
        span_query_t qr = {0};
        qr.service_name = str_of(svc_names[rnd() % SERVICES]);
        qr.end_ts_ms = base_ms + n_traces * 10;
        qr.lookback_ms = 86400000;
        qr.limit = 10;
        span_query_term_t term = {str_of("http.status_code"), str_of("503")};
        qr.terms = &term;
        qr.n_terms = 1;
        arena_reset(&arena);
        trace_result_t res;
        uint64_t a = now_ns();
        span_store_get_traces(st, &qr, &arena, &res);
        lat[q] = now_ns() - a;
    }
    report("get_traces(+ http.status_code=503)", lat, 1000);

    span_dep_link_t *links;
    size_t n_links;
    uint64_t a = now_ns();
    span_store_dependencies(st, base_ms + n_traces * 10, 86400000, &arena, &links, &n_links);
    uint64_t first = now_ns() - a;
    a = now_ns();
    span_store_dependencies(st, base_ms + n_traces * 10, 86400000, &arena, &links, &n_links);
    printf("dependencies: %zu links, first call %.1f ms (settles pending traces), next %.1f ms\n", n_links, first / 1e6,
           (now_ns() - a) / 1e6);

    arena_dispose(&arena);
    span_store_destroy(st);
    free(lat);
    free(g);
    free(batch);
    return 0;
}
