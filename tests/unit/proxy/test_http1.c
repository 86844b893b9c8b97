/*
 * Unit tests for proxy/http1: requests and responses fed whole and byte by
 * byte, chunked bodies with extensions and trailers, pipelining with pauses,
 * HEAD/1xx/204/304, 100-continue, upgrades and CONNECT, every limit and
 * every request-smuggling shape with its status, keep-alive decisions,
 * reading until close, and the writers (hop-by-hop stripping, framing,
 * chunks, local replies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"

typedef struct rec {
    buf_t log;  /* one line per event */
    buf_t body; /* body bytes of all messages */
    int heads, completes, trailers;
    http1_head_t last; /* copy of the last head (slices invalid after completion) */
    bool pause_head, pause_complete;
    const char *lo, *hi; /* bounds of the current input */
} rec_t;

static void log_str(buf_t *b, str_t s)
{
    buf_append(b, s.ptr, s.len);
}

static int on_head(void *ctx, const http1_head_t *h)
{
    rec_t *r = ctx;
    r->heads++;
    r->last = *h;
    buf_append_str(&r->log, "H ");
    if (h->status) {
        buf_printf(&r->log, "%d ", h->status);
        log_str(&r->log, h->reason);
    } else {
        log_str(&r->log, h->method_name);
        buf_append_char(&r->log, ' ');
        log_str(&r->log, h->target);
    }
    buf_printf(&r->log, " %d.%d", h->version_major, h->version_minor);
    for (uint32_t i = 0; i < h->header_count; i++) {
        buf_append_char(&r->log, ' ');
        log_str(&r->log, h->headers[i].name);
        buf_append_char(&r->log, '=');
        log_str(&r->log, h->headers[i].value);
    }
    buf_append_char(&r->log, '\n');
    return r->pause_head ? HTTP1_CB_PAUSE : HTTP1_CB_OK;
}

static int on_body(void *ctx, const char *data, size_t len)
{
    rec_t *r = ctx;
    assert_true(len > 0);
    assert_true(data >= r->lo && data + len <= r->hi);
    buf_append(&r->body, data, len);
    return HTTP1_CB_OK;
}

static int on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    rec_t *r = ctx;
    r->trailers++;
    buf_append_str(&r->log, "T");
    for (uint32_t i = 0; i < n; i++) {
        buf_append_char(&r->log, ' ');
        log_str(&r->log, t[i].name);
        buf_append_char(&r->log, '=');
        log_str(&r->log, t[i].value);
    }
    buf_append_char(&r->log, '\n');
    return HTTP1_CB_OK;
}

static int on_complete(void *ctx)
{
    rec_t *r = ctx;
    r->completes++;
    buf_append_str(&r->log, "C\n");
    return r->pause_complete ? HTTP1_CB_PAUSE : HTTP1_CB_OK;
}

static const http1_callbacks_t cbs = {on_head, on_body, on_trailers, on_complete};

static void rec_dispose(rec_t *r)
{
    buf_dispose(&r->log);
    buf_dispose(&r->body);
}

static const char *logs(rec_t *r)
{
    return r->log.len ? r->log.data : "";
}

/*
 * Feed s in pieces of `piece` bytes (0 = whole), copying each piece into its
 * own heap buffer so ASan catches reads outside it. PAUSED is resumed at
 * once. Returns the last result; *upgraded_at gets the offset of the tunnel
 * bytes on HTTP1_UPGRADED.
 */
static int feed_ex(http1_parser_t *p, rec_t *r, const char *s, size_t len, size_t piece, size_t *upgraded_at)
{
    size_t off = 0;
    if (piece == 0)
        piece = len ? len : 1;
    int res = HTTP1_OK;
    while (off < len) {
        size_t n = len - off < piece ? len - off : piece;
        char *copy = malloc(n);
        memcpy(copy, s + off, n);
        size_t done = 0;
        while (done < n) {
            size_t c = 0;
            r->lo = copy + done;
            r->hi = copy + n;
            res = http1_parse(p, copy + done, n - done, &c);
            assert_true(c <= n - done);
            done += c;
            if (res == HTTP1_PAUSED) {
                http1_parser_resume(p);
                res = HTTP1_OK;
                continue;
            }
            if (res == HTTP1_OK)
                assert_int_equal(done, n);
            if (res == HTTP1_UPGRADED && upgraded_at)
                *upgraded_at = off + done;
            if (res != HTTP1_OK)
                break;
        }
        free(copy);
        if (res == HTTP1_ERROR || res == HTTP1_UPGRADED)
            return res;
        off += n;
    }
    return res;
}

static int feed(http1_parser_t *p, rec_t *r, const char *s, size_t piece)
{
    return feed_ex(p, r, s, strlen(s), piece, NULL);
}

/* Parse one request alone, expect an error with this status; returns the
 * reason. */
static const char *req_error(const char *s, const http1_limits_t *lim, int status)
{
    static char reason[128];
    for (size_t piece = 0; piece <= 1; piece++) {
        rec_t r = {0};
        http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, lim, &cbs, &r);
        int res = feed_ex(p, &r, s, strlen(s), piece, NULL);
        if (res != HTTP1_ERROR)
            fail_msg("expected an error for %s (piece %zu), log: %s", s, piece, logs(&r));
        assert_int_equal(http1_parser_error_status(p), status);
        assert_int_equal(r.heads, 0);
        assert_int_equal(r.body.len, 0);
        snprintf(reason, sizeof reason, "%s", http1_parser_error_reason(p));
        size_t c = 99;
        assert_int_equal(http1_parse(p, "GET / HTTP/1.1\r\n\r\n", 18, &c), HTTP1_ERROR);
        assert_int_equal(c, 0);
        http1_parser_destroy(p);
        rec_dispose(&r);
    }
    return reason;
}

/* ---- requests ---- */

static void test_simple_get(void **state)
{
    (void)state;
    for (size_t piece = 0; piece <= 1; piece++) {
        rec_t r = {0};
        http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
        assert_false(http1_parser_in_message(p));
        assert_int_equal(feed(p, &r,
                              "GET /a/b?c=d HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent:  "
                              "curl/8 \r\nX-Empty:\r\n\r\n",
                              piece),
                         HTTP1_OK);
        assert_string_equal(logs(&r), "H GET /a/b?c=d 1.1 Host=reviews:9080 User-Agent=curl/8 X-Empty=\nC\n");
        assert_int_equal(r.last.method, HTTP1_METHOD_GET);
        assert_int_equal(r.last.body, HTTP1_BODY_NONE);
        assert_true(r.last.keep_alive);
        assert_false(r.last.expect_continue);
        assert_false(r.last.upgrade);
        assert_false(http1_parser_in_message(p));
        assert_int_equal(http1_finish(p), HTTP1_OK);
        http1_parser_destroy(p);
        rec_dispose(&r);
    }
}

static void test_head_slices_valid_until_complete(void **state)
{
    (void)state;
    /* the head stays readable in on_complete even though the input buffers are
     * gone */
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    const char *s = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    assert_int_equal(feed(p, &r, s, 1), HTTP1_OK);
    assert_true(http1_parser_in_message(p));
    assert_int_equal(r.last.header_count, 2);
    assert_true(http1_name_eq(r.last.headers[1].name, "CONTENT-LENGTH"));
    assert_memory_equal(r.last.target.ptr, "/upload", 7);
    assert_int_equal(feed(p, &r, "abc", 1), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_post_content_length_bytewise(void **state)
{
    (void)state;
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    const char *s = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
    assert_int_equal(feed(p, &r, s, 1), HTTP1_OK);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.last.body, HTTP1_BODY_LENGTH);
    assert_int_equal(r.last.content_length, 11);
    assert_false(r.last.body_over_limit);
    assert_int_equal(r.body.len, 11);
    assert_memory_equal(r.body.data, "hello world", 11);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_chunked_extensions_trailers(void **state)
{
    (void)state;
    const char *s = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5;name=value\r\nhello\r\n"
                    "6;x\r\n world\r\n"
                    "0;last=1\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
    for (size_t piece = 0; piece <= 7; piece += 1) {
        rec_t r = {0};
        http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
        assert_int_equal(feed(p, &r, s, piece), HTTP1_OK);
        assert_int_equal(r.last.body, HTTP1_BODY_CHUNKED);
        assert_int_equal(r.body.len, 11);
        assert_memory_equal(r.body.data, "hello world", 11);
        assert_string_equal(logs(&r), "H POST /c 1.1 Host=h Transfer-Encoding=chunked\n"
                                      "T X-Checksum=abc X-Other=1\nC\n");
        http1_parser_destroy(p);
        rec_dispose(&r);
    }
    /* whitespace between the chunk size and its extension is refused (as Node.js does: a size
     * some peers read differently is a smuggling shape), not taken as RFC 9112's BWS */
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    assert_int_equal(feed(p, &r,
                          "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "6 ;x\r\n world\r\n0\r\n\r\n",
                          0),
                     HTTP1_ERROR);
    assert_int_equal(http1_parser_error_status(p), 400);
    assert_non_null(strstr(http1_parser_error_reason(p), "chunk size"));
    assert_int_equal(r.body.len, 0);
    assert_int_equal(r.completes, 0);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_chunked_no_trailers_then_next(void **state)
{
    (void)state;
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(feed(p, &r, s, 0), HTTP1_OK);
    assert_int_equal(r.trailers, 0);
    assert_int_equal(r.completes, 2);
    assert_non_null(strstr(logs(&r), "H GET /next"));
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_pipelined_with_pause(void **state)
{
    (void)state;
    const char *s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                    "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"
                    "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
                    "GET /4 HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(s);
    rec_t r = {0};
    r.pause_complete = true;
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    size_t off = 0, c;
    const char *ends[] = {"\r\n\r\n", "body", "0\r\n\r\n", "\r\n\r\n"};
    const char *targets[] = {"/1", "/2", "/3", "/4"};
    for (int i = 0; i < 4; i++) {
        r.lo = s + off;
        r.hi = s + len;
        int res = http1_parse(p, s + off, len - off, &c);
        assert_int_equal(res, HTTP1_PAUSED);
        off += c;
        assert_int_equal(r.completes, i + 1);
        /* the message ends exactly where its own terminator ends */
        size_t el = strlen(ends[i]);
        assert_memory_equal(s + off - el, ends[i], el);
        assert_memory_equal(r.last.target.ptr, targets[i], 2);
        /* while paused nothing is consumed */
        assert_int_equal(http1_parse(p, s + off, len - off, &c), HTTP1_PAUSED);
        assert_int_equal(c, 0);
        http1_parser_resume(p);
    }
    assert_int_equal(off, len);
    assert_memory_equal(r.body.data, "bodyhi", 6);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_pause_on_head(void **state)
{
    (void)state;
    /* pause after the head (e.g. to pick an upstream), then resume with what was
     * left */
    const char *s = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: "
                    "5\r\n\r\nhelloGET /y HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(s), off = 0, c;
    rec_t r = {0};
    r.pause_head = true;
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    r.lo = s;
    r.hi = s + len;
    assert_int_equal(http1_parse(p, s, len, &c), HTTP1_PAUSED);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.body.len, 0);
    off += c;
    http1_parser_resume(p);
    assert_int_equal(http1_parse(p, s + off, len - off, &c), HTTP1_PAUSED);
    off += c;
    assert_int_equal(r.heads, 2);
    assert_int_equal(r.completes, 1);
    assert_memory_equal(r.body.data, "hello", 5);
    http1_parser_resume(p);
    assert_int_equal(http1_parse(p, s + off, len - off, &c), HTTP1_OK);
    assert_int_equal(off + c, len);
    assert_int_equal(r.completes, 2);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_expect_continue(void **state)
{
    (void)state;
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    assert_int_equal(feed(p, &r,
                          "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: "
                          "100-Continue\r\nContent-Length: 2\r\n\r\n",
                          0),
                     HTTP1_OK);
    assert_true(r.last.expect_continue);
    assert_int_equal(r.completes, 0);
    assert_int_equal(feed(p, &r, "ok", 0), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    /* ignored in HTTP/1.0 (RFC 9110 10.1.1) */
    assert_int_equal(feed(p, &r, "PUT /f HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0), HTTP1_OK);
    assert_false(r.last.expect_continue);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_upgrade_websocket(void **state)
{
    (void)state;
    const char *s = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, "
                    "Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    "\x81\x05hello";
    size_t len = strlen(s), head_len = strstr(s, "\r\n\r\n") + 4 - s;
    for (size_t piece = 0; piece <= 1; piece++) {
        rec_t r = {0};
        http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
        size_t at = 0;
        assert_int_equal(feed_ex(p, &r, s, len, piece, &at), HTTP1_UPGRADED);
        assert_int_equal(at, head_len);
        assert_true(r.last.upgrade);
        assert_int_equal(r.completes, 1);
        assert_int_equal(r.body.len, 0);
        size_t c = 9;
        assert_int_equal(http1_parse(p, s + at, len - at, &c), HTTP1_UPGRADED);
        assert_int_equal(c, 0);
        assert_int_equal(http1_finish(p), HTTP1_OK);
        /* the upstream refused: go on as HTTP/1.1 */
        http1_parser_reset(p);
        assert_int_equal(feed(p, &r, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n", 0), HTTP1_OK);
        assert_int_equal(r.completes, 2);
        assert_false(r.last.upgrade);
        http1_parser_destroy(p);
        rec_dispose(&r);
    }
}

static void test_upgrade_needs_connection_token(void **state)
{
    (void)state;
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    assert_int_equal(feed(p, &r, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", 0), HTTP1_OK);
    assert_false(r.last.upgrade);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_connect(void **state)
{
    (void)state;
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    const char *s = "CONNECT reviews:443 HTTP/1.1\r\nHost: reviews:443\r\n\r\nTLS";
    size_t at = 0;
    assert_int_equal(feed_ex(p, &r, s, strlen(s), 0, &at), HTTP1_UPGRADED);
    assert_int_equal(r.last.method, HTTP1_METHOD_CONNECT);
    assert_true(r.last.upgrade);
    assert_int_equal(strlen(s) - at, 3);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_keep_alive(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        bool ka;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rec_t r = {0};
        http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
        assert_int_equal(feed(p, &r, cases[i].req, 0), HTTP1_OK);
        if (r.last.keep_alive != cases[i].ka)
            fail_msg("keep-alive of %s", cases[i].req);
        http1_parser_destroy(p);
        rec_dispose(&r);
    }
}

/* ---- limits ---- */

static void test_limits(void **state)
{
    (void)state;
    http1_limits_t lim = {256, 4, 32, 1000};
    char big[1024];

    /* header bytes: exactly at the limit passes, one more is 431 */
    const char *head = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    size_t fill = 256 - strlen(head) - 4;
    snprintf(big, sizeof big, "%s%.*s\r\n\r\n", head, (int)fill,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(strlen(big), 256);
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, &lim, &cbs, &r);
    assert_int_equal(feed(p, &r, big, 0), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    http1_parser_destroy(p);
    rec_dispose(&r);
    snprintf(big, sizeof big, "%s%.*s\r\n\r\n", head, (int)fill + 1,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(req_error(big, &lim, 431), "header section too large");

    /* an endless head without its empty line stops at the limit too */
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX-Long: ", 24);
    big[sizeof big - 1] = 0;
    req_error(big, &lim, 431);
    /* and so do endless empty lines before the request-line */
    for (size_t i = 0; i + 1 < sizeof big; i += 2)
        memcpy(big + i, "\r\n", 2);
    big[sizeof big - 2] = 0;
    req_error(big, &lim, 431);

    /* header count: 4 passes, 5 is 431 */
    r = (rec_t){0};
    p = http1_parser_create(HTTP1_REQUEST, &lim, &cbs, &r);
    assert_int_equal(feed(p, &r, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0), HTTP1_OK);
    http1_parser_destroy(p);
    rec_dispose(&r);
    assert_string_equal(req_error("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &lim, 431),
                        "too many header fields");

    /* URI: 32 passes, 33 is 414, and a URI longer than the whole head limit is
     * still 414 */
    r = (rec_t){0};
    p = http1_parser_create(HTTP1_REQUEST, &lim, &cbs, &r);
    assert_int_equal(feed(p, &r, "GET /2345678901234567890123456789012 HTTP/1.1\r\nHost: h\r\n\r\n", 1), HTTP1_OK);
    http1_parser_destroy(p);
    rec_dispose(&r);
    assert_string_equal(req_error("GET /23456789012345678901234567890123 HTTP/1.1\r\nHost: h\r\n\r\n", &lim, 414),
                        "request-target too long");
    memset(big, 'u', sizeof big);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = 0;
    req_error(big, &lim, 414);

    /* a large Content-Length is not an error, only reported */
    r = (rec_t){0};
    p = http1_parser_create(HTTP1_REQUEST, &lim, &cbs, &r);
    assert_int_equal(feed(p, &r, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\nabc", 0), HTTP1_OK);
    assert_true(r.last.body_over_limit);
    assert_int_equal(r.last.content_length, 1001);
    assert_int_equal(r.body.len, 3);
    assert_true(http1_parser_in_message(p));
    /* EOF in the middle of the body */
    assert_int_equal(http1_finish(p), HTTP1_ERROR);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_default_limits(void **state)
{
    (void)state;
    http1_limits_t d = HTTP1_LIMITS_DEFAULT;
    assert_int_equal(d.max_header_bytes, 60 * 1024);
    assert_int_equal(d.max_headers, 100);
    assert_int_equal(d.max_uri_bytes, 8 * 1024);
    /* 101 headers with the defaults */
    buf_t b = BUF_INIT;
    buf_append_str(&b, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 100; i++)
        buf_printf(&b, "X-%d: v\r\n", i);
    buf_append_str(&b, "\r\n");
    req_error(b.data, NULL, 431);
    buf_dispose(&b);
    /* a 9000-byte URI */
    buf_append_str(&b, "GET /");
    for (int i = 0; i < 9000; i++)
        buf_append_char(&b, 'a');
    buf_append_str(&b, " HTTP/1.1\r\nHost: h\r\n\r\n");
    req_error(b.data, NULL, 414);
    buf_dispose(&b);
    /* 70 KiB of headers */
    buf_append_str(&b, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 70; i++) {
        buf_printf(&b, "X-%d: ", i);
        for (int j = 0; j < 1020; j++)
            buf_append_char(&b, 'v');
        buf_append_str(&b, "\r\n");
    }
    buf_append_str(&b, "\r\n");
    req_error(b.data, NULL, 431);
    buf_dispose(&b);
}

/* ---- smuggling and syntax ---- */

static void test_smuggling(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: "
         "6\r\n\r\nhello!",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: "
         "5\r\n\r\nhello",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
         "99999999999999999999999\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
         "identity\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "xchunked\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "chunkedx\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
         "chunked\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, "
         "chunked\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: "
         "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX\x01Y: 1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX(Y): 1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: \x7f\r\n\r\n", 400},
        {"GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\n\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", 400},
        {"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400},
        {"GET / FOO/1.1\r\nHost: h\r\n\r\n", 400},
        {"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "chunked\r\n\r\n3\r\nabcX\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX "
         ": 1\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\nX: 1\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\nX: 1\r\n y\r\n\r\n",
         400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rec_t r = {0};
        http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
        int res = feed(p, &r, cases[i].req, 0);
        if (res != HTTP1_ERROR || http1_parser_error_status(p) != cases[i].status)
            fail_msg("case %zu: %s: result %d status %d, log %s", i, cases[i].req, res, http1_parser_error_status(p),
                     logs(&r));
        assert_int_equal(r.completes, 0);
        assert_true(strlen(http1_parser_error_reason(p)) > 0);
        http1_parser_destroy(p);
        rec_dispose(&r);
        /* the same, byte by byte */
        r = (rec_t){0};
        p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
        res = feed(p, &r, cases[i].req, 1);
        if (res != HTTP1_ERROR || http1_parser_error_status(p) != cases[i].status)
            fail_msg("bytewise case %zu: %s", i, cases[i].req);
        http1_parser_destroy(p);
        rec_dispose(&r);
    }
    /* reasons name the problem */
    assert_string_equal(req_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", NULL, 400),
                        "obsolete line folding in the header section");
    assert_string_equal(req_error("GET / HTTP/1.1\r\nHost : h\r\n\r\n", NULL, 400),
                        "whitespace before the colon of a header field");
    assert_string_equal(req_error("GET / HTTP/1.1\nHost: h\r\n\r\n", NULL, 400), "bare LF in the header section");
    assert_string_equal(req_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", NULL, 400),
                        "Transfer-Encoding in an HTTP/1.0 message");
    assert_string_equal(req_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
                                  "identity\r\n\r\n",
                                  NULL, 400),
                        "Transfer-Encoding other than a single final chunked");
}

static void test_nul_in_value(void **state)
{
    (void)state;
    static const char s[] = "HTTP/1.1 200 OK\r\nConnection: \0:500\r\n\r\n";
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_RESPONSE, NULL, &cbs, &r);
    assert_int_equal(feed_ex(p, &r, s, sizeof s - 1, 0, NULL), HTTP1_ERROR);
    assert_int_equal(http1_parser_error_status(p), 502);
    assert_int_equal(r.heads, 0);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

/*
 * Every byte inside a field name, and inside a value, of a request head, a
 * response head and a trailer section: a name takes exactly the token
 * characters and a value everything but the CTLs other than HTAB (RFC 9110
 * 5.1, 5.5). The codec looks only for blanks and empty names itself and
 * relies on llhttp for the rest of a name, so this pins llhttp's behaviour.
 */
static bool tchar_ref(int b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
           (b != 0 && strchr("!#$%&'*+-.^_`|~", b) != NULL);
}

static void test_field_bytes(void **state)
{
    (void)state;
    static const struct {
        enum http1_kind kind;
        const char *pre, *post;
        bool name; /* the byte goes into a name, else into a value */
    } shapes[] = {
        {HTTP1_REQUEST, "GET / HTTP/1.1\r\nHost: h\r\nX-A", "b: v\r\n\r\n", true},
        {HTTP1_REQUEST, "GET / HTTP/1.1\r\nHost: h\r\nX-A: a", "b\r\n\r\n", false},
        {HTTP1_RESPONSE, "HTTP/1.1 200 OK\r\nX-", "A: v\r\nContent-Length: 0\r\n\r\n", true},
        {HTTP1_RESPONSE, "HTTP/1.1 200 OK\r\nX-A: a", "b\r\nContent-Length: 0\r\n\r\n", false},
        {HTTP1_REQUEST, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-", "T: 1\r\n\r\n",
         true},
        {HTTP1_REQUEST, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 12345678a",
         "b\r\n\r\n", false},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int b = 0; b < 256; b++) {
            if (b == '\r' || b == '\n' || (shapes[s].name && b == ':'))
                continue; /* these end the name or the line: other shapes, tested elsewhere */
            char msg[256];
            size_t a = strlen(shapes[s].pre), z = strlen(shapes[s].post);
            memcpy(msg, shapes[s].pre, a);
            msg[a] = (char)b;
            memcpy(msg + a + 1, shapes[s].post, z);
            bool want = shapes[s].name ? tchar_ref(b) : ((b >= 0x20 && b != 0x7f) || b == '\t');
            rec_t r = {0};
            http1_parser_t *p = http1_parser_create(shapes[s].kind, NULL, &cbs, &r);
            int res = feed_ex(p, &r, msg, a + 1 + z, 0, NULL);
            if ((res != HTTP1_ERROR) != want || (want && r.completes != 1))
                fail_msg("shape %zu, byte 0x%02x: result %d, %s expected; log %s", s, b, res,
                         want ? "accepted" : "refused", logs(&r));
            http1_parser_destroy(p);
            rec_dispose(&r);
        }
    }
}

static void test_leading_empty_lines(void **state)
{
    (void)state;
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    assert_int_equal(feed(p, &r, "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n", 1), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    assert_false(http1_parser_in_message(p));
    http1_parser_destroy(p);
    rec_dispose(&r);
}

/* ---- responses ---- */

static http1_parser_t *resp(rec_t *r)
{
    *r = (rec_t){0};
    return http1_parser_create(HTTP1_RESPONSE, NULL, &cbs, r);
}

static void test_response_content_length(void **state)
{
    (void)state;
    rec_t r;
    http1_parser_t *p = resp(&r);
    assert_int_equal(feed(p, &r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello", 1), HTTP1_OK);
    assert_string_equal(logs(&r), "H 200 OK 1.1 Content-Length=5 Server=x\nC\n");
    assert_int_equal(r.last.status, 200);
    assert_true(r.last.keep_alive);
    assert_memory_equal(r.body.data, "hello", 5);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_response_until_close(void **state)
{
    (void)state;
    rec_t r;
    http1_parser_t *p = resp(&r);
    assert_int_equal(feed(p, &r, "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nsome body", 1), HTTP1_OK);
    assert_int_equal(r.last.body, HTTP1_BODY_UNTIL_CLOSE);
    assert_false(r.last.keep_alive);
    assert_int_equal(r.completes, 0);
    assert_int_equal(feed(p, &r, " and more", 0), HTTP1_OK);
    assert_int_equal(http1_finish(p), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.body.len, 18);
    assert_memory_equal(r.body.data, "some body and more", 18);
    http1_parser_destroy(p);
    rec_dispose(&r);

    /* HTTP/1.0 without length either */
    p = resp(&r);
    assert_int_equal(feed(p, &r, "HTTP/1.0 200 OK\r\n\r\nx", 0), HTTP1_OK);
    assert_int_equal(http1_finish(p), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    http1_parser_destroy(p);
    rec_dispose(&r);

    /* EOF cuts a content-length body short: 502 */
    p = resp(&r);
    assert_int_equal(feed(p, &r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0), HTTP1_OK);
    assert_int_equal(http1_finish(p), HTTP1_ERROR);
    assert_int_equal(http1_parser_error_status(p), 502);
    assert_int_equal(r.completes, 0);
    http1_parser_destroy(p);
    rec_dispose(&r);

    /* EOF in the head */
    p = resp(&r);
    assert_int_equal(feed(p, &r, "HTTP/1.1 200 OK\r\nConte", 0), HTTP1_OK);
    assert_true(http1_parser_in_message(p));
    assert_int_equal(http1_finish(p), HTTP1_ERROR);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_response_head_method(void **state)
{
    (void)state;
    rec_t r;
    http1_parser_t *p = resp(&r);
    http1_parser_set_method(p, HTTP1_METHOD_HEAD);
    assert_int_equal(feed(p, &r, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", 0), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.last.body, HTTP1_BODY_NONE);
    assert_int_equal(r.last.method, HTTP1_METHOD_HEAD);
    assert_true(r.last.keep_alive);
    /* the method reverts to GET after a final response */
    assert_int_equal(feed(p, &r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0), HTTP1_OK);
    assert_int_equal(r.completes, 2);
    assert_memory_equal(r.body.data, "ok", 2);
    /* HEAD with chunked */
    http1_parser_set_method(p, HTTP1_METHOD_HEAD);
    assert_int_equal(feed(p, &r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0), HTTP1_OK);
    assert_int_equal(r.completes, 3);
    assert_int_equal(r.body.len, 2);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_response_no_body_statuses(void **state)
{
    (void)state;
    rec_t r;
    http1_parser_t *p = resp(&r);
    const char *s = "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
                    "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    assert_int_equal(feed(p, &r, s, 0), HTTP1_OK);
    assert_int_equal(r.completes, 3);
    assert_int_equal(r.body.len, 3);
    assert_string_equal(logs(&r), "H 204 No Content 1.1 Content-Length=10\nC\n"
                                  "H 304 Not Modified 1.1 Content-Length=1234 ETag=\"x\"\nC\n"
                                  "H 200 OK 1.1 Content-Length=3\nC\n");
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_response_100_continue(void **state)
{
    (void)state;
    rec_t r;
    http1_parser_t *p = resp(&r);
    http1_parser_set_method(p, HTTP1_METHOD_HEAD);
    const char *s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 "
                    "OK\r\nContent-Length: 2\r\n\r\n";
    assert_int_equal(feed(p, &r, s, 1), HTTP1_OK);
    /* the interim response keeps the method: the final one answers HEAD */
    assert_string_equal(logs(&r), "H 100 Continue 1.1\nC\nH 200 OK 1.1 Content-Length=2\nC\n");
    assert_int_equal(r.body.len, 0);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_response_101_and_connect(void **state)
{
    (void)state;
    rec_t r;
    http1_parser_t *p = resp(&r);
    const char *s = "HTTP/1.1 101 Switching Protocols\r\nConnection: "
                    "Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00";
    size_t at = 0;
    assert_int_equal(feed_ex(p, &r, s, strlen(s) + 1, 0, &at), HTTP1_UPGRADED);
    assert_int_equal(strlen(s) + 1 - at, 2);
    assert_true(r.last.upgrade);
    http1_parser_destroy(p);
    rec_dispose(&r);

    p = resp(&r);
    http1_parser_set_method(p, HTTP1_METHOD_CONNECT);
    s = "HTTP/1.1 200 Connection established\r\n\r\nTLS";
    assert_int_equal(feed_ex(p, &r, s, strlen(s), 0, &at), HTTP1_UPGRADED);
    assert_int_equal(strlen(s) - at, 3);
    assert_true(r.last.upgrade);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_response_errors(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "FOO\r\n\r\n",
        "HTTP/1.1 1 X\r\n\r\n",
        "HTTP/1.1 600 X\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: \x01\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rec_t r;
        http1_parser_t *p = resp(&r);
        if (feed(p, &r, cases[i], 0) != HTTP1_ERROR || http1_parser_error_status(p) != 502)
            fail_msg("response case %zu: %s", i, cases[i]);
        http1_parser_destroy(p);
        rec_dispose(&r);
    }
}

static void test_response_chunked_pipelined(void **state)
{
    (void)state;
    rec_t r;
    http1_parser_t *p = resp(&r);
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: "
                    "close\r\n\r\n";
    assert_int_equal(feed(p, &r, s, 3), HTTP1_OK);
    assert_int_equal(r.completes, 2);
    assert_memory_equal(r.body.data, "Wikipedia", 9);
    assert_false(r.last.keep_alive);
    assert_int_equal(r.last.status, 404);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static int abort_head(void *ctx, const http1_head_t *h)
{
    (void)ctx;
    (void)h;
    return HTTP1_CB_ABORT;
}

static void test_callback_abort(void **state)
{
    (void)state;
    http1_callbacks_t cb = {abort_head, NULL, NULL, NULL};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cb, NULL);
    size_t c;
    assert_int_equal(http1_parse(p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, &c), HTTP1_ERROR);
    assert_int_equal(http1_parser_error_status(p), 500);
    http1_parser_reset(p);
    assert_int_equal(http1_parser_error_status(p), 0);
    http1_parser_destroy(p);
    http1_parser_destroy(NULL);
}

/* ---- writing ---- */

static const char *bufs(buf_t *b)
{
    return b->len ? b->data : "";
}

static void test_write_request_head_strips_hop_by_hop(void **state)
{
    (void)state;
    http1_header_t h[] = {
        {STR_LIT("Host"), STR_LIT("reviews")},
        {STR_LIT("Connection"), STR_LIT("keep-alive, X-Secret, close")},
        {STR_LIT("X-Secret"), STR_LIT("1")},
        {STR_LIT("x-secret"), STR_LIT("2")},
        {STR_LIT("Keep-Alive"), STR_LIT("timeout=5")},
        {STR_LIT("Proxy-Connection"), STR_LIT("keep-alive")},
        {STR_LIT("TE"), STR_LIT("trailers")},
        {STR_LIT("Trailer"), STR_LIT("X-Checksum")},
        {STR_LIT("Transfer-Encoding"), STR_LIT("chunked")},
        {STR_LIT("Content-Length"), STR_LIT("12")},
        {STR_LIT("Upgrade"), STR_LIT("websocket")},
        {STR_LIT("Accept"), STR_LIT("*/*")},
        {STR_LIT("connection"), STR_LIT("X-Other")},
        {STR_LIT("X-Other"), STR_LIT("o")},
    };
    uint32_t n = sizeof(h) / sizeof(h[0]);
    buf_t b = BUF_INIT;
    http1_head_opts_t o = {HTTP1_FRAME_CHUNKED, 0, false, false, false};
    assert_int_equal(http1_write_request_head(&b, STR_LIT("POST"), STR_LIT("/x?y=1"), h, n, &o), 0);
    assert_string_equal(bufs(&b), "POST /x?y=1 HTTP/1.1\r\nHost: reviews\r\nAccept: */*\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n");
    b.len = 0;
    o = (http1_head_opts_t){HTTP1_FRAME_LENGTH, 12, true, false, false};
    assert_int_equal(http1_write_request_head(&b, STR_LIT("PUT"), STR_LIT("/"), h, n, &o), 0);
    assert_string_equal(bufs(&b), "PUT / HTTP/1.1\r\nHost: reviews\r\nAccept: */*\r\n"
                                  "Content-Length: 12\r\nConnection: close\r\n\r\n");
    b.len = 0;
    o = (http1_head_opts_t){HTTP1_FRAME_NONE, 0, false, true, false};
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/ws"), h, n, &o), 0);
    assert_string_equal(bufs(&b), "GET /ws HTTP/1.1\r\nHost: reviews\r\nUpgrade: "
                                  "websocket\r\nAccept: */*\r\n"
                                  "Connection: upgrade\r\n\r\n");
    b.len = 0;
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/"), NULL, 0, NULL), 0);
    assert_string_equal(bufs(&b), "GET / HTTP/1.1\r\n\r\n");
    /* more Connection fields than write_fields keeps indexes for (8): still written, the named fields still go */
    http1_header_t many[12];
    for (int i = 0; i < 10; i++)
        many[i] = (http1_header_t){STR_LIT("Connection"), STR_LIT("keep-alive")};
    many[9].value = (str_t)STR_LIT("X-Late");
    many[10] = (http1_header_t){STR_LIT("X-Late"), STR_LIT("1")};
    many[11] = (http1_header_t){STR_LIT("Accept"), STR_LIT("*/*")};
    b.len = 0;
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/"), many, 12, NULL), 0);
    assert_string_equal(bufs(&b), "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
    buf_dispose(&b);
}

static void test_write_round_trip(void **state)
{
    (void)state;
    /* a parsed request written back: what the proxy does */
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    r.pause_head = true;
    const char *in = "GET /p HTTP/1.0\r\nHost: svc\r\nConnection: keep-alive, "
                     "X-Hop\r\nX-Hop: 1\r\nX-End: 2\r\n\r\n";
    size_t c;
    r.lo = in;
    r.hi = in + strlen(in);
    assert_int_equal(http1_parse(p, in, strlen(in), &c), HTTP1_PAUSED);
    buf_t b = BUF_INIT;
    assert_int_equal(
        http1_write_request_head(&b, r.last.method_name, r.last.target, r.last.headers, r.last.header_count, NULL), 0);
    assert_string_equal(bufs(&b), "GET /p HTTP/1.1\r\nHost: svc\r\nX-End: 2\r\n\r\n");
    buf_dispose(&b);
    http1_parser_destroy(p);
    rec_dispose(&r);
}

static void test_write_response_head(void **state)
{
    (void)state;
    http1_header_t h[] = {
        {STR_LIT("Content-Type"), STR_LIT("text/plain")},
        {STR_LIT("Transfer-Encoding"), STR_LIT("chunked")},
        {STR_LIT("Connection"), STR_LIT("Upgrade")},
        {STR_LIT("Upgrade"), STR_LIT("websocket")},
    };
    buf_t b = BUF_INIT;
    http1_head_opts_t o = {HTTP1_FRAME_LENGTH, 0, false, false, false};
    assert_int_equal(http1_write_response_head(&b, 200, NULL, h, 4, &o), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 200 OK\r\nContent-Type: "
                                  "text/plain\r\nContent-Length: 0\r\n\r\n");
    b.len = 0;
    o = (http1_head_opts_t){HTTP1_FRAME_NONE, 0, false, true, false};
    assert_int_equal(http1_write_response_head(&b, 101, "", h + 2, 2, &o), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                                  "websocket\r\nConnection: upgrade\r\n\r\n");
    b.len = 0;
    o = (http1_head_opts_t){HTTP1_FRAME_CLOSE, 0, false, false, false};
    assert_int_equal(http1_write_response_head(&b, 299, "Custom", NULL, 0, &o), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 299 Custom\r\nConnection: close\r\n\r\n");
    buf_dispose(&b);
}

static void test_write_rejects_injection(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_str(&b, "keep");
    http1_header_t bad_value[] = {{STR_LIT("X"), STR_LIT("a\r\nInjected: 1")}};
    http1_header_t bad_name[] = {{STR_LIT("X Y"), STR_LIT("a")}};
    http1_header_t empty_name[] = {{STR_LIT(""), STR_LIT("a")}};
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/"), bad_value, 1, NULL), -1);
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/"), bad_name, 1, NULL), -1);
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/"), empty_name, 1, NULL), -1);
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/a b"), NULL, 0, NULL), -1);
    assert_int_equal(http1_write_request_head(&b, STR_LIT("GET"), STR_LIT("/\r\n"), NULL, 0, NULL), -1);
    assert_int_equal(http1_write_request_head(&b, STR_LIT("G T"), STR_LIT("/"), NULL, 0, NULL), -1);
    assert_int_equal(http1_write_response_head(&b, 200, "OK\r\nX: 1", NULL, 0, NULL), -1);
    assert_int_equal(http1_write_response_head(&b, 200, NULL, bad_value, 1, NULL), -1);
    assert_int_equal(http1_write_response_head(&b, 42, NULL, NULL, 0, NULL), -1);
    assert_int_equal(http1_write_last_chunk(&b, bad_value, 1), -1);
    assert_int_equal(http1_write_simple_response(&b, 404, NULL, bad_value, 1, NULL, NULL, 0, false), -1);
    assert_int_equal(http1_write_simple_response(&b, 404, NULL, NULL, 0, "text/plain\r\nX: 1", "x", 1, false), -1);
    assert_int_equal(b.len, 4);
    buf_dispose(&b);
}

static void test_write_chunks(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    http1_write_chunk(&b, "hello", 5);
    http1_write_chunk(&b, "", 0);
    char big[300];
    memset(big, 'z', sizeof big);
    http1_write_chunk(&b, big, sizeof big);
    http1_header_t t[] = {{STR_LIT("X-Checksum"), STR_LIT("abc")}, {STR_LIT("Transfer-Encoding"), STR_LIT("x")}};
    assert_int_equal(http1_write_last_chunk(&b, t, 2), 0);
    assert_int_equal(http1_write_last_chunk(&b, NULL, 0), 0);
    assert_int_equal(b.len, 10 + (5 + 300 + 2) + (3 + 17 + 2) + 5);
    assert_memory_equal(b.data, "5\r\nhello\r\n12c\r\nzzz", 18);
    assert_memory_equal(b.data + b.len - 27, "0\r\nX-Checksum: abc\r\n\r\n0\r\n\r\n", 27);

    /* what we write, we parse back */
    buf_t msg = BUF_INIT;
    buf_append_str(&msg, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    buf_append(&msg, b.data, b.len - 5);
    rec_t r = {0};
    http1_parser_t *p = http1_parser_create(HTTP1_REQUEST, NULL, &cbs, &r);
    assert_int_equal(feed_ex(p, &r, msg.data, msg.len, 0, NULL), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.body.len, 305);
    assert_non_null(strstr(logs(&r), "T X-Checksum=abc"));
    http1_parser_destroy(p);
    rec_dispose(&r);
    buf_dispose(&msg);

    char h[19];
    assert_int_equal(http1_chunk_header(h, 1), 3);
    assert_memory_equal(h, "1\r\n", 3);
    assert_int_equal(http1_chunk_header(h, 0xabcdef), 8);
    assert_memory_equal(h, "abcdef\r\n", 8);
    assert_int_equal(http1_chunk_header(h, SIZE_MAX), 18);
    assert_memory_equal(h, "ffffffffffffffff\r\n", 18);
    buf_dispose(&b);
}

static void test_write_simple_response(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    http1_header_t h[] = {{STR_LIT("x-outrider-flags"), STR_LIT("NR")}};
    assert_int_equal(http1_write_simple_response(&b, 404, NULL, h, 1, "text/plain", "no route\n", 9, false), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 404 Not Found\r\nx-outrider-flags: "
                                  "NR\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 9\r\n\r\nno route\n");
    b.len = 0;
    assert_int_equal(http1_write_simple_response(&b, 408, NULL, NULL, 0, "text/plain", NULL, 0, true), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 408 Request Timeout\r\nContent-Length: "
                                  "0\r\nConnection: close\r\n\r\n");
    b.len = 0;
    assert_int_equal(http1_write_simple_response(&b, 431, NULL, NULL, 0, NULL, NULL, 0, true), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 431 Request Header Fields Too "
                                  "Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    b.len = 0;
    assert_int_equal(http1_write_simple_response(&b, 204, NULL, NULL, 0, NULL, NULL, 0, false), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 204 No Content\r\n\r\n");
    b.len = 0;
    assert_int_equal(http1_write_simple_response(&b, 503, "Busy", NULL, 0, NULL, "x", 1, false), 0);
    assert_string_equal(bufs(&b), "HTTP/1.1 503 Busy\r\nContent-Length: 1\r\n\r\nx");
    /* a local reply parses as a response */
    rec_t r;
    http1_parser_t *p = resp(&r);
    assert_int_equal(feed_ex(p, &r, b.data, b.len, 1, NULL), HTTP1_OK);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.last.status, 503);
    http1_parser_destroy(p);
    rec_dispose(&r);
    buf_dispose(&b);
}

static void test_helpers(void **state)
{
    (void)state;
    assert_string_equal(http1_status_reason(404), "Not Found");
    assert_string_equal(http1_status_reason(299), "Unknown");
    assert_string_equal(http1_status_reason(-5), "Unknown");
    assert_string_equal(http1_method_name(HTTP1_METHOD_POST), "POST");
    assert_string_equal(http1_method_name(999), "<unknown>");
    http1_header_t h[] = {{STR_LIT("Connection"), STR_LIT(" Keep-Alive ,Upgrade")}, {STR_LIT("X"), STR_LIT("1")}};
    assert_true(http1_connection_has(h, 2, "upgrade"));
    assert_true(http1_connection_has(h, 2, "keep-alive"));
    assert_false(http1_connection_has(h, 2, "close"));
    assert_ptr_equal(http1_header_find(h, 2, "x"), &h[1]);
    assert_null(http1_header_find(h, 2, "y"));
    assert_false(http1_name_eq(STR_NULL, "x"));
    /* field values as the parser takes them: UTF-8 and HTAB yes, CR, LF, NUL, other controls and DEL no */
    assert_true(http1_field_value_ok(STR_LIT("J\xc3\xbcrgen \xe6\x9d\xb1\xe4\xba\xac\tx")));
    assert_true(http1_field_value_ok(STR_NULL));
    assert_false(http1_field_value_ok(STR_LIT("eve\r\nx-injected: 1")));
    assert_false(http1_field_value_ok(STR_LIT("a\nb")));
    assert_false(http1_field_value_ok((str_t){"a\0b", 3}));
    assert_false(http1_field_value_ok(STR_LIT("a\001b")));
    assert_false(http1_field_value_ok(STR_LIT("0123456789abcdef\x7f")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_head_slices_valid_until_complete),
        cmocka_unit_test(test_post_content_length_bytewise),
        cmocka_unit_test(test_chunked_extensions_trailers),
        cmocka_unit_test(test_chunked_no_trailers_then_next),
        cmocka_unit_test(test_pipelined_with_pause),
        cmocka_unit_test(test_pause_on_head),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_upgrade_websocket),
        cmocka_unit_test(test_upgrade_needs_connection_token),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_nul_in_value),
        cmocka_unit_test(test_field_bytes),
        cmocka_unit_test(test_response_content_length),
        cmocka_unit_test(test_response_until_close),
        cmocka_unit_test(test_response_head_method),
        cmocka_unit_test(test_response_no_body_statuses),
        cmocka_unit_test(test_response_100_continue),
        cmocka_unit_test(test_response_101_and_connect),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_response_chunked_pipelined),
        cmocka_unit_test(test_callback_abort),
        cmocka_unit_test(test_write_request_head_strips_hop_by_hop),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_write_response_head),
        cmocka_unit_test(test_write_rejects_injection),
        cmocka_unit_test(test_write_chunks),
        cmocka_unit_test(test_write_simple_response),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
