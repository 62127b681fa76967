/* qmetrics.h -- queue-svc's Prometheus metrics: the names and labels of the queue's counters
 * and gauges, the WAL's histograms, and the gauges read at scrape time. */
#ifndef QUEUE_QMETRICS_H
#define QUEUE_QMETRICS_H

#include "broker.h"
#include "queue.h"

/* Fills the metric pointers of the broker options (creating the families once). */
void qmetrics_init(struct broker_opts *o);
/* Gauges computed at scrape time from a running broker (WAL bytes, waiting Lease calls). The
 * HTTP thread reads them until exit: qmetrics_unwatch before the broker is closed. */
void qmetrics_watch(struct broker *b);
void qmetrics_unwatch(void);

#endif
