/*
 * runtime: shared configuration + router, and per-worker views; see runtime.h.
 */
#include "runtime.h"

#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "hostport.h"
#include "http_client.h" /* HTTP_CLIENT_SYSTEM_CA */
#include "log.h"
#include "mono.h"
#include "telemetry_policy.h"
#include "transport.h"
#include "xalloc.h"

static void copy_field(char *dst, const char *src)
{
    snprintf(dst, PEER_FIELD_MAX, "%s", src != NULL ? src : "");
}

runtime_t *runtime_create(proxy_config_t *cfg, char *err, size_t errlen)
{
    tele_policy_t *policy;
    if (tele_policy_create(&cfg->telemetry, &policy, err, errlen) != 0)
        return NULL;
    router_t *router = router_create(cfg, err, errlen);
    if (router == NULL) {
        tele_policy_unref(policy);
        return NULL;
    }
    runtime_t *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        log_fatal("runtime: out of memory");
    rt->cfg = cfg;
    rt->router = router;
    rt->tele_policy = policy;
    rt->authz = authz_compile(cfg);
    static atomic_ullong serials;
    rt->serial = atomic_fetch_add(&serials, 1) + 1;
    atomic_init(&rt->refs, 1);
    const proxy_meta_t *m = &cfg->proxy.meta;
    const char *app = proxy_kv_get(&m->labels, "app");
    const char *version = proxy_kv_get(&m->labels, "version");
    const char *name = m->name != NULL ? m->name : "outrider-proxy";
    peer_info_t *p = &rt->self;
    copy_field(p->name, name);
    copy_field(p->namespace, m->namespace);
    copy_field(p->workload, name);
    copy_field(p->app, app);
    copy_field(p->version, version);
    copy_field(p->canonical_service, app != NULL ? app : name);
    copy_field(p->canonical_revision, version != NULL ? version : "latest");
    copy_field(p->cluster_id, "Kubernetes");
    snprintf(rt->service_name, sizeof rt->service_name, "%s.%s", p->canonical_service, p->namespace);
    snprintf(rt->self_fqdn, sizeof rt->self_fqdn, "%s.%s.svc.cluster.local", p->canonical_service, p->namespace);
    /* the two peer metadata fields, encoded once (NUL-terminated, so never a NULL pointer) */
    buf_t b = BUF_INIT;
    peer_encode(p, &b);
    uint32_t n = (uint32_t)b.len;
    buf_append(&b, "", 1);
    rt->peer_fields[0] = (http1_header_t){{PEER_HEADER, sizeof PEER_HEADER - 1}, {b.data, n}};
    b = (buf_t)BUF_INIT;
    peer_encode_id(p, "127.0.0.1", &b);
    n = (uint32_t)b.len;
    buf_append(&b, "", 1);
    rt->peer_fields[1] = (http1_header_t){{PEER_ID_HEADER, sizeof PEER_ID_HEADER - 1}, {b.data, n}};
    rt->buckets = calloc(cfg->n_rate_limits ? cfg->n_rate_limits : 1, sizeof *rt->buckets);
    if (rt->buckets == NULL)
        log_fatal("runtime: out of memory");
    uint64_t now = mono_now_ms();
    for (size_t i = 0; i < cfg->n_rate_limits; i++) {
        atomic_init(&rt->buckets[i].tokens, (long long)cfg->rate_limits[i].local.max_tokens);
        atomic_init(&rt->buckets[i].last_fill_ms, now);
    }
    size_t nc = router_cluster_count(router);
    rt->ejected = calloc(nc ? nc : 1, sizeof *rt->ejected);
    rt->counters = calloc(nc ? nc : 1, sizeof *rt->counters);
    rt->tls = calloc(nc ? nc : 1, sizeof *rt->tls);
    if (rt->ejected == NULL || rt->counters == NULL || rt->tls == NULL)
        log_fatal("runtime: out of memory");
    /* TLS origination (DestinationRule tls SIMPLE or MUTUAL): one context per cluster, shared by the workers */
    for (size_t i = 0; i < nc; i++) {
        const router_cluster_t *cl = router_cluster(router, i);
        const proxy_traffic_policy_t *tp = cl->policy;
        if (tp == NULL || !tp->has_tls || (tp->tls_mode != PROXY_TLS_SIMPLE && tp->tls_mode != PROXY_TLS_MUTUAL))
            continue;
        tls_ctx_opts_t o = {.ca_file =
                                tp->tls_ca_certificates != NULL ? tp->tls_ca_certificates : HTTP_CLIENT_SYSTEM_CA,
                            .verify_peer = !tp->tls_insecure_skip_verify};
        if (tp->tls_mode == PROXY_TLS_MUTUAL) {
            o.cert_file = tp->tls_client_certificate;
            o.key_file = tp->tls_private_key;
        }
        char why[256];
        rt->tls[i] = tls_ctx_create(&o, why, sizeof why);
        if (rt->tls[i] == NULL) {
            snprintf(err, errlen, "cluster %s: TLS: %s", cl->name, why);
            rt->cfg = NULL; /* the caller's still */
            runtime_unref(rt);
            return NULL;
        }
    }
    return rt;
}

const char *runtime_destination_service(const runtime_t *rt, const router_cluster_t *cl)
{
    return cl->service != NULL ? cl->host : rt->self_fqdn;
}

bool runtime_bucket_take(runtime_t *rt, size_t i, uint64_t *remaining, uint64_t *reset_s)
{
    const proxy_rl_local_t *l = &rt->cfg->rate_limits[i].local;
    runtime_bucket_t *b = &rt->buckets[i];
    uint64_t now = mono_now_ms();
    unsigned long long last = atomic_load(&b->last_fill_ms);
    if (now >= last + l->fill_interval_ms) {
        uint64_t periods = (now - last) / l->fill_interval_ms;
        /* one worker wins the refill of these periods; the others see the new time */
        if (atomic_compare_exchange_strong(&b->last_fill_ms, &last, last + periods * l->fill_interval_ms)) {
            uint64_t add = periods > l->max_tokens ? l->max_tokens : periods * l->tokens_per_fill;
            long long cur = atomic_fetch_add(&b->tokens, (long long)add) + (long long)add;
            if (cur > (long long)l->max_tokens)
                atomic_fetch_sub(&b->tokens, cur - (long long)l->max_tokens);
            last += periods * l->fill_interval_ms;
        } else {
            last = atomic_load(&b->last_fill_ms);
        }
    }
    uint64_t next = last + l->fill_interval_ms;
    *reset_s = next > now ? (next - now + 999) / 1000 : 0;
    long long left = atomic_fetch_sub(&b->tokens, 1) - 1;
    if (left < 0) {
        atomic_fetch_add(&b->tokens, 1);
        *remaining = 0;
        return false;
    }
    *remaining = (uint64_t)left;
    return true;
}

void runtime_ref(runtime_t *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
}

void runtime_unref(runtime_t *rt)
{
    if (rt == NULL || atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; rt->tls != NULL && i < router_cluster_count(rt->router); i++)
        tls_ctx_unref(rt->tls[i]);
    router_destroy(rt->router);
    authz_free(rt->authz);
    tele_policy_unref(rt->tele_policy);
    proxy_config_destroy(rt->cfg);
    free((char *)rt->peer_fields[0].value.ptr);
    free((char *)rt->peer_fields[1].value.ptr);
    free(rt->buckets);
    free(rt->tls);
    free(rt->ejected);
    free(rt->counters);
    free(rt);
}

runtime_view_t *runtime_view_create(runtime_t *rt, uv_loop_t *loop)
{
    runtime_view_t *v = calloc(1, sizeof *v);
    size_t n = router_cluster_count(rt->router);
    if (v == NULL ||
        (n > 0 &&
         ((v->lbs = calloc(n, sizeof *v->lbs)) == NULL || (v->pools = calloc(n, sizeof *v->pools)) == NULL ||
          (v->cs = calloc(n, sizeof *v->cs)) == NULL || (v->tele_dest = calloc(n, sizeof *v->tele_dest)) == NULL)))
        log_fatal("runtime: out of memory");
    runtime_ref(rt);
    v->rt = rt;
    v->loop = loop;
    for (size_t i = 0; i < n; i++) {
        const router_cluster_t *cl = router_cluster(rt->router, i);
        router_lb_init(&v->lbs[i], cl);
        cluster_state_init(&v->cs[i], cl);
    }
    return v;
}

bool runtime_mesh_mtls(const runtime_t *rt, const router_cluster_t *cl, int ep)
{
    if (!rt->cfg->proxy.identity.given || cl->service == NULL)
        return false;
    const proxy_traffic_policy_t *p = cl->policy;
    if (p != NULL && p->has_tls)
        return p->tls_mode == PROXY_TLS_ISTIO_MUTUAL;
    const proxy_endpoint_t *e = ep >= 0 && (size_t)ep < cl->n_endpoints ? cl->endpoints[ep].ep : NULL;
    const char *mode = e != NULL ? proxy_kv_get(&e->labels, PROXY_TLS_MODE_LABEL) : NULL;
    return mode != NULL && strcmp(mode, "istio") == 0;
}

typedef struct addr_pool {
    struct addr_pool *next;
    uint32_t cluster;
    struct sockaddr_storage addr;
    upstream_pool_t *pool;
} addr_pool_t;

static void pool_policy(const router_cluster_t *cl, upstream_pool_opts_t *o)
{
    const proxy_traffic_policy_t *p = cl->policy;
    if (p == NULL)
        return;
    if (p->connect_timeout_ms > 0)
        o->connect_timeout_ms = (uint64_t)p->connect_timeout_ms;
    if (p->idle_timeout_ms > 0)
        o->idle_timeout_ms = (uint64_t)p->idle_timeout_ms;
    if (p->max_requests_per_connection > 0)
        o->max_requests_per_conn = (uint64_t)p->max_requests_per_connection;
}

upstream_pool_t *runtime_view_addr_pool(runtime_view_t *v, const router_cluster_t *cl,
                                        const struct sockaddr_storage *addr)
{
    for (addr_pool_t *a = v->addr_pools; a != NULL; a = a->next)
        if (a->cluster == cl->index && hostport_sockaddr_equal(&a->addr, addr))
            return a->pool;
    if (v->n_addr_pools >= RUNTIME_ADDR_POOLS)
        return NULL;
    addr_pool_t *a = xcalloc(1, sizeof *a);
    a->cluster = cl->index;
    a->addr = *addr;
    upstream_pool_opts_t o = {0};
    pool_policy(cl, &o);
    a->pool = upstream_pool_create(v->loop, (const struct sockaddr *)addr, &o);
    a->next = v->addr_pools;
    v->addr_pools = a;
    v->n_addr_pools++;
    return a->pool;
}

upstream_pool_t *runtime_view_pool(runtime_view_t *v, const router_cluster_t *cl, int ep)
{
    upstream_pool_t **row = v->pools[cl->index];
    if (row == NULL) {
        row = calloc(cl->n_endpoints ? cl->n_endpoints : 1, sizeof *row);
        if (row == NULL)
            log_fatal("runtime: out of memory");
        v->pools[cl->index] = row;
    }
    if (row[ep] == NULL) {
        upstream_pool_opts_t o = {0};
        const proxy_traffic_policy_t *p = cl->policy;
        pool_policy(cl, &o);
        o.stats = v->tls_stats;
        char sni[PROXY_HOST_MAX + 32];
        if (v->mesh_tls != NULL && runtime_mesh_mtls(v->rt, cl, ep)) {
            /* Istio's shapes: SNI outbound_.PORT_._.HOST; the server is the service's account(s) if the
             * ServiceEntry (or the ISTIO_MUTUAL rule) lists them, else any workload of our trust domain */
            const proxy_identity_t *id = &v->rt->cfg->proxy.identity;
            o.tls_mesh = v->mesh_tls;
            snprintf(sni, sizeof sni, "outbound_.%u_._.%s", cl->port, cl->host);
            o.tls_sni = p != NULL && p->has_tls && p->tls_sni != NULL ? p->tls_sni : sni;
            const proxy_str_list_t *sans = cl->service != NULL ? &cl->service->subject_alt_names : NULL;
            if (p != NULL && p->has_tls && p->tls_subject_alt_names.n > 0)
                sans = &p->tls_subject_alt_names;
            if (sans != NULL && sans->n > 0) {
                o.tls_expected = sans->items;
                o.n_tls_expected = sans->n;
            } else {
                o.tls_expected = id->peer_ids;
                o.n_tls_expected = id->n_peer_ids;
            }
        } else if (v->rt->tls[cl->index] != NULL) {
            /* the server must name the host asked for (Istio verifies the SNI's host when no SAN is listed) */
            o.tls = v->rt->tls[cl->index];
            o.tls_sni = p->tls_sni != NULL ? p->tls_sni : cl->host;
            if (!p->tls_insecure_skip_verify) {
                o.tls_expected = p->tls_subject_alt_names.items;
                o.n_tls_expected = p->tls_subject_alt_names.n;
                if (o.n_tls_expected == 0)
                    o.tls_verify_host = o.tls_sni;
            }
        }
        row[ep] = upstream_pool_create(v->loop, (const struct sockaddr *)&cl->endpoints[ep].addr, &o);
    }
    return row[ep];
}

uint64_t *runtime_view_tele_dest(runtime_view_t *v, const router_cluster_t *cl, int ep)
{
    uint64_t *row = v->tele_dest[cl->index];
    if (row == NULL) {
        row = xcalloc(cl->n_endpoints + 1, sizeof *row);
        v->tele_dest[cl->index] = row;
    }
    return &row[ep + 1];
}

static void view_free(runtime_view_t *v)
{
    for (addr_pool_t *a = v->addr_pools, *next; a != NULL; a = next) {
        next = a->next;
        upstream_pool_destroy(a->pool);
        free(a);
    }
    size_t n = router_cluster_count(v->rt->router);
    for (size_t i = 0; i < n; i++) {
        const router_cluster_t *cl = router_cluster(v->rt->router, i);
        if (v->pools[i] != NULL) {
            for (size_t e = 0; e < cl->n_endpoints; e++)
                upstream_pool_destroy(v->pools[i][e]);
            free(v->pools[i]);
        }
        free(v->tele_dest[i]);
        router_lb_dispose(&v->lbs[i]);
        cluster_state_dispose(&v->cs[i], v->rt, cl);
    }
    free(v->pools);
    free(v->tele_dest);
    free(v->lbs);
    free(v->cs);
    runtime_unref(v->rt);
    free(v);
}

size_t runtime_view_trim(runtime_view_t *v)
{
    size_t n = router_cluster_count(v->rt->router), freed = 0;
    for (addr_pool_t *a = v->addr_pools; a != NULL; a = a->next)
        freed += upstream_pool_trim(a->pool);
    for (size_t i = 0; i < n; i++) {
        if (v->pools[i] == NULL)
            continue;
        const router_cluster_t *cl = router_cluster(v->rt->router, i);
        for (size_t e = 0; e < cl->n_endpoints; e++)
            if (v->pools[i][e] != NULL)
                freed += upstream_pool_trim(v->pools[i][e]);
    }
    return freed;
}

uint32_t runtime_view_connections(const runtime_view_t *v, const router_cluster_t *cl)
{
    uint32_t n = v->cs[cl->index].leased;
    upstream_pool_t **row = v->pools[cl->index];
    if (row != NULL)
        for (size_t e = 0; e < cl->n_endpoints; e++)
            if (row[e] != NULL)
                n += (uint32_t)upstream_pool_idle(row[e]);
    return n;
}

void runtime_view_hold(runtime_view_t *v)
{
    v->users++;
}

void runtime_view_drop(runtime_view_t *v)
{
    if (--v->users == 0 && v->retired)
        view_free(v);
}

void runtime_view_retire(runtime_view_t *v)
{
    if (v == NULL)
        return;
    v->retired = true;
    if (v->users == 0)
        view_free(v);
}
