/* heap.h -- an intrusive binary min-heap ordered by (key, tie), with O(log n) removal of any
 * node. The queue keeps four of them: ready lanes by the time they may send, queued jobs by
 * deadline, leased jobs by lease deadline, idle lanes by the time they may be freed.
 *
 * A node lives inside the object it orders (no allocation per entry); `idx` tracks its slot so
 * it can be removed from the middle. Not thread-safe: the owner's lock covers it. */
#ifndef QUEUE_HEAP_H
#define QUEUE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAP_NONE SIZE_MAX

struct hnode {
    int64_t key;  /* smaller first */
    uint64_t tie; /* equal keys: smaller first (insertion order) */
    size_t idx;   /* slot in the heap, HEAP_NONE when not in one */
};

struct heap {
    struct hnode **a;
    size_t n, cap;
};

static inline void hnode_init(struct hnode *h)
{
    h->idx = HEAP_NONE;
}
static inline bool hnode_linked(const struct hnode *h)
{
    return h->idx != HEAP_NONE;
}

void heap_init(struct heap *h);
void heap_free(struct heap *h); /* frees the array, not the nodes */
/* Inserts n (which must not be in a heap) with its current key and tie. */
void heap_push(struct heap *h, struct hnode *n);
/* Removes n if it is in this heap; a no-op otherwise. */
void heap_remove(struct heap *h, struct hnode *n);
static inline struct hnode *heap_top(const struct heap *h)
{
    return h->n ? h->a[0] : NULL;
}
struct hnode *heap_pop(struct heap *h);

#define HEAP_ENTRY(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
