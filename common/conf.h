/* conf.h -- one settings table per program: every setting is a flag and an environment
 * variable (--grpc-listen / GRPC_LISTEN; the flag wins), with a default, bounds and help text.
 * --help is generated from the tables, --version prints the git-describe version, and a bad
 * value stops the program at start with one line naming the setting, the value and what is
 * allowed (exit code 2). Validation happens once, here. */
#ifndef ENGBOT_CONF_H
#define ENGBOT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_type {
    CONF_STR,      /* char **: any string (default may be NULL) */
    CONF_INT,      /* int64_t *: decimal integer within [min, max] */
    CONF_BOOL,     /* bool *: true/false/1/0/yes/no/on/off */
    CONF_DURATION, /* int64_t * in milliseconds: "250ms", "30s", "10m", "1h", "1d"; bare = s */
    CONF_SIZE,     /* int64_t * in bytes: "512", "64k"/"64KiB", "4M"/"4MiB", "1G"/"1GiB" */
    CONF_ADDR,     /* char **: "HOST:PORT" with PORT 0..65535 (0 = pick a free port) */
    CONF_ENUM,     /* char **: one of `choices` ("a|b|c") */
    CONF_IDLIST,   /* struct conf_idlist *: comma-separated 64-bit integers (Telegram ids) */
};

enum {
    CONF_SECRET = 1u << 0, /* never printed (bot token) */
};

struct conf_idlist {
    int64_t *ids;
    size_t n;
};

struct conf_opt {
    const char *name; /* flag without dashes, e.g. "grpc-listen"; env is GRPC_LISTEN */
    enum conf_type type;
    void *dst;
    const char *def; /* default, as it would be typed; NULL = empty */
    int64_t min, max; /* bounds for INT/DURATION/SIZE (both 0 = none) */
    const char *help;
    const char *choices; /* CONF_ENUM */
    unsigned flags;
};

/* Parses argv and the environment against the NULL-terminated list of tables (each ended by
 * an entry with name == NULL). Handles --help and --version (exit 0). On a bad value prints
 * "<prog>: invalid <FLAG/ENV> '<value>': <what is allowed>" and exits 2. */
void conf_load(const struct conf_opt *const *tables, int argc, char **argv, const char *prog,
               const char *summary);

/* Parsers, exposed for tests and for programs that read values from elsewhere. Each returns
 * true on success; on failure fills why (cap bytes) with what is allowed. */
bool conf_parse_duration(const char *s, int64_t *ms, char *why, size_t cap);
bool conf_parse_size(const char *s, int64_t *bytes, char *why, size_t cap);
bool conf_parse_bool(const char *s, bool *out);
bool conf_parse_addr(const char *s, char *host, size_t hostcap, int *port, char *why, size_t cap);
bool conf_parse_idlist(const char *s, struct conf_idlist *out, char *why, size_t cap);
bool conf_idlist_has(const struct conf_idlist *l, int64_t id);

/* Frees the strings and lists conf_load stored (call at exit, so leak checkers stay quiet). */
void conf_free(const struct conf_opt *const *tables);

/* Logs every setting at debug level (secrets as "[set]"). */
void conf_log(const struct conf_opt *const *tables);

extern const char engbot_version[];

#endif
