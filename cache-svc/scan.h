/* scan.h -- reads FILES_ROOT and applies what it finds to the catalogue: the whole tree (the
 * first scan, the periodic rescan, a manual refresh of everything), one folder (an inotify
 * event, a manual refresh of a folder) or one entry (a manual refresh of a file, a file that
 * changed under the existence cache).
 *
 * Every name passes the path-safety rules before it enters the catalogue; what is skipped is
 * counted by reason (metric engbot_cache_scan_skipped{reason}, from the last full scan).
 * Every entry added, removed or changed is an invalidation, counted by what noticed it
 * (engbot_cache_invalidations_total{trigger}).
 *
 * Thread-safe: scans are serialised by one mutex (a full scan of 100k files takes a fraction
 * of a second); lookups are never blocked for longer than one folder's update. */
#ifndef ENGBOT_CACHE_SCAN_H
#define ENGBOT_CACHE_SCAN_H

#include "catalogue.h"
#include "pathsafe.h"

#include <stdbool.h>
#include <stdint.h>

enum scan_trigger { SCAN_INOTIFY, SCAN_RESCAN, SCAN_MANUAL, SCAN_EXISTENCE, SCAN__TRIGGERS };
const char *scan_trigger_name(enum scan_trigger t); /* "inotify", "rescan", ... */

/* Called with the scan mutex held, on the scanning thread. */
struct scan_hooks {
    /* A folder is about to be read; fd is open on it. The watcher adds its inotify watch
     * here, before the read, so nothing created meanwhile is missed. */
    void (*folder_reading)(void *ud, const char *path, int fd);
    /* A folder left the catalogue. */
    void (*folder_removed)(void *ud, const char *path);
    void *ud;
};

struct scan_result {
    unsigned added, removed, changed; /* entries */
    unsigned dropped;                 /* not added: MAX_ENTRIES reached */
    unsigned folders;                 /* folders read */
    int64_t ms;
};

struct scan;
/* cat and root are borrowed and must outlive the scanner. */
struct scan *scan_new(struct cat *cat, const struct ps_root *root);
void scan_free(struct scan *s);
void scan_set_hooks(struct scan *s, const struct scan_hooks *h);

/* Reads the whole tree. Returns 0, or -1 when the root cannot be read. */
int scan_full(struct scan *s, enum scan_trigger t, struct scan_result *r);
/* Reads the folder at path and every folder new in it (recursive: every folder below).
 * Returns 0; -1 when it is not a folder on disk (it then leaves the catalogue). */
int scan_folder(struct scan *s, const char *path, bool recursive, enum scan_trigger t,
                struct scan_result *r);
/* Brings one path up to date: a catalogued folder is read recursively, a catalogued file is
 * stat'ed (and leaves the catalogue if it vanished or is now refused), and an unknown path
 * makes its nearest catalogued folder be read. Returns 1 when path is in the catalogue
 * afterwards, 0 when it is not. */
int scan_path(struct scan *s, const char *path, enum scan_trigger t, struct scan_result *r);

bool scan_done_once(struct scan *s); /* the first full scan finished */
int64_t scan_last_full_ms(struct scan *s);
uint64_t scan_invalidations(struct scan *s, enum scan_trigger t);
/* Entries skipped by the last full scan for this reason. */
uint64_t scan_skipped(struct scan *s, enum ps_reason r);

#endif
