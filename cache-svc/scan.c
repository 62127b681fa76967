/* scan.c -- folder reading and applying the differences to the catalogue.
 *
 * DESIGN: a folder is read without any catalogue lock (readdir + fstatat, symlinks resolved
 * by pathsafe), then applied in one cat_sync_folder under the write lock. Subfolders are
 * opened with openat(O_NOFOLLOW | O_DIRECTORY) from their parent's fd, so a scan never
 * follows a symlinked folder, whatever happens to the tree while it runs. */
#include "scan.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const trigger_names[SCAN__TRIGGERS] = {"inotify", "rescan", "manual",
                                                          "existence"};

const char *scan_trigger_name(enum scan_trigger t)
{
    return t < SCAN__TRIGGERS ? trigger_names[t] : "unknown";
}

struct scan {
    struct cat *cat;
    const struct ps_root *root;
    struct scan_hooks hooks;
    pthread_mutex_t mu;                  /* one scan at a time */
    uint64_t skipped_now[PS__COUNT];     /* during a full scan */
    _Atomic uint64_t skipped[PS__COUNT]; /* the last full scan's */
    _Atomic uint64_t inval[SCAN__TRIGGERS];
    _Atomic int64_t last_full_ms;
    _Atomic bool done_once;
    struct metric *m_inval[SCAN__TRIGGERS], *m_skipped[PS__COUNT], *m_duration, *m_last;
    struct metric *m_entries, *m_files, *m_bytes;
};

/* The folders added and removed by one cat_sync_folder (collected under the write lock,
 * acted on after). */
struct folder_list {
    char **added, **removed;
    size_t nadded, nremoved, capadded, capremoved;
};

static void push(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = realloc(*v, *cap * sizeof **v);
        if (!*v)
            abort();
    }
    char *d = strdup(s);
    if (!d)
        abort();
    (*v)[(*n)++] = d;
}

static void on_folder(void *ud, const char *path, bool added)
{
    struct folder_list *l = ud;
    if (added)
        push(&l->added, &l->nadded, &l->capadded, path);
    else
        push(&l->removed, &l->nremoved, &l->capremoved, path);
}

static void folder_list_free(struct folder_list *l)
{
    for (size_t i = 0; i < l->nadded; i++)
        free(l->added[i]);
    for (size_t i = 0; i < l->nremoved; i++)
        free(l->removed[i]);
    free(l->added);
    free(l->removed);
    memset(l, 0, sizeof *l);
}

struct scan *scan_new(struct cat *cat, const struct ps_root *root)
{
    struct scan *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->cat = cat;
    s->root = root;
    pthread_mutex_init(&s->mu, NULL);
    struct metric_family *fi = metrics_family(
        "engbot_cache_invalidations_total",
        "Catalogue entries added, removed or changed, by the trigger that noticed it "
        "(inotify, rescan, manual, existence).",
        METRIC_COUNTER, "trigger", NULL, 0);
    for (int t = 0; t < SCAN__TRIGGERS; t++)
        s->m_inval[t] = metrics_child(fi, trigger_names[t]);
    struct metric_family *fs = metrics_family(
        "engbot_cache_scan_skipped",
        "Names under FILES_ROOT the last full scan left out, by the path-safety rule that "
        "refused them.",
        METRIC_GAUGE, "reason", NULL, 0);
    for (int r = PS_NUL; r <= PS_SPECIAL; r++)
        s->m_skipped[r] = metrics_child(fs, ps_reason_name((enum ps_reason)r));
    static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,   5,    10,   30,  60};
    s->m_duration = metrics_histogram("engbot_cache_rescan_duration_seconds",
                                      "Duration of full scans of FILES_ROOT.", buckets,
                                      sizeof buckets / sizeof buckets[0]);
    s->m_last = metrics_gauge("engbot_cache_last_scan_duration_seconds",
                              "Duration of the last full scan of FILES_ROOT.");
    s->m_entries = metrics_child(metrics_family("engbot_cache_entries", "Entries held, by cache.",
                                                METRIC_GAUGE, "cache", NULL, 0),
                                 "catalogue");
    s->m_files = metrics_gauge("engbot_cache_files", "Files in the catalogue.");
    s->m_bytes = metrics_gauge("engbot_cache_index_bytes",
                               "Memory held by the catalogue index (entries, paths, tables).");
    return s;
}

void scan_free(struct scan *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void scan_set_hooks(struct scan *s, const struct scan_hooks *h)
{
    pthread_mutex_lock(&s->mu);
    s->hooks = *h;
    pthread_mutex_unlock(&s->mu);
}

static void count(struct scan *s, enum scan_trigger t, const struct cat_delta *d,
                  struct scan_result *r)
{
    unsigned n = d->added + d->removed + d->changed;
    if (n) {
        if (atomic_load(&s->done_once)) { /* the first scan loads, it does not invalidate */
            atomic_fetch_add(&s->inval[t], n);
            metric_add(s->m_inval[t], n);
        }
        struct cat_stats cs;
        cat_rdlock(s->cat);
        cat_stats(s->cat, &cs);
        cat_unlock(s->cat);
        metric_set(s->m_entries, (double)cs.entries);
        metric_set(s->m_files, (double)cs.files);
        metric_set(s->m_bytes, (double)cs.bytes);
    }
    r->added += d->added;
    r->removed += d->removed;
    r->changed += d->changed;
    r->dropped += d->dropped;
}

static void skip(struct scan *s, enum ps_reason why, const char *dir, const char *name)
{
    s->skipped_now[why]++;
    LOG_DEBUG("skipped", LF_STR("folder", dir), LF_STR("name", name),
              LF_STR("reason", ps_reason_name(why)));
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static size_t path_depth(const char *path)
{
    if (!*path)
        return 0;
    size_t d = 1;
    for (const char *p = path; *p; p++)
        d += *p == '/';
    return d;
}

/* Reads the folder open at fd (its path is path) into items; names are allocated in *names.
 * Returns the number of items. */
static size_t read_folder(struct scan *s, int fd, const char *path, struct cat_item **items,
                          char **names)
{
    size_t n = 0, cap = 0, nb = 0, nbcap = 0;
    *items = NULL;
    *names = NULL;
    int dfd = dup(fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        LOG_WARN("cannot read folder", LF_STR("path", path), LF_STR("error", strerror(errno)));
        return 0;
    }
    size_t plen = strlen(path);
    bool too_deep = path_depth(path) + 1 > PS_MAX_DEPTH;
    /* Name offsets are stored first and turned into pointers at the end (names moves). */
    size_t *offs = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        size_t nlen = strlen(name);
        struct ps_err e;
        if (!ps_check_name(name, nlen, &e)) {
            skip(s, e.reason, path, name);
            continue;
        }
        if (too_deep) {
            skip(s, PS_TOO_DEEP, path, name);
            continue;
        }
        if (plen + 1 + nlen > PS_MAX_PATH) {
            skip(s, PS_TOO_LONG, path, name);
            continue;
        }
        struct stat st;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone since readdir */
        enum cat_kind kind;
        if (S_ISDIR(st.st_mode)) {
            kind = CAT_FOLDER;
        } else if (S_ISREG(st.st_mode)) {
            kind = CAT_FILE;
        } else if (S_ISLNK(st.st_mode)) {
            char rel[PS_MAX_PATH + 2];
            snprintf(rel, sizeof rel, "%s%s%s", path, plen ? "/" : "", name);
            if (ps_resolve(s->root, rel, PS_WANT_FILE, NULL, &st, &e) < 0) {
                if (e.reason != PS_NOT_FOUND)
                    skip(s, ps_is_refusal(e.reason) ? e.reason : PS_SPECIAL, path, name);
                continue;
            }
            kind = CAT_FILE;
        } else {
            skip(s, PS_SPECIAL, path, name);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            *items = realloc(*items, cap * sizeof **items);
            offs = realloc(offs, cap * sizeof *offs);
            if (!*items || !offs)
                abort();
        }
        if (nb + nlen + 1 > nbcap) {
            nbcap = (nb + nlen + 1) * 2;
            *names = realloc(*names, nbcap);
            if (!*names)
                abort();
        }
        memcpy(*names + nb, name, nlen + 1);
        offs[n] = nb;
        nb += nlen + 1;
        (*items)[n++] = (struct cat_item){
            .kind = kind,
            .size = kind == CAT_FILE ? (uint64_t)st.st_size : 0,
            .mtime_ms = mtime_ms(&st),
        };
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        (*items)[i].name = *names + offs[i];
    free(offs);
    return n;
}

static void removed_folders(struct scan *s, struct folder_list *l)
{
    for (size_t i = 0; i < l->nremoved; i++)
        if (s->hooks.folder_removed)
            s->hooks.folder_removed(s->hooks.ud, l->removed[i]);
}

/* Drops path (and what is inside) from the catalogue, if it is there. */
static void drop_path(struct scan *s, const char *path, enum scan_trigger t, struct scan_result *r)
{
    struct folder_list fl = {0};
    struct cat_delta d = {0};
    cat_wrlock(s->cat);
    uint32_t slot = cat_by_path(s->cat, path);
    if (slot != CAT_NONE && slot != cat_root(s->cat))
        cat_remove(s->cat, slot, on_folder, &fl, &d);
    cat_unlock(s->cat);
    removed_folders(s, &fl);
    folder_list_free(&fl);
    count(s, t, &d, r);
}

/* Reads the folder open at fd and applies it; then the subfolders (all of them when recursive,
 * else the new ones). Consumes fd. */
static void sync_fd(struct scan *s, int fd, const char *path, bool recursive, enum scan_trigger t,
                    struct scan_result *r)
{
    if (s->hooks.folder_reading)
        s->hooks.folder_reading(s->hooks.ud, path, fd);
    struct cat_item *items;
    char *names;
    size_t n = read_folder(s, fd, path, &items, &names);
    r->folders++;
    struct folder_list fl = {0};
    struct cat_delta d = {0};
    struct stat st;
    cat_wrlock(s->cat);
    int rc = cat_sync_folder(s->cat, path, items, n, on_folder, &fl, &d);
    if (rc == 0 && fstat(fd, &st) == 0) {
        uint32_t slot = cat_by_path(s->cat, path);
        if (slot != CAT_NONE)
            cat_set_stat(s->cat, slot, 0, mtime_ms(&st));
    }
    cat_unlock(s->cat);
    removed_folders(s, &fl);
    count(s, t, &d, r);
    if (rc == 0) {
        size_t plen = strlen(path);
        /* items is sorted by name now: subfolders are read in name order, so ids given on a
         * collision are the same at every start. */
        for (size_t i = 0; i < n; i++) {
            if (items[i].kind != CAT_FOLDER)
                continue;
            char child[PS_MAX_PATH + 2];
            snprintf(child, sizeof child, "%s%s%s", path, plen ? "/" : "", items[i].name);
            bool is_new = recursive;
            for (size_t j = 0; j < fl.nadded && !is_new; j++)
                is_new = strcmp(fl.added[j], child) == 0;
            if (!is_new)
                continue;
            int cfd = openat(fd, items[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                /* Gone or swapped for a symlink since it was read. */
                drop_path(s, child, t, r);
                continue;
            }
            sync_fd(s, cfd, child, true, t, r);
        }
    }
    folder_list_free(&fl);
    free(items);
    free(names);
    close(fd);
}

static int folder_locked(struct scan *s, const char *path, bool recursive, enum scan_trigger t,
                         struct scan_result *r)
{
    int fd;
    struct ps_err e;
    if (ps_resolve(s->root, path, PS_WANT_DIR | PS_OPEN, &fd, NULL, &e) < 0) {
        if (*path)
            drop_path(s, path, t, r);
        else
            LOG_ERROR("cannot read FILES_ROOT", LF_STR("error", e.msg));
        return -1;
    }
    sync_fd(s, fd, path, recursive, t, r);
    return 0;
}

int scan_full(struct scan *s, enum scan_trigger t, struct scan_result *r)
{
    struct scan_result local = {0};
    if (!r)
        r = &local;
    memset(r, 0, sizeof *r);
    int64_t t0 = clock_mono_us();
    pthread_mutex_lock(&s->mu);
    memset(s->skipped_now, 0, sizeof s->skipped_now);
    int rc = folder_locked(s, "", true, t, r);
    for (int i = 0; i < PS__COUNT; i++) {
        atomic_store(&s->skipped[i], s->skipped_now[i]);
        if (s->m_skipped[i])
            metric_set(s->m_skipped[i], (double)s->skipped_now[i]);
    }
    pthread_mutex_unlock(&s->mu);
    int64_t us = clock_mono_us() - t0;
    r->ms = us / 1000;
    metric_observe(s->m_duration, (double)us / 1e6);
    metric_set(s->m_last, (double)us / 1e6);
    atomic_store(&s->last_full_ms, r->ms);
    atomic_store(&s->done_once, true);
    if (r->dropped)
        LOG_WARN("catalogue full: entries left out (raise MAX_ENTRIES)",
                 LF_U64("dropped", r->dropped));
    return rc;
}

int scan_folder(struct scan *s, const char *path, bool recursive, enum scan_trigger t,
                struct scan_result *r)
{
    struct scan_result local = {0};
    if (!r)
        r = &local;
    pthread_mutex_lock(&s->mu);
    int rc = folder_locked(s, path, recursive, t, r);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int scan_path(struct scan *s, const char *path, enum scan_trigger t, struct scan_result *r)
{
    struct scan_result local = {0};
    if (!r)
        r = &local;
    char *p = strdup(path);
    if (!p)
        abort();
    pthread_mutex_lock(&s->mu);
    cat_rdlock(s->cat);
    uint32_t slot = cat_by_path(s->cat, p);
    enum cat_kind kind = slot != CAT_NONE ? cat_kind_of(s->cat, slot) : 0;
    cat_unlock(s->cat);
    if (kind == CAT_FOLDER) {
        folder_locked(s, p, true, t, r);
    } else if (kind == CAT_FILE) {
        struct stat st;
        struct ps_err e;
        if (ps_resolve(s->root, p, PS_WANT_FILE, NULL, &st, &e) < 0) {
            drop_path(s, p, t, r);
            if (e.reason == PS_WRONG_KIND) { /* a folder now: read it from its parent */
                char *slash = strrchr(p, '/');
                if (slash)
                    *slash = '\0';
                else
                    p[0] = '\0';
                folder_locked(s, p, false, t, r);
            }
        } else {
            struct cat_delta d = {0};
            cat_wrlock(s->cat);
            slot = cat_by_path(s->cat, p);
            if (slot != CAT_NONE && cat_set_stat(s->cat, slot, (uint64_t)st.st_size, mtime_ms(&st)))
                d.changed++;
            cat_unlock(s->cat);
            count(s, t, &d, r);
        }
    } else {
        /* Not catalogued: read the nearest catalogued folder above it. */
        for (;;) {
            char *slash = strrchr(p, '/');
            if (slash)
                *slash = '\0';
            else
                p[0] = '\0';
            cat_rdlock(s->cat);
            slot = cat_by_path(s->cat, p);
            bool folder = slot != CAT_NONE && cat_kind_of(s->cat, slot) == CAT_FOLDER;
            cat_unlock(s->cat);
            if (folder || !p[0]) {
                folder_locked(s, p, false, t, r);
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    cat_rdlock(s->cat);
    int found = cat_by_path(s->cat, path) != CAT_NONE;
    cat_unlock(s->cat);
    free(p);
    return found;
}

bool scan_done_once(struct scan *s)
{
    return atomic_load(&s->done_once);
}

int64_t scan_last_full_ms(struct scan *s)
{
    return atomic_load(&s->last_full_ms);
}

uint64_t scan_invalidations(struct scan *s, enum scan_trigger t)
{
    return t < SCAN__TRIGGERS ? atomic_load(&s->inval[t]) : 0;
}

uint64_t scan_skipped(struct scan *s, enum ps_reason r)
{
    return r < PS__COUNT ? atomic_load(&s->skipped[r]) : 0;
}
