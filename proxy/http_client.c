/*
 * http_client: blocking POSTs on a private loop; see http_client.h.
 *
 * Each wait is `run until(cond)`: uv_run(UV_RUN_ONCE) in a loop while a
 * 50 ms timer checks the deadline and the stop, so that nothing waits
 * past them. Events set flags on the client; the waits read them.
 */
#include "http_client.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <openssl/crypto.h> /* OPENSSL_cleanse */

#include "buf.h"
#include "hostport.h"
#include "http1.h"
#include "mono.h"
#include "runtime.h"
#include "transport.h"
#include "xalloc.h"

#define TICK_MS 50

typedef struct conn {
    transport_t tr;
    uv_connect_t creq;
    http_client_t *c;
} conn_t;

struct http_client {
    uv_loop_t loop;
    uv_timer_t tick;
    bool tls;
    char host[256];
    char port[8];
    char hostport[300]; /* the Host header */
    char base[HTTP_CLIENT_URL_MAX + 1];
    tls_ctx_t *tls_ctx;
    tls_session_cache_t *sessions;
    http1_parser_t *resp;
    buf_t head;

    conn_t *conn; /* the kept connection, or NULL */
    bool connected, open_done, dead, eof;
    int open_status;

    /* the post in progress */
    bool done, failed, got_bytes, keep;
    int status;
    size_t resp_bytes;
    const char *why;
    uint64_t deadline_ms;
    const _Atomic uint64_t *stop_ms;
    bool expired;
    buf_t *answer;      /* the caller's, or NULL */
    size_t answer_base; /* answer->len before this request */
    size_t answer_max;
    char why_buf[400]; /* a failed connect's or handshake's reason, for *why (valid until the client goes) */
};

static bool past(const http_client_t *c)
{
    uint64_t now = mono_now_ms();
    uint64_t stop = c->stop_ms != NULL ? atomic_load(c->stop_ms) : 0;
    return now >= c->deadline_ms || (stop != 0 && now >= stop);
}

static void on_tick(uv_timer_t *t)
{
    http_client_t *c = t->data;
    if (past(c)) {
        c->expired = true;
        uv_stop(&c->loop);
    }
}

/* Run the loop until *flag is set or the time is up; whether the flag was set. */
static bool run_until(http_client_t *c, const bool *flag)
{
    c->expired = false;
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    while (!*flag && !c->expired && !past(c))
        uv_run(&c->loop, UV_RUN_ONCE);
    uv_timer_stop(&c->tick);
    return *flag;
}

/* ---- the connection ---- */

static void conn_freed(transport_t *t)
{
    conn_t *k = (conn_t *)((char *)t - offsetof(conn_t, tr));
    free(k);
}

static void drop_conn(http_client_t *c)
{
    if (c->conn == NULL)
        return;
    transport_close(&c->conn->tr, conn_freed);
    c->conn = NULL;
    c->connected = c->open_done = c->dead = c->eof = false;
    uv_run(&c->loop, UV_RUN_NOWAIT); /* the close callbacks, so nothing lingers on the loop */
    uv_run(&c->loop, UV_RUN_NOWAIT);
    http1_parser_reset(c->resp);
}

static void fail(http_client_t *c, const char *why)
{
    if (!c->failed && !c->done) {
        c->failed = true;
        c->why = why;
    }
}

static void k_alloc(void *ctx, size_t suggested, uv_buf_t *b)
{
    (void)ctx;
    static _Thread_local char rbuf[64 * 1024];
    (void)suggested;
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void k_read(void *ctx, char *data, size_t len)
{
    http_client_t *c = ((conn_t *)ctx)->c;
    c->got_bytes = true;
    c->resp_bytes += len;
    if (c->done || c->failed) {
        c->dead = true; /* bytes nobody asked for: the connection cannot be reused */
        return;
    }
    if (c->resp_bytes > HTTP_CLIENT_RESPONSE_MAX) {
        fail(c, "answer too large");
        return;
    }
    size_t used;
    int rc = http1_parse(c->resp, data, len, &used);
    if (rc == HTTP1_ERROR)
        fail(c, http1_parser_error_reason(c->resp));
    else if (c->done && used < len)
        c->dead = true; /* more than one answer */
}

static void k_close(void *ctx, int status)
{
    http_client_t *c = ((conn_t *)ctx)->c;
    c->dead = true;
    if (!c->open_done) {
        c->open_done = true;
        c->open_status = status < 0 ? status : UV_EOF;
        return;
    }
    if (c->done || c->failed)
        return;
    if (status == UV_EOF && c->got_bytes && http1_finish(c->resp) == HTTP1_OK && c->done)
        return; /* an answer read until the close */
    fail(c, status == UV_EOF ? "connection closed before the answer" : uv_strerror(status));
}

static void k_open(void *ctx, int status)
{
    http_client_t *c = ((conn_t *)ctx)->c;
    c->open_done = true;
    c->open_status = status;
}

static const transport_handler_t k_handler = {k_open, k_alloc, k_read, k_close, NULL};

static void on_connected(uv_connect_t *req, int status)
{
    conn_t *k = req->data;
    http_client_t *c = k->c;
    if (c->conn != k)
        return; /* abandoned */
    c->connected = true;
    c->open_status = status;
    if (status < 0)
        c->open_done = true;
}

/* Connect to one address; 0 when the stream (TLS: the handshake too) is up. */
static int connect_one(http_client_t *c, const struct sockaddr *addr, const char **why)
{
    conn_t *k = xcalloc(1, sizeof(*k));
    k->c = c;
    if (transport_init(&c->loop, &k->tr) < 0) {
        free(k);
        *why = "no socket";
        return -1;
    }
    c->conn = k;
    c->connected = c->open_done = c->dead = c->eof = false;
    k->creq.data = k;
    uv_tcp_nodelay(&k->tr.tcp, 1);
    int rc = uv_tcp_connect(&k->creq, &k->tr.tcp, addr, on_connected);
    if (rc < 0 || !run_until(c, &c->connected) || c->open_status < 0) {
        snprintf(c->why_buf, sizeof c->why_buf, "connect to %s failed: %s", c->hostport,
                 uv_strerror(rc < 0               ? rc
                             : c->open_status < 0 ? c->open_status
                                                  : UV_ETIMEDOUT));
        *why = c->expired ? "connect timed out" : c->why_buf;
        drop_conn(c);
        return -1;
    }
    c->open_done = false;
    if (!c->tls) {
        transport_start(&k->tr, &k_handler, k);
        c->open_done = true;
        return 0;
    }
    transport_tls_opts_t o = {.role = TRANSPORT_CLIENT,
                              .sni = c->host,
                              .verify_host = c->host,
                              .session_cache = c->sessions,
                              .session_key = c->hostport};
    if (transport_start_tls(&k->tr, c->tls_ctx, &o, &k_handler, k) < 0 || !run_until(c, &c->open_done) ||
        c->open_status < 0) {
        const char *r = transport_error_reason(&k->tr);
        snprintf(c->why_buf, sizeof c->why_buf, "TLS handshake with %s failed: %s", c->hostport, r ? r : "no reason");
        *why = c->expired ? "TLS handshake timed out" : c->why_buf;
        drop_conn(c);
        return -1;
    }
    return 0;
}

static int connect_any(http_client_t *c, const char **why)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(c->host, c->port, &hints, &res) != 0 || res == NULL) {
        *why = "cannot resolve the host";
        return -1;
    }
    int rc = -1;
    for (struct addrinfo *ai = res; ai != NULL && rc != 0 && !past(c); ai = ai->ai_next)
        rc = connect_one(c, ai->ai_addr, why);
    freeaddrinfo(res);
    return rc;
}

/* ---- answers ---- */

static int r_head(void *ctx, const http1_head_t *h)
{
    http_client_t *c = ctx;
    if (h->status >= 200) {
        c->status = h->status;
        c->keep = h->keep_alive;
    }
    return HTTP1_CB_OK;
}

static int r_body(void *ctx, const char *data, size_t len)
{
    http_client_t *c = ctx;
    if (c->answer == NULL || c->status < 200)
        return HTTP1_CB_OK;
    if (len > c->answer_max - (c->answer->len - c->answer_base)) {
        fail(c, "answer too large");
        return HTTP1_CB_ABORT;
    }
    buf_append(c->answer, data, len);
    return HTTP1_CB_OK;
}

static int r_complete(void *ctx)
{
    http_client_t *c = ctx;
    if (c->status >= 200) /* a final answer (1xx ones are followed by it) */
        c->done = true;
    return HTTP1_CB_OK;
}

static const http1_callbacks_t r_cb = {r_head, r_body, NULL, r_complete};

/* ---- public ---- */

http_client_t *http_client_create(const char *url, const char *ca_file, char *err, size_t errlen)
{
    http_client_tls_t t = {.ca_file = ca_file};
    return http_client_create_tls(url, &t, err, errlen);
}

http_client_t *http_client_create_tls(const char *url, const http_client_tls_t *tls, char *err, size_t errlen)
{
    static const http_client_tls_t none = {0};
    if (tls == NULL)
        tls = &none;
    size_t scheme = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (scheme == 0 || strlen(url) > HTTP_CLIENT_URL_MAX) {
        snprintf(err, errlen, "expected http:// or https://HOST:PORT[/path] of at most %u bytes", HTTP_CLIENT_URL_MAX);
        return NULL;
    }
    const char *path = strchr(url + scheme, '/');
    size_t hl = path != NULL ? (size_t)(path - (url + scheme)) : strlen(url + scheme);
    http_client_t *c = xcalloc(1, sizeof(*c));
    uint16_t port;
    if (hl >= sizeof(c->hostport) ||
        (memcpy(c->hostport, url + scheme, hl), c->hostport[hl] = '\0',
         hostport_split(c->hostport, c->host, sizeof(c->host), &port, NULL) != 0) ||
        port == 0) {
        snprintf(err, errlen, "expected HOST:PORT after the scheme in \"%s\"", url);
        free(c);
        return NULL;
    }
    snprintf(c->port, sizeof(c->port), "%u", (unsigned)port);
    snprintf(c->base, sizeof(c->base), "%s", path != NULL ? path : "");
    size_t bl = strlen(c->base);
    while (bl > 0 && c->base[bl - 1] == '/')
        c->base[--bl] = '\0';
    c->tls = scheme == 8;
    if (c->tls) {
        if (tls->ctx != NULL) {
            tls_ctx_ref(tls->ctx);
            c->tls_ctx = tls->ctx;
        } else {
            tls_ctx_opts_t o = {.ca_file = tls->ca_file != NULL ? tls->ca_file : HTTP_CLIENT_SYSTEM_CA,
                                .cert_file = tls->cert_file,
                                .key_file = tls->cert_file != NULL ? tls->key_file : NULL,
                                .verify_peer = true};
            c->tls_ctx = tls_ctx_create(&o, err, errlen);
        }
        if (c->tls_ctx == NULL) {
            free(c);
            return NULL;
        }
        c->sessions = tls_session_cache_create(4);
    }
    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->tick);
    c->tick.data = c;
    c->resp = http1_parser_create(HTTP1_RESPONSE, NULL, &r_cb, c);
    return c;
}

/* One try on the kept connection or a new one: the status, -1, or -2 when a kept connection turned out stale. */
static int post_once(http_client_t *c, int get, const void *body, size_t len, const char **why)
{
    bool reused = c->conn != NULL && !c->dead;
    if (!reused) {
        drop_conn(c);
        if (connect_any(c, why) != 0)
            return -1;
    }
    c->done = c->failed = c->got_bytes = c->keep = false;
    c->status = 0;
    c->resp_bytes = 0;
    c->why = NULL;
    if (c->answer != NULL && c->answer->data != NULL) {
        c->answer->len = c->answer_base; /* a stale connection's try left nothing worth keeping */
        c->answer->data[c->answer_base] = '\0';
    }
    http1_parser_reset(c->resp);
    http1_parser_set_method(c->resp, get ? HTTP1_METHOD_GET : HTTP1_METHOD_POST);
    transport_t *tr = &c->conn->tr;
    if (transport_write(tr, c->head.data, c->head.len) < 0 || (len > 0 && transport_write(tr, body, len) < 0)) {
        drop_conn(c);
        *why = "write failed";
        return reused ? -2 : -1;
    }
    transport_read_start(tr);
    bool finished = false;
    c->expired = false;
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    while (!(finished = c->done || c->failed) && !c->expired && !past(c))
        uv_run(&c->loop, UV_RUN_ONCE);
    uv_timer_stop(&c->tick);
    if (c->conn != NULL)
        transport_read_stop(&c->conn->tr);
    if (c->done && !c->failed) {
        if (!c->keep || c->dead)
            drop_conn(c);
        return c->status;
    }
    bool stale = reused && !c->got_bytes && c->failed;
    *why = finished ? c->why : "no answer in time";
    drop_conn(c);
    return stale ? -2 : -1;
}

/* Whether each extra field is "Name: value" on one line. */
static bool headers_ok(const http_client_request_t *r)
{
    if (r->n_headers > HTTP_CLIENT_HEADERS_MAX)
        return false;
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *h = r->headers[i], *colon = strchr(h, ':');
        if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL)
            return false;
    }
    return true;
}

int http_client_send(http_client_t *c, const http_client_request_t *r, uint64_t deadline_ms,
                     const _Atomic uint64_t *stop_ms, const char **why)
{
    const char *w = NULL;
    if (!headers_ok(r)) {
        if (why != NULL)
            *why = "bad request header field";
        return -1;
    }
    c->deadline_ms = deadline_ms;
    c->stop_ms = stop_ms;
    c->answer = r->answer;
    c->answer_base = r->answer != NULL ? r->answer->len : 0;
    c->answer_max = r->answer_max != 0 ? r->answer_max : HTTP_CLIENT_RESPONSE_MAX;
    /* room for the whole head first: a buffer that grew mid-way would leave a copy of a credential behind */
    size_t extra = 0;
    for (size_t i = 0; i < r->n_headers; i++)
        extra += strlen(r->headers[i]) + 2;
    c->head.len = 0;
    const char *ctype = r->get ? NULL : r->content_type, *cenc = r->get ? NULL : r->content_encoding;
    buf_reserve(&c->head, strlen(c->base) + strlen(r->path) + strlen(c->hostport) + (ctype ? strlen(ctype) : 0) +
                              (cenc != NULL ? strlen(cenc) : 0) + extra + 256);
    buf_printf(
        &c->head, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: outrider-proxy/" OUTRIDER_VERSION "\r\n%s%s%s%s%s%s",
        r->get ? "GET" : "POST", c->base, r->path, c->hostport, ctype ? "Content-Type: " : "", ctype ? ctype : "",
        ctype ? "\r\n" : "", cenc ? "Content-Encoding: " : "", cenc ? cenc : "", cenc ? "\r\n" : "");
    for (size_t i = 0; i < r->n_headers; i++) { /* not buf_printf: it formats through a stack buffer */
        buf_append(&c->head, r->headers[i], strlen(r->headers[i]));
        buf_append(&c->head, "\r\n", 2);
    }
    if (r->get)
        buf_append(&c->head, "\r\n", 2);
    else
        buf_printf(&c->head, "Content-Length: %zu\r\n\r\n", r->len);
    size_t len = r->get ? 0 : r->len;
    int rc = past(c) ? -1 : post_once(c, r->get, r->body, len, &w);
    if (rc == -2 && !past(c)) /* the kept connection had been closed by the server: once more, fresh */
        rc = post_once(c, r->get, r->body, len, &w);
    if (r->n_headers > 0)
        OPENSSL_cleanse(c->head.data, c->head.cap);
    c->answer = NULL;
    if (rc < 0 && why != NULL)
        *why = w != NULL ? w : past(c) ? "no answer in time" : "failed";
    return rc < 0 ? -1 : rc;
}

int http_client_post(http_client_t *c, const char *path, const char *content_type, const char *content_encoding,
                     const void *body, size_t len, uint64_t deadline_ms, const _Atomic uint64_t *stop_ms,
                     const char **why)
{
    http_client_request_t r = {
        .path = path, .content_type = content_type, .content_encoding = content_encoding, .body = body, .len = len};
    return http_client_send(c, &r, deadline_ms, stop_ms, why);
}

void http_client_destroy(http_client_t *c)
{
    if (c == NULL)
        return;
    drop_conn(c);
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    http1_parser_destroy(c->resp);
    tls_session_cache_destroy(c->sessions);
    tls_ctx_unref(c->tls_ctx);
    buf_dispose(&c->head);
    free(c);
}
