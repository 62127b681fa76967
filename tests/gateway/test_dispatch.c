/* test_dispatch.c -- gateway/dispatch.c: one chat's updates run in order and one at a time,
 * chats run concurrently, the pending cap holds, and drain finishes what was queued. */
#include "dispatch.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_seen[8];
static int running[8];
static bool order_ok = true, exclusive_ok = true;
static atomic_int max_parallel, now_parallel, handled, done_calls;

static bool handler(void *ud, const struct tg_update *u)
{
    int c = (int)u->chat_id;
    pthread_mutex_lock(&mu);
    if (running[c]++)
        exclusive_ok = false;
    if (u->update_id <= last_seen[c])
        order_ok = false;
    last_seen[c] = u->update_id;
    pthread_mutex_unlock(&mu);
    int p = atomic_fetch_add(&now_parallel, 1) + 1;
    int m = atomic_load(&max_parallel);
    while (p > m && !atomic_compare_exchange_weak(&max_parallel, &m, p))
        ;
    usleep(200);
    atomic_fetch_sub(&now_parallel, 1);
    pthread_mutex_lock(&mu);
    running[c]--;
    pthread_mutex_unlock(&mu);
    atomic_fetch_add(&handled, 1);
    return true;
}

static void on_done(void *arg, const struct tg_update *u, bool ok)
{
    atomic_fetch_add(&done_calls, 1);
}

TEST(per_chat_order_and_cross_chat_concurrency)
{
    static struct tg_update u;
    struct dispatch *d = dispatch_new(4, 16, handler, NULL);
    for (int64_t id = 1; id <= 800; id++) {
        u.update_id = id;
        u.chat_id = 1 + id % 7;
        ASSERT_EQ(dispatch_submit(d, &u, on_done, NULL), 0);
        ASSERT_TRUE(dispatch_pending(d) <= 16);
    }
    dispatch_drain(d, 10000);
    ASSERT_EQ(atomic_load(&handled), 800);
    ASSERT_EQ(atomic_load(&done_calls), 800);
    ASSERT_TRUE(order_ok);
    ASSERT_TRUE(exclusive_ok);
    ASSERT_TRUE(atomic_load(&max_parallel) > 1);
    static struct tg_update late;
    ASSERT_EQ(dispatch_submit(d, &late, on_done, NULL), -1); /* drained: refused */
    dispatch_free(d);
}
