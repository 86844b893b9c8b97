/*
 * query_peers: the store member list and its refresh thread; see
 * query_peers.h.
 *
 * The thread sleeps on a condition variable (CLOCK_MONOTONIC) so that
 * destroy wakes it at once; it resolves outside the mutex, which guards
 * only the swap of the member array.
 */
#include "query_peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostport.h"
#include "log.h"
#include "mono.h"
#include "xalloc.h"

#define DNS_PREFIX "dns+"

/* The members one entry stood for at its last successful resolution. */
typedef struct resolved {
    query_member_t *v;
    size_t n;
} resolved_t;

struct query_peers {
    query_peer_spec_t *specs;
    resolved_t *resolved; /* per spec; only the refreshing thread touches it */
    size_t n_specs;
    int any_dns;
    uint64_t refresh_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int thread_started;
    pthread_t thread;
    query_member_t *members; /* under mu */
    size_t n_members;
};

static int host_char(char c, int v6)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
        return 1;
    return v6 && c == ':';
}

int query_peer_parse(const char *entry, query_peer_spec_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *s = entry;
    if (*s == '\0') {
        *why = "empty entry";
        return -1;
    }
    if (strstr(s, "://") != NULL) {
        *why = "no scheme: HOST:PORT or dns+NAME:PORT (the members are asked over plain HTTP)";
        return -1;
    }
    if (strncmp(s, DNS_PREFIX, strlen(DNS_PREFIX)) == 0) {
        out->dns = 1;
        s += strlen(DNS_PREFIX);
        if (*s == '[') {
            *why = "dns+ takes a name to resolve, not an address";
            return -1;
        }
    }
    if (hostport_split(s, out->host, sizeof(out->host), &out->port, why) != 0)
        return -1;
    if (out->port == 0) {
        *why = "port 0 (a store member's Zipkin port is needed)";
        return -1;
    }
    int v6 = *s == '[';
    for (const char *h = out->host; *h; h++) {
        if (!host_char(*h, v6)) {
            *why = "the host has a character no host name or address has";
            return -1;
        }
    }
    struct in6_addr a6;
    if (v6 && inet_pton(AF_INET6, out->host, &a6) != 1) {
        *why = "not an IPv6 address between the brackets";
        return -1;
    }
    return 0;
}

static query_member_t *member_add(query_member_t **v, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    return &(*v)[(*n)++];
}

static void member_push(query_member_t **v, size_t *n, size_t *cap, const char *host, int v6, uint16_t port)
{
    query_member_t *m = member_add(v, n, cap);
    snprintf(m->name, sizeof(m->name), v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const query_member_t *)a)->name, ((const query_member_t *)b)->name);
}

/* Sort v[0..n) by name and drop repeats; returns the count left. */
static size_t members_unique(query_member_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), member_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(v[i].name, v[k - 1].name) != 0)
            v[k++] = v[i];
    return k;
}

/* Append m to v unless it is there already (lists of a few dozen members). */
static void member_add_new(query_member_t **v, size_t *n, size_t *cap, const query_member_t *m)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].name, m->name) == 0)
            return;
    *member_add(v, n, cap) = *m;
}

int query_peer_resolve(const query_peer_spec_t *spec, query_member_t **v, size_t *n, size_t *cap, char *why,
                       size_t why_len)
{
    if (!spec->dns) {
        member_push(v, n, cap, spec->host, strchr(spec->host, ':') != NULL, spec->port);
        return 0;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(spec->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_len, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    size_t from = *n;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        char host[INET6_ADDRSTRLEN];
        const void *addr = ai->ai_family == AF_INET
                               ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                               : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            inet_ntop(ai->ai_family, addr, host, sizeof(host)) == NULL)
            continue;
        member_push(v, n, cap, host, ai->ai_family == AF_INET6, spec->port);
    }
    freeaddrinfo(res);
    *n = from + members_unique(*v + from, *n - from);
    return 0;
}

/* Resolve every entry; one that fails keeps the members of its last success. Only one thread refreshes at a time. */
static void refresh(query_peers_t *p, int first)
{
    size_t n = 0, cap = 0;
    query_member_t *v = NULL;
    for (size_t i = 0; i < p->n_specs; i++) {
        const query_peer_spec_t *s = &p->specs[i];
        resolved_t *r = &p->resolved[i];
        query_member_t *got = NULL;
        size_t n_got = 0, cap_got = 0;
        char why[128];
        if (query_peer_resolve(s, &got, &n_got, &cap_got, why, sizeof(why)) != 0) {
            log_warn("query.peers: cannot resolve dns+%s:%u: %s%s", s->host, (unsigned)s->port, why,
                     first ? "" : "; keeping the members it had");
        } else {
            if (n_got == 0)
                log_warn("query.peers: dns+%s:%u resolves to no address", s->host, (unsigned)s->port);
            free(r->v);
            r->v = got;
            r->n = n_got;
        }
        for (size_t j = 0; j < r->n; j++)
            member_add_new(&v, &n, &cap, &r->v[j]);
    }
    size_t k = n;
    pthread_mutex_lock(&p->mu);
    int changed = k != p->n_members || (k > 0 && memcmp(v, p->members, k * sizeof(*v)) != 0);
    free(p->members);
    p->members = v;
    p->n_members = k;
    pthread_mutex_unlock(&p->mu);
    if (changed || first)
        log_info("query.peers: %zu store member%s%s%s", k, k == 1 ? "" : "s", k ? ", first " : "", k ? v[0].name : "");
}

static void *refresh_main(void *arg)
{
    query_peers_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec at = mono_timespec(mono_now_ms() + p->refresh_ms);
        int rc = 0;
        while (!p->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&p->cv, &p->mu, &at);
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->mu);
        refresh(p, 0);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

query_peers_t *query_peers_create(char *const *entries, size_t n, uint64_t refresh_ms)
{
    query_peers_t *p = xcalloc(1, sizeof(*p));
    p->specs = xcalloc(n + 1, sizeof(*p->specs));
    p->resolved = xcalloc(n + 1, sizeof(*p->resolved));
    p->refresh_ms = refresh_ms;
    pthread_mutex_init(&p->mu, NULL);
    mono_cond_init(&p->cv);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *why;
        if (query_peer_parse(entries[i], &p->specs[p->n_specs], &why) != 0) {
            log_error("query.peers: \"%s\": %s", entries[i], why);
            bad = 1;
            continue;
        }
        p->any_dns |= p->specs[p->n_specs].dns;
        p->n_specs++;
    }
    if (bad) {
        query_peers_destroy(p);
        return NULL;
    }
    refresh(p, 1);
    if (p->any_dns) {
        int rc = pthread_create(&p->thread, NULL, refresh_main, p);
        if (rc != 0) {
            log_error("query.peers: cannot start the refresh thread: %s", strerror(rc));
            query_peers_destroy(p);
            return NULL;
        }
        p->thread_started = 1;
    }
    return p;
}

void query_peers_destroy(query_peers_t *p)
{
    if (p == NULL)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    for (size_t i = 0; i < p->n_specs; i++)
        free(p->resolved[i].v);
    free(p->resolved);
    free(p->members);
    free(p->specs);
    free(p);
}

size_t query_peers_get(query_peers_t *p, query_member_t **out)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->n_members;
    *out = n ? xmalloc(n * sizeof(**out)) : NULL;
    if (n)
        memcpy(*out, p->members, n * sizeof(**out));
    pthread_mutex_unlock(&p->mu);
    return n;
}

size_t query_peers_count(query_peers_t *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->n_members;
    pthread_mutex_unlock(&p->mu);
    return n;
}
