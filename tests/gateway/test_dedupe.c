/* test_dedupe.c -- gateway/dedupe.c: a repeated update_id is handled once, in progress is
 * told apart from done, a failed update can be handled again, the window evicts the oldest,
 * and the window survives a restart (snapshot + log). */
#include "dedupe.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

TEST(begin_finish_and_repeat)
{
    char err[256];
    struct dedupe *d = dedupe_open(NULL, 1000, err, sizeof err);
    ASSERT_EQ(dedupe_begin(d, 10), DEDUPE_NEW);
    ASSERT_EQ(dedupe_begin(d, 10), DEDUPE_IN_PROGRESS);
    dedupe_finish(d, 10, true);
    ASSERT_EQ(dedupe_begin(d, 10), DEDUPE_DONE);
    ASSERT_EQ(dedupe_begin(d, 11), DEDUPE_NEW);
    dedupe_finish(d, 11, false); /* not handled: a re-delivery runs it again */
    ASSERT_EQ(dedupe_begin(d, 11), DEDUPE_NEW);
    dedupe_finish(d, 11, true);
    ASSERT_EQ(dedupe_size(d), 2);
    dedupe_close(d);
}

TEST(window_evicts_oldest)
{
    char err[256];
    struct dedupe *d = dedupe_open(NULL, 100, err, sizeof err);
    for (int64_t i = 1; i <= 250; i++) {
        ASSERT_EQ(dedupe_begin(d, i), DEDUPE_NEW);
        dedupe_finish(d, i, true);
    }
    ASSERT_EQ(dedupe_size(d), 100);
    ASSERT_EQ(dedupe_begin(d, 250), DEDUPE_DONE);
    ASSERT_EQ(dedupe_begin(d, 151), DEDUPE_DONE);
    ASSERT_EQ(dedupe_begin(d, 150), DEDUPE_NEW); /* evicted */
    dedupe_close(d);
}

TEST(survives_restart_and_compaction)
{
    char dir[] = "/tmp/engbot-dedupe-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char err[256];
    struct dedupe *d = dedupe_open(dir, 100, err, sizeof err);
    ASSERT_TRUE(d != NULL);
    for (int64_t i = 1; i <= 330; i++) { /* past the window: compacts three times */
        dedupe_begin(d, i);
        dedupe_finish(d, i, true);
    }
    dedupe_close(d);
    d = dedupe_open(dir, 100, err, sizeof err);
    ASSERT_TRUE(d != NULL);
    ASSERT_EQ(dedupe_begin(d, 330), DEDUPE_DONE);
    ASSERT_EQ(dedupe_begin(d, 231), DEDUPE_DONE);
    ASSERT_EQ(dedupe_max(d), 330);
    dedupe_close(d);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}
