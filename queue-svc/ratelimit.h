/* ratelimit.h -- the rate limits Telegram enforces, as token buckets, and the backoff for
 * retries.
 *
 * Telegram's flood limits (Bot FAQ): about 30 messages/s overall, about 1 message/s per chat
 * with short bursts allowed, at most 20 messages/min per group. A bucket holds up to `burst`
 * tokens and refills `n` tokens every `period_ms`; sending takes one token. Over any window of
 * T ms a bucket lets through at most burst + n*T/period_ms messages, so a strict limit wants a
 * small burst.
 *
 * Arithmetic is exact integers: a bucket's level is counted in units of 1/period_ms token
 * scaled by n (1 token = period_ms units, refill = n units per ms), so "ready at t" really means
 * a take at t succeeds. Time is passed in (ms) so tests drive it. Not thread-safe. */
#ifndef QUEUE_RATELIMIT_H
#define QUEUE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rate {
    int64_t n;         /* tokens per period; 0 = unlimited */
    int64_t period_ms; /* e.g. 1000 for "/s", 60000 for "/min" */
    int64_t burst;     /* bucket capacity in tokens (>= 1) */
};

struct bucket {
    int64_t level; /* units: one token = period_ms units */
    int64_t at_ms; /* time of the last refill */
};

/* Parses "30/s", "20/min", "1/s", "100/h", "500/ms" or "0" (unlimited) into r->n and
 * r->period_ms (burst is left alone). false with why filled on anything else. */
bool rate_parse(const char *s, struct rate *r, char *why, size_t cap);
/* "30/s" style text of a rate (for logs and docs). */
void rate_format(const struct rate *r, char *out, size_t cap);
static inline bool rate_unlimited(const struct rate *r)
{
    return r->n == 0;
}

/* A full bucket at now. */
void bucket_init(struct bucket *b, const struct rate *r, int64_t now);
/* Takes a token if one is there at now. Unlimited rates always succeed. */
bool bucket_take(struct bucket *b, const struct rate *r, int64_t now);
/* The earliest time >= now at which bucket_take succeeds. */
int64_t bucket_ready_at(const struct bucket *b, const struct rate *r, int64_t now);
/* The earliest time >= now at which the bucket is full again (an idle lane whose bucket is full
 * can be forgotten without letting it burst more than it should). */
int64_t bucket_full_at(const struct bucket *b, const struct rate *r, int64_t now);

/* Exponential backoff with "equal jitter" for the attempt-th retry (1-based): the delay is
 * d/2 + rand[0, d/2] with d = min(max_ms, base_ms * 2^(attempt-1)), so retries of many jobs
 * spread out yet never come back sooner than half the backoff. rng is an xorshift state. */
int64_t backoff_ms(uint32_t attempt, int64_t base_ms, int64_t max_ms, uint64_t *rng);
uint64_t rng_next(uint64_t *rng);

#endif
