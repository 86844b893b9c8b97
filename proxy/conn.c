/*
 * conn: downstream connection and request forwarding; see conn.h.
 *
 * Memory and lifetime. The conn owns its two handles (socket, timer), a
 * request parser, a response parser reused for every exchange, and the
 * input buffer `in` that holds bytes the request parser has not consumed
 * (the rest of a pipelined burst while a request is in flight). Closing is
 * deferred: conn_close() only starts uv_close, and the memory goes in the
 * last close callback, so code further up the stack may still look at the
 * conn (and must check `closing`).
 *
 * An exchange ends when its response is complete and either its request
 * is complete too or the connection will close (an early response, a
 * reset). Local replies (errors, 503) count as the response; the rest of
 * the request body is then read and dropped.
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

#define DOWN_WRITE_HIGH (256 * 1024) /* bytes queued to the client above which the upstream is not read */
#define DOWN_WRITE_LOW (64 * 1024)
#define READ_CHUNK (16 * 1024)

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    conn_env_t *env;
    conn_t *next, *prev;
    http1_parser_t *req;
    http1_parser_t *resp;
    buf_t in;  /* unconsumed request bytes */
    buf_t out; /* scratch for heads and chunks */
    http1_header_t *hdrs;
    uint32_t hdrs_cap;
    buf_t xff;
    char peer[64];
    int open_handles;
    upstream_t *up;
    size_t down_queued;
    uint64_t bytes_seen; /* request bytes read since the last exchange ended (408 vs idle close) */
    bool closing;
    bool reading;
    bool paused; /* request parser paused after on_complete */
    bool in_exchange;
    bool req_done;
    bool resp_done;
    bool resp_head_sent;
    bool resp_interim;
    bool close_after; /* close once the exchange ends and writes drain */
    bool req_chunked; /* request body re-chunked upstream */
    bool req_trailers_sent;
    bool resp_chunked; /* response body re-chunked downstream */
    bool resp_no_body;
    bool resp_trailers_sent;
    bool up_reusable;
    bool up_read_paused;
    bool req_keep_alive;
    bool req_http11;
};

typedef struct dwreq {
    uv_write_t req;
    conn_t *c;
    size_t len;
    char data[];
} dwreq_t;

static void process(conn_t *c);
static void update_reading(conn_t *c);

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        log_fatal("conn: out of memory (%zu bytes)", n);
    return p;
}

/* ---- closing ---- */

static void on_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    conn_env_t *env = c->env;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        env->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    env->n_conns--;
    http1_parser_destroy(c->req);
    http1_parser_destroy(c->resp);
    buf_dispose(&c->in);
    buf_dispose(&c->out);
    buf_dispose(&c->xff);
    free(c->hdrs);
    free(c);
    if (env->draining && env->n_conns == 0 && env->on_empty != NULL)
        env->on_empty(env->owner);
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->up != NULL) {
        upstream_release(c->up, false);
        c->up = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void release_upstream(conn_t *c, bool reusable)
{
    if (c->up != NULL) {
        upstream_release(c->up, reusable);
        c->up = NULL;
    }
}

/* ---- writing to the client ---- */

static void on_down_write(uv_write_t *req, int status)
{
    dwreq_t *w = (dwreq_t *)req;
    conn_t *c = w->c;
    c->down_queued -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->up_read_paused && c->up != NULL && c->down_queued < DOWN_WRITE_LOW) {
        c->up_read_paused = false;
        upstream_read_start(c->up);
    }
    if (c->close_after && !c->in_exchange && c->down_queued == 0)
        conn_close(c);
}

static void down_write(conn_t *c, const void *data, size_t len)
{
    if (c->closing || len == 0)
        return;
    dwreq_t *w = xmalloc(sizeof *w + len);
    w->c = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    c->down_queued += len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_down_write) < 0) {
        c->down_queued -= len;
        free(w);
        conn_close(c);
    }
}

/* A complete response made here (errors, 503); ends the response side of the exchange. */
static void local_reply(conn_t *c, int status, const char *text, bool close)
{
    if (c->closing)
        return;
    if (c->resp_head_sent) {
        conn_close(c);
        return;
    }
    release_upstream(c, false);
    if (close || c->env->draining || !c->req_keep_alive || !c->in_exchange)
        c->close_after = true;
    c->out.len = 0;
    size_t n = strlen(text);
    if (http1_write_simple_response(&c->out, status, NULL, NULL, 0, "text/plain", text, n, c->close_after) < 0) {
        conn_close(c);
        return;
    }
    c->resp_head_sent = true;
    c->resp_done = true;
    down_write(c, c->out.data, c->out.len);
    if (!c->in_exchange && c->down_queued == 0)
        conn_close(c);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || c->in_exchange)
        return;
    if (c->bytes_seen > 0 || http1_parser_in_message(c->req))
        local_reply(c, 408, "request header read timeout\n", true);
    else
        conn_close(c);
}

static void arm_wait_timer(conn_t *c)
{
    uint64_t ms = c->bytes_seen > 0 ? c->env->header_timeout_ms : c->env->idle_timeout_ms;
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

/* ---- upstream events ---- */

static void up_on_connect(void *ctx, int status)
{
    conn_t *c = ctx;
    if (status == 0 || c->closing)
        return;
    log_debug("inbound: upstream connect failed: %s", uv_strerror(status));
    local_reply(c, 503, "upstream connect error\n", false);
    process(c);
}

static void after_response_progress(conn_t *c)
{
    if (c->closing || !c->resp_done)
        return;
    if (c->up != NULL) {
        /* a response that came before its request finished leaves the upstream mid-request */
        bool reusable = c->up_reusable && c->req_done;
        if (!c->req_done)
            c->close_after = true;
        release_upstream(c, reusable);
    }
    process(c);
}

static void up_on_read(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    if (c->resp_done) {
        c->up_reusable = false; /* bytes after the response: the connection is not clean */
        release_upstream(c, false);
        return;
    }
    size_t used = 0;
    int rc = http1_parse(c->resp, data, len, &used);
    if (c->closing)
        return;
    if (rc == HTTP1_ERROR || rc == HTTP1_UPGRADED) {
        if (rc == HTTP1_ERROR)
            log_debug("inbound: bad upstream response: %s", http1_parser_error_reason(c->resp));
        if (c->resp_head_sent && !c->resp_done) {
            conn_close(c);
            return;
        }
        if (!c->resp_done)
            local_reply(c, 502, "upstream sent an invalid response\n", !c->req_done);
        release_upstream(c, false);
        process(c);
        return;
    }
    if (c->resp_done && used < len)
        c->up_reusable = false;
    after_response_progress(c);
}

static void up_on_close(void *ctx, int status)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    c->up_reusable = false;
    if (!c->resp_done && c->resp_head_sent) {
        if (http1_finish(c->resp) == HTTP1_OK && c->resp_done) {
            after_response_progress(c);
            return;
        }
        /* reset mid-response: the client cannot be told, only cut off */
        log_debug("inbound: upstream closed mid-response: %s", uv_strerror(status));
        conn_close(c);
        return;
    }
    if (!c->resp_done) {
        log_debug("inbound: upstream closed before a response: %s", uv_strerror(status));
        local_reply(c, 502, "upstream connection closed before a response\n", !c->req_done);
    }
    release_upstream(c, false);
    process(c);
}

static void up_on_drain(void *ctx)
{
    update_reading(ctx);
}

static const upstream_handler_t up_handler = {up_on_connect, up_on_read, up_on_close, up_on_drain};

/* ---- response parser callbacks ---- */

static int resp_on_head(void *ctx, const http1_head_t *h)
{
    conn_t *c = ctx;
    http1_head_opts_t o = {HTTP1_FRAME_NONE, 0, false, false};
    c->out.len = 0;
    if (h->status / 100 == 1) {
        if (h->status == 101)
            return HTTP1_CB_ABORT;
        c->resp_interim = true;
        if (http1_write_response_head(&c->out, h->status, NULL, h->headers, h->header_count, &o) == 0)
            down_write(c, c->out.data, c->out.len);
        return HTTP1_CB_OK;
    }
    c->resp_chunked = false;
    c->resp_no_body = false;
    c->resp_trailers_sent = false;
    c->up_reusable = h->keep_alive;
    if (c->env->draining || !c->req_keep_alive)
        c->close_after = true;
    if (h->method == HTTP1_METHOD_HEAD || h->status == 204 || h->status == 304) {
        c->resp_no_body = true;
        const http1_header_t *cl = http1_header_find(h->headers, h->header_count, "content-length");
        if (cl != NULL && h->status != 204 && cl->value.len > 0 && cl->value.len < 20) {
            char tmp[24];
            memcpy(tmp, cl->value.ptr, cl->value.len);
            tmp[cl->value.len] = '\0';
            char *end;
            unsigned long long v = strtoull(tmp, &end, 10);
            if (*end == '\0') {
                o.framing = HTTP1_FRAME_LENGTH;
                o.content_length = v;
            }
        }
    } else if (h->body == HTTP1_BODY_LENGTH) {
        o.framing = HTTP1_FRAME_LENGTH;
        o.content_length = h->content_length;
    } else if (h->body == HTTP1_BODY_NONE) {
        o.framing = HTTP1_FRAME_LENGTH;
        o.content_length = 0;
    } else if (c->req_http11) {
        o.framing = HTTP1_FRAME_CHUNKED;
        c->resp_chunked = true;
    } else {
        o.framing = HTTP1_FRAME_CLOSE;
        c->close_after = true;
    }
    o.close = c->close_after;
    if (http1_write_response_head(&c->out, h->status, NULL, h->headers, h->header_count, &o) < 0)
        return HTTP1_CB_ABORT;
    c->resp_head_sent = true;
    down_write(c, c->out.data, c->out.len);
    return HTTP1_CB_OK;
}

static int resp_on_body(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    if (c->resp_no_body)
        return HTTP1_CB_OK;
    if (c->resp_chunked) {
        char hdr[19];
        size_t n = http1_chunk_header(hdr, len);
        c->out.len = 0;
        buf_append(&c->out, hdr, n);
        buf_append(&c->out, data, len);
        buf_append(&c->out, "\r\n", 2);
        down_write(c, c->out.data, c->out.len);
    } else {
        down_write(c, data, len);
    }
    if (c->down_queued >= DOWN_WRITE_HIGH && c->up != NULL && !c->up_read_paused) {
        c->up_read_paused = true;
        upstream_read_stop(c->up);
    }
    return HTTP1_CB_OK;
}

static int resp_on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    conn_t *c = ctx;
    if (c->resp_chunked && !c->resp_interim) {
        c->out.len = 0;
        if (http1_write_last_chunk(&c->out, t, n) < 0)
            return HTTP1_CB_ABORT;
        down_write(c, c->out.data, c->out.len);
        c->resp_trailers_sent = true;
    }
    return HTTP1_CB_OK;
}

static int resp_on_complete(void *ctx)
{
    conn_t *c = ctx;
    if (c->resp_interim) {
        c->resp_interim = false;
        return HTTP1_CB_OK;
    }
    if (c->resp_chunked && !c->resp_trailers_sent) {
        c->out.len = 0;
        http1_write_last_chunk(&c->out, NULL, 0);
        down_write(c, c->out.data, c->out.len);
    }
    c->resp_done = true;
    return HTTP1_CB_OK;
}

static const http1_callbacks_t resp_cb = {resp_on_head, resp_on_body, resp_on_trailers, resp_on_complete};

/* ---- request parser callbacks ---- */

/* The request's fields plus x-forwarded-for (the client appended) and x-forwarded-proto. */
static uint32_t build_headers(conn_t *c, const http1_head_t *h)
{
    if (c->hdrs_cap < h->header_count + 2) {
        free(c->hdrs);
        c->hdrs_cap = h->header_count + 2;
        c->hdrs = xmalloc(c->hdrs_cap * sizeof *c->hdrs);
    }
    c->xff.len = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->header_count; i++) {
        const http1_header_t *f = &h->headers[i];
        if (http1_name_eq(f->name, "x-forwarded-for")) {
            if (f->value.len > 0) {
                buf_append(&c->xff, f->value.ptr, f->value.len);
                buf_append_str(&c->xff, ", ");
            }
            continue;
        }
        if (http1_name_eq(f->name, "x-forwarded-proto"))
            continue;
        c->hdrs[n++] = *f;
    }
    buf_append_str(&c->xff, c->peer);
    c->hdrs[n].name = (str_t){"x-forwarded-for", 15};
    c->hdrs[n].value = (str_t){c->xff.data, c->xff.len};
    n++;
    const char *proto = c->env->proto ? c->env->proto : "http";
    c->hdrs[n].name = (str_t){"x-forwarded-proto", 17};
    c->hdrs[n].value = (str_t){proto, strlen(proto)};
    return n + 1;
}

static int req_on_head(void *ctx, const http1_head_t *h)
{
    conn_t *c = ctx;
    uv_timer_stop(&c->timer);
    c->in_exchange = true;
    c->req_done = false;
    c->resp_done = false;
    c->resp_head_sent = false;
    c->resp_interim = false;
    c->req_trailers_sent = false;
    c->up_reusable = false;
    c->up_read_paused = false;
    c->req_keep_alive = h->keep_alive;
    c->req_http11 = h->version_major == 1 && h->version_minor >= 1;
    c->req_chunked = h->body == HTTP1_BODY_CHUNKED;
    if (c->env->draining)
        c->close_after = true;
    if (h->upgrade) {
        local_reply(c, 501, "protocol upgrades are not supported yet\n", true);
        return HTTP1_CB_OK;
    }
    http1_head_opts_t o = {HTTP1_FRAME_NONE, 0, false, false};
    if (h->body == HTTP1_BODY_LENGTH) {
        o.framing = HTTP1_FRAME_LENGTH;
        o.content_length = h->content_length;
    } else if (h->body == HTTP1_BODY_CHUNKED) {
        o.framing = HTTP1_FRAME_CHUNKED;
    }
    uint32_t n = build_headers(c, h);
    c->out.len = 0;
    if (http1_write_request_head(&c->out, h->method_name, h->target, c->hdrs, n, &o) < 0) {
        local_reply(c, 400, "bad request\n", true);
        return HTTP1_CB_OK;
    }
    c->up = upstream_acquire(c->env->pool, &up_handler, c);
    if (c->up == NULL) {
        local_reply(c, 503, "upstream connect error\n", false);
        return HTTP1_CB_OK;
    }
    http1_parser_reset(c->resp);
    http1_parser_set_method(c->resp, h->method);
    upstream_write(c->up, c->out.data, c->out.len);
    return HTTP1_CB_OK;
}

static int req_on_body(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    if (c->up == NULL || c->resp_done)
        return HTTP1_CB_OK;
    if (c->req_chunked) {
        char hdr[19];
        size_t n = http1_chunk_header(hdr, len);
        c->out.len = 0;
        buf_append(&c->out, hdr, n);
        buf_append(&c->out, data, len);
        buf_append(&c->out, "\r\n", 2);
        upstream_write(c->up, c->out.data, c->out.len);
    } else {
        upstream_write(c->up, data, len);
    }
    return HTTP1_CB_OK;
}

static int req_on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    conn_t *c = ctx;
    if (c->up != NULL && c->req_chunked && !c->resp_done) {
        c->out.len = 0;
        if (http1_write_last_chunk(&c->out, t, n) == 0) {
            upstream_write(c->up, c->out.data, c->out.len);
            c->req_trailers_sent = true;
        }
    }
    return HTTP1_CB_OK;
}

static int req_on_complete(void *ctx)
{
    conn_t *c = ctx;
    if (c->up != NULL && c->req_chunked && !c->req_trailers_sent && !c->resp_done) {
        c->out.len = 0;
        http1_write_last_chunk(&c->out, NULL, 0);
        upstream_write(c->up, c->out.data, c->out.len);
    }
    c->req_done = true;
    return HTTP1_CB_PAUSE;
}

static const http1_callbacks_t req_cb = {req_on_head, req_on_body, req_on_trailers, req_on_complete};

/* ---- the request side ---- */

/* When the current exchange is over: end it. Returns true when the connection goes on with the next request. */
static bool try_end_exchange(conn_t *c)
{
    if (!c->in_exchange || !c->resp_done || !(c->req_done || c->close_after))
        return false;
    c->in_exchange = false;
    release_upstream(c, false);
    if (c->close_after || c->env->draining) {
        c->close_after = true;
        if (c->down_queued == 0)
            conn_close(c);
        return false;
    }
    c->paused = false;
    c->resp_done = false;
    c->bytes_seen = c->in.len;
    http1_parser_resume(c->req);
    arm_wait_timer(c);
    return true;
}

static void consume(conn_t *c, size_t n)
{
    if (n == 0)
        return;
    if (n < c->in.len)
        memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
}

static void process(conn_t *c)
{
    for (;;) {
        if (c->closing)
            return;
        if (c->paused || (c->in_exchange && c->resp_done && c->close_after)) {
            if (!try_end_exchange(c))
                break;
            continue;
        }
        if (c->in.len == 0)
            break;
        size_t used = 0;
        int rc = http1_parse(c->req, c->in.data, c->in.len, &used);
        consume(c, used);
        if (c->closing)
            return;
        if (rc == HTTP1_ERROR) {
            c->in_exchange = false;
            c->req_keep_alive = false;
            local_reply(c, http1_parser_error_status(c->req), http1_parser_error_reason(c->req), true);
            return;
        }
        if (rc == HTTP1_UPGRADED) {
            c->in.len = 0;
            c->paused = true; /* the 501 closes the connection */
            continue;
        }
        if (rc == HTTP1_PAUSED) {
            c->paused = true;
            continue;
        }
        break;
    }
    update_reading(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn_t *c = h->data;
    buf_reserve(&c->in, READ_CHUNK);
    b->base = c->in.data + c->in.len;
    b->len = READ_CHUNK;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    conn_t *c = s->data;
    if (c->closing || n == 0)
        return;
    if (n < 0) {
        if (c->in_exchange && c->req_done && n == UV_EOF) {
            /* the client half-closed after its request: answer, then close */
            c->close_after = true;
            uv_read_stop(s);
            c->reading = false;
            return;
        }
        conn_close(c);
        return;
    }
    c->in.len += (size_t)n;
    if (!c->in_exchange && c->bytes_seen == 0) {
        c->bytes_seen += (size_t)n;
        arm_wait_timer(c); /* from the idle timeout to the header timeout */
    }
    process(c);
}

static void update_reading(conn_t *c)
{
    if (c->closing)
        return;
    bool want = !c->paused && !(c->close_after && !c->in_exchange && c->resp_done) &&
                (c->up == NULL || upstream_write_queued(c->up) < UPSTREAM_WRITE_HIGH);
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---- public ---- */

int conn_accept(conn_env_t *env, uv_stream_t *server)
{
    conn_t *c = xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->env = env;
    if (uv_tcp_init(env->loop, &c->tcp) < 0) {
        free(c);
        return -1;
    }
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        /* nothing was accepted: close the fresh handle, then free */
        c->open_handles = 1;
        c->closing = true;
        c->prev = NULL;
        c->next = env->conns;
        if (env->conns != NULL)
            env->conns->prev = c;
        env->conns = c;
        env->n_conns++;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return -1;
    }
    uv_timer_init(env->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = env->conns;
    if (env->conns != NULL)
        env->conns->prev = c;
    env->conns = c;
    env->n_conns++;
    c->req = http1_parser_create(HTTP1_REQUEST, &env->limits, &req_cb, c);
    c->resp = http1_parser_create(HTTP1_RESPONSE, NULL, &resp_cb, c);
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    strcpy(c->peer, "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    }
    c->req_keep_alive = true;
    arm_wait_timer(c);
    update_reading(c);
    return 0;
}

void conn_env_drain(conn_env_t *env)
{
    env->draining = true;
    conn_t *next;
    for (conn_t *c = env->conns; c != NULL; c = next) {
        next = c->next;
        if (c->closing)
            continue;
        c->close_after = true;
        if (!c->in_exchange && c->in.len == 0 && !http1_parser_in_message(c->req)) {
            c->resp_done = true; /* nothing more to read: close once the last response is written */
            if (c->down_queued == 0)
                conn_close(c);
            else
                update_reading(c);
        } else
            update_reading(c);
    }
    if (env->n_conns == 0 && env->on_empty != NULL)
        env->on_empty(env->owner);
}
