/* test_scan.c -- cache-svc/scan.c on real trees: ids stable across rescans and restarts,
 * what a scan leaves out (by reason), folder and path rescans, invalidation counting. */
#include "catalogue.h"
#include "pathsafe.h"
#include "scan.h"
#include "test.h"
#include "tree.h"

struct fixture {
    char *dir;
    struct ps_root *root;
    struct cat *cat;
    struct scan *scan;
};

static void open_fx(struct fixture *f, const char *dir)
{
    char err[256];
    f->dir = (char *)dir;
    f->root = ps_root_open(dir, err, sizeof err);
    f->cat = cat_new(NULL);
    f->scan = scan_new(f->cat, f->root);
}

static void close_fx(struct fixture *f)
{
    scan_free(f->scan);
    cat_free(f->cat);
    ps_root_close(f->root);
}

static bool has(struct fixture *f, const char *path)
{
    cat_rdlock(f->cat);
    bool r = cat_by_path(f->cat, path) != CAT_NONE;
    cat_unlock(f->cat);
    return r;
}

static void id_of(struct fixture *f, const char *path, char *out)
{
    cat_rdlock(f->cat);
    uint32_t s = cat_by_path(f->cat, path);
    out[0] = '\0';
    if (s != CAT_NONE) {
        struct cat_info in;
        cat_get(f->cat, s, &in);
        strcpy(out, in.id);
    }
    cat_unlock(f->cat);
}

static char *sample_tree(void)
{
    char *d = tree_tmpdir("scan");
    tree_write(d, "README.md", "# hi\n");
    tree_write(d, "Mechanical/Drawings/Bracket-A100.dxf", "0\nEOF\n");
    tree_write(d, "Mechanical/Drawings/Flange Rev 2.dxf", "0\nEOF\n");
    tree_write(d, "Electrical/Schematics/PSU.pdf", "%PDF-1.4\n");
    tree_write(d, "Standards/ISO-2768.pdf", "%PDF-1.4\n");
    tree_mkdir(d, "Empty");
    return d;
}

TEST(ids_are_stable_across_rescans_and_restarts)
{
    char *d = sample_tree();
    struct fixture a, b;
    open_fx(&a, d);
    struct scan_result r;
    ASSERT_EQ(scan_full(a.scan, SCAN_RESCAN, &r), 0);
    ASSERT_EQ(r.added, 11); /* 5 files and 6 folders */
    const char *paths[] = {"",
                           "README.md",
                           "Mechanical",
                           "Mechanical/Drawings",
                           "Mechanical/Drawings/Bracket-A100.dxf",
                           "Standards/ISO-2768.pdf",
                           "Empty"};
    char ids[7][16];
    for (int i = 0; i < 7; i++) {
        id_of(&a, paths[i], ids[i]);
        ASSERT_TRUE(ids[i][0] != '\0');
    }
    /* A rescan changes nothing. */
    ASSERT_EQ(scan_full(a.scan, SCAN_RESCAN, &r), 0);
    ASSERT_EQ(r.added + r.removed + r.changed, 0);
    for (int i = 0; i < 7; i++) {
        char now[16];
        id_of(&a, paths[i], now);
        ASSERT_STREQ(now, ids[i]);
    }
    /* A restart (a new catalogue over the same tree) gives the same ids. */
    open_fx(&b, d);
    scan_full(b.scan, SCAN_RESCAN, NULL);
    for (int i = 0; i < 7; i++) {
        char now[16];
        id_of(&b, paths[i], now);
        ASSERT_STREQ(now, ids[i]);
    }
    /* Other files coming and going leave the ids alone. */
    tree_write(d, "Mechanical/Drawings/New.dxf", "x");
    tree_unlink(d, "README.md");
    scan_full(a.scan, SCAN_RESCAN, &r);
    ASSERT_EQ(r.added, 1);
    ASSERT_EQ(r.removed, 1);
    char now[16];
    id_of(&a, "Mechanical/Drawings/Bracket-A100.dxf", now);
    ASSERT_STREQ(now, ids[4]);
    close_fx(&a);
    close_fx(&b);
    tree_rm(d);
    free(d);
}

TEST(scan_leaves_out_what_the_rules_refuse)
{
    char *d = sample_tree();
    tree_write(d, ".git/config", "x");
    tree_write(d, "Standards/.draft.pdf", "x");
    tree_symlink(d, "escape", "/etc/passwd");
    tree_symlink(d, "Standards/escape-dir", "/etc");
    tree_symlink(d, "Standards/inside-dir", "../Mechanical");
    tree_symlink(d, "Standards/latest.pdf", "ISO-2768.pdf"); /* allowed: a file inside */
    tree_symlink(d, "loop", "loop");
    tree_mkfifo(d, "pipe");
    tree_socket(d, "sock");
    tree_write(d, "back\\slash.pdf", "x");
    tree_write(d, "bad\x01name.pdf", "x");
    struct fixture f;
    open_fx(&f, d);
    scan_full(f.scan, SCAN_RESCAN, NULL);
    ASSERT_TRUE(has(&f, "Standards/latest.pdf"));
    ASSERT_FALSE(has(&f, ".git"));
    ASSERT_FALSE(has(&f, ".git/config"));
    ASSERT_FALSE(has(&f, "Standards/.draft.pdf"));
    ASSERT_FALSE(has(&f, "escape"));
    ASSERT_FALSE(has(&f, "Standards/escape-dir"));
    ASSERT_FALSE(has(&f, "Standards/inside-dir"));
    ASSERT_FALSE(has(&f, "loop"));
    ASSERT_FALSE(has(&f, "pipe"));
    ASSERT_FALSE(has(&f, "sock"));
    ASSERT_FALSE(has(&f, "back\\slash.pdf"));
    ASSERT_EQ(scan_skipped(f.scan, PS_HIDDEN), 2);
    ASSERT_EQ(scan_skipped(f.scan, PS_SYMLINK_ESCAPE), 2);
    ASSERT_EQ(scan_skipped(f.scan, PS_SYMLINK_FOLDER), 1);
    ASSERT_EQ(scan_skipped(f.scan, PS_SYMLINK_LOOP), 1);
    ASSERT_EQ(scan_skipped(f.scan, PS_SPECIAL), 2);
    ASSERT_EQ(scan_skipped(f.scan, PS_BACKSLASH), 1);
    ASSERT_EQ(scan_skipped(f.scan, PS_CONTROL), 1);
    close_fx(&f);
    tree_rm(d);
    free(d);
}

TEST(scan_stops_at_the_depth_limit)
{
    char *d = tree_tmpdir("deep");
    char rel[512] = "";
    for (int i = 0; i < PS_MAX_DEPTH + 2; i++)
        strcat(rel, i ? "/d" : "d");
    tree_mkdir(d, rel);
    strcat(rel, "/f.pdf");
    tree_write(d, rel, "x");
    struct fixture f;
    open_fx(&f, d);
    scan_full(f.scan, SCAN_RESCAN, NULL);
    struct cat_stats st;
    cat_rdlock(f.cat);
    cat_stats(f.cat, &st);
    cat_unlock(f.cat);
    ASSERT_EQ(st.folders, PS_MAX_DEPTH + 1); /* the root and 32 levels */
    ASSERT_EQ(scan_skipped(f.scan, PS_TOO_DEEP), 1);
    close_fx(&f);
    tree_rm(d);
    free(d);
}

TEST(folder_rescan_picks_up_new_subtrees)
{
    char *d = sample_tree();
    struct fixture f;
    open_fx(&f, d);
    scan_full(f.scan, SCAN_RESCAN, NULL);
    tree_write(d, "Mechanical/Models/Parts/p1.step", "ISO-10303-21;");
    tree_write(d, "Mechanical/Models/a.step", "ISO-10303-21;");
    struct scan_result r = {0};
    ASSERT_EQ(scan_folder(f.scan, "Mechanical", false, SCAN_INOTIFY, &r), 0);
    ASSERT_EQ(r.added, 4);
    ASSERT_TRUE(has(&f, "Mechanical/Models/Parts/p1.step"));
    ASSERT_EQ(scan_invalidations(f.scan, SCAN_INOTIFY), 4);
    ASSERT_EQ(scan_invalidations(f.scan, SCAN_RESCAN), 0); /* the first scan is a load */
    /* A folder that vanished leaves the catalogue with everything inside. */
    tree_rm(d);
    ASSERT_EQ(scan_folder(f.scan, "Mechanical", false, SCAN_INOTIFY, &r), -1);
    ASSERT_FALSE(has(&f, "Mechanical/Models/a.step"));
    ASSERT_FALSE(has(&f, "Mechanical"));
    close_fx(&f);
    free(d);
}

TEST(path_rescan_updates_one_entry)
{
    char *d = sample_tree();
    struct fixture f;
    open_fx(&f, d);
    scan_full(f.scan, SCAN_RESCAN, NULL);
    /* Changed file. */
    tree_write(d, "Standards/ISO-2768.pdf", "%PDF-1.4 longer now\n");
    struct scan_result r = {0};
    ASSERT_EQ(scan_path(f.scan, "Standards/ISO-2768.pdf", SCAN_MANUAL, &r), 1);
    ASSERT_EQ(r.changed, 1);
    /* New file in a known folder, unknown to the catalogue. */
    tree_write(d, "Standards/New.pdf", "x");
    memset(&r, 0, sizeof r);
    ASSERT_EQ(scan_path(f.scan, "Standards/New.pdf", SCAN_MANUAL, &r), 1);
    ASSERT_EQ(r.added, 1);
    /* New file in a new folder: the nearest known folder is read. */
    tree_write(d, "Standards/Sub/Deeper/x.pdf", "x");
    ASSERT_EQ(scan_path(f.scan, "Standards/Sub/Deeper/x.pdf", SCAN_MANUAL, NULL), 1);
    /* Removed file. */
    tree_unlink(d, "README.md");
    memset(&r, 0, sizeof r);
    ASSERT_EQ(scan_path(f.scan, "README.md", SCAN_MANUAL, &r), 0);
    ASSERT_EQ(r.removed, 1);
    /* A file swapped for an escaping symlink is dropped. */
    tree_unlink(d, "Standards/New.pdf");
    tree_symlink(d, "Standards/New.pdf", "/etc/passwd");
    ASSERT_EQ(scan_path(f.scan, "Standards/New.pdf", SCAN_MANUAL, NULL), 0);
    /* Nothing there at all. */
    ASSERT_EQ(scan_path(f.scan, "No/Such/file.pdf", SCAN_MANUAL, NULL), 0);
    ASSERT_TRUE(scan_invalidations(f.scan, SCAN_MANUAL) >= 5);
    close_fx(&f);
    tree_rm(d);
    free(d);
}
