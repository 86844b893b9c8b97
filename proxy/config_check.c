/*
 * config_check: pass two of the loader, the references between documents;
 * see config.h.
 *
 * Pass one has built every document on its own. Here each host is tied to
 * the one ServiceEntry that serves it (a reference's short name read in
 * its document's namespace, as Istio does; see config.h), and the rules
 * that say "one per host" are enforced: one ServiceEntry per host, one
 * DestinationRule and one VirtualService per ServiceEntry. Then every
 * route and mirror destination is checked: its host, its subset (defined
 * by the host's DestinationRule) and its port (exposed by the
 * ServiceEntry, and required when the entry has several). A subset whose
 * labels select no endpoint is only a warning: endpoints come and go.
 *
 * Short names get warnings where they could mean two things: a short
 * reference whose FQDN and itself name two different entries, an entry the app's Host header
 * cannot reach because that name means another entry in the sidecar's
 * namespace, and a VirtualService short host in another namespace than
 * the sidecar's, which Host: NAME from the app does not select.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_parse.h"

static void enter(pctx_t *p, const char *kind, const proxy_meta_t *m, const char *path)
{
    snprintf(p->label, sizeof(p->label), "%s %s", kind, m->name ? m->name : "?");
    p->ns = m->namespace;
    pc_pop(p, 0);
    if (path != NULL && *path)
        buf_append_str(&p->path, path);
}

/* enter with the path "spec.LIST[i]". */
static void enter_item(pctx_t *p, const char *kind, const proxy_meta_t *m, const char *list, size_t i)
{
    enter(p, kind, m, NULL);
    buf_printf(&p->path, "spec.%s[%zu]", list, i);
}

static const char *service_host(const proxy_service_entry_t *se)
{
    return se->n_hosts ? se->hosts[0].host : "?";
}

static const char *service_name(const proxy_service_entry_t *se)
{
    return se->meta.name ? se->meta.name : service_host(se);
}

const proxy_service_entry_t *pc_bind_host(pctx_t *p, const char *name, proxy_pos_t pos)
{
    proxy_host_ref_t ref;
    proxy_config_resolve(p->cfg, name, p->ns, &ref);
    /* a name written with a dot says which entry it means; a short one may mean either */
    if (ref.shadowed != NULL && strchr(name, '.') == NULL)
        pc_warn_at(p, pos.line, pos.col,
                   "host \"%s\" is ambiguous in namespace %s: it names ServiceEntry %s (host \"%s\"), not "
                   "ServiceEntry %s (host \"%s\")",
                   name, p->ns, service_name(ref.service), ref.host->host, service_name(ref.shadowed),
                   ref.shadowed_host->host);
    return ref.service;
}

static void check_destination(pctx_t *p, proxy_destination_t *d)
{
    if (d->host == NULL)
        return;
    pc_pop(p, 0);
    buf_append_str(&p->path, d->path);
    size_t mark = pc_push(p, "host");
    const proxy_service_entry_t *se = pc_bind_host(p, d->host, d->host_pos);
    d->service = se;
    if (se == NULL) {
        pc_error_at(p, d->host_pos.line, d->host_pos.col, "host \"%s\" is not defined by any ServiceEntry", d->host);
        pc_pop(p, mark);
        return;
    }
    pc_pop(p, mark);
    if (d->subset != NULL) {
        mark = pc_push(p, "subset");
        if (proxy_rule_find_subset(proxy_config_find_rule(p->cfg, se), d->subset) == NULL)
            pc_error_at(p, d->subset_pos.line, d->subset_pos.col,
                        "subset \"%s\" is not defined by any DestinationRule for host %s", d->subset, d->host);
        pc_pop(p, mark);
    }
    if (d->port != PROXY_UNSET && se->n_ports > 0) {
        size_t k;
        for (k = 0; k < se->n_ports; k++)
            if (se->ports[k].number == (uint32_t)d->port)
                break;
        if (k == se->n_ports) {
            buf_t list = BUF_INIT;
            for (k = 0; k < se->n_ports; k++)
                buf_printf(&list, "%s%u", k ? ", " : "", se->ports[k].number);
            mark = pc_push(p, "port.number");
            pc_error_at(p, d->port_pos.line, d->port_pos.col, "port %lld is not a port of ServiceEntry %s (it has %s)",
                        (long long)d->port, se->meta.name ? se->meta.name : service_host(se), list.data);
            pc_pop(p, mark);
            buf_dispose(&list);
        }
    } else if (d->port == PROXY_UNSET && se->n_ports > 1) {
        mark = pc_push(p, "port");
        pc_error_at(p, d->pos.line, d->pos.col,
                    "required: ServiceEntry %s has more than one port, so the destination must choose one",
                    se->meta.name ? se->meta.name : service_host(se));
        pc_pop(p, mark);
    }
}

/* The entry with the exact host name, or NULL. */
static const proxy_service_entry_t *entry_with_host(const proxy_config_t *cfg, const char *name,
                                                    const proxy_host_t **host)
{
    for (size_t i = 0; i < cfg->n_services; i++)
        for (size_t j = 0; j < cfg->services[i].n_hosts; j++)
            if (strcmp(cfg->services[i].hosts[j].fqdn, name) == 0) {
                *host = &cfg->services[i].hosts[j];
                return &cfg->services[i];
            }
    return NULL;
}

/*
 * The app's Host header is read in the sidecar's (the Proxy's) namespace
 * (router.h): warn where a short name does not reach what it looks like.
 */
static void check_sidecar_hosts(pctx_t *p)
{
    proxy_config_t *cfg = p->cfg;
    const char *pns = cfg->proxy.meta.namespace;
    if (pns == NULL)
        return;
    char forms[PROXY_HOST_FORMS][PROXY_HOST_MAX];
    /* an entry host that, sent as the Host header, names another entry first */
    for (size_t i = 0; i < cfg->n_services; i++) {
        proxy_service_entry_t *se = &cfg->services[i];
        for (size_t j = 0; j < se->n_hosts; j++) {
            const proxy_host_t *h = &se->hosts[j];
            size_t n = proxy_host_forms(h->fqdn, strlen(h->fqdn), pns, 1, forms);
            const proxy_service_entry_t *first = NULL;
            const proxy_host_t *first_host = NULL;
            for (size_t f = 0; f < n && first == NULL; f++)
                first = entry_with_host(cfg, forms[f], &first_host);
            if (first == NULL || first == se)
                continue;
            enter_item(p, "ServiceEntry", &se->meta, "hosts", j);
            pc_warn_at(p, h->pos.line, h->pos.col,
                       "the app's Host: %s reaches ServiceEntry %s (host \"%s\"), not this entry: the sidecar is "
                       "in namespace %s, where %s means %s",
                       h->host, service_name(first), first_host->host, pns, h->host, first_host->fqdn);
        }
    }
    /* a short VirtualService host in another namespace than the sidecar's */
    for (size_t i = 0; i < cfg->n_virtual_services; i++) {
        proxy_virtual_service_t *vs = &cfg->virtual_services[i];
        if (strcmp(vs->meta.namespace, pns) == 0)
            continue;
        for (size_t h = 0; h < vs->n_hosts; h++) {
            const proxy_host_t *host = &vs->hosts[h];
            if (strchr(host->host, '.') != NULL || strcmp(host->host, "*") == 0)
                continue;
            enter_item(p, "VirtualService", &vs->meta, "hosts", h);
            pc_warn_at(p, host->pos.line, host->pos.col,
                       "short host \"%s\" means %s (the VirtualService's namespace is %s); the sidecar is in "
                       "namespace %s, so the app's Host: %s does not select this VirtualService (Host: %s.%s does)",
                       host->host, host->fqdn, vs->meta.namespace, pns, host->host, host->host, vs->meta.namespace);
        }
    }
}

void istio_check_references(pctx_t *p)
{
    proxy_config_t *cfg = p->cfg;
    /* one ServiceEntry per host */
    for (size_t i = 0; i < cfg->n_services; i++) {
        proxy_service_entry_t *se = &cfg->services[i];
        for (size_t j = 0; j < se->n_hosts; j++) {
            for (size_t a = 0; a <= i; a++) {
                const proxy_service_entry_t *other = &cfg->services[a];
                size_t lim = a == i ? j : other->n_hosts;
                size_t b;
                for (b = 0; b < lim; b++)
                    if (strcmp(other->hosts[b].fqdn, se->hosts[j].fqdn) == 0)
                        break;
                if (b < lim) {
                    enter_item(p, "ServiceEntry", &se->meta, "hosts", j);
                    char at[PROXY_HOST_MAX];
                    pc_error_at(p, se->hosts[j].pos.line, se->hosts[j].pos.col,
                                "host \"%s\" is already defined by ServiceEntry %s (%s)", se->hosts[j].host,
                                other->meta.name ? other->meta.name : "?",
                                pc_where(p, other->hosts[b].pos.line, at, sizeof at));
                    break;
                }
            }
        }
    }
    /* DestinationRules: the host's entry, one rule per entry, subsets that select endpoints */
    for (size_t i = 0; i < cfg->n_destination_rules; i++) {
        proxy_destination_rule_t *dr = &cfg->destination_rules[i];
        if (dr->host.host == NULL)
            continue;
        enter(p, "DestinationRule", &dr->meta, "spec.host");
        const proxy_service_entry_t *se = pc_bind_host(p, dr->host.host, dr->host.pos);
        if (se == NULL) {
            pc_error_at(p, dr->host.pos.line, dr->host.pos.col, "host \"%s\" is not defined by any ServiceEntry",
                        dr->host.host);
            continue;
        }
        const proxy_destination_rule_t *first = proxy_config_find_rule(cfg, se);
        if (first != NULL) {
            char at[PROXY_HOST_MAX];
            pc_error_at(p, dr->host.pos.line, dr->host.pos.col,
                        "ServiceEntry %s already has a DestinationRule (%s, %s)", se->meta.name,
                        first->meta.name ? first->meta.name : "?", pc_where(p, first->host.pos.line, at, sizeof at));
            continue;
        }
        dr->service = se;
        for (size_t s = 0; s < dr->n_subsets && se->n_endpoints > 0; s++) {
            size_t e;
            for (e = 0; e < se->n_endpoints; e++)
                if (proxy_subset_selects(&dr->subsets[s], &se->endpoints[e]))
                    break;
            if (e < se->n_endpoints)
                continue;
            enter_item(p, "DestinationRule", &dr->meta, "subsets", s);
            pc_warn_at(p, dr->subsets[s].pos.line, dr->subsets[s].pos.col,
                       "subset \"%s\" selects no endpoint of ServiceEntry %s",
                       dr->subsets[s].name ? dr->subsets[s].name : "?", se->meta.name ? se->meta.name : "?");
        }
    }
    /* VirtualServices: hosts, one per entry, and every destination */
    for (size_t i = 0; i < cfg->n_virtual_services; i++) {
        proxy_virtual_service_t *vs = &cfg->virtual_services[i];
        for (size_t h = 0; h < vs->n_hosts; h++) {
            enter_item(p, "VirtualService", &vs->meta, "hosts", h);
            const proxy_host_t *host = &vs->hosts[h];
            const proxy_service_entry_t *se = pc_bind_host(p, host->host, host->pos);
            if (se == NULL) {
                pc_error_at(p, host->pos.line, host->pos.col, "host \"%s\" is not defined by any ServiceEntry",
                            host->host);
                continue;
            }
            for (size_t a = 0; a <= i; a++) {
                const proxy_virtual_service_t *other = &cfg->virtual_services[a];
                size_t lim = a == i ? h : other->n_hosts;
                size_t b;
                for (b = 0; b < lim; b++)
                    if (proxy_config_find_service(cfg, other->hosts[b].host, other->meta.namespace) == se)
                        break;
                if (b < lim) {
                    char at[PROXY_HOST_MAX];
                    pc_error_at(p, host->pos.line, host->pos.col,
                                "ServiceEntry %s is already routed by VirtualService %s (%s)", se->meta.name,
                                other->meta.name ? other->meta.name : "?",
                                pc_where(p, other->hosts[b].pos.line, at, sizeof at));
                    break;
                }
            }
        }
        enter(p, "VirtualService", &vs->meta, NULL);
        for (size_t r = 0; r < vs->n_http; r++) {
            proxy_http_route_t *route = &vs->http[r];
            for (size_t d = 0; d < route->n_routes; d++)
                check_destination(p, &route->routes[d].destination);
            for (size_t m = 0; m < route->n_mirrors; m++)
                check_destination(p, &route->mirrors[m].destination);
        }
    }
    check_sidecar_hosts(p);
    p->label[0] = '\0';
    pc_pop(p, 0);
}
