/* fuzz_cache_rpc.c -- libFuzzer target for CacheService's RPC handlers: sequences of arbitrary
 * requests (see tests/lib/fuzz_rpc.h) against a small tree with traps (a symlink out of the
 * root, a hidden file, a fifo), so the path-safety refusals, listing, search, resolve by id,
 * path and name, reads and invalidation are all reached. PutFileId and DropFileId are left out
 * (each answer waits for an fsync; the file_id store has its own fuzz target). */
#include "engbot/cache/v1/cache.pb-c.h"
#include "fuzz_rpc.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct service *svc;

static void put(const char *dir, const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    static char root[] = "/tmp/engbot-fuzz-cache-XXXXXX";
    if (!mkdtemp(root))
        abort();
    char p[512], data[600];
    const char *dirs[] = {"Mechanical", "Mechanical/Drawings", "Electrical", ".hidden"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        mkdir(p, 0755);
    }
    put(root, "README.txt", "engineering files\n");
    put(root, "Mechanical/Gearbox GB1 BOM.csv", "part,qty\nshaft,1\n");
    put(root, "Mechanical/Drawings/Rev 2 bracket.dxf", "0\nSECTION\n");
    put(root, "Electrical/schematic.pdf", "%PDF-1.4\n%%EOF\n");
    put(root, ".hidden/secret.txt", "no\n");
    snprintf(p, sizeof p, "%s/Electrical/escape", root);
    symlink("/etc/hostname", p);
    snprintf(p, sizeof p, "%s/Electrical/fifo", root);
    mkfifo(p, 0644);
    snprintf(data, sizeof data, "%s.data", root);
    mkdir(data, 0755);

    char err[512];
    struct ps_root *r = ps_root_open(root, err, sizeof err);
    static char datadir[600];
    snprintf(datadir, sizeof datadir, "%s", data);
    struct fileids_opts fo = {.dir = datadir, .max_ids = 1000};
    struct fileids_report rep;
    struct fileids *fids = fileids_open(&fo, &rep, err, sizeof err);
    struct cat_opts co = {.max_entries = 1000};
    struct cat *cat = cat_new(&co);
    struct scan *scan = scan_new(cat, r);
    struct exist *ex = exist_new(cat, scan, r, 300000);
    if (!r || !fids)
        abort();
    struct scan_result sr;
    scan_full(scan, SCAN_RESCAN, &sr);
    struct service_deps deps = {cat, scan, ex, fids, r, NULL};
    struct service_opts so = {.max_file_size = 1 << 20, .chunk_size = 4096,
                              .max_concurrent_reads = 4};
    svc = service_new(&deps, &so);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!svc)
        setup();
    size_t n;
    const struct rpc_method *m = service_methods(&n);
    static const char *const skip[] = {"PutFileId", "DropFileId", NULL};
    fuzz_rpc_run(&engbot__cache__v1__cache_service__descriptor, m, n, svc, skip, data, size);
    return 0;
}
