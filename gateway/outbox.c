/* outbox.c -- queue-svc first; direct sends through the limiter when the queue is unusable. */
#include "outbox.h"
#include "log.h"
#include "metrics.h"

#include "engbot/queue/v1/queue.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct outbox {
    struct outbox_opts o;
    struct metric *queued, *duplicate, *direct, *dropped;
};

struct outbox *outbox_new(const struct outbox_opts *o)
{
    struct outbox *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    b->o = *o;
    struct metric_family *f = metrics_family(
        "engbot_gateway_outbox_total",
        "Replies handed on, by path: queued (queue-svc), duplicate (already queued by an earlier "
        "delivery of the update), direct (sent at once, queue-svc unusable or off), dropped.",
        METRIC_COUNTER, "path", NULL, 0);
    b->queued = metrics_child(f, "queued");
    b->duplicate = metrics_child(f, "duplicate");
    b->direct = metrics_child(f, "direct");
    b->dropped = metrics_child(f, "dropped");
    return b;
}

void outbox_free(struct outbox *o)
{
    free(o);
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

int outbox_put(struct outbox *o, const char *dedupe_key, int64_t chat_id,
               enum tg_chat_type chat_type, const char *method, const char *payload)
{
    struct deps *d = o->o.deps;
    if (o->o.use_queue) {
        Engbot__Queue__V1__EnqueueRequest req = ENGBOT__QUEUE__V1__ENQUEUE_REQUEST__INIT;
        req.lane_key = chat_id;
        req.lane_kind = lane_kind(chat_type, method);
        req.method = (char *)method;
        req.payload.data = (uint8_t *)payload;
        req.payload.len = strlen(payload);
        req.dedupe_key = (char *)dedupe_key;
        req.timeout_ms = (uint32_t)o->o.job_timeout_ms;
        ProtobufCMessage *m = NULL;
        struct rpc_status st;
        /* Idempotent thanks to the dedupe key: a retry after a lost answer is a duplicate. */
        int code =
            deps_unary(d, DEP_QUEUE, chat_id, "Enqueue", &req.base,
                       &engbot__queue__v1__enqueue_response__descriptor, &m, DEPS_IDEMPOTENT, &st);
        if (code == RPC_OK) {
            bool dup = ((Engbot__Queue__V1__EnqueueResponse *)m)->duplicate;
            protobuf_c_message_free_unpacked(m, NULL);
            metric_inc(dup ? o->duplicate : o->queued);
            return 0;
        }
        if (code == RPC_ALREADY_EXISTS) {
            metric_inc(o->duplicate);
            return 0;
        }
        if (code == RPC_RESOURCE_EXHAUSTED) {
            LOG_WARN("queue-svc is full: sending directly", LF_I64("chat_id", chat_id),
                     LF_STR("error", st.message));
        } else if (deps_code_is_failure(code)) {
            deps_degraded(d, DEP_QUEUE);
        } else {
            metric_inc(o->dropped);
            LOG_ERROR("queue-svc refused a reply", LF_STR("code", rpc_code_name(code)),
                      LF_STR("error", st.message), LF_STR("method", method));
            return -1;
        }
    }
    return send_direct(o, chat_id, method, payload);
}
