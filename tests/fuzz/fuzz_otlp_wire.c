/*
 * Differential fuzz target for collector/otlp_wire and collector/otlp_direct:
 * the body is decoded as an ExportTraceServiceRequest by
 * otlp_traces_decode_proto (otlp_wire), by otlp_traces_decode_proto_direct
 * (straight to span_t; it may decline the body) and by
 * otlp_traces_decode_proto_reference (protobuf-c); they must all fail or
 * accept the same spans with the same result, and the direct path must not
 * write into the body. The first byte picks a small max_depth now and then
 * so the depth bound is compared too; the rest is the body.
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

/*
 * abort() unless (rc, r, s[0..n)) is the reference's outcome. An arena
 * limit hit by either side is not a disagreement about the format.
 */
static void agree(int rc, const otlp_result_t *r, const span_t *s, size_t n, int rc_ref, const otlp_result_t *r_ref,
                  const kept_t *ref)
{
    if (strstr(r->error, "memory limit") != NULL || strstr(r_ref->error, "memory limit") != NULL)
        return;
    if (rc != rc_ref || n != ref->n)
        abort();
    if (rc == 0 &&
        (r->accepted != r_ref->accepted || r->rejected != r_ref->rejected || strcmp(r->error, r_ref->error) != 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if (!span_equal(&s[i], &ref->s[i]))
            abort();
}

/* A scratch copy of the body, for the decoders that take one. */
static uint8_t *copy_of(const uint8_t *body, size_t len)
{
    uint8_t *copy = malloc(len + 1);
    if (copy == NULL)
        abort();
    if (len > 0)
        memcpy(copy, body, len);
    return copy;
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
    arena_t a1, a2, a3, a4;
    arena_init(&a1, 64u << 20);
    arena_init(&a2, 64u << 20);
    arena_init(&a3, 64u << 20);
    arena_init(&a4, 64u << 20);
    k1.n = k2.n = 0;
    otlp_result_t r1, r2, r3, r4;
    int rc1 = otlp_traces_decode_proto(body, len, &lim, &a1, span_sink, &k1, &r1);
    int rc2 = otlp_traces_decode_proto_reference(body, len, &lim, &a2, span_sink, &k2, &r2);
    agree(rc1, &r1, k1.s, k1.n, rc2, &r2, &k2);
    if (memchr(r1.error, '\0', sizeof(r1.error)) == NULL)
        abort();

    /* the direct path, unless it declines, must give what protobuf-c gave, and leave the body alone */
    uint8_t *copy = copy_of(body, len);
    const span_t *arr = NULL;
    size_t n = 0;
    int rc4 = otlp_traces_decode_proto_direct(copy, len, &lim, &a4, &arr, &n, &r4, NULL);
    if (len > 0 && memcmp(copy, body, len) != 0)
        abort();
    if (rc4 == OTLP_DECLINED && (arr != NULL || n != 0))
        abort();
    if (rc4 != OTLP_DECLINED)
        agree(rc4, &r4, arr, n, rc2, &r2, &k2);

    /* what ingest runs: the direct path, or otlp_wire in place */
    int rc3 = otlp_traces_decode_proto_spans(copy, len, &lim, &a3, &arr, &n, &r3);
    agree(rc3, &r3, arr, n, rc2, &r2, &k2);
    free(copy);
    arena_dispose(&a1);
    arena_dispose(&a2);
    arena_dispose(&a3);
    arena_dispose(&a4);
    return 0;
}
