/*
 * config_parse: the loader's shared machinery, internal to proxy/config*.c.
 *
 * A pctx_t carries the field path being parsed ("spec.http[1].route[0]"),
 * the label of the current document ("VirtualService reviews") and the
 * error and warning counts. The pc_* helpers read one YAML node each,
 * check its type and range, report problems at the node's line:col with
 * the current path, and return -1 (or NULL) when the value is unusable;
 * the caller then leaves its default in place and carries on.
 */
#ifndef OUTRIDER_PROXY_CONFIG_PARSE_H
#define OUTRIDER_PROXY_CONFIG_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "yaml.h"

/*
 * Several files (proxy_config_load_files): a node's line number carries its
 * file, line + index * PC_LINE_BASE, and messages take them apart again
 * (pc_where for a line quoted inside a message).
 */
#define PC_LINE_BASE (1 << 25) /* more lines than a PROXY_CONFIG_MAX_BYTES file can have */

typedef struct pctx {
    proxy_config_t *cfg;
    const char *file;
    const char *const *files; /* with n_files > 1: the file of each PC_LINE_BASE block of lines */
    size_t n_files;
    config_error_fn err, warn;
    void *ctx;
    int errors, warnings;
    buf_t path;
    char label[160];        /* "VirtualService reviews", or empty between documents */
    const char *ns;         /* namespace of the current document */
    const char *default_ns; /* of documents without metadata.namespace: the Proxy's, "default" without */
    int has_identity;       /* the Proxy document has spec.identity (read before pass one, like default_ns) */
} pctx_t;

/* Report an error (or a warning) at a node, or at line:col, with the current path. */
void pc_error(pctx_t *p, const yaml_node_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pc_error_at(pctx_t *p, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void pc_warn(pctx_t *p, const yaml_node_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pc_warn_at(pctx_t *p, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A line number for a message's text: "line 12", or "mesh.yaml:12" when several files were loaded. */
const char *pc_where(const pctx_t *p, int line, char *buf, size_t len);

/* Append ".key" (or "[i]") to the path; returns the mark to restore with pc_pop. */
size_t pc_push(pctx_t *p, const char *key);
size_t pc_push_index(pctx_t *p, size_t i);
void pc_pop(pctx_t *p, size_t mark);

/* Iterating the fields of a mapping: the path holds the current key while the body runs. */
typedef struct pc_iter {
    const yaml_node_t *map;
    size_t i;
    size_t mark;
    const yaml_node_t *key, *val;
    const char *k;
} pc_iter_t;

/* Begin: a map, or a null value (no fields); anything else is reported and yields no fields. */
pc_iter_t pc_map_begin(pctx_t *p, const yaml_node_t *node);
int pc_map_next(pctx_t *p, pc_iter_t *it);
#define PC_FIELDS(p, node, it) for (pc_iter_t it = pc_map_begin((p), (node)); pc_map_next((p), &it);)
#define PC_KEY(it, name) (strcmp((it).k, (name)) == 0)

/* The current key is not a field of this object; the second form for Istio fields we do not support. */
void pc_unknown(pctx_t *p, const pc_iter_t *it);
void pc_unsupported(pctx_t *p, const pc_iter_t *it);

/* Report "path.field: missing required field" at node (the object that lacks it). */
void pc_missing(pctx_t *p, const yaml_node_t *node, const char *field);

/* Arena allocation that aborts on out of memory. */
void *pc_alloc(pctx_t *p, size_t n, size_t size);
const char *pc_strdup(pctx_t *p, const char *s);

/* Scalars. Each reports its own errors and returns -1 (or NULL) on them. */
const char *pc_string(pctx_t *p, const yaml_node_t *v);
int pc_int(pctx_t *p, const yaml_node_t *v, int64_t min, int64_t max, int64_t *out);
int pc_double(pctx_t *p, const yaml_node_t *v, double min, double max, double *out);
int pc_bool(pctx_t *p, const yaml_node_t *v, int *out);
int pc_duration(pctx_t *p, const yaml_node_t *v, int64_t *out_ms);
/* One of names (NULL-terminated); returns its index or -1. */
int pc_enum(pctx_t *p, const yaml_node_t *v, const char *const *names);
/* A sequence's length, or -1 (reported) when v is not a list; null is an empty list. */
long pc_seq(pctx_t *p, const yaml_node_t *v);
void pc_str_list(pctx_t *p, const yaml_node_t *v, proxy_str_list_t *out);
/* A map of strings to strings; lower: lowercase the keys (header names). */
void pc_kv_map(pctx_t *p, const yaml_node_t *v, proxy_kv_list_t *out, int lower);
/* Istio Percent {value: 0..100}. */
int pc_percent(pctx_t *p, const yaml_node_t *v, double *out);
/* A HOST:PORT; ip_only: a listener, whose host must be an IP literal and whose port may be 0 (any free one). */
int pc_hostport(pctx_t *p, const yaml_node_t *v, int ip_only, proxy_hostport_t *out);
/* Lowercased FQDN of a host name written in namespace ns, as Istio reads a reference (arena). */
const char *pc_fqdn(pctx_t *p, const char *host, const char *ns);
/* A file name the sidecar reads at load; NULL (reported at file:line:col) when it cannot be read. */
const char *pc_readable_file(pctx_t *p, const yaml_node_t *v);
/* A DNS-1123 subdomain of at most max bytes: lowercase letters, digits, '-' and '.', alphanumeric at both ends. */
int pc_dns1123(const char *s, size_t max);
/* Whether labels carry every key: value of selector (selector.matchLabels). */
int pc_selects(const proxy_kv_list_t *selector, const proxy_kv_list_t *labels);
/* A lowercased copy (arena). */
const char *pc_lower(pctx_t *p, const char *s);

/* Istio documents (config_istio.c). */
void istio_parse_service_entry(pctx_t *p, const yaml_node_t *spec, proxy_service_entry_t *se);
void istio_parse_virtual_service(pctx_t *p, const yaml_node_t *spec, proxy_virtual_service_t *vs);
void istio_parse_destination_rule(pctx_t *p, const yaml_node_t *spec, proxy_destination_rule_t *dr);
/* A list of at least one host name as in a VirtualService's spec.hosts, into the arena. */
void istio_parse_hosts(pctx_t *p, const yaml_node_t *v, proxy_host_t **hosts, size_t *n_hosts);
/* Pass two (config_check.c): hosts, subsets, ports across documents. */
void istio_check_references(pctx_t *p);
/* The ServiceEntry a reference names (proxy_config_resolve in p->ns), warning at pos when a short name is ambiguous. */
const proxy_service_entry_t *pc_bind_host(pctx_t *p, const char *name, proxy_pos_t pos);

/* kind: RateLimit (config_ratelimit.c): pass one for one document's spec, and pass two for all of them. */
void ratelimit_parse(pctx_t *p, const yaml_node_t *spec, proxy_rate_limit_t *rl);
void ratelimit_check_references(pctx_t *p);

/* kind: Telemetry (config_telemetry.c): pass one for one document's spec; pass two folds the documents that
 * apply to this proxy into cfg->telemetry. */
void telemetry_parse(pctx_t *p, const yaml_node_t *spec, proxy_telemetry_t *tm);
void telemetry_resolve(pctx_t *p);
/* One field of the Proxy's spec.telemetry about the exporter's credentials (tokenFile, clientCertificate: identity
 * or {certFile, keyFile}), parsed into ps: 1 when it was one of them (errors reported), 0 when not. */
int telemetry_parse_exporter_field(pctx_t *p, const pc_iter_t *t, proxy_spec_t *ps);

/* selector: {matchLabels: {...}} of the security.istio.io kinds into labels; whether it has any (config_security.c) */
int pc_selector(pctx_t *p, const yaml_node_t *v, proxy_kv_list_t *labels);
/* targetRef / targetRefs: refused (they select waypoints and gateways) */
void pc_target_ref(pctx_t *p, const pc_iter_t *it);

/* spec.identity of the Proxy (config_security.c). */
void security_parse_identity(pctx_t *p, const yaml_node_t *v, proxy_identity_t *id, const proxy_meta_t *meta);
/* kind: PeerAuthentication (config_security.c): pass one for one document's spec; pass two resolves the mode of
 * this proxy's inbound listener into cfg->mtls. */
void security_parse_peer_authentication(pctx_t *p, const yaml_node_t *spec, proxy_peer_authentication_t *pa);
void security_resolve(pctx_t *p);

/* kind: AuthorizationPolicy (config_authz.c): pass one for one document's spec; pass two picks the documents that
 * apply to this proxy into cfg->authz and warns of rules that can never match. */
void authz_parse(pctx_t *p, const yaml_node_t *spec, proxy_authorization_policy_t *ap);
void authz_resolve(pctx_t *p);
/* kind: RequestAuthentication (config_authz.c): pass one reads (and parses the JWKS of) each document; pass two
 * collects the jwtRules of those that apply to this proxy into cfg->jwt_rules. Run before authz_resolve. */
void authn_parse(pctx_t *p, const yaml_node_t *spec, proxy_request_authentication_t *ra);
void authn_resolve(pctx_t *p);

/* A ServiceEntry port ({number, name, protocol, targetPort}); also the Proxy's spec.inbound.ports. */
void istio_parse_port(pctx_t *p, const yaml_node_t *v, proxy_port_t *port);

#endif
