/* dedupe.c -- the dedupe index: a key names its job for DEDUPE_WINDOW after the enqueue (and
 * for as long as that job is still queued or leased), then is forgotten; at most
 * DEDUPE_MAX_KEYS are kept. Entries expire in order from a FIFO. */
#include "queue_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- dedupe -----------------------------------------------------------------------------------
 */

static bool dd_eq(const void *v, const void *key)
{
    const struct dedupe *e = v;
    return strcmp(e->key, key) == 0;
}

struct dedupe *dedupe_find(const struct queue *q, const char *key)
{
    return hmap_get(&q->dedupe, hmap_hash_str(key, strlen(key)), dd_eq, key);
}

static void dd_fifo_unlink(struct queue *q, struct dedupe *e)
{
    if (!e->in_fifo)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        q->dd_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->dd_tail = e->prev;
    e->prev = e->next = NULL;
    e->in_fifo = false;
    q->ndd_fifo--;
}

/* Inserts in expiry order, searching from the tail (entries almost always arrive in order). */
static void dd_fifo_insert(struct queue *q, struct dedupe *e)
{
    struct dedupe *after = q->dd_tail;
    while (after && after->expires_ms > e->expires_ms)
        after = after->prev;
    e->prev = after;
    e->next = after ? after->next : q->dd_head;
    if (e->next)
        e->next->prev = e;
    else
        q->dd_tail = e;
    if (after)
        after->next = e;
    else
        q->dd_head = e;
    e->in_fifo = true;
    q->ndd_fifo++;
}

void dedupe_free(struct queue *q, struct dedupe *e)
{
    dd_fifo_unlink(q, e);
    if (e->job && e->job->dd == e)
        e->job->dd = NULL;
    hmap_del(&q->dedupe, e->h, e);
    free(e->key);
    free(e);
}

struct dedupe *dedupe_add(struct queue *q, const char *key, uint64_t id, enum job_state st,
                          int64_t expires_ms, struct job *j)
{
    struct dedupe *e = dedupe_find(q, key);
    if (e)
        dedupe_free(q, e);
    e = q_xcalloc(1, sizeof *e);
    e->klen = strlen(key);
    e->key = q_xstrndup(key, e->klen);
    e->h = hmap_hash_str(key, e->klen);
    e->id = id;
    e->state = st;
    e->expires_ms = expires_ms;
    e->job = j;
    if (j)
        j->dd = e;
    hmap_put(&q->dedupe, e->h, e);
    dd_fifo_insert(q, e);
    return e;
}

/* The key's window ended (or the index is over DEDUPE_MAX_KEYS): forget it, unless its job is
 * still queued or leased (a second job would be a second send), in which case it goes with
 * the job. */
void dedupe_retire(struct queue *q, struct dedupe *e)
{
    if (e->job && (e->job->state == JS_QUEUED || e->job->state == JS_LEASED))
        dd_fifo_unlink(q, e);
    else
        dedupe_free(q, e);
}
