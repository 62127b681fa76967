/* queue.c -- jobs in per-chat lanes: enqueue with limits and dedupe, lease in fair order under
 * the rate limits, ack/retry/fail, deadlines and lease expiry. See queue.h for the design; the
 * structures are in queue_internal.h, lanes and their scheduling in lane.c, the dedupe index in
 * dedupe.c, the operators' calls in queue_ops.c. */
#include "queue_internal.h"

#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Enqueue refuses a job whose estimated wait passes ttl - ttl / DEADLINE_SLACK_DIV. */
#define DEADLINE_SLACK_DIV 10

void *q_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p)
        abort();
    return p;
}

char *q_xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        abort();
    return p;
}

void q_seterr(struct queue *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->err, sizeof q->err, fmt, ap);
    va_end(ap);
}

const char *queue_errstr(const struct queue *q)
{
    return q->err;
}

const struct queue_opts *queue_opts(const struct queue *q)
{
    return &q->o;
}

void q_count(struct queue *q, enum qcounter c)
{
    if (q->restoring)
        return;
    q->count[c]++;
    if (q->mc[c])
        metric_inc(q->mc[c]);
}

uint64_t queue_counter(const struct queue *q, enum qcounter c)
{
    return q->count[c];
}

void update_gauges(struct queue *q)
{
    if (q->mg[0]) {
        metric_set(q->mg[0], (double)q->nqueued);
        metric_set(q->mg[1], (double)q->nleased);
        metric_set(q->mg[2], (double)q->ndead);
        metric_set(q->mg[3], (double)q->nlanes);
    }
}

void queue_set_metrics(struct queue *q, struct metric *const counters[QC_N],
                       struct metric *const gauges[4], struct metric *time_in_queue)
{
    memcpy(q->mc, counters, sizeof q->mc);
    for (int i = 0; i < 4; i++)
        q->mg[i] = gauges ? gauges[i] : NULL;
    if (!gauges || !gauges[0] || !gauges[1] || !gauges[2] || !gauges[3])
        q->mg[0] = NULL;
    q->m_tiq = time_in_queue;
    update_gauges(q);
}

/* Reports a durable change to the sink. Without a sink every change is durable at once. */
uint64_t q_emit(struct queue *q, enum qev_type type, struct job *j, enum job_state st,
                int64_t paused_until, bool payload_changed)
{
    if (q->restoring)
        return 0;
    struct qevent ev = {.type = type,
                        .seq = ++q->last_seq,
                        .job = j,
                        .state = st,
                        .paused_until = paused_until,
                        .payload_changed = payload_changed};
    if (q->sink)
        q->sink(q->sink_arg, &ev);
    else
        q->durable_seq = q->last_seq;
    return ev.seq;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

struct queue *queue_new(const struct queue_opts *o, queue_sink_fn *sink, void *sink_arg)
{
    struct queue *q = q_xcalloc(1, sizeof *q);
    q->o = *o;
    q->sink = sink;
    q->sink_arg = sink_arg;
    hmap_init(&q->lanes);
    hmap_init(&q->jobs);
    hmap_init(&q->dedupe);
    heap_init(&q->ready);
    heap_init(&q->deadlines);
    heap_init(&q->leases);
    heap_init(&q->idle);
    q->next_id = 1;
    q->rng = o->seed ? o->seed
                     : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)q;
    bucket_init(&q->global, &q->o.global, 0);
    return q;
}

static void free_lane_cb(void *arg, void *v)
{
    free(v);
}

static void free_job(struct job *j)
{
    free(j->method);
    free(j->payload);
    free(j->dedupe_key);
    free(j->last_error);
    free(j);
}

static void free_job_cb(void *arg, void *v)
{
    free_job(v);
}

static void free_dd_cb(void *arg, void *v)
{
    struct dedupe *e = v;
    free(e->key);
    free(e);
}

void queue_free(struct queue *q)
{
    if (!q)
        return;
    /* The heaps first: heap_free touches the nodes, which live in the lanes and jobs. */
    heap_free(&q->ready);
    heap_free(&q->deadlines);
    heap_free(&q->leases);
    heap_free(&q->idle);
    hmap_each(&q->jobs, free_job_cb, NULL);
    hmap_each(&q->lanes, free_lane_cb, NULL);
    hmap_each(&q->dedupe, free_dd_cb, NULL);
    hmap_free(&q->jobs);
    hmap_free(&q->lanes);
    hmap_free(&q->dedupe);
    free(q);
}

/* ---- jobs --------------------------------------------------------------------------------------
 */

struct job *job_alloc(uint64_t id, int64_t lane_key, enum lane_kind kind, const char *method,
                      const uint8_t *payload, size_t payload_len, const char *dedupe_key)
{
    struct job *j = q_xcalloc(1, sizeof *j);
    j->id = id;
    j->lane_key = lane_key;
    j->kind = kind == LK_UNSPECIFIED ? LK_PRIVATE : kind;
    j->method = q_xstrndup(method ? method : "", METHOD_MAX);
    j->payload = malloc(payload_len ? payload_len : 1);
    if (!j->payload)
        abort();
    if (payload_len)
        memcpy(j->payload, payload, payload_len);
    j->payload_len = payload_len;
    j->dedupe_key = dedupe_key && *dedupe_key ? q_xstrndup(dedupe_key, DEDUPE_KEY_MAX) : NULL;
    hnode_init(&j->deadline_node);
    hnode_init(&j->lease_node);
    return j;
}

void job_set_error(struct job *j, const char *error)
{
    if (!error || !*error)
        return;
    free(j->last_error);
    j->last_error = q_xstrndup(error, ERROR_MAX);
}

void job_set_payload(struct queue *q, struct job *j, const uint8_t *p, size_t len)
{
    uint8_t *np = malloc(len ? len : 1);
    if (!np)
        abort();
    if (len)
        memcpy(np, p, len);
    bool live = j->state == JS_QUEUED || j->state == JS_LEASED;
    if (live)
        q->bytes -= j->payload_len;
    free(j->payload);
    j->payload = np;
    j->payload_len = len;
    if (live)
        q->bytes += len;
}

void deadline_push(struct queue *q, struct job *j)
{
    j->deadline_node.key = j->deadline_ms;
    j->deadline_node.tie = j->id;
    heap_push(&q->deadlines, &j->deadline_node);
}

void job_detach_live(struct queue *q, struct job *j)
{
    struct lane *l = j->lane;
    if (j->state == JS_LEASED) {
        heap_remove(&q->leases, &j->lease_node);
        if (l && l->in_flight == j)
            l->in_flight = NULL;
        q->nleased--;
    } else {
        heap_remove(&q->deadlines, &j->deadline_node);
        if (l)
            lane_unlink(q, l, j);
        q->nqueued--;
    }
    all_unlink(q, j);
    q->bytes -= j->payload_len;
}

void job_finish(struct queue *q, struct job *j, enum job_state final)
{
    if (j->state == JS_DEAD)
        dead_unlink(q, j);
    else
        job_detach_live(q, j);
    struct dedupe *e = j->dd;
    if (e) {
        e->job = NULL;
        e->state = final;
        j->dd = NULL;
        if (!e->in_fifo)
            dedupe_free(q, e);
    }
    hmap_del(&q->jobs, j->id, j);
    free_job(j);
}

void job_make_dead(struct queue *q, struct job *j, const char *error, int64_t now,
                   enum qcounter why)
{
    job_detach_live(q, j);
    /* A key kept past its window only because the job was live goes now. */
    if (j->dd && !j->dd->in_fifo)
        dedupe_free(q, j->dd);
    job_set_error(j, error);
    j->state = JS_DEAD;
    j->dead_ms = now;
    j->lease_token = 0;
    j->lease_deadline_ms = 0;
    dead_append(q, j);
    q_count(q, why);
    q_emit(q, QEV_DEAD, j, JS_DEAD, 0, false);
    while (q->o.dead_max > 0 && q->ndead > (uint64_t)q->o.dead_max) {
        struct job *old = q->dead_head;
        q_emit(q, QEV_REMOVE, old, JS_DROPPED, 0, false);
        q_count(q, QC_DROP_DEAD_FULL);
        job_finish(q, old, JS_DROPPED);
    }
}

static uint64_t new_token(struct queue *q)
{
    uint64_t t;
    do
        t = rng_next(&q->rng);
    while (t == 0);
    return t;
}

/* ---- producers ----------------------------------------------------------------------------------
 */

static bool method_ok(const char *m)
{
    size_t n = m ? strlen(m) : 0;
    if (n == 0 || n > METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = m[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static enum qerr invalid(struct queue *q)
{
    q_count(q, QC_REJ_INVALID);
    return Q_EINVAL;
}

uint32_t lane_size(const struct lane *l)
{
    return l ? l->nqueued + (l->in_flight ? 1u : 0u) : 0u;
}

/* Drops the oldest queued job of the queue (drop-oldest policy); false when none is queued. */
static bool drop_oldest_global(struct queue *q, int64_t now)
{
    struct job *j = q->all_head;
    while (j && j->state != JS_QUEUED)
        j = j->anext;
    if (!j)
        return false;
    struct lane *l = j->lane;
    bool was_head = l->head == j;
    q_emit(q, QEV_REMOVE, j, JS_DROPPED, 0, false);
    q_count(q, QC_DROP_QUEUE_FULL);
    job_finish(q, j, JS_DROPPED);
    if (was_head)
        lane_refresh(q, l, now);
    return true;
}

enum qerr queue_enqueue(struct queue *q, const struct enq_spec *s, int64_t now,
                        struct enq_result *r)
{
    memset(r, 0, sizeof *r);
    const char *dkey = s->dedupe_key && *s->dedupe_key ? s->dedupe_key : NULL;
    if (s->lane_key == 0) {
        q_seterr(q, "lane_key is required: the chat id the request goes to");
        return invalid(q);
    }
    if (s->kind < LK_UNSPECIFIED || s->kind > LK_UNLIMITED) {
        q_seterr(q, "lane_kind %d is not a LaneKind (1 = private, 2 = group, 3 = unlimited)",
                 s->kind);
        return invalid(q);
    }
    if (!method_ok(s->method)) {
        q_seterr(q,
                 "method '%.80s' is not a Bot API method name (1-%d letters, digits or _, e.g. "
                 "sendMessage)",
                 s->method ? s->method : "", METHOD_MAX);
        return invalid(q);
    }
    if (s->payload_len > (uint64_t)q->o.max_payload) {
        q_seterr(q, "payload is %zu bytes, more than MAX_PAYLOAD=%" PRId64 " bytes", s->payload_len,
                 q->o.max_payload);
        return invalid(q);
    }
    if (dkey && strlen(dkey) > DEDUPE_KEY_MAX) {
        q_seterr(q, "dedupe_key is %zu bytes, more than the %d allowed", strlen(dkey),
                 DEDUPE_KEY_MAX);
        return invalid(q);
    }
    if ((int64_t)s->timeout_ms > q->o.max_ttl_ms) {
        q_seterr(q, "timeout_ms %u is longer than the %" PRId64 " ms allowed", s->timeout_ms,
                 q->o.max_ttl_ms);
        return invalid(q);
    }

    /* The same key within the window is the same job. */
    if (dkey && q->o.dedupe_window_ms > 0) {
        struct dedupe *e = dedupe_find(q, dkey);
        bool live = e && e->job && (e->job->state == JS_QUEUED || e->job->state == JS_LEASED);
        if (e && (e->expires_ms > now || live)) {
            r->duplicate = true;
            r->id = e->id;
            r->state = e->job ? e->job->state : e->state;
            r->job = e->job;
            if (e->job)
                r->seq = e->job->seq > q->durable_seq ? e->job->seq : 0;
            if (live && e->job->lane) {
                uint32_t pos = e->job->lane->in_flight && e->job->state == JS_QUEUED ? 1 : 0;
                for (const struct job *x = e->job->lane->head; x && x != e->job; x = x->next)
                    pos++;
                r->position = pos;
            }
            q_count(q, QC_DEDUPLICATED);
            return Q_OK;
        }
    }

    /* Limits. */
    struct lane *l = hmap_get(&q->lanes, (uint64_t)s->lane_key, NULL, NULL);
    bool drop_in_lane = false;
    if (lane_size(l) >= (uint64_t)q->o.lane_max) {
        if (!q->o.drop_oldest || !l->head) {
            q_count(q, QC_REJ_LANE_FULL);
            q_seterr(q,
                     "lane %" PRId64 " is full (%u jobs, LANE_MAX_SIZE=%" PRId64 "): retry later",
                     s->lane_key, lane_size(l), q->o.lane_max);
            return Q_EFULL;
        }
        drop_in_lane = true;
    }
    uint64_t jobs_after = q->nqueued + q->nleased + 1 - (drop_in_lane ? 1 : 0);
    uint64_t bytes_after = q->bytes + s->payload_len - (drop_in_lane ? l->head->payload_len : 0);
    bool over_jobs = jobs_after > (uint64_t)q->o.max_jobs;
    bool over_bytes = bytes_after > (uint64_t)q->o.max_bytes;
    if (over_jobs || over_bytes) {
        /* drop-oldest can only drop queued jobs: leased ones are being sent. */
        uint64_t leased_bytes = 0;
        for (const struct job *x = q->all_head; x && q->o.drop_oldest; x = x->anext)
            if (x->state == JS_LEASED)
                leased_bytes += x->payload_len;
        bool feasible = q->o.drop_oldest && q->nleased + 1 <= (uint64_t)q->o.max_jobs &&
                        leased_bytes + s->payload_len <= (uint64_t)q->o.max_bytes;
        if (!feasible) {
            if (over_jobs) {
                q_count(q, QC_REJ_QUEUE_FULL);
                q_seterr(
                    q, "queue is full (%" PRIu64 " jobs, QUEUE_MAX_SIZE=%" PRId64 "): retry later",
                    q->nqueued + q->nleased, q->o.max_jobs);
            } else {
                q_count(q, QC_REJ_BYTES_FULL);
                q_seterr(q,
                         "queue is full (%" PRIu64 " payload bytes, QUEUE_MAX_BYTES=%" PRId64
                         "): retry later",
                         q->bytes, q->o.max_bytes);
            }
            return Q_EFULL;
        }
    }

    /* A job that cannot go out before its deadline at the configured rates would only expire
     * in the queue, unanswered: refuse it now, so the caller knows (reject policy only; with
     * drop-oldest the oldest make room). The estimate is the pace of the global bucket over
     * every job ahead and of the lane's bucket over the jobs ahead in the lane, and it must
     * fit in 90% of the time to live: lanes take turns, so jobs that arrive later in shorter
     * lanes go out first (the one-minute burst drill lost 22 of 18,000 replies to expiry with
     * no slack, 0 with it). */
    if (!q->o.drop_oldest) {
        int64_t ttl = s->timeout_ms ? (int64_t)s->timeout_ms : q->o.default_ttl_ms;
        uint64_t ahead_all = q->nqueued + q->nleased, ahead_lane = lane_size(l);
        const struct rate *lr = lane_rate(q, (enum lane_kind)(s->kind ? s->kind : LK_PRIVATE));
        int64_t wait_g = q->o.global.n > 0
                             ? (int64_t)(ahead_all * (uint64_t)q->o.global.period_ms /
                                         (uint64_t)q->o.global.n)
                             : 0;
        int64_t wait_l =
            lr->n > 0 ? (int64_t)(ahead_lane * (uint64_t)lr->period_ms / (uint64_t)lr->n) : 0;
        int64_t wait = wait_g > wait_l ? wait_g : wait_l;
        if (wait > ttl - ttl / DEADLINE_SLACK_DIV) {
            q_count(q, QC_REJ_DEADLINE);
            q_seterr(q,
                     "the job would wait about %" PRId64 " s (%" PRIu64 " jobs ahead, %" PRIu64
                     " in lane %" PRId64 ") but expires in %" PRId64
                     " s (a job must fit in 90%% of its time to live): retry later or with a "
                     "longer timeout_ms",
                     wait / 1000, ahead_all, ahead_lane, s->lane_key, ttl / 1000);
            return Q_EFULL;
        }
    }

    /* drop-oldest: make room (each drop is logged and counted). */
    if (drop_in_lane) {
        struct job *old = l->head;
        q_emit(q, QEV_REMOVE, old, JS_DROPPED, 0, false);
        q_count(q, QC_DROP_LANE_FULL);
        job_finish(q, old, JS_DROPPED);
        if (!l->in_flight)
            lane_refresh(q, l, now);
    }
    while (q->nqueued + q->nleased + 1 > (uint64_t)q->o.max_jobs ||
           q->bytes + s->payload_len > (uint64_t)q->o.max_bytes)
        if (!drop_oldest_global(q, now))
            break;

    /* The job. */
    struct job *j = job_alloc(q->next_id++, s->lane_key, (enum lane_kind)s->kind, s->method,
                              s->payload, s->payload_len, dkey);
    j->enqueued_ms = now;
    j->ttl_ms = s->timeout_ms ? (int64_t)s->timeout_ms : q->o.default_ttl_ms;
    j->deadline_ms = now + j->ttl_ms;
    j->state = JS_QUEUED;
    l = lane_get(q, s->lane_key, j->kind, now);
    bool was_empty = l->head == NULL;
    lane_push_tail(q, l, j);
    all_append(q, j);
    deadline_push(q, j);
    hmap_put(&q->jobs, j->id, j);
    q->nqueued++;
    q->bytes += j->payload_len;
    if (j->dedupe_key && q->o.dedupe_window_ms > 0) {
        dedupe_add(q, j->dedupe_key, j->id, JS_QUEUED, now + q->o.dedupe_window_ms, j);
        while (q->o.dedupe_max > 0 && q->ndd_fifo > (uint64_t)q->o.dedupe_max)
            dedupe_retire(q, q->dd_head);
    }
    j->seq = q_emit(q, QEV_ENQUEUE, j, JS_QUEUED, 0, false);
    q_count(q, QC_ENQUEUED);
    if (was_empty)
        lane_refresh(q, l, now);
    else
        lane_count(q, l);
    r->job = j;
    r->id = j->id;
    r->state = JS_QUEUED;
    r->position = lane_size(l) - 1;
    r->seq = j->seq > q->durable_seq ? j->seq : 0;
    update_gauges(q);
    return Q_OK;
}

/* ---- senders ------------------------------------------------------------------------------------
 */

size_t queue_take(struct queue *q, int64_t now, size_t max, int64_t lease_ms, size_t max_bytes,
                  struct job **out)
{
    size_t n = 0, bytes = 0;
    if (lease_ms <= 0)
        lease_ms = q->o.lease_ms;
    while (n < max) {
        struct hnode *top = heap_top(&q->ready);
        if (!top || top->key > now)
            break;
        struct lane *l = HEAP_ENTRY(top, struct lane, ready);
        struct job *j = l->head;
        if (n > 0 && bytes + j->payload_len > max_bytes)
            break;
        if (!bucket_take(&q->global, &q->o.global, now)) {
            q_count(q, QC_WAIT_GLOBAL);
            break;
        }
        heap_remove(&q->ready, &l->ready);
        if (j->kind != LK_UNLIMITED)
            bucket_take(&l->bucket, lane_rate(q, l->kind), now);
        lane_unlink(q, l, j);
        heap_remove(&q->deadlines, &j->deadline_node);
        l->in_flight = j;
        j->state = JS_LEASED;
        j->orphan = false; /* leased again: an Ack from before the crash no longer counts */
        j->attempts++;
        j->lease_token = new_token(q);
        j->lease_deadline_ms = now + lease_ms;
        j->lease_node.key = j->lease_deadline_ms;
        j->lease_node.tie = j->id;
        heap_push(&q->leases, &j->lease_node);
        q->nqueued--;
        q->nleased++;
        q_count(q, QC_LEASED);
        if (j->attempts == 1 && q->m_tiq)
            metric_observe(q->m_tiq, (double)(now - j->enqueued_ms) / 1000.0);
        out[n++] = j;
        bytes += j->payload_len;
    }
    if (n)
        update_gauges(q);
    return n;
}

static enum qerr lookup_lease(struct queue *q, uint64_t id, uint64_t token, struct job **out)
{
    struct job *j = hmap_get(&q->jobs, id, NULL, NULL);
    if (!j) {
        q_seterr(q,
                 "job %" PRIu64 " is not in the queue (acked, expired, purged or never "
                 "enqueued)",
                 id);
        return Q_ENOTFOUND;
    }
    if (j->state == JS_DEAD) {
        q_seterr(q,
                 "job %" PRIu64 " is not leased: it is a dead letter (RequeueDeadLetter sends "
                 "it again)",
                 id);
        return Q_ELEASE;
    }
    if (j->state != JS_LEASED) {
        q_seterr(q,
                 "job %" PRIu64 " is not leased: its lease ran out and it went back to lane "
                 "%" PRId64 "; lease it again",
                 id, j->lane_key);
        return Q_ELEASE;
    }
    if (j->lease_token != token) {
        q_seterr(q,
                 "job %" PRIu64 " is leased under another lease_token (this lease ran out and "
                 "the job was leased again)",
                 id);
        return Q_ELEASE;
    }
    *out = j;
    return Q_OK;
}

enum qerr queue_check_lease(struct queue *q, uint64_t id, uint64_t token)
{
    struct job *j;
    return lookup_lease(q, id, token, &j);
}

size_t queue_mark_orphans(struct queue *q)
{
    size_t n = 0;
    for (struct job *j = q->all_head; j; j = j->anext) {
        if (j->state == JS_QUEUED) {
            j->orphan = true;
            n++;
        }
    }
    return n;
}

enum qerr queue_ack(struct queue *q, uint64_t id, uint64_t token, int64_t now)
{
    struct job *j = hmap_get(&q->jobs, id, NULL, NULL);
    enum qerr e = Q_OK;
    if (!j || !j->orphan || j->state != JS_QUEUED)
        e = lookup_lease(q, id, token, &j);
    if (e != Q_OK)
        return e;
    struct lane *l = j->lane;
    q_emit(q, QEV_ACK, j, JS_DONE, 0, false);
    q_count(q, QC_ACKED);
    job_finish(q, j, JS_DONE);
    lane_refresh(q, l, now);
    update_gauges(q);
    return Q_OK;
}

/* A leased job goes back to the head of its lane (lease expiry, retry). */
static void unlease(struct queue *q, struct job *j)
{
    struct lane *l = j->lane;
    heap_remove(&q->leases, &j->lease_node);
    l->in_flight = NULL;
    q->nleased--;
    j->state = JS_QUEUED;
    j->lease_token = 0;
    j->lease_deadline_ms = 0;
    q->nqueued++;
}

enum qerr queue_retry(struct queue *q, const struct retry_spec *s, int64_t now,
                      struct retry_result *r)
{
    struct job *j;
    memset(r, 0, sizeof *r);
    enum qerr e = lookup_lease(q, s->id, s->token, &j);
    if (e != Q_OK)
        return e;
    if (s->has_new_payload && s->new_payload_len > (uint64_t)q->o.max_payload) {
        q_seterr(q, "new_payload is %zu bytes, more than MAX_PAYLOAD=%" PRId64 " bytes",
                 s->new_payload_len, q->o.max_payload);
        return invalid(q);
    }
    struct lane *l = j->lane;
    q_count(q, s->retry_after_ms ? QC_RETRIED_RETRY_AFTER : QC_RETRIED_BACKOFF);
    /* A 429 (or a migration) is Telegram's flood control, not a fault of the request: it does
     * not bring the job nearer the dead-letter list; its deadline still bounds it. */
    if (s->retry_after_ms)
        j->waived++;
    if (j->attempts - j->waived >= q->o.max_attempts) {
        char why[ERROR_MAX + 64];
        snprintf(why, sizeof why, "%s (gave up after %u attempts, MAX_ATTEMPTS=%u)",
                 s->error && *s->error ? s->error : "retry", j->attempts, q->o.max_attempts);
        job_make_dead(q, j, why, now, QC_DEAD_MAX_ATTEMPTS);
        lane_refresh(q, l, now);
        r->state = JS_DEAD;
        update_gauges(q);
        return Q_OK;
    }
    if (j->deadline_ms <= now) {
        job_set_error(j, s->error);
        q_emit(q, QEV_REMOVE, j, JS_EXPIRED, 0, false);
        q_count(q, QC_EXPIRED);
        job_finish(q, j, JS_EXPIRED);
        lane_refresh(q, l, now);
        r->state = JS_EXPIRED;
        update_gauges(q);
        return Q_OK;
    }
    unlease(q, j);
    job_set_error(j, s->error);
    if (s->has_new_payload)
        job_set_payload(q, j, s->new_payload, s->new_payload_len);
    j->not_before_ms = s->retry_after_ms ? now + s->retry_after_ms
                                         : now + backoff_ms(j->attempts, q->o.backoff_base_ms,
                                                            q->o.backoff_max_ms, &q->rng);
    struct lane *dest = l;
    if (s->new_lane_key && s->new_lane_key != j->lane_key) {
        /* migrate_to_chat_id: the job follows the chat to its new id, behind what is there. */
        dest = lane_get(q, s->new_lane_key, j->kind, now);
        j->lane_key = s->new_lane_key;
        lane_push_tail(q, dest, j);
    } else {
        lane_push_head(q, dest, j);
    }
    int64_t paused = 0;
    if (s->retry_after_ms) {
        dest->paused_until = max64(dest->paused_until, now + s->retry_after_ms);
        paused = dest->paused_until;
    }
    deadline_push(q, j);
    q_emit(q, QEV_RETRY, j, JS_QUEUED, paused, s->has_new_payload);
    if (dest != l)
        lane_refresh(q, l, now);
    /* A lane already waiting keeps its place unless its head or its pause changed. */
    if (dest->head == j || s->retry_after_ms)
        lane_refresh(q, dest, now);
    r->state = JS_QUEUED;
    r->not_before_ms = j->not_before_ms;
    update_gauges(q);
    return Q_OK;
}

enum qerr queue_fail(struct queue *q, uint64_t id, uint64_t token, const char *error, int64_t now)
{
    struct job *j;
    enum qerr e = lookup_lease(q, id, token, &j);
    if (e != Q_OK)
        return e;
    struct lane *l = j->lane;
    job_make_dead(q, j, error && *error ? error : "failed", now, QC_DEAD_FAILED);
    lane_refresh(q, l, now);
    update_gauges(q);
    return Q_OK;
}

/* ---- time
 * ---------------------------------------------------------------------------------------- */

void queue_tick(struct queue *q, int64_t now)
{
    struct hnode *t;
    bool changed = false;
    /* Jobs past their deadline go alone: never the whole queue (the seed's mistake). */
    while ((t = heap_top(&q->deadlines)) && t->key <= now) {
        struct job *j = HEAP_ENTRY(t, struct job, deadline_node);
        struct lane *l = j->lane;
        bool was_head = l->head == j;
        q_emit(q, QEV_REMOVE, j, JS_EXPIRED, 0, false);
        q_count(q, QC_EXPIRED);
        job_finish(q, j, JS_EXPIRED);
        if (was_head)
            lane_refresh(q, l, now);
        changed = true;
    }
    /* Leases that ran out: the job returns to the head of its lane. */
    while ((t = heap_top(&q->leases)) && t->key <= now) {
        struct job *j = HEAP_ENTRY(t, struct job, lease_node);
        struct lane *l = j->lane;
        q_count(q, QC_LEASE_EXPIRED);
        if (j->deadline_ms <= now) {
            q_emit(q, QEV_REMOVE, j, JS_EXPIRED, 0, false);
            q_count(q, QC_EXPIRED);
            job_finish(q, j, JS_EXPIRED);
        } else if (j->attempts - j->waived >= q->o.max_attempts) {
            char why[160];
            snprintf(why, sizeof why, "lease ran out %u times with no ack (MAX_ATTEMPTS=%u)",
                     j->attempts, q->o.max_attempts);
            job_make_dead(q, j, why, now, QC_DEAD_MAX_ATTEMPTS);
        } else {
            unlease(q, j);
            lane_push_head(q, l, j);
            deadline_push(q, j);
        }
        lane_refresh(q, l, now);
        changed = true;
    }
    while (q->dd_head && q->dd_head->expires_ms <= now)
        dedupe_retire(q, q->dd_head);
    while ((t = heap_top(&q->idle)) && t->key <= now)
        lane_forget(q, HEAP_ENTRY(t, struct lane, idle));
    if (changed)
        update_gauges(q);
}

int64_t queue_next_tick(const struct queue *q)
{
    int64_t next = INT64_MAX;
    const struct hnode *t;
    if ((t = heap_top(&q->deadlines)) && t->key < next)
        next = t->key;
    if ((t = heap_top(&q->leases)) && t->key < next)
        next = t->key;
    if ((t = heap_top(&q->idle)) && t->key < next)
        next = t->key;
    if (q->dd_head && q->dd_head->expires_ms < next)
        next = q->dd_head->expires_ms;
    return next;
}

int64_t queue_next_ready(const struct queue *q, int64_t now)
{
    const struct hnode *t = heap_top(&q->ready);
    if (!t)
        return INT64_MAX;
    return max64(t->key, bucket_ready_at(&q->global, &q->o.global, now));
}

void queue_set_durable(struct queue *q, uint64_t seq, int64_t now)
{
    if (seq <= q->durable_seq)
        return;
    q->durable_seq = seq;
    struct lane *l = q->dw_head;
    while (l) {
        struct lane *next = l->dw_next;
        if (!l->head || l->head->seq <= seq)
            lane_refresh(q, l, now);
        l = next;
    }
}

uint64_t queue_last_seq(const struct queue *q)
{
    return q->last_seq;
}
