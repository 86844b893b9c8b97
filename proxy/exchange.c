/*
 * exchange: routing, filters, attempts, retries, timeouts and telemetry of
 * one request; see conn_int.h.
 */
#include "conn_int.h"

#include <stdarg.h>

#include "jwt.h"
#include "jwks_fetch.h"
#include "telemetry_otlp.h" /* TELE_STR_MAX */

static uint64_t now_unix_ns(void);
static str_t s_of(const char *s);
static void destination_service(const conn_t *c, str_t *svc, str_t *name, str_t *ns);
static void hop_security(const conn_t *c, bool *mtls, str_t *peer, str_t *self);
static void lb_done(conn_t *c);
static void on_connection_free(cluster_waiter_t *w);
static void unwait(conn_t *c);
static bool retriable_failure(const proxy_retries_t *r, enum fail_kind k);
static bool retry_budget(conn_t *c);
static void on_backoff(uv_timer_t *t);
static void on_try_timeout(uv_timer_t *t);
static void on_route_timeout(uv_timer_t *t);
static uint32_t request_headers(conn_t *c, const http1_head_t *h, char *tscratch, uint32_t *n_foreign);
static uint32_t jwt_fields(conn_t *c, http1_header_t *tmp, uint32_t n, uint32_t max);
static const http1_header_t *find_header(const http1_head_t *h, const char *name);
static void begin_exchange(conn_t *c, const http1_head_t *h);
static void run_filters(conn_t *c);
static conn_t *fx_conn(filter_exchange_t *x);
static bool fx_over(filter_exchange_t *x);
static void fx_reply(filter_exchange_t *x, const filter_reply_t *r);
static void fx_resume(filter_exchange_t *x);
static void start_attempt(conn_t *c);
static bool held(const conn_t *c);
static void body_out(conn_t *c, const char *data, size_t len);
static str_t header_value(const conn_t *c, const char *name);
static const char *endpoint_label(const conn_t *c, const char *key);
static str_t span_name(char *buf, str_t svc, uint32_t port);

static const proxy_retries_t no_retries = {0, 0, PROXY_UNSET, 0, {0}, 0};

/* The filters (filter.h), in the order they run between routing and the first attempt. */
enum step { STEP_RL_LOCAL, STEP_RL_GLOBAL, STEP_FAULT, STEP_MIRROR, STEP_DONE };

static uint64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* True with probability percent/100 (0..100), from the worker's generator. */
/* snprintf into buf, as a str_t (cut at the buffer's size) */
static str_t str_fmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static str_t str_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return (str_t){buf, n < 0 ? 0 : (uint32_t)((size_t)n < size ? (size_t)n : size - 1)};
}

/* "NAMESPACE/NAME" into buf (cut at its size): every allowed request's record has one, so no printf */
static str_t ns_name(char *buf, size_t size, const proxy_meta_t *m)
{
    size_t a = strlen(m->namespace), b = strlen(m->name);
    if (a + 1 + b >= size)
        return str_fmt(buf, size, "%s/%s", m->namespace, m->name);
    memcpy(buf, m->namespace, a);
    buf[a] = '/';
    memcpy(buf + a + 1, m->name, b);
    return (str_t){buf, (uint32_t)(a + 1 + b)};
}

static str_t s_of(const char *s)
{
    return (str_t){s, s != NULL ? strlen(s) : 0};
}

/*
 * The destination_service, _name and _namespace labels of the exchange, as
 * Istio sets them. Outbound: the cluster's host, or the request's
 * authority when no cluster was chosen; "reviews.default.svc.cluster.local"
 * gives its first two labels; any other host ("reviews", "api.example.com")
 * is the name itself, in its ServiceEntry's namespace (Istio 1.23 and later). Inbound: this workload's own service. The
 * slices point into the view's configuration (the authority: into the
 * request head). Needs c->view.
 */
static void destination_service(const conn_t *c, str_t *svc, str_t *name, str_t *ns)
{
    const runtime_t *rt = c->view->rt;
    if (c->env->mode != CONN_OUTBOUND) {
        *svc = s_of(rt->self_fqdn);
        *name = s_of(rt->self.canonical_service);
        *ns = s_of(rt->self.namespace);
        return;
    }
    const char *host = c->cl != NULL ? c->cl->host : NULL;
    *svc = host != NULL ? s_of(host) : c->rreq.authority;
    static const char k8s[] = ".svc.cluster.local";
    const size_t kl = sizeof k8s - 1;
    const char *dot = memchr(svc->ptr, '.', svc->len);
    if (dot != NULL && svc->len > kl && http1_span_ieq(svc->ptr + svc->len - kl, kl, k8s)) {
        /* NAME.NAMESPACE.svc.cluster.local: its first two labels */
        *name = (str_t){svc->ptr, (size_t)(dot - svc->ptr)};
        const char *p = dot + 1;
        size_t rest = svc->len - (size_t)(p - svc->ptr);
        const char *dot2 = memchr(p, '.', rest);
        *ns = (str_t){p, dot2 ? (size_t)(dot2 - p) : rest};
    } else {
        /* any other host (a short name, api.example.com): the whole host, in its ServiceEntry's namespace */
        *name = *svc;
        *ns = s_of(c->cl != NULL && c->cl->service != NULL ? c->cl->service->meta.namespace : rt->self.namespace);
    }
}

/* Whether this hop between sidecars was mutual TLS, and the two identities it proved (telemetry). */
static void hop_security(const conn_t *c, bool *mtls, str_t *peer, str_t *self)
{
    bool out = c->env->mode == CONN_OUTBOUND;
    *mtls = out ? c->up_mtls : c->down_mtls;
    *peer = *mtls ? s_of(out ? c->up_principal : c->down_principal) : STR_NULL;
    *self = *mtls ? s_of(c->view->rt->cfg->proxy.identity.spiffe_id) : STR_NULL;
}

/* istio_tcp_* for a tunnel: opened, or closed with its byte counts. */
void conn_record_tunnel(conn_t *c, bool opened)
{
    if (c->env->w->tele == NULL)
        return;
    tele_tcp_t t;
    memset(&t, 0, sizeof t);
    t.reporter = c->env->mode == CONN_OUTBOUND ? TELE_SOURCE : TELE_DESTINATION;
    t.peer = c->have_peer ? &c->peer_info : NULL;
    if (c->view != NULL)
        hop_security(c, &t.mtls, &t.peer_principal, &t.self_principal);
    t.policy = c->view != NULL ? c->view->rt->tele_policy : NULL;
    t.destination_port = c->cl != NULL ? c->cl->port : 0;
    /* a tunnel has its upstream, so its cluster: the labels come from the configuration, not the request head */
    if (c->view != NULL)
        destination_service(c, &t.destination_service, &t.destination_service_name, &t.destination_service_namespace);
    if (c->view != NULL && c->env->mode == CONN_OUTBOUND) {
        t.destination_version = s_of(endpoint_label(c, "version"));
        t.destination_app = s_of(endpoint_label(c, "app"));
    }
    t.opened = opened;
    t.closed = !opened;
    if (!opened) {
        t.sent_bytes = c->tunnel_down;
        t.received_bytes = c->tunnel_up;
    }
    tele_record_tcp(c->env->w->tele, &t);
}

static void lb_done(conn_t *c)
{
    if (c->lb_active) {
        router_lb_end(&c->view->lbs[c->cl->index], c->ep);
        c->lb_active = false;
    }
}

/* A connection of the cluster was given back or closed: this request, first in line, may go. */
static void on_connection_free(cluster_waiter_t *w)
{
    start_attempt((conn_t *)((char *)w - offsetof(conn_t, waiter)));
}

static void unwait(conn_t *c)
{
    if (c->waiter.queued)
        cluster_unwait(&c->view->cs[c->cl->index], &c->waiter);
}

void conn_release_upstream(conn_t *c, bool reusable)
{
    if (c->up != NULL) {
        upstream_release(c->up, reusable);
        c->up = NULL;
    }
    lb_done(c);
    if (c->leased_counted) {
        c->leased_counted = false;
        cluster_released(&c->view->cs[c->cl->index]); /* wakes the first request waiting for a connection */
    }
}

/* The exchange's resources: timers, upstream, the view. */
void conn_exchange_dispose(conn_t *c)
{
    jwt_destroy(c->jwt);
    c->jwt = NULL;
    if (c->filter_wait) { /* a filter holds the request: it lets go (the fault filter gives back its timer) */
        filter_fault_cancel(&c->fault);
        filter_rl_global_cancel(&c->rl_global);
        c->filter_wait = false;
    }
    uv_timer_stop(&c->route_timer);
    uv_timer_stop(&c->try_timer);
    filter_mirror_cancel(&c->mirrors);
    unwait(c);
    conn_release_upstream(c, false);
    if (c->retry_counted) {
        c->retry_counted = false;
        cluster_retry_give(&c->view->cs[c->cl->index]);
    }
    if (c->view != NULL) {
        runtime_view_drop(c->view);
        c->view = NULL;
    }
}

/* ---- attempts ---- */

bool conn_retriable_status(const proxy_retries_t *r, int status)
{
    if ((r->retry_on & PROXY_RETRY_5XX) && status >= 500 && status <= 599)
        return true;
    if ((r->retry_on & PROXY_RETRY_GATEWAY_ERROR) && (status == 502 || status == 503 || status == 504))
        return true;
    if ((r->retry_on & PROXY_RETRY_RETRIABLE_4XX) && status == 409)
        return true;
    if (r->retry_on & PROXY_RETRY_RETRIABLE_STATUS_CODES)
        for (size_t i = 0; i < r->n_codes; i++)
            if (r->codes[i] == status)
                return true;
    return false;
}

static bool retriable_failure(const proxy_retries_t *r, enum fail_kind k)
{
    switch (k) {
    case FAIL_CONNECT: return (r->retry_on & (PROXY_RETRY_CONNECT_FAILURE | PROXY_RETRY_5XX)) != 0;
    case FAIL_RESET: return (r->retry_on & (PROXY_RETRY_RESET | PROXY_RETRY_5XX)) != 0;
    case FAIL_TRY_TIMEOUT:
        return (r->retry_on & (PROXY_RETRY_5XX | PROXY_RETRY_GATEWAY_ERROR | PROXY_RETRY_RESET)) != 0;
    case FAIL_STATUS: return true;
    }
    return false;
}

/* DestinationRule http.maxRetries: retries in flight in the cluster (this worker); takes one when allowed. */
static bool retry_budget(conn_t *c)
{
    if (!c->retry_counted)
        c->retry_counted = cluster_retry_take(&c->view->cs[c->cl->index], c->cl);
    return c->retry_counted;
}

/* Every retry the policy allows was started: one more would exceed the limit (Envoy's retry_limit_exceeded). */
bool conn_retries_used_up(const conn_t *c)
{
    return c->retry->attempts > 0 && c->attempts > c->retry->attempts;
}

static void on_backoff(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || !c->in_exchange || c->resp_done)
        return;
    start_attempt(c);
}

/*
 * The current attempt failed before any response byte reached the client:
 * retry it when the policy allows, else answer with the failure.
 */
void conn_attempt_failed(conn_t *c, enum fail_kind kind)
{
    if (c->closing || c->resp_done)
        return;
    bool stale = kind == FAIL_RESET && c->up != NULL && upstream_reused(c->up);
    uv_timer_stop(&c->try_timer);
    if (!stale)
        conn_outlier_result(c, kind == FAIL_STATUS ? c->fail_status : kind == FAIL_TRY_TIMEOUT ? 504 : 0);
    if (c->ep >= 0 && c->cl->n_endpoints > 1)
        c->excluded[c->ep / 64] |= 1ull << (c->ep % 64);
    conn_release_upstream(c, false);
    if (stale && !c->stale_retry_used && !c->body_over) {
        /* a pooled connection the upstream had closed: once more on a fresh one, not counted */
        c->stale_retry_used = true;
        c->attempts--;
        start_attempt(c);
        return;
    }
    if (c->retries_left > 0 && !c->body_over && retriable_failure(c->retry, kind) && retry_budget(c)) {
        c->retries_left--;
        int n = c->attempts; /* retries so far + 1 */
        uint64_t cap = (uint64_t)BACKOFF_BASE_MS << (n < 4 ? n : 4);
        if (cap > BACKOFF_MAX_MS)
            cap = BACKOFF_MAX_MS;
        uint64_t ms = tracectx_rand(&c->env->w->rng) % (cap + 1);
        c->retry_due = true;
        uv_timer_start(&c->try_timer, on_backoff, ms ? ms : 1, 0);
        return;
    }
    if (conn_retries_used_up(c) && retriable_failure(c->retry, kind))
        runtime_count(c->view->rt, c->cl, RC_RETRY_LIMIT_EXCEEDED);
    if (c->attempts > 1)
        c->flags |= RF_URX;
    switch (kind) {
    case FAIL_CONNECT:
        c->flags |= RF_UF;
        if (c->tls_failure != NULL) { /* Envoy's wording, with the transport's reason */
            char text[200];
            snprintf(text, sizeof text,
                     "upstream connect error or disconnect/reset before headers. reset reason: connection failure, "
                     "transport failure reason: TLS error: %s\n",
                     c->tls_failure);
            conn_local_reply(c, 503, text, false);
        } else {
            conn_local_reply(
                c, 503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure\n",
                false);
        }
        break;
    case FAIL_TRY_TIMEOUT:
        c->flags |= RF_UT;
        conn_local_reply(c, 504, "upstream request timeout\n", false);
        break;
    default:
        c->flags |= RF_UC;
        conn_local_reply(
            c, 503, "upstream connect error or disconnect/reset before headers. reset reason: connection termination\n",
            !c->req_done);
        break;
    }
    conn_process(c);
}

static void on_try_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || !c->in_exchange || c->resp_done)
        return;
    if (c->resp_head_sent) {
        c->flags |= RF_UT;
        conn_close(c);
        return;
    }
    conn_attempt_failed(c, FAIL_TRY_TIMEOUT);
}

static void on_route_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || !c->in_exchange || c->resp_done)
        return;
    c->flags |= RF_UT;
    if (c->resp_head_sent) {
        conn_close(c);
        return;
    }
    conn_local_reply(c, 504, "upstream request timeout\n", !c->req_done);
    conn_process(c);
}

/* ---- response parser callbacks ---- */

void conn_ensure_hdrs(conn_t *c, uint32_t need)
{
    if (c->hdrs_cap < need) {
        free(c->hdrs);
        c->hdrs_cap = need;
        c->hdrs = xmalloc(c->hdrs_cap * sizeof *c->hdrs);
    }
}

/*
 * Decode a peer metadata header into c->peer_info (zeroed when it does not
 * decode, as peer_decode leaves it); telemetry's handle for the peer is kept
 * when the metadata did not change, so a peer is interned once per connection.
 */
void conn_take_peer(conn_t *c, str_t value)
{
    if (c->env->w->tele == NULL)
        return; /* only telemetry reads it */
    /* a keep-alive peer sends the same value every time: decoded once (base64 and protobuf, ~10k instructions) */
    if (c->peer_raw_valid && value.len == c->peer_raw.len && memcmp(value.ptr, c->peer_raw.data, value.len) == 0) {
        c->have_peer = c->peer_raw_ok;
        return;
    }
    peer_info_t pi;
    int rc = peer_decode(value, &pi);
    c->peer_raw.len = 0;
    buf_append(&c->peer_raw, value.ptr, value.len);
    c->peer_raw_valid = true;
    c->peer_raw_ok = rc == 0;
    if (memcmp(&pi, &c->peer_info, sizeof pi) != 0) {
        c->peer_info = pi;
        c->tele_peer = 0;
    }
    if (rc == 0)
        c->have_peer = true;
}

/* ---- the request head ---- */

/*
 * The upstream request's fields: the request's, without the trace context,
 * peer metadata and x-forwarded-*, through the route's header operations,
 * then x-forwarded-for (the client appended), the trace context,
 * x-forwarded-proto and (outbound) this proxy's peer metadata, ordered for
 * proxy_head_t's n_once and n_foreign (*n_foreign). Values point into the
 * request head, the config, c->xff and tscratch.
 */
static uint32_t request_headers(conn_t *c, const http1_head_t *h, char *tscratch, uint32_t *n_foreign)
{
    uint32_t cap = h->header_count + MAX_EXTRA_FIELDS;
    conn_ensure_hdrs(c, cap);
    http1_header_t *tmp = c->hdrs; /* scratch; the result goes to up_fields, which lives for the exchange */
    if (c->up_fields_cap < cap) {
        free(c->up_fields);
        c->up_fields_cap = cap;
        c->up_fields = xmalloc(cap * sizeof *c->up_fields);
    }
    c->xff.len = 0;
    uint32_t n = 0;
    bool has_host = false;
    for (uint32_t i = 0; i < h->header_count; i++) {
        const http1_header_t *f = &h->headers[i];
        unsigned char c0 = f->name.len ? (unsigned char)(f->name.ptr[0] | 0x20) : 0;
        if (c0 != 'x' && c0 != 't' && c0 != 'b') {
            has_host |= c0 == 'h' && http1_name_eq(f->name, "host");
            tmp[n++] = *f; /* none of the fields taken out below starts otherwise */
            continue;
        }
        if (http1_name_eq(f->name, "x-forwarded-for")) {
            if (f->value.len > 0) {
                buf_append(&c->xff, f->value.ptr, f->value.len);
                buf_append_str(&c->xff, ", ");
            }
            continue;
        }
        if (http1_name_eq(f->name, "x-forwarded-proto") || tracectx_is_own_header(f->name) || peer_is_header(f->name))
            continue;
        tmp[n++] = *f;
    }
    if (c->jwt != NULL)
        n = jwt_fields(c, tmp, n, cap - 16 - TRACECTX_MAX_FIELDS);
    http1_header_t *out = c->up_fields;
    if (c->d.route != NULL) {
        n = router_request_headers(&c->d, tmp, n, out, cap - 8 - TRACECTX_MAX_FIELDS);
        if (n > cap - 8 - TRACECTX_MAX_FIELDS)
            n = cap - 8 - TRACECTX_MAX_FIELDS;
    } else {
        memcpy(out, tmp, n * sizeof *tmp);
    }
    if (!has_host) {
        /* HTTP/1.0 without Host (or an absolute-form target alone): HTTP/1.1 upstream needs one. The request's
         * authority, else (inbound) the app's address, else the service's host. */
        const char *fallback =
            c->env->mode == CONN_INBOUND ? c->view->rt->cfg->proxy.inbound_forward_to.text : c->cl->host;
        str_t v = c->rreq.authority.len > 0 ? c->rreq.authority : (str_t){fallback, (uint32_t)strlen(fallback)};
        out[n].name = (str_t){"host", 4};
        out[n].value = v;
        n++;
    }
    buf_append_str(&c->xff, c->peer);
    out[n].name = (str_t){"x-forwarded-for", 15};
    out[n].value = (str_t){c->xff.data, c->xff.len};
    n++;
    const char *proto = c->env->proto ? c->env->proto : "http";
    http1_header_t xfp = {{"x-forwarded-proto", 17}, {proto, (uint32_t)strlen(proto)}};
    uint32_t n_w3c, t = tracectx_inject(&c->trace, tscratch, out + n, &n_w3c);
    *n_foreign = 0;
    if (c->env->mode != CONN_OUTBOUND) {
        n += t;
        out[n++] = xfp;
        return n;
    }
    const http1_header_t *md = c->view->rt->peer_fields;
    if (n_w3c == 0) {
        n += t;
        out[n++] = xfp;
        out[n++] = md[0];
        out[n++] = md[1];
        return n;
    }
    /* [traceparent .. x-request-id] [peer metadata] [B3 forms, x-forwarded-proto]: a server that is an Outrider
     * sidecar (PEER_ALPN) reads traceparent, writes every form again for its app and sets x-forwarded-proto
     * itself, so it gets neither of the last group */
    uint32_t nb3 = t - n_w3c;
    memmove(out + n + n_w3c + 2, out + n + n_w3c, nb3 * sizeof *out);
    out[n + n_w3c] = md[0];
    out[n + n_w3c + 1] = md[1];
    n += t + 2;
    out[n++] = xfp;
    *n_foreign = nb3 + 1;
    return n;
}

static const http1_header_t *find_header(const http1_head_t *h, const char *name)
{
    return http1_header_find(h->headers, h->header_count, name);
}

static void begin_exchange(conn_t *c, const http1_head_t *h)
{
    c->in_exchange = true;
    c->req_done = false;
    c->up_mtls = false;
    c->resp_done = false;
    c->resp_head_sent = false;
    c->resp_interim = false;
    c->up_reusable = false;
    c->up_read_paused = false;
    c->req_keep_alive = h->keep_alive;
    c->req_http11 = h->version_major == 1 && h->version_minor >= 1;
    c->req_chunked = h->body == HTTP1_BODY_CHUNKED;
    c->head = h;
    c->d = (router_decision_t){ROUTER_NOT_FOUND, NULL, NULL, NULL, NULL, NULL};
    c->cl = NULL;
    c->ep = -1;
    c->lb_active = false;
    c->flags = 0;
    c->attempts = 0;
    c->retries_left = 0;
    c->retry = &no_retries;
    c->stale_retry_used = false;
    c->retry_due = false;
    c->retry_pending = false;
    c->upgrade = h->upgrade;
    c->tunnel = false;
    c->recorded = false;
    c->have_peer = false;
    c->filter_at = 0;
    c->filter_wait = false;
    memset(&c->rl_global, 0, sizeof c->rl_global);
    memset(&c->fault, 0, sizeof c->fault);
    c->mirrors.n = 0;
    c->leased_counted = false;
    c->retry_counted = false;
    c->status = 0;
    c->up_head.len = 0;
    c->body.len = 0;
    c->body_over = h->upgrade;
    c->req_body_bytes = c->resp_body_bytes = 0;
    c->tunnel_up = c->tunnel_down = 0;
    c->start_ns = uv_hrtime();
    c->start_unix_ns = now_unix_ns();
    memset(c->excluded, 0, sizeof c->excluded);
    c->view = c->env->w->view;
    runtime_view_hold(c->view);
    c->use_addr = false;
    if (c->env->draining)
        c->close_after = true;
}

/*
 * A redirected request whose Host names no known service, as Istio's
 * listeners take it: the service its original destination belongs to (a
 * ServiceEntry address, or an endpoint's), routed as if the Host named it;
 * else the PassthroughCluster to that destination (ALLOW_ANY), or 502
 * (REGISTRY_ONLY: Istio's BlackHoleCluster). True when answered.
 */
static bool route_original_dst(conn_t *c, const router_request_t *rq)
{
    const runtime_t *rt = c->view->rt;
    const char *host;
    uint32_t port;
    if (router_service_for_addr(rt->router, &c->orig_dst, &host, &port) == 0) {
        int n = snprintf(c->orig_authority, sizeof c->orig_authority, "%s:%u", host, (unsigned)port);
        router_request_t by_addr = *rq;
        by_addr.authority = (str_t){c->orig_authority, n > 0 ? (uint32_t)n : 0};
        router_route(rt->router, &by_addr, (uint32_t)tracectx_rand(&c->env->w->rng), &c->d);
        c->cl = c->d.cluster;
        return false;
    }
    if (rt->cfg->proxy.registry_only) {
        c->flags |= RF_NR;
        conn_local_reply(
            c, 502, "the original destination is no registered service (outboundTrafficPolicy REGISTRY_ONLY)\n", false);
        return true;
    }
    c->d.action = ROUTER_FORWARD;
    c->d.route = NULL;
    c->d.cluster = c->cl = router_passthrough(rt->router);
    c->use_addr = true;
    c->up_addr = c->orig_dst;
    return false;
}

/* ---- RequestAuthentication ---- */

/* The token in v after prefix (case-insensitive), trimmed; empty when v does not start with it. */
static str_t after_prefix(str_t v, const char *prefix)
{
    size_t n = strlen(prefix);
    if (v.len < n || strncasecmp(v.ptr, prefix, n) != 0)
        return STR_NULL;
    str_t t = {v.ptr + n, v.len - (uint32_t)n};
    while (t.len > 0 && (t.ptr[0] == ' ' || t.ptr[0] == '\t'))
        t.ptr++, t.len--;
    while (t.len > 0 && (t.ptr[t.len - 1] == ' ' || t.ptr[t.len - 1] == '\t'))
        t.len--;
    return t;
}

/* The value of query parameter name (not decoded: a JWT is base64url), or empty. */
static str_t query_param(str_t q, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < q.len;) {
        const char *amp = memchr(q.ptr + i, '&', q.len - i);
        uint32_t end = amp ? (uint32_t)(amp - q.ptr) : q.len;
        if (end - i > n && memcmp(q.ptr + i, name, n) == 0 && q.ptr[i + n] == '=')
            return (str_t){q.ptr + i + n + 1, end - i - (uint32_t)n - 1};
        i = end + 1;
    }
    return STR_NULL;
}

/* Where rule r looks for a token; the first found, with the field it came in (NULL: a query parameter). */
static str_t rule_token(const proxy_jwt_rule_t *r, const http1_head_t *h, str_t query, const http1_header_t **field)
{
    *field = NULL;
    if (r->n_from_headers == 0 && r->from_params.n == 0) { /* Istio's defaults */
        const http1_header_t *f = http1_header_find(h->headers, h->header_count, "authorization");
        str_t t = f != NULL ? after_prefix(f->value, "Bearer ") : STR_NULL;
        if (t.len > 0) {
            *field = f;
            return t;
        }
        return query_param(query, "access_token");
    }
    for (size_t i = 0; i < r->n_from_headers; i++) {
        const http1_header_t *f = http1_header_find(h->headers, h->header_count, r->from_headers[i].name);
        str_t t = f != NULL ? after_prefix(f->value, r->from_headers[i].prefix) : STR_NULL;
        if (t.len > 0) {
            *field = f;
            return t;
        }
    }
    for (size_t i = 0; i < r->from_params.n; i++) {
        str_t t = query_param(query, r->from_params.items[i]);
        if (t.len > 0)
            return t;
    }
    return STR_NULL;
}

/* 401 with the reason, as Envoy's jwt_authn answers (the token is never quoted). */
static void jwt_refuse(conn_t *c, const char *why)
{
    static const char challenge[] = "Bearer realm=\"outrider\", error=\"invalid_token\"";
    http1_header_t f = {{"www-authenticate", 16}, {challenge, sizeof challenge - 1}};
    conn_local_reply_h(c, 401, why, false, &f, 1);
}

/* jwt_verify_pick's choice: the rule of the token's issuer, its keys (a reference to fetched ones in held). */
typedef struct pick {
    const proxy_config_t *cfg;
    const proxy_jwt_rule_t *rule;
    jwks_t *held;
    jwt_check_t check;
} pick_t;

static jwt_status_t pick_rule(void *ctx, const char *iss, const jwks_t **keys, const jwt_check_t **check)
{
    pick_t *pk = ctx;
    const proxy_jwt_rule_t *r = NULL;
    for (size_t i = 0; i < pk->cfg->n_jwt_rules && r == NULL; i++)
        if (strcmp(pk->cfg->jwt_rules[i]->issuer, iss) == 0)
            r = pk->cfg->jwt_rules[i];
    if (r == NULL)
        return JWT_ERR_ISSUER;
    pk->held = r->jwks_source != NULL ? jwks_source_keys(r->jwks_source) : NULL;
    if (r->jwks_remote && pk->held == NULL)
        return JWT_ERR_JWKS_FETCH; /* Envoy's "Jwks remote fetch is failed": no keys yet for this issuer */
    pk->rule = r;
    pk->check = (jwt_check_t){r->issuer, r->audiences.items, r->audiences.n, (int64_t)time(NULL), 0, 0};
    *keys = pk->held != NULL ? pk->held : r->jwks;
    *check = &pk->check;
    return JWT_OK;
}

/*
 * Inbound with RequestAuthentication: find a token where some rule looks
 * for one, pick the rule of its issuer, verify. No token passes (an
 * AuthorizationPolicy may then require one, as in Istio); a token that
 * does not verify is 401. True when answered.
 */
static bool inbound_authenticate(conn_t *c, const http1_head_t *h, const router_request_t *rq)
{
    const proxy_config_t *cfg = c->view->rt->cfg;
    str_t tok = STR_NULL;
    const http1_header_t *field = NULL;
    for (size_t i = 0; i < cfg->n_jwt_rules && tok.len == 0; i++)
        tok = rule_token(cfg->jwt_rules[i], h, rq->query, &field);
    if (tok.len == 0)
        return false;
    pick_t pk = {cfg, NULL, NULL, {0}};
    jwt_status_t st = jwt_verify_pick(tok.ptr, tok.len, pick_rule, &pk, &c->jwt, NULL, 0);
    jwks_destroy(pk.held);
    if (st != JWT_OK) {
        jwt_refuse(c, jwt_status_str(st));
        return true;
    }
    const proxy_jwt_rule_t *r = pk.rule;
    c->jwt_rule = r;
    c->jwt_field = r->forward_original_token ? NULL : field;
    const char *d1 = memchr(tok.ptr, '.', tok.len), *d2 = memrchr(tok.ptr, '.', tok.len);
    c->jwt_payload = (str_t){d1 + 1, (uint32_t)(d2 - d1 - 1)}; /* verified: three parts */
    return false;
}

/* Whether field f is one rule r writes (its claim headers and payload header), which a client may not send. */
static bool jwt_output_field(const proxy_jwt_rule_t *r, str_t name)
{
    if (r->output_payload_to_header != NULL && http1_name_eq(name, r->output_payload_to_header))
        return true;
    for (size_t i = 0; i < r->n_claim_headers; i++)
        if (http1_name_eq(name, r->claim_headers[i].header))
            return true;
    return false;
}

/*
 * The request's fields (tmp, n) after a verified JWT: without the field
 * that carried the token (unless forwardOriginalToken), without
 * client-sent copies of the rule's output headers, then the claims
 * (outputClaimToHeaders; "a.b" is a nested claim) and the payload
 * (outputPayloadToHeader: the token's payload part, base64url) added, at
 * most up to max fields. Returns the new count. A claim that is no field
 * value (JSON "\r\n" decodes to CR LF: the head is written as trusted, so
 * it would end the field and start one the issuer's user chose) is left
 * out, as a missing claim is.
 */
static uint32_t jwt_fields(conn_t *c, http1_header_t *tmp, uint32_t n, uint32_t max)
{
    const proxy_jwt_rule_t *r = c->jwt_rule;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!(c->jwt_field != NULL && tmp[i].name.ptr == c->jwt_field->name.ptr) && !jwt_output_field(r, tmp[i].name))
            tmp[k++] = tmp[i];
    for (size_t i = 0; i < r->n_claim_headers && k < max; i++) {
        const char *v[1];
        if (jwt_claim(c->jwt, r->claim_headers[i].path, r->claim_headers[i].depth, v, 1) >= 1 &&
            http1_field_value_ok(s_of(v[0])))
            tmp[k++] = (http1_header_t){s_of(r->claim_headers[i].header), s_of(v[0])};
    }
    if (r->output_payload_to_header != NULL && k < max && c->jwt_payload.len > 0)
        tmp[k++] = (http1_header_t){s_of(r->output_payload_to_header), c->jwt_payload};
    return k;
}

/* authz_request_t's claim lookup over the exchange's JWT */
static uint32_t jwt_claim_values(const void *ctx, const char *const *path, uint32_t depth, str_t *out, uint32_t max)
{
    const char *v[64];
    size_t n = jwt_claim(ctx, path, depth, v, max < 64 ? max : 64);
    if (n > max)
        n = max;
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        out[i] = (str_t){v[i], (uint32_t)strlen(v[i])};
    return (uint32_t)n;
}

/*
 * Inbound with AuthorizationPolicies: the path normalized as Istio does
 * (what the policies see is what the app gets), then the decision. True
 * when answered: 400 for a path that cannot be normalized, 403 "RBAC:
 * access denied" as Envoy says it.
 */
static bool inbound_authorize(conn_t *c, const http1_head_t *h, router_request_t *rq)
{
    authz_t *az = c->view->rt->authz;
    buf_t *t = &c->authz_target;
    t->len = 0;
    if (authz_normalize_path(rq->path, t) < 0) {
        conn_local_reply(c, 400, "request path must start with '/'\n", true);
        return true;
    }
    uint32_t plen = (uint32_t)t->len;
    if (rq->query.len > 0) { /* kept right after the path: the access log reads them as one */
        buf_append_char(t, '?');
        buf_append(t, rq->query.ptr, rq->query.len);
        rq->query = (str_t){t->data + plen + 1, rq->query.len};
    }
    rq->path = (str_t){t->data, plen};
    bool addr = c->peer_addr.ss_family != 0 && authz_wants_addresses(az);
    struct sockaddr_storage xff;
    bool from_xff =
        addr && authz_remote_addr(h->headers, h->header_count, c->view->rt->cfg->proxy.num_trusted_proxies, &xff);
    const router_cluster_t *in = router_inbound(c->view->rt->router);
    authz_request_t r = {
        .method = rq->method,
        .path = rq->path,
        .authority = rq->authority,
        .headers = h->headers,
        .n_headers = h->header_count,
        .dest_port = c->has_orig  ? hostport_sockaddr_port(&c->orig_dst)
                     : in != NULL ? in->port
                                  : 0,
        .source = addr ? &c->peer_addr : NULL,
        .remote = from_xff ? &xff
                  : addr   ? &c->peer_addr
                           : NULL,
        .dest = c->has_orig ? &c->orig_dst : NULL,
        .principal = c->down_principal != NULL ? s_of(c->down_principal) : STR_NULL,
    };
    str_t auds[16];
    if (c->jwt != NULL) {
        size_t na;
        const char *const *a = jwt_audiences(c->jwt, &na);
        for (size_t i = 0; i < na && i < 16; i++)
            auds[i] = s_of(a[i]);
        r.request_principal = s_of(jwt_principal(c->jwt));
        r.presenter = s_of(jwt_presenter(c->jwt));
        r.audiences = auds;
        r.n_audiences = (uint32_t)(na < 16 ? na : 16);
        r.claim = jwt_claim_values;
        r.claim_ctx = c->jwt;
    }
    authz_check(az, &r, &c->authz);
    if (c->authz.allowed)
        return false;
    conn_local_reply(c, 403, "RBAC: access denied", false);
    return true;
}

int conn_req_on_head(void *ctx, const http1_head_t *h)
{
    conn_t *c = ctx;
    uv_timer_stop(&c->timer);
    begin_exchange(c, h);
    const runtime_t *rt = c->view->rt;
    const proxy_spec_t *ps = &rt->cfg->proxy;

    tracectx_extract(h->headers, h->header_count, &c->trace);
    double sampling =
        tele_policy_sampling(rt->tele_policy, c->env->mode == CONN_OUTBOUND ? 0 : 1, ps->sampling_percent);
    tracectx_begin(&c->trace, c->env->w->tele != NULL ? sampling : 0, &c->env->w->rng);
    if (c->env->mode == CONN_INBOUND) {
        const http1_header_t *pm = find_header(h, PEER_HEADER);
        if (pm != NULL)
            conn_take_peer(c, pm->value);
        else if (c->down_md_once && c->peer_raw_valid)
            c->have_peer = c->peer_raw_ok; /* sent on an earlier request of this connection */
    }

    router_request_t *rq = &c->rreq;
    memset(rq, 0, sizeof *rq);
    rq->method = h->method_name;
    rq->headers = h->headers;
    rq->header_count = h->header_count;
    rq->source_ip = c->peer;
    if (h->method == HTTP1_METHOD_CONNECT ||
        router_split_target(h->target, &rq->authority, &rq->path, &rq->query) < 0) {
        conn_local_reply(c, h->method == HTTP1_METHOD_CONNECT ? 501 : 400,
                         h->method == HTTP1_METHOD_CONNECT ? "CONNECT is not supported\n"
                                                           : "request-target form not supported\n",
                         true);
        return HTTP1_CB_OK;
    }
    if (rq->authority.len == 0) {
        const http1_header_t *host = find_header(h, "host");
        if (host != NULL)
            rq->authority = host->value;
    }

    c->authz = (authz_decision_t){.allowed = true, .rule = -1};
    jwt_destroy(c->jwt);
    c->jwt = NULL;
    c->jwt_field = NULL;
    if (c->env->mode == CONN_INBOUND && rt->cfg->n_jwt_rules > 0 && inbound_authenticate(c, h, rq))
        return HTTP1_CB_OK;
    if (c->env->mode == CONN_INBOUND && rt->authz != NULL && inbound_authorize(c, h, rq))
        return HTTP1_CB_OK;
    if (c->env->mode == CONN_INBOUND) {
        c->cl = router_inbound(rt->router);
        c->d.action = ROUTER_FORWARD;
        c->d.cluster = c->cl;
        if (c->has_orig && c->cl != NULL && c->cl->n_endpoints == 1) {
            c->use_addr = true;
            conn_app_addr(c, c->cl, &c->up_addr);
        }
    } else {
        router_route(rt->router, rq, (uint32_t)tracectx_rand(&c->env->w->rng), &c->d);
        c->cl = c->d.cluster;
        if (c->d.action == ROUTER_NOT_FOUND && c->has_orig && route_original_dst(c, rq))
            return HTTP1_CB_OK; /* answered: REGISTRY_ONLY */
    }
    switch (c->d.action) {
    case ROUTER_NOT_FOUND:
        c->flags |= RF_NR;
        conn_local_reply(c, 404, "no route for this host and path\n", false);
        return HTTP1_CB_OK;
    case ROUTER_DIRECT: {
        const char *body = c->d.route->direct_body != NULL ? c->d.route->direct_body : "";
        conn_local_reply(c, c->d.route->direct_status, body, false);
        return HTTP1_CB_OK;
    }
    case ROUTER_REDIRECT: {
        buf_t loc = BUF_INIT;
        router_redirect_location(&c->d, rq, &loc);
        http1_header_t f = {{"location", 8}, {loc.data, loc.len}};
        conn_local_reply_h(c, c->d.route->redirect_code, "", false, &f, 1);
        buf_dispose(&loc);
        return HTTP1_CB_OK;
    }
    case ROUTER_FORWARD: break;
    }
    if (c->cl == NULL || c->cl->n_endpoints == 0) {
        c->flags |= RF_UH;
        conn_local_reply(c, 503, "no healthy upstream\n", false);
        return HTTP1_CB_OK;
    }

    /* the upstream request head, structured (the HTTP/1 client writes it at the first attempt) */
    proxy_head_t *u = &c->uhead;
    memset(u, 0, sizeof *u);
    u->method = h->method_name;
    u->fields = c->up_fields; /* request_headers may grow the array: set again below */
    u->n_fields = request_headers(c, h, c->tscratch, &u->n_foreign);
    u->n_once = c->env->mode == CONN_OUTBOUND ? 2 : 0; /* request_headers put this proxy's metadata before those */
    u->fields = c->up_fields;
    u->authority = rq->authority;
    u->upgrade = h->upgrade;
    u->framing = h->body == HTTP1_BODY_LENGTH    ? HTTP1_FRAME_LENGTH
                 : h->body == HTTP1_BODY_CHUNKED ? HTTP1_FRAME_CHUNKED
                                                 : HTTP1_FRAME_NONE;
    u->content_length = h->content_length;
    /* the target in origin form, rewritten by the route if it says so */
    c->up_target.len = 0;
    router_rewrite_target(&c->d, rq, &c->up_target);
    u->target = (str_t){c->up_target.data, (uint32_t)c->up_target.len};
    if (!http1_request_target_ok(u->target)) {
        conn_local_reply(c, 400, "bad request\n", true);
        return HTTP1_CB_OK;
    }
    if (c->env->mode == CONN_OUTBOUND && c->d.route != NULL) {
        c->retry = &c->d.route->retries;
    } else if (c->env->mode == CONN_OUTBOUND) {
        /* the default route: Istio's default retry policy */
        static const proxy_retries_t defaults = {
            0, 2, PROXY_UNSET, PROXY_RETRY_CONNECT_FAILURE | PROXY_RETRY_RETRIABLE_STATUS_CODES, {503}, 1};
        c->retry = &defaults;
    }
    c->retries_left = c->retry->attempts;
    const proxy_http_route_t *route = c->d.route;
    if ((c->env->mode == CONN_INBOUND || c->view->rt->cfg->n_rate_limits == 0) &&
        (route == NULL || (!route->fault.has_delay && !route->fault.has_abort && route->n_mirrors == 0))) {
        c->filter_at = STEP_DONE; /* no filter applies: straight to the first attempt */
        run_filters(c);
        return HTTP1_CB_OK;
    }
    c->fx = (filter_exchange_t){.req = &c->rreq,
                                .d = &c->d,
                                .cl = c->cl,
                                .view = c->view,
                                .loop = c->env->w->loop,
                                .rng = &c->env->w->rng,
                                .rlg = c->env->w->rlg,
                                .peer = c->peer,
                                .scratch = &c->out,
                                .reply = fx_reply,
                                .resume = fx_resume,
                                .over = fx_over};
    run_filters(c);
    return HTTP1_CB_OK;
}

/* Run the filters from c->filter_at on; past the last, the route timeout and the first attempt. */
static void run_filters(conn_t *c)
{
    bool out = c->env->mode == CONN_OUTBOUND;
    while (c->filter_at < STEP_DONE) {
        enum filter_result r = FILTER_CONTINUE;
        switch (c->filter_at++) {
        case STEP_RL_LOCAL:
            if (out)
                r = filter_rl_local(&c->fx);
            break;
        case STEP_RL_GLOBAL:
            if (out)
                r = filter_rl_global(&c->fx, &c->rl_global);
            break;
        case STEP_FAULT: r = filter_fault(&c->fx, &c->fault, &c->try_timer, &c->flags); break;
        case STEP_MIRROR:
            if (!c->upgrade && !c->body_over)
                r = filter_mirror(&c->fx, &c->mirrors, &c->uhead, c->body.data, c->body.len, c->req_done);
            break;
        }
        if (r == FILTER_WAIT) {
            c->filter_wait = true; /* fx_resume or fx_reply comes from the loop */
            return;
        }
        if (r == FILTER_REPLIED)
            return;
    }
    if (c->d.route != NULL && c->d.route->timeout_ms > 0)
        uv_timer_start(&c->route_timer, on_route_timeout, (uint64_t)c->d.route->timeout_ms, 0);
    start_attempt(c);
}

static conn_t *fx_conn(filter_exchange_t *x)
{
    return (conn_t *)((char *)x - offsetof(conn_t, fx));
}

static bool fx_over(filter_exchange_t *x)
{
    conn_t *c = fx_conn(x);
    return c->closing || !c->in_exchange || c->resp_done;
}

static void fx_reply(filter_exchange_t *x, const filter_reply_t *r)
{
    conn_t *c = fx_conn(x);
    c->filter_wait = false;
    c->flags |= r->flags;
    conn_local_reply_h(c, r->status, r->text, !c->req_done, r->fields, (uint32_t)r->n_fields);
    conn_process(c); /* a no-op inside the parser's callback, which goes on itself */
}

static void fx_resume(filter_exchange_t *x)
{
    conn_t *c = fx_conn(x);
    c->filter_wait = false;
    run_filters(c);
    conn_update_reading(c);
}

static void start_attempt(conn_t *c)
{
    c->tls_failure = NULL;
    c->up_mtls = false; /* until this attempt's answer shows the upstream's identity */
    router_lb_t *lb = &c->view->lbs[c->cl->index];
    cluster_state_t *cs = &c->view->cs[c->cl->index];
    uint64_t buf[ROUTER_MAX_ENDPOINTS / 64];
    const uint64_t *mask = c->excluded; /* without outlier detection: just the endpoints tried */
    bool healthy = true;
    if (cs->health != NULL) {
        healthy = cluster_pick_mask(cs, c->view->rt, c->cl, uv_now(c->env->w->loop), c->excluded, buf);
        mask = buf;
    }
    c->ep = healthy ? router_lb_pick(lb, &c->rreq, tracectx_rand(&c->env->w->rng), mask) : -1;
    if (c->ep < 0) {
        c->flags |= RF_UH;
        conn_local_reply(c, 503, "no healthy upstream\n", false);
        conn_process(c);
        return;
    }
    upstream_pool_t *pool =
        c->use_addr ? runtime_view_addr_pool(c->view, c->cl, &c->up_addr) : runtime_view_pool(c->view, c->cl, c->ep);
    if (pool == NULL) {
        c->flags |= RF_UO;
        conn_local_reply(c, 503, "too many original destinations in this configuration\n", false);
        conn_process(c);
        return;
    }
    const proxy_traffic_policy_t *pol = c->cl->policy;
    enum cluster_admit admit = CLUSTER_GO;
    if (pol != NULL && pol->max_connections > 0) {
        c->waiter.wake = on_connection_free;
        admit =
            cluster_admit(cs, c->cl, runtime_view_connections(c->view, c->cl), upstream_pool_idle(pool), &c->waiter);
    }
    if (admit == CLUSTER_WAIT)
        return; /* maxConnections reached: on_connection_free tries again */
    if (admit == CLUSTER_OVERFLOW) {
        c->flags |= RF_UO;
        conn_local_reply(c, 503, "upstream connect error or disconnect/reset before headers. reset reason: overflow\n",
                         !c->req_done);
        conn_process(c);
        return;
    }
    router_lb_begin(lb, c->ep);
    c->lb_active = true;
    c->attempts++;
    if (c->retry_due) {
        c->retry_due = false;
        runtime_count(c->view->rt, c->cl, RC_RETRY);
    }
    if (conn_uclient_begin(c, pool) < 0) {
        conn_attempt_failed(c, FAIL_CONNECT);
        return;
    }
    c->leased_counted = true;
    cluster_leased(cs);
    if (c->retry->per_try_timeout_ms > 0)
        uv_timer_start(&c->try_timer, on_try_timeout, (uint64_t)c->retry->per_try_timeout_ms, 0);
}

/* ---- request body ---- */

/* Whether the request waits before its first attempt (fault delay, Redis verdict, a free connection). */
static bool held(const conn_t *c)
{
    return c->filter_wait || c->waiter.queued;
}

/* Send bytes of the framed request body upstream, and keep them for replays while they fit. */
static void body_out(conn_t *c, const char *data, size_t len)
{
    filter_mirror_body(&c->mirrors, data, len);
    if (!c->body_over) {
        if (c->body.len + len <= c->env->w->retry_buffer_bytes || held(c)) {
            /* held (no upstream yet): the bytes are kept past the limit, reading stops there, no replays later */
            if (c->body.len + len > c->env->w->retry_buffer_bytes)
                c->retries_left = 0;
            buf_append(&c->body, data, len);
        } else {
            c->body_over = true;
            buf_dispose(&c->body);
            if (c->up == NULL && !c->resp_done) {
                /* waiting to retry, and the body can no longer be replayed: give up now */
                uv_timer_stop(&c->try_timer);
                c->retries_left = 0;
                c->flags |= RF_URX;
                conn_local_reply(c, 503, "upstream request failed and the request body is too large to retry\n", true);
                return;
            }
        }
    }
    if (c->up != NULL && !c->resp_done)
        upstream_write(c->up, data, len);
}

int conn_req_on_body(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    c->req_body_bytes += len;
    if (c->resp_done || c->cl == NULL)
        return HTTP1_CB_OK;
    if (c->req_chunked) {
        conn_chunk(c, data, len);
        body_out(c, c->out.data, c->out.len);
    } else {
        body_out(c, data, len);
    }
    return HTTP1_CB_OK;
}

int conn_req_on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    conn_t *c = ctx;
    if (c->cl != NULL && c->req_chunked && !c->resp_done) {
        c->out.len = 0;
        if (http1_write_last_chunk(&c->out, t, n) == 0)
            body_out(c, c->out.data, c->out.len);
        c->req_chunked = false; /* the last chunk is out */
    }
    return HTTP1_CB_OK;
}

int conn_req_on_complete(void *ctx)
{
    conn_t *c = ctx;
    if (c->cl != NULL && c->req_chunked && !c->resp_done) {
        c->out.len = 0;
        http1_write_last_chunk(&c->out, NULL, 0);
        body_out(c, c->out.data, c->out.len);
    }
    c->req_chunked = false;
    c->req_done = true;
    filter_mirror_end(&c->mirrors);
    return HTTP1_CB_PAUSE;
}

/* ---- telemetry ---- */

static str_t header_value(const conn_t *c, const char *name)
{
    const http1_header_t *f = c->head != NULL ? find_header(c->head, name) : NULL;
    return f != NULL ? f->value : (str_t){"", 0};
}

static const char *endpoint_label(const conn_t *c, const char *key)
{
    if (c->cl == NULL || c->ep < 0 || c->cl->endpoints[c->ep].ep == NULL)
        return NULL;
    return proxy_kv_get(&c->cl->endpoints[c->ep].ep->labels, key);
}

/* Envoy's span name (the service, ":", the port, "/" and "*") into buf, cut to TELE_SPAN_NAME_MAX - 1 bytes. */
#define TELE_SPAN_NAME_MAX 300
static str_t span_name(char *buf, str_t svc, uint32_t port)
{
    char tail[16];
    char *t = tail + sizeof tail;
    *--t = '*';
    *--t = '/';
    do {
        *--t = (char)('0' + port % 10);
        port /= 10;
    } while (port != 0);
    *--t = ':';
    size_t tl = (size_t)(tail + sizeof tail - t);
    size_t n = svc.len < TELE_SPAN_NAME_MAX - 1 ? svc.len : TELE_SPAN_NAME_MAX - 1;
    if (n > 0)
        memcpy(buf, svc.ptr, n);
    size_t m = tl < TELE_SPAN_NAME_MAX - 1 - n ? tl : TELE_SPAN_NAME_MAX - 1 - n;
    memcpy(buf + n, t, m);
    return (str_t){buf, (uint32_t)(n + m)};
}

void conn_record(conn_t *c)
{
    if (c->recorded || c->view == NULL)
        return;
    c->recorded = true;
    tele_worker_t *tw = c->env->w->tele;
    if (tw == NULL)
        return;
    tele_request_t r;
    memset(&r, 0, sizeof r);
    char span_buf[TELE_SPAN_NAME_MAX];
    destination_service(c, &r.destination_service, &r.destination_service_name, &r.destination_service_namespace);
    if (c->trace.sampled == 1)
        r.span_name = span_name(span_buf, r.destination_service, c->cl != NULL ? c->cl->port : 0);
    if (c->env->mode == CONN_OUTBOUND) {
        r.reporter = TELE_SOURCE;
        r.destination_version = s_of(endpoint_label(c, "version"));
        r.destination_app = s_of(endpoint_label(c, "app"));
    } else {
        r.reporter = TELE_DESTINATION;
    }
    /* with a cluster, the destination strings above are fixed per (view, cluster, endpoint): cached there */
    r.dest_handle = c->cl != NULL ? runtime_view_tele_dest(c->view, c->cl, c->ep) : NULL;
    r.peer = c->have_peer ? &c->peer_info : NULL;
    r.peer_handle = &c->tele_peer;
    hop_security(c, &r.mtls, &r.peer_principal, &r.self_principal);
    r.response_code = c->status;
    r.response_flags = c->flags;
    r.request_bytes = c->req_body_bytes;
    r.response_bytes = c->resp_body_bytes;
    r.start_unix_ns = c->start_unix_ns;
    r.duration_ns = uv_hrtime() - c->start_ns;
    r.method = c->rreq.method;
    r.path = c->rreq.path; /* with its query, as Envoy's %REQ(:PATH)% and http.url have it */
    if (c->rreq.query.len > 0 && c->rreq.path.ptr + c->rreq.path.len + 1 == c->rreq.query.ptr)
        r.path.len += 1 + c->rreq.query.len;
    r.authority = c->rreq.authority;
    r.user_agent = header_value(c, "user-agent");
    r.protocol = c->req_http11 ? (str_t){"HTTP/1.1", 8} : (str_t){"HTTP/1.0", 8};
    if (c->cl != NULL && c->ep >= 0)
        r.upstream_host = s_of(c->cl->endpoints[c->ep].name);
    if (c->cl != NULL)
        r.upstream_cluster = s_of(c->cl->name);
    r.downstream_peer = s_of(c->peer);
    if (c->d.route != NULL && c->d.route->name != NULL)
        r.route_name = s_of(c->d.route->name);
    r.attempts = (uint32_t)c->attempts;
    r.trace = &c->trace;
    r.policy = c->view->rt->tele_policy;
    if (c->head != NULL) {
        r.headers = c->head->headers;
        r.n_headers = c->head->header_count;
    }
    r.destination_port = c->cl != NULL ? c->cl->port : 0;
    char details[TELE_STR_MAX], policy[TELE_STR_MAX], audit[TELE_STR_MAX], dry[TELE_STR_MAX];
    const proxy_authorization_policy_t *ap = c->authz.policy, *au = c->authz.audit;
    if (ap != NULL)
        r.authz_policy = ns_name(policy, sizeof policy, &ap->meta);
    if (au != NULL)
        r.authz_audit = ns_name(audit, sizeof audit, &au->meta);
    if (c->authz.dry_run) {
        r.authz_dry_run = c->authz.dry_run_allowed ? (str_t){"allowed", 7} : (str_t){"denied", 6};
        if (c->authz.dry_run_policy != NULL)
            r.authz_dry_run_policy = ns_name(dry, sizeof dry, &c->authz.dry_run_policy->meta);
    }
    if (!c->authz.allowed)
        r.response_details = ap != NULL ? str_fmt(details, sizeof details,
                                                  "rbac_access_denied_matched_policy[ns[%s]-policy[%s]-rule[%d]]",
                                                  ap->meta.namespace, ap->meta.name, c->authz.rule)
                                        : (str_t){"rbac_access_denied_matched_policy[none]", 39};
    tele_record(tw, &r);
}
