/* cachestat.c -- per-cache hit/miss counters and their metrics. */
#include "cachestat.h"
#include "metrics.h"

void cachestat_init(struct cachestat *cs, const char *name)
{
    cs->name = name;
    atomic_init(&cs->hits, 0);
    atomic_init(&cs->misses, 0);
    cs->m_hits = metrics_child(metrics_family("engbot_cache_hits_total",
                                              "Lookups answered from the cache, by cache.",
                                              METRIC_COUNTER, "cache", NULL, 0),
                               name);
    cs->m_misses =
        metrics_child(metrics_family("engbot_cache_misses_total",
                                     "Lookups that had to go to disk or found nothing, by cache.",
                                     METRIC_COUNTER, "cache", NULL, 0),
                      name);
    cs->m_ratio = metrics_child(metrics_family("engbot_cache_hit_ratio",
                                               "hits / (hits + misses) since start, by cache "
                                               "(the seed targets above 0.8).",
                                               METRIC_GAUGE, "cache", NULL, 0),
                                name);
}

static void update_ratio(struct cachestat *cs)
{
    metric_set(cs->m_ratio, cachestat_ratio(cs));
}

void cachestat_hit(struct cachestat *cs)
{
    atomic_fetch_add_explicit(&cs->hits, 1, memory_order_relaxed);
    metric_inc(cs->m_hits);
    update_ratio(cs);
}

void cachestat_miss(struct cachestat *cs)
{
    atomic_fetch_add_explicit(&cs->misses, 1, memory_order_relaxed);
    metric_inc(cs->m_misses);
    update_ratio(cs);
}

double cachestat_ratio(const struct cachestat *cs)
{
    uint64_t h = atomic_load_explicit(&cs->hits, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&cs->misses, memory_order_relaxed);
    return h + m ? (double)h / (double)(h + m) : 0.0;
}
