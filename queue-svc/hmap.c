/* hmap.c -- open-addressing hash map (see hmap.h). */
#include "hmap.h"
#include "hash.h"

#include <stdlib.h>

void hmap_init(struct hmap *m)
{
    m->s = NULL;
    m->n = 0;
    m->mask = 0;
}

void hmap_free(struct hmap *m)
{
    free(m->s);
    hmap_init(m);
}

uint64_t hmap_hash_u64(uint64_t x)
{
    return hash_mix64(x); /* chat ids and job ids are far from uniform */
}

uint64_t hmap_hash_str(const char *s, size_t len)
{
    return hash_bytes(s, len, 0);
}

static size_t home(const struct hmap *m, uint64_t k)
{
    return (size_t)hmap_hash_u64(k) & m->mask;
}

void *hmap_get(const struct hmap *m, uint64_t k, hmap_eq_fn *eq, const void *key)
{
    if (!m->s)
        return NULL;
    for (size_t i = home(m, k);; i = (i + 1) & m->mask) {
        const struct hmap_slot *sl = &m->s[i];
        if (!sl->v)
            return NULL;
        if (sl->k == k && (!eq || eq(sl->v, key)))
            return sl->v;
    }
}

static void insert(struct hmap *m, uint64_t k, void *v)
{
    size_t i = home(m, k);
    while (m->s[i].v)
        i = (i + 1) & m->mask;
    m->s[i].k = k;
    m->s[i].v = v;
    m->n++;
}

static void grow(struct hmap *m)
{
    size_t ocap = m->s ? m->mask + 1 : 0, ncap = ocap ? ocap * 2 : 16;
    struct hmap_slot *old = m->s;
    m->s = calloc(ncap, sizeof *m->s);
    if (!m->s)
        abort();
    m->mask = ncap - 1;
    m->n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].v)
            insert(m, old[i].k, old[i].v);
    free(old);
}

void hmap_put(struct hmap *m, uint64_t k, void *v)
{
    if (!m->s || (m->n + 1) * 4 > (m->mask + 1) * 3) /* load <= 3/4 */
        grow(m);
    insert(m, k, v);
}

bool hmap_del(struct hmap *m, uint64_t k, const void *v)
{
    if (!m->s)
        return false;
    size_t i = home(m, k);
    for (;; i = (i + 1) & m->mask) {
        if (!m->s[i].v)
            return false;
        if (m->s[i].v == v)
            break;
    }
    /* Backward shift: pull later entries of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & m->mask; m->s[j].v; j = (j + 1) & m->mask) {
        size_t h = home(m, m->s[j].k);
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            m->s[hole] = m->s[j];
            hole = j;
        }
    }
    m->s[hole].v = NULL;
    m->s[hole].k = 0;
    m->n--;
    return true;
}

void hmap_each(const struct hmap *m, void (*fn)(void *arg, void *v), void *arg)
{
    if (!m->s)
        return;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->s[i].v)
            fn(arg, m->s[i].v);
}
