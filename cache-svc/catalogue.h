/* catalogue.h -- the index of FILES_ROOT in memory (the seed's "file mapping cache"): every
 * folder and file with its stable id, name, path, size, mtime and content type; folder
 * listings (folders first, then files, each in natural name order), lookups by id, path and
 * name, and ranked word search.
 *
 * Locking: one reader-writer lock. Lookups, listings and searches run under cat_rdlock and
 * return slots (small integers) and struct cat_info whose strings are BORROWED: valid only
 * until cat_unlock. Changes run under cat_wrlock. Slots are reused after an entry is removed,
 * so never keep one across an unlock. The existence stamp (cat_checked/cat_set_checked) is
 * atomic and may be read and written under the read lock.
 *
 * Memory: about 90 bytes per entry plus its path, its slot in three hash chains and in its
 * folder's child array (measured: docs/cache-svc.md, "Benchmarks"). */
#ifndef ENGBOT_CACHE_CATALOGUE_H
#define ENGBOT_CACHE_CATALOGUE_H

#include "catid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAT_NONE UINT32_MAX

/* Same numbers as engbot.cache.v1.EntryKind. */
enum cat_kind { CAT_FOLDER = 1, CAT_FILE = 2 };

struct cat;

struct cat_opts {
    size_t max_entries; /* folders and files, the root included */
    int id_bits;        /* bits of the id hash kept (default CATID_BITS); tests lower it to
                           force collisions */
};

struct cat *cat_new(const struct cat_opts *o);
void cat_free(struct cat *c);

void cat_rdlock(struct cat *c);
void cat_wrlock(struct cat *c);
void cat_unlock(struct cat *c);

/* ---- changes (write lock) ------------------------------------------------------------------- */
/* One entry of a folder as read from disk. */
struct cat_item {
    const char *name; /* already passed ps_check_name */
    enum cat_kind kind;
    uint64_t size;
    int64_t mtime_ms;
};

struct cat_delta {
    unsigned added, removed, changed; /* entries (a removed folder counts its subtree) */
    unsigned dropped;                 /* not added: the catalogue holds max_entries */
};

/* Called for every folder added to or removed from the catalogue (a removed folder's subtree
 * included), under the write lock: record, do not call back into the catalogue. */
typedef void cat_folder_fn(void *ud, const char *path, bool added);

/* Makes the folder at path hold exactly the n items (names unique; items is reordered).
 * Entries whose kind changed are removed and added again. Files whose size or mtime changed
 * count as changed. Returns 0, or -1 when path is not a folder of the catalogue. */
int cat_sync_folder(struct cat *c, const char *path, struct cat_item *items, size_t n,
                    cat_folder_fn *fn, void *ud, struct cat_delta *d);
/* Sets an entry's size and mtime; true when they changed. */
bool cat_set_stat(struct cat *c, uint32_t slot, uint64_t size, int64_t mtime_ms);
/* Removes an entry (a folder with everything inside). Not the root. */
void cat_remove(struct cat *c, uint32_t slot, cat_folder_fn *fn, void *ud, struct cat_delta *d);

/* ---- existence stamps (atomic; read lock is enough) ------------------------------------------ */
int64_t cat_checked(const struct cat *c, uint32_t slot);
void cat_set_checked(struct cat *c, uint32_t slot, int64_t mono_ms);
/* Forgets the stamps of slot and, for a folder, of everything inside. */
void cat_forget_checks(struct cat *c, uint32_t slot);

/* ---- lookups (read lock) --------------------------------------------------------------------- */
uint32_t cat_root(const struct cat *c);
uint32_t cat_by_id(const struct cat *c, const char *id, size_t len); /* CAT_NONE if absent */
uint32_t cat_by_path(const struct cat *c, const char *path);
/* Files named name (ASCII case-insensitive), in path order: fills up to cap slots, returns
 * how many there are. */
size_t cat_by_name(const struct cat *c, const char *name, uint32_t *out, size_t cap);

struct cat_info {
    char id[CATID_LEN + 1];
    char parent_id[CATID_LEN + 1]; /* "" for the root */
    const char *name, *path;       /* borrowed */
    const char *content_type;      /* static; "" for folders */
    enum cat_kind kind;
    uint64_t size;
    int64_t mtime_ms;
    uint32_t child_count;
};
void cat_get(const struct cat *c, uint32_t slot, struct cat_info *out);
enum cat_kind cat_kind_of(const struct cat *c, uint32_t slot);
const char *cat_path(const struct cat *c, uint32_t slot); /* borrowed */
uint32_t cat_parent(const struct cat *c, uint32_t slot);

/* One page of a folder: fills up to n slots starting at child number off, returns the number
 * of children. */
size_t cat_list(const struct cat *c, uint32_t folder, size_t off, size_t n, uint32_t *out);

#define CAT_MAX_WORDS 8
#define CAT_MAX_QUERY 256
/* Entries matching every word of query (ASCII case-insensitive, in the name or the folder
 * path), best first: fills up to cap slots, returns the number of matches. -1 when the query
 * has no words or is too long (over CAT_MAX_QUERY bytes or CAT_MAX_WORDS words). */
long cat_search(const struct cat *c, const char *query, bool files_only, uint32_t *out, size_t cap);

struct cat_stats {
    size_t entries, files, folders;
    size_t bytes;   /* memory held by the index */
    size_t dropped; /* entries not added because the catalogue was full, since start */
};
void cat_stats(const struct cat *c, struct cat_stats *s);

/* Natural name order: case-insensitive, digit runs by value ("Rev 9" < "Rev 10"). */
int cat_name_cmp(const char *a, const char *b);

#endif
