/*
 * span_load: load generator and query prober for outrider-collector
 * benchmarks (tests/bench/collector_bench.sh drives it).
 *
 *   span_load send  --url URL --format F [--batch N] [--requests N] [--connections N]
 *                   [--services N] [--spans-per-trace N] [--spread-ms N] [--steps N]
 *                   [--pid PID] [--seed N] [--cache DIR]
 *       Pre-builds every request body (so generation does not compete with
 *       the collector for CPU while measuring), then posts them over keep-alive
 *       connections, one thread each. Formats: otlp-proto-zstd, otlp-proto,
 *       zipkin-json, zipkin-json-gzip. Every trace has fresh random 128-bit ids
 *       (the high and low halves independent), every span a fresh id. Each
 *       request carries `services` services, each with batch/services
 *       consecutive spans, whole traces of spans-per-trace spans (default 10).
 *       With --spread-ms, each trace starts at a random time within the last
 *       N ms, so start times arrive out of order. With --steps, this repeats
 *       N times (fresh traces each step, bodies built between steps), printing
 *       one line per step: how cost grows as the store fills. With --pid,
 *       the collector's CPU time (utime+stime) is read before and after each
 *       step, and spans per CPU-second ("per core") is printed, and per
 *       user-mode CPU-second (without the kernel's share: its network stack
 *       and the page faults of memory the store touches for the first time). With
 *       --cache DIR, each step's bodies are saved there the first time and
 *       read back by later runs with the same options (ids are fresh within
 *       a run; a new collector sees them for the first time).
 *   span_load query --url BASE --ids-from N --count N [--services N] [--seed N]
 *       Measures GET /api/v2/trace/{id} for trace ids that `send` produced with
 *       the same seed, and GET /api/v2/traces?serviceName=&limit=10, printing
 *       p50/p99/max in microseconds.
 *
 * Output: one "key=value ..." line per measurement, for scripts to parse.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "compress.h"
#include "loadgen.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "span.h"

typedef struct opts {
    const char *mode, *url, *format;
    const char *cache; /* directory for request bodies built once and reused by later runs */
    int batch, requests, connections, services, count, pid;
    int per_trace;      /* spans per trace */
    int steps;          /* fill: steps of `requests` requests each */
    uint64_t spread_ms; /* trace start times drawn from [now - spread, now] */
    uint64_t seed;
} opts_t;

/* Trace number t of the run with this seed: its 128-bit id. */
static void trace_id(uint64_t seed, uint64_t t, uint64_t *hi, uint64_t *lo)
{
    *hi = loadgen_mix(seed * 1000003 + t * 2 + 1) | 1;
    *lo = loadgen_mix(seed * 1000033 + t * 2 + 2) | 1;
}

/* ---- body generation ---- */

static const char *const methods[] = {"GET", "POST", "GET", "GET"};

static void otlp_kv(Opentelemetry__Proto__Common__V1__KeyValue *kv, Opentelemetry__Proto__Common__V1__AnyValue *v,
                    const char *key, const char *s, int64_t i, int is_int)
{
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    kv->key = (char *)key;
    kv->value = v;
    if (is_int) {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = i;
    } else {
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = (char *)s;
    }
}

/* Start of trace t in µs: now_us, or up to spread_ms before it (out of order across requests). */
static uint64_t trace_start_us(const opts_t *o, uint64_t t, uint64_t now_us)
{
    if (o->spread_ms == 0)
        return now_us;
    return now_us - loadgen_mix(o->seed * 7919 + t) % (o->spread_ms * 1000);
}

/* One batch of `batch` spans as an ExportTraceServiceRequest, spans of trace t0.. onward. */
static void build_otlp(const opts_t *o, uint64_t t0, uint64_t now_ns, buf_t *out)
{
    int n = o->batch;
    Opentelemetry__Proto__Trace__V1__Span *spans = calloc((size_t)n, sizeof(*spans));
    Opentelemetry__Proto__Trace__V1__Span **sp = calloc((size_t)n, sizeof(*sp));
    Opentelemetry__Proto__Common__V1__KeyValue *kvs = calloc((size_t)n * 6, sizeof(*kvs));
    Opentelemetry__Proto__Common__V1__KeyValue **kvp = calloc((size_t)n * 6, sizeof(*kvp));
    Opentelemetry__Proto__Common__V1__AnyValue *vals = calloc((size_t)n * 6, sizeof(*vals));
    uint8_t *ids = calloc((size_t)n, 32);
    char *urls = calloc((size_t)n, 64);
    for (int i = 0; i < n; i++) {
        Opentelemetry__Proto__Trace__V1__Span *s = &spans[i];
        opentelemetry__proto__trace__v1__span__init(s);
        sp[i] = s;
        uint64_t t = t0 + (uint64_t)i / o->per_trace;
        int k = i % o->per_trace;
        uint64_t hi, lo;
        trace_id(o->seed, t, &hi, &lo);
        uint8_t *id = ids + (size_t)i * 32;
        span_id_to_bytes(hi, id);
        span_id_to_bytes(lo, id + 8);
        span_id_to_bytes(loadgen_mix(lo + (uint64_t)k) | 1, id + 16);
        span_id_to_bytes(k == 0 ? 0 : (loadgen_mix(lo + (uint64_t)(k - 1) / 2 * 2) | 1), id + 24);
        s->trace_id = (ProtobufCBinaryData){16, id};
        s->span_id = (ProtobufCBinaryData){8, id + 16};
        if (k > 0)
            s->parent_span_id = (ProtobufCBinaryData){8, id + 24};
        s->name = (char *)(k % 2 ? "get /api/items" : "post /api/orders");
        s->kind = k % 2 ? OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
                        : OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
        s->start_time_unix_nano = trace_start_us(o, t, now_ns / 1000) * 1000 + (uint64_t)k * 1000;
        s->end_time_unix_nano = s->start_time_unix_nano + 150000 + (uint64_t)(loadgen_mix(t + (uint64_t)k) % 5000000);
        char *url = urls + (size_t)i * 64;
        snprintf(url, 64, "http://reviews:9080/api/items/%llu",
                 (unsigned long long)(loadgen_mix(t * 31 + (uint64_t)k) % 100000));
        Opentelemetry__Proto__Common__V1__KeyValue *kv = kvs + (size_t)i * 6;
        Opentelemetry__Proto__Common__V1__AnyValue *v = vals + (size_t)i * 6;
        otlp_kv(&kv[0], &v[0], "http.method", methods[k % 4], 0, 0);
        otlp_kv(&kv[1], &v[1], "http.url", url, 0, 0);
        otlp_kv(&kv[2], &v[2], "http.status_code", NULL, k == 7 ? 503 : 200, 1);
        otlp_kv(&kv[3], &v[3], "upstream_cluster", "outbound|9080||reviews.default.svc.cluster.local", 0, 0);
        otlp_kv(&kv[4], &v[4], "response_flags", "-", 0, 0);
        otlp_kv(&kv[5], &v[5], "peer.service", "reviews", 0, 0);
        for (int j = 0; j < 6; j++)
            kvp[(size_t)i * 6 + (size_t)j] = &kv[j];
        s->attributes = kvp + (size_t)i * 6;
        s->n_attributes = 6;
    }
    /* one ResourceSpans per service, spans spread over them */
    int ns = o->services < 1 ? 1 : o->services;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = calloc((size_t)ns, sizeof(*rs));
    Opentelemetry__Proto__Trace__V1__ResourceSpans **rsp = calloc((size_t)ns, sizeof(*rsp));
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = calloc((size_t)ns, sizeof(*ss));
    Opentelemetry__Proto__Trace__V1__ScopeSpans **ssp = calloc((size_t)ns, sizeof(*ssp));
    Opentelemetry__Proto__Resource__V1__Resource *res = calloc((size_t)ns, sizeof(*res));
    Opentelemetry__Proto__Common__V1__KeyValue *rkv = calloc((size_t)ns, sizeof(*rkv));
    Opentelemetry__Proto__Common__V1__KeyValue **rkvp = calloc((size_t)ns, sizeof(*rkvp));
    Opentelemetry__Proto__Common__V1__AnyValue *rv = calloc((size_t)ns, sizeof(*rv));
    char *names = calloc((size_t)ns, 32);
    int per = (n + ns - 1) / ns;
    int used = 0;
    for (int j = 0; j < ns; j++) {
        opentelemetry__proto__trace__v1__resource_spans__init(&rs[j]);
        opentelemetry__proto__trace__v1__scope_spans__init(&ss[j]);
        opentelemetry__proto__resource__v1__resource__init(&res[j]);
        snprintf(names + j * 32, 32, "service-%d", j);
        otlp_kv(&rkv[j], &rv[j], "service.name", names + j * 32, 0, 0);
        rkvp[j] = &rkv[j];
        res[j].attributes = &rkvp[j];
        res[j].n_attributes = 1;
        rs[j].resource = &res[j];
        int cnt = n - used < per ? n - used : per;
        ss[j].spans = sp + used;
        ss[j].n_spans = (size_t)(cnt < 0 ? 0 : cnt);
        used += ss[j].n_spans;
        ssp[j] = &ss[j];
        rs[j].scope_spans = &ssp[j];
        rs[j].n_scope_spans = 1;
        rsp[j] = &rs[j];
    }
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req;
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(&req);
    req.resource_spans = rsp;
    req.n_resource_spans = (size_t)ns;
    size_t len = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(&req);
    uint8_t *packed = malloc(len);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, packed);
    if (strcmp(o->format, "otlp-proto-zstd") == 0)
        compress_encode(COMPRESS_ZSTD, packed, len, 1, out);
    else
        buf_append(out, packed, len);
    free(packed);
    free(spans);
    free(sp);
    free(kvs);
    free(kvp);
    free(vals);
    free(ids);
    free(urls);
    free(rs);
    free(rsp);
    free(ss);
    free(ssp);
    free(res);
    free(rkv);
    free(rkvp);
    free(rv);
    free(names);
}

static void build_zipkin_json(const opts_t *o, uint64_t t0, uint64_t now_us, buf_t *out)
{
    buf_t json = BUF_INIT;
    buf_append_char(&json, '[');
    for (int i = 0; i < o->batch; i++) {
        uint64_t t = t0 + (uint64_t)i / o->per_trace;
        int k = i % o->per_trace;
        uint64_t hi, lo;
        trace_id(o->seed, t, &hi, &lo);
        char tid[33], id[17], pid[17];
        span_format_trace_id(hi, lo, tid);
        span_format_id(loadgen_mix(lo + (uint64_t)k) | 1, id);
        span_format_id(loadgen_mix(lo + (uint64_t)(k - 1) / 2 * 2) | 1, pid);
        int svc = (int)(((uint64_t)i * (uint64_t)o->services) / (uint64_t)o->batch);
        if (i)
            buf_append_char(&json, ',');
        buf_printf(&json, "{\"traceId\":\"%s\",\"id\":\"%s\",", tid, id);
        if (k > 0)
            buf_printf(&json, "\"parentId\":\"%s\",", pid);
        buf_printf(
            &json,
            "\"kind\":\"%s\",\"name\":\"%s\",\"timestamp\":%llu,\"duration\":%llu,"
            "\"localEndpoint\":{\"serviceName\":\"service-%d\",\"ipv4\":\"10.1.2.%d\"},"
            "\"remoteEndpoint\":{\"serviceName\":\"reviews\",\"ipv4\":\"10.1.3.4\",\"port\":9080},"
            "\"tags\":{\"http.method\":\"%s\",\"http.url\":\"http://reviews:9080/api/items/%llu\","
            "\"http.status_code\":\"%d\",\"upstream_cluster\":\"outbound|9080||reviews.default.svc.cluster.local\","
            "\"response_flags\":\"-\",\"node_id\":\"sidecar~10.1.2.%d~service-%d\"}}",
            k % 2 ? "CLIENT" : "SERVER", k % 2 ? "get /api/items" : "post /api/orders",
            (unsigned long long)(trace_start_us(o, t, now_us) + (uint64_t)k),
            (unsigned long long)(150 + loadgen_mix(t + (uint64_t)k) % 5000), svc, svc, methods[k % 4],
            (unsigned long long)(loadgen_mix(t * 31 + (uint64_t)k) % 100000), k == 7 ? 503 : 200, svc, svc);
    }
    buf_append_char(&json, ']');
    if (strcmp(o->format, "zipkin-json-gzip") == 0)
        compress_encode(COMPRESS_GZIP, json.data, json.len, 6, out);
    else
        buf_append(out, json.data, json.len);
    buf_dispose(&json);
}

/* ---- send ---- */

typedef struct builder {
    const opts_t *o;
    buf_t *bodies;
    int first_req, n, step, offset;
    uint64_t now_us;
    pthread_t th;
} builder_t;

static void *build_worker(void *arg)
{
    builder_t *b = arg;
    const opts_t *o = b->o;
    int otlp = strncmp(o->format, "otlp", 4) == 0;
    for (int i = b->offset; i < b->n; i += b->step) {
        int r = b->first_req + i;
        uint64_t t0 = (uint64_t)r * (uint64_t)(o->batch / o->per_trace);
        b->bodies[i].len = 0;
        if (otlp)
            build_otlp(o, t0, (b->now_us + (uint64_t)r) * 1000, &b->bodies[i]);
        else
            build_zipkin_json(o, t0, b->now_us + (uint64_t)r, &b->bodies[i]);
    }
    return NULL;
}

/* Bodies of requests first_req .. first_req+n-1, built on every core (the collector is idle meanwhile). */
/* The cache file of requests first_req.. of this shape, or "" without --cache. */
static void cache_path(const opts_t *o, int first_req, int n, char *out, size_t size)
{
    out[0] = '\0';
    if (o->cache != NULL)
        snprintf(out, size, "%s/%s-seed%llu-b%d-s%d-t%d-spread%llu-r%d-n%d.bin", o->cache, o->format,
                 (unsigned long long)o->seed, o->batch, o->services, o->per_trace, (unsigned long long)o->spread_ms,
                 first_req, n);
}

/* Load bodies from a cache file (4-byte length, bytes, for each). 0 when all n were read. */
static int cache_load(const char *path, int n, buf_t *bodies)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    int i = 0;
    for (; i < n; i++) {
        uint32_t len;
        if (fread(&len, 4, 1, f) != 1)
            break;
        bodies[i].len = 0;
        buf_reserve(&bodies[i], len);
        if (fread(bodies[i].data, 1, len, f) != len)
            break;
        bodies[i].len = len;
    }
    fclose(f);
    return i == n ? 0 : -1;
}

static void cache_store(const char *path, int n, const buf_t *bodies)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        return;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        uint32_t len = (uint32_t)bodies[i].len;
        ok = fwrite(&len, 4, 1, f) == 1 && fwrite(bodies[i].data, 1, len, f) == len;
    }
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0)
        unlink(tmp);
}

static size_t build_bodies(const opts_t *o, int first_req, int n, buf_t *bodies)
{
    char path[4096];
    cache_path(o, first_req, n, path, sizeof(path));
    if (path[0] != '\0' && cache_load(path, n, bodies) == 0) {
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += bodies[i].len;
        return total;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    long nb = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = nb < 1 ? 1 : nb > 16 ? 16 : (int)nb;
    builder_t bs[16];
    for (int i = 0; i < nt; i++) {
        bs[i] = (builder_t){o, bodies, first_req, n, nt, i, now_us, 0};
        pthread_create(&bs[i].th, NULL, build_worker, &bs[i]);
    }
    for (int i = 0; i < nt; i++)
        pthread_join(bs[i].th, NULL);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += bodies[i].len;
    if (path[0] != '\0')
        cache_store(path, n, bodies);
    return total;
}

static int cmd_send(const opts_t *o)
{
    loadgen_target_t t;
    if (loadgen_parse_url(o->url, &t) != 0) {
        fprintf(stderr, "bad --url\n");
        return 2;
    }
    buf_t *bodies = calloc((size_t)o->requests, sizeof(buf_t));
    int otlp = strncmp(o->format, "otlp", 4) == 0;
    loadgen_post_t post = {.target = &t,
                           .content_type = otlp ? "application/x-protobuf" : "application/json",
                           .content_encoding = strcmp(o->format, "otlp-proto-zstd") == 0    ? "zstd"
                                               : strcmp(o->format, "zipkin-json-gzip") == 0 ? "gzip"
                                                                                            : NULL,
                           .bodies = bodies,
                           .n = o->requests,
                           .connections = o->connections};
    double first_rate = 0;
    int failures = 0;
    for (int step = 0; step < o->steps; step++) {
        size_t total_bytes = build_bodies(o, step * o->requests, o->requests, bodies);
        double user0 = 0, user1 = 0;
        double cpu0 = o->pid ? loadgen_cpu_seconds(o->pid, &user0) : 0;
        double t0 = loadgen_now_s();
        int step_failures = loadgen_post_all(&post);
        failures += step_failures;
        double el = loadgen_now_s() - t0;
        double cpu = o->pid ? loadgen_cpu_seconds(o->pid, &user1) - cpu0 : 0;
        double user = user1 - user0;
        double spans = (double)o->requests * o->batch;
        double rate = cpu > 0 ? spans / cpu : 0;
        if (step == 0)
            first_rate = rate;
        printf("format=%s connections=%d step=%d stored_before=%.0f requests=%d batch=%d spans=%.0f failures=%d "
               "bytes_per_span=%.1f seconds=%.3f spans_per_s=%.0f collector_cpu_s=%.3f spans_per_cpu_s=%.0f "
               "vs_first=%.2f collector_user_s=%.3f spans_per_user_cpu_s=%.0f\n",
               o->format, o->connections, step, (double)step * spans, o->requests, o->batch, spans, step_failures,
               (double)total_bytes / spans, el, spans / el, cpu, rate, first_rate > 0 ? rate / first_rate : 0, user,
               user > 0 ? spans / user : 0);
        fflush(stdout);
    }
    for (int r = 0; r < o->requests; r++)
        buf_dispose(&bodies[r]);
    free(bodies);
    return failures ? 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *lat, int n)
{
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("query=%s count=%d p50_us=%.0f p99_us=%.0f max_us=%.0f\n", what, n, lat[n / 2] * 1e6,
           lat[(int)(n * 0.99)] * 1e6, lat[n - 1] * 1e6);
}

static int cmd_query(const opts_t *o)
{
    loadgen_target_t t;
    if (loadgen_parse_url(o->url, &t) != 0) {
        fprintf(stderr, "bad --url\n");
        return 2;
    }
    int fd = loadgen_connect(&t);
    buf_t in = BUF_INIT, body = BUF_INIT, req = BUF_INIT;
    double *lat = calloc((size_t)o->count, sizeof(double));
    uint64_t traces = (uint64_t)o->requests * (uint64_t)(o->batch / o->per_trace);
    int bad = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < o->count; i++) {
            req.len = 0;
            if (pass == 0) {
                uint64_t hi, lo;
                /* the newest traces: older ones may have been evicted */
                trace_id(o->seed, traces - 1 - loadgen_mix((uint64_t)i) % (traces / 2 ? traces / 2 : 1), &hi, &lo);
                char tid[33];
                span_format_trace_id(hi, lo, tid);
                buf_printf(&req, "GET /api/v2/trace/%s HTTP/1.1\r\nHost: x\r\n\r\n", tid);
            } else {
                buf_printf(&req, "GET /api/v2/traces?serviceName=service-%d&limit=10 HTTP/1.1\r\nHost: x\r\n\r\n",
                           (int)(loadgen_mix((uint64_t)i) % (uint64_t)o->services));
            }
            double t0 = loadgen_now_s();
            loadgen_write_all(fd, req.data, req.len);
            int status = loadgen_read_response(fd, &in, &body);
            lat[i] = loadgen_now_s() - t0;
            if (status != 200 && bad++ < 3)
                fprintf(stderr, "status %d for %s", status, req.data);
        }
        report(pass == 0 ? "trace_by_id" : "traces_by_service", lat, o->count);
    }
    close(fd);
    free(lat);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    opts_t o = {.format = "otlp-proto-zstd",
                .batch = 1000,
                .requests = 100,
                .connections = 2,
                .services = 20,
                .per_trace = 10,
                .steps = 1,
                .count = 1000,
                .seed = 1};
    if (argc < 2) {
        fprintf(stderr, "usage: span_load send|query --url URL [options]; see the top of span_load.c\n");
        return 2;
    }
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--url"))
            o.url = v;
        else if (!strcmp(k, "--format"))
            o.format = v;
        else if (!strcmp(k, "--batch"))
            o.batch = atoi(v);
        else if (!strcmp(k, "--requests"))
            o.requests = atoi(v);
        else if (!strcmp(k, "--connections"))
            o.connections = atoi(v);
        else if (!strcmp(k, "--services"))
            o.services = atoi(v);
        else if (!strcmp(k, "--count"))
            o.count = atoi(v);
        else if (!strcmp(k, "--spans-per-trace"))
            o.per_trace = atoi(v);
        else if (!strcmp(k, "--steps"))
            o.steps = atoi(v);
        else if (!strcmp(k, "--cache"))
            o.cache = v;
        else if (!strcmp(k, "--spread-ms"))
            o.spread_ms = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--pid"))
            o.pid = atoi(v);
        else if (!strcmp(k, "--seed"))
            o.seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    if (o.url == NULL || o.per_trace < 1 || o.batch < o.per_trace || o.requests < 1 || o.connections < 1 ||
        o.services < 1 || o.steps < 1) {
        fprintf(stderr, "need --url, --spans-per-trace >= 1, --batch >= it, --requests, --connections, --services, "
                        "--steps >= 1\n");
        return 2;
    }
    if (!strcmp(o.mode, "send"))
        return cmd_send(&o);
    if (!strcmp(o.mode, "query"))
        return cmd_query(&o);
    fprintf(stderr, "unknown mode %s\n", o.mode);
    return 2;
}
