/*
 * pki: the mesh's certificates, built with OpenSSL 3.
 *
 * One root CA signs every workload certificate directly (no intermediate),
 * as Istio's self-signed CA does:
 *
 *   root   EC P-256, self-signed, subject O=<trust domain>, CA:TRUE
 *          (critical), keyCertSign + cRLSign, SKI and AKI
 *   leaf   any accepted key, empty subject, a critical subjectAltName
 *          (RFC 5280 4.2.1.6: required when the subject is empty) holding
 *          the SPIFFE id as its only URI plus optional DNS names and IP
 *          addresses, CA:FALSE, digitalSignature + keyEncipherment,
 *          serverAuth + clientAuth, AKI
 *
 * Both get a random 128-bit serial and a SHA-256 signature. A CA lives in a
 * directory: root-key.pem (PKCS#8, mode 0600), root-cert.pem, trust-domain.
 *
 * Every function that can fail writes the reason into err (errlen bytes,
 * PKI_ERR_MAX is enough), including OpenSSL's own reason when it has one,
 * and leaves OpenSSL's error queue empty.
 */
#ifndef OUTRIDER_CTL_PKI_H
#define OUTRIDER_CTL_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ident.h"

#define PKI_ROOT_CERT "root-cert.pem"
#define PKI_ROOT_KEY "root-key.pem"
#define PKI_TRUST_DOMAIN_FILE "trust-domain"
#define PKI_ERR_MAX 512
#define PKI_BACKDATE_S 60     /* notBefore lies this far back: the peers' clocks drift */
#define PKI_MAX_NAMES 64      /* DNS names plus IP addresses in one certificate */
#define PKI_PEM_MAX (1 << 20) /* bytes read from any PEM file */
#define PKI_SERIAL_HEX_MAX 41 /* 20 bytes (RFC 5280's longest serial) in hex and a NUL */
#define PKI_TIME_TEXT_MAX 32  /* "2025-06-01T12:00:00Z" and a NUL, with room */

/* A loaded CA. The fields are read-only once loaded, so threads may share one. */
typedef struct pki_ca {
    X509 *cert;
    EVP_PKEY *key;
    char trust_domain[IDENT_TRUST_DOMAIN_MAX + 1];
    int64_t not_before, not_after; /* the root's validity, unix seconds */
} pki_ca_t;

/* What a workload certificate certifies and for how long. */
typedef struct pki_leaf_spec {
    const char *spiffe_id;  /* the only URI SAN; NULL for none (the CA server's own TLS certificate) */
    const char *const *dns; /* n_dns names, each passing ident_check_dns_name */
    size_t n_dns;
    const char *const *ips; /* n_ips numeric IPv4 or IPv6 addresses */
    size_t n_ips;
    int64_t not_before, not_after; /* unix seconds, see pki_validity */
} pki_leaf_spec_t;

/* A new EC P-256 key; NULL on failure. Free with EVP_PKEY_free. */
EVP_PKEY *pki_key_generate(char *err, size_t errlen);

/*
 * A self-signed root for trust_domain (checked by the caller) valid from
 * not_before to not_after, signed by key. NULL on failure. Free with X509_free.
 */
X509 *pki_root_create(EVP_PKEY *key, const char *trust_domain, int64_t not_before, int64_t not_after, char *err,
                      size_t errlen);

/*
 * A certificate for pub (the key of the workload; the CA never needs its
 * private half) as spec says, signed by ca. Refuses a spec without any
 * name, with more than PKI_MAX_NAMES, or with an IP that is not numeric.
 * NULL on failure. Free with X509_free.
 */
X509 *pki_leaf_create(const pki_ca_t *ca, EVP_PKEY *pub, const pki_leaf_spec_t *spec, char *err, size_t errlen);

/*
 * The validity of a certificate issued by ca at now for ttl_s seconds:
 * *not_before = now - PKI_BACKDATE_S (but not before the CA's own), and
 * *not_after = now + ttl_s. A certificate must not outlive its CA: when
 * *not_after would pass the CA's notAfter, with clamp it is cut to the
 * CA's and 1 is returned with a message in err; without clamp it is
 * refused. Returns 0 or 1, or -1 (refused, also when the CA has expired or
 * is not valid yet at now) with the reason in err.
 */
int pki_validity(const pki_ca_t *ca, int64_t now, int64_t ttl_s, bool clamp, int64_t *not_before, int64_t *not_after,
                 char *err, size_t errlen);

/*
 * Load the CA in dir: trust-domain (checked), root-cert.pem (must be a CA
 * certificate) and root-key.pem (must be its key, unencrypted). Returns 0,
 * or -1 with the reason in err (ca is then zeroed).
 */
int pki_ca_load(const char *dir, pki_ca_t *ca, char *err, size_t errlen);

/* Free what pki_ca_load loaded; a zeroed or disposed ca is fine. */
void pki_ca_dispose(pki_ca_t *ca);

/*
 * PEM text of a certificate, or of a private key (unencrypted PKCS#8), in
 * a new NUL-terminated buffer; *len gets its length. NULL on failure.
 * Free with pki_pem_free, which wipes it first (it may be a key).
 */
char *pki_cert_pem(X509 *cert, size_t *len, char *err, size_t errlen);
char *pki_key_pem(EVP_PKEY *key, size_t *len, char *err, size_t errlen);
void pki_pem_free(char *pem, size_t len);

/*
 * Every certificate in a PEM file, in file order (at least one, else an
 * error). NULL on failure. Free with sk_X509_pop_free(certs, X509_free).
 */
STACK_OF(X509) * pki_read_certs(const char *path, char *err, size_t errlen);

/*
 * A PEM private key from memory (NULL when none, or encrypted). Free with
 * EVP_PKEY_free.
 */
EVP_PKEY *pki_key_from_pem(const char *pem, size_t len, char *err, size_t errlen);

/*
 * Check that leaf chains to root through untrusted (may be NULL) with
 * X509_verify_cert at time at (unix seconds; 0 = now). Returns 0, or -1
 * with OpenSSL's reason in err.
 */
int pki_verify(X509 *root, X509 *leaf, STACK_OF(X509) * untrusted, int64_t at, char *err, size_t errlen);

/*
 * A certificate signing request from PEM ("CERTIFICATE REQUEST") or DER,
 * whose signature verifies with its own public key and whose key is one we
 * certify: EC P-256 or P-384, or RSA of 2048 to 8192 bits. NULL on any
 * failure, with a reason a client can act on in err. Free with X509_REQ_free.
 */
X509_REQ *pki_csr_parse(const void *data, size_t len, char *err, size_t errlen);

/* Whether pub is a key type and size pki_csr_parse accepts; -1 with the reason when not. */
int pki_check_public_key(EVP_PKEY *pub, char *err, size_t errlen);

/* The subjectAltNames of a certificate, as printable text (other bytes escaped as \xNN). */
typedef struct pki_names {
    char **uris, **dns, **ips;
    size_t n_uris, n_dns, n_ips;
} pki_names_t;

/* Fill names from cert (all lists empty when there is no SAN). Dispose with pki_names_dispose. */
void pki_names_get(X509 *cert, pki_names_t *names);
void pki_names_dispose(pki_names_t *names);

/*
 * The certificate's SPIFFE id: its one URI SAN, which must start with
 * "spiffe://". Returns 0, or -1 with the reason in err (no URI SAN, more
 * than one, not spiffe://, longer than len).
 */
int pki_spiffe_id(X509 *cert, char *buf, size_t len, char *err, size_t errlen);

/* The serial in uppercase hex, as `openssl x509 -serial` prints it (PKI_SERIAL_HEX_MAX bytes). */
void pki_serial_hex(X509 *cert, char *buf, size_t len);

/* An ASN1_TIME as unix seconds; -1 when it cannot be read. */
int pki_time_get(const ASN1_TIME *t, int64_t *out);

/* Unix seconds as "2025-06-01T12:00:00Z" (PKI_TIME_TEXT_MAX bytes). */
void pki_time_format(int64_t t, char *buf, size_t len);

#endif
