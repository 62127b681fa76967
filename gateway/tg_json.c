/* tg_json.c -- Telegram JSON <-> C structs, with every field from the network validated.
 *
 * Limits: strings are copied into fixed buffers only after their length is checked; a longer
 * field makes the update malformed (it is never silently cut), except descriptions in error
 * envelopes, which are informational and cut at a character boundary. */
#include "tg_json.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_LIMIT 9007199254740992.0 /* 2^53: Telegram ids have at most 52 significant bits */

static void *must(void *p)
{
    if (!p)
        abort(); /* OOM policy: abort (see docs/gateway.md) */
    return p;
}

const char *tg_update_kind_name(enum tg_update_kind k)
{
    switch (k) {
    case TG_UPD_MESSAGE:
        return "message";
    case TG_UPD_EDITED_MESSAGE:
        return "edited_message";
    case TG_UPD_CALLBACK_QUERY:
        return "callback_query";
    case TG_UPD_MY_CHAT_MEMBER:
        return "my_chat_member";
    default:
        return "other";
    }
}

const char *tg_chat_type_name(enum tg_chat_type t)
{
    switch (t) {
    case TG_CHAT_PRIVATE:
        return "private";
    case TG_CHAT_GROUP:
        return "group";
    case TG_CHAT_SUPERGROUP:
        return "supergroup";
    default:
        return "channel";
    }
}

/* ---- field readers: 0 ok, 1 absent (when optional), -1 wrong (err set) -------------------- */

static int get_i64(const cJSON *obj, const char *key, bool required, int64_t *out, char *err,
                   size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) {
            snprintf(err, errlen, "missing %s", key);
            return -1;
        }
        return 1;
    }
    double d = it->valuedouble;
    if (!cJSON_IsNumber(it) || !isfinite(d) || d != floor(d) || fabs(d) > ID_LIMIT) {
        snprintf(err, errlen, "%s is not an integer within 2^53", key);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

static int get_str(const cJSON *obj, const char *key, bool required, char *out, size_t cap,
                   char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) {
            snprintf(err, errlen, "missing %s", key);
            return -1;
        }
        return 1;
    }
    if (!cJSON_IsString(it) || !it->valuestring) {
        snprintf(err, errlen, "%s is not a string", key);
        return -1;
    }
    size_t n = strlen(it->valuestring);
    if (n + 1 > cap) {
        snprintf(err, errlen, "%s too long (%zu bytes, at most %zu)", key, n, cap - 1);
        return -1;
    }
    if (!text_utf8_valid(it->valuestring, n)) {
        snprintf(err, errlen, "%s is not valid UTF-8", key);
        return -1;
    }
    memcpy(out, it->valuestring, n + 1);
    return 0;
}

static const cJSON *get_obj(const cJSON *obj, const char *key, bool required, char *err,
                            size_t errlen, bool *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) {
            snprintf(err, errlen, "missing %s", key);
            *bad = true;
        }
        return NULL;
    }
    if (!cJSON_IsObject(it)) {
        snprintf(err, errlen, "%s is not an object", key);
        *bad = true;
        return NULL;
    }
    return it;
}

static int parse_chat(const cJSON *msg, struct tg_update *u, char *err, size_t errlen)
{
    bool bad = false;
    const cJSON *chat = get_obj(msg, "chat", true, err, errlen, &bad);
    if (!chat)
        return -1;
    if (get_i64(chat, "id", true, &u->chat_id, err, errlen) < 0)
        return -1;
    if (u->chat_id == 0) {
        snprintf(err, errlen, "chat.id is 0");
        return -1;
    }
    char type[16];
    if (get_str(chat, "type", true, type, sizeof type, err, errlen) < 0)
        return -1;
    if (strcmp(type, "private") == 0)
        u->chat_type = TG_CHAT_PRIVATE;
    else if (strcmp(type, "group") == 0)
        u->chat_type = TG_CHAT_GROUP;
    else if (strcmp(type, "supergroup") == 0)
        u->chat_type = TG_CHAT_SUPERGROUP;
    else if (strcmp(type, "channel") == 0)
        u->chat_type = TG_CHAT_CHANNEL;
    else {
        snprintf(err, errlen, "chat.type '%s' is unknown", type);
        return -1;
    }
    return 0;
}

static int parse_from(const cJSON *parent, bool required, struct tg_update *u, char *err,
                      size_t errlen)
{
    bool bad = false;
    const cJSON *from = get_obj(parent, "from", required, err, errlen, &bad);
    if (bad)
        return -1;
    if (!from)
        return 0;
    if (get_i64(from, "id", true, &u->user_id, err, errlen) < 0)
        return -1;
    const cJSON *isbot = cJSON_GetObjectItemCaseSensitive(from, "is_bot");
    if (isbot && !cJSON_IsBool(isbot)) {
        snprintf(err, errlen, "from.is_bot is not a boolean");
        return -1;
    }
    u->user_is_bot = isbot && cJSON_IsTrue(isbot);
    return 0;
}

static int parse_message(const cJSON *msg, struct tg_update *u, char *err, size_t errlen)
{
    if (get_i64(msg, "message_id", true, &u->message_id, err, errlen) < 0)
        return -1;
    if (parse_chat(msg, u, err, errlen) < 0)
        return -1;
    if (parse_from(msg, false, u, err, errlen) < 0)
        return -1;
    if (get_str(msg, "text", false, u->text, sizeof u->text, err, errlen) < 0)
        return -1;
    if (get_i64(msg, "migrate_to_chat_id", false, &u->migrate_to_chat_id, err, errlen) < 0)
        return -1;
    return 0;
}

static int parse_update_node(const cJSON *root, struct tg_update *u, char *err, size_t errlen)
{
    memset(u, 0, offsetof(struct tg_update, text));
    u->text[0] = u->callback_id[0] = u->data[0] = u->status[0] = '\0';
    u->update_id = -1;
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "update is not an object");
        return -1;
    }
    int64_t id;
    if (get_i64(root, "update_id", true, &id, err, errlen) < 0)
        return -1;
    if (id < 0) {
        snprintf(err, errlen, "update_id is negative");
        return -1;
    }
    u->update_id = id;
    bool bad = false;
    const cJSON *o;
    if ((o = get_obj(root, "message", false, err, errlen, &bad))) {
        u->kind = TG_UPD_MESSAGE;
        return parse_message(o, u, err, errlen);
    }
    if (bad)
        return -1;
    if ((o = get_obj(root, "edited_message", false, err, errlen, &bad))) {
        u->kind = TG_UPD_EDITED_MESSAGE;
        return parse_message(o, u, err, errlen);
    }
    if (bad)
        return -1;
    if ((o = get_obj(root, "callback_query", false, err, errlen, &bad))) {
        u->kind = TG_UPD_CALLBACK_QUERY;
        if (get_str(o, "id", true, u->callback_id, sizeof u->callback_id, err, errlen) < 0)
            return -1;
        if (!u->callback_id[0]) {
            snprintf(err, errlen, "callback_query.id is empty");
            return -1;
        }
        if (parse_from(o, true, u, err, errlen) < 0)
            return -1;
        if (get_str(o, "data", false, u->data, sizeof u->data, err, errlen) < 0)
            return -1;
        /* Absent for buttons on inline-mode messages: then there is no chat to reply to. */
        const cJSON *m = get_obj(o, "message", false, err, errlen, &bad);
        if (bad)
            return -1;
        if (m) {
            if (get_i64(m, "message_id", true, &u->message_id, err, errlen) < 0)
                return -1;
            if (parse_chat(m, u, err, errlen) < 0)
                return -1;
        }
        return 0;
    }
    if (bad)
        return -1;
    if ((o = get_obj(root, "my_chat_member", false, err, errlen, &bad))) {
        u->kind = TG_UPD_MY_CHAT_MEMBER;
        if (parse_chat(o, u, err, errlen) < 0 || parse_from(o, false, u, err, errlen) < 0)
            return -1;
        const cJSON *ncm = get_obj(o, "new_chat_member", true, err, errlen, &bad);
        if (!ncm)
            return -1;
        return get_str(ncm, "status", true, u->status, sizeof u->status, err, errlen) < 0 ? -1 : 0;
    }
    if (bad)
        return -1;
    u->kind = TG_UPD_OTHER;
    return 0;
}

int tg_json_parse_update(const char *json, size_t len, struct tg_update *out, char *err,
                         size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        memset(out, 0, offsetof(struct tg_update, text));
        out->update_id = -1;
        out->text[0] = out->callback_id[0] = out->data[0] = out->status[0] = '\0';
        snprintf(err, errlen, "not valid JSON");
        return -1;
    }
    int rc = parse_update_node(root, out, err, errlen);
    cJSON_Delete(root);
    return rc;
}

/* ---- envelopes ------------------------------------------------------------------------------ */

static int parse_env_node(const cJSON *root, struct tg_envelope *env, char *err, size_t errlen)
{
    memset(env, 0, sizeof *env);
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "response is not a JSON object");
        return -1;
    }
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "ok");
    if (!cJSON_IsBool(ok)) {
        snprintf(err, errlen, "response has no boolean 'ok'");
        return -1;
    }
    env->ok = cJSON_IsTrue(ok);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (cJSON_IsString(d) && d->valuestring)
        text_truncate(d->valuestring, TG_DESCR_MAX, env->description, sizeof env->description);
    char ignored[64];
    int64_t v;
    if (!env->ok) {
        if (get_i64(root, "error_code", false, &v, ignored, sizeof ignored) == 0 && v > 0 &&
            v < 1000)
            env->error_code = (int)v;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "parameters");
        if (cJSON_IsObject(p)) {
            if (get_i64(p, "retry_after", false, &v, ignored, sizeof ignored) == 0 && v > 0)
                env->retry_after_s = v > 86400 ? 86400 : v;
            if (get_i64(p, "migrate_to_chat_id", false, &v, ignored, sizeof ignored) == 0)
                env->migrate_to_chat_id = v;
        }
        return 0;
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
    if (cJSON_IsObject(res)) {
        if (get_i64(res, "message_id", false, &v, ignored, sizeof ignored) == 0)
            env->message_id = v;
        const cJSON *doc = cJSON_GetObjectItemCaseSensitive(res, "document");
        if (cJSON_IsObject(doc) && get_str(doc, "file_id", true, env->file_id, sizeof env->file_id,
                                           ignored, sizeof ignored) < 0)
            env->file_id[0] = '\0';
        if (cJSON_GetObjectItemCaseSensitive(res, "is_bot")) { /* a User (getMe) */
            if (get_i64(res, "id", false, &v, ignored, sizeof ignored) == 0)
                env->user_id = v;
            if (get_str(res, "username", false, env->username, sizeof env->username, ignored,
                        sizeof ignored) < 0)
                env->username[0] = '\0';
        }
    }
    return 0;
}

int tg_json_parse_envelope(const char *body, size_t len, struct tg_envelope *env, char *err,
                           size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        memset(env, 0, sizeof *env);
        snprintf(err, errlen, "response is not JSON (%zu bytes)", len);
        return -1;
    }
    int rc = parse_env_node(root, env, err, errlen);
    cJSON_Delete(root);
    return rc;
}

int tg_json_parse_updates(const char *body, size_t len, struct tg_envelope *env, tg_update_fn *fn,
                          void *ud, struct tg_update *scratch, char *err, size_t errlen)
{
    int n = -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        memset(env, 0, sizeof *env);
        snprintf(err, errlen, "getUpdates response is not JSON (%zu bytes)", len);
        return -1;
    }
    if (parse_env_node(root, env, err, errlen) < 0 || !env->ok)
        goto out;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
    if (!cJSON_IsArray(res)) {
        snprintf(err, errlen, "getUpdates result is not an array");
        goto out;
    }
    n = 0;
    const cJSON *el;
    cJSON_ArrayForEach(el, res)
    {
        char uerr[160];
        int rc = parse_update_node(el, scratch, uerr, sizeof uerr);
        fn(ud, rc, scratch, rc < 0 ? uerr : NULL);
        n++;
    }
out:
    cJSON_Delete(root);
    return n;
}

/* ---- builders ------------------------------------------------------------------------------- */

static void add_i64(cJSON *o, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    must(cJSON_AddRawToObject(o, key, buf)); /* exact digits, never through a double */
}

static void add_str(cJSON *o, const char *key, const char *v)
{
    must(cJSON_AddStringToObject(o, key, v));
}

static char *finish(cJSON *o)
{
    char *s = must(cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    return s;
}

bool tg_kb_add(struct tg_keyboard *kb, bool newrow, const char *text, const char *data)
{
    size_t dl = strlen(data);
    if (dl < 1 || dl > TG_CALLBACK_MAX)
        return false;
    if (newrow || kb->nrows == 0) {
        if (kb->nrows == TG_KB_MAX_ROWS)
            return false;
        kb->ncols[kb->nrows++] = 0;
    }
    int r = kb->nrows - 1;
    if (kb->ncols[r] == TG_KB_MAX_COLS)
        return false;
    struct tg_button *b = &kb->b[r][kb->ncols[r]++];
    text_truncate(text, sizeof b->text - 1, b->text, sizeof b->text);
    memcpy(b->data, data, dl + 1);
    return true;
}

static void add_keyboard(cJSON *o, const struct tg_keyboard *kb)
{
    cJSON *markup = must(cJSON_AddObjectToObject(o, "reply_markup"));
    cJSON *rows = must(cJSON_AddArrayToObject(markup, "inline_keyboard"));
    for (int r = 0; r < kb->nrows; r++) {
        cJSON *row = must(cJSON_CreateArray());
        cJSON_AddItemToArray(rows, row);
        for (int c = 0; c < kb->ncols[r]; c++) {
            cJSON *btn = must(cJSON_CreateObject());
            cJSON_AddItemToArray(row, btn);
            add_str(btn, "text", kb->b[r][c].text);
            add_str(btn, "callback_data", kb->b[r][c].data);
        }
    }
}

char *tg_json_message(int64_t chat_id, int64_t message_id, const char *text, const char *parse_mode,
                      const struct tg_keyboard *kb)
{
    cJSON *o = must(cJSON_CreateObject());
    add_i64(o, "chat_id", chat_id);
    if (message_id)
        add_i64(o, "message_id", message_id);
    add_str(o, "text", text);
    if (parse_mode)
        add_str(o, "parse_mode", parse_mode);
    /* Links in file names must not turn into previews. */
    cJSON *lp = must(cJSON_AddObjectToObject(o, "link_preview_options"));
    must(cJSON_AddTrueToObject(lp, "is_disabled"));
    if (kb && kb->nrows)
        add_keyboard(o, kb);
    return finish(o);
}

char *tg_json_answer_callback(const char *callback_id, const char *text, bool alert)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "callback_query_id", callback_id);
    if (text && *text)
        add_str(o, "text", text);
    if (alert)
        must(cJSON_AddTrueToObject(o, "show_alert"));
    return finish(o);
}

char *tg_json_send_document_by_id(int64_t chat_id, const char *file_id, const char *caption,
                                  const char *parse_mode)
{
    cJSON *o = must(cJSON_CreateObject());
    add_i64(o, "chat_id", chat_id);
    add_str(o, "document", file_id);
    if (caption && *caption) {
        add_str(o, "caption", caption);
        if (parse_mode)
            add_str(o, "parse_mode", parse_mode);
    }
    return finish(o);
}

char *tg_json_get_updates(int64_t offset, int limit, int timeout_s)
{
    cJSON *o = must(cJSON_CreateObject());
    if (offset)
        add_i64(o, "offset", offset);
    add_i64(o, "limit", limit);
    add_i64(o, "timeout", timeout_s);
    cJSON *au = must(cJSON_AddArrayToObject(o, "allowed_updates"));
    static const char *const kinds[] = {"message", "edited_message", "callback_query",
                                        "my_chat_member"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        cJSON_AddItemToArray(au, must(cJSON_CreateString(kinds[i])));
    return finish(o);
}

char *tg_json_set_webhook(const char *url, const char *secret, int max_connections)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "url", url);
    add_str(o, "secret_token", secret);
    add_i64(o, "max_connections", max_connections);
    /* Never drop pending updates: they are user messages. */
    must(cJSON_AddFalseToObject(o, "drop_pending_updates"));
    cJSON *au = must(cJSON_AddArrayToObject(o, "allowed_updates"));
    static const char *const kinds[] = {"message", "edited_message", "callback_query",
                                        "my_chat_member"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        cJSON_AddItemToArray(au, must(cJSON_CreateString(kinds[i])));
    return finish(o);
}

char *tg_json_delete_webhook(void)
{
    cJSON *o = must(cJSON_CreateObject());
    must(cJSON_AddFalseToObject(o, "drop_pending_updates"));
    return finish(o);
}

char *tg_json_doc_job(const struct tg_doc_job *j)
{
    cJSON *o = must(cJSON_CreateObject());
    add_i64(o, "chat_id", j->chat_id);
    cJSON *f = must(cJSON_AddObjectToObject(o, "engbot_file"));
    add_str(f, "id", j->id);
    add_str(f, "path", j->path);
    add_str(f, "name", j->name);
    char sz[32];
    snprintf(sz, sizeof sz, "%" PRIu64, j->size);
    must(cJSON_AddRawToObject(f, "size", sz));
    if (j->caption[0])
        add_str(f, "caption", j->caption);
    return finish(o);
}

int tg_json_parse_doc_job(const char *json, size_t len, struct tg_doc_job *j, char *err,
                          size_t errlen)
{
    int rc = -1;
    memset(j, 0, sizeof *j);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        snprintf(err, errlen, "document job is not JSON");
        return -1;
    }
    bool bad = false;
    const cJSON *f = get_obj(root, "engbot_file", true, err, errlen, &bad);
    int64_t size = 0;
    if (!f || get_i64(root, "chat_id", true, &j->chat_id, err, errlen) < 0 ||
        get_str(f, "id", true, j->id, sizeof j->id, err, errlen) < 0 ||
        get_str(f, "path", true, j->path, sizeof j->path, err, errlen) < 0 ||
        get_str(f, "name", true, j->name, sizeof j->name, err, errlen) < 0 ||
        get_i64(f, "size", true, &size, err, errlen) < 0 ||
        get_str(f, "caption", false, j->caption, sizeof j->caption, err, errlen) < 0)
        goto out;
    if (size < 0) {
        snprintf(err, errlen, "size is negative");
        goto out;
    }
    j->size = (uint64_t)size;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int64_t tg_json_chat_id(const char *json, size_t len)
{
    int64_t v = 0;
    char ignored[64];
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (root && get_i64(root, "chat_id", false, &v, ignored, sizeof ignored) != 0)
        v = 0;
    cJSON_Delete(root);
    return v;
}

char *tg_json_with_chat_id(const char *json, size_t len, int64_t chat_id)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "chat_id");
    add_i64(root, "chat_id", chat_id);
    return finish(root);
}
