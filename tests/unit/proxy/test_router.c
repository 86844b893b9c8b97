/*
 * Unit tests for proxy/router: clusters and their endpoints (subsets,
 * port mapping, DNS, inbound), host lookup in every form, every match kind,
 * route order, the weighted split, redirects, rewrites, header operations,
 * direct responses, and each load-balancing policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "common/hostport.h"
#include "proxy/config.h"
#include "proxy/router.h"

static const char *const mesh =
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: p, namespace: default}\n"
    "spec:\n"
    "  inbound: {listen: 127.0.0.1:15006, forwardTo: 127.0.0.1:9080}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  ports: [{number: 9080, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints:\n"
    "  - {address: 127.0.0.1, ports: {http: 19081}, labels: {version: v1}}\n"
    "  - {address: 127.0.0.2, ports: {http: 19082}, labels: {version: v2}}\n"
    "  - {address: 127.0.0.3, labels: {version: v3}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  host: reviews\n"
    "  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\n"
    "  subsets:\n"
    "  - {name: v1, labels: {version: v1}}\n"
    "  - {name: v2, labels: {version: v2}}\n"
    "  - {name: v3, labels: {version: v3}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}\n"
    "  - {name: none, labels: {version: v9}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  http:\n"
    "  - name: jason\n"
    "    match: [{headers: {end-user: {exact: jason}}}]\n"
    "    route: [{destination: {host: reviews, subset: v2}}]\n"
    "  - name: hdr\n"
    "    match:\n"
    "    - headers: {x-pre: {prefix: ab}}\n"
    "    - headers: {x-re: {regex: 'v[0-9]+'}}\n"
    "    route: [{destination: {host: reviews, subset: v3}}]\n"
    "  - name: exact\n"
    "    match: [{uri: {exact: /exact}}]\n"
    "    route: [{destination: {host: reviews, subset: v1}}]\n"
    "  - name: icase\n"
    "    match: [{uri: {prefix: /Case}, ignoreUriCase: true}]\n"
    "    route: [{destination: {host: reviews, subset: v2}}]\n"
    "  - name: regex\n"
    "    match: [{uri: {regex: '/r[0-9]+'}}]\n"
    "    route: [{destination: {host: reviews, subset: v3}}]\n"
    "  - name: query\n"
    "    match: [{method: {exact: POST}, queryParams: {debug: {exact: '1'}, flag: {regex: 'on|yes'}}}]\n"
    "    route: [{destination: {host: reviews, subset: v1}}]\n"
    "  - name: without\n"
    "    match: [{uri: {prefix: /wo}, withoutHeaders: {x-skip: {prefix: ''}}}]\n"
    "    route: [{destination: {host: reviews, subset: v2}}]\n"
    "  - name: authority\n"
    "    match: [{uri: {prefix: /auth}, authority: {exact: 'reviews:9080'}}]\n"
    "    route: [{destination: {host: reviews, subset: v3}}]\n"
    "  - name: split\n"
    "    match: [{uri: {prefix: /split}}]\n"
    "    route:\n"
    "    - {destination: {host: reviews, subset: v1}, weight: 90}\n"
    "    - {destination: {host: reviews, subset: v2}, weight: 10}\n"
    "  - name: empty\n"
    "    match: [{uri: {prefix: /empty}}]\n"
    "    route: [{destination: {host: reviews, subset: none}}]\n"
    "  - name: all\n"
    "    match: [{uri: {prefix: /all}}]\n"
    "    route: [{destination: {host: reviews}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: ratings}\n"
    "spec:\n"
    "  hosts: [ratings]\n"
    "  ports: [{number: 9080, name: http, targetPort: 8080}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: ratings}\n"
    "spec:\n"
    "  hosts: [ratings]\n"
    "  http:\n"
    "  - match: [{uri: {exact: /old}}]\n"
    "    redirect: {uri: /new, authority: newhost, redirectCode: 302}\n"
    "  - match: [{uri: {prefix: /moved}}]\n"
    "    redirect: {scheme: https, port: 8443}\n"
    "  - match: [{uri: {exact: /health}}]\n"
    "    directResponse: {status: 200, body: {string: ok}}\n"
    "  - match: [{uri: {prefix: /api/v1/}}]\n"
    "    rewrite: {uri: /v2/}\n"
    "    route: [{destination: {host: ratings}}]\n"
    "  - match: [{uri: {exact: /whole}}, {uri: {regex: '/re/.*'}}]\n"
    "    rewrite: {uri: /replaced, authority: ratings.internal}\n"
    "    route: [{destination: {host: ratings}}]\n"
    "  - match: [{uri: {prefix: /hdr}}]\n"
    "    headers:\n"
    "      request: {set: {x-a: one}, add: {x-b: two}, remove: [x-c]}\n"
    "      response: {set: {x-r: r1}, remove: [server]}\n"
    "    route:\n"
    "    - destination: {host: ratings}\n"
    "      headers: {request: {set: {x-b: dest}, add: {x-d: d}}, response: {add: {x-r2: r2}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: details}\n"
    "spec:\n"
    "  hosts: [details]\n"
    "  ports: [{number: 80, name: http}, {number: 8080, name: alt}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: '::1', ports: {alt: 18080}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: dnssvc}\n"
    "spec:\n"
    "  hosts: [dnssvc]\n"
    "  ports: [{number: 7000, name: http}]\n"
    "  resolution: DNS\n"
    "  endpoints: [{address: localhost}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: ext}\n"
    "spec:\n"
    "  hosts: ['*.example.com']\n"
    "  ports: [{number: 80, name: http}]\n"
    "  resolution: NONE\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: svc2, namespace: other}\n"
    "spec:\n"
    "  hosts: [svc2.other.svc.cluster.local]\n"
    "  ports: [{number: 80, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.9}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: svc2, namespace: other}\n"
    "spec:\n"
    "  hosts: [svc2.other.svc.cluster.local]\n"
    "  http: [{route: [{destination: {host: svc2}}]}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: lbrr}\n"
    "spec:\n"
    "  hosts: [lbrr]\n"
    "  ports: [{number: 80, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1}, {address: 127.0.0.2}, {address: 127.0.0.3}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: lbw}\n"
    "spec:\n"
    "  hosts: [lbw]\n"
    "  ports: [{number: 80, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1, weight: 1}, {address: 127.0.0.2, weight: 3}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: lbrand}\n"
    "spec:\n"
    "  hosts: [lbrand]\n"
    "  ports: [{number: 80, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1}, {address: 127.0.0.2}, {address: 127.0.0.3}, {address: 127.0.0.4}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: lbrand}\n"
    "spec: {host: lbrand, trafficPolicy: {loadBalancer: {simple: RANDOM}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: lblr}\n"
    "spec:\n"
    "  hosts: [lblr]\n"
    "  ports: [{number: 80, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1}, {address: 127.0.0.2}, {address: 127.0.0.3}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: lblr}\n"
    "spec: {host: lblr, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: lbch}\n"
    "spec:\n"
    "  hosts: [lbch]\n"
    "  ports: [{number: 80, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1}, {address: 127.0.0.2}, {address: 127.0.0.3}, {address: 127.0.0.4},\n"
    "              {address: 127.0.0.5, weight: 2}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: lbch}\n"
    "spec:\n"
    "  host: lbch\n"
    "  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: X-User}}}\n"
    "  subsets:\n"
    "  - {name: cookie, labels: {}, trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: "
    "10s}}}}}\n"
    "  - {name: query, labels: {}, trafficPolicy: {loadBalancer: {consistentHash: {httpQueryParameterName: uid}}}}\n"
    "  - {name: src, labels: {}, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}}\n";

static proxy_config_t *cfg;
static router_t *rt;

static void on_msg(void *ctx, const char *m)
{
    if (ctx != NULL)
        fprintf(stderr, "config: %s\n", m);
}

static int setup(void **state)
{
    (void)state;
    cfg = proxy_config_load_string("t.yaml", mesh, strlen(mesh), on_msg, NULL, "");
    if (cfg == NULL)
        return -1;
    char err[256] = "";
    rt = router_create(cfg, err, sizeof(err));
    if (rt == NULL) {
        fprintf(stderr, "router_create: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    router_destroy(rt);
    proxy_config_destroy(cfg);
    return 0;
}

static str_t S(const char *s)
{
    return (str_t){s, (uint32_t)strlen(s)};
}

static router_request_t req_of(const char *authority, const char *method, const char *target, const http1_header_t *h,
                               uint32_t nh)
{
    router_request_t q;
    memset(&q, 0, sizeof(q));
    str_t a;
    int rc = router_split_target(S(target), &a, &q.path, &q.query);
    assert_int_equal(rc, 0);
    q.authority = a.len ? a : S(authority);
    q.method = S(method);
    q.headers = h;
    q.header_count = nh;
    q.source_ip = "10.0.0.1";
    return q;
}

static router_decision_t route(const char *authority, const char *target, const http1_header_t *h, uint32_t nh)
{
    router_request_t q = req_of(authority, "GET", target, h, nh);
    router_decision_t d;
    router_route(rt, &q, 0, &d);
    return d;
}

static const router_cluster_t *find_cluster(const char *name)
{
    for (size_t i = 0; i < router_cluster_count(rt); i++)
        if (strcmp(router_cluster(rt, i)->name, name) == 0)
            return router_cluster(rt, i);
    fail_msg("no cluster %s", name);
    return NULL;
}

static const char *cluster_name(const router_decision_t *d)
{
    return d->action == ROUTER_FORWARD && d->cluster ? d->cluster->name : "(none)";
}

/* ServiceEntry hosts are cluster names as written (Istio's), short or not */
#define RV(v) "outbound|9080|" v "|reviews"

/* ---- clusters ---- */

static void test_clusters(void **state)
{
    (void)state;
    const router_cluster_t *c = find_cluster(RV(""));
    assert_int_equal(c->n_endpoints, 3);
    assert_string_equal(c->endpoints[0].name, "127.0.0.1:19081");
    assert_string_equal(c->endpoints[1].name, "127.0.0.2:19082");
    assert_string_equal(c->endpoints[2].name, "127.0.0.3:9080");
    assert_int_equal(c->endpoints[0].weight, 1);
    assert_non_null(c->policy);
    assert_int_equal(c->policy->lb, PROXY_LB_LEAST_REQUEST);
    assert_ptr_equal(router_cluster(rt, c->index), c);

    c = find_cluster(RV("v2"));
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].name, "127.0.0.2:19082");
    assert_string_equal(c->subset->name, "v2");
    assert_int_equal(c->policy->lb, PROXY_LB_LEAST_REQUEST);
    c = find_cluster(RV("v3"));
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].name, "127.0.0.3:9080");
    assert_int_equal(c->policy->lb, PROXY_LB_RANDOM);
    assert_int_equal(find_cluster(RV("none"))->n_endpoints, 0);

    /* targetPort, IPv6, per-endpoint port by port name, DNS, NONE without endpoints */
    c = find_cluster("outbound|9080||ratings");
    assert_string_equal(c->endpoints[0].name, "127.0.0.1:8080");
    assert_null(c->policy);
    assert_string_equal(find_cluster("outbound|80||details")->endpoints[0].name, "[::1]:80");
    assert_string_equal(find_cluster("outbound|8080||details")->endpoints[0].name, "[::1]:18080");
    assert_string_equal(find_cluster("outbound|7000||dnssvc")->endpoints[0].name, "127.0.0.1:7000");
    assert_int_equal(find_cluster("outbound|80||*.example.com")->n_endpoints, 0);
    assert_string_equal(find_cluster("outbound|80||svc2.other.svc.cluster.local")->endpoints[0].name, "127.0.0.9:80");

    c = router_inbound(rt);
    assert_non_null(c);
    assert_string_equal(c->name, "inbound|9080||");
    assert_int_equal(c->n_endpoints, 1);
    assert_string_equal(c->endpoints[0].name, "127.0.0.1:9080");
    assert_null(c->service);
    assert_null(router_cluster(rt, router_cluster_count(rt)));
}

static void test_create_errors(void **state)
{
    (void)state;
    const char *text = "apiVersion: outrider.io/v1alpha1\n"
                       "kind: Proxy\n"
                       "metadata: {name: p}\n"
                       "spec: {}\n"
                       "---\n"
                       "apiVersion: networking.istio.io/v1\n"
                       "kind: ServiceEntry\n"
                       "metadata: {name: bad}\n"
                       "spec: {hosts: [bad], ports: [{number: 80, name: http}], resolution: DNS,\n"
                       "       endpoints: [{address: no-such-host.invalid}]}\n";
    proxy_config_t *c = proxy_config_load_string("t.yaml", text, strlen(text), on_msg, NULL, "");
    assert_non_null(c);
    char err[256] = "";
    router_t *r = router_create(c, err, sizeof(err));
    assert_null(r);
    assert_non_null(strstr(err, "no-such-host.invalid"));
    assert_null(router_inbound(NULL));
    router_destroy(NULL);
    proxy_config_destroy(c);
}

/* ---- targets and hosts ---- */

static void test_split_target(void **state)
{
    (void)state;
    str_t a, p, q;
    assert_int_equal(router_split_target(S("/p/x?a=1&b"), &a, &p, &q), 0);
    assert_int_equal(a.len, 0);
    assert_true(str_equal(p, S("/p/x")));
    assert_true(str_equal(q, S("a=1&b")));
    assert_int_equal(router_split_target(S("/"), &a, &p, &q), 0);
    assert_true(str_equal(p, S("/")));
    assert_int_equal(q.len, 0);
    assert_int_equal(router_split_target(S("http://Reviews:9080/r?x=1"), &a, &p, &q), 0);
    assert_true(str_equal(a, S("Reviews:9080")));
    assert_true(str_equal(p, S("/r")));
    assert_true(str_equal(q, S("x=1")));
    assert_int_equal(router_split_target(S("http://h"), &a, &p, &q), 0);
    assert_true(str_equal(a, S("h")));
    assert_true(str_equal(p, S("/")));
    assert_int_equal(router_split_target(S("http://h?q"), &a, &p, &q), 0);
    assert_true(str_equal(p, S("/")));
    assert_true(str_equal(q, S("q")));
    assert_int_equal(router_split_target(S("http://[::1]:80/x"), &a, &p, &q), 0);
    assert_true(str_equal(a, S("[::1]:80")));
    assert_int_equal(router_split_target(S("*"), &a, &p, &q), -1);
    assert_int_equal(router_split_target(S("reviews:9080"), &a, &p, &q), -1);
    assert_int_equal(router_split_target(S("http:///x"), &a, &p, &q), -1);
    assert_int_equal(router_split_target(S(""), &a, &p, &q), -1);
}

static void test_host_forms(void **state)
{
    (void)state;
    const char *forms[] = {"reviews",         "reviews:9080",        "REVIEWS.default.svc.cluster.local:9080",
                           "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local."};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        router_decision_t d = route(forms[i], "/all", NULL, 0);
        assert_int_equal(d.action, ROUTER_FORWARD);
        assert_string_equal(cluster_name(&d), RV(""));
        assert_non_null(d.vs);
        assert_string_equal(d.route->name, "all");
        assert_null(d.dest->destination.subset);
    }
    router_decision_t d = route("ignored", "http://reviews:9080/all", NULL, 0);
    assert_string_equal(cluster_name(&d), RV(""));

    assert_int_equal(route("nosuch", "/all", NULL, 0).action, ROUTER_NOT_FOUND);
    assert_int_equal(route("", "/all", NULL, 0).action, ROUTER_NOT_FOUND);
    assert_int_equal(route("reviews:x", "/all", NULL, 0).action, ROUTER_NOT_FOUND);
    assert_int_equal(route("reviews:99999", "/all", NULL, 0).action, ROUTER_NOT_FOUND);
    /* a VirtualService whose routes do not match: 404 NR, nothing reported */
    d = route("reviews", "/nothing", NULL, 0);
    assert_int_equal(d.action, ROUTER_NOT_FOUND);
    assert_null(d.vs);
    assert_null(d.cluster);

    /* names in another namespace: only qualified */
    assert_int_equal(route("svc2", "/", NULL, 0).action, ROUTER_NOT_FOUND);
    d = route("svc2.other", "/", NULL, 0);
    assert_string_equal(cluster_name(&d), "outbound|80||svc2.other.svc.cluster.local");
    d = route("svc2.other.svc.cluster.local:80", "/", NULL, 0);
    assert_string_equal(cluster_name(&d), "outbound|80||svc2.other.svc.cluster.local");

    /* ServiceEntry without VirtualService: the default route, port from the authority */
    d = route("details", "/x", NULL, 0);
    assert_int_equal(d.action, ROUTER_FORWARD);
    assert_null(d.vs);
    assert_null(d.route);
    assert_null(d.dest);
    assert_string_equal(cluster_name(&d), "outbound|80||details");
    d = route("details:8080", "/x", NULL, 0);
    assert_string_equal(cluster_name(&d), "outbound|8080||details");
    d = route("details:9999", "/x", NULL, 0);
    assert_string_equal(cluster_name(&d), "outbound|80||details");

    /* wildcard entry */
    d = route("api.Example.com", "/", NULL, 0);
    assert_string_equal(cluster_name(&d), "outbound|80||*.example.com");
    assert_int_equal(route("example.com", "/", NULL, 0).action, ROUTER_NOT_FOUND);
    d = route("[::1]:80", "/", NULL, 0);
    assert_int_equal(d.action, ROUTER_NOT_FOUND);
}

/* ---- namespaces: the sidecar reads Host headers in its own namespace ---- */

/*
 * The Proxy in namespace shop, written last; the other documents without a
 * namespace (so in shop) unless they say otherwise.
 */
static const char *const shop_mesh =
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  ports: [{number: 9080, name: http}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: reviews}\n"
    "spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: reviews}\n"
    "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v2}}]}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: details}\n"
    "spec: {hosts: [details], ports: [{number: 80, name: http}], resolution: STATIC,\n"
    "       endpoints: [{address: 127.0.0.3}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: ratings}\n"
    "spec: {hosts: [ratings.shop.svc.cluster.local], ports: [{number: 80, name: http}], resolution: STATIC,\n"
    "       endpoints: [{address: 127.0.0.4}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: dup-short}\n"
    "spec: {hosts: [dup], ports: [{number: 80, name: http}], resolution: STATIC, endpoints: [{address: 127.0.0.5}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: dup-fqdn}\n"
    "spec: {hosts: [dup.shop.svc.cluster.local], ports: [{number: 80, name: http}], resolution: STATIC,\n"
    "       endpoints: [{address: 127.0.0.6}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: svc, namespace: other}\n"
    "spec: {hosts: [svc.other.svc.cluster.local], ports: [{number: 80, name: http}], resolution: STATIC,\n"
    "       endpoints: [{address: 127.0.0.7}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: svc, namespace: other}\n"
    "spec: {hosts: [svc], http: [{route: [{destination: {host: svc}}]}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: legacy}\n"
    "spec: {hosts: [legacy], ports: [{number: 80, name: http}], resolution: STATIC, endpoints: [{address: "
    "127.0.0.8}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: legacy, namespace: default}\n"
    "spec: {hosts: [legacy], http: [{route: [{destination: {host: legacy}}]}]}\n"
    "---\n"
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: p, namespace: shop}\n"
    "spec: {}\n";

/* Route authority with router r: the cluster's name, "(none)" when not forwarded; *vs_name the VirtualService's. */
static const char *route_in(const router_t *r, const char *authority, const char **vs_name)
{
    router_request_t q = req_of(authority, "GET", "/", NULL, 0);
    router_decision_t d;
    router_route(r, &q, 0, &d);
    *vs_name = d.vs != NULL ? d.vs->meta.name : "-";
    return cluster_name(&d);
}

/* Original destinations (interceptionMode REDIRECT): virtual IPs, endpoint addresses, TCP ports, passthrough. */
static void test_original_destination(void **state)
{
    (void)state;
    static const char text[] =
        "apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p, namespace: shop}\n"
        "spec: {interceptionMode: REDIRECT}\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: shop}\n"
        "spec:\n  hosts: [reviews]\n  addresses: [10.96.0.0/16]\n"
        "  ports: [{number: 9080, name: http}, {number: 9443, name: https-x}]\n  resolution: STATIC\n"
        "  endpoints: [{address: 10.1.0.5, ports: {http: 19080}}]\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db, namespace: shop}\n"
        "spec:\n  hosts: [db]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n  resolution: STATIC\n"
        "  endpoints: [{address: 10.1.0.9}]\n";
    proxy_config_t *c = proxy_config_load_string("t.yaml", text, strlen(text), on_msg, NULL, "");
    assert_non_null(c);
    char err[256] = "";
    router_t *r = router_create(c, err, sizeof(err));
    assert_non_null(r);
    const router_cluster_t *pt = router_passthrough(r);
    assert_non_null(pt);
    assert_string_equal(pt->name, "PassthroughCluster");
    struct sockaddr_storage a;
    int bits;
    const char *host;
    uint32_t port;
    assert_int_equal(hostport_cidr_parse("10.96.3.4", &a, &bits), 0);
    ((struct sockaddr_in *)&a)->sin_port = htons(9080);
    assert_int_equal(router_service_for_addr(r, &a, &host, &port), 0); /* in the virtual IP range */
    assert_string_equal(host, "reviews");
    assert_int_equal(port, 9080);
    assert_null(router_tcp_cluster_for_addr(r, &a)); /* http */
    ((struct sockaddr_in *)&a)->sin_port = htons(9443);
    assert_non_null(router_tcp_cluster_for_addr(r, &a)); /* https-x: by the name's prefix */
    ((struct sockaddr_in *)&a)->sin_port = htons(9090);
    assert_int_equal(router_service_for_addr(r, &a, &host, &port), -1); /* no such port */
    assert_int_equal(hostport_cidr_parse("10.1.0.5", &a, &bits), 0);
    ((struct sockaddr_in *)&a)->sin_port = htons(19080);
    assert_int_equal(router_service_for_addr(r, &a, &host, &port), 0); /* the endpoint's own address and port */
    assert_string_equal(host, "reviews");
    assert_int_equal(port, 9080);
    ((struct sockaddr_in *)&a)->sin_port = htons(9080);
    assert_int_equal(router_service_for_addr(r, &a, &host, &port), -1); /* the endpoint listens on 19080 */
    assert_int_equal(hostport_cidr_parse("10.1.0.9", &a, &bits), 0);
    ((struct sockaddr_in *)&a)->sin_port = htons(5432);
    const router_cluster_t *db = router_tcp_cluster_for_addr(r, &a);
    assert_non_null(db);
    assert_string_equal(db->name, "outbound|5432||db");
    router_destroy(r);
    proxy_config_destroy(c);

    /* without REDIRECT there is no PassthroughCluster (nor its cluster slot) */
    c = proxy_config_load_string("t.yaml",
                                 "apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {}\n", 74,
                                 on_msg, NULL, "");
    assert_non_null(c);
    r = router_create(c, err, sizeof(err));
    assert_null(router_passthrough(r));
    assert_int_equal(router_cluster_count(r), 0);
    router_destroy(r);
    proxy_config_destroy(c);
}

static void test_namespace_hosts(void **state)
{
    (void)state;
    proxy_config_t *c = proxy_config_load_string("shop.yaml", shop_mesh, strlen(shop_mesh), on_msg, NULL, "");
    assert_non_null(c);
    assert_string_equal(c->proxy.meta.namespace, "shop");
    assert_string_equal(c->services[0].meta.namespace, "shop");
    char err[256] = "";
    router_t *r = router_create(c, err, sizeof(err));
    assert_non_null(r);
    const char *vs;

    /* the issue's forms: every way the app in shop can name reviews reaches its VirtualService */
    const char *reviews[] = {"reviews",
                             "reviews:9080",
                             "REVIEWS.shop",
                             "reviews.shop:9080",
                             "reviews.shop.svc",
                             "reviews.shop.svc.cluster.local:9080",
                             "reviews.shop.svc.cluster.local.",
                             "[reviews.shop.svc.cluster.local]:9080"};
    for (size_t i = 0; i < sizeof(reviews) / sizeof(reviews[0]); i++) {
        assert_string_equal(route_in(r, reviews[i], &vs), "outbound|9080|v2|reviews");
        assert_string_equal(vs, "reviews");
    }
    /* ... and the names of reviews in other namespaces do not */
    const char *elsewhere[] = {"reviews.default", "reviews.default.svc.cluster.local:9080", "reviews.other.svc",
                               "reviews.shop.svc.cluster", "reviews.svc.cluster.local"};
    for (size_t i = 0; i < sizeof(elsewhere) / sizeof(elsewhere[0]); i++)
        assert_string_equal(route_in(r, elsewhere[i], &vs), "(none)");

    /* a short entry host without a VirtualService: the same forms reach it, by its default route */
    const char *details[] = {"details", "details:80", "details.shop", "details.shop.svc",
                             "details.shop.svc.cluster.local"};
    for (size_t i = 0; i < sizeof(details) / sizeof(details[0]); i++) {
        assert_string_equal(route_in(r, details[i], &vs), "outbound|80||details");
        assert_string_equal(vs, "-");
    }
    assert_string_equal(route_in(r, "details.default", &vs), "(none)");

    /* an FQDN entry host in the sidecar's namespace: its short and partial names too */
    const char *ratings[] = {"ratings", "ratings.shop", "ratings.shop.svc", "Ratings.Shop.svc.cluster.local:80"};
    for (size_t i = 0; i < sizeof(ratings) / sizeof(ratings[0]); i++)
        assert_string_equal(route_in(r, ratings[i], &vs), "outbound|80||ratings.shop.svc.cluster.local");
    assert_string_equal(route_in(r, "ratings.default", &vs), "(none)");

    /* "dup" and "dup.shop.svc.cluster.local" are one name here: Istio's reading (the FQDN) wins */
    assert_string_equal(route_in(r, "dup", &vs), "outbound|80||dup.shop.svc.cluster.local");
    assert_string_equal(route_in(r, "dup.shop", &vs), "outbound|80||dup.shop.svc.cluster.local");

    /* another namespace's VirtualService: only qualified, its short host being relative to it */
    assert_string_equal(route_in(r, "svc", &vs), "(none)");
    assert_string_equal(route_in(r, "svc.other", &vs), "outbound|80||svc.other.svc.cluster.local");
    assert_string_equal(vs, "svc");
    assert_string_equal(route_in(r, "svc.other.svc.cluster.local", &vs), "outbound|80||svc.other.svc.cluster.local");

    /* a VirtualService placed in default: Host: legacy is the entry's default route, legacy.default its routes */
    assert_string_equal(route_in(r, "legacy", &vs), "outbound|80||legacy");
    assert_string_equal(vs, "-");
    assert_string_equal(route_in(r, "legacy.default", &vs), "outbound|80||legacy");
    assert_string_equal(vs, "legacy");
    router_destroy(r);
    proxy_config_destroy(c);
}

/* ---- matches ---- */

static const char *subset_of(const char *authority, const char *method, const char *target, const http1_header_t *h,
                             uint32_t nh)
{
    router_request_t q = req_of(authority, method, target, h, nh);
    router_decision_t d;
    router_route(rt, &q, 0, &d);
    if (d.action != ROUTER_FORWARD)
        return "404";
    return d.cluster->subset ? d.cluster->subset->name : "all";
}

#define H(n, v)                                                                                                        \
    {                                                                                                                  \
        {n, sizeof(n) - 1},                                                                                            \
        {                                                                                                              \
            v, sizeof(v) - 1                                                                                           \
        }                                                                                                              \
    }

static void test_matches(void **state)
{
    (void)state;
    http1_header_t jason[] = {H("Accept", "*/*"), H("End-User", "jason")};
    http1_header_t other[] = {H("end-user", "jasonx")};
    http1_header_t pre[] = {H("X-Pre", "abc")};
    http1_header_t pre_no[] = {H("X-Pre", "xab")};
    http1_header_t re[] = {H("x-re", "v12")};
    http1_header_t re_no[] = {H("x-re", "v12a")};
    http1_header_t skip[] = {H("X-Skip", "")};

    /* headers exact (name case-insensitive), route order: the first route wins */
    assert_string_equal(subset_of("reviews", "GET", "/exact", jason, 2), "v2");
    assert_string_equal(subset_of("reviews", "GET", "/exact", other, 1), "v1");
    /* prefix and regex headers; two matches ORed */
    assert_string_equal(subset_of("reviews", "GET", "/x", pre, 1), "v3");
    assert_string_equal(subset_of("reviews", "GET", "/x", pre_no, 1), "404");
    assert_string_equal(subset_of("reviews", "GET", "/x", re, 1), "v3");
    assert_string_equal(subset_of("reviews", "GET", "/x", re_no, 1), "404");
    /* uri exact */
    assert_string_equal(subset_of("reviews", "GET", "/exact", NULL, 0), "v1");
    assert_string_equal(subset_of("reviews", "GET", "/exact?q=1", NULL, 0), "v1");
    assert_string_equal(subset_of("reviews", "GET", "/exact/", NULL, 0), "404");
    assert_string_equal(subset_of("reviews", "GET", "/EXACT", NULL, 0), "404");
    /* uri prefix with ignoreUriCase */
    assert_string_equal(subset_of("reviews", "GET", "/case/x", NULL, 0), "v2");
    assert_string_equal(subset_of("reviews", "GET", "/CASE", NULL, 0), "v2");
    assert_string_equal(subset_of("reviews", "GET", "/cas", NULL, 0), "404");
    /* uri regex: whole path only, the query is not part of it */
    assert_string_equal(subset_of("reviews", "GET", "/r42", NULL, 0), "v3");
    assert_string_equal(subset_of("reviews", "GET", "/r42?x=y", NULL, 0), "v3");
    assert_string_equal(subset_of("reviews", "GET", "/r42x", NULL, 0), "404");
    assert_string_equal(subset_of("reviews", "GET", "/xr42", NULL, 0), "404");
    /* method and queryParams, ANDed */
    assert_string_equal(subset_of("reviews", "POST", "/q?debug=1&flag=on", NULL, 0), "v1");
    assert_string_equal(subset_of("reviews", "POST", "/q?flag=yes&x&debug=1", NULL, 0), "v1");
    assert_string_equal(subset_of("reviews", "GET", "/q?debug=1&flag=on", NULL, 0), "404");
    assert_string_equal(subset_of("reviews", "POST", "/q?debug=10&flag=on", NULL, 0), "404");
    assert_string_equal(subset_of("reviews", "POST", "/q?debug=1&flag=onx", NULL, 0), "404");
    assert_string_equal(subset_of("reviews", "POST", "/q?debug=1", NULL, 0), "404");
    assert_string_equal(subset_of("reviews", "POST", "/q?debug&flag=on", NULL, 0), "404");
    assert_string_equal(subset_of("reviews", "POST", "/q", NULL, 0), "404");
    /* withoutHeaders */
    assert_string_equal(subset_of("reviews", "GET", "/wo", NULL, 0), "v2");
    assert_string_equal(subset_of("reviews", "GET", "/wo", skip, 1), "404");
    /* authority, as sent */
    assert_string_equal(subset_of("reviews:9080", "GET", "/auth", NULL, 0), "v3");
    assert_string_equal(subset_of("reviews", "GET", "/auth", NULL, 0), "404");

    router_request_t q = req_of("reviews", "GET", "/exact", NULL, 0);
    router_decision_t d;
    router_route(rt, &q, 0, &d);
    assert_non_null(d.match);
    assert_int_equal(d.match->uri.kind, PROXY_MATCH_EXACT);
}

static void test_weighted_split(void **state)
{
    (void)state;
    router_request_t q = req_of("reviews", "GET", "/split", NULL, 0);
    int v1 = 0, v2 = 0;
    for (uint32_t rnd = 0; rnd < 100; rnd++) {
        router_decision_t d;
        router_route(rt, &q, rnd + 100 * 7, &d);
        assert_int_equal(d.action, ROUTER_FORWARD);
        if (strcmp(d.cluster->name, RV("v1")) == 0)
            v1++;
        else if (strcmp(d.cluster->name, RV("v2")) == 0)
            v2++;
    }
    assert_int_equal(v1, 90);
    assert_int_equal(v2, 10);

    /* a subset no endpoint carries: forwarded to a cluster without endpoints (503 UH upstream) */
    router_decision_t d = route("reviews", "/empty", NULL, 0);
    assert_int_equal(d.action, ROUTER_FORWARD);
    assert_int_equal(d.cluster->n_endpoints, 0);
    router_lb_t lb;
    router_lb_init(&lb, d.cluster);
    assert_int_equal(router_lb_pick(&lb, &q, 1, NULL), -1);
    router_lb_dispose(&lb);
}

/* ---- redirect, direct response, rewrite ---- */

static void test_redirect_direct(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    router_request_t q = req_of("ratings:9080", "GET", "/old?a=1", NULL, 0);
    router_decision_t d;
    router_route(rt, &q, 0, &d);
    assert_int_equal(d.action, ROUTER_REDIRECT);
    assert_int_equal(d.route->redirect_code, 302);
    router_redirect_location(&d, &q, &b);
    assert_string_equal(b.data, "http://newhost/new?a=1");
    buf_dispose(&b);

    q = req_of("ratings:9080", "GET", "/moved/x", NULL, 0);
    router_route(rt, &q, 0, &d);
    assert_int_equal(d.action, ROUTER_REDIRECT);
    assert_int_equal(d.route->redirect_code, 301);
    router_redirect_location(&d, &q, &b);
    assert_string_equal(b.data, "https://ratings:8443/moved/x");
    buf_dispose(&b);

    q = req_of("[::1]:80", "GET", "/moved", NULL, 0);
    router_redirect_location(&d, &q, &b);
    assert_string_equal(b.data, "https://[::1]:8443/moved");
    buf_dispose(&b);

    q = req_of("ratings", "GET", "/health", NULL, 0);
    router_route(rt, &q, 0, &d);
    assert_int_equal(d.action, ROUTER_DIRECT);
    assert_int_equal(d.route->direct_status, 200);
    assert_string_equal(d.route->direct_body, "ok");
}

static const char *rewritten(const char *target, buf_t *b)
{
    router_request_t q = req_of("ratings", "GET", target, NULL, 0);
    router_decision_t d;
    router_route(rt, &q, 0, &d);
    assert_int_equal(d.action, ROUTER_FORWARD);
    b->len = 0;
    router_rewrite_target(&d, &q, b);
    return b->data;
}

static void test_rewrite(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    assert_string_equal(rewritten("/api/v1/items?x=1", &b), "/v2/items?x=1");
    assert_string_equal(rewritten("/api/v1/", &b), "/v2/");
    assert_string_equal(rewritten("/whole?k", &b), "/replaced?k");
    assert_string_equal(rewritten("/re/deep/path", &b), "/replaced");
    assert_string_equal(rewritten("/hdr/a?b=c", &b), "/hdr/a?b=c");
    buf_dispose(&b);

    /* the default route leaves the target alone */
    router_request_t q = req_of("details", "GET", "/d?x", NULL, 0);
    router_decision_t d;
    router_route(rt, &q, 0, &d);
    router_rewrite_target(&d, &q, &b);
    assert_string_equal(b.data, "/d?x");
    buf_dispose(&b);
}

static int field_is(const http1_header_t *h, const char *name, const char *value)
{
    return str_equal(h->name, S(name)) && str_equal(h->value, S(value));
}

static void test_header_ops(void **state)
{
    (void)state;
    http1_header_t in[] = {H("Host", "ratings"), H("X-A", "old1"), H("x-c", "gone"),
                           H("X-B", "orig"),     H("x-a", "old2"), H("Accept", "*/*")};
    router_request_t q = req_of("ratings", "GET", "/hdr", in, 6);
    router_decision_t d;
    router_route(rt, &q, 0, &d);
    assert_int_equal(d.action, ROUTER_FORWARD);
    http1_header_t out[16];
    uint32_t n = router_request_headers(&d, in, 6, out, 16);
    /* route: remove x-c, set x-a, add x-b; destination: set x-b (replaces both), add x-d */
    assert_int_equal(n, 5);
    assert_true(field_is(&out[0], "Host", "ratings"));
    assert_true(field_is(&out[1], "Accept", "*/*"));
    assert_true(field_is(&out[2], "x-a", "one"));
    assert_true(field_is(&out[3], "x-b", "dest"));
    assert_true(field_is(&out[4], "x-d", "d"));
    /* too small: the count says how many are needed */
    assert_int_equal(router_request_headers(&d, in, 6, out, 2), 5);
    assert_true(field_is(&out[1], "Accept", "*/*"));

    http1_header_t rin[] = {H("Server", "app"), H("X-R", "x"), H("Content-Length", "2")};
    n = router_response_headers(&d, rin, 3, out, 16);
    assert_int_equal(n, 3);
    assert_true(field_is(&out[0], "Content-Length", "2"));
    assert_true(field_is(&out[1], "x-r", "r1"));
    assert_true(field_is(&out[2], "x-r2", "r2"));

    /* rewrite.authority replaces Host in place, or adds it */
    q = req_of("ratings", "GET", "/whole", in, 6);
    router_route(rt, &q, 0, &d);
    n = router_request_headers(&d, in, 6, out, 16);
    assert_int_equal(n, 6);
    assert_true(field_is(&out[0], "Host", "ratings.internal"));
    assert_true(field_is(&out[2], "x-c", "gone"));
    n = router_request_headers(&d, in + 1, 2, out, 16);
    assert_int_equal(n, 3);
    assert_true(field_is(&out[2], "host", "ratings.internal"));

    /* no operations: copied */
    d = route("details", "/", NULL, 0);
    assert_int_equal(router_request_headers(&d, in, 6, out, 16), 6);
    assert_true(field_is(&out[3], "X-B", "orig"));
}

/* ---- load balancing ---- */

static const router_cluster_t *default_cluster(const char *host)
{
    router_decision_t d = route(host, "/", NULL, 0);
    assert_int_equal(d.action, ROUTER_FORWARD);
    return d.cluster;
}

static void test_lb_round_robin(void **state)
{
    (void)state;
    router_lb_t lb;
    router_request_t q = req_of("lbrr", "GET", "/", NULL, 0);
    router_lb_init(&lb, default_cluster("lbrr"));
    assert_false(lb.weighted);
    for (int i = 0; i < 9; i++)
        assert_int_equal(router_lb_pick(&lb, &q, 12345, NULL), i % 3);
    /* excluded endpoints are skipped */
    uint64_t ex[ROUTER_MAX_ENDPOINTS / 64] = {0};
    ex[0] = 1u << 1;
    for (int i = 0; i < 6; i++)
        assert_int_not_equal(router_lb_pick(&lb, &q, 0, ex), 1);
    /* every endpoint excluded: exclusion ignored */
    ex[0] = 7;
    int seen[3] = {0};
    for (int i = 0; i < 3; i++)
        seen[router_lb_pick(&lb, &q, 0, ex)]++;
    assert_int_equal(seen[0] + seen[1] + seen[2], 3);
    assert_int_equal(seen[0], 1);
    router_lb_dispose(&lb);
}

static void test_lb_weighted(void **state)
{
    (void)state;
    router_lb_t lb;
    router_lb_init(&lb, default_cluster("lbw"));
    assert_true(lb.weighted);
    int count[2] = {0};
    int run = 0, max_run = 0, last = -1;
    for (int i = 0; i < 400; i++) {
        int e = router_lb_pick(&lb, NULL, 0, NULL);
        assert_true(e == 0 || e == 1);
        count[e]++;
        run = e == last ? run + 1 : 1;
        last = e;
        if (run > max_run)
            max_run = run;
    }
    assert_int_equal(count[0], 100);
    assert_int_equal(count[1], 300);
    assert_true(max_run <= 3); /* smooth: interleaved, not 300 in a row */
    uint64_t ex[ROUTER_MAX_ENDPOINTS / 64] = {2};
    for (int i = 0; i < 4; i++)
        assert_int_equal(router_lb_pick(&lb, NULL, 0, ex), 0);
    router_lb_dispose(&lb);
}

static void test_lb_random(void **state)
{
    (void)state;
    router_lb_t lb;
    router_lb_init(&lb, default_cluster("lbrand"));
    int seen[4] = {0};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 400; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int e = router_lb_pick(&lb, NULL, x, NULL);
        assert_true(e >= 0 && e < 4);
        seen[e]++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(seen[i] > 40);
    uint64_t ex[ROUTER_MAX_ENDPOINTS / 64] = {0xe};
    for (uint64_t r = 0; r < 16; r++)
        assert_int_equal(router_lb_pick(&lb, NULL, r, ex), 0);
    router_lb_dispose(&lb);
}

static void test_lb_least_request(void **state)
{
    (void)state;
    router_lb_t lb;
    router_lb_init(&lb, default_cluster("lblr"));
    /* all idle: spreads over every endpoint */
    int seen[3] = {0};
    for (uint64_t r = 0; r < 300; r++)
        seen[router_lb_pick(&lb, NULL, r * 2654435761u, NULL)]++;
    for (int i = 0; i < 3; i++)
        assert_true(seen[i] > 30);
    /* endpoints 0 and 1 busy: whenever 2 is one of the two choices it wins, and it never loses */
    for (int i = 0; i < 5; i++) {
        router_lb_begin(&lb, 0);
        router_lb_begin(&lb, 1);
    }
    memset(seen, 0, sizeof(seen));
    for (uint64_t r = 0; r < 300; r++)
        seen[router_lb_pick(&lb, NULL, r * 2654435761u, NULL)]++;
    assert_true(seen[2] >= 150);
    /* with two endpoints excluded the third serves even though busy */
    router_lb_begin(&lb, 2);
    router_lb_begin(&lb, 2);
    router_lb_begin(&lb, 2);
    router_lb_begin(&lb, 2);
    router_lb_begin(&lb, 2);
    router_lb_begin(&lb, 2);
    uint64_t ex[ROUTER_MAX_ENDPOINTS / 64] = {3};
    for (uint64_t r = 0; r < 10; r++)
        assert_int_equal(router_lb_pick(&lb, NULL, r, ex), 2);
    /* 2 is now the busiest of three: it never wins a comparison */
    for (uint64_t r = 0; r < 100; r++)
        assert_int_not_equal(router_lb_pick(&lb, NULL, r * 2654435761u, NULL), 2);
    for (int i = 0; i < 10; i++)
        router_lb_end(&lb, 2);
    router_lb_end(&lb, -1);
    router_lb_end(&lb, 99);
    assert_int_equal(lb.active[2], 0);
    router_lb_dispose(&lb);

    /* two candidates (the third excluded), one idle: the idle one always wins */
    router_lb_init(&lb, find_cluster(RV("")));
    router_lb_begin(&lb, 0);
    ex[0] = 4;
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(router_lb_pick(&lb, NULL, r * 7919, ex), 1);
    router_lb_dispose(&lb);
}

static int ch_pick(router_lb_t *lb, const char *authority, const char *target, const http1_header_t *h, uint32_t nh,
                   const char *src, uint64_t rnd)
{
    router_request_t q = req_of(authority, "GET", target, h, nh);
    q.source_ip = src;
    return router_lb_pick(lb, &q, rnd, NULL);
}

static void test_lb_consistent_hash(void **state)
{
    (void)state;
    const router_cluster_t *c = default_cluster("lbch");
    assert_int_equal(c->policy->lb, PROXY_LB_CONSISTENT_HASH);
    assert_true(c->ring_n >= 450);
    for (size_t i = 1; i < c->ring_n; i++)
        assert_true(c->ring_hash[i - 1] <= c->ring_hash[i]);
    router_lb_t lb;
    router_lb_init(&lb, c);
    int seen[5] = {0};
    for (int u = 0; u < 200; u++) {
        char v[32];
        snprintf(v, sizeof(v), "user-%d", u);
        http1_header_t h[] = {{S("x-user"), S(v)}};
        int e = ch_pick(&lb, "lbch", "/", h, 1, NULL, (uint64_t)u);
        assert_true(e >= 0 && e < 5);
        for (uint64_t r = 0; r < 5; r++)
            assert_int_equal(ch_pick(&lb, "lbch", "/", h, 1, NULL, r * 31), e);
        seen[e]++;
    }
    for (int i = 0; i < 5; i++)
        assert_true(seen[i] >= 10);
    assert_true(seen[4] > seen[0]); /* weight 2 */

    /* excluded: the next endpoint on the ring, always the same; all excluded: the usual one */
    http1_header_t h[] = {H("X-User", "alice")};
    int e = ch_pick(&lb, "lbch", "/", h, 1, NULL, 0);
    uint64_t ex[ROUTER_MAX_ENDPOINTS / 64] = {(uint64_t)1 << e};
    router_request_t q = req_of("lbch", "GET", "/", h, 1);
    int e2 = router_lb_pick(&lb, &q, 1, ex);
    assert_int_not_equal(e2, e);
    assert_int_equal(router_lb_pick(&lb, &q, 2, ex), e2);
    ex[0] = 0x1f;
    assert_int_equal(router_lb_pick(&lb, &q, 3, ex), e);

    /* no key: random */
    memset(seen, 0, sizeof(seen));
    for (uint64_t r = 0; r < 50; r++)
        seen[ch_pick(&lb, "lbch", "/", NULL, 0, NULL, r)]++;
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 10);
    router_lb_dispose(&lb);

    /* cookie, query parameter and source address keys */
    router_lb_init(&lb, find_cluster("outbound|80|cookie|lbch"));
    http1_header_t ck1[] = {H("Cookie", "a=b; user=bob; c=d")};
    http1_header_t ck2[] = {H("cookie", "user=bob")};
    http1_header_t ck3[] = {H("cookie", "user=\"bob\"")};
    e = ch_pick(&lb, "lbch", "/", ck1, 1, NULL, 0);
    for (uint64_t r = 1; r < 20; r++) {
        assert_int_equal(ch_pick(&lb, "lbch", "/", ck1, 1, NULL, r), e);
        assert_int_equal(ch_pick(&lb, "lbch", "/", ck2, 1, NULL, r), e);
        assert_int_equal(ch_pick(&lb, "lbch", "/", ck3, 1, NULL, r), e);
    }
    router_lb_dispose(&lb);
    router_lb_init(&lb, find_cluster("outbound|80|query|lbch"));
    e = ch_pick(&lb, "lbch", "/?x=1&uid=42", NULL, 0, NULL, 0);
    for (uint64_t r = 1; r < 20; r++)
        assert_int_equal(ch_pick(&lb, "lbch", "/p?uid=42", NULL, 0, NULL, r), e);
    router_lb_dispose(&lb);
    router_lb_init(&lb, find_cluster("outbound|80|src|lbch"));
    e = ch_pick(&lb, "lbch", "/", NULL, 0, "10.1.2.3", 0);
    for (uint64_t r = 1; r < 20; r++)
        assert_int_equal(ch_pick(&lb, "lbch", "/", NULL, 0, "10.1.2.3", r), e);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < 100; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 10, i % 10);
        seen[ch_pick(&lb, "lbch", "/", NULL, 0, ip, 0)]++;
    }
    int used = 0;
    for (int i = 0; i < 5; i++)
        used += seen[i] > 0;
    assert_true(used >= 4);
    router_lb_dispose(&lb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_original_destination),
        cmocka_unit_test(test_clusters),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_split_target),
        cmocka_unit_test(test_host_forms),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_weighted_split),
        cmocka_unit_test(test_redirect_direct),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_header_ops),
        cmocka_unit_test(test_lb_round_robin),
        cmocka_unit_test(test_lb_weighted),
        cmocka_unit_test(test_lb_random),
        cmocka_unit_test(test_lb_least_request),
        cmocka_unit_test(test_lb_consistent_hash),
        cmocka_unit_test(test_namespace_hosts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
