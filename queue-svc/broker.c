/* broker.c -- the shared queue: its lock, its clock, the WAL as its sink, long-poll Lease
 * waiters and the scheduler thread (see broker.h).
 *
 * DESIGN: a waiting Lease is a record in a FIFO, not a blocked thread: the handler returns
 * RPC_PENDING and whoever finds jobs for it (the scheduler, after a record became durable, a
 * lane's token came back or an ack freed a lane) copies them into its answer under the lock and
 * finishes the call after unlocking. The scheduler sleeps until the earliest thing it knows
 * will happen (queue_next_tick, queue_next_ready while someone waits, a waiter's deadline) or
 * until kicked. */
#include "broker.h"

#include "clock.h"
#include "durable.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct waiter {
    struct broker_lease l;
    int64_t deadline; /* queue clock */
    struct waiter *prev, *next;
};

struct broker {
    pthread_mutex_t mu; /* the queue lock */
    struct queue *q;
    struct wal *w;
    int64_t last_now;
    bool draining;
    int64_t hold_until; /* queue clock: nothing is leased before it (restart hold) */
    char *dir;          /* DATA_DIR (the clean-stop mark) */
    struct waiter *wh, *wt; /* waiting Lease calls, oldest first */
    _Atomic uint64_t nwaiting;

    /* scheduler */
    pthread_t sched;
    pthread_mutex_t kmu;
    pthread_cond_t kcv; /* CLOCK_MONOTONIC */
    _Atomic bool kicked;
    bool stop;
    int64_t next_wake;       /* queue clock, INT64_MAX = none (kmu) */
    _Atomic int64_t planned; /* the same, readable without kmu */
};

/* The queue's clock: wall time (everything is persisted or shown as Unix ms), never going
 * backwards (a stepped clock must not release a deadline twice or stall a bucket). */
static int64_t now_locked(struct broker *b)
{
    int64_t t = clock_now_ms();
    if (t < b->last_now)
        t = b->last_now;
    b->last_now = t;
    return t;
}

static void kick(struct broker *b)
{
    if (atomic_exchange(&b->kicked, true))
        return;
    pthread_mutex_lock(&b->kmu);
    pthread_cond_signal(&b->kcv);
    pthread_mutex_unlock(&b->kmu);
}

/* After a change (lock held): wake the scheduler if the queue now has something to do
 * before the time it planned to wake (a short deadline, a shorter lease). */
static void maybe_kick(struct broker *b, bool *wake)
{
    if (queue_next_tick(b->q) < atomic_load(&b->planned))
        *wake = true;
}

static void sink(void *arg, const struct qevent *ev)
{
    struct broker *b = arg;
    wal_sink(b->w, ev);
}

static void on_durable(void *arg, uint64_t seq)
{
    struct broker *b = arg;
    if (atomic_load(&b->nwaiting) > 0)
        kick(b);
}

/* ---- waiters ----------------------------------------------------------------------------------
 */

static void waiter_unlink(struct broker *b, struct waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        b->wh = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->wt = w->prev;
    w->prev = w->next = NULL;
    atomic_fetch_sub(&b->nwaiting, 1);
}

/* Leases the ready jobs a waiter or caller may take. None while the write-ahead log cannot be
 * written: the outcome (Ack/Retry/Fail) of a job leased now could not be recorded either, so a
 * crash before the disk recovers would send it a second time. The jobs wait; on_durable wakes
 * the waiters once the log is written again. */
static size_t take_for(struct broker *b, const struct broker_lease *l, int64_t now)
{
    if (wal_error(b->w) || now < b->hold_until)
        return 0;
    struct job *jobs[128];
    size_t max = l->max_jobs < 128 ? l->max_jobs : 128;
    size_t n = queue_take(b->q, now, max, l->lease_ms, l->max_bytes, jobs);
    for (size_t i = 0; i < n; i++)
        l->on_job(l->arg, jobs[i]);
    return n;
}

/* Hands ready jobs to waiters in arrival order, and ends the waits that ran out. The waiters
 * answered are moved to *done (finished after the lock is released). */
static void serve(struct broker *b, int64_t now, struct waiter **done)
{
    for (struct waiter *w = b->wh; w;) {
        struct waiter *next = w->next;
        bool over = w->deadline <= now || b->draining;
        if (take_for(b, &w->l, now) > 0 || over) {
            waiter_unlink(b, w);
            w->next = *done;
            *done = w;
        } else if (queue_next_ready(b->q, now) > now) {
            /* Nothing is ready: later waiters would find nothing either; only deadlines. */
            for (struct waiter *x = next; x;) {
                struct waiter *xn = x->next;
                if (x->deadline <= now) {
                    waiter_unlink(b, x);
                    x->next = *done;
                    *done = x;
                }
                x = xn;
            }
            break;
        }
        w = next;
    }
}

static void finish_all(struct waiter *done)
{
    while (done) {
        struct waiter *n = done->next;
        done->l.finish(done->l.arg);
        free(done);
        done = n;
    }
}

/* ---- scheduler ---------------------------------------------------------------------------------
 */

static int64_t run_once(struct broker *b)
{
    struct waiter *done = NULL;
    pthread_mutex_lock(&b->mu);
    int64_t now = now_locked(b);
    queue_set_durable(b->q, wal_durable_seq(b->w), now);
    queue_tick(b->q, now);
    serve(b, now, &done);
    int64_t next = queue_next_tick(b->q);
    if (b->wh) {
        int64_t r = queue_next_ready(b->q, now);
        if (r <= now && wal_error(b->w))
            r = now + 100; /* take_for holds jobs back: look again soon, do not spin */
        if (r < b->hold_until)
            r = b->hold_until;
        if (r < next)
            next = r;
        for (struct waiter *w = b->wh; w; w = w->next)
            if (w->deadline < next)
                next = w->deadline;
    }
    wal_commit(b->w, NULL, NULL);
    /* Published under the queue lock: a change made after this compares against it and
     * kicks; one made before is already counted in next. */
    atomic_store(&b->planned, next);
    pthread_mutex_unlock(&b->mu);
    finish_all(done);
    return next;
}

static void *sched_main(void *arg)
{
    struct broker *b = arg;
    pthread_mutex_lock(&b->kmu);
    while (!b->stop) {
        while (!atomic_load(&b->kicked) && !b->stop) {
            int64_t wake = b->next_wake;
            if (wake == INT64_MAX) {
                pthread_cond_wait(&b->kcv, &b->kmu);
                continue;
            }
            int64_t delay = wake - clock_now_ms();
            if (delay <= 0)
                break;
            if (delay > 60000)
                delay = 60000; /* re-check now and then (a stepped clock) */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += delay / 1000;
            ts.tv_nsec += (delay % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&b->kcv, &b->kmu, &ts);
        }
        if (b->stop)
            break;
        atomic_store(&b->kicked, false);
        pthread_mutex_unlock(&b->kmu);
        int64_t next = run_once(b);
        pthread_mutex_lock(&b->kmu);
        b->next_wake = next;
    }
    pthread_mutex_unlock(&b->kmu);
    return NULL;
}

/* ---- restart hold ----------------------------------------------------------------------------
 * A clean stop (every lease settled) leaves CLEAN_MARK in DATA_DIR; the next start removes it.
 * A start without it follows a crash: the jobs leased then came back ready, and their senders
 * may have sent them and still be retrying the Ack. For restart_hold_ms nothing is leased, and
 * queue_ack takes an Ack for a restored job that was not leased again (orphan) — otherwise
 * the job would go out a second time (drills F9).
 *
 * The mark holds the newest log generation the clean stop left. Every start of queue-svc, of
 * any version, opens a new generation, so a mark that names an older one than the start finds
 * was left before another process ran on this directory — an older version in a rollback,
 * which neither knows nor removes the mark, and whose own stop may have left leases open. Such
 * a mark is stale, and the start holds (rollback drill, 2026-11-30: one reply sent twice). An
 * empty mark (from the versions before the generation was written) counts as stale too. */

#define CLEAN_MARK "clean-stop"

/* The generation a clean-stop mark names; 0 for none, an empty or an unreadable mark. */
static uint64_t read_mark(const char *path)
{
    char buf[32] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    unsigned long long gen = 0;
    if (n <= 0 || sscanf(buf, "%llu", &gen) != 1)
        return 0;
    return gen;
}

static void restart_hold(struct broker *b, int64_t hold_ms, uint64_t newest_gen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", b->dir, CLEAN_MARK);
    uint64_t marked = read_mark(path);
    if (unlink(path) == 0) {
        durable_sync_dir(b->dir); /* gone before anything is leased: a crash is not clean */
        if (marked != 0 && marked == newest_gen)
            return;
        LOG_INFO("the clean-stop mark is stale: another process (an older version?) ran on "
                 "DATA_DIR after it was written, and may have stopped with leases open",
                 LF_U64("mark_generation", marked), LF_U64("newest_generation", newest_gen));
    }
    size_t n = queue_mark_orphans(b->q);
    if (n == 0 || hold_ms <= 0)
        return;
    b->hold_until = b->last_now + hold_ms;
    LOG_INFO("started without a clean stop (a crash, or leases still open at the stop): "
             "holding the restored jobs so that their senders can still acknowledge them",
             LF_I64("jobs", n), LF_I64("hold_ms", hold_ms), LF_STR("setting", "RESTART_HOLD"));
}

static void mark_clean(struct broker *b, uint64_t newest_gen)
{
    char path[4096], line[32];
    snprintf(path, sizeof path, "%s/%s", b->dir, CLEAN_MARK);
    int len = snprintf(line, sizeof line, "%llu\n", (unsigned long long)newest_gen);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)len) != len || fsync(fd) < 0) {
        LOG_WARN("cannot mark the stop as clean (the next start holds its jobs for RESTART_HOLD)",
                 LF_STR("path", path), LF_STR("error", strerror(errno)));
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    durable_sync_dir(b->dir);
}

/* ---- API ----------------------------------------------------------------------------------------
 */

struct broker *broker_open(const struct broker_opts *o, struct wal_replay_stats *st, char *err,
                           size_t errlen)
{
    struct broker *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->kmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->kcv, &ca);
    pthread_condattr_destroy(&ca);
    b->next_wake = 0;
    atomic_store(&b->planned, 0);
    b->q = queue_new(&o->q, sink, b);
    queue_set_metrics(b->q, o->counters, o->gauges, o->time_in_queue);
    struct wal_opts wo = o->w;
    wo.on_durable = on_durable;
    wo.on_durable_arg = b;
    b->w = wal_open(&wo, b->q, &b->mu, st, err, errlen);
    if (!b->w) {
        queue_free(b->q);
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->kmu);
        pthread_cond_destroy(&b->kcv);
        free(b);
        return NULL;
    }
    b->last_now = clock_now_ms();
    b->dir = strdup(o->w.dir);
    if (!b->dir)
        abort();
    restart_hold(b, o->restart_hold_ms, st->newest_gen);
    if (pthread_create(&b->sched, NULL, sched_main, b) != 0)
        abort();
    pthread_setname_np(b->sched, "queue-sched");
    return b;
}

void broker_drain(struct broker *b)
{
    struct waiter *done = NULL;
    pthread_mutex_lock(&b->mu);
    b->draining = true;
    while (b->wh) {
        struct waiter *w = b->wh;
        waiter_unlink(b, w);
        w->next = done;
        done = w;
    }
    pthread_mutex_unlock(&b->mu);
    finish_all(done);
}

int64_t broker_wait_settled(struct broker *b, int64_t max_ms)
{
    int64_t t0 = clock_mono_ms();
    for (;;) {
        struct queue_stats st;
        pthread_mutex_lock(&b->mu);
        queue_stats(b->q, &st);
        pthread_mutex_unlock(&b->mu);
        if (st.leased == 0)
            return 0;
        if (clock_mono_ms() - t0 >= max_ms)
            return (int64_t)st.leased;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

void broker_close(struct broker *b)
{
    if (!b)
        return;
    broker_drain(b);
    pthread_mutex_lock(&b->kmu);
    b->stop = true;
    pthread_cond_signal(&b->kcv);
    pthread_mutex_unlock(&b->kmu);
    pthread_join(b->sched, NULL);
    pthread_mutex_lock(&b->mu);
    struct queue_stats st;
    queue_stats(b->q, &st);
    pthread_mutex_unlock(&b->mu);
    int werr = wal_error(b->w);
    uint64_t gen = wal_close(b->w);
    if (st.leased == 0 && !werr)
        mark_clean(b, gen);
    free(b->dir);
    queue_free(b->q);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->kmu);
    pthread_cond_destroy(&b->kcv);
    free(b);
}

int broker_change(struct broker *b, broker_fn *fn, void *arg, struct bcall *c)
{
    c->later = false;
    c->wait_seq = 0;
    pthread_mutex_lock(&b->mu);
    int64_t now = now_locked(b);
    fn(arg, b->q, now);
    int rc = wal_commit(b->w, c->done, c->arg);
    if (rc == 0 && c->wait_seq > wal_durable_seq(b->w))
        rc = wal_barrier(b->w, c->done, c->arg);
    bool wake = b->wh != NULL; /* an ack or a retry may have made a lane ready */
    maybe_kick(b, &wake);
    pthread_mutex_unlock(&b->mu);
    if (wake)
        kick(b);
    if (rc < 0)
        return -1;
    c->later = rc == 1;
    return 0;
}

void broker_read(struct broker *b, broker_fn *fn, void *arg)
{
    pthread_mutex_lock(&b->mu);
    fn(arg, b->q, now_locked(b));
    pthread_mutex_unlock(&b->mu);
}

bool broker_lease(struct broker *b, const struct broker_lease *l)
{
    pthread_mutex_lock(&b->mu);
    int64_t now = now_locked(b);
    queue_set_durable(b->q, wal_durable_seq(b->w), now);
    queue_tick(b->q, now);
    /* Draining: no new leases (the jobs wait in the WAL for the next process). */
    size_t n = b->draining ? 0 : take_for(b, l, now);
    if (n > 0 || l->wait_ms <= 0 || b->draining) {
        bool wake = false;
        maybe_kick(b, &wake); /* new leases may end before the planned wake */
        wal_commit(b->w, NULL, NULL);
        pthread_mutex_unlock(&b->mu);
        if (wake)
            kick(b);
        return true;
    }
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->l = *l;
    w->deadline = now + l->wait_ms;
    w->prev = b->wt;
    if (b->wt)
        b->wt->next = w;
    else
        b->wh = w;
    b->wt = w;
    atomic_fetch_add(&b->nwaiting, 1);
    wal_commit(b->w, NULL, NULL);
    pthread_mutex_unlock(&b->mu);
    kick(b);
    return false;
}

bool broker_lease_cancel(struct broker *b, void *arg)
{
    struct waiter *found = NULL;
    pthread_mutex_lock(&b->mu);
    for (struct waiter *w = b->wh; w; w = w->next) {
        if (w->l.arg == arg) {
            waiter_unlink(b, w);
            found = w;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    free(found);
    return found != NULL;
}

uint64_t broker_wal_bytes(struct broker *b)
{
    return wal_bytes(b->w);
}

uint64_t broker_waiting(struct broker *b)
{
    return atomic_load(&b->nwaiting);
}

bool broker_healthy(struct broker *b, char *why, size_t cap)
{
    int e = wal_error(b->w);
    if (e)
        snprintf(why, cap, "the write-ahead log in DATA_DIR cannot be written (%s): nothing is "
                           "acknowledged until it can",
                 strerror(e));
    return e == 0;
}
