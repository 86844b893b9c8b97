/*
 * Unit tests for proxy/transport over real loopback TCP connections on one
 * uv loop per test. The PKI is made here with the OpenSSL API: two unrelated
 * root CAs and leaf certificates with SPIFFE URI SANs (one expired, one not
 * yet valid). Covered: plain and TLS echo with half-close; mutual TLS with
 * both identities; ALPN; handshake failures and their reasons (unknown CA on
 * either side, expired, not yet valid, SAN mismatch, no client certificate,
 * protocol version, timeout); 8 MiB each way with paused readers and
 * writers waiting for drain, byte-exact; session resumption (TLS 1.3 and
 * 1.2); certificate rotation under a live connection; sniffing and a
 * PERMISSIVE listener; closing mid-handshake and mid-transfer (ASan checks
 * for leaks and use after free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <malloc.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy/transport.h"

#define ID_REVIEWS "spiffe://cluster.local/ns/shop/sa/reviews"
#define ID_PRODUCTPAGE "spiffe://cluster.local/ns/shop/sa/productpage"
#define ID_REVIEWS_V2 "spiffe://cluster.local/ns/shop/sa/reviews-v2"
#define DAY (24 * 3600L)
#define BULK (8u * 1024 * 1024)

/* ---- certificates ---- */

typedef struct pem {
    char *cert;
    char *key;
} pem_t;

static struct {
    pem_t ca1, ca2;
    pem_t server, client;             /* CA1: reviews, productpage */
    pem_t rogue_server, rogue_client; /* CA2 */
    pem_t expired, not_yet_valid;     /* CA1, reviews */
    pem_t rotated;                    /* CA2: reviews-v2 */
    char *bundle;                     /* CA1 + CA2 */
    unsigned char hello[2048];        /* a real ClientHello record */
    size_t hello_len;
} pki;

static char *bio_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key, issued by issuer (NULL: self-signed CA), valid from..to seconds from now. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *uri, long from_s,
                       long to_s)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"outrider-test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    bool ca = issuer == NULL;
    add_ext(x, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, &v3, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(x, &v3, NID_subject_key_identifier, "hash");
    add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
    if (!ca)
        add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth");
    if (uri != NULL) {
        char san[256];
        snprintf(san, sizeof san, "URI:%s", uri);
        add_ext(x, &v3, NID_subject_alt_name, san);
    }
    assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static pem_t to_pem(X509 *x, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    pem_t p = {.cert = bio_string(b)};
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    p.key = bio_string(b);
    return p;
}

static pem_t leaf(const char *cn, X509 *ca, EVP_PKEY *ca_key, const char *uri, long from_s, long to_s)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = make_cert(k, cn, ca, ca_key, uri, from_s, to_s);
    pem_t p = to_pem(x, k);
    X509_free(x);
    EVP_PKEY_free(k);
    return p;
}

/* A ClientHello as a client would send it first. */
static void make_client_hello(void)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL *s = SSL_new(c);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(s, rb, wb);
    assert_int_equal(SSL_connect(s), -1);
    char *data;
    long n = BIO_get_mem_data(wb, &data);
    assert_true(n > 6 && (size_t)n <= sizeof pki.hello);
    memcpy(pki.hello, data, (size_t)n);
    pki.hello_len = (size_t)n;
    SSL_free(s);
    SSL_CTX_free(c);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as the proxy does: a write to a reset peer is an error, not a kill */
    EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
    X509 *ca1 = make_cert(k1, "outrider test root 1", NULL, NULL, NULL, -DAY, 30 * DAY);
    X509 *ca2 = make_cert(k2, "outrider test root 2", NULL, NULL, NULL, -DAY, 30 * DAY);
    pki.ca1 = to_pem(ca1, k1);
    pki.ca2 = to_pem(ca2, k2);
    pki.server = leaf("reviews", ca1, k1, ID_REVIEWS, -DAY, 10 * DAY);
    pki.client = leaf("productpage", ca1, k1, ID_PRODUCTPAGE, -DAY, 10 * DAY);
    pki.rogue_server = leaf("reviews", ca2, k2, ID_REVIEWS, -DAY, 10 * DAY);
    pki.rogue_client = leaf("productpage", ca2, k2, ID_PRODUCTPAGE, -DAY, 10 * DAY);
    pki.expired = leaf("reviews", ca1, k1, ID_REVIEWS, -2 * DAY, -DAY);
    pki.not_yet_valid = leaf("reviews", ca1, k1, ID_REVIEWS, DAY, 2 * DAY);
    pki.rotated = leaf("reviews-v2", ca2, k2, ID_REVIEWS_V2, -DAY, 10 * DAY);
    size_t l1 = strlen(pki.ca1.cert), l2 = strlen(pki.ca2.cert);
    pki.bundle = malloc(l1 + l2 + 1);
    memcpy(pki.bundle, pki.ca1.cert, l1);
    memcpy(pki.bundle + l1, pki.ca2.cert, l2 + 1);
    X509_free(ca1);
    X509_free(ca2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    make_client_hello();
    return 0;
}

static void pem_free(pem_t *p)
{
    free(p->cert);
    free(p->key);
}

static int group_teardown(void **state)
{
    (void)state;
    pem_t *all[] = {&pki.ca1,          &pki.ca2,     &pki.server,        &pki.client, &pki.rogue_server,
                    &pki.rogue_client, &pki.expired, &pki.not_yet_valid, &pki.rotated};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pem_free(all[i]);
    free(pki.bundle);
    return 0;
}

static const char *const alpn_both[] = {"h2", "http/1.1"};
static const char *const alpn_h2[] = {"h2"};
static const char *const alpn_h1[] = {"http/1.1"};

/* A ctx from PEM strings; ca NULL = no verification. */
static tls_ctx_t *ctx_pem(const pem_t *me, const char *ca, const char *const *alpn, size_t n_alpn, int min_v, int max_v)
{
    tls_ctx_opts_t o = {
        .cert_pem = me != NULL ? me->cert : NULL,
        .key_pem = me != NULL ? me->key : NULL,
        .ca_pem = ca,
        .verify_peer = ca != NULL,
        .alpn = alpn,
        .n_alpn = n_alpn,
        .min_version = min_v,
        .max_version = max_v,
    };
    char err[256];
    tls_ctx_t *c = tls_ctx_create(&o, err, sizeof err);
    if (c == NULL)
        fail_msg("tls_ctx_create: %s", err);
    return c;
}

/* ---- harness: a listener, accepted servers and connected clients on one loop ---- */

typedef struct tcase tcase_t;

typedef struct ep {
    transport_t t; /* first: the close callback finds the ep from it */
    tcase_t *tc;
    bool used, freed;
    bool server; /* accepted (else connected): picks the pattern each side sends */
    /* what it does */
    bool echo;        /* write back what it reads */
    bool shut_on_eof; /* answer the peer's EOF with a shutdown */
    bool close_at_start;
    const char *msg; /* client: written right after start (before the handshake for TLS) */
    size_t msg_len;
    uint64_t bulk;           /* bytes to send, and to expect, as a pattern */
    uint64_t pause_every;    /* bytes read between pauses of the reader */
    uint64_t close_after_rx; /* close from inside on_read once this many came */
    tls_ctx_t *ctx;          /* client: TLS with this ctx, NULL plain */
    transport_tls_opts_t opts;
    /* what happened */
    int opens, open_status;
    int closes, close_status;
    char rx[2048];
    size_t rx_len;
    uint64_t tx_off, rx_off, rx_bad, next_pause;
    int drains, waits, pauses;
    bool paused, write_failed, shut_sent;
    uint64_t resume_at;
    /* PERMISSIVE */
    bool sniffing;
    enum transport_sniff sniffed;
    char sniff[TRANSPORT_TLS_IN_BUF];
    size_t sniff_len;
    uv_connect_t creq;
} ep_t;

struct tcase {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_timer_t tick;
    struct sockaddr_in addr;
    tls_ctx_t *server_ctx; /* NULL: plain servers */
    transport_tls_opts_t server_opts;
    bool permissive;
    int bufsize; /* socket buffers (bytes) for small-window tests; 0 = default */
    ep_t server_tmpl;
    ep_t servers[4];
    ep_t clients[4];
    int n_servers;
};

#define RUN_UNTIL(tc, cond)                                                                                            \
    do {                                                                                                               \
        uint64_t end_ = uv_hrtime() + 30ull * 1000000000u;                                                             \
        while (!(cond)) {                                                                                              \
            if (uv_hrtime() > end_)                                                                                    \
                fail_msg("timed out waiting for %s", #cond);                                                           \
            uv_run(&(tc)->loop, UV_RUN_ONCE);                                                                          \
        }                                                                                                              \
    } while (0)

static void run_ms(tcase_t *tc, uint64_t ms)
{
    uint64_t end = uv_hrtime() + ms * 1000000u;
    while (uv_hrtime() < end)
        uv_run(&tc->loop, UV_RUN_ONCE);
}

static uint8_t pattern(uint64_t i, unsigned seed)
{
    return (uint8_t)((i * 131u + (i >> 8) * 7u + seed) ^ (i >> 16));
}

static void writer_pump(ep_t *e)
{
    static char chunk[24999]; /* odd size: records and reads never line up with writes */
    unsigned seed = e->server ? 1 : 2;
    while (e->tx_off < e->bulk && transport_write_queued(&e->t) < TRANSPORT_WRITE_HIGH) {
        size_t n = e->bulk - e->tx_off < sizeof chunk ? (size_t)(e->bulk - e->tx_off) : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (char)pattern(e->tx_off + i, seed);
        if (transport_write(&e->t, chunk, n) < 0) {
            e->write_failed = true;
            return;
        }
        e->tx_off += n;
    }
    if (e->tx_off < e->bulk) {
        e->waits++;
    } else if (e->bulk > 0 && !e->shut_sent) {
        e->shut_sent = true;
        transport_shutdown(&e->t);
    }
}

static void on_freed(transport_t *t)
{
    ((ep_t *)t)->freed = true;
}

static void h_open(void *ctx, int status)
{
    ep_t *e = ctx;
    e->opens++;
    e->open_status = status;
    if (status == 0 && e->bulk > 0)
        writer_pump(e);
}

static void h_read(void *ctx, char *data, size_t len);

static void h_close(void *ctx, int status)
{
    ep_t *e = ctx;
    e->closes++;
    e->close_status = status;
    if (e->shut_on_eof && status == UV_EOF)
        transport_shutdown(&e->t);
}

static void h_drain(void *ctx)
{
    ep_t *e = ctx;
    e->drains++;
    writer_pump(e);
}

static const transport_handler_t handler = {h_open, NULL, h_read, h_close, h_drain};

/* Like handler, with reads into the ep's own buffer (the no-copy path a conn uses). */
static void h_alloc(void *ctx, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    static _Thread_local char own[7000]; /* smaller than a record: SSL_read is called for pieces */
    (void)ctx;
    *b = uv_buf_init(own, sizeof own);
}
static const transport_handler_t handler_alloc = {h_open, h_alloc, h_read, h_close, h_drain};

static void start_server_tls(ep_t *e, const void *initial, size_t initial_len)
{
    transport_tls_opts_t o = e->tc->server_opts;
    o.role = TRANSPORT_SERVER;
    o.initial = initial;
    o.initial_len = initial_len;
    assert_int_equal(transport_start_tls(&e->t, e->tc->server_ctx, &o, &handler_alloc, e), 0);
    transport_read_start(&e->t);
}

static void h_read(void *ctx, char *data, size_t len)
{
    ep_t *e = ctx;
    if (e->sniffing) {
        assert_true(e->sniff_len + len <= sizeof e->sniff);
        memcpy(e->sniff + e->sniff_len, data, len);
        e->sniff_len += len;
        e->sniffed = transport_sniff(e->sniff, e->sniff_len);
        if (e->sniffed == TRANSPORT_SNIFF_NEED_MORE)
            return;
        e->sniffing = false;
        if (e->sniffed == TRANSPORT_SNIFF_TLS) {
            start_server_tls(e, e->sniff, e->sniff_len);
            return;
        }
        data = e->sniff;
        len = e->sniff_len;
    }
    if (e->bulk > 0) {
        unsigned seed = e->server ? 2 : 1;
        for (size_t i = 0; i < len; i++)
            if ((uint8_t)data[i] != pattern(e->rx_off + i, seed))
                e->rx_bad++;
        e->rx_off += len;
        if (e->pause_every > 0 && e->rx_off >= e->next_pause) {
            e->next_pause += e->pause_every;
            e->paused = true;
            e->pauses++;
            e->resume_at = uv_now(&e->tc->loop) + 5;
            transport_read_stop(&e->t);
        }
    } else {
        assert_true(e->rx_len + len <= sizeof e->rx);
        memcpy(e->rx + e->rx_len, data, len);
        e->rx_len += len;
        e->rx_off += len;
    }
    if (e->echo)
        assert_int_equal(transport_write(&e->t, data, len), 0);
    if (e->close_after_rx > 0 && e->rx_off >= e->close_after_rx)
        transport_close(&e->t, on_freed);
}

static void set_bufs(tcase_t *tc, transport_t *t)
{
    if (tc->bufsize > 0) {
        int v = tc->bufsize;
        uv_send_buffer_size((uv_handle_t *)&t->tcp, &v);
        v = tc->bufsize;
        uv_recv_buffer_size((uv_handle_t *)&t->tcp, &v);
    }
}

static void on_conn(uv_stream_t *srv, int status)
{
    tcase_t *tc = srv->data;
    assert_int_equal(status, 0);
    assert_true(tc->n_servers < 4);
    ep_t *e = &tc->servers[tc->n_servers++];
    *e = tc->server_tmpl;
    e->tc = tc;
    e->server = true;
    e->next_pause = e->pause_every;
    assert_int_equal(transport_init(&tc->loop, &e->t), 0);
    e->used = true;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&e->t.tcp), 0);
    set_bufs(tc, &e->t);
    if (tc->permissive) {
        transport_start(&e->t, &handler, e);
        e->sniffing = true;
        transport_read_start(&e->t);
    } else if (tc->server_ctx != NULL) {
        start_server_tls(e, NULL, 0);
    } else {
        transport_start(&e->t, &handler_alloc, e);
        transport_read_start(&e->t);
        if (e->bulk > 0)
            writer_pump(e);
    }
}

static void on_tick(uv_timer_t *t)
{
    tcase_t *tc = t->data;
    uint64_t now = uv_now(&tc->loop);
    for (int i = 0; i < 8; i++) {
        ep_t *e = i < 4 ? &tc->servers[i] : &tc->clients[i - 4];
        if (e->used && e->paused && now >= e->resume_at && !e->freed) {
            e->paused = false;
            transport_read_start(&e->t);
        }
    }
}

static tcase_t *tc_new(tls_ctx_t *server_ctx)
{
    tcase_t *tc = calloc(1, sizeof *tc);
    assert_int_equal(uv_loop_init(&tc->loop), 0);
    tc->server_ctx = server_ctx;
    uv_tcp_init(&tc->loop, &tc->listener);
    tc->listener.data = tc;
    uv_ip4_addr("127.0.0.1", 0, &tc->addr);
    assert_int_equal(uv_tcp_bind(&tc->listener, (const struct sockaddr *)&tc->addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&tc->listener, 16, on_conn), 0);
    int len = sizeof tc->addr;
    uv_tcp_getsockname(&tc->listener, (struct sockaddr *)&tc->addr, &len);
    uv_timer_init(&tc->loop, &tc->tick);
    tc->tick.data = tc;
    uv_timer_start(&tc->tick, on_tick, 1, 1);
    return tc;
}

static void on_connected(uv_connect_t *req, int status)
{
    ep_t *e = req->data;
    assert_int_equal(status, 0);
    set_bufs(e->tc, &e->t);
    if (e->ctx != NULL) {
        e->opts.role = TRANSPORT_CLIENT;
        assert_int_equal(transport_start_tls(&e->t, e->ctx, &e->opts, &handler, e), 0);
    } else {
        transport_start(&e->t, &handler, e);
    }
    if (e->close_at_start) {
        transport_close(&e->t, on_freed);
        return;
    }
    transport_read_start(&e->t);
    if (e->msg != NULL)
        assert_int_equal(transport_write(&e->t, e->msg, e->msg_len ? e->msg_len : strlen(e->msg)), 0);
    if (e->bulk > 0 && e->ctx == NULL)
        writer_pump(e);
}

/* Connect client i (configured by the caller beforehand). */
static ep_t *tc_connect(tcase_t *tc, int i)
{
    ep_t *e = &tc->clients[i];
    e->tc = tc;
    e->next_pause = e->pause_every;
    assert_int_equal(transport_init(&tc->loop, &e->t), 0);
    e->used = true;
    e->creq.data = e;
    assert_int_equal(uv_tcp_connect(&e->creq, &e->t.tcp, (const struct sockaddr *)&tc->addr, on_connected), 0);
    return e;
}

static void on_plain_closed(uv_handle_t *h)
{
    (void)h;
}

/* Close what is open, let the loop settle, check every transport was freed and the loop is empty. */
static void tc_free(tcase_t *tc)
{
    for (int i = 0; i < 8; i++) {
        ep_t *e = i < 4 ? &tc->servers[i] : &tc->clients[i - 4];
        if (e->used)
            transport_close(&e->t, on_freed);
    }
    uv_close((uv_handle_t *)&tc->listener, on_plain_closed);
    uv_close((uv_handle_t *)&tc->tick, on_plain_closed);
    uv_run(&tc->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 8; i++) {
        ep_t *e = i < 4 ? &tc->servers[i] : &tc->clients[i - 4];
        if (e->used)
            assert_true(e->freed);
    }
    assert_int_equal(uv_loop_close(&tc->loop), 0);
    tls_ctx_unref(tc->server_ctx);
    free(tc);
}

/* ---- tests ---- */

static void echo_and_half_close(tcase_t *tc, ep_t *c, const char *msg)
{
    RUN_UNTIL(tc, c->rx_len == strlen(msg));
    assert_memory_equal(c->rx, msg, strlen(msg));
    assert_int_equal(transport_shutdown(&c->t), 0);
    assert_int_equal(transport_write(&c->t, "x", 1), -1); /* shut down: no more writes */
    RUN_UNTIL(tc, tc->servers[0].closes == 1 && c->closes == 1);
    assert_int_equal(tc->servers[0].close_status, UV_EOF);
    assert_int_equal(c->close_status, UV_EOF);
}

static void test_plain_echo(void **state)
{
    (void)state;
    tcase_t *tc = tc_new(NULL);
    tc->server_tmpl.echo = true;
    tc->server_tmpl.shut_on_eof = true;
    ep_t *c = &tc->clients[0];
    c->msg = "hello over plain TCP";
    tc_connect(tc, 0);
    echo_and_half_close(tc, c, c->msg);
    assert_false(transport_is_tls(&c->t));
    assert_null(transport_peer_id(&c->t));
    assert_null(transport_error_reason(&c->t));
    assert_int_equal(c->opens, 0); /* plain: no on_open */
    tc_free(tc);
}

/* Write pem to a temporary file; returns its name (unlink it). */
static char *temp_pem(const char *pem)
{
    char *name = strdup("/tmp/outrider-transport-XXXXXX");
    int fd = mkstemp(name);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
    close(fd);
    return name;
}

static void test_tls_mutual_echo(void **state)
{
    (void)state;
    /* the server's ctx from files, the client's from strings */
    char *cert = temp_pem(pki.server.cert), *key = temp_pem(pki.server.key), *ca = temp_pem(pki.ca1.cert);
    tls_ctx_opts_t so = {
        .cert_file = cert, .key_file = key, .ca_file = ca, .verify_peer = true, .alpn = alpn_both, .n_alpn = 2};
    char err[256];
    tls_ctx_t *sctx = tls_ctx_create(&so, err, sizeof err);
    unlink(cert);
    unlink(key);
    unlink(ca);
    free(cert);
    free(key);
    free(ca);
    if (sctx == NULL)
        fail_msg("%s", err);
    tcase_t *tc = tc_new(sctx);
    tc->server_tmpl.echo = true;
    tc->server_tmpl.shut_on_eof = true;
    static const char *const expect[] = {ID_REVIEWS};
    ep_t *c = &tc->clients[0];
    c->ctx = ctx_pem(&pki.client, pki.ca1.cert, alpn_both, 2, 0, 0);
    c->opts.expected_ids = expect;
    c->opts.n_expected_ids = 1;
    c->opts.sni = "outbound_.9080_._.reviews.shop.svc.cluster.local";
    c->msg = "hello over mutual TLS"; /* written before the handshake: queued */
    tc_connect(tc, 0);
    echo_and_half_close(tc, c, c->msg);
    ep_t *s = &tc->servers[0];
    assert_int_equal(c->opens, 1);
    assert_int_equal(c->open_status, 0);
    assert_int_equal(s->opens, 1);
    assert_int_equal(s->open_status, 0);
    assert_true(transport_is_tls(&c->t));
    assert_string_equal(transport_peer_id(&c->t), ID_REVIEWS);
    assert_string_equal(transport_peer_id(&s->t), ID_PRODUCTPAGE);
    assert_string_equal(transport_alpn(&c->t), "h2");
    assert_string_equal(transport_alpn(&s->t), "h2");
    assert_string_equal(transport_sni(&s->t), "outbound_.9080_._.reviews.shop.svc.cluster.local");
    assert_string_equal(transport_tls_version(&c->t), "TLSv1.3");
    assert_string_equal(transport_cipher(&c->t), transport_cipher(&s->t));
    assert_true(strncmp(transport_cipher(&c->t), "TLS_", 4) == 0);
    assert_false(transport_resumed(&c->t));
    assert_null(transport_error_reason(&c->t));
    assert_null(transport_error_reason(&s->t));
    tls_ctx_unref(c->ctx);
    tc_free(tc);
}

static void test_alpn(void **state)
{
    (void)state;
    /* the server has no h2: nothing is negotiated, and the handshake still succeeds */
    tcase_t *tc = tc_new(ctx_pem(&pki.server, NULL, alpn_h1, 1, 0, 0));
    tc->server_tmpl.echo = true;
    ep_t *c = &tc->clients[0];
    c->ctx = ctx_pem(NULL, pki.ca1.cert, alpn_h2, 1, 0, 0);
    c->msg = "ping";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c->rx_len == 4);
    assert_int_equal(c->open_status, 0);
    assert_null(transport_alpn(&c->t));
    assert_null(transport_alpn(&tc->servers[0].t));
    assert_string_equal(transport_peer_id(&c->t), ID_REVIEWS);
    assert_null(transport_peer_id(&tc->servers[0].t)); /* no client certificate asked for */
    tls_ctx_unref(c->ctx);
    tc_free(tc);

    /* both have both; the connection asks for http/1.1 only */
    tc = tc_new(ctx_pem(&pki.server, NULL, alpn_both, 2, 0, 0));
    tc->server_tmpl.echo = true;
    c = &tc->clients[0];
    c->ctx = ctx_pem(NULL, pki.ca1.cert, alpn_both, 2, 0, 0);
    c->opts.alpn = alpn_h1;
    c->opts.n_alpn = 1;
    c->msg = "ping";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c->rx_len == 4);
    assert_string_equal(transport_alpn(&c->t), "http/1.1");
    assert_string_equal(transport_alpn(&tc->servers[0].t), "http/1.1");
    tls_ctx_unref(c->ctx);
    tc_free(tc);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define HEAP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define HEAP_ASAN 1
#endif
#if defined(HEAP_ASAN)
size_t __sanitizer_get_current_allocated_bytes(void); /* libasan's (sanitizer/allocator_interface.h, not installed) */
#endif

/* Bytes the heap has handed out now (ASan's allocator when it replaces malloc). */
static size_t heap_in_use(void)
{
#if defined(HEAP_ASAN)
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/*
 * transport_trim: a connection that moved bytes since the last call keeps
 * OpenSSL's record buffers; one that did not gives them back (both ends
 * together: four buffers of about 16 KB), and traffic afterwards still
 * flows both ways. A plain stream is left alone.
 */
static void test_trim(void **state)
{
    (void)state;
    tcase_t *tc = tc_new(ctx_pem(&pki.server, NULL, alpn_h1, 1, 0, 0));
    tc->server_tmpl.echo = true;
    ep_t *c = &tc->clients[0];
    c->ctx = ctx_pem(NULL, pki.ca1.cert, alpn_h1, 1, 0, 0);
    c->msg = "ping";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c->rx_len == 4);
    ep_t *s = &tc->servers[0];
    size_t before = heap_in_use();
    assert_false(transport_trim(&c->t)); /* both moved bytes: only the marks are cleared */
    assert_false(transport_trim(&s->t));
    assert_true(heap_in_use() + 4096 > before);
    assert_true(transport_trim(&c->t)); /* idle for a whole period: the buffers go */
    assert_true(transport_trim(&s->t));
    assert_false(transport_trim(&c->t)); /* once */
    size_t after = heap_in_use();
    if (after + 4 * 16384 > before)
        fail_msg("trimming two idle TLS ends freed %zd bytes", (ssize_t)before - (ssize_t)after);
    assert_int_equal(transport_write(&c->t, "pong", 4), 0);
    RUN_UNTIL(tc, c->rx_len == 8);
    assert_memory_equal(c->rx, "pingpong", 8);
    size_t again = heap_in_use();
    assert_true(again > after + 2 * 16384); /* allocated anew for the new records */
    assert_false(transport_trim(&c->t));
    assert_true(transport_trim(&c->t));
    assert_int_equal(transport_write(&c->t, "!", 1), 0);
    RUN_UNTIL(tc, c->rx_len == 9);
    tls_ctx_unref(c->ctx);
    tc_free(tc);

    tc = tc_new(NULL);
    tc->server_tmpl.echo = true;
    c = &tc->clients[0];
    c->msg = "plain";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c->rx_len == 5);
    assert_false(transport_trim(&c->t));
    assert_false(transport_trim(&c->t)); /* plain: nothing to free */
    assert_int_equal(transport_write(&c->t, "!", 1), 0);
    RUN_UNTIL(tc, c->rx_len == 6);
    tc_free(tc);
}

/* A handshake that must fail: the client with cctx (and expected ids) against a server with sctx. */
static tcase_t *failing(tls_ctx_t *sctx, tls_ctx_t *cctx, const char *const *expect, size_t n_expect)
{
    tcase_t *tc = tc_new(sctx);
    tc->server_tmpl.echo = true;
    ep_t *c = &tc->clients[0];
    c->ctx = cctx;
    c->opts.expected_ids = expect;
    c->opts.n_expected_ids = n_expect;
    c->msg = "never delivered";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, tc->n_servers == 1 && (c->opens == 1 || c->closes == 1) &&
                      (tc->servers[0].opens == 1 || tc->servers[0].closes == 1));
    assert_int_equal(tc->servers[0].rx_len, 0);
    return tc;
}

static void done_failing(tcase_t *tc)
{
    tls_ctx_unref(tc->clients[0].ctx);
    tc_free(tc);
}

static void test_unknown_ca(void **state)
{
    (void)state;
    /* the client verifies a server whose CA it does not trust */
    tcase_t *tc =
        failing(ctx_pem(&pki.rogue_server, NULL, NULL, 0, 0, 0), ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0), NULL, 0);
    ep_t *c = &tc->clients[0], *s = &tc->servers[0];
    assert_true(c->open_status < 0);
    assert_string_equal(transport_error_reason(&c->t), TRANSPORT_R_UNKNOWN_CA);
    assert_false(transport_error_remote(&c->t));
    assert_non_null(strstr(transport_error_detail(&c->t), "certificate verify failed"));
    assert_null(transport_peer_id(&c->t));
    assert_true(s->open_status < 0); /* the alert told the server */
    assert_string_equal(transport_error_reason(&s->t), TRANSPORT_R_UNKNOWN_CA);
    assert_true(transport_error_remote(&s->t));
    assert_int_equal(transport_write(&c->t, "x", 1), -1);
    done_failing(tc);

    /* the server verifies a client whose CA it does not trust */
    tc = failing(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0),
                 ctx_pem(&pki.rogue_client, pki.ca1.cert, NULL, 0, 0, 0), NULL, 0);
    s = &tc->servers[0];
    c = &tc->clients[0];
    assert_true(s->open_status < 0);
    assert_string_equal(transport_error_reason(&s->t), TRANSPORT_R_UNKNOWN_CA);
    assert_false(transport_error_remote(&s->t));
    /* TLS 1.3: the client's handshake ended before the server judged it; the refusal comes as a read error */
    RUN_UNTIL(tc, c->closes == 1 || (c->opens == 1 && c->open_status < 0));
    assert_string_equal(transport_error_reason(&c->t), TRANSPORT_R_UNKNOWN_CA);
    assert_true(transport_error_remote(&c->t));
    done_failing(tc);
}

static void test_validity(void **state)
{
    (void)state;
    tcase_t *tc =
        failing(ctx_pem(&pki.expired, NULL, NULL, 0, 0, 0), ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0), NULL, 0);
    assert_true(tc->clients[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->clients[0].t), TRANSPORT_R_EXPIRED);
    assert_string_equal(transport_error_reason(&tc->servers[0].t), TRANSPORT_R_EXPIRED);
    assert_true(transport_error_remote(&tc->servers[0].t));
    done_failing(tc);

    tc = failing(ctx_pem(&pki.not_yet_valid, NULL, NULL, 0, 0, 0), ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0), NULL, 0);
    assert_true(tc->clients[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->clients[0].t), TRANSPORT_R_NOT_YET_VALID);
    done_failing(tc);
}

static void test_san_mismatch(void **state)
{
    (void)state;
    static const char *const expect[] = {"spiffe://cluster.local/ns/shop/sa/ratings",
                                         "spiffe://cluster.local/ns/shop/sa/details"};
    tcase_t *tc =
        failing(ctx_pem(&pki.server, NULL, NULL, 0, 0, 0), ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0), expect, 2);
    assert_true(tc->clients[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->clients[0].t), TRANSPORT_R_SAN_MISMATCH);
    assert_false(transport_error_remote(&tc->clients[0].t));
    assert_true(tc->servers[0].open_status < 0);
    done_failing(tc);

    /* a trust domain ("spiffe://TD/") accepts that domain's workloads only; "spiffe://cluster" is no prefix match */
    static const char *const other_domain[] = {"spiffe://other.local/", "spiffe://cluster"};
    tc =
        failing(ctx_pem(&pki.server, NULL, NULL, 0, 0, 0), ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0), other_domain, 2);
    assert_string_equal(transport_error_reason(&tc->clients[0].t), TRANSPORT_R_SAN_MISMATCH);
    done_failing(tc);
    static const char *const domain[] = {"spiffe://cluster.local/"};
    tc = tc_new(ctx_pem(&pki.server, NULL, NULL, 0, 0, 0));
    tc->server_tmpl.echo = true;
    ep_t *c = &tc->clients[0];
    c->ctx = ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0);
    c->opts.expected_ids = domain;
    c->opts.n_expected_ids = 1;
    c->msg = "ping";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c->rx_len == 4);
    assert_string_equal(transport_peer_id(&c->t), ID_REVIEWS);
    tls_ctx_unref(c->ctx);
    tc_free(tc);
}

static void test_no_peer_certificate(void **state)
{
    (void)state;
    tcase_t *tc =
        failing(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0), ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0), NULL, 0);
    assert_true(tc->servers[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->servers[0].t), TRANSPORT_R_NO_PEER_CERTIFICATE);
    RUN_UNTIL(tc, tc->clients[0].closes == 1 || tc->clients[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->clients[0].t), TRANSPORT_R_NO_PEER_CERTIFICATE);
    done_failing(tc);
}

static void test_protocol_version(void **state)
{
    (void)state;
    tcase_t *tc =
        failing(ctx_pem(&pki.server, NULL, NULL, 0, 12, 12), ctx_pem(NULL, pki.ca1.cert, NULL, 0, 13, 13), NULL, 0);
    assert_true(tc->servers[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->servers[0].t), TRANSPORT_R_PROTOCOL_VERSION);
    assert_true(tc->clients[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->clients[0].t), TRANSPORT_R_PROTOCOL_VERSION);
    assert_true(transport_error_remote(&tc->clients[0].t));
    done_failing(tc);
}

static void test_handshake_timeout(void **state)
{
    (void)state;
    tcase_t *tc = tc_new(NULL); /* a plain server that never answers the ClientHello */
    ep_t *c = &tc->clients[0];
    c->ctx = ctx_pem(NULL, pki.ca1.cert, NULL, 0, 0, 0);
    c->msg = "queued";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, tc->n_servers == 1 && tc->servers[0].rx_len > 0); /* the ClientHello arrived */
    assert_int_equal(transport_sniff(tc->servers[0].rx, tc->servers[0].rx_len), TRANSPORT_SNIFF_TLS);
    transport_handshake_timeout(&c->t); /* what the caller's timer does */
    assert_string_equal(transport_error_reason(&c->t), TRANSPORT_R_HANDSHAKE_TIMEOUT);
    assert_int_equal(transport_write(&c->t, "x", 1), -1);
    run_ms(tc, 20);
    assert_int_equal(c->opens, 0);
    assert_int_equal(c->closes, 0);
    tls_ctx_unref(c->ctx);
    tc_free(tc);
}

/* 8 MiB each way through 64 KiB socket buffers, readers pausing every MiB: exact bytes, both writers waited. */
static void bulk(tls_ctx_t *sctx, tls_ctx_t *cctx)
{
    tcase_t *tc = tc_new(sctx);
    tc->bufsize = 64 * 1024;
    tc->server_tmpl.bulk = BULK;
    tc->server_tmpl.pause_every = 1024 * 1024;
    ep_t *c = &tc->clients[0];
    c->ctx = cctx;
    c->bulk = BULK;
    c->pause_every = 1024 * 1024;
    tc_connect(tc, 0);
    ep_t *s = &tc->servers[0];
    RUN_UNTIL(tc, tc->n_servers == 1 && s->closes == 1 && c->closes == 1);
    assert_int_equal(s->close_status, UV_EOF);
    assert_int_equal(c->close_status, UV_EOF);
    for (int i = 0; i < 2; i++) {
        ep_t *e = i ? s : c;
        assert_false(e->write_failed);
        assert_int_equal(e->tx_off, BULK);
        assert_int_equal(e->rx_off, BULK);
        assert_int_equal(e->rx_bad, 0);
        assert_true(e->pauses >= 7);
        assert_true(e->waits > 0);  /* the writer met a full queue... */
        assert_true(e->drains > 0); /* ...and resumed on on_drain */
        assert_int_equal(transport_write_queued(&e->t), 0);
    }
    tls_ctx_unref(cctx);
    tc_free(tc);
}

static void test_bulk_plain(void **state)
{
    (void)state;
    bulk(NULL, NULL);
}

static void test_bulk_tls(void **state)
{
    (void)state;
    bulk(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0), ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, 0, 0));
}

static void test_resumption(void **state)
{
    (void)state;
    for (int v = 13; v >= 12; v--) {
        tcase_t *tc = tc_new(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, v, v));
        tc->server_tmpl.echo = true;
        tls_session_cache_t *cache = tls_session_cache_create(0);
        tls_ctx_t *cctx = ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, v, v);
        static const char *const expect[] = {ID_REVIEWS};
        for (int i = 0; i < 3; i++) {
            ep_t *c = &tc->clients[i];
            /* the third connection uses a ctx rebuilt from the same files: a new generation, no resumption */
            c->ctx = i < 2 ? cctx : ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, v, v);
            c->opts.session_cache = cache;
            c->opts.session_key = "reviews.shop.svc.cluster.local:9080";
            c->opts.expected_ids = expect;
            c->opts.n_expected_ids = 1;
            c->msg = "resume?";
            tc_connect(tc, i);
            RUN_UNTIL(tc, c->rx_len == 7); /* reading the echo also took the TLS 1.3 ticket */
            assert_int_equal(tls_session_cache_size(cache), 1);
            ep_t *s = &tc->servers[i];
            assert_int_equal(transport_resumed(&c->t), i == 1);
            assert_int_equal(transport_resumed(&s->t), i == 1);
            assert_string_equal(transport_tls_version(&c->t), v == 13 ? "TLSv1.3" : "TLSv1.2");
            assert_string_equal(transport_peer_id(&c->t), ID_REVIEWS);
            assert_string_equal(transport_peer_id(&s->t), ID_PRODUCTPAGE);
            transport_close(&c->t, on_freed);
            if (i == 2)
                tls_ctx_unref(c->ctx);
        }
        tls_ctx_unref(cctx);
        tc_free(tc);
        tls_session_cache_destroy(cache);
    }
}

/* A resumed handshake skips certificate verification: the expected identity is still enforced. */
static void test_resumed_identity(void **state)
{
    (void)state;
    tcase_t *tc = tc_new(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0));
    tc->server_tmpl.echo = true;
    tls_session_cache_t *cache = tls_session_cache_create(4);
    tls_ctx_t *cctx = ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, 0, 0);
    static const char *const reviews[] = {ID_REVIEWS}, *const ratings[] = {"spiffe://cluster.local/ns/shop/sa/ratings"};
    ep_t *c0 = &tc->clients[0], *c1 = &tc->clients[1];
    c0->ctx = c1->ctx = cctx;
    c0->opts.session_cache = c1->opts.session_cache = cache;
    c0->opts.session_key = c1->opts.session_key = "shared-key";
    c0->opts.expected_ids = reviews;
    c0->opts.n_expected_ids = 1;
    c0->msg = "one";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c0->rx_len == 3);
    assert_int_equal(tls_session_cache_size(cache), 1);
    transport_close(&c0->t, on_freed);
    c1->opts.expected_ids = ratings;
    c1->opts.n_expected_ids = 1;
    tc_connect(tc, 1);
    RUN_UNTIL(tc, c1->opens == 1);
    assert_true(c1->open_status < 0);
    assert_true(transport_resumed(&c1->t));
    assert_string_equal(transport_error_reason(&c1->t), TRANSPORT_R_SAN_MISMATCH);
    assert_int_equal(tls_session_cache_size(cache), 0); /* a failed destination's session is dropped */
    tls_ctx_unref(cctx);
    tc_free(tc);
    tls_session_cache_destroy(cache);
}

/* A ClientHello announced at 100,000 bytes: the server gives up at TRANSPORT_TLS_HANDSHAKE_MAX. */
static void test_handshake_too_large(void **state)
{
    (void)state;
    static char big[5 * (5 + 16384)];
    memset(big, 0, sizeof big);
    for (int i = 0; i < 5; i++) {
        unsigned char *r = (unsigned char *)big + i * (5 + 16384);
        r[0] = 0x16, r[1] = 0x03, r[2] = 0x01, r[3] = 0x40, r[4] = 0x00; /* handshake record, 16384 bytes */
    }
    unsigned char *hs = (unsigned char *)big + 5;
    hs[0] = 0x01, hs[1] = 0x01, hs[2] = 0x86, hs[3] = 0xa0; /* ClientHello, 100000 bytes */
    tcase_t *tc = tc_new(ctx_pem(&pki.server, NULL, NULL, 0, 0, 0));
    ep_t *c = &tc->clients[0];
    c->msg = big;
    c->msg_len = sizeof big;
    tc_connect(tc, 0);
    RUN_UNTIL(tc, tc->n_servers == 1 && tc->servers[0].opens == 1);
    assert_true(tc->servers[0].open_status < 0);
    assert_string_equal(transport_error_reason(&tc->servers[0].t), TRANSPORT_R_HANDSHAKE_TOO_LARGE);
    tc_free(tc);
}

static void test_rotation(void **state)
{
    (void)state;
    tcase_t *tc = tc_new(ctx_pem(&pki.server, pki.bundle, NULL, 0, 0, 0));
    tc->server_tmpl.echo = true;
    tls_ctx_t *cctx = ctx_pem(&pki.client, pki.bundle, NULL, 0, 0, 0);
    ep_t *c0 = &tc->clients[0], *c1 = &tc->clients[1];
    c0->ctx = c1->ctx = cctx;
    c0->msg = "before";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c0->rx_len == 6);
    assert_string_equal(transport_peer_id(&c0->t), ID_REVIEWS);

    /* rotate: the listener's ctx is swapped and the old one released while c0 still uses it */
    tls_ctx_t *old = tc->server_ctx;
    tc->server_ctx = ctx_pem(&pki.rotated, pki.bundle, NULL, 0, 0, 0);
    tls_ctx_unref(old);

    c1->msg = "after";
    tc_connect(tc, 1);
    RUN_UNTIL(tc, c1->rx_len == 5);
    assert_string_equal(transport_peer_id(&c1->t), ID_REVIEWS_V2);
    assert_string_equal(transport_peer_id(&tc->servers[1].t), ID_PRODUCTPAGE);

    /* the old connection goes on with the old certificate */
    assert_int_equal(transport_write(&c0->t, "still", 5), 0);
    RUN_UNTIL(tc, c0->rx_len == 11);
    assert_memory_equal(c0->rx, "beforestill", 11);
    assert_string_equal(transport_peer_id(&c0->t), ID_REVIEWS);
    tls_ctx_unref(cctx);
    tc_free(tc); /* the old ctx goes with the old connection (LeakSanitizer checks) */
}

static void test_sniff(void **state)
{
    (void)state;
    const unsigned char *h = pki.hello;
    assert_int_equal(transport_sniff(h, pki.hello_len), TRANSPORT_SNIFF_TLS);
    assert_int_equal(transport_sniff(h, 6), TRANSPORT_SNIFF_TLS);
    for (size_t n = 0; n < 6; n++)
        assert_int_equal(transport_sniff(h, n), TRANSPORT_SNIFF_NEED_MORE);
    assert_int_equal(transport_sniff("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27), TRANSPORT_SNIFF_PLAIN);
    assert_int_equal(transport_sniff("G", 1), TRANSPORT_SNIFF_PLAIN);
    assert_int_equal(transport_sniff("PRI * HTTP/2.0\r\n", 16), TRANSPORT_SNIFF_PLAIN);
    assert_int_equal(transport_sniff("\x16", 1), TRANSPORT_SNIFF_NEED_MORE);
    assert_int_equal(transport_sniff("\x16\x03", 2), TRANSPORT_SNIFF_NEED_MORE);
    assert_int_equal(transport_sniff("\x16\x02", 2), TRANSPORT_SNIFF_PLAIN);
    assert_int_equal(transport_sniff("\x15\x03\x03\x00\x02\x02\x28", 7), TRANSPORT_SNIFF_PLAIN); /* an alert */
    assert_int_equal(transport_sniff("\x16\x03\x03\x00\x40\x02", 6), TRANSPORT_SNIFF_PLAIN);     /* ServerHello */
    assert_int_equal(transport_sniff("\x16\x03\x01\xff\xff\x01", 6), TRANSPORT_SNIFF_PLAIN);     /* too long */
}

static void test_permissive(void **state)
{
    (void)state;
    tcase_t *tc = tc_new(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0));
    tc->permissive = true;
    tc->server_tmpl.echo = true;
    ep_t *c0 = &tc->clients[0], *c1 = &tc->clients[1];
    c0->ctx = ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, 0, 0);
    c0->msg = "mtls peer";
    tc_connect(tc, 0);
    RUN_UNTIL(tc, c0->rx_len == 9);
    c1->msg = "GET / HTTP/1.1\r\n\r\n";
    tc_connect(tc, 1);
    RUN_UNTIL(tc, c1->rx_len == strlen(c1->msg));
    assert_memory_equal(c1->rx, c1->msg, c1->rx_len);
    assert_int_equal(tc->servers[0].sniffed, TRANSPORT_SNIFF_TLS);
    assert_true(transport_is_tls(&tc->servers[0].t));
    assert_string_equal(transport_peer_id(&tc->servers[0].t), ID_PRODUCTPAGE);
    assert_int_equal(tc->servers[1].sniffed, TRANSPORT_SNIFF_PLAIN);
    assert_false(transport_is_tls(&tc->servers[1].t));
    tls_ctx_unref(c0->ctx);
    tc_free(tc);
}

static void test_close_mid_handshake(void **state)
{
    (void)state;
    /* the client closes right after starting TLS (its pump armed, its ClientHello not yet sent) */
    tcase_t *tc = tc_new(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0));
    ep_t *c = &tc->clients[0];
    c->ctx = ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, 0, 0);
    c->close_at_start = true;
    tc_connect(tc, 0);
    RUN_UNTIL(tc, tc->n_servers == 1 && tc->servers[0].opens == 1);
    assert_int_equal(tc->servers[0].open_status, UV_EOF);
    assert_string_equal(transport_error_reason(&tc->servers[0].t), TRANSPORT_R_CONNECTION_CLOSED);
    assert_true(c->freed);
    tls_ctx_unref(c->ctx);
    tc_free(tc);

    /* the server closes holding half a ClientHello */
    tc = tc_new(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0));
    c = &tc->clients[0];
    c->msg = (const char *)pki.hello;
    c->msg_len = 40;
    tc_connect(tc, 0);
    RUN_UNTIL(tc, tc->n_servers == 1);
    run_ms(tc, 30);
    assert_int_equal(tc->servers[0].opens, 0);
    transport_close(&tc->servers[0].t, on_freed);
    RUN_UNTIL(tc, c->closes == 1);
    tc_free(tc);

    /* the client closes while its ClientHello is out and the server's answer is coming */
    tc = tc_new(ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0));
    c = &tc->clients[0];
    c->ctx = ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, 0, 0);
    tc_connect(tc, 0);
    RUN_UNTIL(tc, tc->n_servers == 1 && transport_read_buffered(&tc->servers[0].t) == 0 && c->t.tls != NULL);
    transport_close(&c->t, on_freed);
    RUN_UNTIL(tc, tc->servers[0].opens == 1 || tc->servers[0].closes == 1);
    tls_ctx_unref(c->ctx);
    tc_free(tc);
}

static void test_close_mid_transfer(void **state)
{
    (void)state;
    for (int tls = 0; tls < 2; tls++) {
        tcase_t *tc = tc_new(tls ? ctx_pem(&pki.server, pki.ca1.cert, NULL, 0, 0, 0) : NULL);
        tc->bufsize = 64 * 1024;
        tc->server_tmpl.bulk = BULK;
        ep_t *c = &tc->clients[0];
        c->ctx = tls ? ctx_pem(&pki.client, pki.ca1.cert, NULL, 0, 0, 0) : NULL;
        c->bulk = BULK;
        c->close_after_rx = 1024 * 1024; /* from inside on_read, with writes in flight both ways */
        tc_connect(tc, 0);
        RUN_UNTIL(tc, c->freed && tc->servers[0].closes == 1);
        assert_true(tc->servers[0].close_status < 0 || tc->servers[0].close_status == UV_EOF);
        assert_true(tc->servers[0].rx_off < BULK);
        tls_ctx_unref(c->ctx);
        tc_free(tc);
    }
}

static void test_ctx_errors(void **state)
{
    (void)state;
    char err[256];
    tls_ctx_opts_t o = {.cert_pem = pki.server.cert};
    assert_null(tls_ctx_create(&o, err, sizeof err));
    assert_non_null(strstr(err, "private key"));
    o = (tls_ctx_opts_t){.cert_pem = pki.server.cert, .key_pem = pki.client.key};
    assert_null(tls_ctx_create(&o, err, sizeof err));
    assert_non_null(strstr(err, "private key"));
    assert_null(strstr(err, "PRIVATE KEY")); /* never key material */
    o = (tls_ctx_opts_t){.verify_peer = true};
    assert_null(tls_ctx_create(&o, err, sizeof err));
    o = (tls_ctx_opts_t){.ca_pem = "not a certificate"};
    assert_null(tls_ctx_create(&o, err, sizeof err));
    o = (tls_ctx_opts_t){.ca_file = "/nonexistent/ca.pem"};
    assert_null(tls_ctx_create(&o, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    o = (tls_ctx_opts_t){.min_version = 11};
    assert_null(tls_ctx_create(&o, err, sizeof err));
    tls_ctx_unref(NULL);
    tls_session_cache_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_echo),
        cmocka_unit_test(test_tls_mutual_echo),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_unknown_ca),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_san_mismatch),
        cmocka_unit_test(test_no_peer_certificate),
        cmocka_unit_test(test_protocol_version),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_bulk_plain),
        cmocka_unit_test(test_bulk_tls),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_resumed_identity),
        cmocka_unit_test(test_handshake_too_large),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_permissive),
        cmocka_unit_test(test_close_mid_handshake),
        cmocka_unit_test(test_close_mid_transfer),
        cmocka_unit_test(test_ctx_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
