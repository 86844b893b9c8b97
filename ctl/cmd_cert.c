/*
 * cmd_cert: `outriderctl cert issue` and `outriderctl cert inspect`.
 *
 * issue makes a workload's key and certificate from a CA directory, the
 * files a sidecar reads (Istio's names): key.pem, cert-chain.pem (the
 * leaf alone: the root signs directly, so there is no intermediate to
 * send) and root-cert.pem (the trust anchor for its peers). A rerun
 * replaces them, each file atomically.
 *
 * inspect prints what a certificate certifies, and with --ca whether it
 * chains to that root now.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cmd.h"
#include "files.h"
#include "pki.h"
#include "ttl.h"

#define DEFAULT_LEAF_TTL "24h"

static void issue_usage(FILE *out)
{
    fprintf(out,
            "usage: outriderctl cert issue --ca DIR --namespace NS --service-account SA [--ttl DURATION]\n"
            "                              [--out DIR] [--dns NAME]...\n"
            "\n"
            "Issue a workload certificate for spiffe://<trust domain>/ns/NS/sa/SA from the CA in DIR,\n"
            "with a new EC P-256 key. Writes key.pem (mode 0600), cert-chain.pem and root-cert.pem.\n"
            "\n"
            "  --ca DIR                the CA made by `outriderctl ca init`\n"
            "  --namespace NS          the workload's Kubernetes namespace (lowercase letters, digits, '-';\n"
            "                          at most 63 bytes)\n"
            "  --service-account SA    its Kubernetes service account (same rules)\n"
            "  --ttl DURATION          lifetime: 90s, 30m, 24h, 365d... (default " DEFAULT_LEAF_TTL "); it may not\n"
            "                          outlast the CA\n"
            "  --out DIR               where the files go (default: the current directory; created, mode 0755,\n"
            "                          when missing)\n"
            "  --dns NAME              also certify DNS name NAME; repeatable, at most %d\n",
            PKI_MAX_NAMES);
}

static int write_out(const char *dir, const char *name, const char *data, size_t len, mode_t mode)
{
    char path[4096], err[PKI_ERR_MAX];
    if (files_join(path, sizeof(path), dir, name, err, sizeof(err)) != 0 ||
        files_write(path, data, len, mode, err, sizeof(err)) != 0) {
        cmd_error("cert issue", "%s", err);
        return -1;
    }
    return 0;
}

int cmd_cert_issue(int argc, char **argv)
{
    static const char *const cmd = "cert issue";
    static const struct option opts[] = {
        {"ca", required_argument, NULL, 'c'},
        {"namespace", required_argument, NULL, 'n'},
        {"service-account", required_argument, NULL, 's'},
        {"ttl", required_argument, NULL, 'l'},
        {"out", required_argument, NULL, 'o'},
        {"dns", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *ca_dir = NULL, *ns = NULL, *sa = NULL, *ttl_text = DEFAULT_LEAF_TTL, *out_dir = ".";
    const char *dns[PKI_MAX_NAMES];
    size_t n_dns = 0;
    int opt, errors = 0;
    char why[PKI_ERR_MAX];
    cmd_getopt_reset();
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': ca_dir = optarg; break;
        case 'n': ns = optarg; break;
        case 's': sa = optarg; break;
        case 'l': ttl_text = optarg; break;
        case 'o': out_dir = optarg; break;
        case 'd': errors += cmd_add_dns(cmd, optarg, dns, &n_dns, PKI_MAX_NAMES) != 0; break;
        case 'h': issue_usage(stdout); return CMD_OK;
        default: return cmd_bad_option(cmd, argv, opt);
        }
    }
    static const char *const required[] = {"--ca", "--namespace", "--service-account"};
    const char *const given[] = {ca_dir, ns, sa};
    errors += cmd_check_args(cmd, argc, argv, required, given, 3);
    if (ns != NULL && ident_check_label(ns, why, sizeof(why)) != 0) {
        cmd_error(cmd, "--namespace \"%s\": %s", ns, why);
        errors++;
    }
    if (sa != NULL && ident_check_label(sa, why, sizeof(why)) != 0) {
        cmd_error(cmd, "--service-account \"%s\": %s", sa, why);
        errors++;
    }
    int64_t ttl;
    if (cmd_parse_ttl(cmd, "--ttl", ttl_text, &ttl) != 0)
        errors++;
    if (errors > 0) {
        fprintf(stderr, "run `outriderctl %s --help` for its options\n", cmd);
        return CMD_USAGE;
    }

    int rc = CMD_FAIL;
    pki_ca_t ca;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char *key_pem = NULL, *cert_pem = NULL, *root_pem = NULL;
    size_t key_len = 0, cert_len = 0, root_len = 0;
    if (pki_ca_load(ca_dir, &ca, why, sizeof(why)) != 0) {
        cmd_error(cmd, "--ca %s: %s", ca_dir, why);
        return CMD_FAIL;
    }
    char id[IDENT_SPIFFE_ID_MAX];
    if (ident_spiffe_id(id, sizeof(id), ca.trust_domain, ns, sa, why, sizeof(why)) != 0) {
        cmd_error(cmd, "%s", why);
        goto out;
    }
    pki_leaf_spec_t spec = {.spiffe_id = id, .dns = dns, .n_dns = n_dns};
    int64_t now = (int64_t)time(NULL);
    if (pki_validity(&ca, now, ttl, false, &spec.not_before, &spec.not_after, why, sizeof(why)) != 0) {
        cmd_error(cmd, "--ttl %s: %s", ttl_text, why);
        goto out;
    }
    if ((key = pki_key_generate(why, sizeof(why))) == NULL ||
        (cert = pki_leaf_create(&ca, key, &spec, why, sizeof(why))) == NULL ||
        (key_pem = pki_key_pem(key, &key_len, why, sizeof(why))) == NULL ||
        (cert_pem = pki_cert_pem(cert, &cert_len, why, sizeof(why))) == NULL ||
        (root_pem = pki_cert_pem(ca.cert, &root_len, why, sizeof(why))) == NULL) {
        cmd_error(cmd, "%s", why);
        goto out;
    }
    if (files_ensure_dir(out_dir, 0755, why, sizeof(why)) != 0) {
        cmd_error(cmd, "--out: %s", why);
        goto out;
    }
    /* the certificate after its key: a reader that sees the new certificate finds the matching key */
    if (write_out(out_dir, "key.pem", key_pem, key_len, 0600) != 0 ||
        write_out(out_dir, "cert-chain.pem", cert_pem, cert_len, 0644) != 0 ||
        write_out(out_dir, "root-cert.pem", root_pem, root_len, 0644) != 0)
        goto out;
    char serial[PKI_SERIAL_HEX_MAX], from[PKI_TIME_TEXT_MAX], until[PKI_TIME_TEXT_MAX];
    pki_serial_hex(cert, serial, sizeof(serial));
    pki_time_format(spec.not_before, from, sizeof(from));
    pki_time_format(spec.not_after, until, sizeof(until));
    printf("issued %s\n  serial %s, valid %s to %s\n  %s/key.pem (mode 0600), %s/cert-chain.pem, %s/root-cert.pem\n",
           id, serial, from, until, out_dir, out_dir, out_dir);
    rc = CMD_OK;
out:
    pki_pem_free(key_pem, key_len);
    pki_pem_free(cert_pem, cert_len);
    pki_pem_free(root_pem, root_len);
    X509_free(cert);
    EVP_PKEY_free(key);
    pki_ca_dispose(&ca);
    return rc;
}

static void inspect_usage(FILE *out)
{
    fprintf(out, "usage: outriderctl cert inspect FILE [--ca DIR]\n"
                 "\n"
                 "Print the subject, SPIFFE id, DNS names, IP addresses and validity of the first certificate\n"
                 "in the PEM FILE (later ones are taken as its chain).\n"
                 "\n"
                 "  --ca DIR   also check that it chains to DIR/root-cert.pem (or to DIR itself when it is a\n"
                 "             file) and is valid now; exit 1 when it does not\n");
}

static void print_name(const char *label, const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = 0;
    if (bio != NULL && X509_NAME_entry_count(name) > 0 &&
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
        n = BIO_get_mem_data(bio, &data);
    if (n > 0)
        printf("%-12s %.*s\n", label, (int)n, data);
    else
        printf("%-12s (empty)\n", label);
    BIO_free(bio);
    ERR_clear_error();
}

static void print_list(const char *label, char **items, size_t n)
{
    printf("%-12s ", label);
    if (n == 0)
        printf("-");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", items[i]);
    printf("\n");
}

static void print_key(X509 *cert)
{
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    char group[64];
    if (pub == NULL)
        printf("%-12s unreadable\n", "key:");
    else if (EVP_PKEY_is_a(pub, "EC") && EVP_PKEY_get_group_name(pub, group, sizeof(group), NULL) == 1)
        printf("%-12s EC %s\n", "key:", group);
    else
        printf("%-12s %s %d bits\n", "key:", EVP_PKEY_get0_type_name(pub), EVP_PKEY_get_bits(pub));
    ERR_clear_error();
}

int cmd_cert_inspect(int argc, char **argv)
{
    static const char *const cmd = "cert inspect";
    static const struct option opts[] = {
        {"ca", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *ca = NULL;
    int opt;
    char why[PKI_ERR_MAX];
    cmd_getopt_reset();
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': ca = optarg; break;
        case 'h': inspect_usage(stdout); return CMD_OK;
        default: return cmd_bad_option(cmd, argv, opt);
        }
    }
    if (optind < argc)
        file = argv[optind++];
    if (file == NULL || optind < argc) {
        if (file == NULL)
            cmd_error(cmd, "missing FILE, a PEM certificate");
        else
            cmd_error(cmd, "unexpected argument \"%s\" (one FILE only)", argv[optind]);
        fprintf(stderr, "run `outriderctl %s --help` for its options\n", cmd);
        return CMD_USAGE;
    }

    STACK_OF(X509) *certs = pki_read_certs(file, why, sizeof(why)), *roots = NULL;
    if (certs == NULL) {
        cmd_error(cmd, "%s", why);
        return CMD_FAIL;
    }
    X509 *leaf = sk_X509_value(certs, 0);
    pki_names_t names;
    pki_names_get(leaf, &names);
    char serial[PKI_SERIAL_HEX_MAX], spiffe[PKI_ERR_MAX + 16], t1[PKI_TIME_TEXT_MAX], t2[PKI_TIME_TEXT_MAX];
    int64_t nb = 0, na = 0, now = (int64_t)time(NULL);
    pki_serial_hex(leaf, serial, sizeof(serial));
    if (pki_spiffe_id(leaf, spiffe, sizeof(spiffe), why, sizeof(why)) != 0)
        snprintf(spiffe, sizeof(spiffe), "none (%s)", why);
    pki_time_get(X509_get0_notBefore(leaf), &nb);
    pki_time_get(X509_get0_notAfter(leaf), &na);
    pki_time_format(nb, t1, sizeof(t1));
    pki_time_format(na, t2, sizeof(t2));

    printf("%-12s %s (%d certificate%s)\n", "file:", file, sk_X509_num(certs), sk_X509_num(certs) == 1 ? "" : "s");
    print_name("subject:", X509_get_subject_name(leaf));
    print_name("issuer:", X509_get_issuer_name(leaf));
    printf("%-12s %s\n", "serial:", serial);
    printf("%-12s %s\n", "spiffe id:", spiffe);
    print_list("uris:", names.uris, names.n_uris);
    print_list("dns names:", names.dns, names.n_dns);
    print_list("ip:", names.ips, names.n_ips);
    printf("%-12s %s\n", "not before:", t1);
    char left[TTL_TEXT_MAX];
    if (now < nb)
        printf("%-12s %s (not valid yet)\n", "not after:", t2);
    else if (now >= na)
        printf("%-12s %s (expired %s ago)\n", "not after:", t2, ttl_format(now - na, left, sizeof(left)));
    else
        printf("%-12s %s (%s left)\n", "not after:", t2, ttl_format(na - now, left, sizeof(left)));
    printf("%-12s %s\n", "ca:", X509_check_ca(leaf) ? "yes" : "no");
    print_key(leaf);
    pki_names_dispose(&names);

    int rc = CMD_OK;
    if (ca != NULL) {
        char root_path[4096];
        struct stat st;
        if (stat(ca, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (files_join(root_path, sizeof(root_path), ca, PKI_ROOT_CERT, why, sizeof(why)) != 0) {
                cmd_error(cmd, "--ca: %s", why);
                rc = CMD_FAIL;
                goto out;
            }
        } else {
            snprintf(root_path, sizeof(root_path), "%s", ca);
        }
        if ((roots = pki_read_certs(root_path, why, sizeof(why))) == NULL) {
            cmd_error(cmd, "--ca: %s", why);
            rc = CMD_FAIL;
            goto out;
        }
        /* everything after the leaf in FILE may be an intermediate; only --ca is trusted */
        X509 *first = sk_X509_shift(certs);
        if (pki_verify(sk_X509_value(roots, 0), first, certs, now, why, sizeof(why)) == 0) {
            printf("%-12s ok: chains to %s\n", "chain:", root_path);
        } else {
            printf("%-12s FAILED: %s\n", "chain:", why);
            cmd_error(cmd, "%s does not chain to %s: %s", file, root_path, why);
            rc = CMD_FAIL;
        }
        X509_free(first);
    }
out:
    sk_X509_pop_free(roots, X509_free);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}
