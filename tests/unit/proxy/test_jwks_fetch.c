/*
 * Unit tests for proxy/jwks_fetch: jwksUri splitting (default ports,
 * queries, fragments, refusals), and the fetcher against a small HTTP
 * server on a thread of the test's (a real socket on 127.0.0.1): the
 * first fetch, one source per URI, a reference kept by a "verification"
 * across a key change, a 404 that keeps the keys, a document with no
 * usable key, wake (SIGHUP), also during a fetch, the refresh interval, the settled state and
 * the metrics, and unbinding the last reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "proxy/jwks_fetch.h"

static const char *const doc_a =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
static const char *const doc_b =
    "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"b1\",\"x\":\"11qYAYKxCrfVS_"
    "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"b2\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

/* ---- a one-thread HTTP server: each connection gets the current answer, then is closed ---- */

typedef struct server {
    int fd;
    uint16_t port;
    pthread_t thread;
    _Atomic int status; /* of the next answers */
    const char *_Atomic body;
    _Atomic int requests;
    _Atomic int hold; /* while set, an answer waits (with the body chosen when the request came) */
    char last_path[256];
    pthread_mutex_t lock;
} server_t;

static void *serve(void *arg)
{
    server_t *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* closed by the test */
        char req[2048];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof req - 1 && (r = read(c, req + n, sizeof req - 1 - n)) > 0) {
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
        }
        req[n] = '\0';
        pthread_mutex_lock(&s->lock);
        sscanf(req, "GET %255s ", s->last_path);
        pthread_mutex_unlock(&s->lock);
        const char *body = atomic_load(&s->body);
        atomic_fetch_add(&s->requests, 1);
        while (atomic_load(&s->hold))
            usleep(1000);
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          atomic_load(&s->status), strlen(body));
        if (write(c, head, (size_t)hl) < 0 || write(c, body, strlen(body)) < 0) {
            /* the client went: nothing to do */
        }
        close(c);
    }
}

static void server_start(server_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    atomic_store(&s->status, 200);
    atomic_store(&s->body, doc_a);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t l = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &l);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(server_t *s)
{
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
}

/* Poll until f() holds, at most 2,000 times 5 ms apart (a count, not a deadline the test asserts). */
#define WAIT_FOR(cond)                                                                                                 \
    do {                                                                                                               \
        for (int i_ = 0; i_ < 2000 && !(cond); i_++)                                                                   \
            usleep(5000);                                                                                              \
        assert_true(cond);                                                                                             \
    } while (0)

static jwks_source_status_t status_of(jwks_source_t *s)
{
    jwks_source_status_t st;
    jwks_source_status(s, &st);
    return st;
}

/* ---- tests ---- */

static void split_ok(const char *uri, const char *origin, const char *path)
{
    char o[JWKS_URI_MAX + 8], p[JWKS_URI_MAX + 2];
    const char *why = NULL;
    assert_int_equal(jwks_uri_split(uri, o, sizeof o, p, sizeof p, &why), 0);
    assert_string_equal(o, origin);
    assert_string_equal(p, path);
}

static void split_refused(const char *uri, const char *want)
{
    char o[JWKS_URI_MAX + 8], p[JWKS_URI_MAX + 2];
    const char *why = NULL;
    assert_int_equal(jwks_uri_split(uri, o, sizeof o, p, sizeof p, &why), -1);
    assert_non_null(why);
    if (strstr(why, want) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", uri, why, want);
}

static void test_split(void **state)
{
    (void)state;
    split_ok("https://issuer.example/.well-known/jwks.json", "https://issuer.example:443", "/.well-known/jwks.json");
    split_ok("http://issuer.example", "http://issuer.example:80", "/");
    split_ok("https://issuer.example:8443?x=1", "https://issuer.example:8443", "/?x=1");
    split_ok("https://[::1]:9443/k?a=b#frag", "https://[::1]:9443", "/k?a=b");
    split_ok("https://[fd00::1]/k", "https://[fd00::1]:443", "/k");
    split_ok("https://xn--mnchen-3ya.example/k", "https://xn--mnchen-3ya.example:443", "/k");
    assert_true(jwks_uri_remote("https://a/"));
    assert_true(jwks_uri_remote("http://a/"));
    assert_false(jwks_uri_remote("file:///etc/jwks.json"));
    split_refused("ftp://issuer.example/k", "http");
    split_refused("https:///k", "no host");
    split_refused("https://user:pw@issuer.example/k", "user information");
    split_refused("https://issuer.example:99999/k", "port");
    split_refused("https://issuer.example:0/k", "port");
    split_refused("https://issuer.example:x/k", "port");
    char long_uri[JWKS_URI_MAX + 20];
    memset(long_uri, 'a', sizeof long_uri - 1);
    long_uri[sizeof long_uri - 1] = '\0';
    memcpy(long_uri, "https://", 8);
    split_refused(long_uri, "longer");
}

static void test_fetch(void **state)
{
    (void)state;
    server_t srv;
    server_start(&srv);
    char uri[128], other[128];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%u/keys/jwks.json?v=1", srv.port);
    snprintf(other, sizeof other, "http://127.0.0.1:%u/other.json", srv.port);

    jwks_fetcher_t *f = jwks_fetcher_create();
    assert_int_equal(jwks_fetcher_start(f), 0);
    char waiting[256] = "";
    assert_true(jwks_fetcher_settled(f, waiting, sizeof waiting)); /* nothing bound */
    assert_null(jwks_fetcher_bind(f, "ftp://x/", 0));

    jwks_source_t *s = jwks_fetcher_bind(f, uri, 0);
    assert_non_null(s);
    assert_ptr_equal(jwks_fetcher_bind(f, uri, 2000), s); /* one source per URI */
    WAIT_FOR(status_of(s).successes == 1);
    assert_true(jwks_fetcher_settled(f, waiting, sizeof waiting));
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.last_path, "/keys/jwks.json?v=1");
    pthread_mutex_unlock(&srv.lock);
    jwks_t *held = jwks_source_keys(s); /* as a verification in flight holds it */
    assert_int_equal(jwks_count(held), 1);
    assert_int_equal(status_of(s).keys, 1);
    assert_string_equal(status_of(s).last_error, "");
    assert_true(status_of(s).last_success_unix > 0);

    /* a 404 keeps the keys; the failure is counted with its reason */
    atomic_store(&srv.status, 404);
    jwks_fetcher_wake(f);
    WAIT_FOR(status_of(s).failures == 1);
    assert_string_equal(status_of(s).last_error, "HTTP status 404");
    jwks_t *k = jwks_source_keys(s);
    assert_int_equal(jwks_count(k), 1);
    jwks_destroy(k);

    /* a document with no usable key: refused, the keys stay */
    atomic_store(&srv.status, 200);
    atomic_store(&srv.body, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}");
    jwks_fetcher_wake(f);
    WAIT_FOR(status_of(s).failures == 2);
    if (strstr(status_of(s).last_error, "not a usable JWKS") == NULL)
        fail_msg("last error: %s", status_of(s).last_error);
    assert_int_equal(status_of(s).keys, 1);

    /* new keys replace the old; the reference held before still works */
    atomic_store(&srv.body, doc_b);
    jwks_fetcher_wake(f);
    WAIT_FOR(status_of(s).successes == 2);
    assert_int_equal(status_of(s).keys, 2);
    k = jwks_source_keys(s);
    assert_int_equal(jwks_count(k), 2);
    jwks_destroy(k);
    assert_int_equal(jwks_count(held), 1);
    jwks_destroy(held);

    /* the same document again: a success, the same key set kept */
    jwks_t *before = jwks_source_keys(s);
    jwks_fetcher_wake(f);
    WAIT_FOR(status_of(s).successes == 3);
    k = jwks_source_keys(s);
    assert_ptr_equal(k, before);
    jwks_destroy(k);
    jwks_destroy(before);

    /* a wake while a fetch is in flight: that fetch read the document before the change, so once more after it */
    atomic_store(&srv.hold, 1);
    int before_n = atomic_load(&srv.requests);
    jwks_fetcher_wake(f);
    WAIT_FOR(atomic_load(&srv.requests) == before_n + 1); /* in flight, with doc_b */
    atomic_store(&srv.body, doc_a);
    jwks_fetcher_wake(f);
    atomic_store(&srv.hold, 0);
    WAIT_FOR(status_of(s).keys == 1); /* the second fetch, with doc_a */
    assert_int_equal(atomic_load(&srv.requests), before_n + 2);

    /* a second URI; the metrics list both */
    jwks_source_t *s2 = jwks_fetcher_bind(f, other, 0);
    WAIT_FOR(status_of(s2).successes == 1);
    buf_t m = BUF_INIT;
    jwks_fetcher_metrics(f, &m);
    char want[256];
    snprintf(want, sizeof want, "outrider_proxy_jwks_fetch_total{jwks_uri=\"%s\",result=\"failure\"} 2\n", uri);
    assert_non_null(strstr(m.data, want));
    snprintf(want, sizeof want, "outrider_proxy_jwks_keys{jwks_uri=\"%s\"} 1\n", uri);
    assert_non_null(strstr(m.data, want));
    snprintf(want, sizeof want, "outrider_proxy_jwks_fetch_total{jwks_uri=\"%s\",result=\"success\"} 1\n", other);
    assert_non_null(strstr(m.data, want));
    assert_non_null(strstr(m.data, "# TYPE outrider_proxy_jwks_last_success_timestamp_seconds gauge\n"));
    buf_dispose(&m);

    /* the refresh interval: 1 s, so another fetch comes without a wake */
    int n = atomic_load(&srv.requests);
    jwks_fetcher_configure(f, NULL, 1000);
    WAIT_FOR(atomic_load(&srv.requests) >= n + 2);

    jwks_source_unref(s2);
    jwks_source_unref(s);
    jwks_source_unref(s); /* both bindings gone: the source is freed */
    m = (buf_t)BUF_INIT;
    jwks_fetcher_metrics(f, &m);
    assert_true(m.len == 0);
    buf_dispose(&m);
    jwks_fetcher_destroy(f);
    server_stop(&srv);
}

static void test_unreachable(void **state)
{
    (void)state;
    /* a port nothing listens on: the first attempt fails, the source is settled, no keys */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    char uri[128];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%u/jwks", ntohs(a.sin_port));
    jwks_fetcher_t *f = jwks_fetcher_create();
    jwks_source_t *s = jwks_fetcher_bind(f, uri, 1000);
    char waiting[256] = "";
    assert_false(jwks_fetcher_settled(f, waiting, sizeof waiting)); /* not started yet */
    assert_string_equal(waiting, uri);
    assert_int_equal(jwks_fetcher_start(f), 0);
    WAIT_FOR(jwks_fetcher_settled(f, waiting, sizeof waiting));
    assert_null(jwks_source_keys(s));
    assert_true(status_of(s).failures >= 1);
    if (strstr(status_of(s).last_error, "connection refused") == NULL)
        fail_msg("last error: %s", status_of(s).last_error);
    jwks_source_unref(s);
    jwks_fetcher_destroy(f);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_fetch),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
