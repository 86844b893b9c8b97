/*
 * The body of the OTLP fuzz targets, shared by fuzz_otlp_traces.c (protobuf)
 * and fuzz_otlp_json.c (JSON), which define FUZZ_OTLP_TRACES, _METRICS and
 * _LOGS as the decoders to drive. The first byte picks the signal (0 traces,
 * 1 metrics, 2 logs, modulo 3); the rest is the body. Every item handed to a
 * sink is kept and read again after the decode returns, so ASan catches
 * anything that does not live in the arena.
 */
#ifndef OUTRIDER_FUZZ_OTLP_COMMON_H
#define OUTRIDER_FUZZ_OTLP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "otlp.h"

#define KEEP 64

static span_t spans[KEEP];
static metric_point_t points[KEEP];
static otlp_log_t logs[KEEP];
static size_t n_kept;
static volatile uint64_t sink_hole;

static void touch(str_t s)
{
    uint64_t h = 0;
    for (uint32_t i = 0; i < s.len; i++)
        h += (uint8_t)s.ptr[i];
    sink_hole += h;
}

static int span_sink(void *ctx, const span_t *s)
{
    (void)ctx;
    if (n_kept < KEEP)
        spans[n_kept++] = *s;
    return 0;
}

static int point_sink(void *ctx, const metric_point_t *p)
{
    (void)ctx;
    if (n_kept < KEEP)
        points[n_kept++] = *p;
    return 0;
}

static int log_sink(void *ctx, const otlp_log_t *l)
{
    (void)ctx;
    if (n_kept < KEEP)
        logs[n_kept++] = *l;
    return 0;
}

static void check_span(const span_t *s)
{
    touch(s->name);
    touch(s->local.service_name);
    touch(s->remote.service_name);
    for (uint32_t i = 0; i < s->n_tags; i++) {
        touch(s->tags[i].key);
        touch(s->tags[i].value);
    }
    for (uint32_t i = 0; i < s->n_annotations; i++)
        touch(s->annotations[i].value);
    if (s->id == 0 || (s->trace_id_high == 0 && s->trace_id_low == 0))
        __builtin_trap();
}

static void check_point(const metric_point_t *p)
{
    touch(p->name);
    touch(p->unit);
    touch(p->description);
    for (uint32_t i = 0; i < p->n_labels; i++) {
        touch(p->labels[i].name);
        touch(p->labels[i].value);
    }
    if (p->type == METRIC_HISTOGRAM)
        for (uint32_t i = 0; i <= p->n_bounds; i++)
            sink_hole += p->bucket_counts[i] + (i < p->n_bounds ? (uint64_t)p->bounds[i] : 0);
    for (uint32_t i = 0; i < p->n_exemplars; i++)
        sink_hole += p->exemplars[i].span_id;
}

static void check_log(const otlp_log_t *l)
{
    touch(l->body);
    touch(l->severity_text);
    touch(l->service_name);
    touch(l->scope_name);
    touch(l->event_name);
    for (uint32_t i = 0; i < l->n_attributes; i++) {
        touch(l->attributes[i].key);
        touch(l->attributes[i].value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    arena_t arena;
    arena_init(&arena, 8u << 20);
    otlp_result_t res;
    otlp_limits_t lim;
    otlp_limits_default(&lim);
    lim.max_attribute_value_len = 256;
    n_kept = 0;
    unsigned which = data[0] % 3;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    buf_t out = BUF_INIT;
    switch (which) {
    case 0:
        FUZZ_OTLP_TRACES(body, len, &lim, &arena, span_sink, NULL, &res);
        for (size_t i = 0; i < n_kept; i++)
            check_span(&spans[i]);
        otlp_encode_response(OTLP_SIGNAL_TRACES, 0, &res, &out);
        break;
    case 1:
        FUZZ_OTLP_METRICS(body, len, &lim, &arena, point_sink, NULL, &res);
        for (size_t i = 0; i < n_kept; i++)
            check_point(&points[i]);
        otlp_encode_response(OTLP_SIGNAL_METRICS, 1, &res, &out);
        break;
    default:
        FUZZ_OTLP_LOGS(body, len, &lim, &arena, log_sink, NULL, &res);
        for (size_t i = 0; i < n_kept; i++)
            check_log(&logs[i]);
        otlp_encode_status(0, 3, res.error, &out);
        break;
    }
    if (memchr(res.error, '\0', sizeof(res.error)) == NULL)
        __builtin_trap();
    buf_dispose(&out);
    arena_dispose(&arena);
    return 0;
}

#endif
