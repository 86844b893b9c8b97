/*
 * tokens: the bearer tokens `outriderctl ca serve` accepts, each bound to
 * the one workload identity it may get certificates for.
 *
 * The file has one token a line:
 *
 *   # comments and blank lines are ignored
 *   TOKEN  NAMESPACE  SERVICE-ACCOUNT   [# comment]
 *
 * separated by spaces or tabs. A token is TOKEN_MIN_LEN to TOKEN_MAX_LEN
 * bytes of printable ASCII (what fits an HTTP header unquoted; `openssl
 * rand -hex 32` makes a good one); namespace and service account follow
 * ident_check_label. A token may appear once.
 *
 * Only SHA-256 digests of the tokens are kept, and a lookup compares the
 * presented token's digest with every entry in constant time, so neither a
 * memory dump nor response timing gives a token away. No message here ever
 * contains a token: errors name the file and line.
 *
 * A loaded table is immutable; the server swaps whole tables on SIGHUP.
 */
#ifndef OUTRIDER_CTL_TOKENS_H
#define OUTRIDER_CTL_TOKENS_H

#include <stddef.h>

#include "ident.h"

#define TOKENS_MAX 65536            /* tokens in one file */
#define TOKEN_MIN_LEN 16            /* bytes; shorter ones are guessable */
#define TOKEN_MAX_LEN 1024          /* bytes */
#define TOKENS_FILE_MAX (16u << 20) /* bytes */
#define TOKENS_ERRORS_MAX 20        /* errors reported before "... and N more" */

typedef struct tokens tokens_t;

/* Receives one error message ("FILE:LINE: reason"); ctx is the caller's. */
typedef void (*tokens_error_fn)(void *ctx, const char *message);

/*
 * Parse len bytes of text in the format above; name is what error
 * messages call the file. Every error is passed to on_error (at most
 * TOKENS_ERRORS_MAX of them, then a count). Returns the table, or NULL
 * when there was any error. An empty file is a valid, empty table.
 * Free with tokens_destroy.
 */
tokens_t *tokens_parse(const char *name, const char *text, size_t len, tokens_error_fn on_error, void *ctx);

/* tokens_parse on the contents of path (at most TOKENS_FILE_MAX bytes). */
tokens_t *tokens_load(const char *path, tokens_error_fn on_error, void *ctx);

/* The number of tokens in t. */
size_t tokens_count(const tokens_t *t);

/*
 * Look up the len bytes of token. Returns 0 and copies the namespace and
 * service account it is bound to into ns and sa (IDENT_LABEL_MAX + 1 bytes
 * each), or -1 when t does not hold it. The time taken does not depend on
 * which entry matches, or on whether one does.
 */
int tokens_lookup(const tokens_t *t, const char *token, size_t len, char *ns, char *sa);

/* Free t (NULL is a no-op). */
void tokens_destroy(tokens_t *t);

#endif
