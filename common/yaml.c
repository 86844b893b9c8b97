/*
 * yaml: libfyaml in a child process, our own tree in the parent; see yaml.h.
 *
 * Child: parse every document, walk it depth-first and write records into
 * one buffer, then write the buffer to the pipe and _exit. Records:
 *   'D'/'E'           document start / end
 *   'M'/'S' pos       map / sequence start;  'e' end of the innermost one
 *   's' pos flags len bytes   scalar (flags: 1 null, 2 quoted)
 *   'X' pos len bytes         an error message from the parser
 * where pos is line and column (u32 each, 1-based). Integers are written in
 * host order: both ends are the same binary.
 */
#include "yaml.h"

#include <errno.h>
#include <libfyaml.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "mono.h"

#if defined(__SANITIZE_ADDRESS__)
#define OUTRIDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OUTRIDER_ASAN 1
#endif
#endif
#ifndef OUTRIDER_ASAN
#define OUTRIDER_ASAN 0
#endif

#define YAML_MAX_DEPTH 64
#define YAML_CHILD_MEMORY (512u << 20)

/* ---- child side ---- */

static void put_u32(buf_t *b, uint32_t v)
{
    buf_append(b, &v, sizeof(v));
}

static void node_pos(struct fy_node *node, int *line, int *col)
{
    *line = 0;
    *col = 0;
    for (int guard = 0; node != NULL && guard < YAML_MAX_DEPTH; guard++) {
        enum fy_node_type t = fy_node_get_type(node);
        if (t == FYNT_SCALAR) {
            struct fy_token *tok = fy_node_get_scalar_token(node);
            const struct fy_mark *m = tok ? fy_token_start_mark(tok) : NULL;
            if (m != NULL) {
                *line = m->line + 1;
                *col = m->column + 1;
            }
            return;
        }
        void *it = NULL;
        if (t == FYNT_MAPPING) {
            struct fy_node_pair *p = fy_node_mapping_iterate(node, &it);
            node = p ? fy_node_pair_key(p) : NULL;
        } else {
            node = fy_node_sequence_iterate(node, &it);
        }
    }
}

static void put_pos(buf_t *b, int line, int col)
{
    put_u32(b, (uint32_t)line);
    put_u32(b, (uint32_t)col);
}

static void put_null(buf_t *b, int line, int col)
{
    buf_append_char(b, 's');
    put_pos(b, line, col);
    put_u32(b, 1);
    put_u32(b, 0);
}

static int walk(buf_t *b, struct fy_node *node, int depth, int line, int col)
{
    if (node == NULL) {
        put_null(b, line, col);
        return 0;
    }
    if (depth > YAML_MAX_DEPTH) {
        buf_append_char(b, 'X');
        node_pos(node, &line, &col);
        put_pos(b, line, col);
        const char *msg = "nesting deeper than 64 levels";
        put_u32(b, (uint32_t)strlen(msg));
        buf_append_str(b, msg);
        return -1;
    }
    node_pos(node, &line, &col);
    enum fy_node_type t = fy_node_get_type(node);
    void *it = NULL;
    if (t == FYNT_SCALAR) {
        size_t len = 0;
        const char *s = fy_node_get_scalar(node, &len);
        if (s == NULL)
            len = 0;
        int quoted = fy_node_get_style(node) != FYNS_PLAIN;
        int is_null =
            !quoted &&
            (len == 0 || (len == 1 && s[0] == '~') ||
             (len == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 || memcmp(s, "NULL", 4) == 0)));
        buf_append_char(b, 's');
        put_pos(b, line, col);
        put_u32(b, (uint32_t)(is_null | (quoted << 1)));
        put_u32(b, (uint32_t)len);
        buf_append(b, s ? s : "", len);
        return 0;
    }
    if (t == FYNT_MAPPING) {
        buf_append_char(b, 'M');
        put_pos(b, line, col);
        struct fy_node_pair *p;
        while ((p = fy_node_mapping_iterate(node, &it)) != NULL) {
            struct fy_node *k = fy_node_pair_key(p);
            int kl, kc;
            node_pos(k, &kl, &kc);
            if (walk(b, k, depth + 1, line, col) != 0 || walk(b, fy_node_pair_value(p), depth + 1, kl, kc) != 0)
                return -1;
        }
    } else {
        buf_append_char(b, 'S');
        put_pos(b, line, col);
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &it)) != NULL)
            if (walk(b, item, depth + 1, line, col) != 0)
                return -1;
    }
    buf_append_char(b, 'e');
    return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        p += w;
        n -= (size_t)w;
    }
}

static _Noreturn void child_parse(int fd, const char *text, size_t len)
{
#if !OUTRIDER_ASAN
    /* alias expansion ("billion laughs") must not take the machine's memory; ASan needs its address space */
    struct rlimit rl = {YAML_CHILD_MEMORY, YAML_CHILD_MEMORY};
    setrlimit(RLIMIT_AS, &rl);
#endif
    buf_t b = BUF_INIT;
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag != NULL)
        fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {
        .search_path = "", .flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_RESOLVE_DOCUMENT, .diag = diag};
    struct fy_parser *fyp = fy_parser_create(&pcfg);
    if (fyp == NULL || fy_parser_set_string(fyp, text, len) != 0)
        _exit(4);
    struct fy_document *doc;
    int bad = 0;
    while (!bad && (doc = fy_parse_load_document(fyp)) != NULL) {
        buf_append_char(&b, 'D');
        if (walk(&b, fy_document_root(doc), 0, 1, 1) != 0)
            bad = 1;
        buf_append_char(&b, 'E');
        fy_parse_document_destroy(fyp, doc);
    }
    void *it = NULL;
    struct fy_diag_error *e;
    while (diag != NULL && (e = fy_diag_errors_iterate(diag, &it)) != NULL) {
        buf_append_char(&b, 'X');
        put_pos(&b, e->line + 1, e->column + 1);
        const char *msg = e->msg ? e->msg : "syntax error";
        put_u32(&b, (uint32_t)strlen(msg));
        buf_append_str(&b, msg);
    }
    if (fy_parser_get_stream_error(fyp) && (diag == NULL || !fy_diag_got_error(diag))) {
        buf_append_char(&b, 'X');
        put_pos(&b, 0, 0);
        put_u32(&b, 12);
        buf_append_str(&b, "syntax error");
    }
    write_all(fd, b.data ? b.data : "", b.len);
    _exit(0);
}

/* ---- parent side ---- */

typedef struct reader {
    const char *p, *end;
    yaml_stream_t *out;
    const char *name;
    yaml_error_fn err;
    void *ctx;
    int errors;
} reader_t;

static void report(reader_t *r, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(reader_t *r, int line, int col, const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    if (line > 0)
        buf_printf(&b, "%s:%d:%d: ", r->name, line, col);
    else
        buf_printf(&b, "%s: ", r->name);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    r->err(r->ctx, b.data);
    buf_dispose(&b);
    r->errors++;
}

static int get_u32(reader_t *r, uint32_t *v)
{
    if ((size_t)(r->end - r->p) < sizeof(*v))
        return -1;
    memcpy(v, r->p, sizeof(*v));
    r->p += sizeof(*v);
    return 0;
}

static yaml_node_t *read_node(reader_t *r, int depth);

static yaml_node_t *new_node(reader_t *r, enum yaml_kind kind)
{
    yaml_node_t *n = arena_calloc(&r->out->arena, 1, sizeof(*n));
    if (n == NULL)
        log_fatal("out of memory");
    n->kind = kind;
    n->str = "";
    return n;
}

static yaml_node_t *read_node(reader_t *r, int depth)
{
    if (r->p >= r->end || depth > YAML_MAX_DEPTH + 1)
        return NULL;
    char tag = *r->p++;
    uint32_t line, col;
    if (get_u32(r, &line) != 0 || get_u32(r, &col) != 0)
        return NULL;
    if (tag == 's') {
        uint32_t flags, len;
        if (get_u32(r, &flags) != 0 || get_u32(r, &len) != 0 || (size_t)(r->end - r->p) < len)
            return NULL;
        yaml_node_t *n = new_node(r, YAML_SCALAR);
        n->line = (int)line;
        n->col = (int)col;
        n->is_null = flags & 1;
        n->quoted = (flags >> 1) & 1;
        n->str = arena_strndup(&r->out->arena, r->p, len);
        n->len = len;
        r->p += len;
        return n;
    }
    if (tag != 'M' && tag != 'S')
        return NULL;
    yaml_node_t *n = new_node(r, tag == 'M' ? YAML_MAP : YAML_SEQ);
    n->line = (int)line;
    n->col = (int)col;
    size_t cap = 0, count = 0;
    yaml_node_t **items = NULL;
    while (r->p < r->end && *r->p != 'e') {
        yaml_node_t *child = read_node(r, depth + 1);
        if (child == NULL)
            return NULL;
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            yaml_node_t **grown = arena_alloc(&r->out->arena, cap * sizeof(*grown));
            if (grown == NULL)
                log_fatal("out of memory");
            if (count)
                memcpy(grown, items, count * sizeof(*grown));
            items = grown;
        }
        items[count++] = child;
    }
    if (r->p >= r->end)
        return NULL;
    r->p++; /* 'e' */
    if (n->kind == YAML_MAP && count % 2 != 0)
        return NULL;
    n->items = items;
    n->n = n->kind == YAML_MAP ? count / 2 : count;
    return n;
}

static int read_stream(reader_t *r)
{
    size_t cap = 0;
    while (r->p < r->end) {
        char tag = *r->p++;
        if (tag == 'D') {
            yaml_node_t *root = read_node(r, 0);
            if (root == NULL || r->p >= r->end || *r->p != 'E')
                return -1;
            r->p++;
            if (r->out->n_docs == cap) {
                cap = cap ? cap * 2 : 4;
                yaml_node_t **grown = arena_alloc(&r->out->arena, cap * sizeof(*grown));
                if (grown == NULL)
                    log_fatal("out of memory");
                if (r->out->n_docs)
                    memcpy(grown, r->out->docs, r->out->n_docs * sizeof(*grown));
                r->out->docs = grown;
            }
            r->out->docs[r->out->n_docs++] = root;
        } else if (tag == 'X') {
            uint32_t line, col, len;
            if (get_u32(r, &line) != 0 || get_u32(r, &col) != 0 || get_u32(r, &len) != 0 ||
                (size_t)(r->end - r->p) < len)
                return -1;
            report(r, (int)line, (int)col, "%.*s", (int)len, r->p);
            r->p += len;
        } else {
            return -1;
        }
    }
    return 0;
}

int yaml_parse(const char *name, const char *text, size_t len, unsigned timeout_ms, yaml_stream_t *out,
               yaml_error_fn err, void *ctx)
{
    memset(out, 0, sizeof(*out));
    arena_init(&out->arena, 0);
    reader_t r = {NULL, NULL, out, name, err, ctx, 0};
    if (timeout_ms == 0)
        timeout_ms = 5000;
    int fds[2];
    if (pipe(fds) != 0) {
        report(&r, 0, 0, "cannot parse: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        report(&r, 0, 0, "cannot parse: fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child_parse(fds[1], text, len);
    }
    close(fds[1]);
    buf_t data = BUF_INIT;
    uint64_t deadline = mono_now_ms() + timeout_ms;
    int timed_out = 0;
    for (;;) {
        uint64_t now = mono_now_ms();
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            timed_out = pr == 0;
            break;
        }
        buf_reserve(&data, 65536);
        ssize_t got = read(fds[0], data.data + data.len, 65536);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        data.len += (size_t)got;
    }
    close(fds[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int rc = -1;
    if (timed_out) {
        report(&r, 0, 0,
               "the YAML parser did not finish within %u ms on this file (a libfyaml defect); "
               "simplify the syntax near anchors, complex keys or directives",
               timeout_ms);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        report(&r, 0, 0, "the YAML parser failed on this file (%s %d, a libfyaml defect); check its syntax",
               WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    } else {
        r.p = data.data ? data.data : "";
        r.end = r.p + data.len;
        if (read_stream(&r) != 0)
            report(&r, 0, 0, "internal error reading the parsed document");
        rc = r.errors ? -1 : 0;
    }
    buf_dispose(&data);
    return rc;
}

void yaml_stream_dispose(yaml_stream_t *s)
{
    arena_dispose(&s->arena);
    s->docs = NULL;
    s->n_docs = 0;
}

yaml_node_t *yaml_map_get(const yaml_node_t *map, const char *key)
{
    if (map == NULL || map->kind != YAML_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const yaml_node_t *k = map->items[2 * i];
        if (k->kind == YAML_SCALAR && k->len == kl && memcmp(k->str, key, kl) == 0)
            return map->items[2 * i + 1];
    }
    return NULL;
}
