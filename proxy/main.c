/*
 * outrider-proxy: the sidecar. It loads and checks its configuration, then
 * runs spec.workers worker threads (proxy/worker.h), each with its own
 * SO_REUSEPORT inbound listener forwarding to spec.inbound.forwardTo. The
 * main thread only waits for SIGTERM/SIGINT on a uv loop of its own, asks
 * every worker to drain, joins them and exits 0. The outbound listener,
 * router and admin endpoint come next.
 *
 *   outrider-proxy --config FILE [--check] [--print-config]
 *
 * Exit codes: 0 valid (--check, --print-config) or drained after SIGTERM,
 * 1 configuration errors, 2 usage, 3 valid configuration but nothing the
 * data path can serve yet (no inbound), 4 listeners could not start.
 */
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"
#include "worker.h"

#include "buf.h"
#include "config.h"
#include "config_json.h"

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
    fprintf(out, "usage: outrider-proxy --config FILE [--check] [--print-config]\n"
                 "  --config FILE    the proxy's YAML: one kind: Proxy document plus Istio ServiceEntry,\n"
                 "                   VirtualService and DestinationRule documents\n"
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

static int resolve(const proxy_hostport_t *hp, struct sockaddr_storage *out)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)hp->port);
    int rc = getaddrinfo(hp->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        log_error("cannot resolve %s: %s", hp->text, rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
    worker_t **workers = s->data;
    log_info("signal %d: draining", signum);
    for (size_t i = 0; workers[i] != NULL; i++)
        worker_stop(workers[i]);
    uv_close((uv_handle_t *)&((uv_signal_t *)s->loop->data)[0], NULL);
    uv_close((uv_handle_t *)&((uv_signal_t *)s->loop->data)[1], NULL);
}

/* Run the inbound listener on spec.workers threads until SIGTERM/SIGINT; returns the exit code. */
static int serve(const proxy_config_t *cfg)
{
    const proxy_spec_t *ps = &cfg->proxy;
    worker_opts_t o;
    memset(&o, 0, sizeof o);
    o.listen_host = ps->inbound_listen.host;
    o.listen_port = ps->inbound_listen.port;
    o.limits = HTTP1_LIMITS_DEFAULT;
    if (resolve(&ps->inbound_forward_to, &o.forward_to) < 0)
        return 4;
    signal(SIGPIPE, SIG_IGN);
    int n = ps->workers > 0 ? ps->workers : 1;
    worker_t **workers = calloc((size_t)n + 1, sizeof *workers);
    if (workers == NULL)
        log_fatal("out of memory");
    int rc = 0, started = 0;
    char err[256];
    if (worker_check_port_free(&o, err, sizeof err) != 0) {
        log_error("inbound listener %s: %s", ps->inbound_listen.text, err);
        rc = 4;
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        workers[i] = worker_create(&o, err, sizeof err);
        if (workers[i] == NULL) {
            log_error("inbound listener %s: %s", ps->inbound_listen.text, err);
            rc = 4;
            break;
        }
        /* port 0: the first worker picks the port, the others share it through SO_REUSEPORT */
        o.listen_port = worker_port(workers[i]);
    }
    if (rc == 0) {
        int v6 = strchr(ps->inbound_listen.host, ':') != NULL;
        log_info("listening inbound http://%s%s%s:%u -> %s (%d worker%s)", v6 ? "[" : "", ps->inbound_listen.host,
                 v6 ? "]" : "", (unsigned)o.listen_port, ps->inbound_forward_to.text, n, n == 1 ? "" : "s");
        for (; started < n; started++)
            if (worker_start(workers[started]) < 0) {
                log_error("cannot start worker thread %d", started);
                rc = 4;
                break;
            }
    }
    if (rc == 0) {
        uv_loop_t loop;
        uv_signal_t sig[2];
        uv_loop_init(&loop);
        loop.data = sig;
        uv_signal_init(&loop, &sig[0]);
        uv_signal_init(&loop, &sig[1]);
        sig[0].data = sig[1].data = workers;
        uv_signal_start(&sig[0], on_signal, SIGTERM);
        uv_signal_start(&sig[1], on_signal, SIGINT);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    } else {
        for (int i = 0; i < started; i++)
            worker_stop(workers[i]);
    }
    for (int i = 0; i < started; i++)
        worker_join(workers[i]);
    for (int i = 0; i < n; i++)
        worker_destroy(workers[i]);
    free(workers);
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
    const char *path = NULL;
    int check = 0, print = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'k': check = 1; break;
        case 'p': print = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("outrider-proxy %s\n", OUTRIDER_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || path == NULL) {
        if (optind < argc)
            fprintf(stderr, "outrider-proxy: unexpected argument %s\n", argv[optind]);
        else
            fprintf(stderr, "outrider-proxy: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    counts_t counts = {0, 0};
    proxy_config_t *cfg = proxy_config_load(path, print_error, print_warning, &counts);
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
    } else if (cfg->proxy.inbound_forward_to.text == NULL) {
        print_summary(cfg);
        fprintf(stderr, "outrider-proxy: the configuration is valid, but it has no spec.inbound, and the "
                        "outbound data path is not built yet: nothing to serve, exiting\n");
        rc = 3;
    } else {
        rc = serve(cfg);
    }
    proxy_config_destroy(cfg);
    return rc;
}
