/*
 * tracectx: distributed trace context of one proxy hop, and the peer
 * metadata exchange between sidecars.
 *
 * Trace context. Accepted in any of W3C Trace Context (`traceparent`,
 * `tracestate`), B3 single header (`b3`) and B3 multi-header (`x-b3-traceid`,
 * `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`), plus
 * `x-request-id`. When several are present and valid, traceparent wins,
 * then b3, then x-b3-*; an invalid header is ignored (never an error), and
 * only the first field of each name is read (tracestate: all of them,
 * comma-joined, W3C 3.3.1). traceparent must be lowercase hex; B3 ids may be
 * either case. tracestate is kept only alongside a valid traceparent, and
 * dropped whole when longer than TRACECTX_STATE_MAX or holding control
 * characters; so is an x-request-id over TRACECTX_REQUEST_ID_MAX.
 * Sampling: `x-b3-sampled: 1`/`true` or `x-b3-flags: 1` (debug) or b3
 * "1"/"d" or traceparent flag 01 force the trace; `x-b3-sampled: 0` or b3
 * "0" (or a valid traceparent with flag 00 when no B3 header says
 * otherwise) suppress it; when both kinds are present, the forcing one
 * wins. No decision means samplingPercent decides.
 *
 * 64-bit B3 trace ids sit in trace_id[8..15] with [0..7] zero; the B3
 * writers emit 16 hex chars whenever [0..7] are zero (so such an id travels
 * on unchanged) and traceparent always carries 32, left-padded with zeros.
 * Trace ids made here have a non-zero high half.
 *
 * Each hop is one span: tracectx_begin gives it a new span id whose parent
 * is the incoming span id (if any), keeps the incoming trace id or makes a
 * new 128-bit one, and generates an x-request-id (UUID v4) when missing.
 * tracectx_inject then writes the context in all formats, with this hop's
 * span id as the parent of the next hop.
 *
 * Peer metadata exchange (Istio's `x-envoy-peer-metadata-id` and
 * `x-envoy-peer-metadata`: base64 of a serialized google.protobuf.Struct
 * with keys NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID and LABELS {app,
 * version, service.istio.io/canonical-name,
 * service.istio.io/canonical-revision}). The outbound proxy adds them to
 * requests and the inbound proxy to responses, so each side can label its
 * metrics with the other; each side strips them before the app sees them.
 */
#ifndef OUTRIDER_PROXY_TRACECTX_H
#define OUTRIDER_PROXY_TRACECTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

#define TRACECTX_REQUEST_ID_MAX 128 /* longer incoming x-request-id values are replaced */
#define TRACECTX_STATE_MAX 512      /* longer tracestate values are dropped */

typedef struct trace_ctx {
    uint8_t trace_id[16]; /* big-endian; a 64-bit B3 id sits in bytes 8..15 with 0..7 zero */
    uint8_t span_id[8];   /* this hop's span (after tracectx_begin) */
    uint8_t parent_id[8]; /* the incoming span id, when has_parent */
    bool has_trace;       /* an incoming trace id was found */
    bool has_parent;
    int8_t sampled; /* -1 no decision yet, 0 not sampled, 1 sampled */
    bool debug;
    char request_id[TRACECTX_REQUEST_ID_MAX + 1];
    uint32_t request_id_len; /* 0 = none */
    char tracestate[TRACECTX_STATE_MAX + 1];
    uint32_t tracestate_len;
} trace_ctx_t;

/* A fast per-thread random generator (xorshift64*); any seed, a zero state is replaced by a constant. */
uint64_t tracectx_rand(uint64_t *state);

/*
 * Read the incoming context from a request's fields into *ctx (cleared
 * first): has_trace/has_parent with trace_id and parent_id = the incoming
 * span id, sampled/debug, tracestate, request_id. h may be NULL when n is 0.
 */
void tracectx_extract(const http1_header_t *h, uint32_t n, trace_ctx_t *ctx);

/*
 * Start this hop's span: new span id; parent = the incoming span id; a new
 * trace id when none came; the sampling decision kept or made with
 * sampling_percent (0..100; <= 0 or NaN never, >= 100 always); a request
 * id (UUID v4, 36 lowercase chars) generated when none came. Afterwards
 * sampled is 0 or 1 (1 when debug); has_trace still tells whether the
 * trace came in. The ids are non-zero.
 */
void tracectx_begin(trace_ctx_t *ctx, double sampling_percent, uint64_t *rng);

/* Whether a field belongs to the trace context (it is dropped from the forwarded request and written anew). */
bool tracectx_is_own_header(str_t name);

/* Enough for every value tracectx_inject writes. */
#define TRACECTX_SCRATCH (TRACECTX_REQUEST_ID_MAX + TRACECTX_STATE_MAX + 512)
#define TRACECTX_MAX_FIELDS 9 /* every field below, x-b3-flags included */

/*
 * Write the outgoing fields to out (TRACECTX_MAX_FIELDS entries), in this
 * order: traceparent, tracestate when any, x-request-id when any,
 * x-b3-flags: 1 when debug; then b3, x-b3-traceid, x-b3-spanid,
 * x-b3-parentspanid when there is a parent, x-b3-sampled. This hop's span
 * id is the span id and the incoming one the parent; b3 is
 * "trace-span-{1|0|d}[-parent]". Call after tracectx_begin (with sampled
 * still -1, the sampling state is left out of b3 and x-b3-sampled and
 * traceparent says 00). Names are static lowercase literals; values point
 * into scratch (NUL-terminated there too). Returns the count. *n_w3c (when
 * not NULL) gets how many of the first fields carry the whole context
 * without the B3 forms, for a next hop that reads traceparent (another
 * Outrider sidecar, which writes every form again for its app); 0 when
 * the B3 forms are needed (sampling undecided).
 */
uint32_t tracectx_inject(const trace_ctx_t *ctx, char scratch[TRACECTX_SCRATCH], http1_header_t *out, uint32_t *n_w3c);

/* Lowercase hex of the trace id (32 chars) and span ids (16 chars), NUL-terminated. */
void tracectx_hex(const uint8_t *id, size_t len, char *out);

/* ---- peer metadata ---- */

#define PEER_FIELD_MAX 128

typedef struct peer_info {
    char name[PEER_FIELD_MAX];               /* NAME: the proxy's metadata.name (stands for the pod) */
    char namespace[PEER_FIELD_MAX];          /* NAMESPACE */
    char workload[PEER_FIELD_MAX];           /* WORKLOAD_NAME */
    char app[PEER_FIELD_MAX];                /* LABELS.app */
    char version[PEER_FIELD_MAX];            /* LABELS.version */
    char canonical_service[PEER_FIELD_MAX];  /* LABELS service.istio.io/canonical-name */
    char canonical_revision[PEER_FIELD_MAX]; /* LABELS service.istio.io/canonical-revision */
    char cluster_id[PEER_FIELD_MAX];         /* CLUSTER_ID */
} peer_info_t;

#define PEER_HEADER "x-envoy-peer-metadata"
#define PEER_ID_HEADER "x-envoy-peer-metadata-id"

/*
 * The ALPN id by which two Outrider sidecars agree, in the mutual TLS
 * handshake, to exchange the two fields above once per connection rather
 * than on every request and response: each side sends them on the first
 * message of the connection (and again when its own metadata changes) and
 * the receiver keeps the last ones it saw for the connection's later
 * messages. HTTP/1.1 otherwise. A server that does not know it (Envoy)
 * chooses "http/1.1", and the fields then travel on every message as Istio
 * sends them. See docs/decisions.md.
 */
#define PEER_ALPN "outrider-http/1.1"

/*
 * Append the base64 value (standard alphabet, padded) of PEER_HEADER for p
 * to out. Empty fields are left out (LABELS too when all its labels are
 * empty); each field is read up to its NUL, at most PEER_FIELD_MAX-1 bytes.
 */
void peer_encode(const peer_info_t *p, buf_t *out);

/* Append the value of PEER_ID_HEADER ("sidecar~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local"); ip NULL = empty. */
void peer_encode_id(const peer_info_t *p, const char *ip, buf_t *out);

/*
 * Decode a PEER_HEADER value (bounded: at most 8 KiB of base64, fields
 * longer than PEER_FIELD_MAX-1 are cut). Unknown keys, known keys whose
 * value is not a string, and unknown fields of any wire type are skipped;
 * padding may be left out. Returns 0 (an empty value is an empty peer), or
 * -1 for invalid base64 (bad characters, misplaced or wrong padding,
 * non-zero spare bits) or protobuf (truncation, field 0, wrong wire type
 * for a known field, unbalanced or over-deep groups); *p is zeroed on -1.
 */
int peer_decode(str_t value, peer_info_t *p);

/* Whether a field is one of the two peer metadata headers. */
bool peer_is_header(str_t name);

#endif
