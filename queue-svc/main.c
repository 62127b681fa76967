/* main.c -- queue-svc: settings, start-up (replay before serving), and the drain.
 * Everything else lives in its own file: queue.c (the queue), ratelimit.c (buckets), wal.c
 * (durability), broker.c (threads and long polls), service.c (RPC), qmetrics.c (metrics). */
#include "broker.h"
#include "log.h"
#include "qmetrics.h"
#include "service.h"
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "queue-svc"

struct settings {
    int64_t max_size, max_bytes, lane_max, request_timeout, max_request_timeout;
    char *overflow;
    int64_t dedupe_window, dedupe_max, max_attempts;
    int64_t lease_timeout, max_lease_timeout, max_lease_wait, max_payload, dead_max;
    char *global_rate, *chat_rate, *group_rate;
    int64_t global_burst, chat_burst, group_burst;
    int64_t backoff_base, backoff_max;
    bool fsync;
    int64_t sync_interval, compact_bytes;
    int64_t drain_settle;
    int64_t restart_hold;
    char *data_dir;
};

static struct settings S;

static const struct conf_opt queue_opts_table[] = {
    {"queue-max-size", CONF_INT, &S.max_size, "10000", 1, 10000000,
     "jobs the queue holds (queued + leased); past it Enqueue answers RESOURCE_EXHAUSTED"},
    {"queue-max-bytes", CONF_SIZE, &S.max_bytes, "256MiB", 1 << 20, 1LL << 36,
     "payload bytes the queue holds (queued + leased); past it Enqueue answers "
     "RESOURCE_EXHAUSTED"},
    {"lane-max-size", CONF_INT, &S.lane_max, "100", 1, 1000000,
     "jobs one lane (chat) holds, the seed's figure, now per chat"},
    {"overflow-policy", CONF_ENUM, &S.overflow, "reject", 0, 0,
     "when full: reject the new job (RESOURCE_EXHAUSTED), or drop the oldest queued job "
     "(counted in queue_dropped_total)",
     "reject|drop-oldest"},
    {"request-timeout", CONF_DURATION, &S.request_timeout, "30s", 1000, 86400000,
     "a job's time to live unless it carries timeout_ms; past it the job alone is removed and "
     "counted as expired"},
    {"max-request-timeout", CONF_DURATION, &S.max_request_timeout, "24h", 1000, 604800000,
     "longest timeout_ms an Enqueue may ask for"},
    {"dedupe-window", CONF_DURATION, &S.dedupe_window, "10m", 0, 604800000,
     "a dedupe key seen within this long returns the original job (0 = no dedupe)"},
    {"dedupe-max-keys", CONF_INT, &S.dedupe_max, "100000", 1, 100000000,
     "dedupe keys remembered at most (the oldest are forgotten first)"},
    {"max-attempts", CONF_INT, &S.max_attempts, "5", 1, 1000,
     "leases a job gets; a retry or an expired lease after that makes it a dead letter"},
    {"lease-timeout", CONF_DURATION, &S.lease_timeout, "60s", 100, 86400000,
     "how long a lease lasts unless the Lease asks otherwise; an unanswered job then returns "
     "to its lane"},
    {"max-lease-timeout", CONF_DURATION, &S.max_lease_timeout, "10m", 100, 86400000,
     "longest lease_ms a Lease may ask for"},
    {"max-lease-wait", CONF_DURATION, &S.max_lease_wait, "30s", 0, 600000,
     "longest a Lease waits for a job (long poll) before answering with none"},
    {"drain-settle", CONF_DURATION, &S.drain_settle, "5s", 0, 600000,
     "at SIGTERM, how long to keep taking Ack/Retry/Fail of jobs already leased (no new leases) "
     "before stopping, so a rolling restart does not send them twice; keep below DRAIN_GRACE"},
    {"restart-hold", CONF_DURATION, &S.restart_hold, "5s", 0, 600000,
     "after a start that did not follow a clean stop (a crash, kill -9, OOM): lease nothing for "
     "this long, so senders of the killed process can still Ack the jobs they sent (they come "
     "back ready: leases are not logged) instead of those being sent twice; 0 = no hold"},
    {"max-payload", CONF_SIZE, &S.max_payload, "64KiB", 1024, 4 << 20,
     "largest job payload (Enqueue answers INVALID_ARGUMENT above it)"},
    {"dead-letter-max", CONF_INT, &S.dead_max, "10000", 1, 10000000,
     "dead letters kept; past it the oldest is dropped (counted)"},
    {"global-rate", CONF_STR, &S.global_rate, "30/s", 0, 0,
     "all sends together (Telegram: about 30 messages/s); 0 = unlimited"},
    {"global-burst", CONF_INT, &S.global_burst, "10", 1, 1000000,
     "sends the global bucket allows at once"},
    {"chat-rate", CONF_STR, &S.chat_rate, "1/s", 0, 0,
     "sends to one private chat (Telegram: about 1 message/s)"},
    {"chat-burst", CONF_INT, &S.chat_burst, "3", 1, 1000000,
     "sends one private chat gets at once (Telegram allows short bursts)"},
    {"group-rate", CONF_STR, &S.group_rate, "20/min", 0, 0,
     "sends to one group (Telegram: at most 20 messages/min)"},
    {"group-burst", CONF_INT, &S.group_burst, "1", 1, 1000000,
     "sends one group gets at once (over any minute a group gets at most burst + rate)"},
    {"retry-backoff-base", CONF_DURATION, &S.backoff_base, "1s", 1, 3600000,
     "first backoff after a retry without retry_after (e.g. a 5xx); doubles per attempt, with "
     "jitter"},
    {"retry-backoff-max", CONF_DURATION, &S.backoff_max, "60s", 1, 86400000,
     "longest backoff between attempts"},
    {"fsync", CONF_BOOL, &S.fsync, "on", 0, 0,
     "fsync the write-ahead log before answering (off only for benchmarks: a crash of the "
     "machine may then lose acknowledged jobs)"},
    {"wal-sync-interval", CONF_DURATION, &S.sync_interval, "100ms", 1, 10000,
     "changes nobody waits for (expiries, lease-expiry dead letters) are durable within this"},
    {"wal-compact-bytes", CONF_SIZE, &S.compact_bytes, "64MiB", 4096, 1LL << 36,
     "compact (snapshot + new log generation) when the log passes this"},
    {"data-dir", CONF_STR, &S.data_dir, "data/queue", 0, 0,
     "where the write-ahead log and the snapshot live (a volume that survives restarts)"},
    {0},
};

/* Rates are strings ("30/s"); conf.c checks types, this checks the form, with the same kind
 * of one-line message and exit code. */
static void parse_rate(const char *flag, const char *value, int64_t burst, struct rate *r)
{
    char why[128];
    if (!rate_parse(value, r, why, sizeof why)) {
        char env[64];
        size_t i = 0;
        for (; flag[i] && i < sizeof env - 1; i++)
            env[i] = flag[i] == '-'
                         ? '_'
                         : (char)(flag[i] >= 'a' && flag[i] <= 'z' ? flag[i] - 32 : flag[i]);
        env[i] = '\0';
        fprintf(stderr, "%s: invalid --%s / %s='%s': expected %s\n", PROG, flag, env, value, why);
        exit(2);
    }
    r->burst = burst;
}

/* Readiness: the WAL can be written. The broker is set once the queue is restored. */
static struct broker *_Atomic g_broker;
static bool wal_writable(void *arg, char *why, size_t cap)
{
    return !g_broker || broker_healthy(g_broker, why, cap);
}

int main(int argc, char **argv)
{
    struct svc_common common;
    const struct conf_opt *const tables[] = {
        svc_common_opts(&common, "0.0.0.0:50053", "0.0.0.0:9093"), queue_opts_table, NULL};
    conf_load(tables, argc, argv, PROG,
              "the bounded, durable queue of outbound Telegram requests: per-chat lanes, "
              "Telegram's rate limits, leases, dedupe and dead letters");

    struct broker_opts o = {0};
    o.q = (struct queue_opts){
        .max_jobs = S.max_size,
        .max_bytes = S.max_bytes,
        .lane_max = S.lane_max,
        .drop_oldest = strcmp(S.overflow, "drop-oldest") == 0,
        .default_ttl_ms = S.request_timeout,
        .max_ttl_ms = S.max_request_timeout,
        .dedupe_window_ms = S.dedupe_window,
        .dedupe_max = S.dedupe_max,
        .max_attempts = (uint32_t)S.max_attempts,
        .lease_ms = S.lease_timeout,
        .max_lease_ms = S.max_lease_timeout,
        .max_payload = S.max_payload,
        .dead_max = S.dead_max,
        .backoff_base_ms = S.backoff_base,
        .backoff_max_ms = S.backoff_max,
    };
    parse_rate("global-rate", S.global_rate, S.global_burst, &o.q.global);
    parse_rate("chat-rate", S.chat_rate, S.chat_burst, &o.q.chat);
    parse_rate("group-rate", S.group_rate, S.group_burst, &o.q.group);
    if (S.max_payload > S.max_bytes) {
        fprintf(stderr,
                "%s: invalid --max-payload / MAX_PAYLOAD=%lld: expected at most "
                "QUEUE_MAX_BYTES (%lld)\n",
                PROG, (long long)S.max_payload, (long long)S.max_bytes);
        exit(2);
    }
    if (S.max_payload + 4096 > common.max_recv_msg) {
        fprintf(stderr,
                "%s: invalid --max-payload / MAX_PAYLOAD=%lld: a request carrying it "
                "would not fit MAX_RECV_MSG (%lld)\n",
                PROG, (long long)S.max_payload, (long long)common.max_recv_msg);
        exit(2);
    }
    o.restart_hold_ms = S.restart_hold;
    o.w = (struct wal_opts){
        .dir = S.data_dir,
        .fsync = S.fsync,
        .sync_interval_ms = S.sync_interval,
        .compact_bytes = S.compact_bytes,
    };

    svc_init(PROG, &common);
    conf_log(tables);
    if (!S.fsync)
        LOG_WARN("FSYNC=off: acknowledged jobs survive a crash of queue-svc but not of the "
                 "machine (benchmarks only)");
    struct svc *s = svc_new(PROG, &common);
    qmetrics_init(&o);
    struct qservice_opts so = {
        .max_lease_wait_ms = S.max_lease_wait,
        .drain_settle_ms = S.drain_settle,
        .max_lease_ms = S.max_lease_timeout,
        .reply_max_bytes = (size_t)(common.max_send_msg / 2),
        .max_size = (uint64_t)S.max_size,
    };
    struct qservice *qs = qservice_new(&so);
    qservice_register(qs, svc_rpc(s));
    svc_add_check(s, wal_writable, NULL);

    /* Listen first (health answers NOT_SERVING, the API UNAVAILABLE "starting up"), replay,
     * then serve: a probe sees the process alive while a long log replays. */
    svc_start(s);
    char err[512];
    struct wal_replay_stats st;
    struct broker *b = broker_open(&o, &st, err, sizeof err);
    if (!b) {
        LOG_ERROR("cannot open the queue's data", LF_STR("setting", "DATA_DIR"),
                  LF_STR("dir", S.data_dir), LF_STR("error", err));
        svc_drain(s);
        svc_free(s);
        qservice_free(qs);
        conf_free(tables);
        return 1;
    }
    qmetrics_watch(b);
    qservice_attach(qs, b);
    g_broker = b;
    svc_set_ready(s, true, NULL);

    svc_wait(s);
    svc_drain(s); /* answers waiting Leases, lets calls in flight finish */
    qmetrics_unwatch();
    g_broker = NULL;
    broker_close(b); /* last compaction, WAL flushed and closed */
    svc_free(s);
    qservice_free(qs);
    LOG_INFO("stopped");
    conf_free(tables);
    return 0;
}
