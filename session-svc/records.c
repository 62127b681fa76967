/* records.c -- session-svc's on-disk records (see records.h): struct session <-> protobuf,
 * packing changes, sessions and snapshot headers, and the readers that apply snapshot and
 * change-log files to the table record by record. */
#include "records.h"
#include "conf.h"
#include "durable.h"
#include "session_store.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STACK_ENTRIES 64

typedef Engbot__Session__V1__Session PbSession;
typedef Engbot__Session__V1__Session__StateEntry PbEntry;
typedef Engbot__Session__Store__V1__LogRecord PbLogRecord;
typedef Engbot__Session__Store__V1__SnapshotHeader PbHeader;

/* ---- protobuf <-> struct session ------------------------------------------------------------- */
struct pb_session {
    PbSession m;
    PbEntry e_stack[STACK_ENTRIES], *e;
    PbEntry *p_stack[STACK_ENTRIES], **p;
};

/* Fills b->m to describe s (borrowing its strings). Free with pbs_done. */
static void pbs_init(struct pb_session *b, const struct session *s)
{
    engbot__session__v1__session__init(&b->m);
    b->e = b->e_stack;
    b->p = b->p_stack;
    if (s->n_state > STACK_ENTRIES) {
        b->e = malloc(s->n_state * sizeof *b->e);
        b->p = malloc(s->n_state * sizeof *b->p);
        if (!b->e || !b->p)
            abort();
    }
    for (uint32_t i = 0; i < s->n_state; i++) {
        engbot__session__v1__session__state_entry__init(&b->e[i]);
        b->e[i].key = (char *)s->state[i].key;
        b->e[i].value = (char *)s->state[i].value;
        b->p[i] = &b->e[i];
    }
    b->m.chat_id = s->chat_id;
    b->m.user_id = s->user_id;
    b->m.folder_id = (char *)s->folder_id;
    b->m.page = s->page;
    b->m.last_search = (char *)s->last_search;
    b->m.n_state = s->n_state;
    b->m.state = b->p;
    b->m.created_unix_ms = s->created_ms;
    b->m.last_active_unix_ms = s->last_active_ms;
    b->m.version = s->version;
    b->m.browser_message_id = s->browser_message_id;
}

static void pbs_done(struct pb_session *b)
{
    if (b->e != b->e_stack) {
        free(b->e);
        free(b->p);
    }
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

struct kv_at {
    struct session_kv kv;
    size_t at; /* position on the wire */
};

static int kv_at_cmp(const void *a, const void *b)
{
    const struct kv_at *x = a, *y = b;
    int c = strcmp(x->kv.key, y->kv.key);
    return c ? c : (x->at < y->at ? -1 : x->at > y->at);
}

/* Loads an unpacked protobuf session into the store. A map may repeat a key on the wire; the
 * last one wins (protobuf's rule). Sorting first keeps that O(n log n) for any input. */
static void load_pb(struct store *st, const PbSession *m)
{
    struct kv_at stack_kv[STACK_ENTRIES], *e = stack_kv;
    if (m->n_state > STACK_ENTRIES) {
        e = malloc(m->n_state * sizeof *e);
        if (!e)
            abort();
    }
    for (size_t i = 0; i < m->n_state; i++) {
        const char *k = m->state[i] ? nz(m->state[i]->key) : "";
        const char *v = m->state[i] ? nz(m->state[i]->value) : "";
        e[i] = (struct kv_at){{k, v}, i};
    }
    if (m->n_state)
        qsort(e, m->n_state, sizeof *e, kv_at_cmp);
    /* Compact in place to session_kv, keeping the last of each run of equal keys. */
    struct session_kv *kv = (struct session_kv *)e;
    uint32_t n = 0;
    for (size_t i = 0; i < m->n_state; i++) {
        if (i + 1 < m->n_state && strcmp(e[i].kv.key, e[i + 1].kv.key) == 0)
            continue;
        struct session_kv t = e[i].kv; /* n <= i: never overwrites an entry not yet read */
        kv[n++] = t;
    }
    struct session s = {
        .chat_id = m->chat_id,
        .user_id = m->user_id,
        .created_ms = m->created_unix_ms,
        .last_active_ms = m->last_active_unix_ms,
        .browser_message_id = m->browser_message_id,
        .version = m->version,
        .page = m->page,
        .folder_id = nz(m->folder_id),
        .last_search = nz(m->last_search),
        .n_state = n,
        .state = kv,
    };
    store_load_put(st, &s);
    if (e != stack_kv)
        free(e);
}

int record_apply_log(struct store *st, const uint8_t *rec, size_t len)
{
    PbLogRecord *r = engbot__session__store__v1__log_record__unpack(NULL, len, rec);
    if (!r)
        return -1;
    int rc = 0;
    switch (r->op_case) {
    case ENGBOT__SESSION__STORE__V1__LOG_RECORD__OP_PUT:
        if (r->put)
            load_pb(st, r->put);
        break;
    case ENGBOT__SESSION__STORE__V1__LOG_RECORD__OP_TOUCH:
        if (r->touch)
            store_load_touch(st, r->touch->chat_id, r->touch->user_id,
                             r->touch->last_active_unix_ms, r->touch->version);
        break;
    case ENGBOT__SESSION__STORE__V1__LOG_RECORD__OP_REMOVE:
        if (r->remove)
            store_load_delete(st, r->remove->chat_id);
        break;
    default:
        rc = 1; /* written by a newer version: an operation this one does not know */
        break;
    }
    engbot__session__store__v1__log_record__free_unpacked(r, NULL);
    return rc;
}

/* ---- packing ------------------------------------------------------------------------------------
 */
size_t record_pack_change(enum store_change ch, enum store_reason why, const struct session *s,
                          uint8_t *buf, size_t cap, uint8_t **out)
{
    PbLogRecord r = ENGBOT__SESSION__STORE__V1__LOG_RECORD__INIT;
    Engbot__Session__Store__V1__Touch t = ENGBOT__SESSION__STORE__V1__TOUCH__INIT;
    Engbot__Session__Store__V1__Remove rm = ENGBOT__SESSION__STORE__V1__REMOVE__INIT;
    struct pb_session b;
    bool have_b = false;
    switch (ch) {
    case STORE_CH_PUT:
        pbs_init(&b, s);
        have_b = true;
        r.op_case = ENGBOT__SESSION__STORE__V1__LOG_RECORD__OP_PUT;
        r.put = &b.m;
        break;
    case STORE_CH_TOUCH:
        t.chat_id = s->chat_id;
        t.user_id = s->user_id;
        t.last_active_unix_ms = s->last_active_ms;
        t.version = s->version;
        r.op_case = ENGBOT__SESSION__STORE__V1__LOG_RECORD__OP_TOUCH;
        r.touch = &t;
        break;
    case STORE_CH_DELETE:
        rm.chat_id = s->chat_id;
        rm.reason = why == STORE_R_EXPIRED
                        ? ENGBOT__SESSION__STORE__V1__REMOVE_REASON__REMOVE_REASON_EXPIRED
                    : why == STORE_R_EVICTED
                        ? ENGBOT__SESSION__STORE__V1__REMOVE_REASON__REMOVE_REASON_EVICTED
                        : ENGBOT__SESSION__STORE__V1__REMOVE_REASON__REMOVE_REASON_CALL;
        r.op_case = ENGBOT__SESSION__STORE__V1__LOG_RECORD__OP_REMOVE;
        r.remove = &rm;
        break;
    }
    size_t n = engbot__session__store__v1__log_record__get_packed_size(&r);
    *out = buf;
    if (n > cap) {
        *out = malloc(n);
        if (!*out)
            abort();
    }
    engbot__session__store__v1__log_record__pack(&r, *out);
    if (have_b)
        pbs_done(&b);
    return n;
}

void record_buf_add_session(void *arg, const struct session *s)
{
    struct record_buf *b = arg;
    struct pb_session ps;
    pbs_init(&ps, s);
    size_t n = engbot__session__v1__session__get_packed_size(&ps.m);
    if (b->len + 4 + n > b->cap) {
        size_t nc = b->cap ? b->cap : 64 * 1024;
        while (nc < b->len + 4 + n)
            nc *= 2;
        uint8_t *d = realloc(b->data, nc);
        if (!d)
            abort();
        b->data = d;
        b->cap = nc;
    }
    uint32_t n32 = (uint32_t)n;
    memcpy(b->data + b->len, &n32, 4);
    engbot__session__v1__session__pack(&ps.m, b->data + b->len + 4);
    b->len += 4 + n;
    b->records++;
    pbs_done(&ps);
}

size_t record_pack_header(const struct record_header *rh, uint8_t *buf, size_t cap)
{
    PbHeader h = ENGBOT__SESSION__STORE__V1__SNAPSHOT_HEADER__INIT;
    h.log_generation = rh->log_gen;
    h.written_unix_ms = rh->written_ms;
    h.sessions = rh->sessions;
    h.writer_version = (char *)engbot_version;
    h.purpose = (char *)rh->purpose;
    h.restored_from = (char *)rh->restored_from;
    size_t n = engbot__session__store__v1__snapshot_header__get_packed_size(&h);
    if (n > cap)
        return 0;
    engbot__session__store__v1__snapshot_header__pack(&h, buf);
    return n;
}

/* ---- reading ------------------------------------------------------------------------------------
 */
int record_snapshot_cb(void *arg, const uint8_t *rec, size_t len)
{
    struct record_snap_reader *r = arg;
    if (r->index++ == 0) {
        PbHeader *h = engbot__session__store__v1__snapshot_header__unpack(NULL, len, rec);
        if (!h)
            return -1;
        r->have_header = true;
        r->h.log_gen = h->log_generation;
        r->h.written_ms = h->written_unix_ms;
        r->h.sessions = h->sessions;
        snprintf(r->h.restored_from, sizeof r->h.restored_from, "%s", nz(h->restored_from));
        snprintf(r->h.purpose, sizeof r->h.purpose, "%s", nz(h->purpose));
        engbot__session__store__v1__snapshot_header__free_unpacked(h, NULL);
        return r->header_only ? 1 : 0;
    }
    PbSession *m = engbot__session__v1__session__unpack(NULL, len, rec);
    if (!m)
        return -1;
    if (r->st)
        load_pb(r->st, m);
    engbot__session__v1__session__free_unpacked(m, NULL);
    return 0;
}

int record_log_cb(void *arg, const uint8_t *rec, size_t len)
{
    struct record_log_reader *r = arg;
    int rc = record_apply_log(r->st, rec, len);
    if (rc == 1)
        r->skipped++;
    return rc < 0 ? -1 : 0;
}

int record_read_snapshot(const char *path, struct store *st, uint64_t *log_gen, bool *damaged)
{
    struct record_snap_reader r = {.st = st};
    struct dread_result res;
    int rc = dread_file(path, RECORD_KIND_SNAPSHOT, record_snapshot_cb, &r, &res);
    *damaged = rc < 0 || res.damaged || (rc == 0 && !res.sealed) || (rc == 0 && !r.have_header);
    *log_gen = r.h.log_gen;
    return rc;
}

int record_read_log(const char *path, struct store *st, bool *damaged)
{
    struct record_log_reader r = {.st = st};
    struct dread_result res;
    int rc = dread_file(path, RECORD_KIND_LOG, record_log_cb, &r, &res);
    *damaged = rc < 0 || res.damaged;
    return rc;
}
