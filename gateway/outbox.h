/* outbox.h -- where a reply goes once the bot has decided on it: into queue-svc (the normal
 * path: durable, rate-limited, deduplicated by key), or, only when queue-svc has been down for
 * longer than QUEUE_FALLBACK_AFTER or is switched off (USE_QUEUE=false), straight to Telegram
 * through the small in-process limiter.
 *
 * The dedupe key names the reply: "<bot>:<update_id>:<position>", so a re-delivered update
 * re-enqueues the same keys and queue-svc answers "duplicate" instead of sending twice. The
 * same key makes retrying an Enqueue safe, which is what the rules below rest on:
 *
 *   - queue full (RESOURCE_EXHAUSTED): back-pressure. The Enqueue is retried with backoff until
 *     queue-svc has room; the update is not confirmed meanwhile (polling: the offset stays;
 *     webhook: the request answers 503 after WEBHOOK_MAX_WAIT and Telegram delivers it again).
 *     Never a direct send: it would spend Telegram's 30/s on top of queue-svc's budget.
 *   - outcome unknown (an Enqueue went out and failed: DEADLINE_EXCEEDED, UNAVAILABLE, the
 *     connection lost): queue-svc may have made it durable and will send it. The Enqueue is
 *     retried until it is answered, however long that takes (bounded only by the drain): a
 *     direct send could be a second copy.
 *   - not sent (the breaker is open): held and retried the same way for QUEUE_FALLBACK_AFTER,
 *     counted from when queue-svc was first seen down (deps_down_since), so a restart of a few
 *     seconds keeps every chat's replies in order behind those already queued. Past it the
 *     gateway is degraded: such replies go out directly through the limiter (order with what
 *     still waits in queue-svc is then best effort). When queue-svc is back the breaker closes
 *     and replies go to the queue again. */
#ifndef ENGBOT_GW_OUTBOX_H
#define ENGBOT_GW_OUTBOX_H

#include "deps.h"
#include "limiter.h"
#include "sender.h"
#include "tg_json.h"

#include <stdbool.h>
#include <stdint.h>

struct outbox_opts {
    struct deps *deps;
    struct sender *sender;
    struct limiter *limiter;
    bool use_queue;
    int64_t job_timeout_ms;     /* the job's time to live in the queue */
    int64_t direct_max_wait_ms; /* longest a direct send waits for a retry_after */
    int64_t fallback_after_ms;  /* queue-svc down this long: direct sends (QUEUE_FALLBACK_AFTER) */
};

struct outbox;
struct outbox *outbox_new(const struct outbox_opts *o);
void outbox_free(struct outbox *o);

/* Hands one request on. Returns 0 when it is queued (or was already: a duplicate) or sent
 * directly, -1 when it could not be handed on (counted and logged; the caller fails the update
 * so that it is delivered again). May block while queue-svc is full or down (see above), at
 * most until the drain deadline. The payload is borrowed. Thread-safe. */
int outbox_put(struct outbox *o, const char *dedupe_key, int64_t chat_id,
               enum tg_chat_type chat_type, const char *method, const char *payload);

/* The drain: outbox_put calls still waiting for queue-svc give up at deadline_ms
 * (clock_mono_ms) and return -1, so the workers finish within DRAIN_GRACE. */
void outbox_drain(struct outbox *o, int64_t deadline_ms);

#endif
