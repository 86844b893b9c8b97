/*
 * hex: see hex.h. The digit tables the inline decoders read.
 */
#include "hex.h"

#define DIGITS_0_9                                                                                                     \
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10
#define DIGITS_LOWER ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16
#define DIGITS_UPPER ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16

const uint8_t hex_digit_any_plus1[256] = {DIGITS_0_9, DIGITS_LOWER, DIGITS_UPPER};
const uint8_t hex_digit_lower_plus1[256] = {DIGITS_0_9, DIGITS_LOWER};
