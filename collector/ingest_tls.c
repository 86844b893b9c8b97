/*
 * ingest_tls: certificate files and client certificates of the ingest
 * listeners; see ingest_tls.h.
 */
#include "ingest_tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_auth.h" /* ingest_read_file */

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

static void free_secret(char *text)
{
    if (text != NULL) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
}

int ingest_tls_check_cert_file(const char *path, char *why, size_t why_len)
{
    gnutls_datum_t d;
    char *text = read_pem(path, &d, why, why_len);
    if (text == NULL)
        return -1;
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    free(text);
    if (rc < 0 || n == 0) {
        snprintf(why, why_len, "%s: no PEM certificate in it (%s)", path, rc < 0 ? gnutls_strerror(rc) : "none found");
        return -1;
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    return 0;
}

int ingest_tls_check_key_file(const char *path, char *why, size_t why_len)
{
    gnutls_datum_t d;
    char *text = read_pem(path, &d, why, why_len);
    if (text == NULL)
        return -1;
    gnutls_x509_privkey_t key;
    int rc = gnutls_x509_privkey_init(&key);
    if (rc == 0) {
        rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
        gnutls_x509_privkey_deinit(key);
    }
    free_secret(text);
    if (rc < 0) {
        snprintf(why, why_len, "%s: not an unencrypted PEM private key (%s)", path, gnutls_strerror(rc));
        return -1;
    }
    return 0;
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
        snprintf(why, why_len, "%s with %s: %s", cert_path, key_path,
                 rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ? "the key does not belong to the certificate"
                                                         : gnutls_strerror(rc));
        return -1;
    }
    return 0;
}

int ingest_tls_load(ingest_tls_t *t, const char *cert_path, const char *key_path, const char *ca_path, char *why,
                    size_t why_len)
{
    *t = (ingest_tls_t){0};
    gnutls_datum_t d;
    if ((t->cert_pem = read_pem(cert_path, &d, why, why_len)) == NULL ||
        (t->key_pem = read_pem(key_path, &d, why, why_len)) == NULL ||
        (ca_path != NULL && ca_path[0] != '\0' && (t->ca_pem = read_pem(ca_path, &d, why, why_len)) == NULL)) {
        ingest_tls_dispose(t);
        return -1;
    }
    return 0;
}

void ingest_tls_dispose(ingest_tls_t *t)
{
    free(t->cert_pem);
    free_secret(t->key_pem);
    free(t->ca_pem);
    *t = (ingest_tls_t){0};
}

void ingest_tls_require_client_cert(void *session)
{
    gnutls_session_t s = session;
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(s, NULL, 0); /* the chain only: clients have no host name to check */
}

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
