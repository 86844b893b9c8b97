/*
 * rlglobal: a worker's client for global rate limits kept in Redis
 * (`kind: RateLimit` spec.global), asynchronous on the worker's libuv loop
 * through hiredis' async API and its libuv adapter.
 *
 * Design. One rlg_t per worker loop, touched only from that loop's thread.
 * It keeps one hiredis async connection per Redis address, opened lazily by
 * the first check. A check sends one EVAL per limit (pipelined), each script
 * atomic on the Redis side, and decides when every reply is in; a uv timer
 * per check bounds the wait (gl->timeout_ms), and replies arriving after it
 * are dropped. A connection moves IDLE -> CONNECTING -> UP; a connect
 * failure, a connect taking more than RLG_CONNECT_TIMEOUT_MS or a disconnect
 * or RLG_TIMEOUTS_RESET calls in a row timing out moves it to BACKOFF, failing every check in flight with RLG_ERROR;
 * during the back-off (100 ms, doubling up to 2 s, back to 100 ms after a
 * successful connect) checks answer RLG_ERROR at once, and when it ends the
 * connection is IDLE again, so the next check reconnects.
 *
 * Windows are counted on the wall clock of the proxies (CLOCK_REALTIME), so
 * every proxy sharing a limit must have a synchronised clock.
 *   fixed window:   key ":" (now_ms / window_ms); INCR, PEXPIRE to the
 *                   window's end; over when count > per.
 *   sliding window: the same current-window key plus the previous one;
 *                   INCR current (kept two windows), GET previous; the
 *                   estimate prev * (1 - elapsed / window) + current is over
 *                   when > per (the approximation of Envoy's ratelimit).
 * A request that is refused still counts, as in Envoy's ratelimit service.
 *
 * failureMode and shadow are the caller's business: RLG_ERROR says only
 * that Redis gave no usable answer in time.
 */
#ifndef OUTRIDER_PROXY_RLGLOBAL_H
#define OUTRIDER_PROXY_RLGLOBAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

#define RLG_KEY_MAX 8192            /* bytes of one descriptor key; longer keys give RLG_ERROR */
#define RLG_LIMITS_MAX 64           /* limits in one check; more give RLG_ERROR */
#define RLG_CONNECT_TIMEOUT_MS 1000 /* a connect still pending after this fails */
#define RLG_TIMEOUTS_RESET 8        /* calls timed out in a row after which a connection is dropped */
#define RLG_BACKOFF_MIN_MS 100
#define RLG_BACKOFF_MAX_MS 2000

typedef struct rlg rlg_t;           /* one per worker loop: connections by Redis address */
typedef struct rlg_call rlg_call_t; /* one pending decision */

/* RLG_ERROR: Redis unreachable, timed out, or a bad reply (the caller applies failureMode). */
enum rlg_verdict { RLG_ALLOW, RLG_DENY, RLG_ERROR };

/*
 * The decision of one check. remaining: requests left in the tightest limit
 * (0 when denied); reset_s: seconds until its window ends (at least 1). Both
 * are 0 with RLG_ERROR.
 */
typedef void (*rlg_done_fn)(void *ctx, enum rlg_verdict v, uint64_t remaining, uint64_t reset_s);

/* A client on loop (which must outlive it). Aborts on out of memory. Free with rlg_destroy. */
rlg_t *rlg_create(uv_loop_t *loop);

/*
 * Cancel every pending call (their callbacks are not called) and close the
 * connections. The loop must run on for the handles to close (the remaining
 * memory is freed then). NULL is a no-op. Must not be called from inside an
 * rlg_done_fn.
 */
void rlg_destroy(rlg_t *g);

/*
 * Count one request against `n` limits of the same Redis (gl->redis,
 * gl->timeout_ms, gl->algorithm): keys[i] is the full descriptor key of
 * limit i (built by the caller, e.g. "outrider:rl:<doc>:<limit>:<values>"),
 * per[i] its requestsPerUnit, window_ms[i] its unit in ms. Nothing is
 * retained from the arguments after the return (keys are copied into the
 * commands). The verdict is RLG_DENY when any limit is over, with
 * remaining/reset of the tightest limit.
 *
 * Returns a handle valid until done is called or the call is cancelled, or
 * NULL when done was already called synchronously: RLG_ERROR when the
 * connection is in back-off or cannot be started, when n is 0 or above
 * RLG_LIMITS_MAX, a key is longer than RLG_KEY_MAX, a per or window_ms is 0.
 * done is called exactly once unless the call is cancelled or the rlg_t
 * destroyed first.
 */
rlg_call_t *rlg_check(rlg_t *g, const proxy_rl_global_t *gl, const char *const *keys, const uint64_t *per,
                      const uint64_t *window_ms, size_t n, rlg_done_fn done, void *ctx);

/* The request went away: done will not be called. c must be a live handle from rlg_check; NULL is a no-op. */
void rlg_cancel(rlg_call_t *c);

#endif
