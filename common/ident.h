/*
 * ident: the names in a workload identity, checked before they reach a
 * certificate. Outrider follows Istio: a workload is
 *
 *   spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>
 *
 * The trust domain is a DNS-like name (the CA's, "cluster.local" by
 * default); namespace and service account follow Kubernetes' DNS-1123
 * label rules, so every id is also a valid SPIFFE id (SPIFFE allows a
 * superset) and no name needs escaping in a URI or in a log line.
 *
 * Every check returns 0, or -1 with a reason in err (at most errlen bytes,
 * NUL-terminated, never quoting the whole value: the caller names the
 * option and the value, e.g. `--namespace "Shop": <reason>`).
 */
#ifndef OUTRIDER_COMMON_IDENT_H
#define OUTRIDER_COMMON_IDENT_H

#include <stddef.h>

#define IDENT_TRUST_DOMAIN_MAX 255 /* bytes */
#define IDENT_LABEL_MAX 63         /* bytes, Kubernetes' DNS-1123 label limit */
#define IDENT_DNS_NAME_MAX 253     /* bytes, RFC 1035 without the root dot */
/* "spiffe://" + trust domain + "/ns/" + label + "/sa/" + label + NUL */
#define IDENT_SPIFFE_ID_MAX (9 + IDENT_TRUST_DOMAIN_MAX + 4 + IDENT_LABEL_MAX + 4 + IDENT_LABEL_MAX + 1)

/*
 * A trust domain: lowercase ASCII letters, digits, '-' and '.', 1 to 255
 * bytes, in dot-separated labels of 1 to 63 bytes that neither start nor
 * end with '-'.
 */
int ident_check_trust_domain(const char *s, char *err, size_t errlen);

/*
 * A Kubernetes DNS-1123 label (namespace, service account): lowercase
 * ASCII letters, digits and '-', 1 to 63 bytes, starting and ending with a
 * letter or digit.
 */
int ident_check_label(const char *s, char *err, size_t errlen);

/*
 * A DNS name for a certificate's subjectAltName: letters (either case),
 * digits, '-' and '.', 1 to 253 bytes, labels of 1 to 63 bytes not
 * starting or ending with '-'; the first label may be "*" (a wildcard).
 */
int ident_check_dns_name(const char *s, char *err, size_t errlen);

/*
 * Write "spiffe://td/ns/ns/sa/sa" into buf (IDENT_SPIFFE_ID_MAX bytes is
 * always enough for checked names). Returns 0, or -1 when a name fails its
 * check above or buf is too small (err says which).
 */
int ident_spiffe_id(char *buf, size_t len, const char *trust_domain, const char *ns, const char *sa, char *err,
                    size_t errlen);

#endif
