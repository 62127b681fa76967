/* markup.h -- reply_markup validation with Telegram's limits: an inline keyboard is an array of
 * rows of buttons, each with a non-empty text and exactly one action; callback_data is 1-64
 * bytes (Telegram answers "BUTTON_DATA_INVALID" otherwise); at most 100 buttons. Reply
 * keyboards, keyboard removal and force_reply are accepted as they are. */
#ifndef EMU_MARKUP_H
#define EMU_MARKUP_H

#include <stddef.h>

#define MARKUP_MAX_BUTTONS       100
#define MARKUP_MAX_CALLBACK_DATA 64

struct cJSON;

/* Parses and checks reply_markup text. Returns the parsed object (the caller frees it with
 * cJSON_Delete), or NULL with the reason in err (a fragment after "Bad Request: "). */
struct cJSON *markup_parse(const char *text, size_t len, char *err, size_t cap);

#endif
