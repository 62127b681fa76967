/* tg_json.h -- the mapping between Telegram's JSON and the gateway's C structs (the only code
 * that includes cJSON).
 *
 * Everything that arrives from Telegram is untrusted: every field is checked for type, range
 * and size before it is copied into a fixed-size struct; an update that fails a check is
 * reported as malformed (with its update_id when that much was readable) and skipped by the
 * caller. Ids are int64: Telegram promises at most 52 significant bits, so they survive JSON's
 * doubles; anything that is not an integer within +-2^53 is rejected.
 *
 * Builders return malloc'd NUL-terminated JSON (free with free()); they abort on OOM. */
#ifndef ENGBOT_GW_TG_JSON_H
#define ENGBOT_GW_TG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps on what we copy out of an update (Telegram's own limits, with room). */
#define TG_TEXT_MAX     16384 /* 4096 UTF-16 units are at most 16384 UTF-8 bytes */
#define TG_CALLBACK_MAX 64    /* callback_data: 1-64 bytes */
#define TG_QUERY_ID_MAX 64
#define TG_USERNAME_MAX 64
#define TG_FILE_ID_MAX  256
#define TG_DESCR_MAX    512

enum tg_update_kind {
    TG_UPD_MESSAGE,
    TG_UPD_EDITED_MESSAGE,
    TG_UPD_CALLBACK_QUERY,
    TG_UPD_MY_CHAT_MEMBER,
    TG_UPD_OTHER,
};

enum tg_chat_type { TG_CHAT_PRIVATE, TG_CHAT_GROUP, TG_CHAT_SUPERGROUP, TG_CHAT_CHANNEL };

/* One update, as much as the bot uses of it. Plain data: copy freely. */
struct tg_update {
    int64_t update_id;
    enum tg_update_kind kind;
    int64_t chat_id; /* 0 when the update has no chat (kind OTHER) */
    enum tg_chat_type chat_type;
    int64_t user_id; /* the sender ("from"); 0 when absent (channel posts) */
    bool user_is_bot;
    int64_t message_id;         /* the message, or the one the pressed button belongs to */
    int64_t migrate_to_chat_id; /* a group's service message after an upgrade; 0 otherwise */
    char text[TG_TEXT_MAX + 1]; /* message text (UTF-8, validated); "" when none */
    char callback_id[TG_QUERY_ID_MAX + 1];
    char data[TG_CALLBACK_MAX + 1]; /* callback_data */
    char status[16];                /* my_chat_member: the bot's new status ("kicked", ...) */
};

const char *tg_update_kind_name(enum tg_update_kind k); /* "message", "callback_query", ... */
const char *tg_chat_type_name(enum tg_chat_type t);

/* Parses one Update object. Returns 0, or -1 with err (the update is malformed); *out's
 * update_id is filled whenever it was readable (else -1), so the caller can still skip it. */
int tg_json_parse_update(const char *json, size_t len, struct tg_update *out, char *err,
                         size_t errlen);

/* The Bot API response envelope. */
struct tg_envelope {
    bool ok;
    int error_code; /* 0 when ok */
    char description[TG_DESCR_MAX + 1];
    int64_t retry_after_s;      /* parameters.retry_after, 0 when absent */
    int64_t migrate_to_chat_id; /* parameters.migrate_to_chat_id, 0 when absent */
    /* From result, when it is a Message (sendMessage, sendDocument, editMessageText). */
    int64_t message_id;
    char file_id[TG_FILE_ID_MAX + 1]; /* result.document.file_id */
    /* From result, when it is a User (getMe). */
    int64_t user_id;
    char username[TG_USERNAME_MAX + 1];
};

/* Parses a response body. Returns 0 when it is a well-formed envelope (check env->ok), -1 when
 * the body is not one (err says why: a proxy's HTML error page, truncated JSON, ...). */
int tg_json_parse_envelope(const char *body, size_t len, struct tg_envelope *env, char *err,
                           size_t errlen);

/* getUpdates: calls fn for every element of result, in order. For a malformed element fn gets
 * rc -1 and the error (u->update_id set when readable). Returns the number of elements, or -1
 * when the body is not a successful getUpdates response (then the envelope is in env). */
typedef void tg_update_fn(void *ud, int rc, const struct tg_update *u, const char *err);
int tg_json_parse_updates(const char *body, size_t len, struct tg_envelope *env, tg_update_fn *fn,
                          void *ud, struct tg_update *scratch, char *err, size_t errlen);

/* ---- building requests ---------------------------------------------------------------------- */

#define TG_KB_MAX_ROWS 24
#define TG_KB_MAX_COLS 4
struct tg_button {
    char text[128];                 /* label (UTF-8) */
    char data[TG_CALLBACK_MAX + 1]; /* callback_data, 1..64 bytes */
};
struct tg_keyboard {
    int nrows;
    int ncols[TG_KB_MAX_ROWS];
    struct tg_button b[TG_KB_MAX_ROWS][TG_KB_MAX_COLS];
};
/* Appends a button to the last row (or a new row when newrow). Returns false when full or when
 * data is not 1..64 bytes (a programming error the caller logs). */
bool tg_kb_add(struct tg_keyboard *kb, bool newrow, const char *text, const char *data);

/* sendMessage (message_id == 0) or editMessageText (message_id != 0). parse_mode may be NULL,
 * kb may be NULL. */
char *tg_json_message(int64_t chat_id, int64_t message_id, const char *text, const char *parse_mode,
                      const struct tg_keyboard *kb);
char *tg_json_answer_callback(const char *callback_id, const char *text, bool alert);
char *tg_json_send_document_by_id(int64_t chat_id, const char *file_id, const char *caption,
                                  const char *parse_mode);
char *tg_json_get_updates(int64_t offset, int limit, int timeout_s);
char *tg_json_set_webhook(const char *url, const char *secret, int max_connections);
char *tg_json_delete_webhook(void);

/* A document job as queued: which catalogue file to send to which chat. The sender resolves it
 * to a file_id or an upload at send time. */
struct tg_doc_job {
    int64_t chat_id;
    char id[32];     /* catalogue id */
    char path[1024]; /* relative path */
    char name[256];  /* file name shown */
    uint64_t size;
    char caption[1024]; /* HTML caption, may be empty */
};
char *tg_json_doc_job(const struct tg_doc_job *j);
int tg_json_parse_doc_job(const char *json, size_t len, struct tg_doc_job *j, char *err,
                          size_t errlen);

/* Reads "chat_id" of a request body we built; 0 when absent. */
int64_t tg_json_chat_id(const char *json, size_t len);
/* Returns a copy of a request body we built with chat_id replaced (group -> supergroup
 * migration), or NULL when the body is not a JSON object. */
char *tg_json_with_chat_id(const char *json, size_t len, int64_t chat_id);

#endif
