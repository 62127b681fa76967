/* fuzz_queue_rpc.c -- libFuzzer target for QueueService's RPC handlers: sequences of arbitrary
 * requests (see tests/lib/fuzz_rpc.h) against one queue with small bounds and a WAL in a
 * scratch directory (fsync off), so overflow, dedupe, leases, retries, dead letters and purges
 * are reached. Lease waits are capped at a few milliseconds. */
#include "broker.h"
#include "engbot/queue/v1/queue.pb-c.h"
#include "fuzz_rpc.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>

static struct qservice *qs;

static void setup(void)
{
    static char dir[] = "/tmp/engbot-fuzz-queue-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    struct broker_opts o = {0};
    o.q = (struct queue_opts){
        .max_jobs = 64, .max_bytes = 1 << 20, .lane_max = 8, .default_ttl_ms = 30000,
        .max_ttl_ms = 3600000, .dedupe_window_ms = 600000, .dedupe_max = 128,
        .max_attempts = 3, .lease_ms = 30000, .max_lease_ms = 600000, .max_payload = 4096,
        .dead_max = 32, .backoff_base_ms = 100, .backoff_max_ms = 10000, .seed = 1,
    };
    char why[128];
    rate_parse("30/s", &o.q.global, why, sizeof why);
    rate_parse("1/s", &o.q.chat, why, sizeof why);
    rate_parse("20/min", &o.q.group, why, sizeof why);
    o.q.global.burst = 10;
    o.q.chat.burst = 3;
    o.q.group.burst = 1;
    o.w = (struct wal_opts){.dir = dir, .fsync = false, .sync_interval_ms = 10,
                            .compact_bytes = 1 << 20};
    struct wal_replay_stats st;
    char err[256];
    struct broker *b = broker_open(&o, &st, err, sizeof err);
    if (!b) {
        fprintf(stderr, "fuzz_queue_rpc: %s\n", err);
        abort();
    }
    struct qservice_opts so = {.max_lease_wait_ms = 2, .max_lease_ms = 600000,
                               .reply_max_bytes = 1 << 20, .max_size = 64};
    qs = qservice_new(&so);
    qservice_attach(qs, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!qs)
        setup();
    size_t n;
    const struct rpc_method *m = qservice_methods(&n);
    fuzz_rpc_run(&engbot__queue__v1__queue_service__descriptor, m, n, qs, NULL, data, size);
    return 0;
}
