/*
 * ingest_tls: HTTPS on the ingest listeners (otlp.listen and
 * zipkin.listen), through libmicrohttpd's GnuTLS: the checks of the
 * ingest.tls.* files, the PEM texts the daemons are started with, and per
 * connection the client certificate that mutual TLS requires.
 *
 * Mutual TLS. libmicrohttpd, given a trust list, only *requests* a client
 * certificate and leaves checking it to the application. When a
 * connection starts (before its handshake) ingest_tls_require_client_cert
 * makes GnuTLS require one and verify it against the trust list in the
 * handshake itself, so a client without a certificate from
 * ingest.tls.clientCaFile never gets to send a request. The SPIFFE id of
 * the certificate (its URI SAN) is read per request for
 * ingest.tls.clientIds (ingest_auth.h).
 *
 * Nothing here logs key material; the key's PEM text is wiped when freed.
 */
#ifndef OUTRIDER_COLLECTOR_INGEST_TLS_H
#define OUTRIDER_COLLECTOR_INGEST_TLS_H

#include <stddef.h>

#define INGEST_TLS_FILE_MAX (1u << 20) /* bytes of a certificate, key or CA file */
/* TLS 1.2 and 1.3 only, GnuTLS's default ciphers for them */
#define INGEST_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/*
 * Checks of one file each, for the settings table: a PEM file holding at
 * least one certificate (cert, CA) or one private key. 0, or -1 with the
 * reason in why.
 */
int ingest_tls_check_cert_file(const char *path, char *why, size_t why_len);
int ingest_tls_check_key_file(const char *path, char *why, size_t why_len);

/* Whether the key in key_path belongs to the first certificate of cert_path: 0, or -1 with the reason in why. */
int ingest_tls_check_pair(const char *cert_path, const char *key_path, char *why, size_t why_len);

/* The PEM texts of the ingest listeners, read once. */
typedef struct ingest_tls {
    char *cert_pem; /* certificate, then its chain */
    char *key_pem;  /* wiped when freed */
    char *ca_pem;   /* NULL: no client certificates (no mutual TLS) */
} ingest_tls_t;

/*
 * Read the files (ca_path NULL or "": no mutual TLS). Returns 0, or -1
 * with "PATH: reason" in why (and nothing to free). Free with
 * ingest_tls_dispose.
 */
int ingest_tls_load(ingest_tls_t *t, const char *cert_path, const char *key_path, const char *ca_path, char *why,
                    size_t why_len);
void ingest_tls_dispose(ingest_tls_t *t);

/*
 * On a connection's GnuTLS session (gnutls_session_t), before its
 * handshake: require a client certificate and verify it against the
 * credentials' trust list during the handshake.
 */
void ingest_tls_require_client_cert(void *session);

/*
 * Copy the first spiffe:// URI SAN of the session's peer certificate into
 * out (NUL-terminated). 1 when there is one, 0 when there is no peer
 * certificate or it carries no such SAN (or it does not fit).
 */
int ingest_tls_peer_id(void *session, char *out, size_t len);

/*
 * Before the session's handshake: have finished(session) called once the
 * client's Finished message has been read, that is when the handshake
 * (client certificate included) succeeded. finished is the same function
 * for every session.
 */
void ingest_tls_watch_handshake(void *session, void (*finished)(void *session));

/* The session's user pointer (libmicrohttpd sets its MHD_Connection there). */
void *ingest_tls_session_ptr(void *session);

#endif
