/* fuzz_form.c -- libFuzzer target for the urlencoded and JSON parameter decoders and the
 * Content-Type dispatch (params.c). The first byte picks the decoder. */
#include "params.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const types[] = {
        "application/x-www-form-urlencoded", "application/json",
        "multipart/form-data; boundary=b", "multipart/form-data; boundary=\"", "text/plain",
    };
    const char *ct = types[data[0] % 5];
    struct params p;
    char err[128];
    params_init(&p);
    params_parse_body(&p, ct, (const char *)data + 1, size - 1, err, sizeof err);
    int64_t v;
    bool b;
    for (size_t i = 0; i < p.n; i++) {
        params_int64(&p, p.v[i].name, &v);
        params_bool(&p, p.v[i].name, &b);
    }
    params_free(&p);
    return 0;
}
