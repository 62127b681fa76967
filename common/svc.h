/* svc.h -- what every engbot server program shares: the common settings (listen addresses,
 * gRPC transport limits, drain grace, logging), start-up, the HTTP port with /metrics,
 * /healthz and /readyz, the wait for SIGTERM/SIGINT and the drain.
 *
 * A service's main.c: conf_load({svc_common_opts(..), own table}), svc_init, svc_new, register
 * its services on svc_rpc(), svc_start, load state, svc_set_ready, svc_wait, svc_drain, save
 * state, svc_free. */
#ifndef ENGBOT_SVC_H
#define ENGBOT_SVC_H

#include "conf.h"
#include "rpc.h"

struct svc_common {
    char *grpc_listen, *http_listen, *log_level, *log_format;
    int64_t drain_grace, cq_threads, worker_threads;
    int64_t max_recv_msg, max_send_msg;
    int64_t keepalive_time, keepalive_timeout, min_ping_interval;
    int64_t max_conn_age, max_conn_age_grace, max_conn_idle, max_concurrent_streams;
};

/* The common settings table, bound to c, with this program's default ports. */
const struct conf_opt *svc_common_opts(struct svc_common *c, const char *grpc_default,
                                       const char *http_default);
/* Blocks SIGTERM/SIGINT in every thread (call before creating any), ignores SIGPIPE, sets up
 * logging from the settings. */
void svc_init(const char *prog, const struct svc_common *c);
/* The rpc_server_opts these settings describe. */
struct rpc_server_opts svc_rpc_opts(const struct svc_common *c);

struct svc;
struct httpd;
struct svc *svc_new(const char *prog, const struct svc_common *c);
struct rpc_server *svc_rpc(struct svc *s);
/* The HTTP server, to add routes before svc_start. */
struct httpd *svc_http(struct svc *s);
/* Binds and starts gRPC and HTTP; logs the addresses. On failure logs why and exits 1. */
void svc_start(struct svc *s);
/* Ready: health SERVING, /readyz 200. Not ready: reason shows in /readyz. */
void svc_set_ready(struct svc *s, bool ready, const char *reason);
/* Adds a readiness condition, checked every 500 ms on a thread of svc's once the program said
 * it is ready: while ok() returns false (filling why), health is NOT_SERVING, /readyz is 503
 * with the reason, the layer answers UNAVAILABLE, and the change is logged. For conditions
 * such as "the data directory cannot be written". Add before svc_start. */
void svc_add_check(struct svc *s, bool (*ok)(void *arg, char *why, size_t cap), void *arg);
/* Blocks until SIGTERM or SIGINT; returns the signal. */
int svc_wait(struct svc *s);
void svc_drain(struct svc *s);
void svc_free(struct svc *s);
int svc_grpc_port(const struct svc *s);
int svc_http_port(const struct svc *s);
/* Seconds since svc_new. */
uint64_t svc_uptime_s(const struct svc *s);

#endif
