/* records.h -- session-svc's on-disk records (session_store.proto): packing a change, a session
 * or a snapshot header, and reading snapshot and change-log files record by record into the
 * table. persist.c decides which files to read and write; this module only knows what is in
 * them. The readers are also the fuzz target's entry points. Formats: docs/session-svc.md. */
#ifndef ENGBOT_SESSION_RECORDS_H
#define ENGBOT_SESSION_RECORDS_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* In every file header (common/durable.h framing). Readers accept higher versions (protobuf
 * records are forward compatible); an incompatible change gets a new kind instead. */
#define RECORD_FORMAT_VERSION 1u
#define RECORD_KIND_SNAPSHOT  0x50414e53u /* "SNAP" little-endian: snapshots and backups */
#define RECORD_KIND_LOG       0x474f4c53u /* "SLOG" little-endian: change logs */

/* Packs the change-log record of one change. Returns its length; *out is buf when it fits in
 * cap bytes, else a malloc'd buffer the caller frees. */
size_t record_pack_change(enum store_change ch, enum store_reason why, const struct session *s,
                          uint8_t *buf, size_t cap, uint8_t **out);

/* Packed session records in memory, each [u32 length, host order][bytes]. */
struct record_buf {
    uint8_t *data;
    size_t len, cap;
    uint64_t records;
};
/* Appends one session (a store_scan_stripe callback; arg is a struct record_buf *). */
void record_buf_add_session(void *arg, const struct session *s);

/* The snapshot header (record 0 of a snapshot or backup). */
struct record_header {
    uint64_t log_gen;
    int64_t written_ms;
    uint64_t sessions;
    char purpose[32];
    char restored_from[512];
};
/* Packs h (plus this program's version) into buf; returns the length, 0 if cap is too small. */
size_t record_pack_header(const struct record_header *h, uint8_t *buf, size_t cap);

/* dread_file callbacks. A snapshot reader loads sessions into st (NULL: decode only, to
 * validate a file) and fills h from record 0; header_only stops after it. */
struct record_snap_reader {
    struct store *st;
    bool header_only;
    uint64_t index;
    bool have_header;
    struct record_header h;
};
int record_snapshot_cb(void *arg, const uint8_t *rec, size_t len);
struct record_log_reader {
    struct store *st;
    uint64_t skipped; /* records of an operation this version does not know */
};
int record_log_cb(void *arg, const uint8_t *rec, size_t len);

/* Applies one change-log record to st (store_load_*). Returns 0, 1 when the record holds an
 * operation this version does not know (skipped), -1 when it is not a valid record. */
int record_apply_log(struct store *st, const uint8_t *rec, size_t len);
/* Reads a whole snapshot or log file into st. Returns dread_file's result; *damaged is set when
 * the file is torn, corrupt, unsealed (snapshots) or not of that kind. */
int record_read_snapshot(const char *path, struct store *st, uint64_t *log_gen, bool *damaged);
int record_read_log(const char *path, struct store *st, bool *damaged);

#endif
