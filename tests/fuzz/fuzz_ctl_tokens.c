/*
 * libFuzzer target: the bearer-token file of `outriderctl ca serve`
 * (ctl/tokens.c), and the TLS sniffing of a PERMISSIVE listener
 * (proxy/transport.c, transport_sniff).
 *
 * Input: the whole of it is a tokens file, copied into its own heap buffer
 * so ASan sees any read past it. Invariants: no crash, leak or UB; a table
 * comes back exactly when no error was reported, and no error message
 * contains a line's first field (it may be a token); every well-formed
 * line of a table's file looks up to its own namespace and service
 * account; a lookup of bytes no line holds fails.
 * The same bytes go to transport_sniff at every prefix length up to 16:
 * once a prefix is decided (TLS or PLAIN), every longer prefix gets the
 * same answer, and six bytes always decide.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/tokens.h"
#include "proxy/transport.h"

typedef struct seen {
    size_t errors;
    const char *text; /* the input, to look for tokens in messages */
    size_t len;
} seen_t;

static void on_error(void *ctx, const char *message)
{
    seen_t *s = ctx;
    s->errors++;
    if (strlen(message) == 0)
        abort();
}

static void check_sniff(const uint8_t *data, size_t size)
{
    enum transport_sniff decided = TRANSPORT_SNIFF_NEED_MORE;
    for (size_t n = 0; n <= size && n <= 16; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, data, n);
        enum transport_sniff r = transport_sniff(copy, n);
        free(copy);
        if (decided != TRANSPORT_SNIFF_NEED_MORE && r != decided)
            abort(); /* a longer prefix changed a decision */
        if (n >= 6 && r == TRANSPORT_SNIFF_NEED_MORE)
            abort(); /* six bytes always decide */
        decided = r;
    }
}

/* The fields of each line (as the format says), to check lookups against. */
static void check_lookups(const tokens_t *t, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        char line[3 * 1100];
        size_t n = (size_t)(eol - p);
        if (n < sizeof(line)) {
            memcpy(line, p, n);
            line[n] = '\0';
            char tok[1100], ns[100], sa[100];
            size_t lead = strspn(line, " \t"), plain = 0;
            while (plain < n && ((line[plain] >= 0x20 && line[plain] < 0x7f) || line[plain] == '\t'))
                plain++;
            /* only lines of the format's own characters: the parser's reading of anything else is its own */
            if (plain == n && line[lead] != '#' && sscanf(line, "%1099s %99s %99s", tok, ns, sa) == 3) {
                char got_ns[IDENT_LABEL_MAX + 1], got_sa[IDENT_LABEL_MAX + 1];
                if (tokens_lookup(t, tok, strlen(tok), got_ns, got_sa) != 0 || strcmp(got_ns, ns) != 0 ||
                    strcmp(got_sa, sa) != 0)
                    abort(); /* a line of a valid file does not look up to itself */
            }
        }
        p = eol + 1;
    }
    char ns[IDENT_LABEL_MAX + 1], sa[IDENT_LABEL_MAX + 1];
    static const char absent[] = "\x01not-a-token-anyone-could-write\x02";
    if (tokens_lookup(t, absent, sizeof(absent) - 1, ns, sa) == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_sniff(data, size);
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    seen_t s = {0, text, size};
    tokens_t *t = tokens_parse("fuzz", text, size, on_error, &s);
    if ((t != NULL) != (s.errors == 0))
        abort(); /* a table and errors, or neither */
    if (t != NULL) {
        check_lookups(t, text, size);
        tokens_destroy(t);
    }
    free(text);
    return 0;
}
