/* rpc_client.c -- gRPC client: channels (with optional round-robin over every address a name
 * resolves to), unary calls with a deadline, and server-streaming readers.
 *
 * Unary calls block the calling thread on a completion queue of its own (one per thread, made
 * on first use and reused: no queue per call). Method paths are registered with the channel
 * once and reused. */
#include "log.h"
#include "rpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reg_method {
    char *path;
    void *handle;
};

struct rpc_channel {
    grpc_channel *ch;
    char *target;
    pthread_mutex_t mu;
    struct reg_method *methods;
    size_t nmethods;
};

/* ---- per-thread completion queue ------------------------------------------------------------ */

static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void tl_destroy(void *p)
{
    grpc_completion_queue *cq = p;
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_shutdown();
}

static void tl_init(void)
{
    pthread_key_create(&tl_key, tl_destroy);
}

static grpc_completion_queue *thread_cq(void)
{
    pthread_once(&tl_once, tl_init);
    grpc_completion_queue *cq = pthread_getspecific(tl_key);
    if (!cq) {
        grpc_init(); /* balanced in tl_destroy: the queue must go before the last shutdown */
        cq = grpc_completion_queue_create_for_pluck(NULL);
        pthread_setspecific(tl_key, cq);
    }
    return cq;
}

/* ---- channels ------------------------------------------------------------------------------- */

struct rpc_channel *rpc_channel_new(const char *target, const struct rpc_client_opts *o)
{
    static const struct rpc_client_opts defaults = {0};
    if (!o)
        o = &defaults;
    grpc_init();
    struct rpc_channel *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->target = strdup(target);
    pthread_mutex_init(&c->mu, NULL);
    grpc_arg args[10];
    int n = 0;
#define IARG(k, v) args[n++] = (grpc_arg){.type = GRPC_ARG_INTEGER, .key = (char *)(k), .value.integer = (int)(v)}
    if (o->keepalive_time_ms) {
        IARG(GRPC_ARG_KEEPALIVE_TIME_MS, o->keepalive_time_ms);
        IARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o->keepalive_timeout_ms ? o->keepalive_timeout_ms : 10000);
        IARG(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
        IARG(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    if (o->max_recv_msg)
        IARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, o->max_recv_msg);
    if (o->connect_backoff_max_ms) {
        IARG(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, o->connect_backoff_max_ms);
        IARG(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
             o->connect_backoff_max_ms < 1000 ? o->connect_backoff_max_ms : 1000);
        IARG(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
             o->connect_backoff_max_ms < 1000 ? o->connect_backoff_max_ms : 1000);
    }
#undef IARG
    if (o->round_robin)
        args[n++] = (grpc_arg){.type = GRPC_ARG_STRING,
                               .key = (char *)GRPC_ARG_SERVICE_CONFIG,
                               .value.string =
                                   (char *)"{\"loadBalancingConfig\":[{\"round_robin\":{}}]}"};
    grpc_channel_args ca = {.num_args = (size_t)n, .args = args};
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    c->ch = grpc_channel_create(target, cr, &ca);
    grpc_channel_credentials_release(cr);
    return c;
}

void rpc_channel_free(struct rpc_channel *c)
{
    if (!c)
        return;
    grpc_channel_destroy(c->ch);
    for (size_t i = 0; i < c->nmethods; i++)
        free(c->methods[i].path);
    free(c->methods);
    free(c->target);
    pthread_mutex_destroy(&c->mu);
    free(c);
    grpc_shutdown();
}

const char *rpc_channel_target(const struct rpc_channel *c)
{
    return c->target;
}

bool rpc_channel_ready(struct rpc_channel *c)
{
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(c->ch, 1);
    return st == GRPC_CHANNEL_READY || st == GRPC_CHANNEL_IDLE || st == GRPC_CHANNEL_CONNECTING;
}

static void *method_handle(struct rpc_channel *c, const char *path)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nmethods; i++) {
        if (strcmp(c->methods[i].path, path) == 0) {
            void *h = c->methods[i].handle;
            pthread_mutex_unlock(&c->mu);
            return h;
        }
    }
    struct reg_method *m = realloc(c->methods, (c->nmethods + 1) * sizeof *m);
    if (!m)
        abort();
    c->methods = m;
    m[c->nmethods].path = strdup(path);
    m[c->nmethods].handle = grpc_channel_register_call(c->ch, m[c->nmethods].path, NULL, NULL);
    void *h = m[c->nmethods++].handle;
    pthread_mutex_unlock(&c->mu);
    return h;
}

static gpr_timespec deadline_of(int64_t timeout_ms)
{
    if (timeout_ms <= 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static void copy_trailers(struct rpc_status *st, const grpc_metadata_array *md)
{
    st->ntrailers = 0;
    for (size_t i = 0; i < md->count && st->ntrailers < RPC_MAX_TRAILERS; i++) {
        const grpc_metadata *m = &md->metadata[i];
        typeof(st->trailers[0]) *t = &st->trailers[st->ntrailers++];
        size_t kl = GRPC_SLICE_LENGTH(m->key), vl = GRPC_SLICE_LENGTH(m->value);
        if (kl >= sizeof t->key)
            kl = sizeof t->key - 1;
        if (vl >= sizeof t->value)
            vl = sizeof t->value - 1;
        memcpy(t->key, GRPC_SLICE_START_PTR(m->key), kl);
        t->key[kl] = '\0';
        memcpy(t->value, GRPC_SLICE_START_PTR(m->value), vl);
        t->value[vl] = '\0';
        t->value_len = vl;
    }
}

const char *rpc_status_trailer(const struct rpc_status *st, const char *key)
{
    for (int i = 0; i < st->ntrailers; i++)
        if (strcmp(st->trailers[i].key, key) == 0)
            return st->trailers[i].value;
    return NULL;
}

static void set_status(struct rpc_status *st, grpc_status_code code, grpc_slice details)
{
    st->code = (int)code;
    st->ntrailers = 0;
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof st->message)
        n = sizeof st->message - 1;
    memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
    st->message[n] = '\0';
}

static ProtobufCMessage *unpack_bb(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
    grpc_slice_unref(sl);
    return m;
}

static grpc_metadata *make_md(const struct rpc_md *md, size_t nmd)
{
    if (!nmd)
        return NULL;
    grpc_metadata *m = calloc(nmd, sizeof *m);
    for (size_t i = 0; i < nmd; i++) {
        m[i].key = grpc_slice_from_copied_string(md[i].key);
        m[i].value = grpc_slice_from_copied_string(md[i].value);
    }
    return m;
}

static void free_md(grpc_metadata *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        grpc_slice_unref(m[i].key);
        grpc_slice_unref(m[i].value);
    }
    free(m);
}

int rpc_unary(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
              int64_t timeout_ms, unsigned flags, const struct rpc_md *md, size_t nmd,
              struct rpc_status *st)
{
    grpc_completion_queue *cq = thread_cq();
    *resp = NULL;
    st->ntrailers = 0;
    grpc_call *call = grpc_channel_create_registered_call(
        ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method_handle(ch, method),
        deadline_of(timeout_ms), NULL);
    grpc_byte_buffer *req_bb = call_pack(req), *resp_bb = NULL;
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;
    grpc_metadata *send_md = make_md(md, nmd);

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = send_md;
    if (flags & RPC_CALL_WAIT_FOR_READY)
        ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                       GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;
    int tag;
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, &tag, NULL);
    if (e == GRPC_CALL_OK) {
        grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        set_status(st, code, details);
        copy_trailers(st, &trail_md);
        if (code == GRPC_STATUS_OK) {
            if (!resp_bb) {
                st->code = RPC_INTERNAL;
                snprintf(st->message, sizeof st->message, "server sent no response message");
            } else if (!(*resp = unpack_bb(resp_desc, resp_bb))) {
                st->code = RPC_INTERNAL;
                snprintf(st->message, sizeof st->message, "cannot decode the response as %s",
                         resp_desc->name);
            }
        }
    } else {
        st->code = RPC_INTERNAL;
        snprintf(st->message, sizeof st->message, "cannot start call: error %d", (int)e);
    }
    gpr_free((void *)error_string);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_byte_buffer_destroy(req_bb);
    if (resp_bb)
        grpc_byte_buffer_destroy(resp_bb);
    free_md(send_md, nmd);
    grpc_call_unref(call);
    return st->code;
}

/* ---- server-streaming reader ---------------------------------------------------------------- */

struct rpc_reader {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code code;
    grpc_slice details;
    const char *error_string;
    bool ended;
    int status_tag, step_tag;
};

struct rpc_reader *rpc_reader_open(struct rpc_channel *ch, const char *method,
                                   const ProtobufCMessage *req, int64_t timeout_ms,
                                   unsigned flags, struct rpc_status *st)
{
    struct rpc_reader *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    grpc_init();
    r->cq = grpc_completion_queue_create_for_pluck(NULL);
    r->call = grpc_channel_create_registered_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq,
                                                  method_handle(ch, method),
                                                  deadline_of(timeout_ms), NULL);
    grpc_metadata_array_init(&r->init_md);
    grpc_metadata_array_init(&r->trail_md);
    r->details = grpc_empty_slice();

    grpc_op sop = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    sop.data.recv_status_on_client.trailing_metadata = &r->trail_md;
    sop.data.recv_status_on_client.status = &r->code;
    sop.data.recv_status_on_client.status_details = &r->details;
    sop.data.recv_status_on_client.error_string = &r->error_string;
    grpc_call_start_batch(r->call, &sop, 1, &r->status_tag, NULL);

    grpc_byte_buffer *bb = call_pack(req);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (flags & RPC_CALL_WAIT_FOR_READY)
        ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                       GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &r->init_md;
    grpc_call_start_batch(r->call, ops, 4, &r->step_tag, NULL);
    grpc_completion_queue_pluck(r->cq, &r->step_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_byte_buffer_destroy(bb);
    st->code = RPC_OK;
    st->message[0] = '\0';
    st->ntrailers = 0;
    return r;
}

static void reader_end(struct rpc_reader *r, struct rpc_status *st)
{
    if (!r->ended) {
        grpc_completion_queue_pluck(r->cq, &r->status_tag, gpr_inf_future(GPR_CLOCK_REALTIME),
                                    NULL);
        r->ended = true;
    }
    set_status(st, r->code, r->details);
    copy_trailers(st, &r->trail_md);
}

int rpc_reader_next(struct rpc_reader *r, const ProtobufCMessageDescriptor *d,
                    ProtobufCMessage **msg, struct rpc_status *st)
{
    *msg = NULL;
    if (r->ended) {
        set_status(st, r->code, r->details);
        return 0;
    }
    grpc_byte_buffer *bb = NULL;
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &bb;
    grpc_call_start_batch(r->call, &op, 1, &r->step_tag, NULL);
    grpc_event ev =
        grpc_completion_queue_pluck(r->cq, &r->step_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!ev.success || !bb) {
        reader_end(r, st);
        return st->code == RPC_OK ? 0 : -1;
    }
    *msg = unpack_bb(d, bb);
    grpc_byte_buffer_destroy(bb);
    if (!*msg) {
        st->code = RPC_INTERNAL;
        snprintf(st->message, sizeof st->message, "cannot decode a stream message as %s",
                 d->name);
        return -1;
    }
    st->code = RPC_OK;
    return 1;
}

void rpc_reader_close(struct rpc_reader *r)
{
    if (!r)
        return;
    if (!r->ended) {
        grpc_call_cancel(r->call, NULL);
        grpc_completion_queue_pluck(r->cq, &r->status_tag, gpr_inf_future(GPR_CLOCK_REALTIME),
                                    NULL);
    }
    gpr_free((void *)r->error_string);
    grpc_slice_unref(r->details);
    grpc_metadata_array_destroy(&r->init_md);
    grpc_metadata_array_destroy(&r->trail_md);
    grpc_call_unref(r->call);
    grpc_completion_queue_shutdown(r->cq);
    while (grpc_completion_queue_pluck(r->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
               .type != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(r->cq);
    free(r);
    grpc_shutdown();
}
