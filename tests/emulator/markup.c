/* markup.c -- reply_markup checks (see markup.h). */
#include "markup.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* Button fields that make a button do something; exactly one must be present. */
static const char *const actions[] = {
    "callback_data", "url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "login_url", "web_app", "callback_game", "pay",
    "copy_text",
};

static int check_button(const cJSON *b, char *err, size_t cap)
{
    if (!cJSON_IsObject(b)) {
        snprintf(err, cap, "can't parse inline keyboard button: InlineKeyboardButton must be an "
                           "Object");
        return -1;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(b, "text");
    if (!cJSON_IsString(text)) {
        snprintf(err, cap,
                 "can't parse inline keyboard button: Field \"text\" must be of type String");
        return -1;
    }
    if (!text_utf8_valid(text->valuestring, strlen(text->valuestring))) {
        snprintf(err, cap, "strings must be encoded in UTF-8");
        return -1;
    }
    if (text_blank(text->valuestring, strlen(text->valuestring))) {
        snprintf(err, cap, "BUTTON_TEXT_INVALID");
        return -1;
    }
    int nact = 0;
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (cJSON_GetObjectItemCaseSensitive(b, actions[i]))
            nact++;
    if (nact == 0) {
        snprintf(err, cap,
                 "can't parse inline keyboard button: Text buttons are unallowed in the inline "
                 "keyboard");
        return -1;
    }
    if (nact > 1) {
        snprintf(err, cap, "can't parse inline keyboard button: exactly one of the optional "
                           "fields must be used");
        return -1;
    }
    const cJSON *cd = cJSON_GetObjectItemCaseSensitive(b, "callback_data");
    if (cd) {
        if (!cJSON_IsString(cd)) {
            snprintf(err, cap, "can't parse inline keyboard button: Field \"callback_data\" must "
                               "be of type String");
            return -1;
        }
        size_t n = strlen(cd->valuestring);
        if (n < 1 || n > MARKUP_MAX_CALLBACK_DATA) {
            snprintf(err, cap, "BUTTON_DATA_INVALID");
            return -1;
        }
    }
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(b, "url");
    if (url) {
        if (!cJSON_IsString(url)) {
            snprintf(err, cap,
                     "can't parse inline keyboard button: Field \"url\" must be of type String");
            return -1;
        }
        const char *u = url->valuestring;
        if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0 &&
            strncmp(u, "tg://", 5) != 0) {
            snprintf(err, cap, "inline keyboard button URL '%.200s' is invalid: Wrong HTTP URL", u);
            return -1;
        }
    }
    return 0;
}

cJSON *markup_parse(const char *text, size_t len, char *err, size_t cap)
{
    cJSON *m = cJSON_ParseWithLength(text, len);
    if (!m || !cJSON_IsObject(m)) {
        snprintf(err, cap, "can't parse reply keyboard markup JSON object");
        goto bad;
    }
    const cJSON *ik = cJSON_GetObjectItemCaseSensitive(m, "inline_keyboard");
    if (!ik) {
        if (cJSON_GetObjectItemCaseSensitive(m, "keyboard") ||
            cJSON_GetObjectItemCaseSensitive(m, "remove_keyboard") ||
            cJSON_GetObjectItemCaseSensitive(m, "force_reply"))
            return m;
        snprintf(err, cap, "can't find field \"inline_keyboard\"");
        goto bad;
    }
    if (!cJSON_IsArray(ik)) {
        snprintf(err, cap, "field \"inline_keyboard\" of the InlineKeyboardMarkup should be an "
                           "Array of Arrays");
        goto bad;
    }
    int nbuttons = 0;
    for (const cJSON *row = ik->child; row; row = row->next) {
        if (!cJSON_IsArray(row)) {
            snprintf(err, cap, "field \"inline_keyboard\" of the InlineKeyboardMarkup should be "
                               "an Array of Arrays");
            goto bad;
        }
        for (const cJSON *b = row->child; b; b = b->next) {
            if (++nbuttons > MARKUP_MAX_BUTTONS) {
                snprintf(err, cap, "reply markup is too long");
                goto bad;
            }
            if (check_button(b, err, cap) < 0)
                goto bad;
        }
    }
    return m;
bad:
    cJSON_Delete(m);
    return NULL;
}
