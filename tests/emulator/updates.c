/* updates.c -- the bot's update queue and getUpdates.
 *
 * Updates wait here until confirmed: by a getUpdates offset above their id (long polling) or
 * by a 2xx from the webhook (webhook.c). Long polling follows Telegram's server: a poll with
 * nothing to return waits up to `timeout` seconds (capped at 50); a newer getUpdates call
 * ends a waiting one with 409 "terminated by other getUpdates request" -- the newest poller
 * wins, which is how a second bot instance shows up. allowed_updates is sticky and, like on
 * Telegram, only filters updates created after it was set. Callers hold e->mu. */
#include "clock.h"
#include "emu.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFLICT_POLL                                                                              \
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "  \
    "running"
#define CONFLICT_WEBHOOK                                                                           \
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete " \
    "the webhook first"

static bool type_allowed(const struct emu *e, const char *type)
{
    if (!e->allowed)
        return strcmp(type, "chat_member") != 0 && strcmp(type, "message_reaction") != 0 &&
               strcmp(type, "message_reaction_count") != 0;
    for (size_t i = 0; i < e->nallowed; i++)
        if (strcmp(e->allowed[i], type) == 0)
            return true;
    return false;
}

void updates_remove(struct emu *e, struct update *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        e->uhead = u->next;
    if (u->next)
        u->next->prev = u->prev;
    else
        e->utail = u->prev;
    e->nupdates--;
    free(u->json);
    free(u);
}

void updates_clear(struct emu *e)
{
    while (e->uhead)
        updates_remove(e, e->uhead);
}

size_t updates_pending(struct emu *e)
{
    return e->nupdates;
}

/* Telegram keeps an update for at most 24 hours. */
static void expire(struct emu *e)
{
    int64_t now = clock_mono_ms();
    while (e->uhead && !e->uhead->in_flight &&
           now - e->uhead->created_ms > e->cfg.update_retention) {
        LOG_INFO("update expired unconfirmed", LF_I64("update_id", e->uhead->id));
        updates_remove(e, e->uhead);
    }
}

int64_t updates_push(struct emu *e, cJSON *obj, int64_t chat_id, const char *type)
{
    expire(e);
    int64_t id;
    cJSON *given = cJSON_GetObjectItemCaseSensitive(obj, "update_id");
    if (json_int64(given, &id) && id >= 0 && id < INT64_MAX / 2) {
        if (id >= e->next_update_id)
            e->next_update_id = id + 1;
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "update_id");
        id = e->next_update_id++;
        /* update_id first, as Telegram writes it. */
        cJSON *n = cJSON_CreateNumber((double)id);
        n->string = strdup("update_id");
        if (!n->string)
            abort();
        n->next = obj->child;
        if (obj->child) {
            n->prev = obj->child->prev;
            obj->child->prev = n;
        } else {
            n->prev = n;
        }
        obj->child = n;
    }
    if (!type_allowed(e, type)) {
        LOG_DEBUG("update filtered by allowed_updates", LF_I64("update_id", id),
                  LF_STR("type", type));
        cJSON_Delete(obj);
        return id;
    }
    if (e->nupdates >= (size_t)e->cfg.max_updates) {
        cJSON_Delete(obj);
        return -1;
    }
    struct update *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    u->id = id;
    u->chat_id = chat_id;
    snprintf(u->type, sizeof u->type, "%s", type);
    u->json = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!u->json)
        abort();
    u->created_ms = clock_mono_ms();
    u->prev = e->utail;
    if (e->utail)
        e->utail->next = u;
    else
        e->uhead = u;
    e->utail = u;
    e->nupdates++;
    pthread_cond_broadcast(&e->updates_cv);
    return id;
}

/* A waiting long poll; lives on its thread's stack while e->poller points to it. */
struct poller {
    bool terminated;
};

void updates_terminate_poll(struct emu *e)
{
    if (e->poller) {
        e->poller->terminated = true;
        e->poller = NULL;
        pthread_cond_broadcast(&e->updates_cv);
    }
}

cJSON *updates_allowed_json(struct emu *e)
{
    if (!e->allowed)
        return NULL;
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < e->nallowed; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(e->allowed[i]));
    return a;
}

/* Replaces the sticky allowed_updates from a JSON array; false when malformed. */
bool updates_set_allowed(struct emu *e, const char *text)
{
    cJSON *a = cJSON_Parse(text);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return false;
    }
    for (size_t i = 0; i < e->nallowed; i++)
        free(e->allowed[i]);
    free(e->allowed);
    e->allowed = NULL;
    e->nallowed = 0;
    int n = cJSON_GetArraySize(a);
    if (n > 0) {
        e->allowed = calloc((size_t)n, sizeof *e->allowed);
        if (!e->allowed)
            abort();
        for (cJSON *it = a->child; it; it = it->next)
            if (cJSON_IsString(it) && strlen(it->valuestring) < 40)
                e->allowed[e->nallowed++] = strdup(it->valuestring);
        if (e->nallowed == 0) {
            free(e->allowed);
            e->allowed = NULL;
        }
    }
    cJSON_Delete(a);
    return true;
}

/* Telegram reads numbers leniently here: an unparsable value counts as 0. */
static int64_t int_or(const struct params *p, const char *name, int64_t def)
{
    int64_t v;
    int r = params_int64(p, name, &v);
    return r == 1 ? v : r == 0 ? def : 0;
}

static cJSON *collect(struct emu *e, int64_t offset, int64_t limit)
{
    cJSON *arr = cJSON_CreateArray();
    int64_t n = 0;
    for (struct update *u = e->uhead; u && n < limit; u = u->next) {
        if (u->id < offset)
            continue;
        cJSON_AddItemToArray(arr, cJSON_CreateRaw(u->json));
        n++;
    }
    return arr;
}

void m_get_updates(struct emu *e, struct call *c)
{
    int64_t offset = int_or(c->p, "offset", 0);
    int64_t limit = int_or(c->p, "limit", 100);
    int64_t timeout = int_or(c->p, "timeout", 0);
    if (limit <= 0 || limit > 100)
        limit = 100;
    if (timeout < 0)
        timeout = 0;
    int64_t timeout_ms = timeout > e->cfg.poll_max_timeout / 1000 ? e->cfg.poll_max_timeout
                                                                  : timeout * 1000;
    const char *allowed = params_str(c->p, "allowed_updates");

    pthread_mutex_lock(&e->mu);
    if (e->wh_url) {
        call_error(c, 409, CONFLICT_WEBHOOK);
        goto out;
    }
    if (allowed && *allowed && !updates_set_allowed(e, allowed)) {
        call_bad(c, "can't parse allowed_updates JSON array");
        goto out;
    }
    updates_terminate_poll(e);
    expire(e);
    /* Confirm: everything below a positive offset is forgotten; a negative one keeps only the
     * last -offset updates. */
    if (offset > 0) {
        for (struct update *u = e->uhead, *nx; u; u = nx) {
            nx = u->next;
            if (u->id < offset)
                updates_remove(e, u);
        }
    } else if (offset < 0) {
        while (e->nupdates > (size_t)(-(offset < -1000000 ? -1000000 : offset)))
            updates_remove(e, e->uhead);
        offset = e->uhead ? e->uhead->id : 0;
    }
    bool any = false;
    for (struct update *u = e->uhead; u && !any; u = u->next)
        any = u->id >= offset;
    if (!any && timeout_ms > 0 && !e->stopping) {
        struct poller me = {0};
        e->poller = &me;
        int64_t deadline = clock_mono_ms() + timeout_ms;
        for (;;) {
            if (e->stopping || me.terminated || e->wh_url)
                break;
            for (struct update *u = e->uhead; u && !any; u = u->next)
                any = u->id >= offset;
            if (any)
                break;
            int64_t left = deadline - clock_mono_ms();
            if (left <= 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (left > 1000 ? 1000 : left) * 1000000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&e->updates_cv, &e->mu, &ts);
        }
        if (e->poller == &me)
            e->poller = NULL;
        if (me.terminated) {
            call_error(c, 409, CONFLICT_POLL);
            goto out;
        }
        if (e->wh_url) {
            call_error(c, 409, CONFLICT_WEBHOOK);
            goto out;
        }
    }
    c->result = collect(e, offset, limit);
out:
    pthread_mutex_unlock(&e->mu);
}
