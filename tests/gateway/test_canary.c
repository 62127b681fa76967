/* test_canary.c -- gateway/canary.c: stable buckets, list and percentage selection. */
#include "canary.h"
#include "test.h"

TEST(bucket_is_stable_and_in_range)
{
    /* Pinned values: changing the hash would move users between stable and canary. */
    ASSERT_EQ(canary_bucket(42), canary_bucket(42));
    for (int64_t id = -1000; id < 1000; id++)
        ASSERT_TRUE(canary_bucket(id) < 10000);
    ASSERT_EQ(canary_bucket(0), 7535);
    ASSERT_EQ(canary_bucket(-1001234567890LL), canary_bucket(-1001234567890LL));
}

TEST(list_selects_exactly_the_listed_chats)
{
    int64_t ids[] = {5, -1001234567890LL};
    struct canary_rule r = {.chat_ids = ids, .n_chat_ids = 2, .percent = 0};
    ASSERT_TRUE(canary_selects(&r, 5));
    ASSERT_TRUE(canary_selects(&r, -1001234567890LL));
    ASSERT_FALSE(canary_selects(&r, 6));
}

TEST(percentage_selects_about_that_share)
{
    struct canary_rule r = {.percent = 10};
    int hit = 0;
    for (int64_t id = 1; id <= 100000; id++)
        hit += canary_selects(&r, id * 7919);
    ASSERT_TRUE(hit > 9000 && hit < 11000);
    r.percent = 0;
    ASSERT_FALSE(canary_selects(&r, 1));
    r.percent = 100;
    ASSERT_TRUE(canary_selects(&r, 1));
}

TEST(percentage_groups_are_nested)
{
    /* Raising the percentage only adds chats: nobody flips back to stable. */
    struct canary_rule a = {.percent = 5}, b = {.percent = 20};
    for (int64_t id = 1; id <= 20000; id++)
        if (canary_selects(&a, id))
            ASSERT_TRUE(canary_selects(&b, id));
}
