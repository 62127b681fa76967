/* fuzz_multipart.c -- libFuzzer target for the multipart/form-data decoder (params.c). The
 * first line of the input is the boundary, the rest the body. */
#include "params.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    if (!nl || nl - s > 75)
        return 0;
    char b[80];
    memcpy(b, s, (size_t)(nl - s));
    b[nl - s] = '\0';
    if (!b[0] || strlen(b) != (size_t)(nl - s))
        return 0;
    struct params p;
    char err[128];
    params_init(&p);
    params_parse_multipart(&p, nl + 1, size - (size_t)(nl - s) - 1, b, err, sizeof err);
    for (size_t i = 0; i < p.n; i++) /* touch every byte the decoder claims to have */
        if (p.v[i].len && p.v[i].value[p.v[i].len] != '\0')
            __builtin_trap();
    params_free(&p);
    return 0;
}
