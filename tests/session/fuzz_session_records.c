/* fuzz_session_records.c -- libFuzzer target for session-svc's file readers: the input is read
 * as a change log and as a snapshot (framing and checksums in common/durable.c, records decoded
 * and applied by session-svc/persist.c), and its bytes are also applied as one bare log record.
 * Nothing may crash, leak or read out of bounds, whatever the bytes. The seed corpus
 * (corpus/records/) holds real files written by session-svc. */
#include "clock.h"
#include "persist.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clock_set_fake(true, 1700000000000LL);
    struct store_opts o = {.inactivity_ms = 3600000, .max_sessions = 1000, .max_state_keys = 32,
                           .max_state_bytes = 4096};
    struct store *st = store_new(&o);
    int fd = memfd_create("fuzz-records", 0);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    bool damaged;
    uint64_t gen;
    persist_read_log(path, st, &damaged);
    persist_read_snapshot(path, st, &gen, &damaged);
    persist_apply_log_record(st, data, size);
    store_load_done(st, clock_now_ms());
    close(fd);
    store_free(st);
    return 0;
}
