/* svc.c -- common start-up, HTTP endpoints, signals and drain for the server programs. */
#include "svc.h"
#include "clock.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CHECKS 4

struct svc_check {
    bool (*ok)(void *arg, char *why, size_t cap);
    void *arg;
};

struct svc {
    const char *prog;
    const struct svc_common *c;
    struct rpc_server *rpc;
    struct httpd *http;
    int grpc_port, http_port;
    int64_t t0_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char reason[256];
    bool loaded;  /* the program said it is ready (svc_set_ready) */
    bool failing; /* a check is failing */
    bool stop;
    struct svc_check checks[MAX_CHECKS];
    int nchecks;
    pthread_t checker;
    bool checker_started;
};

static struct conf_opt g_common[20];
static void *checker_main(void *arg);

const struct conf_opt *svc_common_opts(struct svc_common *c, const char *grpc_default,
                                       const char *http_default)
{
    const struct conf_opt t[] = {
        {"grpc-listen", CONF_ADDR, &c->grpc_listen, grpc_default, 0, 0,
         "gRPC listen address (HOST:PORT; port 0 picks a free port and logs it)"},
        {"http-listen", CONF_ADDR, &c->http_listen, http_default, 0, 0,
         "HTTP listen address for /metrics, /healthz and /readyz"},
        {"log-level", CONF_ENUM, &c->log_level, "info", 0, 0, "minimum log level", "debug|info|warn|error"},
        {"log-format", CONF_ENUM, &c->log_format, "json", 0, 0,
         "log format: one JSON object per line, or text for humans", "json|text"},
        {"drain-grace", CONF_DURATION, &c->drain_grace, "10s", 0, 3600000,
         "at SIGTERM, how long calls in flight may take before they are cancelled"},
        {"cq-threads", CONF_INT, &c->cq_threads, "2", 1, 64,
         "gRPC completion-queue threads (handlers of fast methods run on them)"},
        {"worker-threads", CONF_INT, &c->worker_threads, "4", 1, 256,
         "worker threads for handlers that touch the disk or wait"},
        {"max-recv-msg", CONF_SIZE, &c->max_recv_msg, "4MiB", 1024, 1LL << 30,
         "largest request message accepted (larger: RESOURCE_EXHAUSTED)"},
        {"max-send-msg", CONF_SIZE, &c->max_send_msg, "16MiB", 1024, 1LL << 30,
         "largest response message sent"},
        {"keepalive-time", CONF_DURATION, &c->keepalive_time, "2h", 1000, 86400000,
         "server pings an idle connection after this long"},
        {"keepalive-timeout", CONF_DURATION, &c->keepalive_timeout, "20s", 1000, 600000,
         "a ping not answered within this closes the connection"},
        {"min-ping-interval", CONF_DURATION, &c->min_ping_interval, "10s", 1000, 3600000,
         "clients may send keepalive pings this often (must not exceed the clients' keepalive)"},
        {"max-connection-age", CONF_DURATION, &c->max_conn_age, "5m", 0, 86400000,
         "GOAWAY after a connection is this old, so clients re-resolve and re-balance (0 = off)"},
        {"max-connection-age-grace", CONF_DURATION, &c->max_conn_age_grace, "30s", 0, 3600000,
         "calls on an aged connection get this long to finish"},
        {"max-connection-idle", CONF_DURATION, &c->max_conn_idle, "0", 0, 86400000,
         "close connections idle this long (0 = never)"},
        {"max-concurrent-streams", CONF_INT, &c->max_concurrent_streams, "1000", 1, 1000000,
         "concurrent calls per connection"},
        {0},
    };
    memcpy(g_common, t, sizeof t);
    return g_common;
}

void svc_init(const char *prog, const struct svc_common *c)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    enum log_level lvl = LOG_LVL_INFO;
    log_level_parse(c->log_level, &lvl);
    log_setup(prog, lvl, strcmp(c->log_format, "text") == 0);
}

struct rpc_server_opts svc_rpc_opts(const struct svc_common *c)
{
    return (struct rpc_server_opts){
        .listen = c->grpc_listen,
        .cq_threads = (int)c->cq_threads,
        .worker_threads = (int)c->worker_threads,
        .max_recv_msg = c->max_recv_msg,
        .max_send_msg = c->max_send_msg,
        .keepalive_time_ms = c->keepalive_time,
        .keepalive_timeout_ms = c->keepalive_timeout,
        .min_ping_interval_ms = c->min_ping_interval,
        .max_conn_age_ms = c->max_conn_age,
        .max_conn_age_grace_ms = c->max_conn_age_grace,
        .max_conn_idle_ms = c->max_conn_idle,
        .max_concurrent_streams = c->max_concurrent_streams,
        .drain_grace_ms = c->drain_grace,
    };
}

static void h_metrics(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    size_t len;
    char *text = metrics_render(&len);
    resp->body = text;
    resp->body_len = len;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void h_healthz(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    httpd_set_body(resp, "text/plain", "ok\n");
}

static void h_readyz(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct svc *s = ud;
    if (rpc_server_ready(s->rpc) && !rpc_server_draining(s->rpc)) {
        httpd_set_body(resp, "text/plain", "ready\n");
        return;
    }
    pthread_mutex_lock(&s->mu);
    resp->status = 503;
    httpd_printf(resp, "text/plain", "not ready: %s\n",
                 rpc_server_draining(s->rpc) ? "shutting down" : s->reason);
    pthread_mutex_unlock(&s->mu);
}

struct svc *svc_new(const char *prog, const struct svc_common *c)
{
    struct svc *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->prog = prog;
    s->c = c;
    s->t0_ms = clock_mono_ms();
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->reason, sizeof s->reason, "starting up");
    struct rpc_server_opts o = svc_rpc_opts(c);
    s->rpc = rpc_server_new(&o);
    s->http = httpd_new(64 * 1024, 64);
    httpd_route(s->http, "/metrics", h_metrics, s);
    httpd_route(s->http, "/healthz", h_healthz, s);
    httpd_route(s->http, "/readyz", h_readyz, s);
    metric_set(metrics_child(metrics_family("engbot_build_info",
                                            "engbot version of this process (value is 1).",
                                            METRIC_GAUGE, "svc,version", NULL, 0),
                             prog, engbot_version),
               1);
    return s;
}

struct rpc_server *svc_rpc(struct svc *s)
{
    return s->rpc;
}

struct httpd *svc_http(struct svc *s)
{
    return s->http;
}

void svc_start(struct svc *s)
{
    char err[256];
    s->grpc_port = rpc_server_start(s->rpc, err, sizeof err);
    if (s->grpc_port < 0) {
        LOG_ERROR("cannot start", LF_STR("setting", "GRPC_LISTEN"), LF_STR("error", err));
        exit(1);
    }
    if (httpd_start(s->http, s->c->http_listen, &s->http_port, err, sizeof err) < 0) {
        LOG_ERROR("cannot start", LF_STR("setting", "HTTP_LISTEN"), LF_STR("error", err));
        exit(1);
    }
    if (s->nchecks) {
        pthread_create(&s->checker, NULL, checker_main, s);
        pthread_setname_np(s->checker, "svc-checks");
        s->checker_started = true;
    }
    LOG_INFO("listening", LF_STR("version", engbot_version), LF_I64("grpc_port", s->grpc_port),
             LF_I64("http_port", s->http_port), LF_STR("grpc_listen", s->c->grpc_listen),
             LF_STR("http_listen", s->c->http_listen));
}

/* Applies loaded && !failing to the server (mu held). */
static void apply_locked(struct svc *s)
{
    bool ready = s->loaded && !s->failing;
    if (ready != rpc_server_ready(s->rpc)) {
        rpc_server_set_ready(s->rpc, ready);
        if (ready)
            LOG_INFO("serving");
        else
            LOG_WARN("not serving", LF_STR("reason", s->reason));
    }
}

void svc_set_ready(struct svc *s, bool ready, const char *reason)
{
    pthread_mutex_lock(&s->mu);
    s->loaded = ready;
    if (!s->failing)
        snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "");
    apply_locked(s);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void svc_add_check(struct svc *s, bool (*ok)(void *arg, char *why, size_t cap), void *arg)
{
    if (s->nchecks == MAX_CHECKS)
        abort();
    s->checks[s->nchecks++] = (struct svc_check){ok, arg};
}

/* The checker thread: evaluates every check twice a second while loaded. */
static void *checker_main(void *arg)
{
    struct svc *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (s->loaded) {
            char why[256] = "";
            bool failing = false;
            pthread_mutex_unlock(&s->mu);
            for (int i = 0; i < s->nchecks && !failing; i++)
                failing = !s->checks[i].ok(s->checks[i].arg, why, sizeof why);
            pthread_mutex_lock(&s->mu);
            if (failing != s->failing) {
                s->failing = failing;
                if (failing) {
                    snprintf(s->reason, sizeof s->reason, "%s", why);
                    LOG_ERROR("readiness check failing", LF_STR("reason", why));
                } else {
                    s->reason[0] = '\0';
                    LOG_INFO("readiness check passing again");
                }
                apply_locked(s);
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int svc_wait(struct svc *s)
{
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigwait(&set, &sig);
    LOG_INFO("signal received: draining", LF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"),
             LF_I64("grace_ms", s->c->drain_grace));
    return sig;
}

static void stop_checker(struct svc *s)
{
    if (!s->checker_started)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->checker, NULL);
    s->checker_started = false;
}

void svc_drain(struct svc *s)
{
    stop_checker(s);
    rpc_server_drain(s->rpc);
}

void svc_free(struct svc *s)
{
    if (!s)
        return;
    stop_checker(s);
    httpd_stop(s->http);
    rpc_server_free(s->rpc);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int svc_grpc_port(const struct svc *s)
{
    return s->grpc_port;
}

int svc_http_port(const struct svc *s)
{
    return s->http_port;
}

uint64_t svc_uptime_s(const struct svc *s)
{
    return (uint64_t)((clock_mono_ms() - s->t0_ms) / 1000);
}
