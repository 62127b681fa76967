/* catalogue.c -- the in-memory index: an array of entries (slots) with three chained hash
 * tables (id, path, lower-case file name) and, per folder, a sorted array of child slots.
 *
 * DESIGN: lookups are O(1) through the tables; a folder page is a slice of its child array,
 * kept sorted (folders first, natural name order) each time the folder is synced. Search is
 * search.c. */
#include "catalogue.h"
#include "catalogue_internal.h"
#include "mime.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static uint64_t fnv(const char *s, size_t n, bool fold)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (fold && ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch + 32);
        h = (h ^ ch) * 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

/* ---- hash tables ------------------------------------------------------------------------------
 */

static uint32_t bucket(const struct cat *c, uint64_t h)
{
    return (uint32_t)(h & (c->nb - 1));
}

static uint64_t path_hash(const char *p)
{
    return fnv(p, strlen(p), false);
}

static uint64_t name_hash(const char *n)
{
    return fnv(n, strlen(n), true);
}

static void link_slot(struct cat *c, uint32_t s)
{
    struct ent *e = &c->e[s];
    uint32_t b = bucket(c, e->hid);
    e->next_id = c->b_id[b];
    c->b_id[b] = s;
    b = bucket(c, path_hash(e->path));
    e->next_path = c->b_path[b];
    c->b_path[b] = s;
    e->next_name = CAT_NONE;
    if (e->kind == CAT_FILE) {
        b = bucket(c, name_hash(ent_name(e)));
        e->next_name = c->b_name[b];
        c->b_name[b] = s;
    }
}

static void unlink_chain(struct cat *c, uint32_t *head, uint32_t s, size_t next_off)
{
    uint32_t *pp = head;
    while (*pp != CAT_NONE) {
        uint32_t *next = (uint32_t *)((char *)&c->e[*pp] + next_off);
        if (*pp == s) {
            *pp = *next;
            return;
        }
        pp = next;
    }
}

static void unlink_slot(struct cat *c, uint32_t s)
{
    struct ent *e = &c->e[s];
    unlink_chain(c, &c->b_id[bucket(c, e->hid)], s, offsetof(struct ent, next_id));
    unlink_chain(c, &c->b_path[bucket(c, path_hash(e->path))], s, offsetof(struct ent, next_path));
    if (e->kind == CAT_FILE)
        unlink_chain(c, &c->b_name[bucket(c, name_hash(ent_name(e)))], s,
                     offsetof(struct ent, next_name));
}

static void rehash(struct cat *c, uint32_t nb)
{
    c->nb = nb;
    c->b_id = xrealloc(c->b_id, nb * sizeof(uint32_t));
    c->b_path = xrealloc(c->b_path, nb * sizeof(uint32_t));
    c->b_name = xrealloc(c->b_name, nb * sizeof(uint32_t));
    memset(c->b_id, 0xff, nb * sizeof(uint32_t));
    memset(c->b_path, 0xff, nb * sizeof(uint32_t));
    memset(c->b_name, 0xff, nb * sizeof(uint32_t));
    for (uint32_t s = 0; s < c->nslots; s++)
        if (c->e[s].kind)
            link_slot(c, s);
}

static uint32_t find_hid(const struct cat *c, uint64_t hid)
{
    for (uint32_t s = c->b_id[bucket(c, hid)]; s != CAT_NONE; s = c->e[s].next_id)
        if (c->e[s].hid == hid)
            return s;
    return CAT_NONE;
}

uint32_t cat_by_path(const struct cat *c, const char *path)
{
    for (uint32_t s = c->b_path[bucket(c, path_hash(path))]; s != CAT_NONE; s = c->e[s].next_path)
        if (strcmp(c->e[s].path, path) == 0)
            return s;
    return CAT_NONE;
}

/* ---- entries ----------------------------------------------------------------------------------
 */

static uint32_t ent_add(struct cat *c, uint32_t parent, char *path, size_t name_off,
                        enum cat_kind kind, uint64_t size, int64_t mtime_ms)
{
    size_t plen = strlen(path);
    uint64_t hid = 0;
    uint32_t salt;
    for (salt = 0; salt < 64; salt++) {
        hid = catid_hash(path, plen, salt) & c->id_mask;
        if (find_hid(c, hid) == CAT_NONE)
            break;
    }
    if (salt == 64) { /* only with a tiny id_bits in tests */
        free(path);
        c->dropped++;
        return CAT_NONE;
    }
    uint32_t s;
    if (c->free_head != CAT_NONE) {
        s = c->free_head;
        c->free_head = c->e[s].next_id;
    } else {
        if (c->nslots == c->capslots) {
            c->capslots = c->capslots ? c->capslots * 2 : 64;
            c->e = xrealloc(c->e, c->capslots * sizeof *c->e);
        }
        s = c->nslots++;
    }
    struct ent *e = &c->e[s];
    memset(e, 0, sizeof *e);
    e->path = path;
    e->hid = hid;
    e->size = kind == CAT_FILE ? size : 0;
    e->mtime_ms = mtime_ms;
    atomic_init(&e->checked_ms, 0);
    e->parent = parent;
    e->name_off = (uint16_t)name_off;
    e->kind = (uint8_t)kind;
    e->ctype = kind == CAT_FILE ? mime_index(path + name_off) : 0;
    e->depth = parent == CAT_NONE ? 0 : (uint8_t)(c->e[parent].depth + 1);
    c->live++;
    if (kind == CAT_FILE)
        c->files++;
    else
        c->folders++;
    c->str_bytes += plen + 1;
    if (c->live > c->nb)
        rehash(c, c->nb * 2);
    else
        link_slot(c, s);
    return s;
}

static void remove_tree(struct cat *c, uint32_t s, cat_folder_fn *fn, void *ud, struct cat_delta *d)
{
    struct ent *e = &c->e[s];
    if (e->kind == CAT_FOLDER) {
        for (uint32_t i = 0; i < e->nkids; i++)
            remove_tree(c, e->kids[i], fn, ud, d);
        e = &c->e[s];
        if (fn)
            fn(ud, e->path, false);
        free(e->kids);
        c->kid_bytes -= e->capkids * sizeof(uint32_t);
        c->folders--;
    } else {
        c->files--;
    }
    unlink_slot(c, s);
    c->str_bytes -= strlen(e->path) + 1;
    free(e->path);
    memset(e, 0, sizeof *e);
    e->next_id = c->free_head;
    c->free_head = s;
    c->live--;
    if (d)
        d->removed++;
}

static int kid_cmp(const void *a, const void *b, void *ctx)
{
    const struct cat *c = ctx;
    const struct ent *x = &c->e[*(const uint32_t *)a], *y = &c->e[*(const uint32_t *)b];
    if (x->kind != y->kind)
        return x->kind == CAT_FOLDER ? -1 : 1;
    int r = cat_name_cmp(ent_name(x), ent_name(y));
    return r ? r : strcmp(ent_name(x), ent_name(y));
}

static void set_kids(struct cat *c, uint32_t folder, uint32_t *kids, uint32_t n, uint32_t cap)
{
    struct ent *f = &c->e[folder];
    c->kid_bytes -= f->capkids * sizeof(uint32_t);
    free(f->kids);
    f->kids = kids;
    f->nkids = n;
    f->capkids = cap;
    c->kid_bytes += cap * sizeof(uint32_t);
    if (n)
        qsort_r(f->kids, f->nkids, sizeof(uint32_t), kid_cmp, c);
}

/* ---- public -----------------------------------------------------------------------------------
 */

struct cat *cat_new(const struct cat_opts *o)
{
    struct cat *c = xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    pthread_rwlock_init(&c->lock, NULL);
    c->free_head = CAT_NONE;
    c->max_entries = o && o->max_entries ? o->max_entries : 200000;
    int bits = o && o->id_bits > 0 && o->id_bits <= CATID_BITS ? o->id_bits : CATID_BITS;
    c->id_mask = (1ULL << bits) - 1;
    rehash(c, 1024);
    char *root = xmalloc(1);
    root[0] = '\0';
    c->root = ent_add(c, CAT_NONE, root, 0, CAT_FOLDER, 0, 0);
    return c;
}

void cat_free(struct cat *c)
{
    if (!c)
        return;
    for (uint32_t s = 0; s < c->nslots; s++) {
        if (c->e[s].kind) {
            free(c->e[s].path);
            free(c->e[s].kids);
        }
    }
    free(c->e);
    free(c->b_id);
    free(c->b_path);
    free(c->b_name);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

void cat_rdlock(struct cat *c)
{
    pthread_rwlock_rdlock(&c->lock);
}

void cat_wrlock(struct cat *c)
{
    pthread_rwlock_wrlock(&c->lock);
}

void cat_unlock(struct cat *c)
{
    pthread_rwlock_unlock(&c->lock);
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cat_item *)a)->name, ((const struct cat_item *)b)->name);
}

int cat_sync_folder(struct cat *c, const char *path, struct cat_item *items, size_t n,
                    cat_folder_fn *fn, void *ud, struct cat_delta *d)
{
    uint32_t f = cat_by_path(c, path);
    if (f == CAT_NONE || c->e[f].kind != CAT_FOLDER)
        return -1;
    if (n)
        qsort(items, n, sizeof *items, item_cmp);
    /* Removals first: a folder renamed on disk drops its old path (and inotify watch) before
     * the new one is added. */
    for (uint32_t i = 0; i < c->e[f].nkids; i++) {
        uint32_t k = c->e[f].kids[i];
        struct cat_item key = {.name = ent_name(&c->e[k])};
        const struct cat_item *it = n ? bsearch(&key, items, n, sizeof *items, item_cmp) : NULL;
        if (!it || (uint8_t)it->kind != c->e[k].kind)
            remove_tree(c, k, fn, ud, d);
    }
    uint32_t cap = (uint32_t)n, cnt = 0;
    uint32_t *kids = xmalloc(cap * sizeof(uint32_t));
    size_t plen = strlen(path);
    for (size_t i = 0; i < n; i++) {
        size_t nlen = strlen(items[i].name);
        size_t off = plen ? plen + 1 : 0;
        char *cp = xmalloc(off + nlen + 1);
        if (plen) {
            memcpy(cp, path, plen);
            cp[plen] = '/';
        }
        memcpy(cp + off, items[i].name, nlen + 1);
        uint32_t s = cat_by_path(c, cp);
        if (s != CAT_NONE) {
            free(cp);
            struct ent *e = &c->e[s];
            if (e->kind == CAT_FILE &&
                (e->size != items[i].size || e->mtime_ms != items[i].mtime_ms)) {
                d->changed++;
                atomic_store_explicit(&e->checked_ms, 0, memory_order_relaxed);
            }
            e->size = e->kind == CAT_FILE ? items[i].size : 0;
            e->mtime_ms = items[i].mtime_ms;
        } else {
            if (c->live >= c->max_entries || off + nlen > UINT16_MAX) {
                free(cp);
                c->dropped++;
                d->dropped++;
                continue;
            }
            s = ent_add(c, f, cp, off, items[i].kind, items[i].size, items[i].mtime_ms);
            if (s == CAT_NONE) {
                d->dropped++;
                continue;
            }
            d->added++;
            if (items[i].kind == CAT_FOLDER && fn)
                fn(ud, c->e[s].path, true);
        }
        kids[cnt++] = s;
    }
    set_kids(c, f, kids, cnt, cap);
    return 0;
}

bool cat_set_stat(struct cat *c, uint32_t slot, uint64_t size, int64_t mtime_ms)
{
    struct ent *e = &c->e[slot];
    if (e->kind == CAT_FOLDER) {
        e->mtime_ms = mtime_ms;
        return false;
    }
    if (e->size == size && e->mtime_ms == mtime_ms)
        return false;
    e->size = size;
    e->mtime_ms = mtime_ms;
    return true;
}

void cat_remove(struct cat *c, uint32_t slot, cat_folder_fn *fn, void *ud, struct cat_delta *d)
{
    if (slot == c->root || slot >= c->nslots || !c->e[slot].kind)
        return;
    struct ent *p = &c->e[c->e[slot].parent];
    for (uint32_t i = 0; i < p->nkids; i++) {
        if (p->kids[i] == slot) {
            memmove(p->kids + i, p->kids + i + 1, (p->nkids - i - 1) * sizeof(uint32_t));
            p->nkids--;
            break;
        }
    }
    remove_tree(c, slot, fn, ud, d);
}

int64_t cat_checked(const struct cat *c, uint32_t slot)
{
    return atomic_load_explicit(&c->e[slot].checked_ms, memory_order_relaxed);
}

void cat_set_checked(struct cat *c, uint32_t slot, int64_t mono_ms)
{
    atomic_store_explicit(&c->e[slot].checked_ms, mono_ms, memory_order_relaxed);
}

void cat_forget_checks(struct cat *c, uint32_t slot)
{
    struct ent *e = &c->e[slot];
    atomic_store_explicit(&e->checked_ms, 0, memory_order_relaxed);
    for (uint32_t i = 0; e->kind == CAT_FOLDER && i < e->nkids; i++)
        cat_forget_checks(c, e->kids[i]);
}

uint32_t cat_root(const struct cat *c)
{
    return c->root;
}

uint32_t cat_by_id(const struct cat *c, const char *id, size_t len)
{
    uint64_t hid;
    if (!catid_parse(id, len, &hid))
        return CAT_NONE;
    return find_hid(c, hid);
}

static int slot_path_cmp(const void *a, const void *b, void *ctx)
{
    const struct cat *c = ctx;
    return strcmp(c->e[*(const uint32_t *)a].path, c->e[*(const uint32_t *)b].path);
}

size_t cat_by_name(const struct cat *c, const char *name, uint32_t *out, size_t cap)
{
    size_t n = 0;
    uint32_t tmp[64];
    for (uint32_t s = c->b_name[bucket(c, name_hash(name))]; s != CAT_NONE; s = c->e[s].next_name) {
        if (strcasecmp(ent_name(&c->e[s]), name) != 0)
            continue;
        if (n < sizeof tmp / sizeof tmp[0])
            tmp[n] = s;
        n++;
    }
    size_t kept = n < sizeof tmp / sizeof tmp[0] ? n : sizeof tmp / sizeof tmp[0];
    qsort_r(tmp, kept, sizeof tmp[0], slot_path_cmp, (void *)c);
    for (size_t i = 0; i < kept && i < cap; i++)
        out[i] = tmp[i];
    return n;
}

void cat_get(const struct cat *c, uint32_t slot, struct cat_info *out)
{
    const struct ent *e = &c->e[slot];
    catid_format(e->hid, out->id);
    if (e->parent == CAT_NONE)
        out->parent_id[0] = '\0';
    else
        catid_format(c->e[e->parent].hid, out->parent_id);
    out->name = ent_name(e);
    out->path = e->path;
    out->kind = (enum cat_kind)e->kind;
    out->content_type = e->kind == CAT_FILE ? mime_type(e->ctype) : "";
    out->size = e->size;
    out->mtime_ms = e->mtime_ms;
    out->child_count = e->kind == CAT_FOLDER ? e->nkids : 0;
}

enum cat_kind cat_kind_of(const struct cat *c, uint32_t slot)
{
    return (enum cat_kind)c->e[slot].kind;
}

const char *cat_path(const struct cat *c, uint32_t slot)
{
    return c->e[slot].path;
}

uint32_t cat_parent(const struct cat *c, uint32_t slot)
{
    return c->e[slot].parent;
}

size_t cat_list(const struct cat *c, uint32_t folder, size_t off, size_t n, uint32_t *out)
{
    const struct ent *f = &c->e[folder];
    for (size_t i = 0; i < n && off + i < f->nkids; i++)
        out[i] = f->kids[off + i];
    return f->nkids;
}

void cat_stats(const struct cat *c, struct cat_stats *s)
{
    s->entries = c->live;
    s->files = c->files;
    s->folders = c->folders;
    s->dropped = c->dropped;
    /* 16 bytes of malloc overhead per path and per child array. */
    s->bytes = sizeof *c + (size_t)c->capslots * sizeof(struct ent) + 3 * (size_t)c->nb * 4 +
               c->str_bytes + c->live * 16 + c->kid_bytes + c->folders * 16;
}

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

int cat_name_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0' && isdigit((unsigned char)a[1]))
                a++;
            while (*b == '0' && isdigit((unsigned char)b[1]))
                b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la]))
                la++;
            while (isdigit((unsigned char)b[lb]))
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int r = memcmp(a, b, la);
            if (r)
                return r < 0 ? -1 : 1;
            a += la;
            b += lb;
            continue;
        }
        int x = lower((unsigned char)*a), y = lower((unsigned char)*b);
        if (x != y)
            return x < y ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}
