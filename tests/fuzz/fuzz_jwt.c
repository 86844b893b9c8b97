/*
 * libFuzzer target: JWT verification and JWKS parsing (proxy/jwt.c).
 *
 * Input, used three ways, each time from its own heap copy so ASan sees
 * any read past it:
 *  1. the whole of it is a JWKS document for jwks_parse; a set that comes
 *     back is used to verify two fixed tokens (EdDSA and ES256);
 *  2. the whole of it is a token for jwt_verify against a fixed JWKS
 *     (Ed25519 "ed", EC P-256 "ec", RSA 2048 "rsa") made once, and for
 *     jwt_verify_pick choosing that JWKS by iss: both accept it or neither;
 *  3. split at the first '\n', it is a header and a payload (JSON text):
 *     both are base64url-encoded and signed here, with the EC key when the
 *     header mentions ES256 and the Ed25519 key otherwise, so the payload
 *     and claim checks behind the signature are reached.
 * Audiences are required when the input length is odd.
 * Invariants: no crash, leak or UB; a refused JWKS or token has a message
 * and no result; a set holds 1..JWKS_MAX_KEYS keys; a verified token's iss
 * is the configured issuer, it has an aud when audiences are required,
 * its principal is "iss/sub" exactly when it has a sub, and every claim
 * lookup returns readable strings.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "base64.h"
#include "buf.h"
#include "proxy/jwt.h"

#define ISS "https://issuer.example"

static EVP_PKEY *ed_key, *ec_key, *rsa_key;
static jwks_t *fixed;
static char *fixed_tokens[2];

static void append_b64url(buf_t *b, const void *data, size_t n)
{
    size_t len = base64_encoded_len(n);
    buf_reserve(b, len + 1);
    char *s = b->data + b->len;
    base64_encode(data, n, s);
    while (len > 0 && s[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++)
        s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    b->len += len;
    b->data[b->len] = '\0';
}

static void append_bn(buf_t *b, const char *name, const char *param, EVP_PKEY *k, int pad)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(k, param, &bn) != 1)
        abort();
    uint8_t raw[512];
    int n = pad ? pad : BN_num_bytes(bn);
    if (BN_bn2binpad(bn, raw, n) != n)
        abort();
    buf_printf(b, ",\"%s\":\"", name);
    append_b64url(b, raw, (size_t)n);
    buf_append_char(b, '"');
    BN_free(bn);
}

/* Sign header.payload (already in b) and append ".signature". */
static void sign_into(buf_t *b, EVP_PKEY *k, bool ecdsa)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t sig[128], raw[64];
    size_t n = sizeof(sig);
    if (ctx == NULL || EVP_DigestSignInit_ex(ctx, NULL, ecdsa ? "SHA256" : NULL, NULL, NULL, k, NULL) != 1 ||
        EVP_DigestSign(ctx, sig, &n, (const uint8_t *)b->data, b->len) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    buf_append_char(b, '.');
    if (!ecdsa) {
        append_b64url(b, sig, n);
        return;
    }
    const uint8_t *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    if (es == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) != 32)
        abort();
    ECDSA_SIG_free(es);
    append_b64url(b, raw, 64);
}

static char *make_token(const char *header, size_t hl, const char *payload, size_t pl, bool ecdsa)
{
    buf_t b = BUF_INIT;
    append_b64url(&b, header, hl);
    buf_append_char(&b, '.');
    append_b64url(&b, payload, pl);
    sign_into(&b, ecdsa ? ec_key : ed_key, ecdsa);
    return buf_steal(&b, NULL);
}

static void init(void)
{
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ec_key = EVP_EC_gen("P-256");
    rsa_key = EVP_RSA_gen(2048);
    if (ed_key == NULL || ec_key == NULL || rsa_key == NULL)
        abort();
    buf_t b = BUF_INIT;
    uint8_t x[32];
    size_t xl = sizeof(x);
    if (EVP_PKEY_get_raw_public_key(ed_key, x, &xl) != 1)
        abort();
    buf_append_str(&b, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"");
    append_b64url(&b, x, xl);
    buf_append_str(&b, "\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\",\"use\":\"sig\"");
    append_bn(&b, "x", OSSL_PKEY_PARAM_EC_PUB_X, ec_key, 32);
    append_bn(&b, "y", OSSL_PKEY_PARAM_EC_PUB_Y, ec_key, 32);
    buf_append_str(&b, "},{\"kty\":\"RSA\",\"kid\":\"rsa\"");
    append_bn(&b, "n", OSSL_PKEY_PARAM_RSA_N, rsa_key, 0);
    append_bn(&b, "e", OSSL_PKEY_PARAM_RSA_E, rsa_key, 0);
    buf_append_str(&b, "}]}");
    char err[256];
    if ((fixed = jwks_parse(b.data, b.len, err, sizeof(err))) == NULL || jwks_count(fixed) != 3)
        abort();
    buf_dispose(&b);
    static const char payload[] = "{\"iss\":\"" ISS "\",\"sub\":\"fuzz\",\"aud\":\"aud-a\"}";
    fixed_tokens[0] = make_token("{\"alg\":\"EdDSA\"}", 15, payload, sizeof(payload) - 1, false);
    fixed_tokens[1] = make_token("{\"alg\":\"ES256\"}", 15, payload, sizeof(payload) - 1, true);
}

static void check_readable(const char *s)
{
    if (s != NULL && strlen(s) > 65536)
        abort();
}

static void check_verified(const jwt_t *j, const jwt_check_t *c)
{
    if (strcmp(jwt_issuer(j), c->issuer) != 0)
        abort();
    size_t n;
    const char *const *aud = jwt_audiences(j, &n);
    if (c->n_audiences > 0 && n == 0)
        abort();
    for (size_t i = 0; i < n; i++)
        check_readable(aud[i]);
    const char *sub = jwt_subject(j), *principal = jwt_principal(j);
    if ((sub == NULL) != (principal == NULL))
        abort();
    if (sub != NULL) {
        size_t il = strlen(c->issuer);
        if (strncmp(principal, c->issuer, il) != 0 || principal[il] != '/' || strcmp(principal + il + 1, sub) != 0)
            abort();
    }
    check_readable(jwt_presenter(j));
    static const char *const paths[][3] = {
        {"sub", NULL, NULL}, {"aud", NULL, NULL}, {"groups", NULL, NULL}, {"a", "b", NULL}, {"a", "b", "c"},
    };
    static const size_t depths[] = {1, 1, 1, 2, 3};
    for (size_t p = 0; p < sizeof(depths) / sizeof(depths[0]); p++) {
        const char *v[4];
        size_t total = jwt_claim(j, paths[p], depths[p], v, 4);
        for (size_t i = 0; i < total && i < 4; i++)
            check_readable(v[i]);
    }
}

/* jwt_verify_pick's chooser: the configured issuer's keys and checks; any other issuer has none */
typedef struct pick_ctx {
    const jwks_t *ks;
    const jwt_check_t *c;
} pick_ctx_t;

static jwt_status_t pick(void *ctx, const char *iss, const jwks_t **keys, const jwt_check_t **check)
{
    const pick_ctx_t *p = ctx;
    if (iss == NULL || strcmp(iss, p->c->issuer) != 0)
        return JWT_ERR_ISSUER;
    *keys = p->ks, *check = p->c;
    return JWT_OK;
}

static void verify(const jwks_t *ks, const char *t, size_t len, const jwt_check_t *c)
{
    char err[256];
    jwt_t *j = NULL;
    jwt_status_t rc = jwt_verify(ks, t, len, c, &j, err, sizeof(err));
    if (rc == JWT_OK) {
        if (j == NULL)
            abort();
        check_verified(j, c);
        jwt_destroy(j);
    } else if (j != NULL || err[0] == '\0' || rc < JWT_ERR_JWKS_FETCH || rc > JWT_ERR_ARGS) {
        abort();
    }
    /* through the issuer's choice: a token one accepts, the other accepts too */
    pick_ctx_t p = {ks, c};
    jwt_status_t rp = jwt_verify_pick(t, len, pick, &p, &j, err, sizeof(err));
    if ((rp == JWT_OK) != (rc == JWT_OK) || (rp != JWT_OK && (j != NULL || err[0] == '\0')))
        abort();
    jwt_destroy(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init();
        ready = true;
    }
    static const char *const auds[] = {"aud-a", "https://aud-b/"};
    jwt_check_t c = {.issuer = ISS, .now = 1700000000};
    if (size % 2) {
        c.audiences = auds;
        c.n_audiences = 2;
    }
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);

    char err[256];
    jwks_t *ks = jwks_parse(copy, size, err, sizeof(err));
    if (ks == NULL) {
        if (err[0] == '\0')
            abort();
    } else {
        if (jwks_count(ks) < 1 || jwks_count(ks) > JWKS_MAX_KEYS)
            abort();
        for (size_t i = 0; i < 2; i++)
            verify(ks, fixed_tokens[i], strlen(fixed_tokens[i]), &c);
        jwks_destroy(ks);
    }

    verify(fixed, copy, size, &c);

    const char *nl = memchr(copy, '\n', size);
    if (nl != NULL) {
        size_t hl = (size_t)(nl - copy);
        bool ecdsa = memmem(copy, hl, "ES256", 5) != NULL;
        char *t = make_token(copy, hl, nl + 1, size - hl - 1, ecdsa);
        verify(fixed, t, strlen(t), &c);
        free(t);
    }
    free(copy);
    return 0;
}
