/*
 * prom_text: writers for the Prometheus text exposition format 0.0.4 and
 * OpenMetrics 1.0, plus a tiny registry of lock-free self-metrics.
 *
 * Every /metrics byte the collector produces goes through these writers,
 * both the aggregated proxy series (collector/metric_store.c) and the
 * collector's own health metrics, so both formats have one implementation.
 *
 * Naming convention used by all writers: `name` is the metric *family* name
 * as OpenMetrics defines it, i.e. without the `_total` of a counter. Sample
 * lines take a suffix ("_total", "_bucket", "_count", "_sum" or ""). In the
 * 0.0.4 text format a counter's HELP/TYPE lines name `<name>_total` (what
 * client_golang writes); in OpenMetrics they name `<name>`.
 *
 * Differences between the formats handled here:
 *   - HELP escaping: 0.0.4 escapes `\` and newline; OpenMetrics also `"`.
 *   - untyped metrics are `untyped` in 0.0.4 and `unknown` in OpenMetrics.
 *   - exemplars (` # {trace_id="..",span_id=".."} value [timestamp]`) are
 *     written only in OpenMetrics and only on `_total` and `_bucket` samples;
 *     0.0.4 parsers reject them.
 *   - OpenMetrics ends with `# EOF` (prom_write_eof); 0.0.4 has no terminator.
 *
 * The writers never fail (buf_t aborts on out-of-memory) and allocate only
 * when the buffer grows. Names and label names must already be valid
 * Prometheus names (see prom_sanitize_name); values are escaped here.
 */
#ifndef OUTRIDER_PROM_TEXT_H
#define OUTRIDER_PROM_TEXT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "metric.h"

#define PROM_CONTENT_TYPE_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define PROM_CONTENT_TYPE_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* Room for any double written by prom_format_double (plus NUL). */
#define PROM_DOUBLE_MAX 32

enum prom_type {
    PROM_UNTYPED = 0,
    PROM_COUNTER,
    PROM_GAUGE,
    PROM_HISTOGRAM,
    PROM_SUMMARY,
};

/*
 * Format v as both formats expect: "NaN", "+Inf", "-Inf"; integral values
 * of magnitude below 2^53 without exponent or fraction ("1000000"); others
 * with the shortest "%.*g" text that parses back to the same double.
 * out must hold PROM_DOUBLE_MAX bytes; returns the length (NUL-terminated).
 */
size_t prom_format_double(char *out, double v);

/* Append a formatted double (see prom_format_double). */
void prom_append_double(buf_t *b, double v);

/* Append s as the inside of a quoted label value: `\` `"` and newline escaped. */
void prom_append_label_value(buf_t *b, const char *s, size_t len);

/* Append s as HELP text: `\` and newline escaped, and `"` too when openmetrics. */
void prom_append_help(buf_t *b, const char *s, size_t len, int openmetrics);

/*
 * Sanitise a metric or label name in place into [a-zA-Z_:][a-zA-Z0-9_:]*:
 * every other byte becomes '_', a leading digit becomes '_'. When label is
 * set, ':' is invalid too (label names may not contain it). An empty name
 * becomes "_" if cap allows. name holds len bytes; returns the new length
 * (same as len, or 1 for the empty case; 0 if cap is 0).
 */
size_t prom_sanitize_name(char *name, size_t len, size_t cap, int label);

/* 1 when s (len bytes) is a valid metric name (label: valid label name), else 0. */
int prom_name_valid(const char *s, size_t len, int label);

/*
 * Write the `# HELP`, `# TYPE` and (OpenMetrics only) `# UNIT` lines of a
 * family. name is the family name (no `_total` for counters, see above).
 * help may be NULL or empty: then no HELP line. unit may be NULL: `# UNIT`
 * is written only when openmetrics and name ends with "_<unit>" (as
 * OpenMetrics requires); otherwise it is omitted.
 */
void prom_write_family_header(buf_t *b, const char *name, enum prom_type type, const char *help, size_t help_len,
                              const char *unit, int openmetrics);

/*
 * Write one sample line: name+suffix, the label set (labels, then the extra
 * label if extra_name is not NULL; no braces when there are none), the
 * value, the exemplar when openmetrics, ex is not NULL and carries a trace
 * id (callers pass exemplars only on `_total` and `_bucket` samples), and a
 * newline. Label names must be valid; label values are escaped. Exemplar
 * labels are trace_id (32 hex, or 16 when the high half is 0) and span_id
 * (16 hex, if not 0); its timestamp (seconds, millisecond precision) is
 * written when time_unix_nano is not 0.
 */
void prom_write_sample(buf_t *b, const char *name, const char *suffix, const metric_label_t *labels, uint32_t n_labels,
                       const char *extra_name, const char *extra_value, double value, const metric_exemplar_t *ex,
                       int openmetrics);

/*
 * Write the samples of one histogram: `_bucket{le}` for each bound and
 * `+Inf`, cumulative; `_count` (equal to the +Inf bucket); `_sum` when
 * has_sum. bucket_counts holds n_bounds + 1 per-bucket (non-cumulative)
 * counts; bounds are finite and increasing. exemplars is NULL or holds
 * n_bounds + 1 entries (entries without a trace id are skipped).
 */
void prom_write_histogram(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                          uint32_t n_bounds, const double *bounds, const uint64_t *bucket_counts, double sum,
                          int has_sum, const metric_exemplar_t *exemplars, int openmetrics);

/*
 * Same as prom_write_histogram with the `le` values already formatted:
 * le_packed holds n_bounds NUL-terminated strings back to back, as written
 * by prom_format_le_packed. Lets a store format bounds once, not per scrape.
 */
void prom_write_histogram_le(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                             uint32_t n_bounds, const char *le_packed, const uint64_t *bucket_counts, double sum,
                             int has_sum, const metric_exemplar_t *exemplars, int openmetrics);

/*
 * Format bounds as packed `le` strings into out (when not NULL); returns the
 * bytes needed (call with NULL first to size out).
 */
size_t prom_format_le_packed(char *out, const double *bounds, uint32_t n_bounds);

/* Append "# EOF\n" when openmetrics; nothing otherwise. Call once, last. */
void prom_write_eof(buf_t *b, int openmetrics);

/*
 * 1 when an HTTP Accept header asks for OpenMetrics: it lists
 * application/openmetrics-text with q > 0 and a q at least as high as any
 * text/plain entry. NULL or empty → 0 (text format).
 */
int prom_accepts_openmetrics(const char *accept);

/* The Content-Type that goes with a format. */
const char *prom_content_type(int openmetrics);

/* ---- self-metrics: lock-free cells for the collector's own health ---- */

/* A monotonically increasing integer counter. Zero-initialise (or PROM_COUNTER_INIT). */
typedef struct prom_counter {
    _Atomic uint64_t value;
} prom_counter_t;

/* A gauge holding a double. Zero-initialise (0.0). */
typedef struct prom_gauge {
    _Atomic uint64_t bits; /* the double's bit pattern */
} prom_gauge_t;

#define PROM_HISTOGRAM_MAX_BOUNDS 32

/*
 * A histogram with fixed bounds (at most PROM_HISTOGRAM_MAX_BOUNDS). Init
 * with prom_histogram_init; observations are lock-free. A concurrent render
 * may see count and buckets from slightly different instants; the writer
 * derives _count from the buckets so the output stays self-consistent.
 */
typedef struct prom_histogram {
    uint32_t n_bounds;
    double bounds[PROM_HISTOGRAM_MAX_BOUNDS];
    _Atomic uint64_t buckets[PROM_HISTOGRAM_MAX_BOUNDS + 1];
    _Atomic uint64_t sum_bits; /* double bit pattern, updated by CAS */
} prom_histogram_t;

void prom_counter_add(prom_counter_t *c, uint64_t n);
uint64_t prom_counter_get(const prom_counter_t *c);
void prom_gauge_set(prom_gauge_t *g, double v);
void prom_gauge_add(prom_gauge_t *g, double delta);
double prom_gauge_get(const prom_gauge_t *g);

/* Zero h and copy the bounds (finite, increasing; extra ones past the max are ignored). */
void prom_histogram_init(prom_histogram_t *h, const double *bounds, uint32_t n_bounds);
void prom_histogram_observe(prom_histogram_t *h, double v);

/* Bounds in seconds for request latencies (1 ms .. 10 s); PROM_LATENCY_BOUNDS_N entries. */
#define PROM_LATENCY_BOUNDS_N 14
extern const double prom_latency_bounds_seconds[PROM_LATENCY_BOUNDS_N];

/* Sample writers for self-metrics (write the family header first). */
void prom_write_counter(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                        const prom_counter_t *c, int openmetrics);
void prom_write_gauge(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                      const prom_gauge_t *g, int openmetrics);
void prom_write_histogram_cell(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                               const prom_histogram_t *h, int openmetrics);

/*
 * A histogram family whose label values are only known at run time (e.g.
 * http_server_requests_seconds{method,uri,status}). Up to max_cells label
 * sets are kept; observations for new label sets past that are dropped and
 * counted in `overflow`. Lookup takes a mutex (linear scan, meant for tens
 * of cells); the cell update itself is atomic.
 */
typedef struct prom_histogram_vec prom_histogram_vec_t;

/*
 * name, help and label_names are copied. n_label_names ≤ 8; returns NULL on
 * bad arguments. Free with prom_histogram_vec_destroy (NULL is a no-op).
 */
prom_histogram_vec_t *prom_histogram_vec_create(const char *name, const char *help, const char *const *label_names,
                                                uint32_t n_label_names, const double *bounds, uint32_t n_bounds,
                                                uint32_t max_cells);
void prom_histogram_vec_destroy(prom_histogram_vec_t *v);

/* Observe value for the label set label_values[n_label_names] (copied on first use). */
void prom_histogram_vec_observe(prom_histogram_vec_t *v, const char *const *label_values, double value);

/* Label sets dropped because max_cells was reached. */
uint64_t prom_histogram_vec_overflow(const prom_histogram_vec_t *v);

/* Write the whole family (header and every cell, in first-seen order). */
void prom_histogram_vec_render(prom_histogram_vec_t *v, buf_t *b, int openmetrics);

#endif
