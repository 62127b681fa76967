/* existence.h -- the existence cache (the seed's fileExistenceCache): before a resolved entry
 * is handed out, the disk is asked whether it is still there, at most once per
 * FILE_CACHE_DURATION (default 5 min) per entry. A file that vanished is reported, never
 * served, and leaves the catalogue; one the path-safety rules now refuse (a symlink swapped
 * in) leaves it too. The stamp of each entry lives in the catalogue (cat_checked); the clock
 * is clock_mono_ms(), so tests move it with clock_advance_ms(). Thread-safe. */
#ifndef ENGBOT_CACHE_EXISTENCE_H
#define ENGBOT_CACHE_EXISTENCE_H

#include "cachestat.h"
#include "catalogue.h"
#include "pathsafe.h"
#include "scan.h"

#include <stdbool.h>
#include <stdint.h>

struct exist;

/* cat, scan and root are borrowed. */
struct exist *exist_new(struct cat *cat, struct scan *scan, const struct ps_root *root,
                        int64_t duration_ms);
void exist_free(struct exist *x);

enum exist_rc {
    EXIST_OK,      /* there (the catalogue entry is up to date) */
    EXIST_GONE,    /* vanished: removed from the catalogue */
    EXIST_REFUSED, /* now refused by the rules (e says why): removed from the catalogue */
    EXIST_IO,      /* the disk could not answer (e says why): entry kept */
};

/* Checks the catalogue entry at path (a hit when checked within the duration). */
enum exist_rc exist_verify(struct exist *x, const char *path, struct ps_err *e);
/* True when exist_verify would answer from the cache (the entry was checked within the
 * duration), i.e. without touching the disk; counts nothing. */
bool exist_fresh(struct exist *x, const char *path);
/* Records that the entry was just seen on disk (a read opened it). */
void exist_mark(struct exist *x, const char *path);

const struct cachestat *exist_stats(const struct exist *x);

#endif
