/*
 * metric: one OTLP metric data point, the model that the OTLP decoder
 * produces and the metric store aggregates.
 *
 * Like span_t, a metric_point_t is a view: strings and arrays point into
 * memory owned by the decoder's arena and stay valid until that arena is
 * reset. Names and label names are as sent (the store sanitises them into
 * Prometheus names when it renders).
 */
#ifndef OUTRIDER_METRIC_H
#define OUTRIDER_METRIC_H

#include <stdint.h>

#include "span.h"

enum metric_type {
    METRIC_GAUGE = 0,
    METRIC_SUM,
    METRIC_HISTOGRAM,
};

enum metric_temporality {
    METRIC_TEMPORALITY_UNSPECIFIED = 0,
    METRIC_TEMPORALITY_DELTA = 1,      /* OTLP AGGREGATION_TEMPORALITY_DELTA */
    METRIC_TEMPORALITY_CUMULATIVE = 2, /* OTLP AGGREGATION_TEMPORALITY_CUMULATIVE */
};

typedef struct metric_label {
    str_t name;  /* attribute key as sent */
    str_t value; /* attribute value rendered as text (ints, doubles, bools too) */
} metric_label_t;

typedef struct metric_exemplar {
    double value;
    uint64_t time_unix_nano;
    uint64_t trace_id_high, trace_id_low; /* both 0 = no trace */
    uint64_t span_id;                     /* 0 = none */
} metric_exemplar_t;

typedef struct metric_point {
    str_t name;
    str_t description;
    str_t unit;
    enum metric_type type;
    enum metric_temporality temporality; /* sums and histograms */
    uint8_t monotonic;                   /* sums: is_monotonic */
    uint8_t has_sum;                     /* histograms: sum present */
    uint32_t n_labels;
    const metric_label_t *labels; /* data point attributes, in sent order */
    uint64_t start_time_unix_nano;
    uint64_t time_unix_nano;
    double value;      /* gauge and sum value (ints converted) */
    uint64_t count;    /* histogram */
    double sum;        /* histogram */
    uint32_t n_bounds; /* explicit bounds; buckets = n_bounds + 1 */
    const double *bounds;
    const uint64_t *bucket_counts; /* n_bounds + 1 entries */
    uint32_t n_exemplars;
    const metric_exemplar_t *exemplars;
} metric_point_t;

/* Receives decoded points; return 0 to go on, -1 to stop. */
typedef int (*metric_sink_fn)(void *ctx, const metric_point_t *point);

#endif
