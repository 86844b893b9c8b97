/*
 * base64: see base64.h.
 */
#include "base64.h"

#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
}

/* Symbol value + 1 of each byte, 0 for a byte outside the alphabet. */
#define SYMBOLS_STANDARD                                                                                               \
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10,     \
    ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19,        \
    ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28,        \
    ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,        \
    ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46,        \
    ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55,        \
    ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64

static const uint8_t symbols_standard[256] = {SYMBOLS_STANDARD};
static const uint8_t symbols_any[256] = {SYMBOLS_STANDARD, ['-'] = 63, ['_'] = 64};

int base64_decode(const char *in, size_t len, enum base64_mode mode, uint8_t *out, size_t cap, size_t *out_len)
{
    int strict = mode == BASE64_STRICT;
    const uint8_t *symbols = strict ? symbols_standard : symbols_any;
    size_t n = len;
    if (strict) {
        if (n > 0 && in[n - 1] == '=') {
            if (n % 4 != 0)
                return -1;
            n--;
            if (in[n - 1] == '=')
                n--;
        }
        if (n % 4 == 1)
            return -1;
    } else {
        const char *pad = len > 0 ? memchr(in, '=', len) : NULL;
        if (pad != NULL)
            n = (size_t)(pad - in);
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = symbols[(uint8_t)in[i]] - 1;
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* RFC 4648 3.5: in canonical text the unused low bits of the last symbol are zero */
    if (strict && bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    *out_len = o;
    return 0;
}
