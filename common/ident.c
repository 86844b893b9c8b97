/*
 * ident: see ident.h.
 */
#include "ident.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool is_lower_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}

/* Why byte i of s (1-based in the message, as people count) is not allowed. */
static int bad_byte(const char *s, size_t i, const char *allowed, char *err, size_t errlen)
{
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80)
        snprintf(err, errlen, "non-ASCII byte 0x%02x at byte %zu; only %s are allowed", c, i + 1, allowed);
    else if (is_upper(c))
        snprintf(err, errlen, "uppercase '%c' at byte %zu; only %s are allowed", c, i + 1, allowed);
    else if (c < 0x20 || c == 0x7f)
        snprintf(err, errlen, "control byte 0x%02x at byte %zu; only %s are allowed", c, i + 1, allowed);
    else
        snprintf(err, errlen, "'%c' at byte %zu is not allowed; only %s are allowed", c, i + 1, allowed);
    return -1;
}

/*
 * The shared label walk: dot-separated labels (dots only when dots is
 * true) of 1..63 bytes, no '-' at either end of a label, each byte passing
 * ok_byte or being a '-'.
 */
static int check_labels(const char *s, size_t max, bool dots, bool upper_ok, const char *allowed, char *err,
                        size_t errlen)
{
    size_t n = strlen(s);
    if (n == 0) {
        snprintf(err, errlen, "empty");
        return -1;
    }
    if (n > max) {
        snprintf(err, errlen, "%zu bytes long; at most %zu", n, max);
        return -1;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0' || (dots && c == '.')) {
            size_t len = i - start;
            if (len == 0) {
                snprintf(err, errlen, "empty label at byte %zu (a leading, trailing or doubled '.')", i + 1);
                return -1;
            }
            if (len > IDENT_LABEL_MAX) {
                snprintf(err, errlen, "label at byte %zu is %zu bytes long; at most %d", start + 1, len,
                         IDENT_LABEL_MAX);
                return -1;
            }
            if (s[start] == '-' || s[i - 1] == '-') {
                snprintf(err, errlen, "%s with '-' at byte %zu; labels start and end with a letter or digit",
                         s[start] == '-' ? "starts" : "ends", s[start] == '-' ? start + 1 : i);
                return -1;
            }
            start = i + 1;
            continue;
        }
        if (is_lower_alnum(c) || c == '-' || (upper_ok && is_upper(c)))
            continue;
        return bad_byte(s, i, allowed, err, errlen);
    }
    return 0;
}

int ident_check_trust_domain(const char *s, char *err, size_t errlen)
{
    return check_labels(s, IDENT_TRUST_DOMAIN_MAX, true, false, "lowercase letters, digits, '-' and '.'", err, errlen);
}

int ident_check_label(const char *s, char *err, size_t errlen)
{
    return check_labels(s, IDENT_LABEL_MAX, false, false, "lowercase letters, digits and '-' (a Kubernetes name)", err,
                        errlen);
}

int ident_check_dns_name(const char *s, char *err, size_t errlen)
{
    const char *rest = s;
    if (strncmp(s, "*.", 2) == 0)
        rest = s + 2;
    if (strlen(s) > IDENT_DNS_NAME_MAX) {
        snprintf(err, errlen, "%zu bytes long; at most %d", strlen(s), IDENT_DNS_NAME_MAX);
        return -1;
    }
    char why[160];
    if (check_labels(rest, IDENT_DNS_NAME_MAX, true, true, "letters, digits, '-', '.' and a leading \"*.\"", why,
                     sizeof(why)) != 0) {
        /* byte positions in the reason count from after the wildcard */
        snprintf(err, errlen, "%s%s", rest != s ? "after the leading \"*.\": " : "", why);
        return -1;
    }
    return 0;
}

int ident_spiffe_id(char *buf, size_t len, const char *trust_domain, const char *ns, const char *sa, char *err,
                    size_t errlen)
{
    char why[160];
    if (ident_check_trust_domain(trust_domain, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "trust domain \"%s\": %s", trust_domain, why);
        return -1;
    }
    if (ident_check_label(ns, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "namespace \"%s\": %s", ns, why);
        return -1;
    }
    if (ident_check_label(sa, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "service account \"%s\": %s", sa, why);
        return -1;
    }
    int w = snprintf(buf, len, "spiffe://%s/ns/%s/sa/%s", trust_domain, ns, sa);
    if (w < 0 || (size_t)w >= len) {
        snprintf(err, errlen, "SPIFFE id longer than %zu bytes", len - 1);
        return -1;
    }
    return 0;
}
