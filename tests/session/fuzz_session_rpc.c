/* fuzz_session_rpc.c -- libFuzzer target for SessionService's RPC handlers: sequences of
 * arbitrary requests (see tests/lib/fuzz_rpc.h) against one in-memory store with small limits,
 * so eviction, CAS and state bounds are reached. Backup is left out (it writes files). */
#include "engbot/session/v1/session.pb-c.h"
#include "fuzz_rpc.h"
#include "service.h"
#include "store.h"

static struct session_service ss;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ss.st) {
        struct store_opts so = {.inactivity_ms = 3600000, .max_sessions = 64,
                                .max_state_keys = 8, .max_state_bytes = 512};
        ss.st = store_new(&so);
        ss.lim = (struct session_limits){.inactivity_ms = 3600000, .cleanup_ms = 600000,
                                         .max_sessions = 64, .max_state_keys = 8,
                                         .max_state_bytes = 512, .max_text_bytes = 256};
    }
    size_t n;
    const struct rpc_method *m = session_service_methods(&n);
    static const char *const skip[] = {"Backup", NULL};
    fuzz_rpc_run(&engbot__session__v1__session_service__descriptor, m, n, &ss, skip, data, size);
    return 0;
}
