/*
 * zipkin_api: the read side of the Zipkin v2 HTTP API (/api/v2/...), with
 * the parameter rules and error answers of the Zipkin server: names are
 * matched lowercased, limits and lookbacks default as Zipkin's do, bad
 * parameters get 400 with a plain-text reason, a missing trace 404.
 *
 * Each handler queries the store into a per-request arena (the store copies
 * what it returns there and releases its lock), then encodes JSON.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "collector.h"
#include "span_store.h"
#include "utf8.h"
#include "zipkin_json.h"

/* Results larger than this are refused rather than built (traces of ~1M spans). */
#define API_ARENA_LIMIT (512u << 20)
#define TRACE_MANY_MAX 1000

/*
 * A name parameter lowercased as names are stored (utf8_lower, which also
 * repairs ill-formed UTF-8 as ingest does); STR_NULL when absent or empty.
 */
static str_t param_lower(const http_request_t *req, const char *name, arena_t *a)
{
    const char *v = http_query(req, name);
    if (v == NULL || *v == '\0')
        return STR_NULL;
    str_t s = {v, (uint32_t)strlen(v)};
    return utf8_lower(a, &s, 0) == 0 ? s : STR_NULL;
}

/*
 * A text parameter repaired as ingest repairs stored strings (utf8_repair;
 * as sent if the arena is full); NULL when absent.
 */
static const char *param_text(const http_request_t *req, const char *name, arena_t *a)
{
    const char *v = http_query(req, name);
    if (v == NULL)
        return NULL;
    str_t s = {v, (uint32_t)strlen(v)};
    return utf8_repair(a, &s, 0) == 0 ? s.ptr : v;
}

/* Parse an optional non-negative integer parameter. 0 ok (present or not), -1 bad (resp set). */
static int param_u64(const http_request_t *req, const char *name, uint64_t *out, int *present, http_response_t *resp)
{
    const char *v = http_query(req, name);
    *present = 0;
    if (v == NULL || *v == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || !isdigit((unsigned char)*v)) {
        http_respond_text(resp, 400, "%s should be a non-negative integer, not \"%s\"", name, v);
        return -1;
    }
    *out = n;
    *present = 1;
    return 0;
}

static void respond_names(http_response_t *resp, const str_t *names, size_t n)
{
    zipkin_json_encode_strings(names, n, http_respond_json(resp, 200));
}

static void respond_traces(http_response_t *resp, const trace_result_t *r, arena_t *a)
{
    const span_t **traces = arena_alloc(a, (r->n_traces + 1) * sizeof(*traces));
    size_t *counts = arena_alloc(a, (r->n_traces + 1) * sizeof(*counts));
    if (traces == NULL || counts == NULL) {
        http_respond_text(resp, 413, "query result too large; lower the limit or narrow the query");
        return;
    }
    for (size_t i = 0; i < r->n_traces; i++) {
        traces[i] = r->traces[i].spans;
        counts[i] = r->traces[i].n_spans;
    }
    zipkin_json_encode_traces(traces, counts, r->n_traces, http_respond_json(resp, 200));
}

static int require_service(const http_request_t *req, arena_t *a, str_t *svc, http_response_t *resp)
{
    *svc = param_lower(req, "serviceName", a);
    if (svc->len == 0) {
        http_respond_text(resp, 400, "serviceName is required");
        return -1;
    }
    return 0;
}

static void get_traces(collector_t *c, const http_request_t *req, http_response_t *resp, arena_t *a)
{
    span_query_t q;
    memset(&q, 0, sizeof(q));
    q.service_name = param_lower(req, "serviceName", a);
    q.remote_service_name = param_lower(req, "remoteServiceName", a);
    q.span_name = param_lower(req, "spanName", a);
    if (q.span_name.len == 3 && memcmp(q.span_name.ptr, "all", 3) == 0)
        q.span_name = STR_NULL;
    int present;
    uint64_t v;
    if (param_u64(req, "minDuration", &q.min_duration_us, &present, resp) != 0 ||
        param_u64(req, "maxDuration", &q.max_duration_us, &present, resp) != 0)
        return;
    q.end_ts_ms = collector_now_ms();
    if (param_u64(req, "endTs", &v, &present, resp) != 0)
        return;
    if (present)
        q.end_ts_ms = v;
    q.lookback_ms = c->cfg.default_lookback_ms;
    if (param_u64(req, "lookback", &v, &present, resp) != 0)
        return;
    if (present)
        q.lookback_ms = v;
    q.limit = 10;
    if (param_u64(req, "limit", &v, &present, resp) != 0)
        return;
    if (present)
        q.limit = v > 100000 ? 100000 : (uint32_t)v;
    const char *aq = param_text(req, "annotationQuery", a);
    if (aq != NULL && *aq != '\0') {
        span_query_term_t *terms;
        const char *why = NULL;
        if (span_query_parse_annotation_query(aq, strlen(aq), a, &terms, &q.n_terms, &why) != 0) {
            http_respond_text(resp, 400, "annotationQuery: %s", why ? why : "invalid");
            return;
        }
        q.terms = terms;
    }
    const char *why = NULL;
    if (span_query_validate(&q, &why) != 0) {
        http_respond_text(resp, 400, "%s", why ? why : "invalid query");
        return;
    }
    trace_result_t r;
    if (span_store_get_traces(c->store, &q, a, &r) != 0) {
        http_respond_text(resp, 413, "query result too large; lower the limit or narrow the query");
        return;
    }
    respond_traces(resp, &r, a);
}

static void get_trace(collector_t *c, const char *id, http_response_t *resp, arena_t *a)
{
    uint64_t hi, lo;
    size_t len = strlen(id);
    if (span_parse_trace_id(id, len, &hi, &lo) != 0) {
        http_respond_text(resp, 400, "traceId should be 1 to 32 hex characters, not \"%s\"", id);
        return;
    }
    const span_t *spans;
    size_t n;
    if (span_store_get_trace(c->store, hi, lo, a, &spans, &n) != 0) {
        char norm[33];
        span_format_trace_id(hi, lo, norm);
        http_respond_text(resp, 404, "Trace not found: %s", norm);
        return;
    }
    zipkin_json_encode_spans(spans, n, http_respond_json(resp, 200));
}

static void get_trace_many(collector_t *c, const http_request_t *req, http_response_t *resp, arena_t *a)
{
    const char *list = http_query(req, "traceIds");
    span_trace_id_t *ids = arena_alloc(a, TRACE_MANY_MAX * sizeof(*ids));
    size_t n = 0;
    if (ids == NULL)
        return;
    const char *p = list ? list : "";
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (n == TRACE_MANY_MAX) {
                http_respond_text(resp, 400, "traceIds: at most %d ids", TRACE_MANY_MAX);
                return;
            }
            if (span_parse_trace_id(p, len, &ids[n].high, &ids[n].low) != 0) {
                http_respond_text(resp, 400, "traceIds: \"%.*s\" is not a 1 to 32 character hex trace id", (int)len, p);
                return;
            }
            n++;
        }
        p += len + (p[len] == ',');
    }
    if (n < 2) {
        http_respond_text(resp, 400, "traceIds should be a comma-separated list of at least two trace IDs");
        return;
    }
    trace_result_t r;
    if (span_store_get_many(c->store, ids, n, a, &r) != 0) {
        http_respond_text(resp, 413, "result too large");
        return;
    }
    respond_traces(resp, &r, a);
}

static void get_dependencies(collector_t *c, const http_request_t *req, http_response_t *resp, arena_t *a)
{
    uint64_t end_ts, lookback = c->cfg.default_lookback_ms;
    int present;
    if (param_u64(req, "endTs", &end_ts, &present, resp) != 0)
        return;
    if (!present) {
        http_respond_text(resp, 400, "endTs is required (epoch milliseconds)");
        return;
    }
    uint64_t v;
    if (param_u64(req, "lookback", &v, &present, resp) != 0)
        return;
    if (present)
        lookback = v;
    span_dep_link_t *links;
    size_t n;
    if (span_store_dependencies(c->store, end_ts, lookback, a, &links, &n) != 0) {
        http_respond_text(resp, 413, "result too large");
        return;
    }
    zipkin_dep_link_t *out = arena_alloc(a, (n + 1) * sizeof(*out));
    if (out == NULL) {
        http_respond_text(resp, 413, "result too large");
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (zipkin_dep_link_t){links[i].parent, links[i].child, links[i].call_count, links[i].error_count};
    zipkin_json_encode_dependencies(out, n, http_respond_json(resp, 200));
}

int zipkin_api_handle(collector_t *c, const http_request_t *req, const char *path, http_response_t *resp)
{
    arena_t a;
    arena_init(&a, API_ARENA_LIMIT);
    str_t *names = NULL;
    size_t n = 0;
    int handled = 1;
    str_t svc;

    if (strcmp(path, "/services") == 0) {
        resp->route = "/api/v2/services";
        if (span_store_service_names(c->store, &a, &names, &n) == 0)
            respond_names(resp, names, n);
    } else if (strcmp(path, "/spans") == 0) {
        resp->route = "/api/v2/spans";
        if (require_service(req, &a, &svc, resp) == 0 && span_store_span_names(c->store, svc, &a, &names, &n) == 0)
            respond_names(resp, names, n);
    } else if (strcmp(path, "/remoteServices") == 0) {
        resp->route = "/api/v2/remoteServices";
        if (require_service(req, &a, &svc, resp) == 0 &&
            span_store_remote_service_names(c->store, svc, &a, &names, &n) == 0)
            respond_names(resp, names, n);
    } else if (strcmp(path, "/traces") == 0) {
        resp->route = "/api/v2/traces";
        get_traces(c, req, resp, &a);
    } else if (strncmp(path, "/trace/", 7) == 0) {
        resp->route = "/api/v2/trace/{traceId}";
        get_trace(c, path + 7, resp, &a);
    } else if (strcmp(path, "/traceMany") == 0) {
        resp->route = "/api/v2/traceMany";
        get_trace_many(c, req, resp, &a);
    } else if (strcmp(path, "/dependencies") == 0) {
        resp->route = "/api/v2/dependencies";
        get_dependencies(c, req, resp, &a);
    } else if (strcmp(path, "/autocompleteKeys") == 0) {
        resp->route = "/api/v2/autocompleteKeys";
        if (span_store_autocomplete_keys(c->store, &a, &names, &n) == 0)
            respond_names(resp, names, n);
    } else if (strcmp(path, "/autocompleteValues") == 0) {
        resp->route = "/api/v2/autocompleteValues";
        const char *key = param_text(req, "key", &a);
        if (key == NULL || *key == '\0')
            http_respond_text(resp, 400, "key is required");
        else if (span_store_autocomplete_values(c->store, (str_t){key, (uint32_t)strlen(key)}, &a, &names, &n) == 0)
            respond_names(resp, names, n);
    } else {
        handled = 0;
    }
    if (handled && resp->status == 500 && resp->body.len == 0)
        http_respond_text(resp, 413, "result too large");
    arena_dispose(&a);
    return handled;
}
