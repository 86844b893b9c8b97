/*
 * filter_fault: VirtualService fault delay and abort; see filter_fault.h.
 */
#include "filter_fault.h"

#include "telemetry.h"

static void abort_reply(filter_exchange_t *x)
{
    filter_reply_t r = {.status = x->d->route->fault.abort_status, .flags = TELE_RF_FI, .text = "fault filter abort\n"};
    x->reply(x, &r);
}

static void on_delay(uv_timer_t *t)
{
    filter_fault_t *st = t->data;
    filter_exchange_t *x = st->x;
    st->waiting = false;
    t->data = st->timer_data;
    if (x->over(x))
        return;
    if (st->abort)
        abort_reply(x);
    else
        x->resume(x);
}

enum filter_result filter_fault(filter_exchange_t *x, filter_fault_t *st, uv_timer_t *timer, uint32_t *flags)
{
    st->x = x;
    st->waiting = false;
    st->abort = false;
    const proxy_http_route_t *route = x->d->route;
    if (route == NULL || (!route->fault.has_delay && !route->fault.has_abort))
        return FILTER_CONTINUE;
    const proxy_fault_t *f = &route->fault;
    st->abort = f->has_abort && filter_chance(x, f->abort_percent);
    if (f->has_delay && filter_chance(x, f->delay_percent)) {
        /* the delay holds this request only: a timer, the worker goes on */
        *flags |= TELE_RF_DI;
        st->timer = timer;
        st->timer_data = timer->data;
        st->waiting = true;
        timer->data = st;
        uv_timer_start(timer, on_delay, f->delay_ms ? f->delay_ms : 1, 0);
        return FILTER_WAIT;
    }
    if (st->abort) {
        abort_reply(x);
        return FILTER_REPLIED;
    }
    return FILTER_CONTINUE;
}

void filter_fault_cancel(filter_fault_t *st)
{
    if (st->waiting) {
        uv_timer_stop(st->timer);
        st->timer->data = st->timer_data;
    }
    st->waiting = false;
}
