/* fuzz_session_records.c -- libFuzzer target for session-svc's file readers (framing and
 * checksums in common/durable.c, records decoded and applied by session-svc/records.c).
 *
 * An input that starts with the file magic "ENGBOTRF" is read as it is, as a change log and as
 * a snapshot: that covers torn and corrupt framing. Any other input is turned into a
 * well-framed file, so the fuzzer gets past the checksums to the record decoders:
 *   byte 0: bit 0 = snapshot (else change log), bit 1 = add the seal
 *   then records, each a u16 little-endian length and that many bytes
 * and its bytes are also applied as one bare change-log record. Nothing may crash, leak or
 * read out of bounds, whatever the bytes. The seed corpus (corpus/records/) holds real files
 * written by session-svc and framed versions of their records. */
#include "clock.h"
#include "durable.h"
#include "persist.h"
#include "records.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Frames the records of in[] into a valid file; returns its length (out has room). */
static size_t frame(const uint8_t *in, size_t n, uint8_t *out, bool snapshot, bool seal)
{
    size_t o = 0;
    uint32_t count = 0;
    memcpy(out, "ENGBOTRF", 8);
    put32(out + 8, RECORD_FORMAT_VERSION);
    put32(out + 12, snapshot ? RECORD_KIND_SNAPSHOT : RECORD_KIND_LOG);
    o = 16;
    size_t i = 0;
    while (i + 2 <= n) {
        size_t len = (size_t)in[i] | (size_t)in[i + 1] << 8;
        i += 2;
        if (len > n - i)
            len = n - i;
        if (len == 0)
            continue;
        uint8_t lb[4];
        put32(lb, (uint32_t)len);
        put32(out + o, (uint32_t)len);
        put32(out + o + 4, crc32c(crc32c(0, lb, 4), in + i, len));
        memcpy(out + o + 8, in + i, len);
        o += 8 + len;
        i += len;
        count++;
    }
    if (seal) {
        put32(out + o, 0);
        put32(out + o + 4, count);
        o += 8;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clock_set_fake(true, 1700000000000LL);
    struct store_opts o = {.inactivity_ms = 3600000,
                           .max_sessions = 1000,
                           .max_state_keys = 32,
                           .max_state_bytes = 4096};
    struct store *st = store_new(&o);
    int fd = memfd_create("fuzz-records", 0);
    if (fd < 0)
        abort();
    bool raw = size >= 8 && memcmp(data, "ENGBOTRF", 8) == 0;
    bool snapshot = true, damaged;
    uint64_t gen;
    if (raw) {
        if (write(fd, data, size) != (ssize_t)size)
            abort();
    } else if (size > 0) {
        /* Each input byte becomes at most 8 bytes of framing plus itself. */
        uint8_t *file = malloc(32 + size * 9);
        snapshot = data[0] & 1;
        size_t n = frame(data + 1, size - 1, file, snapshot, data[0] & 2);
        if (write(fd, file, n) != (ssize_t)n)
            abort();
        free(file);
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (raw || !snapshot)
        record_read_log(path, st, &damaged);
    if (raw || snapshot)
        record_read_snapshot(path, st, &gen, &damaged);
    if (!raw)
        record_apply_log(st, data, size);
    store_load_done(st, clock_now_ms());
    close(fd);
    store_free(st);
    return 0;
}
