/* fuzz_request.c -- libFuzzer target for whole Bot API requests: a method name, a
 * Content-Type and a body run through the same decoding and method code as an HTTP request
 * (botapi_run), against one emulator state with a user's chat already known. Long polls are
 * disabled (poll-max-timeout 0) so no input can block. Input: "<method>\n<ctype>\n<body>". */
#include "emu.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct emu *E;

static void init(void)
{
    static struct emu_cfg cfg = {
        .bot_username = "fuzz_bot", .bot_first_name = "fuzz", .upload_limit = 1 << 20,
        .download_limit = 1 << 20, .control_max_body = 1 << 20, .poll_max_timeout = 0,
        .callback_ttl = 15000, .chat_burst = 3, .chat_per_sec_ms = 1000, .group_per_min = 20,
        .global_per_sec = 30, .webhook_timeout = 100, .webhook_retry_min = 100,
        .webhook_retry_max = 1000, .webhook_workers = 1, .max_updates = 1000,
        .max_messages = 1000, .max_transcript = 1000, .max_files = 100, .files_memory = 1 << 22,
        .update_retention = 86400000, .max_connections = 4, .first_update_id = 1,
    };
    E = emu_new(&cfg);
    pthread_mutex_lock(&E->mu);
    store_chat_put(E, 42, "private", NULL, "u", "U");
    store_chat_put(E, -7, "group", "G", NULL, NULL);
    pthread_mutex_unlock(&E->mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!E)
        init();
    const char *s = (const char *)data, *end = s + size;
    const char *nl1 = memchr(s, '\n', size);
    if (!nl1 || nl1 - s > 64)
        return 0;
    const char *nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
    if (!nl2 || nl2 - nl1 > 128)
        return 0;
    char method[72], ct[136];
    memcpy(method, s, (size_t)(nl1 - s));
    method[nl1 - s] = '\0';
    memcpy(ct, nl1 + 1, (size_t)(nl2 - nl1 - 1));
    ct[nl2 - nl1 - 1] = '\0';
    struct params p;
    char err[200];
    params_init(&p);
    if (params_parse_body(&p, ct, nl2 + 1, (size_t)(end - nl2 - 1), err, sizeof err) == 0) {
        int st;
        bool drop;
        /* setWebhook would start deliveries to whatever URL the input names: not here. */
        if (strcasecmp(method, "setWebhook") != 0)
            free(botapi_run(E, "123:fuzz", method, &p, &st, &drop));
    }
    params_free(&p);
    /* Keep the state bounded across runs. */
    pthread_mutex_lock(&E->mu);
    bool big = E->messages.n > 500 || E->nupdates > 500;
    pthread_mutex_unlock(&E->mu);
    if (big)
        emu_reset(E);
    return 0;
}
