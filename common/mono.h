/*
 * mono: timed waits on CLOCK_MONOTONIC, which a changed wall clock cannot
 * stretch or cut short. Every thread here that sleeps on a condition
 * variable until a time (renewals, fetches, flushes, samplers) makes the
 * variable with mono_cond_init and waits with mono_timespec.
 */
#ifndef OUTRIDER_MONO_H
#define OUTRIDER_MONO_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* pthread_cond_init with the variable's clock set to CLOCK_MONOTONIC. */
void mono_cond_init(pthread_cond_t *c);

/* CLOCK_MONOTONIC now, in milliseconds. */
uint64_t mono_now_ms(void);

/* The absolute time at ms (CLOCK_MONOTONIC milliseconds) for pthread_cond_timedwait on such a variable. */
static inline struct timespec mono_timespec(uint64_t ms)
{
    return (struct timespec){(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
}

#endif
