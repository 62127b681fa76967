/* service.h -- engbot.session.v1.SessionService: the RPC handlers, translating between protobuf
 * and the store, and mapping the store's and persistence's errors to gRPC statuses (here and
 * nowhere else) with messages a grpcurl user can act on. */
#ifndef ENGBOT_SESSION_SERVICE_H
#define ENGBOT_SESSION_SERVICE_H

#include "persist.h"
#include "rpc.h"
#include "store.h"
#include "sweeper.h"

struct session_limits {
    int64_t inactivity_ms, cleanup_ms;
    uint64_t max_sessions;
    uint32_t max_state_keys, max_state_bytes, max_text_bytes;
};

/* What the handlers use. Set persist and sweeper before the server is marked ready; the
 * handlers only run after that. */
struct session_service {
    struct store *st;
    struct persist *persist;
    struct sweeper *sweeper;
    struct session_limits lim;
    int64_t started_mono_ms;
};

void session_service_register(struct rpc_server *s, struct session_service *ss);
/* The method table (for tests and the handler fuzz target, which run it on test calls). */
const struct rpc_method *session_service_methods(size_t *n);

#endif
