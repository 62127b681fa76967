/* store.h -- the session table: one session per chat, kept in memory, looked up by chat id,
 * expired after a period of inactivity, evicted least-recently-active first past a maximum
 * count, and changed with compare-and-swap.
 *
 * Thread safety: every function may be called from any thread at any time (after store_new and
 * before store_free). The table is split into stripes, each with its own lock, hash table and
 * activity list; no call holds more than one stripe lock, and none holds one across the whole
 * table (the sweep, listing and snapshots take one stripe at a time, in short batches).
 *
 * Memory: sessions handed out (struct session) are detached copies. Their strings and state
 * array live in one block taken from the caller's allocator (store_alloc_fn; NULL = malloc, free
 * it with session_free). */
#ifndef ENGBOT_SESSION_STORE_H
#define ENGBOT_SESSION_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metric;

/* The store's errors; service.c maps each to a gRPC status, once. */
enum store_err {
    STORE_OK = 0,
    STORE_ENOTFOUND, /* no live session for the chat (absent or past the threshold) */
    STORE_EVERSION,  /* compare-and-swap: expected_version is not the current version */
    STORE_EKEYS,     /* the update would leave more than max_state_keys keys */
    STORE_EBYTES,    /* the update would leave more than max_state_bytes of keys + values */
};

struct session_kv {
    const char *key, *value; /* NUL-terminated */
};

/* A session as handed out (a copy) or passed to the change sink (a view, see below). */
struct session {
    int64_t chat_id, user_id;
    int64_t created_ms, last_active_ms; /* Unix ms */
    int64_t browser_message_id;
    uint64_t version;
    uint32_t page;
    const char *folder_id, *last_search; /* never NULL; "" when empty */
    uint32_t n_state;
    const struct session_kv *state; /* sorted by key */
    void *mem_;                     /* the block holding the above (session_free) */
};

/* Allocator for copies handed out; must not fail (abort instead). */
typedef void *store_alloc_fn(void *ctx, size_t n);
/* Frees a copy made with the default allocator (alloc == NULL). */
void session_free(struct session *s);

/* What a change did, for the change sink (persistence). */
enum store_change {
    STORE_CH_PUT,    /* created or changed: the whole session */
    STORE_CH_TOUCH,  /* last activity (and maybe user id / version) refreshed */
    STORE_CH_DELETE, /* removed: deleted by a call, expired or evicted */
};
enum store_reason { STORE_R_CALL, STORE_R_EXPIRED, STORE_R_EVICTED };

/* The change sink runs under the session's stripe lock, in the order the changes of one chat
 * are made (so a log written from it replays in order). The session is a view, valid only
 * during the call. It must be quick and must not call back into the store. */
typedef void store_sink_fn(void *arg, enum store_change ch, enum store_reason why,
                           const struct session *s);

struct store_opts {
    int64_t inactivity_ms;    /* idle longer than this = expired (the seed's 1 h) */
    uint64_t max_sessions;    /* past it the least recently active session is evicted */
    uint32_t max_state_keys;  /* per session */
    uint32_t max_state_bytes; /* per session: sum of key and value lengths */
    /* Optional counters, incremented as things happen. */
    struct metric *m_created, *m_expired, *m_evicted, *m_deleted;
};

struct store;
struct store *store_new(const struct store_opts *o);
void store_free(struct store *st);
/* Installs the change sink (NULL = none). Takes every stripe lock, so it is safe while calls
 * run; changes made before it are not reported. */
void store_set_sink(struct store *st, store_sink_fn *fn, void *arg);

/* Get without refreshing activity. STORE_ENOTFOUND when absent or expired (an expired session
 * found here is removed and counted as expired). */
enum store_err store_get(struct store *st, int64_t chat_id, struct session *out,
                         store_alloc_fn *alloc, void *ctx);
/* Creates (version 1) or refreshes the session. user_id 0 keeps the stored user; a different
 * non-zero user id is a change (version + 1). Refreshing activity alone is not a change. An
 * expired session is replaced by a new one. *created says which happened. */
enum store_err store_touch(struct store *st, int64_t chat_id, int64_t user_id, struct session *out,
                           store_alloc_fn *alloc, void *ctx, bool *created);

struct store_update {
    int64_t chat_id;
    uint64_t expected_version;
    bool has_user_id, has_folder_id, has_page, has_last_search, has_browser_message_id;
    int64_t user_id, browser_message_id;
    uint32_t page;
    const char *folder_id, *last_search;
    bool clear_state; /* first */
    size_t n_delete;  /* then these keys are removed */
    const char *const *delete_keys;
    size_t n_set; /* then these are added or replaced */
    const struct session_kv *set;
};
/* Details of a refused update. */
struct store_fail {
    uint64_t current_version; /* STORE_EVERSION */
    uint64_t keys, bytes;     /* STORE_EKEYS / STORE_EBYTES: what the state would have been */
};
/* Compare-and-swap update: applies u if expected_version matches, increments the version and
 * refreshes last activity. On STORE_EVERSION/EKEYS/EBYTES nothing changes and fail says why. */
enum store_err store_update(struct store *st, const struct store_update *u, struct session *out,
                            store_alloc_fn *alloc, void *ctx, struct store_fail *fail);
/* Removes the session. STORE_ENOTFOUND when absent or expired (an expired one is removed). */
enum store_err store_delete(struct store *st, int64_t chat_id);

/* Removes every session idle longer than the threshold at now_ms, one stripe at a time in
 * batches. Returns how many. */
uint64_t store_sweep(struct store *st, int64_t now_ms);

/* One page of live sessions, most recently active first (ties: larger chat id first), starting
 * after the cursor (has_cursor false = from the start), only those idle at least min_idle_ms.
 * Fills out[0..*n) (copies) and, when more follow, *next_cursor. O(sessions) per page. */
struct store_cursor {
    int64_t last_active_ms, chat_id;
};
void store_list(struct store *st, size_t page_size, const struct store_cursor *after,
                int64_t min_idle_ms, struct session *out, size_t *n, bool *more,
                struct store_cursor *next, store_alloc_fn *alloc, void *ctx);

struct store_stats {
    uint64_t active, created, expired, evicted, deleted;
};
void store_stats(struct store *st, struct store_stats *s);
uint64_t store_count(struct store *st);

/* ---- snapshots and loading (persist.c) ------------------------------------------------------ */
/* Calls fn for every session of stripe i (0 <= i < store_stripes()) under that stripe's lock;
 * the session is a view valid during the call. Expired sessions are included. */
unsigned store_stripes(void);
void store_scan_stripe(struct store *st, unsigned i, void (*fn)(void *arg, const struct session *s),
                       void *arg);
/* Loading (before serving; the sink is not called, nothing is counted): insert or replace a
 * whole session (state limits are not applied: data on disk is never dropped for a setting);
 * apply a touch record (ignored when the chat has no session); remove. */
void store_load_put(struct store *st, const struct session *s);
void store_load_touch(struct store *st, int64_t chat_id, int64_t user_id, int64_t last_active_ms,
                      uint64_t version);
void store_load_delete(struct store *st, int64_t chat_id);
/* After loading: orders every stripe's activity list by last activity, then evicts past
 * max_sessions (counted) and drops expired sessions at now_ms (counted). */
void store_load_done(struct store *st, int64_t now_ms);
/* Removes everything (no sink call, nothing counted). */
void store_clear(struct store *st);

#endif
