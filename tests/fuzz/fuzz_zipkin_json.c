/*
 * fuzz_zipkin_json: exporters/zipkin_json decoding of arbitrary bytes. When a
 * body decodes, the accepted spans are encoded again (JSON, and proto3 as a
 * cross-check) and decoded: the same number of spans must come back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "zipkin_json.h"
#include "zipkin_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t arena;
    arena_init(&arena, 8u << 20);
    span_vec_t got = {0};
    zipkin_result_t res;
    zipkin_limits_t lim = {.max_spans = 1000, .max_tags = 16, .max_tag_value_len = 1024, .max_annotations = 16};
    if (zipkin_json_decode((const char *)data, size, &arena, &lim, span_vec_sink, &got, &res) == 0) {
        if (res.accepted != got.n)
            abort();
        buf_t js = BUF_INIT, pb = BUF_INIT;
        zipkin_json_encode_spans(got.items, got.n, &js);
        arena_t a2;
        arena_init(&a2, 0);
        size_t again = 0;
        zipkin_result_t r2;
        if (zipkin_json_decode(js.data, js.len, &a2, &lim, span_count_sink, &again, &r2) != 0 || again != got.n) {
            fprintf(stderr, "json re-decode: %s (%zu of %zu)\n%s\n", r2.error, again, got.n, js.data);
            abort();
        }
        zipkin_proto_encode_spans(got.items, got.n, &pb);
        again = 0;
        if (zipkin_proto_decode((const uint8_t *)pb.data, pb.len, &a2, &lim, span_count_sink, &again, &r2) != 0 ||
            again != got.n) {
            fprintf(stderr, "proto re-decode: %s (%zu of %zu)\n", r2.error, again, got.n);
            abort();
        }
        arena_dispose(&a2);
        buf_dispose(&js);
        buf_dispose(&pb);
    }
    span_vec_dispose(&got);
    arena_dispose(&arena);
    return 0;
}
