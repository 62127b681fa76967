/* catalogue_internal.h -- the catalogue's structures, shared by catalogue.c (the index) and
 * search.c (ranked search over it); nothing else includes this. */
#ifndef ENGBOT_CACHE_CATALOGUE_INTERNAL_H
#define ENGBOT_CACHE_CATALOGUE_INTERNAL_H

#include "catalogue.h"

#include <pthread.h>
#include <stdatomic.h>

struct ent {
    char *path;   /* relative path ("" for the root); name = path + name_off */
    uint64_t hid; /* id hash */
    uint64_t size;
    int64_t mtime_ms;
    _Atomic int64_t checked_ms; /* existence stamp (monotonic ms), 0 = never checked */
    uint32_t *kids;             /* folders: child slots, sorted */
    uint32_t nkids, capkids;
    uint32_t parent;
    uint32_t next_id, next_path, next_name; /* hash chains; next_id links the free list */
    uint16_t name_off;
    uint8_t kind; /* 0 = free slot */
    uint8_t ctype;
    uint8_t depth; /* segments in path (root 0) */
};

struct cat {
    pthread_rwlock_t lock;
    struct ent *e;
    uint32_t nslots, capslots, free_head;
    uint32_t *b_id, *b_path, *b_name;
    uint32_t nb; /* buckets per table, a power of two */
    size_t live, files, folders, str_bytes, kid_bytes, dropped;
    size_t max_entries;
    uint64_t id_mask;
    uint32_t root;
};

static inline const char *ent_name(const struct ent *e)
{
    return e->path + e->name_off;
}

#endif
