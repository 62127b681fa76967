/* service.c -- the CacheService catalogue methods (ListFolder, Search, Resolve, Invalidate,
 * GetStats), the helpers every handler shares, and the wiring; ReadFile is service_read.c, the
 * file_id methods service_fileid.c.
 *
 * Every handler that takes a string first checks the request's wire bytes for NUL bytes
 * (wirecheck.h), then the path-safety rules, then the catalogue; a path the catalogue does not
 * know is looked up on disk (pathsafe) so a refusal carries its real reason (a symlink that
 * leaves the root is PERMISSION_DENIED, not NOT_FOUND) and a file added since the last event
 * is found. Everything but GetStats may touch the disk, so it runs on the worker pool
 * (RPC_F_BLOCKING). */
#include "service.h"
#include "service_internal.h"
#include "clock.h"
#include "conf.h"
#include "engbot/cache/v1/cache.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "rpc.h"
#include "wirecheck.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT   20
#define LIST_MAX       500
#define SEARCH_DEFAULT 20
#define SEARCH_MAX     200
#define CANDIDATES_MAX 20

/* ---- errors ---------------------------------------------------------------------------------- */

/* Maps a path-safety result to a status (once, here) and counts refusals by reason. */
int service_refuse(struct service *s, struct rpc_call *c, const struct ps_err *e, const char *what)
{
    int code;
    if (ps_is_malformed(e->reason))
        code = RPC_INVALID_ARGUMENT;
    else if (ps_is_refusal(e->reason))
        code = RPC_PERMISSION_DENIED;
    else if (e->reason == PS_NOT_FOUND)
        code = RPC_NOT_FOUND;
    else if (e->reason == PS_WRONG_KIND)
        code = RPC_FAILED_PRECONDITION;
    else
        code = RPC_UNAVAILABLE;
    if (ps_is_refusal(e->reason)) {
        metric_inc(s->m_refused[e->reason]);
        LOG_DEBUG("refused", LF_STR("method", rpc_call_method(c)),
                  LF_STR("reason", ps_reason_name(e->reason)), LF_STR("peer", rpc_call_peer(c)));
    }
    return rpc_call_errorf(c, code, "%s: %s", what, e->msg);
}

/* RPC_OK, or INVALID_ARGUMENT when a string field of the request holds a NUL byte. */
int service_check_nul(struct service *s, struct rpc_call *c, const ProtobufCMessageDescriptor *d)
{
    size_t len;
    const uint8_t *raw = rpc_call_request_bytes(c, &len);
    const char *field;
    if (!wire_string_has_nul(d, raw, len, &field))
        return RPC_OK;
    metric_inc(s->m_refused[PS_NUL]);
    return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                           "%s holds a NUL byte: names and paths never contain one", field);
}

/* ---- entries -----------------------------------------------------------------------------------
 */

Entry *service_entry_of(struct rpc_call *c, const struct cat_info *in)
{
    Entry *e = rpc_call_alloc(c, sizeof *e);
    engbot__cache__v1__entry__init(e);
    e->id = rpc_call_strdup(c, in->id);
    e->name = rpc_call_strdup(c, in->name);
    e->path = rpc_call_strdup(c, in->path);
    e->kind = in->kind == CAT_FOLDER ? ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FOLDER
                                     : ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FILE;
    e->size = in->size;
    e->mtime_unix_ms = in->mtime_ms;
    e->content_type = rpc_call_strdup(c, in->content_type);
    e->parent_id = rpc_call_strdup(c, in->parent_id);
    e->child_count = in->child_count;
    return e;
}

/* The catalogue entry at path now, in call memory; NULL when it is not there. */
Entry *service_entry_at(struct service *s, struct rpc_call *c, const char *path)
{
    Entry *e = NULL;
    cat_rdlock(s->d.cat);
    uint32_t slot = cat_by_path(s->d.cat, path);
    if (slot != CAT_NONE) {
        struct cat_info in;
        cat_get(s->d.cat, slot, &in);
        e = service_entry_of(c, &in);
    }
    cat_unlock(s->d.cat);
    return e;
}

/* Finds the entry named by id (when set) or path ("" is the root when root_ok); *out is its
 * path in call memory. RPC_OK or a status already set on c. */
int service_locate(struct service *s, struct rpc_call *c, const char *id, const char *path,
                   bool root_ok, char **out)
{
    if (id && *id) {
        uint64_t hid;
        if (!catid_parse(id, strlen(id), &hid))
            return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                                   "id '%.32s' is malformed: an id is %d characters of 0-9 and "
                                   "a-z (without i, l, o, u)",
                                   id, CATID_LEN);
        cat_rdlock(s->d.cat);
        uint32_t slot = cat_by_id(s->d.cat, id, strlen(id));
        if (slot != CAT_NONE)
            *out = rpc_call_strdup(c, cat_path(s->d.cat, slot));
        cat_unlock(s->d.cat);
        if (slot == CAT_NONE) {
            cachestat_miss(&s->cat_cs);
            return rpc_call_errorf(c, RPC_NOT_FOUND,
                                   "no entry has id %s (the tree changed? list the folder again)",
                                   id);
        }
        cachestat_hit(&s->cat_cs);
        return RPC_OK;
    }
    if (!path)
        path = "";
    if (!*path && !root_ok)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "give an id or a path");
    struct ps_err e;
    if (!ps_check_path(path, strlen(path), &e))
        return service_refuse(s, c, &e, "path");
    cat_rdlock(s->d.cat);
    bool found = cat_by_path(s->d.cat, path) != CAT_NONE;
    cat_unlock(s->d.cat);
    if (found) {
        cachestat_hit(&s->cat_cs);
        *out = rpc_call_strdup(c, path);
        return RPC_OK;
    }
    cachestat_miss(&s->cat_cs);
    /* Not catalogued: what is on disk there? A refusal says why; something allowed is a
     * change no event told us about yet. */
    if (ps_resolve(s->d.root, path, PS_WANT_ANY, NULL, NULL, &e) < 0)
        return service_refuse(s, c, &e, "path");
    if (scan_path(s->d.scan, path, SCAN_EXISTENCE, NULL) == 1) {
        *out = rpc_call_strdup(c, path);
        return RPC_OK;
    }
    return rpc_call_errorf(c, RPC_NOT_FOUND,
                           "path is on disk but not in the catalogue (MAX_ENTRIES reached?)");
}

/* The existence cache's verdict on path as a status. */
int service_verify(struct service *s, struct rpc_call *c, const char *path)
{
    struct ps_err e;
    switch (exist_verify(s->d.exist, path, &e)) {
    case EXIST_OK:
        return RPC_OK;
    case EXIST_GONE:
        return rpc_call_errorf(c, RPC_NOT_FOUND,
                               "'%.200s' no longer exists on disk (removed from the catalogue)",
                               path);
    case EXIST_REFUSED:
        return service_refuse(s, c, &e, "path");
    case EXIST_IO:
    default:
        return rpc_call_errorf(c, RPC_UNAVAILABLE, "cannot check '%.200s' on disk: %s", path,
                               e.msg);
    }
}

/* ---- handlers -----------------------------------------------------------------------------------
 */

/* True when the entry named by id or path is catalogued and was checked on disk within
 * FILE_CACHE_DURATION: the answer is all in memory, so the handler may run on a
 * completion-queue thread. Anything else (an unknown path, a due check, a name) goes to the
 * worker pool, where the disk may be asked (a network volume can take its time). */
static bool in_memory(struct service *s, const char *id, const char *path)
{
    char *p = NULL;
    cat_rdlock(s->d.cat);
    uint32_t slot = id && *id ? cat_by_id(s->d.cat, id, strlen(id))
                              : cat_by_path(s->d.cat, path ? path : "");
    if (slot != CAT_NONE)
        p = strdup(cat_path(s->d.cat, slot));
    cat_unlock(s->d.cat);
    bool fresh = p && exist_fresh(s->d.exist, p);
    free(p);
    return fresh;
}

static int h_list(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                  void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__ListFolderRequest *rq = (const void *)req;
    Engbot__Cache__V1__ListFolderResponse *rs = (void *)resp;
    char *path;
    if (!rpc_call_offloaded(c) && !in_memory(s, rq->folder_id, rq->path))
        return rpc_call_offload(c, h_list);
    int code = service_check_nul(s, c, req->descriptor);
    if (code || (code = service_locate(s, c, rq->folder_id, rq->path, true, &path)))
        return code;
    uint32_t size =
        rq->page_size ? (rq->page_size > LIST_MAX ? LIST_MAX : rq->page_size) : LIST_DEFAULT;
    uint32_t *slots = rpc_call_alloc(c, size * sizeof *slots);
    cat_rdlock(s->d.cat);
    uint32_t folder = cat_by_path(s->d.cat, path);
    if (folder == CAT_NONE || cat_kind_of(s->d.cat, folder) != CAT_FOLDER) {
        cat_unlock(s->d.cat);
        return folder == CAT_NONE
                   ? rpc_call_errorf(c, RPC_NOT_FOUND, "the folder left the catalogue")
                   : rpc_call_errorf(c, RPC_FAILED_PRECONDITION,
                                     "'%.200s' is a file: list its folder, or read it", path);
    }
    size_t total = cat_list(s->d.cat, folder, 0, 0, NULL);
    uint32_t pages = total ? (uint32_t)((total + size - 1) / size) : 1;
    uint32_t page = rq->page < pages ? rq->page : pages - 1;
    size_t off = (size_t)page * size;
    size_t n = total > off ? total - off : 0;
    if (n > size)
        n = size;
    cat_list(s->d.cat, folder, off, n, slots);
    struct cat_info in;
    cat_get(s->d.cat, folder, &in);
    rs->folder = service_entry_of(c, &in);
    rs->entries = rpc_call_alloc(c, (n ? n : 1) * sizeof *rs->entries);
    for (size_t i = 0; i < n; i++) {
        cat_get(s->d.cat, slots[i], &in);
        rs->entries[i] = service_entry_of(c, &in);
    }
    cat_unlock(s->d.cat);
    rs->n_entries = n;
    rs->total = (uint32_t)total;
    rs->page = page;
    rs->pages = pages;
    return RPC_OK;
}

static int h_search(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                    void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__SearchRequest *rq = (const void *)req;
    Engbot__Cache__V1__SearchResponse *rs = (void *)resp;
    int code = service_check_nul(s, c, req->descriptor);
    if (code)
        return code;
    uint32_t limit = rq->limit ? (rq->limit > SEARCH_MAX ? SEARCH_MAX : rq->limit) : SEARCH_DEFAULT;
    uint32_t *slots = rpc_call_alloc(c, limit * sizeof *slots);
    cat_rdlock(s->d.cat);
    long total = cat_search(s->d.cat, rq->query, rq->files_only, slots, limit);
    if (total < 0) {
        cat_unlock(s->d.cat);
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                               "query needs 1 to %d words separated by spaces (at most %d bytes)",
                               CAT_MAX_WORDS, CAT_MAX_QUERY);
    }
    size_t n = (size_t)total < limit ? (size_t)total : limit;
    rs->entries = rpc_call_alloc(c, (n ? n : 1) * sizeof *rs->entries);
    for (size_t i = 0; i < n; i++) {
        struct cat_info in;
        cat_get(s->d.cat, slots[i], &in);
        rs->entries[i] = service_entry_of(c, &in);
    }
    cat_unlock(s->d.cat);
    rs->n_entries = n;
    rs->total = (uint32_t)total;
    return RPC_OK;
}

static int resolve_name(struct service *s, struct rpc_call *c, const char *name,
                        Engbot__Cache__V1__ResolveResponse *rs)
{
    struct ps_err e;
    if (!ps_check_name(name, strlen(name), &e))
        return service_refuse(s, c, &e, "name");
    uint32_t slots[CANDIDATES_MAX];
    char *path = NULL;
    cat_rdlock(s->d.cat);
    size_t n = cat_by_name(s->d.cat, name, slots, CANDIDATES_MAX);
    if (n == 1)
        path = rpc_call_strdup(c, cat_path(s->d.cat, slots[0]));
    if (n > 1) {
        size_t k = n < CANDIDATES_MAX ? n : CANDIDATES_MAX;
        rs->candidates = rpc_call_alloc(c, k * sizeof *rs->candidates);
        for (size_t i = 0; i < k; i++) {
            struct cat_info in;
            cat_get(s->d.cat, slots[i], &in);
            rs->candidates[i] = service_entry_of(c, &in);
        }
        rs->n_candidates = k;
    }
    cat_unlock(s->d.cat);
    if (n == 0) {
        cachestat_miss(&s->cat_cs);
        return rpc_call_errorf(c, RPC_NOT_FOUND, "no file is named '%.200s'", name);
    }
    cachestat_hit(&s->cat_cs);
    if (n > 1)
        return RPC_OK; /* ambiguous: the candidates, no entry */
    int code = service_verify(s, c, path);
    if (code)
        return code;
    rs->entry = service_entry_at(s, c, path);
    return rs->entry ? RPC_OK : rpc_call_errorf(c, RPC_NOT_FOUND, "the file left the catalogue");
}

static int h_resolve(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                     void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__ResolveRequest *rq = (const void *)req;
    Engbot__Cache__V1__ResolveResponse *rs = (void *)resp;
    if (!rpc_call_offloaded(c) &&
        (rq->selector_case == ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_NAME ||
         !in_memory(s, rq->selector_case == ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_ID
                           ? rq->id : NULL,
                    rq->selector_case == ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_PATH
                        ? rq->path : "\x01")))
        return rpc_call_offload(c, h_resolve);
    int code = service_check_nul(s, c, req->descriptor);
    if (code)
        return code;
    char *path = NULL;
    switch (rq->selector_case) {
    case ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_ID:
        if (!rq->id[0])
            return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "id is empty");
        code = service_locate(s, c, rq->id, NULL, false, &path);
        break;
    case ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_PATH:
        code = service_locate(s, c, NULL, rq->path, true, &path);
        break;
    case ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_NAME:
        return resolve_name(s, c, rq->name, rs);
    default:
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "set one of id, path or name");
    }
    if (code || (code = service_verify(s, c, path)))
        return code;
    rs->entry = service_entry_at(s, c, path);
    return rs->entry ? RPC_OK : rpc_call_errorf(c, RPC_NOT_FOUND, "the entry left the catalogue");
}

static int h_invalidate(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__InvalidateRequest *rq = (const void *)req;
    Engbot__Cache__V1__InvalidateResponse *rs = (void *)resp;
    struct scan_result r = {0};
    int code = service_check_nul(s, c, req->descriptor);
    if (code)
        return code;
    if (rq->all) {
        cat_rdlock(s->d.cat);
        cat_forget_checks(s->d.cat, cat_root(s->d.cat));
        cat_unlock(s->d.cat);
        scan_full(s->d.scan, SCAN_MANUAL, &r);
    } else {
        struct ps_err e;
        if (!rq->path[0])
            return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "give a path, or set all to true");
        if (!ps_check_path(rq->path, strlen(rq->path), &e))
            return service_refuse(s, c, &e, "path");
        int found = scan_path(s->d.scan, rq->path, SCAN_MANUAL, &r);
        if (found) {
            cat_rdlock(s->d.cat);
            uint32_t slot = cat_by_path(s->d.cat, rq->path);
            if (slot != CAT_NONE)
                cat_forget_checks(s->d.cat, slot);
            cat_unlock(s->d.cat);
        } else if (!r.removed) {
            /* Neither catalogued before nor now: say why. */
            if (ps_resolve(s->d.root, rq->path, PS_WANT_ANY, NULL, NULL, &e) < 0)
                return service_refuse(s, c, &e, "path");
            return rpc_call_errorf(c, RPC_NOT_FOUND,
                                   "path is on disk but not in the catalogue "
                                   "(MAX_ENTRIES reached?)");
        }
    }
    struct cat_stats cs;
    cat_rdlock(s->d.cat);
    cat_stats(s->d.cat, &cs);
    cat_unlock(s->d.cat);
    rs->entries = cs.entries;
    rs->changed = (uint64_t)r.added + r.removed + r.changed;
    LOG_INFO("manual invalidation", LF_STR("path", rq->all ? "(all)" : rq->path),
             LF_U64("added", r.added), LF_U64("removed", r.removed), LF_U64("changed", r.changed),
             LF_STR("peer", rpc_call_peer(c)));
    return RPC_OK;
}

static Engbot__Cache__V1__CacheStats *cache_stats(struct rpc_call *c, const struct cachestat *cs,
                                                  uint64_t entries)
{
    Engbot__Cache__V1__CacheStats *m = rpc_call_alloc(c, sizeof *m);
    engbot__cache__v1__cache_stats__init(m);
    m->name = rpc_call_strdup(c, cs->name);
    m->hits = atomic_load(&cs->hits);
    m->misses = atomic_load(&cs->misses);
    m->hit_ratio = cachestat_ratio(cs);
    m->entries = entries;
    return m;
}

static int h_stats(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                   void *svc)
{
    struct service *s = svc;
    Engbot__Cache__V1__GetStatsResponse *rs = (void *)resp;
    struct cat_stats cs;
    cat_rdlock(s->d.cat);
    cat_stats(s->d.cat, &cs);
    cat_unlock(s->d.cat);
    rs->entries = cs.entries;
    rs->files = cs.files;
    rs->caches = rpc_call_alloc(c, 3 * sizeof *rs->caches);
    rs->caches[0] = cache_stats(c, &s->cat_cs, cs.entries);
    rs->caches[1] = cache_stats(c, exist_stats(s->d.exist), cs.files);
    rs->caches[2] = cache_stats(c, &s->fid_cs, fileids_count(s->d.fileids));
    rs->n_caches = 3;
    rs->invalidations = rpc_call_alloc(c, SCAN__TRIGGERS * sizeof *rs->invalidations);
    for (int t = 0; t < SCAN__TRIGGERS; t++) {
        Engbot__Cache__V1__GetStatsResponse__InvalidationsEntry *e = rpc_call_alloc(c, sizeof *e);
        engbot__cache__v1__get_stats_response__invalidations_entry__init(e);
        e->key = rpc_call_strdup(c, scan_trigger_name((enum scan_trigger)t));
        e->value = scan_invalidations(s->d.scan, (enum scan_trigger)t);
        rs->invalidations[t] = e;
    }
    rs->n_invalidations = SCAN__TRIGGERS;
    rs->last_scan_ms = (uint64_t)scan_last_full_ms(s->d.scan);
    rs->version = rpc_call_strdup(c, engbot_version);
    rs->uptime_seconds = (uint64_t)((clock_mono_ms() - s->t0_ms) / 1000);
    rs->inotify_active = s->d.watch && watch_inotify_active(s->d.watch);
    return RPC_OK;
}

/* ---- wiring ---------------------------------------------------------------------------------- */

struct service *service_new(const struct service_deps *d, const struct service_opts *o)
{
    struct service *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->d = *d;
    s->o = *o;
    s->t0_ms = clock_mono_ms();
    atomic_init(&s->reads, 0);
    cachestat_init(&s->cat_cs, "catalogue");
    cachestat_init(&s->fid_cs, "file_id");
    struct metric_family *f =
        metrics_family("engbot_cache_refused_total",
                       "Requests refused by the path-safety rules, by reason (INVALID_ARGUMENT or "
                       "PERMISSION_DENIED).",
                       METRIC_COUNTER, "reason", NULL, 0);
    for (int r = PS_NUL; r <= PS_SPECIAL; r++)
        s->m_refused[r] = metrics_child(f, ps_reason_name((enum ps_reason)r));
    s->m_bytes =
        metrics_counter("engbot_cache_bytes_streamed_total", "File bytes sent by ReadFile.");
    s->m_reads = metrics_gauge("engbot_cache_reads_active", "ReadFile streams in progress.");
    struct metric_family *rj =
        metrics_family("engbot_cache_reads_rejected_total",
                       "ReadFile calls refused with RESOURCE_EXHAUSTED, by limit.", METRIC_COUNTER,
                       "limit", NULL, 0);
    s->m_busy = metrics_child(rj, "max_concurrent_reads");
    s->m_too_large = metrics_child(rj, "max_file_size");
    return s;
}

static const struct rpc_method methods[] = {
    /* Answered from memory on a completion-queue thread when they can be; they hand
     * themselves to the worker pool when the disk must be asked (rpc_call_offload). */
    RPC_UNARY("ListFolder", h_list, 0),
    RPC_UNARY("Search", h_search, 0),
    RPC_UNARY("Resolve", h_resolve, 0),
    RPC_SSTREAM("ReadFile", service_read_file, RPC_F_BLOCKING),
    RPC_UNARY("GetFileId", service_get_file_id, RPC_F_BLOCKING),
    RPC_UNARY("PutFileId", service_put_file_id, RPC_F_BLOCKING),
    RPC_UNARY("DropFileId", service_drop_file_id, RPC_F_BLOCKING),
    RPC_UNARY("Invalidate", h_invalidate, RPC_F_BLOCKING),
    RPC_UNARY("GetStats", h_stats, 0),
};

const struct rpc_method *service_methods(size_t *n)
{
    *n = sizeof methods / sizeof methods[0];
    return methods;
}

void service_register(struct service *s, struct rpc_server *srv)
{
    rpc_server_add_service(srv, &engbot__cache__v1__cache_service__descriptor, methods,
                           sizeof methods / sizeof methods[0], s);
}

void service_free(struct service *s)
{
    free(s);
}
