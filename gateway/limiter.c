/* limiter.c -- token bucket + in-flight cap with a bounded wait. */
#include "limiter.h"
#include "clock.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct limiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double rate, tokens;
    int burst, max_inflight, inflight;
    int64_t max_wait_ms, last_ms;
};

struct limiter *limiter_new(double rate_per_s, int burst, int max_inflight, int64_t max_wait_ms)
{
    struct limiter *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->rate = rate_per_s > 0 ? rate_per_s : 1;
    l->burst = burst > 0 ? burst : 1;
    l->tokens = l->burst;
    l->max_inflight = max_inflight > 0 ? max_inflight : 1;
    l->max_wait_ms = max_wait_ms;
    l->last_ms = clock_mono_ms();
    return l;
}

void limiter_free(struct limiter *l)
{
    if (!l)
        return;
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void refill(struct limiter *l)
{
    int64_t now = clock_mono_ms();
    l->tokens += (double)(now - l->last_ms) * l->rate / 1000.0;
    if (l->tokens > l->burst)
        l->tokens = l->burst;
    l->last_ms = now;
}

bool limiter_acquire(struct limiter *l)
{
    int64_t deadline = clock_mono_ms() + l->max_wait_ms;
    bool ok = false;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        refill(l);
        if (l->tokens >= 1 && l->inflight < l->max_inflight) {
            l->tokens -= 1;
            l->inflight++;
            ok = true;
            break;
        }
        int64_t now = clock_mono_ms();
        if (now >= deadline)
            break;
        /* Sleep until a token is due (or a slot frees), bounded by the deadline. */
        int64_t wait =
            l->tokens >= 1 ? deadline - now : (int64_t)((1 - l->tokens) * 1000.0 / l->rate) + 1;
        if (wait > deadline - now)
            wait = deadline - now;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void limiter_release(struct limiter *l)
{
    pthread_mutex_lock(&l->mu);
    l->inflight--;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}
