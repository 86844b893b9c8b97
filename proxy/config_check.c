/*
 * config_check: pass two of the loader, the references between documents;
 * see config.h.
 *
 * Pass one has built every document on its own. Here each host is tied to
 * the one ServiceEntry that serves it (short names expanded with the
 * document's namespace, as Istio does), and the rules that say "one per
 * host" are enforced: one ServiceEntry per host, one DestinationRule and
 * one VirtualService per ServiceEntry. Then every route and mirror
 * destination is checked: its host, its subset (defined by the host's
 * DestinationRule) and its port (exposed by the ServiceEntry, and required
 * when the entry has several). A subset whose labels select no endpoint is
 * only a warning: endpoints come and go.
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

static const char *service_host(const proxy_service_entry_t *se)
{
    return se->n_hosts ? se->hosts[0].host : "?";
}

static void check_destination(pctx_t *p, proxy_destination_t *d)
{
    if (d->host == NULL)
        return;
    pc_pop(p, 0);
    buf_append_str(&p->path, d->path);
    size_t mark = pc_push(p, "host");
    const proxy_service_entry_t *se = proxy_config_find_service(p->cfg, d->host, p->ns);
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
                    char path[64];
                    snprintf(path, sizeof(path), "spec.hosts[%zu]", j);
                    enter(p, "ServiceEntry", &se->meta, path);
                    pc_error_at(p, se->hosts[j].pos.line, se->hosts[j].pos.col,
                                "host \"%s\" is already defined by ServiceEntry %s (line %d)", se->hosts[j].host,
                                other->meta.name ? other->meta.name : "?", other->hosts[b].pos.line);
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
        const proxy_service_entry_t *se = proxy_config_find_service(cfg, dr->host.host, p->ns);
        if (se == NULL) {
            pc_error_at(p, dr->host.pos.line, dr->host.pos.col, "host \"%s\" is not defined by any ServiceEntry",
                        dr->host.host);
            continue;
        }
        const proxy_destination_rule_t *first = proxy_config_find_rule(cfg, se);
        if (first != NULL) {
            pc_error_at(p, dr->host.pos.line, dr->host.pos.col,
                        "ServiceEntry %s already has a DestinationRule (%s, line %d)", se->meta.name,
                        first->meta.name ? first->meta.name : "?", first->host.pos.line);
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
            char path[64];
            snprintf(path, sizeof(path), "spec.subsets[%zu]", s);
            enter(p, "DestinationRule", &dr->meta, path);
            pc_warn_at(p, dr->subsets[s].pos.line, dr->subsets[s].pos.col,
                       "subset \"%s\" selects no endpoint of ServiceEntry %s",
                       dr->subsets[s].name ? dr->subsets[s].name : "?", se->meta.name ? se->meta.name : "?");
        }
    }
    /* VirtualServices: hosts, one per entry, and every destination */
    for (size_t i = 0; i < cfg->n_virtual_services; i++) {
        proxy_virtual_service_t *vs = &cfg->virtual_services[i];
        for (size_t h = 0; h < vs->n_hosts; h++) {
            char path[64];
            snprintf(path, sizeof(path), "spec.hosts[%zu]", h);
            enter(p, "VirtualService", &vs->meta, path);
            const proxy_host_t *host = &vs->hosts[h];
            const proxy_service_entry_t *se = proxy_config_find_service(cfg, host->host, p->ns);
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
                    pc_error_at(p, host->pos.line, host->pos.col,
                                "ServiceEntry %s is already routed by VirtualService %s (line %d)", se->meta.name,
                                other->meta.name ? other->meta.name : "?", other->hosts[b].pos.line);
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
    p->label[0] = '\0';
    pc_pop(p, 0);
}
