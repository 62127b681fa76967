/* wal_replay.c -- reading one log or snapshot file back into the queue: each record is
 * decoded (engbot.queue.wal.v1.Record) and applied through queue_restore_*; records already in
 * the snapshot are skipped by seq, gaps counted, unknown ops skipped unless critical, a newer
 * incompatible format refused. The file reader (framing, checksums, torn tails) is
 * common/durable.c's dread_file. Fuzzed by tests/queue/fuzz_wal.c. */
#include "wal.h"

#include "durable.h"
#include "queue-svc/wal.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef Engbot__Queue__Wal__V1__Record Record;
typedef Engbot__Queue__Wal__V1__JobRec JobRec;

/* ---- replay -------------------------------------------------------------------------------------
 */

struct replay_ctx {
    struct queue *q;
    uint64_t skip_upto;
    struct wal_replay_stats *st;
    uint64_t *first_gen;
    bool fatal;
    char why[160];
};

static struct job_image image_of(const JobRec *r)
{
    return (struct job_image){
        .id = r->id,
        .lane_key = r->lane_key,
        .kind = r->lane_kind,
        .method = r->method,
        .payload = r->payload.data,
        .payload_len = r->payload.len,
        .dedupe_key = r->dedupe_key,
        .deadline_ms = r->deadline_ms,
        .ttl_ms = r->ttl_ms,
        .enqueued_ms = r->enqueued_ms,
        .not_before_ms = r->not_before_ms,
        .dead_ms = r->dead_ms,
        .attempts = r->attempts,
        .waived = r->waived,
        .last_error = r->last_error,
        .dead = r->dead,
    };
}

static int apply(void *arg, const uint8_t *rec, size_t len)
{
    struct replay_ctx *c = arg;
    struct wal_replay_stats *st = c->st;
    Record *r = engbot__queue__wal__v1__record__unpack(NULL, len, rec);
    if (!r) {
        st->undecodable++;
        return 0;
    }
    if (r->seq && r->seq <= c->skip_upto)
        goto out; /* already in the snapshot */
    if (r->seq) {
        if (st->last_seq && r->seq > st->last_seq + 1)
            st->gaps++;
        if (r->seq > st->last_seq)
            st->last_seq = r->seq;
    }
    bool ok = true;
    struct queue *q = c->q;
    switch (r->op_case) {
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_ENQUEUE: {
        struct job_image im = image_of(r->enqueue);
        im.dead = false;
        ok = queue_restore_job(q, &im);
        break;
    }
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_JOB: {
        struct job_image im = image_of(r->job);
        ok = queue_restore_job(q, &im);
        break;
    }
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_ACK:
        ok = queue_restore_ack(q, r->ack->id);
        break;
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_REMOVE:
        ok = queue_restore_remove(q, r->remove->id, (enum job_state)r->remove->state);
        break;
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_RETRY: {
        const Engbot__Queue__Wal__V1__Retry *t = r->retry;
        ok = queue_restore_retry(q, t->id, t->attempts, t->waived, t->not_before_ms, t->error,
                                 t->new_lane_key, t->new_payload.data, t->new_payload.len,
                                 t->has_new_payload, t->paused_until_ms);
        break;
    }
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_DEAD:
        ok =
            queue_restore_dead(q, r->dead->id, r->dead->attempts, r->dead->error, r->dead->dead_ms);
        break;
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_REQUEUE:
        ok = queue_restore_requeue(q, r->requeue->id, r->requeue->deadline_ms);
        break;
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_META:
        if (r->meta->last_seq > st->last_seq)
            st->last_seq = r->meta->last_seq;
        if (r->meta->next_id > st->next_id)
            st->next_id = r->meta->next_id;
        if (c->first_gen)
            *c->first_gen = r->meta->first_gen;
        if (r->meta->last_seq > c->skip_upto)
            c->skip_upto = r->meta->last_seq;
        break;
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_DEDUPE:
        queue_restore_dedupe(q, r->dedupe->key, r->dedupe->id, (enum job_state)r->dedupe->state,
                             r->dedupe->expires_ms);
        break;
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_LANE:
        queue_restore_lane(q, r->lane->key, r->lane->kind, r->lane->paused_until_ms);
        break;
    case ENGBOT__QUEUE__WAL__V1__RECORD__OP_NOP:
        break;
    default:
        if (r->critical) {
            c->fatal = true;
            snprintf(c->why, sizeof c->why,
                     "record seq %" PRIu64 " is of a kind only a newer queue-svc understands, and "
                     "it may not be skipped",
                     r->seq);
            engbot__queue__wal__v1__record__free_unpacked(r, NULL);
            return 1;
        }
        st->unknown++;
        break;
    }
    if (!ok)
        st->skipped++;
out:
    st->records++;
    engbot__queue__wal__v1__record__free_unpacked(r, NULL);
    return 0;
}

/* The format version in a file's header, or 0 when it has no readable header. */
static uint32_t file_version(const char *path)
{
    uint8_t h[16];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n < 12 || memcmp(h, "ENGBOTRF", 8) != 0)
        return 0;
    return (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
}

int wal_replay_file(const char *path, uint32_t kind, struct queue *q, uint64_t skip_upto,
                    struct wal_replay_stats *st, bool *damaged, uint64_t *first_gen, char *why,
                    size_t whylen)
{
    *damaged = false;
    uint32_t v = file_version(path);
    if (v > WAL_FORMAT_VERSION) {
        snprintf(why, whylen,
                 "format version %u was written by a newer, incompatible queue-svc (this one "
                 "reads up to version %u)",
                 v, WAL_FORMAT_VERSION);
        return -1;
    }
    struct replay_ctx c = {q, skip_upto, st, first_gen, false, ""};
    struct dread_result res;
    int rc = dread_file(path, kind, apply, &c, &res);
    if (rc == 1)
        return 1;
    if (rc < 0) {
        snprintf(why, whylen, "%s", c.fatal ? c.why : res.why);
        return c.fatal ? -1 : -2;
    }
    st->files++;
    if (res.damaged) {
        *damaged = true;
        st->damaged++;
        snprintf(why, whylen,
                 "%s (%" PRIu64 " good records kept, %" PRIu64 " of %" PRIu64 " bytes)", res.why,
                 res.records, res.good_bytes, res.file_bytes);
    }
    return 0;
}
