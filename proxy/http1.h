/*
 * http1: the proxy's HTTP/1.1 message codec (RFC 9112), one object per
 * connection direction.
 *
 * Parsing is done by llhttp (Node.js's parser, strict mode); this module adds
 * what a proxy needs on top of it: limits, request-smuggling checks, a header list,
 * connection semantics, and a push API an event loop can drive.
 *
 * Push model. The loop hands every read to http1_parse(); the codec calls
 * back with events in stream order: on_head (start line + header list),
 * on_body (zero or more slices of the caller's input: bodies are streamed,
 * never buffered, and chunk framing is already removed), on_trailers
 * (chunked only), on_complete. Several pipelined messages in one read are
 * reported in order. on_head and on_complete may return HTTP1_CB_PAUSE:
 * http1_parse then stops right after that event and says how many bytes it
 * consumed; the caller keeps the rest and feeds it again after
 * http1_parser_resume(). This is how the proxy answers pipelined requests in
 * order (pause in on_complete) and holds a request while it picks an
 * upstream (pause in on_head). on_body cannot pause (the parser reports
 * a body slice by slice, not where it ends): for back-pressure the loop stops
 * reading and writes the slices it was given.
 *
 * Memory. Start line and header fields are copied into a header buffer the
 * parser owns (bounded by max_header_bytes), because the caller's read
 * buffer is reused between reads; the slices in http1_head_t stay valid
 * until the message's on_complete returns (or the parser is reset or
 * destroyed). Body slices point into the input of the current
 * http1_parse() call and are valid only during the callback.
 *
 * Head checks (done before on_head, before any body byte is reported).
 * Errors carry the status a server should answer with and a reason; a
 * response parser reports 502 for everything (the peer is the upstream).
 *   431  head larger than max_header_bytes (start line + fields + CRLFs)
 *   431  more than max_headers fields (Envoy also answers 431 here)
 *   414  request-target longer than max_uri_bytes
 *   505  HTTP major version other than 1
 *   400  malformed syntax (llhttp strict mode), bare LF or bare CR in
 *        the head, obs-fold continuation lines, whitespace before the colon,
 *        invalid characters in a field name, empty field name
 *   400  smuggling shapes: Content-Length with Transfer-Encoding; more than
 *        one Content-Length (even equal ones: llhttp refuses them);
 *        Transfer-Encoding other than exactly one final `chunked` (e.g.
 *        `chunked, identity`, `xchunked`, `gzip, chunked`, two TE fields);
 *        Transfer-Encoding in an HTTP/1.0 message
 *   400  HTTP/1.1 request without Host or with several Host fields
 *   400  control characters (other than HTAB) in a field value
 *   502  (responses) status code outside 100..599
 * A Content-Length above limits.max_body_bytes is not an error (bodies
 * stream); it is reported in http1_head_t.body_over_limit.
 *
 * After an error the parser is dead: every later http1_parse() returns
 * HTTP1_ERROR. After HTTP1_UPGRADED the bytes past *consumed belong to the
 * tunnel; if the upstream refuses the upgrade, http1_parser_reset() lets the
 * connection go on as HTTP/1.1 with those bytes.
 *
 * Writing (http1_write_*): heads are serialised from a header list with the
 * hop-by-hop fields removed (Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade unless tunnelling, every field named in
 * Connection) and with the framing the proxy chose (Content-Length or
 * chunked) added; Content-Length of the input list is dropped as well, as it
 * is framing.
 */
#ifndef OUTRIDER_PROXY_HTTP1_H
#define OUTRIDER_PROXY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "span.h" /* str_t */

/* Method numbers are llhttp's (and http-parser's before it) enum llhttp_method (HTTP_GET, HTTP_HEAD...). */
#define HTTP1_METHOD_DELETE 0
#define HTTP1_METHOD_GET 1
#define HTTP1_METHOD_HEAD 2
#define HTTP1_METHOD_POST 3
#define HTTP1_METHOD_PUT 4
#define HTTP1_METHOD_CONNECT 5
#define HTTP1_METHOD_OPTIONS 6

typedef struct http1_limits {
    uint32_t max_header_bytes; /* bytes of the whole head (start line, fields, CRLFs); 431 above */
    uint32_t max_headers;      /* fields per head, and per trailer section; 431 above */
    uint32_t max_uri_bytes;    /* bytes of the request-target; 414 above */
    uint64_t max_body_bytes;   /* Content-Length above this sets body_over_limit; 0 = no limit */
} http1_limits_t;

/* Envoy's defaults: 60 KiB of head, 100 fields; 8 KiB request-target; no body limit. */
#define HTTP1_LIMITS_DEFAULT ((http1_limits_t){60 * 1024, 100, 8 * 1024, 0})

typedef struct http1_header {
    str_t name;  /* as received (case kept); compare with http1_name_eq */
    str_t value; /* leading and trailing whitespace removed */
} http1_header_t;

enum http1_kind {
    HTTP1_REQUEST,  /* server side: parses requests from a client */
    HTTP1_RESPONSE, /* client side: parses responses from an upstream */
};

enum http1_body {
    HTTP1_BODY_NONE,        /* no body follows (GET without length, HEAD/1xx/204/304 responses) */
    HTTP1_BODY_LENGTH,      /* content_length bytes follow (> 0) */
    HTTP1_BODY_CHUNKED,     /* chunked; on_body gets the data without framing */
    HTTP1_BODY_UNTIL_CLOSE, /* responses only: body ends at EOF (http1_finish) */
};

typedef struct http1_head {
    int method;        /* requests: enum llhttp_method; responses: the method set by http1_parser_set_method */
    str_t method_name; /* requests: static string ("GET") */
    str_t target;      /* requests: request-target as received */
    int status;        /* responses: status code */
    str_t reason;      /* responses: reason phrase (may be empty) */
    uint8_t version_major;
    uint8_t version_minor;
    const http1_header_t *headers; /* header_count entries, in order received */
    uint32_t header_count;
    enum http1_body body;
    uint64_t content_length; /* when body == HTTP1_BODY_LENGTH */
    bool body_over_limit;    /* Content-Length > limits.max_body_bytes (not an error) */
    bool keep_alive;         /* RFC 9112 9.3: the connection may carry another message after this one */
    bool expect_continue;    /* HTTP/1.1 request with Expect: 100-continue */
    bool upgrade;            /* Upgrade + Connection: upgrade (request), 101 (response), or CONNECT */
} http1_head_t;

/* What a callback returns. */
#define HTTP1_CB_OK 0
#define HTTP1_CB_PAUSE 1  /* on_head, on_complete: stop http1_parse right after this event (else same as OK) */
#define HTTP1_CB_ABORT -1 /* stop with an error (status 500 for requests, 502 for responses) */

/*
 * Event callbacks; any may be NULL. ctx is the pointer given at creation.
 * on_head: the head passed the checks above; *head is valid until the
 *   message completes. For a response parser, 1xx heads (other than 101)
 *   are followed by on_complete and then the next response's head.
 * on_body: a slice of the current input (valid during the call only).
 * on_trailers: the trailer fields of a chunked message (slices valid until
 *   on_complete returns), called before on_complete when there are any.
 * on_complete: the message ended; for an upgrade, right after on_head.
 */
typedef struct http1_callbacks {
    int (*on_head)(void *ctx, const http1_head_t *head);
    int (*on_body)(void *ctx, const char *data, size_t len);
    int (*on_trailers)(void *ctx, const http1_header_t *trailers, uint32_t count);
    int (*on_complete)(void *ctx);
} http1_callbacks_t;

/* http1_parse / http1_finish results. */
#define HTTP1_OK 0       /* all input consumed, ready for more */
#define HTTP1_PAUSED 1   /* a callback paused; *consumed bytes used; call http1_parser_resume() */
#define HTTP1_UPGRADED 2 /* head of an upgrade/CONNECT done; bytes after *consumed are the tunnel's */
#define HTTP1_ERROR (-1) /* see http1_parser_error_status / _reason; the connection must close */

typedef struct http1_parser http1_parser_t;

/*
 * Create a parser. limits NULL means HTTP1_LIMITS_DEFAULT; cb is copied.
 * The caller frees it with http1_parser_destroy. Aborts on out of memory
 * (fixed size; the header buffer grows later, bounded by the limits).
 */
http1_parser_t *http1_parser_create(enum http1_kind kind, const http1_limits_t *limits, const http1_callbacks_t *cb,
                                    void *ctx);

/* Free the parser and its header buffer; NULL is a no-op. */
void http1_parser_destroy(http1_parser_t *p);

/*
 * Feed len bytes. Returns HTTP1_OK, HTTP1_PAUSED, HTTP1_UPGRADED or
 * HTTP1_ERROR; *consumed (never NULL) is how many bytes were used (all of
 * them for HTTP1_OK). While paused, tunnelled or dead it consumes nothing
 * and returns HTTP1_PAUSED, HTTP1_UPGRADED or HTTP1_ERROR. Must not be
 * called from inside a callback.
 */
int http1_parse(http1_parser_t *p, const char *data, size_t len, size_t *consumed);

/*
 * The peer closed its side (EOF). Completes a response read until close
 * (on_complete is called) and returns HTTP1_OK; HTTP1_OK too between
 * messages; HTTP1_ERROR when the EOF cuts a message short.
 */
int http1_finish(http1_parser_t *p);

/* Leave the paused state; the next http1_parse continues where it stopped. */
void http1_parser_resume(http1_parser_t *p);

/*
 * Forget everything and wait for a new message: after an upgrade the
 * upstream refused, or to reuse a pooled parser for another connection.
 * Clears errors, pauses and the header buffer (its capacity is kept).
 */
void http1_parser_reset(http1_parser_t *p);

/*
 * Response parsers: the method of the request the next response answers
 * (HEAD responses have no body; 2xx to CONNECT is a tunnel). Call it when
 * the request is sent; it holds until a final (non-1xx) response completes,
 * after which it reverts to GET.
 */
void http1_parser_set_method(http1_parser_t *p, int method);

/* Whether a message has started (some of its bytes were seen) and not ended: for 408 vs idle timeouts. */
bool http1_parser_in_message(const http1_parser_t *p);

/* After HTTP1_ERROR: the status to answer (400, 414, 431, 505; 502 for response parsers; 500 on abort). */
int http1_parser_error_status(const http1_parser_t *p);

/* After HTTP1_ERROR: a short static reason ("header section too large"...); "" before any error. */
const char *http1_parser_error_reason(const http1_parser_t *p);

/* Whether n bytes at a and at b are equal, ignoring ASCII case. */
static inline bool http1_bytes_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x == y)
            continue;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

/* Whether a span equals lit (NUL-terminated), ignoring ASCII case. */
static inline bool http1_span_ieq(const char *a, size_t alen, const char *lit)
{
    /* inline, so that strlen of a literal folds to a constant: most comparisons end at the length */
    size_t n = __builtin_strlen(lit);
    return alen == n && http1_bytes_ieq(a, lit, n);
}

/* Whether a field name equals lit (NUL-terminated), ignoring ASCII case. */
static inline bool http1_name_eq(str_t name, const char *lit)
{
    return name.ptr != NULL && http1_span_ieq(name.ptr, name.len, lit);
}

/* The value of the first field called name, or NULL. */
static inline const http1_header_t *http1_header_find(const http1_header_t *headers, uint32_t count, const char *name)
{
    for (uint32_t i = 0; i < count; i++)
        if (http1_name_eq(headers[i].name, name))
            return &headers[i];
    return NULL;
}

/* Whether some Connection field of the list carries token (case-insensitive), e.g. "close". */
bool http1_connection_has(const http1_header_t *headers, uint32_t count, const char *token);

/* Standard reason phrase of a status ("Not Found"); "Unknown" when none. */
const char *http1_status_reason(int status);

/* Method name of an enum http_method number ("GET"); "<unknown>" when out of range. */
const char *http1_method_name(int method);

/* ---- writing ---- */

enum http1_framing {
    HTTP1_FRAME_NONE,    /* no body, no framing field (GET, 1xx, 204, 304, HEAD responses, tunnels) */
    HTTP1_FRAME_LENGTH,  /* Content-Length: content_length */
    HTTP1_FRAME_CHUNKED, /* Transfer-Encoding: chunked */
    HTTP1_FRAME_CLOSE,   /* responses: body until close, no framing field (adds Connection: close) */
};

typedef struct http1_head_opts {
    enum http1_framing framing;
    uint64_t content_length; /* for HTTP1_FRAME_LENGTH */
    bool close;              /* add Connection: close */
    bool tunnel;             /* keep Upgrade and add Connection: upgrade */
    bool trusted;            /* every field (and a request's method and target) was already checked (parsed by this
                                codec, or validated config and values the proxy made, http1_request_target_ok): skip
                                the per-byte name and value checks */
} http1_head_opts_t;

/*
 * Append "METHOD target HTTP/1.1\r\n", the headers without hop-by-hop
 * fields and Content-Length, then the framing of opts, then the empty line.
 * Returns 0, or -1 when a name is not a token or a value (or the target)
 * holds CR, LF or NUL; on -1 out is left as it was.
 */
int http1_write_request_head(buf_t *out, str_t method, str_t target, const http1_header_t *headers, uint32_t count,
                             const http1_head_opts_t *opts);

/* Whether target may go on a request line (what http1_write_request_head checks of it). */
bool http1_request_target_ok(str_t target);

/*
 * Whether v may be a field value as the parser takes one (RFC 9110 5.5: no
 * control character but HTAB, no DEL; bytes 0x80-0xFF pass). For values
 * that come from neither the parser nor the configuration (a JWT's claims)
 * before they join fields written as trusted.
 */
bool http1_field_value_ok(str_t v);

/* The same for "HTTP/1.1 status reason\r\n"; reason NULL or empty means the standard phrase. */
int http1_write_response_head(buf_t *out, int status, const char *reason, const http1_header_t *headers, uint32_t count,
                              const http1_head_opts_t *opts);

/* Append one chunk (hex size, CRLF, data, CRLF); len 0 appends nothing (0 would end the body). */
void http1_write_chunk(buf_t *out, const void *data, size_t len);

/*
 * Zero-copy chunking: write "hex-size\r\n" into out (at least 19 bytes) and
 * return its length; the caller sends out, the data, then "\r\n". len > 0.
 */
size_t http1_chunk_header(char out[static 19], size_t len);

/* Append the last chunk "0\r\n", the trailers (hop-by-hop filtered; may be NULL/0) and the final CRLF. */
int http1_write_last_chunk(buf_t *out, const http1_header_t *trailers, uint32_t count);

/*
 * A complete local reply (404, 408, 431, 503...): status line (standard
 * reason when reason is NULL), the extra headers (e.g. x-outrider-flags),
 * Content-Type when body is non-empty and content_type non-NULL,
 * Content-Length, Connection: close when close, then the body. Returns 0,
 * or -1 on an invalid header (out unchanged).
 */
int http1_write_simple_response(buf_t *out, int status, const char *reason, const http1_header_t *headers,
                                uint32_t count, const char *content_type, const char *body, size_t body_len,
                                bool close);

#endif
