/* bench_cache.c -- cache-svc benchmarks through gRPC (engbot's client layer, one blocking call
 * in flight per client thread). docs/cache-svc.md, "Benchmarks", has the commands and results.
 *
 *   bench_cache tree DIR FILES              make a tree: FILES empty files, 100 per folder,
 *                                           10 folders per parent folder
 *   bench_cache resolve ADDR [THREADS] [SECONDS]   Resolve by id, uniform over every file
 *   bench_cache list ADDR [THREADS] [SECONDS]      ListFolder pages of random folders
 *   bench_cache serial ADDR [SECONDS]              one thread: Resolve round trips
 *   bench_cache serial-stats ADDR [SECONDS]        one thread: GetStats round trips (served on
 *                                                  a completion-queue thread: no worker hop)
 *   bench_cache zipf ADDR REQUESTS [S=1.0] [THREADS]  Resolve by id, Zipf(S) popularity;
 *                                           prints the server's cache hit ratios after
 *   bench_cache stream ADDR PATH [REPEAT=5] [FILE_ON_DISK]   ReadFile throughput; with the
 *                                           file's path on disk, `cat FILE > /dev/null` too
 *   bench_cache rss PID                     the process's resident memory
 */
#include "clock.h"
#include "engbot/cache/v1/cache.pb-c.h"
#include "rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SVC         "/engbot.cache.v1.CacheService/"
#define MAX_THREADS 64

static const char *addr;

/* ---- tree ---------------------------------------------------------------------------------- */

static int make_tree(const char *dir, long files)
{
    static const char *kinds[] = {"pdf", "dxf", "step", "csv", "md"};
    char p[4096];
    mkdir(dir, 0755);
    long folders = (files + 99) / 100;
    for (long f = 0; f < folders; f++) {
        /* Folder f lives at depth 3: Area-XX/Project-YY/Drawings-ZZ. */
        snprintf(p, sizeof p, "%s/Area-%02ld", dir, f / 100);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/Area-%02ld/Project-%02ld", dir, f / 100, (f / 10) % 10);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/Area-%02ld/Project-%02ld/Drawings-%02ld", dir, f / 100,
                 (f / 10) % 10, f % 10);
        mkdir(p, 0755);
        for (long i = 0; i < 100 && f * 100 + i < files; i++) {
            char q[4200];
            long n = f * 100 + i;
            snprintf(q, sizeof q, "%s/part-%06ld rev %ld.%s", p, n, n % 7, kinds[n % 5]);
            FILE *fp = fopen(q, "w");
            if (!fp) {
                perror(q);
                return 1;
            }
            fclose(fp);
        }
    }
    printf("%ld files in %ld folders under %s\n", files, folders, dir);
    return 0;
}

/* ---- the catalogue as seen through ListFolder ---------------------------------------------- */

static char **file_ids, **folder_ids;
static size_t nfiles, nfolders, capfiles, capfolders;

static void push(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = realloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = strdup(s);
}

static struct rpc_channel *channel(void)
{
    struct rpc_client_opts o = {.max_recv_msg = 64 << 20};
    return rpc_channel_new(addr, &o);
}

static int walk(struct rpc_channel *ch, const char *folder_id)
{
    for (uint32_t page = 0;; page++) {
        Engbot__Cache__V1__ListFolderRequest rq = ENGBOT__CACHE__V1__LIST_FOLDER_REQUEST__INIT;
        rq.folder_id = (char *)folder_id;
        rq.page_size = 500;
        rq.page = page;
        ProtobufCMessage *m;
        struct rpc_status st;
        if (rpc_unary(ch, SVC "ListFolder", &rq.base,
                      &engbot__cache__v1__list_folder_response__descriptor, &m, 30000,
                      RPC_CALL_WAIT_FOR_READY, NULL, 0, &st) != RPC_OK) {
            fprintf(stderr, "ListFolder: %s %s\n", rpc_code_name(st.code), st.message);
            return -1;
        }
        Engbot__Cache__V1__ListFolderResponse *r = (void *)m;
        if (page == 0)
            push(&folder_ids, &nfolders, &capfolders, r->folder->id);
        for (size_t i = 0; i < r->n_entries; i++) {
            Engbot__Cache__V1__Entry *e = r->entries[i];
            if (e->kind == ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FOLDER) {
                if (walk(ch, e->id) < 0)
                    return -1;
            } else {
                push(&file_ids, &nfiles, &capfiles, e->id);
            }
        }
        bool last = page + 1 >= r->pages;
        protobuf_c_message_free_unpacked(m, NULL);
        if (last)
            return 0;
    }
}

static int load_ids(void)
{
    struct rpc_channel *ch = channel();
    int64_t t0 = clock_mono_us();
    int rc = walk(ch, "");
    rpc_channel_free(ch);
    if (rc == 0)
        fprintf(stderr, "catalogue: %zu files, %zu folders (walked in %.2f s)\n", nfiles, nfolders,
                (double)(clock_mono_us() - t0) / 1e6);
    return rc == 0 && nfiles ? 0 : -1;
}

/* ---- load ----------------------------------------------------------------------------------- */

enum mode { M_RESOLVE, M_LIST, M_ZIPF, M_STATS };

struct worker {
    pthread_t t;
    enum mode mode;
    int64_t until_us;
    long quota; /* zipf: requests to make */
    uint32_t *lat_us;
    size_t n, cap;
    long errors;
    uint64_t rng;
};

static double *zipf_cdf;
static uint32_t *zipf_perm;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t zipf_pick(uint64_t *rng)
{
    double u = (double)(next_rand(rng) >> 11) / 9007199254740992.0;
    size_t lo = 0, hi = nfiles - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return zipf_perm[lo];
}

static bool one_call(struct rpc_channel *ch, struct worker *w)
{
    ProtobufCMessage *m;
    struct rpc_status st;
    int code;
    if (w->mode == M_STATS) {
        Engbot__Cache__V1__GetStatsRequest rq = ENGBOT__CACHE__V1__GET_STATS_REQUEST__INIT;
        code = rpc_unary(ch, SVC "GetStats", &rq.base,
                         &engbot__cache__v1__get_stats_response__descriptor, &m, 10000,
                         RPC_CALL_WAIT_FOR_READY, NULL, 0, &st);
    } else if (w->mode == M_LIST) {
        Engbot__Cache__V1__ListFolderRequest rq = ENGBOT__CACHE__V1__LIST_FOLDER_REQUEST__INIT;
        rq.folder_id = folder_ids[next_rand(&w->rng) % nfolders];
        rq.page_size = 20;
        rq.page = (uint32_t)(next_rand(&w->rng) % 5);
        code = rpc_unary(ch, SVC "ListFolder", &rq.base,
                         &engbot__cache__v1__list_folder_response__descriptor, &m, 10000,
                         RPC_CALL_WAIT_FOR_READY, NULL, 0, &st);
    } else {
        Engbot__Cache__V1__ResolveRequest rq = ENGBOT__CACHE__V1__RESOLVE_REQUEST__INIT;
        rq.selector_case = ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_ID;
        size_t i = w->mode == M_ZIPF ? zipf_pick(&w->rng) : next_rand(&w->rng) % nfiles;
        rq.id = file_ids[i];
        code =
            rpc_unary(ch, SVC "Resolve", &rq.base, &engbot__cache__v1__resolve_response__descriptor,
                      &m, 10000, RPC_CALL_WAIT_FOR_READY, NULL, 0, &st);
    }
    if (code != RPC_OK) {
        if (w->errors++ < 3)
            fprintf(stderr, "call failed: %s %s\n", rpc_code_name(st.code), st.message);
        return false;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return true;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct rpc_channel *ch = channel();
    for (long done = 0;; done++) {
        if (w->quota ? done >= w->quota : clock_mono_us() >= w->until_us)
            break;
        int64_t t0 = clock_mono_us();
        if (!one_call(ch, w))
            continue;
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 65536;
            w->lat_us = realloc(w->lat_us, w->cap * sizeof *w->lat_us);
        }
        w->lat_us[w->n++] = (uint32_t)(clock_mono_us() - t0);
    }
    rpc_channel_free(ch);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void run_load(const char *what, enum mode mode, int threads, double seconds, long quota)
{
    struct worker w[MAX_THREADS] = {0};
    if (threads < 1 || threads > MAX_THREADS)
        threads = 4;
    int64_t t0 = clock_mono_us();
    for (int i = 0; i < threads; i++) {
        w[i].mode = mode;
        w[i].until_us = t0 + (int64_t)(seconds * 1e6);
        w[i].quota = quota ? quota / threads + (i < quota % threads) : 0;
        w[i].rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        pthread_create(&w[i].t, NULL, work, &w[i]);
    }
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].t, NULL);
        total += w[i].n;
        errors += w[i].errors;
    }
    double secs = (double)(clock_mono_us() - t0) / 1e6;
    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, w[i].lat_us, w[i].n * sizeof *all);
        k += w[i].n;
        free(w[i].lat_us);
    }
    qsort(all, total, sizeof *all, cmp_u32);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] : 0)
    printf("%-8s threads=%-2d calls=%zu errors=%ld  %.0f calls/s  latency us: p50=%u p90=%u "
           "p99=%u p99.9=%u max=%u\n",
           what, threads, total, errors, (double)total / secs, PCT(0.50), PCT(0.90), PCT(0.99),
           PCT(0.999), total ? all[total - 1] : 0);
    free(all);
}

static void print_stats(void)
{
    struct rpc_channel *ch = channel();
    Engbot__Cache__V1__GetStatsRequest rq = ENGBOT__CACHE__V1__GET_STATS_REQUEST__INIT;
    ProtobufCMessage *m;
    struct rpc_status st;
    if (rpc_unary(ch, SVC "GetStats", &rq.base, &engbot__cache__v1__get_stats_response__descriptor,
                  &m, 10000, 0, NULL, 0, &st) == RPC_OK) {
        Engbot__Cache__V1__GetStatsResponse *r = (void *)m;
        for (size_t i = 0; i < r->n_caches; i++)
            printf("cache %-9s hits=%" PRIu64 " misses=%" PRIu64 " hit_ratio=%.4f\n",
                   r->caches[i]->name, r->caches[i]->hits, r->caches[i]->misses,
                   r->caches[i]->hit_ratio);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rpc_channel_free(ch);
}

/* ---- stream ---------------------------------------------------------------------------------- */

static int stream(const char *path, int repeat, const char *disk)
{
    struct rpc_channel *ch = channel();
    double best = 0;
    for (int i = 0; i < repeat; i++) {
        Engbot__Cache__V1__ReadFileRequest rq = ENGBOT__CACHE__V1__READ_FILE_REQUEST__INIT;
        rq.path = (char *)path;
        struct rpc_status st;
        int64_t t0 = clock_mono_us();
        struct rpc_reader *r =
            rpc_reader_open(ch, SVC "ReadFile", &rq.base, 60000, RPC_CALL_WAIT_FOR_READY, &st);
        uint64_t bytes = 0;
        ProtobufCMessage *m;
        int rc;
        while (r && (rc = rpc_reader_next(r, &engbot__cache__v1__read_file_response__descriptor, &m,
                                          &st)) == 1) {
            bytes += ((Engbot__Cache__V1__ReadFileResponse *)m)->data.len;
            protobuf_c_message_free_unpacked(m, NULL);
        }
        if (r)
            rpc_reader_close(r);
        double secs = (double)(clock_mono_us() - t0) / 1e6;
        if (st.code != RPC_OK) {
            fprintf(stderr, "ReadFile: %s %s\n", rpc_code_name(st.code), st.message);
            return 1;
        }
        double mbs = (double)bytes / secs / 1e6;
        printf("ReadFile %s: %" PRIu64 " bytes in %.3f s = %.0f MB/s\n", path, bytes, secs, mbs);
        if (mbs > best)
            best = mbs;
    }
    rpc_channel_free(ch);
    if (disk) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "cat '%s' > /dev/null", disk);
        double cbest = 0;
        struct stat sb;
        stat(disk, &sb);
        for (int i = 0; i < repeat; i++) {
            int64_t t0 = clock_mono_us();
            if (system(cmd) != 0)
                return 1;
            double secs = (double)(clock_mono_us() - t0) / 1e6;
            double mbs = (double)sb.st_size / secs / 1e6;
            printf("cat %s: %lld bytes in %.3f s = %.0f MB/s\n", disk, (long long)sb.st_size, secs,
                   mbs);
            if (mbs > cbest)
                cbest = mbs;
        }
        printf("best: ReadFile %.0f MB/s, cat %.0f MB/s (ReadFile = %.0f%% of cat)\n", best, cbest,
               100 * best / cbest);
    }
    return 0;
}

static long rss_kb(const char *pid)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%s/status", pid);
    FILE *f = fopen(p, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: see the top of bench_cache.c\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "tree") == 0)
        return argc < 4 ? 2 : make_tree(argv[2], atol(argv[3]));
    if (strcmp(cmd, "rss") == 0) {
        printf("rss_kb=%ld\n", rss_kb(argv[2]));
        return 0;
    }
    addr = argv[2];
    if (strcmp(cmd, "stream") == 0)
        return argc < 4 ? 2
                        : stream(argv[3], argc > 4 ? atoi(argv[4]) : 5, argc > 5 ? argv[5] : NULL);
    if (load_ids() < 0)
        return 1;
    if (strcmp(cmd, "resolve") == 0) {
        run_load("resolve", M_RESOLVE, argc > 3 ? atoi(argv[3]) : 4, argc > 4 ? atof(argv[4]) : 5,
                 0);
    } else if (strcmp(cmd, "list") == 0) {
        run_load("list", M_LIST, argc > 3 ? atoi(argv[3]) : 4, argc > 4 ? atof(argv[4]) : 5, 0);
    } else if (strcmp(cmd, "serial") == 0) {
        run_load("serial", M_RESOLVE, 1, argc > 3 ? atof(argv[3]) : 5, 0);
    } else if (strcmp(cmd, "serial-stats") == 0) {
        run_load("stats", M_STATS, 1, argc > 3 ? atof(argv[3]) : 5, 0);
    } else if (strcmp(cmd, "zipf") == 0) {
        long requests = argc > 3 ? atol(argv[3]) : 200000;
        double s = argc > 4 ? atof(argv[4]) : 1.0;
        int threads = argc > 5 ? atoi(argv[5]) : 4;
        zipf_cdf = malloc(nfiles * sizeof *zipf_cdf);
        zipf_perm = malloc(nfiles * sizeof *zipf_perm);
        double sum = 0;
        for (size_t i = 0; i < nfiles; i++)
            sum += 1.0 / pow((double)(i + 1), s);
        double acc = 0;
        for (size_t i = 0; i < nfiles; i++) {
            acc += 1.0 / pow((double)(i + 1), s) / sum;
            zipf_cdf[i] = acc;
            zipf_perm[i] = (uint32_t)i;
        }
        uint64_t rng = 42;
        for (size_t i = nfiles - 1; i > 0; i--) { /* popular files anywhere in the tree */
            size_t j = next_rand(&rng) % (i + 1);
            uint32_t t = zipf_perm[i];
            zipf_perm[i] = zipf_perm[j];
            zipf_perm[j] = t;
        }
        printf("zipf s=%.2f over %zu files, %ld requests\n", s, nfiles, requests);
        run_load("zipf", M_ZIPF, threads, 0, requests);
        print_stats();
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        return 2;
    }
    return 0;
}
