/* fuzz_update.c -- libFuzzer target for gateway/tg_json.c: update parsing (single updates and
 * getUpdates envelopes), envelope parsing, and the builders fed with whatever was parsed, so a
 * field that slips through validation is caught re-serialised. Also runs text splitting on the
 * parsed text. Seed corpus: tests/gateway/corpus_update/. */
#include "text.h"
#include "tg_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct tg_update u, scratch;

static int sink(void *ud, const char *part, size_t len, int index)
{
    size_t *total = ud;
    *total += len;
    return 0;
}

static void on_update(void *ud, int rc, const struct tg_update *up, const char *err)
{
    if (rc == 0 && up->text[0]) {
        size_t total = 0;
        text_split(up->text, strlen(up->text), 64, true, sink, &total);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    const char *s = (const char *)data;
    if (tg_json_parse_update(s, size, &u, err, sizeof err) == 0) {
        if (u.chat_id) {
            char *m =
                tg_json_message(u.chat_id, u.message_id, u.text[0] ? u.text : "x", "HTML", NULL);
            int64_t back = tg_json_chat_id(m, strlen(m));
            if (back != u.chat_id)
                abort(); /* an id did not survive the round trip */
            free(m);
        }
        if (u.callback_id[0]) {
            char *a = tg_json_answer_callback(u.callback_id, u.data, false);
            free(a);
        }
        size_t total = 0;
        if (!text_utf8_valid(u.text, strlen(u.text)))
            abort(); /* validation let invalid UTF-8 through */
        text_split(u.text, strlen(u.text), TEXT_MAX_UNITS, false, sink, &total);
    }
    struct tg_envelope env;
    tg_json_parse_envelope(s, size, &env, err, sizeof err);
    tg_json_parse_updates(s, size, &env, on_update, NULL, &scratch, err, sizeof err);
    struct tg_doc_job j;
    tg_json_parse_doc_job(s, size, &j, err, sizeof err);
    return 0;
}
