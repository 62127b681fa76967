/* tg_http.h -- HTTP to the Bot API (the only code that includes curl): JSON calls and
 * multipart uploads streamed from a read callback, with connection reuse (one curl handle per
 * calling thread, kept for the thread's life), timeouts, HTTP/2 over TLS where the server
 * offers it, and a cap on every response body.
 *
 * Security: the URL carries the bot token (/bot<token>/<method>), so no URL ever leaves this
 * file: errors name the method and the API host only, and libcurl's own error text is passed
 * through a token scrubber before anyone sees it. Verbose output is never enabled. */
#ifndef ENGBOT_GW_TG_HTTP_H
#define ENGBOT_GW_TG_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tg_http_opts {
    const char *api_url;        /* "https://api.telegram.org" (no trailing slash needed) */
    const char *token;          /* borrowed for the client's life */
    int64_t connect_timeout_ms; /* TCP+TLS connect */
    int64_t timeout_ms;         /* a whole call, unless the call gives its own */
    size_t max_response;        /* larger bodies are an error, never a realloc loop */
    const atomic_bool *abort;   /* optional: when it becomes true, transfers stop (drain) */
};

struct tg_http;
struct tg_http *tg_http_new(const struct tg_http_opts *o);
void tg_http_free(struct tg_http *t);

/* A response. body is malloc'd and NUL-terminated (owned by the caller: tg_resp_free). */
struct tg_resp {
    int http_status; /* 0 when no HTTP response arrived */
    char *body;
    size_t len;
    char err[256]; /* why no response arrived (token-free) */
    double seconds;
};
void tg_resp_free(struct tg_resp *r);

/* POSTs a JSON body to <api>/bot<token>/<method>. timeout_ms 0 = the client's default.
 * Returns 0 when an HTTP response arrived (whatever its status), -1 on a network error,
 * timeout, oversized body or abort (r->err says which). Thread-safe: each thread uses its own
 * handle. */
int tg_http_call(struct tg_http *t, const char *method, const char *json, int64_t timeout_ms,
                 struct tg_resp *r);

/* Reads up to cap bytes of the file being uploaded into buf. Returns the count, 0 at the end,
 * or -1 on error (the upload is aborted). */
typedef ssize_t tg_read_fn(void *ud, char *buf, size_t cap);

struct tg_upload {
    const char *method;       /* "sendDocument" */
    const char *field;        /* "document" */
    const char *file_name;    /* sent as the part's filename (escaped by curl) */
    const char *content_type; /* may be NULL */
    uint64_t file_size;       /* exact: the part has this length */
    const char *fields[6][2]; /* other form fields (name, value): chat_id, caption, ... */
    int nfields;
    tg_read_fn *read;
    void *ud;
};
/* A multipart/form-data upload whose file part is pulled from u->read as curl sends it: the
 * file is never held whole in memory nor copied to disk. No total timeout: a transfer slower
 * than 1 KiB/s for 30 s is aborted instead. Same return contract as tg_http_call. */
int tg_http_upload(struct tg_http *t, const struct tg_upload *u, struct tg_resp *r);

/* Replaces every occurrence of the token in s (in place) with "[REDACTED]" when it fits,
 * else with asterisks. Used on any text that could contain a URL. */
void tg_http_scrub(const struct tg_http *t, char *s, size_t cap);

/* The API host (scheme://host[:port]) for logs: never includes the path or token. */
const char *tg_http_host(const struct tg_http *t);

#endif
