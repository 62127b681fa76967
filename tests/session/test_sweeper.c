/* test_sweeper.c -- unit tests of session-svc/sweeper.c (the cleanup thread) and of the sweep
 * never stalling calls: a reader keeps being served while a large sweep runs. Linked into
 * test_session_store. */
#include "clock.h"
#include "store.h"
#include "sweeper.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define HOUR 3600000LL

static struct store *mk(uint64_t max)
{
    struct store_opts o = {
        .inactivity_ms = HOUR, .max_sessions = max, .max_state_keys = 8, .max_state_bytes = 1024};
    return store_new(&o);
}

static void touch(struct store *st, int64_t chat)
{
    struct session s;
    bool created;
    store_touch(st, chat, 1, &s, NULL, NULL, &created);
    session_free(&s);
}

TEST(sweeper_thread_removes_expired_sessions_on_its_interval)
{
    clock_set_fake(true, 1700000000000LL);
    struct store *st = mk(1000);
    for (int i = 1; i <= 100; i++)
        touch(st, i);
    clock_advance_ms(HOUR + 1);
    touch(st, 1000); /* fresh: must survive */
    struct sweeper *sw = sweeper_start(st, 10);
    for (int i = 0; i < 5000 && store_count(st) > 1; i++)
        usleep(1000); /* bounded wait for the condition */
    ASSERT_EQ(store_count(st), 1);
    ASSERT_TRUE(sweeper_runs(sw) >= 1);
    sweeper_stop(sw);
    struct store_stats s;
    store_stats(st, &s);
    ASSERT_EQ(s.expired, 100);
    store_free(st);
}

struct reader {
    struct store *st;
    atomic_int phase; /* 0 = before the sweep, 1 = sweeping, 2 = done */
    atomic_long during;
};

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    while (atomic_load(&r->phase) != 2) {
        struct session s;
        if (store_get(r->st, -1, &s, NULL, NULL) == STORE_OK) {
            session_free(&s);
            if (atomic_load(&r->phase) == 1)
                atomic_fetch_add(&r->during, 1);
        }
    }
    return NULL;
}

TEST(sweep_does_not_stall_other_calls)
{
    clock_set_fake(true, 1700000000000LL);
    struct store *st = mk(1000000);
    for (int i = 1; i <= 200000; i++)
        touch(st, i);
    clock_advance_ms(HOUR + 1);
    touch(st, -1); /* the live session the reader keeps reading */
    struct reader r = {.st = st};
    pthread_t t;
    pthread_create(&t, NULL, read_loop, &r);
    atomic_store(&r.phase, 1);
    uint64_t removed = store_sweep(st, clock_now_ms());
    atomic_store(&r.phase, 2);
    pthread_join(t, NULL);
    ASSERT_EQ(removed, 200000);
    /* A sweep holding one lock across the table would let no read finish while it ran. */
    ASSERT_TRUE(atomic_load(&r.during) > 0);
    store_free(st);
}
