/* persist.c -- snapshot + change log for the session table; replay, compaction, backup,
 * restore.
 *
 * DESIGN: every change to the table reaches the log through the store's sink, under the
 * session's stripe lock, so the log holds the changes of one chat in the order they were made.
 * Records carry absolute values (a whole session, a touch's new timestamps, a removal), so a
 * record applied on top of a snapshot that already reflects it changes nothing. That is what
 * makes compaction simple and safe while calls go on:
 *   1. rotate the log to generation g+1 (every later change lands there);
 *   2. write a snapshot of the table, one stripe at a time, naming g+1 as the first log to
 *      replay after it (it reflects every change in logs <= g, and maybe some of g+1: harmless);
 *   3. keep the previous snapshot as sessions.snap.prev, and delete the logs older than the
 *      generation that one names (they are covered twice over).
 * At start: the snapshot (or, if it is damaged, the previous one), then every log from its
 * generation on, in order. Anything torn or corrupt is renamed aside and logged at error
 * level; what was read before the damage is kept. Then a fresh snapshot and a new log. */
#include "persist.h"
#include "clock.h"
#include "durable.h"
#include "log.h"
#include "metrics.h"
#include "records.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "changes-"
#define LOG_SUFFIX ".log"

struct persist {
    struct persist_opts o;
    struct store *st;
    struct rlog *log;
    char dir[PATH_MAX - 128], snap_path[PATH_MAX], prev_path[PATH_MAX], backup_dir[PATH_MAX];
    char restored_from[512]; /* carried from snapshot to snapshot */
    pthread_mutex_t mu;      /* serialises snapshots and backups */
    uint64_t gen;            /* generation of the log being written */
    uint64_t snap_gen;       /* generation the current sessions.snap names (0: none) */
    uint64_t prev_gen;       /* generation sessions.snap.prev names (0: none) */
    /* the snapshot thread */
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    _Atomic uint64_t append_errors;
    struct metric *m_snap_seconds, *m_snap_bytes, *m_snap_sessions, *m_snap_ok, *m_snap_fail,
        *m_snap_ts, *m_log_bytes, *m_damaged, *m_append_err, *m_fsync, *m_batch, *m_backups;
};

/* ---- the change sink ---------------------------------------------------------------------------
 */
static void sink(void *arg, enum store_change ch, enum store_reason why, const struct session *s)
{
    struct persist *p = arg;
    uint8_t stack_buf[1024], *buf;
    size_t n = record_pack_change(ch, why, s, stack_buf, sizeof stack_buf, &buf);
    if (rlog_append(p->log, buf, n, NULL, NULL) < 0) {
        if (atomic_fetch_add(&p->append_errors, 1) == 0)
            LOG_ERROR("change log closed: changes after this are not durable until restart");
        metric_inc(p->m_append_err);
    }
    if (buf != stack_buf)
        free(buf);
}

/* ---- paths and generations --------------------------------------------------------------------
 */
static void log_path(const struct persist *p, uint64_t gen, char *out, size_t cap)
{
    snprintf(out, cap, "%s/" LOG_PREFIX "%020" PRIu64 LOG_SUFFIX, p->dir, gen);
}

/* The generation of a change-log file name, or 0 when name is not one. */
static uint64_t log_gen_of(const char *name)
{
    char back[64];
    unsigned long long g;
    if (strncmp(name, LOG_PREFIX, strlen(LOG_PREFIX)) != 0 ||
        sscanf(name + strlen(LOG_PREFIX), "%20llu", &g) != 1)
        return 0;
    snprintf(back, sizeof back, LOG_PREFIX "%020llu" LOG_SUFFIX, g);
    return strcmp(back, name) == 0 ? (uint64_t)g : 0;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The generations of the change logs in the directory, ascending (malloc'd). */
static uint64_t *list_logs(const struct persist *p, size_t *n)
{
    uint64_t *v = NULL;
    size_t cap = 0;
    *n = 0;
    DIR *d = opendir(p->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        uint64_t g = log_gen_of(e->d_name);
        if (!g)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            v = realloc(v, cap * sizeof *v);
            if (!v)
                abort();
        }
        v[(*n)++] = g;
    }
    if (d)
        closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, u64_cmp);
    return v;
}

static void delete_logs_before(struct persist *p, uint64_t keep_from)
{
    size_t n;
    uint64_t *g = list_logs(p, &n);
    for (size_t i = 0; i < n; i++) {
        if (g[i] >= keep_from || g[i] == p->gen)
            continue;
        char path[PATH_MAX];
        log_path(p, g[i], path, sizeof path);
        if (unlink(path) == 0)
            LOG_DEBUG("compacted change log", LF_STR("file", path));
    }
    free(g);
}

/* Renames a damaged file aside and says so loudly. */
static int keep_aside(struct persist *p, const char *path, const char *what, const char *why,
                      char *err, size_t errlen)
{
    char aside[PATH_MAX + 64];
    int rc = durable_keep_aside(path, aside, sizeof aside);
    metric_inc(p->m_damaged);
    if (rc < 0) {
        snprintf(err, errlen, "%s '%s' is damaged (%s) and cannot be moved aside: %s", what, path,
                 why, strerror(-rc));
        LOG_ERROR("damaged file cannot be moved aside", LF_STR("file", path), LF_STR("why", why),
                  LF_STR("error", strerror(-rc)));
        return -1;
    }
    LOG_ERROR("DAMAGED FILE kept aside; starting from the last good state", LF_STR("what", what),
              LF_STR("file", path), LF_STR("kept_as", aside), LF_STR("why", why));
    return 0;
}

/* ---- writing snapshots ------------------------------------------------------------------------
 */
/* Writes the whole table to path atomically. */
static int write_table(struct persist *p, const char *path, uint64_t log_gen, const char *purpose,
                       uint64_t *sessions, uint64_t *bytes, char *err, size_t errlen)
{
    struct dfile *f = dfile_create(path, RECORD_KIND_SNAPSHOT, RECORD_FORMAT_VERSION, err, errlen);
    if (!f)
        return -1;
    struct record_header h = {
        .log_gen = log_gen, .written_ms = clock_now_ms(), .sessions = store_count(p->st)};
    snprintf(h.purpose, sizeof h.purpose, "%s", purpose);
    snprintf(h.restored_from, sizeof h.restored_from, "%s", p->restored_from);
    uint8_t hb[1024];
    size_t hn = record_pack_header(&h, hb, sizeof hb);
    if (hn == 0) {
        snprintf(err, errlen, "snapshot header too large");
        dfile_abort(f);
        return -1;
    }
    int rc = dfile_record(f, hb, hn);
    struct record_buf b = {0};
    uint64_t n = 0;
    for (unsigned i = 0; i < store_stripes() && rc == 0; i++) {
        b.len = 0;
        b.records = 0;
        store_scan_stripe(p->st, i, record_buf_add_session, &b);
        for (size_t off = 0; off < b.len && rc == 0;) {
            uint32_t len;
            memcpy(&len, b.data + off, 4);
            rc = dfile_record(f, b.data + off + 4, len);
            off += 4 + len;
        }
        n += b.records;
    }
    free(b.data);
    /* On a failed write dfile_commit reports the stored error and removes the temp file. */
    if (dfile_commit(f, bytes, err, errlen) < 0)
        return -1;
    *sessions = n;
    return 0;
}

/* Takes a snapshot with p->mu held. At start (no log yet) it does not rotate. */
static enum persist_err snapshot_locked(struct persist *p, char *err, size_t errlen)
{
    int64_t t0 = clock_mono_us();
    uint64_t newgen = p->gen + 1;
    char path[PATH_MAX];
    log_path(p, newgen, path, sizeof path);
    if (p->log && rlog_rotate(p->log, path, err, errlen) < 0) {
        metric_inc(p->m_snap_fail);
        return PERSIST_EIO;
    }
    p->gen = newgen;
    /* Keep the current snapshot as the fallback. */
    if (p->snap_gen) {
        char tmp[PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", p->prev_path);
        unlink(tmp);
        if (link(p->snap_path, tmp) == 0 && rename(tmp, p->prev_path) == 0)
            p->prev_gen = p->snap_gen;
        else
            unlink(tmp);
    }
    uint64_t sessions = 0, bytes = 0;
    if (write_table(p, p->snap_path, newgen, "snapshot", &sessions, &bytes, err, errlen) < 0) {
        metric_inc(p->m_snap_fail);
        LOG_ERROR("snapshot failed; the change logs are kept", LF_STR("error", err));
        return PERSIST_EIO;
    }
    p->snap_gen = newgen;
    delete_logs_before(p, p->prev_gen ? p->prev_gen : newgen);
    double secs = (double)(clock_mono_us() - t0) / 1e6;
    metric_observe(p->m_snap_seconds, secs);
    metric_set(p->m_snap_bytes, (double)bytes);
    metric_set(p->m_snap_sessions, (double)sessions);
    metric_set(p->m_snap_ts, (double)clock_now_ms() / 1000.0);
    metric_inc(p->m_snap_ok);
    LOG_INFO("snapshot written", LF_U64("sessions", sessions), LF_U64("bytes", bytes),
             LF_F64("seconds", secs), LF_U64("log_generation", newgen));
    return PERSIST_OK;
}

enum persist_err persist_snapshot(struct persist *p, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    enum persist_err rc = snapshot_locked(p, err, errlen);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static bool valid_backup_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

enum persist_err persist_backup(struct persist *p, const char *name, char *path, size_t pathcap,
                                uint64_t *sessions, uint64_t *bytes, char *err, size_t errlen)
{
    char gen_name[64];
    if (!name || !*name) {
        snprintf(gen_name, sizeof gen_name, "sessions-%" PRId64 ".snap", clock_now_ms());
        name = gen_name;
    }
    if (!valid_backup_name(name)) {
        snprintf(
            err, errlen,
            "backup name '%.140s' is not allowed: use 1-128 characters from A-Z a-z 0-9 . _ -, "
            "not starting with a dot (the file goes under DATA_DIR/backups/)",
            name);
        return PERSIST_EINVAL;
    }
    snprintf(path, pathcap, "%s/%s", p->backup_dir, name);
    pthread_mutex_lock(&p->mu);
    enum persist_err rc = PERSIST_OK;
    if (access(path, F_OK) == 0) {
        snprintf(err, errlen, "backup '%s' already exists: choose another name or delete it", path);
        rc = PERSIST_EEXIST;
    } else if (durable_check_dir(p->backup_dir, err, errlen) < 0 ||
               write_table(p, path, 0, "backup", sessions, bytes, err, errlen) < 0) {
        rc = PERSIST_EIO;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == PERSIST_OK) {
        metric_inc(p->m_backups);
        LOG_INFO("backup written", LF_STR("file", path), LF_U64("sessions", *sessions),
                 LF_U64("bytes", *bytes));
    }
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------------
 */
static void restore_identity(const char *path, const struct record_snap_reader *r, char *out,
                             size_t cap)
{
    const char *base = strrchr(path, '/');
    snprintf(out, cap, "%s written_unix_ms=%" PRId64 " sessions=%" PRIu64, base ? base + 1 : path,
             r->h.written_ms, r->h.sessions);
}

/* Reads only the header record of a snapshot-format file; false when there is none. */
static bool read_header(const char *path, struct record_snap_reader *r)
{
    struct dread_result res;
    memset(r, 0, sizeof *r);
    r->header_only = true;
    dread_file(path, RECORD_KIND_SNAPSHOT, record_snapshot_cb, r, &res);
    return r->have_header;
}

/* Moves path aside as "<path>.pre-restore-<ms>" if it exists. */
static void move_pre_restore(const char *path, int64_t ms)
{
    char to[PATH_MAX + 64];
    snprintf(to, sizeof to, "%s.pre-restore-%" PRId64, path, ms);
    if (rename(path, to) == 0)
        LOG_WARN("kept the state replaced by the restore", LF_STR("file", to));
}

static int load_restore(struct persist *p, const char *from, struct persist_load_info *info,
                        uint64_t max_gen, char *err, size_t errlen)
{
    struct record_snap_reader r = {.st = p->st};
    struct dread_result res;
    int rc = dread_file(from, RECORD_KIND_SNAPSHOT, record_snapshot_cb, &r, &res);
    if (rc == 1) {
        snprintf(err, errlen, "RESTORE_FROM '%s' does not exist", from);
        return -1;
    }
    if (rc < 0 || res.damaged || !res.sealed || !r.have_header) {
        snprintf(err, errlen,
                 "RESTORE_FROM '%s' cannot be used: %s; refusing to start from a damaged backup "
                 "(the data directory is untouched)",
                 from, res.why[0] ? res.why : "not sealed (incomplete file)");
        store_clear(p->st);
        return -1;
    }
    int64_t ms = clock_now_ms();
    move_pre_restore(p->snap_path, ms);
    move_pre_restore(p->prev_path, ms);
    size_t n;
    uint64_t *g = list_logs(p, &n);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        log_path(p, g[i], path, sizeof path);
        move_pre_restore(path, ms);
    }
    free(g);
    restore_identity(from, &r, p->restored_from, sizeof p->restored_from);
    info->restored = true;
    info->snapshot_records = res.records;
    p->gen = max_gen;
    LOG_WARN("restored sessions from backup", LF_STR("file", from), LF_U64("records", res.records),
             LF_STR("identity", p->restored_from));
    return 0;
}

/* Loads a snapshot-format file into st. Returns 0 good, 1 missing, 2 damaged (kept aside;
 * what was read before the damage is in st), -1 fatal (err). */
static int load_snap_file(struct persist *p, const char *path, const char *what,
                          struct record_snap_reader *r, struct persist_load_info *info, char *err,
                          size_t errlen)
{
    struct dread_result res;
    memset(r, 0, sizeof *r);
    r->st = p->st;
    int rc = dread_file(path, RECORD_KIND_SNAPSHOT, record_snapshot_cb, r, &res);
    if (rc == 1)
        return 1;
    info->snapshot_records += res.records;
    if (rc == 0 && !res.damaged && res.sealed && r->have_header) {
        if (res.version > RECORD_FORMAT_VERSION)
            LOG_WARN("snapshot written by a newer format version; reading what this version knows",
                     LF_STR("file", path), LF_U64("version", res.version));
        return 0;
    }
    const char *why = res.why[0]    ? res.why
                      : !res.sealed ? "not sealed (incomplete file)"
                                    : "no header record";
    info->damaged_files++;
    return keep_aside(p, path, what, why, err, errlen) < 0 ? -1 : 2;
}

static int load_state(struct persist *p, struct persist_load_info *info, uint64_t *max_gen,
                      char *err, size_t errlen)
{
    struct record_snap_reader r;
    bool replay_all = false;
    uint64_t base = 0;
    int s = load_snap_file(p, p->snap_path, "snapshot", &r, info, err, errlen);
    if (s < 0)
        return -1;
    if (s == 0) {
        base = r.h.log_gen;
        p->snap_gen = r.h.log_gen;
        snprintf(p->restored_from, sizeof p->restored_from, "%s", r.h.restored_from);
    }
    if (s != 0) {
        /* Missing or damaged: is the previous snapshot good? Validate before dropping what
         * the damaged one gave. */
        struct record_snap_reader pr = {0};
        struct dread_result res;
        int prc = dread_file(p->prev_path, RECORD_KIND_SNAPSHOT, record_snapshot_cb, &pr, &res);
        bool prev_good = prc == 0 && !res.damaged && res.sealed && pr.have_header;
        if (prev_good) {
            store_clear(p->st);
            info->snapshot_records = 0;
            if (load_snap_file(p, p->prev_path, "previous snapshot", &r, info, err, errlen) != 0)
                return -1;
            base = r.h.log_gen;
            p->prev_gen = r.h.log_gen;
            snprintf(p->restored_from, sizeof p->restored_from, "%s", r.h.restored_from);
            info->used_prev = true;
            LOG_WARN("started from the previous snapshot", LF_STR("file", p->prev_path),
                     LF_U64("log_generation", base));
        } else {
            if (prc == 0 || prc == -1) {
                info->damaged_files++;
                if (keep_aside(p, p->prev_path, "previous snapshot",
                               res.why[0] ? res.why : "not sealed", err, errlen) < 0)
                    return -1;
            }
            if (s == 2 && r.have_header) {
                base = r.h.log_gen;
            } else if (s == 2 || prc != 1) {
                replay_all = true; /* the snapshot's header is lost: every log we have */
            }
        }
    }
    size_t n;
    uint64_t *g = list_logs(p, &n);
    for (size_t i = 0; i < n; i++) {
        if (g[i] > *max_gen)
            *max_gen = g[i];
        if (!replay_all && g[i] < base)
            continue;
        char path[PATH_MAX];
        log_path(p, g[i], path, sizeof path);
        struct record_log_reader lr = {.st = p->st};
        struct dread_result res;
        int rc = dread_file(path, RECORD_KIND_LOG, record_log_cb, &lr, &res);
        info->log_records += res.records;
        info->skipped_records += lr.skipped;
        if (rc == 0 && res.version > RECORD_FORMAT_VERSION)
            LOG_WARN("change log written by a newer format version; reading what this version "
                     "knows",
                     LF_STR("file", path), LF_U64("version", res.version));
        if (lr.skipped)
            LOG_WARN("change log records of an unknown kind were skipped (written by a newer "
                     "version)",
                     LF_STR("file", path), LF_U64("records", lr.skipped));
        if (rc < 0 || res.damaged) {
            info->damaged_files++;
            if (keep_aside(p, path, "change log", res.why, err, errlen) < 0) {
                free(g);
                return -1;
            }
        }
    }
    free(g);
    if (base > *max_gen)
        *max_gen = base;
    p->gen = *max_gen;
    return 0;
}

static void *snapshot_thread(void *arg);

struct persist *persist_open(const struct persist_opts *o, struct store *st,
                             struct persist_load_info *info, char *err, size_t errlen)
{
    int64_t t0 = clock_mono_ms();
    memset(info, 0, sizeof *info);
    if (strlen(o->data_dir) >= PATH_MAX - 128) {
        snprintf(err, errlen, "DATA_DIR is longer than %d characters", PATH_MAX - 129);
        return NULL;
    }
    if (durable_check_dir(o->data_dir, err, errlen) < 0)
        return NULL;
    struct persist *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->o = *o;
    p->st = st;
    snprintf(p->dir, sizeof p->dir, "%s", o->data_dir);
    snprintf(p->snap_path, sizeof p->snap_path, "%s/sessions.snap", p->dir);
    snprintf(p->prev_path, sizeof p->prev_path, "%s/sessions.snap.prev", p->dir);
    snprintf(p->backup_dir, sizeof p->backup_dir, "%s/backups", p->dir);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->tmu, NULL);
    pthread_cond_init(&p->tcv, NULL);
    p->m_snap_seconds = metrics_histogram("engbot_session_snapshot_duration_seconds",
                                          "Time to write a snapshot of every session.", NULL, 0);
    p->m_snap_bytes = metrics_gauge("engbot_session_snapshot_bytes", "Size of the last snapshot.");
    p->m_snap_sessions =
        metrics_gauge("engbot_session_snapshot_sessions", "Sessions in the last snapshot.");
    p->m_snap_ts = metrics_gauge("engbot_session_snapshot_last_timestamp_seconds",
                                 "When the last snapshot was written (Unix seconds).");
    struct metric_family *snaps =
        metrics_family("engbot_session_snapshots_total", "Snapshots written, by result.",
                       METRIC_COUNTER, "result", NULL, 0);
    p->m_snap_ok = metrics_child(snaps, "ok");
    p->m_snap_fail = metrics_child(snaps, "error");
    p->m_log_bytes = metrics_gauge("engbot_session_log_bytes",
                                   "Size of the current change log (updated every second).");
    p->m_damaged = metrics_counter("engbot_session_damaged_files_total",
                                   "Torn or corrupt files found at start and kept aside.");
    p->m_append_err = metrics_counter("engbot_session_log_append_errors_total",
                                      "Changes that could not be queued to the change log.");
    p->m_backups = metrics_counter("engbot_session_backups_total", "Backups written.");
    static const double fsync_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                           0.05,   0.1,   0.25,   0.5,   1,    2.5};
    p->m_fsync = metrics_histogram("engbot_session_log_fsync_seconds",
                                   "Time of each change-log fsync (group commit).", fsync_buckets,
                                   (int)(sizeof fsync_buckets / sizeof fsync_buckets[0]));
    static const double batch_buckets[] = {1, 4, 16, 64, 256, 1024, 4096, 16384, 65536};
    p->m_batch = metrics_histogram("engbot_session_log_batch_records",
                                   "Change records written per group commit.", batch_buckets,
                                   (int)(sizeof batch_buckets / sizeof batch_buckets[0]));

    uint64_t max_gen = 0;
    {
        size_t n;
        uint64_t *g = list_logs(p, &n);
        if (n)
            max_gen = g[n - 1];
        free(g);
        struct record_snap_reader cur;
        if (read_header(p->snap_path, &cur) && cur.h.log_gen > max_gen)
            max_gen = cur.h.log_gen;
        if (read_header(p->prev_path, &cur) && cur.h.log_gen > max_gen)
            max_gen = cur.h.log_gen;
    }
    bool restore = false;
    if (o->restore_from && *o->restore_from) {
        struct record_snap_reader br, cur;
        char id[512] = "";
        if (read_header(o->restore_from, &br))
            restore_identity(o->restore_from, &br, id, sizeof id);
        if (id[0] && read_header(p->snap_path, &cur) && strcmp(cur.h.restored_from, id) == 0) {
            LOG_INFO("RESTORE_FROM names the backup this data directory was already restored "
                     "from; loading the current state instead",
                     LF_STR("restore_from", o->restore_from));
        } else {
            restore = true;
        }
    }
    if (restore) {
        if (load_restore(p, o->restore_from, info, max_gen, err, errlen) < 0)
            goto fail;
        p->snap_gen = p->prev_gen = 0;
    } else if (load_state(p, info, &max_gen, err, errlen) < 0) {
        goto fail;
    }
    store_load_done(st, clock_now_ms());
    if (snapshot_locked(p, err, errlen) != PERSIST_OK)
        goto fail;
    char path[PATH_MAX];
    log_path(p, p->gen, path, sizeof path);
    struct rlog_opts lo = {.sync_interval_ms = o->sync_interval_ms,
                           .no_fsync = o->no_fsync,
                           .fsync_seconds = p->m_fsync,
                           .batch_records = p->m_batch};
    p->log = rlog_open(path, RECORD_KIND_LOG, RECORD_FORMAT_VERSION, &lo, err, errlen);
    if (!p->log)
        goto fail;
    store_set_sink(st, sink, p);
    info->sessions = store_count(st);
    info->duration_ms = clock_mono_ms() - t0;
    return p;
fail:
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->tmu);
    pthread_cond_destroy(&p->tcv);
    free(p);
    return NULL;
}

static void *snapshot_thread(void *arg)
{
    struct persist *p = arg;
    int64_t last = clock_mono_ms();
    pthread_mutex_lock(&p->tmu);
    while (!p->stop) {
        /* Wake at least once a second to check the log's size. */
        int64_t wait = p->o.snapshot_interval_ms - (clock_mono_ms() - last);
        if (wait > 1000)
            wait = 1000;
        if (wait < 1)
            wait = 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->tcv, &p->tmu, &ts);
        if (p->stop)
            break;
        uint64_t log_bytes = rlog_bytes(p->log);
        metric_set(p->m_log_bytes, (double)log_bytes);
        bool due = clock_mono_ms() - last >= p->o.snapshot_interval_ms ||
                   (int64_t)log_bytes > p->o.compact_log_bytes;
        if (!due)
            continue;
        pthread_mutex_unlock(&p->tmu);
        char err[512];
        persist_snapshot(p, err, sizeof err);
        last = clock_mono_ms();
        pthread_mutex_lock(&p->tmu);
    }
    pthread_mutex_unlock(&p->tmu);
    return NULL;
}

void persist_start(struct persist *p)
{
    p->started = true;
    if (pthread_create(&p->thread, NULL, snapshot_thread, p) != 0)
        abort();
}

int persist_flush(struct persist *p)
{
    return rlog_flush(p->log);
}

int persist_close(struct persist *p, char *err, size_t errlen)
{
    if (!p)
        return 0;
    if (p->started) {
        pthread_mutex_lock(&p->tmu);
        p->stop = true;
        pthread_cond_signal(&p->tcv);
        pthread_mutex_unlock(&p->tmu);
        pthread_join(p->thread, NULL);
    }
    int rc = 0;
    /* The final snapshot covers everything; if it fails the flushed log still does. */
    if (persist_snapshot(p, err, errlen) != PERSIST_OK)
        rc = -1;
    store_set_sink(p->st, NULL, NULL);
    int ferr = rlog_flush(p->log);
    if (ferr < 0 && rc < 0)
        snprintf(err + strlen(err), errlen - strlen(err), "; change log: %s", strerror(-ferr));
    rlog_close(p->log);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->tmu);
    pthread_cond_destroy(&p->tcv);
    free(p);
    return rc < 0 && ferr < 0 ? -1 : 0;
}

bool persist_healthy(struct persist *p, char *why, size_t cap)
{
    int e = p && p->log ? rlog_error(p->log) : 0;
    if (e)
        snprintf(why, cap, "DATA_DIR %s cannot be written (%s): changes are held in memory and "
                           "written when it can",
                 p->dir, strerror(e));
    return e == 0;
}
