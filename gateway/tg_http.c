/* tg_http.c -- libcurl easy handles, one per thread, for the Bot API.
 *
 * DESIGN: a pthread key holds each thread's CURL handle (created on first use, cleaned up when
 * the thread exits): a handle keeps its connection (and TLS session) alive between calls, so a
 * sender thread or the poller talks over one warm connection; no locking is needed because a
 * handle is never shared. Every transfer reads an abort flag through the progress callback so
 * a long poll stops at once when the gateway drains. */
#include "tg_http.h"
#include "log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tg_http {
    char *base; /* "<api>/bot<token>/" -- secret: never logged */
    char *host; /* "<api>" for logs */
    char *token;
    int64_t connect_timeout_ms, timeout_ms;
    size_t max_response;
    const atomic_bool *abort;
    pthread_key_t key;
    char ua[96];
};

extern const char engbot_version[];

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

struct tg_http *tg_http_new(const struct tg_http_opts *o)
{
    pthread_once(&g_once, global_init);
    struct tg_http *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    size_t n = strlen(o->api_url);
    while (n && o->api_url[n - 1] == '/')
        n--;
    t->host = strndup(o->api_url, n);
    t->token = strdup(o->token);
    if (asprintf(&t->base, "%s/bot%s/", t->host, o->token) < 0 || !t->host || !t->token)
        abort();
    t->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    t->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
    t->max_response = o->max_response ? o->max_response : (8u << 20);
    t->abort = o->abort;
    snprintf(t->ua, sizeof t->ua, "engbot-gateway/%s", engbot_version);
    pthread_key_create(&t->key, handle_free);
    return t;
}

void tg_http_free(struct tg_http *t)
{
    if (!t)
        return;
    CURL *h = pthread_getspecific(t->key);
    if (h) {
        curl_easy_cleanup(h);
        pthread_setspecific(t->key, NULL);
    }
    pthread_key_delete(t->key); /* handles of other threads went with their threads */
    memset(t->base, 0, strlen(t->base));
    memset(t->token, 0, strlen(t->token));
    free(t->base);
    free(t->host);
    free(t->token);
    free(t);
}

const char *tg_http_host(const struct tg_http *t)
{
    return t->host;
}

void tg_http_scrub(const struct tg_http *t, char *s, size_t cap)
{
    size_t tl = strlen(t->token);
    char *p;
    if (!tl)
        return;
    while ((p = strstr(s, t->token))) {
        static const char red[] = "[REDACTED]";
        if (tl >= sizeof red - 1) {
            memcpy(p, red, sizeof red - 1);
            memmove(p + sizeof red - 1, p + tl, strlen(p + tl) + 1);
        } else {
            memset(p, '*', tl);
        }
    }
    (void)cap;
}

void tg_resp_free(struct tg_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

struct sink {
    struct tg_resp *r;
    size_t cap, max;
    bool too_big;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    if (s->r->len + n > s->max) {
        s->too_big = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (s->r->len + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap : 4096;
        while (nc < s->r->len + n + 1)
            nc *= 2;
        char *b = realloc(s->r->body, nc);
        if (!b)
            abort();
        s->r->body = b;
        s->cap = nc;
    }
    memcpy(s->r->body + s->r->len, data, n);
    s->r->len += n;
    s->r->body[s->r->len] = '\0';
    return n;
}

static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    const struct tg_http *t = ud;
    return t->abort && atomic_load(t->abort) ? 1 : 0;
}

static CURL *thread_handle(struct tg_http *t)
{
    CURL *h = pthread_getspecific(t->key);
    if (!h) {
        h = curl_easy_init();
        if (!h)
            abort();
        pthread_setspecific(t->key, h);
    } else {
        curl_easy_reset(h); /* keeps the connection cache, clears the options */
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, t->ua);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)t->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    return h;
}

static int perform(struct tg_http *t, CURL *h, const char *method, struct tg_resp *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct sink s = {.r = r, .max = t->max_response};
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    double secs = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &secs);
    r->seconds = secs;
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (rc == CURLE_OK) {
        r->http_status = (int)status;
        if (!r->body) {
            r->body = strdup("");
            if (!r->body)
                abort();
        }
        return 0;
    }
    tg_resp_free(r);
    r->http_status = 0;
    if (s.too_big)
        snprintf(r->err, sizeof r->err, "%s: response larger than %zu bytes", method,
                 t->max_response);
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        snprintf(r->err, sizeof r->err, "%s: aborted (shutting down)", method);
    else
        snprintf(r->err, sizeof r->err, "%s: %.200s", method,
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
    tg_http_scrub(t, r->err, sizeof r->err);
    return -1;
}

int tg_http_call(struct tg_http *t, const char *method, const char *json, int64_t timeout_ms,
                 struct tg_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *h = thread_handle(t);
    char url[2048];
    if ((size_t)snprintf(url, sizeof url, "%s%s", t->base, method) >= sizeof url) {
        snprintf(r->err, sizeof r->err, "%s: URL too long", method);
        return -1;
    }
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : t->timeout_ms));
    int rc = perform(t, h, method, r);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    memset(url, 0, sizeof url);
    return rc;
}

struct upload_state {
    tg_read_fn *read;
    void *ud;
    bool failed;
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct upload_state *u = ud;
    ssize_t n = u->read(u->ud, buf, size * nitems);
    if (n < 0) {
        u->failed = true;
        return CURL_READFUNC_ABORT;
    }
    return (size_t)n;
}

int tg_http_upload(struct tg_http *t, const struct tg_upload *u, struct tg_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *h = thread_handle(t);
    char url[2048];
    if ((size_t)snprintf(url, sizeof url, "%s%s", t->base, u->method) >= sizeof url) {
        snprintf(r->err, sizeof r->err, "%s: URL too long", u->method);
        return -1;
    }
    struct upload_state st = {.read = u->read, .ud = u->ud};
    curl_mime *mime = curl_mime_init(h);
    for (int i = 0; i < u->nfields; i++) {
        curl_mimepart *p = curl_mime_addpart(mime);
        curl_mime_name(p, u->fields[i][0]);
        curl_mime_data(p, u->fields[i][1], CURL_ZERO_TERMINATED);
    }
    curl_mimepart *fp = curl_mime_addpart(mime);
    curl_mime_name(fp, u->field);
    curl_mime_filename(fp, u->file_name);
    if (u->content_type && *u->content_type)
        curl_mime_type(fp, u->content_type);
    curl_mime_data_cb(fp, (curl_off_t)u->file_size, on_read, NULL, NULL, &st);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
    int rc = perform(t, h, u->method, r);
    if (rc < 0 && st.failed)
        snprintf(r->err, sizeof r->err, "%s: reading the file failed", u->method);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, NULL);
    curl_mime_free(mime);
    memset(url, 0, sizeof url);
    return rc;
}
