/*
 * config_telemetry: Istio's `kind: Telemetry` (telemetry.istio.io v1 and
 * v1alpha1), both passes; the shape and the precedence rules are in
 * config.h.
 *
 * Pass one (telemetry_parse) checks one document's fields, types and
 * ranges with the loader's helpers, and parses every attribute expression
 * (tag values, log filters) with attr_expr so that a typo is a
 * file:line:col error at load rather than "unknown" labels later. Pass two
 * (telemetry_resolve) picks the documents that apply to this proxy (root
 * namespace, own namespace, own workload), warns when two stand at one
 * level, and folds them into cfg->telemetry, which runtime.c turns into
 * the telemetry hub's policy (telemetry.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "attr_expr.h"
#include "config.h"
#include "config_parse.h"
#include "telemetry_otlp.h"

#define TM_MAX_EXTRA_LABELS 8 /* new label names per metric and mode */
#define TM_MAX_VALUE_EXPRS 8  /* distinct tag value expressions per mode (telemetry_policy.h's tuple) */

static const char *const metric_names[] = {"REQUEST_COUNT",         "REQUEST_DURATION",       "REQUEST_SIZE",
                                           "RESPONSE_SIZE",         "TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS",
                                           "TCP_SENT_BYTES",        "TCP_RECEIVED_BYTES",     "ALL_METRICS",
                                           "GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES", NULL};
enum { M_ALL = PROXY_TM_METRICS, M_GRPC_REQ, M_GRPC_RESP };

static const char *const mode_names[] = {"CLIENT_AND_SERVER", "CLIENT", "SERVER", NULL};
static const unsigned mode_bits[] = {PROXY_TM_CLIENT | PROXY_TM_SERVER, PROXY_TM_CLIENT, PROXY_TM_SERVER};

const char *proxy_tm_metric_name(enum proxy_tm_metric m)
{
    return (unsigned)m < PROXY_TM_METRICS ? metric_names[m] : "";
}

/* Prometheus: [a-zA-Z_][a-zA-Z0-9_]*, and names starting with "__" are reserved. */
static int label_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_') || strncmp(s, "__", 2) == 0)
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* Parse an expression to check it; reports at v. */
static void check_expr(pctx_t *p, const yaml_node_t *v, const char *src, enum ax_type want)
{
    char why[160];
    size_t off = 0;
    ax_expr_t *e = ax_parse(src, want, why, sizeof(why), &off);
    if (e == NULL)
        pc_error(p, v, "%s (at character %zu of \"%s\")", why, off + 1, src);
    ax_free(e);
}

static void parse_providers(pctx_t *p, const yaml_node_t *v)
{
    long n = pc_seq(p, v);
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        PC_FIELDS(p, v->items[i], it)
        {
            if (PC_KEY(it, "name"))
                pc_string(p, it.val);
            else
                pc_unknown(p, &it);
        }
        pc_pop(p, mark);
    }
}

static void parse_mode(pctx_t *p, const yaml_node_t *v, unsigned *modes)
{
    int m = pc_enum(p, v, mode_names);
    if (m >= 0)
        *modes = mode_bits[m];
}

/* match: {mode: ...} of tracing and accessLogging. */
static void parse_mode_match(pctx_t *p, const yaml_node_t *v, unsigned *modes)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "mode"))
            parse_mode(p, it.val, modes);
        else
            pc_unknown(p, &it);
    }
}

static void parse_metric_match(pctx_t *p, const yaml_node_t *v, proxy_tm_override_t *o)
{
    PC_FIELDS(p, v, it)
    {
        if (PC_KEY(it, "metric")) {
            int m = pc_enum(p, it.val, metric_names);
            if (m == M_ALL)
                o->metrics = PROXY_TM_ALL_METRICS;
            else if (m == M_GRPC_REQ || m == M_GRPC_RESP) {
                o->metrics = 0;
                pc_warn(p, it.val, "the proxy reports no gRPC message counts: this override changes nothing");
            } else if (m >= 0)
                o->metrics = 1u << m;
        } else if (PC_KEY(it, "mode")) {
            parse_mode(p, it.val, &o->modes);
        } else if (PC_KEY(it, "customMetric")) {
            pc_error(p, it.key,
                     "custom metrics are not supported; match one of Istio's standard metrics with `metric`");
        } else {
            pc_unknown(p, &it);
        }
    }
}

static void parse_tag_overrides(pctx_t *p, const yaml_node_t *v, proxy_tm_override_t *o)
{
    if (v->kind != YAML_MAP) {
        (void)pc_map_begin(p, v); /* reports anything but a map or a null (no overrides) */
        return;
    }
    if (v->n > PROXY_TM_MAX_TAGS) {
        pc_error(p, v, "at most %d tag overrides in one override", PROXY_TM_MAX_TAGS);
        return;
    }
    o->tags = pc_alloc(p, v->n, sizeof(*o->tags));
    PC_FIELDS(p, v, it)
    {
        proxy_tm_tag_t *t = &o->tags[o->n_tags];
        memset(t, 0, sizeof(*t));
        t->name = pc_strdup(p, it.k);
        t->pos = (proxy_pos_t){it.key->line, it.key->col};
        if (!label_name_ok(it.k)) {
            pc_error(p, it.key, "\"%s\" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                     it.k);
            continue;
        }
        int op = 0; /* UPSERT */
        const char *value = NULL;
        const yaml_node_t *value_node = NULL, *op_node = NULL;
        PC_FIELDS(p, it.val, f)
        {
            if (PC_KEY(f, "operation")) {
                static const char *const ops[] = {"UPSERT", "REMOVE", NULL};
                int k = pc_enum(p, f.val, ops);
                if (k >= 0)
                    op = k;
                op_node = f.val;
            } else if (PC_KEY(f, "value")) {
                if ((value = pc_string(p, f.val)) != NULL)
                    value_node = f.val;
            } else {
                pc_unknown(p, &f);
            }
        }
        t->remove = op == 1;
        if (t->remove && value_node != NULL) {
            size_t mark = pc_push(p, "value");
            pc_error(p, value_node, "a value is only for operation UPSERT");
            pc_pop(p, mark);
            continue;
        }
        if (!t->remove) {
            if (value_node == NULL) {
                pc_error(p, op_node != NULL ? op_node : it.key, "operation UPSERT needs a value");
                continue;
            }
            size_t mark = pc_push(p, "value");
            check_expr(p, value_node, value, AX_STRING);
            pc_pop(p, mark);
            t->value = value;
        }
        o->n_tags++;
    }
}

static void parse_metrics(pctx_t *p, const yaml_node_t *v, proxy_telemetry_t *tm)
{
    long n = pc_seq(p, v);
    size_t total = 0;
    for (long i = 0; i < n; i++) {
        const yaml_node_t *ov = v->items[i]->kind == YAML_MAP ? yaml_map_get(v->items[i], "overrides") : NULL;
        if (ov != NULL && ov->kind == YAML_SEQ)
            total += ov->n;
    }
    tm->overrides = pc_alloc(p, total ? total : 1, sizeof(*tm->overrides));
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        PC_FIELDS(p, v->items[i], it)
        {
            if (PC_KEY(it, "providers")) {
                parse_providers(p, it.val);
            } else if (PC_KEY(it, "reportingInterval")) {
                int64_t ms;
                if (pc_duration(p, it.val, &ms) == 0)
                    pc_warn(p, it.val, "not applied: the proxy reports every telemetry.flushInterval of the Proxy");
            } else if (PC_KEY(it, "overrides")) {
                long k = pc_seq(p, it.val);
                for (long j = 0; j < k && tm->n_overrides < total; j++) {
                    size_t m2 = pc_push_index(p, (size_t)j);
                    const yaml_node_t *item = it.val->items[j];
                    proxy_tm_override_t *o = &tm->overrides[tm->n_overrides++];
                    o->metrics = PROXY_TM_ALL_METRICS;
                    o->modes = PROXY_TM_CLIENT | PROXY_TM_SERVER;
                    o->disabled = PROXY_UNSET;
                    o->pos = (proxy_pos_t){item->line, item->col};
                    PC_FIELDS(p, item, f)
                    {
                        if (PC_KEY(f, "match"))
                            parse_metric_match(p, f.val, o);
                        else if (PC_KEY(f, "disabled"))
                            pc_bool(p, f.val, &o->disabled);
                        else if (PC_KEY(f, "tagOverrides"))
                            parse_tag_overrides(p, f.val, o);
                        else
                            pc_unknown(p, &f);
                    }
                    pc_pop(p, m2);
                }
            } else {
                pc_unknown(p, &it);
            }
        }
        pc_pop(p, mark);
    }
}

static void parse_custom_tag(pctx_t *p, const pc_iter_t *it, proxy_tm_custom_tag_t *t)
{
    int kinds = 0;
    PC_FIELDS(p, it->val, f)
    {
        int k = PC_KEY(f, "literal")       ? PROXY_TM_LITERAL
                : PC_KEY(f, "header")      ? PROXY_TM_HEADER
                : PC_KEY(f, "environment") ? PROXY_TM_ENVIRONMENT
                                           : -1;
        if (k < 0) {
            pc_unknown(p, &f);
            continue;
        }
        kinds++;
        t->kind = (enum proxy_tm_custom_kind)k;
        const char *need = k == PROXY_TM_LITERAL ? "value" : "name";
        int seen = 0;
        PC_FIELDS(p, f.val, g)
        {
            if (PC_KEY(g, need)) {
                const char *s = pc_string(p, g.val);
                if (s != NULL && *s == '\0')
                    pc_error(p, g.val, "must not be empty");
                else if (s != NULL) {
                    t->value = k == PROXY_TM_HEADER ? pc_lower(p, s) : s;
                    seen = 1;
                }
            } else if (k != PROXY_TM_LITERAL && PC_KEY(g, "defaultValue")) {
                t->default_value = pc_string(p, g.val);
            } else {
                pc_unknown(p, &g);
            }
        }
        if (!seen && f.val->kind == YAML_MAP && yaml_map_get(f.val, need) == NULL)
            pc_missing(p, f.val, need);
    }
    if (kinds != 1)
        pc_error(p, it->key, "a custom tag needs exactly one of literal, header and environment");
}

static void parse_tracing(pctx_t *p, const yaml_node_t *v, proxy_telemetry_t *tm)
{
    long n = pc_seq(p, v);
    if (n <= 0)
        return;
    tm->tracing = pc_alloc(p, (size_t)n, sizeof(*tm->tracing));
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        const yaml_node_t *item = v->items[i];
        proxy_tm_tracing_t *t = &tm->tracing[tm->n_tracing++];
        t->modes = PROXY_TM_CLIENT | PROXY_TM_SERVER;
        t->sampling = -1;
        t->disable_spans = PROXY_UNSET;
        t->pos = (proxy_pos_t){item->line, item->col};
        PC_FIELDS(p, item, it)
        {
            if (PC_KEY(it, "providers")) {
                parse_providers(p, it.val);
            } else if (PC_KEY(it, "match")) {
                parse_mode_match(p, it.val, &t->modes);
            } else if (PC_KEY(it, "randomSamplingPercentage")) {
                pc_double(p, it.val, 0, 100, &t->sampling);
            } else if (PC_KEY(it, "disableSpanReporting")) {
                pc_bool(p, it.val, &t->disable_spans);
            } else if (PC_KEY(it, "useRequestIdForTraceSampling")) {
                int b;
                if (pc_bool(p, it.val, &b) == 0 && b)
                    pc_warn(p, it.val, "not applied: sampling decisions are random, not taken from x-request-id");
            } else if (PC_KEY(it, "customTags")) {
                t->has_tags = 1;
                if (it.val->kind == YAML_MAP && it.val->n > PROXY_TM_MAX_TAGS) {
                    pc_error(p, it.val, "at most %d custom tags", PROXY_TM_MAX_TAGS);
                    continue;
                }
                t->tags = pc_alloc(p, it.val->kind == YAML_MAP ? it.val->n : 1, sizeof(*t->tags));
                PC_FIELDS(p, it.val, tag)
                {
                    proxy_tm_custom_tag_t *ct = &t->tags[t->n_tags];
                    memset(ct, 0, sizeof(*ct));
                    ct->name = pc_strdup(p, tag.k);
                    ct->pos = (proxy_pos_t){tag.key->line, tag.key->col};
                    if (*tag.k == '\0') {
                        pc_error(p, tag.key, "a tag name must not be empty");
                        continue;
                    }
                    int before = p->errors;
                    parse_custom_tag(p, &tag, ct);
                    if (p->errors == before)
                        t->n_tags++;
                }
            } else {
                pc_unknown(p, &it);
            }
        }
        pc_pop(p, mark);
    }
}

static void parse_logging(pctx_t *p, const yaml_node_t *v, proxy_telemetry_t *tm)
{
    long n = pc_seq(p, v);
    if (n <= 0)
        return;
    tm->logging = pc_alloc(p, (size_t)n, sizeof(*tm->logging));
    for (long i = 0; i < n; i++) {
        size_t mark = pc_push_index(p, (size_t)i);
        const yaml_node_t *item = v->items[i];
        proxy_tm_logging_t *l = &tm->logging[tm->n_logging++];
        l->modes = PROXY_TM_CLIENT | PROXY_TM_SERVER;
        l->disabled = PROXY_UNSET;
        l->pos = (proxy_pos_t){item->line, item->col};
        PC_FIELDS(p, item, it)
        {
            if (PC_KEY(it, "providers")) {
                parse_providers(p, it.val);
            } else if (PC_KEY(it, "match")) {
                parse_mode_match(p, it.val, &l->modes);
            } else if (PC_KEY(it, "disabled")) {
                pc_bool(p, it.val, &l->disabled);
            } else if (PC_KEY(it, "filter")) {
                int seen = 0;
                PC_FIELDS(p, it.val, f)
                {
                    if (PC_KEY(f, "expression")) {
                        const char *s = pc_string(p, f.val);
                        if (s != NULL) {
                            seen = 1;
                            check_expr(p, f.val, s, AX_BOOL);
                            l->filter = s;
                        }
                    } else {
                        pc_unknown(p, &f);
                    }
                }
                if (!seen && it.val->kind == YAML_MAP && yaml_map_get(it.val, "expression") == NULL)
                    pc_missing(p, it.val, "expression");
            } else {
                pc_unknown(p, &it);
            }
        }
        pc_pop(p, mark);
    }
}

void telemetry_parse(pctx_t *p, const yaml_node_t *spec, proxy_telemetry_t *tm)
{
    PC_FIELDS(p, spec, it)
    {
        if (PC_KEY(it, "selector")) {
            PC_FIELDS(p, it.val, s)
            {
                if (PC_KEY(s, "matchLabels"))
                    pc_kv_map(p, s.val, &tm->selector, 0);
                else
                    pc_unknown(p, &s);
            }
            tm->has_selector = tm->selector.n > 0;
        } else if (PC_KEY(it, "targetRef") || PC_KEY(it, "targetRefs")) {
            pc_error(p, it.key,
                     "targetRef selects gateways and waypoints; a sidecar is chosen with selector.matchLabels");
        } else if (PC_KEY(it, "metrics")) {
            parse_metrics(p, it.val, tm);
        } else if (PC_KEY(it, "tracing")) {
            parse_tracing(p, it.val, tm);
        } else if (PC_KEY(it, "accessLogging")) {
            parse_logging(p, it.val, tm);
        } else {
            pc_unknown(p, &it);
        }
    }
}

/* ---- the Proxy's spec.telemetry: the exporter's credentials ---- */

int telemetry_parse_exporter_field(pctx_t *p, const pc_iter_t *t, proxy_spec_t *ps)
{
    if (PC_KEY(*t, "tokenFile")) {
        ps->otlp_token_file = pc_readable_file(p, t->val);
        return 1;
    }
    if (!PC_KEY(*t, "clientCertificate"))
        return 0;
    const yaml_node_t *v = t->val;
    if (v->kind == YAML_SCALAR && !v->is_null) {
        if (strcmp(v->str, "identity") != 0)
            pc_error(p, v, "expected identity (spec.identity's certificate) or {certFile, keyFile}, got \"%s\"",
                     v->str);
        else if (!p->has_identity)
            pc_error(p, v, "identity is spec.identity's workload certificate, and this Proxy has no spec.identity");
        else
            ps->otlp_identity_cert = 1;
        return 1;
    }
    int has_cert = 0, has_key = 0;
    PC_FIELDS(p, v, c)
    {
        if (PC_KEY(c, "certFile")) {
            has_cert = 1;
            ps->otlp_cert_file = pc_readable_file(p, c.val);
        } else if (PC_KEY(c, "keyFile")) {
            has_key = 1;
            ps->otlp_key_file = pc_readable_file(p, c.val);
        } else {
            pc_unknown(p, &c);
        }
    }
    if (v->kind == YAML_MAP && !has_cert)
        pc_missing(p, v, "certFile");
    if (v->kind == YAML_MAP && !has_key)
        pc_missing(p, v, "keyFile");
    if (!has_cert || !has_key)
        ps->otlp_cert_file = ps->otlp_key_file = NULL;
    return 1;
}

/* ---- pass two ---- */

static void enter(pctx_t *p, const proxy_telemetry_t *tm)
{
    snprintf(p->label, sizeof(p->label), "Telemetry %s", tm->meta.name ? tm->meta.name : "?");
    p->ns = tm->meta.namespace;
    pc_pop(p, 0);
}

/* The document for one level: the first that fits, with a warning on each later one. */
static const proxy_telemetry_t *pick(pctx_t *p, const char *ns, int workload, const proxy_kv_list_t *labels)
{
    const proxy_config_t *cfg = p->cfg;
    const proxy_telemetry_t *first = NULL;
    for (size_t i = 0; i < cfg->n_telemetries; i++) {
        const proxy_telemetry_t *tm = &cfg->telemetries[i];
        if (tm->meta.namespace == NULL || strcmp(tm->meta.namespace, ns) != 0 || tm->has_selector != workload)
            continue;
        if (workload && !pc_selects(&tm->selector, labels))
            continue;
        if (first == NULL) {
            first = tm;
            continue;
        }
        enter(p, tm);
        pc_warn_at(p, tm->meta.pos.line, tm->meta.pos.col,
                   workload ? "not used: Telemetry %s (line %d) already selects this proxy; Istio allows one"
                            : "not used: Telemetry %s (line %d) is already the one without a selector in namespace "
                              "%s; Istio allows one",
                   first->meta.name ? first->meta.name : "?", first->meta.pos.line, ns);
    }
    return first;
}

static void cell_apply(pctx_t *p, proxy_tm_cell_t *c, const proxy_tm_override_t *o, size_t cap)
{
    if (o->disabled != PROXY_UNSET)
        c->disabled = o->disabled;
    for (size_t t = 0; t < o->n_tags; t++) {
        size_t k;
        for (k = 0; k < c->n_tags; k++)
            if (strcmp(c->tags[k]->name, o->tags[t].name) == 0)
                break;
        if (k == c->n_tags) {
            if (c->tags == NULL)
                c->tags = pc_alloc(p, cap, sizeof(*c->tags));
            c->n_tags++;
        }
        c->tags[k] = &o->tags[t];
    }
}

/* The document of the level that holds tag (for messages). */
static const proxy_telemetry_t *owner(const proxy_tm_effective_t *eff, const proxy_tm_tag_t *tag)
{
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; eff->levels[l] != NULL && i < eff->levels[l]->n_overrides; i++) {
            const proxy_tm_override_t *o = &eff->levels[l]->overrides[i];
            if (o->n_tags > 0 && tag >= o->tags && tag < o->tags + o->n_tags)
                return eff->levels[l];
        }
    return NULL;
}

static void tag_error(pctx_t *p, const proxy_tm_effective_t *eff, const proxy_tm_tag_t *tag, const char *what, int mode,
                      int limit)
{
    const proxy_telemetry_t *tm = owner(eff, tag);
    if (tm != NULL)
        enter(p, tm);
    pc_error_at(p, tag->pos.line, tag->pos.col, "%s in mode %s: more than %d %s", tag->name, mode ? "SERVER" : "CLIENT",
                limit, what);
}

/* The limits of telemetry_policy.h: new label names per metric, value expressions per mode. */
static void check_limits(pctx_t *p, proxy_tm_effective_t *eff)
{
    for (int mode = 0; mode < 2; mode++) {
        const char *exprs[TM_MAX_VALUE_EXPRS];
        size_t n_exprs = 0;
        for (int m = 0; m < PROXY_TM_METRICS; m++) {
            const proxy_tm_cell_t *c = &eff->cells[mode][m];
            size_t extra = 0;
            for (size_t t = 0; t < c->n_tags; t++) {
                const proxy_tm_tag_t *tag = c->tags[t];
                if (tag->remove)
                    continue;
                if (tele_label_find(m >= PROXY_TM_TCP_OPENED_CONNECTIONS ? TELE_SERIES_TCP : TELE_SERIES_HTTP,
                                    tag->name) < 0 &&
                    ++extra == TM_MAX_EXTRA_LABELS + 1)
                    tag_error(p, eff, tag, "labels added to one metric", mode, TM_MAX_EXTRA_LABELS);
                size_t k;
                for (k = 0; k < n_exprs; k++)
                    if (strcmp(exprs[k], tag->value) == 0)
                        break;
                if (k < n_exprs)
                    continue;
                if (n_exprs == TM_MAX_VALUE_EXPRS) {
                    tag_error(p, eff, tag, "different tag value expressions over all metrics", mode,
                              TM_MAX_VALUE_EXPRS);
                    continue;
                }
                exprs[n_exprs++] = tag->value;
            }
        }
    }
}

void telemetry_resolve(pctx_t *p)
{
    proxy_config_t *cfg = p->cfg;
    const proxy_spec_t *ps = &cfg->proxy;
    proxy_tm_effective_t *eff = &cfg->telemetry;
    memset(eff, 0, sizeof(*eff));
    for (int mode = 0; mode < 2; mode++) {
        eff->sampling[mode] = -1;
        eff->log_disabled[mode] = PROXY_UNSET;
    }
    const char *ns = ps->meta.namespace ? ps->meta.namespace : "default";
    const char *root = ps->root_namespace ? ps->root_namespace : "istio-system";
    eff->levels[0] = pick(p, root, 0, NULL);
    eff->levels[1] = strcmp(ns, root) != 0 ? pick(p, ns, 0, NULL) : NULL;
    eff->levels[2] = pick(p, ns, 1, &ps->meta.labels);

    size_t cap = 0;
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; eff->levels[l] != NULL && i < eff->levels[l]->n_overrides; i++)
            cap += eff->levels[l]->overrides[i].n_tags;
    for (int l = 0; l < 3; l++) {
        const proxy_telemetry_t *tm = eff->levels[l];
        if (tm == NULL)
            continue;
        for (size_t i = 0; i < tm->n_overrides; i++) {
            const proxy_tm_override_t *o = &tm->overrides[i];
            for (int mode = 0; mode < 2; mode++)
                for (int m = 0; m < PROXY_TM_METRICS; m++)
                    if ((o->modes & (1u << mode)) && (o->metrics & (1u << m)))
                        cell_apply(p, &eff->cells[mode][m], o, cap);
        }
        for (size_t i = 0; i < tm->n_tracing; i++) {
            const proxy_tm_tracing_t *t = &tm->tracing[i];
            for (int mode = 0; mode < 2; mode++) {
                if (!(t->modes & (1u << mode)))
                    continue;
                if (t->sampling >= 0)
                    eff->sampling[mode] = t->sampling;
                if (t->disable_spans != PROXY_UNSET)
                    eff->disable_spans[mode] = t->disable_spans;
                if (t->has_tags) {
                    eff->custom_tags[mode] = t->tags;
                    eff->n_custom_tags[mode] = t->n_tags;
                }
            }
        }
        for (size_t i = 0; i < tm->n_logging; i++) {
            const proxy_tm_logging_t *lg = &tm->logging[i];
            for (int mode = 0; mode < 2; mode++) {
                if (!(lg->modes & (1u << mode)))
                    continue;
                if (lg->disabled != PROXY_UNSET)
                    eff->log_disabled[mode] = lg->disabled;
                if (lg->filter != NULL)
                    eff->log_filter[mode] = lg->filter;
            }
        }
    }
    check_limits(p, eff);
    p->label[0] = '\0';
    pc_pop(p, 0);
}
