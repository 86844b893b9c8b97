/*
 * filter: what the exchange's filters share; see filter.h.
 */
#include "filter.h"

#include "tracectx.h"

bool filter_chance(filter_exchange_t *x, double percent)
{
    if (percent >= 100)
        return true;
    if (percent <= 0)
        return false;
    return (double)(tracectx_rand(x->rng) % 1000000) < percent * 10000.0;
}
