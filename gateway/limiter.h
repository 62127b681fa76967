/* limiter.h -- the small in-process limiter for direct sends, used only while queue-svc is
 * unusable: a token bucket (rate per second, burst) plus a cap on sends in flight, with a
 * bounded wait. It is deliberately small: it keeps the bot answering at Telegram's pace during
 * an outage, it is not a second queue (nothing waits longer than max_wait_ms). Thread-safe. */
#ifndef ENGBOT_GW_LIMITER_H
#define ENGBOT_GW_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

struct limiter;
struct limiter *limiter_new(double rate_per_s, int burst, int max_inflight, int64_t max_wait_ms);
void limiter_free(struct limiter *l);
/* Waits for a token and a slot, at most max_wait_ms. Returns false when it gave up (the caller
 * drops the send and counts it). On true, call limiter_release after the send. */
bool limiter_acquire(struct limiter *l);
void limiter_release(struct limiter *l);

#endif
