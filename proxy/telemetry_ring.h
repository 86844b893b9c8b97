/*
 * telemetry_ring: a single-producer single-consumer byte ring of
 * variable-size records, the hand-off of spans and access log records from
 * a worker to the telemetry exporter.
 *
 * Design. The ring is one fixed block of a power-of-two capacity,
 * allocated at creation; nothing is allocated, locked or called into the
 * kernel afterwards. head (where the producer writes next) and tail (where
 * the consumer reads next) only grow; each is written by one side and read
 * by the other with acquire/release ordering, so a record's bytes are
 * visible to the consumer before head passes them. A record is a 4-byte
 * size, then its bytes, rounded up to 8 bytes; it is never split: when it
 * does not fit before the end of the block, the rest of the block is
 * marked as padding and the record starts at offset 0. A record that does
 * not fit at all (the consumer is behind) is refused: the producer drops it
 * and counts it, it never waits.
 *
 * Use: the producer calls tele_ring_reserve, writes the record into the
 * returned space and calls tele_ring_commit; the consumer calls
 * tele_ring_peek until it returns NULL, reading each record in place, and
 * tele_ring_release to hand the space back (after each record or after a
 * run of them). Exactly one thread produces and one consumes at a time.
 */
#ifndef OUTRIDER_PROXY_TELEMETRY_RING_H
#define OUTRIDER_PROXY_TELEMETRY_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tele_ring tele_ring_t;

#define TELE_RING_MIN 4096u /* bytes; smaller capacities are raised to this */

/*
 * Create a ring of at least capacity bytes (rounded up to a power of two,
 * at least TELE_RING_MIN). Aborts when out of memory. Free with
 * tele_ring_destroy (NULL is a no-op).
 */
tele_ring_t *tele_ring_create(size_t capacity);
void tele_ring_destroy(tele_ring_t *r);

/* Capacity in bytes. */
size_t tele_ring_capacity(const tele_ring_t *r);

/* The largest record size tele_ring_reserve can ever accept (a quarter of the capacity). */
size_t tele_ring_max_record(const tele_ring_t *r);

/*
 * Producer: space for a record of size bytes (1..tele_ring_max_record),
 * contiguous and 8-byte aligned, or NULL when the ring has no room for it
 * now (or size is out of range). The record becomes visible at
 * tele_ring_commit; a reservation not committed is simply overwritten by
 * the next one.
 */
void *tele_ring_reserve(tele_ring_t *r, size_t size);
void tele_ring_commit(tele_ring_t *r);

/*
 * Consumer: the oldest committed record not yet peeked (its size in
 * *size), or NULL when there is none. The bytes stay valid until
 * tele_ring_release.
 */
const void *tele_ring_peek(tele_ring_t *r, size_t *size);

/* Consumer: give the space of every record peeked so far back to the producer. */
void tele_ring_release(tele_ring_t *r);

/* Bytes in use (committed and not released, with padding); either side, approximate while the other runs. */
size_t tele_ring_used(const tele_ring_t *r);

#endif
