/*
 * server: the collector's HTTP listeners on libmicrohttpd, and the
 * request/response shapes its handlers use.
 *
 * Listeners. zipkin.listen (Zipkin ingest, and by default the query API,
 * UI paths, /mesh, /metrics, /health) and otlp.listen (OTLP ingest) always;
 * query.listen takes the query API, UI paths and /mesh (and /metrics) off
 * zipkin.listen, metrics.listen takes /metrics off both; a listener asked
 * for a path another one serves answers 404 saying which. With
 * ingest.tls.certFile the two ingest listeners speak HTTPS only (GnuTLS
 * inside libmicrohttpd; with ingest.tls.clientCaFile a client certificate
 * is required in the handshake; a new connection gets the certificate of
 * the last good load of the files, read again on SIGHUP: ingest_tls.h);
 * the query and metrics listeners stay plain HTTP. Ingest requests (every
 * request on the OTLP listener, POST /api/v2/spans on the Zipkin one) are
 * checked against ingest_auth.h at their first call, before any body is
 * read: a refusal is answered at once (401 with a Bearer challenge, or
 * 403) and the connection lingers as after an early 413.
 *
 * Each listener runs an MHD thread pool (server.threads threads, epoll).
 * A request is read whole into memory, bounded by limits.maxBodyBytes
 * (a larger Content-Length is refused with 413 before any body is read; a
 * chunked body that grows past the limit is drained, within the lingering
 * bounds limits.lingerBytes and limits.lingerTime, and refused), then
 * handed to the route's handler on the same thread. Handlers fill an
 * http_response_t; the server sends it and records the request's latency.
 * A connection closed after an answer while the client may still be
 * sending is drained before it closes (lingering close, linger_set.h).
 */
#ifndef OUTRIDER_COLLECTOR_SERVER_H
#define OUTRIDER_COLLECTOR_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct MHD_Connection;
struct collector;

typedef struct http_request {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;  /* without query string */
    const char *query; /* the query string as sent (after '?', still %-encoded); NULL when none */
    const char *body;  /* may be NULL when empty */
    size_t body_len;
    const char *content_type;     /* NULL when absent */
    const char *content_encoding; /* NULL when absent */
    const char *accept;           /* NULL when absent */
} http_request_t;

/*
 * A body written in parts while it is sent (a /metrics scrape): next appends
 * the next part to out and returns 1 while more follows, 0 after the last
 * part (-1 ends the response early); free releases ctx once the response is
 * done or abandoned. Sent chunked; parts are asked for as the client reads,
 * so a slow reader holds one part, not the whole body.
 */
typedef struct http_stream {
    int (*next)(void *ctx, buf_t *out);
    void (*free)(void *ctx);
    void *ctx;
} http_stream_t;

typedef struct http_response {
    int status;
    const char *content_type; /* static string */
    buf_t body;
    char location[256];   /* for redirects; "" = none */
    char retry_after[24]; /* seconds; "" = none */
    const char *route;    /* template for the latency metric's uri label */
    int cors;             /* add Access-Control-Allow-Origin (the Zipkin port, as Zipkin does) */
    char partial[1024];   /* X-Outrider-Partial: the store members a fanned-out answer lacks; "" = none */
    http_stream_t stream; /* next != NULL: the body comes from it (body is not used) */
    int gzip;             /* compress the streamed body (Content-Encoding: gzip), as the client accepts it */
    /* more headers: static name, value pairs ending with NULL; NULL = none */
    const char *const *headers;
} http_response_t;

/* 1 when the request's Accept-Encoding accepts gzip (listed, or `*`, with a q above 0). */
int http_accepts_gzip(const http_request_t *req);

/* Value of a query parameter, or NULL. */
const char *http_query(const http_request_t *req, const char *name);

/* Value of a request header (case-insensitive name), or NULL. */
const char *http_header(const http_request_t *req, const char *name);

/* Set a plain-text response: status and the message plus a newline. */
void http_respond_text(http_response_t *resp, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Set an empty-bodied JSON response with the buffer to fill: status, content type application/json. */
buf_t *http_respond_json(http_response_t *resp, int status);

typedef struct server server_t;

/*
 * Start the listeners: query and metrics first (when configured), then
 * zipkin and otlp. On success each bound address is logged ("listening
 * query http://HOST:PORT", "listening zipkin https://HOST:PORT" with
 * ingest TLS, "listening otlp ...") and the zipkin and otlp ports are
 * returned through zipkin_port/otlp_port. The ingest listeners speak
 * HTTPS when c->tls is set (collector_init loads it). Returns NULL
 * (logged) when a listener cannot bind.
 */
server_t *server_start(struct collector *c, uint16_t *zipkin_port, uint16_t *otlp_port);

/* Stop accepting, finish in-flight requests, free the server. NULL is a no-op. */
void server_stop(server_t *s);

#endif
