/* tree.h -- helpers for the cache tests: a temporary tree under /tmp with files, folders,
 * symlinks and special files, removed at the end of the test. */
#ifndef ENGBOT_TEST_CACHE_TREE_H
#define ENGBOT_TEST_CACHE_TREE_H

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A fresh directory "/tmp/engbot-cache-<tag>-XXXXXX"; the path is static per call site. */
static inline char *tree_tmpdir(const char *tag)
{
    char *p = malloc(256);
    snprintf(p, 256, "/tmp/engbot-cache-%s-XXXXXX", tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static inline void tree_path(char *out, size_t cap, const char *root, const char *rel)
{
    snprintf(out, cap, "%s/%s", root, rel);
}

/* mkdir -p root/rel */
static inline void tree_mkdir(const char *root, const char *rel)
{
    char p[4096];
    tree_path(p, sizeof p, root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    mkdir(p, 0755);
}

/* Writes text to root/rel (creating folders). */
static inline void tree_write(const char *root, const char *rel, const char *text)
{
    char p[4096];
    tree_path(p, sizeof p, root, rel);
    char *slash = strrchr(p, '/');
    if (slash && slash > p + strlen(root)) {
        *slash = '\0';
        tree_mkdir(root, p + strlen(root) + 1);
        *slash = '/';
    }
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        abort();
    }
    fputs(text, f);
    fclose(f);
}

static inline void tree_symlink(const char *root, const char *rel, const char *target)
{
    char p[4096];
    tree_path(p, sizeof p, root, rel);
    unlink(p);
    if (symlink(target, p) < 0) {
        perror(p);
        abort();
    }
}

static inline void tree_unlink(const char *root, const char *rel)
{
    char p[4096];
    tree_path(p, sizeof p, root, rel);
    unlink(p);
}

static inline void tree_mkfifo(const char *root, const char *rel)
{
    char p[4096];
    tree_path(p, sizeof p, root, rel);
    mkfifo(p, 0644);
}

/* A bound unix socket file (the fd is closed; the file stays). */
static inline void tree_socket(const char *root, const char *rel)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    tree_path(a.sun_path, sizeof a.sun_path, root, rel);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("socket");
        abort();
    }
    close(fd);
}

/* Sets root/rel's mtime (seconds since the epoch). */
static inline void tree_mtime(const char *root, const char *rel, long sec)
{
    char p[4096];
    tree_path(p, sizeof p, root, rel);
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
}

static inline int tree_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void tree_rm(const char *root)
{
    nftw(root, tree_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
