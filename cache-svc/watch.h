/* watch.h -- keeps the catalogue following the disk: inotify on every folder of the tree
 * (folders created later included) and a periodic full rescan, the fallback for volumes that
 * deliver no inotify events (network volumes in Kubernetes) and the answer to an inotify queue
 * overflow.
 *
 * Thread: one, "watch", started by watch_run(): it waits on the inotify fd, coalesces a burst
 * of events (WATCH_DEBOUNCE_MS) into the folders and files they touch, and re-reads those
 * through the scanner; every RESCAN_INTERVAL it rescans everything. Other threads only reach
 * it through watch_stop() (an eventfd). The scanner's hooks add a watch before a folder is
 * read and remove it when the folder leaves the catalogue, whichever thread scans. */
#ifndef ENGBOT_CACHE_WATCH_H
#define ENGBOT_CACHE_WATCH_H

#include "pathsafe.h"
#include "scan.h"

#include <stdbool.h>
#include <stdint.h>

#define WATCH_DEBOUNCE_MS  20   /* quiet time that ends a burst of events */
#define WATCH_MAX_BURST_MS 200  /* a burst is applied after this long even if events go on */
#define WATCH_MAX_DIRTY    4096 /* more distinct folders/files in one burst: full rescan */

struct watch_opts {
    bool inotify;      /* false: periodic rescans only */
    int64_t rescan_ms; /* 0 = no periodic rescan */
};

struct watch;
/* Sets the scanner's hooks (so the first scan adds the watches) but starts no thread. scan and
 * root are borrowed. */
struct watch *watch_new(struct scan *scan, const struct ps_root *root, const struct watch_opts *o);
/* Starts the thread. */
void watch_run(struct watch *w);
/* Stops the thread (if running) and frees w; unhooks the scanner. */
void watch_free(struct watch *w);
/* True while inotify covers the whole tree (false when disabled, unavailable or out of
 * watches: then only rescans notice changes). */
bool watch_inotify_active(const struct watch *w);
/* Folders watched. */
size_t watch_count(const struct watch *w);

#endif
