/*
 * mesh_history: see mesh_history.h for the model.
 *
 * Layout. Rows sit in an array (grown up to max_rows, reused in place)
 * with a chained hash index on their packed key (reporter byte, then the
 * seven key strings, each NUL-terminated). Tracked series sit in an array
 * with a chained hash index on the hash of their family and labels, and a
 * free list; a sample marks the series it sees and sweeps the others out.
 * A snapshot slot holds STRIDE 32-bit values per row (requests, errors,
 * buckets) for the rows that existed when it was taken; rows made later
 * read as 0 there, as their accumulators started at 0.
 */
#include "mesh_history.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "xalloc.h"

#define STRIDE (2 + MESH_MAX_BUCKETS) /* values per row in a snapshot */
#define KEY_MAX 1024u                 /* bytes of a packed row key; longer names drop the increase (rows_dropped) */
#define NIL (-1)
#define FQDN_SUFFIX ".svc.cluster.local"

typedef struct row {
    mesh_row_key_t key; /* strings point into packed */
    char *packed;
    uint32_t packed_len;
    int32_t next; /* hash chain */
    uint64_t hash;
    double requests, errors;
    uint64_t buckets[MESH_MAX_BUCKETS];
    int has_hist; /* bounds are set */
    uint32_t n_bounds;
    double bounds[MESH_MAX_BUCKETS - 1];
    uint64_t changed_ms; /* when an increase last arrived */
} row_t;

typedef struct series {
    uint64_t hash;
    int32_t next;       /* hash chain, or the free list */
    uint32_t seen;      /* sample it was last seen at; 0 = free */
    uint32_t n_buckets; /* histogram buckets held; 0 for a counter */
    uint8_t hist;       /* a histogram's entry */
    double value;       /* counter: last value */
    uint64_t *buckets;  /* histogram: last values */
} series_t;

typedef struct slot {
    uint64_t t_ms;
    uint32_t n_rows;
    uint32_t cap_rows;
    uint32_t *vals; /* n_rows * STRIDE */
} slot_t;

typedef struct ring {
    slot_t *slots;
    uint32_t n_slots;
    uint32_t count; /* filled */
    uint32_t head;  /* next to write */
    uint64_t interval_ms;
} ring_t;

struct mesh_history {
    mesh_history_config_t cfg;
    row_t *rows;
    uint32_t n_rows, cap_rows;
    int32_t *row_index;
    uint32_t row_mask;
    series_t *series;
    uint32_t n_series, cap_series; /* entries made (live or free) */
    uint32_t live_series;
    uint32_t live_hist; /* of which histograms: at most half of max_series, so that counts always have room */
    int32_t free_series;
    int32_t *series_index;
    uint32_t series_mask;
    ring_t fine, coarse;
    uint64_t ticks;
    uint32_t sample_no; /* of the current or last sample, from 1 */
    int baseline;       /* the current sample is the first */
    int sampled;        /* a sample has ended */
    uint64_t now_ms;    /* date of the current or last sample */
    uint32_t sample_dropped;
    mesh_history_stats_t stats; /* the cumulative counters */
    char scratch[KEY_MAX];
};

/* ------------------------------------------------------------------ */
/* creation                                                            */

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static uint32_t or_default(uint32_t v, uint32_t def, uint32_t min, uint32_t max)
{
    if (v == 0)
        return def;
    return v < min ? min : v > max ? max : v;
}

static int32_t *index_create(uint32_t size)
{
    int32_t *ix = xmalloc(size * sizeof(*ix));
    for (uint32_t i = 0; i < size; i++)
        ix[i] = NIL;
    return ix;
}

static void ring_init(ring_t *rg, uint32_t n_slots, uint64_t interval_ms)
{
    rg->slots = xcalloc(n_slots, sizeof(*rg->slots));
    rg->n_slots = n_slots;
    rg->interval_ms = interval_ms;
}

mesh_history_t *mesh_history_create(const mesh_history_config_t *cfg)
{
    mesh_history_t *h = xcalloc(1, sizeof(*h));
    mesh_history_config_t c = cfg != NULL ? *cfg : (mesh_history_config_t){0};
    c.interval_ms = or_default(c.interval_ms, MESH_INTERVAL_MS, 100, 3600000);
    c.fine_slots = or_default(c.fine_slots, MESH_FINE_SLOTS, 2, 100000);
    c.coarse_every = or_default(c.coarse_every, MESH_COARSE_EVERY, 1, 100000);
    c.coarse_slots = or_default(c.coarse_slots, MESH_COARSE_SLOTS, 2, 100000);
    c.max_rows = or_default(c.max_rows, MESH_MAX_ROWS, 1, 1u << 20);
    c.max_series = or_default(c.max_series, MESH_MAX_SERIES, 1, 1u << 24);
    h->cfg = c;
    h->row_mask = pow2_at_least(c.max_rows * 2) - 1;
    h->row_index = index_create(h->row_mask + 1);
    h->series_mask = pow2_at_least(c.max_series) - 1;
    h->series_index = index_create(h->series_mask + 1);
    h->free_series = NIL;
    ring_init(&h->fine, c.fine_slots, c.interval_ms);
    ring_init(&h->coarse, c.coarse_slots, (uint64_t)c.interval_ms * c.coarse_every);
    h->stats.max_rows = c.max_rows;
    h->stats.max_series = c.max_series;
    return h;
}

static void ring_dispose(ring_t *rg)
{
    for (uint32_t i = 0; i < rg->n_slots; i++)
        free(rg->slots[i].vals);
    free(rg->slots);
}

void mesh_history_destroy(mesh_history_t *h)
{
    if (h == NULL)
        return;
    for (uint32_t i = 0; i < h->n_rows; i++)
        free(h->rows[i].packed);
    for (uint32_t i = 0; i < h->n_series; i++)
        free(h->series[i].buckets);
    free(h->rows);
    free(h->row_index);
    free(h->series);
    free(h->series_index);
    ring_dispose(&h->fine);
    ring_dispose(&h->coarse);
    free(h);
}

uint64_t mesh_history_max_window_ms(const mesh_history_t *h)
{
    return h->coarse.interval_ms * (h->coarse.n_slots - 1);
}

uint32_t mesh_history_interval_ms(const mesh_history_t *h)
{
    return h->cfg.interval_ms;
}

/* ------------------------------------------------------------------ */
/* labels and row keys                                                 */

typedef struct labels {
    str_t reporter;
    str_t src_canonical, src_app, src_workload, src_ns;
    str_t dst_service, dst_name, dst_ns, dst_version;
    str_t code;
} labels_t;

static int str_is(str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

static void labels_read(const metric_series_view_t *s, labels_t *l)
{
    static const struct {
        const char *name;
        size_t off;
    } wanted[] = {
        {"reporter", offsetof(labels_t, reporter)},
        {"source_canonical_service", offsetof(labels_t, src_canonical)},
        {"source_app", offsetof(labels_t, src_app)},
        {"source_workload", offsetof(labels_t, src_workload)},
        {"source_workload_namespace", offsetof(labels_t, src_ns)},
        {"destination_service", offsetof(labels_t, dst_service)},
        {"destination_service_name", offsetof(labels_t, dst_name)},
        {"destination_service_namespace", offsetof(labels_t, dst_ns)},
        {"destination_version", offsetof(labels_t, dst_version)},
        {"response_code", offsetof(labels_t, code)},
    };
    memset(l, 0, sizeof(*l));
    for (uint32_t i = 0; i < s->n_labels; i++) {
        str_t name = s->labels[i].name;
        if (name.len == 0 || (name.ptr[0] != 'r' && name.ptr[0] != 's' && name.ptr[0] != 'd'))
            continue;
        for (size_t j = 0; j < sizeof(wanted) / sizeof(wanted[0]); j++) {
            if (str_is(name, wanted[j].name)) {
                *(str_t *)((char *)l + wanted[j].off) = s->labels[i].value;
                break;
            }
        }
    }
}

/* Istio writes "unknown" where it does not know a value. */
static int unknown(str_t s)
{
    return s.len == 0 || str_is(s, "unknown");
}

/* A failed request: a 5xx, or none at all (response code 0). */
static int is_error(str_t code)
{
    return (code.len == 3 && code.ptr[0] == '5') || str_is(code, "0");
}

typedef struct packer {
    char *p;
    uint32_t len;
    int full;
} packer_t;

static void pack(packer_t *k, const char *s, size_t n)
{
    if (k->full || n > KEY_MAX - k->len) {
        k->full = 1;
        return;
    }
    if (n > 0)
        memcpy(k->p + k->len, s, n);
    k->len += (uint32_t)n;
}

static void pack_str(packer_t *k, str_t s)
{
    pack(k, s.ptr, s.len);
    pack(k, "", 1);
}

/* NAME.NAMESPACE.svc.cluster.local, or NAME without a namespace. */
static void pack_fqdn(packer_t *k, str_t name, str_t ns)
{
    pack(k, name.ptr, name.len);
    if (ns.len > 0) {
        pack(k, ".", 1);
        pack(k, ns.ptr, ns.len);
        pack(k, FQDN_SUFFIX, sizeof(FQDN_SUFFIX) - 1);
    }
    pack(k, "", 1);
}

static void pack_source(packer_t *k, const labels_t *l)
{
    str_t name = !unknown(l->src_canonical) ? l->src_canonical : !unknown(l->src_app) ? l->src_app : l->src_workload;
    str_t ns = unknown(l->src_ns) ? STR_NULL : l->src_ns;
    if (unknown(name)) {
        name = STR_LIT("unknown");
        ns = STR_NULL;
    }
    pack_fqdn(k, name, ns);
    pack_str(k, name);
    pack_str(k, ns);
}

/* The destination service as reported when it is a FQDN; a short one ("reviews") is completed with the namespace. */
static void pack_destination(packer_t *k, const labels_t *l)
{
    str_t svc = l->dst_service, name = l->dst_name;
    str_t ns = unknown(l->dst_ns) ? STR_NULL : l->dst_ns;
    const char *dot = unknown(svc) ? NULL : memchr(svc.ptr, '.', svc.len);
    if (unknown(name) && dot != NULL)
        name = (str_t){svc.ptr, (uint32_t)(dot - svc.ptr)};
    if (dot != NULL) {
        pack_str(k, svc);
    } else if (!unknown(name)) {
        pack_fqdn(k, name, ns);
    } else {
        name = STR_LIT("unknown");
        ns = STR_NULL;
        pack_str(k, name);
    }
    pack_str(k, name);
    pack_str(k, ns);
    pack_str(k, unknown(l->dst_version) ? STR_LIT("unknown") : l->dst_version);
}

/* The packed key of a series' row into h->scratch; its length, or 0 when it does not fit. */
static uint32_t key_pack(mesh_history_t *h, const labels_t *l, mesh_reporter_t rep)
{
    packer_t k = {h->scratch, 0, 0};
    char r = (char)('0' + rep);
    pack(&k, &r, 1);
    pack_source(&k, l);
    pack_destination(&k, l);
    return k.full ? 0 : k.len;
}

static void key_unpack(row_t *r)
{
    const char *p = r->packed + 1;
    const char **fields[] = {&r->key.src_service, &r->key.src_name,      &r->key.src_namespace, &r->key.dst_service,
                             &r->key.dst_name,    &r->key.dst_namespace, &r->key.version};
    r->key.reporter = r->packed[0] == '0' ? MESH_REPORTER_SOURCE : MESH_REPORTER_DESTINATION;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        *fields[i] = p;
        p += strlen(p) + 1;
    }
}

/* ------------------------------------------------------------------ */
/* rows                                                                */

/* The span of the whole history, past which an idle row's values are in no snapshot any more. */
static uint64_t history_span_ms(const mesh_history_t *h)
{
    return h->coarse.interval_ms * h->coarse.n_slots;
}

static void ring_clear_row(ring_t *rg, uint32_t r)
{
    for (uint32_t i = 0; i < rg->n_slots; i++) {
        slot_t *sl = &rg->slots[i];
        if (r < sl->n_rows)
            memset(sl->vals + (size_t)r * STRIDE, 0, STRIDE * sizeof(uint32_t));
    }
}

static void row_unlink(mesh_history_t *h, uint32_t r)
{
    int32_t *p = &h->row_index[h->rows[r].hash & h->row_mask];
    while (*p != (int32_t)r)
        p = &h->rows[*p].next;
    *p = h->rows[r].next;
}

/* The row idle for longest, if it has been idle for the whole history; else -1. */
static int32_t row_victim(const mesh_history_t *h)
{
    int32_t best = NIL;
    for (uint32_t r = 0; r < h->n_rows; r++) {
        const row_t *row = &h->rows[r];
        if (row->changed_ms + history_span_ms(h) < h->now_ms &&
            (best == NIL || row->changed_ms < h->rows[best].changed_ms))
            best = (int32_t)r;
    }
    return best;
}

/* A row to fill: a new one while there is room, else an idle one emptied; NULL when none. */
static row_t *row_take(mesh_history_t *h)
{
    if (h->n_rows < h->cfg.max_rows) {
        if (h->n_rows == h->cap_rows) {
            uint32_t cap = h->cap_rows ? h->cap_rows * 2 : 16;
            h->cap_rows = cap < h->cfg.max_rows ? cap : h->cfg.max_rows;
            h->rows = xrealloc(h->rows, h->cap_rows * sizeof(*h->rows));
        }
        return &h->rows[h->n_rows++];
    }
    int32_t v = row_victim(h);
    if (v == NIL)
        return NULL;
    row_unlink(h, (uint32_t)v);
    free(h->rows[v].packed);
    ring_clear_row(&h->fine, (uint32_t)v);
    ring_clear_row(&h->coarse, (uint32_t)v);
    return &h->rows[v];
}

static row_t *row_get(mesh_history_t *h, const labels_t *l, mesh_reporter_t rep)
{
    uint32_t len = key_pack(h, l, rep);
    if (len == 0)
        return NULL;
    uint64_t hash = XXH3_64bits(h->scratch, len);
    for (int32_t i = h->row_index[hash & h->row_mask]; i != NIL; i = h->rows[i].next) {
        row_t *r = &h->rows[i];
        if (r->hash == hash && r->packed_len == len && memcmp(r->packed, h->scratch, len) == 0)
            return r;
    }
    row_t *r = row_take(h);
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->packed = xmalloc(len);
    memcpy(r->packed, h->scratch, len);
    r->packed_len = len;
    r->hash = hash;
    key_unpack(r);
    int32_t *head = &h->row_index[hash & h->row_mask];
    r->next = *head;
    *head = (int32_t)(r - h->rows);
    return r;
}

/* The row of a series whose value grew; NULL (counted) when it has none or none can be made. */
static row_t *row_of(mesh_history_t *h, const metric_series_view_t *s, labels_t *l)
{
    labels_read(s, l);
    mesh_reporter_t rep;
    if (str_is(l->reporter, "source"))
        rep = MESH_REPORTER_SOURCE;
    else if (str_is(l->reporter, "destination"))
        rep = MESH_REPORTER_DESTINATION;
    else
        return NULL;
    row_t *r = row_get(h, l, rep);
    if (r == NULL)
        h->stats.rows_dropped++;
    else
        r->changed_ms = h->now_ms;
    return r;
}

/* ------------------------------------------------------------------ */
/* series                                                              */

static uint64_t series_hash(const metric_series_view_t *s)
{
    uint64_t hash = XXH3_64bits(s->family, strlen(s->family));
    for (uint32_t i = 0; i < s->n_labels; i++) {
        hash = XXH3_64bits_withSeed(s->labels[i].name.ptr, s->labels[i].name.len, hash);
        hash = XXH3_64bits_withSeed(s->labels[i].value.ptr, s->labels[i].value.len, hash + 1);
    }
    return hash;
}

/*
 * The entry of a series, made when new (*fresh set); NULL when max_series
 * are tracked, or for a new histogram when half of them are histograms (a
 * graph whose p99 is missing on some edges beats one whose edges are).
 */
static series_t *series_get(mesh_history_t *h, uint64_t hash, int hist, int *fresh)
{
    int32_t *head = &h->series_index[hash & h->series_mask];
    for (int32_t i = *head; i != NIL; i = h->series[i].next) {
        if (h->series[i].hash == hash) {
            *fresh = 0;
            h->series[i].seen = h->sample_no;
            return &h->series[i];
        }
    }
    if (hist && h->live_hist >= h->cfg.max_series / 2)
        return NULL;
    int32_t i;
    if (h->free_series != NIL) {
        i = h->free_series;
        h->free_series = h->series[i].next;
    } else if (h->n_series < h->cfg.max_series) {
        if (h->n_series == h->cap_series) {
            uint32_t cap = h->cap_series ? h->cap_series * 2 : 64;
            h->cap_series = cap < h->cfg.max_series ? cap : h->cfg.max_series;
            h->series = xrealloc(h->series, h->cap_series * sizeof(*h->series));
        }
        i = (int32_t)h->n_series++;
    } else {
        return NULL;
    }
    series_t *e = &h->series[i];
    *e = (series_t){.hash = hash, .next = *head, .seen = h->sample_no, .hist = (uint8_t)hist};
    *head = i;
    h->live_series++;
    h->live_hist += (uint32_t)hist;
    *fresh = 1;
    return e;
}

static void sample_counter(mesh_history_t *h, const metric_series_view_t *s, uint64_t hash)
{
    int fresh;
    series_t *e = series_get(h, hash, 0, &fresh);
    if (e == NULL) {
        h->sample_dropped++;
        return;
    }
    double inc = fresh ? (h->baseline ? 0 : s->value) : s->value >= e->value ? s->value - e->value : s->value;
    e->value = s->value;
    if (!(inc > 0))
        return;
    labels_t l;
    row_t *r = row_of(h, s, &l);
    if (r == NULL)
        return;
    r->requests += inc;
    if (is_error(l.code))
        r->errors += inc;
}

static int parse_bounds(const metric_series_view_t *s, double *out)
{
    const char *p = s->le;
    for (uint32_t i = 0; i < s->n_bounds; i++) {
        char *end;
        out[i] = strtod(p, &end);
        if (end == p || *end != '\0')
            return -1;
        p = end + 1;
    }
    return 0;
}

/* Add a histogram's increase to its row, whose bounds it sets if it has none; -1 when they differ. */
static int row_add_histogram(row_t *r, const metric_series_view_t *s, const uint64_t *inc)
{
    double bounds[MESH_MAX_BUCKETS - 1];
    if (s->n_bounds == 0 || s->le == NULL || parse_bounds(s, bounds) != 0)
        return -1;
    if (!r->has_hist) {
        r->has_hist = 1;
        r->n_bounds = s->n_bounds;
        memcpy(r->bounds, bounds, s->n_bounds * sizeof(double));
    } else if (r->n_bounds != s->n_bounds || memcmp(r->bounds, bounds, s->n_bounds * sizeof(double)) != 0) {
        return -1;
    }
    for (uint32_t b = 0; b <= s->n_bounds; b++)
        r->buckets[b] += inc[b];
    return 0;
}

/* The increase of a histogram's buckets since the last sample into inc; 1 when any bucket grew. */
static int histogram_increase(const mesh_history_t *h, series_t *e, int fresh, const metric_series_view_t *s,
                              uint64_t *inc)
{
    uint32_t nb = s->n_bounds + 1;
    int reset = 0, any = 0;
    if (e->n_buckets != nb) { /* new, or its bounds changed (a CUMULATIVE point replaces them) */
        e->buckets = xrealloc(e->buckets, nb * sizeof(uint64_t));
        memset(e->buckets, 0, nb * sizeof(uint64_t));
        e->n_buckets = nb;
        reset = 1;
    }
    for (uint32_t b = 0; b < nb; b++)
        reset |= s->buckets[b] < e->buckets[b];
    for (uint32_t b = 0; b < nb; b++) {
        inc[b] = fresh && h->baseline ? 0 : reset ? s->buckets[b] : s->buckets[b] - e->buckets[b];
        any |= inc[b] != 0;
        e->buckets[b] = s->buckets[b];
    }
    return any;
}

static void sample_histogram(mesh_history_t *h, const metric_series_view_t *s, uint64_t hash)
{
    if (s->n_bounds + 1 > MESH_MAX_BUCKETS || s->buckets == NULL) {
        h->stats.histograms_skipped++;
        return;
    }
    int fresh;
    series_t *e = series_get(h, hash, 1, &fresh);
    if (e == NULL) {
        h->sample_dropped++;
        return;
    }
    uint64_t inc[MESH_MAX_BUCKETS];
    if (!histogram_increase(h, e, fresh, s, inc))
        return;
    labels_t l;
    row_t *r = row_of(h, s, &l);
    if (r != NULL && row_add_histogram(r, s, inc) != 0)
        h->stats.histograms_skipped++;
}

/* ------------------------------------------------------------------ */
/* samples and snapshots                                               */

void mesh_history_sample_begin(mesh_history_t *h, uint64_t now_ms)
{
    h->sample_no++;
    if (h->sample_no == 0) /* 0 marks free entries */
        h->sample_no = 1;
    h->baseline = !h->sampled;
    h->now_ms = now_ms;
    h->sample_dropped = 0;
}

size_t mesh_history_sample_series(void *ctx, const metric_series_view_t *s)
{
    mesh_history_t *h = ctx;
    if (s->kind == METRIC_SERIES_COUNTER && strcmp(s->family, "istio_requests") == 0)
        sample_counter(h, s, series_hash(s));
    else if (s->kind == METRIC_SERIES_HISTOGRAM && strcmp(s->family, "istio_request_duration_milliseconds") == 0)
        sample_histogram(h, s, series_hash(s));
    return 1;
}

/* Drop the entries of series the sample did not see (expired from the store). */
static void series_sweep(mesh_history_t *h)
{
    for (uint32_t b = 0; b <= h->series_mask; b++) {
        int32_t *p = &h->series_index[b];
        while (*p != NIL) {
            series_t *e = &h->series[*p];
            if (e->seen == h->sample_no) {
                p = &e->next;
                continue;
            }
            int32_t i = *p;
            *p = e->next;
            free(e->buckets);
            h->live_hist -= e->hist;
            *e = (series_t){.next = h->free_series};
            h->free_series = i;
            h->live_series--;
        }
    }
}

void mesh_history_sample_end(mesh_history_t *h)
{
    series_sweep(h);
    h->stats.series_dropped += h->sample_dropped;
    h->stats.samples++;
    h->sampled = 1;
    h->baseline = 0;
}

static void row_values(const row_t *r, uint32_t *v)
{
    v[0] = (uint32_t)(uint64_t)r->requests;
    v[1] = (uint32_t)(uint64_t)r->errors;
    for (uint32_t b = 0; b < MESH_MAX_BUCKETS; b++)
        v[2 + b] = (uint32_t)r->buckets[b];
}

static void ring_push(ring_t *rg, const mesh_history_t *h)
{
    slot_t *sl = &rg->slots[rg->head];
    if (sl->cap_rows < h->n_rows) {
        sl->vals = xrealloc(sl->vals, (size_t)h->n_rows * STRIDE * sizeof(uint32_t));
        sl->cap_rows = h->n_rows;
    }
    sl->t_ms = h->now_ms;
    sl->n_rows = h->n_rows;
    for (uint32_t r = 0; r < h->n_rows; r++)
        row_values(&h->rows[r], sl->vals + (size_t)r * STRIDE);
    rg->head = (rg->head + 1) % rg->n_slots;
    if (rg->count < rg->n_slots)
        rg->count++;
}

void mesh_history_tick(mesh_history_t *h)
{
    if (!h->sampled)
        return;
    ring_push(&h->fine, h);
    if (h->ticks % h->cfg.coarse_every == 0)
        ring_push(&h->coarse, h);
    h->ticks++;
}

/* ------------------------------------------------------------------ */
/* windows                                                             */

/* The newest slot at least window_ms older than now_ms, else the oldest. The ring is not empty. */
static const slot_t *ring_find(const ring_t *rg, uint64_t now_ms, uint64_t window_ms)
{
    const slot_t *sl = NULL;
    for (uint32_t i = 0; i < rg->count; i++) {
        sl = &rg->slots[(rg->head + rg->n_slots - 1 - i) % rg->n_slots];
        if (now_ms - sl->t_ms >= window_ms)
            break;
    }
    return sl;
}

/* The increase of row r since slot sl; 1 when anything grew. */
static int row_delta(const row_t *row, const slot_t *sl, uint32_t r, mesh_row_delta_t *d)
{
    static const uint32_t zeros[STRIDE];
    uint32_t now[STRIDE];
    const uint32_t *old = r < sl->n_rows ? sl->vals + (size_t)r * STRIDE : zeros;
    row_values(row, now);
    memset(d, 0, sizeof(*d));
    d->key = &row->key;
    d->requests = (uint32_t)(now[0] - old[0]);
    d->errors = (uint32_t)(now[1] - old[1]);
    int any = d->requests != 0;
    if (row->has_hist) {
        d->n_bounds = row->n_bounds;
        d->bounds = row->bounds;
        for (uint32_t b = 0; b <= row->n_bounds; b++) {
            d->buckets[b] = (uint32_t)(now[2 + b] - old[2 + b]);
            any |= d->buckets[b] != 0;
        }
    }
    return any;
}

int mesh_history_window(mesh_history_t *h, uint64_t window_ms, mesh_window_t *out)
{
    memset(out, 0, sizeof(*out));
    if (window_ms == 0 || window_ms > mesh_history_max_window_ms(h))
        return -1;
    const ring_t *rg = window_ms <= h->fine.interval_ms * (h->fine.n_slots - 1) ? &h->fine : &h->coarse;
    out->resolution_ms = (uint32_t)rg->interval_ms;
    if (!h->sampled || rg->count == 0)
        return 0;
    const slot_t *from = ring_find(rg, h->now_ms, window_ms);
    out->covered_ms = h->now_ms - from->t_ms;
    out->rows = xcalloc(h->n_rows ? h->n_rows : 1, sizeof(*out->rows));
    for (uint32_t r = 0; r < h->n_rows; r++)
        if (row_delta(&h->rows[r], from, r, &out->rows[out->n]))
            out->n++;
    return 0;
}

void mesh_window_dispose(mesh_window_t *w)
{
    free(w->rows);
    memset(w, 0, sizeof(*w));
}

static size_t ring_bytes(const ring_t *rg)
{
    size_t n = rg->n_slots * sizeof(slot_t);
    for (uint32_t i = 0; i < rg->n_slots; i++)
        n += (size_t)rg->slots[i].cap_rows * STRIDE * sizeof(uint32_t);
    return n;
}

void mesh_history_stats(const mesh_history_t *h, mesh_history_stats_t *st)
{
    *st = h->stats;
    st->rows = h->n_rows;
    st->series = h->live_series;
    size_t n = sizeof(*h) + (h->row_mask + 1 + h->series_mask + 1) * sizeof(int32_t);
    n += h->cap_rows * sizeof(row_t) + h->cap_series * sizeof(series_t);
    for (uint32_t r = 0; r < h->n_rows; r++)
        n += h->rows[r].packed_len;
    for (uint32_t i = 0; i < h->n_series; i++)
        n += h->series[i].n_buckets * sizeof(uint64_t);
    st->bytes = n + ring_bytes(&h->fine) + ring_bytes(&h->coarse);
}
