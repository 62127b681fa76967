/* bench_store.c -- session-svc's table without the network: resident memory per session, touch
 * and get rates with THREADS threads at N sessions, the cleanup sweep of N expired sessions,
 * and snapshot write and load times (the snapshot goes to DIR, default /tmp).
 *   bench_session_store [N=1000000] [THREADS=2] [DIR=/tmp]
 * Each session carries what the gateway stores: a folder id, a page and one state key. */
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "persist.h"
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HOUR 3600000LL

static struct store *st;
static int64_t n_sessions;
static int nthreads;

/* Real time: the store runs on the fake clock so the sweep can jump an hour ahead. */
static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double secs(int64_t us)
{
    return (double)us / 1e6;
}

struct job {
    int id;
    int ops;
    bool get;
};

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(j->id + 1);
    for (int i = 0; i < j->ops; i++) {
        int64_t chat = -1000000000000LL - (int64_t)(rng(&seed) % (uint64_t)n_sessions);
        struct session s;
        bool created;
        if (j->get) {
            if (store_get(st, chat, &s, NULL, NULL) == STORE_OK)
                session_free(&s);
        } else {
            store_touch(st, chat, 7, &s, NULL, NULL, &created);
            session_free(&s);
        }
    }
    return NULL;
}

static double run_ops(bool get, int ops)
{
    pthread_t t[64];
    struct job j[64];
    int64_t t0 = now_us();
    for (int i = 0; i < nthreads; i++) {
        j[i] = (struct job){i, ops / nthreads, get};
        pthread_create(&t[i], NULL, worker, &j[i]);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    return ops / secs(now_us() - t0);
}

int main(int argc, char **argv)
{
    n_sessions = argc > 1 ? atoll(argv[1]) : 1000000;
    nthreads = argc > 2 ? atoi(argv[2]) : 2;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    if (nthreads < 1 || nthreads > 64 || n_sessions < 1)
        return 2;
    log_setup("bench", LOG_LVL_WARN, true);
    clock_set_fake(true, 1700000000000LL);
    struct store_opts o = {.inactivity_ms = HOUR,
                           .max_sessions = (uint64_t)n_sessions,
                           .max_state_keys = 32,
                           .max_state_bytes = 4096};
    double rss0 = metrics_process_rss();
    st = store_new(&o);
    int64_t t0 = now_us();
    for (int64_t i = 0; i < n_sessions; i++) {
        int64_t chat = -1000000000000LL - i;
        struct session s;
        bool created;
        store_touch(st, chat, 7, &s, NULL, NULL, &created);
        session_free(&s);
        char folder[16];
        snprintf(folder, sizeof folder, "f%" PRId64, i % 5000);
        struct session_kv kv[] = {{"lang", "en"}};
        struct store_update u = {.chat_id = chat,
                                 .expected_version = 1,
                                 .has_folder_id = true,
                                 .folder_id = folder,
                                 .has_page = true,
                                 .page = 1,
                                 .n_set = 1,
                                 .set = kv};
        struct store_fail f;
        store_update(st, &u, &s, NULL, NULL, &f);
        session_free(&s);
    }
    double fill = secs(now_us() - t0);
    double rss1 = metrics_process_rss();
    printf("sessions=%" PRId64 " fill_s=%.2f rss_delta_mb=%.1f bytes_per_session=%.0f\n",
           n_sessions, fill, (rss1 - rss0) / 1048576, (rss1 - rss0) / (double)n_sessions);

    int ops = 2000000;
    printf("threads=%d touch_ops_per_s=%.0f get_ops_per_s=%.0f\n", nthreads, run_ops(false, ops),
           run_ops(true, ops));

    /* Snapshot write and load through persist (fsync on, as in production). */
    char data[512];
    snprintf(data, sizeof data, "%s/engbot-bench-store-%d", dir, (int)getpid());
    struct persist_opts po = {.data_dir = data,
                              .sync_interval_ms = 1000,
                              .snapshot_interval_ms = 86400000,
                              .compact_log_bytes = 1LL << 34};
    struct persist_load_info info;
    char err[512];
    struct persist *p = persist_open(&po, st, &info, err, sizeof err);
    if (!p) {
        fprintf(stderr, "persist_open: %s\n", err);
        return 1;
    }
    t0 = now_us();
    persist_snapshot(p, err, sizeof err);
    double snap = secs(now_us() - t0);
    char path[600];
    struct stat sb;
    snprintf(path, sizeof path, "%s/sessions.snap", data);
    long size = stat(path, &sb) == 0 ? (long)sb.st_size : -1;
    persist_close(p, err, sizeof err);
    struct store *st2 = store_new(&o);
    t0 = now_us();
    p = persist_open(&po, st2, &info, err, sizeof err);
    double load = secs(now_us() - t0);
    /* The sweep as the service runs it: every removal also goes to the change log. */
    clock_advance_ms(HOUR + 1);
    t0 = now_us();
    uint64_t removed_logged = store_sweep(st2, clock_now_ms());
    double sweep_logged = secs(now_us() - t0);
    persist_close(p, err, sizeof err);
    printf("snapshot_s=%.2f snapshot_mb=%.1f load_s=%.2f (load includes its own start-up "
           "snapshot) loaded=%" PRIu64 "\n",
           snap, size / 1048576.0, load, info.sessions);
    printf("sweep_with_change_log_removed=%" PRIu64 " sweep_with_change_log_s=%.3f\n",
           removed_logged, sweep_logged);
    store_free(st2);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", data);

    /* Sweep of the table alone: every session past the threshold (the clock moved above). */
    t0 = now_us();
    uint64_t removed = store_sweep(st, clock_now_ms());
    printf("sweep_removed=%" PRIu64 " sweep_s=%.3f\n", removed, secs(now_us() - t0));
    store_free(st);
    return 0;
}
