/*
 * ttl: see ttl.h.
 */
#include "ttl.h"

#include <stdio.h>

static int64_t unit_seconds(char c)
{
    switch (c) {
    case 's': return 1;
    case 'm': return 60;
    case 'h': return 3600;
    case 'd': return 86400;
    default: return 0;
    }
}

int ttl_parse(const char *s, int64_t *seconds, const char **why)
{
    const char *p = s;
    int64_t total = 0;
    if (*p == '\0') {
        *why = "empty; write a number and a unit, as in 90s, 30m, 24h or 365d";
        return -1;
    }
    while (*p != '\0') {
        if (*p < '0' || *p > '9') {
            *why = "expected a number (digits only: no sign, spaces or fractions), as in 90s, 30m, 24h or 365d";
            return -1;
        }
        int64_t n = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            n = n * 10 + (*p - '0');
            /* no group may pass the overall bound, so the sum below cannot overflow either */
            if (n > TTL_MAX_S) {
                *why = "longer than 100 years (36500d)";
                return -1;
            }
        }
        if (*p == '\0') {
            *why = "missing unit after the number: s, m, h or d, as in 90s, 30m, 24h or 365d";
            return -1;
        }
        int64_t unit = unit_seconds(*p);
        if (unit == 0) {
            *why = "unknown unit: use s, m, h or d, as in 90s, 30m, 24h or 365d";
            return -1;
        }
        if (n > (TTL_MAX_S - total) / unit) {
            *why = "longer than 100 years (36500d)";
            return -1;
        }
        total += n * unit;
        p++;
    }
    if (total == 0) {
        *why = "zero: a certificate must live at least 1s";
        return -1;
    }
    *seconds = total;
    return 0;
}

char *ttl_format(int64_t seconds, char *buf, size_t len)
{
    static const struct {
        char unit;
        int64_t s;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    size_t off = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (seconds <= 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    /* days only from 2 days up: "24h" and "36h" read better than "1d" and "1d12h" */
    for (size_t i = seconds < 2 * 86400 ? 1 : 0; i < sizeof(units) / sizeof(units[0]); i++) {
        int64_t n = seconds / units[i].s;
        seconds %= units[i].s;
        if (n == 0)
            continue;
        int w = snprintf(buf + off, len - off, "%lld%c", (long long)n, units[i].unit);
        if (w < 0 || (size_t)w >= len - off)
            break;
        off += (size_t)w;
    }
    return buf;
}
