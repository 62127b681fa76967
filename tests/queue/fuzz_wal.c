/* fuzz_wal.c -- libFuzzer target for WAL and snapshot replay (queue-svc/wal.c, the restore
 * functions of queue-svc/queue_restore.c): any bytes, read as a log and as a snapshot into a
 * fresh queue, must leave a queue whose invariants hold (queue_check) and that still works
 * (lease, ack, expire), with no crash, leak or undefined behaviour.
 *
 * Two shapes of input, so that mutations reach both layers:
 *  - anything else: the bytes are the file (framing, header, checksums, torn tails);
 *  - first byte 'R': the rest is a list of records (u16 length, little-endian, then the
 *    payload) that the target frames with correct checksums into a log file, so that the
 *    record decoder and every replay path see well-framed but arbitrary records.
 * The file is a memfd read through /proc/self/fd, so the real file reader (common/durable.c's
 * dread_file) is what is fuzzed. Seeds: tests/queue/corpus/wal (logs and a snapshot written by
 * test_wal with QUEUE_WRITE_SEEDS=<dir>, and the same records in the 'R' shape). */
#include "durable.h"
#include "queue.h"
#include "wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct queue_opts opts(void)
{
    static const struct rate chat = {1, 1000, 3}, group = {20, 60000, 1}, global = {30, 1000, 10};
    return (struct queue_opts){
        .max_jobs = 1000,
        .max_bytes = 1 << 20,
        .lane_max = 100,
        .default_ttl_ms = 30000,
        .max_ttl_ms = 86400000,
        .dedupe_window_ms = 600000,
        .dedupe_max = 1000,
        .max_attempts = 3,
        .lease_ms = 60000,
        .max_lease_ms = 600000,
        .max_payload = 4096,
        .dead_max = 50,
        .global = global,
        .chat = chat,
        .group = group,
        .backoff_base_ms = 1000,
        .backoff_max_ms = 60000,
        .seed = 1,
    };
}

static void check(struct queue *q, const char *when)
{
    const char *bad = queue_check(q);
    if (bad) {
        fprintf(stderr, "queue_check %s: %s\n", when, bad);
        abort();
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* 'R' inputs: frames each record as common/durable.c does. Returns 0 or -1. */
static int write_framed(int fd, const uint8_t *data, size_t size)
{
    uint8_t h[16];
    memcpy(h, "ENGBOTRF", 8);
    put32(h + 8, WAL_FORMAT_VERSION);
    put32(h + 12, WAL_KIND_LOG);
    if (write(fd, h, sizeof h) != (ssize_t)sizeof h)
        return -1;
    for (size_t i = 1; i + 2 <= size;) {
        size_t len = (size_t)data[i] | (size_t)data[i + 1] << 8;
        i += 2;
        if (len > size - i)
            len = size - i;
        if (len == 0)
            continue;
        uint8_t fh[8], lb[4];
        put32(lb, (uint32_t)len);
        put32(fh, (uint32_t)len);
        put32(fh + 4, crc32c(crc32c(0, lb, 4), data + i, len));
        if (write(fd, fh, 8) != 8 || write(fd, data + i, len) != (ssize_t)len)
            return -1;
        i += len;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("wal-fuzz", 0);
    if (fd < 0)
        return 0;
    int rc = size && data[0] == 'R'                           ? write_framed(fd, data, size)
             : size && write(fd, data, size) != (ssize_t)size ? -1
                                                              : 0;
    if (rc < 0) {
        close(fd);
        return 0;
    }
    char path[64], why[320];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct queue_opts o = opts();
    struct queue *q = queue_new(&o, NULL, NULL);
    struct wal_replay_stats st = {0};
    bool damaged;
    uint64_t first_gen = 0;
    queue_restore_begin(q);
    wal_replay_file(path, WAL_KIND_LOG, q, 0, &st, &damaged, NULL, why, sizeof why);
    wal_replay_file(path, WAL_KIND_SNAP, q, 0, &st, &damaged, &first_gen, why, sizeof why);
    const int64_t now = 1700000000000LL;
    queue_restore_done(q, st.next_id, st.last_seq, now);
    check(q, "after replay");

    /* The restored queue must work: lease everything ready, settle it, let time pass. */
    for (int round = 0; round < 3; round++) {
        int64_t t = now + round * 3600000LL;
        queue_tick(q, t);
        check(q, "after tick");
        struct job *jobs[64];
        size_t n = queue_take(q, t, 64, 1000, 1 << 20, jobs);
        for (size_t i = 0; i < n; i++) {
            switch ((jobs[i]->id + (uint64_t)round) % 3) {
            case 0:
                queue_ack(q, jobs[i]->id, jobs[i]->lease_token, t);
                break;
            case 1: {
                struct retry_spec rs = {
                    .id = jobs[i]->id, .token = jobs[i]->lease_token, .retry_after_ms = 500};
                struct retry_result rr;
                queue_retry(q, &rs, t, &rr);
                break;
            }
            default:
                queue_fail(q, jobs[i]->id, jobs[i]->lease_token, "fuzz", t);
            }
        }
        check(q, "after settling");
    }
    queue_free(q);
    close(fd);
    return 0;
}
