/* Unit tests for common/yaml: the tree, positions, several documents, and inputs that break libfyaml. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "yaml.h"

typedef struct errs {
    int n;
    char first[256];
} errs_t;

static void collect(void *ctx, const char *msg)
{
    errs_t *e = ctx;
    if (e->n++ == 0)
        snprintf(e->first, sizeof(e->first), "%s", msg);
}

static void test_tree_and_positions(void **state)
{
    (void)state;
    const char *y = "kind: Proxy\nspec:\n  ports: [80, \"443\"]\n  empty:\n---\nkind: Other\n";
    yaml_stream_t ys;
    errs_t e = {0};
    assert_int_equal(yaml_parse("t.yaml", y, strlen(y), 0, &ys, collect, &e), 0);
    assert_int_equal(ys.n_docs, 2);
    yaml_node_t *root = ys.docs[0];
    assert_int_equal(root->kind, YAML_MAP);
    yaml_node_t *kind = yaml_map_get(root, "kind");
    assert_string_equal(kind->str, "Proxy");
    assert_int_equal(kind->line, 1);
    assert_int_equal(kind->col, 7);
    yaml_node_t *ports = yaml_map_get(yaml_map_get(root, "spec"), "ports");
    assert_int_equal(ports->kind, YAML_SEQ);
    assert_int_equal(ports->n, 2);
    assert_false(ports->items[0]->quoted);
    assert_true(ports->items[1]->quoted);
    assert_int_equal(ports->items[1]->line, 3);
    assert_int_equal(ports->items[1]->col, 16); /* libfyaml marks the first character inside the quotes */
    yaml_node_t *empty = yaml_map_get(yaml_map_get(root, "spec"), "empty");
    assert_non_null(empty);
    assert_true(empty->is_null);
    assert_string_equal(yaml_map_get(ys.docs[1], "kind")->str, "Other");
    assert_null(yaml_map_get(root, "missing"));
    yaml_stream_dispose(&ys);
}

static void test_syntax_error_has_position(void **state)
{
    (void)state;
    const char *y = "a: 1\nb: [1, 2\n";
    yaml_stream_t ys;
    errs_t e = {0};
    assert_int_equal(yaml_parse("bad.yaml", y, strlen(y), 0, &ys, collect, &e), -1);
    assert_true(e.n >= 1);
    assert_non_null(strstr(e.first, "bad.yaml:"));
    yaml_stream_dispose(&ys);
}

/* found by fuzz_settings: libfyaml 0.7.12 crashes cleaning up after this input */
static void test_libfyaml_crash_is_an_error(void **state)
{
    (void)state;
    const char y[] = ":\n? a:\n?:\n? Sza:\n? Szan Sne:\n? Sne:\t?e:\n S? S";
    yaml_stream_t ys;
    errs_t e = {0};
    assert_int_equal(yaml_parse("crash.yaml", y, sizeof(y) - 1, 0, &ys, collect, &e), -1);
    assert_true(e.n >= 1);
    assert_non_null(strstr(e.first, "crash.yaml"));
    yaml_stream_dispose(&ys);
}

static void test_deep_nesting_refused(void **state)
{
    (void)state;
    char y[512];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        y[n++] = '[';
    for (int i = 0; i < 100; i++)
        y[n++] = ']';
    yaml_stream_t ys;
    errs_t e = {0};
    assert_int_equal(yaml_parse("deep.yaml", y, n, 0, &ys, collect, &e), -1);
    if (strstr(e.first, "nesting") == NULL && strstr(e.first, "deep") == NULL)
        fail_msg("unexpected error: %s", e.first);
    yaml_stream_dispose(&ys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_and_positions),
        cmocka_unit_test(test_syntax_error_has_position),
        cmocka_unit_test(test_libfyaml_crash_is_an_error),
        cmocka_unit_test(test_deep_nesting_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
