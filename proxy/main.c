/*
 * outrider-proxy: the sidecar. For now it loads and checks its
 * configuration only; the data path (listeners, router, upstreams) comes
 * next and replaces the "not built yet" exit below.
 *
 *   outrider-proxy --config FILE [--check] [--print-config]
 *
 * Exit codes: 0 valid (--check, --print-config), 1 configuration errors,
 * 2 usage, 3 valid configuration but no data path to run it yet.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

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
    } else {
        print_summary(cfg);
        fprintf(stderr, "outrider-proxy: the configuration is valid, but the data path is not built yet: "
                        "nothing to serve, exiting\n");
        rc = 3;
    }
    proxy_config_destroy(cfg);
    return rc;
}
