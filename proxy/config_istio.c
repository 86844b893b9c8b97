/*
 * config_istio: pass one for the Istio kinds (ServiceEntry, VirtualService,
 * DestinationRule); see config.h. Pass two is config_check.c.
 *
 * Field names and shapes follow istio/api networking/v1alpha3
 * (service_entry.proto, virtual_service.proto, destination_rule.proto),
 * which v1beta1 and v1 share. Istio fields this proxy does not implement
 * are refused with "not supported by outrider-proxy" rather than "unknown
 * field", so a user can tell a typo from a gap. Validation rules copied
 * from Istio's: one of route/redirect/directResponse per HTTP route, weights
 * summing to 100, status and redirect code ranges, unique subset and port
 * names.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hostport.h"
#include "config_parse.h"
#include "log.h"

/* ---- helpers ---- */

static int valid_host(const char *h)
{
    const char *s = h;
    if (strcmp(s, "*") == 0)
        return 1;
    if (s[0] == '*' && s[1] == '.')
        s += 2;
    size_t n = strlen(s);
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_'))
            return 0;
    return strstr(s, "..") == NULL;
}

/* A host; entry: a ServiceEntry's, kept as written (Istio expands only references, see config.h). */
static void parse_host(pctx_t *p, const yaml_node_t *v, proxy_host_t *out, int entry)
{
    const char *s = pc_string(p, v);
    if (s == NULL)
        return;
    if (!valid_host(s)) {
        pc_error(p, v, "\"%s\" is not a valid host name", s);
        return;
    }
    out->host = s;
    out->fqdn = entry ? pc_lower(p, s) : pc_fqdn(p, s, p->ns);
    out->pos.line = v->line;
    out->pos.col = v->col;
}

static void parse_hosts(pctx_t *p, const yaml_node_t *v, proxy_host_t **hosts, size_t *n_hosts, int entry)
{
    long n = pc_seq(p, v);
    if (n < 0)
        return;
    if (n == 0) {
        pc_error(p, v, "at least one host is required");
        return;
    }
    *hosts = pc_alloc(p, (size_t)n, sizeof(proxy_host_t));
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        proxy_host_t h = {0};
        parse_host(p, v->items[i], &h, entry);
        if (h.host != NULL)
            (*hosts)[(*n_hosts)++] = h;
        pc_pop(p, mark);
    }
}

static void lowercase(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* ---- regular expressions ---- */

static void register_regex(pctx_t *p, regex_t *re)
{
    proxy_config_t *cfg = p->cfg;
    if (cfg->n_regexes == cfg->cap_regexes) {
        size_t cap = cfg->cap_regexes ? cfg->cap_regexes * 2 : 8;
        regex_t **r = realloc(cfg->regexes, cap * sizeof(*r));
        if (r == NULL)
            log_fatal("out of memory");
        cfg->regexes = r;
        cfg->cap_regexes = cap;
    }
    cfg->regexes[cfg->n_regexes++] = re;
}

/* NULL when the pattern is usable by POSIX regcomp, else why not. */
static const char *posix_compatible(const char *re, char *why, size_t whylen)
{
    int in_bracket = 0;
    double product = 1;
    for (const char *c = re; *c; c++) {
        if (in_bracket) {
            if (*c == '[' && (c[1] == ':' || c[1] == '.' || c[1] == '=')) {
                const char *close = strchr(c + 2, c[1]);
                if (close != NULL && close[1] == ']')
                    c = close + 1;
            } else if (*c == ']') {
                in_bracket = 0;
            }
            continue;
        }
        if (*c == '\\') {
            if (c[1] == '\0')
                return "a trailing backslash";
            if (strchr("dDpPQEAzxntrfv", c[1]) != NULL) {
                snprintf(why, whylen, "the RE2 escape \\%c (POSIX regular expressions do not have it)", c[1]);
                return why;
            }
            c++;
            continue;
        }
        if (*c == '[') {
            in_bracket = 1;
            if (c[1] == '^')
                c++;
            if (c[1] == ']')
                c++;
            continue;
        }
        if (*c == '(' && c[1] == '?')
            return "RE2 group syntax (?...) (POSIX regular expressions do not have it)";
        if ((*c == '*' || *c == '+' || *c == '?' || *c == '}') && c[1] == '?')
            return "a lazy quantifier such as *? (POSIX regular expressions do not have them)";
        if (*c == '{' && isdigit((unsigned char)c[1])) {
            char *end;
            unsigned long lo = strtoul(c + 1, &end, 10), hi = lo;
            if (*end == ',')
                hi = isdigit((unsigned char)end[1]) ? strtoul(end + 1, &end, 10) : lo;
            if (lo > 1000 || hi > 1000)
                return "a repetition count above 1000";
            product *= (double)(hi > 1 ? hi : 1);
            if (product > 1000)
                return "repetition counts whose product is above 1000";
        }
    }
    return NULL;
}

static regex_t *compile_regex(pctx_t *p, const yaml_node_t *v, const char *pattern)
{
    if (strlen(pattern) > 1024) {
        pc_error(p, v, "the regular expression is longer than 1024 bytes");
        return NULL;
    }
    char whybuf[128];
    const char *why = posix_compatible(pattern, whybuf, sizeof(whybuf));
    if (why != NULL) {
        pc_error(p, v, "regular expression \"%s\" is not supported: it uses %s", pattern, why);
        return NULL;
    }
    regex_t *re = malloc(sizeof(*re));
    if (re == NULL)
        log_fatal("out of memory");
    /* the pattern alone first, so the error message is about what the user wrote */
    int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        regfree(re);
        free(re);
        pc_error(p, v, "regular expression \"%s\" does not compile: %s", pattern, msg);
        return NULL;
    }
    regfree(re);
    buf_t anchored = BUF_INIT;
    buf_printf(&anchored, "^(%s)$", pattern);
    rc = regcomp(re, anchored.data, REG_EXTENDED | REG_NOSUB);
    buf_dispose(&anchored);
    if (rc != 0) {
        free(re);
        pc_error(p, v, "regular expression \"%s\" does not compile when anchored", pattern);
        return NULL;
    }
    register_regex(p, re);
    return re;
}

/* Istio StringMatch; allow_prefix 0 for queryParams (Istio supports exact and regex there). */
static void parse_string_match(pctx_t *p, const yaml_node_t *v, proxy_string_match_t *m, int allow_prefix)
{
    int count = 0;
    PC_FIELDS(p, v, it)
    {
        enum proxy_match_kind kind;
        if (PC_KEY(it, "exact")) {
            kind = PROXY_MATCH_EXACT;
        } else if (PC_KEY(it, "prefix")) {
            kind = PROXY_MATCH_PREFIX;
            if (!allow_prefix) {
                pc_error(p, it.key, "prefix is not supported here (Istio matches query parameters by exact or regex)");
                count++;
                continue;
            }
        } else if (PC_KEY(it, "regex")) {
            kind = PROXY_MATCH_REGEX;
        } else {
            pc_unknown(p, &it);
            continue;
        }
        if (++count > 1) {
            pc_error(p, it.key, "exact, prefix and regex are mutually exclusive");
            continue;
        }
        const char *s = pc_string(p, it.val);
        if (s == NULL)
            continue;
        if (kind == PROXY_MATCH_REGEX && (m->regex = compile_regex(p, it.val, s)) == NULL)
            continue;
        m->kind = kind;
        m->value = s;
    }
    if (count == 0)
        pc_error(p, v, "one of exact, prefix or regex is required");
}

static void parse_named_matches(pctx_t *p, const yaml_node_t *v, proxy_named_match_t **out, size_t *n, int allow_prefix)
{
    pc_iter_t probe = pc_map_begin(p, v);
    if (probe.map == NULL)
        return;
    *out = pc_alloc(p, v->n, sizeof(proxy_named_match_t));
    PC_FIELDS(p, v, it)
    {
        if (it.k[0] == '\0') {
            pc_error(p, it.key, "the name must not be empty");
            continue;
        }
        proxy_named_match_t *nm = &(*out)[*n];
        char *name = (char *)pc_strdup(p, it.k);
        if (allow_prefix) /* headers, not query parameters: names are case-insensitive */
            lowercase(name);
        nm->name = name;
        parse_string_match(p, it.val, &nm->match, allow_prefix);
        (*n)++;
    }
}

/* ---- ServiceEntry ---- */

static const char *const protocols[] = {"HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS", NULL};

void istio_parse_port(pctx_t *p, const yaml_node_t *v, proxy_port_t *port)
{
    int has_number = 0;
    port->target_port = PROXY_UNSET;
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "number")) {
            has_number = 1;
            if (pc_int(p, it.val, 1, 65535, &n) == 0)
                port->number = (uint32_t)n;
        } else if (PC_KEY(it, "name")) {
            port->name = pc_string(p, it.val);
        } else if (PC_KEY(it, "protocol")) {
            const char *s = pc_string(p, it.val);
            if (s == NULL)
                continue;
            char up[16];
            size_t i;
            for (i = 0; s[i] && i + 1 < sizeof(up); i++)
                up[i] = (char)toupper((unsigned char)s[i]);
            up[i] = '\0';
            int k;
            for (k = 0; protocols[k] != NULL; k++)
                if (strcmp(up, protocols[k]) == 0)
                    break;
            if (protocols[k] == NULL || s[i] != '\0')
                pc_error(p, it.val, "unknown protocol \"%s\" (expected HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP or TLS)",
                         s);
            else
                port->protocol = protocols[k];
        } else if (PC_KEY(it, "targetPort")) {
            if (pc_int(p, it.val, 1, 65535, &n) == 0)
                port->target_port = n;
        } else {
            pc_unknown(p, &it);
        }
    }
    if (v->kind == YAML_MAP) {
        if (!has_number)
            pc_missing(p, v, "number");
        if (yaml_map_get(v, "name") == NULL)
            pc_missing(p, v, "name");
    }
}

static int is_ip_address(const char *s)
{
    /* inet_pton without pulling networking headers into every file */
    int dots = 0, digits = 0;
    const char *c = s;
    for (; *c; c++) {
        if (*c == '.') {
            if (digits == 0)
                return strchr(s, ':') != NULL;
            dots++;
            digits = 0;
        } else if (isdigit((unsigned char)*c)) {
            digits++;
        } else {
            break;
        }
    }
    if (*c == '\0' && dots == 3 && digits > 0)
        return 1;
    /* IPv6: hex digits, colons and dots only, at least two colons */
    int colons = 0;
    for (c = s; *c; c++) {
        if (*c == ':')
            colons++;
        else if (!isxdigit((unsigned char)*c) && *c != '.')
            return 0;
    }
    return colons >= 2;
}

static void parse_endpoint(pctx_t *p, const yaml_node_t *v, proxy_endpoint_t *ep, const proxy_service_entry_t *se)
{
    ep->weight = PROXY_UNSET;
    ep->pos.line = v->line;
    ep->pos.col = v->col;
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "address")) {
            ep->address = pc_string(p, it.val);
        } else if (PC_KEY(it, "ports")) {
            pc_iter_t probe = pc_map_begin(p, it.val);
            if (probe.map == NULL)
                continue;
            ep->ports.items = pc_alloc(p, it.val->n, sizeof(proxy_kv_t));
            ep->port_numbers = pc_alloc(p, it.val->n, sizeof(uint32_t));
            PC_FIELDS(p, it.val, pt)
            {
                if (pc_int(p, pt.val, 1, 65535, &n) != 0)
                    continue;
                size_t k;
                for (k = 0; k < se->n_ports; k++)
                    if (se->ports[k].name != NULL && strcmp(se->ports[k].name, pt.k) == 0)
                        break;
                if (k == se->n_ports) {
                    pc_error(p, pt.key, "no port named \"%s\" in spec.ports", pt.k);
                    continue;
                }
                ep->ports.items[ep->ports.n].key = pc_strdup(p, pt.k);
                ep->ports.items[ep->ports.n].value = pc_strdup(p, pt.val->str);
                ep->port_numbers[ep->ports.n] = (uint32_t)n;
                ep->ports.n++;
            }
        } else if (PC_KEY(it, "labels")) {
            pc_kv_map(p, it.val, &ep->labels, 0);
        } else if (PC_KEY(it, "weight")) {
            if (pc_int(p, it.val, 0, UINT32_MAX, &n) == 0)
                ep->weight = n ? n : PROXY_UNSET;
        } else if (PC_KEY(it, "network") || PC_KEY(it, "locality") || PC_KEY(it, "serviceAccount")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (v->kind == YAML_MAP && yaml_map_get(v, "address") == NULL)
        pc_missing(p, v, "address");
    if (ep->address != NULL && se->resolution == PROXY_RESOLUTION_STATIC && !is_ip_address(ep->address) &&
        strncmp(ep->address, "unix://", 7) != 0) {
        size_t mark = pc_push(p, "address");
        pc_error(p, yaml_map_get(v, "address"), "\"%s\" is not an IP address (resolution is STATIC)", ep->address);
        pc_pop(p, mark);
    }
}

void istio_parse_service_entry(pctx_t *p, const yaml_node_t *spec, proxy_service_entry_t *se)
{
    static const char *const resolutions[] = {"NONE", "STATIC", "DNS", NULL};
    static const char *const locations[] = {"MESH_EXTERNAL", "MESH_INTERNAL", NULL};
    /* resolution and ports first: endpoints are checked against them */
    const yaml_node_t *res = yaml_map_get(spec, "resolution");
    if (res != NULL) {
        size_t mark = pc_push(p, "resolution");
        int r = pc_enum(p, res, resolutions);
        if (r >= 0)
            se->resolution = (enum proxy_resolution)r;
        pc_pop(p, mark);
    }
    const yaml_node_t *ports = yaml_map_get(spec, "ports");
    if (ports != NULL) {
        size_t mark = pc_push(p, "ports");
        long n = pc_seq(p, ports);
        if (n > 0)
            se->ports = pc_alloc(p, (size_t)n, sizeof(proxy_port_t));
        for (long i = 0; i < n; i++) {
            size_t m2 = pc_push_index(p, (size_t)i);
            proxy_port_t *port = &se->ports[se->n_ports];
            istio_parse_port(p, ports->items[i], port);
            for (size_t k = 0; k < se->n_ports; k++) {
                if (port->number != 0 && se->ports[k].number == port->number)
                    pc_error(p, ports->items[i], "duplicate port number %u", port->number);
                else if (port->name != NULL && se->ports[k].name != NULL && strcmp(se->ports[k].name, port->name) == 0)
                    pc_error(p, ports->items[i], "duplicate port name \"%s\"", port->name);
            }
            if (port->number != 0 && port->name != NULL)
                se->n_ports++;
            else
                memset(port, 0, sizeof(*port));
            pc_pop(p, m2);
        }
        pc_pop(p, mark);
    }
    int has_hosts = 0;
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "hosts")) {
            has_hosts = 1;
            parse_hosts(p, it.val, &se->hosts, &se->n_hosts, 1);
        } else if (PC_KEY(it, "ports") || PC_KEY(it, "resolution")) {
            continue;
        } else if (PC_KEY(it, "location")) {
            int r = pc_enum(p, it.val, locations);
            if (r >= 0)
                se->location = (enum proxy_location)r;
        } else if (PC_KEY(it, "endpoints")) {
            long n = pc_seq(p, it.val);
            if (n > 0)
                se->endpoints = pc_alloc(p, (size_t)n, sizeof(proxy_endpoint_t));
            for (long i = 0; i < n; i++) {
                size_t mark = pc_push_index(p, (size_t)i);
                parse_endpoint(p, it.val->items[i], &se->endpoints[se->n_endpoints++], se);
                pc_pop(p, mark);
            }
        } else if (PC_KEY(it, "addresses")) {
            pc_str_list(p, it.val, &se->addresses);
            for (size_t i = 0; i < se->addresses.n; i++) {
                struct sockaddr_storage ss;
                int bits;
                if (hostport_cidr_parse(se->addresses.items[i], &ss, &bits) != 0) {
                    size_t mark = pc_push_index(p, i);
                    pc_error(p, it.val->kind == YAML_SEQ && i < it.val->n ? it.val->items[i] : it.val,
                             "\"%s\" is not an IP address or CIDR", se->addresses.items[i]);
                    pc_pop(p, mark);
                }
            }
        } else if (PC_KEY(it, "exportTo")) {
            proxy_str_list_t ignored = {0};
            pc_str_list(p, it.val, &ignored);
        } else if (PC_KEY(it, "subjectAltNames")) {
            pc_str_list(p, it.val, &se->subject_alt_names);
        } else if (PC_KEY(it, "workloadSelector")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (!has_hosts && spec->kind == YAML_MAP)
        pc_missing(p, spec, "hosts");
    if (spec->kind == YAML_MAP && se->resolution == PROXY_RESOLUTION_STATIC && se->n_endpoints == 0 &&
        yaml_map_get(spec, "endpoints") == NULL) {
        size_t mark = pc_push(p, "resolution");
        pc_error(p, res, "resolution STATIC needs endpoints");
        pc_pop(p, mark);
    }
}

/* ---- VirtualService ---- */

static void parse_destination(pctx_t *p, const yaml_node_t *v, proxy_destination_t *d)
{
    d->port = PROXY_UNSET;
    d->path = pc_strdup(p, p->path.data ? p->path.data : "");
    d->pos.line = v->line;
    d->pos.col = v->col;
    int has_host = 0;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "host")) {
            has_host = 1;
            const char *s = pc_string(p, it.val);
            if (s != NULL && !valid_host(s)) {
                pc_error(p, it.val, "\"%s\" is not a valid host name", s);
            } else if (s != NULL) {
                d->host = s;
                d->fqdn = pc_fqdn(p, s, p->ns);
                d->host_pos = (proxy_pos_t){it.val->line, it.val->col};
            }
        } else if (PC_KEY(it, "subset")) {
            d->subset = pc_string(p, it.val);
            d->subset_pos = (proxy_pos_t){it.val->line, it.val->col};
        } else if (PC_KEY(it, "port")) {
            PC_FIELDS(p, it.val, pt)
            {
                int64_t n;
                if (PC_KEY(pt, "number")) {
                    if (pc_int(p, pt.val, 1, 65535, &n) == 0) {
                        d->port = n;
                        d->port_pos = (proxy_pos_t){pt.val->line, pt.val->col};
                    }
                } else {
                    pc_unknown(p, &pt);
                }
            }
        } else {
            pc_unknown(p, &it);
        }
    }
    if (!has_host)
        pc_missing(p, v, "host");
}

/* Header names must be tokens and values free of control characters (RFC 9110 5.1, 5.5). */
static void check_header_list(pctx_t *p, const yaml_node_t *v, const proxy_kv_list_t *l)
{
    static const char tokens[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < l->n; i++) {
        const char *k = l->items[i].key, *val = l->items[i].value;
        int bad = *k == '\0';
        for (const char *c = k; *c && !bad; c++)
            bad = !isalnum((unsigned char)*c) && strchr(tokens, *c) == NULL;
        if (bad)
            pc_error(p, v, "\"%s\" is not a valid header name", k);
        for (const char *c = val; *c; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
                pc_error(p, v, "the value of header \"%s\" holds a control character", k);
                break;
            }
    }
}

static void parse_header_ops(pctx_t *p, const yaml_node_t *v, proxy_header_ops_t *ops)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "set")) {
            pc_kv_map(p, it.val, &ops->set, 1);
            check_header_list(p, it.val, &ops->set);
        } else if (PC_KEY(it, "add")) {
            pc_kv_map(p, it.val, &ops->add, 1);
            check_header_list(p, it.val, &ops->add);
        } else if (PC_KEY(it, "remove")) {
            pc_str_list(p, it.val, &ops->remove);
            for (size_t i = 0; i < ops->remove.n; i++)
                lowercase((char *)ops->remove.items[i]);
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void parse_headers(pctx_t *p, const yaml_node_t *v, proxy_headers_t *h)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "request"))
            parse_header_ops(p, it.val, &h->request);
        else if (PC_KEY(it, "response"))
            parse_header_ops(p, it.val, &h->response);
        else
            pc_unknown(p, &it);
    }
}

static void parse_http_match(pctx_t *p, const yaml_node_t *v, proxy_http_match_t *m)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "name"))
            m->name = pc_string(p, it.val);
        else if (PC_KEY(it, "uri"))
            parse_string_match(p, it.val, &m->uri, 1);
        else if (PC_KEY(it, "method"))
            parse_string_match(p, it.val, &m->method, 1);
        else if (PC_KEY(it, "authority"))
            parse_string_match(p, it.val, &m->authority, 1);
        else if (PC_KEY(it, "headers"))
            parse_named_matches(p, it.val, &m->headers, &m->n_headers, 1);
        else if (PC_KEY(it, "withoutHeaders"))
            parse_named_matches(p, it.val, &m->without_headers, &m->n_without_headers, 1);
        else if (PC_KEY(it, "queryParams"))
            parse_named_matches(p, it.val, &m->query_params, &m->n_query_params, 0);
        else if (PC_KEY(it, "ignoreUriCase"))
            pc_bool(p, it.val, &m->ignore_uri_case);
        else if (PC_KEY(it, "scheme") || PC_KEY(it, "port") || PC_KEY(it, "sourceLabels") || PC_KEY(it, "gateways") ||
                 PC_KEY(it, "sourceNamespace") || PC_KEY(it, "statPrefix"))
            pc_unsupported(p, &it);
        else
            pc_unknown(p, &it);
    }
}

static const char *const retry_names[] = {"5xx",           "gateway-error",          "reset", "connect-failure",
                                          "retriable-4xx", "retriable-status-codes", NULL};
/* retryOn values Istio accepts (Envoy retry policies) that outrider-proxy refuses as unsupported */
static const char *const retry_unsupported[] = {"envoy-ratelimited",
                                                "refused-stream",
                                                "retriable-headers",
                                                "reset-before-request",
                                                "http3-post-connect-failure",
                                                "cancelled",
                                                "deadline-exceeded",
                                                "internal",
                                                "resource-exhausted",
                                                "unavailable",
                                                NULL};

static void parse_retry_on(pctx_t *p, const yaml_node_t *v, proxy_retries_t *r)
{
    const char *s = pc_string(p, v);
    if (s == NULL)
        return;
    r->retry_on = 0;
    r->n_codes = 0;
    char *copy = strdup(s);
    if (copy == NULL)
        log_fatal("out of memory");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (len == 0)
            continue;
        int found = 0;
        for (int i = 0; retry_names[i] != NULL && !found; i++)
            if (strcmp(tok, retry_names[i]) == 0) {
                r->retry_on |= 1u << i;
                found = 1;
            }
        if (found)
            continue;
        if (isdigit((unsigned char)tok[0])) {
            char *end;
            long code = strtol(tok, &end, 10);
            if (*end != '\0' || code < 100 || code > 599) {
                pc_error(p, v, "\"%s\" is not an HTTP status code (100-599)", tok);
            } else if (r->n_codes == PROXY_MAX_RETRY_CODES) {
                pc_error(p, v, "more than %d status codes", PROXY_MAX_RETRY_CODES);
            } else {
                r->codes[r->n_codes++] = (uint16_t)code;
                r->retry_on |= PROXY_RETRY_RETRIABLE_STATUS_CODES;
            }
            continue;
        }
        for (int i = 0; retry_unsupported[i] != NULL && !found; i++)
            found = strcmp(tok, retry_unsupported[i]) == 0;
        if (found)
            pc_error(p, v, "retry condition \"%s\" is not supported by outrider-proxy", tok);
        else
            pc_error(p, v,
                     "unknown retry condition \"%s\" (expected 5xx, gateway-error, reset, connect-failure, "
                     "retriable-4xx, retriable-status-codes or a status code)",
                     tok);
    }
    free(copy);
}

/* Istio's defaults, for a route without retries and for fields a retries block leaves out */
static void retries_default(proxy_retries_t *r)
{
    memset(r, 0, sizeof(*r));
    r->attempts = 2;
    r->per_try_timeout_ms = PROXY_UNSET;
    r->retry_on = PROXY_RETRY_CONNECT_FAILURE | PROXY_RETRY_RETRIABLE_STATUS_CODES;
    r->codes[0] = 503;
    r->n_codes = 1;
}

static void parse_retries(pctx_t *p, const yaml_node_t *v, proxy_retries_t *r)
{
    r->given = 1;
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "attempts")) {
            if (pc_int(p, it.val, 0, 100, &n) == 0)
                r->attempts = (int)n;
        } else if (PC_KEY(it, "perTryTimeout")) {
            if (pc_duration(p, it.val, &n) == 0) {
                if (n == 0)
                    pc_error(p, it.val, "must be at least 1ms");
                else
                    r->per_try_timeout_ms = n;
            }
        } else if (PC_KEY(it, "retryOn")) {
            parse_retry_on(p, it.val, r);
        } else if (PC_KEY(it, "retryRemoteLocalities")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void parse_fault(pctx_t *p, const yaml_node_t *v, proxy_fault_t *f)
{
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "delay")) {
            f->has_delay = 1;
            f->delay_percent = 100;
            int has_fixed = 0;
            PC_FIELDS(p, it.val, d)
            {
                if (PC_KEY(d, "fixedDelay")) {
                    has_fixed = 1;
                    if (pc_duration(p, d.val, &n) == 0)
                        f->delay_ms = (uint64_t)n;
                } else if (PC_KEY(d, "percentage")) {
                    pc_percent(p, d.val, &f->delay_percent);
                } else if (PC_KEY(d, "percent")) {
                    if (pc_int(p, d.val, 0, 100, &n) == 0)
                        f->delay_percent = (double)n;
                } else if (PC_KEY(d, "exponentialDelay")) {
                    pc_unsupported(p, &d);
                } else {
                    pc_unknown(p, &d);
                }
            }
            if (!has_fixed && it.val->kind == YAML_MAP)
                pc_missing(p, it.val, "fixedDelay");
        } else if (PC_KEY(it, "abort")) {
            f->has_abort = 1;
            f->abort_percent = 100;
            int has_status = 0;
            PC_FIELDS(p, it.val, a)
            {
                if (PC_KEY(a, "httpStatus")) {
                    has_status = 1;
                    if (pc_int(p, a.val, 200, 599, &n) == 0)
                        f->abort_status = (int)n;
                } else if (PC_KEY(a, "percentage")) {
                    pc_percent(p, a.val, &f->abort_percent);
                } else if (PC_KEY(a, "grpcStatus") || PC_KEY(a, "http2Error")) {
                    pc_unsupported(p, &a);
                } else {
                    pc_unknown(p, &a);
                }
            }
            if (!has_status && it.val->kind == YAML_MAP)
                pc_missing(p, it.val, "httpStatus");
        } else {
            pc_unknown(p, &it);
        }
    }
    if (v->kind == YAML_MAP && !f->has_delay && !f->has_abort)
        pc_error(p, v, "one of delay or abort is required");
}

static void parse_cors(pctx_t *p, const yaml_node_t *v)
{
    PC_FIELDS(p, v, it)
    {
        proxy_str_list_t ignored = {0};
        int64_t ms;
        int b;
        if (PC_KEY(it, "allowOrigins")) {
            long n = pc_seq(p, it.val);
            for (long i = 0; i < n; i++) {
                size_t mark = pc_push_index(p, (size_t)i);
                proxy_string_match_t m = {0};
                parse_string_match(p, it.val->items[i], &m, 1);
                pc_pop(p, mark);
            }
        } else if (PC_KEY(it, "allowOrigin") || PC_KEY(it, "allowMethods") || PC_KEY(it, "allowHeaders") ||
                   PC_KEY(it, "exposeHeaders")) {
            pc_str_list(p, it.val, &ignored);
        } else if (PC_KEY(it, "maxAge")) {
            pc_duration(p, it.val, &ms);
        } else if (PC_KEY(it, "allowCredentials")) {
            pc_bool(p, it.val, &b);
        } else if (PC_KEY(it, "unmatchedPreflights")) {
            static const char *const up[] = {"UNSPECIFIED", "FORWARD", "IGNORE", NULL};
            pc_enum(p, it.val, up);
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void parse_route_destinations(pctx_t *p, const yaml_node_t *key, const yaml_node_t *v, proxy_http_route_t *r)
{
    long n = pc_seq(p, v);
    if (n <= 0) {
        if (n == 0)
            pc_error(p, v, "at least one destination is required");
        return;
    }
    r->routes = pc_alloc(p, (size_t)n, sizeof(proxy_route_destination_t));
    int sum = 0, any_weight = 0;
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        proxy_route_destination_t *rd = &r->routes[r->n_routes++];
        const yaml_node_t *item = v->items[i];
        int has_dest = 0;
        PC_FIELDS(p, item, it)
        {
            int64_t w;
            if (PC_KEY(it, "destination")) {
                has_dest = 1;
                parse_destination(p, it.val, &rd->destination);
            } else if (PC_KEY(it, "weight")) {
                any_weight = 1;
                rd->weight_given = 1;
                if (pc_int(p, it.val, 0, 100, &w) == 0) {
                    rd->weight = (int)w;
                    sum += (int)w;
                } else {
                    sum = -1000; /* already reported; do not report the sum too */
                }
            } else if (PC_KEY(it, "headers")) {
                parse_headers(p, it.val, &rd->headers);
            } else {
                pc_unknown(p, &it);
            }
        }
        if (!has_dest && item->kind == YAML_MAP)
            pc_missing(p, item, "destination");
        pc_pop(p, mark);
    }
    if (n == 1 && !any_weight)
        r->routes[0].weight = 100;
    else if (sum >= 0 && sum != 100)
        pc_error(p, key, "the weights of the destinations add up to %d; they must add up to 100", sum);
}

static void parse_http_route(pctx_t *p, const yaml_node_t *v, proxy_http_route_t *r)
{
    r->timeout_ms = PROXY_UNSET;
    r->redirect_port = PROXY_UNSET;
    retries_default(&r->retries);
    r->pos = (proxy_pos_t){v->line, v->col};
    const yaml_node_t *route = NULL, *redirect = NULL, *direct = NULL, *rewrite = NULL;
    const yaml_node_t *mirror = NULL, *mirrors = NULL, *mirror_pct = NULL;
    double mirror_percent = 100;
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "name")) {
            r->name = pc_string(p, it.val);
        } else if (PC_KEY(it, "match")) {
            long m = pc_seq(p, it.val);
            if (m > 0)
                r->matches = pc_alloc(p, (size_t)m, sizeof(proxy_http_match_t));
            for (long i = 0; i < m; i++) {
                size_t mark = pc_push_index(p, (size_t)i);
                parse_http_match(p, it.val->items[i], &r->matches[r->n_matches++]);
                pc_pop(p, mark);
            }
        } else if (PC_KEY(it, "route")) {
            route = it.key;
            parse_route_destinations(p, it.key, it.val, r);
        } else if (PC_KEY(it, "redirect")) {
            redirect = it.key;
            r->has_redirect = 1;
            r->redirect_code = 301;
            PC_FIELDS(p, it.val, rd)
            {
                if (PC_KEY(rd, "uri")) {
                    r->redirect_uri = pc_string(p, rd.val);
                } else if (PC_KEY(rd, "authority")) {
                    r->redirect_authority = pc_string(p, rd.val);
                } else if (PC_KEY(rd, "scheme")) {
                    r->redirect_scheme = pc_string(p, rd.val);
                } else if (PC_KEY(rd, "port")) {
                    if (pc_int(p, rd.val, 1, 65535, &n) == 0)
                        r->redirect_port = n;
                } else if (PC_KEY(rd, "redirectCode")) {
                    if (pc_int(p, rd.val, 300, 399, &n) == 0) {
                        if (n != 301 && n != 302 && n != 303 && n != 307 && n != 308)
                            pc_error(p, rd.val, "redirect code %d is not one of 301, 302, 303, 307, 308", (int)n);
                        else
                            r->redirect_code = (int)n;
                    }
                } else if (PC_KEY(rd, "derivePort")) {
                    pc_unsupported(p, &rd);
                } else {
                    pc_unknown(p, &rd);
                }
            }
        } else if (PC_KEY(it, "directResponse")) {
            direct = it.key;
            r->has_direct_response = 1;
            int has_status = 0;
            PC_FIELDS(p, it.val, dr)
            {
                if (PC_KEY(dr, "status")) {
                    has_status = 1;
                    if (pc_int(p, dr.val, 200, 599, &n) == 0)
                        r->direct_status = (int)n;
                } else if (PC_KEY(dr, "body")) {
                    PC_FIELDS(p, dr.val, b)
                    {
                        if (PC_KEY(b, "string"))
                            r->direct_body = pc_string(p, b.val);
                        else if (PC_KEY(b, "bytes"))
                            pc_unsupported(p, &b);
                        else
                            pc_unknown(p, &b);
                    }
                } else {
                    pc_unknown(p, &dr);
                }
            }
            if (!has_status && it.val->kind == YAML_MAP)
                pc_missing(p, it.val, "status");
        } else if (PC_KEY(it, "rewrite")) {
            rewrite = it.key;
            PC_FIELDS(p, it.val, rw)
            {
                if (PC_KEY(rw, "uri"))
                    r->rewrite_uri = pc_string(p, rw.val);
                else if (PC_KEY(rw, "authority"))
                    r->rewrite_authority = pc_string(p, rw.val);
                else if (PC_KEY(rw, "uriRegexRewrite"))
                    pc_unsupported(p, &rw);
                else
                    pc_unknown(p, &rw);
            }
        } else if (PC_KEY(it, "timeout")) {
            if (pc_duration(p, it.val, &n) == 0)
                r->timeout_ms = n;
        } else if (PC_KEY(it, "retries")) {
            parse_retries(p, it.val, &r->retries);
        } else if (PC_KEY(it, "fault")) {
            parse_fault(p, it.val, &r->fault);
        } else if (PC_KEY(it, "mirror")) {
            mirror = it.key;
            r->mirrors = pc_alloc(p, 1, sizeof(proxy_mirror_t));
            r->n_mirrors = 1;
            parse_destination(p, it.val, &r->mirrors[0].destination);
        } else if (PC_KEY(it, "mirrorPercentage")) {
            mirror_pct = it.key;
            pc_percent(p, it.val, &mirror_percent);
        } else if (PC_KEY(it, "mirrors")) {
            mirrors = it.key;
            long m = pc_seq(p, it.val);
            if (m > 0) {
                r->mirrors = pc_alloc(p, (size_t)m, sizeof(proxy_mirror_t));
                r->n_mirrors = 0;
            }
            for (long i = 0; i < m; i++) {
                size_t mark = pc_push_index(p, (size_t)i);
                proxy_mirror_t *mi = &r->mirrors[r->n_mirrors++];
                mi->percent = 100;
                int has_dest = 0;
                PC_FIELDS(p, it.val->items[i], mf)
                {
                    if (PC_KEY(mf, "destination")) {
                        has_dest = 1;
                        parse_destination(p, mf.val, &mi->destination);
                    } else if (PC_KEY(mf, "percentage")) {
                        pc_percent(p, mf.val, &mi->percent);
                    } else {
                        pc_unknown(p, &mf);
                    }
                }
                if (!has_dest && it.val->items[i]->kind == YAML_MAP)
                    pc_missing(p, it.val->items[i], "destination");
                pc_pop(p, mark);
            }
        } else if (PC_KEY(it, "corsPolicy")) {
            parse_cors(p, it.val);
            pc_warn(p, it.key,
                    "parsed but ignored: outrider-proxy does not apply CORS policies (the app's own "
                    "CORS headers pass through)");
        } else if (PC_KEY(it, "headers")) {
            parse_headers(p, it.val, &r->headers);
        } else if (PC_KEY(it, "delegate") || PC_KEY(it, "mirror_percent") || PC_KEY(it, "mirrorPercent")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (v->kind != YAML_MAP)
        return;
    int actions = (route != NULL) + (redirect != NULL) + (direct != NULL);
    if (actions == 0) {
        pc_error(p, v, "one of route, redirect or directResponse is required");
    } else if (actions > 1) {
        const yaml_node_t *second = direct ? direct : redirect;
        size_t mark = pc_push(p, second == direct ? "directResponse" : "redirect");
        pc_error(p, second, "route, redirect and directResponse are mutually exclusive");
        pc_pop(p, mark);
    }
    if (rewrite != NULL && (redirect != NULL || direct != NULL)) {
        size_t mark = pc_push(p, "rewrite");
        pc_error(p, rewrite, "rewrite cannot be used with %s", redirect ? "redirect" : "directResponse");
        pc_pop(p, mark);
    }
    if (mirror != NULL && mirrors != NULL) {
        size_t mark = pc_push(p, "mirrors");
        pc_error(p, mirrors, "mirror and mirrors are mutually exclusive");
        pc_pop(p, mark);
    }
    if (mirror_pct != NULL && mirror == NULL) {
        size_t mark = pc_push(p, "mirrorPercentage");
        pc_error(p, mirror_pct, "mirrorPercentage needs mirror");
        pc_pop(p, mark);
    }
    if (mirror != NULL && mirrors == NULL && r->n_mirrors == 1)
        r->mirrors[0].percent = mirror_percent;
}

void istio_parse_virtual_service(pctx_t *p, const yaml_node_t *spec, proxy_virtual_service_t *vs)
{
    int has_hosts = 0;
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "hosts")) {
            has_hosts = 1;
            parse_hosts(p, it.val, &vs->hosts, &vs->n_hosts, 0);
        } else if (PC_KEY(it, "gateways")) {
            pc_str_list(p, it.val, &vs->gateways);
        } else if (PC_KEY(it, "http")) {
            long n = pc_seq(p, it.val);
            if (n > 0)
                vs->http = pc_alloc(p, (size_t)n, sizeof(proxy_http_route_t));
            for (long i = 0; i < n; i++) {
                size_t mark = pc_push_index(p, (size_t)i);
                proxy_http_route_t *r = &vs->http[vs->n_http++];
                parse_http_route(p, it.val->items[i], r);
                for (size_t k = 0; r->name != NULL && k + 1 < vs->n_http; k++)
                    if (vs->http[k].name != NULL && strcmp(vs->http[k].name, r->name) == 0) {
                        size_t m2 = pc_push(p, "name");
                        pc_error(p, yaml_map_get(it.val->items[i], "name"),
                                 "duplicate route name \"%s\" (also spec.http[%zu])", r->name, k);
                        pc_pop(p, m2);
                        break;
                    }
                pc_pop(p, mark);
            }
        } else if (PC_KEY(it, "exportTo")) {
            proxy_str_list_t ignored = {0};
            pc_str_list(p, it.val, &ignored);
        } else if (PC_KEY(it, "tcp") || PC_KEY(it, "tls")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (!has_hosts && spec->kind == YAML_MAP)
        pc_missing(p, spec, "hosts");
}

/* ---- DestinationRule ---- */

static void parse_consistent_hash(pctx_t *p, const yaml_node_t *v, proxy_traffic_policy_t *tp)
{
    int count = 0;
    tp->lb = PROXY_LB_CONSISTENT_HASH;
    PC_FIELDS(p, v, it)
    {
        enum proxy_hash_on on;
        if (PC_KEY(it, "httpHeaderName")) {
            on = PROXY_HASH_HEADER;
        } else if (PC_KEY(it, "httpCookie")) {
            on = PROXY_HASH_COOKIE;
        } else if (PC_KEY(it, "useSourceIp")) {
            on = PROXY_HASH_SOURCE_IP;
        } else if (PC_KEY(it, "httpQueryParameterName")) {
            on = PROXY_HASH_QUERY;
        } else if (PC_KEY(it, "ringHash") || PC_KEY(it, "maglev") || PC_KEY(it, "minimumRingSize")) {
            pc_unsupported(p, &it);
            continue;
        } else {
            pc_unknown(p, &it);
            continue;
        }
        if (++count > 1) {
            pc_error(p, it.key,
                     "httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName are mutually "
                     "exclusive");
            continue;
        }
        if (on == PROXY_HASH_HEADER || on == PROXY_HASH_QUERY) {
            const char *s = pc_string(p, it.val);
            if (s != NULL && on == PROXY_HASH_HEADER)
                lowercase((char *)s);
            if (s != NULL) {
                tp->hash_on = on;
                tp->hash_key = s;
            }
        } else if (on == PROXY_HASH_SOURCE_IP) {
            int b = 0;
            if (pc_bool(p, it.val, &b) == 0 && b)
                tp->hash_on = on;
        } else {
            int has_name = 0;
            tp->hash_on = on;
            PC_FIELDS(p, it.val, c)
            {
                int64_t ms;
                if (PC_KEY(c, "name")) {
                    has_name = 1;
                    tp->hash_key = pc_string(p, c.val);
                } else if (PC_KEY(c, "path")) {
                    tp->hash_cookie_path = pc_string(p, c.val);
                } else if (PC_KEY(c, "ttl")) {
                    if (pc_duration(p, c.val, &ms) == 0)
                        tp->hash_cookie_ttl_ms = ms;
                } else if (PC_KEY(c, "attributes")) {
                    pc_unsupported(p, &c);
                } else {
                    pc_unknown(p, &c);
                }
            }
            if (!has_name && it.val->kind == YAML_MAP)
                pc_missing(p, it.val, "name");
        }
    }
    if (count == 0 && v->kind == YAML_MAP)
        pc_error(p, v, "one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName is required");
}

static void parse_load_balancer(pctx_t *p, const yaml_node_t *v, proxy_traffic_policy_t *tp)
{
    static const char *const simple[] = {"UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH",
                                         "LEAST_CONN",  NULL};
    const yaml_node_t *simple_key = NULL, *hash_key = NULL;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "simple")) {
            simple_key = it.key;
            int r = pc_enum(p, it.val, simple);
            if (r == 5) /* LEAST_CONN: Istio's deprecated name for LEAST_REQUEST */
                r = 2;
            if (r == 4)
                pc_warn(p, it.val, "PASSTHROUGH is parsed but not enforced yet (ROUND_ROBIN is used)");
            if (r >= 0)
                tp->lb = (enum proxy_lb)r;
        } else if (PC_KEY(it, "consistentHash")) {
            hash_key = it.key;
            parse_consistent_hash(p, it.val, tp);
        } else if (PC_KEY(it, "localityLbSetting") || PC_KEY(it, "warmupDurationSecs") || PC_KEY(it, "warmup")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (simple_key != NULL && hash_key != NULL) {
        size_t mark = pc_push(p, "consistentHash");
        pc_error(p, hash_key, "simple and consistentHash are mutually exclusive");
        pc_pop(p, mark);
    }
}

static void parse_connection_pool(pctx_t *p, const yaml_node_t *v, proxy_traffic_policy_t *tp)
{
    tp->has_pool = 1;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "tcp")) {
            PC_FIELDS(p, it.val, t)
            {
                int64_t n;
                if (PC_KEY(t, "maxConnections")) {
                    if (pc_int(p, t.val, 1, INT32_MAX, &n) == 0)
                        tp->max_connections = n;
                } else if (PC_KEY(t, "connectTimeout")) {
                    if (pc_duration(p, t.val, &n) == 0) {
                        if (n == 0)
                            pc_error(p, t.val, "must be at least 1ms");
                        else
                            tp->connect_timeout_ms = n;
                    }
                } else if (PC_KEY(t, "tcpKeepalive") || PC_KEY(t, "maxConnectionDuration") ||
                           PC_KEY(t, "idleTimeout")) {
                    pc_unsupported(p, &t);
                } else {
                    pc_unknown(p, &t);
                }
            }
        } else if (PC_KEY(it, "http")) {
            PC_FIELDS(p, it.val, h)
            {
                int64_t n;
                if (PC_KEY(h, "http1MaxPendingRequests")) {
                    if (pc_int(p, h.val, 1, INT32_MAX, &n) == 0)
                        tp->http1_max_pending_requests = n;
                } else if (PC_KEY(h, "maxRequestsPerConnection")) {
                    if (pc_int(p, h.val, 0, INT32_MAX, &n) == 0)
                        tp->max_requests_per_connection = n;
                } else if (PC_KEY(h, "maxRetries")) {
                    if (pc_int(p, h.val, 0, INT32_MAX, &n) == 0)
                        tp->max_retries = n;
                } else if (PC_KEY(h, "idleTimeout")) {
                    if (pc_duration(p, h.val, &n) == 0)
                        tp->idle_timeout_ms = n;
                } else if (PC_KEY(h, "http2MaxRequests") || PC_KEY(h, "h2UpgradePolicy") ||
                           PC_KEY(h, "useClientProtocol") || PC_KEY(h, "maxConcurrentStreams")) {
                    pc_unsupported(p, &h);
                } else {
                    pc_unknown(p, &h);
                }
            }
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void parse_outlier(pctx_t *p, const yaml_node_t *v, proxy_traffic_policy_t *tp)
{
    tp->has_outlier = 1;
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "consecutive5xxErrors")) {
            if (pc_int(p, it.val, 0, INT32_MAX, &n) == 0)
                tp->consecutive_5xx_errors = n;
        } else if (PC_KEY(it, "consecutiveGatewayErrors")) {
            if (pc_int(p, it.val, 0, INT32_MAX, &n) == 0)
                tp->consecutive_gateway_errors = n;
        } else if (PC_KEY(it, "interval")) {
            if (pc_duration(p, it.val, &n) == 0) {
                if (n == 0)
                    pc_error(p, it.val, "must be at least 1ms");
                else
                    tp->interval_ms = n;
            }
        } else if (PC_KEY(it, "baseEjectionTime")) {
            if (pc_duration(p, it.val, &n) == 0) {
                if (n == 0)
                    pc_error(p, it.val, "must be at least 1ms");
                else
                    tp->base_ejection_time_ms = n;
            }
        } else if (PC_KEY(it, "maxEjectionPercent")) {
            if (pc_int(p, it.val, 0, 100, &n) == 0)
                tp->max_ejection_percent = n;
        } else if (PC_KEY(it, "minHealthPercent")) {
            if (pc_int(p, it.val, 0, 100, &n) == 0)
                tp->min_health_percent = n;
        } else if (PC_KEY(it, "consecutiveErrors") || PC_KEY(it, "splitExternalLocalOriginErrors") ||
                   PC_KEY(it, "consecutiveLocalOriginFailures")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void policy_init(proxy_traffic_policy_t *tp)
{
    memset(tp, 0, sizeof(*tp));
    tp->hash_cookie_ttl_ms = PROXY_UNSET;
    tp->max_connections = PROXY_UNSET;
    tp->connect_timeout_ms = PROXY_UNSET;
    tp->http1_max_pending_requests = PROXY_UNSET;
    tp->max_requests_per_connection = PROXY_UNSET;
    tp->max_retries = PROXY_UNSET;
    tp->idle_timeout_ms = PROXY_UNSET;
    tp->consecutive_5xx_errors = PROXY_UNSET;
    tp->consecutive_gateway_errors = PROXY_UNSET;
    tp->interval_ms = PROXY_UNSET;
    tp->base_ejection_time_ms = PROXY_UNSET;
    tp->max_ejection_percent = PROXY_UNSET;
    tp->min_health_percent = PROXY_UNSET;
}

/* DestinationRule trafficPolicy.tls (Istio's ClientTLSSettings). */
static void parse_client_tls(pctx_t *p, const yaml_node_t *v, proxy_traffic_policy_t *tp)
{
    static const char *const modes[] = {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL};
    tp->has_tls = 1;
    const yaml_node_t *mode_node = NULL;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "mode")) {
            int m = pc_enum(p, it.val, modes);
            if (m >= 0)
                tp->tls_mode = (enum proxy_tls_mode)m;
            mode_node = it.val;
        } else if (PC_KEY(it, "clientCertificate")) {
            tp->tls_client_certificate = pc_readable_file(p, it.val);
        } else if (PC_KEY(it, "privateKey")) {
            tp->tls_private_key = pc_readable_file(p, it.val);
        } else if (PC_KEY(it, "caCertificates")) {
            tp->tls_ca_certificates = pc_readable_file(p, it.val);
        } else if (PC_KEY(it, "sni")) {
            tp->tls_sni = pc_string(p, it.val);
        } else if (PC_KEY(it, "subjectAltNames")) {
            pc_str_list(p, it.val, &tp->tls_subject_alt_names);
        } else if (PC_KEY(it, "insecureSkipVerify")) {
            pc_bool(p, it.val, &tp->tls_insecure_skip_verify);
        } else if (PC_KEY(it, "credentialName") || PC_KEY(it, "caCrl")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (mode_node == NULL) {
        pc_missing(p, v, "mode");
        return;
    }
    if (tp->tls_mode == PROXY_TLS_ISTIO_MUTUAL && !p->has_identity)
        pc_error(p, mode_node,
                 "ISTIO_MUTUAL presents the sidecar's workload identity: the Proxy needs spec.identity "
                 "(certificate files, or the mesh CA's caAddress and tokenFile)");
    if (tp->tls_mode == PROXY_TLS_ISTIO_MUTUAL &&
        (tp->tls_client_certificate != NULL || tp->tls_private_key != NULL || tp->tls_ca_certificates != NULL))
        pc_error(p, v,
                 "ISTIO_MUTUAL uses the sidecar's own certificate and the mesh's roots: "
                 "clientCertificate, privateKey and caCertificates go with MUTUAL");
    if (tp->tls_mode == PROXY_TLS_MUTUAL && (tp->tls_client_certificate == NULL || tp->tls_private_key == NULL))
        pc_error(p, v, "mode MUTUAL needs clientCertificate and privateKey");
}

static void parse_traffic_policy(pctx_t *p, const yaml_node_t *v, proxy_traffic_policy_t *tp)
{
    tp->given = 1;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "loadBalancer")) {
            parse_load_balancer(p, it.val, tp);
        } else if (PC_KEY(it, "connectionPool")) {
            parse_connection_pool(p, it.val, tp);
        } else if (PC_KEY(it, "outlierDetection")) {
            parse_outlier(p, it.val, tp);
        } else if (PC_KEY(it, "tls")) {
            parse_client_tls(p, it.val, tp);
        } else if (PC_KEY(it, "portLevelSettings") || PC_KEY(it, "tunnel") || PC_KEY(it, "proxyProtocol")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void merge_policy(proxy_traffic_policy_t *sub, const proxy_traffic_policy_t *rule)
{
    if (!sub->given) {
        *sub = *rule;
        return;
    }
    if (sub->lb == PROXY_LB_UNSET) {
        sub->lb = rule->lb;
        sub->hash_on = rule->hash_on;
        sub->hash_key = rule->hash_key;
        sub->hash_cookie_path = rule->hash_cookie_path;
        sub->hash_cookie_ttl_ms = rule->hash_cookie_ttl_ms;
    }
    if (!sub->has_pool) {
        sub->has_pool = rule->has_pool;
        sub->max_connections = rule->max_connections;
        sub->connect_timeout_ms = rule->connect_timeout_ms;
        sub->http1_max_pending_requests = rule->http1_max_pending_requests;
        sub->max_requests_per_connection = rule->max_requests_per_connection;
        sub->max_retries = rule->max_retries;
        sub->idle_timeout_ms = rule->idle_timeout_ms;
    }
    if (!sub->has_tls) {
        sub->has_tls = rule->has_tls;
        sub->tls_mode = rule->tls_mode;
        sub->tls_client_certificate = rule->tls_client_certificate;
        sub->tls_private_key = rule->tls_private_key;
        sub->tls_ca_certificates = rule->tls_ca_certificates;
        sub->tls_sni = rule->tls_sni;
        sub->tls_subject_alt_names = rule->tls_subject_alt_names;
        sub->tls_insecure_skip_verify = rule->tls_insecure_skip_verify;
    }
    if (!sub->has_outlier) {
        sub->has_outlier = rule->has_outlier;
        sub->consecutive_5xx_errors = rule->consecutive_5xx_errors;
        sub->consecutive_gateway_errors = rule->consecutive_gateway_errors;
        sub->interval_ms = rule->interval_ms;
        sub->base_ejection_time_ms = rule->base_ejection_time_ms;
        sub->max_ejection_percent = rule->max_ejection_percent;
        sub->min_health_percent = rule->min_health_percent;
    }
}

void istio_parse_destination_rule(pctx_t *p, const yaml_node_t *spec, proxy_destination_rule_t *dr)
{
    int has_host = 0;
    policy_init(&dr->policy);
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "host")) {
            has_host = 1;
            parse_host(p, it.val, &dr->host, 0);
        } else if (PC_KEY(it, "trafficPolicy")) {
            parse_traffic_policy(p, it.val, &dr->policy);
        } else if (PC_KEY(it, "subsets")) {
            long n = pc_seq(p, it.val);
            if (n > 0)
                dr->subsets = pc_alloc(p, (size_t)n, sizeof(proxy_subset_t));
            for (long i = 0; i < n; i++) {
                size_t mark = pc_push_index(p, (size_t)i);
                const yaml_node_t *item = it.val->items[i];
                proxy_subset_t *s = &dr->subsets[dr->n_subsets++];
                policy_init(&s->policy);
                s->pos = (proxy_pos_t){item->line, item->col};
                PC_FIELDS(p, item, sf)
                {
                    if (PC_KEY(sf, "name")) {
                        s->name = pc_string(p, sf.val);
                        for (size_t k = 0; s->name != NULL && k + 1 < dr->n_subsets; k++)
                            if (dr->subsets[k].name != NULL && strcmp(dr->subsets[k].name, s->name) == 0) {
                                pc_error(p, sf.val, "duplicate subset name \"%s\" (also spec.subsets[%zu])", s->name,
                                         k);
                                break;
                            }
                    } else if (PC_KEY(sf, "labels")) {
                        pc_kv_map(p, sf.val, &s->labels, 0);
                    } else if (PC_KEY(sf, "trafficPolicy")) {
                        parse_traffic_policy(p, sf.val, &s->policy);
                    } else {
                        pc_unknown(p, &sf);
                    }
                }
                if (item->kind == YAML_MAP && yaml_map_get(item, "name") == NULL)
                    pc_missing(p, item, "name");
                pc_pop(p, mark);
            }
        } else if (PC_KEY(it, "exportTo")) {
            proxy_str_list_t ignored = {0};
            pc_str_list(p, it.val, &ignored);
        } else if (PC_KEY(it, "workloadSelector")) {
            pc_unsupported(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (!has_host && spec->kind == YAML_MAP)
        pc_missing(p, spec, "host");
    for (size_t i = 0; i < dr->n_subsets; i++)
        merge_policy(&dr->subsets[i].policy, &dr->policy);
}

void istio_parse_hosts(pctx_t *p, const yaml_node_t *v, proxy_host_t **hosts, size_t *n_hosts)
{
    parse_hosts(p, v, hosts, n_hosts, 0);
}
