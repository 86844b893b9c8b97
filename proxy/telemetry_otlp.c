/*
 * telemetry_otlp: label sets, metric values, request records and their
 * OTLP protobuf encoding (see telemetry_otlp.h). Metrics build protobuf-c
 * message structs in an arena and pack them at once; traces and logs, the
 * per-request hot paths of the exporter, are written as wire format
 * directly (see "direct protobuf wire writing").
 */
#include "telemetry_otlp.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "arena.h"
#include "log.h"
#include "pbwrite.h"
#include "xalloc.h"

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Common__V1__AnyValue av_t;
typedef Opentelemetry__Proto__Resource__V1__Resource resource_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope scope_t;

static const char *const label_names[TELE_NLABELS] = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
};

const char *const tele_flag_names[TELE_NFLAGS] = {"NR",  "UH", "UF", "UC", "UT", "URX", "DC",
                                                  "UPE", "DI", "FI", "UO", "RL", "RLSE"};

const double tele_duration_bounds_ms[TELE_DUR_BOUNDS] = {
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
const double tele_bytes_bounds[TELE_BYTES_BOUNDS] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

const char *tele_label_name(enum tele_label l)
{
    return (unsigned)l < TELE_NLABELS ? label_names[l] : "";
}

bool tele_label_used(enum tele_series_kind kind, enum tele_label l)
{
    return kind == TELE_SERIES_HTTP || (l != TL_RESPONSE_CODE && l != TL_GRPC_RESPONSE_STATUS);
}

int tele_label_find(enum tele_series_kind kind, const char *name)
{
    for (int k = 0; k < TELE_NLABELS; k++)
        if (strcmp(label_names[k], name) == 0)
            return tele_label_used(kind, (enum tele_label)k) ? k : -1;
    return -1;
}

/* ------------------------------------------------------------------ */
/* strings                                                             */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool all_ascii(const char *s, size_t n);

void tele_utf8_copy(char *dst, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    if (all_ascii(src, n)) { /* the usual case: nothing to repair */
        memcpy(dst, src, n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(s + i, n - i);
        if (l == 0) {
            dst[i++] = '?';
            continue;
        }
        memcpy(dst + i, s + i, l);
        i += l;
    }
}

static bool all_ascii(const char *s, size_t n)
{
    size_t i = 0;
    /* eight bytes at a time: any byte with its high bit set shows in the mask */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            return false;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* label sets                                                          */

static size_t cut_len(str_t s)
{
    return s.len > TELE_LABEL_MAX ? TELE_LABEL_MAX : s.len;
}

void tele_label_list_standard(tele_label_list_t *out, enum tele_series_kind kind, const str_t v[TELE_NLABELS])
{
    out->kind = (uint8_t)kind;
    out->metrics = kind == TELE_SERIES_HTTP ? TELE_HTTP_METRICS : TELE_TCP_METRICS;
    out->n = 0;
    for (int k = 0; k < TELE_NLABELS; k++) {
        if (!tele_label_used(kind, (enum tele_label)k))
            continue;
        out->name[out->n] = label_names[k];
        out->v[out->n++] = v[k];
    }
}

/* Is name one of label_names (so static, not copied)? */
static bool static_name(const char *name)
{
    for (int k = 0; k < TELE_NLABELS; k++)
        if (name == label_names[k])
            return true;
    return false;
}

uint64_t tele_labels_hash(const tele_label_list_t *l)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)l->kind ^ (uint64_t)l->metrics << 8;
    char tmp[TELE_LABEL_MAX];
    for (int i = 0; i < l->n; i++) {
        size_t n = cut_len(l->v[i]);
        const char *p = n ? l->v[i].ptr : "";
        if (!all_ascii(p, n)) {
            tele_utf8_copy(tmp, p, n);
            p = tmp;
        }
        h = XXH3_64bits_withSeed(l->name[i], strlen(l->name[i]), h);
        h = XXH3_64bits_withSeed(p, n, h);
    }
    return h;
}

tele_labels_t *tele_labels_new(const tele_label_list_t *x, uint64_t hash)
{
    size_t total = 0;
    for (int i = 0; i < x->n; i++)
        total += cut_len(x->v[i]) + 1 + (static_name(x->name[i]) ? 0 : strlen(x->name[i]) + 1);
    size_t size = offsetof(tele_labels_t, data) + total;
    tele_labels_t *l = malloc(size < sizeof(tele_labels_t) ? sizeof(tele_labels_t) : size);
    if (l == NULL)
        log_fatal("out of memory allocating a label set");
    l->hash = hash;
    l->kind = x->kind;
    l->metrics = x->metrics;
    l->n = x->n;
    l->size = size;
    char *p = l->data;
    for (int i = 0; i < x->n; i++) {
        if (static_name(x->name[i])) {
            l->name[i] = x->name[i];
        } else {
            size_t nl = strlen(x->name[i]);
            memcpy(p, x->name[i], nl + 1);
            l->name[i] = p;
            p += nl + 1;
        }
        size_t n = cut_len(x->v[i]);
        if (n)
            tele_utf8_copy(p, x->v[i].ptr, n);
        p[n] = '\0';
        l->v[i] = p;
        l->len[i] = (uint16_t)n;
        p += n + 1;
    }
    return l;
}

tele_labels_t *tele_labels_dup(const tele_labels_t *l)
{
    tele_labels_t *c = malloc(l->size < sizeof(tele_labels_t) ? sizeof(tele_labels_t) : l->size);
    if (c == NULL)
        log_fatal("out of memory copying a label set");
    memcpy(c, l, l->size);
    const char *lo = l->data, *hi = (const char *)l + l->size;
    for (int i = 0; i < l->n; i++) {
        c->v[i] = c->data + (l->v[i] - l->data);
        if (l->name[i] >= lo && l->name[i] < hi)
            c->name[i] = c->data + (l->name[i] - l->data);
    }
    return c;
}

bool tele_labels_equal(const tele_labels_t *l, const tele_label_list_t *x)
{
    if (l->kind != x->kind || l->metrics != x->metrics || l->n != x->n)
        return false;
    char tmp[TELE_LABEL_MAX];
    for (int i = 0; i < x->n; i++) {
        size_t n = cut_len(x->v[i]);
        if (l->len[i] != n || (l->name[i] != x->name[i] && strcmp(l->name[i], x->name[i]) != 0))
            return false;
        if (n == 0 || memcmp(l->v[i], x->v[i].ptr, n) == 0)
            continue;
        if (all_ascii(x->v[i].ptr, n))
            return false;
        tele_utf8_copy(tmp, x->v[i].ptr, n);
        if (memcmp(l->v[i], tmp, n) != 0)
            return false;
    }
    return true;
}

bool tele_labels_same(const tele_labels_t *a, const tele_labels_t *b)
{
    if (a->hash != b->hash || a->kind != b->kind || a->metrics != b->metrics || a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (a->len[i] != b->len[i] || memcmp(a->v[i], b->v[i], a->len[i]) != 0 ||
            (a->name[i] != b->name[i] && strcmp(a->name[i], b->name[i]) != 0))
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* values                                                              */

static size_t bucket_of(const double *bounds, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        if (v <= bounds[i])
            return i;
    return n;
}

void tele_values_observe(tele_values_t *v, uint64_t duration_ns, uint64_t request_bytes, uint64_t response_bytes)
{
    double ms = (double)duration_ns / 1e6;
    v->requests++;
    v->dur_buckets[bucket_of(tele_duration_bounds_ms, TELE_DUR_BOUNDS, ms)]++;
    v->dur_sum_ms += ms;
    v->req_buckets[bucket_of(tele_bytes_bounds, TELE_BYTES_BOUNDS, (double)request_bytes)]++;
    v->req_sum += request_bytes;
    v->resp_buckets[bucket_of(tele_bytes_bounds, TELE_BYTES_BOUNDS, (double)response_bytes)]++;
    v->resp_sum += response_bytes;
}

void tele_values_exemplar(tele_values_t *v, const uint8_t trace_id[16], const uint8_t span_id[8], uint64_t duration_ns,
                          uint64_t end_unix_ns)
{
    tele_exemplar_t *x = &v->dur_exemplar;
    if (end_unix_ns == 0 || end_unix_ns < x->time_unix_ns)
        return;
    x->time_unix_ns = end_unix_ns;
    x->value_ms = (double)duration_ns / 1e6;
    memcpy(x->trace_id, trace_id, sizeof(x->trace_id));
    memcpy(x->span_id, span_id, sizeof(x->span_id));
}

void tele_values_add(tele_values_t *v, const tele_values_t *d)
{
    v->requests += d->requests;
    for (int i = 0; i <= TELE_DUR_BOUNDS; i++)
        v->dur_buckets[i] += d->dur_buckets[i];
    v->dur_sum_ms += d->dur_sum_ms;
    if (d->dur_exemplar.time_unix_ns != 0 && d->dur_exemplar.time_unix_ns >= v->dur_exemplar.time_unix_ns)
        v->dur_exemplar = d->dur_exemplar;
    for (int i = 0; i <= TELE_BYTES_BOUNDS; i++) {
        v->req_buckets[i] += d->req_buckets[i];
        v->resp_buckets[i] += d->resp_buckets[i];
    }
    v->req_sum += d->req_sum;
    v->resp_sum += d->resp_sum;
    v->tcp_opened += d->tcp_opened;
    v->tcp_closed += d->tcp_closed;
    v->tcp_sent += d->tcp_sent;
    v->tcp_received += d->tcp_received;
}

/* ------------------------------------------------------------------ */
/* label values                                                        */

static const str_t S_UNKNOWN = STR_LIT("unknown");

static str_t field(const char *f)
{
    return (str_t){f, (uint32_t)strnlen(f, PEER_FIELD_MAX)};
}

static str_t either(str_t a, str_t b)
{
    return a.len ? a : b;
}

/* The workload labels of one side. p may be NULL (all unknown); app_hint/version_hint fill gaps. */
static void side_labels(const peer_info_t *p, str_t app_hint, str_t version_hint, str_t ns_hint, str_t *out)
{
    /* out: workload, namespace, principal, app, version, cluster, canonical service, canonical revision */
    str_t app = p ? either(field(p->app), app_hint) : app_hint;
    str_t version = p ? either(field(p->version), version_hint) : version_hint;
    str_t workload = p ? field(p->workload) : STR_NULL;
    out[0] = either(workload, S_UNKNOWN);
    out[1] = either(p ? either(field(p->namespace), ns_hint) : ns_hint, S_UNKNOWN);
    out[2] = S_UNKNOWN;
    out[3] = either(app, S_UNKNOWN);
    out[4] = either(version, S_UNKNOWN);
    out[5] = p ? either(field(p->cluster_id), S_UNKNOWN) : S_UNKNOWN;
    str_t canon = p ? either(field(p->canonical_service), either(app, workload)) : app;
    out[6] = either(canon, S_UNKNOWN);
    str_t rev = p ? field(p->canonical_revision) : STR_NULL;
    if (rev.len == 0)
        rev = version;
    if (rev.len == 0)
        rev = canon.len ? STR_LIT("latest") : S_UNKNOWN;
    out[7] = rev;
}

static void common_labels(enum tele_reporter reporter, const peer_info_t *peer, const peer_info_t *self, str_t dest_app,
                          str_t dest_version, str_t svc, str_t svc_name, str_t svc_ns, str_t peer_principal,
                          str_t self_principal, bool mtls, str_t out[TELE_NLABELS])
{
    if (reporter == TELE_SOURCE) {
        out[TL_REPORTER] = STR_LIT("source");
        side_labels(self, STR_NULL, STR_NULL, STR_NULL, &out[TL_SOURCE_WORKLOAD]);
        side_labels(peer, dest_app, dest_version, svc_ns, &out[TL_DESTINATION_WORKLOAD]);
        out[TL_CONNECTION_SECURITY_POLICY] = S_UNKNOWN;
    } else {
        out[TL_REPORTER] = STR_LIT("destination");
        side_labels(peer, STR_NULL, STR_NULL, STR_NULL, &out[TL_SOURCE_WORKLOAD]);
        side_labels(self, STR_NULL, STR_NULL, STR_NULL, &out[TL_DESTINATION_WORKLOAD]);
        out[TL_CONNECTION_SECURITY_POLICY] = STR_LIT("none");
    }
    /* side_labels wrote 8 values from TL_*_WORKLOAD; the destination block has 3 service labels in between */
    str_t d[8];
    memcpy(d, &out[TL_DESTINATION_WORKLOAD], sizeof(d));
    out[TL_DESTINATION_WORKLOAD] = d[0];
    out[TL_DESTINATION_WORKLOAD_NAMESPACE] = d[1];
    out[TL_DESTINATION_PRINCIPAL] = d[2];
    out[TL_DESTINATION_APP] = d[3];
    out[TL_DESTINATION_VERSION] = d[4];
    out[TL_DESTINATION_CLUSTER] = d[5];
    out[TL_DESTINATION_CANONICAL_SERVICE] = d[6];
    out[TL_DESTINATION_CANONICAL_REVISION] = d[7];
    out[TL_DESTINATION_SERVICE] = either(svc, S_UNKNOWN);
    out[TL_DESTINATION_SERVICE_NAME] = either(svc_name, S_UNKNOWN);
    out[TL_DESTINATION_SERVICE_NAMESPACE] = either(svc_ns, S_UNKNOWN);
    /* principals come from the mutual TLS handshake (each side's verified certificate), never from metadata */
    bool src = reporter == TELE_SOURCE;
    out[TL_SOURCE_PRINCIPAL] = either(src ? self_principal : peer_principal, S_UNKNOWN);
    out[TL_DESTINATION_PRINCIPAL] = either(src ? peer_principal : self_principal, S_UNKNOWN);
    if (!src && mtls)
        out[TL_CONNECTION_SECURITY_POLICY] = STR_LIT("mutual_tls");
}

size_t tele_flags_format(uint32_t bits, char out[TELE_FLAGS_MAX])
{
    size_t n = 0;
    for (int i = 0; i < TELE_NFLAGS; i++) {
        if (!(bits & (1u << i)))
            continue;
        if (n > 0)
            out[n++] = ',';
        size_t l = strlen(tele_flag_names[i]);
        memcpy(out + n, tele_flag_names[i], l);
        n += l;
    }
    if (n == 0)
        out[n++] = '-';
    out[n] = '\0';
    return n;
}

void tele_request_labels(const tele_request_t *r, const peer_info_t *self, char code_buf[12],
                         char flags_buf[TELE_FLAGS_MAX], str_t out[TELE_NLABELS])
{
    common_labels(r->reporter, r->peer, self, r->destination_app, r->destination_version, r->destination_service,
                  r->destination_service_name, r->destination_service_namespace, r->peer_principal, r->self_principal,
                  r->mtls, out);
    int code = r->response_code < 0 ? 0 : r->response_code;
    int n = snprintf(code_buf, 12, "%d", code);
    out[TL_REQUEST_PROTOCOL] = STR_LIT("http");
    out[TL_RESPONSE_CODE] = (str_t){code_buf, (uint32_t)n};
    out[TL_GRPC_RESPONSE_STATUS] = STR_NULL;
    size_t fl = tele_flags_format(r->response_flags, flags_buf);
    out[TL_RESPONSE_FLAGS] = (str_t){flags_buf, (uint32_t)fl};
}

void tele_tcp_labels(const tele_tcp_t *r, const peer_info_t *self, str_t out[TELE_NLABELS])
{
    common_labels(r->reporter, r->peer, self, r->destination_app, r->destination_version, r->destination_service,
                  r->destination_service_name, r->destination_service_namespace, r->peer_principal, r->self_principal,
                  r->mtls, out);
    out[TL_REQUEST_PROTOCOL] = STR_LIT("tcp");
    out[TL_RESPONSE_CODE] = STR_NULL;
    out[TL_GRPC_RESPONSE_STATUS] = STR_NULL;
    out[TL_RESPONSE_FLAGS] = STR_LIT("-");
}

/* ------------------------------------------------------------------ */
/* records                                                             */

static void put(tele_rec_t *rec, buf_t *strings, enum tele_rec_str i, str_t s, size_t max)
{
    size_t n = s.len > max ? max : s.len;
    rec->off[i] = (uint32_t)strings->len;
    rec->len[i] = (uint16_t)n;
    buf_reserve(strings, n + 1);
    if (n)
        tele_utf8_copy(strings->data + strings->len, s.ptr, n);
    strings->len += n;
    strings->data[strings->len++] = '\0';
}

/* Bytes kept of each record string (TS_FLAGS is made from the bits when read back). */
static const uint16_t ts_max[TS_COUNT] = {
    [TS_METHOD] = 32,
    [TS_PATH] = TELE_PATH_MAX,
    [TS_AUTHORITY] = TELE_STR_MAX,
    [TS_USER_AGENT] = TELE_STR_MAX,
    [TS_PROTOCOL] = 32,
    [TS_UPSTREAM_HOST] = TELE_STR_MAX,
    [TS_UPSTREAM_CLUSTER] = TELE_STR_MAX,
    [TS_DOWNSTREAM] = TELE_STR_MAX,
    [TS_ROUTE] = TELE_STR_MAX,
    [TS_SPAN_NAME] = TELE_PATH_MAX,
    [TS_REQUEST_ID] = TELE_STR_MAX,
    [TS_FLAGS] = 0,
    [TS_DEST_SERVICE] = TELE_STR_MAX,
    [TS_PEER_SERVICE] = TELE_STR_MAX,
    [TS_PEER_WORKLOAD] = PEER_FIELD_MAX,
    [TS_PEER_NAMESPACE] = PEER_FIELD_MAX,
    [TS_TRACESTATE] = TRACECTX_STATE_MAX,
    [TS_SOURCE_PRINCIPAL] = TELE_PRINCIPAL_MAX,
    [TS_DESTINATION_PRINCIPAL] = TELE_PRINCIPAL_MAX,
    [TS_TAGS] = 4096,
    [TS_DETAILS] = TELE_STR_MAX,
    [TS_AUTHZ] = TELE_STR_MAX,
    [TS_AUTHZ_AUDIT] = TELE_STR_MAX,
    [TS_DRY_RUN] = 16,
    [TS_DRY_RUN_POLICY] = TELE_STR_MAX,
};

size_t tele_raw_prepare(const tele_request_t *r, str_t custom_tags, tele_raw_t *h, str_t s[TS_COUNT])
{
    memset(h, 0, sizeof(*h));
    s[TS_METHOD] = r->method;
    s[TS_PATH] = r->path;
    s[TS_AUTHORITY] = r->authority;
    s[TS_USER_AGENT] = r->user_agent;
    s[TS_PROTOCOL] = r->protocol;
    s[TS_UPSTREAM_HOST] = r->upstream_host;
    s[TS_UPSTREAM_CLUSTER] = r->upstream_cluster;
    s[TS_DOWNSTREAM] = r->downstream_peer;
    s[TS_ROUTE] = r->route_name;
    s[TS_SPAN_NAME] = r->span_name;
    s[TS_FLAGS] = STR_NULL;
    s[TS_TAGS] = custom_tags;
    s[TS_DETAILS] = r->response_details;
    s[TS_AUTHZ] = r->authz_policy;
    s[TS_AUTHZ_AUDIT] = r->authz_audit;
    s[TS_DRY_RUN] = r->authz_dry_run;
    s[TS_DRY_RUN_POLICY] = r->authz_dry_run_policy;
    s[TS_DEST_SERVICE] = r->destination_service;
    s[TS_SOURCE_PRINCIPAL] = r->reporter == TELE_SOURCE ? r->self_principal : r->peer_principal;
    s[TS_DESTINATION_PRINCIPAL] = r->reporter == TELE_SOURCE ? r->peer_principal : r->self_principal;
    str_t peer_svc = STR_NULL;
    if (r->peer != NULL)
        peer_svc = either(field(r->peer->canonical_service), either(field(r->peer->app), field(r->peer->workload)));
    if (peer_svc.len == 0 && r->reporter == TELE_SOURCE)
        peer_svc = either(r->destination_service_name, r->destination_app);
    s[TS_PEER_SERVICE] = peer_svc;
    s[TS_PEER_WORKLOAD] = r->peer != NULL ? field(r->peer->workload) : STR_NULL;
    s[TS_PEER_NAMESPACE] = r->peer != NULL ? field(r->peer->namespace) : STR_NULL;
    if (s[TS_PEER_NAMESPACE].len == 0 && r->reporter == TELE_SOURCE)
        s[TS_PEER_NAMESPACE] = r->destination_service_namespace;
    const trace_ctx_t *t = r->trace;
    s[TS_REQUEST_ID] = STR_NULL;
    s[TS_TRACESTATE] = STR_NULL;
    if (t != NULL) {
        s[TS_REQUEST_ID] =
            (str_t){t->request_id, t->request_id_len > TRACECTX_REQUEST_ID_MAX ? 0 : (uint32_t)t->request_id_len};
        s[TS_TRACESTATE] =
            (str_t){t->tracestate, t->tracestate_len > TRACECTX_STATE_MAX ? 0 : (uint32_t)t->tracestate_len};
        memcpy(h->trace_id, t->trace_id, 16);
        memcpy(h->span_id, t->span_id, 8);
        memcpy(h->parent_id, t->parent_id, 8);
        static const uint8_t zero[16];
        h->has_trace = memcmp(t->trace_id, zero, 16) != 0 && memcmp(t->span_id, zero, 8) != 0;
        h->has_parent = t->has_parent && memcmp(t->parent_id, zero, 8) != 0;
    }
    size_t total = sizeof(*h);
    for (int i = 0; i < TS_COUNT; i++) {
        if (s[i].len > ts_max[i])
            s[i].len = ts_max[i];
        h->len[i] = (uint16_t)s[i].len;
        total += s[i].len;
    }
    h->start_ns = r->start_unix_ns;
    h->duration_ns = r->duration_ns;
    h->request_bytes = r->request_bytes;
    h->response_bytes = r->response_bytes;
    h->response_code = r->response_code < 0 ? 0 : r->response_code;
    h->attempts = r->attempts;
    h->response_flags = r->response_flags;
    h->reporter = (uint8_t)r->reporter;
    return total;
}

void tele_raw_write(void *dst, const tele_raw_t *hdr, const str_t s[TS_COUNT])
{
    char *p = dst;
    memcpy(p, hdr, sizeof(*hdr));
    p += sizeof(*hdr);
    for (int i = 0; i < TS_COUNT; i++) {
        if (hdr->len[i] == 0)
            continue;
        memcpy(p, s[i].ptr, hdr->len[i]);
        p += hdr->len[i];
    }
}

int tele_raw_read(const void *raw, size_t n, tele_rec_t *rec, buf_t *strings)
{
    tele_raw_t h;
    if (n < sizeof(h))
        return -1;
    memcpy(&h, raw, sizeof(h));
    size_t total = sizeof(h);
    for (int i = 0; i < TS_COUNT; i++) {
        if (h.len[i] > ts_max[i])
            return -1;
        total += h.len[i];
    }
    if (total != n)
        return -1;
    memset(rec, 0, sizeof(*rec));
    const char *p = (const char *)raw + sizeof(h);
    char flags[TELE_FLAGS_MAX];
    for (int i = 0; i < TS_COUNT; i++) {
        if (i == TS_FLAGS) {
            size_t fl = tele_flags_format(h.response_flags, flags);
            put(rec, strings, TS_FLAGS, (str_t){flags, (uint32_t)fl}, TELE_STR_MAX);
            continue;
        }
        put(rec, strings, (enum tele_rec_str)i, (str_t){p, h.len[i]}, h.len[i]);
        p += h.len[i];
    }
    rec->start_ns = h.start_ns;
    rec->duration_ns = h.duration_ns;
    rec->request_bytes = h.request_bytes;
    rec->response_bytes = h.response_bytes;
    rec->response_code = h.response_code;
    rec->attempts = h.attempts;
    memcpy(rec->trace_id, h.trace_id, 16);
    memcpy(rec->span_id, h.span_id, 8);
    memcpy(rec->parent_id, h.parent_id, 8);
    rec->reporter = h.reporter;
    rec->has_span = h.has_span;
    rec->has_log = h.has_log;
    rec->has_trace = h.has_trace;
    rec->has_parent = h.has_parent;
    return 0;
}

void tele_rec_fill(tele_rec_t *rec, buf_t *strings, const tele_request_t *r)
{
    tele_raw_t h;
    str_t s[TS_COUNT];
    size_t n = tele_raw_prepare(r, STR_NULL, &h, s);
    char *tmp = xmalloc(n);
    tele_raw_write(tmp, &h, s);
    if (tele_raw_read(tmp, n, rec, strings) != 0)
        log_fatal("telemetry: a raw record does not read back");
    free(tmp);
}

/* ------------------------------------------------------------------ */
/* protobuf building blocks                                            */

static void *alloc0(arena_t *a, size_t n)
{
    void *p = arena_calloc(a, 1, n);
    if (p == NULL)
        log_fatal("telemetry: out of memory encoding an export");
    return p;
}

static char *sdup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_strndup(a, s, n);
    if (p == NULL)
        log_fatal("telemetry: out of memory encoding an export");
    return p;
}

static kv_t *kv_str(arena_t *a, const char *key, const char *val)
{
    kv_t *kv = alloc0(a, sizeof(*kv));
    av_t *v = alloc0(a, sizeof(*v));
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)val;
    kv->key = (char *)key;
    kv->value = v;
    return kv;
}

/* A growing list of attributes (bounded by the caller's cap). */
typedef struct kvlist {
    kv_t **items;
    size_t n, cap;
} kvlist_t;

static void kvl_init(arena_t *a, kvlist_t *l, size_t cap)
{
    l->items = alloc0(a, cap * sizeof(kv_t *));
    l->n = 0;
    l->cap = cap;
}

static void kvl_add(kvlist_t *l, kv_t *kv)
{
    if (l->n < l->cap)
        l->items[l->n++] = kv;
}

static void kvl_str(arena_t *a, kvlist_t *l, const char *key, const char *val)
{
    if (val != NULL && val[0] != '\0')
        kvl_add(l, kv_str(a, key, val));
}

static resource_t *make_resource(arena_t *a, const tele_resource_t *res)
{
    resource_t *r = alloc0(a, sizeof(*r));
    opentelemetry__proto__resource__v1__resource__init(r);
    kvlist_t l;
    kvl_init(a, &l, 12);
    const peer_info_t *s = res->self;
    kvl_str(a, &l, "service.name", res->service_name);
    if (s != NULL) {
        kvl_str(a, &l, "service.namespace", sdup(a, s->namespace, strnlen(s->namespace, PEER_FIELD_MAX)));
        kvl_str(a, &l, "service.version", sdup(a, s->version, strnlen(s->version, PEER_FIELD_MAX)));
    }
    kvl_str(a, &l, "service.instance.id", res->instance_id);
    if (s != NULL) {
        kvl_str(a, &l, "k8s.pod.name", sdup(a, s->name, strnlen(s->name, PEER_FIELD_MAX)));
        kvl_str(a, &l, "k8s.namespace.name", sdup(a, s->namespace, strnlen(s->namespace, PEER_FIELD_MAX)));
        kvl_str(a, &l, "k8s.deployment.name", sdup(a, s->workload, strnlen(s->workload, PEER_FIELD_MAX)));
    }
    kvl_str(a, &l, "telemetry.sdk.name", "outrider");
    kvl_str(a, &l, "telemetry.sdk.language", "c");
    kvl_str(a, &l, "telemetry.sdk.version", OUTRIDER_VERSION);
    r->attributes = l.items;
    r->n_attributes = l.n;
    return r;
}

static scope_t *make_scope(arena_t *a)
{
    scope_t *s = alloc0(a, sizeof(*s));
    opentelemetry__proto__common__v1__instrumentation_scope__init(s);
    s->name = "outrider";
    s->version = OUTRIDER_VERSION;
    return s;
}

static void pack_into(const ProtobufCMessage *m, buf_t *out)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    buf_reserve(out, size + 1);
    size_t n = protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
    out->len += n;
    out->data[out->len] = '\0';
}

#define RSTR(rec, strings, i) ((strings) + (rec)->off[i])

/* ------------------------------------------------------------------ */
/* direct protobuf wire writing (pbwrite.h)                            */

/* Resource{attributes} as field `field`: the same attributes as make_resource. */
static void pb_resource(buf_t *b, uint32_t field, const tele_resource_t *res)
{
    size_t at = pb_open(b, field);
    const peer_info_t *s = res->self;
    KV_STR(b, 1, "service.name", res->service_name, SIZE_MAX);
    if (s != NULL) {
        KV_STR(b, 1, "service.namespace", s->namespace, PEER_FIELD_MAX);
        KV_STR(b, 1, "service.version", s->version, PEER_FIELD_MAX);
    }
    KV_STR(b, 1, "service.instance.id", res->instance_id, SIZE_MAX);
    if (s != NULL) {
        KV_STR(b, 1, "k8s.pod.name", s->name, PEER_FIELD_MAX);
        KV_STR(b, 1, "k8s.namespace.name", s->namespace, PEER_FIELD_MAX);
        KV_STR(b, 1, "k8s.deployment.name", s->workload, PEER_FIELD_MAX);
    }
    KV_STR(b, 1, "telemetry.sdk.name", "outrider", SIZE_MAX);
    KV_STR(b, 1, "telemetry.sdk.language", "c", SIZE_MAX);
    KV_STR(b, 1, "telemetry.sdk.version", OUTRIDER_VERSION, SIZE_MAX);
    pb_close(b, at);
}

/* InstrumentationScope{name, version} as field `field`, as make_scope. */
static void pb_scope(buf_t *b, uint32_t field)
{
    size_t at = pb_open(b, field);
    pb_bytes(b, 1, "outrider", 8);
    if (OUTRIDER_VERSION[0] != '\0')
        pb_bytes(b, 2, OUTRIDER_VERSION, strlen(OUTRIDER_VERSION));
    pb_close(b, at);
}

/* ------------------------------------------------------------------ */
/* traces                                                              */

void tele_host_port(str_t hp, str_t *host, uint32_t *port)
{
    *host = STR_NULL;
    *port = 0;
    if (hp.len == 0)
        return;
    const char *colon = NULL;
    for (size_t i = hp.len; i > 0; i--) {
        if (hp.ptr[i - 1] == ':') {
            colon = hp.ptr + i - 1;
            break;
        }
        if (hp.ptr[i - 1] < '0' || hp.ptr[i - 1] > '9')
            break;
    }
    /* a bare IPv6 address ("::1", as the proxy writes a client's address) has no port */
    if (colon != NULL && hp.ptr[0] != '[' && memchr(hp.ptr, ':', (size_t)(colon - hp.ptr)) != NULL)
        colon = NULL;
    size_t hl = colon ? (size_t)(colon - hp.ptr) : hp.len;
    const char *h = hp.ptr;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    *host = (str_t){h, (uint32_t)hl};
    if (colon != NULL) {
        uint32_t p = 0;
        for (const char *c = colon + 1; c < hp.ptr + hp.len && p <= 65535; c++)
            p = p * 10 + (uint32_t)(*c - '0');
        if (p > 0 && p <= 65535)
            *port = p;
    }
}

/* One Span as field 2 of ScopeSpans, fields in field number order (as protobuf-c packed them). */
static void pb_span(buf_t *b, const tele_resource_t *res, const tele_rec_t *r, const char *strings)
{
    size_t at = pb_open(b, 2);
    pb_bytes(b, 1, r->trace_id, 16);
    pb_bytes(b, 2, r->span_id, 8);
    if (r->len[TS_TRACESTATE]) {
        const char *ts = RSTR(r, strings, TS_TRACESTATE);
        size_t tl = strnlen(ts, r->len[TS_TRACESTATE]);
        if (tl)
            pb_bytes(b, 3, ts, tl);
    }
    if (r->has_parent)
        pb_bytes(b, 4, r->parent_id, 8);
    const char *method = RSTR(r, strings, TS_METHOD);
    size_t method_len = strnlen(method, r->len[TS_METHOD]);
    const char *name = method;
    size_t name_len = method_len;
    if (r->len[TS_SPAN_NAME]) {
        name = RSTR(r, strings, TS_SPAN_NAME);
        name_len = strnlen(name, r->len[TS_SPAN_NAME]);
    }
    if (name_len)
        pb_bytes(b, 5, name, name_len);
    bool client = r->reporter == TELE_SOURCE;
    pb_varint(b, 6,
              client ? OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
                     : OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
    if (r->start_ns != 0)
        pb_fixed(b, 7, r->start_ns, 8);
    uint64_t end = r->start_ns + r->duration_ns;
    if (end != 0)
        pb_fixed(b, 8, end, 8);

    /* attributes (field 9) */
    KV_STR(b, 9, "http.method", method, method_len);
    KV_STR(b, 9, "http.request.method", method, method_len);
    char url[7 + TELE_STR_MAX + TELE_PATH_MAX + 1];
    size_t al = r->len[TS_AUTHORITY] > TELE_STR_MAX ? TELE_STR_MAX : r->len[TS_AUTHORITY];
    size_t pl = r->len[TS_PATH] > TELE_PATH_MAX ? TELE_PATH_MAX : r->len[TS_PATH];
    memcpy(url, "http://", 7);
    memcpy(url + 7, RSTR(r, strings, TS_AUTHORITY), al);
    memcpy(url + 7 + al, RSTR(r, strings, TS_PATH), pl);
    url[7 + al + pl] = '\0';
    KV_STR(b, 9, "http.url", url, 7 + al + pl);
    KV_STR(b, 9, "url.full", url, 7 + al + pl);
    const char *path = RSTR(r, strings, TS_PATH), *q = memchr(path, '?', r->len[TS_PATH]);
    KV_STR(b, 9, "url.path", path, q != NULL ? (size_t)(q - path) : r->len[TS_PATH]);
    if (q != NULL && q + 1 < path + r->len[TS_PATH])
        KV_STR(b, 9, "url.query", q + 1, r->len[TS_PATH] - (size_t)(q + 1 - path));
    KV_STR(b, 9, "http.protocol", RSTR(r, strings, TS_PROTOCOL), r->len[TS_PROTOCOL]);
    KV_INT(b, 9, "http.status_code", r->response_code);
    KV_INT(b, 9, "http.response.status_code", r->response_code);
    KV_STR(b, 9, "user_agent", RSTR(r, strings, TS_USER_AGENT), r->len[TS_USER_AGENT]);
    KV_STR(b, 9, "user_agent.original", RSTR(r, strings, TS_USER_AGENT), r->len[TS_USER_AGENT]);
    KV_STR(b, 9, "guid:x-request-id", RSTR(r, strings, TS_REQUEST_ID), r->len[TS_REQUEST_ID]);
    KV_INT(b, 9, "request_size", (int64_t)r->request_bytes);
    KV_INT(b, 9, "response_size", (int64_t)r->response_bytes);
    KV_STR(b, 9, "response_flags", RSTR(r, strings, TS_FLAGS), r->len[TS_FLAGS]);
    KV_STR(b, 9, "component", "proxy", SIZE_MAX);
    KV_STR(b, 9, "upstream_cluster", RSTR(r, strings, TS_UPSTREAM_CLUSTER), r->len[TS_UPSTREAM_CLUSTER]);
    KV_STR(b, 9, "upstream_cluster.name", RSTR(r, strings, TS_UPSTREAM_CLUSTER), r->len[TS_UPSTREAM_CLUSTER]);
    KV_STR(b, 9, "upstream_host", RSTR(r, strings, TS_UPSTREAM_HOST), r->len[TS_UPSTREAM_HOST]);
    KV_STR(b, 9, "route_name", RSTR(r, strings, TS_ROUTE), r->len[TS_ROUTE]);
    KV_STR(b, 9, "source_principal", RSTR(r, strings, TS_SOURCE_PRINCIPAL), r->len[TS_SOURCE_PRINCIPAL]);
    KV_STR(b, 9, "destination_principal", RSTR(r, strings, TS_DESTINATION_PRINCIPAL), r->len[TS_DESTINATION_PRINCIPAL]);
    KV_STR(b, 9, "response_code_details", RSTR(r, strings, TS_DETAILS), r->len[TS_DETAILS]);
    KV_STR(b, 9, "authz.policy", RSTR(r, strings, TS_AUTHZ), r->len[TS_AUTHZ]);
    KV_STR(b, 9, "authz.audit_policy", RSTR(r, strings, TS_AUTHZ_AUDIT), r->len[TS_AUTHZ_AUDIT]);
    KV_STR(b, 9, "authz.dry_run_result", RSTR(r, strings, TS_DRY_RUN), r->len[TS_DRY_RUN]);
    KV_STR(b, 9, "authz.dry_run_policy", RSTR(r, strings, TS_DRY_RUN_POLICY), r->len[TS_DRY_RUN_POLICY]);
    if (r->attempts > 1)
        KV_INT(b, 9, "upstream_attempts", r->attempts);
    /* Telemetry customTags: name and value pairs, each NUL-terminated */
    const char *tg = RSTR(r, strings, TS_TAGS), *tend = tg + r->len[TS_TAGS];
    while (tg < tend) {
        size_t nl = strnlen(tg, (size_t)(tend - tg));
        if (tg + nl + 1 >= tend)
            break;
        const char *val = tg + nl + 1;
        size_t vl = strnlen(val, (size_t)(tend - val));
        if (nl > 0)
            pb_kv_bytes(b, 9, tg, nl, val, vl);
        tg = val + vl + 1;
    }
    /*
     * The collector's Zipkin mapping takes the remote service from
     * peer.service and the remote IP/port from network.peer.*; without
     * peer.service a CLIENT span would get "ip:port" (net.peer.name) as a
     * service name, so net.peer.name is only sent alongside it.
     */
    const char *peer_svc = RSTR(r, strings, TS_PEER_SERVICE);
    KV_STR(b, 9, "peer.service", peer_svc, r->len[TS_PEER_SERVICE]);
    str_t hp;
    uint32_t port;
    if (client) {
        tele_host_port((str_t){RSTR(r, strings, TS_UPSTREAM_HOST), r->len[TS_UPSTREAM_HOST]}, &hp, &port);
        if (peer_svc[0] != '\0')
            KV_STR(b, 9, "net.peer.name", RSTR(r, strings, TS_UPSTREAM_HOST), r->len[TS_UPSTREAM_HOST]);
    } else {
        tele_host_port((str_t){RSTR(r, strings, TS_DOWNSTREAM), r->len[TS_DOWNSTREAM]}, &hp, &port);
        KV_STR(b, 9, "peer.address", RSTR(r, strings, TS_DOWNSTREAM), r->len[TS_DOWNSTREAM]);
    }
    if (hp.len != 0)
        KV_STR(b, 9, "network.peer.address", hp.ptr, hp.len);
    if (port > 0)
        KV_INT(b, 9, "network.peer.port", port);
    const peer_info_t *self = res->self;
    if (self != NULL) {
        char node[8 + 2 * PEER_FIELD_MAX + 2];
        size_t nl = strnlen(self->name, PEER_FIELD_MAX), sl = strnlen(self->namespace, PEER_FIELD_MAX);
        memcpy(node, "sidecar~", 8);
        memcpy(node + 8, self->name, nl);
        node[8 + nl] = '.';
        memcpy(node + 9 + nl, self->namespace, sl);
        node[9 + nl + sl] = '\0';
        KV_STR(b, 9, "node_id", node, 9 + nl + sl);
        const char *canon = self->canonical_service[0] ? self->canonical_service : self->app;
        const char *rev = self->canonical_revision[0] ? self->canonical_revision
                          : self->version[0]          ? self->version
                                                      : "latest";
        KV_STR(b, 9, "istio.canonical_service", canon, PEER_FIELD_MAX);
        KV_STR(b, 9, "istio.canonical_revision", rev, PEER_FIELD_MAX);
        KV_STR(b, 9, "istio.namespace", self->namespace, PEER_FIELD_MAX);
        KV_STR(b, 9, "istio.cluster_id", self->cluster_id, PEER_FIELD_MAX);
    }

    /* Status (field 15): always present, code ERROR on 5xx and on no response */
    size_t st = pb_open(b, 15);
    if (r->response_code >= 500 || r->response_code == 0)
        pb_varint(b, 3, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
    pb_close(b, st);
    pb_fixed(b, 16, 1, 4); /* flags: sampled */
    pb_close(b, at);
}

int tele_otlp_traces(const tele_resource_t *res, const tele_rec_t *recs, size_t n, const char *strings, buf_t *out,
                     size_t *n_items)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += recs[i].has_span && recs[i].has_trace;
    if (n_items != NULL)
        *n_items = count;
    if (count == 0)
        return -1;
    size_t rs = pb_open(out, 1); /* ExportTraceServiceRequest.resource_spans */
    pb_resource(out, 1, res);
    size_t ss = pb_open(out, 2); /* ResourceSpans.scope_spans */
    pb_scope(out, 1);
    for (size_t i = 0; i < n; i++)
        if (recs[i].has_span && recs[i].has_trace)
            pb_span(out, res, &recs[i], strings);
    pb_close(out, ss);
    pb_close(out, rs);
    return 0;
}

/* ------------------------------------------------------------------ */
/* logs                                                                */

static void append_or_dash(buf_t *b, const char *s, size_t n)
{
    if (n == 0)
        buf_append_char(b, '-');
    else
        buf_append(b, s, n);
}

/* Write v in decimal, zero-padded to at least width digits, ending at end; returns the first digit. */
static char *dec_back(char *end, uint64_t v, int width)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
        width--;
    } while (v != 0 || width > 0);
    return p;
}

/* "[YYYY-MM-DDTHH:MM:SS.mmmZ] \"" of a Unix time in ns, as gmtime_r + strftime("%Y-%m-%dT%H:%M:%S") would give. */
static void append_stamp(buf_t *out, uint64_t ns)
{
    uint64_t sec = ns / 1000000000u;
    uint64_t days = sec / 86400u, rem = sec % 86400u;
    /* proleptic Gregorian civil date from days since 1970-01-01 (eras of 400 years) */
    uint64_t z = days + 719468u;
    uint64_t era = z / 146097u;
    uint64_t doe = z - era * 146097u;
    uint64_t yoe = (doe - doe / 1460u + doe / 36524u - doe / 146096u) / 365u;
    uint64_t doy = doe - (365u * yoe + yoe / 4u - yoe / 100u);
    uint64_t mp = (5u * doy + 2u) / 153u;
    uint64_t day = doy - (153u * mp + 2u) / 5u + 1u;
    uint64_t month = mp < 10u ? mp + 3u : mp - 9u;
    uint64_t year = yoe + era * 400u + (month <= 2u);
    char tmp[64];
    char *end = tmp + sizeof(tmp);
    char *p = end;
    *--p = '"';
    *--p = ' ';
    *--p = ']';
    *--p = 'Z';
    p = dec_back(p, ns / 1000000u % 1000u, 3);
    *--p = '.';
    p = dec_back(p, rem % 60u, 2);
    *--p = ':';
    p = dec_back(p, rem / 60u % 60u, 2);
    *--p = ':';
    p = dec_back(p, rem / 3600u, 2);
    *--p = 'T';
    p = dec_back(p, day, 2);
    *--p = '-';
    p = dec_back(p, month, 2);
    *--p = '-';
    p = dec_back(p, year, 1);
    *--p = '[';
    buf_append(out, p, (size_t)(end - p));
}

void tele_access_line(const tele_rec_t *r, const char *strings, buf_t *out)
{
    buf_reserve(out, 160 + r->len[TS_METHOD] + r->len[TS_PATH] + r->len[TS_PROTOCOL] + r->len[TS_FLAGS] +
                         r->len[TS_USER_AGENT] + r->len[TS_REQUEST_ID] + r->len[TS_AUTHORITY] +
                         r->len[TS_UPSTREAM_HOST] + r->len[TS_UPSTREAM_CLUSTER] + r->len[TS_DOWNSTREAM] +
                         r->len[TS_ROUTE]);
    append_stamp(out, r->start_ns);
    append_or_dash(out, RSTR(r, strings, TS_METHOD), r->len[TS_METHOD]);
    buf_append_char(out, ' ');
    append_or_dash(out, RSTR(r, strings, TS_PATH), r->len[TS_PATH]);
    buf_append_char(out, ' ');
    append_or_dash(out, RSTR(r, strings, TS_PROTOCOL), r->len[TS_PROTOCOL]);
    buf_append(out, "\" ", 2);
    buf_append_i64(out, r->response_code);
    buf_append_char(out, ' ');
    append_or_dash(out, RSTR(r, strings, TS_FLAGS), r->len[TS_FLAGS]);
    buf_append_char(out, ' ');
    buf_append_u64(out, r->request_bytes);
    buf_append_char(out, ' ');
    buf_append_u64(out, r->response_bytes);
    buf_append_char(out, ' ');
    buf_append_u64(out, r->duration_ns / 1000000u);
    buf_append(out, " - \"-\" \"", 8);
    append_or_dash(out, RSTR(r, strings, TS_USER_AGENT), r->len[TS_USER_AGENT]);
    buf_append(out, "\" \"", 3);
    append_or_dash(out, RSTR(r, strings, TS_REQUEST_ID), r->len[TS_REQUEST_ID]);
    buf_append(out, "\" \"", 3);
    append_or_dash(out, RSTR(r, strings, TS_AUTHORITY), r->len[TS_AUTHORITY]);
    buf_append(out, "\" \"", 3);
    append_or_dash(out, RSTR(r, strings, TS_UPSTREAM_HOST), r->len[TS_UPSTREAM_HOST]);
    buf_append(out, "\" ", 2);
    append_or_dash(out, RSTR(r, strings, TS_UPSTREAM_CLUSTER), r->len[TS_UPSTREAM_CLUSTER]);
    buf_append_char(out, ' ');
    append_or_dash(out, RSTR(r, strings, TS_DOWNSTREAM), r->len[TS_DOWNSTREAM]);
    buf_append_char(out, ' ');
    append_or_dash(out, RSTR(r, strings, TS_ROUTE), r->len[TS_ROUTE]);
}

/* One LogRecord as field 2 of ScopeLogs: the fields and attributes the protobuf-c version had. */
/* A workload or namespace attribute of the access log: "unknown" when not known, as Istio's labels. */
static void kv_side(buf_t *b, const char *key, size_t klen, const char *v, size_t n)
{
    n = v != NULL ? strnlen(v, n) : 0;
    if (n == 0)
        pb_kv_bytes(b, 6, key, klen, "unknown", 7);
    else
        pb_kv_bytes(b, 6, key, klen, v, n);
}

#define KV_SIDE(b, key, v, n) kv_side(b, key, sizeof(key) - 1, v, n)

static void pb_log(buf_t *b, const tele_rec_t *r, const char *strings, const peer_info_t *self)
{
    size_t at = pb_open(b, 2);
    uint64_t observed = r->start_ns + r->duration_ns;
    if (r->start_ns != 0)
        pb_fixed(b, 1, r->start_ns, 8);
    pb_varint(b, 2, OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO);
    pb_bytes(b, 3, "INFO", 4);
    size_t body = pb_open(b, 5);
    size_t str = pb_open(b, 1);
    size_t line = b->len;
    tele_access_line(r, strings, b);
    /* the protobuf-c version copied the line as a C string: it ended at a NUL */
    char *nul = memchr(b->data + line, '\0', b->len - line);
    if (nul != NULL) {
        b->len = (size_t)(nul - b->data);
        b->data[b->len] = '\0';
    }
    pb_close(b, str);
    pb_close(b, body);
    KV_STR(b, 6, "reporter", r->reporter == TELE_SOURCE ? "source" : "destination", SIZE_MAX);
    KV_STR(b, 6, "method", RSTR(r, strings, TS_METHOD), r->len[TS_METHOD]);
    KV_STR(b, 6, "path", RSTR(r, strings, TS_PATH), r->len[TS_PATH]);
    KV_STR(b, 6, "authority", RSTR(r, strings, TS_AUTHORITY), r->len[TS_AUTHORITY]);
    KV_STR(b, 6, "protocol", RSTR(r, strings, TS_PROTOCOL), r->len[TS_PROTOCOL]);
    KV_INT(b, 6, "response_code", r->response_code);
    KV_STR(b, 6, "response_flags", RSTR(r, strings, TS_FLAGS), r->len[TS_FLAGS]);
    KV_INT(b, 6, "duration", (int64_t)(r->duration_ns / 1000000u));
    KV_INT(b, 6, "bytes_received", (int64_t)r->request_bytes);
    KV_INT(b, 6, "bytes_sent", (int64_t)r->response_bytes);
    KV_STR(b, 6, "upstream_host", RSTR(r, strings, TS_UPSTREAM_HOST), r->len[TS_UPSTREAM_HOST]);
    KV_STR(b, 6, "upstream_cluster", RSTR(r, strings, TS_UPSTREAM_CLUSTER), r->len[TS_UPSTREAM_CLUSTER]);
    KV_STR(b, 6, "downstream_remote_address", RSTR(r, strings, TS_DOWNSTREAM), r->len[TS_DOWNSTREAM]);
    KV_STR(b, 6, "user_agent", RSTR(r, strings, TS_USER_AGENT), r->len[TS_USER_AGENT]);
    KV_STR(b, 6, "x_request_id", RSTR(r, strings, TS_REQUEST_ID), r->len[TS_REQUEST_ID]);
    KV_STR(b, 6, "route_name", RSTR(r, strings, TS_ROUTE), r->len[TS_ROUTE]);
    KV_STR(b, 6, "destination_service", RSTR(r, strings, TS_DEST_SERVICE), r->len[TS_DEST_SERVICE]);
    KV_STR(b, 6, "source_principal", RSTR(r, strings, TS_SOURCE_PRINCIPAL), r->len[TS_SOURCE_PRINCIPAL]);
    KV_STR(b, 6, "destination_principal", RSTR(r, strings, TS_DESTINATION_PRINCIPAL), r->len[TS_DESTINATION_PRINCIPAL]);
    KV_STR(b, 6, "response_code_details", RSTR(r, strings, TS_DETAILS), r->len[TS_DETAILS]);
    KV_STR(b, 6, "authz_policy", RSTR(r, strings, TS_AUTHZ), r->len[TS_AUTHZ]);
    KV_STR(b, 6, "authz_audit_policy", RSTR(r, strings, TS_AUTHZ_AUDIT), r->len[TS_AUTHZ_AUDIT]);
    KV_STR(b, 6, "authz_dry_run_result", RSTR(r, strings, TS_DRY_RUN), r->len[TS_DRY_RUN]);
    KV_STR(b, 6, "authz_dry_run_policy", RSTR(r, strings, TS_DRY_RUN_POLICY), r->len[TS_DRY_RUN_POLICY]);
    /* both sides, as istio_requests_total labels them: this proxy is the source on outbound */
    const char *pw = RSTR(r, strings, TS_PEER_WORKLOAD), *pn = RSTR(r, strings, TS_PEER_NAMESPACE);
    size_t pwl = r->len[TS_PEER_WORKLOAD], pnl = r->len[TS_PEER_NAMESPACE];
    const char *sw = self ? self->workload : NULL, *sn = self ? self->namespace : NULL;
    int out = r->reporter == TELE_SOURCE;
    KV_SIDE(b, "source_workload", out ? sw : pw, out ? PEER_FIELD_MAX : pwl);
    KV_SIDE(b, "source_namespace", out ? sn : pn, out ? PEER_FIELD_MAX : pnl);
    KV_SIDE(b, "destination_workload", out ? pw : sw, out ? pwl : PEER_FIELD_MAX);
    KV_SIDE(b, "destination_namespace", out ? pn : sn, out ? pnl : PEER_FIELD_MAX);
    if (r->has_trace) {
        if (r->has_span)
            pb_fixed(b, 8, 1, 4);
        pb_bytes(b, 9, r->trace_id, 16);
        pb_bytes(b, 10, r->span_id, 8);
    }
    if (observed != 0)
        pb_fixed(b, 11, observed, 8);
    pb_close(b, at);
}

int tele_otlp_logs(const tele_resource_t *res, const tele_rec_t *recs, size_t n, const char *strings, buf_t *out,
                   size_t *n_items)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += recs[i].has_log;
    if (n_items != NULL)
        *n_items = count;
    if (count == 0)
        return -1;
    size_t rl = pb_open(out, 1); /* ExportLogsServiceRequest.resource_logs */
    pb_resource(out, 1, res);
    size_t sl = pb_open(out, 2); /* ResourceLogs.scope_logs */
    pb_scope(out, 1);
    for (size_t i = 0; i < n; i++)
        if (recs[i].has_log)
            pb_log(out, &recs[i], strings, res->self);
    pb_close(out, sl);
    pb_close(out, rl);
    return 0;
}

/* ------------------------------------------------------------------ */
/* metrics                                                             */

typedef Opentelemetry__Proto__Metrics__V1__Metric pmetric_t;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint npoint_t;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint hpoint_t;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar pexemplar_t;

enum { M_REQUESTS, M_DURATION, M_REQ_BYTES, M_RESP_BYTES, M_TCP_OPENED, M_TCP_CLOSED, M_TCP_SENT, M_TCP_RECEIVED, M_N };

static const struct {
    const char *name, *unit, *help;
    bool histogram;
} metric_defs[M_N] = {
    {"istio_requests_total", "1", "Requests handled, by reporter, workload, service and response code.", false},
    {"istio_request_duration_milliseconds", "ms", "Request duration, first request byte to last response byte.", true},
    {"istio_request_bytes", "By", "Request body sizes.", true},
    {"istio_response_bytes", "By", "Response body sizes.", true},
    {"istio_tcp_connections_opened_total", "1", "Tunnelled connections opened.", false},
    {"istio_tcp_connections_closed_total", "1", "Tunnelled connections closed.", false},
    {"istio_tcp_sent_bytes_total", "By", "Bytes sent to the client on tunnelled connections.", false},
    {"istio_tcp_received_bytes_total", "By", "Bytes received from the client on tunnelled connections.", false},
};

static uint64_t counter_value(const tele_values_t *v, int m)
{
    switch (m) {
    case M_REQUESTS: return v->requests;
    case M_TCP_OPENED: return v->tcp_opened;
    case M_TCP_CLOSED: return v->tcp_closed;
    case M_TCP_SENT: return v->tcp_sent;
    case M_TCP_RECEIVED: return v->tcp_received;
    default: return 0;
    }
}

static hpoint_t *make_hist_point(arena_t *a, const tele_values_t *v, int m)
{
    hpoint_t *p = alloc0(a, sizeof(*p));
    opentelemetry__proto__metrics__v1__histogram_data_point__init(p);
    const uint64_t *buckets;
    const double *bounds;
    size_t nb;
    if (m == M_DURATION) {
        buckets = v->dur_buckets;
        bounds = tele_duration_bounds_ms;
        nb = TELE_DUR_BOUNDS;
        p->sum = v->dur_sum_ms;
    } else if (m == M_REQ_BYTES) {
        buckets = v->req_buckets;
        bounds = tele_bytes_bounds;
        nb = TELE_BYTES_BOUNDS;
        p->sum = (double)v->req_sum;
    } else {
        buckets = v->resp_buckets;
        bounds = tele_bytes_bounds;
        nb = TELE_BYTES_BOUNDS;
        p->sum = (double)v->resp_sum;
    }
    p->_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
    p->count = v->requests;
    p->n_explicit_bounds = nb;
    p->explicit_bounds = (double *)bounds;
    p->n_bucket_counts = nb + 1;
    p->bucket_counts = (uint64_t *)buckets;
    const tele_exemplar_t *x = &v->dur_exemplar;
    if (m == M_DURATION && x->time_unix_ns != 0) {
        pexemplar_t *e = alloc0(a, sizeof(*e));
        opentelemetry__proto__metrics__v1__exemplar__init(e);
        e->time_unix_nano = x->time_unix_ns;
        e->value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
        e->as_double = x->value_ms;
        e->trace_id = (ProtobufCBinaryData){sizeof(x->trace_id), (uint8_t *)x->trace_id};
        e->span_id = (ProtobufCBinaryData){sizeof(x->span_id), (uint8_t *)x->span_id};
        pexemplar_t **list = alloc0(a, sizeof(*list));
        list[0] = e;
        p->exemplars = list;
        p->n_exemplars = 1;
    }
    return p;
}

int tele_otlp_metrics(const tele_resource_t *res, const tele_series_t *series, size_t n, uint64_t start_ns,
                      uint64_t end_ns, buf_t *out, size_t *n_items)
{
    if (n_items != NULL)
        *n_items = 0;
    if (n == 0)
        return -1;
    arena_t a;
    arena_init(&a, 0);
    /* the attributes of each series, shared by its points in every metric */
    kv_t ***attrs = alloc0(&a, n * sizeof(*attrs));
    size_t *n_attrs = alloc0(&a, n * sizeof(*n_attrs));
    for (size_t i = 0; i < n; i++) {
        const tele_labels_t *lb = series[i].labels;
        attrs[i] = alloc0(&a, (lb->n ? lb->n : 1) * sizeof(kv_t *));
        for (int k = 0; k < lb->n; k++)
            attrs[i][n_attrs[i]++] = kv_str(&a, lb->name[k], lb->v[k]);
    }
    pmetric_t **metrics = alloc0(&a, M_N * sizeof(*metrics));
    size_t nm = 0, points = 0;
    for (int m = 0; m < M_N; m++) {
        void **pts = alloc0(&a, n * sizeof(void *));
        size_t np = 0;
        for (size_t i = 0; i < n; i++) {
            const tele_values_t *v = &series[i].val;
            bool is_http = series[i].labels->kind == TELE_SERIES_HTTP;
            if (!(series[i].labels->metrics & (1u << m)))
                continue;
            if (metric_defs[m].histogram) {
                if (!is_http || v->requests == 0)
                    continue;
                hpoint_t *p = make_hist_point(&a, v, m);
                p->attributes = attrs[i];
                p->n_attributes = n_attrs[i];
                p->start_time_unix_nano = start_ns;
                p->time_unix_nano = end_ns;
                pts[np++] = p;
            } else {
                uint64_t c = counter_value(v, m);
                if (c == 0 || (m == M_REQUESTS) != is_http)
                    continue;
                npoint_t *p = alloc0(&a, sizeof(*p));
                opentelemetry__proto__metrics__v1__number_data_point__init(p);
                p->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
                p->as_int = (int64_t)c;
                p->attributes = attrs[i];
                p->n_attributes = n_attrs[i];
                p->start_time_unix_nano = start_ns;
                p->time_unix_nano = end_ns;
                pts[np++] = p;
            }
        }
        if (np == 0)
            continue;
        pmetric_t *pm = alloc0(&a, sizeof(*pm));
        opentelemetry__proto__metrics__v1__metric__init(pm);
        pm->name = (char *)metric_defs[m].name;
        pm->unit = (char *)metric_defs[m].unit;
        pm->description = (char *)metric_defs[m].help;
        if (metric_defs[m].histogram) {
            Opentelemetry__Proto__Metrics__V1__Histogram *h = alloc0(&a, sizeof(*h));
            opentelemetry__proto__metrics__v1__histogram__init(h);
            h->aggregation_temporality =
                OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
            h->data_points = (hpoint_t **)pts;
            h->n_data_points = np;
            pm->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
            pm->histogram = h;
        } else {
            Opentelemetry__Proto__Metrics__V1__Sum *s = alloc0(&a, sizeof(*s));
            opentelemetry__proto__metrics__v1__sum__init(s);
            s->aggregation_temporality =
                OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
            s->is_monotonic = 1;
            s->data_points = (npoint_t **)pts;
            s->n_data_points = np;
            pm->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
            pm->sum = s;
        }
        metrics[nm++] = pm;
        points += np;
    }
    if (n_items != NULL)
        *n_items = points;
    if (nm == 0) {
        arena_dispose(&a);
        return -1;
    }
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm = OPENTELEMETRY__PROTO__METRICS__V1__SCOPE_METRICS__INIT;
    sm.scope = make_scope(&a);
    sm.metrics = metrics;
    sm.n_metrics = nm;
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics *smp = &sm;
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm = OPENTELEMETRY__PROTO__METRICS__V1__RESOURCE_METRICS__INIT;
    rm.resource = make_resource(&a, res);
    rm.scope_metrics = &smp;
    rm.n_scope_metrics = 1;
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rmp = &rm;
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    req.resource_metrics = &rmp;
    req.n_resource_metrics = 1;
    pack_into(&req.base, out);
    arena_dispose(&a);
    return 0;
}
