/*
 * yaml: YAML documents as a small tree of our own, parsed by libfyaml in a
 * child process.
 *
 * libfyaml 0.7 keeps every node's line and column (what file:line:col errors
 * need), but fuzzing found inputs on which it loops forever or crashes while
 * cleaning up after a syntax error. Configuration must never hang or crash a
 * proxy on reload, so the parse runs in a forked child that writes the tree
 * back through a pipe as flat records; the parent rebuilds it in an arena.
 * A child that crashes, or that does not finish within the time limit, is
 * reported as an error on the file, and the parent carries on.
 */
#ifndef OUTRIDER_YAML_H
#define OUTRIDER_YAML_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

enum yaml_kind {
    YAML_SCALAR = 0,
    YAML_MAP,
    YAML_SEQ,
};

typedef struct yaml_node yaml_node_t;
struct yaml_node {
    enum yaml_kind kind;
    int line, col;   /* 1-based position of the node's first character */
    const char *str; /* scalar text, NUL-terminated (also for null: "") */
    size_t len;
    uint8_t is_null;     /* an empty value, ~ or null, unquoted */
    uint8_t quoted;      /* the scalar was quoted (so "true" is a string) */
    size_t n;            /* map: pairs; seq: items */
    yaml_node_t **items; /* map: 2n entries, key then value; seq: n entries */
};

typedef struct yaml_stream {
    arena_t arena; /* owns every node and string */
    size_t n_docs;
    yaml_node_t **docs; /* root of each document (NULL entries never appear) */
} yaml_stream_t;

/* Receives one error "name:line:col: reason". */
typedef void (*yaml_error_fn)(void *ctx, const char *message);

/*
 * Parse text (len bytes; need not be NUL-terminated) as a stream of YAML
 * documents into out. Errors are reported through err (name is used in
 * messages) and the return is -1; 0 on success. timeout_ms bounds the
 * parse (0 = 5000). Free with yaml_stream_dispose in every case.
 */
int yaml_parse(const char *name, const char *text, size_t len, unsigned timeout_ms, yaml_stream_t *out,
               yaml_error_fn err, void *ctx);

void yaml_stream_dispose(yaml_stream_t *s);

/* Value of key in a map node, or NULL. */
yaml_node_t *yaml_map_get(const yaml_node_t *map, const char *key);

#endif
