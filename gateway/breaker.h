/* breaker.h -- a circuit breaker for one dependency (or one track of it: stable or canary).
 *
 * closed: calls go through; `threshold` consecutive failures open it.
 * open: calls fail at once (no waiting on a dead service) for the open period, which doubles on
 *   each failed probe up to open_max_ms.
 * half-open: after the open period one probe call is let through at a time; success closes the
 *   breaker, failure opens it again.
 * Thread-safe (one mutex; calls are short). Time comes from clock_mono_ms() (fakeable). */
#ifndef ENGBOT_GW_BREAKER_H
#define ENGBOT_GW_BREAKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker {
    pthread_mutex_t mu;
    int threshold;
    int64_t open_ms, open_max_ms;
    /* state, under mu */
    enum breaker_state state;
    int failures;        /* consecutive, while closed */
    int64_t cur_open_ms; /* the current open period */
    int64_t opened_at;
    bool probing;   /* a half-open probe is in flight */
    uint64_t opens; /* times it opened (for metrics) */
};

void breaker_init(struct breaker *b, int threshold, int64_t open_ms, int64_t open_max_ms);
void breaker_destroy(struct breaker *b);
/* May a call go out now? In half-open this admits one probe; the caller must then report the
 * outcome with breaker_success/breaker_failure. */
bool breaker_allow(struct breaker *b);
void breaker_success(struct breaker *b);
void breaker_failure(struct breaker *b);
/* The state now (an open breaker past its period reports half-open). */
enum breaker_state breaker_state(struct breaker *b);
const char *breaker_state_name(enum breaker_state s);
uint64_t breaker_opens(struct breaker *b);

#endif
