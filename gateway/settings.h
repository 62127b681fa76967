/* settings.h -- the gateway's settings: one table (settings.c) of flags and environment
 * variables with defaults, bounds and help, plus the checks that need more than a type (the
 * token's shape, URLs, the webhook secret). A bad value exits 2 naming the setting. */
#ifndef ENGBOT_GW_SETTINGS_H
#define ENGBOT_GW_SETTINGS_H

#include "conf.h"
#include "deps.h"

#include <stdbool.h>
#include <stdint.h>

struct gw_settings {
    char *bot_token, *bot_token_file, *api_url, *webhook_url, *webhook_secret, *http_listen;
    char *addr[DEP_N], *canary_addr[DEP_N], *data_dir, *log_level, *log_format;
    struct conf_idlist admins, allowed_users, allowed_chats, canary_chats;
    int64_t canary_percent, workers, max_pending, page_size, upload_limit;
    bool use_sessions, use_file_ids, use_queue;
    int64_t deadline[DEP_N], dep_retries, breaker_threshold, breaker_open, breaker_open_max;
    int64_t reconnect_max, poll_timeout, poll_limit, poll_attempts, tg_timeout, tg_connect_timeout;
    int64_t senders, lease_batch, lease_time, lease_wait, job_timeout;
    int64_t direct_rate, direct_burst, direct_inflight, direct_max_wait, queue_fallback_after;
    int64_t drain_grace, dedupe_window, webhook_max_conn, webhook_max_body, webhook_max_wait;
    int64_t answer_timeout, catalogue_cache_ttl, catalogue_cache_size;
    /* Derived at load. */
    char *token;         /* from BOT_TOKEN or BOT_TOKEN_FILE; secret */
    int64_t bot_id;      /* the token's numeric part */
    bool webhook;        /* WEBHOOK_URL set */
    char hook_path[512]; /* WEBHOOK_URL's path, served on HTTP_LISTEN */
    char *secret;        /* the webhook secret (configured or generated); secret; NULL: polling */
};

/* Parses argv and the environment, validates, reads the token. Handles --help/--version.
 * Exits 2 on a bad value. The settings live until settings_free. */
const struct gw_settings *settings_load(int argc, char **argv);
/* Logs every setting at debug level (secrets as "[set]"). */
void settings_log(void);
/* Wipes the secrets and frees everything settings_load stored. */
void settings_free(void);

#endif
