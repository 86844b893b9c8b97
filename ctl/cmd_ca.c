/*
 * cmd_ca: `outriderctl ca init`, the mesh's root CA.
 *
 * The root is an EC P-256 key and a self-signed certificate (pki.h has
 * its shape). The three files are written one by one, each atomically;
 * the key first, so a crash can leave a key without a certificate (init
 * refuses then, --force recovers) but never a certificate whose key is
 * lost.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "files.h"
#include "pki.h"
#include "ttl.h"

#define CMD "ca init"
#define DEFAULT_TRUST_DOMAIN "cluster.local"
#define DEFAULT_ROOT_TTL "87600h"

static void usage(FILE *out)
{
    fprintf(out, "usage: outriderctl ca init DIR [--trust-domain NAME] [--ttl DURATION] [--force]\n"
                 "\n"
                 "Make the mesh's root CA in DIR (created, mode 0700, when missing): an EC P-256 key\n"
                 "(DIR/root-key.pem, mode 0600), a self-signed CA certificate (DIR/root-cert.pem,\n"
                 "subject O=<trust domain>) and DIR/trust-domain.\n"
                 "\n"
                 "  --trust-domain NAME   the host part of every SPIFFE id the CA issues: lowercase\n"
                 "                        letters, digits, '-' and '.' (default " DEFAULT_TRUST_DOMAIN ")\n"
                 "  --ttl DURATION        the root's lifetime: 90s, 30m, 24h, 365d... (default " DEFAULT_ROOT_TTL ")\n"
                 "  --force               replace a CA already in DIR; what it issued stops verifying\n");
}

static int write_file(const char *dir, const char *name, const char *data, size_t len, mode_t mode)
{
    char path[4096], err[PKI_ERR_MAX];
    if (files_join(path, sizeof(path), dir, name, err, sizeof(err)) != 0 ||
        files_write(path, data, len, mode, err, sizeof(err)) != 0) {
        cmd_error(CMD, "%s", err);
        return -1;
    }
    return 0;
}

int cmd_ca_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"trust-domain", required_argument, NULL, 't'},
        {"ttl", required_argument, NULL, 'l'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *trust_domain = DEFAULT_TRUST_DOMAIN, *ttl_text = DEFAULT_ROOT_TTL, *dir = NULL;
    bool force = false;
    int opt, errors = 0;
    cmd_getopt_reset();
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 't': trust_domain = optarg; break;
        case 'l': ttl_text = optarg; break;
        case 'f': force = true; break;
        case 'h': usage(stdout); return CMD_OK;
        default: return cmd_bad_option(CMD, argv, opt);
        }
    }
    if (optind < argc)
        dir = argv[optind++];
    if (dir == NULL) {
        cmd_error(CMD, "missing DIR, the directory for the CA");
        errors++;
    }
    if (optind < argc) {
        cmd_error(CMD, "unexpected argument \"%s\" (one DIR only)", argv[optind]);
        errors++;
    }
    char why[PKI_ERR_MAX];
    if (ident_check_trust_domain(trust_domain, why, sizeof(why)) != 0) {
        cmd_error(CMD, "--trust-domain \"%s\": %s", trust_domain, why);
        errors++;
    }
    int64_t ttl;
    if (cmd_parse_ttl(CMD, "--ttl", ttl_text, &ttl) != 0)
        errors++;
    if (errors > 0) {
        fprintf(stderr, "run `outriderctl %s --help` for its options\n", CMD);
        return CMD_USAGE;
    }

    static const char *const files[] = {PKI_ROOT_KEY, PKI_ROOT_CERT, PKI_TRUST_DOMAIN_FILE};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && !force; i++) {
        char path[4096];
        if (files_join(path, sizeof(path), dir, files[i], why, sizeof(why)) != 0) {
            cmd_error(CMD, "%s", why);
            return CMD_FAIL;
        }
        if (files_exists(path)) {
            cmd_error(CMD,
                      "%s already holds a CA (%s exists); --force replaces it, and every certificate it issued "
                      "stops verifying",
                      dir, path);
            return CMD_FAIL;
        }
    }
    if (files_ensure_dir(dir, 0700, why, sizeof(why)) != 0) {
        cmd_error(CMD, "%s", why);
        return CMD_FAIL;
    }

    int rc = CMD_FAIL;
    X509 *cert = NULL;
    char *key_pem = NULL, *cert_pem = NULL;
    size_t key_len = 0, cert_len = 0;
    int64_t now = (int64_t)time(NULL);
    EVP_PKEY *key = pki_key_generate(why, sizeof(why));
    if (key == NULL ||
        (cert = pki_root_create(key, trust_domain, now - PKI_BACKDATE_S, now + ttl, why, sizeof(why))) == NULL ||
        (key_pem = pki_key_pem(key, &key_len, why, sizeof(why))) == NULL ||
        (cert_pem = pki_cert_pem(cert, &cert_len, why, sizeof(why))) == NULL) {
        cmd_error(CMD, "%s", why);
        goto out;
    }
    char td_line[IDENT_TRUST_DOMAIN_MAX + 2];
    int td_len = snprintf(td_line, sizeof(td_line), "%s\n", trust_domain);
    if (write_file(dir, PKI_ROOT_KEY, key_pem, key_len, 0600) != 0 ||
        write_file(dir, PKI_ROOT_CERT, cert_pem, cert_len, 0644) != 0 ||
        write_file(dir, PKI_TRUST_DOMAIN_FILE, td_line, (size_t)td_len, 0644) != 0)
        goto out;

    char serial[PKI_SERIAL_HEX_MAX], until[PKI_TIME_TEXT_MAX];
    pki_serial_hex(cert, serial, sizeof(serial));
    pki_time_format(now + ttl, until, sizeof(until));
    printf("created a root CA for trust domain %s in %s\n"
           "  %s/%s  serial %s, valid until %s\n"
           "  %s/%s   mode 0600: keep it secret, it signs every workload's identity\n",
           trust_domain, dir, dir, PKI_ROOT_CERT, serial, until, dir, PKI_ROOT_KEY);
    rc = CMD_OK;
out:
    pki_pem_free(key_pem, key_len);
    pki_pem_free(cert_pem, cert_len);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}
