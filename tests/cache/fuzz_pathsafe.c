/* fuzz_pathsafe.c -- libFuzzer target for cache-svc path resolution: the lexical rules and
 * ps_resolve() against a fixed tree full of traps (symlinks out of the root, to folders, to
 * hidden files, loops, chains, a fifo). Whatever the input, a path that passes must be
 * canonical, and anything opened must really be under the root (checked through
 * /proc/self/fd), be a regular file or a folder, and not be hidden. */
#include "pathsafe.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct ps_root *root;
static char base[256], rootreal[PATH_MAX];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    ps_root_close(root);
    nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *rel, const char *text)
{
    char p[PATH_MAX + 512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void link_(const char *target, const char *rel)
{
    char p[PATH_MAX + 512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    if (symlink(target, p) < 0)
        abort();
}

static void dir(const char *rel)
{
    char p[PATH_MAX + 512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    mkdir(p, 0755);
}

static void setup(void)
{
    snprintf(base, sizeof base, "/tmp/engbot-fuzz-pathsafe-%d", (int)getpid());
    mkdir(base, 0755);
    dir("outside");
    put("outside/secret", "secret");
    dir("root");
    dir("root/dir");
    dir("root/dir/sub");
    dir("root/.hidden");
    put("root/a.pdf", "a");
    put("root/dir/b.pdf", "b");
    put("root/dir/sub/c.pdf", "c");
    put("root/.hidden/x", "x");
    link_("a.pdf", "root/in");
    link_("../a.pdf", "root/dir/up");
    link_("../../a.pdf", "root/dir/sub/up2");
    link_("/etc/passwd", "root/out");
    link_("../outside/secret", "root/outrel");
    link_("dir/../../outside/secret", "root/outdeep");
    link_("dir", "root/dirlink");
    link_("/etc", "root/dirout");
    link_("..", "root/dir/parent");
    link_("loop2", "root/loop1");
    link_("loop1", "root/loop2");
    link_("chain2", "root/chain1");
    link_("dir/chain3", "root/chain2");
    link_("../a.pdf", "root/dir/chain3");
    link_(".hidden/x", "root/hid");
    char p[PATH_MAX + 512];
    snprintf(p, sizeof p, "%s/root/fifo", base);
    mkfifo(p, 0644);
    snprintf(p, sizeof p, "%s/root", base);
    if (!realpath(p, rootreal))
        abort();
    snprintf(p, sizeof p, "%s/root/a.pdf", rootreal);
    link_(p, "root/absin");
    char err[256];
    snprintf(p, sizeof p, "%s/root", base);
    root = ps_root_open(p, err, sizeof err);
    if (!root)
        abort();
    atexit(cleanup);
}

/* A path that passed ps_check_path is canonical and stays inside. */
static void check_canonical(const char *s, size_t n)
{
    if (n == 0)
        return;
    if (memchr(s, 0, n) || s[0] == '/' || s[n - 1] == '/' || memchr(s, '\\', n))
        abort();
    for (size_t i = 0; i < n;) {
        const char *seg = s + i;
        const char *slash = memchr(seg, '/', n - i);
        size_t len = slash ? (size_t)(slash - seg) : n - i;
        if (len == 0 || seg[0] == '.')
            abort(); /* "", ".", "..", hidden */
        i += len + 1;
    }
}

static void check_opened(int fd)
{
    char link[64], real[PATH_MAX + 1];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    if (n < 0)
        abort();
    real[n] = '\0';
    size_t rl = strlen(rootreal);
    if (strncmp(real, rootreal, rl) != 0 || (real[rl] != '\0' && real[rl] != '/'))
        abort(); /* outside the root */
    if (strstr(real + rl, "/."))
        abort(); /* hidden */
    struct stat st;
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root)
        setup();
    struct ps_err e;
    if (ps_check_path((const char *)data, size, &e))
        check_canonical((const char *)data, size);
    else if (e.reason == PS_OK || !e.msg[0])
        abort();
    ps_check_name((const char *)data, size, &e);
    if (size > 2048)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    static const unsigned flags[] = {PS_WANT_FILE | PS_OPEN, PS_WANT_DIR | PS_OPEN, PS_WANT_ANY};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int fd = -1;
        struct stat st;
        int rc = ps_resolve(root, s, flags[i], flags[i] & PS_OPEN ? &fd : NULL, &st, &e);
        if (rc == 0) {
            if (!(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
                abort();
            if (fd >= 0) {
                check_opened(fd);
                close(fd);
            } else if (flags[i] & PS_OPEN) {
                abort();
            }
        } else if (fd != -1 || !e.msg[0] || e.reason == PS_OK) {
            abort();
        }
    }
    free(s);
    return 0;
}
