/*
 * utf8: repair and Java-compatible lowercasing of UTF-8; see utf8.h.
 *
 * Final sigma: Java lowercases U+03A3 to U+03C2 when, within the word
 * around it, a cased character comes before it and none after it, its
 * words being those of java.text.BreakIterator's legacy word rules:
 * letters (with spacing marks) and digits run together; non-spacing and
 * enclosing marks stay with the letter or digit before them; format
 * characters are invisible; one dash, connector, soft hyphen, apostrophe,
 * quotation mark, period or U+2027 between two letters (or one apostrophe,
 * quotation mark, period, comma or U+066B between two digits) stays inside
 * the word; a danda may end a word of letters, which digits may go on
 * with; kanji and kana are words of their own. Its iterator works in
 * UTF-16 and treats a supplementary letter or digit oddly (W_SUPP below);
 * word_step follows what it does. word_step walks these rules left to
 * right, so a sigma needs only a forward look for a cased character after
 * it; strings without a capital sigma skip the walk entirely.
 *
 * Checked against Java 17 and 25 (tests/compat/test_java_text.sh): every
 * code point alone, and random strings mixing these classes with
 * ill-formed bytes, lowercase and repair to the same bytes, except for the
 * case pairs Unicode versions added (utf8proc 2.8 has Unicode 15.0).
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

/* ---- ASCII fast paths ---- */

/*
 * Index of the first byte in s[i..len) that is >= 0x80 or, unless
 * ascii_only, an ASCII capital; len when there is none.
 */
static size_t skip_plain(const unsigned char *s, size_t i, size_t len, int ascii_only)
{
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (utf8__flags8(x, ascii_only))
            break;
    }
    while (i < len && !utf8__flags8(s[i], ascii_only))
        i++;
    return i;
}

/* ---- decoding and encoding ---- */

#define REPLACEMENT 0xFFFD

/*
 * Decode the sequence at s[0..len) (len > 0). Returns its length in bytes
 * and sets *cp, or -1 for an ill-formed unit, sized as Java's decoder
 * sizes it (it becomes one U+FFFD).
 */
static size_t decode(const unsigned char *s, size_t len, int32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    int32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below */
        /* ED A0..BF (surrogates) is read whole and refused below, as Java does */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong below */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF above */
    } else {
        *cp = -1;
        return 1;
    }
    for (size_t k = 1; k < need; k++) {
        unsigned char b = k < len ? s[k] : 0;
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
            *cp = -1;
            return k;
        }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = (v >= 0xD800 && v <= 0xDFFF) ? -1 : v;
    return need;
}

/* Append cp's UTF-8 bytes (U+FFFD for -1) at out + o (out NULL: only count); returns the new length. */
static size_t put(char *out, size_t o, int32_t cp)
{
    if (cp < 0)
        cp = REPLACEMENT;
    if (cp < 0x80) {
        if (out)
            out[o] = (char)cp;
        return o + 1;
    }
    if (cp < 0x800) {
        if (out) {
            out[o] = (char)(0xC0 | (cp >> 6));
            out[o + 1] = (char)(0x80 | (cp & 0x3F));
        }
        return o + 2;
    }
    if (cp < 0x10000) {
        if (out) {
            out[o] = (char)(0xE0 | (cp >> 12));
            out[o + 1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o + 2] = (char)(0x80 | (cp & 0x3F));
        }
        return o + 3;
    }
    if (out) {
        out[o] = (char)(0xF0 | (cp >> 18));
        out[o + 1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[o + 2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[o + 3] = (char)(0x80 | (cp & 0x3F));
    }
    return o + 4;
}

/* ---- Java's words, for the final sigma ---- */

enum wclass {
    W_OTHER,  /* a word boundary on both sides */
    W_IGNORE, /* format characters: invisible */
    W_MARK,   /* non-spacing and enclosing marks: part of the character before */
    W_LETTER,
    W_DIGIT,
    W_MID_LETTER, /* inside a word between two letters */
    W_MID_DIGIT,  /* inside a word between two digits */
    W_MID_BOTH,
    W_DANDA, /* may end a word of letters, which a number may then continue */
    W_SUPP,  /* state only: just after a supplementary letter or digit */
};

static enum wclass word_class(int32_t c)
{
    switch (c) {
    case '\'':
    case '"':
    case '.': return W_MID_BOTH;
    case ',':
    case 0x066B: return W_MID_DIGIT;
    case 0x00AD:
    case 0x2027: return W_MID_LETTER;
    case 0x0964:
    case 0x0965: return W_DANDA;
    default: break;
    }
    /* kanji and kana form words of their own */
    if (c == 0x3005 || (c >= 0x3041 && c <= 0x30FE) || (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0xF900 && c <= 0xFA2D))
        return W_OTHER;
    utf8proc_category_t cat = utf8proc_category(c);
    if (c >= 0x10000) /* only letters and digits take part in words (see word_step) */
        return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO   ? W_LETTER
               : cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO ? W_DIGIT
                                                                            : W_OTHER;
    switch (cat) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MC: return W_LETTER;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME: return W_MARK;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return W_DIGIT;
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PC: return W_MID_LETTER;
    case UTF8PROC_CATEGORY_CF: return W_IGNORE;
    default: return W_OTHER;
    }
}

/*
 * Cased as Java's final-sigma rule counts it: a capital, small or title
 * letter, or one of the few others Java lists (modifier letters, the
 * ypogegrammeni, Roman numerals, circled Latin letters).
 */
static int is_cased(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT)
        return 1;
    return (c >= 0x02B0 && c <= 0x02B8) || c == 0x02C0 || c == 0x02C1 || (c >= 0x02E0 && c <= 0x02E4) || c == 0x0345 ||
           c == 0x037A || (c >= 0x1D2C && c <= 0x1D61) || (c >= 0x2160 && c <= 0x217F) || (c >= 0x24B6 && c <= 0x24E9);
}

/* Class of the first code point of s[0..len) that is not W_IGNORE; W_OTHER at the end. */
static enum wclass next_class(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        int32_t cp;
        i += decode(s + i, len - i, &cp);
        enum wclass k = word_class(cp);
        if (k != W_IGNORE)
            return k;
    }
    return W_OTHER;
}

typedef struct word {
    enum wclass prev; /* W_LETTER, W_DIGIT or W_DANDA inside a word, W_OTHER outside one */
    int cased;        /* the word so far has a cased character */
} word_t;

/*
 * Advance w over c, which is followed by rest[0..len) and is the first
 * code point of the text when first is 1. Returns 1 when c continues the
 * word w was in, 0 when c is outside it (w then describes what c starts).
 */
static int word_step(word_t *w, int32_t c, const unsigned char *rest, size_t len, int first)
{
    enum wclass k = word_class(c);
    enum wclass prev = w->prev;
    int in_word = prev == W_LETTER || prev == W_DIGIT;
    if (c >= 0x10000 && (k == W_LETTER || k == W_DIGIT)) {
        /* Java's iterator, working in UTF-16, ends a word after a supplementary letter or digit
           unless a mark follows; only at the start of the text does one begin a word */
        int joins = in_word || (prev == W_DANDA && k == W_DIGIT);
        w->cased = (joins && w->cased) || is_cased(c);
        w->prev = first ? k : W_SUPP;
        return joins;
    }
    switch (k) {
    case W_IGNORE: return 1;
    case W_MARK:
        if (in_word) {
            w->cased |= is_cased(c);
            return 1;
        }
        if (prev == W_SUPP) { /* begins the next word, as Java's iterator has it */
            w->cased = is_cased(c);
            w->prev = W_LETTER;
            return 0;
        }
        break;
    case W_LETTER:
    case W_DIGIT: {
        int joins = in_word || (prev == W_DANDA && k == W_DIGIT);
        w->cased = (joins && w->cased) || is_cased(c);
        w->prev = k;
        return joins;
    }
    case W_DANDA:
        if (prev == W_LETTER) {
            w->prev = W_DANDA;
            return 1;
        }
        break;
    case W_MID_LETTER:
    case W_MID_DIGIT:
    case W_MID_BOTH:
        if (prev == W_LETTER && k != W_MID_DIGIT && next_class(rest, len) == W_LETTER)
            return 1;
        if (prev == W_DIGIT && k != W_MID_LETTER && next_class(rest, len) == W_DIGIT)
            return 1;
        break;
    default: break;
    }
    w->prev = W_OTHER;
    w->cased = 0;
    return 0;
}

/* Whether a cased character follows a letter in its word, the word going on with s[0..len). */
static int cased_after(const unsigned char *s, size_t len)
{
    word_t w = {W_LETTER, 0};
    size_t i = 0;
    while (i < len) {
        int32_t cp;
        i += decode(s + i, len - i, &cp);
        if (!word_step(&w, cp, s + i, len - i, 0))
            return 0;
        if (w.cased)
            return 1;
    }
    return 0;
}

/* ---- public ---- */

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = skip_plain(u, 0, len, 1);
    while (i < len) {
        int32_t cp;
        size_t n = decode(u + i, len - i, &cp);
        if (cp < 0)
            return 0;
        i = skip_plain(u, i + n, len, 1);
    }
    return 1;
}

int utf8_is_lower(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = skip_plain(u, 0, len, 0);
    while (i < len) {
        if (u[i] < 0x80)
            return 0; /* a capital */
        int32_t cp;
        size_t n = decode(u + i, len - i, &cp);
        if (cp < 0)
            return 0;
        /* U+0130 and U+03A3 are changed by their special rules, never left as they are */
        if (cp == 0x130 || cp == 0x3A3 || utf8proc_tolower(cp) != cp)
            return 0;
        i = skip_plain(u, i + n, len, 0);
    }
    return 1;
}

/* utf8_lower_to when lower is set, else utf8_repair_to. */
static size_t convert(char *out, const char *s, size_t len, int lower)
{
    const unsigned char *u = (const unsigned char *)s;
    int sigma = lower && len >= 2 && memmem(s, len, "\xCE\xA3", 2) != NULL; /* only then are words followed */
    word_t w = {W_OTHER, 0};
    size_t i = 0, o = 0;
    while (i < len) {
        if (!sigma) {
            size_t j = skip_plain(u, i, len, !lower);
            if (out && j > i)
                memcpy(out + o, s + i, j - i);
            o += j - i;
            i = j;
            if (i == len)
                break;
        }
        int32_t cp;
        size_t n = decode(u + i, len - i, &cp);
        int32_t low = cp; /* as it is when repairing; -1 (ill-formed) is written as U+FFFD */
        if (lower && cp >= 'A' && cp <= 'Z') {
            low = cp + 32;
        } else if (lower && cp == 0x130) {
            o = put(out, o, 'i'); /* then COMBINING DOT ABOVE, as Java writes it */
            low = 0x307;
        } else if (lower && cp == 0x3A3) {
            int in_word = w.prev == W_LETTER || w.prev == W_DIGIT; /* a letter continues only these */
            int final = in_word && w.cased && !cased_after(u + i + n, len - i - n);
            low = final ? 0x3C2 : 0x3C3;
        } else if (lower && cp >= 0x80) {
            low = utf8proc_tolower(cp);
        }
        o = put(out, o, low);
        if (sigma)
            word_step(&w, cp, u + i + n, len - i - n, i == 0);
        i += n;
    }
    return o;
}

size_t utf8_lower_to(char *out, const char *s, size_t len)
{
    return convert(out, s, len, 1);
}

size_t utf8_repair_to(char *out, const char *s, size_t len)
{
    return convert(out, s, len, 0);
}

/* Copy what write produces from s into arena as *s (NUL-terminated). */
static int rewrite(arena_t *arena, str_t *s, size_t (*write)(char *, const char *, size_t))
{
    size_t n = write(NULL, s->ptr, s->len);
    if (n > UINT32_MAX)
        return -1;
    char *p = arena_alloc(arena, n + 1);
    if (p == NULL)
        return -1;
    write(p, s->ptr, s->len);
    p[n] = '\0';
    *s = (str_t){p, (uint32_t)n};
    return 0;
}

static size_t copy_to(char *out, const char *s, size_t len)
{
    if (out && len)
        memcpy(out, s, len);
    return len;
}

/* utf8_lower_to for ASCII input. */
static size_t ascii_lower_to(char *out, const char *s, size_t len)
{
    for (size_t i = 0; out && i < len; i++)
        out[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    return len;
}

int utf8_lower_slow(arena_t *arena, str_t *s, int copy)
{
    if (s->len == 0)
        return 0;
    const unsigned char *u = (const unsigned char *)s->ptr;
    size_t i = skip_plain(u, 0, s->len, 0);
    if (!copy && (i == s->len || (u[i] >= 0x80 && utf8_is_lower(s->ptr + i, s->len - i))))
        return 0;
    return rewrite(arena, s, skip_plain(u, i, s->len, 1) == s->len ? ascii_lower_to : utf8_lower_to);
}

int utf8_repair_slow(arena_t *arena, str_t *s, int copy)
{
    if (s->len == 0)
        return 0;
    if (utf8_valid(s->ptr, s->len))
        return copy ? rewrite(arena, s, copy_to) : 0;
    return rewrite(arena, s, utf8_repair_to);
}
