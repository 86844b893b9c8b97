/*
 * tokens: see tokens.h.
 */
#include "tokens.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "files.h"
#include "xalloc.h"

#define DIGEST_LEN 32 /* SHA-256 */

typedef struct token_entry {
    unsigned char digest[DIGEST_LEN];
    char ns[IDENT_LABEL_MAX + 1], sa[IDENT_LABEL_MAX + 1];
} token_entry_t;

struct tokens {
    token_entry_t *entries;
    size_t n, cap;
};

typedef struct parse_state {
    const char *name;
    tokens_error_fn on_error;
    void *ctx;
    size_t errors;
} parse_state_t;

__attribute__((format(printf, 3, 4))) static void report(parse_state_t *ps, size_t line, const char *fmt, ...)
{
    ps->errors++;
    if (ps->errors > TOKENS_ERRORS_MAX || ps->on_error == NULL)
        return;
    char why[384], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(msg, sizeof(msg), "%s:%zu: %s", ps->name, line, why);
    else
        snprintf(msg, sizeof(msg), "%s: %s", ps->name, why);
    ps->on_error(ps->ctx, msg);
}

static void digest(const char *token, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = 0;
    /* SHA-256 of a short buffer fails only when OpenSSL itself is broken */
    if (EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) != 1 || n != DIGEST_LEN)
        memset(out, 0, DIGEST_LEN);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* The fields of one line (without its newline): up to 4 slices, the rest counted. */
static size_t split(const char *p, const char *end, const char *start[4], size_t len[4])
{
    size_t n = 0;
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            break;
        const char *f = p;
        while (p < end && !is_space(*p))
            p++;
        if (n < 4) {
            start[n] = f;
            len[n] = (size_t)(p - f);
        }
        n++;
    }
    return n;
}

static void parse_line(tokens_t *t, parse_state_t *ps, size_t line, const char *p, const char *end)
{
    const char *f[4];
    size_t fl[4];
    size_t n = split(p, end, f, fl);
    if (n == 0 || f[0][0] == '#')
        return;
    if (n >= 4 && f[3][0] == '#')
        n = 3;
    if (n != 3) {
        report(ps, line, "expected TOKEN NAMESPACE SERVICE-ACCOUNT, found %zu field%s", n, n == 1 ? "" : "s");
        return;
    }
    bool ok = true;
    if (fl[0] < TOKEN_MIN_LEN || fl[0] > TOKEN_MAX_LEN) {
        report(ps, line, "the token is %zu bytes long; use %d to %d (e.g. `openssl rand -hex 32`)", fl[0],
               TOKEN_MIN_LEN, TOKEN_MAX_LEN);
        ok = false;
    } else {
        for (size_t i = 0; i < fl[0]; i++) {
            unsigned char c = (unsigned char)f[0][i];
            if (c < 0x21 || c > 0x7e) {
                report(ps, line, "the token has a byte that is not printable ASCII (at byte %zu)", i + 1);
                ok = false;
                break;
            }
        }
    }
    char names[2][IDENT_LABEL_MAX + 1];
    static const char *const what[2] = {"namespace", "service account"};
    for (int k = 0; k < 2; k++) {
        char value[TOKEN_MAX_LEN + 1], why[256];
        size_t vl = fl[k + 1] < TOKEN_MAX_LEN ? fl[k + 1] : TOKEN_MAX_LEN;
        memcpy(value, f[k + 1], vl);
        value[vl] = '\0';
        if (ident_check_label(value, why, sizeof(why)) != 0) {
            report(ps, line, "%s \"%.64s%s\": %s", what[k], value, vl > 64 ? "..." : "", why);
            ok = false;
            continue;
        }
        memcpy(names[k], value, vl + 1);
    }
    if (!ok)
        return;
    token_entry_t e;
    digest(f[0], fl[0], e.digest);
    for (size_t i = 0; i < t->n; i++) {
        if (CRYPTO_memcmp(t->entries[i].digest, e.digest, DIGEST_LEN) == 0) {
            report(ps, line, "this token is already listed (for %s/%s); a token maps to one identity", t->entries[i].ns,
                   t->entries[i].sa);
            return;
        }
    }
    if (t->n == TOKENS_MAX) {
        report(ps, line, "more than %d tokens", TOKENS_MAX);
        return;
    }
    memcpy(e.ns, names[0], sizeof(e.ns));
    memcpy(e.sa, names[1], sizeof(e.sa));
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->entries = xrealloc(t->entries, t->cap * sizeof(*t->entries));
    }
    t->entries[t->n++] = e;
}

tokens_t *tokens_parse(const char *name, const char *text, size_t len, tokens_error_fn on_error, void *ctx)
{
    parse_state_t ps = {.name = name, .on_error = on_error, .ctx = ctx};
    tokens_t *t = xcalloc(1, sizeof(*t));
    const char *p = text, *end = text + len;
    size_t line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        line++;
        size_t n = (size_t)(eol - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (memchr(p, '\0', n) != NULL)
            report(&ps, line, "NUL byte in the line");
        else
            parse_line(t, &ps, line, p, p + n);
        p = nl != NULL ? nl + 1 : end;
    }
    if (ps.errors > TOKENS_ERRORS_MAX && on_error != NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s: ... and %zu more errors", name, ps.errors - TOKENS_ERRORS_MAX);
        on_error(ctx, msg);
    }
    if (ps.errors > 0) {
        tokens_destroy(t);
        return NULL;
    }
    return t;
}

tokens_t *tokens_load(const char *path, tokens_error_fn on_error, void *ctx)
{
    char err[512];
    size_t len;
    char *text = files_read(path, TOKENS_FILE_MAX, &len, err, sizeof(err));
    if (text == NULL) {
        if (on_error != NULL)
            on_error(ctx, err);
        return NULL;
    }
    tokens_t *t = tokens_parse(path, text, len, on_error, ctx);
    OPENSSL_cleanse(text, len);
    free(text);
    return t;
}

size_t tokens_count(const tokens_t *t)
{
    return t != NULL ? t->n : 0;
}

int tokens_lookup(const tokens_t *t, const char *token, size_t len, char *ns, char *sa)
{
    unsigned char d[DIGEST_LEN];
    size_t found = SIZE_MAX;
    if (t == NULL)
        return -1;
    digest(token, len, d);
    /* every entry is compared, with no early exit */
    for (size_t i = 0; i < t->n; i++) {
        int eq = CRYPTO_memcmp(t->entries[i].digest, d, DIGEST_LEN) == 0;
        found = eq ? i : found;
    }
    if (found == SIZE_MAX)
        return -1;
    memcpy(ns, t->entries[found].ns, IDENT_LABEL_MAX + 1);
    memcpy(sa, t->entries[found].sa, IDENT_LABEL_MAX + 1);
    return 0;
}

void tokens_destroy(tokens_t *t)
{
    if (t == NULL)
        return;
    free(t->entries);
    free(t);
}
