/*
 * cmd_redirect: `outriderctl redirect`, the transparent-capture rules of a
 * pod's network namespace (redirect.h), as Istio's init container installs
 * them: printed (--dry-run), installed, or removed (--remove). Installing
 * removes earlier rules first, so running it twice leaves one set. It runs
 * iptables-restore and ip6tables-restore (Debian's iptables package); IPv6
 * is skipped, with a note, where the kernel or the tools have none.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cmd.h"
#include "redirect.h"

#define CMD "redirect"

extern char **environ;

static void usage(FILE *out)
{
    fprintf(out, "usage: outriderctl redirect --proxy-uid UID [OPTIONS]\n"
                 "       outriderctl redirect --remove\n"
                 "\n"
                 "Install in this network namespace (a pod's) the iptables nat rules that send the app's\n"
                 "outbound TCP to the sidecar's outbound listener and TCP arriving for the app to its\n"
                 "inbound listener, as Istio's init container does; the proxy's own traffic (by uid or\n"
                 "gid), the app's loopback traffic and DNS are left alone. IPv4 and IPv6. Needs\n"
                 "CAP_NET_ADMIN (root, or an init container with NET_ADMIN and NET_RAW).\n"
                 "\n"
                 "  -u, --proxy-uid UID                  the proxy's user id (Istio's is 1337)\n"
                 "  -g, --proxy-gid GID                  or/and its group id\n"
                 "  -p, --proxy-port PORT                outbound capture port (default 15001)\n"
                 "  -z, --inbound-capture-port PORT      inbound capture port (default 15006)\n"
                 "  -b, --inbound-ports LIST             inbound ports to capture: \"*\" (default) or\n"
                 "                                       80,9080...; \"\" captures no inbound traffic\n"
                 "  -d, --exclude-inbound-ports LIST     with \"*\": ports left alone (default\n"
                 "                                       15000,15020,15021,15090, the proxy's own)\n"
                 "  -q, --outbound-ports LIST            only these destination ports (default: all)\n"
                 "  -o, --exclude-outbound-ports LIST    destination ports left alone\n"
                 "  -i, --outbound-ip-ranges LIST        CIDRs to capture: \"*\" (default); \"\" none\n"
                 "  -x, --exclude-outbound-ip-ranges LIST  CIDRs left alone\n"
                 "      --dry-run                        print the rules (iptables-restore input), change\n"
                 "                                       nothing\n"
                 "      --remove                         take the rules out again\n"
                 "      --no-ipv6                        leave IPv6 alone\n");
}

/* Run argv (argv[0] looked up in PATH); feed stdin_text when not NULL; quiet: its output to /dev/null. */
static int run(const char *const *argv, const char *stdin_text, size_t len, bool quiet, int *status)
{
    int in[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdin_text != NULL) {
        if (pipe(in) != 0)
            return -1;
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_addclose(&fa, in[1]);
        posix_spawn_file_actions_addclose(&fa, in[0]);
    }
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (stdin_text != NULL) {
        close(in[0]);
        if (rc == 0) {
            size_t off = 0;
            while (off < len) {
                ssize_t w = write(in[1], stdin_text + off, len - off);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
        }
        close(in[1]);
    }
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

static bool exited_ok(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Whether the kernel has IPv6 (the ip6tables tools may still be missing; run says so). */
static bool have_ipv6(void)
{
    struct stat st;
    return stat("/proc/net/if_inet6", &st) == 0;
}

static void remove_rules(const char *tool)
{
    for (size_t i = 0; redirect_cleanup[i] != NULL; i++) {
        const char *argv[16] = {tool};
        size_t n = 1;
        for (const char *const *a = redirect_cleanup[i]; *a != NULL && n < 15; a++)
            argv[n++] = *a;
        argv[n] = NULL;
        int status;
        (void)run(argv, NULL, 0, true, &status); /* absent rules: nothing to take out */
    }
}

int cmd_redirect(int argc, char **argv)
{
    enum { O_DRY = 1000, O_REMOVE, O_NO6 };
    static const struct option opts[] = {
        {"proxy-uid", required_argument, NULL, 'u'},
        {"proxy-gid", required_argument, NULL, 'g'},
        {"proxy-port", required_argument, NULL, 'p'},
        {"inbound-capture-port", required_argument, NULL, 'z'},
        {"inbound-ports", required_argument, NULL, 'b'},
        {"exclude-inbound-ports", required_argument, NULL, 'd'},
        {"outbound-ports", required_argument, NULL, 'q'},
        {"exclude-outbound-ports", required_argument, NULL, 'o'},
        {"outbound-ip-ranges", required_argument, NULL, 'i'},
        {"exclude-outbound-ip-ranges", required_argument, NULL, 'x'},
        {"dry-run", no_argument, NULL, O_DRY},
        {"remove", no_argument, NULL, O_REMOVE},
        {"no-ipv6", no_argument, NULL, O_NO6},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    redirect_opts_t o;
    redirect_opts_init(&o);
    bool dry = false, remove = false, v6 = true;
    int opt;
    cmd_getopt_reset();
    while ((opt = getopt_long(argc, argv, ":u:g:p:z:b:d:q:o:i:x:h", opts, NULL)) != -1) {
        char *end;
        long v;
        switch (opt) {
        case 'u':
        case 'g':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || v < 0 || v > 2147483647L) {
                cmd_error(CMD, "%s \"%s\": not a numeric id", opt == 'u' ? "--proxy-uid" : "--proxy-gid", optarg);
                return CMD_USAGE;
            }
            *(opt == 'u' ? &o.proxy_uid : &o.proxy_gid) = v;
            break;
        case 'p':
        case 'z':
            v = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || v < 1 || v > 65535) {
                cmd_error(CMD, "%s \"%s\": not a port (1-65535)",
                          opt == 'p' ? "--proxy-port" : "--inbound-capture-port", optarg);
                return CMD_USAGE;
            }
            *(opt == 'p' ? &o.proxy_port : &o.inbound_port) = (uint16_t)v;
            break;
        case 'b': o.inbound_ports = optarg; break;
        case 'd': o.exclude_inbound_ports = optarg; break;
        case 'q': o.outbound_ports = optarg; break;
        case 'o': o.exclude_outbound_ports = optarg; break;
        case 'i': o.outbound_ip_ranges = optarg; break;
        case 'x': o.exclude_outbound_ip_ranges = optarg; break;
        case O_DRY: dry = true; break;
        case O_REMOVE: remove = true; break;
        case O_NO6: v6 = false; break;
        case 'h': usage(stdout); return CMD_OK;
        default: return cmd_bad_option(CMD, argv, opt);
        }
    }
    if (optind < argc) {
        cmd_error(CMD, "unexpected argument \"%s\"", argv[optind]);
        return CMD_USAGE;
    }
    bool ipv6 = v6 && have_ipv6();
    if (remove) {
        if (dry) {
            for (size_t i = 0; redirect_cleanup[i] != NULL; i++) {
                printf("iptables");
                for (const char *const *a = redirect_cleanup[i]; *a != NULL; a++)
                    printf(" %s", *a);
                printf("\n");
            }
            return CMD_OK;
        }
        remove_rules("iptables");
        if (ipv6)
            remove_rules("ip6tables");
        printf("removed the OUTRIDER_* nat rules%s\n", ipv6 ? " (IPv4 and IPv6)" : " (IPv4)");
        return CMD_OK;
    }
    char err[256];
    buf_t r4 = BUF_INIT, r6 = BUF_INIT;
    if (redirect_rules(&o, REDIRECT_IPV4, &r4, err, sizeof err) != 0 ||
        redirect_rules(&o, REDIRECT_IPV6, &r6, err, sizeof err) != 0) {
        cmd_error(CMD, "%s", err);
        buf_dispose(&r4);
        buf_dispose(&r6);
        return CMD_USAGE;
    }
    int rc = CMD_OK;
    if (dry) {
        printf("# iptables-restore --noflush (IPv4)\n%.*s", (int)r4.len, r4.data);
        if (v6)
            printf("# ip6tables-restore --noflush (IPv6)\n%.*s", (int)r6.len, r6.data);
        goto out;
    }
    remove_rules("iptables");
    int status;
    const char *restore4[] = {"iptables-restore", "--noflush", NULL};
    if (run(restore4, r4.data, r4.len, false, &status) != 0) {
        cmd_error(CMD, "cannot run iptables-restore: %s (Debian: apt-get install iptables)", strerror(errno));
        rc = CMD_FAIL;
        goto out;
    }
    if (!exited_ok(status)) {
        cmd_error(CMD, "iptables-restore refused the rules (its message is above); nothing was installed");
        remove_rules("iptables");
        rc = CMD_FAIL;
        goto out;
    }
    if (ipv6) {
        remove_rules("ip6tables");
        const char *restore6[] = {"ip6tables-restore", "--noflush", NULL};
        if (run(restore6, r6.data, r6.len, false, &status) != 0 || !exited_ok(status)) {
            cmd_error(CMD, "ip6tables-restore failed: IPv6 traffic is not captured (IPv4 is)");
            remove_rules("ip6tables");
            ipv6 = false;
        }
    }
    printf("installed: outbound TCP -> :%u, inbound -> :%u, %s; the proxy's traffic (%s%lld) left alone\n",
           o.proxy_port, o.inbound_port, ipv6 ? "IPv4 and IPv6" : "IPv4 only", o.proxy_uid >= 0 ? "uid " : "gid ",
           (long long)(o.proxy_uid >= 0 ? o.proxy_uid : o.proxy_gid));
out:
    buf_dispose(&r4);
    buf_dispose(&r6);
    return rc;
}
