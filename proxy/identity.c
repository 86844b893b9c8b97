/*
 * identity: the workload certificate, from files or the mesh CA, and its
 * renewal thread; see identity.h for the design.
 *
 * An attempt (identity_fetch) reads everything into memory first, checks
 * it (check_and_build) and only then makes the tls_ctx_t from those same
 * bytes. The renewal thread is one loop: compute the next time something
 * is due, wait on the condition variable until then (or a wake, or the
 * stop), decide whether to attempt, attempt without the mutex, publish.
 */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hex.h"
#include "http_client.h"
#include "ident.h"
#include "log.h"
#include "mono.h"
#include "runtime.h"
#include "xalloc.h"

#define TTL_MAX_S ((uint64_t)100 * 365 * 86400) /* as the CA's own bound (ctl/ttl.h) */
#define CA_SIGN_PATH "/v1/sign"
#define CA_TEXT_SHOWN 200  /* bytes of a CA's refusal quoted in an error */
#define ADDRESS_MAX 256    /* bytes of ca_address */
#define RETRY_FLOOR_MS 100 /* least sleep before a retry, also right before an expiry */
#define STAMP_CERT 0
#define STAMP_KEY 1

enum mode { MODE_FILES, MODE_CA };

struct identity {
    /* copied options, read-only */
    enum mode mode;
    char *trust_domain, *ns, *sa, *roots_file, *cert_file, *key_file, *ca_address, *token_file;
    char **alpn;
    size_t n_alpn;
    uint64_t ttl_s, poll_ms;
    char expected_id[IDENTITY_SPIFFE_ID_MAX];

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    /* under lock */
    identity_cert_t *current; /* the thread's; one reference held here */
    char last_error[IDENTITY_ERR_MAX];
    uint64_t renewals_ok, renewals_failed;
    bool started, stopping, wake;
    /* the thread */
    pthread_t thread;
    void (*on_new)(void *arg, identity_cert_t *c);
    void *arg;
    _Atomic uint64_t stop_ms; /* non-zero once stopping: cuts a CA request short */
};

/* ---- small helpers ---- */

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void time_text(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "@%lld", (long long)t);
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

/* OpenSSL's last error as text ("" when none); clears the queue. */
static const char *ssl_reason(void)
{
    static _Thread_local char text[256];
    unsigned long e = ERR_peek_last_error();
    text[0] = '\0';
    if (e != 0)
        ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    return text;
}

/* Copy s into out with anything but printable ASCII as \xNN, at most len bytes with the NUL. */
static void printable(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

/* ---- files ---- */

/*
 * All of path (at most max bytes) in a new NUL-terminated buffer of
 * exactly *len + 1 bytes (never grown, so a key leaves no copy behind);
 * *st gets the opened file's stamp. NULL with "PATH: reason" in err.
 */
static char *read_bounded(const char *path, size_t max, size_t *len, file_stamp_t *st, char *err, size_t errlen)
{
    char *data = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    size_t cap = (size_t)sb.st_size, got = 0;
    data = xmalloc(cap + 1);
    for (;;) {
        char extra;
        ssize_t n = got < cap ? read(fd, data + got, cap - got) : read(fd, &extra, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (got == cap) {
            snprintf(err, errlen, "%s: changed while being read", path);
            goto fail;
        }
        got += (size_t)n;
    }
    data[got] = '\0';
    *len = got;
    *st = file_stamp_of(&sb);
    goto out;
fail:
    OPENSSL_cleanse(data, cap + 1);
    free(data);
    data = NULL;
out:
    close(fd);
    return data;
}

static void wipe_free(char *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* ---- PEM and certificates ---- */

/* Every certificate in len bytes of PEM, in order; NULL with "what: reason" when none or one is malformed. */
static STACK_OF(X509) * pem_certs(const char *pem, size_t len, const char *what, char *err, size_t errlen)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (b == NULL || sk == NULL)
        log_fatal("identity: out of memory");
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (sk_X509_push(sk, x) <= 0)
            log_fatal("identity: out of memory");
    BIO_free(b);
    /* the loop ends with "no start line" at the end of the input: anything else is a broken certificate */
    unsigned long e = ERR_peek_last_error();
    bool at_end = e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    if (!at_end) {
        snprintf(err, errlen, "%s: certificate %d is not valid PEM: %s", what, sk_X509_num(sk) + 1, ssl_reason());
        sk_X509_pop_free(sk, X509_free);
        return NULL;
    }
    ERR_clear_error();
    if (sk_X509_num(sk) == 0) {
        snprintf(err, errlen, "%s: no PEM certificate", what);
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

static EVP_PKEY *pem_key(const char *pem, size_t len, const char *what, char *err, size_t errlen)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (b == NULL)
        log_fatal("identity: out of memory");
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
    BIO_free(b);
    if (k == NULL)
        snprintf(err, errlen, "%s: no unencrypted PEM private key (%s)", what, ssl_reason());
    return k;
}

static int asn1_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

/*
 * The leaf's one URI SAN into id (escaped by printable(): idlen of
 * 4 * IDENTITY_SPIFFE_ID_MAX + 8 holds any), never truncated: longer ones
 * are refused. -1 with the reason (after "the certificate ") in why.
 */
static int leaf_uri(X509 *x, char *id, size_t idlen, char *why, size_t whylen)
{
    int crit = -1;
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    if (names == NULL) {
        snprintf(why, whylen, crit == -2 ? "has more than one subjectAltName extension" : "has no URI SAN");
        return -1;
    }
    int n = 0;
    const ASN1_IA5STRING *uri = NULL;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_URI) {
            n++;
            uri = gn->d.uniformResourceIdentifier;
        }
    }
    int rc = -1;
    if (n != 1) {
        snprintf(why, whylen, n == 0 ? "has no URI SAN" : "has %d URI SANs (a workload certificate has exactly one)",
                 n);
    } else if (ASN1_STRING_length(uri) >= IDENTITY_SPIFFE_ID_MAX) {
        snprintf(why, whylen, "has a URI SAN of %d bytes (a SPIFFE id here has at most %d)", ASN1_STRING_length(uri),
                 IDENTITY_SPIFFE_ID_MAX - 1);
    } else {
        printable((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri), id, idlen);
        rc = 0;
    }
    GENERAL_NAMES_free(names);
    return rc;
}

/* PEM of every certificate in certs, NUL-terminated, in a new buffer. */
static char *certs_pem(STACK_OF(X509) * certs)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        log_fatal("identity: out of memory");
    for (int i = 0; i < sk_X509_num(certs); i++)
        if (PEM_write_bio_X509(b, sk_X509_value(certs, i)) != 1)
            log_fatal("identity: cannot encode a certificate: %s", ssl_reason());
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = xmalloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

/* The chain's DER and the roots' bytes, hashed: what makes two certs the same material. */
static void material_digest(STACK_OF(X509) * certs, const char *roots, size_t roots_len, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        log_fatal("identity: SHA-256 unavailable");
    for (int i = 0; i < sk_X509_num(certs); i++) {
        unsigned char *der = NULL;
        int n = i2d_X509(sk_X509_value(certs, i), &der);
        if (n > 0)
            EVP_DigestUpdate(md, der, (size_t)n);
        OPENSSL_free(der);
    }
    EVP_DigestUpdate(md, roots, roots_len);
    unsigned int len = 32;
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char d[32];
    unsigned int n = 32;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1)
        log_fatal("identity: SHA-256 unavailable");
    hex_encode(d, 32, out);
    out[64] = '\0';
}

/* What one attempt read, before the checks. */
typedef struct material {
    const char *source;
    const char *where; /* prefix of the reasons: the cert file, or "CA https://..." */
    const char *key_where;
    STACK_OF(X509) * certs; /* leaf first */
    EVP_PKEY *key;
    char *roots; /* PEM, NUL-terminated */
    size_t roots_len;
    file_stamp_t stamps[2]; /* files mode */
    file_stamp_t roots_stamp;
} material_t;

/*
 * The checks of identity.h on m, then the cert with its ctx. NULL with the
 * reason in err.
 */
static identity_cert_t *check_and_build(identity_t *id, material_t *m, char *err, size_t errlen)
{
    char why[512], got[4 * IDENTITY_SPIFFE_ID_MAX + 8];
    identity_cert_t *c = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *vc = NULL;
    STACK_OF(X509) *untrusted = NULL;
    BIO *kb = NULL;
    char *cert_pem = NULL;
    X509 *leaf = sk_X509_value(m->certs, 0);

    STACK_OF(X509) *roots = pem_certs(m->roots, m->roots_len, id->roots_file, err, errlen);
    if (roots == NULL)
        return NULL;
    if (X509_check_private_key(leaf, m->key) != 1) {
        ERR_clear_error();
        if (m->key_where != NULL)
            snprintf(err, errlen, "%s: key does not match the certificate in %s", m->key_where, m->where);
        else
            snprintf(err, errlen, "%s: the certificate is not for the key this sidecar made", m->where);
        goto out;
    }
    if (leaf_uri(leaf, got, sizeof got, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: the certificate %s; this sidecar is %s", m->where, why, id->expected_id);
        goto out;
    }
    if (strcmp(got, id->expected_id) != 0) {
        if (strcmp(m->source, IDENTITY_SOURCE_CA) == 0)
            snprintf(err, errlen, "%s: the CA certified %.400s but this sidecar is %s", m->where, got, id->expected_id);
        else
            snprintf(err, errlen, "%s: the certificate is for %.400s but this sidecar is %s", m->where, got,
                     id->expected_id);
        goto out;
    }
    int64_t nb, na, now = unix_ms() / 1000;
    if (asn1_unix(X509_get0_notBefore(leaf), &nb) != 0 || asn1_unix(X509_get0_notAfter(leaf), &na) != 0 || na < nb) {
        snprintf(err, errlen, "%s: the certificate's validity cannot be read", m->where);
        goto out;
    }
    char t1[32], t2[32];
    if (now > na + IDENTITY_SKEW_S) {
        time_text(na, t1, sizeof t1);
        time_text(now, t2, sizeof t2);
        snprintf(err, errlen, "%s: certificate expired at %s (now %s)", m->where, t1, t2);
        goto out;
    }
    if (now < nb - IDENTITY_SKEW_S) {
        time_text(nb, t1, sizeof t1);
        time_text(now, t2, sizeof t2);
        snprintf(err, errlen, "%s: certificate not valid yet: from %s (now %s)", m->where, t1, t2);
        goto out;
    }
    /* verify at a time the leaf is valid, so that the skew allowed above is allowed here too */
    int64_t at = now < nb ? nb : now > na ? na : now;
    store = X509_STORE_new();
    vc = X509_STORE_CTX_new();
    untrusted = sk_X509_new_null();
    if (store == NULL || vc == NULL || untrusted == NULL)
        log_fatal("identity: out of memory");
    for (int i = 0; i < sk_X509_num(roots); i++)
        if (X509_STORE_add_cert(store, sk_X509_value(roots, i)) != 1)
            ERR_clear_error(); /* the same root twice in the bundle */
    for (int i = 1; i < sk_X509_num(m->certs); i++)
        sk_X509_push(untrusted, sk_X509_value(m->certs, i));
    if (X509_STORE_CTX_init(vc, store, leaf, untrusted) != 1)
        log_fatal("identity: X509_STORE_CTX_init: %s", ssl_reason());
    X509_STORE_CTX_set_time(vc, 0, (time_t)at);
    X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(vc), TRANSPORT_TLS_VERIFY_DEPTH);
    if (X509_verify_cert(vc) != 1) {
        snprintf(err, errlen, "%s: the certificate does not chain to a root in %s: %s", m->where, id->roots_file,
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
        ERR_clear_error();
        goto out;
    }

    /* the key as PEM in OpenSSL's secure memory BIO: its buffer is wiped when freed, also when it grew */
    kb = BIO_new(BIO_s_secmem());
    if (kb == NULL || PEM_write_bio_PrivateKey(kb, m->key, NULL, NULL, 0, NULL, NULL) != 1 || BIO_write(kb, "", 1) != 1)
        log_fatal("identity: cannot encode the private key: %s", ssl_reason());
    char *key_pem;
    BIO_get_mem_data(kb, &key_pem);
    cert_pem = certs_pem(m->certs);
    tls_ctx_opts_t to = {.cert_pem = cert_pem,
                         .key_pem = key_pem,
                         .ca_pem = m->roots,
                         .verify_peer = true,
                         .alpn = (const char *const *)id->alpn,
                         .n_alpn = id->n_alpn};
    tls_ctx_t *ctx = tls_ctx_create(&to, why, sizeof why);
    if (ctx == NULL) {
        snprintf(err, errlen, "%s: TLS context: %s", m->where, why);
        goto out;
    }
    c = xcalloc(1, sizeof *c);
    c->ctx = ctx;
    atomic_init(&c->refs, 1);
    memcpy(c->spiffe_id, id->expected_id, sizeof c->spiffe_id); /* got is exactly that */
    c->not_before = nb;
    c->not_after = na;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(c->serial_hex, sizeof c->serial_hex, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    sha256_hex(m->roots, m->roots_len, c->roots_sha256);
    c->n_roots = sk_X509_num(roots);
    c->source = m->source;
    c->obtained_ms = unix_ms();
    material_digest(m->certs, m->roots, m->roots_len, c->material);
    memcpy(c->stamps, m->stamps, sizeof c->stamps);
out:
    ERR_clear_error();
    free(cert_pem);
    BIO_free(kb);
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(vc);
    X509_STORE_free(store);
    sk_X509_pop_free(roots, X509_free);
    return c;
}

static void material_dispose(material_t *m)
{
    sk_X509_pop_free(m->certs, X509_free);
    EVP_PKEY_free(m->key);
    free(m->roots);
}

/* ---- files mode ---- */

static identity_cert_t *fetch_files(identity_t *id, char *err, size_t errlen)
{
    material_t m = {.source = IDENTITY_SOURCE_FILES, .where = id->cert_file, .key_where = id->key_file};
    identity_cert_t *c = NULL;
    size_t cert_len = 0, key_len = 0;
    char *key = NULL,
         *cert = read_bounded(id->cert_file, IDENTITY_FILE_MAX, &cert_len, &m.stamps[STAMP_CERT], err, errlen);
    if (cert == NULL)
        goto out;
    if ((key = read_bounded(id->key_file, IDENTITY_FILE_MAX, &key_len, &m.stamps[STAMP_KEY], err, errlen)) == NULL ||
        (m.roots = read_bounded(id->roots_file, IDENTITY_FILE_MAX, &m.roots_len, &m.roots_stamp, err, errlen)) == NULL)
        goto out;
    if ((m.certs = pem_certs(cert, cert_len, id->cert_file, err, errlen)) == NULL ||
        (m.key = pem_key(key, key_len, id->key_file, err, errlen)) == NULL)
        goto out;
    c = check_and_build(id, &m, err, errlen);
out:
    wipe_free(key, key_len + 1);
    free(cert);
    material_dispose(&m);
    return c;
}

/* ---- CA mode ---- */

/* The token from token_file, trimmed, in a new buffer the caller wipes; NULL with the reason. */
static char *read_token(identity_t *id, size_t *len, char *err, size_t errlen)
{
    size_t n = 0;
    file_stamp_t st;
    char *raw = read_bounded(id->token_file, IDENTITY_TOKEN_MAX, &n, &st, err, errlen);
    if (raw == NULL)
        return NULL;
    size_t a = 0, b = n;
    while (a < b && strchr(" \t\r\n\v\f", raw[a]) != NULL && raw[a] != '\0')
        a++;
    while (b > a && strchr(" \t\r\n\v\f", raw[b - 1]) != NULL && raw[b - 1] != '\0')
        b--;
    const char *bad = NULL;
    if (a == b)
        bad = "empty token";
    for (size_t i = a; i < b && bad == NULL; i++)
        if (raw[i] < 0x21 || raw[i] > 0x7e)
            bad = "the token holds a character other than printable ASCII without spaces";
    if (bad != NULL) {
        snprintf(err, errlen, "%s: %s", id->token_file, bad);
        wipe_free(raw, n + 1);
        return NULL;
    }
    memmove(raw, raw + a, b - a);
    OPENSSL_cleanse(raw + (b - a), n + 1 - (b - a));
    *len = b - a;
    return raw;
}

/* A PEM CSR for key carrying the expected SPIFFE id as its one (critical) URI SAN, empty subject. */
static char *make_csr(identity_t *id, EVP_PKEY *key, char *err, size_t errlen)
{
    char *pem = NULL;
    X509_REQ *req = X509_REQ_new();
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    BIO *b = BIO_new(BIO_s_mem());
    if (req == NULL || gens == NULL || gn == NULL || uri == NULL || exts == NULL || b == NULL)
        log_fatal("identity: out of memory");
    if (ASN1_STRING_set(uri, id->expected_id, (int)strlen(id->expected_id)) != 1)
        log_fatal("identity: out of memory");
    GENERAL_NAME_set0_value(gn, GEN_URI, uri);
    uri = NULL;
    sk_GENERAL_NAME_push(gens, gn);
    gn = NULL;
    X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 1, gens);
    if (ext == NULL || sk_X509_EXTENSION_push(exts, ext) <= 0 || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
        X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_add_extensions(req, exts) != 1 ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0 || PEM_write_bio_X509_REQ(b, req) != 1) {
        if (ext != NULL && sk_X509_EXTENSION_num(exts) == 0)
            X509_EXTENSION_free(ext);
        snprintf(err, errlen, "cannot make a certificate signing request: %s", ssl_reason());
        goto out;
    }
    char *data;
    long n = BIO_get_mem_data(b, &data);
    pem = xmalloc((size_t)n + 1);
    memcpy(pem, data, (size_t)n);
    pem[n] = '\0';
out:
    BIO_free(b);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    X509_REQ_free(req);
    return pem;
}

/* The CA's refusal as one printable line of at most CA_TEXT_SHOWN bytes. */
static void ca_text(const buf_t *body, char *out, size_t len)
{
    size_t n = body->len < CA_TEXT_SHOWN ? body->len : CA_TEXT_SHOWN;
    while (n > 0 && (body->data[n - 1] == '\n' || body->data[n - 1] == '\r' || body->data[n - 1] == ' '))
        n--;
    printable(n > 0 ? body->data : "", n, out, len);
}

static identity_cert_t *fetch_ca(identity_t *id, uint64_t deadline_ms, char *err, size_t errlen)
{
    char where[ADDRESS_MAX + 8], why[512], path[64], text[400];
    material_t m = {.source = IDENTITY_SOURCE_CA, .where = where};
    identity_cert_t *c = NULL;
    http_client_t *hc = NULL;
    char *token = NULL, *auth = NULL, *csr = NULL;
    size_t token_len = 0, auth_len = 0;
    buf_t answer = BUF_INIT;
    snprintf(where, sizeof where, "CA %s", id->ca_address);
    if ((m.roots = read_bounded(id->roots_file, IDENTITY_FILE_MAX, &m.roots_len, &m.roots_stamp, err, errlen)) ==
            NULL ||
        (token = read_token(id, &token_len, err, errlen)) == NULL)
        goto out;
    if ((m.key = EVP_EC_gen("P-256")) == NULL) {
        snprintf(err, errlen, "cannot make an EC P-256 key: %s", ssl_reason());
        goto out;
    }
    if ((csr = make_csr(id, m.key, err, errlen)) == NULL)
        goto out;
    if ((hc = http_client_create(id->ca_address, id->roots_file, why, sizeof why)) == NULL) {
        snprintf(err, errlen, "%s: %s", where, why);
        goto out;
    }
    static const char bearer[] = "Authorization: Bearer ";
    auth_len = sizeof bearer - 1 + token_len + 1;
    auth = xmalloc(auth_len);
    memcpy(auth, bearer, sizeof bearer - 1);
    memcpy(auth + sizeof bearer - 1, token, token_len);
    auth[auth_len - 1] = '\0';
    const char *headers[] = {auth};
    snprintf(path, sizeof path, CA_SIGN_PATH "?ttl=%llus", (unsigned long long)id->ttl_s);
    http_client_request_t r = {.path = path,
                               .content_type = "application/pkcs10",
                               .headers = headers,
                               .n_headers = 1,
                               .body = csr,
                               .len = strlen(csr),
                               .answer = &answer,
                               .answer_max = IDENTITY_ANSWER_MAX};
    const char *w = NULL;
    int status = http_client_send(hc, &r, deadline_ms, &id->stop_ms, &w);
    if (status < 0) {
        snprintf(err, errlen, "%s: no answer: %s", where, w != NULL ? w : "failed");
        goto out;
    }
    if (status != 200) {
        ca_text(&answer, text, sizeof text);
        snprintf(err, errlen, "%s: HTTP %d%s%s", where, status, text[0] != '\0' ? ": " : "", text);
        goto out;
    }
    if ((m.certs = pem_certs(answer.data != NULL ? answer.data : "", answer.len, where, err, errlen)) == NULL)
        goto out;
    c = check_and_build(id, &m, err, errlen);
out:
    http_client_destroy(hc);
    wipe_free(auth, auth_len);
    wipe_free(token, token_len + 1);
    free(csr);
    buf_dispose(&answer);
    material_dispose(&m);
    return c;
}

/* ---- public: create, fetch, certs ---- */

static void add_error(char *err, size_t errlen, size_t *used, const char *field, const char *why)
{
    if (*used >= errlen)
        return;
    int n = snprintf(err + *used, errlen - *used, "%sidentity.%s: %s", *used > 0 ? "; " : "", field, why);
    if (n > 0)
        *used += (size_t)n;
}

identity_t *identity_create(const identity_opts_t *o, char *err, size_t errlen)
{
    size_t used = 0;
    if (errlen > 0)
        err[0] = '\0';
    if (o->trust_domain == NULL || ident_check_trust_domain(o->trust_domain, NULL, 0) != 0)
        add_error(err, errlen, &used, "trust_domain",
                  "required: lowercase letters, digits, '-' and '.', labels of 1 to 63 bytes, 255 in all");
    if (o->namespace == NULL || ident_check_label(o->namespace, NULL, 0) != 0)
        add_error(err, errlen, &used, "namespace", "required: a DNS-1123 label (a-z, 0-9, '-', 1 to 63 bytes)");
    if (o->service_account == NULL || ident_check_label(o->service_account, NULL, 0) != 0)
        add_error(err, errlen, &used, "service_account", "required: a DNS-1123 label (a-z, 0-9, '-', 1 to 63 bytes)");
    if (o->roots_file == NULL || o->roots_file[0] == '\0')
        add_error(err, errlen, &used, "roots_file", "required: the PEM bundle of the mesh's trusted roots");
    bool files = o->cert_file != NULL || o->key_file != NULL, ca = o->ca_address != NULL;
    if (files && ca)
        add_error(err, errlen, &used, "ca_address", "give either cert_file and key_file, or ca_address, not both");
    else if (!files && !ca)
        add_error(err, errlen, &used, "ca_address", "required without cert_file and key_file");
    if (files && (o->cert_file == NULL || o->key_file == NULL || o->cert_file[0] == '\0' || o->key_file[0] == '\0'))
        add_error(err, errlen, &used, o->cert_file == NULL ? "cert_file" : "key_file",
                  "cert_file and key_file go together");
    if (files && o->token_file != NULL)
        add_error(err, errlen, &used, "token_file", "only for ca_address (CA mode)");
    if (ca) {
        if (strncmp(o->ca_address, "https://", 8) != 0 || strlen(o->ca_address) > ADDRESS_MAX)
            add_error(err, errlen, &used, "ca_address",
                      "expected https://HOST:PORT[/path] of at most 256 bytes (the mesh CA speaks TLS)");
        if (o->token_file == NULL || o->token_file[0] == '\0')
            add_error(err, errlen, &used, "token_file", "required with ca_address: the bootstrap token's file");
    }
    if (o->ttl_s > TTL_MAX_S)
        add_error(err, errlen, &used, "ttl_s", "at most 100 years");
    if (o->file_poll_ms != 0 && o->file_poll_ms < IDENTITY_POLL_MIN_MS)
        add_error(err, errlen, &used, "file_poll_ms", "at least 10 ms");
    if (o->n_alpn > 0 && o->alpn == NULL)
        add_error(err, errlen, &used, "alpn", "n_alpn without the list");
    if (used > 0)
        return NULL;

    identity_t *id = xcalloc(1, sizeof *id);
    id->mode = ca ? MODE_CA : MODE_FILES;
    id->trust_domain = xstrdup(o->trust_domain);
    id->ns = xstrdup(o->namespace);
    id->sa = xstrdup(o->service_account);
    id->roots_file = xstrdup(o->roots_file);
    id->cert_file = dup_or_null(o->cert_file);
    id->key_file = dup_or_null(o->key_file);
    id->ca_address = dup_or_null(o->ca_address);
    id->token_file = dup_or_null(o->token_file);
    id->ttl_s = o->ttl_s != 0 ? o->ttl_s : IDENTITY_TTL_DEFAULT_S;
    id->poll_ms = o->file_poll_ms != 0 ? o->file_poll_ms : IDENTITY_POLL_DEFAULT_MS;
    id->n_alpn = o->n_alpn;
    id->alpn = xcalloc(o->n_alpn + 1, sizeof *id->alpn);
    for (size_t i = 0; i < o->n_alpn; i++)
        id->alpn[i] = xstrdup(o->alpn[i]);
    snprintf(id->expected_id, sizeof id->expected_id, "spiffe://%s/ns/%s/sa/%s", id->trust_domain, id->ns, id->sa);
    pthread_mutex_init(&id->lock, NULL);
    mono_cond_init(&id->cond);
    atomic_init(&id->stop_ms, 0);
    return id;
}

static identity_cert_t *attempt(identity_t *id, uint64_t deadline_ms, char *err, size_t errlen)
{
    return id->mode == MODE_FILES ? fetch_files(id, err, errlen) : fetch_ca(id, deadline_ms, err, errlen);
}

/* Keep an attempt's outcome as the last error (none after a success). */
static void record(identity_t *id, const identity_cert_t *c, const char *why)
{
    pthread_mutex_lock(&id->lock);
    snprintf(id->last_error, sizeof id->last_error, "%s", c == NULL ? why : "");
    pthread_mutex_unlock(&id->lock);
}

identity_cert_t *identity_fetch(identity_t *id, uint64_t deadline_ms, char *err, size_t errlen)
{
    char why[IDENTITY_ERR_MAX];
    if (deadline_ms == 0)
        deadline_ms = mono_now_ms() + IDENTITY_FETCH_TIMEOUT_MS;
    identity_cert_t *c = attempt(id, deadline_ms, why, sizeof why);
    record(id, c, why);
    if (c == NULL)
        snprintf(err, errlen, "%s", why);
    return c;
}

int64_t identity_renew_at_ms(const identity_cert_t *c)
{
    return c->not_before * 1000 + (c->not_after - c->not_before) * 1000 / 2;
}

int64_t identity_schedule_ms(const identity_cert_t *c)
{
    int64_t at = identity_renew_at_ms(c);
    int64_t half_left = c->obtained_ms + (c->not_after * 1000 - c->obtained_ms) / 2;
    if (at < half_left)
        at = half_left;
    if (at < c->obtained_ms + IDENTITY_RENEW_MIN_MS)
        at = c->obtained_ms + IDENTITY_RENEW_MIN_MS;
    return at;
}

void identity_cert_ref(identity_cert_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void identity_cert_unref(identity_cert_t *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    tls_ctx_unref(c->ctx);
    free(c);
}

/* ---- the renewal thread ---- */

/* The SHA-256 (hex) of roots_file's bytes; "" when it cannot be read (an attempt will say why). */
static void roots_hash(identity_t *id, char out[65])
{
    char err[256];
    size_t len = 0;
    file_stamp_t st;
    char *roots = read_bounded(id->roots_file, IDENTITY_FILE_MAX, &len, &st, err, sizeof err);
    out[0] = '\0';
    if (roots != NULL)
        sha256_hex(roots, len, out);
    free(roots);
}

/* Wait until unix ms `until`, a wake or the stop; lock held. */
static void wait_until(identity_t *id, int64_t until)
{
    while (!id->stopping && !id->wake) {
        int64_t left = until - unix_ms();
        if (left <= 0)
            return;
        struct timespec ts = mono_timespec(mono_now_ms() + (uint64_t)left);
        pthread_cond_timedwait(&id->cond, &id->lock, &ts);
    }
}

static void log_new(identity_t *id, const identity_cert_t *c)
{
    char until[32], renew[32];
    time_text(c->not_after, until, sizeof until);
    time_text((id->mode == MODE_CA ? identity_schedule_ms(c) : identity_renew_at_ms(c)) / 1000, renew, sizeof renew);
    log_info("identity: %s from %s, serial %s, valid until %s, %s %s; roots sha256 %.16s... (%d)", c->spiffe_id,
             id->mode == MODE_CA ? id->ca_address : id->cert_file, c->serial_hex, until,
             id->mode == MODE_CA ? "renewal at" : "replace the files by", renew, c->roots_sha256, c->n_roots);
}

static void *renewal_main(void *arg)
{
    identity_t *id = arg;
    char err[IDENTITY_ERR_MAX], logged[IDENTITY_ERR_MAX] = "", tried_roots[65] = "", roots[65];
    file_stamp_t tried[2];   /* files mode: cert_file's and key_file's at the last attempt */
    uint64_t backoff_ms = 0; /* 0: the last attempt succeeded */
    int64_t retry_at = 0;
    const identity_cert_t *warned = NULL;
    pthread_mutex_lock(&id->lock);
    identity_cert_t *cur = id->current; /* only this thread changes id->current while it runs */
    bool attempt_now = cur == NULL;
    _Static_assert(sizeof tried == sizeof((identity_cert_t *)0)->stamps, "tried mirrors identity_cert_t.stamps");
    memset(tried, 0, sizeof tried);
    if (cur != NULL) {
        memcpy(tried, cur->stamps, sizeof tried);
        memcpy(tried_roots, cur->roots_sha256, sizeof tried_roots);
    }
    for (;;) {
        int64_t now = unix_ms(), next = now + (int64_t)id->poll_ms;
        if (backoff_ms > 0 && retry_at < next)
            next = retry_at;
        else if (backoff_ms == 0 && id->mode == MODE_CA && cur != NULL && identity_schedule_ms(cur) < next)
            next = identity_schedule_ms(cur);
        if (!attempt_now)
            wait_until(id, next);
        if (id->stopping)
            break;
        bool go = id->wake || attempt_now;
        id->wake = attempt_now = false;
        pthread_mutex_unlock(&id->lock);

        now = unix_ms();
        if (backoff_ms > 0 && now >= retry_at)
            go = true;
        /* roots_file is read at every poll, in both modes: a new bundle makes a new cert */
        roots_hash(id, roots);
        if (strcmp(roots, tried_roots) != 0) {
            go = true;
            memcpy(tried_roots, roots, sizeof tried_roots);
        }
        if (id->mode == MODE_FILES) {
            file_stamp_t st[2];
            st[STAMP_CERT] = file_stamp(id->cert_file);
            st[STAMP_KEY] = file_stamp(id->key_file);
            for (int i = 0; i < 2; i++)
                go = go || !file_stamp_eq(&st[i], &tried[i]);
            memcpy(tried, st, sizeof st);
            if (!go && cur != NULL && warned != cur && now >= identity_renew_at_ms(cur)) {
                char until[32];
                time_text(cur->not_after, until, sizeof until);
                log_warn("identity: the certificate in %s (serial %s) is past half its lifetime and expires at %s; "
                         "nothing has replaced the files yet",
                         id->cert_file, cur->serial_hex, until);
                warned = cur;
            }
        } else if (backoff_ms == 0 && cur != NULL && now >= identity_schedule_ms(cur)) {
            go = true;
        }
        identity_cert_t *fresh = NULL;
        bool failed = false;
        if (go) {
            fresh = attempt(id, mono_now_ms() + IDENTITY_FETCH_TIMEOUT_MS, err, sizeof err);
            if (fresh == NULL && atomic_load(&id->stop_ms) != 0) {
                pthread_mutex_lock(&id->lock); /* cut short by identity_stop: not a failure */
                break;
            }
            record(id, fresh, err);
            failed = fresh == NULL;
            if (fresh != NULL && cur != NULL && id->mode == MODE_FILES &&
                memcmp(fresh->material, cur->material, sizeof cur->material) == 0) {
                identity_cert_unref(fresh); /* touched, not changed */
                fresh = NULL;
            }
        }
        if (failed) {
            backoff_ms = backoff_ms == 0 ? IDENTITY_BACKOFF_MIN_MS : backoff_ms * 2;
            if (backoff_ms > IDENTITY_BACKOFF_MAX_MS)
                backoff_ms = IDENTITY_BACKOFF_MAX_MS;
            now = unix_ms();
            int64_t sleep_ms = (int64_t)backoff_ms;
            if (cur != NULL && cur->not_after * 1000 > now && cur->not_after * 1000 - now < sleep_ms)
                sleep_ms = cur->not_after * 1000 - now;
            if (sleep_ms < RETRY_FLOOR_MS)
                sleep_ms = RETRY_FLOOR_MS;
            retry_at = now + sleep_ms;
            if (strcmp(err, logged) != 0) {
                log_warn("identity: %s (next try in %.1f s)", err, (double)sleep_ms / 1000);
                snprintf(logged, sizeof logged, "%s", err);
            }
        } else if (go) {
            backoff_ms = 0;
        }
        if (fresh != NULL) {
            logged[0] = '\0';
            log_new(id, fresh);
        }

        pthread_mutex_lock(&id->lock);
        if (failed)
            id->renewals_failed++;
        if (fresh == NULL)
            continue;
        identity_cert_t *old = id->current;
        id->current = fresh;
        id->renewals_ok++;
        cur = fresh;
        pthread_mutex_unlock(&id->lock);
        identity_cert_unref(old);
        identity_cert_ref(fresh);
        id->on_new(id->arg, fresh);
        pthread_mutex_lock(&id->lock);
    }
    pthread_mutex_unlock(&id->lock);
    return NULL;
}

int identity_start(identity_t *id, identity_cert_t *current, void (*on_new)(void *arg, identity_cert_t *c), void *arg)
{
    pthread_mutex_lock(&id->lock);
    if (id->started || on_new == NULL) {
        pthread_mutex_unlock(&id->lock);
        return -1;
    }
    if (current != NULL)
        identity_cert_ref(current);
    identity_cert_t *old = id->current;
    id->current = current;
    id->on_new = on_new;
    id->arg = arg;
    id->stopping = id->wake = false;
    atomic_store(&id->stop_ms, 0);
    int rc = pthread_create(&id->thread, NULL, renewal_main, id);
    if (rc != 0) {
        id->current = old;
        old = current;
        log_error("identity: cannot start the renewal thread: %s", strerror(rc));
    } else {
        id->started = true;
    }
    pthread_mutex_unlock(&id->lock);
    identity_cert_unref(old);
    return rc == 0 ? 0 : -1;
}

void identity_wake(identity_t *id)
{
    pthread_mutex_lock(&id->lock);
    id->wake = true;
    pthread_cond_signal(&id->cond);
    pthread_mutex_unlock(&id->lock);
}

void identity_stop(identity_t *id)
{
    pthread_mutex_lock(&id->lock);
    if (!id->started) {
        pthread_mutex_unlock(&id->lock);
        return;
    }
    id->stopping = true;
    atomic_store(&id->stop_ms, 1); /* any past time: a request in flight ends at its next tick */
    pthread_cond_signal(&id->cond);
    pthread_mutex_unlock(&id->lock);
    pthread_join(id->thread, NULL);
    pthread_mutex_lock(&id->lock);
    id->started = false;
    atomic_store(&id->stop_ms, 0); /* identity_fetch still works afterwards */
    pthread_mutex_unlock(&id->lock);
}

void identity_destroy(identity_t *id)
{
    if (id == NULL)
        return;
    identity_stop(id);
    identity_cert_unref(id->current);
    pthread_cond_destroy(&id->cond);
    pthread_mutex_destroy(&id->lock);
    char *strs[] = {id->trust_domain, id->ns,       id->sa,         id->roots_file,
                    id->cert_file,    id->key_file, id->ca_address, id->token_file};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(strs[i]);
    for (size_t i = 0; i < id->n_alpn; i++)
        free(id->alpn[i]);
    free(id->alpn);
    free(id);
}

/* ---- describe and counters ---- */

static void json_str(buf_t *out, const char *name, const char *v, bool comma)
{
    buf_printf(out, "%s\"%s\":", comma ? "," : "", name);
    if (v == NULL) {
        buf_append_str(out, "null");
        return;
    }
    buf_append_char(out, '"');
    buf_append_json_escaped(out, v, strlen(v));
    buf_append_char(out, '"');
}

static void json_time(buf_t *out, const char *name, int64_t t)
{
    char text[32];
    time_text(t, text, sizeof text);
    json_str(out, name, text, true);
}

void identity_describe(identity_t *id, const identity_cert_t *c, buf_t *out)
{
    char last_error[IDENTITY_ERR_MAX];
    pthread_mutex_lock(&id->lock);
    identity_cert_t *held = NULL;
    if (c == NULL && id->current != NULL) {
        held = id->current;
        identity_cert_ref(held);
        c = held;
    }
    uint64_t ok = id->renewals_ok, failed = id->renewals_failed;
    memcpy(last_error, id->last_error, sizeof last_error);
    pthread_mutex_unlock(&id->lock);

    buf_append_char(out, '{');
    json_str(out, "spiffe_id", c != NULL ? c->spiffe_id : NULL, false);
    json_str(out, "expected_spiffe_id", id->expected_id, true);
    json_str(out, "source", id->mode == MODE_CA ? IDENTITY_SOURCE_CA : IDENTITY_SOURCE_FILES, true);
    if (c != NULL) {
        json_time(out, "not_before", c->not_before);
        json_time(out, "not_after", c->not_after);
        json_str(out, "serial", c->serial_hex, true);
        json_str(out, "roots_sha256", c->roots_sha256, true);
        buf_printf(out, ",\"n_roots\":%d", c->n_roots);
        json_time(out, "renew_at", (id->mode == MODE_CA ? identity_schedule_ms(c) : identity_renew_at_ms(c)) / 1000);
    } else {
        buf_append_str(out, ",\"not_before\":null,\"not_after\":null,\"serial\":null,\"roots_sha256\":null,"
                            "\"n_roots\":null,\"renew_at\":null");
    }
    json_str(out, "trust_domain", id->trust_domain, true);
    json_str(out, "namespace", id->ns, true);
    json_str(out, "service_account", id->sa, true);
    json_str(out, "roots_file", id->roots_file, true);
    if (id->mode == MODE_CA) {
        json_str(out, "ca_address", id->ca_address, true);
        json_str(out, "token_file", id->token_file, true);
        buf_printf(out, ",\"ttl_s\":%llu", (unsigned long long)id->ttl_s);
    } else {
        json_str(out, "cert_file", id->cert_file, true);
        json_str(out, "key_file", id->key_file, true);
    }
    buf_printf(out, ",\"file_poll_ms\":%llu", (unsigned long long)id->poll_ms);
    json_str(out, "last_error", last_error[0] != '\0' ? last_error : NULL, true);
    buf_printf(out, ",\"renewals\":{\"ok\":%llu,\"failed\":%llu}}", (unsigned long long)ok, (unsigned long long)failed);
    identity_cert_unref(held);
}

void identity_counters(identity_t *id, identity_counters_t *out)
{
    pthread_mutex_lock(&id->lock);
    out->renewals_ok = id->renewals_ok;
    out->renewals_failed = id->renewals_failed;
    out->not_after = id->current != NULL ? id->current->not_after : 0;
    pthread_mutex_unlock(&id->lock);
}

void identity_render_prometheus(identity_t *id, buf_t *out)
{
    identity_counters_t k;
    identity_counters(id, &k);
    buf_printf(out,
               "# HELP outrider_proxy_identity_renewals_total Workload certificates the renewal thread obtained "
               "(renewals, reloaded files, new roots), by result.\n"
               "# TYPE outrider_proxy_identity_renewals_total counter\n"
               "outrider_proxy_identity_renewals_total{result=\"ok\"} %llu\n"
               "outrider_proxy_identity_renewals_total{result=\"failed\"} %llu\n",
               (unsigned long long)k.renewals_ok, (unsigned long long)k.renewals_failed);
    if (k.not_after != 0)
        buf_printf(out,
                   "# HELP outrider_proxy_identity_cert_expiry_seconds Seconds until the workload certificate "
                   "expires (negative once it has).\n"
                   "# TYPE outrider_proxy_identity_cert_expiry_seconds gauge\n"
                   "outrider_proxy_identity_cert_expiry_seconds %lld\n",
                   (long long)(k.not_after - unix_ms() / 1000));
}
