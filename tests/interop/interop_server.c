/* interop_server.c -- grpc.testing.TestService on engbot's gRPC layer, following the gRPC
 * interop test descriptions (doc/interop-test-descriptions.md), so an independent client
 * (@grpc/grpc-js, tests/interop/interop_client.js) can check the layer case by case.
 * Same settings conventions as the services (svc.h). */
#include "grpc/testing/test.pb-c.h"
#include "log.h"
#include "svc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ECHO_INITIAL  "x-grpc-test-echo-initial"
#define ECHO_TRAILING "x-grpc-test-echo-trailing-bin"

static void echo_metadata(struct rpc_call *c)
{
    size_t n;
    const void *v = rpc_call_metadata_bin(c, ECHO_INITIAL, &n);
    if (v)
        rpc_call_add_initial_md(c, ECHO_INITIAL, v, n);
    v = rpc_call_metadata_bin(c, ECHO_TRAILING, &n);
    if (v)
        rpc_call_add_trailer_bin(c, ECHO_TRAILING, v, n);
}

static int echo_status(struct rpc_call *c, const Grpc__Testing__EchoStatus *st)
{
    if (!st || st->code == 0)
        return RPC_OK;
    return rpc_call_errorf(c, st->code, "%s", st->message);
}

static void sleep_us(int32_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* A payload of n zero bytes, owned by the caller (free body.data). */
static Grpc__Testing__Payload make_payload(int32_t n)
{
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    p.body.len = n > 0 ? (size_t)n : 0;
    p.body.data = calloc(p.body.len ? p.body.len : 1, 1);
    return p;
}

static int empty_call(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                      void *svc)
{
    echo_metadata(c);
    return RPC_OK;
}

static int unary_call(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                      void *svc)
{
    const Grpc__Testing__SimpleRequest *rq = (const void *)req;
    Grpc__Testing__SimpleResponse *rs = (void *)resp;
    echo_metadata(c);
    if (rq->response_size < 0 || rq->response_size > 64 * 1024 * 1024)
        return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "response_size %d out of range",
                               rq->response_size);
    Grpc__Testing__Payload *p = rpc_call_alloc(c, sizeof *p);
    grpc__testing__payload__init(p);
    p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    p->body.len = (size_t)rq->response_size;
    p->body.data = rpc_call_alloc(c, p->body.len ? p->body.len : 1);
    rs->payload = p;
    return echo_status(c, rq->response_status);
}

/* Sends the responses one request asks for; returns a status to end with, or RPC_PENDING. */
static int send_responses(struct rpc_call *c, const Grpc__Testing__StreamingOutputCallRequest *rq)
{
    for (size_t i = 0; i < rq->n_response_parameters; i++) {
        const Grpc__Testing__ResponseParameters *rp = rq->response_parameters[i];
        if (rp->size < 0 || rp->size > 64 * 1024 * 1024)
            return rpc_call_errorf(c, RPC_INVALID_ARGUMENT, "size %d out of range", rp->size);
        sleep_us(rp->interval_us);
        Grpc__Testing__StreamingOutputCallResponse r =
            GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload p = make_payload(rp->size);
        r.payload = &p;
        int rc = rpc_call_send_wait(c, &r.base, 8);
        free(p.body.data);
        if (rc < 0)
            return RPC_CANCELLED;
    }
    if (rq->response_status && rq->response_status->code)
        return echo_status(c, rq->response_status);
    return RPC_PENDING;
}

static int streaming_output(struct rpc_call *c, const ProtobufCMessage *req, void *svc)
{
    echo_metadata(c);
    int code = send_responses(c, (const void *)req);
    return code == RPC_PENDING ? RPC_OK : code;
}

struct input_state {
    int64_t total;
};

static int input_msg(struct rpc_call *c, const ProtobufCMessage *msg, void *svc)
{
    const Grpc__Testing__StreamingInputCallRequest *rq = (const void *)msg;
    struct input_state *st = rpc_call_state(c);
    if (!st) {
        st = calloc(1, sizeof *st);
        rpc_call_set_state(c, st, free);
    }
    if (rq->payload)
        st->total += (int64_t)rq->payload->body.len;
    return RPC_PENDING;
}

static int input_done(struct rpc_call *c, void *svc)
{
    struct input_state *st = rpc_call_state(c);
    Grpc__Testing__StreamingInputCallResponse r =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    r.aggregated_payload_size = st ? (int32_t)st->total : 0;
    echo_metadata(c);
    rpc_call_send(c, &r.base);
    return RPC_OK;
}

static int duplex_msg(struct rpc_call *c, const ProtobufCMessage *msg, void *svc)
{
    if (!rpc_call_state(c)) {
        echo_metadata(c);
        rpc_call_set_state(c, (void *)1, NULL);
    }
    return send_responses(c, (const void *)msg);
}

static int duplex_done(struct rpc_call *c, void *svc)
{
    if (!rpc_call_state(c))
        echo_metadata(c);
    return RPC_OK;
}

/* HalfDuplexCall: keep every request, answer them all after the half-close. */
struct half_state {
    ProtobufCBinaryData *packed;
    size_t n;
};

static void half_free(void *p)
{
    struct half_state *st = p;
    for (size_t i = 0; i < st->n; i++)
        free(st->packed[i].data);
    free(st->packed);
    free(st);
}

static int half_msg(struct rpc_call *c, const ProtobufCMessage *msg, void *svc)
{
    struct half_state *st = rpc_call_state(c);
    if (!st) {
        st = calloc(1, sizeof *st);
        rpc_call_set_state(c, st, half_free);
    }
    if (st->n >= 1000)
        return rpc_call_errorf(c, RPC_RESOURCE_EXHAUSTED, "more than 1000 buffered requests");
    st->packed = realloc(st->packed, (st->n + 1) * sizeof *st->packed);
    size_t len = protobuf_c_message_get_packed_size(msg);
    st->packed[st->n].data = malloc(len ? len : 1);
    st->packed[st->n].len = protobuf_c_message_pack(msg, st->packed[st->n].data);
    st->n++;
    return RPC_PENDING;
}

static int half_done(struct rpc_call *c, void *svc)
{
    struct half_state *st = rpc_call_state(c);
    for (size_t i = 0; st && i < st->n; i++) {
        Grpc__Testing__StreamingOutputCallRequest *rq =
            grpc__testing__streaming_output_call_request__unpack(NULL, st->packed[i].len,
                                                                 st->packed[i].data);
        int code = send_responses(c, rq);
        grpc__testing__streaming_output_call_request__free_unpacked(rq, NULL);
        if (code != RPC_PENDING)
            return code;
    }
    return RPC_OK;
}

static const struct rpc_stream_ops input_ops = {input_msg, input_done};
static const struct rpc_stream_ops duplex_ops = {duplex_msg, duplex_done};
static const struct rpc_stream_ops half_ops = {half_msg, half_done};

int main(int argc, char **argv)
{
    struct svc_common common;
    const struct conf_opt *const tables[] = {svc_common_opts(&common, "127.0.0.1:50060",
                                                             "127.0.0.1:9160"),
                                             NULL};
    conf_load(tables, argc, argv, "interop-server",
              "grpc.testing.TestService for interop tests of engbot's gRPC layer");
    svc_init("interop-server", &common);
    struct svc *s = svc_new("interop-server", &common);
    static const struct rpc_method methods[] = {
        RPC_UNARY("EmptyCall", empty_call, 0),
        RPC_UNARY("UnaryCall", unary_call, 0),
        RPC_UNARY("CacheableUnaryCall", unary_call, 0),
        RPC_SSTREAM("StreamingOutputCall", streaming_output, RPC_F_BLOCKING),
        {.name = "StreamingInputCall", .kind = RPC_KIND_CLIENT_STREAM, .stream = &input_ops},
        {.name = "FullDuplexCall", .kind = RPC_KIND_BIDI, .flags = RPC_F_BLOCKING,
         .stream = &duplex_ops},
        {.name = "HalfDuplexCall", .kind = RPC_KIND_BIDI, .flags = RPC_F_BLOCKING,
         .stream = &half_ops},
    };
    rpc_server_add_service(svc_rpc(s), &grpc__testing__test_service__descriptor, methods,
                           sizeof methods / sizeof methods[0], NULL);
    svc_start(s);
    svc_set_ready(s, true, NULL);
    svc_wait(s);
    svc_drain(s);
    svc_free(s);
    conf_free(tables);
    LOG_INFO("stopped");
    return 0;
}
