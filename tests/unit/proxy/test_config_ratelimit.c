/*
 * Unit tests for `kind: RateLimit` in proxy/config: a valid set of
 * documents loads into the expected model (every field, and the defaults);
 * each class of error gives its exact message at the right line:col,
 * cross-references included; the JSON dump.
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
#include "proxy/config_json.h"

#define MAX_MSGS 32

typedef struct msgs {
    int n_err, n_warn;
    char err[MAX_MSGS][512];
} msgs_t;

static void on_error(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    if (c->n_err < MAX_MSGS)
        snprintf(c->err[c->n_err], sizeof(c->err[0]), "%s", m);
    c->n_err++;
}

static void on_warning(void *ctx, const char *m)
{
    msgs_t *c = ctx;
    (void)m;
    c->n_warn++;
}

static void dump(const msgs_t *m)
{
    for (int i = 0; i < m->n_err && i < MAX_MSGS; i++)
        fprintf(stderr, "  error: %s\n", m->err[i]);
}

/* 31 lines; a case's own documents start at line 32 */
static const char *const base = "apiVersion: outrider.io/v1alpha1\n"
                                "kind: Proxy\n"
                                "metadata: {name: pp}\n"
                                "spec: {}\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: ServiceEntry\n"
                                "metadata: {name: reviews}\n"
                                "spec:\n"
                                "  hosts: [reviews]\n"
                                "  ports: [{number: 9080, name: http}]\n"
                                "  resolution: STATIC\n"
                                "  endpoints: [{address: 127.0.0.1, ports: {http: 19081}}]\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: ServiceEntry\n"
                                "metadata: {name: ratings}\n"
                                "spec: {hosts: [ratings], ports: [{number: 9080, name: http}], resolution: STATIC, "
                                "endpoints: [{address: 127.0.0.1}]}\n"
                                "---\n"
                                "apiVersion: networking.istio.io/v1\n"
                                "kind: VirtualService\n"
                                "metadata: {name: reviews}\n"
                                "spec:\n"
                                "  hosts: [reviews]\n"
                                "  http:\n"
                                "  - name: jason\n"
                                "    match: [{headers: {end-user: {exact: jason}}}]\n"
                                "    route: [{destination: {host: reviews}}]\n"
                                "  - name: canary\n"
                                "    route: [{destination: {host: reviews}}]\n"
                                "---\n";

/* lines 32-36 */
#define RL_HEAD "apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl}\nspec:\n  hosts: [reviews]\n"
/* lines 37-39; the limits start at line 40 */
#define GLOBAL_HEAD "  global:\n    redis: 127.0.0.1:6379\n    limits:\n"
#define LOCAL " local: {maxTokens: 1, fillInterval: 1s}\n"

static proxy_config_t *load(const char *extra, msgs_t *m)
{
    size_t len = strlen(base) + strlen(extra) + 1;
    char *text = malloc(len);
    assert_non_null(text);
    snprintf(text, len, "%s%s", base, extra);
    memset(m, 0, sizeof(*m));
    proxy_config_t *cfg = proxy_config_load_string("t.yaml", text, strlen(text), on_error, on_warning, m);
    free(text);
    return cfg;
}

/* Load base + extra; expect exactly n_errors errors, among them want (if not NULL). */
static void check_case(const char *extra, int n_errors, const char *want)
{
    msgs_t m;
    proxy_config_t *cfg = load(extra, &m);
    if (n_errors > 0)
        assert_null(cfg);
    else
        assert_non_null(cfg);
    proxy_config_destroy(cfg);
    int found = want == NULL;
    for (int i = 0; i < m.n_err && i < MAX_MSGS && !found; i++)
        found = strcmp(m.err[i], want) == 0;
    if (!found || m.n_err != n_errors) {
        fprintf(stderr, "expected %d errors including: %s\n", n_errors, want ? want : "-");
        dump(&m);
        fail();
    }
}

static const char *const valid = "apiVersion: outrider.io/v1alpha1\n" /* 32 */
                                 "kind: RateLimit\n"
                                 "metadata: {name: reviews-limits, namespace: default}\n"
                                 "spec:\n"
                                 "  hosts: [reviews, ratings]\n" /* 36 */
                                 "  routes: [canary]\n"
                                 "  local:\n"
                                 "    maxTokens: 100\n"
                                 "    tokensPerFill: 10\n"
                                 "    fillInterval: 1s\n"
                                 "    shadow: true\n"
                                 "  global:\n" /* 43 */
                                 "    redis: 127.0.0.1:6379\n"
                                 "    timeout: 250ms\n"
                                 "    failureMode: deny\n"
                                 "    algorithm: slidingWindow\n"
                                 "    shadow: true\n"
                                 "    limits:\n"
                                 "    - name: per-user\n" /* 50 */
                                 "      key:\n"
                                 "      - requestHeader: X-User\n"
                                 "      - remoteAddress: true\n"
                                 "      - path: true\n"
                                 "      - destinationService: true\n"
                                 "      requestsPerUnit: 100\n"
                                 "      unit: minute\n"
                                 "    - name: total\n"
                                 "      key: [{destinationService: true}]\n"
                                 "      requestsPerUnit: 5000\n"
                                 "      unit: day\n"
                                 "---\n"
                                 "apiVersion: outrider.io/v1alpha1\n" /* 63 */
                                 "kind: RateLimit\n"
                                 "metadata: {name: ratings-limits}\n"
                                 "spec:\n"
                                 "  hosts: [ratings]\n"
                                 "  global:\n"
                                 "    redis: \"[::1]:6380\"\n"
                                 "    limits: [{name: all, key: [{path: true}], requestsPerUnit: 1, unit: second}]\n"
                                 "---\n"
                                 "apiVersion: outrider.io/v1alpha1\n" /* 72 */
                                 "kind: RateLimit\n"
                                 "metadata: {name: jason}\n"
                                 "spec: {hosts: [reviews.default.svc.cluster.local], routes: [jason],\n"
                                 "       local: {maxTokens: 5, fillInterval: 250ms}}\n";

static void test_valid(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load(valid, &m);
    if (cfg == NULL)
        dump(&m);
    assert_non_null(cfg);
    assert_int_equal(m.n_warn, 0);
    assert_int_equal(cfg->n_rate_limits, 3);

    const proxy_rate_limit_t *rl = &cfg->rate_limits[0];
    assert_string_equal(rl->meta.name, "reviews-limits");
    assert_string_equal(rl->meta.namespace, "default");
    assert_int_equal(rl->meta.pos.line, 32);
    assert_int_equal(rl->n_hosts, 2);
    assert_string_equal(rl->hosts[0].host, "reviews");
    assert_string_equal(rl->hosts[0].fqdn, "reviews.default.svc.cluster.local");
    assert_int_equal(rl->hosts[0].pos.line, 36);
    assert_int_equal(rl->hosts[0].pos.col, 11);
    assert_string_equal(rl->hosts[1].host, "ratings");
    assert_ptr_equal(rl->services[0], &cfg->services[0]);
    assert_ptr_equal(rl->services[1], &cfg->services[1]);
    assert_int_equal(rl->n_routes, 1);
    assert_string_equal(rl->routes[0].name, "canary");
    assert_int_equal(rl->routes[0].pos.line, 37);
    assert_int_equal(rl->routes[0].pos.col, 12);

    assert_true(rl->local.given);
    assert_int_equal(rl->local.max_tokens, 100);
    assert_int_equal(rl->local.tokens_per_fill, 10);
    assert_int_equal(rl->local.fill_interval_ms, 1000);
    assert_true(rl->local.shadow);
    assert_int_equal(rl->local.pos.line, 39);

    const proxy_rl_global_t *g = &rl->global;
    assert_true(g->given);
    assert_string_equal(g->redis.text, "127.0.0.1:6379");
    assert_string_equal(g->redis.host, "127.0.0.1");
    assert_int_equal(g->redis.port, 6379);
    assert_int_equal(g->timeout_ms, 250);
    assert_int_equal(g->failure_mode, PROXY_RL_FAILURE_DENY);
    assert_int_equal(g->algorithm, PROXY_RL_SLIDING_WINDOW);
    assert_true(g->shadow);
    assert_int_equal(g->n_limits, 2);
    const proxy_rl_limit_t *l = &g->limits[0];
    assert_string_equal(l->name, "per-user");
    assert_int_equal(l->pos.line, 50);
    assert_int_equal(l->pos.col, 7);
    assert_int_equal(l->n_keys, 4);
    assert_int_equal(l->keys[0].kind, PROXY_RL_KEY_REQUEST_HEADER);
    assert_string_equal(l->keys[0].header, "x-user");
    assert_int_equal(l->keys[0].pos.line, 52);
    assert_int_equal(l->keys[1].kind, PROXY_RL_KEY_REMOTE_ADDRESS);
    assert_null(l->keys[1].header);
    assert_int_equal(l->keys[2].kind, PROXY_RL_KEY_PATH);
    assert_int_equal(l->keys[3].kind, PROXY_RL_KEY_DESTINATION_SERVICE);
    assert_int_equal(l->requests_per_unit, 100);
    assert_int_equal(l->unit, PROXY_RL_MINUTE);
    assert_int_equal(l->unit_ms, 60000);
    l = &g->limits[1];
    assert_string_equal(l->name, "total");
    assert_int_equal(l->n_keys, 1);
    assert_int_equal(l->keys[0].kind, PROXY_RL_KEY_DESTINATION_SERVICE);
    assert_int_equal(l->requests_per_unit, 5000);
    assert_int_equal(l->unit, PROXY_RL_DAY);
    assert_int_equal(l->unit_ms, 86400000);

    /* defaults; a whole-host document beside one naming routes of the same host */
    rl = &cfg->rate_limits[1];
    assert_string_equal(rl->meta.name, "ratings-limits");
    assert_int_equal(rl->n_routes, 0);
    assert_false(rl->local.given);
    g = &rl->global;
    assert_true(g->given);
    assert_string_equal(g->redis.host, "::1");
    assert_int_equal(g->redis.port, 6380);
    assert_int_equal(g->timeout_ms, 50);
    assert_int_equal(g->failure_mode, PROXY_RL_FAILURE_ALLOW);
    assert_int_equal(g->algorithm, PROXY_RL_FIXED_WINDOW);
    assert_false(g->shadow);
    assert_int_equal(g->n_limits, 1);
    assert_int_equal(g->limits[0].unit, PROXY_RL_SECOND);
    assert_int_equal(g->limits[0].unit_ms, 1000);
    assert_int_equal(g->limits[0].requests_per_unit, 1);
    assert_ptr_equal(rl->services[0], &cfg->services[1]);

    rl = &cfg->rate_limits[2];
    assert_string_equal(rl->routes[0].name, "jason");
    assert_ptr_equal(rl->services[0], &cfg->services[0]);
    assert_true(rl->local.given);
    assert_int_equal(rl->local.max_tokens, 5);
    assert_int_equal(rl->local.tokens_per_fill, 1);
    assert_int_equal(rl->local.fill_interval_ms, 250);
    assert_false(rl->local.shadow);
    assert_false(rl->global.given);
    proxy_config_destroy(cfg);
}

static void test_fields(void **state)
{
    (void)state;
    check_case(RL_HEAD "  local: {maxTokens: 1, fillInterval: 1s, burst: 2}\n", 1,
               "t.yaml:37:43: RateLimit rl: spec.local.burst: unknown field");
    check_case(RL_HEAD " " LOCAL "  route: [canary]\n", 1, "t.yaml:38:3: RateLimit rl: spec.route: unknown field");
    check_case(RL_HEAD GLOBAL_HEAD "    - name: a\n      key: [{path: true}]\n      requestsPerUnit: 10\n"
                                   "      unit: week\n",
               1,
               "t.yaml:43:13: RateLimit rl: spec.global.limits[0].unit: unknown value \"week\" (expected one of "
               "second, minute, hour, day)");
    check_case(RL_HEAD "  local: {fillInterval: 1s}\n", 1,
               "t.yaml:37:11: RateLimit rl: spec.local.maxTokens: missing required field");
    check_case(RL_HEAD "  local: {maxTokens: 5, tokensPerFill: 6, fillInterval: 1s}\n", 1,
               "t.yaml:37:40: RateLimit rl: spec.local.tokensPerFill: 6 is more than maxTokens (5)");
    check_case(RL_HEAD "  local: {maxTokens: 0, fillInterval: 1s}\n", 1,
               "t.yaml:37:22: RateLimit rl: spec.local.maxTokens: 0 is out of range (1-1000000000)");
    check_case(RL_HEAD "  local: {maxTokens: \"100\", fillInterval: 1s}\n", 1,
               "t.yaml:37:23: RateLimit rl: spec.local.maxTokens: expected an integer, got the string \"100\"");
    check_case(RL_HEAD "  local: {maxTokens: 1, fillInterval: 0s}\n", 1,
               "t.yaml:37:39: RateLimit rl: spec.local.fillInterval: must be at least 1ms");
    check_case(RL_HEAD "  local: {maxTokens: 1, fillInterval: 1s, shadow: yes}\n", 1,
               "t.yaml:37:51: RateLimit rl: spec.local.shadow: expected true or false, got \"yes\"");
    check_case(RL_HEAD "  global:\n    redis: redis\n"
                       "    limits: [{name: a, key: [{path: true}], requestsPerUnit: 1, unit: second}]\n",
               1,
               "t.yaml:38:12: RateLimit rl: spec.global.redis: expected HOST:PORT with a port 1-65535 (IPv6 in "
               "brackets), got \"redis\"");
    check_case(RL_HEAD "  global:\n    redis: 127.0.0.1:0\n    timeout: 0ms\n    failureMode: open\n"
                       "    limits: [{name: a, key: [{path: true}], requestsPerUnit: 1, unit: second}]\n",
               3,
               "t.yaml:40:18: RateLimit rl: spec.global.failureMode: unknown value \"open\" (expected one of allow, "
               "deny)");
    check_case(RL_HEAD "  global: {redis: 127.0.0.1:6379, limits: []}\n", 1,
               "t.yaml:37:35: RateLimit rl: spec.global.limits: at least one limit is required");
    /* empty collections are reported at their key */
    check_case(RL_HEAD "  local: {}\n", 2,
               "t.yaml:37:3: RateLimit rl: spec.local.fillInterval: missing required field");
    check_case(RL_HEAD GLOBAL_HEAD "    - {}\n", 4,
               "t.yaml:39:5: RateLimit rl: spec.global.limits[0].requestsPerUnit: missing required field");
    check_case("apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl}\nspec:\n  hosts: []\n " LOCAL,
               1, "t.yaml:36:3: RateLimit rl: spec.hosts: at least one host is required");
    check_case(RL_HEAD "  global: {limits: [{name: a, key: [{path: true}], requestsPerUnit: 1, unit: second}]}\n", 1,
               "t.yaml:37:12: RateLimit rl: spec.global.redis: missing required field");
    check_case(RL_HEAD GLOBAL_HEAD "    - {name: a, key: [{path: true}], requestsPerUnit: 1, unit: second}\n"
                                   "    - {name: a, key: [{path: true}], requestsPerUnit: 2, unit: second}\n",
               1,
               "t.yaml:41:14: RateLimit rl: spec.global.limits[1].name: duplicate limit name \"a\" (also "
               "spec.global.limits[0])");
    check_case(RL_HEAD GLOBAL_HEAD "    - name: a\n      key: [{path: true, remoteAddress: true}]\n"
                                   "      requestsPerUnit: 1\n      unit: second\n",
               1,
               "t.yaml:41:26: RateLimit rl: spec.global.limits[0].key[0].remoteAddress: requestHeader, "
               "remoteAddress, path and destinationService are mutually exclusive");
    check_case(RL_HEAD GLOBAL_HEAD "    - {name: a, key: [{}], requestsPerUnit: 1, unit: second}\n", 1,
               "t.yaml:40:17: RateLimit rl: spec.global.limits[0].key[0]: one of requestHeader, remoteAddress, path "
               "or destinationService is required");
    check_case(RL_HEAD GLOBAL_HEAD "    - {name: a, key: [{remoteAddress: false}], requestsPerUnit: 1, unit: second}\n",
               1,
               "t.yaml:40:39: RateLimit rl: spec.global.limits[0].key[0].remoteAddress: must be true (leave the "
               "entry out instead)");
    check_case(RL_HEAD GLOBAL_HEAD "    - {name: a, key: [{requestHeader: \"x user\"}], requestsPerUnit: 1, "
                                   "unit: second}\n",
               1,
               "t.yaml:40:40: RateLimit rl: spec.global.limits[0].key[0].requestHeader: \"x user\" is not a valid "
               "header name");
    check_case(RL_HEAD GLOBAL_HEAD "    - {name: a, key: [], requestsPerUnit: 1, unit: second}\n", 1,
               "t.yaml:40:17: RateLimit rl: spec.global.limits[0].key: at least one entry is required");
    check_case(RL_HEAD GLOBAL_HEAD "    - name: a\n      key: [{path: true}, {path: true}, {path: true}, {path: "
                                   "true}, {path: true}, {path: true}, {path: true}, {path: true}, {path: true}]\n"
                                   "      requestsPerUnit: 1\n      unit: second\n",
               1, "t.yaml:41:14: RateLimit rl: spec.global.limits[0].key: at most 8 entries (got 9)");
    check_case(RL_HEAD GLOBAL_HEAD "    - {name: a, key: [{path: true}], requestsPerUnit: 1000000001}\n", 2,
               "t.yaml:40:8: RateLimit rl: spec.global.limits[0].unit: missing required field");
    check_case(RL_HEAD, 1, "t.yaml:36:3: RateLimit rl: spec: at least one of local and global is required");
    check_case("apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl}\nspec:\n " LOCAL, 1,
               "t.yaml:36:3: RateLimit rl: spec.hosts: missing required field");
    check_case(RL_HEAD "  routes: []\n " LOCAL, 1,
               "t.yaml:37:3: RateLimit rl: spec.routes: at least one route name is required (leave routes out to "
               "cover every request)");
    check_case("apiVersion: networking.istio.io/v1\nkind: RateLimit\nmetadata: {name: rl}\n"
               "spec:\n  hosts: [reviews]\n " LOCAL,
               1,
               "t.yaml:32:13: RateLimit rl: apiVersion: unknown apiVersion \"networking.istio.io/v1\" for kind "
               "RateLimit (expected outrider.io/v1alpha1)");
}

static void test_references(void **state)
{
    (void)state;
    check_case("apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl}\n"
               "spec:\n  hosts: [details]\n " LOCAL,
               1, "t.yaml:36:11: RateLimit rl: spec.hosts[0]: host \"details\" is not defined by any ServiceEntry");
    check_case(RL_HEAD "  routes: [canary, nope]\n " LOCAL, 1,
               "t.yaml:37:20: RateLimit rl: spec.routes[1]: route \"nope\" is not defined by any VirtualService for "
               "host reviews");
    /* ratings has no VirtualService */
    check_case("apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl}\n"
               "spec:\n  hosts: [ratings, details]\n  routes: [canary]\n " LOCAL,
               2,
               "t.yaml:37:12: RateLimit rl: spec.routes[0]: route \"canary\" is not defined by any VirtualService "
               "for hosts ratings, details");
    /* two documents on the same (host, route) pair, the host written differently */
    check_case(RL_HEAD "  routes: [canary]\n " LOCAL "---\n"
                       "apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl2}\n"
                       "spec:\n  hosts: [reviews.default.svc.cluster.local]\n  routes: [jason, canary]\n " LOCAL,
               1,
               "t.yaml:45:19: RateLimit rl2: spec.routes[1]: host \"reviews.default.svc.cluster.local\" route "
               "\"canary\" already has a RateLimit (rl, line 32)");
    /* two documents on the whole host */
    check_case(RL_HEAD " " LOCAL "---\n"
                       "apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl2}\n"
                       "spec:\n  hosts: [ratings, reviews]\n " LOCAL,
               1,
               "t.yaml:43:20: RateLimit rl2: spec.hosts[1]: host \"reviews\" already has a RateLimit for all its "
               "routes (rl, line 32)");
    /* one host twice in a document */
    check_case("apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl}\n"
               "spec:\n  hosts: [reviews, REVIEWS.default.svc.cluster.local]\n " LOCAL,
               1,
               "t.yaml:36:20: RateLimit rl: spec.hosts[1]: host \"REVIEWS.default.svc.cluster.local\" names the "
               "same ServiceEntry as spec.hosts[0]");
    /* a whole-host document and one naming routes coexist; two route lists that do not overlap too */
    check_case(RL_HEAD " " LOCAL "---\n"
                       "apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl2}\n"
                       "spec:\n  hosts: [reviews]\n  routes: [jason]\n " LOCAL "---\n"
                       "apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl3}\n"
                       "spec:\n  hosts: [reviews]\n  routes: [canary]\n " LOCAL,
               0, NULL);
    /* duplicate document names, as for every kind */
    check_case(RL_HEAD " " LOCAL "---\n"
                       "apiVersion: outrider.io/v1alpha1\nkind: RateLimit\nmetadata: {name: rl}\n"
                       "spec:\n  hosts: [ratings]\n " LOCAL,
               1,
               "t.yaml:41:18: RateLimit rl: metadata.name: duplicate RateLimit default/rl (the first is at line 32)");
}

static void test_json(void **state)
{
    (void)state;
    msgs_t m;
    proxy_config_t *cfg = load(valid, &m);
    assert_non_null(cfg);
    buf_t b = BUF_INIT;
    proxy_config_to_json(cfg, &b);
    const char *want =
        "\"rateLimits\":[{\"apiVersion\":\"outrider.io/v1alpha1\",\"kind\":\"RateLimit\",\"metadata\":{\"name\":"
        "\"reviews-limits\",\"namespace\":\"default\"},\"spec\":{\"hosts\":[\"reviews\",\"ratings\"],\"routes\":["
        "\"canary\"],\"local\":{\"maxTokens\":100,\"tokensPerFill\":10,\"fillInterval\":\"1s\",\"shadow\":true},"
        "\"global\":{\"redis\":\"127.0.0.1:6379\",\"timeout\":\"250ms\",\"failureMode\":\"deny\",\"algorithm\":"
        "\"slidingWindow\",\"shadow\":true,\"limits\":[{\"name\":\"per-user\",\"key\":[{\"requestHeader\":"
        "\"x-user\"},{\"remoteAddress\":true},{\"path\":true},{\"destinationService\":true}],\"requestsPerUnit\":"
        "100,\"unit\":\"minute\"},{\"name\":\"total\",\"key\":[{\"destinationService\":true}],\"requestsPerUnit\":"
        "5000,\"unit\":\"day\"}]}}},";
    if (strstr(b.data, want) == NULL) {
        fprintf(stderr, "%s\n", b.data);
        fail();
    }
    assert_non_null(strstr(b.data, "\"global\":{\"redis\":\"[::1]:6380\",\"timeout\":\"50ms\",\"failureMode\":"
                                   "\"allow\",\"algorithm\":\"fixedWindow\",\"shadow\":false,"));
    assert_non_null(strstr(b.data, "\"local\":{\"maxTokens\":5,\"tokensPerFill\":1,\"fillInterval\":\"250ms\","
                                   "\"shadow\":false}}}],\"telemetries\":[]"));
    buf_dispose(&b);
    proxy_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
