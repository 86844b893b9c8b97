/*
 * outriderctl: the mesh's command-line tool. This file only dispatches
 * `outriderctl GROUP VERB ...` to the commands (cmd.h), which own their
 * options, output and exit codes (0 ok, 1 failure, 2 usage).
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

typedef struct command {
    const char *group, *verb;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"ca", "init", cmd_ca_init, "make the mesh's root CA (EC P-256, self-signed) in a directory"},
    {"ca", "serve", cmd_ca_serve, "sign sidecars' certificate requests over HTTPS (POST /v1/sign)"},
    {"cert", "issue", cmd_cert_issue, "issue a workload key and certificate (a SPIFFE id) from a CA"},
    {"cert", "inspect", cmd_cert_inspect, "print a certificate's identity and validity; check its chain"},
    {"redirect", NULL, cmd_redirect, "install (or print, or remove) a pod's transparent-capture iptables rules"},
    {"inject", NULL, cmd_inject, "add the sidecar to the workloads of a Kubernetes YAML file"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out, const char *group)
{
    char name[64];
    fprintf(out, "usage: outriderctl COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (group == NULL || strcmp(group, commands[i].group) == 0)
            fprintf(out, "  %-13s %s\n",
                    commands[i].verb != NULL
                        ? (snprintf(name, sizeof name, "%s %s", commands[i].group, commands[i].verb), name)
                        : commands[i].group,
                    commands[i].summary);
    fprintf(out, "\n`outriderctl COMMAND --help` shows a command's options. Exit codes: 0 ok, 1 failure, 2 usage.\n");
}

static int is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr, NULL);
        return CMD_USAGE;
    }
    if (is_help(argv[1])) {
        usage(stdout, NULL);
        return CMD_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("outriderctl %s\n", OUTRIDER_VERSION);
        return CMD_OK;
    }
    int known_group = 0;
    for (size_t i = 0; i < N_COMMANDS; i++)
        known_group |= strcmp(argv[1], commands[i].group) == 0;
    if (!known_group) {
        fprintf(stderr, "outriderctl: unknown command \"%s\"\n", argv[1]);
        usage(stderr, NULL);
        return CMD_USAGE;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) /* one-word commands take their options right away */
        if (commands[i].verb == NULL && strcmp(argv[1], commands[i].group) == 0)
            return commands[i].run(argc - 1, argv + 1);
    if (argc < 3 || is_help(argv[2])) {
        usage(argc < 3 ? stderr : stdout, argv[1]);
        return argc < 3 ? CMD_USAGE : CMD_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].verb != NULL && strcmp(argv[1], commands[i].group) == 0 &&
            strcmp(argv[2], commands[i].verb) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "outriderctl: unknown command \"%s %s\"\n", argv[1], argv[2]);
    usage(stderr, argv[1]);
    return CMD_USAGE;
}
