/* sweeper.h -- the cleanup thread: every CLEANUP_INTERVAL it removes the sessions idle longer
 * than INACTIVITY_THRESHOLD (store_sweep, one stripe at a time, so calls never wait for it),
 * and records how many and how long in the metrics. */
#ifndef ENGBOT_SESSION_SWEEPER_H
#define ENGBOT_SESSION_SWEEPER_H

#include "store.h"

#include <stdint.h>

struct sweeper;
/* Starts the thread; the first sweep runs one interval from now. */
struct sweeper *sweeper_start(struct store *st, int64_t interval_ms);
/* Sweeps now on the caller's thread (tests, and the thread itself). Returns the count removed. */
uint64_t sweeper_run_once(struct sweeper *sw);
uint64_t sweeper_runs(struct sweeper *sw);
/* Stops and joins the thread; frees sw. */
void sweeper_stop(struct sweeper *sw);

#endif
