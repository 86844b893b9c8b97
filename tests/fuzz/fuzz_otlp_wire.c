/*
 * Differential fuzz target for collector/otlp_wire: the body is decoded as
 * an ExportTraceServiceRequest by otlp_traces_decode_proto (the specialised
 * decoder) and by otlp_traces_decode_proto_reference (protobuf-c); the two
 * must both fail or accept the same spans with the same result. The first
 * byte picks a small max_depth now and then so the depth bound is compared
 * too; the rest is the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otlp.h"

#define KEEP 4096

typedef struct kept {
    span_t s[KEEP];
    size_t n;
} kept_t;

static kept_t k1, k2;

static int span_sink(void *ctx, const span_t *s)
{
    kept_t *k = ctx;
    if (k->n < KEEP)
        k->s[k->n++] = *s;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    lim.max_attribute_value_len = 256;
    if (data[0] < 64)
        lim.max_depth = data[0] % 12;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    arena_t a1, a2;
    arena_init(&a1, 64u << 20);
    arena_init(&a2, 64u << 20);
    k1.n = k2.n = 0;
    otlp_result_t r1, r2;
    int rc1 = otlp_traces_decode_proto(body, len, &lim, &a1, span_sink, &k1, &r1);
    int rc2 = otlp_traces_decode_proto_reference(body, len, &lim, &a2, span_sink, &k2, &r2);
    /* an arena limit hit by only one side is not a disagreement about the format */
    int oom = strstr(r1.error, "memory limit") != NULL || strstr(r2.error, "memory limit") != NULL;
    if (!oom) {
        if (rc1 != rc2 || k1.n != k2.n)
            abort();
        if (rc1 == 0 && (r1.accepted != r2.accepted || r1.rejected != r2.rejected || strcmp(r1.error, r2.error) != 0))
            abort();
        for (size_t i = 0; i < k1.n; i++)
            if (!span_equal(&k1.s[i], &k2.s[i]))
                abort();
    }
    if (memchr(r1.error, '\0', sizeof(r1.error)) == NULL)
        abort();
    {
        /* the in-place, array-returning variant must give what the sink variant gave */
        arena_t a3;
        arena_init(&a3, 64u << 20);
        uint8_t *copy = malloc(len + 1);
        if (copy == NULL)
            abort();
        if (len > 0)
            memcpy(copy, body, len);
        const span_t *arr = NULL;
        size_t n3 = 0;
        otlp_result_t r3;
        int rc3 = otlp_traces_decode_proto_spans(copy, len, &lim, &a3, &arr, &n3, &r3);
        int oom3 = strstr(r1.error, "memory limit") != NULL || strstr(r3.error, "memory limit") != NULL;
        if (!oom3) {
            if (rc3 != rc1 || (rc3 == 0 && n3 != k1.n))
                abort();
            if (rc3 == 0 &&
                (r3.accepted != r1.accepted || r3.rejected != r1.rejected || strcmp(r3.error, r1.error) != 0))
                abort();
            for (size_t i = 0; rc3 == 0 && i < n3; i++)
                if (!span_equal(&arr[i], &k1.s[i]))
                    abort();
        }
        free(copy);
        arena_dispose(&a3);
    }
    arena_dispose(&a1);
    arena_dispose(&a2);
    return 0;
}
