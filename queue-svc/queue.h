/* queue.h -- the queue proper: outbound Bot API requests as jobs in one FIFO lane per chat,
 * handed out at the rate Telegram allows, with leases, deadlines, dedupe and dead letters.
 *
 * DESIGN
 * - A lane is a chat. Its jobs go out in order, one in flight at a time (so a chat's messages
 *   never overtake each other). Lanes never wait for each other: a lane that may send is in the
 *   ready heap, keyed by the time it may send (pause from a 429, the head job's backoff, its
 *   chat/group token bucket) and then by the order it got there. Lease takes from the top, so
 *   a chat with 10,000 queued messages gets one turn per token like every other chat: it cannot
 *   delay another chat's single message beyond the global limit.
 * - Every state change that must survive a crash is reported, in order, to the event sink (the
 *   write-ahead log, wal.c) while it happens. A job becomes leasable only once the record that
 *   made it visible is durable (queue_set_durable), so nothing is ever sent that a crash could
 *   forget and a producer would then send again. Leases are not logged: after a crash, jobs
 *   in flight come back as ready.
 * - Deadlines remove one job (counted as expired), never the queue. Overflow rejects (the
 *   default) or, opted in, drops the oldest queued job (counted).
 *
 * Not thread-safe: one lock (broker.c) covers the whole queue. Time is passed in as Unix ms
 * (wall clock made monotonic by the caller) because every time here is persisted or shown to
 * operators as Unix ms; tests pass any time they like.
 *
 * Errors: functions return enum qerr; the detail, written for a grpcurl user, is in
 * queue_errstr() until the next call. */
#ifndef QUEUE_QUEUE_H
#define QUEUE_QUEUE_H

#include "heap.h"
#include "ratelimit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metric;

/* Same numbers as engbot.queue.v1.LaneKind / JobState. */
enum lane_kind { LK_UNSPECIFIED = 0, LK_PRIVATE = 1, LK_GROUP = 2, LK_UNLIMITED = 3 };
enum job_state {
    JS_QUEUED = 1,
    JS_LEASED = 2,
    JS_DONE = 3,
    JS_DEAD = 4,
    JS_EXPIRED = 5,
    JS_PURGED = 6,
    JS_DROPPED = 7,
};

enum qerr {
    Q_OK = 0,
    Q_EINVAL,    /* the request is wrong; retrying it will not help */
    Q_EFULL,     /* queue, lane or bytes limit: retry later */
    Q_ENOTFOUND, /* no such job (or dead letter) */
    Q_ELEASE,    /* the job is not leased under that token (lease expired or acked) */
};

/* Counters (GetStats and /metrics). */
enum qcounter {
    QC_ENQUEUED,
    QC_DEDUPLICATED,
    QC_REJ_QUEUE_FULL,
    QC_REJ_LANE_FULL,
    QC_REJ_BYTES_FULL,
    QC_REJ_DEADLINE, /* it could not go out before its deadline at the configured rates */
    QC_REJ_INVALID,
    QC_LEASED,
    QC_ACKED,
    QC_RETRIED_BACKOFF,
    QC_RETRIED_RETRY_AFTER,
    QC_EXPIRED,
    QC_LEASE_EXPIRED,
    QC_DEAD_FAILED,       /* Fail */
    QC_DEAD_MAX_ATTEMPTS, /* Retry or lease expiry after MAX_ATTEMPTS */
    QC_DROP_LANE_FULL,    /* drop-oldest */
    QC_DROP_QUEUE_FULL,   /* drop-oldest (count or bytes) */
    QC_DROP_DEAD_FULL,    /* oldest dead letter dropped past DEAD_LETTER_MAX */
    QC_PURGED,
    QC_REQUEUED,
    QC_WAIT_GLOBAL, /* a lease found ready lanes but no global token */
    QC_WAIT_CHAT,   /* a private lane waited for its bucket */
    QC_WAIT_GROUP,  /* a group lane waited for its bucket */
    QC_WAIT_PAUSE,  /* a lane waited for a 429's retry_after */
    QC_N
};

struct queue_opts {
    int64_t max_jobs;         /* QUEUE_MAX_SIZE: queued + leased */
    int64_t max_bytes;        /* QUEUE_MAX_BYTES: payload bytes of queued + leased jobs */
    int64_t lane_max;         /* LANE_MAX_SIZE: queued + leased per lane */
    bool drop_oldest;         /* OVERFLOW_POLICY=drop-oldest */
    int64_t default_ttl_ms;   /* REQUEST_TIMEOUT */
    int64_t max_ttl_ms;       /* longest timeout_ms a request may ask for */
    int64_t dedupe_window_ms; /* DEDUPE_WINDOW; 0 = no dedupe */
    int64_t dedupe_max;       /* DEDUPE_MAX_KEYS */
    uint32_t max_attempts;    /* MAX_ATTEMPTS */
    int64_t lease_ms;         /* LEASE_TIMEOUT (default lease) */
    int64_t max_lease_ms;     /* longest lease a sender may ask for */
    int64_t max_payload;      /* MAX_PAYLOAD */
    int64_t dead_max;         /* DEAD_LETTER_MAX */
    struct rate global, chat, group;
    int64_t backoff_base_ms, backoff_max_ms;
    uint64_t seed; /* lease tokens and jitter; 0 = from time and pid */
};

/* A job. Read-only outside queue.c (service.c and wal.c render it); valid while the caller
 * holds the queue's lock and until the queue call that removes it. */
struct lane;
struct dedupe;
struct job {
    uint64_t id;
    int64_t lane_key;
    enum lane_kind kind;
    char *method;
    uint8_t *payload;
    size_t payload_len;
    char *dedupe_key; /* NULL = none */
    int64_t deadline_ms, ttl_ms, enqueued_ms;
    int64_t not_before_ms; /* backoff after a retry; 0 = none */
    int64_t dead_ms;       /* when it became a dead letter */
    uint64_t dead_seq;     /* order in the dead-letter list (page tokens) */
    uint32_t attempts;     /* times leased */
    uint32_t waived;       /* attempts that ended in a retry_after (429): not held against it */
    enum job_state state;
    uint64_t lease_token;
    int64_t lease_deadline_ms;
    char *last_error; /* NULL = none */
    uint64_t seq;     /* WAL record that made it visible; leasable once durable */
    bool orphan;      /* restored after a crash and not leased since: see queue_mark_orphans */

    /* private to queue.c */
    struct lane *lane;
    struct job *prev, *next;    /* lane FIFO, or the dead-letter list */
    struct job *aprev, *anext;  /* live jobs, oldest first (drop-oldest) */
    struct hnode deadline_node; /* queued jobs by deadline */
    struct hnode lease_node;    /* leased jobs by lease deadline */
    struct dedupe *dd;
};

/* Durable state changes, reported to the sink in the order they happen. The job pointer is
 * valid only during the call. */
enum qev_type {
    QEV_ENQUEUE, /* job added (whole job) */
    QEV_ACK,     /* job done and removed */
    QEV_RETRY,   /* job back in its lane (attempts, not_before, error, lane, payload, pause) */
    QEV_DEAD,    /* job moved to the dead-letter list (attempts, error, dead_ms) */
    QEV_REQUEUE, /* dead letter back at the end of its lane (deadline, attempts = 0) */
    QEV_REMOVE,  /* job removed without being sent: `state` says why (EXPIRED/PURGED/DROPPED) */
};

struct qevent {
    enum qev_type type;
    uint64_t seq; /* increasing, one per event */
    const struct job *job;
    enum job_state state; /* QEV_REMOVE */
    int64_t paused_until; /* QEV_RETRY: the lane's pause (0 = none) */
    bool payload_changed; /* QEV_RETRY */
};

typedef void queue_sink_fn(void *arg, const struct qevent *ev);

struct queue;

/* Creates an empty queue. sink may be NULL (tests): then every job is durable at once. */
struct queue *queue_new(const struct queue_opts *o, queue_sink_fn *sink, void *sink_arg);
void queue_free(struct queue *q);
const char *queue_errstr(const struct queue *q);
const struct queue_opts *queue_opts(const struct queue *q);

/* Optional Prometheus children for the counters (index enum qcounter, NULL entries ignored),
 * gauges (queued, leased, dead, lanes) and the time-in-queue histogram. The arrays are copied. */
void queue_set_metrics(struct queue *q, struct metric *const counters[QC_N],
                       struct metric *const gauges[4], struct metric *time_in_queue);
uint64_t queue_counter(const struct queue *q, enum qcounter c);

/* ---- producers --------------------------------------------------------------------------- */
struct enq_spec {
    int64_t lane_key;
    int kind; /* enum lane_kind; out-of-range is Q_EINVAL */
    const char *method;
    const uint8_t *payload;
    size_t payload_len;
    const char *dedupe_key; /* NULL or "" = none */
    uint32_t timeout_ms;    /* 0 = REQUEST_TIMEOUT */
};

struct enq_result {
    const struct job *job; /* the new job, or the live original of a duplicate (else NULL) */
    uint64_t id;
    bool duplicate;
    enum job_state state;
    uint32_t position; /* jobs ahead of it in its lane (in flight included) */
    uint64_t seq;      /* the record to wait for before answering (0 = none needed) */
};

enum qerr queue_enqueue(struct queue *q, const struct enq_spec *s, int64_t now,
                        struct enq_result *r);

/* ---- senders ------------------------------------------------------------------------------ */
/* Leases up to max ready jobs (each from a different lane) for lease_ms (0 = LEASE_TIMEOUT),
 * stopping early once their payloads pass max_bytes (at least one job is always returned when
 * one is ready). Returns how many were put in out. */
size_t queue_take(struct queue *q, int64_t now, size_t max, int64_t lease_ms, size_t max_bytes,
                  struct job **out);
enum qerr queue_ack(struct queue *q, uint64_t id, uint64_t token, int64_t now);
/* After a restore that followed a crash: marks every queued job an orphan (it may have been
 * leased, and sent, by the process that crashed: leases are not logged). Until it is leased
 * again, queue_ack takes an Ack for it whatever the lease_token, so the sender's retried Ack
 * is not refused and the job sent twice. Returns how many were marked. */
size_t queue_mark_orphans(struct queue *q);

struct retry_spec {
    uint64_t id, token;
    uint32_t retry_after_ms; /* > 0: Telegram's 429 retry_after: pause the lane */
    const char *error;
    int64_t new_lane_key; /* 0 = same lane (migrate_to_chat_id otherwise) */
    const uint8_t *new_payload;
    size_t new_payload_len;
    bool has_new_payload;
};
struct retry_result {
    enum job_state state; /* QUEUED, DEAD or EXPIRED */
    int64_t not_before_ms;
};
enum qerr queue_retry(struct queue *q, const struct retry_spec *s, int64_t now,
                      struct retry_result *r);
enum qerr queue_fail(struct queue *q, uint64_t id, uint64_t token, const char *error, int64_t now);
/* Checks a lease without changing anything (validation before a request is acted upon). */
enum qerr queue_check_lease(struct queue *q, uint64_t id, uint64_t token);

/* ---- time --------------------------------------------------------------------------------- */
/* Expires jobs past their deadline and leases past theirs, forgets dedupe keys past the window
 * and idle lanes whose bucket is full again. */
void queue_tick(struct queue *q, int64_t now);
/* The next time queue_tick has something to do (INT64_MAX: nothing planned). */
int64_t queue_next_tick(const struct queue *q);
/* The earliest time a queue_take could return a job (INT64_MAX: no lane is waiting). */
int64_t queue_next_ready(const struct queue *q, int64_t now);
/* Every event up to seq is durable: jobs they made visible may be leased. */
void queue_set_durable(struct queue *q, uint64_t seq, int64_t now);
uint64_t queue_last_seq(const struct queue *q);

/* ---- operators ---------------------------------------------------------------------------- */
struct lane_info {
    int64_t key;
    enum lane_kind kind;
    uint32_t queued, in_flight;
    int64_t paused_until; /* 0 = not paused */
};
/* Lanes with jobs whose key is > after (when has_after), by key, up to max. Returns the count
 * written; *more says whether others follow. */
size_t queue_list_lanes(struct queue *q, bool has_after, int64_t after, size_t max,
                        struct lane_info *out, bool *more, int64_t now);
/* The lane and up to max of its jobs, the one in flight first. Q_ENOTFOUND when the lane has
 * no jobs. */
enum qerr queue_peek(struct queue *q, int64_t key, size_t max, struct lane_info *info,
                     const struct job **out, size_t *n, int64_t now);
/* Removes the lane's queued jobs (not the one in flight); returns how many. */
size_t queue_purge(struct queue *q, int64_t key, int64_t now);
/* Dead letters with dead_seq > after, oldest first, up to max. */
size_t queue_dead_letters(struct queue *q, uint64_t after, size_t max, const struct job **out,
                          bool *more);
/* Moves a dead letter to the end of its lane with attempts reset and a fresh deadline. */
enum qerr queue_requeue_dead(struct queue *q, uint64_t id, int64_t now, const struct job **job);
const struct job *queue_find(const struct queue *q, uint64_t id);

struct queue_stats {
    uint64_t queued, leased, dead, lanes, bytes;
};
void queue_stats(const struct queue *q, struct queue_stats *st);

/* ---- restoring (wal.c, at start) ---------------------------------------------------------- */
/* Between queue_restore_begin and queue_restore_done, these rebuild the state from the
 * snapshot and the log; they emit no events, count nothing and never fail on a record that
 * does not fit (a job that is not there, a lane over its limit): replay keeps what it can. */
struct job_image {
    uint64_t id;
    int64_t lane_key;
    int kind;
    const char *method;
    const uint8_t *payload;
    size_t payload_len;
    const char *dedupe_key;
    int64_t deadline_ms, ttl_ms, enqueued_ms, not_before_ms, dead_ms;
    uint32_t attempts, waived;
    const char *last_error;
    bool dead;
};
void queue_restore_begin(struct queue *q);
/* Adds a job at the end of its lane (or of the dead-letter list). false if the id exists. */
bool queue_restore_job(struct queue *q, const struct job_image *im);
/* Applies a logged change to a restored job; false when the job is unknown. */
bool queue_restore_ack(struct queue *q, uint64_t id);
bool queue_restore_remove(struct queue *q, uint64_t id, enum job_state why);
bool queue_restore_retry(struct queue *q, uint64_t id, uint32_t attempts, uint32_t waived,
                         int64_t not_before, const char *error, int64_t new_lane_key,
                         const uint8_t *payload, size_t payload_len, bool has_payload,
                         int64_t paused_until);
bool queue_restore_dead(struct queue *q, uint64_t id, uint32_t attempts, const char *error,
                        int64_t dead_ms);
bool queue_restore_requeue(struct queue *q, uint64_t id, int64_t deadline_ms);
/* A dedupe key whose job is gone (finished within the window). */
void queue_restore_dedupe(struct queue *q, const char *key, uint64_t id, enum job_state state,
                          int64_t expires_ms);
void queue_restore_lane(struct queue *q, int64_t key, int kind, int64_t paused_until);
/* Ends a restore: next id and seq past everything seen, every job durable. */
void queue_restore_done(struct queue *q, uint64_t next_id, uint64_t last_seq, int64_t now);

/* ---- snapshot (wal.c) --------------------------------------------------------------------- */
struct queue_visitor {
    void *arg;
    /* Live jobs lane by lane in lane order (in flight first), then dead letters oldest first. */
    void (*job)(void *arg, const struct job *j);
    /* Dedupe keys whose job is gone. */
    void (*dedupe)(void *arg, const char *key, uint64_t id, enum job_state st, int64_t expires);
    /* Lanes with a pause still running. */
    void (*lane)(void *arg, int64_t key, int kind, int64_t paused_until);
};
void queue_visit(const struct queue *q, const struct queue_visitor *v, int64_t now);
uint64_t queue_next_id(const struct queue *q);

/* Checks every invariant (counts, links, heaps, indexes); returns NULL or what is broken.
 * For tests and the fuzzer. */
const char *queue_check(const struct queue *q);

#endif
