/*
 * ca_server: the HTTPS endpoint of `outriderctl ca serve`, where sidecars
 * trade a certificate signing request and a bearer token for a workload
 * certificate.
 *
 * Protocol (one endpoint, no JSON):
 *
 *   POST /v1/sign[?ttl=DURATION]
 *   Authorization: Bearer TOKEN
 *   Content-Type: application/pkcs10 (or text/plain, or anything: the body decides)
 *
 *   <a certificate signing request, PEM "CERTIFICATE REQUEST" or DER>
 *
 * The CA certifies exactly the identity the token is bound to in the
 * tokens file (tokens.h), spiffe://<trust domain>/ns/NS/sa/SA: everything
 * the CSR asks for (subject, SANs, extensions) is ignored; only its public
 * key is used, after its self-signature verifies (proof that the client
 * holds the private key). The lifetime is ?ttl= (90s, 30m, 24h...) or,
 * without it, the server's maximum; a longer one is cut to the maximum, and
 * nothing outlives the CA.
 *
 *   200  application/pem-certificate-chain: the leaf, then the root
 *   400  text/plain reason: bad CSR (not PEM/DER, bad signature, key type
 *        or size not accepted) or bad ttl
 *   401  no "Authorization: Bearer", or a token the file does not list
 *   404  any other path; 405 any other method (Allow: POST)
 *   413  a body over CA_SIGN_BODY_MAX bytes
 *   500  the CA could not sign (e.g. it has expired)
 *
 * Checks happen in that order before the body is read: path, method,
 * token, Content-Length. Every request gets one access line on stderr
 * (log.h) with the method, path, status and peer, and for a signature the
 * SPIFFE id, serial and expiry; never the token, never a key.
 *
 * Threads: libmicrohttpd serves from one internal thread (signing a P-256
 * certificate takes well under a millisecond); the token table is the only
 * state another thread changes (ca_server_set_tokens, from the SIGHUP
 * handler in the main thread), under a mutex held only for a lookup or a
 * pointer swap.
 */
#ifndef OUTRIDER_CTL_CA_SERVER_H
#define OUTRIDER_CTL_CA_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pki.h"
#include "tokens.h"

#define CA_SIGN_PATH "/v1/sign"
#define CA_SIGN_BODY_MAX (16u * 1024)  /* bytes of CSR; a P-384 or RSA-8192 CSR is well under */
#define CA_SIGN_DISCARD_MAX (1u << 20) /* bytes of an oversized chunked body read before hanging up */
#define CA_SERVER_CONNECTIONS_MAX 256u /* concurrent connections */
#define CA_SERVER_IDLE_TIMEOUT_S 10u   /* a connection silent this long is closed */

typedef struct ca_server ca_server_t;

typedef struct ca_server_config {
    const pki_ca_t *ca;       /* borrowed: must outlive the server */
    const char *listen;       /* numeric HOST:PORT, [IPv6]:PORT or localhost:PORT; port 0 = any free port */
    int64_t max_ttl_s;        /* the longest certificate it signs */
    const char *tls_cert_pem; /* the server's own certificate (chain), PEM; copied */
    const char *tls_key_pem;  /* its private key, PEM; copied, and wiped when the server stops */
} ca_server_config_t;

/*
 * Start listening. Takes ownership of tokens (also on failure). Logs
 * "listening https://HOST:PORT" with the bound port. Returns NULL with the
 * reason in err when the address is bad, the port is taken or TLS cannot
 * start (e.g. libmicrohttpd built without it).
 */
ca_server_t *ca_server_start(const ca_server_config_t *cfg, tokens_t *tokens, char *err, size_t errlen);

/* The port it listens on (the real one when the config said 0). */
uint16_t ca_server_port(const ca_server_t *s);

/* Serve tokens from now on (taking ownership) and free the previous table. */
void ca_server_set_tokens(ca_server_t *s, tokens_t *tokens);

/* Stop serving (in-flight requests finish) and free everything; NULL is a no-op. */
void ca_server_stop(ca_server_t *s);

/* What one signature produced. */
typedef struct ca_sign_result {
    char *chain; /* PEM, leaf then root; the caller frees it with free() */
    size_t chain_len;
    char serial[PKI_SERIAL_HEX_MAX];
    int64_t not_after; /* unix seconds */
    bool clamped;      /* not_after was cut to the CA's */
} ca_sign_result_t;

/*
 * The /v1/sign work without HTTP: certify the public key of the CSR in
 * body (len bytes, checked by pki_csr_parse) as spiffe_id for ttl_s
 * seconds from now. Returns 200 and fills *out, 400 (bad CSR) or 500 (the
 * CA cannot sign), with the reason in err.
 */
int ca_server_sign(const pki_ca_t *ca, const char *spiffe_id, const void *body, size_t len, int64_t now, int64_t ttl_s,
                   ca_sign_result_t *out, char *err, size_t errlen);

/*
 * The token of an Authorization header value h (NUL-terminated): "Bearer",
 * in any case (RFC 6750 2.1), then at least one space or tab, then the
 * token; spaces and tabs around the token are not part of it. Returns
 * true with *token pointing into h and *len its length (at least 1), or
 * false, writing nothing, when h is not that (another scheme, no token).
 */
bool ca_server_bearer_token(const char *h, const char **token, size_t *len);

#endif
