/* qmetrics.c -- queue-svc's Prometheus metrics (see qmetrics.h). Every name starts with
 * queue_; labels are fixed sets chosen here, never values from a request. */
#include "qmetrics.h"

#include "metrics.h"

#include <pthread.h>

static const double seconds_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,     10,   30,   60,  300,  1800};
static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};

static struct metric *labelled(const char *name, const char *help, const char *label,
                               const char *value)
{
    return metrics_child(metrics_family(name, help, METRIC_COUNTER, label, NULL, 0), value);
}

void qmetrics_init(struct broker_opts *o)
{
    struct metric **c = o->counters;
    c[QC_ENQUEUED] = metrics_counter("queue_enqueued_total", "Jobs added to the queue.");
    c[QC_DEDUPLICATED] = metrics_counter(
        "queue_deduplicated_total",
        "Enqueues answered with an earlier job of the same dedupe key (no new job).");
    const char *rej = "Enqueues refused, by reason (queue_full, lane_full, bytes_full, "
                      "deadline: could not go out before its deadline, invalid).";
    c[QC_REJ_QUEUE_FULL] = labelled("queue_rejected_total", rej, "reason", "queue_full");
    c[QC_REJ_LANE_FULL] = labelled("queue_rejected_total", rej, "reason", "lane_full");
    c[QC_REJ_BYTES_FULL] = labelled("queue_rejected_total", rej, "reason", "bytes_full");
    c[QC_REJ_DEADLINE] = labelled("queue_rejected_total", rej, "reason", "deadline");
    c[QC_REJ_INVALID] = labelled("queue_rejected_total", rej, "reason", "invalid");
    c[QC_LEASED] = metrics_counter("queue_leased_total", "Jobs handed to senders.");
    c[QC_ACKED] = metrics_counter("queue_acked_total", "Jobs acknowledged as sent.");
    const char *ret = "Jobs handed back for another attempt, by kind (backoff after an error, "
                      "retry_after after a 429).";
    c[QC_RETRIED_BACKOFF] = labelled("queue_retried_total", ret, "kind", "backoff");
    c[QC_RETRIED_RETRY_AFTER] = labelled("queue_retried_total", ret, "kind", "retry_after");
    c[QC_EXPIRED] = metrics_counter("queue_expired_total",
                                    "Jobs removed because their deadline passed (one by one).");
    c[QC_LEASE_EXPIRED] =
        metrics_counter("queue_lease_expired_total",
                        "Leases that ran out without an answer (job back in its lane).");
    const char *dl = "Jobs moved to the dead-letter list, by reason (failed, max_attempts).";
    c[QC_DEAD_FAILED] = labelled("queue_dead_lettered_total", dl, "reason", "failed");
    c[QC_DEAD_MAX_ATTEMPTS] = labelled("queue_dead_lettered_total", dl, "reason", "max_attempts");
    const char *dr = "Jobs dropped to make room, by reason (lane_full and queue_full with "
                     "OVERFLOW_POLICY=drop-oldest; dead_letters_full past DEAD_LETTER_MAX).";
    c[QC_DROP_LANE_FULL] = labelled("queue_dropped_total", dr, "reason", "lane_full");
    c[QC_DROP_QUEUE_FULL] = labelled("queue_dropped_total", dr, "reason", "queue_full");
    c[QC_DROP_DEAD_FULL] = labelled("queue_dropped_total", dr, "reason", "dead_letters_full");
    c[QC_PURGED] = metrics_counter("queue_purged_total", "Jobs removed by PurgeLane.");
    c[QC_REQUEUED] =
        metrics_counter("queue_requeued_total", "Dead letters sent back to their lane.");
    const char *rl = "Times a lane (or, for global, a Lease) had to wait for a rate limit: "
                     "global bucket, chat bucket, group bucket, or a 429's retry_after.";
    c[QC_WAIT_GLOBAL] = labelled("queue_ratelimit_waits_total", rl, "limit", "global");
    c[QC_WAIT_CHAT] = labelled("queue_ratelimit_waits_total", rl, "limit", "chat");
    c[QC_WAIT_GROUP] = labelled("queue_ratelimit_waits_total", rl, "limit", "group");
    c[QC_WAIT_PAUSE] = labelled("queue_ratelimit_waits_total", rl, "limit", "retry_after");

    struct metric_family *jobs =
        metrics_family("queue_jobs", "Jobs in the queue by state (queued, leased, dead).",
                       METRIC_GAUGE, "state", NULL, 0);
    o->gauges[0] = metrics_child(jobs, "queued");
    o->gauges[1] = metrics_child(jobs, "leased");
    o->gauges[2] = metrics_child(jobs, "dead");
    o->gauges[3] = metrics_gauge("queue_lanes", "Lanes (chats) with queued or leased jobs.");
    o->time_in_queue = metrics_histogram(
        "queue_time_in_queue_seconds", "From enqueue to the first lease of a job.", seconds_buckets,
        (int)(sizeof seconds_buckets / sizeof seconds_buckets[0]));
    o->w.fsync_seconds = metrics_histogram("queue_wal_fsync_seconds",
                                           "Write-ahead log fsync latency (one per group commit).",
                                           metrics_latency_buckets, metrics_latency_nbuckets);
    o->w.batch_records =
        metrics_histogram("queue_wal_batch_records", "Records made durable by one group commit.",
                          batch_buckets, (int)(sizeof batch_buckets / sizeof batch_buckets[0]));
    o->w.compactions = metrics_counter("queue_wal_compactions_total",
                                       "Write-ahead log compactions (snapshot + new generation).");
    o->w.errors =
        metrics_counter("queue_wal_errors_total",
                        "Write-ahead log writes that failed (the answer was UNAVAILABLE).");
}

/* The broker the scrape-time gauges read; NULL once it is being closed. */
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct broker *watched;

static double wal_bytes_fn(void *arg)
{
    pthread_mutex_lock(&watch_mu);
    double v = watched ? (double)broker_wal_bytes(watched) : 0;
    pthread_mutex_unlock(&watch_mu);
    return v;
}

static double waiting(void *arg)
{
    pthread_mutex_lock(&watch_mu);
    double v = watched ? (double)broker_waiting(watched) : 0;
    pthread_mutex_unlock(&watch_mu);
    return v;
}

void qmetrics_watch(struct broker *b)
{
    pthread_mutex_lock(&watch_mu);
    watched = b;
    pthread_mutex_unlock(&watch_mu);
    metrics_gauge_fn("queue_wal_bytes", "Bytes in the current write-ahead log generation.",
                     wal_bytes_fn, NULL);
    metrics_gauge_fn("queue_lease_waiting", "Lease calls waiting for a job (long polls).", waiting,
                     NULL);
}

void qmetrics_unwatch(void)
{
    pthread_mutex_lock(&watch_mu);
    watched = NULL;
    pthread_mutex_unlock(&watch_mu);
}
