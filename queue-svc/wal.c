/* wal.c -- the queue's write-ahead log, snapshots, replay and compaction (see wal.h).
 *
 * DESIGN
 * - The queue reports each change to wal_sink with the lock held; the encoded record is held
 *   back until the next change or wal_commit, so the answer's done callback rides on the last
 *   record of its change (records are made durable in order: that one covers them all).
 * - Records carry an increasing seq. A snapshot records the last seq it contains and the first
 *   log generation it does not: replay loads it, then every later generation, skipping what it
 *   already has. Gaps in seq are reported (a lost piece of a damaged file).
 * - Startup always ends with a fresh snapshot and a new generation, so damaged files can be
 *   moved aside without losing their good records, and a long log is never replayed twice. */
#include "wal.h"

#include "clock.h"
#include "conf.h"
#include "durable.h"
#include "log.h"
#include "metrics.h"
#include "queue-svc/wal.pb-c.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef Engbot__Queue__Wal__V1__Record Record;
typedef Engbot__Queue__Wal__V1__JobRec JobRec;

#define SNAP_NAME "queue.snap"

struct wal {
    struct wal_opts o;
    char *dir;
    struct queue *q;
    pthread_mutex_t *mu; /* the queue lock (broker.c) */
    struct rlog *log;
    uint64_t gen, oldest_gen; /* current generation; oldest one still on disk */

    /* the last change's last record, not yet handed to the log (lock held) */
    uint8_t *held;
    size_t held_len, held_cap;
    uint64_t held_seq;
    bool has_held;

    _Atomic uint64_t durable_seq;

    pthread_mutex_t cmu; /* one compaction at a time; guards stop */
    pthread_cond_t ccv;
    pthread_t compactor;
    bool stop, thread_started;
};

struct wal_wait {
    struct wal *w;
    uint64_t seq;
    wal_done_fn *fn;
    void *arg;
};

static void log_path(const struct wal *w, uint64_t gen, char *out, size_t cap)
{
    snprintf(out, cap, "%s/wal-%020" PRIu64 ".log", w->dir, gen);
}

/* ---- encoding ----------------------------------------------------------------------------------
 */

static void job_to_rec(const struct job *j, JobRec *r)
{
    r->id = j->id;
    r->lane_key = j->lane_key;
    r->lane_kind = j->kind;
    r->method = j->method;
    r->payload.data = j->payload;
    r->payload.len = j->payload_len;
    r->dedupe_key = j->dedupe_key ? j->dedupe_key : "";
    r->deadline_ms = j->deadline_ms;
    r->ttl_ms = j->ttl_ms;
    r->enqueued_ms = j->enqueued_ms;
    r->not_before_ms = j->not_before_ms;
    r->attempts = j->attempts;
    r->last_error = j->last_error ? j->last_error : "";
    r->dead = j->state == JS_DEAD;
    r->dead_ms = j->dead_ms;
    r->waived = j->waived;
}

/* Packs r into *buf (grown as needed); returns the length. */
static size_t pack(const Record *r, uint8_t **buf, size_t *cap)
{
    size_t n = engbot__queue__wal__v1__record__get_packed_size(r);
    if (n > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < n)
            nc *= 2;
        uint8_t *p = realloc(*buf, nc);
        if (!p)
            abort();
        *buf = p;
        *cap = nc;
    }
    return engbot__queue__wal__v1__record__pack(r, *buf);
}

/* Builds the record of one queue event (pointers borrowed from the job). */
static void event_record(const struct qevent *ev, Record *r, JobRec *jr,
                         Engbot__Queue__Wal__V1__Ack *ack, Engbot__Queue__Wal__V1__Retry *rt,
                         Engbot__Queue__Wal__V1__Dead *dd, Engbot__Queue__Wal__V1__Requeue *rq,
                         Engbot__Queue__Wal__V1__Remove *rm)
{
    const struct job *j = ev->job;
    r->seq = ev->seq;
    switch (ev->type) {
    case QEV_ENQUEUE:
        job_to_rec(j, jr);
        r->op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_ENQUEUE;
        r->enqueue = jr;
        break;
    case QEV_ACK:
        ack->id = j->id;
        r->op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_ACK;
        r->ack = ack;
        break;
    case QEV_RETRY:
        rt->id = j->id;
        rt->attempts = j->attempts;
        rt->waived = j->waived;
        rt->not_before_ms = j->not_before_ms;
        rt->error = j->last_error ? j->last_error : "";
        rt->new_lane_key = j->lane_key;
        rt->has_new_payload = ev->payload_changed;
        if (ev->payload_changed) {
            rt->new_payload.data = j->payload;
            rt->new_payload.len = j->payload_len;
        }
        rt->paused_until_ms = ev->paused_until;
        r->op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_RETRY;
        r->retry = rt;
        break;
    case QEV_DEAD:
        dd->id = j->id;
        dd->attempts = j->attempts;
        dd->error = j->last_error ? j->last_error : "";
        dd->dead_ms = j->dead_ms;
        r->op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_DEAD;
        r->dead = dd;
        break;
    case QEV_REQUEUE:
        rq->id = j->id;
        rq->deadline_ms = j->deadline_ms;
        r->op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_REQUEUE;
        r->requeue = rq;
        break;
    case QEV_REMOVE:
        rm->id = j->id;
        rm->state = ev->state;
        r->op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_REMOVE;
        r->remove = rm;
        break;
    }
}

/* ---- appending
 * ----------------------------------------------------------------------------------- */

static void on_written(void *arg, int err)
{
    struct wal_wait *ww = arg;
    struct wal *w = ww->w;
    if (!err) {
        if (ww->seq > atomic_load(&w->durable_seq))
            atomic_store(&w->durable_seq, ww->seq);
        if (w->o.on_durable)
            w->o.on_durable(w->o.on_durable_arg, ww->seq);
    } else {
        if (w->o.errors)
            metric_inc(w->o.errors);
        LOG_ERROR("write-ahead log write failed: the change is not durable", LF_STR("dir", w->dir),
                  LF_STR("error", strerror(err)));
    }
    ww->fn(ww->arg, err);
    free(ww);
}

static int append_held(struct wal *w, wal_done_fn *done, void *arg)
{
    if (!w->has_held)
        return 0;
    w->has_held = false;
    if (!done)
        return rlog_append(w->log, w->held, w->held_len, NULL, NULL) < 0 ? -1 : 0;
    struct wal_wait *ww = malloc(sizeof *ww);
    if (!ww)
        abort();
    *ww = (struct wal_wait){w, w->held_seq, done, arg};
    if (rlog_append(w->log, w->held, w->held_len, on_written, ww) < 0) {
        free(ww);
        return -1;
    }
    return 1;
}

void wal_sink(void *arg, const struct qevent *ev)
{
    struct wal *w = arg;
    Record r = ENGBOT__QUEUE__WAL__V1__RECORD__INIT;
    JobRec jr = ENGBOT__QUEUE__WAL__V1__JOB_REC__INIT;
    Engbot__Queue__Wal__V1__Ack ack = ENGBOT__QUEUE__WAL__V1__ACK__INIT;
    Engbot__Queue__Wal__V1__Retry rt = ENGBOT__QUEUE__WAL__V1__RETRY__INIT;
    Engbot__Queue__Wal__V1__Dead dd = ENGBOT__QUEUE__WAL__V1__DEAD__INIT;
    Engbot__Queue__Wal__V1__Requeue rq = ENGBOT__QUEUE__WAL__V1__REQUEUE__INIT;
    Engbot__Queue__Wal__V1__Remove rm = ENGBOT__QUEUE__WAL__V1__REMOVE__INIT;
    event_record(ev, &r, &jr, &ack, &rt, &dd, &rq, &rm);
    if (w->has_held && w->log)
        append_held(w, NULL, NULL);
    w->held_len = pack(&r, &w->held, &w->held_cap);
    w->held_seq = ev->seq;
    w->has_held = w->log != NULL; /* no log yet (replay): nothing to write */
}

int wal_commit(struct wal *w, wal_done_fn *done, void *arg)
{
    if (!w->log)
        return -1;
    return append_held(w, done, arg);
}

int wal_barrier(struct wal *w, wal_done_fn *done, void *arg)
{
    if (!w->log)
        return -1;
    if (w->has_held)
        return append_held(w, done, arg);
    Record r = ENGBOT__QUEUE__WAL__V1__RECORD__INIT;
    Engbot__Queue__Wal__V1__Nop nop = ENGBOT__QUEUE__WAL__V1__NOP__INIT;
    r.op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_NOP;
    r.nop = &nop;
    w->held_len = pack(&r, &w->held, &w->held_cap);
    w->held_seq = queue_last_seq(w->q);
    w->has_held = true;
    return append_held(w, done, arg);
}

uint64_t wal_durable_seq(struct wal *w)
{
    return atomic_load(&w->durable_seq);
}

int wal_flush(struct wal *w)
{
    pthread_mutex_lock(w->mu);
    if (w->has_held)
        append_held(w, NULL, NULL);
    pthread_mutex_unlock(w->mu);
    return rlog_flush(w->log);
}

uint64_t wal_bytes(struct wal *w)
{
    return w->log ? rlog_bytes(w->log) : 0;
}

/* ---- snapshots
 * ----------------------------------------------------------------------------------- */

/* The serialised state: packed records one after another, each preceded by its u32 length. */
struct snapbuf {
    uint8_t *b;
    size_t len, cap;
    uint64_t records;
    uint8_t *tmp;
    size_t tmpcap;
};

static void snap_add(struct snapbuf *s, const Record *r)
{
    size_t n = pack(r, &s->tmp, &s->tmpcap);
    if (s->len + n + 4 > s->cap) {
        size_t nc = s->cap ? s->cap : 65536;
        while (nc < s->len + n + 4)
            nc *= 2;
        uint8_t *p = realloc(s->b, nc);
        if (!p)
            abort();
        s->b = p;
        s->cap = nc;
    }
    uint32_t l32 = (uint32_t)n;
    memcpy(s->b + s->len, &l32, 4);
    memcpy(s->b + s->len + 4, s->tmp, n);
    s->len += n + 4;
    s->records++;
}

static void snap_job(void *arg, const struct job *j)
{
    Record r = ENGBOT__QUEUE__WAL__V1__RECORD__INIT;
    JobRec jr = ENGBOT__QUEUE__WAL__V1__JOB_REC__INIT;
    job_to_rec(j, &jr);
    r.op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_JOB;
    r.job = &jr;
    snap_add(arg, &r);
}

static void snap_dedupe(void *arg, const char *key, uint64_t id, enum job_state st, int64_t exp)
{
    Record r = ENGBOT__QUEUE__WAL__V1__RECORD__INIT;
    Engbot__Queue__Wal__V1__DedupeRec d = ENGBOT__QUEUE__WAL__V1__DEDUPE_REC__INIT;
    d.key = (char *)key;
    d.id = id;
    d.state = st;
    d.expires_ms = exp;
    r.op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_DEDUPE;
    r.dedupe = &d;
    snap_add(arg, &r);
}

static void snap_lane(void *arg, int64_t key, int kind, int64_t paused_until)
{
    Record r = ENGBOT__QUEUE__WAL__V1__RECORD__INIT;
    Engbot__Queue__Wal__V1__LaneRec l = ENGBOT__QUEUE__WAL__V1__LANE_REC__INIT;
    l.key = key;
    l.kind = kind;
    l.paused_until_ms = paused_until;
    r.op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_LANE;
    r.lane = &l;
    snap_add(arg, &r);
}

/* Serialises the queue (lock held). */
static void serialise(struct wal *w, uint64_t first_gen, struct snapbuf *s)
{
    Record r = ENGBOT__QUEUE__WAL__V1__RECORD__INIT;
    Engbot__Queue__Wal__V1__Meta m = ENGBOT__QUEUE__WAL__V1__META__INIT;
    m.last_seq = queue_last_seq(w->q);
    m.next_id = queue_next_id(w->q);
    m.first_gen = first_gen;
    m.written_ms = clock_now_ms();
    m.writer_version = (char *)engbot_version;
    r.op_case = ENGBOT__QUEUE__WAL__V1__RECORD__OP_META;
    r.meta = &m;
    snap_add(s, &r);
    struct queue_visitor v = {s, snap_job, snap_dedupe, snap_lane};
    queue_visit(w->q, &v, clock_now_ms());
}

static int write_snapshot(struct wal *w, struct snapbuf *s, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/" SNAP_NAME, w->dir);
    struct dfile *f = dfile_create(path, WAL_KIND_SNAP, WAL_FORMAT_VERSION, err, errlen);
    if (!f)
        return -1;
    for (size_t off = 0; off < s->len;) {
        uint32_t n;
        memcpy(&n, s->b + off, 4);
        if (dfile_record(f, s->b + off + 4, n) < 0)
            break;
        off += 4 + n;
    }
    return dfile_commit(f, NULL, err, errlen);
}

static void snapbuf_free(struct snapbuf *s)
{
    free(s->b);
    free(s->tmp);
}

/* Deletes the log generations before `upto` (a snapshot covers them). */
static void delete_before(struct wal *w, uint64_t upto)
{
    char path[4096];
    bool any = false;
    for (uint64_t g = w->oldest_gen; g < upto; g++) {
        log_path(w, g, path, sizeof path);
        if (unlink(path) == 0)
            any = true;
    }
    if (upto > w->oldest_gen)
        w->oldest_gen = upto;
    if (any)
        durable_sync_dir(w->dir);
}

int wal_compact(struct wal *w, char *err, size_t errlen)
{
    struct snapbuf s = {0};
    char path[4096];
    int64_t t0 = clock_mono_ms();
    pthread_mutex_lock(&w->cmu);
    pthread_mutex_lock(w->mu);
    /* Rotation waits for the log to drain; done callbacks never take this lock, and nobody
     * can append while we hold it, so it cannot wait forever. */
    if (w->has_held)
        append_held(w, NULL, NULL);
    uint64_t next = w->gen + 1;
    log_path(w, next, path, sizeof path);
    if (rlog_rotate(w->log, path, err, errlen) < 0) {
        pthread_mutex_unlock(w->mu);
        pthread_mutex_unlock(&w->cmu);
        LOG_ERROR("compaction: cannot start a new log generation", LF_STR("error", err));
        return -1;
    }
    w->gen = next;
    serialise(w, next, &s);
    pthread_mutex_unlock(w->mu);

    int rc = write_snapshot(w, &s, err, errlen);
    if (rc == 0) {
        delete_before(w, next);
        if (w->o.compactions)
            metric_inc(w->o.compactions);
        LOG_INFO("write-ahead log compacted", LF_U64("records", s.records),
                 LF_U64("snapshot_bytes", s.len), LF_U64("generation", next),
                 LF_I64("ms", clock_mono_ms() - t0));
    } else {
        LOG_ERROR("compaction: cannot write the snapshot (the log is kept)", LF_STR("error", err));
    }
    pthread_mutex_unlock(&w->cmu);
    snapbuf_free(&s);
    return rc;
}

static void *compactor(void *arg)
{
    struct wal *w = arg;
    char err[256];
    pthread_mutex_lock(&w->cmu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->ccv, &w->cmu, &ts);
        if (w->stop)
            break;
        if ((int64_t)rlog_bytes(w->log) >= w->o.compact_bytes) {
            pthread_mutex_unlock(&w->cmu);
            wal_compact(w, err, sizeof err);
            pthread_mutex_lock(&w->cmu);
        }
    }
    pthread_mutex_unlock(&w->cmu);
    return NULL;
}

/* ---- open / close
 * ---------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The log generations in dir, ascending. */
static uint64_t *list_gens(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    uint64_t *g = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long gen;
        int used = 0;
        if (strlen(e->d_name) != 28 || sscanf(e->d_name, "wal-%20llu.log%n", &gen, &used) != 1 ||
            used != 28)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            g = realloc(g, cap * sizeof *g);
            if (!g)
                abort();
        }
        g[(*n)++] = gen;
    }
    closedir(d);
    if (*n)
        qsort(g, *n, sizeof *g, cmp_u64);
    return g;
}

/* Copies a damaged snapshot aside before the new one replaces it (renaming it first would
 * lose its good records if we crashed before the new snapshot is written). */
static int copy_aside(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s.damaged-%lld", path, (long long)clock_now_ms());
    FILE *in = fopen(path, "rb"), *o = in ? fopen(out, "wb") : NULL;
    int rc = in && o ? 0 : -1;
    char buf[65536];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, o) != n)
            rc = -1;
    if (o && (fflush(o) != 0 || fsync(fileno(o)) != 0))
        rc = -1;
    if (o)
        fclose(o);
    if (in)
        fclose(in);
    return rc;
}

struct aside {
    char **paths;
    size_t n;
};

static void aside_add(struct aside *a, const char *path)
{
    a->paths = realloc(a->paths, (a->n + 1) * sizeof *a->paths);
    if (!a->paths)
        abort();
    a->paths[a->n++] = strdup(path);
}

struct wal *wal_open(const struct wal_opts *o, struct queue *q, pthread_mutex_t *mu,
                     struct wal_replay_stats *st, char *err, size_t errlen)
{
    struct wal *w = calloc(1, sizeof *w);
    struct aside aside = {0};
    uint64_t *gens = NULL;
    size_t ngens = 0;
    char path[4096], why[320];
    bool damaged;
    struct snapbuf s = {0};
    if (!w)
        abort();
    w->o = *o;
    w->dir = strdup(o->dir);
    w->q = q;
    w->mu = mu;
    pthread_mutex_init(&w->cmu, NULL);
    pthread_cond_init(&w->ccv, NULL);
    memset(st, 0, sizeof *st);
    if (durable_check_dir(w->dir, err, errlen) < 0)
        goto fail;

    int64_t t0 = clock_mono_ms();
    queue_restore_begin(q);
    uint64_t first_gen = 0;
    snprintf(path, sizeof path, "%s/" SNAP_NAME, w->dir);
    int rc = wal_replay_file(path, WAL_KIND_SNAP, q, 0, st, &damaged, &first_gen, why, sizeof why);
    if (rc == -1) {
        snprintf(err, errlen, "cannot use snapshot %s: %s", path, why);
        goto fail;
    }
    if (rc == -2 || damaged) {
        char out[4200];
        int crc = copy_aside(path, out, sizeof out);
        LOG_ERROR("snapshot is damaged: keeping what it holds; a copy is kept aside",
                  LF_STR("file", path), LF_STR("why", why),
                  LF_STR("copy", crc == 0 ? out : "(copy failed)"));
    }
    uint64_t skip = st->last_seq;

    gens = list_gens(w->dir, &ngens);
    uint64_t max_gen = 0;
    for (size_t i = 0; i < ngens; i++) {
        if (gens[i] > max_gen)
            max_gen = gens[i];
        if (gens[i] < first_gen)
            continue; /* covered by the snapshot; deleted below */
        log_path(w, gens[i], path, sizeof path);
        uint64_t gaps = st->gaps;
        rc = wal_replay_file(path, WAL_KIND_LOG, q, skip, st, &damaged, NULL, why, sizeof why);
        if (rc == -1) {
            snprintf(err, errlen, "cannot use write-ahead log %s: %s", path, why);
            goto fail;
        }
        if (rc == -2 || damaged) {
            LOG_ERROR("write-ahead log is damaged (torn or corrupt record): the records before "
                      "it are kept, the file is set aside",
                      LF_STR("file", path), LF_STR("why", why));
            aside_add(&aside, path);
        }
        if (st->gaps > gaps)
            LOG_ERROR("write-ahead log has a gap: records between generations are missing",
                      LF_STR("file", path));
    }
    int64_t now = clock_now_ms();
    queue_restore_done(q, st->next_id, st->last_seq, now);
    const char *bad = queue_check(q);
    if (bad) {
        snprintf(err, errlen, "replay produced an inconsistent queue (%s): please report", bad);
        goto fail;
    }
    atomic_store(&w->durable_seq, queue_last_seq(q));
    st->next_id = queue_next_id(q);
    st->last_seq = queue_last_seq(q);

    st->newest_gen = max_gen > first_gen ? max_gen : first_gen;

    /* A fresh snapshot covers everything read; then the old files can go. */
    w->gen = max_gen + 1 > first_gen ? max_gen + 1 : first_gen;
    if (w->gen == 0)
        w->gen = 1;
    pthread_mutex_lock(mu);
    serialise(w, w->gen, &s);
    pthread_mutex_unlock(mu);
    if (write_snapshot(w, &s, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < aside.n; i++) {
        char out[4200];
        if (durable_keep_aside(aside.paths[i], out, sizeof out) == 0)
            LOG_ERROR("damaged file kept aside for inspection", LF_STR("file", out));
    }
    for (size_t i = 0; i < ngens; i++) {
        if (gens[i] < w->gen) {
            log_path(w, gens[i], path, sizeof path);
            unlink(path); /* a snapshot covers it (damaged ones were renamed already) */
        }
    }
    durable_sync_dir(w->dir);
    w->oldest_gen = w->gen;

    struct rlog_opts ro = {
        .sync_interval_ms = o->sync_interval_ms,
        .no_fsync = !o->fsync,
        .fsync_seconds = o->fsync_seconds,
        .batch_records = o->batch_records,
    };
    log_path(w, w->gen, path, sizeof path);
    w->log = rlog_open(path, WAL_KIND_LOG, WAL_FORMAT_VERSION, &ro, err, errlen);
    if (!w->log)
        goto fail;
    w->thread_started = pthread_create(&w->compactor, NULL, compactor, w) == 0;
    LOG_INFO("queue restored", LF_U64("files", st->files), LF_U64("records", st->records),
             LF_U64("skipped", st->skipped), LF_U64("unknown", st->unknown),
             LF_U64("damaged", st->damaged), LF_U64("last_seq", st->last_seq),
             LF_I64("ms", clock_mono_ms() - t0), LF_U64("generation", w->gen));
    if (st->unknown)
        LOG_WARN("skipped records written by a newer queue-svc (safe to skip by the format rule)",
                 LF_U64("records", st->unknown));
    if (st->undecodable)
        LOG_ERROR("records with a good checksum could not be decoded and were skipped",
                  LF_U64("records", st->undecodable));
    goto out;
fail:
    pthread_mutex_destroy(&w->cmu);
    pthread_cond_destroy(&w->ccv);
    free(w->dir);
    free(w);
    w = NULL;
out:
    for (size_t i = 0; i < aside.n; i++)
        free(aside.paths[i]);
    free(aside.paths);
    free(gens);
    snapbuf_free(&s);
    return w;
}

uint64_t wal_close(struct wal *w)
{
    char err[256];
    if (!w)
        return 0;
    if (w->thread_started) {
        pthread_mutex_lock(&w->cmu);
        w->stop = true;
        pthread_cond_signal(&w->ccv);
        pthread_mutex_unlock(&w->cmu);
        pthread_join(w->compactor, NULL);
    }
    /* One last compaction: the next start reads a snapshot, not a long log. */
    wal_compact(w, err, sizeof err);
    pthread_mutex_lock(w->mu);
    if (w->has_held)
        append_held(w, NULL, NULL);
    pthread_mutex_unlock(w->mu);
    rlog_close(w->log);
    w->log = NULL;
    uint64_t gen = w->gen;
    pthread_mutex_destroy(&w->cmu);
    pthread_cond_destroy(&w->ccv);
    free(w->held);
    free(w->dir);
    free(w);
    return gen;
}

int wal_error(struct wal *w)
{
    return w && w->log ? rlog_error(w->log) : 0;
}
