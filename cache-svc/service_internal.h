/* service_internal.h -- what the CacheService handler files share (service.c: catalogue
 * methods, helpers and wiring; service_read.c: ReadFile; service_fileid.c: the file_id
 * methods). Every helper that fails has already set the call's status: return its code. */
#ifndef ENGBOT_CACHE_SERVICE_INTERNAL_H
#define ENGBOT_CACHE_SERVICE_INTERNAL_H

#include "engbot/cache/v1/cache.pb-c.h"
#include "rpc.h"
#include "service.h"

#include <stdatomic.h>
#include <sys/stat.h>

typedef Engbot__Cache__V1__Entry Entry;

struct service {
    struct service_deps d;
    struct service_opts o;
    _Atomic int reads;
    struct cachestat cat_cs, fid_cs;
    int64_t t0_ms;
    struct metric *m_refused[PS__COUNT], *m_bytes, *m_reads, *m_busy, *m_too_large;
};

/* Maps a path-safety result to a status (once, here) and counts refusals by reason. */
int service_refuse(struct service *s, struct rpc_call *c, const struct ps_err *e, const char *what);
/* RPC_OK, or INVALID_ARGUMENT when a string field of the request holds a NUL byte. */
int service_check_nul(struct service *s, struct rpc_call *c, const ProtobufCMessageDescriptor *d);
/* An entry message in call memory. */
Entry *service_entry_of(struct rpc_call *c, const struct cat_info *in);
/* The catalogue entry at path now, in call memory; NULL when it is not there. */
Entry *service_entry_at(struct service *s, struct rpc_call *c, const char *path);
/* Finds the entry named by id (when set) or path ("" is the root when root_ok); *out is its
 * path in call memory. */
int service_locate(struct service *s, struct rpc_call *c, const char *id, const char *path,
                   bool root_ok, char **out);
/* The existence cache's verdict on path as a status. */
int service_verify(struct service *s, struct rpc_call *c, const char *path);
int64_t service_mtime_ms(const struct stat *st);

int service_read_file(struct rpc_call *c, const ProtobufCMessage *req, void *svc);
int service_get_file_id(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *svc);
int service_put_file_id(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *svc);
int service_drop_file_id(struct rpc_call *c, const ProtobufCMessage *req, ProtobufCMessage *resp,
                         void *svc);

#endif
