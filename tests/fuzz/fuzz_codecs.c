/*
 * libFuzzer target: the small decoders in common/ (base64, hex, hostport)
 * against their own contracts; the whole input goes to every decoder.
 * What it checks, beyond no crash:
 *   base64  strict success re-encodes to the input (padding restored), so
 *           only canonical text is taken; lenient never writes past
 *           base64_decoded_max and takes everything strict takes, alike;
 *   hex     a successful decode re-encodes to the input lowercased, and
 *           HEX_LOWER takes a subset of HEX_ANY_CASE;
 *   hostport a split host never holds ':' unless it came in brackets, and
 *           a numeric host converts to a sockaddr of the right family.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "hex.h"
#include "hostport.h"

static void check_base64(const char *s, size_t n)
{
    size_t cap = base64_decoded_max(n);
    uint8_t *strict = malloc(cap + 1), *lenient = malloc(cap + 1);
    size_t ns = 0, nl = 0;
    int rs = base64_decode(s, n, BASE64_STRICT, strict, cap, &ns);
    int rl = base64_decode(s, n, BASE64_LENIENT, lenient, cap, &nl);
    if (rl == 0 && nl > cap)
        abort();
    if (rs == 0) {
        if (rl != 0 || nl != ns || memcmp(strict, lenient, ns) != 0)
            abort();
        size_t tl = base64_encoded_len(ns);
        char *text = malloc(tl + 1);
        base64_encode(strict, ns, text);
        size_t body = n;
        while (body > 0 && s[body - 1] == '=')
            body--;
        if (tl < body || memcmp(text, s, body) != 0 || (body != n && n != tl))
            abort();
        for (size_t i = body; i < tl; i++)
            if (text[i] != '=')
                abort();
        free(text);
    }
    free(strict);
    free(lenient);
}

static void check_hex(const char *s, size_t n)
{
    uint8_t *any = malloc(n / 2 + 1), *lower = malloc(n / 2 + 1);
    int ra = hex_decode(s, n, HEX_ANY_CASE, any);
    int rl = hex_decode(s, n, HEX_LOWER, lower);
    if (rl == 0 && (ra != 0 || memcmp(any, lower, n / 2) != 0))
        abort();
    if (ra == 0) {
        char *text = malloc(n + 1);
        hex_encode(any, n / 2, text);
        for (size_t i = 0; i < n; i++) {
            char c = s[i] >= 'A' && s[i] <= 'F' ? (char)(s[i] - 'A' + 'a') : s[i];
            if (text[i] != c)
                abort();
        }
        free(text);
    }
    /* a number of at most 16 digits: an even count of them decodes as bytes too */
    uint64_t v;
    if (hex_parse_u64(s, n, HEX_ANY_CASE, &v) == 0 && (n > 16 || (n % 2 == 0 && ra != 0)))
        abort();
    free(any);
    free(lower);
}

static void check_hostport(const char *s, size_t n)
{
    char *z = malloc(n + 1);
    memcpy(z, s, n);
    z[n] = '\0';
    char host[64];
    uint16_t port;
    const char *why = NULL;
    if (hostport_split(z, host, sizeof(host), &port, &why) == 0) {
        if (host[0] == '\0' || (z[0] != '[' && strchr(host, ':') != NULL))
            abort();
        struct sockaddr_storage ss;
        socklen_t len;
        if (hostport_sockaddr(host, port, &ss, &len) == 0 && (ss.ss_family == AF_INET) != (strchr(host, ':') == NULL))
            abort();
    } else if (why == NULL) {
        abort();
    }
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_base64(s, size);
    check_hex(s, size);
    check_hostport(s, size);
    return 0;
}
