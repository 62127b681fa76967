/* bench_rpc.c -- session-svc through gRPC: TouchSession and GetSession throughput and latency
 * with N sessions in the table, from THREADS client threads (one blocking call in flight each,
 * engbot's client layer), plus serial round trips, plus the server's resident memory per
 * session when its pid is given.
 *   bench_session_rpc HOST:PORT [N=1000] [THREADS=16] [SECONDS=5] [SERVER_PID]
 * The table is filled with N sessions first (chat ids -1e12 - i, like group chats). */
#include "clock.h"
#include "engbot/session/v1/session.pb-c.h"
#include "rpc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 128
#define MAX_SAMPLES 2000000

static struct rpc_channel *ch;
static int64_t n_sessions;
static int nthreads;
static int64_t seconds;
static _Atomic int64_t fill_next;
static _Atomic int errors;

static bool touch(int64_t chat)
{
    Engbot__Session__V1__TouchSessionRequest rq = ENGBOT__SESSION__V1__TOUCH_SESSION_REQUEST__INIT;
    rq.chat_id = chat;
    rq.user_id = 7;
    ProtobufCMessage *resp;
    struct rpc_status st;
    if (rpc_unary(ch, "/engbot.session.v1.SessionService/TouchSession", &rq.base,
                  &engbot__session__v1__touch_session_response__descriptor, &resp, 10000,
                  RPC_CALL_WAIT_FOR_READY, NULL, 0, &st) != RPC_OK) {
        if (atomic_fetch_add(&errors, 1) < 3)
            fprintf(stderr, "TouchSession: %s %s\n", rpc_code_name(st.code), st.message);
        return false;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return true;
}

static bool get(int64_t chat)
{
    Engbot__Session__V1__GetSessionRequest rq = ENGBOT__SESSION__V1__GET_SESSION_REQUEST__INIT;
    rq.chat_id = chat;
    ProtobufCMessage *resp;
    struct rpc_status st;
    if (rpc_unary(ch, "/engbot.session.v1.SessionService/GetSession", &rq.base,
                  &engbot__session__v1__get_session_response__descriptor, &resp, 10000,
                  RPC_CALL_WAIT_FOR_READY, NULL, 0, &st) != RPC_OK) {
        if (atomic_fetch_add(&errors, 1) < 3)
            fprintf(stderr, "GetSession: %s %s\n", rpc_code_name(st.code), st.message);
        return false;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return true;
}

static int64_t chat_of(int64_t i)
{
    return -1000000000000LL - i;
}

static void *filler(void *arg)
{
    for (;;) {
        int64_t i = atomic_fetch_add(&fill_next, 1);
        if (i >= n_sessions)
            return NULL;
        touch(chat_of(i));
    }
}

struct load {
    int id;
    bool get;
    int64_t until_us;
    int64_t *lat;
    size_t n, cap;
};

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *loader(void *arg)
{
    struct load *l = arg;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(l->id + 1);
    while (clock_mono_us() < l->until_us) {
        int64_t chat = chat_of((int64_t)(rng(&seed) % (uint64_t)n_sessions));
        int64_t t0 = clock_mono_us();
        bool ok = l->get ? get(chat) : touch(chat);
        if (ok && l->n < l->cap)
            l->lat[l->n++] = clock_mono_us() - t0;
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *what, bool is_get, int threads)
{
    pthread_t t[MAX_THREADS];
    struct load l[MAX_THREADS];
    int64_t t0 = clock_mono_us();
    size_t cap = MAX_SAMPLES / (size_t)threads;
    for (int i = 0; i < threads; i++) {
        l[i] = (struct load){.id = i,
                             .get = is_get,
                             .until_us = t0 + seconds * 1000000,
                             .lat = malloc(cap * sizeof(int64_t)),
                             .cap = cap};
        pthread_create(&t[i], NULL, loader, &l[i]);
    }
    size_t total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += l[i].n;
    }
    double el = (double)(clock_mono_us() - t0) / 1e6;
    int64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, l[i].lat, l[i].n * sizeof *all);
        k += l[i].n;
        free(l[i].lat);
    }
    qsort(all, total, sizeof *all, cmp);
    printf("%-6s threads=%-3d calls=%-8zu rps=%-7.0f p50_us=%-6" PRId64 " p99_us=%-6" PRId64
           " max_us=%" PRId64 "\n",
           what, threads, total, total / el, total ? all[total / 2] : 0,
           total ? all[total * 99 / 100] : 0, total ? all[total - 1] : 0);
    free(all);
}

static double rss_of(long pid)
{
    char path[64];
    long pages = 0, res = 0;
    snprintf(path, sizeof path, "/proc/%ld/statm", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return (double)res * 4096;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_session_rpc HOST:PORT [N] [THREADS] [SECONDS] [PID]\n");
        return 2;
    }
    n_sessions = argc > 2 ? atoll(argv[2]) : 1000;
    nthreads = argc > 3 ? atoi(argv[3]) : 16;
    seconds = argc > 4 ? atoll(argv[4]) : 5;
    long pid = argc > 5 ? atol(argv[5]) : 0;
    if (n_sessions < 1 || nthreads < 1 || nthreads > MAX_THREADS)
        return 2;
    ch = rpc_channel_new(argv[1], NULL);
    double rss0 = pid ? rss_of(pid) : 0;

    pthread_t t[MAX_THREADS];
    int64_t t0 = clock_mono_us();
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, filler, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    double fill = (double)(clock_mono_us() - t0) / 1e6;
    printf("sessions=%" PRId64 " fill_s=%.1f fill_rps=%.0f", n_sessions, fill, n_sessions / fill);
    if (pid) {
        double rss1 = rss_of(pid);
        printf(" server_rss_before_mb=%.1f server_rss_after_mb=%.1f bytes_per_session=%.0f",
               rss0 / 1048576, rss1 / 1048576, (rss1 - rss0) / (double)n_sessions);
    }
    printf("\n");
    run("touch", false, nthreads);
    run("get", true, nthreads);
    run("touch", false, 1); /* serial round trips */
    rpc_channel_free(ch);
    return atomic_load(&errors) ? 1 : 0;
}
