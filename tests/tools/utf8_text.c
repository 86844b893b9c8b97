/*
 * utf8_text: common/utf8 as a filter, for comparing it with Java
 * (tests/compat/test_java_text.sh).
 *
 * Reads lines of hex-encoded bytes; for each writes one line: the bytes
 * lowercased (utf8_lower_to), the bytes repaired (utf8_repair_to), both in
 * hex, and 1 when every code point of the repaired text is assigned in
 * utf8proc's Unicode version (else 0), separated by spaces. An empty line
 * stands for empty input.
 *
 * usage: utf8_text < IN > OUT
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "utf8.h"

static void put_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)s[i]);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        size_t n = (size_t)got;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (n % 2 != 0) {
            fprintf(stderr, "utf8_text: odd hex line\n");
            return 2;
        }
        char *in = malloc(n / 2 + 1);
        char *out = malloc(UTF8_MAX_GROWTH * (n / 2) + 1);
        if (in == NULL || out == NULL)
            return 2;
        for (size_t i = 0; i < n / 2; i++) {
            unsigned char b;
            if (!isxdigit((unsigned char)line[2 * i]) || !isxdigit((unsigned char)line[2 * i + 1]) ||
                sscanf(line + 2 * i, "%2hhx", &b) != 1) {
                fprintf(stderr, "utf8_text: bad hex\n");
                return 2;
            }
            in[i] = (char)b;
        }
        put_hex(out, utf8_lower_to(out, in, n / 2));
        putchar(' ');
        size_t r = utf8_repair_to(out, in, n / 2);
        put_hex(out, r);
        int assigned = 1;
        for (size_t i = 0; i < r;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)out + i, (utf8proc_ssize_t)(r - i), &cp);
            if (k <= 0)
                return 2; /* repaired text is well-formed */
            if (utf8proc_category(cp) == UTF8PROC_CATEGORY_CN)
                assigned = 0;
            i += (size_t)k;
        }
        printf(" %d\n", assigned);
        free(in);
        free(out);
    }
    free(line);
    return 0;
}
