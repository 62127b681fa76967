/* hmap.h -- an open-addressing hash map from a 64-bit key to a pointer (linear probing,
 * backward-shift deletion, so no tombstones slow lookups down over time). The queue indexes
 * lanes by chat id and jobs by id with it; dedupe keys use it with a string hash and an
 * equality callback. Not thread-safe: the owner's lock covers it. */
#ifndef QUEUE_HMAP_H
#define QUEUE_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hmap_slot {
    uint64_t k;
    void *v; /* NULL = empty slot */
};

struct hmap {
    struct hmap_slot *s;
    size_t n, mask; /* entries; capacity - 1 (capacity is a power of two) */
};

/* Optional equality for maps whose k is a hash: does item v hold the key `key`? */
typedef bool hmap_eq_fn(const void *v, const void *key);

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m); /* frees the table, not the values */
/* The value stored under k (and, with eq, equal to key), or NULL. */
void *hmap_get(const struct hmap *m, uint64_t k, hmap_eq_fn *eq, const void *key);
/* Stores v (non-NULL) under k; the caller checked it is absent. */
void hmap_put(struct hmap *m, uint64_t k, void *v);
/* Removes exactly the value v stored under k; returns whether it was there. */
bool hmap_del(struct hmap *m, uint64_t k, const void *v);

/* Calls fn for every value (in table order); fn must not change the map. */
void hmap_each(const struct hmap *m, void (*fn)(void *arg, void *v), void *arg);

uint64_t hmap_hash_u64(uint64_t x);
uint64_t hmap_hash_str(const char *s, size_t len);

#endif
