/* test_wal.c -- the queue's write-ahead log (queue-svc/wal.c): replay gives back the state,
 * truncation at every byte offset of a small log loses exactly the torn record and nothing
 * before it, damaged files are kept aside, compaction keeps the state, leases in flight come
 * back as ready, newer incompatible files and critical unknown records are refused.
 *
 * A "crash" is simulated by copying the data directory after a flush, while the log is still
 * open: the copy is what the disk held. Set QUEUE_WRITE_SEEDS=<dir> to also write the logs as
 * fuzz seeds (tests/queue/corpus/wal). */
#include "broker.h"
#include "clock.h"
#include "durable.h"
#include "queue.h"
#include "test.h"
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1700000000000LL /* a fixed "now", Unix ms */

static const struct rate UNLIMITED = {0, 1000, 1};

static struct queue_opts qopts(void)
{
    return (struct queue_opts){
        .max_jobs = 1000,
        .max_bytes = 1 << 20,
        .lane_max = 100,
        .default_ttl_ms = 30000,
        .max_ttl_ms = 86400000,
        .dedupe_window_ms = 600000,
        .dedupe_max = 10000,
        .max_attempts = 5,
        .lease_ms = 60000,
        .max_lease_ms = 600000,
        .max_payload = 4096,
        .dead_max = 100,
        .global = UNLIMITED,
        .chat = UNLIMITED,
        .group = UNLIMITED,
        .backoff_base_ms = 1000,
        .backoff_max_ms = 60000,
        .seed = 3,
    };
}

/* ---- scratch directories ------------------------------------------------------------------- */

static const char *scratch_root(void)
{
    struct stat st;
    /* tmpfs: fsync is free, so trying thousands of truncations stays fast */
    return stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

static void make_dir(char *out, size_t cap, const char *tag)
{
    snprintf(out, cap, "%s/queue-wal-test-%d-%s-XXXXXX", scratch_root(), (int)getpid(), tag);
    if (!mkdtemp(out))
        abort();
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n)
        fwrite(b, 1, n, f);
    fclose(f);
}

static void copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;
    char a[1024], b[1024];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        size_t n;
        uint8_t *buf = read_all(a, &n);
        if (buf)
            write_all(b, buf, n);
        free(buf);
    }
    if (d)
        closedir(d);
}

static int count_matching(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, needle) != NULL;
    if (d)
        closedir(d);
    return n;
}

/* The log file of the current generation (the only wal-*.log in dir). */
static void find_log(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = '\0';
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "wal-", 4) == 0 && strstr(e->d_name, ".log") &&
            !strstr(e->d_name, "damaged"))
            snprintf(out, cap, "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
}

/* ---- a queue with its log ------------------------------------------------------------------- */

struct env {
    char dir[256];
    pthread_mutex_t mu;
    struct queue *q;
    struct wal *w;
    struct wal_replay_stats st;
    char err[512];
};

static void env_sink(void *arg, const struct qevent *ev)
{
    struct env *e = arg;
    wal_sink(e->w, ev);
}

static bool env_open(struct env *e, const char *dir)
{
    struct queue_opts o = qopts();
    /* wal.c reads the clock (restore, snapshots): it must agree with the times used here. */
    clock_set_fake(true, NOW);
    snprintf(e->dir, sizeof e->dir, "%s", dir);
    pthread_mutex_init(&e->mu, NULL);
    e->q = queue_new(&o, env_sink, e);
    struct wal_opts wo = {
        .dir = dir, .fsync = false, .sync_interval_ms = 10, .compact_bytes = 1 << 30};
    e->w = wal_open(&wo, e->q, &e->mu, &e->st, e->err, sizeof e->err);
    if (!e->w) {
        queue_free(e->q);
        pthread_mutex_destroy(&e->mu);
        return false;
    }
    return true;
}

static void env_close(struct env *e)
{
    wal_close(e->w);
    queue_free(e->q);
    pthread_mutex_destroy(&e->mu);
}

static void commit(struct env *e)
{
    wal_commit(e->w, NULL, NULL);
}

static uint64_t put(struct env *e, int64_t lane, const char *payload, const char *key,
                    uint32_t timeout_ms, int64_t now)
{
    struct enq_spec s = {.lane_key = lane,
                         .kind = LK_PRIVATE,
                         .method = "sendMessage",
                         .payload = (const uint8_t *)payload,
                         .payload_len = strlen(payload),
                         .dedupe_key = key,
                         .timeout_ms = timeout_ms};
    struct enq_result r;
    enum qerr err = queue_enqueue(e->q, &s, now, &r);
    commit(e);
    return err == Q_OK ? r.id : 0;
}

static struct job *lease1(struct env *e, int64_t now)
{
    struct job *j[1];
    /* Jobs are leasable once their records are durable: flush, then say so. */
    wal_flush(e->w);
    queue_set_durable(e->q, queue_last_seq(e->q), now);
    return queue_take(e->q, now, 1, 0, 1 << 20, j) ? j[0] : NULL;
}

/* ---- state digests -------------------------------------------------------------------------- */

struct digest {
    char **lines;
    size_t n, cap;
    int64_t lane;
    int pos, dead;
};

static void dg_add(struct digest *d, const char *s)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->lines = realloc(d->lines, d->cap * sizeof *d->lines);
    }
    d->lines[d->n++] = strdup(s);
}

static void dg_job(void *arg, const struct job *j)
{
    struct digest *d = arg;
    char line[512];
    if (j->state == JS_DEAD) {
        snprintf(line, sizeof line, "D%04d id=%llu lane=%lld att=%u err=%s pay=%.*s", d->dead++,
                 (unsigned long long)j->id, (long long)j->lane_key, j->attempts,
                 j->last_error ? j->last_error : "", (int)j->payload_len, j->payload);
    } else {
        if (j->lane_key != d->lane) {
            d->lane = j->lane_key;
            d->pos = 0;
        }
        snprintf(line, sizeof line,
                 "L%lld/%04d id=%llu att=%u wv=%u nb=%lld dl=%lld err=%s key=%s pay=%.*s",
                 (long long)j->lane_key, d->pos++, (unsigned long long)j->id, j->attempts,
                 j->waived, (long long)j->not_before_ms, (long long)j->deadline_ms,
                 j->last_error ? j->last_error : "", j->dedupe_key ? j->dedupe_key : "",
                 (int)j->payload_len, j->payload);
    }
    dg_add(d, line);
}

static void dg_dedupe(void *arg, const char *key, uint64_t id, enum job_state st, int64_t exp)
{
    char line[512];
    snprintf(line, sizeof line, "K %s id=%llu st=%d exp=%lld", key, (unsigned long long)id, st,
             (long long)exp);
    dg_add(arg, line);
}

static void dg_lane(void *arg, int64_t key, int kind, int64_t paused)
{
    char line[128];
    snprintf(line, sizeof line, "P %lld kind=%d until=%lld", (long long)key, kind,
             (long long)paused);
    dg_add(arg, line);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The queue as sorted text (malloc'd). Leases are not part of it (they are not durable). */
static char *digest(const struct queue *q)
{
    struct digest d = {.lane = INT64_MIN};
    struct queue_visitor v = {&d, dg_job, dg_dedupe, dg_lane};
    queue_visit(q, &v, NOW);
    if (d.n)
        qsort(d.lines, d.n, sizeof *d.lines, cmp_str);
    size_t len = 1;
    for (size_t i = 0; i < d.n; i++)
        len += strlen(d.lines[i]) + 1;
    char *out = calloc(1, len);
    for (size_t i = 0; i < d.n; i++) {
        strcat(out, d.lines[i]);
        strcat(out, "\n");
        free(d.lines[i]);
    }
    free(d.lines);
    char tail[64];
    snprintf(tail, sizeof tail, "next_id=%llu\n", (unsigned long long)queue_next_id(q));
    out = realloc(out, len + strlen(tail));
    strcat(out, tail);
    return out;
}

/* Replays one log file into a fresh queue; returns its digest (NULL if the replay failed). */
static char *replay_digest(const char *path, bool *damaged, struct wal_replay_stats *st)
{
    struct queue_opts o = qopts();
    struct queue *q = queue_new(&o, NULL, NULL);
    char why[320];
    memset(st, 0, sizeof *st);
    queue_restore_begin(q);
    int rc = wal_replay_file(path, WAL_KIND_LOG, q, 0, st, damaged, NULL, why, sizeof why);
    queue_restore_done(q, st->next_id, st->last_seq, NOW);
    char *d = NULL;
    const char *bad = queue_check(q);
    if (bad)
        fprintf(stderr, "    queue_check after replay of %s: %s\n", path, bad);
    else if (rc == 0 || rc == 1)
        d = digest(q);
    queue_free(q);
    return d;
}

/* A scripted history touching every record type. Ends with nothing leased. */
static void history(struct env *e)
{
    int64_t t = NOW - 100000;
    struct retry_result rr;
    put(e, 1, "a1", "upd-1", 600000, t);
    put(e, 1, "a2", "upd-2", 600000, t);
    put(e, 1, "a3", NULL, 600000, t);
    put(e, 2, "b1", "upd-3", 600000, t);
    put(e, 2, "b2", NULL, 600000, t);
    uint64_t shortlived = put(e, 3, "c1", NULL, 1000, t);
    put(e, 3, "c2", NULL, 600000, t);
    put(e, -100123, "g1", "upd-4", 600000, t);
    put(e, 4, "d1", NULL, 600000, t);
    put(e, 4, "d2", NULL, 600000, t);

    struct job *j = lease1(e, t); /* a1: acked */
    queue_ack(e->q, j->id, j->lease_token, t);
    commit(e);
    j = lease1(e, t); /* b1: 429, lane 2 paused */
    struct retry_spec rs = {.id = j->id,
                            .token = j->lease_token,
                            .retry_after_ms = 200000,
                            .error = "Too Many Requests: retry after 200"};
    queue_retry(e->q, &rs, t, &rr);
    commit(e);
    queue_tick(e->q, t + 1000); /* c1 expires */
    commit(e);
    (void)shortlived;
    t += 1000;
    j = lease1(e, t); /* c2 (lane 3): 5xx, backoff */
    if (j && j->lane_key == 3) {
        struct retry_spec r2 = {.id = j->id, .token = j->lease_token, .error = "HTTP 502"};
        queue_retry(e->q, &r2, t, &rr);
    } else if (j) {
        queue_ack(e->q, j->id, j->lease_token, t);
    }
    commit(e);
    j = lease1(e, t); /* next ready: fail it for good, then requeue it */
    uint64_t failed = j->id;
    queue_fail(e->q, j->id, j->lease_token, "Forbidden: bot was blocked by the user", t);
    commit(e);
    const struct job *back;
    queue_requeue_dead(e->q, failed, t, &back);
    commit(e);
    j = lease1(e, t); /* another one: dead letter that stays */
    queue_fail(e->q, j->id, j->lease_token, "Bad Request: chat not found", t);
    commit(e);
    queue_purge(e->q, 4, t);
    commit(e);
    j = lease1(e, t); /* migrate */
    if (j) {
        struct retry_spec r3 = {.id = j->id,
                                .token = j->lease_token,
                                .retry_after_ms = 1,
                                .new_lane_key = -100999,
                                .new_payload = (const uint8_t *)"moved",
                                .new_payload_len = 5,
                                .has_new_payload = true};
        queue_retry(e->q, &r3, t, &rr);
        commit(e);
    }
    put(e, 5, "dup", "upd-1", 600000, t); /* a duplicate of a1: no record, no job */
    put(e, 6, "e1", "upd-6", 600000, t);
    /* Nothing may stay leased: leases are not in the log. */
    struct job *left[64];
    wal_flush(e->w);
    queue_set_durable(e->q, queue_last_seq(e->q), t + 1);
    size_t n = queue_take(e->q, t + 1, 64, 0, 1 << 20, left);
    for (size_t i = 0; i < n; i++) {
        struct retry_spec r4 = {.id = left[i]->id,
                                .token = left[i]->lease_token,
                                .retry_after_ms = 1000,
                                .error = "later"};
        queue_retry(e->q, &r4, t + 1, &rr);
    }
    commit(e);
}

static void maybe_seed(const char *name, const char *path)
{
    const char *dir = getenv("QUEUE_WRITE_SEEDS");
    if (!dir)
        return;
    size_t n;
    uint8_t *b = read_all(path, &n);
    char out[1024];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    if (b)
        write_all(out, b, n);
    /* The same records in the fuzz target's 'R' shape: 'R', then u16 length | payload. */
    if (b && n >= 16) {
        uint8_t *r = malloc(n + 1);
        size_t rn = 0;
        r[rn++] = 'R';
        for (size_t off = 16; off + 8 <= n;) {
            uint32_t len = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
                           (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
            if (len == 0 || len > 65535 || off + 8 + len > n)
                break;
            r[rn++] = (uint8_t)len;
            r[rn++] = (uint8_t)(len >> 8);
            memcpy(r + rn, b + off + 8, len);
            rn += len;
            off += 8 + len;
        }
        snprintf(out, sizeof out, "%s/%s.records", dir, name);
        write_all(out, r, rn);
        free(r);
    }
    free(b);
}

TEST(replay_gives_back_the_state)
{
    char a[256], b[256], log[512];
    make_dir(a, sizeof a, "live");
    make_dir(b, sizeof b, "copy");
    struct env e, r;
    ASSERT_TRUE(env_open(&e, a));
    history(&e);
    ASSERT_EQ(wal_flush(e.w), 0);
    char *want = digest(e.q);
    ASSERT_CONTAINS(want, "\nP ");      /* a lane's 429 pause */
    ASSERT_CONTAINS(want, "\nK upd-");  /* a done job's dedupe key */
    ASSERT_CONTAINS(want, "D0000");     /* a dead letter */
    ASSERT_CONTAINS(want, "pay=moved"); /* the migrated job */
    find_log(a, log, sizeof log);
    maybe_seed("history.log", log);
    copy_dir(a, b); /* the disk at a crash */
    ASSERT_TRUE(env_open(&r, b));
    ASSERT_EQ(r.st.damaged, 0);
    ASSERT_EQ(r.st.skipped, 0);
    ASSERT_TRUE(r.st.records > 20);
    char *got = digest(r.q);
    ASSERT_STREQ(got, want);
    /* Ids go on after the last one, never reused. */
    ASSERT_EQ(queue_next_id(r.q), queue_next_id(e.q));
    free(got);
    free(want);
    env_close(&r);
    env_close(&e);
    rm_rf(a);
    rm_rf(b);
}

TEST(truncation_at_every_byte_keeps_every_whole_record)
{
    char a[256], scratch[512], log[512];
    make_dir(a, sizeof a, "trunc");
    struct env e;
    ASSERT_TRUE(env_open(&e, a));
    history(&e);
    ASSERT_EQ(wal_flush(e.w), 0);
    char *live = digest(e.q);
    find_log(a, log, sizeof log);
    size_t n;
    uint8_t *bytes = read_all(log, &n);
    ASSERT_TRUE(bytes && n > 16);
    snprintf(scratch, sizeof scratch, "%s/cut.log", a);

    /* Record boundaries from the framing: header 16, then u32 len | u32 crc | payload. */
    size_t bounds[512], nb = 0;
    for (size_t off = 16; off <= n && nb < 512;) {
        bounds[nb++] = off;
        if (off + 8 > n)
            break;
        uint32_t len = (uint32_t)bytes[off] | (uint32_t)bytes[off + 1] << 8 |
                       (uint32_t)bytes[off + 2] << 16 | (uint32_t)bytes[off + 3] << 24;
        off += 8 + len;
    }
    ASSERT_EQ(bounds[nb - 1], n);
    char **at_bound = calloc(nb, sizeof *at_bound);
    struct wal_replay_stats st;
    bool damaged;
    for (size_t i = 0; i < nb; i++) {
        write_all(scratch, bytes, bounds[i]);
        at_bound[i] = replay_digest(scratch, &damaged, &st);
        ASSERT_TRUE(at_bound[i] != NULL);
        ASSERT_FALSE(damaged);
        ASSERT_EQ(st.records, i);
    }
    ASSERT_STREQ(at_bound[nb - 1], live); /* the whole log is the live state */
    char *empty;
    {
        struct queue_opts o = qopts();
        struct queue *q = queue_new(&o, NULL, NULL);
        empty = digest(q);
        queue_free(q);
    }
    for (size_t k = 0; k < n; k++) {
        write_all(scratch, bytes, k);
        char *d = replay_digest(scratch, &damaged, &st);
        ASSERT_TRUE(d != NULL);
        size_t b = 0;
        while (b + 1 < nb && bounds[b + 1] <= k)
            b++;
        bool on_bound = k >= 16 && bounds[b] == k;
        const char *want = k < 16 ? empty : at_bound[b];
        if (strcmp(d, want) != 0 || damaged == on_bound)
            FAIL_("truncated at byte %zu of %zu: damaged=%d (want %d), state %s", k, n, damaged,
                  !on_bound, strcmp(d, want) ? "differs" : "ok");
        free(d);
    }
    /* One flipped byte in each record: that record and what follows are dropped, loudly. */
    for (size_t i = 0; i + 1 < nb; i++) {
        uint8_t *copy = malloc(n);
        memcpy(copy, bytes, n);
        copy[bounds[i] + 8] ^= 0x40; /* first payload byte */
        write_all(scratch, copy, n);
        free(copy);
        char *d = replay_digest(scratch, &damaged, &st);
        ASSERT_TRUE(damaged);
        ASSERT_STREQ(d, at_bound[i]);
        free(d);
    }
    for (size_t i = 0; i < nb; i++)
        free(at_bound[i]);
    free(at_bound);
    free(empty);
    free(live);
    free(bytes);
    env_close(&e);
    rm_rf(a);
}

TEST(damaged_tail_is_kept_aside_and_the_rest_restored)
{
    char a[256], b[256], c[256], log[512], blog[512];
    make_dir(a, sizeof a, "dmg");
    make_dir(b, sizeof b, "dmgcopy");
    make_dir(c, sizeof c, "torn");
    struct env e, r;
    ASSERT_TRUE(env_open(&e, a));
    put(&e, 1, "keep-1", NULL, 600000, NOW);
    put(&e, 2, "keep-2", NULL, 600000, NOW);
    ASSERT_EQ(wal_flush(e.w), 0);
    char *want = digest(e.q);
    put(&e, 3, "lost", NULL, 600000, NOW);
    ASSERT_EQ(wal_flush(e.w), 0);
    find_log(a, log, sizeof log);

    /* A corrupt last record (a bit flipped in its payload). */
    copy_dir(a, b);
    snprintf(blog, sizeof blog, "%s/%s", b, strrchr(log, '/') + 1);
    size_t n;
    uint8_t *bytes = read_all(blog, &n);
    bytes[n - 3] ^= 0x01;
    write_all(blog, bytes, n);
    maybe_seed("corrupt-tail.log", blog);
    ASSERT_TRUE(env_open(&r, b));
    ASSERT_EQ(r.st.damaged, 1);
    char *got = digest(r.q);
    ASSERT_STREQ(got, want);
    ASSERT_EQ(count_matching(b, ".damaged-"), 1);
    free(got);
    env_close(&r);

    /* A torn last record (the crash came mid-write). */
    copy_dir(a, c);
    snprintf(blog, sizeof blog, "%s/%s", c, strrchr(log, '/') + 1);
    write_all(blog, bytes, n - 5);
    maybe_seed("torn-tail.log", blog);
    ASSERT_TRUE(env_open(&r, c));
    ASSERT_EQ(r.st.damaged, 1);
    got = digest(r.q);
    ASSERT_STREQ(got, want);
    ASSERT_EQ(count_matching(c, ".damaged-"), 1);
    free(got);
    env_close(&r);

    /* Started again: the damage is behind us, the state the same. */
    ASSERT_TRUE(env_open(&r, c));
    ASSERT_EQ(r.st.damaged, 0);
    got = digest(r.q);
    ASSERT_STREQ(got, want);
    free(got);
    env_close(&r);

    free(bytes);
    free(want);
    env_close(&e);
    rm_rf(a);
    rm_rf(b);
    rm_rf(c);
}

TEST(compaction_keeps_the_state_and_drops_old_generations)
{
    char a[256], b[256];
    make_dir(a, sizeof a, "compact");
    make_dir(b, sizeof b, "compactcopy");
    struct env e, r;
    ASSERT_TRUE(env_open(&e, a));
    history(&e);
    char err[256];
    uint64_t before = wal_bytes(e.w);
    ASSERT_EQ(wal_compact(e.w, err, sizeof err), 0);
    ASSERT_EQ(count_matching(a, "wal-"), 1); /* only the new generation */
    ASSERT_TRUE(wal_bytes(e.w) < before);
    put(&e, 9, "after", "upd-9", 600000, NOW);
    ASSERT_EQ(wal_flush(e.w), 0);
    char *want = digest(e.q);
    char snap[512];
    snprintf(snap, sizeof snap, "%s/queue.snap", a);
    maybe_seed("snapshot.snap", snap);
    copy_dir(a, b);
    ASSERT_TRUE(env_open(&r, b));
    char *got = digest(r.q);
    ASSERT_STREQ(got, want);
    free(got);
    env_close(&r);
    free(want);
    env_close(&e);
    rm_rf(a);
    rm_rf(b);
}

TEST(leases_in_flight_come_back_as_ready)
{
    char a[256], b[256];
    make_dir(a, sizeof a, "lease");
    make_dir(b, sizeof b, "leasecopy");
    struct env e, r;
    ASSERT_TRUE(env_open(&e, a));
    uint64_t id = put(&e, 1, "in flight", NULL, 600000, NOW);
    struct job *j = lease1(&e, NOW);
    ASSERT_TRUE(j && j->id == id);
    ASSERT_EQ(wal_flush(e.w), 0);
    copy_dir(a, b);
    ASSERT_TRUE(env_open(&r, b));
    struct job *again = lease1(&r, NOW);
    ASSERT_TRUE(again && again->id == id);
    env_close(&r);
    env_close(&e);
    rm_rf(a);
    rm_rf(b);
}

/* ---- the broker's restart hold (drills F9) ---------------------------------------------- */

struct got {
    uint64_t id, token;
    int n;
};

static void got_job(void *arg, const struct job *j)
{
    struct got *g = arg;
    g->id = j->id;
    g->token = j->lease_token;
    g->n++;
}

static void got_finish(void *arg)
{
    (void)arg;
}

/* Leases at most one job without waiting; returns how many it got. */
static int lease_now(struct broker *b, struct got *g)
{
    memset(g, 0, sizeof *g);
    struct broker_lease l = {.max_jobs = 1, .max_bytes = 1 << 20, .on_job = got_job,
                             .finish = got_finish, .arg = g};
    if (!broker_lease(b, &l))
        return -1; /* it waited: not what these tests ask for */
    return g->n;
}

struct change {
    uint64_t id, token;
    enum qerr e;
    _Atomic int done;
};

static void change_done(void *arg, int err)
{
    (void)err;
    struct change *c = arg;
    atomic_store(&c->done, 1);
}

static void do_ack(void *arg, struct queue *q, int64_t now)
{
    struct change *c = arg;
    c->e = queue_ack(q, c->id, c->token, now);
}

static void do_put(void *arg, struct queue *q, int64_t now)
{
    struct change *c = arg;
    struct enq_spec s = {.lane_key = 7, .kind = LK_PRIVATE, .method = "sendMessage",
                         .payload = (const uint8_t *)"after", .payload_len = 5,
                         .timeout_ms = 600000};
    struct enq_result r;
    c->e = queue_enqueue(q, &s, now, &r);
    c->id = r.id;
}

/* Runs fn as a change and waits until it is durable (when it wrote anything). */
static enum qerr change(struct broker *b, broker_fn *fn, uint64_t id, uint64_t token,
                        uint64_t *out_id)
{
    struct change c = {.id = id, .token = token};
    struct bcall bc = {.done = change_done, .arg = &c};
    if (broker_change(b, fn, &c, &bc) != 0)
        return Q_EINVAL;
    while (bc.later && !atomic_load(&c.done))
        usleep(1000);
    if (out_id)
        *out_id = c.id;
    return c.e;
}

static struct broker *bopen(const char *dir, int64_t hold_ms)
{
    struct broker_opts o = {.q = qopts(), .restart_hold_ms = hold_ms};
    o.q.seed = 99; /* lease tokens unlike the ones env_open hands out (seed 3) */
    o.w = (struct wal_opts){.dir = dir, .fsync = false, .sync_interval_ms = 10,
                            .compact_bytes = 1 << 30};
    struct wal_replay_stats st;
    char err[512];
    struct broker *b = broker_open(&o, &st, err, sizeof err);
    if (!b)
        fprintf(stderr, "broker_open: %s\n", err);
    return b;
}

/* Opens dir after a stop that was not clean and checks the restart hold: nothing is leased
 * until it ends, the sender's Ack of restored job `id` (with its lease_token from the previous
 * process) is taken, and the job is not leased when the hold ends. Leaves the clock at NOW. */
static void check_hold_takes_orphan_ack(const char *dir, uint64_t id, uint64_t token)
{
    struct broker *br = bopen(dir, 60000);
    ASSERT_TRUE(br != NULL);
    struct got g;
    ASSERT_EQ(lease_now(br, &g), 0);
    ASSERT_EQ(change(br, do_ack, id, token, NULL), Q_OK);
    clock_set_fake(true, NOW + 60001);
    ASSERT_EQ(lease_now(br, &g), 0);
    broker_close(br);
    clock_set_fake(true, NOW);
}

TEST(after_a_crash_restored_jobs_are_held_and_the_senders_ack_counts)
{
    char a[256], b[256];
    make_dir(a, sizeof a, "crash");
    make_dir(b, sizeof b, "crashcopy");
    struct env e;
    ASSERT_TRUE(env_open(&e, a));
    uint64_t id = put(&e, 1, "sent just before the crash", NULL, 600000, NOW);
    struct job *j = lease1(&e, NOW);
    ASSERT_TRUE(j && j->id == id);
    uint64_t old_token = j->lease_token;
    ASSERT_EQ(wal_flush(e.w), 0);
    copy_dir(a, b); /* a kill -9: what was on disk, and no clean-stop mark */
    env_close(&e);

    /* The sender's Ack reaches the new process during the hold: it is taken, and the job is
     * not sent a second time when the hold ends. */
    check_hold_takes_orphan_ack(b, id, old_token);

    /* Without the Ack the job goes out when the hold ends; once leased again, the old Ack no
     * longer counts. A stop with nothing leased leaves the clean-stop mark. */
    struct got g;
    struct broker *br = bopen(a, 60000);
    ASSERT_TRUE(br != NULL);
    ASSERT_EQ(lease_now(br, &g), 0);
    clock_set_fake(true, NOW + 60001);
    ASSERT_EQ(lease_now(br, &g), 1);
    ASSERT_EQ(g.id, id);
    ASSERT_EQ(change(br, do_ack, id, old_token, NULL), Q_ELEASE);
    ASSERT_EQ(change(br, do_ack, id, g.token, NULL), Q_OK);
    uint64_t id2 = 0;
    ASSERT_EQ(change(br, do_put, 0, 0, &id2), Q_OK);
    broker_close(br);
    ASSERT_EQ(count_matching(a, "clean-stop"), 1);

    /* After a clean stop there is no hold, and the mark is used up. */
    br = bopen(a, 60000);
    ASSERT_TRUE(br != NULL);
    ASSERT_EQ(count_matching(a, "clean-stop"), 0);
    ASSERT_EQ(lease_now(br, &g), 1);
    ASSERT_EQ(g.id, id2);
    ASSERT_EQ(change(br, do_ack, id2, g.token, NULL), Q_OK);
    broker_close(br);
    clock_set_fake(true, NOW);
    rm_rf(a);
    rm_rf(b);
}

TEST(a_clean_stop_mark_left_before_an_older_version_ran_is_stale)
{
    char a[256];
    make_dir(a, sizeof a, "stalemark");
    /* This version: one job queued, a clean stop (the mark). */
    struct broker *br = bopen(a, 60000);
    ASSERT_TRUE(br != NULL);
    uint64_t id = 0;
    ASSERT_EQ(change(br, do_put, 0, 0, &id), Q_OK);
    broker_close(br);
    ASSERT_EQ(count_matching(a, "clean-stop"), 1);

    /* An older version (the bare log: it neither reads nor removes the mark) leases the job,
     * sends it, and stops with the lease open -- a rollback, then forward again. */
    struct env e;
    ASSERT_TRUE(env_open(&e, a));
    struct job *j = lease1(&e, NOW);
    ASSERT_TRUE(j && j->id == id);
    uint64_t old_token = j->lease_token;
    env_close(&e);
    ASSERT_EQ(count_matching(a, "clean-stop"), 1);

    /* This version again: the mark is stale, so the restored job is held and the old sender's
     * Ack is taken; it is not sent a second time. (With the mark taken at its word, the job
     * was leased at once: the rollback drill's duplicate.) */
    check_hold_takes_orphan_ack(a, id, old_token);

    /* A mark of this version's own clean stop still counts: no hold. */
    br = bopen(a, 60000);
    ASSERT_TRUE(br != NULL);
    uint64_t id2 = 0;
    ASSERT_EQ(change(br, do_put, 0, 0, &id2), Q_OK);
    broker_close(br);
    br = bopen(a, 60000);
    ASSERT_TRUE(br != NULL);
    struct got g;
    ASSERT_EQ(lease_now(br, &g), 1);
    ASSERT_EQ(g.id, id2);
    broker_close(br);
    rm_rf(a);
}

TEST(close_then_open_is_a_snapshot)
{
    char a[256];
    make_dir(a, sizeof a, "reopen");
    struct env e;
    ASSERT_TRUE(env_open(&e, a));
    history(&e);
    char *want = digest(e.q);
    env_close(&e);
    ASSERT_EQ(count_matching(a, "queue.snap"), 1);
    ASSERT_TRUE(env_open(&e, a));
    char *got = digest(e.q);
    ASSERT_STREQ(got, want);
    ASSERT_EQ(e.st.damaged, 0);
    free(got);
    free(want);
    env_close(&e);
    rm_rf(a);
}

/* Writes a log file with the given raw records (each a packed Record). */
static void raw_log(const char *path, uint32_t version, const uint8_t *const *recs,
                    const size_t *lens, size_t n)
{
    char err[256];
    struct rlog_opts o = {.sync_interval_ms = 1, .no_fsync = true};
    struct rlog *l = rlog_open(path, WAL_KIND_LOG, version, &o, err, sizeof err);
    if (!l)
        abort();
    for (size_t i = 0; i < n; i++)
        rlog_append(l, recs[i], lens[i], NULL, NULL);
    rlog_close(l);
}

TEST(newer_incompatible_files_are_refused)
{
    char a[256], path[512];
    make_dir(a, sizeof a, "newer");
    snprintf(path, sizeof path, "%s/wal-00000000000000000001.log", a);
    const uint8_t nop[] = {0x62, 0x00}; /* Record{nop: {}} */
    const uint8_t *recs[] = {nop};
    size_t lens[] = {sizeof nop};
    raw_log(path, WAL_FORMAT_VERSION + 1, recs, lens, 1);
    struct env e;
    ASSERT_FALSE(env_open(&e, a));
    ASSERT_CONTAINS(e.err, "newer, incompatible");
    ASSERT_EQ(count_matching(a, "wal-00000000000000000001.log"), 1); /* untouched */
    rm_rf(a);
}

TEST(unknown_records_skipped_unless_critical)
{
    char a[256], b[256], path[512];
    make_dir(a, sizeof a, "unknown");
    make_dir(b, sizeof b, "critical");
    /* seq 1, field 13 (an op this version does not know), empty */
    const uint8_t unknown[] = {0x08, 0x01, 0x6a, 0x00};
    /* seq 2, field 13, critical = true */
    const uint8_t critical[] = {0x08, 0x02, 0x6a, 0x00, 0x78, 0x01};
    const uint8_t *r1[] = {unknown};
    size_t l1[] = {sizeof unknown};
    snprintf(path, sizeof path, "%s/wal-00000000000000000001.log", a);
    raw_log(path, WAL_FORMAT_VERSION, r1, l1, 1);
    maybe_seed("unknown-op.log", path);
    struct env e;
    ASSERT_TRUE(env_open(&e, a));
    ASSERT_EQ(e.st.unknown, 1);
    env_close(&e);

    const uint8_t *r2[] = {unknown, critical};
    size_t l2[] = {sizeof unknown, sizeof critical};
    snprintf(path, sizeof path, "%s/wal-00000000000000000001.log", b);
    raw_log(path, WAL_FORMAT_VERSION, r2, l2, 2);
    ASSERT_FALSE(env_open(&e, b));
    ASSERT_CONTAINS(e.err, "newer queue-svc");
    rm_rf(a);
    rm_rf(b);
}

TEST(not_a_queue_file_is_kept_aside)
{
    char a[256], path[512];
    make_dir(a, sizeof a, "garbage");
    snprintf(path, sizeof path, "%s/wal-00000000000000000001.log", a);
    write_all(path, "this is not a log at all, just text\n", 36);
    struct env e;
    ASSERT_TRUE(env_open(&e, a));
    ASSERT_EQ(count_matching(a, ".damaged-"), 1);
    env_close(&e);
    rm_rf(a);
}
