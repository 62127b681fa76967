/* main.c -- the gateway program: wiring, /metrics /healthz /readyz, start-up (getMe, webhook or
 * polling) and the SIGTERM drain. Settings are in settings.c; each concept has its own file.
 *
 * Threads: the main thread (start-up, then waits for a signal and drains); the HTTP server's
 * threads (webhook, /metrics, /healthz, /readyz); the poller (polling mode); WORKERS dispatch
 * workers; SENDERS lease threads per queue-svc track; the dependency probe; the dedupe log's
 * sync thread. */
#include "bot.h"
#include "clock.h"
#include "settings.h"
#include "dedupe.h"
#include "deps.h"
#include "dispatch.h"
#include "httpd.h"
#include "intake.h"
#include "limiter.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "sender.h"
#include "tg_http.h"
#include "tg_json.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct gw_settings *cfg;

static atomic_bool g_ready, g_draining;
static struct deps *g_deps;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* guards g_not_ready */
static char g_not_ready[128] = "starting up";

/* ---- HTTP endpoints -------------------------------------------------------------------------- */

static void h_metrics(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    size_t len;
    resp->body = metrics_render(&len);
    resp->body_len = len;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void h_healthz(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    httpd_set_body(resp, "text/plain", "ok\n");
}

/* Ready = taking updates. Dependencies are reported but do not make it unready (the gateway
 * answers in degraded mode), unless ?strict=1. */
static void h_readyz(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    char deps[256];
    bool all = deps_describe(g_deps, deps, sizeof deps);
    const char *strict = httpd_query(req, "strict");
    if (atomic_load(&g_draining)) {
        resp->status = 503;
        httpd_printf(resp, "text/plain", "not ready: shutting down\n%s\n", deps);
    } else if (!atomic_load(&g_ready)) {
        resp->status = 503;
        pthread_mutex_lock(&g_mu);
        httpd_printf(resp, "text/plain", "not ready: %s\n%s\n", g_not_ready, deps);
        pthread_mutex_unlock(&g_mu);
    } else if (!all && strict && strcmp(strict, "1") == 0) {
        resp->status = 503;
        httpd_printf(resp, "text/plain", "degraded\n%s\n", deps);
    } else {
        httpd_printf(resp, "text/plain", "%s\n%s\n", all ? "ready" : "ready (degraded)", deps);
    }
}

/* ---- start-up helpers ------------------------------------------------------------------------ */

/* Sleeps up to ms; returns true when SIGTERM/SIGINT arrived. */
static bool wait_signal(int64_t ms)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    if (sig > 0) {
        LOG_INFO("signal received: draining",
                 LF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"),
                 LF_I64("grace_ms", cfg->drain_grace));
        return true;
    }
    return false;
}

/* Calls a Bot API method until it succeeds (backoff 0.5 s .. 30 s) or a signal arrives. */
static bool call_until_ok(struct tg_http *tg, const char *method, const char *body,
                          struct tg_envelope *env)
{
    int64_t backoff = 500;
    for (;;) {
        struct tg_resp r;
        char err[256] = "";
        int rc = tg_http_call(tg, method, body, 0, &r);
        if (rc == 0 && tg_json_parse_envelope(r.body, r.len, env, err, sizeof err) == 0 &&
            env->ok) {
            tg_resp_free(&r);
            return true;
        }
        pthread_mutex_lock(&g_mu);
        snprintf(g_not_ready, sizeof g_not_ready, "%s failing", method);
        pthread_mutex_unlock(&g_mu);
        LOG_WARN("Bot API call failed at start-up: retrying", LF_STR("method", method),
                 LF_STR("api", tg_http_host(tg)), LF_I64("http_status", r.http_status),
                 LF_STR("error", rc                    ? r.err
                                 : env->description[0] ? env->description
                                                       : err),
                 LF_I64("retry_in_ms", backoff));
        if (rc == 0 && (r.http_status == 401 || r.http_status == 404))
            LOG_ERROR("the Bot API rejects the token: check BOT_TOKEN / BOT_TOKEN_FILE and "
                      "TELEGRAM_API_URL");
        tg_resp_free(&r);
        if (wait_signal(backoff))
            return false;
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
}

static int exit_code(int rc)
{
    settings_free();
    return rc;
}

int main(int argc, char **argv)
{
    cfg = settings_load(argc, argv);
    const char *token = cfg->token;
    int64_t bot_id = cfg->bot_id;
    bool webhook = cfg->webhook;
    const char *hook_path = cfg->hook_path;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    enum log_level lvl = LOG_LVL_INFO;
    log_level_parse(cfg->log_level, &lvl);
    log_setup("gateway", lvl, strcmp(cfg->log_format, "text") == 0);
    log_add_secret(token);
    const char *secret = cfg->secret;
    if (secret)
        log_add_secret(secret);
    settings_log();

    metric_set(metrics_child(metrics_family("engbot_build_info",
                                            "engbot version of this process (value is 1).",
                                            METRIC_GAUGE, "svc,version", NULL, 0),
                             "gateway", engbot_version),
               1);
    struct metric_family *sw =
        metrics_family("engbot_gateway_optimisation_enabled",
                       "Optimisation switches: sessions, file_id_cache, queue, catalogue_cache "
                       "(1 on, 0 off).",
                       METRIC_GAUGE, "optimisation", NULL, 0);
    metric_set(metrics_child(sw, "sessions"), cfg->use_sessions);
    metric_set(metrics_child(sw, "file_id_cache"), cfg->use_file_ids);
    metric_set(metrics_child(sw, "queue"), cfg->use_queue);
    metric_set(metrics_child(sw, "catalogue_cache"), cfg->catalogue_cache_ttl > 0);

    /* Dependencies, Telegram clients, the pipeline. */
    struct deps_opts dopts = {
        .canary = {.chat_ids = cfg->canary_chats.ids,
                   .n_chat_ids = cfg->canary_chats.n,
                   .percent = (int)cfg->canary_percent},
        .enabled = {cfg->use_sessions, true, cfg->use_queue},
        .retries = (int)cfg->dep_retries,
        .breaker_threshold = (int)cfg->breaker_threshold,
        .breaker_open_ms = cfg->breaker_open,
        .breaker_open_max_ms = cfg->breaker_open_max,
        .reconnect_max_ms = cfg->reconnect_max,
        .read_cache_ttl_ms = {[DEP_CACHE] = cfg->catalogue_cache_ttl},
        .read_cache_bytes = (size_t)cfg->catalogue_cache_size,
    };
    for (int i = 0; i < DEP_N; i++) {
        dopts.addr[i] = cfg->addr[i];
        dopts.canary_addr[i] = cfg->canary_addr[i];
        dopts.deadline_ms[i] = cfg->deadline[i];
    }
    g_deps = deps_new(&dopts);
    deps_start(g_deps);

    static atomic_bool poll_abort;
    struct tg_http_opts to = {.api_url = cfg->api_url,
                              .token = token,
                              .connect_timeout_ms = cfg->tg_connect_timeout,
                              .timeout_ms = cfg->tg_timeout,
                              .max_response = 8u << 20};
    struct tg_http *tg = tg_http_new(&to);
    to.abort = &poll_abort;
    to.max_response = 32u << 20; /* 100 updates of up to 16 KiB text each, with room */
    struct tg_http *tg_poll = tg_http_new(&to);

    char host[256] = "gateway";
    gethostname(host, sizeof host - 1);
    struct sender_opts so = {
        .tg = tg,
        .deps = g_deps,
        .bot_id = bot_id,
        .upload_limit = (uint64_t)cfg->upload_limit,
        .use_file_ids = cfg->use_file_ids,
        .threads = (int)cfg->senders,
        .lease_batch = (int)cfg->lease_batch,
        .lease_ms = cfg->lease_time,
        .lease_wait_ms = cfg->lease_wait,
        .telegram_timeout_ms = cfg->tg_timeout,
        .name = host,
    };
    struct sender *sender = sender_new(&so);
    struct limiter *lim = limiter_new((double)cfg->direct_rate, (int)cfg->direct_burst,
                                      (int)cfg->direct_inflight, cfg->direct_max_wait);
    struct outbox_opts oo = {.deps = g_deps,
                             .sender = sender,
                             .limiter = lim,
                             .use_queue = cfg->use_queue,
                             .job_timeout_ms = cfg->job_timeout,
                             .direct_max_wait_ms = cfg->direct_max_wait,
                             .fallback_after_ms = cfg->queue_fallback_after};
    struct outbox *outbox = outbox_new(&oo);
    char err[512];
    struct dedupe *dd = dedupe_open(cfg->data_dir, (size_t)cfg->dedupe_window, err, sizeof err);
    if (!dd) {
        fprintf(stderr, "gateway: invalid DATA_DIR='%s': %s\n", cfg->data_dir, err);
        return exit_code(2);
    }

    struct httpd *http = httpd_new((size_t)cfg->webhook_max_body, 256);
    httpd_route(http, "/metrics", h_metrics, NULL);
    httpd_route(http, "/healthz", h_healthz, NULL);
    httpd_route(http, "/readyz", h_readyz, NULL);
    struct bot_opts bo = {
        .deps = g_deps,
        .outbox = outbox,
        .tg = tg,
        .admins = &cfg->admins,
        .allowed_users = &cfg->allowed_users,
        .allowed_chats = &cfg->allowed_chats,
        .page_size = (int)cfg->page_size,
        .upload_limit = (uint64_t)cfg->upload_limit,
        .use_sessions = cfg->use_sessions,
        .bot_id = bot_id,
        .answer_timeout_ms = cfg->answer_timeout,
        .started_mono_ms = clock_mono_ms(),
    };
    struct bot *bot = NULL;
    struct dispatch *dispatch = NULL;
    struct intake_webhook *hook = NULL;
    struct intake_poll *poller = NULL;
    int port = 0;
    /* Start HTTP now so /healthz and /metrics work during start-up. */
    struct intake_webhook_opts wo = {0};
    if (webhook) {
        /* The webhook needs the dispatcher, which needs the bot: create both now with an empty
         * identity and fill it in after getMe (the route answers 503 until then). */
        bot = bot_new(&bo);
        dispatch = dispatch_new((int)cfg->workers, (int)cfg->max_pending, bot_handle, bot);
        wo = (struct intake_webhook_opts){.http = http,
                                          .path = hook_path,
                                          .secret = secret,
                                          .dispatch = dispatch,
                                          .dedupe = dd,
                                          .max_wait_ms = cfg->webhook_max_wait};
        hook = intake_webhook_new(&wo);
    }
    if (httpd_start(http, cfg->http_listen, &port, err, sizeof err) < 0) {
        LOG_ERROR("cannot start", LF_STR("setting", "HTTP_LISTEN"), LF_STR("error", err));
        return exit_code(1);
    }
    LOG_INFO("listening", LF_STR("version", engbot_version), LF_I64("http_port", port),
             LF_STR("http_listen", cfg->http_listen), LF_STR("api", cfg->api_url),
             LF_STR("mode", webhook ? "webhook" : "polling"));

    /* Who are we? (The username is needed to recognise /command@botname in groups.) */
    struct tg_envelope env;
    bool stop = !call_until_ok(tg, "getMe", "{}", &env);
    if (!stop) {
        if (env.user_id && env.user_id != bot_id)
            LOG_WARN("getMe returned another bot id than the token's",
                     LF_I64("token_bot_id", bot_id), LF_I64("getme_id", env.user_id));
        snprintf(bo.username, sizeof bo.username, "%.63s", env.username);
        LOG_INFO("bot identity", LF_I64("bot_id", bot_id), LF_STR("username", env.username));
        if (!bot) {
            bot = bot_new(&bo);
            dispatch = dispatch_new((int)cfg->workers, (int)cfg->max_pending, bot_handle, bot);
        } else {
            bot_set_username(bot, env.username);
        }
        if (cfg->use_queue)
            sender_start(sender);
    }
    if (!stop && webhook) {
        char *body = tg_json_set_webhook(cfg->webhook_url, secret, (int)cfg->webhook_max_conn);
        intake_webhook_open(hook);
        stop = !call_until_ok(tg, "setWebhook", body, &env);
        free(body);
        if (!stop)
            LOG_INFO("webhook set", LF_STR("path", hook_path),
                     LF_BOOL("secret_generated", !(cfg->webhook_secret && *cfg->webhook_secret)));
    } else if (!stop) {
        /* A webhook left from an earlier run would make getUpdates fail with 409. */
        char *body = tg_json_delete_webhook();
        stop = !call_until_ok(tg, "deleteWebhook", body, &env);
        free(body);
        if (!stop) {
            struct intake_poll_opts po = {
                .tg = tg_poll,
                .abort = &poll_abort,
                .dispatch = dispatch,
                .dedupe = dd,
                .timeout_s = (int)(cfg->poll_timeout / 1000),
                .limit = (int)cfg->poll_limit,
                .max_attempts = (int)cfg->poll_attempts,
            };
            poller = intake_poll_start(&po);
        }
    }
    if (!stop) {
        atomic_store(&g_ready, true);
        LOG_INFO("serving");
        sigset_t ws;
        sigemptyset(&ws);
        sigaddset(&ws, SIGTERM);
        sigaddset(&ws, SIGINT);
        int sig = 0;
        sigwait(&ws, &sig);
        LOG_INFO("signal received: draining",
                 LF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"),
                 LF_I64("grace_ms", cfg->drain_grace));
    }

    /* Drain: stop intake, finish what is in flight within the grace, then stop the senders. */
    int64_t deadline = clock_mono_ms() + cfg->drain_grace;
    atomic_store(&g_draining, true);
    outbox_drain(outbox, deadline); /* replies waiting for queue-svc give up at the deadline */
    if (hook)
        intake_webhook_close(hook);
    if (poller)
        intake_poll_stop(poller, cfg->drain_grace);
    if (dispatch) {
        int64_t left = deadline - clock_mono_ms();
        dispatch_drain(dispatch, left > 0 ? left : 0);
    }
    sender_stop(sender);
    httpd_stop(http);
    intake_poll_free(poller);
    intake_webhook_free(hook);
    dispatch_free(dispatch);
    bot_free(bot);
    dedupe_close(dd);
    outbox_free(outbox);
    limiter_free(lim);
    sender_free(sender);
    tg_http_free(tg_poll);
    tg_http_free(tg);
    deps_free(g_deps);
    LOG_INFO("drained: exiting");
    return exit_code(0);
}
