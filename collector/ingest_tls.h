/*
 * ingest_tls: HTTPS on the ingest listeners (otlp.listen and
 * zipkin.listen), through libmicrohttpd's GnuTLS: the checks of the
 * ingest.tls.* files, the credentials every connection's handshake uses,
 * their reload on SIGHUP, and per connection the client certificate that
 * mutual TLS requires.
 *
 * Reloads. libmicrohttpd reads its certificate once, when a daemon
 * starts. So the collector makes GnuTLS credentials of its own
 * (ingest_tls_cred_t: certificate chain, key, client CA trust list) and,
 * when a connection starts (before its handshake), ingest_tls_attach puts
 * the current ones on the connection's session in place of the daemon's.
 * ingest_tls_reload (SIGHUP, main thread) reads the three files again and
 * builds new credentials outside any lock; only when every file parses and
 * the key belongs to the certificate does it swap them in, under a mutex
 * held just for the swap. Credentials are reference counted: each
 * connection holds those of its handshake until it is closed, so a reload
 * never frees what a session in flight uses, and open connections keep
 * the certificate they started with. A bad reload keeps the credentials
 * before, logs "PATH: reason" and sets the reload gauge to 0.
 *
 * Mutual TLS. libmicrohttpd, given a trust list, only *requests* a client
 * certificate and leaves checking it to the application. ingest_tls_attach
 * makes GnuTLS require one and verify it against the trust list in the
 * handshake itself, so a client without a certificate from
 * ingest.tls.clientCaFile never gets to send a request. The SPIFFE id of
 * the certificate (its URI SAN) is read per request for
 * ingest.tls.clientIds (ingest_auth.h). Whether mutual TLS is on is fixed
 * at start (ingest.tls.clientCaFile set or not); a reload re-reads its CAs.
 *
 * Nothing here logs key material; the key's PEM text is wiped when freed.
 */
#ifndef OUTRIDER_COLLECTOR_INGEST_TLS_H
#define OUTRIDER_COLLECTOR_INGEST_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

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

/* The PEM texts of the three files, as read at one time. */
typedef struct ingest_tls_pem {
    char *cert_pem; /* certificate, then its chain */
    char *key_pem;  /* wiped when freed */
    char *ca_pem;   /* NULL: no client certificates (no mutual TLS) */
} ingest_tls_pem_t;


/* ---- credentials ---- */

/* One set of credentials, immutable; reference counted (the first reference is the creator's). */
typedef struct ingest_tls_cred ingest_tls_cred_t;

/*
 * Credentials of the texts in p (the paths only name the files in
 * messages): the certificate chain parses, the key parses and belongs to
 * the first certificate, and with p->ca_pem the CAs parse. Returns them,
 * or NULL with "PATH: reason" in why. Free with ingest_tls_cred_release.
 */
ingest_tls_cred_t *ingest_tls_cred_create(const ingest_tls_pem_t *p, const char *cert_path, const char *key_path,
                                          const char *ca_path, char *why, size_t why_len);

/* Drop one reference; the last frees them. NULL is a no-op. Any thread. */
void ingest_tls_cred_release(ingest_tls_cred_t *c);

/* notAfter of the certificate (the first of the chain), in seconds since the Unix epoch. */
int64_t ingest_tls_cred_not_after(const ingest_tls_cred_t *c);

/* "subject DN, serial HEX, valid until DATE" of the certificate, for logs. */
const char *ingest_tls_cred_describe(const ingest_tls_cred_t *c);

/* ---- the listeners' live state ---- */

typedef struct ingest_tls ingest_tls_t;

/*
 * Read the files and make the first credentials (ca_path NULL or "": no
 * mutual TLS); logs the certificate. NULL with "PATH: reason" in why.
 * Free with ingest_tls_destroy, once no daemon uses it.
 */
ingest_tls_t *ingest_tls_create(const char *cert_path, const char *key_path, const char *ca_path, char *why,
                                size_t why_len);

/* Free t (NULL is a no-op): after the daemons stopped, when every connection has released its credentials. */
void ingest_tls_destroy(ingest_tls_t *t);

/*
 * The texts read at ingest_tls_create, for the daemons' options
 * (MHD_OPTION_HTTPS_MEM_*): libmicrohttpd needs a certificate to start,
 * though ingest_tls_attach replaces it on every connection. Valid until
 * ingest_tls_destroy.
 */
const ingest_tls_pem_t *ingest_tls_startup_pem(const ingest_tls_t *t);

/* Whether client certificates are required (ingest.tls.clientCaFile was given). */
int ingest_tls_mutual(const ingest_tls_t *t);

/*
 * A connection starts, before its handshake, on its GnuTLS session
 * (gnutls_session_t): give it the current credentials and, with mutual
 * TLS, require a client certificate and verify it against their trust list
 * during the handshake. Returns a reference the connection holds until
 * its session is gone (ingest_tls_cred_release), or NULL when the session
 * refused them (it then keeps the daemon's start-up credentials). Any
 * thread.
 */
ingest_tls_cred_t *ingest_tls_attach(ingest_tls_t *t, void *session);

/*
 * Read the three files again (SIGHUP). When they make valid credentials,
 * new handshakes use them at once and it returns 0; otherwise the
 * credentials before stay and it returns -1 with "PATH: reason" in why.
 * Either way it is logged and the reload gauge says which.
 */
int ingest_tls_reload(ingest_tls_t *t, char *why, size_t why_len);

/* notAfter of the certificate new handshakes get, seconds since the Unix epoch. */
int64_t ingest_tls_not_after(ingest_tls_t *t);

/*
 * Append outrider_collector_ingest_tls_reload_success (1 when the last
 * load of the files succeeded) and
 * outrider_collector_ingest_tls_certificate_expiry_seconds (the notAfter
 * above). NULL (no ingest TLS) appends nothing.
 */
void ingest_tls_render_metrics(ingest_tls_t *t, buf_t *b, int openmetrics);

/* ---- per connection ---- */

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
