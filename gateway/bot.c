/* bot.c -- update routing: allow-lists, sessions, commands (/start /help /browse /search /get
 * /cancel, admin /refresh /stats), buttons, and the reply helpers that turn decisions into
 * outbox requests with stable dedupe keys. */
#include "bot_internal.h"
#include "clock.h"
#include "log.h"
#include "text.h"

#include "engbot/queue/v1/queue.pb-c.h"
#include "engbot/session/v1/session.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char engbot_version[];

struct bot *bot_new(const struct bot_opts *o)
{
    struct bot *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    b->o = *o;
    pthread_mutex_init(&b->mu, NULL);
    struct metric_family *upd = metrics_family(
        "engbot_gateway_updates_total",
        "Updates handled, by type (malformed ones are in engbot_gateway_updates_skipped_total).",
        METRIC_COUNTER, "type", NULL, 0);
    for (int k = 0; k <= TG_UPD_OTHER; k++)
        b->updates[k] = metrics_child(upd, tg_update_kind_name((enum tg_update_kind)k));
    b->handling = metrics_histogram("engbot_gateway_update_handling_seconds",
                                    "Time from an update's start of handling until its replies "
                                    "are handed on (excludes Telegram's own delays).",
                                    metrics_latency_buckets, metrics_latency_nbuckets);
    b->refused = metrics_counter("engbot_gateway_updates_refused_total",
                                 "Updates from users or chats outside the allow-lists.");
    b->answers_direct = metrics_counter("engbot_gateway_callback_answers_total",
                                        "Callback queries answered at once (directly).");
    b->answers_failed = metrics_counter("engbot_gateway_callback_answer_failures_total",
                                        "Callback answers Telegram did not take.");
    b->blocked_by_user = metrics_counter("engbot_gateway_bot_kicked_total",
                                         "my_chat_member updates: the bot was blocked or removed.");
    struct metric_family *tr = metrics_family(
        "engbot_gateway_updates_by_track_total",
        "Updates by the chat's rollout group: stable, or canary (CANARY_CHAT_IDS/CANARY_PERCENT).",
        METRIC_COUNTER, "track", NULL, 0);
    b->track[0] = metrics_child(tr, "stable");
    b->track[1] = metrics_child(tr, "canary");
    b->commands =
        metrics_family("engbot_gateway_commands_total", "Commands and buttons handled, by name.",
                       METRIC_COUNTER, "command", NULL, 0);
    return b;
}

void bot_set_username(struct bot *b, const char *username)
{
    snprintf(b->o.username, sizeof b->o.username, "%.63s", username);
}

void bot_free(struct bot *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void ctx_count_command(struct ctx *c, const char *cmd)
{
    metric_inc(metrics_child(c->b->commands, cmd));
}

void fmt_size(uint64_t n, char *out, size_t cap)
{
    if (n < 1024)
        snprintf(out, cap, "%" PRIu64 " B", n);
    else if (n < 1024 * 1024)
        snprintf(out, cap, "%.1f KB", (double)n / 1024);
    else if (n < 1024ull * 1024 * 1024)
        snprintf(out, cap, "%.1f MB", (double)n / (1024 * 1024));
    else
        snprintf(out, cap, "%.1f GB", (double)n / (1024.0 * 1024 * 1024));
}

/* ---- replies -------------------------------------------------------------------------------- */

static void put(struct ctx *c, int64_t chat_id, const char *method, const char *payload)
{
    char key[96];
    snprintf(key, sizeof key, "%" PRId64 ":%" PRId64 ":%d", c->b->o.bot_id, c->u->update_id,
             c->pos++);
    if (outbox_put(c->b->o.outbox, key, chat_id, c->u->chat_type, method, payload) < 0)
        c->failed = true;
}

struct split_ctx {
    struct ctx *c;
    const char *parse_mode;
    const struct tg_keyboard *kb;
    int nparts;
};

static int put_part(void *ud, const char *part, size_t len, int index)
{
    struct split_ctx *s = ud;
    char *text = strndup(part, len);
    if (!text)
        abort();
    char *p = tg_json_message(s->c->u->chat_id, 0, text, s->parse_mode,
                              index == s->nparts - 1 ? s->kb : NULL);
    put(s->c, s->c->u->chat_id, "sendMessage", p);
    free(p);
    free(text);
    return 0;
}

static int count_part(void *ud, const char *part, size_t len, int index)
{
    return 0;
}

void ctx_reply(struct ctx *c, const char *text, const char *parse_mode,
               const struct tg_keyboard *kb)
{
    bool html = parse_mode && strcmp(parse_mode, "HTML") == 0;
    size_t len = strlen(text);
    struct split_ctx s = {.c = c, .parse_mode = parse_mode, .kb = kb};
    s.nparts = text_split(text, len, TEXT_MAX_UNITS, html, count_part, NULL);
    text_split(text, len, TEXT_MAX_UNITS, html, put_part, &s);
}

void ctx_edit(struct ctx *c, int64_t message_id, const char *text, const char *parse_mode,
              const struct tg_keyboard *kb)
{
    char *p = tg_json_message(c->u->chat_id, message_id, text, parse_mode, kb);
    put(c, c->u->chat_id, "editMessageText", p);
    free(p);
}

void ctx_send_doc(struct ctx *c, const Engbot__Cache__V1__Entry *e)
{
    struct tg_doc_job j = {.chat_id = c->u->chat_id, .size = e->size};
    snprintf(j.id, sizeof j.id, "%s", e->id ? e->id : "");
    snprintf(j.path, sizeof j.path, "%s", e->path ? e->path : "");
    snprintf(j.name, sizeof j.name, "%s", e->name ? e->name : "file");
    char shown[256], esc[1400], size[32];
    text_truncate(j.path, 200, shown, sizeof shown);
    text_html_escape(shown, esc, sizeof esc);
    fmt_size(e->size, size, sizeof size);
    snprintf(j.caption, sizeof j.caption, "\xF0\x9F\x93\x84 <code>%.900s</code> \xC2\xB7 %s", esc,
             size);
    char *p = tg_json_doc_job(&j);
    put(c, c->u->chat_id, "sendDocument", p);
    free(p);
}

static void answer(struct ctx *c, const char *text)
{
    struct bot *b = c->b;
    char *p = tg_json_answer_callback(c->u->callback_id, text, false);
    struct tg_resp r;
    int rc = tg_http_call(b->o.tg, "answerCallbackQuery", p, b->o.answer_timeout_ms, &r);
    struct tg_envelope env;
    char err[128];
    if (rc == 0 && tg_json_parse_envelope(r.body, r.len, &env, err, sizeof err) == 0 && env.ok) {
        metric_inc(b->answers_direct);
    } else {
        metric_inc(b->answers_failed);
        LOG_WARN("callback answer not taken", LF_I64("update_id", c->u->update_id),
                 LF_I64("http_status", r.http_status), LF_STR("error", rc ? r.err : r.body));
    }
    tg_resp_free(&r);
    free(p);
}

/* ---- sessions ------------------------------------------------------------------------------- */

static void take_session(struct ctx *c, const Engbot__Session__V1__Session *s)
{
    c->session = s != NULL;
    if (!s)
        return;
    snprintf(c->folder, sizeof c->folder, "%s", s->folder_id ? s->folder_id : "");
    c->page = s->page;
    snprintf(c->last_search, sizeof c->last_search, "%s", s->last_search ? s->last_search : "");
    c->version = s->version;
}

static void touch(struct ctx *c)
{
    struct bot *b = c->b;
    if (!b->o.use_sessions)
        return;
    Engbot__Session__V1__TouchSessionRequest req = ENGBOT__SESSION__V1__TOUCH_SESSION_REQUEST__INIT;
    req.chat_id = c->u->chat_id;
    req.user_id = c->u->user_id;
    ProtobufCMessage *m = NULL;
    struct rpc_status st;
    int code = deps_unary(b->o.deps, DEP_SESSION, c->u->chat_id, "TouchSession", &req.base,
                          &engbot__session__v1__touch_session_response__descriptor, &m,
                          DEPS_IDEMPOTENT, &st);
    if (code == RPC_OK) {
        take_session(c, ((Engbot__Session__V1__TouchSessionResponse *)m)->session);
        protobuf_c_message_free_unpacked(m, NULL);
    } else {
        deps_degraded(b->o.deps, DEP_SESSION);
        LOG_DEBUG("no session: answering statelessly", LF_STR("code", rpc_code_name(code)),
                  LF_STR("error", st.message));
    }
}

void ctx_save_place(struct ctx *c, const char *folder, uint32_t page, const char *search)
{
    struct bot *b = c->b;
    if (!c->session)
        return;
    if (strcmp(folder, c->folder) == 0 && page == c->page &&
        (!search || strcmp(search, c->last_search) == 0))
        return;
    for (int attempt = 0; attempt < 2; attempt++) {
        Engbot__Session__V1__UpdateSessionRequest req =
            ENGBOT__SESSION__V1__UPDATE_SESSION_REQUEST__INIT;
        Google__Protobuf__StringValue fv = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
        Google__Protobuf__UInt32Value pv = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
        Google__Protobuf__StringValue sv = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
        req.chat_id = c->u->chat_id;
        req.expected_version = c->version;
        fv.value = (char *)folder;
        req.folder_id = &fv;
        pv.value = page;
        req.page = &pv;
        if (search) {
            sv.value = (char *)search;
            req.last_search = &sv;
        }
        ProtobufCMessage *m = NULL;
        struct rpc_status st;
        int code =
            deps_unary(b->o.deps, DEP_SESSION, c->u->chat_id, "UpdateSession", &req.base,
                       &engbot__session__v1__update_session_response__descriptor, &m, 0, &st);
        if (code == RPC_OK) {
            take_session(c, ((Engbot__Session__V1__UpdateSessionResponse *)m)->session);
            protobuf_c_message_free_unpacked(m, NULL);
            return;
        }
        if (code != RPC_ABORTED && code != RPC_NOT_FOUND) {
            if (deps_code_is_failure(code))
                deps_degraded(b->o.deps, DEP_SESSION);
            return;
        }
        /* Someone else changed it (or it expired): re-read and try once more. */
        touch(c);
        if (!c->session)
            return;
    }
}

/* ---- allow-lists ---------------------------------------------------------------------------- */

static bool allowed(struct bot *b, const struct tg_update *u)
{
    if (b->o.allowed_users->n && !conf_idlist_has(b->o.allowed_users, u->user_id) &&
        !conf_idlist_has(b->o.admins, u->user_id))
        return false;
    if (b->o.allowed_chats->n && !conf_idlist_has(b->o.allowed_chats, u->chat_id))
        return false;
    return true;
}

/* True the first time a chat is refused (it then gets the one polite refusal). */
static bool first_refusal(struct bot *b, int64_t chat_id)
{
    bool first = true;
    pthread_mutex_lock(&b->mu);
    size_t cap = sizeof b->refused_ring / sizeof b->refused_ring[0];
    for (size_t i = 0; i < b->refused_n; i++)
        if (b->refused_ring[i] == chat_id)
            first = false;
    if (first) {
        if (b->refused_n < cap) {
            b->refused_ring[b->refused_n++] = chat_id;
        } else {
            b->refused_ring[b->refused_head] = chat_id;
            b->refused_head = (b->refused_head + 1) % cap;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return first;
}

static void refuse(struct ctx *c)
{
    struct bot *b = c->b;
    metric_inc(b->refused);
    if (c->u->chat_id == 0 || !first_refusal(b, c->u->chat_id))
        return;
    char *p =
        tg_json_message(c->u->chat_id, 0,
                        "Sorry, this bot is private. Ask an administrator to add you.", NULL, NULL);
    char key[64];
    /* Keyed by chat, not update: at most one refusal per chat within queue-svc's window, even
     * across gateway replicas and restarts. */
    snprintf(key, sizeof key, "%" PRId64 ":refuse:%" PRId64, b->o.bot_id, c->u->chat_id);
    if (outbox_put(b->o.outbox, key, c->u->chat_id, c->u->chat_type, "sendMessage", p) < 0)
        c->failed = true;
    free(p);
}

/* ---- commands ------------------------------------------------------------------------------- */

static const char HELP[] =
    "<b>Engineering files bot</b>\n"
    "/browse \xE2\x80\x94 the catalogue as buttons (tap a folder to open it, a file to get it)\n"
    "/search <i>words</i> \xE2\x80\x94 files and folders whose names contain every word\n"
    "/get <i>name</i> \xE2\x80\x94 a file by its name (or path)\n"
    "/cancel \xE2\x80\x94 forget where you were\n"
    "/help \xE2\x80\x94 this list";
static const char HELP_ADMIN[] =
    "\n\n<b>Admin</b>\n"
    "/refresh \xE2\x80\x94 rescan the catalogue now\n"
    "/stats \xE2\x80\x94 sessions, cache hit ratio, queue depth, versions";

static void cmd_help(struct ctx *c, bool welcome)
{
    char text[2048];
    snprintf(text, sizeof text, "%s%s%s",
             welcome ? "\xF0\x9F\x91\x8B Welcome! I serve the team's engineering files.\n\n" : "",
             HELP, c->admin ? HELP_ADMIN : "");
    ctx_reply(c, text, "HTML", NULL);
}

static void cmd_cancel(struct ctx *c)
{
    struct bot *b = c->b;
    if (b->o.use_sessions && c->session) {
        Engbot__Session__V1__DeleteSessionRequest req =
            ENGBOT__SESSION__V1__DELETE_SESSION_REQUEST__INIT;
        req.chat_id = c->u->chat_id;
        ProtobufCMessage *m = NULL;
        struct rpc_status st;
        int code =
            deps_unary(b->o.deps, DEP_SESSION, c->u->chat_id, "DeleteSession", &req.base,
                       &engbot__session__v1__delete_session_response__descriptor, &m, 0, &st);
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        if (deps_code_is_failure(code))
            deps_degraded(b->o.deps, DEP_SESSION);
    }
    ctx_reply(c, "Cancelled. Your place in the catalogue is reset; /browse starts at the top.",
              NULL, NULL);
}

/* Splits "/cmd@bot args" into cmd (lower case, no slash) and args. Returns false when the
 * command is addressed to another bot. */
static bool parse_command(struct ctx *c, const char *text, char *cmd, size_t cap, const char **args)
{
    const char *p = text + 1;
    size_t n = 0;
    while (*p && *p != ' ' && *p != '\n' && *p != '@' && n + 1 < cap)
        cmd[n++] = (char)tolower((unsigned char)*p++);
    cmd[n] = '\0';
    if (*p == '@') {
        const char *name = ++p;
        while (*p && *p != ' ' && *p != '\n')
            p++;
        size_t nl = (size_t)(p - name);
        const char *me = c->b->o.username;
        if (nl != strlen(me) || strncasecmp(name, me, nl) != 0)
            return false;
    }
    while (*p && *p != ' ' && *p != '\n')
        p++; /* an over-long command word */
    while (*p == ' ' || *p == '\n')
        p++;
    *args = p;
    return true;
}

static void on_message(struct ctx *c)
{
    const struct tg_update *u = c->u;
    bool group = u->chat_type != TG_CHAT_PRIVATE;
    if (u->text[0] != '/') {
        if (group || !u->text[0])
            return; /* in groups the bot only listens to commands */
        ctx_count_command(c, "text");
        browse_search(c, u->text, 0, 0); /* plain text in a private chat is a search */
        return;
    }
    char cmd[32];
    const char *args;
    if (!parse_command(c, u->text, cmd, sizeof cmd, &args))
        return;
    if (strcmp(cmd, "start") == 0) {
        ctx_count_command(c, "start");
        cmd_help(c, true);
        browse_folder(c, c->session ? c->folder : "", c->session ? c->page : 0, 0, NULL);
    } else if (strcmp(cmd, "help") == 0) {
        ctx_count_command(c, "help");
        cmd_help(c, false);
    } else if (strcmp(cmd, "browse") == 0 || strcmp(cmd, "files") == 0) {
        ctx_count_command(c, "browse");
        browse_folder(c, c->session ? c->folder : "", c->session ? c->page : 0, 0, NULL);
    } else if (strcmp(cmd, "search") == 0) {
        ctx_count_command(c, "search");
        if (*args)
            browse_search(c, args, 0, 0);
        else
            ctx_reply(c, "Usage: /search words (for example: /search pump drawing)", NULL, NULL);
    } else if (strcmp(cmd, "get") == 0) {
        ctx_count_command(c, "get");
        if (*args)
            browse_get(c, args);
        else
            ctx_reply(c, "Usage: /get name (for example: /get pump-assembly.pdf)", NULL, NULL);
    } else if (strcmp(cmd, "cancel") == 0) {
        ctx_count_command(c, "cancel");
        cmd_cancel(c);
    } else if (strcmp(cmd, "refresh") == 0 || strcmp(cmd, "stats") == 0) {
        ctx_count_command(c, cmd);
        if (!c->admin)
            ctx_reply(c, "Only admins can do that.", NULL, NULL);
        else if (cmd[0] == 'r')
            cmd_refresh(c);
        else
            cmd_stats(c);
    } else if (!group) {
        ctx_count_command(c, "unknown");
        ctx_reply(c, "I don't know that command. /help lists what I can do.", NULL, NULL);
    }
}

/* Strictly parses callback data we produced; anything else is "not valid". */
static bool parse_id(const char *s, size_t n)
{
    if (n > 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static bool parse_page(const char *s, uint32_t *page)
{
    if (!*s || strlen(s) > 6)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    *page = (uint32_t)atoi(s);
    return true;
}

static void on_callback(struct ctx *c)
{
    const struct tg_update *u = c->u;
    const char *d = u->data;
    uint32_t page;
    if (u->chat_id == 0 || u->message_id == 0)
        return; /* a button on an inline-mode message: nothing to edit */
    if (d[0] == 'n' && d[1] == ':') {
        const char *colon = strchr(d + 2, ':');
        if (colon && parse_id(d + 2, (size_t)(colon - d - 2)) && parse_page(colon + 1, &page)) {
            char id[17];
            snprintf(id, sizeof id, "%.*s", (int)(colon - d - 2), d + 2);
            ctx_count_command(c, "button_folder");
            browse_folder(c, id, page, u->message_id, NULL);
            return;
        }
    } else if (d[0] == 'f' && d[1] == ':' && d[2] && parse_id(d + 2, strlen(d + 2))) {
        ctx_count_command(c, "button_file");
        browse_file(c, d + 2);
        return;
    } else if (d[0] == 's' && d[1] == ':' && parse_page(d + 2, &page)) {
        ctx_count_command(c, "button_search");
        if (c->session && c->last_search[0])
            browse_search(c, c->last_search, page, u->message_id);
        else
            ctx_edit(c, u->message_id, "That search has expired: send /search again.", NULL, NULL);
        return;
    } else if (strcmp(d, "x") == 0) {
        return; /* the page indicator */
    }
    ctx_count_command(c, "button_invalid");
}

bool bot_handle(void *bot, const struct tg_update *u)
{
    struct bot *b = bot;
    int64_t t0 = clock_mono_us();
    struct ctx c = {.b = b, .u = u};
    metric_inc(b->updates[u->kind]);
    if (u->chat_id)
        metric_inc(b->track[deps_chat_is_canary(b->o.deps, u->chat_id) ? 1 : 0]);
    if (u->kind == TG_UPD_CALLBACK_QUERY) {
        /* At once, before any other work: the user's spinner is waiting on it. */
        const char *d = u->data;
        answer(&c, d[0] == 'f' && d[1] == ':' ? "Sending the file\xE2\x80\xA6" : NULL);
    }
    if (u->kind == TG_UPD_MY_CHAT_MEMBER) {
        if (strcmp(u->status, "kicked") == 0 || strcmp(u->status, "left") == 0) {
            metric_inc(b->blocked_by_user);
            LOG_INFO("the bot was blocked or removed", LF_I64("chat_id", u->chat_id),
                     LF_STR("status", u->status));
        }
        goto out;
    }
    if ((u->kind != TG_UPD_MESSAGE && u->kind != TG_UPD_CALLBACK_QUERY) || u->user_is_bot ||
        u->chat_id == 0 || u->chat_type == TG_CHAT_CHANNEL)
        goto out;
    if (!allowed(b, u)) {
        refuse(&c);
        goto out;
    }
    c.admin = conf_idlist_has(b->o.admins, u->user_id);
    if (u->kind == TG_UPD_MESSAGE && u->text[0] == '\0')
        goto out;
    touch(&c);
    if (u->kind == TG_UPD_MESSAGE)
        on_message(&c);
    else
        on_callback(&c);
out:
    metric_observe(b->handling, (double)(clock_mono_us() - t0) / 1e6);
    return !c.failed;
}
