/* webhook.c -- setWebhook / deleteWebhook / getWebhookInfo and webhook delivery.
 *
 * Delivery follows Telegram: each update is POSTed as JSON to the URL with the secret in
 * X-Telegram-Bot-Api-Secret-Token; updates of one chat go one at a time and in order (a
 * failing update holds back the later ones of its chat, other chats go on); a non-2xx answer
 * or a transport error is retried with exponential backoff and shows in getWebhookInfo as
 * last_error_date / last_error_message; a 2xx confirms the update. A JSON answer that names a
 * "method" is executed like Telegram does (its result is invisible to the bot).
 *
 * Threads: cfg.webhook_workers delivery threads, each with its own curl handle, started at
 * start-up and idle (waiting on updates_cv) while no webhook is set. At most max_connections
 * deliveries are in flight. */
#include "clock.h"
#include "emu.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEBHOOK_RESPONSE_MAX (64 * 1024)

void webhook_clear(struct emu *e)
{
    free(e->wh_url);
    free(e->wh_secret);
    free(e->wh_last_error);
    e->wh_url = e->wh_secret = e->wh_last_error = NULL;
    e->wh_last_error_date = 0;
    e->wh_max_conn = 0;
    e->wh_gen++;
    pthread_cond_broadcast(&e->updates_cv);
}

/* A set of chat ids seen during one scan (open addressing, grown as needed). */
struct chatset {
    int64_t *k;
    unsigned char *used;
    size_t cap;
};

static bool chatset_add(struct chatset *s, int64_t id) /* true if newly added */
{
    size_t mask = s->cap - 1, i = ((uint64_t)id * 0x9E3779B97F4A7C15ULL) & mask;
    while (s->used[i]) {
        if (s->k[i] == id)
            return false;
        i = (i + 1) & mask;
    }
    s->used[i] = 1;
    s->k[i] = id;
    return true;
}

static void chatset_reset(struct chatset *s, size_t need)
{
    size_t cap = 64;
    while (cap < need * 2)
        cap *= 2;
    if (cap > s->cap) {
        free(s->k);
        free(s->used);
        s->k = malloc(cap * sizeof *s->k);
        s->used = malloc(cap);
        if (!s->k || !s->used)
            abort();
        s->cap = cap;
    }
    memset(s->used, 0, s->cap);
}

/* The next update to deliver: the oldest pending update of a chat, when it is not in flight
 * and its retry time has come. *wake is lowered to the earliest retry time seen. */
static struct update *pick(struct emu *e, struct chatset *seen, int64_t now, int64_t *wake)
{
    chatset_reset(seen, e->nupdates + 1);
    for (struct update *u = e->uhead; u; u = u->next) {
        if (!chatset_add(seen, u->chat_id))
            continue; /* an earlier update of this chat is pending */
        if (u->in_flight)
            continue;
        if (u->next_try_ms > now) {
            if (u->next_try_ms < *wake)
                *wake = u->next_try_ms;
            continue;
        }
        return u;
    }
    return NULL;
}

static struct update *find(struct emu *e, int64_t id)
{
    for (struct update *u = e->uhead; u; u = u->next)
        if (u->id == id)
            return u;
    return NULL;
}

struct sink {
    char *p;
    size_t n;
};

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    struct sink *s = ud;
    size_t n = sz * nm;
    if (s->n + n > WEBHOOK_RESPONSE_MAX)
        return n; /* keep reading, stop storing: the answer body is optional */
    char *p = realloc(s->p, s->n + n + 1);
    if (!p)
        return 0;
    memcpy(p + s->n, d, n);
    s->p = p;
    s->n += n;
    s->p[s->n] = '\0';
    return n;
}

static const char *reason(long st)
{
    switch (st) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

/* POSTs one update. Returns true on 2xx; otherwise fills why. *answer gets the body. */
static bool post(struct emu *e, CURL *cu, const char *url, const char *secret, const char *body,
                 char *why, size_t cap, struct sink *answer)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    char sh[300];
    if (secret) {
        snprintf(sh, sizeof sh, "X-Telegram-Bot-Api-Secret-Token: %s", secret);
        h = curl_slist_append(h, sh);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_reset(cu);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)e->cfg.webhook_timeout);
    curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(cu, CURLOPT_USERAGENT, "engbot-bot-api-emulator");
    CURLcode rc = curl_easy_perform(cu);
    curl_slist_free_all(h);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(why, cap, "Read timeout expired");
        return false;
    }
    if (rc != CURLE_OK) {
        snprintf(why, cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return false;
    }
    long st = 0;
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &st);
    if (st < 200 || st > 299) {
        snprintf(why, cap, "Wrong response from the webhook: %ld %s", st, reason(st));
        return false;
    }
    return true;
}

/* A method carried in the webhook's answer: {"method":"sendMessage","chat_id":..,...}. */
static void run_answer(struct emu *e, const char *token, const struct sink *a)
{
    if (!a->p || !token)
        return;
    cJSON *o = cJSON_ParseWithLength(a->p, a->n);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "method");
    if (!cJSON_IsString(m) || strlen(m->valuestring) > 64) {
        cJSON_Delete(o);
        return;
    }
    char method[72];
    snprintf(method, sizeof method, "%s", m->valuestring);
    cJSON_Delete(o);
    struct params p;
    params_init(&p);
    char err[200];
    if (params_parse_json(&p, a->p, a->n, err, sizeof err) == 0) {
        int st;
        bool drop;
        free(botapi_run(e, token, method, &p, &st, &drop));
        LOG_DEBUG("webhook answer executed", LF_STR("method", method), LF_I64("status", st));
    }
    params_free(&p);
}

static void *worker(void *arg)
{
    struct emu *e = arg;
    CURL *cu = curl_easy_init();
    struct chatset seen = {0};
    if (!cu)
        abort();
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        int64_t now = clock_mono_ms();
        int64_t wake = now + 1000;
        struct update *u = NULL;
        if (e->wh_url && e->wh_inflight < e->wh_max_conn)
            u = pick(e, &seen, now, &wake);
        if (!u) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (wake - now > 0 ? wake - now : 1) * 1000000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&e->updates_cv, &e->mu, &ts);
            continue;
        }
        u->in_flight = true;
        e->wh_inflight++;
        int64_t id = u->id;
        uint64_t gen = e->wh_gen;
        char *url = strdup(e->wh_url);
        char *secret = e->wh_secret ? strdup(e->wh_secret) : NULL;
        char *body = strdup(u->json);
        char *token = e->last_token ? strdup(e->last_token) : NULL;
        pthread_mutex_unlock(&e->mu);

        char why[300] = "";
        struct sink answer = {0};
        bool ok = post(e, cu, url, secret, body, why, sizeof why, &answer);
        if (ok)
            run_answer(e, token, &answer);

        pthread_mutex_lock(&e->mu);
        e->wh_inflight--;
        u = find(e, id);
        if (u) {
            u->in_flight = false;
            if (ok) {
                updates_remove(e, u);
            } else if (gen == e->wh_gen) {
                u->attempts++;
                int64_t delay = e->cfg.webhook_retry_min;
                for (int i = 1; i < u->attempts && delay < e->cfg.webhook_retry_max; i++)
                    delay *= 2;
                if (delay > e->cfg.webhook_retry_max)
                    delay = e->cfg.webhook_retry_max;
                u->next_try_ms = clock_mono_ms() + delay;
                free(e->wh_last_error);
                e->wh_last_error = strdup(why);
                e->wh_last_error_date = emu_now_s();
                LOG_INFO("webhook delivery failed", LF_I64("update_id", id),
                         LF_I64("attempt", u->attempts), LF_STR("error", why),
                         LF_I64("retry_in_ms", delay));
                if (e->cfg.webhook_max_attempts > 0 && u->attempts >= e->cfg.webhook_max_attempts) {
                    LOG_WARN("webhook update given up", LF_I64("update_id", id),
                             LF_I64("attempts", u->attempts));
                    updates_remove(e, u);
                }
            }
        }
        pthread_cond_broadcast(&e->updates_cv);
        free(url);
        free(secret);
        free(body);
        free(token);
        free(answer.p);
    }
    pthread_mutex_unlock(&e->mu);
    free(seen.k);
    free(seen.used);
    curl_easy_cleanup(cu);
    return NULL;
}

void webhook_start(struct emu *e)
{
    e->nwh_threads = (int)e->cfg.webhook_workers;
    e->wh_threads = calloc((size_t)e->nwh_threads, sizeof *e->wh_threads);
    if (!e->wh_threads)
        abort();
    for (int i = 0; i < e->nwh_threads; i++)
        if (pthread_create(&e->wh_threads[i], NULL, worker, e) != 0)
            abort();
}

void webhook_stop(struct emu *e)
{
    for (int i = 0; i < e->nwh_threads; i++)
        pthread_join(e->wh_threads[i], NULL);
    free(e->wh_threads);
    e->wh_threads = NULL;
    e->nwh_threads = 0;
}

static bool secret_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

void m_set_webhook(struct emu *e, struct call *c)
{
    const char *url = params_str(c->p, "url");
    if (!url || !*url) {
        m_delete_webhook(e, c);
        return;
    }
    const char *secret = params_str(c->p, "secret_token");
    const char *allowed = params_str(c->p, "allowed_updates");
    int64_t maxc = 40;
    if (params_int64(c->p, "max_connections", &maxc) < 0)
        maxc = 40;
    if (maxc < 1)
        maxc = 1;
    if (maxc > 100)
        maxc = 100;
    bool drop = false;
    params_bool(c->p, "drop_pending_updates", &drop);
    bool https = strncmp(url, "https://", 8) == 0;
    if (!https && strncmp(url, "http://", 7) != 0) {
        call_bad(c, "bad webhook: Wrong HTTP URL specified");
        return;
    }
    if (!https && e->cfg.webhook_https_only) {
        call_bad(c, "bad webhook: An HTTPS URL must be provided for webhook");
        return;
    }
    if (strlen(url) > 1024 || strpbrk(url, " \r\n\t")) {
        call_bad(c, "bad webhook: Wrong HTTP URL specified");
        return;
    }
    if (secret && *secret && !secret_ok(secret)) {
        call_bad(c, "secret token contains unallowed characters");
        return;
    }
    pthread_mutex_lock(&e->mu);
    if (allowed && *allowed && !updates_set_allowed(e, allowed)) {
        pthread_mutex_unlock(&e->mu);
        call_bad(c, "can't parse allowed_updates JSON array");
        return;
    }
    bool same = e->wh_url && strcmp(e->wh_url, url) == 0 &&
                ((!e->wh_secret && !(secret && *secret)) ||
                 (e->wh_secret && secret && strcmp(e->wh_secret, secret) == 0)) &&
                e->wh_max_conn == maxc;
    if (drop)
        updates_clear(e);
    if (!same) {
        free(e->wh_url);
        free(e->wh_secret);
        e->wh_url = strdup(url);
        e->wh_secret = secret && *secret ? strdup(secret) : NULL;
        e->wh_max_conn = maxc;
        e->wh_set_ms = clock_mono_ms();
        free(e->wh_last_error);
        e->wh_last_error = NULL;
        e->wh_last_error_date = 0;
        e->wh_gen++;
        /* A fresh webhook tries pending updates at once. */
        for (struct update *u = e->uhead; u; u = u->next)
            u->next_try_ms = 0;
    }
    updates_terminate_poll(e);
    pthread_cond_broadcast(&e->updates_cv);
    pthread_mutex_unlock(&e->mu);
    LOG_INFO("webhook set", LF_STR("url", url), LF_BOOL("secret", secret && *secret),
             LF_I64("max_connections", maxc));
    c->result = cJSON_CreateTrue();
    snprintf(c->desc, sizeof c->desc, "%s", same ? "Webhook is already set" : "Webhook was set");
}

void m_delete_webhook(struct emu *e, struct call *c)
{
    bool drop = false;
    params_bool(c->p, "drop_pending_updates", &drop);
    pthread_mutex_lock(&e->mu);
    bool had = e->wh_url != NULL;
    if (drop)
        updates_clear(e);
    if (had)
        webhook_clear(e);
    pthread_mutex_unlock(&e->mu);
    c->result = cJSON_CreateTrue();
    snprintf(c->desc, sizeof c->desc, "%s",
             had ? "Webhook was deleted" : "Webhook is already deleted");
}

static cJSON *info(struct emu *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "url", e->wh_url ? e->wh_url : "");
    cJSON_AddBoolToObject(o, "has_custom_certificate", false);
    cJSON_AddNumberToObject(o, "pending_update_count", (double)updates_pending(e));
    if (e->wh_last_error) {
        cJSON_AddNumberToObject(o, "last_error_date", (double)e->wh_last_error_date);
        cJSON_AddStringToObject(o, "last_error_message", e->wh_last_error);
    }
    if (e->wh_url) {
        cJSON_AddNumberToObject(o, "max_connections", (double)e->wh_max_conn);
        cJSON_AddStringToObject(o, "ip_address", "127.0.0.1");
        cJSON *a = updates_allowed_json(e);
        if (a)
            cJSON_AddItemToObject(o, "allowed_updates", a);
    }
    return o;
}

void m_get_webhook_info(struct emu *e, struct call *c)
{
    pthread_mutex_lock(&e->mu);
    c->result = info(e);
    pthread_mutex_unlock(&e->mu);
}

cJSON *webhook_status_json(struct emu *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "url", e->wh_url ? e->wh_url : "");
    cJSON_AddBoolToObject(o, "secret_set", e->wh_secret != NULL);
    cJSON_AddNumberToObject(o, "pending_update_count", (double)updates_pending(e));
    cJSON_AddNumberToObject(o, "in_flight", (double)e->wh_inflight);
    cJSON_AddNumberToObject(o, "max_connections", (double)e->wh_max_conn);
    if (e->wh_last_error) {
        cJSON_AddStringToObject(o, "last_error_message", e->wh_last_error);
        cJSON_AddNumberToObject(o, "last_error_date", (double)e->wh_last_error_date);
    } else {
        cJSON_AddNullToObject(o, "last_error_message");
    }
    return o;
}
