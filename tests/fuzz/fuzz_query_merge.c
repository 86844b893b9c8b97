/*
 * fuzz_query_merge: what the query role does with a store member's /traces
 * answer, on arbitrary bytes: exporters/zipkin_json's trace-list decoding,
 * then collector/query_merge joining the traces (the input read as two
 * members' answers, the second the first again) and sorting them. Merging
 * an answer with itself gives the same traces and timestamps, at most the
 * spans of one copy; a merged result merged with itself stays as it is;
 * the encoded result decodes again into as many traces.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "query_merge.h"
#include "zipkin_json.h"

typedef struct parts {
    span_vec_t spans;
    size_t starts[256];
    size_t n;
    int over;
} parts_t;

static int sink(void *ctx, const span_t *s)
{
    parts_t *p = ctx;
    if (s == NULL) {
        if (p->n == 256) {
            p->over = 1;
            return -1;
        }
        p->starts[p->n++] = p->spans.n;
        return 0;
    }
    return span_vec_sink(&p->spans, s);
}

static int count_sink(void *ctx, const span_t *s)
{
    *(size_t *)ctx += s == NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t arena;
    arena_init(&arena, 8u << 20);
    parts_t p = {0};
    zipkin_result_t res;
    zipkin_limits_t lim = {.max_spans = 1000, .max_tags = 16, .max_tag_value_len = 1024, .max_annotations = 16};
    if (zipkin_json_decode_traces((const char *)data, size, &arena, &lim, sink, &p, &res) == 0) {
        query_trace_t parts[512];
        for (size_t i = 0; i < p.n; i++) {
            size_t end = i + 1 < p.n ? p.starts[i + 1] : p.spans.n;
            parts[i] = parts[p.n + i] = (query_trace_t){p.spans.items + p.starts[i], end - p.starts[i], 0, (uint32_t)i};
        }
        query_trace_t *once, *twice;
        size_t n_once, n_twice;
        if (query_merge_traces(parts, p.n, 1, &arena, &once, &n_once) == 0 &&
            query_merge_traces(parts, 2 * p.n, 1, &arena, &twice, &n_twice) == 0) {
            if (n_once != n_twice)
                abort();
            for (size_t i = 0; i < n_once; i++)
                if (twice[i].n_spans == 0 || twice[i].n_spans > once[i].n_spans || once[i].ts != twice[i].ts)
                    abort();
            /* what is merged has no exact duplicates left: merging it with itself changes nothing */
            query_trace_t *again_parts = arena_alloc(&arena, (2 * n_twice + 1) * sizeof(*again_parts)), *thrice;
            size_t n_thrice;
            if (again_parts == NULL)
                goto out;
            for (size_t i = 0; i < n_twice; i++)
                again_parts[i] = again_parts[n_twice + i] = twice[i];
            if (query_merge_traces(again_parts, 2 * n_twice, 1, &arena, &thrice, &n_thrice) == 0) {
                if (n_thrice != n_twice)
                    abort();
                for (size_t i = 0; i < n_twice; i++)
                    if (thrice[i].n_spans != twice[i].n_spans)
                        abort();
            }
            query_merge_by_recent(twice, n_twice);
            for (size_t i = 1; i < n_twice; i++)
                if (twice[i - 1].ts < twice[i].ts)
                    abort();
            const span_t *traces[512];
            size_t counts[512];
            for (size_t i = 0; i < n_twice; i++) {
                traces[i] = twice[i].spans;
                counts[i] = twice[i].n_spans;
            }
            buf_t js = BUF_INIT;
            zipkin_json_encode_traces(traces, counts, n_twice, &js);
            arena_t a2;
            arena_init(&a2, 0);
            size_t again = 0;
            zipkin_result_t r2;
            if (zipkin_json_decode_traces(js.data, js.len, &a2, &lim, count_sink, &again, &r2) != 0 ||
                again != n_twice) {
                fprintf(stderr, "re-decode: %s (%zu of %zu traces)\n", r2.error, again, n_twice);
                abort();
            }
            arena_dispose(&a2);
            buf_dispose(&js);
        }
    }
out:
    span_vec_dispose(&p.spans);
    arena_dispose(&arena);
    return 0;
}
