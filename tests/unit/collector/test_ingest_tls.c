/*
 * Unit tests for collector/ingest_tls: credentials from PEM texts (every
 * error names its file), and the live state: a reload swaps the
 * credentials for new sessions while a session attached before keeps its
 * own, a bad reload (broken key, a key of another certificate, a missing
 * file, a CA file without a certificate) keeps them and says so in the
 * gauge. Handshakes are real GnuTLS ones over a socketpair, the client
 * checking which certificate it was shown, and with mutual TLS whether its
 * certificate is let in. Certificates are made here with GnuTLS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "ingest_tls.h"

/* A key and its certificate, as PEM texts. */
typedef struct pki {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    char *key_pem, *crt_pem;
} pki_t;

static char *export_pem(int (*export2)(void *, gnutls_x509_crt_fmt_t, gnutls_datum_t *), void *obj)
{
    gnutls_datum_t d;
    assert_int_equal(export2(obj, GNUTLS_X509_FMT_PEM, &d), 0);
    char *s = malloc(d.size + 1);
    assert_non_null(s);
    memcpy(s, d.data, d.size);
    s[d.size] = '\0';
    gnutls_free(d.data);
    return s;
}

static int export_crt(void *c, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
    return gnutls_x509_crt_export2(c, f, d);
}

static int export_key(void *k, gnutls_x509_crt_fmt_t f, gnutls_datum_t *d)
{
    return gnutls_x509_privkey_export2(k, f, d);
}

/* A certificate for cn, signed by issuer (NULL: itself), a CA or a leaf, expiring at not_after. */
static void make(pki_t *p, const char *cn, unsigned char serial, time_t not_after, int ca, const pki_t *issuer)
{
    assert_int_equal(gnutls_x509_privkey_init(&p->key), 0);
    assert_int_equal(
        gnutls_x509_privkey_generate(p->key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
    assert_int_equal(gnutls_x509_crt_init(&p->crt), 0);
    gnutls_x509_crt_t c = p->crt;
    assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(c, &serial, 1), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(c, time(NULL) - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(c, not_after), 0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn, (unsigned)strlen(cn)), 0);
    assert_int_equal(gnutls_x509_crt_set_key(c, p->key), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, ca, -1), 0);
    assert_int_equal(gnutls_x509_crt_set_key_usage(c, ca ? GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
                                                         : GNUTLS_KEY_DIGITAL_SIGNATURE),
                     0);
    if (!ca) {
        assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(c, GNUTLS_KP_TLS_WWW_SERVER, 0), 0);
        assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(c, GNUTLS_KP_TLS_WWW_CLIENT, 0), 0);
    }
    assert_int_equal(gnutls_x509_crt_sign2(c, issuer != NULL ? issuer->crt : c, issuer != NULL ? issuer->key : p->key,
                                           GNUTLS_DIG_SHA256, 0),
                     0);
    p->crt_pem = export_pem(export_crt, c);
    p->key_pem = export_pem(export_key, p->key);
}

static void pki_free(pki_t *p)
{
    gnutls_x509_crt_deinit(p->crt);
    gnutls_x509_privkey_deinit(p->key);
    free(p->crt_pem);
    free(p->key_pem);
}

/* Everything the tests use, made once: two server CAs, two client CAs, a leaf of each. */
static struct {
    time_t until_a, until_b;
    pki_t ca_a, ca_b, server_a, server_b;
    pki_t client_ca_1, client_ca_2, client_1, client_2;
    char dir[64], cert[128], key[128], ca[128];
} w;

static int setup(void **state)
{
    (void)state;
    time_t now = time(NULL);
    w.until_a = now + 30 * 86400;
    w.until_b = now + 90 * 86400;
    make(&w.ca_a, "server ca a", 1, now + 365 * 86400, 1, NULL);
    make(&w.ca_b, "server ca b", 2, now + 365 * 86400, 1, NULL);
    make(&w.server_a, "collector-a", 0x0a, w.until_a, 0, &w.ca_a);
    make(&w.server_b, "collector-b", 0x0b, w.until_b, 0, &w.ca_b);
    make(&w.client_ca_1, "client ca 1", 3, now + 365 * 86400, 1, NULL);
    make(&w.client_ca_2, "client ca 2", 4, now + 365 * 86400, 1, NULL);
    make(&w.client_1, "client-1", 0x21, now + 86400, 0, &w.client_ca_1);
    make(&w.client_2, "client-2", 0x22, now + 86400, 0, &w.client_ca_2);
    snprintf(w.dir, sizeof(w.dir), "/tmp/test_ingest_tls.XXXXXX");
    assert_non_null(mkdtemp(w.dir));
    snprintf(w.cert, sizeof(w.cert), "%s/cert.pem", w.dir);
    snprintf(w.key, sizeof(w.key), "%s/key.pem", w.dir);
    snprintf(w.ca, sizeof(w.ca), "%s/client-ca.pem", w.dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(w.cert);
    unlink(w.key);
    unlink(w.ca);
    rmdir(w.dir);
    pki_t *all[] = {&w.ca_a,        &w.ca_b,        &w.server_a, &w.server_b,
                    &w.client_ca_1, &w.client_ca_2, &w.client_1, &w.client_2};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        pki_free(all[i]);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The server's files: a certificate followed by its CA (a chain), a key, and the client CAs. */
static void write_set(const pki_t *server, const pki_t *ca, const char *key_pem, const char *client_ca_pem)
{
    char chain[16384];
    snprintf(chain, sizeof(chain), "%s%s", server->crt_pem, ca->crt_pem);
    write_file(w.cert, chain);
    write_file(w.key, key_pem);
    write_file(w.ca, client_ca_pem);
}

static void test_cred_errors(void **state)
{
    (void)state;
    char why[1024];
    char chain[16384];
    snprintf(chain, sizeof(chain), "%s%s", w.server_a.crt_pem, w.ca_a.crt_pem);
    ingest_tls_pem_t p = {chain, w.server_a.key_pem, w.client_ca_1.crt_pem};

    ingest_tls_cred_t *c = ingest_tls_cred_create(&p, "c.pem", "k.pem", "ca.pem", why, sizeof(why));
    assert_non_null(c);
    assert_int_equal(ingest_tls_cred_not_after(c), (int64_t)w.until_a);
    const char *what = ingest_tls_cred_describe(c);
    const char want[] = "subject CN=collector-a, serial 0A, valid until 20";
    assert_int_equal(strncmp(what, want, sizeof(want) - 1), 0);
    ingest_tls_cred_release(c);
    ingest_tls_cred_release(NULL);

    p.cert_pem = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
    assert_null(ingest_tls_cred_create(&p, "c.pem", "k.pem", "ca.pem", why, sizeof(why)));
    assert_int_equal(strncmp(why, "c.pem: no PEM certificate in it", 31), 0);
    p.cert_pem = "";
    assert_null(ingest_tls_cred_create(&p, "c.pem", "k.pem", "ca.pem", why, sizeof(why)));
    assert_int_equal(strncmp(why, "c.pem: no PEM certificate in it", 31), 0);

    p.cert_pem = chain;
    p.key_pem = "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n";
    assert_null(ingest_tls_cred_create(&p, "c.pem", "k.pem", "ca.pem", why, sizeof(why)));
    assert_int_equal(strncmp(why, "k.pem: not an unencrypted PEM private key", 41), 0);

    p.key_pem = w.server_b.key_pem;
    assert_null(ingest_tls_cred_create(&p, "c.pem", "k.pem", "ca.pem", why, sizeof(why)));
    assert_string_equal(why, "c.pem with k.pem: the key does not belong to the certificate");

    p.key_pem = w.server_a.key_pem;
    p.ca_pem = "no certificate here\n";
    assert_null(ingest_tls_cred_create(&p, "c.pem", "k.pem", "ca.pem", why, sizeof(why)));
    assert_int_equal(strncmp(why, "ca.pem: no PEM certificate in it", 32), 0);

    /* no client CAs: no mutual TLS, nothing said about them */
    p.ca_pem = NULL;
    c = ingest_tls_cred_create(&p, "c.pem", "k.pem", NULL, why, sizeof(why));
    assert_non_null(c);
    ingest_tls_cred_release(c);
}

/* ---- handshakes over a socketpair ---- */

typedef struct conn {
    int fd[2];
    gnutls_session_t server, client;
    gnutls_certificate_credentials_t client_cred;
    ingest_tls_cred_t *held; /* what ingest_tls_attach gave the server session */
} conn_t;

/* A connection starting: the server's session gets the live credentials, as server.c does. */
static void conn_start(conn_t *c, ingest_tls_t *t, const pki_t *client_cert)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c->fd), 0);
    assert_int_equal(gnutls_init(&c->server, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(c->server, INGEST_TLS_PRIORITIES, NULL), 0);
    gnutls_transport_set_int(c->server, c->fd[0]);
    c->held = ingest_tls_attach(t, c->server);
    assert_non_null(c->held);

    assert_int_equal(gnutls_certificate_allocate_credentials(&c->client_cred), 0);
    gnutls_datum_t d = {(unsigned char *)w.ca_a.crt_pem, (unsigned)strlen(w.ca_a.crt_pem)};
    assert_int_equal(gnutls_certificate_set_x509_trust_mem(c->client_cred, &d, GNUTLS_X509_FMT_PEM), 1);
    d = (gnutls_datum_t){(unsigned char *)w.ca_b.crt_pem, (unsigned)strlen(w.ca_b.crt_pem)};
    assert_int_equal(gnutls_certificate_set_x509_trust_mem(c->client_cred, &d, GNUTLS_X509_FMT_PEM), 1);
    if (client_cert != NULL) {
        gnutls_datum_t cd = {(unsigned char *)client_cert->crt_pem, (unsigned)strlen(client_cert->crt_pem)};
        gnutls_datum_t kd = {(unsigned char *)client_cert->key_pem, (unsigned)strlen(client_cert->key_pem)};
        assert_int_equal(gnutls_certificate_set_x509_key_mem(c->client_cred, &cd, &kd, GNUTLS_X509_FMT_PEM), 0);
    }
    assert_int_equal(gnutls_init(&c->client, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_set_default_priority(c->client), 0);
    assert_int_equal(gnutls_credentials_set(c->client, GNUTLS_CRD_CERTIFICATE, c->client_cred), 0);
    gnutls_session_set_verify_cert(c->client, NULL, 0);
    gnutls_transport_set_int(c->client, c->fd[1]);
}

/*
 * Run both ends' handshakes in turn until each is done or failed. Returns
 * the serial (one byte) of the certificate the client was shown, 0 when
 * the server refused the handshake, -1 when the client did.
 */
static int conn_handshake(conn_t *c)
{
    int cdone = 0, sdone = 0, crc = 0, src = 0;
    for (int i = 0; i < 1000 && !(cdone && sdone); i++) {
        if (!cdone) {
            crc = gnutls_handshake(c->client);
            cdone = crc == 0 || gnutls_error_is_fatal(crc);
        }
        if (!sdone) {
            src = gnutls_handshake(c->server);
            sdone = src == 0 || gnutls_error_is_fatal(src);
        }
    }
    assert_true(cdone && sdone);
    if (crc != 0)
        return src != 0 && crc == GNUTLS_E_FATAL_ALERT_RECEIVED ? 0 : -1;
    if (src != 0)
        return 0;
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(c->client, &n);
    assert_non_null(peers);
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER), 0);
    unsigned char serial[8];
    size_t sl = sizeof(serial);
    assert_int_equal(gnutls_x509_crt_get_serial(crt, serial, &sl), 0);
    gnutls_x509_crt_deinit(crt);
    assert_int_equal(sl, 1);
    return serial[0];
}

/* Closing, in libmicrohttpd's order: the session goes first, then the connection's reference. */
static void conn_close(conn_t *c)
{
    gnutls_deinit(c->server);
    ingest_tls_cred_release(c->held);
    gnutls_deinit(c->client);
    gnutls_certificate_free_credentials(c->client_cred);
    close(c->fd[0]);
    close(c->fd[1]);
}

static int render_has(ingest_tls_t *t, const char *text)
{
    buf_t b = BUF_INIT;
    ingest_tls_render_metrics(t, &b, 0);
    int found = strstr(b.data, text) != NULL;
    if (!found)
        print_message("no \"%s\" in:\n%s", text, b.data);
    buf_dispose(&b);
    return found;
}

static void test_reload(void **state)
{
    (void)state;
    char why[1024], line[128];
    write_set(&w.server_a, &w.ca_a, w.server_a.key_pem, w.client_ca_1.crt_pem);
    ingest_tls_t *t = ingest_tls_create(w.cert, w.key, w.ca, why, sizeof(why));
    assert_non_null(t);
    assert_true(ingest_tls_mutual(t));
    assert_non_null(strstr(ingest_tls_startup_pem(t)->cert_pem, w.server_a.crt_pem));
    assert_int_equal(ingest_tls_not_after(t), (int64_t)w.until_a);
    assert_true(render_has(t, "outrider_collector_ingest_tls_reload_success 1\n"));
    snprintf(line, sizeof(line), "outrider_collector_ingest_tls_certificate_expiry_seconds %lld\n",
             (long long)w.until_a);
    assert_true(render_has(t, line));

    conn_t first;
    conn_start(&first, t, &w.client_1);
    assert_int_equal(conn_handshake(&first), 0x0a);
    conn_t no_cert;
    conn_start(&no_cert, t, NULL);
    assert_int_equal(conn_handshake(&no_cert), 0);
    conn_close(&no_cert);

    /* started before the reload, shaking hands after it: the certificate it started with */
    conn_t early;
    conn_start(&early, t, &w.client_1);

    /* cert B of another CA, and client CA 2 instead of 1 */
    write_set(&w.server_b, &w.ca_b, w.server_b.key_pem, w.client_ca_2.crt_pem);
    assert_int_equal(ingest_tls_reload(t, why, sizeof(why)), 0);
    assert_int_equal(ingest_tls_not_after(t), (int64_t)w.until_b);
    assert_true(render_has(t, "outrider_collector_ingest_tls_reload_success 1\n"));
    snprintf(line, sizeof(line), "outrider_collector_ingest_tls_certificate_expiry_seconds %lld\n",
             (long long)w.until_b);
    assert_true(render_has(t, line));

    assert_int_equal(conn_handshake(&early), 0x0a);
    assert_int_equal(ingest_tls_cred_not_after(early.held), (int64_t)w.until_a);
    conn_t late;
    conn_start(&late, t, &w.client_2);
    assert_int_equal(conn_handshake(&late), 0x0b);
    conn_t old_client;
    conn_start(&old_client, t, &w.client_1);
    assert_int_equal(conn_handshake(&old_client), 0); /* client CA 1 is gone */
    conn_close(&old_client);

    /* bad files: refused, the credentials before stay */
    write_file(w.key, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n");
    assert_int_equal(ingest_tls_reload(t, why, sizeof(why)), -1);
    char want[512];
    snprintf(want, sizeof(want), "%s: not an unencrypted PEM private key", w.key);
    assert_int_equal(strncmp(why, want, strlen(want)), 0);
    assert_true(render_has(t, "outrider_collector_ingest_tls_reload_success 0\n"));
    assert_true(render_has(t, line));
    conn_t after_bad;
    conn_start(&after_bad, t, &w.client_2);
    assert_int_equal(conn_handshake(&after_bad), 0x0b);
    conn_close(&after_bad);

    write_file(w.key, w.server_a.key_pem);
    assert_int_equal(ingest_tls_reload(t, why, sizeof(why)), -1);
    snprintf(want, sizeof(want), "%s with %s: the key does not belong to the certificate", w.cert, w.key);
    assert_string_equal(why, want);

    write_file(w.key, w.server_b.key_pem);
    write_file(w.ca, "# the CAs are elsewhere now\n");
    assert_int_equal(ingest_tls_reload(t, why, sizeof(why)), -1);
    snprintf(want, sizeof(want), "%s: no PEM certificate in it", w.ca);
    assert_int_equal(strncmp(why, want, strlen(want)), 0);

    unlink(w.cert);
    assert_int_equal(ingest_tls_reload(t, why, sizeof(why)), -1);
    snprintf(want, sizeof(want), "%s: No such file or directory", w.cert);
    assert_string_equal(why, want);
    assert_int_equal(ingest_tls_not_after(t), (int64_t)w.until_b);

    /* good files again: the gauge says so */
    write_set(&w.server_a, &w.ca_a, w.server_a.key_pem, w.client_ca_2.crt_pem);
    assert_int_equal(ingest_tls_reload(t, why, sizeof(why)), 0);
    assert_true(render_has(t, "outrider_collector_ingest_tls_reload_success 1\n"));
    conn_t again;
    conn_start(&again, t, &w.client_2);
    assert_int_equal(conn_handshake(&again), 0x0a);

    /* the connections close after the state that made them is gone: their references keep them */
    conn_close(&late);
    ingest_tls_destroy(t);
    conn_close(&again);
    conn_close(&early);
    conn_close(&first);
    ingest_tls_destroy(NULL);
    ingest_tls_render_metrics(NULL, NULL, 0);
}

static void test_no_client_ca(void **state)
{
    (void)state;
    char why[1024];
    write_set(&w.server_a, &w.ca_a, w.server_a.key_pem, "");
    ingest_tls_t *t = ingest_tls_create(w.cert, w.key, "", why, sizeof(why));
    assert_non_null(t);
    assert_false(ingest_tls_mutual(t));
    assert_null(ingest_tls_startup_pem(t)->ca_pem);
    conn_t c;
    conn_start(&c, t, NULL);
    assert_int_equal(conn_handshake(&c), 0x0a);
    conn_close(&c);
    write_set(&w.server_b, &w.ca_b, w.server_b.key_pem, "");
    assert_int_equal(ingest_tls_reload(t, why, sizeof(why)), 0);
    conn_start(&c, t, NULL);
    assert_int_equal(conn_handshake(&c), 0x0b);
    conn_close(&c);
    ingest_tls_destroy(t);

    /* a bad file at the start: nothing */
    write_file(w.key, w.server_a.key_pem);
    assert_null(ingest_tls_create(w.cert, w.key, NULL, why, sizeof(why)));
    assert_non_null(strstr(why, "the key does not belong to the certificate"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cred_errors),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_no_client_ca),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
