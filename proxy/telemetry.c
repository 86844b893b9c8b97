/*
 * telemetry: per-worker recording, the hand-over queue, the exporter
 * thread with its OTLP/HTTP client, and the /stats/prometheus page (see
 * telemetry.h for the design).
 *
 * Invariants. A worker's series table and record batch are touched only
 * on its loop thread. t->mu guards the queue, queue_bytes and the stats;
 * t->cum_mu guards the cumulative table. A queued batch stays counted in
 * queue_bytes until the exporter has sent it or given up on it, so the
 * byte limit also bounds what waits behind a failing endpoint.
 */
#include "telemetry.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "compress.h"
#include "hex.h"
#include "log.h"
#include "telemetry_otlp.h"
#include "xalloc.h"

#define TELE_MAX_SERIES 10000     /* label sets per worker table and in the cumulative table */
#define WORKER_IDLE_FLUSHES 10    /* a worker forgets a label set unused for this many flushes */
#define EXPORT_IO_TIMEOUT_MS 5000 /* connect, send and receive of one export */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define RESPONSE_HEAD_MAX 16384
#define RESPONSE_BODY_MAX (1u << 20)
#define ZSTD_LEVEL 1

enum { SIG_TRACES, SIG_METRICS, SIG_LOGS, SIG_N };
static const char *const sig_names[SIG_N] = {"traces", "metrics", "logs"};
static const char *const sig_paths[SIG_N] = {"/v1/traces", "/v1/metrics", "/v1/logs"};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* series table: open addressing over entries, plus insertion order    */

typedef struct entry {
    tele_series_t s;
    uint32_t idle; /* flushes since it last changed (workers) */
    bool dirty;    /* changed since the last flush (workers) */
} entry_t;

typedef struct stable {
    entry_t **slots; /* cap slots, power of two */
    size_t cap;
    entry_t **list; /* insertion order */
    size_t n, list_cap;
} stable_t;

static void stable_place(stable_t *t, entry_t *e)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)e->s.labels->hash & mask;
    while (t->slots[i] != NULL)
        i = (i + 1) & mask;
    t->slots[i] = e;
}

static void stable_rehash(stable_t *t, size_t cap)
{
    free(t->slots);
    t->slots = xcalloc(cap, sizeof(*t->slots));
    t->cap = cap;
    for (size_t i = 0; i < t->n; i++)
        stable_place(t, t->list[i]);
}

/* Find by values (kind + v) or, when v is NULL, by another label set lb. */
static entry_t *stable_find(const stable_t *t, uint64_t h, enum tele_series_kind kind, const str_t *v,
                            const tele_labels_t *lb)
{
    if (t->cap == 0)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask; t->slots[i] != NULL; i = (i + 1) & mask) {
        const tele_labels_t *x = t->slots[i]->s.labels;
        if (x->hash != h)
            continue;
        if (v != NULL) {
            if (tele_labels_equal(x, kind, v))
                return t->slots[i];
        } else if (x->kind == lb->kind && memcmp(x->len, lb->len, sizeof(x->len)) == 0 && x->size == lb->size &&
                   memcmp(x->data, lb->data, x->size - offsetof(tele_labels_t, data)) == 0) {
            return t->slots[i];
        }
    }
    return NULL;
}

/* Add a new entry owning labels. */
static entry_t *stable_insert(stable_t *t, tele_labels_t *labels)
{
    if ((t->n + 1) * 2 > t->cap)
        stable_rehash(t, t->cap ? t->cap * 2 : 64);
    if (t->n == t->list_cap) {
        t->list_cap = t->list_cap ? t->list_cap * 2 : 64;
        t->list = realloc(t->list, t->list_cap * sizeof(*t->list));
        if (t->list == NULL)
            log_fatal("telemetry: out of memory");
    }
    entry_t *e = xcalloc(1, sizeof(*e));
    e->s.labels = labels;
    t->list[t->n++] = e;
    stable_place(t, e);
    return e;
}

static void entry_free(entry_t *e)
{
    free(e->s.labels);
    free(e);
}

static void stable_dispose(stable_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        entry_free(t->list[i]);
    free(t->list);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* Drop the entries idle for at least max_idle flushes. */
static void stable_evict(stable_t *t, uint32_t max_idle)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->list[i]->idle >= max_idle)
            entry_free(t->list[i]);
        else
            t->list[k++] = t->list[i];
    }
    if (k == t->n)
        return;
    t->n = k;
    memset(t->slots, 0, t->cap * sizeof(*t->slots));
    for (size_t i = 0; i < t->n; i++)
        stable_place(t, t->list[i]);
}

/* ------------------------------------------------------------------ */
/* hub                                                                 */

typedef struct batch {
    struct batch *next;
    size_t bytes; /* counted in queue_bytes while queued or being exported */
    uint64_t start_ns, end_ns;
    tele_series_t *series;
    size_t n_series;
    tele_rec_t *recs;
    size_t n_recs, n_spans, n_logs;
    char *strings;
} batch_t;

struct tele {
    peer_info_t self;
    char *host; /* NULL: no export */
    uint16_t port;
    char *service_name, *instance_id;
    uint64_t flush_interval_ms;
    size_t max_queue_bytes, max_batch_records, max_series;
    bool access_log;

    pthread_mutex_t mu; /* queue, stats */
    pthread_cond_t cond;
    batch_t *head, *tail;
    size_t queue_bytes;
    bool stopping;
    uint64_t deadline_ms;        /* monotonic, valid when stopping */
    _Atomic uint64_t io_stop_ms; /* deadline_ms for socket waits, read without the lock; 0 = not stopping */
    tele_stats_t st;
    uint64_t series_dropped;
    uint64_t export_ok[SIG_N], export_failed[SIG_N];

    pthread_mutex_t cum_mu;
    stable_t cum;

    bool started, joined;
    pthread_t thread;

    /* exporter thread only */
    int fd;
    buf_t rbuf;
};

struct tele_worker {
    tele_t *t;
    uv_timer_t timer;
    stable_t series;
    tele_rec_t *recs;
    size_t n_recs, cap_recs, n_spans, n_logs;
    buf_t strings;
    uint64_t last_flush_ns;
    uint64_t series_dropped; /* handed to t at the next flush */
};

tele_t *tele_create(const tele_opts_t *opts)
{
    tele_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (opts->self != NULL)
        t->self = *opts->self;
    t->host = opts->otlp_host != NULL && opts->otlp_host[0] != '\0' ? xstrdup(opts->otlp_host) : NULL;
    t->port = opts->otlp_port;
    t->service_name = xstrdup(opts->service_name ? opts->service_name : "");
    t->instance_id = xstrdup(opts->instance_id ? opts->instance_id : "");
    t->flush_interval_ms = opts->flush_interval_ms ? opts->flush_interval_ms : 1000;
    t->max_queue_bytes = opts->max_queue_bytes ? opts->max_queue_bytes : 16u << 20;
    t->max_batch_records = opts->max_batch_records ? opts->max_batch_records : 4096;
    t->max_series = TELE_MAX_SERIES;
    t->access_log = opts->access_log;
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->cum_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->fd = -1;
    return t;
}

static void batch_free(batch_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n_series; i++)
        free(b->series[i].labels);
    free(b->series);
    free(b->recs);
    free(b->strings);
    free(b);
}

/* ------------------------------------------------------------------ */
/* worker                                                              */

static void worker_timer_cb(uv_timer_t *timer)
{
    tele_worker_flush(timer->data);
}

tele_worker_t *tele_worker_create(tele_t *t, uv_loop_t *loop)
{
    tele_worker_t *w = xcalloc(1, sizeof(*w));
    w->t = t;
    w->last_flush_ns = real_ns();
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, worker_timer_cb, t->flush_interval_ms, t->flush_interval_ms);
    uv_unref((uv_handle_t *)&w->timer);
    return w;
}

static entry_t *worker_series(tele_worker_t *w, enum tele_series_kind kind, const str_t v[TELE_NLABELS])
{
    uint64_t h = tele_labels_hash(kind, v);
    entry_t *e = stable_find(&w->series, h, kind, v, NULL);
    if (e == NULL) {
        if (w->series.n >= w->t->max_series) {
            w->series_dropped++;
            return NULL;
        }
        e = stable_insert(&w->series, tele_labels_new(kind, v, h));
    }
    e->dirty = true;
    e->idle = 0;
    return e;
}

void tele_record(tele_worker_t *w, const tele_request_t *r)
{
    tele_t *t = w->t;
    str_t v[TELE_NLABELS];
    char code[12];
    tele_request_labels(r, &t->self, code, v);
    entry_t *e = worker_series(w, TELE_SERIES_HTTP, v);
    if (e != NULL)
        tele_values_observe(&e->s.val, r->duration_ns, r->request_bytes, r->response_bytes);

    if (t->host == NULL)
        return;
    bool want_span = r->trace != NULL && r->trace->sampled == 1;
    if (!want_span && !t->access_log)
        return;
    if (w->n_recs == w->cap_recs) {
        size_t cap = w->cap_recs ? w->cap_recs * 2 : 64;
        if (cap > t->max_batch_records)
            cap = t->max_batch_records;
        tele_rec_t *n = realloc(w->recs, cap * sizeof(*n));
        if (n == NULL)
            log_fatal("telemetry: out of memory");
        w->recs = n;
        w->cap_recs = cap;
    }
    size_t mark = w->strings.len;
    tele_rec_t *rec = &w->recs[w->n_recs];
    tele_rec_fill(rec, &w->strings, r);
    rec->has_span = want_span && rec->has_trace;
    rec->has_log = t->access_log;
    if (!rec->has_span && !rec->has_log) {
        w->strings.len = mark;
        return;
    }
    w->n_recs++;
    w->n_spans += rec->has_span;
    w->n_logs += rec->has_log;
    if (w->n_recs >= t->max_batch_records)
        tele_worker_flush(w);
}

void tele_record_tcp(tele_worker_t *w, const tele_tcp_t *r)
{
    str_t v[TELE_NLABELS];
    tele_tcp_labels(r, &w->t->self, v);
    entry_t *e = worker_series(w, TELE_SERIES_TCP, v);
    if (e == NULL)
        return;
    e->s.val.tcp_opened += r->opened;
    e->s.val.tcp_closed += r->closed;
    e->s.val.tcp_sent += r->sent_bytes;
    e->s.val.tcp_received += r->received_bytes;
}

void tele_worker_flush(tele_worker_t *w)
{
    tele_t *t = w->t;
    uint64_t now = real_ns();
    size_t n_dirty = 0;
    for (size_t i = 0; i < w->series.n; i++)
        n_dirty += w->series.list[i]->dirty;

    batch_t *b = NULL, *dropped = NULL;
    uint64_t end_ns = now > w->last_flush_ns ? now : w->last_flush_ns + 1;
    uint64_t series_dropped = w->series_dropped;
    w->series_dropped = 0;
    if (n_dirty > 0 || w->n_recs > 0) {
        b = xcalloc(1, sizeof(*b));
        b->start_ns = w->last_flush_ns;
        b->end_ns = end_ns;
        size_t metric_bytes = sizeof(*b);
        if (n_dirty > 0) {
            b->series = xcalloc(n_dirty, sizeof(*b->series));
            for (size_t i = 0; i < w->series.n; i++) {
                entry_t *e = w->series.list[i];
                if (!e->dirty)
                    continue;
                tele_series_t *s = &b->series[b->n_series++];
                s->labels = tele_labels_dup(e->s.labels);
                s->val = e->s.val;
                metric_bytes += sizeof(*s) + s->labels->size;
            }
        }
        size_t rec_bytes = 0;
        if (w->n_recs > 0) {
            size_t len;
            b->recs = w->recs;
            b->n_recs = w->n_recs;
            b->n_spans = w->n_spans;
            b->n_logs = w->n_logs;
            b->strings = buf_steal(&w->strings, &len);
            rec_bytes = b->n_recs * sizeof(*b->recs) + len;
            w->recs = NULL;
            w->n_recs = w->cap_recs = w->n_spans = w->n_logs = 0;
        }
        b->bytes = metric_bytes + rec_bytes;

        pthread_mutex_lock(&t->mu);
        if (t->queue_bytes + b->bytes > t->max_queue_bytes && b->n_recs > 0) {
            /* records go first: metrics are never sampled, and they are small */
            t->st.spans_dropped += b->n_spans;
            t->st.logs_dropped += b->n_logs;
            free(b->recs);
            free(b->strings);
            b->recs = NULL;
            b->strings = NULL;
            b->n_recs = b->n_spans = b->n_logs = 0;
            b->bytes = metric_bytes;
        }
        if (t->queue_bytes + b->bytes > t->max_queue_bytes || b->n_series + b->n_recs == 0) {
            if (b->n_series > 0)
                t->st.metric_batches_dropped++;
            dropped = b;
        } else {
            if (t->tail != NULL)
                t->tail->next = b;
            else
                t->head = b;
            t->tail = b;
            t->queue_bytes += b->bytes;
            pthread_cond_signal(&t->cond);
        }
        t->series_dropped += series_dropped;
        pthread_mutex_unlock(&t->mu);
    } else if (series_dropped > 0) {
        pthread_mutex_lock(&t->mu);
        t->series_dropped += series_dropped;
        pthread_mutex_unlock(&t->mu);
    }
    batch_free(dropped);

    bool evict = false;
    for (size_t i = 0; i < w->series.n; i++) {
        entry_t *e = w->series.list[i];
        if (e->dirty) {
            memset(&e->s.val, 0, sizeof(e->s.val));
            e->dirty = false;
            e->idle = 0;
        } else if (++e->idle >= WORKER_IDLE_FLUSHES) {
            evict = true;
        }
    }
    if (evict)
        stable_evict(&w->series, WORKER_IDLE_FLUSHES);
    w->last_flush_ns = end_ns;
}

static void worker_close_cb(uv_handle_t *h)
{
    tele_worker_t *w = h->data;
    stable_dispose(&w->series);
    free(w->recs);
    buf_dispose(&w->strings);
    free(w);
}

void tele_worker_destroy(tele_worker_t *w)
{
    if (w == NULL)
        return;
    tele_worker_flush(w);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, worker_close_cb);
}

/* ------------------------------------------------------------------ */
/* cumulative table                                                    */

static void fold_metrics(tele_t *t, batch_t *b)
{
    if (b->n_series == 0)
        return;
    uint64_t dropped = 0;
    pthread_mutex_lock(&t->cum_mu);
    for (size_t i = 0; i < b->n_series; i++) {
        tele_series_t *s = &b->series[i];
        entry_t *e = stable_find(&t->cum, s->labels->hash, (enum tele_series_kind)s->labels->kind, NULL, s->labels);
        if (e == NULL) {
            if (t->cum.n >= t->max_series) {
                dropped++;
                continue;
            }
            e = stable_insert(&t->cum, tele_labels_dup(s->labels));
        }
        tele_values_add(&e->s.val, &s->val);
    }
    pthread_mutex_unlock(&t->cum_mu);
    if (dropped > 0) {
        pthread_mutex_lock(&t->mu);
        t->series_dropped += dropped;
        pthread_mutex_unlock(&t->mu);
    }
}

/* ------------------------------------------------------------------ */
/* OTLP/HTTP client (exporter thread)                                  */

static void conn_close(tele_t *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    t->rbuf.len = 0;
}

/*
 * Wait for ev on fd until deadline (monotonic ms) or the stop deadline,
 * whichever comes first; polls in short slices so that a tele_stop during
 * a hanging export is noticed. 0 ready, -1 timeout or error.
 */
static int wait_fd(tele_t *t, int fd, short ev, uint64_t deadline)
{
    for (;;) {
        uint64_t now = mono_ms();
        uint64_t stop = atomic_load(&t->io_stop_ms);
        uint64_t until = stop != 0 && stop < deadline ? stop : deadline;
        if (now >= until)
            return -1;
        uint64_t slice = until - now > 100 ? 100 : until - now;
        struct pollfd p = {.fd = fd, .events = ev};
        int rc = poll(&p, 1, (int)slice);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static int conn_open(tele_t *t, uint64_t deadline)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)t->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(t->host, port, &hints, &res) != 0 || res == NULL)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && wait_fd(t, fd, POLLOUT, deadline) == 0) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
                break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    t->fd = fd;
    t->rbuf.len = 0;
    return 0;
}

static int send_all(tele_t *t, int fd, const char *p, size_t n, uint64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(t, fd, POLLOUT, deadline) == 0)
            continue;
        return -1;
    }
    return 0;
}

/* Read more bytes into rbuf. 1 read, 0 peer closed, -1 error or timeout. */
static int recv_some(tele_t *t, uint64_t deadline)
{
    for (;;) {
        buf_reserve(&t->rbuf, 4096);
        ssize_t r = recv(t->fd, t->rbuf.data + t->rbuf.len, t->rbuf.cap - t->rbuf.len - 1, 0);
        if (r > 0) {
            t->rbuf.len += (size_t)r;
            t->rbuf.data[t->rbuf.len] = '\0';
            return 1;
        }
        if (r == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(t, t->fd, POLLIN, deadline) == 0)
            continue;
        return -1;
    }
}

static const char *find_crlf(const char *p, const char *end)
{
    for (; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n')
            return p;
    return NULL;
}

/* Whether a chunked body starting at p is complete: 1 yes (*end_out set), 0 need more, -1 malformed. */
static int chunked_complete(const char *p, const char *end, const char **end_out)
{
    for (;;) {
        const char *eol = find_crlf(p, end);
        if (eol == NULL)
            return end - p > 64 ? -1 : 0;
        uint64_t size = 0;
        const char *c = p;
        int digits = 0;
        for (; c < eol; c++, digits++) {
            int d = hex_digit(*c, HEX_ANY_CASE);
            if (d < 0)
                break;
            if (digits >= 8)
                return -1;
            size = size * 16 + (uint64_t)d;
        }
        if (digits == 0 || (c < eol && *c != ';' && *c != ' '))
            return -1;
        p = eol + 2;
        if (size == 0) {
            /* trailer fields, then the empty line */
            for (;;) {
                eol = find_crlf(p, end);
                if (eol == NULL)
                    return 0;
                if (eol == p) {
                    *end_out = eol + 2;
                    return 1;
                }
                p = eol + 2;
            }
        }
        if (size > RESPONSE_BODY_MAX)
            return -1;
        if ((uint64_t)(end - p) < size + 2)
            return 0;
        if (p[size] != '\r' || p[size + 1] != '\n')
            return -1;
        p += size + 2;
    }
}

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    *value = v;
    return true;
}

static bool value_has(const char *v, const char *end, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = v; p + n <= end; p++)
        if (strncasecmp(p, token, n) == 0)
            return true;
    return false;
}

/*
 * Read one response on t->fd. Returns the status code, or -1 on error
 * (*got_any tells whether any byte arrived). *keep is false when the
 * connection cannot be reused.
 */
static int read_response(tele_t *t, uint64_t deadline, bool *keep, bool *got_any)
{
    *keep = false;
    *got_any = false;
    const char *head_end = NULL;
    for (;;) {
        if (t->rbuf.len > 0) {
            *got_any = true;
            head_end = strstr(t->rbuf.data, "\r\n\r\n");
            if (head_end != NULL)
                break;
            if (t->rbuf.len > RESPONSE_HEAD_MAX)
                return -1;
        }
        if (recv_some(t, deadline) <= 0)
            return -1;
    }
    const char *p = t->rbuf.data;
    int minor = 0, status = 0;
    if (sscanf(p, "HTTP/1.%d %3d", &minor, &status) != 2 || status < 100 || status > 599)
        return -1;
    bool chunked = false, close_conn = minor == 0, has_len = false;
    uint64_t clen = 0;
    const char *line = find_crlf(p, head_end + 2) + 2;
    while (line < head_end + 2) {
        const char *eol = find_crlf(line, head_end + 2);
        size_t len = (size_t)(eol - line);
        const char *v;
        if (header_is(line, len, "content-length", &v)) {
            char *endp;
            clen = strtoull(v, &endp, 10);
            if (endp == v || clen > RESPONSE_BODY_MAX)
                return -1;
            has_len = true;
        } else if (header_is(line, len, "transfer-encoding", &v)) {
            chunked = value_has(v, eol, "chunked");
        } else if (header_is(line, len, "connection", &v)) {
            if (value_has(v, eol, "close"))
                close_conn = true;
            else if (value_has(v, eol, "keep-alive"))
                close_conn = false;
        }
        line = eol + 2;
    }
    size_t body_at = (size_t)(head_end + 4 - t->rbuf.data);
    size_t consumed;
    if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
        consumed = body_at;
    } else if (chunked) {
        for (;;) {
            const char *end = NULL;
            int rc = chunked_complete(t->rbuf.data + body_at, t->rbuf.data + t->rbuf.len, &end);
            if (rc < 0)
                return -1;
            if (rc == 1) {
                consumed = (size_t)(end - t->rbuf.data);
                break;
            }
            if (t->rbuf.len - body_at > RESPONSE_BODY_MAX + 4096 || recv_some(t, deadline) <= 0)
                return -1;
        }
    } else if (has_len) {
        while (t->rbuf.len - body_at < clen)
            if (recv_some(t, deadline) <= 0)
                return -1;
        consumed = body_at + (size_t)clen;
    } else {
        /* body until the peer closes */
        for (;;) {
            int rc = recv_some(t, deadline);
            if (rc < 0 || t->rbuf.len - body_at > RESPONSE_BODY_MAX)
                return -1;
            if (rc == 0)
                break;
        }
        consumed = t->rbuf.len;
        close_conn = true;
    }
    /* anything past the response is unexpected: do not reuse such a connection */
    *keep = !close_conn && consumed == t->rbuf.len;
    t->rbuf.len = 0;
    return status;
}

/* POST body to path. 0 on a 2xx answer, -1 otherwise. */
static int http_post(tele_t *t, const char *path, const buf_t *body, uint64_t deadline)
{
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: outrider-proxy/" OUTRIDER_VERSION
                      "\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: zstd\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      path, t->host, (unsigned)t->port, body->len);
    if (hl < 0 || (size_t)hl >= sizeof(head))
        return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = t->fd >= 0;
        if (!reused && conn_open(t, deadline) != 0)
            return -1;
        bool keep = false, got_any = false;
        int status = -1;
        if (send_all(t, t->fd, head, (size_t)hl, deadline) == 0 &&
            send_all(t, t->fd, body->data, body->len, deadline) == 0)
            status = read_response(t, deadline, &keep, &got_any);
        if (status < 0) {
            conn_close(t);
            /* a kept-alive connection the server had closed: try once more on a fresh one */
            if (reused && !got_any)
                continue;
            return -1;
        }
        if (!keep)
            conn_close(t);
        return status >= 200 && status < 300 ? 0 : -1;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* exporter                                                            */

/* Deadline for the next step: the stop deadline when stopping, else now + limit. Under t->mu. */
static uint64_t step_deadline(const tele_t *t, uint64_t limit_ms)
{
    uint64_t d = mono_ms() + limit_ms;
    if (t->stopping && t->deadline_ms < d)
        d = t->deadline_ms;
    return d;
}

static void cond_wait_until(tele_t *t, uint64_t until_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000), .tv_nsec = (long)(until_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&t->cond, &t->mu, &ts);
}

/* Send one body, retrying with back-off. 0 sent, -1 given up (stopping and past the deadline). */
static int export_body(tele_t *t, int sig, const buf_t *body, size_t n_items)
{
    uint64_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        bool late = t->stopping && mono_ms() >= t->deadline_ms;
        uint64_t deadline = step_deadline(t, EXPORT_IO_TIMEOUT_MS);
        pthread_mutex_unlock(&t->mu);
        if (late)
            return -1;
        int rc = http_post(t, sig_paths[sig], body, deadline);
        pthread_mutex_lock(&t->mu);
        if (rc == 0) {
            t->export_ok[sig]++;
            if (sig == SIG_TRACES)
                t->st.spans_exported += n_items;
            else if (sig == SIG_METRICS)
                t->st.metric_points_exported += n_items;
            else
                t->st.logs_exported += n_items;
            pthread_mutex_unlock(&t->mu);
            return 0;
        }
        t->export_failed[sig]++;
        t->st.export_failures++;
        uint64_t until = mono_ms() + backoff;
        for (;;) {
            uint64_t now = mono_ms();
            if (now >= until || (t->stopping && now >= t->deadline_ms))
                break;
            cond_wait_until(t, t->stopping && t->deadline_ms < until ? t->deadline_ms : until);
        }
        pthread_mutex_unlock(&t->mu);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

static void export_batch(tele_t *t, batch_t *b)
{
    tele_resource_t res = {&t->self, t->service_name, t->instance_id};
    bool gave_up = false;
    for (int sig = 0; sig < SIG_N; sig++) {
        buf_t raw = BUF_INIT, z = BUF_INIT;
        size_t n_items = 0;
        int rc;
        if (sig == SIG_TRACES)
            rc = tele_otlp_traces(&res, b->recs, b->n_recs, b->strings, &raw, &n_items);
        else if (sig == SIG_METRICS)
            rc = tele_otlp_metrics(&res, b->series, b->n_series, b->start_ns, b->end_ns, &raw, &n_items);
        else
            rc = tele_otlp_logs(&res, b->recs, b->n_recs, b->strings, &raw, &n_items);
        if (rc == 0 && !gave_up) {
            if (compress_encode(COMPRESS_ZSTD, raw.data, raw.len, ZSTD_LEVEL, &z) != 0 ||
                export_body(t, sig, &z, n_items) != 0)
                gave_up = true;
        }
        if (rc == 0 && gave_up) {
            pthread_mutex_lock(&t->mu);
            if (sig == SIG_TRACES)
                t->st.spans_dropped += n_items;
            else if (sig == SIG_METRICS)
                t->st.metric_batches_dropped++;
            else
                t->st.logs_dropped += n_items;
            pthread_mutex_unlock(&t->mu);
        }
        buf_dispose(&raw);
        buf_dispose(&z);
    }
}

static void *exporter_main(void *arg)
{
    tele_t *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->head == NULL && !t->stopping)
            cond_wait_until(t, mono_ms() + 1000);
        batch_t *b = t->head;
        if (b == NULL)
            break;
        t->head = b->next;
        if (t->head == NULL)
            t->tail = NULL;
        pthread_mutex_unlock(&t->mu);
        fold_metrics(t, b);
        if (t->host != NULL)
            export_batch(t, b);
        pthread_mutex_lock(&t->mu);
        t->queue_bytes -= b->bytes;
        pthread_mutex_unlock(&t->mu);
        batch_free(b);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    conn_close(t);
    return NULL;
}

int tele_start(tele_t *t)
{
    if (t->started)
        return 0;
    if (pthread_create(&t->thread, NULL, exporter_main, t) != 0) {
        log_error("telemetry: cannot start the exporter thread");
        return -1;
    }
    t->started = true;
    return 0;
}

void tele_stop(tele_t *t, uint64_t timeout_ms)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    if (!t->stopping) {
        t->stopping = true;
        t->deadline_ms = mono_ms() + timeout_ms;
        atomic_store(&t->io_stop_ms, t->deadline_ms ? t->deadline_ms : 1);
    }
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    if (t->started && !t->joined) {
        pthread_join(t->thread, NULL);
        t->joined = true;
    }
    /* without a thread (never started): fold what is queued, count the records as dropped */
    for (;;) {
        pthread_mutex_lock(&t->mu);
        batch_t *b = t->head;
        if (b != NULL) {
            t->head = b->next;
            if (t->head == NULL)
                t->tail = NULL;
            t->queue_bytes -= b->bytes;
            if (t->host != NULL) {
                t->st.spans_dropped += b->n_spans;
                t->st.logs_dropped += b->n_logs;
            }
        }
        pthread_mutex_unlock(&t->mu);
        if (b == NULL)
            break;
        fold_metrics(t, b);
        batch_free(b);
    }
}

void tele_destroy(tele_t *t)
{
    if (t == NULL)
        return;
    tele_stop(t, 0);
    stable_dispose(&t->cum);
    buf_dispose(&t->rbuf);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->cum_mu);
    free(t->host);
    free(t->service_name);
    free(t->instance_id);
    free(t);
}

void tele_get_stats(tele_t *t, tele_stats_t *out)
{
    pthread_mutex_lock(&t->mu);
    *out = t->st;
    out->queue_bytes = t->queue_bytes;
    pthread_mutex_unlock(&t->mu);
}

/* ------------------------------------------------------------------ */
/* Prometheus text                                                     */

/* Shortest text that reads back as v; integers without exponent. */
static void append_double(buf_t *out, double v)
{
    if (isnan(v)) {
        buf_append_str(out, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(tmp, sizeof(tmp), "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
    }
    buf_append_str(out, tmp);
}

static void append_label_value(buf_t *out, const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '\\')
            buf_append_str(out, "\\\\");
        else if (c == '"')
            buf_append_str(out, "\\\"");
        else if (c == '\n')
            buf_append_str(out, "\\n");
        else
            buf_append_char(out, c);
    }
}

/* name{labels[,le="..."]} */
static void append_sample_head(buf_t *out, const char *name, const char *suffix, const tele_labels_t *l, const char *le)
{
    buf_append_str(out, name);
    buf_append_str(out, suffix);
    buf_append_char(out, '{');
    bool first = true;
    for (int k = 0; k < TELE_NLABELS; k++) {
        if (!tele_label_used((enum tele_series_kind)l->kind, (enum tele_label)k))
            continue;
        if (!first)
            buf_append_char(out, ',');
        first = false;
        buf_append_str(out, tele_label_name((enum tele_label)k));
        buf_append_str(out, "=\"");
        append_label_value(out, l->v[k], l->len[k]);
        buf_append_char(out, '"');
    }
    if (le != NULL) {
        buf_append_str(out, first ? "le=\"" : ",le=\"");
        buf_append_str(out, le);
        buf_append_char(out, '"');
    }
    buf_append_str(out, "} ");
}

static void family_header(buf_t *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum { F_REQUESTS, F_DURATION, F_REQ_BYTES, F_RESP_BYTES, F_TCP_OPENED, F_TCP_CLOSED, F_TCP_SENT, F_TCP_RECV, F_N };

static const struct {
    const char *name, *help;
    bool histogram;
} families[F_N] = {
    {"istio_requests_total", "Requests handled, by reporter, workload, service and response code.", false},
    {"istio_request_duration_milliseconds", "Request duration in milliseconds.", true},
    {"istio_request_bytes", "Request body sizes in bytes.", true},
    {"istio_response_bytes", "Response body sizes in bytes.", true},
    {"istio_tcp_connections_opened_total", "Tunnelled connections opened.", false},
    {"istio_tcp_connections_closed_total", "Tunnelled connections closed.", false},
    {"istio_tcp_sent_bytes_total", "Bytes sent to the client on tunnelled connections.", false},
    {"istio_tcp_received_bytes_total", "Bytes received from the client on tunnelled connections.", false},
};

static bool family_has(int f, const tele_series_t *s)
{
    const tele_values_t *v = &s->val;
    if (s->labels->kind == TELE_SERIES_HTTP)
        return f <= F_RESP_BYTES && v->requests > 0;
    switch (f) {
    case F_TCP_OPENED:
    case F_TCP_CLOSED:
    case F_TCP_SENT:
    case F_TCP_RECV: return v->tcp_opened + v->tcp_closed + v->tcp_sent + v->tcp_received > 0;
    default: return false;
    }
}

static void render_histogram(buf_t *out, const char *name, const tele_series_t *s, const double *bounds, size_t nb,
                             const uint64_t *buckets, double sum)
{
    uint64_t acc = 0;
    char le[40];
    for (size_t i = 0; i <= nb; i++) {
        acc += buckets[i];
        if (i < nb) {
            buf_t tmp = BUF_INIT;
            append_double(&tmp, bounds[i]);
            snprintf(le, sizeof(le), "%s", tmp.data);
            buf_dispose(&tmp);
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        append_sample_head(out, name, "_bucket", s->labels, le);
        buf_append_u64(out, acc);
        buf_append_char(out, '\n');
    }
    append_sample_head(out, name, "_sum", s->labels, NULL);
    append_double(out, sum);
    buf_append_char(out, '\n');
    append_sample_head(out, name, "_count", s->labels, NULL);
    buf_append_u64(out, s->val.requests);
    buf_append_char(out, '\n');
}

static void render_family(buf_t *out, int f, entry_t *const *list, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = family_has(f, &list[i]->s);
    if (!any)
        return;
    const char *name = families[f].name;
    family_header(out, name, families[f].histogram ? "histogram" : "counter", families[f].help);
    for (size_t i = 0; i < n; i++) {
        const tele_series_t *s = &list[i]->s;
        const tele_values_t *v = &s->val;
        if (!family_has(f, s))
            continue;
        switch (f) {
        case F_DURATION:
            render_histogram(out, name, s, tele_duration_bounds_ms, TELE_DUR_BOUNDS, v->dur_buckets, v->dur_sum_ms);
            continue;
        case F_REQ_BYTES:
            render_histogram(out, name, s, tele_bytes_bounds, TELE_BYTES_BOUNDS, v->req_buckets, (double)v->req_sum);
            continue;
        case F_RESP_BYTES:
            render_histogram(out, name, s, tele_bytes_bounds, TELE_BYTES_BOUNDS, v->resp_buckets, (double)v->resp_sum);
            continue;
        default: break;
        }
        uint64_t value = f == F_REQUESTS     ? v->requests
                         : f == F_TCP_OPENED ? v->tcp_opened
                         : f == F_TCP_CLOSED ? v->tcp_closed
                         : f == F_TCP_SENT   ? v->tcp_sent
                                             : v->tcp_received;
        append_sample_head(out, name, "", s->labels, NULL);
        buf_append_u64(out, value);
        buf_append_char(out, '\n');
    }
}

void tele_render_prometheus(tele_t *t, buf_t *out)
{
    pthread_mutex_lock(&t->cum_mu);
    for (int f = 0; f < F_N; f++)
        render_family(out, f, t->cum.list, t->cum.n);
    pthread_mutex_unlock(&t->cum_mu);

    tele_stats_t st;
    uint64_t ok[SIG_N], failed[SIG_N], series_dropped;
    pthread_mutex_lock(&t->mu);
    st = t->st;
    st.queue_bytes = t->queue_bytes;
    memcpy(ok, t->export_ok, sizeof(ok));
    memcpy(failed, t->export_failed, sizeof(failed));
    series_dropped = t->series_dropped;
    pthread_mutex_unlock(&t->mu);

    family_header(out, "outrider_proxy_telemetry_dropped_total", "counter",
                  "Spans and log records dropped, and metric batches dropped, because the export queue was full or "
                  "the endpoint stayed down.");
    buf_printf(out, "outrider_proxy_telemetry_dropped_total{signal=\"traces\"} %llu\n",
               (unsigned long long)st.spans_dropped);
    buf_printf(out, "outrider_proxy_telemetry_dropped_total{signal=\"metrics\"} %llu\n",
               (unsigned long long)st.metric_batches_dropped);
    buf_printf(out, "outrider_proxy_telemetry_dropped_total{signal=\"logs\"} %llu\n",
               (unsigned long long)st.logs_dropped);
    family_header(out, "outrider_proxy_telemetry_exported_total", "counter",
                  "Spans, metric data points and log records the OTLP endpoint accepted.");
    buf_printf(out, "outrider_proxy_telemetry_exported_total{signal=\"traces\"} %llu\n",
               (unsigned long long)st.spans_exported);
    buf_printf(out, "outrider_proxy_telemetry_exported_total{signal=\"metrics\"} %llu\n",
               (unsigned long long)st.metric_points_exported);
    buf_printf(out, "outrider_proxy_telemetry_exported_total{signal=\"logs\"} %llu\n",
               (unsigned long long)st.logs_exported);
    family_header(out, "outrider_proxy_export_requests_total", "counter", "OTLP export requests, by outcome.");
    for (int s = 0; s < SIG_N; s++) {
        buf_printf(out, "outrider_proxy_export_requests_total{signal=\"%s\",result=\"success\"} %llu\n", sig_names[s],
                   (unsigned long long)ok[s]);
        buf_printf(out, "outrider_proxy_export_requests_total{signal=\"%s\",result=\"failure\"} %llu\n", sig_names[s],
                   (unsigned long long)failed[s]);
    }
    family_header(out, "outrider_proxy_telemetry_series_dropped_total", "counter",
                  "Metric updates dropped because a table already held its limit of label sets.");
    buf_printf(out, "outrider_proxy_telemetry_series_dropped_total %llu\n", (unsigned long long)series_dropped);
    family_header(out, "outrider_proxy_telemetry_queue_bytes", "gauge", "Bytes of telemetry waiting for the exporter.");
    buf_printf(out, "outrider_proxy_telemetry_queue_bytes %zu\n", st.queue_bytes);
}
