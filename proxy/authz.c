/*
 * authz: the compiled AuthorizationPolicy matcher (authz.h says what it
 * decides). Compiling turns every value into a match kind once, parses
 * CIDRs and ports, and splits claim paths, so a check does no allocation
 * and no parsing.
 */
#include "authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostport.h"
#include "xalloc.h"

enum mkind { M_EXACT, M_PREFIX, M_SUFFIX, M_ANY, M_TEMPLATE };

typedef struct mstr {
    const char *s; /* for M_PREFIX and M_SUFFIX: without the '*' */
    uint32_t len;
    uint8_t kind;
} mstr_t;

typedef struct mlist {
    mstr_t *v;
    uint32_t n;
} mlist_t;

typedef struct cidr {
    struct sockaddr_storage net;
    int bits;
} cidr_t;

typedef struct clist {
    cidr_t *v;
    uint32_t n;
} clist_t;

typedef struct msource {
    mlist_t principals, not_principals, req_principals, not_req_principals, namespaces, not_namespaces;
    clist_t ip, not_ip, rip, not_rip;
} msource_t;

typedef struct mop {
    mlist_t hosts, not_hosts, methods, not_methods, paths, not_paths;
    uint32_t *ports, *not_ports;
    uint32_t n_ports, n_not_ports;
} mop_t;

enum ckey {
    K_HEADER,
    K_SOURCE_IP,
    K_REMOTE_IP,
    K_SOURCE_NS,
    K_SOURCE_PRINCIPAL,
    K_AUTH_PRINCIPAL,
    K_AUTH_AUDIENCES,
    K_AUTH_PRESENTER,
    K_AUTH_CLAIM,
    K_DEST_IP,
    K_DEST_PORT,
    K_SNI,
};

#define CLAIM_DEPTH_MAX 8
#define CLAIM_VALUES_MAX 64

typedef struct mcond {
    enum ckey key;
    char *arg;                         /* header name (lowercase), or the claim path's names, NUL-separated */
    const char *path[CLAIM_DEPTH_MAX]; /* claims: into arg */
    uint32_t depth;
    mlist_t values, not_values;  /* string keys */
    clist_t cidrs, not_cidrs;    /* address keys */
    uint32_t *ports, *not_ports; /* destination.port */
    uint32_t n_ports, n_not_ports;
} mcond_t;

typedef struct mrule {
    msource_t *from;
    uint32_t n_from;
    mop_t *to;
    uint32_t n_to;
    mcond_t *when;
    uint32_t n_when;
} mrule_t;

typedef struct mpolicy {
    const proxy_authorization_policy_t *ap;
    mrule_t *rules;
    uint32_t n_rules;
    _Atomic uint64_t counts[AUTHZ_RESULTS];
} mpolicy_t;

struct authz {
    mpolicy_t *p;
    uint32_t n;
    bool has_allow;
    bool wants_addresses;
    _Atomic uint64_t none_denied; /* ALLOW policies present and none matched */
};

/* ---- compile ---- */

static void compile_list(const proxy_str_list_t *in, mlist_t *out, bool template)
{
    out->n = (uint32_t)in->n;
    out->v = in->n ? xcalloc(in->n, sizeof *out->v) : NULL;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->items[i];
        uint32_t len = (uint32_t)strlen(s);
        mstr_t *m = &out->v[i];
        if (template && strchr(s, '{') != NULL)
            *m = (mstr_t){s, len, M_TEMPLATE};
        else if (len == 1 && s[0] == '*')
            *m = (mstr_t){s, 0, M_ANY};
        else if (s[0] == '*')
            *m = (mstr_t){s + 1, len - 1, M_SUFFIX};
        else if (s[len - 1] == '*')
            *m = (mstr_t){s, len - 1, M_PREFIX};
        else
            *m = (mstr_t){s, len, M_EXACT};
    }
}

static void compile_cidrs(const proxy_str_list_t *in, clist_t *out, bool *wants)
{
    out->n = 0;
    out->v = in->n ? xcalloc(in->n, sizeof *out->v) : NULL;
    for (size_t i = 0; i < in->n; i++)
        if (hostport_cidr_parse(in->items[i], &out->v[out->n].net, &out->v[out->n].bits) == 0)
            out->n++;
    *wants |= in->n > 0;
}

static uint32_t compile_ports(const proxy_str_list_t *in, uint32_t **out)
{
    *out = in->n ? xcalloc(in->n, sizeof **out) : NULL;
    for (size_t i = 0; i < in->n; i++)
        (*out)[i] = (uint32_t)strtoul(in->items[i], NULL, 10);
    return (uint32_t)in->n;
}

static void compile_cond(const proxy_authz_condition_t *c, mcond_t *m, bool *wants)
{
    static const struct {
        const char *name;
        enum ckey key;
    } plain[] = {
        {"source.ip", K_SOURCE_IP},
        {"remote.ip", K_REMOTE_IP},
        {"source.namespace", K_SOURCE_NS},
        {"source.principal", K_SOURCE_PRINCIPAL},
        {"request.auth.principal", K_AUTH_PRINCIPAL},
        {"request.auth.audiences", K_AUTH_AUDIENCES},
        {"request.auth.presenter", K_AUTH_PRESENTER},
        {"destination.ip", K_DEST_IP},
        {"destination.port", K_DEST_PORT},
        {"connection.sni", K_SNI},
    };
    const char *k = c->key;
    if (strncmp(k, "request.headers[", 16) == 0) {
        m->key = K_HEADER;
        size_t n = strlen(k + 16) - 1; /* without the ']' */
        m->arg = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++)
            m->arg[i] = (char)(k[16 + i] >= 'A' && k[16 + i] <= 'Z' ? k[16 + i] + 32 : k[16 + i]);
        m->arg[n] = '\0';
    } else if (strncmp(k, "request.auth.claims[", 20) == 0) {
        m->key = K_AUTH_CLAIM;
        m->arg = xstrdup(k + 19); /* "[a][b]" */
        char *s = m->arg;
        while (*s == '[' && m->depth < CLAIM_DEPTH_MAX) {
            char *close = strchr(s, ']');
            *close = '\0';
            m->path[m->depth++] = s + 1;
            s = close + 1;
        }
    } else {
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
            if (strcmp(k, plain[i].name) == 0)
                m->key = plain[i].key;
    }
    if (m->key == K_SOURCE_IP || m->key == K_REMOTE_IP || m->key == K_DEST_IP) {
        compile_cidrs(&c->values, &m->cidrs, wants);
        compile_cidrs(&c->not_values, &m->not_cidrs, wants);
    } else if (m->key == K_DEST_PORT) {
        m->n_ports = compile_ports(&c->values, &m->ports);
        m->n_not_ports = compile_ports(&c->not_values, &m->not_ports);
    } else {
        compile_list(&c->values, &m->values, false);
        compile_list(&c->not_values, &m->not_values, false);
    }
}

static void compile_rule(const proxy_authz_rule_t *r, mrule_t *m, bool *wants)
{
    m->n_from = (uint32_t)r->n_from;
    m->from = r->n_from ? xcalloc(r->n_from, sizeof *m->from) : NULL;
    for (size_t i = 0; i < r->n_from; i++) {
        const proxy_authz_source_t *s = &r->from[i];
        msource_t *o = &m->from[i];
        compile_list(&s->principals, &o->principals, false);
        compile_list(&s->not_principals, &o->not_principals, false);
        compile_list(&s->request_principals, &o->req_principals, false);
        compile_list(&s->not_request_principals, &o->not_req_principals, false);
        compile_list(&s->namespaces, &o->namespaces, false);
        compile_list(&s->not_namespaces, &o->not_namespaces, false);
        compile_cidrs(&s->ip_blocks, &o->ip, wants);
        compile_cidrs(&s->not_ip_blocks, &o->not_ip, wants);
        compile_cidrs(&s->remote_ip_blocks, &o->rip, wants);
        compile_cidrs(&s->not_remote_ip_blocks, &o->not_rip, wants);
    }
    m->n_to = (uint32_t)r->n_to;
    m->to = r->n_to ? xcalloc(r->n_to, sizeof *m->to) : NULL;
    for (size_t i = 0; i < r->n_to; i++) {
        const proxy_authz_operation_t *op = &r->to[i];
        mop_t *o = &m->to[i];
        compile_list(&op->hosts, &o->hosts, false);
        compile_list(&op->not_hosts, &o->not_hosts, false);
        compile_list(&op->methods, &o->methods, false);
        compile_list(&op->not_methods, &o->not_methods, false);
        compile_list(&op->paths, &o->paths, true);
        compile_list(&op->not_paths, &o->not_paths, true);
        o->n_ports = compile_ports(&op->ports, &o->ports);
        o->n_not_ports = compile_ports(&op->not_ports, &o->not_ports);
    }
    m->n_when = (uint32_t)r->n_when;
    m->when = r->n_when ? xcalloc(r->n_when, sizeof *m->when) : NULL;
    for (size_t i = 0; i < r->n_when; i++)
        compile_cond(&r->when[i], &m->when[i], wants);
}

authz_t *authz_compile(const proxy_config_t *cfg)
{
    if (cfg->n_authz == 0)
        return NULL;
    authz_t *a = xcalloc(1, sizeof *a);
    a->n = (uint32_t)cfg->n_authz;
    a->p = xcalloc(a->n, sizeof *a->p);
    for (uint32_t i = 0; i < a->n; i++) {
        const proxy_authorization_policy_t *ap = cfg->authz[i];
        mpolicy_t *m = &a->p[i];
        m->ap = ap;
        a->has_allow |= ap->action == PROXY_AUTHZ_ALLOW;
        m->n_rules = (uint32_t)ap->n_rules;
        m->rules = ap->n_rules ? xcalloc(ap->n_rules, sizeof *m->rules) : NULL;
        for (size_t r = 0; r < ap->n_rules; r++)
            compile_rule(&ap->rules[r], &m->rules[r], &a->wants_addresses);
    }
    return a;
}

static void free_list(mlist_t *l)
{
    free(l->v);
}

void authz_free(authz_t *a)
{
    if (a == NULL)
        return;
    for (uint32_t i = 0; i < a->n; i++) {
        mpolicy_t *m = &a->p[i];
        for (uint32_t r = 0; r < m->n_rules; r++) {
            mrule_t *ru = &m->rules[r];
            for (uint32_t k = 0; k < ru->n_from; k++) {
                msource_t *s = &ru->from[k];
                free_list(&s->principals), free_list(&s->not_principals), free_list(&s->req_principals);
                free_list(&s->not_req_principals), free_list(&s->namespaces), free_list(&s->not_namespaces);
                free(s->ip.v), free(s->not_ip.v), free(s->rip.v), free(s->not_rip.v);
            }
            for (uint32_t k = 0; k < ru->n_to; k++) {
                mop_t *o = &ru->to[k];
                free_list(&o->hosts), free_list(&o->not_hosts), free_list(&o->methods);
                free_list(&o->not_methods), free_list(&o->paths), free_list(&o->not_paths);
                free(o->ports), free(o->not_ports);
            }
            for (uint32_t k = 0; k < ru->n_when; k++) {
                mcond_t *c = &ru->when[k];
                free(c->arg), free_list(&c->values), free_list(&c->not_values);
                free(c->cidrs.v), free(c->not_cidrs.v), free(c->ports), free(c->not_ports);
            }
            free(ru->from), free(ru->to), free(ru->when);
        }
        free(m->rules);
    }
    free(a->p);
    free(a);
}

bool authz_wants_addresses(const authz_t *a)
{
    return a != NULL && a->wants_addresses;
}

/* ---- matching ---- */

static bool ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}

/* A path template against a path: {*} one non-empty segment, {**} whatever is left (at least one segment). */
static bool template_match(const char *t, size_t tn, const char *p, size_t pn)
{
    size_t ti = 0, pi = 0;
    while (ti < tn) {
        if (tn - ti == 4 && memcmp(t + ti, "{**}", 4) == 0)
            return pi < pn; /* {**} is last (config_authz checks): anything, not nothing */
        if (tn - ti >= 3 && memcmp(t + ti, "{*}", 3) == 0) {
            size_t e = pi;
            while (e < pn && p[e] != '/')
                e++;
            if (e == pi)
                return false;
            pi = e;
            ti += 3;
            continue;
        }
        if (pi >= pn || t[ti] != p[pi])
            return false;
        ti++, pi++;
    }
    return pi == pn;
}

static bool mstr_match(const mstr_t *m, str_t v, bool icase)
{
    if (v.len == 0)
        return false;
    switch (m->kind) {
    case M_ANY: return true;
    case M_EXACT: return v.len == m->len && (icase ? ieq(v.ptr, m->s, m->len) : memcmp(v.ptr, m->s, m->len) == 0);
    case M_PREFIX: return v.len >= m->len && (icase ? ieq(v.ptr, m->s, m->len) : memcmp(v.ptr, m->s, m->len) == 0);
    case M_SUFFIX: {
        const char *tail = v.ptr + v.len - m->len;
        return v.len >= m->len && (icase ? ieq(tail, m->s, m->len) : memcmp(tail, m->s, m->len) == 0);
    }
    case M_TEMPLATE: return template_match(m->s, m->len, v.ptr, v.len);
    }
    return false;
}

static bool any_of(const mlist_t *l, str_t v, bool icase)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (mstr_match(&l->v[i], v, icase))
            return true;
    return false;
}

/* values (any one, if given) and not-values (none) */
static bool field(const mlist_t *yes, const mlist_t *no, str_t v, bool icase)
{
    return (yes->n == 0 || any_of(yes, v, icase)) && (no->n == 0 || !any_of(no, v, icase));
}

static bool in_cidrs(const clist_t *l, const struct sockaddr_storage *a)
{
    if (a == NULL)
        return false;
    for (uint32_t i = 0; i < l->n; i++)
        if (hostport_cidr_contains(&l->v[i].net, l->v[i].bits, a))
            return true;
    return false;
}

static bool cidr_field(const clist_t *yes, const clist_t *no, const struct sockaddr_storage *a)
{
    return (yes->n == 0 || in_cidrs(yes, a)) && (no->n == 0 || !in_cidrs(no, a));
}

static bool in_ports(const uint32_t *v, uint32_t n, uint32_t port)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == port)
            return true;
    return false;
}

static bool port_field(const uint32_t *yes, uint32_t ny, const uint32_t *no, uint32_t nn, uint32_t port)
{
    return (ny == 0 || in_ports(yes, ny, port)) && (nn == 0 || !in_ports(no, nn, port));
}

/* The parts of a request that come from its peer's SPIFFE id: "td/ns/NS/sa/SA" and NS. */
typedef struct peer {
    str_t principal, ns;
} peer_t;

static bool host_match(const mlist_t *l, str_t authority)
{
    if (any_of(l, authority, true))
        return true;
    /* a host written without a port matches the Host with any port */
    const char *colon = authority.len ? memrchr(authority.ptr, ':', authority.len) : NULL;
    if (colon == NULL || memchr(colon, ']', authority.len - (size_t)(colon - authority.ptr)) != NULL)
        return false;
    str_t bare = {authority.ptr, (uint32_t)(colon - authority.ptr)};
    for (uint32_t i = 0; i < l->n; i++)
        if (memchr(l->v[i].s, ':', l->v[i].len) == NULL && mstr_match(&l->v[i], bare, true))
            return true;
    return false;
}

static bool source_match(const msource_t *s, const authz_request_t *r, const peer_t *pe)
{
    return field(&s->principals, &s->not_principals, pe->principal, false) &&
           field(&s->namespaces, &s->not_namespaces, pe->ns, false) &&
           field(&s->req_principals, &s->not_req_principals, r->request_principal, false) &&
           cidr_field(&s->ip, &s->not_ip, r->source) && cidr_field(&s->rip, &s->not_rip, r->remote);
}

static bool op_match(const mop_t *o, const authz_request_t *r)
{
    if (!field(&o->methods, &o->not_methods, r->method, false) || !field(&o->paths, &o->not_paths, r->path, false))
        return false;
    if ((o->hosts.n > 0 && !host_match(&o->hosts, r->authority)) ||
        (o->not_hosts.n > 0 && host_match(&o->not_hosts, r->authority)))
        return false;
    return port_field(o->ports, o->n_ports, o->not_ports, o->n_not_ports, r->dest_port);
}

/* Values that may be several (a header's lines, an array claim, the audiences): any matches / none matches. */
static bool multi_field(const mcond_t *c, const str_t *v, uint32_t n)
{
    bool yes = c->values.n == 0, no = false;
    for (uint32_t i = 0; i < n; i++) {
        yes |= c->values.n > 0 && any_of(&c->values, v[i], false);
        no |= c->not_values.n > 0 && any_of(&c->not_values, v[i], false);
    }
    return yes && !no;
}

static bool cond_match(const mcond_t *c, const authz_request_t *r, const peer_t *pe)
{
    switch (c->key) {
    case K_HEADER: {
        str_t v[CLAIM_VALUES_MAX];
        uint32_t n = 0;
        size_t len = strlen(c->arg);
        for (uint32_t i = 0; i < r->n_headers && n < CLAIM_VALUES_MAX; i++)
            if (r->headers[i].name.len == len && ieq(r->headers[i].name.ptr, c->arg, len))
                v[n++] = r->headers[i].value;
        return multi_field(c, v, n);
    }
    case K_SOURCE_IP: return cidr_field(&c->cidrs, &c->not_cidrs, r->source);
    case K_REMOTE_IP: return cidr_field(&c->cidrs, &c->not_cidrs, r->remote);
    case K_DEST_IP: return cidr_field(&c->cidrs, &c->not_cidrs, r->dest);
    case K_SOURCE_NS: return field(&c->values, &c->not_values, pe->ns, false);
    case K_SOURCE_PRINCIPAL: return field(&c->values, &c->not_values, pe->principal, false);
    case K_AUTH_PRINCIPAL: return field(&c->values, &c->not_values, r->request_principal, false);
    case K_AUTH_PRESENTER: return field(&c->values, &c->not_values, r->presenter, false);
    case K_AUTH_AUDIENCES: return multi_field(c, r->audiences, r->n_audiences);
    case K_AUTH_CLAIM: {
        str_t v[CLAIM_VALUES_MAX];
        uint32_t n = r->claim != NULL ? r->claim(r->claim_ctx, c->path, c->depth, v, CLAIM_VALUES_MAX) : 0;
        return multi_field(c, v, n);
    }
    case K_DEST_PORT: return port_field(c->ports, c->n_ports, c->not_ports, c->n_not_ports, r->dest_port);
    case K_SNI: return field(&c->values, &c->not_values, r->sni, false);
    }
    return false;
}

static bool rule_match(const mrule_t *ru, const authz_request_t *r, const peer_t *pe)
{
    bool ok = ru->n_from == 0;
    for (uint32_t i = 0; i < ru->n_from && !ok; i++)
        ok = source_match(&ru->from[i], r, pe);
    if (!ok)
        return false;
    ok = ru->n_to == 0;
    for (uint32_t i = 0; i < ru->n_to && !ok; i++)
        ok = op_match(&ru->to[i], r);
    if (!ok)
        return false;
    for (uint32_t i = 0; i < ru->n_when; i++)
        if (!cond_match(&ru->when[i], r, pe))
            return false;
    return true;
}

/* The index of the first rule of m that matches, or -1. */
static int policy_match(const mpolicy_t *m, const authz_request_t *r, const peer_t *pe)
{
    for (uint32_t i = 0; i < m->n_rules; i++)
        if (rule_match(&m->rules[i], r, pe))
            return (int)i;
    return -1;
}

static peer_t peer_of(str_t id)
{
    peer_t pe = {{NULL, 0}, {NULL, 0}};
    if (id.len > 9 && memcmp(id.ptr, "spiffe://", 9) == 0) {
        pe.principal = (str_t){id.ptr + 9, id.len - 9};
        const char *ns = memmem(pe.principal.ptr, pe.principal.len, "/ns/", 4);
        if (ns != NULL) {
            ns += 4;
            const char *end = memchr(ns, '/', (size_t)(pe.principal.ptr + pe.principal.len - ns));
            pe.ns = (str_t){ns, (uint32_t)((end ? end : pe.principal.ptr + pe.principal.len) - ns)};
        }
    }
    return pe;
}

void authz_check(authz_t *a, const authz_request_t *r, authz_decision_t *d)
{
    *d = (authz_decision_t){true, NULL, -1, NULL};
    if (a == NULL)
        return;
    peer_t pe = peer_of(r->principal);
    /* AUDIT first (it never decides), then DENY, then ALLOW */
    for (uint32_t i = 0; i < a->n; i++) {
        mpolicy_t *m = &a->p[i];
        if (m->ap->action == PROXY_AUTHZ_AUDIT && d->audit == NULL && policy_match(m, r, &pe) >= 0) {
            d->audit = m->ap;
            atomic_fetch_add_explicit(&m->counts[AUTHZ_AUDITED], 1, memory_order_relaxed);
        }
    }
    for (uint32_t i = 0; i < a->n; i++) {
        mpolicy_t *m = &a->p[i];
        int rule;
        if (m->ap->action == PROXY_AUTHZ_DENY && (rule = policy_match(m, r, &pe)) >= 0) {
            *d = (authz_decision_t){false, m->ap, rule, d->audit};
            atomic_fetch_add_explicit(&m->counts[AUTHZ_DENIED], 1, memory_order_relaxed);
            return;
        }
    }
    if (!a->has_allow)
        return;
    for (uint32_t i = 0; i < a->n; i++) {
        mpolicy_t *m = &a->p[i];
        int rule;
        if (m->ap->action == PROXY_AUTHZ_ALLOW && (rule = policy_match(m, r, &pe)) >= 0) {
            *d = (authz_decision_t){true, m->ap, rule, d->audit};
            atomic_fetch_add_explicit(&m->counts[AUTHZ_ALLOWED], 1, memory_order_relaxed);
            return;
        }
    }
    d->allowed = false;
    atomic_fetch_add_explicit(&a->none_denied, 1, memory_order_relaxed);
}

void authz_render_prometheus(const authz_t *a, buf_t *out)
{
    if (a == NULL)
        return;
    static const char *const actions[] = {"ALLOW", "DENY", "AUDIT"};
    static const char *const results[] = {"allowed", "denied", "audited"};
    static const char metric[] = "outrider_proxy_authz_requests_total";
    buf_printf(out,
               "# HELP %s Requests an AuthorizationPolicy decided (allowed, denied) or audited, by policy "
               "(namespace/name; \"none\": ALLOW policies apply and none matched).\n# TYPE %s counter\n",
               metric, metric);
    for (uint32_t i = 0; i < a->n; i++) {
        const mpolicy_t *m = &a->p[i];
        for (int k = 0; k < AUTHZ_RESULTS; k++) {
            uint64_t v = atomic_load_explicit(&m->counts[k], memory_order_relaxed);
            bool shown = (m->ap->action == PROXY_AUTHZ_ALLOW && k == AUTHZ_ALLOWED) ||
                         (m->ap->action == PROXY_AUTHZ_DENY && k == AUTHZ_DENIED) ||
                         (m->ap->action == PROXY_AUTHZ_AUDIT && k == AUTHZ_AUDITED);
            if (!shown)
                continue;
            buf_printf(out, "%s{policy=\"", metric);
            buf_append_prom_label(out, m->ap->meta.namespace, strlen(m->ap->meta.namespace));
            buf_append_char(out, '/');
            buf_append_prom_label(out, m->ap->meta.name, strlen(m->ap->meta.name));
            buf_printf(out, "\",action=\"%s\",result=\"%s\"} %llu\n", actions[m->ap->action], results[k],
                       (unsigned long long)v);
        }
    }
    if (a->has_allow)
        buf_printf(out, "%s{policy=\"none\",action=\"ALLOW\",result=\"denied\"} %llu\n", metric,
                   (unsigned long long)atomic_load_explicit(&a->none_denied, memory_order_relaxed));
}

/* ---- path normalization ---- */

static int unhex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

int authz_normalize_path(str_t path, buf_t *out)
{
    if (path.len == 0 || path.ptr[0] != '/')
        return -1;
    size_t base = out->len;
    /* decode %XX of unreserved characters into out, then remove dot segments in place */
    buf_reserve(out, path.len + 1);
    char *w = out->data + base;
    size_t n = 0;
    for (uint32_t i = 0; i < path.len; i++) {
        char c = path.ptr[i];
        if (c == '%' && i + 2 < path.len + 0u && unhex(path.ptr[i + 1]) >= 0 && unhex(path.ptr[i + 2]) >= 0) {
            int v = unhex(path.ptr[i + 1]) * 16 + unhex(path.ptr[i + 2]);
            if (unreserved(v)) {
                w[n++] = (char)v;
                i += 2;
                continue;
            }
        }
        w[n++] = c;
    }
    /* RFC 3986 5.2.4 over whole segments: the output keeps a stack of them */
    size_t o = 0, i = 0;
    while (i < n) {
        size_t e = i + 1;
        while (e < n && w[e] != '/')
            e++;
        size_t len = e - i; /* "/seg" */
        bool dot = len == 2 && w[i + 1] == '.', dotdot = len == 3 && w[i + 1] == '.' && w[i + 2] == '.';
        if (dot || dotdot) {
            if (dotdot)
                while (o > 0 && w[--o] != '/')
                    ;
            if (e == n) /* a trailing "." or ".." leaves the directory: "/a/b/.." is "/a/" */
                w[o++] = '/';
        } else {
            memmove(w + o, w + i, len);
            o += len;
        }
        i = e;
    }
    if (o == 0)
        w[o++] = '/';
    out->len = base + o;
    out->data[out->len] = '\0';
    return 0;
}
