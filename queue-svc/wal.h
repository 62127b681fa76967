/* wal.h -- the queue's durability: a write-ahead log of every change (group-commit fsync on
 * common/durable.h's rlog) and a snapshot, replayed at start and compacted in the background.
 *
 * Files in DATA_DIR:
 *   queue.snap            snapshot: Meta, then lanes, jobs and dedupe keys (atomic replace)
 *   wal-<gen>.log         log generations, each starting where the snapshot or the previous
 *                         generation stopped; gen is 20 zero-padded digits
 *   *.damaged-<ms>        files found torn or corrupt, kept aside for a human
 * Every file starts with the durable.h header, which carries the format version
 * (WAL_FORMAT_VERSION); records are engbot.queue.wal.v1.Record (queue-svc/wal.proto, which
 * also states the compatibility rule).
 *
 * Compaction: under the queue lock, the log rotates to a new generation and the state is
 * serialised; the snapshot is then written without the lock, and the generations it covers
 * are deleted. A crash at any point leaves either the old snapshot with all the generations
 * after it, or the new snapshot: replay is the same.
 *
 * Threads: the rlog thread runs the done callbacks (they must not take the queue lock: a
 * compaction holds it while it waits for the log to drain); one compaction thread. All other
 * calls are made with the queue lock held (`mu`, owned by broker.c). */
#ifndef QUEUE_WAL_H
#define QUEUE_WAL_H

#include "queue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define WAL_FORMAT_VERSION 1u
#define WAL_KIND_LOG       0x4c575145u /* "EQWL" */
#define WAL_KIND_SNAP      0x53575145u /* "EQWS" */

struct metric;

struct wal_opts {
    const char *dir;
    bool fsync;               /* false: write(2) only (benchmarks) */
    int64_t sync_interval_ms; /* records nobody waits for are durable within this */
    int64_t compact_bytes;    /* compact when the current log passes this */
    struct metric *fsync_seconds, *batch_records; /* optional histograms */
    struct metric *compactions, *errors;          /* optional counters */
    /* Called on the rlog thread when records up to seq are durable (must not block). */
    void (*on_durable)(void *arg, uint64_t seq);
    void *on_durable_arg;
};

/* What replay found. */
struct wal_replay_stats {
    uint64_t files, records, skipped, unknown, undecodable, damaged, gaps;
    uint64_t last_seq, next_id;
    uint64_t newest_gen; /* the newest log generation on disk at start (a log's or the snapshot's) */
};

/* Called once the change is on disk (err 0) or could not be written (err = errno). Runs on the
 * log thread; must not take the queue lock. */
typedef void wal_done_fn(void *arg, int err);

struct wal;

/* Replays DATA_DIR into q (new and empty), writes a fresh snapshot and opens a new log
 * generation. Damaged files are kept aside and reported loudly; nothing before the damage is
 * lost. NULL with err on a fatal problem: the directory cannot be used, or a file was written
 * by an incompatible newer version (starting would lose its data). */
struct wal *wal_open(const struct wal_opts *o, struct queue *q, pthread_mutex_t *mu,
                     struct wal_replay_stats *st, char *err, size_t errlen);
/* Compacts one last time, flushes and closes (after the server has drained). Returns the
 * generation it leaves as the newest: what the next wal_open reports as newest_gen, unless
 * another process (an older version, in a rollback) opened the directory in between. */
uint64_t wal_close(struct wal *w);

/* The queue's event sink (queue_new's sink with arg = the wal). Lock held. */
void wal_sink(void *arg, const struct qevent *ev);
/* Sends the records of the change just made to the log, and arranges done(arg, err) after
 * the fsync that covers them. Lock held. Returns 1 when done will be called, 0 when the change
 * wrote nothing (done is not called), -1 when the log is closed. */
int wal_commit(struct wal *w, wal_done_fn *done, void *arg);
/* Like wal_commit, but when nothing is pending writes a barrier record so done still waits
 * for everything written so far to be durable (a duplicate answered before its original's
 * record is on disk). */
int wal_barrier(struct wal *w, wal_done_fn *done, void *arg);
/* Every record up to this seq is durable. Any thread. */
uint64_t wal_durable_seq(struct wal *w);
/* Rotates and writes a snapshot now (the compaction thread does it by size). Takes the lock. */
int wal_compact(struct wal *w, char *err, size_t errlen);
/* Writes and fsyncs everything committed so far (takes the lock). 0 or -errno. */
int wal_flush(struct wal *w);
/* Bytes in the current log generation. */
uint64_t wal_bytes(struct wal *w);
/* The log's write error (errno) while records wait to be written again (a full disk), else 0. */
int wal_error(struct wal *w);

/* Replays one log or snapshot file into q (between queue_restore_begin and _done). Records
 * with seq <= skip_upto are skipped. Returns 0 (check st and *damaged), 1 when the file does
 * not exist, -1 with why (unreadable, not a queue file, incompatible version, critical
 * unknown record). For wal_open, tests and the fuzzer. */
int wal_replay_file(const char *path, uint32_t kind, struct queue *q, uint64_t skip_upto,
                    struct wal_replay_stats *st, bool *damaged, uint64_t *first_gen, char *why,
                    size_t whylen);

#endif
