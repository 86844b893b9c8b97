/*
 * metric_store: aggregates OTLP metric points from many proxies into
 * Prometheus series and renders them for /metrics.
 *
 * Model. A series is (Prometheus metric name, sorted sanitised label set);
 * its key is hashed with XXH3. Series belong to a family (one HELP/TYPE
 * block) of one Prometheus type: counter (monotonic sums), gauge (gauges
 * and non-monotonic sums) or histogram (explicit-bucket histograms).
 *
 * Names. The OTLP name is kept exactly as sent except that bytes invalid in
 * a Prometheus name become '_' (and a leading digit becomes '_'); no unit
 * suffix is ever added, so `istio_requests_total` arrives unchanged. Counter
 * samples always end with `_total`: as the OpenTelemetry Prometheus
 * exporters do, `_total` is appended to monotonic sums unless the name
 * already ends with it (`requests` → `requests_total`). The family (the
 * name without `_total` for counters) is what type conflicts are checked
 * on: once `requests` is a counter family, a gauge named `requests` or
 * `requests_total` is rejected; likewise a new family whose sample names
 * another family already writes (histogram `x` and gauge `x_count`) is
 * rejected, since one duplicate makes Prometheus drop the whole scrape. Label names are sanitised the same way
 * (dots → '_'; ':' too); label values are kept as sent, except that
 * malformed UTF-8 bytes become U+FFFD (Prometheus would refuse the whole
 * scrape). Labels whose sanitised names collide keep the first value in
 * sorted original-name order. A histogram label named `le` is renamed
 * `exported_le`.
 *
 * Aggregation. DELTA monotonic sums are added into the cumulative value (the
 * start time of the first point is kept); CUMULATIVE sums replace it; gauges
 * and non-monotonic sums keep the last value (a non-monotonic DELTA sum is
 * added too). DELTA histograms add bucket counts, count and sum bucket-wise
 * and are rejected if their bounds differ from the series' bounds;
 * CUMULATIVE histograms replace everything (bounds included). Points with
 * UNSPECIFIED temporality (sums and histograms) are rejected, as the OTLP
 * spec says they are invalid. Exemplars with a trace id are kept: the most
 * recent per histogram bucket (the bucket whose range holds the exemplar's
 * value) and the most recent per counter; they appear only in OpenMetrics.
 *
 * Limits (checked before anything is allocated): series count, series per
 * metric (family), label count, name and label value lengths, bucket count.
 * Rejected points are counted per reason; reaching a series limit is also
 * logged, once until there is room again. Adding to an existing series allocates nothing: the
 * key is built in a scratch buffer owned by the store.
 *
 * Threads. Every public function takes one mutex; render holds it while it
 * writes a part, and a visit while it visits one (about 50k series take a few
 * milliseconds).
 */
#ifndef OUTRIDER_METRIC_STORE_H
#define OUTRIDER_METRIC_STORE_H

#include <stdint.h>

#include "buf.h"
#include "metric.h"

typedef struct metric_store metric_store_t;

/* Fields left 0 take the default in brackets. */
typedef struct metric_store_config {
    uint64_t series_ttl_ms;         /* series not updated for this long expire [300000] */
    uint32_t max_series;            /* new series past this are rejected [100000] */
    uint32_t max_series_per_metric; /* new series of one family past this are rejected; 0 = no limit [0] */
    uint32_t max_label_count;       /* labels per point, at most 128 [32] */
    uint32_t max_name_len;          /* metric and label name bytes [256] */
    uint32_t max_label_value_len;   /* label value bytes [1024] */
    uint32_t max_buckets;           /* explicit bounds per histogram [128] */
    uint32_t max_help_len;          /* description bytes kept; longer ones are cut [1024] */
    int help_fallback; /* families without a description get a generated HELP line (linters want one) [0] */
    const char *const *reserved_prefixes; /* family names the owner renders itself: new families
                                             starting with one are rejected (not copied; must outlive the store) */
    size_t n_reserved_prefixes;
} metric_store_config_t;

/* Why a point was rejected; also the index into metric_store_stats_t.rejected. */
enum metric_reject {
    METRIC_REJECT_INVALID = 0,       /* bad name, NaN/negative counter delta, bad bounds, bad temporality */
    METRIC_REJECT_LIMIT,             /* a per-point limit (labels, lengths, buckets) */
    METRIC_REJECT_MAX_SERIES,        /* the store is full */
    METRIC_REJECT_TYPE_CONFLICT,     /* family already has another type */
    METRIC_REJECT_BOUNDS_MISMATCH,   /* DELTA histogram with other bounds than its series */
    METRIC_REJECT_METRIC_MAX_SERIES, /* the family is full (max_series_per_metric) */
    METRIC_REJECT_COUNT_
};

typedef struct metric_store_stats {
    uint64_t series;   /* live series */
    uint64_t families; /* live families */
    uint64_t points_accepted;
    uint64_t points_rejected; /* sum of rejected[] */
    uint64_t rejected[METRIC_REJECT_COUNT_];
    uint64_t series_expired;
} metric_store_stats_t;

/* Create a store; cfg may be NULL (all defaults). Free with metric_store_destroy. */
metric_store_t *metric_store_create(const metric_store_config_t *cfg);

/* Free the store and every series; NULL is a no-op. */
void metric_store_destroy(metric_store_t *ms);

/*
 * Aggregate one point at now_ms (the caller's clock, used for expiry).
 * Returns 0 when stored, -1 when rejected; then *reason (if not NULL) is a
 * static description and the rejection is counted. The point is only read
 * during the call.
 */
int metric_store_add(metric_store_t *ms, const metric_point_t *p, uint64_t now_ms, const char **reason);

/*
 * metric_store_add for a point that came from origin (1..65535; 0 = not
 * tracked): the series remembers the origin of its latest point, so that
 * metric_store_drop_origin can remove what one Kafka partition brought
 * when another store member takes that partition over.
 */
int metric_store_add_from(metric_store_t *ms, const metric_point_t *p, uint64_t now_ms, uint16_t origin,
                          const char **reason);

/* Remove every series whose latest point came from origin (0: none); returns how many. */
uint64_t metric_store_drop_origin(metric_store_t *ms, uint16_t origin);

/*
 * The identity of p's series without storing it (the ingest role keys its
 * Kafka messages by it, so that a series always lands in one partition):
 * checked as metric_store_add checks a point (a rejection is counted and
 * described in *reason, and -1 returned), then *hash is the store's own
 * hash of the series' canonical key (sanitised name and sorted labels).
 * Any thread, no lock: scratch and key are the caller's buffers.
 */
int metric_store_identity(metric_store_t *ms, const metric_point_t *p, buf_t *scratch, buf_t *key, uint64_t *hash,
                          const char **reason);

/*
 * metric_sink_fn adapter for decoders: ctx is a metric_store_t, now is
 * mono_now_ms(); rejections are counted; always returns 0.
 */
int metric_store_sink(void *ctx, const metric_point_t *p);

/* Remove series not updated for series_ttl_ms before now_ms, and empty families. Returns how many expired. */
uint64_t metric_store_expire(metric_store_t *ms, uint64_t now_ms);

/*
 * Expire (as above), then append every family to out, sorted by family
 * name, series in first-seen order: text format 0.0.4 when openmetrics is
 * 0, OpenMetrics 1.0 otherwise. Does NOT write `# EOF`: the caller appends
 * its own families and then calls prom_write_eof(out, openmetrics).
 */
void metric_store_render(metric_store_t *ms, buf_t *out, int openmetrics, uint64_t now_ms);

/*
 * A render in parts (a streamed scrape): the store's lock is held for one
 * part at a time, so ingest goes on between parts. Start with a zeroed
 * cursor (openmetrics set); each call expires first (the first call only),
 * then appends families and series until at least max_bytes were written,
 * and returns 1 when it stopped there (more may follow), 0 once it reached
 * the end. Series
 * created meanwhile are written if the render has not passed their
 * family's end; series removed meanwhile are not. Free a cursor left
 * before the end with metric_render_cursor_dispose.
 */
typedef struct metric_render_cursor {
    int openmetrics;
    int done;
    char *family_name;  /* family of the last series written; NULL before the first part */
    const void *next;   /* series after it (valid while no series was removed since) */
    uint64_t after_seq; /* its creation number */
    uint64_t removals;  /* the store's removal count when saved */
} metric_render_cursor_t;

int metric_store_render_chunk(metric_store_t *ms, metric_render_cursor_t *cur, buf_t *out, size_t max_bytes,
                              uint64_t now_ms);
void metric_render_cursor_dispose(metric_render_cursor_t *cur);

/* What a visitor sees of one series: views into the store, valid during the call only. */
enum metric_series_kind { METRIC_SERIES_COUNTER = 0, METRIC_SERIES_GAUGE, METRIC_SERIES_HISTOGRAM };

typedef struct metric_series_view {
    const char *family; /* family name, NUL-terminated; a counter's samples add `_total` */
    enum metric_series_kind kind;
    const metric_label_t *labels; /* sanitised names, sorted by name (bytes), no `__name__` or histogram `le` */
    uint32_t n_labels;
    double value;                       /* counter and gauge */
    const metric_exemplar_t *exemplar;  /* counter: its latest exemplar with a trace id, or NULL */
    uint32_t n_bounds;                  /* histogram: explicit bounds; buckets = n_bounds + 1 */
    const char *le;                     /* the bounds as /metrics writes them: n_bounds NUL-terminated strings */
    const uint64_t *buckets;            /* per bucket, not cumulative */
    const metric_exemplar_t *exemplars; /* per bucket; a trace id of 0 = none */
    double sum;
    int has_sum; /* 0: /metrics writes no `_sum` */
} metric_series_view_t;

/* Called once per series; returns its cost (any unit: samples, bytes) counted against the budget. */
typedef size_t (*metric_series_fn)(void *ctx, const metric_series_view_t *s);

/*
 * metric_store_render_chunk's walk with a visitor instead of text (a
 * remote-write push): same cursor and the same order; fn runs under the
 * store's lock, so it must be quick and must not call the store. Returns 1
 * when it stopped once the costs reached budget, 0 at the end.
 */
int metric_store_visit_chunk(metric_store_t *ms, metric_render_cursor_t *cur, metric_series_fn fn, void *ctx,
                             size_t budget, uint64_t now_ms);

/* Copy the counters into *st. */
void metric_store_stats(metric_store_t *ms, metric_store_stats_t *st);

/* Static name of a reject reason ("type_conflict"...), usable as a label value. */
const char *metric_store_reject_name(enum metric_reject r);

#endif
