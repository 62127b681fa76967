/* service_fileid.c -- GetFileId, PutFileId, DropFileId: Telegram file_id reuse keyed by bot,
 * path, size and mtime. Puts and drops answer once the file_id log has them on disk. */
#include "service_internal.h"

#include <pthread.h>
#include <string.h>

/* Waiting for the file_id log's fsync (group commit: concurrent puts share one). */
struct durable_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int err;
};

static void on_durable(void *arg, int err)
{
    struct durable_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int wait_durable(struct durable_wait *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    int err = w->err;
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return err;
}

static int check_bot(struct rpc_call *c, int64_t bot)
{
    if (bot > 0)
        return RPC_OK;
    return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                           "bot_id must be the bot's numeric id (the part of its token before "
                           "':'), got %lld",
                           (long long)bot);
}

int service_get_file_id(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__GetFileIdRequest *rq = (const void *)req;
    Engbot__Cache__V1__GetFileIdResponse *rs = (void *)resp;
    char *path;
    int code = service_check_nul(s, c, req->descriptor);
    if (code || (code = check_bot(c, rq->bot_id)) ||
        (code = service_locate(s, c, rq->id, rq->path, false, &path)))
        return code;
    /* Not the existence cache: a file_id must never stand for a file that changed since, so
     * the file is stat'ed every time (one walk under the root; cheap next to a Telegram call). */
    struct stat st;
    struct ps_err e;
    if (ps_resolve(s->d.root, path, PS_WANT_FILE, NULL, &st, &e) < 0) {
        if (e.reason != PS_IO)
            scan_path(s->d.scan, path, SCAN_EXISTENCE, NULL);
        return service_refuse(s, c, &e, "path");
    }
    exist_mark(s->d.exist, path);
    Entry *now = service_entry_at(s, c, path);
    if (now && (now->size != (uint64_t)st.st_size || now->mtime_unix_ms != service_mtime_ms(&st))) {
        scan_path(s->d.scan, path, SCAN_EXISTENCE, NULL); /* the catalogue was behind */
        now = service_entry_at(s, c, path);
    }
    if (!now || now->kind != ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FILE)
        return rpc_call_errorf(c, now ? RPC_FAILED_PRECONDITION : RPC_NOT_FOUND,
                               now ? "a folder has no file_id" : "the file left the catalogue");
    char id[FIDREC_MAX_ID + 1];
    uint64_t size;
    int64_t mtime;
    if (fileids_get(s->d.fileids, rq->bot_id, path, id, &size, &mtime) != FILEIDS_OK) {
        cachestat_miss(&s->fid_cs);
        return rpc_call_errorf(c, RPC_NOT_FOUND, "no file_id is stored for this file and bot");
    }
    if (size != now->size || mtime != now->mtime_unix_ms) {
        cachestat_miss(&s->fid_cs);
        return rpc_call_errorf(c, RPC_NOT_FOUND,
                               "the file changed since its file_id was stored (stored: %llu bytes, "
                               "mtime %lld; now: %llu bytes, mtime %lld): upload it again",
                               (unsigned long long)size, (long long)mtime,
                               (unsigned long long)now->size, (long long)now->mtime_unix_ms);
    }
    cachestat_hit(&s->fid_cs);
    rs->file_id = rpc_call_strdup(c, id);
    Engbot__Cache__V1__FileKey *k = rpc_call_alloc(c, sizeof *k);
    engbot__cache__v1__file_key__init(k);
    k->bot_id = rq->bot_id;
    k->path = path;
    k->size = size;
    k->mtime_unix_ms = mtime;
    rs->key = k;
    return RPC_OK;
}

int service_put_file_id(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__PutFileIdRequest *rq = (const void *)req;
    Engbot__Cache__V1__PutFileIdResponse *rs = (void *)resp;
    int code = service_check_nul(s, c, req->descriptor);
    if (code)
        return code;
    const Engbot__Cache__V1__FileKey *k = rq->key;
    if (!k)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "key is required (bot_id, path, size, "
                               "mtime_unix_ms from ReadFile)");
    if ((code = check_bot(c, k->bot_id)))
        return code;
    if (!fidrec_id_ok(rq->file_id, strlen(rq->file_id)))
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "file_id must be 1 to %d characters of A-Z a-z 0-9 _ -",
                               FIDREC_MAX_ID);
    char *path;
    if ((code = service_locate(s, c, NULL, k->path, false, &path)))
        return code;
    Entry *now = service_entry_at(s, c, path);
    if (!now || now->kind != ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FILE)
        return rpc_call_errorf(c, now ? RPC_FAILED_PRECONDITION : RPC_NOT_FOUND,
                               now ? "a folder has no file_id" : "the file left the catalogue");
    if (now->size != k->size || now->mtime_unix_ms != k->mtime_unix_ms) {
        rs->stored = false; /* uploaded an older version: next send uploads the new one */
        return RPC_OK;
    }
    struct durable_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int rc = fileids_put(s->d.fileids, k->bot_id, path, k->size, k->mtime_unix_ms, rq->file_id,
                         on_durable, &w);
    if (rc == FILEIDS_FULL)
        return rpc_call_errorf(c, RPC_RESOURCE_EXHAUSTED,
                               "the file_id store is full "
                               "(MAX_FILE_IDS)");
    if (rc != FILEIDS_OK)
        return rpc_call_errorf(c, RPC_UNAVAILABLE, "the file_id store cannot write");
    int err = wait_durable(&w);
    if (err)
        return rpc_call_errorf(c, RPC_UNAVAILABLE, "the file_id store cannot write: %s",
                               strerror(err));
    rs->stored = true;
    return RPC_OK;
}

int service_drop_file_id(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                         void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__DropFileIdRequest *rq = (const void *)req;
    Engbot__Cache__V1__DropFileIdResponse *rs = (void *)resp;
    struct ps_err e;
    int code = service_check_nul(s, c, req->descriptor);
    if (code || (code = check_bot(c, rq->bot_id)))
        return code;
    if (!rq->path[0])
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "path is required");
    if (!ps_check_path(rq->path, strlen(rq->path), &e))
        return service_refuse(s, c, &e, "path");
    if (rq->file_id[0] && !fidrec_id_ok(rq->file_id, strlen(rq->file_id)))
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "file_id must be 1 to %d characters of A-Z a-z 0-9 _ -",
                               FIDREC_MAX_ID);
    struct durable_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int rc = fileids_drop(s->d.fileids, rq->bot_id, rq->path, rq->file_id, on_durable, &w);
    if (rc == FILEIDS_NOT_FOUND) {
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
        rs->dropped = false;
        return RPC_OK;
    }
    if (rc != FILEIDS_OK)
        return rpc_call_errorf(c, RPC_UNAVAILABLE, "the file_id store cannot write");
    int err = wait_durable(&w);
    if (err)
        return rpc_call_errorf(c, RPC_UNAVAILABLE, "the file_id store cannot write: %s",
                               strerror(err));
    rs->dropped = true;
    return RPC_OK;
}
