/* cachestat.h -- hit and miss counters of one cache ("catalogue", "existence", "file_id"),
 * exported as engbot_cache_hits_total{cache}, engbot_cache_misses_total{cache} and
 * engbot_cache_hit_ratio{cache}, and readable for GetStats. Lock-free; any thread. */
#ifndef ENGBOT_CACHE_CACHESTAT_H
#define ENGBOT_CACHE_CACHESTAT_H

#include <stdatomic.h>
#include <stdint.h>

struct metric;

struct cachestat {
    const char *name;
    _Atomic uint64_t hits, misses;
    struct metric *m_hits, *m_misses, *m_ratio;
};

void cachestat_init(struct cachestat *cs, const char *name);
void cachestat_hit(struct cachestat *cs);
void cachestat_miss(struct cachestat *cs);
/* hits / (hits + misses); 0 before the first lookup. */
double cachestat_ratio(const struct cachestat *cs);

#endif
