/* pathsafe.h -- the rules that keep every listing, lookup and read inside FILES_ROOT.
 *
 * Two layers, both applied on every request:
 *  1. ps_check_path()/ps_check_name(): lexical rules on the text a client sent (or a name read
 *     from a folder). A relative path is segments of ps_check_name() joined by single '/'.
 *  2. ps_resolve(): walks the path under a root directory fd, one component at a time with
 *     O_NOFOLLOW, so what is opened is what was checked: a folder swapped for a symlink after
 *     it was indexed is refused at open time, not only at scan time.
 *
 * Symlink policy (docs/cache-svc.md, "Security"): a symlink to a file is followed when its
 * target, resolved component by component, stays inside the root, is not hidden and is a
 * regular file; symlinked folders are never followed (no cycles, no duplicate trees); at most
 * PS_MAX_LINKS links are followed per lookup.
 *
 * Not thread-affine: a ps_root is read-only after ps_root_open and may be shared by threads. */
#ifndef ENGBOT_CACHE_PATHSAFE_H
#define ENGBOT_CACHE_PATHSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#define PS_MAX_NAME 255 /* bytes in one name (NAME_MAX on Linux) */
#define PS_MAX_PATH                                                                                \
    1024                /* bytes in a relative path: more than any real tree, far below PATH_MAX   \
                         */
#define PS_MAX_DEPTH 32 /* folders deep */
#define PS_MAX_LINKS 8  /* symlinks followed in one lookup */

/* Why a path was refused (or not found). The first group is malformed input
 * (INVALID_ARGUMENT at the edge), the second is policy (PERMISSION_DENIED); the rest are not
 * refusals. ps_reason_name() gives the metric label. */
enum ps_reason {
    PS_OK = 0,
    /* malformed */
    PS_NUL,       /* a NUL byte */
    PS_CONTROL,   /* a control character (U+0001..U+001F, U+007F) */
    PS_BAD_UTF8,  /* not valid UTF-8 (overlong encodings of '/' or '.' included) */
    PS_ABSOLUTE,  /* starts with '/' */
    PS_DOTDOT,    /* a ".." segment */
    PS_DOT,       /* a "." segment */
    PS_SEPARATOR, /* an empty segment: doubled, leading or trailing '/' */
    PS_BACKSLASH, /* a '\' (a separator elsewhere; never part of a served name) */
    PS_ENCODED,   /* a percent-encoded separator, dot or NUL: %2f %5c %2e %00 */
    PS_TOO_LONG,  /* a name over PS_MAX_NAME or a path over PS_MAX_PATH bytes */
    PS_TOO_DEEP,  /* more than PS_MAX_DEPTH segments */
    /* policy */
    PS_HIDDEN,         /* a segment starting with '.' */
    PS_SYMLINK_ESCAPE, /* a symlink whose target leaves the root */
    PS_SYMLINK_FOLDER, /* a symlinked folder (never followed) */
    PS_SYMLINK_LOOP,   /* more than PS_MAX_LINKS symlinks */
    PS_SPECIAL,        /* a fifo, socket or device */
    /* not refusals */
    PS_NOT_FOUND,  /* nothing there */
    PS_WRONG_KIND, /* a folder where a file was wanted, or the reverse */
    PS_IO,         /* any other error from the file system */
    PS__COUNT
};

struct ps_err {
    enum ps_reason reason;
    char msg[200]; /* for a grpcurl user: what was wrong and where */
};

const char *ps_reason_name(enum ps_reason r); /* "dotdot", "symlink_escape", ... */
bool ps_is_malformed(enum ps_reason r);       /* PS_NUL .. PS_TOO_DEEP */
bool ps_is_refusal(enum ps_reason r);         /* PS_NUL .. PS_SPECIAL */

/* One name (a path segment, or a name read from a folder): len bytes at name (NULs included).
 * True when it may be served; otherwise e says why. */
bool ps_check_name(const char *name, size_t len, struct ps_err *e);
/* A relative path: "" is the root, otherwise names joined by single '/'. */
bool ps_check_path(const char *path, size_t len, struct ps_err *e);

struct ps_root;
/* Opens dir as the root. NULL with a message in err when it is not a readable directory. */
struct ps_root *ps_root_open(const char *dir, char *err, size_t errlen);
void ps_root_close(struct ps_root *r);
const char *ps_root_path(const struct ps_root *r); /* canonical (realpath) */
int ps_root_fd(const struct ps_root *r);

enum {
    PS_WANT_FILE = 1u << 0,
    PS_WANT_DIR = 1u << 1,
    PS_WANT_ANY = PS_WANT_FILE | PS_WANT_DIR,
    PS_OPEN = 1u << 2, /* return an open fd: O_RDONLY for a file, O_DIRECTORY for a folder */
};

/* Resolves rel (which must pass ps_check_path) under the root. On success returns 0, fills st
 * with what was found (for a file symlink: its target) and, with PS_OPEN, *fd with an fd the
 * caller closes (fstat(*fd) matches st). On failure returns -1 with e set; *fd stays -1. */
int ps_resolve(const struct ps_root *r, const char *rel, unsigned flags, int *fd, struct stat *st,
               struct ps_err *e);

#endif
