/* rpc_internal.h -- structures shared by the rpc_*.c files; nothing outside common/ sees them. */
#ifndef ENGBOT_RPC_INTERNAL_H
#define ENGBOT_RPC_INTERNAL_H

#include "rpc.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>

struct metric;
struct metric_family;
struct rpc_descset;

/* Completion-queue tags are pointers to these, embedded in the object they belong to. */
enum rpc_op {
    OP_NEW,        /* a registered method's call arrived */
    OP_NEW_GENERIC, /* a call to a method nobody registered */
    OP_RECV_CLOSE, /* the call is over on the wire */
    OP_WRITE,      /* a streamed message was written */
    OP_READ,       /* a message (or the half-close) was read */
    OP_STATUS,     /* the status (and maybe the last message) was sent */
    OP_SHUTDOWN,   /* grpc_server_shutdown_and_notify finished */
};

struct rpc_tag {
    enum rpc_op op;
    void *obj;
};

struct rpc_service;

struct rpc_mdesc {
    struct rpc_service *service;
    const ProtobufCMethodDescriptor *pd;
    struct rpc_method m;
    char *path; /* "/pkg.Service/Method" */
    void *handle; /* grpc_server_register_method */
    struct metric *started, *handled[17], *latency, *msg_recv, *msg_sent;
    const char *type_label;
};

struct rpc_service {
    const ProtobufCServiceDescriptor *d;
    void *svc;
    struct rpc_mdesc *methods;
    size_t n;
};

struct rpc_cq {
    struct rpc_server *s;
    grpc_completion_queue *cq;
    pthread_t thread;
    int idx;
    pthread_mutex_t mu; /* guards the live-call list */
    struct rpc_call *live;
};

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct wq_item {
    struct wq_item *next;
    grpc_byte_buffer *bb;
};

struct rpc_call {
    _Atomic int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* send_wait: queue drained / call over */
    struct rpc_server *s;
    struct rpc_cq *cq;
    struct rpc_mdesc *md; /* NULL for generic (unknown method) calls */
    struct rpc_call *live_prev, *live_next;
    bool on_live_list;

    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array req_md;
    grpc_call_details details; /* generic calls only */
    grpc_byte_buffer *payload;

    struct rpc_tag t_new, t_close, t_write, t_read, t_status;

    bool detached; /* a test call: no wire under it (rpc_test_call_new) */
    bool on_worker; /* the handler runs on the worker pool */
    rpc_unary_fn *offload_fn;
    int sent;      /* test calls: messages sent */
    const uint8_t *test_req; /* test calls: the request bytes (in the arena) */
    size_t test_req_len;
    int cancelled; /* set by RECV_CLOSE */
    bool close_started, closed, finish_called, status_started, initial_md_sent, dead;
    bool finish_has_close; /* RECV_CLOSE rode in the status batch */
    int code;
    char *status_msg;
    grpc_metadata *trailers;
    size_t ntrailers;
    grpc_metadata *init_md;
    size_t ninit_md;

    grpc_byte_buffer *writing;
    struct wq_item *wq_head, *wq_tail;
    int wq_len;

    grpc_byte_buffer *recv_bb;
    grpc_byte_buffer *resp_bb; /* unary response being sent */

    const ProtobufCMessage *req;
    ProtobufCMessage *resp;
    void *state;
    void (*state_free)(void *);
    char *peer;
    int64_t t0_us;

    struct arena_chunk *arena;
    _Alignas(16) unsigned char arena0[768]; /* first arena chunk, header included */
};

struct health_entry {
    struct health_entry *next;
    char *name;
    int status; /* grpc.health.v1 ServingStatus: 1 SERVING, 2 NOT_SERVING */
};

struct health_watcher {
    struct health_watcher *next;
    struct rpc_call *call;
    char *name;
    int last_sent;
};

struct worker_job {
    struct worker_job *next;
    void (*fn)(struct rpc_call *c);
    struct rpc_call *c;
};

struct drain_cb {
    struct drain_cb *next;
    void (*fn)(void *);
    void *arg;
};

struct rpc_server {
    struct rpc_server_opts o;
    grpc_server *srv;
    struct rpc_cq *cqs;
    int ncq;
    int port;

    struct rpc_service **services;
    size_t nservices;
    struct rpc_service *health_svc, *refl_v1, *refl_v1alpha;

    _Atomic bool ready, draining, started;

    /* worker pool */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    struct worker_job *wq_head, *wq_tail;
    pthread_t *workers;
    int nworkers;
    bool wstop;

    /* health */
    pthread_mutex_t hmu;
    struct health_entry *health;
    struct health_watcher *watchers;

    /* drain */
    struct drain_cb *drain_cbs;
    struct rpc_tag t_shutdown;
    pthread_mutex_t smu;
    pthread_cond_t scv;
    bool shutdown_done;

    struct metric *unknown_handled;
};

/* rpc_call.c */
struct rpc_call *call_new(struct rpc_server *s, struct rpc_cq *cq, struct rpc_mdesc *md);
void call_start_recv_close(struct rpc_call *c);
void call_start_read(struct rpc_call *c);
void call_on_event(struct rpc_tag *t, bool ok);
void call_live_add(struct rpc_call *c);
grpc_byte_buffer *call_pack(const ProtobufCMessage *m);
ProtobufCMessage *call_unpack(struct rpc_call *c, const ProtobufCMessageDescriptor *d,
                              grpc_byte_buffer *bb);

/* rpc_server.c */
void server_post_request(struct rpc_server *s, struct rpc_cq *cq, struct rpc_mdesc *md);
void server_post_generic(struct rpc_server *s, struct rpc_cq *cq);
void server_dispatch(struct rpc_call *c, bool ok);
void server_submit(struct rpc_server *s, void (*fn)(struct rpc_call *c), struct rpc_call *c);
const char *rpc_code_label(int code);

/* rpc_health.c */
void health_register(struct rpc_server *s);
void health_set(struct rpc_server *s, const char *name, bool serving);
void health_set_all(struct rpc_server *s, bool serving);
void health_end_watchers(struct rpc_server *s);

/* rpc_reflection.c */
void reflection_register(struct rpc_server *s);

/* rpc_descset.c: the embedded FileDescriptorSet, indexed. */
const struct rpc_descset *descset_get(void);
int descset_find_symbol(const char *name); /* file index or -1 */
int descset_find_file(const char *name);
/* The file and its transitive imports, file first: up to cap (raw, len) pairs; returns count. */
size_t descset_closure(int file, const uint8_t **raw, size_t *len, size_t cap);
size_t descset_nfiles(void);
bool descset_message_exists(const char *name);
/* Streaming flags of "/pkg.Svc/Method"; false when unknown. */
bool descset_method_kind(const char *service, const char *method, bool *client_streaming,
                         bool *server_streaming);

#endif
