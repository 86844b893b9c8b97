/*
 * ingest_tls: certificate files, credentials and their reload, and client
 * certificates of the ingest listeners; see ingest_tls.h.
 */
#include "ingest_tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest_auth.h" /* ingest_read_file */
#include "log.h"
#include "prom_text.h"
#include "xalloc.h"

/* The file as a datum (heap, NUL-terminated), or NULL with the reason in why. */
static char *read_pem(const char *path, gnutls_datum_t *d, char *why, size_t why_len)
{
    size_t len;
    char *text = ingest_read_file(path, INGEST_TLS_FILE_MAX, &len, why, why_len);
    if (text == NULL)
        return NULL;
    d->data = (unsigned char *)text;
    d->size = (unsigned)len;
    return text;
}

static gnutls_datum_t datum(const char *text)
{
    return (gnutls_datum_t){(unsigned char *)text, (unsigned)strlen(text)};
}

static void free_secret(char *text)
{
    if (text != NULL) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
}

static void free_certs(gnutls_x509_crt_t *crts, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
}

/* The certificates of a PEM text (the first one, then its chain): 0, or -1 with "PATH: reason" in why. */
static int import_certs(const char *path, const gnutls_datum_t *d, gnutls_x509_crt_t **crts, unsigned *n, char *why,
                        size_t why_len)
{
    *crts = NULL;
    *n = 0;
    int rc = gnutls_x509_crt_list_import2(crts, n, d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || *n == 0) {
        snprintf(why, why_len, "%s: no PEM certificate in it (%s)", path, rc < 0 ? gnutls_strerror(rc) : "none found");
        free_certs(*crts, *n);
        *crts = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

/* Whether a PEM text holds an unencrypted private key: 0, or -1 with "PATH: reason" in why. */
static int check_key(const char *path, const gnutls_datum_t *d, char *why, size_t why_len)
{
    gnutls_x509_privkey_t key;
    int rc = gnutls_x509_privkey_init(&key);
    if (rc == 0) {
        rc = gnutls_x509_privkey_import2(key, d, GNUTLS_X509_FMT_PEM, NULL, 0);
        gnutls_x509_privkey_deinit(key);
    }
    if (rc < 0) {
        snprintf(why, why_len, "%s: not an unencrypted PEM private key (%s)", path, gnutls_strerror(rc));
        return -1;
    }
    return 0;
}

static void pair_error(const char *cert_path, const char *key_path, int rc, char *why, size_t why_len)
{
    snprintf(why, why_len, "%s with %s: %s", cert_path, key_path,
             rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ? "the key does not belong to the certificate"
                                                     : gnutls_strerror(rc));
}

int ingest_tls_check_cert_file(const char *path, char *why, size_t why_len)
{
    gnutls_datum_t d;
    char *text = read_pem(path, &d, why, why_len);
    if (text == NULL)
        return -1;
    gnutls_x509_crt_t *crts;
    unsigned n;
    int rc = import_certs(path, &d, &crts, &n, why, why_len);
    free(text);
    free_certs(crts, n);
    return rc;
}

int ingest_tls_check_key_file(const char *path, char *why, size_t why_len)
{
    gnutls_datum_t d;
    char *text = read_pem(path, &d, why, why_len);
    if (text == NULL)
        return -1;
    int rc = check_key(path, &d, why, why_len);
    free_secret(text);
    return rc;
}

int ingest_tls_check_pair(const char *cert_path, const char *key_path, char *why, size_t why_len)
{
    gnutls_datum_t c, k;
    char *ct = read_pem(cert_path, &c, why, why_len);
    if (ct == NULL)
        return -1;
    char *kt = read_pem(key_path, &k, why, why_len);
    if (kt == NULL) {
        free(ct);
        return -1;
    }
    gnutls_certificate_credentials_t cred;
    int rc = gnutls_certificate_allocate_credentials(&cred);
    if (rc == 0) {
        rc = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
        gnutls_certificate_free_credentials(cred);
    }
    free(ct);
    free_secret(kt);
    if (rc < 0) {
        pair_error(cert_path, key_path, rc, why, why_len);
        return -1;
    }
    return 0;
}

static void pem_dispose(ingest_tls_pem_t *p)
{
    free(p->cert_pem);
    free_secret(p->key_pem);
    free(p->ca_pem);
    *p = (ingest_tls_pem_t){0};
}

/*
 * Read the files (ca_path NULL or "": no mutual TLS); nothing is parsed.
 * Returns 0, or -1 with "PATH: reason" in why (and nothing to free).
 */
static int pem_load(ingest_tls_pem_t *p, const char *cert_path, const char *key_path, const char *ca_path, char *why,
                    size_t why_len)
{
    *p = (ingest_tls_pem_t){0};
    gnutls_datum_t d;
    if ((p->cert_pem = read_pem(cert_path, &d, why, why_len)) == NULL ||
        (p->key_pem = read_pem(key_path, &d, why, why_len)) == NULL ||
        (ca_path != NULL && ca_path[0] != '\0' && (p->ca_pem = read_pem(ca_path, &d, why, why_len)) == NULL)) {
        pem_dispose(p);
        return -1;
    }
    return 0;
}

/* ---- credentials ---- */

struct ingest_tls_cred {
    gnutls_certificate_credentials_t cred;
    _Atomic unsigned refs;
    int64_t not_after; /* seconds since the epoch */
    int n_ca;          /* client CA certificates in the trust list */
    char what[512];    /* "subject DN, serial HEX, valid until DATE", for logs */
};

static void format_utc(int64_t s, char *out, size_t len)
{
    time_t t = (time_t)s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, len, "%lld", (long long)s);
}

static void describe(ingest_tls_cred_t *c, gnutls_x509_crt_t crt)
{
    unsigned char serial[64];
    size_t sl = sizeof(serial);
    char hex[2 * sizeof(serial) + 1] = "?";
    if (gnutls_x509_crt_get_serial(crt, serial, &sl) == 0)
        for (size_t i = 0; i < sl; i++)
            snprintf(hex + 2 * i, 3, "%02X", serial[i]);
    char until[32];
    format_utc(c->not_after, until, sizeof(until));
    gnutls_datum_t dn = {NULL, 0};
    int have_dn = gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0;
    snprintf(c->what, sizeof(c->what), "subject %.300s, serial %s, valid until %s",
             have_dn ? (const char *)dn.data : "?", hex, until);
    gnutls_free(dn.data);
}

ingest_tls_cred_t *ingest_tls_cred_create(const ingest_tls_pem_t *p, const char *cert_path, const char *key_path,
                                          const char *ca_path, char *why, size_t why_len)
{
    gnutls_datum_t cd = datum(p->cert_pem), kd = datum(p->key_pem);
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    ingest_tls_cred_t *c = NULL;
    int ok = 0, rc;
    /* each file on its own first, so that the message names the one that is wrong */
    if (import_certs(cert_path, &cd, &crts, &n, why, why_len) != 0 || check_key(key_path, &kd, why, why_len) != 0)
        goto out;
    c = xcalloc(1, sizeof(*c));
    if ((rc = gnutls_certificate_allocate_credentials(&c->cred)) != 0) {
        c->cred = NULL;
        snprintf(why, why_len, "%s: %s", cert_path, gnutls_strerror(rc));
        goto out;
    }
    if ((rc = gnutls_certificate_set_x509_key_mem(c->cred, &cd, &kd, GNUTLS_X509_FMT_PEM)) < 0) {
        pair_error(cert_path, key_path, rc, why, why_len);
        goto out;
    }
    if (p->ca_pem != NULL) {
        gnutls_datum_t ad = datum(p->ca_pem);
        c->n_ca = gnutls_certificate_set_x509_trust_mem(c->cred, &ad, GNUTLS_X509_FMT_PEM);
        if (c->n_ca <= 0) {
            snprintf(why, why_len, "%s: no PEM certificate in it (%s)", ca_path,
                     c->n_ca < 0 ? gnutls_strerror(c->n_ca) : "none found");
            goto out;
        }
    }
    c->not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crts[0]);
    describe(c, crts[0]);
    atomic_init(&c->refs, 1);
    ok = 1;
out:
    free_certs(crts, n);
    if (!ok && c != NULL) {
        if (c->cred != NULL)
            gnutls_certificate_free_credentials(c->cred);
        free(c);
        c = NULL;
    }
    return c;
}

void ingest_tls_cred_release(ingest_tls_cred_t *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
        gnutls_certificate_free_credentials(c->cred);
        free(c);
    }
}

int64_t ingest_tls_cred_not_after(const ingest_tls_cred_t *c)
{
    return c->not_after;
}

const char *ingest_tls_cred_describe(const ingest_tls_cred_t *c)
{
    return c->what;
}

/* ---- the listeners' live state ---- */

struct ingest_tls {
    char *cert_path, *key_path;
    char *ca_path; /* NULL: no mutual TLS */
    ingest_tls_pem_t startup;
    pthread_mutex_t lock; /* cur: held only to swap it or to take a reference */
    ingest_tls_cred_t *cur;
    _Atomic int reload_ok;
};

/* "PATH: subject ..., serial ..., valid until ...; 2 client CAs from PATH", for logs. */
static void summary(const ingest_tls_t *t, const ingest_tls_cred_t *c, char *out, size_t len)
{
    int k = snprintf(out, len, "%s: %s", t->cert_path, c->what);
    if (t->ca_path != NULL && k > 0 && (size_t)k < len)
        snprintf(out + k, len - (size_t)k, "; %d client CA%s from %s", c->n_ca, c->n_ca == 1 ? "" : "s", t->ca_path);
}

static void warn_expired(const ingest_tls_t *t, const ingest_tls_cred_t *c)
{
    if (c->not_after < (int64_t)time(NULL))
        log_warn("ingest.tls: %s has expired (%s): clients that check it will refuse the handshake", t->cert_path,
                 c->what);
}

ingest_tls_t *ingest_tls_create(const char *cert_path, const char *key_path, const char *ca_path, char *why,
                                size_t why_len)
{
    ingest_tls_t *t = xcalloc(1, sizeof(*t));
    t->cert_path = xstrdup(cert_path);
    t->key_path = xstrdup(key_path);
    t->ca_path = ca_path != NULL && ca_path[0] != '\0' ? xstrdup(ca_path) : NULL;
    pthread_mutex_init(&t->lock, NULL);
    atomic_init(&t->reload_ok, 1);
    if (pem_load(&t->startup, t->cert_path, t->key_path, t->ca_path, why, why_len) != 0 ||
        (t->cur = ingest_tls_cred_create(&t->startup, t->cert_path, t->key_path, t->ca_path, why, why_len)) == NULL) {
        ingest_tls_destroy(t);
        return NULL;
    }
    char what[2048];
    summary(t, t->cur, what, sizeof(what));
    log_info("ingest.tls: certificate %s", what);
    warn_expired(t, t->cur);
    return t;
}

void ingest_tls_destroy(ingest_tls_t *t)
{
    if (t == NULL)
        return;
    ingest_tls_cred_release(t->cur);
    pem_dispose(&t->startup);
    pthread_mutex_destroy(&t->lock);
    free(t->cert_path);
    free(t->key_path);
    free(t->ca_path);
    free(t);
}

const ingest_tls_pem_t *ingest_tls_startup_pem(const ingest_tls_t *t)
{
    return &t->startup;
}

int ingest_tls_mutual(const ingest_tls_t *t)
{
    return t->ca_path != NULL;
}

/* A reference to the current credentials. */
static ingest_tls_cred_t *current(ingest_tls_t *t)
{
    pthread_mutex_lock(&t->lock);
    ingest_tls_cred_t *c = t->cur;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&t->lock);
    return c;
}

ingest_tls_cred_t *ingest_tls_attach(ingest_tls_t *t, void *session)
{
    gnutls_session_t s = session;
    ingest_tls_cred_t *c = current(t);
    /* GnuTLS keeps the pointer, replacing the daemon's, until gnutls_deinit: the reference covers that */
    if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->cred) != 0) {
        ingest_tls_cred_release(c);
        c = NULL;
    }
    if (t->ca_path != NULL) {
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(s, NULL, 0); /* the chain only: clients have no host name to check */
    }
    return c;
}

int ingest_tls_reload(ingest_tls_t *t, char *why, size_t why_len)
{
    ingest_tls_pem_t p;
    ingest_tls_cred_t *c = NULL;
    if (pem_load(&p, t->cert_path, t->key_path, t->ca_path, why, why_len) == 0) {
        c = ingest_tls_cred_create(&p, t->cert_path, t->key_path, t->ca_path, why, why_len);
        pem_dispose(&p);
    }
    if (c == NULL) {
        atomic_store(&t->reload_ok, 0);
        ingest_tls_cred_t *kept = current(t);
        log_error("ingest.tls: reload failed: %s; new handshakes keep the certificate before (%s)", why, kept->what);
        ingest_tls_cred_release(kept);
        return -1;
    }
    pthread_mutex_lock(&t->lock);
    ingest_tls_cred_t *old = t->cur;
    t->cur = c;
    pthread_mutex_unlock(&t->lock);
    ingest_tls_cred_release(old); /* freed once the last connection that started with it is closed */
    atomic_store(&t->reload_ok, 1);
    char what[2048];
    summary(t, c, what, sizeof(what));
    log_info("ingest.tls: reloaded; new handshakes get certificate %s (open connections keep theirs)", what);
    warn_expired(t, c);
    return 0;
}

int64_t ingest_tls_not_after(ingest_tls_t *t)
{
    pthread_mutex_lock(&t->lock);
    int64_t s = t->cur->not_after;
    pthread_mutex_unlock(&t->lock);
    return s;
}

static void gauge(buf_t *b, const char *name, const char *help, double v, int om)
{
    prom_write_family_header(b, name, PROM_GAUGE, help, strlen(help), NULL, om);
    prom_write_sample(b, name, "", NULL, 0, NULL, NULL, v, NULL, om);
}

void ingest_tls_render_metrics(ingest_tls_t *t, buf_t *b, int om)
{
    if (t == NULL)
        return;
    gauge(b, "outrider_collector_ingest_tls_reload_success",
          "1 when the last load of the ingest.tls.* files succeeded, 0 when it failed and the certificate before "
          "stays",
          (double)atomic_load(&t->reload_ok), om);
    gauge(b, "outrider_collector_ingest_tls_certificate_expiry_seconds",
          "notAfter of the ingest certificate new TLS handshakes get, in seconds since the Unix epoch",
          (double)ingest_tls_not_after(t), om);
}

/* ---- per connection ---- */

int ingest_tls_peer_id(void *session, char *out, size_t len)
{
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers((gnutls_session_t)session, &n);
    if (peers == NULL || n == 0 || len == 0)
        return 0;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != 0)
        return 0;
    int found = 0;
    if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == 0) {
        for (unsigned seq = 0; !found; seq++) {
            size_t size = len - 1;
            int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, out, &size, NULL);
            if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                break;
            if (type != GNUTLS_SAN_URI || size >= len)
                continue;
            out[size] = '\0';
            found = strncmp(out, "spiffe://", 9) == 0 && strlen(out) == size; /* no NUL inside */
        }
    }
    gnutls_x509_crt_deinit(crt);
    if (!found)
        out[0] = '\0';
    return found;
}

static void (*finished_cb)(void *session); /* one user: server.c */

static int on_handshake_message(gnutls_session_t session, unsigned int htype, unsigned when, unsigned int incoming,
                                const gnutls_datum_t *msg)
{
    (void)msg;
    if (htype == GNUTLS_HANDSHAKE_FINISHED && when == GNUTLS_HOOK_POST && incoming && finished_cb != NULL)
        finished_cb(session);
    return 0;
}

void ingest_tls_watch_handshake(void *session, void (*finished)(void *session))
{
    finished_cb = finished;
    gnutls_handshake_set_hook_function((gnutls_session_t)session, GNUTLS_HANDSHAKE_FINISHED, GNUTLS_HOOK_POST,
                                       on_handshake_message);
}

void *ingest_tls_session_ptr(void *session)
{
    return gnutls_session_get_ptr((gnutls_session_t)session);
}
