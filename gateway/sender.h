/* sender.h -- performs outbound Bot API requests, and the lease loops that take them from
 * queue-svc.
 *
 * sender_perform does one request and classifies Telegram's answer (it never sleeps):
 *   ok -> SEND_OK; 429 / retry_after -> SEND_RETRY_AFTER (only that chat's lane pauses);
 *   5xx, network errors, unreadable answers -> SEND_BACKOFF; 403 (bot blocked) and other 4xx
 *   -> SEND_FAIL; migrate_to_chat_id -> SEND_MIGRATE (resend to the new chat).
 * A "sendDocument" job (tg_json_doc_job) is resolved here: by the cached file_id when there is
 * one (a rejected file_id is dropped from cache-svc and the file uploaded again), else by a
 * multipart upload streamed from cache-svc's ReadFile, after which the new file_id is stored.
 * A file that is gone by then (cache-svc: NOT_FOUND) is answered with SENDER_FILE_GONE as a
 * message in the document's place, and the request's outcome is that message's.
 *
 * The lease loops (sender_start) run `threads` threads per queue-svc track (stable, and canary
 * when configured): Lease, perform, then Ack / Retry(retry_after) / Fail. */
#ifndef ENGBOT_GW_SENDER_H
#define ENGBOT_GW_SENDER_H

#include "deps.h"
#include "tg_http.h"

#include <stdbool.h>
#include <stdint.h>

struct sender_opts {
    struct tg_http *tg;
    struct deps *deps;
    int64_t bot_id;        /* numeric part of the token: file_ids belong to one bot */
    uint64_t upload_limit; /* bytes */
    bool use_file_ids;     /* USE_FILE_ID_CACHE */
    int threads;           /* lease threads per queue track */
    int lease_batch;       /* jobs per Lease */
    int64_t lease_ms;      /* how long a lease lasts (uploads can be slow) */
    int64_t lease_wait_ms; /* long-poll wait inside Lease */
    int64_t telegram_timeout_ms;
    const char *name; /* sender name shown to operators (hostname) */
};

/* What a user is told when the file they asked for is no longer in the catalogue: by the bot
 * at /get or at a button, and by the sender when the file went away while its send waited. */
#define SENDER_FILE_GONE "That file is no longer available."

enum send_outcome { SEND_OK, SEND_RETRY_AFTER, SEND_BACKOFF, SEND_FAIL, SEND_MIGRATE };

struct send_result {
    enum send_outcome o;
    int64_t retry_after_ms; /* SEND_RETRY_AFTER */
    int64_t new_chat_id;    /* SEND_MIGRATE */
    char err[256];
};

struct sender;
struct sender *sender_new(const struct sender_opts *o);
/* Performs one request for chat_id (payload: the JSON body we built). Thread-safe. */
void sender_perform(struct sender *s, int64_t chat_id, const char *method, const char *payload,
                    size_t len, struct send_result *r);
void sender_start(struct sender *s);
/* Stops leasing; each thread finishes the job in hand. Joins the threads. */
void sender_stop(struct sender *s);
void sender_free(struct sender *s);

#endif
