/*
 * cmd: see cmd.h.
 */
#include "cmd.h"

#include <getopt.h>
#include <stdarg.h>

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
