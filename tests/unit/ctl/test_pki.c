/*
 * Unit tests for ctl/pki and ca_server_sign: the root's and the leaf's
 * extensions, validity rules, chain verification with X509_verify_cert,
 * certificate signing requests, and loading a CA directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca_server.h"
#include "files.h"
#include "pki.h"

#define TD "example.org"
#define ID "spiffe://example.org/ns/shop/sa/web"
#define DAY ((int64_t)86400)

typedef struct fixture {
    pki_ca_t ca;    /* a 10-day root, valid from a day ago */
    pki_ca_t other; /* an unrelated root for the same trust domain */
    int64_t now;
} fixture_t;

static void make_ca(pki_ca_t *ca, int64_t not_before, int64_t not_after)
{
    char err[PKI_ERR_MAX];
    memset(ca, 0, sizeof(*ca));
    ca->key = pki_key_generate(err, sizeof(err));
    assert_non_null(ca->key);
    ca->cert = pki_root_create(ca->key, TD, not_before, not_after, err, sizeof(err));
    if (ca->cert == NULL)
        fail_msg("root: %s", err);
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", TD);
    ca->not_before = not_before;
    ca->not_after = not_after;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->now = (int64_t)time(NULL);
    make_ca(&f->ca, f->now - DAY, f->now + 9 * DAY);
    make_ca(&f->other, f->now - DAY, f->now + 9 * DAY);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pki_ca_dispose(&f->ca);
    pki_ca_dispose(&f->other);
    free(f);
    return 0;
}

static int ext_critical(X509 *x, int nid)
{
    int i = X509_get_ext_by_NID(x, nid, -1);
    assert_true(i >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static int64_t cert_time(const ASN1_TIME *t)
{
    int64_t v = 0;
    assert_int_equal(pki_time_get(t, &v), 0);
    return v;
}

static X509 *issue(const pki_ca_t *ca, EVP_PKEY **key_out, const char *id, const char *const *dns, size_t n_dns,
                   int64_t nb, int64_t na)
{
    char err[PKI_ERR_MAX];
    EVP_PKEY *key = pki_key_generate(err, sizeof(err));
    assert_non_null(key);
    pki_leaf_spec_t spec = {.spiffe_id = id, .dns = dns, .n_dns = n_dns, .not_before = nb, .not_after = na};
    X509 *x = pki_leaf_create(ca, key, &spec, err, sizeof(err));
    if (x == NULL)
        fail_msg("leaf: %s", err);
    if (key_out != NULL)
        *key_out = key;
    else
        EVP_PKEY_free(key);
    return x;
}

static void test_root_shape(void **state)
{
    fixture_t *f = *state;
    X509 *root = f->ca.cert;
    assert_int_equal(X509_get_version(root), X509_VERSION_3);
    assert_int_equal(X509_check_ca(root), 1);
    assert_true(ext_critical(root, NID_basic_constraints));
    assert_true(ext_critical(root, NID_key_usage));
    assert_int_equal(X509_get_key_usage(root), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    /* self-signed, with the subject key identifier repeated as the authority key identifier */
    assert_int_equal(X509_verify(root, f->ca.key), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(root), X509_get_issuer_name(root)), 0);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(root), *aki = X509_get0_authority_key_id(root);
    assert_non_null(ski);
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(ski, aki), 0);
    char o[64] = "";
    assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_organizationName, o, sizeof(o)), 11);
    assert_string_equal(o, TD);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(root)), 1);
    /* a positive 128-bit serial that always prints as 32 hex digits */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(root);
    assert_int_equal(ASN1_STRING_length(serial), 16);
    assert_true(ASN1_STRING_get0_data(serial)[0] != 0 && ASN1_STRING_get0_data(serial)[0] < 0x80);
    char hex[PKI_SERIAL_HEX_MAX];
    pki_serial_hex(root, hex, sizeof(hex));
    assert_int_equal(strlen(hex), 32);
    assert_int_equal(cert_time(X509_get0_notBefore(root)), f->ca.not_before);
    assert_int_equal(cert_time(X509_get0_notAfter(root)), f->ca.not_after);
    EVP_PKEY *pub = X509_get0_pubkey(root);
    char group[32];
    assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof(group), NULL), 1);
    assert_string_equal(group, "prime256v1");
}

static void test_leaf_shape(void **state)
{
    fixture_t *f = *state;
    static const char *const dns[] = {"web.shop.svc.cluster.local", "*.shop.svc"};
    EVP_PKEY *key;
    int64_t nb = f->now - 60, na = f->now + 3600;
    X509 *leaf = issue(&f->ca, &key, ID, dns, 2, nb, na);

    pki_names_t names;
    pki_names_get(leaf, &names);
    assert_int_equal(names.n_uris, 1); /* SPIFFE: exactly one URI SAN */
    assert_string_equal(names.uris[0], ID);
    assert_int_equal(names.n_dns, 2);
    assert_string_equal(names.dns[0], dns[0]);
    assert_string_equal(names.dns[1], dns[1]);
    assert_int_equal(names.n_ips, 0);
    pki_names_dispose(&names);
    char id[IDENT_SPIFFE_ID_MAX], err[PKI_ERR_MAX];
    assert_int_equal(pki_spiffe_id(leaf, id, sizeof(id), err, sizeof(err)), 0);
    assert_string_equal(id, ID);

    /* empty subject, so the SAN is critical (RFC 5280 4.2.1.6) */
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
    assert_true(ext_critical(leaf, NID_subject_alt_name));
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(f->ca.cert)), 0);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_true(ext_critical(leaf, NID_basic_constraints));
    assert_true(ext_critical(leaf, NID_key_usage));
    assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_false(ext_critical(leaf, NID_ext_key_usage));
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(f->ca.cert)), 0);
    assert_int_equal(cert_time(X509_get0_notBefore(leaf)), nb);
    assert_int_equal(cert_time(X509_get0_notAfter(leaf)), na);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
    assert_int_equal(X509_verify(leaf, f->ca.key), 1);
    /* both purposes a sidecar needs (mTLS: each side is client and server) */
    assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0), 1);

    /* serials are random */
    X509 *again = issue(&f->ca, NULL, ID, NULL, 0, nb, na);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(again)), 0);
    X509_free(again);
    X509_free(leaf);
    EVP_PKEY_free(key);
}

static void test_leaf_ips_and_refusals(void **state)
{
    fixture_t *f = *state;
    char err[PKI_ERR_MAX];
    EVP_PKEY *key = pki_key_generate(err, sizeof(err));
    static const char *const ips[] = {"127.0.0.1", "::1"};
    pki_leaf_spec_t spec = {.ips = ips, .n_ips = 2, .not_before = f->now - 60, .not_after = f->now + 60};
    X509 *x = pki_leaf_create(&f->ca, key, &spec, err, sizeof(err));
    assert_non_null(x);
    pki_names_t names;
    pki_names_get(x, &names);
    assert_int_equal(names.n_uris, 0);
    assert_int_equal(names.n_ips, 2);
    assert_string_equal(names.ips[0], "127.0.0.1");
    assert_string_equal(names.ips[1], "::1");
    pki_names_dispose(&names);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(pki_spiffe_id(x, err, sizeof(err), err, sizeof(err)), -1);
    X509_free(x);

    static const char *const bad_ip[] = {"localhost"};
    spec.ips = bad_ip;
    spec.n_ips = 1;
    assert_null(pki_leaf_create(&f->ca, key, &spec, err, sizeof(err)));
    assert_non_null(strstr(err, "\"localhost\" is not a numeric IPv4 or IPv6 address"));

    pki_leaf_spec_t none = {.not_before = f->now - 60, .not_after = f->now + 60};
    assert_null(pki_leaf_create(&f->ca, key, &none, err, sizeof(err)));
    assert_non_null(strstr(err, "needs a SPIFFE id"));

    pki_leaf_spec_t backwards = {.spiffe_id = ID, .not_before = f->now, .not_after = f->now};
    assert_null(pki_leaf_create(&f->ca, key, &backwards, err, sizeof(err)));
    assert_non_null(strstr(err, "empty validity period"));
    EVP_PKEY_free(key);
    ERR_clear_error();
}

/* Verify leaf against root with OpenSSL's own verifier, no helper in between. */
static int verify_raw(X509 *root, X509 *leaf, time_t at, int *error)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_add_cert(store, root);
    X509_STORE_CTX_init(ctx, store, leaf, NULL);
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    int ok = X509_verify_cert(ctx);
    *error = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

static void test_chain_verification(void **state)
{
    fixture_t *f = *state;
    X509 *leaf = issue(&f->ca, NULL, ID, NULL, 0, f->now - 60, f->now + 3600);
    int e;
    assert_int_equal(verify_raw(f->ca.cert, leaf, (time_t)f->now, &e), 1);
    assert_int_equal(e, X509_V_OK);
    assert_int_not_equal(verify_raw(f->other.cert, leaf, (time_t)f->now, &e), 1);
    assert_int_equal(e, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    assert_int_not_equal(verify_raw(f->ca.cert, leaf, (time_t)(f->now + 7200), &e), 1);
    assert_int_equal(e, X509_V_ERR_CERT_HAS_EXPIRED);

    char err[PKI_ERR_MAX];
    assert_int_equal(pki_verify(f->ca.cert, leaf, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(pki_verify(f->other.cert, leaf, NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unable to get local issuer certificate"));
    assert_int_equal(pki_verify(f->ca.cert, leaf, NULL, f->now + 7200, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "certificate has expired"));
    assert_int_equal(pki_verify(f->ca.cert, leaf, NULL, f->now - 3600, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "certificate is not yet valid"));
    X509_free(leaf);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_validity(void **state)
{
    fixture_t *f = *state;
    char err[PKI_ERR_MAX];
    int64_t nb = 0, na = 0;
    assert_int_equal(pki_validity(&f->ca, f->now, 3600, false, &nb, &na, err, sizeof(err)), 0);
    assert_int_equal(nb, f->now - PKI_BACKDATE_S);
    assert_int_equal(na, f->now + 3600);

    /* past the CA's end: refused, or cut to it */
    nb = na = 7;
    assert_int_equal(pki_validity(&f->ca, f->now, 10 * DAY, false, &nb, &na, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "after the CA itself"));
    assert_non_null(strstr(err, "the longest TTL left is 9d"));
    assert_int_equal(nb, 7);
    assert_int_equal(pki_validity(&f->ca, f->now, 10 * DAY, true, &nb, &na, err, sizeof(err)), 1);
    assert_int_equal(na, f->ca.not_after);
    assert_non_null(strstr(err, "shortened to 9d"));

    /* not backdated before the CA's own start */
    assert_int_equal(pki_validity(&f->ca, f->ca.not_before + 10, 60, false, &nb, &na, err, sizeof(err)), 0);
    assert_int_equal(nb, f->ca.not_before);

    assert_int_equal(pki_validity(&f->ca, f->ca.not_after, 60, true, &nb, &na, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "the CA expired at"));
    assert_int_equal(pki_validity(&f->ca, f->ca.not_before - 3600, 60, true, &nb, &na, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not valid before"));
}

/* A CSR for key asking for san (may be NULL), signed with md (NULL for Ed25519), as DER or PEM. */
static char *make_csr(EVP_PKEY *key, const char *san, const EVP_MD *md, int pem, size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    X509_REQ_set_version(req, X509_REQ_VERSION_1);
    X509_REQ_set_pubkey(req, key);
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC, (const unsigned char *)"evil", -1,
                               -1, 0);
    if (san != NULL) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
        assert_non_null(e);
        sk_X509_EXTENSION_push(exts, e);
        X509_REQ_add_extensions(req, exts);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    assert_true(X509_REQ_sign(req, key, md) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    if (pem)
        PEM_write_bio_X509_REQ(bio, req);
    else
        i2d_X509_REQ_bio(bio, req);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(bio);
    X509_REQ_free(req);
    return out;
}

static STACK_OF(X509) * parse_chain(const char *pem, size_t len)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        sk_X509_push(certs, x);
    ERR_clear_error();
    BIO_free(bio);
    return certs;
}

static void test_sign_csr(void **state)
{
    fixture_t *f = *state;
    char err[PKI_ERR_MAX];
    EVP_PKEY *key = pki_key_generate(err, sizeof(err));
    size_t len;
    /* the CSR asks for another identity: the CA certifies the one it is told, with the CSR's key */
    char *csr =
        make_csr(key, "URI:spiffe://example.org/ns/kube-system/sa/admin,DNS:evil.example", EVP_sha256(), 1, &len);
    ca_sign_result_t res;
    assert_int_equal(ca_server_sign(&f->ca, ID, csr, len, f->now, 3600, &res, err, sizeof(err)), 200);
    STACK_OF(X509) *chain = parse_chain(res.chain, res.chain_len);
    assert_int_equal(sk_X509_num(chain), 2); /* leaf, then root */
    X509 *leaf = sk_X509_value(chain, 0);
    assert_int_equal(X509_cmp(sk_X509_value(chain, 1), f->ca.cert), 0);
    pki_names_t names;
    pki_names_get(leaf, &names);
    assert_int_equal(names.n_uris, 1);
    assert_string_equal(names.uris[0], ID);
    assert_int_equal(names.n_dns, 0);
    pki_names_dispose(&names);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0); /* not CN=evil */
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
    assert_int_equal(cert_time(X509_get0_notAfter(leaf)), f->now + 3600);
    assert_false(res.clamped);
    char hex[PKI_SERIAL_HEX_MAX];
    pki_serial_hex(leaf, hex, sizeof(hex));
    assert_string_equal(hex, res.serial);
    assert_int_equal(pki_verify(f->ca.cert, leaf, NULL, 0, err, sizeof(err)), 0);
    sk_X509_pop_free(chain, X509_free);
    free(res.chain);
    free(csr);

    /* DER works too, and a TTL past the CA is cut to the CA's end */
    csr = make_csr(key, NULL, EVP_sha256(), 0, &len);
    assert_int_equal(ca_server_sign(&f->ca, ID, csr, len, f->now, 30 * DAY, &res, err, sizeof(err)), 200);
    assert_true(res.clamped);
    assert_int_equal(res.not_after, f->ca.not_after);
    free(res.chain);

    /* a flipped bit in the signature */
    csr[len - 1] ^= 0x01;
    assert_int_equal(ca_server_sign(&f->ca, ID, csr, len, f->now, 60, &res, err, sizeof(err)), 400);
    assert_non_null(strstr(err, "signature does not verify"));
    assert_null(res.chain);
    free(csr);

    /* an expired CA cannot sign */
    csr = make_csr(key, NULL, EVP_sha256(), 1, &len);
    assert_int_equal(ca_server_sign(&f->ca, ID, csr, len, f->ca.not_after + 1, 60, &res, err, sizeof(err)), 500);
    assert_non_null(strstr(err, "the CA expired"));
    free(csr);
    EVP_PKEY_free(key);

    static const char garbage[] = "hello";
    assert_int_equal(ca_server_sign(&f->ca, ID, garbage, 5, f->now, 60, &res, err, sizeof(err)), 400);
    assert_non_null(strstr(err, "not a certificate signing request"));
    static const char bad_pem[] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert_int_equal(ca_server_sign(&f->ca, ID, bad_pem, sizeof(bad_pem) - 1, f->now, 60, &res, err, sizeof(err)), 400);
    assert_non_null(strstr(err, "not a PEM certificate signing request"));
    assert_int_equal(ca_server_sign(&f->ca, ID, "\n \n", 3, f->now, 60, &res, err, sizeof(err)), 400);
    assert_non_null(strstr(err, "empty body"));
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_csr_key_types(void **state)
{
    (void)state;
    char err[PKI_ERR_MAX];
    size_t len;
    EVP_PKEY *rsa_small = EVP_RSA_gen(1024), *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
             *p384 = EVP_EC_gen("P-384"), *k1 = EVP_EC_gen("secp256k1");
    assert_non_null(rsa_small);
    assert_non_null(ed);
    assert_non_null(p384);
    assert_non_null(k1);
    char *csr = make_csr(rsa_small, NULL, EVP_sha256(), 1, &len);
    assert_null(pki_csr_parse(csr, len, err, sizeof(err)));
    assert_non_null(strstr(err, "RSA key of 1024 bits"));
    free(csr);
    csr = make_csr(ed, NULL, NULL, 1, &len);
    assert_null(pki_csr_parse(csr, len, err, sizeof(err)));
    assert_non_null(strstr(err, "ED25519 keys are not accepted"));
    free(csr);
    csr = make_csr(k1, NULL, EVP_sha256(), 1, &len);
    assert_null(pki_csr_parse(csr, len, err, sizeof(err)));
    assert_non_null(strstr(err, "curve secp256k1"));
    free(csr);
    csr = make_csr(p384, NULL, EVP_sha384(), 1, &len);
    X509_REQ *req = pki_csr_parse(csr, len, err, sizeof(err));
    if (req == NULL)
        fail_msg("P-384 refused: %s", err);
    X509_REQ_free(req);
    free(csr);
    EVP_PKEY_free(rsa_small);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(k1);
    assert_int_equal(ERR_peek_error(), 0);
}

/* Write a key (when key is not NULL) or a certificate as PEM into dir/name. */
static void write_pem(const char *dir, const char *name, EVP_PKEY *key, X509 *cert, mode_t mode)
{
    char path[512], err[PKI_ERR_MAX];
    size_t len = 0;
    char *pem = key != NULL ? pki_key_pem(key, &len, err, sizeof(err)) : pki_cert_pem(cert, &len, err, sizeof(err));
    assert_non_null(pem);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (files_write(path, pem, len, mode, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    pki_pem_free(pem, len);
}

static void test_ca_load(void **state)
{
    fixture_t *f = *state;
    char dir[] = "/tmp/outrider-ctl-test.XXXXXX", err[PKI_ERR_MAX];
    assert_non_null(mkdtemp(dir));
    mode_t old_umask = umask(0); /* files_write sets the mode itself */
    write_pem(dir, PKI_ROOT_KEY, f->ca.key, NULL, 0600);
    write_pem(dir, PKI_ROOT_CERT, NULL, f->ca.cert, 0644);
    umask(old_umask);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, PKI_ROOT_KEY);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    pki_ca_t ca;
    assert_int_equal(pki_ca_load(dir, &ca, err, sizeof(err)), -1); /* no trust-domain file yet */
    assert_non_null(strstr(err, "trust-domain"));
    assert_null(ca.cert);
    snprintf(path, sizeof(path), "%s/%s", dir, PKI_TRUST_DOMAIN_FILE);
    assert_int_equal(files_write(path, "Example.org\n", 12, 0644, err, sizeof(err)), 0);
    assert_int_equal(pki_ca_load(dir, &ca, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "trust domain \"Example.org\": uppercase"));
    assert_int_equal(files_write(path, TD "\n", sizeof(TD), 0644, err, sizeof(err)), 0);
    if (pki_ca_load(dir, &ca, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);
    assert_string_equal(ca.trust_domain, TD);
    assert_int_equal(X509_cmp(ca.cert, f->ca.cert), 0);
    assert_int_equal(ca.not_before, f->ca.not_before);
    assert_int_equal(ca.not_after, f->ca.not_after);
    pki_ca_dispose(&ca);
    pki_ca_dispose(&ca); /* twice is fine */

    /* another CA's key */
    write_pem(dir, PKI_ROOT_KEY, f->other.key, NULL, 0600);
    assert_int_equal(pki_ca_load(dir, &ca, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "root-key.pem is not the key of"));

    static const char *const names[] = {PKI_ROOT_KEY, PKI_ROOT_CERT, PKI_TRUST_DOMAIN_FILE};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    assert_int_equal(pki_ca_load(dir, &ca, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file or directory"));
    assert_int_equal(ERR_peek_error(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_shape),
        cmocka_unit_test(test_leaf_shape),
        cmocka_unit_test(test_leaf_ips_and_refusals),
        cmocka_unit_test(test_chain_verification),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_sign_csr),
        cmocka_unit_test(test_csr_key_types),
        cmocka_unit_test(test_ca_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
