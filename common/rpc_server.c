/* rpc_server.c -- the gRPC server: channel arguments, method registration from protoc-c
 * descriptors, completion-queue threads, dispatch to handlers, the worker pool and the drain.
 *
 * Threads: `cq_threads` pollers, each owning one completion queue that every method has
 * requests posted on (no queue per call); `worker_threads` workers for RPC_F_BLOCKING
 * handlers. The drain runs on the caller's thread (the program's main thread, after sigwait). */
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "rpc_internal.h"

#include <grpc/support/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REQUESTS_PER_METHOD 4 /* outstanding request_registered_call per method per queue */
#define GENERIC_REQUESTS    2

static const char *const code_labels[17] = {
    "OK",       "Canceled",         "Unknown",         "InvalidArgument",    "DeadlineExceeded",
    "NotFound", "AlreadyExists",    "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",       "Unimplemented",   "Internal",           "Unavailable",
    "DataLoss", "Unauthenticated"};
static const char *const code_names[17] = {
    "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",
    "UNAUTHENTICATED"};

const char *rpc_code_label(int code)
{
    return code >= 0 && code <= 16 ? code_labels[code] : "Unknown";
}

const char *rpc_code_name(int code)
{
    return code >= 0 && code <= 16 ? code_names[code] : "UNKNOWN";
}

/* gRPC core's own log lines go through our logger (GRPC_VERBOSITY still filters them). */
static void core_log(gpr_log_func_args *a)
{
    enum log_level lvl = a->severity == GPR_LOG_SEVERITY_ERROR  ? LOG_LVL_ERROR
                         : a->severity == GPR_LOG_SEVERITY_INFO ? LOG_LVL_INFO
                                                                : LOG_LVL_DEBUG;
    if (log_enabled(lvl))
        LOG_AT(lvl, "grpc core", LF_STR("detail", a->message), LF_STR("file", a->file),
               LF_I64("line", a->line));
}

/* ---- setup ---------------------------------------------------------------------------------- */

struct rpc_server *rpc_server_new(const struct rpc_server_opts *o)
{
    struct rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->o = *o;
    if (s->o.cq_threads <= 0)
        s->o.cq_threads = 2;
    if (s->o.worker_threads <= 0)
        s->o.worker_threads = 4;
    gpr_set_log_function(core_log);
    grpc_init();

    grpc_arg args[16];
    int n = 0;
#define IARG(k, v) args[n++] = (grpc_arg){.type = GRPC_ARG_INTEGER, .key = (char *)(k), .value.integer = (int)(v)}
    IARG(GRPC_ARG_ALLOW_REUSEPORT, 0); /* a second instance on a busy port must fail loudly */
    if (o->max_recv_msg)
        IARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, o->max_recv_msg);
    if (o->max_send_msg)
        IARG(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, o->max_send_msg);
    if (o->keepalive_time_ms) {
        IARG(GRPC_ARG_KEEPALIVE_TIME_MS, o->keepalive_time_ms);
        IARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, o->keepalive_timeout_ms);
    }
    IARG(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    if (o->min_ping_interval_ms)
        IARG(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, o->min_ping_interval_ms);
    if (o->max_conn_age_ms) {
        IARG(GRPC_ARG_MAX_CONNECTION_AGE_MS, o->max_conn_age_ms);
        IARG(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, o->max_conn_age_grace_ms);
    }
    if (o->max_conn_idle_ms)
        IARG(GRPC_ARG_MAX_CONNECTION_IDLE_MS, o->max_conn_idle_ms);
    if (o->max_concurrent_streams)
        IARG(GRPC_ARG_MAX_CONCURRENT_STREAMS, o->max_concurrent_streams);
#undef IARG
    grpc_channel_args ca = {.num_args = (size_t)n, .args = args};
    s->srv = grpc_server_create(&ca, NULL);

    s->ncq = s->o.cq_threads;
    s->cqs = calloc((size_t)s->ncq, sizeof *s->cqs);
    for (int i = 0; i < s->ncq; i++) {
        s->cqs[i].s = s;
        s->cqs[i].idx = i;
        s->cqs[i].cq = grpc_completion_queue_create_for_next(NULL);
        pthread_mutex_init(&s->cqs[i].mu, NULL);
        grpc_server_register_completion_queue(s->srv, s->cqs[i].cq, NULL);
    }
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->wcv, NULL);
    pthread_mutex_init(&s->hmu, NULL);
    pthread_mutex_init(&s->smu, NULL);
    pthread_cond_init(&s->scv, NULL);
    s->t_shutdown = (struct rpc_tag){OP_SHUTDOWN, s};
    s->unknown_handled = metrics_child(
        metrics_family("grpc_server_handled_total",
                       "Total number of RPCs completed on the server, regardless of success or "
                       "failure.",
                       METRIC_COUNTER, "grpc_type,grpc_service,grpc_method,grpc_code", NULL, 0),
        "unary", "unknown", "unknown", "Unimplemented");

    health_register(s);
    reflection_register(s);
    return s;
}

static const char *type_label(enum rpc_kind k)
{
    static const char *const t[] = {"unary", "server_stream", "client_stream", "bidi_stream"};
    return t[k];
}

void rpc_server_add_service(struct rpc_server *s, const ProtobufCServiceDescriptor *d,
                            const struct rpc_method *methods, size_t n, void *svc)
{
    struct rpc_service *sv = calloc(1, sizeof *sv);
    if (!sv)
        abort();
    sv->d = d;
    sv->svc = svc;
    sv->methods = calloc(n, sizeof *sv->methods);
    sv->n = n;
    struct metric_family *started = metrics_family(
        "grpc_server_started_total", "Total number of RPCs started on the server.",
        METRIC_COUNTER, "grpc_type,grpc_service,grpc_method", NULL, 0);
    struct metric_family *lat = metrics_family(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level "
        "handled by the server.",
        METRIC_HISTOGRAM, "grpc_type,grpc_service,grpc_method", NULL, 0);
    struct metric_family *recv = metrics_family(
        "grpc_server_msg_received_total",
        "Total number of RPC stream messages received on the server.", METRIC_COUNTER,
        "grpc_type,grpc_service,grpc_method", NULL, 0);
    struct metric_family *sent = metrics_family(
        "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.",
        METRIC_COUNTER, "grpc_type,grpc_service,grpc_method", NULL, 0);
    for (size_t i = 0; i < n; i++) {
        struct rpc_mdesc *md = &sv->methods[i];
        const ProtobufCMethodDescriptor *pd = NULL;
        for (unsigned k = 0; k < d->n_methods; k++)
            if (strcmp(d->methods[k].name, methods[i].name) == 0)
                pd = &d->methods[k];
        bool cs = false, ss = false;
        if (!pd || !descset_method_kind(d->name, methods[i].name, &cs, &ss)) {
            fprintf(stderr, "rpc: %s has no method %s in its descriptor\n", d->name,
                    methods[i].name);
            abort();
        }
        enum rpc_kind want = cs ? (ss ? RPC_KIND_BIDI : RPC_KIND_CLIENT_STREAM)
                                : (ss ? RPC_KIND_SERVER_STREAM : RPC_KIND_UNARY);
        if (want != methods[i].kind) {
            fprintf(stderr, "rpc: %s/%s is declared %s but the proto says %s\n", d->name,
                    methods[i].name, type_label(methods[i].kind), type_label(want));
            abort();
        }
        md->service = sv;
        md->pd = pd;
        md->m = methods[i];
        if (asprintf(&md->path, "/%s/%s", d->name, pd->name) < 0)
            abort();
        md->type_label = type_label(want);
        md->started = metrics_child(started, md->type_label, d->name, pd->name);
        md->latency = metrics_child(lat, md->type_label, d->name, pd->name);
        md->msg_recv = metrics_child(recv, md->type_label, d->name, pd->name);
        md->msg_sent = metrics_child(sent, md->type_label, d->name, pd->name);
        /* Pre-create the OK series so dashboards see it from the start. */
        md->handled[0] = metrics_child(
            metrics_family("grpc_server_handled_total", "", METRIC_COUNTER,
                           "grpc_type,grpc_service,grpc_method,grpc_code", NULL, 0),
            md->type_label, d->name, pd->name, "OK");
        /* host NULL: any :authority (kubelet probes dial the pod IP). */
        md->handle = grpc_server_register_method(
            s->srv, md->path, NULL,
            (want == RPC_KIND_UNARY || want == RPC_KIND_SERVER_STREAM)
                ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                : GRPC_SRM_PAYLOAD_NONE,
            0);
        if (!md->handle) {
            fprintf(stderr, "rpc: cannot register %s\n", md->path);
            abort();
        }
    }
    s->services = realloc(s->services, (s->nservices + 1) * sizeof *s->services);
    s->services[s->nservices++] = sv;
    if (strcmp(d->name, "grpc.health.v1.Health") == 0)
        s->health_svc = sv;
    else if (strcmp(d->name, "grpc.reflection.v1.ServerReflection") == 0)
        s->refl_v1 = sv;
    else if (strcmp(d->name, "grpc.reflection.v1alpha.ServerReflection") == 0)
        s->refl_v1alpha = sv;
    else
        health_set(s, d->name, false);
}

/* ---- requests and dispatch ------------------------------------------------------------------ */

void server_post_request(struct rpc_server *s, struct rpc_cq *q, struct rpc_mdesc *md)
{
    struct rpc_call *c = call_new(s, q, md);
    bool has_payload = md->m.kind == RPC_KIND_UNARY || md->m.kind == RPC_KIND_SERVER_STREAM;
    grpc_call_error e = grpc_server_request_registered_call(
        s->srv, md->handle, &c->call, &c->deadline, &c->req_md, has_payload ? &c->payload : NULL,
        q->cq, q->cq, &c->t_new);
    if (e != GRPC_CALL_OK) {
        LOG_ERROR("cannot request calls", LF_STR("method", md->path), LF_I64("error", e));
        rpc_call_unref(c);
    }
}

void server_post_generic(struct rpc_server *s, struct rpc_cq *q)
{
    struct rpc_call *c = call_new(s, q, NULL);
    grpc_call_error e = grpc_server_request_call(s->srv, &c->call, &c->details, &c->req_md, q->cq,
                                                 q->cq, &c->t_new);
    if (e != GRPC_CALL_OK) {
        LOG_ERROR("cannot request generic calls", LF_I64("error", e));
        rpc_call_unref(c);
    }
}

static void run_unary(struct rpc_call *c)
{
    struct rpc_mdesc *md = c->md;
    int code = md->m.unary(c, c->req, c->resp, md->service->svc);
    if (code == RPC_PENDING) {
        call_start_recv_close(c); /* so the handler can see cancellation */
        return;
    }
    rpc_call_finish(c, code);
}

static void run_offloaded(struct rpc_call *c)
{
    protobuf_c_message_init(c->md->pd->output, c->resp);
    int code = c->offload_fn(c, c->req, c->resp, c->md->service->svc);
    if (code != RPC_PENDING)
        rpc_call_finish(c, code);
}

int rpc_call_offload(struct rpc_call *c, rpc_unary_fn *fn)
{
    c->offload_fn = fn;
    if (c->detached)
        return RPC_PENDING; /* rpc_test_invoke runs it, as a worker would */
    call_start_recv_close(c);
    server_submit(c->s, run_offloaded, c);
    return RPC_PENDING;
}

bool rpc_call_offloaded(const struct rpc_call *c)
{
    return c->on_worker;
}

static void run_sstream(struct rpc_call *c)
{
    struct rpc_mdesc *md = c->md;
    int code = md->m.sstream(c, c->req, md->service->svc);
    if (code != RPC_PENDING)
        rpc_call_finish(c, code);
}

static void run_stream_start(struct rpc_call *c)
{
    call_start_read(c);
}

static bool always_served(const struct rpc_server *s, const struct rpc_mdesc *md)
{
    return (md->m.flags & RPC_F_ALWAYS) || md->service == s->health_svc ||
           md->service == s->refl_v1 || md->service == s->refl_v1alpha;
}

void server_dispatch(struct rpc_call *c, bool ok)
{
    struct rpc_server *s = c->s;
    if (!ok) {
        /* The server is shutting down: this request will never be matched. */
        rpc_call_unref(c);
        return;
    }
    c->t0_us = clock_mono_us();
    call_live_add(c);
    if (!c->md) {
        server_post_generic(s, c->cq);
        char *m = grpc_slice_to_c_string(c->details.method);
        rpc_call_errorf(c, RPC_UNIMPLEMENTED,
                        "unknown method %s: this server does not implement it (list the "
                        "services with grpcurl/buf curl and server reflection)",
                        m);
        gpr_free(m);
        rpc_call_finish(c, RPC_UNIMPLEMENTED);
        return;
    }
    struct rpc_mdesc *md = c->md;
    server_post_request(s, c->cq, md);
    metric_inc(md->started);

    if (!atomic_load(&s->ready) && !always_served(s, md)) {
        rpc_call_errorf(c, RPC_UNAVAILABLE, "%s is not ready yet (%s); retry shortly",
                        md->service->d->name,
                        atomic_load(&s->draining) ? "shutting down" : "starting up");
        rpc_call_finish(c, RPC_UNAVAILABLE);
        return;
    }
    bool blocking = md->m.flags & RPC_F_BLOCKING;
    switch (md->m.kind) {
    case RPC_KIND_UNARY:
    case RPC_KIND_SERVER_STREAM:
        metric_inc(md->msg_recv);
        c->req = call_unpack(c, md->pd->input, c->payload);
        if (!c->req) {
            rpc_call_errorf(c, RPC_INVALID_ARGUMENT,
                            "cannot decode the request as %s (wrong message type?)",
                            md->pd->input->name);
            rpc_call_finish(c, RPC_INVALID_ARGUMENT);
            return;
        }
        if (md->m.kind == RPC_KIND_UNARY) {
            c->resp = rpc_call_alloc(c, md->pd->output->sizeof_message);
            protobuf_c_message_init(md->pd->output, c->resp);
            if (blocking) {
                call_start_recv_close(c);
                server_submit(s, run_unary, c);
            } else {
                run_unary(c);
            }
        } else {
            call_start_recv_close(c);
            if (blocking)
                server_submit(s, run_sstream, c);
            else
                run_sstream(c);
        }
        return;
    case RPC_KIND_CLIENT_STREAM:
    case RPC_KIND_BIDI:
        call_start_recv_close(c);
        run_stream_start(c);
        return;
    }
}

/* ---- worker pool ---------------------------------------------------------------------------- */

void server_submit(struct rpc_server *s, void (*fn)(struct rpc_call *c), struct rpc_call *c)
{
    struct worker_job *j = malloc(sizeof *j);
    if (!j)
        abort();
    j->next = NULL;
    j->fn = fn;
    j->c = c;
    pthread_mutex_lock(&s->wmu);
    if (s->wq_tail)
        s->wq_tail->next = j;
    else
        s->wq_head = j;
    s->wq_tail = j;
    pthread_cond_signal(&s->wcv);
    pthread_mutex_unlock(&s->wmu);
}

static void *worker_main(void *arg)
{
    struct rpc_server *s = arg;
    pthread_mutex_lock(&s->wmu);
    for (;;) {
        while (!s->wq_head && !s->wstop)
            pthread_cond_wait(&s->wcv, &s->wmu);
        if (!s->wq_head && s->wstop)
            break;
        struct worker_job *j = s->wq_head;
        s->wq_head = j->next;
        if (!s->wq_head)
            s->wq_tail = NULL;
        pthread_mutex_unlock(&s->wmu);
        j->c->on_worker = true;
        j->fn(j->c);
        free(j);
        pthread_mutex_lock(&s->wmu);
    }
    pthread_mutex_unlock(&s->wmu);
    return NULL;
}

/* ---- pollers -------------------------------------------------------------------------------- */

static void *poller_main(void *arg)
{
    struct rpc_cq *q = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(q->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct rpc_tag *t = ev.tag;
        if (t->op == OP_SHUTDOWN) {
            struct rpc_server *s = t->obj;
            pthread_mutex_lock(&s->smu);
            s->shutdown_done = true;
            pthread_cond_broadcast(&s->scv);
            pthread_mutex_unlock(&s->smu);
            continue;
        }
        call_on_event(t, ev.success != 0);
    }
    return NULL;
}

int rpc_server_start(struct rpc_server *s, char *err, size_t errlen)
{
    grpc_server_credentials *cr = grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->srv, s->o.listen, cr);
    grpc_server_credentials_release(cr);
    if (s->port <= 0) {
        snprintf(err, errlen, "cannot listen for gRPC on %s (address in use, or not a local address)",
                 s->o.listen);
        return -1;
    }
    grpc_server_start(s->srv);
    atomic_store(&s->started, true);
    for (int q = 0; q < s->ncq; q++) {
        for (size_t i = 0; i < s->nservices; i++)
            for (size_t m = 0; m < s->services[i]->n; m++)
                for (int k = 0; k < REQUESTS_PER_METHOD; k++)
                    server_post_request(s, &s->cqs[q], &s->services[i]->methods[m]);
        for (int k = 0; k < GENERIC_REQUESTS; k++)
            server_post_generic(s, &s->cqs[q]);
    }
    for (int q = 0; q < s->ncq; q++) {
        pthread_create(&s->cqs[q].thread, NULL, poller_main, &s->cqs[q]);
        char name[24];
        snprintf(name, sizeof name, "grpc-cq-%d", q);
        pthread_setname_np(s->cqs[q].thread, name);
    }
    s->nworkers = s->o.worker_threads;
    s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
    for (int i = 0; i < s->nworkers; i++) {
        pthread_create(&s->workers[i], NULL, worker_main, s);
        char name[24];
        snprintf(name, sizeof name, "rpc-worker-%d", i);
        pthread_setname_np(s->workers[i], name);
    }
    health_set(s, "liveness", true);
    return s->port;
}

int rpc_server_port(const struct rpc_server *s)
{
    return s->port;
}

void rpc_server_set_ready(struct rpc_server *s, bool ready)
{
    atomic_store(&s->ready, ready);
    health_set_all(s, ready);
}

bool rpc_server_ready(struct rpc_server *s)
{
    return atomic_load(&s->ready);
}

bool rpc_server_draining(struct rpc_server *s)
{
    return atomic_load(&s->draining);
}

void rpc_server_set_health(struct rpc_server *s, const char *service, bool serving)
{
    health_set(s, service, serving);
}

void rpc_server_on_drain(struct rpc_server *s, void (*fn)(void *arg), void *arg)
{
    struct drain_cb *d = malloc(sizeof *d);
    if (!d)
        abort();
    d->fn = fn;
    d->arg = arg;
    d->next = s->drain_cbs;
    s->drain_cbs = d;
}

/* ---- drain ---------------------------------------------------------------------------------- */

static bool wait_shutdown(struct rpc_server *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->smu);
    while (!s->shutdown_done) {
        if (ms < 0) {
            pthread_cond_wait(&s->scv, &s->smu);
        } else if (pthread_cond_timedwait(&s->scv, &s->smu, &ts) != 0) {
            break;
        }
    }
    bool done = s->shutdown_done;
    pthread_mutex_unlock(&s->smu);
    return done;
}

/* Finishes every call that nobody finished (a service that kept a call past the drain). */
static int finish_leftovers(struct rpc_server *s)
{
    int n = 0;
    for (int q = 0; q < s->ncq; q++) {
        struct rpc_cq *cq = &s->cqs[q];
        for (;;) {
            struct rpc_call *victim = NULL;
            pthread_mutex_lock(&cq->mu);
            for (struct rpc_call *c = cq->live; c; c = c->live_next) {
                pthread_mutex_lock(&c->mu);
                bool open = !c->finish_called;
                pthread_mutex_unlock(&c->mu);
                if (open) {
                    victim = c;
                    rpc_call_ref(c);
                    break;
                }
            }
            pthread_mutex_unlock(&cq->mu);
            if (!victim)
                break;
            rpc_call_errorf(victim, RPC_UNAVAILABLE, "server shutting down");
            rpc_call_finish(victim, RPC_UNAVAILABLE);
            rpc_call_unref(victim);
            n++;
        }
    }
    return n;
}

void rpc_server_drain(struct rpc_server *s)
{
    if (atomic_exchange(&s->draining, true))
        return;
    if (!atomic_load(&s->started))
        return;
    int64_t t0 = clock_mono_ms();
    health_set_all(s, false);
    health_set(s, "liveness", false);
    for (struct drain_cb *d = s->drain_cbs; d; d = d->next)
        d->fn(d->arg);
    grpc_server_shutdown_and_notify(s->srv, s->cqs[0].cq, &s->t_shutdown);
    health_end_watchers(s);
    if (!wait_shutdown(s, s->o.drain_grace_ms)) {
        LOG_WARN("drain grace period over: cancelling the calls still in flight",
                 LF_I64("grace_ms", s->o.drain_grace_ms));
        grpc_server_cancel_all_calls(s->srv);
        wait_shutdown(s, -1);
    }
    /* Workers finish what they hold (cancelled calls return fast), then stop. */
    pthread_mutex_lock(&s->wmu);
    s->wstop = true;
    pthread_cond_broadcast(&s->wcv);
    pthread_mutex_unlock(&s->wmu);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    int left = finish_leftovers(s);
    if (left)
        LOG_WARN("calls were still open after the drain; finished them as UNAVAILABLE",
                 LF_I64("calls", left));
    for (int q = 0; q < s->ncq; q++)
        grpc_completion_queue_shutdown(s->cqs[q].cq);
    for (int q = 0; q < s->ncq; q++)
        pthread_join(s->cqs[q].thread, NULL);
    LOG_INFO("gRPC server drained", LF_I64("ms", clock_mono_ms() - t0));
}

void rpc_server_free(struct rpc_server *s)
{
    if (!s)
        return;
    if (atomic_load(&s->started) && !atomic_load(&s->draining))
        rpc_server_drain(s);
    /* Calls still referenced by a service after the queues are gone: release them now. */
    for (int q = 0; q < s->ncq; q++) {
        while (s->cqs[q].live) {
            struct rpc_call *c = s->cqs[q].live;
            LOG_WARN("call still referenced at exit", LF_STR("method", rpc_call_method(c)));
            atomic_store(&c->refs, 1);
            rpc_call_unref(c);
        }
    }
    if (!atomic_load(&s->started)) {
        grpc_server_shutdown_and_notify(s->srv, s->cqs[0].cq, &s->t_shutdown);
        grpc_server_cancel_all_calls(s->srv);
        for (int q = 0; q < s->ncq; q++) {
            grpc_completion_queue_shutdown(s->cqs[q].cq);
            for (;;) {
                grpc_event ev = grpc_completion_queue_next(
                    s->cqs[q].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                    break;
                struct rpc_tag *t = ev.tag;
                if (ev.type == GRPC_OP_COMPLETE && t->op != OP_SHUTDOWN)
                    call_on_event(t, false);
            }
        }
    }
    grpc_server_destroy(s->srv);
    for (int q = 0; q < s->ncq; q++) {
        grpc_completion_queue_destroy(s->cqs[q].cq);
        pthread_mutex_destroy(&s->cqs[q].mu);
    }
    free(s->cqs);
    for (size_t i = 0; i < s->nservices; i++) {
        for (size_t m = 0; m < s->services[i]->n; m++)
            free(s->services[i]->methods[m].path);
        free(s->services[i]->methods);
        free(s->services[i]);
    }
    free(s->services);
    free(s->workers);
    while (s->health) {
        struct health_entry *h = s->health;
        s->health = h->next;
        free(h->name);
        free(h);
    }
    while (s->drain_cbs) {
        struct drain_cb *d = s->drain_cbs;
        s->drain_cbs = d->next;
        free(d);
    }
    free(s);
    grpc_shutdown();
}
