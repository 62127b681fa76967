/* heap.c -- intrusive binary min-heap (see heap.h). */
#include "heap.h"

#include <stdlib.h>

void heap_init(struct heap *h)
{
    h->a = NULL;
    h->n = h->cap = 0;
}

void heap_free(struct heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->a[i]->idx = HEAP_NONE;
    free(h->a);
    heap_init(h);
}

static bool less(const struct hnode *x, const struct hnode *y)
{
    return x->key < y->key || (x->key == y->key && x->tie < y->tie);
}

static void place(struct heap *h, size_t i, struct hnode *n)
{
    h->a[i] = n;
    n->idx = i;
}

static void sift_up(struct heap *h, size_t i)
{
    struct hnode *n = h->a[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(n, h->a[p]))
            break;
        place(h, i, h->a[p]);
        i = p;
    }
    place(h, i, n);
}

static void sift_down(struct heap *h, size_t i)
{
    struct hnode *n = h->a[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct hnode *best = n;
        if (l < h->n && less(h->a[l], best)) {
            m = l;
            best = h->a[l];
        }
        if (l + 1 < h->n && less(h->a[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        place(h, i, h->a[m]);
        i = m;
    }
    place(h, i, n);
}

void heap_push(struct heap *h, struct hnode *n)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        struct hnode **a = realloc(h->a, nc * sizeof *a);
        if (!a)
            abort();
        h->a = a;
        h->cap = nc;
    }
    place(h, h->n++, n);
    sift_up(h, n->idx);
}

void heap_remove(struct heap *h, struct hnode *n)
{
    size_t i = n->idx;
    if (i == HEAP_NONE || i >= h->n || h->a[i] != n)
        return;
    n->idx = HEAP_NONE;
    struct hnode *last = h->a[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    if (i > 0 && less(last, h->a[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

struct hnode *heap_pop(struct heap *h)
{
    struct hnode *t = heap_top(h);
    if (t)
        heap_remove(h, t);
    return t;
}
