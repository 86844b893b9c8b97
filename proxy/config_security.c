/*
 * config_security: the Proxy's spec.identity and `kind: PeerAuthentication`
 * (security.istio.io/v1), both passes.
 *
 * PeerAuthentication is read as Istio reads it: a document in the root
 * namespace without a selector is mesh-wide, one in the proxy's namespace
 * without a selector covers the namespace, one with selector.matchLabels
 * matching the Proxy's labels covers this workload; the narrowest level
 * that sets a mode (UNSET inherits) wins, then the workload policy's
 * portLevelMtls entry for the app's port (the inbound forwardTo port), and
 * with nothing set the mode is PERMISSIVE. A second document at one level
 * is not used, with a warning (Istio takes the oldest).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

#define IDENTITY_TTL_MIN_MS 2000ull                    /* a shorter certificate could not be renewed in time */
#define IDENTITY_TTL_MAX_MS (90ull * 24 * 3600 * 1000) /* 90 days */
#define IDENTITY_TTL_DEFAULT_MS (24ull * 3600 * 1000)  /* Istio's workload certificate lifetime */

static const char *const mtls_modes[] = {"UNSET", "PERMISSIVE", "STRICT", "DISABLE", NULL};

/* A trust domain as SPIFFE allows it: lowercase letters, digits, '.', '-' and '_', at most 255 bytes. */
static int valid_trust_domain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* https://HOST:PORT, nothing after the port but an optional '/'. */
static const char *ca_address(pctx_t *p, const yaml_node_t *v)
{
    const char *s = pc_string(p, v);
    if (s == NULL)
        return NULL;
    const char *hp = strncmp(s, "https://", 8) == 0 ? s + 8 : NULL;
    const char *colon = hp != NULL ? strrchr(hp, ':') : NULL;
    char *end = NULL;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    if (hp == NULL || colon == NULL || colon == hp || end == colon + 1 || port < 1 || port > 65535 ||
        (*end != '\0' && strcmp(end, "/") != 0) || strlen(s) > 1000 || strpbrk(s, " ?#@") != NULL) {
        pc_error(p, v, "expected the mesh CA as https://HOST:PORT (outriderctl ca serve), got \"%s\"", s);
        return NULL;
    }
    return s;
}

void security_parse_identity(pctx_t *p, const yaml_node_t *v, proxy_identity_t *id, const proxy_meta_t *meta)
{
    id->given = 1;
    id->pos = (proxy_pos_t){v->line, v->col};
    id->service_account = "default";
    id->trust_domain = "cluster.local";
    id->certificate_ttl_ms = IDENTITY_TTL_DEFAULT_MS;
    const yaml_node_t *chain_node = NULL, *key_node = NULL, *ca_node = NULL, *token_node = NULL, *roots_node = NULL;
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "serviceAccount")) {
            const char *s = pc_string(p, it.val);
            if (s != NULL && !pc_dns1123(s, 253))
                pc_error(p, it.val,
                         "\"%s\" is not a valid service account name (lowercase letters, digits, '-' and "
                         "'.', at most 253)",
                         s);
            else if (s != NULL)
                id->service_account = s;
        } else if (PC_KEY(it, "trustDomain")) {
            const char *s = pc_string(p, it.val);
            if (s != NULL && !valid_trust_domain(s))
                pc_error(p, it.val, "\"%s\" is not a valid trust domain (lowercase letters, digits, '.', '-', '_')", s);
            else if (s != NULL)
                id->trust_domain = s;
        } else if (PC_KEY(it, "trustDomainAliases")) {
            long n = pc_seq(p, it.val);
            id->trust_domain_aliases.items = n > 0 ? pc_alloc(p, (size_t)n, sizeof(char *)) : NULL;
            for (long i = 0; i < n; i++) {
                const char *s = pc_string(p, it.val->items[i]);
                if (s != NULL && !valid_trust_domain(s))
                    pc_error(p, it.val->items[i],
                             "\"%s\" is not a valid trust domain (lowercase letters, digits, '.', '-', '_')", s);
                else if (s != NULL)
                    id->trust_domain_aliases.items[id->trust_domain_aliases.n++] = s;
            }
        } else if (PC_KEY(it, "rootCertificates")) {
            roots_node = it.val;
            id->root_certificates = pc_readable_file(p, it.val);
        } else if (PC_KEY(it, "certificateChain")) {
            chain_node = it.val;
            id->certificate_chain = pc_readable_file(p, it.val);
        } else if (PC_KEY(it, "privateKey")) {
            key_node = it.val;
            id->private_key = pc_readable_file(p, it.val);
        } else if (PC_KEY(it, "caAddress")) {
            ca_node = it.val;
            id->ca_address = ca_address(p, it.val);
        } else if (PC_KEY(it, "tokenFile")) {
            token_node = it.val;
            id->token_file = pc_readable_file(p, it.val);
        } else if (PC_KEY(it, "certificateTtl")) {
            int64_t ms;
            if (pc_duration(p, it.val, &ms) == 0) {
                if ((uint64_t)ms < IDENTITY_TTL_MIN_MS || (uint64_t)ms > IDENTITY_TTL_MAX_MS)
                    pc_error(p, it.val, "must be between 2s and 90 days (2160h)");
                else
                    id->certificate_ttl_ms = (uint64_t)ms;
            }
        } else {
            pc_unknown(p, &it);
        }
    }
    if (v->kind != YAML_MAP)
        return;
    if (roots_node == NULL)
        pc_missing(p, v, "rootCertificates");
    int files = chain_node != NULL || key_node != NULL, ca = ca_node != NULL || token_node != NULL;
    if (files && ca)
        pc_error(p, v,
                 "either certificate files (certificateChain, privateKey) or the mesh CA (caAddress, "
                 "tokenFile), not both");
    else if (!files && !ca)
        pc_error(p, v,
                 "where the certificate comes from: certificateChain and privateKey, or caAddress and "
                 "tokenFile (outriderctl ca serve)");
    else if (files && (chain_node == NULL || key_node == NULL))
        pc_missing(p, v, chain_node == NULL ? "certificateChain" : "privateKey");
    else if (ca && (ca_node == NULL || token_node == NULL))
        pc_missing(p, v, ca_node == NULL ? "caAddress" : "tokenFile");
    const char *ns = meta->namespace != NULL ? meta->namespace : "default";
    size_t n = strlen(id->trust_domain) + strlen(ns) + strlen(id->service_account) + 32;
    char *sid = pc_alloc(p, n, 1);
    snprintf(sid, n, "spiffe://%s/ns/%s/sa/%s", id->trust_domain, ns, id->service_account);
    id->spiffe_id = sid;
    id->peer_ids = pc_alloc(p, id->trust_domain_aliases.n + 1, sizeof(char *));
    for (size_t i = 0; i <= id->trust_domain_aliases.n; i++) {
        const char *td = i == 0 ? id->trust_domain : id->trust_domain_aliases.items[i - 1];
        char *peers = pc_alloc(p, strlen(td) + 12, 1);
        sprintf(peers, "spiffe://%s/", td);
        id->peer_ids[id->n_peer_ids++] = peers;
    }
}

/* ---- the security.istio.io kinds' shared fields ---- */

int pc_selector(pctx_t *p, const yaml_node_t *v, proxy_kv_list_t *labels)
{
    PC_FIELDS(p, v, s)
    {
        if (PC_KEY(s, "matchLabels"))
            pc_kv_map(p, s.val, labels, 0);
        else
            pc_unknown(p, &s);
    }
    return labels->n > 0;
}

void pc_target_ref(pctx_t *p, const pc_iter_t *it)
{
    pc_error(p, it->key, "targetRef selects waypoints and gateways; a sidecar is chosen with selector.matchLabels");
}

/* ---- PeerAuthentication, pass one ---- */

static void parse_port_level(pctx_t *p, const yaml_node_t *v, proxy_peer_authentication_t *pa)
{
    if (v->kind != YAML_MAP) {
        pc_error(p, v, "expected a map of port numbers to {mode: ...}");
        return;
    }
    pa->ports = pc_alloc(p, v->n ? v->n : 1, sizeof(proxy_port_mtls_t));
    PC_FIELDS(p, v, it)
    {
        char *end = NULL;
        long port = strtol(it.k, &end, 10);
        if (it.k[0] == '\0' || *end != '\0' || port < 1 || port > 65535) {
            pc_error(p, it.key, "a port number 1-65535 is expected as the key, got \"%s\"", it.k);
            continue;
        }
        proxy_port_mtls_t *pm = &pa->ports[pa->n_ports];
        pm->port = (uint32_t)port;
        pm->pos = (proxy_pos_t){it.key->line, it.key->col};
        for (size_t i = 0; i < pa->n_ports; i++)
            if (pa->ports[i].port == pm->port)
                pc_error(p, it.key, "port %ld is listed twice", port);
        int have_mode = 0;
        PC_FIELDS(p, it.val, m)
        {
            if (PC_KEY(m, "mode")) {
                int k = pc_enum(p, m.val, mtls_modes);
                if (k >= 0)
                    pm->mode = (enum proxy_mtls_mode)k;
                have_mode = 1;
            } else {
                pc_unknown(p, &m);
            }
        }
        if (!have_mode && it.val->kind == YAML_MAP)
            pc_missing(p, it.val, "mode");
        pa->n_ports++;
    }
}

void security_parse_peer_authentication(pctx_t *p, const yaml_node_t *spec, proxy_peer_authentication_t *pa)
{
    pa->mode_pos = pa->meta.pos;
    const yaml_node_t *ports_node = NULL;
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "selector")) {
            pa->has_selector = pc_selector(p, it.val, &pa->selector);
        } else if (PC_KEY(it, "mtls")) {
            PC_FIELDS(p, it.val, m)
            {
                if (PC_KEY(m, "mode")) {
                    int k = pc_enum(p, m.val, mtls_modes);
                    if (k >= 0)
                        pa->mode = (enum proxy_mtls_mode)k;
                    pa->mode_pos = (proxy_pos_t){m.val->line, m.val->col};
                } else {
                    pc_unknown(p, &m);
                }
            }
        } else if (PC_KEY(it, "portLevelMtls")) {
            ports_node = it.key;
            parse_port_level(p, it.val, pa);
        } else if (PC_KEY(it, "targetRef") || PC_KEY(it, "targetRefs")) {
            pc_target_ref(p, &it);
        } else {
            pc_unknown(p, &it);
        }
    }
    if (ports_node != NULL && !pa->has_selector) {
        size_t mark = pc_push(p, "portLevelMtls");
        pc_error(p, ports_node,
                 "portLevelMtls applies to the workloads a selector.matchLabels chooses, as Istio "
                 "requires");
        pc_pop(p, mark);
    }
}

/* ---- PeerAuthentication, pass two ---- */

static void enter(pctx_t *p, const proxy_peer_authentication_t *pa)
{
    snprintf(p->label, sizeof(p->label), "PeerAuthentication %s", pa->meta.name ? pa->meta.name : "?");
    p->ns = pa->meta.namespace;
    pc_pop(p, 0);
}

static const proxy_peer_authentication_t *pick(pctx_t *p, const char *ns, int workload, const proxy_kv_list_t *labels)
{
    const proxy_config_t *cfg = p->cfg;
    const proxy_peer_authentication_t *first = NULL;
    for (size_t i = 0; i < cfg->n_peer_authentications; i++) {
        const proxy_peer_authentication_t *pa = &cfg->peer_authentications[i];
        if (pa->meta.namespace == NULL || strcmp(pa->meta.namespace, ns) != 0 || pa->has_selector != workload)
            continue;
        if (workload && !pc_selects(&pa->selector, labels))
            continue;
        if (first == NULL) {
            first = pa;
            continue;
        }
        enter(p, pa);
        char at[PROXY_HOST_MAX];
        pc_warn_at(p, pa->meta.pos.line, pa->meta.pos.col,
                   workload ? "not used: PeerAuthentication %s (%s) already selects this proxy; Istio takes one"
                            : "not used: PeerAuthentication %s (%s) is already the one without a selector in "
                              "namespace %s; Istio takes one",
                   first->meta.name ? first->meta.name : "?", pc_where(p, first->meta.pos.line, at, sizeof at), ns);
    }
    return first;
}

void security_resolve(pctx_t *p)
{
    proxy_config_t *cfg = p->cfg;
    const proxy_spec_t *ps = &cfg->proxy;
    proxy_mtls_effective_t *eff = &cfg->mtls;
    memset(eff, 0, sizeof(*eff));
    eff->mode = PROXY_MTLS_PERMISSIVE;
    const char *ns = ps->meta.namespace ? ps->meta.namespace : "default";
    const char *root = ps->root_namespace ? ps->root_namespace : "istio-system";
    eff->levels[0] = pick(p, root, 0, NULL);
    eff->levels[1] = strcmp(ns, root) != 0 ? pick(p, ns, 0, NULL) : NULL;
    eff->levels[2] = pick(p, ns, 1, &ps->meta.labels);
    const proxy_pos_t *at = NULL;
    for (int l = 0; l < 3; l++) {
        const proxy_peer_authentication_t *pa = eff->levels[l];
        if (pa != NULL && pa->mode != PROXY_MTLS_UNSET) {
            eff->mode = pa->mode;
            eff->decided = pa;
            at = &pa->mode_pos;
        }
    }
    const proxy_peer_authentication_t *wl = eff->levels[2];
    for (size_t i = 0; wl != NULL && i < wl->n_ports; i++) {
        if (ps->inbound_forward_to.text == NULL || wl->ports[i].port != ps->inbound_forward_to.port)
            continue;
        if (wl->ports[i].mode != PROXY_MTLS_UNSET) {
            eff->mode = wl->ports[i].mode;
            eff->decided = wl;
            at = &wl->ports[i].pos;
        }
    }
    if (eff->mode == PROXY_MTLS_STRICT && !ps->identity.given && ps->inbound_forward_to.text != NULL) {
        enter(p, eff->decided);
        pc_error_at(p, at->line, at->col,
                    "mode STRICT accepts only mutual TLS, so this sidecar needs a certificate: give the Proxy "
                    "spec.identity");
    }
    p->label[0] = '\0';
    pc_pop(p, 0);
}
