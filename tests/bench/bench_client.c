/* bench_client.c -- serial round-trip latency of TouchSession against any server (the layer,
 * the C++ peer, grpc-js, session-svc): one call in flight at a time on one channel, through
 * engbot's client layer, so the client side is identical for every server measured.
 *   bench-client HOST:PORT [CALLS=20000] [WARMUP=2000] [CHATS=1000]
 * Prints: calls, p50/p90/p99/max in microseconds, calls per second. */
#include "clock.h"
#include "engbot/session/v1/session.pb-c.h"
#include "rpc.h"

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
        fprintf(stderr, "usage: bench-client HOST:PORT [CALLS] [WARMUP] [CHATS]\n");
        return 2;
    }
    int calls = argc > 2 ? atoi(argv[2]) : 20000;
    int warmup = argc > 3 ? atoi(argv[3]) : 2000;
    int chats = argc > 4 ? atoi(argv[4]) : 1000;
    struct rpc_channel *ch = rpc_channel_new(argv[1], NULL);
    int64_t *lat = calloc((size_t)calls, sizeof *lat);
    int errors = 0;
    int64_t t_start = 0;
    for (int i = -warmup; i < calls; i++) {
        Engbot__Session__V1__TouchSessionRequest rq = ENGBOT__SESSION__V1__TOUCH_SESSION_REQUEST__INIT;
        rq.chat_id = 1000000000000LL + (i < 0 ? -i : i) % chats;
        rq.user_id = 7;
        ProtobufCMessage *resp;
        struct rpc_status st;
        if (i == 0)
            t_start = clock_mono_us();
        int64_t t0 = clock_mono_us();
        int rc = rpc_unary(ch, "/engbot.session.v1.SessionService/TouchSession", &rq.base,
                           &engbot__session__v1__touch_session_response__descriptor, &resp, 5000,
                           RPC_CALL_WAIT_FOR_READY, NULL, 0, &st);
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
