/* bench_queue.c -- load generator for queue-svc on engbot's gRPC client (rpc.h).
 *
 *   bench_queue --target=HOST:PORT --mode=MODE [--producers=N] [--senders=N] [--lanes=N]
 *               [--seconds=S] [--jobs=N] [--batch=N] [--payload=BYTES] [--rate=N]
 *
 * Modes:
 *   enqueue   N producers call Enqueue back to back for S seconds (lanes picked round-robin):
 *             throughput and latency percentiles.
 *   scale     enqueue with 1, 2, 4, ... up to --producers producers, S seconds each: how
 *             throughput grows with concurrency (group commit at work).
 *   drain     first enqueues --jobs jobs, then N senders Lease (up to --batch) + Ack until the
 *             queue is empty: lease+ack throughput.
 *   latency   one producer enqueues --rate jobs/s into ready lanes while N senders long-poll
 *             Lease and Ack: enqueue-to-lease latency (p50/p99/max).
 * The server should run with its rate limits off (--global-rate=0 --chat-rate=0) and limits
 * large enough for the load; docs/queue-svc.md has the exact commands. */
#include "clock.h"
#include "engbot/queue/v1/queue.pb-c.h"
#include "rpc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *target = "127.0.0.1:50053";
static const char *mode = "enqueue";
static int producers = 4, senders = 2, lanes = 1000, seconds = 5, batch = 100, payload_len = 200;
static long jobs_total = 20000, rate = 1000;

static struct rpc_channel *ch;
static _Atomic bool stop;
static _Atomic long ops, errors;

struct lat {
    int64_t *us;
    size_t n, cap;
};

static void lat_add(struct lat *l, int64_t us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->us = realloc(l->us, l->cap * sizeof *l->us);
        if (!l->us)
            abort();
    }
    l->us[l->n++] = us;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void lat_merge(struct lat *into, struct lat *from)
{
    for (size_t i = 0; i < from->n; i++)
        lat_add(into, from->us[i]);
    free(from->us);
    from->us = NULL;
    from->n = from->cap = 0;
}

static void lat_report(const char *what, struct lat *l)
{
    if (!l->n) {
        printf("  %s: no samples\n", what);
        return;
    }
    qsort(l->us, l->n, sizeof *l->us, cmp64);
    printf("  %s latency: p50 %" PRId64 " us, p99 %" PRId64 " us, max %" PRId64
           " us (%zu samples)\n",
           what, l->us[l->n / 2], l->us[(size_t)((double)l->n * 0.99)], l->us[l->n - 1], l->n);
}

static int enqueue_one(long lane, const uint8_t *payload, size_t len)
{
    Engbot__Queue__V1__EnqueueRequest rq = ENGBOT__QUEUE__V1__ENQUEUE_REQUEST__INIT;
    rq.lane_key = lane;
    rq.lane_kind = ENGBOT__QUEUE__V1__LANE_KIND__LANE_KIND_UNLIMITED;
    rq.method = "sendMessage";
    rq.payload.data = (uint8_t *)payload;
    rq.payload.len = len;
    ProtobufCMessage *resp = NULL;
    struct rpc_status st;
    int code = rpc_unary(ch, "/engbot.queue.v1.QueueService/Enqueue", &rq.base,
                         &engbot__queue__v1__enqueue_response__descriptor, &resp, 10000,
                         RPC_CALL_WAIT_FOR_READY, NULL, 0, &st);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (code != RPC_OK && atomic_fetch_add(&errors, 1) < 5)
        fprintf(stderr, "Enqueue: %s %s\n", rpc_code_name(code), st.message);
    return code;
}

/* ---- enqueue ------------------------------------------------------------------------------ */

struct prod {
    int idx, of;
    long limit; /* jobs to enqueue (0 = until stop) */
    struct lat lat;
};

static void *producer(void *arg)
{
    struct prod *p = arg;
    uint8_t *payload = calloc(1, (size_t)payload_len + 16);
    long n = 0;
    for (long i = p->idx; !atomic_load(&stop); i += p->of) {
        if (p->limit && n >= p->limit)
            break;
        int64_t t0 = clock_mono_us();
        if (enqueue_one(1 + i % lanes, payload, (size_t)payload_len) == RPC_OK) {
            atomic_fetch_add(&ops, 1);
            lat_add(&p->lat, clock_mono_us() - t0);
        }
        n++;
    }
    free(payload);
    return NULL;
}

static double run_enqueue(int np, int secs)
{
    pthread_t th[1024];
    struct prod *ps = calloc((size_t)np, sizeof *ps);
    atomic_store(&stop, false);
    atomic_store(&ops, 0);
    int64_t t0 = clock_mono_us();
    for (int i = 0; i < np; i++) {
        ps[i] = (struct prod){.idx = i, .of = np};
        pthread_create(&th[i], NULL, producer, &ps[i]);
    }
    sleep((unsigned)secs);
    atomic_store(&stop, true);
    struct lat all = {0};
    for (int i = 0; i < np; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&all, &ps[i].lat);
    }
    double s = (double)(clock_mono_us() - t0) / 1e6;
    double tput = (double)atomic_load(&ops) / s;
    printf("enqueue: %d producers, %d lanes, %d-byte payloads: %ld jobs in %.2f s = %.0f jobs/s\n",
           np, lanes, payload_len, atomic_load(&ops), s, tput);
    lat_report("enqueue", &all);
    free(all.us);
    free(ps);
    return tput;
}

/* ---- lease + ack ---------------------------------------------------------------------------- */

struct sender_arg {
    bool long_poll;
    struct lat lat; /* latency mode: enqueue -> lease */
};

static int ack(const Engbot__Queue__V1__Job *j)
{
    Engbot__Queue__V1__AckRequest a = ENGBOT__QUEUE__V1__ACK_REQUEST__INIT;
    a.id = j->id;
    a.lease_token = j->lease_token;
    ProtobufCMessage *resp = NULL;
    struct rpc_status st;
    int code =
        rpc_unary(ch, "/engbot.queue.v1.QueueService/Ack", &a.base,
                  &engbot__queue__v1__ack_response__descriptor, &resp, 10000, 0, NULL, 0, &st);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (code != RPC_OK && atomic_fetch_add(&errors, 1) < 5)
        fprintf(stderr, "Ack: %s %s\n", rpc_code_name(code), st.message);
    return code;
}

static void *sender(void *arg)
{
    struct sender_arg *sa = arg;
    while (!atomic_load(&stop)) {
        Engbot__Queue__V1__LeaseRequest lr = ENGBOT__QUEUE__V1__LEASE_REQUEST__INIT;
        lr.max_jobs = (uint32_t)batch;
        lr.wait_ms = 200;
        lr.sender = "bench";
        ProtobufCMessage *m = NULL;
        struct rpc_status st;
        int code =
            rpc_unary(ch, "/engbot.queue.v1.QueueService/Lease", &lr.base,
                      &engbot__queue__v1__lease_response__descriptor, &m, 5000, 0, NULL, 0, &st);
        if (code != RPC_OK) {
            if (atomic_fetch_add(&errors, 1) < 5)
                fprintf(stderr, "Lease: %s %s\n", rpc_code_name(code), st.message);
            continue;
        }
        Engbot__Queue__V1__LeaseResponse *r = (void *)m;
        int64_t now = clock_mono_us();
        for (size_t i = 0; i < r->n_jobs; i++) {
            if (sa->long_poll && r->jobs[i]->payload.len >= 8) {
                int64_t sent;
                memcpy(&sent, r->jobs[i]->payload.data, 8);
                lat_add(&sa->lat, now - sent);
            }
            if (ack(r->jobs[i]) == RPC_OK)
                atomic_fetch_add(&ops, 1);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return NULL;
}

static uint64_t queued_now(void)
{
    Engbot__Queue__V1__GetStatsRequest rq = ENGBOT__QUEUE__V1__GET_STATS_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    struct rpc_status st;
    if (rpc_unary(ch, "/engbot.queue.v1.QueueService/GetStats", &rq.base,
                  &engbot__queue__v1__get_stats_response__descriptor, &m, 5000, 0, NULL, 0,
                  &st) != RPC_OK)
        return UINT64_MAX;
    Engbot__Queue__V1__GetStatsResponse *r = (void *)m;
    uint64_t n = r->queued + r->leased;
    protobuf_c_message_free_unpacked(m, NULL);
    return n;
}

static void run_drain(void)
{
    pthread_t th[1024];
    struct prod *ps = calloc((size_t)producers, sizeof *ps);
    int64_t t0 = clock_mono_us();
    atomic_store(&stop, false);
    for (int i = 0; i < producers; i++) {
        ps[i] = (struct prod){.idx = i,
                              .of = producers,
                              .limit = jobs_total / producers + (i < jobs_total % producers)};
        pthread_create(&th[i], NULL, producer, &ps[i]);
    }
    struct lat ignore = {0};
    for (int i = 0; i < producers; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&ignore, &ps[i].lat);
    }
    free(ignore.us);
    printf("prefill: %ld jobs in %.2f s\n", jobs_total, (double)(clock_mono_us() - t0) / 1e6);
    atomic_store(&ops, 0);
    struct sender_arg *sa = calloc((size_t)senders, sizeof *sa);
    t0 = clock_mono_us();
    for (int i = 0; i < senders; i++)
        pthread_create(&th[i], NULL, sender, &sa[i]);
    while (atomic_load(&ops) < jobs_total && (clock_mono_us() - t0) < 600 * 1000000LL) {
        usleep(20000);
        if (atomic_load(&ops) >= jobs_total || queued_now() == 0)
            break;
    }
    double s = (double)(clock_mono_us() - t0) / 1e6;
    atomic_store(&stop, true);
    for (int i = 0; i < senders; i++)
        pthread_join(th[i], NULL);
    printf("lease+ack: %d senders (batch %d), %d lanes: %ld jobs in %.2f s = %.0f jobs/s\n",
           senders, batch, lanes, atomic_load(&ops), s, (double)atomic_load(&ops) / s);
    free(sa);
    free(ps);
}

static void run_latency(void)
{
    pthread_t th[1024];
    struct sender_arg *sa = calloc((size_t)senders, sizeof *sa);
    atomic_store(&stop, false);
    for (int i = 0; i < senders; i++) {
        sa[i].long_poll = true;
        pthread_create(&th[i], NULL, sender, &sa[i]);
    }
    uint8_t *payload = calloc(1, (size_t)(payload_len < 8 ? 8 : payload_len));
    int64_t start = clock_mono_us(), interval = 1000000 / (rate > 0 ? rate : 1);
    long n = 0;
    while (clock_mono_us() - start < (int64_t)seconds * 1000000) {
        int64_t due = start + n * interval, now = clock_mono_us();
        if (due > now)
            usleep((useconds_t)(due - now));
        int64_t t = clock_mono_us();
        memcpy(payload, &t, 8);
        /* Each job to a lane with nothing in flight: lanes rotate through a large set. */
        enqueue_one(1 + n % (lanes > 1 ? lanes : 1), payload,
                    (size_t)(payload_len < 8 ? 8 : payload_len));
        n++;
    }
    usleep(500000);
    atomic_store(&stop, true);
    struct lat all = {0};
    for (int i = 0; i < senders; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&all, &sa[i].lat);
    }
    printf("latency: %ld jobs at %ld/s, %d senders long-polling, %d lanes\n", n, rate, senders,
           lanes);
    lat_report("enqueue->lease", &all);
    free(all.us);
    free(payload);
    free(sa);
}

static long arg_long(const char *a, const char *name, long dflt)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && a[n] == '=' ? strtol(a + n + 1, NULL, 10) : dflt;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--target=", 9) == 0)
            target = a + 9;
        else if (strncmp(a, "--mode=", 7) == 0)
            mode = a + 7;
        else if (strcmp(a, "--help") == 0) {
            printf("usage: bench_queue --target=HOST:PORT --mode=enqueue|scale|drain|latency "
                   "[--producers=N] [--senders=N] [--lanes=N] [--seconds=S] [--jobs=N] "
                   "[--batch=N] [--payload=BYTES] [--rate=N]\n");
            return 0;
        } else {
            producers = (int)arg_long(a, "--producers", producers);
            senders = (int)arg_long(a, "--senders", senders);
            lanes = (int)arg_long(a, "--lanes", lanes);
            seconds = (int)arg_long(a, "--seconds", seconds);
            batch = (int)arg_long(a, "--batch", batch);
            payload_len = (int)arg_long(a, "--payload", payload_len);
            jobs_total = arg_long(a, "--jobs", jobs_total);
            rate = arg_long(a, "--rate", rate);
        }
    }
    if (producers < 1 || producers > 1024 || senders < 1 || senders > 1024 || lanes < 1) {
        fprintf(stderr, "bench_queue: producers and senders 1..1024, lanes >= 1\n");
        return 2;
    }
    struct rpc_client_opts co = {0};
    ch = rpc_channel_new(target, &co);
    if (strcmp(mode, "enqueue") == 0) {
        run_enqueue(producers, seconds);
    } else if (strcmp(mode, "scale") == 0) {
        for (int np = 1; np <= producers; np *= 2)
            run_enqueue(np, seconds);
    } else if (strcmp(mode, "drain") == 0) {
        run_drain();
    } else if (strcmp(mode, "latency") == 0) {
        run_latency();
    } else {
        fprintf(stderr, "bench_queue: unknown mode '%s'\n", mode);
        return 2;
    }
    if (atomic_load(&errors))
        printf("errors: %ld\n", atomic_load(&errors));
    rpc_channel_free(ch);
    return 0;
}
