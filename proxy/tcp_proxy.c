/*
 * tcp_proxy: a redirected outbound connection whose original destination is
 * a TCP service port (router_tcp_cluster_for_addr: ServiceEntry port
 * protocol TCP, TLS, MONGO..., or a name such as "tcp-db") is proxied as
 * bytes from the start, as Envoy's tcp_proxy filter does for Istio: no HTTP
 * parsing, so server-first protocols (a database's greeting) work. The
 * connection goes to an endpoint of the service's cluster picked by its load
 * balancer; it is counted as istio_tcp_connections_opened/closed_total and
 * istio_tcp_sent/received_bytes_total, through the same tunnel record as an
 * HTTP upgrade. Either side closing closes both.
 *
 * A destination no service claims, on a port no service uses for HTTP, is
 * passed through as bytes to where the app sent it (PassthroughCluster,
 * ALLOW_ANY), or closed at once (REGISTRY_ONLY: Istio's BlackHoleCluster).
 */
#include "conn_int.h"
#include "log.h"

static void tcp_on_connect(void *ctx, int status)
{
    conn_t *c = ctx;
    if (status == 0 || c->closing)
        return;
    log_debug("tcp: connect to %s failed: %s", c->cl->endpoints[c->ep].name, uv_strerror(status));
    c->flags |= RF_UF;
    conn_close(c);
}

static void tcp_on_read(void *ctx, const char *data, size_t len)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    c->tunnel_down += len;
    conn_down_write(c, data, len);
    conn_down_flush(c);
    if (down_queued(c) >= DOWN_WRITE_HIGH && c->up != NULL && !c->up_read_paused) {
        c->up_read_paused = true; /* the client reads slower than the server writes */
        upstream_read_stop(c->up);
    }
}

static void tcp_on_close(void *ctx, int status)
{
    conn_t *c = ctx;
    log_debug("tcp: upstream closed: %s", status == UV_EOF ? "EOF" : uv_strerror(status));
    conn_down_flush(c);
    conn_close(c);
}

static void tcp_on_drain(void *ctx)
{
    conn_update_reading(ctx);
}

static const upstream_handler_t tcp_handler = {tcp_on_connect, tcp_on_read, tcp_on_close, tcp_on_drain};

/* The exchange's part of a byte tunnel to cl: the view held, no HTTP request to record, an endpoint picked. */
static void tcp_begin(conn_t *c, runtime_view_t *v, const router_cluster_t *cl)
{
    c->view = v;
    runtime_view_hold(v);
    c->in_exchange = true;
    c->recorded = true; /* no HTTP request to record: the tunnel records open and close */
    c->req_done = c->resp_done = true;
    c->cl = cl;
    c->d.action = ROUTER_FORWARD;
    c->d.cluster = cl;
    c->d.route = NULL;
    memset(&c->rreq, 0, sizeof c->rreq);
    c->rreq.source_ip = c->peer;
    c->ep =
        cl->n_endpoints > 0 ? router_lb_pick(&v->lbs[cl->index], &c->rreq, tracectx_rand(&c->env->w->rng), NULL) : -1;
    c->tunnel = true; /* from here conn_process hands client bytes to the upstream (queued until it connects) */
    conn_record_tunnel(c, true);
}

/* Lease the upstream connection from pool, or close (counted as no upstream). */
static void tcp_connect(conn_t *c, upstream_pool_t *pool)
{
    c->up = pool != NULL && c->ep >= 0 ? upstream_acquire(pool, &tcp_handler, c) : NULL;
    if (c->up == NULL) {
        log_debug("tcp: no connection to %s", c->cl->name);
        c->flags |= c->ep < 0 ? RF_UH : RF_UF;
        conn_close(c);
    }
}

/*
 * AuthorizationPolicy over an inbound TCP connection (authz.h: HTTP-only
 * fields as Istio treats them for TCP). A denied connection is closed
 * before any byte reaches the app, as Envoy's network RBAC filter does.
 */
static bool tcp_authorized(conn_t *c, authz_t *az, uint32_t port)
{
    bool addr = c->peer_addr.ss_family != 0;
    authz_request_t r = {
        .tcp = true,
        .dest_port = port,
        .source = addr ? &c->peer_addr : NULL,
        .remote = addr ? &c->peer_addr : NULL,
        .dest = &c->orig_dst,
        .principal = {c->down_principal, c->down_principal ? (uint32_t)strlen(c->down_principal) : 0},
    };
    authz_decision_t d;
    authz_check(az, &r, &d);
    if (d.allowed)
        return true;
    log_info("inbound: TCP connection from %s to port %u denied by AuthorizationPolicy %s%s%s", c->peer, port,
             d.policy ? d.policy->meta.namespace : "", d.policy ? "/" : "",
             d.policy ? d.policy->meta.name : "(none matched)");
    conn_close(c);
    return false;
}

bool conn_start_tcp_inbound(conn_t *c)
{
    runtime_view_t *v = c->env->w->view;
    const proxy_spec_t *ps = &v->rt->cfg->proxy;
    uint32_t port = hostport_sockaddr_port(&c->orig_dst);
    const router_cluster_t *cl = router_inbound(v->rt->router);
    bool tcp = false;
    for (size_t i = 0; i < ps->n_inbound_ports; i++)
        tcp |= ps->inbound_ports[i].number == port && proxy_port_is_tcp(&ps->inbound_ports[i]);
    if (!tcp || cl == NULL || cl->n_endpoints != 1)
        return false;
    if (v->rt->authz != NULL && !tcp_authorized(c, v->rt->authz, port))
        return true;
    tcp_begin(c, v, cl);
    conn_app_addr(c, cl, &c->up_addr);
    tcp_connect(c, runtime_view_addr_pool(v, cl, &c->up_addr));
    return true;
}

bool conn_start_tcp(conn_t *c)
{
    runtime_view_t *v = c->env->w->view;
    const router_t *r = v->rt->router;
    const router_cluster_t *cl = router_tcp_cluster_for_addr(r, &c->orig_dst);
    const char *host;
    uint32_t port;
    bool passthrough = false;
    if (cl == NULL) {
        if (router_service_for_addr(r, &c->orig_dst, &host, &port) == 0 ||
            router_http_port(r, hostport_sockaddr_port(&c->orig_dst)))
            return false; /* HTTP: the exchange routes it */
        if (v->rt->cfg->proxy.registry_only) {
            log_debug("tcp: %s -> an unregistered destination, refused (REGISTRY_ONLY)", c->peer);
            conn_close(c);
            return true;
        }
        cl = router_passthrough(r);
        passthrough = true;
    }
    tcp_begin(c, v, cl);
    tcp_connect(c, c->ep < 0     ? NULL
                   : passthrough ? runtime_view_addr_pool(v, cl, &c->orig_dst)
                                 : runtime_view_pool(v, cl, c->ep));
    return true;
}
