/* watch.c -- inotify watches, event coalescing and periodic rescans.
 *
 * DESIGN: an event is not applied as such; it only says which folder's listing (create,
 * delete, move) or which file's attributes (write, attrib) to read again. Reading the disk
 * again is always right, whatever order the events came in, so moves, renames of folders and
 * editors' write-to-temp-and-rename all come out the same as a rescan would. The map from
 * watch descriptor to folder path is kept under a mutex because the scanner's hooks run on
 * whichever thread scans. */
#include "watch.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY |            \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

struct wnode {
    int wd;
    char *path;
    struct wnode *next_wd, *next_path;
};

struct watch {
    struct scan *scan;
    const struct ps_root *root;
    struct watch_opts o;
    int ifd, efd;
    pthread_t thread;
    bool running;
    _Atomic bool active;
    bool warned_limit;

    pthread_mutex_t mu; /* the maps */
    struct wnode **by_wd, **by_path;
    size_t nb, count;

    struct metric *m_watches, *m_overflows;
};

/* ---- the wd <-> path maps ------------------------------------------------------------------- */

static size_t hash_str(const char *s)
{
    size_t h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

static void maps_grow(struct watch *w)
{
    size_t nb = w->nb ? w->nb * 2 : 256;
    struct wnode **bw = calloc(nb, sizeof *bw), **bp = calloc(nb, sizeof *bp);
    if (!bw || !bp)
        abort();
    for (size_t i = 0; i < w->nb; i++) {
        for (struct wnode *n = w->by_wd[i], *next; n; n = next) {
            next = n->next_wd;
            size_t b = (size_t)n->wd & (nb - 1);
            n->next_wd = bw[b];
            bw[b] = n;
        }
        for (struct wnode *n = w->by_path[i], *next; n; n = next) {
            next = n->next_path;
            size_t b = hash_str(n->path) & (nb - 1);
            n->next_path = bp[b];
            bp[b] = n;
        }
    }
    free(w->by_wd);
    free(w->by_path);
    w->by_wd = bw;
    w->by_path = bp;
    w->nb = nb;
}

static struct wnode *find_wd(struct watch *w, int wd)
{
    for (struct wnode *n = w->by_wd[(size_t)wd & (w->nb - 1)]; n; n = n->next_wd)
        if (n->wd == wd)
            return n;
    return NULL;
}

static struct wnode *find_path(struct watch *w, const char *path)
{
    for (struct wnode *n = w->by_path[hash_str(path) & (w->nb - 1)]; n; n = n->next_path)
        if (strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

static void map_del(struct watch *w, struct wnode *x)
{
    struct wnode **pp = &w->by_wd[(size_t)x->wd & (w->nb - 1)];
    while (*pp != x)
        pp = &(*pp)->next_wd;
    *pp = x->next_wd;
    pp = &w->by_path[hash_str(x->path) & (w->nb - 1)];
    while (*pp != x)
        pp = &(*pp)->next_path;
    *pp = x->next_path;
    free(x->path);
    free(x);
    w->count--;
    metric_set(w->m_watches, (double)w->count);
}

static void map_put(struct watch *w, int wd, const char *path)
{
    struct wnode *old = find_wd(w, wd);
    if (old) /* the same folder under a new path (moved): the newest path wins */
        map_del(w, old);
    if (w->count + 1 > w->nb)
        maps_grow(w);
    struct wnode *n = calloc(1, sizeof *n);
    if (!n || !(n->path = strdup(path)))
        abort();
    n->wd = wd;
    size_t b = (size_t)wd & (w->nb - 1);
    n->next_wd = w->by_wd[b];
    w->by_wd[b] = n;
    b = hash_str(path) & (w->nb - 1);
    n->next_path = w->by_path[b];
    w->by_path[b] = n;
    w->count++;
    metric_set(w->m_watches, (double)w->count);
}

/* ---- scanner hooks ------------------------------------------------------------------------- */

static void hook_reading(void *ud, const char *path, int fd)
{
    struct watch *w = ud;
    pthread_mutex_lock(&w->mu);
    if (w->ifd < 0 || find_path(w, path)) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    /* Watch the folder we hold open, not a path that could have been swapped meanwhile. */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(w->ifd, proc, WATCH_MASK);
    if (wd < 0 && errno == ENOENT) { /* no /proc: the path, without following a symlink */
        char full[PS_MAX_PATH + 4096];
        snprintf(full, sizeof full, "%s/%s", ps_root_path(w->root), path);
        wd = inotify_add_watch(w->ifd, full, WATCH_MASK | IN_DONT_FOLLOW);
    }
    if (wd < 0) {
        if (!w->warned_limit) {
            w->warned_limit = true;
            LOG_WARN(errno == ENOSPC
                         ? "out of inotify watches (raise fs.inotify.max_user_watches): "
                           "changes below some folders are seen by rescans only"
                         : "cannot watch a folder: its changes are seen by rescans only",
                     LF_STR("path", path), LF_STR("error", strerror(errno)));
        }
        atomic_store(&w->active, false);
    } else {
        map_put(w, wd, path);
    }
    pthread_mutex_unlock(&w->mu);
}

static void hook_removed(void *ud, const char *path)
{
    struct watch *w = ud;
    pthread_mutex_lock(&w->mu);
    struct wnode *n = find_path(w, path);
    if (n) {
        if (w->ifd >= 0)
            inotify_rm_watch(w->ifd, n->wd); /* EINVAL when the kernel dropped it already */
        map_del(w, n);
    }
    pthread_mutex_unlock(&w->mu);
}

/* ---- events ---------------------------------------------------------------------------------- */

struct dirty {
    char **v;
    size_t n, cap;
};

static bool dirty_add(struct dirty *d, const char *path)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i], path) == 0)
            return true;
    if (d->n >= WATCH_MAX_DIRTY)
        return false;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->v = realloc(d->v, d->cap * sizeof *d->v);
        if (!d->v)
            abort();
    }
    if (!(d->v[d->n] = strdup(path)))
        abort();
    d->n++;
    return true;
}

static void dirty_clear(struct dirty *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i]);
    d->n = 0;
}

struct burst {
    struct dirty folders, files;
    bool overflow;
};

static void parent_of(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
    else
        out[0] = '\0';
}

static void note_event(struct watch *w, const struct inotify_event *ev, struct burst *b)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        b->overflow = true;
        metric_inc(w->m_overflows);
        return;
    }
    char path[PS_MAX_PATH + 1], other[PS_MAX_PATH + 1];
    pthread_mutex_lock(&w->mu);
    struct wnode *n = find_wd(w, ev->wd);
    if (n)
        snprintf(path, sizeof path, "%s", n->path);
    if (n && (ev->mask & IN_IGNORED))
        map_del(w, n); /* the folder is gone (or was unwatched by us, then n is NULL) */
    pthread_mutex_unlock(&w->mu);
    if (!n)
        return;
    bool ok = true;
    if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        if (!path[0]) {
            LOG_ERROR("FILES_ROOT itself was deleted or moved", LF_U64("mask", ev->mask));
            return;
        }
        parent_of(path, other, sizeof other);
        ok = dirty_add(&b->folders, other);
    } else if (ev->len && ev->name[0]) {
        struct ps_err e;
        if (!ps_check_name(ev->name, strlen(ev->name), &e))
            return; /* never in the catalogue: hidden, temp files, bad names */
        if (ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
            ok = dirty_add(&b->folders, path);
        } else if (!(ev->mask & IN_ISDIR)) {
            int k = snprintf(other, sizeof other, "%s%s%s", path, path[0] ? "/" : "", ev->name);
            if (k > 0 && (size_t)k < sizeof other)
                ok = dirty_add(&b->files, other);
        }
    }
    if (!ok)
        b->overflow = true; /* too much at once: a rescan is cheaper than remembering it */
}

/* Reads every queued event; returns the number read, -1 on a read error. */
static int drain(struct watch *w, struct burst *b)
{
    _Alignas(struct inotify_event) char buf[16384];
    int nev = 0;
    for (;;) {
        ssize_t len = read(w->ifd, buf, sizeof buf);
        if (len < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return nev;
            LOG_ERROR("inotify read failed", LF_STR("error", strerror(errno)));
            return -1;
        }
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            note_event(w, ev, b);
            nev++;
            p += sizeof *ev + ev->len;
        }
    }
}

static void apply(struct watch *w, struct burst *b)
{
    if (b->overflow) {
        LOG_WARN("inotify queue overflowed: rescanning everything");
        scan_full(w->scan, SCAN_RESCAN, NULL);
        goto out;
    }
    for (size_t i = 0; i < b->folders.n; i++)
        scan_folder(w->scan, b->folders.v[i], false, SCAN_INOTIFY, NULL);
    for (size_t i = 0; i < b->files.n; i++) {
        /* A file whose folder was just read is up to date already, unless the folder is
         * elsewhere; a parent-folder read re-stats every file it lists. */
        char parent[PS_MAX_PATH + 1];
        parent_of(b->files.v[i], parent, sizeof parent);
        bool covered = false;
        for (size_t j = 0; j < b->folders.n && !covered; j++)
            covered = strcmp(parent, b->folders.v[j]) == 0;
        if (!covered)
            scan_path(w->scan, b->files.v[i], SCAN_INOTIFY, NULL);
    }
out:
    dirty_clear(&b->folders);
    dirty_clear(&b->files);
    b->overflow = false;
}

static void *watch_main(void *arg)
{
    struct watch *w = arg;
    struct burst b = {0};
    int64_t next_rescan = w->o.rescan_ms > 0 ? clock_mono_ms() + w->o.rescan_ms : INT64_MAX;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = w->efd, .events = POLLIN}, {.fd = w->ifd, .events = POLLIN}};
        int nfds = w->ifd >= 0 ? 2 : 1;
        int64_t now = clock_mono_ms();
        int timeout = next_rescan == INT64_MAX ? -1
                      : next_rescan <= now
                          ? 0
                          : (int)(next_rescan - now > 60000 ? 60000 : next_rescan - now);
        int rc = poll(pfd, (nfds_t)nfds, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break; /* watch_free */
        if (nfds == 2 && (pfd[1].revents & POLLIN)) {
            int64_t start = clock_mono_ms();
            if (drain(w, &b) < 0) {
                /* Broken inotify: fall back to rescans (scheduled now). */
                atomic_store(&w->active, false);
                pthread_mutex_lock(&w->mu);
                close(w->ifd);
                w->ifd = -1;
                pthread_mutex_unlock(&w->mu);
                b.overflow = true;
            }
            /* Coalesce the rest of the burst. */
            while (w->ifd >= 0 && clock_mono_ms() - start < WATCH_MAX_BURST_MS) {
                struct pollfd q = {.fd = w->ifd, .events = POLLIN};
                if (poll(&q, 1, WATCH_DEBOUNCE_MS) <= 0)
                    break;
                if (drain(w, &b) < 0)
                    break;
            }
            apply(w, &b);
        }
        if (clock_mono_ms() >= next_rescan) {
            struct scan_result r;
            scan_full(w->scan, SCAN_RESCAN, &r);
            LOG_DEBUG("rescan", LF_I64("ms", r.ms), LF_U64("added", r.added),
                      LF_U64("removed", r.removed), LF_U64("changed", r.changed));
            next_rescan = clock_mono_ms() + w->o.rescan_ms;
        }
    }
    dirty_clear(&b.folders);
    dirty_clear(&b.files);
    free(b.folders.v);
    free(b.files.v);
    return NULL;
}

/* ---- public -----------------------------------------------------------------------------------
 */

struct watch *watch_new(struct scan *scan, const struct ps_root *root, const struct watch_opts *o)
{
    struct watch *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->scan = scan;
    w->root = root;
    w->o = *o;
    w->ifd = -1;
    pthread_mutex_init(&w->mu, NULL);
    maps_grow(w);
    w->m_watches = metrics_gauge("engbot_cache_inotify_watches", "Folders watched with inotify.");
    w->m_overflows = metrics_counter("engbot_cache_inotify_overflows_total",
                                     "inotify queue overflows (each answered by a full rescan).");
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0) {
        LOG_ERROR("eventfd failed", LF_STR("error", strerror(errno)));
        abort();
    }
    if (o->inotify) {
        w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->ifd < 0)
            LOG_WARN("inotify unavailable: changes are seen by periodic rescans only",
                     LF_STR("error", strerror(errno)));
        else
            atomic_store(&w->active, true);
    }
    if (w->ifd < 0 && o->rescan_ms <= 0)
        LOG_WARN("no inotify and no periodic rescan: the catalogue changes only on a manual "
                 "Invalidate");
    struct scan_hooks h = {hook_reading, hook_removed, w};
    scan_set_hooks(scan, &h);
    return w;
}

void watch_run(struct watch *w)
{
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        LOG_ERROR("cannot start the watch thread", LF_STR("error", strerror(errno)));
        abort();
    }
    w->running = true;
}

void watch_free(struct watch *w)
{
    if (!w)
        return;
    if (w->running) {
        uint64_t one = 1;
        if (write(w->efd, &one, sizeof one) < 0)
            LOG_WARN("eventfd write failed", LF_STR("error", strerror(errno)));
        pthread_join(w->thread, NULL);
    }
    struct scan_hooks none = {0};
    scan_set_hooks(w->scan, &none);
    if (w->ifd >= 0)
        close(w->ifd);
    close(w->efd);
    for (size_t i = 0; i < w->nb; i++) {
        for (struct wnode *n = w->by_wd[i], *next; n; n = next) {
            next = n->next_wd;
            free(n->path);
            free(n);
        }
    }
    free(w->by_wd);
    free(w->by_path);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

bool watch_inotify_active(const struct watch *w)
{
    return atomic_load(&w->active);
}

size_t watch_count(const struct watch *w)
{
    struct watch *mw = (struct watch *)w;
    pthread_mutex_lock(&mw->mu);
    size_t n = mw->count;
    pthread_mutex_unlock(&mw->mu);
    return n;
}
