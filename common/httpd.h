/* httpd.h -- a small HTTP/1.1 server (libmicrohttpd underneath) for /metrics, /healthz,
 * /readyz, the gateway's webhook and the Bot API emulator.
 *
 * One thread per connection: handlers may block (a long poll, a webhook waiting for its update
 * to be handed on). Request bodies are capped (max_body); a larger body gets 413 before the
 * handler runs. Routes match the path exactly, or by prefix when the route ends in '*'. */
#ifndef ENGBOT_HTTPD_H
#define ENGBOT_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

struct httpd;

/* A request, borrowed: valid only until the handler returns. */
struct httpd_req {
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated (body_len bytes before the NUL) */
    size_t body_len;
    void *conn_; /* private */
};

/* The response the handler fills. body is malloc'd and owned by httpd after return. */
struct httpd_resp {
    int status;               /* default 200 */
    const char *content_type; /* static string; default text/plain */
    char *body;
    size_t body_len;
    char *headers[8]; /* extra "Name: value" lines, malloc'd, owned by httpd after return */
    int nheaders;
    bool close; /* drop the connection without a response (fault injection) */
};

typedef void httpd_handler(void *ud, const struct httpd_req *req, struct httpd_resp *resp);

struct httpd *httpd_new(size_t max_body, unsigned max_connections);
void httpd_route(struct httpd *h, const char *path, httpd_handler *fn, void *ud);
/* Binds HOST:PORT and starts serving. On success returns 0 and the bound port in *port. */
int httpd_start(struct httpd *h, const char *listen_addr, int *port, char *err, size_t errlen);
/* Stops accepting, waits for handlers to return, frees everything. */
void httpd_stop(struct httpd *h);

const char *httpd_header(const struct httpd_req *r, const char *name);
const char *httpd_query(const struct httpd_req *r, const char *name);
const char *httpd_peer(const struct httpd_req *r, char *buf, size_t cap);

/* Helpers for handlers. */
void httpd_set_body(struct httpd_resp *r, const char *content_type, const char *text);
void httpd_printf(struct httpd_resp *r, const char *content_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void httpd_add_header(struct httpd_resp *r, const char *name, const char *value);

#endif
