/*
 * conn: one downstream HTTP/1 connection; see conn.h and conn_int.h.
 */
#include "conn_int.h"
#include "jwt.h"

static void buffers_free(conn_t *c);
static void handle_closed(conn_t *c);
static void on_closed(uv_handle_t *h);
static void on_transport_closed(transport_t *t);
static bool client_may_send(conn_t *c);
static void on_linger_timer(uv_timer_t *t);
static void linger_arm(conn_t *c);
static void linger_alloc(void *ctx, size_t suggested, uv_buf_t *b);
static void linger_read(void *ctx, char *data, size_t n);
static void linger_closed(void *ctx, int status);
static void conn_finish(conn_t *c);
static void down_drained(void *ctx);
static void on_timer(uv_timer_t *t);
static void arm_wait_timer(conn_t *c);
static bool try_end_exchange(conn_t *c);
static void consume(conn_t *c, size_t n);
static void on_alloc(void *ctx, size_t suggested, uv_buf_t *b);
static void on_down_close(void *ctx, int status);
static void on_read(void *ctx, char *data, size_t n);
static void env_link(conn_env_t *env, conn_t *c);
static void on_down_open(void *ctx, int status);
static void start_down_tls(conn_t *c, const void *initial, size_t len);

/* ---- closing ---- */

/* The conn's buffers (again: a lingering conn frees them early). */
static void buffers_free(conn_t *c)
{
    buf_dispose(&c->in);
    buf_dispose(&c->out);
    buf_dispose(&c->pend);
    buf_dispose(&c->xff);
    buf_dispose(&c->authz_target);
    jwt_destroy(c->jwt);
    buf_dispose(&c->up_head);
    buf_dispose(&c->peer_raw);
    c->peer_raw_valid = false;
    buf_dispose(&c->up_target);
    free(c->up_fields);
    c->up_fields = NULL;
    c->up_fields_cap = 0;
    buf_dispose(&c->body);
    free(c->hdrs);
    c->hdrs = NULL;
    c->hdrs_cap = 0;
}

static void handle_closed(conn_t *c)
{
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
    buffers_free(c);
    free(c);
    if (env->draining && env->n_conns == 0 && env->on_empty != NULL)
        env->on_empty(env->owner);
}

static void on_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_transport_closed(transport_t *t)
{
    handle_closed((conn_t *)((char *)t - offsetof(conn_t, tr)));
}

void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    if (c->in_exchange && !c->recorded) {
        if (!c->resp_done && !c->tunnel)
            c->flags |= RF_DC;
        conn_record(c);
    }
    if (c->tunnel)
        conn_record_tunnel(c, false);
    c->closing = true;
    conn_exchange_dispose(c);
    transport_close(&c->tr, on_transport_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->route_timer, on_closed);
    uv_close((uv_handle_t *)&c->try_timer, on_closed);
}

/* ---- lingering ---- */

/* Whether the client may still be sending: the request is unfinished, or input is waiting unread. */
static bool client_may_send(conn_t *c)
{
    if (c->peer_eof)
        return false;
    if (c->req_failed || c->in.len > 0 || http1_parser_in_message(c->req) || transport_read_buffered(&c->tr) > 0)
        return true;
    uv_os_fd_t fd;
    int unread = 0;
    return uv_fileno((const uv_handle_t *)&c->tr.tcp, &fd) == 0 && ioctl(fd, FIONREAD, &unread) == 0 && unread > 0;
}

static void on_linger_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (!c->closing)
        conn_close(c);
}

/* (Re)start the timer: the next read must come within timeout_ms, and all of them before linger_end. */
static void linger_arm(conn_t *c)
{
    uint64_t now = uv_now(c->env->w->loop);
    if (now >= c->linger_end) {
        conn_close(c);
        return;
    }
    uint64_t ms = c->linger_end - now;
    if (ms > c->env->w->linger.timeout_ms)
        ms = c->env->w->linger.timeout_ms;
    uv_timer_start(&c->timer, on_linger_timer, ms ? ms : 1, 0);
}

static void linger_alloc(void *ctx, size_t suggested, uv_buf_t *b)
{
    /* one loop per thread, and each read reaches linger_read before the next alloc: one buffer serves all */
    static _Thread_local char drop[LINGER_CHUNK];
    (void)ctx;
    (void)suggested;
    *b = uv_buf_init(drop, sizeof drop);
}

static void linger_read(void *ctx, char *data, size_t n)
{
    (void)data;
    conn_t *c = ctx;
    if (c->closing)
        return;
    buffers_free(c);
    if ((uint64_t)n >= c->linger_left) {
        conn_close(c); /* the byte bound is reached */
        return;
    }
    c->linger_left -= (uint64_t)n;
    linger_arm(c);
}

/* The client closed or failed (also what a failed shutdown shows up as). */
static void linger_closed(void *ctx, int status)
{
    (void)status;
    conn_t *c = ctx;
    if (!c->closing)
        conn_close(c);
}

static const transport_handler_t linger_handler = {NULL, linger_alloc, linger_read, linger_closed, NULL};

/*
 * The connection is done (its last answer, if any, is written): close it,
 * lingering first when the client may still be sending.
 */
static void conn_finish(conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    const conn_linger_t *lg = &c->env->w->linger;
    if (lg->time_ms == 0 || !client_may_send(c)) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    uv_timer_stop(&c->timer);
    c->reading = false;
    c->linger_left = lg->bytes;
    c->linger_end = uv_now(c->env->w->loop) + lg->time_ms;
    transport_set_handler(&c->tr, &linger_handler, c);
    if (transport_shutdown(&c->tr) < 0) {
        conn_close(c);
        return;
    }
    transport_read_start(&c->tr);
    linger_arm(c);
}

/* ---- writing to the client ---- */

/* The transport's queue to the client fell below DOWN_WRITE_LOW, or emptied (transport_drain_when_empty). */
static void down_drained(void *ctx)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    if (c->up_read_paused && c->up != NULL && down_queued(c) < DOWN_WRITE_LOW) {
        c->up_read_paused = false;
        upstream_read_start(c->up);
    }
    if (c->close_after && !c->in_exchange && down_queued(c) == 0)
        conn_finish(c);
}

/*
 * Bytes for the client are gathered in `pend` while one event is handled
 * (a response head and its body usually arrive in one read) and written
 * by conn_down_flush in one go; the transport sends them straight from the
 * buffer when nothing is in flight and copies only what the socket did
 * not take.
 */
void conn_down_write(conn_t *c, const void *data, size_t len)
{
    if (c->closing || c->lingering || len == 0)
        return;
    buf_append(&c->pend, data, len);
}

void conn_down_flush(conn_t *c)
{
    if (c->closing || c->lingering || c->pend.len == 0)
        return;
    int rc = transport_write(&c->tr, c->pend.data, c->pend.len);
    c->pend.len = 0;
    if (rc < 0) {
        conn_close(c);
        return;
    }
    if (down_queued(c) > 0)
        return;
    if (c->close_after && !c->in_exchange)
        conn_finish(c);
}

/* A complete response made here (errors, 404, 503, redirects); ends the response side of the exchange. */
void conn_local_reply_h(conn_t *c, int status, const char *text, bool close, const http1_header_t *extra,
                        uint32_t n_extra)
{
    if (c->closing)
        return;
    if (c->resp_head_sent) {
        conn_close(c);
        return;
    }
    uv_timer_stop(&c->route_timer);
    uv_timer_stop(&c->try_timer);
    conn_release_upstream(c, false);
    if (close || c->env->draining || !c->req_keep_alive || !c->in_exchange || c->upgrade)
        c->close_after = true;
    c->out.len = 0;
    size_t n = strlen(text);
    if (http1_write_simple_response(&c->out, status, NULL, extra, n_extra, "text/plain", text, n, c->close_after) < 0) {
        conn_close(c);
        return;
    }
    c->status = status;
    c->resp_head_sent = true;
    c->resp_done = true;
    c->resp_body_bytes += n;
    conn_down_write(c, c->out.data, c->out.len);
    conn_down_flush(c);
}

void conn_local_reply(conn_t *c, int status, const char *text, bool close)
{
    conn_local_reply_h(c, status, text, close, NULL, 0);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || c->in_exchange)
        return;
    if (c->handshaking) {
        transport_handshake_timeout(&c->tr);
        tls_stats_count(c->env->w->tls_stats, TLS_STATS_INBOUND, &c->tr, UV_ETIMEDOUT);
        log_warn("inbound: TLS handshake from %s failed: %s", c->peer, TRANSPORT_R_HANDSHAKE_TIMEOUT);
        conn_close(c);
        return;
    }
    if (c->bytes_seen > 0 || http1_parser_in_message(c->req))
        conn_local_reply(c, 408, "request header read timeout\n", true);
    else
        conn_close(c);
}

static void arm_wait_timer(conn_t *c)
{
    uint64_t ms = c->bytes_seen > 0 ? c->env->w->header_timeout_ms : c->env->w->idle_timeout_ms;
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

static const http1_callbacks_t req_cb = {conn_req_on_head, conn_req_on_body, conn_req_on_trailers,
                                         conn_req_on_complete};

/* ---- the request side ---- */

/* When the current exchange is over: end it. Returns true when the connection goes on with the next request. */
static bool try_end_exchange(conn_t *c)
{
    if (!c->in_exchange || c->tunnel || !c->resp_done || !(c->req_done || c->close_after))
        return false;
    conn_record(c);
    c->in_exchange = false;
    conn_exchange_dispose(c);
    if (c->close_after || c->env->draining) {
        c->close_after = true;
        if (down_queued(c) == 0)
            conn_finish(c);
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

void conn_process(conn_t *c)
{
    if (c->in_parse)
        return; /* called back from inside http1_parse: the loop below goes on when it returns */
    for (;;) {
        if (c->closing || c->lingering)
            return;
        if (c->tunnel) {
            if (c->in.len > 0 && c->up != NULL) {
                c->tunnel_up += c->in.len;
                upstream_write(c->up, c->in.data, c->in.len);
            }
            c->in.len = 0;
            break;
        }
        if (c->paused || (c->in_exchange && c->resp_done && c->close_after)) {
            if (!try_end_exchange(c))
                break;
            continue;
        }
        if (c->in.len == 0)
            break;
        size_t used = 0;
        c->in_parse = true;
        int rc = http1_parse(c->req, c->in.data, c->in.len, &used);
        c->in_parse = false;
        consume(c, used);
        if (c->closing || c->lingering)
            return;
        if (rc == HTTP1_ERROR) {
            c->req_failed = true;
            c->req_keep_alive = false;
            c->in_exchange = false;
            conn_local_reply(c, http1_parser_error_status(c->req), http1_parser_error_reason(c->req), true);
            return;
        }
        if (rc == HTTP1_UPGRADED) {
            /* the bytes after the head wait in `in` for the tunnel; a refused upgrade closes */
            c->req_done = true;
            c->paused = true;
            break;
        }
        if (rc == HTTP1_PAUSED) {
            c->paused = true;
            continue;
        }
        break;
    }
    conn_update_reading(c);
}

static void on_alloc(void *ctx, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn_t *c = ctx;
    buf_reserve(&c->in, READ_CHUNK);
    b->base = c->in.data + c->in.len;
    b->len = READ_CHUNK;
}

static void on_down_close(void *ctx, int status)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    if (!c->tunnel && c->in_exchange && c->req_done && status == UV_EOF) {
        /* the client half-closed after its request: answer, then close */
        c->close_after = true;
        c->peer_eof = true;
        transport_read_stop(&c->tr);
        c->reading = false;
        return;
    }
    conn_close(c);
}

static void on_read(void *ctx, char *data, size_t n)
{
    (void)data;
    conn_t *c = ctx;
    if (c->closing)
        return;
    c->in.len += n;
    if (c->sniffing) {
        enum transport_sniff k = transport_sniff(c->in.data, c->in.len);
        if (k == TRANSPORT_SNIFF_NEED_MORE)
            return;
        c->sniffing = false;
        if (k == TRANSPORT_SNIFF_TLS) {
            size_t len = c->in.len;
            c->in.len = 0;
            start_down_tls(c, c->in.data, len); /* the transport copies the ClientHello's first bytes */
            return;
        }
        if (c->env->w->tls_stats != NULL)
            atomic_fetch_add_explicit(&c->env->w->tls_stats->plaintext_permissive, 1, memory_order_relaxed);
        if (c->has_orig && conn_start_tcp_inbound(c)) { /* plain text to a TCP port of the app */
            if (!c->closing)
                conn_process(c); /* the bytes read so far go to the app */
            return;
        }
    }
    if (!c->in_exchange && c->bytes_seen == 0) {
        c->bytes_seen += (size_t)n;
        arm_wait_timer(c); /* from the idle timeout to the header timeout */
    }
    conn_process(c);
}

void conn_update_reading(conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    bool want;
    if (c->tunnel)
        want = c->up != NULL && upstream_write_queued(c->up) < UPSTREAM_WRITE_HIGH;
    else
        want = (!c->paused || c->in.len < PIPELINE_BUFFER_MAX) &&
               !(c->close_after && !c->in_exchange && c->resp_done) &&
               (c->up == NULL || upstream_write_queued(c->up) < UPSTREAM_WRITE_HIGH) &&
               (c->up != NULL || c->body_over || c->body.len < c->env->w->retry_buffer_bytes || !c->in_exchange);
    if (want && !c->reading) {
        transport_read_start(&c->tr);
        c->reading = true;
    } else if (!want && c->reading) {
        transport_read_stop(&c->tr);
        c->reading = false;
    }
}

/* ---- public ---- */

static void env_link(conn_env_t *env, conn_t *c)
{
    c->prev = NULL;
    c->next = env->conns;
    if (env->conns != NULL)
        env->conns->prev = c;
    env->conns = c;
    env->n_conns++;
}

static const transport_handler_t down_handler = {on_down_open, on_alloc, on_read, on_down_close, down_drained};

/* Inbound mutual TLS: the handshake ended. */
static void on_down_open(void *ctx, int status)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    c->handshaking = false;
    tls_stats_count(c->env->w->tls_stats, TLS_STATS_INBOUND, &c->tr, status);
    if (status != 0) {
        const char *why = transport_error_reason(&c->tr);
        log_warn("inbound: TLS handshake from %s failed: %s (%s)", c->peer, why != NULL ? why : "?",
                 transport_error_detail(&c->tr));
        conn_close(c);
        return;
    }
    c->down_mtls = true;
    c->down_principal = transport_peer_id(&c->tr);
    if (c->has_orig && conn_start_tcp_inbound(c)) { /* mutual TLS to a TCP port of the app */
        if (!c->closing)
            conn_update_reading(c);
        return;
    }
    const char *alpn = transport_alpn(&c->tr);
    c->down_md_once = alpn != NULL && strcmp(alpn, PEER_ALPN) == 0;
    arm_wait_timer(c); /* from the handshake timeout to the idle timeout */
    conn_update_reading(c);
}

/* Begin the server side of mutual TLS with the sidecar's certificate: only a client of the mesh's trust domain (or an
 * alias). */
static void start_down_tls(conn_t *c, const void *initial, size_t len)
{
    const proxy_identity_t *id = &c->env->w->view->rt->cfg->proxy.identity;
    transport_tls_opts_t o = {.role = TRANSPORT_SERVER,
                              .expected_ids = id->peer_ids,
                              .n_expected_ids = id->n_peer_ids,
                              .initial = initial,
                              .initial_len = len};
    c->handshaking = true;
    if (transport_start_tls(&c->tr, c->env->w->mesh_tls, &o, &down_handler, c) != 0) {
        log_warn("inbound: cannot start TLS for %s", c->peer);
        conn_close(c);
        return;
    }
    uint64_t ms = c->env->w->view->rt->cfg->proxy.tls_handshake_timeout_ms;
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

int conn_accept(conn_env_t *env, uv_stream_t *server)
{
    conn_t *c = xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->env = env;
    if (transport_init(env->w->loop, &c->tr) < 0) {
        free(c);
        return -1;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tr.tcp) < 0) {
        /* nothing was accepted: close the fresh handle, then free */
        c->open_handles = 1;
        c->closing = true;
        env_link(env, c);
        transport_close(&c->tr, on_transport_closed);
        return -1;
    }
    /* inbound with an identity: mutual TLS as PeerAuthentication says (STRICT, PERMISSIVE sniffs, DISABLE) */
    enum proxy_mtls_mode mtls =
        env->mode == CONN_INBOUND && env->w->mesh_tls != NULL ? env->w->view->rt->cfg->mtls.mode : PROXY_MTLS_DISABLE;
    if (mtls != PROXY_MTLS_STRICT)
        transport_start(&c->tr, &down_handler, c);
    c->sniffing = mtls == PROXY_MTLS_PERMISSIVE;
    transport_drain_when_empty(&c->tr, true);
    uv_timer_init(env->w->loop, &c->timer);
    uv_timer_init(env->w->loop, &c->route_timer);
    uv_timer_init(env->w->loop, &c->try_timer);
    c->timer.data = c->route_timer.data = c->try_timer.data = c;
    c->open_handles = 4;
    env_link(env, c);
    c->req = http1_parser_create(HTTP1_REQUEST, &env->w->limits, &req_cb, c);
    c->resp = http1_parser_create(HTTP1_RESPONSE, NULL, &conn_resp_cb, c);
    uv_tcp_nodelay(&c->tr.tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    strcpy(c->peer, "unknown");
    memset(&c->peer_addr, 0, sizeof c->peer_addr);
    if (uv_tcp_getpeername(&c->tr.tcp, (struct sockaddr *)&ss, &len) == 0) {
        c->peer_addr = ss;
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    }
    c->req_keep_alive = true;
    if (env->w->view->rt->cfg->proxy.interception_redirect) {
        int r = transport_original_dst(&c->tr, &c->orig_dst);
        c->has_orig = r == 1;
        if (r < 0)
            log_debug("%s: cannot read the original destination of %s",
                      env->mode == CONN_INBOUND ? "inbound" : "outbound", c->peer);
    }
    c->ep = -1;
    if (c->has_orig &&
        (env->mode == CONN_OUTBOUND ? conn_start_tcp(c) : mtls == PROXY_MTLS_DISABLE && conn_start_tcp_inbound(c))) {
        if (!c->closing)
            conn_update_reading(c);
        return 0;
    }
    if (mtls == PROXY_MTLS_STRICT) {
        start_down_tls(c, NULL, 0);
        if (c->closing)
            return 0;
    } else {
        arm_wait_timer(c);
    }
    conn_update_reading(c);
    return 0;
}

void conn_env_drain(conn_env_t *env)
{
    env->draining = true;
    conn_t *next;
    for (conn_t *c = env->conns; c != NULL; c = next) {
        next = c->next;
        if (c->closing || c->lingering)
            continue; /* a lingering conn closes within its own bounds */
        c->close_after = true;
        if (!c->in_exchange && c->in.len == 0 && !http1_parser_in_message(c->req)) {
            c->resp_done = true; /* nothing more to read: close once the last response is written */
            if (down_queued(c) == 0)
                conn_finish(c);
            else
                conn_update_reading(c);
        } else if (c->tunnel) {
            conn_close(c);
        } else {
            conn_update_reading(c);
        }
    }
    if (env->n_conns == 0 && env->on_empty != NULL)
        env->on_empty(env->owner);
}

size_t conn_env_trim(conn_env_t *env)
{
    size_t n = 0;
    for (conn_t *c = env->conns; c != NULL; c = c->next)
        if (!c->closing)
            n += transport_trim(&c->tr);
    return n;
}

void conn_env_close_all(conn_env_t *env)
{
    conn_t *next;
    for (conn_t *c = env->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
}
