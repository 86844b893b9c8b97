/*
 * router: the routing table built from a proxy_config_t, request routing,
 * and the per-worker load balancers (see router.h for the model).
 *
 * Design. router_create does all the work that can be done ahead of time,
 * so that router_route, router_lb_pick and the header operations never
 * allocate:
 *   - clusters are laid out per ServiceEntry as a grid: for entry s,
 *     cluster svc_base[s] + port_index * stride[s] + slot, where slot 0 is
 *     "every endpoint" and slot k the rule's subset k-1, stride = 1 + number
 *     of subsets. The inbound cluster comes last. Finding the cluster of a
 *     destination is therefore an index computation once its port is known;
 *   - every route destination of every VirtualService has a precomputed
 *     (entry, slot) pair, found through flat offset tables (VS -> first
 *     route, route -> first destination);
 *   - exact host names (FQDNs, lowercase) live in an open-addressing hash
 *     table (XXH3) holding the VirtualService and the ServiceEntry of that
 *     name; "*.suffix" and "*" hosts live in two short lists sorted longest
 *     suffix first, tried after the exact table.
 *
 * Host resolution of endpoints happens here, once: STATIC addresses must
 * be IP literals, DNS and NONE names go through getaddrinfo (the first IPv4
 * answer is preferred, else the first answer). A DNS entry without
 * endpoints uses its own (non-wildcard) hosts as endpoints, as Istio does;
 * a NONE entry without endpoints has clusters with no endpoint.
 *
 * Regular expressions run on a stack copy of the slice (NUL-terminated),
 * at most ROUTER_REGEX_MAX_BYTES long; a longer subject never matches.
 */
#include "router.h"
#include "hostport.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "xalloc.h"

#define HOST_MAX 256    /* longest host name routed */
#define RING_POINTS 100 /* consistent-hash points per endpoint of average weight */

typedef struct host_slot {
    const char *fqdn; /* NULL = empty slot */
    size_t len;
    const proxy_virtual_service_t *vs;
    const proxy_service_entry_t *se;
} host_slot_t;

typedef struct wild_host {
    const char *suffix; /* ".example.com", or "" for "*" */
    size_t len;
    const proxy_virtual_service_t *vs;
    const proxy_service_entry_t *se;
} wild_host_t;

typedef struct dest_ref {
    int valid;
    uint32_t service; /* index in cfg->services */
    uint32_t slot;    /* 0 = every endpoint, k = subset k-1 */
} dest_ref_t;

struct router {
    const proxy_config_t *cfg;
    router_cluster_t *clusters;
    size_t n_clusters;
    router_cluster_t *inbound;
    router_cluster_t *passthrough; /* interceptionMode REDIRECT only */
    size_t *svc_base;              /* per service: index of its first cluster */
    size_t *svc_stride;            /* per service: 1 + number of subsets */
    size_t *vs_route_base;
    size_t *route_dest_base;
    dest_ref_t *dests;
    host_slot_t *hosts;
    size_t host_mask;
    wild_host_t *wild_vs, *wild_se;
    size_t n_wild_vs, n_wild_se;
    const char *ns; /* the sidecar's namespace (the Proxy's): Host headers are read in it */
};

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static str_t str_of(const char *s)
{
    return (str_t){s, s ? (uint32_t)strlen(s) : 0};
}

/* ---- building: endpoints and clusters ---- */

static int resolve(const char *host, int numeric_only, struct sockaddr_storage *out)
{
    char name[HOST_MAX];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(name))
        return -1;
    memcpy(name, host, len);
    name[len] = '\0';
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = numeric_only ? AI_NUMERICHOST : 0;
    if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL)
        return -1;
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = res; ai != NULL && pick == NULL; ai = ai->ai_next)
        if (ai->ai_family == AF_INET)
            pick = ai;
    for (const struct addrinfo *ai = res; ai != NULL && pick == NULL; ai = ai->ai_next)
        if (ai->ai_family == AF_INET6)
            pick = ai;
    int rc = -1;
    if (pick != NULL && pick->ai_addrlen <= sizeof(*out)) {
        memset(out, 0, sizeof(*out));
        memcpy(out, pick->ai_addr, pick->ai_addrlen);
        rc = 0;
    }
    freeaddrinfo(res);
    return rc;
}

static void endpoint_set_port(router_endpoint_t *e, const struct sockaddr_storage *addr, uint32_t port)
{
    char ip[INET6_ADDRSTRLEN];
    e->addr = *addr;
    if (addr->ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->addr;
        s6->sin6_port = htons((uint16_t)port);
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(e->name, sizeof(e->name), "[%s]:%u", ip, port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&e->addr;
        s4->sin_port = htons((uint16_t)port);
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(e->name, sizeof(e->name), "%s:%u", ip, port);
    }
}

static uint32_t endpoint_port(const proxy_endpoint_t *ep, const proxy_port_t *port)
{
    if (ep != NULL && ep->port_numbers != NULL)
        for (size_t k = 0; k < ep->ports.n; k++)
            if (ep->ports.items[k].key != NULL && port->name != NULL &&
                strcmp(ep->ports.items[k].key, port->name) == 0 && ep->port_numbers[k] > 0)
                return ep->port_numbers[k];
    if (port->target_port > 0)
        return (uint32_t)port->target_port;
    return port->number;
}

typedef struct ring_point {
    uint64_t hash;
    uint32_t endpoint;
} ring_point_t;

static int ring_point_cmp(const void *a, const void *b)
{
    const ring_point_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->endpoint < y->endpoint ? -1 : x->endpoint > y->endpoint;
}

static void ring_build(router_cluster_t *cl)
{
    size_t n = cl->n_endpoints;
    if (n == 0)
        return;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += cl->endpoints[i].weight;
    uint64_t target = (uint64_t)RING_POINTS * n;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t pts = target * cl->endpoints[i].weight / sum;
        total += pts ? (size_t)pts : 1;
    }
    ring_point_t *pts = xcalloc(total, sizeof(*pts));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t np = target * cl->endpoints[i].weight / sum;
        if (np == 0)
            np = 1;
        const char *name = cl->endpoints[i].name;
        size_t len = strlen(name);
        for (uint64_t j = 0; j < np; j++) {
            pts[k].hash = XXH3_64bits_withSeed(name, len, j);
            pts[k].endpoint = (uint32_t)i;
            k++;
        }
    }
    qsort(pts, total, sizeof(*pts), ring_point_cmp);
    cl->ring_hash = xcalloc(total, sizeof(uint64_t));
    cl->ring_endpoint = xcalloc(total, sizeof(uint32_t));
    for (size_t i = 0; i < total; i++) {
        cl->ring_hash[i] = pts[i].hash;
        cl->ring_endpoint[i] = pts[i].endpoint;
    }
    cl->ring_n = total;
    free(pts);
}

static char *name_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *name_printf(const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    size_t len;
    char *s = buf_steal(&b, &len);
    return s ? s : xcalloc(1, 1);
}

/* A source of endpoints for a ServiceEntry: a configured endpoint, or one of its hosts (DNS, no endpoints). */
typedef struct ep_source {
    const proxy_endpoint_t *ep;
    struct sockaddr_storage addr;
} ep_source_t;

static int build_service(router_t *r, size_t si, char *err, size_t errlen)
{
    const proxy_config_t *cfg = r->cfg;
    const proxy_service_entry_t *se = &cfg->services[si];
    const proxy_destination_rule_t *rule = proxy_config_find_rule(cfg, se);
    const char *se_name = se->meta.name ? se->meta.name : "?";
    size_t nsub = rule ? rule->n_subsets : 0;
    int from_hosts = se->resolution == PROXY_RESOLUTION_DNS && se->n_endpoints == 0;
    size_t n_src = from_hosts ? se->n_hosts : se->n_endpoints;
    ep_source_t *src = xcalloc(n_src, sizeof(*src));
    size_t n_ok = 0;
    int rc = -1;
    for (size_t i = 0; i < n_src; i++) {
        const char *addr;
        if (from_hosts) {
            addr = se->hosts[i].fqdn;
            if (addr == NULL || addr[0] == '*')
                continue;
        } else {
            addr = se->endpoints[i].address;
            src[n_ok].ep = &se->endpoints[i];
        }
        if (addr == NULL || resolve(addr, se->resolution == PROXY_RESOLUTION_STATIC, &src[n_ok].addr) != 0) {
            fail(err, errlen, "ServiceEntry %s: %s \"%s\" %s", se_name, from_hosts ? "host" : "endpoint address",
                 addr ? addr : "",
                 se->resolution == PROXY_RESOLUTION_STATIC ? "is not an IP address" : "does not resolve");
            goto done;
        }
        n_ok++;
    }
    for (size_t p = 0; p < se->n_ports; p++) {
        const proxy_port_t *port = &se->ports[p];
        for (size_t slot = 0; slot <= nsub; slot++) {
            router_cluster_t *cl = &r->clusters[r->svc_base[si] + p * r->svc_stride[si] + slot];
            const proxy_subset_t *subset = slot ? &rule->subsets[slot - 1] : NULL;
            cl->service = se;
            cl->host = se->n_hosts ? se->hosts[0].fqdn : "";
            cl->subset = subset;
            cl->port = port->number;
            cl->policy = subset ? &subset->policy : rule ? &rule->policy : NULL;
            cl->name =
                name_printf("outbound|%u|%s|%s", port->number, subset && subset->name ? subset->name : "", cl->host);
            size_t n = 0;
            for (size_t i = 0; i < n_ok; i++)
                if (subset == NULL || (src[i].ep ? proxy_subset_selects(subset, src[i].ep) : subset->labels.n == 0))
                    n++;
            if (n > ROUTER_MAX_ENDPOINTS) {
                fail(err, errlen, "ServiceEntry %s: cluster %s has %zu endpoints, more than %d", se_name, cl->name, n,
                     ROUTER_MAX_ENDPOINTS);
                goto done;
            }
            cl->endpoints = n ? xcalloc(n, sizeof(router_endpoint_t)) : NULL;
            for (size_t i = 0; i < n_ok; i++) {
                if (!(subset == NULL || (src[i].ep ? proxy_subset_selects(subset, src[i].ep) : subset->labels.n == 0)))
                    continue;
                router_endpoint_t *e = &cl->endpoints[cl->n_endpoints++];
                e->ep = src[i].ep;
                e->weight = src[i].ep && src[i].ep->weight > 0 ? (uint32_t)src[i].ep->weight : 1;
                endpoint_set_port(e, &src[i].addr, endpoint_port(src[i].ep, port));
            }
            if (cl->policy != NULL && cl->policy->lb == PROXY_LB_CONSISTENT_HASH)
                ring_build(cl);
        }
    }
    rc = 0;
done:
    free(src);
    return rc;
}

/* ---- building: host table ---- */

static uint64_t name_hash(const char *s, size_t len)
{
    return XXH3_64bits(s, len);
}

static host_slot_t *host_slot_find(const router_t *r, const char *name, size_t len)
{
    if (r->hosts == NULL)
        return NULL;
    size_t i = (size_t)name_hash(name, len) & r->host_mask;
    for (;;) {
        host_slot_t *s = &r->hosts[i];
        if (s->fqdn == NULL)
            return NULL;
        if (s->len == len && memcmp(s->fqdn, name, len) == 0)
            return s;
        i = (i + 1) & r->host_mask;
    }
}

static host_slot_t *host_slot_insert(router_t *r, const char *fqdn)
{
    size_t len = strlen(fqdn);
    size_t i = (size_t)name_hash(fqdn, len) & r->host_mask;
    for (;;) {
        host_slot_t *s = &r->hosts[i];
        if (s->fqdn == NULL) {
            s->fqdn = fqdn;
            s->len = len;
            return s;
        }
        if (s->len == len && memcmp(s->fqdn, fqdn, len) == 0)
            return s;
        i = (i + 1) & r->host_mask;
    }
}

static int wild_cmp(const void *a, const void *b)
{
    const wild_host_t *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

static int is_wild(const char *fqdn)
{
    return fqdn[0] == '*' && (fqdn[1] == '\0' || fqdn[1] == '.');
}

static void build_hosts(router_t *r)
{
    const proxy_config_t *cfg = r->cfg;
    size_t n = 0, nw_vs = 0, nw_se = 0;
    for (size_t i = 0; i < cfg->n_services; i++)
        for (size_t j = 0; j < cfg->services[i].n_hosts; j++)
            if (cfg->services[i].hosts[j].fqdn != NULL)
                is_wild(cfg->services[i].hosts[j].fqdn) ? nw_se++ : n++;
    for (size_t i = 0; i < cfg->n_virtual_services; i++)
        for (size_t j = 0; j < cfg->virtual_services[i].n_hosts; j++)
            if (cfg->virtual_services[i].hosts[j].fqdn != NULL)
                is_wild(cfg->virtual_services[i].hosts[j].fqdn) ? nw_vs++ : n++;
    size_t cap = 8;
    while (cap < 2 * n + 2)
        cap <<= 1;
    r->hosts = xcalloc(cap, sizeof(host_slot_t));
    r->host_mask = cap - 1;
    r->wild_vs = xcalloc(nw_vs, sizeof(wild_host_t));
    r->wild_se = xcalloc(nw_se, sizeof(wild_host_t));
    for (size_t i = 0; i < cfg->n_services; i++) {
        const proxy_service_entry_t *se = &cfg->services[i];
        for (size_t j = 0; j < se->n_hosts; j++) {
            const char *f = se->hosts[j].fqdn;
            if (f == NULL)
                continue;
            if (is_wild(f)) {
                r->wild_se[r->n_wild_se++] = (wild_host_t){f + 1, strlen(f + 1), NULL, se};
            } else {
                host_slot_t *s = host_slot_insert(r, f);
                if (s->se == NULL)
                    s->se = se;
            }
        }
    }
    for (size_t i = 0; i < cfg->n_virtual_services; i++) {
        const proxy_virtual_service_t *vs = &cfg->virtual_services[i];
        for (size_t j = 0; j < vs->n_hosts; j++) {
            const char *f = vs->hosts[j].fqdn;
            if (f == NULL)
                continue;
            if (is_wild(f)) {
                r->wild_vs[r->n_wild_vs++] = (wild_host_t){f + 1, strlen(f + 1), vs, NULL};
            } else {
                host_slot_t *s = host_slot_insert(r, f);
                if (s->vs == NULL)
                    s->vs = vs;
            }
        }
    }
    qsort(r->wild_vs, r->n_wild_vs, sizeof(wild_host_t), wild_cmp);
    qsort(r->wild_se, r->n_wild_se, sizeof(wild_host_t), wild_cmp);
}

static void build_dests(router_t *r)
{
    const proxy_config_t *cfg = r->cfg;
    size_t n_routes = 0, n_dests = 0;
    for (size_t i = 0; i < cfg->n_virtual_services; i++) {
        n_routes += cfg->virtual_services[i].n_http;
        for (size_t h = 0; h < cfg->virtual_services[i].n_http; h++)
            n_dests += cfg->virtual_services[i].http[h].n_routes;
    }
    r->vs_route_base = xcalloc(cfg->n_virtual_services, sizeof(size_t));
    r->route_dest_base = xcalloc(n_routes, sizeof(size_t));
    r->dests = xcalloc(n_dests, sizeof(dest_ref_t));
    size_t ri = 0, di = 0;
    for (size_t i = 0; i < cfg->n_virtual_services; i++) {
        const proxy_virtual_service_t *vs = &cfg->virtual_services[i];
        r->vs_route_base[i] = ri;
        for (size_t h = 0; h < vs->n_http; h++) {
            const proxy_http_route_t *route = &vs->http[h];
            r->route_dest_base[ri++] = di;
            for (size_t d = 0; d < route->n_routes; d++) {
                const proxy_destination_t *dst = &route->routes[d].destination;
                dest_ref_t *ref = &r->dests[di++];
                const proxy_service_entry_t *se = dst->service;
                if (se == NULL || se < cfg->services || se >= cfg->services + cfg->n_services)
                    continue;
                ref->service = (uint32_t)(se - cfg->services);
                if (dst->subset != NULL) {
                    const proxy_destination_rule_t *rule = proxy_config_find_rule(cfg, se);
                    const proxy_subset_t *sub = proxy_rule_find_subset(rule, dst->subset);
                    if (sub == NULL)
                        continue;
                    ref->slot = (uint32_t)(sub - rule->subsets) + 1;
                }
                ref->valid = 1;
            }
        }
    }
}

router_t *router_create(const proxy_config_t *cfg, char *err, size_t errlen)
{
    if (cfg == NULL) {
        fail(err, errlen, "no configuration");
        return NULL;
    }
    router_t *r = xcalloc(1, sizeof(*r));
    r->cfg = cfg;
    r->ns = cfg->proxy.meta.namespace ? cfg->proxy.meta.namespace : "default";

    r->svc_base = xcalloc(cfg->n_services, sizeof(size_t));
    r->svc_stride = xcalloc(cfg->n_services, sizeof(size_t));
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_services; i++) {
        const proxy_destination_rule_t *rule = proxy_config_find_rule(cfg, &cfg->services[i]);
        r->svc_base[i] = n;
        r->svc_stride[i] = 1 + (rule ? rule->n_subsets : 0);
        n += cfg->services[i].n_ports * r->svc_stride[i];
    }
    int has_inbound = cfg->proxy.inbound_forward_to.text != NULL;
    int has_passthrough = cfg->proxy.interception_redirect;
    r->n_clusters = n + (has_inbound ? 1 : 0) + (has_passthrough ? 1 : 0);
    r->clusters = xcalloc(r->n_clusters, sizeof(router_cluster_t));
    for (size_t i = 0; i < r->n_clusters; i++)
        r->clusters[i].index = (uint32_t)i;
    for (size_t i = 0; i < cfg->n_services; i++)
        if (build_service(r, i, err, errlen) != 0)
            goto fail;
    if (has_inbound) {
        const proxy_hostport_t *fw = &cfg->proxy.inbound_forward_to;
        router_cluster_t *cl = &r->clusters[n];
        struct sockaddr_storage addr;
        cl->host = "";
        cl->port = fw->port;
        cl->name = name_printf("inbound|%u||", (unsigned)fw->port);
        if (fw->host == NULL || resolve(fw->host, 0, &addr) != 0) {
            fail(err, errlen, "inbound forwardTo \"%s\" does not resolve", fw->text);
            goto fail;
        }
        cl->endpoints = xcalloc(1, sizeof(router_endpoint_t));
        cl->n_endpoints = 1;
        cl->endpoints[0].weight = 1;
        endpoint_set_port(&cl->endpoints[0], &addr, fw->port);
        r->inbound = cl;
    }
    if (has_passthrough) {
        router_cluster_t *cl = &r->clusters[r->n_clusters - 1];
        cl->host = "PassthroughCluster"; /* Istio's destination_service for such requests */
        cl->name = name_printf("PassthroughCluster");
        cl->endpoints = xcalloc(1, sizeof(router_endpoint_t));
        cl->n_endpoints = 1;
        cl->endpoints[0].weight = 1;
        cl->endpoints[0].addr.ss_family = AF_INET; /* 0.0.0.0:0: the request's original destination replaces it */
        snprintf(cl->endpoints[0].name, sizeof cl->endpoints[0].name, "original destination");
        r->passthrough = cl;
    }
    build_hosts(r);
    build_dests(r);
    return r;
fail:
    router_destroy(r);
    return NULL;
}

void router_destroy(router_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->clusters != NULL && i < r->n_clusters; i++) {
        free((char *)r->clusters[i].name);
        free(r->clusters[i].endpoints);
        free(r->clusters[i].ring_hash);
        free(r->clusters[i].ring_endpoint);
    }
    free(r->clusters);
    free(r->svc_base);
    free(r->svc_stride);
    free(r->vs_route_base);
    free(r->route_dest_base);
    free(r->dests);
    free(r->hosts);
    free(r->wild_vs);
    free(r->wild_se);
    free(r);
}

size_t router_cluster_count(const router_t *r)
{
    return r ? r->n_clusters : 0;
}

const router_cluster_t *router_cluster(const router_t *r, size_t index)
{
    return r && index < r->n_clusters ? &r->clusters[index] : NULL;
}

const router_cluster_t *router_inbound(const router_t *r)
{
    return r ? r->inbound : NULL;
}

const router_cluster_t *router_passthrough(const router_t *r)
{
    return r ? r->passthrough : NULL;
}

/* The all-endpoints cluster of the service port addr belongs to (see router_service_for_addr), and its port. */
static const router_cluster_t *cluster_for_addr(const router_t *r, const struct sockaddr_storage *addr,
                                                const proxy_port_t **port)
{
    if (r == NULL)
        return NULL;
    uint16_t want = hostport_sockaddr_port(addr);
    const proxy_config_t *cfg = r->cfg;
    for (size_t si = 0; si < cfg->n_services; si++) { /* virtual IPs first, as the service's own listeners */
        const proxy_service_entry_t *se = &cfg->services[si];
        for (size_t a = 0; a < se->addresses.n; a++) {
            struct sockaddr_storage net;
            int bits;
            if (hostport_cidr_parse(se->addresses.items[a], &net, &bits) != 0 ||
                !hostport_cidr_contains(&net, bits, addr))
                continue;
            for (size_t p = 0; p < se->n_ports; p++)
                if (se->ports[p].number == want && se->n_hosts > 0) {
                    *port = &se->ports[p];
                    return &r->clusters[r->svc_base[si] + p * r->svc_stride[si]];
                }
        }
    }
    for (size_t i = 0; i < r->n_clusters; i++) { /* then an endpoint's own address */
        const router_cluster_t *cl = &r->clusters[i];
        if (cl->service == NULL || cl->subset != NULL || cl->service->n_hosts == 0)
            continue;
        for (size_t e = 0; e < cl->n_endpoints; e++)
            if (hostport_sockaddr_equal(&cl->endpoints[e].addr, addr)) {
                for (size_t p = 0; p < cl->service->n_ports; p++)
                    if (cl->service->ports[p].number == cl->port)
                        *port = &cl->service->ports[p];
                return cl;
            }
    }
    return NULL;
}

int router_service_for_addr(const router_t *r, const struct sockaddr_storage *addr, const char **host, uint32_t *port)
{
    const proxy_port_t *p = NULL;
    const router_cluster_t *cl = cluster_for_addr(r, addr, &p);
    if (cl == NULL)
        return -1;
    *host = cl->host;
    *port = cl->port;
    return 0;
}

bool router_http_port(const router_t *r, uint32_t port)
{
    for (size_t si = 0; r != NULL && si < r->cfg->n_services; si++)
        for (size_t p = 0; p < r->cfg->services[si].n_ports; p++)
            if (r->cfg->services[si].ports[p].number == port && !proxy_port_is_tcp(&r->cfg->services[si].ports[p]))
                return true;
    return false;
}

const router_cluster_t *router_tcp_cluster_for_addr(const router_t *r, const struct sockaddr_storage *addr)
{
    const proxy_port_t *p = NULL;
    const router_cluster_t *cl = cluster_for_addr(r, addr, &p);
    return cl != NULL && p != NULL && proxy_port_is_tcp(p) ? cl : NULL;
}

/* ---- request targets and authorities ---- */

int router_split_target(str_t target, str_t *authority, str_t *path, str_t *query)
{
    static const char slash[] = "/";
    *authority = STR_NULL;
    *path = STR_NULL;
    *query = STR_NULL;
    const char *s = target.ptr;
    uint32_t n = target.len, i = 0;
    if (s == NULL || n == 0)
        return -1;
    if (s[0] != '/') {
        /* absolute form: scheme "://" authority [path-abempty] ["?" query] */
        while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                         (i > 0 && ((s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '-' || s[i] == '.'))))
            i++;
        if (i == 0 || n - i < 3 || memcmp(s + i, "://", 3) != 0)
            return -1;
        i += 3;
        uint32_t a = i;
        while (i < n && s[i] != '/' && s[i] != '?' && s[i] != '#')
            i++;
        if (i == a)
            return -1;
        *authority = (str_t){s + a, i - a};
    }
    uint32_t p = i;
    while (i < n && s[i] != '?' && s[i] != '#')
        i++;
    *path = i > p ? (str_t){s + p, i - p} : (str_t){slash, 1};
    if (i < n && s[i] == '?') {
        uint32_t q = ++i;
        while (i < n && s[i] != '#')
            i++;
        *query = (str_t){s + q, i - q};
    }
    return 0;
}

/*
 * The authority's host, lowercased (brackets of an IPv6 literal and a final
 * dot removed) into name[HOST_MAX], and its port (0 when none). Returns the
 * name's length, or -1 when the authority is empty, malformed or too long.
 */
static int authority_split(str_t a, char *name, uint32_t *port)
{
    const char *s = a.ptr;
    uint32_t n = a.len, hs = 0, he, ps = 0;
    *port = 0;
    if (s == NULL || n == 0)
        return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return -1;
        hs = 1;
        he = (uint32_t)(close - s);
        if (he + 1 < n) {
            if (s[he + 1] != ':')
                return -1;
            ps = he + 2;
        } else {
            ps = n;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon != NULL && memchr(colon + 1, ':', n - (uint32_t)(colon - s) - 1) != NULL) {
            he = n; /* a bare IPv6 literal */
            ps = n;
        } else if (colon != NULL) {
            he = (uint32_t)(colon - s);
            ps = he + 1;
        } else {
            he = n;
            ps = n;
        }
    }
    uint32_t v = 0;
    for (uint32_t i = ps; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || i - ps >= 5)
            return -1;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    if (he > hs && s[he - 1] == '.')
        he--;
    if (he <= hs || he - hs >= HOST_MAX)
        return -1;
    for (uint32_t i = hs; i < he; i++) {
        char c = s[i];
        name[i - hs] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    name[he - hs] = '\0';
    return (int)(he - hs);
}

/* The longest wildcard host matching one of the n names (tried in order), or NULL. */
static const wild_host_t *lookup_wild(const wild_host_t *w, size_t nw, char names[][PROXY_HOST_MAX], const size_t *lens,
                                      size_t n)
{
    for (size_t f = 0; f < n; f++)
        for (size_t i = 0; i < nw; i++)
            if (lens[f] > w[i].len && memcmp(names[f] + lens[f] - w[i].len, w[i].suffix, w[i].len) == 0)
                return &w[i];
    return NULL;
}

/*
 * The VirtualService (first) or ServiceEntry serving the authority; port is
 * the authority's (0 = none). The name is read in the sidecar's namespace
 * with its DNS forms (proxy_host_forms): a VirtualService for any form wins
 * over a ServiceEntry, an earlier form over a later one, exact hosts over
 * wildcards.
 */
static void lookup_host(const router_t *r, str_t authority, const proxy_virtual_service_t **vs,
                        const proxy_service_entry_t **se, uint32_t *port)
{
    char name[HOST_MAX];
    char forms[PROXY_HOST_FORMS][PROXY_HOST_MAX];
    const host_slot_t *slots[PROXY_HOST_FORMS];
    size_t lens[PROXY_HOST_FORMS] = {0};
    *vs = NULL;
    *se = NULL;
    int l = authority_split(authority, name, port);
    if (l < 0)
        return;
    size_t n = proxy_host_forms(name, (size_t)l, r->ns, 1, forms);
    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(forms[i]);
        slots[i] = host_slot_find(r, forms[i], lens[i]);
        if (slots[i] != NULL && slots[i]->vs != NULL) {
            *vs = slots[i]->vs;
            return;
        }
    }
    const wild_host_t *w = lookup_wild(r->wild_vs, r->n_wild_vs, forms, lens, n);
    if (w != NULL) {
        *vs = w->vs;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (slots[i] != NULL && slots[i]->se != NULL) {
            *se = slots[i]->se;
            return;
        }
    w = lookup_wild(r->wild_se, r->n_wild_se, forms, lens, n);
    if (w != NULL)
        *se = w->se;
}

/* ---- matching ---- */

/*
 * Whole-string regex match on a slice. The slice is copied to a NUL-terminated
 * stack buffer: REG_STARTEND would avoid the copy, but sanitizer interceptors
 * of regexec read the subject up to its NUL regardless. Longer subjects never
 * match (ROUTER_REGEX_MAX_BYTES).
 */
static int regex_match(const regex_t *re, const char *s, size_t len)
{
    char copy[ROUTER_REGEX_MAX_BYTES + 1];
    if (re == NULL || len > ROUTER_REGEX_MAX_BYTES)
        return 0;
    if (len > 0)
        memcpy(copy, s, len);
    copy[len] = '\0';
    return regexec(re, copy, 0, NULL, 0) == 0;
}

static int string_match(const proxy_string_match_t *m, const char *s, size_t len, int icase)
{
    size_t vl;
    switch (m->kind) {
    case PROXY_MATCH_NONE: return 1;
    case PROXY_MATCH_EXACT:
        vl = m->value ? strlen(m->value) : 0;
        return vl == len && (vl == 0 || (icase ? strncasecmp(s, m->value, vl) : memcmp(s, m->value, vl)) == 0);
    case PROXY_MATCH_PREFIX:
        vl = m->value ? strlen(m->value) : 0;
        return vl <= len && (vl == 0 || (icase ? strncasecmp(s, m->value, vl) : memcmp(s, m->value, vl)) == 0);
    case PROXY_MATCH_REGEX: return regex_match(m->regex, s, len);
    }
    return 0;
}

/* Does some field called nm->name match nm->match (presence when it has no match)? */
static int header_match(const proxy_named_match_t *nm, const http1_header_t *h, uint32_t n)
{
    if (nm->name == NULL)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (http1_name_eq(h[i].name, nm->name) && string_match(&nm->match, h[i].value.ptr, h[i].value.len, 0))
            return 1;
    return 0;
}

/* The value of the first query parameter called name ("" without '='); 0 when absent. */
static int query_find(str_t query, const char *name, str_t *value)
{
    size_t nl = strlen(name);
    const char *s = query.ptr, *end = query.ptr + query.len;
    if (s == NULL)
        return 0;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        const char *ne = eq ? eq : pe;
        if ((size_t)(ne - s) == nl && memcmp(s, name, nl) == 0) {
            *value = eq ? (str_t){eq + 1, (uint32_t)(pe - eq - 1)} : (str_t){s, 0};
            return 1;
        }
        s = amp ? amp + 1 : end;
    }
    return 0;
}

static int match_one(const proxy_http_match_t *m, const router_request_t *req)
{
    if (!string_match(&m->uri, req->path.ptr, req->path.len, m->ignore_uri_case && m->uri.kind != PROXY_MATCH_REGEX))
        return 0;
    if (!string_match(&m->method, req->method.ptr, req->method.len, 0))
        return 0;
    if (!string_match(&m->authority, req->authority.ptr, req->authority.len, 0))
        return 0;
    for (size_t i = 0; i < m->n_headers; i++)
        if (!header_match(&m->headers[i], req->headers, req->header_count))
            return 0;
    for (size_t i = 0; i < m->n_without_headers; i++)
        if (header_match(&m->without_headers[i], req->headers, req->header_count))
            return 0;
    for (size_t i = 0; i < m->n_query_params; i++) {
        str_t v;
        const proxy_named_match_t *q = &m->query_params[i];
        if (q->name == NULL || !query_find(req->query, q->name, &v) || !string_match(&q->match, v.ptr, v.len, 0))
            return 0;
    }
    return 1;
}

/* ---- routing ---- */

static const router_cluster_t *cluster_for(const router_t *r, size_t svc, size_t slot, int64_t dest_port,
                                           uint32_t authority_port)
{
    const proxy_service_entry_t *se = &r->cfg->services[svc];
    if (se->n_ports == 0 || slot >= r->svc_stride[svc])
        return NULL;
    size_t pi = 0;
    if (dest_port != PROXY_UNSET) {
        for (pi = 0; pi < se->n_ports; pi++)
            if (se->ports[pi].number == (uint64_t)dest_port)
                break;
        if (pi == se->n_ports)
            return NULL;
    } else if (authority_port != 0) {
        for (pi = 0; pi < se->n_ports; pi++)
            if (se->ports[pi].number == authority_port)
                break;
        if (pi == se->n_ports)
            pi = 0;
    }
    return &r->clusters[r->svc_base[svc] + pi * r->svc_stride[svc] + slot];
}

static size_t weighted_pick(const proxy_http_route_t *route, uint32_t rnd)
{
    int x = (int)(rnd % 100), sum = 0;
    size_t last = route->n_routes - 1;
    for (size_t i = 0; i < route->n_routes; i++) {
        if (route->routes[i].weight <= 0)
            continue;
        sum += route->routes[i].weight;
        last = i;
        if (x < sum)
            return i;
    }
    return last;
}

void router_route(const router_t *r, const router_request_t *req, uint32_t rnd, router_decision_t *out)
{
    memset(out, 0, sizeof(*out));
    out->action = ROUTER_NOT_FOUND;
    if (r == NULL || req == NULL)
        return;
    const proxy_virtual_service_t *vs;
    const proxy_service_entry_t *se;
    uint32_t port;
    lookup_host(r, req->authority, &vs, &se, &port);
    if (vs != NULL) {
        size_t vi = (size_t)(vs - r->cfg->virtual_services);
        for (size_t h = 0; h < vs->n_http; h++) {
            const proxy_http_route_t *route = &vs->http[h];
            const proxy_http_match_t *match = NULL;
            int ok = route->n_matches == 0;
            for (size_t m = 0; m < route->n_matches && !ok; m++)
                if (match_one(&route->matches[m], req)) {
                    ok = 1;
                    match = &route->matches[m];
                }
            if (!ok)
                continue;
            out->vs = vs;
            out->route = route;
            out->match = match;
            if (route->has_redirect) {
                out->action = ROUTER_REDIRECT;
                return;
            }
            if (route->has_direct_response) {
                out->action = ROUTER_DIRECT;
                return;
            }
            if (route->n_routes == 0)
                break;
            size_t d = weighted_pick(route, rnd);
            const dest_ref_t *ref = &r->dests[r->route_dest_base[r->vs_route_base[vi] + h] + d];
            const router_cluster_t *cl =
                ref->valid ? cluster_for(r, ref->service, ref->slot, route->routes[d].destination.port, port) : NULL;
            if (cl == NULL)
                break;
            out->dest = &route->routes[d];
            out->cluster = cl;
            out->action = ROUTER_FORWARD;
            return;
        }
        memset(out, 0, sizeof(*out));
        out->action = ROUTER_NOT_FOUND;
        return;
    }
    if (se != NULL) {
        const router_cluster_t *cl = cluster_for(r, (size_t)(se - r->cfg->services), 0, PROXY_UNSET, port);
        if (cl != NULL) {
            out->cluster = cl;
            out->action = ROUTER_FORWARD;
        }
    }
}

void router_redirect_location(const router_decision_t *d, const router_request_t *req, buf_t *out)
{
    const proxy_http_route_t *route = d ? d->route : NULL;
    const char *scheme = route && route->redirect_scheme ? route->redirect_scheme : "http";
    str_t host = route && route->redirect_authority ? str_of(route->redirect_authority) : req->authority;
    buf_append_str(out, scheme);
    buf_append_str(out, "://");
    if (route && route->redirect_port != PROXY_UNSET) {
        uint32_t hl = host.len;
        if (hl > 0 && host.ptr[0] == '[') {
            const char *close = memchr(host.ptr, ']', hl);
            hl = close ? (uint32_t)(close - host.ptr) + 1 : hl;
        } else if (hl > 0) {
            const char *colon = memchr(host.ptr, ':', hl);
            if (colon != NULL && memchr(colon + 1, ':', hl - (uint32_t)(colon - host.ptr) - 1) == NULL)
                hl = (uint32_t)(colon - host.ptr);
        }
        buf_append(out, host.ptr, hl);
        buf_printf(out, ":%lld", (long long)route->redirect_port);
    } else {
        buf_append(out, host.ptr, host.len);
    }
    const char *uri = route ? route->redirect_uri : NULL;
    if (uri != NULL)
        buf_append_str(out, uri);
    else if (req->path.len > 0)
        buf_append(out, req->path.ptr, req->path.len);
    else
        buf_append_char(out, '/');
    if (req->query.len > 0 && (uri == NULL || strchr(uri, '?') == NULL)) {
        buf_append_char(out, '?');
        buf_append(out, req->query.ptr, req->query.len);
    }
}

void router_rewrite_target(const router_decision_t *d, const router_request_t *req, buf_t *out)
{
    const proxy_http_route_t *route = d ? d->route : NULL;
    str_t path = req->path.len > 0 ? req->path : STR_LIT("/");
    if (route != NULL && route->rewrite_uri != NULL) {
        const proxy_http_match_t *m = d->match;
        size_t pl = m && m->uri.kind == PROXY_MATCH_PREFIX && m->uri.value ? strlen(m->uri.value) : 0;
        buf_append_str(out, route->rewrite_uri);
        if (m && m->uri.kind == PROXY_MATCH_PREFIX && pl <= path.len)
            buf_append(out, path.ptr + pl, path.len - pl);
    } else {
        buf_append(out, path.ptr, path.len);
    }
    if (req->query.len > 0) {
        buf_append_char(out, '?');
        buf_append(out, req->query.ptr, req->query.len);
    }
    if (out->len == 0)
        buf_append_char(out, '/');
}

/* ---- header operations ---- */

static int in_kv(const proxy_kv_list_t *l, str_t name)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i].key != NULL && http1_name_eq(name, l->items[i].key))
            return 1;
    return 0;
}

static int in_list(const proxy_str_list_t *l, str_t name)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i] != NULL && http1_name_eq(name, l->items[i]))
            return 1;
    return 0;
}

/* Is a field called name removed or replaced by the operations of levels from..n-1? */
static int killed(const proxy_header_ops_t *const *lv, size_t n, size_t from, str_t name)
{
    for (size_t i = from; i < n; i++)
        if (in_list(&lv[i]->remove, name) || in_kv(&lv[i]->set, name))
            return 1;
    return 0;
}

static inline void emit(http1_header_t *out, uint32_t cap, uint32_t *count, str_t name, str_t value)
{
    if (*count < cap)
        out[*count] = (http1_header_t){name, value};
    (*count)++;
}

/*
 * The fields after applying the levels in order (each: remove, set, add),
 * computed in one pass so that fields dropped for lack of room still count.
 * authority, when given, replaces the first Host field in place (others are
 * dropped) or is appended.
 */
static uint32_t apply_ops(const proxy_header_ops_t *const *lv, size_t nl, const char *authority,
                          const http1_header_t *in, uint32_t n, http1_header_t *out, uint32_t cap)
{
    uint32_t count = 0;
    int host_done = 0;
    str_t auth = str_of(authority);
    for (uint32_t i = 0; i < n; i++) {
        if (authority != NULL && http1_name_eq(in[i].name, "host")) {
            if (!host_done)
                emit(out, cap, &count, in[i].name, auth);
            host_done = 1;
            continue;
        }
        if (!killed(lv, nl, 0, in[i].name))
            emit(out, cap, &count, in[i].name, in[i].value);
    }
    for (size_t l = 0; l < nl; l++) {
        const proxy_kv_list_t *lists[2] = {&lv[l]->set, &lv[l]->add};
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < lists[k]->n; i++) {
                str_t name = str_of(lists[k]->items[i].key);
                if (name.ptr == NULL || (authority != NULL && http1_name_eq(name, "host")) ||
                    killed(lv, nl, l + 1, name))
                    continue;
                emit(out, cap, &count, name, str_of(lists[k]->items[i].value));
            }
    }
    if (authority != NULL && !host_done)
        emit(out, cap, &count, STR_LIT("host"), auth);
    return count;
}

uint32_t router_request_headers(const router_decision_t *d, const http1_header_t *in, uint32_t n, http1_header_t *out,
                                uint32_t cap)
{
    const proxy_header_ops_t *lv[2];
    size_t nl = 0;
    const char *authority = NULL;
    if (d != NULL && d->route != NULL) {
        lv[nl++] = &d->route->headers.request;
        authority = d->route->rewrite_authority;
    }
    if (d != NULL && d->dest != NULL)
        lv[nl++] = &d->dest->headers.request;
    return apply_ops(lv, nl, authority, in, n, out, cap);
}

uint32_t router_response_headers(const router_decision_t *d, const http1_header_t *in, uint32_t n, http1_header_t *out,
                                 uint32_t cap)
{
    const proxy_header_ops_t *lv[2];
    size_t nl = 0;
    if (d != NULL && d->route != NULL)
        lv[nl++] = &d->route->headers.response;
    if (d != NULL && d->dest != NULL)
        lv[nl++] = &d->dest->headers.response;
    return apply_ops(lv, nl, NULL, in, n, out, cap);
}

/* ---- load balancing ---- */

void router_lb_init(router_lb_t *lb, const router_cluster_t *cl)
{
    memset(lb, 0, sizeof(*lb));
    lb->cluster = cl;
    if (cl == NULL || cl->n_endpoints == 0)
        return;
    lb->current_weight = xcalloc(cl->n_endpoints, sizeof(int64_t));
    lb->active = xcalloc(cl->n_endpoints, sizeof(uint32_t));
    for (size_t i = 1; i < cl->n_endpoints; i++)
        if (cl->endpoints[i].weight != cl->endpoints[0].weight)
            lb->weighted = true;
}

void router_lb_dispose(router_lb_t *lb)
{
    if (lb == NULL)
        return;
    free(lb->current_weight);
    free(lb->active);
    memset(lb, 0, sizeof(*lb));
}

static inline int is_excluded(const uint64_t *ex, size_t i)
{
    return ex != NULL && ((ex[i >> 6] >> (i & 63)) & 1u);
}

/* The first endpoint at or after start (cyclically) that is not excluded; one must exist. */
static size_t next_free(const uint64_t *ex, size_t n, size_t start)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!is_excluded(ex, i))
            return i;
    }
    return start % n;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The value of cookie name in the request's Cookie fields; 0 when absent. */
static int cookie_find(const router_request_t *req, const char *name, str_t *value)
{
    size_t nl = strlen(name);
    for (uint32_t h = 0; h < req->header_count; h++) {
        if (!http1_name_eq(req->headers[h].name, "cookie"))
            continue;
        const char *s = req->headers[h].value.ptr, *end = s + req->headers[h].value.len;
        while (s != NULL && s < end) {
            while (s < end && (*s == ' ' || *s == '\t'))
                s++;
            const char *semi = memchr(s, ';', (size_t)(end - s));
            const char *pe = semi ? semi : end;
            const char *eq = memchr(s, '=', (size_t)(pe - s));
            if (eq != NULL && (size_t)(eq - s) == nl && memcmp(s, name, nl) == 0) {
                const char *v = eq + 1, *ve = pe;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
                    v++;
                    ve--;
                }
                *value = (str_t){v, (uint32_t)(ve - v)};
                return 1;
            }
            s = semi ? semi + 1 : end;
        }
    }
    return 0;
}

static int hash_key(const proxy_traffic_policy_t *p, const router_request_t *req, str_t *key)
{
    if (req == NULL)
        return 0;
    switch (p->hash_on) {
    case PROXY_HASH_HEADER: {
        if (p->hash_key == NULL)
            return 0;
        const http1_header_t *h = http1_header_find(req->headers, req->header_count, p->hash_key);
        if (h == NULL)
            return 0;
        *key = h->value;
        return 1;
    }
    case PROXY_HASH_COOKIE: return p->hash_key != NULL && cookie_find(req, p->hash_key, key);
    case PROXY_HASH_SOURCE_IP:
        if (req->source_ip == NULL || req->source_ip[0] == '\0')
            return 0;
        *key = str_of(req->source_ip);
        return 1;
    case PROXY_HASH_QUERY: return p->hash_key != NULL && query_find(req->query, p->hash_key, key);
    case PROXY_HASH_NONE: break;
    }
    return 0;
}

static int ring_pick(const router_cluster_t *cl, str_t key, const uint64_t *ex)
{
    uint64_t h = XXH3_64bits(key.ptr ? key.ptr : "", key.len);
    size_t lo = 0, hi = cl->ring_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cl->ring_hash[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < cl->ring_n; k++) {
        uint32_t e = cl->ring_endpoint[(lo + k) % cl->ring_n];
        if (!is_excluded(ex, e))
            return (int)e;
    }
    return (int)next_free(ex, cl->n_endpoints, 0);
}

int router_lb_pick(router_lb_t *lb, const router_request_t *req, uint64_t rnd, const uint64_t *excluded)
{
    const router_cluster_t *cl = lb ? lb->cluster : NULL;
    if (cl == NULL || cl->n_endpoints == 0)
        return -1;
    size_t n = cl->n_endpoints;
    if (excluded != NULL) {
        size_t i;
        for (i = 0; i < n && is_excluded(excluded, i); i++)
            ;
        if (i == n)
            excluded = NULL;
    }
    enum proxy_lb kind = cl->policy ? cl->policy->lb : PROXY_LB_UNSET;
    switch (kind) {
    case PROXY_LB_RANDOM: return (int)next_free(excluded, n, (size_t)(rnd % n));
    case PROXY_LB_LEAST_REQUEST: {
        size_t a = next_free(excluded, n, (size_t)(rnd % n));
        if (n == 1)
            return (int)a;
        size_t b = next_free(excluded, n, (a + 1 + (size_t)(mix64(rnd) % (n - 1))) % n);
        if (b == a)
            b = next_free(excluded, n, (a + 1) % n);
        if (b == a)
            return (int)a;
        /* fewer requests in flight per unit of weight wins; ties go to the first (random) choice */
        uint64_t ca = ((uint64_t)lb->active[a] + 1) * cl->endpoints[b].weight;
        uint64_t cb = ((uint64_t)lb->active[b] + 1) * cl->endpoints[a].weight;
        return (int)(cb < ca ? b : a);
    }
    case PROXY_LB_CONSISTENT_HASH: {
        str_t key;
        if (cl->ring_n > 0 && hash_key(cl->policy, req, &key))
            return ring_pick(cl, key, excluded);
        return (int)next_free(excluded, n, (size_t)(rnd % n));
    }
    case PROXY_LB_UNSET:
    case PROXY_LB_ROUND_ROBIN:
    case PROXY_LB_PASSTHROUGH: break;
    }
    if (lb->weighted) {
        /* smooth weighted round robin (as nginx): a fair interleaving that follows the weights */
        int64_t total = 0;
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (is_excluded(excluded, i))
                continue;
            lb->current_weight[i] += cl->endpoints[i].weight;
            total += cl->endpoints[i].weight;
            if (best == n || lb->current_weight[i] > lb->current_weight[best])
                best = i;
        }
        lb->current_weight[best] -= total;
        return (int)best;
    }
    size_t i = next_free(excluded, n, lb->rr_next % n);
    lb->rr_next = (uint32_t)((i + 1) % n);
    return (int)i;
}

void router_lb_begin(router_lb_t *lb, int endpoint)
{
    if (lb != NULL && lb->active != NULL && endpoint >= 0 && (size_t)endpoint < lb->cluster->n_endpoints)
        lb->active[endpoint]++;
}

void router_lb_end(router_lb_t *lb, int endpoint)
{
    if (lb != NULL && lb->active != NULL && endpoint >= 0 && (size_t)endpoint < lb->cluster->n_endpoints &&
        lb->active[endpoint] > 0)
        lb->active[endpoint]--;
}
