/* bench_server.c -- the benchmark RPC on engbot's gRPC layer: SessionService/TouchSession
 * against an in-memory map under one mutex, exactly what the C++ and grpc-js peers
 * (peer_cpp.cc, peer_grpcjs.js) implement, so the three differ only in the gRPC stack.
 * Run by tests/bench/run-layer-bench.sh. */
#include "engbot/session/v1/session.pb-c.h"
#include "svc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 65536

struct entry {
    struct entry *next;
    int64_t chat_id, user_id, created, last;
    uint64_t version;
};

static struct entry *table[NBUCKETS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t now_ms;

static int touch(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                 void *svc)
{
    const Engbot__Session__V1__TouchSessionRequest *rq = (const void *)req;
    Engbot__Session__V1__TouchSessionResponse *rs = (void *)resp;
    Engbot__Session__V1__Session *s = rpc_call_alloc(c, sizeof *s);
    engbot__session__v1__session__init(s);
    size_t b = (uint64_t)rq->chat_id % NBUCKETS;
    pthread_mutex_lock(&mu);
    struct entry *e = table[b];
    while (e && e->chat_id != rq->chat_id)
        e = e->next;
    if (!e) {
        e = calloc(1, sizeof *e);
        e->chat_id = rq->chat_id;
        e->created = ++now_ms;
        e->next = table[b];
        table[b] = e;
        rs->created = 1;
    }
    e->user_id = rq->user_id;
    e->last = ++now_ms;
    e->version++;
    s->chat_id = e->chat_id;
    s->user_id = e->user_id;
    s->created_unix_ms = e->created;
    s->last_active_unix_ms = e->last;
    s->version = e->version;
    pthread_mutex_unlock(&mu);
    rs->session = s;
    return RPC_OK;
}

int main(int argc, char **argv)
{
    struct svc_common common;
    const struct conf_opt *const tables[] = {
        svc_common_opts(&common, "127.0.0.1:50070", "127.0.0.1:9170"), NULL};
    conf_load(tables, argc, argv, "bench-server", "TouchSession benchmark server on the layer");
    svc_init("bench-server", &common);
    struct svc *s = svc_new("bench-server", &common);
    static const struct rpc_method methods[] = {RPC_UNARY("TouchSession", touch, 0)};
    rpc_server_add_service(svc_rpc(s), &engbot__session__v1__session_service__descriptor, methods,
                           1, NULL);
    svc_start(s);
    svc_set_ready(s, true, NULL);
    svc_wait(s);
    svc_drain(s);
    svc_free(s);
    conf_free(tables);
    return 0;
}
