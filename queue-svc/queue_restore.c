/* queue_restore.c -- rebuilding the queue at start (snapshot records, then log records, in
 * order), walking it for a snapshot, and checking its invariants (tests and the fuzzer).
 *
 * Replay never trusts a record to fit: a record that names a job that is not there is
 * reported to the caller (false) and skipped, limits are not enforced (what was accepted
 * stays accepted), and a job restored twice is ignored. Leases are not in the log, so every
 * job comes back queued: a job that was in flight at a crash is ready again. */
#include "queue_internal.h"

#include <stdlib.h>
#include <string.h>

static bool live(const struct job *j)
{
    return j && (j->state == JS_QUEUED || j->state == JS_LEASED);
}

void queue_restore_begin(struct queue *q)
{
    q->restoring = true;
}

static void trim_dead(struct queue *q)
{
    while (q->o.dead_max > 0 && q->ndead > (uint64_t)q->o.dead_max)
        job_finish(q, q->dead_head, JS_DROPPED);
}

bool queue_restore_job(struct queue *q, const struct job_image *im)
{
    if (im->id == 0 || hmap_get(&q->jobs, im->id, NULL, NULL))
        return false;
    int kind = im->kind >= LK_UNSPECIFIED && im->kind <= LK_UNLIMITED ? im->kind : LK_PRIVATE;
    struct job *j = job_alloc(im->id, im->lane_key, (enum lane_kind)kind, im->method, im->payload,
                              im->payload_len, im->dedupe_key);
    j->deadline_ms = im->deadline_ms;
    j->ttl_ms = im->ttl_ms > 0 ? im->ttl_ms : q->o.default_ttl_ms;
    j->enqueued_ms = im->enqueued_ms;
    j->not_before_ms = im->not_before_ms;
    j->attempts = im->attempts;
    j->waived = im->waived <= im->attempts ? im->waived : im->attempts;
    job_set_error(j, im->last_error);
    hmap_put(&q->jobs, j->id, j);
    if (j->id > q->max_id_seen)
        q->max_id_seen = j->id;
    if (im->dead) {
        j->state = JS_DEAD;
        j->dead_ms = im->dead_ms;
        dead_append(q, j);
    } else {
        j->state = JS_QUEUED;
        struct lane *l = lane_get(q, j->lane_key, j->kind, 0);
        lane_push_tail(q, l, j);
        all_append(q, j);
        j->deadline_node.key = j->deadline_ms;
        j->deadline_node.tie = j->id;
        heap_push(&q->deadlines, &j->deadline_node);
        q->nqueued++;
        q->bytes += j->payload_len;
    }
    if (j->dedupe_key && q->o.dedupe_window_ms > 0) {
        /* A live job's key wins over a dead letter's (both may carry it). */
        struct dedupe *e = dedupe_find(q, j->dedupe_key);
        if (!e || !live(e->job))
            dedupe_add(q, j->dedupe_key, j->id, j->state, j->enqueued_ms + q->o.dedupe_window_ms,
                       j);
    }
    if (im->dead)
        trim_dead(q);
    return true;
}

bool queue_restore_ack(struct queue *q, uint64_t id)
{
    return queue_restore_remove(q, id, JS_DONE);
}

bool queue_restore_remove(struct queue *q, uint64_t id, enum job_state why)
{
    struct job *j = hmap_get(&q->jobs, id, NULL, NULL);
    if (!j)
        return false;
    if (why < JS_QUEUED || why > JS_DROPPED || why == JS_QUEUED || why == JS_LEASED)
        why = JS_DONE;
    job_finish(q, j, why);
    return true;
}

bool queue_restore_retry(struct queue *q, uint64_t id, uint32_t attempts, uint32_t waived,
                         int64_t not_before, const char *error, int64_t new_lane_key,
                         const uint8_t *payload, size_t payload_len, bool has_payload,
                         int64_t paused_until)
{
    struct job *j = hmap_get(&q->jobs, id, NULL, NULL);
    if (!live(j))
        return false;
    j->attempts = attempts;
    j->waived = waived <= attempts ? waived : attempts;
    j->not_before_ms = not_before;
    job_set_error(j, error);
    if (has_payload)
        job_set_payload(q, j, payload, payload_len);
    struct lane *l = j->lane;
    lane_unlink(q, l, j);
    if (new_lane_key && new_lane_key != j->lane_key) {
        j->lane_key = new_lane_key;
        l = lane_get(q, new_lane_key, j->kind, 0);
        lane_push_tail(q, l, j);
    } else {
        lane_push_head(q, l, j);
    }
    if (paused_until > l->paused_until)
        l->paused_until = paused_until;
    return true;
}

bool queue_restore_dead(struct queue *q, uint64_t id, uint32_t attempts, const char *error,
                        int64_t dead_ms)
{
    struct job *j = hmap_get(&q->jobs, id, NULL, NULL);
    if (!live(j))
        return false;
    j->attempts = attempts;
    job_make_dead(q, j, error, dead_ms, QC_DEAD_FAILED);
    trim_dead(q);
    return true;
}

bool queue_restore_requeue(struct queue *q, uint64_t id, int64_t deadline_ms)
{
    struct job *j = hmap_get(&q->jobs, id, NULL, NULL);
    if (!j || j->state != JS_DEAD)
        return false;
    dead_unlink(q, j);
    j->state = JS_QUEUED;
    j->attempts = 0;
    j->waived = 0;
    j->dead_ms = 0;
    j->not_before_ms = 0;
    j->deadline_ms = deadline_ms;
    struct lane *l = lane_get(q, j->lane_key, j->kind, 0);
    lane_push_tail(q, l, j);
    all_append(q, j);
    j->deadline_node.key = j->deadline_ms;
    j->deadline_node.tie = j->id;
    heap_push(&q->deadlines, &j->deadline_node);
    q->nqueued++;
    q->bytes += j->payload_len;
    return true;
}

void queue_restore_dedupe(struct queue *q, const char *key, uint64_t id, enum job_state state,
                          int64_t expires_ms)
{
    if (!key || !*key || strlen(key) > DEDUPE_KEY_MAX || q->o.dedupe_window_ms <= 0)
        return;
    if (dedupe_find(q, key))
        return;
    if (state < JS_QUEUED || state > JS_DROPPED)
        state = JS_DONE;
    dedupe_add(q, key, id, state, expires_ms, NULL);
}

void queue_restore_lane(struct queue *q, int64_t key, int kind, int64_t paused_until)
{
    if (kind < LK_UNSPECIFIED || kind > LK_UNLIMITED)
        kind = LK_PRIVATE;
    struct lane *l = lane_get(q, key, (enum lane_kind)kind, 0);
    if (paused_until > l->paused_until)
        l->paused_until = paused_until;
}

static int by_id(const void *a, const void *b)
{
    uint64_t x = (*(struct job *const *)a)->id, y = (*(struct job *const *)b)->id;
    return x < y ? -1 : x > y;
}

struct lane_vec {
    struct lane **a;
    size_t n;
};

static void collect(void *arg, void *v)
{
    struct lane_vec *lv = arg;
    lv->a[lv->n++] = v;
}

static uint64_t head_id(const struct lane *l)
{
    return l->head ? l->head->id : UINT64_MAX;
}

static int by_head(const void *a, const void *b)
{
    uint64_t x = head_id(*(struct lane *const *)a), y = head_id(*(struct lane *const *)b);
    return x < y ? -1 : x > y;
}

void queue_restore_done(struct queue *q, uint64_t next_id, uint64_t last_seq, int64_t now)
{
    if (next_id < q->max_id_seen + 1)
        next_id = q->max_id_seen + 1;
    if (next_id > q->next_id)
        q->next_id = next_id;
    if (last_seq > q->last_seq)
        q->last_seq = last_seq;
    q->durable_seq = q->last_seq;

    /* Oldest first, whatever order the records came in (drop-oldest picks from the front). */
    size_t n = q->nqueued + q->nleased, i = 0;
    struct job **v = calloc(n + 1, sizeof *v);
    if (!v)
        abort();
    for (struct job *j = q->all_head; j && i < n; j = j->anext)
        v[i++] = j;
    qsort(v, i, sizeof *v, by_id);
    q->all_head = q->all_tail = NULL;
    for (size_t k = 0; k < i; k++)
        all_append(q, v[k]);
    free(v);

    /* Every lane to its place; the ones with the oldest heads first in line. */
    struct lane_vec lv = {calloc(q->lanes.n + 1, sizeof(struct lane *)), 0};
    if (!lv.a)
        abort();
    hmap_each(&q->lanes, collect, &lv);
    qsort(lv.a, lv.n, sizeof *lv.a, by_head);
    for (size_t k = 0; k < lv.n; k++)
        lane_refresh(q, lv.a[k], now);
    free(lv.a);
    q->restoring = false;
    update_gauges(q);
}

/* ---- snapshot walk ----------------------------------------------------------------------------
 */

struct visit_ctx {
    const struct queue_visitor *v;
    int64_t now;
};

static void visit_lane(void *arg, void *p)
{
    struct visit_ctx *c = arg;
    const struct lane *l = p;
    if (l->paused_until > c->now && c->v->lane)
        c->v->lane(c->v->arg, l->key, l->kind, l->paused_until);
    if (l->in_flight)
        c->v->job(c->v->arg, l->in_flight);
    for (const struct job *j = l->head; j; j = j->next)
        c->v->job(c->v->arg, j);
}

static void visit_dd(void *arg, void *p)
{
    struct visit_ctx *c = arg;
    const struct dedupe *e = p;
    if (!e->job && e->expires_ms > c->now && c->v->dedupe)
        c->v->dedupe(c->v->arg, e->key, e->id, e->state, e->expires_ms);
}

void queue_visit(const struct queue *q, const struct queue_visitor *v, int64_t now)
{
    struct visit_ctx c = {v, now};
    hmap_each(&q->lanes, visit_lane, &c);
    for (const struct job *j = q->dead_head; j; j = j->next)
        v->job(v->arg, j);
    hmap_each(&q->dedupe, visit_dd, &c);
}

/* ---- invariants ---------------------------------------------------------------------------------
 */

struct check_ctx {
    const struct queue *q;
    const char *err;
    uint64_t queued, leased, lanes;
};

static void check_lane(void *arg, void *p)
{
    struct check_ctx *c = arg;
    const struct lane *l = p;
    uint32_t n = 0;
    const struct job *prev = NULL;
    for (const struct job *j = l->head; j; j = j->next) {
        if (j->prev != prev || j->lane != l || j->state != JS_QUEUED || j->lane_key != l->key ||
            !hnode_linked(&j->deadline_node))
            c->err = "lane FIFO link, lane, state or deadline node wrong";
        prev = j;
        n++;
    }
    if (prev != l->tail || n != l->nqueued)
        c->err = "lane tail or count wrong";
    if (l->in_flight && (l->in_flight->state != JS_LEASED || l->in_flight->lane != l ||
                         !hnode_linked(&l->in_flight->lease_node)))
        c->err = "in-flight job not leased or not in the lease heap";
    bool has = l->head || l->in_flight;
    if (has != l->counted)
        c->err = "lane counted flag wrong";
    int places = hnode_linked(&l->ready) + hnode_linked(&l->idle) + l->in_dw;
    if (places > 1)
        c->err = "lane in more than one scheduling structure";
    if (!c->q->restoring) {
        if (l->in_flight && places)
            c->err = "busy lane is scheduled";
        if (!l->in_flight && places != 1)
            c->err = "lane with nothing in flight is nowhere";
        if (hnode_linked(&l->ready) && !l->head)
            c->err = "empty lane in the ready heap";
        if (hnode_linked(&l->idle) && l->head)
            c->err = "lane with jobs in the idle heap";
    }
    c->queued += l->nqueued;
    c->leased += l->in_flight ? 1 : 0;
    c->lanes += l->counted;
}

static void check_dd(void *arg, void *p)
{
    struct check_ctx *c = arg;
    const struct dedupe *e = p;
    if (e->job && (e->job->dd != e || e->job->id != e->id))
        c->err = "dedupe entry and its job disagree";
    if (!e->in_fifo && !live(e->job))
        c->err = "retired dedupe entry without a live job";
}

const char *queue_check(const struct queue *q)
{
    struct check_ctx c = {q, NULL, 0, 0, 0};
    hmap_each(&q->lanes, check_lane, &c);
    if (c.err)
        return c.err;
    if (c.queued != q->nqueued || c.leased != q->nleased)
        return "queued/leased counts disagree with the lanes";
    if (c.lanes != q->nlanes)
        return "lane count wrong";
    uint64_t n = 0, bytes = 0;
    const struct job *prev = NULL;
    for (const struct job *j = q->all_head; j; j = j->anext) {
        if (j->aprev != prev || !live(j))
            return "live list broken";
        n++;
        bytes += j->payload_len;
        prev = j;
    }
    if (prev != q->all_tail || n != q->nqueued + q->nleased)
        return "live list count wrong";
    if (bytes != q->bytes)
        return "byte count wrong";
    uint64_t d = 0;
    prev = NULL;
    for (const struct job *j = q->dead_head; j; j = j->next) {
        if (j->prev != prev || j->state != JS_DEAD)
            return "dead-letter list broken";
        if (prev && prev->dead_seq >= j->dead_seq)
            return "dead-letter order broken";
        d++;
        prev = j;
    }
    if (prev != q->dead_tail || d != q->ndead)
        return "dead-letter count wrong";
    if (q->jobs.n != n + d)
        return "job index size wrong";
    if (q->deadlines.n != q->nqueued || q->leases.n != q->nleased)
        return "deadline or lease heap size wrong";
    uint64_t f = 0;
    const struct dedupe *pe = NULL;
    for (const struct dedupe *e = q->dd_head; e; e = e->next) {
        if (e->prev != pe || !e->in_fifo)
            return "dedupe FIFO broken";
        if (pe && pe->expires_ms > e->expires_ms)
            return "dedupe FIFO out of order";
        f++;
        pe = e;
    }
    if (f != q->ndd_fifo)
        return "dedupe FIFO count wrong";
    hmap_each(&q->dedupe, check_dd, &c);
    return c.err;
}
