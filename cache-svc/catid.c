/* catid.c -- SipHash-2-4 and the base32 form of catalogue ids. */
#include "catid.h"

#include <string.h>

/* The fixed key of id scheme v1. Changing it changes every id: never do that in place. */
static const uint8_t CATID_KEY[16] = "engbot-cache-v1!";
static const char ALPHABET[] = "0123456789abcdefghjkmnpqrstvwxyz";

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t siphash24(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t catid_hash(const char *path, size_t len, uint32_t salt)
{
    uint8_t key[16];
    memcpy(key, CATID_KEY, sizeof key);
    for (int i = 0; i < 4; i++)
        key[i] ^= (uint8_t)(salt >> (8 * i));
    return siphash24(key, path, len) & ((1ULL << CATID_BITS) - 1);
}

void catid_format(uint64_t hid, char *out)
{
    for (int i = CATID_LEN - 1; i >= 0; i--) {
        out[i] = ALPHABET[hid & 31];
        hid >>= 5;
    }
    out[CATID_LEN] = '\0';
}

bool catid_parse(const char *s, size_t len, uint64_t *hid)
{
    if (len != CATID_LEN)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        const char *p = c ? strchr(ALPHABET, c) : NULL;
        if (!p)
            return false;
        v = (v << 5) | (uint64_t)(p - ALPHABET);
    }
    *hid = v;
    return true;
}
