/* store.c -- the session table: striped hash map, per-stripe activity lists, expiry, eviction
 * and compare-and-swap.
 *
 * DESIGN: the table is NSTRIPES independent stripes chosen by a hash of the chat id. Each
 * stripe has a mutex, a chained hash table and a doubly linked list ordered by last activity
 * (head = most recent), so within a stripe the oldest session is always the tail:
 *  - expiry sweep: pop tails while they are expired, 256 at a time per lock hold;
 *  - eviction past max_sessions: every stripe publishes its tail's last activity in an atomic,
 *    the evictor picks the stripe with the oldest tail (NSTRIPES reads, independent of the
 *    number of sessions: O(1)), locks it, re-checks and removes the tail;
 *  - no call holds two stripe locks, so there is no lock order to get wrong.
 * A session record is 88 bytes (96 with malloc's header) plus one allocation for its strings
 * and state ("the blob"), made only when one of them is non-empty:
 *   blob := str(folder_id) str(last_search) { str(key) str(value) }   (keys sorted)
 *   str  := varint(length) bytes NUL
 * The NULs let copies hand out C strings pointing into a copied blob without re-encoding. */
#include "store.h"
#include "clock.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NSTRIPES    64
#define SWEEP_BATCH 256 /* sessions removed per stripe-lock hold */
#define STACK_KV    64

struct rec {
    struct rec *hnext;       /* hash chain */
    struct rec *prev, *next; /* activity list: prev = more recent */
    int64_t chat_id, user_id, created_ms, last_ms, browser_message_id;
    uint64_t version;
    uint32_t page, blob_len;
    uint8_t *blob; /* NULL when folder, search and state are all empty */
};

struct stripe {
    pthread_mutex_t mu;
    struct rec **buckets;
    size_t nbuckets, n;
    struct rec *head, *tail;
    _Atomic int64_t tail_ms; /* tail's last activity, INT64_MAX when empty */
} __attribute__((aligned(64)));

struct store {
    struct store_opts o;
    struct stripe s[NSTRIPES];
    _Atomic uint64_t count, created, expired, evicted, deleted;
    store_sink_fn *sink;
    void *sink_arg;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static uint64_t mix(int64_t key)
{
    uint64_t x = (uint64_t)key + 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static struct stripe *stripe_of(struct store *st, int64_t chat, uint64_t *h)
{
    *h = mix(chat);
    return &st->s[*h >> 58]; /* top 6 bits: NSTRIPES == 64 */
}

/* ---- the blob ---------------------------------------------------------------------------------
 */
static size_t varint_len(size_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
    size_t v = len;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    memcpy(p, s, len);
    p[len] = '\0';
    return p + len + 1;
}

static const uint8_t *get_str(const uint8_t *p, const char **s)
{
    size_t v = 0;
    int shift = 0;
    while (*p & 0x80) {
        v |= (size_t)(*p++ & 0x7f) << shift;
        shift += 7;
    }
    v |= (size_t)*p++ << shift;
    *s = (const char *)p;
    return p + v + 1;
}

/* Parses a blob; kv may be NULL to only count. Returns the number of state entries. */
static uint32_t blob_parse(const uint8_t *b, uint32_t len, const char **folder, const char **search,
                           struct session_kv *kv)
{
    static const char empty[] = "";
    if (!b) {
        *folder = *search = empty;
        return 0;
    }
    const uint8_t *p = b, *end = b + len;
    uint32_t n = 0;
    p = get_str(p, folder);
    p = get_str(p, search);
    while (p < end) {
        const char *k, *v;
        p = get_str(p, &k);
        p = get_str(p, &v);
        if (kv)
            kv[n] = (struct session_kv){k, v};
        n++;
    }
    return n;
}

static uint8_t *blob_build(const char *folder, const char *search, const struct session_kv *kv,
                           uint32_t n, uint32_t *len_out)
{
    size_t fl = strlen(folder), sl = strlen(search);
    if (!fl && !sl && !n) {
        *len_out = 0;
        return NULL;
    }
    size_t len = varint_len(fl) + fl + 1 + varint_len(sl) + sl + 1;
    for (uint32_t i = 0; i < n; i++) {
        size_t k = strlen(kv[i].key), v = strlen(kv[i].value);
        len += varint_len(k) + k + 1 + varint_len(v) + v + 1;
    }
    uint8_t *b = xmalloc(len), *p = b;
    p = put_str(p, folder, fl);
    p = put_str(p, search, sl);
    for (uint32_t i = 0; i < n; i++) {
        p = put_str(p, kv[i].key, strlen(kv[i].key));
        p = put_str(p, kv[i].value, strlen(kv[i].value));
    }
    *len_out = (uint32_t)len;
    return b;
}

static void fill_fixed(const struct rec *r, struct session *s)
{
    s->chat_id = r->chat_id;
    s->user_id = r->user_id;
    s->created_ms = r->created_ms;
    s->last_active_ms = r->last_ms;
    s->browser_message_id = r->browser_message_id;
    s->version = r->version;
    s->page = r->page;
    s->mem_ = NULL;
}

static void *default_alloc(void *ctx, size_t n)
{
    return xmalloc(n);
}

void session_free(struct session *s)
{
    if (s) {
        free(s->mem_);
        s->mem_ = NULL;
    }
}

/* A detached copy: one block holding the state array, then the blob. */
static void copy_out(const struct rec *r, struct session *out, store_alloc_fn *alloc, void *ctx)
{
    const char *f, *q;
    uint32_t n = blob_parse(r->blob, r->blob_len, &f, &q, NULL);
    size_t kvb = n * sizeof(struct session_kv);
    uint8_t *mem = (alloc ? alloc : default_alloc)(ctx, kvb + r->blob_len + 1);
    struct session_kv *kv = (struct session_kv *)mem;
    uint8_t *blob = NULL;
    if (r->blob) {
        blob = mem + kvb;
        memcpy(blob, r->blob, r->blob_len);
    }
    fill_fixed(r, out);
    out->n_state = blob_parse(blob, r->blob_len, &out->folder_id, &out->last_search, kv);
    out->state = kv;
    out->mem_ = alloc ? NULL : mem;
}

/* Runs the sink with a view of r (under the stripe lock). */
static void notify(struct store *st, enum store_change ch, enum store_reason why,
                   const struct rec *r)
{
    if (!st->sink)
        return;
    struct session_kv stack_kv[STACK_KV], *kv = stack_kv;
    struct session v;
    const char *f, *q;
    uint32_t n = blob_parse(r->blob, r->blob_len, &f, &q, NULL);
    if (n > STACK_KV)
        kv = xmalloc(n * sizeof *kv);
    fill_fixed(r, &v);
    v.n_state = blob_parse(r->blob, r->blob_len, &v.folder_id, &v.last_search, kv);
    v.state = kv;
    st->sink(st->sink_arg, ch, why, &v);
    if (kv != stack_kv)
        free(kv);
}

/* ---- stripes ----------------------------------------------------------------------------------
 */
static void publish_tail(struct stripe *s)
{
    atomic_store_explicit(&s->tail_ms, s->tail ? s->tail->last_ms : INT64_MAX,
                          memory_order_relaxed);
}

static struct rec *find(struct stripe *s, int64_t chat, uint64_t h)
{
    for (struct rec *r = s->buckets[h & (s->nbuckets - 1)]; r; r = r->hnext)
        if (r->chat_id == chat)
            return r;
    return NULL;
}

static void list_unlink(struct stripe *s, struct rec *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        s->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        s->tail = r->prev;
    r->prev = r->next = NULL;
}

static void list_push_head(struct stripe *s, struct rec *r)
{
    r->prev = NULL;
    r->next = s->head;
    if (s->head)
        s->head->prev = r;
    s->head = r;
    if (!s->tail)
        s->tail = r;
}

static void grow(struct stripe *s)
{
    size_t nb = s->nbuckets * 2;
    struct rec **b = calloc(nb, sizeof *b);
    if (!b)
        abort();
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct rec *r = s->buckets[i];
        while (r) {
            struct rec *next = r->hnext;
            size_t j = mix(r->chat_id) & (nb - 1);
            r->hnext = b[j];
            b[j] = r;
            r = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static void insert(struct store *st, struct stripe *s, struct rec *r, uint64_t h)
{
    if (s->n >= s->nbuckets) {
        grow(s);
    }
    size_t j = h & (s->nbuckets - 1);
    r->hnext = s->buckets[j];
    s->buckets[j] = r;
    s->n++;
    list_push_head(s, r);
    atomic_fetch_add_explicit(&st->count, 1, memory_order_relaxed);
}

static void rec_free(struct rec *r)
{
    free(r->blob);
    free(r);
}

/* Unlinks r from its stripe and frees it. */
static void remove_rec(struct store *st, struct stripe *s, struct rec *r)
{
    struct rec **pp = &s->buckets[mix(r->chat_id) & (s->nbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    list_unlink(s, r);
    s->n--;
    atomic_fetch_sub_explicit(&st->count, 1, memory_order_relaxed);
    rec_free(r);
}

static void count(struct store *st, _Atomic uint64_t *c, struct metric *m)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    if (m)
        metric_inc(m);
}

static bool expired(const struct store *st, const struct rec *r, int64_t now)
{
    return now - r->last_ms > st->o.inactivity_ms;
}

/* Removes r as expired (reported and counted). */
static void expire(struct store *st, struct stripe *s, struct rec *r)
{
    notify(st, STORE_CH_DELETE, STORE_R_EXPIRED, r);
    count(st, &st->expired, st->o.m_expired);
    remove_rec(st, s, r);
}

/* ---- public ------------------------------------------------------------------------------------
 */
struct store *store_new(const struct store_opts *o)
{
    struct store *st;
    if (posix_memalign((void **)&st, 64, sizeof *st) != 0)
        abort();
    memset(st, 0, sizeof *st);
    st->o = *o;
    for (int i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &st->s[i];
        pthread_mutex_init(&s->mu, NULL);
        s->nbuckets = 64;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        if (!s->buckets)
            abort();
        atomic_init(&s->tail_ms, INT64_MAX);
    }
    return st;
}

void store_clear(struct store *st)
{
    for (int i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &st->s[i];
        pthread_mutex_lock(&s->mu);
        struct rec *r = s->head;
        while (r) {
            struct rec *next = r->next;
            rec_free(r);
            r = next;
        }
        memset(s->buckets, 0, s->nbuckets * sizeof *s->buckets);
        s->head = s->tail = NULL;
        atomic_fetch_sub_explicit(&st->count, s->n, memory_order_relaxed);
        s->n = 0;
        publish_tail(s);
        pthread_mutex_unlock(&s->mu);
    }
}

void store_free(struct store *st)
{
    if (!st)
        return;
    store_clear(st);
    for (int i = 0; i < NSTRIPES; i++) {
        free(st->s[i].buckets);
        pthread_mutex_destroy(&st->s[i].mu);
    }
    free(st);
}

void store_set_sink(struct store *st, store_sink_fn *fn, void *arg)
{
    for (int i = 0; i < NSTRIPES; i++)
        pthread_mutex_lock(&st->s[i].mu);
    st->sink = fn;
    st->sink_arg = arg;
    for (int i = NSTRIPES - 1; i >= 0; i--)
        pthread_mutex_unlock(&st->s[i].mu);
}

enum store_err store_get(struct store *st, int64_t chat_id, struct session *out,
                         store_alloc_fn *alloc, void *ctx)
{
    uint64_t h;
    struct stripe *s = stripe_of(st, chat_id, &h);
    int64_t now = clock_now_ms();
    enum store_err rc = STORE_ENOTFOUND;
    pthread_mutex_lock(&s->mu);
    struct rec *r = find(s, chat_id, h);
    if (r && expired(st, r, now)) {
        expire(st, s, r);
        publish_tail(s);
    } else if (r) {
        copy_out(r, out, alloc, ctx);
        rc = STORE_OK;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Evicts least recently active sessions while the table is over max_sessions. */
static void evict_excess(struct store *st)
{
    while (atomic_load_explicit(&st->count, memory_order_relaxed) > st->o.max_sessions) {
        int best = -1;
        int64_t best_ms = INT64_MAX;
        for (int i = 0; i < NSTRIPES; i++) {
            int64_t t = atomic_load_explicit(&st->s[i].tail_ms, memory_order_relaxed);
            if (t < best_ms) {
                best_ms = t;
                best = i;
            }
        }
        if (best < 0)
            return;
        struct stripe *s = &st->s[best];
        pthread_mutex_lock(&s->mu);
        /* The tail may have moved since it was published; a newer tail means another stripe
         * may now hold the oldest session: look again. */
        if (s->tail && s->tail->last_ms <= best_ms &&
            atomic_load_explicit(&st->count, memory_order_relaxed) > st->o.max_sessions) {
            notify(st, STORE_CH_DELETE, STORE_R_EVICTED, s->tail);
            count(st, &st->evicted, st->o.m_evicted);
            remove_rec(st, s, s->tail);
        }
        publish_tail(s);
        pthread_mutex_unlock(&s->mu);
    }
}

enum store_err store_touch(struct store *st, int64_t chat_id, int64_t user_id, struct session *out,
                           store_alloc_fn *alloc, void *ctx, bool *created)
{
    uint64_t h;
    struct stripe *s = stripe_of(st, chat_id, &h);
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&s->mu);
    struct rec *r = find(s, chat_id, h);
    if (r && expired(st, r, now)) {
        expire(st, s, r);
        r = NULL;
    }
    *created = r == NULL;
    if (!r) {
        r = xmalloc(sizeof *r);
        *r = (struct rec){.chat_id = chat_id,
                          .user_id = user_id,
                          .created_ms = now,
                          .last_ms = now,
                          .version = 1};
        insert(st, s, r, h);
        count(st, &st->created, st->o.m_created);
        notify(st, STORE_CH_PUT, STORE_R_CALL, r);
    } else {
        r->last_ms = now;
        if (user_id && user_id != r->user_id) {
            r->user_id = user_id;
            r->version++;
        }
        list_unlink(s, r);
        list_push_head(s, r);
        notify(st, STORE_CH_TOUCH, STORE_R_CALL, r);
    }
    copy_out(r, out, alloc, ctx);
    publish_tail(s);
    pthread_mutex_unlock(&s->mu);
    if (*created)
        evict_excess(st);
    return STORE_OK;
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct session_kv *)a)->key, ((const struct session_kv *)b)->key);
}

enum store_err store_update(struct store *st, const struct store_update *u, struct session *out,
                            store_alloc_fn *alloc, void *ctx, struct store_fail *fail)
{
    uint64_t h;
    struct stripe *s = stripe_of(st, u->chat_id, &h);
    int64_t now = clock_now_ms();
    enum store_err rc = STORE_OK;
    struct session_kv stack_kv[STACK_KV], *kv = stack_kv;
    memset(fail, 0, sizeof *fail);
    pthread_mutex_lock(&s->mu);
    struct rec *r = find(s, u->chat_id, h);
    if (r && expired(st, r, now)) {
        expire(st, s, r);
        r = NULL;
    }
    if (!r) {
        rc = STORE_ENOTFOUND;
        goto out;
    }
    if (r->version != u->expected_version) {
        fail->current_version = r->version;
        rc = STORE_EVERSION;
        goto out;
    }
    const char *folder, *search;
    uint32_t n0 = blob_parse(r->blob, r->blob_len, &folder, &search, NULL);
    size_t cap = (u->clear_state ? 0 : n0) + u->n_set;
    if (cap > STACK_KV)
        kv = xmalloc(cap * sizeof *kv);
    uint32_t n = blob_parse(r->blob, r->blob_len, &folder, &search, kv);
    if (u->clear_state)
        n = 0;
    for (size_t d = 0; d < u->n_delete; d++) {
        for (uint32_t i = 0; i < n; i++) {
            if (strcmp(kv[i].key, u->delete_keys[d]) == 0) {
                kv[i] = kv[--n];
                break;
            }
        }
    }
    for (size_t a = 0; a < u->n_set; a++) {
        uint32_t i = 0;
        while (i < n && strcmp(kv[i].key, u->set[a].key) != 0)
            i++;
        kv[i] = u->set[a];
        if (i == n)
            n++;
    }
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += strlen(kv[i].key) + strlen(kv[i].value);
    fail->keys = n;
    fail->bytes = bytes;
    if (n > st->o.max_state_keys) {
        rc = STORE_EKEYS;
        goto out;
    }
    if (bytes > st->o.max_state_bytes) {
        rc = STORE_EBYTES;
        goto out;
    }
    qsort(kv, n, sizeof *kv, kv_cmp);
    uint32_t blen;
    uint8_t *blob = blob_build(u->has_folder_id ? u->folder_id : folder,
                               u->has_last_search ? u->last_search : search, kv, n, &blen);
    free(r->blob);
    r->blob = blob;
    r->blob_len = blen;
    if (u->has_user_id)
        r->user_id = u->user_id;
    if (u->has_page)
        r->page = u->page;
    if (u->has_browser_message_id)
        r->browser_message_id = u->browser_message_id;
    r->version++;
    r->last_ms = now;
    list_unlink(s, r);
    list_push_head(s, r);
    notify(st, STORE_CH_PUT, STORE_R_CALL, r);
    copy_out(r, out, alloc, ctx);
out:
    publish_tail(s);
    pthread_mutex_unlock(&s->mu);
    if (kv != stack_kv)
        free(kv);
    return rc;
}

enum store_err store_delete(struct store *st, int64_t chat_id)
{
    uint64_t h;
    struct stripe *s = stripe_of(st, chat_id, &h);
    int64_t now = clock_now_ms();
    enum store_err rc = STORE_ENOTFOUND;
    pthread_mutex_lock(&s->mu);
    struct rec *r = find(s, chat_id, h);
    if (r && expired(st, r, now)) {
        expire(st, s, r);
    } else if (r) {
        notify(st, STORE_CH_DELETE, STORE_R_CALL, r);
        count(st, &st->deleted, st->o.m_deleted);
        remove_rec(st, s, r);
        rc = STORE_OK;
    }
    publish_tail(s);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

uint64_t store_sweep(struct store *st, int64_t now_ms)
{
    uint64_t removed = 0;
    for (int i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &st->s[i];
        int batch;
        do {
            batch = 0;
            pthread_mutex_lock(&s->mu);
            while (s->tail && expired(st, s->tail, now_ms) && batch < SWEEP_BATCH) {
                expire(st, s, s->tail);
                batch++;
            }
            publish_tail(s);
            pthread_mutex_unlock(&s->mu);
            removed += (uint64_t)batch;
        } while (batch == SWEEP_BATCH);
    }
    return removed;
}

/* ---- listing ----------------------------------------------------------------------------------
 */
/* Order of the listing: most recent first, then larger chat id first. a "before" b in the list
 * means a_key > b_key. */
static int cur_cmp(const struct store_cursor *a, const struct store_cursor *b)
{
    if (a->last_active_ms != b->last_active_ms)
        return a->last_active_ms < b->last_active_ms ? -1 : 1;
    if (a->chat_id != b->chat_id)
        return a->chat_id < b->chat_id ? -1 : 1;
    return 0;
}

/* A min-heap of the k greatest keys seen. */
static void heap_push(struct store_cursor *hp, size_t *n, size_t k, struct store_cursor c)
{
    if (*n == k) {
        if (cur_cmp(&c, &hp[0]) <= 0)
            return;
        hp[0] = c; /* replace the smallest and sift down */
        size_t i = 0;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < *n && cur_cmp(&hp[l], &hp[m]) < 0)
                m = l;
            if (r < *n && cur_cmp(&hp[r], &hp[m]) < 0)
                m = r;
            if (m == i)
                break;
            struct store_cursor t = hp[i];
            hp[i] = hp[m];
            hp[m] = t;
            i = m;
        }
        return;
    }
    size_t i = (*n)++;
    hp[i] = c;
    while (i && cur_cmp(&hp[i], &hp[(i - 1) / 2]) < 0) {
        struct store_cursor t = hp[i];
        hp[i] = hp[(i - 1) / 2];
        hp[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int cur_cmp_desc(const void *a, const void *b)
{
    return -cur_cmp(a, b);
}

void store_list(struct store *st, size_t page_size, const struct store_cursor *after,
                int64_t min_idle_ms, struct session *out, size_t *n, bool *more,
                struct store_cursor *next, store_alloc_fn *alloc, void *ctx)
{
    int64_t now = clock_now_ms();
    struct store_cursor *hp = xmalloc((page_size ? page_size : 1) * sizeof *hp);
    size_t nh = 0;
    uint64_t candidates = 0;
    *n = 0;
    *more = false;
    /* Pass 1: the keys of the page, one stripe at a time. */
    for (int i = 0; i < NSTRIPES && page_size; i++) {
        struct stripe *s = &st->s[i];
        pthread_mutex_lock(&s->mu);
        for (struct rec *r = s->head; r; r = r->next) {
            if (expired(st, r, now) || now - r->last_ms < min_idle_ms)
                continue;
            struct store_cursor c = {r->last_ms, r->chat_id};
            if (after && cur_cmp(&c, after) >= 0)
                continue;
            candidates++;
            heap_push(hp, &nh, page_size, c);
        }
        pthread_mutex_unlock(&s->mu);
    }
    qsort(hp, nh, sizeof *hp, cur_cmp_desc);
    /* Pass 2: copy each (a session changed or removed in between is shown as it is now, or
     * skipped). */
    for (size_t i = 0; i < nh; i++) {
        if (store_get(st, hp[i].chat_id, &out[*n], alloc, ctx) == STORE_OK)
            (*n)++;
    }
    if (candidates > nh && nh) {
        *more = true;
        *next = hp[nh - 1];
    }
    free(hp);
}

void store_stats(struct store *st, struct store_stats *s)
{
    s->active = atomic_load(&st->count);
    s->created = atomic_load(&st->created);
    s->expired = atomic_load(&st->expired);
    s->evicted = atomic_load(&st->evicted);
    s->deleted = atomic_load(&st->deleted);
}

uint64_t store_count(struct store *st)
{
    return atomic_load(&st->count);
}

/* ---- snapshots and loading ------------------------------------------------------------------ */
unsigned store_stripes(void)
{
    return NSTRIPES;
}

void store_scan_stripe(struct store *st, unsigned i, void (*fn)(void *arg, const struct session *s),
                       void *arg)
{
    struct stripe *s = &st->s[i];
    struct session_kv stack_kv[STACK_KV], *kv = stack_kv;
    size_t kvcap = STACK_KV;
    pthread_mutex_lock(&s->mu);
    /* Oldest first, so a loader that pushes each at the head rebuilds the same order. */
    for (struct rec *r = s->tail; r; r = r->prev) {
        struct session v;
        const char *f, *q;
        uint32_t nkv = blob_parse(r->blob, r->blob_len, &f, &q, NULL);
        if (nkv > kvcap) {
            if (kv != stack_kv)
                free(kv);
            kv = xmalloc(nkv * sizeof *kv);
            kvcap = nkv;
        }
        fill_fixed(r, &v);
        v.n_state = blob_parse(r->blob, r->blob_len, &v.folder_id, &v.last_search, kv);
        v.state = kv;
        fn(arg, &v);
    }
    pthread_mutex_unlock(&s->mu);
    if (kv != stack_kv)
        free(kv);
}

void store_load_put(struct store *st, const struct session *v)
{
    uint64_t h;
    struct stripe *s = stripe_of(st, v->chat_id, &h);
    struct session_kv stack_kv[STACK_KV], *kv = stack_kv;
    if (v->n_state > STACK_KV)
        kv = xmalloc(v->n_state * sizeof *kv);
    if (v->n_state) {
        memcpy(kv, v->state, v->n_state * sizeof *kv);
        qsort(kv, v->n_state, sizeof *kv, kv_cmp);
    }
    uint32_t blen;
    uint8_t *blob = blob_build(v->folder_id ? v->folder_id : "",
                               v->last_search ? v->last_search : "", kv, v->n_state, &blen);
    if (kv != stack_kv)
        free(kv);
    pthread_mutex_lock(&s->mu);
    struct rec *r = find(s, v->chat_id, h);
    if (!r) {
        r = xmalloc(sizeof *r);
        *r = (struct rec){.chat_id = v->chat_id};
        insert(st, s, r, h);
    } else {
        free(r->blob);
        list_unlink(s, r);
        list_push_head(s, r);
    }
    r->user_id = v->user_id;
    r->created_ms = v->created_ms;
    r->last_ms = v->last_active_ms;
    r->browser_message_id = v->browser_message_id;
    r->version = v->version;
    r->page = v->page;
    r->blob = blob;
    r->blob_len = blen;
    publish_tail(s);
    pthread_mutex_unlock(&s->mu);
}

void store_load_touch(struct store *st, int64_t chat_id, int64_t user_id, int64_t last_active_ms,
                      uint64_t version)
{
    uint64_t h;
    struct stripe *s = stripe_of(st, chat_id, &h);
    pthread_mutex_lock(&s->mu);
    struct rec *r = find(s, chat_id, h);
    if (r) {
        r->user_id = user_id;
        r->last_ms = last_active_ms;
        r->version = version;
        list_unlink(s, r);
        list_push_head(s, r);
        publish_tail(s);
    }
    pthread_mutex_unlock(&s->mu);
}

void store_load_delete(struct store *st, int64_t chat_id)
{
    uint64_t h;
    struct stripe *s = stripe_of(st, chat_id, &h);
    pthread_mutex_lock(&s->mu);
    struct rec *r = find(s, chat_id, h);
    if (r)
        remove_rec(st, s, r);
    publish_tail(s);
    pthread_mutex_unlock(&s->mu);
}

static int rec_cmp_last(const void *a, const void *b)
{
    const struct rec *x = *(struct rec *const *)a, *y = *(struct rec *const *)b;
    if (x->last_ms != y->last_ms)
        return x->last_ms < y->last_ms ? -1 : 1;
    return x->chat_id < y->chat_id ? -1 : x->chat_id > y->chat_id;
}

void store_load_done(struct store *st, int64_t now_ms)
{
    for (int i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &st->s[i];
        pthread_mutex_lock(&s->mu);
        if (s->n > 1) {
            struct rec **v = xmalloc(s->n * sizeof *v);
            size_t k = 0;
            for (struct rec *r = s->head; r; r = r->next)
                v[k++] = r;
            qsort(v, k, sizeof *v, rec_cmp_last);
            s->head = s->tail = NULL;
            for (size_t j = 0; j < k; j++)
                list_push_head(s, v[j]);
            free(v);
        }
        publish_tail(s);
        pthread_mutex_unlock(&s->mu);
    }
    store_sweep(st, now_ms);
    evict_excess(st);
}
