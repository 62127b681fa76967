/* intake_poll.c -- the getUpdates loop (one thread: Telegram allows one poller per token).
 *
 * DESIGN: fetch a batch and hand each new update to the dispatcher. The offset of the next
 * getUpdates is the lowest update still in progress (or that failed), else one past the highest
 * seen: an update is confirmed only once its work was handed on. While updates are in progress
 * the poller does not wait for them all (one slow chat must not stall the others): it polls
 * again at once without a long-poll timeout; the in-progress updates come back in that answer
 * and are skipped by the dedupe window, new ones are dispatched (when mostly in-progress ones
 * came back, it first waits for half of them to finish, at most 50 ms). A failed update is
 * asked for again up to POLL_ATTEMPTS times. 409 (another poller, or a webhook is set) is
 * logged clearly and retried with backoff; 429 waits retry_after. */
#include "intake.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct intake_poll {
    struct intake_poll_opts o;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int outstanding;  /* updates handed to the dispatcher and not done yet */
    int64_t *out_ids; /* their ids (at most max_pending + a batch) */
    int out_cap;
    int64_t first_unhandled; /* lowest update_id that failed since the last poll (INT64_MAX) */
    int64_t max_seen;        /* highest update_id seen (-1: none yet) */
    int64_t offset;          /* next getUpdates offset */
    int64_t fail_id;         /* the update that keeps failing, and how often it did */
    int fail_count;
    struct tg_update scratch;
    struct metric *errors_conflict, *errors_network, *errors_api, *offset_gauge;
};

static struct metric *skipped_dup, *skipped_malformed, *skipped_failed;
static pthread_once_t skipped_once = PTHREAD_ONCE_INIT;
static void skipped_init(void)
{
    struct metric_family *f = metrics_family(
        "engbot_gateway_updates_skipped_total",
        "Updates not handled: duplicate (update_id seen before), malformed (failed validation), "
        "failed (gave up after retries).",
        METRIC_COUNTER, "reason", NULL, 0);
    skipped_dup = metrics_child(f, "duplicate");
    skipped_malformed = metrics_child(f, "malformed");
    skipped_failed = metrics_child(f, "failed");
}

void intake_count_skipped(const char *reason)
{
    pthread_once(&skipped_once, skipped_init);
    if (!reason)
        return;
    if (strcmp(reason, "duplicate") == 0)
        metric_inc(skipped_dup);
    else if (strcmp(reason, "malformed") == 0)
        metric_inc(skipped_malformed);
    else
        metric_inc(skipped_failed);
}

static void on_done(void *arg, const struct tg_update *u, bool handled)
{
    struct intake_poll *p = arg;
    dedupe_finish(p->o.dedupe, u->update_id, handled);
    pthread_mutex_lock(&p->mu);
    if (!handled && u->update_id < p->first_unhandled)
        p->first_unhandled = u->update_id;
    for (int i = 0; i < p->outstanding; i++) {
        if (p->out_ids[i] == u->update_id) {
            p->out_ids[i] = p->out_ids[--p->outstanding];
            break;
        }
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

struct batch {
    struct intake_poll *p;
    int fresh; /* updates dispatched from this answer */
};

static void on_update(void *ud, int rc, const struct tg_update *u, const char *err)
{
    struct batch *b = ud;
    struct intake_poll *p = b->p;
    pthread_mutex_lock(&p->mu);
    if (u->update_id > p->max_seen)
        p->max_seen = u->update_id;
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) {
        intake_count_skipped("malformed");
        LOG_WARN("malformed update skipped", LF_I64("update_id", u->update_id),
                 LF_STR("error", err));
        return;
    }
    enum dedupe_res d = dedupe_begin(p->o.dedupe, u->update_id);
    if (d == DEDUPE_IN_PROGRESS)
        return; /* asked for again while still running (see DESIGN) */
    if (d == DEDUPE_DONE) {
        intake_count_skipped("duplicate");
        LOG_DEBUG("repeated update skipped", LF_I64("update_id", u->update_id));
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->outstanding == p->out_cap) {
        p->out_cap = p->out_cap ? p->out_cap * 2 : 256;
        p->out_ids = realloc(p->out_ids, (size_t)p->out_cap * sizeof *p->out_ids);
        if (!p->out_ids)
            abort();
    }
    p->out_ids[p->outstanding++] = u->update_id;
    pthread_mutex_unlock(&p->mu);
    b->fresh++;
    if (dispatch_submit(p->o.dispatch, u, on_done, p) < 0) {
        /* Stopping: not handled, not confirmed. */
        on_done(p, u, false);
    }
}

/* Sleeps ms unless stopped. */
static void nap(struct intake_poll *p, int64_t ms)
{
    while (ms > 0 && !atomic_load(&p->stop)) {
        int64_t s = ms > 100 ? 100 : ms;
        usleep((useconds_t)(s * 1000));
        ms -= s;
    }
}

/* Waits for the batch; returns false when the deadline passed first. */
static bool wait_batch(struct intake_poll *p, int64_t deadline_ms)
{
    pthread_mutex_lock(&p->mu);
    while (p->outstanding > 0) {
        if (deadline_ms) {
            int64_t left = deadline_ms - clock_mono_ms();
            if (left <= 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        } else {
            pthread_cond_wait(&p->cv, &p->mu);
        }
    }
    bool done = p->outstanding == 0;
    pthread_mutex_unlock(&p->mu);
    return done;
}

/* Where the next getUpdates starts: the lowest update in progress or failed, else one past
 * the highest seen. A failed update is asked for again until it ran out of attempts. */
static void advance(struct intake_poll *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t fu = p->first_unhandled;
    p->first_unhandled = INT64_MAX;
    if (fu != INT64_MAX) {
        if (fu == p->fail_id) {
            p->fail_count++;
        } else {
            p->fail_id = fu;
            p->fail_count = 1;
        }
        if (p->fail_count >= p->o.max_attempts) {
            LOG_ERROR("update failed repeatedly: skipped", LF_I64("update_id", fu),
                      LF_I64("attempts", p->fail_count));
            intake_count_skipped("failed");
            dedupe_finish(p->o.dedupe, fu, true); /* remembered as done: never again */
            p->fail_id = 0;
            p->fail_count = 0;
            fu = INT64_MAX;
        }
    }
    int64_t off = p->max_seen + 1;
    for (int i = 0; i < p->outstanding; i++)
        if (p->out_ids[i] < off)
            off = p->out_ids[i];
    if (fu < off)
        off = fu;
    if (off > p->offset || fu != INT64_MAX || p->outstanding)
        p->offset = off;
    int64_t offset = p->offset;
    pthread_mutex_unlock(&p->mu);
    metric_set(p->offset_gauge, (double)offset);
}

static void *poll_loop(void *arg)
{
    struct intake_poll *p = arg;
    int64_t backoff = 0;
    bool conflict_logged = false;
    while (!atomic_load(&p->stop)) {
        pthread_mutex_lock(&p->mu);
        bool busy = p->outstanding > 0;
        pthread_mutex_unlock(&p->mu);
        /* While updates are in progress, no long poll: come back soon to confirm them. */
        char *body = tg_json_get_updates(p->offset, p->o.limit, busy ? 0 : p->o.timeout_s);
        struct tg_resp r;
        int rc = tg_http_call(p->o.tg, "getUpdates", body, (p->o.timeout_s + 15) * 1000LL, &r);
        free(body);
        if (rc < 0) {
            tg_resp_free(&r);
            if (atomic_load(&p->stop))
                break;
            metric_inc(p->errors_network);
            backoff = backoff ? (backoff * 2 > 30000 ? 30000 : backoff * 2) : 500;
            LOG_WARN("getUpdates failed: retrying", LF_STR("error", r.err),
                     LF_I64("retry_in_ms", backoff));
            nap(p, backoff);
            continue;
        }
        struct batch b = {.p = p};
        struct tg_envelope env;
        char err[256];
        int n =
            tg_json_parse_updates(r.body, r.len, &env, on_update, &b, &p->scratch, err, sizeof err);
        tg_resp_free(&r);
        if (n < 0) {
            int64_t wait;
            if (env.error_code == 409) {
                metric_inc(p->errors_conflict);
                backoff = backoff ? (backoff * 2 > 30000 ? 30000 : backoff * 2) : 1000;
                wait = backoff;
                /* Loud once, then quieter: it usually means a second instance or a webhook. */
                if (!conflict_logged)
                    LOG_ERROR("getUpdates conflict (409): another instance is polling with this "
                              "token, or a webhook is set; retrying with backoff",
                              LF_STR("telegram", env.description), LF_I64("retry_in_ms", wait));
                else
                    LOG_WARN("getUpdates conflict (409) persists",
                             LF_STR("telegram", env.description), LF_I64("retry_in_ms", wait));
                conflict_logged = true;
            } else if (env.retry_after_s > 0) {
                metric_inc(p->errors_api);
                wait = env.retry_after_s * 1000;
                LOG_WARN("getUpdates rate limited", LF_I64("retry_after_s", env.retry_after_s));
            } else {
                metric_inc(p->errors_api);
                backoff = backoff ? (backoff * 2 > 30000 ? 30000 : backoff * 2) : 1000;
                wait = backoff;
                LOG_WARN("getUpdates refused: retrying", LF_I64("code", env.error_code),
                         LF_STR("telegram", env.description[0] ? env.description : err),
                         LF_I64("retry_in_ms", wait));
            }
            nap(p, wait);
            continue;
        }
        if (conflict_logged)
            LOG_INFO("getUpdates works again after a conflict");
        conflict_logged = false;
        backoff = 0;
        if (b.fresh * 2 < n) {
            /* Mostly updates already in progress came back: asking again at once would fetch
             * and parse the same ones in a loop. Wait until half of those in progress are done
             * (or all, or 50 ms). When the answer was mostly new updates, fetch again at once;
             * dispatch_submit blocking at MAX_PENDING is the back-pressure. */
            int64_t until = clock_mono_ms() + 50;
            pthread_mutex_lock(&p->mu);
            int start = p->outstanding;
            while (p->outstanding > 0 && p->outstanding > start / 2 && !atomic_load(&p->stop)) {
                int64_t left = until - clock_mono_ms();
                if (left <= 0)
                    break;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += left * 1000000L;
                while (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            }
            pthread_mutex_unlock(&p->mu);
        }
        pthread_mutex_lock(&p->mu);
        bool retrying = p->first_unhandled != INT64_MAX;
        pthread_mutex_unlock(&p->mu);
        advance(p);
        if (retrying)
            nap(p, 200); /* a failed update is asked for again: do not spin */
    }
    return NULL;
}

struct intake_poll *intake_poll_start(const struct intake_poll_opts *o)
{
    struct intake_poll *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->o = *o;
    if (p->o.max_attempts < 1)
        p->o.max_attempts = 1;
    p->first_unhandled = INT64_MAX;
    p->max_seen = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    struct metric_family *f = metrics_family(
        "engbot_gateway_poll_errors_total",
        "getUpdates failures: conflict (409: another poller or a webhook), network, api.",
        METRIC_COUNTER, "kind", NULL, 0);
    p->errors_conflict = metrics_child(f, "conflict");
    p->errors_network = metrics_child(f, "network");
    p->errors_api = metrics_child(f, "api");
    p->offset_gauge = metrics_gauge("engbot_gateway_poll_offset",
                                    "The getUpdates offset: updates below it are confirmed.");
    pthread_once(&skipped_once, skipped_init);
    if (pthread_create(&p->thread, NULL, poll_loop, p) != 0)
        abort();
    LOG_INFO("polling for updates", LF_I64("timeout_s", o->timeout_s), LF_I64("limit", o->limit));
    return p;
}

void intake_poll_stop(struct intake_poll *p, int64_t grace_ms)
{
    atomic_store(&p->stop, true);
    atomic_store(p->o.abort, true); /* cuts the long poll short */
    pthread_join(p->thread, NULL);
    /* The batch in hand may still be running: give it the grace period. */
    bool done = wait_batch(p, clock_mono_ms() + grace_ms);
    if (!done)
        return; /* unknown which finished: confirm nothing new (they are re-delivered) */
    advance(p);
    /* Confirm what was handled, so a restart does not fetch it again (the dedupe window would
     * skip it anyway). timeout 0 and limit 1: this returns at once. */
    atomic_store(p->o.abort, false);
    if (p->offset > 0) {
        char *body = tg_json_get_updates(p->offset, 1, 0);
        struct tg_resp r;
        int rc = tg_http_call(p->o.tg, "getUpdates", body, 5000, &r);
        free(body);
        if (rc == 0 && r.http_status == 200)
            LOG_INFO("offset confirmed at drain", LF_I64("offset", p->offset));
        else
            LOG_WARN("could not confirm the offset at drain (updates will be re-delivered and "
                     "skipped as duplicates)",
                     LF_STR("error", rc ? r.err : r.body));
        tg_resp_free(&r);
    }
}

void intake_poll_free(struct intake_poll *p)
{
    if (!p)
        return;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->out_ids);
    free(p);
}
