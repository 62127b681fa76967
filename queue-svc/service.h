/* service.h -- engbot.queue.v1.QueueService: the RPC handlers, which translate between
 * protobuf and the broker, validate requests, and map queue errors to gRPC status codes (once,
 * here) with messages a grpcurl user can act on. */
#ifndef QUEUE_SERVICE_H
#define QUEUE_SERVICE_H

#include "broker.h"
#include "rpc.h"

struct qservice_opts {
    int64_t max_lease_wait_ms; /* MAX_LEASE_WAIT: a Lease waits at most this long */
    int64_t max_lease_ms;      /* longest lease a sender may ask for */
    size_t reply_max_bytes;    /* payload bytes per Lease/Peek/ListDeadLetters answer */
    uint64_t max_size;         /* QUEUE_MAX_SIZE (GetStats) */
    int64_t drain_settle_ms;   /* DRAIN_SETTLE: at SIGTERM, wait this long for open leases */
};

struct qservice;

struct qservice *qservice_new(const struct qservice_opts *o);
/* Registers QueueService on s (before rpc_server_start), and its drain hook (waiting Leases
 * are answered at the start of a drain). */
void qservice_register(struct qservice *qs, struct rpc_server *s);
/* Serves b (borrowed: it must outlive the service's calls). Call once the queue is restored,
 * before marking the server ready (until then the layer answers UNAVAILABLE). */
void qservice_attach(struct qservice *qs, struct broker *b);
void qservice_free(struct qservice *qs);
/* The method table (for tests and the handler fuzz target, which run it on test calls). */
const struct rpc_method *qservice_methods(size_t *n);

#endif
