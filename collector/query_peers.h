/*
 * query_peers: the store members a query member asks (query.peers), as a
 * list of "host:port" names that is kept up to date.
 *
 * An entry is HOST:PORT (a name or address; IPv6 in brackets) or
 * dns+NAME:PORT, which stands for every address NAME resolves to (A and
 * AAAA, getaddrinfo), as a Kubernetes headless Service lists its pods.
 * Such entries are resolved at create and again every refresh interval by
 * a thread of the list's own; a resolution that fails keeps the addresses
 * of the last one that worked (and logs). Members keep the order of the
 * entries (a dns+ entry's addresses sorted), so merged traces list the
 * spans of earlier entries first. Readers take a copy of the current list
 * under a mutex.
 */
#ifndef OUTRIDER_COLLECTOR_QUERY_PEERS_H
#define OUTRIDER_COLLECTOR_QUERY_PEERS_H

#include <stddef.h>
#include <stdint.h>

#define QUERY_PEER_NAME_MAX 272 /* "[" host (255) "]:" port (5) NUL, rounded up */

/* One parsed query.peers entry. */
typedef struct query_peer_spec {
    char host[256]; /* without brackets */
    uint16_t port;  /* 1..65535 */
    int dns;        /* dns+NAME:PORT */
} query_peer_spec_t;

/* One store member: its address as "host:port" ("[v6]:port"), also the metrics' peer label. */
typedef struct query_member {
    char name[QUERY_PEER_NAME_MAX];
} query_member_t;

/*
 * Parse one query.peers entry. Returns 0, or -1 with a static reason in
 * *why (empty entry, a scheme, bad HOST:PORT, port 0, a character that
 * cannot be in a host name or address).
 */
int query_peer_parse(const char *entry, query_peer_spec_t *out, const char **why);

/*
 * Append the members spec stands for to v (grown with realloc; *n and *cap
 * updated): itself, or for dns+ every distinct address NAME resolves to,
 * sorted. Returns 0, or -1 with the resolver's message in why (nothing
 * appended).
 */
int query_peer_resolve(const query_peer_spec_t *spec, query_member_t **v, size_t *n, size_t *cap, char *why,
                       size_t why_len);

typedef struct query_peers query_peers_t;

/*
 * Parse entries[0..n) (a bad one is logged and makes it fail), resolve
 * them and, when any is dns+, start the refresh thread (every refresh_ms).
 * Returns NULL on a bad entry or when the thread cannot start. Free with
 * query_peers_destroy.
 */
query_peers_t *query_peers_create(char *const *entries, size_t n, uint64_t refresh_ms);

/* Stop the refresh thread and free the list; NULL is a no-op. */
void query_peers_destroy(query_peers_t *p);

/* A copy of the current members (malloc'd, the caller frees; NULL when none); returns how many. */
size_t query_peers_get(query_peers_t *p, query_member_t **out);

/* How many members are known now. */
size_t query_peers_count(query_peers_t *p);

#endif
