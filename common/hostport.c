/*
 * hostport: see hostport.h.
 */
#include "hostport.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>

static int fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return -1;
}

int hostport_split(const char *s, char *host, size_t hostlen, uint16_t *port, const char **why)
{
    const char *h = s, *colon;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return fail(why, "missing \"]\" after an IPv6 address");
        if (close[1] != ':')
            return fail(why, "missing \":PORT\"");
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return fail(why, "missing \":PORT\"");
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl) != NULL)
            return fail(why, "IPv6 addresses need brackets ([::1]:PORT)");
    }
    if (hl == 0)
        return fail(why, "empty host");
    if (hl >= hostlen)
        return fail(why, "host too long");
    const char *d = colon + 1;
    uint32_t p = 0;
    if (*d == '\0')
        return fail(why, "empty port");
    for (; *d != '\0'; d++) {
        if (*d < '0' || *d > '9')
            return fail(why, "port is not a decimal number");
        p = p * 10 + (uint32_t)(*d - '0');
        if (p > 65535)
            return fail(why, "port is above 65535");
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int hostport_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    socklen_t l;
    if (host != NULL && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        l = sizeof(*sin);
    } else if (host != NULL && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        l = sizeof(*sin6);
    } else {
        memset(ss, 0, sizeof(*ss)); /* inet_pton may have written part of an address */
        return -1;
    }
    if (len != NULL)
        *len = l;
    return 0;
}

int hostport_cidr_parse(const char *s, struct sockaddr_storage *ss, int *bits)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof addr)
        return -1;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(ss, 0, sizeof *ss);
    int max;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    *bits = max;
    if (slash == NULL)
        return 0;
    const char *d = slash + 1;
    if (*d < '0' || *d > '9' || strlen(d) > 3)
        return -1;
    int b = atoi(d);
    for (const char *q = d; *q != '\0'; q++)
        if (*q < '0' || *q > '9')
            return -1;
    if (b > max)
        return -1;
    *bits = b;
    return 0;
}

int hostport_cidr_contains(const struct sockaddr_storage *net, int bits, const struct sockaddr_storage *addr)
{
    if (net->ss_family != addr->ss_family)
        return 0;
    const uint8_t *a, *b;
    if (net->ss_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)net)->sin_addr;
        b = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;
    } else {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)net)->sin6_addr;
        b = (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
    }
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

uint16_t hostport_sockaddr_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

void hostport_sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

int hostport_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || hostport_sockaddr_port(a) != hostport_sockaddr_port(b))
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}
