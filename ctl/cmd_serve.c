/*
 * cmd_serve: `outriderctl ca serve`: its command line, the server's own
 * TLS identity, and the main thread's signal loop (SIGHUP re-reads the
 * tokens file, SIGINT/SIGTERM stop). The HTTPS side is ca_server.h, which
 * also documents the /v1/sign protocol.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ca_server.h"
#include "cmd.h"
#include "files.h"
#include "hostport.h"
#include "log.h"
#include "pki.h"
#include "ttl.h"

#define CMD "ca serve"
#define DEFAULT_MAX_TTL "24h"
#define SELF_CERT_TTL_S ((int64_t)365 * 86400) /* the server's own certificate, cut to the CA's end */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: outriderctl ca serve --ca DIR --listen HOST:PORT --tokens FILE [--max-ttl DURATION]\n"
            "                            [--cert FILE --key FILE] [--dns NAME]...\n"
            "\n"
            "Sign the sidecars' certificate signing requests over HTTPS: POST /v1/sign with\n"
            "\"Authorization: Bearer TOKEN\" and a PEM CSR body, optional ?ttl=DURATION; the answer is\n"
            "the certificate chain (PEM, leaf then root) for the SPIFFE id the token is bound to.\n"
            "\n"
            "  --ca DIR            the CA made by `outriderctl ca init`\n"
            "  --listen HOST:PORT  an IPv4 or [IPv6] address, or localhost; port 0 = any free port\n"
            "                      (the \"listening https://...\" line on stderr says which)\n"
            "  --tokens FILE       one \"TOKEN NAMESPACE SERVICE-ACCOUNT\" a line, '#' comments; read again\n"
            "                      on SIGHUP (a bad file is refused and the loaded tokens stay)\n"
            "  --max-ttl DURATION  the longest certificate it signs: 90s, 30m, 24h... (default " DEFAULT_MAX_TTL ");\n"
            "                      longer ?ttl= requests are cut to it\n"
            "  --cert FILE         the server's TLS certificate (PEM), with --key FILE its key; without\n"
            "  --key FILE          them it issues itself one from the CA for the listen address and the\n"
            "                      --dns names, kept in memory only\n"
            "  --dns NAME          a DNS name clients use for this server (repeatable)\n"
            "\n"
            "Access lines and errors go to stderr; SIGINT or SIGTERM stops it.\n");
}

static void log_error_message(void *ctx, const char *message)
{
    (void)ctx;
    log_error("%s", message);
}

/* The SANs of the server's own certificate: the listen address, or loopback and the host name for a wildcard. */
static int self_names(const char *listen, const char **dns, size_t *n_dns, const char **ips, size_t *n_ips, char *host,
                      size_t hostlen, char *hostname, size_t hostnamelen)
{
    uint16_t port;
    const char *why;
    char err[PKI_ERR_MAX];
    if (hostport_split(listen, host, hostlen, &port, &why) != 0) {
        cmd_error(CMD, "--listen \"%s\": %s", listen, why);
        return -1;
    }
    struct sockaddr_storage ss;
    bool is_localhost = strcmp(host, "localhost") == 0;
    if (!is_localhost && hostport_sockaddr(host, port, &ss, NULL) != 0) {
        cmd_error(CMD,
                  "--listen \"%s\": the host must be an IPv4 or IPv6 address, or localhost (add --dns NAME for "
                  "the names clients use)",
                  listen);
        return -1;
    }
    bool wildcard = !is_localhost && (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0);
    if (is_localhost || wildcard) {
        dns[(*n_dns)++] = "localhost";
        ips[(*n_ips)++] = "127.0.0.1";
        ips[(*n_ips)++] = "::1";
        if (wildcard && gethostname(hostname, hostnamelen) == 0) {
            hostname[hostnamelen - 1] = '\0'; /* POSIX leaves a truncated name unterminated */
            if (strcmp(hostname, "localhost") != 0 && ident_check_dns_name(hostname, err, sizeof(err)) == 0)
                dns[(*n_dns)++] = hostname;
        }
    } else {
        ips[(*n_ips)++] = host;
    }
    return 0;
}

/* PEM cert and key for the server: from --cert/--key, checked to match, or issued now by the CA. */
static int tls_identity(const pki_ca_t *ca, const char *cert_file, const char *key_file, const char *listen,
                        const char **extra_dns, size_t n_extra, char **cert_pem, size_t *cert_len, char **key_pem,
                        size_t *key_len)
{
    char why[PKI_ERR_MAX];
    int rc = -1;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *certs = NULL;
    if (cert_file != NULL) {
        if ((certs = pki_read_certs(cert_file, why, sizeof(why))) == NULL) {
            cmd_error(CMD, "--cert: %s", why);
            goto out;
        }
        if ((*key_pem = files_read(key_file, PKI_PEM_MAX, key_len, why, sizeof(why))) == NULL) {
            cmd_error(CMD, "--key: %s", why);
            goto out;
        }
        if ((key = pki_key_from_pem(*key_pem, *key_len, why, sizeof(why))) == NULL) {
            cmd_error(CMD, "--key %s: %s", key_file, why);
            goto out;
        }
        if (X509_check_private_key(sk_X509_value(certs, 0), key) != 1) {
            ERR_clear_error();
            cmd_error(CMD, "--key %s is not the key of --cert %s", key_file, cert_file);
            goto out;
        }
        if ((*cert_pem = files_read(cert_file, PKI_PEM_MAX, cert_len, why, sizeof(why))) == NULL) {
            cmd_error(CMD, "--cert: %s", why);
            goto out;
        }
        log_info("tls: serving with %s", cert_file);
        rc = 0;
        goto out;
    }
    const char *dns[PKI_MAX_NAMES], *ips[4];
    size_t n_dns = 0, n_ips = 0;
    char host[256], hostname[256];
    if (self_names(listen, dns, &n_dns, ips, &n_ips, host, sizeof(host), hostname, sizeof(hostname)) != 0)
        goto out;
    for (size_t i = 0; i < n_extra && n_dns < PKI_MAX_NAMES; i++)
        dns[n_dns++] = extra_dns[i];
    pki_leaf_spec_t spec = {.dns = dns, .n_dns = n_dns, .ips = ips, .n_ips = n_ips};
    if (pki_validity(ca, (int64_t)time(NULL), SELF_CERT_TTL_S, true, &spec.not_before, &spec.not_after, why,
                     sizeof(why)) < 0) {
        cmd_error(CMD, "--ca: %s", why);
        goto out;
    }
    if ((key = pki_key_generate(why, sizeof(why))) == NULL ||
        (cert = pki_leaf_create(ca, key, &spec, why, sizeof(why))) == NULL ||
        (*cert_pem = pki_cert_pem(cert, cert_len, why, sizeof(why))) == NULL ||
        (*key_pem = pki_key_pem(key, key_len, why, sizeof(why))) == NULL) {
        cmd_error(CMD, "the server's own certificate: %s", why);
        goto out;
    }
    char serial[PKI_SERIAL_HEX_MAX], until[PKI_TIME_TEXT_MAX];
    pki_serial_hex(cert, serial, sizeof(serial));
    pki_time_format(spec.not_after, until, sizeof(until));
    log_info("tls: serving with a certificate from the CA for %s%s%s (serial %s, until %s; not written anywhere)",
             n_ips > 0 ? ips[0] : "", n_dns > 0 ? " " : "", n_dns > 0 ? dns[0] : "", serial, until);
    rc = 0;
out:
    if (rc != 0) {
        pki_pem_free(*key_pem, *key_len);
        pki_pem_free(*cert_pem, *cert_len);
        *key_pem = *cert_pem = NULL;
    }
    sk_X509_pop_free(certs, X509_free);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

int cmd_ca_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"ca", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'L'},
        {"tokens", required_argument, NULL, 't'},
        {"max-ttl", required_argument, NULL, 'm'},
        {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'K'},
        {"dns", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *ca_dir = NULL, *listen = NULL, *tokens_path = NULL, *max_ttl_text = DEFAULT_MAX_TTL;
    const char *cert_file = NULL, *key_file = NULL, *dns[PKI_MAX_NAMES];
    size_t n_dns = 0;
    int opt, errors = 0;
    char why[PKI_ERR_MAX];
    cmd_getopt_reset();
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': ca_dir = optarg; break;
        case 'L': listen = optarg; break;
        case 't': tokens_path = optarg; break;
        case 'm': max_ttl_text = optarg; break;
        case 'C': cert_file = optarg; break;
        case 'K': key_file = optarg; break;
        case 'd': /* room left for the listen address's own names */
            errors += cmd_add_dns(CMD, optarg, dns, &n_dns, PKI_MAX_NAMES - 4) != 0;
            break;
        case 'h': usage(stdout); return CMD_OK;
        default: return cmd_bad_option(CMD, argv, opt);
        }
    }
    static const char *const required[] = {"--ca DIR", "--listen HOST:PORT", "--tokens FILE"};
    const char *const given[] = {ca_dir, listen, tokens_path};
    errors += cmd_check_args(CMD, argc, argv, required, given, 3);
    if ((cert_file == NULL) != (key_file == NULL)) {
        cmd_error(CMD, "%s needs %s too", cert_file != NULL ? "--cert" : "--key",
                  cert_file != NULL ? "--key" : "--cert");
        errors++;
    }
    if (cert_file != NULL && n_dns > 0) {
        cmd_error(CMD, "--dns names go into the certificate the server issues itself; with --cert they do nothing");
        errors++;
    }
    int64_t max_ttl;
    if (cmd_parse_ttl(CMD, "--max-ttl", max_ttl_text, &max_ttl) != 0)
        errors++;
    if (errors > 0) {
        fprintf(stderr, "run `outriderctl %s --help` for its options\n", CMD);
        return CMD_USAGE;
    }

    pki_ca_t ca;
    if (pki_ca_load(ca_dir, &ca, why, sizeof(why)) != 0) {
        cmd_error(CMD, "--ca %s: %s", ca_dir, why);
        return CMD_FAIL;
    }
    int rc = CMD_FAIL;
    char *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    ca_server_t *srv = NULL;
    tokens_t *tokens = tokens_load(tokens_path, log_error_message, NULL);
    if (tokens == NULL) {
        cmd_error(CMD, "--tokens %s: not loaded (errors above)", tokens_path);
        goto out;
    }
    size_t n_tokens = tokens_count(tokens);
    struct stat st;
    if (stat(tokens_path, &st) == 0 && (st.st_mode & 0077) != 0)
        log_warn("tokens: %s can be read by other users (mode %04o); chmod 600 it", tokens_path,
                 (unsigned)(st.st_mode & 07777));
    if (tls_identity(&ca, cert_file, key_file, listen, dns, n_dns, &cert_pem, &cert_len, &key_pem, &key_len) != 0) {
        tokens_destroy(tokens);
        goto out;
    }

    /* block the signals before libmicrohttpd starts its thread, so that only sigwait below sees them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    ca_server_config_t cfg = {
        .ca = &ca, .listen = listen, .max_ttl_s = max_ttl, .tls_cert_pem = cert_pem, .tls_key_pem = key_pem};
    srv = ca_server_start(&cfg, tokens, why, sizeof(why));
    if (srv == NULL) {
        cmd_error(CMD, "%s", why);
        goto out;
    }
    char max_text[TTL_TEXT_MAX];
    log_info("ca serve: trust domain %s, %zu token%s from %s, certificates of at most %s", ca.trust_domain, n_tokens,
             n_tokens == 1 ? "" : "s", tokens_path, ttl_format(max_ttl, max_text, sizeof(max_text)));
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGINT || sig == SIGTERM) {
            log_info("received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        tokens_t *fresh = tokens_load(tokens_path, log_error_message, NULL);
        if (fresh == NULL) {
            log_error("tokens: %s not reloaded (errors above); still serving the %zu loaded before", tokens_path,
                      n_tokens);
            continue;
        }
        n_tokens = tokens_count(fresh);
        ca_server_set_tokens(srv, fresh);
        log_info("tokens: reloaded %s: %zu token%s", tokens_path, n_tokens, n_tokens == 1 ? "" : "s");
    }
    rc = CMD_OK;
out:
    ca_server_stop(srv);
    pki_pem_free(key_pem, key_len);
    pki_pem_free(cert_pem, cert_len);
    pki_ca_dispose(&ca);
    if (rc == CMD_OK)
        log_info("stopped");
    return rc;
}
