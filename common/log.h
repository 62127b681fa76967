/* log.h -- structured logs: one JSON object per line on stderr (or text for humans).
 *
 * Usage:  LOG_INFO("session restored", LF_U64("sessions", n), LF_STR("file", path));
 * The level is checked before any argument is formatted. Every line carries ts, level, svc,
 * msg and the fields. Strings registered with log_add_secret() (the bot token) are replaced
 * by "[REDACTED]" wherever they appear in a line, so a token can never leak through a log. */
#ifndef ENGBOT_LOG_H
#define ENGBOT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };
enum log_ftype { LF_T_NONE, LF_T_STR, LF_T_I64, LF_T_U64, LF_T_F64, LF_T_BOOL };

struct log_field {
    const char *key;
    enum log_ftype type;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double f;
        bool b;
    } v;
};

#define LF_STR(k, x)  ((struct log_field){.key = (k), .type = LF_T_STR, .v.s = (x)})
#define LF_I64(k, x)  ((struct log_field){.key = (k), .type = LF_T_I64, .v.i = (int64_t)(x)})
#define LF_U64(k, x)  ((struct log_field){.key = (k), .type = LF_T_U64, .v.u = (uint64_t)(x)})
#define LF_F64(k, x)  ((struct log_field){.key = (k), .type = LF_T_F64, .v.f = (double)(x)})
#define LF_BOOL(k, x) ((struct log_field){.key = (k), .type = LF_T_BOOL, .v.b = (x)})

/* Sets the program name (the "svc" field), the minimum level and the format ("json"/"text").
 * Call once at start, before other threads log. */
void log_setup(const char *svc, enum log_level min, bool text);
/* Parses "debug|info|warn|error"; returns false on anything else. */
bool log_level_parse(const char *s, enum log_level *out);
bool log_enabled(enum log_level lvl);
/* Registers a secret (copied) that must never appear in a log line. At most 8. */
void log_add_secret(const char *secret);
/* Copies src into dst (size cap) with every registered secret replaced by "[REDACTED]". */
void log_redact(char *dst, size_t cap, const char *src);
void log_emit(enum log_level lvl, const char *msg, const struct log_field *f, int n);

#define LOG_AT(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl)) {                                                                    \
            const struct log_field lf__[] = {{0}, ##__VA_ARGS__};                                  \
            log_emit(lvl, msg, lf__ + 1, (int)(sizeof lf__ / sizeof lf__[0]) - 1);                 \
        }                                                                                          \
    } while (0)
#define LOG_DEBUG(msg, ...) LOG_AT(LOG_LVL_DEBUG, msg, ##__VA_ARGS__)
#define LOG_INFO(msg, ...)  LOG_AT(LOG_LVL_INFO, msg, ##__VA_ARGS__)
#define LOG_WARN(msg, ...)  LOG_AT(LOG_LVL_WARN, msg, ##__VA_ARGS__)
#define LOG_ERROR(msg, ...) LOG_AT(LOG_LVL_ERROR, msg, ##__VA_ARGS__)

#endif
