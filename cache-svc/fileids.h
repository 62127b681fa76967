/* fileids.h -- Telegram file_id reuse: after the gateway uploads a file, it stores the
 * file_id Telegram returned, keyed by bot (a file_id works only for the bot that uploaded it)
 * and path, together with the size and mtime of the version uploaded. A later lookup answers
 * only when the file is still that version, so a changed file is uploaded again and an
 * unchanged one never is.
 *
 * Persistence under DATA_DIR (format: fidrec.h; docs/cache-svc.md): a snapshot
 * "fileids.snap" written atomically, plus an append log "fileids.<generation>.log" whose
 * records are fsynced (group commit) before a put or drop is acknowledged. Every start and
 * every LOG_COMPACT growth writes a new snapshot and starts a new log. A damaged file is kept
 * aside ("<name>.damaged-<ms>"), reported loudly, and only its records before the damage
 * (each checksummed and validated) are used.
 *
 * Thread-safe (one mutex). */
#ifndef ENGBOT_CACHE_FILEIDS_H
#define ENGBOT_CACHE_FILEIDS_H

#include "fidrec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fileids;

struct fileids_opts {
    const char *dir; /* DATA_DIR; NULL: memory only (tests, fuzzing) */
    size_t max_ids;  /* stored file_ids at most (puts beyond: FILEIDS_FULL) */
    bool no_fsync;   /* benchmarks only */
};

/* What opening found on disk. */
struct fileids_report {
    uint64_t records; /* good records applied */
    unsigned damaged; /* files kept aside */
    char why[256];    /* the last damage, when damaged */
};

/* Opens (loading, then compacting) the store. NULL with err when DATA_DIR is unusable. */
struct fileids *fileids_open(const struct fileids_opts *o, struct fileids_report *rep, char *err,
                             size_t errlen);
/* Flushes the log and frees. */
void fileids_close(struct fileids *f);

enum { FILEIDS_OK = 0, FILEIDS_NOT_FOUND = -1, FILEIDS_FULL = -2, FILEIDS_IO = -3 };

/* The file_id stored for (bot, path), copied into out (FIDREC_MAX_ID + 1 bytes), with the
 * version it belongs to. FILEIDS_OK or FILEIDS_NOT_FOUND. */
int fileids_get(struct fileids *f, int64_t bot, const char *path, char *out, uint64_t *size,
                int64_t *mtime_ms);

/* Runs on the log's thread once the change is on disk (err 0) or failed (err = errno). */
typedef void fileids_done_fn(void *arg, int err);

/* Stores file_id for (bot, path) at version (size, mtime), replacing what was there. On
 * FILEIDS_OK done (if any) will run; on an error it will not. */
int fileids_put(struct fileids *f, int64_t bot, const char *path, uint64_t size, int64_t mtime_ms,
                const char *file_id, fileids_done_fn *done, void *arg);
/* Forgets (bot, path) -- only if its file_id is only_if, when only_if is non-empty. FILEIDS_OK
 * (done will run) or FILEIDS_NOT_FOUND (nothing to drop; done will not run). */
int fileids_drop(struct fileids *f, int64_t bot, const char *path, const char *only_if,
                 fileids_done_fn *done, void *arg);

size_t fileids_count(struct fileids *f);

/* Applies the records of one store file (snapshot or log) to f, as opening does, without
 * keeping anything aside: for tests and the fuzz target. Returns dread_file's code; rep says
 * what was found. */
int fileids_apply_file(struct fileids *f, const char *path, bool is_log,
                       struct fileids_report *rep);

#endif
