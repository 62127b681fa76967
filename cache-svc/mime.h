/* mime.h -- content types from file name extensions (what Telegram shows and what the gateway
 * sends as the document's MIME type). */
#ifndef ENGBOT_CACHE_MIME_H
#define ENGBOT_CACHE_MIME_H

#include <stdint.h>

/* A small index for the content type of name (0 = application/octet-stream), so a catalogue
 * entry spends one byte on it. */
uint8_t mime_index(const char *name);
/* The content type of an index from mime_index(). Static string. */
const char *mime_type(uint8_t idx);

#endif
