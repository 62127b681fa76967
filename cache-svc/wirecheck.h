/* wirecheck.h -- finds NUL bytes inside the string fields of an encoded protobuf message.
 * protobuf-c unpacks a string into a NUL-terminated char *, so "a.pdf\0../../etc/passwd"
 * arrives in a handler as "a.pdf": the handler would act on something other than what the
 * client sent. The edge refuses such requests by scanning the wire bytes. */
#ifndef ENGBOT_CACHE_WIRECHECK_H
#define ENGBOT_CACHE_WIRECHECK_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when a string field of d (or of a nested message, up to 8 deep) holds a NUL byte;
 * field is then its name. Malformed input answers false (protobuf-c judged it already). */
bool wire_string_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                         const char **field);

#endif
