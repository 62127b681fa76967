/* fileids.c -- the file_id table, its snapshot + log persistence and compaction.
 *
 * DESIGN: the table is a chained hash on (bot, path). A put or drop changes the table and
 * appends a record to the log under one mutex (so the log's order is the table's order), and
 * is acknowledged by the log's group commit. When the log outgrows max(LOG_COMPACT, twice the
 * snapshot), the log is rotated to the next generation and a snapshot of the table, which
 * covers every older log, is written; then the older logs are deleted. A crash between any two
 * of those steps leaves files that replay to the same table (records are idempotent). */
#include "fileids.h"
#include "durable.h"
#include "hash.h"
#include "log.h"
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_COMPACT (1u << 20) /* bytes of log before a compaction is considered */
#define SNAP_NAME   "fileids.snap"

struct fnode {
    struct fnode *next;
    int64_t bot;
    uint64_t size;
    int64_t mtime_ms;
    char *path;
    char id[FIDREC_MAX_ID + 1];
};

struct fileids {
    pthread_mutex_t mu;
    struct fnode **b;
    size_t nb, count, max;
    char *dir;
    bool no_fsync;
    struct rlog *log;
    uint64_t gen;        /* the current log's generation */
    uint64_t snap_bytes; /* size of the last snapshot */
    struct metric *m_entries, *m_damaged, *m_compactions, *m_fsync;
};

/* ---- the table ------------------------------------------------------------------------------- */

static size_t key_hash(int64_t bot, const char *path)
{
    return (size_t)hash_bytes(path, strlen(path), hash_mix64((uint64_t)bot));
}

static struct fnode **find(struct fileids *f, int64_t bot, const char *path)
{
    struct fnode **pp = &f->b[key_hash(bot, path) & (f->nb - 1)];
    while (*pp && !((*pp)->bot == bot && strcmp((*pp)->path, path) == 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(struct fileids *f)
{
    size_t nb = f->nb ? f->nb * 2 : 256;
    struct fnode **b = calloc(nb, sizeof *b);
    if (!b)
        abort();
    for (size_t i = 0; i < f->nb; i++) {
        for (struct fnode *n = f->b[i], *next; n; n = next) {
            next = n->next;
            size_t k = key_hash(n->bot, n->path) & (nb - 1);
            n->next = b[k];
            b[k] = n;
        }
    }
    free(f->b);
    f->b = b;
    f->nb = nb;
}

/* Inserts or replaces. False when the table is full (a new key past max). */
static bool table_put(struct fileids *f, int64_t bot, const char *path, size_t plen, uint64_t size,
                      int64_t mtime_ms, const char *id, size_t idlen)
{
    char *p = strndup(path, plen);
    if (!p)
        abort();
    struct fnode **pp = find(f, bot, p);
    struct fnode *n = *pp;
    if (!n) {
        if (f->count >= f->max) {
            free(p);
            return false;
        }
        n = calloc(1, sizeof *n);
        if (!n)
            abort();
        n->bot = bot;
        n->path = p;
        p = NULL;
        *pp = n;
        f->count++;
        if (f->count > f->nb)
            grow(f);
    }
    free(p);
    n->size = size;
    n->mtime_ms = mtime_ms;
    memcpy(n->id, id, idlen);
    n->id[idlen] = '\0';
    metric_set(f->m_entries, (double)f->count);
    return true;
}

static bool table_drop(struct fileids *f, int64_t bot, const char *path, size_t plen,
                       const char *only_if)
{
    char *p = strndup(path, plen);
    if (!p)
        abort();
    struct fnode **pp = find(f, bot, p);
    free(p);
    struct fnode *n = *pp;
    if (!n || (only_if && only_if[0] && strcmp(n->id, only_if) != 0))
        return false;
    *pp = n->next;
    free(n->path);
    free(n);
    f->count--;
    metric_set(f->m_entries, (double)f->count);
    return true;
}

/* ---- files ----------------------------------------------------------------------------------- */

struct load {
    struct fileids *f;
    struct dread_result *res;
    uint64_t gen; /* from a snapshot's GEN record */
    char why[192];
};

static int apply_record(void *arg, const uint8_t *rec, size_t len)
{
    struct load *ld = arg;
    if (ld->res->version > FIDREC_VERSION) {
        snprintf(ld->why, sizeof ld->why,
                 "written in format version %u, this cache-svc reads up to %u", ld->res->version,
                 FIDREC_VERSION);
        return 1;
    }
    struct fidrec r;
    int rc = fidrec_decode(rec, len, &r, ld->why, sizeof ld->why);
    if (rc < 0)
        return 1;
    if (rc == 0)
        return 0;
    switch (r.op) {
    case FIDREC_GEN:
        ld->gen = r.gen;
        break;
    case FIDREC_PUT:
        if (!table_put(ld->f, r.bot_id, r.path, r.path_len, r.size, r.mtime_ms, r.file_id,
                       r.id_len) &&
            !ld->why[0])
            snprintf(ld->why, sizeof ld->why,
                     "more file_ids than MAX_FILE_IDS (%zu); the rest "
                     "were left out",
                     ld->f->max);
        break;
    case FIDREC_DROP:
        table_drop(ld->f, r.bot_id, r.path, r.path_len, NULL);
        break;
    }
    return 0;
}

static int read_store_file(struct fileids *f, const char *path, bool is_log, struct load *ld,
                           struct dread_result *res)
{
    memset(ld, 0, sizeof *ld);
    ld->f = f;
    ld->res = res;
    int rc = dread_file(path, is_log ? FIDREC_KIND_LOG : FIDREC_KIND_SNAP, apply_record, ld, res);
    if (rc < 0 && ld->why[0])
        snprintf(res->why, sizeof res->why, "%s", ld->why);
    return rc;
}

int fileids_apply_file(struct fileids *f, const char *path, bool is_log, struct fileids_report *rep)
{
    struct load ld;
    struct dread_result res;
    pthread_mutex_lock(&f->mu);
    int rc = read_store_file(f, path, is_log, &ld, &res);
    pthread_mutex_unlock(&f->mu);
    if (rep) {
        rep->records += res.records;
        if (rc < 0 || res.damaged) {
            rep->damaged++;
            snprintf(rep->why, sizeof rep->why, "%s", res.why);
        }
    }
    return rc;
}

static void path_in(const struct fileids *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, name);
}

static void log_path(const struct fileids *f, uint64_t gen, char *out, size_t cap)
{
    char name[64];
    snprintf(name, sizeof name, "fileids.%" PRIu64 ".log", gen);
    path_in(f, name, out, cap);
}

/* The generation of a log file name, or 0 when name is not one. */
static uint64_t log_gen(const char *name)
{
    unsigned long long g;
    int end = 0;
    if (sscanf(name, "fileids.%llu.log%n", &g, &end) == 1 && end > 0 && name[end] == '\0' && g > 0)
        return g;
    return 0;
}

static int gen_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The generations of the logs in the directory, ascending (malloc'd). */
static uint64_t *list_logs(const struct fileids *f, size_t *n)
{
    *n = 0;
    size_t cap = 0;
    uint64_t *v = NULL;
    DIR *d = opendir(f->dir);
    if (!d)
        return NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t g = log_gen(de->d_name);
        if (!g)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            v = realloc(v, cap * sizeof *v);
            if (!v)
                abort();
        }
        v[(*n)++] = g;
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, gen_cmp);
    return v;
}

static void remove_logs_below(struct fileids *f, uint64_t gen)
{
    size_t n;
    uint64_t *gens = list_logs(f, &n);
    for (size_t i = 0; i < n; i++) {
        if (gens[i] >= gen)
            continue;
        char p[4096];
        log_path(f, gens[i], p, sizeof p);
        if (unlink(p) < 0 && errno != ENOENT)
            LOG_WARN("cannot delete an old file_id log", LF_STR("file", p),
                     LF_STR("error", strerror(errno)));
    }
    free(gens);
}

/* Keeps a damaged file aside and says so loudly. */
static void keep_aside(struct fileids *f, const char *path, const char *why,
                       struct fileids_report *rep)
{
    char aside[4200];
    int rc = durable_keep_aside(path, aside, sizeof aside);
    metric_inc(f->m_damaged);
    rep->damaged++;
    snprintf(rep->why, sizeof rep->why, "%s: %s", path, why);
    LOG_ERROR("file_id store file is damaged: kept aside, its records after the damage are not "
              "used (their files will be uploaded again)",
              LF_STR("file", path), LF_STR("kept_as", rc == 0 ? aside : "(rename failed)"),
              LF_STR("why", why));
}

static int write_snapshot(struct fileids *f, uint64_t gen)
{
    char path[4096], err[256];
    path_in(f, SNAP_NAME, path, sizeof path);
    struct dfile *df = dfile_create(path, FIDREC_KIND_SNAP, FIDREC_VERSION, err, sizeof err);
    if (!df) {
        LOG_ERROR("cannot write the file_id snapshot", LF_STR("file", path), LF_STR("error", err));
        return -1;
    }
    uint8_t buf[FIDREC_MAX];
    struct fidrec r = {.op = FIDREC_GEN, .gen = gen};
    int rc = dfile_record(df, buf, fidrec_encode(&r, buf));
    for (size_t i = 0; i < f->nb && rc == 0; i++) {
        for (struct fnode *n = f->b[i]; n && rc == 0; n = n->next) {
            r = (struct fidrec){.op = FIDREC_PUT,
                                .bot_id = n->bot,
                                .size = n->size,
                                .mtime_ms = n->mtime_ms,
                                .path = n->path,
                                .path_len = strlen(n->path),
                                .file_id = n->id,
                                .id_len = strlen(n->id)};
            rc = dfile_record(df, buf, fidrec_encode(&r, buf));
        }
    }
    uint64_t bytes = 0;
    if (rc != 0) {
        dfile_abort(df);
        LOG_ERROR("cannot write the file_id snapshot", LF_STR("file", path));
        return -1;
    }
    if (dfile_commit(df, &bytes, err, sizeof err) < 0) {
        LOG_ERROR("cannot write the file_id snapshot", LF_STR("file", path), LF_STR("error", err));
        return -1;
    }
    f->snap_bytes = bytes;
    return 0;
}

static struct rlog *open_log(struct fileids *f, uint64_t gen)
{
    char path[4096], err[256];
    log_path(f, gen, path, sizeof path);
    struct rlog_opts o = {
        .sync_interval_ms = 200, .no_fsync = f->no_fsync, .fsync_seconds = f->m_fsync};
    struct rlog *l = rlog_open(path, FIDREC_KIND_LOG, FIDREC_VERSION, &o, err, sizeof err);
    if (!l)
        LOG_ERROR("cannot open the file_id log", LF_STR("file", path), LF_STR("error", err));
    return l;
}

/* Under f->mu: next generation's log, a snapshot covering the older ones, then delete them. */
static void compact_locked(struct fileids *f)
{
    char path[4096], err[256];
    uint64_t next = f->gen + 1;
    log_path(f, next, path, sizeof path);
    if (rlog_rotate(f->log, path, err, sizeof err) < 0) {
        LOG_WARN("file_id log compaction: cannot start a new log", LF_STR("error", err));
        return;
    }
    f->gen = next;
    if (write_snapshot(f, next) == 0) {
        remove_logs_below(f, next);
        metric_inc(f->m_compactions);
    }
}

/* ---- public -----------------------------------------------------------------------------------
 */

struct fileids *fileids_open(const struct fileids_opts *o, struct fileids_report *rep, char *err,
                             size_t errlen)
{
    struct fileids_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    struct fileids *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    pthread_mutex_init(&f->mu, NULL);
    f->max = o->max_ids ? o->max_ids : 1000000;
    f->no_fsync = o->no_fsync;
    grow(f);
    f->m_entries = metrics_child(metrics_family("engbot_cache_entries", "Entries held, by cache.",
                                                METRIC_GAUGE, "cache", NULL, 0),
                                 "file_id");
    f->m_damaged = metrics_counter("engbot_cache_fileid_store_damaged_total",
                                   "file_id store files found damaged and kept aside.");
    f->m_compactions = metrics_counter("engbot_cache_fileid_compactions_total",
                                       "file_id snapshots written to compact the log.");
    f->m_fsync = metrics_histogram("engbot_cache_fileid_fsync_seconds",
                                   "fsync latency of the file_id log.", NULL, 0);
    if (!o->dir)
        return f;
    if (durable_check_dir(o->dir, err, errlen) < 0) {
        fileids_close(f);
        return NULL;
    }
    f->dir = strdup(o->dir);
    if (!f->dir)
        abort();

    char path[4096];
    struct load ld;
    struct dread_result res;
    path_in(f, SNAP_NAME, path, sizeof path);
    int rc = read_store_file(f, path, false, &ld, &res);
    uint64_t snap_gen = ld.gen, max_gen = ld.gen;
    rep->records += res.records;
    if (rc < 0 || (rc == 0 && res.damaged))
        keep_aside(f, path, res.why, rep);
    size_t n;
    uint64_t *gens = list_logs(f, &n);
    for (size_t i = 0; i < n; i++) {
        if (gens[i] > max_gen)
            max_gen = gens[i];
        if (gens[i] < snap_gen)
            continue; /* covered by the snapshot */
        log_path(f, gens[i], path, sizeof path);
        rc = read_store_file(f, path, true, &ld, &res);
        rep->records += res.records;
        if (rc < 0 || (rc == 0 && res.damaged))
            keep_aside(f, path, res.why, rep);
    }
    free(gens);
    /* Compact: one snapshot at the next generation, a fresh log, the old logs gone. */
    f->gen = max_gen + 1;
    if (write_snapshot(f, f->gen) < 0) {
        snprintf(err, errlen, "cannot write %s/%s", o->dir, SNAP_NAME);
        fileids_close(f);
        return NULL;
    }
    remove_logs_below(f, f->gen);
    f->log = open_log(f, f->gen);
    if (!f->log) {
        snprintf(err, errlen, "cannot open the file_id log in %s", o->dir);
        fileids_close(f);
        return NULL;
    }
    LOG_INFO("file_id store loaded", LF_U64("file_ids", f->count), LF_U64("records", rep->records),
             LF_U64("damaged_files", rep->damaged), LF_U64("generation", f->gen));
    return f;
}

void fileids_close(struct fileids *f)
{
    if (!f)
        return;
    if (f->log)
        rlog_close(f->log);
    for (size_t i = 0; i < f->nb; i++) {
        for (struct fnode *n = f->b[i], *next; n; n = next) {
            next = n->next;
            free(n->path);
            free(n);
        }
    }
    free(f->b);
    free(f->dir);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int fileids_get(struct fileids *f, int64_t bot, const char *path, char *out, uint64_t *size,
                int64_t *mtime_ms)
{
    pthread_mutex_lock(&f->mu);
    struct fnode *n = *find(f, bot, path);
    if (n) {
        memcpy(out, n->id, strlen(n->id) + 1);
        *size = n->size;
        *mtime_ms = n->mtime_ms;
    }
    pthread_mutex_unlock(&f->mu);
    return n ? FILEIDS_OK : FILEIDS_NOT_FOUND;
}

/* Appends rec under f->mu; compacts when the log has grown. */
static int append_locked(struct fileids *f, const struct fidrec *r, fileids_done_fn *done,
                         void *arg)
{
    uint8_t buf[FIDREC_MAX];
    size_t len = fidrec_encode(r, buf);
    if (rlog_append(f->log, buf, len, done, arg) < 0)
        return FILEIDS_IO;
    uint64_t limit = f->snap_bytes * 2 > LOG_COMPACT ? f->snap_bytes * 2 : LOG_COMPACT;
    if (rlog_bytes(f->log) > limit)
        compact_locked(f);
    return FILEIDS_OK;
}

int fileids_put(struct fileids *f, int64_t bot, const char *path, uint64_t size, int64_t mtime_ms,
                const char *file_id, fileids_done_fn *done, void *arg)
{
    size_t idlen = strlen(file_id), plen = strlen(path);
    if (!fidrec_id_ok(file_id, idlen) || bot <= 0 || plen == 0 || plen > 1024)
        return FILEIDS_IO; /* callers validate first; this is a programming error */
    pthread_mutex_lock(&f->mu);
    if (!table_put(f, bot, path, plen, size, mtime_ms, file_id, idlen)) {
        pthread_mutex_unlock(&f->mu);
        return FILEIDS_FULL;
    }
    int rc = FILEIDS_OK;
    if (f->log) {
        struct fidrec r = {.op = FIDREC_PUT,
                           .bot_id = bot,
                           .size = size,
                           .mtime_ms = mtime_ms,
                           .path = path,
                           .path_len = plen,
                           .file_id = file_id,
                           .id_len = idlen};
        rc = append_locked(f, &r, done, arg);
    }
    pthread_mutex_unlock(&f->mu);
    if (rc == FILEIDS_OK && !f->log && done)
        done(arg, 0);
    return rc;
}

int fileids_drop(struct fileids *f, int64_t bot, const char *path, const char *only_if,
                 fileids_done_fn *done, void *arg)
{
    pthread_mutex_lock(&f->mu);
    if (!table_drop(f, bot, path, strlen(path), only_if)) {
        pthread_mutex_unlock(&f->mu);
        return FILEIDS_NOT_FOUND;
    }
    int rc = FILEIDS_OK;
    if (f->log) {
        struct fidrec r = {
            .op = FIDREC_DROP, .bot_id = bot, .path = path, .path_len = strlen(path)};
        rc = append_locked(f, &r, done, arg);
    }
    pthread_mutex_unlock(&f->mu);
    if (rc == FILEIDS_OK && !f->log && done)
        done(arg, 0);
    return rc;
}

size_t fileids_count(struct fileids *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->count;
    pthread_mutex_unlock(&f->mu);
    return n;
}
