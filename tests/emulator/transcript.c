/* transcript.c -- what the bot did, for tests and the terminal chat: every successful bot
 * action as an event with a sequence number (kept in a ring of cfg.max_transcript), and
 * counters of every API call by method and outcome. Callers hold e->mu. */
#include "clock.h"
#include "emu.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct event {
    int64_t seq, chat_id;
    char *json;
};

void transcript_add(struct emu *e, const char *method, int64_t chat_id, cJSON *ev)
{
    if (!e->events) {
        e->ev_cap = (size_t)e->cfg.max_transcript;
        e->events = calloc(e->ev_cap, sizeof *e->events);
        if (!e->events)
            abort();
    }
    int64_t seq = ++e->next_seq;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)seq);
    cJSON_AddNumberToObject(o, "ts_ms", (double)clock_now_ms());
    cJSON_AddStringToObject(o, "method", method);
    if (chat_id)
        cJSON_AddNumberToObject(o, "chat_id", (double)chat_id);
    /* Move ev's fields after the fixed ones. */
    while (ev && ev->child) {
        cJSON *it = cJSON_DetachItemViaPointer(ev, ev->child);
        cJSON_AddItemToObject(o, it->string, it); /* copies the key, frees the old one */
    }
    cJSON_Delete(ev);
    struct event *slot;
    if (e->ev_n == e->ev_cap) {
        slot = &e->events[e->ev_head];
        free(slot->json);
        e->ev_head = (e->ev_head + 1) % e->ev_cap;
    } else {
        slot = &e->events[(e->ev_head + e->ev_n) % e->ev_cap];
        e->ev_n++;
    }
    slot->seq = seq;
    slot->chat_id = chat_id;
    slot->json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!slot->json)
        abort();
    pthread_cond_broadcast(&e->transcript_cv);
}

static bool any_after(struct emu *e, bool has_chat, int64_t chat_id, int64_t since)
{
    for (size_t i = e->ev_n; i > 0; i--) {
        const struct event *ev = &e->events[(e->ev_head + i - 1) % e->ev_cap];
        if (ev->seq <= since)
            return false;
        if (!has_chat || ev->chat_id == chat_id)
            return true;
    }
    return false;
}

char *transcript_render(struct emu *e, bool has_chat, int64_t chat_id, int64_t since,
                        int64_t wait_ms)
{
    if (wait_ms > 0) {
        int64_t deadline = clock_mono_ms() + wait_ms;
        while (!e->stopping && !any_after(e, has_chat, chat_id, since)) {
            int64_t left = deadline - clock_mono_ms();
            if (left <= 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (left > 1000 ? 1000 : left) * 1000000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&e->transcript_cv, &e->mu, &ts);
        }
    }
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        abort();
#define APPEND(s, n)                                                                               \
    do {                                                                                           \
        size_t n_ = (n);                                                                           \
        while (len + n_ + 64 > cap)                                                                \
            cap *= 2;                                                                              \
        char *p_ = realloc(out, cap);                                                              \
        if (!p_)                                                                                   \
            abort();                                                                               \
        out = p_;                                                                                  \
        memcpy(out + len, (s), n_);                                                                \
        len += n_;                                                                                 \
    } while (0)
    APPEND("{\"events\":[", 11);
    int64_t next = since > e->next_seq ? e->next_seq : since;
    bool first = true;
    for (size_t i = 0; i < e->ev_n; i++) {
        const struct event *ev = &e->events[(e->ev_head + i) % e->ev_cap];
        if (ev->seq <= since)
            continue;
        next = ev->seq;
        if (has_chat && ev->chat_id != chat_id)
            continue;
        if (!first)
            APPEND(",", 1);
        first = false;
        APPEND(ev->json, strlen(ev->json));
    }
    /* next: pass it back as since to get only newer events. */
    char tail[64];
    int tl = snprintf(tail, sizeof tail, "],\"next\":%lld}", (long long)(next < 0 ? 0 : next));
    APPEND(tail, (size_t)tl);
    out[len] = '\0';
#undef APPEND
    return out;
}

void transcript_clear(struct emu *e)
{
    for (size_t i = 0; i < e->ev_n; i++)
        free(e->events[(e->ev_head + i) % e->ev_cap].json);
    e->ev_n = 0;
    e->ev_head = 0;
}

static void bump(cJSON *o, const char *key)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!n)
        cJSON_AddNumberToObject(o, key, 1);
    else
        cJSON_SetNumberValue(n, n->valuedouble + 1);
}

void calls_count(struct emu *e, const char *method, const char *outcome, const char *variant)
{
    if (!e->calls)
        e->calls = cJSON_CreateObject();
    cJSON *m = cJSON_GetObjectItemCaseSensitive(e->calls, method);
    if (!m)
        m = cJSON_AddObjectToObject(e->calls, method);
    bump(m, "total");
    bump(m, outcome);
    if (variant) {
        char k[64];
        bump(m, variant);
        snprintf(k, sizeof k, "%s_%s", variant, outcome);
        bump(m, k);
    }
}

char *calls_render(struct emu *e, const char *method)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *c = cJSON_AddObjectToObject(o, "calls");
    double total = 0;
    for (cJSON *m = e->calls ? e->calls->child : NULL; m; m = m->next) {
        if (method && *method && strcasecmp(method, m->string) != 0)
            continue;
        cJSON_AddItemToObject(c, m->string, cJSON_Duplicate(m, true));
        total += cJSON_GetObjectItemCaseSensitive(m, "total")->valuedouble;
    }
    cJSON_AddNumberToObject(o, "total", total);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void calls_clear(struct emu *e)
{
    cJSON_Delete(e->calls);
    e->calls = NULL;
}
