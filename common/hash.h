/* hash.h -- the project's hashes for in-memory hash tables.
 *
 * hash_mix64 is splitmix64's finaliser: it spreads ids that are far from uniform (chat ids,
 * job ids, sequential update ids) over all 64 bits, so any of them can index a table.
 * gateway/canary.c assigns chats to the canary group with it, and that assignment must stay the
 * same across versions and replicas: never change hash_mix64.
 *
 * hash_bytes is FNV-1a over the bytes, started from a seed, then hash_mix64, so that its low
 * bits can index a power-of-two table. Nothing persists or sends it: free to change. */
#ifndef ENGBOT_HASH_H
#define ENGBOT_HASH_H
#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return hash_mix64(h);
}

#endif
