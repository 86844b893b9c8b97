/*
 * http_client: a blocking HTTP/1.1 POST client for the telemetry exporter's
 * thread, on the proxy's own stack: the transport (plain or TLS,
 * transport.h) for the bytes and the http1 codec for the answers, driven by
 * a private libuv loop that runs only inside http_client_post.
 *
 * Why not libcurl: with libcurl (and the 26 shared libraries Debian's
 * build pulls in) the sidecar's resident memory went from 5.2 to 11.2 MB,
 * past the 10 MiB target (docs/decisions.md); the stack the sidecar
 * already has does the job in a few hundred lines.
 *
 * One connection is kept alive between posts. A post on a kept connection
 * that the server had meanwhile closed (no byte of an answer came back) is
 * sent once more on a fresh one. Every wait (resolve excepted: getaddrinfo
 * blocks, as the exporter thread may) ends at the caller's deadline or as
 * soon as *stop_ms, read atomically, is non-zero and passed.
 *
 * http_client_post is the exporter's call; http_client_send is the same
 * POST with extra request header fields (the sidecar's identity sends
 * "Authorization: Bearer TOKEN" to the mesh CA, identity.h) and the
 * answer's body handed back, bounded.
 *
 * One thread at a time per client; clients on different threads are
 * independent.
 */
#ifndef OUTRIDER_PROXY_HTTP_CLIENT_H
#define OUTRIDER_PROXY_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "transport.h" /* tls_ctx_t */

#define HTTP_CLIENT_URL_MAX 1000            /* bytes of an endpoint URL */
#define HTTP_CLIENT_RESPONSE_MAX (1u << 20) /* answer bytes read before the post counts as failed */
#define HTTP_CLIENT_HEADERS_MAX 16          /* extra request header fields in one http_client_send */
#define HTTP_CLIENT_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt" /* https without a CA file: Debian's bundle */

typedef struct http_client http_client_t;

/*
 * A client for url (http:// or https://HOST:PORT[/base path]); ca_file (PEM)
 * is what an https server's certificate must chain to, NULL for the
 * system's bundle. The server must also name HOST in its certificate.
 * NULL with a reason in err when the URL or the TLS setup is refused.
 */
http_client_t *http_client_create(const char *url, const char *ca_file, char *err, size_t errlen);

/* The TLS side of an https client (http_client_create_tls); zero fields are unused. */
typedef struct http_client_tls {
    const char *ca_file;   /* what the server's certificate must chain to; NULL: the system's bundle */
    const char *cert_file; /* a client certificate (then its chain) to present, for mutual TLS; with key_file */
    const char *key_file;  /* its private key (unencrypted PEM) */
    /*
     * Instead of the files: a ready context (its CAs verify the server,
     * its certificate is presented), such as the sidecar's workload
     * identity (identity.h); the client takes a reference.
     */
    tls_ctx_t *ctx;
} http_client_tls_t;

/*
 * http_client_create with a client certificate (mutual TLS): from files,
 * or a ready ctx. tls may be NULL (as http_client_create with no CA file).
 * The server must still name HOST in its certificate. NULL with a reason
 * in err when the URL or the TLS setup (an unreadable file, a key that
 * does not match) is refused.
 */
http_client_t *http_client_create_tls(const char *url, const http_client_tls_t *tls, char *err, size_t errlen);

/*
 * POST len bytes of body to the base path + path, with the given
 * Content-Type and (if not NULL) Content-Encoding. Returns the answer's
 * status, or -1 when there was none (connect, TLS, write or read failure,
 * a malformed or oversized answer, the deadline or the stop). deadline_ms
 * and *stop_ms are CLOCK_MONOTONIC milliseconds. why (optional) gets a
 * short reason for a -1.
 */
int http_client_post(http_client_t *c, const char *path, const char *content_type, const char *content_encoding,
                     const void *body, size_t len, uint64_t deadline_ms, const _Atomic uint64_t *stop_ms,
                     const char **why);

/* One request for http_client_send: a POST, or a GET (no body) when get is set. */
typedef struct http_client_request {
    int get;                      /* GET: content_type, content_encoding and the body are not used */
    const char *path;             /* appended to the base path; may carry a query ("/v1/sign?ttl=90s") */
    const char *content_type;     /* of the body */
    const char *content_encoding; /* NULL: none */
    /*
     * n_headers (at most HTTP_CLIENT_HEADERS_MAX) more fields, each
     * "Name: value" without CRLF; a field holding a CR or LF, or without
     * a name before its ':', is refused before anything is sent. The head
     * that carries them is wiped from memory once written (they may be
     * credentials).
     */
    const char *const *headers;
    size_t n_headers;
    const void *body;
    size_t len;
    /*
     * NULL: the answer's body is read and dropped. Else the final answer's
     * body is appended to *answer (what earlier tries appended is taken
     * back); a body longer than answer_max bytes (0 = HTTP_CLIENT_RESPONSE_MAX)
     * fails the request ("answer too large").
     */
    buf_t *answer;
    size_t answer_max;
} http_client_request_t;

/*
 * POST (or GET) as http_client_post does (one kept connection, one retry on a
 * stale one, the same deadline and stop), with r's header fields and its
 * answer body. Returns the answer's status or -1 with a short reason in
 * *why (optional).
 */
int http_client_send(http_client_t *c, const http_client_request_t *r, uint64_t deadline_ms,
                     const _Atomic uint64_t *stop_ms, const char **why);

/* Close the connection and free everything; NULL is a no-op. */
void http_client_destroy(http_client_t *c);

#endif
