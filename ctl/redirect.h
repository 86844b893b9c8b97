/*
 * redirect: the packet rules that make a sidecar transparent, as Istio's
 * init container (istio-iptables) installs them in a pod's network
 * namespace: iptables `nat` chains that send the app's outbound TCP to the
 * proxy's outbound listener (15001) and TCP arriving for the app to its
 * inbound listener (15006), leaving alone the proxy's own connections (by
 * its uid, or gid), loopback traffic of the app and DNS.
 *
 * The chains (the same for IPv4 and IPv6, in iptables-restore form):
 *
 *   PREROUTING  -p tcp -j OUTRIDER_INBOUND
 *   OUTRIDER_INBOUND: excluded inbound ports RETURN; the rest (or only the
 *                     listed ports) -j OUTRIDER_IN_REDIRECT
 *   OUTRIDER_IN_REDIRECT: REDIRECT --to-ports INBOUND_PORT
 *   OUTPUT      -p tcp -j OUTRIDER_OUTPUT
 *   OUTRIDER_OUTPUT: the proxy to a non-loopback address over lo (its own
 *                    pod) -j OUTRIDER_IN_REDIRECT; the app over lo RETURN;
 *                    the proxy's uid/gid RETURN; to localhost RETURN; port
 *                    53 RETURN; excluded ports and ranges RETURN; the
 *                    included ranges (all by default, or only the listed
 *                    ports) -j OUTRIDER_REDIRECT
 *   OUTRIDER_REDIRECT: REDIRECT --to-ports PROXY_PORT
 *
 * The module builds the text and checks the options; cmd_redirect.c runs
 * iptables-restore / ip6tables-restore with it, or prints it.
 */
#ifndef OUTRIDER_CTL_REDIRECT_H
#define OUTRIDER_CTL_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define REDIRECT_MAX_ITEMS 64 /* ports or ranges in one list */

typedef struct redirect_opts {
    uint16_t proxy_port;   /* outbound capture, default 15001 */
    uint16_t inbound_port; /* inbound capture, default 15006 */
    int64_t proxy_uid;     /* the proxy's uid (its traffic is not captured); -1 none */
    int64_t proxy_gid;     /* and/or its gid; -1 none; one of the two is required */
    /* lists as given on the command line: comma-separated, "*" = all, "" = none */
    const char *inbound_ports;              /* captured inbound ports: "*" (default) or a list; "" = no inbound */
    const char *exclude_inbound_ports;      /* with "*": ports left alone (the proxy's own: 15000,15020,15021,15090) */
    const char *outbound_ports;             /* "" (all ports, default) or a list: only these are captured */
    const char *exclude_outbound_ports;     /* ports left alone */
    const char *outbound_ip_ranges;         /* "*" (default) or CIDRs: only these are captured; "" = no outbound */
    const char *exclude_outbound_ip_ranges; /* CIDRs left alone */
} redirect_opts_t;

/* The defaults above. */
void redirect_opts_init(redirect_opts_t *o);

enum redirect_family { REDIRECT_IPV4, REDIRECT_IPV6 };

/*
 * Append the iptables-restore text (the nat table: the four chains and the
 * two jumps) for family to out. CIDRs of the other family are skipped (an
 * IPv4 range in the IPv6 rules and the other way round). -1 with a reason
 * ("--exclude-outbound-ports: \"x\" is not a port") when an option is wrong;
 * nothing is appended then.
 */
int redirect_rules(const redirect_opts_t *o, enum redirect_family f, buf_t *out, char *err, size_t errlen);

/*
 * The iptables arguments (without the program name) that take the rules
 * out again, one command per entry, NULL-terminated: the two jumps, then
 * each chain flushed and deleted. Each may fail when the rules are not
 * there; that is not an error of the removal.
 */
extern const char *const *const redirect_cleanup[];

#endif
