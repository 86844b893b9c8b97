/*
 * Unit tests for proxy/config_authz.c and proxy/authz.c: AuthorizationPolicy
 * documents load with Istio's validation (errors at file:line:col, CUSTOM
 * refused, warnings for rules that can never match), the right documents
 * apply to the proxy (root namespace, its namespace, selectors), and the
 * compiled matcher decides as Istio does: DENY before ALLOW, allow-nothing,
 * allow-all, AUDIT, every source/operation field and its not- form, the
 * when keys, path templates, hosts with and without ports. Also the path
 * normalization the inbound side applies first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/authz.h"
#include "proxy/config.h"

#define MAX_MSGS 32

typedef struct msgs {
    int n_err, n_warn;
    char err[MAX_MSGS][512];
    char warn[MAX_MSGS][512];
} msgs_t;

static void on_msg(char (*list)[512], int *n, const char *m)
{
    if (*n < MAX_MSGS)
        snprintf(list[*n], sizeof list[0], "%s", m);
    (*n)++;
}

static void on_error(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    on_msg(c->err, &c->n_err, m);
}

static void on_warning(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    on_msg(c->warn, &c->n_warn, m);
}

/* The Proxy (namespace shop, app reviews, with an identity unless plain), then extra documents. */
static proxy_config_t *load(const char *extra, int identity, msgs_t *m)
{
    char text[8192];
    snprintf(text, sizeof text,
             "apiVersion: outrider.io/v1alpha1\n"
             "kind: Proxy\n"
             "metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}\n"
             "spec:\n"
             "  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9080}\n"
             "%s"
             "---\n%s",
             identity ? "  identity: {serviceAccount: reviews, rootCertificates: /dev/null, certificateChain: "
                        "/dev/null, privateKey: /dev/null}\n"
                      : "",
             extra);
    memset(m, 0, sizeof *m);
    return proxy_config_load_string("t.yaml", text, strlen(text), on_error, on_warning, m);
}

static void dump(const msgs_t *m)
{
    for (int i = 0; i < m->n_err && i < MAX_MSGS; i++)
        fprintf(stderr, "  error: %s\n", m->err[i]);
    for (int i = 0; i < m->n_warn && i < MAX_MSGS; i++)
        fprintf(stderr, "  warning: %s\n", m->warn[i]);
}

static void expect(const char (*list)[512], int n, const char *want, const msgs_t *m)
{
    for (int i = 0; i < n && i < MAX_MSGS; i++)
        if (strstr(list[i], want) != NULL)
            return;
    dump(m);
    fail_msg("no message containing: %s", want);
}

#define AP(ns, body)                                                                                                   \
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: " ns "}\nspec:"       \
    "\n" body

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *want;
    } cases[] = {
        {AP("shop", "  action: CUSTOM\n  provider: {name: ext}\n"),
         "t.yaml:12:11: AuthorizationPolicy p: spec.action: CUSTOM hands the decision to an external authorizer"},
        {AP("shop", "  provider: {name: ext}\n"),
         "t.yaml:12:3: AuthorizationPolicy p: spec.provider: provider goes with "
         "action CUSTOM only"},
        {AP("shop", "  action: PERMIT\n"), "spec.action"},
        {AP("shop", "  rules:\n  - from: [{source: {ipBlocks: [\"10.0.0.0/33\"]}}]\n"),
         "t.yaml:13:34: AuthorizationPolicy p: spec.rules[0].from[0].source.ipBlocks[0]: \"10.0.0.0/33\" is not an IP"},
        {AP("shop", "  rules:\n  - to: [{operation: {ports: [\"http\"]}}]\n"),
         "spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port"},
        {AP("shop", "  rules:\n  - to: [{operation: {paths: [\"/a/{**}/b\"]}}]\n"),
         "{**} may only be the last segment"},
        {AP("shop", "  rules:\n  - to: [{operation: {paths: [\"/a/x{*}\"]}}]\n"), "are whole segments"},
        {AP("shop", "  rules:\n  - to: [{operation: {methods: [\"G*T\"]}}]\n"),
         "'*' may only stand at the start or the end"},
        {AP("shop", "  rules:\n  - from: [{source: {principals: [\"\"]}}]\n"), "empty value"},
        {AP("shop", "  rules:\n  - when: [{key: request.colour, values: [red]}]\n"),
         "t.yaml:13:18: AuthorizationPolicy p: spec.rules[0].when[0].key: unknown key \"request.colour\""},
        {AP("shop", "  rules:\n  - when: [{key: \"request.headers[]\", values: [a]}]\n"), "unknown key"},
        {AP("shop", "  rules:\n  - when: [{key: \"experimental.envoy.filters.a.b[c]\", values: [a]}]\n"),
         "Envoy filter metadata is not available"},
        {AP("shop", "  rules:\n  - when: [{key: source.ip}]\n"), "a condition needs values or notValues"},
        {AP("shop", "  rules:\n  - when: [{key: destination.port, values: [\"99999\"]}]\n"), "is not a port"},
        {AP("shop", "  rules:\n  - from: [{src: {}}]\n"), "spec.rules[0].from[0].src: unknown field"},
        {AP("shop", "  rules:\n  - from: [{source: {serviceAccountz: [a]}}]\n"), "serviceAccountz: unknown field"},
        {AP("shop", "  targetRef: {kind: Gateway, name: gw}\n"), "targetRef selects waypoints and gateways"},
        {"apiVersion: security.istio.io/v2\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {}\n",
         "unknown apiVersion \"security.istio.io/v2\" for kind AuthorizationPolicy"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgs_t m;
        proxy_config_t *cfg = load(cases[i].doc, 1, &m);
        if (cfg != NULL) {
            proxy_config_destroy(cfg);
            fail_msg("case %zu loaded: %s", i, cases[i].doc);
        }
        expect(m.err, m.n_err, cases[i].want, &m);
    }
}

static void test_apply_and_warn(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg =
        load(AP("istio-system", "  action: DENY\n  rules: [{}]\n") "---\n" AP(
                 "shop",
                 "  selector: {matchLabels: {app: ratings}}\n") "---\n"
                                                                "apiVersion: security.istio.io/v1\nkind: "
                                                                "AuthorizationPolicy\n"
                                                                "metadata: {name: q, namespace: shop}\nspec:\n  "
                                                                "selector: {matchLabels: {app: "
                                                                "reviews}}\n  rules:\n  - from: [{source: {namespaces: "
                                                                "[shop]}}]\n---\n" AP("other", "  rules: [{}]\n"),
             0, &m);
    if (cfg == NULL)
        dump(&m);
    assert_non_null(cfg);
    /* root namespace (mesh-wide) and the matching selector apply; the ratings one and namespace other do not */
    assert_int_equal(cfg->n_authz, 2);
    assert_string_equal(cfg->authz[0]->meta.namespace, "istio-system");
    assert_string_equal(cfg->authz[1]->meta.name, "q");
    /* no identity: namespaces come from mutual TLS, so q's rule never matches */
    expect(m.warn, m.n_warn,
           "AuthorizationPolicy q: spec.rules[0]: this rule can never match here: principals and "
           "namespaces come from the peer's certificate",
           &m);
    proxy_config_destroy(cfg);

    cfg = load(AP("shop", "  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n"), 1, &m);
    assert_non_null(cfg);
    expect(m.warn, m.n_warn, "requestPrincipals come from a JWT, and no RequestAuthentication applies", &m);
    proxy_config_destroy(cfg);

    /* with a RequestAuthentication that applies, no warning; its jwtRules are collected (a second rule for the
     * same issuer is not used, with a warning) */
    cfg = load(
        AP("shop",
           "  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n") "---\n"
                                                                             "apiVersion: security.istio.io/v1\nkind: "
                                                                             "RequestAuthentication\nmetadata: {name: "
                                                                             "ra, namespace: shop}\n"
                                                                             "spec:\n  jwtRules:\n  - issuer: i\n    "
                                                                             "jwks: '{\"keys\": [{\"kty\": \"OKP\", "
                                                                             "\"crv\": \"Ed25519\", "
                                                                             "\"x\": "
                                                                             "\"11qYAYKxCrfVS_"
                                                                             "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}'\n  - "
                                                                             "issuer: i\n    jwks: '{\"keys\": "
                                                                             "[{\"kty\": \"OKP\", \"crv\": "
                                                                             "\"Ed25519\", \"x\": "
                                                                             "\"11qYAYKxCrfVS_"
                                                                             "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}'\n",
        1, &m);
    if (cfg == NULL)
        dump(&m);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_jwt_rules, 1);
    for (int i = 0; i < m.n_warn; i++)
        assert_null(strstr(m.warn[i], "can never match"));
    expect(m.warn, m.n_warn, "not used: another jwtRule for issuer \"i\" applies first", &m);
    proxy_config_destroy(cfg);
}

/* ---- the matcher ---- */

typedef struct req {
    authz_request_t r;
    struct sockaddr_storage src;
    http1_header_t h[4];
} req_t;

static uint32_t claims(const void *ctx, const char *const *path, uint32_t depth, str_t *out, uint32_t max)
{
    (void)ctx;
    if (depth == 1 && strcmp(path[0], "groups") == 0 && max >= 2) {
        out[0] = (str_t){"dev", 3};
        out[1] = (str_t){"admin", 5};
        return 2;
    }
    if (depth == 2 && strcmp(path[0], "org") == 0 && strcmp(path[1], "team") == 0) {
        out[0] = (str_t){"blue", 4};
        return 1;
    }
    return 0;
}

#define S(x) ((str_t){(x), (uint32_t)strlen(x)})

static req_t request(const char *method, const char *path, const char *principal)
{
    req_t q;
    memset(&q, 0, sizeof q);
    struct sockaddr_in *in = (struct sockaddr_in *)&q.src;
    in->sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &in->sin_addr);
    q.h[0] = (http1_header_t){S("x-version"), S("v1")};
    q.h[1] = (http1_header_t){S("X-Tag"), S("a")};
    q.h[2] = (http1_header_t){S("x-tag"), S("b")};
    q.r.method = S(method);
    q.r.path = S(path);
    q.r.authority = S("reviews.shop:9080");
    q.r.n_headers = 3;
    q.r.dest_port = 9080;
    q.r.principal = principal ? S(principal) : (str_t){NULL, 0};
    q.r.claim = claims;
    return q;
}

/* The request's pointers into itself (set where it lives: request() returns a copy). */
static authz_request_t *req_bind(req_t *q)
{
    q->r.headers = q->h;
    q->r.source = q->r.remote = &q->src;
    return &q->r;
}

static authz_t *compile(const char *docs, proxy_config_t **cfg)
{
    msgs_t m;
    *cfg = load(docs, 1, &m);
    if (*cfg == NULL)
        dump(&m);
    assert_non_null(*cfg);
    return authz_compile(*cfg);
}

/* Whether each request of the policies' table is allowed as expected. */
static bool allowed(const char *docs, req_t q)
{
    proxy_config_t *cfg;
    authz_t *a = compile(docs, &cfg);
    authz_decision_t d;
    authz_check(a, req_bind(&q), &d);
    authz_free(a);
    proxy_config_destroy(cfg);
    return d.allowed;
}

#define PP "spiffe://cluster.local/ns/shop/sa/productpage"
#define OTHER "spiffe://cluster.local/ns/other/sa/sleep"

static void test_actions(void **state)
{
    (void)state;
    req_t q = request("GET", "/reviews/1", PP);
    assert_true(allowed("", q));                            /* no policy: allowed (and nothing compiled) */
    assert_false(allowed(AP("shop", "  {}\n"), q));         /* allow-nothing */
    assert_true(allowed(AP("shop", "  rules: [{}]\n"), q)); /* allow-all */
    assert_false(allowed(AP("shop", "  action: DENY\n  rules: [{}]\n"), q)); /* deny-all */
    assert_true(allowed(AP("shop", "  action: DENY\n"), q));                 /* a DENY without rules denies nothing */
    /* DENY wins over ALLOW */
    assert_false(allowed(AP("shop", "  rules: [{}]\n") "---\napiVersion: security.istio.io/v1\nkind: "
                                                       "AuthorizationPolicy\nmetadata: {name: d, namespace: shop}\n"
                                                       "spec:\n  action: DENY\n  rules: [{to: [{operation: {methods: "
                                                       "[GET]}}]}]\n",
                         q));

    /* AUDIT does not decide, and is reported */
    proxy_config_t *cfg;
    authz_t *a =
        compile(AP("shop", "  action: AUDIT\n  rules: [{to: [{operation: {paths: [\"/reviews/*\"]}}]}]\n"), &cfg);
    authz_decision_t d;
    authz_check(a, req_bind(&q), &d);
    assert_true(d.allowed);
    assert_non_null(d.audit);
    assert_null(d.policy);
    buf_t out = BUF_INIT;
    authz_render_prometheus(a, &out);
    assert_non_null(strstr(out.data, "outrider_proxy_authz_requests_total{policy=\"shop/p\",action=\"AUDIT\","
                                     "result=\"audited\"} 1\n"));
    buf_dispose(&out);
    authz_free(a);
    proxy_config_destroy(cfg);

    /* the deciding policy and rule, and the counters */
    a = compile(AP("shop", "  rules:\n  - to: [{operation: {methods: [POST]}}]\n  - to: [{operation: {methods: "
                           "[GET]}}]\n"),
                &cfg);
    authz_check(a, req_bind(&q), &d);
    assert_true(d.allowed);
    assert_string_equal(d.policy->meta.name, "p");
    assert_int_equal(d.rule, 1);
    req_t del = request("DELETE", "/", PP);
    authz_check(a, req_bind(&del), &d);
    assert_false(d.allowed);
    assert_null(d.policy);
    out = (buf_t)BUF_INIT;
    authz_render_prometheus(a, &out);
    assert_non_null(strstr(out.data, "{policy=\"shop/p\",action=\"ALLOW\",result=\"allowed\"} 1\n"));
    assert_non_null(strstr(out.data, "{policy=\"none\",action=\"ALLOW\",result=\"denied\"} 1\n"));
    buf_dispose(&out);
    authz_free(a);
    proxy_config_destroy(cfg);
}

#define RULE(x) AP("shop", "  rules:\n  - " x "\n")

static void test_fields(void **state)
{
    (void)state;
    req_t q = request("GET", "/reviews/1", PP), o = request("GET", "/reviews/1", OTHER),
          plain = request("GET", "/reviews/1", NULL);
    /* principals: exact, prefix, suffix, any; namespaces; their not- forms (no principal: matches the not- form) */
    assert_true(allowed(RULE("from: [{source: {principals: [\"cluster.local/ns/shop/sa/productpage\"]}}]"), q));
    assert_false(allowed(RULE("from: [{source: {principals: [\"cluster.local/ns/shop/sa/productpage\"]}}]"), o));
    assert_true(allowed(RULE("from: [{source: {principals: [\"cluster.local/ns/shop/*\"]}}]"), q));
    assert_true(allowed(RULE("from: [{source: {principals: [\"*/sa/productpage\"]}}]"), q));
    assert_true(allowed(RULE("from: [{source: {principals: [\"*\"]}}]"), o));
    assert_false(allowed(RULE("from: [{source: {principals: [\"*\"]}}]"), plain));
    assert_true(allowed(RULE("from: [{source: {namespaces: [shop]}}]"), q));
    assert_false(allowed(RULE("from: [{source: {namespaces: [shop]}}]"), o));
    assert_false(allowed(RULE("from: [{source: {notNamespaces: [other]}}]"), o));
    assert_true(allowed(RULE("from: [{source: {notPrincipals: [\"*/sa/sleep\"]}}]"), plain));
    /* any of several sources */
    assert_true(allowed(RULE("from: [{source: {namespaces: [nope]}}, {source: {namespaces: [other]}}]"), o));
    /* ipBlocks and remoteIpBlocks */
    assert_true(allowed(RULE("from: [{source: {ipBlocks: [\"10.1.0.0/16\"]}}]"), q));
    assert_false(allowed(RULE("from: [{source: {ipBlocks: [\"10.2.0.0/16\"]}}]"), q));
    assert_false(allowed(RULE("from: [{source: {notIpBlocks: [\"10.1.2.3\"]}}]"), q));
    assert_true(allowed(RULE("from: [{source: {remoteIpBlocks: [\"10.0.0.0/8\"]}}]"), q));
    assert_false(allowed(RULE("from: [{source: {notRemoteIpBlocks: [\"10.0.0.0/8\"]}}]"), q));
    /* operation: methods, paths (glob, template), hosts (case, with/without port), ports */
    assert_false(allowed(RULE("to: [{operation: {methods: [POST]}}]"), q));
    assert_false(allowed(RULE("to: [{operation: {notMethods: [GET]}}]"), q));
    assert_true(allowed(RULE("to: [{operation: {paths: [\"/reviews/*\"]}}]"), q));
    assert_true(allowed(RULE("to: [{operation: {paths: [\"*/1\"]}}]"), q));
    assert_false(allowed(RULE("to: [{operation: {notPaths: [\"/reviews*\"]}}]"), q));
    assert_true(allowed(RULE("to: [{operation: {paths: [\"/{*}/1\"]}}]"), q));
    assert_true(allowed(RULE("to: [{operation: {paths: [\"/{**}\"]}}]"), q));
    assert_false(allowed(RULE("to: [{operation: {paths: [\"/reviews/{*}/x\"]}}]"), q));
    req_t deep = request("GET", "/reviews/1/2", PP);
    assert_false(allowed(RULE("to: [{operation: {paths: [\"/reviews/{*}\"]}}]"), deep));
    assert_true(allowed(RULE("to: [{operation: {paths: [\"/reviews/{**}\"]}}]"), deep));
    req_t root = request("GET", "/reviews/", PP);
    assert_false(allowed(RULE("to: [{operation: {paths: [\"/reviews/{*}\"]}}]"), root));
    assert_true(allowed(RULE("to: [{operation: {hosts: [\"REVIEWS.shop\"]}}]"), q));
    assert_true(allowed(RULE("to: [{operation: {hosts: [\"reviews.shop:9080\"]}}]"), q));
    assert_false(allowed(RULE("to: [{operation: {hosts: [\"reviews.shop:80\"]}}]"), q));
    assert_true(allowed(RULE("to: [{operation: {hosts: [\"*.shop\"]}}]"), q));
    assert_false(allowed(RULE("to: [{operation: {notHosts: [\"reviews.*\"]}}]"), q));
    assert_true(allowed(RULE("to: [{operation: {ports: [\"9080\"]}}]"), q));
    assert_false(allowed(RULE("to: [{operation: {notPorts: [\"9080\"]}}]"), q));
    /* all of from, to and when must match */
    assert_false(allowed(RULE("from: [{source: {namespaces: [shop]}}]\n    to: [{operation: {methods: [PUT]}}]"), q));
    /* when: headers (any line; not- form sees every line), source.*, destination.port, claims */
    assert_true(allowed(RULE("when: [{key: \"request.headers[X-Version]\", values: [v1]}]"), q));
    assert_true(allowed(RULE("when: [{key: \"request.headers[x-tag]\", values: [b]}]"), q));
    assert_false(allowed(RULE("when: [{key: \"request.headers[x-tag]\", notValues: [b]}]"), q));
    assert_false(allowed(RULE("when: [{key: \"request.headers[x-missing]\", values: [\"*\"]}]"), q));
    assert_true(allowed(RULE("when: [{key: source.ip, values: [\"10.1.2.0/24\"]}]"), q));
    assert_true(allowed(RULE("when: [{key: source.namespace, values: [shop]}]"), q));
    assert_true(allowed(RULE("when: [{key: source.principal, values: [\"*/sa/productpage\"]}]"), q));
    assert_false(allowed(RULE("when: [{key: destination.port, notValues: [\"9080\"]}]"), q));
    assert_true(allowed(RULE("when: [{key: \"request.auth.claims[groups]\", values: [admin]}]"), q));
    assert_true(allowed(RULE("when: [{key: \"request.auth.claims[org][team]\", values: [bl*]}]"), q));
    assert_false(allowed(RULE("when: [{key: \"request.auth.claims[groups]\", notValues: [dev]}]"), q));
    assert_false(allowed(RULE("when: [{key: request.auth.principal, values: [\"*\"]}]"), q));
    /* several conditions: all */
    assert_false(allowed(RULE("when: [{key: source.namespace, values: [shop]}, {key: \"request.headers[x-version]\", "
                              "values: [v2]}]"),
                         q));
}

/* The candidate index decides as a scan over every rule does, for requests of every kind. */
static void test_index_agrees(void **state)
{
    (void)state;
    static const char docs[] =
        AP("shop",
           "  action: DENY\n  rules:\n  - to: [{operation: {paths: [\"/admin/*\", \"/ops\"], methods: [DELETE]}}]\n"
           "  - when: [{key: \"request.headers[x-block]\", values: [\"1\"]}]\n") "---\napiVersion: "
                                                                                 "security.istio.io/v1\nkind: "
                                                                                 "AuthorizationPolicy\nmetadata: "
                                                                                 "{name: a2, namespace: shop}\n"
                                                                                 "spec:\n  rules:\n  - from: [{source: "
                                                                                 "{principals: "
                                                                                 "[\"cluster.local/ns/shop/sa/"
                                                                                 "productpage\"]}}]\n"
                                                                                 "    to: [{operation: {paths: "
                                                                                 "[\"/reviews/{*}\"]}}]\n"
                                                                                 "  - from: [{source: {ipBlocks: "
                                                                                 "[\"10.1.0.0/16\", "
                                                                                 "\"192.168.0.0/24\"]}}]\n"
                                                                                 "  - to: [{operation: {paths: "
                                                                                 "[\"/api/v1/*\", \"/health\"], "
                                                                                 "notMethods: [POST]}}]\n"
                                                                                 "  - to: [{operation: {paths: "
                                                                                 "[\"*.png\"]}}]\n"
                                                                                 "  - from: [{source: {namespaces: "
                                                                                 "[other]}}]\n    when: [{key: "
                                                                                 "\"request.headers[x-version]\", "
                                                                                 "values: [v2]}]\n"
                                                                                 "---\napiVersion: "
                                                                                 "security.istio.io/v1\nkind: "
                                                                                 "AuthorizationPolicy\nmetadata: "
                                                                                 "{name: a3, namespace: shop}\n"
                                                                                 "spec:\n  action: AUDIT\n  rules:\n  "
                                                                                 "- to: [{operation: {paths: "
                                                                                 "[\"/api/*\"]}}]\n  - {}\n"
                                                                                 "---\napiVersion: "
                                                                                 "security.istio.io/v1\nkind: "
                                                                                 "AuthorizationPolicy\nmetadata: "
                                                                                 "{name: a4, namespace: shop}\n"
                                                                                 "spec:\n  action: DENY\n  rules:\n  - "
                                                                                 "from: [{source: {principals: "
                                                                                 "[\"cluster.local/ns/other/sa/"
                                                                                 "sleep\"]}}]\n"
                                                                                 "    to: [{operation: {methods: "
                                                                                 "[PUT]}}]\n";
    proxy_config_t *cfg;
    authz_t *a = compile(docs, &cfg);
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    static const char *const paths[] = {"/",         "/admin/x",   "/admin",       "/ops",
                                        "/ops/x",    "/reviews/1", "/reviews/1/2", "/api/v1/x",
                                        "/api/v2/y", "/health",    "/a.png",       "/x/b.png"};
    static const char *const principals[] = {NULL, PP, OTHER};
    static const char *const ips[] = {"10.1.2.3", "10.2.0.1", "192.168.0.9", "127.0.0.1"};
    int n = 0, denied = 0;
    for (size_t m = 0; m < 4; m++)
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++)
            for (size_t pr = 0; pr < 3; pr++)
                for (size_t ip = 0; ip < 4; ip++)
                    for (int hdr = 0; hdr < 4; hdr++) {
                        req_t q = request(methods[m], paths[p], principals[pr]);
                        req_bind(&q);
                        inet_pton(AF_INET, ips[ip], &((struct sockaddr_in *)&q.src)->sin_addr);
                        q.h[1] = (http1_header_t){S("X-Block"), S(hdr & 1 ? "1" : "0")};
                        q.h[2] = (http1_header_t){S("x-version"), S(hdr & 2 ? "v2" : "v1")};
                        authz_decision_t fast, full;
                        authz_check_mode(a, &q.r, &fast, false);
                        authz_check_mode(a, &q.r, &full, true);
                        if (fast.allowed != full.allowed || fast.policy != full.policy || fast.rule != full.rule ||
                            fast.audit != full.audit)
                            fail_msg("%s %s %s %s hdr %d: index %d/%s/%d, scan %d/%s/%d", methods[m], paths[p],
                                     principals[pr] ? principals[pr] : "-", ips[ip], hdr, fast.allowed,
                                     fast.policy ? fast.policy->meta.name : "-", fast.rule, full.allowed,
                                     full.policy ? full.policy->meta.name : "-", full.rule);
                        n++;
                        denied += !full.allowed;
                    }
    assert_true(denied > 0 && denied < n); /* the set tells requests apart */
    authz_free(a);
    proxy_config_destroy(cfg);
}

/* Over TCP, as Istio: an ALLOW rule with an HTTP-only field never matches; a DENY rule drops those fields. */
static void test_tcp(void **state)
{
    (void)state;
    req_t t = request("", "", PP), plain = request("", "", NULL), http = request("POST", "/x", PP);
    t.r.tcp = plain.r.tcp = true;
    t.r.path = plain.r.path = t.r.method = plain.r.method = (str_t){NULL, 0};
    assert_true(allowed(RULE("to: [{operation: {ports: [\"9080\"]}}]"), t));
    assert_false(allowed(RULE("to: [{operation: {ports: [\"9081\"]}}]"), t));
    assert_true(allowed(RULE("from: [{source: {principals: [\"*/sa/productpage\"]}}]"), t));
    assert_false(allowed(RULE("from: [{source: {principals: [\"*/sa/productpage\"]}}]"), plain));
    /* ALLOW with methods: ignored over TCP (and no other ALLOW matches) */
    assert_false(allowed(RULE("to: [{operation: {ports: [\"9080\"], methods: [GET]}}]"), t));
    assert_false(allowed(RULE("when: [{key: \"request.headers[x]\", values: [\"1\"]}]"), t));
    /* DENY with methods or paths: those left out, so it denies the connection */
#define DENY_AND_ALLOW_ALL(rule)                                                                                       \
    AP("shop", "  action: DENY\n  rules:\n  - " rule "\n")                                                             \
    "---\napiVersion: security.istio.io/v1\nkind: "                                                                    \
    "AuthorizationPolicy\nmetadata: {name: all, namespace: "                                                           \
    "shop}\nspec:\n  rules: [{}]\n"
    assert_false(allowed(DENY_AND_ALLOW_ALL("to: [{operation: {ports: [\"9080\"], methods: [GET]}}]"), t));
    assert_true(allowed(DENY_AND_ALLOW_ALL("to: [{operation: {ports: [\"9080\"], methods: [GET]}}]"), http));
    assert_false(allowed(DENY_AND_ALLOW_ALL("to: [{operation: {paths: [\"/admin\"]}}]"), t));
    assert_true(allowed(DENY_AND_ALLOW_ALL("to: [{operation: {paths: [\"/admin\"]}}]"), http));
    assert_false(allowed(DENY_AND_ALLOW_ALL("when: [{key: \"request.headers[x]\", values: [\"1\"]}]"), t));
    assert_true(allowed(DENY_AND_ALLOW_ALL("to: [{operation: {ports: [\"9081\"], methods: [GET]}}]"), t));
    assert_true(allowed(DENY_AND_ALLOW_ALL("from: [{source: {namespaces: [other]}}]"), t));
}

/* istio.io/dry-run: evaluated as a set of its own, reported, never enforced */
static void test_dry_run(void **state)
{
    (void)state;
    static const char docs[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                               "metadata: {name: dry, namespace: shop, annotations: {istio.io/dry-run: \"true\"}}\n"
                               "spec:\n  action: DENY\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n";
    proxy_config_t *cfg;
    authz_t *a = compile(docs, &cfg);
    assert_non_null(a);
    req_t q = request("GET", "/x", PP), p = request("POST", "/x", PP);
    authz_decision_t d;
    authz_check(a, req_bind(&q), &d);
    assert_true(d.allowed); /* not enforced */
    assert_true(d.dry_run);
    assert_false(d.dry_run_allowed); /* but it would have denied */
    assert_string_equal(d.dry_run_policy->meta.name, "dry");
    authz_check(a, req_bind(&p), &d);
    assert_true(d.allowed && d.dry_run && d.dry_run_allowed);
    buf_t out = BUF_INIT;
    authz_render_prometheus(a, &out);
    assert_non_null(strstr(out.data, "{policy=\"shop/dry\",action=\"DENY\",result=\"dry_run_denied\"} 1\n"));
    buf_dispose(&out);
    authz_free(a);
    proxy_config_destroy(cfg);

    msgs_t m;
    cfg = load("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
               "metadata: {name: dry, namespace: shop, annotations: {istio.io/dry-run: \"yes\"}}\nspec: {}\n",
               1, &m);
    assert_null(cfg);
    expect(m.err, m.n_err, "metadata.annotations istio.io/dry-run: expected \"true\" or \"false\", got \"yes\"", &m);
}

static void norm(const char *in, const char *want)
{
    buf_t out = BUF_INIT;
    buf_append_str(&out, "pre");
    assert_int_equal(authz_normalize_path(S(in), &out), 0);
    assert_string_equal(out.data + 3, want);
    buf_dispose(&out);
}

static void test_normalize(void **state)
{
    (void)state;
    norm("/", "/");
    norm("/a/b", "/a/b");
    norm("/a/./b", "/a/b");
    norm("/a/../b", "/b");
    norm("/public/../admin", "/admin");
    norm("/../../admin", "/admin");
    norm("/a/b/..", "/a/");
    norm("/a/b/.", "/a/b/");
    norm("/a/..b/c", "/a/..b/c");
    norm("/%61dmin", "/admin");
    norm("/%2e%2E/admin", "/admin");
    norm("/a%2Fb", "/a%2Fb"); /* a reserved escape stays */
    norm("/a%zz", "/a%zz");
    norm("/a//b", "/a//b"); /* slashes are not merged (Istio's BASE) */
    buf_t out = BUF_INIT;
    assert_int_equal(authz_normalize_path(S("admin"), &out), -1);
    assert_int_equal(authz_normalize_path(S(""), &out), -1);
    buf_dispose(&out);
}

/* trustDomainAliases: principals of an alias and of the trust domain name the same workloads, both ways */
static void test_trust_domain_aliases(void **state)
{
    (void)state;
    static const char text[] =
        "apiVersion: outrider.io/v1alpha1\nkind: Proxy\n"
        "metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}\n"
        "spec:\n  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9080}\n"
        "  identity: {trustDomain: example.org, trustDomainAliases: [old.example, legacy.example], serviceAccount: "
        "reviews, rootCertificates: /dev/null, certificateChain: /dev/null, privateKey: /dev/null}\n"
        "---\n" AP("shop", "  rules:\n  - from: [{source: {principals: [\"old.example/ns/shop/sa/productpage\"]}}]\n"
                           "  - when: [{key: source.principal, values: [\"legacy.example/ns/other/*\"]}]\n");
    msgs_t m = {0};
    proxy_config_t *cfg = proxy_config_load_string("t.yaml", text, strlen(text), on_error, on_warning, &m);
    if (cfg == NULL)
        dump(&m);
    assert_non_null(cfg);
    const proxy_identity_t *id = &cfg->proxy.identity;
    assert_int_equal(id->n_peer_ids, 3); /* the TLS side accepts peers of every alias */
    assert_string_equal(id->peer_ids[0], "spiffe://example.org/");
    assert_string_equal(id->peer_ids[2], "spiffe://legacy.example/");
    authz_t *a = authz_compile(cfg);
    static const struct {
        const char *peer;
        bool allowed;
    } cases[] = {
        {"spiffe://example.org/ns/shop/sa/productpage", true},
        {"spiffe://old.example/ns/shop/sa/productpage", true},
        {"spiffe://legacy.example/ns/shop/sa/productpage", true},
        {"spiffe://other.org/ns/shop/sa/productpage", false}, /* not an alias */
        {"spiffe://old.example/ns/shop/sa/reviews", false},
        {"spiffe://example.org/ns/other/sa/sleep", true}, /* the when condition, written with an alias */
        {"spiffe://old.example/ns/other/sa/sleep", true},
        {"spiffe://old.examplex/ns/other/sa/sleep", false},
        {"spiffe://old.example", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int full = 0; full < 2; full++) {
            req_t q = request("GET", "/", cases[i].peer);
            authz_decision_t d;
            authz_check_mode(a, req_bind(&q), &d, full);
            if (d.allowed != cases[i].allowed)
                fail_msg("%s (%s): %s", cases[i].peer ? cases[i].peer : "no peer", full ? "scan" : "index",
                         d.allowed ? "allowed" : "denied");
        }
    authz_free(a);
    proxy_config_destroy(cfg);
}

/* remote.ip from X-Forwarded-For with numTrustedProxies: the hops-th entry from the right, across fields */
static void xff_case(const char *const *values, uint32_t n, int hops, const char *want)
{
    http1_header_t h[4];
    assert_true(n <= 4);
    for (uint32_t i = 0; i < n; i++)
        h[i] = (http1_header_t){{i == 1 ? "X-Forwarded-For" : "x-forwarded-for", 15}, {values[i], strlen(values[i])}};
    struct sockaddr_storage ss;
    bool got = authz_remote_addr(h, n, hops, &ss);
    if (want == NULL) {
        assert_false(got);
        return;
    }
    assert_true(got);
    char text[64] = "";
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof text);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof text);
    assert_string_equal(text, want);
}

static void test_remote_addr(void **state)
{
    (void)state;
    const char *one[] = {"203.0.113.7, 198.51.100.2,10.0.0.1"};
    xff_case(one, 1, 0, NULL); /* no trusted proxy: the caller uses the peer */
    xff_case(one, 1, 1, "10.0.0.1");
    xff_case(one, 1, 2, "198.51.100.2");
    xff_case(one, 1, 3, "203.0.113.7");
    xff_case(one, 1, 4, NULL); /* fewer entries than hops */
    const char *two[] = {"192.0.2.1, 2001:db8::5", " 10.1.2.3 "};
    xff_case(two, 2, 1, "10.1.2.3"); /* the last field is the rightmost */
    xff_case(two, 2, 2, "2001:db8::5");
    xff_case(two, 2, 3, "192.0.2.1");
    const char *bad[] = {"unknown, 10.0.0.1", "10.0.0.2,"};
    xff_case(bad, 2, 1, NULL); /* an empty entry is not an address */
    xff_case(bad, 2, 2, "10.0.0.2");
    xff_case(bad, 2, 4, NULL); /* "unknown" */
    const char *port[] = {"198.51.100.2:4711", "[2001:db8::1]"};
    xff_case(port, 2, 1, NULL);
    xff_case(port, 2, 2, NULL);
    xff_case(NULL, 0, 1, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_apply_and_warn),
        cmocka_unit_test(test_actions),     cmocka_unit_test(test_fields),
        cmocka_unit_test(test_normalize),   cmocka_unit_test(test_index_agrees),
        cmocka_unit_test(test_tcp),         cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_remote_addr), cmocka_unit_test(test_trust_domain_aliases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
