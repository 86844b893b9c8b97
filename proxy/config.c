/*
 * config: loading the sidecar's YAML into the model; see config.h.
 *
 * This file holds the generic machinery (paths, messages, typed scalars),
 * the document dispatch, the `kind: Proxy` document and the public lookups.
 * The Istio kinds live in config_istio.c, the cross-reference pass in
 * config_check.c, both passes of `kind: RateLimit` in config_ratelimit.c.
 *
 * The YAML is parsed by common/yaml (libfyaml in a forked child), so a
 * hostile file can neither hang nor crash the loader; everything here works
 * on our own node tree and copies what it keeps into the model's arena.
 */
#include "config.h"
#include "jwt.h"
#include "authz.h" /* AUTHZ_XFF_HOPS_MAX */
#include "jwks_fetch.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config_parse.h"
#include "hostport.h"
#include "log.h"
#include "xalloc.h"

/* ---- messages and paths ---- */

static void vemit(pctx_t *p, int warning, int line, int col, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* The file and the line within it of an encoded line (PC_LINE_BASE). */
static const char *line_file(const pctx_t *p, int *line)
{
    if (p->n_files <= 1 || *line <= 0)
        return p->file;
    size_t i = (size_t)(*line / PC_LINE_BASE);
    *line %= PC_LINE_BASE;
    return i < p->n_files ? p->files[i] : p->file;
}

const char *pc_where(const pctx_t *p, int line, char *buf, size_t len)
{
    const char *f = line_file(p, &line);
    if (p->n_files > 1)
        snprintf(buf, len, "%s:%d", f, line);
    else
        snprintf(buf, len, "line %d", line);
    return buf;
}

static void vemit(pctx_t *p, int warning, int line, int col, const char *fmt, va_list ap)
{
    buf_t b = BUF_INIT;
    const char *file = line_file(p, &line);
    if (line > 0)
        buf_printf(&b, "%s:%d:%d: ", file, line, col);
    else
        buf_printf(&b, "%s: ", file);
    if (p->label[0])
        buf_printf(&b, "%s: ", p->label);
    if (p->path.len > 0)
        buf_printf(&b, "%s: ", p->path.data);
    buf_vprintf(&b, fmt, ap);
    if (warning) {
        p->warnings++;
        if (p->warn != NULL)
            p->warn(p->ctx, b.data);
    } else {
        p->errors++;
        p->err(p->ctx, b.data);
    }
    buf_dispose(&b);
}

void pc_error_at(pctx_t *p, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vemit(p, 0, line, col, fmt, ap);
    va_end(ap);
}

void pc_error(pctx_t *p, const yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vemit(p, 0, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

void pc_warn_at(pctx_t *p, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vemit(p, 1, line, col, fmt, ap);
    va_end(ap);
}

void pc_warn(pctx_t *p, const yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vemit(p, 1, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

size_t pc_push(pctx_t *p, const char *key)
{
    size_t mark = p->path.len;
    if (p->path.len > 0)
        buf_append_char(&p->path, '.');
    buf_append_str(&p->path, key);
    return mark;
}

size_t pc_push_index(pctx_t *p, size_t i)
{
    size_t mark = p->path.len;
    buf_printf(&p->path, "[%zu]", i);
    return mark;
}

void pc_pop(pctx_t *p, size_t mark)
{
    p->path.len = mark;
    if (p->path.data != NULL)
        p->path.data[mark] = '\0';
}

static const char *kind_name(const yaml_node_t *v)
{
    if (v->kind == YAML_MAP)
        return "a mapping";
    if (v->kind == YAML_SEQ)
        return "a list";
    if (v->is_null)
        return "nothing";
    return v->quoted ? "a quoted string" : "a scalar";
}

pc_iter_t pc_map_begin(pctx_t *p, const yaml_node_t *node)
{
    pc_iter_t it = {0};
    if (node == NULL || (node->kind == YAML_SCALAR && node->is_null))
        return it;
    if (node->kind != YAML_MAP) {
        pc_error(p, node, "expected a mapping, got %s", kind_name(node));
        return it;
    }
    it.map = node;
    it.mark = p->path.len;
    return it;
}

int pc_map_next(pctx_t *p, pc_iter_t *it)
{
    if (it->map == NULL)
        return 0;
    pc_pop(p, it->mark);
    while (it->i < it->map->n) {
        const yaml_node_t *key = it->map->items[2 * it->i];
        const yaml_node_t *val = it->map->items[2 * it->i + 1];
        it->i++;
        if (key->kind != YAML_SCALAR || key->is_null) {
            pc_error(p, key, "field names must be strings");
            continue;
        }
        it->key = key;
        it->val = val;
        it->k = key->str;
        pc_push(p, key->str);
        return 1;
    }
    return 0;
}

void pc_unknown(pctx_t *p, const pc_iter_t *it)
{
    pc_error(p, it->key, "unknown field");
}

void pc_unsupported(pctx_t *p, const pc_iter_t *it)
{
    pc_error(p, it->key, "not supported by outrider-proxy");
}

void pc_missing(pctx_t *p, const yaml_node_t *node, const char *field)
{
    size_t mark = pc_push(p, field);
    pc_error(p, node, "missing required field");
    pc_pop(p, mark);
}

/* ---- allocation ---- */

void *pc_alloc(pctx_t *p, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    void *m = arena_calloc(&p->cfg->arena, n, size);
    if (m == NULL)
        log_fatal("out of memory loading the configuration");
    return m;
}

const char *pc_strdup(pctx_t *p, const char *s)
{
    char *d = arena_strndup(&p->cfg->arena, s, strlen(s));
    if (d == NULL)
        log_fatal("out of memory loading the configuration");
    return d;
}

/* ---- scalars ---- */

static int scalar(pctx_t *p, const yaml_node_t *v, const char *want)
{
    if (v->kind != YAML_SCALAR || v->is_null) {
        pc_error(p, v, "expected %s, got %s", want, kind_name(v));
        return -1;
    }
    return 0;
}

const char *pc_string(pctx_t *p, const yaml_node_t *v)
{
    if (scalar(p, v, "a string") != 0)
        return NULL;
    if (strlen(v->str) != v->len) {
        pc_error(p, v, "strings must not contain NUL characters");
        return NULL;
    }
    return pc_strdup(p, v->str);
}

static int number_text(pctx_t *p, const yaml_node_t *v, const char *want)
{
    if (scalar(p, v, want) != 0)
        return -1;
    if (v->quoted) {
        pc_error(p, v, "expected %s, got the string \"%s\"", want, v->str);
        return -1;
    }
    return 0;
}

int pc_int(pctx_t *p, const yaml_node_t *v, int64_t min, int64_t max, int64_t *out)
{
    if (number_text(p, v, "an integer") != 0)
        return -1;
    const char *s = v->str;
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (!isdigit((unsigned char)*digits)) {
        pc_error(p, v, "expected an integer, got \"%s\"", s);
        return -1;
    }
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (*end != '\0') {
        pc_error(p, v, "expected an integer, got \"%s\"", s);
        return -1;
    }
    if (errno == ERANGE || n < min || n > max) {
        pc_error(p, v, "%s is out of range (%lld-%lld)", s, (long long)min, (long long)max);
        return -1;
    }
    *out = n;
    return 0;
}

int pc_double(pctx_t *p, const yaml_node_t *v, double min, double max, double *out)
{
    if (number_text(p, v, "a number") != 0)
        return -1;
    const char *s = v->str;
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (!isdigit((unsigned char)*digits) && !(*digits == '.' && isdigit((unsigned char)digits[1]))) {
        pc_error(p, v, "expected a number, got \"%s\"", s);
        return -1;
    }
    errno = 0;
    char *end;
    double d = strtod(s, &end);
    if (*end != '\0' || !isfinite(d)) {
        pc_error(p, v, "expected a number, got \"%s\"", s);
        return -1;
    }
    if (d < min || d > max) {
        pc_error(p, v, "%s is out of range (%g-%g)", s, min, max);
        return -1;
    }
    *out = d;
    return 0;
}

int pc_bool(pctx_t *p, const yaml_node_t *v, int *out)
{
    if (number_text(p, v, "true or false") != 0)
        return -1;
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(v->str, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(v->str, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    pc_error(p, v, "expected true or false, got \"%s\"", v->str);
    return -1;
}

/* Istio's protocol selection: the port's protocol, else its name's prefix ("tcp-db"); HTTP when neither says. */
int proxy_port_is_tcp(const proxy_port_t *p)
{
    static const char *const tcp[] = {"TCP", "TLS", "HTTPS", "MONGO", "MYSQL", "REDIS", NULL};
    const char *proto = p->protocol;
    char prefix[16] = "";
    if (proto == NULL && p->name != NULL) {
        size_t n = strcspn(p->name, "-");
        if (n < sizeof prefix) {
            for (size_t i = 0; i < n; i++)
                prefix[i] = (char)toupper((unsigned char)p->name[i]);
            prefix[n] = '\0';
        }
        proto = prefix;
    }
    for (size_t i = 0; proto != NULL && tcp[i] != NULL; i++)
        if (strcmp(proto, tcp[i]) == 0)
            return 1;
    return 0;
}

int proxy_duration_parse(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ms", 1e6}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ns", 1}, {"h", 3600e9}, {"m", 60e9}, {"s", 1e9}};
    if (*s == '\0')
        return -1;
    double total_ns = 0;
    while (*s) {
        if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1])))
            return -1;
        const char *start = s;
        while (isdigit((unsigned char)*s) || *s == '.')
            s++;
        if (s - start > 30)
            return -1;
        char num[32];
        memcpy(num, start, (size_t)(s - start));
        num[s - start] = '\0';
        if (strchr(num, '.') != strrchr(num, '.'))
            return -1;
        char *end;
        double v = strtod(num, &end);
        if (*end != '\0')
            return -1;
        size_t i;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t ul = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, ul) == 0) {
                total_ns += v * units[i].ns;
                s += ul;
                break;
            }
        }
        if (i == sizeof(units) / sizeof(units[0]))
            return -1;
    }
    /* a signed 64-bit count of nanoseconds, as Go and protobuf Durations allow (~292 years) */
    if (!isfinite(total_ns) || total_ns > 9.2e18)
        return -1;
    uint64_t r = (uint64_t)(total_ns / 1e6);
    if (r == 0 && total_ns > 0)
        return -1;
    *ms = r;
    return 0;
}

int pc_duration(pctx_t *p, const yaml_node_t *v, int64_t *out_ms)
{
    if (scalar(p, v, "a duration") != 0)
        return -1;
    uint64_t ms;
    if (proxy_duration_parse(v->str, &ms) != 0) {
        pc_error(p, v, "expected a duration such as 1s, 0.5s, 250ms, 1m or 1h (at least 1ms), got \"%s\"", v->str);
        return -1;
    }
    *out_ms = (int64_t)ms;
    return 0;
}

int pc_enum(pctx_t *p, const yaml_node_t *v, const char *const *names)
{
    if (scalar(p, v, "a string") != 0)
        return -1;
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(v->str, names[i]) == 0)
            return i;
    buf_t b = BUF_INIT;
    for (int i = 0; names[i] != NULL; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
    pc_error(p, v, "unknown value \"%s\" (expected one of %s)", v->str, b.data ? b.data : "");
    buf_dispose(&b);
    return -1;
}

long pc_seq(pctx_t *p, const yaml_node_t *v)
{
    if (v->kind == YAML_SCALAR && v->is_null)
        return 0;
    if (v->kind != YAML_SEQ) {
        pc_error(p, v, "expected a list, got %s", kind_name(v));
        return -1;
    }
    return (long)v->n;
}

void pc_str_list(pctx_t *p, const yaml_node_t *v, proxy_str_list_t *out)
{
    long n = pc_seq(p, v);
    if (n <= 0)
        return;
    out->items = pc_alloc(p, (size_t)n, sizeof(char *));
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        const char *s = pc_string(p, v->items[i]);
        if (s != NULL)
            out->items[out->n++] = s;
        pc_pop(p, mark);
    }
}

void pc_kv_map(pctx_t *p, const yaml_node_t *v, proxy_kv_list_t *out, int lower)
{
    pc_iter_t probe = pc_map_begin(p, v);
    if (probe.map == NULL)
        return;
    out->items = pc_alloc(p, v->n, sizeof(proxy_kv_t));
    PC_FIELDS(p, v, it)
    {
        const char *val = pc_string(p, it.val);
        if (val == NULL)
            continue;
        char *key = (char *)pc_strdup(p, it.k);
        if (lower)
            for (char *c = key; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        out->items[out->n].key = key;
        out->items[out->n].value = val;
        out->n++;
    }
}

int pc_percent(pctx_t *p, const yaml_node_t *v, double *out)
{
    int rc = -1;
    int seen = 0;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "value")) {
            seen = 1;
            rc = pc_double(p, it.val, 0, 100, out);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (!seen && v->kind == YAML_MAP)
        pc_missing(p, v, "value");
    return rc;
}

static int is_ip(const char *host)
{
    struct sockaddr_storage ss;
    return hostport_sockaddr(host, 0, &ss, NULL) == 0;
}

int pc_hostport(pctx_t *p, const yaml_node_t *v, int ip_only, proxy_hostport_t *out)
{
    if (scalar(p, v, "HOST:PORT") != 0)
        return -1;
    char host[256];
    uint16_t port;
    /* a listener may ask for any free port (0), as the collector's can; a destination may not */
    if (hostport_split(v->str, host, sizeof(host), &port, NULL) != 0 || (port == 0 && !ip_only)) {
        pc_error(p, v, "expected HOST:PORT with a port %s (IPv6 in brackets), got \"%s\"",
                 ip_only ? "0-65535" : "1-65535", v->str);
        return -1;
    }
    if (ip_only && !is_ip(host)) {
        pc_error(p, v, "expected an IP address and port such as 127.0.0.1:15001, got \"%s\"", v->str);
        return -1;
    }
    out->text = pc_strdup(p, v->str);
    out->host = pc_strdup(p, host);
    out->port = port;
    return 0;
}

const char *pc_fqdn(pctx_t *p, const char *host, const char *ns)
{
    char forms[PROXY_HOST_FORMS][PROXY_HOST_MAX];
    if (proxy_host_forms(host, strlen(host), ns, 0, forms) == 0)
        return pc_lower(p, host);
    return pc_strdup(p, forms[0]);
}

const char *pc_readable_file(pctx_t *p, const yaml_node_t *v)
{
    const char *f = pc_string(p, v);
    if (f != NULL && access(f, R_OK) != 0) {
        pc_error(p, v, "cannot read \"%s\": %s", f, strerror(errno));
        return NULL;
    }
    return f;
}

const char *pc_lower(pctx_t *p, const char *s)
{
    char *d = (char *)pc_strdup(p, s);
    for (char *c = d; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return d;
}

/* ---- host lookups ---- */

#define CLUSTER_SUFFIX ".svc.cluster.local"

/* Write len bytes of name, lowercased, then the NUL-terminated tail, into out (PROXY_HOST_MAX bytes). */
static void form_write(char *out, const char *name, size_t len, const char *tail)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    strcpy(out + len, tail);
}

/* The length of the first label of fqdn when fqdn is LABEL.ns.svc.cluster.local, else 0. */
static size_t short_in(const char *fqdn, const char *ns)
{
    const char *dot = strchr(fqdn, '.');
    size_t nsl = strlen(ns);
    if (dot == NULL || dot == fqdn || strncmp(dot + 1, ns, nsl) != 0 || strcmp(dot + 1 + nsl, CLUSTER_SUFFIX) != 0)
        return 0;
    return (size_t)(dot - fqdn);
}

static size_t count_dots(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '.';
    return n;
}

size_t proxy_host_forms(const char *name, size_t len, const char *ns, int dns_forms,
                        char forms[PROXY_HOST_FORMS][PROXY_HOST_MAX])
{
    if (ns == NULL)
        ns = "default";
    size_t nsl = strlen(ns);
    if (len == 0 || len + 1 + nsl + sizeof(CLUSTER_SUFFIX) > PROXY_HOST_MAX)
        return 0;
    if ((name[0] == '*' && (len == 1 || name[1] == '.')) || memchr(name, ':', len) != NULL) {
        form_write(forms[0], name, len, "");
        return 1;
    }
    size_t dots = count_dots(name, len), n = 0;
    if (dots == 0) {
        /* the router calls this per request: no snprintf */
        form_write(forms[0], name, len, ".");
        memcpy(forms[0] + len + 1, ns, nsl);
        memcpy(forms[0] + len + 1 + nsl, CLUSTER_SUFFIX, sizeof(CLUSTER_SUFFIX));
        form_write(forms[1], name, len, "");
        return 2;
    }
    form_write(forms[n++], name, len, "");
    /* NAME.NS2 and NAME.NS2.svc, the partial names a pod's DNS search path completes */
    if (dns_forms && name[0] != '.' && name[len - 1] != '.') {
        if (dots == 1)
            form_write(forms[n++], name, len, CLUSTER_SUFFIX);
        else if (dots == 2 && len > 4 && memcmp(forms[0] + len - 4, ".svc", 4) == 0)
            form_write(forms[n++], name, len, ".cluster.local");
    }
    size_t sl = short_in(forms[n - 1], ns);
    if (sl > 0) {
        form_write(forms[n], forms[n - 1], sl, "");
        n++;
    }
    return n;
}

static int wild_match(const char *pattern, const char *name)
{
    if (strcmp(pattern, "*") == 0)
        return 1;
    size_t pl = strlen(pattern + 1), nl = strlen(name);
    return nl > pl && strcmp(name + nl - pl, pattern + 1) == 0;
}

void proxy_config_resolve(const proxy_config_t *cfg, const char *name, const char *ns, proxy_host_ref_t *out)
{
    char forms[PROXY_HOST_FORMS][PROXY_HOST_MAX];
    size_t n = proxy_host_forms(name, strlen(name), ns, 0, forms);
    memset(out, 0, sizeof(*out));
    /* an exact host wins over a wildcard one, whatever the order of the entries */
    for (size_t f = 0; f < n; f++)
        for (size_t i = 0; i < cfg->n_services; i++)
            for (size_t j = 0; j < cfg->services[i].n_hosts; j++) {
                const proxy_host_t *h = &cfg->services[i].hosts[j];
                if (h->fqdn == NULL || strcmp(h->fqdn, forms[f]) != 0)
                    continue;
                if (out->service == NULL) {
                    out->service = &cfg->services[i];
                    out->host = h;
                } else if (out->service != &cfg->services[i] && out->shadowed == NULL) {
                    out->shadowed = &cfg->services[i];
                    out->shadowed_host = h;
                }
            }
    if (out->service != NULL)
        return;
    /* the longest wildcard, as the router tries them */
    size_t best = 0;
    for (size_t f = 0; f < n; f++)
        for (size_t i = 0; i < cfg->n_services; i++)
            for (size_t j = 0; j < cfg->services[i].n_hosts; j++) {
                const proxy_host_t *h = &cfg->services[i].hosts[j];
                if (h->fqdn == NULL || h->fqdn[0] != '*' || !wild_match(h->fqdn, forms[f]))
                    continue;
                if (out->service == NULL || strlen(h->fqdn) > best) {
                    out->service = &cfg->services[i];
                    out->host = h;
                    best = strlen(h->fqdn);
                }
            }
}

const proxy_service_entry_t *proxy_config_find_service(const proxy_config_t *cfg, const char *name, const char *ns)
{
    proxy_host_ref_t ref;
    proxy_config_resolve(cfg, name, ns, &ref);
    return ref.service;
}

const proxy_destination_rule_t *proxy_config_find_rule(const proxy_config_t *cfg, const proxy_service_entry_t *se)
{
    for (size_t i = 0; i < cfg->n_destination_rules; i++)
        if (cfg->destination_rules[i].service == se && se != NULL)
            return &cfg->destination_rules[i];
    return NULL;
}

const proxy_subset_t *proxy_rule_find_subset(const proxy_destination_rule_t *rule, const char *name)
{
    if (rule == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < rule->n_subsets; i++)
        if (rule->subsets[i].name != NULL && strcmp(rule->subsets[i].name, name) == 0)
            return &rule->subsets[i];
    return NULL;
}

const char *proxy_kv_get(const proxy_kv_list_t *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return l->items[i].value;
    return NULL;
}

int proxy_subset_selects(const proxy_subset_t *subset, const proxy_endpoint_t *ep)
{
    for (size_t i = 0; i < subset->labels.n; i++) {
        int found = 0;
        for (size_t j = 0; j < ep->labels.n && !found; j++)
            found = strcmp(subset->labels.items[i].key, ep->labels.items[j].key) == 0 &&
                    strcmp(subset->labels.items[i].value, ep->labels.items[j].value) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

/* ---- kind: Proxy ---- */

static void parse_listen_only(pctx_t *p, const yaml_node_t *v, proxy_hostport_t *listen)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "listen"))
            pc_hostport(p, it.val, 1, listen);
        else
            pc_unknown(p, &it);
    }
}

static void parse_otlp_endpoint(pctx_t *p, const yaml_node_t *v, proxy_spec_t *ps)
{
    const char *s = pc_string(p, v);
    if (s == NULL)
        return;
    size_t scheme = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
    if (scheme == 0) {
        pc_error(p, v, "expected http://HOST:PORT or https://HOST:PORT (then an optional path), got \"%s\"", s);
        return;
    }
    /* HOST:PORT, up to the path (the signals' paths /v1/traces... are appended to it, as OTLP exporters do) */
    const char *path = strchr(s + scheme, '/');
    size_t len = path != NULL ? (size_t)(path - (s + scheme)) : strlen(s + scheme);
    char hp[300];
    char host[256];
    uint16_t port;
    if (len >= sizeof(hp) || (memcpy(hp, s + scheme, len), hp[len] = '\0', 0) ||
        hostport_split(hp, host, sizeof(host), &port, NULL) != 0 || port == 0) {
        pc_error(p, v, "expected %.*sHOST:PORT with a port 1-65535, got \"%s\"", (int)scheme, s, s);
        return;
    }
    if (strlen(s) > 1000 || strpbrk(s, " ?#") != NULL) {
        pc_error(p, v, "an endpoint is a base URL without spaces, query or fragment, at most 1000 bytes: \"%s\"", s);
        return;
    }
    ps->otlp_endpoint = s;
    ps->otlp_hostport.text = pc_strdup(p, hp);
    ps->otlp_hostport.host = pc_strdup(p, host);
    ps->otlp_hostport.port = port;
}

/* A positive duration of at least 1 ms. */
static void positive_duration(pctx_t *p, const yaml_node_t *v, uint64_t *out)
{
    int64_t ms;
    if (pc_duration(p, v, &ms) != 0)
        return;
    if (ms == 0)
        pc_error(p, v, "must be at least 1ms");
    else
        *out = (uint64_t)ms;
}

static void parse_limits(pctx_t *p, const yaml_node_t *v, proxy_spec_t *ps)
{
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "maxHeaderBytes")) {
            if (pc_int(p, it.val, 1024, 1 << 20, &n) == 0)
                ps->max_header_bytes = (uint32_t)n;
        } else if (PC_KEY(it, "maxHeaders")) {
            if (pc_int(p, it.val, 1, 10000, &n) == 0)
                ps->max_headers = (uint32_t)n;
        } else if (PC_KEY(it, "maxUriBytes")) {
            if (pc_int(p, it.val, 64, 1 << 20, &n) == 0)
                ps->max_uri_bytes = (uint32_t)n;
        } else if (PC_KEY(it, "retryBufferBytes")) {
            if (pc_int(p, it.val, 0, 64 << 20, &n) == 0)
                ps->retry_buffer_bytes = (uint64_t)n;
        } else if (PC_KEY(it, "headerTimeout")) {
            positive_duration(p, it.val, &ps->header_timeout_ms);
        } else if (PC_KEY(it, "idleTimeout")) {
            positive_duration(p, it.val, &ps->idle_timeout_ms);
        } else if (PC_KEY(it, "lingerTime")) {
            int64_t ms;
            if (pc_duration(p, it.val, &ms) == 0)
                ps->linger_time_ms = (uint64_t)ms;
        } else if (PC_KEY(it, "lingerTimeout")) {
            positive_duration(p, it.val, &ps->linger_timeout_ms);
        } else if (PC_KEY(it, "lingerBytes")) {
            if (pc_int(p, it.val, 1, 1 << 30, &n) == 0)
                ps->linger_bytes = (uint64_t)n;
        } else if (PC_KEY(it, "tlsHandshakeTimeout")) {
            positive_duration(p, it.val, &ps->tls_handshake_timeout_ms);
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void parse_namespace(pctx_t *p, const yaml_node_t *v, const char **out);

static void parse_proxy_spec(pctx_t *p, const yaml_node_t *spec, proxy_spec_t *ps)
{
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "inbound")) {
            int has_forward = 0;
            PC_FIELDS(p, it.val, in)
            {
                if (PC_KEY(in, "listen")) {
                    pc_hostport(p, in.val, 1, &ps->inbound_listen);
                } else if (PC_KEY(in, "forwardTo")) {
                    has_forward = 1;
                    pc_hostport(p, in.val, 0, &ps->inbound_forward_to);
                } else if (PC_KEY(in, "ports")) {
                    long n = pc_seq(p, in.val);
                    if (n > 0)
                        ps->inbound_ports = pc_alloc(p, (size_t)n, sizeof *ps->inbound_ports);
                    for (long i = 0; i < n; i++) {
                        size_t mark = pc_push_index(p, (size_t)i);
                        istio_parse_port(p, in.val->items[i], &ps->inbound_ports[ps->n_inbound_ports++]);
                        pc_pop(p, mark);
                    }
                } else {
                    pc_unknown(p, &in);
                }
            }
            if (!has_forward && it.val->kind == YAML_MAP)
                pc_missing(p, it.val, "forwardTo");
        } else if (PC_KEY(it, "outbound")) {
            parse_listen_only(p, it.val, &ps->outbound_listen);
        } else if (PC_KEY(it, "admin")) {
            parse_listen_only(p, it.val, &ps->admin_listen);
        } else if (PC_KEY(it, "telemetry")) {
            PC_FIELDS(p, it.val, t)
            {
                int64_t ms;
                if (PC_KEY(t, "otlpEndpoint"))
                    parse_otlp_endpoint(p, t.val, ps);
                else if (PC_KEY(t, "caFile"))
                    ps->otlp_ca_file = pc_readable_file(p, t.val);
                else if (PC_KEY(t, "samplingPercent"))
                    pc_double(p, t.val, 0, 100, &ps->sampling_percent);
                else if (PC_KEY(t, "flushInterval")) {
                    if (pc_duration(p, t.val, &ms) == 0) {
                        if (ms == 0)
                            pc_error(p, t.val, "must be at least 1ms");
                        else
                            ps->flush_interval_ms = (uint64_t)ms;
                    }
                } else if (PC_KEY(t, "accessLog")) {
                    pc_bool(p, t.val, &ps->access_log);
                } else if (!telemetry_parse_exporter_field(p, &t, ps)) {
                    pc_unknown(p, &t);
                }
            }
        } else if (PC_KEY(it, "limits")) {
            parse_limits(p, it.val, ps);
        } else if (PC_KEY(it, "drainTimeout")) {
            int64_t ms;
            if (pc_duration(p, it.val, &ms) == 0)
                ps->drain_timeout_ms = (uint64_t)ms;
        } else if (PC_KEY(it, "jwks")) {
            PC_FIELDS(p, it.val, j)
            {
                int64_t ms;
                if (PC_KEY(j, "caFile")) {
                    ps->jwks_ca_file = pc_readable_file(p, j.val);
                } else if (PC_KEY(j, "refreshInterval")) {
                    if (pc_duration(p, j.val, &ms) == 0) {
                        if (ms < 1000)
                            pc_error(p, j.val, "must be at least 1s");
                        else
                            ps->jwks_refresh_ms = (uint64_t)ms;
                    }
                } else {
                    pc_unknown(p, &j);
                }
            }
        } else if (PC_KEY(it, "rootNamespace")) {
            parse_namespace(p, it.val, &ps->root_namespace);
        } else if (PC_KEY(it, "identity")) {
            security_parse_identity(p, it.val, &ps->identity, &ps->meta);
        } else if (PC_KEY(it, "workers")) {
            int64_t w;
            if (pc_int(p, it.val, 1, 64, &w) == 0)
                ps->workers = (int)w;
        } else if (PC_KEY(it, "numTrustedProxies")) {
            int64_t n;
            if (pc_int(p, it.val, 0, AUTHZ_XFF_HOPS_MAX, &n) == 0)
                ps->num_trusted_proxies = (int)n;
        } else if (PC_KEY(it, "interceptionMode")) {
            static const char *const modes[] = {"NONE", "REDIRECT", NULL};
            int r = pc_enum(p, it.val, modes);
            if (r >= 0)
                ps->interception_redirect = r;
        } else if (PC_KEY(it, "outboundTrafficPolicy")) {
            PC_FIELDS(p, it.val, t)
            {
                static const char *const modes[] = {"ALLOW_ANY", "REGISTRY_ONLY", NULL};
                if (PC_KEY(t, "mode")) {
                    int r = pc_enum(p, t.val, modes);
                    if (r >= 0)
                        ps->registry_only = r;
                } else {
                    pc_unknown(p, &t);
                }
            }
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void default_listen(pctx_t *p, proxy_hostport_t *hp, uint16_t port)
{
    if (hp->text != NULL)
        return;
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.1:%u", port);
    hp->text = pc_strdup(p, text);
    hp->host = pc_strdup(p, "127.0.0.1");
    hp->port = port;
}

/* ---- documents ---- */

enum doc_kind {
    DOC_PROXY,
    DOC_SERVICE_ENTRY,
    DOC_VIRTUAL_SERVICE,
    DOC_DESTINATION_RULE,
    DOC_RATE_LIMIT,
    DOC_TELEMETRY,
    DOC_PEER_AUTHENTICATION,
    DOC_AUTHORIZATION_POLICY,
    DOC_REQUEST_AUTHENTICATION,
    DOC_UNKNOWN
};

static const char *const kind_names[] = {
    "Proxy",     "ServiceEntry",       "VirtualService",      "DestinationRule",       "RateLimit",
    "Telemetry", "PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication", NULL};

/* The Outrider kinds; the others are Istio's. */
static int outrider_kind(enum doc_kind kind)
{
    return kind == DOC_PROXY || kind == DOC_RATE_LIMIT;
}

static enum doc_kind doc_kind_of(const yaml_node_t *doc)
{
    if (doc->kind != YAML_MAP)
        return DOC_UNKNOWN;
    const yaml_node_t *k = yaml_map_get(doc, "kind");
    if (k == NULL || k->kind != YAML_SCALAR)
        return DOC_UNKNOWN;
    for (int i = 0; kind_names[i] != NULL; i++)
        if (strcmp(k->str, kind_names[i]) == 0)
            return (enum doc_kind)i;
    return DOC_UNKNOWN;
}

static int api_version_ok(enum doc_kind kind, const char *v)
{
    if (outrider_kind(kind))
        return strcmp(v, "outrider.io/v1alpha1") == 0;
    if (kind == DOC_TELEMETRY)
        return strcmp(v, "telemetry.istio.io/v1") == 0 || strcmp(v, "telemetry.istio.io/v1alpha1") == 0;
    if (kind == DOC_PEER_AUTHENTICATION || kind == DOC_AUTHORIZATION_POLICY || kind == DOC_REQUEST_AUTHENTICATION)
        return strcmp(v, "security.istio.io/v1") == 0 || strcmp(v, "security.istio.io/v1beta1") == 0;
    return strcmp(v, "networking.istio.io/v1") == 0 || strcmp(v, "networking.istio.io/v1beta1") == 0 ||
           strcmp(v, "networking.istio.io/v1alpha3") == 0;
}

int pc_selects(const proxy_kv_list_t *selector, const proxy_kv_list_t *labels)
{
    for (size_t i = 0; i < selector->n; i++) {
        const char *v = proxy_kv_get(labels, selector->items[i].key);
        if (v == NULL || strcmp(v, selector->items[i].value) != 0)
            return 0;
    }
    return 1;
}

int pc_dns1123(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
            return 0;
    return 1;
}

/* A Kubernetes namespace: a DNS label (RFC 1123: lowercase ASCII letters, digits and '-', at most 63). */
static int valid_namespace(const char *s)
{
    return pc_dns1123(s, 63) && strchr(s, '.') == NULL;
}

/* A namespace value into *out (left alone when it is not one, reported). */
static void parse_namespace(pctx_t *p, const yaml_node_t *v, const char **out)
{
    const char *s = pc_string(p, v);
    if (s != NULL && !valid_namespace(s))
        pc_error(p, v, "\"%s\" is not a valid namespace (lowercase letters, digits and '-')", s);
    else if (s != NULL)
        *out = s;
}

/*
 * The namespace of the documents that do not name one: the first Proxy
 * document's metadata.namespace when it is valid, else "default" (a bad
 * one is reported when that document is parsed). Read before pass one so
 * that every host is resolved in its final namespace, wherever the Proxy
 * stands in the file.
 */
static const char *proxy_namespace(pctx_t *p, const yaml_stream_t *ys)
{
    for (size_t i = 0; i < ys->n_docs; i++) {
        if (doc_kind_of(ys->docs[i]) != DOC_PROXY)
            continue;
        const yaml_node_t *meta = yaml_map_get(ys->docs[i], "metadata");
        const yaml_node_t *ns = meta != NULL && meta->kind == YAML_MAP ? yaml_map_get(meta, "namespace") : NULL;
        if (ns != NULL && ns->kind == YAML_SCALAR && !ns->is_null && strlen(ns->str) == ns->len &&
            valid_namespace(ns->str))
            return pc_strdup(p, ns->str);
        break;
    }
    return "default";
}

/* Whether the first Proxy document has spec.identity (ISTIO_MUTUAL needs one, wherever the Proxy stands). */
static int proxy_has_identity(const yaml_stream_t *ys)
{
    for (size_t i = 0; i < ys->n_docs; i++) {
        if (doc_kind_of(ys->docs[i]) != DOC_PROXY)
            continue;
        const yaml_node_t *spec = yaml_map_get(ys->docs[i], "spec");
        const yaml_node_t *id = spec != NULL && spec->kind == YAML_MAP ? yaml_map_get(spec, "identity") : NULL;
        return id != NULL && id->kind == YAML_MAP;
    }
    return 0;
}

static void parse_metadata(pctx_t *p, const yaml_node_t *v, proxy_meta_t *m)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "name")) {
            const char *s = pc_string(p, it.val);
            if (s != NULL && !pc_dns1123(s, 253))
                pc_error(p, it.val, "\"%s\" is not a valid name (lowercase letters, digits, '-' and '.')", s);
            else
                m->name = s;
        } else if (PC_KEY(it, "namespace")) {
            parse_namespace(p, it.val, &m->namespace);
        } else if (PC_KEY(it, "labels")) {
            pc_kv_map(p, it.val, &m->labels, 0);
        } else if (PC_KEY(it, "annotations")) {
            pc_kv_map(p, it.val, &m->annotations, 0);
        } else {
            pc_unknown(p, &it);
        }
    }
}

typedef struct seen_doc {
    enum doc_kind kind;
    const char *ns, *name;
    int line;
} seen_doc_t;

static void parse_document(pctx_t *p, const yaml_node_t *doc, size_t index, seen_doc_t *seen, size_t *n_seen,
                           const yaml_node_t **first_proxy)
{
    snprintf(p->label, sizeof(p->label), "document %zu", index + 1);
    p->ns = "default";
    if (doc->kind == YAML_SCALAR && doc->is_null)
        return;
    if (doc->kind != YAML_MAP) {
        pc_error(p, doc, "a document must be a mapping with apiVersion, kind, metadata and spec");
        return;
    }
    const yaml_node_t *kind_node = yaml_map_get(doc, "kind");
    const yaml_node_t *api = yaml_map_get(doc, "apiVersion");
    const yaml_node_t *meta_node = yaml_map_get(doc, "metadata");
    const yaml_node_t *spec = yaml_map_get(doc, "spec");
    if (kind_node == NULL) {
        pc_missing(p, doc, "kind");
        return;
    }
    if (kind_node->kind != YAML_SCALAR || kind_node->is_null) {
        size_t mark = pc_push(p, "kind");
        pc_error(p, kind_node, "expected a string, got %s", kind_name(kind_node));
        pc_pop(p, mark);
        return;
    }
    enum doc_kind kind = doc_kind_of(doc);
    if (kind == DOC_UNKNOWN) {
        size_t mark = pc_push(p, "kind");
        pc_error(p, kind_node,
                 "unknown kind \"%s\" (expected Proxy, ServiceEntry, VirtualService, DestinationRule, RateLimit, "
                 "Telemetry, PeerAuthentication, AuthorizationPolicy or RequestAuthentication)",
                 kind_node->str);
        pc_pop(p, mark);
        return;
    }
    proxy_config_t *cfg = p->cfg;
    proxy_meta_t scratch = {0};
    proxy_meta_t *meta = &scratch;
    switch (kind) {
    case DOC_PROXY: meta = &cfg->proxy.meta; break;
    case DOC_SERVICE_ENTRY: meta = &cfg->services[cfg->n_services].meta; break;
    case DOC_VIRTUAL_SERVICE: meta = &cfg->virtual_services[cfg->n_virtual_services].meta; break;
    case DOC_DESTINATION_RULE: meta = &cfg->destination_rules[cfg->n_destination_rules].meta; break;
    case DOC_RATE_LIMIT: meta = &cfg->rate_limits[cfg->n_rate_limits].meta; break;
    case DOC_TELEMETRY: meta = &cfg->telemetries[cfg->n_telemetries].meta; break;
    case DOC_PEER_AUTHENTICATION: meta = &cfg->peer_authentications[cfg->n_peer_authentications].meta; break;
    case DOC_AUTHORIZATION_POLICY: meta = &cfg->authorization_policies[cfg->n_authorization_policies].meta; break;
    case DOC_REQUEST_AUTHENTICATION: meta = &cfg->request_authentications[cfg->n_request_authentications].meta; break;
    case DOC_UNKNOWN: return;
    }
    int duplicate_proxy = kind == DOC_PROXY && *first_proxy != NULL;
    if (duplicate_proxy)
        meta = &scratch;
    meta->pos.line = doc->line;
    meta->pos.col = doc->col;

    /* metadata first, so that every later message can name the document */
    snprintf(p->label, sizeof(p->label), "%s", kind_names[kind]);
    if (meta_node == NULL) {
        pc_missing(p, doc, "metadata");
    } else {
        size_t mark = pc_push(p, "metadata");
        parse_metadata(p, meta_node, meta);
        if (meta->name == NULL && meta_node->kind == YAML_MAP && yaml_map_get(meta_node, "name") == NULL)
            pc_missing(p, meta_node, "name");
        pc_pop(p, mark);
    }
    if (meta->namespace == NULL)
        meta->namespace = pc_strdup(p, kind == DOC_PROXY ? "default" : p->default_ns);
    p->ns = meta->namespace;
    if (meta->name != NULL)
        snprintf(p->label, sizeof(p->label), "%s %s", kind_names[kind], meta->name);

    if (duplicate_proxy) {
        char at[PROXY_HOST_MAX];
        pc_error(p, doc, "a second Proxy document (the first is at %s); exactly one is allowed",
                 pc_where(p, (*first_proxy)->line, at, sizeof at));
        return;
    }
    if (kind == DOC_PROXY)
        *first_proxy = doc;
    if (meta->name != NULL) {
        for (size_t i = 0; i < *n_seen; i++)
            if (seen[i].kind == kind && strcmp(seen[i].ns, meta->namespace) == 0 &&
                strcmp(seen[i].name, meta->name) == 0) {
                const yaml_node_t *name_node = yaml_map_get(meta_node, "name");
                size_t mark = pc_push(p, "metadata.name");
                char at[PROXY_HOST_MAX];
                pc_error(p, name_node, "duplicate %s %s/%s (the first is at %s)", kind_names[kind], meta->namespace,
                         meta->name, pc_where(p, seen[i].line, at, sizeof at));
                pc_pop(p, mark);
                break;
            }
        seen[*n_seen] = (seen_doc_t){kind, meta->namespace, meta->name, doc->line};
        (*n_seen)++;
    }

    if (api == NULL) {
        pc_missing(p, doc, "apiVersion");
    } else {
        size_t mark = pc_push(p, "apiVersion");
        if (api->kind != YAML_SCALAR || api->is_null)
            pc_error(p, api, "expected a string, got %s", kind_name(api));
        else if (!api_version_ok(kind, api->str))
            pc_error(p, api, "unknown apiVersion \"%s\" for kind %s (expected %s)", api->str, kind_names[kind],
                     outrider_kind(kind)     ? "outrider.io/v1alpha1"
                     : kind == DOC_TELEMETRY ? "telemetry.istio.io/v1 or telemetry.istio.io/v1alpha1"
                     : kind == DOC_PEER_AUTHENTICATION || kind == DOC_AUTHORIZATION_POLICY ||
                             kind == DOC_REQUEST_AUTHENTICATION
                         ? "security.istio.io/v1 or security.istio.io/v1beta1"
                         : "networking.istio.io/v1, networking.istio.io/v1beta1 or "
                           "networking.istio.io/v1alpha3");
        pc_pop(p, mark);
    }
    PC_FIELDS(p, doc, it)
    {
        if (PC_KEY(it, "apiVersion") || PC_KEY(it, "kind") || PC_KEY(it, "metadata"))
            continue;
        if (!PC_KEY(it, "spec"))
            pc_unknown(p, &it);
    }
    if (spec == NULL) {
        pc_missing(p, doc, "spec");
        if (kind != DOC_PROXY)
            return;
    }
    size_t mark = pc_push(p, "spec");
    switch (kind) {
    case DOC_PROXY:
        if (spec != NULL)
            parse_proxy_spec(p, spec, &cfg->proxy);
        break;
    case DOC_SERVICE_ENTRY: istio_parse_service_entry(p, spec, &cfg->services[cfg->n_services++]); break;
    case DOC_VIRTUAL_SERVICE:
        istio_parse_virtual_service(p, spec, &cfg->virtual_services[cfg->n_virtual_services++]);
        break;
    case DOC_DESTINATION_RULE:
        istio_parse_destination_rule(p, spec, &cfg->destination_rules[cfg->n_destination_rules++]);
        break;
    case DOC_RATE_LIMIT: ratelimit_parse(p, spec, &cfg->rate_limits[cfg->n_rate_limits++]); break;
    case DOC_TELEMETRY: telemetry_parse(p, spec, &cfg->telemetries[cfg->n_telemetries++]); break;
    case DOC_PEER_AUTHENTICATION:
        security_parse_peer_authentication(p, spec, &cfg->peer_authentications[cfg->n_peer_authentications++]);
        break;
    case DOC_AUTHORIZATION_POLICY:
        authz_parse(p, spec, &cfg->authorization_policies[cfg->n_authorization_policies++]);
        break;
    case DOC_REQUEST_AUTHENTICATION:
        authn_parse(p, spec, &cfg->request_authentications[cfg->n_request_authentications++]);
        break;
    case DOC_UNKNOWN: break;
    }
    pc_pop(p, mark);
}

/* ---- load ---- */

static void forward_yaml_error(void *ctx, const char *message)
{
    pctx_t *p = ctx;
    p->errors++;
    p->err(p->ctx, message);
}

static void ignore_message(void *ctx, const char *message)
{
    (void)ctx;
    (void)message;
}

void proxy_config_destroy(proxy_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_regexes; i++) {
        regfree(cfg->regexes[i]);
        free(cfg->regexes[i]);
    }
    free(cfg->regexes);
    for (size_t i = 0; i < cfg->n_request_authentications; i++)
        for (size_t k = 0; k < cfg->request_authentications[i].n_rules; k++) {
            jwks_destroy(cfg->request_authentications[i].rules[k].jwks);
            jwks_source_unref(cfg->request_authentications[i].rules[k].jwks_source);
        }
    arena_dispose(&cfg->arena);
    free(cfg);
}

/*
 * libfyaml 0.7 loops on some malformed directive lines (see settings.c);
 * the child's time limit would catch it, but a clear message is better.
 */
static int check_directives(pctx_t *p, const char *text, size_t len, int base)
{
    int line = 1 + base;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            line++;
        if (text[i] != '%' || (i > 0 && text[i - 1] != '\n' && text[i - 1] != '\r'))
            continue;
        size_t end = i;
        while (end < len && text[end] != '\n' && text[end] != '\r')
            end++;
        int ok =
            (end - i >= 6 && memcmp(text + i, "%YAML ", 6) == 0) || (end - i >= 5 && memcmp(text + i, "%TAG ", 5) == 0);
        for (size_t j = i; ok && j < end; j++)
            ok = ((unsigned char)text[j] >= 0x20 && (unsigned char)text[j] <= 0x7e) || text[j] == '\t';
        if (!ok) {
            pc_error_at(p, line, 1, "unsupported YAML directive (only %%YAML and %%TAG are allowed)");
            return -1;
        }
    }
    return 0;
}

/* One file of a configuration. */
typedef struct source {
    const char *name;
    const char *text;
    size_t len;
} source_t;

/* Add base to the line of n and everything under it (once: aliases share nodes). */
static void shift_lines(yaml_node_t *n, int base)
{
    if (n == NULL || n->line >= base)
        return;
    n->line += base;
    if (n->kind == YAML_MAP || n->kind == YAML_SEQ)
        for (size_t i = 0; i < (n->kind == YAML_MAP ? 2 * n->n : n->n); i++)
            shift_lines(n->items[i], base);
}

static proxy_config_t *load_sources(const source_t *src, size_t n_src, config_error_fn err, config_error_fn warn,
                                    void *ctx)
{
    proxy_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        log_fatal("out of memory");
    arena_init(&cfg->arena, 0);
    pctx_t p = {.cfg = cfg, .err = err ? err : ignore_message, .warn = warn, .ctx = ctx};
    const char **files = pc_alloc(&p, n_src, sizeof *files);
    buf_t joined = BUF_INIT;
    for (size_t i = 0; i < n_src; i++) {
        files[i] = pc_strdup(&p, src[i].name);
        buf_printf(&joined, "%s%s", i ? " + " : "", src[i].name);
    }
    cfg->file = pc_strdup(&p, joined.data);
    buf_dispose(&joined);
    p.file = files[0];
    p.files = files;
    p.n_files = n_src;
    yaml_stream_t *streams = pc_alloc(&p, n_src, sizeof *streams);
    size_t parsed = 0, total = 0;
    int failed = 0;
    for (; parsed < n_src && !failed; parsed++) {
        const source_t *f = &src[parsed];
        int base = (int)parsed * PC_LINE_BASE;
        p.file = files[parsed];
        if (f->len > PROXY_CONFIG_MAX_BYTES) {
            pc_error(&p, NULL, "the file is larger than %u bytes", PROXY_CONFIG_MAX_BYTES);
            failed = 1;
        } else if (check_directives(&p, f->text, f->len, base) != 0) {
            failed = 1;
        } else if (yaml_parse(f->name, f->text, f->len, 0, &streams[parsed], forward_yaml_error, &p) != 0) {
            if (p.errors == 0)
                pc_error(&p, NULL, "not a YAML file");
            yaml_stream_dispose(&streams[parsed]);
            failed = 1;
        } else {
            for (size_t d = 0; d < streams[parsed].n_docs && base > 0; d++)
                shift_lines(streams[parsed].docs[d], base);
            total += streams[parsed].n_docs;
        }
    }
    p.file = files[0];
    if (failed) {
        for (size_t i = 0; i + 1 < parsed; i++)
            yaml_stream_dispose(&streams[i]);
        proxy_config_destroy(cfg);
        return NULL;
    }
    /* every file's documents, in order, as one stream (the nodes stay with their own streams) */
    yaml_stream_t ys = {0};
    ys.docs = pc_alloc(&p, total ? total : 1, sizeof *ys.docs);
    for (size_t i = 0; i < n_src; i++)
        for (size_t d = 0; d < streams[i].n_docs; d++)
            ys.docs[ys.n_docs++] = streams[i].docs[d];
    size_t counts[DOC_UNKNOWN + 1] = {0};
    for (size_t i = 0; i < ys.n_docs; i++)
        counts[doc_kind_of(ys.docs[i])]++;
    cfg->services = pc_alloc(&p, counts[DOC_SERVICE_ENTRY], sizeof(proxy_service_entry_t));
    cfg->virtual_services = pc_alloc(&p, counts[DOC_VIRTUAL_SERVICE], sizeof(proxy_virtual_service_t));
    cfg->destination_rules = pc_alloc(&p, counts[DOC_DESTINATION_RULE], sizeof(proxy_destination_rule_t));
    cfg->rate_limits = pc_alloc(&p, counts[DOC_RATE_LIMIT], sizeof(proxy_rate_limit_t));
    cfg->telemetries = pc_alloc(&p, counts[DOC_TELEMETRY], sizeof(proxy_telemetry_t));
    cfg->peer_authentications = pc_alloc(&p, counts[DOC_PEER_AUTHENTICATION], sizeof(proxy_peer_authentication_t));
    cfg->authorization_policies = pc_alloc(&p, counts[DOC_AUTHORIZATION_POLICY], sizeof(proxy_authorization_policy_t));
    cfg->request_authentications =
        pc_alloc(&p, counts[DOC_REQUEST_AUTHENTICATION], sizeof(proxy_request_authentication_t));
    seen_doc_t *seen = pc_alloc(&p, ys.n_docs ? ys.n_docs : 1, sizeof(seen_doc_t));
    size_t n_seen = 0;

    proxy_spec_t *ps = &cfg->proxy;
    ps->sampling_percent = 1;
    ps->flush_interval_ms = 1000;
    ps->access_log = 1;
    ps->workers = 1;
    ps->max_header_bytes = 60 * 1024;
    ps->max_headers = 100;
    ps->max_uri_bytes = 8 * 1024;
    ps->header_timeout_ms = 10000;
    ps->idle_timeout_ms = 60000;
    ps->retry_buffer_bytes = 64 * 1024;
    ps->linger_time_ms = 30000;
    ps->linger_timeout_ms = 5000;
    ps->linger_bytes = 64 << 20;
    ps->drain_timeout_ms = 5000;
    ps->root_namespace = "istio-system";
    ps->tls_handshake_timeout_ms = 10000;
    const yaml_node_t *first_proxy = NULL;
    p.default_ns = proxy_namespace(&p, &ys);
    p.has_identity = proxy_has_identity(&ys);
    for (size_t i = 0; i < ys.n_docs; i++)
        parse_document(&p, ys.docs[i], i, seen, &n_seen, &first_proxy);
    p.label[0] = '\0';
    pc_pop(&p, 0);
    if (first_proxy == NULL) {
        pc_error_at(&p, 1, 1,
                    "no Proxy document: exactly one `kind: Proxy` (apiVersion outrider.io/v1alpha1) is required");
    } else {
        if (ps->inbound_forward_to.text != NULL)
            default_listen(&p, &ps->inbound_listen, 15006);
        default_listen(&p, &ps->outbound_listen, 15001);
        default_listen(&p, &ps->admin_listen, 15000);
    }
    istio_check_references(&p);
    ratelimit_check_references(&p);
    telemetry_resolve(&p);
    security_resolve(&p);
    authn_resolve(&p);
    authz_resolve(&p);
    for (size_t i = 0; i < n_src; i++)
        yaml_stream_dispose(&streams[i]);
    buf_dispose(&p.path);
    if (p.errors > 0) {
        proxy_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

proxy_config_t *proxy_config_load_string(const char *name, const char *text, size_t len, config_error_fn err,
                                         config_error_fn warn, void *ctx)
{
    source_t one = {name, text, len};
    return load_sources(&one, 1, err, warn, ctx);
}

/* Read path into text (at most PROXY_CONFIG_MAX_BYTES + 1 bytes); -1 with the reason reported. */
static int read_file(const char *path, buf_t *text, config_error_fn e, void *ctx)
{
    buf_t msg = BUF_INIT;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        buf_printf(&msg, "%s: cannot open: %s", path, strerror(errno));
        e(ctx, msg.data);
        buf_dispose(&msg);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > PROXY_CONFIG_MAX_BYTES) {
        buf_printf(&msg, "%s: the file is larger than %u bytes", path, PROXY_CONFIG_MAX_BYTES);
        e(ctx, msg.data);
        buf_dispose(&msg);
        fclose(f);
        return -1;
    }
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        buf_append(text, chunk, got);
        if (text->len > PROXY_CONFIG_MAX_BYTES)
            break;
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        buf_printf(&msg, "%s: read error", path);
        e(ctx, msg.data);
        buf_dispose(&msg);
        return -1;
    }
    return 0;
}

proxy_config_t *proxy_config_load_files(const char *const *paths, size_t n, config_error_fn err, config_error_fn warn,
                                        void *ctx)
{
    config_error_fn e = err ? err : ignore_message;
    if (n == 0 || n > PROXY_CONFIG_MAX_FILES) {
        char msg[96];
        snprintf(msg, sizeof msg, "between 1 and %d configuration files, not %zu", PROXY_CONFIG_MAX_FILES, n);
        e(ctx, msg);
        return NULL;
    }
    buf_t *texts = xcalloc(n, sizeof *texts);
    source_t *src = xcalloc(n, sizeof *src);
    proxy_config_t *cfg = NULL;
    size_t i = 0;
    for (; i < n; i++) {
        if (read_file(paths[i], &texts[i], e, ctx) != 0)
            break;
        src[i] = (source_t){paths[i], texts[i].data ? texts[i].data : "", texts[i].len};
    }
    if (i == n)
        cfg = load_sources(src, n, err, warn, ctx);
    for (size_t j = 0; j < n; j++)
        buf_dispose(&texts[j]);
    free(texts);
    free(src);
    return cfg;
}

proxy_config_t *proxy_config_load(const char *path, config_error_fn err, config_error_fn warn, void *ctx)
{
    return proxy_config_load_files(&path, 1, err, warn, ctx);
}
