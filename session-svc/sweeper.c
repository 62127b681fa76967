/* sweeper.c -- the cleanup thread (see sweeper.h). Its one job: wake every interval (or at
 * stop), sweep, record the metrics. */
#include "sweeper.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct sweeper {
    struct store *st;
    int64_t interval_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    _Atomic uint64_t runs;
    struct metric *m_runs, *m_seconds, *m_removed;
};

uint64_t sweeper_run_once(struct sweeper *sw)
{
    int64_t t0 = clock_mono_us();
    uint64_t removed = store_sweep(sw->st, clock_now_ms());
    double secs = (double)(clock_mono_us() - t0) / 1e6;
    atomic_fetch_add(&sw->runs, 1);
    metric_inc(sw->m_runs);
    metric_observe(sw->m_seconds, secs);
    metric_set(sw->m_removed, (double)removed);
    if (removed)
        LOG_INFO("cleanup removed idle sessions", LF_U64("removed", removed),
                 LF_F64("seconds", secs), LF_U64("remaining", store_count(sw->st)));
    else
        LOG_DEBUG("cleanup found nothing idle", LF_F64("seconds", secs));
    return removed;
}

static void *run(void *arg)
{
    struct sweeper *sw = arg;
    pthread_mutex_lock(&sw->mu);
    while (!sw->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += sw->interval_ms / 1000;
        ts.tv_nsec += (sw->interval_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        int rc = 0;
        while (!sw->stop && rc == 0)
            rc = pthread_cond_timedwait(&sw->cv, &sw->mu, &ts);
        if (sw->stop)
            break;
        pthread_mutex_unlock(&sw->mu);
        sweeper_run_once(sw);
        pthread_mutex_lock(&sw->mu);
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

static struct sweeper *sweeper_new(struct store *st, int64_t interval_ms)
{
    struct sweeper *sw = calloc(1, sizeof *sw);
    if (!sw)
        abort();
    sw->st = st;
    sw->interval_ms = interval_ms;
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cv, NULL);
    sw->m_runs = metrics_counter("engbot_session_cleanup_runs_total", "Cleanup sweeps run.");
    sw->m_seconds = metrics_histogram("engbot_session_cleanup_duration_seconds",
                                      "Time of each cleanup sweep.", NULL, 0);
    sw->m_removed = metrics_gauge("engbot_session_cleanup_last_removed",
                                  "Sessions the last cleanup sweep removed.");
    return sw;
}

struct sweeper *sweeper_start(struct store *st, int64_t interval_ms)
{
    struct sweeper *sw = sweeper_new(st, interval_ms);
    if (pthread_create(&sw->thread, NULL, run, sw) != 0)
        abort();
    return sw;
}

uint64_t sweeper_runs(struct sweeper *sw)
{
    return atomic_load(&sw->runs);
}

void sweeper_stop(struct sweeper *sw)
{
    if (!sw)
        return;
    pthread_mutex_lock(&sw->mu);
    sw->stop = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
    pthread_join(sw->thread, NULL);
    pthread_mutex_destroy(&sw->mu);
    pthread_cond_destroy(&sw->cv);
    free(sw);
}
