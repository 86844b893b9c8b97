/*
 * query: fan-out of the Zipkin read API to the store members; see query.h.
 *
 * One request: take a copy of the member list, ask every member the same
 * target with one curl easy handle each on the thread's multi handle,
 * classify each outcome, decode the 200 answers into one arena (spans with
 * the ingest decoder, names and links with yajl's tree), merge, encode with
 * the same writers the local API uses.
 */
#include "query.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "arena.h"
#include "log.h"
#include "mono.h"
#include "prom_text.h"
#include "query_merge.h"
#include "query_peers.h"
#include "span.h"
#include "span_store.h"
#include "xalloc.h"
#include "zipkin_json.h"

#define MAX_PEER_STATS 256      /* peers with their own metric series; later ones share peer="other" */
#define WARN_EVERY_MS 10000     /* at most one warning per peer this often */
#define TRACE_MANY_MAX 1000     /* as zipkin_api.c */
#define ARENA_SLACK (64u << 20) /* decoding room beyond the answers' own size */

enum peer_result { RES_OK, RES_TIMEOUT, RES_ERROR, RES_STATUS, RES_TOO_LARGE, RES_COUNT };
static const char *const result_names[RES_COUNT] = {"ok", "timeout", "error", "status", "too_large"};

typedef struct peer_stats {
    char name[QUERY_PEER_NAME_MAX];
    prom_counter_t results[RES_COUNT];
    uint64_t last_warn_ms; /* under the query's mutex */
    uint64_t suppressed;
} peer_stats_t;

struct query {
    query_peers_t *peers;
    uint64_t timeout_ms;
    uint64_t max_response_bytes;
    int strict_trace_id;
    pthread_key_t multi_key;                /* each pool thread's CURLM */
    pthread_mutex_t mu;                     /* stats table growth and warning times */
    peer_stats_t stats[MAX_PEER_STATS + 1]; /* the last one is "other" */
    size_t n_stats;
    prom_counter_t partial;
};

enum kind { K_NAMES, K_LINKS, K_TRACE, K_TRACES, K_MANY };

static const struct endpoint {
    const char *path;  /* relative to the API root */
    const char *route; /* latency metric's uri label, as zipkin_api.c */
    enum kind kind;
} endpoints[] = {
    {"/services", "/api/v2/services", K_NAMES},
    {"/spans", "/api/v2/spans", K_NAMES},
    {"/remoteServices", "/api/v2/remoteServices", K_NAMES},
    {"/autocompleteKeys", "/api/v2/autocompleteKeys", K_NAMES},
    {"/autocompleteValues", "/api/v2/autocompleteValues", K_NAMES},
    {"/dependencies", "/api/v2/dependencies", K_LINKS},
    {"/traces", "/api/v2/traces", K_TRACES},
    {"/traceMany", "/api/v2/traceMany", K_MANY},
    {"/trace/", "/api/v2/trace/{traceId}", K_TRACE}, /* a prefix */
};

/* One member's answer to one request. */
typedef struct answer {
    const char *peer;
    CURL *h;
    buf_t body;
    uint64_t max;
    int over; /* the body passed max */
    long status;
    enum peer_result res;
    int answered; /* counts as an answer: 2xx, or the 400 / 404 passed through */
    char why[128];
} answer_t;

/* ---- metrics and warnings ---- */

/* The stats entry of a peer, made on first use (under q->mu). */
static peer_stats_t *stats_of(query_t *q, const char *peer)
{
    for (size_t i = 0; i < q->n_stats; i++)
        if (strcmp(q->stats[i].name, peer) == 0)
            return &q->stats[i];
    if (q->n_stats == MAX_PEER_STATS)
        return &q->stats[MAX_PEER_STATS];
    peer_stats_t *s = &q->stats[q->n_stats];
    snprintf(s->name, sizeof(s->name), "%s", peer);
    q->n_stats++;
    return s;
}

static void count_answer(query_t *q, const answer_t *a)
{
    pthread_mutex_lock(&q->mu);
    peer_stats_t *s = stats_of(q, a->peer);
    prom_counter_add(&s->results[a->res], 1);
    if (a->res != RES_OK) {
        uint64_t now = mono_now_ms();
        if (s->last_warn_ms == 0 || now - s->last_warn_ms >= WARN_EVERY_MS) {
            if (s->suppressed)
                log_warn("query: store member %s left out of an answer: %s (and %llu more times since the last "
                         "warning)",
                         a->peer, a->why, (unsigned long long)s->suppressed);
            else
                log_warn("query: store member %s left out of an answer: %s", a->peer, a->why);
            s->last_warn_ms = now;
            s->suppressed = 0;
        } else {
            s->suppressed++;
        }
    }
    pthread_mutex_unlock(&q->mu);
}

void query_render_metrics(query_t *q, buf_t *b, int om)
{
    if (q == NULL)
        return;
    const char *help = "Store members the query role knows now (query.peers)";
    prom_write_family_header(b, "outrider_query_peers", PROM_GAUGE, help, strlen(help), NULL, om);
    prom_write_sample(b, "outrider_query_peers", "", NULL, 0, NULL, NULL, (double)query_peers_count(q->peers), NULL,
                      om);
    help = "Requests the query role sent to store members, by result (ok, timeout, error, status, too_large)";
    prom_write_family_header(b, "outrider_query_peer_requests", PROM_COUNTER, help, strlen(help), NULL, om);
    pthread_mutex_lock(&q->mu);
    size_t n = q->n_stats == MAX_PEER_STATS ? MAX_PEER_STATS + 1 : q->n_stats; /* "other" once it is in use */
    for (size_t i = 0; i < n; i++) {
        const peer_stats_t *s = &q->stats[i];
        const char *name = i == MAX_PEER_STATS ? "other" : s->name;
        for (int r = 0; r < RES_COUNT; r++) {
            metric_label_t l[2] = {{STR_LIT("peer"), {name, (uint32_t)strlen(name)}},
                                   {STR_LIT("result"), {result_names[r], (uint32_t)strlen(result_names[r])}}};
            prom_write_counter(b, "outrider_query_peer_requests", l, 2, &s->results[r], om);
        }
    }
    pthread_mutex_unlock(&q->mu);
    help = "Answers the query role gave without some store member's part";
    prom_write_family_header(b, "outrider_query_partial_answers", PROM_COUNTER, help, strlen(help), NULL, om);
    prom_write_counter(b, "outrider_query_partial_answers", NULL, 0, &q->partial, om);
}

/* ---- fan-out ---- */

static void free_multi(void *m)
{
    curl_multi_cleanup(m);
}

static CURLM *thread_multi(query_t *q)
{
    CURLM *m = pthread_getspecific(q->multi_key);
    if (m == NULL) {
        m = curl_multi_init();
        if (m == NULL || pthread_setspecific(q->multi_key, m) != 0)
            log_fatal("query: cannot set up a curl multi handle");
    }
    return m;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    answer_t *a = ctx;
    size_t n = size * nmemb;
    if (a->body.len + n > a->max) {
        a->over = 1;
        return 0; /* curl stops the transfer with CURLE_WRITE_ERROR */
    }
    buf_append(&a->body, data, n);
    return n;
}

static void why_printf(answer_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_printf(answer_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->why, sizeof(a->why), fmt, ap);
    va_end(ap);
}

static void transfer_done(answer_t *a, CURLcode rc)
{
    if (rc == CURLE_OK) {
        curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &a->status);
        a->res = RES_OK;
    } else if (a->over) {
        a->res = RES_TOO_LARGE;
        why_printf(a, "answer larger than query.maxResponseBytes");
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        a->res = RES_TIMEOUT;
        why_printf(a, "timeout");
    } else {
        long os = 0;
        a->res = RES_ERROR;
        if (curl_easy_getinfo(a->h, CURLINFO_OS_ERRNO, &os) == CURLE_OK && os != 0)
            why_printf(a, "%s: %s", curl_easy_strerror(rc), strerror((int)os));
        else
            why_printf(a, "%s", curl_easy_strerror(rc));
    }
}

/* Ask every member for target (path and query string) at once; fills ans[0..n). */
static void fan_out(query_t *q, const query_member_t *members, size_t n, const char *target, answer_t *ans)
{
    CURLM *m = thread_multi(q);
    buf_t url = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        answer_t *a = &ans[i];
        a->peer = members[i].name;
        a->max = q->max_response_bytes;
        a->h = curl_easy_init();
        if (a->h == NULL)
            log_fatal("query: cannot create a curl handle");
        url.len = 0;
        buf_printf(&url, "http://%s%s", members[i].name, target);
        curl_easy_setopt(a->h, CURLOPT_URL, url.data);
        curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(a->h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(a->h, CURLOPT_TIMEOUT_MS, (long)q->timeout_ms);
        curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT_MS, (long)q->timeout_ms);
        curl_easy_setopt(a->h, CURLOPT_USERAGENT, "outrider-collector/" OUTRIDER_VERSION " (query role)");
        curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(a->h, CURLOPT_WRITEDATA, a);
        curl_easy_setopt(a->h, CURLOPT_PRIVATE, a);
        curl_multi_add_handle(m, a->h);
    }
    buf_dispose(&url);
    int running = 1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    for (size_t i = 0; i < n; i++) { /* what a multi failure leaves unfinished */
        ans[i].res = RES_ERROR;
        why_printf(&ans[i], "not finished");
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        answer_t *a = NULL;
        if (msg->msg != CURLMSG_DONE || curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a) != CURLE_OK)
            continue;
        transfer_done(a, msg->data.result);
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, ans[i].h);
        curl_easy_cleanup(ans[i].h);
        ans[i].h = NULL;
    }
}

/* ---- decoding the answers ---- */

typedef struct part_ref {
    size_t start, n; /* spans[start..start+n) of the merge's span vector */
} part_ref_t;

typedef struct merge {
    arena_t arena;
    str_t *names;
    size_t n_names, cap_names;
    zipkin_dep_link_t *links;
    size_t n_links, cap_links;
    span_vec_t spans;
    part_ref_t *parts;
    size_t n_parts, cap_parts;
} merge_t;

static void *grow(void *v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return v;
    *cap = *cap * 2 > need ? *cap * 2 : need + 8;
    return xrealloc(v, *cap * elem);
}

static int part_start(merge_t *m)
{
    m->parts = grow(m->parts, &m->cap_parts, m->n_parts + 1, sizeof(*m->parts));
    m->parts[m->n_parts++] = (part_ref_t){m->spans.n, 0};
    return 0;
}

/* span_sink_fn: NULL opens a trace (zipkin_json_decode_traces), a span goes into the last one. */
static int part_sink(void *ctx, const span_t *s)
{
    merge_t *m = ctx;
    if (s == NULL)
        return part_start(m);
    span_vec_sink(&m->spans, s);
    m->parts[m->n_parts - 1].n++;
    return 0;
}

static int decode_spans(merge_t *m, const answer_t *a, enum kind kind, char *why, size_t why_len)
{
    static const zipkin_limits_t lim = {UINT32_MAX, 65535, UINT32_MAX, UINT32_MAX, UINT32_MAX, 8};
    zipkin_result_t res;
    int rc;
    if (kind == K_TRACE) {
        part_start(m);
        rc = zipkin_json_decode(a->body.data, a->body.len, &m->arena, &lim, part_sink, m, &res);
    } else {
        rc = zipkin_json_decode_traces(a->body.data, a->body.len, &m->arena, &lim, part_sink, m, &res);
    }
    if (rc != 0)
        snprintf(why, why_len, "%s", res.error);
    return rc;
}

/* A string of a yajl tree (NULL: not a string) copied into the merge's arena. 0 or -1. */
static int keep_str(merge_t *m, const char *s, str_t *out)
{
    size_t len = s != NULL ? strlen(s) : 0;
    char *copy = s != NULL && len <= UINT32_MAX ? arena_strndup(&m->arena, s, len) : NULL;
    *out = (str_t){copy, (uint32_t)len};
    return copy != NULL ? 0 : -1;
}

static int decode_names(merge_t *m, yajl_val v)
{
    if (!YAJL_IS_ARRAY(v))
        return -1;
    for (size_t i = 0; i < v->u.array.len; i++) {
        m->names = grow(m->names, &m->cap_names, m->n_names + 1, sizeof(*m->names));
        if (keep_str(m, YAJL_GET_STRING(v->u.array.values[i]), &m->names[m->n_names]) != 0)
            return -1;
        m->n_names++;
    }
    return 0;
}

static int link_count(yajl_val o, const char *key, int required, uint64_t *out)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(o, path, yajl_t_any);
    *out = 0;
    if (v == NULL)
        return required ? -1 : 0;
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
        return -1;
    *out = (uint64_t)YAJL_GET_INTEGER(v);
    return 0;
}

static int decode_links(merge_t *m, yajl_val v)
{
    if (!YAJL_IS_ARRAY(v))
        return -1;
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val o = v->u.array.values[i];
        const char *pp[] = {"parent", NULL}, *cp[] = {"child", NULL};
        zipkin_dep_link_t l;
        if (keep_str(m, YAJL_GET_STRING(yajl_tree_get(o, pp, yajl_t_string)), &l.parent) != 0 ||
            keep_str(m, YAJL_GET_STRING(yajl_tree_get(o, cp, yajl_t_string)), &l.child) != 0 ||
            link_count(o, "callCount", 1, &l.call_count) != 0 || link_count(o, "errorCount", 0, &l.error_count) != 0)
            return -1;
        m->links = grow(m->links, &m->cap_links, m->n_links + 1, sizeof(*m->links));
        m->links[m->n_links++] = l;
    }
    return 0;
}

/* Decode one 200 answer into m; on -1 (why set) m is as it was before. */
static int decode_answer(merge_t *m, const answer_t *a, enum kind kind, char *why, size_t why_len)
{
    size_t names = m->n_names, links = m->n_links, spans = m->spans.n, parts = m->n_parts;
    int rc;
    if (kind == K_NAMES || kind == K_LINKS) {
        char err[128] = "";
        yajl_val v = a->body.len ? yajl_tree_parse(a->body.data, err, sizeof(err)) : NULL;
        rc = v == NULL ? -1 : kind == K_NAMES ? decode_names(m, v) : decode_links(m, v);
        if (rc != 0)
            snprintf(why, why_len, "%s",
                     err[0]            ? err
                     : kind == K_NAMES ? "not a list of strings"
                                       : "not a list of links");
        yajl_tree_free(v);
    } else {
        rc = decode_spans(m, a, kind, why, why_len);
    }
    if (rc != 0) {
        m->n_names = names;
        m->n_links = links;
        m->spans.n = spans;
        m->n_parts = parts;
    }
    return rc;
}

/* ---- answering ---- */

/* "a (timeout), b (HTTP 500), ..." into out, cut with ", ..." when it does not fit. */
static void list_missing(const answer_t *ans, size_t n, char *out, size_t cap, size_t used)
{
    for (size_t i = 0, k = 0; i < n; i++) {
        if (ans[i].answered)
            continue;
        int w = snprintf(out + used, cap - used, "%s%s (%s)", k++ ? ", " : "", ans[i].peer, ans[i].why);
        if (w < 0 || (size_t)w >= cap - used) {
            out[used] = '\0';
            if (cap - used > 5)
                memcpy(out + used, ", ...", 6);
            return;
        }
        used += (size_t)w;
    }
}

static void too_large(http_response_t *resp)
{
    http_respond_text(resp, 413, "query result too large; lower the limit or narrow the query");
}

static void respond_traces(http_response_t *resp, const query_trace_t *v, size_t n, arena_t *a)
{
    const span_t **traces = arena_alloc(a, (n + 1) * sizeof(*traces));
    size_t *counts = arena_alloc(a, (n + 1) * sizeof(*counts));
    if (traces == NULL || counts == NULL) {
        too_large(resp);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        traces[i] = v[i].spans;
        counts[i] = v[i].n_spans;
    }
    zipkin_json_encode_traces(traces, counts, n, http_respond_json(resp, 200));
}

static uint32_t search_limit(const http_request_t *req)
{
    const char *v = http_query(req, "limit");
    char *end;
    unsigned long long n = v != NULL && *v ? strtoull(v, &end, 10) : 10;
    return n > 100000 ? 100000 : (uint32_t)n;
}

/* traceMany: each trace's rank is the first requested id it answers (exact, else by its low 64 bits). */
static void rank_by_request(const http_request_t *req, query_trace_t *v, size_t n, arena_t *a)
{
    span_trace_id_t *ids = arena_alloc(a, TRACE_MANY_MAX * sizeof(*ids));
    size_t k = 0;
    const char *p = http_query(req, "traceIds");
    for (p = p ? p : ""; ids != NULL && *p && k < TRACE_MANY_MAX;) {
        size_t len = strcspn(p, ",");
        if (len > 0 && span_parse_trace_id(p, len, &ids[k].high, &ids[k].low) == 0)
            k++;
        p += len + (p[len] == ',');
    }
    for (size_t i = 0; i < n; i++) {
        const span_t *s = &v[i].spans[0];
        v[i].order = UINT32_MAX;
        for (size_t j = 0; j < k && v[i].order == UINT32_MAX; j++)
            if (ids[j].low == s->trace_id_low && ids[j].high == s->trace_id_high)
                v[i].order = (uint32_t)j;
        for (size_t j = 0; j < k && v[i].order == UINT32_MAX; j++)
            if (ids[j].low == s->trace_id_low)
                v[i].order = (uint32_t)j;
    }
}

static void respond_merged(query_t *q, const http_request_t *req, enum kind kind, merge_t *m, http_response_t *resp)
{
    if (kind == K_NAMES) {
        size_t n = query_merge_names(m->names, m->n_names);
        zipkin_json_encode_strings(m->names, n, http_respond_json(resp, 200));
        return;
    }
    if (kind == K_LINKS) {
        size_t n = query_merge_links(m->links, m->n_links);
        zipkin_json_encode_dependencies(m->links, n, http_respond_json(resp, 200));
        return;
    }
    query_trace_t *parts = arena_alloc(&m->arena, (m->n_parts + 1) * sizeof(*parts)), *v;
    size_t n;
    if (parts == NULL) {
        too_large(resp);
        return;
    }
    for (size_t i = 0; i < m->n_parts; i++)
        parts[i] = (query_trace_t){m->spans.items + m->parts[i].start, m->parts[i].n, 0, 0};
    if (query_merge_traces(parts, m->n_parts, q->strict_trace_id, &m->arena, &v, &n) != 0) {
        too_large(resp);
        return;
    }
    if (kind == K_TRACE) {
        /* one trace; without strict ids its spans may carry different high bits, still one answer */
        buf_t *b = http_respond_json(resp, 200);
        buf_append_char(b, '[');
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < v[i].n_spans; j++) {
                if (i + j > 0)
                    buf_append_char(b, ',');
                zipkin_json_encode_span(&v[i].spans[j], b);
            }
        buf_append_char(b, ']');
        return;
    }
    if (kind == K_TRACES) {
        query_merge_by_recent(v, n);
        uint32_t limit = search_limit(req);
        respond_traces(resp, v, n < limit ? n : limit, &m->arena);
        return;
    }
    rank_by_request(req, v, n, &m->arena);
    query_merge_by_order(v, n);
    respond_traces(resp, v, n, &m->arena);
}

/* The request as every member gets it: /api/v2 + path (a trace id escaped) + the query string as sent. */
static void member_target(const http_request_t *req, const char *path, enum kind kind, buf_t *out)
{
    if (kind == K_TRACE) {
        char *id = curl_easy_escape(NULL, path + 7, 0);
        if (id == NULL)
            log_fatal("out of memory");
        buf_printf(out, "/api/v2/trace/%s", id);
        curl_free(id);
    } else {
        buf_printf(out, "/api/v2%s", path);
    }
    if (req->query != NULL && req->query[0] != '\0')
        buf_printf(out, "?%s", req->query);
}

int query_handle(query_t *q, const http_request_t *req, const char *path, http_response_t *resp)
{
    const struct endpoint *ep = NULL;
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]) && ep == NULL; i++) {
        size_t len = strlen(endpoints[i].path);
        if (endpoints[i].kind == K_TRACE ? strncmp(path, endpoints[i].path, len) == 0
                                         : strcmp(path, endpoints[i].path) == 0)
            ep = &endpoints[i];
    }
    if (ep == NULL)
        return 0;
    resp->route = ep->route;
    query_member_t *members;
    size_t n = query_peers_get(q->peers, &members);
    if (n == 0) {
        http_respond_text(resp, 503, "no store member is known: query.peers resolves to no address");
        return 1;
    }
    buf_t target = BUF_INIT;
    member_target(req, path, ep->kind, &target);
    answer_t *ans = xcalloc(n, sizeof(*ans));
    fan_out(q, members, n, target.data, ans);
    buf_dispose(&target);

    merge_t m;
    memset(&m, 0, sizeof(m));
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ans[i].body.len;
    arena_init(&m.arena, (size_t)(2 * total + ARENA_SLACK));
    const answer_t *passed = NULL; /* a 400, or trace/{id}'s 404, to pass through */
    size_t answered = 0;
    for (size_t i = 0; i < n; i++) {
        answer_t *a = &ans[i];
        if (a->res == RES_OK && a->status >= 200 && a->status < 300) {
            char why[256];
            if (decode_answer(&m, a, ep->kind, why, sizeof(why)) == 0)
                a->answered = 1;
            else {
                a->res = RES_ERROR;
                why_printf(a, "unparsable answer: %s", why);
            }
        } else if (a->res == RES_OK && (a->status == 400 || (a->status == 404 && ep->kind == K_TRACE))) {
            a->answered = 1;
            if (passed == NULL || (passed->status == 404 && a->status == 400))
                passed = a;
        } else if (a->res == RES_OK) {
            a->res = RES_STATUS;
            why_printf(a, "HTTP %ld", a->status);
        }
        answered += (size_t)a->answered;
        count_answer(q, a);
    }

    if (answered == 0) {
        char msg[sizeof(resp->partial)];
        int used = snprintf(msg, sizeof(msg), "none of the %zu store members answered: ", n);
        list_missing(ans, n, msg, sizeof(msg), (size_t)used);
        http_respond_text(resp, 503, "%s", msg);
    } else {
        if (answered < n) {
            int used = snprintf(resp->partial, sizeof(resp->partial),
                                "%zu of %zu store members did not answer: ", n - answered, n);
            list_missing(ans, n, resp->partial, sizeof(resp->partial), (size_t)used);
            prom_counter_add(&q->partial, 1);
        }
        if (passed != NULL && (passed->status == 400 || m.spans.n == 0)) {
            resp->status = (int)passed->status;
            resp->content_type = "text/plain; charset=utf-8";
            resp->body.len = 0;
            buf_append(&resp->body, passed->body.data, passed->body.len);
        } else {
            respond_merged(q, req, ep->kind, &m, resp);
        }
    }
    for (size_t i = 0; i < n; i++)
        buf_dispose(&ans[i].body);
    free(ans);
    free(members);
    free(m.names);
    free(m.links);
    free(m.parts);
    span_vec_dispose(&m.spans);
    arena_dispose(&m.arena);
    return 1;
}

query_t *query_create(const collector_config_t *cfg)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        log_error("query: cannot initialise libcurl: %s", curl_easy_strerror(rc));
        return NULL;
    }
    query_t *q = xcalloc(1, sizeof(*q));
    q->timeout_ms = cfg->query_timeout_ms;
    q->max_response_bytes = cfg->query_max_response_bytes;
    q->strict_trace_id = cfg->strict_trace_id;
    pthread_mutex_init(&q->mu, NULL);
    if (pthread_key_create(&q->multi_key, free_multi) != 0)
        log_fatal("query: cannot create a thread key");
    q->peers = query_peers_create(cfg->query_peers.items, cfg->query_peers.n, cfg->query_refresh_ms);
    if (q->peers == NULL) {
        query_destroy(q);
        return NULL;
    }
    return q;
}

void query_destroy(query_t *q)
{
    if (q == NULL)
        return;
    query_peers_destroy(q->peers);
    pthread_key_delete(q->multi_key);
    pthread_mutex_destroy(&q->mu);
    free(q);
    curl_global_cleanup();
}
