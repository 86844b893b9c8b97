/*
 * tele_drive: drive proxy/telemetry against an OTLP endpoint.
 *
 *   tele_drive HOST PORT COUNT SAMPLING_PERCENT [DEADLINE_MS]
 *   tele_drive URL - COUNT SAMPLING_PERCENT [DEADLINE_MS]      (http:// or https://, a base path;
 *                                                              TELE_DRIVE_CA: the endpoint's CA file,
 *                                                              TELE_DRIVE_CERT, TELE_DRIVE_KEY: a client
 *                                                              certificate)
 *   TELE_DRIVE_TOKEN_FILE: a bearer token file (telemetry.tokenFile)
 *
 * Records COUNT requests from one worker on its own uv loop: pairs of a
 * source-side (CLIENT) and a destination-side (SERVER) hop of the same
 * trace, response codes cycling 200 200 404 503, paths /api/items/0..4.
 * Then it flushes, stops the hub with DEADLINE_MS (default 5000) and prints
 * tele_get_stats as key=value lines, plus requests_source= and
 * requests_destination= and sampled= (what it recorded). Exit 0 unless the
 * arguments are wrong.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "telemetry.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rnd() >> 24);
    p[0] |= 1; /* never all zero */
}

static str_t S(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST|URL PORT COUNT SAMPLING_PERCENT [DEADLINE_MS]   (env TELE_DRIVE_CA: caFile)\n",
                argv[0]);
        return 2;
    }
    const char *host = argv[1];
    long port = strtol(argv[2], NULL, 10);
    long count = strtol(argv[3], NULL, 10);
    double sampling = strtod(argv[4], NULL);
    long deadline = argc > 5 ? strtol(argv[5], NULL, 10) : 5000;
    bool url = strncmp(host, "http://", 7) == 0 || strncmp(host, "https://", 8) == 0; /* PORT unused then */
    if ((!url && (port <= 0 || port > 65535)) || count < 0 || deadline < 0) {
        fprintf(stderr, "tele_drive: bad arguments\n");
        return 2;
    }
    rng_state = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;

    peer_info_t self, reviews;
    memset(&self, 0, sizeof(self));
    strcpy(self.name, "tele-drive-0");
    strcpy(self.namespace, "default");
    strcpy(self.workload, "tele-drive");
    strcpy(self.app, "tele-drive");
    strcpy(self.version, "v1");
    strcpy(self.cluster_id, "Kubernetes");
    memset(&reviews, 0, sizeof(reviews));
    strcpy(reviews.name, "reviews-v2-0");
    strcpy(reviews.namespace, "default");
    strcpy(reviews.workload, "reviews-v2");
    strcpy(reviews.app, "reviews");
    strcpy(reviews.version, "v2");
    strcpy(reviews.cluster_id, "Kubernetes");

    signal(SIGPIPE, SIG_IGN); /* as outrider-proxy: a server that closed mid-write is a failed export */
    tele_opts_t o = {0};
    if (url) {
        o.otlp_url = host;
        o.otlp_ca_file = getenv("TELE_DRIVE_CA");
        o.otlp_cert_file = getenv("TELE_DRIVE_CERT");
        o.otlp_key_file = getenv("TELE_DRIVE_KEY");
    } else {
        o.otlp_host = host;
        o.otlp_port = (uint16_t)port;
    }
    o.otlp_token_file = getenv("TELE_DRIVE_TOKEN_FILE");
    o.flush_interval_ms = 200;
    o.max_batch_records = 64;
    o.access_log = true;
    o.self = &self;
    o.service_name = "tele-drive.default";
    o.instance_id = "tele-drive-0.default";
    tele_t *t = tele_create(&o);
    if (t == NULL || tele_start(t) != 0) {
        fprintf(stderr, "tele_drive: cannot start telemetry\n");
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    tele_worker_t *w = tele_worker_create(t, &loop);

    static const int codes[] = {200, 200, 404, 503};
    static const char *const paths[] = {"/api/items/0", "/api/items/1", "/api/items/2", "/api/items/3", "/api/items/4"};
    long n_src = 0, n_dst = 0, n_sampled = 0;
    trace_ctx_t tc;
    for (long i = 0; i < count; i++) {
        bool client = i % 2 == 0;
        if (client) {
            memset(&tc, 0, sizeof(tc));
            fill_random(tc.trace_id, 16);
            fill_random(tc.span_id, 8);
            tc.has_trace = true;
            tc.sampled = (double)(rnd() % 10000) < sampling * 100 ? 1 : 0;
            snprintf(tc.request_id, sizeof(tc.request_id), "drive-%ld", i / 2);
            tc.request_id_len = (uint32_t)strlen(tc.request_id);
        } else {
            memcpy(tc.parent_id, tc.span_id, 8);
            tc.has_parent = true;
            fill_random(tc.span_id, 8);
        }
        tele_request_t r;
        memset(&r, 0, sizeof(r));
        r.reporter = client ? TELE_SOURCE : TELE_DESTINATION;
        r.peer = client ? &reviews : NULL;
        r.destination_service = S("reviews.default.svc.cluster.local");
        r.destination_service_name = S("reviews");
        r.destination_service_namespace = S("default");
        r.response_code = codes[(i / 2) % 4];
        r.response_flags = r.response_code == 503 ? TELE_RF_UF : 0;
        r.request_bytes = (uint64_t)(i % 7) * 100;
        r.response_bytes = 1024;
        r.duration_ns = (uint64_t)(1 + i % 50) * 1000000u;
        r.start_unix_ns = now_ns() - r.duration_ns;
        r.method = S(i % 3 == 0 ? "POST" : "GET");
        r.path = S(paths[(i / 2) % 5]);
        r.authority = S("reviews:9080");
        r.user_agent = S("tele-drive/1");
        r.protocol = S("HTTP/1.1");
        r.upstream_host = S(client ? "127.0.0.1:19081" : "127.0.0.1:9080");
        r.upstream_cluster = S(client ? "outbound|9080||reviews.default.svc.cluster.local" : "inbound|9080||");
        r.downstream_peer = S("127.0.0.1:40000");
        r.attempts = 1;
        r.trace = &tc;
        r.span_name = S("reviews.default.svc.cluster.local:9080/*");
        tele_record(w, &r);
        n_src += client;
        n_dst += !client;
        n_sampled += tc.sampled == 1;
    }
    tele_worker_flush(w);
    tele_worker_destroy(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tele_stop(t, (uint64_t)deadline);

    tele_stats_t st;
    tele_get_stats(t, &st);
    printf("requests_source=%ld\nrequests_destination=%ld\nsampled=%ld\n", n_src, n_dst, n_sampled);
    printf("spans_exported=%llu\nlogs_exported=%llu\nmetric_points_exported=%llu\n",
           (unsigned long long)st.spans_exported, (unsigned long long)st.logs_exported,
           (unsigned long long)st.metric_points_exported);
    printf("spans_dropped=%llu\nlogs_dropped=%llu\nmetric_batches_dropped=%llu\n", (unsigned long long)st.spans_dropped,
           (unsigned long long)st.logs_dropped, (unsigned long long)st.metric_batches_dropped);
    printf("export_failures=%llu\nqueue_bytes=%zu\n", (unsigned long long)st.export_failures, st.queue_bytes);
    if (getenv("TELE_DRIVE_PROM") != NULL) {
        buf_t out = BUF_INIT;
        tele_render_prometheus(t, &out);
        fwrite(out.data, 1, out.len, stderr);
        buf_dispose(&out);
    }
    tele_destroy(t);
    return 0;
}
