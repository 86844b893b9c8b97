/*
 * cmd: see cmd.h.
 */
#include "cmd.h"

#include <getopt.h>
#include <stdarg.h>

#include "ident.h"
#include "ttl.h"

void cmd_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "outriderctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_bad_option(const char *cmd, char **argv, int opt)
{
    /* getopt_long leaves the offending word just before optind */
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    if (opt == ':')
        cmd_error(cmd, "option \"%s\" needs a value", word);
    else if (optopt != 0)
        cmd_error(cmd, "unknown option \"-%c\"", optopt);
    else
        cmd_error(cmd, "unknown option \"%s\"", word);
    fprintf(stderr, "run `outriderctl %s --help` for its options\n", cmd);
    return CMD_USAGE;
}

int cmd_parse_ttl(const char *cmd, const char *option, const char *value, int64_t *seconds)
{
    const char *why;
    if (ttl_parse(value, seconds, &why) != 0) {
        cmd_error(cmd, "%s \"%s\": %s", option, value, why);
        return -1;
    }
    return 0;
}

void cmd_getopt_reset(void)
{
    optind = 0;
    opterr = 0;
}

int cmd_add_dns(const char *cmd, const char *value, const char **dns, size_t *n, size_t max)
{
    char why[256];
    if (ident_check_dns_name(value, why, sizeof(why)) != 0) {
        cmd_error(cmd, "--dns \"%s\": %s", value, why);
        return -1;
    }
    if (*n == max) {
        cmd_error(cmd, "--dns \"%s\": more than %zu DNS names", value, max);
        return -1;
    }
    dns[(*n)++] = value;
    return 0;
}

int cmd_check_args(const char *cmd, int argc, char **argv, const char *const *names, const char *const *given, size_t n)
{
    int errors = 0;
    if (optind < argc) {
        cmd_error(cmd, "unexpected argument \"%s\"", argv[optind]);
        errors++;
    }
    for (size_t i = 0; i < n; i++) {
        if (given[i] == NULL) {
            cmd_error(cmd, "missing %s", names[i]);
            errors++;
        }
    }
    return errors;
}
