/* intake_webhook.c -- the webhook endpoint: secret check in constant time, capped body (httpd
 * answers 413 past WEBHOOK_MAX_BODY before we run), dedupe, hand-off, and 200 only after the
 * update was handled. */
#include "intake.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct intake_webhook {
    struct intake_webhook_opts o;
    char *secret;
    atomic_bool open;
    struct metric *unauthorized, *accepted, *busy;
};

/* Shared between the request thread and the dispatcher: whoever finishes last frees it. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, handled;
    int refs;
    struct dedupe *dedupe;
};

static void waiter_unref(struct waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int left = --w->refs;
    pthread_mutex_unlock(&w->mu);
    if (left == 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void on_done(void *arg, const struct tg_update *u, bool handled)
{
    struct waiter *w = arg;
    dedupe_finish(w->dedupe, u->update_id, handled);
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->handled = handled;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w);
}

/* Compares in time that depends only on the expected length, never on where they differ. */
static bool secret_ok(const char *got, const char *want)
{
    size_t wl = strlen(want), gl = got ? strlen(got) : 0;
    unsigned char diff = (unsigned char)(gl != wl);
    for (size_t i = 0; i < wl; i++) {
        unsigned char g = i < gl ? (unsigned char)got[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)want[i]);
    }
    return got && diff == 0;
}

static void reply(struct httpd_resp *resp, int status, const char *text)
{
    resp->status = status;
    httpd_set_body(resp, "text/plain; charset=utf-8", text);
}

static void h_webhook(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct intake_webhook *w = ud;
    if (strcmp(req->method, "POST") != 0) {
        reply(resp, 405, "POST only\n");
        return;
    }
    if (!secret_ok(httpd_header(req, "X-Telegram-Bot-Api-Secret-Token"), w->secret)) {
        metric_inc(w->unauthorized);
        char peer[64];
        LOG_WARN("webhook request with a wrong or missing secret token",
                 LF_STR("peer", httpd_peer(req, peer, sizeof peer)));
        reply(resp, 401, "unauthorized\n");
        return;
    }
    if (!atomic_load(&w->open)) {
        reply(resp, 503, "not accepting updates now\n");
        return;
    }
    static _Thread_local struct tg_update u; /* 16 KiB: not on a handler thread's stack */
    char err[256];
    if (tg_json_parse_update(req->body, req->body_len, &u, err, sizeof err) < 0) {
        /* Sending it again would not make it valid: acknowledge and skip it. */
        intake_count_skipped("malformed");
        LOG_WARN("malformed update skipped", LF_I64("update_id", u.update_id),
                 LF_STR("error", err));
        reply(resp, 200, "skipped\n");
        return;
    }
    enum dedupe_res d = dedupe_begin(w->o.dedupe, u.update_id);
    if (d == DEDUPE_DONE) {
        intake_count_skipped("duplicate");
        reply(resp, 200, "duplicate\n");
        return;
    }
    if (d == DEDUPE_IN_PROGRESS) {
        /* The first delivery is still being handled: let Telegram ask again later. */
        reply(resp, 503, "in progress\n");
        return;
    }
    struct waiter *wt = calloc(1, sizeof *wt);
    if (!wt)
        abort();
    pthread_mutex_init(&wt->mu, NULL);
    pthread_cond_init(&wt->cv, NULL);
    wt->refs = 2;
    wt->dedupe = w->o.dedupe;
    if (dispatch_submit(w->o.dispatch, &u, on_done, wt) < 0) {
        dedupe_finish(w->o.dedupe, u.update_id, false);
        wt->refs = 1;
        waiter_unref(wt);
        reply(resp, 503, "shutting down\n");
        return;
    }
    int64_t deadline = clock_mono_ms() + w->o.max_wait_ms;
    pthread_mutex_lock(&wt->mu);
    while (!wt->done) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&wt->cv, &wt->mu, &ts);
    }
    bool done = wt->done, handled = wt->handled;
    pthread_mutex_unlock(&wt->mu);
    waiter_unref(wt);
    if (!done) {
        metric_inc(w->busy);
        reply(resp, 503, "still handling\n");
    } else if (!handled) {
        reply(resp, 500, "not handled: please deliver again\n");
    } else {
        metric_inc(w->accepted);
        reply(resp, 200, "ok\n");
    }
}

struct intake_webhook *intake_webhook_new(const struct intake_webhook_opts *o)
{
    struct intake_webhook *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->o = *o;
    w->secret = strdup(o->secret);
    if (!w->secret)
        abort();
    struct metric_family *f = metrics_family(
        "engbot_gateway_webhook_requests_total",
        "Webhook requests: accepted (handled, 200), unauthorized (401: wrong secret token), "
        "busy (503: handling took longer than WEBHOOK_MAX_WAIT).",
        METRIC_COUNTER, "result", NULL, 0);
    w->accepted = metrics_child(f, "accepted");
    w->unauthorized = metrics_child(f, "unauthorized");
    w->busy = metrics_child(f, "busy");
    intake_count_skipped(NULL); /* creates the family before the first scrape */
    httpd_route(o->http, o->path, h_webhook, w);
    return w;
}

void intake_webhook_open(struct intake_webhook *w)
{
    atomic_store(&w->open, true);
}

void intake_webhook_close(struct intake_webhook *w)
{
    atomic_store(&w->open, false);
}

void intake_webhook_free(struct intake_webhook *w)
{
    if (!w)
        return;
    memset(w->secret, 0, strlen(w->secret));
    free(w->secret);
    free(w);
}
