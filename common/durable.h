/* durable.h -- files that survive crashes: checksummed record files written atomically
 * (snapshots), and an append-only record log with group-commit fsync (change logs, WALs).
 *
 * On-disk format (shared by both, little-endian):
 *   header  "ENGBOTRF" | u32 format version | u32 file kind (caller's magic)
 *   record  u32 length | u32 crc32c(length bytes + payload) | payload      (length >= 1)
 *   seal    u32 0      | u32 record count                                   (snapshots only)
 * A reader stops at the first record that is torn (runs past the end of the file) or fails its
 * checksum and reports it: nothing before it is lost and nothing after it is trusted. Callers
 * keep a damaged file aside (durable_keep_aside) and say so loudly. */
#ifndef ENGBOT_DURABLE_H
#define ENGBOT_DURABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DURABLE_MAX_RECORD (64u << 20) /* a longer length field means corruption */

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* Creates dir (and parents) if needed and proves it is writable (create, fsync, unlink a
 * probe file). Returns 0, or -1 with a message naming the directory and the reason. */
int durable_check_dir(const char *dir, char *err, size_t errlen);
/* fsyncs a directory so a rename or create inside it is durable. */
int durable_sync_dir(const char *dir);
/* Renames path to "<path>.damaged-<unix ms>" (so it is never read again nor lost) and
 * returns the new name in out. */
int durable_keep_aside(const char *path, char *out, size_t cap);

/* ---- atomic record files (snapshots, backups) --------------------------------------------- */
struct dfile;
/* Opens "<path>.tmp" for writing. */
struct dfile *dfile_create(const char *path, uint32_t kind, uint32_t version, char *err,
                           size_t errlen);
int dfile_record(struct dfile *f, const void *rec, size_t len);
/* Seals, fsyncs, renames over path and fsyncs the directory; frees f. 0 or -1 with err. On
 * failure the previous file at path is untouched. */
int dfile_commit(struct dfile *f, uint64_t *bytes, char *err, size_t errlen);
void dfile_abort(struct dfile *f);

/* ---- reading ------------------------------------------------------------------------------- */
struct dread_result {
    uint32_t version;   /* the file's format version */
    uint64_t records;   /* good records delivered */
    uint64_t good_bytes; /* offset just past the last good record (or seal) */
    uint64_t file_bytes;
    bool sealed;        /* a valid seal closed the file */
    bool damaged;       /* stopped early: torn or corrupt record, or data after the seal */
    char why[192];      /* what was wrong, when damaged or on error */
};
/* Reads path, calling cb for each good record (the pointer is valid only during the call; cb
 * returns 0 to go on, non-zero to stop with an error). Returns 0 when the file was read (check
 * res->damaged), 1 when it does not exist, -1 when it is unreadable, not a record file of this
 * kind, or cb failed (res->why says which). */
int dread_file(const char *path, uint32_t kind, int (*cb)(void *arg, const uint8_t *rec, size_t len),
               void *arg, struct dread_result *res);

/* ---- append-only log with group commit ----------------------------------------------------- */
struct metric;
struct rlog_opts {
    int64_t sync_interval_ms; /* longest a record waits to be fsynced when nobody waits for it */
    bool no_fsync;            /* write(2) only: benchmarks of "fsync off" */
    struct metric *fsync_seconds; /* optional histogram: fsync latency */
    struct metric *batch_records; /* optional histogram: records per fsync */
};

/* Called on the log's thread once the record is on disk (err 0) or could not be written
 * (err = errno). Must not block for long: it delays the next group commit. */
typedef void rlog_done_fn(void *arg, int err);

struct rlog;
/* Opens path for appending (creating it with a header if missing). An existing file must have
 * been read and, if damaged, truncated with rlog_truncate first. Starts the sync thread. */
struct rlog *rlog_open(const char *path, uint32_t kind, uint32_t version,
                       const struct rlog_opts *o, char *err, size_t errlen);
/* Truncates a damaged log to its good prefix (from dread_file) before rlog_open. */
int rlog_truncate(const char *path, uint64_t good_bytes);
/* Queues a record. With done, done runs after the fsync that covers it (every append made
 * while one fsync is in progress shares the next one: group commit); without done the record
 * is durable within sync_interval_ms. If the write fails (a full disk), done is told the error
 * but the record is kept and written again, in order, once the disk takes it; rlog_error()
 * says so meanwhile. Returns 0, -ESHUTDOWN when the log is closed, or the error (-ENOSPC ...)
 * when it has been failing and 64 MiB are already waiting. */
int rlog_append(struct rlog *l, const void *rec, size_t len, rlog_done_fn *done, void *arg);
/* Writes and fsyncs everything appended so far; 0, or -errno when an attempt failed (the
 * records stay queued for the next attempt). */
int rlog_flush(struct rlog *l);
/* Flushes, then continues in a new file at new_path (created with a header). The old file is
 * left for the caller to delete once a snapshot covers it. */
int rlog_rotate(struct rlog *l, const char *new_path, char *err, size_t errlen);
/* Bytes in the current file (written, not counting the buffer). */
uint64_t rlog_bytes(struct rlog *l);
/* The write/fsync error (errno) while records are waiting to be written again after a
 * failure; 0 once everything appended has been written. */
int rlog_error(struct rlog *l);
/* Flushes (one last attempt if the disk has been failing: what cannot be written then is
 * lost -- check rlog_flush first) and stops the thread; frees l. */
void rlog_close(struct rlog *l);

#endif
