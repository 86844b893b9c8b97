/*
 * telemetry: per-worker recording, the hand-offs to the exporter, the
 * exporter thread with its OTLP/HTTP client, and the /stats/prometheus
 * page (see telemetry.h for the design).
 *
 * Invariants. A worker's dimension slots, series table and the producer
 * side of its ring are touched only on its loop thread; the consumer side
 * of every ring and the exporter's pending records only on the exporter
 * thread (or in tele_stop once that thread has ended). t->mu guards the
 * metric batch queue, queue_bytes, the stats and the list of rings;
 * t->cum_mu guards the cumulative table. A dim is immutable once made and
 * reference-counted: the worker's slot holds one reference and every batch
 * series naming it another, so the exporter can still read a dim the
 * worker has forgotten. A queued batch, and a drained record, stay counted
 * in queue_bytes until the exporter has sent or given up on them, so the
 * byte limit also bounds what waits behind a failing endpoint.
 */
#include "telemetry.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <openssl/crypto.h> /* OPENSSL_cleanse */

#include "compress.h"
#include "file_stamp.h"
#include "http_client.h"
#include "log.h"
#include "mono.h"
#include "telemetry_otlp.h"
#include "telemetry_policy.h"
#include "telemetry_ring.h"
#include "xalloc.h"

#define TELE_MAX_SERIES 10000               /* label sets per worker table and in the cumulative table */
#define TELE_MAX_DIMS (2 * TELE_MAX_SERIES) /* destinations and peers interned per worker */
#define WORKER_IDLE_FLUSHES 10              /* a worker forgets a series unused for this many flushes */
#define RING_BYTES_DEFAULT (512u << 10)
#define RING_POLL_MS 20           /* the exporter drains the rings this often while records come */
#define RING_POLL_IDLE_MS 160     /* ... backing off to this while none do */
#define EXPORTER_NICE 19          /* the exporter thread yields the CPU to the workers */
#define EXPORT_IO_TIMEOUT_MS 5000 /* connect, send and receive of one export */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define RESPONSE_BODY_MAX (1u << 20)
#define TOKEN_MAX 4096       /* bytes of the bearer token (identity.h's bound for the CA's token) */
#define FILE_CHECK_MS 1000   /* the token and client certificate files are looked at this often */
#define REFUSAL_LOG_MS 30000 /* an endpoint's 401 or 403 is logged at most this often */
#define ZSTD_LEVEL                                                                                                     \
    (-4) /* zstd --fast=4: 9.9x on access logs against 12.6x at level 1, for 2.2k fewer instructions a record */
#define RING_RELEASE_EVERY 64 /* records read between two releases of their ring room */

enum { SIG_TRACES, SIG_METRICS, SIG_LOGS, SIG_N };
static const char *const sig_names[SIG_N] = {"traces", "metrics", "logs"};
static const char *const sig_paths[SIG_N] = {"/v1/traces", "/v1/metrics", "/v1/logs"};

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

/* Find by a label list x or, when x is NULL, by another label set lb. */
static entry_t *stable_find(const stable_t *t, uint64_t h, const tele_label_list_t *x, const tele_labels_t *lb)
{
    if (t->cap == 0)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask; t->slots[i] != NULL; i = (i + 1) & mask) {
        const tele_labels_t *y = t->slots[i]->s.labels;
        if (y->hash != h)
            continue;
        if (x != NULL ? tele_labels_equal(y, x) : tele_labels_same(y, lb))
            return t->slots[i];
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

/* ------------------------------------------------------------------ */
/* dims: a destination or a peer as the metric labels see it           */

enum dim_kind { DIM_DEST, DIM_PEER, DIM_TUPLE };
#define DIM_FIELDS 8 /* TELE_POLICY_MAX_EXPRS for a tuple of Telemetry tag values */
enum { DF_SERVICE, DF_NAME, DF_NAMESPACE, DF_VERSION, DF_APP }; /* DIM_DEST */
/* DIM_PEER */
enum { PF_NAMESPACE, PF_WORKLOAD, PF_APP, PF_VERSION, PF_CANON_SVC, PF_CANON_REV, PF_CLUSTER, PF_PRINCIPAL };

typedef struct dim {
    _Atomic uint32_t refs;
    uint8_t kind; /* enum dim_kind */
    uint64_t hash;
    uint16_t len[DIM_FIELDS];
    const char *v[DIM_FIELDS]; /* NUL-terminated, into data */
    char data[];
} dim_t;

/* A dim's would-be values: cut to TELE_LABEL_MAX and made valid UTF-8, as labels are. */
typedef struct dimkey {
    uint8_t kind;
    uint16_t len[DIM_FIELDS];
    uint64_t hash;
    char v[DIM_FIELDS][TELE_LABEL_MAX];
} dimkey_t;

static void dimkey_init(dimkey_t *k, enum dim_kind kind)
{
    k->kind = (uint8_t)kind;
    memset(k->len, 0, sizeof(k->len));
}

static void dimkey_set(dimkey_t *k, int i, const char *p, size_t n)
{
    if (n > TELE_LABEL_MAX)
        n = TELE_LABEL_MAX;
    if (n > 0)
        tele_utf8_copy(k->v[i], p, n);
    k->len[i] = (uint16_t)n;
}

static void dimkey_peer_field(dimkey_t *k, int i, const char *f)
{
    dimkey_set(k, i, f, strnlen(f, PEER_FIELD_MAX));
}

static void dimkey_hash(dimkey_t *k)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ k->kind;
    for (int i = 0; i < DIM_FIELDS; i++)
        h = XXH3_64bits_withSeed(k->v[i], k->len[i], h);
    k->hash = h;
}

static bool dim_is(const dim_t *d, const dimkey_t *k)
{
    if (d->hash != k->hash || d->kind != k->kind || memcmp(d->len, k->len, sizeof(d->len)) != 0)
        return false;
    for (int i = 0; i < DIM_FIELDS; i++)
        if (memcmp(d->v[i], k->v[i], k->len[i]) != 0)
            return false;
    return true;
}

static dim_t *dim_new(const dimkey_t *k)
{
    size_t total = 0;
    for (int i = 0; i < DIM_FIELDS; i++)
        total += k->len[i] + 1u;
    dim_t *d = xmalloc(sizeof(*d) + total);
    atomic_init(&d->refs, 1);
    d->kind = k->kind;
    d->hash = k->hash;
    memcpy(d->len, k->len, sizeof(d->len));
    char *p = d->data;
    for (int i = 0; i < DIM_FIELDS; i++) {
        memcpy(p, k->v[i], k->len[i]);
        p[k->len[i]] = '\0';
        d->v[i] = p;
        p += k->len[i] + 1u;
    }
    return d;
}

static void dim_ref(dim_t *d)
{
    if (d != NULL)
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
}

static void dim_unref(dim_t *d)
{
    if (d != NULL && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
        free(d);
}

static str_t dim_str(const dim_t *d, int i)
{
    return (str_t){d->v[i], d->len[i]};
}

/* The peer_info_t a peer dim stands for (its name, not a label, is left empty). */
static void dim_peer_info(const dim_t *d, peer_info_t *p)
{
    memset(p, 0, sizeof(*p));
    static const size_t at[DIM_FIELDS] = {
        [PF_NAMESPACE] = offsetof(peer_info_t, namespace),
        [PF_WORKLOAD] = offsetof(peer_info_t, workload),
        [PF_APP] = offsetof(peer_info_t, app),
        [PF_VERSION] = offsetof(peer_info_t, version),
        [PF_CANON_SVC] = offsetof(peer_info_t, canonical_service),
        [PF_CANON_REV] = offsetof(peer_info_t, canonical_revision),
        [PF_CLUSTER] = offsetof(peer_info_t, cluster_id),
    };
    for (int i = 0; i < PF_PRINCIPAL; i++) { /* the principal is no peer_info_t field: dim_str(d, PF_PRINCIPAL) */
        size_t n = d->len[i] < PEER_FIELD_MAX - 1 ? d->len[i] : PEER_FIELD_MAX - 1;
        memcpy((char *)p + at[i], d->v[i], n);
    }
}

/* ------------------------------------------------------------------ */
/* hub                                                                 */

/* A series in a metric batch: what its labels are made of, and its deltas. */
typedef struct mseries {
    dim_t *dest, *peer;    /* one reference each; peer NULL when the request had no peer metadata */
    dim_t *tuple;          /* Telemetry tag values (a reference), NULL when the policy has none */
    tele_policy_t *policy; /* a reference; NULL: Istio's defaults */
    uint32_t code, flags;
    uint8_t kind, reporter;
    uint8_t mtls; /* the hop was mutual TLS */
    tele_values_t val;
} mseries_t;

typedef struct batch {
    struct batch *next;
    size_t bytes; /* counted in queue_bytes while queued or being exported */
    uint64_t start_ns, end_ns;
    mseries_t *s;
    size_t n;
} batch_t;

/* One worker's ring of raw records, owned by the hub (the exporter frees it after the worker has gone). */
typedef struct chan {
    struct chan *next;
    tele_ring_t *ring;
    _Atomic uint64_t spans_dropped, logs_dropped; /* written by the worker only: the ring was full */
    _Atomic bool closed;                          /* the worker is gone: drain, fold the counters, free */
} chan_t;

/* Records drained from the rings and not exported yet (exporter thread). */
typedef struct pending {
    tele_rec_t *recs;
    size_t n, cap, n_spans, n_logs;
    buf_t strings;
    size_t bytes;      /* counted in queue_bytes */
    uint64_t first_ms; /* monotonic, when the oldest of them was drained */
} pending_t;

struct tele {
    peer_info_t self;
    char self_principal[TELE_PRINCIPAL_MAX]; /* our SPIFFE id, "" without an identity */
    char *host;                              /* the endpoint's base URL ("http://collector:4318"); NULL: no export */
    char *ca_file;                           /* trusted CAs for an https endpoint; NULL: the system's */
    char *token_file;                        /* bearer token; NULL: none */
    char *cert_file, *key_file;              /* client certificate; NULL: none */
    bool use_identity;                       /* present the workload certificate (tele_set_identity) */
    char *service_name, *instance_id;
    uint64_t flush_interval_ms;
    size_t max_queue_bytes, max_batch_records, max_series, ring_bytes;
    bool access_log;

    pthread_mutex_t mu; /* queue, chans, stats */
    pthread_cond_t cond;
    batch_t *head, *tail;
    chan_t *chans;
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

    tls_ctx_t *identity_ctx; /* under mu: the workload certificate's ctx (tele_set_identity), NULL before */
    bool identity_new;       /* under mu: it changed since the client was made */

    /* exporter thread only */
    pending_t pend;
    http_client_t *client; /* made on first use */
    char *token;           /* the bearer token as last read (wiped when replaced); NULL: none */
    file_stamp_t token_stamp, cert_stamp, key_stamp;
    uint64_t next_check_ms;     /* monotonic: when the files are looked at next */
    uint64_t refusal_logged_ms; /* monotonic: when a 401 or 403 was last logged */
};

/* An open-addressing index of positions in an array: pos[i] is a position + 1, 0 empty; cap a power of two. */
typedef struct pindex {
    uint32_t *pos;
    uint32_t cap;
} pindex_t;

static void pindex_put(pindex_t *x, uint64_t hash, uint32_t position)
{
    uint32_t mask = x->cap - 1;
    uint32_t i = (uint32_t)hash & mask;
    while (x->pos[i] != 0)
        i = (i + 1) & mask;
    x->pos[i] = position + 1;
}

/* Empty the index, with room for cap entries. */
static void pindex_reset(pindex_t *x, uint32_t cap)
{
    free(x->pos);
    x->pos = xcalloc(cap, sizeof(*x->pos));
    x->cap = cap;
}

/* A worker's interned dim; handles are (gen << 32 | slot index). */
typedef struct dslot {
    dim_t *dim;      /* NULL: free */
    uint32_t gen;    /* bumped when the slot is freed, so old handles stop matching */
    uint32_t series; /* worker series naming it */
} dslot_t;

/* A worker series key: small integers only. */
typedef struct skey {
    uint64_t dest, peer;   /* handles; peer 0 = no peer metadata */
    uint64_t tuple;        /* handle of the Telemetry tag values, 0 = none */
    tele_policy_t *policy; /* the series holds a reference; NULL: Istio's defaults */
    uint32_t code, flags;
    uint8_t kind, reporter;
    uint8_t mtls;   /* the hop was mutual TLS (connection_security_policy, our principal) */
    uint8_t pad[5]; /* zero: keys are compared with memcmp */
} skey_t;

typedef struct wseries {
    skey_t k;
    uint32_t idle; /* flushes since it last changed */
    bool dirty;    /* changed since the last flush */
    tele_values_t val;
} wseries_t;

struct tele_worker {
    tele_t *t;
    uv_timer_t timer;
    chan_t *chan; /* NULL without an endpoint */
    /* dims */
    dslot_t *dslots;
    uint32_t n_dslots, cap_dslots, n_dims;
    uint32_t *dfree; /* free slot indexes */
    uint32_t n_dfree;
    pindex_t dindex; /* slots by dim hash */
    /* series */
    wseries_t *ser;
    uint32_t n_ser, cap_ser;
    pindex_t sindex; /* series by key hash */
    uint64_t last_flush_ns;
    uint64_t series_dropped; /* handed to t at the next flush */
    uint64_t spans_dropped, logs_dropped;
};

tele_t *tele_create(const tele_opts_t *opts)
{
    tele_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (opts->self != NULL)
        t->self = *opts->self;
    if (opts->self_principal != NULL)
        snprintf(t->self_principal, sizeof t->self_principal, "%s", opts->self_principal);
    if (opts->otlp_url != NULL && opts->otlp_url[0] != '\0') {
        size_t n = strlen(opts->otlp_url);
        while (n > 0 && opts->otlp_url[n - 1] == '/')
            n--;
        t->host = xstrdup(opts->otlp_url);
        t->host[n] = '\0';
    } else if (opts->otlp_host != NULL && opts->otlp_host[0] != '\0') {
        char url[300];
        snprintf(url, sizeof(url), "http://%s%s%s:%u", strchr(opts->otlp_host, ':') ? "[" : "", opts->otlp_host,
                 strchr(opts->otlp_host, ':') ? "]" : "", (unsigned)opts->otlp_port);
        t->host = xstrdup(url);
    }
    t->ca_file = opts->otlp_ca_file != NULL && opts->otlp_ca_file[0] != '\0' ? xstrdup(opts->otlp_ca_file) : NULL;
    if (opts->otlp_token_file != NULL && opts->otlp_token_file[0] != '\0')
        t->token_file = xstrdup(opts->otlp_token_file);
    if (opts->otlp_cert_file != NULL && opts->otlp_cert_file[0] != '\0' && opts->otlp_key_file != NULL) {
        t->cert_file = xstrdup(opts->otlp_cert_file);
        t->key_file = xstrdup(opts->otlp_key_file);
    }
    t->use_identity = opts->otlp_identity_cert;
    if (t->host != NULL && strncmp(t->host, "https://", 8) != 0) {
        if (t->cert_file != NULL || t->use_identity)
            log_warn("telemetry: a client certificate is for https endpoints; %s is http, so none is sent", t->host);
        if (t->token_file != NULL)
            log_warn("telemetry: the bearer token goes to %s in clear text", t->host);
    } else if (t->host != NULL && t->use_identity && t->ca_file != NULL) {
        log_warn("telemetry: caFile is not used with clientCertificate identity: the mesh's roots "
                 "(spec.identity.rootCertificates) verify %s",
                 t->host);
    }
    t->service_name = xstrdup(opts->service_name ? opts->service_name : "");
    t->instance_id = xstrdup(opts->instance_id ? opts->instance_id : "");
    t->flush_interval_ms = opts->flush_interval_ms ? opts->flush_interval_ms : 1000;
    t->max_queue_bytes = opts->max_queue_bytes ? opts->max_queue_bytes : 16u << 20;
    t->max_batch_records = opts->max_batch_records ? opts->max_batch_records : 1024;
    t->ring_bytes = opts->ring_bytes ? opts->ring_bytes : RING_BYTES_DEFAULT;
    t->max_series = TELE_MAX_SERIES;
    t->access_log = opts->access_log;
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->cum_mu, NULL);
    mono_cond_init(&t->cond);
    return t;
}

static void batch_free(batch_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        dim_unref(b->s[i].dest);
        dim_unref(b->s[i].peer);
        dim_unref(b->s[i].tuple);
        tele_policy_unref(b->s[i].policy);
    }
    free(b->s);
    free(b);
}

/* ------------------------------------------------------------------ */
/* worker: dims                                                        */

static uint64_t handle_of(const tele_worker_t *w, uint32_t slot)
{
    return (uint64_t)w->dslots[slot].gen << 32 | slot;
}

static bool handle_valid(const tele_worker_t *w, uint64_t h)
{
    uint32_t slot = (uint32_t)h;
    return h != 0 && slot < w->n_dslots && w->dslots[slot].dim != NULL && w->dslots[slot].gen == (uint32_t)(h >> 32);
}

static void dindex_rebuild(tele_worker_t *w, uint32_t cap)
{
    pindex_reset(&w->dindex, cap);
    for (uint32_t s = 0; s < w->n_dslots; s++)
        if (w->dslots[s].dim != NULL)
            pindex_put(&w->dindex, w->dslots[s].dim->hash, s);
}

/* The handle of the dim with these values, interned now if new; 0 when the worker holds TELE_MAX_DIMS already. */
static uint64_t dim_intern(tele_worker_t *w, dimkey_t *k)
{
    dimkey_hash(k);
    if (w->dindex.cap > 0) {
        uint32_t mask = w->dindex.cap - 1;
        for (uint32_t i = (uint32_t)k->hash & mask; w->dindex.pos[i] != 0; i = (i + 1) & mask) {
            uint32_t s = w->dindex.pos[i] - 1;
            if (dim_is(w->dslots[s].dim, k))
                return handle_of(w, s);
        }
    }
    if (w->n_dims >= TELE_MAX_DIMS)
        return 0;
    uint32_t slot;
    if (w->n_dfree > 0) {
        slot = w->dfree[--w->n_dfree];
    } else {
        if (w->n_dslots == w->cap_dslots) {
            w->cap_dslots = w->cap_dslots ? w->cap_dslots * 2 : 64;
            w->dslots = xrealloc(w->dslots, w->cap_dslots * sizeof(*w->dslots));
            w->dfree = xrealloc(w->dfree, w->cap_dslots * sizeof(*w->dfree));
        }
        slot = w->n_dslots++;
        w->dslots[slot].gen = 1;
    }
    w->dslots[slot].dim = dim_new(k);
    w->dslots[slot].series = 0;
    w->n_dims++;
    if (w->n_dims * 2 > w->dindex.cap)
        dindex_rebuild(w, w->dindex.cap ? w->dindex.cap * 2 : 128);
    else
        pindex_put(&w->dindex, w->dslots[slot].dim->hash, slot);
    return handle_of(w, slot);
}

/* Forget the dims no series names any more (at flush); their handles stop being valid. */
static void dims_evict(tele_worker_t *w)
{
    bool any = false;
    for (uint32_t s = 0; s < w->n_dslots; s++) {
        dslot_t *d = &w->dslots[s];
        if (d->dim == NULL || d->series > 0)
            continue;
        dim_unref(d->dim);
        d->dim = NULL;
        if (++d->gen == 0)
            d->gen = 1;
        w->dfree[w->n_dfree++] = s;
        w->n_dims--;
        any = true;
    }
    if (any)
        dindex_rebuild(w, w->dindex.cap);
}

static uint64_t worker_dest(tele_worker_t *w, uint64_t *cache, str_t svc, str_t name, str_t ns, str_t version,
                            str_t app)
{
    if (cache != NULL && handle_valid(w, *cache))
        return *cache;
    dimkey_t k;
    dimkey_init(&k, DIM_DEST);
    dimkey_set(&k, DF_SERVICE, svc.ptr, svc.len);
    dimkey_set(&k, DF_NAME, name.ptr, name.len);
    dimkey_set(&k, DF_NAMESPACE, ns.ptr, ns.len);
    dimkey_set(&k, DF_VERSION, version.ptr, version.len);
    dimkey_set(&k, DF_APP, app.ptr, app.len);
    uint64_t h = dim_intern(w, &k);
    if (cache != NULL)
        *cache = h;
    return h;
}

static uint64_t worker_peer(tele_worker_t *w, uint64_t *cache, const peer_info_t *p, str_t principal)
{
    if (cache != NULL && handle_valid(w, *cache))
        return *cache;
    static const peer_info_t none;
    if (p == NULL)
        p = &none; /* mutual TLS without peer metadata: the principal alone */
    dimkey_t k;
    dimkey_init(&k, DIM_PEER);
    dimkey_set(&k, PF_PRINCIPAL, principal.ptr, principal.len);
    dimkey_peer_field(&k, PF_NAMESPACE, p->namespace);
    dimkey_peer_field(&k, PF_WORKLOAD, p->workload);
    dimkey_peer_field(&k, PF_APP, p->app);
    dimkey_peer_field(&k, PF_VERSION, p->version);
    dimkey_peer_field(&k, PF_CANON_SVC, p->canonical_service);
    dimkey_peer_field(&k, PF_CANON_REV, p->canonical_revision);
    dimkey_peer_field(&k, PF_CLUSTER, p->cluster_id);
    uint64_t h = dim_intern(w, &k);
    if (cache != NULL)
        *cache = h;
    return h;
}

/* ------------------------------------------------------------------ */
/* worker: series                                                      */

static uint64_t skey_hash(const skey_t *k)
{
    uint64_t h = k->dest * 0x9e3779b97f4a7c15ull;
    h ^= (k->peer + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full;
    h ^= (k->tuple ^ (uint64_t)(uintptr_t)k->policy) * 0x94d049bb133111ebull;
    h ^= ((uint64_t)k->code << 32 | k->flags) * 0x165667b19e3779f9ull;
    h ^= (uint64_t)k->mtls << 16 | (uint64_t)k->kind << 8 | k->reporter;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static void sindex_rebuild(tele_worker_t *w, uint32_t cap)
{
    pindex_reset(&w->sindex, cap);
    for (uint32_t i = 0; i < w->n_ser; i++)
        pindex_put(&w->sindex, skey_hash(&w->ser[i].k), i);
}

/* The series of k, added if new (NULL, counted, when the table is full). */
static wseries_t *worker_series(tele_worker_t *w, const skey_t *k)
{
    wseries_t *e;
    uint64_t h = skey_hash(k);
    if (w->sindex.cap > 0) {
        uint32_t mask = w->sindex.cap - 1;
        for (uint32_t i = (uint32_t)h & mask; w->sindex.pos[i] != 0; i = (i + 1) & mask) {
            e = &w->ser[w->sindex.pos[i] - 1];
            if (memcmp(&e->k, k, sizeof(*k)) == 0)
                goto found;
        }
    }
    if (w->n_ser >= w->t->max_series) {
        w->series_dropped++;
        return NULL;
    }
    if (w->n_ser == w->cap_ser) {
        w->cap_ser = w->cap_ser ? w->cap_ser * 2 : 64;
        w->ser = xrealloc(w->ser, w->cap_ser * sizeof(*w->ser));
    }
    e = &w->ser[w->n_ser++];
    memset(e, 0, sizeof(*e));
    e->k = *k;
    w->dslots[(uint32_t)k->dest].series++;
    if (k->peer != 0)
        w->dslots[(uint32_t)k->peer].series++;
    if (k->tuple != 0)
        w->dslots[(uint32_t)k->tuple].series++;
    tele_policy_ref(k->policy);
    if (w->n_ser * 2 > w->sindex.cap)
        sindex_rebuild(w, w->sindex.cap ? w->sindex.cap * 2 : 128);
    else
        pindex_put(&w->sindex, h, w->n_ser - 1);
found:
    e->dirty = true;
    e->idle = 0;
    return e;
}

static wseries_t *request_series(tele_worker_t *w, enum tele_series_kind kind, enum tele_reporter reporter,
                                 uint64_t dest, uint64_t peer, bool has_peer, int code, uint32_t flags,
                                 tele_policy_t *policy, uint64_t tuple, bool has_tuple, bool mtls)
{
    if (dest == 0 || (has_peer && peer == 0) || (has_tuple && tuple == 0)) {
        w->series_dropped++;
        return NULL;
    }
    skey_t k;
    memset(&k, 0, sizeof(k));
    k.dest = dest;
    k.peer = peer;
    k.code = code < 0 ? 0 : (uint32_t)code;
    k.flags = flags;
    k.kind = (uint8_t)kind;
    k.reporter = (uint8_t)reporter;
    k.mtls = mtls;
    k.policy = policy;
    k.tuple = tuple;
    return worker_series(w, &k);
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
    if (t->host != NULL) {
        chan_t *c = xcalloc(1, sizeof(*c));
        c->ring = tele_ring_create(t->ring_bytes);
        atomic_init(&c->spans_dropped, 0);
        atomic_init(&c->logs_dropped, 0);
        atomic_init(&c->closed, false);
        pthread_mutex_lock(&t->mu);
        c->next = t->chans;
        t->chans = c;
        pthread_mutex_unlock(&t->mu);
        w->chan = c;
    }
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, worker_timer_cb, t->flush_interval_ms, t->flush_interval_ms);
    uv_unref((uv_handle_t *)&w->timer);
    return w;
}

/* The peer attributes of Telemetry expressions: the other side is upstream on the client side. */
static void peer_attrs(ax_ctx_t *ax, enum tele_reporter reporter, const peer_info_t *peer)
{
    if (reporter == TELE_SOURCE)
        ax->upstream_peer = peer;
    else
        ax->downstream_peer = peer;
}

/* The attributes Telemetry expressions read, from one request. */
static void request_attrs(const tele_request_t *r, ax_ctx_t *ax)
{
    memset(ax, 0, sizeof(*ax));
    ax->method = r->method;
    ax->path = r->path;
    ax->host = r->authority;
    ax->scheme = (str_t){"http", 4};
    ax->protocol = r->protocol;
    ax->headers = r->headers;
    ax->n_headers = r->n_headers;
    ax->response_code = r->response_code;
    ax->response_flags = r->response_flags;
    ax->duration_ms = r->duration_ns / 1000000u;
    ax->request_size = r->request_bytes;
    ax->response_size = r->response_bytes;
    tele_host_port(r->downstream_peer, &ax->source_address, &ax->source_port);
    uint32_t up_port;
    tele_host_port(r->upstream_host, &ax->destination_address, &up_port);
    ax->destination_port = r->destination_port ? r->destination_port : up_port;
    peer_attrs(ax, r->reporter, r->peer);
}

/* The handle of this request's Telemetry tag values (0 when the worker holds too many dims). */
static uint64_t worker_tuple(tele_worker_t *w, const tele_policy_t *pol, int mode, const ax_ctx_t *ax)
{
    str_t vals[TELE_POLICY_MAX_EXPRS];
    char scratch[TELE_POLICY_MAX_EXPRS][AX_SCRATCH];
    size_t n = tele_policy_tuple(pol, mode, ax, vals, scratch);
    dimkey_t k;
    dimkey_init(&k, DIM_TUPLE);
    for (size_t i = 0; i < n; i++)
        dimkey_set(&k, (int)i, vals[i].ptr, vals[i].len);
    return dim_intern(w, &k);
}

/* A span's custom tags, "name\0value\0" each, into buf; returns the bytes used. */
static size_t custom_tags(const tele_mode_policy_t *mp, const tele_request_t *r, char *buf, size_t cap)
{
    size_t used = 0;
    for (int i = 0; i < mp->n_custom; i++) {
        const tele_custom_tag_t *t = &mp->custom[i];
        str_t v = {t->value, t->value != NULL ? (uint32_t)strlen(t->value) : 0};
        bool have = t->has_value;
        const http1_header_t *f =
            t->header != NULL ? http1_header_find(r->headers, (uint32_t)r->n_headers, t->header) : NULL;
        if (f != NULL) {
            v = f->value;
            have = true;
        }
        if (!have)
            continue;
        size_t nl = strlen(t->name), vl = v.len > TELE_LABEL_MAX ? TELE_LABEL_MAX : v.len;
        if (used + nl + vl + 2 > cap)
            break;
        memcpy(buf + used, t->name, nl + 1);
        used += nl + 1;
        memcpy(buf + used, v.ptr, vl);
        used += vl;
        buf[used++] = '\0';
    }
    return used;
}

void tele_record(tele_worker_t *w, const tele_request_t *r)
{
    tele_t *t = w->t;
    tele_policy_t *pol = r->policy;
    int mode = r->reporter == TELE_SOURCE ? 0 : 1;
    const tele_mode_policy_t *mp = pol != NULL ? &pol->mode[mode] : NULL;
    ax_ctx_t ax;
    bool have_ax = false;
    wseries_t *e = NULL;
    if (mp == NULL || mp->n_groups[TELE_SERIES_HTTP] > 0) {
        uint64_t dest = worker_dest(w, r->dest_handle, r->destination_service, r->destination_service_name,
                                    r->destination_service_namespace, r->destination_version, r->destination_app);
        bool has_peer = r->peer != NULL || r->peer_principal.len > 0;
        uint64_t peer = has_peer ? worker_peer(w, r->peer_handle, r->peer, r->peer_principal) : 0;
        bool has_tuple = mp != NULL && mp->n_exprs > 0;
        uint64_t tuple = 0;
        if (has_tuple) {
            request_attrs(r, &ax);
            have_ax = true;
            tuple = worker_tuple(w, pol, mode, &ax);
        }
        e = request_series(w, TELE_SERIES_HTTP, r->reporter, dest, peer, has_peer, r->response_code, r->response_flags,
                           pol, tuple, has_tuple, r->mtls);
        if (e != NULL)
            tele_values_observe(&e->val, r->duration_ns, r->request_bytes, r->response_bytes);
    }

    if (w->chan == NULL)
        return;
    bool want_span = r->trace != NULL && r->trace->sampled == 1 && (mp == NULL || !mp->spans_off);
    bool want_log = mp == NULL || mp->log < 0 ? t->access_log : mp->log == 1;
    if (want_log && mp != NULL && mp->log_filter != NULL) {
        if (!have_ax)
            request_attrs(r, &ax);
        want_log = ax_eval_bool(mp->log_filter, &ax) == 1;
    }
    if (!want_span && !want_log)
        return;
    tele_raw_t h;
    str_t s[TS_COUNT];
    char tags[TELE_TAGS_MAX];
    str_t tag_str = STR_NULL;
    if (want_span && mp != NULL && mp->n_custom > 0)
        tag_str = (str_t){tags, (uint32_t)custom_tags(mp, r, tags, sizeof(tags))};
    size_t n = tele_raw_prepare(r, tag_str, &h, s);
    h.has_span = want_span && h.has_trace;
    h.has_log = want_log;
    if (!h.has_span && !h.has_log)
        return;
    void *p = tele_ring_reserve(w->chan->ring, n);
    if (p == NULL) {
        /* the exporter is behind: drop, count, never wait */
        w->spans_dropped += h.has_span;
        w->logs_dropped += h.has_log;
        atomic_store_explicit(&w->chan->spans_dropped, w->spans_dropped, memory_order_relaxed);
        atomic_store_explicit(&w->chan->logs_dropped, w->logs_dropped, memory_order_relaxed);
        return;
    }
    tele_raw_write(p, &h, s);
    tele_ring_commit(w->chan->ring);
    /* the span is on its way (e is still the slot: nothing since has touched the series table) */
    if (e != NULL && h.has_span)
        tele_values_exemplar(&e->val, h.trace_id, h.span_id, r->duration_ns, r->start_unix_ns + r->duration_ns);
}

void tele_record_tcp(tele_worker_t *w, const tele_tcp_t *r)
{
    tele_policy_t *pol = r->policy;
    int mode = r->reporter == TELE_SOURCE ? 0 : 1;
    const tele_mode_policy_t *mp = pol != NULL ? &pol->mode[mode] : NULL;
    if (mp != NULL && mp->n_groups[TELE_SERIES_TCP] == 0)
        return;
    uint64_t dest = worker_dest(w, NULL, r->destination_service, r->destination_service_name,
                                r->destination_service_namespace, r->destination_version, r->destination_app);
    bool has_peer = r->peer != NULL || r->peer_principal.len > 0;
    uint64_t peer = has_peer ? worker_peer(w, NULL, r->peer, r->peer_principal) : 0;
    bool has_tuple = mp != NULL && mp->n_exprs > 0;
    uint64_t tuple = 0;
    if (has_tuple) {
        ax_ctx_t ax;
        memset(&ax, 0, sizeof(ax));
        ax.destination_port = r->destination_port;
        peer_attrs(&ax, r->reporter, r->peer);
        tuple = worker_tuple(w, pol, mode, &ax);
    }
    wseries_t *e =
        request_series(w, TELE_SERIES_TCP, r->reporter, dest, peer, has_peer, 0, 0, pol, tuple, has_tuple, r->mtls);
    if (e == NULL)
        return;
    e->val.tcp_opened += r->opened;
    e->val.tcp_closed += r->closed;
    e->val.tcp_sent += r->sent_bytes;
    e->val.tcp_received += r->received_bytes;
}

/* Reset the flushed series, forget those idle for WORKER_IDLE_FLUSHES flushes and the dims no series names. */
static void worker_age(tele_worker_t *w)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < w->n_ser; i++) {
        wseries_t *e = &w->ser[i];
        if (e->dirty) {
            memset(&e->val, 0, sizeof(e->val));
            e->dirty = false;
            e->idle = 0;
        } else if (++e->idle >= WORKER_IDLE_FLUSHES) {
            w->dslots[(uint32_t)e->k.dest].series--;
            if (e->k.peer != 0)
                w->dslots[(uint32_t)e->k.peer].series--;
            if (e->k.tuple != 0)
                w->dslots[(uint32_t)e->k.tuple].series--;
            tele_policy_unref(e->k.policy);
            continue;
        }
        if (k != i)
            w->ser[k] = *e;
        k++;
    }
    if (k != w->n_ser) {
        w->n_ser = k;
        sindex_rebuild(w, w->sindex.cap);
    }
    dims_evict(w);
}

void tele_worker_flush(tele_worker_t *w)
{
    tele_t *t = w->t;
    uint64_t now = real_ns();
    size_t n_dirty = 0;
    for (uint32_t i = 0; i < w->n_ser; i++)
        n_dirty += w->ser[i].dirty;
    uint64_t end_ns = now > w->last_flush_ns ? now : w->last_flush_ns + 1;
    uint64_t series_dropped = w->series_dropped;
    w->series_dropped = 0;

    batch_t *b = NULL, *dropped = NULL;
    if (n_dirty > 0) {
        b = xcalloc(1, sizeof(*b));
        b->s = xcalloc(n_dirty, sizeof(*b->s));
        b->start_ns = w->last_flush_ns;
        b->end_ns = end_ns;
        for (uint32_t i = 0; i < w->n_ser; i++) {
            const wseries_t *e = &w->ser[i];
            if (!e->dirty)
                continue;
            mseries_t *m = &b->s[b->n++];
            m->dest = w->dslots[(uint32_t)e->k.dest].dim;
            m->peer = e->k.peer != 0 ? w->dslots[(uint32_t)e->k.peer].dim : NULL;
            m->tuple = e->k.tuple != 0 ? w->dslots[(uint32_t)e->k.tuple].dim : NULL;
            m->policy = e->k.policy;
            dim_ref(m->dest);
            dim_ref(m->peer);
            dim_ref(m->tuple);
            tele_policy_ref(m->policy);
            m->code = e->k.code;
            m->flags = e->k.flags;
            m->kind = e->k.kind;
            m->reporter = e->k.reporter;
            m->mtls = e->k.mtls;
            m->val = e->val;
        }
        b->bytes = sizeof(*b) + b->n * sizeof(*b->s);
    }
    if (b != NULL || series_dropped > 0) {
        pthread_mutex_lock(&t->mu);
        if (b != NULL) {
            if (t->queue_bytes + b->bytes > t->max_queue_bytes) {
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
        }
        t->series_dropped += series_dropped;
        pthread_mutex_unlock(&t->mu);
    }
    batch_free(dropped);
    worker_age(w);
    w->last_flush_ns = end_ns;
}

static void worker_close_cb(uv_handle_t *h)
{
    tele_worker_t *w = h->data;
    for (uint32_t s = 0; s < w->n_dslots; s++)
        dim_unref(w->dslots[s].dim);
    for (uint32_t i = 0; i < w->n_ser; i++)
        tele_policy_unref(w->ser[i].k.policy);
    free(w->dslots);
    free(w->dfree);
    free(w->dindex.pos);
    free(w->ser);
    free(w->sindex.pos);
    free(w);
}

void tele_worker_destroy(tele_worker_t *w)
{
    if (w == NULL)
        return;
    tele_worker_flush(w);
    if (w->chan != NULL)
        atomic_store_explicit(&w->chan->closed, true, memory_order_release);
    w->chan = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, worker_close_cb);
}

/* ------------------------------------------------------------------ */
/* exporter: label resolution and the cumulative table                 */

/* The label sets of a batch's series (series with equal labels merged) into out, which owns them. */
static void batch_resolve(const tele_t *t, const batch_t *b, stable_t *out)
{
    for (size_t i = 0; i < b->n; i++) {
        const mseries_t *m = &b->s[i];
        peer_info_t pi;
        const peer_info_t *peer = NULL;
        if (m->peer != NULL) {
            dim_peer_info(m->peer, &pi);
            peer = &pi;
        }
        str_t v[TELE_NLABELS];
        char code[12], flags[TELE_FLAGS_MAX];
        tele_request_t r;
        memset(&r, 0, sizeof(r));
        r.reporter = (enum tele_reporter)m->reporter;
        r.peer = peer;
        r.peer_principal = m->peer != NULL ? dim_str(m->peer, PF_PRINCIPAL) : STR_NULL;
        r.mtls = m->mtls;
        r.self_principal = m->mtls ? (str_t){t->self_principal, (uint32_t)strlen(t->self_principal)} : STR_NULL;
        r.destination_service = dim_str(m->dest, DF_SERVICE);
        r.destination_service_name = dim_str(m->dest, DF_NAME);
        r.destination_service_namespace = dim_str(m->dest, DF_NAMESPACE);
        r.destination_version = dim_str(m->dest, DF_VERSION);
        r.destination_app = dim_str(m->dest, DF_APP);
        if (m->kind == TELE_SERIES_HTTP) {
            r.response_code = (int)m->code;
            r.response_flags = m->flags;
            tele_request_labels(&r, &t->self, code, flags, v);
        } else {
            tele_tcp_t tcp = {.reporter = r.reporter,
                              .peer = r.peer,
                              .peer_principal = r.peer_principal,
                              .self_principal = r.self_principal,
                              .mtls = r.mtls,
                              .destination_service = r.destination_service,
                              .destination_service_name = r.destination_service_name,
                              .destination_service_namespace = r.destination_service_namespace,
                              .destination_version = r.destination_version,
                              .destination_app = r.destination_app};
            tele_tcp_labels(&tcp, &t->self, v);
        }
        enum tele_series_kind kind = (enum tele_series_kind)m->kind;
        str_t tuple[DIM_FIELDS];
        for (int k = 0; k < DIM_FIELDS; k++)
            tuple[k] = m->tuple != NULL ? dim_str(m->tuple, k) : STR_NULL;
        tele_label_list_t lists[4];
        size_t nl = tele_policy_labels(m->policy, m->reporter == TELE_SOURCE ? 0 : 1, kind, v, tuple, lists);
        for (size_t j = 0; j < nl; j++) {
            uint64_t h = tele_labels_hash(&lists[j]);
            entry_t *e = stable_find(out, h, &lists[j], NULL);
            if (e == NULL)
                e = stable_insert(out, tele_labels_new(&lists[j], h));
            tele_values_add(&e->s.val, &m->val);
        }
    }
}

static void fold_metrics(tele_t *t, entry_t *const *list, size_t n)
{
    if (n == 0)
        return;
    uint64_t dropped = 0;
    pthread_mutex_lock(&t->cum_mu);
    for (size_t i = 0; i < n; i++) {
        const tele_series_t *s = &list[i]->s;
        entry_t *e = stable_find(&t->cum, s->labels->hash, NULL, s->labels);
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
/* OTLP/HTTP client (exporter thread): http_client.h                   */

/* The token in path, without the whitespace around it: 0 with a heap copy in *out, or -1 with the reason. */
static int read_token(const char *path, char **out, char *why, size_t why_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "%s", strerror(errno));
        return -1;
    }
    char buf[TOKEN_MAX + 64];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof(buf) && ((got = read(fd, buf + n, sizeof(buf) - n)) > 0 || (got < 0 && errno == EINTR)))
        n += got > 0 ? (size_t)got : 0;
    close(fd);
    int rc = -1;
    size_t b = 0, e = n;
    while (b < e && strchr(" \t\r\n", buf[b]) != NULL)
        b++;
    while (e > b && strchr(" \t\r\n", buf[e - 1]) != NULL)
        e--;
    if (n == sizeof(buf) || e - b > TOKEN_MAX) {
        snprintf(why, why_len, "longer than %d bytes", TOKEN_MAX);
    } else if (e == b) {
        snprintf(why, why_len, "empty");
    } else {
        rc = 0;
        for (size_t i = b; i < e && rc == 0; i++)
            if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e)
                rc = -1;
        if (rc != 0)
            snprintf(why, why_len, "the token has spaces or bytes that are not printable ASCII");
        else
            *out = strndup(buf + b, e - b);
        if (rc == 0 && *out == NULL)
            log_fatal("out of memory");
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

static void drop_client(tele_t *t)
{
    http_client_destroy(t->client);
    t->client = NULL;
}

/*
 * Exporter thread, before a post, at most every FILE_CHECK_MS: read the
 * token again when its file changed (a bad file keeps the token before);
 * connect again when the client certificate's files or the workload
 * certificate changed.
 */
static void check_credentials(tele_t *t)
{
    uint64_t now = mono_now_ms();
    if (now < t->next_check_ms)
        return;
    t->next_check_ms = now + FILE_CHECK_MS;
    if (t->token_file != NULL) {
        file_stamp_t s = file_stamp(t->token_file);
        if (!file_stamp_eq(&s, &t->token_stamp)) {
            t->token_stamp = s;
            char *token = NULL, why[256];
            if (read_token(t->token_file, &token, why, sizeof(why)) == 0) {
                log_info("telemetry: bearer token %s %s", t->token != NULL ? "read again from" : "read from",
                         t->token_file);
                if (t->token != NULL) {
                    OPENSSL_cleanse(t->token, strlen(t->token));
                    free(t->token);
                }
                t->token = token;
            } else {
                log_warn("telemetry: token file %s: %s; %s", t->token_file, why,
                         t->token != NULL ? "the token read before stays" : "exports go without a token");
            }
        }
    }
    if (t->cert_file != NULL) {
        file_stamp_t c = file_stamp(t->cert_file), k = file_stamp(t->key_file);
        if (!file_stamp_eq(&c, &t->cert_stamp) || !file_stamp_eq(&k, &t->key_stamp)) {
            if (t->client != NULL)
                log_info("telemetry: client certificate %s or its key changed: connecting again", t->cert_file);
            t->cert_stamp = c;
            t->key_stamp = k;
            drop_client(t);
        }
    }
    if (t->use_identity) {
        pthread_mutex_lock(&t->mu);
        bool changed = t->identity_new;
        t->identity_new = false;
        pthread_mutex_unlock(&t->mu);
        if (changed)
            drop_client(t);
    }
}

void tele_set_identity(tele_t *t, struct tls_ctx *ctx)
{
    if (t == NULL || !t->use_identity || ctx == NULL)
        return;
    tls_ctx_ref(ctx);
    pthread_mutex_lock(&t->mu);
    tls_ctx_t *old = t->identity_ctx;
    t->identity_ctx = ctx;
    t->identity_new = true;
    pthread_mutex_unlock(&t->mu);
    tls_ctx_unref(old);
}

/* POST body to the endpoint's path. 0 on a 2xx answer, -1 otherwise. */
static int http_post(tele_t *t, const char *path, const buf_t *body, uint64_t deadline)
{
    check_credentials(t);
    if (t->client == NULL) {
        char err[512];
        http_client_tls_t tls = {.ca_file = t->ca_file, .cert_file = t->cert_file, .key_file = t->key_file};
        if (t->use_identity) {
            pthread_mutex_lock(&t->mu);
            if ((tls.ctx = t->identity_ctx) != NULL)
                tls_ctx_ref(tls.ctx);
            pthread_mutex_unlock(&t->mu);
            if (tls.ctx == NULL) {
                log_debug("telemetry: no workload certificate yet to present to %s", t->host);
                return -1;
            }
        }
        t->client = http_client_create_tls(t->host, &tls, err, sizeof(err));
        tls_ctx_unref(tls.ctx);
        if (t->client == NULL) {
            log_warn("telemetry: cannot export to %s: %s", t->host, err);
            return -1;
        }
    }
    char auth[TOKEN_MAX + 32];
    const char *headers[1] = {auth};
    if (t->token != NULL)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t->token);
    http_client_request_t r = {.path = path,
                               .content_type = "application/x-protobuf",
                               .content_encoding = "zstd",
                               .headers = headers,
                               .n_headers = t->token != NULL ? 1 : 0,
                               .body = body->data,
                               .len = body->len};
    const char *why = NULL;
    int status = http_client_send(t->client, &r, deadline, &t->io_stop_ms, &why);
    if (t->token != NULL)
        OPENSSL_cleanse(auth, sizeof(auth));
    if (status < 0)
        log_debug("telemetry: POST %s%s: %s", t->host, path, why != NULL ? why : "failed");
    if (status == 401 || status == 403) {
        t->next_check_ms = 0; /* the token may have been rotated: look at its file before the retry */
        uint64_t now = mono_now_ms();
        if (t->refusal_logged_ms == 0 || now - t->refusal_logged_ms >= REFUSAL_LOG_MS) {
            t->refusal_logged_ms = now;
            log_warn("telemetry: %s%s answered %d: %s", t->host, path, status,
                     t->token_file != NULL ? "it refuses the token of telemetry.tokenFile"
                                           : "it asks for credentials (telemetry.tokenFile)");
        }
    }
    return status >= 200 && status < 300 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* exporter                                                            */

/* Deadline for the next step: the stop deadline when stopping, else now + limit. Under t->mu. */
static uint64_t step_deadline(const tele_t *t, uint64_t limit_ms)
{
    uint64_t d = mono_now_ms() + limit_ms;
    if (t->stopping && t->deadline_ms < d)
        d = t->deadline_ms;
    return d;
}

static void cond_wait_until(tele_t *t, uint64_t until_ms)
{
    struct timespec ts = mono_timespec(until_ms);
    pthread_cond_timedwait(&t->cond, &t->mu, &ts);
}

/* Send one body, retrying with back-off. 0 sent, -1 given up (stopping and past the deadline). */
static int export_body(tele_t *t, int sig, const buf_t *body, size_t n_items)
{
    uint64_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        bool late = t->stopping && mono_now_ms() >= t->deadline_ms;
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
        uint64_t until = mono_now_ms() + backoff;
        for (;;) {
            uint64_t now = mono_now_ms();
            if (now >= until || (t->stopping && now >= t->deadline_ms))
                break;
            cond_wait_until(t, t->stopping && t->deadline_ms < until ? t->deadline_ms : until);
        }
        pthread_mutex_unlock(&t->mu);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Encode, compress and send the metrics of series and the pending records (if any), in signal order. */
static void export_all(tele_t *t, entry_t *const *series, size_t n_series, uint64_t start_ns, uint64_t end_ns,
                       const pending_t *p)
{
    tele_resource_t res = {&t->self, t->service_name, t->instance_id};
    tele_series_t *ss = n_series > 0 ? xcalloc(n_series, sizeof(*ss)) : NULL;
    for (size_t i = 0; i < n_series; i++)
        ss[i] = series[i]->s;
    bool gave_up = false;
    for (int sig = 0; sig < SIG_N; sig++) {
        buf_t raw = BUF_INIT, z = BUF_INIT;
        size_t n_items = 0;
        int rc;
        if (sig != SIG_METRICS) /* about what a span or a log record takes: no regrowth */
            buf_reserve(&raw, 1024 + (sig == SIG_TRACES ? p->n_spans : p->n_logs) * 1024);
        if (sig == SIG_TRACES)
            rc = tele_otlp_traces(&res, p->recs, p->n, p->strings.data, &raw, &n_items);
        else if (sig == SIG_METRICS)
            rc = tele_otlp_metrics(&res, ss, n_series, start_ns, end_ns, &raw, &n_items);
        else
            rc = tele_otlp_logs(&res, p->recs, p->n, p->strings.data, &raw, &n_items);
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
    free(ss);
}

static void pending_reset(pending_t *p)
{
    p->n = p->n_spans = p->n_logs = 0;
    p->bytes = 0;
    p->strings.len = 0;
    /* a burst's buffers are not kept for ever */
    if (p->cap > 4096) {
        free(p->recs);
        p->recs = NULL;
        p->cap = 0;
    }
    if (p->strings.cap > (1u << 20))
        buf_dispose(&p->strings);
}

/*
 * Take the records out of every ring: into t->pend, or counted as dropped
 * when discard is set or the queue byte limit is reached. Rings of workers
 * that have gone are freed once empty, their drop counts kept.
 */
static size_t drain_rings(tele_t *t, bool discard)
{
    pthread_mutex_lock(&t->mu);
    chan_t *c = t->chans;
    size_t limit = t->max_queue_bytes > t->queue_bytes ? t->max_queue_bytes - t->queue_bytes : 0;
    pthread_mutex_unlock(&t->mu);
    pending_t *p = &t->pend;
    size_t added = 0;
    uint64_t spans_dropped = 0, logs_dropped = 0;
    while (c != NULL) {
        chan_t *next = c->next; /* only this thread unlinks chans; new ones go in front of the list */
        bool closed = atomic_load_explicit(&c->closed, memory_order_acquire);
        size_t n;
        const void *raw;
        for (size_t k = 1;; k++) {
            /* give the worker back the room of what is done so far now and then, not only at the end */
            if (k % RING_RELEASE_EVERY == 0)
                tele_ring_release(c->ring);
            if ((raw = tele_ring_peek(c->ring, &n)) == NULL)
                break;
            tele_raw_t h = {0};
            memcpy(&h, raw, n < sizeof(h) ? n : sizeof(h));
            if (discard || n < sizeof(h) || added + n + sizeof(tele_rec_t) > limit) {
                spans_dropped += h.has_span;
                logs_dropped += h.has_log;
                continue;
            }
            if (p->n == p->cap) {
                p->cap = p->cap ? p->cap * 2 : 256;
                p->recs = xrealloc(p->recs, p->cap * sizeof(*p->recs));
            }
            size_t mark = p->strings.len;
            tele_rec_t *rec = &p->recs[p->n];
            if (tele_raw_read(raw, n, rec, &p->strings) != 0) {
                spans_dropped += h.has_span;
                logs_dropped += h.has_log;
                continue;
            }
            if (p->n == 0)
                p->first_ms = mono_now_ms();
            p->n++;
            p->n_spans += rec->has_span;
            p->n_logs += rec->has_log;
            added += sizeof(*rec) + (p->strings.len - mark);
        }
        tele_ring_release(c->ring);
        if (closed) {
            pthread_mutex_lock(&t->mu);
            chan_t **pp = &t->chans;
            while (*pp != c)
                pp = &(*pp)->next;
            *pp = c->next;
            t->st.spans_dropped += atomic_load_explicit(&c->spans_dropped, memory_order_relaxed);
            t->st.logs_dropped += atomic_load_explicit(&c->logs_dropped, memory_order_relaxed);
            pthread_mutex_unlock(&t->mu);
            tele_ring_destroy(c->ring);
            free(c);
        }
        c = next;
    }
    p->bytes += added;
    pthread_mutex_lock(&t->mu);
    t->queue_bytes += added;
    t->st.spans_dropped += spans_dropped;
    t->st.logs_dropped += logs_dropped;
    pthread_mutex_unlock(&t->mu);
    return added + spans_dropped + logs_dropped;
}

/*
 * One export: the metrics of b (may be NULL), folded into the cumulative
 * table too, and the pending records. Frees b and empties t->pend.
 */
static void export_one(tele_t *t, batch_t *b)
{
    stable_t series;
    memset(&series, 0, sizeof(series));
    if (b != NULL) {
        batch_resolve(t, b, &series);
        fold_metrics(t, series.list, series.n);
    }
    pending_t *p = &t->pend;
    if (t->host != NULL && (series.n > 0 || p->n > 0))
        export_all(t, series.list, series.n, b ? b->start_ns : 0, b ? b->end_ns : 0, p);
    pthread_mutex_lock(&t->mu);
    t->queue_bytes -= (b ? b->bytes : 0) + p->bytes;
    pthread_mutex_unlock(&t->mu);
    pending_reset(p);
    stable_dispose(&series);
    batch_free(b);
}

static void *exporter_main(void *arg)
{
    tele_t *t = arg;
    pthread_setname_np(pthread_self(), "outrider-export");
    /* Linux nice values are per thread: only this one yields (failure leaves it at the process's) */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), EXPORTER_NICE) != 0)
        log_debug("telemetry: cannot lower the exporter thread's priority: %s", strerror(errno));
    uint64_t poll_ms = RING_POLL_MS;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        bool stopping = t->stopping;
        batch_t *b = t->head;
        t->head = t->tail = NULL;
        pthread_mutex_unlock(&t->mu);
        /* records first, so that a batch goes out with the records of its interval */
        if (drain_rings(t, false) > 0)
            poll_ms = RING_POLL_MS;
        else if (poll_ms < RING_POLL_IDLE_MS)
            poll_ms *= 2;
        while (b != NULL) {
            batch_t *next = b->next;
            export_one(t, b);
            b = next;
        }
        const pending_t *p = &t->pend;
        if (p->n > 0 &&
            (stopping || p->n >= t->max_batch_records || mono_now_ms() - p->first_ms >= t->flush_interval_ms))
            export_one(t, NULL);
        if (stopping)
            break;
        pthread_mutex_lock(&t->mu);
        /* without an endpoint there are no rings to poll: only handed batches (signalled) wake it */
        if (t->head == NULL && !t->stopping)
            cond_wait_until(t, mono_now_ms() + (t->host != NULL ? poll_ms : t->flush_interval_ms));
        pthread_mutex_unlock(&t->mu);
    }
    http_client_destroy(t->client); /* its connection closes here, on the thread that used it */
    t->client = NULL;
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
        t->deadline_ms = mono_now_ms() + timeout_ms;
        atomic_store(&t->io_stop_ms, t->deadline_ms ? t->deadline_ms : 1);
    }
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    if (t->started && !t->joined) {
        pthread_join(t->thread, NULL);
        t->joined = true;
    }
    /* without a thread (never started): fold what is queued, count the records as dropped */
    drain_rings(t, true);
    for (;;) {
        pthread_mutex_lock(&t->mu);
        batch_t *b = t->head;
        if (b != NULL) {
            t->head = b->next;
            if (t->head == NULL)
                t->tail = NULL;
        }
        pthread_mutex_unlock(&t->mu);
        if (b == NULL)
            break;
        stable_t series;
        memset(&series, 0, sizeof(series));
        batch_resolve(t, b, &series);
        fold_metrics(t, series.list, series.n);
        stable_dispose(&series);
        pthread_mutex_lock(&t->mu);
        t->queue_bytes -= b->bytes;
        pthread_mutex_unlock(&t->mu);
        batch_free(b);
    }
}

void tele_destroy(tele_t *t)
{
    if (t == NULL)
        return;
    tele_stop(t, 0);
    while (t->chans != NULL) {
        chan_t *c = t->chans;
        t->chans = c->next;
        tele_ring_destroy(c->ring);
        free(c);
    }
    free(t->pend.recs);
    buf_dispose(&t->pend.strings);
    stable_dispose(&t->cum);
    http_client_destroy(t->client);
    free(t->ca_file);
    if (t->token != NULL) {
        OPENSSL_cleanse(t->token, strlen(t->token));
        free(t->token);
    }
    free(t->token_file);
    free(t->cert_file);
    free(t->key_file);
    tls_ctx_unref(t->identity_ctx);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->cum_mu);
    free(t->host);
    free(t->service_name);
    free(t->instance_id);
    free(t);
}

/* The stats with the rings' drop counts and fill added. Under t->mu. */
static void stats_locked(const tele_t *t, tele_stats_t *out)
{
    *out = t->st;
    out->queue_bytes = t->queue_bytes;
    for (const chan_t *c = t->chans; c != NULL; c = c->next) {
        out->spans_dropped += atomic_load_explicit(&c->spans_dropped, memory_order_relaxed);
        out->logs_dropped += atomic_load_explicit(&c->logs_dropped, memory_order_relaxed);
        out->queue_bytes += tele_ring_used(c->ring);
    }
}

void tele_get_stats(tele_t *t, tele_stats_t *out)
{
    pthread_mutex_lock(&t->mu);
    stats_locked(t, out);
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

/* name{labels[,le="..."]} */
static void append_sample_head(buf_t *out, const char *name, const char *suffix, const tele_labels_t *l, const char *le)
{
    buf_append_str(out, name);
    buf_append_str(out, suffix);
    buf_append_char(out, '{');
    bool first = true;
    for (int k = 0; k < l->n; k++) {
        if (!first)
            buf_append_char(out, ',');
        first = false;
        buf_append_str(out, l->name[k]);
        buf_append_str(out, "=\"");
        buf_append_prom_label(out, l->v[k], l->len[k]);
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
    if (!(s->labels->metrics & (1u << f)))
        return false;
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
    stats_locked(t, &st);
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
