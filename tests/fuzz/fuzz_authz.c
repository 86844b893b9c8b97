/*
 * libFuzzer target: AuthorizationPolicy matching and path normalization
 * (proxy/config_authz.c, proxy/authz.c).
 *
 * Input: up to the first NUL, YAML documents appended to a fixed Proxy
 * document (namespace shop, an identity) and loaded; when they load, the
 * policies are compiled and checked against requests built from the rest
 * of the input split at '\n' (method, path, host, a header value, a claim
 * value) and the peer principal chosen by the first byte, through the
 * candidate index and through a scan of every rule. The rest of the
 * input also goes through authz_normalize_path on its own, and through
 * authz_remote_addr as X-Forwarded-For.
 * Invariants: no crash, leak or UB; a denial names a DENY policy or none,
 * an allowance an ALLOW policy or none; the index and the scan decide
 * alike; a normalized path starts with '/', has no "." or ".."
 * segment, and normalizes to itself; an address from X-Forwarded-For is
 * IPv4 or IPv6, and none comes without a trusted hop.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/authz.h"
#include "proxy/config.h"

static const char PROXY[] = "apiVersion: outrider.io/v1alpha1\n"
                            "kind: Proxy\n"
                            "metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}\n"
                            "spec:\n"
                            "  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9080}\n"
                            "  identity: {serviceAccount: reviews, rootCertificates: /dev/null, "
                            "certificateChain: /dev/null, privateKey: /dev/null}\n"
                            "---\n";

static void quiet(void *ctx, const char *m)
{
    (void)ctx;
    (void)m;
}

static str_t claim_value;

static uint32_t claims(const void *ctx, const char *const *path, uint32_t depth, str_t *out, uint32_t max)
{
    (void)ctx;
    (void)path;
    if (depth == 0 || max == 0)
        return 0;
    out[0] = claim_value;
    return 1;
}

static int has_dot_segment(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/')
            continue;
        size_t e = i + 1;
        while (e < n && p[e] != '/')
            e++;
        if ((e - i == 2 && p[i + 1] == '.') || (e - i == 3 && p[i + 1] == '.' && p[i + 2] == '.'))
            return 1;
    }
    return 0;
}

static void check_normalize(const char *in, size_t n)
{
    buf_t a = BUF_INIT, b = BUF_INIT;
    if (authz_normalize_path((str_t){in, (uint32_t)n}, &a) == 0) {
        if (a.len == 0 || a.data[0] != '/' || has_dot_segment(a.data, a.len))
            abort();
        if (authz_normalize_path((str_t){a.data, (uint32_t)a.len}, &b) != 0 || b.len != a.len ||
            memcmp(a.data, b.data, a.len) != 0)
            abort();
    } else if (n > 0 && in[0] == '/') {
        abort();
    }
    buf_dispose(&a);
    buf_dispose(&b);
}

/* remote.ip from X-Forwarded-For: the rest as one or two fields (split at the first ';'), every hop count */
static void check_remote_addr(const char *in, size_t n)
{
    const char *semi = memchr(in, ';', n);
    http1_header_t h[2] = {
        {{"x-forwarded-for", 15}, {in, (uint32_t)(semi ? (size_t)(semi - in) : n)}},
        {{"X-Forwarded-For", 15}, {semi ? semi + 1 : "", (uint32_t)(semi ? n - (size_t)(semi - in) - 1 : 0)}}};
    for (int hops = 0; hops <= 4; hops++) {
        struct sockaddr_storage ss;
        memset(&ss, 0xa5, sizeof ss);
        if (authz_remote_addr(h, semi ? 2 : 1, hops, &ss) &&
            (hops == 0 || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t ylen = nul ? (size_t)(nul - data) : size;
    const char *rest = nul ? (const char *)nul + 1 : "";
    size_t rlen = nul ? size - ylen - 1 : 0;
    check_normalize(rest, rlen);
    check_remote_addr(rest, rlen);
    if (ylen > 16384)
        return 0;

    char *text = malloc(sizeof PROXY + ylen);
    memcpy(text, PROXY, sizeof PROXY - 1);
    memcpy(text + sizeof PROXY - 1, data, ylen);
    proxy_config_t *cfg = proxy_config_load_string("f.yaml", text, sizeof PROXY - 1 + ylen, quiet, quiet, NULL);
    free(text);
    if (cfg == NULL)
        return 0;
    authz_t *a = authz_compile(cfg);

    /* the request's parts from the rest, one per line */
    str_t part[5] = {{"GET", 3}, {"/", 1}, {"reviews:9080", 12}, {"v1", 2}, {"admin", 5}};
    size_t pos = 0;
    for (int i = 0; i < 5 && pos < rlen; i++) {
        const char *nl = memchr(rest + pos, '\n', rlen - pos);
        size_t end = nl ? (size_t)(nl - rest) : rlen;
        part[i] = (str_t){rest + pos, (uint32_t)(end - pos)};
        pos = end + 1;
    }
    buf_t path = BUF_INIT;
    if (authz_normalize_path(part[1], &path) != 0)
        buf_append_str(&path, "/");
    static const char *const principals[] = {"", "spiffe://cluster.local/ns/shop/sa/productpage",
                                             "spiffe://cluster.local/ns/other/sa/sleep", "spiffe://x"};
    const char *pr = principals[(rlen > 0 ? (uint8_t)rest[0] : 0) % 4];
    struct sockaddr_storage src = {0};
    src.ss_family = AF_INET;
    http1_header_t h[2] = {{{"version", 7}, part[3]}, {{"x-b3-sampled", 12}, {"1", 1}}};
    claim_value = part[4];
    str_t aud = part[4];
    authz_request_t r = {
        .method = part[0],
        .path = {path.data, (uint32_t)path.len},
        .authority = part[2],
        .headers = h,
        .n_headers = 2,
        .dest_port = 9080,
        .source = &src,
        .remote = &src,
        .principal = {pr, (uint32_t)strlen(pr)},
        .request_principal = part[4],
        .audiences = &aud,
        .n_audiences = 1,
        .claim = claims,
    };
    authz_decision_t d1, d2;
    authz_check(a, &r, &d1);
    authz_check_mode(a, &r, &d2, true); /* the candidate index agrees with a scan of every rule */
    if (d1.allowed != d2.allowed || d1.policy != d2.policy || d1.rule != d2.rule || d1.audit != d2.audit)
        abort();
    if (d1.policy != NULL &&
        (d1.allowed ? d1.policy->action != PROXY_AUTHZ_ALLOW : d1.policy->action != PROXY_AUTHZ_DENY))
        abort();
    if (d1.audit != NULL && d1.audit->action != PROXY_AUTHZ_AUDIT)
        abort();
    buf_t out = BUF_INIT;
    authz_render_prometheus(a, &out);
    buf_dispose(&out);
    buf_dispose(&path);
    authz_free(a);
    proxy_config_destroy(cfg);
    return 0;
}
