/* test_breaker.c -- gateway/breaker.c: opens after consecutive failures, fails fast, probes
 * once when half-open, doubles the open period on a failed probe, closes on success. */
#include "breaker.h"
#include "clock.h"
#include "test.h"

TEST(opens_after_threshold_and_recovers)
{
    clock_set_fake(true, 1700000000000LL);
    struct breaker b;
    breaker_init(&b, 3, 1000, 8000);
    ASSERT_TRUE(breaker_allow(&b));
    breaker_failure(&b);
    breaker_failure(&b);
    ASSERT_EQ(breaker_state(&b), BREAKER_CLOSED);
    breaker_success(&b); /* success resets the count */
    breaker_failure(&b);
    breaker_failure(&b);
    ASSERT_EQ(breaker_state(&b), BREAKER_CLOSED);
    breaker_failure(&b);
    ASSERT_EQ(breaker_state(&b), BREAKER_OPEN);
    ASSERT_FALSE(breaker_allow(&b));
    clock_advance_ms(999);
    ASSERT_FALSE(breaker_allow(&b));
    clock_advance_ms(1);
    ASSERT_EQ(breaker_state(&b), BREAKER_HALF_OPEN);
    ASSERT_TRUE(breaker_allow(&b));  /* the probe */
    ASSERT_FALSE(breaker_allow(&b)); /* only one at a time */
    breaker_success(&b);
    ASSERT_EQ(breaker_state(&b), BREAKER_CLOSED);
    ASSERT_EQ(breaker_opens(&b), 1);
    breaker_destroy(&b);
    clock_set_fake(false, 0);
}

TEST(failed_probe_doubles_open_period_up_to_max)
{
    clock_set_fake(true, 1700000000000LL);
    struct breaker b;
    breaker_init(&b, 1, 1000, 3000);
    breaker_failure(&b);
    clock_advance_ms(1000);
    ASSERT_TRUE(breaker_allow(&b));
    breaker_failure(&b); /* probe failed: open for 2 s */
    clock_advance_ms(1999);
    ASSERT_EQ(breaker_state(&b), BREAKER_OPEN);
    clock_advance_ms(1);
    ASSERT_TRUE(breaker_allow(&b));
    breaker_failure(&b); /* 4 s capped at 3 s */
    clock_advance_ms(2999);
    ASSERT_EQ(breaker_state(&b), BREAKER_OPEN);
    clock_advance_ms(1);
    ASSERT_EQ(breaker_state(&b), BREAKER_HALF_OPEN);
    ASSERT_TRUE(breaker_allow(&b));
    breaker_success(&b);
    /* After recovery the period starts again from the minimum. */
    breaker_failure(&b);
    clock_advance_ms(1000);
    ASSERT_EQ(breaker_state(&b), BREAKER_HALF_OPEN);
    breaker_destroy(&b);
    clock_set_fake(false, 0);
}
