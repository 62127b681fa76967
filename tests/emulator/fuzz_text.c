/* fuzz_text.c -- libFuzzer target for the parse modes, UTF-8/UTF-16 handling and the command
 * detector (text.c) and reply_markup checks (markup.c). The first byte picks the mode. */
#include "markup.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const modes[] = {NULL, "HTML", "MarkdownV2", "Markdown", "markup"};
    const char *mode = modes[data[0] % 5];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char err[300];
    if (mode && strcmp(mode, "markup") == 0) {
        cJSON_Delete(markup_parse(s, n, err, sizeof err));
        return 0;
    }
    if (!text_utf8_valid(s, n))
        return 0;
    struct text_parsed p;
    if (text_parse(mode, s, n, &p, err, sizeof err) == 0) {
        size_t u16 = text_utf16_len(p.plain, p.plain_len);
        if (!text_utf8_valid(p.plain, p.plain_len))
            __builtin_trap(); /* decoding must not produce invalid UTF-8 */
        for (size_t i = 0; i < p.nents; i++)
            if (p.ents[i].offset + p.ents[i].length > u16 || p.ents[i].length == 0)
                __builtin_trap(); /* entities lie inside the text */
        text_parsed_free(&p);
    }
    text_command_len(s, n);
    return 0;
}
