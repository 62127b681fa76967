/* test_fileids.c -- cache-svc/fileids.c and fidrec.c: the table, persistence across reopen,
 * compaction, damaged files kept aside (garbage, a flipped byte, a torn log tail, a record
 * the rules refuse, a newer format), and the version rule (trailing fields and unknown record
 * types written by a newer version are read). */
#include "durable.h"
#include "fileids.h"
#include "test.h"
#include "tree.h"

#include <dirent.h>

static struct fileids *open_dir(const char *dir, struct fileids_report *rep)
{
    struct fileids_opts o = {.dir = dir, .max_ids = 1000};
    char err[256];
    struct fileids *f = fileids_open(&o, rep, err, sizeof err);
    if (!f)
        fprintf(stderr, "    open: %s\n", err);
    return f;
}

static int get(struct fileids *f, int64_t bot, const char *path, char *id)
{
    uint64_t size;
    int64_t mtime;
    return fileids_get(f, bot, path, id, &size, &mtime);
}

/* Files in dir whose name contains needle. */
static int count_files(const char *dir, const char *needle)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strstr(de->d_name, needle) != NULL;
    if (d)
        closedir(d);
    return n;
}

TEST(table_put_get_replace_drop)
{
    struct fileids_opts o = {.max_ids = 3};
    struct fileids *f = fileids_open(&o, NULL, NULL, 0);
    char id[FIDREC_MAX_ID + 1];
    uint64_t size;
    int64_t mtime;
    ASSERT_EQ(fileids_get(f, 1, "a.pdf", id, &size, &mtime), FILEIDS_NOT_FOUND);
    ASSERT_EQ(fileids_put(f, 1, "a.pdf", 10, 20, "BQACAgQAAxk", NULL, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_get(f, 1, "a.pdf", id, &size, &mtime), FILEIDS_OK);
    ASSERT_STREQ(id, "BQACAgQAAxk");
    ASSERT_EQ(size, 10);
    ASSERT_EQ(mtime, 20);
    ASSERT_EQ(fileids_get(f, 2, "a.pdf", id, &size, &mtime), FILEIDS_NOT_FOUND); /* per bot */
    ASSERT_EQ(fileids_put(f, 1, "a.pdf", 11, 21, "second-id", NULL, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_get(f, 1, "a.pdf", id, &size, &mtime), FILEIDS_OK);
    ASSERT_STREQ(id, "second-id");
    ASSERT_EQ(size, 11);
    ASSERT_EQ(fileids_count(f), 1);
    ASSERT_EQ(fileids_drop(f, 1, "a.pdf", "not-this-one", NULL, NULL), FILEIDS_NOT_FOUND);
    ASSERT_EQ(fileids_drop(f, 1, "a.pdf", "second-id", NULL, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_drop(f, 1, "a.pdf", "", NULL, NULL), FILEIDS_NOT_FOUND);
    /* The limit. */
    ASSERT_EQ(fileids_put(f, 1, "a", 1, 1, "x", NULL, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_put(f, 1, "b", 1, 1, "x", NULL, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_put(f, 1, "c", 1, 1, "x", NULL, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_put(f, 1, "d", 1, 1, "x", NULL, NULL), FILEIDS_FULL);
    ASSERT_EQ(fileids_put(f, 1, "a", 2, 2, "y", NULL, NULL), FILEIDS_OK); /* replacing is fine */
    /* Invalid ids never get in. */
    ASSERT_NE(fileids_put(f, 1, "a", 2, 2, "bad id!", NULL, NULL), FILEIDS_OK);
    ASSERT_NE(fileids_put(f, 0, "a", 2, 2, "x", NULL, NULL), FILEIDS_OK);
    fileids_close(f);
}

static int done_calls, done_err = -1;
static void on_done(void *arg, int err)
{
    (void)arg;
    __atomic_add_fetch(&done_calls, 1, __ATOMIC_SEQ_CST);
    done_err = err;
}

TEST(persists_across_reopen)
{
    char *d = tree_tmpdir("fids");
    struct fileids_report rep;
    struct fileids *f = open_dir(d, &rep);
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(rep.damaged, 0);
    done_calls = 0;
    ASSERT_EQ(fileids_put(f, 42, "Datasheets/Bearing-6204.pdf", 969, 1700000000123,
                          "BQACAgIAAxkBAAIBZ2V", on_done, NULL),
              FILEIDS_OK);
    ASSERT_EQ(fileids_put(f, 42, "README.md", 100, 5, "README-id", on_done, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_put(f, 7, "README.md", 100, 5, "other-bot", on_done, NULL), FILEIDS_OK);
    ASSERT_EQ(fileids_drop(f, 7, "README.md", "", on_done, NULL), FILEIDS_OK);
    fileids_close(f); /* flushes: every done ran */
    ASSERT_EQ(done_calls, 4);
    ASSERT_EQ(done_err, 0);
    f = open_dir(d, &rep);
    ASSERT_EQ(rep.damaged, 0);
    ASSERT_EQ(fileids_count(f), 2);
    char id[FIDREC_MAX_ID + 1];
    uint64_t size;
    int64_t mtime;
    ASSERT_EQ(fileids_get(f, 42, "Datasheets/Bearing-6204.pdf", id, &size, &mtime), FILEIDS_OK);
    ASSERT_STREQ(id, "BQACAgIAAxkBAAIBZ2V");
    ASSERT_EQ(size, 969);
    ASSERT_EQ(mtime, 1700000000123);
    ASSERT_EQ(get(f, 7, "README.md", id), FILEIDS_NOT_FOUND);
    fileids_close(f);
    /* Every open compacts: one snapshot, one (fresh) log. */
    ASSERT_EQ(count_files(d, "fileids.snap"), 1);
    ASSERT_EQ(count_files(d, ".log"), 1);
    ASSERT_EQ(count_files(d, "damaged"), 0);
    tree_rm(d);
    free(d);
}

TEST(kill9_before_close_keeps_acknowledged_puts)
{
    char *d = tree_tmpdir("fids");
    struct fileids *f = open_dir(d, NULL);
    done_calls = 0;
    fileids_put(f, 1, "a.pdf", 1, 2, "acked", on_done, NULL);
    while (__atomic_load_n(&done_calls, __ATOMIC_SEQ_CST) < 1)
        usleep(1000);
    /* Simulate a crash: read the directory while f is still open (no close, no snapshot). */
    struct fileids *g = open_dir(d, NULL);
    char id[FIDREC_MAX_ID + 1];
    ASSERT_EQ(get(g, 1, "a.pdf", id), FILEIDS_OK);
    ASSERT_STREQ(id, "acked");
    fileids_close(g);
    fileids_close(f);
    tree_rm(d);
    free(d);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    fwrite(data, 1, len, fp);
    fclose(fp);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

TEST(garbage_snapshot_is_kept_aside)
{
    char *d = tree_tmpdir("fids");
    char p[4300];
    snprintf(p, sizeof p, "%s/fileids.snap", d);
    write_file(p, "this is not a record file at all", 32);
    struct fileids_report rep;
    struct fileids *f = open_dir(d, &rep);
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(rep.damaged, 1);
    ASSERT_CONTAINS(rep.why, "bad magic");
    ASSERT_EQ(fileids_count(f), 0);
    fileids_close(f);
    ASSERT_EQ(count_files(d, "fileids.snap.damaged-"), 1);
    ASSERT_EQ(count_files(d, "fileids.snap"), 2); /* the new one and the one kept aside */
    tree_rm(d);
    free(d);
}

TEST(flipped_byte_keeps_records_before_the_damage)
{
    char *d = tree_tmpdir("fids");
    struct fileids *f = open_dir(d, NULL);
    fileids_put(f, 1, "a.pdf", 1, 1, "first", NULL, NULL);
    fileids_put(f, 1, "b.pdf", 1, 1, "second", NULL, NULL);
    fileids_put(f, 1, "c.pdf", 1, 1, "third", NULL, NULL);
    fileids_close(f);
    f = open_dir(d, NULL); /* now all three are in the snapshot */
    fileids_close(f);
    char p[4300];
    snprintf(p, sizeof p, "%s/fileids.snap", d);
    uint8_t buf[4096];
    size_t n = read_file(p, buf, sizeof buf);
    ASSERT_TRUE(n > 40);
    buf[n - 12] ^= 0x40; /* inside the last record */
    write_file(p, buf, n);
    struct fileids_report rep;
    f = open_dir(d, &rep);
    ASSERT_EQ(rep.damaged, 1);
    ASSERT_CONTAINS(rep.why, "checksum");
    ASSERT_EQ(fileids_count(f), 2); /* the records before the damage */
    fileids_close(f);
    ASSERT_EQ(count_files(d, "damaged"), 1);
    tree_rm(d);
    free(d);
}

TEST(torn_log_tail_is_reported_and_the_rest_kept)
{
    char *d = tree_tmpdir("fids");
    struct fileids *f = open_dir(d, NULL);
    fileids_put(f, 1, "a.pdf", 1, 1, "first", NULL, NULL);
    fileids_put(f, 1, "b.pdf", 1, 1, "second", NULL, NULL);
    fileids_close(f);
    /* The log is fileids.1.log; cut its last record in half. */
    char p[4300];
    snprintf(p, sizeof p, "%s/fileids.1.log", d);
    uint8_t buf[4096];
    size_t n = read_file(p, buf, sizeof buf);
    write_file(p, buf, n - 5);
    struct fileids_report rep;
    f = open_dir(d, &rep);
    ASSERT_EQ(rep.damaged, 1);
    ASSERT_CONTAINS(rep.why, "torn");
    char id[FIDREC_MAX_ID + 1];
    ASSERT_EQ(get(f, 1, "a.pdf", id), FILEIDS_OK);
    ASSERT_EQ(get(f, 1, "b.pdf", id), FILEIDS_NOT_FOUND);
    fileids_close(f);
    tree_rm(d);
    free(d);
}

/* Writes a snapshot of raw records (as a newer or hostile writer might). */
static void write_snapshot(const char *dir, uint32_t version, const uint8_t *const *recs,
                           const size_t *lens, int n)
{
    char p[4300], err[256];
    snprintf(p, sizeof p, "%s/fileids.snap", dir);
    struct dfile *df = dfile_create(p, FIDREC_KIND_SNAP, version, err, sizeof err);
    for (int i = 0; i < n; i++)
        dfile_record(df, recs[i], lens[i]);
    dfile_commit(df, NULL, err, sizeof err);
}

static size_t put_rec(uint8_t *buf, int64_t bot, const char *path, const char *id)
{
    struct fidrec r = {.op = FIDREC_PUT,
                       .bot_id = bot,
                       .size = 5,
                       .mtime_ms = 6,
                       .path = path,
                       .path_len = strlen(path),
                       .file_id = id,
                       .id_len = strlen(id)};
    return fidrec_encode(&r, buf);
}

TEST(version_rule_newer_additive_records_are_read)
{
    char *d = tree_tmpdir("fids");
    uint8_t a[512], b[512], c[8];
    size_t la = put_rec(a, 1, "a.pdf", "id-a");
    memcpy(a + la, "\x01\x02\x03future-field", 15); /* a trailing field a newer version added */
    la += 15;
    size_t lb = put_rec(b, 1, "b.pdf", "id-b");
    c[0] = 77; /* a record type this version does not know */
    memcpy(c + 1, "opaque!", 7);
    const uint8_t *recs[] = {a, c, b};
    size_t lens[] = {la, 8, lb};
    write_snapshot(d, FIDREC_VERSION, recs, lens, 3);
    struct fileids_report rep;
    struct fileids *f = open_dir(d, &rep);
    ASSERT_EQ(rep.damaged, 0);
    char id[FIDREC_MAX_ID + 1];
    ASSERT_EQ(get(f, 1, "a.pdf", id), FILEIDS_OK);
    ASSERT_STREQ(id, "id-a");
    ASSERT_EQ(get(f, 1, "b.pdf", id), FILEIDS_OK);
    fileids_close(f);
    tree_rm(d);
    free(d);
}

TEST(version_rule_incompatible_newer_format_is_kept_aside)
{
    char *d = tree_tmpdir("fids");
    uint8_t a[512];
    size_t la = put_rec(a, 1, "a.pdf", "id-a");
    const uint8_t *recs[] = {a};
    write_snapshot(d, FIDREC_VERSION + 1, recs, &la, 1);
    struct fileids_report rep;
    struct fileids *f = open_dir(d, &rep);
    ASSERT_EQ(rep.damaged, 1);
    ASSERT_CONTAINS(rep.why, "format version");
    ASSERT_EQ(fileids_count(f), 0);
    fileids_close(f);
    tree_rm(d);
    free(d);
}

TEST(records_the_rules_refuse_are_not_trusted)
{
    char *d = tree_tmpdir("fids");
    uint8_t a[512], b[512], c[512];
    size_t la = put_rec(a, 1, "ok.pdf", "id-ok");
    size_t lb = put_rec(b, 1, "../../etc/passwd", "id-evil");
    size_t lc = put_rec(c, 1, "after.pdf", "id-after");
    const uint8_t *recs[] = {a, b, c};
    size_t lens[] = {la, lb, lc};
    write_snapshot(d, FIDREC_VERSION, recs, lens, 3);
    struct fileids_report rep;
    struct fileids *f = open_dir(d, &rep);
    ASSERT_EQ(rep.damaged, 1);
    ASSERT_CONTAINS(rep.why, "path refused");
    char id[FIDREC_MAX_ID + 1];
    ASSERT_EQ(get(f, 1, "ok.pdf", id), FILEIDS_OK);
    ASSERT_EQ(get(f, 1, "after.pdf", id), FILEIDS_NOT_FOUND); /* nothing after the damage */
    fileids_close(f);
    tree_rm(d);
    free(d);
}

TEST(decode_rejects_malformed_records)
{
    struct fidrec r;
    char why[200];
    uint8_t buf[FIDREC_MAX];
    size_t n = put_rec(buf, 1, "a.pdf", "id");
    ASSERT_EQ(fidrec_decode(buf, n, &r, why, sizeof why), 1);
    ASSERT_EQ(r.path_len, 5);
    for (size_t cut = 1; cut < n; cut++)
        ASSERT_EQ(fidrec_decode(buf, cut, &r, why, sizeof why), -1); /* every truncation */
    ASSERT_EQ(fidrec_decode(buf, 0, &r, why, sizeof why), -1);
    n = put_rec(buf, -5, "a.pdf", "id");
    ASSERT_EQ(fidrec_decode(buf, n, &r, why, sizeof why), -1);
    ASSERT_CONTAINS(why, "bot_id");
    n = put_rec(buf, 1, "a.pdf", "bad id");
    ASSERT_EQ(fidrec_decode(buf, n, &r, why, sizeof why), -1);
    n = put_rec(buf, 1, ".hidden", "id");
    ASSERT_EQ(fidrec_decode(buf, n, &r, why, sizeof why), -1);
    ASSERT_TRUE(fidrec_id_ok("AgADBAADq6cxG", 13));
    ASSERT_FALSE(fidrec_id_ok("", 0));
}

TEST(log_growth_compacts)
{
    char *d = tree_tmpdir("fids");
    struct fileids_opts o = {.dir = d, .max_ids = 100, .no_fsync = true};
    char err[256];
    struct fileids *f = fileids_open(&o, NULL, err, sizeof err);
    char id[200];
    memset(id, 'x', 199);
    id[199] = '\0';
    /* ~230-byte records, 100 paths rewritten: the log passes 1 MiB and compacts. */
    for (int i = 0; i < 6000; i++) {
        char path[32];
        snprintf(path, sizeof path, "f%03d.pdf", i % 100);
        ASSERT_EQ(fileids_put(f, 1, path, (uint64_t)i, i, id, NULL, NULL), FILEIDS_OK);
    }
    fileids_close(f);
    ASSERT_EQ(count_files(d, ".log"), 1); /* the old generations were deleted */
    f = fileids_open(&o, NULL, err, sizeof err);
    ASSERT_EQ(fileids_count(f), 100);
    uint64_t size;
    int64_t mtime;
    ASSERT_EQ(fileids_get(f, 1, "f042.pdf", id, &size, &mtime), FILEIDS_OK);
    ASSERT_EQ(size, 5942); /* the last write of that path */
    fileids_close(f);
    tree_rm(d);
    free(d);
}

TEST(unusable_data_dir_fails_to_open)
{
    struct fileids_opts o = {.dir = "/proc/engbot-no-such-dir"};
    char err[256] = "";
    ASSERT_TRUE(fileids_open(&o, NULL, err, sizeof err) == NULL);
    ASSERT_TRUE(err[0] != '\0');
}
