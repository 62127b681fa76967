/* breaker.c -- consecutive-failure circuit breaker with a doubling open period. */
#include "breaker.h"
#include "clock.h"

void breaker_init(struct breaker *b, int threshold, int64_t open_ms, int64_t open_max_ms)
{
    pthread_mutex_init(&b->mu, NULL);
    b->threshold = threshold > 0 ? threshold : 1;
    b->open_ms = open_ms > 0 ? open_ms : 1;
    b->open_max_ms = open_max_ms >= b->open_ms ? open_max_ms : b->open_ms;
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->cur_open_ms = b->open_ms;
    b->opened_at = 0;
    b->probing = false;
    b->opens = 0;
}

void breaker_destroy(struct breaker *b)
{
    pthread_mutex_destroy(&b->mu);
}

/* Under mu: an open breaker whose period ran out becomes half-open. */
static void tick(struct breaker *b)
{
    if (b->state == BREAKER_OPEN && clock_mono_ms() - b->opened_at >= b->cur_open_ms) {
        b->state = BREAKER_HALF_OPEN;
        b->probing = false;
    }
}

static void trip(struct breaker *b, bool from_probe)
{
    if (from_probe) {
        b->cur_open_ms *= 2;
        if (b->cur_open_ms > b->open_max_ms)
            b->cur_open_ms = b->open_max_ms;
    } else {
        b->cur_open_ms = b->open_ms;
    }
    b->state = BREAKER_OPEN;
    b->opened_at = clock_mono_ms();
    b->probing = false;
    b->failures = 0;
    b->opens++;
}

bool breaker_allow(struct breaker *b)
{
    bool ok;
    pthread_mutex_lock(&b->mu);
    tick(b);
    switch (b->state) {
    case BREAKER_CLOSED:
        ok = true;
        break;
    case BREAKER_HALF_OPEN:
        ok = !b->probing;
        b->probing = true;
        break;
    default:
        ok = false;
        break;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void breaker_success(struct breaker *b)
{
    pthread_mutex_lock(&b->mu);
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->probing = false;
    b->cur_open_ms = b->open_ms;
    pthread_mutex_unlock(&b->mu);
}

void breaker_failure(struct breaker *b)
{
    pthread_mutex_lock(&b->mu);
    tick(b);
    if (b->state == BREAKER_HALF_OPEN)
        trip(b, true);
    else if (b->state == BREAKER_CLOSED && ++b->failures >= b->threshold)
        trip(b, false);
    pthread_mutex_unlock(&b->mu);
}

enum breaker_state breaker_state(struct breaker *b)
{
    pthread_mutex_lock(&b->mu);
    tick(b);
    enum breaker_state s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    default:
        return "half-open";
    }
}

uint64_t breaker_opens(struct breaker *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->opens;
    pthread_mutex_unlock(&b->mu);
    return n;
}
