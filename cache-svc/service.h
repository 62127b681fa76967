/* service.h -- engbot.cache.v1.CacheService: the RPC handlers, translating between protobuf
 * and the catalogue, the existence cache, the scanner and the file_id store. Path-safety
 * refusals become INVALID_ARGUMENT (malformed) or PERMISSION_DENIED (policy) here, once, with
 * a message a grpcurl user can act on, and are counted (engbot_cache_refused_total{reason}). */
#ifndef ENGBOT_CACHE_SERVICE_H
#define ENGBOT_CACHE_SERVICE_H

#include "catalogue.h"
#include "existence.h"
#include "fileids.h"
#include "pathsafe.h"
#include "scan.h"
#include "watch.h"

#include <stdint.h>

struct rpc_server;

struct service_deps { /* all borrowed; they outlive the service */
    struct cat *cat;
    struct scan *scan;
    struct exist *exist;
    struct fileids *fileids;
    const struct ps_root *root;
    struct watch *watch; /* may be NULL */
};

struct service_opts {
    int64_t max_file_size;        /* bytes; larger files: RESOURCE_EXHAUSTED */
    int64_t chunk_size;           /* bytes per ReadFile message */
    int64_t max_concurrent_reads; /* ReadFile streams at once; more: RESOURCE_EXHAUSTED */
};

struct service;
struct service *service_new(const struct service_deps *d, const struct service_opts *o);
/* Registers CacheService on srv. */
void service_register(struct service *s, struct rpc_server *srv);
void service_free(struct service *s);
/* The method table (for tests and the handler fuzz target, which run it on test calls). */
struct rpc_method;
const struct rpc_method *service_methods(size_t *n);

#endif
