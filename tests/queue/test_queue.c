/* test_queue.c -- the queue core (queue-svc/queue.c) on explicit time: lane order, one in
 * flight per lane, lanes never blocking each other, rate limits, 429 pauses, backoff, lease
 * expiry, dedupe window, both overflow policies, expiry of one job among many, dead letters,
 * durability gating, fairness. queue_check() runs after every step that changes the queue. */
#include "queue.h"
#include "test.h"

#include <stdint.h>
#include <string.h>

#define CHECK(q)                                                                                   \
    do {                                                                                           \
        const char *bad_ = queue_check(q);                                                         \
        if (bad_)                                                                                  \
            FAIL_("queue_check: %s", bad_);                                                        \
    } while (0)

static const struct rate UNLIMITED = {0, 1000, 1};

static struct queue_opts defaults(void)
{
    return (struct queue_opts){
        .max_jobs = 1000,
        .max_bytes = 1 << 20,
        .lane_max = 100,
        .default_ttl_ms = 30000,
        .max_ttl_ms = 86400000,
        .dedupe_window_ms = 600000,
        .dedupe_max = 10000,
        .max_attempts = 5,
        .lease_ms = 60000,
        .max_lease_ms = 600000,
        .max_payload = 4096,
        .dead_max = 100,
        .global = UNLIMITED,
        .chat = UNLIMITED,
        .group = UNLIMITED,
        .backoff_base_ms = 1000,
        .backoff_max_ms = 60000,
        .seed = 1,
    };
}

static enum qerr enq_full(struct queue *q, int64_t lane, int kind, const char *payload,
                          const char *key, uint32_t timeout_ms, int64_t now, struct enq_result *r)
{
    struct enq_spec s = {
        .lane_key = lane,
        .kind = kind,
        .method = "sendMessage",
        .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload),
        .dedupe_key = key,
        .timeout_ms = timeout_ms,
    };
    return queue_enqueue(q, &s, now, r);
}

/* Enqueues; returns the id (0 when refused). */
static uint64_t enq(struct queue *q, int64_t lane, const char *payload, int64_t now)
{
    struct enq_result r;
    return enq_full(q, lane, LK_PRIVATE, payload, NULL, 0, now, &r) == Q_OK ? r.id : 0;
}

static struct job *take1(struct queue *q, int64_t now)
{
    struct job *j[1];
    return queue_take(q, now, 1, 0, 1 << 20, j) ? j[0] : NULL;
}

static bool payload_is(const struct job *j, const char *p)
{
    return j && j->payload_len == strlen(p) && memcmp(j->payload, p, j->payload_len) == 0;
}

TEST(lane_keeps_order_one_in_flight)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    enq(q, 10, "a", 0);
    enq(q, 10, "b", 0);
    enq(q, 10, "c", 0);
    CHECK(q);
    const char *want[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        struct job *j = take1(q, 1);
        ASSERT_TRUE(payload_is(j, want[i]));
        ASSERT_EQ(j->state, JS_LEASED);
        ASSERT_TRUE(take1(q, 1) == NULL); /* the lane has one in flight: nothing else */
        ASSERT_EQ(queue_ack(q, j->id, j->lease_token, 1), Q_OK);
        CHECK(q);
    }
    ASSERT_TRUE(take1(q, 1) == NULL);
    queue_free(q);
}

TEST(lanes_do_not_block_each_other)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    enq(q, 1, "a1", 0);
    enq(q, 1, "a2", 0);
    enq(q, 2, "b1", 0);
    struct job *a = take1(q, 0);
    ASSERT_TRUE(payload_is(a, "a1"));
    struct job *b = take1(q, 0);
    ASSERT_TRUE(payload_is(b, "b1")); /* lane 1 is busy, lane 2 goes */
    struct job *jobs[10];
    ASSERT_EQ(queue_take(q, 0, 10, 0, 1 << 20, jobs), 0);
    CHECK(q);
    queue_free(q);
}

TEST(take_many_one_per_lane)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    for (int lane = 1; lane <= 5; lane++)
        for (int k = 0; k < 3; k++)
            enq(q, lane, "x", 0);
    struct job *jobs[100];
    size_t n = queue_take(q, 0, 100, 0, 1 << 20, jobs);
    ASSERT_EQ(n, 5);
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            ASSERT_NE(jobs[i]->lane_key, jobs[k]->lane_key);
    CHECK(q);
    queue_free(q);
}

TEST(chat_bucket_limits_a_lane)
{
    struct queue_opts o = defaults();
    o.chat = (struct rate){1, 1000, 3};
    struct queue *q = queue_new(&o, NULL, NULL);
    for (int i = 0; i < 6; i++)
        enq(q, 7, "m", 0);
    int64_t t = 0;
    int64_t at[6];
    for (int i = 0; i < 6; i++) {
        struct job *j = NULL;
        while (!(j = take1(q, t)))
            t = queue_next_ready(q, t);
        at[i] = t;
        ASSERT_EQ(queue_ack(q, j->id, j->lease_token, t), Q_OK);
    }
    /* A burst of 3 at once, then one per second. */
    ASSERT_EQ(at[0], 0);
    ASSERT_EQ(at[2], 0);
    ASSERT_EQ(at[3], 1000);
    ASSERT_EQ(at[4], 2000);
    ASSERT_EQ(at[5], 3000);
    ASSERT_TRUE(queue_counter(q, QC_WAIT_CHAT) >= 3);
    CHECK(q);
    queue_free(q);
}

TEST(group_bucket_twenty_per_minute)
{
    struct queue_opts o = defaults();
    o.group = (struct rate){20, 60000, 1};
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    for (int i = 0; i < 30; i++)
        ASSERT_EQ(enq_full(q, -100123, LK_GROUP, "g", NULL, 600000, 0, &r), Q_OK);
    int sent = 0;
    for (int64_t t = 0; t < 60000; t += 10) {
        struct job *j = take1(q, t);
        if (j) {
            sent++;
            queue_ack(q, j->id, j->lease_token, t);
        }
    }
    ASSERT_EQ(sent, 20);
    ASSERT_TRUE(queue_counter(q, QC_WAIT_GROUP) > 0);
    queue_free(q);
}

TEST(global_bucket_limits_all_lanes)
{
    struct queue_opts o = defaults();
    o.global = (struct rate){30, 1000, 10};
    struct queue *q = queue_new(&o, NULL, NULL);
    for (int lane = 1; lane <= 200; lane++)
        enq(q, lane, "x", 0);
    struct job *jobs[100];
    ASSERT_EQ(queue_take(q, 0, 100, 0, 1 << 20, jobs), 10); /* the burst */
    ASSERT_EQ(queue_take(q, 0, 100, 0, 1 << 20, jobs), 0);
    ASSERT_TRUE(queue_counter(q, QC_WAIT_GLOBAL) >= 1);
    ASSERT_EQ(queue_next_ready(q, 0), 34);                     /* 1000/30 rounded up */
    ASSERT_EQ(queue_take(q, 1000, 100, 0, 1 << 20, jobs), 10); /* capped by the burst again */
    queue_free(q);
}

TEST(pause_on_429_only_that_lane)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    enq(q, 1, "a1", 0);
    enq(q, 1, "a2", 0);
    enq(q, 2, "b1", 0);
    enq(q, 2, "b2", 0);
    struct job *a = take1(q, 0);
    ASSERT_TRUE(payload_is(a, "a1"));
    struct retry_spec rs = {.id = a->id,
                            .token = a->lease_token,
                            .retry_after_ms = 5000,
                            .error = "429 Too Many Requests"};
    struct retry_result rr;
    ASSERT_EQ(queue_retry(q, &rs, 100, &rr), Q_OK);
    ASSERT_EQ(rr.state, JS_QUEUED);
    ASSERT_EQ(rr.not_before_ms, 5100);
    CHECK(q);
    /* Lane 2 flows while lane 1 waits. */
    struct job *b = take1(q, 200);
    ASSERT_TRUE(payload_is(b, "b1"));
    queue_ack(q, b->id, b->lease_token, 200);
    b = take1(q, 200);
    ASSERT_TRUE(payload_is(b, "b2"));
    queue_ack(q, b->id, b->lease_token, 200);
    ASSERT_TRUE(take1(q, 5099) == NULL);
    ASSERT_EQ(queue_next_ready(q, 5099), 5100);
    struct job *again = take1(q, 5100);
    ASSERT_TRUE(payload_is(again, "a1")); /* the retried job first, in order */
    ASSERT_EQ(again->attempts, 2);
    ASSERT_TRUE(queue_counter(q, QC_WAIT_PAUSE) >= 1);
    struct lane_info li[4];
    bool more;
    ASSERT_EQ(queue_list_lanes(q, false, 0, 4, li, &more, 5100), 1);
    CHECK(q);
    queue_free(q);
}

TEST(retry_backs_off_exponentially)
{
    struct queue_opts o = defaults();
    o.max_attempts = 10;
    struct queue *q = queue_new(&o, NULL, NULL);
    enq(q, 1, "a", 0);
    int64_t t = 0, prev_gap = 0;
    for (int i = 1; i <= 4; i++) {
        struct job *j = NULL;
        while (!(j = take1(q, t)))
            t = queue_next_ready(q, t);
        struct retry_spec rs = {.id = j->id, .token = j->lease_token, .error = "502"};
        struct retry_result rr;
        ASSERT_EQ(queue_retry(q, &rs, t, &rr), Q_OK);
        int64_t gap = rr.not_before_ms - t;
        int64_t full = 1000LL << (i - 1);
        ASSERT_TRUE(gap >= full / 2 && gap <= full);
        ASSERT_TRUE(gap > prev_gap / 2);
        prev_gap = gap;
    }
    ASSERT_EQ(queue_counter(q, QC_RETRIED_BACKOFF), 4);
    CHECK(q);
    queue_free(q);
}

TEST(lease_expiry_returns_the_job)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t id = enq(q, 1, "a", 0);
    enq(q, 1, "b", 0);
    struct job *j[1];
    ASSERT_EQ(queue_take(q, 0, 1, 1000, 1 << 20, j), 1);
    uint64_t token = j[0]->lease_token;
    ASSERT_EQ(queue_next_tick(q), 1000);
    queue_tick(q, 999);
    ASSERT_EQ(queue_find(q, id)->state, JS_LEASED);
    queue_tick(q, 1000);
    ASSERT_EQ(queue_find(q, id)->state, JS_QUEUED);
    ASSERT_EQ(queue_counter(q, QC_LEASE_EXPIRED), 1);
    CHECK(q);
    ASSERT_EQ(queue_ack(q, id, token, 1001), Q_ELEASE);
    ASSERT_CONTAINS(queue_errstr(q), "went back to lane 1");
    struct job *again = take1(q, 1001);
    ASSERT_TRUE(again && again->id == id); /* still first in its lane */
    ASSERT_EQ(again->attempts, 2);
    ASSERT_NE(again->lease_token, token);
    ASSERT_EQ(queue_ack(q, id, token, 1001), Q_ELEASE);
    uint64_t token2 = again->lease_token;
    ASSERT_EQ(queue_ack(q, id, token2, 1001), Q_OK); /* frees the job */
    ASSERT_EQ(queue_ack(q, id, token2, 1001), Q_ENOTFOUND);
    CHECK(q);
    queue_free(q);
}

TEST(dedupe_within_window)
{
    struct queue_opts o = defaults();
    o.dedupe_window_ms = 10000;
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r1, r2, r3, r4;
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", "upd-1", 0, 0, &r1), Q_OK);
    ASSERT_FALSE(r1.duplicate);
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", "upd-1", 0, 100, &r2), Q_OK);
    ASSERT_TRUE(r2.duplicate);
    ASSERT_EQ(r2.id, r1.id);
    ASSERT_EQ(r2.state, JS_QUEUED);
    ASSERT_EQ(queue_counter(q, QC_DEDUPLICATED), 1);
    ASSERT_EQ(queue_counter(q, QC_ENQUEUED), 1);
    struct job *j = take1(q, 200);
    ASSERT_EQ(queue_ack(q, j->id, j->lease_token, 200), Q_OK);
    /* Done, still within the window: same answer, DONE, no second send. */
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", "upd-1", 0, 9999, &r3), Q_OK);
    ASSERT_TRUE(r3.duplicate);
    ASSERT_EQ(r3.state, JS_DONE);
    ASSERT_TRUE(take1(q, 9999) == NULL);
    queue_tick(q, 10000);
    CHECK(q);
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", "upd-1", 0, 10000, &r4), Q_OK);
    ASSERT_FALSE(r4.duplicate);
    ASSERT_NE(r4.id, r1.id);
    CHECK(q);
    queue_free(q);
}

TEST(dedupe_outlives_window_while_job_is_queued)
{
    struct queue_opts o = defaults();
    o.dedupe_window_ms = 1000;
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r1, r2;
    enq(q, 1, "blocker", 0);
    take1(q, 0); /* the lane is busy: the next job waits past the window */
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", "k", 60000, 0, &r1), Q_OK);
    queue_tick(q, 5000);
    CHECK(q);
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", "k", 60000, 5000, &r2), Q_OK);
    ASSERT_TRUE(r2.duplicate); /* a second job would be a second send */
    ASSERT_EQ(r2.id, r1.id);
    ASSERT_EQ(r2.position, 1);
    /* Once that job is dead (past the window), the key is free again. Found by the fuzzer. */
    struct job *blocker = queue_find(q, 1) ? (struct job *)queue_find(q, 1) : NULL;
    ASSERT_EQ(queue_ack(q, blocker->id, blocker->lease_token, 5000), Q_OK);
    struct job *k = take1(q, 5000);
    ASSERT_EQ(k->id, r1.id);
    ASSERT_EQ(queue_fail(q, k->id, k->lease_token, "no", 5000), Q_OK);
    CHECK(q);
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", "k", 60000, 5000, &r2), Q_OK);
    ASSERT_FALSE(r2.duplicate);
    CHECK(q);
    queue_free(q);
}

TEST(overflow_reject_lane_and_queue)
{
    struct queue_opts o = defaults();
    o.lane_max = 2;
    o.max_jobs = 3;
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    ASSERT_NE(enq(q, -100123, "1", 0), 0);
    ASSERT_NE(enq(q, -100123, "2", 0), 0);
    ASSERT_EQ(enq_full(q, -100123, LK_PRIVATE, "3", NULL, 0, 0, &r), Q_EFULL);
    ASSERT_CONTAINS(queue_errstr(q), "lane -100123 is full (2 jobs, LANE_MAX_SIZE=2)");
    ASSERT_NE(enq(q, 5, "4", 0), 0);
    ASSERT_EQ(enq_full(q, 6, LK_PRIVATE, "5", NULL, 0, 0, &r), Q_EFULL);
    ASSERT_CONTAINS(queue_errstr(q), "queue is full (3 jobs, QUEUE_MAX_SIZE=3)");
    ASSERT_EQ(queue_counter(q, QC_REJ_LANE_FULL), 1);
    ASSERT_EQ(queue_counter(q, QC_REJ_QUEUE_FULL), 1);
    /* Recovers once there is room. */
    struct job *j = take1(q, 0);
    ASSERT_EQ(queue_ack(q, j->id, j->lease_token, 0), Q_OK);
    ASSERT_NE(enq(q, 6, "5", 0), 0);
    CHECK(q);
    queue_free(q);
}

TEST(overflow_reject_bytes)
{
    struct queue_opts o = defaults();
    o.max_bytes = 10;
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    ASSERT_NE(enq(q, 1, "12345678", 0), 0);
    ASSERT_EQ(enq_full(q, 2, LK_PRIVATE, "123", NULL, 0, 0, &r), Q_EFULL);
    ASSERT_CONTAINS(queue_errstr(q), "QUEUE_MAX_BYTES=10");
    ASSERT_EQ(queue_counter(q, QC_REJ_BYTES_FULL), 1);
    queue_free(q);
}

TEST(overflow_drop_oldest_lane)
{
    struct queue_opts o = defaults();
    o.lane_max = 3;
    o.drop_oldest = true;
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t a = enq(q, 1, "a", 0);
    uint64_t b = enq(q, 1, "b", 0);
    uint64_t c = enq(q, 1, "c", 0);
    struct job *ja = take1(q, 0); /* a is in flight: it is never the one dropped */
    ASSERT_EQ(ja->id, a);
    uint64_t d = enq(q, 1, "d", 0);
    ASSERT_NE(d, 0);
    ASSERT_TRUE(queue_find(q, b) == NULL);
    ASSERT_TRUE(queue_find(q, a) != NULL);
    ASSERT_TRUE(queue_find(q, c) != NULL);
    ASSERT_EQ(queue_counter(q, QC_DROP_LANE_FULL), 1);
    CHECK(q);
    queue_ack(q, a, ja->lease_token, 0);
    ASSERT_TRUE(payload_is(take1(q, 0), "c"));
    queue_free(q);
}

TEST(overflow_drop_oldest_queue)
{
    struct queue_opts o = defaults();
    o.max_jobs = 3;
    o.drop_oldest = true;
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t a = enq(q, 1, "a", 0);
    uint64_t b = enq(q, 2, "b", 0);
    uint64_t c = enq(q, 3, "c", 0);
    struct job *ja = take1(q, 0);
    ASSERT_EQ(ja->id, a);
    uint64_t d = enq(q, 4, "d", 0);
    ASSERT_NE(d, 0);
    ASSERT_TRUE(queue_find(q, a) != NULL); /* leased: kept */
    ASSERT_TRUE(queue_find(q, b) == NULL); /* the oldest queued */
    ASSERT_TRUE(queue_find(q, c) != NULL);
    ASSERT_EQ(queue_counter(q, QC_DROP_QUEUE_FULL), 1);
    CHECK(q);
    /* Nothing queued to drop (all leased): rejected even under drop-oldest. */
    struct job *jobs[10];
    queue_take(q, 0, 10, 0, 1 << 20, jobs);
    struct enq_result r;
    ASSERT_EQ(enq_full(q, 9, LK_PRIVATE, "e", NULL, 0, 0, &r), Q_EFULL);
    CHECK(q);
    queue_free(q);
}

TEST(expiry_removes_one_job_among_many)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    enq_full(q, 1, LK_PRIVATE, "head", NULL, 60000, 0, &r);
    struct job *head = take1(q, 0); /* keeps the lane busy */
    enq_full(q, 1, LK_PRIVATE, "x1", NULL, 60000, 0, &r);
    enq_full(q, 1, LK_PRIVATE, "short", NULL, 500, 0, &r);
    uint64_t short_id = r.id;
    enq_full(q, 1, LK_PRIVATE, "x2", NULL, 60000, 0, &r);
    for (int lane = 2; lane < 20; lane++)
        enq_full(q, lane, LK_PRIVATE, "other", NULL, 60000, 0, &r);
    ASSERT_EQ(queue_next_tick(q), 500);
    queue_tick(q, 500);
    ASSERT_TRUE(queue_find(q, short_id) == NULL);
    ASSERT_EQ(queue_counter(q, QC_EXPIRED), 1);
    struct queue_stats st;
    queue_stats(q, &st);
    ASSERT_EQ(st.queued, 2 + 18);
    ASSERT_EQ(st.leased, 1);
    CHECK(q);
    queue_ack(q, head->id, head->lease_token, 501);
    struct lane_info li;
    const struct job *jobs[8];
    size_t n;
    ASSERT_EQ(queue_peek(q, 1, 8, &li, jobs, &n, 501), Q_OK);
    ASSERT_EQ(n, 2);
    ASSERT_TRUE(payload_is((struct job *)jobs[0], "x1"));
    ASSERT_TRUE(payload_is((struct job *)jobs[1], "x2"));
    queue_free(q);
}

TEST(expired_head_frees_its_lane)
{
    struct queue_opts o = defaults();
    o.chat = (struct rate){1, 1000, 1};
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    enq_full(q, 1, LK_PRIVATE, "first", NULL, 60000, 0, &r);
    struct job *j = take1(q, 0);
    queue_ack(q, j->id, j->lease_token, 0);
    enq_full(q, 1, LK_PRIVATE, "dies", NULL, 100, 0, &r);
    enq_full(q, 1, LK_PRIVATE, "lives", NULL, 60000, 0, &r);
    queue_tick(q, 100);
    CHECK(q);
    ASSERT_TRUE(take1(q, 999) == NULL); /* still the chat's bucket */
    ASSERT_TRUE(payload_is(take1(q, 1000), "lives"));
    queue_free(q);
}

TEST(dead_letters_after_max_attempts_and_requeue)
{
    struct queue_opts o = defaults();
    o.max_attempts = 2;
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t id = enq(q, 1, "a", 0);
    int64_t t = 0;
    struct retry_result rr;
    for (int i = 0; i < 2; i++) {
        struct job *j = NULL;
        while (!(j = take1(q, t)))
            t = queue_next_ready(q, t);
        struct retry_spec rs = {.id = id, .token = j->lease_token, .error = "HTTP 502"};
        ASSERT_EQ(queue_retry(q, &rs, t, &rr), Q_OK);
    }
    ASSERT_EQ(rr.state, JS_DEAD);
    ASSERT_EQ(queue_counter(q, QC_DEAD_MAX_ATTEMPTS), 1);
    const struct job *dl[4];
    bool more;
    ASSERT_EQ(queue_dead_letters(q, 0, 4, dl, &more), 1);
    ASSERT_EQ(dl[0]->id, id);
    ASSERT_CONTAINS(dl[0]->last_error, "HTTP 502");
    ASSERT_CONTAINS(dl[0]->last_error, "MAX_ATTEMPTS=2");
    CHECK(q);
    const struct job *back;
    ASSERT_EQ(queue_requeue_dead(q, id, t, &back), Q_OK);
    ASSERT_EQ(back->attempts, 0);
    ASSERT_EQ(back->state, JS_QUEUED);
    ASSERT_EQ(queue_requeue_dead(q, id, t, &back), Q_ENOTFOUND);
    struct job *j = take1(q, t);
    ASSERT_TRUE(j && j->id == id);
    ASSERT_EQ(queue_fail(q, id, j->lease_token, "Forbidden: bot was blocked by the user", t), Q_OK);
    ASSERT_EQ(queue_counter(q, QC_DEAD_FAILED), 1);
    ASSERT_EQ(queue_dead_letters(q, 0, 4, dl, &more), 1);
    CHECK(q);
    queue_free(q);
}

TEST(rate_limited_retries_are_not_held_against_the_job)
{
    struct queue_opts o = defaults();
    o.max_attempts = 2;
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t id = enq(q, 1, "a", 0);
    int64_t t = 0;
    struct retry_result rr;
    for (int i = 0; i < 5; i++) {
        struct job *j = NULL;
        while (!(j = take1(q, t)))
            t = queue_next_ready(q, t);
        struct retry_spec rs = {.id = id, .token = j->lease_token, .retry_after_ms = 1000};
        ASSERT_EQ(queue_retry(q, &rs, t, &rr), Q_OK);
        ASSERT_EQ(rr.state, JS_QUEUED);
    }
    ASSERT_EQ(queue_find(q, id)->attempts, 5);
    queue_free(q);
}

TEST(dead_letter_list_is_bounded)
{
    struct queue_opts o = defaults();
    o.dead_max = 3;
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t first = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t id = enq(q, 100 + i, "x", 0);
        if (!first)
            first = id;
        struct job *j = take1(q, 0);
        ASSERT_EQ(queue_fail(q, j->id, j->lease_token, "no", 0), Q_OK);
    }
    struct queue_stats st;
    queue_stats(q, &st);
    ASSERT_EQ(st.dead, 3);
    ASSERT_TRUE(queue_find(q, first) == NULL);
    ASSERT_EQ(queue_counter(q, QC_DROP_DEAD_FULL), 2);
    const struct job *dl[10];
    bool more;
    ASSERT_EQ(queue_dead_letters(q, 0, 2, dl, &more), 2);
    ASSERT_TRUE(more);
    ASSERT_EQ(queue_dead_letters(q, dl[1]->dead_seq, 10, dl, &more), 1);
    ASSERT_FALSE(more);
    CHECK(q);
    queue_free(q);
}

TEST(lease_expiry_counts_toward_attempts)
{
    struct queue_opts o = defaults();
    o.max_attempts = 2;
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t id = enq(q, 1, "poison", 0);
    struct job *j[1];
    ASSERT_EQ(queue_take(q, 0, 1, 100, 1 << 20, j), 1);
    queue_tick(q, 100);
    ASSERT_EQ(queue_take(q, 100, 1, 100, 1 << 20, j), 1);
    queue_tick(q, 200);
    ASSERT_EQ(queue_find(q, id)->state, JS_DEAD); /* a sender that crashes on it twice */
    CHECK(q);
    queue_free(q);
}

TEST(purge_keeps_the_job_in_flight)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t a = enq(q, 1, "a", 0);
    enq(q, 1, "b", 0);
    enq(q, 1, "c", 0);
    enq(q, 2, "z", 0);
    struct job *ja = take1(q, 0);
    ASSERT_EQ(ja->id, a);
    ASSERT_EQ(queue_purge(q, 1, 0), 2);
    ASSERT_EQ(queue_counter(q, QC_PURGED), 2);
    CHECK(q);
    struct lane_info li;
    const struct job *jobs[10];
    size_t n;
    ASSERT_EQ(queue_peek(q, 1, 10, &li, jobs, &n, 0), Q_OK);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(li.in_flight, 1);
    ASSERT_EQ(li.queued, 0);
    ASSERT_EQ(queue_ack(q, a, ja->lease_token, 0), Q_OK);
    ASSERT_EQ(queue_peek(q, 1, 10, &li, jobs, &n, 0), Q_ENOTFOUND);
    ASSERT_EQ(queue_purge(q, 99, 0), 0);
    CHECK(q);
    queue_free(q);
}

TEST(migrate_moves_job_to_the_new_chat)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, NULL, NULL);
    uint64_t id = enq(q, -100, "to group", 0);
    enq(q, -200, "already there", 0);
    struct job *j = take1(q, 0);
    ASSERT_EQ(j->id, id);
    struct retry_spec rs = {.id = id,
                            .token = j->lease_token,
                            .retry_after_ms = 1,
                            .new_lane_key = -200,
                            .new_payload = (const uint8_t *)"new",
                            .new_payload_len = 3,
                            .has_new_payload = true};
    struct retry_result rr;
    ASSERT_EQ(queue_retry(q, &rs, 0, &rr), Q_OK);
    ASSERT_EQ(queue_find(q, id)->lane_key, -200);
    CHECK(q);
    struct lane_info li;
    const struct job *jobs[10];
    size_t n;
    ASSERT_EQ(queue_peek(q, -200, 10, &li, jobs, &n, 0), Q_OK);
    ASSERT_EQ(n, 2);
    ASSERT_TRUE(payload_is((struct job *)jobs[1], "new"));
    ASSERT_EQ(queue_peek(q, -100, 10, &li, jobs, &n, 0), Q_ENOTFOUND);
    queue_free(q);
}

TEST(invalid_requests)
{
    struct queue_opts o = defaults();
    o.max_payload = 8;
    o.max_ttl_ms = 1000;
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    ASSERT_EQ(enq_full(q, 0, LK_PRIVATE, "a", NULL, 0, 0, &r), Q_EINVAL);
    ASSERT_CONTAINS(queue_errstr(q), "lane_key is required");
    ASSERT_EQ(enq_full(q, 1, 9, "a", NULL, 0, 0, &r), Q_EINVAL);
    ASSERT_CONTAINS(queue_errstr(q), "LaneKind");
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "123456789", NULL, 0, 0, &r), Q_EINVAL);
    ASSERT_CONTAINS(queue_errstr(q), "MAX_PAYLOAD=8");
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", NULL, 2000, 0, &r), Q_EINVAL);
    struct enq_spec s = {.lane_key = 1, .method = "send message", .payload = NULL};
    ASSERT_EQ(queue_enqueue(q, &s, 0, &r), Q_EINVAL);
    s.method = "";
    ASSERT_EQ(queue_enqueue(q, &s, 0, &r), Q_EINVAL);
    char key[400];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    ASSERT_EQ(enq_full(q, 1, LK_PRIVATE, "a", key, 0, 0, &r), Q_EINVAL);
    ASSERT_EQ(queue_counter(q, QC_REJ_INVALID), 7);
    ASSERT_EQ(queue_ack(q, 12345, 1, 0), Q_ENOTFOUND);
    CHECK(q);
    queue_free(q);
}

TEST(fairness_busy_lane_does_not_delay_others)
{
    /* One chat with 5,000 queued messages (unlimited per chat, so only the global bucket
     * holds it back) and another chat's single message: the single one goes next. */
    struct queue_opts o = defaults();
    o.lane_max = 10000;
    o.max_jobs = 10000;
    o.global = (struct rate){30, 1000, 1};
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(enq_full(q, 1, LK_UNLIMITED, "busy", NULL, 600000, 0, &r), Q_OK);
    int64_t t = 0;
    for (int i = 0; i < 10; i++) { /* the busy lane is flowing */
        struct job *j = NULL;
        while (!(j = take1(q, t)))
            t = queue_next_ready(q, t);
        queue_ack(q, j->id, j->lease_token, t);
    }
    ASSERT_EQ(enq_full(q, 2, LK_PRIVATE, "single", NULL, 600000, t, &r), Q_OK);
    int64_t enq_at = t;
    int before = 0;
    for (;;) {
        struct job *j = NULL;
        while (!(j = take1(q, t)))
            t = queue_next_ready(q, t);
        if (j->lane_key == 2)
            break;
        before++;
        queue_ack(q, j->id, j->lease_token, t);
    }
    ASSERT_TRUE(before <= 1);
    ASSERT_TRUE(t - enq_at <= 2 * 34); /* within two global tokens */
    CHECK(q);
    queue_free(q);
}

/* A sink that never makes anything durable (the log is slow). */
static uint64_t last_seq_seen;
static void slow_sink(void *arg, const struct qevent *ev)
{
    last_seq_seen = ev->seq;
}

TEST(nothing_leased_before_it_is_durable)
{
    struct queue_opts o = defaults();
    struct queue *q = queue_new(&o, slow_sink, NULL);
    uint64_t a = enq(q, 1, "a", 0);
    uint64_t seq_a = last_seq_seen;
    enq(q, 2, "b", 0);
    ASSERT_TRUE(take1(q, 0) == NULL);
    CHECK(q);
    queue_set_durable(q, seq_a, 1);
    struct job *j = take1(q, 1);
    ASSERT_TRUE(j && j->id == a);
    ASSERT_TRUE(take1(q, 1) == NULL); /* b's record is not on disk yet */
    queue_set_durable(q, last_seq_seen, 2);
    ASSERT_TRUE(payload_is(take1(q, 2), "b"));
    CHECK(q);
    queue_free(q);
}

TEST(idle_lanes_are_forgotten_once_their_bucket_is_full)
{
    struct queue_opts o = defaults();
    o.chat = (struct rate){1, 1000, 3};
    struct queue *q = queue_new(&o, NULL, NULL);
    enq(q, 1, "a", 0);
    struct job *j = take1(q, 0);
    queue_ack(q, j->id, j->lease_token, 0);
    /* Empty but remembered: a new message right away must not get a fresh burst. */
    ASSERT_EQ(queue_next_tick(q), 1000);
    queue_tick(q, 999);
    enq(q, 1, "b", 999);
    enq(q, 1, "c", 999);
    enq(q, 1, "d", 999);
    int got = 0;
    for (;;) {
        struct job *x = take1(q, 999);
        if (!x)
            break;
        got++;
        queue_ack(q, x->id, x->lease_token, 999);
    }
    ASSERT_EQ(got, 2); /* 3 - 1 + 0.999 tokens */
    queue_free(q);
}

/* A job that could not go out before its deadline at the configured rates is refused at once
 * (drills F7: accepted jobs used to expire unanswered), by the lane's pace and the global one. */
TEST(refuses_a_job_that_would_expire_before_its_turn)
{
    struct queue_opts o = defaults();
    o.group = (struct rate){20, 60000, 1};   /* one every 3 s */
    o.global = (struct rate){30, 1000, 10};  /* one every 33 ms */
    o.default_ttl_ms = 30000;
    struct queue *q = queue_new(&o, NULL, NULL);
    struct enq_result r;
    int accepted = 0;
    for (int i = 0; i < 20; i++)
        if (enq_full(q, -100123, LK_GROUP, "g", NULL, 0, 0, &r) == Q_OK)
            accepted++;
    /* 9 ahead x 3 s = 27 s, 90% of the 30 s: the 10th still makes it, the 11th not (the 10%
     * is for jobs that arrive later in shorter lanes and go first). */
    ASSERT_EQ(accepted, 10);
    ASSERT_EQ(queue_counter(q, QC_REJ_DEADLINE), 10);
    ASSERT_CONTAINS(queue_errstr(q), "expires in 30 s");
    /* A longer timeout is accepted; another lane is not affected by this one's backlog. */
    ASSERT_EQ(enq_full(q, -100123, LK_GROUP, "g", NULL, 600000, 0, &r), Q_OK);
    ASSERT_EQ(enq_full(q, 42, LK_PRIVATE, "p", NULL, 0, 0, &r), Q_OK);
    /* The global pace: 1000 jobs ahead at 30/s is ~33 s. */
    struct queue_opts o2 = defaults();
    o2.global = (struct rate){30, 1000, 10};
    o2.max_jobs = 5000;
    o2.lane_max = 5000;
    struct queue *q2 = queue_new(&o2, NULL, NULL);
    int ok2 = 0;
    for (int i = 0; i < 1000; i++)
        ok2 += enq_full(q2, 1000 + i, LK_PRIVATE, "x", NULL, 0, 0, &r) == Q_OK;
    ASSERT_EQ(ok2, 811); /* 810 ahead = 27 s, 90% of 30 s */
    queue_free(q);
    queue_free(q2);
}
