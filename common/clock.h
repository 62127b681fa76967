/* clock.h -- time in milliseconds, with an injectable clock for tests (no sleeping for an hour
 * to test a one-hour threshold).
 *
 * Production code calls clock_now_ms()/clock_mono_ms(). Tests call clock_set_fake(true) and
 * clock_advance_ms() to move both clocks together. */
#ifndef ENGBOT_CLOCK_H
#define ENGBOT_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

int64_t clock_now_ms(void);  /* wall clock, Unix ms (for timestamps that are persisted) */
int64_t clock_mono_ms(void); /* monotonic ms (for intervals and deadlines in memory) */
int64_t clock_mono_us(void);

void clock_set_fake(bool on, int64_t wall_ms); /* fake clocks start at wall_ms / 1000000 ms */
void clock_advance_ms(int64_t ms);

#endif
