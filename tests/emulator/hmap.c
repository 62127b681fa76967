/* hmap.c -- chained hash map with an insertion-order list (see hmap.h). */
#include "hmap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void hmap_init(struct hmap *m, void (*free_val)(void *))
{
    memset(m, 0, sizeof *m);
    m->free_val = free_val;
}

static struct hmap_entry **slot(const struct hmap *m, const char *key)
{
    if (!m->nb)
        return NULL;
    struct hmap_entry **p = &m->b[hash(key) & (m->nb - 1)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

void *hmap_get(const struct hmap *m, const char *key)
{
    struct hmap_entry **p = slot(m, key);
    return p && *p ? (*p)->val : NULL;
}

static void grow(struct hmap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64;
    struct hmap_entry **b = calloc(nb, sizeof *b);
    if (!b)
        abort();
    for (struct hmap_entry *e = m->oldest; e; e = e->newer) {
        size_t i = hash(e->key) & (nb - 1);
        e->next = b[i];
        b[i] = e;
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void hmap_put(struct hmap *m, const char *key, void *val)
{
    struct hmap_entry **p = slot(m, key);
    if (p && *p) {
        if (m->free_val && (*p)->val != val)
            m->free_val((*p)->val);
        (*p)->val = val;
        return;
    }
    if (m->n + 1 > m->nb * 3 / 4)
        grow(m);
    struct hmap_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->key = strdup(key)))
        abort();
    e->val = val;
    size_t i = hash(key) & (m->nb - 1);
    e->next = m->b[i];
    m->b[i] = e;
    e->older = m->newest;
    if (m->newest)
        m->newest->newer = e;
    else
        m->oldest = e;
    m->newest = e;
    m->n++;
}

static void unlink_free(struct hmap *m, struct hmap_entry **p)
{
    struct hmap_entry *e = *p;
    *p = e->next;
    if (e->older)
        e->older->newer = e->newer;
    else
        m->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        m->newest = e->older;
    if (m->free_val)
        m->free_val(e->val);
    free(e->key);
    free(e);
    m->n--;
}

bool hmap_del(struct hmap *m, const char *key)
{
    struct hmap_entry **p = slot(m, key);
    if (!p || !*p)
        return false;
    unlink_free(m, p);
    return true;
}

bool hmap_del_oldest(struct hmap *m)
{
    if (!m->oldest)
        return false;
    return hmap_del(m, m->oldest->key);
}

void hmap_clear(struct hmap *m)
{
    struct hmap_entry *e = m->oldest;
    while (e) {
        struct hmap_entry *n = e->newer;
        if (m->free_val)
            m->free_val(e->val);
        free(e->key);
        free(e);
        e = n;
    }
    free(m->b);
    void (*fv)(void *) = m->free_val;
    hmap_init(m, fv);
}

void *hmap_geti(const struct hmap *m, long long key)
{
    char k[32];
    snprintf(k, sizeof k, "%lld", key);
    return hmap_get(m, k);
}

void hmap_puti(struct hmap *m, long long key, void *val)
{
    char k[32];
    snprintf(k, sizeof k, "%lld", key);
    hmap_put(m, k, val);
}
