/*
 * cmd: the outriderctl commands and what they share.
 *
 * Each command gets its own argument vector (argv[0] is the command's
 * name, e.g. "init" for `outriderctl ca init`), parses it with
 * getopt_long, prints its results on stdout and its errors on stderr as
 * "outriderctl ca init: --ttl \"5x\": reason", and returns the exit code:
 *
 *   CMD_OK 0     done
 *   CMD_FAIL 1   the work failed (a CA is there already, a TTL past the
 *                CA's end, unreadable files, a chain that does not verify)
 *   CMD_USAGE 2  the command line is wrong (unknown or missing options,
 *                malformed values such as an uppercase namespace)
 */
#ifndef OUTRIDER_CTL_CMD_H
#define OUTRIDER_CTL_CMD_H

#include <stdint.h>
#include <stdio.h>

#define CMD_OK 0
#define CMD_FAIL 1
#define CMD_USAGE 2

int cmd_ca_init(int argc, char **argv);
int cmd_ca_serve(int argc, char **argv);
int cmd_cert_issue(int argc, char **argv);
int cmd_cert_inspect(int argc, char **argv);
int cmd_redirect(int argc, char **argv);
int cmd_inject(int argc, char **argv);

/* Print "outriderctl <cmd>: <message>\n" on stderr. */
void cmd_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Report what getopt_long returned for a bad option (opt is '?' or ':',
 * with the optstring starting with ':') and point at --help. Returns
 * CMD_USAGE.
 */
int cmd_bad_option(const char *cmd, char **argv, int opt);

/* Parse option's TTL value into *seconds; on error print it (naming option and value) and return -1. */
int cmd_parse_ttl(const char *cmd, const char *option, const char *value, int64_t *seconds);

/*
 * A --dns value: checked as a DNS name and appended to dns (max entries).
 * On error print it (naming the value) and return -1.
 */
int cmd_add_dns(const char *cmd, const char *value, const char **dns, size_t *n, size_t max);

/*
 * After getopt: report an argument left over and each of the n required
 * options (names[i], e.g. "--ca DIR") whose value given[i] is NULL.
 * Returns the number of errors printed.
 */
int cmd_check_args(const char *cmd, int argc, char **argv, const char *const *names, const char *const *given,
                   size_t n);

/* Reset getopt so that a command can parse its own vector (glibc: optind = 0 re-initialises). */
void cmd_getopt_reset(void);

#endif
