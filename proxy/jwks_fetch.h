/*
 * jwks_fetch: the keys of a RequestAuthentication jwksUri that names a
 * server (https://, or http://), fetched by the sidecar and cached.
 *
 * One fetcher per process, with one background thread. Each distinct URI
 * the running configurations name is a source: bound (jwks_fetcher_bind)
 * when a configuration is loaded, dropped with the last configuration that
 * names it (jwks_source_unref, from whichever thread frees it). So a
 * reload that keeps a URI keeps its keys: no gap, no refetch storm.
 *
 * The thread fetches a new source at once, then every refresh interval
 * (spec.jwks.refreshInterval, default 20 minutes as istiod's
 * PILOT_JWT_PUB_KEY_REFRESH_INTERVAL). A failed fetch (no answer within
 * the rule's timeout, a status other than 200, a body over
 * JWKS_MAX_BYTES, a document with no usable key) keeps the keys fetched
 * before, and is tried again after 1 s, doubling to 60 s. The first
 * failure with a new reason is logged; so is a success after failures
 * and every change of keys. jwks_fetcher_wake (SIGHUP) fetches every
 * source now (one being fetched, once more when that fetch ends).
 *
 * https: the server's certificate must chain to spec.jwks.caFile (the
 * system's bundle without one) and name the URI's host.
 *
 * Verification takes the current set with jwks_source_keys (a reference,
 * under the source's own mutex, held for a pointer copy); a request
 * before the first successful fetch finds none and is refused with
 * Envoy's "Jwks remote fetch is failed". /ready waits until every bound
 * source has been tried once (jwks_fetcher_settled), as Envoy's listener
 * waits for its first fetch.
 */
#ifndef OUTRIDER_PROXY_JWKS_FETCH_H
#define OUTRIDER_PROXY_JWKS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "jwt.h"

#define JWKS_REFRESH_DEFAULT_MS (20ull * 60 * 1000) /* istiod's default refresh */
#define JWKS_FETCH_TIMEOUT_DEFAULT_MS 5000ull       /* RequestAuthentication jwtRules[].timeout default */
#define JWKS_RETRY_MIN_MS 1000u
#define JWKS_RETRY_MAX_MS 60000u
#define JWKS_URI_MAX 1000

typedef struct jwks_fetcher jwks_fetcher_t;
typedef struct jwks_source jwks_source_t;

/*
 * Split a remote jwksUri into origin ("https://HOST:PORT", the scheme's
 * port when the URI has none) and path ("/..." with any query; "/" when
 * empty; a fragment dropped). Refused, with a reason: another scheme,
 * user information, an empty host or a bad port, over JWKS_URI_MAX bytes.
 * Returns 0 or -1.
 */
int jwks_uri_split(const char *uri, char *origin, size_t olen, char *path, size_t plen, const char **why);

/* Whether uri names a server (http:// or https://) rather than a file. */
bool jwks_uri_remote(const char *uri);

jwks_fetcher_t *jwks_fetcher_create(void);

/* Where https certificates must chain to (NULL: the system's bundle) and how often keys are fetched again. */
void jwks_fetcher_configure(jwks_fetcher_t *f, const char *ca_file, uint64_t refresh_ms);

/* Start the thread; 0 or -1. */
int jwks_fetcher_start(jwks_fetcher_t *f);

/* Fetch every source now (SIGHUP). */
void jwks_fetcher_wake(jwks_fetcher_t *f);

/* Stop the thread (a fetch in flight ends at once) and free the fetcher; every source must be unbound first. */
void jwks_fetcher_destroy(jwks_fetcher_t *f);

/*
 * The source for uri (which jwks_uri_split accepts), made when new; a new
 * one is fetched at once. timeout_ms bounds each fetch (the largest of
 * the rules that share the URI wins). Returns a reference, or NULL when
 * the URI is refused.
 */
jwks_source_t *jwks_fetcher_bind(jwks_fetcher_t *f, const char *uri, uint64_t timeout_ms);

/* Drop a reference (any thread); NULL is a no-op. */
void jwks_source_unref(jwks_source_t *s);

/* The current keys (a reference: jwks_destroy it), or NULL before the first successful fetch. */
jwks_t *jwks_source_keys(jwks_source_t *s);

typedef struct jwks_source_status {
    uint64_t successes, failures;
    int64_t last_success_unix; /* seconds; 0: never */
    size_t keys;
    char last_error[320]; /* "" when the last attempt succeeded */
} jwks_source_status_t;

void jwks_source_status(jwks_source_t *s, jwks_source_status_t *st);

/* Whether every source has been tried at least once; when not, *uri names one still waiting. */
bool jwks_fetcher_settled(jwks_fetcher_t *f, char *uri, size_t len);

/* outrider_proxy_jwks_* families for /stats/prometheus (nothing without sources). */
void jwks_fetcher_metrics(jwks_fetcher_t *f, buf_t *out);

#endif
