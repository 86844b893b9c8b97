/*
 * metric_store: see metric_store.h for the model and semantics.
 *
 * Layout. Series live in a chained hash table keyed by XXH3 of a canonical
 * key (length-prefixed family name, then sorted label name/value pairs),
 * and in a doubly linked list per family (render order = first-seen).
 * Families sit in an array sorted by name, found by binary search only when
 * a series is created. A series is one allocation holding the struct, its
 * key and its label slices (which point into the key); histogram arrays
 * (bounds, buckets, exemplars, formatted `le` values) are a second allocation that only a
 * CUMULATIVE point with different bounds reallocates.
 *
 * The key is assembled in two scratch buffers owned by the store (used
 * under the mutex), so a point for an existing series allocates nothing.
 */
#include "metric_store.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "log.h"
#include "mono.h"
#include "prom_text.h"
#include "utf8.h"
#include "xalloc.h"

#define HARD_MAX_LABELS 128

typedef struct series series_t;

typedef struct family {
    char *name; /* family name: no `_total` for counters; NUL-terminated */
    uint32_t name_len;
    enum prom_type type;
    char *help; /* NULL until a point brings a description */
    uint32_t help_len;
    char *unit; /* sanitised OTLP unit, or NULL */
    series_t *head, *tail;
    uint32_t n_series;
    series_t *le_donor; /* last series whose `le` strings were formatted; NULL if gone */
    int full_logged;    /* its limit was logged; again once it has room */
} family_t;

struct series {
    series_t *hnext;
    series_t *prev, *next;
    family_t *fam;
    uint64_t hash;
    uint64_t last_ms;
    uint64_t start_time_unix_nano;
    uint32_t key_len;
    uint32_t n_labels;
    uint16_t origin; /* where its points come from (metric_store_add_from); 0 = not tracked */
    uint64_t seq;    /* creation order in the store: a chunked render resumes after it */
    const char *key;
    metric_label_t *labels;
    double value;                 /* counter and gauge */
    metric_exemplar_t counter_ex; /* counter only; trace id 0 = none */
    /* histograms */
    uint32_t n_bounds;
    uint8_t has_sum;
    double sum;
    double *bounds;               /* n_bounds */
    uint64_t *buckets;            /* n_bounds + 1, per bucket */
    metric_exemplar_t *exemplars; /* n_bounds + 1 */
    char *le;                     /* n_bounds formatted bounds, packed (prom_format_le_packed) */
    uint32_t le_len;
};

typedef struct label_ref {
    uint32_t name_off, name_len; /* sanitised name in scratch */
    const char *orig;            /* original name, for tie-breaks */
    uint32_t orig_len;
    const char *value; /* as sent, or in scratch when value_off != UINT32_MAX */
    uint32_t value_off, value_len;
} label_ref_t;

struct metric_store {
    pthread_mutex_t mu;
    metric_store_config_t cfg;
    series_t **table;
    size_t table_size; /* power of two */
    size_t n_series;
    family_t **fams; /* sorted by name */
    size_t n_fams, cap_fams;
    buf_t scratch; /* sanitised names and values */
    buf_t key;
    metric_store_stats_t stats;
    int full_logged;   /* max_series was logged; again once there is room */
    uint64_t next_seq; /* of the next series created */
    uint64_t removals; /* series removals so far: a saved series pointer is valid while this is unchanged */
};

static const char *const reject_names[METRIC_REJECT_COUNT_] = {
    "invalid", "limit", "max_series", "type_conflict", "bounds_mismatch", "metric_max_series",
};

const char *metric_store_reject_name(enum metric_reject r)
{
    return (unsigned)r < METRIC_REJECT_COUNT_ ? reject_names[r] : "unknown";
}

metric_store_t *metric_store_create(const metric_store_config_t *cfg)
{
    metric_store_t *ms = xcalloc(1, sizeof(*ms));
    if (cfg)
        ms->cfg = *cfg;
    metric_store_config_t *c = &ms->cfg;
    if (c->series_ttl_ms == 0)
        c->series_ttl_ms = 300000;
    if (c->max_series == 0)
        c->max_series = 100000;
    if (c->max_label_count == 0)
        c->max_label_count = 32;
    if (c->max_label_count > HARD_MAX_LABELS)
        c->max_label_count = HARD_MAX_LABELS;
    if (c->max_name_len == 0)
        c->max_name_len = 256;
    if (c->max_label_value_len == 0)
        c->max_label_value_len = 1024;
    if (c->max_buckets == 0)
        c->max_buckets = 128;
    if (c->max_help_len == 0)
        c->max_help_len = 1024;
    ms->table_size = 1024;
    ms->table = xcalloc(ms->table_size, sizeof(*ms->table));
    pthread_mutex_init(&ms->mu, NULL);
    return ms;
}

static void series_free(series_t *s)
{
    free(s->bounds);
    free(s);
}

static void family_free(family_t *f)
{
    series_t *s = f->head;
    while (s) {
        series_t *n = s->next;
        series_free(s);
        s = n;
    }
    free(f->name);
    free(f->help);
    free(f->unit);
    free(f);
}

void metric_store_destroy(metric_store_t *ms)
{
    if (ms == NULL)
        return;
    for (size_t i = 0; i < ms->n_fams; i++)
        family_free(ms->fams[i]);
    free(ms->fams);
    free(ms->table);
    buf_dispose(&ms->scratch);
    buf_dispose(&ms->key);
    pthread_mutex_destroy(&ms->mu);
    free(ms);
}

/* ---- validation ---- */

static int reject(metric_store_t *ms, enum metric_reject r, const char *why, const char **reason)
{
    ms->stats.rejected[r]++;
    ms->stats.points_rejected++;
    if (reason)
        *reason = why;
    return -1;
}

static enum prom_type point_prom_type(const metric_point_t *p)
{
    switch (p->type) {
    case METRIC_GAUGE: return PROM_GAUGE;
    case METRIC_SUM: return p->monotonic ? PROM_COUNTER : PROM_GAUGE;
    case METRIC_HISTOGRAM: return PROM_HISTOGRAM;
    }
    return PROM_UNTYPED;
}

/* Returns NULL when p is acceptable, else the reason; *r gets the class. */
static const char *check_point(const metric_store_config_t *c, const metric_point_t *p, enum metric_reject *r)
{
    *r = METRIC_REJECT_INVALID;
    if (p->name.len == 0 || p->name.ptr == NULL)
        return "empty metric name";
    if (point_prom_type(p) == PROM_UNTYPED)
        return "unknown metric type";
    if (p->type != METRIC_GAUGE && p->temporality != METRIC_TEMPORALITY_DELTA &&
        p->temporality != METRIC_TEMPORALITY_CUMULATIVE)
        return "unspecified aggregation temporality";
    if (p->n_labels > 0 && p->labels == NULL)
        return "labels missing";
    if (p->n_exemplars > 0 && p->exemplars == NULL)
        return "exemplars missing";
    *r = METRIC_REJECT_LIMIT;
    if (p->name.len > c->max_name_len)
        return "metric name too long";
    if (p->n_labels > c->max_label_count)
        return "too many labels";
    for (uint32_t i = 0; i < p->n_labels; i++) {
        if (p->labels[i].name.len > c->max_name_len)
            return "label name too long";
        if (p->labels[i].value.len > c->max_label_value_len)
            return "label value too long";
        if ((p->labels[i].name.len && !p->labels[i].name.ptr) || (p->labels[i].value.len && !p->labels[i].value.ptr))
            return "label string missing";
    }
    if (p->type == METRIC_HISTOGRAM) {
        if (p->n_bounds > c->max_buckets)
            return "too many histogram buckets";
        *r = METRIC_REJECT_INVALID;
        if (p->n_bounds > 0 && (p->bounds == NULL || p->bucket_counts == NULL))
            return "histogram bounds or bucket counts missing";
        for (uint32_t i = 0; i < p->n_bounds; i++) {
            if (!isfinite(p->bounds[i]))
                return "histogram bound not finite";
            if (i > 0 && !(p->bounds[i] > p->bounds[i - 1]))
                return "histogram bounds not increasing";
        }
        uint64_t total = 0;
        if (p->bucket_counts != NULL) {
            for (uint32_t i = 0; i <= p->n_bounds; i++) {
                if (total + p->bucket_counts[i] < total)
                    return "histogram count overflow";
                total += p->bucket_counts[i];
            }
            if (total != p->count)
                return "histogram count differs from bucket counts";
        }
        if (p->has_sum && isnan(p->sum))
            return "histogram sum is NaN";
    }
    if (point_prom_type(p) == PROM_COUNTER) {
        *r = METRIC_REJECT_INVALID;
        if (isnan(p->value) || p->value < 0)
            return "counter value negative or NaN";
    }
    return NULL;
}

/* ---- canonical key ---- */

static int label_cmp(const buf_t *scratch, const label_ref_t *a, const label_ref_t *b)
{
    uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(scratch->data + a->name_off, scratch->data + b->name_off, n);
    if (c == 0 && a->name_len != b->name_len)
        c = a->name_len < b->name_len ? -1 : 1;
    if (c != 0)
        return c;
    n = a->orig_len < b->orig_len ? a->orig_len : b->orig_len;
    c = n ? memcmp(a->orig, b->orig, n) : 0;
    if (c == 0 && a->orig_len != b->orig_len)
        c = a->orig_len < b->orig_len ? -1 : 1;
    return c;
}

static void key_put(buf_t *k, const char *s, uint32_t len)
{
    buf_append(k, &len, sizeof(len));
    buf_append(k, s, len);
}

/* Append s repaired to valid UTF-8: Prometheus rejects a whole scrape on one ill-formed label value. */
static void append_utf8(buf_t *b, const char *s, size_t len)
{
    buf_reserve(b, len * UTF8_MAX_GROWTH);
    b->len += utf8_repair_to(b->data + b->len, s, len);
    b->data[b->len] = '\0';
}

/*
 * Build the key of p in k (sc: scratch), as the store keys its series (ms->key, ms->scratch): returns the number of
 * labels in it (after merging collisions) and sets *name_len to the family name length (the name is the first field of
 * the key, at offset 4).
 */
static uint32_t build_key(buf_t *sc, buf_t *k, const metric_point_t *p, enum prom_type type, uint32_t *name_len)
{
    label_ref_t refs[HARD_MAX_LABELS];
    sc->len = 0;
    k->len = 0;

    uint32_t nl = p->name.len;
    buf_append(sc, p->name.ptr, nl);
    prom_sanitize_name(sc->data, nl, nl, 0);
    if (type == PROM_COUNTER && nl > 6 && memcmp(sc->data + nl - 6, "_total", 6) == 0)
        nl -= 6;
    *name_len = nl;
    key_put(k, sc->data, nl);
    sc->len = 0;

    uint32_t n = p->n_labels;
    for (uint32_t i = 0; i < n; i++) {
        const metric_label_t *l = &p->labels[i];
        label_ref_t *r = &refs[i];
        r->orig = l->name.ptr;
        r->orig_len = l->name.len;
        r->name_off = (uint32_t)sc->len;
        if (type == PROM_HISTOGRAM && l->name.len == 2 && memcmp(l->name.ptr, "le", 2) == 0) {
            buf_append(sc, "exported_le", 11);
            r->name_len = 11;
        } else {
            buf_reserve(sc, l->name.len + 1);
            if (l->name.len)
                memcpy(sc->data + sc->len, l->name.ptr, l->name.len);
            r->name_len = (uint32_t)prom_sanitize_name(sc->data + sc->len, l->name.len, l->name.len + 1, 1);
            sc->len += r->name_len;
        }
        r->value = l->value.ptr;
        r->value_len = l->value.len;
        r->value_off = UINT32_MAX;
        if (!utf8_valid(l->value.ptr, l->value.len)) {
            r->value_off = (uint32_t)sc->len;
            append_utf8(sc, l->value.ptr, l->value.len);
            r->value_len = (uint32_t)(sc->len - r->value_off);
        }
    }
    /* insertion sort: n is bounded by max_label_count and usually tiny */
    for (uint32_t i = 1; i < n; i++) {
        label_ref_t t = refs[i];
        uint32_t j = i;
        while (j > 0 && label_cmp(sc, &refs[j - 1], &t) > 0) {
            refs[j] = refs[j - 1];
            j--;
        }
        refs[j] = t;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        const label_ref_t *r = &refs[i];
        if (i > 0 && r->name_len == refs[i - 1].name_len &&
            memcmp(sc->data + r->name_off, sc->data + refs[i - 1].name_off, r->name_len) == 0)
            continue;
        key_put(k, sc->data + r->name_off, r->name_len);
        key_put(k, r->value_off == UINT32_MAX ? r->value : sc->data + r->value_off, r->value_len);
        kept++;
    }
    return kept;
}

/* ---- families ---- */

static int name_cmp(const char *a, uint32_t al, const char *b, uint32_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c != 0)
        return c;
    return al < bl ? -1 : al > bl;
}

/* Index of the family named name, or (-1 - insertion point). */
static long family_find(const metric_store_t *ms, const char *name, uint32_t len)
{
    size_t lo = 0, hi = ms->n_fams;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = name_cmp(ms->fams[mid]->name, ms->fams[mid]->name_len, name, len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1 - (long)lo;
}

static int family_exists(const metric_store_t *ms, const char *name, uint32_t len, const char *suffix, int want_type)
{
    char tmp[1024];
    size_t sl = strlen(suffix);
    if (len + sl > sizeof(tmp))
        return 0;
    memcpy(tmp, name, len);
    memcpy(tmp + len, suffix, sl);
    long at = family_find(ms, tmp, (uint32_t)(len + sl));
    return at >= 0 && (want_type < 0 || ms->fams[at]->type == (enum prom_type)want_type);
}

static int ends_with(const char *s, uint32_t len, const char *suffix, uint32_t *stem)
{
    size_t sl = strlen(suffix);
    if (len <= sl || memcmp(s + len - sl, suffix, sl) != 0)
        return 0;
    *stem = (uint32_t)(len - sl);
    return 1;
}

/*
 * 1 when a new family (name, type) would write sample names that another
 * family already writes, which makes Prometheus refuse the whole scrape:
 * counter `x` (samples `x_total`) against gauge `x_total`, histogram `x`
 * against a family named `x_bucket`, `x_count` or `x_sum`.
 */
static int family_clashes(const metric_store_t *ms, const char *name, uint32_t len, enum prom_type type)
{
    uint32_t stem;
    if (type == PROM_COUNTER)
        return family_exists(ms, name, len, "_total", -1);
    if (ends_with(name, len, "_total", &stem) && family_exists(ms, name, stem, "", PROM_COUNTER))
        return 1;
    if (type == PROM_HISTOGRAM)
        return family_exists(ms, name, len, "_bucket", -1) || family_exists(ms, name, len, "_count", -1) ||
               family_exists(ms, name, len, "_sum", -1);
    return (ends_with(name, len, "_bucket", &stem) || ends_with(name, len, "_count", &stem) ||
            ends_with(name, len, "_sum", &stem)) &&
           family_exists(ms, name, stem, "", PROM_HISTOGRAM);
}

static family_t *family_add(metric_store_t *ms, size_t at, const char *name, uint32_t len, enum prom_type type,
                            const metric_point_t *p)
{
    family_t *f = xcalloc(1, sizeof(*f));
    f->name = xmalloc(len + 1);
    memcpy(f->name, name, len);
    f->name[len] = '\0';
    f->name_len = len;
    f->type = type;
    if (p->unit.len > 0 && p->unit.len <= ms->cfg.max_name_len && prom_name_valid(p->unit.ptr, p->unit.len, 1)) {
        f->unit = xmalloc(p->unit.len + 1);
        memcpy(f->unit, p->unit.ptr, p->unit.len);
        f->unit[p->unit.len] = '\0';
    }
    if (ms->n_fams == ms->cap_fams) {
        size_t cap = ms->cap_fams ? ms->cap_fams * 2 : 64;
        family_t **nf = realloc(ms->fams, cap * sizeof(*nf));
        if (nf == NULL)
            log_fatal("out of memory growing the family table");
        ms->fams = nf;
        ms->cap_fams = cap;
    }
    memmove(ms->fams + at + 1, ms->fams + at, (ms->n_fams - at) * sizeof(*ms->fams));
    ms->fams[at] = f;
    ms->n_fams++;
    return f;
}

static void family_set_help(metric_store_t *ms, family_t *f, const metric_point_t *p)
{
    if (f->help != NULL || p->description.len == 0 || p->description.ptr == NULL)
        return;
    uint32_t len = p->description.len;
    if (len > ms->cfg.max_help_len)
        len = ms->cfg.max_help_len;
    buf_t *sc = &ms->scratch;
    sc->len = 0;
    append_utf8(sc, p->description.ptr, len);
    f->help = xmalloc(sc->len + 1);
    memcpy(f->help, sc->data, sc->len);
    f->help[sc->len] = '\0';
    f->help_len = (uint32_t)sc->len;
}

/* ---- series ---- */

static void table_grow(metric_store_t *ms)
{
    size_t size = ms->table_size * 2;
    series_t **t = xcalloc(size, sizeof(*t));
    for (size_t i = 0; i < ms->table_size; i++) {
        series_t *s = ms->table[i];
        while (s) {
            series_t *n = s->hnext;
            size_t b = s->hash & (size - 1);
            s->hnext = t[b];
            t[b] = s;
            s = n;
        }
    }
    free(ms->table);
    ms->table = t;
    ms->table_size = size;
}

static series_t *series_lookup(metric_store_t *ms, uint64_t hash)
{
    for (series_t *s = ms->table[hash & (ms->table_size - 1)]; s; s = s->hnext)
        if (s->hash == hash && s->key_len == ms->key.len && memcmp(s->key, ms->key.data, s->key_len) == 0)
            return s;
    return NULL;
}

static uint32_t key_u32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static series_t *series_create(metric_store_t *ms, family_t *f, uint64_t hash, uint32_t n_labels)
{
    size_t klen = ms->key.len;
    size_t size = sizeof(series_t) + n_labels * sizeof(metric_label_t) + klen;
    series_t *s = xcalloc(1, size);
    s->labels = (metric_label_t *)(s + 1);
    char *key = (char *)(s->labels + n_labels);
    memcpy(key, ms->key.data, klen);
    s->key = key;
    s->key_len = (uint32_t)klen;
    s->hash = hash;
    s->seq = ++ms->next_seq;
    s->n_labels = n_labels;
    const char *q = key + 4 + key_u32(key);
    for (uint32_t i = 0; i < n_labels; i++) {
        uint32_t l = key_u32(q);
        s->labels[i].name = (str_t){q + 4, l};
        q += 4 + l;
        l = key_u32(q);
        s->labels[i].value = (str_t){q + 4, l};
        q += 4 + l;
    }
    s->fam = f;
    s->prev = f->tail;
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    f->n_series++;
    size_t b = hash & (ms->table_size - 1);
    s->hnext = ms->table[b];
    ms->table[b] = s;
    ms->n_series++;
    if (ms->n_series > ms->table_size - ms->table_size / 4)
        table_grow(ms);
    return s;
}

static void series_unlink(metric_store_t *ms, series_t *s)
{
    series_t **pp = &ms->table[s->hash & (ms->table_size - 1)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    family_t *f = s->fam;
    if (s->prev)
        s->prev->next = s->next;
    else
        f->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        f->tail = s->prev;
    f->n_series--;
    ms->n_series--;
    if (f->le_donor == s)
        f->le_donor = NULL;
}

static int bounds_equal(const series_t *s, uint32_t n_bounds, const double *bounds)
{
    if (s->bounds == NULL || s->n_bounds != n_bounds)
        return 0;
    return n_bounds == 0 || memcmp(s->bounds, bounds, n_bounds * sizeof(double)) == 0;
}

/*
 * (Re)shape the histogram arrays of s for these bounds, zeroed. The `le`
 * strings are formatted here, once per bounds change, not per scrape.
 */
static void series_hist_shape(series_t *s, uint32_t n_bounds, const double *bounds)
{
    if (!bounds_equal(s, n_bounds, bounds)) {
        free(s->bounds);
        s->bounds = NULL;
        /* series of one family nearly always share bounds: copy the donor's strings */
        const series_t *d = s->fam->le_donor;
        if (d == s || (d != NULL && !bounds_equal(d, n_bounds, bounds)))
            d = NULL;
        size_t le_len = d ? d->le_len : prom_format_le_packed(NULL, bounds, n_bounds);
        size_t size =
            n_bounds * sizeof(double) + (n_bounds + 1) * (sizeof(uint64_t) + sizeof(metric_exemplar_t)) + le_len;
        s->bounds = xmalloc(size);
        s->buckets = (uint64_t *)(s->bounds + n_bounds);
        s->exemplars = (metric_exemplar_t *)(s->buckets + n_bounds + 1);
        s->le = (char *)(s->exemplars + n_bounds + 1);
        s->n_bounds = n_bounds;
        if (n_bounds > 0)
            memcpy(s->bounds, bounds, n_bounds * sizeof(double));
        s->le_len = (uint32_t)le_len;
        if (d != NULL) {
            memcpy(s->le, d->le, le_len);
        } else {
            prom_format_le_packed(s->le, bounds, n_bounds);
            s->fam->le_donor = s;
        }
    }
    memset(s->buckets, 0, (n_bounds + 1) * sizeof(uint64_t));
    memset(s->exemplars, 0, (n_bounds + 1) * sizeof(metric_exemplar_t));
    s->sum = 0;
    s->has_sum = 0;
}

static int has_trace(const metric_exemplar_t *e)
{
    return (e->trace_id_high | e->trace_id_low) != 0;
}

static void keep_exemplar(metric_exemplar_t *slot, const metric_exemplar_t *e)
{
    if (!has_trace(slot) || e->time_unix_nano >= slot->time_unix_nano)
        *slot = *e;
}

static void apply_histogram(series_t *s, const metric_point_t *p)
{
    if (p->temporality == METRIC_TEMPORALITY_CUMULATIVE || s->bounds == NULL)
        series_hist_shape(s, p->n_bounds, p->bounds);
    if (p->bucket_counts != NULL)
        for (uint32_t i = 0; i <= p->n_bounds; i++)
            s->buckets[i] += p->bucket_counts[i];
    else
        s->buckets[0] += p->count;
    if (p->has_sum) {
        s->sum += p->sum;
        s->has_sum = 1;
    }
    for (uint32_t i = 0; i < p->n_exemplars; i++) {
        const metric_exemplar_t *e = &p->exemplars[i];
        if (!has_trace(e) || isnan(e->value))
            continue;
        uint32_t b = 0;
        while (b < s->n_bounds && !(e->value <= s->bounds[b]))
            b++;
        keep_exemplar(&s->exemplars[b], e);
    }
}

static void apply_point(series_t *s, const metric_point_t *p, enum prom_type type)
{
    int delta = p->temporality == METRIC_TEMPORALITY_DELTA;
    if (type == PROM_HISTOGRAM) {
        apply_histogram(s, p);
    } else if (p->type == METRIC_SUM && delta) {
        s->value += p->value;
    } else {
        s->value = p->value;
    }
    if (!delta || s->start_time_unix_nano == 0)
        s->start_time_unix_nano = p->start_time_unix_nano;
    if (type == PROM_COUNTER)
        for (uint32_t i = 0; i < p->n_exemplars; i++)
            if (has_trace(&p->exemplars[i]))
                keep_exemplar(&s->counter_ex, &p->exemplars[i]);
}

/* 1 when a new family name starts with one of the owner's reserved prefixes. */
static int reserved(const metric_store_t *ms, const char *name, uint32_t len)
{
    for (size_t i = 0; i < ms->cfg.n_reserved_prefixes; i++) {
        size_t pl = strlen(ms->cfg.reserved_prefixes[i]);
        if (pl <= len && memcmp(name, ms->cfg.reserved_prefixes[i], pl) == 0)
            return 1;
    }
    return 0;
}

int metric_store_add(metric_store_t *ms, const metric_point_t *p, uint64_t now_ms, const char **reason)
{
    return metric_store_add_from(ms, p, now_ms, 0, reason);
}

int metric_store_add_from(metric_store_t *ms, const metric_point_t *p, uint64_t now_ms, uint16_t origin,
                          const char **reason)
{
    enum prom_type type = point_prom_type(p);
    enum metric_reject r;
    int rc = -1;
    pthread_mutex_lock(&ms->mu);
    const char *why = check_point(&ms->cfg, p, &r);
    if (why != NULL) {
        reject(ms, r, why, reason);
        goto out;
    }
    uint32_t name_len;
    uint32_t n_labels = build_key(&ms->scratch, &ms->key, p, type, &name_len);
    uint64_t hash = XXH3_64bits(ms->key.data, ms->key.len);
    series_t *s = series_lookup(ms, hash);
    if (s == NULL) {
        const char *name = ms->key.data + 4;
        long at = family_find(ms, name, name_len);
        family_t *f = at >= 0 ? ms->fams[at] : NULL;
        if (f != NULL && f->type != type) {
            reject(ms, METRIC_REJECT_TYPE_CONFLICT, "metric already exists with another type", reason);
            goto out;
        }
        if (ms->n_series >= ms->cfg.max_series) {
            if (!ms->full_logged) /* once until the store has room again */
                log_warn("metric store: %zu series, metrics.maxSeries reached: points of new series are dropped "
                         "(outrider_metric_points_rejected_total{reason=\"max_series\"})",
                         ms->n_series);
            ms->full_logged = 1;
            reject(ms, METRIC_REJECT_MAX_SERIES, "too many series", reason);
            goto out;
        }
        if (f != NULL && ms->cfg.max_series_per_metric > 0 && f->n_series >= ms->cfg.max_series_per_metric) {
            if (!f->full_logged)
                log_warn("metric store: %s has %u series, metrics.maxSeriesPerMetric reached: points of its new "
                         "series are dropped (outrider_metric_points_rejected_total{reason=\"metric_max_series\"})",
                         f->name, f->n_series);
            f->full_logged = 1;
            reject(ms, METRIC_REJECT_METRIC_MAX_SERIES, "too many series of this metric", reason);
            goto out;
        }
        if (f == NULL && reserved(ms, name, name_len)) {
            reject(ms, METRIC_REJECT_INVALID, "metric name is reserved for the collector's own metrics", reason);
            goto out;
        }
        if (f == NULL && family_clashes(ms, name, name_len, type)) {
            reject(ms, METRIC_REJECT_TYPE_CONFLICT, "metric names clash with another metric's samples", reason);
            goto out;
        }
        if (f == NULL)
            f = family_add(ms, (size_t)(-1 - at), name, name_len, type, p);
        s = series_create(ms, f, hash, n_labels);
    } else if (s->fam->type != type) {
        reject(ms, METRIC_REJECT_TYPE_CONFLICT, "metric already exists with another type", reason);
        goto out;
    } else if (type == PROM_HISTOGRAM && p->temporality == METRIC_TEMPORALITY_DELTA && s->bounds != NULL &&
               !bounds_equal(s, p->n_bounds, p->bounds)) {
        reject(ms, METRIC_REJECT_BOUNDS_MISMATCH, "histogram bounds differ from the series' bounds", reason);
        goto out;
    }
    family_set_help(ms, s->fam, p);
    apply_point(s, p, type);
    s->last_ms = now_ms;
    s->origin = origin;
    ms->stats.points_accepted++;
    rc = 0;
out:
    pthread_mutex_unlock(&ms->mu);
    return rc;
}

int metric_store_identity(metric_store_t *ms, const metric_point_t *p, buf_t *scratch, buf_t *key, uint64_t *hash,
                          const char **reason)
{
    enum metric_reject r;
    const char *why = check_point(&ms->cfg, p, &r); /* cfg never changes after create: no lock */
    if (why != NULL) {
        pthread_mutex_lock(&ms->mu);
        reject(ms, r, why, reason);
        pthread_mutex_unlock(&ms->mu);
        return -1;
    }
    uint32_t name_len;
    build_key(scratch, key, p, point_prom_type(p), &name_len);
    *hash = XXH3_64bits(key->data, key->len);
    return 0;
}

int metric_store_sink(void *ctx, const metric_point_t *p)
{
    metric_store_add(ctx, p, mono_now_ms(), NULL);
    return 0;
}

/* ---- expiry and rendering ---- */

/* Remove the series for which keep(s) is 0, and the families left empty; returns how many went. */
static uint64_t remove_series_locked(metric_store_t *ms, int (*keep)(const series_t *s, const void *arg),
                                     const void *arg)
{
    uint64_t n = 0;
    size_t kept = 0;
    for (size_t i = 0; i < ms->n_fams; i++) {
        family_t *f = ms->fams[i];
        series_t *s = f->head;
        while (s) {
            series_t *next = s->next;
            if (!keep(s, arg)) {
                series_unlink(ms, s);
                series_free(s);
                ms->removals++;
                f->full_logged = 0;
                ms->full_logged = 0;
                n++;
            }
            s = next;
        }
        if (f->n_series == 0)
            family_free(f);
        else
            ms->fams[kept++] = f;
    }
    ms->n_fams = kept;
    return n;
}

typedef struct expiry {
    uint64_t now_ms, ttl_ms;
} expiry_t;

static int fresh(const series_t *s, const void *arg)
{
    const expiry_t *e = arg;
    return !(e->now_ms >= s->last_ms && e->now_ms - s->last_ms >= e->ttl_ms);
}

static uint64_t expire_locked(metric_store_t *ms, uint64_t now_ms)
{
    expiry_t e = {now_ms, ms->cfg.series_ttl_ms};
    uint64_t n = remove_series_locked(ms, fresh, &e);
    ms->stats.series_expired += n;
    return n;
}

static int other_origin(const series_t *s, const void *arg)
{
    return s->origin != *(const uint16_t *)arg;
}

uint64_t metric_store_drop_origin(metric_store_t *ms, uint16_t origin)
{
    if (origin == 0)
        return 0;
    pthread_mutex_lock(&ms->mu);
    uint64_t n = remove_series_locked(ms, other_origin, &origin);
    pthread_mutex_unlock(&ms->mu);
    return n;
}

uint64_t metric_store_expire(metric_store_t *ms, uint64_t now_ms)
{
    pthread_mutex_lock(&ms->mu);
    uint64_t n = expire_locked(ms, now_ms);
    pthread_mutex_unlock(&ms->mu);
    return n;
}

static void write_family_header(const metric_store_t *ms, const family_t *f, buf_t *out, int openmetrics)
{
    if (f->help != NULL || !ms->cfg.help_fallback) {
        prom_write_family_header(out, f->name, f->type, f->help, f->help_len, f->unit, openmetrics);
        return;
    }
    /* Prometheus linters want a HELP line; the sender gave no description */
    char help[96];
    int n = snprintf(help, sizeof(help), "OTLP metric %s (no description sent)", f->name);
    size_t hl = n < 0 ? 0 : (size_t)n >= sizeof(help) ? sizeof(help) - 1 : (size_t)n;
    prom_write_family_header(out, f->name, f->type, help, hl, f->unit, openmetrics);
}

static void write_series(const family_t *f, const series_t *s, buf_t *out, int openmetrics)
{
    switch (f->type) {
    case PROM_COUNTER:
        prom_write_sample(out, f->name, "_total", s->labels, s->n_labels, NULL, NULL, s->value, &s->counter_ex,
                          openmetrics);
        break;
    case PROM_HISTOGRAM:
        prom_write_histogram_le(out, f->name, s->labels, s->n_labels, s->n_bounds, s->le, s->buckets, s->sum,
                                s->has_sum, s->exemplars, openmetrics);
        break;
    default:
        prom_write_sample(out, f->name, "", s->labels, s->n_labels, NULL, NULL, s->value, NULL, openmetrics);
        break;
    }
}

/*
 * Where a chunked render resumes. The family is found again by name (families
 * come and go, and their array shifts); within it, the next series is the
 * saved pointer while no series was removed since (ms->removals unchanged:
 * new series only append), else the first one created after the last written.
 */
static const series_t *resume_point(const metric_store_t *ms, const metric_render_cursor_t *cur, size_t *fi,
                                    int *in_family)
{
    long at = family_find(ms, cur->family_name, (uint32_t)strlen(cur->family_name));
    if (at < 0) { /* the family went: go on with the one after it */
        *fi = (size_t)(-1 - at);
        *in_family = 0;
        return NULL;
    }
    *fi = (size_t)at;
    *in_family = 1;
    if (cur->removals == ms->removals)
        return cur->next;
    const series_t *s = ms->fams[at]->head;
    while (s != NULL && s->seq <= cur->after_seq)
        s = s->next;
    return s;
}

/*
 * One step of a walk in parts: handles series s of family f (first: the
 * first series of f this walk handles from f's start) and returns its cost
 * (bytes, samples), which the walk adds up against its budget.
 */
typedef size_t (*walk_step_fn)(void *ctx, const metric_store_t *ms, const family_t *f, const series_t *s, int first);

/* The walk behind render_chunk and visit_chunk: the cursor's contract is in metric_store.h. */
static int walk_chunk(metric_store_t *ms, metric_render_cursor_t *cur, size_t budget, uint64_t now_ms,
                      walk_step_fn step, void *ctx)
{
    if (cur->done)
        return 0;
    pthread_mutex_lock(&ms->mu);
    size_t spent = 0, fi = 0;
    int in_family = 0;
    const series_t *s = NULL;
    if (cur->family_name == NULL)
        expire_locked(ms, now_ms);
    else
        s = resume_point(ms, cur, &fi, &in_family);
    for (; fi < ms->n_fams; fi++, in_family = 0) {
        const family_t *f = ms->fams[fi];
        int first = !in_family;
        if (first)
            s = f->head;
        for (; s != NULL; s = s->next, first = 0) {
            spent += step(ctx, ms, f, s, first);
            if (spent >= budget) {
                free(cur->family_name);
                cur->family_name = xstrdup(f->name);
                cur->next = s->next;
                cur->after_seq = s->seq;
                cur->removals = ms->removals;
                pthread_mutex_unlock(&ms->mu);
                return 1;
            }
        }
    }
    pthread_mutex_unlock(&ms->mu);
    metric_render_cursor_dispose(cur);
    cur->done = 1;
    return 0;
}

typedef struct render_ctx {
    buf_t *out;
    int openmetrics;
} render_ctx_t;

static size_t render_step(void *ctx, const metric_store_t *ms, const family_t *f, const series_t *s, int first)
{
    render_ctx_t *r = ctx;
    size_t before = r->out->len;
    if (first)
        write_family_header(ms, f, r->out, r->openmetrics);
    write_series(f, s, r->out, r->openmetrics);
    return r->out->len - before;
}

int metric_store_render_chunk(metric_store_t *ms, metric_render_cursor_t *cur, buf_t *out, size_t max_bytes,
                              uint64_t now_ms)
{
    render_ctx_t r = {out, cur->openmetrics};
    return walk_chunk(ms, cur, max_bytes, now_ms, render_step, &r);
}

typedef struct visit_ctx {
    metric_series_fn fn;
    void *ctx;
} visit_ctx_t;

static size_t visit_step(void *ctx, const metric_store_t *ms, const family_t *f, const series_t *s, int first)
{
    (void)ms;
    (void)first;
    const visit_ctx_t *v = ctx;
    metric_series_view_t view = {
        .family = f->name,
        .kind = f->type == PROM_COUNTER     ? METRIC_SERIES_COUNTER
                : f->type == PROM_HISTOGRAM ? METRIC_SERIES_HISTOGRAM
                                            : METRIC_SERIES_GAUGE,
        .labels = s->labels,
        .n_labels = s->n_labels,
        .value = s->value,
        .exemplar = has_trace(&s->counter_ex) ? &s->counter_ex : NULL,
        .n_bounds = s->n_bounds,
        .le = s->le,
        .buckets = s->buckets,
        .exemplars = s->exemplars,
        .sum = s->sum,
        .has_sum = s->has_sum,
    };
    return v->fn(v->ctx, &view);
}

int metric_store_visit_chunk(metric_store_t *ms, metric_render_cursor_t *cur, metric_series_fn fn, void *ctx,
                             size_t budget, uint64_t now_ms)
{
    visit_ctx_t v = {fn, ctx};
    return walk_chunk(ms, cur, budget, now_ms, visit_step, &v);
}

void metric_render_cursor_dispose(metric_render_cursor_t *cur)
{
    free(cur->family_name);
    cur->family_name = NULL;
}

void metric_store_render(metric_store_t *ms, buf_t *out, int openmetrics, uint64_t now_ms)
{
    metric_render_cursor_t cur = {.openmetrics = openmetrics};
    metric_store_render_chunk(ms, &cur, out, SIZE_MAX, now_ms);
}

void metric_store_stats(metric_store_t *ms, metric_store_stats_t *st)
{
    pthread_mutex_lock(&ms->mu);
    *st = ms->stats;
    st->series = ms->n_series;
    st->families = ms->n_fams;
    pthread_mutex_unlock(&ms->mu);
}
