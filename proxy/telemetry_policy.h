/*
 * telemetry_policy: Istio's Telemetry API made ready for the telemetry
 * hub (telemetry.h): what to measure, which labels, what to trace and what
 * to log, for each side (mode CLIENT: outbound, reporter "source"; SERVER:
 * inbound, reporter "destination").
 *
 * Built once per loaded configuration from its effective Telemetry
 * (config.h) and then immutable. Worker series, metric batches and the
 * runtime each hold a reference (atomic), so a policy outlives the
 * configuration that made it for as long as series recorded under it wait
 * to be exported. NULL stands for Istio's defaults everywhere: every
 * metric, the standard labels, the Proxy's sampling and access log.
 *
 * Labels. A metric's tag overrides are folded per mode into groups: the
 * metrics of one kind (HTTP or TCP) whose overrides are the same share a
 * group, so with no overrides an HTTP series is still one label set for
 * its four metrics. A group leaves out the removed standard labels,
 * replaces the values of the upserted ones and adds the new ones (in name
 * order). The upserted values are evaluated on the worker, per request,
 * into a tuple of at most TELE_POLICY_MAX_EXPRS strings (one per distinct
 * expression of the mode), which is interned with the series' other
 * dimensions; the exporter takes the values from it.
 */
#ifndef OUTRIDER_PROXY_TELEMETRY_POLICY_H
#define OUTRIDER_PROXY_TELEMETRY_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "attr_expr.h"
#include "config.h"
#include "telemetry_otlp.h"

#define TELE_POLICY_MAX_EXPRS 8 /* distinct tag value expressions per mode (config_telemetry.c checks it) */
#define TELE_POLICY_MAX_CUSTOM PROXY_TM_MAX_TAGS
#define TELE_TAGS_MAX 4096 /* bytes of a span's custom tags, "name\0value\0"... */

typedef struct tele_group {
    uint8_t metrics;  /* bits (1 << enum tele_metric) */
    uint32_t removed; /* bits (1 << enum tele_label) left out */
    uint8_t n_std;    /* standard labels with another value */
    struct {
        uint8_t label; /* enum tele_label */
        uint8_t src;   /* index in the tuple */
    } std[TELE_NLABELS];
    uint8_t n_extra; /* labels of its own, in name order */
    struct {
        const char *name;
        uint8_t src;
    } extra[TELE_MAX_EXTRA];
} tele_group_t;

typedef struct tele_custom_tag {
    const char *name;
    const char *header; /* a request header (lowercase), or NULL: value is fixed */
    const char *value;  /* literal, environment variable read at build, or the header's default */
    bool has_value;     /* a header without a default and absent from the request adds no tag */
} tele_custom_tag_t;

typedef struct tele_mode_policy {
    tele_group_t groups[2][4];               /* [enum tele_series_kind]: the metrics still on, grouped */
    uint8_t n_groups[2];                     /* 0: every metric of that kind is disabled */
    ax_expr_t *exprs[TELE_POLICY_MAX_EXPRS]; /* the tuple's, evaluated by the worker per request */
    uint8_t n_exprs;
    double sampling; /* percent; < 0: the Proxy's */
    bool spans_off;  /* disableSpanReporting */
    tele_custom_tag_t custom[TELE_POLICY_MAX_CUSTOM];
    uint8_t n_custom;
    int log;               /* -1: the Proxy's accessLog; 0 off; 1 on */
    ax_expr_t *log_filter; /* NULL: every request */
} tele_mode_policy_t;

typedef struct tele_policy {
    _Atomic uint32_t refs;
    tele_mode_policy_t mode[2]; /* [enum tele_reporter] */
    arena_t arena;              /* names and values */
} tele_policy_t;

/*
 * Build the policy of an effective Telemetry (config.h). *out is NULL when
 * it changes nothing (Istio's defaults). Returns 0, or -1 with a reason in
 * err when an expression does not parse (the loader checks them first, so
 * this is a defect). Environment custom tags are read now.
 */
int tele_policy_create(const proxy_tm_effective_t *eff, tele_policy_t **out, char *err, size_t errlen);

/* References; NULL is a no-op. The last unref frees. */
void tele_policy_ref(tele_policy_t *p);
void tele_policy_unref(tele_policy_t *p);

/* Sampling percent for a side: the policy's, or fallback (the Proxy's). */
double tele_policy_sampling(const tele_policy_t *p, int mode, double fallback);

/*
 * The label sets of one series under p (NULL: the standard set, one list
 * for every metric of the kind). v: Istio's standard values; tuple: the
 * worker's values (tele_policy_tuple, the mode's n_exprs of them).
 * Returns the number of lists in out (0 when every metric is off).
 */
size_t tele_policy_labels(const tele_policy_t *p, int mode, enum tele_series_kind kind, const str_t v[TELE_NLABELS],
                          const str_t *tuple, tele_label_list_t out[4]);

/*
 * The worker's tuple for one request: each of the mode's expressions
 * evaluated over ctx into out (a failed one is "unknown", as in Istio);
 * scratch backs numbers. Returns the count (the mode's n_exprs).
 */
size_t tele_policy_tuple(const tele_policy_t *p, int mode, const ax_ctx_t *ctx, str_t out[TELE_POLICY_MAX_EXPRS],
                         char scratch[TELE_POLICY_MAX_EXPRS][AX_SCRATCH]);

#endif
