/* test_durable.c -- record files and the group-commit log: round trips, the seal, every torn
 * and corrupt case, group commit callbacks, rotation. */
#include "durable.h"
#include "test.h"

#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIND 0x54455354u /* "TEST" */

static char *tmpdir(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "/tmp/engbot-test-durable-XXXXXX");
    return mkdtemp(buf);
}

struct collect {
    int n;
    char recs[64][64];
};

static int collect_cb(void *arg, const uint8_t *rec, size_t len)
{
    struct collect *c = arg;
    if (c->n < 64 && len < 64) {
        memcpy(c->recs[c->n], rec, len);
        c->recs[c->n][len] = '\0';
    }
    c->n++;
    return 0;
}

TEST(crc32c_known_vector)
{
    ASSERT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
    ASSERT_EQ(crc32c(0, "", 0), 0);
}

TEST(dfile_round_trip_and_seal)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/snap", tmpdir());
    struct dfile *f = dfile_create(path, KIND, 3, err, sizeof err);
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(dfile_record(f, "alpha", 5), 0);
    ASSERT_EQ(dfile_record(f, "beta", 4), 0);
    uint64_t bytes = 0;
    ASSERT_EQ(dfile_commit(f, &bytes, err, sizeof err), 0);
    ASSERT_EQ(bytes, 16 + 8 + 5 + 8 + 4 + 8);
    struct collect c = {0};
    struct dread_result r;
    ASSERT_EQ(dread_file(path, KIND, collect_cb, &c, &r), 0);
    ASSERT_EQ(c.n, 2);
    ASSERT_STREQ(c.recs[0], "alpha");
    ASSERT_STREQ(c.recs[1], "beta");
    ASSERT_TRUE(r.sealed);
    ASSERT_FALSE(r.damaged);
    ASSERT_EQ(r.version, 3);
    ASSERT_EQ(access(path, F_OK), 0);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ASSERT_NE(access(tmp, F_OK), 0); /* renamed into place */
    /* wrong kind is an error, a missing file says so */
    ASSERT_EQ(dread_file(path, KIND + 1, collect_cb, &c, &r), -1);
    ASSERT_CONTAINS(r.why, "wrong file kind");
    snprintf(tmp, sizeof tmp, "%s.missing", path);
    ASSERT_EQ(dread_file(tmp, KIND, collect_cb, &c, &r), 1);
}

/* Every truncation of a sealed file is either the whole file or reported as damaged, and the
 * records delivered are always a prefix of what was written. */
TEST(truncation_at_every_offset_is_detected)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/snap", tmpdir());
    struct dfile *f = dfile_create(path, KIND, 1, err, sizeof err);
    const char *recs[] = {"one", "two22", "three333"};
    for (int i = 0; i < 3; i++)
        dfile_record(f, recs[i], strlen(recs[i]));
    uint64_t total;
    ASSERT_EQ(dfile_commit(f, &total, err, sizeof err), 0);
    int fd = open(path, O_RDONLY);
    char full[256];
    ASSERT_EQ(read(fd, full, sizeof full), (ssize_t)total);
    close(fd);
    for (uint64_t cut = 0; cut < total; cut++) {
        fd = open(path, O_WRONLY | O_TRUNC);
        ASSERT_EQ(write(fd, full, cut), (ssize_t)cut);
        close(fd);
        struct collect c = {0};
        struct dread_result r;
        int rc = dread_file(path, KIND, collect_cb, &c, &r);
        ASSERT_TRUE(rc == 0 || rc == -1);
        ASSERT_FALSE(r.sealed && !r.damaged); /* a cut file never looks complete */
        for (int i = 0; i < c.n && i < 3; i++)
            ASSERT_STREQ(c.recs[i], recs[i]);
    }
}

TEST(flipped_bytes_are_detected)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/snap", tmpdir());
    struct dfile *f = dfile_create(path, KIND, 1, err, sizeof err);
    dfile_record(f, "payload-one", 11);
    dfile_record(f, "payload-two", 11);
    uint64_t total;
    dfile_commit(f, &total, err, sizeof err);
    int fd = open(path, O_RDONLY);
    unsigned char full[256];
    ASSERT_EQ(read(fd, full, sizeof full), (ssize_t)total);
    close(fd);
    for (uint64_t at = 16; at < total; at++) {
        unsigned char m[256];
        memcpy(m, full, total);
        m[at] ^= 0x40;
        fd = open(path, O_WRONLY | O_TRUNC);
        ASSERT_EQ(write(fd, m, total), (ssize_t)total);
        close(fd);
        struct collect c = {0};
        struct dread_result r;
        dread_file(path, KIND, collect_cb, &c, &r);
        ASSERT_TRUE(r.damaged || !r.sealed);
    }
}

struct done_state {
    atomic_int ok, failed;
};

static void on_done(void *arg, int err)
{
    struct done_state *d = arg;
    if (err)
        atomic_fetch_add(&d->failed, 1);
    else
        atomic_fetch_add(&d->ok, 1);
}

struct writer_arg {
    struct rlog *l;
    struct done_state *d;
    int id;
};

static void *writer(void *p)
{
    struct writer_arg *w = p;
    for (int i = 0; i < 200; i++) {
        char rec[32];
        int n = snprintf(rec, sizeof rec, "w%d-%d", w->id, i);
        rlog_append(w->l, rec, (size_t)n, on_done, w->d);
    }
    return NULL;
}

TEST(rlog_group_commit_all_callbacks_and_replay)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/log", tmpdir());
    struct rlog_opts o = {.sync_interval_ms = 1000};
    struct rlog *l = rlog_open(path, KIND, 1, &o, err, sizeof err);
    ASSERT_TRUE(l != NULL);
    struct done_state d = {0};
    pthread_t th[4];
    struct writer_arg wa[4];
    for (int i = 0; i < 4; i++) {
        wa[i] = (struct writer_arg){l, &d, i};
        pthread_create(&th[i], NULL, writer, &wa[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(rlog_flush(l), 0);
    ASSERT_EQ(atomic_load(&d.ok), 800);
    ASSERT_EQ(atomic_load(&d.failed), 0);
    /* a record without a callback still reaches disk at flush */
    rlog_append(l, "tail", 4, NULL, NULL);
    rlog_close(l);
    struct collect c = {0};
    struct dread_result r;
    ASSERT_EQ(dread_file(path, KIND, collect_cb, &c, &r), 0);
    ASSERT_EQ(c.n, 801);
    ASSERT_FALSE(r.damaged);
    ASSERT_FALSE(r.sealed); /* logs are never sealed */
}

TEST(rlog_torn_tail_truncate_and_continue)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/log", tmpdir());
    struct rlog_opts o = {.sync_interval_ms = 10};
    struct rlog *l = rlog_open(path, KIND, 1, &o, err, sizeof err);
    rlog_append(l, "first", 5, NULL, NULL);
    rlog_append(l, "second", 6, NULL, NULL);
    rlog_close(l);
    struct stat st;
    stat(path, &st);
    ASSERT_EQ(truncate(path, st.st_size - 3), 0); /* kill -9 mid-write */
    struct collect c = {0};
    struct dread_result r;
    ASSERT_EQ(dread_file(path, KIND, collect_cb, &c, &r), 0);
    ASSERT_TRUE(r.damaged);
    ASSERT_CONTAINS(r.why, "torn");
    ASSERT_EQ(c.n, 1);
    ASSERT_EQ(rlog_truncate(path, r.good_bytes), 0);
    l = rlog_open(path, KIND, 1, &o, err, sizeof err);
    rlog_append(l, "third", 5, NULL, NULL);
    rlog_close(l);
    struct collect c2 = {0};
    ASSERT_EQ(dread_file(path, KIND, collect_cb, &c2, &r), 0);
    ASSERT_FALSE(r.damaged);
    ASSERT_EQ(c2.n, 2);
    ASSERT_STREQ(c2.recs[0], "first");
    ASSERT_STREQ(c2.recs[1], "third");
}

TEST(rlog_rotate_starts_a_new_file)
{
    char dir[128], a[160], b[160], err[256];
    snprintf(dir, sizeof dir, "%s", tmpdir());
    snprintf(a, sizeof a, "%s/log.1", dir);
    snprintf(b, sizeof b, "%s/log.2", dir);
    struct rlog_opts o = {.sync_interval_ms = 10};
    struct rlog *l = rlog_open(a, KIND, 1, &o, err, sizeof err);
    rlog_append(l, "in-a", 4, NULL, NULL);
    ASSERT_EQ(rlog_rotate(l, b, err, sizeof err), 0);
    rlog_append(l, "in-b", 4, NULL, NULL);
    rlog_close(l);
    struct collect ca = {0}, cb = {0};
    struct dread_result r;
    dread_file(a, KIND, collect_cb, &ca, &r);
    dread_file(b, KIND, collect_cb, &cb, &r);
    ASSERT_EQ(ca.n, 1);
    ASSERT_STREQ(ca.recs[0], "in-a");
    ASSERT_EQ(cb.n, 1);
    ASSERT_STREQ(cb.recs[0], "in-b");
}

TEST(keep_aside_and_check_dir)
{
    char dir[128], p[160], out[256], err[256];
    snprintf(dir, sizeof dir, "%s", tmpdir());
    snprintf(p, sizeof p, "%s/x", dir);
    FILE *f = fopen(p, "w");
    fputs("garbage", f);
    fclose(f);
    ASSERT_EQ(durable_keep_aside(p, out, sizeof out), 0);
    ASSERT_CONTAINS(out, ".damaged-");
    ASSERT_NE(access(p, F_OK), 0);
    ASSERT_EQ(access(out, F_OK), 0);
    char sub[200];
    snprintf(sub, sizeof sub, "%s/a/b/c", dir);
    ASSERT_EQ(durable_check_dir(sub, err, sizeof err), 0);
    if (geteuid() != 0) { /* root can write anywhere */
        chmod(sub, 0500);
        ASSERT_EQ(durable_check_dir(sub, err, sizeof err), -1);
        ASSERT_CONTAINS(err, "not writable");
    }
    ASSERT_EQ(durable_check_dir("/proc/engbot-no-such-dir", err, sizeof err), -1);
    ASSERT_CONTAINS(err, "/proc/engbot-no-such-dir");
}

/* A full disk, simulated with RLIMIT_FSIZE (writes past it fail with EFBIG): the failed batch
 * is kept and written again, in order, when space returns; the error is visible meanwhile;
 * the file never holds a torn record. */
TEST(rlog_keeps_records_across_a_full_disk)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/log", tmpdir());
    signal(SIGXFSZ, SIG_IGN);
    struct rlog_opts o = {.sync_interval_ms = 5};
    struct rlog *l = rlog_open(path, KIND, 1, &o, err, sizeof err);
    ASSERT_TRUE(l != NULL);
    struct done_state d = {0};
    ASSERT_EQ(rlog_append(l, "before", 6, on_done, &d), 0);
    ASSERT_EQ(rlog_flush(l), 0);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)rlog_bytes(l); /* no room for one more byte */
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ASSERT_EQ(rlog_append(l, "full-1", 6, on_done, &d), 0);
    ASSERT_EQ(rlog_append(l, "full-2", 6, NULL, NULL), 0);
    ASSERT_NE(rlog_flush(l), 0); /* the attempt failed */
    ASSERT_EQ(rlog_error(l), EFBIG);
    ASSERT_EQ(atomic_load(&d.failed), 1); /* the waiter was told */
    ASSERT_EQ(rlog_append(l, "full-3", 6, NULL, NULL), 0);
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0); /* space returns */
    for (int i = 0; i < 200 && rlog_error(l); i++)
        usleep(10000); /* the retry backs off up to 1 s */
    ASSERT_EQ(rlog_flush(l), 0);
    ASSERT_EQ(rlog_error(l), 0);
    rlog_close(l);
    struct collect c = {0};
    struct dread_result r;
    ASSERT_EQ(dread_file(path, KIND, collect_cb, &c, &r), 0);
    ASSERT_FALSE(r.damaged);
    ASSERT_EQ(c.n, 4);
    ASSERT_STREQ(c.recs[0], "before");
    ASSERT_STREQ(c.recs[1], "full-1");
    ASSERT_STREQ(c.recs[2], "full-2");
    ASSERT_STREQ(c.recs[3], "full-3");
}
