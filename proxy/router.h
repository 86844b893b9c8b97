/*
 * router: from a request's authority, path and headers to a decision
 * (forward to a cluster, redirect, direct response, or 404 NR), and the
 * load balancers that pick an endpoint of a cluster.
 *
 * Model (Envoy's, as Istio generates it). A router is built once from a
 * loaded proxy_config_t and is immutable afterwards, so every worker
 * thread reads it without locks; a reload builds a new one. It owns:
 *   - clusters: one per (ServiceEntry, subset or all endpoints, service
 *     port) that some route or default route can reach, named as Envoy
 *     names them ("outbound|9080|v1|reviews.default.svc.cluster.local"),
 *     plus the inbound cluster ("inbound|PORT||") when spec.inbound is set.
 *     A cluster lists its endpoints' socket addresses and carries its
 *     effective traffic policy (the subset's merged one, else the rule's);
 *   - per host of every VirtualService and ServiceEntry, what serves it.
 *
 * Host selection (outbound). The authority (Host header, or the authority
 * of an absolute-form target) is split into name and optional port; the
 * name is read in the sidecar's namespace (the Proxy document's), as the
 * app's DNS search path would: its forms (proxy_host_forms with dns_forms;
 * in namespace shop, "reviews" is "reviews.shop.svc.cluster.local" then
 * the short entry host "reviews"; "reviews.other" is
 * "reviews.other.svc.cluster.local") are matched case-insensitively against
 * VirtualService hosts first (their short names expanded with the
 * VirtualService's own namespace, "*.x" suffix wildcards allowed), then
 * against ServiceEntry hosts (as written). A VirtualService's
 * http routes are tried in order and the first whose match block matches
 * (any of its matches; no match block = every request) wins; no route
 * matching is 404 NR, as in Envoy. Without a VirtualService, the
 * ServiceEntry's endpoints all serve (the default route), on the port
 * named by the authority, or the entry's only port, or its first port.
 * A trailing dot and IPv6 brackets are ignored; an authority with a
 * malformed port is not routed.
 *
 * Matching is Istio's: uri/method/authority StringMatch (exact, prefix,
 * whole-string regex); ignoreUriCase for exact and prefix uri; headers
 * (all must match; the name lowercased; a header absent never matches),
 * withoutHeaders (none may match), queryParams (exact or regex on the
 * value as sent; a parameter absent never matches).
 *
 * Weighted destinations: a route's destinations are picked by weight with
 * the caller's random number (rnd % 100 against the running sum).
 *
 * Load balancing is per worker: router_lb_t holds the mutable state of one
 * cluster (round-robin cursor, smooth weighted round robin when endpoint
 * weights differ, requests in flight per endpoint for LEAST_REQUEST:
 * Envoy's power of two choices). Consistent hashing uses a ring built at
 * router creation (several points per endpoint, scaled by weight); the key
 * is the header value, cookie value, source IP or query parameter value;
 * a request without the key falls back to a random endpoint, as Envoy
 * does. An `excluded` bitmap lets retries avoid endpoints already tried;
 * when every endpoint is excluded the exclusion is ignored.
 */
#ifndef OUTRIDER_PROXY_ROUTER_H
#define OUTRIDER_PROXY_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "http1.h"

#define ROUTER_MAX_ENDPOINTS 4096   /* per cluster; the excluded bitmap's size */
#define ROUTER_REGEX_MAX_BYTES 8192 /* longest path, header or query value a regex match looks at; longer: no match */

typedef struct router_endpoint {
    struct sockaddr_storage addr;
    char name[64];              /* "127.0.0.1:19081" ("[::1]:80" for IPv6) */
    const proxy_endpoint_t *ep; /* labels (version...), NULL for the inbound cluster */
    uint32_t weight;            /* endpoint weight, 1 when unset */
} router_endpoint_t;

typedef struct router_cluster {
    uint32_t index;                       /* position in router_t's cluster array */
    const char *name;                     /* Envoy-style name, see above */
    const proxy_service_entry_t *service; /* NULL for the inbound cluster */
    const char *host;                     /* FQDN of the service (its first host), "" for inbound */
    const proxy_subset_t *subset;         /* NULL = every endpoint */
    uint32_t port;                        /* service port number (inbound: the forwardTo port) */
    const proxy_traffic_policy_t *policy; /* effective policy; NULL = defaults (round robin) */
    router_endpoint_t *endpoints;
    size_t n_endpoints; /* may be 0: a subset no endpoint carries (then 503 UH) */
    /* consistent hash ring (policy lb CONSISTENT_HASH only), sorted by hash */
    uint64_t *ring_hash;
    uint32_t *ring_endpoint;
    size_t ring_n;
} router_cluster_t;

typedef struct router router_t;

/*
 * Build the router for cfg (which must outlive it). Endpoint addresses
 * must be IP literals (STATIC resolution) or names resolved now with
 * getaddrinfo (DNS, NONE; the first IPv4 answer, else the first IPv6 one);
 * an address that does not resolve is an error. A DNS entry without
 * endpoints uses its non-wildcard hosts as endpoint addresses, as Istio
 * does; a NONE entry without endpoints gets clusters with no endpoint.
 * Endpoint port: the endpoint's ports[port name], else the port's
 * targetPort, else its number. Returns the router (router_destroy), or
 * NULL with a reason in err.
 */
router_t *router_create(const proxy_config_t *cfg, char *err, size_t errlen);
void router_destroy(router_t *r);

size_t router_cluster_count(const router_t *r);
const router_cluster_t *router_cluster(const router_t *r, size_t index);
/* The inbound cluster (spec.inbound.forwardTo), or NULL without inbound. */
const router_cluster_t *router_inbound(const router_t *r);
/*
 * With spec.interceptionMode REDIRECT: Istio's "PassthroughCluster", for
 * redirected requests to a destination no service claims (ALLOW_ANY). Its
 * one endpoint is a placeholder: the exchange connects to the request's
 * original destination. NULL otherwise.
 */
const router_cluster_t *router_passthrough(const router_t *r);
/*
 * The service a redirected connection's original destination belongs to:
 * one whose ServiceEntry `addresses` hold the IP, with a port of that
 * number, else one with an endpoint at exactly that address and port.
 * Sets *host (the entry's first host) and *port (the service port) and
 * returns 0; -1 when none.
 */
int router_service_for_addr(const router_t *r, const struct sockaddr_storage *addr, const char **host, uint32_t *port);
/*
 * The same service's cluster (all its endpoints) when that port is not
 * HTTP: its protocol TCP, TLS, HTTPS, MONGO, MYSQL or REDIS, or, with no
 * protocol, its name's prefix one of those ("tcp-db"), as Istio selects
 * protocols. Such connections are proxied as bytes (tcp_proxy.c). NULL
 * otherwise.
 */
const router_cluster_t *router_tcp_cluster_for_addr(const router_t *r, const struct sockaddr_storage *addr);
/*
 * Whether some service has an HTTP port of this number (any address): a
 * redirected connection to an unknown destination on such a port is taken
 * as HTTP (routed by Host, else passed through as HTTP), on any other port
 * as TCP, as Istio's port listeners and its virtual outbound listener do.
 */
bool router_http_port(const router_t *r, uint32_t port);

/* The parts of a request the router looks at; slices are not copied. */
typedef struct router_request {
    str_t method;    /* "GET" */
    str_t path;      /* the path of the target, without query (origin form: starts with '/') */
    str_t query;     /* after '?', without it; empty when none */
    str_t authority; /* Host header value or the absolute-form authority; may carry ":port" */
    const http1_header_t *headers;
    uint32_t header_count;
    const char *source_ip; /* the downstream peer's address, for consistentHash useSourceIp */
} router_request_t;

/* Split an HTTP/1.1 request-target into path and query (origin form) or authority, path and query (absolute form).
 * Returns 0, or -1 for a target it cannot route (asterisk or authority form). authority is left empty for origin
 * form. */
int router_split_target(str_t target, str_t *authority, str_t *path, str_t *query);

enum router_action {
    ROUTER_NOT_FOUND, /* no host or no route: 404, flag NR */
    ROUTER_FORWARD,   /* send to decision.cluster */
    ROUTER_REDIRECT,  /* answer decision.route->redirect_code with a Location (router_redirect_location) */
    ROUTER_DIRECT,    /* answer decision.route->direct_status with direct_body */
};

typedef struct router_decision {
    enum router_action action;
    const proxy_virtual_service_t *vs;     /* NULL when the default route served (or not found) */
    const proxy_http_route_t *route;       /* NULL when the default route served (or not found) */
    const proxy_http_match_t *match;       /* the match that matched, NULL when the route has no match block */
    const proxy_route_destination_t *dest; /* the weighted pick; NULL for the default route */
    const router_cluster_t *cluster;       /* ROUTER_FORWARD */
} router_decision_t;

/*
 * Route a request; rnd is a random number for the weighted pick. Always
 * fills *out; vs, route, match, dest are all NULL when the action is
 * ROUTER_NOT_FOUND. Allocates nothing; safe from any thread.
 */
void router_route(const router_t *r, const router_request_t *req, uint32_t rnd, router_decision_t *out);

/*
 * The Location of a ROUTER_REDIRECT, always absolute:
 * scheme "://" authority [":" port] path ["?" query]. Istio's rules:
 * redirect.uri replaces the whole path, redirect.authority the request's
 * authority, redirect.scheme the scheme ("http" when not given),
 * redirect.port the authority's port (any port in it is dropped first);
 * the query is kept unless redirect.uri carries its own. Appended to out
 * (NUL-terminated).
 */
void router_redirect_location(const router_decision_t *d, const router_request_t *req, buf_t *out);

/*
 * The path to send upstream: with rewrite.uri, the matched prefix is
 * replaced when the match was a uri prefix, else the whole path; the query
 * is appended again ("?q"). Without rewrite, path and query unchanged.
 * Appended to out (NUL-terminated).
 */
void router_rewrite_target(const router_decision_t *d, const router_request_t *req, buf_t *out);

/*
 * Request header operations of the decision (route level, then the
 * destination's): remove, then set (replaces every field of that name),
 * then add (appends). rewrite.authority replaces the Host field. The
 * result is written to out, at most cap entries; values it creates point
 * into the config, which outlives the request. Set and add fields are
 * appended after the kept input fields; the Host field is replaced in place
 * (appended when absent). Returns the number of fields of the result, like
 * snprintf: when it exceeds cap, only the first cap were written and the
 * caller should retry with a larger array (or answer an error).
 */
uint32_t router_request_headers(const router_decision_t *d, const http1_header_t *in, uint32_t n, http1_header_t *out,
                                uint32_t cap);

/* The same for the response headers (route level, then destination's headers.response). */
uint32_t router_response_headers(const router_decision_t *d, const http1_header_t *in, uint32_t n, http1_header_t *out,
                                 uint32_t cap);

/* ---- load balancing (per worker) ---- */

typedef struct router_lb {
    const router_cluster_t *cluster;
    uint32_t rr_next;
    int64_t *current_weight; /* smooth weighted round robin, n_endpoints entries */
    uint32_t *active;        /* requests in flight per endpoint (router_lb_begin / router_lb_end) */
    bool weighted;           /* endpoint weights differ */
} router_lb_t;

void router_lb_init(router_lb_t *lb, const router_cluster_t *cl);
void router_lb_dispose(router_lb_t *lb);

/*
 * Pick an endpoint for req: its index, or -1 when the cluster has no
 * endpoint. rnd: a fresh random number per call. excluded: bitmap of
 * endpoint indexes to avoid (retries), or NULL.
 */
int router_lb_pick(router_lb_t *lb, const router_request_t *req, uint64_t rnd, const uint64_t *excluded);

/* Bookkeeping of requests in flight, for LEAST_REQUEST. */
void router_lb_begin(router_lb_t *lb, int endpoint);
void router_lb_end(router_lb_t *lb, int endpoint);

#endif
