/* main.c -- session-svc: settings, start-up, load, serve, drain, final snapshot. Only wiring:
 * the table is store.c, durability persist.c (file contents: records.c), cleanup sweeper.c,
 * the API service.c. */
#include "clock.h"
#include "conf.h"
#include "durable.h"
#include "log.h"
#include "metrics.h"
#include "persist.h"
#include "service.h"
#include "store.h"
#include "svc.h"
#include "sweeper.h"

#include <stdio.h>
#include <stdlib.h>

static struct {
    char *data_dir, *restore_from;
    int64_t inactivity, cleanup, max_sessions, max_state_keys, max_state_bytes, max_text_bytes;
    int64_t snapshot_interval, sync_interval, compact_log_bytes;
} cfg;

static const struct conf_opt opts[] = {
    {"data-dir", CONF_STR, &cfg.data_dir, "data", 0, 0,
     "directory for the snapshot, the change logs and backups/ (created if missing; must be "
     "writable)"},
    {"restore-from", CONF_STR, &cfg.restore_from, NULL, 0, 0,
     "start from this backup file instead of DATA_DIR's state (the replaced state is kept as "
     "*.pre-restore-*); ignored once the data directory holds this restore"},
    {"inactivity-threshold", CONF_DURATION, &cfg.inactivity, "1h", 1000, 30LL * 86400000,
     "a session idle longer than this is expired (NOT_FOUND, removed by the cleanup)"},
    {"cleanup-interval", CONF_DURATION, &cfg.cleanup, "10m", 100, 86400000,
     "how often the cleanup removes expired sessions"},
    {"max-sessions", CONF_INT, &cfg.max_sessions, "1000000", 1, 100000000,
     "past this many sessions the least recently active one is evicted"},
    {"max-state-keys", CONF_INT, &cfg.max_state_keys, "32", 0, 4096,
     "keys in one session's key/value state"},
    {"max-state-bytes", CONF_SIZE, &cfg.max_state_bytes, "4KiB", 0, 1 << 20,
     "bytes of keys plus values in one session's key/value state"},
    {"max-text-bytes", CONF_SIZE, &cfg.max_text_bytes, "1KiB", 16, 64 * 1024,
     "longest folder_id or last_search"},
    {"snapshot-interval", CONF_DURATION, &cfg.snapshot_interval, "5m", 1000, 86400000,
     "how often a snapshot of every session is written (the change log is compacted into it)"},
    {"sync-interval", CONF_DURATION, &cfg.sync_interval, "1s", 1, 60000,
     "changes are fsynced to the change log at least this often (group commit): the most a "
     "kill -9 or power loss can lose"},
    {"compact-log-bytes", CONF_SIZE, &cfg.compact_log_bytes, "64MiB", 1 << 20, 1LL << 34,
     "write a snapshot early when the change log grows past this"},
    {0},
};

static double active_sessions(void *arg)
{
    return (double)store_count(arg);
}

/* Readiness: the change log can be written (not a full or failing disk). */
static bool log_writable(void *arg, char *why, size_t cap)
{
    struct session_service *ss = arg;
    return persist_healthy(ss->persist, why, cap);
}

int main(int argc, char **argv)
{
    struct svc_common common;
    const struct conf_opt *const tables[] = {
        svc_common_opts(&common, "0.0.0.0:50051", "0.0.0.0:9091"), opts, NULL};
    conf_load(tables, argc, argv, "session-svc",
              "per-chat sessions with inactivity cleanup, eviction, compare-and-swap and durable "
              "state");
    svc_init("session-svc", &common);
    conf_log(tables);

    char err[1024];
    if (durable_check_dir(cfg.data_dir, err, sizeof err) < 0) {
        LOG_ERROR("cannot start: DATA_DIR is not usable", LF_STR("setting", "DATA_DIR"),
                  LF_STR("error", err));
        conf_free(tables);
        return 1;
    }

    struct store_opts so = {
        .inactivity_ms = cfg.inactivity,
        .max_sessions = (uint64_t)cfg.max_sessions,
        .max_state_keys = (uint32_t)cfg.max_state_keys,
        .max_state_bytes = (uint32_t)cfg.max_state_bytes,
        .m_created = metrics_counter("engbot_sessions_created_total", "Sessions created."),
        .m_expired = metrics_counter("engbot_sessions_expired_total",
                                     "Sessions removed after INACTIVITY_THRESHOLD of inactivity."),
        .m_evicted = metrics_counter("engbot_sessions_evicted_total",
                                     "Least recently active sessions evicted at MAX_SESSIONS."),
        .m_deleted =
            metrics_counter("engbot_sessions_deleted_total", "Sessions removed by DeleteSession."),
    };
    struct store *st = store_new(&so);
    metrics_gauge_fn("engbot_sessions_active", "Sessions in memory now.", active_sessions, st);

    struct svc *s = svc_new("session-svc", &common);
    static struct session_service ss;
    ss.st = st;
    ss.started_mono_ms = clock_mono_ms();
    ss.lim = (struct session_limits){
        .inactivity_ms = cfg.inactivity,
        .cleanup_ms = cfg.cleanup,
        .max_sessions = (uint64_t)cfg.max_sessions,
        .max_state_keys = (uint32_t)cfg.max_state_keys,
        .max_state_bytes = (uint32_t)cfg.max_state_bytes,
        .max_text_bytes = (uint32_t)cfg.max_text_bytes,
    };
    session_service_register(svc_rpc(s), &ss);
    svc_add_check(s, log_writable, &ss);
    svc_start(s);
    svc_set_ready(s, false, "loading sessions");

    struct persist_opts po = {
        .data_dir = cfg.data_dir,
        .restore_from = cfg.restore_from,
        .sync_interval_ms = cfg.sync_interval,
        .snapshot_interval_ms = cfg.snapshot_interval,
        .compact_log_bytes = cfg.compact_log_bytes,
    };
    struct persist_load_info info;
    ss.persist = persist_open(&po, st, &info, err, sizeof err);
    if (!ss.persist) {
        LOG_ERROR(
            "cannot start: the session state cannot be loaded or saved",
            LF_STR("setting", cfg.restore_from && *cfg.restore_from ? "RESTORE_FROM" : "DATA_DIR"),
            LF_STR("error", err));
        svc_drain(s);
        svc_free(s);
        store_free(st);
        conf_free(tables);
        return 1;
    }
    LOG_INFO("sessions loaded", LF_U64("sessions", info.sessions),
             LF_U64("snapshot_records", info.snapshot_records),
             LF_U64("log_records", info.log_records), LF_U64("damaged_files", info.damaged_files),
             LF_BOOL("restored", info.restored), LF_BOOL("used_previous_snapshot", info.used_prev),
             LF_I64("ms", info.duration_ms));
    persist_start(ss.persist);
    ss.sweeper = sweeper_start(st, cfg.cleanup);
    svc_set_ready(s, true, NULL);

    svc_wait(s);
    svc_drain(s);
    sweeper_stop(ss.sweeper);
    ss.sweeper = NULL;
    int rc = 0;
    if (persist_close(ss.persist, err, sizeof err) < 0) {
        LOG_ERROR("final state could not be saved", LF_STR("error", err));
        rc = 1;
    }
    ss.persist = NULL;
    svc_free(s);
    LOG_INFO("stopped", LF_U64("sessions", store_count(st)));
    store_free(st);
    conf_free(tables);
    return rc;
}
