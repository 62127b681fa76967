/* conf.c -- the settings table: flags, environment variables, defaults, bounds, --help. */
#include "conf.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void env_name(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
    out[i] = '\0';
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (!*s)
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool conf_parse_duration(const char *s, int64_t *ms, char *why, size_t cap)
{
    char *end;
    double v;
    const char *units = "a number with a unit: ms, s, m, h or d (e.g. 500ms, 30s, 10m, 1h)";
    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || v < 0 || v != v) {
        snprintf(why, cap, "%s", units);
        return false;
    }
    double mult;
    if (!*end || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60e3;
    else if (strcmp(end, "h") == 0)
        mult = 3600e3;
    else if (strcmp(end, "d") == 0)
        mult = 86400e3;
    else {
        snprintf(why, cap, "%s", units);
        return false;
    }
    if (v * mult > 9.2e18) {
        snprintf(why, cap, "a duration that fits in 64 bits");
        return false;
    }
    *ms = (int64_t)(v * mult + 0.5);
    return true;
}

bool conf_parse_size(const char *s, int64_t *bytes, char *why, size_t cap)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || v != v) {
        snprintf(why, cap, "a size in bytes, optionally with k, M or G (e.g. 4MiB, 512k)");
        return false;
    }
    double mult = 1;
    if (!*end || strcasecmp(end, "b") == 0)
        mult = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 ||
             strcasecmp(end, "kib") == 0)
        mult = 1024.0;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 ||
             strcasecmp(end, "mib") == 0)
        mult = 1024.0 * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 ||
             strcasecmp(end, "gib") == 0)
        mult = 1024.0 * 1024 * 1024;
    else {
        snprintf(why, cap, "a size in bytes, optionally with k, M or G (e.g. 4MiB, 512k)");
        return false;
    }
    if (v * mult > 9.2e18) {
        snprintf(why, cap, "a size that fits in 64 bits");
        return false;
    }
    *bytes = (int64_t)(v * mult + 0.5);
    return true;
}

bool conf_parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "true", "yes", "on"};
    static const char *const f[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, f[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool conf_parse_addr(const char *s, char *host, size_t hostcap, int *port, char *why, size_t cap)
{
    const char *colon = strrchr(s, ':');
    int64_t p;
    if (!colon || colon == s) {
        snprintf(why, cap, "HOST:PORT, e.g. 0.0.0.0:50051 or [::]:50051 (port 0 picks one)");
        return false;
    }
    if (!parse_i64(colon + 1, &p) || p < 0 || p > 65535) {
        snprintf(why, cap, "HOST:PORT with a port from 0 to 65535");
        return false;
    }
    size_t hl = (size_t)(colon - s);
    if (hl + 1 > hostcap) {
        snprintf(why, cap, "a host of at most %zu characters", hostcap - 1);
        return false;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return true;
}

bool conf_parse_idlist(const char *s, struct conf_idlist *out, char *why, size_t cap)
{
    struct conf_idlist l = {0};
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || (*end && *end != ',' && *end != ' ')) {
            snprintf(why, cap, "comma-separated 64-bit integer ids, e.g. 12345,-100987");
            free(l.ids);
            return false;
        }
        int64_t *n = realloc(l.ids, (l.n + 1) * sizeof *n);
        if (!n)
            abort();
        l.ids = n;
        l.ids[l.n++] = v;
        p = end;
    }
    free(out->ids);
    *out = l;
    return true;
}

bool conf_idlist_has(const struct conf_idlist *l, int64_t id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->ids[i] == id)
            return true;
    return false;
}

static bool enum_has(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && strncmp(p, v, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static const char *type_hint(const struct conf_opt *o)
{
    switch (o->type) {
    case CONF_INT: return "INT";
    case CONF_BOOL: return "BOOL";
    case CONF_DURATION: return "DURATION";
    case CONF_SIZE: return "SIZE";
    case CONF_ADDR: return "HOST:PORT";
    case CONF_ENUM: return o->choices;
    case CONF_IDLIST: return "ID,...";
    default: return "STR";
    }
}

static void fmt_bound(const struct conf_opt *o, int64_t v, char *out, size_t cap)
{
    if (o->type == CONF_DURATION) {
        if (v % 3600000 == 0 && v)
            snprintf(out, cap, "%" PRId64 "h", v / 3600000);
        else if (v % 60000 == 0 && v)
            snprintf(out, cap, "%" PRId64 "m", v / 60000);
        else if (v % 1000 == 0)
            snprintf(out, cap, "%" PRId64 "s", v / 1000);
        else
            snprintf(out, cap, "%" PRId64 "ms", v);
    } else if (o->type == CONF_SIZE) {
        if (v % (1 << 30) == 0 && v)
            snprintf(out, cap, "%" PRId64 "GiB", v >> 30);
        else if (v % (1 << 20) == 0 && v)
            snprintf(out, cap, "%" PRId64 "MiB", v >> 20);
        else if (v % 1024 == 0 && v)
            snprintf(out, cap, "%" PRId64 "KiB", v >> 10);
        else
            snprintf(out, cap, "%" PRId64 "", v);
    } else {
        snprintf(out, cap, "%" PRId64, v);
    }
}

/* Applies text to the option; on failure fills why. */
static bool apply(const struct conf_opt *o, const char *v, char *why, size_t cap)
{
    int64_t n = 0;
    switch (o->type) {
    case CONF_STR:
        free(*(char **)o->dst);
        *(char **)o->dst = v ? strdup(v) : NULL;
        return true;
    case CONF_ENUM:
        if (!enum_has(o->choices, v)) {
            snprintf(why, cap, "one of %s", o->choices);
            return false;
        }
        free(*(char **)o->dst);
        *(char **)o->dst = strdup(v);
        return true;
    case CONF_ADDR: {
        char host[256];
        int port;
        if (!conf_parse_addr(v, host, sizeof host, &port, why, cap))
            return false;
        free(*(char **)o->dst);
        *(char **)o->dst = strdup(v);
        return true;
    }
    case CONF_BOOL:
        if (!conf_parse_bool(v, (bool *)o->dst)) {
            snprintf(why, cap, "true or false");
            return false;
        }
        return true;
    case CONF_IDLIST:
        return conf_parse_idlist(v, (struct conf_idlist *)o->dst, why, cap);
    case CONF_INT:
        if (!parse_i64(v, &n)) {
            snprintf(why, cap, "an integer");
            return false;
        }
        break;
    case CONF_DURATION:
        if (!conf_parse_duration(v, &n, why, cap))
            return false;
        break;
    case CONF_SIZE:
        if (!conf_parse_size(v, &n, why, cap))
            return false;
        break;
    }
    if ((o->min || o->max) && (n < o->min || n > o->max)) {
        char lo[32], hi[32];
        fmt_bound(o, o->min, lo, sizeof lo);
        fmt_bound(o, o->max, hi, sizeof hi);
        snprintf(why, cap, "a value from %s to %s", lo, hi);
        return false;
    }
    *(int64_t *)o->dst = n;
    return true;
}

static void usage(const struct conf_opt *const *tables, const char *prog, const char *summary)
{
    printf("%s %s -- %s\n\nUsage: %s [--SETTING=VALUE ...]\n\n", prog, engbot_version, summary,
           prog);
    printf("Every setting is a flag and an environment variable; the flag wins.\n"
           "Durations take ms/s/m/h/d, sizes k/M/G (powers of 1024).\n\n");
    for (const struct conf_opt *const *t = tables; *t; t++) {
        for (const struct conf_opt *o = *t; o->name; o++) {
            char env[64], lo[32], hi[32];
            env_name(o->name, env, sizeof env);
            printf("  --%s=%s  (env %s)\n      %s\n", o->name, type_hint(o), env, o->help);
            printf("      default: %s", o->def && *o->def ? o->def : "(empty)");
            if (o->min || o->max) {
                fmt_bound(o, o->min, lo, sizeof lo);
                fmt_bound(o, o->max, hi, sizeof hi);
                printf("; allowed: %s .. %s", lo, hi);
            }
            printf("\n");
        }
    }
    printf("\n  --help     show this help\n  --version  print the version\n");
}

static void die(const char *prog, const struct conf_opt *o, const char *src, const char *v,
                const char *why)
{
    char env[64];
    env_name(o->name, env, sizeof env);
    const char *shown = (o->flags & CONF_SECRET) ? "[secret]" : v;
    if (strcmp(src, "env") == 0)
        fprintf(stderr, "%s: invalid %s='%s': expected %s\n", prog, env, shown, why);
    else
        fprintf(stderr, "%s: invalid --%s='%s': expected %s\n", prog, o->name, shown, why);
    exit(2);
}

static const struct conf_opt *find(const struct conf_opt *const *tables, const char *name,
                                   size_t len)
{
    for (const struct conf_opt *const *t = tables; *t; t++)
        for (const struct conf_opt *o = *t; o->name; o++)
            if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
                return o;
    return NULL;
}

void conf_load(const struct conf_opt *const *tables, int argc, char **argv, const char *prog,
               const char *summary)
{
    char why[160];
    /* 1. Defaults. */
    for (const struct conf_opt *const *t = tables; *t; t++) {
        for (const struct conf_opt *o = *t; o->name; o++) {
            if (o->type == CONF_STR || o->type == CONF_ADDR || o->type == CONF_ENUM)
                *(char **)o->dst = NULL;
            if (o->type == CONF_IDLIST)
                *(struct conf_idlist *)o->dst = (struct conf_idlist){0};
            if (o->def && *o->def) {
                if (!apply(o, o->def, why, sizeof why)) {
                    fprintf(stderr, "%s: bad built-in default for --%s: %s\n", prog, o->name, why);
                    exit(2);
                }
            } else if (o->type == CONF_INT || o->type == CONF_DURATION || o->type == CONF_SIZE) {
                *(int64_t *)o->dst = 0;
            } else if (o->type == CONF_BOOL) {
                *(bool *)o->dst = false;
            }
        }
    }
    /* 2. Environment. */
    for (const struct conf_opt *const *t = tables; *t; t++) {
        for (const struct conf_opt *o = *t; o->name; o++) {
            char env[64];
            env_name(o->name, env, sizeof env);
            const char *v = getenv(env);
            if (v && !apply(o, v, why, sizeof why))
                die(prog, o, "env", v, why);
        }
    }
    /* 3. Flags: --name=value, --name value, --bool-flag. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(tables, prog, summary);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("%s %s\n", prog, engbot_version);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s' (settings are --name=value; see --help)\n",
                    prog, a);
            exit(2);
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const struct conf_opt *o = find(tables, a, nlen);
        if (!o) {
            fprintf(stderr, "%s: unknown setting '--%.*s' (see --help)\n", prog, (int)nlen, a);
            exit(2);
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (o->type == CONF_BOOL)
            v = "true";
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            fprintf(stderr, "%s: --%s needs a value (see --help)\n", prog, o->name);
            exit(2);
        }
        if (!apply(o, v, why, sizeof why))
            die(prog, o, "flag", v, why);
    }
}

void conf_log(const struct conf_opt *const *tables)
{
    for (const struct conf_opt *const *t = tables; *t; t++) {
        for (const struct conf_opt *o = *t; o->name; o++) {
            char buf[256];
            switch (o->type) {
            case CONF_STR:
            case CONF_ADDR:
            case CONF_ENUM: {
                const char *s = *(char **)o->dst;
                snprintf(buf, sizeof buf, "%s", (o->flags & CONF_SECRET) ? (s ? "[set]" : "") : (s ? s : ""));
                break;
            }
            case CONF_BOOL: snprintf(buf, sizeof buf, "%s", *(bool *)o->dst ? "true" : "false"); break;
            case CONF_IDLIST: snprintf(buf, sizeof buf, "%zu ids", ((struct conf_idlist *)o->dst)->n); break;
            default: fmt_bound(o, *(int64_t *)o->dst, buf, sizeof buf); break;
            }
            LOG_DEBUG("setting", LF_STR("name", o->name), LF_STR("value", buf));
        }
    }
}

void conf_free(const struct conf_opt *const *tables)
{
    for (const struct conf_opt *const *t = tables; *t; t++) {
        for (const struct conf_opt *o = *t; o->name; o++) {
            if (o->type == CONF_STR || o->type == CONF_ADDR || o->type == CONF_ENUM) {
                free(*(char **)o->dst);
                *(char **)o->dst = NULL;
            } else if (o->type == CONF_IDLIST) {
                struct conf_idlist *l = o->dst;
                free(l->ids);
                *l = (struct conf_idlist){0};
            }
        }
    }
}
