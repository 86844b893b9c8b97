/*
 * Unit tests for proxy/config: a full mesh in all three Istio apiVersions
 * loads into the expected model; each class of error gives its exact
 * message at the right line:col; all errors are reported; warnings for
 * fields that are parsed but not enforced yet; the JSON dump.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hostport.h"
#include "proxy/config.h"
#include "proxy/config_json.h"

#define MAX_MSGS 64

typedef struct msgs {
    int n_err, n_warn;
    char err[MAX_MSGS][512];
    char warn[MAX_MSGS][512];
} msgs_t;

static void on_error(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    if (c->n_err < MAX_MSGS)
        snprintf(c->err[c->n_err], sizeof(c->err[0]), "%s", m);
    c->n_err++;
}

static void on_warning(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    if (c->n_warn < MAX_MSGS)
        snprintf(c->warn[c->n_warn], sizeof(c->warn[0]), "%s", m);
    c->n_warn++;
}

static proxy_config_t *load(const char *text, msgs_t *m)
{
    memset(m, 0, sizeof(*m));
    return proxy_config_load_string("t.yaml", text, strlen(text), on_error, on_warning, m);
}

static void dump(const msgs_t *m)
{
    for (int i = 0; i < m->n_err && i < MAX_MSGS; i++)
        fprintf(stderr, "  error: %s\n", m->err[i]);
    for (int i = 0; i < m->n_warn && i < MAX_MSGS; i++)
        fprintf(stderr, "  warning: %s\n", m->warn[i]);
}

static int has(const char (*list)[512], int n, const char *want)
{
    for (int i = 0; i < n && i < MAX_MSGS; i++)
        if (strcmp(list[i], want) == 0)
            return 1;
    return 0;
}

static void expect_error(const msgs_t *m, const char *want)
{
    if (!has(m->err, m->n_err, want)) {
        fprintf(stderr, "missing error: %s\n", want);
        dump(m);
        fail();
    }
}

static void expect_warning(const msgs_t *m, const char *want)
{
    if (!has(m->warn, m->n_warn, want)) {
        fprintf(stderr, "missing warning: %s\n", want);
        dump(m);
        fail();
    }
}

/* ---- the valid mesh ---- */

static const char *const full_mesh =
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: productpage-v1, namespace: default, labels: {app: productpage, version: v1}}\n"
    "spec:\n"
    "  inbound:  {listen: 127.0.0.1:15006, forwardTo: 127.0.0.1:9080}\n"
    "  outbound: {listen: 127.0.0.1:15001}\n"
    "  admin:    {listen: 127.0.0.1:15000}\n"
    "  telemetry: {otlpEndpoint: http://127.0.0.1:4318, samplingPercent: 0.5, flushInterval: 1s}\n"
    "  workers: 2\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
    "  resolution: STATIC\n"
    "  endpoints:\n"
    "  - {address: 127.0.0.1, ports: {http: 19081}, labels: {version: v1}}\n"
    "  - {address: 127.0.0.1, ports: {http: 19082}, labels: {version: v2}, weight: 3}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1beta1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: ratings}\n"
    "spec:\n"
    "  hosts: [ratings.default.svc.cluster.local]\n"
    "  ports: [{number: 9080, name: http, protocol: http, targetPort: 8080}, {number: 9443, name: admin}]\n"
    "  resolution: DNS\n"
    "  location: MESH_INTERNAL\n"
    "  endpoints: [{address: ratings.local, labels: {version: v1}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: ServiceEntry\n"
    "metadata: {name: details}\n"
    "spec: {hosts: [details], ports: [{number: 80, name: http}], resolution: STATIC,\n"
    "       endpoints: [{address: '::1', ports: {http: 19090}}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  gateways: [mesh]\n"
    "  http:\n"
    "  - name: jason\n"
    "    match:\n"
    "    - headers: {End-User: {exact: jason}}\n"
    "      uri: {prefix: /reviews}\n"
    "      ignoreUriCase: true\n"
    "    - uri: {regex: '/r[0-9]+'}\n"
    "      method: {exact: GET}\n"
    "      queryParams: {debug: {exact: '1'}}\n"
    "      withoutHeaders: {x-skip: {prefix: ''}}\n"
    "    route:\n"
    "    - destination: {host: reviews, subset: v2}\n"
    "    headers: {request: {set: {X-Canary: 'yes'}, remove: [X-Debug]}, response: {add: {x-served-by: proxy}}}\n"
    "  - name: canary\n"
    "    route:\n"
    "    - destination: {host: reviews, subset: v1, port: {number: 9080}}\n"
    "      weight: 90\n"
    "    - destination: {host: reviews.default.svc.cluster.local, subset: v2}\n"
    "      weight: 10\n"
    "      headers: {response: {set: {x-canary: v2}}}\n"
    "    timeout: 2.5s\n"
    "    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 'gateway-error,connect-failure,503'}\n"
    "    rewrite: {uri: /v1/reviews, authority: reviews.internal}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1beta1\n"
    "kind: VirtualService\n"
    "metadata: {name: ratings}\n"
    "spec:\n"
    "  hosts: [ratings]\n"
    "  http:\n"
    "  - match: [{uri: {exact: /old}}]\n"
    "    redirect: {uri: /new, authority: ratings, redirectCode: 302}\n"
    "  - match: [{uri: {exact: /health}}]\n"
    "    directResponse: {status: 200, body: {string: ok}}\n"
    "  - route: [{destination: {host: ratings, port: {number: 9080}}}]\n"
    "    timeout: 1m\n"
    "---\n"
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: VirtualService\n"
    "metadata: {name: details}\n"
    "spec:\n"
    "  hosts: [details.default.svc.cluster.local]\n"
    "  http:\n"
    "  - route: [{destination: {host: details}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  host: reviews\n"
    "  trafficPolicy:\n"
    "    loadBalancer: {simple: LEAST_REQUEST}\n"
    "    connectionPool: {tcp: {connectTimeout: 250ms}, http: {idleTimeout: 1h, maxRequestsPerConnection: 100}}\n"
    "  subsets:\n"
    "  - name: v1\n"
    "    labels: {version: v1}\n"
    "  - name: v2\n"
    "    labels: {version: v2}\n"
    "    trafficPolicy:\n"
    "      loadBalancer: {consistentHash: {httpCookie: {name: user, path: /, ttl: 0.5s}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1beta1\n"
    "kind: DestinationRule\n"
    "metadata: {name: ratings}\n"
    "spec:\n"
    "  host: ratings.default.svc.cluster.local\n"
    "  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: X-User}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: DestinationRule\n"
    "metadata: {name: details}\n"
    "spec:\n"
    "  host: details\n"
    "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n";

static void test_full_mesh(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load(full_mesh, &m);
    if (cfg == NULL || m.n_warn != 0)
        dump(&m);
    assert_non_null(cfg);
    assert_int_equal(m.n_err, 0);
    assert_int_equal(m.n_warn, 0);

    const proxy_spec_t *ps = &cfg->proxy;
    assert_string_equal(ps->meta.name, "productpage-v1");
    assert_string_equal(ps->meta.namespace, "default");
    assert_int_equal(ps->meta.labels.n, 2);
    assert_string_equal(ps->meta.labels.items[0].key, "app");
    assert_string_equal(ps->meta.labels.items[0].value, "productpage");
    assert_string_equal(ps->inbound_listen.host, "127.0.0.1");
    assert_int_equal(ps->inbound_listen.port, 15006);
    assert_string_equal(ps->inbound_forward_to.text, "127.0.0.1:9080");
    assert_int_equal(ps->outbound_listen.port, 15001);
    assert_int_equal(ps->admin_listen.port, 15000);
    assert_string_equal(ps->otlp_endpoint, "http://127.0.0.1:4318");
    assert_string_equal(ps->otlp_hostport.host, "127.0.0.1");
    assert_int_equal(ps->otlp_hostport.port, 4318);
    assert_true(ps->sampling_percent == 0.5);
    assert_int_equal(ps->flush_interval_ms, 1000);
    assert_int_equal(ps->workers, 2);

    assert_int_equal(cfg->n_services, 3);
    const proxy_service_entry_t *reviews = &cfg->services[0];
    assert_string_equal(reviews->hosts[0].host, "reviews");
    /* a ServiceEntry host is a name of its own (Istio does not expand it) */
    assert_string_equal(reviews->hosts[0].fqdn, "reviews");
    assert_string_equal(reviews->meta.namespace, "default");
    /* a VirtualService host and a destination are relative to their document's namespace */
    assert_string_equal(cfg->virtual_services[0].hosts[0].fqdn, "reviews.default.svc.cluster.local");
    assert_string_equal(cfg->virtual_services[0].http[1].routes[1].destination.fqdn,
                        "reviews.default.svc.cluster.local");
    assert_int_equal(reviews->n_ports, 1);
    assert_int_equal(reviews->ports[0].number, 9080);
    assert_string_equal(reviews->ports[0].protocol, "HTTP");
    assert_int_equal(reviews->ports[0].target_port, PROXY_UNSET);
    assert_int_equal(reviews->resolution, PROXY_RESOLUTION_STATIC);
    assert_int_equal(reviews->n_endpoints, 2);
    assert_string_equal(reviews->endpoints[1].address, "127.0.0.1");
    assert_int_equal(reviews->endpoints[1].port_numbers[0], 19082);
    assert_string_equal(reviews->endpoints[1].ports.items[0].key, "http");
    assert_string_equal(reviews->endpoints[1].labels.items[0].value, "v2");
    assert_int_equal(reviews->endpoints[1].weight, 3);
    assert_int_equal(reviews->endpoints[0].weight, PROXY_UNSET);
    const proxy_service_entry_t *ratings = &cfg->services[1];
    assert_string_equal(ratings->ports[0].protocol, "HTTP");
    assert_int_equal(ratings->ports[0].target_port, 8080);
    assert_int_equal(ratings->resolution, PROXY_RESOLUTION_DNS);
    assert_int_equal(ratings->location, PROXY_LOCATION_MESH_INTERNAL);
    assert_string_equal(cfg->services[2].endpoints[0].address, "::1");

    assert_int_equal(cfg->n_virtual_services, 3);
    const proxy_virtual_service_t *vs = &cfg->virtual_services[0];
    assert_int_equal(vs->gateways.n, 1);
    assert_int_equal(vs->n_http, 2);
    const proxy_http_route_t *jason = &vs->http[0];
    assert_string_equal(jason->name, "jason");
    assert_int_equal(jason->n_matches, 2);
    assert_int_equal(jason->matches[0].n_headers, 1);
    assert_string_equal(jason->matches[0].headers[0].name, "end-user");
    assert_int_equal(jason->matches[0].headers[0].match.kind, PROXY_MATCH_EXACT);
    assert_string_equal(jason->matches[0].headers[0].match.value, "jason");
    assert_int_equal(jason->matches[0].uri.kind, PROXY_MATCH_PREFIX);
    assert_true(jason->matches[0].ignore_uri_case);
    const proxy_http_match_t *m1 = &jason->matches[1];
    assert_int_equal(m1->uri.kind, PROXY_MATCH_REGEX);
    assert_non_null(m1->uri.regex);
    /* anchored: the whole path must match, as with Istio's RE2 */
    assert_int_equal(regexec(m1->uri.regex, "/r123", 0, NULL, 0), 0);
    assert_int_not_equal(regexec(m1->uri.regex, "/r123/x", 0, NULL, 0), 0);
    assert_string_equal(m1->method.value, "GET");
    assert_string_equal(m1->query_params[0].name, "debug");
    assert_string_equal(m1->without_headers[0].name, "x-skip");
    assert_int_equal(jason->n_routes, 1);
    assert_int_equal(jason->routes[0].weight, 100);
    assert_int_equal(jason->routes[0].weight_given, 0);
    assert_string_equal(jason->routes[0].destination.subset, "v2");
    assert_ptr_equal(jason->routes[0].destination.service, reviews);
    assert_string_equal(jason->headers.request.set.items[0].key, "x-canary");
    assert_string_equal(jason->headers.request.set.items[0].value, "yes");
    assert_string_equal(jason->headers.request.remove.items[0], "x-debug");
    assert_string_equal(jason->headers.response.add.items[0].key, "x-served-by");
    assert_int_equal(jason->timeout_ms, PROXY_UNSET);
    assert_int_equal(jason->retries.given, 0);
    /* Istio's defaults without a retries block: 2 attempts on connect-failure and 503 */
    assert_int_equal(jason->retries.attempts, 2);
    assert_int_equal(jason->retries.retry_on, PROXY_RETRY_CONNECT_FAILURE | PROXY_RETRY_RETRIABLE_STATUS_CODES);
    assert_int_equal(jason->retries.codes[0], 503);

    const proxy_http_route_t *canary = &vs->http[1];
    assert_int_equal(canary->n_routes, 2);
    assert_int_equal(canary->routes[0].weight, 90);
    assert_int_equal(canary->routes[0].destination.port, 9080);
    assert_int_equal(canary->routes[1].weight, 10);
    assert_ptr_equal(canary->routes[1].destination.service, reviews);
    assert_string_equal(canary->routes[1].headers.response.set.items[0].value, "v2");
    assert_int_equal(canary->timeout_ms, 2500);
    assert_int_equal(canary->retries.attempts, 3);
    assert_int_equal(canary->retries.per_try_timeout_ms, 500);
    assert_int_equal(canary->retries.retry_on,
                     PROXY_RETRY_GATEWAY_ERROR | PROXY_RETRY_CONNECT_FAILURE | PROXY_RETRY_RETRIABLE_STATUS_CODES);
    assert_int_equal(canary->retries.n_codes, 1);
    assert_int_equal(canary->retries.codes[0], 503);
    assert_string_equal(canary->rewrite_uri, "/v1/reviews");
    assert_string_equal(canary->rewrite_authority, "reviews.internal");

    const proxy_virtual_service_t *rv = &cfg->virtual_services[1];
    assert_int_equal(rv->n_http, 3);
    assert_true(rv->http[0].has_redirect);
    assert_int_equal(rv->http[0].redirect_code, 302);
    assert_string_equal(rv->http[0].redirect_uri, "/new");
    assert_true(rv->http[1].has_direct_response);
    assert_int_equal(rv->http[1].direct_status, 200);
    assert_string_equal(rv->http[1].direct_body, "ok");
    assert_int_equal(rv->http[2].timeout_ms, 60000);
    assert_ptr_equal(rv->http[2].routes[0].destination.service, ratings);
    assert_ptr_equal(cfg->virtual_services[2].http[0].routes[0].destination.service, &cfg->services[2]);

    assert_int_equal(cfg->n_destination_rules, 3);
    const proxy_destination_rule_t *dr = &cfg->destination_rules[0];
    assert_ptr_equal(dr->service, reviews);
    assert_int_equal(dr->policy.lb, PROXY_LB_LEAST_REQUEST);
    assert_int_equal(dr->policy.connect_timeout_ms, 250);
    assert_int_equal(dr->policy.idle_timeout_ms, 3600000);
    assert_int_equal(dr->policy.max_requests_per_connection, 100);
    assert_int_equal(dr->policy.max_connections, PROXY_UNSET);
    assert_int_equal(dr->n_subsets, 2);
    /* v1 inherits the rule's policy; v2 sets its load balancer and inherits the pool */
    assert_int_equal(dr->subsets[0].policy.lb, PROXY_LB_LEAST_REQUEST);
    assert_int_equal(dr->subsets[1].policy.lb, PROXY_LB_CONSISTENT_HASH);
    assert_int_equal(dr->subsets[1].policy.hash_on, PROXY_HASH_COOKIE);
    assert_string_equal(dr->subsets[1].policy.hash_key, "user");
    assert_string_equal(dr->subsets[1].policy.hash_cookie_path, "/");
    assert_int_equal(dr->subsets[1].policy.hash_cookie_ttl_ms, 500);
    assert_int_equal(dr->subsets[1].policy.connect_timeout_ms, 250);
    assert_ptr_equal(proxy_config_find_rule(cfg, reviews), dr);
    assert_ptr_equal(proxy_rule_find_subset(dr, "v2"), &dr->subsets[1]);
    assert_true(proxy_subset_selects(&dr->subsets[1], &reviews->endpoints[1]));
    assert_false(proxy_subset_selects(&dr->subsets[1], &reviews->endpoints[0]));
    assert_ptr_equal(cfg->destination_rules[1].service, ratings);
    assert_int_equal(cfg->destination_rules[1].policy.hash_on, PROXY_HASH_HEADER);
    assert_string_equal(cfg->destination_rules[1].policy.hash_key, "x-user");
    assert_int_equal(cfg->destination_rules[2].policy.lb, PROXY_LB_RANDOM);

    /* host lookups: short names, FQDNs, other namespaces */
    assert_ptr_equal(proxy_config_find_service(cfg, "reviews", "default"), reviews);
    assert_ptr_equal(proxy_config_find_service(cfg, "Reviews.default.svc.cluster.local", "default"), reviews);
    assert_ptr_equal(proxy_config_find_service(cfg, "ratings", "default"), ratings);
    assert_ptr_equal(proxy_config_find_service(cfg, "RATINGS.default.svc.cluster.local", "x"), ratings);
    /* ratings.default.svc.cluster.local is not ratings.other.svc.cluster.local */
    assert_null(proxy_config_find_service(cfg, "ratings", "other"));
    /* the short entry host "reviews" is the same from every namespace, but its FQDN form only from its own */
    assert_ptr_equal(proxy_config_find_service(cfg, "reviews", "other"), reviews);
    assert_null(proxy_config_find_service(cfg, "reviews.default.svc.cluster.local", "other"));
    assert_null(proxy_config_find_service(cfg, "unknown", "default"));
    proxy_config_destroy(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {}\n", &m);
    assert_non_null(cfg);
    assert_string_equal(cfg->proxy.outbound_listen.text, "127.0.0.1:15001");
    assert_string_equal(cfg->proxy.admin_listen.text, "127.0.0.1:15000");
    assert_null(cfg->proxy.inbound_forward_to.text);
    assert_null(cfg->proxy.inbound_listen.text);
    assert_null(cfg->proxy.otlp_endpoint);
    assert_true(cfg->proxy.sampling_percent == 1);
    assert_int_equal(cfg->proxy.workers, 1);
    assert_int_equal(cfg->proxy.linger_time_ms, 30000);
    assert_int_equal(cfg->proxy.linger_timeout_ms, 5000);
    assert_int_equal(cfg->proxy.linger_bytes, 64 << 20);
    assert_int_equal(cfg->n_services, 0);
    proxy_config_destroy(cfg);
}

/* spec.interceptionMode, spec.outboundTrafficPolicy and ServiceEntry addresses (issue 13), and their errors. */
static void test_interception(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {}\n", &m);
    assert_non_null(cfg);
    assert_int_equal(cfg->proxy.interception_redirect, 0); /* NONE */
    assert_int_equal(cfg->proxy.registry_only, 0);         /* ALLOW_ANY */
    proxy_config_destroy(cfg);
    static const char good[] =
        "apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p, namespace: shop}\n"
        "spec:\n  interceptionMode: REDIRECT\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "  inbound: {listen: 0.0.0.0:15006, forwardTo: 127.0.0.1:8080, ports: [{number: 5432, name: tcp-db}, "
        "{number: 8080, name: http-api}]}\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r, namespace: shop}\n"
        "spec:\n  hosts: [r]\n  addresses: [10.96.0.10, 10.97.0.0/16, 'fd00::1']\n"
        "  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.2}]\n";
    cfg = load(good, &m);
    if (cfg == NULL)
        dump(&m);
    assert_non_null(cfg);
    assert_int_equal(cfg->proxy.interception_redirect, 1);
    assert_int_equal(cfg->proxy.registry_only, 1);
    assert_int_equal(cfg->proxy.n_inbound_ports, 2);
    assert_true(proxy_port_is_tcp(&cfg->proxy.inbound_ports[0]));  /* tcp-db: by the name */
    assert_false(proxy_port_is_tcp(&cfg->proxy.inbound_ports[1])); /* http-api */
    assert_int_equal(cfg->services[0].addresses.n, 3);
    assert_string_equal(cfg->services[0].addresses.items[1], "10.97.0.0/16");
    struct sockaddr_storage net, a;
    int bits;
    assert_int_equal(hostport_cidr_parse("10.97.0.0/16", &net, &bits), 0);
    assert_int_equal(bits, 16);
    assert_int_equal(hostport_cidr_parse("10.97.200.3", &a, &bits), 0);
    assert_true(hostport_cidr_contains(&net, 16, &a));
    assert_int_equal(hostport_cidr_parse("10.98.0.1", &a, &bits), 0);
    assert_false(hostport_cidr_contains(&net, 16, &a));
    assert_int_equal(hostport_cidr_parse("fd00::/8", &net, &bits), 0);
    assert_false(hostport_cidr_contains(&net, 8, &a)); /* another family */
    assert_int_equal(hostport_cidr_parse("fd12::5", &a, &bits), 0);
    assert_true(hostport_cidr_contains(&net, 8, &a));
    assert_int_equal(hostport_cidr_parse("10.0.0.0/33", &a, &bits), -1);
    assert_int_equal(hostport_cidr_parse("10.0.0.0/", &a, &bits), -1);
    assert_int_equal(hostport_cidr_parse("10.0.0.0/1x", &a, &bits), -1);
    proxy_config_destroy(cfg);

    static const char bad[] =
        "apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p, namespace: shop}\n"
        "spec:\n  interceptionMode: TPROXY\n  outboundTrafficPolicy: {mode: ALLOW_SOME, egress: x}\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r, namespace: shop}\n"
        "spec:\n  hosts: [r]\n  addresses: [10.0.0.1, nope]\n"
        "  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.2}]\n";
    assert_null(load(bad, &m));
    expect_error(&m, "t.yaml:5:21: Proxy p: spec.interceptionMode: unknown value \"TPROXY\" (expected one of NONE, "
                     "REDIRECT)");
    expect_error(&m, "t.yaml:6:33: Proxy p: spec.outboundTrafficPolicy.mode: unknown value \"ALLOW_SOME\" (expected "
                     "one of ALLOW_ANY, REGISTRY_ONLY)");
    expect_error(&m, "t.yaml:13:25: ServiceEntry r: spec.addresses[1]: \"nope\" is not an IP address or CIDR");
    assert_int_equal(m.n_err, 4); /* and the unknown field egress */
}

static void test_linger_limits(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
                               "spec: {limits: {lingerTime: 2s, lingerTimeout: 250ms, lingerBytes: 1048576}}\n",
                               &m);
    assert_non_null(cfg);
    assert_int_equal(cfg->proxy.linger_time_ms, 2000);
    assert_int_equal(cfg->proxy.linger_timeout_ms, 250);
    assert_int_equal(cfg->proxy.linger_bytes, 1048576);
    buf_t b = BUF_INIT;
    proxy_config_to_json(cfg, &b);
    assert_non_null(strstr(b.data, "\"lingerTime\":\"2s\",\"lingerTimeout\":\"250ms\",\"lingerBytes\":1048576"));
    buf_dispose(&b);
    proxy_config_destroy(cfg);

    /* lingerTime 0 turns lingering off */
    cfg = load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {limits: {lingerTime: 0s}}\n",
               &m);
    assert_non_null(cfg);
    assert_int_equal(cfg->proxy.linger_time_ms, 0);
    proxy_config_destroy(cfg);

    cfg = load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
               "spec:\n  limits: {lingerTime: soon, lingerTimeout: 0s, lingerBytes: 0}\n",
               &m);
    assert_null(cfg);
    assert_int_equal(m.n_err, 3);
    expect_error(&m, "t.yaml:5:24: Proxy p: spec.limits.lingerTime: expected a duration such as 1s, 0.5s, 250ms, 1m "
                     "or 1h (at least 1ms), got \"soon\"");
    expect_error(&m, "t.yaml:5:45: Proxy p: spec.limits.lingerTimeout: must be at least 1ms");
    expect_error(&m, "t.yaml:5:62: Proxy p: spec.limits.lingerBytes: 0 is out of range (1-1073741824)");
}

/* ---- errors ---- */

/* 23 lines; a case's own documents start at line 24 */
static const char *const base = "apiVersion: outrider.io/v1alpha1\n"
                                "kind: Proxy\n"
                                "metadata: {name: pp}\n"
                                "spec: {outbound: {listen: \"127.0.0.1:15001\"}}\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: ServiceEntry\n"
                                "metadata: {name: reviews}\n"
                                "spec:\n"
                                "  hosts: [reviews]\n"
                                "  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
                                "  resolution: STATIC\n"
                                "  endpoints:\n"
                                "  - {address: 127.0.0.1, ports: {http: 19081}, labels: {version: v1}}\n"
                                "  - {address: 127.0.0.1, ports: {http: 19082}, labels: {version: v2}}\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: DestinationRule\n"
                                "metadata: {name: reviews}\n"
                                "spec:\n"
                                "  host: reviews\n"
                                "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
                                "---\n";

#define VS_HEAD                                                                                                        \
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n"

/* Load base + extra; expect exactly n_errors errors, among them want (if not NULL). */
static void check_case(const char *extra, int n_errors, const char *want)
{
    size_t len = strlen(base) + strlen(extra) + 1;
    char *text = malloc(len);
    assert_non_null(text);
    snprintf(text, len, "%s%s", base, extra);
    msgs_t m;
    proxy_config_t *cfg = load(text, &m);
    free(text);
    if (n_errors > 0)
        assert_null(cfg);
    proxy_config_destroy(cfg);
    if (want != NULL)
        expect_error(&m, want);
    if (m.n_err != n_errors) {
        fprintf(stderr, "expected %d errors, got %d\n", n_errors, m.n_err);
        dump(&m);
        fail();
    }
}

static void test_base_is_valid(void **state)
{
    (void)state;
    check_case("", 0, NULL);
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews, subset: v1}}]}]\n", 0, NULL);
}

static void test_unknown_kind_and_api(void **state)
{
    (void)state;
    check_case("apiVersion: outrider.io/v1alpha1\nkind: Sidecar\nmetadata: {name: x}\nspec: {}\n", 1,
               "t.yaml:25:7: document 4: kind: unknown kind \"Sidecar\" (expected Proxy, ServiceEntry, "
               "VirtualService, DestinationRule, RateLimit, Telemetry, PeerAuthentication, AuthorizationPolicy or "
               "RequestAuthentication)");
    check_case("apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: r}\n"
               "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n",
               1,
               "t.yaml:24:13: VirtualService r: apiVersion: unknown apiVersion \"networking.istio.io/v2\" for kind "
               "VirtualService (expected networking.istio.io/v1, networking.istio.io/v1beta1 or "
               "networking.istio.io/v1alpha3)");
    check_case("kind: VirtualService\nmetadata: {name: r}\n"
               "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n",
               1, "t.yaml:24:1: VirtualService r: apiVersion: missing required field");
    check_case("- just a list\n", 1,
               "t.yaml:24:3: document 4: a document must be a mapping with apiVersion, kind, metadata and spec");
}

static void test_unknown_fields(void **state)
{
    (void)state;
    check_case(VS_HEAD "  http:\n  - route:\n    - destination: {host: reviews, subsett: v1}\n", 1,
               "t.yaml:31:36: VirtualService r: spec.http[0].route[0].destination.subsett: unknown field");
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews}}]}]\n  tcp: []\n", 1,
               "t.yaml:30:3: VirtualService r: spec.tcp: not supported by outrider-proxy");
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews}}]}]\nstatus: {}\n", 1,
               "t.yaml:30:1: VirtualService r: status: unknown field");
}

static void test_wrong_types(void **state)
{
    (void)state;
    check_case(
        VS_HEAD "  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: \"50\"\n"
                "    - destination: {host: reviews, subset: v2}\n      weight: 50\n",
        1, "t.yaml:32:16: VirtualService r: spec.http[0].route[0].weight: expected an integer, got the string \"50\"");
    check_case(VS_HEAD "  http:\n  - route: {destination: {host: reviews}}\n", 1,
               "t.yaml:30:13: VirtualService r: spec.http[0].route: expected a list, got a mapping");
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews}}], timeout: fast}]\n", 1,
               "t.yaml:29:61: VirtualService r: spec.http[0].timeout: expected a duration such as 1s, 0.5s, 250ms, "
               "1m or 1h (at least 1ms), got \"fast\"");
    check_case(VS_HEAD "  http: [{match: [{ignoreUriCase: maybe}], route: [{destination: {host: reviews}}]}]\n", 1,
               "t.yaml:29:35: VirtualService r: spec.http[0].match[0].ignoreUriCase: expected true or false, got "
               "\"maybe\"");
}

static void test_out_of_range(void **state)
{
    (void)state;
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews}, weight: 101}]}]\n", 1,
               "t.yaml:29:58: VirtualService r: spec.http[0].route[0].weight: 101 is out of range (0-100)");
    check_case(VS_HEAD "  http: [{directResponse: {status: 99}}]\n", 1,
               "t.yaml:29:36: VirtualService r: spec.http[0].directResponse.status: 99 is out of range (200-599)");
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews, port: {number: 0}}}]}]\n", 1,
               "t.yaml:29:64: VirtualService r: spec.http[0].route[0].destination.port.number: 0 is out of range "
               "(1-65535)");
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews}}], fault: {abort: {httpStatus: 503, "
                       "percentage: {value: 100.5}}}}]\n",
               1,
               "t.yaml:29:105: VirtualService r: spec.http[0].fault.abort.percentage.value: 100.5 is out of range "
               "(0-100)");
}

static void test_missing_required(void **state)
{
    (void)state;
    check_case(VS_HEAD "  http: [{route: [{destination: {subset: v1}}]}]\n", 1,
               "t.yaml:29:34: VirtualService r: spec.http[0].route[0].destination.host: missing required field");
    check_case("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {http: []}\n", 1,
               "t.yaml:27:8: VirtualService r: spec.hosts: missing required field");
    check_case(VS_HEAD "  http: [{match: [{uri: {exact: /}}]}]\n", 1,
               "t.yaml:29:11: VirtualService r: spec.http[0]: one of route, redirect or directResponse is required");
    check_case("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\n"
               "spec: {hosts: [x], resolution: STATIC}\n",
               1, "t.yaml:27:32: ServiceEntry x: spec.resolution: resolution STATIC needs endpoints");
}

static void test_weights(void **state)
{
    (void)state;
    check_case(VS_HEAD "  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 90\n"
                       "    - destination: {host: reviews, subset: v2}\n      weight: 20\n",
               1,
               "t.yaml:30:5: VirtualService r: spec.http[0].route: the weights of the destinations add up to 110; "
               "they must add up to 100");
    check_case(VS_HEAD "  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n"
                       "    - destination: {host: reviews, subset: v2}\n",
               1,
               "t.yaml:30:5: VirtualService r: spec.http[0].route: the weights of the destinations add up to 0; "
               "they must add up to 100");
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews}, weight: 100}]}]\n", 0, NULL);
}

static void test_regex(void **state)
{
    (void)state;
    check_case(VS_HEAD "  http: [{match: [{uri: {regex: 'a(b'}}], route: [{destination: {host: reviews}}]}]\n", 1,
               "t.yaml:29:34: VirtualService r: spec.http[0].match[0].uri.regex: regular expression \"a(b\" does "
               "not compile: Unmatched ( or \\(");
    check_case(VS_HEAD "  http: [{match: [{headers: {x-id: {regex: '\\d+'}}}], route: [{destination: {host: "
                       "reviews}}]}]\n",
               1,
               "t.yaml:29:45: VirtualService r: spec.http[0].match[0].headers.x-id.regex: regular expression "
               "\"\\d+\" is not supported: it uses the RE2 escape \\d (POSIX regular expressions do not have it)");
    check_case(VS_HEAD "  http: [{match: [{uri: {regex: '(?i)/a'}}], route: [{destination: {host: reviews}}]}]\n", 1,
               "t.yaml:29:34: VirtualService r: spec.http[0].match[0].uri.regex: regular expression \"(?i)/a\" is "
               "not supported: it uses RE2 group syntax (?...) (POSIX regular expressions do not have it)");
    check_case(VS_HEAD "  http: [{match: [{uri: {regex: '((a{100}){100})'}}], route: [{destination: {host: "
                       "reviews}}]}]\n",
               1,
               "t.yaml:29:34: VirtualService r: spec.http[0].match[0].uri.regex: regular expression "
               "\"((a{100}){100})\" is not supported: it uses repetition counts whose product is above 1000");
}

static void test_duplicates(void **state)
{
    (void)state;
    check_case("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
               "spec: {host: reviews}\n",
               2,
               "t.yaml:26:18: DestinationRule reviews: metadata.name: duplicate DestinationRule default/reviews "
               "(the first is at line 17)");
    check_case("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other}\n"
               "spec: {host: reviews, subsets: [{name: a}, {name: a}]}\n",
               2,
               "t.yaml:27:51: DestinationRule other: spec.subsets[1].name: duplicate subset name \"a\" (also "
               "spec.subsets[0])");
    check_case("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: other}\n"
               "spec: {host: reviews}\n",
               1,
               "t.yaml:27:14: DestinationRule other: spec.host: ServiceEntry reviews already has a "
               "DestinationRule (reviews, line 21)");
    check_case(VS_HEAD "  http:\n  - {name: a, route: [{destination: {host: reviews}}]}\n"
                       "  - {name: a, route: [{destination: {host: reviews}}]}\n",
               1, "t.yaml:31:12: VirtualService r: spec.http[1].name: duplicate route name \"a\" (also spec.http[0])");
    check_case("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: second}\nspec: {}\n", 1,
               "t.yaml:24:1: Proxy second: a second Proxy document (the first is at line 1); exactly one is "
               "allowed");
    check_case("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\n"
               "spec: {hosts: [Reviews], ports: [{number: 1, name: a}, {number: 1, name: b}]}\n",
               2,
               "t.yaml:27:16: ServiceEntry x: spec.hosts[0]: host \"Reviews\" is already defined by ServiceEntry "
               "reviews (line 10)");
    /* entry hosts are not namespaced: the same host in another namespace is the same host */
    check_case("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x, namespace: other}\n"
               "spec: {hosts: [reviews], ports: [{number: 1, name: a}]}\n",
               1,
               "t.yaml:27:16: ServiceEntry x: spec.hosts[0]: host \"reviews\" is already defined by ServiceEntry "
               "reviews (line 10)");
}

static void test_references(void **state)
{
    (void)state;
    check_case(VS_HEAD "  http: [{route: [{destination: {host: ratings}}]}]\n", 1,
               "t.yaml:29:40: VirtualService r: spec.http[0].route[0].destination.host: host \"ratings\" is not "
               "defined by any ServiceEntry");
    check_case("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
               "spec:\n  hosts: [ratings]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
               1, "t.yaml:28:11: VirtualService r: spec.hosts[0]: host \"ratings\" is not defined by any ServiceEntry");
    check_case(VS_HEAD "  http:\n  - route:\n    - destination: {host: reviews, subset: v3}\n", 1,
               "t.yaml:31:44: VirtualService r: spec.http[0].route[0].destination.subset: subset \"v3\" is not "
               "defined by any DestinationRule for host reviews");
    check_case(VS_HEAD "  http: [{route: [{destination: {host: reviews, port: {number: 9090}}}]}]\n", 1,
               "t.yaml:29:64: VirtualService r: spec.http[0].route[0].destination.port.number: port 9090 is not a "
               "port of ServiceEntry reviews (it has 9080)");
    check_case("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
               "spec: {host: ratings}\n",
               1, "t.yaml:27:14: DestinationRule d: spec.host: host \"ratings\" is not defined by any ServiceEntry");
    /* a short name means the document's namespace: in namespace other, reviews.default.svc.cluster.local is
     * not the short entry host "reviews" (which reviews, written in any namespace, still names) */
    check_case("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: other}\n"
               "spec:\n  hosts: [reviews.default.svc.cluster.local]\n  http: [{route: [{destination: {host: "
               "reviews}}]}]\n",
               1,
               "t.yaml:28:11: VirtualService r: spec.hosts[0]: host \"reviews.default.svc.cluster.local\" is not "
               "defined by any ServiceEntry");
}

/* OTLP endpoints: http or https, a base path kept; a CA file that must be readable. */
static void test_otlp_endpoints(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg =
        load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
             "spec: {telemetry: {otlpEndpoint: 'https://otel.example:4318/base/', caFile: /dev/null}}\n",
             &m);
    assert_non_null(cfg);
    const proxy_spec_t *ps = &cfg->proxy;
    assert_string_equal(ps->otlp_endpoint, "https://otel.example:4318/base/");
    assert_string_equal(ps->otlp_hostport.host, "otel.example");
    assert_int_equal(ps->otlp_hostport.port, 4318);
    assert_string_equal(ps->otlp_ca_file, "/dev/null");
    proxy_config_destroy(cfg);
    cfg = load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n"
               "spec: {telemetry: {otlpEndpoint: 'http://c:4318/v?x=1', caFile: /nonexistent/ca.pem}}\n",
               &m);
    assert_null(cfg);
    assert_int_equal(m.n_err, 2);
    expect_error(&m, "t.yaml:4:35: Proxy p: spec.telemetry.otlpEndpoint: an endpoint is a base URL without spaces, "
                     "query or fragment, at most 1000 bytes: \"http://c:4318/v?x=1\"");
    expect_error(&m, "t.yaml:4:65: Proxy p: spec.telemetry.caFile: cannot read \"/nonexistent/ca.pem\": No such file "
                     "or directory");
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load("apiVersion: outrider.io/v1alpha1\n"
                               "kind: Proxy\n"
                               "metadata: {name: p}\n"
                               "spec: {workers: 0, telemetry: {otlpEndpoint: 'ftps://x:12', samplingPercent: 101},\n"
                               "       outbound: {listen: 'localhost:1'}, extra: 1}\n"
                               "---\n"
                               "apiVersion: networking.istio.io/v1\n"
                               "kind: Gateway\n"
                               "metadata: {name: g}\n",
                               &m);
    assert_null(cfg);
    assert_int_equal(m.n_err, 6);
    expect_error(&m, "t.yaml:4:17: Proxy p: spec.workers: 0 is out of range (1-64)");
    expect_error(&m, "t.yaml:4:47: Proxy p: spec.telemetry.otlpEndpoint: expected http://HOST:PORT or "
                     "https://HOST:PORT (then an optional path), got \"ftps://x:12\"");
    expect_error(&m, "t.yaml:4:78: Proxy p: spec.telemetry.samplingPercent: 101 is out of range (0-100)");
    expect_error(&m, "t.yaml:5:28: Proxy p: spec.outbound.listen: expected an IP address and port such as "
                     "127.0.0.1:15001, got \"localhost:1\"");
    expect_error(&m, "t.yaml:5:43: Proxy p: spec.extra: unknown field");
    expect_error(&m, "t.yaml:8:7: document 2: kind: unknown kind \"Gateway\" (expected Proxy, ServiceEntry, "
                     "VirtualService, DestinationRule, RateLimit, Telemetry, PeerAuthentication, AuthorizationPolicy "
                     "or RequestAuthentication)");

    cfg = load("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [x]}\n", &m);
    assert_null(cfg);
    expect_error(&m, "t.yaml:1:1: no Proxy document: exactly one `kind: Proxy` (apiVersion outrider.io/v1alpha1) is "
                     "required");

    cfg = load("a: [b\n", &m);
    assert_null(cfg);
    assert_true(m.n_err >= 1);
    assert_non_null(strstr(m.err[0], "t.yaml:"));
}

static void test_warnings(void **state)
{
    (void)state;
    size_t len = strlen(base) + 1024;
    char *text = malloc(len);
    assert_non_null(text);
    snprintf(text, len,
             "%s" VS_HEAD "  http:\n"
             "  - route: [{destination: {host: reviews}}]\n"
             "    fault: {delay: {fixedDelay: 5s, percentage: {value: 0.1}}}\n"
             "    mirror: {host: reviews, subset: v2}\n"
             "    mirrorPercentage: {value: 50}\n"
             "    corsPolicy: {allowOrigins: [{exact: 'https://a'}], maxAge: 24h}\n"
             "---\n"
             "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: o}\n"
             "spec:\n  host: reviews.default.svc.cluster.local\n"
             "  trafficPolicy:\n"
             "    connectionPool: {tcp: {maxConnections: 10, connectTimeout: 1s}, http: {maxRetries: 3}}\n"
             "    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}\n"
             "  subsets: [{name: v9, labels: {version: v9}}]\n",
             base);
    /* the second rule for reviews is an error, and the warnings still come */
    msgs_t m;
    proxy_config_t *cfg = load(text, &m);
    free(text);
    assert_null(cfg);
    assert_int_equal(m.n_err, 1);
    expect_error(&m, "t.yaml:40:9: DestinationRule o: spec.host: ServiceEntry reviews already has a DestinationRule "
                     "(reviews, line 21)");
    expect_warning(&m, "t.yaml:34:5: VirtualService r: spec.http[0].corsPolicy: parsed but ignored: outrider-proxy "
                       "does not apply CORS policies (the app's own CORS headers pass through)");
    /* fault injection, mirroring, the connection limits and outlier detection are enforced: no warning for them */
    assert_int_equal(m.n_warn, 1);

    /* a subset that selects no endpoint is a warning, and the file still loads */
    cfg = load("apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\n"
               "spec: {hosts: [s], resolution: STATIC, endpoints: [{address: 10.0.0.1, labels: {v: a}}]}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: s}\n"
               "spec:\n  host: s\n  subsets:\n  - {name: a, labels: {v: a}}\n  - {name: b, labels: {v: b}}\n",
               &m);
    assert_non_null(cfg);
    assert_int_equal(m.n_err, 0);
    assert_int_equal(m.n_warn, 1);
    expect_warning(&m, "t.yaml:18:6: DestinationRule s: spec.subsets[1]: subset \"b\" selects no endpoint of "
                       "ServiceEntry s");
    proxy_config_destroy(cfg);
}

static void test_durations(void **state)
{
    (void)state;
    uint64_t ms;
    assert_int_equal(proxy_duration_parse("1s", &ms), 0);
    assert_int_equal(ms, 1000);
    assert_int_equal(proxy_duration_parse("0.5s", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(proxy_duration_parse("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(proxy_duration_parse("1m", &ms), 0);
    assert_int_equal(ms, 60000);
    assert_int_equal(proxy_duration_parse("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(proxy_duration_parse("1500us", &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(proxy_duration_parse("0s", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(proxy_duration_parse("", &ms), -1);
    assert_int_equal(proxy_duration_parse("10", &ms), -1);
    assert_int_equal(proxy_duration_parse("-1s", &ms), -1);
    assert_int_equal(proxy_duration_parse("1.2.3s", &ms), -1);
    assert_int_equal(proxy_duration_parse("100ns", &ms), -1);
    assert_int_equal(proxy_duration_parse("99999999999999999999h", &ms), -1);
    assert_int_equal(proxy_duration_parse("1d", &ms), -1);
}

static void test_json(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load(full_mesh, &m);
    assert_non_null(cfg);
    buf_t b = BUF_INIT;
    proxy_config_to_json(cfg, &b);
    assert_non_null(strstr(b.data, "\"outbound\":{\"listen\":\"127.0.0.1:15001\"}"));
    assert_non_null(strstr(b.data, "\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":\"v1\",\"port\":{"
                                   "\"number\":9080}},\"weight\":90},"));
    assert_non_null(strstr(b.data, "\"timeout\":\"2500ms\""));
    assert_non_null(strstr(b.data, "\"retryOn\":\"gateway-error,connect-failure,retriable-status-codes,503\""));
    assert_non_null(strstr(b.data, "\"httpCookie\":{\"name\":\"user\",\"path\":\"/\",\"ttl\":\"500ms\"}"));
    assert_non_null(strstr(b.data, "\"samplingPercent\":0.5"));
    assert_int_equal(b.data[0], '{');
    assert_int_equal(b.data[b.len - 1], '}');
    buf_dispose(&b);
    proxy_config_destroy(cfg);
}

/* ---- namespaces ---- */

/*
 * The issue's file: a Proxy in namespace shop (written last: documents come
 * in any order) and every other kind without metadata.namespace.
 */
static const char *const shop_docs =
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: reviews@NS@}\n"
    "spec: {hosts: [reviews], ports: [{number: 9080, name: http}], resolution: STATIC,\n"
    "       endpoints: [{address: 127.0.0.1, labels: {version: v1}}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: reviews@NS@}\n"
    "spec: {hosts: [reviews], http: [{name: all, route: [{destination: {host: reviews, subset: v1}}],\n"
    "       mirror: {host: reviews}}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: reviews@NS@}\n"
    "spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}\n"
    "---\n"
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: RateLimit\n"
    "metadata: {name: reviews@NS@}\n"
    "spec: {hosts: [reviews], routes: [all], local: {maxTokens: 5, fillInterval: 1s}}\n"
    "---\n"
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: p@PROXY_NS@}\n"
    "spec: {}\n";

/* shop_docs with @NS@ (every kind but the Proxy) and @PROXY_NS@ replaced; the caller frees it. */
static char *shop_text(const char *ns, const char *proxy_ns)
{
    size_t cap = strlen(shop_docs) + 512, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *c = shop_docs; *c;) {
        const char *with = NULL;
        if (strncmp(c, "@NS@", 4) == 0)
            with = ns, c += 4;
        else if (strncmp(c, "@PROXY_NS@", 10) == 0)
            with = proxy_ns, c += 10;
        if (with != NULL) {
            n += (size_t)snprintf(out + n, cap - n, "%s", with);
            continue;
        }
        out[n++] = *c++;
    }
    out[n] = '\0';
    return out;
}

/* Load shop_text(ns, proxy_ns) into *m. */
static proxy_config_t *load_shop(const char *ns, const char *proxy_ns, msgs_t *m)
{
    char *text = shop_text(ns, proxy_ns);
    proxy_config_t *cfg = load(text, m);
    free(text);
    return cfg;
}

/* Every document of cfg is in namespace ns, and the references resolve there. */
static void expect_in(const proxy_config_t *cfg, const char *ns, const char *proxy_ns)
{
    char fqdn[128];
    snprintf(fqdn, sizeof(fqdn), "reviews.%s.svc.cluster.local", ns);
    assert_string_equal(cfg->proxy.meta.namespace, proxy_ns);
    const proxy_service_entry_t *se = &cfg->services[0];
    const proxy_virtual_service_t *vs = &cfg->virtual_services[0];
    const proxy_destination_rule_t *dr = &cfg->destination_rules[0];
    const proxy_rate_limit_t *rl = &cfg->rate_limits[0];
    assert_string_equal(se->meta.namespace, ns);
    assert_string_equal(vs->meta.namespace, ns);
    assert_string_equal(dr->meta.namespace, ns);
    assert_string_equal(rl->meta.namespace, ns);
    /* the entry host as written; the references relative to their (own) namespace */
    assert_string_equal(se->hosts[0].fqdn, "reviews");
    assert_string_equal(vs->hosts[0].fqdn, fqdn);
    assert_string_equal(vs->http[0].routes[0].destination.fqdn, fqdn);
    assert_string_equal(vs->http[0].mirrors[0].destination.fqdn, fqdn);
    assert_string_equal(dr->host.fqdn, fqdn);
    assert_string_equal(rl->hosts[0].fqdn, fqdn);
    /* ... all naming the one entry */
    assert_ptr_equal(vs->http[0].routes[0].destination.service, se);
    assert_ptr_equal(vs->http[0].mirrors[0].destination.service, se);
    assert_ptr_equal(dr->service, se);
    assert_ptr_equal(rl->services[0], se);
    assert_ptr_equal(proxy_config_find_rule(cfg, se), dr);
}

static void test_namespace_implicit(void **state)
{
    (void)state;
    msgs_t m;
    /* the issue: Proxy in shop, the rest without a namespace, so in shop */
    proxy_config_t *cfg = load_shop("", ", namespace: shop", &m);
    if (cfg == NULL || m.n_warn != 0)
        dump(&m);
    assert_non_null(cfg);
    assert_int_equal(m.n_warn, 0);
    expect_in(cfg, "shop", "shop");
    /* --print-config and /config_dump name each document's namespace */
    buf_t b = BUF_INIT;
    proxy_config_to_json(cfg, &b);
    const char *kinds[] = {"Proxy", "ServiceEntry", "VirtualService", "DestinationRule", "RateLimit"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char want[128];
        snprintf(want, sizeof(want), "\"kind\":\"%s\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"shop\"}", kinds[i],
                 i == 0 ? "p" : "reviews");
        if (strstr(b.data, want) == NULL)
            fail_msg("no %s in %s", want, b.data);
    }
    assert_null(strstr(b.data, "\"namespace\":\"default\""));
    buf_dispose(&b);
    proxy_config_destroy(cfg);

    /* a Proxy without a namespace is in default, and so is the rest */
    cfg = load_shop("", "", &m);
    assert_non_null(cfg);
    assert_int_equal(m.n_warn, 0);
    expect_in(cfg, "default", "default");
    proxy_config_destroy(cfg);
}

static void test_namespace_explicit(void **state)
{
    (void)state;
    msgs_t m;
    /* every document says shop: the same model as without */
    proxy_config_t *cfg = load_shop(", namespace: shop", ", namespace: shop", &m);
    assert_non_null(cfg);
    assert_int_equal(m.n_warn, 0);
    expect_in(cfg, "shop", "shop");
    proxy_config_destroy(cfg);

    /* documents in another namespace than the Proxy's keep theirs (and their short names are relative to it);
     * the sidecar's Host: reviews then does not select the VirtualService: a warning says so */
    cfg = load_shop(", namespace: other", ", namespace: shop", &m);
    assert_non_null(cfg);
    expect_in(cfg, "other", "shop");
    assert_int_equal(m.n_warn, 1);
    expect_warning(&m, "t.yaml:10:16: VirtualService reviews: spec.hosts[0]: short host \"reviews\" means "
                       "reviews.other.svc.cluster.local (the VirtualService's namespace is other); the sidecar is in "
                       "namespace shop, so the app's Host: reviews does not select this VirtualService (Host: "
                       "reviews.other does)");
    proxy_config_destroy(cfg);

    /* the Proxy without a namespace, the rest in shop */
    cfg = load_shop(", namespace: shop", "", &m);
    assert_non_null(cfg);
    expect_in(cfg, "shop", "default");
    assert_int_equal(m.n_warn, 1);
    proxy_config_destroy(cfg);
}

static void test_namespace_errors(void **state)
{
    (void)state;
    msgs_t m;
    /* the implicit namespace is the namespace: reviews without one and reviews in shop are the same document */
    char *text = shop_text("", ", namespace: shop");
    size_t len = strlen(text) + 512;
    text = realloc(text, len);
    assert_non_null(text);
    strcat(text, "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                 "metadata: {name: reviews, namespace: shop}\nspec: {host: reviews}\n");
    proxy_config_t *cfg = load(text, &m);
    free(text);
    assert_null(cfg);
    expect_error(&m, "t.yaml:30:18: DestinationRule reviews: metadata.name: duplicate DestinationRule shop/reviews "
                     "(the first is at line 13)");

    /* a namespace is a DNS label: lowercase ASCII letters, digits and '-', at most 63 */
    const char *bad[] = {"sh\xc3\xb6p", "Shop",   "a.b",
                         "-shop",       "shop_1", "a123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char ns[128], want[256];
        snprintf(ns, sizeof(ns), ", namespace: \"%s\"", bad[i]);
        snprintf(want, sizeof(want),
                 "t.yaml:25:33: Proxy: metadata.namespace: \"%s\" is not a valid namespace (lowercase letters, "
                 "digits and '-')",
                 bad[i]);
        cfg = load_shop("", ns, &m);
        assert_null(cfg);
        expect_error(&m, want);
        /* the other documents fall back to default rather than to the refused name */
        assert_int_equal(m.n_err, 1);
        snprintf(want, sizeof(want),
                 "t.yaml:3:39: ServiceEntry: metadata.namespace: \"%s\" is not a valid namespace "
                 "(lowercase letters, digits and '-')",
                 bad[i]);
        cfg = load_shop(ns, "", &m);
        assert_null(cfg);
        expect_error(&m, want);
    }
}

static void test_host_forms(void **state)
{
    (void)state;
    char f[PROXY_HOST_FORMS][PROXY_HOST_MAX];
#define FORMS(name, ns, dns) proxy_host_forms(name, strlen(name), ns, dns, f)
    /* Istio's reading first, then the same name in its other form seen from the namespace */
    assert_int_equal(FORMS("Reviews", "shop", 0), 2);
    assert_string_equal(f[0], "reviews.shop.svc.cluster.local");
    assert_string_equal(f[1], "reviews");
    assert_int_equal(FORMS("reviews.SHOP.svc.cluster.local", "shop", 0), 2);
    assert_string_equal(f[0], "reviews.shop.svc.cluster.local");
    assert_string_equal(f[1], "reviews");
    assert_int_equal(FORMS("reviews.default.svc.cluster.local", "shop", 0), 1);
    assert_string_equal(f[0], "reviews.default.svc.cluster.local");
    /* Istio takes a name with a dot as written */
    assert_int_equal(FORMS("reviews.shop", "shop", 0), 1);
    assert_string_equal(f[0], "reviews.shop");
    /* a Host header also has the DNS search path's partial names */
    assert_int_equal(FORMS("reviews.shop", "shop", 1), 3);
    assert_string_equal(f[0], "reviews.shop");
    assert_string_equal(f[1], "reviews.shop.svc.cluster.local");
    assert_string_equal(f[2], "reviews");
    assert_int_equal(FORMS("reviews.shop.svc", "shop", 1), 3);
    assert_string_equal(f[1], "reviews.shop.svc.cluster.local");
    assert_string_equal(f[2], "reviews");
    assert_int_equal(FORMS("reviews.default", "shop", 1), 2);
    assert_string_equal(f[1], "reviews.default.svc.cluster.local");
    assert_int_equal(FORMS("reviews.default.svc", "shop", 1), 2);
    assert_int_equal(FORMS("a.b.c", "shop", 1), 1);
    assert_int_equal(FORMS("api.example.com", "shop", 1), 1);
    assert_int_equal(FORMS("reviews", "shop", 1), 2);
    assert_string_equal(f[0], "reviews.shop.svc.cluster.local");
    /* wildcards and IPv6 literals are themselves only; NULL is default */
    assert_int_equal(FORMS("*.Example.com", "shop", 1), 1);
    assert_string_equal(f[0], "*.example.com");
    assert_int_equal(FORMS("*", "shop", 1), 1);
    assert_int_equal(FORMS("::1", "shop", 1), 1);
    assert_int_equal(FORMS("reviews", NULL, 0), 2);
    assert_string_equal(f[0], "reviews.default.svc.cluster.local");
    assert_int_equal(FORMS("", "shop", 1), 0);
    char big[400];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(FORMS(big, "shop", 1), 0);
#undef FORMS
}

/* Two entries for one name in shop: reviews and reviews.shop.svc.cluster.local. */
static const char *const two_reviews =
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: p, namespace: shop}\n"
    "spec: {}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: fqdn}\n"
    "spec: {hosts: [reviews.shop.svc.cluster.local], resolution: STATIC, endpoints: [{address: 127.0.0.1}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: short}\n"
    "spec: {hosts: [reviews, ratings], resolution: STATIC, endpoints: [{address: 127.0.0.2}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: r}\n"
    "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}, {route: [{destination: {host: "
    "ratings}}]}]}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: d, namespace: other}\n"
    "spec: {host: reviews}\n"
    "---\n"
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: RateLimit\n"
    "metadata: {name: l}\n"
    "spec: {hosts: [reviews.shop.svc.cluster.local], local: {maxTokens: 1, fillInterval: 1s}}\n";

static void test_namespace_ambiguity(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load(two_reviews, &m);
    if (cfg == NULL)
        dump(&m);
    assert_non_null(cfg);
    assert_int_equal(m.n_err, 0);
    const proxy_service_entry_t *fqdn = &cfg->services[0], *shrt = &cfg->services[1];
    /* in shop, Istio's reading of reviews (the FQDN) wins over the short entry host */
    proxy_host_ref_t ref;
    proxy_config_resolve(cfg, "reviews", "shop", &ref);
    assert_ptr_equal(ref.service, fqdn);
    assert_ptr_equal(ref.host, &fqdn->hosts[0]);
    assert_ptr_equal(ref.shadowed, shrt);
    assert_ptr_equal(ref.shadowed_host, &shrt->hosts[0]);
    /* from another namespace reviews is only the short host */
    proxy_config_resolve(cfg, "reviews", "other", &ref);
    assert_ptr_equal(ref.service, shrt);
    assert_null(ref.shadowed);
    assert_ptr_equal(cfg->virtual_services[0].http[0].routes[0].destination.service, fqdn);
    assert_ptr_equal(cfg->virtual_services[0].http[1].routes[0].destination.service, shrt);
    assert_ptr_equal(cfg->destination_rules[0].service, shrt);
    /* a name written in full says which entry it means: no warning for it */
    assert_ptr_equal(cfg->rate_limits[0].services[0], fqdn);
    /* --check warns: at each ambiguous reference, and at the entry the app's Host header cannot reach */
    expect_warning(&m, "t.yaml:19:16: VirtualService r: spec.hosts[0]: host \"reviews\" is ambiguous in namespace "
                       "shop: it names ServiceEntry fqdn (host \"reviews.shop.svc.cluster.local\"), not ServiceEntry "
                       "short (host \"reviews\")");
    expect_warning(&m, "t.yaml:19:63: VirtualService r: spec.http[0].route[0].destination.host: host \"reviews\" is "
                       "ambiguous in namespace shop: it names ServiceEntry fqdn (host "
                       "\"reviews.shop.svc.cluster.local\"), not ServiceEntry short (host \"reviews\")");
    expect_warning(&m, "t.yaml:14:16: ServiceEntry short: spec.hosts[0]: the app's Host: reviews reaches "
                       "ServiceEntry fqdn (host \"reviews.shop.svc.cluster.local\"), not this entry: the sidecar is in "
                       "namespace shop, where reviews means reviews.shop.svc.cluster.local");
    assert_int_equal(m.n_warn, 3);
    proxy_config_destroy(cfg);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    msgs_t m = {0};
    assert_null(proxy_config_load("/nonexistent/mesh.yaml", on_error, on_warning, &m));
    assert_int_equal(m.n_err, 1);
    assert_string_equal(m.err[0], "/nonexistent/mesh.yaml: cannot open: No such file or directory");
    proxy_config_destroy(NULL);
}

/* ---- PeerAuthentication and spec.identity ---- */

/* A Proxy in namespace shop labelled app: reviews, with an inbound listener forwarding to port 9080, + extra. */
static proxy_config_t *load_pa(const char *identity, const char *extra, msgs_t *m)
{
    char text[4096];
    snprintf(text, sizeof text,
             "apiVersion: outrider.io/v1alpha1\nkind: Proxy\n"
             "metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}\n"
             "spec:\n  inbound: {forwardTo: \"127.0.0.1:9080\"}\n%s%s",
             identity, extra);
    return load(text, m);
}

#define ID_FILES                                                                                                       \
    "  identity: {serviceAccount: bookinfo-reviews, rootCertificates: /dev/null, certificateChain: "                   \
    "/dev/null, privateKey: /dev/null}\n"
#define PA(name, ns, body)                                                                                             \
    "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " name ", namespace: " ns       \
    "}\nspec: " body "\n"

static void expect_mode(const char *extra, enum proxy_mtls_mode want, const char *decided)
{
    msgs_t m;
    proxy_config_t *cfg = load_pa(ID_FILES, extra, &m);
    if (cfg == NULL)
        dump(&m);
    assert_non_null(cfg);
    assert_int_equal(cfg->mtls.mode, want);
    if (decided == NULL)
        assert_null(cfg->mtls.decided);
    else
        assert_string_equal(cfg->mtls.decided->meta.name, decided);
    proxy_config_destroy(cfg);
}

static void test_peer_authentication(void **state)
{
    (void)state;
    /* nothing said: PERMISSIVE, as Istio's default */
    expect_mode("", PROXY_MTLS_PERMISSIVE, NULL);
    /* mesh-wide (root namespace), then namespace, then workload: the narrowest that sets a mode */
    expect_mode(PA("mesh", "istio-system", "{mtls: {mode: STRICT}}"), PROXY_MTLS_STRICT, "mesh");
    expect_mode(PA("mesh", "istio-system", "{mtls: {mode: STRICT}}") PA("ns", "shop", "{mtls: {mode: PERMISSIVE}}"),
                PROXY_MTLS_PERMISSIVE, "ns");
    /* another namespace's policy and a selector that does not match do not apply */
    expect_mode(PA("other", "books", "{mtls: {mode: STRICT}}")
                    PA("ratings", "shop", "{selector: {matchLabels: {app: ratings}}, mtls: {mode: STRICT}}"),
                PROXY_MTLS_PERMISSIVE, NULL);
    /* UNSET inherits; a workload policy's portLevelMtls for the app's port wins */
    expect_mode(PA("ns", "shop", "{mtls: {mode: STRICT}}")
                    PA("wl", "shop", "{selector: {matchLabels: {app: reviews}}, mtls: {mode: UNSET}}"),
                PROXY_MTLS_STRICT, "ns");
    expect_mode(PA("ns", "shop", "{mtls: {mode: STRICT}}")
                    PA("wl", "shop",
                       "{selector: {matchLabels: {app: reviews}}, portLevelMtls: {9080: {mode: DISABLE}, "
                       "8080: {mode: PERMISSIVE}}}"),
                PROXY_MTLS_DISABLE, "wl");
    expect_mode(PA("wl", "shop",
                   "{selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}, portLevelMtls: "
                   "{8080: {mode: DISABLE}}}"),
                PROXY_MTLS_STRICT, "wl");

    /* errors and warnings, at file:line:col */
    msgs_t m;
    proxy_config_t *cfg = load_pa("", PA("ns", "shop", "{mtls: {mode: STRICT}}"), &m);
    assert_null(cfg);
    expect_error(&m, "t.yaml:10:21: PeerAuthentication ns: mode STRICT accepts only mutual TLS, so this sidecar needs "
                     "a certificate: give the Proxy spec.identity");
    cfg = load_pa(ID_FILES,
                  PA("p", "shop", "{mtls: {mode: STRICTER}, portLevelMtls: {x: {mode: STRICT}, 70000: {}}}")
                      PA("q", "shop", "{targetRef: {kind: Gateway}}"),
                  &m);
    assert_null(cfg);
    expect_error(&m, "t.yaml:11:21: PeerAuthentication p: spec.mtls.mode: unknown value \"STRICTER\" (expected one of "
                     "UNSET, PERMISSIVE, STRICT, DISABLE)");
    expect_error(&m, "t.yaml:11:48: PeerAuthentication p: spec.portLevelMtls.x: a port number 1-65535 is expected as "
                     "the key, got \"x\"");
    expect_error(&m, "t.yaml:11:67: PeerAuthentication p: spec.portLevelMtls.70000: a port number 1-65535 is expected "
                     "as the key, got \"70000\"");
    expect_error(&m, "t.yaml:11:32: PeerAuthentication p: spec.portLevelMtls: portLevelMtls applies to the workloads a "
                     "selector.matchLabels chooses, as Istio requires");
    expect_error(
        &m, "t.yaml:16:8: PeerAuthentication q: spec.targetRef: targetRef selects waypoints and gateways; a sidecar is "
            "chosen with selector.matchLabels");
    cfg = load_pa(ID_FILES, PA("a", "shop", "{mtls: {mode: STRICT}}") PA("b", "shop", "{mtls: {mode: DISABLE}}"), &m);
    assert_non_null(cfg);
    assert_int_equal(cfg->mtls.mode, PROXY_MTLS_STRICT);
    expect_warning(&m, "t.yaml:13:1: PeerAuthentication b: not used: PeerAuthentication a (line 8) is already "
                       "the one without a selector in namespace shop; Istio takes one");
    proxy_config_destroy(cfg);
}

static void test_identity(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load_pa(ID_FILES, "", &m);
    assert_non_null(cfg);
    const proxy_identity_t *id = &cfg->proxy.identity;
    assert_true(id->given);
    assert_string_equal(id->spiffe_id, "spiffe://cluster.local/ns/shop/sa/bookinfo-reviews");
    assert_int_equal(id->certificate_ttl_ms, 24ull * 3600 * 1000);
    buf_t b = BUF_INIT;
    proxy_config_to_json(cfg, &b);
    assert_non_null(
        strstr(b.data, "\"identity\":{\"spiffeId\":\"spiffe://cluster.local/ns/shop/sa/bookinfo-reviews\""));
    assert_non_null(strstr(b.data, "\"effectivePeerAuthentication\":{\"mode\":\"PERMISSIVE\""));
    buf_dispose(&b);
    proxy_config_destroy(cfg);

    cfg = load_pa("  identity: {trustDomain: example.org, rootCertificates: /dev/null, caAddress: "
                  "\"https://127.0.0.1:15012\", tokenFile: /dev/null, certificateTtl: 1h}\n",
                  "", &m);
    assert_non_null(cfg);
    assert_string_equal(cfg->proxy.identity.spiffe_id, "spiffe://example.org/ns/shop/sa/default");
    assert_int_equal(cfg->proxy.identity.certificate_ttl_ms, 3600000);
    proxy_config_destroy(cfg);

    cfg = load_pa("  identity: {serviceAccount: Büro, trustDomain: \"a b\", caAddress: \"http://ca:1\", "
                  "certificateChain: /dev/null, certificateTtl: 1s}\n",
                  "", &m);
    assert_null(cfg);
    expect_error(&m, "t.yaml:6:30: Proxy reviews-v1: spec.identity.serviceAccount: \"Büro\" is not a valid service "
                     "account name (lowercase letters, digits, '-' and '.', at most 253)");
    expect_error(&m, "t.yaml:6:50: Proxy reviews-v1: spec.identity.trustDomain: \"a b\" is not a valid trust domain "
                     "(lowercase letters, digits, '.', '-', '_')");
    expect_error(&m,
                 "t.yaml:6:68: Proxy reviews-v1: spec.identity.caAddress: expected the mesh CA as https://HOST:PORT "
                 "(outriderctl ca serve), got \"http://ca:1\"");
    expect_error(&m, "t.yaml:6:127: Proxy reviews-v1: spec.identity.certificateTtl: must be between 2s and 90 days "
                     "(2160h)");
    expect_error(&m, "t.yaml:6:14: Proxy reviews-v1: spec.identity.rootCertificates: missing required field");
    expect_error(&m, "t.yaml:6:14: Proxy reviews-v1: spec.identity: either certificate files (certificateChain, "
                     "privateKey) or the mesh CA (caAddress, tokenFile), not both");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_mesh),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_interception),
        cmocka_unit_test(test_linger_limits),
        cmocka_unit_test(test_base_is_valid),
        cmocka_unit_test(test_unknown_kind_and_api),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_regex),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_otlp_endpoints),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_peer_authentication),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_namespace_implicit),
        cmocka_unit_test(test_namespace_explicit),
        cmocka_unit_test(test_namespace_errors),
        cmocka_unit_test(test_host_forms),
        cmocka_unit_test(test_namespace_ambiguity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
