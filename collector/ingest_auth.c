/*
 * ingest_auth: bearer tokens and client ids of ingest requests; see
 * ingest_auth.h.
 */
#include "ingest_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mono.h"
#include "prom_text.h"
#include "xalloc.h"

#define DIGEST_LEN 32 /* SHA-256 */

typedef struct token_entry {
    unsigned char digest[DIGEST_LEN];
    char name[INGEST_TOKEN_NAME_MAX + 1];
    uint32_t line;
    uint32_t sender; /* index into ingest_auth's senders, set when the set is installed */
} token_entry_t;

struct ingest_tokens {
    token_entry_t *e;
    size_t n, cap;
};

/* ---- files ---- */

char *ingest_read_file(const char *path, size_t max, size_t *len, char *why, size_t why_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the opening */
    if (fd < 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(why, why_len, "%s: larger than %zu bytes", path, max);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *text = xmalloc(cap + 1);
    for (;;) {
        ssize_t got = read(fd, text + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(why, why_len, "%s: %s", path, strerror(errno));
            explicit_bzero(text, n);
            free(text);
            close(fd);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n == cap) { /* it grew since fstat */
            if (n > max) {
                snprintf(why, why_len, "%s: larger than %zu bytes", path, max);
                explicit_bzero(text, n);
                free(text);
                close(fd);
                return NULL;
            }
            char *bigger = xmalloc(cap * 2 + 1);
            memcpy(bigger, text, n);
            explicit_bzero(text, n);
            free(text);
            text = bigger;
            cap *= 2;
        }
    }
    close(fd);
    text[n] = '\0';
    *len = n;
    return text;
}

/* ---- comparing and hashing ---- */

int ingest_auth_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned)(x[i] ^ y[i]);
    return (int)(((d - 1u) >> 8) & 1u); /* d is 0..255: 1 only for 0 */
}

static void digest(const char *token, size_t len, unsigned char out[DIGEST_LEN])
{
    /* SHA-256 of a short buffer fails only when GnuTLS itself is broken: then nothing matches */
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, len, out) != 0)
        memset(out, 0xff, DIGEST_LEN);
}

/* ---- the file ---- */

typedef struct parse_state {
    const char *name;
    ingest_auth_error_fn on_error;
    void *ctx;
    size_t errors;
} parse_state_t;

__attribute__((format(printf, 4, 5))) static void report(parse_state_t *ps, size_t line, size_t col, const char *fmt,
                                                         ...)
{
    ps->errors++;
    if (ps->errors > INGEST_TOKENS_ERRORS_MAX || ps->on_error == NULL)
        return;
    char why[384], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(msg, sizeof(msg), "%s:%zu:%zu: %s", ps->name, line, col, why);
    else
        snprintf(msg, sizeof(msg), "%s: %s", ps->name, why);
    ps->on_error(ps->ctx, msg);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._:@/-", c) != NULL;
}

#define FIELDS_MAX 3

/* The fields of one line: up to FIELDS_MAX slices with their columns (1-based); returns how many there are. */
static size_t split(const char *line, const char *end, const char **f, size_t *fl, size_t *col)
{
    size_t n = 0;
    const char *p = line;
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            break;
        const char *s = p;
        while (p < end && !is_space(*p))
            p++;
        if (n < FIELDS_MAX) {
            f[n] = s;
            fl[n] = (size_t)(p - s);
            col[n] = (size_t)(s - line) + 1;
        }
        n++;
    }
    return n;
}

static void parse_line(ingest_tokens_t *t, parse_state_t *ps, size_t line, const char *p, const char *end)
{
    const char *f[FIELDS_MAX];
    size_t fl[FIELDS_MAX], col[FIELDS_MAX];
    size_t n = split(p, end, f, fl, col);
    if (n == 0 || f[0][0] == '#')
        return;
    if (n >= 2 && f[1][0] == '#')
        n = 1;
    else if (n >= 3 && f[2][0] == '#')
        n = 2;
    if (n > 2) {
        report(ps, line, col[2],
               "expected TOKEN [NAME], found more fields (a name has no spaces; comments start "
               "with #)");
        return;
    }
    int ok = 1;
    if (fl[0] < INGEST_TOKEN_MIN || fl[0] > INGEST_TOKEN_MAX) {
        report(ps, line, col[0], "the token is %zu bytes long; use %d to %d (e.g. `openssl rand -hex 32`)", fl[0],
               INGEST_TOKEN_MIN, INGEST_TOKEN_MAX);
        ok = 0;
    } else {
        for (size_t i = 0; i < fl[0]; i++) {
            unsigned char c = (unsigned char)f[0][i];
            if (c < 0x21 || c > 0x7e) {
                report(ps, line, col[0] + i, "the token has a byte that is not printable ASCII");
                ok = 0;
                break;
            }
        }
    }
    token_entry_t e = {.line = (uint32_t)line};
    if (n == 2) {
        if (fl[1] > INGEST_TOKEN_NAME_MAX) {
            report(ps, line, col[1], "the name is longer than %d bytes", INGEST_TOKEN_NAME_MAX);
            ok = 0;
        } else {
            for (size_t i = 0; i < fl[1]; i++) {
                if (!name_char((unsigned char)f[1][i])) {
                    report(ps, line, col[1] + i, "a name is letters, digits and . _ : @ / - only");
                    ok = 0;
                    break;
                }
            }
            if (ok)
                memcpy(e.name, f[1], fl[1]);
        }
    }
    if (!ok)
        return;
    digest(f[0], fl[0], e.digest);
    for (size_t i = 0; i < t->n; i++) {
        if (ingest_auth_ct_equal(t->e[i].digest, e.digest, DIGEST_LEN)) {
            report(ps, line, col[0], "the same token as line %u; a token may appear once", (unsigned)t->e[i].line);
            explicit_bzero(&e, sizeof(e));
            return;
        }
    }
    if (t->n == INGEST_TOKENS_MAX) {
        report(ps, line, col[0], "more than %d tokens", INGEST_TOKENS_MAX);
        explicit_bzero(&e, sizeof(e));
        return;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        token_entry_t *bigger = xcalloc(cap, sizeof(*bigger));
        if (t->e != NULL) {
            memcpy(bigger, t->e, t->n * sizeof(*bigger));
            explicit_bzero(t->e, t->cap * sizeof(*t->e));
            free(t->e);
        }
        t->e = bigger;
        t->cap = cap;
    }
    t->e[t->n++] = e;
    explicit_bzero(&e, sizeof(e));
}

ingest_tokens_t *ingest_tokens_parse(const char *name, const char *text, size_t len, ingest_auth_error_fn on_error,
                                     void *ctx)
{
    parse_state_t ps = {.name = name, .on_error = on_error, .ctx = ctx};
    ingest_tokens_t *t = xcalloc(1, sizeof(*t));
    const char *p = text, *end = text + len;
    size_t line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        line++;
        size_t n = (size_t)(eol - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        const char *nul = memchr(p, '\0', n);
        if (nul != NULL)
            report(&ps, line, (size_t)(nul - p) + 1, "NUL byte in the line");
        else
            parse_line(t, &ps, line, p, p + n);
        p = nl != NULL ? nl + 1 : end;
    }
    if (ps.errors > INGEST_TOKENS_ERRORS_MAX && on_error != NULL) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s: ... and %zu more errors", name, ps.errors - INGEST_TOKENS_ERRORS_MAX);
        on_error(ctx, msg);
    }
    if (ps.errors == 0 && t->n == 0)
        report(&ps, 0, 0, "no token in the file: every sender would be refused (one token a line: TOKEN [NAME])");
    if (ps.errors > 0) {
        ingest_tokens_destroy(t);
        return NULL;
    }
    return t;
}

ingest_tokens_t *ingest_tokens_load(const char *path, ingest_auth_error_fn on_error, void *ctx)
{
    char why[512];
    size_t len;
    char *text = ingest_read_file(path, INGEST_TOKENS_FILE_MAX, &len, why, sizeof(why));
    if (text == NULL) {
        if (on_error != NULL)
            on_error(ctx, why);
        return NULL;
    }
    ingest_tokens_t *t = ingest_tokens_parse(path, text, len, on_error, ctx);
    explicit_bzero(text, len);
    free(text);
    return t;
}

size_t ingest_tokens_count(const ingest_tokens_t *t)
{
    return t != NULL ? t->n : 0;
}

int ingest_tokens_find(const ingest_tokens_t *t, const char *token, size_t len)
{
    unsigned char d[DIGEST_LEN];
    digest(token, len, d);
    long found = -1;
    for (size_t i = 0; i < t->n; i++) {
        long m = -(long)ingest_auth_ct_equal(t->e[i].digest, d, DIGEST_LEN); /* all ones on a match */
        found = (found & ~m) | ((long)i & m);
    }
    explicit_bzero(d, sizeof(d));
    return (int)found;
}

const char *ingest_tokens_name(const ingest_tokens_t *t, size_t i)
{
    return i < t->n ? t->e[i].name : "";
}

void ingest_tokens_destroy(ingest_tokens_t *t)
{
    if (t == NULL)
        return;
    if (t->e != NULL)
        explicit_bzero(t->e, t->cap * sizeof(*t->e));
    free(t->e);
    free(t);
}

/* ---- headers and ids ---- */

int ingest_auth_bearer(const char *h, const char **token, size_t *len)
{
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return -1;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0)
        return -1;
    *token = h;
    *len = n;
    return 0;
}

int ingest_auth_id_allowed(const setting_list_t *ids, const char *id)
{
    if (ids == NULL || ids->n == 0)
        return 1;
    if (id == NULL)
        return 0;
    size_t idl = strlen(id);
    for (size_t i = 0; i < ids->n; i++) {
        const char *p = ids->items[i];
        size_t pl = strlen(p);
        int prefix = pl > 0 && p[pl - 1] == '/';
        if (prefix ? idl > pl && strncmp(id, p, pl) == 0 : strcmp(id, p) == 0)
            return 1;
    }
    return 0;
}

int ingest_auth_check_id_pattern(const char *p, char *why, size_t why_len)
{
    static const char scheme[] = "spiffe://";
    if (strncmp(p, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(why, why_len, "\"%.80s\": a SPIFFE id starts with spiffe://", p);
        return -1;
    }
    if (strlen(p) > INGEST_CLIENT_ID_MAX) {
        snprintf(why, why_len, "longer than %d bytes", INGEST_CLIENT_ID_MAX);
        return -1;
    }
    const char *td = p + sizeof(scheme) - 1, *slash = strchr(td, '/');
    if (slash == NULL) {
        snprintf(why, why_len,
                 "\"%.80s\": no path; write %.80s/ for every workload of the trust domain, or a whole id "
                 "(spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT)",
                 p, p);
        return -1;
    }
    if (slash == td) {
        snprintf(why, why_len, "\"%.80s\": no trust domain after spiffe://", p);
        return -1;
    }
    for (const char *c = td; c < slash; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_')) {
            snprintf(why, why_len, "\"%.80s\": a trust domain is lowercase letters, digits, '.', '-' and '_'", p);
            return -1;
        }
    }
    for (const char *c = slash; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            snprintf(why, why_len, "\"%.80s\": spaces or bytes that are not printable ASCII", p);
            return -1;
        }
    }
    return 0;
}

/* ---- the live state ---- */

typedef struct sender {
    char name[INGEST_TOKEN_NAME_MAX + 1];
    _Atomic uint64_t requests;
} sender_t;

struct ingest_auth {
    char *path; /* NULL: no tokens needed */
    setting_list_t ids;
    pthread_rwlock_t lock; /* tokens and senders (the array; its counters are atomics) */
    ingest_tokens_t *tokens;
    sender_t *senders;
    size_t n_senders, cap_senders;
    _Atomic uint64_t failures[INGEST_AUTH_RESULTS_];
    _Atomic int reload_ok;
    _Atomic uint64_t last_log_ms; /* monotonic; 0: never logged */
    _Atomic uint64_t left_out;    /* refusals not logged since the last message */
};

static const char *const reasons[INGEST_AUTH_RESULTS_] = {"ok", "missing_token", "not_bearer", "invalid_token",
                                                          "forbidden_id"};

const char *ingest_auth_reason(enum ingest_auth_result r)
{
    return (unsigned)r < INGEST_AUTH_RESULTS_ ? reasons[r] : "?";
}

/* The sender index of name, added when new (past INGEST_AUTH_SENDERS_MAX: the unnamed one). Under the write lock. */
static uint32_t sender_index(ingest_auth_t *a, const char *name)
{
    if (name[0] == '\0')
        name = INGEST_AUTH_UNNAMED;
    for (size_t i = 0; i < a->n_senders; i++)
        if (strcmp(a->senders[i].name, name) == 0)
            return (uint32_t)i;
    if (a->n_senders == INGEST_AUTH_SENDERS_MAX)
        return sender_index(a, INGEST_AUTH_UNNAMED);
    if (a->n_senders == a->cap_senders) {
        size_t cap = a->cap_senders ? a->cap_senders * 2 : 8;
        sender_t *bigger = xcalloc(cap, sizeof(*bigger));
        for (size_t i = 0; i < a->n_senders; i++) {
            memcpy(bigger[i].name, a->senders[i].name, sizeof(bigger[i].name));
            atomic_init(&bigger[i].requests, atomic_load(&a->senders[i].requests));
        }
        free(a->senders);
        a->senders = bigger;
        a->cap_senders = cap;
    }
    sender_t *s = &a->senders[a->n_senders];
    snprintf(s->name, sizeof(s->name), "%s", name);
    atomic_init(&s->requests, 0);
    return (uint32_t)a->n_senders++;
}

/* Make t the current set; returns the old one. */
static ingest_tokens_t *install(ingest_auth_t *a, ingest_tokens_t *t)
{
    pthread_rwlock_wrlock(&a->lock);
    for (size_t i = 0; i < t->n; i++)
        t->e[i].sender = sender_index(a, t->e[i].name);
    ingest_tokens_t *old = a->tokens;
    a->tokens = t;
    pthread_rwlock_unlock(&a->lock);
    return old;
}

/* "3 tokens (senders: a, b, unnamed)" for logs, names capped. */
static void describe(const ingest_tokens_t *t, char *out, size_t len)
{
    size_t k = (size_t)snprintf(out, len, "%zu token%s (senders:", t->n, t->n == 1 ? "" : "s");
    size_t shown = 0;
    for (size_t i = 0; i < t->n && k < len; i++) {
        const char *name = t->e[i].name[0] ? t->e[i].name : INGEST_AUTH_UNNAMED;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(name, t->e[j].name[0] ? t->e[j].name : INGEST_AUTH_UNNAMED) == 0;
        if (seen)
            continue;
        if (shown++ == 8) {
            k += (size_t)snprintf(out + k, len - k, " ...");
            break;
        }
        k += (size_t)snprintf(out + k, len - k, " %s", name);
    }
    if (k < len)
        snprintf(out + k, len - k, ")");
}

ingest_auth_t *ingest_auth_create(const char *tokens_path, const setting_list_t *client_ids,
                                  ingest_auth_error_fn on_error, void *ctx)
{
    ingest_auth_t *a = xcalloc(1, sizeof(*a));
    pthread_rwlock_init(&a->lock, NULL);
    atomic_init(&a->reload_ok, 1);
    if (client_ids != NULL && client_ids->n > 0) {
        a->ids.items = xcalloc(client_ids->n, sizeof(char *));
        for (size_t i = 0; i < client_ids->n; i++)
            a->ids.items[i] = xstrdup(client_ids->items[i]);
        a->ids.n = client_ids->n;
    }
    if (tokens_path != NULL && tokens_path[0] != '\0') {
        a->path = xstrdup(tokens_path);
        ingest_tokens_t *t = ingest_tokens_load(a->path, on_error, ctx);
        if (t == NULL) {
            ingest_auth_destroy(a);
            return NULL;
        }
        install(a, t);
        char what[512];
        describe(t, what, sizeof(what));
        log_info("ingest: bearer tokens from %s: %s", a->path, what);
    }
    return a;
}

int ingest_auth_tokens_required(const ingest_auth_t *a)
{
    return a != NULL && a->path != NULL;
}

int ingest_auth_ids_limited(const ingest_auth_t *a)
{
    return a != NULL && a->ids.n > 0;
}

int ingest_auth_reload(ingest_auth_t *a, ingest_auth_error_fn on_error, void *ctx)
{
    if (a == NULL || a->path == NULL)
        return 0;
    ingest_tokens_t *t = ingest_tokens_load(a->path, on_error, ctx);
    if (t == NULL) {
        atomic_store(&a->reload_ok, 0);
        pthread_rwlock_rdlock(&a->lock);
        size_t n = ingest_tokens_count(a->tokens);
        pthread_rwlock_unlock(&a->lock);
        log_error("ingest: %s could not be loaded (reasons above); keeping the %zu token%s loaded before", a->path, n,
                  n == 1 ? "" : "s");
        return -1;
    }
    char what[512];
    describe(t, what, sizeof(what));
    ingest_tokens_destroy(install(a, t));
    atomic_store(&a->reload_ok, 1);
    log_info("ingest: bearer tokens reloaded from %s: %s", a->path, what);
    return (int)t->n;
}

static enum ingest_auth_result refused(ingest_auth_t *a, enum ingest_auth_result r)
{
    atomic_fetch_add_explicit(&a->failures[r], 1, memory_order_relaxed);
    return r;
}

enum ingest_auth_result ingest_auth_check(ingest_auth_t *a, const char *authorization, const char *client_id)
{
    if (a == NULL)
        return INGEST_AUTH_OK;
    if (a->path != NULL) {
        const char *token;
        size_t len;
        if (authorization == NULL)
            return refused(a, INGEST_AUTH_MISSING_TOKEN);
        if (ingest_auth_bearer(authorization, &token, &len) != 0)
            return refused(a, INGEST_AUTH_NOT_BEARER);
        pthread_rwlock_rdlock(&a->lock);
        int i = ingest_tokens_find(a->tokens, token, len);
        if (i >= 0)
            atomic_fetch_add_explicit(&a->senders[a->tokens->e[i].sender].requests, 1, memory_order_relaxed);
        pthread_rwlock_unlock(&a->lock);
        if (i < 0)
            return refused(a, INGEST_AUTH_INVALID_TOKEN);
    }
    if (a->ids.n > 0 && !ingest_auth_id_allowed(&a->ids, client_id))
        return refused(a, INGEST_AUTH_FORBIDDEN_ID);
    return INGEST_AUTH_OK;
}

void ingest_auth_log_refusal(ingest_auth_t *a, enum ingest_auth_result r, const char *peer, const char *what,
                             const char *client_id)
{
    uint64_t now = mono_now_ms(), last = atomic_load(&a->last_log_ms);
    if ((last != 0 && now - last < INGEST_AUTH_LOG_INTERVAL_MS) ||
        !atomic_compare_exchange_strong(&a->last_log_ms, &last, now ? now : 1)) {
        atomic_fetch_add(&a->left_out, 1);
        return;
    }
    uint64_t more = atomic_exchange(&a->left_out, 0);
    char since[96] = "";
    if (more > 0)
        snprintf(since, sizeof(since), " (and %llu more refusals since the last message)", (unsigned long long)more);
    if (r == INGEST_AUTH_FORBIDDEN_ID)
        log_warn("ingest: refused %s from %s: client certificate %.200s is not in ingest.tls.clientIds%s", what, peer,
                 client_id != NULL ? client_id : "(without a SPIFFE id)", since);
    else
        log_warn("ingest: refused %s from %s: %s%s", what, peer, ingest_auth_reason(r), since);
}

uint64_t ingest_auth_failures(const ingest_auth_t *a, enum ingest_auth_result r)
{
    return (unsigned)r < INGEST_AUTH_RESULTS_ ? atomic_load(&a->failures[r]) : 0;
}

static void family(buf_t *b, const char *name, enum prom_type type, const char *help, int om)
{
    prom_write_family_header(b, name, type, help, strlen(help), NULL, om);
}

void ingest_auth_render_metrics(ingest_auth_t *a, buf_t *b, int om)
{
    if (a == NULL)
        return;
    static const char failures[] = "outrider_collector_ingest_auth_failures";
    family(b, failures, PROM_COUNTER,
           "Ingest requests refused for their credentials, by reason: missing_token, not_bearer, invalid_token "
           "(401), forbidden_id (403, a client certificate not in ingest.tls.clientIds)",
           om);
    for (int r = 1; r < INGEST_AUTH_RESULTS_; r++) {
        metric_label_t l = {STR_LIT("reason"), {reasons[r], (uint32_t)strlen(reasons[r])}};
        prom_write_sample(b, failures, "_total", &l, 1, NULL, NULL, (double)atomic_load(&a->failures[r]), NULL, om);
    }
    if (a->path == NULL)
        return;
    static const char requests[] = "outrider_collector_ingest_auth_requests";
    family(b, requests, PROM_COUNTER, "Ingest requests accepted by bearer token, by the token's name in the file", om);
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->n_senders; i++) {
        const sender_t *s = &a->senders[i];
        metric_label_t l = {STR_LIT("sender"), {s->name, (uint32_t)strlen(s->name)}};
        prom_write_sample(b, requests, "_total", &l, 1, NULL, NULL, (double)atomic_load(&s->requests), NULL, om);
    }
    size_t n = ingest_tokens_count(a->tokens);
    pthread_rwlock_unlock(&a->lock);
    family(b, "outrider_collector_ingest_auth_tokens", PROM_GAUGE, "Bearer tokens loaded from ingest.auth.tokens", om);
    prom_write_sample(b, "outrider_collector_ingest_auth_tokens", "", NULL, 0, NULL, NULL, (double)n, NULL, om);
    family(b, "outrider_collector_ingest_auth_reload_success", PROM_GAUGE,
           "1 when the last load of ingest.auth.tokens succeeded, 0 when it failed and the tokens before stay", om);
    prom_write_sample(b, "outrider_collector_ingest_auth_reload_success", "", NULL, 0, NULL, NULL,
                      (double)atomic_load(&a->reload_ok), NULL, om);
}

void ingest_auth_destroy(ingest_auth_t *a)
{
    if (a == NULL)
        return;
    ingest_tokens_destroy(a->tokens);
    free(a->senders);
    for (size_t i = 0; i < a->ids.n; i++)
        free(a->ids.items[i]);
    free(a->ids.items);
    free(a->path);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}
