/*
 * libFuzzer target: trace context and peer metadata (proxy/tracectx.c).
 *
 * Input: byte 0 is the sampling percentage (mod 101); the rest is split at
 * '\n' into up to 12 fields, each line's first byte picking the field name
 * (mod the name list) and the remainder being the value, copied into its
 * own heap buffer so ASan sees any read past it. The fields go through
 * tracectx_extract, tracectx_begin and tracectx_inject, and the whole input
 * through peer_decode.
 * Invariants: no crash, leak or UB; the extracted context is within its
 * limits (ids non-zero when present, sampled in -1..1); after begin the ids
 * are non-zero and a request id exists; injected values lie inside scratch
 * and re-extract to the same trace id, parent = our span, same decision;
 * a decoded peer re-encodes to a value that decodes to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/tracectx.h"

#define MAX_FIELDS 12

static const char *const NAMES[] = {
    "traceparent",  "tracestate", "b3",           "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
    "x-b3-sampled", "x-b3-flags", "x-request-id", "TraceParent",  "B3",          "host",
};

static int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static void check_ctx(const trace_ctx_t *c)
{
    if (c->tracestate_len > TRACECTX_STATE_MAX || c->request_id_len > TRACECTX_REQUEST_ID_MAX)
        abort();
    if (c->sampled < -1 || c->sampled > 1 || (c->debug && c->sampled != 1))
        abort();
    if (c->has_trace && all_zero(c->trace_id, 16))
        abort();
    if (c->has_parent && (!c->has_trace || all_zero(c->parent_id, 8)))
        abort();
    if (c->tracestate_len && !c->has_trace)
        abort();
}

static void check_inject(const trace_ctx_t *c)
{
    char scratch[TRACECTX_SCRATCH];
    http1_header_t out[TRACECTX_MAX_FIELDS];
    uint32_t n_w3c, n = tracectx_inject(c, scratch, out, &n_w3c);
    if (n > TRACECTX_MAX_FIELDS || n_w3c > n || (n_w3c == 0) != (c->sampled < 0))
        abort();
    for (uint32_t i = 0; i < n; i++) {
        if (out[i].value.ptr < scratch || out[i].value.ptr + out[i].value.len >= scratch + TRACECTX_SCRATCH)
            abort();
        if (!tracectx_is_own_header(out[i].name))
            abort();
    }
    trace_ctx_t d;
    tracectx_extract(out, n, &d);
    check_ctx(&d);
    if (!d.has_trace || memcmp(d.trace_id, c->trace_id, 16) != 0)
        abort();
    if (!d.has_parent || memcmp(d.parent_id, c->span_id, 8) != 0)
        abort();
    if (d.sampled != c->sampled || d.debug != c->debug)
        abort();
    if (d.request_id_len != c->request_id_len || memcmp(d.request_id, c->request_id, c->request_id_len) != 0)
        abort();
    /* the first n_w3c fields alone (what an Outrider sidecar gets) say the same */
    if (n_w3c > 0) {
        trace_ctx_t e;
        tracectx_extract(out, n_w3c, &e);
        if (!e.has_trace || memcmp(e.trace_id, d.trace_id, 16) != 0 || memcmp(e.parent_id, d.parent_id, 8) != 0)
            abort();
        if (e.sampled != d.sampled || e.debug != d.debug || e.request_id_len != d.request_id_len ||
            e.tracestate_len != d.tracestate_len || memcmp(e.tracestate, d.tracestate, d.tracestate_len) != 0)
            abort();
    }
}

static void fuzz_trace(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    double pct = data[0] % 101;
    data++, size--;

    http1_header_t h[MAX_FIELDS];
    char *copies[MAX_FIELDS];
    uint32_t n = 0;
    size_t pos = 0;
    while (pos < size && n < MAX_FIELDS) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size;
        if (end == pos) {
            pos++;
            continue;
        }
        size_t name = data[pos] % (sizeof(NAMES) / sizeof(NAMES[0]));
        size_t vlen = end - pos - 1;
        copies[n] = malloc(vlen ? vlen : 1);
        memcpy(copies[n], data + pos + 1, vlen);
        h[n].name = (str_t){NAMES[name], (uint32_t)strlen(NAMES[name])};
        h[n].value = (str_t){copies[n], (uint32_t)vlen};
        n++;
        pos = end + 1;
    }

    trace_ctx_t c;
    tracectx_extract(h, n, &c);
    check_ctx(&c);
    bool had_trace = c.has_trace;
    uint8_t trace[16], parent[8];
    memcpy(trace, c.trace_id, 16);
    memcpy(parent, c.parent_id, 8);

    uint64_t rng = 0x1234;
    tracectx_begin(&c, pct, &rng);
    check_ctx(&c);
    if (c.sampled < 0 || all_zero(c.span_id, 8) || all_zero(c.trace_id, 16) || c.request_id_len == 0)
        abort();
    if (had_trace && (memcmp(trace, c.trace_id, 16) != 0 || memcmp(parent, c.parent_id, 8) != 0))
        abort();
    check_inject(&c);

    for (uint32_t i = 0; i < n; i++)
        free(copies[i]);
}

static void same_field(const char *a, const char *b)
{
    if (strncmp(a, b, PEER_FIELD_MAX) != 0)
        abort();
}

static void fuzz_peer(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    peer_info_t p;
    int rc = peer_decode((str_t){copy, (uint32_t)size}, &p);
    free(copy);
    if (rc != 0)
        return;
    buf_t b = BUF_INIT;
    peer_encode(&p, &b);
    peer_info_t q;
    if (peer_decode((str_t){b.data, (uint32_t)b.len}, &q) != 0)
        abort();
    same_field(p.name, q.name);
    same_field(p.namespace, q.namespace);
    same_field(p.workload, q.workload);
    same_field(p.app, q.app);
    same_field(p.version, q.version);
    same_field(p.canonical_service, q.canonical_service);
    same_field(p.canonical_revision, q.canonical_revision);
    same_field(p.cluster_id, q.cluster_id);
    b.len = 0;
    peer_encode_id(&p, "10.0.0.1", &b);
    buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_trace(data, size);
    fuzz_peer(data, size);
    return 0;
}
