/*
 * config_ratelimit: the Outrider `kind: RateLimit` document, both passes;
 * the shape is documented in config.h.
 *
 * Pass one (ratelimit_parse) checks fields, types and ranges of one
 * document, as config_istio.c does for the Istio kinds, with the same
 * helpers and the same messages. Pass two (ratelimit_check_references),
 * run after istio_check_references, ties each host to its ServiceEntry,
 * checks that each route name is an http route of the VirtualService of
 * one of the hosts, and that no two documents attach to the same
 * (ServiceEntry, route) pair, where "no routes" is a pair of its own
 * (the whole host). The limits are enforced by runtime.c (local token
 * buckets) and rlglobal.c (global limits in Redis).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_parse.h"

/* ---- pass one ---- */

static int map_or_null(const yaml_node_t *v)
{
    return v->kind == YAML_MAP || (v->kind == YAML_SCALAR && v->is_null);
}

/*
 * Where to report about a whole value: an empty collection carries no
 * position of its own (common/yaml takes a collection's from its first
 * scalar), so its key stands in for it.
 */
static const yaml_node_t *where(const yaml_node_t *v, const yaml_node_t *key)
{
    return v->line > 0 || key == NULL ? v : key;
}

static void require(pctx_t *p, const yaml_node_t *v, const yaml_node_t *at, int seen, const char *field)
{
    if (!seen && map_or_null(v))
        pc_missing(p, at, field);
}

/* RFC 9110 5.1: a header name is a token. */
static int header_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr(extra, *s) == NULL)
            return 0;
    return 1;
}

static void parse_routes(pctx_t *p, const yaml_node_t *key, const yaml_node_t *v, proxy_rate_limit_t *rl)
{
    long n = pc_seq(p, v);
    if (n < 0)
        return;
    if (n == 0) {
        pc_error(p, where(v, key), "at least one route name is required (leave routes out to cover every request)");
        return;
    }
    rl->routes = pc_alloc(p, (size_t)n, sizeof(proxy_rl_route_t));
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        const yaml_node_t *item = v->items[i];
        const char *s = pc_string(p, item);
        if (s != NULL && *s == '\0') {
            pc_error(p, item, "the route name must not be empty");
        } else if (s != NULL) {
            size_t k;
            for (k = 0; k < rl->n_routes; k++)
                if (strcmp(rl->routes[k].name, s) == 0)
                    break;
            if (k < rl->n_routes) {
                pc_error(p, item, "duplicate route \"%s\" (also spec.routes[%zu])", s, k);
            } else {
                rl->routes[rl->n_routes].name = s;
                rl->routes[rl->n_routes].pos = (proxy_pos_t){item->line, item->col};
                rl->n_routes++;
            }
        }
        pc_pop(p, mark);
    }
}

static void parse_local(pctx_t *p, const yaml_node_t *key, const yaml_node_t *v, proxy_rl_local_t *l)
{
    const yaml_node_t *at = where(v, key);
    l->given = 1;
    l->tokens_per_fill = 1;
    l->pos = (proxy_pos_t){at->line, at->col};
    int has_max = 0, has_interval = 0;
    const yaml_node_t *fill_node = NULL;
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "maxTokens")) {
            has_max = 1;
            if (pc_int(p, it.val, 1, PROXY_RL_MAX_VALUE, &n) == 0)
                l->max_tokens = (uint64_t)n;
        } else if (PC_KEY(it, "tokensPerFill")) {
            if (pc_int(p, it.val, 1, PROXY_RL_MAX_VALUE, &n) == 0) {
                l->tokens_per_fill = (uint64_t)n;
                fill_node = it.val;
            }
        } else if (PC_KEY(it, "fillInterval")) {
            has_interval = 1;
            if (pc_duration(p, it.val, &n) == 0) {
                if (n == 0)
                    pc_error(p, it.val, "must be at least 1ms");
                else
                    l->fill_interval_ms = (uint64_t)n;
            }
        } else if (PC_KEY(it, "shadow")) {
            pc_bool(p, it.val, &l->shadow);
        } else {
            pc_unknown(p, &it);
        }
    }
    require(p, v, at, has_max, "maxTokens");
    require(p, v, at, has_interval, "fillInterval");
    if (fill_node != NULL && l->max_tokens > 0 && l->tokens_per_fill > l->max_tokens) {
        size_t mark = pc_push(p, "tokensPerFill");
        pc_error(p, fill_node, "%llu is more than maxTokens (%llu)", (unsigned long long)l->tokens_per_fill,
                 (unsigned long long)l->max_tokens);
        pc_pop(p, mark);
    }
}

static void parse_key(pctx_t *p, const yaml_node_t *list_key, const yaml_node_t *v, proxy_rl_key_t *k)
{
    const yaml_node_t *at = where(v, list_key);
    int count = 0;
    k->pos = (proxy_pos_t){at->line, at->col};
    PC_FIELDS(p, v, it)
    {
        enum proxy_rl_key_kind kind;
        if (PC_KEY(it, "requestHeader")) {
            kind = PROXY_RL_KEY_REQUEST_HEADER;
        } else if (PC_KEY(it, "remoteAddress")) {
            kind = PROXY_RL_KEY_REMOTE_ADDRESS;
        } else if (PC_KEY(it, "path")) {
            kind = PROXY_RL_KEY_PATH;
        } else if (PC_KEY(it, "destinationService")) {
            kind = PROXY_RL_KEY_DESTINATION_SERVICE;
        } else {
            pc_unknown(p, &it);
            continue;
        }
        if (++count > 1) {
            pc_error(p, it.key, "requestHeader, remoteAddress, path and destinationService are mutually exclusive");
            continue;
        }
        k->kind = kind;
        if (kind == PROXY_RL_KEY_REQUEST_HEADER) {
            const char *s = pc_string(p, it.val);
            if (s == NULL)
                continue;
            if (!header_token(s)) {
                pc_error(p, it.val, "\"%s\" is not a valid header name", s);
                continue;
            }
            for (char *c = (char *)s; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            k->header = s;
        } else {
            int b;
            if (pc_bool(p, it.val, &b) == 0 && !b)
                pc_error(p, it.val, "must be true (leave the entry out instead)");
        }
    }
    if (count == 0 && map_or_null(v))
        pc_error(p, at, "one of requestHeader, remoteAddress, path or destinationService is required");
}

static void parse_limit(pctx_t *p, const yaml_node_t *list_key, const yaml_node_t *v, proxy_rl_limit_t *l)
{
    const yaml_node_t *at = where(v, list_key);
    static const char *const units[] = {"second", "minute", "hour", "day", NULL};
    static const uint64_t unit_ms[] = {1000, 60000, 3600000, 86400000};
    int has_name = 0, has_key = 0, has_rpu = 0, has_unit = 0;
    l->pos = (proxy_pos_t){at->line, at->col};
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        if (PC_KEY(it, "name")) {
            has_name = 1;
            const char *s = pc_string(p, it.val);
            if (s != NULL && *s == '\0')
                pc_error(p, it.val, "the name must not be empty");
            else
                l->name = s;
        } else if (PC_KEY(it, "key")) {
            has_key = 1;
            long nk = pc_seq(p, it.val);
            if (nk == 0) {
                pc_error(p, where(it.val, it.key), "at least one entry is required");
            } else if (nk > PROXY_RL_MAX_KEYS) {
                pc_error(p, it.val, "at most %d entries (got %ld)", PROXY_RL_MAX_KEYS, nk);
            } else if (nk > 0) {
                l->keys = pc_alloc(p, (size_t)nk, sizeof(proxy_rl_key_t));
                for (long i = 0; i < nk; i++) {
                    size_t mark = pc_push_index(p, (size_t)i);
                    parse_key(p, it.key, it.val->items[i], &l->keys[l->n_keys++]);
                    pc_pop(p, mark);
                }
            }
        } else if (PC_KEY(it, "requestsPerUnit")) {
            has_rpu = 1;
            if (pc_int(p, it.val, 1, PROXY_RL_MAX_VALUE, &n) == 0)
                l->requests_per_unit = (uint64_t)n;
        } else if (PC_KEY(it, "unit")) {
            has_unit = 1;
            int u = pc_enum(p, it.val, units);
            if (u >= 0) {
                l->unit = (enum proxy_rl_unit)u;
                l->unit_ms = unit_ms[u];
            }
        } else {
            pc_unknown(p, &it);
        }
    }
    require(p, v, at, has_name, "name");
    require(p, v, at, has_key, "key");
    require(p, v, at, has_rpu, "requestsPerUnit");
    require(p, v, at, has_unit, "unit");
}

static void parse_limits(pctx_t *p, const yaml_node_t *key, const yaml_node_t *v, proxy_rl_global_t *g)
{
    long n = pc_seq(p, v);
    if (n < 0)
        return;
    if (n == 0) {
        pc_error(p, where(v, key), "at least one limit is required");
        return;
    }
    g->limits = pc_alloc(p, (size_t)n, sizeof(proxy_rl_limit_t));
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        const yaml_node_t *item = v->items[i];
        proxy_rl_limit_t *l = &g->limits[g->n_limits++];
        parse_limit(p, key, item, l);
        for (size_t k = 0; l->name != NULL && k + 1 < g->n_limits; k++)
            if (g->limits[k].name != NULL && strcmp(g->limits[k].name, l->name) == 0) {
                size_t m2 = pc_push(p, "name");
                pc_error(p, yaml_map_get(item, "name"), "duplicate limit name \"%s\" (also spec.global.limits[%zu])",
                         l->name, k);
                pc_pop(p, m2);
                break;
            }
        pc_pop(p, mark);
    }
}

static void parse_global(pctx_t *p, const yaml_node_t *key, const yaml_node_t *v, proxy_rl_global_t *g)
{
    const yaml_node_t *at = where(v, key);
    static const char *const modes[] = {"allow", "deny", NULL};
    static const char *const algorithms[] = {"fixedWindow", "slidingWindow", NULL};
    g->given = 1;
    g->timeout_ms = 50;
    g->pos = (proxy_pos_t){at->line, at->col};
    int has_redis = 0, has_limits = 0;
    PC_FIELDS(p, v, it)
    {
        int64_t n;
        int e;
        if (PC_KEY(it, "redis")) {
            has_redis = 1;
            pc_hostport(p, it.val, 0, &g->redis);
        } else if (PC_KEY(it, "timeout")) {
            if (pc_duration(p, it.val, &n) == 0) {
                if (n == 0)
                    pc_error(p, it.val, "must be at least 1ms");
                else
                    g->timeout_ms = (uint64_t)n;
            }
        } else if (PC_KEY(it, "failureMode")) {
            if ((e = pc_enum(p, it.val, modes)) >= 0)
                g->failure_mode = (enum proxy_rl_failure_mode)e;
        } else if (PC_KEY(it, "algorithm")) {
            if ((e = pc_enum(p, it.val, algorithms)) >= 0)
                g->algorithm = (enum proxy_rl_algorithm)e;
        } else if (PC_KEY(it, "shadow")) {
            pc_bool(p, it.val, &g->shadow);
        } else if (PC_KEY(it, "limits")) {
            has_limits = 1;
            parse_limits(p, it.key, it.val, g);
        } else {
            pc_unknown(p, &it);
        }
    }
    require(p, v, at, has_redis, "redis");
    require(p, v, at, has_limits, "limits");
}

void ratelimit_parse(pctx_t *p, const yaml_node_t *spec, proxy_rate_limit_t *rl)
{
    int has_hosts = 0;
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "hosts")) {
            has_hosts = 1;
            if (it.val->kind == YAML_SEQ && it.val->n == 0)
                pc_error(p, it.key, "at least one host is required");
            else
                istio_parse_hosts(p, it.val, &rl->hosts, &rl->n_hosts);
        } else if (PC_KEY(it, "routes")) {
            parse_routes(p, it.key, it.val, rl);
        } else if (PC_KEY(it, "local")) {
            parse_local(p, it.key, it.val, &rl->local);
        } else if (PC_KEY(it, "global")) {
            parse_global(p, it.key, it.val, &rl->global);
        } else {
            pc_unknown(p, &it);
        }
    }
    require(p, spec, spec, has_hosts, "hosts");
    if (map_or_null(spec) && !rl->local.given && !rl->global.given)
        pc_error(p, spec, "at least one of local and global is required");
}

/* ---- pass two ---- */

/* Name the document in messages, with the path "spec.<list>[i]". */
static void enter(pctx_t *p, const proxy_rate_limit_t *rl, const char *list, size_t i)
{
    snprintf(p->label, sizeof(p->label), "RateLimit %s", rl->meta.name ? rl->meta.name : "?");
    p->ns = rl->meta.namespace;
    pc_pop(p, 0);
    buf_printf(&p->path, "spec.%s[%zu]", list, i);
}

static int has_http_route(const proxy_virtual_service_t *vs, const char *name)
{
    for (size_t i = 0; i < vs->n_http; i++)
        if (vs->http[i].name != NULL && strcmp(vs->http[i].name, name) == 0)
            return 1;
    return 0;
}

/* Is name an http route of a VirtualService routing se? */
static int route_defined(const proxy_config_t *cfg, const proxy_service_entry_t *se, const char *name)
{
    for (size_t i = 0; i < cfg->n_virtual_services; i++) {
        const proxy_virtual_service_t *vs = &cfg->virtual_services[i];
        for (size_t h = 0; h < vs->n_hosts; h++)
            if (proxy_config_find_service(cfg, vs->hosts[h].host, vs->meta.namespace) == se) {
                if (has_http_route(vs, name))
                    return 1;
                break;
            }
    }
    return 0;
}

static void check_routes(pctx_t *p, proxy_rate_limit_t *rl)
{
    int any = 0;
    for (size_t h = 0; h < rl->n_hosts; h++)
        any |= rl->services[h] != NULL;
    if (!any)
        return; /* the hosts are already reported */
    for (size_t r = 0; r < rl->n_routes; r++) {
        int found = 0;
        for (size_t h = 0; h < rl->n_hosts && !found; h++)
            found = rl->services[h] != NULL && route_defined(p->cfg, rl->services[h], rl->routes[r].name);
        if (found)
            continue;
        buf_t hosts = BUF_INIT;
        for (size_t h = 0; h < rl->n_hosts; h++)
            buf_printf(&hosts, "%s%s", h ? ", " : "", rl->hosts[h].host);
        enter(p, rl, "routes", r);
        pc_error_at(p, rl->routes[r].pos.line, rl->routes[r].pos.col,
                    "route \"%s\" is not defined by any VirtualService for %s %s", rl->routes[r].name,
                    rl->n_hosts > 1 ? "hosts" : "host", hosts.data);
        buf_dispose(&hosts);
    }
}

/* Does other (an earlier document) attach to (se, route)? route NULL: the whole host. */
static int attaches(const proxy_rate_limit_t *other, const proxy_service_entry_t *se, const char *route)
{
    for (size_t h = 0; h < other->n_hosts; h++) {
        if (other->services == NULL || other->services[h] != se)
            continue;
        if (route == NULL && other->n_routes == 0)
            return 1;
        for (size_t r = 0; route != NULL && r < other->n_routes; r++)
            if (strcmp(other->routes[r].name, route) == 0)
                return 1;
    }
    return 0;
}

static void check_pairs(pctx_t *p, proxy_config_t *cfg, size_t i)
{
    proxy_rate_limit_t *rl = &cfg->rate_limits[i];
    for (size_t h = 0; h < rl->n_hosts; h++) {
        const proxy_service_entry_t *se = rl->services[h];
        if (se == NULL)
            continue;
        size_t k;
        for (k = 0; k < h; k++)
            if (rl->services[k] == se)
                break;
        if (k < h) {
            enter(p, rl, "hosts", h);
            pc_error_at(p, rl->hosts[h].pos.line, rl->hosts[h].pos.col,
                        "host \"%s\" names the same ServiceEntry as spec.hosts[%zu]", rl->hosts[h].host, k);
            continue;
        }
        size_t n = rl->n_routes ? rl->n_routes : 1;
        for (size_t r = 0; r < n; r++) {
            const char *route = rl->n_routes ? rl->routes[r].name : NULL;
            for (size_t j = 0; j < i; j++) {
                const proxy_rate_limit_t *other = &cfg->rate_limits[j];
                if (!attaches(other, se, route))
                    continue;
                const char *other_name = other->meta.name ? other->meta.name : "?";
                char at[PROXY_HOST_MAX];
                pc_where(p, other->meta.pos.line, at, sizeof at);
                if (route != NULL) {
                    enter(p, rl, "routes", r);
                    pc_error_at(p, rl->routes[r].pos.line, rl->routes[r].pos.col,
                                "host \"%s\" route \"%s\" already has a RateLimit (%s, %s)", rl->hosts[h].host, route,
                                other_name, at);
                } else {
                    enter(p, rl, "hosts", h);
                    pc_error_at(p, rl->hosts[h].pos.line, rl->hosts[h].pos.col,
                                "host \"%s\" already has a RateLimit for all its routes (%s, %s)", rl->hosts[h].host,
                                other_name, at);
                }
                break;
            }
        }
    }
}

void ratelimit_check_references(pctx_t *p)
{
    proxy_config_t *cfg = p->cfg;
    for (size_t i = 0; i < cfg->n_rate_limits; i++) {
        proxy_rate_limit_t *rl = &cfg->rate_limits[i];
        rl->services = pc_alloc(p, rl->n_hosts ? rl->n_hosts : 1, sizeof(*rl->services));
        for (size_t h = 0; h < rl->n_hosts; h++) {
            const proxy_host_t *host = &rl->hosts[h];
            enter(p, rl, "hosts", h);
            rl->services[h] = pc_bind_host(p, host->host, host->pos);
            if (rl->services[h] == NULL) {
                pc_error_at(p, host->pos.line, host->pos.col, "host \"%s\" is not defined by any ServiceEntry",
                            host->host);
            }
        }
        check_routes(p, rl);
        check_pairs(p, cfg, i);
    }
    p->label[0] = '\0';
    pc_pop(p, 0);
}
