/*
 * outrider-collector: command line, configuration, start-up and shutdown.
 *
 * The main thread only loads the configuration, starts the listeners and
 * then waits for SIGINT/SIGTERM, expiring stale metric series every few
 * seconds and reading ingest.auth.tokens and the ingest.tls.* files again
 * on SIGHUP; all request work happens on the HTTP threads.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector.h"
#include "ingest_auth.h"
#include "ingest_tls.h"
#include "log.h"
#include "metric_store.h"
#include "query_peers.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: outrider-collector [--config FILE] [--zipkin-listen HOST:PORT] [--otlp-listen HOST:PORT]\n"
                 "                          [--max-spans N] [--set NAME=VALUE]... [--check] [--print-settings]\n"
                 "\n"
                 "  --config FILE           YAML settings file (see --print-settings for every setting)\n"
                 "  --zipkin-listen H:P     Zipkin API, UI paths, /metrics (default 0.0.0.0:9411; port 0 = any free)\n"
                 "  --otlp-listen H:P       OTLP/HTTP ingest (default 0.0.0.0:4318; port 0 = any free)\n"
                 "  --max-spans N           spans kept in the trace store (default 1000000)\n"
                 "  --set NAME=VALUE        any setting by its dotted name, e.g. --set store.maxBytes=1GiB\n"
                 "  --check                 validate the configuration and exit (0 = valid)\n"
                 "  --print-settings        print the settings reference (Markdown) and exit\n");
}

static void log_reload_error(void *ctx, const char *message)
{
    (void)ctx;
    log_error("ingest.auth.tokens: %s", message);
}

static void print_error(void *ctx, const char *message)
{
    int *count = ctx;
    (*count)++;
    fprintf(stderr, "%s\n", message);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},      {"zipkin-listen", required_argument, NULL, 'z'},
        {"otlp-listen", required_argument, NULL, 'o'}, {"max-spans", required_argument, NULL, 'm'},
        {"set", required_argument, NULL, 's'},         {"check", no_argument, NULL, 'k'},
        {"print-settings", no_argument, NULL, 'p'},    {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},           {NULL, 0, NULL, 0},
    };
    collector_t c;
    memset(&c, 0, sizeof(c));
    collector_config_init(&c.cfg);
    const char *config_path = NULL;
    int check = 0, errors = 0, opt;
    /* flags override the file, so remember them and apply after loading it */
    struct {
        const char *name;
        char *value;
    } overrides[64];
    int n_overrides = 0;

    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        const char *name = NULL;
        switch (opt) {
        case 'c': config_path = optarg; continue;
        case 'z': name = "zipkin.listen"; break;
        case 'o': name = "otlp.listen"; break;
        case 'm': name = "store.maxSpans"; break;
        case 's': name = ""; break;
        case 'k': check = 1; continue;
        case 'p':
            settings_print_reference(collector_settings, collector_settings_count, stdout);
            collector_config_dispose(&c.cfg);
            return 0;
        case 'h':
            usage(stdout);
            collector_config_dispose(&c.cfg);
            return 0;
        case 'v':
            printf("outrider-collector %s\n", OUTRIDER_VERSION);
            collector_config_dispose(&c.cfg);
            return 0;
        default:
            usage(stderr);
            collector_config_dispose(&c.cfg);
            return 2;
        }
        if (n_overrides == (int)(sizeof(overrides) / sizeof(overrides[0]))) {
            fprintf(stderr, "too many settings on the command line\n");
            collector_config_dispose(&c.cfg);
            return 2;
        }
        overrides[n_overrides].name = name;
        overrides[n_overrides].value = optarg;
        n_overrides++;
    }
    if (optind < argc) {
        fprintf(stderr, "unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        collector_config_dispose(&c.cfg);
        return 2;
    }
    if (config_path != NULL) {
        int rc =
            settings_load_yaml(collector_settings, collector_settings_count, &c.cfg, config_path, print_error, &errors);
        if (rc < 0 && errors == 0)
            errors = 1;
    }
    for (int i = 0; i < n_overrides; i++) {
        const char *name = overrides[i].name;
        char *value = overrides[i].value;
        char namebuf[128];
        if (*name == '\0') {
            char *eq = strchr(value, '=');
            if (eq == NULL || (size_t)(eq - value) >= sizeof(namebuf)) {
                fprintf(stderr, "--set %s: expected NAME=VALUE\n", value);
                errors++;
                continue;
            }
            memcpy(namebuf, value, (size_t)(eq - value));
            namebuf[eq - value] = '\0';
            name = namebuf;
            value = eq + 1;
        }
        settings_set(collector_settings, collector_settings_count, &c.cfg, name, value, print_error, &errors);
    }
    int level = log_level_parse(c.cfg.log_level);
    if (level < 0) {
        fprintf(stderr, "log.level: expected debug, info, warn or error (got \"%s\")\n", c.cfg.log_level);
        errors++;
    }
    for (size_t i = 0; i < c.cfg.query_peers.n; i++) {
        query_peer_spec_t spec;
        const char *why;
        if (query_peer_parse(c.cfg.query_peers.items[i], &spec, &why) != 0) {
            fprintf(stderr, "query.peers: \"%s\": %s\n", c.cfg.query_peers.items[i], why);
            errors++;
        }
    }
    collector_config_check(&c.cfg, print_error, &errors); /* counts through print_error */
    if (errors == 0 && collector_apply_role(&c.cfg) != 0)
        errors++;
    if (errors > 0) {
        fprintf(stderr, "outrider-collector: %d configuration error%s\n", errors, errors == 1 ? "" : "s");
        collector_config_dispose(&c.cfg);
        return 1;
    }
    if (check) {
        printf("configuration is valid\n");
        collector_config_dispose(&c.cfg);
        return 0;
    }
    log_set_level((enum log_level)level);
    if (c.cfg.auth_tokens[0] != '\0' && c.cfg.tls_cert_file[0] == '\0')
        log_warn("ingest.auth.tokens is set without ingest.tls.certFile: bearer tokens cross the network in clear "
                 "text");

    /* block the signals before any thread starts so that only sigtimedwait sees them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (collector_init(&c) != 0) {
        collector_dispose(&c);
        collector_config_dispose(&c.cfg);
        return 1;
    }
    uint16_t zport = 0, oport = 0;
    server_t *srv = server_start(&c, &zport, &oport);
    if (srv == NULL) {
        collector_dispose(&c);
        collector_config_dispose(&c.cfg);
        return 1;
    }
    if (c.cfg.role_id == ROLE_ALL || c.cfg.role_id == ROLE_STORE)
        log_info("outrider-collector %s ready, role %s: store bound %llu spans / %llu bytes, %llu HTTP threads per "
                 "listener",
                 OUTRIDER_VERSION, c.cfg.role, (unsigned long long)c.cfg.max_spans,
                 (unsigned long long)c.cfg.max_store_bytes, (unsigned long long)c.cfg.threads);
    else /* nothing is stored: the bound would mislead */
        log_info("outrider-collector %s ready, role %s: %llu HTTP threads per listener", OUTRIDER_VERSION, c.cfg.role,
                 (unsigned long long)c.cfg.threads);

    for (;;) {
        struct timespec wait = {5, 0};
        int sig = sigtimedwait(&sigs, NULL, &wait);
        if (sig == SIGINT || sig == SIGTERM) {
            log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (sig == SIGHUP) {
            int tokens = ingest_auth_tokens_required(c.auth), tls = c.tls != NULL;
            if (tokens || tls) {
                log_info("SIGHUP: reading %s again (other settings need a restart)",
                         tokens && tls ? "ingest.auth.tokens and the ingest.tls.* files"
                         : tokens      ? "ingest.auth.tokens"
                                       : "the ingest.tls.* files (certFile, keyFile, clientCaFile)");
            } else {
                log_info("SIGHUP: nothing to reload (only ingest.auth.tokens and the ingest.tls.* files are read "
                         "again, and neither is set); restart the collector to apply other settings");
            }
            if (tokens)
                ingest_auth_reload(c.auth, log_reload_error, NULL);
            if (tls) {
                char why[1024];
                ingest_tls_reload(c.tls, why, sizeof(why)); /* logs either way */
            }
        }
        metric_store_expire(c.metrics, collector_now_ms());
    }
    server_stop(srv);
    collector_dispose(&c);
    collector_config_dispose(&c.cfg);
    log_info("stopped");
    return 0;
}
