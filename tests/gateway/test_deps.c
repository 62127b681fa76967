/* test_deps.c -- gateway/deps.c, the parts the outbox relies on: deps_down_since follows the
 * breaker (set from the first failure of the run that opened it, cleared by a success), and a
 * DEPS_WHEN_UP call sends nothing -- and says so -- while the breaker is open or half-open or
 * the channel cannot connect, where a plain call would be the half-open probe. */
#include "clock.h"
#include "deps.h"
#include "test.h"

#include "engbot/queue/v1/queue.pb-c.h"

#include <string.h>
#include <unistd.h>

/* A queue-svc address where nothing listens: connections are refused at once. */
static struct deps *closed_queue(int threshold, int64_t reconnect_max_ms)
{
    struct deps_opts o = {
        .addr = {"127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1"},
        .enabled = {false, false, true},
        .deadline_ms = {200, 200, 200},
        .retries = 0,
        .breaker_threshold = threshold,
        .breaker_open_ms = 1000,
        .breaker_open_max_ms = 8000,
        .reconnect_max_ms = reconnect_max_ms,
    };
    return deps_new(&o);
}

static int enqueue(struct deps *d, struct rpc_status *st, bool *sent)
{
    Engbot__Queue__V1__EnqueueRequest req = ENGBOT__QUEUE__V1__ENQUEUE_REQUEST__INIT;
    req.lane_key = 42;
    req.method = "sendMessage";
    req.dedupe_key = "1:2:0";
    ProtobufCMessage *m = NULL;
    int code = deps_unary_sent(d, DEP_QUEUE, 42, "Enqueue", &req.base,
                               &engbot__queue__v1__enqueue_response__descriptor, &m, DEPS_WHEN_UP,
                               st, sent);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return code;
}

TEST(down_since_is_the_first_failure_of_the_run_that_opened_the_breaker)
{
    clock_set_fake(true, 1700000000000LL);
    struct deps *d = closed_queue(3, 2000);
    int64_t t0 = clock_mono_ms();
    ASSERT_EQ(deps_down_since(d, DEP_QUEUE, TRACK_STABLE), 0);
    deps_report(d, DEP_QUEUE, TRACK_STABLE, RPC_DEADLINE_EXCEEDED);
    ASSERT_EQ(deps_down_since(d, DEP_QUEUE, TRACK_STABLE), 0); /* one failure: not down yet */
    clock_advance_ms(100);
    deps_report(d, DEP_QUEUE, TRACK_STABLE, RPC_UNAVAILABLE);
    clock_advance_ms(100);
    deps_report(d, DEP_QUEUE, TRACK_STABLE, RPC_UNAVAILABLE); /* opens the breaker */
    ASSERT_FALSE(deps_up(d, DEP_QUEUE));
    ASSERT_EQ(deps_down_since(d, DEP_QUEUE, TRACK_STABLE), t0);
    clock_advance_ms(1000);
    deps_report(d, DEP_QUEUE, TRACK_STABLE, RPC_UNAVAILABLE); /* a failed probe */
    ASSERT_EQ(deps_down_since(d, DEP_QUEUE, TRACK_STABLE), t0);
    deps_report(d, DEP_QUEUE, TRACK_STABLE, RPC_OK); /* back */
    ASSERT_EQ(deps_down_since(d, DEP_QUEUE, TRACK_STABLE), 0);
    ASSERT_TRUE(deps_up(d, DEP_QUEUE));
    /* A refusal is an answer: RESOURCE_EXHAUSTED does not count as down. */
    for (int i = 0; i < 5; i++)
        deps_report(d, DEP_QUEUE, TRACK_STABLE, RPC_RESOURCE_EXHAUSTED);
    ASSERT_EQ(deps_down_since(d, DEP_QUEUE, TRACK_STABLE), 0);
    deps_free(d);
    clock_set_fake(false, 0);
}

TEST(when_up_is_never_the_half_open_probe)
{
    clock_set_fake(true, 1700000000000LL);
    struct deps *d = closed_queue(1, 2000);
    deps_report(d, DEP_QUEUE, TRACK_STABLE, RPC_UNAVAILABLE); /* open */
    struct rpc_status st;
    bool sent = true;
    ASSERT_EQ(enqueue(d, &st, &sent), RPC_UNAVAILABLE);
    ASSERT_FALSE(sent);
    ASSERT_TRUE(strstr(st.message, "circuit open") != NULL);
    clock_advance_ms(1000); /* half-open: a plain call would be let through as the probe */
    sent = true;
    ASSERT_EQ(enqueue(d, &st, &sent), RPC_UNAVAILABLE);
    ASSERT_FALSE(sent);
    ASSERT_TRUE(deps_allow(d, DEP_QUEUE, TRACK_STABLE, &st)); /* the probe is still free */
    deps_free(d);
    clock_set_fake(false, 0);
}

TEST(when_up_sends_nothing_on_a_channel_that_cannot_connect)
{
    /* Real clock: gRPC connects. The first call may go out (the channel was idle); once the
     * connection was refused the channel is in a connection failure for its backoff (1 s at
     * first) and a DEPS_WHEN_UP call fails at once without sending. */
    struct deps *d = closed_queue(1000, 10000);
    struct rpc_status st;
    bool sent = true;
    int tries = 0;
    for (; tries < 20 && sent; tries++) {
        int code = enqueue(d, &st, &sent);
        ASSERT_TRUE(code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED);
        if (sent)
            usleep(20 * 1000);
    }
    ASSERT_FALSE(sent);
    ASSERT_TRUE(strstr(st.message, "not connected") != NULL);
    deps_free(d);
}
