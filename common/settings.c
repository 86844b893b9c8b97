/*
 * settings: table-driven configuration; see settings.h.
 *
 * YAML is read with libfyaml into a document tree so that every node keeps
 * its line and column. The loader walks mappings, joins keys with dots and
 * looks the path up in the table; a mapping whose path is a prefix of some
 * setting is descended into, anything else is an unknown key.
 */
#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hostport.h"
#include "log.h"
#include "yaml.h"

typedef struct loader {
    const setting_t *table;
    size_t n;
    void *cfg;
    const char *file;
    settings_error_fn err;
    void *ctx;
    int errors;
} loader_t;

static void report(loader_t *l, int line, int col, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void report(loader_t *l, int line, int col, const char *path, const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    if (l->file != NULL)
        buf_printf(&b, "%s:%d:%d: ", l->file, line, col);
    if (path != NULL && *path)
        buf_printf(&b, "%s: ", path);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    l->err(l->ctx, b.data);
    buf_dispose(&b);
    l->errors++;
}

static const setting_t *find(const setting_t *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

/* The map setting whose name is a proper prefix of name at a dot ("kafka.producer" for
 * "kafka.producer.acks"), with *key set to the rest. */
static const setting_t *find_map(const setting_t *table, size_t n, const char *name, const char **key)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(table[i].name);
        if (table[i].type == SETTING_MAP && strncmp(table[i].name, name, len) == 0 && name[len] == '.' &&
            name[len + 1] != '\0') {
            *key = name + len + 1;
            return &table[i];
        }
    }
    return NULL;
}

static int is_prefix_of_any(const setting_t *table, size_t n, const char *prefix)
{
    size_t len = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if (strncmp(table[i].name, prefix, len) == 0 && table[i].name[len] == '.')
            return 1;
    return 0;
}

/*
 * Where values were set (settings_where): "file:line:col: " per field
 * address, for the YAML values only. Loading is rare and small, so a
 * plain array under one lock does.
 */
typedef struct origin {
    const void *field;
    char *where; /* heap */
} origin_t;

static pthread_mutex_t origins_mu = PTHREAD_MUTEX_INITIALIZER;
static origin_t *origins;
static size_t n_origins, cap_origins;

/* Remember where (NULL: forget) for field. */
static void origin_set(const void *field, const char *where)
{
    pthread_mutex_lock(&origins_mu);
    size_t i = 0;
    while (i < n_origins && origins[i].field != field)
        i++;
    if (i < n_origins) {
        free(origins[i].where);
        origins[i] = origins[--n_origins];
    }
    if (where != NULL) {
        if (n_origins == cap_origins) {
            cap_origins = cap_origins ? cap_origins * 2 : 16;
            origins = realloc(origins, cap_origins * sizeof(*origins));
            if (origins == NULL)
                log_fatal("out of memory");
        }
        origins[n_origins].field = field;
        if ((origins[n_origins].where = strdup(where)) == NULL)
            log_fatal("out of memory");
        n_origins++;
    }
    if (n_origins == 0) {
        free(origins);
        origins = NULL;
        cap_origins = 0;
    }
    pthread_mutex_unlock(&origins_mu);
}

const char *settings_where(const setting_t *table, size_t n, const void *cfg, const char *name)
{
    const setting_t *s = find(table, n, name);
    if (s == NULL)
        return "";
    const void *field = (const char *)cfg + s->offset;
    const char *where = "";
    pthread_mutex_lock(&origins_mu);
    for (size_t i = 0; i < n_origins; i++)
        if (origins[i].field == field)
            where = origins[i].where;
    pthread_mutex_unlock(&origins_mu);
    return where;
}

static int parse_uint(const char *s, uint64_t *out, const char **rest)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    *out = v;
    *rest = end;
    return 0;
}

static int mul_check(uint64_t v, uint64_t m, uint64_t *out)
{
    if (m != 0 && v > UINT64_MAX / m)
        return -1;
    *out = v * m;
    return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    const char *rest;
    uint64_t v;
    if (parse_uint(s, &v, &rest) != 0)
        return -1;
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},        {"B", 1},        {"KiB", 1024},      {"MiB", 1024 * 1024}, {"GiB", 1 << 30},
                 {"KB", 1000},   {"MB", 1000000}, {"GB", 1000000000}, {"Ki", 1024},         {"Mi", 1024 * 1024},
                 {"Gi", 1 << 30}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(rest, units[i].suffix) == 0)
            return mul_check(v, units[i].mult, out);
    return -1;
}

static int parse_duration(const char *s, uint64_t *out)
{
    const char *rest;
    uint64_t v;
    if (parse_uint(s, &v, &rest) != 0)
        return -1;
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(rest, units[i].suffix) == 0)
            return mul_check(v, units[i].mult, out);
    return -1;
}

static void list_free(setting_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void list_add(setting_list_t *l, const char *s, size_t len)
{
    char **items = realloc(l->items, (l->n + 1) * sizeof(char *));
    if (items == NULL)
        log_fatal("out of memory");
    l->items = items;
    l->items[l->n] = strndup(s, len);
    if (l->items[l->n] == NULL)
        log_fatal("out of memory");
    l->n++;
}

/* Set key to value in the map l, replacing an earlier value of key. */
static void map_put(setting_list_t *l, const char *key, size_t key_len, const char *value)
{
    buf_t b = BUF_INIT;
    buf_append(&b, key, key_len);
    buf_append(&b, "=", 1);
    buf_append(&b, value, strlen(value));
    for (size_t i = 0; i < l->n; i++) {
        if (strncmp(l->items[i], key, key_len) == 0 && l->items[i][key_len] == '=') {
            free(l->items[i]);
            l->items[i] = strndup(b.data, b.len);
            if (l->items[i] == NULL)
                log_fatal("out of memory");
            buf_dispose(&b);
            return;
        }
    }
    list_add(l, b.data, b.len);
    buf_dispose(&b);
}

static int is_choice(const char *choices, const char *value)
{
    size_t n = strlen(value);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return 1;
        p += len + (bar ? 1 : 0);
    }
    return 0;
}

/* "expected one of a, b, c" for choices "a|b|c" (a static buffer: messages are reported one at a time). */
static const char *choices_reason(const char *choices)
{
    static _Thread_local char why[256];
    size_t k = (size_t)snprintf(why, sizeof(why), "expected one of ");
    for (const char *p = choices; *p && k < sizeof(why) - 1; p++)
        k += (size_t)snprintf(why + k, sizeof(why) - k, *p == '|' ? ", " : "%c", *p);
    return why;
}

/* Apply a scalar value; returns NULL on success or a static reason. */
static const char *apply(const setting_t *s, void *cfg, const char *value)
{
    char *field = (char *)cfg + s->offset;
    uint64_t v = 0;
    switch (s->type) {
    case SETTING_HOSTPORT: {
        char host[256];
        uint16_t port;
        if (hostport_split(value, host, sizeof(host), &port, NULL) != 0)
            return "expected HOST:PORT (port 0-65535; IPv6 in brackets)";
    }
        /* fall through */
    case SETTING_STRING: {
        if (s->choices != NULL && !is_choice(s->choices, value))
            return choices_reason(s->choices);
        static _Thread_local char why[512];
        why[0] = '\0';
        if (s->check != NULL && value[0] != '\0' && s->check(value, why, sizeof(why)) != 0)
            return why[0] ? why : "refused";
        char **p = (char **)field;
        free(*p);
        *p = strdup(value);
        if (*p == NULL)
            log_fatal("out of memory");
        return NULL;
    }
    case SETTING_UINT: {
        const char *rest;
        if (parse_uint(value, &v, &rest) != 0 || *rest != '\0')
            return "expected a non-negative integer";
        break;
    }
    case SETTING_BYTES:
        if (parse_bytes(value, &v) != 0)
            return "expected a size such as 1048576, 64KiB, 16MiB or 2GiB";
        break;
    case SETTING_DURATION:
        if (parse_duration(value, &v) != 0)
            return "expected a duration such as 500ms, 30s, 5m, 1h or 1d";
        break;
    case SETTING_BOOL: {
        int *b = (int *)field;
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0)
            *b = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "off") == 0)
            *b = 0;
        else
            return "expected true or false";
        return NULL;
    }
    case SETTING_LIST:
    case SETTING_MAP: {
        setting_list_t *l = (setting_list_t *)field;
        list_free(l);
        /* from text (defaults, flags): comma-separated */
        const char *p = value;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len > 0)
                list_add(l, p, len);
            p += len + (comma ? 1 : 0);
        }
        if (s->type == SETTING_LIST)
            return NULL;
        setting_list_t m = {0}; /* key=value items; a later value of a key replaces an earlier one */
        for (size_t i = 0; i < l->n; i++) {
            const char *eq = strchr(l->items[i], '=');
            if (eq == NULL || eq == l->items[i]) {
                list_free(l);
                list_free(&m);
                return "expected comma-separated key=value pairs";
            }
            map_put(&m, l->items[i], (size_t)(eq - l->items[i]), eq + 1);
        }
        list_free(l);
        *l = m;
        return NULL;
    }
    }
    if (v < s->min || (s->max != 0 && v > s->max))
        return "value out of range";
    *(uint64_t *)field = v;
    return NULL;
}

void settings_defaults(const setting_t *table, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = apply(&table[i], cfg, table[i].def ? table[i].def : "");
        if (why != NULL && table[i].def != NULL)
            log_fatal("default of setting %s does not parse: %s", table[i].name, why);
    }
}

void settings_dispose(const setting_t *table, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        char *field = (char *)cfg + table[i].offset;
        origin_set(field, NULL);
        if (table[i].type == SETTING_STRING || table[i].type == SETTING_HOSTPORT) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (table[i].type == SETTING_LIST || table[i].type == SETTING_MAP) {
            list_free((setting_list_t *)field);
        }
    }
}

int settings_set(const setting_t *table, size_t n, void *cfg, const char *name, const char *value,
                 settings_error_fn err, void *ctx)
{
    loader_t l = {table, n, cfg, NULL, err, ctx, 0};
    const setting_t *s = find(table, n, name);
    const char *key = NULL;
    if (s == NULL && (s = find_map(table, n, name, &key)) != NULL) {
        map_put((setting_list_t *)((char *)cfg + s->offset), key, strlen(key), value);
        origin_set((char *)cfg + s->offset, NULL);
        return 0;
    }
    if (s == NULL) {
        report(&l, 0, 0, name, "unknown setting");
        return -1;
    }
    const char *why = apply(s, cfg, value);
    if (why != NULL) {
        report(&l, 0, 0, name, "%s (got \"%s\")", why, value);
        return -1;
    }
    origin_set((char *)cfg + s->offset, NULL);
    return 0;
}

/* Remember that s's value came from node v of the file being loaded. */
static void set_origin(loader_t *l, const setting_t *s, const yaml_node_t *v)
{
    if (l->file == NULL)
        return;
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s:%d:%d: ", l->file, v->line, v->col);
    origin_set((char *)l->cfg + s->offset, b.data);
    buf_dispose(&b);
}

static void load_value(loader_t *l, const setting_t *s, const yaml_node_t *value)
{
    char *field = (char *)l->cfg + s->offset;
    if (s->type == SETTING_LIST) {
        if (value->kind != YAML_SEQ) {
            report(l, value->line, value->col, s->name, "expected a list");
            return;
        }
        setting_list_t *lst = (setting_list_t *)field;
        list_free(lst);
        for (size_t i = 0; i < value->n; i++) {
            const yaml_node_t *item = value->items[i];
            if (item->kind != YAML_SCALAR)
                report(l, item->line, item->col, s->name, "item %zu: expected a string", i);
            else
                list_add(lst, item->str, item->len);
        }
        set_origin(l, s, value);
        return;
    }
    if (value->kind != YAML_SCALAR) {
        report(l, value->line, value->col, s->name, "expected a scalar value");
        return;
    }
    if (value->is_null) {
        report(l, value->line, value->col, s->name, "missing value");
        return;
    }
    const char *why = apply(s, l->cfg, value->str);
    if (why != NULL)
        report(l, value->line, value->col, s->name, "%s (got \"%s\")", why, value->str);
    else
        set_origin(l, s, value);
}

/* Put the scalars of a YAML mapping under a map setting, nested keys joined with dots. */
static void load_map_entries(loader_t *l, const setting_t *s, const yaml_node_t *map, const char *key_prefix)
{
    for (size_t i = 0; i < map->n; i++) {
        const yaml_node_t *key = map->items[2 * i];
        const yaml_node_t *value = map->items[2 * i + 1];
        if (key->kind != YAML_SCALAR) {
            report(l, key->line, key->col, s->name, "keys must be strings");
            continue;
        }
        buf_t k = BUF_INIT;
        if (*key_prefix)
            buf_printf(&k, "%s.", key_prefix);
        buf_append(&k, key->str, key->len);
        if (value->kind == YAML_MAP)
            load_map_entries(l, s, value, k.data);
        else if (value->kind != YAML_SCALAR || value->is_null)
            report(l, value->line, value->col, s->name, "%s: expected a scalar value", k.data);
        else
            map_put((setting_list_t *)((char *)l->cfg + s->offset), k.data, k.len, value->str);
        buf_dispose(&k);
    }
}

static void load_mapping(loader_t *l, const yaml_node_t *map, const char *prefix)
{
    for (size_t i = 0; i < map->n; i++) {
        const yaml_node_t *key = map->items[2 * i];
        const yaml_node_t *value = map->items[2 * i + 1];
        if (key->kind != YAML_SCALAR) {
            report(l, key->line, key->col, prefix, "keys must be strings");
            continue;
        }
        buf_t path = BUF_INIT;
        if (*prefix)
            buf_printf(&path, "%s.", prefix);
        buf_append(&path, key->str, key->len);
        const setting_t *s = find(l->table, l->n, path.data);
        const char *mkey = NULL;
        if (s != NULL && s->type == SETTING_MAP && value->kind == YAML_MAP) {
            load_map_entries(l, s, value, ""); /* adds to the defaults, key by key */
        } else if (s != NULL) {
            load_value(l, s, value);
        } else if ((s = find_map(l->table, l->n, path.data, &mkey)) != NULL) {
            if (value->kind == YAML_MAP)
                load_map_entries(l, s, value, mkey);
            else if (value->kind != YAML_SCALAR || value->is_null)
                report(l, value->line, value->col, path.data, "expected a scalar value");
            else
                map_put((setting_list_t *)((char *)l->cfg + s->offset), mkey, strlen(mkey), value->str);
        } else if (is_prefix_of_any(l->table, l->n, path.data)) {
            if (value->kind == YAML_MAP)
                load_mapping(l, value, path.data);
            else if (!value->is_null)
                report(l, key->line, key->col, path.data, "expected a mapping");
        } else {
            report(l, key->line, key->col, path.data, "unknown setting");
        }
        buf_dispose(&path);
    }
}

static void forward_error(void *ctx, const char *message)
{
    loader_t *l = ctx;
    l->err(l->ctx, message);
    l->errors++;
}

int settings_load_yaml(const setting_t *table, size_t n, void *cfg, const char *path, settings_error_fn err, void *ctx)
{
    loader_t l = {table, n, cfg, path, err, ctx, 0};
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        report(&l, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    buf_t text = BUF_INIT;
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&text, chunk, got);
    fclose(f);
    int rc = settings_load_yaml_string(table, n, cfg, path, text.data ? text.data : "", text.len, err, ctx);
    buf_dispose(&text);
    return rc;
}

/*
 * libfyaml 0.7 loops forever scanning some malformed directives (a '%'
 * line with non-ASCII bytes, found by fuzzing). Directive lines are rare in
 * config files: accept only %YAML and %TAG lines of printable ASCII and
 * report anything else ourselves, before libfyaml sees it.
 */
static int line_break(unsigned char c)
{
    /* \n, \r, and the last byte of NEL (C2 85), LS and PS (E2 80 A8/A9), which YAML also breaks on */
    return c == '\n' || c == '\r' || c == 0x85 || c == 0xa8 || c == 0xa9;
}

static int check_directives(loader_t *l, const char *text, size_t len)
{
    int line = 1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            line++;
        if (text[i] != '%' || (i > 0 && !line_break((unsigned char)text[i - 1])))
            continue;
        size_t end = i;
        while (end < len && text[end] != '\n' && text[end] != '\r')
            end++;
        int ok =
            (end - i >= 6 && memcmp(text + i, "%YAML ", 6) == 0) || (end - i >= 5 && memcmp(text + i, "%TAG ", 5) == 0);
        for (size_t j = i; ok && j < end; j++)
            ok = ((unsigned char)text[j] >= 0x20 && (unsigned char)text[j] <= 0x7e) || text[j] == '\t';
        if (!ok) {
            report(l, line, 1, NULL, "unsupported YAML directive (only %%YAML and %%TAG are allowed)");
            return -1;
        }
    }
    return 0;
}

int settings_load_yaml_string(const setting_t *table, size_t n, void *cfg, const char *name, const char *text,
                              size_t len, settings_error_fn err, void *ctx)
{
    loader_t l = {table, n, cfg, name, err, ctx, 0};
    if (check_directives(&l, text, len) != 0)
        return -1;
    yaml_stream_t ys;
    int rc = yaml_parse(name, text, len, 0, &ys, forward_error, &l);
    if (rc != 0) {
        yaml_stream_dispose(&ys);
        return -1;
    }
    if (ys.n_docs > 1)
        report(&l, ys.docs[1]->line, ys.docs[1]->col, NULL, "one YAML document expected, found %zu", ys.n_docs);
    const yaml_node_t *root = ys.n_docs ? ys.docs[0] : NULL;
    if (root != NULL && root->kind == YAML_MAP)
        load_mapping(&l, root, "");
    else if (root != NULL && !(root->kind == YAML_SCALAR && root->is_null))
        report(&l, root->line, root->col, NULL, "the top level must be a mapping of settings");
    yaml_stream_dispose(&ys);
    return l.errors;
}

static const char *type_name(enum setting_type t)
{
    switch (t) {
    case SETTING_STRING: return "string";
    case SETTING_UINT: return "integer";
    case SETTING_BYTES: return "size";
    case SETTING_DURATION: return "duration";
    case SETTING_BOOL: return "bool";
    case SETTING_LIST: return "list";
    case SETTING_HOSTPORT: return "host:port";
    case SETTING_MAP: return "map";
    }
    return "?";
}

void settings_print_reference(const setting_t *table, size_t n, FILE *out)
{
    fprintf(out, "| setting | type | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "| `%s` | %s | `%s` | %s |\n", table[i].name, type_name(table[i].type),
                table[i].def ? table[i].def : "", table[i].help);
}
