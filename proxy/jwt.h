/*
 * jwt: verification of JSON Web Tokens (compact JWS, RFC 7515/7519)
 * against a JSON Web Key Set (RFC 7517), the library under Istio's
 * RequestAuthentication jwtRules. No config, no fetching, no headers:
 * the caller finds the token (fromHeaders/fromParams), fetches the JWKS
 * (jwks/jwksUri) and applies the result.
 *
 * Keys: kty RSA (n, e; JWK_RSA_MIN_BITS..JWK_RSA_MAX_BITS), EC (crv P-256
 * or P-384, x and y of full length, a point on the curve), OKP (crv
 * Ed25519, x). Symmetric keys (kty oct) are never taken (Istio does not
 * accept HMAC), nor keys whose "use" is not "sig". Algorithms: RS256/384/512,
 * PS256/384/512 (salt length = hash length), ES256 (P-256), ES384 (P-384),
 * EdDSA (Ed25519); "none", HS* and anything else are refused, so no key can
 * ever be used with an algorithm of another family (no key confusion).
 * Header parameters that name keys ("jwk", "jku", "x5u", "x5c") are ignored:
 * keys come only from the JWKS.
 *
 * JSON goes through yajl's tree parser after a lexical pre-check that
 * yajl cannot do: no NUL bytes and no "\u0000" escapes (yajl's strings are
 * NUL-terminated, so "a\u0000b" would read as "a"), no comments (yajl's
 * tree parser allows them), nesting at most JWT_JSON_MAX_DEPTH. Objects
 * with a duplicate member name are refused anywhere in a token's header or
 * payload (RFC 7515 5.2), and in a JWKS.
 *
 * Thread safety: a jwks_t and a jwt_t are immutable once returned; any
 * number of threads may verify with one jwks_t at the same time. There is
 * no global state beyond OpenSSL's own.
 */
#ifndef OUTRIDER_PROXY_JWT_H
#define OUTRIDER_PROXY_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWKS_MAX_BYTES (1u << 20)   /* a JWKS document */
#define JWKS_MAX_KEYS 64            /* members of "keys" (usable or not) */
#define JWK_RSA_MIN_BITS 2048       /* RFC 7518 3.3 */
#define JWK_RSA_MAX_BITS 8192       /* bounds the cost of one verification */
#define JWT_MAX_BYTES 8192          /* a token, when jwt_check_t.max_bytes is 0 */
#define JWT_JSON_MAX_DEPTH 32       /* nesting of arrays and objects in any JSON read here */
#define JWT_DEFAULT_CLOCK_SKEW_S 60 /* Envoy jwt_authn's clock_skew_seconds default */

typedef struct jwks jwks_t;
typedef struct jwt jwt_t;

/*
 * Parse a JWKS document {"keys":[JWK, ...]} or a single JWK object (json
 * need not be NUL-terminated; at most JWKS_MAX_BYTES). Keys that cannot be
 * used are skipped: unsupported kty or crv, kty oct, "use" other than
 * "sig", an "alg" not listed above or not fitting the key type, malformed
 * or missing members, an RSA modulus outside the bit limits or even, an
 * RSA exponent that is even, 1 or over 64 bits, an EC point not on its
 * curve. Private members ("d"
 * and the rest) are ignored. Returns the set, or NULL with a reason in err
 * when the document is not JSON, has no "keys" array (and is not a JWK),
 * holds more than JWKS_MAX_KEYS keys, or no usable key (the reason then
 * names the first skipped key and why). On success err holds the reason
 * the first key was skipped, or "" when none was. err may be NULL when
 * errlen is 0. The caller frees the set with jwks_destroy.
 */
jwks_t *jwks_parse(const char *json, size_t len, char *err, size_t errlen);

/* How many usable keys the set holds (at least 1). */
size_t jwks_count(const jwks_t *keys);

/*
 * A set is reference-counted (a fetched jwksUri's set is replaced while
 * verifications may still hold the old one): jwks_ref takes one more
 * reference and returns keys; jwks_destroy drops one and frees the set
 * with the last. Both are safe from any thread; NULL is a no-op.
 */
jwks_t *jwks_ref(jwks_t *keys);
void jwks_destroy(jwks_t *keys);

/* What jwt_verify checks besides the signature. Zero-initialise, then set. */
typedef struct jwt_check {
    const char *issuer;           /* required: iss must equal it exactly */
    const char *const *audiences; /* n_audiences strings; none = no audience check */
    size_t n_audiences;           /* (compared as Envoy does: see jwt_verify) */
    int64_t now;                  /* seconds since the epoch */
    int64_t clock_skew_s;         /* 0 = JWT_DEFAULT_CLOCK_SKEW_S; < 0 = none */
    size_t max_bytes;             /* longest token; 0 = JWT_MAX_BYTES */
} jwt_check_t;

/* Why jwt_verify refused a token; each comes with its own message in err. */
typedef enum jwt_status {
    JWT_OK = 0,
    JWT_ERR_ARGS = -1,           /* NULL keys, token or check, or no issuer in check */
    JWT_ERR_TOO_LONG = -2,       /* over max_bytes */
    JWT_ERR_FORMAT = -3,         /* not Header.Payload.Signature, an empty part */
    JWT_ERR_BASE64 = -4,         /* a part is not unpadded, canonical base64url */
    JWT_ERR_HEADER = -5,         /* header not a JSON object, or kid not a string */
    JWT_ERR_ALG = -6,            /* alg missing, "none", HS*, unknown */
    JWT_ERR_CRIT = -7,           /* a "crit" header parameter (no extension is understood) */
    JWT_ERR_NO_KEY = -8,         /* no key of the JWKS fits the kid and alg */
    JWT_ERR_SIGNATURE = -9,      /* no fitting key verifies the signature, or it has the wrong size */
    JWT_ERR_PAYLOAD = -10,       /* payload not a JSON object, a registered claim of the wrong type */
    JWT_ERR_ISSUER = -11,        /* iss missing or not the configured issuer */
    JWT_ERR_EXPIRED = -12,       /* exp <= now - skew */
    JWT_ERR_NOT_YET_VALID = -13, /* nbf > now + skew */
    JWT_ERR_AUDIENCE = -14,      /* audiences configured, and aud missing or none of them */
    JWT_ERR_JWKS_FETCH = -15,    /* (jwt_verify_pick) the issuer's keys have not been fetched yet */
} jwt_status_t;

/*
 * Verify the compact JWS token[0..len) (no "Bearer " prefix, no
 * surrounding blanks) with keys, then check its claims. In order:
 * length; three dot-separated parts, header and payload non-empty, each
 * unpadded base64url; the header a JSON object with a supported "alg" and
 * no "crit"; the keys to try: those whose "kid" equals the token's kid
 * when it has one (else all), of the type the alg needs (RSA for RS* and PS*,
 * EC P-256 for ES256, EC P-384 for ES384, Ed25519 for EdDSA) and whose own
 * "alg", when set, equals the token's; the signature (ES256/ES384: raw
 * R||S of exactly 64/96 bytes) verified by at least one of them; then the
 * payload, a JSON object whose iss, sub, jti are strings, exp, nbf, iat
 * numbers and aud a string or an array of strings when present. Claims:
 * iss equals check->issuer; exp, when present, > now - skew; nbf, when
 * present, <= now + skew; when audiences are configured, aud is present
 * and one of its values matches one of them, compared after removing one
 * leading "http://" or "https://" and one trailing '/' from both (as
 * Envoy's jwt_authn does). iat is not checked.
 * Returns JWT_OK and *out (free with jwt_destroy), or the reason with
 * *out = NULL and a message in err (err may be NULL when errlen is 0).
 * The message never quotes the token.
 */
jwt_status_t jwt_verify(const jwks_t *keys, const char *token, size_t len, const jwt_check_t *check, jwt_t **out,
                        char *err, size_t errlen);

/*
 * For jwt_verify_pick: the keys and checks for a token whose (unverified)
 * payload names issuer iss; JWT_OK with both set, or the refusal
 * (JWT_ERR_ISSUER: no rule for it; JWT_ERR_JWKS_FETCH: its keys are not
 * there yet). *keys must stay valid until jwt_verify_pick returns.
 */
typedef jwt_status_t (*jwt_pick_fn)(void *ctx, const char *iss, const jwks_t **keys, const jwt_check_t **check);

/*
 * jwt_verify for several issuers (jwtRules): the payload is decoded and
 * parsed once, its iss chooses the keys and checks through pick, then the
 * token is verified as jwt_verify does. A payload that is not a JSON
 * object with a string iss is JWT_ERR_FORMAT (nothing can be said of a
 * token no rule can be chosen for); pick's refusal is returned as it is.
 */
jwt_status_t jwt_verify_pick(const char *token, size_t len, jwt_pick_fn pick, void *ctx, jwt_t **out, char *err,
                             size_t errlen);

/* A short constant text for a status ("Jwt is expired", ...). */
const char *jwt_status_str(jwt_status_t s);

/* Claims of a verified token; strings live as long as the jwt_t. NULL when absent or not a string. */
const char *jwt_issuer(const jwt_t *jwt);
const char *jwt_subject(const jwt_t *jwt);
const char *jwt_presenter(const jwt_t *jwt); /* azp */

/* The aud values (a string aud is one value); *n gets their count, 0 (and NULL back) when absent. */
const char *const *jwt_audiences(const jwt_t *jwt, size_t *n);

/* Istio's request principal "iss/sub"; NULL when the token has no sub. */
const char *jwt_principal(const jwt_t *jwt);

/*
 * The claim at path[0..depth) (path[0] a top-level claim, path[1] a member
 * of it, ... as in request.auth.claims[a][b]), as strings: a string is
 * itself; a number its JSON text as sent; true/false "true"/"false"; an
 * array each of its string, number and bool elements in order (other
 * elements skipped); an object, null or a missing claim nothing. Writes
 * up to cap pointers to out (out may be NULL when cap is 0) and returns
 * how many values there are, which may exceed cap. The strings live as
 * long as the jwt_t.
 */
size_t jwt_claim(const jwt_t *jwt, const char *const *path, size_t depth, const char **out, size_t cap);

/* Free a verified token; NULL is a no-op. */
void jwt_destroy(jwt_t *jwt);

#endif
