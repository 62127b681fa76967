/* deps.c -- channels, breakers, retry budgets and the health probe thread.
 *
 * Retry budget: each call earns 0.1 retry tokens (at most 10 banked); a retry spends one. So
 * retries add at most ~10% load on a struggling service, never a retry storm. Only UNAVAILABLE
 * is retried, and only for calls marked idempotent. */
#include "deps.h"
#include "breaker.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "readcache.h"

#include "grpc/health/v1/health.pb-c.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dep_names[DEP_N] = {"session", "cache", "queue"};
static const char *const dep_services[DEP_N] = {"engbot.session.v1.SessionService",
                                                "engbot.cache.v1.CacheService",
                                                "engbot.queue.v1.QueueService"};
static const char *const track_names[TRACK_N] = {"stable", "canary"};

struct track {
    struct rpc_channel *ch; /* NULL: no such track */
    struct breaker br;
    struct metric *up; /* gauge: 1 closed, 0.5 half-open, 0 open */
    struct metric *calls_ok, *calls_fail;
    /* Under the dep's mu: the first failure of the current run of failures (0: the last
     * outcome was a success), and down_since (deps_down_since) once that run opened the
     * breaker. */
    int64_t streak_start, down_since;
    struct readcache *reads; /* DEPS_CACHED answers; NULL: none */
};

struct dep {
    bool enabled;
    int64_t deadline_ms;
    struct track t[TRACK_N];
    pthread_mutex_t mu;
    double budget;
    struct metric *degraded, *retries, *latency;
    struct metric *read_hits, *read_misses;
};

struct deps {
    struct deps_opts o;
    struct dep d[DEP_N];
    pthread_t prober;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

const char *dep_name(enum dep_id id)
{
    return dep_names[id];
}

bool deps_code_is_failure(int code)
{
    return code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED || code == RPC_INTERNAL ||
           code == RPC_UNKNOWN || code == RPC_CANCELLED || code == RPC_UNIMPLEMENTED;
}

struct deps *deps_new(const struct deps_opts *o)
{
    struct deps *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    d->o = *o;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    struct metric_family *up = metrics_family(
        "engbot_gateway_dependency_up",
        "Whether a dependency is usable: 1 breaker closed, 0.5 half-open (probing), 0 open.",
        METRIC_GAUGE, "dependency,track", NULL, 0);
    struct metric_family *calls = metrics_family(
        "engbot_gateway_dependency_calls_total",
        "Calls to each dependency by track (stable/canary) and result (ok, or failed: no answer).",
        METRIC_COUNTER, "dependency,track,result", NULL, 0);
    struct metric_family *deg =
        metrics_family("engbot_gateway_degraded_total",
                       "Answers given in degraded mode because a dependency was unusable.",
                       METRIC_COUNTER, "dependency", NULL, 0);
    struct metric_family *ret = metrics_family("engbot_gateway_dependency_retries_total",
                                               "Retries of idempotent calls (within the budget).",
                                               METRIC_COUNTER, "dependency", NULL, 0);
    struct metric_family *lat = metrics_family(
        "engbot_gateway_dependency_call_seconds", "Latency of calls to each dependency.",
        METRIC_HISTOGRAM, "dependency", metrics_latency_buckets, metrics_latency_nbuckets);
    struct metric_family *reads = metrics_family(
        "engbot_gateway_read_cache_total",
        "Cacheable reads (catalogue pages and searches) answered from the gateway's read cache "
        "(hit) or by a call (miss).",
        METRIC_COUNTER, "dependency,result", NULL, 0);
    struct rpc_client_opts co = {
        .keepalive_time_ms = 30000,
        .keepalive_timeout_ms = 10000,
        .max_recv_msg = 16 << 20,
        .connect_backoff_max_ms = o->reconnect_max_ms,
    };
    for (int i = 0; i < DEP_N; i++) {
        struct dep *p = &d->d[i];
        p->enabled = o->enabled[i];
        p->deadline_ms = o->deadline_ms[i];
        p->budget = 10;
        pthread_mutex_init(&p->mu, NULL);
        p->degraded = metrics_child(deg, dep_names[i]);
        p->retries = metrics_child(ret, dep_names[i]);
        p->latency = metrics_child(lat, dep_names[i]);
        if (o->read_cache_ttl_ms[i] > 0) {
            p->read_hits = metrics_child(reads, dep_names[i], "hit");
            p->read_misses = metrics_child(reads, dep_names[i], "miss");
        }
        for (int t = 0; t < TRACK_N; t++) {
            struct track *tr = &p->t[t];
            const char *addr = t == TRACK_STABLE ? o->addr[i] : o->canary_addr[i];
            breaker_init(&tr->br, o->breaker_threshold, o->breaker_open_ms, o->breaker_open_max_ms);
            if (!p->enabled || !addr || !*addr)
                continue;
            co.round_robin = strncmp(addr, "dns:", 4) == 0;
            tr->ch = rpc_channel_new(addr, &co);
            tr->up = metrics_child(up, dep_names[i], track_names[t]);
            metric_set(tr->up, 1);
            tr->calls_ok = metrics_child(calls, dep_names[i], track_names[t], "ok");
            tr->calls_fail = metrics_child(calls, dep_names[i], track_names[t], "failed");
            if (o->read_cache_ttl_ms[i] > 0)
                tr->reads = readcache_new(o->read_cache_ttl_ms[i],
                                          o->read_cache_bytes ? o->read_cache_bytes : 4u << 20);
        }
    }
    return d;
}

static void update_gauge(struct track *tr)
{
    if (!tr->up)
        return;
    enum breaker_state s = breaker_state(&tr->br);
    metric_set(tr->up, s == BREAKER_CLOSED ? 1 : s == BREAKER_HALF_OPEN ? 0.5 : 0);
}

/* Keeps the down-since clock of a track (see deps_down_since) after one outcome. */
static void track_down(struct dep *p, struct track *tr, bool failed)
{
    enum breaker_state s = breaker_state(&tr->br);
    pthread_mutex_lock(&p->mu);
    if (!failed) {
        tr->streak_start = 0;
        tr->down_since = 0;
    } else {
        if (!tr->streak_start)
            tr->streak_start = clock_mono_ms();
        if (s != BREAKER_CLOSED && !tr->down_since)
            tr->down_since = tr->streak_start;
    }
    pthread_mutex_unlock(&p->mu);
}

void deps_report(struct deps *d, enum dep_id id, enum dep_track t, int code)
{
    struct track *tr = &d->d[id].t[t];
    if (deps_code_is_failure(code)) {
        enum breaker_state before = breaker_state(&tr->br);
        breaker_failure(&tr->br);
        if (tr->calls_fail)
            metric_inc(tr->calls_fail);
        if (before == BREAKER_CLOSED && breaker_state(&tr->br) == BREAKER_OPEN)
            LOG_WARN("dependency unavailable: circuit open", LF_STR("dependency", dep_names[id]),
                     LF_STR("track", track_names[t]), LF_STR("code", rpc_code_name(code)));
        track_down(&d->d[id], tr, true);
    } else {
        enum breaker_state before = breaker_state(&tr->br);
        breaker_success(&tr->br);
        if (tr->calls_ok)
            metric_inc(tr->calls_ok);
        if (before != BREAKER_CLOSED)
            LOG_INFO("dependency recovered: circuit closed", LF_STR("dependency", dep_names[id]),
                     LF_STR("track", track_names[t]));
        track_down(&d->d[id], tr, false);
    }
    update_gauge(tr);
}

int64_t deps_down_since(struct deps *d, enum dep_id id, enum dep_track t)
{
    struct dep *p = &d->d[id];
    pthread_mutex_lock(&p->mu);
    int64_t since = p->t[t].down_since;
    pthread_mutex_unlock(&p->mu);
    return since;
}

/* The probe thread: an open breaker past its period gets a health check as its probe. */
static void *prober(void *arg)
{
    struct deps *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        pthread_mutex_unlock(&d->mu);
        for (int i = 0; i < DEP_N; i++) {
            for (int t = 0; t < TRACK_N; t++) {
                struct track *tr = &d->d[i].t[t];
                if (!tr->ch)
                    continue;
                if (breaker_state(&tr->br) == BREAKER_CLOSED) {
                    /* No traffic must not hide a dead service: a channel that cannot connect
                     * counts as a failed call, so the breaker (and /readyz) follow it. */
                    if (!rpc_channel_ready(tr->ch))
                        deps_report(d, (enum dep_id)i, (enum dep_track)t, RPC_UNAVAILABLE);
                    else
                        update_gauge(tr);
                    continue;
                }
                if (!breaker_allow(&tr->br))
                    continue;
                Grpc__Health__V1__HealthCheckRequest req =
                    GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
                req.service = (char *)dep_services[i];
                ProtobufCMessage *resp = NULL;
                struct rpc_status st;
                int code = rpc_unary(tr->ch, "/grpc.health.v1.Health/Check", &req.base,
                                     &grpc__health__v1__health_check_response__descriptor, &resp,
                                     1000, RPC_CALL_WAIT_FOR_READY, NULL, 0, &st);
                if (code == RPC_OK &&
                    ((Grpc__Health__V1__HealthCheckResponse *)resp)->status !=
                        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
                    code = RPC_UNAVAILABLE; /* up but not serving (starting or draining) */
                if (resp)
                    protobuf_c_message_free_unpacked(resp, NULL);
                deps_report(d, (enum dep_id)i, (enum dep_track)t,
                            code == RPC_OK ? RPC_OK : RPC_UNAVAILABLE);
            }
        }
        pthread_mutex_lock(&d->mu);
        if (d->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

void deps_start(struct deps *d)
{
    if (pthread_create(&d->prober, NULL, prober, d) != 0)
        abort();
    d->started = true;
}

void deps_free(struct deps *d)
{
    if (!d)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->prober, NULL);
    }
    for (int i = 0; i < DEP_N; i++) {
        for (int t = 0; t < TRACK_N; t++) {
            rpc_channel_free(d->d[i].t[t].ch);
            breaker_destroy(&d->d[i].t[t].br);
            readcache_free(d->d[i].t[t].reads);
        }
        pthread_mutex_destroy(&d->d[i].mu);
    }
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

bool deps_enabled(const struct deps *d, enum dep_id id)
{
    return d->d[id].enabled;
}

bool deps_has_canary(const struct deps *d, enum dep_id id)
{
    return d->d[id].t[TRACK_CANARY].ch != NULL;
}

bool deps_chat_is_canary(const struct deps *d, int64_t chat_id)
{
    return chat_id != 0 && canary_selects(&d->o.canary, chat_id);
}

enum dep_track deps_track(const struct deps *d, enum dep_id id, int64_t chat_id)
{
    if (deps_has_canary(d, id) && deps_chat_is_canary(d, chat_id))
        return TRACK_CANARY;
    return TRACK_STABLE;
}

struct rpc_channel *deps_channel(struct deps *d, enum dep_id id, enum dep_track tr)
{
    return d->d[id].t[tr].ch;
}

int64_t deps_deadline_ms(const struct deps *d, enum dep_id id)
{
    return d->d[id].deadline_ms;
}

/* deps_allow, with the flags: DEPS_WHEN_UP refuses unless the breaker is closed and the
 * channel is not in a connection failure. */
static bool allow(struct deps *d, enum dep_id id, enum dep_track t, unsigned flags,
                  struct rpc_status *st)
{
    struct track *tr = &d->d[id].t[t];
    if (!d->d[id].enabled || !tr->ch) {
        st->code = RPC_UNAVAILABLE;
        snprintf(st->message, sizeof st->message, "%s: switched off", dep_names[id]);
        return false;
    }
    if ((flags & DEPS_WHEN_UP) ? breaker_state(&tr->br) != BREAKER_CLOSED
                               : !breaker_allow(&tr->br)) {
        st->code = RPC_UNAVAILABLE;
        snprintf(st->message, sizeof st->message, "%s (%s): circuit open", dep_names[id],
                 track_names[t]);
        return false;
    }
    if ((flags & DEPS_WHEN_UP) && !rpc_channel_ready(tr->ch)) {
        /* The last connection attempt failed: a wait-for-ready call would sit out its
         * deadline and leave its outcome unknown without ever being sent. */
        st->code = RPC_UNAVAILABLE;
        snprintf(st->message, sizeof st->message, "%s (%s): not connected", dep_names[id],
                 track_names[t]);
        return false;
    }
    return true;
}

bool deps_allow(struct deps *d, enum dep_id id, enum dep_track t, struct rpc_status *st)
{
    return allow(d, id, t, 0, st);
}

static bool take_retry(struct dep *p)
{
    bool ok = false;
    pthread_mutex_lock(&p->mu);
    if (p->budget >= 1) {
        p->budget -= 1;
        ok = true;
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void earn(struct dep *p)
{
    pthread_mutex_lock(&p->mu);
    p->budget += 0.1;
    if (p->budget > 10)
        p->budget = 10;
    pthread_mutex_unlock(&p->mu);
}

/* The read-cache key of a call: the method, a NUL, then the packed request. Returns the length;
 * *key is buf when it fits, else malloc'd (the caller frees it when it is not buf). */
static size_t read_key(const char *method, const ProtobufCMessage *req, uint8_t *buf, size_t cap,
                       uint8_t **key)
{
    size_t ml = strlen(method) + 1, n = ml + protobuf_c_message_get_packed_size(req);
    *key = n <= cap ? buf : malloc(n);
    if (!*key)
        abort();
    memcpy(*key, method, ml);
    protobuf_c_message_pack(req, *key + ml);
    return n;
}

/* DEPS_CACHED: the answer from the track's read cache, or false. */
static bool cached_answer(struct dep *p, struct track *tr, const uint8_t *key, size_t klen,
                          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                          struct rpc_status *st)
{
    uint8_t *val;
    size_t vlen;
    if (!readcache_get(tr->reads, key, klen, clock_mono_ms(), &val, &vlen))
        return false;
    *resp = protobuf_c_message_unpack(resp_desc, NULL, vlen, val);
    free(val);
    if (!*resp)
        return false; /* cannot happen (we packed it); call instead */
    metric_inc(p->read_hits);
    st->code = RPC_OK;
    st->message[0] = '\0';
    st->ntrailers = 0;
    return true;
}

static void keep_answer(struct track *tr, const uint8_t *key, size_t klen,
                        const ProtobufCMessage *resp)
{
    uint8_t stackbuf[4096], *val = stackbuf;
    size_t vlen = protobuf_c_message_get_packed_size(resp);
    if (vlen > sizeof stackbuf && !(val = malloc(vlen)))
        abort();
    protobuf_c_message_pack(resp, val);
    readcache_put(tr->reads, key, klen, val, vlen, clock_mono_ms());
    if (val != stackbuf)
        free(val);
}

void deps_forget_reads(struct deps *d, enum dep_id id)
{
    for (int t = 0; t < TRACK_N; t++)
        if (d->d[id].t[t].reads)
            readcache_clear(d->d[id].t[t].reads);
}

/* call() without the read cache. */
static int call_remote(struct deps *d, enum dep_id id, enum dep_track t, const char *path,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                       ProtobufCMessage **resp, unsigned flags, struct rpc_status *st, bool *sent)
{
    struct dep *p = &d->d[id];
    earn(p);
    for (int attempt = 0;; attempt++) {
        if (!allow(d, id, t, flags, st))
            return st->code;
        if (sent)
            *sent = true;
        int64_t t0 = clock_mono_us();
        /* Wait-for-ready, bounded by the deadline: a call made while the channel reconnects
         * (a service just restarted) waits for it instead of failing at once. A dead service
         * costs a deadline per call until the breaker opens; then calls fail at once. */
        int code = rpc_unary(p->t[t].ch, path, req, resp_desc, resp, p->deadline_ms,
                             RPC_CALL_WAIT_FOR_READY, NULL, 0, st);
        metric_observe(p->latency, (double)(clock_mono_us() - t0) / 1e6);
        deps_report(d, id, t, code);
        if (code != RPC_UNAVAILABLE || !(flags & DEPS_IDEMPOTENT) || attempt >= d->o.retries ||
            !take_retry(p))
            return code;
        metric_inc(p->retries);
    }
}

/* The one call path: read cache, deadline, breaker, retry budget, metrics. *sent (may be
 * NULL) tells whether any attempt left this process. */
static int call(struct deps *d, enum dep_id id, enum dep_track t, const char *method,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                ProtobufCMessage **resp, unsigned flags, struct rpc_status *st, bool *sent)
{
    struct dep *p = &d->d[id];
    char path[128];
    snprintf(path, sizeof path, "/%s/%s", dep_services[id], method);
    *resp = NULL;
    if (sent)
        *sent = false;
    struct track *tr = &p->t[t];
    uint8_t keybuf[512], *key = NULL;
    size_t klen = 0;
    if ((flags & DEPS_CACHED) && tr->reads && p->enabled) {
        klen = read_key(method, req, keybuf, sizeof keybuf, &key);
        if (cached_answer(p, tr, key, klen, resp_desc, resp, st)) {
            if (key != keybuf)
                free(key);
            return RPC_OK;
        }
        metric_inc(p->read_misses);
    }
    int code = call_remote(d, id, t, path, req, resp_desc, resp, flags, st, sent);
    if (key) {
        if (code == RPC_OK)
            keep_answer(tr, key, klen, *resp);
        if (key != keybuf)
            free(key);
    }
    return code;
}

int deps_unary(struct deps *d, enum dep_id id, int64_t chat_id, const char *method,
               const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
               ProtobufCMessage **resp, unsigned flags, struct rpc_status *st)
{
    return call(d, id, deps_track(d, id, chat_id), method, req, resp_desc, resp, flags, st, NULL);
}

int deps_unary_sent(struct deps *d, enum dep_id id, int64_t chat_id, const char *method,
                    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                    ProtobufCMessage **resp, unsigned flags, struct rpc_status *st, bool *sent)
{
    return call(d, id, deps_track(d, id, chat_id), method, req, resp_desc, resp, flags, st, sent);
}

int deps_unary_on(struct deps *d, enum dep_id id, enum dep_track t, const char *method,
                  const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                  ProtobufCMessage **resp, unsigned flags, struct rpc_status *st)
{
    return call(d, id, t, method, req, resp_desc, resp, flags, st, NULL);
}

bool deps_up(struct deps *d, enum dep_id id)
{
    struct track *tr = &d->d[id].t[TRACK_STABLE];
    return d->d[id].enabled && tr->ch && breaker_state(&tr->br) != BREAKER_OPEN;
}

void deps_degraded(struct deps *d, enum dep_id id)
{
    metric_inc(d->d[id].degraded);
}

bool deps_describe(struct deps *d, char *buf, size_t cap)
{
    size_t o = 0;
    bool all = true;
    buf[0] = '\0';
    for (int i = 0; i < DEP_N; i++) {
        for (int t = 0; t < TRACK_N; t++) {
            struct track *tr = &d->d[i].t[t];
            const char *state;
            if (!d->d[i].enabled) {
                if (t == TRACK_CANARY)
                    continue;
                state = "off";
            } else if (!tr->ch) {
                continue;
            } else {
                enum breaker_state s = breaker_state(&tr->br);
                state = s == BREAKER_CLOSED ? "up" : s == BREAKER_OPEN ? "down" : "probing";
                if (s != BREAKER_CLOSED)
                    all = false;
            }
            int n = snprintf(buf + o, cap - o, "%s%s%s=%s", o ? " " : "", dep_names[i],
                             t == TRACK_CANARY ? "-canary" : "", state);
            if (n > 0 && (size_t)n < cap - o)
                o += (size_t)n;
        }
    }
    return all;
}
