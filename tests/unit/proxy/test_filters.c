/*
 * Unit tests for the exchange filters (filter.h) through their public
 * functions: filter_rl_local, filter_rl_global (and _cancel), filter_fault
 * (and _cancel), filter_mirror (and _body, _end, _cancel).
 *
 * Each test loads a real configuration (Proxy, ServiceEntries, a
 * DestinationRule with subsets, a VirtualService whose routes carry fault
 * and mirror settings, RateLimit documents with local and global blocks),
 * builds the runtime and a view on a real libuv loop, routes the request
 * with router_route and hands the filter a test exchange whose reply,
 * resume and over callbacks record what they were given. Global limits run
 * against a real redis-server started on a free loopback port (missing
 * redis-server fails the tests), a bound port nobody listens on
 * (unreachable) and a socket that accepts connections but never answers
 * (timeouts). Mirrors go to a listener on the test's loop, which answers
 * 200 to each complete request. Every test ends with the view retired and
 * the loop closed (no handle left); ASan checks the memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "mono.h"
#include "proxy/config.h"
#include "proxy/filter_fault.h"
#include "proxy/filter_mirror.h"
#include "proxy/filter_ratelimit.h"
#include "proxy/rlglobal.h"
#include "proxy/router.h"
#include "proxy/runtime.h"
#include "proxy/telemetry.h"
#include "redis_harness.h"

/* ---- processes and sockets shared by the group ---- */

static int closed_fd = -1; /* bound, never listening: connecting to it is refused */
static uint16_t closed_port;
static int hole_fd = -1; /* listening, never accepting: the kernel completes connects, nothing answers */
static uint16_t hole_port;

/* A socket bound to 127.0.0.1 on a free port (listening when backlog > 0); its port in *port. */
static int bound_socket(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0 ||
        (backlog > 0 && listen(fd, backlog) < 0)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    closed_fd = bound_socket(0, &closed_port);
    hole_fd = bound_socket(64, &hole_port);
    uint16_t p;
    int fd = bound_socket(0, &p);
    if (closed_fd < 0 || hole_fd < 0 || fd < 0)
        return -1;
    close(fd);
    redis_port = p;
    return redis_start();
}

static int group_teardown(void **state)
{
    (void)state;
    redis_kill();
    if (closed_fd >= 0)
        close(closed_fd);
    if (hole_fd >= 0)
        close(hole_fd);
    return 0;
}

/* ---- the configuration ---- */

/*
 * {SINK}: the port of the mirror listener (ratings' endpoint), {CLOSED}: a
 * port nobody listens on (reviews' and details' endpoints). The routes are
 * tried in order: the header match first, then exact paths, then canary.
 */
static const char *const base = "apiVersion: outrider.io/v1alpha1\n"
                                "kind: Proxy\n"
                                "metadata: {name: pp, namespace: default}\n"
                                "spec: {}\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: ServiceEntry\n"
                                "metadata: {name: reviews}\n"
                                "spec:\n"
                                "  hosts: [reviews]\n"
                                "  ports: [{number: 9080, name: http}]\n"
                                "  resolution: STATIC\n"
                                "  endpoints: [{address: 127.0.0.1, ports: {http: {CLOSED}}, labels: {version: v1}}]\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: ServiceEntry\n"
                                "metadata: {name: ratings}\n"
                                "spec:\n"
                                "  hosts: [ratings]\n"
                                "  ports: [{number: 9080, name: http}]\n"
                                "  resolution: STATIC\n"
                                "  endpoints: [{address: 127.0.0.1, ports: {http: {SINK}}}]\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: ServiceEntry\n"
                                "metadata: {name: details}\n"
                                "spec:\n"
                                "  hosts: [details]\n"
                                "  ports: [{number: 9080, name: http}]\n"
                                "  resolution: STATIC\n"
                                "  endpoints: [{address: 127.0.0.1, ports: {http: {CLOSED}}}]\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: DestinationRule\n"
                                "metadata: {name: reviews}\n"
                                "spec:\n"
                                "  host: reviews\n"
                                "  subsets:\n"
                                "  - {name: v1, labels: {version: v1}}\n"
                                "  - {name: none, labels: {version: v9}}\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: VirtualService\n"
                                "metadata: {name: reviews}\n"
                                "spec:\n"
                                "  hosts: [reviews]\n"
                                "  http:\n"
                                "  - name: jason\n"
                                "    match: [{headers: {end-user: {exact: jason}}}]\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "  - name: abort\n"
                                "    match: [{uri: {exact: /abort}}]\n"
                                "    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "  - name: delay\n"
                                "    match: [{uri: {exact: /delay}}]\n"
                                "    fault: {delay: {fixedDelay: 50ms, percentage: {value: 100}}}\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "  - name: delay-abort\n"
                                "    match: [{uri: {exact: /delay-abort}}]\n"
                                "    fault:\n"
                                "      delay: {fixedDelay: 50ms, percentage: {value: 100}}\n"
                                "      abort: {httpStatus: 503, percentage: {value: 100}}\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "  - name: never\n"
                                "    match: [{uri: {exact: /never}}]\n"
                                "    fault:\n"
                                "      delay: {fixedDelay: 50ms, percentage: {value: 0}}\n"
                                "      abort: {httpStatus: 500, percentage: {value: 0}}\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "  - name: quarter\n"
                                "    match: [{uri: {exact: /quarter}}]\n"
                                "    fault: {abort: {httpStatus: 429, percentage: {value: 25}}}\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "  - name: mirror\n"
                                "    match: [{uri: {prefix: /mirror/}}]\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "    mirror: {host: ratings}\n"
                                "    mirrorPercentage: {value: 100}\n"
                                "  - name: mirror-off\n"
                                "    match: [{uri: {exact: /mirror-off}}]\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "    mirror: {host: ratings}\n"
                                "    mirrorPercentage: {value: 0}\n"
                                "  - name: mirror-empty\n"
                                "    match: [{uri: {exact: /mirror-empty}}]\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "    mirror: {host: reviews, subset: none}\n"
                                "  - name: mirror-closed\n"
                                "    match: [{uri: {exact: /mirror-closed}}]\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "    mirror: {host: details}\n"
                                "  - name: mirrors\n"
                                "    match: [{uri: {exact: /mirrors}}]\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n"
                                "    mirrors:\n"
                                "    - {destination: {host: ratings}}\n"
                                "    - {destination: {host: reviews, subset: none}}\n"
                                "    - {destination: {host: details}, percentage: {value: 0}}\n"
                                "  - name: canary\n"
                                "    route: [{destination: {host: reviews, subset: v1}}]\n";

/* Replace {SINK}, {CLOSED}, {REDIS}, {HOLE} in text (malloc'd result). */
static char *subst(const char *text, uint16_t sink_port)
{
    static const char *const names[] = {"{SINK}", "{CLOSED}", "{REDIS}", "{HOLE}"};
    uint16_t ports[] = {sink_port, closed_port, redis_port, hole_port};
    size_t cap = strlen(text) + 1024, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = text; *p;) {
        bool done = false;
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !done; i++) {
            size_t n = strlen(names[i]);
            if (strncmp(p, names[i], n) == 0) {
                len += (size_t)snprintf(out + len, cap - len, "%u", (unsigned)ports[i]);
                p += n;
                done = true;
            }
        }
        if (!done)
            out[len++] = *p++;
        assert_true(len + 8 < cap);
    }
    out[len] = '\0';
    return out;
}

typedef struct msgs {
    int n_err, n_warn;
    char err[8][512];
} msgs_t;

static void on_error(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    if (c->n_err < 8)
        snprintf(c->err[c->n_err], sizeof c->err[0], "%s", m);
    c->n_err++;
}

static void on_warning(void *ctx, const char *m)
{
    (void)m;
    ((msgs_t *)ctx)->n_warn++;
}

/* base + extra with the ports filled in; NULL with the messages in *m when it does not load. */
static proxy_config_t *config_load(const char *extra, uint16_t sink_port, msgs_t *m)
{
    char *b = subst(base, sink_port), *x = subst(extra, sink_port);
    size_t len = strlen(b) + strlen(x) + 8;
    char *text = malloc(len);
    assert_non_null(text);
    snprintf(text, len, "%s%s%s", b, *x ? "---\n" : "", x);
    memset(m, 0, sizeof *m);
    proxy_config_t *cfg = proxy_config_load_string("filters.yaml", text, strlen(text), on_error, on_warning, m);
    free(text);
    free(b);
    free(x);
    return cfg;
}

/* ---- the environment: a loop, the runtime, a view, a Redis client ---- */

typedef struct env {
    uv_loop_t loop;
    uv_timer_t guard; /* ticks while run_until runs, so that UV_RUN_ONCE returns */
    runtime_t *rt;
    runtime_view_t *view;
    rlg_t *rlg;
    uint64_t rng;
    buf_t scratch; /* the exchange's scratch bytes (conn.c lends its `out`) */
} env_t;

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* The loop alone (a mirror listener needs it before the configuration naming its port). */
static void env_init(env_t *e)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->guard);
    e->rng = 0x2545f4914f6cdd1dull;
}

static void env_load(env_t *e, const char *extra, uint16_t sink_port)
{
    msgs_t m;
    proxy_config_t *cfg = config_load(extra, sink_port, &m);
    for (int i = 0; cfg == NULL && i < m.n_err && i < 8; i++)
        fprintf(stderr, "  error: %s\n", m.err[i]);
    assert_non_null(cfg);
    char err[256] = "";
    e->rt = runtime_create(cfg, err, sizeof err);
    if (e->rt == NULL)
        fprintf(stderr, "runtime_create: %s\n", err);
    assert_non_null(e->rt);
    e->view = runtime_view_create(e->rt, &e->loop);
    e->rlg = rlg_create(&e->loop);
}

static void env_dispose(env_t *e)
{
    buf_dispose(&e->scratch);
    rlg_destroy(e->rlg);
    runtime_view_retire(e->view);
    runtime_unref(e->rt);
    uv_close((uv_handle_t *)&e->guard, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

/* Run the loop until cond holds or ms pass (cond is evaluated between iterations). */
#define RUN_UNTIL(e, cond, ms)                                                                                         \
    do {                                                                                                               \
        uv_timer_start(&(e)->guard, tick, 5, 5);                                                                       \
        uv_update_time(&(e)->loop);                                                                                    \
        uint64_t end_ = uv_now(&(e)->loop) + (ms);                                                                     \
        while (!(cond) && uv_now(&(e)->loop) < end_)                                                                   \
            uv_run(&(e)->loop, UV_RUN_ONCE);                                                                           \
        uv_timer_stop(&(e)->guard);                                                                                    \
    } while (0)

#define RUN_FOR(e, ms) RUN_UNTIL(e, false, ms)

/* The RateLimit document named name. */
static size_t doc_index(const env_t *e, const char *name)
{
    for (size_t i = 0; i < e->rt->cfg->n_rate_limits; i++)
        if (strcmp(e->rt->cfg->rate_limits[i].meta.name, name) == 0)
            return i;
    fail_msg("no RateLimit %s", name);
    return 0;
}

static unsigned long long rl_count(const env_t *e, const char *doc, enum runtime_rl_kind kind, enum runtime_rl_result r)
{
    return atomic_load(&e->rt->buckets[doc_index(e, doc)].counts[kind][r]);
}

/* Assert the four counters of one block of a document. */
static void assert_rl_counts(const env_t *e, const char *doc, enum runtime_rl_kind kind, unsigned long long allowed,
                             unsigned long long limited, unsigned long long shadow, unsigned long long error)
{
    assert_int_equal(rl_count(e, doc, kind, RL_ALLOWED), allowed);
    assert_int_equal(rl_count(e, doc, kind, RL_LIMITED), limited);
    assert_int_equal(rl_count(e, doc, kind, RL_SHADOW_LIMITED), shadow);
    assert_int_equal(rl_count(e, doc, kind, RL_ERROR), error);
}

/* The cluster of ServiceEntry `service` and subset (NULL: all endpoints). */
static const router_cluster_t *cluster_of(const env_t *e, const char *service, const char *subset)
{
    for (size_t i = 0; i < router_cluster_count(e->rt->router); i++) {
        const router_cluster_t *cl = router_cluster(e->rt->router, i);
        if (cl->service == NULL || strcmp(cl->service->meta.name, service) != 0)
            continue;
        if ((subset == NULL) == (cl->subset == NULL) && (subset == NULL || strcmp(cl->subset->name, subset) == 0))
            return cl;
    }
    fail_msg("no cluster %s/%s", service, subset ? subset : "-");
    return NULL;
}

static unsigned long long mirror_count(const env_t *e, const char *service, const char *subset,
                                       enum runtime_cluster_counter k)
{
    return atomic_load(&e->rt->counters[cluster_of(e, service, subset)->index].n[k]);
}

/* ---- the test exchange ---- */

typedef struct tx {
    filter_exchange_t x; /* first: the callbacks cast back */
    router_request_t req;
    router_decision_t d;
    http1_header_t headers[4];
    bool is_over; /* what over() answers */
    int replies, resumes, overs;
    int status;
    uint32_t flags;
    char text[128];
    size_t n_fields;
    char names[FILTER_REPLY_FIELDS][64], values[FILTER_REPLY_FIELDS][64];
    uint64_t reply_ms, resume_ms; /* uv_now at the call */
} tx_t;

static void copy_str(char *dst, size_t cap, str_t s)
{
    assert_true(s.len < cap);
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
}

static void tx_reply(filter_exchange_t *x, const filter_reply_t *r)
{
    tx_t *t = (tx_t *)x;
    t->replies++;
    t->status = r->status;
    t->flags = r->flags;
    snprintf(t->text, sizeof t->text, "%s", r->text != NULL ? r->text : "(null)");
    t->n_fields = r->n_fields;
    for (size_t i = 0; i < r->n_fields && i < FILTER_REPLY_FIELDS; i++) {
        copy_str(t->names[i], sizeof t->names[i], r->fields[i].name);
        copy_str(t->values[i], sizeof t->values[i], r->fields[i].value);
    }
    t->reply_ms = uv_now(x->loop);
}

static void tx_resume(filter_exchange_t *x)
{
    tx_t *t = (tx_t *)x;
    t->resumes++;
    t->resume_ms = uv_now(x->loop);
}

static bool tx_over(filter_exchange_t *x)
{
    tx_t *t = (tx_t *)x;
    t->overs++;
    return t->is_over;
}

/*
 * A request (target: path and optional query; one optional header field)
 * routed by the environment's router, as conn.c fills its exchange.
 */
static void tx_init(tx_t *t, env_t *e, const char *method, const char *authority, const char *target, const char *hname,
                    const char *hvalue)
{
    memset(t, 0, sizeof *t);
    const char *q = strchr(target, '?');
    t->req.method = (str_t){method, (uint32_t)strlen(method)};
    t->req.path = (str_t){target, (uint32_t)(q != NULL ? (size_t)(q - target) : strlen(target))};
    t->req.query = q != NULL ? (str_t){q + 1, (uint32_t)strlen(q + 1)} : (str_t){"", 0};
    t->req.authority = (str_t){authority, (uint32_t)strlen(authority)};
    uint32_t n = 0;
    t->headers[n++] = (http1_header_t){{"Host", 4}, {authority, (uint32_t)strlen(authority)}};
    if (hname != NULL)
        t->headers[n++] = (http1_header_t){{hname, (uint32_t)strlen(hname)}, {hvalue, (uint32_t)strlen(hvalue)}};
    t->req.headers = t->headers;
    t->req.header_count = n;
    t->req.source_ip = "10.0.0.7";
    uv_update_time(&e->loop); /* as at the start of the loop iteration a request arrives in */
    router_route(e->rt->router, &t->req, 0, &t->d);
    assert_int_equal(t->d.action, ROUTER_FORWARD);
    t->x = (filter_exchange_t){.req = &t->req,
                               .d = &t->d,
                               .cl = t->d.cluster,
                               .view = e->view,
                               .loop = &e->loop,
                               .rng = &e->rng,
                               .rlg = e->rlg,
                               .peer = "10.0.0.7",
                               .scratch = &e->scratch,
                               .reply = tx_reply,
                               .resume = tx_resume,
                               .over = tx_over};
}

static void assert_nothing_called(const tx_t *t)
{
    assert_int_equal(t->replies, 0);
    assert_int_equal(t->resumes, 0);
}

/* ---- filter_rl_local ---- */

#define LOCAL_SHADOW                                                                                                   \
    "apiVersion: outrider.io/v1alpha1\n"                                                                               \
    "kind: RateLimit\n"                                                                                                \
    "metadata: {name: l-shadow}\n"                                                                                     \
    "spec: {hosts: [ratings], local: {maxTokens: 1, fillInterval: 60s, shadow: true}}\n"
#define LOCAL_DOCS                                                                                                     \
    "apiVersion: outrider.io/v1alpha1\n"                                                                               \
    "kind: RateLimit\n"                                                                                                \
    "metadata: {name: l-host}\n"                                                                                       \
    "spec: {hosts: [reviews], local: {maxTokens: 3, fillInterval: 60s}}\n"                                             \
    "---\n" LOCAL_SHADOW
#define LOCAL_JASON                                                                                                    \
    "apiVersion: outrider.io/v1alpha1\n"                                                                               \
    "kind: RateLimit\n"                                                                                                \
    "metadata: {name: l-jason}\n"                                                                                      \
    "spec: {hosts: [reviews], routes: [jason], local: {maxTokens: 2, tokensPerFill: 2, fillInterval: 60s}}\n"

/* ceil(ms / 1000) */
static uint64_t ceil_s(uint64_t ms)
{
    return (ms + 999) / 1000;
}

/* One request through filter_rl_local that must be refused with the bucket of doc: limit, remaining 0, reset. */
static void expect_local_limited(env_t *e, tx_t *t, const char *doc, const char *limit)
{
    const runtime_bucket_t *b = &e->rt->buckets[doc_index(e, doc)];
    uint64_t fill = e->rt->cfg->rate_limits[doc_index(e, doc)].local.fill_interval_ms;
    uint64_t next = atomic_load(&b->last_fill_ms) + fill;
    uint64_t before = mono_now_ms();
    assert_int_equal(filter_rl_local(&t->x), FILTER_REPLIED);
    uint64_t after = mono_now_ms();
    assert_int_equal(t->replies, 1);
    assert_int_equal(t->resumes, 0);
    assert_int_equal(t->status, 429);
    assert_int_equal(t->flags, TELE_RF_RL);
    assert_string_equal(t->text, "local rate limited\n");
    assert_int_equal(t->n_fields, 3);
    assert_string_equal(t->names[0], "x-ratelimit-limit");
    assert_string_equal(t->values[0], limit);
    assert_string_equal(t->names[1], "x-ratelimit-remaining");
    assert_string_equal(t->values[1], "0");
    assert_string_equal(t->names[2], "x-ratelimit-reset");
    /* seconds to the next fill, rounded up, as seen between before and after */
    uint64_t reset = strtoull(t->values[2], NULL, 10);
    assert_true(reset >= ceil_s(next - after) && reset <= ceil_s(next - before));
    assert_true(reset >= 1 && reset <= 60);
}

static void test_rl_local_bucket(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, LOCAL_DOCS, closed_port);
    for (int i = 0; i < 3; i++) {
        tx_t t;
        tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
        assert_int_equal(filter_rl_local(&t.x), FILTER_CONTINUE);
        assert_nothing_called(&t);
        assert_int_equal(atomic_load(&e.rt->buckets[doc_index(&e, "l-host")].tokens), 2 - i);
    }
    assert_rl_counts(&e, "l-host", RL_LOCAL, 3, 0, 0, 0);
    for (int i = 0; i < 2; i++) {
        tx_t t;
        tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
        expect_local_limited(&e, &t, "l-host", "3");
        assert_int_equal(t.overs, 0);
        assert_rl_counts(&e, "l-host", RL_LOCAL, 3, (unsigned long long)i + 1, 0, 0);
    }
    assert_int_equal(atomic_load(&e.rt->buckets[doc_index(&e, "l-host")].tokens), 0);
    /* the global block of the document is untouched */
    assert_rl_counts(&e, "l-host", RL_GLOBAL, 0, 0, 0, 0);
    env_dispose(&e);
}

/* A document naming the route wins over the one for the whole host, in either order. */
static void test_rl_local_route_wins(void **state)
{
    (void)state;
    const char *const orders[] = {LOCAL_DOCS "---\n" LOCAL_JASON, LOCAL_JASON "---\n" LOCAL_DOCS};
    for (size_t o = 0; o < 2; o++) {
        env_t e;
        env_init(&e);
        env_load(&e, orders[o], closed_port);
        for (int i = 0; i < 2; i++) {
            tx_t t;
            tx_init(&t, &e, "GET", "reviews:9080", "/other", "end-user", "jason");
            assert_string_equal(t.d.route->name, "jason");
            assert_int_equal(filter_rl_local(&t.x), FILTER_CONTINUE);
            assert_nothing_called(&t);
        }
        tx_t t;
        tx_init(&t, &e, "GET", "reviews:9080", "/other", "end-user", "jason");
        expect_local_limited(&e, &t, "l-jason", "2");
        assert_rl_counts(&e, "l-jason", RL_LOCAL, 2, 1, 0, 0);
        assert_rl_counts(&e, "l-host", RL_LOCAL, 0, 0, 0, 0);
        /* the other routes of the host still have the host's 3 tokens */
        for (int i = 0; i < 3; i++) {
            tx_init(&t, &e, "GET", "reviews:9080", "/other", "end-user", "bob");
            assert_string_equal(t.d.route->name, "canary");
            assert_int_equal(filter_rl_local(&t.x), FILTER_CONTINUE);
            assert_nothing_called(&t);
        }
        tx_init(&t, &e, "GET", "reviews:9080", "/abort", NULL, NULL);
        expect_local_limited(&e, &t, "l-host", "3");
        assert_rl_counts(&e, "l-host", RL_LOCAL, 3, 1, 0, 0);
        assert_rl_counts(&e, "l-jason", RL_LOCAL, 2, 1, 0, 0);
        env_dispose(&e);
    }
}

static void test_rl_local_shadow(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, LOCAL_DOCS, closed_port);
    for (int i = 0; i < 4; i++) {
        tx_t t;
        tx_init(&t, &e, "GET", "ratings:9080", "/", NULL, NULL);
        assert_null(t.d.route); /* the default route */
        assert_int_equal(filter_rl_local(&t.x), FILTER_CONTINUE);
        assert_nothing_called(&t);
        assert_rl_counts(&e, "l-shadow", RL_LOCAL, 1, 0, (unsigned long long)i, 0);
    }
    assert_rl_counts(&e, "l-host", RL_LOCAL, 0, 0, 0, 0);
    env_dispose(&e);
}

static void test_rl_local_other_host(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, LOCAL_DOCS "---\n" LOCAL_JASON, closed_port);
    for (int i = 0; i < 10; i++) {
        tx_t t;
        tx_init(&t, &e, "GET", "details", "/", "end-user", "jason");
        assert_int_equal(filter_rl_local(&t.x), FILTER_CONTINUE);
        assert_nothing_called(&t);
    }
    assert_rl_counts(&e, "l-host", RL_LOCAL, 0, 0, 0, 0);
    assert_rl_counts(&e, "l-jason", RL_LOCAL, 0, 0, 0, 0);
    assert_rl_counts(&e, "l-shadow", RL_LOCAL, 0, 0, 0, 0);
    assert_int_equal(atomic_load(&e.rt->buckets[doc_index(&e, "l-host")].tokens), 3);
    env_dispose(&e);
}

static void test_rl_no_documents(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, "", closed_port);
    assert_int_equal(e.rt->cfg->n_rate_limits, 0);
    for (int i = 0; i < 5; i++) {
        tx_t t;
        filter_rl_global_t st;
        memset(&st, 0, sizeof st);
        tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
        assert_int_equal(filter_rl_local(&t.x), FILTER_CONTINUE);
        assert_int_equal(filter_rl_global(&t.x, &st), FILTER_CONTINUE);
        assert_nothing_called(&t);
        assert_int_equal(t.overs, 0);
    }
    env_dispose(&e);
}

/* ---- filter_rl_global ---- */

#define GLOBAL_DOC(name, redis, extra, limits)                                                                         \
    "apiVersion: outrider.io/v1alpha1\n"                                                                               \
    "kind: RateLimit\n"                                                                                                \
    "metadata: {name: " name "}\n"                                                                                     \
    "spec:\n"                                                                                                          \
    "  hosts: [reviews]\n"                                                                                             \
    "  global:\n"                                                                                                      \
    "    redis: 127.0.0.1:" redis "\n" extra "    limits:\n" limits

#define LIMIT_USER(per) "    - {name: per-user, key: [{requestHeader: X-User}], requestsPerUnit: " per ", unit: hour}\n"
#define LIMIT_TOTAL(per)                                                                                               \
    "    - {name: total, key: [{destinationService: true}], requestsPerUnit: " per ", unit: hour}\n"

/*
 * The verdict is RLG_ERROR (Redis unreachable): filter_rl_global either
 * has it at once (the connection is in back-off: CONTINUE, or REPLIED with
 * the reply already made) or waits and calls back exactly once. Returns
 * the result it gave.
 */
static enum filter_result global_error(env_t *e, tx_t *t, filter_rl_global_t *st)
{
    memset(st, 0, sizeof *st);
    enum filter_result r = filter_rl_global(&t->x, st);
    if (r == FILTER_WAIT) {
        assert_nothing_called(t);
        assert_true(st->waiting);
        assert_non_null(st->call);
        RUN_UNTIL(e, t->replies + t->resumes > 0, 3000);
        assert_int_equal(t->replies + t->resumes, 1);
        assert_int_equal(t->overs, 1);
    } else {
        assert_int_equal(t->resumes, 0);
        assert_int_equal(t->replies, r == FILTER_REPLIED ? 1 : 0); /* made before the return */
        assert_int_equal(t->overs, 1);
    }
    assert_false(st->waiting);
    assert_null(st->call);
    RUN_FOR(e, 20); /* nothing more comes */
    assert_int_equal(t->replies + t->resumes, r == FILTER_CONTINUE ? 0 : 1);
    return r;
}

/*
 * hiredis' libuv adapter misses a refused connect (rlglobal.c), so the
 * first checks wait for their timeout until the connect times out (1 s);
 * then the connection backs off and checks fail at once. Requests go on
 * until both kinds were seen.
 */
static void unreachable(env_t *e, const char *doc, bool deny)
{
    bool waited = false, at_once = false;
    uint64_t deadline = wall_ms() + 8000;
    for (unsigned long long i = 1; !(waited && at_once) && wall_ms() < deadline; i++) {
        tx_t t;
        filter_rl_global_t st;
        tx_init(&t, e, "GET", "reviews:9080", "/other", NULL, NULL);
        enum filter_result r = global_error(e, &t, &st);
        waited |= r == FILTER_WAIT;
        at_once |= r != FILTER_WAIT;
        if (deny) {
            assert_true(r == FILTER_REPLIED || r == FILTER_WAIT);
            assert_int_equal(t.replies, 1);
            assert_int_equal(t.resumes, 0);
            assert_int_equal(t.status, 500);
            assert_int_equal(t.flags, TELE_RF_RLSE);
            assert_string_equal(t.text, "rate limit service unavailable\n");
            assert_int_equal(t.n_fields, 0);
        } else {
            assert_true(r == FILTER_CONTINUE || r == FILTER_WAIT);
            assert_int_equal(t.replies, 0);
            assert_int_equal(t.resumes, r == FILTER_WAIT ? 1 : 0);
        }
        assert_rl_counts(e, doc, RL_GLOBAL, 0, 0, 0, i);
    }
    assert_true(waited);
    assert_true(at_once);
}

static void test_rl_global_unreachable_allow(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-dead", "{CLOSED}", "    timeout: 200ms\n", LIMIT_TOTAL("5")), closed_port);
    unreachable(&e, "g-dead", false);
    env_dispose(&e);
}

static void test_rl_global_unreachable_deny(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-dead-deny", "{CLOSED}", "    timeout: 200ms\n    failureMode: deny\n", LIMIT_TOTAL("5")),
             closed_port);
    unreachable(&e, "g-dead-deny", true);
    env_dispose(&e);
}

/* Redis accepts the connection and never answers: the call times out, then failureMode allow lets it through. */
static void test_rl_global_timeout(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-hole", "{HOLE}", "    timeout: 200ms\n", LIMIT_TOTAL("5")), closed_port);
    tx_t t;
    filter_rl_global_t st;
    memset(&st, 0, sizeof st);
    tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
    uv_update_time(&e.loop);
    uint64_t t0 = uv_now(&e.loop);
    assert_int_equal(filter_rl_global(&t.x, &st), FILTER_WAIT);
    assert_nothing_called(&t);
    assert_true(st.waiting);
    assert_non_null(st.call);
    RUN_UNTIL(&e, t.resumes > 0, 3000);
    assert_int_equal(t.resumes, 1);
    assert_int_equal(t.replies, 0);
    assert_int_equal(t.overs, 1);
    assert_true(t.resume_ms - t0 >= 200);
    assert_rl_counts(&e, "g-hole", RL_GLOBAL, 0, 0, 0, 1);
    env_dispose(&e);
}

/* Cancelled while waiting (on a Redis that never answers): no callback, even past the timeout. */
static void test_rl_global_cancel_timeout(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-hole-cancel", "{HOLE}", "    timeout: 100ms\n    failureMode: deny\n", LIMIT_TOTAL("5")),
             closed_port);
    tx_t t;
    filter_rl_global_t st;
    memset(&st, 0, sizeof st);
    tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
    assert_int_equal(filter_rl_global(&t.x, &st), FILTER_WAIT);
    filter_rl_global_cancel(&st);
    assert_null(st.call);
    assert_false(st.waiting);
    RUN_FOR(&e, 400);
    assert_nothing_called(&t);
    assert_int_equal(t.overs, 0);
    assert_rl_counts(&e, "g-hole-cancel", RL_GLOBAL, 0, 0, 0, 0);
    /* cancel again (the exchange's end after the filter's): a no-op */
    filter_rl_global_cancel(&st);
    env_dispose(&e);
}

/* Keys "outrider:rl:default/<doc>:<limit>|<values>:<window>" that Redis holds, with their counts. */
static size_t redis_keys(const char *pattern, char keys[][160], long long *counts, size_t cap)
{
    redisContext *rc = redisConnect("127.0.0.1", redis_port);
    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    redisReply *r = redisCommand(rc, "KEYS %s", pattern);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t n = r->elements;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], 160, "%s", r->element[i]->str);
        redisReply *g = redisCommand(rc, "GET %s", keys[i]);
        assert_non_null(g);
        assert_int_equal(g->type, REDIS_REPLY_STRING);
        counts[i] = strtoll(g->str, NULL, 10);
        freeReplyObject(g);
    }
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

/* Sleep past the end of the current hour window when less than need_ms is left of it. */
static void avoid_hour_end(uint64_t need_ms)
{
    uint64_t into = wall_ms() % 3600000;
    if (3600000 - into < need_ms)
        sleep_ms(3600000 - into + 50);
}

/* One request through filter_rl_global on a live Redis: WAIT, then exactly one callback. */
static void global_wait(env_t *e, tx_t *t, filter_rl_global_t *st)
{
    memset(st, 0, sizeof *st);
    assert_int_equal(filter_rl_global(&t->x, st), FILTER_WAIT);
    assert_nothing_called(t);
    assert_true(st->waiting);
    assert_non_null(st->call);
    RUN_UNTIL(e, t->replies + t->resumes > 0, 3000);
    assert_int_equal(t->replies + t->resumes, 1);
    assert_int_equal(t->overs, 1);
    assert_false(st->waiting);
    assert_null(st->call);
}

static void test_rl_global_redis(void **state)
{
    (void)state;
    avoid_hour_end(10000);
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-users", "{REDIS}", "    timeout: 1s\n", LIMIT_USER("3")), closed_port);
    for (int i = 0; i < 3; i++) {
        tx_t t;
        filter_rl_global_t st;
        tx_init(&t, &e, "GET", "reviews:9080", "/other", "x-user", "alice");
        global_wait(&e, &t, &st);
        assert_int_equal(t.resumes, 1);
        assert_rl_counts(&e, "g-users", RL_GLOBAL, (unsigned long long)i + 1, 0, 0, 0);
    }
    for (int i = 0; i < 2; i++) {
        tx_t t;
        filter_rl_global_t st;
        tx_init(&t, &e, "GET", "reviews:9080", "/other", "x-user", "alice");
        uint64_t before = wall_ms();
        global_wait(&e, &t, &st);
        uint64_t after = wall_ms();
        assert_int_equal(t.replies, 1);
        assert_int_equal(t.status, 429);
        assert_int_equal(t.flags, TELE_RF_RL);
        assert_string_equal(t.text, "global rate limited\n");
        assert_int_equal(t.n_fields, 3);
        assert_string_equal(t.names[0], "x-ratelimit-limit");
        assert_string_equal(t.values[0], "3");
        assert_string_equal(t.names[1], "x-ratelimit-remaining");
        assert_string_equal(t.values[1], "0");
        assert_string_equal(t.names[2], "x-ratelimit-reset");
        uint64_t reset = strtoull(t.values[2], NULL, 10);
        assert_true(reset >= ceil_s(3600000 - after % 3600000) && reset <= ceil_s(3600000 - before % 3600000));
        assert_rl_counts(&e, "g-users", RL_GLOBAL, 3, (unsigned long long)i + 1, 0, 0);
    }
    /* another user has its own key */
    tx_t t;
    filter_rl_global_t st;
    tx_init(&t, &e, "GET", "reviews:9080", "/other", "x-user", "bob");
    global_wait(&e, &t, &st);
    assert_int_equal(t.resumes, 1);
    assert_rl_counts(&e, "g-users", RL_GLOBAL, 4, 2, 0, 0);

    /* the keys in Redis: document namespace/name, limit, the header's value, the window; refused ones count */
    char keys[4][160];
    long long counts[4];
    assert_int_equal(redis_keys("outrider:rl:default/g-users:*", keys, counts, 4), 2);
    char want_alice[160], want_bob[160];
    uint64_t idx = wall_ms() / 3600000;
    snprintf(want_alice, sizeof want_alice, "outrider:rl:default/g-users:per-user|alice:%" PRIu64, idx);
    snprintf(want_bob, sizeof want_bob, "outrider:rl:default/g-users:per-user|bob:%" PRIu64, idx);
    int a = strcmp(keys[0], want_alice) == 0 ? 0 : 1;
    assert_string_equal(keys[a], want_alice);
    assert_int_equal(counts[a], 5);
    assert_string_equal(keys[1 - a], want_bob);
    assert_int_equal(counts[1 - a], 1);
    env_dispose(&e);
}

static void test_rl_global_shadow(void **state)
{
    (void)state;
    avoid_hour_end(10000);
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-shadow", "{REDIS}", "    timeout: 1s\n    shadow: true\n", LIMIT_TOTAL("1")),
             closed_port);
    for (int i = 0; i < 3; i++) {
        tx_t t;
        filter_rl_global_t st;
        tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
        global_wait(&e, &t, &st);
        assert_int_equal(t.resumes, 1);
        assert_rl_counts(&e, "g-shadow", RL_GLOBAL, 1, 0, (unsigned long long)i, 0);
    }
    char keys[2][160];
    long long counts[2];
    assert_int_equal(redis_keys("outrider:rl:default/g-shadow:*", keys, counts, 2), 1);
    /* destinationService is the cluster's host: the ServiceEntry's host as written, the destination_service label */
    char want[160];
    snprintf(want, sizeof want, "outrider:rl:default/g-shadow:total|reviews:%" PRIu64, wall_ms() / 3600000);
    assert_string_equal(runtime_destination_service(e.rt, cluster_of(&e, "reviews", "v1")), "reviews");
    assert_string_equal(keys[0], want);
    assert_int_equal(counts[0], 3);
    env_dispose(&e);
}

/*
 * A request header limit without the header: no key, so no Redis call (the
 * document's Redis would never answer: a call would wait) and no count; the
 * same without a global document for the host, and without a Redis client.
 */
static void test_rl_global_missing_entry(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e,
             GLOBAL_DOC("g-hole-user", "{HOLE}", "    timeout: 100ms\n    failureMode: deny\n",
                        LIMIT_USER("1")) "---\n" LOCAL_SHADOW,
             closed_port);
    const char *const hosts[] = {"reviews:9080", "ratings", "details"};
    for (size_t h = 0; h < 3; h++) {
        tx_t t;
        filter_rl_global_t st;
        memset(&st, 0, sizeof st);
        tx_init(&t, &e, "GET", hosts[h], "/other", "x-other", "alice");
        assert_int_equal(filter_rl_global(&t.x, &st), FILTER_CONTINUE);
        assert_nothing_called(&t);
        assert_null(st.call);
        assert_false(st.waiting);
    }
    RUN_FOR(&e, 250);
    assert_rl_counts(&e, "g-hole-user", RL_GLOBAL, 0, 0, 0, 0);
    /* with the header but no Redis client in the worker: through */
    tx_t t;
    filter_rl_global_t st;
    memset(&st, 0, sizeof st);
    tx_init(&t, &e, "GET", "reviews:9080", "/other", "x-user", "alice");
    t.x.rlg = NULL;
    assert_int_equal(filter_rl_global(&t.x, &st), FILTER_CONTINUE);
    assert_nothing_called(&t);
    assert_rl_counts(&e, "g-hole-user", RL_GLOBAL, 0, 0, 0, 0);
    env_dispose(&e);
}

/* Cancelled on a live Redis before the answer: no callback; the next request is served normally. */
static void test_rl_global_cancel_redis(void **state)
{
    (void)state;
    avoid_hour_end(10000);
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-cancel", "{REDIS}", "    timeout: 200ms\n", LIMIT_TOTAL("10")), closed_port);
    tx_t t;
    filter_rl_global_t st;
    memset(&st, 0, sizeof st);
    tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
    assert_int_equal(filter_rl_global(&t.x, &st), FILTER_WAIT);
    filter_rl_global_cancel(&st);
    assert_null(st.call);
    assert_false(st.waiting);
    RUN_FOR(&e, 400);
    assert_nothing_called(&t);
    assert_int_equal(t.overs, 0);
    assert_rl_counts(&e, "g-cancel", RL_GLOBAL, 0, 0, 0, 0);
    tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
    global_wait(&e, &t, &st);
    assert_int_equal(t.resumes, 1);
    assert_rl_counts(&e, "g-cancel", RL_GLOBAL, 1, 0, 0, 0);
    env_dispose(&e);
}

/* The exchange answered (timeout) before the verdict: neither reply nor resume, nothing counted. */
static void test_rl_global_over(void **state)
{
    (void)state;
    avoid_hour_end(10000);
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-over", "{REDIS}", "    timeout: 1s\n", LIMIT_TOTAL("1")), closed_port);
    for (int i = 0; i < 2; i++) { /* allowed, then denied */
        tx_t t;
        filter_rl_global_t st;
        memset(&st, 0, sizeof st);
        tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
        assert_int_equal(filter_rl_global(&t.x, &st), FILTER_WAIT);
        t.is_over = true;
        RUN_UNTIL(&e, t.overs > 0, 3000);
        assert_int_equal(t.overs, 1);
        assert_false(st.waiting);
        assert_null(st.call);
        RUN_FOR(&e, 50);
        assert_nothing_called(&t);
        assert_int_equal(t.overs, 1);
        filter_rl_global_cancel(&st); /* the exchange's end: nothing left to cancel */
    }
    assert_rl_counts(&e, "g-over", RL_GLOBAL, 0, 0, 0, 0);
    char keys[2][160];
    long long counts[2];
    assert_int_equal(redis_keys("outrider:rl:default/g-over:*", keys, counts, 2), 1);
    assert_int_equal(counts[0], 2);
    env_dispose(&e);
}

/*
 * Two limits, one of which the request has no key for: only "total"
 * (2/hour) is counted, and it is what refuses the third request, so the
 * answer's x-ratelimit-limit is that limit's 2, not the 1 of the per-user
 * limit that did not apply (the filter once reported the smallest of the
 * whole document).
 */
static void test_rl_global_limit_header(void **state)
{
    (void)state;
    avoid_hour_end(10000);
    env_t e;
    env_init(&e);
    env_load(&e, GLOBAL_DOC("g-multi", "{REDIS}", "    timeout: 1s\n", LIMIT_USER("1") LIMIT_TOTAL("2")), closed_port);
    for (int i = 0; i < 2; i++) {
        tx_t t;
        filter_rl_global_t st;
        tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
        global_wait(&e, &t, &st);
        assert_int_equal(t.resumes, 1);
    }
    tx_t t;
    filter_rl_global_t st;
    tx_init(&t, &e, "GET", "reviews:9080", "/other", NULL, NULL);
    global_wait(&e, &t, &st);
    assert_int_equal(t.replies, 1);
    assert_int_equal(t.status, 429);
    assert_string_equal(t.values[1], "0");
    assert_rl_counts(&e, "g-multi", RL_GLOBAL, 2, 1, 0, 0);
    assert_string_equal(t.values[0], "2");
    env_dispose(&e);
}

/* ---- filter_fault ---- */

typedef struct fault_env {
    env_t e;
    uv_timer_t timer; /* the exchange's timer, lent for the delay */
    int sentinel;     /* its data pointer points here */
} fault_env_t;

static void fault_init(fault_env_t *f)
{
    env_init(&f->e);
    env_load(&f->e, "", closed_port);
    uv_timer_init(&f->e.loop, &f->timer);
    f->timer.data = &f->sentinel;
}

static void fault_dispose(fault_env_t *f)
{
    uv_close((uv_handle_t *)&f->timer, NULL);
    env_dispose(&f->e);
}

static void test_fault_abort(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    tx_t t;
    filter_fault_t st;
    uint32_t flags = TELE_RF_UO; /* kept: the filter only adds */
    tx_init(&t, &f.e, "GET", "reviews:9080", "/abort", NULL, NULL);
    assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_REPLIED);
    assert_int_equal(t.replies, 1);
    assert_int_equal(t.resumes, 0);
    assert_int_equal(t.overs, 0);
    assert_int_equal(t.status, 418);
    assert_int_equal(t.flags, TELE_RF_FI);
    assert_string_equal(t.text, "fault filter abort\n");
    assert_int_equal(t.n_fields, 0);
    assert_int_equal(flags, TELE_RF_UO);
    assert_false(st.waiting);
    assert_ptr_equal(f.timer.data, &f.sentinel);
    assert_false(uv_is_active((uv_handle_t *)&f.timer));
    filter_fault_cancel(&st); /* the exchange's end: nothing to stop */
    assert_ptr_equal(f.timer.data, &f.sentinel);
    fault_dispose(&f);
}

static void test_fault_delay(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    tx_t t;
    filter_fault_t st;
    uint32_t flags = 0;
    tx_init(&t, &f.e, "GET", "reviews:9080", "/delay", NULL, NULL);
    uv_update_time(&f.e.loop);
    uint64_t t0 = uv_now(&f.e.loop), h0 = uv_hrtime();
    assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_WAIT);
    assert_int_equal(flags, TELE_RF_DI);
    assert_true(st.waiting);
    assert_ptr_not_equal(f.timer.data, &f.sentinel); /* lent */
    assert_true(uv_is_active((uv_handle_t *)&f.timer));
    assert_nothing_called(&t);
    RUN_UNTIL(&f.e, t.resumes > 0, 2000);
    uint64_t h1 = uv_hrtime();
    assert_int_equal(t.resumes, 1);
    assert_int_equal(t.replies, 0);
    assert_int_equal(t.overs, 1);
    assert_true(t.resume_ms - t0 >= 50);
    assert_true(t.resume_ms - t0 < 1000);
    assert_true((h1 - h0) / 1000000 >= 49); /* the loop's clock has 1 ms steps */
    assert_ptr_equal(f.timer.data, &f.sentinel);
    assert_false(st.waiting);
    RUN_FOR(&f.e, 100);
    assert_int_equal(t.resumes, 1);
    assert_int_equal(t.replies, 0);
    filter_fault_cancel(&st); /* after the delay: a no-op */
    assert_ptr_equal(f.timer.data, &f.sentinel);
    fault_dispose(&f);
}

static void test_fault_delay_abort(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    tx_t t;
    filter_fault_t st;
    uint32_t flags = 0;
    tx_init(&t, &f.e, "GET", "reviews:9080", "/delay-abort", NULL, NULL);
    uv_update_time(&f.e.loop);
    uint64_t t0 = uv_now(&f.e.loop);
    assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_WAIT);
    assert_int_equal(flags, TELE_RF_DI);
    assert_nothing_called(&t);
    RUN_UNTIL(&f.e, t.replies > 0, 2000);
    assert_int_equal(t.replies, 1);
    assert_int_equal(t.resumes, 0);
    assert_int_equal(t.overs, 1);
    assert_int_equal(t.status, 503);
    assert_int_equal(t.flags, TELE_RF_FI);
    assert_string_equal(t.text, "fault filter abort\n");
    assert_int_equal(t.n_fields, 0);
    assert_true(t.reply_ms - t0 >= 50);
    assert_ptr_equal(f.timer.data, &f.sentinel);
    RUN_FOR(&f.e, 100);
    assert_int_equal(t.replies, 1);
    assert_int_equal(t.resumes, 0);
    fault_dispose(&f);
}

static void test_fault_zero_percent(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    for (int i = 0; i < 100; i++) {
        tx_t t;
        filter_fault_t st;
        uint32_t flags = 0;
        tx_init(&t, &f.e, "GET", "reviews:9080", "/never", NULL, NULL);
        assert_true(t.d.route->fault.has_delay && t.d.route->fault.has_abort);
        assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_CONTINUE);
        assert_int_equal(flags, 0);
        assert_nothing_called(&t);
        assert_false(st.waiting);
        assert_ptr_equal(f.timer.data, &f.sentinel);
        assert_false(uv_is_active((uv_handle_t *)&f.timer));
    }
    fault_dispose(&f);
}

/* No fault on the route, and the default route (no route at all): through. */
static void test_fault_none(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    const char *const hosts[] = {"reviews:9080", "ratings"};
    for (size_t i = 0; i < 2; i++) {
        tx_t t;
        filter_fault_t st;
        uint32_t flags = 0;
        tx_init(&t, &f.e, "GET", hosts[i], "/other", NULL, NULL);
        assert_true(i == 0 ? t.d.route != NULL : t.d.route == NULL);
        assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_CONTINUE);
        assert_int_equal(flags, 0);
        assert_nothing_called(&t);
        assert_ptr_equal(f.timer.data, &f.sentinel);
    }
    fault_dispose(&f);
}

static void test_fault_cancel(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    tx_t t;
    filter_fault_t st;
    uint32_t flags = 0;
    tx_init(&t, &f.e, "GET", "reviews:9080", "/delay-abort", NULL, NULL);
    assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_WAIT);
    assert_int_equal(flags, TELE_RF_DI);
    RUN_FOR(&f.e, 10);
    filter_fault_cancel(&st);
    assert_false(st.waiting);
    assert_ptr_equal(f.timer.data, &f.sentinel);
    assert_false(uv_is_active((uv_handle_t *)&f.timer));
    RUN_FOR(&f.e, 150);
    assert_nothing_called(&t);
    assert_int_equal(t.overs, 0);
    /* the timer can be lent again */
    tx_init(&t, &f.e, "GET", "reviews:9080", "/delay", NULL, NULL);
    assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_WAIT);
    RUN_UNTIL(&f.e, t.resumes > 0, 2000);
    assert_int_equal(t.resumes, 1);
    assert_ptr_equal(f.timer.data, &f.sentinel);
    fault_dispose(&f);
}

/* The exchange answered during the delay: the timer's end calls neither reply nor resume. */
static void test_fault_over(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    const char *const paths[] = {"/delay", "/delay-abort"};
    for (size_t i = 0; i < 2; i++) {
        tx_t t;
        filter_fault_t st;
        uint32_t flags = 0;
        tx_init(&t, &f.e, "GET", "reviews:9080", paths[i], NULL, NULL);
        assert_int_equal(filter_fault(&t.x, &st, &f.timer, &flags), FILTER_WAIT);
        t.is_over = true;
        RUN_UNTIL(&f.e, t.overs > 0, 2000);
        assert_int_equal(t.overs, 1);
        assert_false(st.waiting);
        assert_ptr_equal(f.timer.data, &f.sentinel);
        RUN_FOR(&f.e, 20);
        assert_nothing_called(&t);
    }
    fault_dispose(&f);
}

/* abort at 25%: about a quarter of the requests, each either answered or through. */
static void test_fault_percentage(void **state)
{
    (void)state;
    fault_env_t f;
    fault_init(&f);
    int replied = 0;
    for (int i = 0; i < 4000; i++) {
        tx_t t;
        filter_fault_t st;
        uint32_t flags = 0;
        tx_init(&t, &f.e, "GET", "reviews:9080", "/quarter", NULL, NULL);
        enum filter_result r = filter_fault(&t.x, &st, &f.timer, &flags);
        assert_true(r == FILTER_CONTINUE || r == FILTER_REPLIED);
        assert_int_equal(t.replies, r == FILTER_REPLIED ? 1 : 0);
        assert_int_equal(t.resumes, 0);
        if (r == FILTER_REPLIED) {
            assert_int_equal(t.status, 429);
            assert_int_equal(t.flags, TELE_RF_FI);
        }
        replied += t.replies;
    }
    assert_true(replied > 800 && replied < 1200);
    fault_dispose(&f);
}

/* ---- filter_mirror ---- */

/* A listener on the loop: one connection kept, its bytes recorded, 200 answered to each complete request. */
typedef struct sink {
    uv_tcp_t server;
    uv_tcp_t client;
    uint16_t port;
    int conns;     /* connections accepted */
    bool open;     /* client handle open */
    bool eof;      /* the peer closed (or reset) the connection */
    int requests;  /* complete requests seen (and answered) */
    size_t parsed; /* bytes of them */
    char data[16384];
    size_t len;
} sink_t;

/* Length of the complete Content-Length framed request at p, or 0. */
static size_t request_len(const char *p, size_t len)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= len && end == NULL; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            end = p + i + 4;
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - p);
    unsigned long long cl = 0;
    for (const char *l = p; l < end;) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        if (strncasecmp(l, "content-length:", 15) == 0)
            cl = strtoull(l + 15, NULL, 10);
        l = nl + 1;
    }
    return len >= head + cl ? head + cl : 0;
}

static void on_sink_write(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void on_sink_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    sink_t *s = h->data;
    *b = uv_buf_init(s->data + s->len, (unsigned)(sizeof s->data - s->len));
}

static void on_client_closed(uv_handle_t *h)
{
    ((sink_t *)h->data)->open = false;
}

static void on_sink_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    sink_t *s = st->data;
    if (n < 0) {
        s->eof = true;
        uv_close((uv_handle_t *)st, on_client_closed);
        return;
    }
    s->len += (size_t)n;
    size_t r;
    while ((r = request_len(s->data + s->parsed, s->len - s->parsed)) > 0) {
        s->parsed += r;
        s->requests++;
        static char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        uv_buf_t ob = uv_buf_init(ok, sizeof ok - 1);
        uv_write_t *w = malloc(sizeof *w);
        assert_non_null(w);
        assert_int_equal(uv_write(w, st, &ob, 1, on_sink_write), 0);
    }
}

static void on_sink_conn(uv_stream_t *server, int status)
{
    sink_t *s = server->data;
    assert_int_equal(status, 0);
    s->conns++;
    assert_false(s->open); /* one connection at a time */
    uv_tcp_init(server->loop, &s->client);
    s->client.data = s;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&s->client), 0);
    s->open = true;
    uv_read_start((uv_stream_t *)&s->client, on_sink_alloc, on_sink_read);
}

static void sink_open(sink_t *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    uv_tcp_init(loop, &s->server);
    s->server.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&s->server, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->server, 16, on_sink_conn), 0);
    int len = sizeof a;
    assert_int_equal(uv_tcp_getsockname(&s->server, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
}

static void sink_close(sink_t *s)
{
    if (s->open)
        uv_close((uv_handle_t *)&s->client, on_client_closed);
    uv_close((uv_handle_t *)&s->server, NULL);
}

/* The upstream head of a POST with an 11-byte body, as conn.c builds it. */
typedef struct head_fix {
    http1_header_t fields[3];
    proxy_head_t h;
} head_fix_t;

static void head_init(head_fix_t *f, const char *authority, const char *target)
{
    f->fields[0] = (http1_header_t){{"Host", 4}, {authority, (uint32_t)strlen(authority)}};
    f->fields[1] = (http1_header_t){STR_LIT("x-user"), STR_LIT("alice")};
    f->fields[2] = (http1_header_t){STR_LIT("Content-Type"), STR_LIT("text/plain")};
    memset(&f->h, 0, sizeof f->h);
    f->h.method = STR_LIT("POST");
    f->h.target = (str_t){target, (uint32_t)strlen(target)};
    f->h.authority = (str_t){authority, (uint32_t)strlen(authority)};
    f->h.fields = f->fields;
    f->h.n_fields = 3;
    f->h.framing = HTTP1_FRAME_LENGTH;
    f->h.content_length = 11;
}

static const char shadow_head[] = "POST /mirror/a?x=1 HTTP/1.1\r\n"
                                  "Host: reviews-shadow:9080\r\n"
                                  "x-user: alice\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 11\r\n"
                                  "\r\n";

/* Whether the sink received exactly want. */
static void assert_received(const sink_t *s, const char *want)
{
    size_t n = strlen(want);
    if (s->len != n || memcmp(s->data, want, n) != 0) {
        fprintf(stderr, "received %zu bytes:\n%.*s\nwanted %zu bytes:\n%s\n", s->len, (int)s->len, s->data, n, want);
        fail();
    }
}

/* The copy: same method, target, fields, Host "<host>-shadow:port"; body at start and fed; ended by end. */
static void test_mirror_copy(void **state)
{
    (void)state;
    env_t e;
    sink_t s;
    env_init(&e);
    sink_open(&s, &e.loop);
    env_load(&e, "", s.port);
    const router_cluster_t *ratings = cluster_of(&e, "ratings", NULL);
    tx_t t;
    tx_init(&t, &e, "POST", "reviews:9080", "/mirror/a?x=1", "x-user", "alice");
    assert_string_equal(t.d.route->name, "mirror");
    head_fix_t hf;
    head_init(&hf, "reviews:9080", "/mirror/a?x=1");
    filter_mirror_t st;
    memset(&st, 0, sizeof st);
    assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hello", 5, false), FILTER_CONTINUE);
    assert_nothing_called(&t);
    assert_int_equal(st.n, 1);
    assert_int_equal(e.view->users, 1); /* the copy holds the view */
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_SENT), 1);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_FAILED), 0);

    char want[512];
    snprintf(want, sizeof want, "%shello", shadow_head);
    RUN_UNTIL(&e, s.len >= strlen(want), 2000);
    assert_received(&s, want);
    assert_int_equal(s.conns, 1);
    assert_int_equal(s.requests, 0);

    filter_mirror_body(&st, " wor", 4);
    filter_mirror_body(&st, "ld", 2);
    snprintf(want, sizeof want, "%shello world", shadow_head);
    RUN_UNTIL(&e, s.requests > 0, 2000);
    assert_received(&s, want);
    assert_int_equal(s.requests, 1);
    /* answered, but the exchange has not ended its copy: it still holds the view */
    RUN_FOR(&e, 50);
    assert_int_equal(e.view->users, 1);
    assert_int_equal(st.n, 1);
    filter_mirror_end(&st);
    assert_int_equal(st.n, 0);
    RUN_UNTIL(&e, e.view->users == 0, 2000);
    assert_int_equal(e.view->users, 0);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_SENT), 1);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_FAILED), 0);
    /* answered before its request ended, the copy's connection was not kept */
    assert_true(s.eof);
    assert_int_equal(runtime_view_connections(e.view, ratings), 0);
    filter_mirror_end(&st); /* no copies left: a no-op */
    assert_nothing_called(&t);
    sink_close(&s);
    env_dispose(&e);
}

/* The request complete at the start: the copy is ended at once (nothing kept), its connection goes back to the pool. */
static void test_mirror_complete_at_start(void **state)
{
    (void)state;
    env_t e;
    sink_t s;
    env_init(&e);
    sink_open(&s, &e.loop);
    env_load(&e, "", s.port);
    const router_cluster_t *ratings = cluster_of(&e, "ratings", NULL);
    head_fix_t hf;
    head_init(&hf, "reviews:9080", "/mirror/a?x=1");
    char want[512];
    snprintf(want, sizeof want, "%shello world", shadow_head);
    for (int i = 1; i <= 2; i++) {
        tx_t t;
        tx_init(&t, &e, "POST", "reviews:9080", "/mirror/a?x=1", "x-user", "alice");
        filter_mirror_t st;
        memset(&st, 0, sizeof st);
        assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hello world", 11, true), FILTER_CONTINUE);
        assert_int_equal(st.n, 0);
        assert_nothing_called(&t);
        RUN_UNTIL(&e, s.requests == i && e.view->users == 0, 2000);
        assert_int_equal(s.requests, i);
        assert_int_equal(e.view->users, 0);
        assert_int_equal(runtime_view_connections(e.view, ratings), 1); /* idle in the pool */
    }
    /* the second copy reused the first one's connection */
    assert_int_equal(s.conns, 1);
    assert_int_equal(s.len, 2 * strlen(want));
    assert_int_equal(memcmp(s.data + strlen(want), want, strlen(want)), 0);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_SENT), 2);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_FAILED), 0);
    sink_close(&s);
    env_dispose(&e);
}

/* Host without a port, and the exchange ending before the body is complete: the copy is dropped. */
static void test_mirror_cancel(void **state)
{
    (void)state;
    env_t e;
    sink_t s;
    env_init(&e);
    sink_open(&s, &e.loop);
    env_load(&e, "", s.port);
    tx_t t;
    tx_init(&t, &e, "POST", "reviews", "/mirror/b", NULL, NULL);
    head_fix_t hf;
    head_init(&hf, "reviews", "/mirror/b");
    filter_mirror_t st;
    memset(&st, 0, sizeof st);
    assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hel", 3, false), FILTER_CONTINUE);
    assert_int_equal(st.n, 1);
    const char *want = "POST /mirror/b HTTP/1.1\r\n"
                       "Host: reviews-shadow\r\n"
                       "x-user: alice\r\n"
                       "Content-Type: text/plain\r\n"
                       "Content-Length: 11\r\n"
                       "\r\n"
                       "hel";
    RUN_UNTIL(&e, s.len >= strlen(want), 2000);
    assert_received(&s, want);
    filter_mirror_cancel(&st);
    assert_int_equal(st.n, 0);
    RUN_UNTIL(&e, s.eof && e.view->users == 0, 2000);
    assert_true(s.eof);
    assert_received(&s, want); /* nothing more came */
    assert_int_equal(s.requests, 0);
    assert_int_equal(e.view->users, 0);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_SENT), 1);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_FAILED), 1);
    filter_mirror_body(&st, "lo", 2); /* no copies left: no-ops */
    filter_mirror_cancel(&st);
    assert_nothing_called(&t);
    sink_close(&s);
    env_dispose(&e);
}

static void test_mirror_percentage_zero(void **state)
{
    (void)state;
    env_t e;
    sink_t s;
    env_init(&e);
    sink_open(&s, &e.loop);
    env_load(&e, "", s.port);
    for (int i = 0; i < 20; i++) {
        tx_t t;
        tx_init(&t, &e, "POST", "reviews:9080", "/mirror-off", NULL, NULL);
        assert_int_equal(t.d.route->n_mirrors, 1);
        head_fix_t hf;
        head_init(&hf, "reviews:9080", "/mirror-off");
        filter_mirror_t st;
        memset(&st, 0, sizeof st);
        assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hello", 5, false), FILTER_CONTINUE);
        assert_int_equal(st.n, 0);
        assert_nothing_called(&t);
    }
    RUN_FOR(&e, 100);
    assert_int_equal(s.conns, 0);
    assert_int_equal(e.view->users, 0);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_SENT), 0);
    sink_close(&s);
    env_dispose(&e);
}

/* No route, or a route without mirrors: no copy. */
static void test_mirror_none(void **state)
{
    (void)state;
    env_t e;
    sink_t s;
    env_init(&e);
    sink_open(&s, &e.loop);
    env_load(&e, "", s.port);
    const char *const hosts[] = {"reviews:9080", "ratings:9080"};
    for (size_t i = 0; i < 2; i++) {
        tx_t t;
        tx_init(&t, &e, "POST", hosts[i], "/other", NULL, NULL);
        head_fix_t hf;
        head_init(&hf, hosts[i], "/other");
        filter_mirror_t st;
        memset(&st, 0, sizeof st);
        assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hello", 5, false), FILTER_CONTINUE);
        assert_int_equal(st.n, 0);
        assert_nothing_called(&t);
    }
    RUN_FOR(&e, 50);
    assert_int_equal(s.conns, 0);
    for (size_t i = 0; i < router_cluster_count(e.rt->router); i++)
        assert_int_equal(atomic_load(&e.rt->counters[i].n[RC_MIRROR_SENT]), 0);
    sink_close(&s);
    env_dispose(&e);
}

/* A mirror subset no endpoint carries: counted as sent and failed at once, nothing kept. */
static void test_mirror_no_endpoint(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, "", closed_port);
    assert_int_equal(cluster_of(&e, "reviews", "none")->n_endpoints, 0);
    tx_t t;
    tx_init(&t, &e, "POST", "reviews:9080", "/mirror-empty", NULL, NULL);
    head_fix_t hf;
    head_init(&hf, "reviews:9080", "/mirror-empty");
    filter_mirror_t st;
    memset(&st, 0, sizeof st);
    assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hello", 5, false), FILTER_CONTINUE);
    assert_int_equal(st.n, 0);
    assert_nothing_called(&t);
    assert_int_equal(e.view->users, 0);
    assert_int_equal(mirror_count(&e, "reviews", "none", RC_MIRROR_SENT), 1);
    assert_int_equal(mirror_count(&e, "reviews", "none", RC_MIRROR_FAILED), 1);
    env_dispose(&e);
}

/* A mirror endpoint refusing the connection: sent, then failed once the connect fails. */
static void test_mirror_refused(void **state)
{
    (void)state;
    env_t e;
    env_init(&e);
    env_load(&e, "", closed_port);
    tx_t t;
    tx_init(&t, &e, "POST", "reviews:9080", "/mirror-closed", NULL, NULL);
    head_fix_t hf;
    head_init(&hf, "reviews:9080", "/mirror-closed");
    filter_mirror_t st;
    memset(&st, 0, sizeof st);
    assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hello", 5, false), FILTER_CONTINUE);
    assert_int_equal(st.n, 1);
    assert_int_equal(mirror_count(&e, "details", NULL, RC_MIRROR_SENT), 1);
    RUN_UNTIL(&e, mirror_count(&e, "details", NULL, RC_MIRROR_FAILED) > 0, 2000);
    assert_int_equal(mirror_count(&e, "details", NULL, RC_MIRROR_FAILED), 1);
    filter_mirror_body(&st, " world", 6); /* fed to a failed copy: dropped */
    assert_int_equal(e.view->users, 1);
    filter_mirror_end(&st);
    assert_int_equal(st.n, 0);
    RUN_UNTIL(&e, e.view->users == 0, 2000); /* the copy's memory goes when its timer handle is closed */
    assert_int_equal(e.view->users, 0);
    assert_int_equal(mirror_count(&e, "details", NULL, RC_MIRROR_SENT), 1);
    assert_int_equal(mirror_count(&e, "details", NULL, RC_MIRROR_FAILED), 1);
    assert_nothing_called(&t);
    env_dispose(&e);
}

/* mirrors: one copy per destination whose percentage comes up. */
static void test_mirror_list(void **state)
{
    (void)state;
    env_t e;
    sink_t s;
    env_init(&e);
    sink_open(&s, &e.loop);
    env_load(&e, "", s.port);
    tx_t t;
    tx_init(&t, &e, "POST", "reviews:9080", "/mirrors", NULL, NULL);
    assert_int_equal(t.d.route->n_mirrors, 3);
    head_fix_t hf;
    head_init(&hf, "reviews:9080", "/mirrors");
    filter_mirror_t st;
    memset(&st, 0, sizeof st);
    assert_int_equal(filter_mirror(&t.x, &st, &hf.h, "hello world", 11, false), FILTER_CONTINUE);
    assert_int_equal(st.n, 1);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_SENT), 1);
    assert_int_equal(mirror_count(&e, "reviews", "none", RC_MIRROR_SENT), 1);
    assert_int_equal(mirror_count(&e, "reviews", "none", RC_MIRROR_FAILED), 1);
    assert_int_equal(mirror_count(&e, "details", NULL, RC_MIRROR_SENT), 0);
    filter_mirror_end(&st);
    RUN_UNTIL(&e, s.requests > 0 && e.view->users == 0, 2000);
    const char *want = "POST /mirrors HTTP/1.1\r\n"
                       "Host: reviews-shadow:9080\r\n"
                       "x-user: alice\r\n"
                       "Content-Type: text/plain\r\n"
                       "Content-Length: 11\r\n"
                       "\r\n"
                       "hello world";
    assert_received(&s, want);
    assert_int_equal(e.view->users, 0);
    assert_int_equal(mirror_count(&e, "ratings", NULL, RC_MIRROR_FAILED), 0);
    /* ended before its answer: the connection went back to the pool */
    assert_false(s.eof);
    assert_int_equal(runtime_view_connections(e.view, cluster_of(&e, "ratings", NULL)), 1);
    sink_close(&s);
    env_dispose(&e);
}

/* A mirror naming a subset no DestinationRule defines never reaches the filter: the configuration is refused. */
static void test_mirror_unknown_subset(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = config_load("apiVersion: networking.istio.io/v1\n"
                                      "kind: VirtualService\n"
                                      "metadata: {name: details}\n"
                                      "spec:\n"
                                      "  hosts: [details]\n"
                                      "  http:\n"
                                      "  - route: [{destination: {host: details}}]\n"
                                      "    mirror: {host: reviews, subset: nope}\n",
                                      closed_port, &m);
    assert_null(cfg);
    assert_int_equal(m.n_err, 1);
    assert_non_null(strstr(m.err[0], "subset \"nope\" is not defined by any DestinationRule for host reviews"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rl_local_bucket),
        cmocka_unit_test(test_rl_local_route_wins),
        cmocka_unit_test(test_rl_local_shadow),
        cmocka_unit_test(test_rl_local_other_host),
        cmocka_unit_test(test_rl_no_documents),
        cmocka_unit_test(test_rl_global_unreachable_allow),
        cmocka_unit_test(test_rl_global_unreachable_deny),
        cmocka_unit_test(test_rl_global_timeout),
        cmocka_unit_test(test_rl_global_cancel_timeout),
        cmocka_unit_test(test_rl_global_redis),
        cmocka_unit_test(test_rl_global_shadow),
        cmocka_unit_test(test_rl_global_missing_entry),
        cmocka_unit_test(test_rl_global_cancel_redis),
        cmocka_unit_test(test_rl_global_over),
        cmocka_unit_test(test_rl_global_limit_header),
        cmocka_unit_test(test_fault_abort),
        cmocka_unit_test(test_fault_delay),
        cmocka_unit_test(test_fault_delay_abort),
        cmocka_unit_test(test_fault_zero_percent),
        cmocka_unit_test(test_fault_none),
        cmocka_unit_test(test_fault_cancel),
        cmocka_unit_test(test_fault_over),
        cmocka_unit_test(test_fault_percentage),
        cmocka_unit_test(test_mirror_copy),
        cmocka_unit_test(test_mirror_complete_at_start),
        cmocka_unit_test(test_mirror_cancel),
        cmocka_unit_test(test_mirror_percentage_zero),
        cmocka_unit_test(test_mirror_none),
        cmocka_unit_test(test_mirror_no_endpoint),
        cmocka_unit_test(test_mirror_refused),
        cmocka_unit_test(test_mirror_list),
        cmocka_unit_test(test_mirror_unknown_subset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
