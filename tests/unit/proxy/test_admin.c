/*
 * Unit tests for proxy/admin: a real listener on an ephemeral loopback
 * port, driven by stepping its uv loop from the test while a plain
 * blocking-socket client talks to it. Every page with its status, headers
 * and body (GET and HEAD), query strings, 404 and 405 (with Allow),
 * keep-alive and pipelining, request bodies dropped, 413 by Content-Length
 * and by chunked size, codec errors, Connection: close, the idle timeout,
 * the quit callback (also closing the admin from inside it), IPv6 and
 * listen errors. Each test ends with admin_close and checks that the loop
 * has no handle left (uv_loop_close succeeds); ASan checks the memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy/admin.h"

typedef struct fixture fixture_t;

struct fixture {
    uv_loop_t loop;
    admin_t *admin;
    bool ready;
    int quit_calls;
    bool close_on_quit;
};

static const char *h_ready(void *ctx)
{
    return ((fixture_t *)ctx)->ready ? NULL : "DRAINING\n";
}

static void h_stats(void *ctx, buf_t *out)
{
    (void)ctx;
    buf_append_str(out, "# TYPE outrider_up gauge\noutrider_up 1\n");
}

static void h_config(void *ctx, buf_t *out)
{
    (void)ctx;
    buf_append_str(out, "{\"kind\":\"Proxy\"}\n");
}

static void h_quit(void *ctx)
{
    fixture_t *f = ctx;
    f->quit_calls++;
    if (f->close_on_quit) {
        admin_close(f->admin);
        f->admin = NULL;
    }
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->ready = true;
    admin_handlers_t h = {h_ready, h_stats, h_config, h_quit, f};
    char err[256] = "";
    f->admin = admin_create(&f->loop, "127.0.0.1", 0, &h, err, sizeof err);
    if (f->admin == NULL)
        fail_msg("admin_create: %s", err);
    assert_true(admin_port(f->admin) != 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    admin_close(f->admin);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* ---- a blocking client, stepping the loop while it waits ---- */

typedef struct client {
    fixture_t *f;
    int fd;
    buf_t in; /* received and not yet taken as a response */
} client_t;

typedef struct resp {
    int status;
    buf_t head; /* status line and fields, lowercased names kept as sent */
    buf_t body;
} resp_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static ssize_t pump(fixture_t *f, client_t *c);

static client_t client_open_to(fixture_t *f, const char *host, uint16_t port)
{
    client_t c = {f, -1, BUF_INIT};
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0)
        sl = sizeof(struct sockaddr_in);
    else {
        assert_int_equal(uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss), 0);
        sl = sizeof(struct sockaddr_in6);
    }
    c.fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c.fd >= 0);
    /* the kernel completes the handshake from the backlog before the loop accepts */
    assert_int_equal(connect(c.fd, (struct sockaddr *)&ss, sl), 0);
    return c;
}

static client_t client_open(fixture_t *f)
{
    return client_open_to(f, "127.0.0.1", admin_port(f->admin));
}

static void client_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_dispose(&c->in);
}

static void client_send(client_t *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            pump(c->f, c); /* the server reads only while its loop runs */
            continue;
        }
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void client_send_str(client_t *c, const char *s)
{
    client_send(c, s, strlen(s));
}

/* Step the loop and read what arrived; returns bytes read, 0 on EOF, -1 on nothing yet, -2 on reset. */
static ssize_t pump(fixture_t *f, client_t *c)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, 2) <= 0)
        return -1;
    char tmp[8192];
    ssize_t n = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
        buf_append(&c->in, tmp, (size_t)n);
        return n;
    }
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EINTR)
        return -1;
    return -2;
}

/* A value of a field in a head (case-insensitive name), copied into out; false when absent. */
static bool head_field(const buf_t *head, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = head->data;
    const char *end = head->data + head->len;
    p = memchr(p, '\n', (size_t)(end - p));
    while (p != NULL && p + 1 < end) {
        p++;
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            size_t vl = (size_t)(eol - v);
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        p = memchr(eol, '\n', (size_t)(end - eol));
    }
    return false;
}

/* Read one response (Content-Length framed; none for HEAD). Returns 0, or -1 on EOF/timeout before it is whole. */
static int client_read(fixture_t *f, client_t *c, bool head_request, resp_t *r)
{
    memset(r, 0, sizeof *r);
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        char *eoh = c->in.len ? memmem(c->in.data, c->in.len, "\r\n\r\n", 4) : NULL;
        if (eoh != NULL) {
            size_t head_len = (size_t)(eoh - c->in.data) + 4;
            buf_t head = BUF_INIT;
            buf_append(&head, c->in.data, head_len);
            char cl[32];
            size_t body_len = 0;
            if (!head_request && head_field(&head, "Content-Length", cl, sizeof cl))
                body_len = strtoul(cl, NULL, 10);
            if (c->in.len >= head_len + body_len) {
                r->status = atoi(head.data + 9);
                r->head = head;
                buf_append(&r->body, c->in.data + head_len, body_len);
                /* an empty body still gets storage so that asserts can compare strings */
                buf_append_char(&r->body, '\0');
                r->body.len--;
                size_t used = head_len + body_len;
                memmove(c->in.data, c->in.data + used, c->in.len - used);
                c->in.len -= used;
                return 0;
            }
            buf_dispose(&head);
        }
        if (now_ms() > deadline)
            return -1;
        ssize_t n = pump(f, c);
        if (n == 0 || n == -2)
            return -1;
    }
}

static void resp_dispose(resp_t *r)
{
    buf_dispose(&r->head);
    buf_dispose(&r->body);
}

/* Whether the server closes the connection within ms (EOF or reset), with nothing more to read. */
static bool client_sees_close(fixture_t *f, client_t *c, uint64_t ms)
{
    uint64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        ssize_t n = pump(f, c);
        if (n == 0 || n == -2)
            return true;
    }
    return false;
}

/* Send a request and read its response. */
static void roundtrip(fixture_t *f, client_t *c, const char *req, resp_t *r)
{
    client_send_str(c, req);
    assert_int_equal(client_read(f, c, strncmp(req, "HEAD ", 5) == 0, r), 0);
}

static void assert_field(const resp_t *r, const char *name, const char *want)
{
    char v[256];
    if (!head_field(&r->head, name, v, sizeof v))
        fail_msg("no %s field in:\n%s", name, r->head.data);
    assert_string_equal(v, want);
}

static void assert_no_field(const resp_t *r, const char *name)
{
    char v[256];
    if (head_field(&r->head, name, v, sizeof v))
        fail_msg("unexpected %s: %s", name, v);
}

/* ---- tests ---- */

static void test_ready(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "LIVE\n");
    assert_field(&r, "Content-Type", "text/plain");
    assert_field(&r, "Content-Length", "5");
    assert_no_field(&r, "Connection");
    resp_dispose(&r);

    f->ready = false;
    roundtrip(f, &c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.data, "DRAINING\n");
    resp_dispose(&r);
    client_close(&c);
}

static void test_stats_and_config(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "GET /stats/prometheus HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_field(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(r.body.data, "# TYPE outrider_up gauge\noutrider_up 1\n");
    resp_dispose(&r);

    roundtrip(f, &c, "GET /config_dump HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_field(&r, "Content-Type", "application/json");
    assert_string_equal(r.body.data, "{\"kind\":\"Proxy\"}\n");
    resp_dispose(&r);

    /* query strings do not take part in matching */
    roundtrip(f, &c, "GET /stats/prometheus?usedonly&filter=x HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    roundtrip(f, &c, "GET /ready? HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    client_close(&c);
}

static void test_head(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "HEAD /config_dump HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_field(&r, "Content-Length", "17");
    assert_field(&r, "Content-Type", "application/json");
    assert_int_equal(r.body.len, 0);
    resp_dispose(&r);
    /* no body bytes were sent: the next response starts right after the head */
    roundtrip(f, &c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "LIVE\n");
    resp_dispose(&r);
    client_close(&c);
}

static void test_not_found(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body.data, "/ready"));
    assert_non_null(strstr(r.body.data, "/stats/prometheus"));
    assert_non_null(strstr(r.body.data, "/config_dump"));
    assert_non_null(strstr(r.body.data, "/quitquitquit"));
    resp_dispose(&r);
    roundtrip(f, &c, "GET /ready/extra HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    resp_dispose(&r);
    roundtrip(f, &c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    resp_dispose(&r);
    /* still usable afterwards */
    roundtrip(f, &c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    client_close(&c);
}

static void test_method_not_allowed(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "GET /quitquitquit HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_field(&r, "Allow", "POST");
    resp_dispose(&r);
    assert_int_equal(f->quit_calls, 0);

    roundtrip(f, &c, "POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_field(&r, "Allow", "GET, HEAD");
    resp_dispose(&r);
    roundtrip(f, &c, "DELETE /stats/prometheus HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_field(&r, "Allow", "GET, HEAD");
    resp_dispose(&r);
    roundtrip(f, &c, "PUT /config_dump HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", &r);
    assert_int_equal(r.status, 405);
    resp_dispose(&r);
    client_close(&c);
}

static void test_keep_alive_and_pipelining(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    for (int i = 0; i < 3; i++) {
        roundtrip(f, &c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        resp_dispose(&r);
    }
    /* three requests in one write are answered in order */
    client_send_str(&c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /config_dump HTTP/1.1\r\nHost: x\r\n\r\n");
    int want[] = {200, 404, 200};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(client_read(f, &c, false, &r), 0);
        assert_int_equal(r.status, want[i]);
        resp_dispose(&r);
    }
    /* HTTP/1.0 without keep-alive: answered, then closed */
    roundtrip(f, &c, "GET /ready HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_field(&r, "Connection", "close");
    resp_dispose(&r);
    assert_true(client_sees_close(f, &c, 2000));
    client_close(&c);
}

static void test_connection_close(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    /* the second request is never read: the first one closes the connection */
    roundtrip(f, &c,
              "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n",
              &r);
    assert_int_equal(r.status, 200);
    assert_field(&r, "Connection", "close");
    resp_dispose(&r);
    assert_true(client_sees_close(f, &c, 2000));
    assert_int_equal(c.in.len, 0);
    client_close(&c);
}

static void test_body_dropped(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    char req[4096];
    char body[2000];
    memset(body, 'b', sizeof body);
    int n = snprintf(req, sizeof req, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%.*s", sizeof body,
                     (int)sizeof body, body);
    client_send(&c, req, (size_t)n);
    assert_int_equal(client_read(f, &c, false, &r), 0);
    assert_int_equal(r.status, 404);
    resp_dispose(&r);
    roundtrip(f, &c, "POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    resp_dispose(&r);
    roundtrip(f, &c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    client_close(&c);
}

static void test_expect_continue(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    client_send_str(&c, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(client_read(f, &c, false, &r), 0);
    assert_int_equal(r.status, 100);
    resp_dispose(&r);
    client_send_str(&c, "abcd");
    assert_int_equal(client_read(f, &c, false, &r), 0);
    assert_int_equal(r.status, 404);
    resp_dispose(&r);
    client_close(&c);
}

static void test_too_large_by_length(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "POST /quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n", &r);
    assert_int_equal(r.status, 413);
    assert_field(&r, "Connection", "close");
    resp_dispose(&r);
    assert_true(client_sees_close(f, &c, 2000));
    assert_int_equal(f->quit_calls, 0);
    client_close(&c);

    /* exactly the limit is fine */
    c = client_open(f);
    size_t len = 64 * 1024;
    char *req = malloc(len + 128);
    assert_non_null(req);
    int n = snprintf(req, 128, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", len);
    memset(req + n, 'x', len);
    client_send(&c, req, (size_t)n + len);
    free(req);
    assert_int_equal(client_read(f, &c, false, &r), 0);
    assert_int_equal(r.status, 404);
    resp_dispose(&r);
    client_close(&c);
}

static void test_too_large_chunked(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    client_send_str(&c, "POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[4096 + 16];
    int hn = snprintf(chunk, sizeof chunk, "1000\r\n");
    memset(chunk + hn, 'c', 4096);
    memcpy(chunk + hn + 4096, "\r\n", 2);
    /* 17 chunks of 4 KiB: the 17th passes 64 KiB */
    for (int i = 0; i < 17; i++)
        client_send(&c, chunk, (size_t)hn + 4096 + 2);
    assert_int_equal(client_read(f, &c, false, &r), 0);
    assert_int_equal(r.status, 413);
    resp_dispose(&r);
    assert_true(client_sees_close(f, &c, 2000));
    client_close(&c);
}

static void test_codec_errors(void **state)
{
    fixture_t *f = *state;
    struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET /ready HTTP/1.1\r\n\r\n", 400}, /* no Host */
        {"GET /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"GET /ready HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        {"BLAH\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        client_t c = client_open(f);
        resp_t r;
        roundtrip(f, &c, cases[i].req, &r);
        assert_int_equal(r.status, cases[i].status);
        assert_field(&r, "Connection", "close");
        resp_dispose(&r);
        assert_true(client_sees_close(f, &c, 2000));
        client_close(&c);
    }
    /* a request-target above the admin's 4 KiB limit */
    client_t c = client_open(f);
    buf_t req = BUF_INIT;
    buf_append_str(&req, "GET /");
    for (int i = 0; i < 5000; i++)
        buf_append_char(&req, 'a');
    buf_append_str(&req, " HTTP/1.1\r\nHost: x\r\n\r\n");
    resp_t r;
    roundtrip(f, &c, req.data, &r);
    assert_int_equal(r.status, 414);
    resp_dispose(&r);
    buf_dispose(&req);
    client_close(&c);
}

static void test_quit(void **state)
{
    fixture_t *f = *state;
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "POST /quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "OK\n");
    resp_dispose(&r);
    assert_int_equal(f->quit_calls, 1);
    /* curl -X POST without a body sends no Content-Length at all */
    roundtrip(f, &c, "POST /quitquitquit?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    assert_int_equal(f->quit_calls, 2);
    client_close(&c);
}

static void test_quit_closes_admin(void **state)
{
    fixture_t *f = *state;
    f->close_on_quit = true;
    client_t idle = client_open(f);
    client_t c = client_open(f);
    resp_t r;
    /* a pipelined request after the quit is not answered: the admin is closing */
    roundtrip(f, &c,
              "POST /quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
              "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n",
              &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "OK\n");
    resp_dispose(&r);
    assert_int_equal(f->quit_calls, 1);
    assert_null(f->admin);
    assert_true(client_sees_close(f, &c, 2000));
    assert_int_equal(c.in.len, 0);
    assert_true(client_sees_close(f, &idle, 2000));
    client_close(&c);
    client_close(&idle);
}

static void test_idle_timeout(void **state)
{
    fixture_t *f = *state;
    admin_set_idle_timeout(f->admin, 100);
    client_t c = client_open(f);
    resp_t r;
    roundtrip(f, &c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_dispose(&r);
    uint64_t t0 = now_ms();
    assert_true(client_sees_close(f, &c, 3000));
    assert_true(now_ms() - t0 >= 90);
    client_close(&c);

    /* a request left half-way gets 408 */
    c = client_open(f);
    client_send_str(&c, "GET /ready HTTP/1.1\r\nHo");
    assert_int_equal(client_read(f, &c, false, &r), 0);
    assert_int_equal(r.status, 408);
    resp_dispose(&r);
    assert_true(client_sees_close(f, &c, 2000));
    client_close(&c);
}

static void test_close_with_open_connections(void **state)
{
    fixture_t *f = *state;
    client_t idle = client_open(f);
    client_t partial = client_open(f);
    client_t used = client_open(f);
    resp_t r;
    roundtrip(f, &used, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    resp_dispose(&r);
    client_send_str(&partial, "GET /ready HTTP/1.1\r\nHost");
    for (int i = 0; i < 20; i++)
        pump(f, &idle); /* let the loop accept them all */
    admin_close(f->admin);
    f->admin = NULL;
    assert_true(client_sees_close(f, &idle, 2000));
    assert_true(client_sees_close(f, &partial, 2000));
    assert_true(client_sees_close(f, &used, 2000));
    client_close(&idle);
    client_close(&partial);
    client_close(&used);
    /* teardown runs the loop to the end and checks that no handle is left */
}

static void test_close_right_away(void **state)
{
    (void)state; /* create and close without running the loop in between */
}

static void test_ipv6_and_errors(void **state)
{
    fixture_t *f = *state;
    admin_handlers_t h = {NULL, NULL, NULL, NULL, NULL};
    char err[256] = "";

    assert_null(admin_create(&f->loop, "localhost", 0, &h, err, sizeof err));
    assert_non_null(strstr(err, "not an IP address"));

    err[0] = '\0';
    assert_null(admin_create(&f->loop, "127.0.0.1", admin_port(f->admin), &h, err, sizeof err));
    assert_non_null(strstr(err, "bind"));

    admin_t *a6 = admin_create(&f->loop, "::1", 0, &h, err, sizeof err);
    if (a6 == NULL) {
        print_message("no IPv6 loopback here (%s); skipping that part\n", err);
        return;
    }
    client_t c = client_open_to(f, "::1", admin_port(a6));
    /* the handlers are all NULL: defaults */
    const char *reqs[] = {"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", "GET /config_dump HTTP/1.1\r\nHost: x\r\n\r\n",
                          "GET /stats/prometheus HTTP/1.1\r\nHost: x\r\n\r\n",
                          "POST /quitquitquit HTTP/1.1\r\nHost: x\r\n\r\n"};
    const char *bodies[] = {"LIVE\n", "{}\n", "", "OK\n"};
    for (int i = 0; i < 4; i++) {
        resp_t r;
        roundtrip(f, &c, reqs[i], &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, bodies[i]);
        resp_dispose(&r);
    }
    client_close(&c);
    admin_close(a6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_and_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_by_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_codec_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_closes_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_open_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_right_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
