/* faults.c -- injected faults and Telegram's rate limits. Callers hold e->mu.
 *
 * A fault matches a Bot API call by method (any when empty) and chat (any when unset), fires
 * `remaining` times (0 = until cleared) and is checked before the call runs: "429" answers
 * Too Many Requests with retry_after, "5xx" a server error, "409" a conflict, "slow" delays the
 * call, "drop" closes the connection without an answer (before the call takes effect, or after
 * with "after": the call happened but the bot never hears of it).
 *
 * Rate limits, when switched on, are token buckets with Telegram's published numbers: about
 * one message per second per chat with a small burst, 20 per minute per group, 30 per second
 * overall (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this). */
#include "clock.h"
#include "emu.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool faults_match(struct emu *e, const char *method, bool has_chat, int64_t chat_id,
                  struct fault *out)
{
    for (int i = 0; i < e->nfaults; i++) {
        struct fault *f = &e->faults[i];
        if (f->method[0] && strcasecmp(f->method, method) != 0)
            continue;
        if (f->has_chat && (!has_chat || f->chat_id != chat_id))
            continue;
        *out = *f;
        if (f->remaining > 0 && --f->remaining == 0) {
            memmove(f, f + 1, (size_t)(e->nfaults - i - 1) * sizeof *f);
            e->nfaults--;
        }
        return true;
    }
    return false;
}

int faults_add(struct emu *e, const struct fault *in, char *err, size_t cap)
{
    struct fault f = *in;
    if (strcmp(f.kind, "429") == 0) {
        if (f.retry_after <= 0)
            f.retry_after = 1;
    } else if (strcmp(f.kind, "5xx") == 0) {
        if (f.status == 0)
            f.status = 502;
        if (f.status < 500 || f.status > 599) {
            snprintf(err, cap, "status must be 500..599");
            return -1;
        }
    } else if (strcmp(f.kind, "slow") == 0) {
        if (f.delay_ms <= 0)
            f.delay_ms = 1000;
        if (f.delay_ms > 600000) {
            snprintf(err, cap, "delay_ms must be at most 600000");
            return -1;
        }
    } else if (strcmp(f.kind, "drop") != 0 && strcmp(f.kind, "409") != 0) {
        snprintf(err, cap, "kind must be one of 429, 5xx, slow, drop, 409");
        return -1;
    }
    if (f.remaining < 0) {
        snprintf(err, cap, "count must be >= 0");
        return -1;
    }
    if (e->nfaults == EMU_MAX_FAULTS) {
        snprintf(err, cap, "too many faults (at most %d); clear some first", EMU_MAX_FAULTS);
        return -1;
    }
    e->faults[e->nfaults++] = f;
    return 0;
}

void faults_clear(struct emu *e)
{
    e->nfaults = 0;
}

cJSON *faults_json(struct emu *e)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < e->nfaults; i++) {
        const struct fault *f = &e->faults[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", f->kind);
        if (f->method[0])
            cJSON_AddStringToObject(o, "method", f->method);
        if (f->has_chat)
            cJSON_AddNumberToObject(o, "chat_id", (double)f->chat_id);
        cJSON_AddNumberToObject(o, "count", (double)f->remaining);
        if (strcmp(f->kind, "429") == 0)
            cJSON_AddNumberToObject(o, "retry_after", (double)f->retry_after);
        if (strcmp(f->kind, "slow") == 0)
            cJSON_AddNumberToObject(o, "delay_ms", (double)f->delay_ms);
        if (strcmp(f->kind, "5xx") == 0)
            cJSON_AddNumberToObject(o, "status", (double)f->status);
        if (strcmp(f->kind, "drop") == 0)
            cJSON_AddBoolToObject(o, "after", f->after);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* Refills b (capacity cap, one token per per_ms) and returns the ms until a token is there. */
static int64_t bucket_wait(struct bucket *b, double cap, double per_ms, int64_t now)
{
    if (b->last_ms == 0) {
        b->tokens = cap;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) / per_ms;
    if (b->tokens > cap)
        b->tokens = cap;
    b->last_ms = now;
    return b->tokens >= 1.0 ? 0 : (int64_t)ceil((1.0 - b->tokens) * per_ms);
}

static struct bucket *bucket_of(struct hmap *m, int64_t id)
{
    struct bucket *b = hmap_geti(m, id);
    if (!b) {
        if (m->n > 100000)
            hmap_del_oldest(m);
        b = calloc(1, sizeof *b);
        if (!b)
            abort();
        hmap_puti(m, id, b);
    }
    return b;
}

int64_t ratelimit_take(struct emu *e, const struct chat *ch)
{
    if (!e->ratelimits)
        return 0;
    int64_t now = clock_mono_ms();
    bool group = strcmp(ch->type, "group") == 0 || strcmp(ch->type, "supergroup") == 0;
    struct bucket *cb = bucket_of(&e->chat_buckets, ch->id);
    struct bucket *gb = group ? bucket_of(&e->group_buckets, ch->id) : NULL;
    int64_t w = bucket_wait(&e->global, (double)e->cfg.global_per_sec,
                            1000.0 / (double)e->cfg.global_per_sec, now);
    int64_t wc = bucket_wait(cb, (double)e->cfg.chat_burst, (double)e->cfg.chat_per_sec_ms, now);
    if (wc > w)
        w = wc;
    if (gb) {
        int64_t wg = bucket_wait(gb, (double)e->cfg.group_per_min,
                                 60000.0 / (double)e->cfg.group_per_min, now);
        if (wg > w)
            w = wg;
    }
    if (w > 0)
        return (w + 999) / 1000;
    e->global.tokens -= 1;
    cb->tokens -= 1;
    if (gb)
        gb->tokens -= 1;
    return 0;
}

void ratelimit_reset(struct emu *e)
{
    hmap_clear(&e->chat_buckets);
    hmap_clear(&e->group_buckets);
    e->global = (struct bucket){0};
}
