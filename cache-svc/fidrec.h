/* fidrec.h -- the records of the persisted file_id store (docs/cache-svc.md, "file_id store").
 *
 * Each record is the payload of one durable.h record (length + CRC32C around it):
 *   PUT   u8 1 | i64 bot_id | u64 size | i64 mtime_ms | u16 path_len | path | u16 id_len | file_id
 *   DROP  u8 2 | i64 bot_id | u16 path_len | path
 *   GEN   u8 3 | u64 generation        (first record of a snapshot: logs below it are covered)
 * Little-endian. Version rule: FIDREC_VERSION in the file header is bumped only for a change
 * an older reader would misread; additive changes (new trailing fields in a record, new record
 * types) keep it, and readers ignore trailing bytes and unknown types. So a file written by a
 * newer cache-svc stays readable by the one before it (rollback). */
#ifndef ENGBOT_CACHE_FIDREC_H
#define ENGBOT_CACHE_FIDREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FIDREC_VERSION   1
#define FIDREC_KIND_SNAP 0x46494453u /* "FIDS" */
#define FIDREC_KIND_LOG  0x4649444cu /* "FIDL" */
#define FIDREC_MAX_ID    256         /* bytes of a file_id (Telegram's are ~70-100) */
#define FIDREC_MAX       (1 + 8 + 8 + 8 + 2 + 1024 + 2 + FIDREC_MAX_ID)

enum fidrec_op { FIDREC_PUT = 1, FIDREC_DROP = 2, FIDREC_GEN = 3 };

struct fidrec {
    enum fidrec_op op;
    int64_t bot_id;
    uint64_t size;
    int64_t mtime_ms;
    uint64_t gen;
    const char *path; /* points into the record; not NUL-terminated */
    size_t path_len;
    const char *file_id; /* idem */
    size_t id_len;
};

/* Encodes r into buf (FIDREC_MAX bytes); returns the length. */
size_t fidrec_encode(const struct fidrec *r, uint8_t *buf);

/* Decodes one record. 1 = a record in *r, 0 = a record of an unknown type (skip it),
 * -1 = malformed (why says how). A PUT or DROP must name a bot (> 0), a path that passes the
 * path-safety rules and, for PUT, a file_id of 1..FIDREC_MAX_ID characters [A-Za-z0-9_-]. */
int fidrec_decode(const uint8_t *buf, size_t len, struct fidrec *r, char *why, size_t cap);

/* True when id is a plausible Telegram file_id: 1..FIDREC_MAX_ID of [A-Za-z0-9_-]. */
bool fidrec_id_ok(const char *id, size_t len);

#endif
