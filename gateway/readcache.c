/* readcache.c -- chained hash table + doubly linked LRU list under one mutex.
 *
 * Entries hold key and value in one allocation. The table has a fixed power-of-two bucket
 * count: one per 256 bytes of the bound (catalogue answers are a few hundred bytes to a few
 * KiB, so chains stay short). */
#include "readcache.h"
#include "hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU list: head = most recently used */
    uint64_t hash;
    int64_t stored_ms;
    size_t klen, vlen;
    uint8_t bytes[]; /* key, then value */
};

struct readcache {
    pthread_mutex_t mu;
    int64_t ttl_ms;
    size_t max_bytes, bytes, count, nbuckets;
    struct entry **buckets;
    struct entry *head, *tail;
};

static size_t cost(size_t klen, size_t vlen)
{
    return sizeof(struct entry) + klen + vlen;
}

struct readcache *readcache_new(int64_t ttl_ms, size_t max_bytes)
{
    struct readcache *rc = calloc(1, sizeof *rc);
    if (!rc)
        abort();
    pthread_mutex_init(&rc->mu, NULL);
    rc->ttl_ms = ttl_ms;
    rc->max_bytes = max_bytes;
    rc->nbuckets = 16;
    while (rc->nbuckets < max_bytes / 256 && rc->nbuckets < (1u << 20))
        rc->nbuckets *= 2;
    rc->buckets = calloc(rc->nbuckets, sizeof *rc->buckets);
    if (!rc->buckets)
        abort();
    return rc;
}

static void lru_unlink(struct readcache *rc, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        rc->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        rc->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct readcache *rc, struct entry *e)
{
    e->prev = NULL;
    e->next = rc->head;
    if (rc->head)
        rc->head->prev = e;
    else
        rc->tail = e;
    rc->head = e;
}

/* Under mu: unlinks e from its bucket and the list, and frees it. */
static void drop(struct readcache *rc, struct entry *e)
{
    struct entry **pp = &rc->buckets[e->hash & (rc->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(rc, e);
    rc->count--;
    rc->bytes -= cost(e->klen, e->vlen);
    free(e);
}

static struct entry *lookup(struct readcache *rc, uint64_t h, const void *key, size_t klen)
{
    for (struct entry *e = rc->buckets[h & (rc->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->bytes, key, klen) == 0)
            return e;
    return NULL;
}

bool readcache_get(struct readcache *rc, const void *key, size_t klen, int64_t now_ms,
                   uint8_t **val, size_t *vlen)
{
    uint64_t h = hash_bytes(key, klen, 0);
    bool hit = false;
    pthread_mutex_lock(&rc->mu);
    struct entry *e = lookup(rc, h, key, klen);
    if (e && now_ms - e->stored_ms >= rc->ttl_ms) {
        drop(rc, e);
        e = NULL;
    }
    if (e) {
        *val = malloc(e->vlen ? e->vlen : 1);
        if (!*val)
            abort();
        memcpy(*val, e->bytes + e->klen, e->vlen);
        *vlen = e->vlen;
        lru_unlink(rc, e);
        lru_push_front(rc, e);
        hit = true;
    }
    pthread_mutex_unlock(&rc->mu);
    return hit;
}

void readcache_put(struct readcache *rc, const void *key, size_t klen, const void *val, size_t vlen,
                   int64_t now_ms)
{
    if (cost(klen, vlen) > rc->max_bytes)
        return;
    uint64_t h = hash_bytes(key, klen, 0);
    struct entry *n = malloc(sizeof *n + klen + vlen);
    if (!n)
        abort();
    *n = (struct entry){.hash = h, .stored_ms = now_ms, .klen = klen, .vlen = vlen};
    memcpy(n->bytes, key, klen);
    memcpy(n->bytes + klen, val, vlen);
    pthread_mutex_lock(&rc->mu);
    struct entry *old = lookup(rc, h, key, klen);
    if (old)
        drop(rc, old);
    while (rc->bytes + cost(klen, vlen) > rc->max_bytes && rc->tail)
        drop(rc, rc->tail);
    struct entry **b = &rc->buckets[h & (rc->nbuckets - 1)];
    n->hnext = *b;
    *b = n;
    lru_push_front(rc, n);
    rc->count++;
    rc->bytes += cost(klen, vlen);
    pthread_mutex_unlock(&rc->mu);
}

void readcache_clear(struct readcache *rc)
{
    pthread_mutex_lock(&rc->mu);
    while (rc->head)
        drop(rc, rc->head);
    pthread_mutex_unlock(&rc->mu);
}

size_t readcache_count(struct readcache *rc)
{
    pthread_mutex_lock(&rc->mu);
    size_t n = rc->count;
    pthread_mutex_unlock(&rc->mu);
    return n;
}

size_t readcache_bytes(struct readcache *rc)
{
    pthread_mutex_lock(&rc->mu);
    size_t n = rc->bytes;
    pthread_mutex_unlock(&rc->mu);
    return n;
}

void readcache_free(struct readcache *rc)
{
    if (!rc)
        return;
    readcache_clear(rc);
    free(rc->buckets);
    pthread_mutex_destroy(&rc->mu);
    free(rc);
}
