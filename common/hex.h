/*
 * hex: hexadecimal digits, bytes and numbers.
 *
 * Every decoder here says which letters it takes: HEX_ANY_CASE accepts
 * a-f and A-F, HEX_LOWER only a-f (W3C traceparent and Zipkin ids are
 * lowercase by specification). Decoding is on the proxy's per-request path
 * (trace context headers), so the functions are inline and look digits up
 * in a table instead of branching per character.
 */
#ifndef OUTRIDER_HEX_H
#define OUTRIDER_HEX_H

#include <stddef.h>
#include <stdint.h>

enum hex_case {
    HEX_ANY_CASE, /* 0-9, a-f, A-F */
    HEX_LOWER,    /* 0-9, a-f */
};

/* Digit value + 1 of each byte, 0 for a byte that is not a digit (tables in hex.c). */
extern const uint8_t hex_digit_any_plus1[256];
extern const uint8_t hex_digit_lower_plus1[256];

/* The value 0-15 of the hex digit c, or -1 when c is not one (in case cs). */
static inline int hex_digit(char c, enum hex_case cs)
{
    const uint8_t *t = cs == HEX_LOWER ? hex_digit_lower_plus1 : hex_digit_any_plus1;
    return (int)t[(uint8_t)c] - 1;
}

/*
 * Decode the len hex digits at s into len / 2 bytes at out (big-endian
 * pairs, "0aff" is {0x0a, 0xff}). Returns 0, or -1 when len is odd or a
 * character is not a digit in case cs; out may be partly written then.
 * len 0 decodes nothing and succeeds.
 */
static inline int hex_decode(const char *s, size_t len, enum hex_case cs, uint8_t *out)
{
    if (len % 2 != 0)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_digit(s[2 * i], cs), lo = hex_digit(s[2 * i + 1], cs);
        if ((hi | lo) < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/*
 * Parse the len (0..16) hex digits at s as an unsigned number into *out
 * ("" is 0; leading zeros are fine). Returns 0, or -1 for len > 16 or a
 * character that is not a digit in case cs; *out is untouched then.
 */
static inline int hex_parse_u64(const char *s, size_t len, enum hex_case cs, uint64_t *out)
{
    if (len > 16)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int d = hex_digit(s[i], cs);
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* Write the n bytes at in as 2 * n lowercase hex digits at out (no NUL). */
static inline void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

#endif
