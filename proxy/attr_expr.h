/*
 * attr_expr: the attribute expressions of Istio's Telemetry API
 * (telemetry.istio.io/v1), a small subset of CEL over Envoy's request
 * attributes, used in metrics[].overrides[].tagOverrides.<tag>.value (a
 * label value) and accessLogging[].filter.expression (a boolean).
 *
 * Design. An expression is parsed once, at config load, into an immutable
 * tree of at most AX_MAX_NODES nodes held in one malloc'd block together
 * with a copy of its source and its unescaped string literals; every type
 * is checked then, so evaluation cannot meet a type error. Evaluation runs
 * per request on a worker thread: it walks the tree recursively (depth
 * bounded by the node count), allocates nothing, takes no lock and makes
 * no system call; strings it returns are slices of the request's data, of
 * the expression's block, of static text ("true"/"false") or of a caller's
 * AX_SCRATCH buffer (numbers and "address:port" rendered as text).
 *
 * Language (anything outside it is a parse error, most of them saying
 * "... is not supported"):
 *   literals      'single' or "double" quoted strings with the escapes \\ \'
 *                 \" only; decimal int64 integers (a leading '-' is part of
 *                 the literal; overflow is an error); true, false
 *   attributes    (Envoy's names and types; "missing" is an evaluation error)
 *     request.path        string  path with its query; missing when empty
 *     request.url_path    string  path without the query
 *     request.query       string  after '?' up to '#'; "" when there is no '?'
 *     request.host        string  authority; missing when empty
 *     request.scheme, request.method, request.protocol ("HTTP/1.1")
 *                         string  missing when empty
 *     request.headers['name'] (or ["name"])
 *                         string  the first field of that name, compared
 *                                 ASCII-case-insensitively (Envoy joins
 *                                 repeated fields with ','); missing when
 *                                 absent, "" when present and empty;
 *                                 ':authority' ':path' ':method' ':scheme'
 *                                 are request.host/path/method/scheme
 *     request.useragent, request.referer, request.id
 *                         string  the user-agent, referer, x-request-id field
 *     request.size        int     request body bytes
 *     request.duration    int     milliseconds (CEL's is a google.protobuf.
 *                                 Duration; we compare it as ms: write
 *                                 `request.duration > 500`, not `> duration('500ms')`)
 *     response.code       int     missing when there was no response
 *     response.size       int     response body bytes
 *     response.flags      int     Envoy's legacy bitmask (see attr_expr.c)
 *     source.address, destination.address
 *                         string  "ip:port" ("[v6]:port") as Envoy renders the
 *                                 downstream remote/local address; just the
 *                                 ip when the port is 0; missing when empty
 *     source.port, destination.port
 *                         int     missing when 0
 *     connection.mtls     bool    always false: the proxy does not terminate
 *                                 mTLS yet
 *     upstream_peer.F, downstream_peer.F   (Istio peer metadata)
 *                         string  F in app version namespace workload name
 *                                 service (canonical service) revision
 *                                 (canonical revision) cluster; missing when
 *                                 the peer is unknown or the field empty
 *     upstream_peer.labels['L'], downstream_peer.labels['L'], with an
 *     optional trailing .value (Istio's older filter_state form)
 *                         string  L in app version service.istio.io/canonical-name
 *                                 service.istio.io/canonical-revision
 *   operators, loosest first: c ? a : b (branches of one type), ||, &&,
 *     == != < <= > >= and `x in [lit, ...]` (left-associative), ! (prefix)
 *     == != compare ints, strings or bools; < <= > >= ints or strings
 *     (bytewise); both sides must have one type. The in-list holds at most
 *     AX_MAX_LIST literals of x's type.
 *   calls         s.startsWith(t) s.endsWith(t) s.contains(t) on strings;
 *                 has(attribute) (bare upstream_peer/downstream_peer too:
 *                 "peer known"); string(x) of any type; int(x) of an int
 *                 or a string (decimal, optional sign; else an error when
 *                 evaluated)
 *   not supported arithmetic, maps, lists outside `in`, other functions and
 *                 methods, uint/double/bytes/null literals, response.headers
 *                 and the other Envoy attributes not listed, xds.*, node.*,
 *                 filter_state, metadata, upstream.*
 *
 * Errors at evaluation (a missing attribute, an unknown peer, int() of
 * "abc") follow CEL: they propagate through comparisons, calls, ! and the
 * ternary's condition; `false && err` and `err && false` are false, `true
 * || err` and `err || true` are true; has() turns "missing" into false and
 * is the way to test presence. A filter that ends in an error does not
 * match (as in Envoy's CEL access log filter), so `request.headers['x'] ==
 * 'a'` and `!(request.headers['x'] == 'a')` are both false without the
 * field. A tag value that ends in an error is -1 from ax_eval_string
 * (Istio then writes "unknown").
 */
#ifndef OUTRIDER_PROXY_ATTR_EXPR_H
#define OUTRIDER_PROXY_ATTR_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"    /* http1_header_t */
#include "span.h"     /* str_t */
#include "tracectx.h" /* peer_info_t */

typedef struct ax_expr ax_expr_t;

enum ax_type { AX_STRING, AX_INT, AX_BOOL };

/* One request as a proxy hop saw it; any field may be empty, 0 or NULL (the attribute is then missing). */
typedef struct ax_ctx {
    str_t method, path /* with its query */, host /* authority */, scheme /* "http" */, protocol /* "HTTP/1.1" */;
    const http1_header_t *headers; /* request fields, n_headers of them; NULL when 0 */
    size_t n_headers;
    int response_code;                                  /* 0 = no response */
    uint32_t response_flags;                            /* TELE_RF_* bits from telemetry.h */
    uint64_t duration_ms, request_size, response_size;  /* sizes: body bytes */
    str_t source_address, destination_address;          /* IP text, no port */
    uint32_t source_port, destination_port;             /* 0 = unknown */
    const peer_info_t *downstream_peer, *upstream_peer; /* the other sides' metadata, NULL = unknown */
} ax_ctx_t;

#define AX_MAX_LEN 1024 /* bytes of source accepted */
#define AX_MAX_DEPTH 32 /* nesting, the top level included: parentheses, arguments, ternary branches, ! */
#define AX_MAX_NODES 64 /* literals, attributes, operators and calls */
#define AX_MAX_LIST 16  /* literals in one `in` list */
#define AX_SCRATCH 64   /* bytes of scratch an evaluation may need */

/*
 * Parse src (NUL-terminated). want is the type the caller needs: AX_BOOL
 * for a filter (any other type is the error "must be a boolean
 * expression"), AX_INT for an int, AX_STRING for a tag value (every type
 * accepted: ints and bools are rendered as text). Returns the expression,
 * which the caller frees with ax_free; or NULL with a NUL-terminated reason
 * in err (cut to errlen; err may be NULL when errlen is 0) and the 0-based
 * byte offset of the offending token in *err_off (err_off may be NULL).
 * Rejects sources over AX_MAX_LEN bytes and expressions over AX_MAX_DEPTH
 * or AX_MAX_NODES. Aborts when out of memory (the block is bounded).
 */
ax_expr_t *ax_parse(const char *src, enum ax_type want, char *err, size_t errlen, size_t *err_off);

/* Free an expression; NULL is a no-op. */
void ax_free(ax_expr_t *e);

/* The type the expression evaluates to (AX_BOOL when parsed with want AX_BOOL). */
enum ax_type ax_type_of(const ax_expr_t *e);

/* The NUL-terminated source it was parsed from (a copy owned by e). */
const char *ax_source(const ax_expr_t *e);

/*
 * True when the value can differ between two requests to the same
 * destination with the same peers: the expression reads request.*,
 * response.*, source.* or connection.*. False for literals and
 * expressions over destination.* and the peers only, whose value a caller
 * may compute once per (destination, peer).
 */
bool ax_per_request(const ax_expr_t *e);

/*
 * Evaluate to text: 0 with *out set, or -1 when the value is missing or an
 * error (Istio then writes "unknown"). *out is a slice of ctx's data (valid
 * as long as that is), of e, of static text, or of scratch; ints are
 * rendered in decimal, bools as "true"/"false". Any type of expression is
 * accepted. Allocates nothing, takes no lock, makes no system call.
 */
int ax_eval_string(const ax_expr_t *e, const ax_ctx_t *ctx, char scratch[AX_SCRATCH], str_t *out);

/*
 * Evaluate a boolean expression: 1 true, 0 false or error (a filter that
 * fails does not match, as in Envoy). Returns 0 for an expression of
 * another type. Same hot-path guarantees as ax_eval_string.
 */
int ax_eval_bool(const ax_expr_t *e, const ax_ctx_t *ctx);

#endif
