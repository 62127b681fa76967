/* test_existence.c -- cache-svc/existence.c with the fake clock: one disk check per
 * FILE_CACHE_DURATION per entry, a vanished file reported and dropped, a file swapped for a
 * symlink refused and dropped, a changed file updated. */
#include "clock.h"
#include "existence.h"
#include "test.h"
#include "tree.h"

#define MIN (60 * 1000)

struct fixture {
    char *dir;
    struct ps_root *root;
    struct cat *cat;
    struct scan *scan;
    struct exist *ex;
};

static void open_fx(struct fixture *f, int64_t duration_ms)
{
    char err[256];
    clock_set_fake(true, 1700000000000);
    f->dir = tree_tmpdir("exist");
    tree_write(f->dir, "Datasheets/Bearing-6204.pdf", "%PDF-1.4\n");
    tree_write(f->dir, "Datasheets/Motor.pdf", "%PDF-1.4\n");
    f->root = ps_root_open(f->dir, err, sizeof err);
    f->cat = cat_new(NULL);
    f->scan = scan_new(f->cat, f->root);
    scan_full(f->scan, SCAN_RESCAN, NULL);
    f->ex = exist_new(f->cat, f->scan, f->root, duration_ms);
}

static void close_fx(struct fixture *f)
{
    exist_free(f->ex);
    scan_free(f->scan);
    cat_free(f->cat);
    ps_root_close(f->root);
    tree_rm(f->dir);
    free(f->dir);
    clock_set_fake(false, 0);
}

static uint64_t hits(struct fixture *f)
{
    return atomic_load(&exist_stats(f->ex)->hits);
}

static uint64_t misses(struct fixture *f)
{
    return atomic_load(&exist_stats(f->ex)->misses);
}

static bool in_catalogue(struct fixture *f, const char *path)
{
    cat_rdlock(f->cat);
    bool r = cat_by_path(f->cat, path) != CAT_NONE;
    cat_unlock(f->cat);
    return r;
}

TEST(disk_is_checked_once_per_duration)
{
    struct fixture f;
    open_fx(&f, 5 * MIN);
    struct ps_err e;
    const char *p = "Datasheets/Bearing-6204.pdf";
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    ASSERT_EQ(misses(&f), 1); /* never checked: to the disk */
    ASSERT_EQ(hits(&f), 0);
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    ASSERT_EQ(hits(&f), 1);
    clock_advance_ms(5 * MIN - 1);
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    ASSERT_EQ(hits(&f), 2); /* still within the duration */
    ASSERT_EQ(misses(&f), 1);
    clock_advance_ms(1);
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    ASSERT_EQ(misses(&f), 2); /* expired: checked again */
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    ASSERT_EQ(hits(&f), 3);
    /* Entries are stamped independently. */
    ASSERT_EQ(exist_verify(f.ex, "Datasheets/Motor.pdf", &e), EXIST_OK);
    ASSERT_EQ(misses(&f), 3);
    ASSERT_TRUE(exist_stats(f.ex)->m_ratio != NULL);
    ASSERT_EQ((int)(cachestat_ratio(exist_stats(f.ex)) * 100), 50);
    close_fx(&f);
}

TEST(vanished_file_is_gone_after_expiry_and_leaves_the_catalogue)
{
    struct fixture f;
    open_fx(&f, 5 * MIN);
    struct ps_err e;
    const char *p = "Datasheets/Motor.pdf";
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    tree_unlink(f.dir, p);
    /* Within the duration the cache answers (that is the point of it). */
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    clock_advance_ms(5 * MIN);
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_GONE);
    ASSERT_FALSE(in_catalogue(&f, p));
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_GONE);
    ASSERT_EQ(e.reason, PS_NOT_FOUND);
    close_fx(&f);
}

TEST(file_swapped_for_escaping_symlink_is_refused)
{
    struct fixture f;
    open_fx(&f, 5 * MIN);
    struct ps_err e;
    const char *p = "Datasheets/Bearing-6204.pdf";
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    tree_unlink(f.dir, p);
    tree_symlink(f.dir, p, "/etc/passwd");
    clock_advance_ms(5 * MIN);
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_REFUSED);
    ASSERT_EQ(e.reason, PS_SYMLINK_ESCAPE);
    ASSERT_FALSE(in_catalogue(&f, p));
    close_fx(&f);
}

TEST(changed_file_updates_the_catalogue)
{
    struct fixture f;
    open_fx(&f, 5 * MIN);
    struct ps_err e;
    const char *p = "Datasheets/Bearing-6204.pdf";
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    tree_write(f.dir, p, "%PDF-1.4 and a new revision\n");
    clock_advance_ms(5 * MIN);
    ASSERT_EQ(exist_verify(f.ex, p, &e), EXIST_OK);
    cat_rdlock(f.cat);
    struct cat_info in;
    cat_get(f.cat, cat_by_path(f.cat, p), &in);
    cat_unlock(f.cat);
    ASSERT_EQ(in.size, strlen("%PDF-1.4 and a new revision\n"));
    ASSERT_EQ(scan_invalidations(f.scan, SCAN_EXISTENCE), 1);
    close_fx(&f);
}

TEST(zero_duration_checks_every_time)
{
    struct fixture f;
    open_fx(&f, 0);
    struct ps_err e;
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(exist_verify(f.ex, "Datasheets/Motor.pdf", &e), EXIST_OK);
    ASSERT_EQ(hits(&f), 0);
    ASSERT_EQ(misses(&f), 3);
    close_fx(&f);
}

TEST(mark_counts_as_a_check)
{
    struct fixture f;
    open_fx(&f, 5 * MIN);
    struct ps_err e;
    exist_mark(f.ex, "Datasheets/Motor.pdf"); /* a read just opened it */
    ASSERT_EQ(exist_verify(f.ex, "Datasheets/Motor.pdf", &e), EXIST_OK);
    ASSERT_EQ(hits(&f), 1);
    ASSERT_EQ(misses(&f), 0);
    close_fx(&f);
}
