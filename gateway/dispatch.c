/* dispatch.c -- lanes per chat, a ready list of lanes, and a worker pool.
 *
 * DESIGN: one mutex guards everything. A lane is a FIFO of items for one chat; it is on the
 * ready list when it has items and no worker holds it. A worker takes the first ready lane,
 * pops one item, handles it without the lock, then puts the lane back on the ready list if it
 * has more (so a busy chat takes turns with others instead of hogging a worker). A lane with no
 * items and no worker is freed. */
#include "dispatch.h"
#include "clock.h"
#include "hash.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096

struct item {
    struct tg_update u;
    dispatch_done *done;
    void *arg;
    struct item *next;
};

struct lane {
    int64_t key;
    struct item *head, *tail;
    bool busy, ready;
    struct lane *hnext; /* hash chain */
    struct lane *rnext; /* ready list */
};

struct dispatch {
    pthread_mutex_t mu;
    pthread_cond_t work, space, idle;
    dispatch_handler *handler;
    void *ud;
    int nworkers, max_pending, pending;
    pthread_t *threads;
    bool stopping, abandon;
    struct lane *buckets[NBUCKETS];
    struct lane *rhead, *rtail;
};

static struct lane **slot(struct dispatch *d, int64_t key)
{
    return &d->buckets[hash_mix64((uint64_t)key) % NBUCKETS];
}

static void push_ready(struct dispatch *d, struct lane *l)
{
    l->ready = true;
    l->rnext = NULL;
    if (d->rtail)
        d->rtail->rnext = l;
    else
        d->rhead = l;
    d->rtail = l;
    pthread_cond_signal(&d->work);
}

static void free_lane(struct dispatch *d, struct lane *l)
{
    struct lane **pp = slot(d, l->key);
    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
    free(l);
}

static void *worker(void *arg)
{
    struct dispatch *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->rhead && !(d->stopping && d->pending == 0) && !d->abandon)
            pthread_cond_wait(&d->work, &d->mu);
        if (d->abandon || (!d->rhead && d->stopping && d->pending == 0))
            break;
        struct lane *l = d->rhead;
        d->rhead = l->rnext;
        if (!d->rhead)
            d->rtail = NULL;
        l->ready = false;
        struct item *it = l->head;
        l->head = it->next;
        if (!l->head)
            l->tail = NULL;
        l->busy = true;
        pthread_mutex_unlock(&d->mu);

        bool ok = d->handler(d->ud, &it->u);
        if (it->done)
            it->done(it->arg, &it->u, ok);
        free(it);

        pthread_mutex_lock(&d->mu);
        l->busy = false;
        d->pending--;
        pthread_cond_signal(&d->space);
        if (l->head)
            push_ready(d, l);
        else
            free_lane(d, l);
        if (d->pending == 0) {
            pthread_cond_broadcast(&d->idle);
            /* Only a drain needs every worker awake (to see there is nothing left and exit);
             * otherwise this would wake all WORKERS each time the pool went idle, which at a
             * few hundred updates a second cost more CPU than the updates themselves. */
            if (d->stopping)
                pthread_cond_broadcast(&d->work);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

struct dispatch *dispatch_new(int workers, int max_pending, dispatch_handler *h, void *ud)
{
    struct dispatch *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->space, NULL);
    pthread_cond_init(&d->idle, NULL);
    d->handler = h;
    d->ud = ud;
    d->nworkers = workers > 0 ? workers : 1;
    d->max_pending = max_pending > 0 ? max_pending : 1;
    d->threads = calloc((size_t)d->nworkers, sizeof *d->threads);
    if (!d->threads)
        abort();
    for (int i = 0; i < d->nworkers; i++)
        if (pthread_create(&d->threads[i], NULL, worker, d) != 0)
            abort();
    return d;
}

int dispatch_submit(struct dispatch *d, const struct tg_update *u, dispatch_done *done, void *arg)
{
    struct item *it = malloc(sizeof *it);
    if (!it)
        abort();
    memcpy(&it->u, u, sizeof *u);
    it->done = done;
    it->arg = arg;
    it->next = NULL;
    pthread_mutex_lock(&d->mu);
    while (d->pending >= d->max_pending && !d->stopping)
        pthread_cond_wait(&d->space, &d->mu);
    if (d->stopping) {
        pthread_mutex_unlock(&d->mu);
        free(it);
        return -1;
    }
    int64_t key = u->chat_id;
    struct lane **pp = slot(d, key), *l = *pp;
    while (l && l->key != key)
        l = l->hnext;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l)
            abort();
        l->key = key;
        l->hnext = *pp;
        *pp = l;
    }
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    d->pending++;
    if (!l->busy && !l->ready)
        push_ready(d, l);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

int dispatch_pending(struct dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    int n = d->pending;
    pthread_mutex_unlock(&d->mu);
    return n;
}

void dispatch_drain(struct dispatch *d, int64_t grace_ms)
{
    int64_t deadline = clock_mono_ms() + grace_ms;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->space);
    pthread_cond_broadcast(&d->work);
    while (d->pending > 0) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->idle, &d->mu, &ts);
    }
    int left_over = d->pending;
    /* Past the grace: items not started are dropped (they were not confirmed, so Telegram
     * re-delivers them); running ones finish on their own before the join. */
    d->abandon = true;
    pthread_cond_broadcast(&d->work);
    struct lane *l = d->rhead;
    d->rhead = d->rtail = NULL;
    while (l) {
        struct lane *next = l->rnext;
        struct item *it = l->head;
        while (it) {
            struct item *n = it->next;
            if (it->done)
                it->done(it->arg, &it->u, false);
            free(it);
            d->pending--;
            it = n;
        }
        l->head = l->tail = NULL;
        if (!l->busy)
            free_lane(d, l);
        l = next;
    }
    pthread_mutex_unlock(&d->mu);
    if (left_over)
        LOG_WARN("drain grace ran out: unfinished updates left for re-delivery",
                 LF_I64("updates", left_over));
    for (int i = 0; i < d->nworkers; i++)
        pthread_join(d->threads[i], NULL);
    d->nworkers = 0;
}

void dispatch_free(struct dispatch *d)
{
    if (!d)
        return;
    if (d->nworkers)
        dispatch_drain(d, 0);
    for (int i = 0; i < NBUCKETS; i++) {
        struct lane *l = d->buckets[i];
        while (l) {
            struct lane *n = l->hnext;
            free(l);
            l = n;
        }
    }
    free(d->threads);
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->space);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
