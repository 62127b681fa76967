/* test_store.c -- unit tests of session-svc/store.c: the table, touch/get/update/delete, expiry
 * boundaries (fake clock), the sweep, eviction order, compare-and-swap, state limits, listing,
 * the change sink, loading, and concurrent callers (run under TSan in build-session-tsan). */
#include "clock.h"
#include "store.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>

#define HOUR 3600000LL
#define T0   1700000000000LL

static struct store *mk(uint64_t max, uint32_t keys, uint32_t bytes)
{
    clock_set_fake(true, T0);
    struct store_opts o = {.inactivity_ms = HOUR,
                           .max_sessions = max,
                           .max_state_keys = keys,
                           .max_state_bytes = bytes};
    return store_new(&o);
}

static bool alive(struct store *st, int64_t chat)
{
    struct session s;
    if (store_get(st, chat, &s, NULL, NULL) != STORE_OK)
        return false;
    session_free(&s);
    return true;
}

static void touch(struct store *st, int64_t chat, int64_t user)
{
    struct session s;
    bool created;
    store_touch(st, chat, user, &s, NULL, NULL, &created);
    session_free(&s);
}

TEST(touch_creates_then_refreshes)
{
    struct store *st = mk(100, 8, 1024);
    struct session s;
    bool created;
    ASSERT_EQ(store_touch(st, -1001234567890LL, 7, &s, NULL, NULL, &created), STORE_OK);
    ASSERT_TRUE(created);
    ASSERT_EQ(s.chat_id, -1001234567890LL);
    ASSERT_EQ(s.user_id, 7);
    ASSERT_EQ(s.version, 1);
    ASSERT_EQ(s.created_ms, T0);
    ASSERT_EQ(s.last_active_ms, T0);
    ASSERT_STREQ(s.folder_id, "");
    ASSERT_STREQ(s.last_search, "");
    ASSERT_EQ(s.n_state, 0);
    session_free(&s);

    clock_advance_ms(5000);
    ASSERT_EQ(store_touch(st, -1001234567890LL, 7, &s, NULL, NULL, &created), STORE_OK);
    ASSERT_FALSE(created);
    ASSERT_EQ(s.version, 1); /* refreshing activity is not a change */
    ASSERT_EQ(s.last_active_ms, T0 + 5000);
    ASSERT_EQ(s.created_ms, T0);
    session_free(&s);

    ASSERT_EQ(store_touch(st, -1001234567890LL, 8, &s, NULL, NULL, &created), STORE_OK);
    ASSERT_EQ(s.version, 2); /* another user is a change */
    ASSERT_EQ(s.user_id, 8);
    session_free(&s);
    ASSERT_EQ(store_touch(st, -1001234567890LL, 0, &s, NULL, NULL, &created), STORE_OK);
    ASSERT_EQ(s.user_id, 8); /* 0 keeps the user */
    ASSERT_EQ(s.version, 2);
    session_free(&s);

    struct store_stats stt;
    store_stats(st, &stt);
    ASSERT_EQ(stt.active, 1);
    ASSERT_EQ(stt.created, 1);
    store_free(st);
}

TEST(get_does_not_refresh_activity)
{
    struct store *st = mk(100, 8, 1024);
    struct session s;
    ASSERT_EQ(store_get(st, 5, &s, NULL, NULL), STORE_ENOTFOUND);
    touch(st, 5, 1);
    clock_advance_ms(HOUR - 1000);
    ASSERT_EQ(store_get(st, 5, &s, NULL, NULL), STORE_OK);
    ASSERT_EQ(s.last_active_ms, T0);
    session_free(&s);
    clock_advance_ms(1001); /* idle 1h + 1ms since the touch: the get did not refresh it */
    ASSERT_EQ(store_get(st, 5, &s, NULL, NULL), STORE_ENOTFOUND);
    store_free(st);
}

TEST(expiry_boundary_is_strictly_longer_than_threshold)
{
    struct store *st = mk(100, 8, 1024);
    touch(st, 1, 1);
    clock_advance_ms(HOUR); /* idle exactly the threshold: still alive */
    ASSERT_TRUE(alive(st, 1));
    ASSERT_EQ(store_sweep(st, clock_now_ms()), 0);
    ASSERT_TRUE(alive(st, 1));
    clock_advance_ms(1); /* one millisecond past: expired */
    ASSERT_FALSE(alive(st, 1));
    struct store_stats stt;
    store_stats(st, &stt);
    ASSERT_EQ(stt.expired, 1);
    ASSERT_EQ(stt.active, 0);
    /* Touching an expired session makes a new one. */
    touch(st, 2, 1);
    clock_advance_ms(HOUR + 1);
    struct session s;
    bool created;
    store_touch(st, 2, 1, &s, NULL, NULL, &created);
    ASSERT_TRUE(created);
    ASSERT_EQ(s.created_ms, clock_now_ms());
    session_free(&s);
    store_free(st);
}

TEST(sweep_removes_only_idle_sessions)
{
    struct store *st = mk(1000, 8, 1024);
    for (int i = 1; i <= 300; i++)
        touch(st, i, i);
    clock_advance_ms(30 * 60000);
    for (int i = 301; i <= 600; i++)
        touch(st, i, i);
    for (int i = 1; i <= 50; i++) /* active users keep theirs */
        touch(st, i, i);
    clock_advance_ms(31 * 60000); /* 61 min after the first batch, 31 after the second */
    ASSERT_EQ(store_sweep(st, clock_now_ms()), 250);
    for (int i = 1; i <= 600; i++)
        ASSERT_EQ(alive(st, i), i <= 50 || i > 300);
    ASSERT_EQ(store_count(st), 350);
    clock_advance_ms(HOUR);
    ASSERT_EQ(store_sweep(st, clock_now_ms()), 350);
    ASSERT_EQ(store_count(st), 0);
    store_free(st);
}

TEST(eviction_takes_least_recently_active)
{
    struct store *st = mk(100, 8, 1024);
    for (int i = 1; i <= 100; i++) {
        touch(st, i * 7919, 1);
        clock_advance_ms(1);
    }
    touch(st, 1 * 7919, 1); /* now the most recent */
    clock_advance_ms(1);
    touch(st, 1000003, 1); /* 101st: evicts chat 2*7919, the least recently active */
    ASSERT_EQ(store_count(st), 100);
    ASSERT_TRUE(alive(st, 1 * 7919));
    ASSERT_FALSE(alive(st, 2 * 7919));
    ASSERT_TRUE(alive(st, 3 * 7919));
    for (int i = 0; i < 50; i++) {
        clock_advance_ms(1);
        touch(st, 2000000 + i, 1);
    }
    /* The next 50 oldest went, in order: 3..52 (chat 1 was refreshed). */
    for (int i = 3; i <= 100; i++)
        ASSERT_EQ(alive(st, i * 7919), i > 52);
    ASSERT_TRUE(alive(st, 7919));
    struct store_stats stt;
    store_stats(st, &stt);
    ASSERT_EQ(stt.evicted, 51);
    ASSERT_EQ(stt.active, 100);
    store_free(st);
}

TEST(update_is_compare_and_swap)
{
    struct store *st = mk(100, 8, 1024);
    touch(st, 9, 1);
    struct session s;
    struct store_fail f;
    struct session_kv set[] = {{"lang", "en"}, {"mode", "browse"}};
    struct store_update u = {.chat_id = 9,
                             .expected_version = 1,
                             .has_folder_id = true,
                             .folder_id = "f/1",
                             .has_page = true,
                             .page = 3,
                             .n_set = 2,
                             .set = set};
    clock_advance_ms(10);
    ASSERT_EQ(store_update(st, &u, &s, NULL, NULL, &f), STORE_OK);
    ASSERT_EQ(s.version, 2);
    ASSERT_STREQ(s.folder_id, "f/1");
    ASSERT_EQ(s.page, 3);
    ASSERT_EQ(s.n_state, 2);
    ASSERT_STREQ(s.state[0].key, "lang");
    ASSERT_STREQ(s.state[1].value, "browse");
    ASSERT_EQ(s.last_active_ms, T0 + 10);
    session_free(&s);
    /* Stale version: ABORTED-worthy, nothing changes, current version reported. */
    u.expected_version = 1;
    u.page = 4;
    ASSERT_EQ(store_update(st, &u, &s, NULL, NULL, &f), STORE_EVERSION);
    ASSERT_EQ(f.current_version, 2);
    ASSERT_EQ(store_get(st, 9, &s, NULL, NULL), STORE_OK);
    ASSERT_EQ(s.page, 3);
    session_free(&s);
    /* Unnamed fields stay. */
    struct store_update u2 = {
        .chat_id = 9, .expected_version = 2, .has_last_search = true, .last_search = "gear box"};
    ASSERT_EQ(store_update(st, &u2, &s, NULL, NULL, &f), STORE_OK);
    ASSERT_STREQ(s.folder_id, "f/1");
    ASSERT_STREQ(s.last_search, "gear box");
    ASSERT_EQ(s.page, 3);
    ASSERT_EQ(s.n_state, 2);
    ASSERT_EQ(s.version, 3);
    session_free(&s);
    struct store_update u3 = {.chat_id = 404, .expected_version = 1};
    ASSERT_EQ(store_update(st, &u3, &s, NULL, NULL, &f), STORE_ENOTFOUND);
    store_free(st);
}

TEST(state_delete_clear_and_limits)
{
    struct store *st = mk(100, 3, 20);
    touch(st, 1, 1);
    struct session s;
    struct store_fail f;
    struct session_kv set[] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
    struct store_update u = {.chat_id = 1, .expected_version = 1, .n_set = 3, .set = set};
    ASSERT_EQ(store_update(st, &u, &s, NULL, NULL, &f), STORE_OK);
    session_free(&s);
    struct session_kv one[] = {{"d", "4"}};
    struct store_update u2 = {.chat_id = 1, .expected_version = 2, .n_set = 1, .set = one};
    ASSERT_EQ(store_update(st, &u2, &s, NULL, NULL, &f), STORE_EKEYS);
    ASSERT_EQ(f.keys, 4);
    const char *del[] = {"b", "zz"};
    u2.n_delete = 2;
    u2.delete_keys = del;
    ASSERT_EQ(store_update(st, &u2, &s, NULL, NULL, &f), STORE_OK);
    ASSERT_EQ(s.n_state, 3);
    ASSERT_STREQ(s.state[0].key, "a");
    ASSERT_STREQ(s.state[1].key, "c");
    ASSERT_STREQ(s.state[2].key, "d");
    session_free(&s);
    struct session_kv big[] = {{"k", "0123456789012345678"}}; /* 1 + 19 + a,c,d = 26 > 20 */
    struct store_update u3 = {.chat_id = 1, .expected_version = 3, .n_set = 1, .set = big};
    ASSERT_EQ(store_update(st, &u3, &s, NULL, NULL, &f), STORE_EKEYS); /* 4 keys first */
    u3.clear_state = true;
    ASSERT_EQ(store_update(st, &u3, &s, NULL, NULL, &f), STORE_OK); /* 20 bytes exactly */
    ASSERT_EQ(s.n_state, 1);
    session_free(&s);
    struct session_kv big2[] = {{"kk", "0123456789012345678"}};
    struct store_update u4 = {
        .chat_id = 1, .expected_version = 4, .clear_state = true, .n_set = 1, .set = big2};
    ASSERT_EQ(store_update(st, &u4, &s, NULL, NULL, &f), STORE_EBYTES);
    ASSERT_EQ(f.bytes, 21);
    /* Replacing a key's value counts once. */
    struct session_kv rep[] = {{"k", "x"}};
    struct store_update u5 = {.chat_id = 1, .expected_version = 4, .n_set = 1, .set = rep};
    ASSERT_EQ(store_update(st, &u5, &s, NULL, NULL, &f), STORE_OK);
    ASSERT_EQ(s.n_state, 1);
    ASSERT_STREQ(s.state[0].value, "x");
    session_free(&s);
    store_free(st);
}

TEST(delete_removes_and_counts)
{
    struct store *st = mk(100, 8, 1024);
    touch(st, 3, 1);
    ASSERT_EQ(store_delete(st, 3), STORE_OK);
    ASSERT_EQ(store_delete(st, 3), STORE_ENOTFOUND);
    ASSERT_FALSE(alive(st, 3));
    struct store_stats stt;
    store_stats(st, &stt);
    ASSERT_EQ(stt.deleted, 1);
    ASSERT_EQ(stt.active, 0);
    store_free(st);
}

TEST(list_pages_most_recent_first)
{
    struct store *st = mk(1000, 8, 1024);
    for (int i = 1; i <= 250; i++) {
        touch(st, i, 1);
        if (i % 2)
            clock_advance_ms(1000); /* pairs share a timestamp: ties broken by chat id */
    }
    struct session out[100];
    size_t n, total = 0;
    bool more;
    struct store_cursor cur, next;
    int64_t prev_ms = INT64_MAX, prev_chat = INT64_MAX;
    bool has = false;
    int pages = 0;
    do {
        store_list(st, 100, has ? &cur : NULL, 0, out, &n, &more, &next, NULL, NULL);
        for (size_t i = 0; i < n; i++) {
            bool ordered = out[i].last_active_ms < prev_ms ||
                           (out[i].last_active_ms == prev_ms && out[i].chat_id < prev_chat);
            ASSERT_TRUE(ordered);
            prev_ms = out[i].last_active_ms;
            prev_chat = out[i].chat_id;
            session_free(&out[i]);
        }
        total += n;
        cur = next;
        has = true;
        pages++;
    } while (more);
    ASSERT_EQ(total, 250);
    ASSERT_EQ(pages, 3);
    /* Idle filter: sessions idle >= 50 s (about 150 of them). */
    store_list(st, 100, NULL, 50000, out, &n, &more, &next, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(clock_now_ms() - out[i].last_active_ms >= 50000);
        session_free(&out[i]);
    }
    ASSERT_EQ(n, 100);
    ASSERT_TRUE(more);
    /* Expired sessions are not listed. */
    clock_advance_ms(HOUR - 10000); /* only the last ~10 s of touches are still alive */
    store_list(st, 100, NULL, 0, out, &n, &more, &next, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        session_free(&out[i]);
    ASSERT_TRUE(n < 100 && n > 0);
    ASSERT_FALSE(more);
    store_free(st);
}

struct sink_log {
    int puts, touches, deletes[3];
    int64_t last_chat;
};

static void test_sink(void *arg, enum store_change ch, enum store_reason why,
                      const struct session *s)
{
    struct sink_log *l = arg;
    if (ch == STORE_CH_PUT)
        l->puts++;
    else if (ch == STORE_CH_TOUCH)
        l->touches++;
    else
        l->deletes[why]++;
    l->last_chat = s->chat_id;
}

TEST(sink_sees_every_change)
{
    struct store *st = mk(2, 8, 1024);
    struct sink_log l = {0};
    store_set_sink(st, test_sink, &l);
    touch(st, 1, 1); /* put */
    touch(st, 1, 1); /* touch */
    clock_advance_ms(1);
    touch(st, 2, 1); /* put */
    clock_advance_ms(1);
    touch(st, 3, 1); /* put + evict 1 */
    struct session s;
    struct store_fail f;
    struct store_update u = {.chat_id = 3, .expected_version = 1, .has_page = true, .page = 1};
    store_update(st, &u, &s, NULL, NULL, &f); /* put */
    session_free(&s);
    u.expected_version = 1;
    store_update(st, &u, &s, NULL, NULL, &f); /* refused: nothing */
    store_delete(st, 3);                      /* delete */
    clock_advance_ms(HOUR + 1);
    store_sweep(st, clock_now_ms()); /* expire 2 */
    ASSERT_EQ(l.puts, 4);
    ASSERT_EQ(l.touches, 1);
    ASSERT_EQ(l.deletes[STORE_R_CALL], 1);
    ASSERT_EQ(l.deletes[STORE_R_EVICTED], 1);
    ASSERT_EQ(l.deletes[STORE_R_EXPIRED], 1);
    store_free(st);
}

TEST(load_orders_by_activity_and_applies_limits)
{
    struct store *st = mk(3, 8, 1024);
    struct session_kv kv[] = {{"z", "1"}, {"a", "2"}};
    for (int i = 1; i <= 5; i++) {
        struct session s = {.chat_id = i,
                            .user_id = 10 + i,
                            .created_ms = T0,
                            .last_active_ms = T0 - 1000 * (6 - i) + (i == 1 ? 10000 : 0),
                            .version = (uint64_t)i,
                            .page = (uint32_t)i,
                            .folder_id = "f",
                            .last_search = "",
                            .n_state = 2,
                            .state = kv};
        store_load_put(st, &s);
    }
    store_load_touch(st, 2, 99, T0, 7);  /* chat 2 becomes the most recent */
    store_load_touch(st, 777, 1, T0, 1); /* unknown chat: ignored */
    store_load_delete(st, 4);
    ASSERT_EQ(store_count(st), 4);
    store_load_done(st, T0);
    /* 1 (T0+5s), 2 (T0), 5 (T0-1s), 3 (T0-3s): the oldest, 3, is evicted. */
    ASSERT_EQ(store_count(st), 3);
    ASSERT_FALSE(alive(st, 3));
    struct session s;
    ASSERT_EQ(store_get(st, 2, &s, NULL, NULL), STORE_OK);
    ASSERT_EQ(s.user_id, 99);
    ASSERT_EQ(s.version, 7);
    ASSERT_STREQ(s.state[0].key, "a"); /* sorted on load */
    session_free(&s);
    store_free(st);
}

/* ---- concurrency ---------------------------------------------------------------------------- */
#define THREADS 8
#define ROUNDS  2000

struct worker {
    struct store *st;
    int id;
    atomic_int *aborted;
};

/* Each worker increments the counter in chat 1's state with CAS retries, and touches its own
 * chats; a ninth thread sweeps and lists. The final counter must equal every increment. */
static void *cas_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        for (;;) {
            struct session s;
            struct store_fail f;
            if (store_get(w->st, 1, &s, NULL, NULL) != STORE_OK)
                abort();
            long n = 0;
            for (uint32_t k = 0; k < s.n_state; k++)
                if (strcmp(s.state[k].key, "n") == 0)
                    n = strtol(s.state[k].value, NULL, 10);
            char buf[32];
            snprintf(buf, sizeof buf, "%ld", n + 1);
            struct session_kv set[] = {{"n", buf}};
            struct store_update u = {
                .chat_id = 1, .expected_version = s.version, .n_set = 1, .set = set};
            session_free(&s);
            struct session out;
            enum store_err e = store_update(w->st, &u, &out, NULL, NULL, &f);
            if (e == STORE_OK) {
                session_free(&out);
                break;
            }
            if (e != STORE_EVERSION)
                abort();
            atomic_fetch_add(w->aborted, 1);
        }
        touch(w->st, 1000 + w->id * ROUNDS + i, w->id);
    }
    return NULL;
}

static void *sweep_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 200; i++) {
        store_sweep(w->st, clock_now_ms());
        struct session out[10];
        size_t n;
        bool more;
        struct store_cursor next;
        store_list(w->st, 10, NULL, 0, out, &n, &more, &next, NULL, NULL);
        for (size_t k = 0; k < n; k++)
            session_free(&out[k]);
    }
    return NULL;
}

TEST(concurrent_cas_is_linearizable)
{
    struct store *st = mk(THREADS * ROUNDS / 2, 8, 1024); /* also forces concurrent eviction */
    clock_set_fake(false, 0);
    touch(st, 1, 1);
    atomic_int aborted = 0;
    pthread_t t[THREADS + 1];
    struct worker w[THREADS + 1];
    for (int i = 0; i <= THREADS; i++) {
        w[i] = (struct worker){st, i, &aborted};
        pthread_create(&t[i], NULL, i == THREADS ? sweep_worker : cas_worker, &w[i]);
    }
    for (int i = 0; i <= THREADS; i++)
        pthread_join(t[i], NULL);
    struct session s;
    ASSERT_EQ(store_get(st, 1, &s, NULL, NULL), STORE_OK);
    ASSERT_EQ(s.n_state, 1);
    ASSERT_EQ(strtol(s.state[0].value, NULL, 10), THREADS * ROUNDS);
    ASSERT_EQ(s.version, 1 + THREADS * ROUNDS);
    session_free(&s);
    ASSERT_TRUE(store_count(st) <= THREADS * ROUNDS / 2 + THREADS);
    struct store_stats stt;
    store_stats(st, &stt);
    ASSERT_EQ(stt.created, 1 + THREADS * ROUNDS);
    ASSERT_EQ(stt.created - stt.evicted, stt.active);
    store_free(st);
}
