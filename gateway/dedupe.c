/* dedupe.c -- a hash set of update ids with a FIFO ring for eviction, persisted as snapshot +
 * append log (durable.h). */
#include "dedupe.h"
#include "durable.h"
#include "hash.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIND_SNAP 0x55504453u /* "SDPU" */
#define KIND_LOG  0x55504c47u /* "GLPU" */
#define VERSION   1

enum { ST_FREE = 0, ST_DONE = 1, ST_BUSY = 2, ST_GONE = 3 };

struct slot {
    int64_t id;
    uint8_t st;
};

struct dedupe {
    pthread_mutex_t mu;
    size_t window;
    struct slot *tab; /* open addressing, linear probing, tombstones (ST_GONE) */
    size_t cap, used, done;
    int64_t *ring; /* finished ids in order, for eviction */
    size_t rhead, rlen;
    int64_t max;
    char *dir, *snap_path, *log_path;
    struct rlog *log;
    size_t log_records;
};

static size_t hash(int64_t id, size_t cap)
{
    return (size_t)hash_mix64((uint64_t)id) & (cap - 1);
}

static struct slot *find(struct dedupe *d, int64_t id, bool for_insert)
{
    size_t i = hash(id, d->cap);
    struct slot *tomb = NULL;
    for (size_t n = 0; n < d->cap; n++, i = (i + 1) & (d->cap - 1)) {
        struct slot *s = &d->tab[i];
        if (s->st == ST_FREE)
            return for_insert ? (tomb ? tomb : s) : NULL;
        if (s->st == ST_GONE) {
            if (!tomb)
                tomb = s;
            continue;
        }
        if (s->id == id)
            return s;
    }
    return for_insert ? tomb : NULL;
}

/* calloc, with every page touched now: the window's memory is resident from the start (RSS at
 * start is what it will be once the window is full, so a memory limit is met at start, not
 * hours later), and no update pays a page fault for the first touch of its slot. */
static void *zalloc_resident(size_t n, size_t size)
{
    char *p = calloc(n, size);
    if (!p)
        abort();
    volatile char *v = p;
    for (size_t o = 0; o < n * size; o += 4096)
        v[o] = 0;
    return p;
}

static void rehash(struct dedupe *d)
{
    struct slot *old = d->tab;
    size_t oldcap = d->cap;
    d->tab = zalloc_resident(d->cap, sizeof *d->tab);
    d->used = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].st == ST_DONE || old[i].st == ST_BUSY) {
            struct slot *s = find(d, old[i].id, true);
            *s = old[i];
            d->used++;
        }
    }
    free(old);
}

static void forget(struct dedupe *d, int64_t id)
{
    struct slot *s = find(d, id, false);
    if (s) {
        if (s->st == ST_DONE)
            d->done--;
        s->st = ST_GONE;
    }
}

/* Under mu: records a finished id in the set and the ring (evicting the oldest). */
static void remember(struct dedupe *d, int64_t id)
{
    struct slot *s = find(d, id, false);
    if (s && s->st == ST_DONE)
        return;
    if (!s) {
        if ((d->used + 1) * 4 > d->cap * 3)
            rehash(d); /* tombstones pile up: clean them */
        s = find(d, id, true);
        if (s->st == ST_FREE)
            d->used++;
    }
    s->id = id;
    s->st = ST_DONE;
    d->done++;
    if (d->rlen == d->window) {
        forget(d, d->ring[d->rhead]);
        d->ring[d->rhead] = id;
        d->rhead = (d->rhead + 1) % d->window;
    } else {
        d->ring[(d->rhead + d->rlen++) % d->window] = id;
    }
    if (id > d->max)
        d->max = id;
}

static int load_rec(void *arg, const uint8_t *rec, size_t len)
{
    struct dedupe *d = arg;
    for (size_t o = 0; o + 8 <= len; o += 8) {
        int64_t id;
        memcpy(&id, rec + o, 8);
        remember(d, id);
    }
    return 0;
}

static void load(struct dedupe *d, const char *path, uint32_t kind)
{
    struct dread_result res;
    int rc = dread_file(path, kind, load_rec, d, &res);
    if (rc < 0 || (rc == 0 && res.damaged)) {
        char aside[1200];
        durable_keep_aside(path, aside, sizeof aside);
        LOG_ERROR("update dedupe file damaged: kept aside, continuing with what was readable",
                  LF_STR("file", path), LF_STR("kept_as", aside), LF_STR("why", res.why),
                  LF_U64("records", res.records));
    }
}

/* Under mu: writes the window as one snapshot record and starts an empty log. */
static int compact(struct dedupe *d, char *err, size_t errlen)
{
    if (d->log) {
        rlog_close(d->log);
        d->log = NULL;
    }
    struct dfile *f = dfile_create(d->snap_path, KIND_SNAP, VERSION, err, errlen);
    if (!f)
        return -1;
    int64_t *ids = malloc((d->rlen ? d->rlen : 1) * sizeof *ids);
    if (!ids)
        abort();
    for (size_t i = 0; i < d->rlen; i++)
        ids[i] = d->ring[(d->rhead + i) % d->window];
    int rc = d->rlen ? dfile_record(f, ids, d->rlen * 8) : 0;
    free(ids);
    if (rc < 0) {
        dfile_abort(f);
        snprintf(err, errlen, "cannot write %s", d->snap_path);
        return -1;
    }
    uint64_t bytes;
    if (dfile_commit(f, &bytes, err, errlen) < 0)
        return -1;
    if (unlink(d->log_path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", d->log_path, strerror(errno));
        return -1;
    }
    struct rlog_opts lo = {.sync_interval_ms = 1000};
    d->log = rlog_open(d->log_path, KIND_LOG, VERSION, &lo, err, errlen);
    d->log_records = 0;
    return d->log ? 0 : -1;
}

struct dedupe *dedupe_open(const char *dir, size_t window, char *err, size_t errlen)
{
    struct dedupe *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    pthread_mutex_init(&d->mu, NULL);
    d->window = window ? window : 1;
    d->cap = 16;
    while (d->cap < window * 2 + 16)
        d->cap *= 2;
    d->tab = zalloc_resident(d->cap, sizeof *d->tab);
    d->ring = zalloc_resident(d->window, sizeof *d->ring);
    if (dir && *dir) {
        if (durable_check_dir(dir, err, errlen) < 0)
            goto fail;
        d->dir = strdup(dir);
        if (asprintf(&d->snap_path, "%s/updates.snap", dir) < 0 ||
            asprintf(&d->log_path, "%s/updates.log", dir) < 0)
            abort();
        load(d, d->snap_path, KIND_SNAP);
        load(d, d->log_path, KIND_LOG);
        if (compact(d, err, errlen) < 0)
            goto fail;
        LOG_INFO("update dedupe window loaded", LF_STR("dir", dir), LF_U64("ids", d->done),
                 LF_I64("max_update_id", d->max));
    }
    return d;
fail:
    dedupe_close(d);
    return NULL;
}

void dedupe_close(struct dedupe *d)
{
    if (!d)
        return;
    if (d->log)
        rlog_close(d->log);
    free(d->tab);
    free(d->ring);
    free(d->dir);
    free(d->snap_path);
    free(d->log_path);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

enum dedupe_res dedupe_begin(struct dedupe *d, int64_t id)
{
    enum dedupe_res r = DEDUPE_NEW;
    pthread_mutex_lock(&d->mu);
    struct slot *s = find(d, id, false);
    if (s && s->st == ST_DONE) {
        r = DEDUPE_DONE;
    } else if (s && s->st == ST_BUSY) {
        r = DEDUPE_IN_PROGRESS;
    } else {
        if ((d->used + 1) * 4 > d->cap * 3)
            rehash(d);
        s = find(d, id, true);
        if (s->st == ST_FREE)
            d->used++;
        s->id = id;
        s->st = ST_BUSY;
    }
    pthread_mutex_unlock(&d->mu);
    return r;
}

void dedupe_finish(struct dedupe *d, int64_t id, bool handled)
{
    pthread_mutex_lock(&d->mu);
    struct slot *s = find(d, id, false);
    if (s && s->st == ST_BUSY)
        s->st = ST_GONE;
    if (handled) {
        remember(d, id);
        if (d->log) {
            if (rlog_append(d->log, &id, 8, NULL, NULL) < 0)
                LOG_WARN("update dedupe log append failed", LF_I64("update_id", id));
            if (++d->log_records > d->window) {
                char err[256];
                if (compact(d, err, sizeof err) < 0)
                    LOG_ERROR("update dedupe compaction failed", LF_STR("error", err));
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
}

size_t dedupe_size(struct dedupe *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->done;
    pthread_mutex_unlock(&d->mu);
    return n;
}

int64_t dedupe_max(struct dedupe *d)
{
    pthread_mutex_lock(&d->mu);
    int64_t m = d->max;
    pthread_mutex_unlock(&d->mu);
    return m;
}
