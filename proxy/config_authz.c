/*
 * config_authz: `kind: AuthorizationPolicy` (security.istio.io/v1), both
 * passes. authz.c compiles what this reads into the inbound side's
 * matcher.
 *
 * Pass one checks each document as Istio's validation does: the actions
 * (CUSTOM refused: it delegates to an external authorizer, which the
 * sidecar does not have), the fields of from.source, to.operation and
 * when, CIDRs, ports, path templates, and the condition keys that apply
 * to HTTP. Pass two picks the documents that apply to this proxy (root
 * namespace or its own, without a selector or with one that matches its
 * labels) and warns of rules that can never match here: peer principals
 * and namespaces without mutual TLS, JWT attributes without a
 * RequestAuthentication.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include "config_parse.h"
#include "hostport.h"
#include "jwt.h"
#include "jwks_fetch.h"

static const char *const actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM", NULL};

/* A list of non-empty strings; each_ok (may be NULL) checks one more and reports at v. */
static void str_list(pctx_t *p, const yaml_node_t *v, proxy_str_list_t *out,
                     int (*each_ok)(pctx_t *p, const yaml_node_t *v, const char *s))
{
    pc_str_list(p, v, out);
    if (v->kind != YAML_SEQ)
        return;
    for (size_t i = 0; i < out->n && i < v->n; i++) {
        size_t mark = pc_push_index(p, i);
        if (out->items[i][0] == '\0')
            pc_error(p, v->items[i], "empty value (\"*\" matches any non-empty value)");
        else if (each_ok != NULL)
            each_ok(p, v->items[i], out->items[i]);
        pc_pop(p, mark);
    }
}

static int cidr_ok(pctx_t *p, const yaml_node_t *v, const char *s)
{
    struct sockaddr_storage ss;
    int bits;
    if (hostport_cidr_parse(s, &ss, &bits) == 0)
        return 1;
    pc_error(p, v, "\"%s\" is not an IP address or CIDR block (\"10.1.0.0/16\", \"fd00::/8\")", s);
    return 0;
}

static int port_ok(pctx_t *p, const yaml_node_t *v, const char *s)
{
    char *end = NULL;
    long n = strtol(s, &end, 10);
    if (s[0] >= '0' && s[0] <= '9' && *end == '\0' && n >= 1 && n <= 65535)
        return 1;
    pc_error(p, v, "\"%s\" is not a port (1-65535)", s);
    return 0;
}

/* Istio's string match: exact, "prefix*", "*suffix" or "*"; a '*' anywhere else is refused. */
static int glob_ok(pctx_t *p, const yaml_node_t *v, const char *s)
{
    size_t n = strlen(s);
    const char *star = strchr(s, '*');
    if (star == NULL || n == 1 || (star == s && strchr(s + 1, '*') == NULL) || (star == s + n - 1))
        return 1;
    pc_error(p, v, "\"%s\": '*' may only stand at the start or the end of a value", s);
    return 0;
}

/*
 * A path: a glob as above, or a template of segments where "{*}" is one
 * whole segment and "{**}" any number of them, only last ("/a/{*}/b",
 * "/a/{**}").
 */
static int path_ok(pctx_t *p, const yaml_node_t *v, const char *s)
{
    if (strchr(s, '{') == NULL && strchr(s, '}') == NULL)
        return glob_ok(p, v, s);
    if (s[0] != '/') {
        pc_error(p, v, "\"%s\": a path template starts with '/'", s);
        return 0;
    }
    for (const char *seg = s + 1;;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        int op = memchr(seg, '{', len) != NULL || memchr(seg, '}', len) != NULL || memchr(seg, '*', len) != NULL;
        int one = len == 3 && memcmp(seg, "{*}", 3) == 0, any = len == 4 && memcmp(seg, "{**}", 4) == 0;
        if (op && !one && !any) {
            pc_error(p, v, "\"%s\": in a template, {*} and {**} are whole segments and '*' stands nowhere else", s);
            return 0;
        }
        if (any && end != NULL) {
            pc_error(p, v, "\"%s\": {**} may only be the last segment", s);
            return 0;
        }
        if (end == NULL)
            return 1;
        seg = end + 1;
    }
}

static void parse_source(pctx_t *p, const yaml_node_t *v, proxy_authz_source_t *s)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "principals"))
            str_list(p, it.val, &s->principals, glob_ok);
        else if (PC_KEY(it, "notPrincipals"))
            str_list(p, it.val, &s->not_principals, glob_ok);
        else if (PC_KEY(it, "requestPrincipals"))
            str_list(p, it.val, &s->request_principals, glob_ok);
        else if (PC_KEY(it, "notRequestPrincipals"))
            str_list(p, it.val, &s->not_request_principals, glob_ok);
        else if (PC_KEY(it, "namespaces"))
            str_list(p, it.val, &s->namespaces, glob_ok);
        else if (PC_KEY(it, "notNamespaces"))
            str_list(p, it.val, &s->not_namespaces, glob_ok);
        else if (PC_KEY(it, "ipBlocks"))
            str_list(p, it.val, &s->ip_blocks, cidr_ok);
        else if (PC_KEY(it, "notIpBlocks"))
            str_list(p, it.val, &s->not_ip_blocks, cidr_ok);
        else if (PC_KEY(it, "remoteIpBlocks"))
            str_list(p, it.val, &s->remote_ip_blocks, cidr_ok);
        else if (PC_KEY(it, "notRemoteIpBlocks"))
            str_list(p, it.val, &s->not_remote_ip_blocks, cidr_ok);
        else
            pc_unknown(p, &it);
    }
}

static void parse_operation(pctx_t *p, const yaml_node_t *v, proxy_authz_operation_t *o)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "hosts"))
            str_list(p, it.val, &o->hosts, glob_ok);
        else if (PC_KEY(it, "notHosts"))
            str_list(p, it.val, &o->not_hosts, glob_ok);
        else if (PC_KEY(it, "ports"))
            str_list(p, it.val, &o->ports, port_ok);
        else if (PC_KEY(it, "notPorts"))
            str_list(p, it.val, &o->not_ports, port_ok);
        else if (PC_KEY(it, "methods"))
            str_list(p, it.val, &o->methods, glob_ok);
        else if (PC_KEY(it, "notMethods"))
            str_list(p, it.val, &o->not_methods, glob_ok);
        else if (PC_KEY(it, "paths"))
            str_list(p, it.val, &o->paths, path_ok);
        else if (PC_KEY(it, "notPaths"))
            str_list(p, it.val, &o->not_paths, path_ok);
        else
            pc_unknown(p, &it);
    }
}

/* The condition keys of Istio's reference that apply to HTTP; [NAME] forms take a non-empty name. */
static const char *const plain_keys[] = {"source.ip",
                                         "remote.ip",
                                         "source.namespace",
                                         "source.principal",
                                         "request.auth.principal",
                                         "request.auth.audiences",
                                         "request.auth.presenter",
                                         "destination.ip",
                                         "destination.port",
                                         "connection.sni",
                                         NULL};

/* Whether key is request.headers[X] or request.auth.claims[X] (claims may nest: [a][b]). */
static int bracket_key(const char *key, const char *prefix, int nested)
{
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0)
        return 0;
    const char *s = key + n;
    do {
        if (*s != '[')
            return 0;
        const char *close = strchr(s, ']');
        if (close == NULL || close == s + 1 || memchr(s + 1, '[', (size_t)(close - s - 1)) != NULL)
            return 0;
        s = close + 1;
    } while (nested && *s == '[');
    return *s == '\0';
}

static void parse_condition(pctx_t *p, const yaml_node_t *v, proxy_authz_condition_t *c)
{
    c->pos = (proxy_pos_t){v->line, v->col};
    const yaml_node_t *key_node = NULL, *values_node = NULL, *not_node = NULL;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "key")) {
            key_node = it.val;
            c->key = pc_string(p, it.val);
        } else if (PC_KEY(it, "values")) {
            values_node = it.val;
        } else if (PC_KEY(it, "notValues")) {
            not_node = it.val;
        } else {
            pc_unknown(p, &it);
        }
    }
    if (v->kind != YAML_MAP)
        return;
    if (key_node == NULL) {
        pc_missing(p, v, "key");
        return;
    }
    if (c->key == NULL)
        return;
    int known = bracket_key(c->key, "request.headers", 0) || bracket_key(c->key, "request.auth.claims", 1);
    for (int i = 0; !known && plain_keys[i] != NULL; i++)
        known = strcmp(c->key, plain_keys[i]) == 0;
    if (!known) {
        size_t mark = pc_push(p, "key");
        if (strncmp(c->key, "experimental.envoy.filters.", 27) == 0)
            pc_error(p, key_node, "\"%s\": Envoy filter metadata is not available in this sidecar", c->key);
        else
            pc_error(p, key_node,
                     "unknown key \"%s\" (expected request.headers[NAME], source.ip, remote.ip, source.namespace, "
                     "source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, "
                     "request.auth.claims[NAME], destination.ip, destination.port or connection.sni)",
                     c->key);
        pc_pop(p, mark);
        return;
    }
    int (*each)(pctx_t *, const yaml_node_t *, const char *) = glob_ok;
    if (strcmp(c->key, "source.ip") == 0 || strcmp(c->key, "remote.ip") == 0 || strcmp(c->key, "destination.ip") == 0)
        each = cidr_ok;
    else if (strcmp(c->key, "destination.port") == 0)
        each = port_ok;
    if (values_node != NULL) {
        size_t mark = pc_push(p, "values");
        str_list(p, values_node, &c->values, each);
        pc_pop(p, mark);
    }
    if (not_node != NULL) {
        size_t mark = pc_push(p, "notValues");
        str_list(p, not_node, &c->not_values, each);
        pc_pop(p, mark);
    }
    if (c->values.n == 0 && c->not_values.n == 0 && values_node == NULL && not_node == NULL)
        pc_error(p, v, "a condition needs values or notValues");
}

/* from: [{source: {...}}] or to: [{operation: {...}}]: a list of one-field maps. */
static size_t wrapped_list(pctx_t *p, const yaml_node_t *v, const char *field, void **out, size_t size,
                           void (*parse)(pctx_t *, const yaml_node_t *, void *))
{
    long n = pc_seq(p, v);
    if (n <= 0)
        return 0;
    char *items = pc_alloc(p, (size_t)n, size);
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        const yaml_node_t *inner = NULL;
        PC_FIELDS(p, v->items[i], it)
        {
            if (strcmp(it.k, field) == 0)
                inner = it.val;
            else
                pc_unknown(p, &it);
        }
        if (inner != NULL) {
            size_t m2 = pc_push(p, field);
            parse(p, inner, items + (size_t)i * size);
            pc_pop(p, m2);
        } else if (v->items[i]->kind == YAML_MAP) {
            pc_missing(p, v->items[i], field);
        }
        pc_pop(p, mark);
    }
    *out = items;
    return (size_t)n;
}

static void parse_source_v(pctx_t *p, const yaml_node_t *v, void *out)
{
    parse_source(p, v, out);
}

static void parse_operation_v(pctx_t *p, const yaml_node_t *v, void *out)
{
    parse_operation(p, v, out);
}

static void parse_rule(pctx_t *p, const yaml_node_t *v, proxy_authz_rule_t *r)
{
    r->pos = (proxy_pos_t){v->line, v->col};
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "from")) {
            void *items = NULL;
            r->n_from = wrapped_list(p, it.val, "source", &items, sizeof(proxy_authz_source_t), parse_source_v);
            r->from = items;
        } else if (PC_KEY(it, "to")) {
            void *items = NULL;
            r->n_to = wrapped_list(p, it.val, "operation", &items, sizeof(proxy_authz_operation_t), parse_operation_v);
            r->to = items;
        } else if (PC_KEY(it, "when")) {
            long n = pc_seq(p, it.val);
            if (n > 0) {
                r->when = pc_alloc(p, (size_t)n, sizeof(proxy_authz_condition_t));
                r->n_when = (size_t)n;
                for (long i = 0; i < n; i++) {
                    size_t mark = pc_push_index(p, (size_t)i);
                    parse_condition(p, it.val->items[i], &r->when[i]);
                    pc_pop(p, mark);
                }
            }
        } else {
            pc_unknown(p, &it);
        }
    }
}

void authz_parse(pctx_t *p, const yaml_node_t *spec, proxy_authorization_policy_t *ap)
{
    ap->action = PROXY_AUTHZ_ALLOW;
    const yaml_node_t *provider = NULL;
    int custom = 0;
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "selector")) {
            ap->has_selector = pc_selector(p, it.val, &ap->selector);
        } else if (PC_KEY(it, "action")) {
            int k = pc_enum(p, it.val, actions);
            if (k == 3) {
                custom = 1;
                pc_error(p, it.val,
                         "CUSTOM hands the decision to an external authorizer (meshConfig extensionProviders), "
                         "which this sidecar does not have; use ALLOW, DENY or AUDIT");
            } else if (k >= 0) {
                ap->action = (enum proxy_authz_action)k;
            }
        } else if (PC_KEY(it, "provider")) {
            provider = it.key;
        } else if (PC_KEY(it, "rules")) {
            long n = pc_seq(p, it.val);
            if (n > 0) {
                ap->rules = pc_alloc(p, (size_t)n, sizeof(proxy_authz_rule_t));
                ap->n_rules = (size_t)n;
                for (long i = 0; i < n; i++) {
                    size_t mark = pc_push_index(p, (size_t)i);
                    parse_rule(p, it.val->items[i], &ap->rules[i]);
                    pc_pop(p, mark);
                }
            }
        } else if (PC_KEY(it, "targetRef") || PC_KEY(it, "targetRefs")) {
            pc_target_ref(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    const char *dry = proxy_kv_get(&ap->meta.annotations, "istio.io/dry-run");
    if (dry != NULL && strcmp(dry, "true") != 0 && strcmp(dry, "false") != 0)
        pc_error_at(p, ap->meta.pos.line, ap->meta.pos.col,
                    "metadata.annotations istio.io/dry-run: expected \"true\" or \"false\", got \"%s\"", dry);
    ap->dry_run = dry != NULL && strcmp(dry, "true") == 0;
    if (provider != NULL && !custom) {
        size_t mark = pc_push(p, "provider");
        pc_error(p, provider, "provider goes with action CUSTOM only");
        pc_pop(p, mark);
    }
}

/* ---- pass two ---- */

static int applies(const proxy_authorization_policy_t *ap, const char *root, const char *ns,
                   const proxy_kv_list_t *labels)
{
    if (ap->meta.namespace == NULL || (strcmp(ap->meta.namespace, root) != 0 && strcmp(ap->meta.namespace, ns) != 0))
        return 0;
    return !ap->has_selector || pc_selects(&ap->selector, labels);
}

/* What a rule asks that this proxy cannot have: "" when nothing. */
static const char *never(const proxy_authz_rule_t *r, int mtls, int jwt)
{
    for (size_t i = 0; i < r->n_from; i++) {
        const proxy_authz_source_t *s = &r->from[i];
        if (!mtls && (s->principals.n > 0 || s->namespaces.n > 0))
            return "principals and namespaces";
        if (!jwt && s->request_principals.n > 0)
            return "requestPrincipals";
    }
    for (size_t i = 0; i < r->n_when; i++) {
        const char *k = r->when[i].key;
        if (k == NULL || r->when[i].values.n == 0)
            continue;
        if (!mtls && (strcmp(k, "source.principal") == 0 || strcmp(k, "source.namespace") == 0))
            return k;
        if (!jwt && strncmp(k, "request.auth.", 13) == 0)
            return k;
    }
    return "";
}

/*
 * A principal written with an alias trust domain (Istio's
 * trustDomainAliases: "old-td/ns/x/sa/y") names the same workload as the
 * trust domain's own; it is rewritten to that, as authz.c rewrites an alias
 * peer's principal, so both sides meet in one spelling.
 */
static void canonical_principals(pctx_t *p, const proxy_identity_t *id, proxy_str_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *v = l->items[i], *slash = strchr(v, '/');
        for (size_t k = 0; slash != NULL && k < id->trust_domain_aliases.n; k++) {
            const char *al = id->trust_domain_aliases.items[k];
            if (strlen(al) == (size_t)(slash - v) && memcmp(al, v, strlen(al)) == 0) {
                char *s = pc_alloc(p, strlen(id->trust_domain) + strlen(slash) + 1, 1);
                sprintf(s, "%s%s", id->trust_domain, slash);
                l->items[i] = s;
                break;
            }
        }
    }
}

void authz_resolve(pctx_t *p)
{
    proxy_config_t *cfg = p->cfg;
    const proxy_spec_t *ps = &cfg->proxy;
    const char *ns = ps->meta.namespace ? ps->meta.namespace : "default";
    const char *root = ps->root_namespace ? ps->root_namespace : "istio-system";
    cfg->authz = pc_alloc(p, cfg->n_authorization_policies, sizeof(*cfg->authz));
    cfg->n_authz = 0;
    /* peers have principals only over mutual TLS: with an identity and an inbound that takes it */
    int mtls = ps->identity.given && cfg->mtls.mode != PROXY_MTLS_DISABLE;
    int jwt = cfg->n_jwt_rules > 0; /* requests carry JWT attributes only when a RequestAuthentication applies */
    for (size_t i = 0; i < cfg->n_authorization_policies; i++) {
        const proxy_authorization_policy_t *ap = &cfg->authorization_policies[i];
        if (!applies(ap, root, ns, &ps->meta.labels))
            continue;
        cfg->authz[cfg->n_authz++] = ap;
        for (size_t r = 0; ps->identity.trust_domain_aliases.n > 0 && r < ap->n_rules; r++) {
            proxy_authz_rule_t *ru = &cfg->authorization_policies[i].rules[r];
            for (size_t k = 0; k < ru->n_from; k++) {
                canonical_principals(p, &ps->identity, &ru->from[k].principals);
                canonical_principals(p, &ps->identity, &ru->from[k].not_principals);
            }
            for (size_t k = 0; k < ru->n_when; k++)
                if (ru->when[k].key != NULL && strcmp(ru->when[k].key, "source.principal") == 0) {
                    canonical_principals(p, &ps->identity, &ru->when[k].values);
                    canonical_principals(p, &ps->identity, &ru->when[k].not_values);
                }
        }
        snprintf(p->label, sizeof(p->label), "AuthorizationPolicy %s", ap->meta.name ? ap->meta.name : "?");
        p->ns = ap->meta.namespace;
        for (size_t r = 0; r < ap->n_rules; r++) {
            const char *what = never(&ap->rules[r], mtls, jwt);
            if (what[0] == '\0')
                continue;
            pc_pop(p, 0);
            size_t mark = pc_push(p, "spec.rules");
            pc_push_index(p, r);
            pc_warn_at(p, ap->rules[r].pos.line, ap->rules[r].pos.col, "this rule can never match here: %s %s", what,
                       strncmp(what, "request", 7) == 0
                           ? "come from a JWT, and no RequestAuthentication applies to this proxy"
                           : "come from the peer's certificate, and this proxy's inbound has no mutual TLS "
                             "(no spec.identity, or PeerAuthentication DISABLE)");
            pc_pop(p, mark);
        }
    }
    p->label[0] = '\0';
    pc_pop(p, 0);
}

/* ---- RequestAuthentication ---- */

#define JWKS_FILE_URI "file://"

/* The JWKS of a rule: inline text, or the file a file:// jwksUri names, parsed now. */
static void rule_jwks(pctx_t *p, const yaml_node_t *at, const char *text, size_t len, proxy_jwt_rule_t *r)
{
    char err[256];
    r->jwks = jwks_parse(text, len, err, sizeof err);
    if (r->jwks == NULL)
        pc_error(p, at, "not a usable JWKS: %s", err);
}

static void jwks_uri(pctx_t *p, const yaml_node_t *v, proxy_jwt_rule_t *r)
{
    const char *uri = pc_string(p, v);
    if (uri == NULL)
        return;
    r->jwks_uri = uri;
    if (jwks_uri_remote(uri)) { /* fetched by the running proxy (jwks_fetch.h); only its form is checked here */
        char origin[JWKS_URI_MAX + 8], path[JWKS_URI_MAX + 2];
        const char *why;
        if (jwks_uri_split(uri, origin, sizeof origin, path, sizeof path, &why) != 0)
            pc_error(p, v, "\"%s\": %s", uri, why);
        else if (strncmp(uri, "http://", 7) == 0)
            pc_warn(p, v, "\"%s\": keys fetched over plain http can be replaced on the way; use https", uri);
        r->jwks_remote = 1;
        return;
    }
    if (strncmp(uri, JWKS_FILE_URI, strlen(JWKS_FILE_URI)) != 0) {
        pc_error(p, v, "\"%s\": expected an https://, http:// or file:// URI", uri);
        return;
    }
    const char *path = uri + strlen(JWKS_FILE_URI);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        pc_error(p, v, "cannot read \"%s\": %s", path, strerror(errno));
        return;
    }
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= JWKS_MAX_BYTES)
        buf_append(&b, chunk, n);
    fclose(f);
    if (b.len > JWKS_MAX_BYTES)
        pc_error(p, v, "\"%s\" is larger than %u bytes", path, (unsigned)JWKS_MAX_BYTES);
    else
        rule_jwks(p, v, b.data ? b.data : "", b.len, r);
    buf_dispose(&b);
}

static void parse_jwt_rule(pctx_t *p, const yaml_node_t *v, proxy_jwt_rule_t *r)
{
    r->pos = (proxy_pos_t){v->line, v->col};
    const yaml_node_t *jwks_node = NULL, *uri_node = NULL, *issuer_node = NULL;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "issuer")) {
            issuer_node = it.val;
            r->issuer = pc_string(p, it.val);
            if (r->issuer != NULL && r->issuer[0] == '\0')
                pc_error(p, it.val, "an empty issuer");
        } else if (PC_KEY(it, "audiences")) {
            str_list(p, it.val, &r->audiences, NULL);
        } else if (PC_KEY(it, "jwks")) {
            jwks_node = it.val;
            const char *s = pc_string(p, it.val);
            if (s != NULL)
                rule_jwks(p, it.val, s, strlen(s), r);
        } else if (PC_KEY(it, "jwksUri")) {
            uri_node = it.val;
        } else if (PC_KEY(it, "fromHeaders")) {
            long n = pc_seq(p, it.val);
            if (n > 0) {
                r->from_headers = pc_alloc(p, (size_t)n, sizeof *r->from_headers);
                for (long i = 0; i < n; i++) {
                    size_t mark = pc_push_index(p, (size_t)i);
                    proxy_jwt_header_t *h = &r->from_headers[r->n_from_headers];
                    h->prefix = "";
                    PC_FIELDS(p, it.val->items[i], f)
                    {
                        if (PC_KEY(f, "name")) {
                            const char *s = pc_string(p, f.val);
                            h->name = s != NULL && s[0] ? pc_lower(p, s) : NULL;
                            if (s != NULL && !s[0])
                                pc_error(p, f.val, "an empty header name");
                        } else if (PC_KEY(f, "prefix")) {
                            const char *s = pc_string(p, f.val);
                            if (s != NULL)
                                h->prefix = s;
                        } else {
                            pc_unknown(p, &f);
                        }
                    }
                    if (h->name != NULL)
                        r->n_from_headers++;
                    else if (it.val->items[i]->kind == YAML_MAP)
                        pc_missing(p, it.val->items[i], "name");
                    pc_pop(p, mark);
                }
            }
        } else if (PC_KEY(it, "fromParams")) {
            str_list(p, it.val, &r->from_params, NULL);
        } else if (PC_KEY(it, "forwardOriginalToken")) {
            pc_bool(p, it.val, &r->forward_original_token);
        } else if (PC_KEY(it, "outputPayloadToHeader")) {
            const char *s = pc_string(p, it.val);
            if (s != NULL && s[0])
                r->output_payload_to_header = pc_lower(p, s);
        } else if (PC_KEY(it, "outputClaimToHeaders")) {
            long n = pc_seq(p, it.val);
            if (n > 0) {
                r->claim_headers = pc_alloc(p, (size_t)n, sizeof *r->claim_headers);
                for (long i = 0; i < n; i++) {
                    size_t mark = pc_push_index(p, (size_t)i);
                    proxy_claim_header_t *c = &r->claim_headers[r->n_claim_headers];
                    PC_FIELDS(p, it.val->items[i], f)
                    {
                        const char *s = PC_KEY(f, "header") || PC_KEY(f, "claim") ? pc_string(p, f.val) : NULL;
                        if (PC_KEY(f, "header"))
                            c->header = s != NULL && s[0] ? pc_lower(p, s) : NULL;
                        else if (PC_KEY(f, "claim"))
                            c->claim = s != NULL && s[0] ? s : NULL;
                        else
                            pc_unknown(p, &f);
                    }
                    if (c->header != NULL && c->claim != NULL) {
                        char *path = (char *)pc_strdup(p, c->claim), *save = NULL;
                        for (char *t = path; c->depth < PROXY_CLAIM_DEPTH_MAX && (t = strtok_r(t, ".", &save));
                             t = NULL)
                            c->path[c->depth++] = t;
                        r->n_claim_headers++;
                    } else if (it.val->items[i]->kind == YAML_MAP)
                        pc_missing(p, it.val->items[i], c->header == NULL ? "header" : "claim");
                    pc_pop(p, mark);
                }
            }
        } else if (PC_KEY(it, "timeout")) {
            int64_t ms;
            if (pc_duration(p, it.val, &ms) == 0) {
                if (ms < 1)
                    pc_error(p, it.val, "must be at least 1ms");
                else
                    r->fetch_timeout_ms = (uint64_t)ms;
            }
        } else {
            pc_unknown(p, &it);
        }
    }
    if (v->kind != YAML_MAP)
        return;
    if (issuer_node == NULL)
        pc_missing(p, v, "issuer");
    if (jwks_node != NULL && uri_node != NULL) {
        pc_error(p, uri_node, "either jwks or jwksUri, not both");
    } else if (uri_node != NULL) {
        size_t mark = pc_push(p, "jwksUri");
        jwks_uri(p, uri_node, r);
        pc_pop(p, mark);
    } else if (jwks_node == NULL) {
        pc_error(p, v, "where the keys come from: jwks (a JWKS document) or jwksUri (https://, http:// or file://)");
    }
}

void authn_parse(pctx_t *p, const yaml_node_t *spec, proxy_request_authentication_t *ra)
{
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "selector")) {
            ra->has_selector = pc_selector(p, it.val, &ra->selector);
        } else if (PC_KEY(it, "jwtRules")) {
            long n = pc_seq(p, it.val);
            if (n > 0) {
                ra->rules = pc_alloc(p, (size_t)n, sizeof *ra->rules);
                ra->n_rules = (size_t)n;
                for (long i = 0; i < n; i++) {
                    size_t mark = pc_push_index(p, (size_t)i);
                    parse_jwt_rule(p, it.val->items[i], &ra->rules[i]);
                    pc_pop(p, mark);
                }
            }
        } else if (PC_KEY(it, "targetRef") || PC_KEY(it, "targetRefs")) {
            pc_target_ref(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
}

void authn_resolve(pctx_t *p)
{
    proxy_config_t *cfg = p->cfg;
    const proxy_spec_t *ps = &cfg->proxy;
    const char *ns = ps->meta.namespace ? ps->meta.namespace : "default";
    const char *root = ps->root_namespace ? ps->root_namespace : "istio-system";
    size_t total = 0;
    for (size_t i = 0; i < cfg->n_request_authentications; i++)
        total += cfg->request_authentications[i].n_rules;
    cfg->jwt_rules = pc_alloc(p, total, sizeof *cfg->jwt_rules);
    cfg->n_jwt_rules = 0;
    for (size_t i = 0; i < cfg->n_request_authentications; i++) {
        const proxy_request_authentication_t *ra = &cfg->request_authentications[i];
        const char *dns = ra->meta.namespace;
        if (dns == NULL || (strcmp(dns, root) != 0 && strcmp(dns, ns) != 0) ||
            (ra->has_selector && !pc_selects(&ra->selector, &ps->meta.labels)))
            continue;
        for (size_t k = 0; k < ra->n_rules; k++) {
            const proxy_jwt_rule_t *r = &ra->rules[k];
            /* two rules for one issuer: the first is used, as a token's issuer picks its rule */
            int dup = 0;
            for (size_t j = 0; j < cfg->n_jwt_rules && r->issuer != NULL; j++)
                dup |= cfg->jwt_rules[j]->issuer != NULL && strcmp(cfg->jwt_rules[j]->issuer, r->issuer) == 0;
            if (dup) {
                snprintf(p->label, sizeof(p->label), "RequestAuthentication %s", ra->meta.name ? ra->meta.name : "?");
                p->ns = dns;
                pc_pop(p, 0);
                pc_warn_at(p, r->pos.line, r->pos.col, "not used: another jwtRule for issuer \"%s\" applies first",
                           r->issuer);
                continue;
            }
            cfg->jwt_rules[cfg->n_jwt_rules++] = r;
        }
    }
    p->label[0] = '\0';
    pc_pop(p, 0);
}
