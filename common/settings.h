/*
 * settings: one table of settings per component (name, type, bounds,
 * default, help), loaded from YAML with file:line:col errors and from
 * command-line flags.
 *
 * A component describes its settings as an array of setting_t rows that
 * point at fields of its own config struct (by offset). settings_defaults()
 * fills the struct, settings_load_yaml() applies a file, settings_set()
 * applies one "name=value" (flags). Every error is reported through the
 * caller's callback and loading goes on, so a user sees all of them at once.
 */
#ifndef OUTRIDER_SETTINGS_H
#define OUTRIDER_SETTINGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum setting_type {
    SETTING_STRING,   /* char * (heap, owned by the struct; settings_dispose frees) */
    SETTING_UINT,     /* uint64_t; plain integer */
    SETTING_BYTES,    /* uint64_t; integer with optional suffix B, KiB, MiB, GiB, KB, MB, GB */
    SETTING_DURATION, /* uint64_t milliseconds; "250ms", "5s", "2m", "1h", "1d" or a plain number of ms */
    SETTING_BOOL,     /* int */
    SETTING_LIST,     /* setting_list_t: list of strings */
    SETTING_HOSTPORT, /* char *, validated as HOST:PORT (port 0..65535; [v6]:port allowed) */
    SETTING_MAP,      /* setting_list_t of "key=value" items, open-ended keys: "NAME.key" (flag, YAML path; a key may
                         hold dots) sets one, a later value of the same key replaces it; the default and a value
                         for NAME itself are comma-separated key=value pairs, and replace all */
};

typedef struct setting_list {
    char **items; /* heap */
    size_t n;
} setting_list_t;

typedef struct setting {
    const char *name; /* dotted YAML path, e.g. "store.maxSpans" */
    enum setting_type type;
    size_t offset;     /* offsetof(config struct, field) */
    const char *def;   /* default as text, parsed like user input; NULL = empty */
    uint64_t min, max; /* bounds for numeric types (inclusive); max 0 = unbounded */
    const char *help;
    const char *choices; /* SETTING_STRING: NULL, or the accepted values separated by '|' ("json|otlp") */
    /*
     * SETTING_STRING: NULL, or a check of each non-empty value as it is
     * set (a file that must exist and parse): 0, or -1 with the reason in
     * why (NUL-terminated), which is reported at the value's file:line:col.
     */
    int (*check)(const char *value, char *why, size_t why_len);
} setting_t;

/* Receives one error message "file:line:col: path: reason" (file part absent for flags). */
typedef void (*settings_error_fn)(void *ctx, const char *message);

/* Apply every default to cfg. Aborts if a default does not parse (a programming error). */
void settings_defaults(const setting_t *table, size_t n, void *cfg);

/*
 * Load a YAML file (one document, a mapping, nested by the dots of the
 * names) into cfg. Unknown keys, wrong types and out-of-range values are
 * each reported; returns the number of errors (0 = success), or -1 if the
 * file cannot be read or is not YAML (also reported).
 */
int settings_load_yaml(const setting_t *table, size_t n, void *cfg, const char *path, settings_error_fn err, void *ctx);

/* Same as settings_load_yaml but from a string (the name is used in messages). */
int settings_load_yaml_string(const setting_t *table, size_t n, void *cfg, const char *name, const char *text,
                              size_t len, settings_error_fn err, void *ctx);

/* Set one setting by name from text (command-line flags). Returns 0 or -1 (reported). */
int settings_set(const setting_t *table, size_t n, void *cfg, const char *name, const char *value,
                 settings_error_fn err, void *ctx);

/* Free the strings and lists that settings allocated in cfg (and forget where they were set). */
void settings_dispose(const setting_t *table, size_t n, void *cfg);

/*
 * Where the value of setting name in cfg was last set, for messages of
 * checks that span several settings: "file:line:col: " for a YAML value,
 * "" for a flag, a default or an unknown name. The text stays valid until
 * settings_dispose(cfg) or the setting is set again. Any thread.
 */
const char *settings_where(const setting_t *table, size_t n, const void *cfg, const char *name);

/* Print a reference of the table (name, type, default, help) as a Markdown table. */
void settings_print_reference(const setting_t *table, size_t n, FILE *out);

#endif
