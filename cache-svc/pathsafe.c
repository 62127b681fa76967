/* pathsafe.c -- lexical path rules and symlink-safe resolution under the root fd.
 *
 * DESIGN: resolution keeps a stack of O_PATH directory fds, one per folder below the root.
 * Each component is lstat'ed (fstatat AT_SYMLINK_NOFOLLOW) and opened with O_NOFOLLOW, so no
 * component is ever followed by the kernel: symlinks are expanded here, against the stack,
 * where ".." can be checked against the root. A component swapped between the lstat and the
 * open makes the open fail (ELOOP/ENOTDIR) or the fstat differ, and the lookup starts over
 * (twice at most), so a race can only end in a refusal, never in a file outside the root. */
#include "pathsafe.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const reason_names[PS__COUNT] = {
    [PS_OK] = "ok",
    [PS_NUL] = "nul",
    [PS_CONTROL] = "control",
    [PS_BAD_UTF8] = "bad_utf8",
    [PS_ABSOLUTE] = "absolute",
    [PS_DOTDOT] = "dotdot",
    [PS_DOT] = "dot",
    [PS_SEPARATOR] = "separator",
    [PS_BACKSLASH] = "backslash",
    [PS_ENCODED] = "encoded",
    [PS_TOO_LONG] = "too_long",
    [PS_TOO_DEEP] = "too_deep",
    [PS_HIDDEN] = "hidden",
    [PS_SYMLINK_ESCAPE] = "symlink_escape",
    [PS_SYMLINK_FOLDER] = "symlink_folder",
    [PS_SYMLINK_LOOP] = "symlink_loop",
    [PS_SPECIAL] = "special",
    [PS_NOT_FOUND] = "not_found",
    [PS_WRONG_KIND] = "wrong_kind",
    [PS_IO] = "io",
};

const char *ps_reason_name(enum ps_reason r)
{
    return r >= 0 && r < PS__COUNT ? reason_names[r] : "unknown";
}

bool ps_is_malformed(enum ps_reason r)
{
    return r >= PS_NUL && r <= PS_TOO_DEEP;
}

bool ps_is_refusal(enum ps_reason r)
{
    return r >= PS_NUL && r <= PS_SPECIAL;
}

static bool fail(struct ps_err *e, enum ps_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(struct ps_err *e, enum ps_reason r, const char *fmt, ...)
{
    if (e) {
        e->reason = r;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool ok(struct ps_err *e)
{
    if (e) {
        e->reason = PS_OK;
        e->msg[0] = '\0';
    }
    return true;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. Strict: no overlongs (so
 * 0xC0 0xAF is not a disguised '/'), no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static bool is_hex_pair(const char *p, const char *pair)
{
    return (p[0] | 0x20) == (pair[0] | 0x20) && (p[1] | 0x20) == (pair[1] | 0x20);
}

/* The malformed-input rules for one name; seg is the 1-based segment number for messages
 * (0: a lone name). */
static bool name_wellformed(const char *name, size_t len, int seg, struct ps_err *e)
{
    char where[32] = "the name";
    if (seg > 0)
        snprintf(where, sizeof where, "path segment %d", seg);
    if (len == 0)
        return fail(e, PS_SEPARATOR, "%s is empty (doubled, leading or trailing '/')", where);
    const char *nul = memchr(name, '\0', len);
    if (nul)
        return fail(e, PS_NUL, "%s holds a NUL byte at offset %zu", where, (size_t)(nul - name));
    if (len > PS_MAX_NAME)
        return fail(e, PS_TOO_LONG, "%s is %zu bytes long (at most %d)", where, len, PS_MAX_NAME);
    if (len == 1 && name[0] == '.')
        return fail(e, PS_DOT, "%s is '.': write paths without '.' segments", where);
    if (len == 2 && name[0] == '.' && name[1] == '.')
        return fail(e, PS_DOTDOT, "%s is '..': paths may not climb out of their folder", where);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7F)
            return fail(e, PS_CONTROL, "%s holds control character 0x%02x at offset %zu", where, c,
                        i);
        if (c == '\\')
            return fail(e, PS_BACKSLASH, "%s holds a '\\' at offset %zu (the separator is '/')",
                        where, i);
        if (c == '/')
            return fail(e, PS_SEPARATOR, "%s holds a '/' (a name is one path segment)", where);
        if (c == '%' && i + 2 < len &&
            (is_hex_pair(name + i + 1, "2f") || is_hex_pair(name + i + 1, "5c") ||
             is_hex_pair(name + i + 1, "2e") || is_hex_pair(name + i + 1, "00")))
            return fail(e, PS_ENCODED,
                        "%s holds a percent-encoded separator, dot or NUL ('%%%c%c') at offset "
                        "%zu; send paths unencoded",
                        where, name[i + 1], name[i + 2], i);
        size_t n = utf8_seq((const unsigned char *)name + i, len - i);
        if (!n)
            return fail(e, PS_BAD_UTF8, "%s is not valid UTF-8 at offset %zu", where, i);
        i += n;
    }
    return true;
}

bool ps_check_name(const char *name, size_t len, struct ps_err *e)
{
    if (!name_wellformed(name, len, 0, e))
        return false;
    if (name[0] == '.')
        return fail(e, PS_HIDDEN,
                    "hidden files and folders (names starting with '.') are "
                    "never served");
    return ok(e);
}

bool ps_check_path(const char *path, size_t len, struct ps_err *e)
{
    if (len == 0)
        return ok(e); /* the root */
    const char *nul = memchr(path, '\0', len);
    if (nul)
        return fail(e, PS_NUL, "the path holds a NUL byte at offset %zu", (size_t)(nul - path));
    if (len > PS_MAX_PATH)
        return fail(e, PS_TOO_LONG, "the path is %zu bytes long (at most %d)", len, PS_MAX_PATH);
    if (path[0] == '/')
        return fail(e, PS_ABSOLUTE,
                    "absolute paths are refused: give the path relative to "
                    "FILES_ROOT, without a leading '/'");
    /* Malformed rules over every segment first, so a "..", anywhere, is reported as such. */
    int seg = 0, hidden_seg = 0;
    for (size_t i = 0; i <= len;) {
        const char *s = path + i;
        const char *slash = memchr(s, '/', len - i);
        size_t n = slash ? (size_t)(slash - s) : len - i;
        if (++seg > PS_MAX_DEPTH)
            return fail(e, PS_TOO_DEEP, "the path has more than %d segments", PS_MAX_DEPTH);
        if (!name_wellformed(s, n, seg, e))
            return false;
        if (s[0] == '.' && !hidden_seg)
            hidden_seg = seg;
        i += n + 1;
        if (!slash)
            break;
    }
    if (hidden_seg)
        return fail(e, PS_HIDDEN,
                    "path segment %d is hidden (starts with '.'): hidden files and folders are "
                    "never served",
                    hidden_seg);
    return ok(e);
}

/* ---- the root -------------------------------------------------------------------------------- */

struct ps_root {
    int fd;
    char *real;
    size_t real_len;
};

struct ps_root *ps_root_open(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s", errno == ENOTDIR ? "not a directory" : strerror(errno));
        return NULL;
    }
    char *real = realpath(dir, NULL);
    if (!real) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return NULL;
    }
    struct ps_root *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->fd = fd;
    r->real = real;
    r->real_len = strlen(real);
    if (r->real_len == 1) /* "/" */
        r->real_len = 0;
    return r;
}

void ps_root_close(struct ps_root *r)
{
    if (!r)
        return;
    close(r->fd);
    free(r->real);
    free(r);
}

const char *ps_root_path(const struct ps_root *r)
{
    return r->real;
}

int ps_root_fd(const struct ps_root *r)
{
    return r->fd;
}

/* ---- resolution ------------------------------------------------------------------------------ */

/* The components still to walk: a string consumed from the front. Link targets are spliced in
 * at the front ("target/" + rest). */
struct walk {
    char buf[PS_MAX_LINKS * (PATH_MAX + 1) + PS_MAX_PATH + 2];
    size_t pos, len;
};

static bool walk_next(struct walk *w, const char **name, size_t *n, bool *last)
{
    while (w->pos < w->len && w->buf[w->pos] == '/')
        w->pos++; /* only link targets can hold "//": the request path was checked */
    if (w->pos >= w->len)
        return false;
    const char *s = w->buf + w->pos;
    const char *slash = memchr(s, '/', w->len - w->pos);
    *n = slash ? (size_t)(slash - s) : w->len - w->pos;
    *name = s;
    w->pos += *n;
    size_t p = w->pos;
    while (p < w->len && w->buf[p] == '/')
        p++;
    *last = p >= w->len;
    return true;
}

/* Replaces the consumed prefix with target: the walk continues with target, then the rest. */
static bool walk_splice(struct walk *w, const char *target, size_t tlen)
{
    size_t rest = w->len - w->pos;
    if (tlen + 1 + rest > sizeof w->buf)
        return false;
    memmove(w->buf + tlen + 1, w->buf + w->pos, rest);
    memcpy(w->buf, target, tlen);
    w->buf[tlen] = '/';
    w->pos = 0;
    w->len = tlen + 1 + rest;
    return true;
}

struct stack {
    int fd[PS_MAX_DEPTH + 1];
    int depth; /* fd[0..depth-1] are ours; below them is the root */
};

static void stack_clear(struct stack *s)
{
    while (s->depth > 0)
        close(s->fd[--s->depth]);
}

static int stack_top(const struct stack *s, const struct ps_root *r)
{
    return s->depth ? s->fd[s->depth - 1] : r->fd;
}

/* 1 = found (st/fd set), 0 = refused or failed (e set), -1 = raced: start over. */
static int resolve_once(const struct ps_root *r, const char *rel, unsigned flags, int *fd,
                        struct stat *st, struct ps_err *e)
{
    struct walk *w = malloc(sizeof *w);
    if (!w)
        abort();
    struct stack stk = {.depth = 0};
    int rc = 0, links = 0;
    bool link_as_dir = false; /* a symlink was walked through as a folder */
    bool link_at_end = false; /* the last component expanded was a symlink */
    w->len = strlen(rel);
    memcpy(w->buf, rel, w->len);
    w->pos = 0;

    if (w->len == 0) { /* the root itself */
        if (!(flags & PS_WANT_DIR)) {
            fail(e, PS_WRONG_KIND, "the root is a folder, not a file");
            goto out;
        }
        if (fstat(r->fd, st) < 0) {
            fail(e, PS_IO, "cannot stat the root: %s", strerror(errno));
            goto out;
        }
        if (flags & PS_OPEN) {
            *fd = openat(r->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (*fd < 0) {
                fail(e, PS_IO, "cannot open the root: %s", strerror(errno));
                goto out;
            }
        }
        rc = 1;
        goto out;
    }

    const char *name;
    size_t n;
    bool last;
    char cname[PS_MAX_NAME + 1];
    while (walk_next(w, &name, &n, &last)) {
        if (n == 1 && name[0] == '.')
            continue; /* only from link targets */
        if (n == 2 && name[0] == '.' && name[1] == '.') {
            if (stk.depth == 0) {
                fail(e, PS_SYMLINK_ESCAPE, "a symlink on the path points outside FILES_ROOT");
                goto out;
            }
            close(stk.fd[--stk.depth]);
            if (last) { /* a link target ending in ".." ends on a folder */
                fail(e, PS_SYMLINK_FOLDER, "symlinked folders are not followed");
                goto out;
            }
            continue;
        }
        struct ps_err ne;
        if (!ps_check_name(name, n, &ne)) {
            /* Request paths were checked already: this name came from a link target. */
            *e = ne;
            if (ne.reason != PS_HIDDEN)
                snprintf(e->msg, sizeof e->msg,
                         "a symlink on the path has a target the rules "
                         "refuse (%s)",
                         ps_reason_name(ne.reason));
            else
                snprintf(e->msg, sizeof e->msg,
                         "a symlink on the path points to a hidden file or folder");
            goto out;
        }
        memcpy(cname, name, n);
        cname[n] = '\0';
        int dir = stack_top(&stk, r);
        struct stat lst;
        if (fstatat(dir, cname, &lst, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                fail(e, PS_NOT_FOUND, "no such file or folder");
            else
                fail(e, PS_IO, "cannot stat: %s", strerror(errno));
            goto out;
        }
        if (S_ISLNK(lst.st_mode)) {
            if (++links > PS_MAX_LINKS) {
                fail(e, PS_SYMLINK_LOOP, "more than %d symlinks on the path (a loop?)",
                     PS_MAX_LINKS);
                goto out;
            }
            char target[PATH_MAX + 1];
            ssize_t tl = readlinkat(dir, cname, target, sizeof target - 1);
            if (tl < 0) {
                rc = errno == EINVAL ? -1 : 0; /* EINVAL: no longer a link */
                if (rc == 0)
                    fail(e, PS_IO, "cannot read a symlink: %s", strerror(errno));
                goto out;
            }
            if (tl == 0) {
                fail(e, PS_NOT_FOUND, "empty symlink");
                goto out;
            }
            target[tl] = '\0';
            const char *t = target;
            size_t tlen = (size_t)tl;
            if (target[0] == '/') {
                /* Absolute: only inside the root's canonical path. */
                if (r->real_len && (strncmp(target, r->real, r->real_len) != 0 ||
                                    (target[r->real_len] != '/' && target[r->real_len] != '\0'))) {
                    fail(e, PS_SYMLINK_ESCAPE, "a symlink on the path points outside FILES_ROOT");
                    goto out;
                }
                t = target + r->real_len;
                tlen -= r->real_len;
                stack_clear(&stk);
            }
            /* Used as a folder: refused once the walk shows it stays inside (an escape is
             * the more useful message). */
            if (last)
                link_at_end = true;
            else
                link_as_dir = true;
            if (!walk_splice(w, t, tlen)) {
                fail(e, PS_SYMLINK_LOOP, "symlink targets too long");
                goto out;
            }
            continue;
        }
        if (!last) {
            if (!S_ISDIR(lst.st_mode)) {
                fail(e, PS_NOT_FOUND, "no such file or folder (a path segment is a file)");
                goto out;
            }
            if (stk.depth >= PS_MAX_DEPTH) {
                fail(e, PS_TOO_DEEP, "more than %d folders deep", PS_MAX_DEPTH);
                goto out;
            }
            int nfd = openat(dir, cname, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (nfd < 0) {
                if (errno == ENOENT)
                    fail(e, PS_NOT_FOUND, "no such file or folder");
                else if (errno == ELOOP || errno == ENOTDIR)
                    rc = -1; /* swapped since the lstat */
                else
                    fail(e, PS_IO, "cannot open a folder: %s", strerror(errno));
                goto out;
            }
            stk.fd[stk.depth++] = nfd;
            continue;
        }
        /* The last component. */
        if (link_as_dir || (link_at_end && S_ISDIR(lst.st_mode))) {
            fail(e, PS_SYMLINK_FOLDER, "symlinked folders are not followed");
            goto out;
        }
        if (S_ISDIR(lst.st_mode)) {
            if (!(flags & PS_WANT_DIR)) {
                fail(e, PS_WRONG_KIND, "this is a folder, not a file");
                goto out;
            }
        } else if (S_ISREG(lst.st_mode)) {
            if (!(flags & PS_WANT_FILE)) {
                fail(e, PS_WRONG_KIND, "this is a file, not a folder");
                goto out;
            }
        } else {
            fail(e, PS_SPECIAL, "only regular files and folders are served (this is a %s)",
                 S_ISFIFO(lst.st_mode)   ? "fifo"
                 : S_ISSOCK(lst.st_mode) ? "socket"
                 : S_ISCHR(lst.st_mode)  ? "character device"
                 : S_ISBLK(lst.st_mode)  ? "block device"
                                         : "special file");
            goto out;
        }
        *st = lst;
        if (flags & PS_OPEN) {
            int of =
                S_ISDIR(lst.st_mode) ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK | O_NOCTTY;
            int nfd = openat(dir, cname, of | O_NOFOLLOW | O_CLOEXEC);
            if (nfd < 0) {
                if (errno == ELOOP || errno == ENOTDIR || errno == ENOENT)
                    rc = -1;
                else
                    fail(e, PS_IO, "cannot open: %s", strerror(errno));
                goto out;
            }
            struct stat fst;
            if (fstat(nfd, &fst) < 0 || fst.st_dev != lst.st_dev || fst.st_ino != lst.st_ino ||
                (fst.st_mode & S_IFMT) != (lst.st_mode & S_IFMT)) {
                close(nfd);
                rc = -1;
                goto out;
            }
            if (!S_ISDIR(fst.st_mode))
                fcntl(nfd, F_SETFL, fcntl(nfd, F_GETFL) & ~O_NONBLOCK);
            *st = fst;
            *fd = nfd;
        }
        rc = 1;
        goto out;
    }
    /* Ran out of components without a last one: a link target of only "." or "/" segments,
     * i.e. a folder. */
    fail(e, PS_SYMLINK_FOLDER, "symlinked folders are not followed");
out:
    stack_clear(&stk);
    free(w);
    return rc;
}

int ps_resolve(const struct ps_root *r, const char *rel, unsigned flags, int *fd, struct stat *st,
               struct ps_err *e)
{
    struct stat dummy;
    if (!st)
        st = &dummy;
    if (fd)
        *fd = -1;
    else
        flags &= ~(unsigned)PS_OPEN;
    struct ps_err local;
    if (!e)
        e = &local;
    if (!ps_check_path(rel, strlen(rel), e))
        return -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = resolve_once(r, rel, flags, fd, st, e);
        if (rc == 1) {
            ok(e);
            return 0;
        }
        if (rc == 0)
            return -1;
    }
    fail(e, PS_IO, "the path kept changing while it was opened; retry");
    return -1;
}
