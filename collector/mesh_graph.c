/*
 * mesh_graph: see mesh_graph.h for what the graph means and its JSON.
 *
 * Building one answer: the window's rows are sorted by (source,
 * destination, reporter, version) so that each edge is a run of rows; the
 * edge takes the rows of its reporter. Node candidates (both ends of every
 * edge) are gathered in a list, the dependency links resolved against it
 * (a traced name NAME.NAMESPACE is the node of that name and namespace),
 * then sorted and made unique: the nodes. Everything lives in one arena
 * freed at the end; sizes are bounded by the history's rows and the links.
 */
#include "mesh_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "utf8.h"
#include "xalloc.h"

enum edge_reporter { EDGE_SOURCE = 0, EDGE_DESTINATION = 1, EDGE_TRACE = 2 };
enum node_kind { NODE_SERVICE = 0, NODE_UNKNOWN, NODE_TRACED };

static const char *const reporter_names[] = {"source", "destination", "trace"};
static const char *const kind_names[] = {"service", "unknown", "traced"};

typedef struct endpoint {
    const char *service, *name, *ns;
    const char *zipkin; /* Zipkin service name: lowercased NAME.NAMESPACE; NULL for "unknown" */
    enum node_kind kind;
} endpoint_t;

typedef struct version_sum {
    const char *service, *version;
    uint64_t requests;
} version_sum_t;

typedef struct node {
    endpoint_t ep;
    uint64_t req_in, err_in, req_out;
    const version_sum_t *versions;
    size_t n_versions;
    uint64_t version_requests;
    int keep;
} node_t;

typedef struct edge {
    const char *src, *dst; /* services */
    const char *remote;    /* the callee's name as the caller's spans record it */
    size_t src_node, dst_node;
    enum edge_reporter reporter;
    uint64_t requests, errors;
    double p99_ms; /* NaN: none */
    int keep;
} edge_t;

/* A growable array in the build's arena (old blocks stay until the arena goes). */
typedef struct vec {
    void *items;
    size_t n, cap, size;
} vec_t;

typedef struct graph {
    arena_t arena;
    vec_t edges, endpoints, versions;
    node_t *nodes;
    size_t n_nodes;
    double covered_s;
    uint64_t hist_skipped;
    uint64_t dropped_nodes, dropped_edges;
} graph_t;

static void *vec_push(graph_t *g, vec_t *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void *items = arena_alloc(&g->arena, cap * v->size);
        if (items == NULL) /* the arena has no limit: only malloc failing gets here */
            abort();
        if (v->n > 0)
            memcpy(items, v->items, v->n * v->size);
        v->items = items;
        v->cap = cap;
    }
    void *p = (char *)v->items + v->n++ * v->size;
    memset(p, 0, v->size);
    return p;
}

/* qsort, which must not be handed the NULL of an empty array. */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

static char *gdup(graph_t *g, const char *s, size_t n)
{
    char *p = arena_strndup(&g->arena, s, n);
    if (p == NULL)
        abort();
    return p;
}

/* s lowercased as the trace store lowercases service names. */
static const char *lower(graph_t *g, const char *s, size_t n)
{
    char *out = arena_alloc(&g->arena, n * UTF8_MAX_GROWTH + 1);
    if (out == NULL)
        abort();
    out[utf8_lower_to(out, s, n)] = '\0';
    return out;
}

/* ------------------------------------------------------------------ */
/* quantiles                                                           */

double mesh_histogram_quantile(double q, const double *bounds, uint32_t n_bounds, const uint64_t *buckets)
{
    if (n_bounds == 0 || isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    uint64_t total = 0;
    for (uint32_t b = 0; b <= n_bounds; b++)
        total += buckets[b];
    if (total == 0)
        return NAN;
    double rank = q * (double)total;
    uint64_t below = 0; /* observations in the buckets before b */
    uint32_t b = 0;
    while (b < n_bounds && (double)(below + buckets[b]) < rank)
        below += buckets[b++];
    if (b == n_bounds)
        return bounds[n_bounds - 1];
    if (b == 0 && bounds[0] <= 0)
        return bounds[0];
    double start = b == 0 ? 0 : bounds[b - 1];
    return start + (bounds[b] - start) * ((rank - (double)below) / (double)buckets[b]);
}

/* ------------------------------------------------------------------ */
/* metric edges                                                        */

static int cmp_rows(const void *a, const void *b)
{
    const mesh_row_key_t *x = (*(const mesh_row_delta_t *const *)a)->key;
    const mesh_row_key_t *y = (*(const mesh_row_delta_t *const *)b)->key;
    int c = strcmp(x->src_service, y->src_service);
    if (c == 0)
        c = strcmp(x->dst_service, y->dst_service);
    if (c == 0)
        c = (int)x->reporter - (int)y->reporter;
    if (c == 0)
        c = strcmp(x->version, y->version);
    return c;
}

static int same_edge(const mesh_row_delta_t *a, const mesh_row_delta_t *b)
{
    return strcmp(a->key->src_service, b->key->src_service) == 0 &&
           strcmp(a->key->dst_service, b->key->dst_service) == 0;
}

/* The Zipkin name of a sidecar's service, as its proxy names its spans: NAME.NAMESPACE, lowercased. */
static const char *zipkin_name(graph_t *g, const char *name, const char *ns)
{
    if (strcmp(name, "unknown") == 0 && *ns == '\0')
        return NULL;
    size_t nl = strlen(name), sl = strlen(ns);
    char *both = arena_alloc(&g->arena, nl + sl + 2);
    if (both == NULL)
        abort();
    memcpy(both, name, nl);
    both[nl] = '.';
    memcpy(both + nl + 1, ns, sl + 1);
    return lower(g, both, sl > 0 ? nl + 1 + sl : nl);
}

static void add_endpoint(graph_t *g, const char *service, const char *name, const char *ns, enum node_kind kind,
                         const char *zipkin)
{
    endpoint_t *e = vec_push(g, &g->endpoints);
    *e = (endpoint_t){service, name, ns, zipkin, kind};
}

/* The rows [from, to) of one edge: its figures from the chosen reporter, its versions into g->versions. */
static void add_metric_edge(graph_t *g, mesh_row_delta_t **rows, size_t from, size_t to)
{
    uint64_t req[2] = {0, 0};
    for (size_t i = from; i < to; i++)
        req[rows[i]->key->reporter] += rows[i]->requests;
    mesh_reporter_t rep = req[MESH_REPORTER_SOURCE] > 0 ? MESH_REPORTER_SOURCE : MESH_REPORTER_DESTINATION;
    if (req[rep] == 0)
        return;
    const mesh_row_key_t *k = rows[from]->key;
    edge_t *e = vec_push(g, &g->edges);
    e->src = k->src_service;
    e->dst = k->dst_service;
    e->remote = lower(g, k->dst_name, strlen(k->dst_name));
    e->reporter = rep == MESH_REPORTER_SOURCE ? EDGE_SOURCE : EDGE_DESTINATION;
    const mesh_row_delta_t *hist = NULL;
    uint64_t buckets[MESH_MAX_BUCKETS] = {0};
    for (size_t i = from; i < to; i++) {
        const mesh_row_delta_t *r = rows[i];
        if (r->key->reporter != rep)
            continue;
        e->requests += r->requests;
        e->errors += r->errors;
        if (r->requests > 0) {
            version_sum_t *v = vec_push(g, &g->versions);
            *v = (version_sum_t){r->key->dst_service, r->key->version, r->requests};
        }
        if (r->n_bounds == 0)
            continue;
        if (hist == NULL)
            hist = r;
        if (r->n_bounds != hist->n_bounds || memcmp(r->bounds, hist->bounds, r->n_bounds * sizeof(double)) != 0) {
            g->hist_skipped++;
            continue;
        }
        for (uint32_t b = 0; b <= r->n_bounds; b++)
            buckets[b] += r->buckets[b];
    }
    e->p99_ms = hist != NULL ? mesh_histogram_quantile(0.99, hist->bounds, hist->n_bounds, buckets) : NAN;
    add_endpoint(g, k->src_service, k->src_name, k->src_namespace,
                 strcmp(k->src_service, "unknown") == 0 ? NODE_UNKNOWN : NODE_SERVICE,
                 zipkin_name(g, k->src_name, k->src_namespace));
    add_endpoint(g, k->dst_service, k->dst_name, k->dst_namespace,
                 strcmp(k->dst_service, "unknown") == 0 ? NODE_UNKNOWN : NODE_SERVICE,
                 zipkin_name(g, k->dst_name, k->dst_namespace));
}

static void add_metric_edges(graph_t *g, const mesh_window_t *w)
{
    if (w->n == 0)
        return;
    mesh_row_delta_t **rows = xmalloc(w->n * sizeof(*rows));
    for (size_t i = 0; i < w->n; i++)
        rows[i] = &w->rows[i];
    sort(rows, w->n, sizeof(*rows), cmp_rows);
    size_t from = 0;
    for (size_t i = 1; i <= w->n; i++) {
        if (i < w->n && same_edge(rows[from], rows[i]))
            continue;
        add_metric_edge(g, rows, from, i);
        from = i;
    }
    free(rows);
}

/* ------------------------------------------------------------------ */
/* trace edges                                                         */

static int cmp_endpoint_zipkin(const void *a, const void *b)
{
    const endpoint_t *x = a, *y = b;
    return strcmp(x->zipkin ? x->zipkin : "", y->zipkin ? y->zipkin : "");
}

static int cmp_edge_key(const void *a, const void *b)
{
    const edge_t *x = a, *y = b;
    int c = strcmp(x->src, y->src);
    return c != 0 ? c : strcmp(x->dst, y->dst);
}

/* The node a traced name stands for: the sidecar service whose Zipkin name it is, else a traced node. */
static const endpoint_t *resolve_traced(graph_t *g, const endpoint_t *by_zipkin, size_t n, str_t name)
{
    const char *z = gdup(g, name.ptr, name.len);
    endpoint_t key = {.zipkin = z};
    const endpoint_t *hit = n > 0 ? bsearch(&key, by_zipkin, n, sizeof(*by_zipkin), cmp_endpoint_zipkin) : NULL;
    if (hit != NULL)
        return hit;
    add_endpoint(g, z, z, "", NODE_TRACED, z);
    return &((const endpoint_t *)g->endpoints.items)[g->endpoints.n - 1];
}

static void add_trace_edges(graph_t *g, const span_dep_link_t *links, size_t n_links)
{
    if (n_links == 0)
        return;
    /* metric endpoints by Zipkin name, and metric edges by key, before trace ones are added */
    size_t n_ep = g->endpoints.n, n_metric = g->edges.n;
    endpoint_t *by_zipkin = xmalloc((n_ep ? n_ep : 1) * sizeof(*by_zipkin));
    size_t nz = 0;
    for (size_t i = 0; i < n_ep; i++)
        if (((endpoint_t *)g->endpoints.items)[i].zipkin != NULL)
            by_zipkin[nz++] = ((endpoint_t *)g->endpoints.items)[i];
    sort(by_zipkin, nz, sizeof(*by_zipkin), cmp_endpoint_zipkin);
    sort(g->edges.items, n_metric, sizeof(edge_t), cmp_edge_key);
    for (size_t i = 0; i < n_links; i++) {
        const span_dep_link_t *l = &links[i];
        if (l->call_count == 0 || l->parent.len == 0 || l->child.len == 0)
            continue;
        endpoint_t src = *resolve_traced(g, by_zipkin, nz, l->parent);
        endpoint_t dst = *resolve_traced(g, by_zipkin, nz, l->child);
        edge_t key = {.src = src.service, .dst = dst.service};
        if (n_metric > 0 && bsearch(&key, g->edges.items, n_metric, sizeof(edge_t), cmp_edge_key) != NULL)
            continue; /* the sidecars' figures win */
        edge_t *e = vec_push(g, &g->edges);
        *e = (edge_t){.src = src.service, .dst = dst.service, .remote = dst.zipkin, .reporter = EDGE_TRACE};
        e->requests = l->call_count;
        e->errors = l->error_count < l->call_count ? l->error_count : l->call_count;
        e->p99_ms = NAN;
    }
    free(by_zipkin);
}

/* ------------------------------------------------------------------ */
/* nodes                                                               */

static int cmp_endpoint_service(const void *a, const void *b)
{
    const endpoint_t *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    return c != 0 ? c : (int)x->kind - (int)y->kind;
}

static int cmp_node_service(const void *key, const void *n)
{
    return strcmp(key, ((const node_t *)n)->ep.service);
}

static size_t node_index(const graph_t *g, const char *service)
{
    const node_t *n = bsearch(service, g->nodes, g->n_nodes, sizeof(node_t), cmp_node_service);
    return (size_t)(n - g->nodes);
}

static int cmp_versions(const void *a, const void *b)
{
    const version_sum_t *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    return c != 0 ? c : strcmp(x->version, y->version);
}

/* Sum the version entries per (service, version) and hand each node its run. */
static void attach_versions(graph_t *g)
{
    version_sum_t *v = g->versions.items;
    size_t n = 0;
    sort(v, g->versions.n, sizeof(*v), cmp_versions);
    for (size_t i = 0; i < g->versions.n; i++) {
        if (n > 0 && cmp_versions(&v[n - 1], &v[i]) == 0)
            v[n - 1].requests += v[i].requests;
        else
            v[n++] = v[i];
    }
    for (size_t i = 0; i < n;) {
        node_t *node = &g->nodes[node_index(g, v[i].service)];
        node->versions = &v[i];
        while (i < n && strcmp(v[i].service, node->ep.service) == 0) {
            node->version_requests += v[i].requests;
            node->n_versions++;
            i++;
        }
    }
}

static void make_nodes(graph_t *g)
{
    endpoint_t *ep = g->endpoints.items;
    sort(ep, g->endpoints.n, sizeof(*ep), cmp_endpoint_service);
    g->nodes = arena_calloc(&g->arena, g->endpoints.n ? g->endpoints.n : 1, sizeof(node_t));
    if (g->nodes == NULL)
        abort();
    for (size_t i = 0; i < g->endpoints.n; i++)
        if (g->n_nodes == 0 || strcmp(g->nodes[g->n_nodes - 1].ep.service, ep[i].service) != 0)
            g->nodes[g->n_nodes++].ep = ep[i];
    edge_t *e = g->edges.items;
    for (size_t i = 0; i < g->edges.n; i++) {
        e[i].src_node = node_index(g, e[i].src);
        e[i].dst_node = node_index(g, e[i].dst);
        g->nodes[e[i].dst_node].req_in += e[i].requests;
        g->nodes[e[i].dst_node].err_in += e[i].errors;
        g->nodes[e[i].src_node].req_out += e[i].requests;
    }
    attach_versions(g);
}

/* ------------------------------------------------------------------ */
/* limits                                                              */

static int cmp_busiest(const void *a, const void *b)
{
    const edge_t *x = *(const edge_t *const *)a, *y = *(const edge_t *const *)b;
    if (x->requests != y->requests)
        return x->requests > y->requests ? -1 : 1;
    return cmp_edge_key(x, y);
}

/* Keep the busiest edges while max_edges and max_nodes hold; the nodes kept are their ends. */
static void apply_limits(graph_t *g, uint32_t max_nodes, uint32_t max_edges)
{
    edge_t *e = g->edges.items;
    if (g->edges.n <= max_edges && g->n_nodes <= max_nodes) {
        for (size_t i = 0; i < g->edges.n; i++)
            e[i].keep = 1;
        for (size_t i = 0; i < g->n_nodes; i++)
            g->nodes[i].keep = 1;
        return;
    }
    edge_t **order = xmalloc(g->edges.n * sizeof(*order));
    for (size_t i = 0; i < g->edges.n; i++)
        order[i] = &e[i];
    sort(order, g->edges.n, sizeof(*order), cmp_busiest);
    size_t kept_edges = 0, kept_nodes = 0;
    for (size_t i = 0; i < g->edges.n && kept_edges < max_edges; i++) {
        node_t *s = &g->nodes[order[i]->src_node], *d = &g->nodes[order[i]->dst_node];
        size_t more = !s->keep + (d != s && !d->keep);
        if (kept_nodes + more > max_nodes)
            continue;
        s->keep = d->keep = order[i]->keep = 1;
        kept_nodes += more;
        kept_edges++;
    }
    free(order);
    g->dropped_edges = g->edges.n - kept_edges;
    g->dropped_nodes = g->n_nodes - kept_nodes;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

static void json_str(buf_t *b, const char *s)
{
    buf_append_char(b, '"');
    buf_append_json_escaped(b, s, strlen(s));
    buf_append_char(b, '"');
}

static void json_num(buf_t *b, double v)
{
    if (!isfinite(v))
        buf_append_str(b, "null");
    else
        buf_printf(b, "%.6g", v);
}

static double ratio(uint64_t part, uint64_t whole)
{
    return whole > 0 ? (double)part / (double)whole : NAN;
}

static double per_second(const graph_t *g, uint64_t n)
{
    return g->covered_s > 0 ? (double)n / g->covered_s : 0;
}

/* Percent-encode a query value (RFC 3986 unreserved characters stay). */
static void url_encoded(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || *p == '_' || *p == '~') {
            buf_append_char(b, (char)*p);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(b, esc, 3);
        }
    }
}

/* The Zipkin search criteria of an edge's calls (serviceName=..., no '?'). */
static void search_criteria(buf_t *url, const graph_t *g, const edge_t *e)
{
    const endpoint_t *src = &g->nodes[e->src_node].ep, *dst = &g->nodes[e->dst_node].ep;
    buf_append_str(url, "serviceName=");
    if (src->zipkin != NULL && src->kind != NODE_UNKNOWN) {
        url_encoded(url, src->zipkin);
        if (e->remote != NULL && *e->remote != '\0') {
            buf_append_str(url, "&remoteServiceName=");
            url_encoded(url, e->remote);
        }
    } else if (dst->zipkin != NULL) { /* a caller outside the mesh has no spans: the callee's */
        url_encoded(url, dst->zipkin);
    }
}

/* ,"traces":"...","zipkin":"..."|null: an edge's traces over the window, by the API and in the UI. */
static void json_trace_links(buf_t *b, const graph_t *g, const edge_t *e, const mesh_graph_opts_t *o)
{
    buf_t url = BUF_INIT;
    buf_append_str(&url, "/api/v2/traces?");
    search_criteria(&url, g, e);
    buf_printf(&url, "&lookback=%llu&limit=10", (unsigned long long)o->window_ms);
    buf_append_str(b, ",\"traces\":");
    json_str(b, url.data);
    buf_append_str(b, ",\"zipkin\":");
    if (o->zipkin_ui == NULL || *o->zipkin_ui == '\0') {
        buf_append_str(b, "null");
    } else {
        url.len = 0;
        buf_append_str(&url, o->zipkin_ui);
        buf_append_char(&url, strchr(o->zipkin_ui, '?') != NULL ? '&' : '?');
        search_criteria(&url, g, e);
        buf_printf(&url, "&lookback=millis&millis=%llu&endTs=%llu&limit=10", (unsigned long long)o->window_ms,
                   (unsigned long long)o->generated_ms);
        json_str(b, url.data);
    }
    buf_dispose(&url);
}

static void json_node(buf_t *b, const graph_t *g, const node_t *n)
{
    buf_append_str(b, "{\"service\":");
    json_str(b, n->ep.service);
    buf_append_str(b, ",\"name\":");
    json_str(b, n->ep.name);
    buf_append_str(b, ",\"namespace\":");
    json_str(b, n->ep.ns);
    buf_printf(b, ",\"kind\":\"%s\",\"rps\":", kind_names[n->ep.kind]);
    json_num(b, per_second(g, n->req_in));
    buf_printf(b, ",\"requests\":%llu,\"errors\":%llu,\"successRate\":", (unsigned long long)n->req_in,
               (unsigned long long)n->err_in);
    json_num(b, ratio(n->req_in - n->err_in, n->req_in));
    buf_append_str(b, ",\"outRps\":");
    json_num(b, per_second(g, n->req_out));
    buf_printf(b, ",\"outRequests\":%llu,\"versions\":[", (unsigned long long)n->req_out);
    for (size_t i = 0; i < n->n_versions; i++) {
        const version_sum_t *v = &n->versions[i];
        buf_append_str(b, i ? ",{\"version\":" : "{\"version\":");
        json_str(b, v->version);
        buf_append_str(b, ",\"rps\":");
        json_num(b, per_second(g, v->requests));
        buf_printf(b, ",\"requests\":%llu,\"share\":", (unsigned long long)v->requests);
        json_num(b, ratio(v->requests, n->version_requests));
        buf_append_char(b, '}');
    }
    buf_append_str(b, "]}");
}

static void json_edge(buf_t *b, const graph_t *g, const edge_t *e, const mesh_graph_opts_t *o)
{
    buf_append_str(b, "{\"source\":");
    json_str(b, e->src);
    buf_append_str(b, ",\"destination\":");
    json_str(b, e->dst);
    buf_printf(b, ",\"reporter\":\"%s\",\"rps\":", reporter_names[e->reporter]);
    json_num(b, per_second(g, e->requests));
    buf_printf(b, ",\"requests\":%llu,\"errors\":%llu,\"successRate\":", (unsigned long long)e->requests,
               (unsigned long long)e->errors);
    json_num(b, ratio(e->requests - e->errors, e->requests));
    buf_append_str(b, ",\"p99Ms\":");
    json_num(b, e->p99_ms);
    json_trace_links(b, g, e, o);
    buf_append_char(b, '}');
}

static void json_time(buf_t *b, uint64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char text[32];
    gmtime_r(&s, &tm);
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(b, "\"%s.%03uZ\"", text, (unsigned)(ms % 1000));
}

static void json_header(buf_t *b, const graph_t *g, const mesh_window_t *w, const mesh_history_stats_t *st,
                        const mesh_graph_opts_t *o, uint32_t max_nodes, uint32_t max_edges)
{
    buf_append_str(b, "{\"window\":");
    json_str(b, o->window);
    buf_printf(b, ",\"windowSeconds\":");
    json_num(b, (double)o->window_ms / 1000.0);
    buf_append_str(b, ",\"coveredSeconds\":");
    json_num(b, g->covered_s);
    buf_append_str(b, ",\"resolutionSeconds\":");
    json_num(b, (double)w->resolution_ms / 1000.0);
    buf_append_str(b, ",\"generatedAt\":");
    json_time(b, o->generated_ms);
    buf_printf(b, ",\"generatedAtMs\":%llu,\"truncated\":%s", (unsigned long long)o->generated_ms,
               g->dropped_edges || g->dropped_nodes ? "true" : "false");
    buf_printf(b, ",\"limits\":{\"maxNodes\":%u,\"maxEdges\":%u,\"maxRows\":%u,\"maxSeries\":%u}", max_nodes, max_edges,
               st->max_rows, st->max_series);
    buf_printf(b, ",\"dropped\":{\"nodes\":%llu,\"edges\":%llu,\"rows\":%llu,\"series\":%llu,\"histograms\":%llu}",
               (unsigned long long)g->dropped_nodes, (unsigned long long)g->dropped_edges,
               (unsigned long long)st->rows_dropped, (unsigned long long)st->series_dropped,
               (unsigned long long)(st->histograms_skipped + g->hist_skipped));
}

void mesh_graph_json(const mesh_window_t *w, const span_dep_link_t *links, size_t n_links,
                     const mesh_history_stats_t *st, const mesh_graph_opts_t *o, buf_t *out)
{
    uint32_t max_nodes = o->max_nodes ? o->max_nodes : MESH_MAX_NODES;
    uint32_t max_edges = o->max_edges ? o->max_edges : MESH_MAX_EDGES;
    graph_t g = {.covered_s = (double)w->covered_ms / 1000.0};
    arena_init(&g.arena, 0);
    g.edges.size = sizeof(edge_t);
    g.endpoints.size = sizeof(endpoint_t);
    g.versions.size = sizeof(version_sum_t);
    add_metric_edges(&g, w);
    add_trace_edges(&g, links, n_links);
    make_nodes(&g);
    apply_limits(&g, max_nodes, max_edges);
    sort(g.edges.items, g.edges.n, sizeof(edge_t), cmp_edge_key);

    json_header(out, &g, w, st, o, max_nodes, max_edges);
    buf_append_str(out, ",\"nodes\":[");
    int first = 1;
    for (size_t i = 0; i < g.n_nodes; i++) {
        if (!g.nodes[i].keep)
            continue;
        if (!first)
            buf_append_char(out, ',');
        json_node(out, &g, &g.nodes[i]);
        first = 0;
    }
    buf_append_str(out, "],\"edges\":[");
    first = 1;
    const edge_t *e = g.edges.items;
    for (size_t i = 0; i < g.edges.n; i++) {
        if (!e[i].keep)
            continue;
        if (!first)
            buf_append_char(out, ',');
        json_edge(out, &g, &e[i], o);
        first = 0;
    }
    buf_append_str(out, "]}");
    arena_dispose(&g.arena);
}
