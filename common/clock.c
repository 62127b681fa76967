/* clock.c -- real and fake clocks. */
#include "clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic bool g_fake;
static _Atomic int64_t g_fake_wall, g_fake_mono;

void clock_set_fake(bool on, int64_t wall_ms)
{
    atomic_store(&g_fake_wall, wall_ms);
    atomic_store(&g_fake_mono, 1000000);
    atomic_store(&g_fake, on);
}

void clock_advance_ms(int64_t ms)
{
    atomic_fetch_add(&g_fake_wall, ms);
    atomic_fetch_add(&g_fake_mono, ms);
}

int64_t clock_now_ms(void)
{
    if (atomic_load_explicit(&g_fake, memory_order_relaxed))
        return atomic_load(&g_fake_wall);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
    if (atomic_load_explicit(&g_fake, memory_order_relaxed))
        return atomic_load(&g_fake_mono);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_us(void)
{
    if (atomic_load_explicit(&g_fake, memory_order_relaxed))
        return atomic_load(&g_fake_mono) * 1000;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
