/*
 * redirect: see redirect.h.
 */
#include "redirect.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostport.h"

void redirect_opts_init(redirect_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->proxy_port = 15001;
    o->inbound_port = 15006;
    o->proxy_uid = -1;
    o->proxy_gid = -1;
    o->inbound_ports = "*";
    o->exclude_inbound_ports = "15000,15020,15021,15090";
    o->outbound_ports = "";
    o->exclude_outbound_ports = "";
    o->outbound_ip_ranges = "*";
    o->exclude_outbound_ip_ranges = "";
}

typedef struct list {
    char items[REDIRECT_MAX_ITEMS][64];
    size_t n;
    bool all; /* "*" */
} list_t;

/* Split a comma-separated list (blanks around items ignored; empty items skipped). */
static int split(const char *what, const char *text, list_t *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e != '\0' && *e != ',')
            e++;
        size_t len = (size_t)(e - p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == 1 && p[0] == '*') {
            l->all = true;
        } else if (len > 0) {
            if (l->n == REDIRECT_MAX_ITEMS) {
                snprintf(err, errlen, "%s: more than %d items", what, REDIRECT_MAX_ITEMS);
                return -1;
            }
            if (len >= sizeof l->items[0]) {
                snprintf(err, errlen, "%s: \"%.*s...\" is too long", what, 20, p);
                return -1;
            }
            memcpy(l->items[l->n], p, len);
            l->items[l->n++][len] = '\0';
        }
        p = e;
    }
    if (l->all && l->n > 0) {
        snprintf(err, errlen, "%s: \"*\" and a list together", what);
        return -1;
    }
    return 0;
}

static int check_ports(const char *what, const list_t *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        char *end;
        long v = strtol(l->items[i], &end, 10);
        if (*end != '\0' || end == l->items[i] || v < 1 || v > 65535 || l->items[i][0] == '+' ||
            l->items[i][0] == '-') {
            snprintf(err, errlen, "%s: \"%s\" is not a port (1-65535)", what, l->items[i]);
            return -1;
        }
    }
    return 0;
}

/* A CIDR (or a bare address, /32 or /128); *family says which. */
static int parse_cidr(const char *s, enum redirect_family *family)
{
    struct sockaddr_storage ss;
    int bits;
    if (hostport_cidr_parse(s, &ss, &bits) != 0)
        return -1;
    *family = ss.ss_family == AF_INET6 ? REDIRECT_IPV6 : REDIRECT_IPV4;
    return 0;
}

static int check_ranges(const char *what, const list_t *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        enum redirect_family f;
        if (parse_cidr(l->items[i], &f) != 0) {
            snprintf(err, errlen, "%s: \"%s\" is not an address or CIDR (10.0.0.0/8, fd00::/8)", what, l->items[i]);
            return -1;
        }
    }
    return 0;
}

static bool of_family(const char *cidr, enum redirect_family f)
{
    enum redirect_family g;
    return parse_cidr(cidr, &g) == 0 && g == f;
}

static void line(buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(buf_t *out, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(out, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
    buf_append(out, "\n", 1);
}

/* "-m owner --uid-owner N" / "--gid-owner N" matches of the proxy, negated or not, into the rule prefix. */
static void owner_rules(buf_t *out, const redirect_opts_t *o, const char *before, const char *after)
{
    if (o->proxy_uid >= 0)
        line(out, "%s-m owner --uid-owner %lld %s", before, (long long)o->proxy_uid, after);
    if (o->proxy_gid >= 0)
        line(out, "%s-m owner --gid-owner %lld %s", before, (long long)o->proxy_gid, after);
}

int redirect_rules(const redirect_opts_t *o, enum redirect_family f, buf_t *out, char *err, size_t errlen)
{
    list_t in, in_ex, outp, out_ex, ranges, ranges_ex;
    if (split("--inbound-ports", o->inbound_ports, &in, err, errlen) != 0 ||
        check_ports("--inbound-ports", &in, err, errlen) != 0 ||
        split("--exclude-inbound-ports", o->exclude_inbound_ports, &in_ex, err, errlen) != 0 ||
        check_ports("--exclude-inbound-ports", &in_ex, err, errlen) != 0 ||
        split("--outbound-ports", o->outbound_ports, &outp, err, errlen) != 0 ||
        check_ports("--outbound-ports", &outp, err, errlen) != 0 ||
        split("--exclude-outbound-ports", o->exclude_outbound_ports, &out_ex, err, errlen) != 0 ||
        check_ports("--exclude-outbound-ports", &out_ex, err, errlen) != 0 ||
        split("--outbound-ip-ranges", o->outbound_ip_ranges, &ranges, err, errlen) != 0 ||
        check_ranges("--outbound-ip-ranges", &ranges, err, errlen) != 0 ||
        split("--exclude-outbound-ip-ranges", o->exclude_outbound_ip_ranges, &ranges_ex, err, errlen) != 0 ||
        check_ranges("--exclude-outbound-ip-ranges", &ranges_ex, err, errlen) != 0)
        return -1;
    if (outp.all) {
        snprintf(err, errlen, "--outbound-ports: \"*\" is the default; give ports or nothing");
        return -1;
    }
    if (o->proxy_uid < 0 && o->proxy_gid < 0) {
        snprintf(err, errlen, "the proxy's --proxy-uid or --proxy-gid is needed, or its own traffic would loop");
        return -1;
    }
    if (o->proxy_port == 0 || o->inbound_port == 0) {
        snprintf(err, errlen, "--proxy-port and --inbound-capture-port must be ports (1-65535)");
        return -1;
    }
    const char *lo_net = f == REDIRECT_IPV4 ? "127.0.0.1/32" : "::1/128";

    line(out, "*nat");
    line(out, ":OUTRIDER_INBOUND - [0:0]");
    line(out, ":OUTRIDER_IN_REDIRECT - [0:0]");
    line(out, ":OUTRIDER_OUTPUT - [0:0]");
    line(out, ":OUTRIDER_REDIRECT - [0:0]");
    line(out, "-A OUTRIDER_IN_REDIRECT -p tcp -j REDIRECT --to-ports %u", o->inbound_port);
    line(out, "-A OUTRIDER_REDIRECT -p tcp -j REDIRECT --to-ports %u", o->proxy_port);

    /* inbound: everything but the excluded ports, or only the listed ones */
    if (in.all || in.n > 0)
        line(out, "-A PREROUTING -p tcp -j OUTRIDER_INBOUND");
    if (in.all) {
        for (size_t i = 0; i < in_ex.n; i++)
            line(out, "-A OUTRIDER_INBOUND -p tcp --dport %s -j RETURN", in_ex.items[i]);
        line(out, "-A OUTRIDER_INBOUND -p tcp -j OUTRIDER_IN_REDIRECT");
    } else {
        for (size_t i = 0; i < in.n; i++)
            line(out, "-A OUTRIDER_INBOUND -p tcp --dport %s -j OUTRIDER_IN_REDIRECT", in.items[i]);
    }

    /* outbound */
    bool any_range = ranges.all;
    for (size_t i = 0; i < ranges.n; i++)
        any_range |= of_family(ranges.items[i], f);
    if (any_range) {
        line(out, "-A OUTPUT -p tcp -j OUTRIDER_OUTPUT");
        /* the proxy calling its own pod's address goes over lo: to the inbound side, as from outside */
        char before[128];
        snprintf(before, sizeof before, "-A OUTRIDER_OUTPUT -o lo ! -d %s ", lo_net);
        owner_rules(out, o, before, "-j OUTRIDER_IN_REDIRECT");
        /* the app talking to itself over lo is left alone; so is everything the proxy sends */
        if (o->proxy_uid >= 0)
            line(out, "-A OUTRIDER_OUTPUT -o lo -m owner ! --uid-owner %lld -j RETURN", (long long)o->proxy_uid);
        else
            line(out, "-A OUTRIDER_OUTPUT -o lo -m owner ! --gid-owner %lld -j RETURN", (long long)o->proxy_gid);
        owner_rules(out, o, "-A OUTRIDER_OUTPUT ", "-j RETURN");
        line(out, "-A OUTRIDER_OUTPUT -d %s -j RETURN", lo_net);
        line(out, "-A OUTRIDER_OUTPUT -p tcp --dport 53 -j RETURN"); /* DNS */
        for (size_t i = 0; i < out_ex.n; i++)
            line(out, "-A OUTRIDER_OUTPUT -p tcp --dport %s -j RETURN", out_ex.items[i]);
        for (size_t i = 0; i < ranges_ex.n; i++)
            if (of_family(ranges_ex.items[i], f))
                line(out, "-A OUTRIDER_OUTPUT -d %s -j RETURN", ranges_ex.items[i]);
        for (size_t r = 0; r < (ranges.all ? 1 : ranges.n); r++) {
            char dst[96] = "";
            if (!ranges.all) {
                if (!of_family(ranges.items[r], f))
                    continue;
                snprintf(dst, sizeof dst, "-d %s ", ranges.items[r]);
            }
            if (outp.n == 0)
                line(out, "-A OUTRIDER_OUTPUT %s-j OUTRIDER_REDIRECT", dst);
            for (size_t i = 0; i < outp.n; i++)
                line(out, "-A OUTRIDER_OUTPUT %s-p tcp --dport %s -j OUTRIDER_REDIRECT", dst, outp.items[i]);
        }
    }
    line(out, "COMMIT");
    return 0;
}

static const char *const c1[] = {"-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", "OUTRIDER_INBOUND", NULL};
static const char *const c2[] = {"-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", "OUTRIDER_OUTPUT", NULL};
static const char *const c3[] = {"-t", "nat", "-F", "OUTRIDER_INBOUND", NULL};
static const char *const c4[] = {"-t", "nat", "-X", "OUTRIDER_INBOUND", NULL};
static const char *const c5[] = {"-t", "nat", "-F", "OUTRIDER_OUTPUT", NULL};
static const char *const c6[] = {"-t", "nat", "-X", "OUTRIDER_OUTPUT", NULL};
static const char *const c7[] = {"-t", "nat", "-F", "OUTRIDER_IN_REDIRECT", NULL};
static const char *const c8[] = {"-t", "nat", "-X", "OUTRIDER_IN_REDIRECT", NULL};
static const char *const c9[] = {"-t", "nat", "-F", "OUTRIDER_REDIRECT", NULL};
static const char *const c10[] = {"-t", "nat", "-X", "OUTRIDER_REDIRECT", NULL};
const char *const *const redirect_cleanup[] = {c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, NULL};
