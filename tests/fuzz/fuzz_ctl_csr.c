/*
 * libFuzzer target: what `outriderctl ca serve` does with a client's bytes
 * on POST /v1/sign (ctl/ca_server.c) before and while it signs.
 *
 * Input: a selector byte (modulo 3; the seeds use '0', '1' and '2'), then
 * the rest, copied into its own heap buffer so ASan sees any read past it:
 *
 *   0  the request body: pki_csr_parse (PEM or DER); when it parses, its
 *      key passes pki_check_public_key and pki_leaf_create certifies it
 *      for a fixed SPIFFE id with a CA made once at start, and the leaf
 *      has that key and id and verifies up to the root. ca_server_sign on
 *      the same bytes answers 200 exactly when the CSR parsed, else 400.
 *   1  the ?ttl= value (a C string: it ends at a NUL) through ttl_parse:
 *      an accepted TTL is 1s to TTL_MAX_S, is made of digits and units
 *      only, and reads back the same from ttl_format; pki_validity then
 *      gives a period inside the CA's, as the endpoint asks for it.
 *   2  the Authorization value (a C string) through ca_server_bearer_token:
 *      a token is returned exactly for "Bearer" in any case, spaces or
 *      tabs, then something other than spaces and tabs, and is that
 *      something without the blanks around it; tokens_lookup finds it
 *      in a one-token table exactly when it is that token.
 *
 * Every branch: no crash, leak or UB; a refusal has a reason; OpenSSL's
 * error queue is empty after every call (pki.h promises it).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>

#include "ctl/ca_server.h"
#include "ctl/pki.h"
#include "ctl/tokens.h"
#include "ctl/ttl.h"

#define TD "example.org"
#define ID "spiffe://example.org/ns/shop/sa/web"
#define TOKEN "abcdefghijklmnop0123" /* the one token of the table */
#define SIGN_TTL_S 3600
#define MAX_TTL_S ((int64_t)90 * 86400) /* the server's --max-ttl */

static pki_ca_t ca;
static tokens_t *table;
static int64_t now; /* one clock for the whole run: the same input gets the same answers */

static void on_token_error(void *ctx, const char *message)
{
    (void)ctx, (void)message;
    abort(); /* the fixed table is valid */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[PKI_ERR_MAX];
    now = (int64_t)time(NULL);
    ca.not_before = now - 86400;
    ca.not_after = now + (int64_t)10 * 365 * 86400;
    if ((ca.key = pki_key_generate(err, sizeof(err))) == NULL ||
        (ca.cert = pki_root_create(ca.key, TD, ca.not_before, ca.not_after, err, sizeof(err))) == NULL)
        abort();
    memcpy(ca.trust_domain, TD, sizeof(TD));
    static const char file[] = TOKEN " shop web\n";
    if ((table = tokens_parse("fuzz", file, sizeof(file) - 1, on_token_error, NULL)) == NULL)
        abort();
    return 0;
}

/* A refusal's reason: not empty, and ended inside its buffer. */
static void check_reason(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    if (n == 0 || n == errlen)
        abort();
}

static void check_queue_empty(void)
{
    if (ERR_peek_error() != 0)
        abort();
}

static void check_csr(const uint8_t *body, size_t len)
{
    char err[PKI_ERR_MAX];
    X509_REQ *req = pki_csr_parse(body, len, err, sizeof(err));
    check_queue_empty();
    if (req == NULL) {
        check_reason(err, sizeof(err));
    } else {
        EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
        if (pub == NULL || pki_check_public_key(pub, err, sizeof(err)) != 0)
            abort(); /* a parsed CSR carries a key we certify */
        pki_leaf_spec_t spec = {.spiffe_id = ID};
        if (pki_validity(&ca, now, SIGN_TTL_S, true, &spec.not_before, &spec.not_after, err, sizeof(err)) != 0)
            abort();
        X509 *leaf = pki_leaf_create(&ca, pub, &spec, err, sizeof(err));
        if (leaf == NULL)
            abort(); /* an accepted key could not be certified */
        char id[IDENT_SPIFFE_ID_MAX];
        if (EVP_PKEY_eq(X509_get0_pubkey(leaf), pub) != 1 ||
            pki_spiffe_id(leaf, id, sizeof(id), err, sizeof(err)) != 0 || strcmp(id, ID) != 0 ||
            pki_verify(ca.cert, leaf, NULL, now, err, sizeof(err)) != 0)
            abort();
        X509_free(leaf);
        X509_REQ_free(req);
        check_queue_empty();
    }

    ca_sign_result_t res;
    int status = ca_server_sign(&ca, ID, body, len, now, SIGN_TTL_S, &res, err, sizeof(err));
    check_queue_empty();
    if (status != (req != NULL ? 200 : 400))
        abort();
    if (status == 200) {
        static const char begin[] = "-----BEGIN CERTIFICATE-----";
        if (res.chain == NULL || strlen(res.chain) != res.chain_len ||
            strncmp(res.chain, begin, sizeof(begin) - 1) != 0)
            abort();
        free(res.chain);
    } else {
        if (res.chain != NULL)
            abort();
        check_reason(err, sizeof(err));
    }
}

static bool only_units_and_digits(const char *s)
{
    return s[strspn(s, "0123456789smhd")] == '\0';
}

static void check_ttl(const char *s)
{
    int64_t ttl = -7;
    const char *why = NULL;
    if (ttl_parse(s, &ttl, &why) != 0) {
        if (ttl != -7 || why == NULL || why[0] == '\0')
            abort(); /* a refusal touched the result, or gave no reason */
        return;
    }
    if (ttl < 1 || ttl > TTL_MAX_S || !only_units_and_digits(s))
        abort();
    char text[TTL_TEXT_MAX];
    int64_t again = 0;
    ttl_format(ttl, text, sizeof(text));
    if (strnlen(text, sizeof(text)) >= sizeof(text) - 1 || ttl_parse(text, &again, &why) != 0 || again != ttl)
        abort(); /* ttl_format does not write what ttl_parse reads back */

    /* as on_body_done: cut to the server's maximum, then to the CA's end */
    if (ttl > MAX_TTL_S)
        ttl = MAX_TTL_S;
    int64_t nb, na;
    char err[PKI_ERR_MAX];
    int v = pki_validity(&ca, now, ttl, true, &nb, &na, err, sizeof(err));
    if (v < 0 || v > 1 || nb >= na || nb < ca.not_before || na > ca.not_after || na > now + ttl)
        abort();
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

static void check_bearer(const char *h)
{
    const char *token = NULL;
    size_t len = 0, n = strlen(h);
    bool ok = ca_server_bearer_token(h, &token, &len);
    /* what RFC 6750's form and the blanks around it leave: h[from, to) */
    size_t from = 7, to = n;
    bool want = n >= 7 && strncasecmp(h, "Bearer", 6) == 0 && blank(h[6]);
    if (want) {
        while (from < to && blank(h[from]))
            from++;
        while (to > from && blank(h[to - 1]))
            to--;
        want = to > from;
    }
    if (ok != want)
        abort();
    if (!ok) {
        if (token != NULL || len != 0)
            abort(); /* wrote through its outputs when refusing */
        return;
    }
    if (token != h + from || len != to - from)
        abort();
    char ns[IDENT_LABEL_MAX + 1], sa[IDENT_LABEL_MAX + 1];
    bool mine = len == sizeof(TOKEN) - 1 && memcmp(token, TOKEN, len) == 0;
    int found = tokens_lookup(table, token, len, ns, sa);
    if ((found == 0) != mine || (mine && (strcmp(ns, "shop") != 0 || strcmp(sa, "web") != 0)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned which = data[0] % 3;
    size_t n = size - 1;
    if (which == 0) {
        uint8_t *body = malloc(n ? n : 1);
        memcpy(body, data + 1, n);
        check_csr(body, n);
        free(body);
        return 0;
    }
    /* header and query values reach the server as C strings: they end at the first NUL */
    char *s = malloc(n + 1);
    memcpy(s, data + 1, n);
    s[n] = '\0';
    if (which == 1)
        check_ttl(s);
    else
        check_bearer(s);
    free(s);
    return 0;
}
