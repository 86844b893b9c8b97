/*
 * worker: loop thread, SO_REUSEPORT listener and graceful stop; see worker.h.
 *
 * Stop sequence, all on the worker's thread: the async callback closes the
 * listener and drains the connections (conn_env_drain); when the last one
 * is gone (env.on_empty) the upstream pool and the async handle are
 * closed, which leaves the loop with no handles, so uv_run returns.
 */
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "hostport.h"
#include "rlglobal.h"
#include "log.h"
#include "transport.h"
#include "upstream.h"

struct worker {
    uv_loop_t loop;
    uv_tcp_t listener[2]; /* WORKER_OUTBOUND, WORKER_INBOUND */
    bool has_listener[2];
    bool listener_closed[2];
    uint16_t port[2];
    uv_async_t stop_async;
    uv_async_t swap_async;
    uv_timer_t drain_timer;
    uv_timer_t trim_timer; /* the TLS buffer sweep (transport_trim), every WORKER_TRIM_MS */
    size_t trim_conns;     /* downstream connections at the last sweep */
    uv_thread_t thread;
    conn_worker_t cw;
    conn_env_t env[2];
    tele_t *tele;
    uint64_t drain_timeout_ms;
    uv_mutex_t lock;
    runtime_t *pending;     /* worker_set_runtime's, taken by swap_async (under lock) */
    tls_ctx_t *pending_tls; /* worker_set_identity's, likewise (NULL: none) */
    bool started;
    bool stopping;
    bool done;
};

static void on_connection(uv_stream_t *server, int status)
{
    conn_env_t *env = server->data;
    worker_t *w = env->owner;
    if (status < 0 || w->stopping)
        return;
    conn_accept(env, server);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_listeners(worker_t *w)
{
    for (int i = 0; i < 2; i++)
        if (w->has_listener[i] && !w->listener_closed[i]) {
            w->listener_closed[i] = true;
            uv_close((uv_handle_t *)&w->listener[i], on_handle_closed);
        }
}

static runtime_view_t *view_create(worker_t *w, runtime_t *rt)
{
    runtime_view_t *v = runtime_view_create(rt, &w->loop);
    v->mesh_tls = &w->cw.mesh_tls;
    v->tls_stats = w->cw.tls_stats;
    return v;
}

static void take_pending(worker_t *w)
{
    uv_mutex_lock(&w->lock);
    runtime_t *rt = w->pending;
    w->pending = NULL;
    tls_ctx_t *tls = w->pending_tls;
    w->pending_tls = NULL;
    uv_mutex_unlock(&w->lock);
    if (tls != NULL) {
        /* new connections present the new certificate; open ones keep theirs (each holds its ctx) */
        tls_ctx_unref(w->cw.mesh_tls);
        w->cw.mesh_tls = tls;
    }
    if (rt == NULL)
        return;
    runtime_view_t *old = w->cw.view;
    w->cw.view = view_create(w, rt);
    runtime_unref(rt); /* the view holds its own reference */
    runtime_view_retire(old);
}

static void on_swap(uv_async_t *a)
{
    take_pending(a->data);
}

/* Both listeners' connections are gone: flush telemetry and let the loop end. */
static void on_empty(void *owner)
{
    worker_t *w = owner;
    if (w->done || w->env[0].n_conns > 0 || w->env[1].n_conns > 0)
        return;
    w->done = true;
    uv_timer_stop(&w->drain_timer);
    uv_close((uv_handle_t *)&w->drain_timer, on_handle_closed);
    uv_timer_stop(&w->trim_timer);
    uv_close((uv_handle_t *)&w->trim_timer, on_handle_closed);
    if (w->cw.tele != NULL) {
        tele_worker_destroy(w->cw.tele);
        w->cw.tele = NULL;
    }
    if (w->cw.rlg != NULL) {
        rlg_destroy(w->cw.rlg);
        w->cw.rlg = NULL;
    }
    runtime_view_retire(w->cw.view);
    w->cw.view = NULL;
    uv_close((uv_handle_t *)&w->stop_async, on_handle_closed);
    uv_close((uv_handle_t *)&w->swap_async, on_handle_closed);
}

#if defined(__SANITIZE_ADDRESS__)
#define WORKER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WORKER_ASAN 1
#endif
#endif

/*
 * Give glibc's free heap memory back to the system. Not under ASan: its
 * allocator serves every malloc there, so glibc's arenas may never have
 * been set up, and malloc_trim from two workers at once then races to set
 * them up and crashes (seen in CI at two workers).
 */
static void heap_trim(void)
{
#ifndef WORKER_ASAN
    malloc_trim(0);
#endif
}

/* TLS connections that moved no bytes for a whole period give their record buffers back (transport_trim). */
#define WORKER_TRIM_MS 2000
#define WORKER_TRIM_CONNS 16 /* this many fewer connections than at the last sweep count as the end of a burst */
static void on_trim(uv_timer_t *t)
{
    worker_t *w = t->data;
    size_t n = conn_env_trim(&w->env[0]) + conn_env_trim(&w->env[1]);
    if (w->cw.view != NULL)
        n += runtime_view_trim(w->cw.view);
    /* a burst just ended (buffers freed, or many connections gone): give the freed memory back to the system
     * too, or the heap keeps it at its high-water mark */
    size_t conns = w->env[0].n_conns + w->env[1].n_conns;
    if (n > 0 || conns + WORKER_TRIM_CONNS <= w->trim_conns)
        heap_trim();
    w->trim_conns = conns;
}

static void on_drain_timeout(uv_timer_t *t)
{
    worker_t *w = t->data;
    log_warn("drain timeout: closing %zu connection(s) still busy", w->env[0].n_conns + w->env[1].n_conns);
    conn_env_close_all(&w->env[0]);
    conn_env_close_all(&w->env[1]);
}

static void on_stop(uv_async_t *a)
{
    worker_t *w = a->data;
    if (w->stopping)
        return;
    w->stopping = true;
    close_listeners(w);
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->drain_timeout_ms, 0);
    conn_env_drain(&w->env[0]);
    conn_env_drain(&w->env[1]);
}

static int make_socket(const worker_listen_t *o, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    socklen_t sl;
    if (hostport_sockaddr(o->host, o->port, ss, &sl) != 0) {
        snprintf(err, errlen, "%s is not an IP address", o->host);
        return -1;
    }
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        snprintf(err, errlen, "setsockopt: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)ss, sl) < 0) {
        snprintf(err, errlen, "bind %s:%u: %s", o->host, (unsigned)o->port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int worker_check_port_free(const char *host, uint16_t port, char *err, size_t errlen)
{
    if (port == 0)
        return 0;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (hostport_sockaddr(host, port, &ss, &sl) != 0) {
        snprintf(err, errlen, "%s is not an IP address", host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* SO_REUSEADDR only: TIME_WAIT does not count, a live listener (even with SO_REUSEPORT) does */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "bind %s:%u: %s%s", host, (unsigned)port, strerror(errno),
                 errno == EADDRINUSE ? " (another process listens there)" : "");
        rc = -1;
    }
    close(fd);
    return rc;
}

static int open_listener(worker_t *w, int which, const worker_listen_t *l, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int fd = make_socket(l, &ss, err, errlen);
    if (fd < 0)
        return -1;
    uv_tcp_init(&w->loop, &w->listener[which]);
    w->has_listener[which] = true;
    w->env[which].owner = w;
    w->listener[which].data = &w->env[which];
    int rc = uv_tcp_open(&w->listener[which], fd);
    if (rc < 0)
        close(fd); /* not adopted by the handle */
    else
        rc = uv_listen((uv_stream_t *)&w->listener[which], 1024, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen %s:%u: %s", l->host, (unsigned)l->port, uv_strerror(rc));
        return -1;
    }
    struct sockaddr_storage bound;
    int bl = sizeof bound;
    uv_tcp_getsockname(&w->listener[which], (struct sockaddr *)&bound, &bl);
    w->port[which] = hostport_sockaddr_port(&bound);
    return 0;
}

worker_t *worker_create(const worker_opts_t *o, char *err, size_t errlen)
{
    worker_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        log_fatal("worker: out of memory");
    int rc = uv_loop_init(&w->loop);
    if (rc < 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(rc));
        free(w);
        return NULL;
    }
    uv_mutex_init(&w->lock);
    uv_async_init(&w->loop, &w->stop_async, on_stop);
    w->stop_async.data = w;
    uv_async_init(&w->loop, &w->swap_async, on_swap);
    w->swap_async.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_unref((uv_handle_t *)&w->drain_timer);
    uv_timer_init(&w->loop, &w->trim_timer);
    w->trim_timer.data = w;
    uv_unref((uv_handle_t *)&w->trim_timer);
    uv_timer_start(&w->trim_timer, on_trim, WORKER_TRIM_MS, WORKER_TRIM_MS);
    w->tele = o->tele;
    w->drain_timeout_ms = o->drain_timeout_ms ? o->drain_timeout_ms : 5000;
    conn_worker_t *cw = &w->cw;
    cw->loop = &w->loop;
    cw->tls_stats = o->tls_stats;
    if (o->mesh_tls != NULL) {
        tls_ctx_ref(o->mesh_tls);
        cw->mesh_tls = o->mesh_tls;
    }
    cw->view = view_create(w, o->rt);
    cw->rng = ((uint64_t)(uintptr_t)w * 0x9E3779B97F4A7C15ull) ^ uv_hrtime();
    if (cw->rng == 0)
        cw->rng = 1;
    cw->limits = o->limits;
    cw->header_timeout_ms = o->header_timeout_ms ? o->header_timeout_ms : 10000;
    cw->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 60000;
    cw->retry_buffer_bytes = o->retry_buffer_bytes ? o->retry_buffer_bytes : 64 * 1024;
    cw->linger = o->linger;
    for (int i = 0; i < 2; i++) {
        w->env[i].w = cw;
        w->env[i].mode = i == WORKER_OUTBOUND ? CONN_OUTBOUND : CONN_INBOUND;
        w->env[i].proto = "http";
        w->env[i].on_empty = on_empty;
        w->env[i].owner = w;
    }
    if (open_listener(w, WORKER_OUTBOUND, &o->outbound, err, errlen) < 0 ||
        (o->inbound.host != NULL && open_listener(w, WORKER_INBOUND, &o->inbound, err, errlen) < 0)) {
        worker_destroy(w);
        return NULL;
    }
    return w;
}

uint16_t worker_port(const worker_t *w, enum worker_listener which)
{
    return w->port[which];
}

static void run(void *arg)
{
    worker_t *w = arg;
    /* named for top -H, perf and the benchmarks (15 characters at most) */
    pthread_setname_np(pthread_self(), "outrider-worker");
    if (w->tele != NULL)
        w->cw.tele = tele_worker_create(w->tele, &w->loop);
    w->cw.rlg = rlg_create(&w->loop);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

int worker_start(worker_t *w)
{
    if (uv_thread_create(&w->thread, run, w) != 0)
        return -1;
    w->started = true;
    return 0;
}

void worker_stop(worker_t *w)
{
    uv_async_send(&w->stop_async);
}

void worker_set_runtime(worker_t *w, runtime_t *rt)
{
    runtime_ref(rt);
    uv_mutex_lock(&w->lock);
    runtime_t *old = w->pending;
    w->pending = rt;
    uv_mutex_unlock(&w->lock);
    if (old != NULL)
        runtime_unref(old);
    uv_async_send(&w->swap_async);
}

void worker_set_identity(worker_t *w, tls_ctx_t *ctx)
{
    tls_ctx_ref(ctx);
    uv_mutex_lock(&w->lock);
    tls_ctx_t *old = w->pending_tls;
    w->pending_tls = ctx;
    uv_mutex_unlock(&w->lock);
    tls_ctx_unref(old);
    uv_async_send(&w->swap_async);
}

void worker_join(worker_t *w)
{
    if (w->started) {
        uv_thread_join(&w->thread);
        w->started = false;
    }
}

void worker_destroy(worker_t *w)
{
    if (w == NULL)
        return;
    if (!w->done) {
        /* never started (or never stopped): close what the loop holds and let it settle */
        w->stopping = true;
        close_listeners(w);
        on_empty(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    if (w->pending != NULL)
        runtime_unref(w->pending);
    tls_ctx_unref(w->pending_tls);
    tls_ctx_unref(w->cw.mesh_tls);
    if (uv_loop_close(&w->loop) != 0)
        log_warn("worker: loop closed with handles still open");
    uv_mutex_destroy(&w->lock);
    free(w);
}
