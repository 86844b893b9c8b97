/*
 * pki: see pki.h.
 */
#include "pki.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "files.h"
#include "ttl.h"
#include "xalloc.h"

/* err = what, then OpenSSL's reason for the last error when it has one; empties the error queue. */
static void ossl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (reason != NULL)
        snprintf(err, errlen, "%s: %s", what, reason);
    else
        snprintf(err, errlen, "%s", what);
    ERR_clear_error();
}

EVP_PKEY *pki_key_generate(char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL)
        ossl_error(err, errlen, "cannot generate an EC P-256 key");
    return key;
}

/*
 * 16 random bytes with the top bit cleared, so the DER INTEGER is positive,
 * and a non-zero first byte, so every serial prints as 32 hex digits.
 */
static int set_random_serial(X509 *x, char *err, size_t errlen)
{
    unsigned char b[16];
    do {
        if (RAND_bytes(b, sizeof(b)) != 1) {
            ossl_error(err, errlen, "cannot draw a random serial number");
            return -1;
        }
        b[0] &= 0x7f;
    } while (b[0] == 0);
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    ASN1_INTEGER *serial = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int ok = serial != NULL && X509_set_serialNumber(x, serial) == 1;
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    if (!ok) {
        ossl_error(err, errlen, "cannot set the serial number");
        return -1;
    }
    return 0;
}

static int set_validity(X509 *x, int64_t not_before, int64_t not_after, char *err, size_t errlen)
{
    if (not_after <= not_before) {
        snprintf(err, errlen, "empty validity period");
        return -1;
    }
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL) {
        ossl_error(err, errlen, "cannot set the validity period");
        return -1;
    }
    return 0;
}

/* An extension from OpenSSL's config syntax; value is one of our constants, never user text. */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, char *err, size_t errlen)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    if (!ok) {
        char what[96];
        snprintf(what, sizeof(what), "cannot add the %s extension", OBJ_nid2ln(nid));
        ossl_error(err, errlen, what);
        return -1;
    }
    return 0;
}

X509 *pki_root_create(EVP_PKEY *key, const char *trust_domain, int64_t not_before, int64_t not_after, char *err,
                      size_t errlen)
{
    X509 *x = X509_new();
    if (x == NULL) {
        ossl_error(err, errlen, "cannot allocate a certificate");
        return NULL;
    }
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)trust_domain, -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1) {
        ossl_error(err, errlen, "cannot fill in the root certificate");
        goto fail;
    }
    if (set_random_serial(x, err, errlen) != 0 || set_validity(x, not_before, not_after, err, errlen) != 0)
        goto fail;
    /* the subject key identifier first: the authority key identifier of a self-signed root copies it */
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE", err, errlen) != 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign", err, errlen) != 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash", err, errlen) != 0 ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always", err, errlen) != 0)
        goto fail;
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        ossl_error(err, errlen, "cannot sign the root certificate");
        goto fail;
    }
    return x;
fail:
    X509_free(x);
    return NULL;
}

static int push_name(GENERAL_NAMES *gens, int type, const void *data, int len)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    if (g == NULL || s == NULL || ASN1_STRING_set(s, data, len) != 1) {
        GENERAL_NAME_free(g);
        ASN1_STRING_free(s);
        return -1;
    }
    GENERAL_NAME_set0_value(g, type, s);
    if (sk_GENERAL_NAME_push(gens, g) <= 0) {
        GENERAL_NAME_free(g);
        return -1;
    }
    return 0;
}

static int add_san(X509 *x, const pki_leaf_spec_t *spec, char *err, size_t errlen)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int rc = -1;
    if (gens == NULL)
        goto oom;
    if (spec->spiffe_id != NULL && push_name(gens, GEN_URI, spec->spiffe_id, (int)strlen(spec->spiffe_id)) != 0)
        goto oom;
    for (size_t i = 0; i < spec->n_dns; i++)
        if (push_name(gens, GEN_DNS, spec->dns[i], (int)strlen(spec->dns[i])) != 0)
            goto oom;
    for (size_t i = 0; i < spec->n_ips; i++) {
        unsigned char addr[16];
        int len = 4;
        if (inet_pton(AF_INET, spec->ips[i], addr) != 1) {
            len = 16;
            if (inet_pton(AF_INET6, spec->ips[i], addr) != 1) {
                snprintf(err, errlen, "\"%s\" is not a numeric IPv4 or IPv6 address", spec->ips[i]);
                goto out;
            }
        }
        if (push_name(gens, GEN_IPADD, addr, len) != 0)
            goto oom;
    }
    /* RFC 5280 4.2.1.6: with an empty subject the subjectAltName extension is critical */
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) != 1)
        goto oom;
    rc = 0;
    goto out;
oom:
    ossl_error(err, errlen, "cannot build the subjectAltName extension");
out:
    GENERAL_NAMES_free(gens);
    return rc;
}

X509 *pki_leaf_create(const pki_ca_t *ca, EVP_PKEY *pub, const pki_leaf_spec_t *spec, char *err, size_t errlen)
{
    size_t n_names = (spec->spiffe_id != NULL) + spec->n_dns + spec->n_ips;
    if (n_names == 0) {
        snprintf(err, errlen, "a certificate needs a SPIFFE id, a DNS name or an IP address");
        return NULL;
    }
    if (spec->n_dns + spec->n_ips > PKI_MAX_NAMES) {
        snprintf(err, errlen, "%zu DNS names and IP addresses; at most %d", spec->n_dns + spec->n_ips, PKI_MAX_NAMES);
        return NULL;
    }
    X509 *x = X509_new();
    if (x == NULL) {
        ossl_error(err, errlen, "cannot allocate a certificate");
        return NULL;
    }
    if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        X509_set_pubkey(x, pub) != 1) {
        ossl_error(err, errlen, "cannot fill in the certificate");
        goto fail;
    }
    if (set_random_serial(x, err, errlen) != 0 || set_validity(x, spec->not_before, spec->not_after, err, errlen) != 0)
        goto fail;
    if (add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE", err, errlen) != 0 ||
        add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment", err, errlen) != 0 ||
        add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth", err, errlen) != 0 ||
        add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always", err, errlen) != 0 ||
        add_san(x, spec, err, errlen) != 0)
        goto fail;
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0) {
        ossl_error(err, errlen, "cannot sign the certificate");
        goto fail;
    }
    return x;
fail:
    X509_free(x);
    return NULL;
}

int pki_validity(const pki_ca_t *ca, int64_t now, int64_t ttl_s, bool clamp, int64_t *not_before, int64_t *not_after,
                 char *err, size_t errlen)
{
    char t1[PKI_TIME_TEXT_MAX], t2[PKI_TIME_TEXT_MAX], left[TTL_TEXT_MAX];
    if (now >= ca->not_after) {
        pki_time_format(ca->not_after, t1, sizeof(t1));
        snprintf(err, errlen, "the CA expired at %s; make a new one with `outriderctl ca init`", t1);
        return -1;
    }
    if (now + PKI_BACKDATE_S < ca->not_before) {
        pki_time_format(ca->not_before, t1, sizeof(t1));
        snprintf(err, errlen, "the CA is not valid before %s (is this machine's clock right?)", t1);
        return -1;
    }
    int64_t nb = now - PKI_BACKDATE_S, na = now + ttl_s;
    if (nb < ca->not_before)
        nb = ca->not_before;
    int rc = 0;
    if (na > ca->not_after) {
        pki_time_format(na, t1, sizeof(t1));
        pki_time_format(ca->not_after, t2, sizeof(t2));
        ttl_format(ca->not_after - now, left, sizeof(left));
        if (!clamp) {
            snprintf(err, errlen,
                     "the certificate would expire at %s, after the CA itself (%s); the longest TTL left is %s", t1, t2,
                     left);
            return -1;
        }
        snprintf(err, errlen, "shortened to %s to end with the CA at %s", left, t2);
        na = ca->not_after;
        rc = 1;
    }
    *not_before = nb;
    *not_after = na;
    return rc;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

EVP_PKEY *pki_key_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
    BIO_free(bio);
    if (key == NULL)
        ossl_error(err, errlen, "no unencrypted PEM private key");
    return key;
}

STACK_OF(X509) * pki_read_certs(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *pem = files_read(path, PKI_PEM_MAX, &len, err, errlen);
    if (pem == NULL)
        return NULL;
    STACK_OF(X509) *certs = sk_X509_new_null();
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (certs == NULL || bio == NULL) {
        ossl_error(err, errlen, "out of memory");
        goto fail;
    }
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, no_password, NULL);
        if (x == NULL)
            break;
        if (sk_X509_push(certs, x) <= 0) {
            X509_free(x);
            ossl_error(err, errlen, "out of memory");
            goto fail;
        }
    }
    /* the loop ends at the end of the text (PEM_R_NO_START_LINE) or at a damaged block */
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        char what[256];
        snprintf(what, sizeof(what), "%s: certificate %d is damaged", path, sk_X509_num(certs) + 1);
        ossl_error(err, errlen, what);
        goto fail;
    }
    ERR_clear_error();
    if (sk_X509_num(certs) == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")", path);
        goto fail;
    }
    BIO_free(bio);
    free(pem);
    return certs;
fail:
    BIO_free(bio);
    free(pem);
    sk_X509_pop_free(certs, X509_free);
    return NULL;
}

int pki_time_get(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

void pki_time_format(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "@%lld", (long long)t);
}

int pki_ca_load(const char *dir, pki_ca_t *ca, char *err, size_t errlen)
{
    char path[4096], why[PKI_ERR_MAX];
    char *text = NULL, *keypem = NULL;
    size_t keylen = 0;
    STACK_OF(X509) *certs = NULL;
    memset(ca, 0, sizeof(*ca));

    if (files_join(path, sizeof(path), dir, PKI_TRUST_DOMAIN_FILE, err, errlen) != 0)
        goto fail;
    if ((text = files_read(path, IDENT_TRUST_DOMAIN_MAX + 2, NULL, why, sizeof(why))) == NULL) {
        snprintf(err, errlen, "%s (is %s a CA made by `outriderctl ca init`?)", why, dir);
        goto fail;
    }
    text[strcspn(text, "\r\n")] = '\0';
    if (ident_check_trust_domain(text, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: trust domain \"%s\": %s", path, text, why);
        goto fail;
    }
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", text);

    if (files_join(path, sizeof(path), dir, PKI_ROOT_CERT, err, errlen) != 0)
        goto fail;
    if ((certs = pki_read_certs(path, err, errlen)) == NULL)
        goto fail;
    ca->cert = sk_X509_shift(certs);
    if (X509_check_ca(ca->cert) == 0) {
        snprintf(err, errlen, "%s is not a CA certificate (no basicConstraints CA:TRUE)", path);
        goto fail;
    }
    if (pki_time_get(X509_get0_notBefore(ca->cert), &ca->not_before) != 0 ||
        pki_time_get(X509_get0_notAfter(ca->cert), &ca->not_after) != 0) {
        snprintf(err, errlen, "%s: unreadable validity period", path);
        goto fail;
    }

    if (files_join(path, sizeof(path), dir, PKI_ROOT_KEY, err, errlen) != 0)
        goto fail;
    if ((keypem = files_read(path, PKI_PEM_MAX, &keylen, err, errlen)) == NULL)
        goto fail;
    if ((ca->key = pki_key_from_pem(keypem, keylen, why, sizeof(why))) == NULL) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto fail;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "%s/%s is not the key of %s/%s", dir, PKI_ROOT_KEY, dir, PKI_ROOT_CERT);
        goto fail;
    }
    free(text);
    pki_pem_free(keypem, keylen);
    sk_X509_pop_free(certs, X509_free);
    return 0;
fail:
    free(text);
    pki_pem_free(keypem, keylen);
    sk_X509_pop_free(certs, X509_free);
    pki_ca_dispose(ca);
    return -1;
}

void pki_ca_dispose(pki_ca_t *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    memset(ca, 0, sizeof(*ca));
}

/* The bytes a memory BIO holds, copied into a NUL-terminated malloc buffer. */
static char *bio_copy(BIO *bio, size_t *len)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0)
        return NULL;
    char *out = malloc((size_t)n + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    return out;
}

char *pki_cert_pem(X509 *cert, size_t *len, char *err, size_t errlen)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
        out = bio_copy(bio, len);
    if (out == NULL)
        ossl_error(err, errlen, "cannot write the certificate as PEM");
    BIO_free(bio);
    return out;
}

char *pki_key_pem(EVP_PKEY *key, size_t *len, char *err, size_t errlen)
{
    /* OpenSSL wipes a memory BIO's buffer when it frees it */
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
        out = bio_copy(bio, len);
    if (out == NULL)
        ossl_error(err, errlen, "cannot write the key as PEM");
    BIO_free(bio);
    return out;
}

void pki_pem_free(char *pem, size_t len)
{
    if (pem == NULL)
        return;
    OPENSSL_cleanse(pem, len);
    free(pem);
}

int pki_verify(X509 *root, X509 *leaf, STACK_OF(X509) * untrusted, int64_t at, char *err, size_t errlen)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = -1;
    if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, root) != 1 ||
        X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
        ossl_error(err, errlen, "cannot set up the verification");
        goto out;
    }
    if (at != 0)
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)at);
    if (X509_verify_cert(ctx) == 1) {
        rc = 0;
    } else {
        int e = X509_STORE_CTX_get_error(ctx);
        snprintf(err, errlen, "%s (depth %d)", X509_verify_cert_error_string(e), X509_STORE_CTX_get_error_depth(ctx));
    }
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

int pki_check_public_key(EVP_PKEY *pub, char *err, size_t errlen)
{
    if (EVP_PKEY_is_a(pub, "EC")) {
        char group[64] = "";
        size_t n = 0;
        if (EVP_PKEY_get_group_name(pub, group, sizeof(group), &n) != 1) {
            ERR_clear_error();
            snprintf(err, errlen, "EC key on an unnamed curve; use P-256 or P-384");
            return -1;
        }
        if (strcmp(group, SN_X9_62_prime256v1) == 0 || strcmp(group, SN_secp384r1) == 0)
            return 0;
        snprintf(err, errlen, "EC key on curve %s; use P-256 or P-384", group);
        return -1;
    }
    if (EVP_PKEY_is_a(pub, "RSA")) {
        int bits = EVP_PKEY_get_bits(pub);
        if (bits >= 2048 && bits <= 8192)
            return 0;
        snprintf(err, errlen, "RSA key of %d bits; use 2048 to 8192 bits (or EC P-256)", bits);
        return -1;
    }
    const char *type = EVP_PKEY_get0_type_name(pub);
    snprintf(err, errlen, "%s keys are not accepted; use EC P-256 or P-384, or RSA of 2048 to 8192 bits",
             type != NULL ? type : "this type of");
    return -1;
}

X509_REQ *pki_csr_parse(const void *data, size_t len, char *err, size_t errlen)
{
    X509_REQ *req = NULL;
    const unsigned char *p = data;
    size_t skip = 0;
    while (skip < len && (p[skip] == ' ' || p[skip] == '\t' || p[skip] == '\r' || p[skip] == '\n'))
        skip++;
    if (len == 0 || skip == len) {
        snprintf(err, errlen, "empty body; send a PEM certificate signing request");
        return NULL;
    }
    if (len > INT32_MAX) {
        snprintf(err, errlen, "body too large");
        return NULL;
    }
    if (len - skip >= 5 && memcmp(p + skip, "-----", 5) == 0) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        if (bio != NULL)
            req = PEM_read_bio_X509_REQ(bio, NULL, no_password, NULL);
        BIO_free(bio);
        if (req == NULL) {
            ossl_error(err, errlen, "not a PEM certificate signing request (\"-----BEGIN CERTIFICATE REQUEST-----\")");
            return NULL;
        }
    } else {
        req = d2i_X509_REQ(NULL, &p, (long)len);
        if (req == NULL) {
            ossl_error(err, errlen, "not a certificate signing request (neither PEM nor DER)");
            return NULL;
        }
    }
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (pub == NULL) {
        ossl_error(err, errlen, "the request has no readable public key");
        goto fail;
    }
    if (X509_REQ_verify(req, pub) != 1) {
        ossl_error(err, errlen, "the request's signature does not verify with its own public key");
        goto fail;
    }
    char why[PKI_ERR_MAX / 2];
    if (pki_check_public_key(pub, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the request's key: %s", why);
        goto fail;
    }
    return req;
fail:
    X509_REQ_free(req);
    return NULL;
}

/* Printable ASCII kept, anything else as \xNN, so a foreign certificate cannot write escapes to a terminal. */
static char *printable(const unsigned char *s, int len)
{
    char *out = xmalloc((size_t)len * 4 + 1);
    size_t o = 0;
    for (int i = 0; i < len; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
            out[o++] = (char)s[i];
        else
            o += (size_t)sprintf(out + o, "\\x%02x", s[i]);
    }
    out[o] = '\0';
    return out;
}

static void names_push(char ***list, size_t *n, char *s)
{
    *list = xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[(*n)++] = s;
}

void pki_names_get(X509 *cert, pki_names_t *names)
{
    memset(names, 0, sizeof(*names));
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_URI || g->type == GEN_DNS) {
            const ASN1_IA5STRING *s = g->type == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName;
            char *text = printable(ASN1_STRING_get0_data(s), ASN1_STRING_length(s));
            if (g->type == GEN_URI)
                names_push(&names->uris, &names->n_uris, text);
            else
                names_push(&names->dns, &names->n_dns, text);
        } else if (g->type == GEN_IPADD) {
            const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
            int len = ASN1_STRING_length(g->d.iPAddress);
            char text[INET6_ADDRSTRLEN];
            if ((len == 4 && inet_ntop(AF_INET, a, text, sizeof(text)) != NULL) ||
                (len == 16 && inet_ntop(AF_INET6, a, text, sizeof(text)) != NULL))
                names_push(&names->ips, &names->n_ips, xstrdup(text));
            else
                names_push(&names->ips, &names->n_ips, printable(a, len));
        }
    }
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
}

void pki_names_dispose(pki_names_t *names)
{
    for (size_t i = 0; i < names->n_uris; i++)
        free(names->uris[i]);
    for (size_t i = 0; i < names->n_dns; i++)
        free(names->dns[i]);
    for (size_t i = 0; i < names->n_ips; i++)
        free(names->ips[i]);
    free(names->uris);
    free(names->dns);
    free(names->ips);
    memset(names, 0, sizeof(*names));
}

int pki_spiffe_id(X509 *cert, char *buf, size_t len, char *err, size_t errlen)
{
    pki_names_t names;
    int rc = -1;
    pki_names_get(cert, &names);
    if (names.n_uris == 0)
        snprintf(err, errlen, "no URI subjectAltName");
    else if (names.n_uris > 1)
        snprintf(err, errlen, "%zu URI subjectAltNames; a SPIFFE certificate has exactly one", names.n_uris);
    else if (strncmp(names.uris[0], "spiffe://", 9) != 0)
        snprintf(err, errlen, "the URI subjectAltName \"%s\" is not a spiffe:// id", names.uris[0]);
    else if (strlen(names.uris[0]) >= len)
        snprintf(err, errlen, "SPIFFE id longer than %zu bytes", len - 1);
    else {
        memcpy(buf, names.uris[0], strlen(names.uris[0]) + 1);
        rc = 0;
    }
    pki_names_dispose(&names);
    return rc;
}

void pki_serial_hex(X509 *cert, char *buf, size_t len)
{
    const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
    const unsigned char *d = ASN1_STRING_get0_data(serial);
    int n = ASN1_STRING_length(serial);
    size_t o = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 3 <= len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%02X", d[i]);
    if (n == 0)
        snprintf(buf, len, "00");
}
