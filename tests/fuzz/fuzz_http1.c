/*
 * libFuzzer target: the HTTP/1.1 codec (proxy/http1.c).
 *
 * Input: byte 0 picks request or response parsing and the method a response
 * answers (HEAD, CONNECT, GET), bytes 1-2 the split point; the rest is the
 * stream. The stream is parsed twice, whole and cut in two at the split
 * point (each piece in its own heap buffer, so ASan sees any read past it).
 * Invariants: no crash, leak or UB; body slices lie inside the current
 * input; body bytes never exceed the input; consumed never exceeds the
 * input; head slices are readable (ASan) and within the limits; both
 * feedings give the same events, body and result; every parsed head can be
 * written back (http1_write_*) and the result parses without crashing.
 * Links outrider_proxy, which links llhttp (built from Debian's node-llhttp sources).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"

typedef struct run {
    buf_t log;  /* heads, trailers, completions, result */
    buf_t body; /* body bytes of all messages */
    size_t body_bytes;
    const char *lo, *hi;
    size_t total_in;
    int kind;
    int write_back;
} run_t;

static void check_str(str_t s, size_t max)
{
    if (s.len > max)
        abort();
    volatile unsigned sum = 0;
    for (uint32_t i = 0; i < s.len; i++)
        sum += (unsigned char)s.ptr[i];
    (void)sum;
}

static void write_back(const http1_head_t *h, int kind)
{
    buf_t out = BUF_INIT;
    http1_head_opts_t o = {HTTP1_FRAME_LENGTH, 0, false, h->upgrade, false};
    int r = kind == HTTP1_REQUEST
                ? http1_write_request_head(&out, h->method_name, h->target, h->headers, h->header_count, &o)
                : http1_write_response_head(&out, h->status, NULL, h->headers, h->header_count, &o);
    /* a head we accepted is always writable */
    if (r != 0)
        abort();
    http1_parser_t *p = http1_parser_create(kind, NULL, NULL, NULL);
    size_t c;
    (void)http1_parse(p, out.data, out.len, &c);
    if (c > out.len)
        abort();
    http1_parser_destroy(p);
    buf_dispose(&out);
}

static int on_head(void *ctx, const http1_head_t *h)
{
    run_t *r = ctx;
    http1_limits_t lim = HTTP1_LIMITS_DEFAULT;
    check_str(h->target, lim.max_uri_bytes);
    check_str(h->reason, lim.max_header_bytes);
    if (h->header_count > lim.max_headers)
        abort();
    buf_printf(&r->log, "H %d %d %d.%d %d %d %d %d %llu|", h->method, h->status, h->version_major, h->version_minor,
               (int)h->body, h->keep_alive, h->expect_continue, h->upgrade, (unsigned long long)h->content_length);
    buf_append(&r->log, h->target.ptr, h->target.len);
    for (uint32_t i = 0; i < h->header_count; i++) {
        check_str(h->headers[i].name, lim.max_header_bytes);
        check_str(h->headers[i].value, lim.max_header_bytes);
        buf_append(&r->log, h->headers[i].name.ptr, h->headers[i].name.len);
        buf_append_char(&r->log, ':');
        buf_append(&r->log, h->headers[i].value.ptr, h->headers[i].value.len);
        buf_append_char(&r->log, '\n');
    }
    if (r->write_back)
        write_back(h, r->kind);
    return HTTP1_CB_OK;
}

static int on_body(void *ctx, const char *data, size_t len)
{
    run_t *r = ctx;
    if (len == 0 || data < r->lo || data + len > r->hi)
        abort();
    r->body_bytes += len;
    if (r->body_bytes > r->total_in)
        abort();
    buf_append(&r->body, data, len);
    return HTTP1_CB_OK;
}

static int on_trailers(void *ctx, const http1_header_t *t, uint32_t n)
{
    run_t *r = ctx;
    buf_printf(&r->log, "T%u", n);
    for (uint32_t i = 0; i < n; i++) {
        check_str(t[i].name, 60 * 1024);
        check_str(t[i].value, 60 * 1024);
    }
    return HTTP1_CB_OK;
}

static int on_complete(void *ctx)
{
    run_t *r = ctx;
    buf_append_str(&r->log, "C");
    /* pause after every other message, as the proxy does for pipelining */
    return (r->log.len & 1) ? HTTP1_CB_PAUSE : HTTP1_CB_OK;
}

static const http1_callbacks_t cbs = {on_head, on_body, on_trailers, on_complete};

/* Feed one piece, resuming after pauses; returns the last result. */
static int feed(http1_parser_t *p, run_t *r, const uint8_t *data, size_t len)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, data, len);
    size_t done = 0;
    int res = HTTP1_OK;
    while (done < len) {
        size_t c = 0;
        r->lo = copy + done;
        r->hi = copy + len;
        res = http1_parse(p, copy + done, len - done, &c);
        if (c > len - done)
            abort();
        done += c;
        if (res == HTTP1_PAUSED) {
            http1_parser_resume(p);
            continue;
        }
        if (res != HTTP1_OK)
            break;
    }
    free(copy);
    return res == HTTP1_PAUSED ? HTTP1_OK : res; /* paused right at the end: already resumed */
}

static void run_once(run_t *r, int kind, int method, const uint8_t *data, size_t len, size_t split)
{
    r->kind = kind;
    r->total_in = len;
    http1_parser_t *p = http1_parser_create(kind, NULL, &cbs, r);
    http1_parser_set_method(p, method);
    int res = feed(p, r, data, split);
    if (res == HTTP1_OK)
        res = feed(p, r, data + split, len - split);
    if (res == HTTP1_OK)
        res = http1_finish(p);
    buf_printf(&r->log, "R%d S%d", res, http1_parser_error_status(p));
    http1_parser_destroy(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int kind = (data[0] & 1) ? HTTP1_RESPONSE : HTTP1_REQUEST;
    static const int methods[] = {HTTP1_METHOD_GET, HTTP1_METHOD_HEAD, HTTP1_METHOD_CONNECT, HTTP1_METHOD_POST};
    int method = methods[(data[0] >> 1) & 3];
    size_t split = ((size_t)data[1] << 8 | data[2]);
    data += 3;
    size -= 3;
    if (split > size)
        split = size;

    run_t whole = {0}, cut = {0};
    whole.write_back = 1;
    run_once(&whole, kind, method, data, size, size);
    run_once(&cut, kind, method, data, size, split);
    /* body slices differ between the two feedings, the events and bytes may not
     */
    if (whole.log.len != cut.log.len || memcmp(whole.log.data, cut.log.data, whole.log.len) != 0) {
        fprintf(stderr, "whole: %.*s\ncut at %zu: %.*s\n", (int)whole.log.len, whole.log.data, split, (int)cut.log.len,
                cut.log.data);
        abort();
    }
    if (whole.body.len != cut.body.len || (whole.body.len && memcmp(whole.body.data, cut.body.data, whole.body.len)))
        abort();
    buf_dispose(&whole.body);
    buf_dispose(&cut.body);
    buf_dispose(&whole.log);
    buf_dispose(&cut.log);
    return 0;
}
