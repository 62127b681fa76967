/* rpc.h -- engbot's gRPC layer over the gRPC C core (the only code that includes
 * <grpc/grpc.h>): a server that dispatches methods from protoc-c service descriptors, with
 * grpc.health.v1 and server reflection (v1 and v1alpha) built in, standard gRPC server
 * metrics, and a graceful drain; and a client for unary and server-streaming calls.
 *
 * Threads: the server runs `cq_threads` completion-queue threads (one queue each) and a worker
 * pool of `worker_threads`. Handlers run on a completion-queue thread unless their method has
 * RPC_F_BLOCKING, in which case they run on the worker pool: anything that touches the disk
 * or waits must be blocking or finish asynchronously (return RPC_PENDING).
 *
 * Lifetimes: a `struct rpc_call` lives until the call is over on the wire and every reference
 * is dropped. The request message passed to a handler is borrowed for the handler's duration
 * (for unary calls that return RPC_PENDING: until the call is finished). Memory that a response
 * points to must outlive the reply: take it from rpc_call_alloc()/rpc_call_strdup(), which is
 * freed with the call. See docs/rpc-layer.md. */
#ifndef ENGBOT_RPC_H
#define ENGBOT_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* gRPC status codes (same numbers as grpc_status_code). */
enum rpc_code {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
};
/* A handler's "I kept the call and will finish it later" answer. */
#define RPC_PENDING (-1)

const char *rpc_code_name(int code); /* "NOT_FOUND" */

struct rpc_server;
struct rpc_call;

enum rpc_kind { RPC_KIND_UNARY, RPC_KIND_SERVER_STREAM, RPC_KIND_CLIENT_STREAM, RPC_KIND_BIDI };

enum {
    RPC_F_BLOCKING = 1u << 0, /* run on the worker pool, not a completion-queue thread */
    RPC_F_ALWAYS = 1u << 1,   /* callable before the server is marked ready (health, ops) */
};

/* Unary: fill resp (already initialised, allocated with the call) and return a status code,
 * or RPC_PENDING and later call rpc_call_finish() from any thread. */
typedef int rpc_unary_fn(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                         void *svc);
/* Server streaming: rpc_call_send() any number of messages, then return a status code, or
 * return RPC_PENDING and later rpc_call_finish(). */
typedef int rpc_sstream_fn(struct rpc_call *c, const ProtobufCMessage *req, void *svc);

/* Client streaming and bidi: callbacks run one at a time per call, in order. on_message and
 * on_half_close return RPC_PENDING to go on, or a status code to end the call (after the
 * messages already sent). The message is borrowed for the callback. */
struct rpc_stream_ops {
    int (*on_message)(struct rpc_call *c, const ProtobufCMessage *msg, void *svc);
    int (*on_half_close)(struct rpc_call *c, void *svc);
};

struct rpc_method {
    const char *name; /* as in the .proto, e.g. "GetSession"; checked against the descriptor */
    enum rpc_kind kind;
    unsigned flags;
    rpc_unary_fn *unary;
    rpc_sstream_fn *sstream;
    const struct rpc_stream_ops *stream;
    /* Optional: the call ended on the wire (finished, cancelled or deadline). Runs on a
     * completion-queue thread; must not block. Watchers drop their references here. */
    void (*on_close)(struct rpc_call *c, bool cancelled, void *svc);
};

#define RPC_UNARY(n, fn, fl)   {.name = (n), .kind = RPC_KIND_UNARY, .flags = (fl), .unary = (fn)}
#define RPC_SSTREAM(n, fn, fl) {.name = (n), .kind = RPC_KIND_SERVER_STREAM, .flags = (fl), .sstream = (fn)}

/* ---- server ------------------------------------------------------------------------------- */
struct rpc_server_opts {
    const char *listen;          /* HOST:PORT; port 0 picks a free one */
    int cq_threads;              /* completion queues, one thread each (default 2) */
    int worker_threads;          /* pool for RPC_F_BLOCKING handlers (default 4) */
    int64_t max_recv_msg;        /* bytes; larger requests get RESOURCE_EXHAUSTED */
    int64_t max_send_msg;        /* bytes */
    int64_t keepalive_time_ms;   /* server pings idle connections this often */
    int64_t keepalive_timeout_ms;
    int64_t min_ping_interval_ms; /* clients may ping this often without being told to calm */
    int64_t max_conn_age_ms;     /* GOAWAY after this (clients re-resolve and re-balance); 0 = off */
    int64_t max_conn_age_grace_ms;
    int64_t max_conn_idle_ms;    /* 0 = off */
    int64_t max_concurrent_streams; /* per connection; 0 = core default */
    int64_t drain_grace_ms;      /* calls in flight get this long at drain */
};

/* Creates a server (calls grpc_init). Not listening until rpc_server_start. */
struct rpc_server *rpc_server_new(const struct rpc_server_opts *o);
/* Registers a service from its protoc-c descriptor. Methods not listed answer UNIMPLEMENTED.
 * svc is passed to every handler. Aborts on a mismatch with the descriptor (a programming
 * error). Health gets an entry for the service name, NOT_SERVING until rpc_server_set_ready. */
void rpc_server_add_service(struct rpc_server *s, const ProtobufCServiceDescriptor *d,
                            const struct rpc_method *methods, size_t n, void *svc);
/* Binds and starts serving (health, reflection and RPC_F_ALWAYS methods answer at once; the
 * rest answer UNAVAILABLE until rpc_server_set_ready). Returns the bound port, or -1 with err. */
int rpc_server_start(struct rpc_server *s, char *err, size_t errlen);
/* Marks the server ready: every service's health goes SERVING and all methods are served. */
void rpc_server_set_ready(struct rpc_server *s, bool ready);
bool rpc_server_ready(struct rpc_server *s);
/* Sets one health entry (a service name, or "" for the overall status). */
void rpc_server_set_health(struct rpc_server *s, const char *service, bool serving);
/* Registers a callback run at the start of a drain (after health goes NOT_SERVING), so the
 * service can finish calls it holds (long polls). Runs on the draining thread. */
void rpc_server_on_drain(struct rpc_server *s, void (*fn)(void *arg), void *arg);
/* Drains: health NOT_SERVING, stop accepting, let calls in flight finish within the grace
 * period, cancel the rest, end watch streams, stop the threads. Safe to call once. */
void rpc_server_drain(struct rpc_server *s);
/* Frees a drained (or never started) server; calls grpc_shutdown. */
void rpc_server_free(struct rpc_server *s);
int rpc_server_port(const struct rpc_server *s);
bool rpc_server_draining(struct rpc_server *s);

/* ---- calls (server side) ------------------------------------------------------------------- */
/* Milliseconds left before the client's deadline (INT64_MAX when it set none). */
int64_t rpc_call_remaining_ms(const struct rpc_call *c);
bool rpc_call_cancelled(const struct rpc_call *c);
/* The client's address, e.g. "ipv4:127.0.0.1:53412". */
const char *rpc_call_peer(struct rpc_call *c);
/* A request metadata value (first match), NUL-terminated copy valid for the call, or NULL. */
const char *rpc_call_metadata(struct rpc_call *c, const char *key);
const char *rpc_call_method(const struct rpc_call *c); /* "/pkg.Service/Method" */

/* Sets the final status message and returns code, for `return rpc_call_errorf(...)`. */
int rpc_call_errorf(struct rpc_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a trailing metadata entry (key lowercase, legal per gRPC) sent with the status. */
void rpc_call_add_trailer(struct rpc_call *c, const char *key, const char *value);
/* The same with a length, for binary values (keys ending in "-bin"). */
void rpc_call_add_trailer_bin(struct rpc_call *c, const char *key, const void *value, size_t len);
/* Adds an initial metadata entry; only before the first message or status is sent. */
void rpc_call_add_initial_md(struct rpc_call *c, const char *key, const void *value, size_t len);
/* A request metadata value with its length (binary "-bin" values may hold NULs), or NULL. The
 * bytes are the call's: valid until the call is freed. */
const void *rpc_call_metadata_bin(struct rpc_call *c, const char *key, size_t *len);

/* The request message of a unary or server-streaming call as it came on the wire (copied into
 * the call's memory: valid until the call is freed), for checks protobuf-c makes impossible
 * on the unpacked message -- a string field holding a NUL byte is cut at the NUL when
 * unpacked. NULL with *len 0 when the request was empty. */
const uint8_t *rpc_call_request_bytes(struct rpc_call *c, size_t *len);

/* Memory freed with the call (for response fields). Never NULL (aborts on OOM). */
void *rpc_call_alloc(struct rpc_call *c, size_t n);
char *rpc_call_strdup(struct rpc_call *c, const char *s);

/* From a unary handler running on a completion-queue thread: hands the call to the worker
 * pool, where fn (usually the same handler) runs with the same request and a fresh response,
 * and its return code answers the call. Returns RPC_PENDING, for the handler to return. Lets a
 * handler answer from memory at once and go to the worker pool only when it must touch the
 * disk. */
int rpc_call_offload(struct rpc_call *c, rpc_unary_fn *fn);
/* True when the handler runs on the worker pool (RPC_F_BLOCKING, or after rpc_call_offload). */
bool rpc_call_offloaded(const struct rpc_call *c);

/* Per-call state for streaming handlers; free_fn runs when the call object is freed. */
void rpc_call_set_state(struct rpc_call *c, void *state, void (*free_fn)(void *));
void *rpc_call_state(const struct rpc_call *c);

/* Sends one message on a streaming call (packed at once; the message stays the caller's).
 * Thread-safe. Returns 0, or -1 when the call is already over (cancelled). */
int rpc_call_send(struct rpc_call *c, const ProtobufCMessage *m);
/* Like rpc_call_send but first waits while more than max_queued messages are waiting to be
 * written (flow control for big streams). Only from a worker thread (RPC_F_BLOCKING). */
int rpc_call_send_wait(struct rpc_call *c, const ProtobufCMessage *m, int max_queued);
/* Finishes a call (after its queued messages) with code and the message set by errorf. For a
 * pending unary call with RPC_OK, sends the response struct the handler received. Thread-safe;
 * once per call. */
void rpc_call_finish(struct rpc_call *c, int code);
void rpc_call_ref(struct rpc_call *c);
void rpc_call_unref(struct rpc_call *c);

/* ---- test calls ---------------------------------------------------------------------------
 * Handlers run against a call with no wire under it, for unit tests and fuzz targets of RPC
 * handlers: responses and streamed messages are serialised (a handler that builds an
 * unserialisable message aborts) and dropped; the final code and message are kept. */
struct rpc_call *rpc_test_call_new(void);
/* Waits until the call is finished; returns its code (-1 on timeout) and copies its message. */
int rpc_test_call_wait(struct rpc_call *c, int64_t timeout_ms, char *msg, size_t cap);
int rpc_test_call_sent(struct rpc_call *c);
/* Decodes req as the input of method `name` of a method table and runs its handler (unary or
 * server streaming) on a test call, waiting up to timeout_ms for a pending one. Returns the
 * status code, or -2 when the bytes do not decode (the layer would answer INVALID_ARGUMENT
 * before any handler ran) or the method is not in the table. */
int rpc_test_invoke(const ProtobufCServiceDescriptor *d, const struct rpc_method *methods,
                    size_t n, void *svc, const char *name, const uint8_t *req, size_t len,
                    int64_t timeout_ms, char *msg, size_t cap);

/* ---- client ------------------------------------------------------------------------------- */
struct rpc_channel;

struct rpc_client_opts {
    int64_t keepalive_time_ms;    /* 0 = off */
    int64_t keepalive_timeout_ms;
    int64_t max_recv_msg;         /* 0 = core default (4 MiB) */
    bool round_robin;             /* balance across every resolved address (dns:///name:port) */
    int64_t connect_backoff_max_ms; /* cap of the reconnect backoff (0 = core default 120 s) */
};

#define RPC_MAX_TRAILERS 4

/* The outcome of a client call: the gRPC status, its message and the first trailing metadata
 * entries (values truncated to fit; binary "-bin" values are copied as received). */
struct rpc_status {
    int code;
    char message[256];
    int ntrailers;
    struct {
        char key[48];
        char value[160];
        size_t value_len;
    } trailers[RPC_MAX_TRAILERS];
};

/* The value of trailer key in st, or NULL. */
const char *rpc_status_trailer(const struct rpc_status *st, const char *key);

/* Opens a channel to "host:port", "dns:///name:port" or "ipv4:a:p,b:p". Cheap to share
 * across threads; calls grpc_init. */
struct rpc_channel *rpc_channel_new(const char *target, const struct rpc_client_opts *o);
void rpc_channel_free(struct rpc_channel *ch);
const char *rpc_channel_target(const struct rpc_channel *ch);
/* True when the channel is connected or connecting without a failure; kicks off a connect. */
bool rpc_channel_ready(struct rpc_channel *ch);

enum {
    RPC_CALL_WAIT_FOR_READY = 1u << 0, /* queue the call while the channel connects */
};

struct rpc_md {
    const char *key, *value;
};

/* A unary call. resp_desc is the response type; on RPC_OK *resp is a message unpacked with
 * malloc (free with protobuf_c_message_free_unpacked(*resp, NULL)). Returns st->code. md: extra
 * request metadata (nmd entries, may be 0). */
int rpc_unary(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
              int64_t timeout_ms, unsigned flags, const struct rpc_md *md, size_t nmd,
              struct rpc_status *st);

/* A server-streaming call, read message by message on the calling thread. */
struct rpc_reader;
struct rpc_reader *rpc_reader_open(struct rpc_channel *ch, const char *method,
                                   const ProtobufCMessage *req, int64_t timeout_ms,
                                   unsigned flags, struct rpc_status *st);
/* 1 = a message in *msg (free with protobuf_c_message_free_unpacked), 0 = the stream ended
 * (st holds the final status), -1 = error (st says what). */
int rpc_reader_next(struct rpc_reader *r, const ProtobufCMessageDescriptor *d,
                    ProtobufCMessage **msg, struct rpc_status *st);
/* Cancels the call if it is still open, and frees r. */
void rpc_reader_close(struct rpc_reader *r);

#endif
