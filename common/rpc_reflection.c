/* rpc_reflection.c -- server reflection, grpc.reflection.v1 and v1alpha (wire-identical: one
 * codec, two method paths), so grpcurl and buf curl work with no .proto files at hand.
 *
 * Each request gets one response, in order; errors travel inside the stream as ErrorResponse
 * and the RPC itself ends OK when the client half-closes. File answers carry the requested
 * file first and then all its transitive imports. */
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "rpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RQ(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RS(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

static int send_files(struct rpc_call *c, Grpc__Reflection__V1__ServerReflectionResponse *r,
                      int file)
{
    size_t cap = descset_nfiles();
    const uint8_t **raw = calloc(cap, sizeof *raw);
    size_t *len = calloc(cap, sizeof *len);
    ProtobufCBinaryData *bins = calloc(cap, sizeof *bins);
    size_t n = descset_closure(file, raw, len, cap);
    for (size_t i = 0; i < n; i++)
        bins[i] = (ProtobufCBinaryData){len[i], (uint8_t *)raw[i]};
    Grpc__Reflection__V1__FileDescriptorResponse fdr =
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    fdr.n_file_descriptor_proto = n;
    fdr.file_descriptor_proto = bins;
    r->message_response_case = RS(FILE_DESCRIPTOR_RESPONSE);
    r->file_descriptor_response = &fdr;
    int rc = rpc_call_send(c, &r->base);
    free(raw);
    free(len);
    free(bins);
    return rc;
}

static int send_error(struct rpc_call *c, Grpc__Reflection__V1__ServerReflectionResponse *r,
                      int code, const char *msg)
{
    Grpc__Reflection__V1__ErrorResponse e = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    e.error_code = code;
    e.error_message = (char *)msg;
    r->message_response_case = RS(ERROR_RESPONSE);
    r->error_response = &e;
    return rpc_call_send(c, &r->base);
}

static int on_message(struct rpc_call *c, const ProtobufCMessage *msg, void *svc)
{
    struct rpc_server *s = svc;
    const Grpc__Reflection__V1__ServerReflectionRequest *rq = (const void *)msg;
    Grpc__Reflection__V1__ServerReflectionResponse r =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    r.valid_host = rq->host;
    r.original_request = (Grpc__Reflection__V1__ServerReflectionRequest *)rq;
    int rc = 0;
    char msgbuf[512];
    switch (rq->message_request_case) {
    case RQ(LIST_SERVICES): {
        Grpc__Reflection__V1__ListServiceResponse l =
            GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
        Grpc__Reflection__V1__ServiceResponse *items = calloc(s->nservices, sizeof *items);
        Grpc__Reflection__V1__ServiceResponse **ptrs = calloc(s->nservices, sizeof *ptrs);
        for (size_t i = 0; i < s->nservices; i++) {
            grpc__reflection__v1__service_response__init(&items[i]);
            items[i].name = (char *)s->services[i]->d->name;
            ptrs[i] = &items[i];
        }
        l.n_service = s->nservices;
        l.service = ptrs;
        r.message_response_case = RS(LIST_SERVICES_RESPONSE);
        r.list_services_response = &l;
        rc = rpc_call_send(c, &r.base);
        free(items);
        free(ptrs);
        break;
    }
    case RQ(FILE_BY_FILENAME): {
        int f = descset_find_file(rq->file_by_filename);
        if (f < 0) {
            snprintf(msgbuf, sizeof msgbuf, "file not found: %s", rq->file_by_filename);
            rc = send_error(c, &r, RPC_NOT_FOUND, msgbuf);
        } else {
            rc = send_files(c, &r, f);
        }
        break;
    }
    case RQ(FILE_CONTAINING_SYMBOL): {
        int f = descset_find_symbol(rq->file_containing_symbol);
        if (f < 0) {
            snprintf(msgbuf, sizeof msgbuf, "symbol not found: %s", rq->file_containing_symbol);
            rc = send_error(c, &r, RPC_NOT_FOUND, msgbuf);
        } else {
            rc = send_files(c, &r, f);
        }
        break;
    }
    case RQ(FILE_CONTAINING_EXTENSION):
        snprintf(msgbuf, sizeof msgbuf, "extension not found: %s(%d)",
                 rq->file_containing_extension ? rq->file_containing_extension->containing_type
                                               : "",
                 rq->file_containing_extension ? rq->file_containing_extension->extension_number
                                               : 0);
        rc = send_error(c, &r, RPC_NOT_FOUND, msgbuf);
        break;
    case RQ(ALL_EXTENSION_NUMBERS_OF_TYPE):
        if (!descset_message_exists(rq->all_extension_numbers_of_type)) {
            snprintf(msgbuf, sizeof msgbuf, "type not found: %s",
                     rq->all_extension_numbers_of_type);
            rc = send_error(c, &r, RPC_NOT_FOUND, msgbuf);
        } else {
            Grpc__Reflection__V1__ExtensionNumberResponse e =
                GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
            e.base_type_name = rq->all_extension_numbers_of_type;
            r.message_response_case = RS(ALL_EXTENSION_NUMBERS_RESPONSE);
            r.all_extension_numbers_response = &e;
            rc = rpc_call_send(c, &r.base);
        }
        break;
    default:
        rc = send_error(c, &r, RPC_UNIMPLEMENTED, "request type not implemented");
        break;
    }
    return rc < 0 ? RPC_CANCELLED : RPC_PENDING;
}

static int on_half_close(struct rpc_call *c, void *svc)
{
    return RPC_OK;
}

static const struct rpc_stream_ops ops = {on_message, on_half_close};

static ProtobufCServiceDescriptor v1alpha_desc;

void reflection_register(struct rpc_server *s)
{
    static const struct rpc_method methods[] = {
        {.name = "ServerReflectionInfo", .kind = RPC_KIND_BIDI, .stream = &ops},
    };
    rpc_server_add_service(s, &grpc__reflection__v1__server_reflection__descriptor, methods, 1, s);
    /* v1alpha: the same messages under another package name. */
    v1alpha_desc = grpc__reflection__v1__server_reflection__descriptor;
    v1alpha_desc.name = "grpc.reflection.v1alpha.ServerReflection";
    v1alpha_desc.c_name = "Grpc__Reflection__V1alpha__ServerReflection";
    v1alpha_desc.package = "grpc.reflection.v1alpha";
    rpc_server_add_service(s, &v1alpha_desc, methods, 1, s);
}
