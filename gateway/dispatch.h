/* dispatch.h -- per-chat ordering with chats handled concurrently by a bounded worker pool.
 *
 * Updates of one chat are handled one at a time, in the order submitted (a lane per chat);
 * different chats run in parallel on `workers` threads. At most `max_pending` updates wait or
 * run at once: dispatch_submit blocks past that (back-pressure on the intake, never an
 * unbounded queue). Each item's done callback runs on the worker thread after the handler. */
#ifndef ENGBOT_GW_DISPATCH_H
#define ENGBOT_GW_DISPATCH_H

#include "tg_json.h"

#include <stdbool.h>
#include <stdint.h>

/* Handles one update; returns true when its work was handed on (replies sent or queued). The
 * update is borrowed for the call. */
typedef bool dispatch_handler(void *ud, const struct tg_update *u);
/* Called once per submitted item: handled says what the handler returned (false also when the
 * dispatcher stopped before the item ran). */
typedef void dispatch_done(void *arg, const struct tg_update *u, bool handled);

struct dispatch;
struct dispatch *dispatch_new(int workers, int max_pending, dispatch_handler *h, void *ud);
/* Queues a copy of u. Blocks while max_pending items are in the dispatcher. Returns 0, or -1
 * when the dispatcher is stopping (done is not called then). */
int dispatch_submit(struct dispatch *d, const struct tg_update *u, dispatch_done *done, void *arg);
/* Items waiting or running now. */
int dispatch_pending(struct dispatch *d);
/* Stops taking items and waits up to grace_ms for queued and running items to finish; items
 * that did not start by then get done(handled=false). Joins the workers. */
void dispatch_drain(struct dispatch *d, int64_t grace_ms);
void dispatch_free(struct dispatch *d);

#endif
