/* service.c -- engbot.session.v1.SessionService handlers (see service.h).
 *
 * Every request is validated here before it reaches the store (chat id present, texts within
 * MAX_TEXT_BYTES and valid UTF-8, state keys non-empty); store and persistence errors become a
 * gRPC status in exactly one place per handler. Fast methods run on the completion-queue
 * threads (the store never does I/O on them); ListSessions scans the table and Backup writes a
 * file, so they run on the worker pool. */
#include "service.h"
#include "clock.h"
#include "conf.h"
#include "engbot/session/v1/session.pb-c.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DELETE_KEYS                                                                            \
    1024 /* per UpdateSession: deleting absent keys is harmless but not free                       \
          */
#define LIST_DEFAULT 100
#define LIST_MAX     1000

typedef Engbot__Session__V1__Session PbSession;
typedef Engbot__Session__V1__Session__StateEntry PbEntry;

static void *call_alloc(void *ctx, size_t n)
{
    return rpc_call_alloc(ctx, n);
}

/* The response form of a session, in call memory (strings borrowed from s, itself in call
 * memory). */
static PbSession *to_pb(struct rpc_call *c, const struct session *s)
{
    PbSession *m = rpc_call_alloc(c, sizeof *m);
    engbot__session__v1__session__init(m);
    m->chat_id = s->chat_id;
    m->user_id = s->user_id;
    m->folder_id = (char *)s->folder_id;
    m->page = s->page;
    m->last_search = (char *)s->last_search;
    m->created_unix_ms = s->created_ms;
    m->last_active_unix_ms = s->last_active_ms;
    m->version = s->version;
    m->browser_message_id = s->browser_message_id;
    if (s->n_state) {
        PbEntry *e = rpc_call_alloc(c, s->n_state * sizeof *e);
        PbEntry **p = rpc_call_alloc(c, s->n_state * sizeof *p);
        for (uint32_t i = 0; i < s->n_state; i++) {
            engbot__session__v1__session__state_entry__init(&e[i]);
            e[i].key = (char *)s->state[i].key;
            e[i].value = (char *)s->state[i].value;
            p[i] = &e[i];
        }
        m->n_state = s->n_state;
        m->state = p;
    }
    return m;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* Checks a text field; on failure sets the status and returns false. */
static bool check_text(struct rpc_call *c, const struct session_service *ss, const char *field,
                       const char *v, size_t max, int *code)
{
    size_t n = strlen(v);
    if (n > max) {
        *code = rpc_call_errorf(
            c, RPC_INVALID_ARGUMENT, "%s is %zu bytes; the limit is %zu (%s)", field, n, max,
            max == ss->lim.max_text_bytes ? "MAX_TEXT_BYTES" : "MAX_STATE_BYTES");
        return false;
    }
    if (!utf8_valid(v)) {
        *code = rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "%s is not valid UTF-8", field);
        return false;
    }
    return true;
}

static int need_chat(struct rpc_call *c, int64_t chat_id)
{
    if (chat_id == 0)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "chat_id is required: the Telegram chat id (a non-zero 64-bit "
                               "integer; in JSON a string like \"chatId\": \"42\")");
    return RPC_OK;
}

static int not_found(struct rpc_call *c, const struct session_service *ss, int64_t chat_id)
{
    return rpc_call_errorf(c, RPC_NOT_FOUND,
                           "no session for chat %" PRId64 " (never created, deleted, or idle "
                           "longer than INACTIVITY_THRESHOLD = %" PRId64 "s); TouchSession "
                           "creates one",
                           chat_id, ss->lim.inactivity_ms / 1000);
}

static int get_session(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                       void *svc)
{
    const Engbot__Session__V1__GetSessionRequest *rq = (const void *)req;
    Engbot__Session__V1__GetSessionResponse *rs = (void *)resp;
    struct session_service *ss = svc;
    struct session s;
    int code = need_chat(c, rq->chat_id);
    if (code != RPC_OK)
        return code;
    if (store_get(ss->st, rq->chat_id, &s, call_alloc, c) != STORE_OK)
        return not_found(c, ss, rq->chat_id);
    rs->session = to_pb(c, &s);
    return RPC_OK;
}

static int touch_session(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                         void *svc)
{
    const Engbot__Session__V1__TouchSessionRequest *rq = (const void *)req;
    Engbot__Session__V1__TouchSessionResponse *rs = (void *)resp;
    struct session_service *ss = svc;
    struct session s;
    bool created;
    int code = need_chat(c, rq->chat_id);
    if (code != RPC_OK)
        return code;
    store_touch(ss->st, rq->chat_id, rq->user_id, &s, call_alloc, c, &created);
    rs->session = to_pb(c, &s);
    rs->created = created;
    return RPC_OK;
}

static int update_session(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                          void *svc)
{
    const Engbot__Session__V1__UpdateSessionRequest *rq = (const void *)req;
    Engbot__Session__V1__UpdateSessionResponse *rs = (void *)resp;
    struct session_service *ss = svc;
    struct store_update u = {.chat_id = rq->chat_id, .expected_version = rq->expected_version};
    int code = need_chat(c, rq->chat_id);
    if (code != RPC_OK)
        return code;
    if (rq->user_id) {
        u.has_user_id = true;
        u.user_id = rq->user_id->value;
    }
    if (rq->folder_id) {
        u.has_folder_id = true;
        u.folder_id = rq->folder_id->value ? rq->folder_id->value : "";
        if (!check_text(c, ss, "folder_id", u.folder_id, ss->lim.max_text_bytes, &code))
            return code;
    }
    if (rq->page) {
        u.has_page = true;
        u.page = rq->page->value;
    }
    if (rq->last_search) {
        u.has_last_search = true;
        u.last_search = rq->last_search->value ? rq->last_search->value : "";
        if (!check_text(c, ss, "last_search", u.last_search, ss->lim.max_text_bytes, &code))
            return code;
    }
    if (rq->browser_message_id) {
        u.has_browser_message_id = true;
        u.browser_message_id = rq->browser_message_id->value;
    }
    u.clear_state = rq->clear_state;
    if (rq->n_delete_state > MAX_DELETE_KEYS)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "delete_state names %zu keys; at most %d per call (use clear_state "
                               "to drop them all)",
                               rq->n_delete_state, MAX_DELETE_KEYS);
    for (size_t i = 0; i < rq->n_delete_state; i++)
        if (!rq->delete_state[i])
            return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "delete_state[%zu] is missing", i);
    u.n_delete = rq->n_delete_state;
    u.delete_keys = (const char *const *)rq->delete_state;
    if (rq->n_set_state > ss->lim.max_state_keys)
        return rpc_call_errorf(c, RPC_RESOURCE_EXHAUSTED,
                               "set_state has %zu keys; MAX_STATE_KEYS is %u per session",
                               rq->n_set_state, ss->lim.max_state_keys);
    struct session_kv *set = NULL;
    if (rq->n_set_state) {
        set = rpc_call_alloc(c, rq->n_set_state * sizeof *set);
        for (size_t i = 0; i < rq->n_set_state; i++) {
            const Engbot__Session__V1__UpdateSessionRequest__SetStateEntry *e = rq->set_state[i];
            const char *k = e && e->key ? e->key : "", *v = e && e->value ? e->value : "";
            if (!*k)
                return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                                       "set_state has an empty key; keys must be non-empty");
            if (!check_text(c, ss, "a set_state key", k, ss->lim.max_state_bytes, &code) ||
                !check_text(c, ss, "a set_state value", v, ss->lim.max_state_bytes, &code))
                return code;
            set[i] = (struct session_kv){k, v};
        }
    }
    u.n_set = rq->n_set_state;
    u.set = set;

    struct session s;
    struct store_fail fail;
    switch (store_update(ss->st, &u, &s, call_alloc, c, &fail)) {
    case STORE_OK:
        rs->session = to_pb(c, &s);
        return RPC_OK;
    case STORE_ENOTFOUND:
        return not_found(c, ss, rq->chat_id);
    case STORE_EVERSION: {
        char v[32];
        snprintf(v, sizeof v, "%" PRIu64, fail.current_version);
        rpc_call_add_trailer(c, "engbot-current-version", v);
        return rpc_call_errorf(c, RPC_ABORTED,
                               "version mismatch for chat %" PRId64 ": expected_version is %" PRIu64
                               " but the current version is %" PRIu64
                               "; re-read the session (GetSession) and retry with that version",
                               rq->chat_id, rq->expected_version, fail.current_version);
    }
    case STORE_EKEYS:
        return rpc_call_errorf(c, RPC_RESOURCE_EXHAUSTED,
                               "the state would hold %" PRIu64 " keys; MAX_STATE_KEYS is %u: "
                               "remove keys (delete_state or clear_state) first",
                               fail.keys, ss->lim.max_state_keys);
    case STORE_EBYTES:
        return rpc_call_errorf(c, RPC_RESOURCE_EXHAUSTED,
                               "the state would hold %" PRIu64 " bytes of keys and values; "
                               "MAX_STATE_BYTES is %u: remove keys or store less",
                               fail.bytes, ss->lim.max_state_bytes);
    }
    return rpc_call_errorf(c, RPC_INTERNAL, "unexpected store result");
}

static int delete_session(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                          void *svc)
{
    const Engbot__Session__V1__DeleteSessionRequest *rq = (const void *)req;
    struct session_service *ss = svc;
    int code = need_chat(c, rq->chat_id);
    if (code != RPC_OK)
        return code;
    if (store_delete(ss->st, rq->chat_id) != STORE_OK)
        return not_found(c, ss, rq->chat_id);
    return RPC_OK;
}

static int list_sessions(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                         void *svc)
{
    const Engbot__Session__V1__ListSessionsRequest *rq = (const void *)req;
    Engbot__Session__V1__ListSessionsResponse *rs = (void *)resp;
    struct session_service *ss = svc;
    size_t page = rq->page_size ? rq->page_size : LIST_DEFAULT;
    if (page > LIST_MAX)
        page = LIST_MAX; /* as documented: larger sizes are served as the maximum */
    struct store_cursor after, next;
    bool has_after = false;
    if (rq->page_token && *rq->page_token) {
        long long ms, chat;
        char tail;
        if (sscanf(rq->page_token, "%lld.%lld%c", &ms, &chat, &tail) != 2)
            return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                                   "page_token '%.64s' is not one this service returned: pass "
                                   "next_page_token from the previous response, or leave it "
                                   "empty for the first page",
                                   rq->page_token);
        after = (struct store_cursor){ms, chat};
        has_after = true;
    }
    struct session *out = rpc_call_alloc(c, page * sizeof *out);
    size_t n;
    bool more;
    store_list(ss->st, page, has_after ? &after : NULL, (int64_t)rq->min_idle_seconds * 1000, out,
               &n, &more, &next, call_alloc, c);
    if (n) {
        rs->sessions = rpc_call_alloc(c, n * sizeof *rs->sessions);
        for (size_t i = 0; i < n; i++)
            rs->sessions[i] = to_pb(c, &out[i]);
        rs->n_sessions = n;
    }
    if (more) {
        char tok[64];
        snprintf(tok, sizeof tok, "%" PRId64 ".%" PRId64, next.last_active_ms, next.chat_id);
        rs->next_page_token = rpc_call_strdup(c, tok);
    }
    return RPC_OK;
}

static int get_stats(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                     void *svc)
{
    Engbot__Session__V1__GetStatsResponse *rs = (void *)resp;
    struct session_service *ss = svc;
    struct store_stats st;
    store_stats(ss->st, &st);
    rs->active = st.active;
    rs->created_total = st.created;
    rs->expired_total = st.expired;
    rs->evicted_total = st.evicted;
    rs->deleted_total = st.deleted;
    rs->cleanup_runs_total = ss->sweeper ? sweeper_runs(ss->sweeper) : 0;
    rs->max_sessions = ss->lim.max_sessions;
    rs->inactivity_threshold_seconds = (uint64_t)(ss->lim.inactivity_ms / 1000);
    rs->cleanup_interval_seconds = (uint64_t)(ss->lim.cleanup_ms / 1000);
    rs->max_state_keys = ss->lim.max_state_keys;
    rs->max_state_bytes = ss->lim.max_state_bytes;
    rs->version = (char *)engbot_version;
    rs->uptime_seconds = (uint64_t)((clock_mono_ms() - ss->started_mono_ms) / 1000);
    return RPC_OK;
}

static int backup(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                  void *svc)
{
    const Engbot__Session__V1__BackupRequest *rq = (const void *)req;
    Engbot__Session__V1__BackupResponse *rs = (void *)resp;
    struct session_service *ss = svc;
    char path[4096], err[512] = "";
    uint64_t sessions = 0, bytes = 0;
    switch (persist_backup(ss->persist, rq->name, path, sizeof path, &sessions, &bytes, err,
                           sizeof err)) {
    case PERSIST_OK:
        break;
    case PERSIST_EINVAL:
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "%s", err);
    case PERSIST_EEXIST:
        return rpc_call_errorf(c, RPC_ALREADY_EXISTS, "%s", err);
    case PERSIST_EIO:
        LOG_ERROR("backup failed", LF_STR("error", err));
        return rpc_call_errorf(c, RPC_INTERNAL, "backup failed: %s", err);
    }
    char *abs = realpath(path, NULL);
    rs->path = rpc_call_strdup(c, abs ? abs : path);
    free(abs);
    rs->sessions = sessions;
    rs->bytes = bytes;
    return RPC_OK;
}

static const struct rpc_method methods[] = {
    RPC_UNARY("GetSession", get_session, 0),
    RPC_UNARY("TouchSession", touch_session, 0),
    RPC_UNARY("UpdateSession", update_session, 0),
    RPC_UNARY("DeleteSession", delete_session, 0),
    RPC_UNARY("ListSessions", list_sessions, RPC_F_BLOCKING),
    RPC_UNARY("GetStats", get_stats, 0),
    RPC_UNARY("Backup", backup, RPC_F_BLOCKING),
};

const struct rpc_method *session_service_methods(size_t *n)
{
    *n = sizeof methods / sizeof methods[0];
    return methods;
}

void session_service_register(struct rpc_server *s, struct session_service *ss)
{
    rpc_server_add_service(s, &engbot__session__v1__session_service__descriptor, methods,
                           sizeof methods / sizeof methods[0], ss);
}
