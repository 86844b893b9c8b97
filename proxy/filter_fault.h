/*
 * filter_fault: VirtualService fault injection (the route's fault block)
 * as an exchange filter (filter.h). The abort is decided first (its
 * percentage), then the delay: a delayed request waits on the exchange's
 * timer (flag DI; the worker serves others meanwhile) and then goes on,
 * or is aborted; an abort is the route's httpStatus with flag FI and
 * Envoy's body "fault filter abort".
 */
#ifndef OUTRIDER_PROXY_FILTER_FAULT_H
#define OUTRIDER_PROXY_FILTER_FAULT_H

#include "filter.h"

/* The fault filter's state in one exchange. */
typedef struct filter_fault {
    filter_exchange_t *x;
    uv_timer_t *timer; /* the exchange's, initialised and idle; lent for the delay */
    void *timer_data;  /* its data pointer, given back when the delay ends or is cancelled */
    bool abort;        /* abort once the delay (if any) is over */
    bool waiting;
} filter_fault_t;

/*
 * Run the fault filter; timer is an idle timer the exchange lends for the
 * delay (its data pointer is restored when the delay ends or is
 * cancelled). *flags gets TELE_RF_DI for a delay.
 */
enum filter_result filter_fault(filter_exchange_t *x, filter_fault_t *st, uv_timer_t *timer, uint32_t *flags);

/* The exchange ended: stop the delay, if any. */
void filter_fault_cancel(filter_fault_t *st);

#endif
