/* canary.h -- which chats a canary deployment serves: a list of chat ids, or a percentage of
 * chats chosen by a stable hash of the chat id (the same chat always lands on the same side,
 * across restarts and replicas, so a user's conversation never flips between versions). */
#ifndef ENGBOT_GW_CANARY_H
#define ENGBOT_GW_CANARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct canary_rule {
    const int64_t *chat_ids; /* borrowed; may be NULL when n_chat_ids is 0 */
    size_t n_chat_ids;
    int percent; /* 0..100 */
};

/* A stable bucket 0..9999 for a chat id (splitmix64 finaliser; never changes between versions:
 * changing it would move users between stable and canary). */
unsigned canary_bucket(int64_t chat_id);

/* True when the chat belongs to the canary group: listed, or its bucket falls under percent. */
bool canary_selects(const struct canary_rule *r, int64_t chat_id);

#endif
