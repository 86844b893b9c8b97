/*
 * prom_text: see prom_text.h.
 */
#include "prom_text.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "xalloc.h"

/* ---- numbers and escaping ---- */

/* Write (neg ? "-" : "") m / 10^frac in plain decimal, trailing fraction zeros left out; returns the length. */
static size_t format_decimal(char *out, int neg, uint64_t m, unsigned frac)
{
    char tmp[32];
    char *p = tmp + sizeof(tmp);
    unsigned digits = 0;
    while (frac > 0 && m % 10 == 0) { /* 1.50 -> 1.5 */
        m /= 10;
        frac--;
    }
    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
        if (++digits == frac)
            *--p = '.';
    } while (m != 0 || digits < frac);
    if (*p == '.')
        *--p = '0';
    size_t n = 0;
    if (neg)
        out[n++] = '-';
    memcpy(out + n, p, (size_t)(tmp + sizeof(tmp) - p));
    n += (size_t)(tmp + sizeof(tmp) - p);
    out[n] = '\0';
    return n;
}

size_t prom_format_double(char *out, double v)
{
    if (isnan(v)) {
        memcpy(out, "NaN", 4);
        return 3;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
        return 4;
    }
    if (v == trunc(v) && fabs(v) < 9007199254740992.0)
        return format_decimal(out, v < 0, (uint64_t)fabs(v), 0);
    /* m / 10^k with m below 10^15: what %.15g writes, found without printf (sums, latencies in seconds) */
    static const double pow10[] = {1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    double a = fabs(v);
    if (a >= 1e-4 && a < 1e6)
        for (unsigned k = 0; k < sizeof(pow10) / sizeof(pow10[0]); k++) {
            double m = nearbyint(a * pow10[k]);
            if (m < 1e15 && m / pow10[k] == a)
                return format_decimal(out, v < 0, (uint64_t)m, k + 1);
        }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, PROM_DOUBLE_MAX, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v)
            break;
    }
    return (size_t)n;
}

void prom_append_double(buf_t *b, double v)
{
    char tmp[PROM_DOUBLE_MAX];
    size_t n = prom_format_double(tmp, v);
    buf_append(b, tmp, n);
}

static void append_escaped(buf_t *b, const char *s, size_t len, int quote)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        const char *rep;
        if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '"' && quote)
            rep = "\\\"";
        else
            continue;
        buf_append(b, s + start, i - start);
        buf_append(b, rep, 2);
        start = i + 1;
    }
    buf_append(b, s + start, len - start);
}

void prom_append_label_value(buf_t *b, const char *s, size_t len)
{
    append_escaped(b, s, len, 1);
}

void prom_append_help(buf_t *b, const char *s, size_t len, int openmetrics)
{
    append_escaped(b, s, len, openmetrics);
}

static int name_char_ok(unsigned char c, int first, int label)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    if (c == ':')
        return !label;
    if (c >= '0' && c <= '9')
        return !first;
    return 0;
}

size_t prom_sanitize_name(char *name, size_t len, size_t cap, int label)
{
    if (len == 0) {
        if (cap == 0)
            return 0;
        name[0] = '_';
        return 1;
    }
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok((unsigned char)name[i], i == 0, label))
            name[i] = '_';
    return len;
}

int prom_name_valid(const char *s, size_t len, int label)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok((unsigned char)s[i], i == 0, label))
            return 0;
    return 1;
}

/* ---- family and sample writers ---- */

static const char *type_name(enum prom_type type, int openmetrics)
{
    switch (type) {
    case PROM_COUNTER: return "counter";
    case PROM_GAUGE: return "gauge";
    case PROM_HISTOGRAM: return "histogram";
    case PROM_SUMMARY: return "summary";
    case PROM_UNTYPED: break;
    }
    return openmetrics ? "unknown" : "untyped";
}

static void append_header_name(buf_t *b, const char *name, enum prom_type type, int openmetrics)
{
    buf_append_str(b, name);
    if (type == PROM_COUNTER && !openmetrics)
        buf_append(b, "_total", 6);
}

void prom_write_family_header(buf_t *b, const char *name, enum prom_type type, const char *help, size_t help_len,
                              const char *unit, int openmetrics)
{
    if (help != NULL && help_len > 0) {
        buf_append(b, "# HELP ", 7);
        append_header_name(b, name, type, openmetrics);
        buf_append_char(b, ' ');
        prom_append_help(b, help, help_len, openmetrics);
        buf_append_char(b, '\n');
    }
    buf_append(b, "# TYPE ", 7);
    append_header_name(b, name, type, openmetrics);
    buf_append_char(b, ' ');
    buf_append_str(b, type_name(type, openmetrics));
    buf_append_char(b, '\n');
    if (openmetrics && unit != NULL && unit[0] != '\0') {
        size_t nl = strlen(name), ul = strlen(unit);
        if (nl > ul + 1 && name[nl - ul - 1] == '_' && memcmp(name + nl - ul, unit, ul) == 0 &&
            prom_name_valid(unit, ul, 1)) {
            buf_append(b, "# UNIT ", 7);
            buf_append_str(b, name);
            buf_append_char(b, ' ');
            buf_append(b, unit, ul);
            buf_append_char(b, '\n');
        }
    }
}

static void append_trace_id(buf_t *b, const metric_exemplar_t *ex)
{
    uint8_t bytes[16];
    size_t n = 0;
    if (ex->trace_id_high != 0)
        for (int i = 7; i >= 0; i--)
            bytes[n++] = (uint8_t)(ex->trace_id_high >> (i * 8));
    for (int i = 7; i >= 0; i--)
        bytes[n++] = (uint8_t)(ex->trace_id_low >> (i * 8));
    buf_append_hex(b, bytes, n);
}

static void append_exemplar(buf_t *b, const metric_exemplar_t *ex)
{
    buf_append(b, " # {trace_id=\"", 14);
    append_trace_id(b, ex);
    buf_append_char(b, '"');
    if (ex->span_id != 0) {
        uint8_t bytes[8];
        for (int i = 0; i < 8; i++)
            bytes[i] = (uint8_t)(ex->span_id >> ((7 - i) * 8));
        buf_append(b, ",span_id=\"", 10);
        buf_append_hex(b, bytes, 8);
        buf_append_char(b, '"');
    }
    buf_append(b, "} ", 2);
    prom_append_double(b, ex->value);
    if (ex->time_unix_nano != 0) {
        uint64_t ms = ex->time_unix_nano / 1000000u;
        char tmp[32] = " ";
        size_t n = 1 + format_decimal(tmp + 1, 0, ms / 1000u, 0);
        tmp[n] = '.';
        for (int i = 3; i > 0; i--) /* always three digits: Prometheus's own exemplars look so */
            tmp[n + (size_t)i] = (char)('0' + (ms % 1000u) / (i == 3 ? 1u : i == 2 ? 10u : 100u) % 10u);
        buf_append(b, tmp, n + 4);
    }
}

/* Append "{labels" (no closing brace; nothing when there are no labels). */
static void append_label_set(buf_t *b, const metric_label_t *labels, uint32_t n_labels)
{
    for (uint32_t i = 0; i < n_labels; i++) {
        buf_reserve(b, labels[i].name.len + 3);
        b->data[b->len++] = i == 0 ? '{' : ',';
        memcpy(b->data + b->len, labels[i].name.ptr, labels[i].name.len);
        b->len += labels[i].name.len;
        b->data[b->len++] = '=';
        b->data[b->len++] = '"';
        prom_append_label_value(b, labels[i].value.ptr, labels[i].value.len);
        buf_append_char(b, '"');
    }
}

/* Append " value[ exemplar]\n". */
static void append_value_tail(buf_t *b, double value, const metric_exemplar_t *ex, int openmetrics)
{
    char tmp[PROM_DOUBLE_MAX + 1];
    tmp[0] = ' ';
    size_t n = prom_format_double(tmp + 1, value);
    buf_append(b, tmp, n + 1);
    if (openmetrics && ex != NULL && (ex->trace_id_high | ex->trace_id_low) != 0)
        append_exemplar(b, ex);
    buf_append_char(b, '\n');
}

/* Copy len bytes that already sit in b at off to its end. */
static void append_self(buf_t *b, size_t off, size_t len)
{
    buf_reserve(b, len);
    memcpy(b->data + b->len, b->data + off, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void prom_write_sample(buf_t *b, const char *name, const char *suffix, const metric_label_t *labels, uint32_t n_labels,
                       const char *extra_name, const char *extra_value, double value, const metric_exemplar_t *ex,
                       int openmetrics)
{
    buf_append_str(b, name);
    if (suffix != NULL)
        buf_append_str(b, suffix);
    append_label_set(b, labels, n_labels);
    if (extra_name != NULL) {
        buf_append_char(b, n_labels > 0 ? ',' : '{');
        buf_append_str(b, extra_name);
        buf_append(b, "=\"", 2);
        prom_append_label_value(b, extra_value, strlen(extra_value));
        buf_append_char(b, '"');
    }
    if (n_labels > 0 || extra_name != NULL)
        buf_append_char(b, '}');
    append_value_tail(b, value, ex, openmetrics);
}

/*
 * The label set is escaped once into the output, then copied from there for
 * every bucket line (offsets, since the buffer may move while growing).
 */
static void write_histogram(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                            uint32_t n_bounds, const double *bounds, const char *le_packed,
                            const uint64_t *bucket_counts, double sum, int has_sum, const metric_exemplar_t *exemplars,
                            int openmetrics)
{
    size_t name_len = strlen(name);
    size_t name_off = b->len;
    buf_append(b, name, name_len);
    buf_append(b, "_bucket", 7);
    size_t set_off = b->len;
    append_label_set(b, labels, n_labels);
    size_t set_len = b->len - set_off;
    const char *le_sep = n_labels > 0 ? ",le=\"" : "{le=\"";
    char le[PROM_DOUBLE_MAX];
    uint64_t cum = 0;
    for (uint32_t i = 0; i <= n_bounds; i++) {
        if (i > 0) {
            append_self(b, name_off, name_len + 7);
            append_self(b, set_off, set_len);
        }
        cum += bucket_counts[i];
        buf_append(b, le_sep, 5);
        if (i == n_bounds) {
            buf_append(b, "+Inf", 4);
        } else if (le_packed != NULL) {
            size_t n = strlen(le_packed);
            buf_append(b, le_packed, n);
            le_packed += n + 1;
        } else {
            buf_append(b, le, prom_format_double(le, bounds[i]));
        }
        buf_append(b, "\"}", 2);
        append_value_tail(b, (double)cum, exemplars ? &exemplars[i] : NULL, openmetrics);
    }
    for (int k = 0; k < 2; k++) {
        if (k == 1 && !has_sum)
            break;
        append_self(b, name_off, name_len);
        buf_append(b, k == 0 ? "_count" : "_sum", k == 0 ? 6 : 4);
        if (n_labels > 0) {
            append_self(b, set_off, set_len);
            buf_append_char(b, '}');
        }
        append_value_tail(b, k == 0 ? (double)cum : sum, NULL, openmetrics);
    }
}

void prom_write_histogram(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                          uint32_t n_bounds, const double *bounds, const uint64_t *bucket_counts, double sum,
                          int has_sum, const metric_exemplar_t *exemplars, int openmetrics)
{
    write_histogram(b, name, labels, n_labels, n_bounds, bounds, NULL, bucket_counts, sum, has_sum, exemplars,
                    openmetrics);
}

void prom_write_histogram_le(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                             uint32_t n_bounds, const char *le_packed, const uint64_t *bucket_counts, double sum,
                             int has_sum, const metric_exemplar_t *exemplars, int openmetrics)
{
    write_histogram(b, name, labels, n_labels, n_bounds, NULL, le_packed, bucket_counts, sum, has_sum, exemplars,
                    openmetrics);
}

size_t prom_format_le_packed(char *out, const double *bounds, uint32_t n_bounds)
{
    size_t len = 0;
    char tmp[PROM_DOUBLE_MAX];
    for (uint32_t i = 0; i < n_bounds; i++) {
        size_t n = prom_format_double(tmp, bounds[i]) + 1;
        if (out != NULL)
            memcpy(out + len, tmp, n);
        len += n;
    }
    return len;
}

void prom_write_eof(buf_t *b, int openmetrics)
{
    if (openmetrics)
        buf_append(b, "# EOF\n", 6);
}

/* ---- content negotiation ---- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_end(const char *start, const char *end)
{
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

/* q of one media range [p, end): 1.0 unless a q parameter says otherwise. */
static double media_range_q(const char *p, const char *end)
{
    double q = 1.0;
    const char *semi = memchr(p, ';', (size_t)(end - p));
    while (semi != NULL) {
        const char *param = skip_ws(semi + 1, end);
        if (param >= end)
            break;
        const char *next = memchr(param, ';', (size_t)(end - param));
        const char *pend = trim_end(param, next ? next : end);
        if (pend - param >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
            char tmp[16];
            size_t n = (size_t)(pend - param - 2);
            if (n >= sizeof(tmp))
                n = sizeof(tmp) - 1;
            memcpy(tmp, param + 2, n);
            tmp[n] = '\0';
            char *e;
            double v = strtod(tmp, &e);
            q = (e != tmp && v >= 0 && v <= 1) ? v : 0;
        }
        semi = next;
    }
    return q;
}

int prom_accepts_openmetrics(const char *accept)
{
    if (accept == NULL)
        return 0;
    static const char om[] = "application/openmetrics-text";
    static const char text[] = "text/plain";
    double best_om = 0, best_text = 0;
    const char *p = accept, *all_end = accept + strlen(accept);
    while (p < all_end) {
        const char *comma = memchr(p, ',', (size_t)(all_end - p));
        const char *end = comma ? comma : all_end;
        const char *s = skip_ws(p, end);
        const char *semi = s < end ? memchr(s, ';', (size_t)(end - s)) : NULL;
        const char *type_end = trim_end(s, semi ? semi : end);
        size_t tl = (size_t)(type_end - s);
        double q = media_range_q(s, end);
        if (tl == sizeof(om) - 1 && strncasecmp(s, om, tl) == 0) {
            if (q > best_om)
                best_om = q;
        } else if (tl == sizeof(text) - 1 && strncasecmp(s, text, tl) == 0) {
            if (q > best_text)
                best_text = q;
        }
        p = comma ? comma + 1 : all_end;
    }
    return best_om > 0 && best_om >= best_text;
}

const char *prom_content_type(int openmetrics)
{
    return openmetrics ? PROM_CONTENT_TYPE_OPENMETRICS : PROM_CONTENT_TYPE_TEXT;
}

/* ---- self-metrics ---- */

static uint64_t double_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double bits_double(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

void prom_counter_add(prom_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t prom_counter_get(const prom_counter_t *c)
{
    return atomic_load_explicit(&((prom_counter_t *)c)->value, memory_order_relaxed);
}

void prom_gauge_set(prom_gauge_t *g, double v)
{
    atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

void prom_gauge_add(prom_gauge_t *g, double delta)
{
    uint64_t old = atomic_load_explicit(&g->bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&g->bits, &old, double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

double prom_gauge_get(const prom_gauge_t *g)
{
    return bits_double(atomic_load_explicit(&((prom_gauge_t *)g)->bits, memory_order_relaxed));
}

const double prom_latency_bounds_seconds[PROM_LATENCY_BOUNDS_N] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10,
};

void prom_histogram_init(prom_histogram_t *h, const double *bounds, uint32_t n_bounds)
{
    memset(h, 0, sizeof(*h));
    if (n_bounds > PROM_HISTOGRAM_MAX_BOUNDS)
        n_bounds = PROM_HISTOGRAM_MAX_BOUNDS;
    h->n_bounds = n_bounds;
    if (n_bounds > 0)
        memcpy(h->bounds, bounds, n_bounds * sizeof(double));
    for (uint32_t i = 0; i <= PROM_HISTOGRAM_MAX_BOUNDS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->sum_bits, double_bits(0.0));
}

void prom_histogram_observe(prom_histogram_t *h, double v)
{
    uint32_t i = 0;
    while (i < h->n_bounds && !(v <= h->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, double_bits(bits_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void prom_write_counter(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                        const prom_counter_t *c, int openmetrics)
{
    prom_write_sample(b, name, "_total", labels, n_labels, NULL, NULL, (double)prom_counter_get(c), NULL, openmetrics);
}

void prom_write_gauge(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                      const prom_gauge_t *g, int openmetrics)
{
    prom_write_sample(b, name, "", labels, n_labels, NULL, NULL, prom_gauge_get(g), NULL, openmetrics);
}

void prom_write_histogram_cell(buf_t *b, const char *name, const metric_label_t *labels, uint32_t n_labels,
                               const prom_histogram_t *h, int openmetrics)
{
    uint64_t counts[PROM_HISTOGRAM_MAX_BOUNDS + 1];
    prom_histogram_t *hm = (prom_histogram_t *)h;
    for (uint32_t i = 0; i <= h->n_bounds; i++)
        counts[i] = atomic_load_explicit(&hm->buckets[i], memory_order_relaxed);
    double sum = bits_double(atomic_load_explicit(&hm->sum_bits, memory_order_relaxed));
    prom_write_histogram(b, name, labels, n_labels, h->n_bounds, h->bounds, counts, sum, 1, NULL, openmetrics);
}

/* ---- histogram family with run-time label sets ---- */

#define VEC_MAX_LABELS 8

typedef struct vec_cell {
    metric_label_t labels[VEC_MAX_LABELS]; /* names borrowed from the vec, values owned */
    prom_histogram_t h;
} vec_cell_t;

struct prom_histogram_vec {
    pthread_mutex_t mu;
    char *name;
    char *help;
    char *label_names[VEC_MAX_LABELS];
    uint32_t n_label_names;
    double bounds[PROM_HISTOGRAM_MAX_BOUNDS];
    uint32_t n_bounds;
    uint32_t n_cells, max_cells;
    vec_cell_t **cells;
    _Atomic uint64_t overflow;
};

prom_histogram_vec_t *prom_histogram_vec_create(const char *name, const char *help, const char *const *label_names,
                                                uint32_t n_label_names, const double *bounds, uint32_t n_bounds,
                                                uint32_t max_cells)
{
    if (name == NULL || !prom_name_valid(name, strlen(name), 0) || n_label_names > VEC_MAX_LABELS ||
        n_bounds > PROM_HISTOGRAM_MAX_BOUNDS || max_cells == 0)
        return NULL;
    for (uint32_t i = 0; i < n_label_names; i++)
        if (label_names[i] == NULL || !prom_name_valid(label_names[i], strlen(label_names[i]), 1))
            return NULL;
    prom_histogram_vec_t *v = calloc(1, sizeof(*v));
    vec_cell_t **cells = calloc(max_cells, sizeof(*cells));
    if (v == NULL || cells == NULL)
        log_fatal("out of memory creating histogram %s", name);
    pthread_mutex_init(&v->mu, NULL);
    v->name = xstrdup(name);
    v->help = xstrdup(help ? help : "");
    for (uint32_t i = 0; i < n_label_names; i++)
        v->label_names[i] = xstrdup(label_names[i]);
    v->n_label_names = n_label_names;
    if (n_bounds > 0)
        memcpy(v->bounds, bounds, n_bounds * sizeof(double));
    v->n_bounds = n_bounds;
    v->max_cells = max_cells;
    v->cells = cells;
    atomic_init(&v->overflow, 0);
    return v;
}

void prom_histogram_vec_destroy(prom_histogram_vec_t *v)
{
    if (v == NULL)
        return;
    for (uint32_t i = 0; i < v->n_cells; i++) {
        for (uint32_t j = 0; j < v->n_label_names; j++)
            free((char *)v->cells[i]->labels[j].value.ptr);
        free(v->cells[i]);
    }
    for (uint32_t j = 0; j < v->n_label_names; j++)
        free(v->label_names[j]);
    free(v->cells);
    free(v->name);
    free(v->help);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

static vec_cell_t *vec_find(prom_histogram_vec_t *v, const char *const *values)
{
    for (uint32_t i = 0; i < v->n_cells; i++) {
        vec_cell_t *c = v->cells[i];
        uint32_t j = 0;
        for (; j < v->n_label_names; j++) {
            const char *s = values[j] ? values[j] : "";
            if (strlen(s) != c->labels[j].value.len || memcmp(s, c->labels[j].value.ptr, c->labels[j].value.len))
                break;
        }
        if (j == v->n_label_names)
            return c;
    }
    return NULL;
}

void prom_histogram_vec_observe(prom_histogram_vec_t *v, const char *const *label_values, double value)
{
    pthread_mutex_lock(&v->mu);
    vec_cell_t *c = vec_find(v, label_values);
    if (c == NULL) {
        if (v->n_cells == v->max_cells) {
            pthread_mutex_unlock(&v->mu);
            atomic_fetch_add_explicit(&v->overflow, 1, memory_order_relaxed);
            return;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            log_fatal("out of memory adding a histogram cell");
        for (uint32_t j = 0; j < v->n_label_names; j++) {
            const char *s = label_values[j] ? label_values[j] : "";
            c->labels[j].name.ptr = v->label_names[j];
            c->labels[j].name.len = (uint32_t)strlen(v->label_names[j]);
            c->labels[j].value.ptr = xstrdup(s);
            c->labels[j].value.len = (uint32_t)strlen(s);
        }
        prom_histogram_init(&c->h, v->bounds, v->n_bounds);
        v->cells[v->n_cells++] = c;
    }
    pthread_mutex_unlock(&v->mu);
    prom_histogram_observe(&c->h, value);
}

uint64_t prom_histogram_vec_overflow(const prom_histogram_vec_t *v)
{
    return atomic_load_explicit(&((prom_histogram_vec_t *)v)->overflow, memory_order_relaxed);
}

void prom_histogram_vec_render(prom_histogram_vec_t *v, buf_t *b, int openmetrics)
{
    pthread_mutex_lock(&v->mu);
    uint32_t n = v->n_cells;
    pthread_mutex_unlock(&v->mu);
    /* cells are only appended and never freed before destroy, so the first n are stable */
    prom_write_family_header(b, v->name, PROM_HISTOGRAM, v->help, strlen(v->help), NULL, openmetrics);
    for (uint32_t i = 0; i < n; i++)
        prom_write_histogram_cell(b, v->name, v->cells[i]->labels, v->n_label_names, &v->cells[i]->h, openmetrics);
}
