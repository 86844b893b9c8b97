/*
 * hostport: "HOST:PORT" text and numeric socket addresses, shared by every
 * listener and setting that takes an address (the collector's listen
 * settings, the proxy's listeners, admin endpoint and upstream addresses).
 *
 * Nothing here resolves names: splitting takes any host text, and
 * hostport_sockaddr takes numeric addresses only.
 */
#ifndef OUTRIDER_HOSTPORT_H
#define OUTRIDER_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * Split "HOST:PORT" or "[IPV6]:PORT" into host (copied NUL-terminated,
 * without the brackets, into hostlen bytes) and port. The port is decimal
 * digits only, 0..65535 (leading zeros allowed); the host is any non-empty
 * text, but without brackets it may not contain ':' (a bare IPv6 address
 * is ambiguous). Returns 0, or -1 and, when why is not NULL, a static
 * reason in *why ("missing \":PORT\"", "IPv6 addresses need brackets", ...).
 */
int hostport_split(const char *s, char *host, size_t hostlen, uint16_t *port, const char **why);

/*
 * Fill *ss with the numeric address host and port: IPv4 as inet_pton
 * takes it (a dotted quad of decimal octets without leading zeros), else
 * IPv6 (no brackets, no zone). *len, when len is not NULL, gets the size
 * to pass to bind or connect. Returns 0, or -1 when host is NULL, a name
 * or not an address (ss is then zeroed).
 */
int hostport_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/*
 * An IP address or CIDR ("10.96.0.10", "10.96.0.0/16", "fd00::/8"): the
 * address into *ss (port 0) and the prefix length into *bits (32 or 128
 * for a bare address). Returns 0, or -1 when it is neither.
 */
int hostport_cidr_parse(const char *s, struct sockaddr_storage *ss, int *bits);

/* Whether addr (its IP; the port is not looked at) lies in the CIDR net/bits of the same family. */
int hostport_cidr_contains(const struct sockaddr_storage *net, int bits, const struct sockaddr_storage *addr);

/* The port of an IPv4 or IPv6 socket address (host order). */
uint16_t hostport_sockaddr_port(const struct sockaddr_storage *ss);
void hostport_sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port);
/* Whether two IPv4 or IPv6 socket addresses have the same family, address and port. */
int hostport_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
