/* main.c -- cache-svc: settings, start-up, the first scan, serve, drain. Only wiring: the
 * rules are pathsafe.c, the index catalogue.c, disk reading scan.c, freshness existence.c and
 * watch.c, file_ids fileids.c, the API service.c. */
#include "catalogue.h"
#include "conf.h"
#include "existence.h"
#include "fileids.h"
#include "log.h"
#include "pathsafe.h"
#include "scan.h"
#include "service.h"
#include "svc.h"
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "cache-svc"

static struct {
    char *files_root, *data_dir;
    int64_t file_cache_duration, rescan_interval;
    bool inotify;
    int64_t max_entries, max_file_size, chunk_size, max_concurrent_reads, max_file_ids;
} cfg;

static const struct conf_opt opts[] = {
    {"files-root", CONF_STR, &cfg.files_root, "/srv/engbot/files", 0, 0,
     "the folder of files the bot serves; nothing outside it is ever listed, resolved or read"},
    {"data-dir", CONF_STR, &cfg.data_dir, "data", 0, 0,
     "directory for the file_id store (created if missing; must be writable)"},
    {"file-cache-duration", CONF_DURATION, &cfg.file_cache_duration, "5m", 0, 86400000,
     "a resolved file is checked on disk at most this often (0 = on every lookup)"},
    {"rescan-interval", CONF_DURATION, &cfg.rescan_interval, "1m", 0, 86400000,
     "full rescan of FILES_ROOT this often: the fallback for volumes without inotify (0 = off)"},
    {"inotify", CONF_BOOL, &cfg.inotify, "true", 0, 0,
     "watch the tree with inotify (false: periodic rescans only, as on network volumes)"},
    {"max-entries", CONF_INT, &cfg.max_entries, "200000", 1, 50000000,
     "folders and files in the catalogue at most; the rest are left out (logged, counted)"},
    {"max-file-size", CONF_SIZE, &cfg.max_file_size, "2000MiB", 1, 1LL << 40,
     "larger files are refused by ReadFile (RESOURCE_EXHAUSTED)"},
    {"chunk-size", CONF_SIZE, &cfg.chunk_size, "128KiB", 4096, 2LL << 20,
     "bytes per ReadFile message (clients' default receive limit is 4MiB)"},
    {"max-concurrent-reads", CONF_INT, &cfg.max_concurrent_reads, "8", 1, 1024,
     "ReadFile streams at once; more get RESOURCE_EXHAUSTED (must be below WORKER_THREADS)"},
    {"max-file-ids", CONF_INT, &cfg.max_file_ids, "1000000", 1, 100000000,
     "stored Telegram file_ids at most (PutFileId beyond: RESOURCE_EXHAUSTED)"},
    {0},
};

/* The common table with this program's default for worker-threads: ReadFile streams hold a
 * worker each for as long as the client reads. */
static struct conf_opt common_opts[32];

static void bad_setting(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, PROG ": invalid --%s='%s': expected %s\n", flag, value, why);
    exit(2);
}

int main(int argc, char **argv)
{
    struct svc_common common;
    const struct conf_opt *c = svc_common_opts(&common, "0.0.0.0:50052", "0.0.0.0:9092");
    size_t n = 0;
    for (; c[n].name && n + 1 < sizeof common_opts / sizeof common_opts[0]; n++) {
        common_opts[n] = c[n];
        if (strcmp(c[n].name, "worker-threads") == 0)
            common_opts[n].def = "16";
    }
    const struct conf_opt *const tables[] = {common_opts, opts, NULL};
    conf_load(tables, argc, argv, PROG,
              "the file catalogue: listing, search, lookups, file streaming and Telegram file_id "
              "reuse over FILES_ROOT");

    /* Cross-setting rules and the root, checked once, before anything starts. */
    if (cfg.max_concurrent_reads >= common.worker_threads) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)cfg.max_concurrent_reads);
        bad_setting("max-concurrent-reads", v, "a number below --worker-threads");
    }
    if (cfg.chunk_size + 1024 > common.max_send_msg) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)cfg.chunk_size);
        bad_setting("chunk-size", v, "a size at least 1KiB below --max-send-msg");
    }
    char err[1024];
    struct ps_root *root = ps_root_open(cfg.files_root, err, sizeof err);
    if (!root) {
        char why[1100];
        snprintf(why, sizeof why, "a readable directory (%s)", err);
        bad_setting("files-root", cfg.files_root, why);
    }

    svc_init(PROG, &common);
    conf_log(tables);

    struct fileids_opts fo = {.dir = cfg.data_dir, .max_ids = (size_t)cfg.max_file_ids};
    struct fileids_report rep;
    struct fileids *fids = fileids_open(&fo, &rep, err, sizeof err);
    if (!fids) {
        LOG_ERROR("cannot start: DATA_DIR is not usable", LF_STR("setting", "DATA_DIR"),
                  LF_STR("error", err));
        ps_root_close(root);
        conf_free(tables);
        return 1;
    }

    struct cat_opts co = {.max_entries = (size_t)cfg.max_entries};
    struct cat *cat = cat_new(&co);
    struct scan *scan = scan_new(cat, root);
    struct exist *ex = exist_new(cat, scan, root, cfg.file_cache_duration);
    struct watch_opts wo = {.inotify = cfg.inotify, .rescan_ms = cfg.rescan_interval};
    struct watch *w = watch_new(scan, root, &wo);
    struct service_deps deps = {cat, scan, ex, fids, root, w};
    struct service_opts so = {
        .max_file_size = cfg.max_file_size,
        .chunk_size = cfg.chunk_size,
        .max_concurrent_reads = cfg.max_concurrent_reads,
    };
    struct service *service = service_new(&deps, &so);

    struct svc *s = svc_new(PROG, &common);
    service_register(service, svc_rpc(s));
    svc_start(s);
    svc_set_ready(s, false, "first scan of FILES_ROOT");

    /* Serving only once the catalogue holds the tree. */
    struct scan_result r;
    int rc = scan_full(scan, SCAN_RESCAN, &r);
    struct cat_stats cs;
    cat_rdlock(cat);
    cat_stats(cat, &cs);
    cat_unlock(cat);
    LOG_INFO("first scan done", LF_STR("files_root", ps_root_path(root)),
             LF_U64("folders", cs.folders), LF_U64("files", cs.files), LF_I64("ms", r.ms),
             LF_U64("left_out", r.dropped), LF_U64("index_bytes", cs.bytes),
             LF_BOOL("inotify", watch_inotify_active(w)), LF_U64("watches", watch_count(w)));
    if (rc < 0)
        LOG_ERROR("FILES_ROOT could not be read: serving an empty catalogue until it can");
    watch_run(w);
    svc_set_ready(s, true, NULL);

    svc_wait(s);
    svc_drain(s);
    watch_free(w);
    svc_free(s);
    service_free(service);
    exist_free(ex);
    scan_free(scan);
    cat_free(cat);
    fileids_close(fids);
    ps_root_close(root);
    conf_free(tables);
    LOG_INFO("stopped");
    return 0;
}
