/*
 * hostport: see hostport.h.
 */
#include "hostport.h"

#include <arpa/inet.h>
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
