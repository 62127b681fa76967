/* methods.c -- the Bot API methods that act in chats: getMe, sendMessage, editMessageText,
 * editMessageReplyMarkup, deleteMessage, sendDocument, answerCallbackQuery, getFile,
 * sendChatAction, set/getMyCommands. Each validates like Telegram (limits, parse modes,
 * keyboards, file ids), answers with Telegram's shapes, and records what it did in the
 * transcript. */
#include "clock.h"
#include "emu.h"
#include "markup.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TEXT_LIMIT      4096 /* UTF-16 units, after entity parsing */
#define CAPTION_LIMIT   1024
#define CALLBACK_TEXT_LIMIT 200
#define WRONG_FILE      "wrong file identifier/HTTP URL specified"
#define NOT_MODIFIED                                                                               \
    "message is not modified: specified new message content and reply markup are exactly the "   \
    "same as a current content and reply markup of the message"

int64_t emu_now_s(void)
{
    return (int64_t)time(NULL);
}

struct chat *methods_target_chat(struct emu *e, struct call *c, int64_t *chat_id_out)
{
    const char *s = params_str(c->p, "chat_id");
    if (!s || !*s) {
        call_bad(c, "chat_id is empty");
        return NULL;
    }
    struct chat *ch = NULL;
    int64_t id;
    if (s[0] == '@') {
        for (struct hmap_entry *it = e->chats.oldest; it; it = it->newer) {
            struct chat *x = it->val;
            if (x->username && strcasecmp(x->username, s + 1) == 0 &&
                strcmp(x->type, "private") != 0)
                ch = x;
        }
    } else if (parse_int64(s, &id)) {
        ch = store_chat(e, id);
    }
    if (!ch) {
        call_bad(c, "chat not found");
        return NULL;
    }
    if (ch->migrated_to) {
        call_bad(c, "group chat was upgraded to a supergroup chat");
        c->parameters = cJSON_CreateObject();
        cJSON_AddNumberToObject(c->parameters, "migrate_to_chat_id", (double)ch->migrated_to);
        return NULL;
    }
    if (ch->blocked) {
        call_error(c, 403, "Forbidden: %s",
                   strcmp(ch->type, "private") == 0 ? "bot was blocked by the user"
                                                    : "bot was kicked from the group chat");
        return NULL;
    }
    if (chat_id_out)
        *chat_id_out = ch->id;
    return ch;
}

/* Validates text (or a caption) with its parse_mode; fills tp on success. */
static bool check_text(struct call *c, const char *text, const char *mode, size_t limit,
                       bool caption, struct text_parsed *tp)
{
    size_t n = strlen(text);
    if (!text_utf8_valid(text, n)) {
        call_bad(c, "strings must be encoded in UTF-8");
        return false;
    }
    char err[300];
    if (text_parse(mode, text, n, tp, err, sizeof err) < 0) {
        call_bad(c, "%s", err);
        return false;
    }
    if (!caption && text_blank(tp->plain, tp->plain_len)) {
        text_parsed_free(tp);
        call_bad(c, "message text is empty");
        return false;
    }
    if (text_utf16_len(tp->plain, tp->plain_len) > limit) {
        text_parsed_free(tp);
        call_bad(c, caption ? "message caption is too long" : "message is too long");
        return false;
    }
    return true;
}

static cJSON *entities_json(const struct text_parsed *tp)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < tp->nents; i++) {
        const struct text_entity *t = &tp->ents[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "offset", (double)t->offset);
        cJSON_AddNumberToObject(o, "length", (double)t->length);
        cJSON_AddStringToObject(o, "type", t->type);
        if (t->url)
            cJSON_AddStringToObject(o, "url", t->url);
        if (t->language)
            cJSON_AddStringToObject(o, "language", t->language);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* Sets text (or caption) and its entities on a Message object. */
static void set_text(cJSON *msg, const struct text_parsed *tp, bool caption)
{
    const char *tk = caption ? "caption" : "text";
    const char *ek = caption ? "caption_entities" : "entities";
    cJSON_DeleteItemFromObjectCaseSensitive(msg, tk);
    cJSON_DeleteItemFromObjectCaseSensitive(msg, ek);
    if (tp && (tp->plain_len || !caption)) {
        cJSON_AddStringToObject(msg, tk, tp->plain);
        if (tp->nents)
            cJSON_AddItemToObject(msg, ek, entities_json(tp));
    }
}

/* Parses reply_markup when present. *ok false means the error is set on c. */
static cJSON *get_markup(struct call *c, bool *ok)
{
    *ok = true;
    const char *m = params_str(c->p, "reply_markup");
    if (!m || !*m)
        return NULL;
    char err[300];
    cJSON *j = markup_parse(m, strlen(m), err, sizeof err);
    if (!j) {
        call_bad(c, "%s", err);
        *ok = false;
    }
    return j;
}

static bool rate_ok(struct emu *e, struct call *c, const struct chat *ch)
{
    int64_t w = ratelimit_take(e, ch);
    if (!w)
        return true;
    call_error(c, 429, "Too Many Requests: retry after %lld", (long long)w);
    c->parameters = cJSON_CreateObject();
    cJSON_AddNumberToObject(c->parameters, "retry_after", (double)w);
    return false;
}

static cJSON *new_message(struct emu *e, struct chat *ch, int64_t mid)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "message_id", (double)mid);
    cJSON_AddItemToObject(m, "from", store_bot_json(e));
    cJSON_AddItemToObject(m, "chat", store_chat_json(ch));
    cJSON_AddNumberToObject(m, "date", (double)emu_now_s());
    return m;
}

/* reply_to_message_id / reply_parameters.message_id must name a message of the chat unless
 * allow_sending_without_reply. */
static bool reply_ok(struct emu *e, struct call *c, const struct chat *ch)
{
    int64_t rid = 0;
    bool allow = false;
    params_bool(c->p, "allow_sending_without_reply", &allow);
    const char *rp = params_str(c->p, "reply_parameters");
    if (rp) {
        cJSON *j = cJSON_Parse(rp);
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(j, "message_id");
        const cJSON *aw = cJSON_GetObjectItemCaseSensitive(j, "allow_sending_without_reply");
        if (mid && !json_int64(mid, &rid))
            rid = -1;
        if (cJSON_IsTrue(aw))
            allow = true;
        cJSON_Delete(j);
    } else if (params_int64(c->p, "reply_to_message_id", &rid) < 0) {
        rid = -1;
    }
    if (rid == 0 || allow)
        return true;
    if (rid > 0 && rid < ch->next_msg_id)
        return true; /* messages of the chat may have been evicted from the store; trust ids */
    call_bad(c, "message to be replied not found");
    return false;
}

void m_get_me(struct emu *e, struct call *c)
{
    pthread_mutex_lock(&e->mu);
    cJSON *b = store_bot_json(e);
    pthread_mutex_unlock(&e->mu);
    cJSON_AddBoolToObject(b, "can_join_groups", true);
    cJSON_AddBoolToObject(b, "can_read_all_group_messages", false);
    cJSON_AddBoolToObject(b, "supports_inline_queries", false);
    c->result = b;
}

static cJSON *text_event(const char *text, const char *mode, const struct text_parsed *tp,
                         const cJSON *markup, int64_t mid)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "message_id", (double)mid);
    cJSON_AddStringToObject(ev, "text", text);
    if (mode && *mode)
        cJSON_AddStringToObject(ev, "parse_mode", mode);
    cJSON_AddStringToObject(ev, "plain", tp->plain);
    if (markup)
        cJSON_AddItemToObject(ev, "reply_markup", cJSON_Duplicate(markup, true));
    return ev;
}

static void store_message(struct emu *e, struct chat *ch, int64_t mid, const char *text,
                          const char *mode, const cJSON *markup, cJSON *obj)
{
    struct message *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->chat_id = ch->id;
    m->message_id = mid;
    m->from_bot = true;
    m->text = text ? strdup(text) : NULL;
    m->parse_mode = mode && *mode ? strdup(mode) : NULL;
    m->markup = markup ? cJSON_PrintUnformatted(markup) : NULL;
    m->obj = cJSON_Duplicate(obj, true);
    store_msg_put(e, m);
}

void m_send_message(struct emu *e, struct call *c)
{
    const char *text = params_str(c->p, "text");
    const char *mode = params_str(c->p, "parse_mode");
    struct text_parsed tp = {0};
    bool ok;
    cJSON *markup = NULL;
    pthread_mutex_lock(&e->mu);
    struct chat *ch = methods_target_chat(e, c, NULL);
    if (!ch)
        goto out;
    if (!text || !*text) {
        call_bad(c, "message text is empty");
        goto out;
    }
    if (!check_text(c, text, mode, TEXT_LIMIT, false, &tp))
        goto out;
    markup = get_markup(c, &ok);
    if (!ok || !reply_ok(e, c, ch) || !rate_ok(e, c, ch))
        goto out;
    int64_t mid = store_next_msg_id(ch);
    cJSON *msg = new_message(e, ch, mid);
    set_text(msg, &tp, false);
    if (markup && cJSON_GetObjectItemCaseSensitive(markup, "inline_keyboard"))
        cJSON_AddItemToObject(msg, "reply_markup", cJSON_Duplicate(markup, true));
    store_message(e, ch, mid, text, mode, markup, msg);
    transcript_add(e, "sendMessage", ch->id, text_event(text, mode, &tp, markup, mid));
    c->result = msg;
out:
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(markup);
    text_parsed_free(&tp);
}

/* The bot message named by chat_id + message_id, or NULL with the error set. */
static struct message *editable(struct emu *e, struct call *c, struct chat **chp)
{
    if (params_str(c->p, "inline_message_id")) {
        call_bad(c, "MESSAGE_ID_INVALID");
        return NULL;
    }
    struct chat *ch = methods_target_chat(e, c, NULL);
    if (!ch)
        return NULL;
    int64_t mid;
    int r = params_int64(c->p, "message_id", &mid);
    if (r == 0) {
        call_bad(c, "message identifier is not specified");
        return NULL;
    }
    struct message *m = r > 0 ? store_msg(e, ch->id, mid) : NULL;
    if (!m) {
        call_bad(c, "message to edit not found");
        return NULL;
    }
    if (!m->from_bot) {
        call_bad(c, "message can't be edited");
        return NULL;
    }
    *chp = ch;
    return m;
}

/* Compares the parts of two messages an edit can change. */
static bool same_content(const cJSON *a, const cJSON *b)
{
    static const char *const keys[] = {"text", "entities", "caption", "caption_entities",
                                       "reply_markup"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
        if (!x != !y || (x && !cJSON_Compare(x, y, true)))
            return false;
    }
    return true;
}

static void finish_edit(struct emu *e, struct call *c, struct chat *ch, struct message *m,
                        cJSON *msg, const char *method, cJSON *ev)
{
    if (same_content(m->obj, msg)) {
        cJSON_Delete(msg);
        cJSON_Delete(ev);
        call_bad(c, NOT_MODIFIED);
        return;
    }
    if (!rate_ok(e, c, ch)) {
        cJSON_Delete(msg);
        cJSON_Delete(ev);
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(msg, "edit_date");
    cJSON_AddNumberToObject(msg, "edit_date", (double)emu_now_s());
    cJSON_Delete(m->obj);
    m->obj = cJSON_Duplicate(msg, true);
    transcript_add(e, method, ch->id, ev);
    c->result = msg;
}

static void replace_markup(cJSON *msg, const cJSON *markup)
{
    cJSON_DeleteItemFromObjectCaseSensitive(msg, "reply_markup");
    if (markup && cJSON_GetObjectItemCaseSensitive(markup, "inline_keyboard"))
        cJSON_AddItemToObject(msg, "reply_markup", cJSON_Duplicate(markup, true));
}

void m_edit_message_text(struct emu *e, struct call *c)
{
    const char *text = params_str(c->p, "text");
    const char *mode = params_str(c->p, "parse_mode");
    struct text_parsed tp = {0};
    cJSON *markup = NULL;
    bool ok;
    struct chat *ch = NULL;
    pthread_mutex_lock(&e->mu);
    struct message *m = editable(e, c, &ch);
    if (!m)
        goto out;
    if (cJSON_GetObjectItemCaseSensitive(m->obj, "document")) {
        call_bad(c, "there is no text in the message to edit");
        goto out;
    }
    if (!text || !*text) {
        call_bad(c, "message text is empty");
        goto out;
    }
    if (!check_text(c, text, mode, TEXT_LIMIT, false, &tp))
        goto out;
    markup = get_markup(c, &ok);
    if (!ok)
        goto out;
    cJSON *msg = cJSON_Duplicate(m->obj, true);
    set_text(msg, &tp, false);
    replace_markup(msg, markup);
    finish_edit(e, c, ch, m, msg, "editMessageText",
                text_event(text, mode, &tp, markup, m->message_id));
    if (c->status == 200) {
        free(m->text);
        free(m->parse_mode);
        free(m->markup);
        m->text = strdup(text);
        m->parse_mode = mode && *mode ? strdup(mode) : NULL;
        m->markup = markup ? cJSON_PrintUnformatted(markup) : NULL;
    }
out:
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(markup);
    text_parsed_free(&tp);
}

void m_edit_message_reply_markup(struct emu *e, struct call *c)
{
    cJSON *markup = NULL;
    bool ok;
    struct chat *ch = NULL;
    pthread_mutex_lock(&e->mu);
    struct message *m = editable(e, c, &ch);
    if (!m)
        goto out;
    markup = get_markup(c, &ok);
    if (!ok)
        goto out;
    cJSON *msg = cJSON_Duplicate(m->obj, true);
    replace_markup(msg, markup);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "message_id", (double)m->message_id);
    if (markup)
        cJSON_AddItemToObject(ev, "reply_markup", cJSON_Duplicate(markup, true));
    finish_edit(e, c, ch, m, msg, "editMessageReplyMarkup", ev);
out:
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(markup);
}

void m_delete_message(struct emu *e, struct call *c)
{
    pthread_mutex_lock(&e->mu);
    struct chat *ch = methods_target_chat(e, c, NULL);
    int64_t mid = 0;
    if (!ch)
        goto out;
    if (params_int64(c->p, "message_id", &mid) != 1 || !store_msg_del(e, ch->id, mid)) {
        call_bad(c, "message to delete not found");
        goto out;
    }
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "message_id", (double)mid);
    transcript_add(e, "deleteMessage", ch->id, ev);
    c->result = cJSON_CreateTrue();
out:
    pthread_mutex_unlock(&e->mu);
}

/* The document part of a sendDocument request: an uploaded part (directly or by
 * attach://name) or a string (a file_id or a URL). */
static const struct param *document_param(struct call *c)
{
    const struct param *d = params_find(c->p, "document");
    if (d && !d->filename && strncmp(d->value, "attach://", 9) == 0) {
        const struct param *a = params_find(c->p, d->value + 9);
        return a && a->filename ? a : NULL;
    }
    return d;
}

void m_send_document(struct emu *e, struct call *c)
{
    const struct param *d = document_param(c);
    const char *caption = params_str(c->p, "caption");
    const char *mode = params_str(c->p, "parse_mode");
    struct text_parsed tp = {0};
    cJSON *markup = NULL;
    bool ok, have_caption = caption && *caption;
    pthread_mutex_lock(&e->mu);
    struct chat *ch = methods_target_chat(e, c, NULL);
    if (!ch)
        goto out;
    if (!d || (!d->filename && !*d->value)) {
        call_bad(c, "there is no document in the request");
        goto out;
    }
    bool upload = d->filename != NULL;
    c->variant = upload ? "upload" : "file_id";
    struct file *f = NULL;
    if (upload) {
        if ((int64_t)d->len > e->cfg.upload_limit) {
            call_error(c, 413, "Request Entity Too Large");
            goto out;
        }
        if (d->len == 0) {
            call_bad(c, "file must be non-empty");
            goto out;
        }
        if (!text_utf8_valid(d->filename, strlen(d->filename))) {
            call_bad(c, "strings must be encoded in UTF-8");
            goto out;
        }
    } else {
        f = store_file(e, d->value);
        if (!f || f->bot_id != c->bot_id) {
            call_bad(c, WRONG_FILE);
            goto out;
        }
    }
    if (have_caption && !check_text(c, caption, mode, CAPTION_LIMIT, true, &tp))
        goto out;
    markup = get_markup(c, &ok);
    if (!ok || !reply_ok(e, c, ch) || !rate_ok(e, c, ch))
        goto out;
    if (upload) {
        const char *name = d->filename[0] ? d->filename : "document";
        const char *slash = strrchr(name, '/');
        f = store_file_add(e, c->bot_id, slash ? slash + 1 : name, d->ctype, d->value, d->len);
    }
    int64_t mid = store_next_msg_id(ch);
    cJSON *msg = new_message(e, ch, mid);
    cJSON_AddItemToObject(msg, "document", store_document_json(f));
    if (have_caption)
        set_text(msg, &tp, true);
    if (markup && cJSON_GetObjectItemCaseSensitive(markup, "inline_keyboard"))
        cJSON_AddItemToObject(msg, "reply_markup", cJSON_Duplicate(markup, true));
    store_message(e, ch, mid, caption, mode, markup, msg);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "message_id", (double)mid);
    if (have_caption) {
        cJSON_AddStringToObject(ev, "caption", caption);
        cJSON_AddStringToObject(ev, "plain", tp.plain);
        if (mode && *mode)
            cJSON_AddStringToObject(ev, "parse_mode", mode);
    }
    if (markup)
        cJSON_AddItemToObject(ev, "reply_markup", cJSON_Duplicate(markup, true));
    cJSON *doc = cJSON_AddObjectToObject(ev, "document");
    cJSON_AddStringToObject(doc, "file_id", f->file_id);
    cJSON_AddStringToObject(doc, "file_unique_id", f->unique_id);
    cJSON_AddStringToObject(doc, "file_name", f->name);
    cJSON_AddNumberToObject(doc, "file_size", (double)f->size);
    cJSON_AddStringToObject(doc, "mime_type", f->mime);
    cJSON_AddStringToObject(doc, "sha256", f->sha256);
    cJSON_AddBoolToObject(doc, "uploaded", upload);
    transcript_add(e, "sendDocument", ch->id, ev);
    c->result = msg;
out:
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(markup);
    text_parsed_free(&tp);
}

void m_answer_callback_query(struct emu *e, struct call *c)
{
    const char *id = params_str(c->p, "callback_query_id");
    const char *text = params_str(c->p, "text");
    const char *url = params_str(c->p, "url");
    bool alert = false;
    params_bool(c->p, "show_alert", &alert);
    pthread_mutex_lock(&e->mu);
    struct cbq *q = id && *id && strlen(id) < 64 ? store_cbq(e, id) : NULL;
    if (!q || q->answered || clock_mono_ms() - q->created_ms > e->cfg.callback_ttl) {
        call_bad(c, "query is too old and response timeout expired or query ID is invalid");
        goto out;
    }
    if (text && (!text_utf8_valid(text, strlen(text)) ||
                 text_utf16_len(text, strlen(text)) > CALLBACK_TEXT_LIMIT)) {
        call_bad(c, "MESSAGE_TOO_LONG");
        goto out;
    }
    q->answered = true;
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "callback_query_id", id);
    if (q->message_id)
        cJSON_AddNumberToObject(ev, "message_id", (double)q->message_id);
    if (text && *text)
        cJSON_AddStringToObject(ev, "text", text);
    if (url && *url)
        cJSON_AddStringToObject(ev, "url", url);
    cJSON_AddBoolToObject(ev, "show_alert", alert);
    transcript_add(e, "answerCallbackQuery", q->chat_id, ev);
    c->result = cJSON_CreateTrue();
out:
    pthread_mutex_unlock(&e->mu);
}

void m_get_file(struct emu *e, struct call *c)
{
    const char *id = params_str(c->p, "file_id");
    pthread_mutex_lock(&e->mu);
    struct file *f = id && *id ? store_file(e, id) : NULL;
    if (!f || f->bot_id != c->bot_id) {
        call_bad(c, "invalid file_id");
        goto out;
    }
    if (f->size > e->cfg.download_limit) {
        call_bad(c, "file is too big");
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file_id", f->file_id);
    cJSON_AddStringToObject(o, "file_unique_id", f->unique_id);
    cJSON_AddNumberToObject(o, "file_size", (double)f->size);
    cJSON_AddStringToObject(o, "file_path", f->path);
    c->result = o;
out:
    pthread_mutex_unlock(&e->mu);
}

void m_send_chat_action(struct emu *e, struct call *c)
{
    static const char *const actions[] = {
        "typing",          "upload_photo",   "record_video", "upload_video",
        "record_voice",    "upload_voice",   "upload_document", "choose_sticker",
        "find_location",   "record_video_note", "upload_video_note",
    };
    const char *a = params_str(c->p, "action");
    bool known = false;
    for (size_t i = 0; a && i < sizeof actions / sizeof actions[0]; i++)
        known |= strcmp(a, actions[i]) == 0;
    pthread_mutex_lock(&e->mu);
    struct chat *ch = methods_target_chat(e, c, NULL);
    if (!ch)
        goto out;
    if (!known) {
        call_bad(c, "wrong parameter action in request");
        goto out;
    }
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "action", a);
    transcript_add(e, "sendChatAction", ch->id, ev);
    c->result = cJSON_CreateTrue();
out:
    pthread_mutex_unlock(&e->mu);
}

void m_set_my_commands(struct emu *e, struct call *c)
{
    const char *s = params_str(c->p, "commands");
    cJSON *a = s ? cJSON_Parse(s) : NULL;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > 100) {
        cJSON_Delete(a);
        call_bad(c, "can't parse commands JSON object");
        return;
    }
    for (const cJSON *it = a->child; it; it = it->next) {
        const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(it, "command");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(it, "description");
        if (!cJSON_IsString(cmd) || !cJSON_IsString(desc) || !*cmd->valuestring ||
            strlen(cmd->valuestring) > 32 || !*desc->valuestring ||
            strlen(desc->valuestring) > 256) {
            cJSON_Delete(a);
            call_bad(c, "BOT_COMMAND_INVALID");
            return;
        }
    }
    pthread_mutex_lock(&e->mu);
    cJSON_Delete(e->commands);
    e->commands = a;
    pthread_mutex_unlock(&e->mu);
    c->result = cJSON_CreateTrue();
}

void m_get_my_commands(struct emu *e, struct call *c)
{
    pthread_mutex_lock(&e->mu);
    c->result = e->commands ? cJSON_Duplicate(e->commands, true) : cJSON_CreateArray();
    pthread_mutex_unlock(&e->mu);
}
