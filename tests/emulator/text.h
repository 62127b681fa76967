/* text.h -- message text the way Telegram measures and parses it: UTF-8 validation, length in
 * UTF-16 code units (the unit of the 4096-character limit and of entity offsets), the three
 * parse modes (HTML, MarkdownV2, legacy Markdown) turned into plain text plus entities, and
 * the leading /command of a user's message.
 *
 * The parsers follow the Bot API documentation ("Formatting options") and report errors with
 * Telegram's wording after "Bad Request: can't parse entities: ". Input is untrusted (fuzzed):
 * nesting depth and entity count are capped. */
#ifndef EMU_TEXT_H
#define EMU_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#define TEXT_MAX_ENTITIES 1000 /* a message's entity cap, as in Telegram's limits */
#define TEXT_MAX_DEPTH    32

struct text_entity {
    const char *type; /* static: "bold", "italic", "text_link", ... */
    size_t offset, length; /* UTF-16 code units */
    char *url;             /* text_link */
    char *language;        /* pre */
};

/* The result of parsing; free with text_parsed_free. plain is NUL-terminated. */
struct text_parsed {
    char *plain;
    size_t plain_len;
    struct text_entity *ents;
    size_t nents;
};

bool text_utf8_valid(const char *s, size_t n);
/* Length in UTF-16 code units of valid UTF-8. */
size_t text_utf16_len(const char *s, size_t n);

/* Parses s with parse_mode (NULL/"" = plain text; "HTML", "MarkdownV2", "Markdown", any
 * case). Returns 0, or -1 with the reason in err: "unsupported parse_mode" or "can't parse
 * entities: ...". */
int text_parse(const char *parse_mode, const char *s, size_t n, struct text_parsed *out,
               char *err, size_t cap);
void text_parsed_free(struct text_parsed *p);

/* Bytes of a leading bot command ("/start", "/get@engbot_bot"), 0 when s does not start with
 * one. */
size_t text_command_len(const char *s, size_t n);

/* Whether s is empty after trimming spaces and newlines (Telegram: "message text is empty"). */
bool text_blank(const char *s, size_t n);

#endif
