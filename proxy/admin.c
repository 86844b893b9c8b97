/*
 * admin: the proxy's admin listener; see admin.h.
 *
 * One listener and a list of connections on the owner's loop. Each
 * connection owns a socket and a timer handle, a request parser, and an
 * input buffer with the bytes the parser has not consumed yet. Every page
 * is made synchronously in the request's on_complete (which pauses the
 * parser), queued as one uv_write, and then the parser resumes, so
 * pipelined requests are answered in order without a queue of their own.
 * Reading stops while too much output is queued (a client that pipelines
 * without reading) and while the connection is closing after a reply.
 *
 * Lifetime. Closing is deferred as libuv wants it: a connection's memory
 * goes in the close callback of its last handle; the admin's own memory
 * goes once admin_close was called, the listener is closed and the last
 * connection is gone. Callbacks into the owner (quit) are made after
 * http1_parse returns, so the owner may call admin_close from them.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostport.h"
#include "http1.h"
#include "log.h"
#include "xalloc.h"

#define ADMIN_MAX_BODY (64 * 1024)        /* bytes of request body read and dropped; 413 above */
#define ADMIN_IDLE_TIMEOUT_MS (60 * 1000) /* no complete request for this long: the connection closes */
#define ADMIN_CLOSE_GRACE_MS 1000         /* admin_close: time left to flush queued replies */
#define ADMIN_LINGER_MS 2000              /* after a last reply: time to drain the client's unread bytes */
#define ADMIN_MAX_CONNS 128               /* connections above this are accepted and closed at once */
#define ADMIN_WRITE_HIGH (1024 * 1024)    /* queued reply bytes above which the connection is not read */
#define READ_CHUNK (16 * 1024)

typedef struct aconn aconn_t;

struct admin {
    uv_loop_t *loop;
    uv_tcp_t listener;
    admin_handlers_t h;
    aconn_t *conns;
    uint32_t n_conns;
    uint64_t idle_timeout_ms;
    uint16_t port;
    bool closing;
    bool listener_closed;
};

enum page { PAGE_NONE, PAGE_READY, PAGE_STATS, PAGE_CONFIG, PAGE_QUIT };

struct aconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    admin_t *a;
    aconn_t *next, *prev;
    http1_parser_t *p;
    buf_t in;           /* bytes not consumed by the parser */
    buf_t out;          /* scratch for a reply */
    size_t queued;      /* reply bytes handed to uv_write and not yet done */
    uint64_t body_seen; /* body bytes of the current request */
    int open_handles;
    int method;     /* of the current request */
    enum page page; /* of the current request; PAGE_NONE: 404 */
    bool closing;
    bool reading;
    bool paused;       /* parser paused after a request's on_complete */
    bool close_after;  /* close once the queued replies are written */
    bool keep_alive;   /* of the current request */
    bool too_large;    /* the current request's body passed ADMIN_MAX_BODY */
    bool quit_pending; /* call h.quit once http1_parse returns */
    bool lingering;    /* last reply sent and FIN queued; reading and dropping until EOF */
};

typedef struct wreq {
    uv_write_t req;
    aconn_t *c;
    size_t len;
    char data[];
} wreq_t;

static void process(aconn_t *c);
static void update_reading(aconn_t *c);
static void on_linger_timeout(uv_timer_t *t);

/* ---- freeing ---- */

static void admin_free_if_done(admin_t *a)
{
    if (a->closing && a->listener_closed && a->n_conns == 0)
        free(a);
}

static void on_listener_closed(uv_handle_t *h)
{
    admin_t *a = h->data;
    a->listener_closed = true;
    admin_free_if_done(a);
}

static void on_conn_closed(uv_handle_t *h)
{
    aconn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    admin_t *a = c->a;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->n_conns--;
    http1_parser_destroy(c->p);
    buf_dispose(&c->in);
    buf_dispose(&c->out);
    free(c);
    admin_free_if_done(a);
}

static void conn_close(aconn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/*
 * The last reply is written: send FIN, then read and drop what the client
 * still sends until its EOF (or ADMIN_LINGER_MS). Closing at once with
 * unread bytes in the socket would make the kernel send RST, which can
 * destroy the reply before the client reads it (a 413 with a body unread).
 */
static void on_shutdown(uv_shutdown_t *req, int status)
{
    aconn_t *c = req->data;
    if (status < 0)
        conn_close(c);
}

static void finish(aconn_t *c)
{
    if (c->closing || c->lingering)
        return;
    if (c->a->closing) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, ADMIN_LINGER_MS, 0);
    update_reading(c);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    aconn_t *c = w->c;
    c->queued -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after && c->queued == 0) {
        finish(c);
        return;
    }
    update_reading(c);
}

static void conn_write(aconn_t *c, const char *data, size_t len)
{
    if (c->closing || len == 0)
        return;
    wreq_t *w = xmalloc(sizeof *w + len);
    w->c = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    c->queued += len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        c->queued -= len;
        free(w);
        conn_close(c);
    }
}

/* An error reply (codec errors, 408, 413): always the last one on the connection. */
static void error_reply(aconn_t *c, int status, const char *text)
{
    c->close_after = true;
    c->out.len = 0;
    if (http1_write_simple_response(&c->out, status, NULL, NULL, 0, "text/plain", text, strlen(text), true) == 0)
        conn_write(c, c->out.data, c->out.len);
    if (c->queued == 0)
        finish(c);
    else
        update_reading(c);
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t)
{
    aconn_t *c = t->data;
    if (c->closing)
        return;
    if (c->close_after || c->queued > 0 || !http1_parser_in_message(c->p)) {
        conn_close(c);
        return;
    }
    error_reply(c, 408, "request timeout\n");
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void arm_timer(aconn_t *c)
{
    uint64_t ms = c->a->idle_timeout_ms;
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

/* ---- pages ---- */

static const char paths_text[] = "admin paths:\n"
                                 "  GET  /ready\n"
                                 "  GET  /stats/prometheus\n"
                                 "  GET  /config_dump\n"
                                 "  POST /quitquitquit\n";

static enum page page_of(str_t target)
{
    size_t n = 0;
    while (n < target.len && target.ptr[n] != '?' && target.ptr[n] != '#')
        n++;
    static const struct {
        const char *path;
        enum page page;
    } table[] = {
        {"/ready", PAGE_READY},
        {"/stats/prometheus", PAGE_STATS},
        {"/config_dump", PAGE_CONFIG},
        {"/quitquitquit", PAGE_QUIT},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strlen(table[i].path) == n && memcmp(table[i].path, target.ptr, n) == 0)
            return table[i].page;
    }
    return PAGE_NONE;
}

/* Queue a reply; HEAD gets the head with the GET's Content-Length and no body. */
static void reply(aconn_t *c, int status, const char *content_type, const char *allow, const char *body,
                  size_t body_len)
{
    http1_header_t hdrs[2];
    uint32_t n = 0;
    if (content_type != NULL)
        hdrs[n++] = (http1_header_t){{"Content-Type", 12}, {content_type, (uint32_t)strlen(content_type)}};
    if (allow != NULL)
        hdrs[n++] = (http1_header_t){{"Allow", 5}, {allow, (uint32_t)strlen(allow)}};
    http1_head_opts_t o = {HTTP1_FRAME_LENGTH, body_len, c->close_after, false, false};
    c->out.len = 0;
    if (http1_write_response_head(&c->out, status, NULL, hdrs, n, &o) < 0) {
        conn_close(c);
        return;
    }
    if (c->method != HTTP1_METHOD_HEAD)
        buf_append(&c->out, body, body_len);
    conn_write(c, c->out.data, c->out.len);
}

static void serve(aconn_t *c)
{
    const admin_handlers_t *h = &c->a->h;
    bool get = c->method == HTTP1_METHOD_GET || c->method == HTTP1_METHOD_HEAD;
    bool post = c->method == HTTP1_METHOD_POST;
    buf_t body = BUF_INIT;
    switch (c->page) {
    case PAGE_NONE: reply(c, 404, "text/plain", NULL, paths_text, sizeof paths_text - 1); break;
    case PAGE_READY:
        if (!get) {
            reply(c, 405, "text/plain", "GET, HEAD", "method not allowed\n", 19);
        } else {
            const char *why = h->ready != NULL ? h->ready(h->ctx) : NULL;
            if (why == NULL)
                reply(c, 200, "text/plain", NULL, "LIVE\n", 5);
            else
                reply(c, 503, "text/plain", NULL, why, strlen(why));
        }
        break;
    case PAGE_STATS:
    case PAGE_CONFIG:
        if (!get) {
            reply(c, 405, "text/plain", "GET, HEAD", "method not allowed\n", 19);
            break;
        }
        if (c->page == PAGE_STATS) {
            if (h->stats != NULL)
                h->stats(h->ctx, &body);
            reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, body.data, body.len);
        } else {
            if (h->config_dump != NULL)
                h->config_dump(h->ctx, &body);
            else
                buf_append_str(&body, "{}\n");
            reply(c, 200, "application/json", NULL, body.data, body.len);
        }
        break;
    case PAGE_QUIT:
        if (!post) {
            reply(c, 405, "text/plain", "POST", "method not allowed\n", 19);
            break;
        }
        reply(c, 200, "text/plain", NULL, "OK\n", 3);
        c->quit_pending = true;
        break;
    }
    buf_dispose(&body);
}

/* ---- parser callbacks ---- */

static int on_head(void *ctx, const http1_head_t *h)
{
    aconn_t *c = ctx;
    c->method = h->method;
    c->page = page_of(h->target);
    c->keep_alive = h->keep_alive && !h->upgrade;
    c->body_seen = 0;
    c->too_large = false;
    if (h->body_over_limit) {
        c->too_large = true;
        return HTTP1_CB_ABORT;
    }
    if (h->expect_continue)
        conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return HTTP1_CB_OK;
}

static int on_body(void *ctx, const char *data, size_t len)
{
    (void)data;
    aconn_t *c = ctx;
    c->body_seen += len;
    if (c->body_seen > ADMIN_MAX_BODY) {
        c->too_large = true;
        return HTTP1_CB_ABORT;
    }
    return HTTP1_CB_OK;
}

static int on_complete(void *ctx)
{
    aconn_t *c = ctx;
    if (!c->keep_alive || c->a->closing)
        c->close_after = true;
    serve(c);
    return HTTP1_CB_PAUSE;
}

static const http1_callbacks_t parser_cb = {on_head, on_body, NULL, on_complete};

/* ---- reading ---- */

static void consume(aconn_t *c, size_t n)
{
    if (n < c->in.len)
        memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n < c->in.len ? n : c->in.len;
}

static void process(aconn_t *c)
{
    while (!c->closing && !c->close_after) {
        if (c->paused) {
            c->paused = false;
            http1_parser_resume(c->p);
            arm_timer(c);
        }
        if (c->in.len == 0 || c->queued >= ADMIN_WRITE_HIGH)
            break;
        size_t used = 0;
        int rc = http1_parse(c->p, c->in.data, c->in.len, &used);
        consume(c, used);
        if (c->quit_pending) {
            c->quit_pending = false;
            admin_t *a = c->a;
            if (a->h.quit != NULL)
                a->h.quit(a->h.ctx); /* may call admin_close: c may now be closing */
        }
        if (c->closing)
            return;
        if (rc == HTTP1_ERROR) {
            if (c->too_large)
                error_reply(c, 413, "request body too large\n");
            else
                error_reply(c, http1_parser_error_status(c->p), http1_parser_error_reason(c->p));
            return;
        }
        if (rc == HTTP1_PAUSED) {
            c->paused = true;
            continue;
        }
        if (rc == HTTP1_UPGRADED) {
            /* upgrades are refused: the reply was made with close set */
            c->close_after = true;
            break;
        }
    }
    if (!c->closing && c->close_after && c->queued == 0) {
        finish(c);
        return;
    }
    update_reading(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    aconn_t *c = h->data;
    buf_reserve(&c->in, READ_CHUNK);
    b->base = c->in.data + c->in.len;
    b->len = READ_CHUNK;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    aconn_t *c = s->data;
    if (c->closing || n == 0)
        return;
    if (c->lingering) {
        if (n < 0)
            conn_close(c);
        return;
    }
    if (n < 0) {
        /* EOF or an error: replies already queued are still sent, then the connection closes */
        c->close_after = true;
        if (c->queued == 0)
            conn_close(c);
        else
            update_reading(c);
        return;
    }
    c->in.len += (size_t)n;
    process(c);
}

static void update_reading(aconn_t *c)
{
    if (c->closing)
        return;
    bool want = c->lingering || (!c->close_after && !c->paused && c->queued < ADMIN_WRITE_HIGH);
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (want && !c->lingering && c->in.len > 0 && c->queued < ADMIN_WRITE_HIGH / 2)
        process(c); /* pipelined requests held back while the output drained */
}

/* ---- listener ---- */

static void on_connection(uv_stream_t *server, int status)
{
    admin_t *a = server->data;
    if (status < 0 || a->closing)
        return;
    aconn_t *c = xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->a = a;
    if (uv_tcp_init(a->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    uv_timer_init(a->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = c;
    a->conns = c;
    a->n_conns++;
    c->p =
        http1_parser_create(HTTP1_REQUEST, &(http1_limits_t){16 * 1024, 64, 4 * 1024, ADMIN_MAX_BODY}, &parser_cb, c);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || a->n_conns > ADMIN_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    arm_timer(c);
    update_reading(c);
}

admin_t *admin_create(uv_loop_t *loop, const char *host, uint16_t port, const admin_handlers_t *h, char *err,
                      size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (hostport_sockaddr(host, port, &ss, &sl) != 0) {
        snprintf(err, errlen, "admin: %s is not an IP address", host != NULL ? host : "(null)");
        return NULL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "admin: socket: %s", strerror(errno));
        return NULL;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        snprintf(err, errlen, "admin: setsockopt: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "admin: bind %s:%u: %s%s", host, (unsigned)port, strerror(errno),
                 errno == EADDRINUSE ? " (another process listens there)" : "");
        close(fd);
        return NULL;
    }
    if (listen(fd, 128) < 0) {
        snprintf(err, errlen, "admin: listen %s:%u: %s", host, (unsigned)port, strerror(errno));
        close(fd);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) < 0) {
        snprintf(err, errlen, "admin: getsockname: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    admin_t *a = xmalloc(sizeof *a);
    memset(a, 0, sizeof *a);
    a->loop = loop;
    if (h != NULL)
        a->h = *h;
    a->idle_timeout_ms = ADMIN_IDLE_TIMEOUT_MS;
    a->port = hostport_sockaddr_port(&bound);
    int rc = uv_tcp_init(loop, &a->listener);
    if (rc < 0) {
        snprintf(err, errlen, "admin: %s", uv_strerror(rc));
        close(fd);
        free(a);
        return NULL;
    }
    a->listener.data = a;
    rc = uv_tcp_open(&a->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "admin: listen %s:%u: %s", host, (unsigned)port, uv_strerror(rc));
        if (uv_fileno((uv_handle_t *)&a->listener, &(uv_os_fd_t){0}) != 0)
            close(fd); /* not adopted by the handle */
        a->closing = true;
        uv_close((uv_handle_t *)&a->listener, on_listener_closed); /* frees a */
        return NULL;
    }
    return a;
}

uint16_t admin_port(const admin_t *a)
{
    return a->port;
}

void admin_set_idle_timeout(admin_t *a, uint64_t ms)
{
    a->idle_timeout_ms = ms;
}

void admin_close(admin_t *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    aconn_t *next;
    for (aconn_t *c = a->conns; c != NULL; c = next) {
        next = c->next;
        if (c->closing)
            continue;
        if (c->queued == 0 || c->lingering) {
            conn_close(c);
        } else {
            /* let a queued reply (the quitquitquit 200) reach the client, but not for long */
            c->close_after = true;
            update_reading(c);
            uv_timer_start(&c->timer, on_timer, ADMIN_CLOSE_GRACE_MS, 0);
        }
    }
    admin_free_if_done(a);
}
