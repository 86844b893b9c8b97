/*
 * http1: the HTTP/1.1 codec (see http1.h): parser driver and head writer.
 *
 * llhttp (Node.js's HTTP/1 parser, the successor of http-parser; built from
 * the sources Debian's node-llhttp ships) does the grammar; this file drives
 * it and adds the checks a proxy needs. Design:
 *
 * - A message goes through phases IDLE -> HEAD -> BODY [-> TRAILER] -> IDLE,
 *   or ends in TUNNEL or DEAD. While in HEAD (and TRAILER), every byte is
 *   first run through a small line scanner that enforces what llhttp's
 *   strict mode still accepts: bare LF line ends, bare CR, obs-fold
 *   continuation lines, and the head byte limit. The scanner also finds the
 *   empty line that ends the head, and only the head's bytes are handed to
 *   llhttp in that phase, so both always agree on where the head ends.
 *   When the scanner rejects a byte, the bytes before it still go to
 *   llhttp first: an earlier error it finds (414, bad syntax) wins.
 * - Stopping: every on_message_complete (and the last chunk's header, to
 *   scan trailers) returns HPE_PAUSED, so llhttp_execute stops exactly at
 *   that boundary (llhttp_get_error_pos); http1_parse resumes it and goes on
 *   unless a user callback asked to pause. A user pause in on_headers_complete
 *   reports the head's final LF as not consumed (http1.h's contract, kept
 *   from http-parser): the caller feeds it again on resume, and it is
 *   skipped then (lf_owed) before llhttp runs on, with no bytes if need be,
 *   to finish a message without a body.
 * - Field names, values, the request-target and the reason phrase are copied
 *   into one header buffer as offsets; the slice list is built at
 *   on_headers_complete, after which the buffer does not grow until the
 *   message ends (trailers have their own buffer), so slices stay valid.
 */
#include "http1.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum phase { PH_IDLE, PH_HEAD, PH_BODY, PH_TRAILER, PH_TUNNEL, PH_DEAD };

/* line scanner states */
enum scan { SC_START, SC_START_CR, SC_LINE, SC_CR, SC_LINE_START, SC_END_CR };

typedef struct field_off {
    uint32_t name_off, name_len, value_off, value_len;
} field_off_t;

/* Raw field text plus offsets; `list` is the slice view built when the section ends. */
typedef struct fields {
    char *buf;
    size_t len, cap;
    field_off_t *offs;
    uint32_t count, offs_cap;
    http1_header_t *list;
    uint32_t list_cap;
    int last; /* 0 nothing yet, 1 in a name, 2 in a value */
} fields_t;

struct http1_parser {
    llhttp_t hp;
    enum http1_kind kind;
    http1_limits_t lim;
    http1_callbacks_t cb;
    void *ctx;
    enum phase phase;
    enum scan scan;
    uint32_t scan_bytes; /* head (or trailer) bytes seen by the scanner */
    fields_t hdr;
    fields_t trl;
    uint32_t url_off, url_len;
    uint32_t reason_off, reason_len;
    int req_method; /* response parsers: method of the request being answered */
    http1_head_t head;
    bool stop_complete; /* internal pause: message complete */
    bool stop_trailer;  /* internal pause: last chunk seen, trailers follow */
    bool user_paused;   /* a callback returned HTTP1_CB_PAUSE */
    bool tunnel;        /* message complete with upgrade */
    bool head_paused;   /* the user pause came in on_headers_complete */
    bool lf_owed;       /* ...so the next call starts with the head's final LF again */
    int err_status;
    const char *err_reason;
};

static const llhttp_settings_t settings;

/* ---- small helpers ---- */

/* RFC 9110 5.6.2 token characters: ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
static const uint8_t tchar_table[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0'] = 1,  ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1,  ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,  ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1,
    ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,  ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,  ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,  ['z'] = 1,
};

static inline bool is_tchar(unsigned char c)
{
    return tchar_table[c] != 0;
}

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/*
 * Walk the comma-separated elements of value (RFC 9110 5.6.1), calling fn on
 * each trimmed non-empty element; stops early when fn returns true.
 */
typedef bool (*element_fn)(const char *s, size_t n, void *arg);

static bool list_each(str_t value, element_fn fn, void *arg)
{
    const char *s = value.ptr, *end = value.ptr + value.len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma ? comma : end;
        const char *a = s, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a && fn(a, (size_t)(b - a), arg))
            return true;
        s = comma ? comma + 1 : end;
    }
    return false;
}

static bool element_is(const char *s, size_t n, void *arg)
{
    return http1_span_ieq(s, n, (const char *)arg);
}

bool http1_connection_has(const http1_header_t *headers, uint32_t count, const char *token)
{
    for (uint32_t i = 0; i < count; i++)
        if (http1_name_eq(headers[i].name, "connection") && list_each(headers[i].value, element_is, (void *)token))
            return true;
    return false;
}

/* Reason phrases of the IANA status code registry (RFC 9110 15, and the codes registered since). */
const char *http1_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

/* llhttp's method numbers (http-parser's, extended); its own lookup aborts on an unknown one */
#define METHOD_NAME(num, name, string) [num] = #string,
static const char *const method_names[] = {HTTP_ALL_METHOD_MAP(METHOD_NAME)};
#undef METHOD_NAME

const char *http1_method_name(int method)
{
    if (method < 0 || (size_t)method >= sizeof(method_names) / sizeof(method_names[0]) || !method_names[method])
        return "<unknown>";
    return method_names[method];
}

/* ---- field storage ---- */

static void fields_clear(fields_t *f)
{
    f->len = 0;
    f->count = 0;
    f->last = 0;
}

static void fields_dispose(fields_t *f)
{
    free(f->buf);
    free(f->offs);
    free(f->list);
    memset(f, 0, sizeof(*f));
}

/* Append text to f->buf; -1 when the text would pass limit (nothing allocated past it). */
static int fields_append(fields_t *f, const char *at, size_t len, size_t limit)
{
    if (len == 0)
        return 0;
    if (len > limit || f->len > limit - len)
        return -1;
    if (f->cap - f->len < len) {
        size_t cap = f->cap ? f->cap : 1024;
        while (cap - f->len < len)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        char *nb = realloc(f->buf, cap);
        if (nb == NULL)
            log_fatal("out of memory growing an HTTP header buffer to %zu bytes", cap);
        f->buf = nb;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, at, len);
    f->len += len;
    return 0;
}

static int fields_new(fields_t *f, uint32_t max)
{
    if (f->count >= max)
        return -1;
    if (f->count == f->offs_cap) {
        uint32_t cap = f->offs_cap ? f->offs_cap * 2 : 16;
        if (cap > max)
            cap = max;
        field_off_t *n = realloc(f->offs, (size_t)cap * sizeof(*n));
        if (n == NULL)
            log_fatal("out of memory growing an HTTP header list");
        f->offs = n;
        f->offs_cap = cap;
    }
    f->offs[f->count++] = (field_off_t){(uint32_t)f->len, 0, (uint32_t)f->len, 0};
    return 0;
}

/* The text base; "" while nothing was stored, so empty slices never sit on NULL. */
static const char *fields_base(const fields_t *f)
{
    return f->buf ? f->buf : "";
}

static void fields_build(fields_t *f)
{
    if (f->count > f->list_cap) {
        http1_header_t *n = realloc(f->list, (size_t)f->count * sizeof(*n));
        if (n == NULL)
            log_fatal("out of memory building an HTTP header list");
        f->list = n;
        f->list_cap = f->count;
    }
    for (uint32_t i = 0; i < f->count; i++) {
        const field_off_t *o = &f->offs[i];
        const char *v = fields_base(f) + o->value_off;
        uint32_t vl = o->value_len;
        while (vl && (v[0] == ' ' || v[0] == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        f->list[i].name = (str_t){fields_base(f) + o->name_off, o->name_len};
        f->list[i].value = (str_t){v, vl};
    }
}

/* ---- errors ---- */

static int fail(http1_parser_t *p, int status, const char *reason)
{
    if (p->err_status == 0) {
        p->err_status = p->kind == HTTP1_RESPONSE ? 502 : status;
        p->err_reason = reason;
    }
    return -1;
}

/* ---- llhttp callbacks ---- */

static int cb_message_begin(llhttp_t *hp)
{
    http1_parser_t *p = hp->data;
    fields_clear(&p->hdr);
    fields_clear(&p->trl);
    p->url_off = p->url_len = p->reason_off = p->reason_len = 0;
    memset(&p->head, 0, sizeof(p->head));
    return 0;
}

static int cb_url(llhttp_t *hp, const char *at, size_t len)
{
    http1_parser_t *p = hp->data;
    if (p->url_len == 0)
        p->url_off = (uint32_t)p->hdr.len;
    if (len > p->lim.max_uri_bytes || p->url_len > p->lim.max_uri_bytes - len)
        return fail(p, 414, "request-target too long");
    if (fields_append(&p->hdr, at, len, p->lim.max_header_bytes) < 0)
        return fail(p, 431, "header section too large");
    p->url_len += (uint32_t)len;
    return 0;
}

static int cb_status(llhttp_t *hp, const char *at, size_t len)
{
    http1_parser_t *p = hp->data;
    if (p->reason_len == 0)
        p->reason_off = (uint32_t)p->hdr.len;
    if (fields_append(&p->hdr, at, len, p->lim.max_header_bytes) < 0)
        return fail(p, 431, "header section too large");
    p->reason_len += (uint32_t)len;
    return 0;
}

static fields_t *current_fields(http1_parser_t *p)
{
    return p->phase == PH_TRAILER ? &p->trl : &p->hdr;
}

static int cb_header_field(llhttp_t *hp, const char *at, size_t len)
{
    http1_parser_t *p = hp->data;
    fields_t *f = current_fields(p);
    if (f->last != 1 && fields_new(f, p->lim.max_headers) < 0)
        return fail(p, 431, "too many header fields");
    f->last = 1;
    if (fields_append(f, at, len, p->lim.max_header_bytes) < 0)
        return fail(p, 431, "header section too large");
    f->offs[f->count - 1].name_len += (uint32_t)len;
    return 0;
}

static int cb_header_value(llhttp_t *hp, const char *at, size_t len)
{
    http1_parser_t *p = hp->data;
    fields_t *f = current_fields(p);
    if (f->count == 0)
        return fail(p, 400, "header value without a name");
    field_off_t *o = &f->offs[f->count - 1];
    if (f->last != 2)
        o->value_off = (uint32_t)f->len;
    f->last = 2;
    if (fields_append(f, at, len, p->lim.max_header_bytes) < 0)
        return fail(p, 431, "header section too large");
    o->value_len += (uint32_t)len;
    return 0;
}

/*
 * Eight bytes at a time (SWAR): whether a word holds a byte equal to b, or
 * one below b (b <= 0x80). Both are exact as booleans; the callers look at
 * the word's bytes one by one when either is set.
 */
#define SWAR_ONES 0x0101010101010101ull
#define SWAR_HIGHS 0x8080808080808080ull
static inline uint64_t swar_load(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}
static inline uint64_t swar_has(uint64_t w, unsigned char b)
{
    uint64_t x = w ^ (SWAR_ONES * b);
    return (x - SWAR_ONES) & ~x & SWAR_HIGHS;
}
static inline uint64_t swar_has_less(uint64_t w, unsigned char b)
{
    return (w - SWAR_ONES * b) & ~w & SWAR_HIGHS;
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "find_cr_or_lf reads the first match off the lowest byte");

/* Index of the first CR or LF in p[0..n), or n. */
static size_t find_cr_or_lf(const char *p, size_t n)
{
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t w = swar_load(p + k);
        uint64_t m = swar_has(w, '\r') | swar_has(w, '\n');
        if (m != 0) /* the lowest flagged byte is the first match (little-endian; no false positive below it) */
            return k + (size_t)(__builtin_ctzll(m) >> 3);
    }
    while (k < n && p[k] != '\r' && p[k] != '\n')
        k++;
    return k;
}

/*
 * The last 1..7 bytes p[0..n) of a span as one word, the bytes past them set
 * to fill; false when fewer than 8 bytes up to end can be read.
 */
static inline bool swar_tail(const char *p, size_t n, const char *end, unsigned char fill, uint64_t *w)
{
    if (end - p < 8)
        return false;
    uint64_t keep = (1ull << (8 * n)) - 1; /* little-endian: the low n bytes are p[0..n) */
    *w = (swar_load(p) & keep) | (SWAR_ONES * fill & ~keep);
    return true;
}

/* RFC 9110 5.5: no CTLs in values but HTAB; true when v[0..n) is clean. end: the buffer's end (reads stay below). */
static bool value_clean(const char *v, size_t n, const char *end)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        uint64_t w = swar_load(v + j);
        if (swar_has_less(w, 0x20) | swar_has(w, 0x7f))
            break; /* a control character, or a tab: the rest byte by byte */
    }
    uint64_t w;
    if (j < n && j == (n & ~(size_t)7) && swar_tail(v + j, n - j, end, 'a', &w) &&
        !(swar_has_less(w, 0x20) | swar_has(w, 0x7f)))
        return true; /* the tail in one word */
    for (; j < n; j++) {
        unsigned char c = (unsigned char)v[j];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/*
 * Names: llhttp (strict, no lenient flag set) refuses every byte that is not a
 * token character except a space, and passes an empty name (": v"), so those
 * two are looked for here; test_http1 checks every byte against llhttp.
 */
static bool name_has_blank(const char *n, size_t len, const char *end)
{
    size_t j = 0;
    for (; j + 8 <= len; j += 8) {
        uint64_t w = swar_load(n + j);
        if (swar_has(w, ' ') | swar_has(w, '\t'))
            return true;
    }
    uint64_t w;
    if (j < len && swar_tail(n + j, len - j, end, 'a', &w))
        return (swar_has(w, ' ') | swar_has(w, '\t')) != 0;
    for (; j < len; j++)
        if (n[j] == ' ' || n[j] == '\t')
            return true;
    return false;
}

static const char *check_fields(const fields_t *f)
{
    const char *end = fields_base(f) + f->len;
    for (uint32_t i = 0; i < f->count; i++) {
        const char *n = fields_base(f) + f->offs[i].name_off;
        uint32_t nl = f->offs[i].name_len;
        if (nl == 0)
            return "empty header field name";
        if (name_has_blank(n, nl, end))
            return "whitespace before the colon of a header field";
        /* the parser's value check is not relied on for NUL */
        if (!value_clean(fields_base(f) + f->offs[i].value_off, f->offs[i].value_len, end))
            return "invalid character in a header field value";
    }
    return NULL;
}

typedef struct te_state {
    int count;
    bool chunked_last;
} te_state_t;

static bool te_element(const char *s, size_t n, void *arg)
{
    te_state_t *t = arg;
    t->count++;
    t->chunked_last = http1_span_ieq(s, n, "chunked");
    return false;
}

/*
 * The head's checks; returns NULL or the reason to refuse it (400 for
 * requests). Fills the framing and connection fields of p->head.
 */
static const char *check_head(http1_parser_t *p)
{
    http1_head_t *h = &p->head;
    const http1_header_t *l = h->headers;
    const char *why = check_fields(&p->hdr);
    if (why)
        return why;
    int n_cl = 0, n_te_fields = 0, n_host = 0;
    te_state_t te = {0, false};
    for (uint32_t i = 0; i < h->header_count; i++) {
        if (http1_name_eq(l[i].name, "content-length"))
            n_cl++;
        else if (http1_name_eq(l[i].name, "transfer-encoding")) {
            n_te_fields++;
            list_each(l[i].value, te_element, &te);
        } else if (http1_name_eq(l[i].name, "host"))
            n_host++;
    }
    if (n_cl > 1)
        return "several Content-Length fields";
    if (n_cl && n_te_fields)
        return "both Content-Length and Transfer-Encoding";
    if (n_te_fields) {
        if (h->version_major == 1 && h->version_minor == 0)
            return "Transfer-Encoding in an HTTP/1.0 message";
        if (te.count != 1 || !te.chunked_last)
            return "Transfer-Encoding other than a single final chunked";
    }
    if (p->kind == HTTP1_REQUEST) {
        if (n_host > 1)
            return "several Host fields";
        if (n_host == 0 && h->version_minor >= 1)
            return "HTTP/1.1 request without Host";
    }
    return NULL;
}

static int cb_headers_complete(llhttp_t *hp)
{
    http1_parser_t *p = hp->data;
    http1_head_t *h = &p->head;
    fields_build(&p->hdr);
    h->headers = p->hdr.list;
    h->header_count = p->hdr.count;
    h->version_major = (uint8_t)hp->http_major;
    h->version_minor = (uint8_t)hp->http_minor;
    if (hp->http_major != 1)
        return fail(p, 505, "HTTP version not supported");
    const char *why = check_head(p);
    if (why)
        return fail(p, 400, why);

    int skip = 0; /* llhttp: 1 = no body, 2 = no body and tunnel */
    if (p->kind == HTTP1_REQUEST) {
        h->method = hp->method;
        const char *m = http1_method_name(hp->method);
        h->method_name = (str_t){m, (uint32_t)strlen(m)};
        h->target = (str_t){fields_base(&p->hdr) + p->url_off, p->url_len};
        h->upgrade = hp->upgrade;
        if (h->version_minor >= 1) {
            const http1_header_t *e = http1_header_find(h->headers, h->header_count, "expect");
            h->expect_continue = e && http1_span_ieq(e->value.ptr, e->value.len, "100-continue");
        }
    } else {
        h->method = p->req_method;
        h->status = hp->status_code;
        h->reason = (str_t){fields_base(&p->hdr) + p->reason_off, p->reason_len};
        int st = h->status;
        if (st < 100 || st > 599) /* RFC 9110 15: values outside 100..599 are invalid */
            return fail(p, 502, "invalid status code");
        h->upgrade = hp->upgrade && st == 101;
        if (p->req_method == HTTP_CONNECT && st >= 200 && st < 300) {
            skip = 2;
            h->upgrade = true;
        } else if (p->req_method == HTTP_HEAD || st / 100 == 1 || st == 204 || st == 304) {
            skip = 1;
        }
    }

    /* mirrors llhttp: an upgrade without a body (or CONNECT) tunnels right after the head */
    bool has_body = (hp->flags & F_CHUNKED) || ((hp->flags & F_CONTENT_LENGTH) && hp->content_length > 0);
    if (skip || (h->upgrade && (hp->method == HTTP_CONNECT || !has_body)))
        h->body = HTTP1_BODY_NONE;
    else if (hp->flags & F_CHUNKED)
        h->body = HTTP1_BODY_CHUNKED;
    else if ((hp->flags & F_CONTENT_LENGTH) && hp->content_length > 0)
        h->body = HTTP1_BODY_LENGTH;
    else if ((hp->flags & F_CONTENT_LENGTH) || p->kind == HTTP1_REQUEST)
        h->body = HTTP1_BODY_NONE;
    else
        h->body = HTTP1_BODY_UNTIL_CLOSE;
    if (h->body == HTTP1_BODY_LENGTH) {
        h->content_length = hp->content_length;
        h->body_over_limit = p->lim.max_body_bytes && h->content_length > p->lim.max_body_bytes;
    }

    /* RFC 9112 9.3 */
    bool close = http1_connection_has(h->headers, h->header_count, "close");
    if (h->version_minor >= 1)
        h->keep_alive = !close;
    else
        h->keep_alive = !close && http1_connection_has(h->headers, h->header_count, "keep-alive");
    if (h->body == HTTP1_BODY_UNTIL_CLOSE)
        h->keep_alive = false;

    p->phase = PH_BODY;
    if (p->cb.on_head) {
        int r = p->cb.on_head(p->ctx, h);
        if (r < 0)
            return fail(p, 500, "aborted by the head callback");
        if (r == HTTP1_CB_PAUSE) {
            /* what returning skip would have set (llhttp.c: on_headers_complete's 1 and 2) */
            if (skip == 2)
                hp->upgrade = 1;
            if (skip)
                hp->flags |= F_SKIPBODY;
            p->user_paused = true;
            p->head_paused = true;
            return HPE_PAUSED;
        }
    }
    return skip;
}

static int cb_body(llhttp_t *hp, const char *at, size_t len)
{
    http1_parser_t *p = hp->data;
    if (p->cb.on_body && p->cb.on_body(p->ctx, at, len) < 0)
        return fail(p, 500, "aborted by the body callback");
    return 0;
}

static int cb_chunk_header(llhttp_t *hp)
{
    http1_parser_t *p = hp->data;
    if (hp->content_length == 0) {
        /* last chunk: scan the trailer section line by line, as a head */
        p->stop_trailer = true;
        return HPE_PAUSED;
    }
    return 0;
}

static int cb_message_complete(llhttp_t *hp)
{
    http1_parser_t *p = hp->data;
    if (p->phase == PH_TRAILER && p->trl.count) {
        const char *why = check_fields(&p->trl);
        if (why)
            return fail(p, 400, why);
        fields_build(&p->trl);
        if (p->cb.on_trailers && p->cb.on_trailers(p->ctx, p->trl.list, p->trl.count) < 0)
            return fail(p, 500, "aborted by the trailers callback");
    }
    if (p->kind == HTTP1_RESPONSE && p->head.status >= 200)
        p->req_method = HTTP_GET;
    p->tunnel = hp->upgrade;
    p->stop_complete = true;
    if (p->cb.on_complete) {
        int r = p->cb.on_complete(p->ctx);
        if (r < 0)
            return fail(p, 500, "aborted by the complete callback");
        if (r == HTTP1_CB_PAUSE)
            p->user_paused = true;
    }
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_status = cb_status,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
    .on_chunk_header = cb_chunk_header,
};

/* ---- line scanner ---- */

enum { SCAN_MORE, SCAN_END, SCAN_ERR };

/*
 * Scan up to len bytes of a head (or trailer section). *n is set to the
 * bytes that belong to it: all of them (SCAN_MORE), up to and including the
 * LF of the empty line (SCAN_END), or those before the offending byte
 * (SCAN_ERR, with *status and *why set).
 */
static int scan_head(http1_parser_t *p, const char *data, size_t len, size_t *n, int *status, const char **why)
{
    enum scan s = p->scan;
    size_t i = 0;
    int r = SCAN_MORE;
    for (; i < len; i++) {
        if (s == SC_LINE) {
            /* inside a line only CR and LF matter: skip to the next one (within the size limit) */
            size_t room = len - i;
            size_t budget = p->scan_bytes < p->lim.max_header_bytes ? p->lim.max_header_bytes - p->scan_bytes : 0;
            if (room > budget)
                room = budget;
            size_t k = find_cr_or_lf(data + i, room);
            i += k;
            p->scan_bytes += k;
            if (i == len)
                break;
        }
        if (p->scan_bytes >= p->lim.max_header_bytes) {
            *status = 431, *why = "header section too large";
            r = SCAN_ERR;
            break;
        }
        char c = data[i];
        switch (s) {
        case SC_START:
            /* RFC 9112 2.2: empty lines before the request-line are ignored */
            s = c == '\r' ? SC_START_CR : c == '\n' ? SC_START : SC_LINE;
            if (c == '\n') {
                *status = 400, *why = "bare LF in the header section";
                r = SCAN_ERR;
            }
            if (s == SC_LINE && p->phase == PH_IDLE)
                p->phase = PH_HEAD;
            break;
        case SC_START_CR:
        case SC_CR:
        case SC_END_CR:
            if (c != '\n') {
                *status = 400, *why = "bare CR in the header section";
                r = SCAN_ERR;
                break;
            }
            if (s == SC_END_CR)
                r = SCAN_END;
            s = s == SC_START_CR ? SC_START : SC_LINE_START;
            break;
        case SC_LINE:
        case SC_LINE_START:
            if (c == '\n') {
                *status = 400, *why = "bare LF in the header section";
                r = SCAN_ERR;
            } else if (c == '\r') {
                s = s == SC_LINE_START ? SC_END_CR : SC_CR;
            } else if (s == SC_LINE_START && (c == ' ' || c == '\t')) {
                *status = 400, *why = "obsolete line folding in the header section";
                r = SCAN_ERR;
            } else {
                s = SC_LINE;
            }
            break;
        }
        if (r == SCAN_ERR)
            break;
        p->scan_bytes++;
        if (r == SCAN_END) {
            i++;
            break;
        }
    }
    p->scan = s;
    *n = i;
    return r;
}

/* ---- public ---- */

http1_parser_t *http1_parser_create(enum http1_kind kind, const http1_limits_t *limits, const http1_callbacks_t *cb,
                                    void *ctx)
{
    http1_parser_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        log_fatal("out of memory creating an HTTP/1 parser");
    p->kind = kind;
    p->lim = limits ? *limits : HTTP1_LIMITS_DEFAULT;
    if (p->lim.max_header_bytes == 0)
        p->lim.max_header_bytes = HTTP1_LIMITS_DEFAULT.max_header_bytes;
    if (p->lim.max_headers == 0)
        p->lim.max_headers = HTTP1_LIMITS_DEFAULT.max_headers;
    if (p->lim.max_uri_bytes == 0)
        p->lim.max_uri_bytes = HTTP1_LIMITS_DEFAULT.max_uri_bytes;
    if (cb)
        p->cb = *cb;
    p->ctx = ctx;
    http1_parser_reset(p);
    return p;
}

void http1_parser_destroy(http1_parser_t *p)
{
    if (p == NULL)
        return;
    fields_dispose(&p->hdr);
    fields_dispose(&p->trl);
    free(p);
}

void http1_parser_reset(http1_parser_t *p)
{
    llhttp_init(&p->hp, p->kind == HTTP1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    p->hp.data = p;
    p->phase = PH_IDLE;
    p->scan = SC_START;
    p->scan_bytes = 0;
    fields_clear(&p->hdr);
    fields_clear(&p->trl);
    memset(&p->head, 0, sizeof(p->head));
    p->req_method = HTTP_GET;
    p->stop_complete = p->stop_trailer = p->user_paused = p->tunnel = p->head_paused = p->lf_owed = false;
    p->err_status = 0;
    p->err_reason = "";
}

void http1_parser_set_method(http1_parser_t *p, int method)
{
    p->req_method = method;
}

void http1_parser_resume(http1_parser_t *p)
{
    p->user_paused = false;
}

bool http1_parser_in_message(const http1_parser_t *p)
{
    return p->phase == PH_HEAD || p->phase == PH_BODY || p->phase == PH_TRAILER;
}

int http1_parser_error_status(const http1_parser_t *p)
{
    return p->err_status;
}

const char *http1_parser_error_reason(const http1_parser_t *p)
{
    return p->err_reason;
}

/* llhttp's reason for its error, or ours where we have a plainer one; [lo, hi) is the input it stopped in */
static const char *parser_reason(const llhttp_t *hp, const char *lo, const char *hi)
{
    const char *at = llhttp_get_error_pos(hp);
    switch (llhttp_get_errno(hp)) {
    case HPE_INVALID_HEADER_TOKEN:
        if (at && at >= lo && at < hi && (*at == ' ' || *at == '\t'))
            return "whitespace before the colon of a header field";
        return "invalid character in a header field name";
    case HPE_UNEXPECTED_CONTENT_LENGTH: return "both Content-Length and Transfer-Encoding";
    case HPE_INVALID_TRANSFER_ENCODING: return "Transfer-Encoding other than a single final chunked";
    default: break;
    }
    const char *r = llhttp_get_error_reason(hp);
    return r && *r ? r : llhttp_errno_name(llhttp_get_errno(hp));
}

static int die(http1_parser_t *p)
{
    if (p->err_status == 0)
        fail(p, 400, parser_reason(&p->hp, NULL, NULL));
    p->phase = PH_DEAD;
    return HTTP1_ERROR;
}

/* After an internal pause: move to the next phase. Returns a result to hand back, or -2 to go on. */
static int after_stop(http1_parser_t *p)
{
    if (p->stop_trailer) {
        p->stop_trailer = false;
        p->phase = PH_TRAILER;
        p->scan = SC_LINE_START;
        p->scan_bytes = 0;
    }
    if (p->stop_complete) {
        p->stop_complete = false;
        p->scan = SC_START;
        p->scan_bytes = 0;
        if (p->tunnel) {
            p->phase = PH_TUNNEL;
            return HTTP1_UPGRADED;
        }
        p->phase = PH_IDLE;
    }
    return p->user_paused ? HTTP1_PAUSED : -2;
}

int http1_parse(http1_parser_t *p, const char *data, size_t len, size_t *consumed)
{
    size_t pos = 0;
    int ret = HTTP1_OK;
    bool run_empty = false; /* run llhttp once even with no bytes: it ends a message on its own */
    if (p->phase == PH_DEAD) {
        ret = HTTP1_ERROR;
        goto out;
    }
    if (p->phase == PH_TUNNEL) {
        ret = HTTP1_UPGRADED;
        goto out;
    }
    if (p->user_paused) {
        ret = HTTP1_PAUSED;
        goto out;
    }
    if (p->lf_owed) {
        if (len == 0)
            goto out;
        p->lf_owed = false;
        pos = 1;
        run_empty = true;
    }
    while (pos < len || run_empty) {
        run_empty = false;
        size_t feed = len - pos;
        int sr = SCAN_MORE, status = 0;
        const char *why = NULL;
        if (p->phase == PH_IDLE || p->phase == PH_HEAD || p->phase == PH_TRAILER)
            sr = scan_head(p, data + pos, feed, &feed, &status, &why);
        llhttp_errno_t e = HPE_OK;
        size_t got = feed;
        if (feed || p->phase == PH_BODY) {
            e = llhttp_execute(&p->hp, data + pos, feed);
            if (e != HPE_OK)
                got = (size_t)(llhttp_get_error_pos(&p->hp) - (data + pos));
        }
        pos += got;
        if (e == HPE_PAUSED) {
            llhttp_resume(&p->hp);
            if (p->head_paused) {
                p->head_paused = false;
                p->lf_owed = true;
                pos--;
            }
            int r = after_stop(p);
            if (r != -2) {
                ret = r;
                goto out;
            }
            continue;
        }
        if (e != HPE_OK) {
            if (p->err_status == 0)
                fail(p, 400, parser_reason(&p->hp, data, data + len));
            ret = die(p);
            goto out;
        }
        if (sr == SCAN_ERR) {
            fail(p, status, why);
            ret = die(p);
            goto out;
        }
        if (got < feed) {
            fail(p, 400, "parser stopped early");
            ret = die(p);
            goto out;
        }
    }
out:
    *consumed = pos;
    return ret;
}

int http1_finish(http1_parser_t *p)
{
    switch (p->phase) {
    case PH_DEAD: return HTTP1_ERROR;
    case PH_TUNNEL:
    case PH_IDLE: return HTTP1_OK;
    default: break;
    }
    if (p->phase == PH_BODY && p->head.body == HTTP1_BODY_UNTIL_CLOSE && !p->user_paused) {
        if (llhttp_finish(&p->hp) == HPE_PAUSED) {
            llhttp_resume(&p->hp);
            p->user_paused = false;
            after_stop(p);
            return p->phase == PH_DEAD ? HTTP1_ERROR : HTTP1_OK;
        }
        return die(p);
    }
    fail(p, 400, "connection closed in the middle of a message");
    return die(p);
}

/* ---- writing ---- */

static bool name_ok(str_t n)
{
    if (n.ptr == NULL || n.len == 0)
        return false;
    for (uint32_t i = 0; i < n.len; i++)
        if (!is_tchar((unsigned char)n.ptr[i]))
            return false;
    return true;
}

static bool value_ok(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= '\r' && (c == '\r' || c == '\n' || c == '\0'))
            return false;
    }
    return true;
}

typedef struct named {
    const char *ptr;
    size_t len;
} named_t;

static bool element_is_named(const char *s, size_t n, void *arg)
{
    const named_t *w = arg;
    if (n != w->len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)w->ptr[i]))
            return false;
    return true;
}

/* RFC 9110 7.6.1: fields a proxy must not forward, plus Content-Length (framing is ours). */
/* Hop-by-hop by name alone (RFC 9110 7.6.1, plus Proxy-Connection and our framing fields); upgrade separately. */
static bool fixed_hop_by_hop(str_t name)
{
    switch (name.len) {
    case 2: return http1_name_eq(name, "te");
    case 7: return http1_name_eq(name, "trailer");
    case 10: return http1_name_eq(name, "connection") || http1_name_eq(name, "keep-alive");
    case 14: return http1_name_eq(name, "content-length");
    case 16: return http1_name_eq(name, "proxy-connection");
    case 17: return http1_name_eq(name, "transfer-encoding");
    default: return false;
    }
}

/* Whether a field is hop-by-hop; conn lists the indexes of the Connection fields (n_conn of them). */
static bool is_connection(str_t name)
{
    return name.len == 10 && http1_name_eq(name, "connection");
}

/*
 * conn holds the indexes of the n_conn Connection fields, or is NULL when
 * there were more than the caller keeps: then every field is looked at.
 */
static bool is_hop_by_hop(str_t name, const http1_header_t *headers, uint32_t count, const uint32_t *conn,
                          uint32_t n_conn, bool tunnel)
{
    if (fixed_hop_by_hop(name))
        return true;
    if (name.len == 7 && http1_name_eq(name, "upgrade"))
        return !tunnel;
    named_t w = {name.ptr, name.len};
    for (uint32_t i = 0; i < (conn != NULL ? n_conn : count); i++) {
        const http1_header_t *f = conn != NULL ? &headers[conn[i]] : &headers[i];
        if ((conn != NULL || is_connection(f->name)) && list_each(f->value, element_is_named, &w))
            return true;
    }
    return false;
}

static int write_fields(buf_t *out, const http1_header_t *headers, uint32_t count, bool tunnel, bool trusted)
{
    /* the Connection fields, found once (there is rarely more than one; past 8, each lookup scans them all) */
    uint32_t conn_at[8], n_conn = 0;
    const uint32_t *conn = conn_at;
    for (uint32_t i = 0; i < count && conn != NULL; i++)
        if (is_connection(headers[i].name)) {
            if (n_conn == sizeof conn_at / sizeof conn_at[0])
                conn = NULL;
            else
                conn_at[n_conn++] = i;
        }
    size_t need = 0;
    for (uint32_t i = 0; i < count; i++)
        need += headers[i].name.len + headers[i].value.len + 4;
    buf_reserve(out, need + 128);
    for (uint32_t i = 0; i < count; i++) {
        const http1_header_t *h = &headers[i];
        if (!trusted && (!name_ok(h->name) || (h->value.len && !value_ok(h->value.ptr, h->value.len))))
            return -1;
        if (is_hop_by_hop(h->name, headers, count, conn, n_conn, tunnel))
            continue;
        char *d = out->data + out->len;
        memcpy(d, h->name.ptr, h->name.len);
        d += h->name.len;
        *d++ = ':';
        *d++ = ' ';
        memcpy(d, h->value.ptr, h->value.len);
        d += h->value.len;
        *d++ = '\r';
        *d++ = '\n';
        out->len = (size_t)(d - out->data);
    }
    return 0;
}

static void write_framing(buf_t *out, const http1_head_opts_t *o)
{
    static const http1_head_opts_t none = {HTTP1_FRAME_NONE, 0, false, false, false};
    if (o == NULL)
        o = &none;
    switch (o->framing) {
    case HTTP1_FRAME_LENGTH:
        buf_append_str(out, "Content-Length: ");
        buf_append_u64(out, o->content_length);
        buf_append(out, "\r\n", 2);
        break;
    case HTTP1_FRAME_CHUNKED: buf_append_str(out, "Transfer-Encoding: chunked\r\n"); break;
    case HTTP1_FRAME_NONE:
    case HTTP1_FRAME_CLOSE: break;
    }
    if (o->close || o->framing == HTTP1_FRAME_CLOSE)
        buf_append_str(out, "Connection: close\r\n");
    else if (o->tunnel)
        buf_append_str(out, "Connection: upgrade\r\n");
    buf_append(out, "\r\n", 2);
}

bool http1_request_target_ok(str_t target)
{
    return target.len > 0 && value_ok(target.ptr, target.len) && memchr(target.ptr, ' ', target.len) == NULL;
}

bool http1_field_value_ok(str_t v)
{
    return v.len == 0 || value_clean(v.ptr, v.len, v.ptr + v.len);
}

int http1_write_request_head(buf_t *out, str_t method, str_t target, const http1_header_t *headers, uint32_t count,
                             const http1_head_opts_t *opts)
{
    size_t mark = out->len;
    if (!(opts != NULL && opts->trusted) && (!name_ok(method) || !http1_request_target_ok(target)))
        return -1;
    buf_append(out, method.ptr, method.len);
    buf_append_char(out, ' ');
    buf_append(out, target.ptr, target.len);
    buf_append_str(out, " HTTP/1.1\r\n");
    if (write_fields(out, headers, count, opts && opts->tunnel, opts && opts->trusted) < 0) {
        out->len = mark;
        return -1;
    }
    write_framing(out, opts);
    return 0;
}

static int write_status_line(buf_t *out, int status, const char *reason)
{
    if (status < 100 || status > 999)
        return -1;
    if (reason == NULL || reason[0] == '\0')
        reason = http1_status_reason(status);
    size_t rl = strlen(reason);
    if (!value_ok(reason, rl))
        return -1;
    buf_reserve(out, 16 + rl);
    char *w = out->data + out->len;
    memcpy(w, "HTTP/1.1 ", 9);
    w[9] = (char)('0' + status / 100);
    w[10] = (char)('0' + status / 10 % 10);
    w[11] = (char)('0' + status % 10);
    w[12] = ' ';
    memcpy(w + 13, reason, rl);
    memcpy(w + 13 + rl, "\r\n", 3); /* with the NUL buf keeps past len */
    out->len += 15 + rl;
    return 0;
}

int http1_write_response_head(buf_t *out, int status, const char *reason, const http1_header_t *headers, uint32_t count,
                              const http1_head_opts_t *opts)
{
    size_t mark = out->len;
    if (write_status_line(out, status, reason) < 0 ||
        write_fields(out, headers, count, opts && opts->tunnel, opts && opts->trusted) < 0) {
        out->len = mark;
        return -1;
    }
    write_framing(out, opts);
    return 0;
}

size_t http1_chunk_header(char out[static 19], size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 15];
        len >>= 4;
    } while (len);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

void http1_write_chunk(buf_t *out, const void *data, size_t len)
{
    if (len == 0)
        return;
    char h[19];
    buf_append(out, h, http1_chunk_header(h, len));
    buf_append(out, data, len);
    buf_append(out, "\r\n", 2);
}

int http1_write_last_chunk(buf_t *out, const http1_header_t *trailers, uint32_t count)
{
    size_t mark = out->len;
    buf_append(out, "0\r\n", 3);
    if (write_fields(out, trailers, count, false, false) < 0) {
        out->len = mark;
        return -1;
    }
    buf_append(out, "\r\n", 2);
    return 0;
}

int http1_write_simple_response(buf_t *out, int status, const char *reason, const http1_header_t *headers,
                                uint32_t count, const char *content_type, const char *body, size_t body_len, bool close)
{
    size_t mark = out->len;
    if (write_status_line(out, status, reason) < 0 || write_fields(out, headers, count, false, false) < 0 ||
        (content_type && !value_ok(content_type, strlen(content_type)))) {
        out->len = mark;
        return -1;
    }
    if (body_len && content_type)
        buf_printf(out, "Content-Type: %s\r\n", content_type);
    /* RFC 9110 8.6: no Content-Length in 1xx and 204 */
    bool no_body = status / 100 == 1 || status == 204 || status == 304;
    http1_head_opts_t o = {no_body ? HTTP1_FRAME_NONE : HTTP1_FRAME_LENGTH, no_body ? 0 : body_len, close, false,
                           false};
    write_framing(out, &o);
    if (!no_body)
        buf_append(out, body, body_len);
    return 0;
}
