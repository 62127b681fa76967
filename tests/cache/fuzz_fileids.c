/* fuzz_fileids.c -- libFuzzer target for the persisted file_id store reader.
 *
 * The first input byte picks a mode:
 *   0: the rest is a whole store file, read as a snapshot and as a log (fileids_apply_file);
 *   1: the rest is records framed as u16 length + payload, written by the harness into a
 *      valid record file (right magic and checksums), so the fuzzer reaches the record
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
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IDS 64

static char dir[128];

static void cleanup(void)
{
    char p[256];
    snprintf(p, sizeof p, "%s/f", dir);
    unlink(p);
    rmdir(dir);
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
        memcmp(r2.path, r.path, r.path_len) != 0 ||
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
        static int mfd = -1;
        if (mfd < 0)
            mfd = memfd_create("fuzz-fileids", 0);
        if (ftruncate(mfd, 0) < 0 || pwrite(mfd, data, size, 0) != (ssize_t)size)
            abort();
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
        read_as_both(path);
    } else if (mode == 1) {
        if (!dir[0]) {
            snprintf(dir, sizeof dir, "/tmp/engbot-fuzz-fileids-%d", (int)getpid());
            mkdir(dir, 0755);
            atexit(cleanup);
        }
        char path[256], err[256];
        snprintf(path, sizeof path, "%s/f", dir);
        for (uint32_t kind = 0; kind < 2; kind++) {
            struct dfile *df = dfile_create(path, kind ? FIDREC_KIND_LOG : FIDREC_KIND_SNAP,
                                            FIDREC_VERSION, err, sizeof err);
            if (!df)
                abort();
            for (size_t i = 0; i + 2 <= size;) {
                size_t n = data[i] | (size_t)data[i + 1] << 8;
                i += 2;
                if (n > size - i)
                    n = size - i;
                if (n)
                    dfile_record(df, data + i, n);
                i += n;
            }
            if (dfile_commit(df, NULL, err, sizeof err) < 0)
                abort();
            struct fileids_opts o = {.max_ids = MAX_IDS};
            struct fileids *f = fileids_open(&o, NULL, NULL, 0);
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
