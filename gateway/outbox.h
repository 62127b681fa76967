/* outbox.h -- where a reply goes once the bot has decided on it: into queue-svc (the normal
 * path: durable, rate-limited, deduplicated by key), or, when queue-svc is unusable or switched
 * off (USE_QUEUE=false), straight to Telegram through the small in-process limiter.
 *
 * The dedupe key names the reply: "<bot>:<update_id>:<position>", so a re-delivered update
 * re-enqueues the same keys and queue-svc answers "duplicate" instead of sending twice. */
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
};

struct outbox;
struct outbox *outbox_new(const struct outbox_opts *o);
void outbox_free(struct outbox *o);

/* Hands one request on. Returns 0 when it is queued (or was already: a duplicate) or sent
 * directly, -1 when it could not be handed on (counted and logged). The payload is borrowed. */
int outbox_put(struct outbox *o, const char *dedupe_key, int64_t chat_id,
               enum tg_chat_type chat_type, const char *method, const char *payload);

#endif
