/* canary.c -- stable assignment of chats to the canary group. */
#include "canary.h"
#include "hash.h"

unsigned canary_bucket(int64_t chat_id)
{
    /* splitmix64 of the chat id: the same on every replica and in every version. */
    return (unsigned)(hash_mix64((uint64_t)chat_id + 0x9E3779B97F4A7C15ull) % 10000u);
}

bool canary_selects(const struct canary_rule *r, int64_t chat_id)
{
    for (size_t i = 0; i < r->n_chat_ids; i++)
        if (r->chat_ids[i] == chat_id)
            return true;
    if (r->percent <= 0)
        return false;
    if (r->percent >= 100)
        return true;
    return canary_bucket(chat_id) < (unsigned)r->percent * 100u;
}
