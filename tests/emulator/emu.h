/* emu.h -- the Bot API emulator's state and the entry points of its modules.
 *
 * DESIGN. One process emulates one Telegram bot's view of the Bot API. All state lives in
 * struct emu behind one mutex (mu): the HTTP server runs a thread per connection, so a long
 * poll or a transcript wait blocks its own thread on a condition variable while other
 * requests go on. Modules:
 *   updates.c    the update queue: injection, getUpdates (long polling, offsets, 409 hand-over)
 *   webhook.c    setWebhook/deleteWebhook/getWebhookInfo and the delivery threads (libcurl)
 *   store.c      chats, users, messages, callback queries and files, and their JSON shapes
 *   methods.c    the sending methods (sendMessage, editMessageText, sendDocument, ...)
 *   botapi.c     /bot<token>/<method>: decoding, auth, faults, rate limits, the envelope
 *   faults.c     injected faults and Telegram's rate limits
 *   transcript.c what the bot did (for tests and the terminal chat) and call counters
 *   control.c    /control/...: the test and terminal-chat API
 * Ids (update_id, message_id, transcript seq) only ever grow, even across /control/reset, so
 * a client that kept an offset never skips anything. */
#ifndef EMU_EMU_H
#define EMU_EMU_H

#include "hmap.h"
#include "params.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct httpd;

struct emu_cfg {
    char *http_listen, *bot_token, *bot_username, *bot_first_name, *log_level, *log_format;
    int64_t upload_limit, download_limit, control_max_body;
    int64_t poll_max_timeout;   /* ms: Telegram caps a long poll at 50 s */
    int64_t callback_ttl;       /* ms: after this an unanswered callback query is "too old" */
    bool ratelimits;            /* initial state; /control/ratelimits switches it */
    int64_t chat_burst, chat_per_sec_ms, group_per_min, global_per_sec;
    bool webhook_https_only;
    int64_t webhook_timeout, webhook_retry_min, webhook_retry_max, webhook_workers;
    int64_t webhook_max_attempts;
    int64_t max_updates, max_messages, max_transcript, max_files, files_memory;
    int64_t update_retention;
    int64_t max_connections;
    int64_t first_update_id; /* 0 = the Unix time in seconds at start */
};

struct update {
    int64_t id;
    int64_t chat_id; /* webhook ordering key: one in-flight update per chat (0 = none) */
    char type[40];   /* "message", "callback_query", ... (allowed_updates filter) */
    char *json;      /* the Update object, update_id included */
    int64_t created_ms;
    int attempts; /* webhook delivery */
    int64_t next_try_ms;
    bool in_flight;
    struct update *prev, *next;
};

struct fault {
    char kind[8];    /* "429", "5xx", "slow", "drop", "409" */
    char method[48]; /* "" = every method */
    bool has_chat;
    int64_t chat_id;
    int64_t remaining; /* 0 = until cleared */
    int64_t retry_after, delay_ms, status;
    bool after; /* drop: after the call took effect (the response is lost) */
    char description[160];
};

#define EMU_MAX_FAULTS 64

struct bucket {
    double tokens;
    int64_t last_ms;
};

struct emu {
    struct emu_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t updates_cv;    /* an update queued, a poll terminated, webhook changed, stop */
    pthread_cond_t transcript_cv; /* an event recorded, stop */
    bool stopping;
    int64_t bot_id; /* from the configured token, else the last token seen */
    char *last_token;

    /* updates.c */
    struct update *uhead, *utail;
    size_t nupdates;
    int64_t next_update_id;
    struct poller *poller; /* the long poll waiting now, if any */
    char **allowed; /* sticky allowed_updates; NULL = Telegram's default set */
    size_t nallowed;

    /* webhook.c */
    char *wh_url, *wh_secret;
    int64_t wh_max_conn, wh_set_ms;
    uint64_t wh_gen;
    int64_t wh_last_error_date;
    char *wh_last_error;
    int wh_inflight;
    pthread_t *wh_threads;
    int nwh_threads;

    /* store.c */
    struct hmap chats, users, messages, cbqs, files, file_paths;
    int64_t next_cbq_id, files_bytes, next_file_seq;
    struct cJSON *commands; /* setMyCommands */

    /* faults.c */
    struct fault faults[EMU_MAX_FAULTS];
    int nfaults;
    bool ratelimits;
    struct bucket global;
    struct hmap chat_buckets, group_buckets;

    /* transcript.c */
    struct event *events; /* ring */
    size_t ev_head, ev_n, ev_cap;
    int64_t next_seq;
    struct cJSON *calls;
};

/* ---- main.c / lifetime ---- */
struct emu *emu_new(const struct emu_cfg *cfg);
void emu_free(struct emu *e);
/* Registers every route on h. */
void emu_routes(struct emu *e, struct httpd *h);
/* Wakes every waiter and stops the webhook threads (before httpd_stop). */
void emu_stop(struct emu *e);
/* Clears updates, transcript, faults, webhook, files, messages (ids keep growing). */
void emu_reset(struct emu *e);

/* ---- the result of one Bot API call ---- */
struct call {
    const struct params *p;
    const char *method; /* canonical name */
    int64_t bot_id;
    /* out */
    int status;                /* 200, or the error code */
    char desc[512];            /* the error description, or the success "description" */
    struct cJSON *result;      /* on success */
    struct cJSON *parameters;  /* ResponseParameters on error */
    const char *variant;       /* counted with the outcome: "upload" / "file_id" */
    bool drop;                 /* close the connection without a response */
};

void call_error(struct call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 400 "Bad Request: <fmt>" */
void call_bad(struct call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- botapi.c ---- */
/* Runs one Bot API method as if it came over HTTP (faults and rate limits included); used by
 * the HTTP route and for a method call carried in a webhook response. Returns the envelope
 * (malloc'd JSON) and its HTTP status; *drop asks to close the connection instead. */
char *botapi_run(struct emu *e, const char *token, const char *method, struct params *p,
                 int *status, bool *drop);
/* The Telegram-style envelope for a finished call (malloc'd). */
char *botapi_envelope(const struct call *c);

/* ---- updates.c (callers hold mu unless noted) ---- */
/* Queues an Update; takes ownership of obj (without update_id; it is added). Returns the id. */
int64_t updates_push(struct emu *e, struct cJSON *obj, int64_t chat_id, const char *type);
/* Unlinks and frees one update. */
void updates_remove(struct emu *e, struct update *u);
void updates_clear(struct emu *e);
size_t updates_pending(struct emu *e);
/* Telegram's 409 for getUpdates while a webhook is set (locks mu itself). */
void m_get_updates(struct emu *e, struct call *c);
/* Ends a waiting long poll with 409 (setWebhook, shutdown). */
void updates_terminate_poll(struct emu *e);
/* Replaces the sticky allowed_updates from JSON array text; false when malformed. */
bool updates_set_allowed(struct emu *e, const char *json);
struct cJSON *updates_allowed_json(struct emu *e);

/* ---- webhook.c ---- */
void webhook_start(struct emu *e);
void webhook_stop(struct emu *e);
void webhook_clear(struct emu *e); /* mu held */
void m_set_webhook(struct emu *e, struct call *c);
void m_delete_webhook(struct emu *e, struct call *c);
void m_get_webhook_info(struct emu *e, struct call *c);
struct cJSON *webhook_status_json(struct emu *e); /* mu held; for /control/webhook */

/* ---- store.c (mu held) ---- */
struct chat {
    int64_t id;
    char type[12]; /* private, group, supergroup, channel */
    char *title, *username, *first_name;
    int64_t next_msg_id;
    int64_t migrated_to; /* 0 = not migrated */
    bool blocked;
};
struct user {
    int64_t id;
    char *first_name, *username;
};
struct message {
    int64_t chat_id, message_id;
    bool from_bot;
    char *text;   /* as sent (before entity parsing), or caption */
    char *parse_mode;
    char *markup; /* normalized reply_markup JSON, or NULL */
    struct cJSON *obj; /* the Message object as returned */
};
struct cbq {
    int64_t created_ms, chat_id, message_id, user_id;
    bool answered;
};
struct file {
    char *file_id, *unique_id, *name, *mime, *path;
    int64_t bot_id, size, seq;
    char sha256[65];
    char *bytes; /* kept for downloads while under files_memory; NULL when evicted */
};

void store_init(struct emu *e);
void store_clear(struct emu *e);
void store_free(struct emu *e);
struct chat *store_chat(struct emu *e, int64_t id);
/* Creates or updates a chat / user seen in an injected update. */
struct chat *store_chat_put(struct emu *e, int64_t id, const char *type, const char *title,
                            const char *username, const char *first_name);
struct user *store_user_put(struct emu *e, int64_t id, const char *first_name,
                            const char *username);
int64_t store_next_msg_id(struct chat *ch);
struct cJSON *store_chat_json(const struct chat *ch);
struct cJSON *store_user_json(const struct user *u);
struct cJSON *store_bot_json(struct emu *e);
struct message *store_msg(struct emu *e, int64_t chat_id, int64_t message_id);
/* Takes ownership of m. */
void store_msg_put(struct emu *e, struct message *m);
bool store_msg_del(struct emu *e, int64_t chat_id, int64_t message_id);
/* A new callback query id (decimal text, like Telegram's). */
void store_cbq_new(struct emu *e, int64_t chat_id, int64_t message_id, int64_t user_id,
                   char *id, size_t cap);
struct cbq *store_cbq(struct emu *e, const char *id);
/* Stores an upload; returns the new file (owned by the store). */
struct file *store_file_add(struct emu *e, int64_t bot_id, const char *name, const char *mime,
                            const char *data, size_t len);
struct file *store_file(struct emu *e, const char *file_id);
struct file *store_file_by_path(struct emu *e, const char *path);
struct cJSON *store_document_json(const struct file *f);

/* ---- faults.c (mu held) ---- */
/* The first matching fault, counted down, copied to *out; false when none matches. */
bool faults_match(struct emu *e, const char *method, bool has_chat, int64_t chat_id,
                  struct fault *out);
int faults_add(struct emu *e, const struct fault *f, char *err, size_t cap);
void faults_clear(struct emu *e);
struct cJSON *faults_json(struct emu *e);
/* Takes a token for a message to chat; returns 0, or the seconds to wait (429). */
int64_t ratelimit_take(struct emu *e, const struct chat *ch);
void ratelimit_reset(struct emu *e);

/* ---- transcript.c (mu held) ---- */
/* Records a successful bot action; takes ownership of ev (fields besides seq/ts/method). */
void transcript_add(struct emu *e, const char *method, int64_t chat_id, struct cJSON *ev);
/* Renders events with seq > since (chat filter when has_chat) as the /control/transcript
 * answer; waits up to wait_ms for at least one (mu is released while waiting). */
char *transcript_render(struct emu *e, bool has_chat, int64_t chat_id, int64_t since,
                        int64_t wait_ms);
void transcript_clear(struct emu *e);
void calls_count(struct emu *e, const char *method, const char *outcome, const char *variant);
char *calls_render(struct emu *e, const char *method);
void calls_clear(struct emu *e);

/* ---- control.c ---- */
void control_routes(struct emu *e, struct httpd *h);
void botapi_routes(struct emu *e, struct httpd *h);

/* ---- methods.c ---- */
void m_get_me(struct emu *e, struct call *c);
void m_send_message(struct emu *e, struct call *c);
void m_edit_message_text(struct emu *e, struct call *c);
void m_edit_message_reply_markup(struct emu *e, struct call *c);
void m_delete_message(struct emu *e, struct call *c);
void m_send_document(struct emu *e, struct call *c);
void m_answer_callback_query(struct emu *e, struct call *c);
void m_get_file(struct emu *e, struct call *c);
void m_send_chat_action(struct emu *e, struct call *c);
void m_set_my_commands(struct emu *e, struct call *c);
void m_get_my_commands(struct emu *e, struct call *c);
/* The chat a method's chat_id names, or NULL with the error set on c (unknown chat,
 * migrated group, blocked bot). */
struct chat *methods_target_chat(struct emu *e, struct call *c, int64_t *chat_id_out);

/* Current wall time in seconds (Telegram's "date"). */
int64_t emu_now_s(void);

#endif
