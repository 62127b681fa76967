/* client_check.c -- drives engbot's gRPC client (common/rpc_client.c) against the interop
 * server for tests/common/test_grpc_layer.py. Prints one line of key=value results.
 *   client-check unary|trailers|deadline|stream ADDR
 *   client-check wfr ADDR TIMEOUT_MS 0|1        (wait-for-ready off/on)
 *   client-check rr TARGET CALLS                (round robin over every resolved address) */
#include "clock.h"
#include "grpc/testing/test.pb-c.h"
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int empty_call(struct rpc_channel *ch, int64_t timeout, unsigned flags, struct rpc_status *st)
{
    Grpc__Testing__Empty rq = GRPC__TESTING__EMPTY__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = rpc_unary(ch, "/grpc.testing.TestService/EmptyCall", &rq.base,
                       &grpc__testing__empty__descriptor, &resp, timeout, flags, NULL, 0, st);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[1];
    struct rpc_status st;
    int64_t t0 = clock_mono_ms();
    if (strcmp(mode, "unary") == 0) {
        struct rpc_channel *ch = rpc_channel_new(argv[2], NULL);
        int rc = empty_call(ch, 5000, RPC_CALL_WAIT_FOR_READY, &st);
        printf("code=%d\n", rc);
        rpc_channel_free(ch);
    } else if (strcmp(mode, "trailers") == 0) {
        struct rpc_channel *ch = rpc_channel_new(argv[2], NULL);
        Grpc__Testing__SimpleRequest rq = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
        es.code = 5;
        es.message = "no_such_thing";
        rq.response_status = &es;
        struct rpc_md md[] = {{"x-grpc-test-echo-trailing-bin", "abc"}};
        ProtobufCMessage *resp = NULL;
        int rc = rpc_unary(ch, "/grpc.testing.TestService/UnaryCall", &rq.base,
                           &grpc__testing__simple_response__descriptor, &resp, 5000, 0, md, 1, &st);
        const char *t = rpc_status_trailer(&st, "x-grpc-test-echo-trailing-bin");
        printf("code=%d message=%s trailer=%s\n", rc, st.message, t ? t : "(none)");
        rpc_channel_free(ch);
    } else if (strcmp(mode, "deadline") == 0 || strcmp(mode, "stream") == 0) {
        bool dl = strcmp(mode, "deadline") == 0;
        struct rpc_channel *ch = rpc_channel_new(argv[2], NULL);
        Grpc__Testing__StreamingOutputCallRequest rq =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
        Grpc__Testing__ResponseParameters p[3], *pp[3];
        int sizes[3] = {3, 5, 7};
        for (int i = 0; i < 3; i++) {
            grpc__testing__response_parameters__init(&p[i]);
            p[i].size = sizes[i];
            p[i].interval_us = dl ? 2000000 : 0;
            pp[i] = &p[i];
        }
        rq.n_response_parameters = dl ? 1 : 3;
        rq.response_parameters = pp;
        struct rpc_reader *r = rpc_reader_open(ch, "/grpc.testing.TestService/StreamingOutputCall",
                                               &rq.base, dl ? 300 : 5000, 0, &st);
        ProtobufCMessage *m;
        int n = 0, total = 0, rc;
        while ((rc = rpc_reader_next(r, &grpc__testing__streaming_output_call_response__descriptor,
                                     &m, &st)) == 1) {
            Grpc__Testing__StreamingOutputCallResponse *sr = (void *)m;
            total += (int)sr->payload->body.len;
            n++;
            protobuf_c_message_free_unpacked(m, NULL);
        }
        printf("code=%d messages=%d bytes=%d ms=%lld\n", st.code, n, total,
               (long long)(clock_mono_ms() - t0));
        rpc_reader_close(r);
        rpc_channel_free(ch);
    } else if (strcmp(mode, "wfr") == 0 && argc >= 5) {
        struct rpc_client_opts o = {.connect_backoff_max_ms = 200};
        struct rpc_channel *ch = rpc_channel_new(argv[2], &o);
        int rc = empty_call(ch, atoi(argv[3]), atoi(argv[4]) ? RPC_CALL_WAIT_FOR_READY : 0, &st);
        printf("code=%d ms=%lld\n", rc, (long long)(clock_mono_ms() - t0));
        rpc_channel_free(ch);
    } else if (strcmp(mode, "rr") == 0 && argc >= 4) {
        struct rpc_client_opts o = {.round_robin = true};
        struct rpc_channel *ch = rpc_channel_new(argv[2], &o);
        int ok = 0, n = atoi(argv[3]);
        for (int i = 0; i < n; i++)
            ok += empty_call(ch, 5000, RPC_CALL_WAIT_FOR_READY, &st) == RPC_OK;
        printf("ok=%d\n", ok);
        rpc_channel_free(ch);
    } else {
        return 2;
    }
    return 0;
}
