/* test.h -- a tiny unit-test harness: one binary per module, TEST() functions registered at
 * load time, ASSERT_* that report file:line and the values, and a main() that runs all tests
 * (or those whose name contains argv[1]). Exit status 0 only when every test passed. */
#ifndef ENGBOT_TEST_H
#define ENGBOT_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void test_fn(void);
void test_register(const char *name, test_fn *fn);
extern int test_failed_; /* set by a failing assertion in the current test */

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void reg_##name(void)                                      \
    {                                                                                              \
        test_register(#name, test_##name);                                                         \
    }                                                                                              \
    static void test_##name(void)

#define FAIL_(...)                                                                                 \
    do {                                                                                           \
        fprintf(stderr, "    %s:%d: ", __FILE__, __LINE__);                                        \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        test_failed_ = 1;                                                                          \
        return;                                                                                    \
    } while (0)

#define ASSERT_TRUE(x)                                                                             \
    do {                                                                                           \
        if (!(x))                                                                                  \
            FAIL_("expected true: %s", #x);                                                        \
    } while (0)
#define ASSERT_FALSE(x) ASSERT_TRUE(!(x))
#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                                       \
    } while (0)
#define ASSERT_NE(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ == b_)                                                                              \
            FAIL_("%s != %s: both %lld", #a, #b, a_);                                              \
    } while (0)
#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
    } while (0)
#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            FAIL_("%s should contain \"%s\": \"%s\"", #hay, n_, h_ ? h_ : "(null)");              \
    } while (0)

#endif
