/*
 * transport: the byte stream under a proxy connection, plain TCP or TLS
 * (OpenSSL 3), with one interface for both and for both sides of the proxy
 * (downstream connections a listener accepted, upstream connections we
 * connected).
 *
 * Design
 *
 * A transport_t is embedded in its owner (the struct layout is public only
 * for that: callers touch `tcp` for accept, connect, getpeername, fileno and
 * nodelay, never for reading, writing or closing). transport_init() makes
 * the uv_tcp_t; the caller accepts or connects on it; then
 * transport_start() (plain) or transport_start_tls() (TLS, server or client
 * role) begins the stream; transport_close() ends it, and its callback says
 * when the memory may go. The transport belongs to one loop and is touched
 * from that loop's thread only.
 *
 * Plain is a pass-through: reads land straight in the buffer the handler's
 * on_alloc gives (the caller's own input buffer, no copy), a write goes out
 * with uv_try_write from the caller's bytes and only what the socket did not
 * take is copied into one heap block with its uv_write_t (as upstream.c and
 * conn.c do today). No TLS state is allocated and no timer or extra
 * handle exists, so a plain connection costs what the bare uv_tcp_t did.
 *
 * TLS keeps, next to an SSL object, a BIO pair: the SSL writes records into
 * one ring (TRANSPORT_TLS_OUT_BUF) and reads records from the other
 * (TRANSPORT_TLS_IN_BUF); the transport is the network end of both. A record
 * flows
 *
 *   socket --uv read--> in ring (libuv reads straight into the ring's free
 *   space: BIO_nwrite0) --SSL_read--> handler's buffer (on_alloc) --> on_read
 *
 *   transport_write --SSL_write--> out ring --uv_try_write / uv_write (from
 *   the ring itself: BIO_nread0, consumed when the write completes)--> socket
 *
 * so the only copies are the cipher's own. Plaintext SSL cannot take yet
 * (the handshake is not done, or the out ring is full because the socket
 * is) is copied to a pending buffer and fed to SSL as the ring drains.
 *
 * TLS states: HANDSHAKE (the transport reads the socket by itself; writes
 * are queued; plaintext waits for transport_read_start) -> OPEN (on_open(0)
 * was called) -> EOF (on_close(UV_EOF) after close_notify or a TCP FIN;
 * writes still allowed: half-close) -> CLOSING (transport_close; no more
 * callbacks). A failure (handshake: on_open(<0); afterwards: on_close(<0))
 * makes it DEAD: writes return -1, nothing more is read.
 * transport_error_reason() names a handshake failure with a stable string
 * for access logs and metric labels; the OpenSSL text is in
 * transport_error_detail() for logs. Nothing ever prints key material.
 *
 * Back-pressure. Reading is off until transport_read_start() and stops at
 * transport_read_stop(), also from inside on_read (no further on_read until
 * restarted; TLS plaintext already decrypted or ciphertext already read
 * stays buffered, bounded by TRANSPORT_TLS_IN_BUF and one record, and is
 * delivered from the loop after the restart). transport_write_queued()
 * counts bytes accepted but not yet handed to the kernel; a caller stops
 * feeding above TRANSPORT_WRITE_HIGH and resumes at on_drain, which fires
 * once the queue falls below TRANSPORT_WRITE_LOW after having reached it.
 * A write that would take the queue past TRANSPORT_WRITE_MAX fails.
 *
 * Callbacks' contract. Callbacks come from the loop only, never from inside
 * a transport_* call the caller made, so a caller may call any transport
 * function (including transport_close) from any callback. None comes after
 * transport_close(). on_read's bytes live until the callback returns.
 *
 * Certificates and rotation. A tls_ctx_t (certificate chain, key, trusted
 * CAs, versions, ciphers, ALPN, ticket keys) is immutable and refcounted;
 * every TLS transport holds a reference until it is closed. To rotate,
 * build a new ctx and hand it to each worker (as runtimes are handed over,
 * worker_set_runtime): the worker swaps its pointer and unrefs the old one.
 * New connections use the new ctx; open ones keep the old until they close.
 * Resumption: servers issue session tickets (keys are per ctx, so a rotation
 * also rotates them); clients keep the last session per destination key in
 * a per-worker tls_session_cache_t and offer it on the next connection. A
 * connection ended by transport_close keeps its session resumable (no
 * close_notify is needed); a failed one drops it. A resumed handshake skips
 * certificate verification: the expected identities are checked anyway.
 */
#ifndef OUTRIDER_PROXY_TRANSPORT_H
#define OUTRIDER_PROXY_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- limits ---- */

#define TRANSPORT_WRITE_HIGH (256 * 1024)       /* queued bytes above which a writer should stop feeding */
#define TRANSPORT_WRITE_LOW (64 * 1024)         /* queued bytes below which on_drain fires */
#define TRANSPORT_WRITE_MAX (16 * 1024 * 1024)  /* queued bytes past which transport_write fails */
#define TRANSPORT_READ_CHUNK (64 * 1024)        /* read buffer when the handler has no on_alloc */
#define TRANSPORT_TLS_IN_BUF (16 * 1024)        /* ciphertext read from the socket and not yet decrypted */
#define TRANSPORT_TLS_OUT_BUF (32 * 1024)       /* ciphertext made and not yet sent */
#define TRANSPORT_TLS_HANDSHAKE_MAX (64 * 1024) /* bytes a peer may send before its handshake completes */
#define TRANSPORT_TLS_PEER_ID_MAX 2048          /* bytes of a URI SAN (SPIFFE's bound on an ID) */
#define TRANSPORT_TLS_VERIFY_DEPTH 8            /* certificates in a peer's chain */
#define TRANSPORT_TLS_ALPN_MAX 256              /* bytes of an ALPN list on the wire */
#define TLS_SESSION_CACHE_DEFAULT 256           /* destinations a session cache remembers */

/* ---- handshake failure reasons (transport_error_reason); stable: used as metric labels ---- */

#define TRANSPORT_R_UNKNOWN_CA "unknown_ca"                   /* the chain does not lead to a trusted CA */
#define TRANSPORT_R_EXPIRED "expired"                         /* a certificate's notAfter has passed */
#define TRANSPORT_R_NOT_YET_VALID "not_yet_valid"             /* a certificate's notBefore is ahead */
#define TRANSPORT_R_SAN_MISMATCH "san_mismatch"               /* the peer's URI SAN is not an expected identity */
#define TRANSPORT_R_NO_PEER_CERTIFICATE "no_peer_certificate" /* mutual TLS and the peer sent none */
#define TRANSPORT_R_BAD_CERTIFICATE "bad_certificate"         /* any other certificate problem */
#define TRANSPORT_R_PROTOCOL_VERSION "protocol_version"       /* no TLS version in common */
#define TRANSPORT_R_NO_SHARED_CIPHER "no_shared_cipher"
#define TRANSPORT_R_NOT_TLS "not_tls"                         /* the peer spoke plain HTTP to a TLS port */
#define TRANSPORT_R_HANDSHAKE_TOO_LARGE "handshake_too_large" /* past TRANSPORT_TLS_HANDSHAKE_MAX */
#define TRANSPORT_R_HANDSHAKE_TIMEOUT "handshake_timeout"     /* transport_handshake_timeout() */
#define TRANSPORT_R_CONNECTION_CLOSED "connection_closed"     /* the peer closed or reset mid-handshake */
#define TRANSPORT_R_OTHER "other"

/* ---- TLS contexts ---- */

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_session_cache tls_session_cache_t;

/*
 * What a tls_ctx_t is built from. Each of certificate, key and CA bundle
 * comes from a PEM file or an in-memory NUL-terminated PEM string, not
 * both. The strings are read during tls_ctx_create only (the caller may
 * wipe them afterwards). The same ctx serves both roles.
 */
typedef struct tls_ctx_opts {
    const char *cert_file, *cert_pem; /* our certificate, then its chain; optional for a client */
    const char *key_file, *key_pem;   /* its private key (unencrypted PEM); required with a certificate */
    const char *ca_file, *ca_pem;     /* trusted CAs; required with verify_peer */
    /*
     * Server: request a client certificate and refuse the handshake without
     * a valid one (mutual TLS). Client: refuse a server certificate that does
     * not verify against the CAs. Without it the handshake does not depend on
     * verification (transport_peer_id() is still set only for a chain that
     * verified).
     */
    bool verify_peer;
    /* ALPN ids (e.g. "h2", "http/1.1"). Client: offered in this order. Server: picked in this order of preference. */
    const char *const *alpn;
    size_t n_alpn;
    int min_version, max_version; /* 12 (TLS 1.2) or 13 (TLS 1.3); 0 = 12 and 13 */
    bool no_tickets;              /* server: issue no session tickets (no resumption) */
} tls_ctx_opts_t;

/*
 * Build a ctx: TLS 1.2 and 1.3 only; TLS 1.2 with ECDHE and AES-GCM or
 * ChaCha20-Poly1305 only; groups X25519, P-256, P-384; no renegotiation,
 * no compression. Returns a ctx with one reference, or NULL with a reason
 * in err (file names and OpenSSL's text, never key material).
 */
tls_ctx_t *tls_ctx_create(const tls_ctx_opts_t *o, char *err, size_t errlen);

/* Take one more reference (any thread). */
void tls_ctx_ref(tls_ctx_t *c);

/* Drop a reference (any thread); the last one frees the ctx. NULL is a no-op. */
void tls_ctx_unref(tls_ctx_t *c);

/*
 * A client-side cache of the last resumable session per destination key,
 * for one worker (not thread-safe). max_entries 0 = TLS_SESSION_CACHE_DEFAULT;
 * past it the least recently used entry goes. A session is offered only to
 * connections made with the same tls_ctx_t it came from (so a rotated
 * certificate or CA never resumes an old session). Aborts on out of memory.
 */
tls_session_cache_t *tls_session_cache_create(size_t max_entries);

/* Free the cache and its sessions; the transports using it must be closed first. NULL is a no-op. */
void tls_session_cache_destroy(tls_session_cache_t *c);

/* Entries the cache holds. */
size_t tls_session_cache_size(const tls_session_cache_t *c);

/* ---- transports ---- */

typedef struct transport transport_t;
typedef struct transport_tls transport_tls_t;

/*
 * Events; ctx is the pointer given at start (or transport_set_handler).
 * on_open (TLS only): the handshake completed (0) or failed (a negative
 *   libuv code: UV_EPROTO for a TLS failure, UV_EOF or a socket error when
 *   the connection ended first; transport_error_reason says which). Called
 *   at most once, and not at all after transport_handshake_timeout(). After
 *   a failure the transport is dead: close it.
 * on_alloc (optional): where the next bytes read go. Return at least one
 *   byte; the buffer stays the caller's (it may be handed back without an
 *   on_read). Without on_alloc the bytes are in a per-thread buffer.
 * on_read (required): len > 0 bytes at data, which is buf->base of the last
 *   on_alloc; valid during the call only.
 * on_close: no more bytes will come: UV_EOF (the peer closed its side; the
 *   transport may still write, and should be closed when done) or an error
 *   (the transport is dead). Called at most once.
 * on_drain (optional): the write queue fell below TRANSPORT_WRITE_LOW.
 */
typedef struct transport_handler {
    void (*on_open)(void *ctx, int status);
    void (*on_alloc)(void *ctx, size_t suggested, uv_buf_t *buf);
    void (*on_read)(void *ctx, char *data, size_t len);
    void (*on_close)(void *ctx, int status);
    void (*on_drain)(void *ctx);
} transport_handler_t;

/* Called once the socket (and the TLS state) is released: the memory holding t may go. */
typedef void (*transport_close_cb)(transport_t *t);

/* The layout is public so that owners embed it; fields other than tcp are private. */
struct transport {
    uv_tcp_t tcp; /* tcp.data belongs to the transport */
    const transport_handler_t *h;
    void *ctx;
    transport_tls_t *tls; /* NULL for plain */
    size_t queued;        /* plain: bytes in uv_write requests */
    unsigned flags;
    int open_handles;
    transport_close_cb close_cb;
    uv_shutdown_t shutdown_req;
};

/* Initialise t's socket handle on loop (uv_tcp_init). Returns 0 or a libuv error (then t needs no close). */
int transport_init(uv_loop_t *loop, transport_t *t);

/* Begin a plain stream on the connected t->tcp. Reading starts with transport_read_start. Returns 0. */
int transport_start(transport_t *t, const transport_handler_t *h, void *ctx);

enum transport_role { TRANSPORT_SERVER, TRANSPORT_CLIENT };

/* Per-connection TLS settings; zero fields are unused. Everything is copied. */
typedef struct transport_tls_opts {
    enum transport_role role;
    /* The peer must present one of these URI SANs, else the handshake fails with san_mismatch. An id ending in
     * '/' stands for every id it begins: "spiffe://cluster.local/" accepts any workload of that trust domain. */
    const char *const *expected_ids;
    size_t n_expected_ids;
    const char *sni; /* client: server name sent (Istio sends outbound_.PORT_._.HOST) */
    /* client: the server certificate must name this host (a DNS SAN, or an IP SAN for an address); a mismatch is
     * bad_certificate. For endpoints outside the mesh (an OTLP collector); sidecars check expected_ids instead. */
    const char *verify_host;
    /* client: ALPN ids offered instead of the ctx's */
    const char *const *alpn;
    size_t n_alpn;
    /* client: resume the session kept under session_key and keep the new one there */
    tls_session_cache_t *session_cache;
    const char *session_key;
    /* server: bytes already read from the socket (a sniffed ClientHello); at most TRANSPORT_TLS_IN_BUF */
    const void *initial;
    size_t initial_len;
} transport_tls_opts_t;

/*
 * Begin TLS on the connected t->tcp with ctx (referenced until close). The
 * handshake starts from the loop; on_open reports its end. Writes made
 * before are queued. May follow transport_start (PERMISSIVE: plain reads
 * sniffed a ClientHello, passed as o->initial; also from inside on_read).
 * Returns 0, or a negative libuv code when the TLS state cannot be made
 * (then close t).
 */
int transport_start_tls(transport_t *t, tls_ctx_t *ctx, const transport_tls_opts_t *o, const transport_handler_t *h,
                        void *ctx_arg);

/* Send events to h and ctx from now on (e.g. a pooled upstream connection changing hands). */
void transport_set_handler(transport_t *t, const transport_handler_t *h, void *ctx);

/*
 * Also call on_drain each time bytes that could not be written at once
 * have all gone to the kernel (the queue is empty again), for an owner
 * that closes after its last byte. Writes the socket takes at once never
 * queue, so they cause no call.
 */
void transport_drain_when_empty(transport_t *t, bool on);

/* Deliver bytes (on_read) / stop delivering them. Idempotent. */
void transport_read_start(transport_t *t);
void transport_read_stop(transport_t *t);

/*
 * Queue len bytes (copied when they cannot go at once; the caller may
 * reuse data on return). Returns 0, or -1 when the transport is dead, shut
 * down, or the queue would pass TRANSPORT_WRITE_MAX.
 */
int transport_write(transport_t *t, const void *data, size_t len);

/* Bytes accepted by transport_write and not yet handed to the kernel (TLS: plaintext and ciphertext). */
size_t transport_tls_write_queued(const transport_t *t);
static inline size_t transport_write_queued(const transport_t *t)
{
    return t->tls == NULL ? t->queued : transport_tls_write_queued(t); /* inline: asked several times a request */
}

/* Bytes read and not yet delivered: TLS ciphertext in the in ring and plaintext SSL holds; 0 for plain. */
size_t transport_read_buffered(const transport_t *t);

/*
 * Half-close: after the queued bytes, send TLS close_notify (TLS) and a FIN.
 * Reading continues. Later writes fail. Returns 0 or a negative libuv code.
 */
int transport_shutdown(transport_t *t);

/*
 * Close now (queued bytes are dropped); no callback of the handler comes
 * after this. cb (optional) runs from the loop when t may be freed.
 * Idempotent; also for a transport that was initialised but never started.
 */
void transport_close(transport_t *t, transport_close_cb cb);

/*
 * The caller's handshake timer fired: the handshake is abandoned with
 * reason handshake_timeout, the transport is dead and on_open will not be
 * called; close it next. No-op unless a TLS handshake is in progress.
 */
void transport_handshake_timeout(transport_t *t);

/* ---- what a TLS handshake established (NULL / false for plain or before on_open) ---- */

bool transport_is_tls(const transport_t *t);

/* The verified peer certificate's URI SAN (spiffe://...), or NULL; valid until close. */
const char *transport_peer_id(const transport_t *t);

/*
 * TLS: free OpenSSL's record buffers (about 34 KB) unless the stream moved
 * bytes since the previous call; a no-op for plain streams. Called on every
 * connection once per sweep period (worker.c), so that an idle connection
 * holds none while a busy one keeps them rather than allocating two for
 * every record (SSL_MODE_RELEASE_BUFFERS's cost, about 1.9k instructions
 * a proxied request on each side).
 */
bool transport_trim(transport_t *t); /* true when it freed the buffers */

/*
 * The destination a connection was sent to before an iptables REDIRECT
 * brought it to this listener (SO_ORIGINAL_DST, IPv4 and IPv6) into *out.
 * 1 when it was redirected; 0 when it came to the listener's own address
 * (or the kernel keeps no such record); -1 on an error.
 */
int transport_original_dst(const transport_t *t, struct sockaddr_storage *out);

/* The negotiated ALPN protocol ("h2"), or NULL when none; valid until close. */
const char *transport_alpn(const transport_t *t);

/* The server name the client sent (server role), or NULL. */
const char *transport_sni(const transport_t *t);

/* Whether the handshake resumed an earlier session. */
bool transport_resumed(const transport_t *t);

/* "TLSv1.3" / "TLSv1.2" and the cipher's OpenSSL name ("TLS_AES_128_GCM_SHA256"); static strings. */
const char *transport_tls_version(const transport_t *t);
const char *transport_cipher(const transport_t *t);

/*
 * A handshake failure's reason (TRANSPORT_R_*), or NULL when there was none.
 * Also set when a TLS 1.3 client's on_close(UV_EPROTO) carries the server's
 * refusal of its certificate (which arrives after the client's on_open(0)).
 */
const char *transport_error_reason(const transport_t *t);

/* Whether the peer rejected us (its alert) rather than our own checks rejecting it. */
bool transport_error_remote(const transport_t *t);

/* OpenSSL's text for a failure, for logs ("" when none); valid until close. */
const char *transport_error_detail(const transport_t *t);

/* ---- handshake counters (the proxy's /stats/prometheus) ---- */

enum tls_stats_side { TLS_STATS_INBOUND, TLS_STATS_OUTBOUND };
#define TLS_STATS_RESULTS 14 /* "ok" and the 13 TRANSPORT_R_* reasons */

/* Handshakes by side and result, shared by every worker (relaxed atomic adds). */
typedef struct tls_stats {
    _Atomic unsigned long long handshakes[2][TLS_STATS_RESULTS];
    _Atomic unsigned long long resumed[2];           /* of the "ok" ones */
    _Atomic unsigned long long plaintext_permissive; /* inbound connections PERMISSIVE took in plain text */
} tls_stats_t;

/* Result names by index: "ok", then the TRANSPORT_R_* strings. */
extern const char *const tls_stats_results[TLS_STATS_RESULTS];

/* Count t's handshake: status 0 is "ok" (and resumed when it was); else transport_error_reason's. NULL s: no-op. */
void tls_stats_count(tls_stats_t *s, enum tls_stats_side side, const transport_t *t, int status);

/* ---- sniffing (PERMISSIVE mode) ---- */

enum transport_sniff { TRANSPORT_SNIFF_NEED_MORE, TRANSPORT_SNIFF_PLAIN, TRANSPORT_SNIFF_TLS };

/*
 * Classify the first len bytes of a connection: TLS when they begin a TLS
 * handshake record holding a ClientHello, PLAIN when they cannot, NEED_MORE
 * when too few bytes arrived to tell (at most 6 are needed).
 */
enum transport_sniff transport_sniff(const void *data, size_t len);

#endif
