/*
 * transport: plain and TLS byte streams on libuv; see transport.h.
 *
 * Plain code paths are the first thing in each public function and touch
 * nothing TLS: one flag test decides. TLS work happens in pump(), run from
 * loop callbacks only (socket readable, a write completed, the idle handle
 * a read restart or the start arms), which is what keeps handler callbacks
 * out of the caller's own calls: transport_write and transport_shutdown
 * encrypt and send but never call back, and report failures by return.
 *
 * Invariants of the TLS rings (a BIO pair: `net` is our end):
 * - out ring: SSL appends records; at most one uv_write is in flight and it
 *   covers the ring's head (`inflight` bytes), consumed when it completes.
 *   While nothing is in flight the ring is empty or the socket refused
 *   everything (EAGAIN turned into the one uv_write).
 * - in ring: libuv reads into its free space; SSL_read takes from it. Reading
 *   from the socket stops while the ring is full, the handler paused, or
 *   the peer's EOF came in (the BIO pair then reports EOF to SSL).
 * - pending plaintext (pend, from pend_off) is fed to SSL before any newer
 *   write, in order; after SSL_write asked to retry, the retry passes the
 *   same bytes first (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets them move).
 */
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "hostport.h"
#include "xalloc.h"

enum {
    F_READING = 1 << 0,        /* uv_read_start is in effect */
    F_WANT_READ = 1 << 1,      /* the handler asked for bytes */
    F_CLOSING = 1 << 2,        /* transport_close was called */
    F_DEAD = 1 << 3,           /* failed: no more reads or writes */
    F_CLOSE_REPORTED = 1 << 4, /* on_close (or a failed on_open) was called */
    F_DRAIN_ARMED = 1 << 5,    /* the queue reached TRANSPORT_WRITE_LOW: on_drain when it falls below */
    F_SHUT_WANTED = 1 << 6,    /* transport_shutdown was called */
    F_SHUT_DONE = 1 << 7,      /* uv_shutdown was issued */
    F_EOF_IN = 1 << 8,         /* the socket reported EOF or an error */
    F_DRAIN_EMPTY = 1 << 9,    /* transport_drain_when_empty: on_drain also when a queue empties */
};

/* TLS 1.2: forward secrecy and AEAD only (Mozilla "intermediate" minus DHE); TLS 1.3: all three AEAD suites. */
#define TLS12_CIPHERS                                                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                         \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"
#define PEND_KEEP (64 * 1024) /* pending-plaintext storage kept once emptied; larger is freed */

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    atomic_uint refs;
    uint64_t gen;        /* unique per ctx: sessions resume only under the ctx that made them */
    unsigned char *alpn; /* wire format (length-prefixed ids); NULL when none */
    unsigned int alpn_len;
    bool verify_peer;
};

struct transport_tls {
    SSL *ssl;
    BIO *net; /* our end of the BIO pair; SSL owns the other */
    tls_ctx_t *ctx;
    uv_write_t wreq;
    uv_idle_t idle;  /* runs pump() from the loop after a read restart or the start */
    size_t inflight; /* out-ring bytes in wreq */
    bool busy;       /* records read or written since the last transport_trim */
    bool trimmed;    /* the buffers were freed and no record moved since */
    buf_t pend;      /* plaintext SSL has not taken, from pend_off */
    size_t pend_off;
    size_t hs_bytes; /* bytes received before the handshake completed */
    char *peer_id;
    char *alpn;
    char **expected; /* n_expected ids, one allocation */
    size_t n_expected;
    tls_session_cache_t *cache;
    char *session_key;
    const char *reason;
    bool remote;
    bool san_mismatch;
    bool handshake_done;
    bool notify_sent;
    bool read_wants_write; /* SSL_read or the handshake asked to retry once the out ring drains */
    char detail[256];
};

/* ---- session cache ---- */

typedef struct session_entry {
    uint64_t hash;
    uint64_t gen;
    uint64_t used;
    char *key; /* NULL: free slot */
    SSL_SESSION *sess;
} session_entry_t;

struct tls_session_cache {
    session_entry_t *e;
    size_t max;
    size_t n;
    uint64_t tick;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

tls_session_cache_t *tls_session_cache_create(size_t max_entries)
{
    tls_session_cache_t *c = xcalloc(1, sizeof *c);
    c->max = max_entries ? max_entries : TLS_SESSION_CACHE_DEFAULT;
    c->e = xcalloc(c->max, sizeof *c->e);
    return c;
}

static void entry_clear(tls_session_cache_t *c, session_entry_t *e)
{
    if (e->key == NULL)
        return;
    free(e->key);
    SSL_SESSION_free(e->sess);
    memset(e, 0, sizeof *e);
    c->n--;
}

void tls_session_cache_destroy(tls_session_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->max; i++)
        entry_clear(c, &c->e[i]);
    free(c->e);
    free(c);
}

size_t tls_session_cache_size(const tls_session_cache_t *c)
{
    return c->n;
}

static session_entry_t *cache_find(tls_session_cache_t *c, const char *key)
{
    uint64_t h = fnv1a(key);
    for (size_t i = 0; i < c->max; i++)
        if (c->e[i].key != NULL && c->e[i].hash == h && strcmp(c->e[i].key, key) == 0)
            return &c->e[i];
    return NULL;
}

/* Keep sess (the caller's reference passes to the cache) under key, replacing what was there. */
static void cache_put(tls_session_cache_t *c, const char *key, uint64_t gen, SSL_SESSION *sess)
{
    session_entry_t *e = cache_find(c, key);
    if (e == NULL) {
        session_entry_t *victim = &c->e[0];
        for (size_t i = 0; i < c->max; i++) {
            if (c->e[i].key == NULL) {
                victim = &c->e[i];
                break;
            }
            if (c->e[i].used < victim->used)
                victim = &c->e[i];
        }
        e = victim;
    }
    entry_clear(c, e);
    e->key = xstrdup(key);
    e->hash = fnv1a(key);
    e->gen = gen;
    e->sess = sess;
    e->used = ++c->tick;
    c->n++;
}

/* ---- contexts ---- */

static atomic_uint_fast64_t next_gen = 1;

/* Encrypted keys are refused rather than prompting on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* err = what + OpenSSL's last error text (never key material), and the error queue cleared. */
static void ssl_err(char *err, size_t errlen, const char *what)
{
    char text[200] = "";
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, text, sizeof text);
    snprintf(err, errlen, "%s%s%s", what, text[0] ? ": " : "", text);
    ERR_clear_error();
}

/* ids as ALPN wire format into out; returns its length, or -1 when an id is empty, too long or they overflow cap. */
static int alpn_encode(const char *const *ids, size_t n, unsigned char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = ids[i] != NULL ? strlen(ids[i]) : 0;
        if (l == 0 || l > 255 || len + 1 + l > cap)
            return -1;
        out[len++] = (unsigned char)l;
        memcpy(out + len, ids[i], l);
        len += l;
    }
    return (int)len;
}

/* Server: the first of our ids (our order of preference) the client offers; none is not an error. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    const tls_ctx_t *c = arg;
    for (unsigned i = 0; i < c->alpn_len; i += 1u + c->alpn[i]) {
        const unsigned char *mine = c->alpn + i;
        for (unsigned j = 0; j < inlen && j + 1u + in[j] <= inlen; j += 1u + in[j])
            if (in[j] == mine[0] && memcmp(in + j + 1, mine + 1, mine[0]) == 0) {
                *out = mine + 1;
                *outlen = mine[0];
                return SSL_TLSEXT_ERR_OK;
            }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    transport_t *t = SSL_get_app_data(ssl);
    if (t == NULL || t->tls == NULL || t->tls->cache == NULL || t->tls->session_key == NULL ||
        !SSL_SESSION_is_resumable(sess))
        return 0;
    cache_put(t->tls->cache, t->tls->session_key, t->tls->ctx->gen, sess);
    return 1; /* the cache keeps the reference */
}

static int load_cert_pem(SSL_CTX *sc, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return -1;
    int rc = -1;
    X509 *x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    if (x == NULL || SSL_CTX_use_certificate(sc, x) != 1)
        goto out;
    X509_free(x);
    x = NULL;
    SSL_CTX_clear_chain_certs(sc);
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add0_chain_cert(sc, ca) != 1) {
            X509_free(ca);
            goto out;
        }
    /* the loop ends with "no start line" at the end of the input: not an error */
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
        goto out;
    ERR_clear_error();
    rc = 0;
out:
    X509_free(x);
    BIO_free(b);
    return rc;
}

static int load_key_pem(SSL_CTX *sc, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return -1;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
    int rc = k != NULL && SSL_CTX_use_PrivateKey(sc, k) == 1 ? 0 : -1;
    EVP_PKEY_free(k);
    BIO_free(b);
    return rc;
}

static int load_ca_pem(SSL_CTX *sc, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return -1;
    X509_STORE *st = SSL_CTX_get_cert_store(sc);
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(st, x);
        X509_free(x);
        if (ok != 1) {
            BIO_free(b);
            return -1;
        }
        n++;
    }
    BIO_free(b);
    unsigned long e = ERR_peek_last_error();
    if (n == 0 || (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)))
        return -1;
    ERR_clear_error();
    return 0;
}

static int version_of(int v, int dflt)
{
    return v == 0 ? dflt : v == 12 ? TLS1_2_VERSION : v == 13 ? TLS1_3_VERSION : -1;
}

/* Certificate, key and CAs into sc; -1 with err set. */
static int load_material(SSL_CTX *sc, const tls_ctx_opts_t *o, char *err, size_t errlen)
{
    if (o->cert_pem != NULL    ? load_cert_pem(sc, o->cert_pem) < 0
        : o->cert_file != NULL ? SSL_CTX_use_certificate_chain_file(sc, o->cert_file) != 1
                               : false) {
        char what[300];
        snprintf(what, sizeof what, "certificate %s", o->cert_file != NULL ? o->cert_file : "(PEM)");
        ssl_err(err, errlen, what);
        return -1;
    }
    if (o->key_pem != NULL    ? load_key_pem(sc, o->key_pem) < 0
        : o->key_file != NULL ? SSL_CTX_use_PrivateKey_file(sc, o->key_file, SSL_FILETYPE_PEM) != 1
                              : false) {
        char what[300];
        snprintf(what, sizeof what, "private key %s", o->key_file != NULL ? o->key_file : "(PEM)");
        ssl_err(err, errlen, what);
        return -1;
    }
    if ((o->cert_pem != NULL || o->cert_file != NULL) && SSL_CTX_check_private_key(sc) != 1) {
        ssl_err(err, errlen, "private key does not match the certificate");
        return -1;
    }
    if (o->ca_pem != NULL    ? load_ca_pem(sc, o->ca_pem) < 0
        : o->ca_file != NULL ? SSL_CTX_load_verify_file(sc, o->ca_file) != 1
                             : false) {
        char what[300];
        snprintf(what, sizeof what, "CA bundle %s", o->ca_file != NULL ? o->ca_file : "(PEM)");
        ssl_err(err, errlen, what);
        return -1;
    }
    return 0;
}

tls_ctx_t *tls_ctx_create(const tls_ctx_opts_t *o, char *err, size_t errlen)
{
    bool has_cert = o->cert_file != NULL || o->cert_pem != NULL;
    bool has_key = o->key_file != NULL || o->key_pem != NULL;
    bool has_ca = o->ca_file != NULL || o->ca_pem != NULL;
    int min_v = version_of(o->min_version, TLS1_2_VERSION), max_v = version_of(o->max_version, TLS1_3_VERSION);
    unsigned char alpn[TRANSPORT_TLS_ALPN_MAX];
    int alpn_len = alpn_encode(o->alpn, o->n_alpn, alpn, sizeof alpn);
    if ((o->cert_file != NULL && o->cert_pem != NULL) || (o->key_file != NULL && o->key_pem != NULL) ||
        (o->ca_file != NULL && o->ca_pem != NULL)) {
        snprintf(err, errlen, "give each of certificate, key and CA bundle as a file or as PEM, not both");
        return NULL;
    }
    if (has_cert != has_key) {
        snprintf(err, errlen, has_cert ? "a certificate needs its private key" : "a private key needs its certificate");
        return NULL;
    }
    if (o->verify_peer && !has_ca) {
        snprintf(err, errlen, "verifying the peer needs a CA bundle");
        return NULL;
    }
    if (min_v < 0 || max_v < 0 || min_v > max_v) {
        snprintf(err, errlen, "TLS versions: min and max are 12 or 13, min <= max");
        return NULL;
    }
    if (alpn_len < 0) {
        snprintf(err, errlen, "ALPN: ids are 1 to 255 bytes, %d bytes in all at most", TRANSPORT_TLS_ALPN_MAX);
        return NULL;
    }
    SSL_CTX *sc = SSL_CTX_new(TLS_method());
    if (sc == NULL) {
        ssl_err(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    tls_ctx_t *c = xcalloc(1, sizeof *c);
    c->ssl_ctx = sc;
    atomic_init(&c->refs, 1);
    c->gen = atomic_fetch_add(&next_gen, 1);
    c->verify_peer = o->verify_peer;
    if (SSL_CTX_set_min_proto_version(sc, min_v) != 1 || SSL_CTX_set_max_proto_version(sc, max_v) != 1 ||
        SSL_CTX_set_cipher_list(sc, TLS12_CIPHERS) != 1 || SSL_CTX_set_ciphersuites(sc, TLS13_SUITES) != 1 ||
        SSL_CTX_set1_groups_list(sc, TLS_GROUPS) != 1) {
        ssl_err(err, errlen, "TLS parameters");
        goto fail;
    }
    SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                (o->no_tickets ? SSL_OP_NO_TICKET : 0));
    /* no SSL_MODE_RELEASE_BUFFERS: busy connections keep their record buffers, idle ones lose them (transport_trim) */
    SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* tickets carry the sessions (stateless); no shared in-memory store to lock across workers */
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_BOTH | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_set_session_id_context(sc, (const unsigned char *)"outrider", 8);
    SSL_CTX_set_num_tickets(sc, o->no_tickets ? 0 : 1);
    SSL_CTX_sess_set_new_cb(sc, on_new_session);
    SSL_CTX_set_verify_depth(sc, TRANSPORT_TLS_VERIFY_DEPTH);
    SSL_CTX_set_max_cert_list(sc, TRANSPORT_TLS_HANDSHAKE_MAX);
    SSL_CTX_set_default_passwd_cb(sc, no_password);
    if (load_material(sc, o, err, errlen) < 0)
        goto fail;
    if (alpn_len > 0) {
        c->alpn = xmalloc((size_t)alpn_len);
        memcpy(c->alpn, alpn, (size_t)alpn_len);
        c->alpn_len = (unsigned)alpn_len;
        if (SSL_CTX_set_alpn_protos(sc, c->alpn, c->alpn_len) != 0) { /* 0 is success here */
            ssl_err(err, errlen, "ALPN");
            goto fail;
        }
        SSL_CTX_set_alpn_select_cb(sc, alpn_select, c);
    }
    return c;
fail:
    tls_ctx_unref(c);
    return NULL;
}

void tls_ctx_ref(tls_ctx_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void tls_ctx_unref(tls_ctx_t *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ssl_ctx);
    free(c->alpn);
    free(c);
}

/* ---- certificates and failures ---- */

/* cert's URI SAN (the first spiffe:// one, else the first) into out; 0, or -1 when none fits. */
static int uri_san(X509 *cert, char *out, size_t cap)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL)
        return -1;
    const unsigned char *best = NULL;
    int best_len = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        int len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        if (len <= 0 || (size_t)len >= cap || memchr(d, '\0', (size_t)len) != NULL)
            continue;
        bool spiffe = len > 9 && strncasecmp((const char *)d, "spiffe://", 9) == 0;
        if (best == NULL || spiffe) {
            best = d;
            best_len = len;
            if (spiffe)
                break;
        }
    }
    if (best != NULL) {
        memcpy(out, best, (size_t)best_len);
        out[best_len] = '\0';
    }
    GENERAL_NAMES_free(names);
    return best != NULL ? 0 : -1;
}

/* An expected id equals the peer's, or ends in '/' and begins it (a trust domain: "spiffe://cluster.local/"). */
static bool expected_match(const transport_tls_t *tls, const char *id)
{
    for (size_t i = 0; i < tls->n_expected; i++) {
        const char *e = tls->expected[i];
        size_t n = strlen(e);
        if (n > 0 && e[n - 1] == '/' ? strncmp(e, id, n) == 0 && id[n] != '\0' : strcmp(e, id) == 0)
            return true;
    }
    return false;
}

/* The chain verified: at the leaf, check the expected identities (the alert tells the peer why we hung up). */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    transport_t *t = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    if (t == NULL || t->tls == NULL || t->tls->n_expected == 0)
        return ok;
    char id[TRANSPORT_TLS_PEER_ID_MAX + 1];
    if (uri_san(X509_STORE_CTX_get_current_cert(x), id, sizeof id) == 0 && expected_match(t->tls, id))
        return 1;
    t->tls->san_mismatch = true;
    X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

static const char *verify_reason(long v)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return TRANSPORT_R_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID: return TRANSPORT_R_NOT_YET_VALID;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_CERT_UNTRUSTED: return TRANSPORT_R_UNKNOWN_CA;
    case X509_V_ERR_APPLICATION_VERIFICATION:
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH: return TRANSPORT_R_SAN_MISMATCH;
    default: return TRANSPORT_R_BAD_CERTIFICATE;
    }
}

/* A TLS alert the peer sent us (RFC 8446 6.2). */
static const char *alert_reason(int alert)
{
    switch (alert) {
    case SSL_AD_UNKNOWN_CA: return TRANSPORT_R_UNKNOWN_CA;
    case SSL_AD_CERTIFICATE_EXPIRED: return TRANSPORT_R_EXPIRED;
    case SSL_AD_CERTIFICATE_REQUIRED: return TRANSPORT_R_NO_PEER_CERTIFICATE;
    case SSL_AD_PROTOCOL_VERSION: return TRANSPORT_R_PROTOCOL_VERSION;
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_UNKNOWN: return TRANSPORT_R_BAD_CERTIFICATE;
    default: return TRANSPORT_R_OTHER;
    }
}

/* Name the failure (from OpenSSL's queue, the verify result and our flags) and keep its text; clears the queue. */
static void classify(transport_t *t, int ssl_error, int status)
{
    transport_tls_t *tls = t->tls;
    unsigned long e = ERR_peek_error();
    long v = SSL_get_verify_result(tls->ssl);
    int r = e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
    tls->remote = false;
    if (tls->san_mismatch) {
        tls->reason = TRANSPORT_R_SAN_MISMATCH;
    } else if (r == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        tls->reason = verify_reason(v);
    } else if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256) {
        tls->reason = alert_reason(r - SSL_AD_REASON_OFFSET);
        tls->remote = true;
    } else {
        switch (r) {
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: tls->reason = TRANSPORT_R_NO_PEER_CERTIFICATE; break;
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_VERSION_TOO_HIGH:
        case SSL_R_UNSUPPORTED_SSL_VERSION: tls->reason = TRANSPORT_R_PROTOCOL_VERSION; break;
        case SSL_R_NO_SHARED_CIPHER: tls->reason = TRANSPORT_R_NO_SHARED_CIPHER; break;
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST: tls->reason = TRANSPORT_R_NOT_TLS; break;
        case SSL_R_EXCESSIVE_MESSAGE_SIZE: tls->reason = TRANSPORT_R_HANDSHAKE_TOO_LARGE; break;
        case SSL_R_UNEXPECTED_EOF_WHILE_READING: tls->reason = TRANSPORT_R_CONNECTION_CLOSED; break;
        default:
            if (r == 0 && (ssl_error == SSL_ERROR_SYSCALL || (t->flags & F_EOF_IN) || status != UV_EPROTO))
                tls->reason = TRANSPORT_R_CONNECTION_CLOSED;
            else if (v != X509_V_OK)
                tls->reason = verify_reason(v);
            else
                tls->reason = TRANSPORT_R_OTHER;
        }
    }
    if (e != 0) {
        ERR_error_string_n(e, tls->detail, sizeof tls->detail);
        if (r == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            size_t l = strlen(tls->detail);
            snprintf(tls->detail + l, sizeof tls->detail - l, " (%s)", X509_verify_cert_error_string(v));
        }
    } else if (tls->san_mismatch) {
        snprintf(tls->detail, sizeof tls->detail, "the peer's URI SAN is not an expected identity");
    } else {
        snprintf(tls->detail, sizeof tls->detail, "connection ended during the TLS handshake (%s)",
                 uv_strerror(status != UV_EPROTO ? status : UV_EOF));
    }
    ERR_clear_error();
}

/* ---- plain ---- */

typedef struct wreq {
    uv_write_t req;
    transport_t *t;
    size_t len;
    char data[];
} wreq_t;

/*
 * Reads without an on_alloc land here: one loop per thread, and a read is
 * delivered before the next one is made, so one buffer serves all.
 */
static _Thread_local char tl_buf[TRANSPORT_READ_CHUNK];

static bool gone(const transport_t *t)
{
    return (t->flags & (F_CLOSING | F_DEAD)) != 0;
}

static void set_reading(transport_t *t, bool want, uv_alloc_cb alloc, uv_read_cb read)
{
    if (want && !(t->flags & F_READING)) {
        if (uv_read_start((uv_stream_t *)&t->tcp, alloc, read) == 0)
            t->flags |= F_READING;
    } else if (!want && (t->flags & F_READING)) {
        uv_read_stop((uv_stream_t *)&t->tcp);
        t->flags &= ~F_READING;
    }
}

static void report_close(transport_t *t, int status)
{
    if (t->flags & F_READING) {
        uv_read_stop((uv_stream_t *)&t->tcp);
        t->flags &= ~F_READING;
    }
    if (status != UV_EOF)
        t->flags |= F_DEAD;
    if (t->flags & F_CLOSE_REPORTED)
        return;
    t->flags |= F_CLOSE_REPORTED;
    if (t->h->on_close != NULL)
        t->h->on_close(t->ctx, status);
}

static void check_drain(transport_t *t)
{
    if (gone(t))
        return;
    size_t q = transport_write_queued(t);
    bool armed = (t->flags & F_DRAIN_ARMED) && q < TRANSPORT_WRITE_LOW;
    if (armed || ((t->flags & F_DRAIN_EMPTY) && q == 0)) {
        t->flags &= ~F_DRAIN_ARMED;
        if (t->h->on_drain != NULL)
            t->h->on_drain(t->ctx);
    }
}

static void plain_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    transport_t *t = h->data;
    if (t->h->on_alloc != NULL)
        t->h->on_alloc(t->ctx, suggested, b);
    else
        *b = uv_buf_init(tl_buf, sizeof tl_buf);
}

static void plain_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    transport_t *t = s->data;
    if (n > 0)
        t->h->on_read(t->ctx, b->base, (size_t)n);
    else if (n < 0 && !(t->flags & F_CLOSING))
        report_close(t, (int)n);
}

static void plain_written(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    transport_t *t = w->t;
    t->queued -= w->len;
    free(w);
    if (gone(t))
        return;
    if (status < 0) {
        report_close(t, status);
        return;
    }
    check_drain(t);
}

static int plain_write(transport_t *t, const char *data, size_t len)
{
    if (t->queued + len > TRANSPORT_WRITE_MAX)
        return -1;
    if (t->queued == 0) {
        /* nothing in flight: the socket usually takes it all, with no request to allocate or complete */
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&t->tcp, &b, 1);
        if (n == (int)len)
            return 0;
        if (n < 0 && n != UV_EAGAIN) {
            t->flags |= F_DEAD;
            return -1;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
    wreq_t *w = xmalloc(sizeof *w + len);
    w->t = t;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, plain_written) < 0) {
        free(w);
        t->flags |= F_DEAD;
        return -1;
    }
    t->queued += len;
    if (t->queued >= TRANSPORT_WRITE_LOW)
        t->flags |= F_DRAIN_ARMED;
    return 0;
}

/* ---- TLS: moving ciphertext ---- */

static void tls_written(uv_write_t *req, int status);
static void pump(transport_t *t, bool reads);

/*
 * Send the out ring: what the socket takes now is consumed at once, the
 * rest goes in one uv_write straight from the ring. Returns the bytes
 * consumed now, or a negative libuv code.
 */
static int flush_out(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    int sent = 0;
    while (tls->inflight == 0) {
        char *p, *q;
        int n = BIO_nread0(tls->net, &p);
        if (n <= 0)
            break;
        uv_buf_t b = uv_buf_init(p, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&t->tcp, &b, 1);
        if (w < 0 && w != UV_EAGAIN)
            return w;
        if (w > 0) {
            BIO_nread(tls->net, &q, w);
            sent += w;
            if (w == n)
                continue;
        } else {
            w = 0;
        }
        b = uv_buf_init(p + w, (unsigned)(n - w));
        int rc = uv_write(&tls->wreq, (uv_stream_t *)&t->tcp, &b, 1, tls_written);
        if (rc < 0)
            return rc;
        tls->inflight = (size_t)(n - w);
    }
    return sent;
}

/*
 * Empty this thread's OpenSSL error queue before an SSL call whose result
 * SSL_get_error reads. Every failure path here drains the queue, so it is
 * almost always empty: peeking costs far less than ERR_clear_error, which
 * walks all 16 slots (3.3k instructions a request, at 4 calls per request).
 */
static inline void err_clear(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

static void keep_detail(transport_tls_t *tls)
{
    unsigned long e = ERR_peek_error();
    if (e != 0)
        ERR_error_string_n(e, tls->detail, sizeof tls->detail);
    ERR_clear_error();
}

/*
 * Encrypt data into the out ring, sending as it fills. Returns the bytes
 * SSL took (less than len when the socket is full), or a negative code.
 */
static int ssl_write_some(transport_t *t, const char *data, size_t len)
{
    transport_tls_t *tls = t->tls;
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done < INT_MAX ? len - done : INT_MAX;
        err_clear();
        tls->busy = true;
        tls->trimmed = false;
        int n = SSL_write(tls->ssl, data + done, (int)chunk);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        int e = SSL_get_error(tls->ssl, n);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
            keep_detail(tls);
            return UV_EPROTO;
        }
        if (e == SSL_ERROR_WANT_READ || tls->inflight > 0)
            break;
        int f = flush_out(t);
        if (f < 0)
            return f;
        if (f == 0)
            break;
    }
    int f = flush_out(t);
    return f < 0 ? f : (int)done;
}

static size_t pend_len(const transport_tls_t *tls)
{
    return tls->pend.len - tls->pend_off;
}

static int send_pending(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    if (pend_len(tls) == 0)
        return 0;
    int n = ssl_write_some(t, tls->pend.data + tls->pend_off, pend_len(tls));
    if (n < 0)
        return n;
    tls->pend_off += (size_t)n;
    if (tls->pend_off == tls->pend.len) {
        tls->pend.len = tls->pend_off = 0;
        if (tls->pend.cap > PEND_KEEP)
            buf_dispose(&tls->pend);
    } else if (tls->pend_off >= pend_len(tls)) {
        /* compact once the consumed part outweighs the rest: each byte moves O(1) times */
        memmove(tls->pend.data, tls->pend.data + tls->pend_off, pend_len(tls));
        tls->pend.len -= tls->pend_off;
        tls->pend_off = 0;
    }
    return 0;
}

/* close_notify once everything written went out, then the FIN. */
static int shutdown_step(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    if (!(t->flags & F_SHUT_WANTED) || (t->flags & F_SHUT_DONE) || !tls->handshake_done || pend_len(tls) > 0)
        return 0;
    if (!tls->notify_sent) {
        tls->notify_sent = true;
        ERR_clear_error();
        SSL_shutdown(tls->ssl); /* 0: sent, the peer's has not come; both fine for a half-close */
        ERR_clear_error();
        int f = flush_out(t);
        if (f < 0)
            return f;
    }
    if (tls->inflight == 0 && BIO_ctrl_pending(tls->net) == 0) {
        t->flags |= F_SHUT_DONE;
        return uv_shutdown(&t->shutdown_req, (uv_stream_t *)&t->tcp, NULL);
    }
    return 0;
}

static void tls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    transport_t *t = h->data;
    char *p;
    int n = BIO_nwrite0(t->tls->net, &p);
    *b = n > 0 ? uv_buf_init(p, (unsigned)n) : uv_buf_init(NULL, 0);
}

static void tls_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void tls_update_reading(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    bool want = !(t->flags & (F_CLOSING | F_DEAD | F_EOF_IN | F_CLOSE_REPORTED)) &&
                (!tls->handshake_done || (t->flags & F_WANT_READ)) && BIO_ctrl_get_write_guarantee(tls->net) > 0;
    set_reading(t, want, tls_alloc, tls_read);
}

static void on_idle(uv_idle_t *h);

static void schedule_pump(transport_t *t)
{
    if (!uv_is_active((uv_handle_t *)&t->tls->idle))
        uv_idle_start(&t->tls->idle, on_idle);
}

/* ---- TLS: the handshake and records ---- */

static void fail_handshake(transport_t *t, int status, int ssl_error, const char *reason)
{
    transport_tls_t *tls = t->tls;
    if (reason != NULL) {
        tls->reason = reason;
        tls->remote = false;
        if (tls->detail[0] == '\0')
            snprintf(tls->detail, sizeof tls->detail, "%s", reason);
        ERR_clear_error();
    } else {
        classify(t, ssl_error, status);
    }
    t->flags |= F_DEAD | F_CLOSE_REPORTED;
    set_reading(t, false, NULL, NULL);
    (void)flush_out(t); /* the alert, so that the peer learns why */
    if (tls->cache != NULL && tls->session_key != NULL) {
        session_entry_t *e = cache_find(tls->cache, tls->session_key);
        if (e != NULL)
            entry_clear(tls->cache, e);
    }
    if (t->h->on_open != NULL)
        t->h->on_open(t->ctx, status);
}

/* A socket error or a failed write: the handshake fails, or the open stream ends. */
static void io_failed(transport_t *t, int status)
{
    ERR_clear_error(); /* nothing OpenSSL said is about this */
    if (!t->tls->handshake_done)
        fail_handshake(t, status, SSL_ERROR_SYSCALL, NULL);
    else
        report_close(t, status);
}

static void handshake_done(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    tls->handshake_done = true;
    X509 *peer = SSL_get0_peer_certificate(tls->ssl);
    char id[TRANSPORT_TLS_PEER_ID_MAX + 1];
    if (peer != NULL && SSL_get_verify_result(tls->ssl) == X509_V_OK && uri_san(peer, id, sizeof id) == 0)
        tls->peer_id = xstrdup(id);
    const unsigned char *proto;
    unsigned int proto_len;
    SSL_get0_alpn_selected(tls->ssl, &proto, &proto_len);
    if (proto_len > 0) {
        tls->alpn = xmalloc(proto_len + 1);
        memcpy(tls->alpn, proto, proto_len);
        tls->alpn[proto_len] = '\0';
    }
}

/* Whether SSL failed only because the socket's EOF reached it (a FIN with no close_notify). */
static bool ended_by_peer(const transport_t *t)
{
    unsigned long e = ERR_peek_error();
    return (t->flags & F_EOF_IN) &&
           (e == 0 || (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING));
}

/* 1: completed (on_open(0) was called), 0: waiting for bytes, -1: failed (reported). */
static int handshake_step(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    err_clear();
    int rc = SSL_do_handshake(tls->ssl);
    if (rc != 1) {
        int e = SSL_get_error(tls->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            tls->read_wants_write = e == SSL_ERROR_WANT_WRITE;
            int f = flush_out(t);
            if (f < 0) {
                fail_handshake(t, f, SSL_ERROR_SYSCALL, NULL);
                return -1;
            }
            return 0;
        }
        fail_handshake(t, ended_by_peer(t) ? UV_EOF : UV_EPROTO, e, NULL);
        return -1;
    }
    handshake_done(t);
    int f = flush_out(t);
    if (f < 0) {
        fail_handshake(t, f, SSL_ERROR_SYSCALL, NULL);
        return -1;
    }
    /* a resumed session skips certificate verification, so the identity is checked here too */
    if (tls->n_expected > 0 && (tls->peer_id == NULL || !expected_match(tls, tls->peer_id))) {
        tls->san_mismatch = true;
        fail_handshake(t, UV_EPROTO, SSL_ERROR_SSL, TRANSPORT_R_SAN_MISMATCH);
        return -1;
    }
    if (t->h->on_open != NULL)
        t->h->on_open(t->ctx, 0);
    return 1;
}

/* Deliver decrypted bytes while the handler wants them; then EOF or a failure. */
static void read_records(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    tls->read_wants_write = false;
    while ((t->flags & F_WANT_READ) && !(t->flags & (F_CLOSING | F_DEAD | F_CLOSE_REPORTED))) {
        uv_buf_t b = uv_buf_init(tl_buf, sizeof tl_buf);
        if (t->h->on_alloc != NULL)
            t->h->on_alloc(t->ctx, TRANSPORT_READ_CHUNK, &b);
        if (b.base == NULL || b.len == 0)
            return;
        err_clear();
        tls->busy = true;
        tls->trimmed = false;
        int n = SSL_read(tls->ssl, b.base, b.len < INT_MAX ? (int)b.len : INT_MAX);
        if (n > 0) {
            t->h->on_read(t->ctx, b.base, (size_t)n);
            continue;
        }
        int e = SSL_get_error(tls->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            tls->read_wants_write = e == SSL_ERROR_WANT_WRITE;
            err_clear(); /* the usual end of a read: nothing queued, so only peek */
            return;
        }
        if (e == SSL_ERROR_ZERO_RETURN || ended_by_peer(t)) {
            /* close_notify, or a FIN without one: the framing above (HTTP) tells a truncation */
            ERR_clear_error();
            report_close(t, UV_EOF);
            return;
        }
        /* after on_open: a TLS 1.3 client learns here that the server refused its certificate */
        classify(t, e, UV_EPROTO);
        report_close(t, UV_EPROTO);
        return;
    }
}

/* Move everything that can move: handshake, pending writes, reads, close_notify; then drain and reading state. */
static void pump(transport_t *t, bool reads)
{
    transport_tls_t *tls = t->tls;
    if (gone(t))
        return;
    if (!tls->handshake_done) {
        if (handshake_step(t) <= 0 || gone(t)) {
            if (!gone(t))
                tls_update_reading(t);
            return;
        }
        reads = true;
    }
    int rc = send_pending(t);
    if (rc >= 0 && (reads || tls->read_wants_write)) {
        read_records(t);
        if (gone(t))
            return;
    }
    if (rc >= 0)
        rc = flush_out(t); /* what SSL_read produced (key updates, alerts) */
    if (rc >= 0)
        rc = shutdown_step(t);
    if (rc < 0) {
        io_failed(t, rc);
        return;
    }
    tls_update_reading(t);
    check_drain(t);
}

static void on_idle(uv_idle_t *h)
{
    transport_t *t = h->data;
    uv_idle_stop(h);
    pump(t, true);
}

static void tls_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    transport_t *t = s->data;
    transport_tls_t *tls = t->tls;
    if (n == 0 || gone(t))
        return;
    if (n == UV_ENOBUFS) { /* the in ring filled up: wait for SSL to take from it */
        tls_update_reading(t);
        return;
    }
    if (n < 0) {
        t->flags |= F_EOF_IN;
        set_reading(t, false, NULL, NULL);
        BIO_shutdown_wr(tls->net); /* SSL sees EOF once it has taken what is in the ring */
        if (n != UV_EOF) {
            io_failed(t, (int)n);
            return;
        }
        pump(t, true);
        return;
    }
    char *p;
    BIO_nwrite(tls->net, &p, (int)n); /* libuv read into the ring's free space: commit it */
    if (!tls->handshake_done) {
        tls->hs_bytes += (size_t)n;
        if (tls->hs_bytes > TRANSPORT_TLS_HANDSHAKE_MAX) {
            snprintf(tls->detail, sizeof tls->detail, "more than %d bytes before the handshake completed",
                     TRANSPORT_TLS_HANDSHAKE_MAX);
            fail_handshake(t, UV_EPROTO, SSL_ERROR_SSL, TRANSPORT_R_HANDSHAKE_TOO_LARGE);
            return;
        }
    }
    pump(t, true);
}

static void tls_written(uv_write_t *req, int status)
{
    transport_t *t = req->data;
    transport_tls_t *tls = t->tls;
    size_t n = tls->inflight;
    tls->inflight = 0;
    if (t->flags & F_CLOSING)
        return;
    if (status < 0) {
        if (!(t->flags & F_DEAD))
            io_failed(t, status);
        return;
    }
    char *p;
    BIO_nread(tls->net, &p, (int)n);
    if (t->flags & F_DEAD) {
        (void)flush_out(t); /* the rest of a failure's alert */
        return;
    }
    pump(t, false);
}

static int tls_write(transport_t *t, const char *data, size_t len)
{
    transport_tls_t *tls = t->tls;
    if (pend_len(tls) + BIO_ctrl_pending(tls->net) + len > TRANSPORT_WRITE_MAX)
        return -1;
    if (tls->handshake_done && pend_len(tls) == 0) {
        int n = ssl_write_some(t, data, len);
        if (n < 0) {
            t->flags |= F_DEAD;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    if (len > 0)
        buf_append(&tls->pend, data, len);
    if (transport_write_queued(t) >= TRANSPORT_WRITE_LOW)
        t->flags |= F_DRAIN_ARMED;
    return 0;
}

static void tls_free(transport_tls_t *tls, bool failed)
{
    if (tls == NULL)
        return;
    /*
     * SSL_free drops the session of a connection not shut down with
     * close_notify ("bad session"); a healthy connection the application
     * closed keeps it resumable. Failures were dropped by OpenSSL already.
     */
    if (tls->handshake_done && !failed)
        SSL_set_shutdown(tls->ssl, SSL_get_shutdown(tls->ssl) | SSL_SENT_SHUTDOWN);
    SSL_free(tls->ssl); /* frees SSL's end of the pair */
    BIO_free(tls->net);
    buf_dispose(&tls->pend);
    free(tls->peer_id);
    free(tls->alpn);
    free(tls->expected);
    free(tls->session_key);
    tls_ctx_unref(tls->ctx);
    free(tls);
}

/* ---- public ---- */

static void on_handle_closed(uv_handle_t *h)
{
    transport_t *t = h->data;
    if (--t->open_handles > 0)
        return;
    tls_free(t->tls, (t->flags & F_DEAD) != 0);
    t->tls = NULL;
    if (t->close_cb != NULL)
        t->close_cb(t);
}

int transport_init(uv_loop_t *loop, transport_t *t)
{
    memset(t, 0, sizeof *t);
    int rc = uv_tcp_init(loop, &t->tcp);
    if (rc < 0)
        return rc;
    t->tcp.data = t;
    t->shutdown_req.data = t;
    t->open_handles = 1;
    return 0;
}

int transport_start(transport_t *t, const transport_handler_t *h, void *ctx)
{
    t->h = h;
    t->ctx = ctx;
    return 0;
}

static char **copy_ids(const char *const *ids, size_t n)
{
    size_t total = n * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        total += strlen(ids[i]) + 1;
    char **out = xmalloc(total);
    char *p = (char *)(out + n);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(ids[i]) + 1;
        memcpy(p, ids[i], l);
        out[i] = p;
        p += l;
    }
    return out;
}

int transport_start_tls(transport_t *t, tls_ctx_t *ctx, const transport_tls_opts_t *o, const transport_handler_t *h,
                        void *ctx_arg)
{
    static const transport_tls_opts_t none = {0};
    if (o == NULL)
        o = &none;
    if (t->tls != NULL || gone(t) || o->initial_len > TRANSPORT_TLS_IN_BUF)
        return UV_EINVAL;
    unsigned char alpn[TRANSPORT_TLS_ALPN_MAX];
    int alpn_len = alpn_encode(o->alpn, o->n_alpn, alpn, sizeof alpn);
    if (alpn_len < 0)
        return UV_EINVAL;
    SSL *ssl = SSL_new(ctx->ssl_ctx);
    BIO *inner = NULL, *net = NULL;
    if (ssl == NULL || BIO_new_bio_pair(&inner, TRANSPORT_TLS_OUT_BUF, &net, TRANSPORT_TLS_IN_BUF) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return UV_ENOMEM;
    }
    SSL_set_bio(ssl, inner, inner);
    set_reading(t, false, NULL, NULL); /* PERMISSIVE: the plain reads that sniffed the ClientHello end here */
    transport_tls_t *tls = xcalloc(1, sizeof *tls);
    tls->ssl = ssl;
    tls->net = net;
    tls->ctx = ctx;
    tls_ctx_ref(ctx);
    tls->wreq.data = t;
    uv_idle_init(t->tcp.loop, &tls->idle);
    tls->idle.data = t;
    t->open_handles++;
    t->tls = tls;
    t->h = h;
    t->ctx = ctx_arg;
    SSL_set_app_data(ssl, t);
    if (o->n_expected_ids > 0) {
        tls->expected = copy_ids(o->expected_ids, o->n_expected_ids);
        tls->n_expected = o->n_expected_ids;
    }
    int rc = 0;
    if (o->role == TRANSPORT_SERVER) {
        SSL_set_accept_state(ssl);
        SSL_set_verify(ssl, ctx->verify_peer ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
                       verify_cb);
    } else {
        SSL_set_connect_state(ssl);
        SSL_set_verify(ssl, ctx->verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, verify_cb);
        if (o->sni != NULL && SSL_set_tlsext_host_name(ssl, o->sni) != 1)
            rc = UV_EINVAL;
        if (o->verify_host != NULL) { /* an IP address must be an IP SAN, a name a DNS SAN (RFC 6125) */
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            if (X509_VERIFY_PARAM_set1_ip_asc(vp, o->verify_host) != 1 &&
                X509_VERIFY_PARAM_set1_host(vp, o->verify_host, 0) != 1)
                rc = UV_EINVAL;
        }
        if (alpn_len > 0 && SSL_set_alpn_protos(ssl, alpn, (unsigned)alpn_len) != 0)
            rc = UV_EINVAL;
        if (o->session_cache != NULL && o->session_key != NULL) {
            tls->cache = o->session_cache;
            tls->session_key = xstrdup(o->session_key);
            session_entry_t *e = cache_find(tls->cache, o->session_key);
            if (e != NULL && e->gen == ctx->gen) {
                e->used = ++tls->cache->tick;
                SSL_set_session(ssl, e->sess);
            }
        }
    }
    if (o->initial_len > 0) {
        BIO_write(net, o->initial, (int)o->initial_len);
        tls->hs_bytes = o->initial_len;
    }
    ERR_clear_error();
    if (rc < 0) {
        t->flags |= F_DEAD;
        return rc;
    }
    schedule_pump(t);
    tls_update_reading(t);
    return 0;
}

void transport_set_handler(transport_t *t, const transport_handler_t *h, void *ctx)
{
    t->h = h;
    t->ctx = ctx;
}

void transport_drain_when_empty(transport_t *t, bool on)
{
    if (on)
        t->flags |= F_DRAIN_EMPTY;
    else
        t->flags &= ~F_DRAIN_EMPTY;
}

void transport_read_start(transport_t *t)
{
    t->flags |= F_WANT_READ;
    if (t->flags & (F_CLOSING | F_DEAD | F_CLOSE_REPORTED))
        return;
    if (t->tls == NULL) {
        set_reading(t, true, plain_alloc, plain_read);
        return;
    }
    transport_tls_t *tls = t->tls;
    /* bytes already taken from the socket would wait for a socket event that may never come */
    if (tls->handshake_done && (BIO_ctrl_wpending(tls->net) > 0 || SSL_has_pending(tls->ssl) || (t->flags & F_EOF_IN)))
        schedule_pump(t);
    tls_update_reading(t);
}

void transport_read_stop(transport_t *t)
{
    t->flags &= ~F_WANT_READ;
    if (t->tls == NULL)
        set_reading(t, false, NULL, NULL);
    else if (!(t->flags & F_CLOSING))
        tls_update_reading(t);
}

int transport_write(transport_t *t, const void *data, size_t len)
{
    if (t->flags & (F_CLOSING | F_DEAD | F_SHUT_WANTED))
        return -1;
    if (len == 0)
        return 0;
    if (t->tls == NULL)
        return plain_write(t, data, len);
    return tls_write(t, data, len);
}

size_t transport_tls_write_queued(const transport_t *t)
{
    return pend_len(t->tls) + BIO_ctrl_pending(t->tls->net);
}

size_t transport_read_buffered(const transport_t *t)
{
    if (t->tls == NULL)
        return 0;
    return BIO_ctrl_wpending(t->tls->net) + (size_t)SSL_pending(t->tls->ssl);
}

int transport_shutdown(transport_t *t)
{
    if (t->flags & (F_CLOSING | F_DEAD))
        return UV_EPIPE;
    if (t->flags & F_SHUT_WANTED)
        return 0;
    t->flags |= F_SHUT_WANTED;
    if (t->tls == NULL) {
        t->flags |= F_SHUT_DONE;
        return uv_shutdown(&t->shutdown_req, (uv_stream_t *)&t->tcp, NULL);
    }
    int rc = shutdown_step(t);
    if (rc < 0)
        t->flags |= F_DEAD;
    return rc;
}

void transport_close(transport_t *t, transport_close_cb cb)
{
    if (t->flags & F_CLOSING)
        return;
    t->flags |= F_CLOSING;
    t->close_cb = cb;
    uv_close((uv_handle_t *)&t->tcp, on_handle_closed);
    if (t->tls != NULL)
        uv_close((uv_handle_t *)&t->tls->idle, on_handle_closed);
}

void transport_handshake_timeout(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    if (tls == NULL || tls->handshake_done || gone(t))
        return;
    tls->reason = TRANSPORT_R_HANDSHAKE_TIMEOUT;
    tls->remote = false;
    snprintf(tls->detail, sizeof tls->detail, "the TLS handshake did not complete in time");
    t->flags |= F_DEAD | F_CLOSE_REPORTED;
    set_reading(t, false, NULL, NULL);
    uv_idle_stop(&tls->idle);
}

bool transport_is_tls(const transport_t *t)
{
    return t->tls != NULL;
}

const char *transport_peer_id(const transport_t *t)
{
    return t->tls != NULL ? t->tls->peer_id : NULL;
}

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

int transport_original_dst(const transport_t *t, struct sockaddr_storage *out)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&t->tcp, &fd) != 0)
        return -1;
    struct sockaddr_storage local;
    socklen_t ll = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &ll) != 0)
        return -1;
    socklen_t len = sizeof *out;
    memset(out, 0, sizeof *out);
    int rc = local.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len)
                                         : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len);
    if (rc != 0)
        return errno == ENOENT || errno == ENOPROTOOPT ? 0 : -1; /* no NAT record: not redirected */
    return out->ss_family == local.ss_family && !hostport_sockaddr_equal(&local, out);
}

bool transport_trim(transport_t *t)
{
    transport_tls_t *tls = t->tls;
    if (tls == NULL || tls->ssl == NULL || !tls->handshake_done || tls->trimmed || (t->flags & (F_CLOSING | F_DEAD)))
        return false;
    if (tls->busy) {
        tls->busy = false;
        return false;
    }
    if (SSL_free_buffers(tls->ssl) != 1) { /* 0: a record is still half read or written; the next sweep retries */
        ERR_clear_error();
        return false;
    }
    tls->trimmed = true;
    return true;
}

const char *transport_alpn(const transport_t *t)
{
    return t->tls != NULL ? t->tls->alpn : NULL;
}

const char *transport_sni(const transport_t *t)
{
    return t->tls != NULL ? SSL_get_servername(t->tls->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

bool transport_resumed(const transport_t *t)
{
    return t->tls != NULL && t->tls->handshake_done && SSL_session_reused(t->tls->ssl);
}

const char *transport_tls_version(const transport_t *t)
{
    return t->tls != NULL && t->tls->handshake_done ? SSL_get_version(t->tls->ssl) : NULL;
}

const char *transport_cipher(const transport_t *t)
{
    return t->tls != NULL && t->tls->handshake_done ? SSL_get_cipher_name(t->tls->ssl) : NULL;
}

const char *transport_error_reason(const transport_t *t)
{
    return t->tls != NULL ? t->tls->reason : NULL;
}

bool transport_error_remote(const transport_t *t)
{
    return t->tls != NULL && t->tls->remote;
}

const char *transport_error_detail(const transport_t *t)
{
    return t->tls != NULL ? t->tls->detail : "";
}

enum transport_sniff transport_sniff(const void *data, size_t len)
{
    /*
     * RFC 8446 5.1: a record starts with its type (22, handshake), the legacy
     * version 3.x (3.1 in ClientHellos, 3.0 to 3.3 seen in the wild) and a
     * length of at most 2^14; 4.1.2: the first handshake message is a
     * ClientHello (type 1). No HTTP method starts with byte 22.
     */
    const unsigned char *p = data;
    if (len < 1)
        return TRANSPORT_SNIFF_NEED_MORE;
    if (p[0] != 0x16)
        return TRANSPORT_SNIFF_PLAIN;
    if (len < 2)
        return TRANSPORT_SNIFF_NEED_MORE;
    if (p[1] != 0x03)
        return TRANSPORT_SNIFF_PLAIN;
    if (len < 3)
        return TRANSPORT_SNIFF_NEED_MORE;
    if (p[2] > 0x04)
        return TRANSPORT_SNIFF_PLAIN;
    if (len < 5)
        return TRANSPORT_SNIFF_NEED_MORE;
    size_t rlen = (size_t)p[3] << 8 | p[4];
    if (rlen < 4 || rlen > 16384)
        return TRANSPORT_SNIFF_PLAIN;
    if (len < 6)
        return TRANSPORT_SNIFF_NEED_MORE;
    return p[5] == 0x01 ? TRANSPORT_SNIFF_TLS : TRANSPORT_SNIFF_PLAIN;
}

/* ---- handshake counters ---- */

const char *const tls_stats_results[TLS_STATS_RESULTS] = {
    "ok",
    TRANSPORT_R_UNKNOWN_CA,
    TRANSPORT_R_EXPIRED,
    TRANSPORT_R_NOT_YET_VALID,
    TRANSPORT_R_SAN_MISMATCH,
    TRANSPORT_R_NO_PEER_CERTIFICATE,
    TRANSPORT_R_BAD_CERTIFICATE,
    TRANSPORT_R_PROTOCOL_VERSION,
    TRANSPORT_R_NO_SHARED_CIPHER,
    TRANSPORT_R_NOT_TLS,
    TRANSPORT_R_HANDSHAKE_TOO_LARGE,
    TRANSPORT_R_HANDSHAKE_TIMEOUT,
    TRANSPORT_R_CONNECTION_CLOSED,
    TRANSPORT_R_OTHER,
};

void tls_stats_count(tls_stats_t *s, enum tls_stats_side side, const transport_t *t, int status)
{
    if (s == NULL)
        return;
    size_t i = 0;
    if (status != 0) {
        const char *r = transport_error_reason(t);
        i = TLS_STATS_RESULTS - 1; /* other */
        for (size_t k = 1; r != NULL && k < TLS_STATS_RESULTS; k++)
            if (strcmp(r, tls_stats_results[k]) == 0)
                i = k;
    } else if (transport_resumed(t)) {
        atomic_fetch_add_explicit(&s->resumed[side], 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&s->handshakes[side][i], 1, memory_order_relaxed);
}
