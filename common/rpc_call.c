/* rpc_call.c -- one server call: its references, arena, metadata, and the batches that read,
 * write and finish it.
 *
 * DESIGN: every call object is reference counted. The "owner" reference is taken when the call
 * arrives and dropped when its status batch completes; every other batch in flight (RECV_CLOSE,
 * a read, a write) holds one more; rpc_call_ref() adds more for watchers and deferred handlers.
 * All grpc_call_start_batch calls on a call happen under its mutex. At most one write is in
 * flight: later messages wait in a queue, and the status goes out once the queue is empty. */
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "rpc_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    return p;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

struct rpc_call *call_new(struct rpc_server *s, struct rpc_cq *cq, struct rpc_mdesc *md)
{
    struct rpc_call *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->s = s;
    c->cq = cq;
    c->md = md;
    c->t_new = (struct rpc_tag){md ? OP_NEW : OP_NEW_GENERIC, c};
    c->t_close = (struct rpc_tag){OP_RECV_CLOSE, c};
    c->t_write = (struct rpc_tag){OP_WRITE, c};
    c->t_read = (struct rpc_tag){OP_READ, c};
    c->t_status = (struct rpc_tag){OP_STATUS, c};
    grpc_metadata_array_init(&c->req_md);
    if (!md)
        grpc_call_details_init(&c->details);
    struct arena_chunk *a = (struct arena_chunk *)c->arena0;
    a->next = NULL;
    a->used = 0;
    a->cap = sizeof c->arena0 - sizeof *a;
    c->arena = a;
    return c;
}

void call_live_add(struct rpc_call *c)
{
    struct rpc_cq *q = c->cq;
    pthread_mutex_lock(&q->mu);
    c->live_next = q->live;
    if (q->live)
        q->live->live_prev = c;
    q->live = c;
    c->on_live_list = true;
    pthread_mutex_unlock(&q->mu);
}

static void live_remove(struct rpc_call *c)
{
    struct rpc_cq *q = c->cq;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    if (c->on_live_list) {
        if (c->live_prev)
            c->live_prev->live_next = c->live_next;
        else
            q->live = c->live_next;
        if (c->live_next)
            c->live_next->live_prev = c->live_prev;
        c->on_live_list = false;
    }
    pthread_mutex_unlock(&q->mu);
}

static void call_free(struct rpc_call *c)
{
    live_remove(c);
    if (c->state_free)
        c->state_free(c->state);
    if (c->call)
        grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->req_md);
    if (!c->md)
        grpc_call_details_destroy(&c->details);
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->recv_bb)
        grpc_byte_buffer_destroy(c->recv_bb);
    if (c->resp_bb)
        grpc_byte_buffer_destroy(c->resp_bb);
    if (c->writing)
        grpc_byte_buffer_destroy(c->writing);
    while (c->wq_head) {
        struct wq_item *w = c->wq_head;
        c->wq_head = w->next;
        grpc_byte_buffer_destroy(w->bb);
        free(w);
    }
    for (size_t i = 0; i < c->ntrailers; i++) {
        grpc_slice_unref(c->trailers[i].key);
        grpc_slice_unref(c->trailers[i].value);
    }
    free(c->trailers);
    for (size_t i = 0; i < c->ninit_md; i++) {
        grpc_slice_unref(c->init_md[i].key);
        grpc_slice_unref(c->init_md[i].value);
    }
    free(c->init_md);
    free(c->status_msg);
    free(c->peer);
    struct arena_chunk *a = c->arena;
    while (a && (unsigned char *)a != c->arena0) {
        struct arena_chunk *n = a->next;
        free(a);
        a = n;
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void rpc_call_ref(struct rpc_call *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void rpc_call_unref(struct rpc_call *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        call_free(c);
}

/* ---- arena ---------------------------------------------------------------------------------- */

void *rpc_call_alloc(struct rpc_call *c, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *a = c->arena;
    if (a->used + n > a->cap) {
        size_t cap = n > 4096 ? n : 4096;
        struct arena_chunk *na = xmalloc(sizeof *na + cap);
        na->cap = cap;
        na->used = 0;
        na->next = a;
        c->arena = na;
        a = na;
    }
    void *p = a->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *rpc_call_strdup(struct rpc_call *c, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = rpc_call_alloc(c, n);
    memcpy(p, s, n);
    return p;
}

static void *arena_alloc_cb(void *ud, size_t n)
{
    return rpc_call_alloc(ud, n);
}

static void arena_free_cb(void *ud, void *p)
{
}

/* ---- codec ---------------------------------------------------------------------------------- */

grpc_byte_buffer *call_pack(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    grpc_slice sl = grpc_slice_malloc(len);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

/* Unpacks into the call's arena (nothing to free). NULL when the bytes are not a valid
 * message of type d. An absent payload decodes as the empty message. */
ProtobufCMessage *call_unpack(struct rpc_call *c, const ProtobufCMessageDescriptor *d,
                              grpc_byte_buffer *bb)
{
    ProtobufCAllocator al = {arena_alloc_cb, arena_free_cb, c};
    if (!bb)
        return protobuf_c_message_unpack(d, &al, 0, (const uint8_t *)"");
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, &al, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
    grpc_slice_unref(sl);
    return m;
}

/* ---- accessors ------------------------------------------------------------------------------ */

int64_t rpc_call_remaining_ms(const struct rpc_call *c)
{
    if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0)
        return INT64_MAX;
    gpr_timespec left = gpr_time_sub(c->deadline, gpr_now(c->deadline.clock_type));
    return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

bool rpc_call_cancelled(const struct rpc_call *c)
{
    return c->closed && c->cancelled;
}

const char *rpc_call_peer(struct rpc_call *c)
{
    if (!c->peer && c->detached)
        c->peer = strdup("test");
    if (!c->peer) {
        char *p = grpc_call_get_peer(c->call);
        c->peer = strdup(p ? p : "");
        gpr_free(p);
    }
    return c->peer;
}

const char *rpc_call_metadata(struct rpc_call *c, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < c->req_md.count; i++) {
        const grpc_metadata *m = &c->req_md.metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) == kl && memcmp(GRPC_SLICE_START_PTR(m->key), key, kl) == 0) {
            size_t vl = GRPC_SLICE_LENGTH(m->value);
            char *v = rpc_call_alloc(c, vl + 1);
            memcpy(v, GRPC_SLICE_START_PTR(m->value), vl);
            v[vl] = '\0';
            return v;
        }
    }
    return NULL;
}

const char *rpc_call_method(const struct rpc_call *c)
{
    return c->md ? c->md->path : "";
}

int rpc_call_errorf(struct rpc_call *c, int code, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    pthread_mutex_lock(&c->mu);
    free(c->status_msg);
    c->status_msg = msg;
    pthread_mutex_unlock(&c->mu);
    return code;
}

static void md_append(grpc_metadata **arr, size_t *n, const char *key, const void *value,
                      size_t len)
{
    grpc_metadata *t = realloc(*arr, (*n + 1) * sizeof *t);
    if (!t)
        abort();
    *arr = t;
    memset(&t[*n], 0, sizeof t[0]);
    t[*n].key = grpc_slice_from_copied_string(key);
    t[*n].value = grpc_slice_from_copied_buffer(value, len);
    (*n)++;
}

void rpc_call_add_trailer_bin(struct rpc_call *c, const char *key, const void *value, size_t len)
{
    pthread_mutex_lock(&c->mu);
    md_append(&c->trailers, &c->ntrailers, key, value, len);
    pthread_mutex_unlock(&c->mu);
}

void rpc_call_add_trailer(struct rpc_call *c, const char *key, const char *value)
{
    rpc_call_add_trailer_bin(c, key, value, strlen(value));
}

void rpc_call_add_initial_md(struct rpc_call *c, const char *key, const void *value, size_t len)
{
    pthread_mutex_lock(&c->mu);
    if (!c->initial_md_sent)
        md_append(&c->init_md, &c->ninit_md, key, value, len);
    pthread_mutex_unlock(&c->mu);
}

const void *rpc_call_metadata_bin(struct rpc_call *c, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < c->req_md.count; i++) {
        const grpc_metadata *m = &c->req_md.metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) == kl && memcmp(GRPC_SLICE_START_PTR(m->key), key, kl) == 0) {
            *len = GRPC_SLICE_LENGTH(m->value);
            return GRPC_SLICE_START_PTR(m->value);
        }
    }
    return NULL;
}

const uint8_t *rpc_call_request_bytes(struct rpc_call *c, size_t *len)
{
    *len = 0;
    if (c->detached) {
        *len = c->test_req_len;
        return c->test_req;
    }
    if (!c->payload)
        return NULL;
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, c->payload))
        return NULL;
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    *len = GRPC_SLICE_LENGTH(sl);
    uint8_t *p = rpc_call_alloc(c, *len ? *len : 1);
    memcpy(p, GRPC_SLICE_START_PTR(sl), *len);
    grpc_slice_unref(sl);
    return p;
}

void rpc_call_set_state(struct rpc_call *c, void *state, void (*free_fn)(void *))
{
    c->state = state;
    c->state_free = free_fn;
}

void *rpc_call_state(const struct rpc_call *c)
{
    return c->state;
}

/* ---- test calls (no wire) ------------------------------------------------------------------ */

/* Called with mu held when a detached call is finished: check the response packs, wake the
 * waiter. */
static void test_call_finished_locked(struct rpc_call *c)
{
    if (c->code == RPC_OK && c->resp) {
        size_t n = protobuf_c_message_get_packed_size(c->resp);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf || protobuf_c_message_pack(c->resp, buf) != n)
            abort(); /* a handler built a response that cannot be serialised */
        free(buf);
    }
    c->dead = true;
    pthread_cond_broadcast(&c->cv);
}

static int test_call_send(struct rpc_call *c, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || protobuf_c_message_pack(m, buf) != n)
        abort();
    free(buf);
    pthread_mutex_lock(&c->mu);
    int rc = c->finish_called ? -1 : 0;
    if (!rc)
        c->sent++;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

struct rpc_call *rpc_test_call_new(void)
{
    struct rpc_call *c = call_new(NULL, NULL, NULL);
    c->detached = true;
    c->deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    c->t0_us = clock_mono_us();
    return c;
}

int rpc_test_call_wait(struct rpc_call *c, int64_t timeout_ms, char *msg, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->finish_called)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
            break;
    int code = c->finish_called ? c->code : -1;
    if (msg && cap)
        snprintf(msg, cap, "%s", c->status_msg ? c->status_msg : "");
    pthread_mutex_unlock(&c->mu);
    return code;
}

int rpc_test_call_sent(struct rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->sent;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int rpc_test_invoke(const ProtobufCServiceDescriptor *d, const struct rpc_method *methods,
                    size_t n, void *svc, const char *name, const uint8_t *req, size_t len,
                    int64_t timeout_ms, char *msg, size_t cap)
{
    const struct rpc_method *m = NULL;
    const ProtobufCMethodDescriptor *pd = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(methods[i].name, name) == 0)
            m = &methods[i];
    for (unsigned k = 0; k < d->n_methods; k++)
        if (strcmp(d->methods[k].name, name) == 0)
            pd = &d->methods[k];
    if (!m || !pd || (m->kind != RPC_KIND_UNARY && m->kind != RPC_KIND_SERVER_STREAM))
        return -2;
    struct rpc_call *c = rpc_test_call_new();
    uint8_t *copy = rpc_call_alloc(c, len ? len : 1);
    memcpy(copy, req, len);
    c->test_req = copy;
    c->test_req_len = len;
    ProtobufCAllocator al = {arena_alloc_cb, arena_free_cb, c};
    c->req = protobuf_c_message_unpack(pd->input, &al, len, req);
    if (!c->req) {
        rpc_call_unref(c);
        return -2; /* the layer answers INVALID_ARGUMENT before any handler runs */
    }
    int code;
    c->on_worker = (m->flags & RPC_F_BLOCKING) != 0;
    if (m->kind == RPC_KIND_UNARY) {
        c->resp = rpc_call_alloc(c, pd->output->sizeof_message);
        protobuf_c_message_init(pd->output, c->resp);
        code = m->unary(c, c->req, c->resp, svc);
        while (code == RPC_PENDING && c->offload_fn) { /* rpc_call_offload: the worker's turn */
            rpc_unary_fn *fn = c->offload_fn;
            c->offload_fn = NULL;
            c->on_worker = true;
            protobuf_c_message_init(pd->output, c->resp);
            code = fn(c, c->req, c->resp, svc);
        }
    } else {
        code = m->sstream(c, c->req, svc);
    }
    if (code != RPC_PENDING)
        rpc_call_finish(c, code);
    code = rpc_test_call_wait(c, timeout_ms, msg, cap);
    if (m->on_close)
        m->on_close(c, false, svc);
    rpc_call_unref(c);
    return code;
}

/* ---- batches -------------------------------------------------------------------------------- */

static void start_batch_locked(struct rpc_call *c, const grpc_op *ops, size_t n, struct rpc_tag *t)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        /* A programming error (two writes at once, a batch after the status): loud, fatal. */
        LOG_ERROR("grpc_call_start_batch failed", LF_I64("error", e), LF_I64("op", t->op),
                  LF_STR("method", rpc_call_method(c)));
        abort();
    }
}

void call_start_recv_close(struct rpc_call *c)
{
    if (c->detached)
        return;
    pthread_mutex_lock(&c->mu);
    if (!c->close_started && !c->status_started) {
        c->close_started = true;
        rpc_call_ref(c);
        grpc_op op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
        op.data.recv_close_on_server.cancelled = &c->cancelled;
        start_batch_locked(c, &op, 1, &c->t_close);
    }
    pthread_mutex_unlock(&c->mu);
}

void call_start_read(struct rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    if (!c->dead && !c->closed) {
        rpc_call_ref(c);
        grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
        op.data.recv_message.recv_message = &c->recv_bb;
        start_batch_locked(c, &op, 1, &c->t_read);
    }
    pthread_mutex_unlock(&c->mu);
}

static void start_write_locked(struct rpc_call *c, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->initial_md_sent) {
        ops[n].data.send_initial_metadata.count = c->ninit_md;
        ops[n].data.send_initial_metadata.metadata = c->init_md;
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->initial_md_sent = true;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = bb;
    c->writing = bb;
    rpc_call_ref(c);
    start_batch_locked(c, ops, n, &c->t_write);
}

static void start_status_locked(struct rpc_call *c)
{
    grpc_op ops[4];
    size_t n = 0;
    grpc_slice details;
    memset(ops, 0, sizeof ops);
    c->status_started = true;
    if (!c->initial_md_sent) {
        ops[n].data.send_initial_metadata.count = c->ninit_md;
        ops[n].data.send_initial_metadata.metadata = c->init_md;
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->initial_md_sent = true;
    }
    if (c->md && c->md->m.kind == RPC_KIND_UNARY && c->code == RPC_OK && c->resp) {
        c->resp_bb = call_pack(c->resp);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->resp_bb;
        if (c->md)
            metric_inc(c->md->msg_sent);
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)c->code;
    if (c->status_msg && *c->status_msg) {
        details = grpc_slice_from_static_string(c->status_msg);
        ops[n].data.send_status_from_server.status_details = &details;
    }
    ops[n].data.send_status_from_server.trailing_metadata = c->trailers;
    ops[n++].data.send_status_from_server.trailing_metadata_count = c->ntrailers;
    if (!c->close_started) {
        c->close_started = true;
        c->finish_has_close = true;
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    }
    /* The owner reference covers the status batch. */
    start_batch_locked(c, ops, n, &c->t_status);
}

int rpc_call_send(struct rpc_call *c, const ProtobufCMessage *m)
{
    if (c->detached)
        return test_call_send(c, m);
    grpc_byte_buffer *bb = call_pack(m);
    pthread_mutex_lock(&c->mu);
    if (c->dead || c->finish_called || c->closed) {
        pthread_mutex_unlock(&c->mu);
        grpc_byte_buffer_destroy(bb);
        return -1;
    }
    if (c->md)
        metric_inc(c->md->msg_sent);
    if (c->writing) {
        struct wq_item *w = xmalloc(sizeof *w);
        w->next = NULL;
        w->bb = bb;
        if (c->wq_tail)
            c->wq_tail->next = w;
        else
            c->wq_head = w;
        c->wq_tail = w;
        c->wq_len++;
    } else {
        start_write_locked(c, bb);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int rpc_call_send_wait(struct rpc_call *c, const ProtobufCMessage *m, int max_queued)
{
    pthread_mutex_lock(&c->mu);
    while (!c->dead && !c->closed && c->wq_len > max_queued)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return rpc_call_send(c, m);
}

void rpc_call_finish(struct rpc_call *c, int code)
{
    pthread_mutex_lock(&c->mu);
    if (c->finish_called) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->finish_called = true;
    c->code = code < 0 || code > 16 ? RPC_UNKNOWN : code;
    if (c->detached) {
        test_call_finished_locked(c);
    } else if (!c->writing) {
        start_status_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- completions ---------------------------------------------------------------------------- */

static void record_done(struct rpc_call *c)
{
    struct rpc_mdesc *md = c->md;
    pthread_mutex_lock(&c->mu);
    int code = c->code;
    pthread_mutex_unlock(&c->mu);
    if (!md) {
        metric_inc(c->s->unknown_handled);
        return;
    }
    /* Created on first use by whichever completion-queue thread gets there first (metrics_child
     * is find-or-create under the registry lock); the cached pointer is published atomically. */
    struct metric *handled = __atomic_load_n(&md->handled[code], __ATOMIC_ACQUIRE);
    if (!handled) {
        handled = metrics_child(
            metrics_family("grpc_server_handled_total",
                           "Total number of RPCs completed on the server, regardless of success "
                           "or failure.",
                           METRIC_COUNTER, "grpc_type,grpc_service,grpc_method,grpc_code", NULL, 0),
            md->type_label, md->service->d->name, md->pd->name, rpc_code_label(code));
        __atomic_store_n(&md->handled[code], handled, __ATOMIC_RELEASE);
    }
    metric_inc(handled);
    metric_observe(md->latency, (double)(clock_mono_us() - c->t0_us) / 1e6);
}

static void on_close_done(struct rpc_call *c, bool ok)
{
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->md && c->md->m.on_close)
        c->md->m.on_close(c, c->cancelled != 0, c->md->service->svc);
}

static void on_write_done(struct rpc_call *c, bool ok)
{
    pthread_mutex_lock(&c->mu);
    grpc_byte_buffer_destroy(c->writing);
    c->writing = NULL;
    if (!ok)
        c->dead = true;
    if (c->wq_head && !c->dead) {
        struct wq_item *w = c->wq_head;
        c->wq_head = w->next;
        if (!c->wq_head)
            c->wq_tail = NULL;
        c->wq_len--;
        start_write_locked(c, w->bb);
        free(w);
    } else {
        while (c->wq_head) {
            struct wq_item *w = c->wq_head;
            c->wq_head = w->next;
            grpc_byte_buffer_destroy(w->bb);
            free(w);
        }
        c->wq_tail = NULL;
        c->wq_len = 0;
        if (c->finish_called && !c->status_started)
            start_status_locked(c);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_status_done(struct rpc_call *c, bool ok)
{
    record_done(c);
    if (c->finish_has_close)
        on_close_done(c, ok);
    pthread_mutex_lock(&c->mu);
    c->dead = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Runs a client-streaming/bidi callback for the message just read (or the half-close). */
static void run_stream_step(struct rpc_call *c)
{
    const struct rpc_stream_ops *ops = c->md->m.stream;
    void *svc = c->md->service->svc;
    int code;
    /* The lock orders this step after the previous one (which may have run on another worker
     * thread) for every reader, TSan included. */
    pthread_mutex_lock(&c->mu);
    grpc_byte_buffer *bb = c->recv_bb;
    c->recv_bb = NULL;
    pthread_mutex_unlock(&c->mu);
    if (!bb) {
        code = ops->on_half_close ? ops->on_half_close(c, svc) : RPC_OK;
    } else {
        metric_inc(c->md->msg_recv);
        /* Stream messages must not grow the call arena without bound: unpack with malloc. */
        grpc_byte_buffer_reader r;
        ProtobufCMessage *m = NULL;
        if (grpc_byte_buffer_reader_init(&r, bb)) {
            grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
            grpc_byte_buffer_reader_destroy(&r);
            m = protobuf_c_message_unpack(c->md->pd->input, NULL, GRPC_SLICE_LENGTH(sl),
                                          GRPC_SLICE_START_PTR(sl));
            grpc_slice_unref(sl);
        }
        grpc_byte_buffer_destroy(bb);
        if (!m) {
            code = rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                                   "cannot decode the request message as %s",
                                   c->md->pd->input->name);
        } else {
            code = ops->on_message(c, m, svc);
            protobuf_c_message_free_unpacked(m, NULL);
        }
        if (code == RPC_PENDING) {
            call_start_read(c);
            rpc_call_unref(c); /* the read's reference */
            return;
        }
    }
    if (code != RPC_PENDING)
        rpc_call_finish(c, code);
    rpc_call_unref(c);
}

static void on_read_done(struct rpc_call *c, bool ok)
{
    if (!ok) {
        /* The call died (cancelled, deadline, connection lost). */
        pthread_mutex_lock(&c->mu);
        c->dead = true;
        if (c->recv_bb) {
            grpc_byte_buffer_destroy(c->recv_bb);
            c->recv_bb = NULL;
        }
        pthread_mutex_unlock(&c->mu);
        rpc_call_finish(c, RPC_CANCELLED);
        rpc_call_unref(c);
        return;
    }
    if (c->md->m.flags & RPC_F_BLOCKING)
        server_submit(c->s, run_stream_step, c); /* keeps the read's reference */
    else
        run_stream_step(c);
}

void call_on_event(struct rpc_tag *t, bool ok)
{
    struct rpc_call *c = t->obj;
    switch (t->op) {
    case OP_NEW:
    case OP_NEW_GENERIC:
        server_dispatch(c, ok);
        return;
    case OP_RECV_CLOSE:
        on_close_done(c, ok);
        rpc_call_unref(c);
        return;
    case OP_WRITE:
        on_write_done(c, ok);
        rpc_call_unref(c);
        return;
    case OP_READ:
        on_read_done(c, ok);
        return;
    case OP_STATUS:
        on_status_done(c, ok);
        rpc_call_unref(c); /* the owner reference */
        return;
    case OP_SHUTDOWN:
        return;
    }
}
