/*
 * telemetry_policy: the effective Telemetry of a configuration folded into
 * what the telemetry hub applies per request (see telemetry_policy.h).
 */
#include "telemetry_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

static const str_t UNKNOWN = {"unknown", 7};

/* Index of the expression src in the mode's tuple, added when new; -1 on a parse error. */
static int tuple_index(tele_mode_policy_t *mp, const char *src, char *err, size_t errlen)
{
    for (int i = 0; i < mp->n_exprs; i++)
        if (strcmp(ax_source(mp->exprs[i]), src) == 0)
            return i;
    if (mp->n_exprs == TELE_POLICY_MAX_EXPRS) {
        snprintf(err, errlen, "more than %d tag value expressions in one mode", TELE_POLICY_MAX_EXPRS);
        return -1;
    }
    char why[160];
    size_t off = 0;
    ax_expr_t *e = ax_parse(src, AX_STRING, why, sizeof(why), &off);
    if (e == NULL) {
        snprintf(err, errlen, "tag value \"%s\": %s", src, why);
        return -1;
    }
    mp->exprs[mp->n_exprs] = e;
    return mp->n_exprs++;
}

static int cmp_extra_name(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static const char *pstr(tele_policy_t *p, const char *s)
{
    return s != NULL ? arena_strndup(&p->arena, s, strlen(s)) : NULL;
}

/* The group one metric's cell makes (metrics left for the caller). */
static int cell_group(tele_policy_t *p, tele_mode_policy_t *mp, enum tele_series_kind kind, const proxy_tm_cell_t *c,
                      tele_group_t *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    for (size_t t = 0; t < c->n_tags; t++) {
        const proxy_tm_tag_t *tag = c->tags[t];
        int k = tele_label_find(kind, tag->name);
        if (tag->remove) {
            if (k >= 0)
                g->removed |= 1u << k;
            continue;
        }
        int src = tuple_index(mp, tag->value, err, errlen);
        if (src < 0)
            return -1;
        if (k >= 0) {
            g->std[g->n_std].label = (uint8_t)k;
            g->std[g->n_std++].src = (uint8_t)src;
        } else if (g->n_extra < TELE_MAX_EXTRA) {
            g->extra[g->n_extra].name = pstr(p, tag->name);
            g->extra[g->n_extra++].src = (uint8_t)src;
        } else {
            snprintf(err, errlen, "more than %d labels added to one metric", TELE_MAX_EXTRA);
            return -1;
        }
    }
    /* name order, so that equal rules make equal groups; name is the first member */
    qsort(g->extra, g->n_extra, sizeof(g->extra[0]), cmp_extra_name);
    return 0;
}

static bool same_rules(const tele_group_t *a, const tele_group_t *b)
{
    if (a->removed != b->removed || a->n_std != b->n_std || a->n_extra != b->n_extra)
        return false;
    for (int i = 0; i < a->n_std; i++)
        if (a->std[i].label != b->std[i].label || a->std[i].src != b->std[i].src)
            return false;
    for (int i = 0; i < a->n_extra; i++)
        if (a->extra[i].src != b->extra[i].src || strcmp(a->extra[i].name, b->extra[i].name) != 0)
            return false;
    return true;
}

static int build_metrics(tele_policy_t *p, const proxy_tm_effective_t *eff, int mode, char *err, size_t errlen)
{
    tele_mode_policy_t *mp = &p->mode[mode];
    for (int m = 0; m < TELE_NMETRICS; m++) {
        const proxy_tm_cell_t *c = &eff->cells[mode][m];
        if (c->disabled == 1)
            continue;
        int kind = m < TELE_M_TCP_OPENED ? TELE_SERIES_HTTP : TELE_SERIES_TCP;
        tele_group_t g;
        if (cell_group(p, mp, (enum tele_series_kind)kind, c, &g, err, errlen) != 0)
            return -1;
        int i;
        for (i = 0; i < mp->n_groups[kind]; i++)
            if (same_rules(&mp->groups[kind][i], &g))
                break;
        if (i == mp->n_groups[kind])
            mp->groups[kind][mp->n_groups[kind]++] = g;
        mp->groups[kind][i].metrics |= (uint8_t)(1u << m);
    }
    return 0;
}

static void build_tracing(tele_policy_t *p, const proxy_tm_effective_t *eff, int mode)
{
    tele_mode_policy_t *mp = &p->mode[mode];
    mp->sampling = eff->sampling[mode];
    mp->spans_off = eff->disable_spans[mode] == 1;
    for (size_t i = 0; i < eff->n_custom_tags[mode] && mp->n_custom < TELE_POLICY_MAX_CUSTOM; i++) {
        const proxy_tm_custom_tag_t *ct = &eff->custom_tags[mode][i];
        tele_custom_tag_t *t = &mp->custom[mp->n_custom];
        t->name = pstr(p, ct->name);
        switch (ct->kind) {
        case PROXY_TM_LITERAL: t->value = pstr(p, ct->value); break;
        case PROXY_TM_HEADER:
            t->header = pstr(p, ct->value);
            t->value = pstr(p, ct->default_value);
            break;
        case PROXY_TM_ENVIRONMENT: {
            const char *v = getenv(ct->value);
            t->value = pstr(p, v != NULL ? v : ct->default_value);
            break;
        }
        }
        t->has_value = t->value != NULL;
        if (t->header == NULL && !t->has_value)
            continue; /* an unset variable without a default: no tag, as Envoy does */
        mp->n_custom++;
    }
}

static int build_logging(tele_policy_t *p, const proxy_tm_effective_t *eff, int mode, char *err, size_t errlen)
{
    tele_mode_policy_t *mp = &p->mode[mode];
    mp->log = eff->log_disabled[mode] == PROXY_UNSET ? -1 : !eff->log_disabled[mode];
    if (eff->log_filter[mode] == NULL)
        return 0;
    char why[160];
    size_t off = 0;
    mp->log_filter = ax_parse(eff->log_filter[mode], AX_BOOL, why, sizeof(why), &off);
    if (mp->log_filter == NULL) {
        snprintf(err, errlen, "access log filter \"%s\": %s", eff->log_filter[mode], why);
        return -1;
    }
    return 0;
}

/* Does eff change anything from Istio's defaults? */
static bool changes_anything(const proxy_tm_effective_t *eff)
{
    for (int mode = 0; mode < 2; mode++) {
        for (int m = 0; m < PROXY_TM_METRICS; m++)
            if (eff->cells[mode][m].disabled == 1 || eff->cells[mode][m].n_tags > 0)
                return true;
        if (eff->sampling[mode] >= 0 || eff->disable_spans[mode] == 1 || eff->n_custom_tags[mode] > 0 ||
            eff->log_disabled[mode] != PROXY_UNSET || eff->log_filter[mode] != NULL)
            return true;
    }
    return false;
}

static void policy_free(tele_policy_t *p)
{
    for (int mode = 0; mode < 2; mode++) {
        for (int i = 0; i < p->mode[mode].n_exprs; i++)
            ax_free(p->mode[mode].exprs[i]);
        ax_free(p->mode[mode].log_filter);
    }
    arena_dispose(&p->arena);
    free(p);
}

int tele_policy_create(const proxy_tm_effective_t *eff, tele_policy_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!changes_anything(eff))
        return 0;
    tele_policy_t *p = xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    arena_init(&p->arena, 0);
    for (int mode = 0; mode < 2; mode++) {
        build_tracing(p, eff, mode);
        if (build_metrics(p, eff, mode, err, errlen) != 0 || build_logging(p, eff, mode, err, errlen) != 0) {
            policy_free(p);
            return -1;
        }
    }
    *out = p;
    return 0;
}

void tele_policy_ref(tele_policy_t *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void tele_policy_unref(tele_policy_t *p)
{
    if (p != NULL && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        policy_free(p);
}

double tele_policy_sampling(const tele_policy_t *p, int mode, double fallback)
{
    return p != NULL && p->mode[mode].sampling >= 0 ? p->mode[mode].sampling : fallback;
}

size_t tele_policy_tuple(const tele_policy_t *p, int mode, const ax_ctx_t *ctx, str_t out[TELE_POLICY_MAX_EXPRS],
                         char scratch[TELE_POLICY_MAX_EXPRS][AX_SCRATCH])
{
    if (p == NULL)
        return 0;
    const tele_mode_policy_t *mp = &p->mode[mode];
    for (int i = 0; i < mp->n_exprs; i++)
        if (ax_eval_string(mp->exprs[i], ctx, scratch[i], &out[i]) != 0)
            out[i] = UNKNOWN;
    return mp->n_exprs;
}

size_t tele_policy_labels(const tele_policy_t *p, int mode, enum tele_series_kind kind, const str_t v[TELE_NLABELS],
                          const str_t *tuple, tele_label_list_t out[4])
{
    if (p == NULL) {
        tele_label_list_standard(&out[0], kind, v);
        return 1;
    }
    const tele_mode_policy_t *mp = &p->mode[mode];
    size_t n = 0;
    for (int gi = 0; gi < mp->n_groups[kind]; gi++) {
        const tele_group_t *g = &mp->groups[kind][gi];
        str_t val[TELE_NLABELS];
        memcpy(val, v, sizeof(val));
        for (int i = 0; i < g->n_std; i++)
            val[g->std[i].label] = tuple[g->std[i].src];
        tele_label_list_t *l = &out[n++];
        l->kind = (uint8_t)kind;
        l->metrics = g->metrics;
        l->n = 0;
        for (int k = 0; k < TELE_NLABELS; k++) {
            if (!tele_label_used(kind, (enum tele_label)k) || (g->removed & (1u << k)))
                continue;
            l->name[l->n] = tele_label_name((enum tele_label)k);
            l->v[l->n++] = val[k];
        }
        for (int i = 0; i < g->n_extra; i++) {
            l->name[l->n] = g->extra[i].name;
            l->v[l->n++] = tuple[g->extra[i].src];
        }
    }
    return n;
}
