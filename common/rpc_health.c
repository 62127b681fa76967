/* rpc_health.c -- grpc.health.v1.Health: Check and Watch over a registry of statuses.
 *
 * Entries: "" (the overall status: SERVING only when the server is ready), one per registered
 * service, and "liveness" (SERVING from start until the drain; for Kubernetes liveness probes
 * that must not fail while state loads). Check of an unknown name answers NOT_FOUND; Watch of
 * an unknown name sends SERVICE_UNKNOWN and stays open. Watch sends the current status at once
 * and then every change; the drain ends every watch with UNAVAILABLE. Handlers run on the
 * completion-queue threads: a kubelet probe has a 1 s budget. */
#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

#define SERVING         GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define NOT_SERVING     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define SERVICE_UNKNOWN GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

/* Called with hmu held. */
static struct health_entry *find(struct rpc_server *s, const char *name)
{
    for (struct health_entry *h = s->health; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    return NULL;
}

static int status_of(struct rpc_server *s, const char *name)
{
    struct health_entry *h = find(s, name);
    return h ? h->status : SERVICE_UNKNOWN;
}

static void send_status(struct rpc_call *c, int status)
{
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = status;
    rpc_call_send(c, &r.base);
}

/* Called with hmu held: tells every watcher of name (or of all names) its status if changed. */
static void notify_locked(struct rpc_server *s)
{
    for (struct health_watcher *w = s->watchers; w; w = w->next) {
        int st = status_of(s, w->name);
        if (st != w->last_sent) {
            w->last_sent = st;
            send_status(w->call, st);
        }
    }
}

static void set_locked(struct rpc_server *s, const char *name, bool serving)
{
    struct health_entry *h = find(s, name);
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h)
            abort();
        h->name = strdup(name);
        h->next = s->health;
        s->health = h;
    }
    h->status = serving ? SERVING : NOT_SERVING;
}

void health_set(struct rpc_server *s, const char *name, bool serving)
{
    pthread_mutex_lock(&s->hmu);
    set_locked(s, name, serving);
    notify_locked(s);
    pthread_mutex_unlock(&s->hmu);
}

/* Sets "" and every application service (not "liveness"). */
void health_set_all(struct rpc_server *s, bool serving)
{
    pthread_mutex_lock(&s->hmu);
    set_locked(s, "", serving);
    for (size_t i = 0; i < s->nservices; i++) {
        struct rpc_service *sv = s->services[i];
        if (sv != s->health_svc && sv != s->refl_v1 && sv != s->refl_v1alpha)
            set_locked(s, sv->d->name, serving);
    }
    notify_locked(s);
    pthread_mutex_unlock(&s->hmu);
}

void health_end_watchers(struct rpc_server *s)
{
    pthread_mutex_lock(&s->hmu);
    struct health_watcher *w = s->watchers;
    s->watchers = NULL;
    pthread_mutex_unlock(&s->hmu);
    while (w) {
        struct health_watcher *next = w->next;
        rpc_call_errorf(w->call, RPC_UNAVAILABLE, "server shutting down");
        rpc_call_finish(w->call, RPC_UNAVAILABLE);
        rpc_call_unref(w->call);
        free(w->name);
        free(w);
        w = next;
    }
}

static int check(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                 void *svc)
{
    struct rpc_server *s = svc;
    const Grpc__Health__V1__HealthCheckRequest *rq = (const void *)req;
    Grpc__Health__V1__HealthCheckResponse *rs = (void *)resp;
    pthread_mutex_lock(&s->hmu);
    int st = status_of(s, rq->service);
    pthread_mutex_unlock(&s->hmu);
    if (st == SERVICE_UNKNOWN)
        return rpc_call_errorf(c, RPC_NOT_FOUND,
                               "unknown service '%s' (use \"\" for the overall status)",
                               rq->service);
    rs->status = st;
    return RPC_OK;
}

static int watch(struct rpc_call *c, const ProtobufCMessage *req, void *svc)
{
    struct rpc_server *s = svc;
    const Grpc__Health__V1__HealthCheckRequest *rq = (const void *)req;
    if (rpc_server_draining(s))
        return rpc_call_errorf(c, RPC_UNAVAILABLE, "server shutting down");
    struct health_watcher *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->call = c;
    w->name = strdup(rq->service);
    rpc_call_ref(c);
    pthread_mutex_lock(&s->hmu);
    w->last_sent = status_of(s, w->name);
    send_status(c, w->last_sent);
    w->next = s->watchers;
    s->watchers = w;
    pthread_mutex_unlock(&s->hmu);
    return RPC_PENDING;
}

/* The client went away (cancel, deadline): drop its watcher. */
static void watch_closed(struct rpc_call *c, bool cancelled, void *svc)
{
    struct rpc_server *s = svc;
    struct health_watcher *found = NULL;
    pthread_mutex_lock(&s->hmu);
    for (struct health_watcher **pp = &s->watchers; *pp; pp = &(*pp)->next) {
        if ((*pp)->call == c) {
            found = *pp;
            *pp = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->hmu);
    if (found) {
        rpc_call_finish(c, RPC_CANCELLED);
        rpc_call_unref(c);
        free(found->name);
        free(found);
    }
}

void health_register(struct rpc_server *s)
{
    static const struct rpc_method methods[] = {
        {.name = "Check", .kind = RPC_KIND_UNARY, .unary = check},
        {.name = "Watch", .kind = RPC_KIND_SERVER_STREAM, .sstream = watch,
         .on_close = watch_closed},
    };
    rpc_server_add_service(s, &grpc__health__v1__health__descriptor, methods, 2, s);
    health_set(s, "", false);
}
