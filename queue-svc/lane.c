/* lane.c -- lanes (one per chat) and their scheduling: where a lane waits (ready heap, idle
 * heap, durable-wait list, or nowhere while a job is in flight) and the time it may send, from
 * its 429 pause, its head job's backoff and its chat/group bucket. Also the job lists a lane and
 * the queue keep (lane FIFO, live jobs oldest first, dead letters). See queue.h for the design. */
#include "queue_internal.h"

#include <stdlib.h>

/* ---- lanes and scheduling ------------------------------------------------------------------- */

const struct rate *lane_rate(const struct queue *q, enum lane_kind k)
{
    static const struct rate unlimited = {0, 1000, 1};
    switch (k) {
    case LK_GROUP:
        return &q->o.group;
    case LK_UNLIMITED:
        return &unlimited;
    default:
        return &q->o.chat;
    }
}

struct lane *lane_get(struct queue *q, int64_t key, enum lane_kind kind, int64_t now)
{
    struct lane *l = hmap_get(&q->lanes, (uint64_t)key, NULL, NULL);
    if (kind == LK_UNSPECIFIED)
        kind = LK_PRIVATE;
    if (l) {
        /* A chat's kind can change (a lane first seen through an unlimited call, a group that
         * became a supergroup): the newest non-unlimited kind wins, with a fresh bucket. */
        if (kind != LK_UNLIMITED && kind != l->kind) {
            l->kind = kind;
            bucket_init(&l->bucket, lane_rate(q, kind), now);
        }
        return l;
    }
    l = q_xcalloc(1, sizeof *l);
    l->key = key;
    l->kind = kind;
    hnode_init(&l->ready);
    hnode_init(&l->idle);
    bucket_init(&l->bucket, lane_rate(q, kind), now);
    hmap_put(&q->lanes, (uint64_t)key, l);
    return l;
}

static void dw_unlink(struct queue *q, struct lane *l)
{
    if (!l->in_dw)
        return;
    if (l->dw_prev)
        l->dw_prev->dw_next = l->dw_next;
    else
        q->dw_head = l->dw_next;
    if (l->dw_next)
        l->dw_next->dw_prev = l->dw_prev;
    l->dw_prev = l->dw_next = NULL;
    l->in_dw = false;
}

static void dw_link(struct queue *q, struct lane *l)
{
    l->dw_prev = NULL;
    l->dw_next = q->dw_head;
    if (q->dw_head)
        q->dw_head->dw_prev = l;
    q->dw_head = l;
    l->in_dw = true;
}

void lane_count(struct queue *q, struct lane *l)
{
    bool has = l->head || l->in_flight;
    if (has != l->counted) {
        l->counted = has;
        if (has)
            q->nlanes++;
        else
            q->nlanes--;
    }
}

/* Puts the lane where it belongs now: nowhere (a job in flight), the idle heap (empty), the
 * durable-wait list (its head's record is not on disk yet) or the ready heap, keyed by the
 * first time it may send. Call only when the lane's head, in-flight job or pause changed: a
 * lane already waiting keeps its place in line. */
void lane_refresh(struct queue *q, struct lane *l, int64_t now)
{
    heap_remove(&q->ready, &l->ready);
    heap_remove(&q->idle, &l->idle);
    dw_unlink(q, l);
    lane_count(q, l);
    if (l->in_flight)
        return;
    struct job *h = l->head;
    if (!h) {
        int64_t free_at =
            max64(l->paused_until, bucket_full_at(&l->bucket, lane_rate(q, l->kind), now));
        l->idle.key = free_at;
        l->idle.tie = (uint64_t)l->key;
        heap_push(&q->idle, &l->idle);
        return;
    }
    if (h->seq > q->durable_seq) {
        dw_link(q, l);
        return;
    }
    int64_t at = now;
    enum qcounter why = QC_N;
    if (l->paused_until > at) {
        at = l->paused_until;
        why = QC_WAIT_PAUSE;
    }
    if (h->not_before_ms > at) {
        at = h->not_before_ms;
        why = QC_N; /* the job's own backoff, not a rate limit */
    }
    if (h->kind != LK_UNLIMITED) {
        int64_t b = bucket_ready_at(&l->bucket, lane_rate(q, l->kind), now);
        if (b > at) {
            at = b;
            why = l->kind == LK_GROUP ? QC_WAIT_GROUP : QC_WAIT_CHAT;
        }
    }
    if (why != QC_N)
        q_count(q, why);
    l->ready.key = at;
    l->ready.tie = ++q->sched_tie;
    heap_push(&q->ready, &l->ready);
}

void lane_forget(struct queue *q, struct lane *l)
{
    heap_remove(&q->ready, &l->ready);
    heap_remove(&q->idle, &l->idle);
    dw_unlink(q, l);
    if (l->counted)
        q->nlanes--;
    hmap_del(&q->lanes, (uint64_t)l->key, l);
    free(l);
}

void lane_push_tail(struct queue *q, struct lane *l, struct job *j)
{
    j->lane = l;
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->nqueued++;
}

void lane_push_head(struct queue *q, struct lane *l, struct job *j)
{
    j->lane = l;
    j->prev = NULL;
    j->next = l->head;
    if (l->head)
        l->head->prev = j;
    else
        l->tail = j;
    l->head = j;
    l->nqueued++;
}

void lane_unlink(struct queue *q, struct lane *l, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
    l->nqueued--;
}

void all_append(struct queue *q, struct job *j)
{
    j->anext = NULL;
    j->aprev = q->all_tail;
    if (q->all_tail)
        q->all_tail->anext = j;
    else
        q->all_head = j;
    q->all_tail = j;
}

void all_unlink(struct queue *q, struct job *j)
{
    if (j->aprev)
        j->aprev->anext = j->anext;
    else
        q->all_head = j->anext;
    if (j->anext)
        j->anext->aprev = j->aprev;
    else
        q->all_tail = j->aprev;
    j->aprev = j->anext = NULL;
}

void dead_append(struct queue *q, struct job *j)
{
    j->lane = NULL;
    j->next = NULL;
    j->prev = q->dead_tail;
    if (q->dead_tail)
        q->dead_tail->next = j;
    else
        q->dead_head = j;
    q->dead_tail = j;
    j->dead_seq = ++q->dead_seq;
    q->ndead++;
}

void dead_unlink(struct queue *q, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        q->dead_head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        q->dead_tail = j->prev;
    j->prev = j->next = NULL;
    q->ndead--;
}
