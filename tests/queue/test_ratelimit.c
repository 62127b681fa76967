/* test_ratelimit.c -- token buckets and backoff (queue-svc/ratelimit.c), on explicit time. */
#include "ratelimit.h"
#include "test.h"

static struct rate R(int64_t n, int64_t period, int64_t burst) {
    return (struct rate){n, period, burst};
}

TEST(rate_parse_forms)
{
    struct rate r = {0};
    char why[128];
    ASSERT_TRUE(rate_parse("30/s", &r, why, sizeof why));
    ASSERT_EQ(r.n, 30);
    ASSERT_EQ(r.period_ms, 1000);
    ASSERT_TRUE(rate_parse("20/min", &r, why, sizeof why));
    ASSERT_EQ(r.n, 20);
    ASSERT_EQ(r.period_ms, 60000);
    ASSERT_TRUE(rate_parse("100/h", &r, why, sizeof why));
    ASSERT_EQ(r.period_ms, 3600000);
    ASSERT_TRUE(rate_parse("0", &r, why, sizeof why));
    ASSERT_TRUE(rate_unlimited(&r));
    ASSERT_FALSE(rate_parse("30", &r, why, sizeof why));
    ASSERT_CONTAINS(why, "30/s");
    ASSERT_FALSE(rate_parse("30/fortnight", &r, why, sizeof why));
    ASSERT_FALSE(rate_parse("-1/s", &r, why, sizeof why));
    ASSERT_FALSE(rate_parse("", &r, why, sizeof why));
    ASSERT_FALSE(rate_parse("x/s", &r, why, sizeof why));
}

TEST(bucket_burst_then_rate)
{
    /* Telegram's private-chat limit: 1/s with a burst of 3. */
    struct rate r = R(1, 1000, 3);
    struct bucket b;
    bucket_init(&b, &r, 0);
    ASSERT_TRUE(bucket_take(&b, &r, 0));
    ASSERT_TRUE(bucket_take(&b, &r, 0));
    ASSERT_TRUE(bucket_take(&b, &r, 0));
    ASSERT_FALSE(bucket_take(&b, &r, 0));
    ASSERT_EQ(bucket_ready_at(&b, &r, 0), 1000);
    ASSERT_FALSE(bucket_take(&b, &r, 999));
    ASSERT_TRUE(bucket_take(&b, &r, 1000)); /* ready_at is exact */
    ASSERT_EQ(bucket_ready_at(&b, &r, 1000), 2000);
    ASSERT_EQ(bucket_full_at(&b, &r, 1000), 4000);
}

TEST(bucket_group_twenty_per_minute)
{
    /* 20/min, burst 1: one every 3 s, never more than 21 in a closed minute. */
    struct rate r = R(20, 60000, 1);
    struct bucket b;
    bucket_init(&b, &r, 0);
    int sent = 0;
    for (int64_t t = 0; t <= 60000; t += 100)
        sent += bucket_take(&b, &r, t);
    ASSERT_EQ(sent, 21);
    ASSERT_EQ(bucket_ready_at(&b, &r, 60000), 63000);
}

TEST(bucket_global_thirty_per_second)
{
    struct rate r = R(30, 1000, 10);
    struct bucket b;
    bucket_init(&b, &r, 0);
    int sent = 0;
    for (int64_t t = 0; t < 10000; t++)
        while (bucket_take(&b, &r, t))
            sent++;
    /* The burst of 10 at t=0, then exactly 30/s: 9999 ms * 30/s = 299.97 tokens. */
    ASSERT_EQ(sent, 10 + 299);
}

TEST(bucket_of_one_rounds_in_telegrams_favour)
{
    /* With room for a single token, a token that arrives between two milliseconds cannot be
     * stored past its capacity: the rate comes out a little under the limit, never over. */
    struct rate r = R(30, 1000, 1);
    struct bucket b;
    bucket_init(&b, &r, 0);
    int sent = 0;
    for (int64_t t = 0; t < 10000; t++)
        while (bucket_take(&b, &r, t))
            sent++;
    ASSERT_TRUE(sent >= 290 && sent <= 300);
}

TEST(bucket_fractional_refill_is_exact)
{
    /* 3 per 1000 ms: a token every 333.33 ms; ready_at rounds up, never down. */
    struct rate r = R(3, 1000, 1);
    struct bucket b;
    bucket_init(&b, &r, 0);
    ASSERT_TRUE(bucket_take(&b, &r, 0));
    int64_t t = bucket_ready_at(&b, &r, 0);
    ASSERT_EQ(t, 334);
    ASSERT_FALSE(bucket_take(&b, &r, t - 1));
    ASSERT_TRUE(bucket_take(&b, &r, t));
}

TEST(bucket_long_idle_no_overflow)
{
    struct rate r = R(1000000, 1, 5);
    struct bucket b;
    bucket_init(&b, &r, 0);
    for (int i = 0; i < 5; i++)
        ASSERT_TRUE(bucket_take(&b, &r, 0));
    ASSERT_FALSE(bucket_take(&b, &r, 0));
    /* A year later the bucket is full, not wrapped around. */
    int64_t later = 365LL * 86400 * 1000;
    for (int i = 0; i < 5; i++)
        ASSERT_TRUE(bucket_take(&b, &r, later));
    ASSERT_FALSE(bucket_take(&b, &r, later));
}

TEST(bucket_time_going_back_is_ignored)
{
    struct rate r = R(1, 1000, 1);
    struct bucket b;
    bucket_init(&b, &r, 5000);
    ASSERT_TRUE(bucket_take(&b, &r, 5000));
    ASSERT_FALSE(bucket_take(&b, &r, 1000));
    ASSERT_TRUE(bucket_take(&b, &r, 6000));
}

TEST(unlimited_always_ready)
{
    struct rate r = R(0, 1000, 1);
    struct bucket b;
    bucket_init(&b, &r, 0);
    for (int i = 0; i < 1000; i++)
        ASSERT_TRUE(bucket_take(&b, &r, 0));
    ASSERT_EQ(bucket_ready_at(&b, &r, 7), 7);
}

TEST(backoff_doubles_with_bounded_jitter)
{
    uint64_t rng = 42;
    for (int i = 0; i < 200; i++) {
        int64_t d1 = backoff_ms(1, 1000, 60000, &rng);
        int64_t d3 = backoff_ms(3, 1000, 60000, &rng);
        int64_t d20 = backoff_ms(20, 1000, 60000, &rng);
        ASSERT_TRUE(d1 >= 500 && d1 <= 1000);
        ASSERT_TRUE(d3 >= 2000 && d3 <= 4000);
        ASSERT_TRUE(d20 >= 30000 && d20 <= 60000);
    }
    /* Jitter really spreads retries. */
    int64_t a = backoff_ms(5, 1000, 60000, &rng), same = 0;
    for (int i = 0; i < 20; i++)
        same += backoff_ms(5, 1000, 60000, &rng) == a;
    ASSERT_TRUE(same < 5);
}
