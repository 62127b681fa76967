/* main.c -- bot-api-emulator: a local stand-in for Telegram's Bot API (see
 * docs/bot-api-emulator.md). Wires the settings, the HTTP server and the webhook threads, then
 * waits for SIGTERM/SIGINT. */
#include "conf.h"
#include "emu.h"
#include "httpd.h"
#include "log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static struct emu_cfg cfg;

static const struct conf_opt opts[] = {
    {"http-listen", CONF_ADDR, &cfg.http_listen, "127.0.0.1:8081", 0, 0,
     "HTTP listen address for the Bot API (/bot<token>/<method>) and /control/ (port 0 picks a "
     "free port and logs it)"},
    {"bot-token", CONF_STR, &cfg.bot_token, NULL, 0, 0,
     "the only token accepted (others get 401); empty: any <digits>:<secret> is accepted", NULL,
     CONF_SECRET},
    {"bot-username", CONF_STR, &cfg.bot_username, "engbot_emulator_bot", 0, 0,
     "the bot's username in getMe"},
    {"bot-first-name", CONF_STR, &cfg.bot_first_name, "engbot", 0, 0,
     "the bot's first_name in getMe"},
    {"upload-limit", CONF_SIZE, &cfg.upload_limit, "50MiB", 1, 4LL << 30,
     "largest document upload (Telegram's cloud Bot API: 50 MB; a local Bot API server: 2000 MB)"},
    {"download-limit", CONF_SIZE, &cfg.download_limit, "20MiB", 1, 4LL << 30,
     "largest file getFile serves (cloud Bot API: 20 MB)"},
    {"control-max-body", CONF_SIZE, &cfg.control_max_body, "1MiB", 1024, 64LL << 20,
     "largest /control/ request body"},
    {"poll-max-timeout", CONF_DURATION, &cfg.poll_max_timeout, "50s", 0, 600000,
     "longest a getUpdates long poll waits (Telegram: 50 s)"},
    {"callback-ttl", CONF_DURATION, &cfg.callback_ttl, "15s", 1, 86400000,
     "an unanswered callback query older than this is \"too old\""},
    {"ratelimits", CONF_BOOL, &cfg.ratelimits, "false", 0, 0,
     "enforce Telegram's rate limits from the start (also switched by /control/ratelimits)"},
    {"chat-burst", CONF_INT, &cfg.chat_burst, "3", 1, 1000,
     "rate limits: messages a chat may get in a burst"},
    {"chat-interval", CONF_DURATION, &cfg.chat_per_sec_ms, "1s", 1, 3600000,
     "rate limits: one more message per chat per this interval"},
    {"group-per-minute", CONF_INT, &cfg.group_per_min, "20", 1, 100000,
     "rate limits: messages per minute to one group"},
    {"global-per-second", CONF_INT, &cfg.global_per_sec, "30", 1, 100000,
     "rate limits: messages per second overall"},
    {"webhook-https-only", CONF_BOOL, &cfg.webhook_https_only, "false", 0, 0,
     "refuse http:// webhook URLs like Telegram (off so tests can use loopback http)"},
    {"webhook-timeout", CONF_DURATION, &cfg.webhook_timeout, "60s", 100, 600000,
     "how long a webhook request may take (Telegram: 60 s, then \"Read timeout expired\")"},
    {"webhook-retry-min", CONF_DURATION, &cfg.webhook_retry_min, "500ms", 1, 3600000,
     "first retry delay after a failed webhook delivery (doubles each attempt)"},
    {"webhook-retry-max", CONF_DURATION, &cfg.webhook_retry_max, "60s", 1, 86400000,
     "longest retry delay for webhook deliveries"},
    {"webhook-max-attempts", CONF_INT, &cfg.webhook_max_attempts, "0", 0, 1000000,
     "give an update up after this many failed deliveries (0 = until it expires)"},
    {"webhook-workers", CONF_INT, &cfg.webhook_workers, "8", 1, 100,
     "webhook delivery threads (deliveries in flight are also capped by max_connections)"},
    {"max-updates", CONF_INT, &cfg.max_updates, "100000", 1, 100000000,
     "updates kept unconfirmed; injecting more gets 503"},
    {"update-retention", CONF_DURATION, &cfg.update_retention, "24h", 1000, 864000000,
     "an unconfirmed update is dropped after this (Telegram: 24 h)"},
    {"max-messages", CONF_INT, &cfg.max_messages, "100000", 1, 100000000,
     "messages remembered for edits and callback queries (oldest forgotten first)"},
    {"max-transcript", CONF_INT, &cfg.max_transcript, "100000", 1, 100000000,
     "transcript events kept (oldest dropped first)"},
    {"max-files", CONF_INT, &cfg.max_files, "100000", 1, 100000000,
     "uploaded files remembered (their file_ids stop working when forgotten)"},
    {"files-memory", CONF_SIZE, &cfg.files_memory, "256MiB", 0, 64LL << 30,
     "bytes of uploaded files kept for downloads (metadata and file_ids stay beyond it)"},
    {"max-connections", CONF_INT, &cfg.max_connections, "512", 4, 100000,
     "concurrent HTTP connections (each long poll holds one)"},
    {"first-update-id", CONF_INT, &cfg.first_update_id, "0", 0, 2147483647,
     "the first update_id (0 = the Unix time in seconds at start, so a restarted emulator never "
     "repeats an id a bot has already processed)"},
    {"log-level", CONF_ENUM, &cfg.log_level, "info", 0, 0, "minimum log level",
     "debug|info|warn|error"},
    {"log-format", CONF_ENUM, &cfg.log_format, "json", 0, 0,
     "log format: one JSON object per line, or text for humans", "json|text"},
    {0},
};

int main(int argc, char **argv)
{
    const struct conf_opt *tables[] = {opts, NULL};
    conf_load(tables, argc, argv, "bot-api-emulator",
              "a local Telegram Bot API for tests and the local run, with a control API");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    enum log_level lvl = LOG_LVL_INFO;
    log_level_parse(cfg.log_level, &lvl);
    log_setup("bot-api-emulator", lvl, strcmp(cfg.log_format, "text") == 0);
    if (cfg.bot_token && *cfg.bot_token)
        log_add_secret(cfg.bot_token);
    conf_log(tables);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct emu *e = emu_new(&cfg);
    /* Uploads are capped by upload-limit in the handler (Telegram's 413 envelope); the server
     * cap leaves room for the multipart framing and other fields. */
    struct httpd *h = httpd_new((size_t)cfg.upload_limit + (1u << 20),
                                (unsigned)cfg.max_connections);
    emu_routes(e, h);
    webhook_start(e);
    char err[256];
    int port;
    if (httpd_start(h, cfg.http_listen, &port, err, sizeof err) < 0) {
        LOG_ERROR("cannot start", LF_STR("setting", "HTTP_LISTEN"), LF_STR("error", err));
        emu_stop(e);
        httpd_stop(h);
        emu_free(e);
        return 1;
    }
    LOG_INFO("listening", LF_STR("version", engbot_version), LF_I64("http_port", port),
             LF_STR("http_listen", cfg.http_listen), LF_BOOL("token_set", e->cfg.bot_token != NULL));
    int sig = 0;
    sigwait(&set, &sig);
    LOG_INFO("signal received: stopping", LF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    emu_stop(e);
    httpd_stop(h);
    emu_free(e);
    curl_global_cleanup();
    LOG_INFO("stopped");
    return 0;
}
