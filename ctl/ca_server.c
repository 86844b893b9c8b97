/*
 * ca_server: see ca_server.h.
 */
#include "ca_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "hostport.h"
#include "log.h"
#include "ttl.h"
#include "xalloc.h"

/* TLS 1.2 and 1.3 only, GnuTLS priority syntax (libmicrohttpd's TLS is GnuTLS) */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct ca_server {
    const pki_ca_t *ca;
    int64_t max_ttl_s;
    struct MHD_Daemon *daemon;
    char *cert_pem, *key_pem;
    size_t cert_len, key_len;
    uint16_t port;
    pthread_mutex_t lock;
    tokens_t *tokens; /* under lock */
};

/* One authorised POST while its body arrives. */
typedef struct sign_req {
    size_t len;  /* bytes kept in body */
    size_t seen; /* bytes received, kept or not */
    bool too_big;
    char ns[IDENT_LABEL_MAX + 1], sa[IDENT_LABEL_MAX + 1];
    char body[CA_SIGN_BODY_MAX];
} sign_req_t;

int ca_server_sign(const pki_ca_t *ca, const char *spiffe_id, const void *body, size_t len, int64_t now, int64_t ttl_s,
                   ca_sign_result_t *out, char *err, size_t errlen)
{
    char why[PKI_ERR_MAX];
    int status = 500;
    X509 *cert = NULL;
    char *leaf_pem = NULL, *root_pem = NULL;
    size_t leaf_len = 0, root_len = 0;
    memset(out, 0, sizeof(*out));
    X509_REQ *req = pki_csr_parse(body, len, err, errlen);
    if (req == NULL)
        return 400;
    pki_leaf_spec_t spec = {.spiffe_id = spiffe_id};
    int v = pki_validity(ca, now, ttl_s, true, &spec.not_before, &spec.not_after, why, sizeof(why));
    if (v < 0) {
        snprintf(err, errlen, "cannot sign: %s", why);
        goto out;
    }
    if ((cert = pki_leaf_create(ca, X509_REQ_get0_pubkey(req), &spec, err, errlen)) == NULL ||
        (leaf_pem = pki_cert_pem(cert, &leaf_len, err, errlen)) == NULL ||
        (root_pem = pki_cert_pem(ca->cert, &root_len, err, errlen)) == NULL)
        goto out;
    out->chain = xmalloc(leaf_len + root_len + 1);
    memcpy(out->chain, leaf_pem, leaf_len);
    memcpy(out->chain + leaf_len, root_pem, root_len + 1);
    out->chain_len = leaf_len + root_len;
    pki_serial_hex(cert, out->serial, sizeof(out->serial));
    out->not_after = spec.not_after;
    out->clamped = v == 1;
    status = 200;
out:
    free(leaf_pem);
    free(root_pem);
    X509_free(cert);
    X509_REQ_free(req);
    return status;
}

static void peer_text(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
            inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
            port = ntohs(in->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
            inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(buf, len, strchr(addr, ':') != NULL ? "[%s]:%u" : "%s:%u", addr, port);
}

/* The request path for a log line: at most 128 bytes, anything but printable ASCII as \xNN. */
static void path_text(const char *url, char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; url[i] != '\0' && o + 5 < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (i == 128) {
            o += (size_t)snprintf(buf + o, len - o, "...");
            break;
        }
        if (c >= 0x21 && c < 0x7f && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
    }
    buf[o] = '\0';
}

__attribute__((format(printf, 5, 6))) static void access_line(struct MHD_Connection *conn, const char *method,
                                                              const char *url, unsigned status, const char *fmt, ...)
{
    char peer[INET6_ADDRSTRLEN + 16], path[160], m[16], what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    peer_text(conn, peer, sizeof(peer));
    path_text(url, path, sizeof(path));
    path_text(method, m, sizeof(m));
    log_info("access: %s %s %u %s: %s", m, path, status, peer, what);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type, const char *body,
                             size_t len, const char *header, const char *value)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (header != NULL)
        MHD_add_response_header(r, header, value);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* An error answer: the reason as text/plain, the same reason in the access line. */
static enum MHD_Result refuse(struct MHD_Connection *conn, const char *method, const char *url, unsigned status,
                              const char *header, const char *value, const char *reason)
{
    char body[1024];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    access_line(conn, method, url, status, "%s", reason);
    return reply(conn, status, "text/plain; charset=utf-8", body,
                 n < 0 ? 0 : ((size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1), header, value);
}

bool ca_server_bearer_token(const char *h, const char **token, size_t *len)
{
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return false;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0)
        return false;
    *token = h;
    *len = n;
    return true;
}

/* The first call of a request: everything that can be refused before its body is read. */
static enum MHD_Result on_headers(ca_server_t *s, struct MHD_Connection *conn, const char *url, const char *method,
                                  void **con_cls)
{
    if (strcmp(url, CA_SIGN_PATH) != 0)
        return refuse(conn, method, url, MHD_HTTP_NOT_FOUND, NULL, NULL, "not found: the CA serves POST /v1/sign");
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return refuse(conn, method, url, MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_HEADER_ALLOW, "POST",
                      "method not allowed: use POST");
    static const char challenge[] = "Bearer realm=\"outrider-ca\"";
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *token;
    size_t token_len;
    if (auth == NULL || !ca_server_bearer_token(auth, &token, &token_len))
        return refuse(conn, method, url, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge,
                      "missing \"Authorization: Bearer TOKEN\"");
    char ns[IDENT_LABEL_MAX + 1], sa[IDENT_LABEL_MAX + 1];
    pthread_mutex_lock(&s->lock);
    int found = tokens_lookup(s->tokens, token, token_len, ns, sa);
    pthread_mutex_unlock(&s->lock);
    if (found != 0)
        return refuse(conn, method, url, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge,
                      "unknown token");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno != 0 || end == cl || n > CA_SIGN_BODY_MAX) {
            char why[256];
            snprintf(why, sizeof(why), "body too large: at most %u bytes (for %s/%s)", CA_SIGN_BODY_MAX, ns, sa);
            return refuse(conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL, why);
        }
    }
    sign_req_t *r = xcalloc(1, sizeof(*r));
    memcpy(r->ns, ns, sizeof(r->ns));
    memcpy(r->sa, sa, sizeof(r->sa));
    *con_cls = r;
    return MHD_YES;
}

static enum MHD_Result on_body_done(ca_server_t *s, struct MHD_Connection *conn, const char *url, const char *method,
                                    sign_req_t *r)
{
    char why[PKI_ERR_MAX], id[IDENT_SPIFFE_ID_MAX], msg[PKI_ERR_MAX + IDENT_SPIFFE_ID_MAX + 16];
    char ttl_text[TTL_TEXT_MAX], max_text[TTL_TEXT_MAX];
    if (r->too_big) {
        snprintf(msg, sizeof(msg), "body too large: at most %u bytes (for %s/%s)", CA_SIGN_BODY_MAX, r->ns, r->sa);
        return refuse(conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL, msg);
    }
    int64_t ttl = s->max_ttl_s;
    bool capped = false;
    const char *asked = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "ttl");
    if (asked != NULL) {
        const char *bad;
        if (ttl_parse(asked, &ttl, &bad) != 0) {
            char shown[64];
            path_text(asked, shown, sizeof(shown));
            snprintf(msg, sizeof(msg), "ttl \"%s\": %s", shown, bad);
            return refuse(conn, method, url, MHD_HTTP_BAD_REQUEST, NULL, NULL, msg);
        }
        if (ttl > s->max_ttl_s) {
            ttl = s->max_ttl_s;
            capped = true;
        }
    }
    if (ident_spiffe_id(id, sizeof(id), s->ca->trust_domain, r->ns, r->sa, why, sizeof(why)) != 0)
        return refuse(conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, why);
    ca_sign_result_t res;
    int status = ca_server_sign(s->ca, id, r->body, r->len, (int64_t)time(NULL), ttl, &res, why, sizeof(why));
    if (status != 200) {
        snprintf(msg, sizeof(msg), "%s (for %s)", why, id);
        return refuse(conn, method, url, (unsigned)status, NULL, NULL, msg);
    }
    char until[PKI_TIME_TEXT_MAX];
    pki_time_format(res.not_after, until, sizeof(until));
    ttl_format(ttl, ttl_text, sizeof(ttl_text));
    ttl_format(s->max_ttl_s, max_text, sizeof(max_text));
    access_line(conn, method, url, 200, "signed %s serial %s until %s (ttl %s%s%s%s)", id, res.serial, until, ttl_text,
                capped ? ", cut to --max-ttl " : "", capped ? max_text : "",
                res.clamped ? ", cut to end with the CA" : "");
    enum MHD_Result ret = reply(conn, 200, "application/pem-certificate-chain", res.chain, res.chain_len, NULL, NULL);
    free(res.chain);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    ca_server_t *s = cls;
    sign_req_t *r = *con_cls;
    if (r == NULL)
        return on_headers(s, conn, url, method, con_cls);
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->seen += n;
        if (!r->too_big && n <= CA_SIGN_BODY_MAX - r->len) {
            memcpy(r->body + r->len, upload_data, n);
            r->len += n;
        } else {
            /* a chunked body without Content-Length: read on to answer 413, but not forever */
            r->too_big = true;
            if (r->seen > CA_SIGN_DISCARD_MAX) {
                access_line(conn, method, url, 413, "body over %u bytes, hanging up", CA_SIGN_DISCARD_MAX);
                return MHD_NO;
            }
        }
        return MHD_YES;
    }
    return on_body_done(s, conn, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    sign_req_t *r = *con_cls;
    if (r != NULL) {
        /* the body held a public key only, but wipe it like everything that came with a token */
        OPENSSL_cleanse(r, sizeof(*r));
        free(r);
    }
    *con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_warn("https: %s", msg);
}

ca_server_t *ca_server_start(const ca_server_config_t *cfg, tokens_t *tokens, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    const char *why;
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        snprintf(err, errlen, "this libmicrohttpd was built without TLS");
        tokens_destroy(tokens);
        return NULL;
    }
    if (hostport_split(cfg->listen, host, sizeof(host), &port, &why) != 0) {
        snprintf(err, errlen, "--listen \"%s\": %s", cfg->listen, why);
        tokens_destroy(tokens);
        return NULL;
    }
    struct sockaddr_storage ss;
    if (hostport_sockaddr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port, &ss, NULL) != 0) {
        snprintf(err, errlen, "--listen \"%s\": the host must be an IPv4 or IPv6 address, or localhost", cfg->listen);
        tokens_destroy(tokens);
        return NULL;
    }
    ca_server_t *s = xcalloc(1, sizeof(*s));
    s->ca = cfg->ca;
    s->max_ttl_s = cfg->max_ttl_s;
    s->tokens = tokens;
    pthread_mutex_init(&s->lock, NULL);
    s->cert_len = strlen(cfg->tls_cert_pem);
    s->key_len = strlen(cfg->tls_key_pem);
    s->cert_pem = xstrdup(cfg->tls_cert_pem);
    s->key_pem = xstrdup(cfg->tls_key_pem);

    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    /* the logger first: libmicrohttpd reports errors in the options after it through it */
    s->daemon = MHD_start_daemon(flags, port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_HTTPS_MEM_CERT, s->cert_pem,
                                 MHD_OPTION_HTTPS_MEM_KEY, s->key_pem, MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
                                 CA_SERVER_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT, CA_SERVER_IDLE_TIMEOUT_S,
                                 MHD_OPTION_END);
    if (s->daemon == NULL) {
        snprintf(err, errlen, "cannot serve HTTPS on %s: %s", cfg->listen,
                 errno != 0 ? strerror(errno) : "libmicrohttpd refused (see the https: lines above)");
        ca_server_stop(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL ? info->port : port;
    log_info(strchr(host, ':') != NULL ? "listening https://[%s]:%u" : "listening https://%s:%u", host,
             (unsigned)s->port);
    return s;
}

uint16_t ca_server_port(const ca_server_t *s)
{
    return s->port;
}

void ca_server_set_tokens(ca_server_t *s, tokens_t *tokens)
{
    pthread_mutex_lock(&s->lock);
    tokens_t *old = s->tokens;
    s->tokens = tokens;
    pthread_mutex_unlock(&s->lock);
    tokens_destroy(old);
}

void ca_server_stop(ca_server_t *s)
{
    if (s == NULL)
        return;
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    tokens_destroy(s->tokens);
    pthread_mutex_destroy(&s->lock);
    OPENSSL_cleanse(s->key_pem, s->key_len);
    free(s->key_pem);
    free(s->cert_pem);
    free(s);
}
