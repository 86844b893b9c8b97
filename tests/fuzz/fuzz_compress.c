/* libFuzzer target: bounded gzip/deflate/zstd decoding; the first byte picks the codec. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "compress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum compress_codec codec = (enum compress_codec)(1 + data[0] % 3);
    buf_t out = BUF_INIT;
    char err[128];
    int rc = compress_decode(codec, data + 1, size - 1, 1 << 20, &out, err, sizeof(err));
    if (out.len > (1 << 20))
        abort();
    (void)rc;
    buf_dispose(&out);
    return 0;
}
