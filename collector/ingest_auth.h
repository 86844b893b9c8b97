/*
 * ingest_auth: who may send spans, metrics and logs to the collector.
 *
 * Two ways, either or both: a bearer token from the ingest.auth.tokens
 * file ("Authorization: Bearer TOKEN", RFC 6750), and a client
 * certificate that chains to ingest.tls.clientCaFile (mutual TLS, checked
 * in the handshake by ingest_tls.h), optionally limited to the SPIFFE ids
 * of ingest.tls.clientIds. Queries, /metrics and /health never need
 * either.
 *
 * The tokens file has one token a line:
 *
 *   # comments and blank lines are ignored
 *   TOKEN [NAME] [# comment]
 *
 * separated by spaces or tabs. A token is INGEST_TOKEN_MIN to
 * INGEST_TOKEN_MAX bytes of printable ASCII (`openssl rand -hex 32` makes a
 * good one) and appears once; NAME (letters, digits and ._:@/-, at most
 * INGEST_TOKEN_NAME_MAX bytes) says which sender it is, in logs and in
 * outrider_collector_ingest_auth_requests_total{sender}; two tokens may
 * share a name (the old and the new one while a sender rotates).
 *
 * Only SHA-256 digests of the tokens are kept, and a request's token is
 * compared with every digest in constant time (ingest_auth_ct_equal), so
 * neither memory nor response timing gives a token away. Nothing here
 * ever logs or reports a token: errors name the file, line and column.
 *
 * Threads. A token set is immutable. The HTTP threads check requests
 * under a read lock; ingest_auth_reload (SIGHUP, main thread) parses the
 * file outside the lock and swaps the whole set under the write lock, or
 * keeps the old set when the new file is bad. Counters are atomics.
 */
#ifndef OUTRIDER_COLLECTOR_INGEST_AUTH_H
#define OUTRIDER_COLLECTOR_INGEST_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "settings.h"

#define INGEST_TOKEN_MIN 16               /* bytes; shorter ones are guessable */
#define INGEST_TOKEN_MAX 4096             /* bytes */
#define INGEST_TOKEN_NAME_MAX 64          /* bytes of a sender's name */
#define INGEST_TOKENS_MAX 10000           /* tokens in one file */
#define INGEST_TOKENS_FILE_MAX (4u << 20) /* bytes of the file */
#define INGEST_TOKENS_ERRORS_MAX 20       /* errors reported before "... and N more" */
#define INGEST_AUTH_SENDERS_MAX 10000     /* distinct sender names counted over every reload */
#define INGEST_AUTH_LOG_INTERVAL_MS 10000 /* refusals are logged at most this often (with a count) */
#define INGEST_AUTH_REALM "outrider"      /* of the WWW-Authenticate challenge */
#define INGEST_AUTH_UNNAMED "unnamed"     /* sender label of a token without a name */
#define INGEST_CLIENT_ID_MAX 2048         /* bytes of a client certificate's URI SAN */

/* ---- the token file ---- */

typedef struct ingest_tokens ingest_tokens_t;

/* Receives one error message ("FILE:LINE:COL: reason"). */
typedef void (*ingest_auth_error_fn)(void *ctx, const char *message);

/*
 * Parse len bytes in the format above; name is what messages call the
 * file. Every error goes to on_error (at most INGEST_TOKENS_ERRORS_MAX, then
 * a count). Returns the set, or NULL when there was any error or no token
 * at all (an empty file would lock every sender out). Free with
 * ingest_tokens_destroy.
 */
ingest_tokens_t *ingest_tokens_parse(const char *name, const char *text, size_t len, ingest_auth_error_fn on_error,
                                     void *ctx);

/* ingest_tokens_parse on the contents of path (at most INGEST_TOKENS_FILE_MAX bytes; the copy read is wiped). */
ingest_tokens_t *ingest_tokens_load(const char *path, ingest_auth_error_fn on_error, void *ctx);

/* Tokens in t. */
size_t ingest_tokens_count(const ingest_tokens_t *t);

/*
 * The index of the len bytes of token in t, or -1. Compares with every
 * entry whatever matches, in time that does not depend on the token.
 */
int ingest_tokens_find(const ingest_tokens_t *t, const char *token, size_t len);

/* The name of token i ("" when it has none). */
const char *ingest_tokens_name(const ingest_tokens_t *t, size_t i);

/* Free t (NULL is a no-op); the digests are wiped. */
void ingest_tokens_destroy(ingest_tokens_t *t);

/* 1 when the n bytes at a and b are equal, else 0, in time that depends on n only. */
int ingest_auth_ct_equal(const void *a, const void *b, size_t n);

/*
 * The token of an Authorization header value "Bearer TOKEN" (the scheme in
 * any case, spaces or tabs around the token): 0 with *token, *len set (a
 * slice of header), -1 when it is another scheme or the token is empty.
 */
int ingest_auth_bearer(const char *header, const char **token, size_t *len);

/*
 * Whether a client certificate's SPIFFE id is among ids: equal to one, or
 * starting with one that ends in '/' ("spiffe://cluster.local/ns/shop/"
 * allows every workload of namespace shop). Empty ids allow every id.
 */
int ingest_auth_id_allowed(const setting_list_t *ids, const char *id);

/*
 * Check one ingest.tls.clientIds item: spiffe://TRUST-DOMAIN followed by a
 * path, or ending in '/' (a prefix); 0, or -1 with the reason in why.
 */
int ingest_auth_check_id_pattern(const char *pattern, char *why, size_t why_len);

/* ---- the live state the HTTP threads use ---- */

typedef struct ingest_auth ingest_auth_t;

enum ingest_auth_result {
    INGEST_AUTH_OK = 0,
    INGEST_AUTH_MISSING_TOKEN, /* no Authorization header: 401 */
    INGEST_AUTH_NOT_BEARER,    /* another scheme, or an empty token: 401 */
    INGEST_AUTH_INVALID_TOKEN, /* not in the file: 401 */
    INGEST_AUTH_FORBIDDEN_ID,  /* a client certificate whose SPIFFE id ingest.tls.clientIds does not allow: 403 */
    INGEST_AUTH_RESULTS_,
};

/* The reason label of a refusal ("missing_token", ...), "ok" for INGEST_AUTH_OK. */
const char *ingest_auth_reason(enum ingest_auth_result r);

/*
 * tokens_path (NULL or "": no tokens needed) is loaded now: NULL with the
 * errors passed to on_error when it is bad. client_ids (copied; may be
 * NULL or empty) limit the SPIFFE ids of client certificates. Free with
 * ingest_auth_destroy.
 */
ingest_auth_t *ingest_auth_create(const char *tokens_path, const setting_list_t *client_ids,
                                  ingest_auth_error_fn on_error, void *ctx);

/* Whether requests need a token (a tokens file was given). */
int ingest_auth_tokens_required(const ingest_auth_t *a);

/* Whether client certificates' ids are checked (ingest.tls.clientIds is not empty). */
int ingest_auth_ids_limited(const ingest_auth_t *a);

/*
 * Read the tokens file again (SIGHUP). On success the new set replaces the
 * old one at once and it returns the number of tokens; a file that cannot
 * be read or parsed keeps the old set, passes each error to on_error and
 * returns -1. Either way it is logged. 0 without a tokens file.
 */
int ingest_auth_reload(ingest_auth_t *a, ingest_auth_error_fn on_error, void *ctx);

/*
 * Check one ingest request: authorization is its Authorization header
 * (NULL when absent), client_id the URI SAN of its verified client
 * certificate (NULL when none; only looked at when ids are limited).
 * Counts the outcome: a refusal by reason, an acceptance by token by the
 * token's sender name.
 */
enum ingest_auth_result ingest_auth_check(ingest_auth_t *a, const char *authorization, const char *client_id);

/*
 * Log a refusal (never the token): the first one at once, then at most
 * once per INGEST_AUTH_LOG_INTERVAL_MS with the number left out since.
 * peer is the client's address, what the request ("POST /v1/traces").
 */
void ingest_auth_log_refusal(ingest_auth_t *a, enum ingest_auth_result r, const char *peer, const char *what,
                             const char *client_id);

/* Refusals so far by reason (tests). */
uint64_t ingest_auth_failures(const ingest_auth_t *a, enum ingest_auth_result r);

/*
 * Append the Prometheus families: outrider_collector_ingest_auth_failures_total{reason},
 * and with a tokens file outrider_collector_ingest_auth_requests_total{sender},
 * outrider_collector_ingest_auth_tokens and outrider_collector_ingest_auth_reload_success.
 */
void ingest_auth_render_metrics(ingest_auth_t *a, buf_t *b, int openmetrics);

/* Free a (NULL is a no-op). */
void ingest_auth_destroy(ingest_auth_t *a);

/*
 * Read a whole file of at most max bytes into a NUL-terminated heap copy
 * (*len bytes before the NUL). NULL with "PATH: reason" in why when it
 * cannot be read or is larger. The caller frees (and wipes what is secret).
 */
char *ingest_read_file(const char *path, size_t max, size_t *len, char *why, size_t why_len);

#endif
