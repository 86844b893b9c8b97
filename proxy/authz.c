/*
 * authz: the compiled AuthorizationPolicy matcher (authz.h says what it
 * decides). Compiling turns every value into a match kind once, parses
 * CIDRs and ports, and splits claim paths, so a check does no allocation
 * and no parsing.
 */
#include "authz.h"

#include <netinet/in.h>
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
    uint32_t arg_len;                  /* of the header name */
    const char *path[CLAIM_DEPTH_MAX]; /* claims: into arg */
    uint32_t depth;
    mlist_t values, not_values;  /* string keys */
    clist_t cidrs, not_cidrs;    /* address keys */
    uint32_t *ports, *not_ports; /* destination.port */
    uint32_t n_ports, n_not_ports;
} mcond_t;

typedef struct mrule {
    bool http_only; /* has a field that only an HTTP request has (authz_request_t's tcp) */
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
    uint32_t first; /* the global number of its first rule (the index below) */
    _Atomic uint64_t counts[AUTHZ_RESULTS];
} mpolicy_t;

/*
 * The candidate index. Most rules carry a condition a request must meet
 * before anything else of the rule can match, and that a table can look up
 * at once: a first path segment (every path value of every operation has
 * a literal "/SEG/" or is "/SEG" exactly), a request header being there (a
 * when condition on it with values), an exact principal (every source
 * lists exact principals), or an IPv4 first octet (every source's
 * ipBlocks are IPv4 /8 or narrower). Each rule is filed under one such
 * gate, or in `always`; a check evaluates only the rules its request's
 * segment, headers, principal and octet select, plus `always`, in policy
 * order. The gates are necessary conditions, so the decision is the one a
 * full scan gives (test_authz compares the two).
 */
#define AUTHZ_INDEX_MAX_RULES 8192 /* more rules than this: no index, every rule is evaluated */

typedef struct ids {
    uint32_t *v;
    uint32_t n, cap;
} ids_t;

typedef struct bucket {
    const char *key;
    uint32_t len;
    ids_t rules;
} bucket_t;

typedef struct table {
    bucket_t *b;
    uint32_t cap; /* a power of two; 0: empty */
    uint32_t n;
} table_t;

typedef struct mref {
    uint32_t policy, rule;
} mref_t;

struct authz {
    mpolicy_t *p;
    uint32_t n;
    bool has_allow, has_audit;
    bool dry_run;         /* the istio.io/dry-run policies: evaluated beside, never enforced */
    struct authz *shadow; /* those, when any (on the enforced set) */
    bool wants_addresses;
    _Atomic uint64_t none_denied; /* ALLOW policies present and none matched */
    /* the index */
    bool indexed;
    uint32_t n_rules, words;
    mref_t *refs; /* by global rule number */
    uint64_t *always;
    table_t segs, headers, principals;
    uint64_t header_lens; /* bit n: some indexed header name has n bytes (n < 64; bit 63 also for longer ones) */
    ids_t octets[256];
    /* trustDomainAliases: a peer of an alias is matched as one of the trust domain (policies were rewritten so) */
    const char *trust_domain;
    const proxy_str_list_t *aliases;
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
        m->arg_len = (uint32_t)n;
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
    for (uint32_t i = 0; i < m->n_from; i++)
        m->http_only |= m->from[i].req_principals.n > 0 || m->from[i].not_req_principals.n > 0;
    for (uint32_t i = 0; i < m->n_to; i++) {
        const mop_t *o = &m->to[i];
        m->http_only |=
            o->hosts.n || o->not_hosts.n || o->methods.n || o->not_methods.n || o->paths.n || o->not_paths.n;
    }
    for (uint32_t i = 0; i < m->n_when; i++)
        m->http_only |= m->when[i].key == K_HEADER || m->when[i].key == K_AUTH_PRINCIPAL ||
                        m->when[i].key == K_AUTH_AUDIENCES || m->when[i].key == K_AUTH_PRESENTER ||
                        m->when[i].key == K_AUTH_CLAIM;
}

/* ---- the candidate index ---- */

static uint32_t hash_bytes(const char *s, uint32_t n)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void ids_add(ids_t *l, uint32_t id)
{
    if (l->n > 0 && l->v[l->n - 1] == id)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = id;
}

static bucket_t *table_find(const table_t *t, const char *key, uint32_t len)
{
    if (t->cap == 0)
        return NULL;
    for (uint32_t i = hash_bytes(key, len) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        bucket_t *b = &t->b[i];
        if (b->key == NULL)
            return NULL;
        if (b->len == len && memcmp(b->key, key, len) == 0)
            return b;
    }
}

/* table_find for a header name in any case (the keys are lowercase) */
static bucket_t *table_find_name(const table_t *t, const char *name, uint32_t len)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32u : c)) * 16777619u;
    }
    for (uint32_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        bucket_t *b = &t->b[i];
        if (b->key == NULL)
            return NULL;
        if (b->len == len && http1_bytes_ieq(b->key, name, len))
            return b;
    }
}

static void table_add(table_t *t, const char *key, uint32_t len, uint32_t id)
{
    if (2 * (t->n + 1) > t->cap) {
        table_t g = {xcalloc(t->cap ? 2 * t->cap : 16, sizeof(bucket_t)), t->cap ? 2 * t->cap : 16, 0};
        for (uint32_t i = 0; i < t->cap; i++)
            if (t->b[i].key != NULL) {
                uint32_t j = hash_bytes(t->b[i].key, t->b[i].len) & (g.cap - 1);
                while (g.b[j].key != NULL)
                    j = (j + 1) & (g.cap - 1);
                g.b[j] = t->b[i];
                g.n++;
            }
        free(t->b);
        *t = g;
    }
    bucket_t *b = table_find(t, key, len);
    if (b == NULL) {
        uint32_t i = hash_bytes(key, len) & (t->cap - 1);
        while (t->b[i].key != NULL)
            i = (i + 1) & (t->cap - 1);
        b = &t->b[i];
        *b = (bucket_t){key, len, {NULL, 0, 0}};
        t->n++;
    }
    ids_add(&b->rules, id);
}

static void table_free(table_t *t)
{
    for (uint32_t i = 0; i < t->cap; i++)
        free(t->b[i].rules.v);
    free(t->b);
}

/* The first segment a path value pins down ("/a/b*" -> "a"), or len -1 when it pins none down. */
static int32_t value_seg(const mstr_t *m, const char **seg)
{
    uint32_t lit = m->kind == M_EXACT || m->kind == M_PREFIX ? m->len : 0;
    if (m->kind == M_TEMPLATE)
        lit = (uint32_t)(strchr(m->s, '{') - m->s);
    if (lit == 0 || m->s[0] != '/')
        return -1;
    const char *slash = memchr(m->s + 1, '/', lit - 1);
    if (slash == NULL && m->kind != M_EXACT)
        return -1; /* "/ab*": the first segment could be longer */
    *seg = m->s + 1;
    return (int32_t)((slash ? slash : m->s + lit) - (m->s + 1));
}

/* File rule id under the first gate it has; returns whether it found one. */
static bool gate_rule(authz_t *a, const mrule_t *ru, uint32_t id)
{
    /* exact principals in every source */
    bool ok = ru->n_from > 0;
    for (uint32_t i = 0; i < ru->n_from && ok; i++) {
        const mlist_t *l = &ru->from[i].principals;
        ok = l->n > 0;
        for (uint32_t k = 0; k < l->n && ok; k++)
            ok = l->v[k].kind == M_EXACT;
    }
    if (ok) {
        for (uint32_t i = 0; i < ru->n_from; i++)
            for (uint32_t k = 0; k < ru->from[i].principals.n; k++)
                table_add(&a->principals, ru->from[i].principals.v[k].s, ru->from[i].principals.v[k].len, id);
        return true;
    }
    /* a first path segment in every path value of every operation */
    ok = ru->n_to > 0;
    for (uint32_t i = 0; i < ru->n_to && ok; i++) {
        const mlist_t *l = &ru->to[i].paths;
        ok = l->n > 0;
        for (uint32_t k = 0; k < l->n && ok; k++) {
            const char *seg;
            ok = value_seg(&l->v[k], &seg) >= 0;
        }
    }
    if (ok) {
        for (uint32_t i = 0; i < ru->n_to; i++)
            for (uint32_t k = 0; k < ru->to[i].paths.n; k++) {
                const char *seg;
                int32_t len = value_seg(&ru->to[i].paths.v[k], &seg);
                table_add(&a->segs, seg, (uint32_t)len, id);
            }
        return true;
    }
    /* a header that must be there */
    for (uint32_t i = 0; i < ru->n_when; i++) {
        const mcond_t *c = &ru->when[i];
        if (c->key == K_HEADER && c->values.n > 0) {
            table_add(&a->headers, c->arg, c->arg_len, id);
            a->header_lens |= 1ull << (c->arg_len < 63 ? c->arg_len : 63);
            return true;
        }
    }
    /* IPv4 blocks of /8 or narrower in every source */
    ok = ru->n_from > 0;
    for (uint32_t i = 0; i < ru->n_from && ok; i++) {
        const clist_t *l = &ru->from[i].ip;
        ok = l->n > 0;
        for (uint32_t k = 0; k < l->n && ok; k++)
            ok = l->v[k].net.ss_family == AF_INET && l->v[k].bits >= 8;
    }
    if (ok) {
        for (uint32_t i = 0; i < ru->n_from; i++)
            for (uint32_t k = 0; k < ru->from[i].ip.n; k++) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)&ru->from[i].ip.v[k].net;
                ids_add(&a->octets[((const uint8_t *)&in->sin_addr)[0]], id);
            }
        return true;
    }
    return false;
}

static void build_index(authz_t *a)
{
    for (uint32_t i = 0; i < a->n; i++) {
        a->p[i].first = a->n_rules;
        a->n_rules += a->p[i].n_rules;
    }
    if (a->n_rules > AUTHZ_INDEX_MAX_RULES)
        return;
    a->indexed = true;
    a->words = (a->n_rules + 63) / 64;
    a->always = xcalloc(a->words ? a->words : 1, sizeof *a->always);
    a->refs = xcalloc(a->n_rules ? a->n_rules : 1, sizeof *a->refs);
    for (uint32_t i = 0; i < a->n; i++)
        for (uint32_t r = 0; r < a->p[i].n_rules; r++) {
            uint32_t id = a->p[i].first + r;
            a->refs[id] = (mref_t){i, r};
            if (!gate_rule(a, &a->p[i].rules[r], id))
                a->always[id / 64] |= 1ull << (id % 64);
        }
}

/* The policies of cfg->authz that are dry-run (dry) or not, compiled; empty ones too. */
static authz_t *build(const proxy_config_t *cfg, int dry)
{
    authz_t *a = xcalloc(1, sizeof *a);
    for (size_t i = 0; i < cfg->n_authz; i++)
        a->n += cfg->authz[i]->dry_run == dry;
    a->p = xcalloc(a->n ? a->n : 1, sizeof *a->p);
    a->dry_run = dry;
    a->trust_domain = cfg->proxy.identity.trust_domain;
    a->aliases = &cfg->proxy.identity.trust_domain_aliases;
    for (uint32_t i = 0, k = 0; k < cfg->n_authz; k++) {
        const proxy_authorization_policy_t *ap = cfg->authz[k];
        if (ap->dry_run != dry)
            continue;
        mpolicy_t *m = &a->p[i++];
        m->ap = ap;
        a->has_allow |= ap->action == PROXY_AUTHZ_ALLOW;
        a->has_audit |= ap->action == PROXY_AUTHZ_AUDIT;
        m->n_rules = (uint32_t)ap->n_rules;
        m->rules = ap->n_rules ? xcalloc(ap->n_rules, sizeof *m->rules) : NULL;
        for (size_t r = 0; r < ap->n_rules; r++)
            compile_rule(&ap->rules[r], &m->rules[r], &a->wants_addresses);
    }
    build_index(a);
    return a;
}

authz_t *authz_compile(const proxy_config_t *cfg)
{
    if (cfg->n_authz == 0)
        return NULL;
    authz_t *a = build(cfg, 0);
    for (size_t i = 0; i < cfg->n_authz; i++)
        if (cfg->authz[i]->dry_run) {
            a->shadow = build(cfg, 1);
            a->wants_addresses |= a->shadow->wants_addresses;
            break;
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
    authz_free(a->shadow);
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
    free(a->refs);
    free(a->always);
    table_free(&a->segs);
    table_free(&a->headers);
    table_free(&a->principals);
    for (int i = 0; i < 256; i++)
        free(a->octets[i].v);
    free(a);
}

bool authz_wants_addresses(const authz_t *a)
{
    return a != NULL && a->wants_addresses;
}

/* ---- matching ---- */

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
    case M_EXACT:
        return v.len == m->len && (icase ? http1_bytes_ieq(v.ptr, m->s, m->len) : memcmp(v.ptr, m->s, m->len) == 0);
    case M_PREFIX:
        return v.len >= m->len && (icase ? http1_bytes_ieq(v.ptr, m->s, m->len) : memcmp(v.ptr, m->s, m->len) == 0);
    case M_SUFFIX: {
        const char *tail = v.ptr + v.len - m->len;
        return v.len >= m->len && (icase ? http1_bytes_ieq(tail, m->s, m->len) : memcmp(tail, m->s, m->len) == 0);
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
           (r->tcp || field(&s->req_principals, &s->not_req_principals, r->request_principal, false)) &&
           cidr_field(&s->ip, &s->not_ip, r->source) && cidr_field(&s->rip, &s->not_rip, r->remote);
}

static bool op_match(const mop_t *o, const authz_request_t *r)
{
    if (r->tcp) /* a DENY rule over TCP: only the ports count */
        return port_field(o->ports, o->n_ports, o->not_ports, o->n_not_ports, r->dest_port);
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
    if (r->tcp && (c->key == K_HEADER || c->key == K_AUTH_PRINCIPAL || c->key == K_AUTH_AUDIENCES ||
                   c->key == K_AUTH_PRESENTER || c->key == K_AUTH_CLAIM))
        return true; /* left out of a DENY rule over TCP */
    switch (c->key) {
    case K_HEADER: {
        str_t v[CLAIM_VALUES_MAX];
        uint32_t n = 0;
        size_t len = c->arg_len;
        for (uint32_t i = 0; i < r->n_headers && n < CLAIM_VALUES_MAX; i++)
            if (r->headers[i].name.len == len && http1_bytes_ieq(r->headers[i].name.ptr, c->arg, len))
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

#define PEER_ID_MAX 1024 /* a peer of an alias trust domain with a longer id is matched as it is */

/* The peer's principal (the id without "spiffe://") and namespace; an alias trust domain's written in buf as ours. */
static peer_t peer_of(const authz_t *a, str_t id, char *buf)
{
    peer_t pe = {{NULL, 0}, {NULL, 0}};
    if (id.len > 9 && memcmp(id.ptr, "spiffe://", 9) == 0) {
        pe.principal = (str_t){id.ptr + 9, id.len - 9};
        const char *slash = memchr(pe.principal.ptr, '/', pe.principal.len);
        size_t tl = slash != NULL ? (size_t)(slash - pe.principal.ptr) : 0;
        size_t rest = pe.principal.len - tl;
        for (size_t i = 0; slash != NULL && a->aliases != NULL && i < a->aliases->n; i++) {
            const char *al = a->aliases->items[i];
            size_t ours = strlen(a->trust_domain);
            if (strlen(al) == tl && memcmp(al, pe.principal.ptr, tl) == 0 && ours + rest <= PEER_ID_MAX) {
                memcpy(buf, a->trust_domain, ours);
                memcpy(buf + ours, slash, rest);
                pe.principal = (str_t){buf, (uint32_t)(ours + rest)};
                break;
            }
        }
        const char *ns = memmem(pe.principal.ptr, pe.principal.len, "/ns/", 4);
        if (ns != NULL) {
            ns += 4;
            const char *end = memchr(ns, '/', (size_t)(pe.principal.ptr + pe.principal.len - ns));
            pe.ns = (str_t){ns, (uint32_t)((end ? end : pe.principal.ptr + pe.principal.len) - ns)};
        }
    }
    return pe;
}

/* What one check found: the first AUDIT, DENY and ALLOW policy that matched, in policy order. */
typedef struct found {
    int audit, deny, allow; /* policy numbers, -1: none */
    int deny_rule, allow_rule;
} found_t;

static void consider(const authz_t *a, uint32_t i, uint32_t rule, const authz_request_t *r, const peer_t *pe,
                     found_t *f)
{
    const mpolicy_t *m = &a->p[i];
    int *slot = m->ap->action == PROXY_AUTHZ_DENY    ? &f->deny
                : m->ap->action == PROXY_AUTHZ_ALLOW ? &f->allow
                                                     : &f->audit;
    if (*slot >= 0 || (r->tcp && m->rules[rule].http_only && m->ap->action != PROXY_AUTHZ_DENY) ||
        !rule_match(&m->rules[rule], r, pe))
        return;
    *slot = (int)i;
    if (m->ap->action == PROXY_AUTHZ_DENY)
        f->deny_rule = (int)rule;
    else if (m->ap->action == PROXY_AUTHZ_ALLOW)
        f->allow_rule = (int)rule;
}

static void mark(uint64_t *bits, const ids_t *l)
{
    for (uint32_t k = 0; l != NULL && k < l->n; k++)
        bits[l->v[k] / 64] |= 1ull << (l->v[k] % 64);
}

static void scan_indexed(const authz_t *a, const authz_request_t *r, const peer_t *pe, found_t *f)
{
    uint64_t bits[AUTHZ_INDEX_MAX_RULES / 64];
    memcpy(bits, a->always, a->words * sizeof *bits);
    if (a->segs.n > 0 && r->path.len > 0 && r->path.ptr[0] == '/') {
        const char *seg = r->path.ptr + 1, *end = memchr(seg, '/', r->path.len - 1);
        bucket_t *b = table_find(&a->segs, seg, (uint32_t)((end ? end : r->path.ptr + r->path.len) - seg));
        if (b != NULL)
            mark(bits, &b->rules);
    }
    if (a->headers.n > 0) {
        for (uint32_t i = 0; i < r->n_headers; i++) {
            str_t name = r->headers[i].name;
            if (!(a->header_lens >> (name.len < 63 ? name.len : 63) & 1))
                continue; /* no indexed name has this length */
            bucket_t *b = table_find_name(&a->headers, name.ptr, name.len);
            if (b != NULL)
                mark(bits, &b->rules);
        }
    }
    if (a->principals.n > 0 && pe->principal.len > 0) {
        bucket_t *b = table_find(&a->principals, pe->principal.ptr, pe->principal.len);
        if (b != NULL)
            mark(bits, &b->rules);
    }
    if (r->source != NULL && r->source->ss_family == AF_INET)
        mark(bits, &a->octets[((const uint8_t *)&((const struct sockaddr_in *)r->source)->sin_addr)[0]]);
    for (uint32_t w = 0; w < a->words; w++)
        for (uint64_t x = bits[w]; x != 0; x &= x - 1) {
            uint32_t id = w * 64 + (uint32_t)__builtin_ctzll(x);
            consider(a, a->refs[id].policy, a->refs[id].rule, r, pe, f);
            if (f->deny >= 0 && (f->audit >= 0 || !a->has_audit))
                return; /* nothing later changes the outcome */
        }
}

void authz_check_mode(authz_t *a, const authz_request_t *r, authz_decision_t *d, bool full)
{
    *d = (authz_decision_t){.allowed = true, .rule = -1};
    if (a == NULL)
        return;
    char peer_buf[PEER_ID_MAX];
    peer_t pe = peer_of(a, r->principal, peer_buf);
    found_t f = {-1, -1, -1, -1, -1};
    if (a->indexed && !full && !r->tcp) { /* (the gates are HTTP's) */
        scan_indexed(a, r, &pe, &f);
    } else {
        for (uint32_t i = 0; i < a->n; i++)
            for (uint32_t k = 0; k < a->p[i].n_rules; k++)
                consider(a, i, k, r, &pe, &f);
    }
    if (f.audit >= 0) {
        d->audit = a->p[f.audit].ap;
        atomic_fetch_add_explicit(&a->p[f.audit].counts[AUTHZ_AUDITED], 1, memory_order_relaxed);
    }
    if (f.deny >= 0) {
        d->allowed = false;
        d->policy = a->p[f.deny].ap;
        d->rule = f.deny_rule;
        atomic_fetch_add_explicit(&a->p[f.deny].counts[AUTHZ_DENIED], 1, memory_order_relaxed);
    } else if (f.allow >= 0) {
        d->policy = a->p[f.allow].ap;
        d->rule = f.allow_rule;
        atomic_fetch_add_explicit(&a->p[f.allow].counts[AUTHZ_ALLOWED], 1, memory_order_relaxed);
    } else if (a->has_allow) {
        d->allowed = false;
        atomic_fetch_add_explicit(&a->none_denied, 1, memory_order_relaxed);
    }
}

void authz_check(authz_t *a, const authz_request_t *r, authz_decision_t *d)
{
    authz_check_mode(a, r, d, false);
    if (a != NULL && a->shadow != NULL) {
        authz_decision_t sd;
        authz_check_mode(a->shadow, r, &sd, false);
        d->dry_run = true;
        d->dry_run_allowed = sd.allowed;
        d->dry_run_policy = sd.policy;
    }
}

void authz_render_prometheus(const authz_t *a, buf_t *out)
{
    if (a == NULL)
        return;
    static const char *const actions[] = {"ALLOW", "DENY", "AUDIT"};
    static const char *const enforced[] = {"allowed", "denied", "audited"};
    static const char *const dry[] = {"dry_run_allowed", "dry_run_denied", "dry_run_audited"};
    const char *const *results = a->dry_run ? dry : enforced;
    static const char metric[] = "outrider_proxy_authz_requests_total";
    if (!a->dry_run)
        buf_printf(out,
                   "# HELP %s Requests an AuthorizationPolicy decided (allowed, denied) or audited, by policy "
                   "(namespace/name; \"none\": ALLOW policies apply and none matched); dry_run_*: what the "
                   "istio.io/dry-run policies would have done.\n# TYPE %s counter\n",
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
        buf_printf(out, "%s{policy=\"none\",action=\"ALLOW\",result=\"%s\"} %llu\n", metric, results[AUTHZ_DENIED],
                   (unsigned long long)atomic_load_explicit(&a->none_denied, memory_order_relaxed));
    authz_render_prometheus(a->shadow, out);
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

bool authz_remote_addr(const http1_header_t *headers, uint32_t n, int hops, struct sockaddr_storage *out)
{
    int seen = 0;
    for (uint32_t i = n; hops > 0 && i-- > 0;) {
        if (!http1_name_eq(headers[i].name, "x-forwarded-for"))
            continue;
        const char *v = headers[i].value.ptr;
        size_t end = headers[i].value.len;
        while (end > 0) { /* entries from the right: each ends at `end` and starts after the comma before it */
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            if (++seen == hops) {
                char ip[64];
                if (b - a == 0 || b - a >= sizeof ip)
                    return false;
                memcpy(ip, v + a, b - a);
                ip[b - a] = '\0';
                return hostport_sockaddr(ip, 0, out, NULL) == 0;
            }
            end = start > 0 ? start - 1 : 0;
        }
    }
    return false;
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
