/*
 * loadgen: what the load tools under tests/tools share (span_load,
 * metrics_load): a plain HTTP/1.1 client over keep-alive loopback
 * connections, a pool of sender threads posting pre-built bodies, the
 * clock, a seeded mixer for deterministic values, and a process's CPU time.
 *
 * These are benchmark tools, not the product: on a broken connection or a
 * failed syscall they print the reason and exit(1) rather than recover.
 */
#ifndef OUTRIDER_LOADGEN_H
#define OUTRIDER_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct loadgen_target {
    char host[64]; /* IPv4 literal */
    int port;
    char path[512]; /* "/" when the URL has none */
} loadgen_target_t;

/* Seconds on the monotonic clock. */
double loadgen_now_s(void);

/* splitmix64's finaliser: the same x always gives the same well-mixed value. */
uint64_t loadgen_mix(uint64_t x);

/* Split "http://IPV4:PORT[/path]"; 0, or -1 for any other shape. */
int loadgen_parse_url(const char *url, loadgen_target_t *t);

/* A connected TCP socket (TCP_NODELAY) to the target; exits on failure. */
int loadgen_connect(const loadgen_target_t *t);

/* Write all n bytes; exits on failure. */
void loadgen_write_all(int fd, const char *p, size_t n);

/* Read one Content-Length-framed response from fd; returns its status code. `in` carries bytes read past it
 * to the next call (keep one per connection); the body is copied into `body` unless it is NULL. Exits when the
 * peer closes first. */
int loadgen_read_response(int fd, buf_t *in, buf_t *body);

/* The process's CPU time in seconds (utime+stime from /proc/PID/stat), and utime alone in *user; 0 when it
 * cannot be read. */
double loadgen_cpu_seconds(int pid, double *user);

/* Checks a 2xx response body; 0 to accept it, -1 to count the request as failed. Called from sender threads
 * at once: it must be thread-safe. */
typedef int (*loadgen_check_fn)(void *ctx, const buf_t *body);

typedef struct loadgen_post {
    const loadgen_target_t *target;
    const char *content_type;
    const char *content_encoding; /* header value, or NULL for none */
    const buf_t *bodies;          /* n pre-built bodies, not modified */
    int n;
    int connections;        /* threads, one keep-alive connection each; connection i posts bodies i, i+C, ... */
    loadgen_check_fn check; /* NULL, or called for every 2xx response */
    void *check_ctx;
} loadgen_post_t;

/* POST every body once and wait for all the responses; returns how many failed (non-2xx, or refused by
 * check). The first three non-2xx answers of each connection are printed to stderr with the start of their
 * body. */
int loadgen_post_all(const loadgen_post_t *p);

#endif
