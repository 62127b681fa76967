/* metrics.h -- a process-wide Prometheus registry: counters, gauges and histograms with
 * labels, rendered in the text exposition format (version 0.0.4) for /metrics.
 *
 * Families and their children are created once (under a lock) and then updated lock-free:
 * keep the `struct metric *` returned by metrics_child()/metrics_counter() and update it on hot
 * paths. Children live until exit. Label values come from the program, never from a request
 * (cardinality stays bounded). */
#ifndef ENGBOT_METRICS_H
#define ENGBOT_METRICS_H

#include <stddef.h>

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric_family;
struct metric;

/* Finds or creates a family. labels: comma-separated label names ("grpc_service,grpc_method")
 * or NULL. buckets: histogram upper bounds, ascending (NULL = default seconds buckets). */
struct metric_family *metrics_family(const char *name, const char *help, enum metric_kind kind,
                                     const char *labels, const double *buckets, int nbuckets);
/* Finds or creates the child with these label values (as many as the family has labels). */
struct metric *metrics_child(struct metric_family *f, ...);
struct metric *metrics_childv(struct metric_family *f, const char *const *values);

/* Unlabelled shortcuts. */
struct metric *metrics_counter(const char *name, const char *help);
struct metric *metrics_gauge(const char *name, const char *help);
struct metric *metrics_histogram(const char *name, const char *help, const double *buckets,
                                 int nbuckets);
/* A gauge computed at scrape time. fn runs on the HTTP thread and must be thread-safe. */
void metrics_gauge_fn(const char *name, const char *help, double (*fn)(void *arg), void *arg);

void metric_inc(struct metric *m);
void metric_add(struct metric *m, double v);
void metric_set(struct metric *m, double v);
void metric_observe(struct metric *m, double v);
double metric_value(const struct metric *m);       /* counters and gauges */
unsigned long long metric_count(const struct metric *m); /* histograms: observations */

/* Renders every family (plus process_* metrics) into a malloc'd NUL-terminated buffer. */
char *metrics_render(size_t *len);

/* Resident set size of this process in bytes (from /proc/self/statm). */
double metrics_process_rss(void);

extern const double metrics_latency_buckets[]; /* 50us .. 10s */
extern const int metrics_latency_nbuckets;

#endif
