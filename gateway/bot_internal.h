/* bot_internal.h -- what bot.c and browse.c share: the per-update context and reply helpers.
 * Not for other modules. */
#ifndef ENGBOT_GW_BOT_INTERNAL_H
#define ENGBOT_GW_BOT_INTERNAL_H

#include "bot.h"
#include "metrics.h"

#include "engbot/cache/v1/cache.pb-c.h"

#include <pthread.h>

#define FILES_DOWN "Files are temporarily unavailable. Please try again in a minute."

struct bot {
    struct bot_opts o;
    struct metric *updates[TG_UPD_OTHER + 1];
    struct metric *handling, *refused, *answers_direct, *answers_failed, *blocked_by_user;
    struct metric *track[2];
    struct metric_family *commands;
    pthread_mutex_t mu;
    int64_t refused_ring[4096]; /* chats already told "private bot" (most recent 4096) */
    size_t refused_n, refused_head;
};

/* One update being handled. Replies get consecutive positions for their dedupe keys. */
struct ctx {
    struct bot *b;
    const struct tg_update *u;
    int pos;
    bool failed;  /* a reply could not be handed on */
    bool session; /* a session was read (fields below valid) */
    bool admin;
    char folder[32];
    uint32_t page;
    char last_search[256];
    uint64_t version;
};

/* Sends text (split over 4096 UTF-16 units; the keyboard goes on the last part). */
void ctx_reply(struct ctx *c, const char *text, const char *parse_mode,
               const struct tg_keyboard *kb);
/* Edits the message with the button that was pressed (text must fit one message). */
void ctx_edit(struct ctx *c, int64_t message_id, const char *text, const char *parse_mode,
              const struct tg_keyboard *kb);
/* Queues a document: the sender picks file_id or upload. */
void ctx_send_doc(struct ctx *c, const Engbot__Cache__V1__Entry *e);
/* Remembers the browser's place (and the search words when search != NULL). */
void ctx_save_place(struct ctx *c, const char *folder, uint32_t page, const char *search);
void ctx_count_command(struct ctx *c, const char *cmd);
/* "1.2 MB" */
void fmt_size(uint64_t n, char *out, size_t cap);

/* admin.c (the caller checked that the user is an admin) */
void cmd_refresh(struct ctx *c);
void cmd_stats(struct ctx *c);

/* browse.c */
/* Shows a folder page: a new message (edit_id 0) or an edit of the pressed button's message. */
void browse_folder(struct ctx *c, const char *folder_id, uint32_t page, int64_t edit_id,
                   const char *intro_html);
void browse_search(struct ctx *c, const char *words, uint32_t page, int64_t edit_id);
void browse_get(struct ctx *c, const char *name);
void browse_file(struct ctx *c, const char *id);

#endif
