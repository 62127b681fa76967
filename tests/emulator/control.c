/* control.c -- the control API under /control/: what tests and the terminal chat use to act
 * as Telegram's users (inject messages and button presses, or any raw update), read what the
 * bot did (transcript, call counts), and bend the world (faults, group migration, rate
 * limits, reset). JSON in, JSON out; a bad request gets 400 {"error":"..."}. The contract is
 * documented in docs/bot-api-emulator.md. */
#include "emu.h"
#include "httpd.h"
#include "log.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WAIT_MS 60000

static void send_json(struct httpd_resp *resp, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        abort();
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = s;
    resp->body_len = strlen(s);
}

static void fail(struct httpd_resp *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct httpd_resp *resp, int status, const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", buf);
    send_json(resp, status, o);
}

/* The request's JSON object body, or NULL after answering 400/405/413. */
static cJSON *body_json(struct emu *e, const struct httpd_req *req, struct httpd_resp *resp,
                        bool allow_empty)
{
    if (strcmp(req->method, "POST") != 0) {
        fail(resp, 405, "use POST");
        return NULL;
    }
    if ((int64_t)req->body_len > e->cfg.control_max_body) {
        fail(resp, 413, "body larger than %lld bytes", (long long)e->cfg.control_max_body);
        return NULL;
    }
    if (req->body_len == 0 && allow_empty)
        return cJSON_CreateObject();
    cJSON *o = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        fail(resp, 400, "body must be a JSON object");
        return NULL;
    }
    return o;
}

/* Reads an integer field: 1 found, 0 absent, -1 not an integer (ids fit in 53 bits). */
static int get_i64(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v))
        return parse_int64(v->valuestring, out) ? 1 : -1;
    return json_int64(v, out) ? 1 : -1;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Who speaks, and where: fills the chat and user from the common fields of /control/message
 * and /control/callback. Returns false after answering 400. mu held. */
static bool actor(struct emu *e, const cJSON *in, struct httpd_resp *resp, struct chat **chp,
                  struct user **up)
{
    int64_t chat_id = 0, user_id = 0;
    int hc = get_i64(in, "chat_id", &chat_id), hu = get_i64(in, "user_id", &user_id);
    if (hc < 0 || hu < 0) {
        fail(resp, 400, "chat_id and user_id must be integers");
        return false;
    }
    const char *type = get_str(in, "chat_type");
    if (!type)
        type = hc > 0 && chat_id < 0 ? "group" : "private";
    bool priv = strcmp(type, "private") == 0;
    if (!priv && strcmp(type, "group") != 0 && strcmp(type, "supergroup") != 0) {
        fail(resp, 400, "chat_type must be private, group or supergroup");
        return false;
    }
    if (priv) {
        if (!hc && !hu) {
            fail(resp, 400, "chat_id or user_id is required");
            return false;
        }
        if (!hc)
            chat_id = user_id;
        if (!hu)
            user_id = chat_id;
        if (chat_id != user_id || chat_id <= 0) {
            fail(resp, 400, "a private chat's chat_id is the user's id (positive)");
            return false;
        }
    } else {
        if (!hc || chat_id >= 0) {
            fail(resp, 400, "a group's chat_id is required and negative");
            return false;
        }
        if (!hu)
            user_id = 1000;
        if (user_id <= 0) {
            fail(resp, 400, "user_id must be positive");
            return false;
        }
    }
    struct chat *old = store_chat(e, chat_id);
    if (old && old->migrated_to) {
        fail(resp, 409, "chat %lld was upgraded to supergroup %lld", (long long)chat_id,
             (long long)old->migrated_to);
        return false;
    }
    const char *first = get_str(in, "first_name"), *uname = get_str(in, "username");
    struct user *u = store_user_put(e, user_id, first, uname);
    struct chat *ch;
    if (priv) {
        ch = store_chat_put(e, chat_id, "private", NULL, u->username, u->first_name);
    } else {
        const char *title = get_str(in, "title");
        ch = store_chat_put(e, chat_id, old && !get_str(in, "chat_type") ? old->type : type,
                            title ? title : (old ? NULL : "Engineering team"), NULL, NULL);
    }
    *chp = ch;
    *up = u;
    return true;
}

static void h_message(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *in = body_json(e, req, resp, false);
    if (!in)
        return;
    const char *text = get_str(in, "text");
    if (!text || !*text || strlen(text) > 65536 || !text_utf8_valid(text, strlen(text))) {
        fail(resp, 400, "text must be a non-empty UTF-8 string of at most 64 KiB");
        cJSON_Delete(in);
        return;
    }
    pthread_mutex_lock(&e->mu);
    struct chat *ch;
    struct user *u;
    if (!actor(e, in, resp, &ch, &u))
        goto out;
    int64_t mid = store_next_msg_id(ch);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddNumberToObject(msg, "message_id", (double)mid);
    cJSON_AddItemToObject(msg, "from", store_user_json(u));
    cJSON_AddItemToObject(msg, "chat", store_chat_json(ch));
    cJSON_AddNumberToObject(msg, "date", (double)emu_now_s());
    cJSON_AddStringToObject(msg, "text", text);
    size_t cl = text_command_len(text, strlen(text));
    if (cl) {
        cJSON *ents = cJSON_AddArrayToObject(msg, "entities");
        cJSON *ent = cJSON_CreateObject();
        cJSON_AddNumberToObject(ent, "offset", 0);
        cJSON_AddNumberToObject(ent, "length", (double)text_utf16_len(text, cl));
        cJSON_AddStringToObject(ent, "type", "bot_command");
        cJSON_AddItemToArray(ents, ent);
    }
    struct message *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->chat_id = ch->id;
    m->message_id = mid;
    m->obj = cJSON_Duplicate(msg, true);
    store_msg_put(e, m);
    cJSON *upd = cJSON_CreateObject();
    cJSON_AddItemToObject(upd, "message", msg);
    int64_t uid = updates_push(e, upd, ch->id, "message");
    if (uid < 0) {
        fail(resp, 503, "update queue is full (%lld pending)", (long long)e->nupdates);
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "update_id", (double)uid);
    cJSON_AddNumberToObject(o, "message_id", (double)mid);
    cJSON_AddNumberToObject(o, "chat_id", (double)ch->id);
    send_json(resp, 200, o);
out:
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(in);
}

static void h_callback(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *in = body_json(e, req, resp, false);
    if (!in)
        return;
    int64_t mid = 0;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (get_i64(in, "message_id", &mid) != 1 || mid <= 0) {
        fail(resp, 400, "message_id (positive integer) is required");
        cJSON_Delete(in);
        return;
    }
    if (data && (!cJSON_IsString(data) || strlen(data->valuestring) > 4096)) {
        fail(resp, 400, "data must be a string");
        cJSON_Delete(in);
        return;
    }
    pthread_mutex_lock(&e->mu);
    struct chat *ch;
    struct user *u;
    if (!actor(e, in, resp, &ch, &u))
        goto out;
    char qid[48];
    store_cbq_new(e, ch->id, mid, u->id, qid, sizeof qid);
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "id", qid);
    cJSON_AddItemToObject(q, "from", store_user_json(u));
    struct message *m = store_msg(e, ch->id, mid);
    if (m) {
        cJSON_AddItemToObject(q, "message", cJSON_Duplicate(m->obj, true));
    } else {
        /* An inaccessible or unknown message: Telegram sends date 0 for those. */
        cJSON *mm = cJSON_AddObjectToObject(q, "message");
        cJSON_AddNumberToObject(mm, "message_id", (double)mid);
        cJSON_AddItemToObject(mm, "chat", store_chat_json(ch));
        cJSON_AddNumberToObject(mm, "date", 0);
    }
    char inst[32];
    snprintf(inst, sizeof inst, "%llu",
             (unsigned long long)((uint64_t)ch->id * 0x9E3779B97F4A7C15ULL >> 1));
    cJSON_AddStringToObject(q, "chat_instance", inst);
    if (data)
        cJSON_AddStringToObject(q, "data", data->valuestring);
    cJSON *upd = cJSON_CreateObject();
    cJSON_AddItemToObject(upd, "callback_query", q);
    int64_t uid = updates_push(e, upd, ch->id, "callback_query");
    if (uid < 0) {
        fail(resp, 503, "update queue is full");
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "update_id", (double)uid);
    cJSON_AddStringToObject(o, "callback_query_id", qid);
    send_json(resp, 200, o);
out:
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(in);
}

/* The chat an arbitrary update belongs to (for per-chat webhook ordering), or 0. */
static int64_t raw_chat(const cJSON *obj)
{
    static const char *const paths[][3] = {{"chat", "id", NULL}, {"message", "chat", "id"}};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = obj;
        for (int k = 0; k < 3 && paths[i][k] && v; k++)
            v = cJSON_GetObjectItemCaseSensitive(v, paths[i][k]);
        int64_t id;
        if (json_int64(v, &id))
            return id;
    }
    return 0;
}

static void h_raw(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *in = body_json(e, req, resp, false);
    if (!in)
        return;
    const char *type = "";
    int64_t chat = 0;
    for (cJSON *it = in->child; it; it = it->next) {
        if (strcmp(it->string, "update_id") == 0)
            continue;
        type = it->string;
        if (cJSON_IsObject(it))
            chat = raw_chat(it);
        break;
    }
    char tbuf[40];
    snprintf(tbuf, sizeof tbuf, "%s", type);
    pthread_mutex_lock(&e->mu);
    int64_t uid = updates_push(e, in, chat, tbuf);
    pthread_mutex_unlock(&e->mu);
    if (uid < 0) {
        fail(resp, 503, "update queue is full");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "update_id", (double)uid);
    send_json(resp, 200, o);
}

static bool query_i64(const struct httpd_req *req, const char *name, int64_t *out)
{
    const char *v = httpd_query(req, name);
    return v && *v && parse_int64(v, out);
}

static void h_transcript(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    int64_t chat = 0, since = 0, wait = 0;
    bool has_chat = query_i64(req, "chat_id", &chat);
    query_i64(req, "since", &since);
    query_i64(req, "wait_ms", &wait);
    if (wait > MAX_WAIT_MS)
        wait = MAX_WAIT_MS;
    pthread_mutex_lock(&e->mu);
    char *s = transcript_render(e, has_chat, chat, since, wait);
    pthread_mutex_unlock(&e->mu);
    resp->content_type = "application/json";
    resp->body = s;
    resp->body_len = strlen(s);
}

static void h_calls(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    pthread_mutex_lock(&e->mu);
    char *s = calls_render(e, httpd_query(req, "method"));
    pthread_mutex_unlock(&e->mu);
    resp->content_type = "application/json";
    resp->body = s;
    resp->body_len = strlen(s);
}

static void ok(struct httpd_resp *resp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", true);
    send_json(resp, 200, o);
}

static void h_reset(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    if (strcmp(req->method, "POST") != 0) {
        fail(resp, 405, "use POST");
        return;
    }
    emu_reset(e);
    LOG_INFO("reset");
    ok(resp);
}

static void h_fault(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *in = body_json(e, req, resp, false);
    if (!in)
        return;
    struct fault f = {0};
    const char *kind = get_str(in, "kind"), *method = get_str(in, "method");
    const char *desc = get_str(in, "description");
    if (!kind || strlen(kind) >= sizeof f.kind) {
        fail(resp, 400, "kind must be one of 429, 5xx, slow, drop, 409");
        goto out;
    }
    snprintf(f.kind, sizeof f.kind, "%s", kind);
    if (method && strlen(method) >= sizeof f.method) {
        fail(resp, 400, "method is too long");
        goto out;
    }
    if (method)
        snprintf(f.method, sizeof f.method, "%s", method);
    if (desc)
        snprintf(f.description, sizeof f.description, "%s", desc);
    int r = get_i64(in, "chat_id", &f.chat_id);
    f.has_chat = r == 1;
    if (r < 0 || get_i64(in, "count", &f.remaining) < 0 ||
        get_i64(in, "retry_after", &f.retry_after) < 0 ||
        get_i64(in, "delay_ms", &f.delay_ms) < 0 || get_i64(in, "status", &f.status) < 0) {
        fail(resp, 400, "chat_id, count, retry_after, delay_ms and status must be integers");
        goto out;
    }
    f.after = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "after"));
    char err[160];
    pthread_mutex_lock(&e->mu);
    int rc = faults_add(e, &f, err, sizeof err);
    cJSON *list = rc == 0 ? faults_json(e) : NULL;
    pthread_mutex_unlock(&e->mu);
    if (rc < 0) {
        fail(resp, 400, "%s", err);
        goto out;
    }
    LOG_INFO("fault injected", LF_STR("kind", f.kind), LF_STR("method", f.method),
             LF_I64("count", f.remaining));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", true);
    cJSON_AddItemToObject(o, "faults", list);
    send_json(resp, 200, o);
out:
    cJSON_Delete(in);
}

static void h_fault_clear(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    pthread_mutex_lock(&e->mu);
    faults_clear(e);
    pthread_mutex_unlock(&e->mu);
    ok(resp);
}

static void h_faults(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&e->mu);
    cJSON_AddItemToObject(o, "faults", faults_json(e));
    pthread_mutex_unlock(&e->mu);
    send_json(resp, 200, o);
}

static void h_migrate(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *in = body_json(e, req, resp, false);
    if (!in)
        return;
    int64_t old_id, new_id;
    if (get_i64(in, "chat_id", &old_id) != 1 || get_i64(in, "new_chat_id", &new_id) != 1 ||
        old_id >= 0 || new_id >= 0 || old_id == new_id) {
        fail(resp, 400, "chat_id and new_chat_id must be two different negative integers");
        cJSON_Delete(in);
        return;
    }
    bool service = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "service_messages"));
    pthread_mutex_lock(&e->mu);
    struct chat *old = store_chat(e, old_id);
    if (!old)
        old = store_chat_put(e, old_id, "group", "Engineering team", NULL, NULL);
    char *title = old->title ? strdup(old->title) : NULL;
    struct chat *nc = store_chat_put(e, new_id, "supergroup", title, NULL, NULL);
    free(title);
    old = store_chat(e, old_id);
    old->migrated_to = new_id;
    if (service) { /* the service messages Telegram sends on both sides */
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "message_id", (double)store_next_msg_id(old));
        cJSON_AddItemToObject(m, "chat", store_chat_json(old));
        cJSON_AddNumberToObject(m, "date", (double)emu_now_s());
        cJSON_AddNumberToObject(m, "migrate_to_chat_id", (double)new_id);
        cJSON *u = cJSON_CreateObject();
        cJSON_AddItemToObject(u, "message", m);
        updates_push(e, u, old_id, "message");
        m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "message_id", (double)store_next_msg_id(nc));
        cJSON_AddItemToObject(m, "chat", store_chat_json(nc));
        cJSON_AddNumberToObject(m, "date", (double)emu_now_s());
        cJSON_AddNumberToObject(m, "migrate_from_chat_id", (double)old_id);
        u = cJSON_CreateObject();
        cJSON_AddItemToObject(u, "message", m);
        updates_push(e, u, new_id, "message");
    }
    pthread_mutex_unlock(&e->mu);
    LOG_INFO("chat migrated", LF_I64("chat_id", old_id), LF_I64("new_chat_id", new_id));
    cJSON_Delete(in);
    ok(resp);
}

static void h_block(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *in = body_json(e, req, resp, false);
    if (!in)
        return;
    int64_t id;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(in, "blocked");
    if (get_i64(in, "chat_id", &id) != 1) {
        fail(resp, 400, "chat_id is required");
        cJSON_Delete(in);
        return;
    }
    pthread_mutex_lock(&e->mu);
    struct chat *ch = store_chat(e, id);
    if (ch)
        ch->blocked = !b || cJSON_IsTrue(b);
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(in);
    if (!ch)
        fail(resp, 404, "chat %lld is unknown", (long long)id);
    else
        ok(resp);
}

static void h_ratelimits(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *in = body_json(e, req, resp, false);
    if (!in)
        return;
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(in, "enabled");
    if (!cJSON_IsBool(en)) {
        fail(resp, 400, "enabled must be true or false");
        cJSON_Delete(in);
        return;
    }
    pthread_mutex_lock(&e->mu);
    e->ratelimits = cJSON_IsTrue(en);
    ratelimit_reset(e);
    pthread_mutex_unlock(&e->mu);
    cJSON_Delete(in);
    ok(resp);
}

static void h_webhook(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    pthread_mutex_lock(&e->mu);
    cJSON *o = webhook_status_json(e);
    pthread_mutex_unlock(&e->mu);
    send_json(resp, 200, o);
}

static void h_updates(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "updates");
    pthread_mutex_lock(&e->mu);
    for (struct update *u = e->uhead; u; u = u->next)
        cJSON_AddItemToArray(a, cJSON_CreateRaw(u->json));
    cJSON_AddNumberToObject(o, "pending", (double)e->nupdates);
    cJSON_AddBoolToObject(o, "ratelimits", e->ratelimits);
    pthread_mutex_unlock(&e->mu);
    send_json(resp, 200, o);
}

void control_routes(struct emu *e, struct httpd *h)
{
    httpd_route(h, "/control/message", h_message, e);
    httpd_route(h, "/control/callback", h_callback, e);
    httpd_route(h, "/control/raw_update", h_raw, e);
    httpd_route(h, "/control/transcript", h_transcript, e);
    httpd_route(h, "/control/calls", h_calls, e);
    httpd_route(h, "/control/reset", h_reset, e);
    httpd_route(h, "/control/fault/clear", h_fault_clear, e);
    httpd_route(h, "/control/fault", h_fault, e);
    httpd_route(h, "/control/faults", h_faults, e);
    httpd_route(h, "/control/migrate", h_migrate, e);
    httpd_route(h, "/control/block", h_block, e);
    httpd_route(h, "/control/ratelimits", h_ratelimits, e);
    httpd_route(h, "/control/webhook", h_webhook, e);
    httpd_route(h, "/control/updates", h_updates, e);
}
