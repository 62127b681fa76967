/* admin.c -- the admin commands: /refresh (cache-svc's manual invalidation, the seed's third
 * trigger) and /stats (sessions, cache hit ratios, queue depth, uptime, each service's version,
 * dependency states). bot.c checks ADMIN_USER_IDS before calling them. */
#include "bot_internal.h"
#include "clock.h"
#include "log.h"

#include "engbot/queue/v1/queue.pb-c.h"
#include "engbot/session/v1/session.pb-c.h"

#include <inttypes.h>
#include <stdio.h>

extern const char engbot_version[];

void cmd_refresh(struct ctx *c)
{
    struct bot *b = c->b;
    Engbot__Cache__V1__InvalidateRequest req = ENGBOT__CACHE__V1__INVALIDATE_REQUEST__INIT;
    req.all = true;
    ProtobufCMessage *m = NULL;
    struct rpc_status st;
    int code = deps_unary(b->o.deps, DEP_CACHE, c->u->chat_id, "Invalidate", &req.base,
                          &engbot__cache__v1__invalidate_response__descriptor, &m, 0, &st);
    /* This replica's catalogue answers go too (other replicas' age out within
     * CATALOGUE_CACHE_TTL). Emptied even when the call failed: nothing is lost by asking
     * cache-svc again. */
    deps_forget_reads(b->o.deps, DEP_CACHE);
    char text[256];
    if (code == RPC_OK) {
        Engbot__Cache__V1__InvalidateResponse *r = (Engbot__Cache__V1__InvalidateResponse *)m;
        snprintf(text, sizeof text,
                 "\xE2\x9C\x85 Catalogue refreshed: %" PRIu64 " entries, %" PRIu64 " changed.",
                 r->entries, r->changed);
        protobuf_c_message_free_unpacked(m, NULL);
        LOG_INFO("catalogue refreshed by an admin", LF_I64("user_id", c->u->user_id));
    } else {
        if (deps_code_is_failure(code))
            deps_degraded(b->o.deps, DEP_CACHE);
        snprintf(text, sizeof text, "Refresh failed: %s", FILES_DOWN);
    }
    ctx_reply(c, text, NULL, NULL);
}

void cmd_stats(struct ctx *c)
{
    struct bot *b = c->b;
    struct deps *d = b->o.deps;
    char text[2048], line[512];
    size_t o = 0;
    int64_t up = (clock_mono_ms() - b->o.started_mono_ms) / 1000;
    o += (size_t)snprintf(text + o, sizeof text - o,
                          "<b>Stats</b>\nGateway %s, up %" PRId64 "h %02" PRId64 "m\n",
                          engbot_version, up / 3600, (up / 60) % 60);
    ProtobufCMessage *m = NULL;
    struct rpc_status st;
    Engbot__Session__V1__GetStatsRequest sreq = ENGBOT__SESSION__V1__GET_STATS_REQUEST__INIT;
    if (deps_unary(d, DEP_SESSION, 0, "GetStats", &sreq.base,
                   &engbot__session__v1__get_stats_response__descriptor, &m, DEPS_IDEMPOTENT,
                   &st) == RPC_OK) {
        Engbot__Session__V1__GetStatsResponse *r = (Engbot__Session__V1__GetStatsResponse *)m;
        snprintf(line, sizeof line,
                 "Sessions: %" PRIu64 " active (max %" PRIu64 "), %" PRIu64 " expired, %" PRIu64
                 " evicted \xC2\xB7 session-svc %s\n",
                 r->active, r->max_sessions, r->expired_total, r->evicted_total,
                 r->version ? r->version : "?");
        protobuf_c_message_free_unpacked(m, NULL);
    } else {
        snprintf(line, sizeof line, "Sessions: unavailable (%s)\n",
                 deps_enabled(d, DEP_SESSION) ? "session-svc down" : "switched off");
    }
    o += (size_t)snprintf(text + o, sizeof text - o, "%s", line);
    Engbot__Cache__V1__GetStatsRequest creq = ENGBOT__CACHE__V1__GET_STATS_REQUEST__INIT;
    if (deps_unary(d, DEP_CACHE, 0, "GetStats", &creq.base,
                   &engbot__cache__v1__get_stats_response__descriptor, &m, DEPS_IDEMPOTENT,
                   &st) == RPC_OK) {
        Engbot__Cache__V1__GetStatsResponse *r = (Engbot__Cache__V1__GetStatsResponse *)m;
        o += (size_t)snprintf(text + o, sizeof text - o,
                              "Catalogue: %" PRIu64 " entries (%" PRIu64 " files) \xC2\xB7 "
                              "cache-svc %s\n",
                              r->entries, r->files, r->version ? r->version : "?");
        for (size_t i = 0; i < r->n_caches && o < sizeof text; i++)
            o += (size_t)snprintf(
                text + o, sizeof text - o, "  %s cache: %.0f%% hits (%" PRIu64 "/%" PRIu64 ")\n",
                r->caches[i]->name ? r->caches[i]->name : "?", r->caches[i]->hit_ratio * 100,
                r->caches[i]->hits, r->caches[i]->hits + r->caches[i]->misses);
        protobuf_c_message_free_unpacked(m, NULL);
    } else if (o < sizeof text) {
        o += (size_t)snprintf(text + o, sizeof text - o, "Catalogue: unavailable\n");
    }
    Engbot__Queue__V1__GetStatsRequest qreq = ENGBOT__QUEUE__V1__GET_STATS_REQUEST__INIT;
    if (o < sizeof text && deps_unary(d, DEP_QUEUE, 0, "GetStats", &qreq.base,
                                      &engbot__queue__v1__get_stats_response__descriptor, &m,
                                      DEPS_IDEMPOTENT, &st) == RPC_OK) {
        Engbot__Queue__V1__GetStatsResponse *r = (Engbot__Queue__V1__GetStatsResponse *)m;
        o += (size_t)snprintf(text + o, sizeof text - o,
                              "Queue: %" PRIu64 " queued, %" PRIu64 " in flight, %" PRIu64
                              " dead letters, %" PRIu64 " lanes \xC2\xB7 queue-svc %s\n",
                              r->queued, r->leased, r->dead, r->lanes,
                              r->version ? r->version : "?");
        protobuf_c_message_free_unpacked(m, NULL);
    } else if (o < sizeof text) {
        o += (size_t)snprintf(text + o, sizeof text - o, "Queue: %s\n",
                              deps_enabled(d, DEP_QUEUE) ? "unavailable (sending directly)"
                                                         : "switched off (sending directly)");
    }
    char deps_line[256];
    deps_describe(d, deps_line, sizeof deps_line);
    if (o < sizeof text)
        snprintf(text + o, sizeof text - o, "Dependencies: %s", deps_line);
    ctx_reply(c, text, "HTML", NULL);
}
