/* rpc_descset.c -- the FileDescriptorSet embedded at build time (cmake/Protos.cmake), indexed
 * for server reflection and for the streaming flags of each method.
 *
 * Each file is served verbatim: we keep (pointer, length) into the embedded bytes and parse a
 * copy only to index its symbols. Built once, on first use; read-only afterwards. */
#include "google/protobuf/descriptor.pb-c.h"
#include "rpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char engbot_descriptor_set[];
extern const size_t engbot_descriptor_set_len;

struct ds_file {
    const uint8_t *raw;
    size_t len;
    Google__Protobuf__FileDescriptorProto *fd;
    int *deps; /* indices of direct dependencies */
    size_t ndeps;
};

struct ds_sym {
    char *name;
    int file;
};

struct rpc_descset {
    struct ds_file *files;
    size_t nfiles;
    struct ds_sym *syms;
    size_t nsyms, capsyms;
};

static struct rpc_descset g_ds;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void add_sym(const char *prefix, const char *name, int file)
{
    if (g_ds.nsyms == g_ds.capsyms) {
        g_ds.capsyms = g_ds.capsyms ? g_ds.capsyms * 2 : 256;
        g_ds.syms = realloc(g_ds.syms, g_ds.capsyms * sizeof *g_ds.syms);
        if (!g_ds.syms)
            abort();
    }
    char *full;
    if (asprintf(&full, "%s%s%s", prefix, *prefix ? "." : "", name) < 0)
        abort();
    g_ds.syms[g_ds.nsyms++] = (struct ds_sym){full, file};
}

static void index_message(const char *prefix, const Google__Protobuf__DescriptorProto *m, int file)
{
    add_sym(prefix, m->name, file);
    char *me;
    if (asprintf(&me, "%s%s%s", prefix, *prefix ? "." : "", m->name) < 0)
        abort();
    for (size_t i = 0; i < m->n_nested_type; i++)
        index_message(me, m->nested_type[i], file);
    for (size_t i = 0; i < m->n_enum_type; i++)
        add_sym(me, m->enum_type[i]->name, file);
    for (size_t i = 0; i < m->n_extension; i++)
        add_sym(me, m->extension[i]->name, file);
    for (size_t i = 0; i < m->n_field; i++)
        add_sym(me, m->field[i]->name, file);
    free(me);
}

static int sym_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ds_sym *)a)->name, ((const struct ds_sym *)b)->name);
}

static uint64_t varint(const uint8_t **p, const uint8_t *end, bool *ok)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    *ok = false;
    return 0;
}

static void build(void)
{
    const uint8_t *p = engbot_descriptor_set, *end = p + engbot_descriptor_set_len;
    bool ok = true;
    while (p < end && ok) {
        uint64_t tag = varint(&p, end, &ok);
        if (tag != 0x0a) /* field 1, length-delimited */
            break;
        uint64_t len = varint(&p, end, &ok);
        if (!ok || len > (uint64_t)(end - p))
            break;
        g_ds.files = realloc(g_ds.files, (g_ds.nfiles + 1) * sizeof *g_ds.files);
        struct ds_file *f = &g_ds.files[g_ds.nfiles];
        memset(f, 0, sizeof *f);
        f->raw = p;
        f->len = (size_t)len;
        f->fd = google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->raw);
        if (!f->fd) {
            fprintf(stderr, "rpc: embedded descriptor set is corrupt\n");
            abort();
        }
        g_ds.nfiles++;
        p += len;
    }
    for (size_t i = 0; i < g_ds.nfiles; i++) {
        struct ds_file *f = &g_ds.files[i];
        const char *pkg = f->fd->package ? f->fd->package : "";
        int fi = (int)i;
        f->deps = calloc(f->fd->n_dependency + 1, sizeof(int));
        for (size_t d = 0; d < f->fd->n_dependency; d++)
            for (size_t j = 0; j < g_ds.nfiles; j++)
                if (strcmp(g_ds.files[j].fd->name, f->fd->dependency[d]) == 0)
                    f->deps[f->ndeps++] = (int)j;
        for (size_t m = 0; m < f->fd->n_message_type; m++)
            index_message(pkg, f->fd->message_type[m], fi);
        for (size_t e = 0; e < f->fd->n_enum_type; e++)
            add_sym(pkg, f->fd->enum_type[e]->name, fi);
        for (size_t e = 0; e < f->fd->n_extension; e++)
            add_sym(pkg, f->fd->extension[e]->name, fi);
        for (size_t s = 0; s < f->fd->n_service; s++) {
            const Google__Protobuf__ServiceDescriptorProto *sv = f->fd->service[s];
            add_sym(pkg, sv->name, fi);
            char *svn;
            if (asprintf(&svn, "%s%s%s", pkg, *pkg ? "." : "", sv->name) < 0)
                abort();
            for (size_t m = 0; m < sv->n_method; m++)
                add_sym(svn, sv->method[m]->name, fi);
            free(svn);
        }
    }
    qsort(g_ds.syms, g_ds.nsyms, sizeof *g_ds.syms, sym_cmp);
}

const struct rpc_descset *descset_get(void)
{
    pthread_once(&g_once, build);
    return &g_ds;
}

int descset_find_symbol(const char *name)
{
    descset_get();
    struct ds_sym key = {(char *)name, 0};
    struct ds_sym *s = bsearch(&key, g_ds.syms, g_ds.nsyms, sizeof key, sym_cmp);
    return s ? s->file : -1;
}

int descset_find_file(const char *name)
{
    descset_get();
    for (size_t i = 0; i < g_ds.nfiles; i++)
        if (strcmp(g_ds.files[i].fd->name, name) == 0)
            return (int)i;
    return -1;
}

/* Appends file and its transitive dependencies (file first, each once) to out. */
static void closure(int file, bool *seen, int *out, size_t *n)
{
    if (seen[file])
        return;
    seen[file] = true;
    out[(*n)++] = file;
    const struct ds_file *f = &g_ds.files[file];
    for (size_t i = 0; i < f->ndeps; i++)
        closure(f->deps[i], seen, out, n);
}

size_t descset_closure(int file, const uint8_t **raw, size_t *len, size_t cap)
{
    descset_get();
    bool *seen = calloc(g_ds.nfiles, sizeof *seen);
    int *order = calloc(g_ds.nfiles, sizeof *order);
    size_t n = 0;
    closure(file, seen, order, &n);
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++) {
        raw[i] = g_ds.files[order[i]].raw;
        len[i] = g_ds.files[order[i]].len;
    }
    free(seen);
    free(order);
    return n;
}

size_t descset_nfiles(void)
{
    return descset_get()->nfiles;
}

/* Finds message type `name` (fully qualified) and reports whether it declares extension
 * ranges; false when no such message. */
static const Google__Protobuf__DescriptorProto *find_msg(const Google__Protobuf__DescriptorProto *m,
                                                         const char *prefix, const char *name)
{
    char *me;
    if (asprintf(&me, "%s%s%s", prefix, *prefix ? "." : "", m->name) < 0)
        abort();
    const Google__Protobuf__DescriptorProto *r = NULL;
    if (strcmp(me, name) == 0)
        r = m;
    for (size_t i = 0; !r && i < m->n_nested_type; i++)
        r = find_msg(m->nested_type[i], me, name);
    free(me);
    return r;
}

bool descset_message_exists(const char *name)
{
    int f = descset_find_symbol(name);
    if (f < 0)
        return false;
    const Google__Protobuf__FileDescriptorProto *fd = g_ds.files[f].fd;
    const char *pkg = fd->package ? fd->package : "";
    for (size_t i = 0; i < fd->n_message_type; i++)
        if (find_msg(fd->message_type[i], pkg, name))
            return true;
    return false;
}

bool descset_method_kind(const char *service, const char *method, bool *cs, bool *ss)
{
    int f = descset_find_symbol(service);
    if (f < 0)
        return false;
    const Google__Protobuf__FileDescriptorProto *fd = g_ds.files[f].fd;
    const char *pkg = fd->package ? fd->package : "";
    size_t pl = strlen(pkg);
    for (size_t s = 0; s < fd->n_service; s++) {
        const Google__Protobuf__ServiceDescriptorProto *sv = fd->service[s];
        if (strncmp(service, pkg, pl) != 0 || (pl && service[pl] != '.') ||
            strcmp(service + (pl ? pl + 1 : 0), sv->name) != 0)
            continue;
        for (size_t m = 0; m < sv->n_method; m++) {
            if (strcmp(sv->method[m]->name, method) == 0) {
                *cs = sv->method[m]->client_streaming;
                *ss = sv->method[m]->server_streaming;
                return true;
            }
        }
    }
    return false;
}
