/*
 * mesh_page: routes, sampler thread and embedded files of /mesh; see
 * mesh_page.h.
 */
#include "mesh_page.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "collector.h"
#include "log.h"
#include "mesh_graph.h"
#include "mesh_history.h"
#include "metric_store.h"
#include "mono.h"
#include "prom_text.h"
#include "span_store.h"
#include "xalloc.h"

#define MESH_VISIT_SERIES 4096u           /* series visited per hold of the metric store's lock */
#define MESH_RESAMPLE_MS 1000u            /* an /api/mesh request samples again when the last sample is older */
#define MESH_DEPS_ARENA_LIMIT (64u << 20) /* dependency links of one answer; past it, no trace edges */
#define MESH_DEFAULT_WINDOW "5m"
#define MESH_CACHED 8u /* answers kept, one per window asked; each serves until the next sample */

/* An /api/mesh answer, served again to whoever asks the same window before the next sample. */
typedef struct mesh_cached {
    char window[16];   /* as asked; "" = empty slot */
    uint64_t built_ms; /* monotonic */
    buf_t body;
} mesh_cached_t;

struct mesh_page {
    collector_t *c;
    int enabled; /* roles all and store */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    pthread_t thread;
    int started;
    int stop;
    mesh_history_t *history;
    uint64_t sampled_ms;     /* monotonic */
    uint64_t sample_cpu_ns;  /* summed over samples */
    uint64_t last_sample_ns; /* wall */
    mesh_cached_t cache[MESH_CACHED];
    uint64_t answers_built, answers_cached;
};

/* The page's own files: no inline script or style, nothing from elsewhere. */
static const char *const page_headers[] = {
    "Content-Security-Policy",
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options",
    "nosniff",
    "Referrer-Policy",
    "no-referrer",
    "Cache-Control",
    "no-cache",
    NULL,
};

static const char *const api_headers[] = {
    "Cache-Control", "no-store", "X-Content-Type-Options", "nosniff", NULL,
};

/* ------------------------------------------------------------------ */
/* sampling                                                            */

/* Read the whole metric store into the history, a part at a time. Called with m->mu held. */
static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sample_locked(mesh_page_t *m)
{
    uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), wall0 = clock_ns(CLOCK_MONOTONIC);
    uint64_t now = mono_now_ms();
    metric_render_cursor_t cur = {0};
    mesh_history_sample_begin(m->history, now);
    while (metric_store_visit_chunk(m->c->metrics, &cur, mesh_history_sample_series, m->history, MESH_VISIT_SERIES,
                                    collector_now_ms()) == 1)
        ;
    metric_render_cursor_dispose(&cur);
    mesh_history_sample_end(m->history);
    m->sampled_ms = now;
    m->sample_cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    m->last_sample_ns = clock_ns(CLOCK_MONOTONIC) - wall0;
}

static void *sampler_main(void *arg)
{
    mesh_page_t *m = arg;
    uint64_t interval = mesh_history_interval_ms(m->history);
    pthread_mutex_lock(&m->mu);
    uint64_t next = m->sampled_ms + interval;
    while (!m->stop) {
        struct timespec at = mono_timespec(next);
        pthread_cond_timedwait(&m->wake, &m->mu, &at);
        uint64_t now = mono_now_ms();
        if (m->stop || now < next)
            continue;
        sample_locked(m);
        mesh_history_tick(m->history);
        next += interval;
        if (next <= now) /* fell behind (a stopped machine): no burst of catch-up snapshots */
            next = now + interval;
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

mesh_page_t *mesh_page_create(collector_t *c)
{
    mesh_page_t *m = xcalloc(1, sizeof(*m));
    m->c = c;
    m->enabled = c->cfg.role_id == ROLE_ALL || c->cfg.role_id == ROLE_STORE;
    if (!m->enabled)
        return m;
    pthread_mutex_init(&m->mu, NULL);
    mono_cond_init(&m->wake);
    mesh_history_config_t hc = {.max_rows = (uint32_t)c->cfg.mesh_max_rows,
                                .max_series = (uint32_t)c->cfg.mesh_max_series};
    m->history = mesh_history_create(&hc);
    pthread_mutex_lock(&m->mu);
    sample_locked(m);
    mesh_history_tick(m->history);
    pthread_mutex_unlock(&m->mu);
    int rc = pthread_create(&m->thread, NULL, sampler_main, m);
    if (rc != 0)
        log_fatal("cannot start the /mesh sampler thread: %s", strerror(rc));
    m->started = 1;
    return m;
}

void mesh_page_destroy(mesh_page_t *m)
{
    if (m == NULL)
        return;
    if (m->started) {
        pthread_mutex_lock(&m->mu);
        m->stop = 1;
        pthread_cond_signal(&m->wake);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    if (m->enabled) {
        for (size_t i = 0; i < MESH_CACHED; i++)
            buf_dispose(&m->cache[i].body);
        mesh_history_destroy(m->history);
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->mu);
    }
    free(m);
}

/* ------------------------------------------------------------------ */
/* /api/mesh                                                           */

/* A window: a whole number and s, m or h ("90s", "5m", "1h"). 0, or -1 when it is not one. */
static int parse_window(const char *s, uint64_t *ms)
{
    uint64_t n = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p) && p - s < 9; p++)
        n = n * 10 + (uint64_t)(*p - '0');
    if (p == s || p[0] == '\0' || p[1] != '\0')
        return -1;
    switch (*p) {
    case 's': *ms = n * 1000; return 0;
    case 'm': *ms = n * 60000; return 0;
    case 'h': *ms = n * 3600000; return 0;
    default: return -1;
    }
}

/* The dependency links of the window ending now into a; none when they do not fit. */
static size_t window_links(mesh_page_t *m, uint64_t now_ms, uint64_t window_ms, arena_t *a, span_dep_link_t **links)
{
    size_t n = 0;
    if (span_store_dependencies(m->c->store, now_ms, window_ms, a, links, &n) != 0) {
        log_warn("/api/mesh: the dependency links of the last %llu ms pass %u bytes; the graph has no trace edges",
                 (unsigned long long)window_ms, MESH_DEPS_ARENA_LIMIT);
        return 0;
    }
    return n;
}

/*
 * The answer kept for window w when it is as fresh as building one would be:
 * built from the last sample, which is younger than MESH_RESAMPLE_MS (else a
 * request samples again). NULL otherwise. Called with m->mu held.
 */
static mesh_cached_t *cached(mesh_page_t *m, const char *w, uint64_t mono_ms)
{
    if (mono_ms - m->sampled_ms >= MESH_RESAMPLE_MS)
        return NULL;
    for (size_t i = 0; i < MESH_CACHED; i++) {
        mesh_cached_t *e = &m->cache[i];
        if (e->window[0] != '\0' && strcmp(e->window, w) == 0)
            return e->built_ms >= m->sampled_ms ? e : NULL;
    }
    return NULL;
}

/* Keep an answer for window w, in its slot or the oldest one. Called with m->mu held. */
static void keep(mesh_page_t *m, const char *w, uint64_t mono_ms, const char *body, size_t len)
{
    if (strlen(w) >= sizeof(m->cache[0].window))
        return;
    mesh_cached_t *e = &m->cache[0];
    for (size_t i = 0; i < MESH_CACHED; i++) {
        if (strcmp(m->cache[i].window, w) == 0) {
            e = &m->cache[i];
            break;
        }
        if (m->cache[i].built_ms < e->built_ms || m->cache[i].window[0] == '\0')
            e = &m->cache[i];
    }
    snprintf(e->window, sizeof(e->window), "%s", w);
    e->built_ms = mono_ms;
    e->body.len = 0;
    buf_append(&e->body, body, len);
}

static void api_mesh(mesh_page_t *m, const http_request_t *req, http_response_t *resp)
{
    const char *w = http_query(req, "window");
    if (w == NULL || *w == '\0')
        w = MESH_DEFAULT_WINDOW;
    uint64_t window_ms = 0, min_ms = 2 * (uint64_t)mesh_history_interval_ms(m->history);
    uint64_t max_ms = mesh_history_max_window_ms(m->history);
    if (parse_window(w, &window_ms) != 0 || window_ms < min_ms || window_ms > max_ms) {
        http_respond_text(
            resp, 400,
            "window should be a whole number of s, m or h from %llus to %llum (1m, 5m, 15m, 1h...), not \"%.64s\"",
            (unsigned long long)(min_ms / 1000), (unsigned long long)(max_ms / 60000), w);
        resp->headers = api_headers;
        return;
    }
    buf_t *b = http_respond_json(resp, 200);
    resp->headers = api_headers;
    pthread_mutex_lock(&m->mu);
    mesh_cached_t *hit = cached(m, w, mono_now_ms());
    if (hit != NULL) { /* many viewers of one window: one answer a sample */
        buf_append(b, hit->body.data, hit->body.len);
        m->answers_cached++;
        pthread_mutex_unlock(&m->mu);
        return;
    }
    pthread_mutex_unlock(&m->mu);

    uint64_t now_ms = collector_now_ms();
    arena_t a;
    arena_init(&a, MESH_DEPS_ARENA_LIMIT);
    span_dep_link_t *links = NULL;
    size_t n_links = window_links(m, now_ms, window_ms, &a, &links);

    mesh_graph_opts_t o = {.window = w,
                           .window_ms = window_ms,
                           .generated_ms = now_ms,
                           .max_nodes = (uint32_t)m->c->cfg.mesh_max_nodes,
                           .max_edges = (uint32_t)m->c->cfg.mesh_max_edges,
                           .zipkin_ui = m->c->cfg.mesh_zipkin_ui};
    mesh_window_t win;
    mesh_history_stats_t st;
    pthread_mutex_lock(&m->mu);
    uint64_t mono = mono_now_ms();
    if (mono - m->sampled_ms >= MESH_RESAMPLE_MS)
        sample_locked(m);
    mesh_history_window(m->history, window_ms, &win);
    mesh_history_stats(m->history, &st);
    size_t at = b->len;
    mesh_graph_json(&win, links, n_links, &st, &o, b);
    m->answers_built++;
    keep(m, w, mono, b->data + at, b->len - at);
    pthread_mutex_unlock(&m->mu);
    mesh_window_dispose(&win);
    arena_dispose(&a);
}

/* ------------------------------------------------------------------ */
/* the page's files                                                    */

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && strcmp(name + n - e, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

static const mesh_asset_t *asset_find(const char *name)
{
    for (size_t i = 0; i < mesh_assets_count; i++)
        if (strcmp(mesh_assets[i].name, name) == 0)
            return &mesh_assets[i];
    return NULL;
}

static void serve_asset(const char *name, const char *path, http_response_t *resp)
{
    const mesh_asset_t *f = asset_find(name);
    if (f == NULL) {
        http_respond_text(resp, 404, "no route for %s", path);
        return;
    }
    resp->status = 200;
    resp->content_type = content_type(f->name);
    buf_append(&resp->body, f->data, f->len);
    resp->headers = page_headers;
}

/* ------------------------------------------------------------------ */
/* routing                                                             */

int mesh_page_handle(mesh_page_t *m, const http_request_t *req, http_response_t *resp)
{
    const char *p = req->path;
    int api = strcmp(p, "/api/mesh") == 0;
    if (m == NULL || (!api && strcmp(p, "/mesh") != 0 && strncmp(p, "/mesh/", 6) != 0))
        return 0;
    if (strcmp(req->method, "OPTIONS") == 0)
        return 0;
    resp->route = api ? "/api/mesh" : strcmp(p, "/mesh") == 0 || strcmp(p, "/mesh/") == 0 ? "/mesh" : "/mesh/*";
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_respond_text(resp, 405, "method %s not allowed on %s", req->method, p);
        return 1;
    }
    if (!m->enabled) {
        http_respond_text(resp, 404,
                          "%s: the mesh graph is built from the collector's own metric and trace stores, and role %s "
                          "keeps none; open it on a collector of role all or store",
                          p, m->c->cfg.role);
        return 1;
    }
    if (api)
        api_mesh(m, req, resp);
    else
        serve_asset(p[5] == '\0' || p[6] == '\0' ? "index.html" : p + 6, p, resp);
    return 1;
}

/* ------------------------------------------------------------------ */
/* its own series                                                      */

static void write_one(buf_t *b, const char *name, enum prom_type type, const char *help, double v, int om)
{
    prom_write_family_header(b, name, type, help, strlen(help), NULL, om);
    prom_write_sample(b, name, type == PROM_COUNTER ? "_total" : "", NULL, 0, NULL, NULL, v, NULL, om);
}

void mesh_page_render_metrics(mesh_page_t *m, buf_t *b, int om)
{
    if (m == NULL || !m->enabled)
        return;
    mesh_history_stats_t st;
    pthread_mutex_lock(&m->mu);
    mesh_history_stats(m->history, &st);
    uint64_t cpu_ns = m->sample_cpu_ns, last_ns = m->last_sample_ns;
    uint64_t built = m->answers_built, cached_n = m->answers_cached;
    pthread_mutex_unlock(&m->mu);
    write_one(b, "outrider_mesh_samples", PROM_COUNTER,
              "Samples of the metric store taken for the service graph (/mesh), every 5 s and on demand",
              (double)st.samples, om);
    write_one(b, "outrider_mesh_sample_cpu_seconds", PROM_COUNTER, "CPU time spent taking those samples",
              (double)cpu_ns / 1e9, om);
    write_one(b, "outrider_mesh_last_sample_seconds", PROM_GAUGE, "How long the last sample took (wall time)",
              (double)last_ns / 1e9, om);
    const char *name = "outrider_mesh_answers";
    const char *help = "/api/mesh answers, built or served again (the same window before the next sample)";
    prom_write_family_header(b, name, PROM_COUNTER, help, strlen(help), NULL, om);
    metric_label_t how = {STR_LIT("how"), STR_LIT("built")};
    prom_write_sample(b, name, "_total", &how, 1, NULL, NULL, (double)built, NULL, om);
    how.value = STR_LIT("cached");
    prom_write_sample(b, name, "_total", &how, 1, NULL, NULL, (double)cached_n, NULL, om);
    write_one(b, "outrider_mesh_rows", PROM_GAUGE, "Caller/callee/version rows the service graph's history holds",
              (double)st.rows, om);
    write_one(b, "outrider_mesh_rows_limit", PROM_GAUGE, "The most rows outrider_mesh_rows may reach (mesh.maxRows)",
              (double)st.max_rows, om);
    write_one(b, "outrider_mesh_series", PROM_GAUGE, "istio_* series the service graph followed at the last sample",
              (double)st.series, om);
    write_one(b, "outrider_mesh_bytes", PROM_GAUGE, "Memory the service graph's history holds", (double)st.bytes, om);
    write_one(b, "outrider_mesh_series_limit", PROM_GAUGE,
              "The most series outrider_mesh_series may reach (mesh.maxSeries)", (double)st.max_series, om);
    name = "outrider_mesh_dropped";
    help = "What the service graph left out for its limits: increases of series without a row (rows), "
           "series untracked at a sample (series, per sample), histograms it could not read (histograms)";
    prom_write_family_header(b, name, PROM_COUNTER, help, strlen(help), NULL, om);
    const struct {
        const char *what;
        uint64_t n;
    } d[] = {{"rows", st.rows_dropped}, {"series", st.series_dropped}, {"histograms", st.histograms_skipped}};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        metric_label_t l = {STR_LIT("what"), {d[i].what, (uint32_t)strlen(d[i].what)}};
        prom_write_sample(b, name, "_total", &l, 1, NULL, NULL, (double)d[i].n, NULL, om);
    }
}
