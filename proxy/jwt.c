/*
 * jwt: JWS verification against a JWKS (see jwt.h for what is accepted).
 *
 * Design. A jwks_t is an array of public keys built once with
 * EVP_PKEY_fromdata, each tagged with its type (RSA, EC P-256, EC P-384,
 * Ed25519), its kid and its optional alg; it is never written again, and
 * OpenSSL allows any number of concurrent verifications with one EVP_PKEY,
 * so workers share it without locks. Verification is a straight line:
 * split, decode the header, pick the algorithm from a fixed table (the
 * table is the allow-list: an alg that is not in it has no code path),
 * select keys by kid, key type and key alg, verify the signature, and only
 * then parse and check the payload. A key is only ever used with an
 * algorithm of its own family, so an RSA key can never serve as an HMAC
 * secret. JSON is parsed by yajl's tree API after a lexical pre-check for
 * what that API lets through (NUL in strings, comments, deep nesting).
 */
#include "jwt.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <yajl/yajl_tree.h>

#include "xalloc.h"

enum key_type { KEY_RSA, KEY_EC_P256, KEY_EC_P384, KEY_ED25519 };

enum alg_kind { KIND_RSA_PKCS1, KIND_RSA_PSS, KIND_ECDSA, KIND_EDDSA };

typedef struct alg {
    const char *name;
    enum alg_kind kind;
    enum key_type key;
    const char *md; /* digest name; NULL for EdDSA (no pre-hash) */
    size_t sig_len; /* exact signature bytes; 0 = the RSA modulus size */
} alg_t;

/* The allow-list (RFC 7518 3.1, RFC 8037 3.1): nothing else can be verified. */
static const alg_t ALGS[] = {
    {"RS256", KIND_RSA_PKCS1, KEY_RSA, "SHA256", 0},  {"RS384", KIND_RSA_PKCS1, KEY_RSA, "SHA384", 0},
    {"RS512", KIND_RSA_PKCS1, KEY_RSA, "SHA512", 0},  {"PS256", KIND_RSA_PSS, KEY_RSA, "SHA256", 0},
    {"PS384", KIND_RSA_PSS, KEY_RSA, "SHA384", 0},    {"PS512", KIND_RSA_PSS, KEY_RSA, "SHA512", 0},
    {"ES256", KIND_ECDSA, KEY_EC_P256, "SHA256", 64}, {"ES384", KIND_ECDSA, KEY_EC_P384, "SHA384", 96},
    {"EdDSA", KIND_EDDSA, KEY_ED25519, NULL, 64},
};
#define N_ALGS (sizeof(ALGS) / sizeof(ALGS[0]))

typedef struct jwk {
    EVP_PKEY *pkey;
    enum key_type type;
    int alg;   /* index into ALGS, -1 = any of its type */
    char *kid; /* NULL = none */
    /*
     * Per algorithm the key may verify: a verification context initialised
     * once (prepare), which each verification copies. Initialising one is
     * most of OpenSSL 3's per-call cost outside the arithmetic (fetching
     * the signature and digest implementations by name); copying is not.
     * NULL: initialise at each verification (the copy failed or is absent).
     */
    EVP_MD_CTX *prep[N_ALGS];
} jwk_t;

struct jwks {
    jwk_t *keys;
    size_t n;
    _Atomic unsigned refs; /* jwks_ref / jwks_destroy: a fetched set is shared with verifications in flight */
};

struct jwt {
    yajl_val claims;
    const char *iss, *sub, *azp;
    const char **aud;
    size_t n_aud;
    char *principal;
};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const alg_t *alg_find(const char *name, int *index)
{
    for (size_t i = 0; i < N_ALGS; i++) {
        if (strcmp(ALGS[i].name, name) == 0) {
            *index = (int)i;
            return &ALGS[i];
        }
    }
    return NULL;
}

/* ---- base64url ---- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * RFC 7515 2 / RFC 4648 5: the URL alphabet without padding, in its
 * canonical form only (no '=', '+', '/', blanks; a length % 4 of 1 is
 * impossible; the unused low bits of the last character must be zero, so
 * one byte string has one encoding). out has room for len / 4 * 3 + 2.
 */
static int b64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        return -1;
    *out_len = o;
    return 0;
}

/* A fresh heap copy of the decoded bytes, NUL-terminated; NULL when not base64url. */
static uint8_t *b64url_dup(const char *in, size_t len, size_t *out_len)
{
    uint8_t *out = xmalloc(len / 4 * 3 + 3);
    if (b64url_decode(in, len, out, out_len) < 0) {
        free(out);
        return NULL;
    }
    out[*out_len] = '\0';
    return out;
}

/* ---- JSON ---- */

/*
 * What yajl_tree_parse would let through: it reads up to the first NUL,
 * keeps strings NUL-terminated (so a "\u0000" escape would cut one short),
 * allows comments, and frees trees recursively (so nesting is bounded).
 */
static const char *json_precheck(const char *s, size_t len)
{
    if (memchr(s, '\0', len) != NULL)
        return "a NUL byte";
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '"') {
                in_str = false;
            } else if (c == '\\' && i + 1 < len) {
                if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
                    return "a \\u0000 escape";
                i++;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > JWT_JSON_MAX_DEPTH)
                return "nesting too deep";
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
        } else if (c == '/') {
            return "a comment";
        }
    }
    return NULL;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether an object anywhere in v has a member name twice (depth is bounded by json_precheck). */
static bool has_duplicates(yajl_val v)
{
    if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            if (has_duplicates(v->u.array.values[i]))
                return true;
        return false;
    }
    if (!YAJL_IS_OBJECT(v))
        return false;
    size_t n = v->u.object.len;
    bool dup = false;
    if (n > 1) {
        const char **names = xmalloc(n * sizeof(*names));
        memcpy(names, v->u.object.keys, n * sizeof(*names));
        qsort(names, n, sizeof(*names), cmp_keys);
        for (size_t i = 1; i < n && !dup; i++)
            dup = strcmp(names[i - 1], names[i]) == 0;
        free(names);
    }
    for (size_t i = 0; i < n && !dup; i++)
        dup = has_duplicates(v->u.object.values[i]);
    return dup;
}

/*
 * Parse s[0..len) (s[len] must be NUL) into a tree: NULL with why set for
 * anything the pre-check or yajl refuses, or an object with a duplicate
 * member name. yajl's own message may quote the input, so it is only
 * copied into detail when detail is not NULL.
 */
static yajl_val json_parse(const char *s, size_t len, const char **why, char *detail, size_t detail_len)
{
    if ((*why = json_precheck(s, len)) != NULL)
        return NULL;
    char ebuf[256];
    ebuf[0] = '\0';
    yajl_val v = yajl_tree_parse(s, ebuf, sizeof(ebuf));
    if (v == NULL) {
        *why = "not valid JSON";
        if (detail != NULL) {
            ebuf[strcspn(ebuf, "\r\n")] = '\0';
            snprintf(detail, detail_len, "%s", ebuf);
        }
        return NULL;
    }
    if (has_duplicates(v)) {
        yajl_tree_free(v);
        *why = "a duplicate member name";
        return NULL;
    }
    return v;
}

static yajl_val member(yajl_val obj, const char *name)
{
    if (!YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], name) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* 0 absent, 1 a string (in *out), -1 present but not a string. */
static int member_string(yajl_val obj, const char *name, const char **out)
{
    yajl_val v = member(obj, name);
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!YAJL_IS_STRING(v))
        return -1;
    *out = v->u.string;
    return 1;
}

/* ---- JWKS ---- */

/* The base64url member name of a JWK, decoded; NULL with why when missing or malformed. */
static uint8_t *jwk_bytes(yajl_val jwk, const char *name, size_t *n, char *why, size_t whylen)
{
    const char *s;
    if (member_string(jwk, name, &s) != 1 || s[0] == '\0') {
        snprintf(why, whylen, "\"%s\" is missing or not a string", name);
        return NULL;
    }
    uint8_t *b = b64url_dup(s, strlen(s), n);
    if (b == NULL)
        snprintf(why, whylen, "\"%s\" is not base64url", name);
    return b;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *rsa_key(yajl_val jwk, char *why, size_t whylen)
{
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    size_t nl, el;
    uint8_t *nb = jwk_bytes(jwk, "n", &nl, why, whylen);
    uint8_t *eb = nb ? jwk_bytes(jwk, "e", &el, why, whylen) : NULL;
    if (eb == NULL)
        goto done;
    if ((n = BN_bin2bn(nb, (int)nl, NULL)) == NULL || (e = BN_bin2bn(eb, (int)el, NULL)) == NULL) {
        snprintf(why, whylen, "RSA parameters not usable");
        goto done;
    }
    int bits = BN_num_bits(n);
    if (bits < JWK_RSA_MIN_BITS || bits > JWK_RSA_MAX_BITS) {
        snprintf(why, whylen, "RSA modulus of %d bits (%d to %d are accepted)", bits, JWK_RSA_MIN_BITS,
                 JWK_RSA_MAX_BITS);
        goto done;
    }
    /* OpenSSL refuses longer exponents on moduli over 3072 bits anyway. */
    if (!BN_is_odd(n) || !BN_is_odd(e) || BN_num_bits(e) < 2 || BN_num_bits(e) > 64) {
        snprintf(why, whylen, "RSA modulus or exponent not valid");
        goto done;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 || (pkey = pkey_from_params("RSA", bld)) == NULL)
        snprintf(why, whylen, "RSA key not accepted by OpenSSL");
done:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nb);
    free(eb);
    return pkey;
}

static EVP_PKEY *ec_key(yajl_val jwk, enum key_type type, char *why, size_t whylen)
{
    size_t size = type == KEY_EC_P256 ? 32 : 48;
    const char *group = type == KEY_EC_P256 ? SN_X9_62_prime256v1 : SN_secp384r1;
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY_CTX *check = NULL;
    size_t xl, yl;
    uint8_t *x = jwk_bytes(jwk, "x", &xl, why, whylen);
    uint8_t *y = x ? jwk_bytes(jwk, "y", &yl, why, whylen) : NULL;
    if (y == NULL)
        goto done;
    /* RFC 7518 6.2.1.2: each coordinate is the full size of the field. */
    if (xl != size || yl != size) {
        snprintf(why, whylen, "EC coordinates must be %zu bytes each", size);
        goto done;
    }
    uint8_t point[1 + 2 * 48];
    point[0] = 0x04; /* SEC 1 2.3.3, uncompressed */
    memcpy(point + 1, x, size);
    memcpy(point + 1 + size, y, size);
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size) != 1 ||
        (pkey = pkey_from_params("EC", bld)) == NULL) {
        snprintf(why, whylen, "EC point is not on the curve");
        goto done;
    }
    /* Decoding already checks the curve equation; this adds infinity and the subgroup order. */
    if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL || EVP_PKEY_public_check(check) != 1) {
        snprintf(why, whylen, "EC point is not a valid public key of the curve");
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
done:
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

static EVP_PKEY *ed25519_key(yajl_val jwk, char *why, size_t whylen)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    size_t xl;
    uint8_t *x = jwk_bytes(jwk, "x", &xl, why, whylen);
    if (x == NULL)
        goto done;
    if (xl != 32) {
        snprintf(why, whylen, "Ed25519 \"x\" must be 32 bytes");
        goto done;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x, xl) != 1 ||
        (pkey = pkey_from_params("ED25519", bld)) == NULL)
        snprintf(why, whylen, "Ed25519 key not accepted by OpenSSL");
done:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    return pkey;
}

static void prepare(jwk_t *k);

/* One JWK into *k; -1 with why when it cannot be used. */
static int jwk_build(yajl_val jwk, jwk_t *k, char *why, size_t whylen)
{
    const char *kty, *crv, *use, *alg, *kid;
    if (!YAJL_IS_OBJECT(jwk)) {
        snprintf(why, whylen, "not a JSON object");
        return -1;
    }
    if (member_string(jwk, "kty", &kty) != 1) {
        snprintf(why, whylen, "\"kty\" is missing or not a string");
        return -1;
    }
    int rc_use = member_string(jwk, "use", &use);
    if (rc_use < 0 || (rc_use == 1 && strcmp(use, "sig") != 0)) {
        snprintf(why, whylen, "\"use\" is not \"sig\"");
        return -1;
    }
    if (member_string(jwk, "kid", &kid) < 0) {
        snprintf(why, whylen, "\"kid\" is not a string");
        return -1;
    }
    int rc_crv = member_string(jwk, "crv", &crv);
    if (strcmp(kty, "RSA") == 0) {
        k->type = KEY_RSA;
    } else if (strcmp(kty, "EC") == 0 && rc_crv == 1 && strcmp(crv, "P-256") == 0) {
        k->type = KEY_EC_P256;
    } else if (strcmp(kty, "EC") == 0 && rc_crv == 1 && strcmp(crv, "P-384") == 0) {
        k->type = KEY_EC_P384;
    } else if (strcmp(kty, "OKP") == 0 && rc_crv == 1 && strcmp(crv, "Ed25519") == 0) {
        k->type = KEY_ED25519;
    } else if (strcmp(kty, "oct") == 0) {
        snprintf(why, whylen, "kty \"oct\": symmetric keys are not accepted");
        return -1;
    } else if (strcmp(kty, "EC") == 0 || strcmp(kty, "OKP") == 0) {
        snprintf(why, whylen, "kty \"%s\" with an unsupported or missing \"crv\"", kty);
        return -1;
    } else {
        snprintf(why, whylen, "unsupported \"kty\"");
        return -1;
    }
    k->alg = -1;
    int rc_alg = member_string(jwk, "alg", &alg);
    if (rc_alg < 0) {
        snprintf(why, whylen, "\"alg\" is not a string");
        return -1;
    }
    if (rc_alg == 1) {
        const alg_t *a = alg_find(alg, &k->alg);
        if (a == NULL || a->key != k->type) {
            snprintf(why, whylen, "\"alg\" is not a supported signature algorithm for this key type");
            return -1;
        }
    }
    switch (k->type) {
    case KEY_RSA: k->pkey = rsa_key(jwk, why, whylen); break;
    case KEY_EC_P256:
    case KEY_EC_P384: k->pkey = ec_key(jwk, k->type, why, whylen); break;
    case KEY_ED25519: k->pkey = ed25519_key(jwk, why, whylen); break;
    }
    if (k->pkey == NULL)
        return -1;
    k->kid = kid ? xstrdup(kid) : NULL;
    prepare(k);
    return 0;
}

jwks_t *jwks_parse(const char *json, size_t len, char *err, size_t errlen)
{
    jwks_t *set = NULL;
    yajl_val doc = NULL;
    char *text = NULL;
    set_err(err, errlen, "%s", "");
    if (json == NULL && len > 0) {
        set_err(err, errlen, "Jwks is missing");
        return NULL;
    }
    if (len > JWKS_MAX_BYTES) {
        set_err(err, errlen, "Jwks is longer than %u bytes", (unsigned)JWKS_MAX_BYTES);
        return NULL;
    }
    text = xmalloc(len + 1);
    if (len > 0)
        memcpy(text, json, len);
    text[len] = '\0';
    const char *why;
    char detail[200] = "";
    if ((doc = json_parse(text, len, &why, detail, sizeof(detail))) == NULL) {
        set_err(err, errlen, "Jwks is not valid: %s%s%s", why, detail[0] ? ": " : "", detail);
        goto done;
    }
    if (!YAJL_IS_OBJECT(doc)) {
        set_err(err, errlen, "Jwks is not a JSON object");
        goto done;
    }
    yajl_val keys = member(doc, "keys");
    yajl_val *items;
    size_t n;
    if (keys != NULL) {
        if (!YAJL_IS_ARRAY(keys)) {
            set_err(err, errlen, "Jwks \"keys\" is not an array");
            goto done;
        }
        items = keys->u.array.values;
        n = keys->u.array.len;
    } else if (member(doc, "kty") != NULL) {
        items = &doc; /* a bare JWK */
        n = 1;
    } else {
        set_err(err, errlen, "Jwks has neither a \"keys\" array nor a \"kty\"");
        goto done;
    }
    if (n > JWKS_MAX_KEYS) {
        set_err(err, errlen, "Jwks has %zu keys (at most %d)", n, JWKS_MAX_KEYS);
        goto done;
    }
    if (n == 0) {
        set_err(err, errlen, "Jwks has no keys");
        goto done;
    }
    set = xcalloc(1, sizeof(*set));
    atomic_init(&set->refs, 1);
    set->keys = xcalloc(n, sizeof(*set->keys));
    char first[200] = "";
    for (size_t i = 0; i < n; i++) {
        char reason[160];
        if (jwk_build(items[i], &set->keys[set->n], reason, sizeof(reason)) == 0)
            set->n++;
        else if (first[0] == '\0')
            snprintf(first, sizeof(first), "keys[%zu]: %s", i, reason);
    }
    if (set->n == 0) {
        set_err(err, errlen, "Jwks has no usable key (%s)", first);
        jwks_destroy(set);
        set = NULL;
        goto done;
    }
    set_err(err, errlen, "%s%s", first, first[0] ? " (skipped)" : "");
done:
    yajl_tree_free(doc);
    free(text);
    ERR_clear_error();
    return set;
}

size_t jwks_count(const jwks_t *keys)
{
    return keys ? keys->n : 0;
}

jwks_t *jwks_ref(jwks_t *keys)
{
    if (keys != NULL)
        atomic_fetch_add_explicit(&keys->refs, 1, memory_order_relaxed);
    return keys;
}

void jwks_destroy(jwks_t *keys)
{
    if (keys == NULL || atomic_fetch_sub_explicit(&keys->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < keys->n; i++) {
        EVP_PKEY_free(keys->keys[i].pkey);
        for (size_t a = 0; a < N_ALGS; a++)
            EVP_MD_CTX_free(keys->keys[i].prep[a]);
        free(keys->keys[i].kid);
    }
    free(keys->keys);
    free(keys);
}

/* ---- verification ---- */

/* A context for verifying a's signatures with pkey, ready for EVP_DigestVerify; NULL on failure. */
static EVP_MD_CTX *verify_ctx(EVP_PKEY *pkey, const alg_t *a)
{
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestVerifyInit_ex(md, &pctx, a->md, NULL, NULL, pkey, NULL) != 1 ||
        /* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash. */
        (a->kind == KIND_RSA_PSS && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
                                     EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, a->md, NULL) != 1))) {
        EVP_MD_CTX_free(md);
        return NULL;
    }
    return md;
}

/* Prepare k's contexts for every algorithm it may verify (see jwk_t). */
static void prepare(jwk_t *k)
{
    for (size_t i = 0; i < N_ALGS; i++)
        if (ALGS[i].key == k->type && (k->alg < 0 || k->alg == (int)i))
            k->prep[i] = verify_ctx(k->pkey, &ALGS[i]);
    ERR_clear_error();
}

static bool verify_with(const jwk_t *k, int alg_index, const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                        size_t sig_len)
{
    const alg_t *a = &ALGS[alg_index];
    bool ok = false;
    uint8_t *der = NULL;
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *md = NULL;
    if (k->prep[alg_index] != NULL) { /* a copy: contexts are used once, and many threads share the key */
        md = EVP_MD_CTX_new();
        if (md != NULL && EVP_MD_CTX_copy_ex(md, k->prep[alg_index]) != 1) {
            EVP_MD_CTX_free(md);
            md = NULL;
        }
    }
    if (md == NULL && (md = verify_ctx(k->pkey, a)) == NULL)
        goto done;
    if (a->kind == KIND_ECDSA) {
        /* RFC 7518 3.4: R || S, each the size of the order; OpenSSL wants DER. */
        size_t half = sig_len / 2;
        BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
        if ((es = ECDSA_SIG_new()) == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            goto done;
        }
        int n = i2d_ECDSA_SIG(es, &der);
        if (n <= 0)
            goto done;
        sig = der;
        sig_len = (size_t)n;
    }
    ok = EVP_DigestVerify(md, sig, sig_len, msg, msg_len) == 1;
done:
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    return ok;
}

typedef struct numdate {
    bool is_int;
    int64_t i;
    double d;
} numdate_t;

/* A NumericDate claim: 0 absent, 1 present in *out, -1 not a number (or out of double range). */
static int member_date(yajl_val obj, const char *name, numdate_t *out)
{
    yajl_val v = member(obj, name);
    if (v == NULL)
        return 0;
    if (YAJL_IS_INTEGER(v)) {
        out->is_int = true;
        out->i = YAJL_GET_INTEGER(v);
        return 1;
    }
    if (YAJL_IS_DOUBLE(v)) {
        out->is_int = false;
        out->d = YAJL_GET_DOUBLE(v);
        return 1;
    }
    return -1;
}

/* Sign of date - t. */
static int date_cmp(const numdate_t *date, int64_t t)
{
    if (date->is_int)
        return (date->i > t) - (date->i < t);
    return (date->d > (double)t) - (date->d < (double)t);
}

static int64_t add_sat(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* Envoy's CheckAudience: one leading "http://" or "https://" and one trailing '/' do not count. */
static void aud_trim(const char *s, const char **p, size_t *n)
{
    size_t len = strlen(s);
    if (strncmp(s, "http://", 7) == 0)
        s += 7, len -= 7;
    else if (strncmp(s, "https://", 8) == 0)
        s += 8, len -= 8;
    if (len > 0 && s[len - 1] == '/')
        len--;
    *p = s;
    *n = len;
}

static bool aud_allowed(const char *aud, const jwt_check_t *check)
{
    const char *a, *b;
    size_t an, bn;
    aud_trim(aud, &a, &an);
    for (size_t i = 0; i < check->n_audiences; i++) {
        aud_trim(check->audiences[i], &b, &bn);
        if (an == bn && memcmp(a, b, an) == 0)
            return true;
    }
    return false;
}

/*
 * The registered claims of a payload: types checked, iss/sub/azp/aud
 * pointed at in *j. JWT_OK or JWT_ERR_PAYLOAD with a message.
 */
static jwt_status_t read_claims(yajl_val c, jwt_t *j, char *err, size_t errlen)
{
    static const char *const STRINGS[] = {"iss", "sub", "jti"};
    static const char *const DATES[] = {"exp", "nbf", "iat"};
    const char *s;
    numdate_t d;
    for (size_t i = 0; i < 3; i++) {
        if (member_string(c, STRINGS[i], &s) < 0) {
            set_err(err, errlen, "Jwt payload: \"%s\" is not a string", STRINGS[i]);
            return JWT_ERR_PAYLOAD;
        }
        if (member_date(c, DATES[i], &d) < 0) {
            set_err(err, errlen, "Jwt payload: \"%s\" is not a number", DATES[i]);
            return JWT_ERR_PAYLOAD;
        }
    }
    member_string(c, "iss", &j->iss);
    member_string(c, "sub", &j->sub);
    member_string(c, "azp", &j->azp);
    yajl_val aud = member(c, "aud");
    if (aud == NULL)
        return JWT_OK;
    bool strings = YAJL_IS_ARRAY(aud);
    for (size_t i = 0; strings && i < aud->u.array.len; i++)
        strings = YAJL_IS_STRING(aud->u.array.values[i]);
    if (YAJL_IS_STRING(aud)) {
        j->aud = xmalloc(sizeof(*j->aud));
        j->aud[0] = aud->u.string;
        j->n_aud = 1;
    } else if (strings) {
        j->n_aud = aud->u.array.len;
        j->aud = xmalloc(j->n_aud * sizeof(*j->aud));
        for (size_t i = 0; i < j->n_aud; i++)
            j->aud[i] = aud->u.array.values[i]->u.string;
    } else {
        set_err(err, errlen, "Jwt payload: \"aud\" is neither a string nor an array of strings");
        return JWT_ERR_PAYLOAD;
    }
    return JWT_OK;
}

/* The time and audience checks on a payload whose claims read_claims accepted. */
static jwt_status_t check_claims(const jwt_t *j, const jwt_check_t *check, char *err, size_t errlen)
{
    if (j->iss == NULL) {
        set_err(err, errlen, "Jwt has no issuer (iss)");
        return JWT_ERR_ISSUER;
    }
    if (strcmp(j->iss, check->issuer) != 0) {
        set_err(err, errlen, "Jwt issuer is not configured");
        return JWT_ERR_ISSUER;
    }
    int64_t skew = check->clock_skew_s == 0  ? JWT_DEFAULT_CLOCK_SKEW_S
                   : check->clock_skew_s < 0 ? 0
                                             : check->clock_skew_s;
    numdate_t d;
    if (member_date(j->claims, "exp", &d) == 1 && date_cmp(&d, add_sat(check->now, -skew)) <= 0) {
        set_err(err, errlen, "Jwt is expired");
        return JWT_ERR_EXPIRED;
    }
    if (member_date(j->claims, "nbf", &d) == 1 && date_cmp(&d, add_sat(check->now, skew)) > 0) {
        set_err(err, errlen, "Jwt is not yet valid");
        return JWT_ERR_NOT_YET_VALID;
    }
    if (check->n_audiences > 0) {
        if (j->n_aud == 0) {
            set_err(err, errlen, "Jwt has no audience (aud) but audiences are required");
            return JWT_ERR_AUDIENCE;
        }
        bool ok = false;
        for (size_t i = 0; i < j->n_aud && !ok; i++)
            ok = aud_allowed(j->aud[i], check);
        if (!ok) {
            set_err(err, errlen, "Audiences in Jwt are not allowed");
            return JWT_ERR_AUDIENCE;
        }
    }
    return JWT_OK;
}

static bool check_ok(const jwt_check_t *check)
{
    return check != NULL && check->issuer != NULL && (check->n_audiences == 0 || check->audiences != NULL);
}

/* jwt_verify with keys and check given, or chosen by pick from the payload's iss (then keys and check are NULL). */
static jwt_status_t verify(const jwks_t *keys, const jwt_check_t *check, jwt_pick_fn pick, void *ctx, const char *token,
                           size_t len, jwt_t **out, char *err, size_t errlen)
{
    jwt_status_t rc;
    uint8_t *header = NULL, *payload = NULL, *sig = NULL;
    yajl_val hdr = NULL, claims = NULL;
    jwt_t *j = NULL;
    const char *why;
    set_err(err, errlen, "%s", "");
    if (out != NULL)
        *out = NULL;
    if (token == NULL || out == NULL || (pick == NULL && (keys == NULL || !check_ok(check)))) {
        set_err(err, errlen, "%s", jwt_status_str(JWT_ERR_ARGS));
        return JWT_ERR_ARGS;
    }
    size_t max = check != NULL && check->max_bytes ? check->max_bytes : JWT_MAX_BYTES;
    if (len > max) {
        set_err(err, errlen, "Jwt is longer than %zu bytes", max);
        return JWT_ERR_TOO_LONG;
    }

    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    const char *end = token + len;
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL || d1 == token || d2 == d1 + 1) {
        set_err(err, errlen, "%s", jwt_status_str(JWT_ERR_FORMAT));
        return JWT_ERR_FORMAT;
    }
    size_t header_len, payload_len = 0, sig_len;
    if (pick != NULL) { /* the payload first: its iss says whose keys and checks apply */
        const char *iss = NULL;
        if ((payload = b64url_dup(d1 + 1, (size_t)(d2 - d1 - 1), &payload_len)) == NULL ||
            (claims = json_parse((const char *)payload, payload_len, &why, NULL, 0)) == NULL ||
            !YAJL_IS_OBJECT(claims) || member_string(claims, "iss", &iss) != 1) {
            set_err(err, errlen, "%s", jwt_status_str(JWT_ERR_FORMAT));
            rc = JWT_ERR_FORMAT;
            goto done;
        }
        if ((rc = pick(ctx, iss, &keys, &check)) != JWT_OK) {
            set_err(err, errlen, "%s", jwt_status_str(rc));
            goto done;
        }
        if (keys == NULL || !check_ok(check)) {
            set_err(err, errlen, "%s", jwt_status_str(JWT_ERR_ARGS));
            rc = JWT_ERR_ARGS;
            goto done;
        }
        if (check->max_bytes && len > check->max_bytes) {
            set_err(err, errlen, "Jwt is longer than %zu bytes", check->max_bytes);
            rc = JWT_ERR_TOO_LONG;
            goto done;
        }
    }
    if ((header = b64url_dup(token, (size_t)(d1 - token), &header_len)) == NULL) {
        set_err(err, errlen, "Jwt header is not base64url");
        rc = JWT_ERR_BASE64;
        goto done;
    }
    if ((hdr = json_parse((const char *)header, header_len, &why, NULL, 0)) == NULL) {
        set_err(err, errlen, "Jwt header is an invalid JSON (%s)", why);
        rc = JWT_ERR_HEADER;
        goto done;
    }
    if (!YAJL_IS_OBJECT(hdr)) {
        set_err(err, errlen, "Jwt header is not a JSON object");
        rc = JWT_ERR_HEADER;
        goto done;
    }
    const char *alg_name, *kid;
    const alg_t *alg = NULL;
    int alg_index = -1;
    if (member_string(hdr, "alg", &alg_name) != 1) {
        set_err(err, errlen, "Jwt header has no alg, or it is not a string");
        rc = JWT_ERR_ALG;
        goto done;
    }
    if ((alg = alg_find(alg_name, &alg_index)) == NULL) {
        set_err(err, errlen, "Jwt alg is not allowed (only RS*, PS*, ES256, ES384 and EdDSA are)");
        rc = JWT_ERR_ALG;
        goto done;
    }
    /* RFC 7515 4.1.11: no extension is understood here, so any crit means refuse. */
    if (member(hdr, "crit") != NULL) {
        set_err(err, errlen, "Jwt header has crit parameters that are not understood");
        rc = JWT_ERR_CRIT;
        goto done;
    }
    if (member_string(hdr, "kid", &kid) < 0) {
        set_err(err, errlen, "Jwt header kid is not a string");
        rc = JWT_ERR_HEADER;
        goto done;
    }
    if (d2 + 1 == end) {
        set_err(err, errlen, "Jwt signature is empty");
        rc = JWT_ERR_FORMAT;
        goto done;
    }
    if (payload == NULL && (payload = b64url_dup(d1 + 1, (size_t)(d2 - d1 - 1), &payload_len)) == NULL) {
        set_err(err, errlen, "Jwt payload is not base64url");
        rc = JWT_ERR_BASE64;
        goto done;
    }
    if ((sig = b64url_dup(d2 + 1, (size_t)(end - d2 - 1), &sig_len)) == NULL) {
        set_err(err, errlen, "Jwt signature is not base64url");
        rc = JWT_ERR_BASE64;
        goto done;
    }
    if (alg->sig_len && sig_len != alg->sig_len) {
        set_err(err, errlen, "Jwt verification fails: a %s signature is %zu bytes, not %zu", alg->name, alg->sig_len,
                sig_len);
        rc = JWT_ERR_SIGNATURE;
        goto done;
    }

    size_t tried = 0;
    bool verified = false;
    for (size_t i = 0; i < keys->n && !verified; i++) {
        const jwk_t *k = &keys->keys[i];
        if (kid != NULL && (k->kid == NULL || strcmp(k->kid, kid) != 0))
            continue;
        if (k->type != alg->key || (k->alg >= 0 && k->alg != alg_index))
            continue;
        tried++;
        verified = verify_with(k, alg_index, (const uint8_t *)token, (size_t)(d2 - token), sig, sig_len);
    }
    if (tried == 0) {
        set_err(err, errlen, "Jwks doesn't have a key to match the kid or alg of the Jwt");
        rc = JWT_ERR_NO_KEY;
        goto done;
    }
    if (!verified) {
        set_err(err, errlen, "Jwt verification fails");
        rc = JWT_ERR_SIGNATURE;
        goto done;
    }

    if (claims == NULL && (claims = json_parse((const char *)payload, payload_len, &why, NULL, 0)) == NULL) {
        set_err(err, errlen, "Jwt payload is an invalid JSON (%s)", why);
        rc = JWT_ERR_PAYLOAD;
        goto done;
    }
    if (!YAJL_IS_OBJECT(claims)) {
        set_err(err, errlen, "Jwt payload is not a JSON object");
        rc = JWT_ERR_PAYLOAD;
        goto done;
    }
    j = xcalloc(1, sizeof(*j));
    j->claims = claims;
    claims = NULL;
    if ((rc = read_claims(j->claims, j, err, errlen)) != JWT_OK || (rc = check_claims(j, check, err, errlen)) != JWT_OK)
        goto done;
    if (j->sub != NULL) {
        size_t il = strlen(j->iss), sl = strlen(j->sub);
        j->principal = xmalloc(il + sl + 2);
        memcpy(j->principal, j->iss, il);
        j->principal[il] = '/';
        memcpy(j->principal + il + 1, j->sub, sl + 1);
    }
    *out = j;
    j = NULL;
    rc = JWT_OK;
done:
    jwt_destroy(j);
    yajl_tree_free(claims);
    yajl_tree_free(hdr);
    free(header);
    free(payload);
    free(sig);
    ERR_clear_error();
    return rc;
}

jwt_status_t jwt_verify(const jwks_t *keys, const char *token, size_t len, const jwt_check_t *check, jwt_t **out,
                        char *err, size_t errlen)
{
    return verify(keys, check, NULL, NULL, token, len, out, err, errlen);
}

jwt_status_t jwt_verify_pick(const char *token, size_t len, jwt_pick_fn pick, void *ctx, jwt_t **out, char *err,
                             size_t errlen)
{
    if (pick == NULL) {
        if (out != NULL)
            *out = NULL;
        set_err(err, errlen, "%s", jwt_status_str(JWT_ERR_ARGS));
        return JWT_ERR_ARGS;
    }
    return verify(NULL, NULL, pick, ctx, token, len, out, err, errlen);
}

const char *jwt_status_str(jwt_status_t s)
{
    switch (s) {
    case JWT_OK: return "Jwt is verified";
    case JWT_ERR_ARGS: return "Jwt verification is missing its keys, token or issuer";
    case JWT_ERR_TOO_LONG: return "Jwt is too long";
    case JWT_ERR_FORMAT: return "Jwt is not in the form of Header.Payload.Signature";
    case JWT_ERR_BASE64: return "Jwt is not base64url";
    case JWT_ERR_HEADER: return "Jwt header is an invalid JSON";
    case JWT_ERR_ALG: return "Jwt alg is not allowed";
    case JWT_ERR_CRIT: return "Jwt header has crit parameters that are not understood";
    case JWT_ERR_NO_KEY: return "Jwks doesn't have a key to match the kid or alg of the Jwt";
    case JWT_ERR_SIGNATURE: return "Jwt verification fails";
    case JWT_ERR_PAYLOAD: return "Jwt payload is an invalid JSON";
    case JWT_ERR_ISSUER: return "Jwt issuer is not configured";
    case JWT_ERR_EXPIRED: return "Jwt is expired";
    case JWT_ERR_NOT_YET_VALID: return "Jwt is not yet valid";
    case JWT_ERR_AUDIENCE: return "Audiences in Jwt are not allowed";
    case JWT_ERR_JWKS_FETCH: return "Jwks remote fetch is failed";
    }
    return "Jwt status unknown";
}

/* ---- a verified token ---- */

const char *jwt_issuer(const jwt_t *jwt)
{
    return jwt->iss;
}

const char *jwt_subject(const jwt_t *jwt)
{
    return jwt->sub;
}

const char *jwt_presenter(const jwt_t *jwt)
{
    return jwt->azp;
}

const char *const *jwt_audiences(const jwt_t *jwt, size_t *n)
{
    *n = jwt->n_aud;
    return jwt->n_aud ? jwt->aud : NULL;
}

const char *jwt_principal(const jwt_t *jwt)
{
    return jwt->principal;
}

/* The text of a scalar claim value, NULL for anything else. */
static const char *scalar_text(yajl_val v)
{
    if (YAJL_IS_STRING(v))
        return v->u.string;
    if (YAJL_IS_NUMBER(v))
        return v->u.number.r;
    if (YAJL_IS_TRUE(v))
        return "true";
    if (YAJL_IS_FALSE(v))
        return "false";
    return NULL;
}

size_t jwt_claim(const jwt_t *jwt, const char *const *path, size_t depth, const char **out, size_t cap)
{
    yajl_val v = jwt->claims;
    for (size_t i = 0; i < depth && v != NULL; i++)
        v = member(v, path[i]);
    if (v == NULL)
        return 0;
    const char *t = scalar_text(v);
    if (t != NULL) {
        if (cap > 0)
            out[0] = t;
        return 1;
    }
    if (!YAJL_IS_ARRAY(v))
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < v->u.array.len; i++) {
        if ((t = scalar_text(v->u.array.values[i])) == NULL)
            continue;
        if (n < cap)
            out[n] = t;
        n++;
    }
    return n;
}

void jwt_destroy(jwt_t *jwt)
{
    if (jwt == NULL)
        return;
    yajl_tree_free(jwt->claims);
    free(jwt->aud);
    free(jwt->principal);
    free(jwt);
}
