/* httpd.c -- libmicrohttpd wrapper: exact/prefix routes, capped bodies, blocking handlers.
 * Why libmicrohttpd: a maintained, fuzzed HTTP/1.1 parser (chunked bodies, keep-alive,
 * pipelining) beats a hand-written one for the webhook that faces the internet. */
#include "httpd.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf.h"

#define MAX_ROUTES 32

struct route {
    char *path;
    bool prefix;
    httpd_handler *fn;
    void *ud;
};

struct httpd {
    struct MHD_Daemon *d;
    size_t max_body;
    unsigned max_conn;
    struct route routes[MAX_ROUTES];
    int nroutes;
};

/* Per-request accumulation state (the body arrives in pieces). */
struct reqstate {
    char *body;
    size_t len, cap;
    bool too_big;
};

struct httpd *httpd_new(size_t max_body, unsigned max_connections)
{
    struct httpd *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    h->max_body = max_body;
    h->max_conn = max_connections ? max_connections : 256;
    return h;
}

void httpd_route(struct httpd *h, const char *path, httpd_handler *fn, void *ud)
{
    if (h->nroutes == MAX_ROUTES)
        abort();
    struct route *r = &h->routes[h->nroutes++];
    size_t n = strlen(path);
    r->prefix = n > 0 && path[n - 1] == '*';
    r->path = strndup(path, r->prefix ? n - 1 : n);
    r->fn = fn;
    r->ud = ud;
}

static const struct route *match(const struct httpd *h, const char *path)
{
    for (int i = 0; i < h->nroutes; i++) {
        const struct route *r = &h->routes[i];
        if (r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 : strcmp(path, r->path) == 0)
            return r;
    }
    return NULL;
}

static enum MHD_Result send_simple(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct httpd *h = cls;
    struct reqstate *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!st->too_big) {
            if (st->len + *upload_size > h->max_body) {
                st->too_big = true;
            } else {
                if (st->len + *upload_size + 1 > st->cap) {
                    size_t nc = st->cap ? st->cap : 4096;
                    while (nc < st->len + *upload_size + 1)
                        nc *= 2;
                    char *b = realloc(st->body, nc);
                    if (!b)
                        return MHD_NO;
                    st->body = b;
                    st->cap = nc;
                }
                memcpy(st->body + st->len, upload, *upload_size);
                st->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (st->too_big)
        return send_simple(conn, 413, "request body too large\n");

    const struct route *rt = match(h, url);
    if (!rt)
        return send_simple(conn, 404, "not found\n");
    struct httpd_req req = {
        .method = method,
        .path = url,
        .body = st->body ? st->body : "",
        .body_len = st->len,
        .conn_ = conn,
    };
    if (st->body)
        st->body[st->len] = '\0';
    struct httpd_resp resp = {.status = 200};
    rt->fn(rt->ud, &req, &resp);
    if (resp.close) {
        free(resp.body);
        for (int i = 0; i < resp.nheaders; i++)
            free(resp.headers[i]);
        return MHD_NO; /* libmicrohttpd closes the connection */
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        resp.body_len, resp.body ? resp.body : (void *)"", resp.body ? MHD_RESPMEM_MUST_FREE
                                                                     : MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type",
                            resp.content_type ? resp.content_type : "text/plain; charset=utf-8");
    for (int i = 0; i < resp.nheaders; i++) {
        char *colon = strchr(resp.headers[i], ':');
        if (colon) {
            *colon = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            MHD_add_response_header(r, resp.headers[i], v);
        }
        free(resp.headers[i]);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)resp.status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct reqstate *st = *con_cls;
    if (st) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    LOG_DEBUG("http server", LF_STR("detail", buf));
}

int httpd_start(struct httpd *h, const char *listen_addr, int *port, char *err, size_t errlen)
{
    char host[256], why[128];
    int p;
    if (!conf_parse_addr(listen_addr, host, sizeof host, &p, why, sizeof why)) {
        snprintf(err, errlen, "bad address '%s': %s", listen_addr, why);
        return -1;
    }
    /* Strip [..] around IPv6 literals. */
    char *hp = host;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        hp = host + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char pbuf[8];
    snprintf(pbuf, sizeof pbuf, "%d", p);
    int gai = getaddrinfo(*hp ? hp : NULL, pbuf, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "cannot resolve '%s': %s", listen_addr, gai_strerror(gai));
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT,
        h->max_conn, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not permitted)",
                 listen_addr);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : p;
    return 0;
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    for (int i = 0; i < h->nroutes; i++)
        free(h->routes[i].path);
    free(h);
}

const char *httpd_header(const struct httpd_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn_, MHD_HEADER_KIND, name);
}

const char *httpd_query(const struct httpd_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn_, MHD_GET_ARGUMENT_KIND, name);
}

const char *httpd_peer(const struct httpd_req *r, char *buf, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn_, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    buf[0] = '\0';
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                      (socklen_t)cap);
    }
    return buf;
}

void httpd_set_body(struct httpd_resp *r, const char *content_type, const char *text)
{
    free(r->body);
    r->body = strdup(text);
    if (!r->body)
        abort();
    r->body_len = strlen(text);
    r->content_type = content_type;
}

void httpd_printf(struct httpd_resp *r, const char *content_type, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    free(r->body);
    r->body = s;
    r->body_len = (size_t)n;
    r->content_type = content_type;
}

void httpd_add_header(struct httpd_resp *r, const char *name, const char *value)
{
    if (r->nheaders == 8)
        return;
    if (asprintf(&r->headers[r->nheaders], "%s: %s", name, value) < 0)
        abort();
    r->nheaders++;
}
