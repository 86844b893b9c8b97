/*
 * Unit tests for proxy/jwt: the published vectors (RFC 7515 A.2 RS256 and
 * A.3 ES256, RFC 8037 A.4 EdDSA), tokens signed here with keys made here
 * (RSA 2048, EC P-256 and P-384, Ed25519) for every algorithm, time
 * claims around the clock skew, issuer and audiences, tampered and
 * mis-sized signatures, alg none and HMAC key confusion, kid selection and
 * key rotation, the key's own alg, malformed tokens and JSON, size limits,
 * crit, JWKS parsing (skipped and refused keys), claim lookup and the
 * request principal, and concurrent verification with one key set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "base64.h"
#include "buf.h"
#include "proxy/jwt.h"

#define ISS "https://issuer.example"
#define NOW 1700000000

static EVP_PKEY *rsa_a, *rsa_b, *rsa_small, *ec256, *ec384, *ed;

/* ---- helpers: encoding, keys, signing ---- */

static char *b64url(const void *data, size_t n)
{
    size_t len = base64_encoded_len(n);
    char *s = malloc(len + 1);
    base64_encode(data, n, s);
    while (len > 0 && s[len - 1] == '=')
        len--;
    s[len] = '\0';
    for (size_t i = 0; i < len; i++)
        s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    return s;
}

static uint8_t *unb64url(const char *s, size_t *n)
{
    buf_t b = BUF_INIT;
    buf_append_str(&b, s);
    for (size_t i = 0; i < b.len; i++)
        b.data[i] = b.data[i] == '-' ? '+' : b.data[i] == '_' ? '/' : b.data[i];
    uint8_t *out = malloc(b.len + 3);
    assert_int_equal(base64_decode(b.data, b.len, BASE64_LENIENT, out, b.len + 3, n), 0);
    buf_dispose(&b);
    return out;
}

static void append_bn(buf_t *b, const char *name, const BIGNUM *bn, int pad)
{
    int n = pad ? pad : BN_num_bytes(bn);
    uint8_t *raw = malloc((size_t)n);
    assert_int_equal(BN_bn2binpad(bn, raw, n), n);
    char *s = b64url(raw, (size_t)n);
    buf_printf(b, ",\"%s\":\"%s\"", name, s);
    free(s);
    free(raw);
}

/* The public JWK of k, with kid and alg when not NULL. */
static void append_jwk(buf_t *b, EVP_PKEY *k, const char *kid, const char *alg)
{
    BIGNUM *x = NULL, *y = NULL;
    if (EVP_PKEY_is_a(k, "RSA")) {
        buf_append_str(b, "{\"kty\":\"RSA\"");
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &x), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &y), 1);
        append_bn(b, "n", x, 0);
        append_bn(b, "e", y, 0);
    } else if (EVP_PKEY_is_a(k, "EC")) {
        char group[64];
        assert_int_equal(EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL), 1);
        bool p256 = strcmp(group, "prime256v1") == 0;
        buf_printf(b, "{\"kty\":\"EC\",\"crv\":\"%s\"", p256 ? "P-256" : "P-384");
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
        append_bn(b, "x", x, p256 ? 32 : 48);
        append_bn(b, "y", y, p256 ? 32 : 48);
    } else {
        uint8_t raw[32];
        size_t n = sizeof(raw);
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &n), 1);
        char *s = b64url(raw, n);
        buf_printf(b, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"", s);
        free(s);
    }
    if (kid)
        buf_printf(b, ",\"kid\":\"%s\"", kid);
    if (alg)
        buf_printf(b, ",\"alg\":\"%s\"", alg);
    buf_append_str(b, "}");
    BN_free(x);
    BN_free(y);
}

typedef struct kspec {
    EVP_PKEY *key;
    const char *kid, *alg;
} kspec_t;

static char *jwks_json(const kspec_t *ks, size_t n)
{
    buf_t b = BUF_INIT;
    buf_append_str(&b, "{\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append_char(&b, ',');
        append_jwk(&b, ks[i].key, ks[i].kid, ks[i].alg);
    }
    buf_append_str(&b, "]}");
    return buf_steal(&b, NULL);
}

static jwks_t *jwks_of(const kspec_t *ks, size_t n)
{
    char *json = jwks_json(ks, n), err[256];
    jwks_t *set = jwks_parse(json, strlen(json), err, sizeof(err));
    if (set == NULL)
        fail_msg("jwks_parse: %s", err);
    free(json);
    return set;
}

#define JWKS(...) jwks_of((kspec_t[]){__VA_ARGS__}, sizeof((kspec_t[]){__VA_ARGS__}) / sizeof(kspec_t))

/* The raw JWS signature (R||S for ECDSA) of msg with key under alg. */
static uint8_t *sign_raw(EVP_PKEY *key, const char *alg, const char *msg, size_t len, size_t *sig_len)
{
    char md[8] = "SHA";
    bool eddsa = strcmp(alg, "EdDSA") == 0;
    if (!eddsa)
        memcpy(md + 3, alg + 2, 4);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit_ex(ctx, &pctx, eddsa ? NULL : md, NULL, NULL, key, NULL), 1);
    if (alg[0] == 'P') {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    size_t n = 0;
    assert_int_equal(EVP_DigestSign(ctx, NULL, &n, (const uint8_t *)msg, len), 1);
    uint8_t *sig = malloc(n);
    assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const uint8_t *)msg, len), 1);
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E' && !eddsa) {
        int half = strcmp(alg, "ES256") == 0 ? 32 : 48;
        const uint8_t *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        assert_non_null(es);
        uint8_t *raw = malloc(2 * (size_t)half);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half);
        ECDSA_SIG_free(es);
        free(sig);
        sig = raw;
        n = 2 * (size_t)half;
    }
    *sig_len = n;
    return sig;
}

/* header.payload (each base64url of the given JSON text), without the signature. */
static char *signing_input(const char *header, const char *payload)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s.%s", h, p);
    free(h);
    free(p);
    return buf_steal(&b, NULL);
}

static char *with_sig(char *input, const uint8_t *sig, size_t n)
{
    char *s = b64url(sig, n);
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s.%s", input, s);
    free(s);
    free(input);
    return buf_steal(&b, NULL);
}

/* A token with the given header and payload JSON, signed with key under alg (whatever the header says). */
static char *token(EVP_PKEY *key, const char *alg, const char *header, const char *payload)
{
    char *in = signing_input(header, payload);
    size_t n;
    uint8_t *sig = sign_raw(key, alg, in, strlen(in), &n);
    char *t = with_sig(in, sig, n);
    free(sig);
    return t;
}

/* A token whose header is {"alg":alg[,"kid":kid]} and payload the given JSON. */
static char *tok(EVP_PKEY *key, const char *alg, const char *kid, const char *payload)
{
    char header[128];
    if (kid)
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"%s\"}", alg);
    return token(key, alg, header, payload);
}

static const char *const PAYLOAD = "{\"iss\":\"" ISS "\",\"sub\":\"alice\",\"exp\":1700003600}";

static jwt_check_t check_default(void)
{
    jwt_check_t c = {0};
    c.issuer = ISS;
    c.now = NOW;
    return c;
}

/* Verify t and compare the status, printing the reason when it differs. The token is kept when out is not NULL. */
static void expect_with(const jwks_t *ks, const char *t, const jwt_check_t *c, jwt_status_t want, jwt_t **out)
{
    char err[256];
    jwt_t *j = (jwt_t *)0x1;
    jwt_status_t rc = jwt_verify(ks, t, strlen(t), c, &j, err, sizeof(err));
    if (rc != want)
        fail_msg("got %d (%s), want %d (%s)", rc, err, want, jwt_status_str(want));
    if (rc == JWT_OK) {
        assert_non_null(j);
        assert_string_equal(jwt_issuer(j), c->issuer);
    } else {
        assert_null(j);
        assert_true(err[0] != '\0');
    }
    if (out)
        *out = j;
    else
        jwt_destroy(j);
}

static void expect(const jwks_t *ks, const char *t, jwt_status_t want)
{
    jwt_check_t c = check_default();
    expect_with(ks, t, &c, want, NULL);
}

/* Sign a token, verify it, and free it. */
static void expect_tok(const jwks_t *ks, EVP_PKEY *key, const char *alg, const char *kid, const char *payload,
                       jwt_status_t want)
{
    char *t = tok(key, alg, kid, payload);
    expect(ks, t, want);
    free(t);
}

/* ---- published vectors ---- */

static const char RFC7515_PAYLOAD[] =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290"
    "Ijp0cnVlfQ";

static void test_rfc_vectors(void **state)
{
    (void)state;
    static const char rsa_jwk[] =
        "{\"kty\":\"RSA\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-"
        "4qPCJrcS2mJPMEzP1"
        "Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-"
        "bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-"
        "KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_"
        "h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\"}";
    static const char rs256_sig[] = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_"
                                    "lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_"
                                    "nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
                                    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-"
                                    "eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXL"
                                    "IhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    static const char ec_jwk[] =
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
    static const char es256_sig[] =
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    static const char ed_jwk[] =
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
    static const char eddsa[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_"
                                "MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    char err[256], t[1024];
    jwt_check_t c = {.issuer = "joe", .now = 1300819000};
    jwt_t *j;

    jwks_t *ks = jwks_parse(rsa_jwk, strlen(rsa_jwk), err, sizeof(err)); /* a bare JWK */
    assert_non_null(ks);
    assert_string_equal(err, "");
    assert_int_equal(jwks_count(ks), 1);
    snprintf(t, sizeof(t), "eyJhbGciOiJSUzI1NiJ9.%s.%s", RFC7515_PAYLOAD, rs256_sig);
    expect_with(ks, t, &c, JWT_OK, &j);
    const char *const root[] = {"http://example.com/is_root"};
    const char *v[2];
    assert_int_equal(jwt_claim(j, root, 1, v, 2), 1);
    assert_string_equal(v[0], "true");
    assert_null(jwt_subject(j));
    assert_null(jwt_principal(j));
    jwt_destroy(j);
    c.now = 1300819380 + 60; /* exp + skew */
    expect_with(ks, t, &c, JWT_ERR_EXPIRED, NULL);
    c.now = 1300819000;
    t[strlen(t) - 2] ^= 1; /* 'R' <-> 'S' */
    expect_with(ks, t, &c, JWT_ERR_SIGNATURE, NULL);
    jwks_destroy(ks);

    ks = jwks_parse(ec_jwk, strlen(ec_jwk), err, sizeof(err));
    assert_non_null(ks);
    snprintf(t, sizeof(t), "eyJhbGciOiJFUzI1NiJ9.%s.%s", RFC7515_PAYLOAD, es256_sig);
    expect_with(ks, t, &c, JWT_OK, NULL);
    c.issuer = "bob";
    expect_with(ks, t, &c, JWT_ERR_ISSUER, NULL);
    c.issuer = "joe";
    jwks_destroy(ks);

    /* RFC 8037 A.4: the signature verifies, but its payload is text, not claims */
    ks = jwks_parse(ed_jwk, strlen(ed_jwk), err, sizeof(err));
    assert_non_null(ks);
    expect_with(ks, eddsa, &c, JWT_ERR_PAYLOAD, NULL);
    snprintf(t, sizeof(t), "%s", eddsa);
    t[30] ^= 1;
    expect_with(ks, t, &c, JWT_ERR_SIGNATURE, NULL);
    jwks_destroy(ks);
}

/* ---- every algorithm ---- */

static void test_algorithms(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({rsa_a, "r", NULL}, {ec256, "e256", NULL}, {ec384, "e384", NULL}, {ed, "ed", NULL});
    static const char *const rsa_algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};
    for (size_t i = 0; i < 6; i++) {
        expect_tok(ks, rsa_a, rsa_algs[i], "r", PAYLOAD, JWT_OK);
        expect_tok(ks, rsa_a, rsa_algs[i], NULL, PAYLOAD, JWT_OK);
    }
    expect_tok(ks, ec256, "ES256", "e256", PAYLOAD, JWT_OK);
    expect_tok(ks, ec256, "ES256", NULL, PAYLOAD, JWT_OK);
    expect_tok(ks, ec384, "ES384", "e384", PAYLOAD, JWT_OK);
    expect_tok(ks, ec384, "ES384", NULL, PAYLOAD, JWT_OK);
    expect_tok(ks, ed, "EdDSA", "ed", PAYLOAD, JWT_OK);
    expect_tok(ks, ed, "EdDSA", NULL, PAYLOAD, JWT_OK);

    /* a PS256 signature is not an RS256 one, nor the other way round */
    char *in = signing_input("{\"alg\":\"RS256\"}", PAYLOAD);
    size_t n;
    uint8_t *sig = sign_raw(rsa_a, "PS256", in, strlen(in), &n);
    char *t = with_sig(in, sig, n);
    expect(ks, t, JWT_ERR_SIGNATURE);
    free(t);
    free(sig);
    in = signing_input("{\"alg\":\"PS256\"}", PAYLOAD);
    sig = sign_raw(rsa_a, "RS256", in, strlen(in), &n);
    t = with_sig(in, sig, n);
    expect(ks, t, JWT_ERR_SIGNATURE);
    free(t);
    free(sig);

    /* a kid naming a key of another type: no key fits */
    expect_tok(ks, ec256, "ES256", "r", PAYLOAD, JWT_ERR_NO_KEY);
    /* ES384 with the P-256 key's kid */
    expect_tok(ks, ec384, "ES384", "e256", PAYLOAD, JWT_ERR_NO_KEY);
    jwks_destroy(ks);

    /* only RSA in the set: EC and EdDSA tokens find no key */
    ks = JWKS({rsa_a, NULL, NULL});
    expect_tok(ks, ec256, "ES256", NULL, PAYLOAD, JWT_ERR_NO_KEY);
    expect_tok(ks, ed, "EdDSA", NULL, PAYLOAD, JWT_ERR_NO_KEY);
    jwks_destroy(ks);
}

/* ---- time ---- */

static void expect_payload(const jwks_t *ks, const jwt_check_t *c, const char *payload, jwt_status_t want)
{
    char *t = tok(ed, "EdDSA", NULL, payload);
    expect_with(ks, t, c, want, NULL);
    free(t);
}

static void test_time(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({ed, NULL, NULL});
    jwt_check_t c = check_default();
    char p[256];
#define AT(fmt, ...) (snprintf(p, sizeof(p), "{\"iss\":\"" ISS "\"," fmt "}", __VA_ARGS__), p)
    expect_payload(ks, &c, AT("\"exp\":%d", NOW + 1), JWT_OK);
    expect_payload(ks, &c, AT("\"exp\":%d", NOW - 59), JWT_OK); /* within the skew */
    expect_payload(ks, &c, AT("\"exp\":%d", NOW - 60), JWT_ERR_EXPIRED);
    expect_payload(ks, &c, AT("\"exp\":%d", NOW - 3600), JWT_ERR_EXPIRED);
    expect_payload(ks, &c, AT("\"nbf\":%d", NOW + 60), JWT_OK); /* within the skew */
    expect_payload(ks, &c, AT("\"nbf\":%d", NOW + 61), JWT_ERR_NOT_YET_VALID);
    expect_payload(ks, &c, AT("\"nbf\":%d,\"exp\":%d", NOW - 10, NOW + 10), JWT_OK);
    expect_payload(ks, &c, AT("\"iat\":%d", NOW + 100000), JWT_OK); /* iat is not checked */
    expect_payload(ks, &c, AT("\"exp\":%d.5", NOW - 60), JWT_OK);   /* a NumericDate may have a fraction */
    expect_payload(ks, &c, AT("\"exp\":%s", "1e999"), JWT_ERR_PAYLOAD);
    expect_payload(ks, &c, AT("\"exp\":%s", "99999999999999999999999"), JWT_OK);
    expect_payload(ks, &c, AT("\"exp\":%s", "-99999999999999999999999"), JWT_ERR_EXPIRED);
    expect_payload(ks, &c, AT("\"exp\":\"%d\"", NOW + 10), JWT_ERR_PAYLOAD);
    expect_payload(ks, &c, AT("\"nbf\":%s", "null"), JWT_ERR_PAYLOAD);
    expect_payload(ks, &c, AT("\"iat\":%s", "true"), JWT_ERR_PAYLOAD);

    c.clock_skew_s = -1; /* none */
    expect_payload(ks, &c, AT("\"exp\":%d", NOW), JWT_ERR_EXPIRED);
    expect_payload(ks, &c, AT("\"exp\":%d", NOW + 1), JWT_OK);
    expect_payload(ks, &c, AT("\"nbf\":%d", NOW), JWT_OK);
    expect_payload(ks, &c, AT("\"nbf\":%d", NOW + 1), JWT_ERR_NOT_YET_VALID);
    c.clock_skew_s = 300;
    expect_payload(ks, &c, AT("\"exp\":%d", NOW - 299), JWT_OK);
    expect_payload(ks, &c, AT("\"nbf\":%d", NOW + 300), JWT_OK);
    expect_payload(ks, &c, AT("\"nbf\":%d", NOW + 301), JWT_ERR_NOT_YET_VALID);
    c.clock_skew_s = INT64_MAX;
    c.now = INT64_MIN;
    expect_payload(ks, &c, AT("\"exp\":%d", 0), JWT_OK);
#undef AT
    jwks_destroy(ks);
}

/* ---- issuer and audiences ---- */

static void test_issuer(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({ec256, NULL, NULL});
    expect_tok(ks, ec256, "ES256", NULL, "{\"iss\":\"https://other.example\"}", JWT_ERR_ISSUER);
    expect_tok(ks, ec256, "ES256", NULL, "{\"iss\":\"" ISS "/\"}", JWT_ERR_ISSUER);
    expect_tok(ks, ec256, "ES256", NULL, "{\"iss\":\"HTTPS://issuer.example\"}", JWT_ERR_ISSUER);
    expect_tok(ks, ec256, "ES256", NULL, "{\"sub\":\"alice\"}", JWT_ERR_ISSUER);
    expect_tok(ks, ec256, "ES256", NULL, "{\"iss\":[\"" ISS "\"]}", JWT_ERR_PAYLOAD);
    expect_tok(ks, ec256, "ES256", NULL, "{\"iss\":\"" ISS "\",\"sub\":7}", JWT_ERR_PAYLOAD);
    expect_tok(ks, ec256, "ES256", NULL, "{}", JWT_ERR_ISSUER);

    /* arguments */
    char *t = tok(ec256, "ES256", NULL, PAYLOAD);
    jwt_check_t c = check_default();
    jwt_t *j;
    char err[128];
    c.issuer = NULL;
    assert_int_equal(jwt_verify(ks, t, strlen(t), &c, &j, err, sizeof(err)), JWT_ERR_ARGS);
    assert_null(j);
    c.issuer = ISS;
    assert_int_equal(jwt_verify(NULL, t, strlen(t), &c, &j, err, sizeof(err)), JWT_ERR_ARGS);
    assert_int_equal(jwt_verify(ks, t, strlen(t), NULL, &j, err, sizeof(err)), JWT_ERR_ARGS);
    assert_int_equal(jwt_verify(ks, t, strlen(t), &c, &j, NULL, 0), JWT_OK);
    jwt_destroy(j);
    free(t);
    jwks_destroy(ks);
}

/* jwt_verify_pick: the payload's iss chooses keys and checks; pick's refusals come back as they are */
typedef struct picker {
    const jwks_t *a, *b; /* ISS's keys, and https://b.example's */
    jwt_check_t ca, cb;
    char seen[128];
    int calls;
    jwt_status_t refuse_b; /* JWT_OK, or what to answer for b */
} picker_t;

static jwt_status_t pick(void *ctx, const char *iss, const jwks_t **keys, const jwt_check_t **check)
{
    picker_t *p = ctx;
    p->calls++;
    snprintf(p->seen, sizeof p->seen, "%s", iss);
    if (strcmp(iss, ISS) == 0) {
        *keys = p->a, *check = &p->ca;
        return JWT_OK;
    }
    if (strcmp(iss, "https://b.example") == 0 && p->refuse_b == JWT_OK) {
        *keys = p->b, *check = &p->cb;
        return JWT_OK;
    }
    return strcmp(iss, "https://b.example") == 0 ? p->refuse_b : JWT_ERR_ISSUER;
}

static void expect_pick(picker_t *p, const char *t, jwt_status_t want, const char *want_err)
{
    char err[256];
    jwt_t *j = (jwt_t *)0x1;
    jwt_status_t rc = jwt_verify_pick(t, strlen(t), pick, p, &j, err, sizeof err);
    if (rc != want)
        fail_msg("got %d (%s), want %d", rc, err, want);
    if (rc == JWT_OK)
        jwt_destroy(j);
    else
        assert_null(j);
    if (want_err != NULL)
        assert_string_equal(err, want_err);
}

static void test_pick(void **state)
{
    (void)state;
    jwks_t *ka = JWKS({ec256, NULL, NULL}), *kb = JWKS({rsa_a, NULL, NULL});
    picker_t p = {.a = ka, .b = kb, .ca = check_default(), .cb = check_default()};
    p.cb.issuer = "https://b.example";
    static const char *const aud_b[] = {"reviews"};
    p.cb.audiences = aud_b, p.cb.n_audiences = 1;

    char *t = tok(ec256, "ES256", NULL, PAYLOAD);
    expect_pick(&p, t, JWT_OK, NULL);
    assert_string_equal(p.seen, ISS);
    free(t);
    /* b's token with b's keys and b's audiences */
    t = tok(rsa_a, "RS256", NULL, "{\"iss\":\"https://b.example\",\"sub\":\"x\",\"aud\":\"reviews\"}");
    expect_pick(&p, t, JWT_OK, NULL);
    free(t);
    t = tok(rsa_a, "RS256", NULL, "{\"iss\":\"https://b.example\",\"sub\":\"x\",\"aud\":\"ratings\"}");
    expect_pick(&p, t, JWT_ERR_AUDIENCE, NULL);
    free(t);
    /* signed with the other issuer's key: a's keys are tried, not b's */
    t = tok(rsa_a, "RS256", NULL, PAYLOAD);
    expect_pick(&p, t, JWT_ERR_NO_KEY, NULL);
    free(t);
    t = tok(ec256, "ES256", NULL, "{\"iss\":\"https://c.example\"}");
    expect_pick(&p, t, JWT_ERR_ISSUER, "Jwt issuer is not configured");
    free(t);
    p.refuse_b = JWT_ERR_JWKS_FETCH;
    t = tok(rsa_a, "RS256", NULL, "{\"iss\":\"https://b.example\",\"aud\":\"reviews\"}");
    expect_pick(&p, t, JWT_ERR_JWKS_FETCH, "Jwks remote fetch is failed");
    free(t);
    /* no rule can be chosen: the format refusal, and pick is not asked */
    int calls = p.calls;
    static const char *const unreadable[] = {"{\"sub\":\"alice\"}", "{\"iss\":7}", "[\"" ISS "\"]", "not json"};
    for (size_t i = 0; i < sizeof unreadable / sizeof unreadable[0]; i++) {
        t = tok(ec256, "ES256", NULL, unreadable[i]);
        expect_pick(&p, t, JWT_ERR_FORMAT, "Jwt is not in the form of Header.Payload.Signature");
        free(t);
    }
    expect_pick(&p, "a.b", JWT_ERR_FORMAT, NULL);
    assert_int_equal(p.calls, calls);
    /* a bad signature after a good choice */
    t = tok(ec256, "ES256", NULL, PAYLOAD);
    t[strlen(t) - 3] = t[strlen(t) - 3] == 'A' ? 'B' : 'A';
    expect_pick(&p, t, JWT_ERR_SIGNATURE, NULL);
    jwt_t *j;
    assert_int_equal(jwt_verify_pick(t, strlen(t), NULL, &p, &j, NULL, 0), JWT_ERR_ARGS);
    assert_null(j);
    free(t);
    jwks_destroy(ka);
    jwks_destroy(kb);
}

static void test_audience(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({ed, NULL, NULL});
    static const char *const auds[] = {"svc-a", "https://svc-b.example/"};
    jwt_check_t c = check_default();
    c.audiences = auds;
    c.n_audiences = 2;
    jwt_t *j;

    char *t = tok(ed, "EdDSA", NULL, "{\"iss\":\"" ISS "\",\"aud\":\"svc-a\"}");
    expect_with(ks, t, &c, JWT_OK, &j);
    size_t n;
    const char *const *a = jwt_audiences(j, &n);
    assert_int_equal(n, 1);
    assert_string_equal(a[0], "svc-a");
    jwt_destroy(j);
    free(t);

    t = tok(ed, "EdDSA", NULL, "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"svc-a\",\"y\"]}");
    expect_with(ks, t, &c, JWT_OK, &j);
    a = jwt_audiences(j, &n);
    assert_int_equal(n, 3);
    assert_string_equal(a[0], "x");
    assert_string_equal(a[2], "y");
    jwt_destroy(j);
    free(t);

    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":\"svc-c\"}", JWT_ERR_AUDIENCE);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":[\"svc-c\",\"svc\"]}", JWT_ERR_AUDIENCE);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":[]}", JWT_ERR_AUDIENCE);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\"}", JWT_ERR_AUDIENCE);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":\"SVC-A\"}", JWT_ERR_AUDIENCE);
    /* Envoy's comparison: scheme and one trailing slash do not count */
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":\"svc-b.example\"}", JWT_OK);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":\"http://svc-a/\"}", JWT_OK);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":\"ftp://svc-a\"}", JWT_ERR_AUDIENCE);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":\"svc-a//\"}", JWT_ERR_AUDIENCE);
    /* wrong types are refused whether or not audiences are configured */
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":[\"svc-a\",1]}", JWT_ERR_PAYLOAD);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":{\"svc-a\":1}}", JWT_ERR_PAYLOAD);

    /* no audiences configured: no check */
    c.n_audiences = 0;
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":\"svc-c\"}", JWT_OK);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\"}", JWT_OK);
    expect_payload(ks, &c, "{\"iss\":\"" ISS "\",\"aud\":7}", JWT_ERR_PAYLOAD);
    t = tok(ed, "EdDSA", NULL, "{\"iss\":\"" ISS "\"}");
    expect_with(ks, t, &c, JWT_OK, &j);
    assert_null(jwt_audiences(j, &n));
    assert_int_equal(n, 0);
    jwt_destroy(j);
    free(t);
    jwks_destroy(ks);
}

/* ---- signatures ---- */

/* t with bit `bit` of signature byte `byte` flipped (negative byte: from the end). */
static char *flip_sig(const char *t, long byte, int bit)
{
    const char *dot = strrchr(t, '.');
    size_t n;
    uint8_t *sig = unb64url(dot + 1, &n);
    size_t at = byte < 0 ? n - (size_t)(-byte) : (size_t)byte;
    sig[at] ^= (uint8_t)(1u << bit);
    char *in = strndup(t, (size_t)(dot - t));
    char *out = with_sig(in, sig, n);
    free(sig);
    return out;
}

/* t with its signature cut or grown to n bytes. */
static char *resize_sig(const char *t, size_t want)
{
    const char *dot = strrchr(t, '.');
    size_t n;
    uint8_t *sig = unb64url(dot + 1, &n);
    sig = realloc(sig, want > n ? want : n);
    if (want > n)
        memset(sig + n, 0, want - n);
    char *in = strndup(t, (size_t)(dot - t));
    char *out = with_sig(in, sig, want);
    free(sig);
    return out;
}

static void test_bad_signature(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({rsa_a, NULL, NULL}, {ec256, NULL, NULL}, {ec384, NULL, NULL}, {ed, NULL, NULL});
    static const struct {
        EVP_PKEY **key;
        const char *alg;
        size_t len;
    } cases[] = {{&rsa_a, "RS256", 256},
                 {&rsa_a, "PS384", 256},
                 {&ec256, "ES256", 64},
                 {&ec384, "ES384", 96},
                 {&ed, "EdDSA", 64}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = tok(*cases[i].key, cases[i].alg, NULL, PAYLOAD);
        expect(ks, t, JWT_OK);
        for (long byte = 0; byte < (long)cases[i].len; byte += 13) {
            char *f = flip_sig(t, byte, (int)(byte % 8));
            expect(ks, f, JWT_ERR_SIGNATURE);
            free(f);
        }
        char *f = flip_sig(t, -1, 0);
        expect(ks, f, JWT_ERR_SIGNATURE);
        free(f);
        /* one byte short and long, and empty-but-for-one */
        f = resize_sig(t, cases[i].len - 1);
        expect(ks, f, JWT_ERR_SIGNATURE);
        free(f);
        f = resize_sig(t, cases[i].len + 1);
        expect(ks, f, JWT_ERR_SIGNATURE);
        free(f);
        f = resize_sig(t, 1);
        expect(ks, f, JWT_ERR_SIGNATURE);
        free(f);
        /* a changed payload under the old signature */
        char *other = tok(*cases[i].key, cases[i].alg, NULL, "{\"iss\":\"" ISS "\",\"sub\":\"mallory\"}");
        const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
        const char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
        buf_t b = BUF_INIT;
        buf_append(&b, t, (size_t)(d1 - t));
        buf_append(&b, o1, (size_t)(o2 - o1));
        buf_append_str(&b, d2);
        expect(ks, b.data, JWT_ERR_SIGNATURE);
        buf_dispose(&b);
        free(other);
        free(t);
    }

    /* ECDSA in DER (what OpenSSL makes) instead of R||S */
    char *in = signing_input("{\"alg\":\"ES256\"}", PAYLOAD);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[128];
    size_t n = sizeof(der);
    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, ec256, NULL), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &n, (const uint8_t *)in, strlen(in)), 1);
    EVP_MD_CTX_free(ctx);
    char *t = with_sig(in, der, n);
    expect(ks, t, JWT_ERR_SIGNATURE);
    free(t);
    jwks_destroy(ks);
}

static void test_alg_none_and_unknown(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({rsa_a, "r", NULL});
    static const char *const headers[] = {
        "{\"alg\":\"none\"}",
        "{\"alg\":\"None\"}",
        "{\"alg\":\"NONE\"}",
        "{\"alg\":\"\"}",
        "{\"alg\":\"rs256\"}",
        "{\"alg\":\"RS256 \"}",
        "{\"alg\":\"ES512\"}",
        "{\"alg\":\"HS512\"}",
        "{\"alg\":\"RS1\"}",
        "{\"alg\":null}",
        "{\"alg\":[\"RS256\"]}",
        "{\"kid\":\"r\"}",
        "{\"alg\":\"none\",\"kid\":\"r\"}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *in = signing_input(headers[i], PAYLOAD);
        buf_t b = BUF_INIT;
        buf_printf(&b, "%s.", in); /* empty signature */
        expect(ks, b.data, JWT_ERR_ALG);
        buf_append_str(&b, "AAAA");
        expect(ks, b.data, JWT_ERR_ALG);
        buf_dispose(&b);
        free(in);
    }
    /* the real signature of an RS256 token under a header that says none */
    char *t = token(rsa_a, "RS256", "{\"alg\":\"none\"}", PAYLOAD);
    expect(ks, t, JWT_ERR_ALG);
    free(t);
    /* a supported alg with an empty signature */
    char *in = signing_input("{\"alg\":\"RS256\"}", PAYLOAD);
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s.", in);
    expect(ks, b.data, JWT_ERR_FORMAT);
    buf_dispose(&b);
    free(in);
    jwks_destroy(ks);
}

/* An HS256 token "signed" with the bytes of the RSA public key as the HMAC secret. */
static char *hs256_with(const char *header, const uint8_t *secret, size_t secret_len)
{
    char *in = signing_input(header, PAYLOAD);
    uint8_t mac[32];
    unsigned int n = sizeof(mac);
    assert_non_null(HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)in, strlen(in), mac, &n));
    return with_sig(in, mac, n);
}

static void test_key_confusion(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    int der_len = i2d_PUBKEY(rsa_a, &der);
    assert_true(der_len > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa_a), 1);
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    char *jwk_json = jwks_json((kspec_t[]){{rsa_a, "r", NULL}}, 1);

    jwks_t *sets[2] = {JWKS({rsa_a, "r", NULL}), JWKS({rsa_a, NULL, NULL}, {ec256, NULL, NULL})};
    static const char *const headers[] = {"{\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"kid\":\"r\"}",
                                          "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"};
    for (size_t s = 0; s < 2; s++) {
        for (size_t h = 0; h < 3; h++) {
            char *t = hs256_with(headers[h], der, (size_t)der_len);
            expect(sets[s], t, JWT_ERR_ALG);
            free(t);
            t = hs256_with(headers[h], (const uint8_t *)pem, (size_t)pem_len);
            expect(sets[s], t, JWT_ERR_ALG);
            free(t);
            t = hs256_with(headers[h], (const uint8_t *)jwk_json, strlen(jwk_json));
            expect(sets[s], t, JWT_ERR_ALG);
            free(t);
        }
    }
    /* a key of one family is never tried with another family's algorithm */
    char *t = tok(ec256, "ES256", "r", PAYLOAD);
    expect(sets[0], t, JWT_ERR_NO_KEY);
    free(t);

    /* a key embedded in the header is ignored: only the JWKS counts */
    buf_t h = BUF_INIT;
    buf_append_str(&h, "{\"alg\":\"RS256\",\"jwk\":");
    append_jwk(&h, rsa_b, NULL, NULL);
    buf_append_str(&h, ",\"jku\":\"https://attacker.example/jwks\"}");
    t = token(rsa_b, "RS256", h.data, PAYLOAD);
    expect(sets[0], t, JWT_ERR_SIGNATURE);
    free(t);
    buf_dispose(&h);

    jwks_destroy(sets[0]);
    jwks_destroy(sets[1]);
    free(jwk_json);
    BIO_free(bio);
    OPENSSL_free(der);
}

/* ---- kid, rotation, the key's alg ---- */

static void test_kid_and_rotation(void **state)
{
    (void)state;
    jwks_t *old_set = JWKS({rsa_a, "2023", NULL});
    jwks_t *both = JWKS({rsa_a, "2023", NULL}, {rsa_b, "2024", NULL});
    jwks_t *new_set = JWKS({rsa_b, "2024", NULL});
    char *old_tok = tok(rsa_a, "RS256", "2023", PAYLOAD);
    char *new_tok = tok(rsa_b, "RS256", "2024", PAYLOAD);
    char *old_nokid = tok(rsa_a, "RS256", NULL, PAYLOAD);
    char *new_nokid = tok(rsa_b, "RS256", NULL, PAYLOAD);

    expect(old_set, old_tok, JWT_OK);
    expect(old_set, new_tok, JWT_ERR_NO_KEY);
    expect(old_set, old_nokid, JWT_OK);
    expect(old_set, new_nokid, JWT_ERR_SIGNATURE);
    /* during the rotation both keys are published */
    expect(both, old_tok, JWT_OK);
    expect(both, new_tok, JWT_OK);
    expect(both, old_nokid, JWT_OK); /* no kid: every RSA key is tried */
    expect(both, new_nokid, JWT_OK);
    /* the old key removed */
    expect(new_set, old_tok, JWT_ERR_NO_KEY);
    expect(new_set, new_tok, JWT_OK);
    expect(new_set, old_nokid, JWT_ERR_SIGNATURE);
    expect(new_set, new_nokid, JWT_OK);

    /* a kid names the key: the other key is not tried */
    char *wrong_kid = tok(rsa_a, "RS256", "2024", PAYLOAD);
    expect(both, wrong_kid, JWT_ERR_SIGNATURE);
    free(wrong_kid);
    /* a kid never matches a key without one */
    jwks_t *nokids = JWKS({rsa_a, NULL, NULL});
    expect(nokids, old_tok, JWT_ERR_NO_KEY);
    expect(nokids, old_nokid, JWT_OK);
    jwks_destroy(nokids);
    /* the kid must be a string */
    char *t = token(rsa_a, "RS256", "{\"alg\":\"RS256\",\"kid\":2023}", PAYLOAD);
    expect(both, t, JWT_ERR_HEADER);
    free(t);
    /* two keys with one kid: both are tried */
    jwks_t *same = JWKS({rsa_b, "k", NULL}, {rsa_a, "k", NULL});
    t = tok(rsa_a, "RS256", "k", PAYLOAD);
    expect(same, t, JWT_OK);
    free(t);
    jwks_destroy(same);

    free(old_tok);
    free(new_tok);
    free(old_nokid);
    free(new_nokid);
    jwks_destroy(old_set);
    jwks_destroy(both);
    jwks_destroy(new_set);
}

static void test_key_alg(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({rsa_a, "rs384", "RS384"}, {rsa_a, "ps256", "PS256"}, {ec256, "es", "ES256"});
    expect_tok(ks, rsa_a, "RS256", "rs384", PAYLOAD, JWT_ERR_NO_KEY);
    expect_tok(ks, rsa_a, "RS384", "rs384", PAYLOAD, JWT_OK);
    expect_tok(ks, rsa_a, "PS256", "ps256", PAYLOAD, JWT_OK);
    expect_tok(ks, rsa_a, "RS256", "ps256", PAYLOAD, JWT_ERR_NO_KEY);
    expect_tok(ks, rsa_a, "RS256", NULL, PAYLOAD, JWT_ERR_NO_KEY);
    expect_tok(ks, rsa_a, "PS256", NULL, PAYLOAD, JWT_OK);
    expect_tok(ks, ec256, "ES256", "es", PAYLOAD, JWT_OK);
    jwks_destroy(ks);
}

/* ---- malformed tokens ---- */

static void test_malformed(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({ec256, NULL, NULL});
    char *good = tok(ec256, "ES256", NULL, PAYLOAD);
    expect(ks, good, JWT_OK);
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    size_t hl = (size_t)(d1 - good), pl = (size_t)(d2 - d1 - 1);
    char h[256], p[256], s[256];
    snprintf(h, sizeof(h), "%.*s", (int)hl, good);
    snprintf(p, sizeof(p), "%.*s", (int)pl, d1 + 1);
    snprintf(s, sizeof(s), "%s", d2 + 1);

    static const char *const shapes[] = {"", ".", "..", "...", "a", "a.b", "a.b.c.d", ".b.c", "a..c", "...."};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        expect(ks, shapes[i], JWT_ERR_FORMAT);

    char t[1024];
#define T(...) (snprintf(t, sizeof(t), __VA_ARGS__), t)
    expect(ks, T("%s.", good), JWT_ERR_FORMAT);
    expect(ks, T(".%s", good), JWT_ERR_FORMAT);
    expect(ks, T("%s.%s", good, s), JWT_ERR_FORMAT);
    expect(ks, T("%s..%s", h, s), JWT_ERR_FORMAT);
    expect(ks, T(".%s.%s", p, s), JWT_ERR_FORMAT);
    /* padding, other alphabets, blanks, impossible lengths */
    expect(ks, T("%s=.%s.%s", h, p, s), JWT_ERR_BASE64);
    expect(ks, T("%s.%s.%s=", h, p, s), JWT_ERR_BASE64);
    expect(ks, T("%s.%s.%s==", h, p, s), JWT_ERR_BASE64);
    expect(ks, T("%s.%s==.%s", h, p, s), JWT_ERR_BASE64);
    expect(ks, T(" %s", good), JWT_ERR_BASE64);
    expect(ks, T("%s ", good), JWT_ERR_BASE64);
    expect(ks, T("%s\n", good), JWT_ERR_BASE64);
    expect(ks, T("%s.%s.%.10s %s", h, p, s, s + 10), JWT_ERR_BASE64);
    /* the 86 characters of 64 bytes, plus one or two more: valid base64url of 65 or 66 bytes */
    expect(ks, T("%s.%s.%sA", h, p, s), JWT_ERR_SIGNATURE);
    expect(ks, T("%s.%s.%sAA", h, p, s), JWT_ERR_SIGNATURE);
    expect(ks, T("%s.%s.%sAAA", h, p, s), JWT_ERR_BASE64); /* 89 characters: no byte string encodes to that */
    strcpy(s + 5, "+");
    expect(ks, T("%s.%s.%s", h, p, s), JWT_ERR_BASE64);
    s[5] = '/';
    expect(ks, T("%s.%s.%s", h, p, s), JWT_ERR_BASE64);
    snprintf(s, sizeof(s), "%s", d2 + 1);
    /* "e30" is "{}"; "e31" has the same six bits but non-zero spare ones */
    expect(ks, T("e31.%s.%s", p, s), JWT_ERR_BASE64);
    expect(ks, T("e30AA.%s.%s", p, s), JWT_ERR_BASE64); /* length 4n+1 */
    expect(ks, T("e30.%s.%s", p, s), JWT_ERR_ALG);
#undef T
    free(good);
    jwks_destroy(ks);
}

static void test_json(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({ed, NULL, NULL});
    static const char *const headers[] = {
        "not json",
        "[\"alg\",\"EdDSA\"]",
        "\"EdDSA\"",
        "42",
        "{\"alg\":\"EdDSA\"",
        "{\"alg\":\"EdDSA\"}x",
        "{\"alg\":\"EdDSA\"}{}",
        "{\"alg\":\"EdDSA\",\"alg\":\"none\"}",
        "{\"alg\":\"none\",\"alg\":\"EdDSA\"}",
        "{\"alg\":\"EdDSA\"/* c */}",
        "{\"alg\":\"EdDSA\"}// c",
        "{\"alg\":\"EdDSA\",\"kid\":\"a\\u0000b\"}",
        "{\"alg\":\"EdDSA\",\"x\":{\"y\":1,\"y\":2}}",
        "{\"alg\":\"EdDSA\",\"x\":\"\xff\"}",
        "{'alg':'EdDSA'}",
        "",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *t = token(ed, "EdDSA", headers[i], PAYLOAD);
        expect(ks, t, headers[i][0] == '\0' ? JWT_ERR_FORMAT : JWT_ERR_HEADER);
        free(t);
    }
    /* a NUL byte inside the header */
    char *hb = b64url("{\"alg\":\"EdDSA\"}\0", 16);
    char *pb = b64url(PAYLOAD, strlen(PAYLOAD));
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s.%s", hb, pb);
    size_t n;
    uint8_t *sig = sign_raw(ed, "EdDSA", b.data, b.len, &n);
    char *t = with_sig(buf_steal(&b, NULL), sig, n);
    expect(ks, t, JWT_ERR_HEADER);
    free(t);
    free(sig);
    free(hb);
    free(pb);

    /* nesting: up to JWT_JSON_MAX_DEPTH */
    buf_t deep = BUF_INIT;
    buf_append_str(&deep, "{\"alg\":\"EdDSA\",\"x\":");
    for (int i = 1; i < JWT_JSON_MAX_DEPTH; i++)
        buf_append_char(&deep, '[');
    for (int i = 1; i < JWT_JSON_MAX_DEPTH; i++)
        buf_append_char(&deep, ']');
    buf_append_char(&deep, '}');
    t = token(ed, "EdDSA", deep.data, PAYLOAD);
    expect(ks, t, JWT_OK);
    free(t);
    buf_dispose(&deep);
    buf_append_str(&deep, "{\"alg\":\"EdDSA\",\"x\":");
    for (int i = 0; i < JWT_JSON_MAX_DEPTH; i++)
        buf_append_char(&deep, '[');
    for (int i = 0; i < JWT_JSON_MAX_DEPTH; i++)
        buf_append_char(&deep, ']');
    buf_append_char(&deep, '}');
    t = token(ed, "EdDSA", deep.data, PAYLOAD);
    expect(ks, t, JWT_ERR_HEADER);
    free(t);
    buf_dispose(&deep);
    /* slashes and escaped quotes inside strings are fine */
    t = token(ed, "EdDSA", "{\"alg\":\"EdDSA\",\"typ\":\"a/b\\\"/*\\\\\"}", PAYLOAD);
    expect(ks, t, JWT_OK);
    free(t);

    static const char *const payloads[] = {
        "not json",
        "[1,2]",
        "\"" ISS "\"",
        "null",
        "{\"iss\":\"" ISS "\"",
        "{\"iss\":\"" ISS "\",\"iss\":\"https://other.example\"}",
        "{\"iss\":\"https://other.example\",\"iss\":\"" ISS "\"}",
        "{\"iss\":\"" ISS "\",\"sub\":\"admin\\u0000x\"}",
        "{\"iss\":\"" ISS "\"} /**/",
        "{\"iss\":\"" ISS "\",\"a\":{\"b\":1,\"b\":2}}",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        t = tok(ed, "EdDSA", NULL, payloads[i]);
        expect(ks, t, JWT_ERR_PAYLOAD);
        free(t);
    }
    /* a header and payload with blanks and unicode */
    t = token(ed, "EdDSA", " { \"alg\" : \"EdDSA\" } ", "{\"iss\":\"" ISS "\",\"name\":\"J\\u00f6rg \xc3\xa9\"}");
    expect(ks, t, JWT_OK);
    free(t);
    jwks_destroy(ks);
}

static void test_limits_and_crit(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({ed, NULL, NULL});
    buf_t p = BUF_INIT;
    buf_append_str(&p, "{\"iss\":\"" ISS "\",\"pad\":\"");
    for (int i = 0; i < 6200; i++)
        buf_append_char(&p, 'x');
    buf_append_str(&p, "\"}");
    char *t = tok(ed, "EdDSA", NULL, p.data);
    assert_true(strlen(t) > JWT_MAX_BYTES);
    expect(ks, t, JWT_ERR_TOO_LONG);
    jwt_check_t c = check_default();
    c.max_bytes = 16384;
    expect_with(ks, t, &c, JWT_OK, NULL);
    c.max_bytes = strlen(t) - 1;
    expect_with(ks, t, &c, JWT_ERR_TOO_LONG, NULL);
    c.max_bytes = strlen(t);
    expect_with(ks, t, &c, JWT_OK, NULL);
    free(t);
    buf_dispose(&p);

    /* just under the default limit */
    buf_append_str(&p, "{\"iss\":\"" ISS "\",\"pad\":\"");
    for (int i = 0; i < 5900; i++)
        buf_append_char(&p, 'x');
    buf_append_str(&p, "\"}");
    t = tok(ed, "EdDSA", NULL, p.data);
    assert_true(strlen(t) <= JWT_MAX_BYTES);
    expect(ks, t, JWT_OK);
    free(t);
    buf_dispose(&p);

    static const char *const crit[] = {
        "{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"exp\":1}",
        "{\"alg\":\"EdDSA\",\"crit\":[\"b64\"],\"b64\":false}",
        "{\"alg\":\"EdDSA\",\"crit\":[]}",
        "{\"alg\":\"EdDSA\",\"crit\":null}",
    };
    for (size_t i = 0; i < 4; i++) {
        t = token(ed, "EdDSA", crit[i], PAYLOAD);
        expect(ks, t, JWT_ERR_CRIT);
        free(t);
    }
    jwks_destroy(ks);
}

/* ---- JWKS ---- */

static jwks_t *parse_str(const char *json, char *err, size_t errlen)
{
    return jwks_parse(json, strlen(json), err, errlen);
}

/* A JSON object: the JWK of k with extra members spliced in before the closing brace. */
static char *jwk_plus(EVP_PKEY *k, const char *extra)
{
    buf_t b = BUF_INIT;
    append_jwk(&b, k, NULL, NULL);
    b.data[--b.len] = '\0';
    buf_printf(&b, "%s}", extra);
    return buf_steal(&b, NULL);
}

static void test_jwks(void **state)
{
    (void)state;
    char err[256], json[4096];
    jwks_t *ks;
    char *rsa = jwk_plus(rsa_a, ",\"kid\":\"r\""), *ec = jwk_plus(ec256, "");

    /* oct keys are skipped, with the reason reported */
    snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":\"r\"},%s]}", rsa);
    ks = parse_str(json, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(jwks_count(ks), 1);
    assert_non_null(strstr(err, "keys[0]"));
    assert_non_null(strstr(err, "oct"));
    /* an HS256 token made with the oct secret: refused, although the kid matches the oct key */
    static const uint8_t secret[] = "secret";
    char *t = hs256_with("{\"alg\":\"HS256\",\"kid\":\"r\"}", secret, 6);
    expect(ks, t, JWT_ERR_ALG);
    free(t);
    jwks_destroy(ks);

    ks = parse_str("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", err, sizeof(err));
    assert_null(ks);
    assert_non_null(strstr(err, "no usable key"));
    assert_non_null(strstr(err, "oct"));

    /* use */
    char *enc = jwk_plus(ec256, ",\"use\":\"enc\""), *sig = jwk_plus(ec256, ",\"use\":\"sig\"");
    snprintf(json, sizeof(json), "{\"keys\":[%s]}", enc);
    assert_null(parse_str(json, err, sizeof(err)));
    assert_non_null(strstr(err, "use"));
    snprintf(json, sizeof(json), "{\"keys\":[%s,%s]}", enc, sig);
    ks = parse_str(json, err, sizeof(err));
    assert_int_equal(jwks_count(ks), 1);
    jwks_destroy(ks);
    free(enc);
    free(sig);

    /* RSA under 2048 bits */
    char *small = jwk_plus(rsa_small, "");
    snprintf(json, sizeof(json), "{\"keys\":[%s]}", small);
    assert_null(parse_str(json, err, sizeof(err)));
    assert_non_null(strstr(err, "1024 bits"));
    snprintf(json, sizeof(json), "{\"keys\":[%s,%s]}", small, ec);
    ks = parse_str(json, err, sizeof(err));
    assert_int_equal(jwks_count(ks), 1);
    assert_non_null(strstr(err, "1024 bits"));
    /* a token signed by the small key finds only the EC key: no key */
    t = tok(rsa_small, "RS256", NULL, PAYLOAD);
    expect(ks, t, JWT_ERR_NO_KEY);
    free(t);
    jwks_destroy(ks);
    free(small);

    /* EC point off the curve: y + 1 */
    BIGNUM *x = NULL, *y = NULL;
    EVP_PKEY_get_bn_param(ec256, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(ec256, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    BN_add_word(y, 1);
    buf_t b = BUF_INIT;
    buf_append_str(&b, "{\"kty\":\"EC\",\"crv\":\"P-256\"");
    append_bn(&b, "x", x, 32);
    append_bn(&b, "y", y, 32);
    buf_append_str(&b, "}");
    ks = parse_str(b.data, err, sizeof(err));
    assert_null(ks);
    assert_non_null(strstr(err, "curve"));
    buf_dispose(&b);
    /* the point at x = 0 (not on P-256), and short coordinates */
    BN_zero(y);
    buf_append_str(&b, "{\"kty\":\"EC\",\"crv\":\"P-256\"");
    append_bn(&b, "x", y, 32);
    append_bn(&b, "y", y, 32);
    buf_append_str(&b, "}");
    assert_null(parse_str(b.data, err, sizeof(err)));
    buf_dispose(&b);
    buf_append_str(&b, "{\"kty\":\"EC\",\"crv\":\"P-256\"");
    append_bn(&b, "x", x, 33);
    buf_append_str(&b, ",\"y\":\"AA\"}");
    assert_null(parse_str(b.data, err, sizeof(err)));
    assert_non_null(strstr(err, "32 bytes"));
    buf_dispose(&b);
    /* a P-256 point labelled P-384 */
    buf_append_str(&b, "{\"kty\":\"EC\",\"crv\":\"P-384\"");
    append_bn(&b, "x", x, 32);
    append_bn(&b, "y", x, 32);
    buf_append_str(&b, "}");
    assert_null(parse_str(b.data, err, sizeof(err)));
    buf_dispose(&b);
    BN_free(x);
    BN_free(y);

    static const char *const bad[] = {
        "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}",
        "{\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"AA\"}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"alg\":\"ES256\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"alg\":\"HS256\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"kid\":1}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"use\":1}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}",
        "{\"kty\":\"RSA\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"AQAB\"}",
        "{\"kty\":\"rsa\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
        "{\"kty\":\"DSA\"}",
        "{\"kty\":7}",
        "{\"keys\":[1,\"x\",null,[]]}",
        "{\"keys\":[]}",
        "{\"keys\":{}}",
        "{\"keys\":\"x\"}",
        "{\"key\":[]}",
        "{}",
        "[]",
        "\"keys\"",
        "",
        "not json",
        "{\"keys\":[]",
        "{\"keys\":[],\"keys\":[]}",
        "{\"keys\":[]}/* c */",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if ((ks = parse_str(bad[i], err, sizeof(err))) != NULL)
            fail_msg("accepted: %s", bad[i]);
        assert_true(err[0] != '\0');
    }
    assert_null(jwks_parse(NULL, 1, err, sizeof(err)));
    assert_null(jwks_parse("{}", 2, NULL, 0));

    /* RSA: an even exponent, exponent 1, an even modulus */
    BIGNUM *n = NULL, *e = BN_new();
    EVP_PKEY_get_bn_param(rsa_a, OSSL_PKEY_PARAM_RSA_N, &n);
    static const unsigned long exps[] = {65536, 1, 0};
    for (size_t i = 0; i < 3; i++) {
        BN_set_word(e, exps[i]);
        buf_append_str(&b, "{\"kty\":\"RSA\"");
        append_bn(&b, "n", n, 0);
        if (exps[i])
            append_bn(&b, "e", e, 0);
        else
            buf_append_str(&b, ",\"e\":\"AA\"");
        buf_append_str(&b, "}");
        assert_null(parse_str(b.data, err, sizeof(err)));
        buf_dispose(&b);
    }
    BN_set_word(e, 3);
    BN_sub_word(n, 1);
    buf_append_str(&b, "{\"kty\":\"RSA\"");
    append_bn(&b, "n", n, 0);
    append_bn(&b, "e", e, 0);
    buf_append_str(&b, "}");
    assert_null(parse_str(b.data, err, sizeof(err)));
    buf_dispose(&b);
    /* a leading zero byte on n is tolerated (some encoders add one) and does not count as a bit */
    BN_add_word(n, 1);
    buf_append_str(&b, "{\"kty\":\"RSA\"");
    append_bn(&b, "n", n, 257);
    buf_append_str(&b, ",\"e\":\"AQAB\"}");
    ks = parse_str(b.data, err, sizeof(err));
    assert_non_null(ks);
    expect_tok(ks, rsa_a, "RS256", NULL, PAYLOAD, JWT_OK);
    jwks_destroy(ks);
    buf_dispose(&b);
    BN_free(n);
    BN_free(e);

    /* private members are ignored; unknown members too */
    char *priv = jwk_plus(ed, ",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\",\"x5c\":[],\"ext\":{\"a\":[1]}");
    ks = parse_str(priv, err, sizeof(err));
    assert_non_null(ks);
    assert_string_equal(err, "");
    jwks_destroy(ks);
    free(priv);

    /* JWKS_MAX_KEYS and JWKS_MAX_BYTES */
    buf_append_str(&b, "{\"keys\":[");
    for (int i = 0; i < JWKS_MAX_KEYS; i++)
        buf_printf(&b, "%s%s", i ? "," : "", ec);
    buf_append_str(&b, "]}");
    ks = parse_str(b.data, err, sizeof(err));
    assert_int_equal(jwks_count(ks), JWKS_MAX_KEYS);
    jwks_destroy(ks);
    b.len -= 2;
    buf_printf(&b, ",%s]}", ec);
    assert_null(parse_str(b.data, err, sizeof(err)));
    assert_non_null(strstr(err, "keys"));
    buf_dispose(&b);
    buf_printf(&b, "{\"keys\":[%s],\"pad\":\"", ec);
    while (b.len < JWKS_MAX_BYTES - 2)
        buf_append_char(&b, 'x');
    buf_append_str(&b, "\"}");
    ks = parse_str(b.data, err, sizeof(err));
    assert_non_null(ks);
    jwks_destroy(ks);
    b.data[b.len - 2] = 'x';
    buf_append_str(&b, "\"}");
    assert_null(parse_str(b.data, err, sizeof(err)));
    assert_non_null(strstr(err, "longer"));
    buf_dispose(&b);

    free(rsa);
    free(ec);
}

/* ---- claims ---- */

static void test_claims(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({ed, NULL, NULL});
    char *t = tok(ed, "EdDSA", NULL,
                  "{\"iss\":\"" ISS "\",\"sub\":\"alice@example.com\",\"azp\":\"web\","
                  "\"groups\":[\"dev\",\"ops\",7,true,null,{\"x\":1},[\"y\"],\"qa\"],"
                  "\"request\":{\"auth\":{\"level\":2,\"mfa\":false,\"tags\":[\"a\"],\"none\":null}},"
                  "\"n\":-1.50e3,\"empty\":\"\",\"obj\":{}}");
    jwt_t *j;
    jwt_check_t c = check_default();
    expect_with(ks, t, &c, JWT_OK, &j);
    free(t);
    assert_string_equal(jwt_issuer(j), ISS);
    assert_string_equal(jwt_subject(j), "alice@example.com");
    assert_string_equal(jwt_presenter(j), "web");
    assert_string_equal(jwt_principal(j), ISS "/alice@example.com");

    const char *v[8];
    const char *const groups[] = {"groups"};
    assert_int_equal(jwt_claim(j, groups, 1, v, 8), 5);
    assert_string_equal(v[0], "dev");
    assert_string_equal(v[1], "ops");
    assert_string_equal(v[2], "7");
    assert_string_equal(v[3], "true");
    assert_string_equal(v[4], "qa");
    /* cap smaller than the count */
    v[1] = NULL;
    assert_int_equal(jwt_claim(j, groups, 1, v, 1), 5);
    assert_null(v[1]);
    assert_int_equal(jwt_claim(j, groups, 1, NULL, 0), 5);

    const char *const level[] = {"request", "auth", "level"};
    assert_int_equal(jwt_claim(j, level, 3, v, 8), 1);
    assert_string_equal(v[0], "2");
    const char *const mfa[] = {"request", "auth", "mfa"};
    assert_int_equal(jwt_claim(j, mfa, 3, v, 8), 1);
    assert_string_equal(v[0], "false");
    const char *const tags[] = {"request", "auth", "tags"};
    assert_int_equal(jwt_claim(j, tags, 3, v, 8), 1);
    assert_string_equal(v[0], "a");
    const char *const none[] = {"request", "auth", "none"};
    assert_int_equal(jwt_claim(j, none, 3, v, 8), 0);
    assert_int_equal(jwt_claim(j, level, 2, v, 8), 0); /* an object */
    assert_int_equal(jwt_claim(j, level, 0, v, 8), 0); /* the whole payload */
    const char *const missing[] = {"request", "nope", "level"};
    assert_int_equal(jwt_claim(j, missing, 3, v, 8), 0);
    const char *const through[] = {"sub", "x"}; /* a path through a string */
    assert_int_equal(jwt_claim(j, through, 2, v, 8), 0);
    const char *const num[] = {"n"};
    assert_int_equal(jwt_claim(j, num, 1, v, 8), 1);
    assert_string_equal(v[0], "-1.50e3"); /* as sent */
    const char *const empty[] = {"empty"};
    assert_int_equal(jwt_claim(j, empty, 1, v, 8), 1);
    assert_string_equal(v[0], "");
    const char *const obj[] = {"obj"};
    assert_int_equal(jwt_claim(j, obj, 1, v, 8), 0);
    const char *const sub[] = {"sub"};
    assert_int_equal(jwt_claim(j, sub, 1, v, 8), 1);
    assert_string_equal(v[0], "alice@example.com");
    jwt_destroy(j);

    /* no sub: no principal; a non-string azp is not a presenter */
    t = tok(ed, "EdDSA", NULL, "{\"iss\":\"" ISS "\",\"azp\":1}");
    expect_with(ks, t, &c, JWT_OK, &j);
    assert_null(jwt_subject(j));
    assert_null(jwt_principal(j));
    assert_null(jwt_presenter(j));
    jwt_destroy(j);
    free(t);
    jwt_destroy(NULL);
    jwks_destroy(NULL);
    jwks_destroy(ks);
}

static void test_status_strings(void **state)
{
    (void)state;
    const char *seen[16];
    for (int s = 0; s >= JWT_ERR_AUDIENCE; s--) {
        const char *m = jwt_status_str((jwt_status_t)s);
        assert_non_null(m);
        for (int k = 0; k > s; k--)
            assert_string_not_equal(m, seen[-k]);
        seen[-s] = m;
    }
}

/* ---- threads ---- */

typedef struct worker {
    const jwks_t *ks;
    char *tokens[4];
    int failures;
} worker_t;

static void *worker_run(void *arg)
{
    worker_t *w = arg;
    jwt_check_t c = check_default();
    for (int i = 0; i < 40; i++) {
        for (int k = 0; k < 4; k++) {
            jwt_t *j;
            if (jwt_verify(w->ks, w->tokens[k], strlen(w->tokens[k]), &c, &j, NULL, 0) != JWT_OK ||
                strcmp(jwt_principal(j), ISS "/alice") != 0)
                w->failures++;
            jwt_destroy(j);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    jwks_t *ks = JWKS({rsa_a, "r", NULL}, {ec256, "e", NULL}, {ec384, NULL, NULL}, {ed, NULL, NULL});
    worker_t w[4];
    pthread_t th[4];
    char *tokens[4] = {tok(rsa_a, "PS256", "r", PAYLOAD), tok(ec256, "ES256", "e", PAYLOAD),
                       tok(ec384, "ES384", NULL, PAYLOAD), tok(ed, "EdDSA", NULL, PAYLOAD)};
    for (int i = 0; i < 4; i++) {
        w[i].ks = ks;
        w[i].failures = 0;
        memcpy(w[i].tokens, tokens, sizeof(tokens));
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    for (int i = 0; i < 4; i++)
        free(tokens[i]);
    jwks_destroy(ks);
}

static int make_keys(void **state)
{
    (void)state;
    rsa_a = EVP_RSA_gen(2048);
    rsa_b = EVP_RSA_gen(2048);
    rsa_small = EVP_RSA_gen(1024);
    ec256 = EVP_EC_gen("P-256");
    ec384 = EVP_EC_gen("P-384");
    ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return rsa_a && rsa_b && rsa_small && ec256 && ec384 && ed ? 0 : -1;
}

static int free_keys(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_a);
    EVP_PKEY_free(rsa_b);
    EVP_PKEY_free(rsa_small);
    EVP_PKEY_free(ec256);
    EVP_PKEY_free(ec384);
    EVP_PKEY_free(ed);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors),    cmocka_unit_test(test_algorithms),
        cmocka_unit_test(test_time),           cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_pick),           cmocka_unit_test(test_audience),
        cmocka_unit_test(test_bad_signature),  cmocka_unit_test(test_alg_none_and_unknown),
        cmocka_unit_test(test_key_confusion),  cmocka_unit_test(test_kid_and_rotation),
        cmocka_unit_test(test_key_alg),        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_json),           cmocka_unit_test(test_limits_and_crit),
        cmocka_unit_test(test_jwks),           cmocka_unit_test(test_claims),
        cmocka_unit_test(test_status_strings), cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, make_keys, free_keys);
}
