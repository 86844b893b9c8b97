/*
 * libFuzzer target: request routing (proxy/router.c) against one fixed
 * mesh that uses every match kind, redirects, rewrites, header operations
 * and every load-balancing policy, built once.
 *
 * Input: lines. Line 1 is the request-target, line 2 the Host value, line
 * 3 the method, line 4 the source address, the rest "name: value" header
 * fields (at most 16). The first 8 bytes' hash seeds the random numbers and
 * the excluded bitmap. What it checks: no input crashes or reads outside
 * its slices (every slice points into the input, which is not
 * NUL-terminated), and simple invariants of the results.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "buf.h"
#include "proxy/config.h"
#include "proxy/router.h"

static const char mesh[] =
    "apiVersion: outrider.io/v1alpha1\n"
    "kind: Proxy\n"
    "metadata: {name: p}\n"
    "spec: {inbound: {forwardTo: 127.0.0.1:9080}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  ports: [{number: 9080, name: http}, {number: 9443, name: admin, targetPort: 8443}]\n"
    "  resolution: STATIC\n"
    "  endpoints:\n"
    "  - {address: 127.0.0.1, ports: {http: 19081}, labels: {version: v1}}\n"
    "  - {address: 127.0.0.2, ports: {http: 19082}, labels: {version: v2}, weight: 3}\n"
    "  - {address: '::1', labels: {version: v3}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  host: reviews\n"
    "  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\n"
    "  subsets:\n"
    "  - {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}\n"
    "  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: "
    "x-user}}}}\n"
    "  - {name: v3, labels: {version: v3}, trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, "
    "ttl: 1s}}}}}\n"
    "  - {name: q, labels: {}, trafficPolicy: {loadBalancer: {consistentHash: {httpQueryParameterName: uid}}}}\n"
    "  - {name: s, labels: {}, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}}\n"
    "  - {name: rr, labels: {}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {name: reviews}\n"
    "spec:\n"
    "  hosts: [reviews]\n"
    "  http:\n"
    "  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /Rev}, ignoreUriCase: true}]\n"
    "    route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]\n"
    "    rewrite: {uri: /r/}\n"
    "    headers: {request: {set: {x-a: '1'}, add: {x-b: '2'}, remove: [x-c]}, response: {set: {x-r: '1'}}}\n"
    "  - match: [{uri: {regex: '/v[0-9]+/.*'}, queryParams: {k: {regex: 'a|b'}}}, {method: {prefix: P}}]\n"
    "    route:\n"
    "    - {destination: {host: reviews, subset: v3, port: {number: 9080}}, weight: 50}\n"
    "    - {destination: {host: reviews, subset: q, port: {number: 9443}}, weight: 50,\n"
    "       headers: {request: {set: {x-b: d}}, response: {remove: [server]}}}\n"
    "  - match: [{uri: {exact: /old}}, {authority: {regex: 'old.*'}}]\n"
    "    redirect: {uri: /new, authority: n, scheme: https, port: 8443}\n"
    "  - match: [{uri: {prefix: /moved}, withoutHeaders: {x-skip: {prefix: ''}}}]\n"
    "    redirect: {authority: elsewhere}\n"
    "  - match: [{uri: {exact: /health}}]\n"
    "    directResponse: {status: 503, body: {string: down}}\n"
    "  - match: [{queryParams: {src: {exact: '1'}}}]\n"
    "    route: [{destination: {host: reviews, subset: s, port: {number: 9080}}}]\n"
    "    rewrite: {authority: internal}\n"
    "  - route:\n"
    "    - {destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 30}\n"
    "    - {destination: {host: reviews, subset: rr, port: {number: 9080}}, weight: 30}\n"
    "    - {destination: {host: reviews, port: {number: 9080}}, weight: 40}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: ext}\n"
    "spec: {hosts: ['*.example.com'], ports: [{number: 80, name: http}], resolution: NONE}\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: details, namespace: other}\n"
    "spec: {hosts: [details], ports: [{number: 80, name: http}, {number: 81, name: b}], resolution: STATIC,\n"
    "       endpoints: [{address: 127.0.0.3, weight: 2}, {address: 127.0.0.4}]}\n";

static proxy_config_t *cfg;
static router_t *rt;

static void report(void *ctx, const char *m)
{
    (void)ctx;
    fprintf(stderr, "fuzz_router config: %s\n", m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cfg = proxy_config_load_string("fuzz_router.yaml", mesh, sizeof(mesh) - 1, report, NULL, NULL);
    char err[256] = "";
    rt = cfg ? router_create(cfg, err, sizeof(err)) : NULL;
    if (rt == NULL) {
        fprintf(stderr, "fuzz_router: cannot build the router: %s\n", err);
        abort();
    }
    return 0;
}

#define MAX_FIELDS 16

/* The next line of [*p, end) as a slice (without the newline). */
static str_t next_line(const char **p, const char *end)
{
    const char *s = *p;
    const char *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    const char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    return (str_t){s, (uint32_t)(e - s)};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    uint64_t seed = XXH3_64bits(data, size < 8 ? size : 8);
    str_t target = next_line(&p, end);
    str_t host = next_line(&p, end);
    str_t method = next_line(&p, end);
    str_t src = next_line(&p, end);
    char src_ip[64];
    snprintf(src_ip, sizeof(src_ip), "%.*s", (int)(src.len < 63 ? src.len : 63), src.ptr ? src.ptr : "");

    http1_header_t fields[MAX_FIELDS];
    uint32_t n = 0;
    while (p < end && n < MAX_FIELDS) {
        str_t line = next_line(&p, end);
        const char *colon = memchr(line.ptr, ':', line.len);
        if (colon == NULL)
            continue;
        uint32_t nl = (uint32_t)(colon - line.ptr), vs = nl + 1;
        while (vs < line.len && line.ptr[vs] == ' ')
            vs++;
        fields[n].name = (str_t){line.ptr, nl};
        fields[n].value = (str_t){line.ptr + vs, line.len - vs};
        n++;
    }

    router_request_t req;
    memset(&req, 0, sizeof(req));
    str_t authority;
    if (router_split_target(target, &authority, &req.path, &req.query) != 0) {
        req.path = target;
        authority = STR_NULL;
    }
    req.authority = authority.len ? authority : host;
    req.method = method;
    req.headers = fields;
    req.header_count = n;
    req.source_ip = src_ip;

    router_decision_t d;
    router_route(rt, &req, (uint32_t)seed, &d);
    if (d.action == ROUTER_FORWARD && d.cluster == NULL)
        abort();

    buf_t b = BUF_INIT;
    router_rewrite_target(&d, &req, &b);
    if (b.len == 0 || b.data[b.len] != '\0')
        abort();
    buf_dispose(&b);
    router_redirect_location(&d, &req, &b);
    buf_dispose(&b);

    http1_header_t out[MAX_FIELDS + 8];
    uint32_t need = router_request_headers(&d, fields, n, out, MAX_FIELDS + 8);
    uint32_t small = router_request_headers(&d, fields, n, out, 2);
    if (need != small)
        abort();
    (void)router_response_headers(&d, fields, n, out, MAX_FIELDS + 8);

    const router_cluster_t *cl =
        d.action == ROUTER_FORWARD ? d.cluster : router_cluster(rt, seed % router_cluster_count(rt));
    router_lb_t lb;
    router_lb_init(&lb, cl);
    uint64_t excluded[ROUTER_MAX_ENDPOINTS / 64] = {seed >> 8};
    for (int i = 0; i < 4; i++) {
        int e = router_lb_pick(&lb, &req, seed * (uint64_t)(i + 1), i & 1 ? excluded : NULL);
        if (e >= (int)cl->n_endpoints || (e < 0 && cl->n_endpoints > 0))
            abort();
        router_lb_begin(&lb, e);
        if (i & 2)
            router_lb_end(&lb, e);
    }
    router_lb_dispose(&lb);
    return 0;
}
