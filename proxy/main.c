/*
 * outrider-proxy: the sidecar. It loads and checks its configuration, then
 * runs spec.workers worker threads (proxy/worker.h), each with its own
 * SO_REUSEPORT outbound listener (the app's calls, routed by the Istio
 * documents) and inbound listener (calls to the app, forwarded to
 * spec.inbound.forwardTo). The main thread runs the admin listener
 * (proxy/admin.h) and the signals on a loop of its own: SIGHUP reloads the
 * file (a bad file is refused and the running configuration stays),
 * SIGTERM/SIGINT or POST /quitquitquit drain the workers, flush telemetry
 * and exit 0. The telemetry exporter (proxy/telemetry.h) has a thread of
 * its own.
 *
 *   outrider-proxy --config FILE [--check] [--print-config]
 *
 * Exit codes: 0 valid (--check, --print-config) or drained after a stop,
 * 1 configuration errors, 2 usage, 4 listeners could not start.
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include <xxhash.h>

#include "admin.h"
#include "authz.h"
#include "identity.h"
#include "jwks_fetch.h"
#include "log.h"
#include "mono.h"
#include "runtime.h"
#include "telemetry.h"
#include "transport.h"
#include "worker.h"

#include "buf.h"
#include "config.h"
#include "config_json.h"
#include "file_stamp.h"

typedef struct counts {
    int errors, warnings;
} counts_t;

static void print_error(void *ctx, const char *message)
{
    counts_t *c = ctx;
    c->errors++;
    fprintf(stderr, "%s\n", message);
}

static void print_warning(void *ctx, const char *message)
{
    counts_t *c = ctx;
    c->warnings++;
    fprintf(stderr, "warning: %s\n", message);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: outrider-proxy --config FILE [--config FILE]... [--check] [--print-config]\n"
                 "  --config FILE    the proxy's YAML: one kind: Proxy document plus Istio ServiceEntry,\n"
                 "                   VirtualService, DestinationRule, PeerAuthentication, Telemetry and\n"
                 "                   RateLimit documents; given again, the files' documents make one\n"
                 "                   configuration (the workload's Proxy in one, the mesh's in another);\n"
                 "                   SIGHUP reads them all again\n"
                 "  --check          validate the file, print every error and warning, and exit\n"
                 "  --print-config   print the effective configuration as JSON and exit\n"
                 "  --version        print the version\n");
}

static size_t count_routes(const proxy_config_t *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_virtual_services; i++)
        n += cfg->virtual_services[i].n_http;
    return n;
}

static void print_summary(const proxy_config_t *cfg)
{
    const proxy_spec_t *ps = &cfg->proxy;
    printf("proxy %s.%s: %d worker%s\n", ps->meta.name ? ps->meta.name : "?", ps->meta.namespace, ps->workers,
           ps->workers == 1 ? "" : "s");
    printf("  outbound listener %s\n", ps->outbound_listen.text);
    if (ps->inbound_forward_to.text != NULL)
        printf("  inbound listener  %s -> %s\n", ps->inbound_listen.text, ps->inbound_forward_to.text);
    printf("  admin listener    %s\n", ps->admin_listen.text);
    if (ps->otlp_endpoint != NULL)
        printf("  telemetry         %s, sampling %g%%, flush every %llums\n", ps->otlp_endpoint, ps->sampling_percent,
               (unsigned long long)ps->flush_interval_ms);
    else
        printf("  telemetry         off (no otlpEndpoint)\n");
    printf("  %zu service%s, %zu virtual service%s with %zu HTTP route%s, %zu destination rule%s\n", cfg->n_services,
           cfg->n_services == 1 ? "" : "s", cfg->n_virtual_services, cfg->n_virtual_services == 1 ? "" : "s",
           count_routes(cfg), count_routes(cfg) == 1 ? "" : "s", cfg->n_destination_rules,
           cfg->n_destination_rules == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->n_services; i++) {
        const proxy_service_entry_t *se = &cfg->services[i];
        printf("    service %s: %zu endpoint%s\n", se->n_hosts ? se->hosts[0].host : "?", se->n_endpoints,
               se->n_endpoints == 1 ? "" : "s");
    }
}

/* The running proxy, owned by the main thread. */
typedef struct proxy_main {
    const char *path;         /* the files, for messages ("a.yaml + mesh.yaml") */
    const char *const *paths; /* each --config, read again on SIGHUP */
    size_t n_paths;
    uv_loop_t loop;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t watch;                             /* the configuration files' change check (CONFIG_WATCH_MS) */
    file_stamp_t watched[PROXY_CONFIG_MAX_FILES]; /* what each file looked like at the last load */
    uint64_t jwks_watched;                        /* ... and the file:// JWKS of RequestAuthentication (jwks_files) */
    admin_t *admin;
    worker_t **workers;
    int n_workers;
    runtime_t *rt; /* the current configuration (one reference) */
    tele_t *tele;
    bool draining;
    uint64_t reloads_ok, reloads_failed;
    identity_t *identity;      /* spec.identity's renewal, NULL without one */
    uv_async_t identity_async; /* a renewed certificate is waiting in identity_pending */
    uv_mutex_t identity_lock;  /* guards identity_pending */
    identity_cert_t *identity_pending;
    tls_stats_t tls_stats; /* handshakes, all workers */
    jwks_fetcher_t *jwks;  /* remote jwksUri keys (jwks_fetch.h) */
    char ready_why[JWKS_URI_MAX + 64];
} proxy_main_t;

/* Bind cfg's remote jwksUri rules to their sources (kept ones keep their keys) and apply spec.jwks. */
static void jwks_bind(jwks_fetcher_t *f, proxy_config_t *cfg)
{
    jwks_fetcher_configure(f, cfg->proxy.jwks_ca_file, cfg->proxy.jwks_refresh_ms);
    for (size_t i = 0; i < cfg->n_request_authentications; i++)
        for (size_t k = 0; k < cfg->request_authentications[i].n_rules; k++) {
            proxy_jwt_rule_t *r = &cfg->request_authentications[i].rules[k];
            if (r->jwks_remote && r->jwks_source == NULL)
                r->jwks_source = jwks_fetcher_bind(f, r->jwks_uri, r->fetch_timeout_ms);
        }
}

static uint64_t jwks_files(const proxy_main_t *m);

static void shutdown_start(proxy_main_t *m, const char *why)
{
    if (m->draining)
        return;
    m->draining = true;
    log_info("%s: draining", why);
    for (int i = 0; i < m->n_workers; i++)
        worker_stop(m->workers[i]);
    uv_close((uv_handle_t *)&m->sig_term, NULL);
    uv_close((uv_handle_t *)&m->sig_int, NULL);
    uv_close((uv_handle_t *)&m->sig_hup, NULL);
    uv_close((uv_handle_t *)&m->watch, NULL);
    if (m->identity != NULL) {
        identity_stop(m->identity); /* joined: no certificate comes after this */
        uv_close((uv_handle_t *)&m->identity_async, NULL);
    }
    if (m->admin != NULL) {
        admin_close(m->admin);
        m->admin = NULL;
    }
}

static void reload_error(void *ctx, const char *message)
{
    counts_t *c = ctx;
    c->errors++;
    log_error("reload: %s", message);
}

static void reload_warning(void *ctx, const char *message)
{
    counts_t *c = ctx;
    c->warnings++;
    log_warn("reload: %s", message);
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* What a reload cannot change while running; NULL when nothing of it changed. */
static const char *restart_needed(const proxy_spec_t *a, const proxy_spec_t *b)
{
    if (!same_text(a->outbound_listen.text, b->outbound_listen.text))
        return "spec.outbound.listen";
    if (!same_text(a->inbound_listen.text, b->inbound_listen.text) ||
        !same_text(a->inbound_forward_to.text, b->inbound_forward_to.text))
        return "spec.inbound";
    if (!same_text(a->admin_listen.text, b->admin_listen.text))
        return "spec.admin.listen";
    if (a->workers != b->workers)
        return "spec.workers";
    if (a->max_header_bytes != b->max_header_bytes || a->max_headers != b->max_headers ||
        a->max_uri_bytes != b->max_uri_bytes || a->header_timeout_ms != b->header_timeout_ms ||
        a->idle_timeout_ms != b->idle_timeout_ms || a->retry_buffer_bytes != b->retry_buffer_bytes ||
        a->linger_time_ms != b->linger_time_ms || a->linger_timeout_ms != b->linger_timeout_ms ||
        a->linger_bytes != b->linger_bytes || a->drain_timeout_ms != b->drain_timeout_ms)
        return "spec.limits or spec.drainTimeout";
    if (!same_text(a->otlp_endpoint, b->otlp_endpoint) || !same_text(a->otlp_ca_file, b->otlp_ca_file) ||
        a->flush_interval_ms != b->flush_interval_ms || !same_text(a->otlp_token_file, b->otlp_token_file) ||
        !same_text(a->otlp_cert_file, b->otlp_cert_file) || !same_text(a->otlp_key_file, b->otlp_key_file) ||
        a->otlp_identity_cert != b->otlp_identity_cert)
        return "spec.telemetry (otlpEndpoint, caFile, tokenFile, clientCertificate, flushInterval; the token and "
               "certificate files themselves are read again when they change)";
    const proxy_identity_t *x = &a->identity, *y = &b->identity;
    if (x->given != y->given || !same_text(x->spiffe_id, y->spiffe_id) ||
        !same_text(x->root_certificates, y->root_certificates) ||
        !same_text(x->certificate_chain, y->certificate_chain) || !same_text(x->private_key, y->private_key) ||
        !same_text(x->ca_address, y->ca_address) || !same_text(x->token_file, y->token_file) ||
        x->certificate_ttl_ms != y->certificate_ttl_ms)
        return "spec.identity (its files are re-read without a restart: SIGHUP or a change on disk)";
    return NULL;
}

/* SIGHUP: load the file again; the new configuration serves new requests, or the old one stays. */
static void reload(proxy_main_t *m)
{
    counts_t counts = {0, 0};
    proxy_config_t *cfg = proxy_config_load_files(m->paths, m->n_paths, reload_error, reload_warning, &counts);
    if (cfg == NULL) {
        m->reloads_failed++;
        log_error("reload refused: %s has %d error%s; the running configuration stays", m->path, counts.errors,
                  counts.errors == 1 ? "" : "s");
        return;
    }
    const char *what = restart_needed(&m->rt->cfg->proxy, &cfg->proxy);
    if (what != NULL) {
        m->reloads_failed++;
        log_error("reload refused: %s changed, which needs a restart; the running configuration stays", what);
        proxy_config_destroy(cfg);
        return;
    }
    jwks_bind(m->jwks, cfg);
    char err[256];
    runtime_t *rt = runtime_create(cfg, err, sizeof err);
    if (rt == NULL) {
        m->reloads_failed++;
        log_error("reload refused: %s; the running configuration stays", err);
        proxy_config_destroy(cfg);
        return;
    }
    for (int i = 0; i < m->n_workers; i++)
        worker_set_runtime(m->workers[i], rt);
    runtime_unref(m->rt);
    m->rt = rt;
    m->jwks_watched = jwks_files(m); /* as loaded */
    m->reloads_ok++;
    log_info("reloaded %s: %zu service%s, %zu virtual service%s, %zu destination rule%s", m->path, rt->cfg->n_services,
             rt->cfg->n_services == 1 ? "" : "s", rt->cfg->n_virtual_services,
             rt->cfg->n_virtual_services == 1 ? "" : "s", rt->cfg->n_destination_rules,
             rt->cfg->n_destination_rules == 1 ? "" : "s");
}

/*
 * A mounted ConfigMap changes with no one to send SIGHUP: the kubelet swaps a
 * symbolic link (..data) under the file. So the files are looked at every
 * CONFIG_WATCH_MS (stat through the links: device, inode, size and
 * modification time) and a change reloads them as SIGHUP does.
 */
#define CONFIG_WATCH_MS 2000

/* The stamps of the running configuration's JWKS files (file:// jwksUri), folded into one hash. */
static uint64_t jwks_files(const proxy_main_t *m)
{
    uint64_t h = 0;
    const proxy_config_t *cfg = m->rt != NULL ? m->rt->cfg : NULL;
    for (size_t i = 0; cfg != NULL && i < cfg->n_request_authentications; i++)
        for (size_t k = 0; k < cfg->request_authentications[i].n_rules; k++) {
            const char *uri = cfg->request_authentications[i].rules[k].jwks_uri;
            if (uri != NULL && strncmp(uri, "file://", 7) == 0) {
                file_stamp_t st = file_stamp(uri + 7);
                h = XXH64(&st, sizeof st, h);
            }
        }
    return h;
}

/* Note the files as they are; true when any differs from the last note. */
static bool files_changed(proxy_main_t *m)
{
    bool changed = false;
    uint64_t jwks = jwks_files(m);
    if (jwks != m->jwks_watched) { /* keys rotated: a reload reads them again */
        changed = true;
        m->jwks_watched = jwks;
    }
    for (size_t i = 0; i < m->n_paths; i++) {
        file_stamp_t st = file_stamp(m->paths[i]);
        if (!file_stamp_eq(&st, &m->watched[i])) {
            changed = true;
            m->watched[i] = st;
        }
    }
    return changed;
}

static void on_watch(uv_timer_t *t)
{
    proxy_main_t *m = t->data;
    if (!m->draining && files_changed(m)) {
        log_info("%s changed on disk: reloading", m->path);
        reload(m);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    proxy_main_t *m = s->data;
    if (signum == SIGHUP) {
        (void)files_changed(m); /* read now: the watch need not read them again */
        reload(m);
        if (m->identity != NULL)
            identity_wake(m->identity); /* files and roots read again now (a CA certificate is renewed) */
        jwks_fetcher_wake(m->jwks);     /* remote JWKS fetched again now; the keys held stay until then */
    } else
        shutdown_start(m, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- admin pages ---- */

static const char *admin_ready(void *ctx)
{
    proxy_main_t *m = ctx;
    if (m->draining)
        return "DRAINING\n";
    char uri[JWKS_URI_MAX + 1];
    if (!jwks_fetcher_settled(m->jwks, uri, sizeof uri)) { /* Envoy's listener also waits for its first fetch */
        snprintf(m->ready_why, sizeof m->ready_why, "WAITING for the first fetch of jwksUri %s\n", uri);
        return m->ready_why;
    }
    return NULL;
}

/* outrider_proxy_{local,global}_rate_limit_total{ratelimit,result}, per RateLimit document with such a block */
static void rate_limit_counters(buf_t *out, const runtime_t *rt, enum runtime_rl_kind kind)
{
    static const char *const results[RL_RESULTS] = {"allowed", "limited", "shadow_limited", "error"};
    const char *metric =
        kind == RL_LOCAL ? "outrider_proxy_local_rate_limit_total" : "outrider_proxy_global_rate_limit_total";
    const char *help = kind == RL_LOCAL ? "Requests seen by local rate limits, by result (shadow_limited: over the "
                                          "limit in shadow mode, let through)."
                                        : "Requests seen by global (Redis) rate limits, by result (error: Redis gave "
                                          "no answer; failureMode decided).";
    const proxy_config_t *cfg = rt->cfg;
    bool head = false;
    for (size_t i = 0; i < cfg->n_rate_limits; i++) {
        const proxy_rate_limit_t *rl = &cfg->rate_limits[i];
        if (!(kind == RL_LOCAL ? rl->local.given : rl->global.given))
            continue;
        if (!head) {
            buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", metric, help, metric);
            head = true;
        }
        /* a local bucket answers at once: it has no errors to count */
        for (int k = 0; k < (kind == RL_LOCAL ? RL_ERROR : RL_RESULTS); k++)
            buf_printf(out, "%s{ratelimit=\"%s\",result=\"%s\"} %llu\n", metric, rl->meta.name, results[k],
                       (unsigned long long)atomic_load(&rt->buckets[i].counts[kind][k]));
    }
}

/* `NAME{cluster="...",destination_service="..."` of a per-cluster series; the caller closes it. */
static void cluster_series(buf_t *out, const char *name, const runtime_t *rt, const router_cluster_t *cl)
{
    buf_printf(out, "%s{cluster=\"", name);
    buf_append_prom_label(out, cl->name, strlen(cl->name));
    buf_append_str(out, "\",destination_service=\"");
    const char *svc = runtime_destination_service(rt, cl);
    buf_append_prom_label(out, svc, strlen(svc));
    buf_append_char(out, '"');
}

/* outrider_proxy_outlier_*{cluster,destination_service}, per cluster that has outlier detection */
static void outlier_counters(buf_t *out, const runtime_t *rt)
{
    static const char *const names[] = {"outrider_proxy_outlier_ejections_total",
                                        "outrider_proxy_outlier_returns_total", "outrider_proxy_outlier_ejected"};
    static const char *const help[] = {"Endpoints ejected by outlier detection.",
                                       "Ejected endpoints that returned to the load-balancing pool.",
                                       "Endpoints ejected now (summed over workers)."};
    for (int k = 0; k < 3; k++) {
        bool head = false;
        for (size_t i = 0; i < router_cluster_count(rt->router); i++) {
            const router_cluster_t *cl = router_cluster(rt->router, i);
            if (cl->policy == NULL || !cl->policy->has_outlier)
                continue;
            if (!head) {
                buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", names[k], help[k], names[k],
                           k < 2 ? "counter" : "gauge");
                head = true;
            }
            unsigned long long v = k == 0   ? atomic_load(&rt->counters[i].n[RC_OUTLIER_EJECTION])
                                   : k == 1 ? atomic_load(&rt->counters[i].n[RC_OUTLIER_RETURN])
                                            : (unsigned long long)atomic_load(&rt->ejected[i]);
            cluster_series(out, names[k], rt, cl);
            buf_printf(out, "} %llu\n", v);
        }
    }
}

/*
 * Retries and mirrors per cluster (runtime.h's counters), every cluster
 * listed so that dashboards see zeros: the retry families for the outbound
 * clusters and the inbound one, the mirror family for the outbound ones
 * (a mirror always goes to a ServiceEntry).
 */
static void traffic_policy_counters(buf_t *out, const runtime_t *rt)
{
    static const struct {
        const char *name, *help;
        enum runtime_cluster_counter k;
    } retry[] = {
        {"outrider_proxy_upstream_rq_retry_total",
         "Retries sent to the cluster: every attempt of a request after its first (Envoy's upstream_rq_retry).",
         RC_RETRY},
        {"outrider_proxy_upstream_rq_retry_success_total",
         "Retried requests whose final attempt got a response the retry policy does not retry on (Envoy's "
         "upstream_rq_retry_success).",
         RC_RETRY_SUCCESS},
        {"outrider_proxy_upstream_rq_retry_limit_exceeded_total",
         "Requests whose last attempt failed in a way the retry policy retries on, with every allowed retry used "
         "(Envoy's upstream_rq_retry_limit_exceeded).",
         RC_RETRY_LIMIT_EXCEEDED},
    };
    size_t n = router_cluster_count(rt->router);
    for (size_t f = 0; f < sizeof retry / sizeof retry[0]; f++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", retry[f].name, retry[f].help, retry[f].name);
        for (size_t i = 0; i < n; i++) {
            const router_cluster_t *cl = router_cluster(rt->router, i);
            cluster_series(out, retry[f].name, rt, cl);
            buf_printf(out, "} %llu\n", (unsigned long long)atomic_load(&rt->counters[i].n[retry[f].k]));
        }
    }
    static const char mirror[] = "outrider_proxy_mirror_requests_total";
    buf_printf(out,
               "# HELP %s Copies of requests sent to this mirror cluster (VirtualService mirror); result=\"failed\" "
               "is a subset of result=\"sent\": copies not delivered, or whose upstream failed, timed out or "
               "answered 5xx.\n# TYPE %s counter\n",
               mirror, mirror);
    for (size_t i = 0; i < n; i++) {
        const router_cluster_t *cl = router_cluster(rt->router, i);
        if (cl->service == NULL)
            continue;
        cluster_series(out, mirror, rt, cl);
        buf_printf(out, ",result=\"sent\"} %llu\n",
                   (unsigned long long)atomic_load(&rt->counters[i].n[RC_MIRROR_SENT]));
        cluster_series(out, mirror, rt, cl);
        buf_printf(out, ",result=\"failed\"} %llu\n",
                   (unsigned long long)atomic_load(&rt->counters[i].n[RC_MIRROR_FAILED]));
    }
}

/* outrider_proxy_tls_* : the sidecar's handshakes, both sides, by result */
static void tls_counters(buf_t *out, tls_stats_t *s)
{
    static const char *const sides[2] = {"inbound", "outbound"};
    buf_append_str(out, "# HELP outrider_proxy_tls_handshakes_total TLS handshakes by side (inbound: clients of the "
                        "inbound listener; outbound: connections to upstreams) and result (ok, or why it failed: "
                        "unknown_ca, expired, san_mismatch, no_peer_certificate...).\n"
                        "# TYPE outrider_proxy_tls_handshakes_total counter\n");
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < TLS_STATS_RESULTS; r++)
            buf_printf(out, "outrider_proxy_tls_handshakes_total{side=\"%s\",result=\"%s\"} %llu\n", sides[d],
                       tls_stats_results[r], (unsigned long long)atomic_load(&s->handshakes[d][r]));
    buf_append_str(out, "# HELP outrider_proxy_tls_sessions_resumed_total Successful handshakes that resumed an "
                        "earlier session.\n# TYPE outrider_proxy_tls_sessions_resumed_total counter\n");
    for (int d = 0; d < 2; d++)
        buf_printf(out, "outrider_proxy_tls_sessions_resumed_total{side=\"%s\"} %llu\n", sides[d],
                   (unsigned long long)atomic_load(&s->resumed[d]));
    buf_printf(out,
               "# HELP outrider_proxy_inbound_plaintext_connections_total Inbound connections PeerAuthentication "
               "PERMISSIVE accepted in plain text.\n# TYPE outrider_proxy_inbound_plaintext_connections_total "
               "counter\noutrider_proxy_inbound_plaintext_connections_total %llu\n",
               (unsigned long long)atomic_load(&s->plaintext_permissive));
}

static void admin_stats(void *ctx, buf_t *out)
{
    proxy_main_t *m = ctx;
    tele_render_prometheus(m->tele, out);
    jwks_fetcher_metrics(m->jwks, out);
    buf_printf(out,
               "# HELP outrider_proxy_config_reloads_total Configuration reloads (SIGHUP) by result.\n"
               "# TYPE outrider_proxy_config_reloads_total counter\n"
               "outrider_proxy_config_reloads_total{result=\"ok\"} %llu\n"
               "outrider_proxy_config_reloads_total{result=\"refused\"} %llu\n"
               "# HELP outrider_proxy_workers Worker event loops.\n"
               "# TYPE outrider_proxy_workers gauge\n"
               "outrider_proxy_workers %d\n",
               (unsigned long long)m->reloads_ok, (unsigned long long)m->reloads_failed, m->n_workers);
    rate_limit_counters(out, m->rt, RL_LOCAL);
    rate_limit_counters(out, m->rt, RL_GLOBAL);
    authz_render_prometheus(m->rt->authz, out);
    outlier_counters(out, m->rt);
    traffic_policy_counters(out, m->rt);
    tls_counters(out, &m->tls_stats);
    if (m->identity != NULL)
        identity_render_prometheus(m->identity, out);
}

static void admin_config_dump(void *ctx, buf_t *out)
{
    proxy_main_t *m = ctx;
    proxy_config_to_json(m->rt->cfg, out);
    if (m->identity != NULL && out->len > 0 && out->data[out->len - 1] == '}') {
        /* the certificate in use: serial, validity, roots, renewals; never the key or the token */
        out->len--;
        buf_append_str(out, ",\"identityStatus\":");
        identity_describe(m->identity, NULL, out);
        buf_append_char(out, '}');
    }
    buf_append_str(out, "\n");
}

static void admin_quit(void *ctx)
{
    shutdown_start(ctx, "POST /quitquitquit");
}

static void print_listen(const char *what, const char *host, uint16_t port, const char *extra)
{
    int v6 = strchr(host, ':') != NULL;
    log_info("listening %s http://%s%s%s:%u%s", what, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port,
             extra != NULL ? extra : "");
}

/* ---- the sidecar's certificate ---- */

/* The renewal thread made a certificate: park it for the main loop (identity_async). */
static void identity_on_new(void *arg, identity_cert_t *c)
{
    proxy_main_t *m = arg;
    uv_mutex_lock(&m->identity_lock);
    identity_cert_t *old = m->identity_pending;
    m->identity_pending = c;
    uv_mutex_unlock(&m->identity_lock);
    identity_cert_unref(old);
    uv_async_send(&m->identity_async);
}

/* Main loop: hand the new certificate to every worker; open connections keep the one they began with. */
static void identity_install(uv_async_t *a)
{
    proxy_main_t *m = a->data;
    uv_mutex_lock(&m->identity_lock);
    identity_cert_t *c = m->identity_pending;
    m->identity_pending = NULL;
    uv_mutex_unlock(&m->identity_lock);
    if (c == NULL)
        return;
    for (int i = 0; i < m->n_workers; i++)
        worker_set_identity(m->workers[i], c->ctx); /* the renewal thread logged the certificate */
    tele_set_identity(m->tele, c->ctx);
    identity_cert_unref(c);
}

/*
 * The first certificate, before any listener serves: the files, or the
 * CA's answer, retried each second for IDENTITY_START_WAIT_MS (the CA may
 * be starting too). NULL with the last reason in err.
 */
#define IDENTITY_START_WAIT_MS 30000
static identity_cert_t *identity_first(identity_t *id, char *err, size_t errlen)
{
    uint64_t until = mono_now_ms() + IDENTITY_START_WAIT_MS;
    char last[IDENTITY_ERR_MAX] = "";
    for (;;) {
        identity_cert_t *c = identity_fetch(id, 0, err, errlen);
        if (c != NULL)
            return c;
        if (mono_now_ms() >= until)
            return NULL;
        if (strcmp(last, err) != 0) {
            log_warn("identity: %s; trying again each second for %ds", err, IDENTITY_START_WAIT_MS / 1000);
            snprintf(last, sizeof last, "%s", err);
        }
        uv_sleep(1000);
    }
}

static identity_t *identity_setup(const proxy_spec_t *ps, char *err, size_t errlen)
{
    static const char *const alpn[] = {PEER_ALPN, "http/1.1"}; /* ours first: a server chooses in its order */
    const proxy_identity_t *pi = &ps->identity;
    identity_opts_t io = {.trust_domain = pi->trust_domain,
                          .namespace = ps->meta.namespace != NULL ? ps->meta.namespace : "default",
                          .service_account = pi->service_account,
                          .roots_file = pi->root_certificates,
                          .cert_file = pi->certificate_chain,
                          .key_file = pi->private_key,
                          .ca_address = pi->ca_address,
                          .token_file = pi->token_file,
                          .ttl_s = (pi->certificate_ttl_ms + 999) / 1000,
                          .alpn = alpn,
                          .n_alpn = 2};
    return identity_create(&io, err, errlen);
}

/* Run the listeners on spec.workers threads until SIGTERM/SIGINT or /quitquitquit; returns the exit code. */
static int serve(proxy_config_t *cfg, const char *const *paths, size_t n_paths)
{
    const proxy_spec_t *ps = &cfg->proxy;
    proxy_main_t m;
    memset(&m, 0, sizeof m);
    m.paths = paths;
    m.n_paths = n_paths;
    static char shown[1024]; /* the files for messages, as long as the process runs (cfg->file goes with a reload) */
    snprintf(shown, sizeof shown, "%s", cfg->file);
    m.path = shown;
    char err[256];
    m.jwks = jwks_fetcher_create();
    jwks_bind(m.jwks, cfg);
    if (jwks_fetcher_start(m.jwks) != 0)
        log_fatal("cannot start the JWKS fetch thread");
    m.rt = runtime_create(cfg, err, sizeof err);
    if (m.rt == NULL) {
        log_error("%s: %s", m.path, err);
        proxy_config_destroy(cfg);
        jwks_fetcher_destroy(m.jwks);
        return 1;
    }
    ps = &m.rt->cfg->proxy;
    signal(SIGPIPE, SIG_IGN);

    worker_opts_t o;
    memset(&o, 0, sizeof o);
    o.outbound.host = ps->outbound_listen.host;
    o.outbound.port = ps->outbound_listen.port;
    if (ps->inbound_forward_to.text != NULL) {
        o.inbound.host = ps->inbound_listen.host;
        o.inbound.port = ps->inbound_listen.port;
    }
    o.limits = HTTP1_LIMITS_DEFAULT;
    o.limits.max_header_bytes = ps->max_header_bytes;
    o.limits.max_headers = ps->max_headers;
    o.limits.max_uri_bytes = ps->max_uri_bytes;
    o.header_timeout_ms = ps->header_timeout_ms;
    o.idle_timeout_ms = ps->idle_timeout_ms;
    o.drain_timeout_ms = ps->drain_timeout_ms;
    o.linger.time_ms = ps->linger_time_ms;
    o.linger.timeout_ms = ps->linger_timeout_ms;
    o.linger.bytes = ps->linger_bytes;
    o.retry_buffer_bytes = ps->retry_buffer_bytes ? ps->retry_buffer_bytes : 1; /* 0: nothing kept, no replays */
    o.rt = m.rt;
    o.tls_stats = &m.tls_stats;
    int rc = 0;
    identity_cert_t *cert = NULL;
    if (ps->identity.given) {
        char why[IDENTITY_ERR_MAX];
        m.identity = identity_setup(ps, why, sizeof why);
        if (m.identity != NULL)
            cert = identity_first(m.identity, why, sizeof why);
        if (cert == NULL) {
            log_error("identity %s: %s", ps->identity.spiffe_id, why);
            rc = 4;
        } else {
            log_info("identity: %s certificate serial %s from %s, valid until +%llds", cert->spiffe_id,
                     cert->serial_hex, cert->source, (long long)(cert->not_after - (int64_t)time(NULL)));
            o.mesh_tls = cert->ctx;
        }
    }
    if (worker_check_port_free(o.outbound.host, o.outbound.port, err, sizeof err) != 0) {
        log_error("outbound listener %s: %s", ps->outbound_listen.text, err);
        rc = 4;
    } else if (o.inbound.host != NULL && worker_check_port_free(o.inbound.host, o.inbound.port, err, sizeof err) != 0) {
        log_error("inbound listener %s: %s", ps->inbound_listen.text, err);
        rc = 4;
    } else if (worker_check_port_free(ps->admin_listen.host, ps->admin_listen.port, err, sizeof err) != 0) {
        log_error("admin listener %s: %s", ps->admin_listen.text, err);
        rc = 4;
    }

    tele_opts_t to;
    memset(&to, 0, sizeof to);
    if (ps->otlp_endpoint != NULL) {
        to.otlp_url = ps->otlp_endpoint;
        to.otlp_ca_file = ps->otlp_ca_file;
        to.otlp_token_file = ps->otlp_token_file;
        to.otlp_cert_file = ps->otlp_cert_file;
        to.otlp_key_file = ps->otlp_key_file;
        to.otlp_identity_cert = ps->otlp_identity_cert;
    }
    to.flush_interval_ms = ps->flush_interval_ms ? ps->flush_interval_ms : 1000;
    to.access_log = ps->access_log && ps->otlp_endpoint != NULL;
    to.self = &m.rt->self;
    to.self_principal = ps->identity.given ? ps->identity.spiffe_id : NULL;
    to.service_name = m.rt->service_name;
    to.instance_id = m.rt->self.name;
    if (rc == 0) {
        m.tele = tele_create(&to);
        if (m.tele != NULL && cert != NULL)
            tele_set_identity(m.tele, cert->ctx); /* a no-op unless spec.telemetry.clientCertificate is identity */
        if (m.tele == NULL || tele_start(m.tele) != 0) {
            log_error("cannot start the telemetry exporter");
            rc = 4;
        }
        o.tele = m.tele;
    }

    int n = ps->workers > 0 ? ps->workers : 1;
    m.workers = calloc((size_t)n, sizeof *m.workers);
    if (m.workers == NULL)
        log_fatal("out of memory");
    for (int i = 0; rc == 0 && i < n; i++) {
        m.workers[i] = worker_create(&o, err, sizeof err);
        if (m.workers[i] == NULL) {
            log_error("listener: %s", err);
            rc = 4;
            break;
        }
        m.n_workers++;
        /* port 0: the first worker picks the ports, the others share them through SO_REUSEPORT */
        o.outbound.port = worker_port(m.workers[i], WORKER_OUTBOUND);
        if (o.inbound.host != NULL)
            o.inbound.port = worker_port(m.workers[i], WORKER_INBOUND);
    }
    uv_loop_init(&m.loop);
    uv_timer_init(&m.loop, &m.watch); /* closed with the signals; started once the workers run */
    m.watch.data = &m;
    if (rc == 0) {
        admin_handlers_t h = {admin_ready, admin_stats, admin_config_dump, admin_quit, &m};
        m.admin = admin_create(&m.loop, ps->admin_listen.host, ps->admin_listen.port, &h, err, sizeof err);
        if (m.admin == NULL) {
            log_error("admin listener %s: %s", ps->admin_listen.text, err);
            rc = 4;
        }
    }
    int started = 0;
    if (rc == 0) {
        print_listen("outbound", o.outbound.host, o.outbound.port, NULL);
        if (o.inbound.host != NULL) {
            char extra[300];
            snprintf(extra, sizeof extra, " -> %s", ps->inbound_forward_to.text);
            print_listen("inbound", o.inbound.host, o.inbound.port, extra);
        }
        print_listen("admin", ps->admin_listen.host, admin_port(m.admin), NULL);
        log_info("%d worker%s; telemetry %s%s", n, n == 1 ? "" : "s", ps->otlp_endpoint ? "to " : "off",
                 ps->otlp_endpoint ? ps->otlp_endpoint : "");
        for (; started < m.n_workers; started++)
            if (worker_start(m.workers[started]) < 0) {
                log_error("cannot start worker thread %d", started);
                rc = 4;
                break;
            }
    }
    if (rc == 0) {
        uv_signal_init(&m.loop, &m.sig_term);
        uv_signal_init(&m.loop, &m.sig_int);
        uv_signal_init(&m.loop, &m.sig_hup);
        m.sig_term.data = m.sig_int.data = m.sig_hup.data = &m;
        uv_signal_start(&m.sig_term, on_signal, SIGTERM);
        uv_signal_start(&m.sig_int, on_signal, SIGINT);
        uv_signal_start(&m.sig_hup, on_signal, SIGHUP);
        (void)files_changed(&m); /* as loaded */
        uv_timer_start(&m.watch, on_watch, CONFIG_WATCH_MS, CONFIG_WATCH_MS);
        if (m.identity != NULL) {
            uv_mutex_init(&m.identity_lock);
            uv_async_init(&m.loop, &m.identity_async, identity_install);
            m.identity_async.data = &m;
            if (identity_start(m.identity, cert, identity_on_new, &m) != 0)
                log_error("identity: cannot start the renewal thread; the certificate will not be renewed");
        }
        uv_run(&m.loop, UV_RUN_DEFAULT);
    } else {
        for (int i = 0; i < started; i++)
            worker_stop(m.workers[i]);
        if (m.admin != NULL)
            admin_close(m.admin);
        uv_close((uv_handle_t *)&m.watch, NULL);
        uv_run(&m.loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&m.loop);
    for (int i = 0; i < started; i++)
        worker_join(m.workers[i]);
    for (int i = 0; i < m.n_workers; i++)
        worker_destroy(m.workers[i]);
    free(m.workers);
    if (m.tele != NULL) {
        tele_stop(m.tele, 2000);
        tele_destroy(m.tele);
    }
    identity_cert_unref(cert);
    if (m.identity != NULL) {
        identity_destroy(m.identity);
        identity_cert_unref(m.identity_pending);
        if (rc == 0)
            uv_mutex_destroy(&m.identity_lock);
    }
    runtime_unref(m.rt);
    jwks_fetcher_destroy(m.jwks); /* after every configuration: they hold its sources */
    if (rc == 0)
        log_info("drained, exiting");
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
        {"print-config", no_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    static const char *paths[PROXY_CONFIG_MAX_FILES];
    size_t n_paths = 0;
    int check = 0, print = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            if (n_paths == PROXY_CONFIG_MAX_FILES) {
                fprintf(stderr, "outrider-proxy: at most %d --config files\n", PROXY_CONFIG_MAX_FILES);
                return 2;
            }
            paths[n_paths++] = optarg;
            break;
        case 'k': check = 1; break;
        case 'p': print = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("outrider-proxy %s\n", OUTRIDER_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || n_paths == 0) {
        if (optind < argc)
            fprintf(stderr, "outrider-proxy: unexpected argument %s\n", argv[optind]);
        else
            fprintf(stderr, "outrider-proxy: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    counts_t counts = {0, 0};
    proxy_config_t *cfg = proxy_config_load_files(paths, n_paths, print_error, print_warning, &counts);
    char path[1024] = "";
    for (size_t i = 0; i < n_paths; i++)
        snprintf(path + strlen(path), sizeof path - strlen(path), "%s%s", i ? " + " : "", paths[i]);
    if (cfg == NULL) {
        fprintf(stderr, "%s: %d error%s, %d warning%s: configuration is not valid\n", path, counts.errors,
                counts.errors == 1 ? "" : "s", counts.warnings, counts.warnings == 1 ? "" : "s");
        return 1;
    }
    int rc = 0;
    if (print) {
        buf_t b = BUF_INIT;
        proxy_config_to_json(cfg, &b);
        printf("%s\n", b.data);
        buf_dispose(&b);
    } else if (check) {
        if (counts.warnings > 0)
            fprintf(stderr, "%s: %d warning%s\n", path, counts.warnings, counts.warnings == 1 ? "" : "s");
        printf("configuration is valid\n");
    } else {
        print_summary(cfg);
        return serve(cfg, paths, n_paths); /* takes cfg */
    }
    proxy_config_destroy(cfg);
    return rc;
}
