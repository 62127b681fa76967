/* broker.h -- the queue as the RPC threads share it: one lock around queue.c, the write-ahead
 * log wired in as the queue's event sink, answers that wait until their change is durable,
 * and Lease long polls served by one scheduler thread.
 *
 * Threads (all named here):
 *  - gRPC completion-queue threads call broker_change/broker_read/broker_lease; they never
 *    block on the disk: a change's answer is sent from the log thread once it is durable.
 *  - "queue-sched" wakes when a lane may send, a deadline or lease runs out, a long poll's wait
 *    ends or a record becomes durable, and hands ready jobs to waiting Lease calls.
 *  - the rlog thread (group commit) and the compaction thread belong to wal.c.
 * Lock order: queue lock -> rlog lock; the log thread's callbacks take no queue lock. */
#ifndef QUEUE_BROKER_H
#define QUEUE_BROKER_H

#include "queue.h"
#include "wal.h"

struct broker_opts {
    struct queue_opts q;
    struct wal_opts w;
    /* After a start that did not follow a clean stop: how long the restored jobs are held
     * (nothing leased) so that senders of the killed process can still Ack what they sent
     * (queue_ack accepts it for a job not leased again). 0 = no hold. */
    int64_t restart_hold_ms;
    /* optional metrics (NULL entries are skipped): see queue_set_metrics */
    struct metric *counters[QC_N], *gauges[4], *time_in_queue;
};

struct broker;

/* Replays DATA_DIR and starts the scheduler. NULL with err when the data cannot be used. */
struct broker *broker_open(const struct broker_opts *o, struct wal_replay_stats *st, char *err,
                           size_t errlen);
/* At the start of a drain: every waiting Lease is answered (with no jobs) and later ones do
 * not wait. */
void broker_drain(struct broker *b);
/* After broker_drain, while the server still takes calls: waits up to max_ms for the jobs
 * already leased to be settled (Ack, Retry, Fail), so a rolling restart does not hand out a
 * job whose send already happened. Returns the leases still open. */
int64_t broker_wait_settled(struct broker *b, int64_t max_ms);
/* After the server drained: stops the scheduler, compacts, flushes and closes the log (every
 * pending done callback has run when it returns), frees everything. */
void broker_close(struct broker *b);
/* False (with why) while the WAL cannot be written (a full disk). A readiness check. */
bool broker_healthy(struct broker *b, char *why, size_t cap);

/* Runs with the lock held; q is valid only during the call, now is the queue's clock. */
typedef void broker_fn(void *arg, struct queue *q, int64_t now);

struct bcall {
    wal_done_fn *done; /* in: runs (log thread) once the change is durable */
    void *arg;
    uint64_t wait_seq; /* set by fn: also wait until this record is durable (0 = no) */
    bool later;        /* out: done will run; answer then. false: answer now */
};

/* Runs fn (which may change the queue) with the lock held, then sends its records to the log.
 * Returns 0, or -1 when the log is closed (the server is stopping: answer UNAVAILABLE). */
int broker_change(struct broker *b, broker_fn *fn, void *arg, struct bcall *c);
/* Runs fn (which must not change the queue) with the lock held. */
void broker_read(struct broker *b, broker_fn *fn, void *arg);

/* j is borrowed: copy what you need (lock held). */
typedef void broker_job_fn(void *arg, const struct job *j);

struct broker_lease {
    size_t max_jobs;
    int64_t lease_ms; /* 0 = LEASE_TIMEOUT */
    int64_t wait_ms;  /* 0 = answer at once */
    size_t max_bytes; /* payload bytes per answer (at least one job always) */
    broker_job_fn *on_job;
    void (*finish)(void *arg); /* runs once, without the lock, after the last on_job */
    void *arg;                 /* identifies the waiter (broker_lease_cancel) */
};
/* Leases ready jobs. true: answered now (on_job already ran for each job; finish is not
 * called). false: waiting; finish(arg) runs later exactly once (jobs arrived, the wait ended,
 * or the broker drains), unless broker_lease_cancel(b, arg) returns true first. */
bool broker_lease(struct broker *b, const struct broker_lease *l);
/* Forgets a waiting Lease (its client went away); true when it was still waiting. */
bool broker_lease_cancel(struct broker *b, void *arg);

/* Bytes in the current log generation (a gauge). */
uint64_t broker_wal_bytes(struct broker *b);
/* Lease calls waiting now. */
uint64_t broker_waiting(struct broker *b);

#endif
