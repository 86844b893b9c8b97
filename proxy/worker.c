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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "log.h"
#include "upstream.h"

struct worker {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;
    uv_thread_t thread;
    conn_env_t env;
    uint16_t port;
    bool started;
    bool stopping;
    bool listener_closed;
};

static void on_connection(uv_stream_t *server, int status)
{
    worker_t *w = server->data;
    if (status < 0 || w->stopping)
        return;
    conn_accept(&w->env, server);
}

static void on_async_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_empty(void *owner)
{
    worker_t *w = owner;
    upstream_pool_destroy(w->env.pool);
    w->env.pool = NULL;
    uv_close((uv_handle_t *)&w->stop_async, on_async_closed);
}

static void on_stop(uv_async_t *a)
{
    worker_t *w = a->data;
    if (w->stopping)
        return;
    w->stopping = true;
    if (!w->listener_closed) {
        w->listener_closed = true;
        uv_close((uv_handle_t *)&w->listener, NULL);
    }
    conn_env_drain(&w->env);
}

static int make_socket(const worker_opts_t *o, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    memset(ss, 0, sizeof *ss);
    socklen_t sl;
    if (uv_ip4_addr(o->listen_host, o->listen_port, (struct sockaddr_in *)ss) == 0) {
        sl = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(o->listen_host, o->listen_port, (struct sockaddr_in6 *)ss) == 0) {
        sl = sizeof(struct sockaddr_in6);
    } else {
        snprintf(err, errlen, "%s is not an IP address", o->listen_host);
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
        snprintf(err, errlen, "bind %s:%u: %s", o->listen_host, (unsigned)o->listen_port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int worker_check_port_free(const worker_opts_t *o, char *err, size_t errlen)
{
    if (o->listen_port == 0)
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl = sizeof(struct sockaddr_in);
    if (uv_ip4_addr(o->listen_host, o->listen_port, (struct sockaddr_in *)&ss) != 0) {
        if (uv_ip6_addr(o->listen_host, o->listen_port, (struct sockaddr_in6 *)&ss) != 0) {
            snprintf(err, errlen, "%s is not an IP address", o->listen_host);
            return -1;
        }
        sl = sizeof(struct sockaddr_in6);
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
        snprintf(err, errlen, "bind %s:%u: %s%s", o->listen_host, (unsigned)o->listen_port, strerror(errno),
                 errno == EADDRINUSE ? " (another process listens there)" : "");
        rc = -1;
    }
    close(fd);
    return rc;
}

worker_t *worker_create(const worker_opts_t *o, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int fd = make_socket(o, &ss, err, errlen);
    if (fd < 0)
        return NULL;
    worker_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        log_fatal("worker: out of memory");
    int rc = uv_loop_init(&w->loop);
    if (rc < 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(rc));
        close(fd);
        free(w);
        return NULL;
    }
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    uv_async_init(&w->loop, &w->stop_async, on_stop);
    w->stop_async.data = w;
    rc = uv_tcp_open(&w->listener, fd);
    if (rc < 0)
        close(fd); /* not adopted by the handle */
    else
        rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen %s:%u: %s", o->listen_host, (unsigned)o->listen_port, uv_strerror(rc));
        worker_destroy(w);
        return NULL;
    }
    struct sockaddr_storage bound;
    int bl = sizeof bound;
    uv_tcp_getsockname(&w->listener, (struct sockaddr *)&bound, &bl);
    w->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    w->env.loop = &w->loop;
    w->env.pool =
        upstream_pool_create(&w->loop, (const struct sockaddr *)&o->forward_to, o->upstream_idle_timeout_ms, 0);
    w->env.limits = o->limits;
    w->env.header_timeout_ms = o->header_timeout_ms ? o->header_timeout_ms : 10000;
    w->env.idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 60000;
    w->env.proto = "http";
    w->env.on_empty = on_empty;
    w->env.owner = w;
    return w;
}

uint16_t worker_port(const worker_t *w)
{
    return w->port;
}

static void run(void *arg)
{
    worker_t *w = arg;
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
    if (!w->stopping) {
        /* never started (or never stopped): close what the loop holds and let it settle */
        w->stopping = true;
        if (!w->listener_closed) {
            w->listener_closed = true;
            uv_close((uv_handle_t *)&w->listener, NULL);
        }
        if (!uv_is_closing((uv_handle_t *)&w->stop_async))
            uv_close((uv_handle_t *)&w->stop_async, NULL);
        upstream_pool_destroy(w->env.pool);
        w->env.pool = NULL;
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&w->loop) != 0)
        log_warn("worker: loop closed with handles still open");
    free(w);
}
