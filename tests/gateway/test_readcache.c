/* test_readcache.c -- gateway/readcache.c: an answer is served until it is TTL old and not
 * after, the byte bound holds with the least recently used going first (an answer bigger than
 * the whole cache is not kept), a put replaces, and clear empties. Times are passed in, so
 * nothing here sleeps. */
#include "readcache.h"
#include "test.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static bool get_str(struct readcache *rc, const char *key, int64_t now, char *out, size_t cap)
{
    uint8_t *v;
    size_t n;
    if (!readcache_get(rc, key, strlen(key), now, &v, &n))
        return false;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    free(v);
    return true;
}

static void put_str(struct readcache *rc, const char *key, const char *val, int64_t now)
{
    readcache_put(rc, key, strlen(key), val, strlen(val), now);
}

TEST(an_answer_is_served_until_it_is_ttl_old)
{
    struct readcache *rc = readcache_new(1000, 1 << 20);
    char v[64];
    ASSERT_FALSE(get_str(rc, "ListFolder root", 0, v, sizeof v));
    put_str(rc, "ListFolder root", "page one", 5000);
    ASSERT_TRUE(get_str(rc, "ListFolder root", 5000, v, sizeof v));
    ASSERT_STREQ(v, "page one");
    ASSERT_TRUE(get_str(rc, "ListFolder root", 5999, v, sizeof v)); /* a hit does not extend it */
    ASSERT_FALSE(get_str(rc, "ListFolder root", 6000, v, sizeof v));
    ASSERT_EQ(readcache_count(rc), 0); /* the expired entry went */
    ASSERT_FALSE(get_str(rc, "ListFolder other", 5000, v, sizeof v));
    readcache_free(rc);
}

TEST(a_put_replaces_and_restarts_the_ttl)
{
    struct readcache *rc = readcache_new(1000, 1 << 20);
    char v[64];
    put_str(rc, "k", "old", 0);
    put_str(rc, "k", "new", 900);
    ASSERT_EQ(readcache_count(rc), 1);
    ASSERT_TRUE(get_str(rc, "k", 1500, v, sizeof v));
    ASSERT_STREQ(v, "new");
    readcache_free(rc);
}

/* What one entry with a 1-byte key and a 1-byte value costs. */
static size_t one_entry_cost(void)
{
    struct readcache *rc = readcache_new(60000, 1 << 20);
    put_str(rc, "a", "1", 0);
    size_t c = readcache_bytes(rc);
    readcache_free(rc);
    return c;
}

TEST(the_byte_bound_holds_and_the_least_recently_used_goes_first)
{
    size_t c = one_entry_cost();
    ASSERT_TRUE(c > 2);
    struct readcache *rc = readcache_new(60000, 3 * c);
    char v[64];
    put_str(rc, "a", "1", 0);
    put_str(rc, "b", "2", 0);
    put_str(rc, "c", "3", 0);
    ASSERT_EQ(readcache_bytes(rc), 3 * c);
    ASSERT_TRUE(get_str(rc, "a", 1, v, sizeof v)); /* a is now the most recently used */
    put_str(rc, "d", "4", 2);                      /* evicts b */
    ASSERT_EQ(readcache_count(rc), 3);
    ASSERT_FALSE(get_str(rc, "b", 3, v, sizeof v));
    ASSERT_TRUE(get_str(rc, "a", 3, v, sizeof v));
    ASSERT_TRUE(get_str(rc, "c", 3, v, sizeof v));
    ASSERT_TRUE(get_str(rc, "d", 3, v, sizeof v));
    /* A bigger answer makes room by evicting as many as it takes. */
    put_str(rc, "e", "12", 4); /* one byte more than the others: two of them go */
    ASSERT_TRUE(readcache_bytes(rc) <= 3 * c);
    ASSERT_EQ(readcache_count(rc), 2);
    ASSERT_TRUE(get_str(rc, "e", 5, v, sizeof v));
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "%c", 'A' + i % 26);
        put_str(rc, k, "x", 6);
        ASSERT_TRUE(readcache_bytes(rc) <= 3 * c);
    }
    readcache_free(rc);
}

TEST(an_answer_bigger_than_the_whole_cache_is_not_kept)
{
    size_t c = one_entry_cost();
    struct readcache *rc = readcache_new(60000, 2 * c);
    char v[64];
    put_str(rc, "a", "1", 0);
    char big[256];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    put_str(rc, "big", big, 1);
    ASSERT_FALSE(get_str(rc, "big", 2, v, sizeof v));
    ASSERT_TRUE(get_str(rc, "a", 2, v, sizeof v)); /* and it evicted nothing */
    readcache_free(rc);
}

TEST(keys_are_bytes_not_strings)
{
    struct readcache *rc = readcache_new(60000, 1 << 20);
    const uint8_t k1[] = {'S', 0, 1, 2}, k2[] = {'S', 0, 1, 3};
    readcache_put(rc, k1, sizeof k1, "one", 3, 0);
    readcache_put(rc, k2, sizeof k2, "", 0, 0); /* an empty answer is an answer */
    uint8_t *v;
    size_t n;
    ASSERT_TRUE(readcache_get(rc, k1, sizeof k1, 1, &v, &n));
    ASSERT_EQ(n, 3);
    ASSERT_TRUE(memcmp(v, "one", 3) == 0);
    free(v);
    ASSERT_TRUE(readcache_get(rc, k2, sizeof k2, 1, &v, &n));
    ASSERT_EQ(n, 0);
    free(v);
    ASSERT_FALSE(readcache_get(rc, k1, 2, 1, &v, &n)); /* a prefix is another key */
    readcache_free(rc);
}

TEST(clear_empties)
{
    struct readcache *rc = readcache_new(60000, 1 << 20);
    char v[64];
    put_str(rc, "a", "1", 0);
    put_str(rc, "b", "2", 0);
    readcache_clear(rc);
    ASSERT_EQ(readcache_count(rc), 0);
    ASSERT_FALSE(get_str(rc, "a", 1, v, sizeof v));
    put_str(rc, "a", "3", 2); /* usable after */
    ASSERT_TRUE(get_str(rc, "a", 3, v, sizeof v));
    ASSERT_STREQ(v, "3");
    readcache_free(rc);
}
