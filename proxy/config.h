/*
 * config: the sidecar's configuration model and its loader.
 *
 * One YAML file holds several documents: exactly one `kind: Proxy`
 * (apiVersion outrider.io/v1alpha1: listeners, admin, telemetry, workers)
 * and any number of Istio `ServiceEntry`, `VirtualService` and
 * `DestinationRule` documents (networking.istio.io v1, v1beta1, v1alpha3),
 * with Istio's field names and shapes, and any number of Outrider
 * `kind: RateLimit` documents (outrider.io/v1alpha1; shape below), and
 * Istio `Telemetry` documents (telemetry.istio.io v1, v1alpha1).
 *
 * Loading is two passes, as HAProxy does it. Pass one walks every document
 * into the model below, checking kinds, field names, types and ranges.
 * Pass two checks the references between documents: hosts, subsets and
 * ports, and warns where a short host name could mean two services (see
 * config_check.c). Every problem is reported as
 *     file:line:col: Kind name: path.to.field: reason
 * and loading goes on, so the user sees all of them at once; the result is
 * NULL when there was at least one error. Fields that the proxy parses but
 * does not act on (loadBalancer PASSTHROUGH, corsPolicy) and subsets that
 * select no endpoint are reported through a separate warning callback,
 * which does not fail the load.
 *
 * The model is plain, immutable after load, and owned by one allocation
 * arena inside proxy_config_t: every pointer below lives until
 * proxy_config_destroy. A reload builds a new model and swaps it whole.
 *
 * Optional numbers use PROXY_UNSET (-1) for "not given"; durations are
 * milliseconds. Header names in matches and header operations are stored
 * lowercased.
 *
 * Namespaces and host names. A document without metadata.namespace belongs
 * to the Proxy document's namespace (wherever the Proxy stands in the
 * file), as `kubectl apply -n NS -f FILE` would place it; the Proxy itself
 * without one is in `default`. Host names are kept as written (`host`) and
 * as the name they stand for (`fqdn`, lowercase), read as Istio reads them:
 *   - a ServiceEntry host is a name of its own, never expanded: the host
 *     `reviews` is `reviews`, whatever the entry's namespace;
 *   - a VirtualService host, a route or mirror destination, a
 *     DestinationRule host and a RateLimit host are relative to their
 *     document's namespace: in namespace `shop`, `reviews` means
 *     `reviews.shop.svc.cluster.local`; a name with a dot is as written.
 * Such a reference names the ServiceEntry with that host; when there is
 * none, the ServiceEntry whose host is the same name in its other form
 * seen from the namespace (`reviews` for `reviews.shop.svc.cluster.local`
 * and the other way round), which Istio would leave unmatched; see
 * proxy_host_forms. Exact hosts win over wildcard hosts.
 *
 * Regular expressions: Istio uses RE2 and matches the whole string. We use
 * POSIX extended regular expressions (regcomp, REG_EXTENDED), anchored at
 * both ends so the whole string must match as in Istio. RE2-only syntax
 * (`\d`, `(?i)`, `(?:`, lazy quantifiers `*?`, `\pL`...) is rejected with an
 * error that names it, rather than silently meaning something else; RE2's
 * linear-time guarantee does not hold for POSIX, so repetition bounds are
 * limited (their product at most 1000) and a pattern at most 1024 bytes.
 */
#ifndef OUTRIDER_PROXY_CONFIG_H
#define OUTRIDER_PROXY_CONFIG_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

#define PROXY_UNSET (-1)

/* Largest configuration file accepted (bytes); checked before reading it all. */
#define PROXY_CONFIG_MAX_BYTES (16u << 20)

/* Receives one message "file:line:col: Kind name: path: reason" (an error or a warning). */
typedef void (*config_error_fn)(void *ctx, const char *message);

/* A YAML string map (labels, header operations), in file order. */
typedef struct proxy_kv {
    const char *key;
    const char *value;
} proxy_kv_t;

typedef struct proxy_kv_list {
    proxy_kv_t *items;
    size_t n;
} proxy_kv_list_t;

typedef struct proxy_str_list {
    const char **items;
    size_t n;
} proxy_str_list_t;

/* Where a document or a field came from: for messages of later stages (router, reload). */
typedef struct proxy_pos {
    int line, col;
} proxy_pos_t;

typedef struct proxy_meta {
    const char *name;      /* required */
    const char *namespace; /* when absent: the Proxy's (the Proxy's own: "default") */
    proxy_kv_list_t labels;
    proxy_kv_list_t annotations;
    proxy_pos_t pos; /* of the document */
} proxy_meta_t;

/* A HOST:PORT as written, and split. host is an IP literal for listeners. */
typedef struct proxy_hostport {
    const char *text; /* NULL when not configured */
    const char *host;
    uint16_t port;
} proxy_hostport_t;

/* ---- kind: Proxy ---- */

/*
 * spec.identity: the sidecar's workload identity, the X.509 certificate it
 * presents for mutual TLS, whose URI SAN is
 * spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. From files
 * (certificateChain and privateKey, as Istio mounts /etc/certs) or from the
 * mesh CA (caAddress and tokenFile: `outriderctl ca serve`), renewed at half
 * its lifetime. rootCertificates are the mesh's trusted roots, for peers
 * and for the CA endpoint. Only file names are kept: nothing secret.
 */
typedef struct proxy_identity {
    int given;
    const char *service_account;   /* default "default" */
    const char *trust_domain;      /* default "cluster.local" */
    const char *root_certificates; /* required */
    const char *certificate_chain; /* files: with private_key */
    const char *private_key;
    const char *ca_address;                /* "https://HOST:PORT": with token_file */
    const char *token_file;                /* the CA's bootstrap token */
    uint64_t certificate_ttl_ms;           /* asked of the CA; default 24 h */
    const char *spiffe_id;                 /* made from the fields above */
    proxy_str_list_t trust_domain_aliases; /* trustDomainAliases: peers of these are the mesh's too (Istio's) */
    const char **peer_ids; /* "spiffe://<trustDomain>/", then each alias's: the mesh's workloads (prefixes) */
    size_t n_peer_ids;
    proxy_pos_t pos;
} proxy_identity_t;

typedef struct proxy_port {
    uint32_t number;      /* 1..65535 */
    const char *name;     /* required, unique in the entry */
    const char *protocol; /* uppercase: HTTP, HTTPS, HTTP2, GRPC, TCP, TLS, MONGO; NULL = not given */
    int64_t target_port;  /* PROXY_UNSET or 1..65535 */
} proxy_port_t;

typedef struct proxy_spec {
    proxy_meta_t meta;
    proxy_hostport_t inbound_listen;     /* default 127.0.0.1:15006 when inbound is given */
    proxy_hostport_t inbound_forward_to; /* required when inbound is given; text NULL = no inbound */
    proxy_port_t *inbound_ports;         /* spec.inbound.ports: the app's ports, for their protocols (a redirected
                                            connection to a TCP one is proxied as bytes) */
    size_t n_inbound_ports;
    proxy_hostport_t outbound_listen; /* default 127.0.0.1:15001 */
    proxy_hostport_t admin_listen;    /* default 127.0.0.1:15000 */
    const char *otlp_endpoint;        /* "http(s)://host:port[/base]" or NULL (telemetry off) */
    const char *otlp_ca_file;         /* https: trusted CAs (telemetry.caFile); NULL: the system's */
    const char *otlp_token_file;      /* telemetry.tokenFile: sent as Authorization: Bearer; NULL: none */
    const char *otlp_cert_file;       /* telemetry.clientCertificate {certFile, keyFile} (mutual TLS); NULL: */
    const char *otlp_key_file;        /* none */
    int otlp_identity_cert;           /* telemetry.clientCertificate: identity (spec.identity's certificate) */
    proxy_hostport_t otlp_hostport;   /* split otlp_endpoint */
    double sampling_percent;          /* 0..100, default 1 */
    uint64_t flush_interval_ms;       /* default 1000 */
    int access_log;                   /* telemetry.accessLog: OTLP log record per request, default 1 */
    int workers;                      /* 1..64, default 1 */
    int num_trusted_proxies;          /* spec.numTrustedProxies: remote.ip from X-Forwarded-For (0: the peer) */
    /* spec.limits (downstream side) */
    uint32_t max_header_bytes;   /* default 60 KiB (431 above) */
    uint32_t max_headers;        /* default 100 (431 above) */
    uint32_t max_uri_bytes;      /* default 8 KiB (414 above) */
    uint64_t header_timeout_ms;  /* default 10 s: a request head must arrive within this (408) */
    uint64_t idle_timeout_ms;    /* default 60 s: keep-alive client connection without a request */
    uint64_t retry_buffer_bytes; /* default 64 KiB: request body kept to replay on retries */
    /* after an answer that ends the connection while the client may still be sending (431, 413...) */
    uint64_t linger_time_ms;    /* default 30 s: input is read and dropped this long at most; 0 = close at once */
    uint64_t linger_timeout_ms; /* default 5 s: ...and closed sooner when nothing comes for this long */
    uint64_t linger_bytes;      /* default 64 MiB: ...and closed after this many bytes */
    uint64_t drain_timeout_ms;  /* spec.drainTimeout, default 5 s */
    const char *jwks_ca_file;   /* spec.jwks.caFile: what a remote jwksUri's certificate chains to; NULL: system */
    uint64_t jwks_refresh_ms;   /* spec.jwks.refreshInterval (0: JWKS_REFRESH_DEFAULT_MS) */
    const char *root_namespace; /* spec.rootNamespace: of mesh-wide Telemetry documents, default istio-system */
    proxy_identity_t identity;  /* spec.identity; given 0: none (no mutual TLS) */
    uint64_t tls_handshake_timeout_ms; /* spec.limits.tlsHandshakeTimeout, default 10 s */
    /* spec.interceptionMode REDIRECT: connections reach the listeners through `outriderctl redirect`'s rules, and
     * their original destination (SO_ORIGINAL_DST) routes them when the Host names no known service (outbound)
     * and picks the app's port (inbound). NONE (the default): the app addresses the sidecar itself. */
    int interception_redirect;
    int registry_only; /* spec.outboundTrafficPolicy.mode REGISTRY_ONLY: unknown destinations refused (502);
                          ALLOW_ANY (default): passed through to where the app sent them */
} proxy_spec_t;

/* ---- ServiceEntry ---- */

enum proxy_resolution { PROXY_RESOLUTION_NONE = 0, PROXY_RESOLUTION_STATIC, PROXY_RESOLUTION_DNS };
enum proxy_location { PROXY_LOCATION_MESH_EXTERNAL = 0, PROXY_LOCATION_MESH_INTERNAL };

typedef struct proxy_host {
    const char *host; /* as written */
    const char *fqdn; /* lowercase; ServiceEntry hosts as written, other kinds' short names expanded (above) */
    proxy_pos_t pos;
} proxy_host_t;

typedef struct proxy_endpoint {
    const char *address;
    proxy_kv_list_t ports;  /* port name -> number as text; see port_numbers */
    uint32_t *port_numbers; /* parallel to ports.items */
    proxy_kv_list_t labels;
    int64_t weight; /* PROXY_UNSET or 1..2^32-1 */
    proxy_pos_t pos;
} proxy_endpoint_t;

typedef struct proxy_service_entry {
    proxy_meta_t meta;
    proxy_host_t *hosts; /* n_hosts >= 1 */
    size_t n_hosts;
    proxy_port_t *ports;
    size_t n_ports;
    enum proxy_resolution resolution;
    enum proxy_location location;
    proxy_endpoint_t *endpoints;
    size_t n_endpoints;
    proxy_str_list_t subject_alt_names; /* identities its endpoints' sidecars may present (mutual TLS) */
    proxy_str_list_t addresses;         /* virtual IPs (or CIDRs) of the service: a redirected connection to one
                                           of them on a service port is this service's */
} proxy_service_entry_t;

/* ---- VirtualService ---- */

enum proxy_match_kind { PROXY_MATCH_NONE = 0, PROXY_MATCH_EXACT, PROXY_MATCH_PREFIX, PROXY_MATCH_REGEX };

/* Istio StringMatch: exactly one of exact, prefix, regex. */
typedef struct proxy_string_match {
    enum proxy_match_kind kind;
    const char *value;
    regex_t *regex; /* PROXY_MATCH_REGEX: compiled, anchored (whole string); freed by destroy */
} proxy_string_match_t;

typedef struct proxy_named_match {
    const char *name; /* header names lowercased */
    proxy_string_match_t match;
} proxy_named_match_t;

typedef struct proxy_http_match {
    const char *name;
    proxy_string_match_t uri, method, authority; /* kind NONE = not given */
    proxy_named_match_t *headers;
    size_t n_headers;
    proxy_named_match_t *without_headers;
    size_t n_without_headers;
    proxy_named_match_t *query_params; /* exact or regex only, as in Istio */
    size_t n_query_params;
    int ignore_uri_case; /* applies to exact and prefix uri matches, as in Istio */
} proxy_http_match_t;

typedef struct proxy_header_ops {
    proxy_kv_list_t set, add;
    proxy_str_list_t remove;
} proxy_header_ops_t;

typedef struct proxy_headers {
    proxy_header_ops_t request, response;
} proxy_headers_t;

typedef struct proxy_destination {
    const char *host; /* required */
    const char *fqdn;
    const char *subset; /* NULL = all endpoints */
    int64_t port;       /* PROXY_UNSET or 1..65535 */
    const char *path;   /* field path, e.g. "spec.http[1].route[0].destination", for later messages */
    proxy_pos_t pos, host_pos, subset_pos, port_pos;
    /* filled by pass two: the ServiceEntry the host names */
    const proxy_service_entry_t *service;
} proxy_destination_t;

typedef struct proxy_route_destination {
    proxy_destination_t destination;
    int weight;       /* effective, 0..100: 100 for a single destination without weight */
    int weight_given; /* the weight was written */
    proxy_headers_t headers;
} proxy_route_destination_t;

enum proxy_retry_on {
    PROXY_RETRY_5XX = 1 << 0,
    PROXY_RETRY_GATEWAY_ERROR = 1 << 1,
    PROXY_RETRY_RESET = 1 << 2,
    PROXY_RETRY_CONNECT_FAILURE = 1 << 3,
    PROXY_RETRY_RETRIABLE_4XX = 1 << 4,
    PROXY_RETRY_RETRIABLE_STATUS_CODES = 1 << 5,
};

#define PROXY_MAX_RETRY_CODES 16

/*
 * Always filled: without a retries block (given = 0) Istio's defaults apply,
 * 2 attempts on connect-failure and 503 (Istio's default retryOn is
 * "connect-failure,refused-stream,unavailable,cancelled,503"; the gRPC and
 * HTTP/2 conditions do not arise on HTTP/1.1). A block overrides what it sets.
 */
typedef struct proxy_retries {
    int given;
    int attempts;                          /* 0..100; 0 disables retries */
    int64_t per_try_timeout_ms;            /* PROXY_UNSET = the route timeout */
    unsigned retry_on;                     /* PROXY_RETRY_* bits */
    uint16_t codes[PROXY_MAX_RETRY_CODES]; /* status codes listed in retryOn */
    size_t n_codes;
} proxy_retries_t;

typedef struct proxy_fault {
    int has_delay;
    uint64_t delay_ms;
    double delay_percent; /* 0..100; 100 when not given */
    int has_abort;
    int abort_status;     /* 200..599 */
    double abort_percent; /* 0..100; 100 when not given */
} proxy_fault_t;

typedef struct proxy_mirror {
    proxy_destination_t destination;
    double percent; /* 0..100; 100 when not given */
} proxy_mirror_t;

typedef struct proxy_http_route {
    const char *name; /* NULL when not given */
    proxy_pos_t pos;
    proxy_http_match_t *matches; /* n_matches 0 = matches every request */
    size_t n_matches;
    proxy_route_destination_t *routes;
    size_t n_routes;
    proxy_headers_t headers;
    const char *rewrite_uri;       /* NULL = none */
    const char *rewrite_authority; /* NULL = none */
    int has_redirect;
    const char *redirect_uri, *redirect_authority, *redirect_scheme;
    int64_t redirect_port; /* PROXY_UNSET or 1..65535 */
    int redirect_code;     /* 301 default; 301, 302, 303, 307, 308 */
    int has_direct_response;
    int direct_status;       /* 200..599 */
    const char *direct_body; /* NULL = empty */
    int64_t timeout_ms;      /* PROXY_UNSET = none (0 also means none, as in Istio) */
    proxy_retries_t retries;
    proxy_fault_t fault;     /* fault injection: delay (DI), abort (FI) */
    proxy_mirror_t *mirrors; /* `mirror` (with mirrorPercentage) or `mirrors` */
    size_t n_mirrors;
} proxy_http_route_t;

typedef struct proxy_virtual_service {
    proxy_meta_t meta;
    proxy_host_t *hosts;
    size_t n_hosts;
    proxy_str_list_t gateways; /* parsed, ignored */
    proxy_http_route_t *http;
    size_t n_http;
} proxy_virtual_service_t;

/* ---- DestinationRule ---- */

enum proxy_lb {
    PROXY_LB_UNSET = 0, /* ROUND_ROBIN */
    PROXY_LB_ROUND_ROBIN,
    PROXY_LB_LEAST_REQUEST,
    PROXY_LB_RANDOM,
    PROXY_LB_PASSTHROUGH,
    PROXY_LB_CONSISTENT_HASH,
};

enum proxy_hash_on {
    PROXY_HASH_NONE = 0,
    PROXY_HASH_HEADER,
    PROXY_HASH_COOKIE,
    PROXY_HASH_SOURCE_IP,
    PROXY_HASH_QUERY
};

typedef struct proxy_traffic_policy {
    int given;
    enum proxy_lb lb;
    enum proxy_hash_on hash_on;   /* PROXY_LB_CONSISTENT_HASH */
    const char *hash_key;         /* header, cookie or query parameter name */
    const char *hash_cookie_path; /* NULL = none */
    int64_t hash_cookie_ttl_ms;   /* PROXY_UNSET = session cookie */
    int has_pool;                 /* connectionPool was given */
    /* connectionPool; PROXY_UNSET = not given */
    int64_t max_connections; /* per worker and cluster; 503 UO past http1_max_pending_requests waiting */
    int64_t connect_timeout_ms;
    int64_t http1_max_pending_requests; /* requests waiting for a connection at max_connections (default 1024) */
    int64_t max_requests_per_connection;
    int64_t max_retries; /* retries in flight in the cluster (per worker) */
    int64_t idle_timeout_ms;
    /* outlierDetection (per worker); interval_ms is accepted and has no effect */
    int has_outlier;
    int64_t consecutive_5xx_errors, consecutive_gateway_errors;
    int64_t interval_ms, base_ejection_time_ms;
    int64_t max_ejection_percent, min_health_percent;
    /* tls (ClientTLSSettings): how the sidecar connects to the destination */
    int has_tls;
    enum proxy_tls_mode { PROXY_TLS_DISABLE = 0, PROXY_TLS_SIMPLE, PROXY_TLS_MUTUAL, PROXY_TLS_ISTIO_MUTUAL } tls_mode;
    const char *tls_client_certificate, *tls_private_key, *tls_ca_certificates; /* files; NULL = none */
    const char *tls_sni;                                                        /* NULL: the destination's host */
    proxy_str_list_t tls_subject_alt_names; /* empty: the server must name the SNI host */
    int tls_insecure_skip_verify;
} proxy_traffic_policy_t;

typedef struct proxy_subset {
    const char *name;
    proxy_kv_list_t labels;
    /* effective: merged as Istio does, each of loadBalancer, connectionPool and
     * outlierDetection from the subset when it sets it, else from the rule */
    proxy_traffic_policy_t policy;
    proxy_pos_t pos;
} proxy_subset_t;

typedef struct proxy_destination_rule {
    proxy_meta_t meta;
    proxy_host_t host;
    proxy_traffic_policy_t policy;
    proxy_subset_t *subsets;
    size_t n_subsets;
    const proxy_service_entry_t *service; /* filled by pass two */
} proxy_destination_rule_t;

/* ---- kind: RateLimit (outrider.io/v1alpha1) ----
 *
 * Limits attached to hosts (and optionally routes) of the mesh: `local` is a
 * token bucket shared by the proxy's workers, `global` limits are counted in
 * Redis (proxy/rlglobal.c) so every proxy of a service shares them.
 *
 *   apiVersion: outrider.io/v1alpha1
 *   kind: RateLimit
 *   metadata: {name: reviews-limits, namespace: default}
 *   spec:
 *     hosts: [reviews]         # required: as in a VirtualService; each must be a ServiceEntry host
 *     routes: [canary]         # optional: names of http routes of the VirtualService of those
 *                              #   hosts; absent = every request to the hosts
 *     local:                   # a token bucket in each proxy (Envoy's local rate limit)
 *       maxTokens: 100         # required, 1..1e9
 *       tokensPerFill: 10      # default 1, 1..maxTokens
 *       fillInterval: 1s       # required, >= 1ms
 *       shadow: false          # count, do not reject
 *     global:                  # limits shared by every proxy, kept in Redis
 *       redis: 127.0.0.1:6379  # required HOST:PORT
 *       timeout: 50ms          # default 50ms, >= 1ms
 *       failureMode: allow     # allow (default) | deny, when Redis is unreachable
 *       algorithm: fixedWindow # fixedWindow (default) | slidingWindow
 *       shadow: false
 *       limits:                # required, at least one
 *       - name: per-user       # required, unique within the document
 *         key:                 # required, 1..8 entries (a descriptor, as in Envoy's ratelimit
 *         - requestHeader: x-user  # service); each one of requestHeader: NAME,
 *                              #   remoteAddress: true, path: true, destinationService: true
 *         requestsPerUnit: 100 # required, 1..1e9
 *         unit: minute         # required: second | minute | hour | day
 *
 * At least one of local and global. Pass two ties each host to its
 * ServiceEntry, checks each route name against the VirtualService of one of
 * the hosts, and refuses two documents on the same (host, route) pair; a
 * document without routes covers the pair (host, every route), which does
 * not clash with a document naming routes of the same host.
 */

#define PROXY_RL_MAX_VALUE 1000000000 /* maxTokens, requestsPerUnit */
#define PROXY_RL_MAX_KEYS 8           /* entries of a global limit's key */

enum proxy_rl_key_kind {
    PROXY_RL_KEY_REQUEST_HEADER = 0,
    PROXY_RL_KEY_REMOTE_ADDRESS,
    PROXY_RL_KEY_PATH,
    PROXY_RL_KEY_DESTINATION_SERVICE,
};

typedef struct proxy_rl_key {
    enum proxy_rl_key_kind kind;
    const char *header; /* PROXY_RL_KEY_REQUEST_HEADER: the name, lowercased; else NULL */
    proxy_pos_t pos;
} proxy_rl_key_t;

enum proxy_rl_unit { PROXY_RL_SECOND = 0, PROXY_RL_MINUTE, PROXY_RL_HOUR, PROXY_RL_DAY };

typedef struct proxy_rl_limit {
    const char *name;
    proxy_rl_key_t *keys; /* 1..PROXY_RL_MAX_KEYS */
    size_t n_keys;
    uint64_t requests_per_unit; /* 1..PROXY_RL_MAX_VALUE */
    enum proxy_rl_unit unit;
    uint64_t unit_ms; /* the unit in milliseconds: 1000, 60000, 3600000 or 86400000 */
    proxy_pos_t pos;
} proxy_rl_limit_t;

typedef struct proxy_rl_local {
    int given;
    uint64_t max_tokens;       /* 1..PROXY_RL_MAX_VALUE */
    uint64_t tokens_per_fill;  /* 1..max_tokens, default 1 */
    uint64_t fill_interval_ms; /* >= 1 */
    int shadow;
    proxy_pos_t pos;
} proxy_rl_local_t;

enum proxy_rl_failure_mode { PROXY_RL_FAILURE_ALLOW = 0, PROXY_RL_FAILURE_DENY };
enum proxy_rl_algorithm { PROXY_RL_FIXED_WINDOW = 0, PROXY_RL_SLIDING_WINDOW };

typedef struct proxy_rl_global {
    int given;
    proxy_hostport_t redis; /* required */
    uint64_t timeout_ms;    /* default 50, >= 1 */
    enum proxy_rl_failure_mode failure_mode;
    enum proxy_rl_algorithm algorithm;
    int shadow;
    proxy_rl_limit_t *limits; /* n_limits >= 1 */
    size_t n_limits;
    proxy_pos_t pos;
} proxy_rl_global_t;

typedef struct proxy_rl_route {
    const char *name;
    proxy_pos_t pos;
} proxy_rl_route_t;

typedef struct proxy_rate_limit {
    proxy_meta_t meta;
    proxy_host_t *hosts; /* n_hosts >= 1 */
    size_t n_hosts;
    proxy_rl_route_t *routes; /* n_routes 0 = every request to the hosts */
    size_t n_routes;
    proxy_rl_local_t local;   /* local.given 0 = none */
    proxy_rl_global_t global; /* global.given 0 = none */
    /* filled by pass two, parallel to hosts: the ServiceEntry each host names */
    const proxy_service_entry_t **services;
} proxy_rate_limit_t;

/* ---- kind: Telemetry (telemetry.istio.io/v1, v1alpha1) ----
 *
 * Istio's Telemetry API, as Istio writes it: what this proxy measures,
 * traces and logs.
 *
 *   apiVersion: telemetry.istio.io/v1
 *   kind: Telemetry
 *   metadata: {name: mesh-default, namespace: istio-system}
 *   spec:
 *     selector: {matchLabels: {app: reviews}}   # optional: one workload (the Proxy's metadata.labels)
 *     metrics:
 *     - providers: [{name: prometheus}]         # accepted; every provider is the proxy's one metrics sink
 *       overrides:
 *       - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}  # or customMetric; default ALL_METRICS
 *         disabled: false
 *         tagOverrides:
 *           source_principal: {operation: REMOVE}
 *           request_host: {value: "request.host"}      # UPSERT (the default operation)
 *     tracing:
 *     - match: {mode: SERVER}
 *       randomSamplingPercentage: 10.0
 *       disableSpanReporting: false
 *       customTags:
 *         team: {literal: {value: payments}}
 *         user: {header: {name: x-user, defaultValue: anonymous}}
 *         pod: {environment: {name: HOSTNAME, defaultValue: unknown}}
 *     accessLogging:
 *     - disabled: false
 *       filter: {expression: "response.code >= 400"}
 *
 * Tag values and filters are attribute expressions (proxy/attr_expr.h).
 * Which documents apply to this proxy, and how they combine, is Istio's
 * rule: the one without a selector in the root namespace (the Proxy's
 * spec.rootNamespace, istio-system by default), then the one without a
 * selector in the Proxy's namespace, then the one in that namespace whose
 * selector matches the Proxy's labels, each layered on the one before:
 * metric overrides apply in that order, a later `disabled` or tag override
 * replacing an earlier one for the same metric, mode and tag; tracing's
 * sampling and disableSpanReporting and logging's disabled and filter come
 * from the most specific level that sets them, and customTags from the most
 * specific level that has any (they replace, not merge). Two documents at
 * one level are a warning; the first in the file is used.
 */

enum proxy_tm_metric {
    PROXY_TM_REQUEST_COUNT,
    PROXY_TM_REQUEST_DURATION,
    PROXY_TM_REQUEST_SIZE,
    PROXY_TM_RESPONSE_SIZE,
    PROXY_TM_TCP_OPENED_CONNECTIONS,
    PROXY_TM_TCP_CLOSED_CONNECTIONS,
    PROXY_TM_TCP_SENT_BYTES,
    PROXY_TM_TCP_RECEIVED_BYTES,
    PROXY_TM_METRICS
};

#define PROXY_TM_ALL_METRICS ((1u << PROXY_TM_METRICS) - 1)

/* Modes, as bits; index 0 (CLIENT) is the outbound side, reporter "source", 1 (SERVER) inbound, "destination". */
#define PROXY_TM_CLIENT 1u
#define PROXY_TM_SERVER 2u
#define PROXY_TM_MAX_TAGS 16 /* tagOverrides per override, customTags per tracing entry */

/* Name of metric m as the Telemetry API writes it ("REQUEST_COUNT"). */
const char *proxy_tm_metric_name(enum proxy_tm_metric m);

typedef struct proxy_tm_tag {
    const char *name; /* a Prometheus label name */
    int remove;       /* operation REMOVE; else UPSERT */
    const char *value;
    proxy_pos_t pos;
} proxy_tm_tag_t;

typedef struct proxy_tm_override {
    uint32_t metrics; /* bits (1 << enum proxy_tm_metric) */
    unsigned modes;   /* PROXY_TM_CLIENT | PROXY_TM_SERVER */
    int disabled;     /* PROXY_UNSET, 0 or 1 */
    proxy_tm_tag_t *tags;
    size_t n_tags;
    proxy_pos_t pos;
} proxy_tm_override_t;

enum proxy_tm_custom_kind { PROXY_TM_LITERAL, PROXY_TM_HEADER, PROXY_TM_ENVIRONMENT };

typedef struct proxy_tm_custom_tag {
    const char *name;
    enum proxy_tm_custom_kind kind;
    const char *value;         /* literal: the value; header: the name (lowercased); environment: the variable */
    const char *default_value; /* header and environment; NULL = none (the tag is left out) */
    proxy_pos_t pos;
} proxy_tm_custom_tag_t;

typedef struct proxy_tm_tracing {
    unsigned modes;
    double sampling;   /* randomSamplingPercentage 0..100; < 0 = not set */
    int disable_spans; /* disableSpanReporting: PROXY_UNSET, 0 or 1 */
    int has_tags;      /* customTags given (even empty) */
    proxy_tm_custom_tag_t *tags;
    size_t n_tags;
    proxy_pos_t pos;
} proxy_tm_tracing_t;

typedef struct proxy_tm_logging {
    unsigned modes;
    int disabled;       /* PROXY_UNSET, 0 or 1 */
    const char *filter; /* filter.expression, NULL = none */
    proxy_pos_t pos;
} proxy_tm_logging_t;

typedef struct proxy_telemetry {
    proxy_meta_t meta;
    int has_selector; /* selector.matchLabels with at least one label */
    proxy_kv_list_t selector;
    proxy_tm_override_t *overrides; /* of every metrics[] entry, in order */
    size_t n_overrides;
    proxy_tm_tracing_t *tracing;
    size_t n_tracing;
    proxy_tm_logging_t *logging;
    size_t n_logging;
} proxy_telemetry_t;

/* What the Telemetry documents that apply to this proxy make of one metric in one mode. */
typedef struct proxy_tm_cell {
    int disabled;
    const proxy_tm_tag_t **tags; /* one per tag name, the last word on it; in the order the names first came */
    size_t n_tags;
} proxy_tm_cell_t;

/* The effective telemetry of this proxy; [mode] is 0 for CLIENT, 1 for SERVER. */
typedef struct proxy_tm_effective {
    const proxy_telemetry_t *levels[3]; /* root namespace, namespace, workload; NULL where none applies */
    proxy_tm_cell_t cells[2][PROXY_TM_METRICS];
    double sampling[2];   /* < 0: the Proxy's telemetry.samplingPercent */
    int disable_spans[2]; /* 0 or 1 */
    const proxy_tm_custom_tag_t *custom_tags[2];
    size_t n_custom_tags[2];
    int log_disabled[2];       /* PROXY_UNSET: the Proxy's telemetry.accessLog */
    const char *log_filter[2]; /* NULL = every request */
} proxy_tm_effective_t;

/* ---- PeerAuthentication (security.istio.io/v1) ---- */

/* Istio's PeerAuthentication.MutualTLS.Mode; UNSET inherits from the level above. */
enum proxy_mtls_mode { PROXY_MTLS_UNSET = 0, PROXY_MTLS_PERMISSIVE, PROXY_MTLS_STRICT, PROXY_MTLS_DISABLE };

typedef struct proxy_port_mtls {
    uint32_t port; /* the workload's port (the inbound forwardTo port) */
    enum proxy_mtls_mode mode;
    proxy_pos_t pos;
} proxy_port_mtls_t;

typedef struct proxy_peer_authentication {
    proxy_meta_t meta;
    int has_selector; /* selector.matchLabels with at least one label */
    proxy_kv_list_t selector;
    enum proxy_mtls_mode mode; /* mtls.mode */
    proxy_pos_t mode_pos;      /* of mtls.mode, else of the document */
    proxy_port_mtls_t *ports;  /* portLevelMtls (only with a selector, as Istio requires) */
    size_t n_ports;
} proxy_peer_authentication_t;

/* What the PeerAuthentication documents make of this proxy's inbound listener. */
typedef struct proxy_mtls_effective {
    enum proxy_mtls_mode mode;                    /* never UNSET: PERMISSIVE when nothing says otherwise */
    const proxy_peer_authentication_t *levels[3]; /* root namespace, namespace, workload; NULL where none applies */
    const proxy_peer_authentication_t *decided;   /* the document whose mode (or port's) won; NULL: the default */
} proxy_mtls_effective_t;

/* ---- AuthorizationPolicy (security.istio.io/v1) ---- */

/*
 * Istio's shape, evaluated by the inbound side (authz.h):
 *
 *   kind: AuthorizationPolicy
 *   metadata: {name: reviews-viewer, namespace: shop}
 *   spec:
 *     selector: {matchLabels: {app: reviews}}   # optional: one workload
 *     action: ALLOW                              # ALLOW (default), DENY, AUDIT; CUSTOM is refused
 *     rules:
 *     - from: [{source: {principals: ["cluster.local/ns/shop/sa/productpage"]}}]
 *       to: [{operation: {methods: ["GET"], paths: ["/reviews/{*}"]}}]
 *       when: [{key: request.headers[x-version], values: ["v1"]}]
 *
 * A document in the root namespace without a selector applies mesh-wide,
 * one in the proxy's namespace without a selector to the namespace, one
 * whose selector matches the Proxy's labels to this workload; every
 * applicable document counts (they are not layered as PeerAuthentication).
 */
enum proxy_authz_action { PROXY_AUTHZ_ALLOW, PROXY_AUTHZ_DENY, PROXY_AUTHZ_AUDIT };

typedef struct proxy_authz_source {
    proxy_str_list_t principals, not_principals, request_principals, not_request_principals;
    proxy_str_list_t namespaces, not_namespaces, ip_blocks, not_ip_blocks, remote_ip_blocks, not_remote_ip_blocks;
} proxy_authz_source_t;

typedef struct proxy_authz_operation {
    proxy_str_list_t hosts, not_hosts, ports, not_ports, methods, not_methods, paths, not_paths;
} proxy_authz_operation_t;

typedef struct proxy_authz_condition {
    const char *key; /* as written: "request.headers[x-token]" */
    proxy_str_list_t values, not_values;
    proxy_pos_t pos;
} proxy_authz_condition_t;

typedef struct proxy_authz_rule {
    proxy_authz_source_t *from;
    size_t n_from;
    proxy_authz_operation_t *to;
    size_t n_to;
    proxy_authz_condition_t *when;
    size_t n_when;
    proxy_pos_t pos;
} proxy_authz_rule_t;

typedef struct proxy_authorization_policy {
    proxy_meta_t meta;
    int has_selector; /* selector.matchLabels with at least one label */
    proxy_kv_list_t selector;
    enum proxy_authz_action action;
    proxy_authz_rule_t *rules;
    size_t n_rules;
    int dry_run; /* metadata.annotations istio.io/dry-run: "true": evaluated and reported, never enforced */
} proxy_authorization_policy_t;

/* ---- RequestAuthentication (security.istio.io/v1) ---- */

typedef struct proxy_jwt_header {
    const char *name;   /* lowercase */
    const char *prefix; /* stripped before the token ("Bearer "), may be "" */
} proxy_jwt_header_t;

#define PROXY_CLAIM_DEPTH_MAX 8

typedef struct proxy_claim_header {
    const char *header;                      /* lowercase */
    const char *claim;                       /* a top-level claim, or a dotted path "a.b" */
    const char *path[PROXY_CLAIM_DEPTH_MAX]; /* claim split at its dots (at most this deep) */
    size_t depth;
} proxy_claim_header_t;

/* One of spec.jwtRules. Without fromHeaders and fromParams: Authorization "Bearer " and ?access_token. */
typedef struct proxy_jwt_rule {
    const char *issuer;
    proxy_str_list_t audiences;
    struct jwks *jwks; /* parsed from jwks or the jwksUri file at load; freed with the configuration */
    const char *jwks_uri;
    int jwks_remote;                 /* jwksUri is http(s)://: the keys come from jwks_source */
    struct jwks_source *jwks_source; /* bound by the running proxy (jwks_fetch.h), NULL under --check */
    uint64_t fetch_timeout_ms;       /* timeout: of each fetch of a remote jwksUri (0: the default) */
    proxy_jwt_header_t *from_headers;
    size_t n_from_headers;
    proxy_str_list_t from_params;
    int forward_original_token;
    const char *output_payload_to_header; /* lowercase, or NULL */
    proxy_claim_header_t *claim_headers;
    size_t n_claim_headers;
    proxy_pos_t pos;
} proxy_jwt_rule_t;

typedef struct proxy_request_authentication {
    proxy_meta_t meta;
    int has_selector;
    proxy_kv_list_t selector;
    proxy_jwt_rule_t *rules;
    size_t n_rules;
} proxy_request_authentication_t;

/* The Istio endpoint label that says an endpoint has a sidecar (auto mutual TLS). */
#define PROXY_TLS_MODE_LABEL "security.istio.io/tlsMode"

/* ---- the whole file ---- */

typedef struct proxy_config {
    arena_t arena; /* owns everything below */
    const char *file;
    proxy_spec_t proxy;
    proxy_service_entry_t *services;
    size_t n_services;
    proxy_virtual_service_t *virtual_services;
    size_t n_virtual_services;
    proxy_destination_rule_t *destination_rules;
    size_t n_destination_rules;
    proxy_rate_limit_t *rate_limits;
    size_t n_rate_limits;
    proxy_telemetry_t *telemetries;
    size_t n_telemetries;
    proxy_tm_effective_t telemetry; /* filled by pass two */
    proxy_peer_authentication_t *peer_authentications;
    size_t n_peer_authentications;
    proxy_mtls_effective_t mtls; /* filled by pass two */
    proxy_authorization_policy_t *authorization_policies;
    size_t n_authorization_policies;
    const proxy_authorization_policy_t **authz; /* those that apply to this proxy (pass two), in file order */
    size_t n_authz;
    proxy_request_authentication_t *request_authentications;
    size_t n_request_authentications;
    const proxy_jwt_rule_t **jwt_rules; /* the jwtRules of those that apply to this proxy (pass two) */
    size_t n_jwt_rules;
    regex_t **regexes; /* every compiled regex, for destroy */
    size_t n_regexes, cap_regexes;
} proxy_config_t;

/*
 * Load and check the file at path. Every error goes to err and every
 * warning to warn (may be NULL), both with the caller's ctx. Returns the
 * model, owned by the caller (proxy_config_destroy), or NULL when there was
 * any error, including a file that cannot be read or is larger than
 * PROXY_CONFIG_MAX_BYTES.
 */
proxy_config_t *proxy_config_load(const char *path, config_error_fn err, config_error_fn warn, void *ctx);
/*
 * The same from several files, whose documents together make one
 * configuration (a workload's Proxy document in one, the mesh's
 * VirtualServices and the rest in another, as two mounted ConfigMaps hold
 * them); messages name the file each position is in. At most
 * PROXY_CONFIG_MAX_FILES.
 */
#define PROXY_CONFIG_MAX_FILES 16
proxy_config_t *proxy_config_load_files(const char *const *paths, size_t n, config_error_fn err, config_error_fn warn,
                                        void *ctx);

/* Same from len bytes of text; name stands for the file in messages. */
proxy_config_t *proxy_config_load_string(const char *name, const char *text, size_t len, config_error_fn err,
                                         config_error_fn warn, void *ctx);

/* Free a model; NULL is a no-op. */
void proxy_config_destroy(proxy_config_t *cfg);

/* Longest name proxy_host_forms writes (a 253-byte name in a 63-byte namespace, expanded), with its NUL. */
#define PROXY_HOST_MAX 352
/* Most forms proxy_host_forms returns. */
#define PROXY_HOST_FORMS 3

/*
 * The names the host name (len bytes, no port) written in namespace ns
 * stands for, lowercased into forms[], in the order they are tried:
 *   1. Istio's reading: a short name (no dot) is NAME.ns.svc.cluster.local;
 *      any other name is itself;
 *   2. with dns_forms (a Host header, read from the sidecar's namespace):
 *      Kubernetes' partial names NAME.NS2 and NAME.NS2.svc completed to
 *      NAME.NS2.svc.cluster.local, as the DNS search path does;
 *   3. the same service in its other form seen from ns: the short NAME,
 *      when the name is short or its form above is NAME.ns.svc.cluster.local.
 * "*", "*.x" and IPv6 literals are themselves only. ns is a valid (so
 * lowercase) namespace, NULL for "default". Allocates nothing. Returns the
 * number of forms, 0 when the name is empty or too long.
 */
size_t proxy_host_forms(const char *name, size_t len, const char *ns, int dns_forms,
                        char forms[PROXY_HOST_FORMS][PROXY_HOST_MAX]);

/* Which ServiceEntry a host name names (proxy_config_resolve). */
typedef struct proxy_host_ref {
    const proxy_service_entry_t *service; /* NULL: none */
    const proxy_host_t *host;             /* the host of service that matched */
    /* an ambiguity: another entry that a later form names exactly, or NULL */
    const proxy_service_entry_t *shadowed;
    const proxy_host_t *shadowed_host;
} proxy_host_ref_t;

/*
 * The ServiceEntry that serves name written in namespace ns (a reference
 * from a VirtualService, DestinationRule or RateLimit): the entry with a
 * host equal to the first of the name's forms (proxy_host_forms without
 * dns_forms) that some entry has; failing any exact host, the longest
 * wildcard host ("*.example.com", "*") matching a form. Fills *out.
 */
void proxy_config_resolve(const proxy_config_t *cfg, const char *name, const char *ns, proxy_host_ref_t *out);

/* proxy_config_resolve's service alone, or NULL. */
const proxy_service_entry_t *proxy_config_find_service(const proxy_config_t *cfg, const char *name, const char *ns);

/* The DestinationRule for the entry's hosts, or NULL. */
const proxy_destination_rule_t *proxy_config_find_rule(const proxy_config_t *cfg, const proxy_service_entry_t *se);

/* The subset called name in rule, or NULL. */
const proxy_subset_t *proxy_rule_find_subset(const proxy_destination_rule_t *rule, const char *name);

/* The value of key in a string map (labels), or NULL. */
const char *proxy_kv_get(const proxy_kv_list_t *l, const char *key);

/* Does the endpoint carry every label of the subset? */
int proxy_subset_selects(const proxy_subset_t *subset, const proxy_endpoint_t *ep);

/*
 * Parse an Istio duration ("1s", "0.5s", "250ms", "1m", "1h", "1h30m"; units
 * h, m, s, ms, us, ns) into milliseconds. Returns 0, or -1 for bad syntax,
 * overflow, or a non-zero duration under 1 ms.
 */
int proxy_duration_parse(const char *s, uint64_t *ms);

/*
 * Istio's protocol selection for a port: not HTTP (proxied as bytes) when
 * its protocol is TCP, TLS, HTTPS, MONGO, MYSQL or REDIS, or, with no
 * protocol, its name's prefix is one of those ("tcp-db").
 */
int proxy_port_is_tcp(const proxy_port_t *p);

#endif
