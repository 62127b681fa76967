/* settings.c -- the settings table and the checks that need more than a type. */
#include "settings.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static struct gw_settings cfg;

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
    {"catalogue-cache-ttl", CONF_DURATION, &cfg.catalogue_cache_ttl, "1s", 0, 3600000,
     "how long the gateway reuses a catalogue page or search answer from cache-svc for every "
     "chat (0 = off: one cache-svc call per page shown); a change of the files reaches users up "
     "to this much later"},
    {"catalogue-cache-size", CONF_SIZE, &cfg.catalogue_cache_size, "4MiB", 64 << 10, 1LL << 30,
     "memory for those answers, per cache-svc address (least recently used goes first)"},
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
    {"senders", CONF_INT, &cfg.senders, "32", 1, 256,
     "lease threads per queue-svc address (each settles its jobs one by one and Ack waits for "
     "queue-svc's fsync, so send throughput grows with threads)"},
    {"lease-batch", CONF_INT, &cfg.lease_batch, "4", 1, 100, "jobs per Lease call"},
    {"lease-time", CONF_DURATION, &cfg.lease_time, "2m", 1000, 3600000,
     "how long a leased job is ours (an upload must finish within it)"},
    {"lease-wait", CONF_DURATION, &cfg.lease_wait, "1s", 0, 30000,
     "how long a Lease waits for a ready job"},
    {"job-timeout", CONF_DURATION, &cfg.job_timeout, "5m", 1000, 86400000,
     "a reply not sent within this is dropped by queue-svc (counted as expired)"},
    {"queue-fallback-after", CONF_DURATION, &cfg.queue_fallback_after, "15s", 0, 3600000,
     "how long queue-svc must have been down before replies go out directly (until then they "
     "wait for it, keeping each chat's order; a full queue never falls back)"},
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

static void die(const char *setting, const char *why)
{
    fprintf(stderr, "gateway: invalid %s: %s\n", setting, why);
    exit(2);
}

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

const struct gw_settings *settings_load(int argc, char **argv)
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

    char *secret = NULL;
    if (webhook) {
        secret = cfg.webhook_secret && *cfg.webhook_secret ? strdup(cfg.webhook_secret)
                                                           : generate_secret();
    }
    cfg.token = token;
    cfg.bot_id = bot_id;
    cfg.webhook = webhook;
    snprintf(cfg.hook_path, sizeof cfg.hook_path, "%s", hook_path);
    cfg.secret = secret;
    return &cfg;
}

void settings_log(void)
{
    const struct conf_opt *const tables[] = {opts, NULL};
    conf_log(tables);
}

void settings_free(void)
{
    const struct conf_opt *const tables[] = {opts, NULL};
    if (cfg.token) {
        memset(cfg.token, 0, strlen(cfg.token));
        free(cfg.token);
    }
    if (cfg.secret) {
        memset(cfg.secret, 0, strlen(cfg.secret));
        free(cfg.secret);
    }
    cfg.token = cfg.secret = NULL;
    conf_free(tables);
}
