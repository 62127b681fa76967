/* emu.c -- the emulator's lifetime: creating and freeing the state, reset, stop, and the
 * routes (Bot API, control API, /healthz, /readyz, /metrics). */
#include "emu.h"
#include "httpd.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct emu *emu_new(const struct emu_cfg *cfg)
{
    struct emu *e = calloc(1, sizeof *e);
    if (!e)
        abort();
    e->cfg = *cfg;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&e->updates_cv, &ca);
    pthread_cond_init(&e->transcript_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* A restarted emulator must not reuse update ids a bot has already seen (bots drop
     * repeated update_ids): by default ids start at the Unix time in seconds, which stays in
     * 32 bits (some clients keep update_id in an int) and grows across restarts. */
    e->next_update_id = cfg->first_update_id > 0 ? cfg->first_update_id : (int64_t)time(NULL);
    e->ratelimits = cfg->ratelimits;
    store_init(e);
    hmap_init(&e->chat_buckets, free);
    hmap_init(&e->group_buckets, free);
    if (cfg->bot_token && *cfg->bot_token) {
        const char *colon = strchr(cfg->bot_token, ':');
        e->bot_id = colon ? strtoll(cfg->bot_token, NULL, 10) : 0;
    } else {
        e->cfg.bot_token = NULL;
        e->bot_id = 0;
    }
    return e;
}

void emu_reset(struct emu *e)
{
    pthread_mutex_lock(&e->mu);
    updates_terminate_poll(e);
    updates_clear(e);
    for (size_t i = 0; i < e->nallowed; i++)
        free(e->allowed[i]);
    free(e->allowed);
    e->allowed = NULL;
    e->nallowed = 0;
    webhook_clear(e);
    store_clear(e);
    faults_clear(e);
    ratelimit_reset(e);
    e->ratelimits = e->cfg.ratelimits;
    transcript_clear(e);
    calls_clear(e);
    cJSON_Delete(e->commands);
    e->commands = NULL;
    pthread_cond_broadcast(&e->updates_cv);
    pthread_mutex_unlock(&e->mu);
}

void emu_stop(struct emu *e)
{
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->updates_cv);
    pthread_cond_broadcast(&e->transcript_cv);
    pthread_mutex_unlock(&e->mu);
    webhook_stop(e);
}

void emu_free(struct emu *e)
{
    if (!e)
        return;
    updates_clear(e);
    for (size_t i = 0; i < e->nallowed; i++)
        free(e->allowed[i]);
    free(e->allowed);
    webhook_clear(e);
    store_free(e);
    hmap_clear(&e->chat_buckets);
    hmap_clear(&e->group_buckets);
    transcript_clear(e);
    free(e->events);
    calls_clear(e);
    cJSON_Delete(e->commands);
    free(e->last_token);
    pthread_cond_destroy(&e->updates_cv);
    pthread_cond_destroy(&e->transcript_cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static void h_metrics(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    size_t len;
    resp->body = metrics_render(&len);
    resp->body_len = len;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void h_health(void *ud, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct emu *e = ud;
    pthread_mutex_lock(&e->mu);
    bool stopping = e->stopping;
    pthread_mutex_unlock(&e->mu);
    if (stopping) {
        resp->status = 503;
        httpd_set_body(resp, "text/plain", "not ready: shutting down\n");
        return;
    }
    httpd_set_body(resp, "text/plain", "ok\n");
}

static double g_pending(void *arg)
{
    struct emu *e = arg;
    pthread_mutex_lock(&e->mu);
    double n = (double)e->nupdates;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void emu_routes(struct emu *e, struct httpd *h)
{
    metrics_gauge_fn("emulator_pending_updates", "Updates queued and not yet confirmed.",
                     g_pending, e);
    httpd_route(h, "/metrics", h_metrics, e);
    httpd_route(h, "/healthz", h_health, e);
    httpd_route(h, "/readyz", h_health, e);
    botapi_routes(e, h);
    control_routes(e, h);
}
