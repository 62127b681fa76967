/* ratelimit.c -- token buckets and retry backoff (see ratelimit.h). */
#include "ratelimit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool rate_parse(const char *s, struct rate *r, char *why, size_t cap)
{
    const char *allowed = "a rate like 30/s, 20/min, 100/h, or 0 for unlimited";
    if (!s || !*s)
        goto bad;
    if (strcmp(s, "0") == 0) {
        r->n = 0;
        r->period_ms = 1000;
        return true;
    }
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || *end != '/' || n < 0 || n > 1000000)
        goto bad;
    const char *u = end + 1;
    int64_t period;
    if (strcmp(u, "ms") == 0)
        period = 1;
    else if (strcmp(u, "s") == 0 || strcmp(u, "sec") == 0)
        period = 1000;
    else if (strcmp(u, "m") == 0 || strcmp(u, "min") == 0)
        period = 60000;
    else if (strcmp(u, "h") == 0)
        period = 3600000;
    else
        goto bad;
    r->n = n;
    r->period_ms = period;
    return true;
bad:
    snprintf(why, cap, "%s", allowed);
    return false;
}

void rate_format(const struct rate *r, char *out, size_t cap)
{
    if (r->n == 0) {
        snprintf(out, cap, "unlimited");
        return;
    }
    const char *u = r->period_ms == 1         ? "ms"
                    : r->period_ms == 1000    ? "s"
                    : r->period_ms == 60000   ? "min"
                    : r->period_ms == 3600000 ? "h"
                                              : "?";
    snprintf(out, cap, "%" PRId64 "/%s (burst %" PRId64 ")", r->n, u, r->burst);
}

static int64_t capacity(const struct rate *r)
{
    return (r->burst > 0 ? r->burst : 1) * r->period_ms;
}

static void refill(struct bucket *b, const struct rate *r, int64_t now)
{
    if (now <= b->at_ms)
        return; /* time never runs backwards for a bucket */
    int64_t cap = capacity(r), elapsed = now - b->at_ms;
    /* elapsed * n could overflow after a long idle: anything past "full" is full. */
    if (elapsed >= (cap - b->level) / r->n + 1)
        b->level = cap;
    else
        b->level += elapsed * r->n;
    if (b->level > cap)
        b->level = cap;
    b->at_ms = now;
}

void bucket_init(struct bucket *b, const struct rate *r, int64_t now)
{
    b->level = r->n ? capacity(r) : 0;
    b->at_ms = now;
}

bool bucket_take(struct bucket *b, const struct rate *r, int64_t now)
{
    if (r->n == 0)
        return true;
    refill(b, r, now);
    if (b->level < r->period_ms)
        return false;
    b->level -= r->period_ms;
    return true;
}

static int64_t time_to_reach(const struct bucket *b, const struct rate *r, int64_t now,
                             int64_t target)
{
    struct bucket t = *b;
    refill(&t, r, now);
    if (t.level >= target)
        return now;
    int64_t need = target - t.level;
    return now + (need + r->n - 1) / r->n;
}

int64_t bucket_ready_at(const struct bucket *b, const struct rate *r, int64_t now)
{
    if (r->n == 0)
        return now;
    return time_to_reach(b, r, now, r->period_ms);
}

int64_t bucket_full_at(const struct bucket *b, const struct rate *r, int64_t now)
{
    if (r->n == 0)
        return now;
    return time_to_reach(b, r, now, capacity(r));
}

uint64_t rng_next(uint64_t *rng)
{
    uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return x;
}

int64_t backoff_ms(uint32_t attempt, int64_t base_ms, int64_t max_ms, uint64_t *rng)
{
    if (attempt < 1)
        attempt = 1;
    int64_t d = base_ms;
    for (uint32_t i = 1; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    if (d <= 1)
        return d;
    int64_t half = d / 2;
    return half + (int64_t)(rng_next(rng) % (uint64_t)(d - half + 1));
}
