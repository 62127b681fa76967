/* service_read.c -- ReadFile: the file is opened under the root fd one component at a time
 * (a file swapped for a symlink since it was indexed is refused here, whatever the catalogue
 * says), checked against MAX_FILE_SIZE and MAX_CONCURRENT_READS, and streamed in CHUNK_SIZE
 * messages with flow control; the first message carries the entry as opened. */
#include "log.h"
#include "metrics.h"
#include "service_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEND_QUEUE 4 /* chunks queued for the network at most (flow control) */

int64_t service_mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* Streams the open file fd (as fstat'ed in st) from offset; entry goes in the first message. */
static int stream_file(struct service *s, struct rpc_call *c, int fd, const struct stat *st,
                       uint64_t offset, Entry *entry)
{
    uint64_t size = (uint64_t)st->st_size;
    size_t chunk = (size_t)s->o.chunk_size;
    uint8_t *buf = malloc(chunk);
    if (!buf)
        abort();
    int code = RPC_OK;
    uint64_t off = offset;
    bool first = true;
    for (;;) {
        size_t want = size - off < chunk ? (size_t)(size - off) : chunk;
        ssize_t n = 0;
        if (want) {
            n = pread(fd, buf, want, (off_t)off);
            if (n < 0) {
                code = rpc_call_errorf(c, RPC_UNAVAILABLE, "read failed: %s", strerror(errno));
                break;
            }
            if (n == 0) {
                code = rpc_call_errorf(c, RPC_ABORTED,
                                       "the file shrank while it was read; read it again");
                break;
            }
        }
        Engbot__Cache__V1__ReadFileResponse m = ENGBOT__CACHE__V1__READ_FILE_RESPONSE__INIT;
        m.entry = first ? entry : NULL;
        m.offset = off;
        m.data.data = buf;
        m.data.len = (size_t)n;
        off += (uint64_t)n;
        m.eof = off >= size;
        if (rpc_call_send_wait(c, &m.base, SEND_QUEUE) < 0) {
            code = RPC_CANCELLED;
            break;
        }
        metric_add(s->m_bytes, (double)n);
        first = false;
        if (m.eof)
            break;
    }
    free(buf);
    if (code == RPC_OK) {
        struct stat after;
        if (fstat(fd, &after) == 0 &&
            (after.st_size != st->st_size || service_mtime_ms(&after) != service_mtime_ms(st)))
            code = rpc_call_errorf(c, RPC_ABORTED,
                                   "the file changed while it was read; read it again");
    }
    return code;
}

int service_read_file(struct rpc_call *c, const ProtobufCMessage *req, void *svc)
{
    struct service *s = svc;
    const Engbot__Cache__V1__ReadFileRequest *rq = (const void *)req;
    char *path;
    int code = service_check_nul(s, c, req->descriptor);
    if (code || (code = service_locate(s, c, rq->id, rq->path, false, &path)))
        return code;
    if (atomic_fetch_add(&s->reads, 1) >= s->o.max_concurrent_reads) {
        atomic_fetch_sub(&s->reads, 1);
        metric_inc(s->m_busy);
        return rpc_call_errorf(c, RPC_RESOURCE_EXHAUSTED,
                               "too many files being read at once (MAX_CONCURRENT_READS=%lld); "
                               "retry shortly",
                               (long long)s->o.max_concurrent_reads);
    }
    metric_set(s->m_reads, atomic_load(&s->reads));
    int fd = -1;
    struct stat st;
    struct ps_err e;
    /* Opened under the root fd, one component at a time: a file swapped for a symlink since
     * it was indexed is refused here, whatever the catalogue says. */
    if (ps_resolve(s->d.root, path, PS_WANT_FILE | PS_OPEN, &fd, &st, &e) < 0) {
        if (e.reason != PS_IO)
            scan_path(s->d.scan, path, SCAN_EXISTENCE, NULL); /* vanished or refused: drop it */
        code = service_refuse(s, c, &e, "path");
        goto out;
    }
    if (st.st_size > s->o.max_file_size) {
        metric_inc(s->m_too_large);
        code = rpc_call_errorf(c, RPC_RESOURCE_EXHAUSTED,
                               "the file is %lld bytes, over MAX_FILE_SIZE (%lld bytes)",
                               (long long)st.st_size, (long long)s->o.max_file_size);
        goto out;
    }
    if (rq->offset > (uint64_t)st.st_size) {
        code = rpc_call_errorf(c, RPC_OUT_OF_RANGE, "offset %llu is past the end (%lld bytes)",
                               (unsigned long long)rq->offset, (long long)st.st_size);
        goto out;
    }
    exist_mark(s->d.exist, path);
    Entry *entry = service_entry_at(s, c, path);
    if (!entry || entry->size != (uint64_t)st.st_size ||
        entry->mtime_unix_ms != service_mtime_ms(&st)) {
        scan_path(s->d.scan, path, SCAN_EXISTENCE, NULL); /* the catalogue was behind */
        entry = service_entry_at(s, c, path);
    }
    if (!entry) {
        code = rpc_call_errorf(c, RPC_NOT_FOUND, "the file left the catalogue");
        goto out;
    }
    entry->size = (uint64_t)st.st_size; /* exactly the version being sent */
    entry->mtime_unix_ms = service_mtime_ms(&st);
    code = stream_file(s, c, fd, &st, rq->offset, entry);
out:
    if (fd >= 0)
        close(fd);
    atomic_fetch_sub(&s->reads, 1);
    metric_set(s->m_reads, atomic_load(&s->reads));
    return code;
}
