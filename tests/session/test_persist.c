/* test_persist.c -- unit tests of session-svc/persist.c and records.c: round trips through the
 * snapshot and the change log, compaction, every corruption case (a small log truncated at every
 * byte offset; every byte of it flipped; damaged snapshots with and without a good previous one),
 * backup and restore, and forward compatibility (unknown fields and operations). */
#include "clock.h"
#include "durable.h"
#include "log.h"
#include "persist.h"
#include "records.h"
#include "session_store.pb-c.h"
#include "store.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOUR 3600000LL

static struct store *mkstore(void)
{
    struct store_opts o = {.inactivity_ms = HOUR,
                           .max_sessions = 100000,
                           .max_state_keys = 64,
                           .max_state_bytes = 65536};
    return store_new(&o);
}

/* A new empty directory (malloc'd name; rm_rf removes it and frees the name). */
static char *mkdtemp_dir(void)
{
    /* tmpfs when there is one: these tests open hundreds of data directories, and fsync on a
     * real disk only makes them slow (durability itself is tested on the real process). */
    char *d = strdup(access("/dev/shm", W_OK) == 0 ? "/dev/shm/engbot-persist-XXXXXX"
                                                   : "/tmp/engbot-persist-XXXXXX");
    if (!d || !mkdtemp(d))
        abort();
    return d;
}

/* Removes a directory and everything in it (one level deep: backups/). */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0)
            rm_tree(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void rm_rf(char *dir)
{
    rm_tree(dir);
    free(dir);
}

static struct persist *open_dir(const char *dir, struct store *st, struct persist_load_info *info)
{
    struct persist_opts o = {.data_dir = dir,
                             .sync_interval_ms = 5,
                             .snapshot_interval_ms = 3600000,
                             .compact_log_bytes = 1 << 30,
                             .no_fsync = true};
    char err[512];
    struct persist *p = persist_open(&o, st, info, err, sizeof err);
    if (!p)
        fprintf(stderr, "    persist_open: %s\n", err);
    return p;
}

static void close_p(struct persist *p)
{
    char err[512];
    if (persist_close(p, err, sizeof err) < 0)
        fprintf(stderr, "    persist_close: %s\n", err);
}

/* A canonical text of the whole table, for comparing two stores. */
struct dump {
    char *buf;
    size_t len, cap;
};

static void dump_one(void *arg, const struct session *s)
{
    struct dump *d = arg;
    char line[2048];
    int n = snprintf(line, sizeof line, "%lld|%lld|%lld|%lld|%lld|%llu|%u|%s|%s|",
                     (long long)s->chat_id, (long long)s->user_id, (long long)s->created_ms,
                     (long long)s->last_active_ms, (long long)s->browser_message_id,
                     (unsigned long long)s->version, s->page, s->folder_id, s->last_search);
    for (uint32_t i = 0; i < s->n_state && n < (int)sizeof line - 100; i++)
        n += snprintf(line + n, sizeof line - (size_t)n, "%s=%s,", s->state[i].key,
                      s->state[i].value);
    n += snprintf(line + n, sizeof line - (size_t)n, "\n");
    if (d->len + (size_t)n + 1 > d->cap) {
        d->cap = (d->cap + (size_t)n + 1) * 2;
        d->buf = realloc(d->buf, d->cap);
    }
    memcpy(d->buf + d->len, line, (size_t)n + 1);
    d->len += (size_t)n;
}

static int line_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted lines (malloc'd string). */
static char *dump(struct store *st)
{
    struct dump d = {0};
    d.buf = calloc(1, 1);
    d.cap = 1;
    for (unsigned i = 0; i < store_stripes(); i++)
        store_scan_stripe(st, i, dump_one, &d);
    size_t nl = 0;
    for (size_t i = 0; i < d.len; i++)
        nl += d.buf[i] == '\n';
    char **lines = calloc(nl + 1, sizeof *lines);
    size_t k = 0;
    for (char *p = strtok(d.buf, "\n"); p; p = strtok(NULL, "\n"))
        lines[k++] = p;
    qsort(lines, k, sizeof *lines, line_cmp);
    char *out = calloc(1, d.len + 2);
    for (size_t i = 0; i < k; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
    }
    free(lines);
    free(d.buf);
    return out;
}

static void touch(struct store *st, int64_t chat, int64_t user)
{
    struct session s;
    bool created;
    store_touch(st, chat, user, &s, NULL, NULL, &created);
    session_free(&s);
}

static void update(struct store *st, int64_t chat, const char *folder, const char *k, const char *v)
{
    struct session s;
    struct store_fail f;
    if (store_get(st, chat, &s, NULL, NULL) != STORE_OK)
        return;
    struct session_kv set[] = {{k, v}};
    struct store_update u = {.chat_id = chat,
                             .expected_version = s.version,
                             .has_folder_id = true,
                             .folder_id = folder,
                             .has_page = true,
                             .page = 7,
                             .has_browser_message_id = true,
                             .browser_message_id = 555,
                             .n_set = 1,
                             .set = set};
    session_free(&s);
    if (store_update(st, &u, &s, NULL, NULL, &f) == STORE_OK)
        session_free(&s);
}

/* A workload that produces every kind of record. */
static void workload(struct store *st, int base, int n)
{
    for (int i = 0; i < n; i++) {
        touch(st, base + i, 100 + i);
        clock_advance_ms(1);
    }
    for (int i = 0; i < n; i += 2)
        update(st, base + i, "folder/ü", "key", "välue");
    for (int i = 0; i < n; i += 3)
        touch(st, base + i, 0);
    for (int i = 0; i < n; i += 5)
        store_delete(st, base + i);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static int count_files(const char *dir, const char *substr)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, substr) != NULL;
    if (d)
        closedir(d);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    char buf[65536];
    ssize_t n;
    if (in < 0 || out < 0)
        abort();
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            abort();
    close(in);
    close(out);
}

static void setup(void)
{
    clock_set_fake(true, 1700000000000LL);
    /* Damaged files are logged at error level by design; keep the test output readable. */
    log_setup("test", (enum log_level)(LOG_LVL_ERROR + 1), false);
}

TEST(round_trip_through_the_final_snapshot)
{
    setup();
    char *dir = mkdtemp_dir();
    struct store *a = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, a, &info);
    ASSERT_TRUE(p != NULL);
    ASSERT_EQ(info.sessions, 0);
    workload(a, 1, 100);
    char *want = dump(a);
    close_p(p);

    struct store *b = mkstore();
    p = open_dir(dir, b, &info);
    ASSERT_TRUE(p != NULL);
    char *got = dump(b);
    ASSERT_STREQ(got, want);
    ASSERT_EQ(info.damaged_files, 0);
    ASSERT_EQ(info.sessions, 80);
    close_p(p);
    free(want);
    free(got);
    store_free(a);
    store_free(b);
    rm_rf(dir);
}

/* Copies dir's files (the state a kill -9 would leave, once the log was written). */
static void snapshot_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        struct stat st;
        if (stat(a, &st) == 0 && S_ISREG(st.st_mode))
            copy_file(a, b);
    }
    if (d)
        closedir(d);
}

static void log_path_of(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char best[256] = "";
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "changes-", 8) == 0 && !strchr(e->d_name + 8, 'd') &&
            strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    snprintf(out, cap, "%s/%s", dir, best);
}

TEST(change_log_replays_without_a_final_snapshot)
{
    setup();
    char *dir = mkdtemp_dir(), *crash = mkdtemp_dir();
    struct store *a = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, a, &info);
    ASSERT_TRUE(p != NULL);
    workload(a, -5000, 60);
    char *want = dump(a);
    /* Copy the directory as a crash would leave it once the log is written (no final
     * snapshot). */
    ASSERT_EQ(persist_flush(p), 0);
    snapshot_dir(dir, crash);
    close_p(p);

    struct store *b = mkstore();
    p = open_dir(crash, b, &info);
    ASSERT_TRUE(p != NULL);
    ASSERT_TRUE(info.log_records > 100);
    char *got = dump(b);
    ASSERT_STREQ(got, want);
    close_p(p);
    free(want);
    free(got);
    store_free(a);
    store_free(b);
    rm_rf(dir);
    rm_rf(crash);
}

TEST(compaction_keeps_state_and_prunes_old_logs)
{
    setup();
    char *dir = mkdtemp_dir();
    struct store *a = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, a, &info);
    char err[256];
    for (int round = 0; round < 5; round++) {
        workload(a, round * 1000, 40);
        ASSERT_EQ(persist_snapshot(p, err, sizeof err), PERSIST_OK);
    }
    /* Only the logs the previous snapshot needs remain (its generation and later). */
    ASSERT_TRUE(count_files(dir, ".log") <= 3);
    char *want = dump(a);
    close_p(p);
    struct store *b = mkstore();
    p = open_dir(dir, b, &info);
    char *got = dump(b);
    ASSERT_STREQ(got, want);
    close_p(p);
    free(want);
    free(got);
    store_free(a);
    store_free(b);
    rm_rf(dir);
}

/* Builds a directory holding an empty snapshot and one small change log; returns the log's
 * path and the offsets where its records end. */
static int build_small_log(const char *dir, char *logpath, size_t cap, off_t *ends, int max_ends)
{
    char *crash = mkdtemp_dir();
    struct store *a = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(crash, a, &info);
    touch(a, 1, 11);
    touch(a, -1002, 12);
    update(a, 1, "f", "k", "v");
    touch(a, 1, 13);
    store_delete(a, -1002);
    touch(a, 3, 0);
    if (persist_flush(p) != 0)
        abort();
    snapshot_dir(crash, dir);
    close_p(p);
    store_free(a);
    rm_rf(crash);
    log_path_of(dir, logpath, cap);
    /* Record boundaries from the framing: 16-byte header, then [len][crc][payload]. */
    int fd = open(logpath, O_RDONLY);
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    int k = 0;
    off_t off = 16;
    ends[k++] = 16;
    while (off + 8 <= n && k < max_ends) {
        uint32_t len = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 |
                       (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
        off += 8 + len;
        ends[k++] = off;
    }
    return k;
}

/* The table after applying the log's first records, by reading a copy truncated at `at`. */
static char *expected_prefix(const char *logpath, off_t at)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.expect", logpath);
    copy_file(logpath, tmp);
    if (truncate(tmp, at) != 0)
        abort();
    struct store *st = mkstore();
    bool damaged;
    record_read_log(tmp, st, &damaged);
    store_load_done(st, clock_now_ms());
    char *d = dump(st);
    store_free(st);
    unlink(tmp);
    return d;
}

TEST(log_truncated_at_every_offset)
{
    setup();
    char *src = mkdtemp_dir();
    char logpath[512];
    off_t ends[64];
    int nends = build_small_log(src, logpath, sizeof logpath, ends, 64);
    off_t size = file_size(logpath);
    ASSERT_TRUE(nends >= 7); /* header + 6 records */
    ASSERT_EQ(ends[nends - 1], size);
    char *full = expected_prefix(logpath, size);
    int checked = 0;
    for (off_t at = 0; at <= size; at++) {
        char *dir = mkdtemp_dir();
        snapshot_dir(src, dir);
        char lp[600];
        snprintf(lp, sizeof lp, "%s/%s", dir, strrchr(logpath, '/') + 1);
        ASSERT_EQ(truncate(lp, at), 0);
        /* What the good records before `at` give. */
        off_t good = 0;
        bool boundary = false;
        for (int i = 0; i < nends; i++) {
            if (ends[i] <= at)
                good = ends[i];
            if (ends[i] == at)
                boundary = true;
        }
        char *want = expected_prefix(logpath, good < 16 ? 16 : good);
        struct store *st = mkstore();
        struct persist_load_info info;
        struct persist *p = open_dir(dir, st, &info);
        ASSERT_TRUE(p != NULL);
        char *got = dump(st);
        if (strcmp(got, want) != 0)
            FAIL_("truncated at %lld: got\n%s\nwant\n%s", (long long)at, got, want);
        /* A cut inside a record (or the header) is damage: kept aside, never silently
         * dropped. A cut on a record boundary is a clean, shorter log. */
        ASSERT_EQ(info.damaged_files, boundary ? 0 : 1);
        ASSERT_EQ(count_files(dir, ".damaged-"), boundary ? 0 : 1);
        close_p(p);
        store_free(st);
        free(got);
        free(want);
        rm_rf(dir);
        checked++;
    }
    ASSERT_EQ(checked, size + 1);
    ASSERT_TRUE(strlen(full) > 0);
    free(full);
    rm_rf(src);
}

TEST(log_with_any_byte_flipped)
{
    setup();
    char *src = mkdtemp_dir();
    char logpath[512];
    off_t ends[64];
    int nends = build_small_log(src, logpath, sizeof logpath, ends, 64);
    off_t size = file_size(logpath);
    for (off_t at = 0; at < size; at++) {
        if (at >= 8 && at < 12)
            continue; /* the format version: a different number is read as a newer format */
        char *dir = mkdtemp_dir();
        snapshot_dir(src, dir);
        char lp[600];
        snprintf(lp, sizeof lp, "%s/%s", dir, strrchr(logpath, '/') + 1);
        int fd = open(lp, O_RDWR);
        uint8_t b;
        ASSERT_EQ(pread(fd, &b, 1, at), 1);
        b ^= 0x20;
        ASSERT_EQ(pwrite(fd, &b, 1, at), 1);
        close(fd);
        /* Records that end before the flipped byte are good; nothing from the damaged record
         * on is applied. */
        off_t good = 16;
        for (int i = 0; i < nends; i++)
            if (ends[i] <= at)
                good = ends[i];
        char *want = expected_prefix(logpath, at < 16 ? 16 : good);
        struct store *st = mkstore();
        struct persist_load_info info;
        struct persist *p = open_dir(dir, st, &info);
        ASSERT_TRUE(p != NULL);
        char *got = dump(st);
        if (strcmp(got, want) != 0)
            FAIL_("byte %lld flipped: got\n%s\nwant\n%s", (long long)at, got, want);
        ASSERT_EQ(info.damaged_files, 1);
        ASSERT_EQ(count_files(dir, ".damaged-"), 1);
        close_p(p);
        store_free(st);
        free(got);
        free(want);
        rm_rf(dir);
    }
    rm_rf(src);
}

/* A directory with two snapshot generations and logs: returns the full state. */
static char *two_generations(const char *dir)
{
    struct store *a = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, a, &info);
    char err[256];
    workload(a, 1, 50);
    persist_snapshot(p, err, sizeof err);
    workload(a, 1000, 50);
    char *want = dump(a);
    close_p(p); /* final snapshot: sessions.snap has all, .prev has the first 50 */
    store_free(a);
    return want;
}

TEST(damaged_snapshot_falls_back_to_previous_plus_logs)
{
    setup();
    char *dir = mkdtemp_dir();
    char *want = two_generations(dir);
    char snap[256];
    snprintf(snap, sizeof snap, "%s/sessions.snap", dir);
    off_t size = file_size(snap);
    /* Flip a byte in the middle of the last snapshot. */
    int fd = open(snap, O_RDWR);
    uint8_t b;
    pread(fd, &b, 1, size / 2);
    b ^= 1;
    pwrite(fd, &b, 1, size / 2);
    close(fd);
    struct store *st = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, st, &info);
    ASSERT_TRUE(p != NULL);
    ASSERT_TRUE(info.used_prev);
    ASSERT_EQ(info.damaged_files, 1);
    ASSERT_EQ(count_files(dir, "sessions.snap.damaged-"), 1);
    char *got = dump(st);
    ASSERT_STREQ(got, want); /* nothing lost: the previous snapshot + the logs since */
    close_p(p);
    store_free(st);
    free(got);
    free(want);
    rm_rf(dir);
}

TEST(truncated_snapshot_without_previous_keeps_the_good_prefix)
{
    setup();
    char *dir = mkdtemp_dir();
    char *want = two_generations(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/sessions.snap.prev", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/sessions.snap", dir);
    off_t size = file_size(path);
    ASSERT_EQ(truncate(path, size - 30), 0);
    struct store *st = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, st, &info);
    ASSERT_TRUE(p != NULL);
    ASSERT_EQ(info.damaged_files, 1);
    ASSERT_TRUE(info.sessions > 0 && info.sessions < 80);
    ASSERT_EQ(count_files(dir, ".damaged-"), 1);
    close_p(p);
    store_free(st);
    free(want);
    rm_rf(dir);
}

TEST(snapshot_of_the_wrong_kind_is_kept_aside)
{
    setup();
    char *dir = mkdtemp_dir();
    char *want = two_generations(dir);
    char snap[256], logp[512];
    snprintf(snap, sizeof snap, "%s/sessions.snap", dir);
    log_path_of(dir, logp, sizeof logp);
    copy_file(logp, snap); /* a log where the snapshot should be */
    struct store *st = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, st, &info);
    ASSERT_TRUE(p != NULL);
    ASSERT_TRUE(info.used_prev);
    ASSERT_EQ(count_files(dir, "sessions.snap.damaged-"), 1);
    char *got = dump(st);
    ASSERT_STREQ(got, want);
    close_p(p);
    store_free(st);
    free(got);
    free(want);
    rm_rf(dir);
}

TEST(backup_and_restore)
{
    setup();
    char *dir = mkdtemp_dir(), *dir2 = mkdtemp_dir();
    struct store *a = mkstore();
    struct persist_load_info info;
    struct persist *p = open_dir(dir, a, &info);
    workload(a, 1, 30);
    char *want = dump(a);
    char path[512], err[512];
    uint64_t n, bytes;
    ASSERT_EQ(persist_backup(p, "../x", path, sizeof path, &n, &bytes, err, sizeof err),
              PERSIST_EINVAL);
    ASSERT_CONTAINS(err, "not allowed");
    ASSERT_EQ(persist_backup(p, ".hidden", path, sizeof path, &n, &bytes, err, sizeof err),
              PERSIST_EINVAL);
    ASSERT_EQ(persist_backup(p, "b1.snap", path, sizeof path, &n, &bytes, err, sizeof err),
              PERSIST_OK);
    ASSERT_EQ(n, 24);
    ASSERT_EQ(bytes, file_size(path));
    ASSERT_EQ(persist_backup(p, "b1.snap", path, sizeof path, &n, &bytes, err, sizeof err),
              PERSIST_EEXIST);
    ASSERT_EQ(persist_backup(p, NULL, path, sizeof path, &n, &bytes, err, sizeof err), PERSIST_OK);
    ASSERT_CONTAINS(path, "/backups/sessions-");
    char backup[512];
    snprintf(backup, sizeof backup, "%s/backups/b1.snap", dir);
    workload(a, 500, 30); /* changes after the backup */
    close_p(p);
    store_free(a);

    /* Restore into another data directory that has its own state. */
    struct store *b = mkstore();
    p = open_dir(dir2, b, &info);
    workload(b, 9000, 10);
    close_p(p);
    store_free(b);
    b = mkstore();
    struct persist_opts o = {.data_dir = dir2,
                             .restore_from = backup,
                             .sync_interval_ms = 5,
                             .snapshot_interval_ms = 3600000,
                             .compact_log_bytes = 1 << 30,
                             .no_fsync = true};
    p = persist_open(&o, b, &info, err, sizeof err);
    ASSERT_TRUE(p != NULL);
    ASSERT_TRUE(info.restored);
    char *got = dump(b);
    ASSERT_STREQ(got, want);
    ASSERT_TRUE(count_files(dir2, ".pre-restore-") >= 1); /* the replaced state is kept */
    touch(b, 424242, 1);                                  /* a change after the restore */
    close_p(p);
    store_free(b);
    free(got);

    /* Restarting with the same RESTORE_FROM does not restore again over newer changes. */
    b = mkstore();
    p = persist_open(&o, b, &info, err, sizeof err);
    ASSERT_TRUE(p != NULL);
    ASSERT_FALSE(info.restored);
    struct session s;
    ASSERT_EQ(store_get(b, 424242, &s, NULL, NULL), STORE_OK);
    session_free(&s);
    close_p(p);
    store_free(b);

    /* A damaged backup is refused and the data directory is left alone. */
    ASSERT_EQ(truncate(backup, file_size(backup) - 3), 0);
    char *dir3 = mkdtemp_dir();
    b = mkstore();
    o.data_dir = dir3;
    p = persist_open(&o, b, &info, err, sizeof err);
    ASSERT_TRUE(p == NULL);
    ASSERT_CONTAINS(err, "RESTORE_FROM");
    o.restore_from = "/nonexistent/backup.snap";
    p = persist_open(&o, b, &info, err, sizeof err);
    ASSERT_TRUE(p == NULL);
    ASSERT_CONTAINS(err, "does not exist");
    store_free(b);
    free(want);
    rm_rf(dir);
    rm_rf(dir2);
    rm_rf(dir3);
}

TEST(unwritable_data_dir_is_an_error)
{
    setup();
    struct store *st = mkstore();
    struct persist_load_info info;
    struct persist_opts o = {.data_dir = "/proc/engbot-no-such-dir",
                             .sync_interval_ms = 5,
                             .snapshot_interval_ms = 3600000,
                             .compact_log_bytes = 1 << 30};
    char err[512];
    ASSERT_TRUE(persist_open(&o, st, &info, err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "/proc/engbot-no-such-dir");
    store_free(st);
}

TEST(unknown_fields_and_operations_are_skipped)
{
    setup();
    struct store *st = mkstore();
    /* A put with an extra field 99 (varint 5) inside the session: read, field ignored. */
    uint8_t put[] = {0x0a, 0x07, 0x08, 0x2a, 0x48, 0x03, 0x98, 0x06, 0x05};
    ASSERT_EQ(record_apply_log(st, put, sizeof put), 0);
    struct session s;
    clock_set_fake(true, 0);
    ASSERT_EQ(store_get(st, 42, &s, NULL, NULL), STORE_OK);
    ASSERT_EQ(s.version, 3);
    session_free(&s);
    /* A record whose only field is an operation this version does not know (field 15). */
    uint8_t future[] = {0x7a, 0x02, 0x08, 0x01};
    ASSERT_EQ(record_apply_log(st, future, sizeof future), 1);
    /* Garbage is not a record. */
    uint8_t junk[] = {0xff, 0xff, 0xff};
    ASSERT_EQ(record_apply_log(st, junk, sizeof junk), -1);
    store_free(st);
}
