/* intake.h -- how updates come in: one getUpdates long-poll loop (default), or the webhook
 * endpoint (WEBHOOK_URL set). Both skip repeated update_ids (dedupe.h), hand each update to the
 * dispatcher, and only acknowledge an update once its work has been handed on:
 *   polling: the offset passed to the next getUpdates only moves past an update once it is
 *            handled (a crash re-delivers, never loses; a failed update is retried a few times);
 *   webhook: 200 only after the update is handled; 500/503 make Telegram deliver it again. */
#ifndef ENGBOT_GW_INTAKE_H
#define ENGBOT_GW_INTAKE_H

#include "dedupe.h"
#include "dispatch.h"
#include "httpd.h"
#include "tg_http.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct intake_poll_opts {
    struct tg_http *tg; /* a client whose abort flag is `abort` below */
    atomic_bool *abort; /* set by intake_poll_stop to cut the long poll short */
    struct dispatch *dispatch;
    struct dedupe *dedupe;
    int timeout_s;    /* long-poll timeout */
    int limit;        /* updates per getUpdates (1..100) */
    int max_attempts; /* a failing update is retried this often before it is skipped */
};

struct intake_poll;
struct intake_poll *intake_poll_start(const struct intake_poll_opts *o);
/* Stops polling, waits up to grace_ms for the current batch to be handed on, then confirms the
 * offset of everything handled with Telegram. Call dispatch_drain afterwards, then
 * intake_poll_free. */
void intake_poll_stop(struct intake_poll *p, int64_t grace_ms);
void intake_poll_free(struct intake_poll *p);

struct intake_webhook_opts {
    struct httpd *http;
    const char *path;   /* route, from WEBHOOK_URL's path */
    const char *secret; /* expected X-Telegram-Bot-Api-Secret-Token */
    struct dispatch *dispatch;
    struct dedupe *dedupe;
    int64_t max_wait_ms; /* answer 503 if handling takes longer (Telegram waits at most 60 s) */
};

struct intake_webhook;
/* Registers the route (before httpd_start). Requests get 503 until intake_webhook_open. */
struct intake_webhook *intake_webhook_new(const struct intake_webhook_opts *o);
void intake_webhook_open(struct intake_webhook *w);
/* New requests get 503 (Telegram retries them later, e.g. on another replica). */
void intake_webhook_close(struct intake_webhook *w);
void intake_webhook_free(struct intake_webhook *w);

/* Counters shared by both intakes (created on first use). */
void intake_count_skipped(const char *reason);

#endif
