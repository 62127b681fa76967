/* outbox.c -- queue-svc first, holding a reply (back-pressure) while queue-svc is full or
 * briefly down; direct sends through the limiter only past QUEUE_FALLBACK_AFTER (outbox.h has
 * the rules and why). */
#include "outbox.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include "engbot/queue/v1/queue.pb-c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Backoff between Enqueue attempts of one reply: from RETRY_MIN_MS, doubling, at most
 * RETRY_MAX_MS, with +-25 % jitter. A held reply costs one call per backoff (none while the
 * breaker is open), and at most WORKERS replies are held at once (one per worker), so the load
 * on a struggling queue-svc stays small; the cap keeps recovery quick once it has room. */
#define RETRY_MIN_MS 50
#define RETRY_MAX_MS 500
/* Repeated warnings (queue full, unknown outcomes) are logged at most this often, with the
 * number of occurrences since the last line. */
#define LOG_EVERY_MS 10000

enum { W_FULL, W_UNKNOWN, W_DOWN, W_N };
static const char *const wait_names[W_N] = {"queue_full", "unknown", "unavailable"};

/* A warning logged at most every LOG_EVERY_MS. */
struct ratelog {
    pthread_mutex_t mu;
    int64_t last_ms;
    uint64_t since; /* occurrences since the last line */
};

struct outbox {
    struct outbox_opts o;
    struct metric *queued, *duplicate, *direct, *dropped;
    struct metric *retries[W_N];
    atomic_int nwaiting;
    atomic_bool fallback_on;
    _Atomic int64_t stop_at; /* drain deadline (clock_mono_ms); INT64_MAX while serving */
    struct ratelog log[W_N];
};

/* Has the stable queue-svc been down long enough for direct sends? */
static bool fallback_due(struct outbox *o, enum dep_track t, int64_t *down_ms)
{
    int64_t since = deps_down_since(o->o.deps, DEP_QUEUE, t);
    *down_ms = since ? clock_mono_ms() - since : 0;
    return since && *down_ms >= o->o.fallback_after_ms;
}

/* Scrape-time gauges (the HTTP thread; the outbox outlives the HTTP server). */
static double gauge_waiting(void *arg)
{
    struct outbox *o = arg;
    return atomic_load(&o->nwaiting);
}

static double gauge_fallback(void *arg)
{
    struct outbox *o = arg;
    int64_t down_ms;
    return o->o.use_queue && fallback_due(o, TRACK_STABLE, &down_ms);
}

struct outbox *outbox_new(const struct outbox_opts *o)
{
    struct outbox *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    b->o = *o;
    atomic_store(&b->stop_at, INT64_MAX);
    struct metric_family *f = metrics_family(
        "engbot_gateway_outbox_total",
        "Replies handed on, by path: queued (queue-svc), duplicate (already queued by an earlier "
        "delivery or attempt), direct (sent at once: queue-svc down past QUEUE_FALLBACK_AFTER, "
        "or off), dropped (not handed on: the update fails and is delivered again).",
        METRIC_COUNTER, "path", NULL, 0);
    b->queued = metrics_child(f, "queued");
    b->duplicate = metrics_child(f, "duplicate");
    b->direct = metrics_child(f, "direct");
    b->dropped = metrics_child(f, "dropped");
    struct metric_family *r = metrics_family(
        "engbot_gateway_enqueue_retries_total",
        "Enqueue attempts retried (the reply held, never sent directly), by reason: queue_full "
        "(RESOURCE_EXHAUSTED: back-pressure), unknown (a call that went out got no answer: it "
        "may be queued), unavailable (breaker open, within QUEUE_FALLBACK_AFTER).",
        METRIC_COUNTER, "reason", NULL, 0);
    for (int i = 0; i < W_N; i++) {
        b->retries[i] = metrics_child(r, wait_names[i]);
        pthread_mutex_init(&b->log[i].mu, NULL);
    }
    metrics_gauge_fn("engbot_gateway_outbox_waiting",
                     "Replies waiting for queue-svc now (their updates are not confirmed until "
                     "they are queued).",
                     gauge_waiting, b);
    metrics_gauge_fn("engbot_gateway_queue_fallback",
                     "1 while queue-svc has been down longer than QUEUE_FALLBACK_AFTER: replies "
                     "that never reached it go out directly.",
                     gauge_fallback, b);
    return b;
}

void outbox_free(struct outbox *o)
{
    if (!o)
        return;
    for (int i = 0; i < W_N; i++)
        pthread_mutex_destroy(&o->log[i].mu);
    free(o);
}

void outbox_drain(struct outbox *o, int64_t deadline_ms)
{
    atomic_store(&o->stop_at, deadline_ms);
}

/* True when a line is due; *n gets the occurrences it covers. */
static bool ratelog_due(struct ratelog *r, uint64_t *n)
{
    int64_t now = clock_mono_ms();
    bool due = false;
    pthread_mutex_lock(&r->mu);
    r->since++;
    if (!r->last_ms || now - r->last_ms >= LOG_EVERY_MS) {
        due = true;
        *n = r->since;
        r->since = 0;
        r->last_ms = now;
    }
    pthread_mutex_unlock(&r->mu);
    return due;
}

static int lane_kind(enum tg_chat_type t, const char *method)
{
    if (strcmp(method, "answerCallbackQuery") == 0)
        return ENGBOT__QUEUE__V1__LANE_KIND__LANE_KIND_UNLIMITED;
    if (t == TG_CHAT_GROUP || t == TG_CHAT_SUPERGROUP)
        return ENGBOT__QUEUE__V1__LANE_KIND__LANE_KIND_GROUP;
    return ENGBOT__QUEUE__V1__LANE_KIND__LANE_KIND_PRIVATE;
}

/* Sends now, obeying short retry_afters and backing off on 5xx a few times. */
static int send_direct(struct outbox *o, int64_t chat_id, const char *method, const char *payload)
{
    if (!limiter_acquire(o->o.limiter)) {
        metric_inc(o->dropped);
        LOG_WARN("direct send dropped: the in-process limiter is saturated",
                 LF_STR("method", method), LF_I64("chat_id", chat_id));
        return -1;
    }
    char *owned = NULL;
    const char *body = payload;
    int rc = -1;
    struct send_result r = {0};
    for (int attempt = 0; attempt < 4; attempt++) {
        sender_perform(o->o.sender, chat_id, method, body, strlen(body), &r);
        if (r.o == SEND_OK) {
            rc = 0;
            break;
        }
        if (r.o == SEND_FAIL)
            break;
        if (r.o == SEND_MIGRATE) {
            free(owned);
            owned = tg_json_with_chat_id(body, strlen(body), r.new_chat_id);
            if (!owned)
                break;
            body = owned;
            chat_id = r.new_chat_id;
            continue;
        }
        int64_t wait = r.o == SEND_RETRY_AFTER ? r.retry_after_ms : 200LL << attempt;
        if (wait > o->o.direct_max_wait_ms)
            break;
        usleep((useconds_t)(wait * 1000));
    }
    limiter_release(o->o.limiter);
    free(owned);
    if (rc < 0 && r.o == SEND_FAIL) {
        /* Telegram refused it for good (blocked, bad request): handed on, just not wanted.
         * Retrying the update would get the same answer. */
        LOG_WARN("direct send refused by Telegram", LF_STR("method", method),
                 LF_I64("chat_id", chat_id), LF_STR("error", r.err));
        return 0;
    }
    if (rc == 0) {
        metric_inc(o->direct);
    } else {
        metric_inc(o->dropped);
        LOG_WARN("direct send failed", LF_STR("method", method), LF_I64("chat_id", chat_id),
                 LF_STR("error", r.err));
    }
    return rc;
}

/* Sleeps about ms (with jitter), in short steps so that the drain deadline is kept. Returns
 * false once the drain deadline has passed. */
static bool backoff_sleep(struct outbox *o, int64_t ms)
{
    static _Thread_local uint64_t seed;
    if (!seed)
        seed = (uint64_t)clock_mono_us() ^ (uint64_t)(uintptr_t)&seed;
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    ms = ms * 3 / 4 + (int64_t)(seed % (uint64_t)(ms / 2 + 1));
    int64_t until = clock_mono_ms() + ms;
    for (;;) {
        int64_t now = clock_mono_ms(), stop = atomic_load(&o->stop_at);
        if (now >= stop)
            return false;
        if (now >= until)
            return true;
        int64_t step = until - now;
        if (step > 50)
            step = 50;
        if (step > stop - now)
            step = stop - now;
        usleep((useconds_t)(step * 1000));
    }
}

/* Notes whether the gateway is in the degraded mode, logging the transitions. */
static void set_fallback(struct outbox *o, bool on, int64_t down_ms)
{
    if (atomic_exchange(&o->fallback_on, on) == on)
        return;
    if (on)
        LOG_WARN("queue-svc down past QUEUE_FALLBACK_AFTER: new replies go out directly through "
                 "the in-process limiter (order with replies still in queue-svc is best effort)",
                 LF_I64("down_ms", down_ms), LF_I64("fallback_after_ms", o->o.fallback_after_ms));
    else
        LOG_INFO("queue-svc is back: replies go through the queue again");
}

int outbox_put(struct outbox *o, const char *dedupe_key, int64_t chat_id,
               enum tg_chat_type chat_type, const char *method, const char *payload)
{
    struct deps *d = o->o.deps;
    if (!o->o.use_queue)
        return send_direct(o, chat_id, method, payload);
    Engbot__Queue__V1__EnqueueRequest req = ENGBOT__QUEUE__V1__ENQUEUE_REQUEST__INIT;
    req.lane_key = chat_id;
    req.lane_kind = lane_kind(chat_type, method);
    req.method = (char *)method;
    req.payload.data = (uint8_t *)payload;
    req.payload.len = strlen(payload);
    req.dedupe_key = (char *)dedupe_key;
    req.timeout_ms = (uint32_t)o->o.job_timeout_ms;
    enum dep_track track = deps_track(d, DEP_QUEUE, chat_id);
    bool unknown = false; /* an attempt went out and was not answered: it may be queued */
    bool held = false;
    int64_t backoff = RETRY_MIN_MS;
    int rc;
    for (;;) {
        ProtobufCMessage *m = NULL;
        struct rpc_status st;
        bool sent;
        /* Only while queue-svc looks up (never as the breaker's probe, never on a channel that
         * cannot connect): a call that cannot be answered would make this reply's outcome
         * unknown for nothing. The probe thread finds queue-svc back. */
        int code = deps_unary_sent(d, DEP_QUEUE, chat_id, "Enqueue", &req.base,
                                   &engbot__queue__v1__enqueue_response__descriptor, &m,
                                   DEPS_WHEN_UP, &st, &sent);
        if (code == RPC_OK || code == RPC_ALREADY_EXISTS) {
            bool dup = code == RPC_ALREADY_EXISTS ||
                       ((Engbot__Queue__V1__EnqueueResponse *)m)->duplicate;
            if (m)
                protobuf_c_message_free_unpacked(m, NULL);
            metric_inc(dup ? o->duplicate : o->queued);
            set_fallback(o, false, 0);
            rc = 0;
            break;
        }
        int why;
        uint64_t n;
        if (code == RPC_RESOURCE_EXHAUSTED) {
            why = W_FULL;
            set_fallback(o, false, 0); /* it answers: up, just full */
            if (ratelog_due(&o->log[W_FULL], &n))
                LOG_WARN("queue-svc is full: holding replies until it has room (back-pressure: "
                         "their updates stay unconfirmed, nothing is sent directly)",
                         LF_U64("refusals", n), LF_I64("chat_id", chat_id),
                         LF_STR("error", st.message));
        } else if (deps_code_is_failure(code)) {
            if (sent)
                unknown = true;
            int64_t down_ms;
            bool fallback = fallback_due(o, track, &down_ms);
            set_fallback(o, fallback, down_ms);
            if (fallback && !unknown) {
                /* Degraded: this reply never reached queue-svc, so a direct send cannot be a
                 * second copy. */
                deps_degraded(d, DEP_QUEUE);
                rc = send_direct(o, chat_id, method, payload);
                break;
            }
            why = unknown ? W_UNKNOWN : W_DOWN;
            if (unknown && ratelog_due(&o->log[W_UNKNOWN], &n))
                LOG_WARN("Enqueue got no answer: retrying it until queue-svc answers (it may "
                         "already be queued, so it is never sent directly)",
                         LF_U64("occurrences", n), LF_I64("chat_id", chat_id),
                         LF_STR("code", rpc_code_name(code)), LF_STR("error", st.message));
            else if (!unknown && ratelog_due(&o->log[W_DOWN], &n))
                LOG_WARN("queue-svc is down: holding replies for it until QUEUE_FALLBACK_AFTER "
                         "(keeps each chat's order across a restart)",
                         LF_U64("occurrences", n), LF_I64("down_ms", down_ms),
                         LF_I64("fallback_after_ms", o->o.fallback_after_ms),
                         LF_STR("error", st.message));
        } else {
            metric_inc(o->dropped);
            LOG_ERROR("queue-svc refused a reply", LF_STR("code", rpc_code_name(code)),
                      LF_STR("error", st.message), LF_STR("method", method));
            rc = -1;
            break;
        }
        metric_inc(o->retries[why]);
        if (!held) {
            held = true;
            atomic_fetch_add(&o->nwaiting, 1);
        }
        if (!backoff_sleep(o, backoff)) {
            /* Draining: the update is not confirmed, so Telegram delivers it again after the
             * restart and the same dedupe key makes that idempotent. */
            metric_inc(o->dropped);
            LOG_WARN("drain deadline: a reply still waiting for queue-svc is left to the "
                     "update's re-delivery",
                     LF_I64("chat_id", chat_id), LF_STR("reason", wait_names[why]));
            rc = -1;
            break;
        }
        backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
    }
    if (held)
        atomic_fetch_sub(&o->nwaiting, 1);
    return rc;
}
