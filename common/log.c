/* log.c -- structured JSON/text log lines on stderr, written with one write(2) per line so
 * lines from different threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192
#define MAX_SECRETS    8

static char g_svc[64] = "engbot";
static _Atomic int g_min = LOG_LVL_INFO;
static bool g_text;
static char *g_secrets[MAX_SECRETS];
static _Atomic int g_nsecrets;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(const char *svc, enum log_level min, bool text)
{
    snprintf(g_svc, sizeof g_svc, "%s", svc);
    atomic_store(&g_min, (int)min);
    g_text = text;
}

bool log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

bool log_enabled(enum log_level lvl)
{
    return (int)lvl >= atomic_load_explicit(&g_min, memory_order_relaxed);
}

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 4)
        return;
    int n = atomic_load(&g_nsecrets);
    if (n >= MAX_SECRETS)
        return;
    g_secrets[n] = strdup(secret);
    atomic_store(&g_nsecrets, n + 1);
}

void log_redact(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    int n = atomic_load(&g_nsecrets);
    if (cap == 0)
        return;
    while (*src && o + 1 < cap) {
        bool hit = false;
        for (int i = 0; i < n; i++) {
            size_t l = strlen(g_secrets[i]);
            if (strncmp(src, g_secrets[i], l) == 0) {
                const char *r = "[REDACTED]";
                for (size_t k = 0; r[k] && o + 1 < cap; k++)
                    dst[o++] = r[k];
                src += l;
                hit = true;
                break;
            }
        }
        if (!hit)
            dst[o++] = *src++;
    }
    dst[o] = '\0';
}

struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (l->len + n >= sizeof l->buf - 2)
        n = sizeof l->buf - 2 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* JSON string body (no quotes); control characters escaped, invalid UTF-8 passed through. */
static void put_json_str(struct line *l, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': puts_(l, "\\\""); break;
        case '\\': puts_(l, "\\\\"); break;
        case '\n': puts_(l, "\\n"); break;
        case '\r': puts_(l, "\\r"); break;
        case '\t': puts_(l, "\\t"); break;
        default:
            if (c < 0x20)
                putf(l, "\\u%04x", c);
            else
                put(l, (const char *)&c, 1);
        }
    }
}

static void put_value(struct line *l, const struct log_field *f, bool json)
{
    switch (f->type) {
    case LF_T_STR:
        if (json) {
            puts_(l, "\"");
            put_json_str(l, f->v.s ? f->v.s : "");
            puts_(l, "\"");
        } else {
            puts_(l, f->v.s ? f->v.s : "");
        }
        break;
    case LF_T_I64: putf(l, "%lld", (long long)f->v.i); break;
    case LF_T_U64: putf(l, "%llu", (unsigned long long)f->v.u); break;
    case LF_T_F64: putf(l, "%.6g", f->v.f); break;
    case LF_T_BOOL: puts_(l, f->v.b ? "true" : "false"); break;
    default: puts_(l, json ? "null" : "-"); break;
    }
}

void log_emit(enum log_level lvl, const char *msg, const struct log_field *f, int n)
{
    struct line l;
    struct timespec ts;
    struct tm tm;
    char tbuf[40];

    l.len = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (g_text) {
        putf(&l, "%s.%03ldZ ", tbuf, ts.tv_nsec / 1000000);
        putf(&l, "%-5s ", level_names[lvl]);
        puts_(&l, g_svc);
        puts_(&l, ": ");
        puts_(&l, msg);
        for (int i = 0; i < n; i++) {
            puts_(&l, " ");
            puts_(&l, f[i].key);
            puts_(&l, "=");
            put_value(&l, &f[i], false);
        }
    } else {
        putf(&l, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"svc\":\"", tbuf, ts.tv_nsec / 1000000,
             level_names[lvl]);
        put_json_str(&l, g_svc);
        puts_(&l, "\",\"msg\":\"");
        put_json_str(&l, msg);
        puts_(&l, "\"");
        for (int i = 0; i < n; i++) {
            puts_(&l, ",\"");
            put_json_str(&l, f[i].key);
            puts_(&l, "\":");
            put_value(&l, &f[i], true);
        }
        puts_(&l, "}");
    }
    l.buf[l.len] = '\0';
    char out[LINE_MAX_BYTES + 64];
    if (atomic_load(&g_nsecrets) > 0)
        log_redact(out, sizeof out - 1, l.buf);
    else
        memcpy(out, l.buf, l.len + 1);
    size_t len = strlen(out);
    out[len++] = '\n';
    const char *p = out;
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
}
