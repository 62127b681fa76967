/* durable.c -- checksummed record files, atomic replace, and the group-commit log.
 *
 * DESIGN (rlog): appenders copy their record into `pending` under the lock and, if they want
 * to know when it is durable, add a waiter. One thread per log takes the whole pending buffer,
 * writes it with one write(2) and one fdatasync(2), then runs the waiters' callbacks. Records
 * appended while an fsync is in progress go out together in the next one, so throughput grows
 * with concurrency instead of being one fsync per record. A failed write or fsync (a full
 * disk) is cut back with ftruncate so the file never holds a partial record followed by good
 * ones, and the batch goes back to the front of `pending`: it is written again, in order,
 * once the disk takes it (retries back off from 50 ms to 1 s). The error stays visible
 * (rlog_error) until everything is written. While failing, at most RLOG_MAX_PENDING bytes are
 * held; past that appends are refused (-ENOSPC) rather than buffered without bound. */
#include "durable.h"
#include "clock.h"
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'E', 'N', 'G', 'B', 'O', 'T', 'R', 'F'};
#define HEADER_LEN 16

/* ---- crc32c (Castagnoli), slicing-by-8 ----------------------------------------------------- */
static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
              crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
              crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t record_crc(uint32_t len, const void *payload)
{
    uint8_t lb[4];
    put32(lb, len);
    return crc32c(crc32c(0, lb, 4), payload, len);
}

static void make_header(uint8_t *h, uint32_t kind, uint32_t version)
{
    memcpy(h, MAGIC, 8);
    put32(h + 8, version);
    put32(h + 12, kind);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- directories ---------------------------------------------------------------------------- */
static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int durable_check_dir(const char *dir, char *err, size_t errlen)
{
    char probe[4096];
    if (mkdir_p(dir) < 0) {
        snprintf(err, errlen, "cannot create data directory '%s': %s", dir, strerror(errno));
        return -1;
    }
    snprintf(probe, sizeof probe, "%s/.write-probe-%d", dir, (int)getpid());
    int fd = open(probe, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "data directory '%s' is not writable: %s", dir, strerror(errno));
        return -1;
    }
    int rc = write_all(fd, "ok\n", 3);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    unlink(probe);
    if (rc < 0) {
        snprintf(err, errlen, "data directory '%s' cannot be written: %s", dir, strerror(-rc));
        return -1;
    }
    return 0;
}

int durable_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static void dir_of(const char *path, char *out, size_t cap)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(out, cap, "%s", dirname(tmp));
}

int durable_keep_aside(const char *path, char *out, size_t cap)
{
    char dir[4096];
    snprintf(out, cap, "%s.damaged-%lld", path, (long long)clock_now_ms());
    if (rename(path, out) < 0)
        return -errno;
    dir_of(path, dir, sizeof dir);
    durable_sync_dir(dir);
    return 0;
}

/* ---- dfile ----------------------------------------------------------------------------------- */
struct dfile {
    int fd;
    char *path, *tmp;
    uint8_t *buf;
    size_t len, cap;
    uint64_t records, bytes;
    int err;
};

static int dfile_flushbuf(struct dfile *f)
{
    if (f->len && !f->err) {
        int rc = write_all(f->fd, f->buf, f->len);
        if (rc < 0)
            f->err = -rc;
        f->bytes += f->len;
    }
    f->len = 0;
    return f->err ? -1 : 0;
}

static int dfile_put(struct dfile *f, const void *p, size_t n)
{
    if (f->len + n > f->cap && dfile_flushbuf(f) < 0)
        return -1;
    if (n > f->cap) {
        int rc = write_all(f->fd, p, n);
        if (rc < 0) {
            f->err = -rc;
            return -1;
        }
        f->bytes += n;
        return 0;
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
    return 0;
}

struct dfile *dfile_create(const char *path, uint32_t kind, uint32_t version, char *err,
                           size_t errlen)
{
    struct dfile *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    f->path = strdup(path);
    if (asprintf(&f->tmp, "%s.tmp", path) < 0)
        abort();
    f->fd = open(f->tmp, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0640);
    if (f->fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", f->tmp, strerror(errno));
        free(f->path);
        free(f->tmp);
        free(f);
        return NULL;
    }
    f->cap = 1 << 20;
    f->buf = malloc(f->cap);
    if (!f->buf)
        abort();
    uint8_t h[HEADER_LEN];
    make_header(h, kind, version);
    dfile_put(f, h, sizeof h);
    return f;
}

int dfile_record(struct dfile *f, const void *rec, size_t len)
{
    uint8_t h[8];
    if (len == 0 || len > DURABLE_MAX_RECORD) {
        f->err = EINVAL;
        return -1;
    }
    put32(h, (uint32_t)len);
    put32(h + 4, record_crc((uint32_t)len, rec));
    if (dfile_put(f, h, 8) < 0 || dfile_put(f, rec, len) < 0)
        return -1;
    f->records++;
    return 0;
}

static void dfile_free(struct dfile *f)
{
    free(f->buf);
    free(f->path);
    free(f->tmp);
    free(f);
}

void dfile_abort(struct dfile *f)
{
    if (!f)
        return;
    close(f->fd);
    unlink(f->tmp);
    dfile_free(f);
}

int dfile_commit(struct dfile *f, uint64_t *bytes, char *err, size_t errlen)
{
    uint8_t seal[8];
    char dir[4096];
    put32(seal, 0);
    put32(seal + 4, (uint32_t)f->records);
    dfile_put(f, seal, 8);
    dfile_flushbuf(f);
    if (!f->err && fsync(f->fd) < 0)
        f->err = errno;
    if (f->err) {
        snprintf(err, errlen, "cannot write '%s': %s", f->tmp, strerror(f->err));
        dfile_abort(f);
        return -1;
    }
    close(f->fd);
    f->fd = -1;
    if (rename(f->tmp, f->path) < 0) {
        snprintf(err, errlen, "cannot rename '%s' to '%s': %s", f->tmp, f->path, strerror(errno));
        unlink(f->tmp);
        dfile_free(f);
        return -1;
    }
    dir_of(f->path, dir, sizeof dir);
    durable_sync_dir(dir);
    if (bytes)
        *bytes = f->bytes;
    dfile_free(f);
    return 0;
}

/* ---- reading --------------------------------------------------------------------------------- */
int dread_file(const char *path, uint32_t kind, int (*cb)(void *arg, const uint8_t *rec, size_t len),
               void *arg, struct dread_result *res)
{
    memset(res, 0, sizeof *res);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT)
            return 1;
        snprintf(res->why, sizeof res->why, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    fstat(fileno(fp), &st);
    res->file_bytes = (uint64_t)st.st_size;
    uint8_t h[HEADER_LEN];
    int rc = 0;
    uint8_t *buf = NULL;
    size_t bufcap = 0;
    if (fread(h, 1, HEADER_LEN, fp) != HEADER_LEN || memcmp(h, MAGIC, 8) != 0) {
        size_t have = (size_t)res->file_bytes < sizeof MAGIC ? (size_t)res->file_bytes
                                                              : sizeof MAGIC;
        if (res->file_bytes < HEADER_LEN && res->file_bytes > 0 && memcmp(h, MAGIC, have) == 0) {
            /* Torn while writing the header: nothing was ever in it. */
            res->damaged = true;
            snprintf(res->why, sizeof res->why, "header torn at %llu bytes",
                     (unsigned long long)res->file_bytes);
            goto out;
        }
        if (res->file_bytes == 0) {
            res->damaged = true;
            snprintf(res->why, sizeof res->why, "empty file (no header)");
            goto out;
        }
        snprintf(res->why, sizeof res->why, "not an engbot record file (bad magic)");
        rc = -1;
        goto out;
    }
    if (get32(h + 12) != kind) {
        snprintf(res->why, sizeof res->why, "wrong file kind 0x%08x (expected 0x%08x)",
                 get32(h + 12), kind);
        rc = -1;
        goto out;
    }
    res->version = get32(h + 8);
    res->good_bytes = HEADER_LEN;
    for (;;) {
        uint8_t rh[8];
        size_t n = fread(rh, 1, 8, fp);
        if (n == 0)
            break; /* clean end */
        if (res->sealed) {
            res->damaged = true;
            snprintf(res->why, sizeof res->why, "data after the seal at offset %llu",
                     (unsigned long long)res->good_bytes);
            break;
        }
        if (n < 8) {
            res->damaged = true;
            snprintf(res->why, sizeof res->why, "torn record header at offset %llu",
                     (unsigned long long)res->good_bytes);
            break;
        }
        uint32_t len = get32(rh), crc = get32(rh + 4);
        if (len == 0) {
            if (crc != res->records) {
                res->damaged = true;
                snprintf(res->why, sizeof res->why,
                         "seal counts %u records but %llu were read (offset %llu)", crc,
                         (unsigned long long)res->records, (unsigned long long)res->good_bytes);
                break;
            }
            res->sealed = true;
            res->good_bytes += 8;
            continue;
        }
        if (len > DURABLE_MAX_RECORD || res->good_bytes + 8 + len > res->file_bytes) {
            res->damaged = true;
            snprintf(res->why, sizeof res->why, "%s record (length %u) at offset %llu",
                     len > DURABLE_MAX_RECORD ? "corrupt" : "torn", len,
                     (unsigned long long)res->good_bytes);
            break;
        }
        if (len > bufcap) {
            free(buf);
            bufcap = len;
            buf = malloc(bufcap);
            if (!buf)
                abort();
        }
        if (fread(buf, 1, len, fp) != len) {
            res->damaged = true;
            snprintf(res->why, sizeof res->why, "torn record at offset %llu",
                     (unsigned long long)res->good_bytes);
            break;
        }
        if (record_crc(len, buf) != crc) {
            res->damaged = true;
            snprintf(res->why, sizeof res->why, "checksum mismatch in record at offset %llu",
                     (unsigned long long)res->good_bytes);
            break;
        }
        if (cb(arg, buf, len) != 0) {
            snprintf(res->why, sizeof res->why, "record at offset %llu was rejected",
                     (unsigned long long)res->good_bytes);
            rc = -1;
            break;
        }
        res->records++;
        res->good_bytes += 8 + len;
    }
out:
    free(buf);
    fclose(fp);
    return rc;
}

/* ---- rlog ------------------------------------------------------------------------------------ */
struct waiter {
    rlog_done_fn *fn;
    void *arg;
};

#define RLOG_MAX_PENDING (64u << 20)

struct rlog {
    pthread_mutex_t mu;
    pthread_cond_t wake, synced;
    pthread_t thread;
    int fd;
    char *path;
    struct rlog_opts o;
    uint32_t kind, version;
    /* pending: appended, not yet written */
    uint8_t *pend;
    size_t plen, pcap, precords;
    struct waiter *waiters;
    size_t nwait, wcap;
    int64_t first_pending_ms; /* mono ms of the oldest pending record */
    uint64_t appended_seq, synced_seq; /* records appended / made durable */
    uint64_t file_bytes;
    int error;                /* last write/fsync error; 0 once everything is written */
    int64_t retry_at_ms;      /* after a failure: no new attempt before this (mono ms) */
    int64_t backoff_ms;
    uint64_t attempts;        /* commit attempts, for rlog_flush to notice a failed one */
    bool closing, flush_now, committing, close_tried;
};

static int open_log_file(const char *path, uint32_t kind, uint32_t version, uint64_t *size,
                         char *err, size_t errlen)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    fstat(fd, &st);
    if (st.st_size == 0) {
        uint8_t h[HEADER_LEN];
        make_header(h, kind, version);
        int rc = write_all(fd, h, sizeof h);
        if (rc == 0 && fsync(fd) < 0)
            rc = -errno;
        if (rc < 0) {
            snprintf(err, errlen, "cannot write log '%s': %s", path, strerror(-rc));
            close(fd);
            return -1;
        }
        char dir[4096];
        dir_of(path, dir, sizeof dir);
        durable_sync_dir(dir);
        st.st_size = HEADER_LEN;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/* One group commit: takes everything pending, writes and syncs it, runs the callbacks.
 * Called with mu held; returns with mu held. On failure the records go back to the front of
 * pending (see DESIGN) and the callbacks are told the error. */
static void commit_locked(struct rlog *l)
{
    uint8_t *buf = l->pend;
    size_t len = l->plen, nrec = l->precords;
    struct waiter *w = l->waiters;
    size_t nw = l->nwait;
    uint64_t seq = l->appended_seq;
    int fd = l->fd;
    uint64_t base = l->file_bytes;
    int64_t first = l->first_pending_ms;

    l->pend = NULL;
    l->plen = l->pcap = l->precords = 0;
    l->waiters = NULL;
    l->nwait = l->wcap = 0;
    l->first_pending_ms = 0;
    l->committing = true;
    pthread_mutex_unlock(&l->mu);

    int err = 0;
    if (len) {
        int rc = write_all(fd, buf, len);
        if (rc < 0) {
            err = -rc;
        } else if (!l->o.no_fsync) {
            int64_t t0 = clock_mono_us();
            if (fdatasync(fd) < 0)
                err = errno;
            if (l->o.fsync_seconds)
                metric_observe(l->o.fsync_seconds, (double)(clock_mono_us() - t0) / 1e6);
        }
        if (err) {
            /* Cut back to the last good record: after a failed fsync the kernel may have
             * dropped the dirty pages, so what was written is not trusted either. */
            if (ftruncate(fd, (off_t)base) < 0) {
                /* the reader will report the torn tail */
            }
        }
        if (l->o.batch_records && !err)
            metric_observe(l->o.batch_records, (double)nrec);
    }
    for (size_t i = 0; i < nw; i++)
        w[i].fn(w[i].arg, err);
    free(w);

    pthread_mutex_lock(&l->mu);
    l->attempts++;
    if (err) {
        /* Put the batch back in front of what was appended meanwhile, to write it again. */
        size_t need = len + l->plen;
        uint8_t *nb = realloc(buf, need ? need : 1);
        if (!nb)
            abort();
        if (l->plen)
            memcpy(nb + len, l->pend, l->plen);
        free(l->pend);
        l->pend = nb;
        l->plen = need;
        l->pcap = need;
        l->precords += nrec;
        l->first_pending_ms = first;
        l->error = err;
        l->backoff_ms = l->backoff_ms ? (l->backoff_ms * 2 > 1000 ? 1000 : l->backoff_ms * 2) : 50;
        l->retry_at_ms = clock_mono_ms() + l->backoff_ms;
    } else {
        free(buf);
        l->file_bytes = base + len;
        l->backoff_ms = 0;
        l->retry_at_ms = 0;
        if (l->synced_seq < seq)
            l->synced_seq = seq;
        if (!l->plen)
            l->error = 0;
    }
    l->committing = false;
    pthread_cond_broadcast(&l->synced);
}

static void *rlog_thread(void *arg)
{
    struct rlog *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        bool due = false;
        int64_t now = clock_mono_ms();
        if (l->closing && l->plen && l->error && l->close_tried) {
            break; /* closing with the disk still failing: what is left is lost (reported) */
        } else if (l->plen && l->error && now < l->retry_at_ms && !l->closing) {
            due = false; /* failing: wait for the backoff */
        } else if (l->plen) {
            if (l->nwait || l->flush_now || l->closing || l->error)
                due = true;
            else if (now - l->first_pending_ms >= l->o.sync_interval_ms)
                due = true;
        }
        if (due) {
            l->flush_now = false;
            if (l->closing)
                l->close_tried = true;
            commit_locked(l);
            continue;
        }
        if (l->closing) {
            pthread_cond_broadcast(&l->synced);
            break;
        }
        if (l->plen) {
            int64_t left = l->error ? l->retry_at_ms - now
                                    : l->o.sync_interval_ms - (now - l->first_pending_ms);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            if (left < 1)
                left = 1;
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&l->wake, &l->mu, &ts);
        } else {
            if (l->flush_now) {
                l->flush_now = false;
                pthread_cond_broadcast(&l->synced);
            }
            pthread_cond_wait(&l->wake, &l->mu);
        }
    }
    pthread_cond_broadcast(&l->synced);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int rlog_truncate(const char *path, uint64_t good_bytes)
{
    if (truncate(path, (off_t)good_bytes) < 0)
        return -errno;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

struct rlog *rlog_open(const char *path, uint32_t kind, uint32_t version,
                       const struct rlog_opts *o, char *err, size_t errlen)
{
    struct rlog *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->fd = open_log_file(path, kind, version, &l->file_bytes, err, errlen);
    if (l->fd < 0) {
        free(l);
        return NULL;
    }
    l->path = strdup(path);
    l->o = *o;
    l->kind = kind;
    l->version = version;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    pthread_cond_init(&l->synced, NULL);
    pthread_create(&l->thread, NULL, rlog_thread, l);
    return l;
}

int rlog_append(struct rlog *l, const void *rec, size_t len, rlog_done_fn *done, void *arg)
{
    uint8_t h[8];
    if (len == 0 || len > DURABLE_MAX_RECORD)
        return -EINVAL;
    put32(h, (uint32_t)len);
    put32(h + 4, record_crc((uint32_t)len, rec));
    pthread_mutex_lock(&l->mu);
    if (l->closing) {
        pthread_mutex_unlock(&l->mu);
        return -ESHUTDOWN;
    }
    if (l->error && l->plen + 8 + len > RLOG_MAX_PENDING) {
        int e = l->error;
        pthread_mutex_unlock(&l->mu);
        return -e;
    }
    if (l->plen + 8 + len > l->pcap) {
        size_t nc = l->pcap ? l->pcap : 4096;
        while (nc < l->plen + 8 + len)
            nc *= 2;
        uint8_t *p = realloc(l->pend, nc);
        if (!p)
            abort();
        l->pend = p;
        l->pcap = nc;
    }
    memcpy(l->pend + l->plen, h, 8);
    memcpy(l->pend + l->plen + 8, rec, len);
    bool was_empty = l->plen == 0;
    l->plen += 8 + len;
    l->precords++;
    l->appended_seq++;
    if (was_empty)
        l->first_pending_ms = clock_mono_ms();
    if (done) {
        if (l->nwait == l->wcap) {
            l->wcap = l->wcap ? l->wcap * 2 : 64;
            struct waiter *w = realloc(l->waiters, l->wcap * sizeof *w);
            if (!w)
                abort();
            l->waiters = w;
        }
        l->waiters[l->nwait++] = (struct waiter){done, arg};
    }
    if (done || was_empty)
        pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* Waits (mu held) until everything appended up to target is written, or a commit attempt
 * made after this call started failed. Returns 0 or the error. */
static int wait_synced(struct rlog *l, uint64_t target)
{
    uint64_t a0 = l->attempts;
    l->flush_now = true;
    pthread_cond_signal(&l->wake);
    while ((l->synced_seq < target && !(l->error && l->attempts > a0) &&
            !(l->closing && l->plen == 0)) ||
           l->committing)
        pthread_cond_wait(&l->synced, &l->mu);
    return l->synced_seq >= target ? 0 : (l->error ? l->error : EIO);
}

int rlog_flush(struct rlog *l)
{
    pthread_mutex_lock(&l->mu);
    int err = wait_synced(l, l->appended_seq);
    pthread_mutex_unlock(&l->mu);
    return err ? -err : 0;
}

int rlog_rotate(struct rlog *l, const char *new_path, char *err, size_t errlen)
{
    /* Hold the lock across the switch so no append lands between flush and reopen. */
    pthread_mutex_lock(&l->mu);
    int e = wait_synced(l, l->appended_seq);
    if (e) {
        snprintf(err, errlen, "cannot rotate '%s': the log cannot be written: %s", l->path,
                 strerror(e));
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    uint64_t size;
    int fd = open_log_file(new_path, l->kind, l->version, &size, err, errlen);
    if (fd < 0) {
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    close(l->fd);
    l->fd = fd;
    l->file_bytes = size;
    free(l->path);
    l->path = strdup(new_path);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

uint64_t rlog_bytes(struct rlog *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t b = l->file_bytes;
    pthread_mutex_unlock(&l->mu);
    return b;
}

int rlog_error(struct rlog *l)
{
    pthread_mutex_lock(&l->mu);
    int e = l->error;
    pthread_mutex_unlock(&l->mu);
    return e;
}

void rlog_close(struct rlog *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->closing = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    if (!l->o.no_fsync)
        fdatasync(l->fd);
    close(l->fd);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->synced);
    free(l->pend);
    free(l->waiters);
    free(l->path);
    free(l);
}
