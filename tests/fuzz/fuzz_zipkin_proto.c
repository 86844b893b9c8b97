/*
 * fuzz_zipkin_proto: exporters/zipkin_proto decoding of arbitrary bytes. When
 * a body decodes, the accepted spans are encoded again and decoded: the same
 * number of spans must come back. Sniffing is exercised on the input too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "zipkin_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)zipkin_sniff_proto(data, size);
    arena_t arena;
    arena_init(&arena, 8u << 20);
    span_vec_t got = {0};
    zipkin_result_t res;
    zipkin_limits_t lim = {.max_spans = 1000, .max_tags = 16, .max_tag_value_len = 1024, .max_annotations = 16};
    if (zipkin_proto_decode(data, size, &arena, &lim, span_vec_sink, &got, &res) == 0) {
        if (res.accepted != got.n)
            abort();
        buf_t pb = BUF_INIT;
        zipkin_proto_encode_spans(got.items, got.n, &pb);
        arena_t a2;
        arena_init(&a2, 0);
        size_t again = 0;
        zipkin_result_t r2;
        if (zipkin_proto_decode((const uint8_t *)pb.data, pb.len, &a2, &lim, span_count_sink, &again, &r2) != 0 ||
            again != got.n) {
            fprintf(stderr, "proto re-decode: %s (%zu of %zu)\n", r2.error, again, got.n);
            abort();
        }
        arena_dispose(&a2);
        buf_dispose(&pb);
    }
    span_vec_dispose(&got);
    arena_dispose(&arena);
    return 0;
}
