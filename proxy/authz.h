/*
 * authz: Istio's AuthorizationPolicy decision for the inbound side, over
 * the documents config_authz.c picked for this proxy (cfg->authz),
 * compiled once per configuration.
 *
 * Istio's order: a matching DENY policy denies; else, with no ALLOW
 * policy, the request is allowed; else it is allowed when an ALLOW policy
 * matches and denied when none does. AUDIT policies do not decide; the one
 * that matched is reported. A policy matches when one of its rules does
 * (no rules: nothing); a rule when one of its from sources (if any), one
 * of its to operations (if any) and all of its when conditions match;
 * each field when one of its values matches (if any) and none of its
 * not-values does. Strings match exactly, by "prefix*", "*suffix" or "*"
 * (present and non-empty); hosts ignore case and, written without a
 * port, match the Host with any port; paths also match templates ({*}
 * one segment, {**} the rest).
 * Principals are the peer's SPIFFE id without "spiffe://"
 * ("cluster.local/ns/shop/sa/productpage"); a namespace is the ns part.
 */
#ifndef OUTRIDER_PROXY_AUTHZ_H
#define OUTRIDER_PROXY_AUTHZ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "http1.h"

typedef struct authz authz_t;

/*
 * What a decision reads of a request; absent attributes are empty (str_t
 * len 0) or NULL. With tcp (a TCP connection, not an HTTP request), as
 * Istio does for TCP: a rule with an HTTP-only field (hosts, methods,
 * paths, requestPrincipals, request.* conditions, and their not- forms)
 * never matches in an ALLOW or AUDIT policy, and in a DENY policy those
 * fields are left out (so it denies more).
 */
typedef struct authz_request {
    bool tcp;
    str_t method;
    str_t path;      /* normalized (authz_normalize_path), without the query */
    str_t authority; /* the Host header's value */
    const http1_header_t *headers;
    uint32_t n_headers;
    uint32_t dest_port;                    /* the workload port the request is for (destination.port) */
    const struct sockaddr_storage *source; /* the peer's address (source.ip, ipBlocks), NULL when unknown */
    const struct sockaddr_storage *remote; /* the original client (remote.ip, remoteIpBlocks): authz_remote_addr */
    const struct sockaddr_storage *dest;   /* destination.ip, NULL when unknown */
    str_t principal;                       /* the peer's verified SPIFFE id ("spiffe://..."), empty without mTLS */
    str_t sni;                             /* connection.sni, empty when none */
    /* the verified JWT (RequestAuthentication), all empty without one */
    str_t request_principal; /* "iss/sub" */
    str_t presenter;         /* azp */
    const str_t *audiences;
    uint32_t n_audiences;
    /* request.auth.claims[a][b]: the claim's values as strings (an array claim gives each element), or 0 */
    uint32_t (*claim)(const void *ctx, const char *const *path, uint32_t depth, str_t *out, uint32_t max);
    const void *claim_ctx;
} authz_request_t;

typedef struct authz_decision {
    bool allowed;
    const proxy_authorization_policy_t *policy; /* the one that decided (DENY or ALLOW matched), NULL: none did */
    int rule;                                   /* its rule that matched, -1 when policy is NULL */
    const proxy_authorization_policy_t *audit;  /* an AUDIT policy that matched, NULL when none */
    /* istio.io/dry-run policies, evaluated as a set of their own and never enforced */
    bool dry_run;                                       /* some apply */
    bool dry_run_allowed;                               /* what they would have decided */
    const proxy_authorization_policy_t *dry_run_policy; /* and which of them decided, NULL: none */
} authz_decision_t;

/* Counters by policy, for /stats/prometheus; index = position in cfg->authz, n_authz for "no policy matched". */
enum authz_result { AUTHZ_ALLOWED, AUTHZ_DENIED, AUTHZ_AUDITED, AUTHZ_RESULTS };

/* Compile cfg->authz; NULL when no policy applies (every request is allowed) or out of memory (never returns NULL
 * for a non-empty set: aborts like every allocation here). */
authz_t *authz_compile(const proxy_config_t *cfg);
void authz_free(authz_t *a);

/* Decide; also counts the decision. a may be NULL (allowed, nothing counted). */
void authz_check(authz_t *a, const authz_request_t *r, authz_decision_t *d);
/* The same, through the candidate index (full false) or over every rule (full true; for tests). */
void authz_check_mode(authz_t *a, const authz_request_t *r, authz_decision_t *d, bool full);

/* Whether any rule asks for an address (source.ip, remote.ip, ipBlocks...), so the caller parses it only then. */
bool authz_wants_addresses(const authz_t *a);

/* Append "outrider_proxy_authz_requests_total{policy,action,result}" series for every counter that is not zero. */
void authz_render_prometheus(const authz_t *a, buf_t *out);

#define AUTHZ_XFF_HOPS_MAX 16 /* spec.numTrustedProxies at most */

/*
 * remote.ip with hops trusted proxies in front (Istio's numTrustedProxies,
 * Envoy's xff_num_trusted_hops on a proxy that uses the peer's address):
 * the hops-th address from the right of X-Forwarded-For as it arrived
 * (every such field, in order, as one list), into *out. The entries the
 * trusted proxies appended are believed; anything left of them is the
 * client's to say. Returns false (the caller uses the peer) when hops is
 * 0, the list is shorter, or that entry is not an IP address (a port or
 * brackets are not taken: proxies append bare addresses).
 */
bool authz_remote_addr(const http1_header_t *headers, uint32_t n, int hops, struct sockaddr_storage *out);

/*
 * The path authorization sees and the app gets: percent-encoded
 * unreserved characters decoded ("%41" -> "A"), "." and ".." segments
 * removed (RFC 3986 5.2.4), as Istio's default (BASE) normalization does;
 * other escapes ("%2F") are kept as they are; a ".." at the root stays
 * there. path is the origin-form path without the query. Appends to out;
 * returns -1 when the path does not start with '/'.
 */
int authz_normalize_path(str_t path, buf_t *out);

#endif
