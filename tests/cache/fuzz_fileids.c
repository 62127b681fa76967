/* fuzz_fileids.c -- libFuzzer target for the persisted file_id store reader.
 *
 * The first input byte picks a mode:
 *   0: the rest is a whole store file, read as a snapshot and as a log (fileids_apply_file);
 *   1: the rest is records framed as u16 length + payload, which the harness wraps into a
 *      valid record file (right magic, checksums and seal), so the fuzzer reaches the record
 *      validation and the table instead of stopping at a CRC;
 *   other: the rest is one record for fidrec_decode, which must round-trip through
 *      fidrec_encode when it decodes.
 * Nothing may crash, leak or loop, and the table never holds more than its limit. */
#include "durable.h"
#include "fidrec.h"
#include "fileids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_IDS 64

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One memfd per process, rewritten with each input. */
static int memfd(const void *data, size_t len)
{
    static int fd = -1;
    if (fd < 0)
        fd = memfd_create("fuzz-fileids", 0);
    if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, data, len, 0) != (ssize_t)len)
        abort();
    return fd;
}

static void read_as_both(const char *path)
{
    struct fileids_opts o = {.max_ids = MAX_IDS};
    struct fileids *f = fileids_open(&o, NULL, NULL, 0);
    struct fileids_report rep = {0};
    fileids_apply_file(f, path, false, &rep);
    fileids_apply_file(f, path, true, &rep);
    if (fileids_count(f) > MAX_IDS)
        abort();
    fileids_close(f);
}

static void roundtrip(const uint8_t *data, size_t size)
{
    struct fidrec r, r2;
    char why[200];
    if (fidrec_decode(data, size, &r, why, sizeof why) != 1)
        return;
    uint8_t buf[FIDREC_MAX];
    size_t n = fidrec_encode(&r, buf);
    if (fidrec_decode(buf, n, &r2, why, sizeof why) != 1 || r2.op != r.op ||
        r2.bot_id != r.bot_id || r2.size != r.size || r2.mtime_ms != r.mtime_ms ||
        r2.gen != r.gen || r2.path_len != r.path_len || r2.id_len != r.id_len ||
        (r.path_len && memcmp(r2.path, r.path, r.path_len) != 0) ||
        (r.id_len && memcmp(r2.file_id, r.file_id, r.id_len) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    if (mode == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd(data, size));
        read_as_both(path);
    } else if (mode == 1) {
        /* A valid record file built in memory (durable.h's format), read from a memfd. */
        static uint8_t *buf;
        static size_t cap;
        if (cap < 16 + size * 5 + 16) {
            cap = 16 + size * 5 + 16;
            buf = realloc(buf, cap);
        }
        for (uint32_t kind = 0; kind < 2; kind++) {
            size_t len = 0;
            memcpy(buf, "ENGBOTRF", 8);
            put32(buf + 8, FIDREC_VERSION);
            put32(buf + 12, kind ? FIDREC_KIND_LOG : FIDREC_KIND_SNAP);
            len = 16;
            uint32_t records = 0;
            for (size_t i = 0; i + 2 <= size;) {
                size_t n = data[i] | (size_t)data[i + 1] << 8;
                i += 2;
                if (n > size - i)
                    n = size - i;
                if (n) {
                    uint8_t lb[4];
                    put32(lb, (uint32_t)n);
                    put32(buf + len, (uint32_t)n);
                    put32(buf + len + 4, crc32c(crc32c(0, lb, 4), data + i, n));
                    memcpy(buf + len + 8, data + i, n);
                    len += 8 + n;
                    records++;
                }
                i += n;
            }
            if (!kind) { /* snapshots are sealed */
                put32(buf + len, 0);
                put32(buf + len + 4, records);
                len += 8;
            }
            struct fileids_opts o = {.max_ids = MAX_IDS};
            struct fileids *f = fileids_open(&o, NULL, NULL, 0);
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", memfd(buf, len));
            fileids_apply_file(f, path, kind == 1, NULL);
            if (fileids_count(f) > MAX_IDS)
                abort();
            fileids_close(f);
        }
    } else {
        roundtrip(data, size);
    }
    return 0;
}
