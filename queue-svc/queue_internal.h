/* queue_internal.h -- the queue's structures and the helpers shared by the files of the queue:
 * queue.c (jobs, producers, senders, time), lane.c (lanes and scheduling), dedupe.c, queue_ops.c
 * (operators) and queue_restore.c (rebuilding from the log, snapshots, invariant checks).
 * Nothing outside them includes it. */
#ifndef QUEUE_QUEUE_INTERNAL_H
#define QUEUE_QUEUE_INTERNAL_H

#include "hmap.h"
#include "queue.h"

#define METHOD_MAX     64 /* Bot API method names are short ("sendMessage") */
#define DEDUPE_KEY_MAX 256
#define ERROR_MAX      1024 /* a sender's last_error is kept up to this many bytes */

struct lane {
    int64_t key;
    enum lane_kind kind;     /* PRIVATE, GROUP or UNLIMITED: which bucket applies */
    struct job *head, *tail; /* queued jobs, in order */
    uint32_t nqueued;
    struct job *in_flight; /* at most one */
    int64_t paused_until;  /* 429 retry_after; 0 = not paused */
    struct bucket bucket;
    struct hnode ready;             /* in q->ready: may send at ready.key */
    struct hnode idle;              /* in q->idle: empty, may be forgotten at idle.key */
    struct lane *dw_prev, *dw_next; /* in q->dw_head: head waits for its record to be durable */
    bool in_dw;
    bool counted; /* counted in q->nlanes (has jobs) */
};

/* A dedupe key: which job it named, within DEDUPE_WINDOW of the enqueue. While the job object
 * exists (queued, leased or dead) `job` points to it and its state is the job's; afterwards
 * `state` keeps the final state until the window ends. */
struct dedupe {
    char *key;
    size_t klen;
    uint64_t h;
    uint64_t id;
    enum job_state state;
    int64_t expires_ms;
    struct job *job;
    struct dedupe *prev, *next; /* expiry FIFO */
    bool in_fifo; /* false: past the window but its job is still live; freed with the job */
};

struct queue {
    struct queue_opts o;
    queue_sink_fn *sink;
    void *sink_arg;
    bool restoring;

    struct hmap lanes;  /* key -> struct lane */
    struct hmap jobs;   /* id -> struct job (live and dead) */
    struct hmap dedupe; /* hash(key) -> struct dedupe */
    struct heap ready, deadlines, leases, idle;
    struct lane *dw_head;
    struct job *all_head, *all_tail;   /* live jobs, oldest first */
    struct job *dead_head, *dead_tail; /* dead letters, oldest first */
    struct dedupe *dd_head, *dd_tail;
    uint64_t ndead, dead_seq, ndd_fifo;
    uint64_t nqueued, nleased, nlanes, bytes;
    uint64_t next_id, last_seq, durable_seq, max_id_seen;
    uint64_t sched_tie;
    uint64_t rng;
    struct bucket global;

    uint64_t count[QC_N];
    struct metric *mc[QC_N], *mg[4], *m_tiq;
    char err[320];
};

static inline int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* queue.c: allocation (aborts on OOM), the error text, counters and events */
void *q_xcalloc(size_t n, size_t sz);
char *q_xstrndup(const char *s, size_t n);
void q_seterr(struct queue *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void q_count(struct queue *q, enum qcounter c);
/* Reports a durable change to the sink; returns its seq (0 while restoring). */
uint64_t q_emit(struct queue *q, enum qev_type type, struct job *j, enum job_state st,
                int64_t paused_until, bool payload_changed);
void deadline_push(struct queue *q, struct job *j);
uint32_t lane_size(const struct lane *l);

/* lane.c */
const struct rate *lane_rate(const struct queue *q, enum lane_kind k);
void lane_forget(struct queue *q, struct lane *l);

/* dedupe.c */
void dedupe_retire(struct queue *q, struct dedupe *e);

/* shared by queue.c, lane.c, dedupe.c, queue_ops.c and queue_restore.c */
struct lane *lane_get(struct queue *q, int64_t key, enum lane_kind kind, int64_t now);
void lane_refresh(struct queue *q, struct lane *l, int64_t now);
void lane_push_tail(struct queue *q, struct lane *l, struct job *j);
void lane_push_head(struct queue *q, struct lane *l, struct job *j);
void lane_unlink(struct queue *q, struct lane *l, struct job *j);
void lane_count(struct queue *q, struct lane *l);
void all_append(struct queue *q, struct job *j);
void all_unlink(struct queue *q, struct job *j);
void dead_append(struct queue *q, struct job *j);
void dead_unlink(struct queue *q, struct job *j);
struct job *job_alloc(uint64_t id, int64_t lane_key, enum lane_kind kind, const char *method,
                      const uint8_t *payload, size_t payload_len, const char *dedupe_key);
void job_set_error(struct job *j, const char *error);
void job_set_payload(struct queue *q, struct job *j, const uint8_t *p, size_t len);
/* Removes a job from everything and frees it; its dedupe key remembers `final`. */
void job_finish(struct queue *q, struct job *j, enum job_state final);
/* Detaches a live job from its lane and the live structures (before moving it). */
void job_detach_live(struct queue *q, struct job *j);
/* Makes a live job a dead letter (events and counters unless restoring). */
void job_make_dead(struct queue *q, struct job *j, const char *error, int64_t now,
                   enum qcounter why);
struct dedupe *dedupe_find(const struct queue *q, const char *key);
struct dedupe *dedupe_add(struct queue *q, const char *key, uint64_t id, enum job_state st,
                          int64_t expires_ms, struct job *j);
void dedupe_free(struct queue *q, struct dedupe *e);
void update_gauges(struct queue *q);

#endif
