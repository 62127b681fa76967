/* main.c -- the gateway program: settings, wiring, start-up (getMe, webhook or polling) and the
 * SIGTERM drain. Only wiring lives here; each concept has its own file.
 *
 * Threads: the main thread (start-up, then waits for a signal and drains); the HTTP server's
 * threads (webhook, /metrics, /healthz, /readyz); the poller (polling mode); WORKERS dispatch
 * workers; SENDERS lease threads per queue-svc track; the dependency probe; the dedupe log's
 * sync thread. */
#include "bot.h"
#include "clock.h"
#include "conf.h"
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

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static struct {
    char *bot_token, *bot_token_file, *api_url, *webhook_url, *webhook_secret, *http_listen;
    char *addr[DEP_N], *canary_addr[DEP_N], *data_dir, *log_level, *log_format;
    struct conf_idlist admins, allowed_users, allowed_chats, canary_chats;
    int64_t canary_percent, workers, max_pending, page_size, upload_limit;
    bool use_sessions, use_file_ids, use_queue;
    int64_t deadline[DEP_N], dep_retries, breaker_threshold, breaker_open, breaker_open_max;
    int64_t reconnect_max, poll_timeout, poll_limit, poll_attempts, tg_timeout, tg_connect_timeout;
    int64_t senders, lease_batch, lease_time, lease_wait, job_timeout;
    int64_t direct_rate, direct_burst, direct_inflight, direct_max_wait;
    int64_t drain_grace, dedupe_window, webhook_max_conn, webhook_max_body, webhook_max_wait;
    int64_t answer_timeout;
} cfg;

static const struct conf_opt opts[] = {
    {"bot-token", CONF_STR, &cfg.bot_token, NULL, 0, 0,
     "the bot's token from @BotFather (secret; prefer BOT_TOKEN_FILE)", NULL, CONF_SECRET},
    {"bot-token-file", CONF_STR, &cfg.bot_token_file, NULL, 0, 0,
     "file holding the token (a mounted Kubernetes Secret); used when BOT_TOKEN is empty"},
    {"telegram-api-url", CONF_STR, &cfg.api_url, "https://api.telegram.org", 0, 0,
     "Bot API base URL: the public API, a local Bot API server, or the emulator"},
    {"webhook-url", CONF_STR, &cfg.webhook_url, NULL, 0, 0,
     "public URL Telegram posts updates to; empty = long polling. Its path is served on "
     "HTTP_LISTEN"},
    {"webhook-secret", CONF_STR, &cfg.webhook_secret, NULL, 0, 0,
     "secret_token for setWebhook (1-256 of A-Z a-z 0-9 _ -); empty = generated at start (set it "
     "when running several replicas)",
     NULL, CONF_SECRET},
    {"webhook-max-connections", CONF_INT, &cfg.webhook_max_conn, "40", 1, 100,
     "max_connections for setWebhook: parallel deliveries Telegram may make"},
    {"webhook-max-body", CONF_SIZE, &cfg.webhook_max_body, "1MiB", 4096, 64 << 20,
     "largest webhook request body accepted (larger: 413)"},
    {"webhook-max-wait", CONF_DURATION, &cfg.webhook_max_wait, "25s", 100, 55000,
     "longest a webhook request waits for its update to be handled before answering 503 "
     "(Telegram gives up at 60 s)"},
    {"http-listen", CONF_ADDR, &cfg.http_listen, "0.0.0.0:8080", 0, 0,
     "HTTP listen address: webhook, /metrics, /healthz, /readyz (port 0 picks one)"},
    {"session-svc-addr", CONF_STR, &cfg.addr[DEP_SESSION], "127.0.0.1:50051", 0, 0,
     "session-svc address (HOST:PORT, or dns:///name:port for round-robin)"},
    {"cache-svc-addr", CONF_STR, &cfg.addr[DEP_CACHE], "127.0.0.1:50052", 0, 0,
     "cache-svc address"},
    {"queue-svc-addr", CONF_STR, &cfg.addr[DEP_QUEUE], "127.0.0.1:50053", 0, 0,
     "queue-svc address"},
    {"session-svc-canary-addr", CONF_STR, &cfg.canary_addr[DEP_SESSION], NULL, 0, 0,
     "canary session-svc serving the canary chats (empty = none)"},
    {"cache-svc-canary-addr", CONF_STR, &cfg.canary_addr[DEP_CACHE], NULL, 0, 0,
     "canary cache-svc serving the canary chats (empty = none)"},
    {"queue-svc-canary-addr", CONF_STR, &cfg.canary_addr[DEP_QUEUE], NULL, 0, 0,
     "canary queue-svc serving the canary chats (empty = none)"},
    {"canary-chat-ids", CONF_IDLIST, &cfg.canary_chats, NULL, 0, 0,
     "chats served by the canary addresses"},
    {"canary-percent", CONF_INT, &cfg.canary_percent, "0", 0, 100,
     "share of chats (by a stable hash of the chat id) served by the canary addresses"},
    {"admin-user-ids", CONF_IDLIST, &cfg.admins, NULL, 0, 0,
     "users who may /refresh and /stats (they pass ALLOWED_USER_IDS; ALLOWED_CHAT_IDS still "
     "applies)"},
    {"allowed-user-ids", CONF_IDLIST, &cfg.allowed_users, NULL, 0, 0,
     "when set, only these users (and admins) may use the bot"},
    {"allowed-chat-ids", CONF_IDLIST, &cfg.allowed_chats, NULL, 0, 0,
     "when set, the bot works only in these chats"},
    {"workers", CONF_INT, &cfg.workers, "16", 1, 256,
     "worker threads handling updates (one chat's updates stay in order)"},
    {"max-pending", CONF_INT, &cfg.max_pending, "1000", 1, 100000,
     "updates waiting or in progress at once; intake waits past it"},
    {"page-size", CONF_INT, &cfg.page_size, "8", 1, 20, "entries per page of the browser"},
    {"upload-limit", CONF_SIZE, &cfg.upload_limit, "50MiB", 1 << 20, 2000LL << 20,
     "largest file the bot sends (50MiB on the cloud Bot API, 2000MiB with a local server)"},
    {"use-sessions", CONF_BOOL, &cfg.use_sessions, "true", 0, 0,
     "use session-svc (off: every answer is stateless)"},
    {"use-file-id-cache", CONF_BOOL, &cfg.use_file_ids, "true", 0, 0,
     "reuse Telegram file_ids stored in cache-svc (off: upload every time)"},
    {"use-queue", CONF_BOOL, &cfg.use_queue, "true", 0, 0,
     "send replies through queue-svc (off: send directly through the in-process limiter)"},
    {"session-deadline", CONF_DURATION, &cfg.deadline[DEP_SESSION], "500ms", 10, 60000,
     "deadline of a session-svc call"},
    {"cache-deadline", CONF_DURATION, &cfg.deadline[DEP_CACHE], "2s", 10, 60000,
     "deadline of a cache-svc call"},
    {"queue-deadline", CONF_DURATION, &cfg.deadline[DEP_QUEUE], "1s", 10, 60000,
     "deadline of a queue-svc call"},
    {"dep-retries", CONF_INT, &cfg.dep_retries, "1", 0, 5,
     "extra attempts of an idempotent call that found a service UNAVAILABLE (within a 10% "
     "retry budget)"},
    {"breaker-threshold", CONF_INT, &cfg.breaker_threshold, "3", 1, 1000,
     "consecutive failures that open a dependency's circuit breaker"},
    {"breaker-open", CONF_DURATION, &cfg.breaker_open, "1s", 10, 600000,
     "how long an open breaker fails fast before probing"},
    {"breaker-open-max", CONF_DURATION, &cfg.breaker_open_max, "30s", 10, 3600000,
     "cap of the open period (it doubles on each failed probe)"},
    {"reconnect-max", CONF_DURATION, &cfg.reconnect_max, "2s", 100, 120000,
     "cap of gRPC's reconnect backoff (how soon a restarted service is seen)"},
    {"poll-timeout", CONF_DURATION, &cfg.poll_timeout, "25s", 0, 50000,
     "getUpdates long-poll timeout"},
    {"poll-limit", CONF_INT, &cfg.poll_limit, "100", 1, 100, "updates per getUpdates"},
    {"poll-attempts", CONF_INT, &cfg.poll_attempts, "3", 1, 100,
     "times a failing update is retried before it is skipped"},
    {"telegram-timeout", CONF_DURATION, &cfg.tg_timeout, "30s", 100, 600000,
     "timeout of one Bot API request (uploads use a stall timeout instead)"},
    {"telegram-connect-timeout", CONF_DURATION, &cfg.tg_connect_timeout, "10s", 100, 120000,
     "connect timeout to the Bot API"},
    {"senders", CONF_INT, &cfg.senders, "16", 1, 256,
     "lease threads per queue-svc address (each settles its jobs one by one and Ack waits for "
     "queue-svc's fsync, so send throughput grows with threads)"},
    {"lease-batch", CONF_INT, &cfg.lease_batch, "8", 1, 100, "jobs per Lease call"},
    {"lease-time", CONF_DURATION, &cfg.lease_time, "2m", 1000, 3600000,
     "how long a leased job is ours (an upload must finish within it)"},
    {"lease-wait", CONF_DURATION, &cfg.lease_wait, "1s", 0, 30000,
     "how long a Lease waits for a ready job"},
    {"job-timeout", CONF_DURATION, &cfg.job_timeout, "5m", 1000, 86400000,
     "a reply not sent within this is dropped by queue-svc (counted as expired)"},
    {"direct-rate", CONF_INT, &cfg.direct_rate, "30", 1, 10000,
     "direct sends per second while queue-svc is unusable"},
    {"direct-burst", CONF_INT, &cfg.direct_burst, "10", 1, 10000, "burst of direct sends"},
    {"direct-max-inflight", CONF_INT, &cfg.direct_inflight, "8", 1, 1000,
     "direct sends in flight at once"},
    {"direct-max-wait", CONF_DURATION, &cfg.direct_max_wait, "5s", 0, 60000,
     "longest a direct send waits (for the limiter or a retry_after) before it is dropped"},
    {"answer-timeout", CONF_DURATION, &cfg.answer_timeout, "5s", 100, 60000,
     "timeout of answerCallbackQuery (sent directly, at once)"},
    {"data-dir", CONF_STR, &cfg.data_dir, "data", 0, 0,
     "directory for the update dedupe window (survives restarts); empty = memory only"},
    {"dedupe-window", CONF_INT, &cfg.dedupe_window, "100000", 100, 10000000,
     "update_ids remembered to skip re-deliveries"},
    {"drain-grace", CONF_DURATION, &cfg.drain_grace, "10s", 0, 3600000,
     "at SIGTERM, how long updates in flight may take to finish"},
    {"log-level", CONF_ENUM, &cfg.log_level, "info", 0, 0, "minimum log level",
     "debug|info|warn|error"},
    {"log-format", CONF_ENUM, &cfg.log_format, "json", 0, 0,
     "log format: one JSON object per line, or text for humans", "json|text"},
    {0},
};

static atomic_bool g_ready, g_draining;
static struct deps *g_deps;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* guards g_not_ready */
static char g_not_ready[128] = "starting up";

static void die(const char *setting, const char *why)
{
    fprintf(stderr, "gateway: invalid %s: %s\n", setting, why);
    exit(2);
}

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

static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        char why[300];
        snprintf(why, sizeof why, "'%s': %s", path, strerror(errno));
        die("BOT_TOKEN_FILE", why);
    }
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    char *t = strdup(buf);
    memset(buf, 0, sizeof buf);
    return t;
}

/* "<digits>:<[A-Za-z0-9_-]+>" -> bot id; -1 when malformed. */
static int64_t token_bot_id(const char *t)
{
    const char *colon = strchr(t, ':');
    if (!colon || colon == t || colon - t > 18 || !colon[1] || strlen(t) > 256)
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

static bool secret_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 256)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return false;
    return true;
}

static char *generate_secret(void)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[48];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        LOG_ERROR("getrandom failed: cannot generate the webhook secret");
        exit(1);
    }
    char *s = malloc(sizeof raw + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < sizeof raw; i++)
        s[i] = alphabet[raw[i] % 62]; /* 62^48: the small modulo bias is irrelevant here */
    s[sizeof raw] = '\0';
    return s;
}

/* The path part of a URL ("/" when none). */
static void url_path(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    snprintf(out, cap, "%s", p ? p : "/");
    char *q = strchr(out, '?');
    if (q)
        *q = '\0';
}

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
                 LF_I64("grace_ms", cfg.drain_grace));
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
    const struct conf_opt *const tables[] = {opts, NULL};
    conf_free(tables);
    return rc;
}

int main(int argc, char **argv)
{
    const struct conf_opt *const tables[] = {opts, NULL};
    conf_load(tables, argc, argv, "gateway",
              "the engbot Telegram gateway: intake, bot logic and senders");

    /* Settings that need more than a type check. */
    char *token = cfg.bot_token && *cfg.bot_token ? strdup(cfg.bot_token) : NULL;
    if (!token && cfg.bot_token_file && *cfg.bot_token_file)
        token = read_token_file(cfg.bot_token_file);
    if (!token)
        die("BOT_TOKEN",
            "'' (empty): set BOT_TOKEN or BOT_TOKEN_FILE to the token @BotFather gave");
    int64_t bot_id = token_bot_id(token);
    if (bot_id <= 0)
        die(cfg.bot_token && *cfg.bot_token ? "BOT_TOKEN='[secret]'" : "BOT_TOKEN_FILE contents",
            "expected <digits>:<letters, digits, _ or -> as issued by @BotFather");
    if (strncmp(cfg.api_url, "http://", 7) != 0 && strncmp(cfg.api_url, "https://", 8) != 0)
        die("TELEGRAM_API_URL", "expected an http:// or https:// URL");
    bool webhook = cfg.webhook_url && *cfg.webhook_url;
    char hook_path[512] = "";
    if (webhook) {
        if (strncmp(cfg.webhook_url, "https://", 8) != 0 &&
            strncmp(cfg.webhook_url, "http://", 7) != 0)
            die("WEBHOOK_URL",
                "expected an https:// URL (http:// only for a local Bot API server)");
        url_path(cfg.webhook_url, hook_path, sizeof hook_path);
        if (!strcmp(hook_path, "/metrics") || !strcmp(hook_path, "/healthz") ||
            !strcmp(hook_path, "/readyz"))
            die("WEBHOOK_URL", "its path must not be /metrics, /healthz or /readyz");
        if (cfg.webhook_secret && *cfg.webhook_secret && !secret_valid(cfg.webhook_secret))
            die("WEBHOOK_SECRET='[secret]'", "expected 1-256 characters of A-Z a-z 0-9 _ -");
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    enum log_level lvl = LOG_LVL_INFO;
    log_level_parse(cfg.log_level, &lvl);
    log_setup("gateway", lvl, strcmp(cfg.log_format, "text") == 0);
    log_add_secret(token);
    char *secret = NULL;
    if (webhook) {
        secret = cfg.webhook_secret && *cfg.webhook_secret ? strdup(cfg.webhook_secret)
                                                           : generate_secret();
        log_add_secret(secret);
    }
    conf_log(tables);

    metric_set(metrics_child(metrics_family("engbot_build_info",
                                            "engbot version of this process (value is 1).",
                                            METRIC_GAUGE, "svc,version", NULL, 0),
                             "gateway", engbot_version),
               1);
    struct metric_family *sw =
        metrics_family("engbot_gateway_optimisation_enabled",
                       "Optimisation switches: sessions, file_id_cache, queue (1 on, 0 off).",
                       METRIC_GAUGE, "optimisation", NULL, 0);
    metric_set(metrics_child(sw, "sessions"), cfg.use_sessions);
    metric_set(metrics_child(sw, "file_id_cache"), cfg.use_file_ids);
    metric_set(metrics_child(sw, "queue"), cfg.use_queue);

    /* Dependencies, Telegram clients, the pipeline. */
    struct deps_opts dopts = {
        .canary = {.chat_ids = cfg.canary_chats.ids,
                   .n_chat_ids = cfg.canary_chats.n,
                   .percent = (int)cfg.canary_percent},
        .enabled = {cfg.use_sessions, true, cfg.use_queue},
        .retries = (int)cfg.dep_retries,
        .breaker_threshold = (int)cfg.breaker_threshold,
        .breaker_open_ms = cfg.breaker_open,
        .breaker_open_max_ms = cfg.breaker_open_max,
        .reconnect_max_ms = cfg.reconnect_max,
    };
    for (int i = 0; i < DEP_N; i++) {
        dopts.addr[i] = cfg.addr[i];
        dopts.canary_addr[i] = cfg.canary_addr[i];
        dopts.deadline_ms[i] = cfg.deadline[i];
    }
    g_deps = deps_new(&dopts);
    deps_start(g_deps);

    static atomic_bool poll_abort;
    struct tg_http_opts to = {.api_url = cfg.api_url,
                              .token = token,
                              .connect_timeout_ms = cfg.tg_connect_timeout,
                              .timeout_ms = cfg.tg_timeout,
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
        .upload_limit = (uint64_t)cfg.upload_limit,
        .use_file_ids = cfg.use_file_ids,
        .threads = (int)cfg.senders,
        .lease_batch = (int)cfg.lease_batch,
        .lease_ms = cfg.lease_time,
        .lease_wait_ms = cfg.lease_wait,
        .telegram_timeout_ms = cfg.tg_timeout,
        .name = host,
    };
    struct sender *sender = sender_new(&so);
    struct limiter *lim = limiter_new((double)cfg.direct_rate, (int)cfg.direct_burst,
                                      (int)cfg.direct_inflight, cfg.direct_max_wait);
    struct outbox_opts oo = {.deps = g_deps,
                             .sender = sender,
                             .limiter = lim,
                             .use_queue = cfg.use_queue,
                             .job_timeout_ms = cfg.job_timeout,
                             .direct_max_wait_ms = cfg.direct_max_wait};
    struct outbox *outbox = outbox_new(&oo);
    char err[512];
    struct dedupe *dd = dedupe_open(cfg.data_dir, (size_t)cfg.dedupe_window, err, sizeof err);
    if (!dd) {
        fprintf(stderr, "gateway: invalid DATA_DIR='%s': %s\n", cfg.data_dir, err);
        return exit_code(2);
    }

    struct httpd *http = httpd_new((size_t)cfg.webhook_max_body, 256);
    httpd_route(http, "/metrics", h_metrics, NULL);
    httpd_route(http, "/healthz", h_healthz, NULL);
    httpd_route(http, "/readyz", h_readyz, NULL);
    struct bot_opts bo = {
        .deps = g_deps,
        .outbox = outbox,
        .tg = tg,
        .admins = &cfg.admins,
        .allowed_users = &cfg.allowed_users,
        .allowed_chats = &cfg.allowed_chats,
        .page_size = (int)cfg.page_size,
        .upload_limit = (uint64_t)cfg.upload_limit,
        .use_sessions = cfg.use_sessions,
        .bot_id = bot_id,
        .answer_timeout_ms = cfg.answer_timeout,
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
        dispatch = dispatch_new((int)cfg.workers, (int)cfg.max_pending, bot_handle, bot);
        wo = (struct intake_webhook_opts){.http = http,
                                          .path = hook_path,
                                          .secret = secret,
                                          .dispatch = dispatch,
                                          .dedupe = dd,
                                          .max_wait_ms = cfg.webhook_max_wait};
        hook = intake_webhook_new(&wo);
    }
    if (httpd_start(http, cfg.http_listen, &port, err, sizeof err) < 0) {
        LOG_ERROR("cannot start", LF_STR("setting", "HTTP_LISTEN"), LF_STR("error", err));
        return exit_code(1);
    }
    LOG_INFO("listening", LF_STR("version", engbot_version), LF_I64("http_port", port),
             LF_STR("http_listen", cfg.http_listen), LF_STR("api", cfg.api_url),
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
            dispatch = dispatch_new((int)cfg.workers, (int)cfg.max_pending, bot_handle, bot);
        } else {
            bot_set_username(bot, env.username);
        }
        if (cfg.use_queue)
            sender_start(sender);
    }
    if (!stop && webhook) {
        char *body = tg_json_set_webhook(cfg.webhook_url, secret, (int)cfg.webhook_max_conn);
        intake_webhook_open(hook);
        stop = !call_until_ok(tg, "setWebhook", body, &env);
        free(body);
        if (!stop)
            LOG_INFO("webhook set", LF_STR("path", hook_path),
                     LF_BOOL("secret_generated", !(cfg.webhook_secret && *cfg.webhook_secret)));
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
                .timeout_s = (int)(cfg.poll_timeout / 1000),
                .limit = (int)cfg.poll_limit,
                .max_attempts = (int)cfg.poll_attempts,
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
                 LF_I64("grace_ms", cfg.drain_grace));
    }

    /* Drain: stop intake, finish what is in flight within the grace, then stop the senders. */
    int64_t deadline = clock_mono_ms() + cfg.drain_grace;
    atomic_store(&g_draining, true);
    if (hook)
        intake_webhook_close(hook);
    if (poller)
        intake_poll_stop(poller, cfg.drain_grace);
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
    memset(token, 0, strlen(token));
    free(token);
    free(secret);
    LOG_INFO("drained: exiting");
    return exit_code(0);
}
