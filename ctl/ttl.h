/*
 * ttl: certificate lifetimes as text ("90s", "30m", "24h", "365d", and
 * sums of those such as "1d12h"), the way every outriderctl option and the
 * /v1/sign endpoint's ?ttl= take them. Integers only: a TTL is a count of
 * seconds, so "1.5h" is written "90m".
 */
#ifndef OUTRIDER_CTL_TTL_H
#define OUTRIDER_CTL_TTL_H

#include <stddef.h>
#include <stdint.h>

/* Longest TTL accepted anywhere: 100 years of 365 days. A root past that is a typo, not a plan. */
#define TTL_MAX_S ((int64_t)100 * 365 * 86400)

/* Buffer size that fits any ttl_format result ("36500d23h59m59s" and a NUL). */
#define TTL_TEXT_MAX 32

/*
 * Parse s: one or more groups of decimal digits followed by a unit, s, m, h
 * or d (no sign, no spaces, no fractions), e.g. "87600h" or "1h30m". The
 * sum must be at least 1 second and at most TTL_MAX_S. Returns 0 with the
 * seconds in *seconds, or -1 with a static reason in *why (*seconds
 * untouched).
 */
int ttl_parse(const char *s, int64_t *seconds, const char **why);

/*
 * Write seconds (>= 0) into buf as ttl_parse reads it, largest units first
 * and zero parts left out, days only from 2 days up: 86400 is "24h",
 * 3 days and 1 hour "3d1h", 90 "1m30s", 0 "0s". Returns buf.
 */
char *ttl_format(int64_t seconds, char *buf, size_t len);

#endif
