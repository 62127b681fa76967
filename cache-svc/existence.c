/* existence.c -- the existence check and its hit/miss accounting. */
#include "existence.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct exist {
    struct cat *cat;
    struct scan *scan;
    const struct ps_root *root;
    int64_t duration_ms;
    struct cachestat cs;
};

struct exist *exist_new(struct cat *cat, struct scan *scan, const struct ps_root *root,
                        int64_t duration_ms)
{
    struct exist *x = calloc(1, sizeof *x);
    if (!x)
        abort();
    x->cat = cat;
    x->scan = scan;
    x->root = root;
    x->duration_ms = duration_ms;
    cachestat_init(&x->cs, "existence");
    return x;
}

void exist_free(struct exist *x)
{
    free(x);
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

enum exist_rc exist_verify(struct exist *x, const char *path, struct ps_err *e)
{
    int64_t now = clock_mono_ms();
    cat_rdlock(x->cat);
    uint32_t slot = cat_by_path(x->cat, path);
    if (slot == CAT_NONE) {
        cat_unlock(x->cat);
        e->reason = PS_NOT_FOUND;
        snprintf(e->msg, sizeof e->msg, "no such file or folder");
        return EXIST_GONE;
    }
    int64_t checked = cat_checked(x->cat, slot);
    struct cat_info info;
    cat_get(x->cat, slot, &info);
    enum cat_kind kind = info.kind;
    uint64_t size = info.size;
    int64_t mtime = info.mtime_ms;
    cat_unlock(x->cat);
    if (checked && now - checked < x->duration_ms) {
        cachestat_hit(&x->cs);
        return EXIST_OK;
    }
    cachestat_miss(&x->cs);
    struct stat st;
    int rc = ps_resolve(x->root, path, kind == CAT_FILE ? PS_WANT_FILE : PS_WANT_DIR, NULL, &st, e);
    if (rc < 0 && e->reason == PS_IO)
        return EXIST_IO;
    if (rc < 0 || (kind == CAT_FILE && ((uint64_t)st.st_size != size || mtime_ms(&st) != mtime))) {
        /* Vanished, refused or changed: bring the catalogue up to date. */
        scan_path(x->scan, path, SCAN_EXISTENCE, NULL);
        if (rc < 0)
            return ps_is_refusal(e->reason) ? EXIST_REFUSED : EXIST_GONE;
    }
    exist_mark(x, path);
    return EXIST_OK;
}

bool exist_fresh(struct exist *x, const char *path)
{
    int64_t now = clock_mono_ms();
    cat_rdlock(x->cat);
    uint32_t slot = cat_by_path(x->cat, path);
    int64_t checked = slot == CAT_NONE ? 0 : cat_checked(x->cat, slot);
    cat_unlock(x->cat);
    return checked && now - checked < x->duration_ms;
}

void exist_mark(struct exist *x, const char *path)
{
    int64_t now = clock_mono_ms();
    cat_rdlock(x->cat);
    uint32_t slot = cat_by_path(x->cat, path);
    if (slot != CAT_NONE)
        cat_set_checked(x->cat, slot, now);
    cat_unlock(x->cat);
}

const struct cachestat *exist_stats(const struct exist *x)
{
    return &x->cs;
}
