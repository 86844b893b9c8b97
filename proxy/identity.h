/*
 * identity: the sidecar's workload identity, an X.509 certificate whose
 * only URI SAN is spiffe://<trust domain>/ns/<namespace>/sa/<service
 * account> (Istio's shape), with its key and the mesh's trusted roots,
 * ready as a tls_ctx_t (transport.h) for both TLS roles.
 *
 * Where it comes from. Files mode: cert_file (leaf, then its chain) and
 * key_file, as a secret mount or an external agent writes them. CA mode:
 * the mesh CA (`outriderctl ca serve`, ctl/ca_server.h): a new EC P-256
 * key made in memory for every certificate (it never touches a disk), a
 * CSR carrying the SPIFFE id (the CA only uses its public key and
 * certifies the identity its bootstrap token is bound to), POST /v1/sign
 * with "Authorization: Bearer TOKEN" over HTTPS (http_client.h); the CA's
 * server certificate must chain to roots_file and name the host.
 *
 * Checks on every certificate, whichever the source, before anything
 * uses it: the leaf's public key is the private key's; its one URI SAN is
 * exactly the expected SPIFFE id; the chain verifies against roots_file
 * (X509_verify_cert, the certificates after the leaf as untrusted
 * intermediates only); now lies within notBefore..notAfter with
 * IDENTITY_SKEW_S of clock skew either way. The tls_ctx_t is then built
 * from the very bytes that were checked (certificates re-encoded, key PEM
 * in OpenSSL's wiped memory), never by re-opening the files.
 *
 * Certificates. An identity_cert_t is immutable and refcounted
 * (identity_cert_ref / identity_cert_unref, any thread); it owns one
 * reference to its tls_ctx_t. A caller that hands the ctx to workers takes
 * its own ctx references (tls_ctx_ref), so certificates and ctxs may go
 * at different times.
 *
 * The renewal thread (identity_start) owns the schedule; the rest of the
 * object is read-only after identity_create except the current
 * certificate, the counters and the last error, which sit under one mutex
 * (held for a pointer swap or a copy, never during I/O). It sleeps on a
 * condition variable (CLOCK_MONOTONIC) until the next thing to do:
 *
 *   files mode  every file_poll_ms: stat cert_file and key_file (device,
 *               inode, size, mtime); when either differs from the last
 *               attempt's, load the files again. Files that changed and
 *               still hold the same certificate and roots make no new cert.
 *   CA mode     at the renewal time, a new key and certificate from the CA.
 *   both        every file_poll_ms, read roots_file; when its SHA-256
 *               differs from the last attempt's, make a new cert with the
 *               new roots (CA mode fetches anew: the new roots must also
 *               verify the CA's endpoint).
 *
 * The renewal time is identity_renew_at_ms (half the lifetime), but not
 * before half of what was left of the lifetime when the certificate
 * arrived, nor before IDENTITY_RENEW_MIN_MS after that: the CA backdates
 * notBefore by a minute for clock skew, so with a short ttl the half-life
 * point is already past on arrival and renewing at once would loop.
 *
 * A failed attempt is retried after 1 s, doubling to 30 s, never sleeping
 * past the current certificate's expiry (files mode also retries at once
 * when the files change again). Each failure counts; its reason is logged
 * (log.h) once until the reason changes or an attempt succeeds. A new
 * certificate replaces the current one and is handed to on_new, from the
 * thread, without the mutex held. identity_wake (SIGHUP) makes it attempt
 * now; identity_stop wakes it and joins it, also in the middle of a CA
 * request (the HTTP client's stop time).
 *
 * Nothing secret is logged or described, ever: not the key, not the token.
 * Key PEM and token buffers are wiped (OPENSSL_cleanse) after use. Every
 * input is bounded: files IDENTITY_FILE_MAX, the token IDENTITY_TOKEN_MAX,
 * the CA's answer IDENTITY_ANSWER_MAX.
 */
#ifndef OUTRIDER_PROXY_IDENTITY_H
#define OUTRIDER_PROXY_IDENTITY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "file_stamp.h"
#include "transport.h"

#define IDENTITY_FILE_MAX (1u << 20)     /* bytes of a certificate, key or roots file */
#define IDENTITY_TOKEN_MAX 4096          /* bytes of the token file (the token itself: printable ASCII) */
#define IDENTITY_ANSWER_MAX (64u * 1024) /* bytes of the CA's answer body */
#define IDENTITY_SKEW_S 60               /* seconds of clock skew allowed around notBefore and notAfter */
#define IDENTITY_TTL_DEFAULT_S 86400     /* requested lifetime when ttl_s is 0 */
#define IDENTITY_POLL_DEFAULT_MS 1000    /* file_poll_ms when 0 */
#define IDENTITY_POLL_MIN_MS 10          /* smallest file_poll_ms */
#define IDENTITY_BACKOFF_MIN_MS 1000     /* first retry after a failure */
#define IDENTITY_BACKOFF_MAX_MS 30000    /* retries back off to this */
#define IDENTITY_RENEW_MIN_MS 1000       /* least time between a certificate's arrival and its renewal */
#define IDENTITY_FETCH_TIMEOUT_MS 15000  /* one attempt of the thread; identity_fetch's deadline 0 */
#define IDENTITY_SPIFFE_ID_MAX 400       /* bytes with the NUL: spiffe:// + 255 + /ns/ + 63 + /sa/ + 63 */
#define IDENTITY_SERIAL_HEX_MAX 41       /* 20 bytes (RFC 5280's longest serial) in hex and a NUL */
#define IDENTITY_ERR_MAX 1024            /* enough for any reason written into err */
#define IDENTITY_SOURCE_FILES "files"
#define IDENTITY_SOURCE_CA "ca"

typedef struct identity identity_t;

/* What identity_create copies (strings and the ALPN list are copied; nothing here is kept). */
typedef struct identity_opts {
    const char *trust_domain;    /* "cluster.local": lowercase letters, digits, '-', '.' */
    const char *namespace;       /* the workload's namespace: a DNS-1123 label */
    const char *service_account; /* "reviews": a DNS-1123 label */
    /* PEM bundle of the mesh's trusted roots: verifies peers AND the CA endpoint's server certificate; re-read at
     * every attempt and every poll (root rotation without restart) */
    const char *roots_file;
    /* files mode: both set */
    const char *cert_file; /* leaf then chain, PEM */
    const char *key_file;  /* its private key, unencrypted PEM */
    /* CA mode: ca_address set */
    const char *ca_address; /* https://HOST:PORT[/base path] of `outriderctl ca serve`; POST /v1/sign?ttl=... */
    /* the bootstrap token, read fresh at every request (it may be rotated), whitespace trimmed */
    const char *token_file;
    uint64_t ttl_s;          /* requested lifetime, 0 = IDENTITY_TTL_DEFAULT_S; the CA may cut it */
    const char *const *alpn; /* passed into the tls_ctx_opts */
    size_t n_alpn;
    /* how often cert_file and key_file are stat'ed (files mode) and roots_file is read (both modes); 0 =
     * IDENTITY_POLL_DEFAULT_MS */
    uint64_t file_poll_ms;
} identity_opts_t;

/*
 * One workload certificate, immutable once made, refcounted: whoever
 * receives one (identity_fetch, on_new) owns one reference and drops it
 * with identity_cert_unref.
 */
typedef struct identity_cert {
    tls_ctx_t *ctx; /* cert + chain + key + roots, verify_peer, TLS 1.2/1.3, the ALPN list; one reference owned here */
    char spiffe_id[IDENTITY_SPIFFE_ID_MAX];
    int64_t not_before, not_after;            /* unix seconds */
    char serial_hex[IDENTITY_SERIAL_HEX_MAX]; /* uppercase, as `openssl x509 -serial` prints it */
    char roots_sha256[65];                    /* lowercase hex SHA-256 of the roots bundle's bytes */
    int n_roots;                              /* certificates in the roots bundle */
    const char *source;                       /* IDENTITY_SOURCE_FILES or IDENTITY_SOURCE_CA (static) */
    int64_t obtained_ms;                      /* unix ms when it was made */
    /* private */
    _Atomic int refs;
    unsigned char material[32]; /* SHA-256 of the chain's DER and the roots' bytes */
    file_stamp_t stamps[2];     /* files mode: cert_file's and key_file's, as they were read */
} identity_cert_t;

/* The renewal thread's counters. */
typedef struct identity_counters {
    uint64_t renewals_ok;     /* new certificates the thread made (renewals, reloaded files, new roots) */
    uint64_t renewals_failed; /* the thread's failed attempts */
    int64_t not_after;        /* the current certificate's, unix seconds; 0 when there is none */
} identity_counters_t;

/*
 * Check o (names, paths present, exactly one mode, https:// CA address,
 * ttl and poll bounds) and copy it; no I/O. NULL with every problem found
 * in err ("identity.<field>: reason", separated by "; ").
 */
identity_t *identity_create(const identity_opts_t *o, char *err, size_t errlen);

/*
 * One blocking attempt now. Files mode: read and check the files. CA mode:
 * a fresh EC P-256 key, a CSR, POST /v1/sign, check the answer. Returns a
 * new certificate (one reference for the caller) or NULL with the reason
 * in err ("PATH: reason", "CA https://...: HTTP 401: unknown token", "the
 * CA certified spiffe://x but this sidecar is spiffe://y", "certificate
 * expired at ...", "KEY does not match the certificate in CERT"...; at most
 * IDENTITY_ERR_MAX bytes are useful). deadline_ms is CLOCK_MONOTONIC ms
 * (mono_now_ms), 0 = IDENTITY_FETCH_TIMEOUT_MS from now; only CA mode
 * waits. Any thread; the reason is also kept as the last error.
 */
identity_cert_t *identity_fetch(identity_t *id, uint64_t deadline_ms, char *err, size_t errlen);

/* When c should be renewed: not_before + (not_after - not_before) / 2, in unix ms. */
int64_t identity_renew_at_ms(const identity_cert_t *c);

/*
 * When the renewal thread renews c (CA mode): identity_renew_at_ms, but not
 * before half of the lifetime left at obtained_ms, nor before
 * obtained_ms + IDENTITY_RENEW_MIN_MS. Unix ms.
 */
int64_t identity_schedule_ms(const identity_cert_t *c);

/* Take one more reference (any thread). */
void identity_cert_ref(identity_cert_t *c);

/* Drop a reference (any thread); the last frees the cert and drops its ctx reference. NULL is a no-op. */
void identity_cert_unref(identity_cert_t *c);

/*
 * Start the renewal thread (design above). current is the certificate in
 * use (the identity takes its own reference; the caller keeps its own), or
 * NULL when the first fetch failed: the thread then attempts at once and
 * backs off. on_new(arg, cert) is called from the thread with a new
 * certificate and one reference the callee owns; it must not call
 * identity_stop or identity_destroy. Returns 0, or -1 when already
 * started or the thread cannot be made.
 */
int identity_start(identity_t *id, identity_cert_t *current, void (*on_new)(void *arg, identity_cert_t *c), void *arg);

/* Make the thread attempt now (SIGHUP; it takes a mutex: call it from a loop, not a signal handler). */
void identity_wake(identity_t *id);

/* Stop the thread and join it (promptly: it waits on a condition variable, a CA request is cut short). Idempotent. */
void identity_stop(identity_t *id);

/* Stop the thread if running, free everything (and drop the reference to the current cert). NULL is a no-op. */
void identity_destroy(identity_t *id);

/*
 * Append a JSON object for the admin's /config_dump: spiffe_id, source,
 * not_before, not_after (RFC 3339), serial, roots_sha256, n_roots,
 * renew_at, the trust domain, namespace and service account, ca_address
 * and token_file's path or cert_file and key_file, roots_file, ttl_s,
 * last_error (null when none), renewals ok/failed. c is the certificate to
 * show, NULL for the thread's current one (the certificate fields are null
 * when there is none). Never the key, never the token. Any thread.
 */
void identity_describe(identity_t *id, const identity_cert_t *c, buf_t *out);

/* The thread's counters and the current certificate's expiry (any thread). */
void identity_counters(identity_t *id, identity_counters_t *out);

/*
 * Append the Prometheus text for /stats/prometheus:
 * outrider_proxy_identity_renewals_total{result="ok"|"failed"} and
 * outrider_proxy_identity_cert_expiry_seconds (seconds until the current
 * certificate expires, negative once it has; absent without one).
 */
void identity_render_prometheus(identity_t *id, buf_t *out);

#endif
