/* hmap.h -- a string-keyed hash map that also remembers insertion order, so the emulator can
 * cap its tables (messages, callback queries, files) by evicting the oldest entry in O(1).
 *
 * Not thread-safe: the emulator calls it under its one state lock. Keys are copied; values are
 * owned by the map when free_val is set (freed on replace, delete, clear). */
#ifndef EMU_HMAP_H
#define EMU_HMAP_H

#include <stdbool.h>
#include <stddef.h>

struct hmap_entry {
    char *key;
    void *val;
    struct hmap_entry *next;         /* bucket chain */
    struct hmap_entry *older, *newer; /* insertion order */
};

struct hmap {
    struct hmap_entry **b;
    size_t nb, n;
    struct hmap_entry *oldest, *newest;
    void (*free_val)(void *);
};

void hmap_init(struct hmap *m, void (*free_val)(void *));
void *hmap_get(const struct hmap *m, const char *key);
/* Inserts or replaces (a replaced entry keeps its place in the order). */
void hmap_put(struct hmap *m, const char *key, void *val);
bool hmap_del(struct hmap *m, const char *key);
/* Deletes the oldest entry; false when empty. */
bool hmap_del_oldest(struct hmap *m);
void hmap_clear(struct hmap *m);

/* Convenience for 64-bit integer keys ("%lld" text). */
void *hmap_geti(const struct hmap *m, long long key);
void hmap_puti(struct hmap *m, long long key, void *val);

#endif
