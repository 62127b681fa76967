/* text.h -- text for Telegram: UTF-8 validation, splitting over Telegram's 4096-character limit
 * (counted in UTF-16 code units, as Telegram counts), HTML escaping for parse_mode=HTML, and
 * UTF-8-safe truncation for button labels. No allocation except where stated. */
#ifndef ENGBOT_GW_TEXT_H
#define ENGBOT_GW_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Telegram's limit for message text, after entity parsing, in UTF-16 code units. */
#define TEXT_MAX_UNITS 4096

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool text_utf8_valid(const char *s, size_t len);

/* UTF-16 code units of well-formed UTF-8 text (a code point above U+FFFF counts 2). */
size_t text_utf16_units(const char *s, size_t len);

/* Called once per part, in order. The part is borrowed (points into the input). Return 0 to go
 * on, non-zero to stop (text_split returns that value). */
typedef int text_part_fn(void *ud, const char *part, size_t len, int index);

/* Splits s into parts of at most max_units UTF-16 code units each, cutting at the best
 * boundary in the second half of a part: a newline, else a space, else any code-point boundary
 * (never inside a surrogate pair, i.e. a UTF-8 sequence). With html, never cuts inside a
 * <tag> or an &entity; (tags must not span lines for the parts to stay balanced: callers keep
 * each tag within a line). The separator at a cut is dropped. Text that fits is one part; empty
 * text is no part. Returns the number of parts, or the callback's non-zero value. */
int text_split(const char *s, size_t len, size_t max_units, bool html, text_part_fn *fn, void *ud);

/* Escapes &, <, > and " for parse_mode=HTML into out (cap bytes, always NUL-terminated when
 * cap > 0, cut at a character boundary). Returns the length the full escape needs (like
 * snprintf), so out was big enough when the result < cap. */
size_t text_html_escape(const char *in, char *out, size_t cap);

/* Copies at most max_bytes bytes of UTF-8 text into out (cap > max_bytes), never cutting a
 * character, appending "…" when it had to cut (the ellipsis fits within max_bytes). */
void text_truncate(const char *in, size_t max_bytes, char *out, size_t cap);

#endif
