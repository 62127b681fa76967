/* bot.h -- what the bot does with an update: commands, the catalogue browser, file delivery,
 * admin commands and allow-lists. It decides on replies and hands them to the outbox; it never
 * talks to Telegram itself except to answer a callback query at once (the button's spinner
 * must stop within seconds, before any queue could deliver the answer).
 *
 * Degraded modes: without session-svc the bot answers statelessly (the browser's buttons carry
 * folder and page, so browsing still works; search paging needs the session); without
 * cache-svc every file action answers "Files are temporarily unavailable"; without queue-svc
 * the outbox first waits for it (QUEUE_FALLBACK_AFTER), then sends directly (outbox.h). */
#ifndef ENGBOT_GW_BOT_H
#define ENGBOT_GW_BOT_H

#include "conf.h"
#include "deps.h"
#include "outbox.h"
#include "tg_http.h"
#include "tg_json.h"

#include <stdbool.h>
#include <stdint.h>

struct bot_opts {
    struct deps *deps;
    struct outbox *outbox;
    struct tg_http *tg;
    const struct conf_idlist *admins, *allowed_users, *allowed_chats; /* borrowed */
    int page_size;
    uint64_t upload_limit;
    bool use_sessions;
    int64_t bot_id;
    char username[64];         /* from getMe, without '@' */
    int64_t answer_timeout_ms; /* answerCallbackQuery, sent directly */
    int64_t started_mono_ms;
};

struct bot;
struct bot *bot_new(const struct bot_opts *o);
/* Sets the username from getMe; only before updates flow (the webhook opens after it). */
void bot_set_username(struct bot *b, const char *username);
void bot_free(struct bot *b);
/* The dispatch handler: returns true when the update's work was handed on. Thread-safe. */
bool bot_handle(void *bot, const struct tg_update *u);

#endif
