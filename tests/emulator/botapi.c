/* botapi.c -- the Bot API surface: /bot<token>/<method> and /file/bot<token>/<path>.
 *
 * A request's parameters come from the query string and the body (form, JSON or multipart)
 * like on Telegram; the token is checked (the configured one, or any <digits>:<secret> when
 * none is configured); method names are case-insensitive; injected faults and rate limits
 * apply before the method runs; every answer is Telegram's envelope
 * {"ok":true,"result":...} / {"ok":false,"error_code":N,"description":"...","parameters":{}}.
 * Every call is counted by method and outcome (/control/calls). */
#include "emu.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONFLICT_POLL                                                                              \
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "  \
    "running"
#define FORM_BODY_MAX (1 << 20) /* non-multipart bodies; uploads are capped by upload_limit */

typedef void method_fn(struct emu *e, struct call *c);

static const struct {
    const char *name;
    method_fn *fn;
} methods[] = {
    {"getMe", m_get_me},
    {"getUpdates", m_get_updates},
    {"setWebhook", m_set_webhook},
    {"deleteWebhook", m_delete_webhook},
    {"getWebhookInfo", m_get_webhook_info},
    {"sendMessage", m_send_message},
    {"editMessageText", m_edit_message_text},
    {"editMessageReplyMarkup", m_edit_message_reply_markup},
    {"deleteMessage", m_delete_message},
    {"sendDocument", m_send_document},
    {"answerCallbackQuery", m_answer_callback_query},
    {"getFile", m_get_file},
    {"sendChatAction", m_send_chat_action},
    {"setMyCommands", m_set_my_commands},
    {"getMyCommands", m_get_my_commands},
};
#define NMETHODS (sizeof methods / sizeof methods[0])

/* Parameter names read from the query string (the body wins when both carry one). */
static const char *const query_names[] = {
    "chat_id", "text", "parse_mode", "reply_markup", "message_id", "inline_message_id",
    "offset", "limit", "timeout", "allowed_updates", "url", "secret_token", "max_connections",
    "drop_pending_updates", "ip_address", "document", "caption", "callback_query_id",
    "show_alert", "cache_time", "file_id", "action", "commands", "reply_to_message_id",
    "reply_parameters", "allow_sending_without_reply", "disable_notification",
    "protect_content", "link_preview_options", "disable_web_page_preview", "entities",
    "caption_entities", "message_thread_id", "disable_content_type_detection", "thumbnail",
    "scope", "language_code",
};

void call_error(struct call *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->desc, sizeof c->desc, fmt, ap);
    va_end(ap);
    c->status = status;
    cJSON_Delete(c->result);
    c->result = NULL;
}

void call_bad(struct call *c, const char *fmt, ...)
{
    char buf[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    call_error(c, 400, "Bad Request: %s", buf);
}

char *botapi_envelope(const struct call *c)
{
    cJSON *o = cJSON_CreateObject();
    if (c->status == 200) {
        cJSON_AddBoolToObject(o, "ok", true);
        cJSON_AddItemToObject(o, "result", c->result ? cJSON_Duplicate(c->result, true)
                                                     : cJSON_CreateTrue());
        if (c->desc[0])
            cJSON_AddStringToObject(o, "description", c->desc);
    } else {
        cJSON_AddBoolToObject(o, "ok", false);
        cJSON_AddNumberToObject(o, "error_code", c->status);
        cJSON_AddStringToObject(o, "description", c->desc);
        if (c->parameters)
            cJSON_AddItemToObject(o, "parameters", cJSON_Duplicate(c->parameters, true));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        abort();
    return s;
}

/* <digits>:<[A-Za-z0-9_-]+>; returns the bot id or -1. */
static int64_t token_bot_id(const char *t)
{
    const char *colon = strchr(t, ':');
    if (!colon || colon == t || colon - t > 19 || !colon[1] || strlen(colon + 1) > 128)
        return -1;
    int64_t id = 0;
    for (const char *p = t; p < colon; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        id = id * 10 + (*p - '0');
    }
    for (const char *p = colon + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return -1;
    return id;
}

static struct metric_family *m_requests;

static const char *status_text(int64_t st)
{
    switch (st) {
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Internal Server Error";
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

char *botapi_run(struct emu *e, const char *token, const char *method, struct params *p,
                 int *status, bool *drop)
{
    struct call c = {.p = p, .status = 200, .method = "unknown"};
    int idx = -1;
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcasecmp(methods[i].name, method) == 0)
            idx = (int)i;
    int64_t bot_id = token_bot_id(token);
    bool authorized = bot_id >= 0 && (!e->cfg.bot_token || strcmp(token, e->cfg.bot_token) == 0);
    struct fault f;
    bool faulted = false;
    *drop = false;
    if (!authorized) {
        call_error(&c, 401, "Unauthorized");
    } else if (idx < 0) {
        call_error(&c, 404, "Not Found");
    } else {
        c.method = methods[idx].name;
        c.bot_id = bot_id;
        int64_t chat_id = 0;
        const char *cs = params_str(p, "chat_id");
        bool has_chat = cs && parse_int64(cs, &chat_id);
        pthread_mutex_lock(&e->mu);
        if (!e->cfg.bot_token)
            e->bot_id = bot_id;
        if (!e->last_token || strcmp(e->last_token, token) != 0) {
            free(e->last_token);
            e->last_token = strdup(token);
        }
        faulted = faults_match(e, c.method, has_chat, chat_id, &f);
        pthread_mutex_unlock(&e->mu);
        if (faulted && strcmp(f.kind, "slow") == 0) {
            sleep_ms(f.delay_ms);
            faulted = false;
        }
        if (!faulted || (strcmp(f.kind, "drop") == 0 && f.after)) {
            methods[idx].fn(e, &c);
            if (faulted)
                c.drop = true;
        } else if (strcmp(f.kind, "drop") == 0) {
            c.drop = true;
        } else if (strcmp(f.kind, "429") == 0) {
            call_error(&c, 429, "Too Many Requests: retry after %lld", (long long)f.retry_after);
            c.parameters = cJSON_CreateObject();
            cJSON_AddNumberToObject(c.parameters, "retry_after", (double)f.retry_after);
        } else if (strcmp(f.kind, "5xx") == 0) {
            call_error(&c, (int)f.status, "%s",
                       f.description[0] ? f.description : status_text(f.status));
        } else if (strcmp(f.kind, "409") == 0) {
            call_error(&c, 409, "%s", f.description[0] ? f.description : CONFLICT_POLL);
        }
    }
    char outcome[16];
    if (c.drop)
        snprintf(outcome, sizeof outcome, "dropped");
    else if (c.status == 200)
        snprintf(outcome, sizeof outcome, "ok");
    else
        snprintf(outcome, sizeof outcome, "%d", c.status);
    pthread_mutex_lock(&e->mu);
    calls_count(e, c.method, outcome, c.variant);
    pthread_mutex_unlock(&e->mu);
    if (m_requests)
        metric_inc(metrics_child(m_requests, c.method, outcome));
    LOG_DEBUG("bot api call", LF_STR("method", c.method), LF_STR("outcome", outcome),
              LF_STR("description", c.status == 200 ? "" : c.desc));
    *status = c.status;
    *drop = c.drop;
    char *env = c.drop ? NULL : botapi_envelope(&c);
    cJSON_Delete(c.result);
    cJSON_Delete(c.parameters);
    return env;
}

static void reply(struct httpd_resp *resp, int status, char *json)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = json;
    resp->body_len = strlen(json);
}

static void reply_error(struct httpd_resp *resp, int status, const char *desc)
{
    struct call c = {.status = status};
    snprintf(c.desc, sizeof c.desc, "%s", desc);
    reply(resp, status, botapi_envelope(&c));
}

/* /bot<token>/<method> */
static void h_bot(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    const char *rest = req->path + 4;
    const char *slash = strchr(rest, '/');
    if (!slash || !slash[1] || strchr(slash + 1, '/') || slash - rest > 160 ||
        strlen(slash + 1) > 64) {
        reply_error(resp, 404, "Not Found");
        return;
    }
    char token[168], method[72];
    snprintf(token, sizeof token, "%.*s", (int)(slash - rest), rest);
    snprintf(method, sizeof method, "%s", slash + 1);
    const char *ct = httpd_header(req, "Content-Type");
    bool multipart = ct && strncasecmp(ct, "multipart/", 10) == 0;
    if (!multipart && req->body_len > FORM_BODY_MAX) {
        reply_error(resp, 413, "Request Entity Too Large");
        return;
    }
    struct params p;
    params_init(&p);
    char err[200];
    if (params_parse_body(&p, ct, req->body, req->body_len, err, sizeof err) < 0) {
        char d[260];
        snprintf(d, sizeof d, "Bad Request: %s", err);
        reply_error(resp, 400, d);
        params_free(&p);
        return;
    }
    for (size_t i = 0; i < sizeof query_names / sizeof query_names[0]; i++) {
        const char *v = httpd_query(req, query_names[i]);
        if (v)
            params_add(&p, query_names[i], strlen(query_names[i]), v, strlen(v), NULL, NULL);
    }
    int status;
    bool drop;
    char *env = botapi_run(e, token, method, &p, &status, &drop);
    params_free(&p);
    if (drop) {
        resp->close = true;
        return;
    }
    reply(resp, status, env);
}

/* /file/bot<token>/<file_path>: downloads of files the bot can getFile. */
static void h_file(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    const char *rest = req->path + 9;
    const char *slash = strchr(rest, '/');
    char token[168];
    if (!slash || slash - rest > 160) {
        reply_error(resp, 404, "Not Found");
        return;
    }
    snprintf(token, sizeof token, "%.*s", (int)(slash - rest), rest);
    int64_t bot_id = token_bot_id(token);
    if (bot_id < 0 || (e->cfg.bot_token && strcmp(token, e->cfg.bot_token) != 0)) {
        reply_error(resp, 401, "Unauthorized");
        return;
    }
    pthread_mutex_lock(&e->mu);
    struct file *f = store_file_by_path(e, slash + 1);
    if (!f || !f->bytes || f->bot_id != bot_id || f->size > e->cfg.download_limit) {
        pthread_mutex_unlock(&e->mu);
        reply_error(resp, 404, "Not Found");
        return;
    }
    resp->body = malloc((size_t)f->size + 1);
    if (!resp->body)
        abort();
    memcpy(resp->body, f->bytes, (size_t)f->size);
    resp->body_len = (size_t)f->size;
    resp->content_type = "application/octet-stream";
    pthread_mutex_unlock(&e->mu);
}

void botapi_routes(struct emu *e, struct httpd *h)
{
    m_requests = metrics_family("emulator_bot_api_requests_total",
                                "Bot API calls received by method and outcome.", METRIC_COUNTER,
                                "method,outcome", NULL, 0);
    httpd_route(h, "/file/bot*", h_file, e);
    httpd_route(h, "/bot*", h_bot, e);
}
