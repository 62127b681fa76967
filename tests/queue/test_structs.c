/* test_structs.c -- the intrusive heap and the hash map (queue-svc/heap.c, hmap.c) against
 * simple reference models, with random operations. */
#include "heap.h"
#include "hmap.h"
#include "test.h"

#include <stdint.h>

struct item {
    struct hnode n;
    int64_t k;
    uint64_t key;
    bool in;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

TEST(heap_random_against_scan)
{
    enum { N = 500 };
    static struct item it[N];
    struct heap h;
    heap_init(&h);
    uint64_t s = 7;
    for (int i = 0; i < N; i++)
        hnode_init(&it[i].n);
    for (int step = 0; step < 20000; step++) {
        struct item *x = &it[rnd(&s) % N];
        switch (rnd(&s) % 3) {
        case 0:
            if (!x->in) {
                x->n.key = (int64_t)(rnd(&s) % 1000);
                x->n.tie = (uint64_t)step;
                heap_push(&h, &x->n);
                x->in = true;
            }
            break;
        case 1:
            if (x->in) {
                heap_remove(&h, &x->n);
                x->in = false;
                ASSERT_FALSE(hnode_linked(&x->n));
            }
            break;
        default: {
            struct hnode *t = heap_top(&h);
            const struct hnode *best = NULL;
            for (int i = 0; i < N; i++)
                if (it[i].in && (!best || it[i].n.key < best->key ||
                                 (it[i].n.key == best->key && it[i].n.tie < best->tie)))
                    best = &it[i].n;
            ASSERT_TRUE(t == best);
            if (t) {
                heap_pop(&h);
                HEAP_ENTRY(t, struct item, n)->in = false;
            }
        }
        }
    }
    heap_free(&h);
}

static bool eq_item(const void *v, const void *key)
{
    return ((const struct item *)v)->key == *(const uint64_t *)key;
}

TEST(hmap_random_against_array)
{
    enum { N = 2000 };
    static struct item it[N];
    struct hmap m;
    hmap_init(&m);
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        it[i].key = (uint64_t)i * 7919; /* collide after mixing now and then */
        it[i].in = false;
    }
    for (int step = 0; step < 100000; step++) {
        struct item *x = &it[rnd(&s) % N];
        if (rnd(&s) % 2) {
            if (!x->in) {
                hmap_put(&m, x->key, x);
                x->in = true;
            }
        } else if (x->in) {
            ASSERT_TRUE(hmap_del(&m, x->key, x));
            x->in = false;
        }
        if (step % 997 == 0) {
            size_t n = 0;
            for (int i = 0; i < N; i++) {
                void *v = hmap_get(&m, it[i].key, eq_item, &it[i].key);
                ASSERT_TRUE(v == (it[i].in ? &it[i] : NULL));
                n += it[i].in;
            }
            ASSERT_EQ(m.n, n);
        }
    }
    hmap_free(&m);
}

TEST(hmap_string_keys_share_hashes)
{
    /* Dedupe keys: the map stores a hash; equal hashes must still be told apart. */
    struct hmap m;
    hmap_init(&m);
    struct item a = {.key = 1}, b = {.key = 2};
    hmap_put(&m, 5, &a);
    hmap_put(&m, 5, &b);
    uint64_t ka = 1, kb = 2, kc = 3;
    ASSERT_TRUE(hmap_get(&m, 5, eq_item, &ka) == &a);
    ASSERT_TRUE(hmap_get(&m, 5, eq_item, &kb) == &b);
    ASSERT_TRUE(hmap_get(&m, 5, eq_item, &kc) == NULL);
    ASSERT_TRUE(hmap_del(&m, 5, &a));
    ASSERT_TRUE(hmap_get(&m, 5, eq_item, &kb) == &b);
    ASSERT_FALSE(hmap_del(&m, 5, &a));
    hmap_free(&m);
}
