/* readcache.h -- a small in-process cache of read-only answers: key bytes -> value bytes, each
 * kept for a fixed time to live, within a fixed number of bytes (least recently used goes
 * first). Thread-safe.
 *
 * The gateway keeps cache-svc's catalogue answers here (ListFolder, Search: the same for every
 * chat) for CATALOGUE_CACHE_TTL, so a burst of /browse costs one catalogue call per page per
 * TTL instead of one per update. deps.c owns the instances (one per service and track). */
#ifndef ENGBOT_GW_READCACHE_H
#define ENGBOT_GW_READCACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct readcache;

/* ttl_ms > 0; max_bytes bounds keys, values and the per-entry overhead together. */
struct readcache *readcache_new(int64_t ttl_ms, size_t max_bytes);
void readcache_free(struct readcache *rc);

/* When key is present and stored less than ttl_ms before now_ms: *val is a malloc'd copy of
 * the value (free it), and true. Otherwise false (an expired entry is dropped). */
bool readcache_get(struct readcache *rc, const void *key, size_t klen, int64_t now_ms,
                   uint8_t **val, size_t *vlen);

/* Stores (or replaces) key -> value, stamped now_ms; evicts least recently used entries until
 * it fits. An entry larger than the whole cache is not kept. */
void readcache_put(struct readcache *rc, const void *key, size_t klen, const void *val, size_t vlen,
                   int64_t now_ms);

/* Drops every entry (an admin's /refresh). */
void readcache_clear(struct readcache *rc);

size_t readcache_count(struct readcache *rc);
size_t readcache_bytes(struct readcache *rc);

#endif
