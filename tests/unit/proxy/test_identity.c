/*
 * Unit tests for proxy/identity (and http_client_send), on real files and
 * real loopback connections, no mocks. The mesh PKI is made here with
 * ctl/pki.h (two unrelated roots of trust domain cluster.local); CA mode
 * talks to an in-process `outriderctl ca serve` (ca_server_start on port 0).
 *
 * Covered: option checks; files mode: good files load and their ctxs
 * complete a mutual TLS handshake between two transports, with both SPIFFE
 * ids; refusals with their reasons (wrong SPIFFE id, key mismatch, expired,
 * not yet valid, chain from another CA, missing file, not PEM). CA mode: a
 * fetch certifies the token's identity with the ttl asked for and its ctx
 * handshakes with a files-mode peer; a bad token names 401; a token bound
 * to another workload names both ids; a token file rotated is read again;
 * a CA whose server certificate is not under roots_file is refused. The
 * renewal thread: a 4 s certificate is renewed about 2 s later; identity_wake
 * renews at once; a CA that went away counts failures and keeps the error;
 * files mode reloads rewritten files (new serial) and a changed roots file
 * (new roots_sha256), keeps the current cert on a bad rewrite, hands out
 * nothing for a rewrite with the same bytes; identity_stop returns promptly,
 * also in the middle of a request to a CA that never answers. describe and the Prometheus text never carry the token
 * or the key. http_client_send: header fields with CR/LF refused; against
 * the CA, the Authorization header arrives, the answer's body comes back
 * (appended), and a body past answer_max fails the request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/evp.h>

#include "ca_server.h"
#include "files.h"
#include "pki.h"
#include "tokens.h"

#include "proxy/http_client.h"
#include "proxy/identity.h"
#include "proxy/transport.h"

#define TD "cluster.local"
#define ID_REVIEWS "spiffe://cluster.local/ns/shop/sa/reviews"
#define ID_PRODUCTPAGE "spiffe://cluster.local/ns/shop/sa/productpage"
#define ID_RATINGS "spiffe://cluster.local/ns/shop/sa/ratings"
#define TOKEN_REVIEWS "tok-reviews-0123456789abcdef"
#define TOKEN_RATINGS "tok-ratings-0123456789abcdef"
#define DAY ((int64_t)86400)

/* ---- the PKI and files ---- */

static struct {
    pki_ca_t ca, other; /* two roots of the same trust domain */
    char dir[64];
    char roots[128];       /* ca's root */
    char other_roots[128]; /* other's root only */
    char both_roots[128];  /* both */
    int n;                 /* file name counter */
} g;

static void make_ca(pki_ca_t *ca, int64_t now)
{
    char err[PKI_ERR_MAX];
    memset(ca, 0, sizeof(*ca));
    ca->key = pki_key_generate(err, sizeof(err));
    assert_non_null(ca->key);
    ca->cert = pki_root_create(ca->key, TD, now - DAY, now + 30 * DAY, err, sizeof(err));
    if (ca->cert == NULL)
        fail_msg("root: %s", err);
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", TD);
    ca->not_before = now - DAY;
    ca->not_after = now + 30 * DAY;
}

static void write_file(const char *path, const char *data, size_t len)
{
    char err[PKI_ERR_MAX];
    if (files_write(path, data, len, 0600, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

static char *pem_of(X509 *x)
{
    char err[PKI_ERR_MAX];
    size_t len;
    char *p = pki_cert_pem(x, &len, err, sizeof(err));
    assert_non_null(p);
    return p;
}

/* A new path in the test directory. */
static void path_new(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "%s/%d-%s", g.dir, g.n++, what);
}

static void write_roots(const char *path, const pki_ca_t *a, const pki_ca_t *b)
{
    char *pa = pem_of(a->cert), *pb = b != NULL ? pem_of(b->cert) : NULL;
    size_t la = strlen(pa), lb = pb != NULL ? strlen(pb) : 0;
    char *all = malloc(la + lb + 1);
    memcpy(all, pa, la);
    memcpy(all + la, pb != NULL ? pb : "", lb + 1);
    write_file(path, all, la + lb);
    free(all);
    free(pa);
    free(pb);
}

/* A leaf of ca for id (NULL: none; dns/ip for a server) valid nb..na, its key in *key (made when NULL). */
static X509 *leaf(const pki_ca_t *ca, EVP_PKEY **key, const char *id, const char *ip, int64_t nb, int64_t na)
{
    char err[PKI_ERR_MAX];
    if (*key == NULL)
        *key = pki_key_generate(err, sizeof(err));
    assert_non_null(*key);
    const char *ips[] = {ip};
    pki_leaf_spec_t spec = {.spiffe_id = id, .ips = ips, .n_ips = ip != NULL, .not_before = nb, .not_after = na};
    X509 *x = pki_leaf_create(ca, *key, &spec, err, sizeof(err));
    if (x == NULL)
        fail_msg("leaf: %s", err);
    return x;
}

/*
 * Write cert (leaf then ca's root) and key files for id (NULL: an IP SAN instead); serial gets the serial when not
 * NULL.
 */
static void write_identity(const pki_ca_t *ca, const char *id, int64_t nb, int64_t na, EVP_PKEY *key_for_cert,
                           EVP_PKEY *key_in_file, const char *cert_path, const char *key_path, char *serial)
{
    char err[PKI_ERR_MAX];
    EVP_PKEY *k = key_for_cert;
    X509 *x = leaf(ca, &k, id, id == NULL ? "127.0.0.1" : NULL, nb, na);
    char *lp = pem_of(x), *rp = pem_of(ca->cert);
    size_t ll = strlen(lp), rl = strlen(rp);
    char *chain = malloc(ll + rl + 1);
    memcpy(chain, lp, ll);
    memcpy(chain + ll, rp, rl + 1);
    size_t kl;
    char *kp = pki_key_pem(key_in_file != NULL ? key_in_file : k, &kl, err, sizeof(err));
    assert_non_null(kp);
    /* the key first: a poller that sees the new certificate finds its key already there */
    write_file(key_path, kp, kl);
    write_file(cert_path, chain, ll + rl);
    if (serial != NULL)
        pki_serial_hex(x, serial, PKI_SERIAL_HEX_MAX);
    pki_pem_free(kp, kl);
    free(chain);
    free(lp);
    free(rp);
    X509_free(x);
    if (k != key_for_cert)
        EVP_PKEY_free(k);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    int64_t now = (int64_t)time(NULL);
    make_ca(&g.ca, now);
    make_ca(&g.other, now);
    const char *tmp = getenv("TMPDIR");
    snprintf(g.dir, sizeof(g.dir), "%s/identity-XXXXXX", tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(g.dir));
    snprintf(g.roots, sizeof(g.roots), "%s/roots.pem", g.dir);
    snprintf(g.other_roots, sizeof(g.other_roots), "%s/other-roots.pem", g.dir);
    snprintf(g.both_roots, sizeof(g.both_roots), "%s/both-roots.pem", g.dir);
    write_roots(g.roots, &g.ca, NULL);
    write_roots(g.other_roots, &g.other, NULL);
    write_roots(g.both_roots, &g.ca, &g.other);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pki_ca_dispose(&g.ca);
    pki_ca_dispose(&g.other);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void sha256_file(const char *path, char out[65])
{
    char err[PKI_ERR_MAX];
    size_t len;
    char *data = files_read(path, 1 << 20, &len, err, sizeof(err));
    assert_non_null(data);
    unsigned char d[32];
    unsigned int n = 32;
    assert_int_equal(EVP_Digest(data, len, d, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    free(data);
}

static identity_t *files_identity(const char *sa, const char *cert, const char *key, const char *roots,
                                  uint64_t poll_ms)
{
    static const char *const alpn[] = {"h2", "http/1.1"};
    identity_opts_t o = {.trust_domain = TD,
                         .namespace = "shop",
                         .service_account = sa,
                         .roots_file = roots,
                         .cert_file = cert,
                         .key_file = key,
                         .alpn = alpn,
                         .n_alpn = 2,
                         .file_poll_ms = poll_ms};
    char err[IDENTITY_ERR_MAX];
    identity_t *id = identity_create(&o, err, sizeof(err));
    if (id == NULL)
        fail_msg("identity_create: %s", err);
    return id;
}

/* identity_fetch must fail, with every one of the NULL-terminated strings in its reason. */
static void fetch_fails(identity_t *id, ...)
{
    char err[IDENTITY_ERR_MAX] = "";
    identity_cert_t *c = identity_fetch(id, 0, err, sizeof(err));
    if (c != NULL)
        fail_msg("fetched %s, expected a refusal", c->spiffe_id);
    va_list ap;
    va_start(ap, id);
    const char *want;
    while ((want = va_arg(ap, const char *)) != NULL)
        if (strstr(err, want) == NULL)
            fail_msg("reason \"%s\" does not say \"%s\"", err, want);
    va_end(ap);
}

/* ---- a TLS handshake between two transports on one loop ---- */

typedef struct side {
    transport_t t;
    int opens, open_status;
    char rx[64];
    size_t rx_len;
    bool freed;
    uv_connect_t creq;
} side_t;

typedef struct hs {
    uv_loop_t loop;
    uv_tcp_t listener;
    struct sockaddr_in addr;
    tls_ctx_t *server_ctx;
    const char *server_expects; /* the client id the server requires */
    side_t server, client;
    bool accepted;
} hs_t;

static void s_open(void *ctx, int status)
{
    side_t *s = ctx;
    s->opens++;
    s->open_status = status;
    if (status == 0)
        transport_write(&s->t, "ping", 4);
}

static void s_read(void *ctx, char *data, size_t len)
{
    side_t *s = ctx;
    if (s->rx_len + len <= sizeof(s->rx)) {
        memcpy(s->rx + s->rx_len, data, len);
        s->rx_len += len;
    }
}

static void s_close(void *ctx, int status)
{
    (void)ctx, (void)status;
}

static const transport_handler_t s_handler = {s_open, NULL, s_read, s_close, NULL};

static void s_freed(transport_t *t)
{
    ((side_t *)t)->freed = true;
}

static void hs_accept(uv_stream_t *srv, int status)
{
    hs_t *h = srv->data;
    assert_int_equal(status, 0);
    assert_false(h->accepted);
    h->accepted = true;
    assert_int_equal(transport_init(&h->loop, &h->server.t), 0);
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&h->server.t.tcp), 0);
    const char *ids[] = {h->server_expects};
    transport_tls_opts_t o = {.role = TRANSPORT_SERVER, .expected_ids = ids, .n_expected_ids = 1};
    assert_int_equal(transport_start_tls(&h->server.t, h->server_ctx, &o, &s_handler, &h->server), 0);
    transport_read_start(&h->server.t);
}

static tls_ctx_t *hs_client_ctx;
static const char *hs_client_expects;

static void hs_connected(uv_connect_t *req, int status)
{
    hs_t *h = req->data;
    assert_int_equal(status, 0);
    const char *ids[] = {hs_client_expects};
    transport_tls_opts_t o = {.role = TRANSPORT_CLIENT, .expected_ids = ids, .n_expected_ids = 1};
    assert_int_equal(transport_start_tls(&h->client.t, hs_client_ctx, &o, &s_handler, &h->client), 0);
    transport_read_start(&h->client.t);
}

static void hs_run_until(hs_t *h, bool (*done)(hs_t *))
{
    uint64_t end = uv_hrtime() + 30ull * 1000000000u;
    while (!done(h)) {
        if (uv_hrtime() > end)
            fail_msg("handshake timed out");
        uv_run(&h->loop, UV_RUN_ONCE);
    }
}

static bool hs_exchanged(hs_t *h)
{
    return (h->server.rx_len == 4 && h->client.rx_len == 4) || h->client.open_status < 0 || h->server.open_status < 0;
}

static bool hs_freed(hs_t *h)
{
    return h->server.freed && h->client.freed;
}

static void listener_closed(uv_handle_t *hd)
{
    (void)hd;
}

/*
 * A mutual TLS handshake: the server with server_ctx requires client_id,
 * the client with client_ctx requires server_id; then "ping" each way.
 */
static void handshake(tls_ctx_t *server_ctx, const char *server_id, tls_ctx_t *client_ctx, const char *client_id)
{
    hs_t *h = calloc(1, sizeof(*h));
    assert_int_equal(uv_loop_init(&h->loop), 0);
    h->server_ctx = server_ctx;
    h->server_expects = client_id;
    hs_client_ctx = client_ctx;
    hs_client_expects = server_id;
    uv_tcp_init(&h->loop, &h->listener);
    h->listener.data = h;
    uv_ip4_addr("127.0.0.1", 0, &h->addr);
    assert_int_equal(uv_tcp_bind(&h->listener, (const struct sockaddr *)&h->addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&h->listener, 4, hs_accept), 0);
    int len = sizeof(h->addr);
    uv_tcp_getsockname(&h->listener, (struct sockaddr *)&h->addr, &len);
    assert_int_equal(transport_init(&h->loop, &h->client.t), 0);
    h->client.creq.data = h;
    assert_int_equal(uv_tcp_connect(&h->client.creq, &h->client.t.tcp, (const struct sockaddr *)&h->addr, hs_connected),
                     0);
    hs_run_until(h, hs_exchanged);
    assert_int_equal(h->client.open_status, 0);
    assert_int_equal(h->server.open_status, 0);
    assert_memory_equal(h->client.rx, "ping", 4);
    assert_memory_equal(h->server.rx, "ping", 4);
    assert_string_equal(transport_peer_id(&h->client.t), server_id);
    assert_string_equal(transport_peer_id(&h->server.t), client_id);
    assert_string_equal(transport_alpn(&h->client.t), "h2");
    transport_close(&h->client.t, s_freed);
    transport_close(&h->server.t, s_freed);
    uv_close((uv_handle_t *)&h->listener, listener_closed);
    hs_run_until(h, hs_freed);
    uv_run(&h->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    free(h);
}

/* ---- options ---- */

static void test_create_checks(void **state)
{
    (void)state;
    char err[IDENTITY_ERR_MAX];
    identity_opts_t o = {.trust_domain = "Cluster.Local", .namespace = "-shop", .service_account = ""};
    assert_null(identity_create(&o, err, sizeof(err)));
    /* every problem at once */
    assert_non_null(strstr(err, "identity.trust_domain"));
    assert_non_null(strstr(err, "identity.namespace"));
    assert_non_null(strstr(err, "identity.service_account"));
    assert_non_null(strstr(err, "identity.roots_file"));
    assert_non_null(strstr(err, "identity.ca_address: required without cert_file and key_file"));

    identity_opts_t both = {.trust_domain = TD,
                            .namespace = "shop",
                            .service_account = "reviews",
                            .roots_file = g.roots,
                            .cert_file = "c",
                            .key_file = "k",
                            .ca_address = "https://127.0.0.1:1"};
    assert_null(identity_create(&both, err, sizeof(err)));
    assert_non_null(strstr(err, "not both"));

    identity_opts_t half = {
        .trust_domain = TD, .namespace = "shop", .service_account = "reviews", .roots_file = g.roots, .cert_file = "c"};
    assert_null(identity_create(&half, err, sizeof(err)));
    assert_non_null(strstr(err, "cert_file and key_file go together"));

    identity_opts_t plain = {.trust_domain = TD,
                             .namespace = "shop",
                             .service_account = "reviews",
                             .roots_file = g.roots,
                             .ca_address = "http://127.0.0.1:1"};
    assert_null(identity_create(&plain, err, sizeof(err)));
    assert_non_null(strstr(err, "identity.ca_address: expected https://"));
    assert_non_null(strstr(err, "identity.token_file: required"));

    /* no I/O: files that do not exist are fine until a fetch */
    identity_t *id = files_identity("reviews", "/nonexistent/cert.pem", "/nonexistent/key.pem", g.roots, 0);
    fetch_fails(id, "/nonexistent/cert.pem: No such file or directory", NULL);
    identity_destroy(id);
    identity_destroy(NULL);
}

/* ---- files mode ---- */

static void test_files_good_and_handshake(void **state)
{
    (void)state;
    char cert[128], key[128], cert2[128], key2[128], serial[PKI_SERIAL_HEX_MAX], serial2[PKI_SERIAL_HEX_MAX];
    int64_t now = (int64_t)time(NULL);
    path_new(cert, sizeof(cert), "cert.pem");
    path_new(key, sizeof(key), "key.pem");
    path_new(cert2, sizeof(cert2), "cert.pem");
    path_new(key2, sizeof(key2), "key.pem");
    write_identity(&g.ca, ID_REVIEWS, now - 60, now + DAY, NULL, NULL, cert, key, serial);
    write_identity(&g.ca, ID_PRODUCTPAGE, now - 60, now + DAY, NULL, NULL, cert2, key2, serial2);

    identity_t *server = files_identity("reviews", cert, key, g.roots, 0);
    identity_t *client = files_identity("productpage", cert2, key2, g.roots, 0);
    char err[IDENTITY_ERR_MAX];
    identity_cert_t *sc = identity_fetch(server, 0, err, sizeof(err));
    if (sc == NULL)
        fail_msg("fetch: %s", err);
    identity_cert_t *cc = identity_fetch(client, 0, err, sizeof(err));
    if (cc == NULL)
        fail_msg("fetch: %s", err);
    assert_string_equal(sc->spiffe_id, ID_REVIEWS);
    assert_string_equal(sc->source, "files");
    assert_string_equal(sc->serial_hex, serial);
    assert_string_equal(cc->serial_hex, serial2);
    assert_int_equal(sc->not_before, now - 60);
    assert_int_equal(sc->not_after, now + DAY);
    assert_int_equal(identity_renew_at_ms(sc), (now - 60) * 1000 + (DAY + 60) * 1000 / 2);
    char roots_hash[65];
    sha256_file(g.roots, roots_hash);
    assert_string_equal(sc->roots_sha256, roots_hash);
    assert_int_equal(sc->n_roots, 1);

    handshake(sc->ctx, ID_REVIEWS, cc->ctx, ID_PRODUCTPAGE);
    /* the ctx outlives the cert that made it for whoever took a reference */
    tls_ctx_t *kept = sc->ctx;
    tls_ctx_ref(kept);
    identity_cert_unref(sc);
    handshake(kept, ID_REVIEWS, cc->ctx, ID_PRODUCTPAGE);
    tls_ctx_unref(kept);

    buf_t out = BUF_INIT;
    identity_describe(server, NULL, &out); /* no thread: no current cert */
    assert_non_null(strstr(out.data, "\"spiffe_id\":null"));
    assert_non_null(strstr(out.data, "\"last_error\":null"));
    out.len = 0;
    identity_describe(client, cc, &out);
    assert_non_null(strstr(out.data, "\"spiffe_id\":\"" ID_PRODUCTPAGE "\""));
    assert_non_null(strstr(out.data, "\"source\":\"files\""));
    assert_non_null(strstr(out.data, serial2));
    assert_non_null(strstr(out.data, roots_hash));
    assert_non_null(strstr(out.data, "\"cert_file\":\""));
    assert_null(strstr(out.data, "PRIVATE KEY"));
    buf_dispose(&out);
    identity_cert_unref(cc);
    identity_destroy(server);
    identity_destroy(client);
}

static void test_files_refused(void **state)
{
    (void)state;
    char cert[128], key[128];
    int64_t now = (int64_t)time(NULL);
    path_new(cert, sizeof(cert), "cert.pem");
    path_new(key, sizeof(key), "key.pem");
    identity_t *id = files_identity("reviews", cert, key, g.roots, 0);

    /* another workload's certificate: both ids in the reason */
    write_identity(&g.ca, ID_RATINGS, now - 60, now + DAY, NULL, NULL, cert, key, NULL);
    fetch_fails(id, cert, ID_RATINGS, ID_REVIEWS, NULL);

    /* no SPIFFE id at all */
    write_identity(&g.ca, NULL, now - 60, now + DAY, NULL, NULL, cert, key, NULL);
    fetch_fails(id, cert, "has no URI SAN", ID_REVIEWS, NULL);

    /* the key of another certificate */
    char err[PKI_ERR_MAX];
    EVP_PKEY *stranger = pki_key_generate(err, sizeof(err));
    write_identity(&g.ca, ID_REVIEWS, now - 60, now + DAY, NULL, stranger, cert, key, NULL);
    fetch_fails(id, key, "key does not match the certificate", NULL);
    EVP_PKEY_free(stranger);

    /* expired (beyond the skew), and not valid yet */
    write_identity(&g.ca, ID_REVIEWS, now - 2 * DAY, now - 3600, NULL, NULL, cert, key, NULL);
    fetch_fails(id, cert, "certificate expired at", NULL);
    write_identity(&g.ca, ID_REVIEWS, now + 3600, now + DAY, NULL, NULL, cert, key, NULL);
    fetch_fails(id, cert, "not valid yet", NULL);
    /* 30 s ahead is within the skew */
    write_identity(&g.ca, ID_REVIEWS, now + 30, now + DAY, NULL, NULL, cert, key, NULL);
    identity_cert_t *c = identity_fetch(id, 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("within the skew: %s", err);
    identity_cert_unref(c);

    /* a chain from another CA of the same trust domain */
    write_identity(&g.other, ID_REVIEWS, now - 60, now + DAY, NULL, NULL, cert, key, NULL);
    fetch_fails(id, cert, "does not chain to a root in", g.roots, NULL);
    /* ...which the other CA's roots accept */
    identity_t *id2 = files_identity("reviews", cert, key, g.both_roots, 0);
    c = identity_fetch(id2, 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("both roots: %s", err);
    assert_int_equal(c->n_roots, 2);
    identity_cert_unref(c);
    identity_destroy(id2);

    /* missing files, and files that are not PEM */
    write_identity(&g.ca, ID_REVIEWS, now - 60, now + DAY, NULL, NULL, cert, key, NULL);
    assert_int_equal(unlink(key), 0);
    fetch_fails(id, key, "No such file or directory", NULL);
    write_file(key, "not a key\n", 10);
    fetch_fails(id, key, "no unencrypted PEM private key", NULL);
    write_file(cert, "garbage\n", 8);
    fetch_fails(id, cert, "no PEM certificate", NULL);
    identity_t *id3 = files_identity("reviews", cert, key, "/nonexistent/roots.pem", 0);
    fetch_fails(id3, "/nonexistent/roots.pem", NULL);
    identity_destroy(id3);

    /* the last failure is what describe shows */
    buf_t out = BUF_INIT;
    identity_describe(id, NULL, &out);
    assert_non_null(strstr(out.data, "\"last_error\":\""));
    assert_non_null(strstr(out.data, "no PEM certificate"));
    buf_dispose(&out);
    identity_destroy(id);
}

/* ---- the CA ---- */

typedef struct ca_fixture {
    ca_server_t *srv;
    char address[64];
    char token_file[128], bad_token_file[128], ratings_token_file[128];
} ca_fixture_t;

static void token_error(void *ctx, const char *msg)
{
    (void)ctx;
    fail_msg("tokens: %s", msg);
}

static ca_server_t *ca_start(uint16_t port)
{
    char err[PKI_ERR_MAX];
    static const char tokens_text[] = TOKEN_REVIEWS " shop reviews\n" TOKEN_RATINGS " shop ratings\n";
    tokens_t *tokens = tokens_parse("tokens", tokens_text, sizeof(tokens_text) - 1, token_error, NULL);
    assert_non_null(tokens);
    EVP_PKEY *key = NULL;
    int64_t now = (int64_t)time(NULL);
    X509 *x = leaf(&g.ca, &key, NULL, "127.0.0.1", now - 60, now + DAY);
    size_t cl, kl;
    char *cp = pki_cert_pem(x, &cl, err, sizeof(err)), *kp = pki_key_pem(key, &kl, err, sizeof(err));
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);
    ca_server_config_t cfg = {.ca = &g.ca, .listen = listen, .max_ttl_s = DAY, .tls_cert_pem = cp, .tls_key_pem = kp};
    ca_server_t *srv = ca_server_start(&cfg, tokens, err, sizeof(err));
    if (srv == NULL)
        fail_msg("ca_server_start: %s", err);
    pki_pem_free(kp, kl);
    pki_pem_free(cp, cl);
    X509_free(x);
    EVP_PKEY_free(key);
    return srv;
}

static int ca_setup(void **state)
{
    ca_fixture_t *f = calloc(1, sizeof(*f));
    f->srv = ca_start(0);
    snprintf(f->address, sizeof(f->address), "https://127.0.0.1:%u", (unsigned)ca_server_port(f->srv));
    path_new(f->token_file, sizeof(f->token_file), "token");
    path_new(f->bad_token_file, sizeof(f->bad_token_file), "token");
    path_new(f->ratings_token_file, sizeof(f->ratings_token_file), "token");
    /* whitespace around the token is not part of it */
    write_file(f->token_file, "  " TOKEN_REVIEWS " \n\n", strlen(TOKEN_REVIEWS) + 5);
    write_file(f->bad_token_file, "tok-nobody-0123456789abcdef\n", 28);
    write_file(f->ratings_token_file, TOKEN_RATINGS, strlen(TOKEN_RATINGS));
    *state = f;
    return 0;
}

static int ca_teardown(void **state)
{
    ca_fixture_t *f = *state;
    ca_server_stop(f->srv);
    free(f);
    return 0;
}

static identity_t *ca_identity(const ca_fixture_t *f, const char *token_file, const char *roots, uint64_t ttl_s)
{
    static const char *const alpn[] = {"h2", "http/1.1"};
    identity_opts_t o = {.trust_domain = TD,
                         .namespace = "shop",
                         .service_account = "reviews",
                         .roots_file = roots,
                         .ca_address = f->address,
                         .token_file = token_file,
                         .ttl_s = ttl_s,
                         .alpn = alpn,
                         .n_alpn = 2,
                         .file_poll_ms = 50};
    char err[IDENTITY_ERR_MAX];
    identity_t *id = identity_create(&o, err, sizeof(err));
    if (id == NULL)
        fail_msg("identity_create: %s", err);
    return id;
}

static void test_ca_fetch(void **state)
{
    ca_fixture_t *f = *state;
    char err[IDENTITY_ERR_MAX];
    identity_t *id = ca_identity(f, f->token_file, g.roots, 600);
    int64_t before = (int64_t)time(NULL);
    identity_cert_t *c = identity_fetch(id, 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("fetch: %s", err);
    int64_t after = (int64_t)time(NULL);
    assert_string_equal(c->spiffe_id, ID_REVIEWS);
    assert_string_equal(c->source, "ca");
    /* ttl honoured: 600 s from the signature (the CA backdates notBefore by a minute) */
    assert_true(c->not_after >= before + 600 && c->not_after <= after + 600);
    assert_true(c->not_before <= before - 60 + 1);
    assert_int_equal(strlen(c->serial_hex), 32);
    /* renewal: half the lifetime, but not before half of what was left when it came */
    assert_true(identity_schedule_ms(c) >= c->obtained_ms + 300 * 1000 - 1000);

    /* the CA's certificate works in a handshake with a workload whose files the same CA issued */
    char cert[128], key[128];
    path_new(cert, sizeof(cert), "cert.pem");
    path_new(key, sizeof(key), "key.pem");
    write_identity(&g.ca, ID_PRODUCTPAGE, before - 60, before + DAY, NULL, NULL, cert, key, NULL);
    identity_t *peer = files_identity("productpage", cert, key, g.roots, 0);
    identity_cert_t *pc = identity_fetch(peer, 0, err, sizeof(err));
    if (pc == NULL)
        fail_msg("peer: %s", err);
    handshake(c->ctx, ID_REVIEWS, pc->ctx, ID_PRODUCTPAGE);
    handshake(pc->ctx, ID_PRODUCTPAGE, c->ctx, ID_REVIEWS);
    identity_cert_unref(pc);
    identity_destroy(peer);

    /* two fetches: two keys, two certificates */
    identity_cert_t *c2 = identity_fetch(id, 0, err, sizeof(err));
    if (c2 == NULL)
        fail_msg("fetch: %s", err);
    assert_string_not_equal(c2->serial_hex, c->serial_hex);
    identity_cert_unref(c2);

    buf_t out = BUF_INIT;
    identity_describe(id, c, &out);
    assert_non_null(strstr(out.data, "\"source\":\"ca\""));
    assert_non_null(strstr(out.data, f->address));
    assert_non_null(strstr(out.data, "\"ttl_s\":600"));
    assert_null(strstr(out.data, TOKEN_REVIEWS));
    buf_dispose(&out);
    identity_cert_unref(c);

    /* the token file is read at every request: rotated to another workload's token */
    char rotated[128];
    path_new(rotated, sizeof(rotated), "token");
    write_file(rotated, TOKEN_REVIEWS, strlen(TOKEN_REVIEWS));
    identity_t *id2 = ca_identity(f, rotated, g.roots, 0);
    c = identity_fetch(id2, 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("fetch: %s", err);
    assert_true(c->not_after - c->not_before == DAY + 60); /* ttl 0: the default, a day */
    identity_cert_unref(c);
    write_file(rotated, TOKEN_RATINGS "\n", strlen(TOKEN_RATINGS) + 1);
    fetch_fails(id2, "the CA certified " ID_RATINGS " but this sidecar is " ID_REVIEWS, NULL);
    identity_destroy(id2);
    identity_destroy(id);
}

static void test_ca_refused(void **state)
{
    ca_fixture_t *f = *state;
    identity_t *id = ca_identity(f, f->bad_token_file, g.roots, 600);
    fetch_fails(id, f->address, "HTTP 401", "unknown token", NULL);
    buf_t out = BUF_INIT;
    identity_describe(id, NULL, &out);
    assert_non_null(strstr(out.data, "HTTP 401"));
    assert_null(strstr(out.data, "tok-nobody"));
    buf_dispose(&out);
    identity_destroy(id);

    id = ca_identity(f, f->ratings_token_file, g.roots, 600);
    fetch_fails(id, "the CA certified " ID_RATINGS " but this sidecar is " ID_REVIEWS, NULL);
    identity_destroy(id);

    /* the CA's server certificate does not chain to roots_file */
    id = ca_identity(f, f->token_file, g.other_roots, 600);
    fetch_fails(id, f->address, "no answer", "unknown_ca", NULL);
    identity_destroy(id);

    id = ca_identity(f, "/nonexistent/token", g.roots, 600);
    fetch_fails(id, "/nonexistent/token: No such file or directory", NULL);
    identity_destroy(id);

    char empty[128];
    path_new(empty, sizeof(empty), "token");
    write_file(empty, " \n", 2);
    id = ca_identity(f, empty, g.roots, 600);
    fetch_fails(id, "empty token", NULL);
    identity_destroy(id);

    /* nobody listening */
    identity_opts_t o = {.trust_domain = TD,
                         .namespace = "shop",
                         .service_account = "reviews",
                         .roots_file = g.roots,
                         .ca_address = "https://127.0.0.1:1",
                         .token_file = f->token_file};
    char err[IDENTITY_ERR_MAX];
    id = identity_create(&o, err, sizeof(err));
    assert_non_null(id);
    fetch_fails(id, "CA https://127.0.0.1:1: no answer", NULL);
    identity_destroy(id);
}

/* ---- the renewal thread ---- */

typedef struct watch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    identity_cert_t *last; /* one reference */
} watch_t;

static void watch_init(watch_t *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void watch_dispose(watch_t *w)
{
    identity_cert_unref(w->last);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

static void on_new(void *arg, identity_cert_t *c)
{
    watch_t *w = arg;
    pthread_mutex_lock(&w->lock);
    identity_cert_t *old = w->last;
    w->last = c;
    w->calls++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    identity_cert_unref(old);
}

/* Wait (at most timeout_s) until on_new has been called `calls` times; returns a reference to the last cert. */
static identity_cert_t *watch_wait(watch_t *w, int calls, int timeout_s)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += timeout_s;
    pthread_mutex_lock(&w->lock);
    while (w->calls < calls)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &end) != 0 && w->calls < calls) {
            pthread_mutex_unlock(&w->lock);
            fail_msg("on_new was called %d times in %d s, expected %d", w->calls, timeout_s, calls);
        }
    identity_cert_t *c = w->last;
    identity_cert_ref(c);
    pthread_mutex_unlock(&w->lock);
    return c;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* identity_stop must return promptly (a generous bound: it wakes a condition variable). */
static void stop_promptly(identity_t *id)
{
    double t0 = now_s();
    identity_stop(id);
    assert_true(now_s() - t0 < 5.0);
}

static void test_ca_renewal(void **state)
{
    ca_fixture_t *f = *state;
    char err[IDENTITY_ERR_MAX];
    identity_t *id = ca_identity(f, f->token_file, g.roots, 4);
    identity_cert_t *first = identity_fetch(id, 0, err, sizeof(err));
    if (first == NULL)
        fail_msg("fetch: %s", err);
    /* the CA backdates notBefore by 60 s: the half-life point is past, the thread waits half of the 4 s left */
    assert_true(identity_renew_at_ms(first) < first->obtained_ms);
    assert_true(identity_schedule_ms(first) >= first->obtained_ms + 1000);
    assert_true(identity_schedule_ms(first) <= first->not_after * 1000);
    watch_t w;
    watch_init(&w);
    double t0 = now_s();
    assert_int_equal(identity_start(id, first, on_new, &w), 0);
    assert_int_equal(identity_start(id, first, on_new, &w), -1);
    identity_cert_t *second = watch_wait(&w, 1, 20);
    assert_true(now_s() - t0 >= 0.5); /* not at once */
    assert_string_equal(second->spiffe_id, ID_REVIEWS);
    assert_string_not_equal(second->serial_hex, first->serial_hex);
    assert_true(second->not_after >= first->not_after);
    identity_cert_t *third = watch_wait(&w, 2, 20); /* and again, from the renewed one */
    assert_string_not_equal(third->serial_hex, second->serial_hex);
    stop_promptly(id);

    identity_counters_t k;
    identity_counters(id, &k);
    assert_true(k.renewals_ok >= 2);
    assert_int_equal(k.renewals_failed, 0);
    buf_t out = BUF_INIT;
    identity_render_prometheus(id, &out);
    assert_non_null(strstr(out.data, "outrider_proxy_identity_renewals_total{result=\"ok\"} "));
    assert_non_null(strstr(out.data, "outrider_proxy_identity_renewals_total{result=\"failed\"} 0\n"));
    assert_non_null(strstr(out.data, "outrider_proxy_identity_cert_expiry_seconds "));
    assert_null(strstr(out.data, TOKEN_REVIEWS));
    buf_dispose(&out);
    identity_cert_unref(third);
    identity_cert_unref(second);
    identity_cert_unref(first);
    identity_destroy(id);
    watch_dispose(&w);
}

static void test_ca_wake_and_failure(void **state)
{
    ca_fixture_t *f = *state;
    char err[IDENTITY_ERR_MAX];
    identity_t *id = ca_identity(f, f->token_file, g.roots, 3600);
    identity_cert_t *first = identity_fetch(id, 0, err, sizeof(err));
    if (first == NULL)
        fail_msg("fetch: %s", err);
    watch_t w;
    watch_init(&w);
    assert_int_equal(identity_start(id, first, on_new, &w), 0);
    identity_wake(id); /* SIGHUP: renew now, not in half an hour */
    identity_cert_t *second = watch_wait(&w, 1, 20);
    assert_string_not_equal(second->serial_hex, first->serial_hex);

    /* the roots file changes (same CA plus another root): a new certificate with the new roots */
    char roots[128], hash[65];
    path_new(roots, sizeof(roots), "roots.pem");
    identity_stop(id);
    identity_destroy(id);
    write_roots(roots, &g.ca, NULL);
    id = ca_identity(f, f->token_file, roots, 3600);
    identity_cert_unref(first);
    first = identity_fetch(id, 0, err, sizeof(err));
    if (first == NULL)
        fail_msg("fetch: %s", err);
    assert_int_equal(identity_start(id, first, on_new, &w), 0);
    write_roots(roots, &g.ca, &g.other);
    sha256_file(roots, hash);
    identity_cert_t *third = watch_wait(&w, 2, 20);
    assert_string_equal(third->roots_sha256, hash);
    assert_int_equal(third->n_roots, 2);

    /* the CA goes away: the thread fails, counts, keeps the reason, keeps the current cert */
    uint16_t port = ca_server_port(f->srv);
    ca_server_stop(f->srv);
    f->srv = NULL;
    identity_wake(id);
    identity_counters_t k = {0};
    for (int i = 0; i < 200 && k.renewals_failed == 0; i++) {
        usleep(50 * 1000);
        identity_counters(id, &k);
    }
    assert_true(k.renewals_failed >= 1);
    assert_int_equal(k.not_after, third->not_after);
    buf_t out = BUF_INIT;
    identity_describe(id, NULL, &out);
    assert_non_null(strstr(out.data, third->serial_hex));
    assert_non_null(strstr(out.data, "no answer"));
    buf_dispose(&out);
    /* the CA comes back on the same port: the retry (1 s, then 2 s...) succeeds */
    f->srv = ca_start(port);
    identity_cert_t *fourth = watch_wait(&w, 3, 30);
    assert_string_not_equal(fourth->serial_hex, third->serial_hex);
    out.len = 0;
    identity_describe(id, NULL, &out);
    assert_non_null(strstr(out.data, "\"last_error\":null"));
    buf_dispose(&out);
    stop_promptly(id);

    identity_cert_unref(fourth);
    identity_cert_unref(third);
    identity_cert_unref(second);
    identity_cert_unref(first);
    identity_destroy(id);
    watch_dispose(&w);
}

static void test_files_renewal(void **state)
{
    (void)state;
    char cert[128], key[128], roots[128], serial[PKI_SERIAL_HEX_MAX], err[IDENTITY_ERR_MAX], hash[65];
    int64_t now = (int64_t)time(NULL);
    path_new(cert, sizeof(cert), "cert.pem");
    path_new(key, sizeof(key), "key.pem");
    path_new(roots, sizeof(roots), "roots.pem");
    write_roots(roots, &g.ca, NULL);
    write_identity(&g.ca, ID_REVIEWS, now - 60, now + DAY, NULL, NULL, cert, key, serial);
    identity_t *id = files_identity("reviews", cert, key, roots, 50);
    identity_cert_t *first = identity_fetch(id, 0, err, sizeof(err));
    if (first == NULL)
        fail_msg("fetch: %s", err);
    watch_t w;
    watch_init(&w);
    assert_int_equal(identity_start(id, first, on_new, &w), 0);

    /* files rewritten: the new certificate */
    write_identity(&g.ca, ID_REVIEWS, now - 60, now + 2 * DAY, NULL, NULL, cert, key, serial);
    identity_cert_t *second = watch_wait(&w, 1, 20);
    assert_string_equal(second->serial_hex, serial);
    assert_string_equal(second->roots_sha256, first->roots_sha256);

    /* roots rewritten: a new cert (same certificate) with the new roots */
    write_roots(roots, &g.ca, &g.other);
    sha256_file(roots, hash);
    identity_cert_t *third = watch_wait(&w, 2, 20);
    assert_string_equal(third->serial_hex, serial);
    assert_string_equal(third->roots_sha256, hash);
    assert_int_equal(third->n_roots, 2);

    /* a bad rewrite (another workload): refused, counted, the current cert stays */
    write_identity(&g.ca, ID_RATINGS, now - 60, now + DAY, NULL, NULL, cert, key, NULL);
    identity_counters_t k = {0};
    for (int i = 0; i < 200 && k.renewals_failed == 0; i++) {
        usleep(50 * 1000);
        identity_counters(id, &k);
    }
    assert_true(k.renewals_failed >= 1);
    /* the key may have been seen before its certificate: wait for the reason that names the wrong workload */
    buf_t out = BUF_INIT;
    for (int i = 0; i < 200; i++) {
        out.len = 0;
        identity_describe(id, NULL, &out);
        if (strstr(out.data, ID_RATINGS) != NULL)
            break;
        usleep(50 * 1000);
    }
    assert_non_null(strstr(out.data, serial));
    assert_non_null(strstr(out.data, "the certificate is for " ID_RATINGS " but this sidecar is " ID_REVIEWS));
    buf_dispose(&out);

    /* fixed: picked up at the next change */
    write_identity(&g.ca, ID_REVIEWS, now - 60, now + DAY, NULL, NULL, cert, key, serial);
    identity_cert_t *fourth = watch_wait(&w, 3, 20);
    assert_string_equal(fourth->serial_hex, serial);

    /* the roots file replaced by the same bytes (a new inode): nothing new to hand out */
    write_roots(roots, &g.ca, &g.other);
    usleep(500 * 1000);
    stop_promptly(id);
    identity_counters(id, &k);
    assert_int_equal(k.renewals_ok, 3);
    assert_int_equal(w.calls, 3);

    identity_cert_unref(fourth);
    identity_cert_unref(third);
    identity_cert_unref(second);
    identity_cert_unref(first);
    identity_destroy(id);
    watch_dispose(&w);
}

static void test_stop_while_idle(void **state)
{
    (void)state;
    char cert[128], key[128], err[IDENTITY_ERR_MAX];
    int64_t now = (int64_t)time(NULL);
    path_new(cert, sizeof(cert), "cert.pem");
    path_new(key, sizeof(key), "key.pem");
    write_identity(&g.ca, ID_REVIEWS, now - 60, now + DAY, NULL, NULL, cert, key, NULL);
    identity_t *id = files_identity("reviews", cert, key, g.roots, 60 * 1000); /* a minute between polls */
    identity_cert_t *c = identity_fetch(id, 0, err, sizeof(err));
    assert_non_null(c);
    watch_t w;
    watch_init(&w);
    assert_int_equal(identity_start(id, c, on_new, &w), 0);
    identity_cert_unref(c); /* the identity keeps its own reference */
    usleep(100 * 1000);
    stop_promptly(id);
    identity_stop(id); /* idempotent */
    assert_int_equal(w.calls, 0);
    /* started with no cert (the first fetch failed): it fetches at once */
    assert_int_equal(identity_start(id, NULL, on_new, &w), 0);
    identity_cert_t *got = watch_wait(&w, 1, 20);
    assert_string_equal(got->spiffe_id, ID_REVIEWS);
    identity_cert_unref(got);
    identity_destroy(id); /* stops the thread itself */
    watch_dispose(&w);
}

/* A CA that accepts connections and never answers: identity_stop cuts the request short. */
static void test_stop_during_request(void **state)
{
    ca_fixture_t *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0); /* connections complete in the backlog; nobody reads */
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char address[64];
    snprintf(address, sizeof(address), "https://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    identity_opts_t o = {.trust_domain = TD,
                         .namespace = "shop",
                         .service_account = "reviews",
                         .roots_file = g.roots,
                         .ca_address = address,
                         .token_file = f->token_file};
    char err[IDENTITY_ERR_MAX];
    identity_t *id = identity_create(&o, err, sizeof(err));
    assert_non_null(id);
    watch_t w;
    watch_init(&w);
    assert_int_equal(identity_start(id, NULL, on_new, &w), 0); /* no cert: it asks at once */
    usleep(300 * 1000);                                        /* well inside IDENTITY_FETCH_TIMEOUT_MS */
    stop_promptly(id);
    assert_int_equal(w.calls, 0);
    identity_counters_t k;
    identity_counters(id, &k);
    assert_int_equal(k.renewals_failed, 0); /* a request the stop cut short is no failure */
    identity_destroy(id);
    watch_dispose(&w);
    close(fd);
}

/* ---- http_client_send ---- */

static void test_http_client_send_checks(void **state)
{
    (void)state;
    char err[256];
    http_client_t *c = http_client_create("http://127.0.0.1:1", NULL, err, sizeof(err));
    assert_non_null(c);
    const char *bad[] = {"X-A: 1\r\nX-Injected: 2"};
    const char *noname[] = {": value"};
    buf_t answer = BUF_INIT;
    http_client_request_t r = {
        .path = "/", .content_type = "text/plain", .headers = bad, .n_headers = 1, .answer = &answer};
    const char *why = NULL;
    assert_int_equal(http_client_send(c, &r, UINT64_MAX, NULL, &why), -1);
    assert_string_equal(why, "bad request header field");
    r.headers = noname;
    assert_int_equal(http_client_send(c, &r, UINT64_MAX, NULL, &why), -1);
    assert_string_equal(why, "bad request header field");
    http_client_destroy(c);
    buf_dispose(&answer);
}

/* Against the real CA: the extra header reaches it, the answer's body comes back, and its bound holds. */
static void test_http_client_send_answer(void **state)
{
    ca_fixture_t *f = *state;
    char err[256];
    http_client_t *c = http_client_create(f->address, g.roots, err, sizeof(err));
    if (c == NULL)
        fail_msg("http_client_create: %s", err);
    const char *auth[] = {"Authorization: Bearer tok-nobody-0123456789abcdef"};
    buf_t answer = BUF_INIT;
    buf_append_str(&answer, "kept:");
    http_client_request_t r = {.path = "/v1/sign",
                               .content_type = "application/pkcs10",
                               .headers = auth,
                               .n_headers = 1,
                               .body = "x",
                               .len = 1,
                               .answer = &answer};
    const char *why = NULL;
    assert_int_equal(http_client_send(c, &r, UINT64_MAX, NULL, &why), 401);
    assert_string_equal(answer.data, "kept:unknown token\n");
    r.headers = NULL;
    r.n_headers = 0;
    answer.len = 0;
    assert_int_equal(http_client_send(c, &r, UINT64_MAX, NULL, &why), 401);
    assert_non_null(strstr(answer.data, "missing \"Authorization: Bearer TOKEN\""));
    r.answer_max = 4;
    answer.len = 0;
    assert_int_equal(http_client_send(c, &r, UINT64_MAX, NULL, &why), -1);
    assert_string_equal(why, "answer too large");
    /* the exporter's call on the same client still works, its answer dropped */
    assert_int_equal(http_client_post(c, "/v1/sign", "text/plain", NULL, "x", 1, UINT64_MAX, NULL, &why), 401);
    http_client_destroy(c);
    buf_dispose(&answer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_checks),
        cmocka_unit_test(test_files_good_and_handshake),
        cmocka_unit_test(test_files_refused),
        cmocka_unit_test_setup_teardown(test_ca_fetch, ca_setup, ca_teardown),
        cmocka_unit_test_setup_teardown(test_ca_refused, ca_setup, ca_teardown),
        cmocka_unit_test_setup_teardown(test_ca_renewal, ca_setup, ca_teardown),
        cmocka_unit_test_setup_teardown(test_ca_wake_and_failure, ca_setup, ca_teardown),
        cmocka_unit_test(test_files_renewal),
        cmocka_unit_test(test_stop_while_idle),
        cmocka_unit_test_setup_teardown(test_stop_during_request, ca_setup, ca_teardown),
        cmocka_unit_test(test_http_client_send_checks),
        cmocka_unit_test_setup_teardown(test_http_client_send_answer, ca_setup, ca_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
