/*
 * libFuzzer target: Istio attribute expressions (proxy/attr_expr.c).
 *
 * Input: the expression's bytes, copied into a heap buffer with a NUL
 * after them (bytes after an embedded NUL are not part of it). It is
 * parsed as a tag value (AX_STRING) and as a filter (AX_BOOL), and every
 * successful parse is evaluated against a fixed request whose strings sit
 * in heap buffers of their exact size, with both peers known and then with
 * both unknown and no headers.
 * Invariants: no crash, leak, UB or read outside a slice; an error has a
 * reason and an offset inside the source (AX_MAX_LEN for one too long);
 * the filter parse succeeds exactly when the tag parse does with a bool
 * type; ax_source returns the input; evaluation is deterministic, its text
 * is readable and bounded, and ax_eval_bool agrees with the text "true".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/attr_expr.h"
#include "proxy/telemetry.h"

static str_t heap_str(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    memcpy(p, s, n);
    return (str_t){p, (uint32_t)n};
}

static const ax_ctx_t *fixed_ctx(void)
{
    static ax_ctx_t c;
    static http1_header_t h[5];
    static peer_info_t up = {"reviews-v2-1", "default", "reviews-v2", "reviews", "v2", "reviews", "v2", "Kubernetes"};
    static peer_info_t down = {.namespace = "front", .app = "productpage"};
    if (c.method.ptr)
        return &c;
    static const char *const names[] = {"X-User", "user-agent", "x-request-id", "x-num", "x-empty"};
    static const char *const values[] = {"jason", "curl/8.0", "7d0e-4b", "-42", ""};
    for (int i = 0; i < 5; i++)
        h[i] = (http1_header_t){heap_str(names[i]), heap_str(values[i])};
    c = (ax_ctx_t){
        .method = heap_str("POST"),
        .path = heap_str("/api/v1/items?id=7#top"),
        .host = heap_str("reviews.default:9080"),
        .scheme = heap_str("http"),
        .protocol = heap_str("HTTP/1.1"),
        .headers = h,
        .n_headers = 5,
        .response_code = 503,
        .response_flags = TELE_RF_UF | TELE_RF_URX | TELE_RF_DC,
        .duration_ms = 1234,
        .request_size = 77,
        .response_size = 9000,
        .source_address = heap_str("fd00:1234::17"),
        .source_port = 41000,
        .destination_address = heap_str("10.0.0.9"),
        .destination_port = 9080,
        .downstream_peer = &down,
        .upstream_peer = &up,
    };
    return &c;
}

static void check_eval(const ax_expr_t *e, const ax_ctx_t *c)
{
    char scratch[AX_SCRATCH], copy[AX_MAX_LEN + 256];
    str_t out, again;
    int rs = ax_eval_string(e, c, scratch, &out);
    if (rs != 0 && rs != -1)
        abort();
    if (rs == 0) {
        if (out.len > sizeof(copy) || (out.len && !out.ptr))
            abort();
        if (out.len)
            memcpy(copy, out.ptr, out.len);
        if (ax_eval_string(e, c, scratch, &again) != 0 || again.len != out.len ||
            (out.len && memcmp(again.ptr, copy, out.len) != 0))
            abort();
    }
    int rb = ax_eval_bool(e, c);
    bool is_true = rs == 0 && out.len == 4 && memcmp(copy, "true", 4) == 0;
    if (rb != (ax_type_of(e) == AX_BOOL && is_true))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = malloc(size + 1);
    memcpy(src, data, size);
    src[size] = '\0';
    size_t len = strlen(src);

    ax_expr_t *e[2];
    for (int i = 0; i < 2; i++) {
        char err[128] = "";
        size_t off = 0;
        e[i] = ax_parse(src, i ? AX_BOOL : AX_STRING, err, sizeof(err), &off);
        if (!e[i] && (err[0] == '\0' || off > (len > AX_MAX_LEN ? AX_MAX_LEN : len)))
            abort();
        if (e[i] && strcmp(ax_source(e[i]), src) != 0)
            abort();
    }
    if ((e[1] != NULL) != (e[0] != NULL && ax_type_of(e[0]) == AX_BOOL))
        abort();
    if (e[1] && ax_type_of(e[1]) != AX_BOOL)
        abort();

    ax_ctx_t bare = *fixed_ctx();
    bare.upstream_peer = bare.downstream_peer = NULL;
    bare.headers = NULL;
    bare.n_headers = 0;
    bare.response_code = 0;
    for (int i = 0; i < 2; i++) {
        if (!e[i])
            continue;
        check_eval(e[i], fixed_ctx());
        check_eval(e[i], &bare);
        ax_free(e[i]);
    }
    free(src);
    return 0;
}
