/* bench_client.c -- serial round-trip latency of one benchmark RPC against any server (the
 * layer, the C++ peer, grpc-js, the real service): one call in flight at a time on one
 * channel, through engbot's client layer, so the client side is identical for every server.
 *   bench-client HOST:PORT [CALLS=20000] [WARMUP=2000] [CHATS=1000] [RPC=touch] [ARG]
 *   RPC: touch (SessionService/TouchSession), resolve (CacheService/Resolve, ARG = entry id),
 *        enqueue (QueueService/Enqueue on CHATS lanes)
 * Prints: calls, p50/p90/p99/max in microseconds, calls per second. */
#include "clock.h"
#include "engbot/cache/v1/cache.pb-c.h"
#include "engbot/queue/v1/queue.pb-c.h"
#include "engbot/session/v1/session.pb-c.h"
#include "rpc.h"

#include <string.h>

#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-client HOST:PORT [CALLS] [WARMUP] [CHATS] [touch|resolve|enqueue] [ID]\n");
        return 2;
    }
    int calls = argc > 2 ? atoi(argv[2]) : 20000;
    int warmup = argc > 3 ? atoi(argv[3]) : 2000;
    int chats = argc > 4 ? atoi(argv[4]) : 1000;
    const char *rpc = argc > 5 ? argv[5] : "touch";
    const char *arg = argc > 6 ? argv[6] : "";
    struct rpc_channel *ch = rpc_channel_new(argv[1], NULL);
    int64_t *lat = calloc((size_t)calls, sizeof *lat);
    int errors = 0;
    int64_t t_start = 0;
    for (int i = -warmup; i < calls; i++) {
        Engbot__Session__V1__TouchSessionRequest tq = ENGBOT__SESSION__V1__TOUCH_SESSION_REQUEST__INIT;
        Engbot__Cache__V1__ResolveRequest cq = ENGBOT__CACHE__V1__RESOLVE_REQUEST__INIT;
        Engbot__Queue__V1__EnqueueRequest eq = ENGBOT__QUEUE__V1__ENQUEUE_REQUEST__INIT;
        int64_t chat = 1000000000000LL + (i < 0 ? -i : i) % chats;
        const ProtobufCMessage *req;
        const ProtobufCMessageDescriptor *rd;
        const char *path;
        if (strcmp(rpc, "resolve") == 0) {
            cq.selector_case = ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_ID;
            cq.id = (char *)arg;
            req = &cq.base;
            rd = &engbot__cache__v1__resolve_response__descriptor;
            path = "/engbot.cache.v1.CacheService/Resolve";
        } else if (strcmp(rpc, "enqueue") == 0) {
            eq.lane_key = chat;
            eq.lane_kind = ENGBOT__QUEUE__V1__LANE_KIND__LANE_KIND_PRIVATE;
            eq.method = "sendMessage";
            eq.payload.data = (uint8_t *)"{\"chat_id\":1000000000000,\"text\":\"hello\"}";
            eq.payload.len = strlen((const char *)eq.payload.data);
            req = &eq.base;
            rd = &engbot__queue__v1__enqueue_response__descriptor;
            path = "/engbot.queue.v1.QueueService/Enqueue";
        } else {
            tq.chat_id = chat;
            tq.user_id = 7;
            req = &tq.base;
            rd = &engbot__session__v1__touch_session_response__descriptor;
            path = "/engbot.session.v1.SessionService/TouchSession";
        }
        ProtobufCMessage *resp;
        struct rpc_status st;
        if (i == 0)
            t_start = clock_mono_us();
        int64_t t0 = clock_mono_us();
        int rc = rpc_unary(ch, path, req, rd, &resp, 5000, RPC_CALL_WAIT_FOR_READY, NULL, 0, &st);
        int64_t dt = clock_mono_us() - t0;
        if (rc != RPC_OK) {
            errors++;
            if (errors < 5)
                fprintf(stderr, "call failed: %s %s\n", rpc_code_name(rc), st.message);
            continue;
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        if (i >= 0)
            lat[i] = dt;
    }
    int64_t total = clock_mono_us() - t_start;
    qsort(lat, (size_t)calls, sizeof *lat, cmp);
    printf("calls=%d errors=%d p50_us=%lld p90_us=%lld p99_us=%lld max_us=%lld rps=%.0f\n", calls,
           errors, (long long)lat[calls / 2], (long long)lat[calls * 9 / 10],
           (long long)lat[calls * 99 / 100], (long long)lat[calls - 1],
           calls / (total / 1e6));
    free(lat);
    rpc_channel_free(ch);
    return errors ? 1 : 0;
}
