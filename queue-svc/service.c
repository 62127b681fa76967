/* service.c -- engbot.queue.v1.QueueService handlers (see service.h).
 *
 * Every handler runs on a completion-queue thread and never blocks: a change is made under the
 * broker's lock and answered from the log thread once it is durable (RPC_PENDING, then
 * rpc_call_finish); a Lease with nothing ready is answered by the scheduler. The call holds an
 * extra reference while the broker may still answer it.
 *
 * Memory in answers comes from the call's arena (rpc_call_alloc), filled under the broker's
 * lock: the jobs themselves may change as soon as it is released. */
#include "service.h"

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "engbot/queue/v1/queue.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEASE_JOBS 100
#define MAX_PAGE       1000

typedef Engbot__Queue__V1__Job PbJob;

struct qservice {
    struct broker *b;
    struct qservice_opts o;
    int64_t started_ms;
};

/* ---- mapping -----------------------------------------------------------------------------------
 */

/* The one place where a queue error becomes a gRPC status. */
static int reply_err(struct rpc_call *c, enum qerr e, const char *msg)
{
    static const int code[] = {
        [Q_OK] = RPC_OK,
        [Q_EINVAL] = RPC_INVALID_ARGUMENT,
        [Q_EFULL] = RPC_RESOURCE_EXHAUSTED,
        [Q_ENOTFOUND] = RPC_NOT_FOUND,
        [Q_ELEASE] = RPC_FAILED_PRECONDITION,
    };
    return rpc_call_errorf(c, code[e], "%s", msg);
}

static int stopping(struct rpc_call *c)
{
    return rpc_call_errorf(c, RPC_UNAVAILABLE,
                           "queue-svc is shutting down: retry (another instance will answer)");
}

/* A job as an answer (copied into the call's arena). */
static PbJob *job_pb(struct rpc_call *c, const struct job *j)
{
    PbJob *p = rpc_call_alloc(c, sizeof *p);
    engbot__queue__v1__job__init(p);
    p->id = j->id;
    p->lane_key = j->lane_key;
    p->lane_kind = (Engbot__Queue__V1__LaneKind)j->kind;
    p->method = rpc_call_strdup(c, j->method);
    p->payload.len = j->payload_len;
    p->payload.data = rpc_call_alloc(c, j->payload_len ? j->payload_len : 1);
    memcpy(p->payload.data, j->payload, j->payload_len);
    p->dedupe_key = rpc_call_strdup(c, j->dedupe_key ? j->dedupe_key : "");
    p->deadline_unix_ms = j->deadline_ms;
    p->attempts = j->attempts;
    p->state = (Engbot__Queue__V1__JobState)j->state;
    p->enqueued_unix_ms = j->enqueued_ms;
    p->lease_token = j->state == JS_LEASED ? j->lease_token : 0;
    p->lease_deadline_unix_ms = j->state == JS_LEASED ? j->lease_deadline_ms : 0;
    p->last_error = rpc_call_strdup(c, j->last_error ? j->last_error : "");
    p->not_before_unix_ms = j->not_before_ms;
    return p;
}

static void lane_pb(const struct lane_info *i, Engbot__Queue__V1__Lane *l)
{
    engbot__queue__v1__lane__init(l);
    l->key = i->key;
    l->kind = (Engbot__Queue__V1__LaneKind)i->kind;
    l->queued = i->queued;
    l->in_flight = i->in_flight;
    l->paused_until_unix_ms = i->paused_until;
}

/* Answers a change once it is durable (runs on the log thread). */
static void on_durable_answer(void *arg, int err)
{
    struct rpc_call *c = arg;
    if (err) {
        rpc_call_errorf(c, RPC_UNAVAILABLE,
                        "the write-ahead log could not be written (%s): the change may not be "
                        "durable; retry",
                        strerror(err));
        rpc_call_finish(c, RPC_UNAVAILABLE);
    } else {
        rpc_call_finish(c, RPC_OK);
    }
    rpc_call_unref(c);
}

/* What a change handler shares with its broker_fn. */
struct change {
    struct rpc_call *c;
    const void *rq;
    void *rs;
    enum qerr err;
    char msg[320];
    struct bcall *bc;
};

/* Runs fn as a change; answers now (error or nothing written) or once durable. */
static int run_change(struct qservice *qs, struct rpc_call *c, broker_fn *fn, struct change *ch)
{
    struct bcall bc = {.done = on_durable_answer, .arg = c};
    ch->c = c;
    ch->bc = &bc;
    rpc_call_ref(c); /* for on_durable_answer, which may run before broker_change returns */
    if (broker_change(qs->b, fn, ch, &bc) < 0) {
        rpc_call_unref(c);
        return stopping(c);
    }
    if (bc.later)
        return RPC_PENDING; /* the error path writes nothing, so later implies success */
    rpc_call_unref(c);
    return ch->err ? reply_err(c, ch->err, ch->msg) : RPC_OK;
}

static void set_err(struct change *ch, struct queue *q, enum qerr e)
{
    ch->err = e;
    snprintf(ch->msg, sizeof ch->msg, "%s", queue_errstr(q));
}

/* ---- Enqueue -----------------------------------------------------------------------------------
 */

static void do_enqueue(void *arg, struct queue *q, int64_t now)
{
    struct change *ch = arg;
    const Engbot__Queue__V1__EnqueueRequest *rq = ch->rq;
    Engbot__Queue__V1__EnqueueResponse *rs = ch->rs;
    struct enq_spec s = {
        .lane_key = rq->lane_key,
        .kind = (int)rq->lane_kind,
        .method = rq->method,
        .payload = rq->payload.data,
        .payload_len = rq->payload.len,
        .dedupe_key = rq->dedupe_key,
        .timeout_ms = rq->timeout_ms,
    };
    struct enq_result r;
    enum qerr e = queue_enqueue(q, &s, now, &r);
    if (e != Q_OK) {
        set_err(ch, q, e);
        return;
    }
    rs->id = r.id;
    rs->duplicate = r.duplicate;
    rs->state = (Engbot__Queue__V1__JobState)r.state;
    rs->position = r.position;
    ch->bc->wait_seq = r.seq; /* a duplicate of a job not yet durable waits for it too */
}

static int h_enqueue(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                     void *svc)
{
    struct change ch = {.rq = req, .rs = resp};
    return run_change(svc, c, do_enqueue, &ch);
}

/* ---- Lease -------------------------------------------------------------------------------------
 */

struct lease_call {
    struct rpc_call *c;
    Engbot__Queue__V1__LeaseResponse *rs;
    size_t cap;
};

static void lease_on_job(void *arg, const struct job *j)
{
    struct lease_call *lc = arg;
    if (lc->rs->n_jobs < lc->cap)
        lc->rs->jobs[lc->rs->n_jobs++] = job_pb(lc->c, j);
}

static void lease_finish(void *arg)
{
    struct lease_call *lc = arg;
    rpc_call_finish(lc->c, RPC_OK);
    rpc_call_unref(lc->c);
}

static int h_lease(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                   void *svc)
{
    struct qservice *qs = svc;
    const Engbot__Queue__V1__LeaseRequest *rq = (const void *)req;
    size_t max = rq->max_jobs ? rq->max_jobs : 1;
    if (max > MAX_LEASE_JOBS)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "max_jobs %u is more than the %d a Lease may take", rq->max_jobs,
                               MAX_LEASE_JOBS);
    if ((int64_t)rq->lease_ms > qs->o.max_lease_ms)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "lease_ms %u is longer than MAX_LEASE_TIMEOUT=%" PRId64 " ms",
                               rq->lease_ms, qs->o.max_lease_ms);
    /* The wait is bounded by MAX_LEASE_WAIT and by the caller's own deadline (answered a
     * little before it, so the empty answer arrives instead of DEADLINE_EXCEEDED). */
    int64_t wait = rq->wait_ms;
    if (wait > qs->o.max_lease_wait_ms)
        wait = qs->o.max_lease_wait_ms;
    int64_t left = rpc_call_remaining_ms(c);
    if (left != INT64_MAX) {
        int64_t margin = left > 1000 ? 100 : left / 10;
        if (wait > left - margin)
            wait = left - margin > 0 ? left - margin : 0;
    }
    struct lease_call *lc = rpc_call_alloc(c, sizeof *lc);
    lc->c = c;
    lc->rs = (void *)resp;
    lc->cap = max;
    lc->rs->jobs = rpc_call_alloc(c, max * sizeof *lc->rs->jobs);
    rpc_call_set_state(c, lc, NULL);
    struct broker_lease l = {
        .max_jobs = max,
        .lease_ms = rq->lease_ms,
        .wait_ms = wait,
        .max_bytes = qs->o.reply_max_bytes,
        .on_job = lease_on_job,
        .finish = lease_finish,
        .arg = lc,
    };
    rpc_call_ref(c); /* for lease_finish */
    if (broker_lease(qs->b, &l)) {
        rpc_call_unref(c);
        return RPC_OK;
    }
    return RPC_PENDING;
}

/* The client went away while its Lease waited: forget the waiter. */
static void lease_closed(struct rpc_call *c, bool cancelled, void *svc)
{
    struct qservice *qs = svc;
    struct lease_call *lc = rpc_call_state(c);
    if (!cancelled || !lc)
        return;
    if (broker_lease_cancel(qs->b, lc)) {
        rpc_call_finish(c, RPC_CANCELLED);
        rpc_call_unref(c);
    }
}

/* ---- Ack, Retry, Fail --------------------------------------------------------------------------
 */

static void do_ack(void *arg, struct queue *q, int64_t now)
{
    struct change *ch = arg;
    const Engbot__Queue__V1__AckRequest *rq = ch->rq;
    enum qerr e = queue_ack(q, rq->id, rq->lease_token, now);
    if (e != Q_OK)
        set_err(ch, q, e);
}

static int h_ack(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp, void *svc)
{
    struct change ch = {.rq = req, .rs = resp};
    return run_change(svc, c, do_ack, &ch);
}

static void do_retry(void *arg, struct queue *q, int64_t now)
{
    struct change *ch = arg;
    const Engbot__Queue__V1__RetryRequest *rq = ch->rq;
    Engbot__Queue__V1__RetryResponse *rs = ch->rs;
    struct retry_spec s = {
        .id = rq->id,
        .token = rq->lease_token,
        .retry_after_ms = rq->retry_after_ms,
        .error = rq->error,
        .new_lane_key = rq->new_lane_key,
        .new_payload = rq->new_payload.data,
        .new_payload_len = rq->new_payload.len,
        .has_new_payload = rq->new_payload.len > 0,
    };
    struct retry_result r;
    enum qerr e = queue_retry(q, &s, now, &r);
    if (e != Q_OK) {
        set_err(ch, q, e);
        return;
    }
    rs->state = (Engbot__Queue__V1__JobState)r.state;
    rs->not_before_unix_ms = r.not_before_ms;
}

static int h_retry(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                   void *svc)
{
    struct change ch = {.rq = req, .rs = resp};
    return run_change(svc, c, do_retry, &ch);
}

static void do_fail(void *arg, struct queue *q, int64_t now)
{
    struct change *ch = arg;
    const Engbot__Queue__V1__FailRequest *rq = ch->rq;
    enum qerr e = queue_fail(q, rq->id, rq->lease_token, rq->error, now);
    if (e != Q_OK)
        set_err(ch, q, e);
}

static int h_fail(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                  void *svc)
{
    struct change ch = {.rq = req, .rs = resp};
    return run_change(svc, c, do_fail, &ch);
}

/* ---- operators ---------------------------------------------------------------------------------
 */

static bool parse_token(const char *s, bool has_sign, int64_t *i, uint64_t *u)
{
    char *end;
    errno = 0;
    if (has_sign)
        *i = strtoll(s, &end, 10);
    else
        *u = strtoull(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && (has_sign || s[0] != '-');
}

static int page_size(struct rpc_call *c, uint32_t asked, uint32_t dflt, size_t *out)
{
    if (asked > MAX_PAGE)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "page_size %u is more than %d", asked,
                               MAX_PAGE);
    *out = asked ? asked : dflt;
    return RPC_OK;
}

struct read_ctx {
    struct rpc_call *c;
    const void *rq;
    void *rs;
    struct qservice *qs;
    enum qerr err;
    char msg[320];
    size_t max;
    bool has_after;
    int64_t after;
    uint64_t uafter;
};

static void do_list_lanes(void *arg, struct queue *q, int64_t now)
{
    struct read_ctx *r = arg;
    Engbot__Queue__V1__ListLanesResponse *rs = r->rs;
    struct lane_info *info = calloc(r->max, sizeof *info);
    if (!info)
        abort();
    bool more;
    size_t n = queue_list_lanes(q, r->has_after, r->after, r->max, info, &more, now);
    rs->lanes = rpc_call_alloc(r->c, (n ? n : 1) * sizeof *rs->lanes);
    for (size_t i = 0; i < n; i++) {
        Engbot__Queue__V1__Lane *l = rpc_call_alloc(r->c, sizeof *l);
        lane_pb(&info[i], l);
        rs->lanes[i] = l;
    }
    rs->n_lanes = n;
    if (more && n) {
        char tok[32];
        snprintf(tok, sizeof tok, "%" PRId64, info[n - 1].key);
        rs->next_page_token = rpc_call_strdup(r->c, tok);
    }
    free(info);
}

static int h_list_lanes(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *svc)
{
    const Engbot__Queue__V1__ListLanesRequest *rq = (const void *)req;
    struct read_ctx r = {.c = c, .rq = rq, .rs = resp, .qs = svc};
    int code = page_size(c, rq->page_size, 100, &r.max);
    if (code != RPC_OK)
        return code;
    if (rq->page_token && *rq->page_token) {
        if (!parse_token(rq->page_token, true, &r.after, NULL))
            return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                                   "page_token '%.40s' is not from a ListLanes answer",
                                   rq->page_token);
        r.has_after = true;
    }
    broker_read(r.qs->b, do_list_lanes, &r);
    return RPC_OK;
}

static void do_peek(void *arg, struct queue *q, int64_t now)
{
    struct read_ctx *r = arg;
    const Engbot__Queue__V1__PeekLaneRequest *rq = r->rq;
    Engbot__Queue__V1__PeekLaneResponse *rs = r->rs;
    const struct job **jobs = calloc(r->max, sizeof *jobs);
    if (!jobs)
        abort();
    struct lane_info info;
    size_t n;
    enum qerr e = queue_peek(q, rq->lane_key, r->max, &info, jobs, &n, now);
    if (e != Q_OK) {
        r->err = e;
        snprintf(r->msg, sizeof r->msg, "%s", queue_errstr(q));
        free(jobs);
        return;
    }
    rs->lane = rpc_call_alloc(r->c, sizeof *rs->lane);
    lane_pb(&info, rs->lane);
    rs->jobs = rpc_call_alloc(r->c, (n ? n : 1) * sizeof *rs->jobs);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && bytes + jobs[i]->payload_len > r->qs->o.reply_max_bytes)
            break; /* the answer must fit in a message; peek with a smaller limit */
        bytes += jobs[i]->payload_len;
        rs->jobs[rs->n_jobs++] = job_pb(r->c, jobs[i]);
    }
    free(jobs);
}

static int h_peek(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                  void *svc)
{
    const Engbot__Queue__V1__PeekLaneRequest *rq = (const void *)req;
    struct read_ctx r = {.c = c, .rq = rq, .rs = resp, .qs = svc};
    if (rq->lane_key == 0)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "lane_key is required (the chat id)");
    if (rq->limit > MAX_PAGE)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "limit %u is more than %d", rq->limit,
                               MAX_PAGE);
    r.max = rq->limit ? rq->limit : 20;
    broker_read(r.qs->b, do_peek, &r);
    return r.err ? reply_err(c, r.err, r.msg) : RPC_OK;
}

static void do_purge(void *arg, struct queue *q, int64_t now)
{
    struct change *ch = arg;
    const Engbot__Queue__V1__PurgeLaneRequest *rq = ch->rq;
    Engbot__Queue__V1__PurgeLaneResponse *rs = ch->rs;
    rs->purged = (uint32_t)queue_purge(q, rq->lane_key, now);
}

static int h_purge(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                   void *svc)
{
    const Engbot__Queue__V1__PurgeLaneRequest *rq = (const void *)req;
    if (rq->lane_key == 0)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "lane_key is required (the chat id)");
    struct change ch = {.rq = req, .rs = resp};
    return run_change(svc, c, do_purge, &ch);
}

static void do_dead_letters(void *arg, struct queue *q, int64_t now)
{
    struct read_ctx *r = arg;
    Engbot__Queue__V1__ListDeadLettersResponse *rs = r->rs;
    const struct job **jobs = calloc(r->max, sizeof *jobs);
    if (!jobs)
        abort();
    bool more;
    size_t n = queue_dead_letters(q, r->uafter, r->max, jobs, &more);
    rs->jobs = rpc_call_alloc(r->c, (n ? n : 1) * sizeof *rs->jobs);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && bytes + jobs[i]->payload_len > r->qs->o.reply_max_bytes) {
            more = true;
            break;
        }
        bytes += jobs[i]->payload_len;
        rs->jobs[rs->n_jobs++] = job_pb(r->c, jobs[i]);
    }
    if (more && rs->n_jobs) {
        char tok[32];
        snprintf(tok, sizeof tok, "%" PRIu64, jobs[rs->n_jobs - 1]->dead_seq);
        rs->next_page_token = rpc_call_strdup(r->c, tok);
    }
    free(jobs);
}

static int h_dead_letters(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                          void *svc)
{
    const Engbot__Queue__V1__ListDeadLettersRequest *rq = (const void *)req;
    struct read_ctx r = {.c = c, .rq = rq, .rs = resp, .qs = svc};
    int code = page_size(c, rq->page_size, 100, &r.max);
    if (code != RPC_OK)
        return code;
    if (rq->page_token && *rq->page_token && !parse_token(rq->page_token, false, NULL, &r.uafter))
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "page_token '%.40s' is not from a ListDeadLetters answer",
                               rq->page_token);
    broker_read(r.qs->b, do_dead_letters, &r);
    return RPC_OK;
}

static void do_requeue(void *arg, struct queue *q, int64_t now)
{
    struct change *ch = arg;
    const Engbot__Queue__V1__RequeueDeadLetterRequest *rq = ch->rq;
    Engbot__Queue__V1__RequeueDeadLetterResponse *rs = ch->rs;
    const struct job *j;
    enum qerr e = queue_requeue_dead(q, rq->id, now, &j);
    if (e != Q_OK) {
        set_err(ch, q, e);
        return;
    }
    rs->job = job_pb(ch->c, j);
}

static int h_requeue(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                     void *svc)
{
    struct change ch = {.rq = req, .rs = resp};
    return run_change(svc, c, do_requeue, &ch);
}

static void do_stats(void *arg, struct queue *q, int64_t now)
{
    struct read_ctx *r = arg;
    Engbot__Queue__V1__GetStatsResponse *rs = r->rs;
    struct queue_stats st;
    queue_stats(q, &st);
    rs->queued = st.queued;
    rs->leased = st.leased;
    rs->dead = st.dead;
    rs->lanes = st.lanes;
    rs->bytes = st.bytes;
    rs->enqueued_total = queue_counter(q, QC_ENQUEUED);
    rs->rejected_total = queue_counter(q, QC_REJ_QUEUE_FULL) + queue_counter(q, QC_REJ_LANE_FULL) +
                         queue_counter(q, QC_REJ_BYTES_FULL) + queue_counter(q, QC_REJ_DEADLINE) +
                         queue_counter(q, QC_REJ_INVALID);
    rs->expired_total = queue_counter(q, QC_EXPIRED);
    rs->acked_total = queue_counter(q, QC_ACKED);
    rs->retried_total =
        queue_counter(q, QC_RETRIED_BACKOFF) + queue_counter(q, QC_RETRIED_RETRY_AFTER);
    rs->deduplicated_total = queue_counter(q, QC_DEDUPLICATED);
    rs->leased_total = queue_counter(q, QC_LEASED);
    rs->dead_lettered_total =
        queue_counter(q, QC_DEAD_FAILED) + queue_counter(q, QC_DEAD_MAX_ATTEMPTS);
    rs->dropped_total = queue_counter(q, QC_DROP_LANE_FULL) + queue_counter(q, QC_DROP_QUEUE_FULL) +
                        queue_counter(q, QC_DROP_DEAD_FULL);
    rs->purged_total = queue_counter(q, QC_PURGED);
    rs->lease_expired_total = queue_counter(q, QC_LEASE_EXPIRED);
}

static int h_stats(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                   void *svc)
{
    struct qservice *qs = svc;
    Engbot__Queue__V1__GetStatsResponse *rs = (void *)resp;
    struct read_ctx r = {.c = c, .rq = req, .rs = resp, .qs = qs};
    broker_read(qs->b, do_stats, &r);
    rs->max_size = qs->o.max_size;
    rs->version = rpc_call_strdup(c, engbot_version);
    rs->uptime_seconds = (uint64_t)((clock_mono_ms() - qs->started_ms) / 1000);
    rs->waiting_leases = broker_waiting(qs->b);
    return RPC_OK;
}

/* ---- registration ------------------------------------------------------------------------------
 */

/* At SIGTERM, before the server stops taking calls: answer the waiting Leases, lease nothing
 * more, and give the senders DRAIN_SETTLE to report what they did with the jobs they hold --
 * an Ack refused by a stopping server would make the next process send the job again. */
static void drain_hook(void *arg)
{
    struct qservice *qs = arg;
    if (!qs->b)
        return;
    broker_drain(qs->b);
    int64_t open = broker_wait_settled(qs->b, qs->o.drain_settle_ms);
    if (open)
        LOG_WARN("leases still open at the end of DRAIN_SETTLE: those jobs go out again after "
                 "the restart",
                 LF_I64("leases", open), LF_I64("drain_settle_ms", qs->o.drain_settle_ms));
}

struct qservice *qservice_new(const struct qservice_opts *o)
{
    struct qservice *qs = calloc(1, sizeof *qs);
    if (!qs)
        abort();
    qs->o = *o;
    qs->started_ms = clock_mono_ms();
    return qs;
}

static const struct rpc_method methods[] = {
    RPC_UNARY("Enqueue", h_enqueue, 0),
    {.name = "Lease", .kind = RPC_KIND_UNARY, .unary = h_lease, .on_close = lease_closed},
    RPC_UNARY("Ack", h_ack, 0),
    RPC_UNARY("Retry", h_retry, 0),
    RPC_UNARY("Fail", h_fail, 0),
    RPC_UNARY("ListLanes", h_list_lanes, 0),
    RPC_UNARY("PeekLane", h_peek, 0),
    RPC_UNARY("PurgeLane", h_purge, 0),
    RPC_UNARY("ListDeadLetters", h_dead_letters, 0),
    RPC_UNARY("RequeueDeadLetter", h_requeue, 0),
    RPC_UNARY("GetStats", h_stats, 0),
};

const struct rpc_method *qservice_methods(size_t *n)
{
    *n = sizeof methods / sizeof methods[0];
    return methods;
}

void qservice_register(struct qservice *qs, struct rpc_server *s)
{
    rpc_server_add_service(s, &engbot__queue__v1__queue_service__descriptor, methods,
                           sizeof methods / sizeof methods[0], qs);
    rpc_server_on_drain(s, drain_hook, qs);
}

void qservice_attach(struct qservice *qs, struct broker *b)
{
    qs->b = b;
}

void qservice_free(struct qservice *qs)
{
    free(qs);
}
