/* sender.c -- Bot API requests with Telegram's error semantics, document delivery (file_id or
 * streamed upload) and the queue-svc lease loops. */
#include "sender.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "tg_json.h"

#include "engbot/cache/v1/cache.pb-c.h"
#include "engbot/queue/v1/queue.pb-c.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { M_SEND, M_EDIT, M_DOC, M_ANSWER, M_OTHER, M_N };
static const char *const method_names[M_N] = {"sendMessage", "editMessageText", "sendDocument",
                                              "answerCallbackQuery", "other"};
enum { O_OK, O_RETRY_AFTER, O_5XX, O_NETWORK, O_BLOCKED, O_REJECTED, O_MIGRATED, O_N };
static const char *const outcome_names[O_N] = {"ok",      "retry_after", "server_error", "network",
                                               "blocked", "rejected",    "migrated"};

struct sender {
    struct sender_opts o;
    struct metric *replies[M_N][O_N];
    struct metric *r429, *retry_after, *doc_upload, *doc_file_id, *file_id_rejected, *blocked;
    struct metric *doc_gone;
    struct metric *latency, *upload_bytes, *settle_fail;
    pthread_t *threads;
    int nthreads;
    atomic_bool stop;
};

struct lease_arg {
    struct sender *s;
    enum dep_track track;
};

static struct lease_arg g_args[TRACK_N];

static int method_index(const char *m)
{
    for (int i = 0; i < M_OTHER; i++)
        if (strcmp(m, method_names[i]) == 0)
            return i;
    return M_OTHER;
}

struct sender *sender_new(const struct sender_opts *o)
{
    struct sender *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->o = *o;
    struct metric_family *rep = metrics_family(
        "engbot_gateway_replies_total",
        "Bot API requests performed, by method and outcome (ok, retry_after, server_error, "
        "network, blocked, rejected, migrated).",
        METRIC_COUNTER, "method,outcome", NULL, 0);
    for (int m = 0; m < M_N; m++)
        for (int k = 0; k < O_N; k++)
            s->replies[m][k] = metrics_child(rep, method_names[m], outcome_names[k]);
    s->r429 = metrics_counter("engbot_gateway_telegram_429_total",
                              "Telegram answers 429 Too Many Requests.");
    static const double ra_buckets[] = {1, 2, 5, 10, 30, 60, 300, 3600};
    s->retry_after = metrics_histogram("engbot_gateway_telegram_retry_after_seconds",
                                       "retry_after values Telegram asked for.", ra_buckets, 8);
    struct metric_family *docs =
        metrics_family("engbot_gateway_documents_total",
                       "Documents sent, by how: a multipart upload or a cached file_id.",
                       METRIC_COUNTER, "via", NULL, 0);
    s->doc_upload = metrics_child(docs, "upload");
    s->doc_file_id = metrics_child(docs, "file_id");
    s->file_id_rejected = metrics_counter("engbot_gateway_file_id_rejected_total",
                                          "Cached file_ids Telegram rejected (uploaded again).");
    s->doc_gone = metrics_counter(
        "engbot_gateway_documents_gone_total",
        "Document sends whose file had left the catalogue by then: the user was told instead.");
    s->blocked = metrics_counter("engbot_gateway_bot_blocked_total",
                                 "Sends that failed with 403: the user blocked the bot.");
    s->latency =
        metrics_histogram("engbot_gateway_telegram_request_seconds", "Latency of Bot API requests.",
                          metrics_latency_buckets, metrics_latency_nbuckets);
    s->upload_bytes = metrics_counter("engbot_gateway_upload_bytes_total",
                                      "Bytes of documents uploaded to Telegram.");
    s->settle_fail = metrics_counter(
        "engbot_gateway_queue_settle_failures_total",
        "Ack/Retry/Fail calls to queue-svc that failed (the lease expires and the job returns).");
    return s;
}

static bool icontains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return true;
    return false;
}

/* Classifies a response (or its absence). Returns the outcome index for metrics. */
static int classify(struct sender *s, int mi, int rc, const struct tg_resp *resp,
                    struct tg_envelope *env, struct send_result *r)
{
    char err[160];
    memset(env, 0, sizeof *env);
    if (rc < 0) {
        r->o = SEND_BACKOFF;
        snprintf(r->err, sizeof r->err, "%s", resp->err);
        return O_NETWORK;
    }
    if (tg_json_parse_envelope(resp->body, resp->len, env, err, sizeof err) < 0) {
        r->o = resp->http_status >= 400 && resp->http_status < 500 && resp->http_status != 429
                   ? SEND_FAIL
                   : SEND_BACKOFF;
        snprintf(r->err, sizeof r->err, "%s: HTTP %d, %s", method_names[mi], resp->http_status,
                 err);
        return resp->http_status >= 500 ? O_5XX : O_NETWORK;
    }
    if (env->ok) {
        r->o = SEND_OK;
        return O_OK;
    }
    int code = env->error_code ? env->error_code : resp->http_status;
    snprintf(r->err, sizeof r->err, "%s: %d %.200s", method_names[mi], code, env->description);
    /* parameters first: error_code's meaning is not promised to be stable. */
    if (env->migrate_to_chat_id) {
        r->o = SEND_MIGRATE;
        r->new_chat_id = env->migrate_to_chat_id;
        return O_MIGRATED;
    }
    if (env->retry_after_s > 0 || code == 429) {
        r->o = SEND_RETRY_AFTER;
        r->retry_after_ms = (env->retry_after_s > 0 ? env->retry_after_s : 1) * 1000;
        metric_inc(s->r429);
        metric_observe(s->retry_after, (double)(env->retry_after_s > 0 ? env->retry_after_s : 1));
        return O_RETRY_AFTER;
    }
    if (code >= 500 || code == 0) {
        r->o = SEND_BACKOFF;
        return O_5XX;
    }
    if (code == 401 || code == 404) {
        /* The token was revoked or the API URL is wrong: nothing will work until an operator
         * acts. Keep the job (back off) rather than losing every reply. */
        LOG_ERROR("Telegram rejects the bot token or method (check BOT_TOKEN / TELEGRAM_API_URL)",
                  LF_I64("code", code), LF_STR("method", method_names[mi]));
        r->o = SEND_BACKOFF;
        return O_REJECTED;
    }
    if (code == 403) {
        r->o = SEND_FAIL;
        metric_inc(s->blocked);
        return O_BLOCKED;
    }
    if (mi == M_EDIT && icontains(env->description, "message is not modified")) {
        r->o = SEND_OK; /* the user pressed a button that shows what is already shown */
        return O_OK;
    }
    r->o = SEND_FAIL;
    return O_REJECTED;
}

static void count(struct sender *s, int mi, int oi, double secs)
{
    metric_inc(s->replies[mi][oi]);
    metric_observe(s->latency, secs);
}

/* ---- documents ------------------------------------------------------------------------------ */

struct file_reader {
    struct rpc_reader *rd;
    Engbot__Cache__V1__ReadFileResponse *cur;
    size_t off;
    bool eof, failed;
    int code; /* the stream's gRPC code when failed */
    uint64_t total;
    char err[160];
};

static ssize_t read_chunk(void *ud, char *buf, size_t cap)
{
    struct file_reader *f = ud;
    while (!f->cur || f->off == f->cur->data.len) {
        if (f->eof)
            return 0;
        if (f->cur) {
            protobuf_c_message_free_unpacked(&f->cur->base, NULL);
            f->cur = NULL;
        }
        ProtobufCMessage *m = NULL;
        struct rpc_status st;
        int rc =
            rpc_reader_next(f->rd, &engbot__cache__v1__read_file_response__descriptor, &m, &st);
        if (rc == 0) {
            if (st.code != RPC_OK) {
                snprintf(f->err, sizeof f->err, "ReadFile ended with %s: %.100s",
                         rpc_code_name(st.code), st.message);
                f->code = st.code;
                f->failed = true;
                return -1;
            }
            f->eof = true;
            return 0;
        }
        if (rc < 0) {
            snprintf(f->err, sizeof f->err, "ReadFile: %s: %.100s", rpc_code_name(st.code),
                     st.message);
            f->code = st.code;
            f->failed = true;
            return -1;
        }
        f->cur = (Engbot__Cache__V1__ReadFileResponse *)m;
        f->off = 0;
        if (f->cur->eof)
            f->eof = true;
    }
    size_t n = f->cur->data.len - f->off;
    if (n > cap)
        n = cap;
    memcpy(buf, f->cur->data.data + f->off, n);
    f->off += n;
    f->total += n;
    return (ssize_t)n;
}

/* Uploads the file, stores the new file_id. Returns false when the file is gone (cache-svc
 * answered NOT_FOUND): nothing was sent, r is not set. */
static bool upload_document(struct sender *s, const struct tg_doc_job *j, enum dep_track tr,
                            struct send_result *r)
{
    bool found = true;
    struct deps *d = s->o.deps;
    struct rpc_status st;
    struct file_reader f = {0};
    struct tg_resp resp = {0};
    Engbot__Cache__V1__Entry entry_copy = ENGBOT__CACHE__V1__ENTRY__INIT;
    char path[1024] = "";
    if (!deps_allow(d, DEP_CACHE, tr, &st)) {
        r->o = SEND_BACKOFF;
        snprintf(r->err, sizeof r->err, "cannot read the file: %.200s", st.message);
        deps_degraded(d, DEP_CACHE);
        return true;
    }
    Engbot__Cache__V1__ReadFileRequest req = ENGBOT__CACHE__V1__READ_FILE_REQUEST__INIT;
    req.id = (char *)j->id;
    /* The stream may take as long as the lease: the job must be done within it anyway. */
    f.rd = rpc_reader_open(deps_channel(d, DEP_CACHE, tr), "/engbot.cache.v1.CacheService/ReadFile",
                           &req.base, s->o.lease_ms, RPC_CALL_WAIT_FOR_READY, &st);
    /* The first message carries the entry as opened: size and mtime key the file_id. */
    char first;
    ssize_t n = f.rd ? read_chunk(&f, &first, 0) : -1;
    if (n < 0 || !f.cur || !f.cur->entry) {
        int code = f.rd ? (f.failed ? f.code : RPC_UNAVAILABLE) : st.code;
        deps_report(d, DEP_CACHE, tr, code == RPC_NOT_FOUND ? RPC_OK : RPC_UNAVAILABLE);
        if (code == RPC_NOT_FOUND) {
            found = false;
            goto out;
        }
        r->o = SEND_BACKOFF;
        snprintf(r->err, sizeof r->err, "cannot read %.80s: %.150s", j->path,
                 f.err[0] ? f.err : st.message);
        goto out;
    }
    deps_report(d, DEP_CACHE, tr, RPC_OK);
    entry_copy.size = f.cur->entry->size;
    entry_copy.mtime_unix_ms = f.cur->entry->mtime_unix_ms;
    snprintf(path, sizeof path, "%s", f.cur->entry->path ? f.cur->entry->path : j->path);
    if (entry_copy.size > s->o.upload_limit) {
        r->o = SEND_FAIL;
        snprintf(r->err, sizeof r->err, "%.200s is %llu bytes, over the upload limit", path,
                 (unsigned long long)entry_copy.size);
        goto out;
    }
    char chat[32];
    snprintf(chat, sizeof chat, "%lld", (long long)j->chat_id);
    struct tg_upload up = {
        .method = "sendDocument",
        .field = "document",
        .file_name = j->name,
        .content_type = f.cur->entry->content_type,
        .file_size = entry_copy.size,
        .read = read_chunk,
        .ud = &f,
    };
    up.fields[up.nfields][0] = "chat_id";
    up.fields[up.nfields++][1] = chat;
    if (j->caption[0]) {
        up.fields[up.nfields][0] = "caption";
        up.fields[up.nfields++][1] = j->caption;
        up.fields[up.nfields][0] = "parse_mode";
        up.fields[up.nfields++][1] = "HTML";
    }
    int rc = tg_http_upload(s->o.tg, &up, &resp);
    if (rc < 0 && f.failed)
        snprintf(resp.err, sizeof resp.err, "sendDocument: %s", f.err);
    struct tg_envelope env;
    int oi = classify(s, M_DOC, rc, &resp, &env, r);
    count(s, M_DOC, oi, resp.seconds);
    if (r->o != SEND_OK)
        goto out;
    metric_inc(s->doc_upload);
    metric_add(s->upload_bytes, (double)f.total);
    if (s->o.use_file_ids && env.file_id[0]) {
        Engbot__Cache__V1__FileKey key = ENGBOT__CACHE__V1__FILE_KEY__INIT;
        key.bot_id = s->o.bot_id;
        key.path = path;
        key.size = entry_copy.size;
        key.mtime_unix_ms = entry_copy.mtime_unix_ms;
        Engbot__Cache__V1__PutFileIdRequest put = ENGBOT__CACHE__V1__PUT_FILE_ID_REQUEST__INIT;
        put.key = &key;
        put.file_id = env.file_id;
        ProtobufCMessage *pr = NULL;
        if (deps_unary_on(d, DEP_CACHE, tr, "PutFileId", &put.base,
                          &engbot__cache__v1__put_file_id_response__descriptor, &pr, 0,
                          &st) != RPC_OK)
            LOG_WARN("could not store the file_id (the next send uploads again)",
                     LF_STR("path", path), LF_STR("error", st.message));
        if (pr)
            protobuf_c_message_free_unpacked(pr, NULL);
    }
out:
    if (f.cur)
        protobuf_c_message_free_unpacked(&f.cur->base, NULL);
    if (f.rd)
        rpc_reader_close(f.rd);
    tg_resp_free(&resp);
    return found;
}

/* The file left the catalogue while its send waited (removed from the volume): the user still
 * gets an answer, the one the bot gives when the file is already gone at /get or at a button.
 * The message takes the document's place -- same lane, same turn, the same rate budget the
 * lease already took -- so the job is settled by the message's outcome: Ack once it is sent,
 * Retry on a 429 or 5xx (the retried job finds the file gone again and sends the message). */
static void send_gone(struct sender *s, const struct tg_doc_job *j, struct send_result *r)
{
    metric_inc(s->doc_gone);
    LOG_INFO("the file of a document send is gone: telling the user", LF_STR("path", j->path),
             LF_I64("chat_id", j->chat_id));
    char *body = tg_json_message(j->chat_id, 0, SENDER_FILE_GONE, NULL, NULL);
    struct tg_resp resp;
    int rc = tg_http_call(s->o.tg, "sendMessage", body, s->o.telegram_timeout_ms, &resp);
    free(body);
    struct tg_envelope env;
    memset(r, 0, sizeof *r);
    int oi = classify(s, M_SEND, rc, &resp, &env, r);
    count(s, M_SEND, oi, resp.seconds);
    tg_resp_free(&resp);
}

static bool file_id_rejected(const struct tg_envelope *env)
{
    return !env->ok && env->error_code == 400 &&
           (icontains(env->description, "file identifier") ||
            icontains(env->description, "file_id") || icontains(env->description, "wrong file") ||
            icontains(env->description, "file reference"));
}

static void send_document(struct sender *s, const char *payload, size_t len, struct send_result *r)
{
    struct tg_doc_job j;
    char err[160];
    struct deps *d = s->o.deps;
    if (tg_json_parse_doc_job(payload, len, &j, err, sizeof err) < 0) {
        r->o = SEND_FAIL;
        snprintf(r->err, sizeof r->err, "bad document job: %s", err);
        return;
    }
    enum dep_track tr = deps_track(d, DEP_CACHE, j.chat_id);
    if (s->o.use_file_ids) {
        Engbot__Cache__V1__GetFileIdRequest req = ENGBOT__CACHE__V1__GET_FILE_ID_REQUEST__INIT;
        req.bot_id = s->o.bot_id;
        req.id = j.id;
        ProtobufCMessage *m = NULL;
        struct rpc_status st;
        int code = deps_unary_on(d, DEP_CACHE, tr, "GetFileId", &req.base,
                                 &engbot__cache__v1__get_file_id_response__descriptor, &m,
                                 DEPS_IDEMPOTENT, &st);
        if (code == RPC_OK) {
            Engbot__Cache__V1__GetFileIdResponse *g = (Engbot__Cache__V1__GetFileIdResponse *)m;
            char file_id[TG_FILE_ID_MAX + 1];
            snprintf(file_id, sizeof file_id, "%s", g->file_id ? g->file_id : "");
            protobuf_c_message_free_unpacked(m, NULL);
            char *body = tg_json_send_document_by_id(j.chat_id, file_id, j.caption,
                                                     j.caption[0] ? "HTML" : NULL);
            struct tg_resp resp;
            int rc = tg_http_call(s->o.tg, "sendDocument", body, s->o.telegram_timeout_ms, &resp);
            free(body);
            struct tg_envelope env;
            int oi = classify(s, M_DOC, rc, &resp, &env, r);
            tg_resp_free(&resp);
            if (!file_id_rejected(&env)) {
                count(s, M_DOC, oi, resp.seconds);
                if (r->o == SEND_OK)
                    metric_inc(s->doc_file_id);
                return;
            }
            /* Stale or foreign file_id: forget it, then upload as if there was none. */
            metric_inc(s->file_id_rejected);
            LOG_WARN("Telegram rejected a cached file_id: uploading again", LF_STR("path", j.path),
                     LF_STR("error", r->err));
            Engbot__Cache__V1__DropFileIdRequest drop =
                ENGBOT__CACHE__V1__DROP_FILE_ID_REQUEST__INIT;
            drop.bot_id = s->o.bot_id;
            drop.path = j.path;
            drop.file_id = file_id;
            ProtobufCMessage *dm = NULL;
            deps_unary_on(d, DEP_CACHE, tr, "DropFileId", &drop.base,
                          &engbot__cache__v1__drop_file_id_response__descriptor, &dm, 0, &st);
            if (dm)
                protobuf_c_message_free_unpacked(dm, NULL);
        } else if (code != RPC_NOT_FOUND && deps_code_is_failure(code)) {
            /* cache-svc is down: neither a file_id nor the bytes are reachable. */
            r->o = SEND_BACKOFF;
            snprintf(r->err, sizeof r->err, "cache-svc: %.200s", st.message);
            deps_degraded(d, DEP_CACHE);
            return;
        }
    }
    memset(r, 0, sizeof *r);
    if (!upload_document(s, &j, tr, r))
        send_gone(s, &j, r);
}

void sender_perform(struct sender *s, int64_t chat_id, const char *method, const char *payload,
                    size_t len, struct send_result *r)
{
    memset(r, 0, sizeof *r);
    int mi = method_index(method);
    if (mi == M_DOC && strstr(payload, "\"engbot_file\"")) {
        send_document(s, payload, len, r);
        return;
    }
    struct tg_resp resp;
    int rc = tg_http_call(s->o.tg, method, payload, s->o.telegram_timeout_ms, &resp);
    struct tg_envelope env;
    int oi = classify(s, mi, rc, &resp, &env, r);
    count(s, mi, oi, resp.seconds);
    tg_resp_free(&resp);
}

/* ---- lease loops ---------------------------------------------------------------------------- */

static void sleep_ms(struct sender *s, int64_t ms)
{
    while (ms > 0 && !atomic_load(&s->stop)) {
        int64_t step = ms > 50 ? 50 : ms;
        usleep((useconds_t)(step * 1000));
        ms -= step;
    }
}

/* One settle call (Ack, Retry or Fail), retried while queue-svc does not answer -- a restart, a
 * lost connection -- until shortly before the lease runs out: a settle that never lands makes
 * queue-svc send the job again when the lease expires (a second copy for an Ack). Only while
 * queue-svc looks up (DEPS_WHEN_UP): the probe thread finds it back. Any answer ends it, also
 * FAILED_PRECONDITION (the lease is gone: queue-svc restarted without it, or it expired). */
static int settle_call(struct sender *s, enum dep_track tr, const char *method,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                       int64_t until_ms, struct rpc_status *st)
{
    int64_t backoff = 100;
    for (;;) {
        ProtobufCMessage *resp = NULL;
        int code = deps_unary_on(s->o.deps, DEP_QUEUE, tr, method, req, desc, &resp,
                                 DEPS_WHEN_UP, st);
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
        if (!deps_code_is_failure(code) || atomic_load(&s->stop) ||
            clock_mono_ms() + backoff >= until_ms)
            return code;
        sleep_ms(s, backoff);
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
}

/* leased_ms: clock_mono_ms when the Lease answered (the lease runs lease_ms from about then). */
static void settle(struct sender *s, enum dep_track tr, const Engbot__Queue__V1__Job *job,
                   const struct send_result *r, int64_t leased_ms)
{
    struct rpc_status st;
    int code;
    const char *what;
    /* Keep a margin: a settle landing after the lease ran out is refused anyway. */
    int64_t margin = s->o.lease_ms / 10 > 1000 ? 1000 : s->o.lease_ms / 10;
    int64_t until = leased_ms + s->o.lease_ms - margin;
    if (r->o == SEND_OK) {
        Engbot__Queue__V1__AckRequest a = ENGBOT__QUEUE__V1__ACK_REQUEST__INIT;
        a.id = job->id;
        a.lease_token = job->lease_token;
        what = "Ack";
        code = settle_call(s, tr, what, &a.base, &engbot__queue__v1__ack_response__descriptor,
                           until, &st);
    } else if (r->o == SEND_FAIL) {
        Engbot__Queue__V1__FailRequest f = ENGBOT__QUEUE__V1__FAIL_REQUEST__INIT;
        f.id = job->id;
        f.lease_token = job->lease_token;
        f.error = (char *)r->err;
        what = "Fail";
        LOG_WARN("reply failed for good", LF_STR("method", job->method),
                 LF_I64("chat_id", job->lane_key), LF_STR("error", r->err));
        code = settle_call(s, tr, what, &f.base, &engbot__queue__v1__fail_response__descriptor,
                           until, &st);
    } else {
        Engbot__Queue__V1__RetryRequest q = ENGBOT__QUEUE__V1__RETRY_REQUEST__INIT;
        q.id = job->id;
        q.lease_token = job->lease_token;
        q.error = (char *)r->err;
        char *np = NULL;
        if (r->o == SEND_RETRY_AFTER) {
            q.retry_after_ms = (uint32_t)(r->retry_after_ms > 0 ? r->retry_after_ms : 1000);
        } else if (r->o == SEND_MIGRATE) {
            np = tg_json_with_chat_id((const char *)job->payload.data, job->payload.len,
                                      r->new_chat_id);
            q.new_lane_key = r->new_chat_id;
            if (np) {
                q.new_payload.data = (uint8_t *)np;
                q.new_payload.len = strlen(np);
            }
            q.retry_after_ms = 1; /* go again at once, in the new lane */
            LOG_INFO("group upgraded to a supergroup: resending to the new chat",
                     LF_I64("chat_id", job->lane_key), LF_I64("new_chat_id", r->new_chat_id));
        }
        what = "Retry";
        code = settle_call(s, tr, what, &q.base, &engbot__queue__v1__retry_response__descriptor,
                           until, &st);
        free(np);
    }
    if (code != RPC_OK) {
        metric_inc(s->settle_fail);
        LOG_WARN("queue-svc did not take the outcome (the lease will expire and the job return)",
                 LF_STR("call", what), LF_U64("job", job->id), LF_STR("code", rpc_code_name(code)),
                 LF_STR("error", st.message));
    }
}

static void *lease_loop(void *arg)
{
    struct lease_arg *la = arg;
    struct sender *s = la->s;
    struct deps *d = s->o.deps;
    while (!atomic_load(&s->stop)) {
        struct rpc_status st;
        if (!deps_allow(d, DEP_QUEUE, la->track, &st)) {
            sleep_ms(s, 200);
            continue;
        }
        Engbot__Queue__V1__LeaseRequest lr = ENGBOT__QUEUE__V1__LEASE_REQUEST__INIT;
        lr.max_jobs = (uint32_t)s->o.lease_batch;
        lr.wait_ms = (uint32_t)s->o.lease_wait_ms;
        lr.lease_ms = (uint32_t)s->o.lease_ms;
        lr.sender = (char *)s->o.name;
        ProtobufCMessage *m = NULL;
        int code =
            rpc_unary(deps_channel(d, DEP_QUEUE, la->track), "/engbot.queue.v1.QueueService/Lease",
                      &lr.base, &engbot__queue__v1__lease_response__descriptor, &m,
                      s->o.lease_wait_ms + deps_deadline_ms(d, DEP_QUEUE), RPC_CALL_WAIT_FOR_READY,
                      NULL, 0, &st);
        deps_report(d, DEP_QUEUE, la->track, code);
        if (code != RPC_OK) {
            if (!atomic_load(&s->stop))
                LOG_DEBUG("lease failed", LF_STR("code", rpc_code_name(code)),
                          LF_STR("error", st.message));
            sleep_ms(s, 200);
            continue;
        }
        int64_t leased_ms = clock_mono_ms();
        Engbot__Queue__V1__LeaseResponse *lresp = (Engbot__Queue__V1__LeaseResponse *)m;
        for (size_t i = 0; i < lresp->n_jobs; i++) {
            const Engbot__Queue__V1__Job *job = lresp->jobs[i];
            struct send_result r;
            /* Payloads are our own JSON: make sure it is a C string before using it. */
            char *payload = malloc(job->payload.len + 1);
            if (!payload)
                abort();
            memcpy(payload, job->payload.data, job->payload.len);
            payload[job->payload.len] = '\0';
            sender_perform(s, job->lane_key, job->method ? job->method : "", payload,
                           job->payload.len, &r);
            free(payload);
            settle(s, la->track, job, &r, leased_ms);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return NULL;
}

void sender_start(struct sender *s)
{
    struct deps *d = s->o.deps;
    int tracks = deps_has_canary(d, DEP_QUEUE) ? 2 : 1;
    s->threads = calloc((size_t)(tracks * s->o.threads), sizeof *s->threads);
    if (!s->threads)
        abort();
    for (int t = 0; t < tracks; t++) {
        g_args[t] = (struct lease_arg){.s = s, .track = (enum dep_track)t};
        for (int i = 0; i < s->o.threads; i++)
            if (pthread_create(&s->threads[s->nthreads++], NULL, lease_loop, &g_args[t]) != 0)
                abort();
    }
}

void sender_stop(struct sender *s)
{
    atomic_store(&s->stop, true);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    s->nthreads = 0;
}

void sender_free(struct sender *s)
{
    if (!s)
        return;
    if (s->nthreads)
        sender_stop(s);
    free(s->threads);
    free(s);
}
