/* wirecheck.c -- a minimal protobuf wire walker: tags, varints and length-delimited fields. */
#include "wirecheck.h"

#include <string.h>

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

static bool walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                 int depth, const char **field)
{
    while (p < end) {
        uint64_t tag, n;
        if (!varint(&p, end, &tag))
            return false;
        switch (tag & 7) {
        case 0:
            if (!varint(&p, end, &n))
                return false;
            break;
        case 1:
            if (end - p < 8)
                return false;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return false;
            p += 4;
            break;
        case 2: {
            if (!varint(&p, end, &n) || n > (uint64_t)(end - p))
                return false;
            const ProtobufCFieldDescriptor *f =
                d ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t)n)) {
                *field = f->name;
                return true;
            }
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8 &&
                walk(f->descriptor, p, p + n, depth + 1, field))
                return true;
            p += n;
            break;
        }
        default:
            return false;
        }
    }
    return false;
}

bool wire_string_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                         const char **field)
{
    *field = NULL;
    return buf && walk(d, buf, buf + len, 0, field);
}
