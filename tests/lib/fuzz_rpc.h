/* fuzz_rpc.h -- a libFuzzer driver for RPC handlers: the input is a sequence of calls, each
 *   u8 method index | u16 little-endian length | that many bytes of request
 * run in order against one service (so later calls see the state earlier ones made). The
 * handlers run on test calls (rpc_test_invoke): bytes that do not decode are what the layer
 * would refuse with INVALID_ARGUMENT; every response and streamed message must serialise. */
#ifndef ENGBOT_FUZZ_RPC_H
#define ENGBOT_FUZZ_RPC_H

#include "rpc.h"

#include <string.h>

#define FUZZ_RPC_MAX_CALLS 16

/* Runs the calls in data against the methods (skipping names in `skip`, NULL-terminated).
 * Returns the number of calls run. */
static inline int fuzz_rpc_run(const ProtobufCServiceDescriptor *d, const struct rpc_method *m,
                               size_t n, void *svc, const char *const *skip, const uint8_t *data,
                               size_t size)
{
    int calls = 0;
    while (size >= 3 && calls < FUZZ_RPC_MAX_CALLS) {
        size_t idx = data[0] % n;
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        bool skipped = false;
        for (const char *const *s = skip; s && *s; s++)
            if (strcmp(*s, m[idx].name) == 0)
                skipped = true;
        if (!skipped) {
            char msg[256];
            int code = rpc_test_invoke(d, m, n, svc, m[idx].name, data, len, 5000, msg,
                                       sizeof msg);
            if (code == -1)
                __builtin_trap(); /* a pending handler never finished */
            calls++;
        }
        data += len;
        size -= len;
    }
    return calls;
}

#endif
