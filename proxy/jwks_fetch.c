/*
 * jwks_fetch: remote jwksUri keys, fetched on one thread; see jwks_fetch.h.
 *
 * Locks: the fetcher's mutex guards the list of sources, their reference
 * counts and schedules, and the settings; each source's own mutex guards
 * its keys and status, so a verification never waits for the list. No
 * lock is held during a fetch.
 */
#include "jwks_fetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "hostport.h"
#include "http_client.h"
#include "log.h"
#include "mono.h"
#include "runtime.h"
#include "xalloc.h"

struct jwks_source {
    jwks_fetcher_t *f;
    char *uri, *origin, *path;
    /* under f->lock */
    unsigned refs;
    uint64_t timeout_ms, next_ms;
    uint32_t backoff_ms;
    bool tried;
    bool again; /* woken (SIGHUP, a new CA) while a fetch was in flight: fetch once more when it ends */
    jwks_source_t *next;
    /* under lock */
    pthread_mutex_t lock;
    jwks_t *keys;
    uint8_t digest[SHA256_DIGEST_LENGTH]; /* of the document the keys came from */
    jwks_source_status_t st;
};

struct jwks_fetcher {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    pthread_t thread;
    bool started, stopping;
    _Atomic uint64_t stop_ms; /* the HTTP client's stop: set once stopping */
    jwks_source_t *sources;
    char *ca_file;
    uint64_t refresh_ms;
};

bool jwks_uri_remote(const char *uri)
{
    return strncmp(uri, "https://", 8) == 0 || strncmp(uri, "http://", 7) == 0;
}

int jwks_uri_split(const char *uri, char *origin, size_t olen, char *path, size_t plen, const char **why)
{
    size_t scheme = strncmp(uri, "https://", 8) == 0 ? 8 : strncmp(uri, "http://", 7) == 0 ? 7 : 0;
    if (scheme == 0) {
        *why = "expected an http:// or https:// URI";
        return -1;
    }
    if (strlen(uri) > JWKS_URI_MAX) {
        *why = "longer than 1000 bytes";
        return -1;
    }
    const char *auth = uri + scheme;
    size_t al = strcspn(auth, "/?#");
    if (memchr(auth, '@', al) != NULL) {
        *why = "user information (\"user@\") in the URI is not supported";
        return -1;
    }
    char hp[300], host[256];
    const char *close = memchr(auth, ']', al), *colon = memrchr(auth, ':', al);
    bool has_port = colon != NULL && (close == NULL || colon > close);
    if (al == 0 || al + 7 >= sizeof hp) {
        *why = al == 0 ? "no host in the URI" : "the host is longer than 255 bytes";
        return -1;
    }
    snprintf(hp, sizeof hp, "%.*s%s", (int)al, auth, has_port ? "" : scheme == 8 ? ":443" : ":80");
    uint16_t port;
    const char *w = NULL;
    if (hostport_split(hp, host, sizeof host, &port, &w) != 0 || port == 0 || host[0] == '\0') {
        *why = w != NULL ? w : "a bad port";
        return -1;
    }
    const char *rest = auth + al;
    size_t rl = strcspn(rest, "#");
    if (snprintf(origin, olen, "%.*s%s", (int)scheme, uri, hp) >= (int)olen ||
        snprintf(path, plen, "%s%.*s", rest[0] == '/' ? "" : "/", (int)rl, rest) >= (int)plen) {
        *why = "too long";
        return -1;
    }
    return 0;
}

/* ---- the thread ---- */

/*
 * One GET of s's document: its digest, and its keys in *keys (NULL when the
 * document is the one the keys held came from); or -1 and a reason in why.
 */
static int fetch(jwks_fetcher_t *f, jwks_source_t *s, const char *ca_file, uint64_t timeout_ms, jwks_t **keys,
                 uint8_t digest[SHA256_DIGEST_LENGTH], char *why, size_t wlen)
{
    *keys = NULL;
    char err[256];
    http_client_t *hc = http_client_create(s->origin, ca_file, err, sizeof err);
    if (hc == NULL) {
        snprintf(why, wlen, "%s", err);
        return -1;
    }
    buf_t body = BUF_INIT;
    static const char *const accept[] = {"Accept: application/json"};
    http_client_request_t r = {
        .get = 1, .path = s->path, .headers = accept, .n_headers = 1, .answer = &body, .answer_max = JWKS_MAX_BYTES};
    const char *w = NULL;
    int status = http_client_send(hc, &r, mono_now_ms() + timeout_ms, &f->stop_ms, &w);
    if (status < 0)
        snprintf(why, wlen, "%s", w != NULL ? w : "no answer"); /* w may be the client's: before it goes */
    http_client_destroy(hc);
    int rc = -1;
    if (status >= 0 && status != 200) {
        snprintf(why, wlen, "HTTP status %d", status);
    } else if (status == 200) {
        SHA256((const uint8_t *)(body.data ? body.data : ""), body.len, digest);
        pthread_mutex_lock(&s->lock);
        bool same = s->keys != NULL && memcmp(digest, s->digest, SHA256_DIGEST_LENGTH) == 0;
        pthread_mutex_unlock(&s->lock);
        if (same || (*keys = jwks_parse(body.data ? body.data : "", body.len, err, sizeof err)) != NULL)
            rc = 0;
        else
            snprintf(why, wlen, "not a usable JWKS: %s", err);
    }
    buf_dispose(&body);
    return rc;
}

/* Record one attempt's outcome (new keys with the digest of their document); under no lock. */
static void settle(jwks_fetcher_t *f, jwks_source_t *s, int rc, jwks_t *keys, const uint8_t *digest, const char *why)
{
    jwks_t *old = NULL;
    bool changed_reason = false, recovered = false;
    pthread_mutex_lock(&s->lock);
    if (rc == 0) {
        recovered = s->st.last_error[0] != '\0'; /* the attempt before failed */
        s->st.successes++;
        s->st.last_success_unix = (int64_t)time(NULL);
        s->st.last_error[0] = '\0';
        if (keys != NULL) {
            old = s->keys;
            s->keys = keys;
            memcpy(s->digest, digest, SHA256_DIGEST_LENGTH);
        }
    } else {
        s->st.failures++;
        changed_reason = strcmp(s->st.last_error, why) != 0;
        snprintf(s->st.last_error, sizeof s->st.last_error, "%s", why);
    }
    size_t n = jwks_count(s->keys);
    pthread_mutex_unlock(&s->lock);
    jwks_destroy(old); /* verifications holding it keep their reference */

    pthread_mutex_lock(&f->lock);
    s->tried = true;
    uint64_t now = mono_now_ms();
    bool again = s->again;
    s->again = false;
    if (rc == 0) {
        s->backoff_ms = 0;
        s->next_ms = now + f->refresh_ms;
    } else {
        s->backoff_ms = s->backoff_ms == 0 ? JWKS_RETRY_MIN_MS : s->backoff_ms * 2;
        if (s->backoff_ms > JWKS_RETRY_MAX_MS)
            s->backoff_ms = JWKS_RETRY_MAX_MS;
        uint64_t wait = s->backoff_ms < f->refresh_ms ? s->backoff_ms : f->refresh_ms;
        s->next_ms = now + wait;
    }
    if (again)
        s->next_ms = now;
    pthread_mutex_unlock(&f->lock);

    if (rc == 0 && (keys != NULL || recovered))
        log_info("jwks %s: %zu key%s%s", s->uri, n, n == 1 ? "" : "s", keys != NULL ? " fetched" : ", fetched again");
    else if (rc != 0 && changed_reason)
        log_warn("jwks %s: %s; %s, trying again", s->uri, why,
                 n > 0 ? "the keys fetched before stay in use" : "tokens of this issuer are refused until it works");
}

static void *run(void *arg)
{
    jwks_fetcher_t *f = arg;
    pthread_mutex_lock(&f->lock);
    while (!f->stopping) {
        uint64_t now = mono_now_ms(), soonest = UINT64_MAX;
        jwks_source_t *due = NULL;
        for (jwks_source_t *s = f->sources; s != NULL; s = s->next) {
            if (s->next_ms <= now) {
                due = s;
                break;
            }
            if (s->next_ms < soonest)
                soonest = s->next_ms;
        }
        if (due == NULL) {
            if (soonest == UINT64_MAX) {
                pthread_cond_wait(&f->cond, &f->lock);
            } else {
                struct timespec ts = mono_timespec(soonest); /* mono_now_ms is CLOCK_MONOTONIC too */
                pthread_cond_timedwait(&f->cond, &f->lock, &ts);
            }
            continue;
        }
        due->refs++; /* kept while fetching, whatever the configurations do meanwhile */
        due->next_ms = UINT64_MAX;
        char *ca = f->ca_file != NULL ? xstrdup(f->ca_file) : NULL;
        uint64_t timeout = due->timeout_ms;
        pthread_mutex_unlock(&f->lock);
        jwks_t *keys = NULL;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        char why[320] = "";
        int rc = fetch(f, due, ca, timeout, &keys, digest, why, sizeof why);
        free(ca);
        if (atomic_load(&f->stop_ms) != 0 && rc != 0) { /* stopped mid-way: not the server's fault */
            jwks_source_unref(due);
            pthread_mutex_lock(&f->lock);
            break;
        }
        settle(f, due, rc, keys, digest, why);
        jwks_source_unref(due);
        pthread_mutex_lock(&f->lock);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* ---- public ---- */

jwks_fetcher_t *jwks_fetcher_create(void)
{
    jwks_fetcher_t *f = xcalloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    mono_cond_init(&f->cond);
    atomic_init(&f->stop_ms, 0);
    f->refresh_ms = JWKS_REFRESH_DEFAULT_MS;
    return f;
}

void jwks_fetcher_configure(jwks_fetcher_t *f, const char *ca_file, uint64_t refresh_ms)
{
    pthread_mutex_lock(&f->lock);
    bool ca_changed = (ca_file == NULL) != (f->ca_file == NULL) || (ca_file && strcmp(ca_file, f->ca_file) != 0);
    free(f->ca_file);
    f->ca_file = ca_file != NULL && ca_file[0] != '\0' ? xstrdup(ca_file) : NULL;
    uint64_t r = refresh_ms != 0 ? refresh_ms : JWKS_REFRESH_DEFAULT_MS;
    uint64_t now = mono_now_ms();
    for (jwks_source_t *s = f->sources; s != NULL; s = s->next) { /* a shorter interval applies now, a CA at once */
        if (s->next_ms == UINT64_MAX)
            s->again |= ca_changed;
        else if (ca_changed || (r < f->refresh_ms && s->next_ms > now + r))
            s->next_ms = ca_changed ? 0 : now + r;
    }
    f->refresh_ms = r;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

int jwks_fetcher_start(jwks_fetcher_t *f)
{
    if (pthread_create(&f->thread, NULL, run, f) != 0)
        return -1;
    f->started = true;
    return 0;
}

void jwks_fetcher_wake(jwks_fetcher_t *f)
{
    pthread_mutex_lock(&f->lock);
    for (jwks_source_t *s = f->sources; s != NULL; s = s->next) {
        if (s->next_ms == UINT64_MAX)
            s->again = true; /* the fetch in flight may have read the document before the change */
        else
            s->next_ms = 0;
    }
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

void jwks_fetcher_destroy(jwks_fetcher_t *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    atomic_store(&f->stop_ms, mono_now_ms());
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->started)
        pthread_join(f->thread, NULL);
    if (f->sources != NULL)
        log_error("jwks: %s still bound at exit", f->sources->uri);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f->ca_file);
    free(f);
}

jwks_source_t *jwks_fetcher_bind(jwks_fetcher_t *f, const char *uri, uint64_t timeout_ms)
{
    char origin[JWKS_URI_MAX + 8], path[JWKS_URI_MAX + 2];
    const char *why;
    if (jwks_uri_split(uri, origin, sizeof origin, path, sizeof path, &why) != 0)
        return NULL;
    if (timeout_ms == 0)
        timeout_ms = JWKS_FETCH_TIMEOUT_DEFAULT_MS;
    pthread_mutex_lock(&f->lock);
    jwks_source_t *s = f->sources;
    while (s != NULL && strcmp(s->uri, uri) != 0)
        s = s->next;
    if (s != NULL) {
        s->refs++;
        if (timeout_ms > s->timeout_ms)
            s->timeout_ms = timeout_ms;
    } else {
        s = xcalloc(1, sizeof *s);
        s->f = f;
        s->uri = xstrdup(uri);
        s->origin = xstrdup(origin);
        s->path = xstrdup(path);
        s->refs = 1;
        s->timeout_ms = timeout_ms;
        s->next_ms = 0; /* at once */
        pthread_mutex_init(&s->lock, NULL);
        s->next = f->sources;
        f->sources = s;
        pthread_cond_signal(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
    return s;
}

void jwks_source_unref(jwks_source_t *s)
{
    if (s == NULL)
        return;
    jwks_fetcher_t *f = s->f;
    pthread_mutex_lock(&f->lock);
    bool last = --s->refs == 0;
    if (last) {
        jwks_source_t **pp = &f->sources;
        while (*pp != s)
            pp = &(*pp)->next;
        *pp = s->next;
    }
    pthread_mutex_unlock(&f->lock);
    if (!last)
        return;
    jwks_destroy(s->keys);
    pthread_mutex_destroy(&s->lock);
    free(s->uri);
    free(s->origin);
    free(s->path);
    free(s);
}

jwks_t *jwks_source_keys(jwks_source_t *s)
{
    pthread_mutex_lock(&s->lock);
    jwks_t *k = jwks_ref(s->keys);
    pthread_mutex_unlock(&s->lock);
    return k;
}

void jwks_source_status(jwks_source_t *s, jwks_source_status_t *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->st;
    st->keys = jwks_count(s->keys);
    pthread_mutex_unlock(&s->lock);
}

bool jwks_fetcher_settled(jwks_fetcher_t *f, char *uri, size_t len)
{
    bool settled = true;
    pthread_mutex_lock(&f->lock);
    for (jwks_source_t *s = f->sources; s != NULL && settled; s = s->next)
        if (!s->tried) {
            settled = false;
            snprintf(uri, len, "%s", s->uri);
        }
    pthread_mutex_unlock(&f->lock);
    return settled;
}

void jwks_fetcher_metrics(jwks_fetcher_t *f, buf_t *out)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"outrider_proxy_jwks_fetch_total", "counter",
         "Fetches of a remote RequestAuthentication jwksUri, by result (failure: no answer, a status other than 200 "
         "or no usable key; the keys before stay in use)."},
        {"outrider_proxy_jwks_keys", "gauge", "Usable keys held for a remote jwksUri (0 before the first success)."},
        {"outrider_proxy_jwks_last_success_timestamp_seconds", "gauge",
         "When a remote jwksUri was last fetched successfully (Unix seconds; 0: never)."},
    };
    pthread_mutex_lock(&f->lock);
    for (size_t k = 0; k < 3 && f->sources != NULL; k++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[k].name, fam[k].help, fam[k].name, fam[k].type);
        for (jwks_source_t *s = f->sources; s != NULL; s = s->next) {
            jwks_source_status_t st;
            jwks_source_status(s, &st);
            for (int r = 0; r < (k == 0 ? 2 : 1); r++) {
                buf_printf(out, "%s{jwks_uri=\"", fam[k].name);
                buf_append_prom_label(out, s->uri, strlen(s->uri));
                if (k == 0)
                    buf_printf(out, "\",result=\"%s\"} %llu\n", r == 0 ? "success" : "failure",
                               (unsigned long long)(r == 0 ? st.successes : st.failures));
                else
                    buf_printf(out, "\"} %lld\n", k == 1 ? (long long)st.keys : (long long)st.last_success_unix);
            }
        }
    }
    pthread_mutex_unlock(&f->lock);
}
