/*
 * base64: RFC 4648 encoding and decoding.
 *
 * Encoding always writes the standard alphabet with '=' padding. Decoding
 * comes in two strictnesses, because our two callers face different peers:
 * BASE64_STRICT for Istio's peer-metadata header (a value we compare and
 * re-emit, so only the canonical form is taken) and BASE64_LENIENT for the
 * bytes fields of OTLP/JSON (protobuf's JSON mapping accepts either
 * alphabet, with or without padding, and so must we).
 */
#ifndef OUTRIDER_BASE64_H
#define OUTRIDER_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters base64_encode writes for n bytes: 4 per started group of 3. */
static inline size_t base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Most bytes that len characters can decode to (room to give base64_decode). */
static inline size_t base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 2;
}

/* Write the n bytes at in as base64_encoded_len(n) characters at out (standard alphabet, padded, no NUL). */
void base64_encode(const uint8_t *in, size_t n, char *out);

enum base64_mode {
    /*
     * Standard alphabet (+/) only. Padding is optional, but when the text
     * ends in '=' its length must be a multiple of 4 with at most two '='.
     * Rejects a dangling single character and non-zero unused bits in the
     * last character (text that is not the canonical encoding of any bytes).
     */
    BASE64_STRICT,
    /*
     * Standard (+/) or URL-safe (-_) characters, even mixed. Decoding stops
     * at the first '=' and ignores whatever follows; nothing else is
     * checked (a dangling character or unused bits are dropped).
     */
    BASE64_LENIENT,
};

/*
 * Decode the len characters at in into out (room for cap bytes) following
 * mode. Returns 0 and sets *out_len, or -1 for text the mode rejects (any
 * character outside its alphabet included) or output that would pass cap;
 * out may be partly written then. Empty text decodes to 0 bytes.
 */
int base64_decode(const char *in, size_t len, enum base64_mode mode, uint8_t *out, size_t cap, size_t *out_len);

#endif
