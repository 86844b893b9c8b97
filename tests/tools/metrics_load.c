/*
 * metrics_load: sends the metrics a mesh of Istio-style sidecars sends, for
 * benchmarks of the collector's metric ingest and of /metrics on a large
 * mesh (tests/bench/metrics_scrape_bench.sh drives it).
 *
 *   metrics_load --url http://127.0.0.1:PORT/v1/metrics [--workloads 1000] [--destinations 5] [--codes 3]
 *                [--rounds 1] [--connections 2] [--format otlp-proto-zstd|otlp-proto] [--seed 1]
 *                [--bytes-histograms 1] [--pid PID] [--labels-out FILE]
 *
 * Shape. Each workload is one sidecar and sends one OTLP
 * ExportMetricsServiceRequest per round (resource: service.name,
 * service.namespace, service.version, service.instance.id, k8s.*), holding
 * for each of its `destinations` peers and `codes` response codes a point of
 * the DELTA monotonic sum istio_requests_total and of the DELTA
 * explicit-bucket histogram istio_request_duration_milliseconds (Envoy's
 * default buckets, 0.5 ms .. 3600000 ms), and with --bytes-histograms 1
 * istio_request_bytes and istio_response_bytes (1 B .. 1e9 B, as the proxy
 * exports them). Every point carries Istio's 25 standard labels; peers of
 * even index are outbound calls (reporter=source, this workload is the
 * source), odd ones inbound (reporter=destination, this workload is the
 * destination), so every (workload, peer, code) is its own label set:
 * workloads x destinations x codes label sets in all, each in every metric.
 * A quarter of the duration points carry an exemplar with a trace id.
 * Workload names, namespaces (never "default"), SPIFFE principals,
 * clusters, protocols (one destination in five speaks gRPC) and all values
 * are drawn from --seed, so two runs with the same seed send the same
 * series and values; only timestamps come from the clock. About one
 * workload in sixteen has a non-ASCII name (café-ß-17, 東京-search-3).
 *
 * Each round's bodies are built before its clock starts, then posted over
 * `connections` keep-alive connections. A request fails on a non-2xx status
 * or when the collector's OTLP partial_success rejected any point; either
 * is printed to stderr and makes the exit status 1. With --labels-out, the
 * label sets are written there as tab-separated values (a header line of
 * the 25 names, then one line per label set) for an exporter that renders
 * the same series.
 *
 * Output: one "key=value ..." line per round and a total line last, for
 * scripts to parse: requests, points, bytes sent, seconds, and with --pid
 * the collector's CPU seconds (utime+stime) over the sends.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "compress.h"
#include "loadgen.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "pbwrite.h"
#include "telemetry_otlp.h"

typedef struct opts {
    const char *url, *format, *labels_out;
    int workloads, destinations, codes, rounds, connections, pid;
    int bytes_histograms; /* also istio_request_bytes and istio_response_bytes */
    uint64_t seed;
} opts_t;

/* ---- the mesh ---- */

/* The label set and bucket bounds are the proxy's (proxy/telemetry_otlp.h): what a sidecar of this mesh sends. */
enum { NLABELS = TELE_NLABELS, MAX_CODES = 14, MAX_DESTINATIONS = 64 };

static const char *const apps[] = {"frontend",       "productpage", "reviews",      "ratings",       "details",
                                   "cart",           "checkout",    "payment",      "shipping",      "currency",
                                   "recommendation", "ad",          "email",        "catalog",       "inventory",
                                   "search",         "auth",        "user-profile", "notifications", "gateway"};
static const char *const apps_non_ascii[] = {"café-ß", "zürich-gw", "東京-search", "señal-api", "łódź-cart"};
static const char *const namespaces[] = {"shop",      "payments",   "search", "identity",
                                         "logistics", "ml-serving", "edge",   "platform-observability",
                                         "checkout",  "inventory",  "media",  "ads"};
static const char *const clusters[] = {"cluster-east", "cluster-west"};

/* Index c of the response codes: HTTP status, gRPC status (gRPC peers answer HTTP 200), Envoy response flags. */
static const char *const http_codes[MAX_CODES] = {"200", "503", "404", "500", "201", "429", "302",
                                                  "401", "403", "504", "400", "204", "502", "301"};
static const char *const grpc_codes[MAX_CODES] = {"0",  "14", "5", "13", "1",  "8", "9",
                                                  "16", "7",  "4", "3",  "12", "2", "6"};
static const char *const flags[MAX_CODES] = {"-", "UF,URX", "NR", "-", "-", "RL", "-",
                                             "-", "-",      "UT", "-", "-", "UF", "-"};

#define NDUR TELE_DUR_BOUNDS
#define NBYTES TELE_BYTES_BOUNDS

typedef struct workload {
    char app[64];  /* app, canonical service and service account: "reviews-17", "café-ß-17" */
    char name[80]; /* workload (deployment): app-version */
    char pod[112]; /* app-version-xxxxxxxxxx-xxxxx: room for the longest name, so nothing is cut */
    char version[8];
    const char *ns, *cluster;
    char principal[192]; /* spiffe://cluster.local/ns/NS/sa/APP */
    char service[160];   /* APP.NS.svc.cluster.local */
    int grpc;
} workload_t;

typedef struct mesh {
    const opts_t *o;
    workload_t *w;
    int *peers; /* workloads x destinations: the distinct peers of each workload, never itself */
} mesh_t;

#define PICK(arr, h) (arr)[(h) % (sizeof(arr) / sizeof((arr)[0]))]

static uint64_t h3(uint64_t seed, uint64_t a, uint64_t b)
{
    return loadgen_mix(loadgen_mix(seed * 0x100000001b3ull + a) ^ (b * 0x9e3779b97f4a7c15ull));
}

static void mesh_init(mesh_t *m, const opts_t *o)
{
    m->o = o;
    m->w = calloc((size_t)o->workloads, sizeof(*m->w));
    m->peers = calloc((size_t)o->workloads * (size_t)o->destinations, sizeof(int));
    if (m->w == NULL || m->peers == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int i = 0; i < o->workloads; i++) {
        workload_t *w = &m->w[i];
        uint64_t h = h3(o->seed, 1, (uint64_t)i);
        const char *base = h % 16 == 0 ? PICK(apps_non_ascii, h >> 8) : PICK(apps, h >> 8);
        snprintf(w->app, sizeof(w->app), "%s-%d", base, i);
        snprintf(w->version, sizeof(w->version), "v%d", (int)(1 + (h >> 16) % 3));
        snprintf(w->name, sizeof(w->name), "%s-%s", w->app, w->version);
        snprintf(w->pod, sizeof(w->pod), "%s-%010llx-%05llx", w->name, (unsigned long long)(h >> 24) & 0xffffffffffull,
                 (unsigned long long)(h3(o->seed, 2, (uint64_t)i) & 0xfffffull));
        w->ns = PICK(namespaces, h >> 24);
        w->cluster = PICK(clusters, h >> 32);
        snprintf(w->principal, sizeof(w->principal), "spiffe://cluster.local/ns/%s/sa/%s", w->ns, w->app);
        snprintf(w->service, sizeof(w->service), "%s.%s.svc.cluster.local", w->app, w->ns);
        w->grpc = (h >> 40) % 5 == 0;
        int *p = m->peers + (size_t)i * (size_t)o->destinations;
        for (int d = 0; d < o->destinations; d++) {
            for (uint64_t try = 0;; try++) {
                int cand =
                    (int)(h3(o->seed, 3 + try, (uint64_t)i * MAX_DESTINATIONS + (uint64_t)d) % (uint64_t)o->workloads);
                int taken = cand == i;
                for (int e = 0; e < d && !taken; e++)
                    taken = p[e] == cand;
                if (!taken) {
                    p[d] = cand;
                    break;
                }
            }
        }
    }
}

static void mesh_dispose(mesh_t *m)
{
    free(m->w);
    free(m->peers);
}

/* The 25 label values of workload i's point for peer d and code c. */
static void labels_of(const mesh_t *m, int i, int d, int c, const char *v[NLABELS])
{
    const workload_t *self = &m->w[i], *peer = &m->w[m->peers[(size_t)i * (size_t)m->o->destinations + (size_t)d]];
    int outbound = d % 2 == 0;
    const workload_t *src = outbound ? self : peer, *dst = outbound ? peer : self;
    v[TL_REPORTER] = outbound ? "source" : "destination";
    v[TL_SOURCE_WORKLOAD] = src->name;
    v[TL_SOURCE_WORKLOAD_NAMESPACE] = src->ns;
    v[TL_SOURCE_PRINCIPAL] = src->principal;
    v[TL_SOURCE_APP] = src->app;
    v[TL_SOURCE_VERSION] = src->version;
    v[TL_SOURCE_CLUSTER] = src->cluster;
    v[TL_SOURCE_CANONICAL_SERVICE] = src->app;
    v[TL_SOURCE_CANONICAL_REVISION] = src->version;
    v[TL_DESTINATION_WORKLOAD] = dst->name;
    v[TL_DESTINATION_WORKLOAD_NAMESPACE] = dst->ns;
    v[TL_DESTINATION_PRINCIPAL] = dst->principal;
    v[TL_DESTINATION_APP] = dst->app;
    v[TL_DESTINATION_VERSION] = dst->version;
    v[TL_DESTINATION_SERVICE] = dst->service;
    v[TL_DESTINATION_SERVICE_NAME] = dst->app;
    v[TL_DESTINATION_SERVICE_NAMESPACE] = dst->ns;
    v[TL_DESTINATION_CLUSTER] = dst->cluster;
    v[TL_DESTINATION_CANONICAL_SERVICE] = dst->app;
    v[TL_DESTINATION_CANONICAL_REVISION] = dst->version;
    v[TL_REQUEST_PROTOCOL] = dst->grpc ? "grpc" : "http";
    v[TL_RESPONSE_CODE] = dst->grpc ? "200" : http_codes[c];
    v[TL_GRPC_RESPONSE_STATUS] = dst->grpc ? grpc_codes[c] : "";
    v[TL_RESPONSE_FLAGS] = flags[c];
    v[TL_CONNECTION_SECURITY_POLICY] = outbound ? "unknown" : "mutual_tls";
}

/* ---- request bodies ---- */

static void put_le64(buf_t *b, uint64_t v)
{
    buf_reserve(b, 8);
    for (int i = 0; i < 8; i++)
        b->data[b->len++] = (char)(uint8_t)(v >> (8 * i));
    b->data[b->len] = '\0';
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static void put_labels(buf_t *b, uint32_t field, const char *const v[NLABELS])
{
    for (int k = 0; k < NLABELS; k++) {
        const char *name = tele_label_name((enum tele_label)k);
        pb_kv_bytes(b, field, name, strlen(name), v[k], strlen(v[k]));
    }
}

/* A value inside bucket i of these bounds (the last bucket is unbounded above). */
static double bucket_value(const double *bounds, size_t n, size_t i)
{
    double lo = i == 0 ? 0 : bounds[i - 1];
    return i < n ? (lo + bounds[i]) / 2 : lo * 1.5;
}

/* One HistogramDataPoint of `count` observations around bucket `mid`, as field 1 of Histogram. */
static void put_hist_point(buf_t *b, const char *const v[NLABELS], const double *bounds, size_t n, size_t mid,
                           uint64_t count, uint64_t start_ns, uint64_t now_ns, const uint8_t *trace_span)
{
    uint64_t counts[32] = {0};
    /* half in the middle bucket, a fifth on either side, the rest one above: a skewed latency curve */
    size_t lo = mid > 0 ? mid - 1 : mid, hi = mid + 1 <= n ? mid + 1 : n, tail = mid + 2 <= n ? mid + 2 : n;
    counts[mid] += count / 2;
    counts[lo] += count / 5;
    counts[hi] += count / 5;
    counts[tail] += count - count / 2 - 2 * (count / 5);
    double sum = 0;
    for (size_t i = 0; i <= n; i++)
        sum += (double)counts[i] * bucket_value(bounds, n, i);
    size_t at = pb_open(b, 1);
    put_labels(b, 9, v);
    pb_fixed(b, 2, start_ns, 8);
    pb_fixed(b, 3, now_ns, 8);
    pb_fixed(b, 4, count, 8);
    pb_fixed(b, 5, double_bits(sum), 8);
    size_t bc = pb_open(b, 6);
    for (size_t i = 0; i <= n; i++)
        put_le64(b, counts[i]);
    pb_close(b, bc);
    size_t eb = pb_open(b, 7);
    for (size_t i = 0; i < n; i++)
        put_le64(b, double_bits(bounds[i]));
    pb_close(b, eb);
    if (trace_span != NULL) {
        size_t ex = pb_open(b, 8);
        pb_fixed(b, 2, now_ns, 8);
        pb_fixed(b, 3, double_bits(bucket_value(bounds, n, mid)), 8);
        pb_bytes(b, 4, trace_span + 16, 8);
        pb_bytes(b, 5, trace_span, 16);
        pb_close(b, ex);
    }
    pb_close(b, at);
}

enum { M_REQUESTS, M_DURATION, M_REQ_BYTES, M_RESP_BYTES, M_N };

static const struct {
    const char *name, *unit, *help;
} metric_defs[M_N] = {
    {"istio_requests_total", "1", "Requests handled, by reporter, workload, service and response code."},
    {"istio_request_duration_milliseconds", "ms", "Request duration, first request byte to last response byte."},
    {"istio_request_bytes", "By", "Request body sizes."},
    {"istio_response_bytes", "By", "Response body sizes."},
};

static int metric_count(const opts_t *o)
{
    return o->bytes_histograms ? M_N : M_REQ_BYTES;
}

/* Workload i's ExportMetricsServiceRequest of round r (uncompressed) into out. */
static void build_request(const mesh_t *m, int i, int r, uint64_t start_ns, uint64_t now_ns, buf_t *out)
{
    const opts_t *o = m->o;
    const workload_t *w = &m->w[i];
    size_t rm = pb_open(out, 1);
    size_t res = pb_open(out, 1);
    KV_STR(out, 1, "service.name", w->app, SIZE_MAX);
    KV_STR(out, 1, "service.namespace", w->ns, SIZE_MAX);
    KV_STR(out, 1, "service.version", w->version, SIZE_MAX);
    KV_STR(out, 1, "service.instance.id", w->pod, SIZE_MAX);
    KV_STR(out, 1, "k8s.pod.name", w->pod, SIZE_MAX);
    KV_STR(out, 1, "k8s.namespace.name", w->ns, SIZE_MAX);
    KV_STR(out, 1, "k8s.deployment.name", w->name, SIZE_MAX);
    KV_STR(out, 1, "telemetry.sdk.name", "outrider", SIZE_MAX);
    pb_close(out, res);
    size_t sm = pb_open(out, 2);
    size_t scope = pb_open(out, 1);
    pb_bytes(out, 1, "outrider", 8);
    pb_close(out, scope);
    for (int k = 0; k < metric_count(o); k++) {
        size_t mt = pb_open(out, 2);
        pb_bytes(out, 1, metric_defs[k].name, strlen(metric_defs[k].name));
        pb_bytes(out, 2, metric_defs[k].help, strlen(metric_defs[k].help));
        pb_bytes(out, 3, metric_defs[k].unit, strlen(metric_defs[k].unit));
        size_t data = pb_open(out, k == M_REQUESTS ? 7 : 9);
        for (int d = 0; d < o->destinations; d++) {
            uint64_t hd = h3(o->seed, 100, (uint64_t)i * MAX_DESTINATIONS + (uint64_t)d);
            for (int c = 0; c < o->codes; c++) {
                const char *v[NLABELS];
                labels_of(m, i, d, c, v);
                uint64_t key = ((uint64_t)i * MAX_DESTINATIONS + (uint64_t)d) * MAX_CODES + (uint64_t)c;
                uint64_t hv = h3(o->seed, 200 + (uint64_t)r, key);
                uint64_t count = c == 0 ? 1 + hv % 200 : 1 + hv % 20;
                if (k == M_REQUESTS) {
                    size_t at = pb_open(out, 1);
                    put_labels(out, 7, v);
                    pb_fixed(out, 2, start_ns, 8);
                    pb_fixed(out, 3, now_ns, 8);
                    pb_fixed(out, 6, count, 8);
                    pb_close(out, at);
                } else if (k == M_DURATION) {
                    uint8_t ts[24];
                    int exemplar = (hv >> 32) % 4 == 0;
                    if (exemplar) {
                        uint64_t t_hi = h3(o->seed, 300 + (uint64_t)r, key) | 1, t_lo = hv | 1;
                        uint64_t span = h3(o->seed, 400 + (uint64_t)r, key) | 1;
                        for (int j = 0; j < 8; j++) {
                            ts[j] = (uint8_t)(t_hi >> (56 - 8 * j));
                            ts[8 + j] = (uint8_t)(t_lo >> (56 - 8 * j));
                            ts[16 + j] = (uint8_t)(span >> (56 - 8 * j));
                        }
                    }
                    put_hist_point(out, v, tele_duration_bounds_ms, NDUR, 2 + (hd + (uint64_t)c) % 7, count, start_ns,
                                   now_ns, exemplar ? ts : NULL);
                } else {
                    size_t mid = k == M_REQ_BYTES ? 2 + hd % 3 : 3 + (hd >> 8) % 4;
                    put_hist_point(out, v, tele_bytes_bounds, NBYTES, mid, count, start_ns, now_ns, NULL);
                }
            }
        }
        pb_varint(out, 2, 1); /* AGGREGATION_TEMPORALITY_DELTA */
        if (k == M_REQUESTS)
            pb_varint(out, 3, 1); /* is_monotonic */
        pb_close(out, data);
        pb_close(out, mt);
    }
    pb_close(out, sm);
    pb_close(out, rm);
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Round r's bodies, one per workload, in the wire format; returns their bytes. */
static size_t build_round(const mesh_t *m, int r, uint64_t start_ns, buf_t *bodies)
{
    const opts_t *o = m->o;
    uint64_t now_ns = realtime_ns();
    int zstd = strcmp(o->format, "otlp-proto-zstd") == 0;
    buf_t raw = BUF_INIT;
    size_t total = 0;
    for (int i = 0; i < o->workloads; i++) {
        buf_t *b = zstd ? &raw : &bodies[i];
        b->len = 0;
        build_request(m, i, r, start_ns, now_ns, b);
        if (zstd) {
            bodies[i].len = 0;
            if (compress_encode(COMPRESS_ZSTD, raw.data, raw.len, 1, &bodies[i]) != 0) {
                fprintf(stderr, "zstd compression failed\n");
                exit(1);
            }
        }
        total += bodies[i].len;
    }
    buf_dispose(&raw);
    return total;
}

/* ---- responses ---- */

typedef struct check_ctx {
    atomic_long rejected_points;
    atomic_int reported;
} check_ctx_t;

/* A 2xx answer to OTLP protobuf is an ExportMetricsServiceResponse: any rejected point fails the request. */
static int check_partial_success(void *arg, const buf_t *body)
{
    check_ctx_t *cc = arg;
    if (body->len == 0)
        return 0;
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *r =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(
            NULL, body->len, (const uint8_t *)body->data);
    if (r == NULL) {
        fprintf(stderr, "metrics_load: a 2xx response that is not an ExportMetricsServiceResponse (%zu bytes)\n",
                body->len);
        return -1;
    }
    int64_t rejected = r->partial_success ? r->partial_success->rejected_data_points : 0;
    if (rejected > 0) {
        atomic_fetch_add(&cc->rejected_points, (long)rejected);
        if (atomic_fetch_add(&cc->reported, 1) < 3)
            fprintf(stderr, "metrics_load: collector rejected %lld points: %s\n", (long long)rejected,
                    r->partial_success->error_message ? r->partial_success->error_message : "");
    }
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__free_unpacked(r, NULL);
    return rejected > 0 ? -1 : 0;
}

/* ---- main ---- */

static int write_labels(const mesh_t *m, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    for (int k = 0; k < NLABELS; k++)
        fprintf(f, "%s%c", tele_label_name((enum tele_label)k), k + 1 < NLABELS ? '\t' : '\n');
    for (int i = 0; i < m->o->workloads; i++)
        for (int d = 0; d < m->o->destinations; d++)
            for (int c = 0; c < m->o->codes; c++) {
                const char *v[NLABELS];
                labels_of(m, i, d, c, v);
                for (int k = 0; k < NLABELS; k++)
                    fprintf(f, "%s%c", v[k], k + 1 < NLABELS ? '\t' : '\n');
            }
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

static int run(const opts_t *o)
{
    loadgen_target_t t;
    if (loadgen_parse_url(o->url, &t) != 0) {
        fprintf(stderr, "bad --url (want http://IPV4:PORT/v1/metrics)\n");
        return 2;
    }
    mesh_t m;
    mesh_init(&m, o);
    if (o->labels_out != NULL && write_labels(&m, o->labels_out) != 0)
        return 1;
    buf_t *bodies = calloc((size_t)o->workloads, sizeof(buf_t));
    check_ctx_t cc;
    atomic_init(&cc.rejected_points, 0);
    atomic_init(&cc.reported, 0);
    loadgen_post_t post = {.target = &t,
                           .content_type = "application/x-protobuf",
                           .content_encoding = strcmp(o->format, "otlp-proto-zstd") == 0 ? "zstd" : NULL,
                           .bodies = bodies,
                           .n = o->workloads,
                           .connections = o->connections,
                           .check = check_partial_success,
                           .check_ctx = &cc};
    double points_per_round = (double)o->workloads * o->destinations * o->codes * metric_count(o);
    double seconds = 0, cpu_total = 0, bytes_total = 0;
    int failures = 0;
    uint64_t start_ns = realtime_ns();
    for (int r = 0; r < o->rounds; r++) {
        size_t bytes = build_round(&m, r, start_ns, bodies);
        start_ns = realtime_ns();
        double user0 = 0, user1 = 0;
        double cpu0 = o->pid ? loadgen_cpu_seconds(o->pid, &user0) : 0;
        double t0 = loadgen_now_s();
        int round_failures = loadgen_post_all(&post);
        double el = loadgen_now_s() - t0;
        double cpu = o->pid ? loadgen_cpu_seconds(o->pid, &user1) - cpu0 : 0;
        failures += round_failures;
        seconds += el;
        cpu_total += cpu;
        bytes_total += (double)bytes;
        printf("round=%d requests=%d points=%.0f failures=%d bytes=%zu seconds=%.3f points_per_s=%.0f "
               "collector_cpu_s=%.3f points_per_cpu_s=%.0f\n",
               r, o->workloads, points_per_round, round_failures, bytes, el, points_per_round / el, cpu,
               cpu > 0 ? points_per_round / cpu : 0);
        fflush(stdout);
    }
    long rejected = atomic_load(&cc.rejected_points);
    double points = points_per_round * o->rounds;
    printf("format=%s workloads=%d destinations=%d codes=%d label_sets=%d metrics=%d series=%.0f rounds=%d "
           "requests=%d points=%.0f failures=%d rejected_points=%ld bytes=%.0f seconds=%.3f points_per_s=%.0f "
           "collector_cpu_s=%.3f points_per_cpu_s=%.0f\n",
           o->format, o->workloads, o->destinations, o->codes, o->workloads * o->destinations * o->codes,
           metric_count(o), points_per_round, o->rounds, o->workloads * o->rounds, points, failures, rejected,
           bytes_total, seconds, seconds > 0 ? points / seconds : 0, cpu_total, cpu_total > 0 ? points / cpu_total : 0);
    for (int i = 0; i < o->workloads; i++)
        buf_dispose(&bodies[i]);
    free(bodies);
    mesh_dispose(&m);
    if (failures > 0) {
        fprintf(stderr, "metrics_load: FAILED: %d of %d requests failed (non-2xx or points rejected)\n", failures,
                o->workloads * o->rounds);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o = {.format = "otlp-proto-zstd",
                .workloads = 1000,
                .destinations = 5,
                .codes = 3,
                .rounds = 1,
                .connections = 2,
                .bytes_histograms = 1,
                .seed = 1};
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "option %s needs a value\n", k);
            return 2;
        }
        if (!strcmp(k, "--url"))
            o.url = v;
        else if (!strcmp(k, "--format"))
            o.format = v;
        else if (!strcmp(k, "--workloads"))
            o.workloads = atoi(v);
        else if (!strcmp(k, "--destinations"))
            o.destinations = atoi(v);
        else if (!strcmp(k, "--codes"))
            o.codes = atoi(v);
        else if (!strcmp(k, "--rounds"))
            o.rounds = atoi(v);
        else if (!strcmp(k, "--connections"))
            o.connections = atoi(v);
        else if (!strcmp(k, "--bytes-histograms"))
            o.bytes_histograms = atoi(v);
        else if (!strcmp(k, "--pid"))
            o.pid = atoi(v);
        else if (!strcmp(k, "--seed"))
            o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--labels-out"))
            o.labels_out = v;
        else {
            fprintf(stderr, "unknown option %s; see the top of metrics_load.c\n", k);
            return 2;
        }
    }
    if (o.url == NULL || o.destinations < 1 || o.destinations > MAX_DESTINATIONS || o.workloads <= o.destinations ||
        o.codes < 1 || o.codes > MAX_CODES || o.rounds < 1 || o.connections < 1 ||
        (strcmp(o.format, "otlp-proto") != 0 && strcmp(o.format, "otlp-proto-zstd") != 0)) {
        fprintf(stderr,
                "need --url; --destinations 1..%d; --workloads > destinations; --codes 1..%d; --rounds, "
                "--connections >= 1; --format otlp-proto or otlp-proto-zstd\n",
                MAX_DESTINATIONS, MAX_CODES);
        return 2;
    }
    return run(&o);
}
