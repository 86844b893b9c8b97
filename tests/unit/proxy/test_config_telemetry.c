/*
 * Unit tests for Istio's Telemetry kind (proxy/config_telemetry.c) and the
 * policy the telemetry hub applies (proxy/telemetry_policy.c): which
 * documents apply to the proxy and how they layer (root namespace, own
 * namespace, own workload), the messages for bad documents and for two at
 * one level, the limits, and the label sets a policy makes of one series.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "proxy/telemetry_policy.h"

#define MAX_MSGS 32

typedef struct msgs {
    int n_err, n_warn;
    char err[MAX_MSGS][512];
    char warn[MAX_MSGS][512];
} msgs_t;

static void on_msg(char (*list)[512], int *n, const char *m)
{
    if (*n < MAX_MSGS)
        snprintf(list[*n], sizeof(list[0]), "%s", m);
    (*n)++;
}

static void on_error(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    on_msg(c->err, &c->n_err, m);
}

static void on_warning(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    on_msg(c->warn, &c->n_warn, m);
}

static const char PROXY[] = "apiVersion: outrider.io/v1alpha1\n"
                            "kind: Proxy\n"
                            "metadata: {name: pp, namespace: shop, labels: {app: productpage, version: v2}}\n"
                            "spec: {rootNamespace: mesh-root}\n";

/* Load PROXY followed by docs. */
static proxy_config_t *load(const char *docs, msgs_t *m)
{
    memset(m, 0, sizeof(*m));
    char text[8192];
    snprintf(text, sizeof(text), "%s%s", PROXY, docs);
    return proxy_config_load_string("t.yaml", text, strlen(text), on_error, on_warning, m);
}

static void dump(const msgs_t *m)
{
    for (int i = 0; i < m->n_err && i < MAX_MSGS; i++)
        fprintf(stderr, "  error: %s\n", m->err[i]);
    for (int i = 0; i < m->n_warn && i < MAX_MSGS; i++)
        fprintf(stderr, "  warning: %s\n", m->warn[i]);
}

static void expect_in(const msgs_t *m, const char (*list)[512], int n, const char *want)
{
    for (int i = 0; i < n && i < MAX_MSGS; i++)
        if (strstr(list[i], want) != NULL)
            return;
    fprintf(stderr, "missing message: %s\n", want);
    dump(m);
    fail();
}

static const proxy_tm_tag_t *cell_tag(const proxy_tm_cell_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_tags; i++)
        if (strcmp(c->tags[i]->name, name) == 0)
            return c->tags[i];
    return NULL;
}

static const char LAYERS[] = "---\n"
                             "apiVersion: telemetry.istio.io/v1\n"
                             "kind: Telemetry\n"
                             "metadata: {name: mesh, namespace: mesh-root}\n"
                             "spec:\n"
                             "  metrics:\n"
                             "  - overrides:\n"
                             "    - tagOverrides:\n"
                             "        source_principal: {operation: REMOVE}\n"
                             "        team: {value: \"'core'\"}\n"
                             "    - match: {metric: REQUEST_SIZE}\n"
                             "      disabled: true\n"
                             "  tracing:\n"
                             "  - randomSamplingPercentage: 5\n"
                             "    customTags: {a: {literal: {value: x}}, b: {literal: {value: y}}}\n"
                             "  accessLogging:\n"
                             "  - disabled: true\n"
                             "---\n"
                             "apiVersion: telemetry.istio.io/v1\n"
                             "kind: Telemetry\n"
                             "metadata: {name: shop}\n" /* no namespace: the Proxy's */
                             "spec:\n"
                             "  metrics:\n"
                             "  - overrides:\n"
                             "    - match: {metric: REQUEST_COUNT, mode: SERVER}\n"
                             "      tagOverrides:\n"
                             "        team: {value: \"'shop'\"}\n"
                             "        source_principal: {value: \"request.headers['x-p']\"}\n"
                             "    - match: {metric: REQUEST_SIZE, mode: CLIENT}\n"
                             "      disabled: false\n"
                             "  tracing:\n"
                             "  - match: {mode: CLIENT}\n"
                             "    customTags: {c: {header: {name: X-C, defaultValue: none}}}\n"
                             "---\n"
                             "apiVersion: telemetry.istio.io/v1\n"
                             "kind: Telemetry\n"
                             "metadata: {name: pp, namespace: shop}\n"
                             "spec:\n"
                             "  selector: {matchLabels: {app: productpage}}\n"
                             "  tracing:\n"
                             "  - match: {mode: SERVER}\n"
                             "    randomSamplingPercentage: 50\n"
                             "  accessLogging:\n"
                             "  - match: {mode: CLIENT}\n"
                             "    disabled: false\n"
                             "    filter: {expression: \"response.code >= 500\"}\n"
                             "---\n"
                             "apiVersion: telemetry.istio.io/v1\n"
                             "kind: Telemetry\n"
                             "metadata: {name: other-workload, namespace: shop}\n"
                             "spec:\n"
                             "  selector: {matchLabels: {app: reviews}}\n"
                             "  tracing: [{randomSamplingPercentage: 99}]\n"
                             "---\n"
                             "apiVersion: telemetry.istio.io/v1\n"
                             "kind: Telemetry\n"
                             "metadata: {name: other-namespace, namespace: books}\n"
                             "spec:\n"
                             "  tracing: [{randomSamplingPercentage: 98}]\n";

static void test_layers(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load(LAYERS, &m);
    if (cfg == NULL || m.n_warn > 0) {
        dump(&m);
        fail();
    }
    const proxy_tm_effective_t *e = &cfg->telemetry;
    assert_string_equal(e->levels[0]->meta.name, "mesh");
    assert_string_equal(e->levels[1]->meta.name, "shop");
    assert_string_equal(e->levels[2]->meta.name, "pp");

    /* metrics: the root's REMOVE everywhere, replaced by the namespace's UPSERT on server REQUEST_COUNT */
    const proxy_tm_cell_t *srv_count = &e->cells[1][PROXY_TM_REQUEST_COUNT];
    const proxy_tm_cell_t *cli_count = &e->cells[0][PROXY_TM_REQUEST_COUNT];
    assert_int_equal(cell_tag(cli_count, "source_principal")->remove, 1);
    assert_int_equal(cell_tag(srv_count, "source_principal")->remove, 0);
    assert_string_equal(cell_tag(srv_count, "source_principal")->value, "request.headers['x-p']");
    assert_string_equal(cell_tag(srv_count, "team")->value, "'shop'");
    assert_string_equal(cell_tag(cli_count, "team")->value, "'core'");
    assert_string_equal(cell_tag(&e->cells[1][PROXY_TM_TCP_SENT_BYTES], "team")->value, "'core'");
    assert_int_equal(srv_count->n_tags, 2);
    /* disabled by the root, enabled again for CLIENT by the namespace */
    assert_int_equal(e->cells[1][PROXY_TM_REQUEST_SIZE].disabled, 1);
    assert_int_equal(e->cells[0][PROXY_TM_REQUEST_SIZE].disabled, 0);

    /* tracing: sampling from the most specific level that sets it, customTags replaced not merged */
    assert_true(e->sampling[0] == 5);
    assert_true(e->sampling[1] == 50);
    assert_int_equal(e->n_custom_tags[0], 1);
    assert_string_equal(e->custom_tags[0][0].name, "c");
    assert_string_equal(e->custom_tags[0][0].value, "x-c"); /* header names lowercased */
    assert_int_equal(e->n_custom_tags[1], 2);

    /* logging: off from the root; the workload turns the client side back on with a filter */
    assert_int_equal(e->log_disabled[0], 0);
    assert_string_equal(e->log_filter[0], "response.code >= 500");
    assert_int_equal(e->log_disabled[1], 1);
    assert_null(e->log_filter[1]);
    proxy_config_destroy(cfg);
}

static void test_policy_labels(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load(LAYERS, &m);
    assert_non_null(cfg);
    tele_policy_t *p = NULL;
    char err[256] = "";
    assert_int_equal(tele_policy_create(&cfg->telemetry, &p, err, sizeof(err)), 0);
    assert_non_null(p);
    assert_true(tele_policy_sampling(p, 1, 1.0) == 50);

    str_t v[TELE_NLABELS];
    for (int k = 0; k < TELE_NLABELS; k++)
        v[k] = (str_t){"std", 3};
    v[TL_RESPONSE_CODE] = (str_t){"200", 3};

    /* server side: REQUEST_COUNT has its own rules, DURATION and RESPONSE_SIZE share theirs, REQUEST_SIZE is off */
    ax_ctx_t ax;
    memset(&ax, 0, sizeof(ax));
    http1_header_t hdr = {{"X-P", 3}, {"spiffe://a", 10}};
    ax.headers = &hdr;
    ax.n_headers = 1;
    str_t tuple[TELE_POLICY_MAX_EXPRS];
    char scratch[TELE_POLICY_MAX_EXPRS][AX_SCRATCH];
    size_t nt = tele_policy_tuple(p, 1, &ax, tuple, scratch);
    assert_int_equal(nt, 3); /* 'core', 'shop', the header */
    tele_label_list_t out[4];
    size_t n = tele_policy_labels(p, 1, TELE_SERIES_HTTP, v, tuple, out);
    assert_int_equal(n, 2);
    const tele_label_list_t *count = (out[0].metrics & (1u << TELE_M_REQUESTS)) ? &out[0] : &out[1];
    const tele_label_list_t *rest = count == &out[0] ? &out[1] : &out[0];
    assert_int_equal(count->metrics, 1u << TELE_M_REQUESTS);
    assert_int_equal(rest->metrics, (1u << TELE_M_DURATION) | (1u << TELE_M_RESP_BYTES));
    int saw_principal = 0, saw_team = 0;
    for (int i = 0; i < count->n; i++) {
        if (strcmp(count->name[i], "source_principal") == 0) {
            saw_principal = 1;
            assert_int_equal(count->v[i].len, 10);
            assert_memory_equal(count->v[i].ptr, "spiffe://a", 10);
        }
        if (strcmp(count->name[i], "team") == 0) {
            saw_team = 1;
            assert_memory_equal(count->v[i].ptr, "shop", 4);
        }
    }
    assert_true(saw_principal && saw_team);
    for (int i = 0; i < rest->n; i++)
        assert_string_not_equal(rest->name[i], "source_principal");
    assert_int_equal(rest->n, count->n - 1); /* one label fewer: source_principal removed */

    /* a header the request lacks: the tuple holds "unknown", as Istio writes it */
    ax.n_headers = 0;
    tele_policy_tuple(p, 1, &ax, tuple, scratch);
    n = tele_policy_labels(p, 1, TELE_SERIES_HTTP, v, tuple, out);
    count = (out[0].metrics & (1u << TELE_M_REQUESTS)) ? &out[0] : &out[1];
    for (int i = 0; i < count->n; i++)
        if (strcmp(count->name[i], "source_principal") == 0)
            assert_memory_equal(count->v[i].ptr, "unknown", 7);

    /* the client side: every HTTP metric shares one rule set (REQUEST_SIZE enabled again) */
    n = tele_policy_labels(p, 0, TELE_SERIES_HTTP, v, tuple, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].metrics, TELE_HTTP_METRICS);

    /* no policy: the standard set for every metric */
    n = tele_policy_labels(NULL, 0, TELE_SERIES_TCP, v, tuple, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].metrics, TELE_TCP_METRICS);
    assert_int_equal(out[0].n, TELE_NLABELS - 2); /* no response_code, grpc_response_status */
    tele_policy_unref(p);
    proxy_config_destroy(cfg);
}

static void test_defaults_make_no_policy(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load("---\n"
                               "apiVersion: telemetry.istio.io/v1\n"
                               "kind: Telemetry\n"
                               "metadata: {name: empty, namespace: mesh-root}\n"
                               "spec: {metrics: [{providers: [{name: prometheus}]}]}\n",
                               &m);
    assert_non_null(cfg);
    tele_policy_t *p = (tele_policy_t *)1;
    char err[64];
    assert_int_equal(tele_policy_create(&cfg->telemetry, &p, err, sizeof(err)), 0);
    assert_null(p);
    assert_true(tele_policy_sampling(NULL, 0, 7) == 7);
    proxy_config_destroy(cfg);
}

static void test_two_at_one_level(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load("---\n"
                               "apiVersion: telemetry.istio.io/v1\n"
                               "kind: Telemetry\n"
                               "metadata: {name: first, namespace: shop}\n"
                               "spec: {tracing: [{randomSamplingPercentage: 10}]}\n"
                               "---\n"
                               "apiVersion: telemetry.istio.io/v1\n"
                               "kind: Telemetry\n"
                               "metadata: {name: second, namespace: shop}\n"
                               "spec: {tracing: [{randomSamplingPercentage: 20}]}\n"
                               "---\n"
                               "apiVersion: telemetry.istio.io/v1\n"
                               "kind: Telemetry\n"
                               "metadata: {name: w1, namespace: shop}\n"
                               "spec: {selector: {matchLabels: {app: productpage}}}\n"
                               "---\n"
                               "apiVersion: telemetry.istio.io/v1\n"
                               "kind: Telemetry\n"
                               "metadata: {name: w2, namespace: shop}\n"
                               "spec: {selector: {matchLabels: {version: v2}}}\n",
                               &m);
    assert_non_null(cfg);
    assert_int_equal(m.n_warn, 2);
    expect_in(&m, m.warn, m.n_warn,
              "t.yaml:11:1: Telemetry second: not used: Telemetry first (line 6) is already the one without a "
              "selector in namespace shop; Istio allows one");
    expect_in(&m, m.warn, m.n_warn, "t.yaml:21:1: Telemetry w2: not used: Telemetry w1 (line 16) already selects");
    assert_true(cfg->telemetry.sampling[0] == 10);
    assert_string_equal(cfg->telemetry.levels[2]->meta.name, "w1");
    proxy_config_destroy(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load("---\n"
                               "apiVersion: telemetry.istio.io/v2\n"
                               "kind: Telemetry\n"
                               "metadata: {name: bad}\n"
                               "spec:\n"
                               "  metrics:\n"
                               "  - overrides:\n"
                               "    - match: {customMetric: my_metric, mode: BOTH}\n"
                               "      disabled: maybe\n"
                               "      tagOverrides:\n"
                               "        ok: {operation: UPSERT}\n"
                               "        __x: {operation: REMOVE}\n"
                               "  tracing:\n"
                               "  - randomSamplingPercentage: 101\n"
                               "    customTags:\n"
                               "      t1: {literal: {value: a}, header: {name: b}}\n"
                               "      t2: {environment: {defaultValue: z}}\n"
                               "  accessLogging:\n"
                               "  - filter: {expression: \"response.code >= \"}\n"
                               "  logging: []\n",
                               &m);
    assert_null(cfg);
    expect_in(&m, m.err, m.n_err,
              "t.yaml:6:13: Telemetry bad: apiVersion: unknown apiVersion \"telemetry.istio.io/v2\"");
    expect_in(&m, m.err, m.n_err, "spec.metrics[0].overrides[0].match.customMetric: custom metrics are not supported");
    expect_in(&m, m.err, m.n_err, "spec.metrics[0].overrides[0].match.mode: unknown value \"BOTH\"");
    expect_in(&m, m.err, m.n_err, "t.yaml:13:17: Telemetry bad: spec.metrics[0].overrides[0].disabled:");
    expect_in(&m, m.err, m.n_err, "tagOverrides.ok: operation UPSERT needs a value");
    expect_in(&m, m.err, m.n_err, "\"__x\" is not a valid label name");
    expect_in(&m, m.err, m.n_err, "spec.tracing[0].randomSamplingPercentage: 101 is out of range");
    expect_in(&m, m.err, m.n_err, "customTags.t1: a custom tag needs exactly one of literal, header and environment");
    expect_in(&m, m.err, m.n_err, "customTags.t2.environment.name: missing required field");
    expect_in(&m, m.err, m.n_err, "spec.accessLogging[0].filter.expression: ");
    expect_in(&m, m.err, m.n_err, "spec.logging: unknown field");
}

static void test_limits(void **state)
{
    (void)state;
    char docs[4096];
    size_t n = (size_t)snprintf(docs, sizeof(docs),
                                "---\n"
                                "apiVersion: telemetry.istio.io/v1\n"
                                "kind: Telemetry\n"
                                "metadata: {name: many}\n"
                                "spec:\n"
                                "  metrics:\n"
                                "  - overrides:\n"
                                "    - tagOverrides:\n");
    for (int i = 0; i < 9; i++)
        n += (size_t)snprintf(docs + n, sizeof(docs) - n, "        t%d: {value: \"request.headers['h%d']\"}\n", i, i);
    msgs_t m;
    proxy_config_t *cfg = load(docs, &m);
    assert_null(cfg);
    expect_in(&m, m.err, m.n_err, "Telemetry many: t8 in mode CLIENT: more than 8 labels added to one metric");
    expect_in(&m, m.err, m.n_err, "Telemetry many: t8 in mode CLIENT: more than 8 different tag value expressions");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_policy_labels),
        cmocka_unit_test(test_defaults_make_no_policy),
        cmocka_unit_test(test_two_at_one_level),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
