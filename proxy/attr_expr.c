/*
 * attr_expr: parser and evaluator of Istio Telemetry attribute expressions
 * (the language is in attr_expr.h).
 *
 * The parser is recursive descent over a one-token lexer, one function per
 * precedence level; it checks types as it builds nodes, so the evaluator
 * has no type errors to meet. Nodes live in a fixed array inside the
 * expression's single block, after which come the source copy and a pool
 * for unescaped string literals (never longer than the source, so sized by
 * it). Recursion is bounded on both sides: the parser by AX_MAX_DEPTH, the
 * evaluator by AX_MAX_NODES.
 *
 * The evaluator has one function per result type. Booleans are three-valued
 * (1, 0, -1 = error) to follow CEL's error rules; strings that have to be
 * made (numbers, "ip:port") go to the buffer of the caller that consumes
 * them: the top level's scratch, or a stack buffer of a comparison or call.
 */
#include "attr_expr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"
#include "xalloc.h"

enum kind { N_LIT, N_ATTR, N_NOT, N_AND, N_OR, N_CMP, N_IN, N_COND, N_METHOD, N_HAS, N_STRING, N_INT };
enum cmp { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };
enum method { M_STARTS, M_ENDS, M_CONTAINS };

enum attr {
    A_PATH,
    A_URL_PATH,
    A_QUERY,
    A_HOST,
    A_SCHEME,
    A_METHOD,
    A_PROTOCOL,
    A_HEADER,
    A_USERAGENT,
    A_REFERER,
    A_ID,
    A_REQ_SIZE,
    A_DURATION,
    A_CODE,
    A_RESP_SIZE,
    A_FLAGS,
    A_SRC_ADDR,
    A_SRC_PORT,
    A_DST_ADDR,
    A_DST_PORT,
    A_MTLS,
    /* from here on: peer metadata, not per request */
    A_PEER,
    A_P_APP,
    A_P_VERSION,
    A_P_NAMESPACE,
    A_P_WORKLOAD,
    A_P_NAME,
    A_P_SERVICE,
    A_P_REVISION,
    A_P_CLUSTER,
};

typedef struct node {
    uint8_t kind, type; /* enum kind, enum ax_type */
    uint8_t op;         /* enum attr, cmp or method */
    uint8_t upstream;   /* peer attributes: upstream_peer (1) or downstream_peer (0) */
    uint8_t a, b, c;    /* children; N_IN: a = x, b = first literal, c = count; N_COND: a ? b : c */
    uint16_t off;       /* byte offset in the source */
    int64_t i;          /* int and bool literals */
    str_t s;            /* string literals and header names, in the pool */
} node_t;

struct ax_expr {
    enum ax_type type;
    bool per_request;
    uint8_t root, n;
    node_t nodes[AX_MAX_NODES];
    char *pool; /* unescaped literals, each NUL-terminated */
    char src[]; /* the source, then the pool */
};

static const struct {
    const char *name;
    uint8_t attr, type;
} ATTRS[] = {
    {"request.path", A_PATH, AX_STRING},         {"request.url_path", A_URL_PATH, AX_STRING},
    {"request.query", A_QUERY, AX_STRING},       {"request.host", A_HOST, AX_STRING},
    {"request.scheme", A_SCHEME, AX_STRING},     {"request.method", A_METHOD, AX_STRING},
    {"request.protocol", A_PROTOCOL, AX_STRING}, {"request.useragent", A_USERAGENT, AX_STRING},
    {"request.referer", A_REFERER, AX_STRING},   {"request.id", A_ID, AX_STRING},
    {"request.size", A_REQ_SIZE, AX_INT},        {"request.duration", A_DURATION, AX_INT},
    {"response.code", A_CODE, AX_INT},           {"response.size", A_RESP_SIZE, AX_INT},
    {"response.flags", A_FLAGS, AX_INT},         {"source.address", A_SRC_ADDR, AX_STRING},
    {"source.port", A_SRC_PORT, AX_INT},         {"destination.address", A_DST_ADDR, AX_STRING},
    {"destination.port", A_DST_PORT, AX_INT},    {"connection.mtls", A_MTLS, AX_BOOL},
};

typedef struct named {
    const char *name;
    uint8_t attr;
} named_t;

/* Field names of Istio's peer object (istio/proxy extensions/common/metadata_object.h). */
static const named_t PEER_FIELDS[] = {
    {"app", A_P_APP},   {"version", A_P_VERSION}, {"namespace", A_P_NAMESPACE}, {"workload", A_P_WORKLOAD},
    {"name", A_P_NAME}, {"service", A_P_SERVICE}, {"revision", A_P_REVISION},   {"cluster", A_P_CLUSTER},
};
static const named_t PEER_LABELS[] = {
    {"app", A_P_APP},
    {"version", A_P_VERSION},
    {"service.istio.io/canonical-name", A_P_SERVICE},
    {"service.istio.io/canonical-revision", A_P_REVISION},
};
/* HTTP/2 pseudo-header names Envoy also answers in request.headers (HTTP/1 Host is :authority there). */
static const named_t PSEUDO[] = {
    {":authority", A_HOST}, {":path", A_PATH}, {":method", A_METHOD}, {":scheme", A_SCHEME}};

/* Envoy attributes and namespaces that exist but are not offered here (a clearer error than "unknown"). */
static const char *const UNSUPPORTED[] = {
    "request.time",
    "request.total_size",
    "response.headers",
    "response.trailers",
    "response.grpc_status",
    "response.total_size",
    "response.code_details",
    "response.backend_latency",
    "connection.id",
    "connection.tls_version",
    "connection.requested_server_name",
};
static const char *const UNSUPPORTED_NS[] = {"xds", "node", "filter_state", "metadata", "upstream"};

/*
 * Envoy's bit for each TELE_RF_* bit, in TELE_RF_* order. CEL's response.flags
 * is StreamInfo::legacyResponseFlags() (envoy source/extensions/filters/common/
 * expr/context.cc), which sets 1 << f for each CoreResponseFlag f of
 * envoy/stream_info/stream_info.h; these are the values of the older
 * `enum ResponseFlag` in include/envoy/stream_info/stream_info.h
 * (FailedLocalHealthCheck = 0x1, NoHealthyUpstream = 0x2, ...).
 */
static const uint32_t ENVOY_FLAG[TELE_NFLAGS] = {
    0x100,    /* NR: NoRouteFound */
    0x2,      /* UH: NoHealthyUpstream */
    0x20,     /* UF: UpstreamConnectionFailure */
    0x40,     /* UC: UpstreamConnectionTermination */
    0x4,      /* UT: UpstreamRequestTimeout */
    0x8000,   /* URX: UpstreamRetryLimitExceeded */
    0x4000,   /* DC: DownstreamConnectionTermination */
    0x800000, /* UPE: UpstreamProtocolError */
    0x200,    /* DI: DelayInjected */
    0x400,    /* FI: FaultInjected */
    0x80,     /* UO: UpstreamOverflow */
    0x800,    /* RL: RateLimited */
    0x2000,   /* RLSE: RateLimitServiceError */
};
_Static_assert(TELE_NFLAGS == 13 && TELE_RF_RLSE == 1 << 12, "ENVOY_FLAG follows enum tele_flag");

static const char *const TYPE_NAME[] = {"string", "int", "bool"};

#define N(i) (&e->nodes[(i)])     /* in the evaluator */
#define PN(i) (&p->e->nodes[(i)]) /* in the parser */

/* ---- lexer ---- */

/* Tokens: punctuation and other single bytes are their own value ('(', '?', '+'...); the rest: */
enum tok { T_EOF = 0, T_ERR = 256, T_IDENT, T_INT, T_STR, T_AND, T_OR, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE };

typedef struct parser {
    ax_expr_t *e;
    const char *src;
    size_t pos;      /* just after the current token */
    size_t pool_len; /* bytes of the pool used */
    int depth;
    int t; /* the current token: enum tok or a byte */
    size_t t_off, t_len;
    uint64_t t_int; /* T_INT: the magnitude (up to 2^63, for a negated literal) */
    str_t t_str;    /* T_STR: the unescaped text in the pool; T_IDENT: the name in src */
    bool failed;
    char *err;
    size_t errlen, err_off;
} parser_t;

__attribute__((format(printf, 3, 4))) static int fail(parser_t *p, size_t off, const char *fmt, ...)
{
    if (!p->failed) {
        p->failed = true;
        p->err_off = off;
        if (p->err && p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err, p->errlen, fmt, ap);
            va_end(ap);
        }
    }
    p->t = T_ERR;
    return -1;
}

static bool is_ident(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static size_t skip_space(const char *s, size_t i)
{
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
        i++;
    return i;
}

static void lex_string(parser_t *p, size_t i)
{
    const char *s = p->src;
    char q = s[i], *out = p->e->pool + p->pool_len;
    size_t j = i + 1, n = 0;
    while (s[j] != q) {
        if (s[j] == '\0') {
            fail(p, i, "unterminated string");
            return;
        }
        if (s[j] == '\\') {
            char x = s[j + 1];
            if (x != '\\' && x != '\'' && x != '"') {
                if (x == '\0')
                    fail(p, i, "unterminated string");
                else
                    fail(p, j, "unsupported escape '\\%c' (only \\\\, \\' and \\\" are)", x);
                return;
            }
            j++;
        }
        out[n++] = s[j++];
    }
    out[n] = '\0';
    p->pool_len += n + 1;
    p->t = T_STR;
    p->t_str = (str_t){out, (uint32_t)n};
    p->pos = j + 1;
}

static void lex(parser_t *p)
{
    if (p->failed)
        return;
    const char *s = p->src;
    size_t i = skip_space(s, p->pos), j = i + 1;
    p->t_off = i;
    char c = s[i];
    if (c == '\0') {
        p->t = T_EOF;
        j = i;
    } else if (is_ident(c, true)) {
        while (is_ident(s[j], false))
            j++;
        p->t = T_IDENT;
        p->t_str = (str_t){s + i, (uint32_t)(j - i)};
    } else if (is_digit(c)) {
        uint64_t v = 0;
        for (j = i; is_digit(s[j]); j++) {
            if (v > ((1ull << 63) - (uint64_t)(s[j] - '0')) / 10) {
                fail(p, i, "integer literal out of range");
                return;
            }
            v = v * 10 + (uint64_t)(s[j] - '0');
        }
        if (s[j] == '.' || is_ident(s[j], false)) {
            fail(p, i, "only decimal integer literals are supported");
            return;
        }
        p->t = T_INT;
        p->t_int = v;
    } else if (c == '\'' || c == '"') {
        lex_string(p, i);
        p->t_len = p->pos - i;
        return;
    } else {
        static const struct {
            char s[3];
            int t;
        } OPS[] = {{"&&", T_AND}, {"||", T_OR}, {"==", T_EQ}, {"!=", T_NE},
                   {"<=", T_LE},  {">=", T_GE}, {"<", T_LT},  {">", T_GT}};
        p->t = (unsigned char)c;
        for (size_t k = 0; k < sizeof(OPS) / sizeof(OPS[0]); k++) {
            size_t l = OPS[k].s[1] ? 2 : 1;
            if (strncmp(s + i, OPS[k].s, l) == 0) {
                p->t = OPS[k].t;
                j = i + l;
                break;
            }
        }
    }
    p->t_len = j - i;
    p->pos = j;
}

/* Whether the current '.' is followed by a name and '(' (a method call, not a field). */
static bool dot_starts_call(const parser_t *p)
{
    size_t i = skip_space(p->src, p->pos);
    if (!is_ident(p->src[i], true))
        return false;
    while (is_ident(p->src[i], false))
        i++;
    return p->src[skip_space(p->src, i)] == '(';
}

static bool tok_is(const parser_t *p, const char *word)
{
    return p->t == T_IDENT && p->t_str.len == strlen(word) && memcmp(p->t_str.ptr, word, p->t_str.len) == 0;
}

static bool str_is(str_t s, const char *word)
{
    return s.len == strlen(word) && memcmp(s.ptr, word, s.len) == 0;
}

static int expect(parser_t *p, char t)
{
    if (p->t != t)
        return p->failed ? -1 : fail(p, p->t_off, "expected '%c'", t);
    lex(p);
    return 0;
}

/* ---- parser ---- */

static int node_new(parser_t *p, enum kind kind, enum ax_type type, size_t off)
{
    ax_expr_t *e = p->e;
    if (e->n >= AX_MAX_NODES)
        return fail(p, off, "expression has more than %d nodes", AX_MAX_NODES);
    node_t *nd = N(e->n);
    memset(nd, 0, sizeof(*nd));
    nd->kind = (uint8_t)kind;
    nd->type = (uint8_t)type;
    nd->off = (uint16_t)off;
    return e->n++;
}

static int binary(parser_t *p, enum kind kind, int a, int b, size_t off)
{
    int r = node_new(p, kind, AX_BOOL, off);
    if (r >= 0) {
        PN(r)->a = (uint8_t)a;
        PN(r)->b = (uint8_t)b;
    }
    return r;
}

/* A literal node of the current token (a string, an int negated when neg, true or false), then the next token. */
static int literal(parser_t *p, bool neg, size_t off)
{
    int r = -1;
    if (p->t == T_STR) {
        if ((r = node_new(p, N_LIT, AX_STRING, off)) >= 0)
            PN(r)->s = p->t_str;
    } else if (p->t == T_INT) {
        uint64_t v = p->t_int;
        if (v > (uint64_t)INT64_MAX + neg)
            return fail(p, off, "integer literal out of range");
        if ((r = node_new(p, N_LIT, AX_INT, off)) >= 0)
            PN(r)->i = !neg ? (int64_t)v : v ? -(int64_t)(v - 1) - 1 : 0;
    } else if (tok_is(p, "true") || tok_is(p, "false")) {
        if ((r = node_new(p, N_LIT, AX_BOOL, off)) >= 0)
            PN(r)->i = tok_is(p, "true");
    }
    if (r >= 0)
        lex(p);
    return r;
}

static int find(const named_t *t, size_t n, str_t key)
{
    for (size_t i = 0; i < n; i++)
        if (str_is(key, t[i].name))
            return t[i].attr;
    return -1;
}
#define FIND(t, key) find((t), sizeof(t) / sizeof((t)[0]), (key))

/* An attribute: a dotted name, an optional ['key'] and, after peer labels, an optional .value. */
static int parse_attr(parser_t *p, bool in_has)
{
    size_t off = p->t_off, nl = 0;
    char name[96];
    for (;;) {
        str_t seg = p->t_str;
        if (nl + 1 + seg.len >= sizeof(name))
            return fail(p, off, "unknown attribute '%.*s...'", (int)nl, name);
        if (nl)
            name[nl++] = '.';
        memcpy(name + nl, seg.ptr, seg.len);
        nl += seg.len;
        lex(p);
        if (p->t != '.' || dot_starts_call(p))
            break;
        lex(p);
        if (p->t != T_IDENT)
            return p->failed ? -1 : fail(p, p->t_off, "expected a name after '.'");
    }
    name[nl] = '\0';

    size_t first = strcspn(name, ".");
    for (size_t i = 0; i < sizeof(UNSUPPORTED_NS) / sizeof(UNSUPPORTED_NS[0]); i++)
        if (strlen(UNSUPPORTED_NS[i]) == first && memcmp(name, UNSUPPORTED_NS[i], first) == 0)
            return fail(p, off, "'%s' attributes are not supported", UNSUPPORTED_NS[i]);
    bool peer = (first == 13 && memcmp(name, "upstream_peer", 13) == 0) ||
                (first == 15 && memcmp(name, "downstream_peer", 15) == 0);
    const char *field = name + first + (name[first] ? 1 : 0);

    str_t key = STR_NULL;
    size_t key_off = 0;
    bool has_key = p->t == '[';
    if (has_key) {
        lex(p);
        key_off = p->t_off;
        if (p->t != T_STR)
            return p->failed ? -1 : fail(p, key_off, "expected a quoted key after '['");
        key = p->t_str;
        lex(p);
        if (expect(p, ']') < 0)
            return -1;
    }

    int attr = -1;
    enum ax_type type = AX_STRING;
    if (peer && strcmp(field, "labels") == 0) {
        if (!has_key)
            return fail(p, off, "'%s' needs a key, e.g. %s['app']", name, name);
        if ((attr = FIND(PEER_LABELS, key)) < 0)
            return fail(p, key_off,
                        "unknown label '%.*s' (app, version, service.istio.io/canonical-name or "
                        "service.istio.io/canonical-revision)",
                        (int)key.len, key.ptr);
        if (p->t == '.' && !dot_starts_call(p)) {
            lex(p);
            if (!tok_is(p, "value"))
                return p->failed ? -1 : fail(p, p->t_off, "expected 'value' after a label");
            lex(p);
        }
    } else if (has_key) {
        if (strcmp(name, "request.headers") == 0 && key.len == 0)
            return fail(p, key_off, "empty header name");
        if (strcmp(name, "request.headers") == 0 && (attr = FIND(PSEUDO, key)) < 0)
            attr = A_HEADER;
    } else if (peer && !name[first]) {
        if (!in_has)
            return fail(p, off, "'%s' is not a value; use a field such as %s.app", name, name);
        attr = A_PEER;
        type = AX_BOOL;
    } else if (peer) {
        attr = FIND(PEER_FIELDS, ((str_t){field, (uint32_t)strlen(field)}));
    } else {
        if (strcmp(name, "request.headers") == 0)
            return fail(p, off, "request.headers needs a key, e.g. request.headers['x-user']");
        for (size_t i = 0; i < sizeof(ATTRS) / sizeof(ATTRS[0]) && attr < 0; i++)
            if (strcmp(name, ATTRS[i].name) == 0) {
                attr = ATTRS[i].attr;
                type = (enum ax_type)ATTRS[i].type;
            }
    }
    if (attr < 0) {
        for (size_t i = 0; i < sizeof(UNSUPPORTED) / sizeof(UNSUPPORTED[0]); i++)
            if (strcmp(name, UNSUPPORTED[i]) == 0)
                return fail(p, off, "attribute '%s' is not supported", name);
        if (has_key)
            return fail(p, off, "indexing is only supported on request.headers and peer labels");
        return fail(p, off, "unknown attribute '%s'", name);
    }

    int r = node_new(p, N_ATTR, type, off);
    if (r < 0)
        return -1;
    PN(r)->op = (uint8_t)attr;
    PN(r)->upstream = name[0] == 'u';
    PN(r)->s = key;
    if (attr < A_PEER && attr != A_DST_ADDR && attr != A_DST_PORT)
        p->e->per_request = true;
    return r;
}

static int parse_ternary(parser_t *p);

/* has(attribute), string(x), int(x); the current token is the name, followed by '('. */
static int parse_call(parser_t *p)
{
    size_t off = p->t_off;
    str_t fn = p->t_str;
    enum kind kind = str_is(fn, "has") ? N_HAS : str_is(fn, "string") ? N_STRING : N_INT;
    if (kind == N_INT && !str_is(fn, "int"))
        return fail(p, off, "function '%.*s' is not supported", (int)fn.len, fn.ptr);
    lex(p);
    lex(p);
    int x;
    if (kind == N_HAS) {
        if (p->t != T_IDENT || tok_is(p, "true") || tok_is(p, "false") || p->src[skip_space(p->src, p->pos)] == '(')
            return p->failed ? -1 : fail(p, p->t_off, "has() takes an attribute, e.g. has(request.headers['x-user'])");
        x = parse_attr(p, true);
    } else {
        x = parse_ternary(p);
    }
    if (x < 0 || expect(p, ')') < 0)
        return -1;
    enum ax_type xt = (enum ax_type)PN(x)->type;
    if ((kind == N_STRING && xt == AX_STRING) || (kind == N_INT && xt == AX_INT))
        return x;
    if (kind == N_INT && xt == AX_BOOL)
        return fail(p, off, "int() of a bool is not supported");
    int r = node_new(p, kind, kind == N_HAS ? AX_BOOL : kind == N_STRING ? AX_STRING : AX_INT, off);
    if (r >= 0)
        PN(r)->a = (uint8_t)x;
    return r;
}

static int parse_primary(parser_t *p)
{
    size_t off = p->t_off;
    int x;
    switch (p->t) {
    case '(':
        lex(p);
        x = parse_ternary(p);
        return x < 0 || expect(p, ')') < 0 ? -1 : x;
    case T_STR:
    case T_INT: return literal(p, false, off);
    case T_IDENT:
        if (tok_is(p, "true") || tok_is(p, "false"))
            return literal(p, false, off);
        if (tok_is(p, "null"))
            return fail(p, off, "null is not supported");
        if (p->src[skip_space(p->src, p->pos)] == '(')
            return parse_call(p);
        return parse_attr(p, false);
    case '[': return fail(p, off, "lists are only supported after 'in'");
    case '{': return fail(p, off, "maps are not supported");
    case T_EOF:
        return fail(p, off, p->src[skip_space(p->src, 0)] ? "unexpected end of expression" : "empty expression");
    case T_ERR: return -1;
    default: return fail(p, off, "unexpected '%.*s'", (int)p->t_len, p->src + off);
    }
}

/* Method calls on x: x.startsWith(s), x.endsWith(s), x.contains(s). */
static int parse_postfix(parser_t *p, int x)
{
    while (x >= 0 && p->t == '.') {
        if (!dot_starts_call(p))
            return fail(p, p->t_off, "field selection is only supported on attributes");
        lex(p);
        size_t off = p->t_off;
        str_t m = p->t_str;
        int op = str_is(m, "startsWith") ? M_STARTS
                 : str_is(m, "endsWith") ? M_ENDS
                 : str_is(m, "contains") ? M_CONTAINS
                                         : -1;
        if (op < 0)
            return fail(p, off, "method '%.*s' is not supported", (int)m.len, m.ptr);
        if (PN(x)->type != AX_STRING)
            return fail(p, off, "%.*s() needs a string, not %s", (int)m.len, m.ptr, TYPE_NAME[PN(x)->type]);
        lex(p);
        lex(p);
        int y = parse_ternary(p);
        if (y < 0 || expect(p, ')') < 0)
            return -1;
        if (PN(y)->type != AX_STRING)
            return fail(p, PN(y)->off, "the argument of %.*s() must be a string, not %s", (int)m.len, m.ptr,
                        TYPE_NAME[PN(y)->type]);
        if ((x = binary(p, N_METHOD, x, y, off)) >= 0)
            PN(x)->op = (uint8_t)op;
    }
    if (x >= 0 && p->t == '[')
        return fail(p, p->t_off, "indexing is only supported on request.headers and peer labels");
    if (x >= 0 && (p->t == '+' || p->t == '-' || p->t == '*' || p->t == '/' || p->t == '%'))
        return fail(p, p->t_off, "arithmetic is not supported");
    return x;
}

static int parse_unary(parser_t *p)
{
    size_t off = p->t_off;
    if (p->t == '!') {
        if (++p->depth > AX_MAX_DEPTH)
            return fail(p, off, "expression nested deeper than %d", AX_MAX_DEPTH);
        lex(p);
        int x = parse_unary(p);
        p->depth--;
        if (x < 0)
            return -1;
        if (PN(x)->type != AX_BOOL)
            return fail(p, off, "'!' needs a bool, not %s", TYPE_NAME[PN(x)->type]);
        int r = node_new(p, N_NOT, AX_BOOL, off);
        if (r >= 0)
            PN(r)->a = (uint8_t)x;
        return r;
    }
    if (p->t == '-') {
        if (!is_digit(p->src[p->pos]))
            return fail(p, off, "arithmetic is not supported");
        lex(p);
        return parse_postfix(p, literal(p, true, off));
    }
    return parse_postfix(p, parse_primary(p));
}

/* x in [literal, ...]; the current token is "in". */
static int parse_in(parser_t *p, int x, size_t off)
{
    lex(p);
    if (expect(p, '[') < 0)
        return -1;
    enum ax_type t = (enum ax_type)PN(x)->type;
    int first = p->e->n, count = 0;
    while (p->t != ']') {
        size_t loff = p->t_off;
        if (p->t == T_EOF || p->failed)
            return p->failed ? -1 : fail(p, loff, "expected ']'");
        if (count == AX_MAX_LIST)
            return fail(p, loff, "an 'in' list holds at most %d literals", AX_MAX_LIST);
        bool neg = p->t == '-' && is_digit(p->src[p->pos]);
        if (neg)
            lex(p);
        int l = literal(p, neg, loff);
        if (l < 0)
            return p->failed ? -1 : fail(p, loff, "an 'in' list holds literals only");
        if (PN(l)->type != t)
            return fail(p, loff, "list item is a %s, not a %s like the left side", TYPE_NAME[PN(l)->type],
                        TYPE_NAME[t]);
        count++;
        if (p->t == ',')
            lex(p);
        else if (p->t != ']')
            return p->failed ? -1 : fail(p, p->t_off, "expected ',' or ']'");
    }
    lex(p);
    int r = node_new(p, N_IN, AX_BOOL, off);
    if (r >= 0) {
        PN(r)->a = (uint8_t)x;
        PN(r)->b = (uint8_t)first;
        PN(r)->c = (uint8_t)count;
    }
    return r;
}

/* Comparisons and `in`, left-associative. */
static int parse_rel(parser_t *p)
{
    int x = parse_unary(p);
    while (x >= 0) {
        size_t off = p->t_off;
        if (tok_is(p, "in")) {
            x = parse_in(p, x, off);
            continue;
        }
        if (p->t < T_EQ || p->t > T_GE)
            break;
        enum cmp op = (enum cmp)(p->t - T_EQ);
        lex(p);
        int y = parse_unary(p);
        if (y < 0)
            return -1;
        enum ax_type a = (enum ax_type)PN(x)->type, b = (enum ax_type)PN(y)->type;
        if (a != b)
            return fail(p, off, "cannot compare %s with %s", TYPE_NAME[a], TYPE_NAME[b]);
        if (a == AX_BOOL && op != C_EQ && op != C_NE)
            return fail(p, off, "bools can only be compared with == and !=");
        if ((x = binary(p, N_CMP, x, y, off)) >= 0)
            PN(x)->op = (uint8_t)op;
    }
    return x;
}

/* || over && over comparisons. */
static int parse_logic(parser_t *p, int t)
{
    int x = t == T_OR ? parse_logic(p, T_AND) : parse_rel(p);
    while (x >= 0 && p->t == t) {
        size_t off = p->t_off;
        lex(p);
        int y = t == T_OR ? parse_logic(p, T_AND) : parse_rel(p);
        if (y < 0)
            return -1;
        if (PN(x)->type != AX_BOOL || PN(y)->type != AX_BOOL)
            return fail(p, off, "'%s' needs bools, not %s and %s", t == T_OR ? "||" : "&&", TYPE_NAME[PN(x)->type],
                        TYPE_NAME[PN(y)->type]);
        x = binary(p, t == T_OR ? N_OR : N_AND, x, y, off);
    }
    return x;
}

static int parse_ternary(parser_t *p)
{
    if (++p->depth > AX_MAX_DEPTH)
        return fail(p, p->t_off, "expression nested deeper than %d", AX_MAX_DEPTH);
    int x = parse_logic(p, T_OR);
    if (x >= 0 && p->t == '?') {
        size_t off = p->t_off;
        if (PN(x)->type != AX_BOOL)
            return fail(p, off, "the condition of '?:' must be a bool, not %s", TYPE_NAME[PN(x)->type]);
        lex(p);
        int a = parse_ternary(p);
        size_t colon = p->t_off;
        if (a < 0 || expect(p, ':') < 0)
            return -1;
        int b = parse_ternary(p);
        if (b < 0)
            return -1;
        if (PN(a)->type != PN(b)->type)
            return fail(p, colon, "the branches of '?:' have different types (%s and %s)", TYPE_NAME[PN(a)->type],
                        TYPE_NAME[PN(b)->type]);
        int r = node_new(p, N_COND, (enum ax_type)PN(a)->type, off);
        if (r >= 0) {
            PN(r)->a = (uint8_t)x;
            PN(r)->b = (uint8_t)a;
            PN(r)->c = (uint8_t)b;
        }
        x = r;
    }
    p->depth--;
    return x;
}

ax_expr_t *ax_parse(const char *src, enum ax_type want, char *err, size_t errlen, size_t *err_off)
{
    parser_t p = {.src = src, .err = err, .errlen = err ? errlen : 0};
    if (p.errlen)
        err[0] = '\0';
    size_t len = strnlen(src, AX_MAX_LEN + 1);
    ax_expr_t *e = NULL;
    if (len > AX_MAX_LEN) {
        fail(&p, AX_MAX_LEN, "expression longer than %d bytes", AX_MAX_LEN);
        goto done;
    }
    e = xmalloc(sizeof(*e) + 2 * (len + 1));
    memset(e, 0, sizeof(*e));
    memcpy(e->src, src, len + 1);
    e->pool = e->src + len + 1;
    p.e = e;
    p.src = e->src;

    lex(&p);
    int root = parse_ternary(&p);
    if (root < 0 || p.failed)
        goto done;
    if (p.t != T_EOF)
        fail(&p, p.t_off, "unexpected '%.*s' after the end of the expression", (int)p.t_len, p.src + p.t_off);
    else if (want == AX_BOOL && e->nodes[root].type != AX_BOOL)
        fail(&p, 0, "must be a boolean expression, not %s", TYPE_NAME[e->nodes[root].type]);
    else if (want == AX_INT && e->nodes[root].type != AX_INT)
        fail(&p, 0, "must be an int expression, not %s", TYPE_NAME[e->nodes[root].type]);
    e->root = (uint8_t)root;
    e->type = (enum ax_type)e->nodes[root].type;
done:
    if (!p.failed && (!e || e->n == 0))
        fail(&p, 0, "internal error");
    if (p.failed) {
        if (err_off)
            *err_off = p.err_off;
        free(e);
        return NULL;
    }
    if (err_off)
        *err_off = 0;
    return e;
}

void ax_free(ax_expr_t *e)
{
    free(e);
}

enum ax_type ax_type_of(const ax_expr_t *e)
{
    return e->type;
}

const char *ax_source(const ax_expr_t *e)
{
    return e->src;
}

bool ax_per_request(const ax_expr_t *e)
{
    return e->per_request;
}

/* ---- evaluation ---- */

static int eval_bool(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c);
static int eval_int(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c, int64_t *out);

static size_t fmt_u64(uint64_t v, char *out)
{
    char t[20];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = t[n - 1 - i];
    return n;
}

static size_t fmt_int(int64_t v, char *out)
{
    if (v >= 0)
        return fmt_u64((uint64_t)v, out);
    out[0] = '-';
    return 1 + fmt_u64(0 - (uint64_t)v, out + 1);
}

/* CEL int(string): decimal with an optional sign, within int64. */
static int parse_int(str_t s, int64_t *out)
{
    size_t i = s.len && (s.ptr[0] == '-' || s.ptr[0] == '+');
    bool neg = i && s.ptr[0] == '-';
    uint64_t v = 0, lim = (uint64_t)INT64_MAX + neg;
    if (i == s.len)
        return -1;
    for (; i < s.len; i++) {
        if (!is_digit(s.ptr[i]))
            return -1;
        uint64_t d = (uint64_t)(s.ptr[i] - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = !neg ? (int64_t)v : v ? -(int64_t)(v - 1) - 1 : 0;
    return 0;
}

static int present(str_t s, str_t *out)
{
    *out = s;
    return s.len ? 0 : -1;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* The first field called name (ASCII case-insensitive). */
static int header(const ax_ctx_t *c, str_t name, str_t *out)
{
    for (size_t i = 0; i < c->n_headers; i++) {
        str_t h = c->headers[i].name;
        if (h.len != name.len)
            continue;
        uint32_t k = 0;
        while (k < h.len && lower(h.ptr[k]) == lower(name.ptr[k]))
            k++;
        if (k == h.len) {
            *out = c->headers[i].value;
            return 0;
        }
    }
    return -1;
}

/* Envoy's text of an IP address with a port: "ip:port", "[v6]:port"; the ip alone when port is 0. */
static int address(str_t ip, uint32_t port, char *buf, str_t *out)
{
    if (!ip.len || !port)
        return present(ip, out);
    bool v6 = memchr(ip.ptr, ':', ip.len) != NULL;
    if (ip.len + 2 + 1 + 10 > AX_SCRATCH)
        return -1; /* not an IP address */
    size_t n = 0;
    if (v6)
        buf[n++] = '[';
    memcpy(buf + n, ip.ptr, ip.len);
    n += ip.len;
    if (v6)
        buf[n++] = ']';
    buf[n++] = ':';
    n += fmt_u64(port, buf + n);
    *out = (str_t){buf, (uint32_t)n};
    return 0;
}

static int peer_field(const node_t *n, const ax_ctx_t *c, str_t *out)
{
    const peer_info_t *pi = n->upstream ? c->upstream_peer : c->downstream_peer;
    if (!pi)
        return -1;
    const char *f;
    switch (n->op) {
    case A_P_APP: f = pi->app; break;
    case A_P_VERSION: f = pi->version; break;
    case A_P_NAMESPACE: f = pi->namespace; break;
    case A_P_WORKLOAD: f = pi->workload; break;
    case A_P_NAME: f = pi->name; break;
    case A_P_SERVICE: f = pi->canonical_service; break;
    case A_P_REVISION: f = pi->canonical_revision; break;
    default: f = pi->cluster_id; break;
    }
    return present((str_t){f, (uint32_t)strnlen(f, PEER_FIELD_MAX)}, out);
}

static int attr_str(const node_t *n, const ax_ctx_t *c, char *buf, str_t *out)
{
    const char *q;
    switch (n->op) {
    case A_PATH: return present(c->path, out);
    case A_URL_PATH:
    case A_QUERY:
        if (present(c->path, out) < 0)
            return -1;
        q = memchr(out->ptr, '?', out->len);
        if (n->op == A_URL_PATH) {
            out->len = q ? (uint32_t)(q - out->ptr) : out->len;
            return 0;
        }
        *out = q ? (str_t){q + 1, (uint32_t)(out->ptr + out->len - q - 1)} : (str_t){out->ptr + out->len, 0};
        if ((q = memchr(out->ptr, '#', out->len)) != NULL)
            out->len = (uint32_t)(q - out->ptr);
        return 0;
    case A_HOST: return present(c->host, out);
    case A_SCHEME: return present(c->scheme, out);
    case A_METHOD: return present(c->method, out);
    case A_PROTOCOL: return present(c->protocol, out);
    case A_HEADER: return header(c, n->s, out);
    case A_USERAGENT: return header(c, STR_LIT("user-agent"), out);
    case A_REFERER: return header(c, STR_LIT("referer"), out);
    case A_ID: return header(c, STR_LIT("x-request-id"), out);
    case A_SRC_ADDR: return address(c->source_address, c->source_port, buf, out);
    case A_DST_ADDR: return address(c->destination_address, c->destination_port, buf, out);
    default: return peer_field(n, c, out);
    }
}

static int64_t clamp(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static int attr_int(const node_t *n, const ax_ctx_t *c, int64_t *out)
{
    uint64_t f = 0;
    switch (n->op) {
    case A_REQ_SIZE: *out = clamp(c->request_size); return 0;
    case A_DURATION: *out = clamp(c->duration_ms); return 0;
    case A_RESP_SIZE: *out = clamp(c->response_size); return 0;
    case A_CODE: *out = c->response_code; return c->response_code ? 0 : -1;
    case A_FLAGS:
        for (int i = 0; i < TELE_NFLAGS; i++)
            if (c->response_flags & (1u << i))
                f |= ENVOY_FLAG[i];
        *out = (int64_t)f;
        return 0;
    case A_SRC_PORT: *out = c->source_port; return c->source_port ? 0 : -1;
    default: *out = c->destination_port; return c->destination_port ? 0 : -1;
    }
}

/* A string value; one that has to be made is written to buf (AX_SCRATCH bytes). */
static int eval_str(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c, char *buf, str_t *out)
{
    int64_t v;
    int b;
    switch (n->kind) {
    case N_LIT: *out = n->s; return 0;
    case N_ATTR: return attr_str(n, c, buf, out);
    case N_COND: b = eval_bool(e, N(n->a), c); return b < 0 ? -1 : eval_str(e, N(b ? n->b : n->c), c, buf, out);
    default: /* N_STRING of an int or a bool */
        if (N(n->a)->type == AX_INT) {
            if (eval_int(e, N(n->a), c, &v) < 0)
                return -1;
            *out = (str_t){buf, (uint32_t)fmt_int(v, buf)};
            return 0;
        }
        if ((b = eval_bool(e, N(n->a), c)) < 0)
            return -1;
        *out = b ? STR_LIT("true") : STR_LIT("false");
        return 0;
    }
}

static int eval_int(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c, int64_t *out)
{
    char buf[AX_SCRATCH];
    str_t s;
    int b;
    switch (n->kind) {
    case N_LIT: *out = n->i; return 0;
    case N_ATTR: return attr_int(n, c, out);
    case N_COND: b = eval_bool(e, N(n->a), c); return b < 0 ? -1 : eval_int(e, N(b ? n->b : n->c), c, out);
    default: /* N_INT of a string */ return eval_str(e, N(n->a), c, buf, &s) < 0 ? -1 : parse_int(s, out);
    }
}

static int compare(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c)
{
    const node_t *l = N(n->a), *r = N(n->b);
    int d;
    if (l->type == AX_INT) {
        int64_t x, y;
        if (eval_int(e, l, c, &x) < 0 || eval_int(e, r, c, &y) < 0)
            return -1;
        d = (x > y) - (x < y);
    } else if (l->type == AX_STRING) {
        char bx[AX_SCRATCH], by[AX_SCRATCH];
        str_t x, y;
        if (eval_str(e, l, c, bx, &x) < 0 || eval_str(e, r, c, by, &y) < 0)
            return -1;
        d = str_compare(x, y);
    } else {
        int x = eval_bool(e, l, c), y = eval_bool(e, r, c);
        if (x < 0 || y < 0)
            return -1;
        d = x - y;
    }
    switch (n->op) {
    case C_EQ: return d == 0;
    case C_NE: return d != 0;
    case C_LT: return d < 0;
    case C_LE: return d <= 0;
    case C_GT: return d > 0;
    default: return d >= 0;
    }
}

static int in_list(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c)
{
    const node_t *x = N(n->a);
    char buf[AX_SCRATCH];
    str_t s = STR_NULL;
    int64_t v = 0;
    int rc = x->type == AX_STRING ? eval_str(e, x, c, buf, &s)
             : x->type == AX_INT  ? eval_int(e, x, c, &v)
                                  : (int)(v = eval_bool(e, x, c));
    if (rc < 0)
        return -1;
    for (int i = n->b; i < n->b + n->c; i++)
        if (x->type == AX_STRING ? str_equal(s, N(i)->s) : v == N(i)->i)
            return 1;
    return 0;
}

static int method(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c)
{
    char bx[AX_SCRATCH], by[AX_SCRATCH];
    str_t x, y;
    if (eval_str(e, N(n->a), c, bx, &x) < 0 || eval_str(e, N(n->b), c, by, &y) < 0)
        return -1;
    if (y.len > x.len)
        return 0;
    if (y.len == 0)
        return 1;
    switch (n->op) {
    case M_STARTS: return memcmp(x.ptr, y.ptr, y.len) == 0;
    case M_ENDS: return memcmp(x.ptr + x.len - y.len, y.ptr, y.len) == 0;
    default: return memmem(x.ptr, x.len, y.ptr, y.len) != NULL;
    }
}

/* has(x): whether attribute x evaluates without an error. */
static int has(const ax_expr_t *e, const node_t *x, const ax_ctx_t *c)
{
    char buf[AX_SCRATCH];
    str_t s;
    int64_t v;
    if (x->type == AX_STRING)
        return attr_str(x, c, buf, &s) == 0;
    if (x->type == AX_INT)
        return attr_int(x, c, &v) == 0;
    return eval_bool(e, x, c) >= 0;
}

/* 1 true, 0 false, -1 error (CEL's rules for && || ! ?: are in attr_expr.h). */
static int eval_bool(const ax_expr_t *e, const node_t *n, const ax_ctx_t *c)
{
    int x, y;
    switch (n->kind) {
    case N_LIT: return (int)n->i;
    case N_ATTR:
        if (n->op == A_PEER)
            return (n->upstream ? c->upstream_peer : c->downstream_peer) ? 1 : -1;
        return 0; /* connection.mtls */
    case N_NOT: return (x = eval_bool(e, N(n->a), c)) < 0 ? -1 : !x;
    case N_AND:
        if ((x = eval_bool(e, N(n->a), c)) == 0)
            return 0;
        y = eval_bool(e, N(n->b), c);
        return y == 0 ? 0 : x < 0 || y < 0 ? -1 : 1;
    case N_OR:
        if ((x = eval_bool(e, N(n->a), c)) == 1)
            return 1;
        y = eval_bool(e, N(n->b), c);
        return y == 1 ? 1 : x < 0 || y < 0 ? -1 : 0;
    case N_COND: x = eval_bool(e, N(n->a), c); return x < 0 ? -1 : eval_bool(e, N(x ? n->b : n->c), c);
    case N_CMP: return compare(e, n, c);
    case N_IN: return in_list(e, n, c);
    case N_METHOD: return method(e, n, c);
    default: return has(e, N(n->a), c);
    }
}

int ax_eval_string(const ax_expr_t *e, const ax_ctx_t *ctx, char scratch[AX_SCRATCH], str_t *out)
{
    const node_t *root = N(e->root);
    int64_t v;
    int b;
    switch (e->type) {
    case AX_STRING: return eval_str(e, root, ctx, scratch, out);
    case AX_INT:
        if (eval_int(e, root, ctx, &v) < 0)
            return -1;
        *out = (str_t){scratch, (uint32_t)fmt_int(v, scratch)};
        return 0;
    default:
        if ((b = eval_bool(e, root, ctx)) < 0)
            return -1;
        *out = b ? STR_LIT("true") : STR_LIT("false");
        return 0;
    }
}

int ax_eval_bool(const ax_expr_t *e, const ax_ctx_t *ctx)
{
    return e->type == AX_BOOL && eval_bool(e, N(e->root), ctx) == 1;
}
