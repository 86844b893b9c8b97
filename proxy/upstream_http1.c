/*
 * upstream_http1: the exchange's upstream client over HTTP/1: the leased
 * connection's events and the response parser; see conn_int.h.
 */
#include "conn_int.h"

static void pause_upstream_if_full(conn_t *c);
static void up_on_connect(void *ctx, int status);
static void after_response_progress(conn_t *c);
static void tunnel_from_upstream(conn_t *c, const char *data, size_t len);
static void enter_tunnel(conn_t *c);
static void up_on_read(void *ctx, const char *data, size_t len);
static void up_read(conn_t *c, const char *data, size_t len);
static void up_on_close(void *ctx, int status);
static void up_closed(conn_t *c, int status);
static void up_on_drain(void *ctx);
static uint32_t response_headers(conn_t *c, const http1_head_t *h);
static void note_upstream_identity(conn_t *c);
static int resp_on_head(void *ctx, const http1_head_t *h);
static int resp_on_body(void *ctx, const char *data, size_t len);
static int resp_on_trailers(void *ctx, const http1_header_t *t, uint32_t n);
static int resp_on_complete(void *ctx);

static void pause_upstream_if_full(conn_t *c)
{
    if (down_queued(c) >= DOWN_WRITE_HIGH && c->up != NULL && !c->up_read_paused) {
        c->up_read_paused = true;
        upstream_read_stop(c->up);
    }
}

/* ---- upstream events ---- */

static void up_on_connect(void *ctx, int status)
{
    conn_t *c = ctx;
    if (status == 0 || c->closing)
        return;
    log_debug("upstream connect to %s failed: %s", c->cl->endpoints[c->ep].name, uv_strerror(status));
    c->tls_failure = c->up != NULL ? upstream_tls_failure(c->up) : NULL;
    conn_attempt_failed(c, FAIL_CONNECT);
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
        conn_release_upstream(c, reusable);
    }
    conn_process(c);
}

static void tunnel_from_upstream(conn_t *c, const char *data, size_t len)
{
    c->tunnel_down += len;
    conn_down_write(c, data, len);
    conn_down_flush(c);
    pause_upstream_if_full(c);
}

static void enter_tunnel(conn_t *c)
{
    c->tunnel = true;
    c->resp_done = true;
    conn_record_tunnel(c, true);
    conn_record(c);
    c->paused = false;
    conn_process(c); /* client bytes that came after the request head belong to the tunnel */
}

static void up_on_read(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    up_read(c, data, len);
    conn_down_flush(c);
}

static void up_read(conn_t *c, const char *data, size_t len)
{
    if (c->closing)
        return;
    if (c->tunnel) {
        tunnel_from_upstream(c, data, len);
        return;
    }
    if (c->resp_done) {
        c->up_reusable = false; /* bytes after the response: the connection is not clean */
        conn_release_upstream(c, false);
        return;
    }
    size_t used = 0;
    int rc = http1_parse(c->resp, data, len, &used);
    if (c->closing)
        return;
    if (rc == HTTP1_PAUSED && c->retry_pending) {
        c->retry_pending = false;
        conn_attempt_failed(c, FAIL_STATUS);
        return;
    }
    if (rc == HTTP1_UPGRADED && c->upgrade && c->resp_head_sent) {
        enter_tunnel(c);
        if (used < len && !c->closing)
            tunnel_from_upstream(c, data + used, len - used);
        return;
    }
    if (rc == HTTP1_ERROR || rc == HTTP1_UPGRADED) {
        if (rc == HTTP1_ERROR)
            log_debug("bad upstream response: %s", http1_parser_error_reason(c->resp));
        if (c->resp_head_sent && !c->resp_done) {
            conn_close(c);
            return;
        }
        if (!c->resp_done) {
            c->flags |= RF_UPE;
            conn_local_reply(c, 502, "upstream sent an invalid response\n", !c->req_done);
        }
        conn_release_upstream(c, false);
        conn_process(c);
        return;
    }
    if (c->resp_done && used < len)
        c->up_reusable = false;
    after_response_progress(c);
}

static void up_on_close(void *ctx, int status)
{
    conn_t *c = ctx;
    up_closed(c, status);
    conn_down_flush(c);
}

static void up_closed(conn_t *c, int status)
{
    if (c->closing)
        return;
    if (c->tunnel) {
        conn_close(c);
        return;
    }
    c->up_reusable = false;
    if (!c->resp_done && c->resp_head_sent) {
        if (http1_finish(c->resp) == HTTP1_OK && c->resp_done) {
            after_response_progress(c);
            return;
        }
        /* reset mid-response: the client cannot be told, only cut off */
        log_debug("upstream closed mid-response: %s", uv_strerror(status));
        c->flags |= RF_UC;
        conn_close(c);
        return;
    }
    if (!c->resp_done) {
        log_debug("upstream closed before a response: %s", uv_strerror(status));
        conn_attempt_failed(c, FAIL_RESET);
        return;
    }
    conn_release_upstream(c, false);
    conn_process(c);
}

static void up_on_drain(void *ctx)
{
    conn_update_reading(ctx);
}

/*
 * The client side of one attempt: lease a connection of pool, then send
 * the head (written from the structured head at the first attempt; a retry
 * sends the same bytes) and the body kept so far; the response parser
 * starts afresh. -1 when no connection can even be made.
 */
int conn_uclient_begin(conn_t *c, upstream_pool_t *pool)
{
    c->up = upstream_acquire(pool, &conn_up_handler, c);
    if (c->up == NULL)
        return -1;
    http1_parser_reset(c->resp);
    http1_parser_set_method(c->resp, c->head->method);
    /* our peer metadata once per connection when the server agreed to it (PEER_ALPN); a retry on another
     * connection may need the other form of the head */
    enum proxy_head_peer peer = !upstream_md_once(c->up)  ? PROXY_HEAD_ANY
                                : upstream_md_sent(c->up) ? PROXY_HEAD_OURS
                                                          : PROXY_HEAD_OURS_MD;
    if (c->up_head.len == 0 || peer != c->up_head_peer) {
        c->up_head.len = 0;
        proxy_head_write_http1(&c->uhead, peer, &c->up_head);
        c->up_head_peer = peer;
    }
    if (peer != PROXY_HEAD_OURS && c->uhead.n_once > 0) /* (before its handshake a connection counts as foreign) */
        upstream_note_md_sent(c->up);
    upstream_write(c->up, c->up_head.data, c->up_head.len);
    if (c->body.len > 0)
        upstream_write(c->up, c->body.data, c->body.len);
    return 0;
}

const upstream_handler_t conn_up_handler = {up_on_connect, up_on_read, up_on_close, up_on_drain};

/* The response's fields as the client gets them: peer metadata taken out (and read), route header operations. */
static uint32_t response_headers(conn_t *c, const http1_head_t *h)
{
    uint32_t cap = h->header_count + MAX_EXTRA_FIELDS;
    conn_ensure_hdrs(c, 2 * cap);
    http1_header_t *tmp = c->hdrs + cap;
    uint32_t n = 0;
    bool outbound = c->env->mode == CONN_OUTBOUND, md_seen = false;
    for (uint32_t i = 0; i < h->header_count; i++) {
        const http1_header_t *f = &h->headers[i];
        if (f->name.len >= 21 && peer_is_header(f->name)) {
            if (outbound && http1_name_eq(f->name, PEER_HEADER)) {
                md_seen = true;
                conn_take_peer(c, f->value);
                if (c->env->w->tele != NULL && upstream_md_once(c->up))
                    upstream_set_peer_md(c->up, f->value.ptr, f->value.len); /* for the responses without it */
            }
            continue;
        }
        tmp[n++] = *f;
    }
    if (outbound && !md_seen && c->env->w->tele != NULL && upstream_md_once(c->up)) {
        size_t len;
        const char *md = upstream_peer_md(c->up, &len);
        if (md != NULL)
            conn_take_peer(c, (str_t){md, (uint32_t)len});
    }
    /* our metadata: on every response, or once per connection (and again after a reload) when agreed */
    if (!outbound && (!c->down_md_once || c->md_sent_serial != c->view->rt->serial)) {
        memcpy(tmp + n, c->view->rt->peer_fields, sizeof c->view->rt->peer_fields);
        n += 2;
        c->md_sent_serial = c->view->rt->serial;
    }
    if (c->d.route != NULL)
        return router_response_headers(&c->d, tmp, n, c->hdrs, cap);
    memcpy(c->hdrs, tmp, n * sizeof *tmp);
    return n;
}

/* The answering upstream's verified identity, when the connection is mutual TLS with ours (telemetry). */
static void note_upstream_identity(conn_t *c)
{
    const char *id = c->up != NULL && c->env->w->mesh_tls != NULL ? upstream_peer_id(c->up) : NULL;
    c->up_mtls = id != NULL && runtime_mesh_mtls(c->view->rt, c->cl, c->ep);
    if (!c->up_mtls)
        id = NULL;
    if (strncmp(c->up_principal, id != NULL ? id : "", sizeof c->up_principal) != 0) {
        snprintf(c->up_principal, sizeof c->up_principal, "%s", id != NULL ? id : "");
        c->tele_peer = 0; /* the principal is part of the peer's telemetry handle */
    }
}

static int resp_on_head(void *ctx, const http1_head_t *h)
{
    conn_t *c = ctx;
    http1_head_opts_t o = {HTTP1_FRAME_NONE, 0, false, false, true};
    c->out.len = 0;
    if (h->status / 100 == 1 && h->status != 101) {
        c->resp_interim = true;
        if (http1_write_response_head(&c->out, h->status, NULL, h->headers, h->header_count, &o) == 0)
            conn_down_write(c, c->out.data, c->out.len);
        return HTTP1_CB_OK;
    }
    if (h->status == 101 && !c->upgrade)
        return HTTP1_CB_ABORT;
    if (h->status != 101 && c->retries_left > 0 && !c->body_over && c->req_done &&
        conn_retriable_status(c->retry, h->status)) {
        c->retry_pending = true;
        c->fail_status = h->status;
        return HTTP1_CB_PAUSE;
    }
    if (h->status != 101)
        conn_outlier_result(c, h->status);
    note_upstream_identity(c);
    uv_timer_stop(&c->try_timer);
    if (c->attempts > 1 && c->retries_left == 0 && conn_retriable_status(c->retry, h->status))
        c->flags |= RF_URX;
    /* the final response of the request: how its retries ended (Envoy's retry_success / retry_limit_exceeded) */
    if (!conn_retriable_status(c->retry, h->status)) {
        if (c->attempts > 1)
            runtime_count(c->view->rt, c->cl, RC_RETRY_SUCCESS);
    } else if (conn_retries_used_up(c)) {
        runtime_count(c->view->rt, c->cl, RC_RETRY_LIMIT_EXCEEDED);
    }
    c->resp_chunked = false;
    c->resp_no_body = false;
    c->resp_trailers_sent = false;
    c->up_reusable = h->keep_alive;
    c->status = h->status;
    if (c->env->draining || !c->req_keep_alive || c->upgrade)
        c->close_after = true;
    if (h->status == 101) {
        o.tunnel = true;
    } else if (h->method == HTTP1_METHOD_HEAD || h->status == 204 || h->status == 304) {
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
    o.close = c->close_after && h->status != 101;
    uint32_t n = response_headers(c, h);
    if (http1_write_response_head(&c->out, h->status, NULL, c->hdrs, n, &o) < 0)
        return HTTP1_CB_ABORT;
    c->resp_head_sent = true;
    conn_down_write(c, c->out.data, c->out.len);
    return HTTP1_CB_OK;
}

static int resp_on_body(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    if (c->resp_no_body)
        return HTTP1_CB_OK;
    c->resp_body_bytes += len;
    if (c->resp_chunked) {
        conn_chunk(c, data, len);
        conn_down_write(c, c->out.data, c->out.len);
    } else {
        conn_down_write(c, data, len);
    }
    pause_upstream_if_full(c);
    return HTTP1_CB_OK;
}

static int resp_on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    conn_t *c = ctx;
    if (c->resp_chunked && !c->resp_interim) {
        c->out.len = 0;
        if (http1_write_last_chunk(&c->out, t, n) < 0)
            return HTTP1_CB_ABORT;
        conn_down_write(c, c->out.data, c->out.len);
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
    if (c->tunnel || (c->upgrade && c->status == 101))
        return HTTP1_CB_OK;
    if (c->resp_chunked && !c->resp_trailers_sent) {
        c->out.len = 0;
        http1_write_last_chunk(&c->out, NULL, 0);
        conn_down_write(c, c->out.data, c->out.len);
    }
    c->resp_done = true;
    uv_timer_stop(&c->route_timer);
    return HTTP1_CB_OK;
}

const http1_callbacks_t conn_resp_cb = {resp_on_head, resp_on_body, resp_on_trailers, resp_on_complete};
