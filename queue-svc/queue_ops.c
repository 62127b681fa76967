/* queue_ops.c -- the operators' calls on the queue: list lanes, peek, purge, dead letters and
 * requeue, stats. */
#include "queue_internal.h"

#include <inttypes.h>
#include <stdlib.h>

/* ---- operators
 * ------------------------------------------------------------------------------------ */

static void fill_info(const struct lane *l, struct lane_info *i, int64_t now)
{
    i->key = l->key;
    i->kind = l->kind;
    i->queued = l->nqueued;
    i->in_flight = l->in_flight ? 1 : 0;
    i->paused_until = l->paused_until > now ? l->paused_until : 0;
}

struct lane_list {
    struct lane **a;
    size_t n;
    bool has_after;
    int64_t after;
};

static void collect_lane(void *arg, void *v)
{
    struct lane_list *ll = arg;
    struct lane *l = v;
    if (l->counted && (!ll->has_after || l->key > ll->after))
        ll->a[ll->n++] = l;
}

static int by_key(const void *a, const void *b)
{
    int64_t x = (*(struct lane *const *)a)->key, y = (*(struct lane *const *)b)->key;
    return x < y ? -1 : x > y;
}

size_t queue_list_lanes(struct queue *q, bool has_after, int64_t after, size_t max,
                        struct lane_info *out, bool *more, int64_t now)
{
    struct lane_list ll = {q_xcalloc(q->lanes.n + 1, sizeof(struct lane *)), 0, has_after, after};
    hmap_each(&q->lanes, collect_lane, &ll);
    qsort(ll.a, ll.n, sizeof *ll.a, by_key);
    size_t n = ll.n < max ? ll.n : max;
    for (size_t i = 0; i < n; i++)
        fill_info(ll.a[i], &out[i], now);
    *more = ll.n > n;
    free(ll.a);
    return n;
}

enum qerr queue_peek(struct queue *q, int64_t key, size_t max, struct lane_info *info,
                     const struct job **out, size_t *n, int64_t now)
{
    struct lane *l = hmap_get(&q->lanes, (uint64_t)key, NULL, NULL);
    *n = 0;
    if (!l || !l->counted) {
        q_seterr(q, "lane %" PRId64 " has no jobs (ListLanes shows the lanes that have)", key);
        return Q_ENOTFOUND;
    }
    fill_info(l, info, now);
    if (l->in_flight && *n < max)
        out[(*n)++] = l->in_flight;
    for (const struct job *j = l->head; j && *n < max; j = j->next)
        out[(*n)++] = j;
    return Q_OK;
}

size_t queue_purge(struct queue *q, int64_t key, int64_t now)
{
    struct lane *l = hmap_get(&q->lanes, (uint64_t)key, NULL, NULL);
    size_t n = 0;
    if (!l)
        return 0;
    while (l->head) {
        struct job *j = l->head;
        q_emit(q, QEV_REMOVE, j, JS_PURGED, 0, false);
        q_count(q, QC_PURGED);
        job_finish(q, j, JS_PURGED);
        n++;
    }
    lane_refresh(q, l, now);
    update_gauges(q);
    return n;
}

size_t queue_dead_letters(struct queue *q, uint64_t after, size_t max, const struct job **out,
                          bool *more)
{
    size_t n = 0;
    const struct job *j = q->dead_head;
    while (j && j->dead_seq <= after)
        j = j->next;
    for (; j && n < max; j = j->next)
        out[n++] = j;
    *more = j != NULL;
    return n;
}

enum qerr queue_requeue_dead(struct queue *q, uint64_t id, int64_t now, const struct job **out)
{
    struct job *j = hmap_get(&q->jobs, id, NULL, NULL);
    if (!j || j->state != JS_DEAD) {
        q_seterr(q, "no dead letter with id %" PRIu64 " (ListDeadLetters shows them)", id);
        return Q_ENOTFOUND;
    }
    struct lane *l = hmap_get(&q->lanes, (uint64_t)j->lane_key, NULL, NULL);
    if (lane_size(l) >= (uint64_t)q->o.lane_max) {
        q_count(q, QC_REJ_LANE_FULL);
        q_seterr(q, "lane %" PRId64 " is full (%u jobs, LANE_MAX_SIZE=%" PRId64 "): retry later",
                 j->lane_key, lane_size(l), q->o.lane_max);
        return Q_EFULL;
    }
    if (q->nqueued + q->nleased + 1 > (uint64_t)q->o.max_jobs ||
        q->bytes + j->payload_len > (uint64_t)q->o.max_bytes) {
        q_count(q, QC_REJ_QUEUE_FULL);
        q_seterr(q,
                 "queue is full (%" PRIu64 " jobs, %" PRIu64
                 " payload bytes; QUEUE_MAX_SIZE=%" PRId64 ", QUEUE_MAX_BYTES=%" PRId64
                 "): retry later",
                 q->nqueued + q->nleased, q->bytes, q->o.max_jobs, q->o.max_bytes);
        return Q_EFULL;
    }
    dead_unlink(q, j);
    j->state = JS_QUEUED;
    j->attempts = 0;
    j->waived = 0;
    j->dead_ms = 0;
    j->not_before_ms = 0;
    j->deadline_ms = now + j->ttl_ms;
    l = lane_get(q, j->lane_key, j->kind, now);
    bool was_empty = l->head == NULL;
    lane_push_tail(q, l, j);
    all_append(q, j);
    deadline_push(q, j);
    q->nqueued++;
    q->bytes += j->payload_len;
    j->seq = q_emit(q, QEV_REQUEUE, j, JS_QUEUED, 0, false);
    q_count(q, QC_REQUEUED);
    if (was_empty)
        lane_refresh(q, l, now);
    else
        lane_count(q, l);
    update_gauges(q);
    *out = j;
    return Q_OK;
}

const struct job *queue_find(const struct queue *q, uint64_t id)
{
    return hmap_get(&q->jobs, id, NULL, NULL);
}

void queue_stats(const struct queue *q, struct queue_stats *st)
{
    st->queued = q->nqueued;
    st->leased = q->nleased;
    st->dead = q->ndead;
    st->lanes = q->nlanes;
    st->bytes = q->bytes;
}

uint64_t queue_next_id(const struct queue *q)
{
    return q->next_id;
}
