/* persist.h -- session durability: a snapshot written atomically on an interval and at drain,
 * a change log between snapshots (group-commit fsync every sync interval), replay at start,
 * damaged files kept aside, backups and restore.
 *
 * Files under DATA_DIR (formats in docs/session-svc.md):
 *   sessions.snap            the last snapshot (header record + one record per session)
 *   sessions.snap.prev       the one before it (the fallback when the last is damaged)
 *   changes-<gen>.log        change logs; a snapshot names the first generation to replay
 *   backups/<name>           backups (snapshot format), written by persist_backup
 *   *.damaged-<unix ms>      damaged files kept aside (never read again, never deleted)
 *
 * Threads: persist_start runs one thread that writes a snapshot every snapshot interval, or
 * sooner when the change log passes compact_log_bytes. Changes reach the log from the store's
 * sink on the calling threads (a memcpy under the log's lock; no disk I/O). */
#ifndef ENGBOT_SESSION_PERSIST_H
#define ENGBOT_SESSION_PERSIST_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct persist_opts {
    const char *data_dir;
    const char *restore_from; /* NULL/"" = none */
    int64_t sync_interval_ms; /* the longest a change waits for its fsync */
    int64_t snapshot_interval_ms;
    int64_t compact_log_bytes; /* snapshot early when the change log grows past this */
    bool no_fsync;             /* benchmarks only */
};

/* What loading found, for logs, metrics and tests. */
struct persist_load_info {
    uint64_t sessions; /* in the table after loading */
    uint64_t snapshot_records, log_records, skipped_records;
    unsigned damaged_files; /* kept aside */
    bool restored;          /* started from RESTORE_FROM */
    bool used_prev; /* the last snapshot was damaged or missing: started from the one before */
    int64_t duration_ms;
};

enum persist_err {
    PERSIST_OK = 0,
    PERSIST_EINVAL, /* bad backup name */
    PERSIST_EEXIST, /* backup file already exists */
    PERSIST_EIO,    /* could not write (err says why) */
};

struct persist;
/* Loads the state into st (restore, snapshot, logs), keeps damaged files aside and logs them
 * at error level, writes a fresh snapshot, opens a new change log and installs the store's
 * change sink. Returns NULL with err (one line naming the file and the reason) when the data
 * directory cannot be used or RESTORE_FROM cannot be read. */
struct persist *persist_open(const struct persist_opts *o, struct store *st,
                             struct persist_load_info *info, char *err, size_t errlen);
/* Starts the snapshot thread. */
void persist_start(struct persist *p);
/* Writes a snapshot now and compacts the logs it covers. */
enum persist_err persist_snapshot(struct persist *p, char *err, size_t errlen);
/* Writes a backup to DATA_DIR/backups/<name> (NULL/"" = "sessions-<unix ms>.snap"). path
 * receives the absolute path. Names: [A-Za-z0-9._-], at most 128 characters, not starting with
 * a dot. */
enum persist_err persist_backup(struct persist *p, const char *name, char *path, size_t pathcap,
                                uint64_t *sessions, uint64_t *bytes, char *err, size_t errlen);
/* Writes and fsyncs every change made so far to the change log. 0 or -errno. */
int persist_flush(struct persist *p);
/* False (with why) while the change log cannot be written (a full disk): the records wait in
 * memory and are written again when the disk takes them. A readiness check (svc_add_check). */
bool persist_healthy(struct persist *p, char *why, size_t cap);
/* Stops the thread, writes the final snapshot, flushes and closes the log, frees p. Returns 0,
 * or -1 when the final state could not be saved (err says why). */
int persist_close(struct persist *p, char *err, size_t errlen);

#endif
