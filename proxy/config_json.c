/*
 * config_json: encode the configuration model as JSON; see config_json.h.
 *
 * A tiny writer keeps track of whether a comma is due, so each field is one
 * call. Output is deterministic (model order), which the tests rely on.
 */
#include "config_json.h"

#include <stdio.h>
#include <string.h>

#include "jwt.h"
#include "jwks_fetch.h"

typedef struct jw {
    buf_t *b;
    int need_comma;
} jw_t;

static void sep(jw_t *w)
{
    if (w->need_comma)
        buf_append_char(w->b, ',');
    w->need_comma = 0;
}

static void key(jw_t *w, const char *k)
{
    sep(w);
    if (k != NULL) {
        buf_append_char(w->b, '"');
        buf_append_json_escaped(w->b, k, strlen(k));
        buf_append_str(w->b, "\":");
    }
}

static void open_(jw_t *w, const char *k, char c)
{
    key(w, k);
    buf_append_char(w->b, c);
    w->need_comma = 0;
}

static void close_(jw_t *w, char c)
{
    buf_append_char(w->b, c);
    w->need_comma = 1;
}

static void str(jw_t *w, const char *k, const char *v)
{
    if (v == NULL)
        return;
    key(w, k);
    buf_append_char(w->b, '"');
    buf_append_json_escaped(w->b, v, strlen(v));
    buf_append_char(w->b, '"');
    w->need_comma = 1;
}

static void num(jw_t *w, const char *k, int64_t v)
{
    key(w, k);
    buf_append_i64(w->b, v);
    w->need_comma = 1;
}

static void opt_num(jw_t *w, const char *k, int64_t v)
{
    if (v != PROXY_UNSET)
        num(w, k, v);
}

static void dbl(jw_t *w, const char *k, double v)
{
    key(w, k);
    buf_printf(w->b, "%.17g", v);
    w->need_comma = 1;
}

static void boolean(jw_t *w, const char *k, int v)
{
    key(w, k);
    buf_append_str(w->b, v ? "true" : "false");
    w->need_comma = 1;
}

static void duration(jw_t *w, const char *k, int64_t ms)
{
    if (ms == PROXY_UNSET)
        return;
    char text[32];
    if (ms % 1000 == 0)
        snprintf(text, sizeof(text), "%llds", (long long)(ms / 1000));
    else
        snprintf(text, sizeof(text), "%lldms", (long long)ms);
    str(w, k, text);
}

static void kv_map(jw_t *w, const char *k, const proxy_kv_list_t *l)
{
    if (l->n == 0)
        return;
    open_(w, k, '{');
    for (size_t i = 0; i < l->n; i++)
        str(w, l->items[i].key, l->items[i].value);
    close_(w, '}');
}

static void str_list(jw_t *w, const char *k, const proxy_str_list_t *l)
{
    if (l->n == 0)
        return;
    open_(w, k, '[');
    for (size_t i = 0; i < l->n; i++)
        str(w, NULL, l->items[i]);
    close_(w, ']');
}

static void hosts(jw_t *w, const char *k, const proxy_host_t *h, size_t n)
{
    open_(w, k, '[');
    for (size_t i = 0; i < n; i++)
        str(w, NULL, h[i].host);
    close_(w, ']');
}

static void metadata(jw_t *w, const proxy_meta_t *m)
{
    open_(w, "metadata", '{');
    str(w, "name", m->name);
    str(w, "namespace", m->namespace);
    kv_map(w, "labels", &m->labels);
    close_(w, '}');
}

static void document(jw_t *w, const char *api, const char *kind, const proxy_meta_t *m)
{
    open_(w, NULL, '{');
    str(w, "apiVersion", api);
    str(w, "kind", kind);
    metadata(w, m);
}

/* ---- Proxy ---- */

static void ports(jw_t *w, const proxy_port_t *ps, size_t n)
{
    open_(w, "ports", '[');
    for (size_t i = 0; i < n; i++) {
        const proxy_port_t *p = &ps[i];
        open_(w, NULL, '{');
        num(w, "number", p->number);
        str(w, "name", p->name);
        str(w, "protocol", p->protocol);
        opt_num(w, "targetPort", p->target_port);
        close_(w, '}');
    }
    close_(w, ']');
}

static void listener(jw_t *w, const char *k, const proxy_hostport_t *hp, const char *k2, const proxy_hostport_t *hp2,
                     const proxy_port_t *app_ports, size_t n_app_ports)
{
    if (hp->text == NULL && (hp2 == NULL || hp2->text == NULL))
        return;
    open_(w, k, '{');
    str(w, "listen", hp->text);
    if (hp2 != NULL)
        str(w, k2, hp2->text);
    if (n_app_ports > 0)
        ports(w, app_ports, n_app_ports);
    close_(w, '}');
}

static void proxy_doc(jw_t *w, const proxy_spec_t *ps)
{
    open_(w, "proxy", '{');
    str(w, "apiVersion", "outrider.io/v1alpha1");
    str(w, "kind", "Proxy");
    metadata(w, &ps->meta);
    open_(w, "spec", '{');
    listener(w, "inbound", &ps->inbound_listen, "forwardTo", &ps->inbound_forward_to, ps->inbound_ports,
             ps->n_inbound_ports);
    listener(w, "outbound", &ps->outbound_listen, NULL, NULL, NULL, 0);
    listener(w, "admin", &ps->admin_listen, NULL, NULL, NULL, 0);
    open_(w, "telemetry", '{');
    str(w, "otlpEndpoint", ps->otlp_endpoint);
    str(w, "caFile", ps->otlp_ca_file);
    str(w, "tokenFile", ps->otlp_token_file); /* the file's name only: never the token */
    if (ps->otlp_identity_cert) {
        str(w, "clientCertificate", "identity");
    } else if (ps->otlp_cert_file != NULL) {
        open_(w, "clientCertificate", '{');
        str(w, "certFile", ps->otlp_cert_file);
        str(w, "keyFile", ps->otlp_key_file);
        close_(w, '}');
    }
    dbl(w, "samplingPercent", ps->sampling_percent);
    duration(w, "flushInterval", (int64_t)ps->flush_interval_ms);
    boolean(w, "accessLog", ps->access_log);
    close_(w, '}');
    open_(w, "limits", '{');
    num(w, "maxHeaderBytes", (int64_t)ps->max_header_bytes);
    num(w, "maxHeaders", (int64_t)ps->max_headers);
    num(w, "maxUriBytes", (int64_t)ps->max_uri_bytes);
    duration(w, "headerTimeout", (int64_t)ps->header_timeout_ms);
    duration(w, "idleTimeout", (int64_t)ps->idle_timeout_ms);
    num(w, "retryBufferBytes", (int64_t)ps->retry_buffer_bytes);
    duration(w, "lingerTime", (int64_t)ps->linger_time_ms);
    duration(w, "lingerTimeout", (int64_t)ps->linger_timeout_ms);
    num(w, "lingerBytes", (int64_t)ps->linger_bytes);
    close_(w, '}');
    duration(w, "drainTimeout", (int64_t)ps->drain_timeout_ms);
    num(w, "workers", ps->workers);
    num(w, "numTrustedProxies", ps->num_trusted_proxies);
    str(w, "rootNamespace", ps->root_namespace);
    open_(w, "jwks", '{');
    str(w, "caFile", ps->jwks_ca_file);
    duration(w, "refreshInterval", (int64_t)(ps->jwks_refresh_ms ? ps->jwks_refresh_ms : JWKS_REFRESH_DEFAULT_MS));
    close_(w, '}');
    duration(w, "tlsHandshakeTimeout", (int64_t)ps->tls_handshake_timeout_ms);
    str(w, "interceptionMode", ps->interception_redirect ? "REDIRECT" : "NONE");
    open_(w, "outboundTrafficPolicy", '{');
    str(w, "mode", ps->registry_only ? "REGISTRY_ONLY" : "ALLOW_ANY");
    close_(w, '}');
    if (ps->identity.given) {
        /* file names and the CA's address only: never a key or a token */
        const proxy_identity_t *id = &ps->identity;
        open_(w, "identity", '{');
        str(w, "spiffeId", id->spiffe_id);
        str(w, "serviceAccount", id->service_account);
        str(w, "trustDomain", id->trust_domain);
        if (id->trust_domain_aliases.n > 0)
            str_list(w, "trustDomainAliases", &id->trust_domain_aliases);
        str(w, "rootCertificates", id->root_certificates);
        str(w, "certificateChain", id->certificate_chain);
        str(w, "privateKey", id->private_key);
        str(w, "caAddress", id->ca_address);
        str(w, "tokenFile", id->token_file);
        duration(w, "certificateTtl", (int64_t)id->certificate_ttl_ms);
        close_(w, '}');
    }
    close_(w, '}');
    close_(w, '}');
}

/* ---- ServiceEntry ---- */

static const char *const resolution_names[] = {"NONE", "STATIC", "DNS"};
static const char *const location_names[] = {"MESH_EXTERNAL", "MESH_INTERNAL"};

static void service_entry(jw_t *w, const proxy_service_entry_t *se)
{
    document(w, "networking.istio.io/v1", "ServiceEntry", &se->meta);
    open_(w, "spec", '{');
    hosts(w, "hosts", se->hosts, se->n_hosts);
    ports(w, se->ports, se->n_ports);
    str(w, "resolution", resolution_names[se->resolution]);
    str(w, "location", location_names[se->location]);
    open_(w, "endpoints", '[');
    for (size_t i = 0; i < se->n_endpoints; i++) {
        const proxy_endpoint_t *ep = &se->endpoints[i];
        open_(w, NULL, '{');
        str(w, "address", ep->address);
        if (ep->ports.n > 0) {
            open_(w, "ports", '{');
            for (size_t k = 0; k < ep->ports.n; k++)
                num(w, ep->ports.items[k].key, ep->port_numbers[k]);
            close_(w, '}');
        }
        kv_map(w, "labels", &ep->labels);
        opt_num(w, "weight", ep->weight);
        close_(w, '}');
    }
    close_(w, ']');
    if (se->subject_alt_names.n > 0)
        str_list(w, "subjectAltNames", &se->subject_alt_names);
    str_list(w, "addresses", &se->addresses);
    close_(w, '}');
    close_(w, '}');
}

/* ---- VirtualService ---- */

static const char *const match_names[] = {NULL, "exact", "prefix", "regex"};

static void string_match(jw_t *w, const char *k, const proxy_string_match_t *m)
{
    if (m->kind == PROXY_MATCH_NONE)
        return;
    open_(w, k, '{');
    str(w, match_names[m->kind], m->value);
    close_(w, '}');
}

static void named_matches(jw_t *w, const char *k, const proxy_named_match_t *m, size_t n)
{
    if (n == 0)
        return;
    open_(w, k, '{');
    for (size_t i = 0; i < n; i++)
        string_match(w, m[i].name, &m[i].match);
    close_(w, '}');
}

static void header_ops(jw_t *w, const char *k, const proxy_header_ops_t *o)
{
    if (o->set.n == 0 && o->add.n == 0 && o->remove.n == 0)
        return;
    open_(w, k, '{');
    kv_map(w, "set", &o->set);
    kv_map(w, "add", &o->add);
    str_list(w, "remove", &o->remove);
    close_(w, '}');
}

static void headers(jw_t *w, const proxy_headers_t *h)
{
    if (h->request.set.n + h->request.add.n + h->request.remove.n + h->response.set.n + h->response.add.n +
            h->response.remove.n ==
        0)
        return;
    open_(w, "headers", '{');
    header_ops(w, "request", &h->request);
    header_ops(w, "response", &h->response);
    close_(w, '}');
}

static void destination(jw_t *w, const char *k, const proxy_destination_t *d)
{
    open_(w, k, '{');
    str(w, "host", d->host);
    str(w, "subset", d->subset);
    if (d->port != PROXY_UNSET) {
        open_(w, "port", '{');
        num(w, "number", d->port);
        close_(w, '}');
    }
    close_(w, '}');
}

static void percent(jw_t *w, const char *k, double v)
{
    open_(w, k, '{');
    dbl(w, "value", v);
    close_(w, '}');
}

static const char *const retry_on_names[] = {"5xx",           "gateway-error",         "reset", "connect-failure",
                                             "retriable-4xx", "retriable-status-codes"};

static void http_route(jw_t *w, const proxy_http_route_t *r)
{
    open_(w, NULL, '{');
    str(w, "name", r->name);
    if (r->n_matches > 0) {
        open_(w, "match", '[');
        for (size_t i = 0; i < r->n_matches; i++) {
            const proxy_http_match_t *m = &r->matches[i];
            open_(w, NULL, '{');
            str(w, "name", m->name);
            string_match(w, "uri", &m->uri);
            string_match(w, "method", &m->method);
            string_match(w, "authority", &m->authority);
            named_matches(w, "headers", m->headers, m->n_headers);
            named_matches(w, "withoutHeaders", m->without_headers, m->n_without_headers);
            named_matches(w, "queryParams", m->query_params, m->n_query_params);
            if (m->ignore_uri_case)
                boolean(w, "ignoreUriCase", 1);
            close_(w, '}');
        }
        close_(w, ']');
    }
    if (r->n_routes > 0) {
        open_(w, "route", '[');
        for (size_t i = 0; i < r->n_routes; i++) {
            open_(w, NULL, '{');
            destination(w, "destination", &r->routes[i].destination);
            num(w, "weight", r->routes[i].weight);
            headers(w, &r->routes[i].headers);
            close_(w, '}');
        }
        close_(w, ']');
    }
    if (r->has_redirect) {
        open_(w, "redirect", '{');
        str(w, "uri", r->redirect_uri);
        str(w, "authority", r->redirect_authority);
        str(w, "scheme", r->redirect_scheme);
        opt_num(w, "port", r->redirect_port);
        num(w, "redirectCode", r->redirect_code);
        close_(w, '}');
    }
    if (r->has_direct_response) {
        open_(w, "directResponse", '{');
        num(w, "status", r->direct_status);
        if (r->direct_body != NULL) {
            open_(w, "body", '{');
            str(w, "string", r->direct_body);
            close_(w, '}');
        }
        close_(w, '}');
    }
    if (r->rewrite_uri != NULL || r->rewrite_authority != NULL) {
        open_(w, "rewrite", '{');
        str(w, "uri", r->rewrite_uri);
        str(w, "authority", r->rewrite_authority);
        close_(w, '}');
    }
    headers(w, &r->headers);
    duration(w, "timeout", r->timeout_ms);
    if (r->retries.given) {
        open_(w, "retries", '{');
        num(w, "attempts", r->retries.attempts);
        duration(w, "perTryTimeout", r->retries.per_try_timeout_ms);
        buf_t on = BUF_INIT;
        for (size_t i = 0; i < sizeof(retry_on_names) / sizeof(retry_on_names[0]); i++)
            if (r->retries.retry_on & (1u << i))
                buf_printf(&on, "%s%s", on.len ? "," : "", retry_on_names[i]);
        for (size_t i = 0; i < r->retries.n_codes; i++)
            buf_printf(&on, "%s%u", on.len ? "," : "", r->retries.codes[i]);
        if (on.len > 0)
            str(w, "retryOn", on.data);
        buf_dispose(&on);
        close_(w, '}');
    }
    if (r->fault.has_delay || r->fault.has_abort) {
        open_(w, "fault", '{');
        if (r->fault.has_delay) {
            open_(w, "delay", '{');
            duration(w, "fixedDelay", (int64_t)r->fault.delay_ms);
            percent(w, "percentage", r->fault.delay_percent);
            close_(w, '}');
        }
        if (r->fault.has_abort) {
            open_(w, "abort", '{');
            num(w, "httpStatus", r->fault.abort_status);
            percent(w, "percentage", r->fault.abort_percent);
            close_(w, '}');
        }
        close_(w, '}');
    }
    if (r->n_mirrors > 0) {
        open_(w, "mirrors", '[');
        for (size_t i = 0; i < r->n_mirrors; i++) {
            open_(w, NULL, '{');
            destination(w, "destination", &r->mirrors[i].destination);
            percent(w, "percentage", r->mirrors[i].percent);
            close_(w, '}');
        }
        close_(w, ']');
    }
    close_(w, '}');
}

static void virtual_service(jw_t *w, const proxy_virtual_service_t *vs)
{
    document(w, "networking.istio.io/v1", "VirtualService", &vs->meta);
    open_(w, "spec", '{');
    hosts(w, "hosts", vs->hosts, vs->n_hosts);
    str_list(w, "gateways", &vs->gateways);
    open_(w, "http", '[');
    for (size_t i = 0; i < vs->n_http; i++)
        http_route(w, &vs->http[i]);
    close_(w, ']');
    close_(w, '}');
    close_(w, '}');
}

/* ---- DestinationRule ---- */

static const char *const lb_names[] = {"ROUND_ROBIN", "ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH", NULL};

static void traffic_policy(jw_t *w, const proxy_traffic_policy_t *tp)
{
    open_(w, "trafficPolicy", '{');
    open_(w, "loadBalancer", '{');
    if (tp->lb != PROXY_LB_CONSISTENT_HASH) {
        str(w, "simple", lb_names[tp->lb]);
    } else {
        open_(w, "consistentHash", '{');
        switch (tp->hash_on) {
        case PROXY_HASH_HEADER: str(w, "httpHeaderName", tp->hash_key); break;
        case PROXY_HASH_QUERY: str(w, "httpQueryParameterName", tp->hash_key); break;
        case PROXY_HASH_SOURCE_IP: boolean(w, "useSourceIp", 1); break;
        case PROXY_HASH_COOKIE:
            open_(w, "httpCookie", '{');
            str(w, "name", tp->hash_key);
            str(w, "path", tp->hash_cookie_path);
            duration(w, "ttl", tp->hash_cookie_ttl_ms);
            close_(w, '}');
            break;
        case PROXY_HASH_NONE: break;
        }
        close_(w, '}');
    }
    close_(w, '}');
    if (tp->max_connections != PROXY_UNSET || tp->connect_timeout_ms != PROXY_UNSET ||
        tp->http1_max_pending_requests != PROXY_UNSET || tp->max_requests_per_connection != PROXY_UNSET ||
        tp->max_retries != PROXY_UNSET || tp->idle_timeout_ms != PROXY_UNSET) {
        open_(w, "connectionPool", '{');
        open_(w, "tcp", '{');
        opt_num(w, "maxConnections", tp->max_connections);
        duration(w, "connectTimeout", tp->connect_timeout_ms);
        close_(w, '}');
        open_(w, "http", '{');
        opt_num(w, "http1MaxPendingRequests", tp->http1_max_pending_requests);
        opt_num(w, "maxRequestsPerConnection", tp->max_requests_per_connection);
        opt_num(w, "maxRetries", tp->max_retries);
        duration(w, "idleTimeout", tp->idle_timeout_ms);
        close_(w, '}');
        close_(w, '}');
    }
    if (tp->has_outlier) {
        open_(w, "outlierDetection", '{');
        opt_num(w, "consecutive5xxErrors", tp->consecutive_5xx_errors);
        opt_num(w, "consecutiveGatewayErrors", tp->consecutive_gateway_errors);
        duration(w, "interval", tp->interval_ms);
        duration(w, "baseEjectionTime", tp->base_ejection_time_ms);
        opt_num(w, "maxEjectionPercent", tp->max_ejection_percent);
        opt_num(w, "minHealthPercent", tp->min_health_percent);
        close_(w, '}');
    }
    if (tp->has_tls) {
        static const char *const modes[] = {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"};
        open_(w, "tls", '{');
        str(w, "mode", modes[tp->tls_mode]);
        str(w, "clientCertificate", tp->tls_client_certificate); /* file names only: never the key itself */
        str(w, "privateKey", tp->tls_private_key);
        str(w, "caCertificates", tp->tls_ca_certificates);
        str(w, "sni", tp->tls_sni);
        str_list(w, "subjectAltNames", &tp->tls_subject_alt_names);
        boolean(w, "insecureSkipVerify", tp->tls_insecure_skip_verify);
        close_(w, '}');
    }
    close_(w, '}');
}

static void destination_rule(jw_t *w, const proxy_destination_rule_t *dr)
{
    document(w, "networking.istio.io/v1", "DestinationRule", &dr->meta);
    open_(w, "spec", '{');
    str(w, "host", dr->host.host);
    if (dr->policy.given)
        traffic_policy(w, &dr->policy);
    open_(w, "subsets", '[');
    for (size_t i = 0; i < dr->n_subsets; i++) {
        const proxy_subset_t *s = &dr->subsets[i];
        open_(w, NULL, '{');
        str(w, "name", s->name);
        kv_map(w, "labels", &s->labels);
        if (s->policy.given)
            traffic_policy(w, &s->policy);
        close_(w, '}');
    }
    close_(w, ']');
    close_(w, '}');
    close_(w, '}');
}

/* ---- RateLimit ---- */

static void rate_limit(jw_t *w, const proxy_rate_limit_t *rl)
{
    static const char *const key_names[] = {"requestHeader", "remoteAddress", "path", "destinationService"};
    static const char *const units[] = {"second", "minute", "hour", "day"};
    document(w, "outrider.io/v1alpha1", "RateLimit", &rl->meta);
    open_(w, "spec", '{');
    hosts(w, "hosts", rl->hosts, rl->n_hosts);
    if (rl->n_routes > 0) {
        open_(w, "routes", '[');
        for (size_t i = 0; i < rl->n_routes; i++)
            str(w, NULL, rl->routes[i].name);
        close_(w, ']');
    }
    if (rl->local.given) {
        const proxy_rl_local_t *l = &rl->local;
        open_(w, "local", '{');
        num(w, "maxTokens", (int64_t)l->max_tokens);
        num(w, "tokensPerFill", (int64_t)l->tokens_per_fill);
        duration(w, "fillInterval", (int64_t)l->fill_interval_ms);
        boolean(w, "shadow", l->shadow);
        close_(w, '}');
    }
    if (rl->global.given) {
        const proxy_rl_global_t *g = &rl->global;
        open_(w, "global", '{');
        str(w, "redis", g->redis.text);
        duration(w, "timeout", (int64_t)g->timeout_ms);
        str(w, "failureMode", g->failure_mode == PROXY_RL_FAILURE_DENY ? "deny" : "allow");
        str(w, "algorithm", g->algorithm == PROXY_RL_SLIDING_WINDOW ? "slidingWindow" : "fixedWindow");
        boolean(w, "shadow", g->shadow);
        open_(w, "limits", '[');
        for (size_t i = 0; i < g->n_limits; i++) {
            const proxy_rl_limit_t *l = &g->limits[i];
            open_(w, NULL, '{');
            str(w, "name", l->name);
            open_(w, "key", '[');
            for (size_t k = 0; k < l->n_keys; k++) {
                open_(w, NULL, '{');
                if (l->keys[k].kind == PROXY_RL_KEY_REQUEST_HEADER)
                    str(w, "requestHeader", l->keys[k].header);
                else
                    boolean(w, key_names[l->keys[k].kind], 1);
                close_(w, '}');
            }
            close_(w, ']');
            num(w, "requestsPerUnit", (int64_t)l->requests_per_unit);
            str(w, "unit", units[l->unit]);
            close_(w, '}');
        }
        close_(w, ']');
        close_(w, '}');
    }
    close_(w, '}');
    close_(w, '}');
}

/* ---- Telemetry ---- */

static const char *const mode_keys[] = {"client", "server"};
static const char *const level_names[] = {"rootNamespace", "namespace", "workload"};

static void tag_override(jw_t *w, const proxy_tm_tag_t *t)
{
    open_(w, t->name, '{');
    str(w, "operation", t->remove ? "REMOVE" : "UPSERT");
    if (!t->remove)
        str(w, "value", t->value);
    close_(w, '}');
}

static void modes(jw_t *w, unsigned m)
{
    str(w, "mode",
        m == (PROXY_TM_CLIENT | PROXY_TM_SERVER) ? "CLIENT_AND_SERVER"
        : m == PROXY_TM_CLIENT                   ? "CLIENT"
                                                 : "SERVER");
}

static void custom_tags(jw_t *w, const proxy_tm_custom_tag_t *t, size_t n)
{
    static const char *const kinds[] = {"literal", "header", "environment"};
    open_(w, "customTags", '{');
    for (size_t i = 0; i < n; i++) {
        open_(w, t[i].name, '{');
        open_(w, kinds[t[i].kind], '{');
        str(w, t[i].kind == PROXY_TM_LITERAL ? "value" : "name", t[i].value);
        str(w, "defaultValue", t[i].default_value);
        close_(w, '}');
        close_(w, '}');
    }
    close_(w, '}');
}

/* "selector": {"matchLabels": ...} of a document that has one. */
static void selector(jw_t *w, int has, const proxy_kv_list_t *labels)
{
    if (!has)
        return;
    open_(w, "selector", '{');
    kv_map(w, "matchLabels", labels);
    close_(w, '}');
}

static void telemetry(jw_t *w, const proxy_telemetry_t *tm)
{
    document(w, "telemetry.istio.io/v1", "Telemetry", &tm->meta);
    open_(w, "spec", '{');
    selector(w, tm->has_selector, &tm->selector);
    open_(w, "metrics", '[');
    open_(w, NULL, '{');
    open_(w, "overrides", '[');
    for (size_t i = 0; i < tm->n_overrides; i++) {
        const proxy_tm_override_t *o = &tm->overrides[i];
        open_(w, NULL, '{');
        open_(w, "match", '{');
        if (o->metrics == PROXY_TM_ALL_METRICS) {
            str(w, "metric", "ALL_METRICS");
        } else {
            open_(w, "metrics", '[');
            for (int m = 0; m < PROXY_TM_METRICS; m++)
                if (o->metrics & (1u << m))
                    str(w, NULL, proxy_tm_metric_name((enum proxy_tm_metric)m));
            close_(w, ']');
        }
        modes(w, o->modes);
        close_(w, '}');
        if (o->disabled != PROXY_UNSET)
            boolean(w, "disabled", o->disabled);
        open_(w, "tagOverrides", '{');
        for (size_t t = 0; t < o->n_tags; t++)
            tag_override(w, &o->tags[t]);
        close_(w, '}');
        close_(w, '}');
    }
    close_(w, ']');
    close_(w, '}');
    close_(w, ']');
    open_(w, "tracing", '[');
    for (size_t i = 0; i < tm->n_tracing; i++) {
        const proxy_tm_tracing_t *t = &tm->tracing[i];
        open_(w, NULL, '{');
        open_(w, "match", '{');
        modes(w, t->modes);
        close_(w, '}');
        if (t->sampling >= 0)
            dbl(w, "randomSamplingPercentage", t->sampling);
        if (t->disable_spans != PROXY_UNSET)
            boolean(w, "disableSpanReporting", t->disable_spans);
        if (t->has_tags)
            custom_tags(w, t->tags, t->n_tags);
        close_(w, '}');
    }
    close_(w, ']');
    open_(w, "accessLogging", '[');
    for (size_t i = 0; i < tm->n_logging; i++) {
        const proxy_tm_logging_t *l = &tm->logging[i];
        open_(w, NULL, '{');
        open_(w, "match", '{');
        modes(w, l->modes);
        close_(w, '}');
        if (l->disabled != PROXY_UNSET)
            boolean(w, "disabled", l->disabled);
        if (l->filter != NULL) {
            open_(w, "filter", '{');
            str(w, "expression", l->filter);
            close_(w, '}');
        }
        close_(w, '}');
    }
    close_(w, ']');
    close_(w, '}');
    close_(w, '}');
}

/* "appliedFrom": the documents of the three levels (root namespace, namespace, workload) that apply; NULL: none. */
static void applied_from(jw_t *w, const proxy_meta_t *root, const proxy_meta_t *ns, const proxy_meta_t *workload)
{
    const proxy_meta_t *levels[3] = {root, ns, workload};
    open_(w, "appliedFrom", '[');
    for (int l = 0; l < 3; l++) {
        if (levels[l] == NULL)
            continue;
        open_(w, NULL, '{');
        str(w, "level", level_names[l]);
        str(w, "namespace", levels[l]->namespace);
        str(w, "name", levels[l]->name);
        close_(w, '}');
    }
    close_(w, ']');
}

/* ---- PeerAuthentication ---- */

static const char *const mtls_mode_names[] = {"UNSET", "PERMISSIVE", "STRICT", "DISABLE"};

static void peer_authentication(jw_t *w, const proxy_peer_authentication_t *pa)
{
    document(w, "security.istio.io/v1", "PeerAuthentication", &pa->meta);
    open_(w, "spec", '{');
    selector(w, pa->has_selector, &pa->selector);
    open_(w, "mtls", '{');
    str(w, "mode", mtls_mode_names[pa->mode]);
    close_(w, '}');
    if (pa->n_ports > 0) {
        open_(w, "portLevelMtls", '{');
        for (size_t i = 0; i < pa->n_ports; i++) {
            char port[16];
            snprintf(port, sizeof port, "%u", pa->ports[i].port);
            open_(w, port, '{');
            str(w, "mode", mtls_mode_names[pa->ports[i].mode]);
            close_(w, '}');
        }
        close_(w, '}');
    }
    close_(w, '}');
    close_(w, '}');
}

/* What the PeerAuthentication documents make of the inbound listener. */
static void effective_mtls(jw_t *w, const proxy_config_t *cfg)
{
    const proxy_mtls_effective_t *eff = &cfg->mtls;
    open_(w, "effectivePeerAuthentication", '{');
    str(w, "mode", mtls_mode_names[eff->mode]);
    if (eff->decided != NULL) {
        open_(w, "decidedBy", '{');
        str(w, "namespace", eff->decided->meta.namespace);
        str(w, "name", eff->decided->meta.name);
        close_(w, '}');
    }
    applied_from(w, eff->levels[0] ? &eff->levels[0]->meta : NULL, eff->levels[1] ? &eff->levels[1]->meta : NULL,
                 eff->levels[2] ? &eff->levels[2]->meta : NULL);
    close_(w, '}');
}

/* What the Telemetry documents that apply make of this proxy's telemetry, per side. */
static void effective_telemetry(jw_t *w, const proxy_config_t *cfg)
{
    const proxy_tm_effective_t *eff = &cfg->telemetry;
    const proxy_spec_t *ps = &cfg->proxy;
    open_(w, "effectiveTelemetry", '{');
    applied_from(w, eff->levels[0] ? &eff->levels[0]->meta : NULL, eff->levels[1] ? &eff->levels[1]->meta : NULL,
                 eff->levels[2] ? &eff->levels[2]->meta : NULL);
    for (int mode = 0; mode < 2; mode++) {
        open_(w, mode_keys[mode], '{');
        open_(w, "metrics", '{');
        for (int m = 0; m < PROXY_TM_METRICS; m++) {
            const proxy_tm_cell_t *c = &eff->cells[mode][m];
            open_(w, proxy_tm_metric_name((enum proxy_tm_metric)m), '{');
            boolean(w, "disabled", c->disabled == 1);
            if (c->n_tags > 0) {
                open_(w, "tagOverrides", '{');
                for (size_t t = 0; t < c->n_tags; t++)
                    tag_override(w, c->tags[t]);
                close_(w, '}');
            }
            close_(w, '}');
        }
        close_(w, '}');
        open_(w, "tracing", '{');
        dbl(w, "randomSamplingPercentage", eff->sampling[mode] >= 0 ? eff->sampling[mode] : ps->sampling_percent);
        str(w, "samplingFrom", eff->sampling[mode] >= 0 ? "Telemetry" : "Proxy");
        boolean(w, "disableSpanReporting", eff->disable_spans[mode]);
        if (eff->n_custom_tags[mode] > 0)
            custom_tags(w, eff->custom_tags[mode], eff->n_custom_tags[mode]);
        close_(w, '}');
        open_(w, "accessLogging", '{');
        int on = eff->log_disabled[mode] == PROXY_UNSET ? ps->access_log : !eff->log_disabled[mode];
        boolean(w, "enabled", on && ps->otlp_endpoint != NULL);
        str(w, "filter", eff->log_filter[mode]);
        close_(w, '}');
        close_(w, '}');
    }
    close_(w, '}');
}

/* ---- AuthorizationPolicy, RequestAuthentication ---- */

static const char *const authz_action_names[] = {"ALLOW", "DENY", "AUDIT"};

static void authz_source(jw_t *w, const proxy_authz_source_t *s)
{
    open_(w, NULL, '{');
    open_(w, "source", '{');
    str_list(w, "principals", &s->principals);
    str_list(w, "notPrincipals", &s->not_principals);
    str_list(w, "requestPrincipals", &s->request_principals);
    str_list(w, "notRequestPrincipals", &s->not_request_principals);
    str_list(w, "namespaces", &s->namespaces);
    str_list(w, "notNamespaces", &s->not_namespaces);
    str_list(w, "ipBlocks", &s->ip_blocks);
    str_list(w, "notIpBlocks", &s->not_ip_blocks);
    str_list(w, "remoteIpBlocks", &s->remote_ip_blocks);
    str_list(w, "notRemoteIpBlocks", &s->not_remote_ip_blocks);
    close_(w, '}');
    close_(w, '}');
}

static void authz_operation(jw_t *w, const proxy_authz_operation_t *o)
{
    open_(w, NULL, '{');
    open_(w, "operation", '{');
    str_list(w, "hosts", &o->hosts);
    str_list(w, "notHosts", &o->not_hosts);
    str_list(w, "ports", &o->ports);
    str_list(w, "notPorts", &o->not_ports);
    str_list(w, "methods", &o->methods);
    str_list(w, "notMethods", &o->not_methods);
    str_list(w, "paths", &o->paths);
    str_list(w, "notPaths", &o->not_paths);
    close_(w, '}');
    close_(w, '}');
}

static void authorization_policy(jw_t *w, const proxy_authorization_policy_t *ap, int applies)
{
    document(w, "security.istio.io/v1", "AuthorizationPolicy", &ap->meta);
    open_(w, "spec", '{');
    selector(w, ap->has_selector, &ap->selector);
    str(w, "action", authz_action_names[ap->action]);
    open_(w, "rules", '[');
    for (size_t i = 0; i < ap->n_rules; i++) {
        const proxy_authz_rule_t *r = &ap->rules[i];
        open_(w, NULL, '{');
        if (r->n_from > 0) {
            open_(w, "from", '[');
            for (size_t k = 0; k < r->n_from; k++)
                authz_source(w, &r->from[k]);
            close_(w, ']');
        }
        if (r->n_to > 0) {
            open_(w, "to", '[');
            for (size_t k = 0; k < r->n_to; k++)
                authz_operation(w, &r->to[k]);
            close_(w, ']');
        }
        if (r->n_when > 0) {
            open_(w, "when", '[');
            for (size_t k = 0; k < r->n_when; k++) {
                open_(w, NULL, '{');
                str(w, "key", r->when[k].key);
                str_list(w, "values", &r->when[k].values);
                str_list(w, "notValues", &r->when[k].not_values);
                close_(w, '}');
            }
            close_(w, ']');
        }
        close_(w, '}');
    }
    close_(w, ']');
    close_(w, '}');
    boolean(w, "appliesToThisProxy", applies); /* outside spec: ours, not Istio's */
    boolean(w, "dryRun", ap->dry_run);
    close_(w, '}');
}

/* The keys themselves are public, but the dump names where they come from and how many there are, not them. */
static void request_authentication(jw_t *w, const proxy_request_authentication_t *ra)
{
    document(w, "security.istio.io/v1", "RequestAuthentication", &ra->meta);
    open_(w, "spec", '{');
    selector(w, ra->has_selector, &ra->selector);
    open_(w, "jwtRules", '[');
    for (size_t i = 0; i < ra->n_rules; i++) {
        const proxy_jwt_rule_t *r = &ra->rules[i];
        open_(w, NULL, '{');
        str(w, "issuer", r->issuer);
        str_list(w, "audiences", &r->audiences);
        str(w, "jwksUri", r->jwks_uri);
        if (r->jwks_source != NULL) { /* fetched: how it is going (ours, not Istio's) */
            jwks_source_status_t st;
            jwks_source_status(r->jwks_source, &st);
            num(w, "jwksKeys", (int64_t)st.keys);
            open_(w, "jwksFetch", '{');
            num(w, "successes", (int64_t)st.successes);
            num(w, "failures", (int64_t)st.failures);
            num(w, "lastSuccessUnix", st.last_success_unix);
            if (st.last_error[0] != '\0')
                str(w, "lastError", st.last_error);
            close_(w, '}');
        } else {
            num(w, "jwksKeys", r->jwks != NULL ? (int64_t)jwks_count(r->jwks) : 0);
        }
        if (r->fetch_timeout_ms != 0)
            duration(w, "timeout", (int64_t)r->fetch_timeout_ms);
        if (r->n_from_headers > 0) {
            open_(w, "fromHeaders", '[');
            for (size_t k = 0; k < r->n_from_headers; k++) {
                open_(w, NULL, '{');
                str(w, "name", r->from_headers[k].name);
                str(w, "prefix", r->from_headers[k].prefix);
                close_(w, '}');
            }
            close_(w, ']');
        }
        str_list(w, "fromParams", &r->from_params);
        boolean(w, "forwardOriginalToken", r->forward_original_token);
        str(w, "outputPayloadToHeader", r->output_payload_to_header);
        if (r->n_claim_headers > 0) {
            open_(w, "outputClaimToHeaders", '[');
            for (size_t k = 0; k < r->n_claim_headers; k++) {
                open_(w, NULL, '{');
                str(w, "header", r->claim_headers[k].header);
                str(w, "claim", r->claim_headers[k].claim);
                close_(w, '}');
            }
            close_(w, ']');
        }
        close_(w, '}');
    }
    close_(w, ']');
    close_(w, '}');
    close_(w, '}');
}

void proxy_config_to_json(const proxy_config_t *cfg, buf_t *out)
{
    jw_t w = {out, 0};
    open_(&w, NULL, '{');
    proxy_doc(&w, &cfg->proxy);
    open_(&w, "serviceEntries", '[');
    for (size_t i = 0; i < cfg->n_services; i++)
        service_entry(&w, &cfg->services[i]);
    close_(&w, ']');
    open_(&w, "virtualServices", '[');
    for (size_t i = 0; i < cfg->n_virtual_services; i++)
        virtual_service(&w, &cfg->virtual_services[i]);
    close_(&w, ']');
    open_(&w, "destinationRules", '[');
    for (size_t i = 0; i < cfg->n_destination_rules; i++)
        destination_rule(&w, &cfg->destination_rules[i]);
    close_(&w, ']');
    open_(&w, "rateLimits", '[');
    for (size_t i = 0; i < cfg->n_rate_limits; i++)
        rate_limit(&w, &cfg->rate_limits[i]);
    close_(&w, ']');
    open_(&w, "telemetries", '[');
    for (size_t i = 0; i < cfg->n_telemetries; i++)
        telemetry(&w, &cfg->telemetries[i]);
    close_(&w, ']');
    effective_telemetry(&w, cfg);
    open_(&w, "peerAuthentications", '[');
    for (size_t i = 0; i < cfg->n_peer_authentications; i++)
        peer_authentication(&w, &cfg->peer_authentications[i]);
    close_(&w, ']');
    effective_mtls(&w, cfg);
    open_(&w, "authorizationPolicies", '[');
    for (size_t i = 0; i < cfg->n_authorization_policies; i++) {
        int applies = 0;
        for (size_t k = 0; k < cfg->n_authz; k++)
            applies |= cfg->authz[k] == &cfg->authorization_policies[i];
        authorization_policy(&w, &cfg->authorization_policies[i], applies);
    }
    close_(&w, ']');
    open_(&w, "requestAuthentications", '[');
    for (size_t i = 0; i < cfg->n_request_authentications; i++)
        request_authentication(&w, &cfg->request_authentications[i]);
    close_(&w, ']');
    close_(&w, '}');
}
