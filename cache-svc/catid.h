/* catid.h -- catalogue ids: short, stable names for folders and files that fit Telegram's
 * 64-byte callback data with room to spare.
 *
 * Scheme v1 (docs/cache-svc.md, "Ids"): id = the low 60 bits of SipHash-2-4 of the relative
 * path (UTF-8 bytes, '/' separators, "" for the root) under the fixed key CATID_KEY, written as
 * 12 characters of Crockford base32 in lower case ("0123456789abcdefghjkmnpqrstvwxyz"). The
 * key is fixed, not random, so every replica and every restart computes the same id for the
 * same path. On a collision (two live paths, same 60 bits) the path added later takes the
 * hash with salt 1, 2, ... (SipHash of path under the key with its first word XORed with the
 * salt); it is therefore the same across restarts as long as the tree is scanned in the same
 * order (it is: folders are read sorted by name). */
#ifndef ENGBOT_CACHE_CATID_H
#define ENGBOT_CACHE_CATID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATID_LEN  12 /* characters */
#define CATID_BITS 60

uint64_t catid_hash(const char *path, size_t len, uint32_t salt);
/* Writes CATID_LEN characters and a NUL into out (CATID_LEN + 1 bytes). */
void catid_format(uint64_t hid, char *out);
/* Parses an id (exactly CATID_LEN characters of the alphabet, either case). */
bool catid_parse(const char *s, size_t len, uint64_t *hid);

/* SipHash-2-4 (Aumasson and Bernstein), exposed for tests against the reference vectors. */
uint64_t siphash24(const uint8_t key[16], const void *data, size_t len);

#endif
