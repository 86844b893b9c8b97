/*
 * Differential fuzz target for collector/otlp_direct_logs: the body is
 * decoded as an ExportLogsServiceRequest by
 * otlp_logs_decode_proto_reference (protobuf-c), by
 * otlp_logs_decode_proto_direct (straight to otlp_log_t; it may decline),
 * by otlp_logs_decode_proto_records (what ingest runs) and by
 * otlp_logs_decode_proto (the sink API, once to the end and once with a
 * sink that stops early, against the reference with the same sink); they
 * must all fail, or accept the same records with the same result, and the
 * direct path must not write into the body. The first byte picks the
 * limits (a small max_depth, record, attribute or value limit now and
 * then, and where the stopping sink stops); the rest is the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otlp.h"

#define KEEP 4096

typedef struct kept {
    otlp_log_t v[KEEP];
    size_t n;
    size_t stop_at; /* the sink returns -1 when given record number stop_at (0: never) */
} kept_t;

static kept_t k_ref, k_sink;

static int log_sink(void *ctx, const otlp_log_t *l)
{
    kept_t *k = ctx;
    if (k->stop_at != 0 && k->n + 1 == k->stop_at)
        return -1;
    if (k->n < KEEP)
        k->v[k->n++] = *l;
    return 0;
}

static int str_same(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int log_same(const otlp_log_t *a, const otlp_log_t *b)
{
    if (a->time_unix_nano != b->time_unix_nano || a->observed_time_unix_nano != b->observed_time_unix_nano ||
        a->severity_number != b->severity_number || a->trace_id_high != b->trace_id_high ||
        a->trace_id_low != b->trace_id_low || a->span_id != b->span_id || a->flags != b->flags ||
        a->n_attributes != b->n_attributes || !str_same(a->severity_text, b->severity_text) ||
        !str_same(a->body, b->body) || !str_same(a->event_name, b->event_name) ||
        !str_same(a->service_name, b->service_name) || !str_same(a->scope_name, b->scope_name))
        return 0;
    for (uint32_t i = 0; i < a->n_attributes; i++)
        if (!str_same(a->attributes[i].key, b->attributes[i].key) ||
            !str_same(a->attributes[i].value, b->attributes[i].value))
            return 0;
    return 1;
}

/*
 * abort() unless (rc, r, v[0..n)) is the reference's outcome (records
 * only on success). An arena limit hit by either side is not a
 * disagreement about the format.
 */
static void agree(int rc, const otlp_result_t *r, const otlp_log_t *v, size_t n, int rc_ref, const otlp_result_t *r_ref,
                  const kept_t *ref)
{
    if (strstr(r->error, "memory limit") != NULL || strstr(r_ref->error, "memory limit") != NULL)
        return;
    if (rc != rc_ref)
        abort();
    if (rc != 0)
        return;
    if (n != ref->n || r->accepted != r_ref->accepted || r->rejected != r_ref->rejected ||
        strcmp(r->error, r_ref->error) != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!log_same(&v[i], &ref->v[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    uint8_t pick = data[0];
    if (pick < 32)
        lim.max_depth = pick % 12;
    else if (pick < 64)
        lim.max_items = 1 + pick % 8;
    else if (pick < 96)
        lim.max_attributes = pick % 5;
    else if (pick < 128)
        lim.max_attribute_value_len = pick % 40;
    else
        lim.max_attribute_value_len = 256;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    uint8_t *copy = malloc(len + 1);
    if (copy == NULL)
        abort();
    if (len > 0)
        memcpy(copy, body, len);
    arena_t a1, a2, a3, a4;
    arena_init(&a1, 64u << 20);
    arena_init(&a2, 64u << 20);
    arena_init(&a3, 64u << 20);
    arena_init(&a4, 64u << 20);

    otlp_result_t r_ref, r;
    k_ref = (kept_t){.n = 0};
    int rc_ref = otlp_logs_decode_proto_reference(body, len, &lim, &a1, log_sink, &k_ref, &r_ref);
    if (memchr(r_ref.error, '\0', sizeof(r_ref.error)) == NULL)
        abort();

    /* the direct path, unless it declines, must give what protobuf-c gave, and leave the body alone */
    const otlp_log_t *v = NULL;
    size_t n = 0;
    int rc = otlp_logs_decode_proto_direct(copy, len, &lim, &a2, &v, &n, &r, NULL);
    if (len > 0 && memcmp(copy, body, len) != 0)
        abort();
    if (rc == OTLP_DECLINED && (v != NULL || n != 0))
        abort();
    if (rc != OTLP_DECLINED)
        agree(rc, &r, v, n, rc_ref, &r_ref, &k_ref);

    /* what ingest runs: the direct path, or protobuf-c */
    rc = otlp_logs_decode_proto_records(copy, len, &lim, &a3, &v, &n, &r);
    agree(rc, &r, v, n, rc_ref, &r_ref, &k_ref);

    /* the sink API, to the end; nothing it produces may point into the body, which is spoilt and freed first */
    uint8_t *scratch = malloc(len + 1);
    if (scratch == NULL)
        abort();
    if (len > 0)
        memcpy(scratch, body, len);
    k_sink = (kept_t){.n = 0};
    rc = otlp_logs_decode_proto(scratch, len, &lim, &a4, log_sink, &k_sink, &r);
    memset(scratch, 0xa5, len);
    free(scratch);
    agree(rc, &r, k_sink.v, k_sink.n, rc_ref, &r_ref, &k_ref);

    /* and stopped early, against the reference stopped at the same record */
    if (rc_ref == 0 && k_ref.n > 0 && k_ref.n < KEEP) {
        size_t stop_at = 1 + (size_t)(pick % k_ref.n);
        arena_reset(&a1);
        arena_reset(&a4);
        k_ref = (kept_t){.n = 0, .stop_at = stop_at};
        k_sink = (kept_t){.n = 0, .stop_at = stop_at};
        rc_ref = otlp_logs_decode_proto_reference(body, len, &lim, &a1, log_sink, &k_ref, &r_ref);
        rc = otlp_logs_decode_proto(copy, len, &lim, &a4, log_sink, &k_sink, &r);
        if (rc != rc_ref || k_sink.n != k_ref.n || r.accepted != r_ref.accepted || r.rejected != r_ref.rejected ||
            strcmp(r.error, r_ref.error) != 0)
            abort();
        for (size_t i = 0; i < k_ref.n; i++)
            if (!log_same(&k_sink.v[i], &k_ref.v[i]))
                abort();
    }
    free(copy);
    arena_dispose(&a1);
    arena_dispose(&a2);
    arena_dispose(&a3);
    arena_dispose(&a4);
    return 0;
}
