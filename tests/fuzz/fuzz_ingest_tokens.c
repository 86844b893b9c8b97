/*
 * libFuzzer target: the collector's ingest.auth.tokens file
 * (collector/ingest_auth.c), the Authorization header and the SPIFFE id
 * patterns of ingest.tls.clientIds.
 *
 * Input: the whole of it is a tokens file, copied into its own heap buffer
 * so ASan sees any read past it. Invariants: no crash, leak or UB; a set
 * comes back exactly when no error was reported, and it is never empty;
 * every well-formed line's token (its first field, when the line parses on
 * its own) is found in the set; no error message contains a line's first
 * field of 16 bytes or more (it may be a token). The same bytes, as a
 * NUL-terminated string, go to the header and pattern parsers: a bearer
 * token is a slice of the header without spaces around it, and an
 * accepted pattern starts with spiffe://.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_auth.h"

typedef struct seen {
    size_t errors;
    const char *text;
    size_t len;
} seen_t;

/* Whether message quotes a whitespace-separated field of 16 bytes or more that opens a line of the input. */
static int quotes_first_field(const seen_t *s, const char *message)
{
    const char *p = s->text, *end = s->text + s->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        const char *f = p;
        while (p < eol && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\0')
            p++;
        size_t fl = (size_t)(p - f);
        if (fl >= 16 && *f != '#') {
            char *field = strndup(f, fl);
            int found = field != NULL && strstr(message, field) != NULL;
            free(field);
            if (found)
                return 1;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    return 0;
}

static void on_error(void *ctx, const char *message)
{
    seen_t *s = ctx;
    s->errors++;
    if (strlen(message) == 0 || quotes_first_field(s, message))
        abort();
}

static void check_set(const ingest_tokens_t *t, const char *text, size_t len)
{
    if (ingest_tokens_count(t) == 0)
        abort();
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        const char *q = p;
        while (q < eol && (*q == ' ' || *q == '\t'))
            q++;
        const char *f = q;
        while (q < eol && *q != ' ' && *q != '\t' && *q != '\r')
            q++;
        if (q > f && *f != '#' && ingest_tokens_find(t, f, (size_t)(q - f)) < 0)
            abort(); /* a line of an accepted file whose token is not in the set */
        p = nl != NULL ? nl + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    seen_t s = {0, text, size};
    ingest_tokens_t *t = ingest_tokens_parse("fuzz", text, size, on_error, &s);
    if ((t == NULL) != (s.errors > 0))
        abort();
    if (t != NULL)
        check_set(t, text, size);
    ingest_tokens_destroy(t);
    free(text);

    char *str = malloc(size + 1);
    memcpy(str, data, size);
    str[size] = '\0';
    const char *token;
    size_t len;
    if (ingest_auth_bearer(str, &token, &len) == 0) {
        if (len == 0 || token < str || token + len > str + strlen(str) || token[0] == ' ' || token[0] == '\t' ||
            token[len - 1] == ' ' || token[len - 1] == '\t')
            abort();
    }
    char why[512];
    if (ingest_auth_check_id_pattern(str, why, sizeof(why)) == 0 && strncmp(str, "spiffe://", 9) != 0)
        abort();
    free(str);
    return 0;
}
