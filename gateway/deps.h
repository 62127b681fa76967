/* deps.h -- the gateway's three dependencies (session-svc, cache-svc, queue-svc), each behind a
 * deadline, a retry budget and a circuit breaker, with an optional canary address per service.
 *
 * A call names the chat it is for: chats in the canary group (canary.h) go to the service's
 * canary address when one is set; everything else (and calls for no chat) goes to the stable
 * address. Each (service, track) has its own breaker, so a bad canary trips alone.
 *
 * When a breaker is open, calls fail at once with UNAVAILABLE ("circuit open") instead of
 * waiting on a dead service; a probe thread checks grpc.health.v1 on open breakers so a service
 * that comes back is used again even when no traffic would probe it. */
#ifndef ENGBOT_GW_DEPS_H
#define ENGBOT_GW_DEPS_H

#include "canary.h"
#include "rpc.h"

#include <stdbool.h>
#include <stdint.h>

enum dep_id { DEP_SESSION, DEP_CACHE, DEP_QUEUE, DEP_N };
enum dep_track { TRACK_STABLE, TRACK_CANARY, TRACK_N };

struct deps_opts {
    const char *addr[DEP_N];        /* HOST:PORT or dns:///name:port */
    const char *canary_addr[DEP_N]; /* NULL or "" = no canary for that service */
    struct canary_rule canary;
    bool enabled[DEP_N];        /* false: the optimisation is switched off (no calls) */
    int64_t deadline_ms[DEP_N]; /* per call */
    int retries;                /* extra attempts for idempotent calls (UNAVAILABLE only) */
    int breaker_threshold;      /* consecutive failures that open a breaker */
    int64_t breaker_open_ms, breaker_open_max_ms;
    int64_t reconnect_max_ms; /* cap of gRPC's reconnect backoff */
    /* Calls flagged DEPS_CACHED keep their OK answers this long (0: no read cache), within
     * read_cache_bytes per service and track. */
    int64_t read_cache_ttl_ms[DEP_N];
    size_t read_cache_bytes;
};

enum {
    DEPS_IDEMPOTENT = 1u << 0, /* safe to retry within the budget */
    /* Only while the service looks up: the breaker closed (never the half-open probe) and the
     * channel not failing to connect; otherwise fail at once with UNAVAILABLE, sending
     * nothing. For calls whose failure is costly (an Enqueue whose outcome is then unknown):
     * the probe thread's health checks find out when the service is back. */
    DEPS_WHEN_UP = 1u << 1,
    /* A read whose answer is the same for every chat (a catalogue page): an OK answer is kept
     * in the service's read cache (per track) and served from it until it is
     * read_cache_ttl_ms old, without a call. A breaker opening does not empty it: within
     * the TTL a cached page is still shown while the service is down. */
    DEPS_CACHED = 1u << 2,
};

struct deps;
struct deps *deps_new(const struct deps_opts *o);
/* Starts the probe thread. */
void deps_start(struct deps *d);
void deps_free(struct deps *d);

const char *dep_name(enum dep_id id); /* "session" */
bool deps_enabled(const struct deps *d, enum dep_id id);
bool deps_has_canary(const struct deps *d, enum dep_id id);
/* The track a chat's calls to this service take. */
enum dep_track deps_track(const struct deps *d, enum dep_id id, int64_t chat_id);
/* True when the chat is in the canary group (whatever services have canaries). */
bool deps_chat_is_canary(const struct deps *d, int64_t chat_id);

/* A unary call to method (the short name, e.g. "TouchSession") of the dependency's service.
 * Returns the gRPC code (st filled); UNAVAILABLE with "circuit open" or "switched off" without
 * calling. On RPC_OK *resp must be freed with protobuf_c_message_free_unpacked. */
int deps_unary(struct deps *d, enum dep_id id, int64_t chat_id, const char *method,
               const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
               ProtobufCMessage **resp, unsigned flags, struct rpc_status *st);

/* The same on an explicit track (a job leased from the canary queue is acked there). */
int deps_unary_on(struct deps *d, enum dep_id id, enum dep_track t, const char *method,
                  const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                  ProtobufCMessage **resp, unsigned flags, struct rpc_status *st);

/* deps_unary for calls with an effect, whose failure must be told apart: *sent is false when
 * nothing left this process (breaker open, switched off, DEPS_WHEN_UP), true when a request
 * went out and may have reached the service (a failure then leaves the outcome unknown). */
int deps_unary_sent(struct deps *d, enum dep_id id, int64_t chat_id, const char *method,
                    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                    ProtobufCMessage **resp, unsigned flags, struct rpc_status *st, bool *sent);

/* For streams and long polls: the channel of a track, and the breaker protocol by hand.
 * deps_allow returns false when the breaker is open (st filled). */
struct rpc_channel *deps_channel(struct deps *d, enum dep_id id, enum dep_track tr);
bool deps_allow(struct deps *d, enum dep_id id, enum dep_track tr, struct rpc_status *st);
void deps_report(struct deps *d, enum dep_id id, enum dep_track tr, int code);
int64_t deps_deadline_ms(const struct deps *d, enum dep_id id);

/* Is the stable track of this service usable now (enabled and breaker not open)? */
bool deps_up(struct deps *d, enum dep_id id);
/* Since when (clock_mono_ms) the track has been down: the first failure of the run of failures
 * that opened its breaker; 0 while the breaker is closed. Reset by any success (a call or the
 * probe thread's health check), which is also what closes the breaker. */
int64_t deps_down_since(struct deps *d, enum dep_id id, enum dep_track t);
/* Empties the service's read caches (both tracks): an admin's /refresh. */
void deps_forget_reads(struct deps *d, enum dep_id id);
/* Counts one degraded answer (a fallback taken because the service was unusable). */
void deps_degraded(struct deps *d, enum dep_id id);
/* "session=up cache=down(open) queue=off ..." for /readyz; returns true when all usable. */
bool deps_describe(struct deps *d, char *buf, size_t cap);

/* True for codes that mean "the service did not answer" (they count against the breaker). */
bool deps_code_is_failure(int code);

#endif
