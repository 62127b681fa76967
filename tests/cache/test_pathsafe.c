/* test_pathsafe.c -- every path-safety rule of cache-svc/pathsafe.c, each with its own
 * assertion: the lexical rules on request paths and names, and resolution under a real root
 * with symlinks (inside, outside, folders, loops, hidden targets), special files and a file
 * swapped for a symlink after it was first resolved. */
#include "pathsafe.h"
#include "test.h"
#include "tree.h"

#include <errno.h>
#include <sys/sysmacros.h>

static enum ps_reason path_reason(const char *p, size_t len)
{
    struct ps_err e;
    bool ok = ps_check_path(p, len, &e);
    if (ok && e.reason != PS_OK)
        return PS__COUNT; /* inconsistent */
    return e.reason;
}

#define PR(s) path_reason((s), sizeof(s) - 1) /* literal, NULs included */

TEST(lexical_accepts_ordinary_paths)
{
    ASSERT_EQ(PR(""), PS_OK); /* the root */
    ASSERT_EQ(PR("a.pdf"), PS_OK);
    ASSERT_EQ(PR("Mechanical/Drawings/Flange-F300 Rev 2.dxf"), PS_OK);
    ASSERT_EQ(PR("Zeichnungen/Ma\xc3\x9f-Tabelle.pdf"), PS_OK); /* UTF-8 */
    ASSERT_EQ(PR("100% done.csv"), PS_OK);                      /* a lone '%' */
    ASSERT_EQ(PR("a%20b.pdf"), PS_OK);                          /* not a separator */
    ASSERT_EQ(PR("a..b/c...d"), PS_OK);                         /* dots inside names */
}

TEST(lexical_nul_byte)
{
    ASSERT_EQ(PR("a.pdf\0../../etc/passwd"), PS_NUL);
    ASSERT_EQ(PR("\0"), PS_NUL);
    struct ps_err e;
    ASSERT_FALSE(ps_check_name("a\0b", 3, &e));
    ASSERT_EQ(e.reason, PS_NUL);
}

TEST(lexical_absolute)
{
    ASSERT_EQ(PR("/etc/passwd"), PS_ABSOLUTE);
    ASSERT_EQ(PR("/"), PS_ABSOLUTE);
}

TEST(lexical_dotdot)
{
    ASSERT_EQ(PR(".."), PS_DOTDOT);
    ASSERT_EQ(PR("../etc/passwd"), PS_DOTDOT);
    ASSERT_EQ(PR("a/../../b"), PS_DOTDOT);
    ASSERT_EQ(PR("a/.."), PS_DOTDOT);
    /* A ".." is reported as such even after a hidden segment. */
    ASSERT_EQ(PR(".git/../../x"), PS_DOTDOT);
}

TEST(lexical_dot)
{
    ASSERT_EQ(PR("."), PS_DOT);
    ASSERT_EQ(PR("./a.pdf"), PS_DOT);
    ASSERT_EQ(PR("a/./b"), PS_DOT);
}

TEST(lexical_doubled_and_trailing_separators)
{
    ASSERT_EQ(PR("a//b"), PS_SEPARATOR);
    ASSERT_EQ(PR("a/"), PS_SEPARATOR);
    ASSERT_EQ(PR("a/b//"), PS_SEPARATOR);
}

TEST(lexical_backslash)
{
    ASSERT_EQ(PR("a\\b.pdf"), PS_BACKSLASH);
    ASSERT_EQ(PR("..\\..\\etc\\passwd"), PS_BACKSLASH);
}

TEST(lexical_encoded_separators)
{
    ASSERT_EQ(PR("a%2fb"), PS_ENCODED);
    ASSERT_EQ(PR("a%2Fb"), PS_ENCODED);
    ASSERT_EQ(PR("%2e%2e/etc/passwd"), PS_ENCODED);
    ASSERT_EQ(PR("a%5cb"), PS_ENCODED);
    ASSERT_EQ(PR("a%00b"), PS_ENCODED);
    ASSERT_EQ(PR("x%2E"), PS_ENCODED);
}

TEST(lexical_control_characters)
{
    ASSERT_EQ(PR("a\nb"), PS_CONTROL);
    ASSERT_EQ(PR("a\rb"), PS_CONTROL);
    ASSERT_EQ(PR("a\x7f"), PS_CONTROL);
    ASSERT_EQ(PR("\x1b[31mred"), PS_CONTROL);
}

TEST(lexical_invalid_utf8)
{
    ASSERT_EQ(PR("a\xc0\xaf"
                 "b"),
              PS_BAD_UTF8);                           /* overlong '/' */
    ASSERT_EQ(PR("\xc0\xae\xc0\xae/x"), PS_BAD_UTF8); /* overlong ".." */
    ASSERT_EQ(PR("a\xff"), PS_BAD_UTF8);
    ASSERT_EQ(PR("\xed\xa0\x80"), PS_BAD_UTF8);     /* a surrogate */
    ASSERT_EQ(PR("\xe2\x82"), PS_BAD_UTF8);         /* truncated */
    ASSERT_EQ(PR("\xf4\x90\x80\x80"), PS_BAD_UTF8); /* above U+10FFFF */
}

TEST(lexical_too_long)
{
    char name[300];
    memset(name, 'n', sizeof name);
    struct ps_err e;
    ASSERT_TRUE(ps_check_path(name, PS_MAX_NAME, &e));
    ASSERT_FALSE(ps_check_path(name, PS_MAX_NAME + 1, &e));
    ASSERT_EQ(e.reason, PS_TOO_LONG);
    char path[PS_MAX_PATH + 64];
    for (size_t i = 0; i < sizeof path; i++)
        path[i] = i % 100 == 99 ? '/' : 'p';
    ASSERT_FALSE(ps_check_path(path, PS_MAX_PATH + 1, &e));
    ASSERT_EQ(e.reason, PS_TOO_LONG);
}

TEST(lexical_too_deep)
{
    char path[256] = "";
    for (int i = 0; i < PS_MAX_DEPTH; i++)
        strcat(path, i ? "/d" : "d");
    struct ps_err e;
    ASSERT_TRUE(ps_check_path(path, strlen(path), &e));
    strcat(path, "/d");
    ASSERT_FALSE(ps_check_path(path, strlen(path), &e));
    ASSERT_EQ(e.reason, PS_TOO_DEEP);
}

TEST(lexical_hidden)
{
    ASSERT_EQ(PR(".env"), PS_HIDDEN);
    ASSERT_EQ(PR(".git/config"), PS_HIDDEN);
    ASSERT_EQ(PR("Mechanical/.secret/plan.pdf"), PS_HIDDEN);
    ASSERT_EQ(PR("a/.b"), PS_HIDDEN);
}

TEST(reason_classes)
{
    ASSERT_TRUE(ps_is_malformed(PS_DOTDOT));
    ASSERT_TRUE(ps_is_malformed(PS_NUL));
    ASSERT_FALSE(ps_is_malformed(PS_HIDDEN));
    ASSERT_TRUE(ps_is_refusal(PS_HIDDEN));
    ASSERT_TRUE(ps_is_refusal(PS_SYMLINK_ESCAPE));
    ASSERT_TRUE(ps_is_refusal(PS_SPECIAL));
    ASSERT_FALSE(ps_is_refusal(PS_NOT_FOUND));
    ASSERT_STREQ(ps_reason_name(PS_SYMLINK_ESCAPE), "symlink_escape");
    ASSERT_STREQ(ps_reason_name(PS_DOTDOT), "dotdot");
}

TEST(name_rules)
{
    struct ps_err e;
    ASSERT_TRUE(ps_check_name("Bearing-6204.pdf", 16, &e));
    ASSERT_FALSE(ps_check_name("a/b", 3, &e));
    ASSERT_EQ(e.reason, PS_SEPARATOR);
    ASSERT_FALSE(ps_check_name(".env", 4, &e));
    ASSERT_EQ(e.reason, PS_HIDDEN);
    ASSERT_FALSE(ps_check_name("", 0, &e));
    ASSERT_EQ(e.reason, PS_SEPARATOR);
}

/* ---- resolution on a real tree -------------------------------------------------------------- */

static char *outside, *rootdir;
static struct ps_root *root;

static void setup(void)
{
    outside = tree_tmpdir("outside");
    tree_write(outside, "secret.txt", "outside the root\n");
    rootdir = malloc(4200);
    snprintf(rootdir, 4200, "%s/root", outside);
    tree_mkdir(outside, "root");
    tree_write(rootdir, "a.pdf", "AAAA");
    tree_write(rootdir, "dir/b.pdf", "BB");
    tree_write(rootdir, ".hidden/x.pdf", "x");
    tree_write(rootdir, ".env", "TOKEN=1");
    tree_symlink(rootdir, "link_in", "a.pdf");
    tree_symlink(rootdir, "link_in_rel", "dir/b.pdf");
    tree_symlink(rootdir, "dir/link_up", "../a.pdf");
    tree_symlink(rootdir, "link_out", "/etc/passwd");
    tree_symlink(rootdir, "link_out_rel", "../secret.txt");
    tree_symlink(rootdir, "link_out_deep", "dir/../../secret.txt");
    char abs_in[4300];
    char *real = realpath(rootdir, NULL);
    snprintf(abs_in, sizeof abs_in, "%s/a.pdf", real);
    tree_symlink(rootdir, "link_abs_in", abs_in);
    free(real);
    tree_symlink(rootdir, "link_dir_in", "dir");
    tree_symlink(rootdir, "link_dir_out", "/etc");
    tree_symlink(rootdir, "link_root", ".");
    tree_symlink(rootdir, "loop1", "loop2");
    tree_symlink(rootdir, "loop2", "loop1");
    tree_symlink(rootdir, "link_hidden", ".hidden/x.pdf");
    tree_symlink(rootdir, "link_dangling", "nothing.pdf");
    tree_mkfifo(rootdir, "fifo");
    tree_socket(rootdir, "sock");
    tree_symlink(rootdir, "link_fifo", "fifo");
    char err[256];
    root = ps_root_open(rootdir, err, sizeof err);
}

static void teardown(void)
{
    ps_root_close(root);
    tree_rm(outside);
    free(rootdir);
    free(outside);
}

static enum ps_reason res(const char *rel, unsigned flags)
{
    struct ps_err e;
    struct stat st;
    int fd = -1;
    int rc = ps_resolve(root, rel, flags | PS_OPEN, &fd, &st, &e);
    if (rc == 0) {
        struct stat fst;
        if (fd < 0 || fstat(fd, &fst) < 0 || fst.st_ino != st.st_ino)
            return PS__COUNT;
        close(fd);
        return PS_OK;
    }
    if (fd != -1 || e.msg[0] == '\0')
        return PS__COUNT; /* a failure always has a message and no fd */
    return e.reason;
}

TEST(resolve_plain_files_and_folders)
{
    setup();
    ASSERT_TRUE(root != NULL);
    ASSERT_EQ(res("a.pdf", PS_WANT_FILE), PS_OK);
    ASSERT_EQ(res("dir/b.pdf", PS_WANT_FILE), PS_OK);
    ASSERT_EQ(res("dir", PS_WANT_DIR), PS_OK);
    ASSERT_EQ(res("", PS_WANT_DIR), PS_OK);
    ASSERT_EQ(res("nothing.pdf", PS_WANT_ANY), PS_NOT_FOUND);
    ASSERT_EQ(res("a.pdf/x", PS_WANT_ANY), PS_NOT_FOUND);
    ASSERT_EQ(res("dir", PS_WANT_FILE), PS_WRONG_KIND);
    ASSERT_EQ(res("a.pdf", PS_WANT_DIR), PS_WRONG_KIND);
    /* The fd reads the file's bytes. */
    int fd;
    struct stat st;
    struct ps_err e;
    ASSERT_EQ(ps_resolve(root, "a.pdf", PS_WANT_FILE | PS_OPEN, &fd, &st, &e), 0);
    char buf[8] = {0};
    ASSERT_EQ(read(fd, buf, sizeof buf), 4);
    close(fd);
    ASSERT_STREQ(buf, "AAAA");
    teardown();
}

TEST(resolve_file_symlinks_inside_the_root)
{
    setup();
    ASSERT_EQ(res("link_in", PS_WANT_FILE), PS_OK);
    ASSERT_EQ(res("link_in_rel", PS_WANT_FILE), PS_OK);
    ASSERT_EQ(res("dir/link_up", PS_WANT_FILE), PS_OK);
    ASSERT_EQ(res("link_abs_in", PS_WANT_FILE), PS_OK);
    struct stat st;
    struct ps_err e;
    ASSERT_EQ(ps_resolve(root, "link_in", PS_WANT_FILE, NULL, &st, &e), 0);
    ASSERT_EQ(st.st_size, 4); /* the target's stat */
    teardown();
}

TEST(resolve_symlink_file_escaping)
{
    setup();
    ASSERT_EQ(res("link_out", PS_WANT_FILE), PS_SYMLINK_ESCAPE);
    ASSERT_EQ(res("link_out_rel", PS_WANT_FILE), PS_SYMLINK_ESCAPE);
    ASSERT_EQ(res("link_out_deep", PS_WANT_FILE), PS_SYMLINK_ESCAPE);
    teardown();
}

TEST(resolve_symlink_folder_escaping)
{
    setup();
    ASSERT_EQ(res("link_dir_out", PS_WANT_ANY), PS_SYMLINK_ESCAPE);
    ASSERT_EQ(res("link_dir_out/passwd", PS_WANT_FILE), PS_SYMLINK_ESCAPE);
    teardown();
}

TEST(resolve_symlink_folder_inside_is_not_followed)
{
    setup();
    ASSERT_EQ(res("link_dir_in", PS_WANT_ANY), PS_SYMLINK_FOLDER);
    ASSERT_EQ(res("link_dir_in/b.pdf", PS_WANT_FILE), PS_SYMLINK_FOLDER);
    ASSERT_EQ(res("link_root", PS_WANT_ANY), PS_SYMLINK_FOLDER);
    ASSERT_EQ(res("link_root/a.pdf", PS_WANT_FILE), PS_SYMLINK_FOLDER);
    teardown();
}

TEST(resolve_symlink_loop)
{
    setup();
    ASSERT_EQ(res("loop1", PS_WANT_ANY), PS_SYMLINK_LOOP);
    teardown();
}

TEST(resolve_symlink_to_hidden)
{
    setup();
    ASSERT_EQ(res("link_hidden", PS_WANT_FILE), PS_HIDDEN);
    ASSERT_EQ(res(".env", PS_WANT_FILE), PS_HIDDEN);
    ASSERT_EQ(res(".hidden/x.pdf", PS_WANT_FILE), PS_HIDDEN);
    teardown();
}

TEST(resolve_dangling_symlink)
{
    setup();
    ASSERT_EQ(res("link_dangling", PS_WANT_FILE), PS_NOT_FOUND);
    teardown();
}

TEST(resolve_special_files)
{
    setup();
    ASSERT_EQ(res("fifo", PS_WANT_ANY), PS_SPECIAL); /* and it did not block opening it */
    ASSERT_EQ(res("sock", PS_WANT_ANY), PS_SPECIAL);
    ASSERT_EQ(res("link_fifo", PS_WANT_FILE), PS_SPECIAL);
    char p[4300];
    snprintf(p, sizeof p, "%s/null", rootdir);
    if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0)
        ASSERT_EQ(res("null", PS_WANT_ANY), PS_SPECIAL);
    else
        printf("    (no CAP_MKNOD: device case covered by fifo and socket only)\n");
    teardown();
}

TEST(resolve_file_swapped_for_symlink_after_first_open)
{
    setup();
    ASSERT_EQ(res("a.pdf", PS_WANT_FILE), PS_OK);
    tree_unlink(rootdir, "a.pdf");
    tree_symlink(rootdir, "a.pdf", "/etc/passwd");
    ASSERT_EQ(res("a.pdf", PS_WANT_FILE), PS_SYMLINK_ESCAPE);
    teardown();
}

TEST(resolve_folder_swapped_for_symlink_after_first_open)
{
    setup();
    ASSERT_EQ(res("dir/b.pdf", PS_WANT_FILE), PS_OK);
    char p[4300], q[4300];
    snprintf(p, sizeof p, "%s/dir", rootdir);
    snprintf(q, sizeof q, "%s/dir.moved", outside);
    ASSERT_EQ(rename(p, q), 0);
    tree_symlink(rootdir, "dir", q); /* same content, now outside the root */
    ASSERT_EQ(res("dir/b.pdf", PS_WANT_FILE), PS_SYMLINK_ESCAPE);
    teardown();
}

TEST(resolve_checks_the_request_path_too)
{
    setup();
    ASSERT_EQ(res("../secret.txt", PS_WANT_FILE), PS_DOTDOT);
    ASSERT_EQ(res("/etc/passwd", PS_WANT_FILE), PS_ABSOLUTE);
    teardown();
}

TEST(root_open_failures)
{
    char err[256];
    ASSERT_TRUE(ps_root_open("/nonexistent/engbot-root", err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "No such file");
    ASSERT_TRUE(ps_root_open("/etc/hostname", err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "not a directory");
}
