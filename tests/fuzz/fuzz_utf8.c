/*
 * libFuzzer target: UTF-8 repair and lowercasing (common/utf8.c).
 *
 * Input: the bytes to repair and lowercase, copied into their own heap
 * buffer so ASan sees any read past it.
 * Invariants: no crash or UB; measuring and writing give the same length,
 * within UTF8_MAX_GROWTH per input byte; both results are valid UTF-8;
 * valid input repairs to itself and invalid input does not; the lowercased
 * form is lower-case (lowercasing it again changes nothing, so stored and
 * queried names always meet); the arena forms agree with the buffer forms.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    char *low = malloc(UTF8_MAX_GROWTH * size + 1);
    char *rep = malloc(UTF8_MAX_GROWTH * size + 1);
    char *again = malloc(UTF8_MAX_GROWTH * UTF8_MAX_GROWTH * size + 1);
    if (in == NULL || low == NULL || rep == NULL || again == NULL)
        abort();
    if (size)
        memcpy(in, data, size);

    size_t nl = utf8_lower_to(low, in, size);
    size_t nr = utf8_repair_to(rep, in, size);
    if (nl != utf8_lower_to(NULL, in, size) || nr != utf8_repair_to(NULL, in, size))
        abort();
    if (nl > UTF8_MAX_GROWTH * size || nr > UTF8_MAX_GROWTH * size)
        abort();
    if (!utf8_valid(low, nl) || !utf8_valid(rep, nr) || !utf8_is_lower(low, nl))
        abort();
    int valid = utf8_valid(in, size);
    if (valid != (nr == size && memcmp(rep, in, size) == 0))
        abort();
    if (utf8_is_lower(in, size) != (valid && nl == size && memcmp(low, in, size) == 0))
        abort();
    size_t n2 = utf8_lower_to(again, low, nl);
    if (n2 != nl || memcmp(again, low, nl) != 0)
        abort();

    arena_t a;
    arena_init(&a, 0);
    str_t s = {in, (uint32_t)size};
    if (utf8_lower(&a, &s, 0) != 0 || s.len != nl || memcmp(s.ptr, low, nl) != 0)
        abort();
    s = (str_t){in, (uint32_t)size};
    if (utf8_repair(&a, &s, 0) != 0 || s.len != nr || memcmp(s.ptr, rep, nr) != 0)
        abort();
    arena_dispose(&a);

    free(in);
    free(low);
    free(rep);
    free(again);
    return 0;
}
