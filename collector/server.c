/*
 * server: libmicrohttpd listeners and routing; see server.h.
 *
 * Request life cycle (MHD calls on_request several times per request):
 *   URI log    allocate a request_t holding the query string as sent (MHD
 *              hands handlers only its decoded arguments)
 *   1st call   an ingest request's credentials (401 or 403 at once, see
 *              ingest_auth.h), then Content-Length against the limit
 *              (413 at once when it is too large: no body is read)
 *   body calls append to the body buffer; past the limit, drop the rest
 *              (within limits.lingerBytes and limits.lingerTime) and mark
 *   last call  route, run the handler, queue the response
 * on_completed records the latency and frees the request_t.
 *
 * Lingering close. MHD closes a connection as soon as an early answer
 * (our 413 at the first call, its own 431, 414 or 400) is written, with
 * the rest of the request unread, so the kernel resets it: the client's
 * send fails and a client that reads only after sending never sees the
 * answer. MHD 0.9.75 has no option against that, and refuses a response
 * queued in the middle of an upload. So on_connection, told by MHD that a
 * connection is being closed (its socket still open, the answer written
 * and the write side shut down), duplicates the socket unless the client
 * has closed already, and hands the duplicate to linger_set.h, whose
 * single thread drains and closes it within the limits; MHD's close of its
 * own descriptor then sends nothing. MHD threads never wait for a client.
 * Every close lingers, not only those with input waiting at that instant:
 * MHD answers its own errors without telling us, and the rest of such a
 * request may still be on its way (a client that is done closes at once
 * on the end of stream, which ends its lingering).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>

#include "collector.h"
#include "hostport.h"
#include "ingest_auth.h"
#include "ingest_tls.h"
#include "linger_set.h"
#include "kafka.h"
#include "log.h"
#include "compress.h"
#include "mesh_page.h"
#include "otlp.h"
#include "query.h"
#include "xalloc.h"

#define IDLE_TIMEOUT_S 60u /* MHD's timeout of a connection that sends nothing */

/* What a listener serves (its routes). */
enum {
    SERVE_ZIPKIN_INGEST = 1 << 0, /* POST /api/v2/spans */
    SERVE_OTLP = 1 << 1,          /* /v1/traces, /v1/metrics, /v1/logs: every path of the listener is ingest */
    SERVE_QUERY = 1 << 2,         /* GET /api/v2/..., /zipkin/..., /, /info, /mesh, /api/mesh, OPTIONS */
    SERVE_METRICS = 1 << 3,       /* /metrics, /prometheus */
    SERVE_HEALTH = 1 << 4,        /* /health */
};

typedef struct listener {
    collector_t *c;
    const char *name;  /* zipkin, otlp, query, metrics: its "listening" line */
    unsigned serves;   /* SERVE_* */
    ingest_tls_t *tls; /* HTTPS with these (the ingest listeners when ingest.tls.certFile is set); NULL: HTTP */
    struct MHD_Daemon *daemon;
    linger_set_t *linger; /* NULL: lingering off */
    mesh_page_t *mesh;    /* /mesh and /api/mesh, with SERVE_QUERY; NULL elsewhere */
} listener_t;

#define LISTENERS_MAX 4

struct server {
    listener_t l[LISTENERS_MAX];
    size_t n;
    linger_set_t *linger;
    mesh_page_t *mesh;
};

/* When the last TLS handshake failure was logged (monotonic ms), and how many were left out since. */
static _Atomic uint64_t tls_log_ms;
static _Atomic uint64_t tls_left_out;

typedef struct request {
    buf_t body;
    int too_large;
    uint64_t dropped;        /* body bytes dropped since it passed the limit */
    struct timespec over_at; /* when it passed the limit */
    struct timespec start;
    const char *route;
    int status;
    int started; /* on_request has seen the request */
    char *query; /* raw query string, NULL when none */
    char method[16];
} request_t;

const char *http_query(const http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int http_accepts_gzip(const http_request_t *req)
{
    return compress_accepts(http_header(req, "Accept-Encoding"), "gzip");
}

void http_respond_text(http_response_t *resp, int status, const char *fmt, ...)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    resp->body.len = 0;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&resp->body, fmt, ap);
    va_end(ap);
    buf_append_char(&resp->body, '\n');
}

buf_t *http_respond_json(http_response_t *resp, int status)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body.len = 0;
    return &resp->body;
}

static void redirect(http_response_t *resp, const char *to)
{
    resp->status = 302;
    resp->content_type = "text/plain; charset=utf-8";
    snprintf(resp->location, sizeof(resp->location), "%s", to);
    buf_printf(&resp->body, "see %s\n", to);
}

static const char index_html[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Outrider collector</title></head><body>"
    "<h1>Outrider collector</h1>"
    "<p>This is the Zipkin-compatible API of the Outrider collector. Point the Zipkin UI (zipkin-lens) "
    "or Grafana's Zipkin data source at this address. The UI's own files are not served here: serve them from "
    "a proxy in front of the collector, or run the UI elsewhere and set <code>mesh.zipkinUi</code> to its address "
    "so that the service graph links there.</p>"
    "<p id=\"search\" hidden>The trace search you followed, from the API: <a id=\"api\"></a></p>"
    /* zipkin-lens's discover-page query (lookback=millis&millis=W) as the API's (lookback=W) */
    "<script>(function(){var q=new URLSearchParams(location.search);if(!q.has('serviceName'))return;"
    "if(q.get('lookback')==='millis'){q.set('lookback',q.get('millis')||'');q.delete('millis');}"
    "var a=document.getElementById('api');a.href=a.textContent='/api/v2/traces?'+q.toString();"
    "document.getElementById('search').hidden=false;})();</script><ul>"
    "<li><a href=\"/mesh\">/mesh</a> (service graph; <a href=\"/api/mesh\">/api/mesh</a> as JSON)</li>"
    "<li><a href=\"/zipkin/api/v2/services\">/zipkin/api/v2/services</a></li>"
    "<li><a href=\"/zipkin/api/v2/traces\">/zipkin/api/v2/traces</a></li>"
    "<li><a href=\"/zipkin/api/v2/dependencies\">/zipkin/api/v2/dependencies</a></li>"
    "<li><a href=\"/zipkin/config.json\">/zipkin/config.json</a></li>"
    "<li><a href=\"/metrics\">/metrics</a> (Prometheus)</li>"
    "<li><a href=\"/health\">/health</a></li></ul></body></html>\n";

/* A path this listener does not serve, which another one does: 404 saying where it is. */
static void elsewhere(http_response_t *resp, const http_request_t *req, const char *setting)
{
    resp->route = "NOT_FOUND";
    http_respond_text(resp, 404, "no route for %s %s here: it is served on %s", req->method, req->path, setting);
}

static void route_zipkin(collector_t *c, unsigned serves, const http_request_t *req, http_response_t *resp)
{
    const char *p = req->path;
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    int post = strcmp(req->method, "POST") == 0;

    if (strcmp(req->method, "OPTIONS") == 0 && (serves & (SERVE_QUERY | SERVE_ZIPKIN_INGEST))) {
        /* CORS preflight: the Zipkin server allows any origin by default, and so do we */
        resp->route = "OPTIONS";
        resp->status = 204;
        resp->content_type = NULL;
        return;
    }
    if (strcmp(p, "/api/v2/spans") == 0 && post) {
        if (!(serves & SERVE_ZIPKIN_INGEST)) {
            elsewhere(resp, req, "zipkin.listen (Zipkin ingest)");
            return;
        }
        resp->route = "/api/v2/spans";
        ingest_zipkin(c, req, resp);
        return;
    }
    int metrics_path = strcmp(p, "/metrics") == 0 || strcmp(p, "/prometheus") == 0;
    unsigned need = strcmp(p, "/health") == 0 ? SERVE_HEALTH : metrics_path ? SERVE_METRICS : SERVE_QUERY;
    if (!(serves & need)) {
        int query_path = strncmp(p, "/api/", 5) == 0 || strncmp(p, "/zipkin", 7) == 0 || strcmp(p, "/") == 0 ||
                         strcmp(p, "/info") == 0 || strcmp(p, "/mesh") == 0 || strcmp(req->method, "OPTIONS") == 0;
        if (metrics_path)
            elsewhere(resp, req, c->cfg.metrics_listen != NULL ? "metrics.listen" : "query.listen");
        else if (query_path)
            elsewhere(resp, req, "query.listen");
        else {
            resp->route = "NOT_FOUND";
            http_respond_text(resp, 404, "no route for %s %s", req->method, p);
        }
        return;
    }
    const char *api = NULL;
    if (strncmp(p, "/api/v2/", 8) == 0)
        api = p + 7;
    else if (strncmp(p, "/zipkin/api/v2/", 15) == 0)
        api = p + 14;
    if (api != NULL) {
        if (!get) {
            resp->route = "/api/v2/**";
            http_respond_text(resp, 405, "method %s not allowed on %s", req->method, p);
            return;
        }
        if (c->query != NULL ? query_handle(c->query, req, api, resp) : zipkin_api_handle(c, req, api, resp))
            return;
    }
    if (!get) {
        resp->route = "NOT_FOUND";
        http_respond_text(resp, strcmp(p, "/api/v2/spans") == 0 ? 405 : 404, "no route for %s %s", req->method, p);
        return;
    }
    if (strcmp(p, "/metrics") == 0 || strcmp(p, "/prometheus") == 0) {
        resp->route = "/metrics";
        int om = req->accept != NULL && prom_accepts_openmetrics(req->accept);
        resp->status = 200;
        resp->content_type = prom_content_type(om);
        const char *to = http_header(req, "X-Prometheus-Scrape-Timeout-Seconds");
        resp->stream = collector_metrics_stream(c, om, to != NULL ? strtod(to, NULL) : 0);
        resp->gzip = http_accepts_gzip(req);
        return;
    }
    if (strcmp(p, "/health") == 0) {
        resp->route = "/health";
        /* Kafka being away shows in its entry; the collector itself still serves, so it stays UP and 200 */
        buf_t *b = http_respond_json(resp, 200);
        buf_append_str(b, "{\"status\":\"UP\",\"zipkin\":{\"status\":\"UP\",\"details\":"
                          "{\"InMemoryStorage{}\":{\"status\":\"UP\"}");
        kafka_health(c->kafka, b);
        buf_append_str(b, "}}}");
        return;
    }
    if (strcmp(p, "/info") == 0) {
        resp->route = "/info";
        buf_t *b = http_respond_json(resp, 200);
        buf_printf(b, "{\"zipkin\":{\"version\":\"%s\",\"commit\":\"outrider\"},\"outrider\":{\"version\":\"%s\"}}",
                   OUTRIDER_ZIPKIN_API_VERSION, OUTRIDER_VERSION);
        return;
    }
    if (strcmp(p, "/zipkin/config.json") == 0) {
        resp->route = "/zipkin/config.json";
        buf_t *b = http_respond_json(resp, 200);
        buf_printf(b,
                   "{\"environment\":\"\",\"queryLimit\":10,\"defaultLookback\":%llu,\"searchEnabled\":true,"
                   "\"logsUrl\":null,\"supportUrl\":null,\"archivePostUrl\":null,\"archiveUrl\":null,"
                   "\"dependency\":{\"enabled\":true,\"lowErrorRate\":0.5,\"highErrorRate\":0.75}}",
                   (unsigned long long)(c->cfg.default_lookback_ms < 900000 ? c->cfg.default_lookback_ms : 900000));
        return;
    }
    if (strcmp(p, "/") == 0 || strcmp(p, "/zipkin") == 0) {
        resp->route = "/";
        redirect(resp, "/zipkin/");
        return;
    }
    if (strncmp(p, "/zipkin/", 8) == 0 && api == NULL) {
        /* Zipkin serves its UI's index for every client-side route under /zipkin/ */
        resp->route = "/zipkin/**";
        resp->status = 200;
        resp->content_type = "text/html; charset=utf-8";
        buf_append(&resp->body, index_html, sizeof(index_html) - 1);
        return;
    }
    resp->route = "NOT_FOUND";
    http_respond_text(resp, 404, "no route for %s %s", req->method, p);
}

static void route_otlp(collector_t *c, const http_request_t *req, http_response_t *resp)
{
    static const struct {
        const char *path;
        void (*fn)(collector_t *, const http_request_t *, http_response_t *);
    } routes[] = {
        {"/v1/traces", ingest_otlp_traces}, {"/v1/metrics", ingest_otlp_metrics}, {"/v1/logs", ingest_otlp_logs}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(req->path, routes[i].path) != 0)
            continue;
        resp->route = routes[i].path;
        if (strcmp(req->method, "POST") != 0) {
            http_respond_text(resp, 405, "method %s not allowed on %s; OTLP/HTTP takes POST", req->method, req->path);
            return;
        }
        routes[i].fn(c, req, resp);
        return;
    }
    resp->route = "NOT_FOUND";
    http_respond_text(resp, 404, "no route for %s %s; OTLP/HTTP paths are /v1/traces, /v1/metrics, /v1/logs",
                      req->method, req->path);
}

/* A request refused before any handler ran (its size, its credentials) still counts as a dropped message of its
 * transport. */
static void count_refused(listener_t *l)
{
    collector_transport_stats_t *ts =
        &l->c->transport[(l->serves & SERVE_OTLP) ? TRANSPORT_OTLP_HTTP : TRANSPORT_ZIPKIN_HTTP];
    prom_counter_add(&ts->messages, 1);
    prom_counter_add(&ts->messages_dropped, 1);
}

/* A streamed body on its way out: the part being sent, compressed when asked. */
typedef struct stream_out {
    http_stream_t src;
    gzip_stream_t *gz; /* NULL: sent as written */
    buf_t part;        /* what src wrote last */
    buf_t out;         /* what goes on the wire, from off */
    size_t off;
    int last; /* src said no more follows */
} stream_out_t;

/* The level of a scrape's gzip: zlib's fastest, several times the speed of its default for a fifth more bytes. */
#define STREAM_GZIP_LEVEL 1

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_out_t *so = cls;
    while (so->off == so->out.len) {
        if (so->last)
            return MHD_CONTENT_READER_END_OF_STREAM;
        so->part.len = so->out.len = so->off = 0;
        int more = so->src.next(so->src.ctx, &so->part);
        if (more < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        so->last = more == 0;
        if (so->gz == NULL) {
            buf_t t = so->out; /* swap: the part is what goes out */
            so->out = so->part;
            so->part = t;
        } else if (gzip_stream_write(so->gz, so->part.data, so->part.len, so->last, &so->out) != 0) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = so->out.len - so->off < max ? so->out.len - so->off : max;
    memcpy(buf, so->out.data + so->off, n);
    so->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_out_t *so = cls;
    if (so->src.free != NULL)
        so->src.free(so->src.ctx);
    gzip_stream_free(so->gz);
    buf_dispose(&so->part);
    buf_dispose(&so->out);
    free(so);
}

/* The MHD response of a handler's answer: its buffer, or a stream (gzip-compressed when resp->gzip). */
static struct MHD_Response *make_response(http_response_t *resp)
{
    if (resp->stream.next == NULL) {
        resp->gzip = 0; /* only streamed bodies are compressed */
        size_t len;
        char *body = buf_steal(&resp->body, &len);
        struct MHD_Response *mr = MHD_create_response_from_buffer(
            len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (mr == NULL)
            free(body);
        return mr;
    }
    stream_out_t *so = xcalloc(1, sizeof(*so));
    so->src = resp->stream;
    resp->stream = (http_stream_t){0};
    if (resp->gzip && (so->gz = gzip_stream_new(STREAM_GZIP_LEVEL)) == NULL)
        resp->gzip = 0;
    struct MHD_Response *mr =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, so, stream_free);
    if (mr == NULL)
        stream_free(so);
    return mr;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, request_t *r, http_response_t *resp)
{
    struct MHD_Response *mr = make_response(resp);
    if (mr == NULL)
        return MHD_NO;
    if (resp->gzip) {
        MHD_add_response_header(mr, "Content-Encoding", "gzip");
        MHD_add_response_header(mr, "Vary", "Accept-Encoding");
    }
    if (resp->content_type != NULL)
        MHD_add_response_header(mr, "Content-Type", resp->content_type);
    if (resp->location[0])
        MHD_add_response_header(mr, "Location", resp->location);
    if (resp->retry_after[0])
        MHD_add_response_header(mr, "Retry-After", resp->retry_after);
    if (resp->partial[0])
        MHD_add_response_header(mr, "X-Outrider-Partial", resp->partial);
    for (const char *const *h = resp->headers; h != NULL && h[0] != NULL; h += 2)
        MHD_add_response_header(mr, h[0], h[1]);
    if (resp->cors) {
        MHD_add_response_header(mr, "Access-Control-Allow-Origin", "*");
        if (resp->status == 204) {
            MHD_add_response_header(mr, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            MHD_add_response_header(mr, "Access-Control-Allow-Headers", "Content-Type, Content-Encoding");
            MHD_add_response_header(mr, "Access-Control-Max-Age", "3600");
        }
    }
    r->status = resp->status;
    r->route = resp->route;
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)resp->status, mr);
    MHD_destroy_response(mr);
    return rc;
}

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* A body past limits.maxBodyBytes is dropped as lingering would drop it: false once past its bounds. */
static int drop_within_bounds(const collector_config_t *cfg, request_t *r, size_t n)
{
    r->dropped += n;
    return cfg->linger_time_ms > 0 && r->dropped <= cfg->linger_bytes &&
           seconds_since(&r->over_at) * 1000.0 < (double)cfg->linger_time_ms;
}

/* The client's address as text ("127.0.0.1:5000", "[::1]:5000"), "?" when unknown. */
static void peer_text(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, len, "?");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    char host[INET6_ADDRSTRLEN];
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ci->client_addr;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) != NULL)
            snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ci->client_addr;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) != NULL)
            snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    }
}

/* Whether a request needs credentials: ingest, on a collector that asks for them. */
static int needs_credentials(const listener_t *l, const char *method, const char *url)
{
    if (!ingest_auth_tokens_required(l->c->auth) && !ingest_auth_ids_limited(l->c->auth))
        return 0;
    if (l->serves & SERVE_OTLP) /* the whole listener is ingest */
        return 1;
    size_t plen = strcspn(url, "?");
    return (l->serves & SERVE_ZIPKIN_INGEST) && strcmp(method, "POST") == 0 && plen == 13 &&
           strncmp(url, "/api/v2/spans", 13) == 0;
}

/*
 * The answer to a request refused for its credentials, at its first call
 * (no body read, as for a 413): 401 with a Bearer challenge (RFC 6750
 * section 3: no error code when no credentials came, invalid_token for an
 * unknown one), 403 for a client certificate's id; OTLP gets its
 * google.rpc.Status body, in JSON when the request is JSON.
 */
static void refuse_credentials(listener_t *l, struct MHD_Connection *conn, enum ingest_auth_result why,
                               const char *client_id, http_response_t *resp)
{
    static const char *const challenge[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"" INGEST_AUTH_REALM "\"",
                                            NULL};
    static const char *const invalid[] = {
        MHD_HTTP_HEADER_WWW_AUTHENTICATE,
        "Bearer realm=\"" INGEST_AUTH_REALM "\", error=\"invalid_token\", error_description=\"unknown token\"", NULL};
    char msg[INGEST_CLIENT_ID_MAX + 128];
    int status = 401;
    switch (why) {
    case INGEST_AUTH_MISSING_TOKEN:
        snprintf(msg, sizeof(msg), "missing bearer token: send \"Authorization: Bearer TOKEN\"");
        break;
    case INGEST_AUTH_NOT_BEARER: snprintf(msg, sizeof(msg), "the Authorization header is not \"Bearer TOKEN\""); break;
    case INGEST_AUTH_INVALID_TOKEN: snprintf(msg, sizeof(msg), "unknown bearer token"); break;
    default:
        status = 403;
        snprintf(msg, sizeof(msg), "client certificate %s may not send here (ingest.tls.clientIds)",
                 client_id != NULL ? client_id : "without a SPIFFE id");
        break;
    }
    resp->route = status == 401 ? "UNAUTHORIZED" : "FORBIDDEN";
    resp->headers = status == 403 ? NULL : why == INGEST_AUTH_INVALID_TOKEN ? invalid : challenge;
    if (l->serves & SERVE_OTLP) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        int json = ct != NULL && strncasecmp(ct, "application/json", 16) == 0;
        resp->status = status;
        resp->content_type = json ? "application/json" : "application/x-protobuf";
        /* google.rpc.Code UNAUTHENTICATED 16, PERMISSION_DENIED 7 */
        otlp_encode_status(json, status == 401 ? 16 : 7, msg, &resp->body);
    } else {
        http_respond_text(resp, status, "%s", msg);
    }
    count_refused(l); /* a message refused whole, before its body */
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    listener_t *l = cls;
    collector_t *c = l->c;
    request_t *r = *con_cls;
    if (r == NULL)
        return MHD_NO; /* on_uri could not allocate it */
    if (!r->started) {
        r->started = 1;
        snprintf(r->method, sizeof(r->method), "%s", method);
        r->route = "NOT_FOUND";
        if (needs_credentials(l, method, url)) {
            char id[INGEST_CLIENT_ID_MAX + 1];
            const char *client_id = NULL;
            if (l->tls != NULL && ingest_auth_ids_limited(c->auth)) {
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
                if (ci != NULL && ci->tls_session != NULL && ingest_tls_peer_id(ci->tls_session, id, sizeof(id)))
                    client_id = id;
            }
            enum ingest_auth_result why = ingest_auth_check(
                c->auth, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION), client_id);
            if (why != INGEST_AUTH_OK) {
                char peer[80], what[96];
                peer_text(conn, peer, sizeof(peer));
                snprintf(what, sizeof(what), "%.15s %.64s", method, url);
                ingest_auth_log_refusal(c->auth, why, peer, what, client_id);
                http_response_t resp = {0};
                refuse_credentials(l, conn, why, client_id, &resp);
                enum MHD_Result rc = send_response(conn, r, &resp);
                buf_dispose(&resp.body);
                return rc;
            }
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == 0 && *end == '\0' && n > c->cfg.max_body_bytes) {
                http_response_t resp = {.route = "TOO_LARGE"};
                count_refused(l);
                http_respond_text(&resp, 413, "request body of %llu bytes exceeds limits.maxBodyBytes (%llu)", n,
                                  (unsigned long long)c->cfg.max_body_bytes);
                return send_response(conn, r, &resp);
            }
            /* one allocation for the whole body instead of regrowing per chunk */
            if (errno == 0 && *end == '\0' && n > 0)
                buf_reserve_exact(&r->body, (size_t)n);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large)
            return drop_within_bounds(&c->cfg, r, n) ? MHD_YES : MHD_NO;
        if (r->body.len + n <= c->cfg.max_body_bytes) {
            buf_append(&r->body, upload_data, n);
            return MHD_YES;
        }
        /* MHD refuses a response in the middle of an upload: drop the rest (bounded), answer at its end */
        r->too_large = 1;
        buf_dispose(&r->body);
        clock_gettime(CLOCK_MONOTONIC, &r->over_at);
        uint64_t s = (c->cfg.linger_timeout_ms + 999) / 1000;
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)(s < 3600 ? s : 3600));
        return drop_within_bounds(&c->cfg, r, n) ? MHD_YES : MHD_NO;
    }

    http_response_t resp = {.status = 500, .route = "NOT_FOUND"};
    if (r->too_large) {
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, IDLE_TIMEOUT_S);
        resp.route = "TOO_LARGE";
        count_refused(l);
        http_respond_text(&resp, 413, "request body exceeds limits.maxBodyBytes (%llu)",
                          (unsigned long long)c->cfg.max_body_bytes);
        return send_response(conn, r, &resp);
    }
    char path[1024];
    size_t plen = strcspn(url, "?");
    if (plen >= sizeof(path)) {
        http_respond_text(&resp, 414, "request path longer than %zu bytes", sizeof(path) - 1);
        return send_response(conn, r, &resp);
    }
    memcpy(path, url, plen);
    path[plen] = '\0';
    http_request_t req = {
        .conn = conn,
        .method = method,
        .path = path,
        .query = r->query,
        .body = r->body.data,
        .body_len = r->body.len,
        .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .content_encoding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING),
        .accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
    };
    if (l->serves & SERVE_OTLP) {
        route_otlp(c, &req, &resp);
    } else {
        resp.cors = 1;
        if (!((l->serves & SERVE_QUERY) && mesh_page_handle(l->mesh, &req, &resp)))
            route_zipkin(c, l->serves, &req, &resp);
    }
    enum MHD_Result rc = send_response(conn, r, &resp);
    buf_dispose(&resp.body);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    listener_t *l = cls;
    request_t *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    if (!r->started) { /* MHD answered it itself (431, 414...) before any handler saw it */
        free(r->query);
        free(r);
        return;
    }
    double secs = seconds_since(&r->start);
    char status[8];
    snprintf(status, sizeof(status), "%d", r->status ? r->status : 499);
    const char *labels[] = {r->method, r->route, status};
    prom_histogram_vec_observe(l->c->http_latency, labels, secs);
    buf_dispose(&r->body);
    free(r->query);
    free(r);
}

/* The first thing MHD tells of a request: its URI, query string included. The request_t starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    request_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    const char *q = uri != NULL ? strchr(uri, '?') : NULL;
    if (q != NULL && (r->query = strdup(q + 1)) == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* An HTTPS ingest connection closed before its handshake finished: counted, logged now and then. */
static void tls_failed(listener_t *l, struct MHD_Connection *conn)
{
    prom_counter_add(&l->c->tls_handshake_failures, 1);
    uint64_t now = mono_ms(), last = atomic_load(&tls_log_ms);
    if ((last != 0 && now - last < INGEST_AUTH_LOG_INTERVAL_MS) ||
        !atomic_compare_exchange_strong(&tls_log_ms, &last, now ? now : 1)) {
        atomic_fetch_add(&tls_left_out, 1);
        return;
    }
    char peer[80], since[96] = "";
    peer_text(conn, peer, sizeof(peer));
    uint64_t more = atomic_exchange(&tls_left_out, 0);
    if (more > 0)
        snprintf(since, sizeof(since), " (and %llu more since the last message)", (unsigned long long)more);
    log_warn("%s: TLS handshake with %s did not finish: plain HTTP to this HTTPS port, %s, or the client gave up%s",
             l->name, peer,
             ingest_tls_mutual(l->tls) ? "no client certificate or one not from ingest.tls.clientCaFile"
                                       : "no protocol version or cipher in common",
             since);
}

/* What an HTTPS ingest connection keeps (its MHD socket context). */
typedef struct tls_conn {
    int handshake_done;
    ingest_tls_cred_t *cred; /* the credentials its session was given; NULL: the daemon's */
} tls_conn_t;

/* GnuTLS read the client's Finished: the connection's handshake succeeded. */
static void handshake_finished(void *session)
{
    struct MHD_Connection *conn = ingest_tls_session_ptr(session);
    const union MHD_ConnectionInfo *ci =
        conn != NULL ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    if (ci != NULL && ci->socket_context != NULL)
        ((tls_conn_t *)ci->socket_context)->handshake_done = 1;
}

/*
 * A connection starts (before a TLS handshake): an HTTPS one gets the
 * current ingest credentials (those of the last good reload, with mutual
 * TLS requiring a client certificate) and is watched for the end of its
 * handshake. MHD is about to close one: an HTTPS one releases its
 * credentials, and if its handshake never finished it is counted and
 * logged (rate-limited); unless its client already closed, it lingers (see
 * the top).
 */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    listener_t *l = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            l->tls != NULL ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
        if (ci != NULL && ci->tls_session != NULL) {
            tls_conn_t *tc = xcalloc(1, sizeof(*tc));
            tc->cred = ingest_tls_attach(l->tls, ci->tls_session);
            *socket_context = tc;
            ingest_tls_watch_handshake(ci->tls_session, handshake_finished);
        }
        return;
    }
    if (toe != MHD_CONNECTION_NOTIFY_CLOSED)
        return;
    tls_conn_t *tc = *socket_context;
    if (tc != NULL) {
        int done = tc->handshake_done;
        /*
         * MHD deinitialized the session just before this notice (for a
         * connection it failed to add, just after, with no handshake, and
         * gnutls_deinit does not read credentials): they may go.
         */
        ingest_tls_cred_release(tc->cred);
        free(tc);
        *socket_context = NULL;
        if (!done) {
            tls_failed(l, conn);
            return; /* nothing was answered: no reason to linger */
        }
    }
    if (l->linger == NULL)
        return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
        int fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) {
            shutdown(fd, SHUT_WR);
            linger_set_add(l->linger, fd);
        }
    }
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    /* a failed TLS handshake: on_connection says so in plain words, counted and rate-limited */
    if (strstr(msg, "handshake message out of context") != NULL || strncmp(msg, "Error: received TLS alert", 25) == 0)
        log_debug("http: %s", msg);
    else
        log_warn("http: %s", msg);
}

static int listener_start(listener_t *l, const char *hostport, uint16_t *bound)
{
    const char *name = l->name;
    char host[256];
    uint16_t port;
    const char *why;
    if (hostport_split(hostport, host, sizeof(host), &port, &why) != 0) {
        log_error("%s listen address \"%s\" is not HOST:PORT: %s", name, hostport, why);
        return -1;
    }
    struct sockaddr_storage ss;
    if (hostport_sockaddr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port, &ss, NULL) != 0) {
        log_error("%s listen address \"%s\": host must be an IPv4 or IPv6 address", name, hostport);
        return -1;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[5];
    size_t k = 0;
    if (l->tls != NULL) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            log_error("%s: ingest.tls.certFile is set, but this libmicrohttpd was built without TLS", name);
            return -1;
        }
        flags |= MHD_USE_TLS;
        const ingest_tls_pem_t *pem = ingest_tls_startup_pem(l->tls);
        tls[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, pem->cert_pem};
        tls[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, pem->key_pem};
        tls[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)INGEST_TLS_PRIORITIES};
        if (pem->ca_pem != NULL)
            tls[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, pem->ca_pem};
    }
    tls[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    collector_t *c = l->c;
    errno = 0;
    l->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, l, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)c->cfg.threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)c->cfg.max_concurrent_requests, MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        l->linger != NULL || l->tls != NULL ? on_connection : NULL, l, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (l->daemon == NULL) {
        log_error("cannot listen on %s for %s: %s", hostport, name,
                  errno ? strerror(errno) : "bind failed (or TLS refused: see the http: lines above)");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound = info ? info->port : port;
    const char *scheme = l->tls != NULL ? "https" : "http";
    if (strchr(host, ':') != NULL)
        log_info("listening %s %s://[%s]:%u%s", name, scheme, host, *bound,
                 l->tls != NULL && ingest_tls_mutual(l->tls) ? " (client certificates required)" : "");
    else
        log_info("listening %s %s://%s:%u%s", name, scheme, host, *bound,
                 l->tls != NULL && ingest_tls_mutual(l->tls) ? " (client certificates required)" : "");
    return 0;
}

static int given(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Add a listener serving what serves says; returns it. */
static listener_t *add(server_t *s, collector_t *c, const char *name, unsigned serves, ingest_tls_t *tls)
{
    listener_t *l = &s->l[s->n++];
    *l = (listener_t){.c = c, .name = name, .serves = serves, .tls = tls, .linger = s->linger};
    if (serves & SERVE_QUERY)
        l->mesh = s->mesh;
    return l;
}

server_t *server_start(collector_t *c, uint16_t *zipkin_port, uint16_t *otlp_port)
{
    const collector_config_t *cfg = &c->cfg;
    server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        log_fatal("out of memory");
    if (cfg->linger_time_ms > 0) {
        linger_set_opts_t lo = {cfg->linger_time_ms, cfg->linger_timeout_ms, cfg->linger_bytes,
                                2 * (size_t)cfg->max_concurrent_requests};
        s->linger = linger_set_create(&lo);
        if (s->linger == NULL)
            log_fatal("cannot start the lingering-close thread: %s", strerror(errno));
    }
    s->mesh = mesh_page_create(c);
    c->mesh = s->mesh;
    /* query.listen and metrics.listen may name one address: one listener then serves both */
    const char *query = given(cfg->query_listen) ? cfg->query_listen : NULL;
    const char *metrics = given(cfg->metrics_listen) ? cfg->metrics_listen : NULL;
    uint16_t ignored, port = 0;
    char host[256];
    if (query != NULL && metrics != NULL && strcmp(query, metrics) == 0 &&
        hostport_split(query, host, sizeof(host), &port, NULL) == 0 && port != 0)
        metrics = NULL;
    /* the query and metrics listeners first, so that they are up once the zipkin and otlp lines are logged */
    listener_t *q = NULL, *m = NULL;
    if (query != NULL)
        q = add(s, c, "query", SERVE_QUERY | SERVE_HEALTH | (metrics == NULL ? SERVE_METRICS : 0), NULL);
    if (metrics != NULL)
        m = add(s, c, "metrics", SERVE_METRICS | SERVE_HEALTH, NULL);
    unsigned zipkin = SERVE_ZIPKIN_INGEST | SERVE_HEALTH;
    if (query == NULL)
        zipkin |= SERVE_QUERY | (metrics == NULL ? SERVE_METRICS : 0);
    listener_t *z = add(s, c, "zipkin", zipkin, c->tls);
    listener_t *o = add(s, c, "otlp", SERVE_OTLP, c->tls);
    if ((q != NULL && listener_start(q, query, &ignored) != 0) ||
        (m != NULL && listener_start(m, metrics, &ignored) != 0) ||
        listener_start(z, cfg->zipkin_listen, zipkin_port) != 0 ||
        listener_start(o, cfg->otlp_listen, otlp_port) != 0) {
        server_stop(s);
        return NULL;
    }
    return s;
}

void server_stop(server_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (s->l[i].daemon != NULL)
            MHD_stop_daemon(s->l[i].daemon);
    linger_set_destroy(s->linger);
    mesh_page_destroy(s->mesh);
    free(s);
}
