/* dedupe.h -- the update_id dedupe window: a repeated update (Telegram re-delivers after a
 * timeout, a crash before the offset was confirmed, or a webhook retry) is handled once.
 *
 * The window holds the last `window` finished update ids plus the ones in progress. Finished
 * ids are appended to DATA_DIR/updates.log (durable within ~1 s, group-committed) and the
 * window is compacted into DATA_DIR/updates.snap, so it survives a restart. Without a data dir
 * it lives in memory only. Thread-safe. */
#ifndef ENGBOT_GW_DEDUPE_H
#define ENGBOT_GW_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dedupe_res {
    DEDUPE_NEW,         /* not seen: now in progress; call dedupe_finish */
    DEDUPE_DONE,        /* handled before */
    DEDUPE_IN_PROGRESS, /* being handled right now (a concurrent re-delivery) */
};

struct dedupe;
/* dir may be NULL (memory only). Returns NULL with err when the directory is unusable. */
struct dedupe *dedupe_open(const char *dir, size_t window, char *err, size_t errlen);
void dedupe_close(struct dedupe *d);
enum dedupe_res dedupe_begin(struct dedupe *d, int64_t update_id);
/* handled: remember it as done; else forget it so a re-delivery is handled again. */
void dedupe_finish(struct dedupe *d, int64_t update_id, bool handled);
/* Ids remembered (done) -- for tests and metrics. */
size_t dedupe_size(struct dedupe *d);
/* The highest finished id seen (0 when none), for logs. */
int64_t dedupe_max(struct dedupe *d);

#endif
