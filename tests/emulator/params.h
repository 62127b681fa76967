/* params.h -- a Bot API request's parameters, decoded from each encoding Telegram accepts:
 * the query string, application/x-www-form-urlencoded, application/json (a top-level object;
 * non-string values keep their JSON text, as Telegram reads them) and multipart/form-data
 * (fields and file parts).
 *
 * Every decoder is fed bytes from the network: counts and lengths are capped, malformed input
 * is an error with a Telegram-like message in err, never a crash. A struct params owns copies
 * of everything it holds (values stay valid until params_free). The first occurrence of a
 * name wins, so the body is decoded before the query string is merged in. */
#ifndef EMU_PARAMS_H
#define EMU_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARAMS_MAX       128  /* parameters per request */
#define PARAM_NAME_MAX   128  /* bytes in a parameter name */
#define PARAM_HEADER_MAX 8192 /* bytes of headers in one multipart part */

struct param {
    char *name;
    char *value; /* NUL-terminated after len bytes; a file part may contain NULs */
    size_t len;
    char *filename; /* a multipart file part's filename; NULL for a plain field */
    char *ctype;    /* a multipart part's Content-Type, or NULL */
};

struct params {
    struct param *v;
    size_t n, cap;
};

void params_init(struct params *p);
void params_free(struct params *p);
/* Adds a copy (ignored when the name is already present). -1 when the count cap is hit. */
int params_add(struct params *p, const char *name, size_t nlen, const char *value, size_t vlen,
               const char *filename, const char *ctype);

const struct param *params_find(const struct params *p, const char *name);
/* The value of a plain field, or NULL when absent. */
const char *params_str(const struct params *p, const char *name);

/* Decoders: 0 on success, -1 with the reason in err (a fragment after "Bad Request: "). */
int params_parse_urlencoded(struct params *p, const char *s, size_t len, char *err, size_t cap);
int params_parse_json(struct params *p, const char *s, size_t len, char *err, size_t cap);
int params_parse_multipart(struct params *p, const char *body, size_t len, const char *boundary,
                           char *err, size_t cap);
/* Chooses the decoder from the Content-Type (absent or unknown: the body is ignored, like
 * Telegram). */
int params_parse_body(struct params *p, const char *content_type, const char *body, size_t len,
                      char *err, size_t cap);
/* The boundary parameter of a multipart Content-Type (unquoted), or false. */
bool params_boundary(const char *content_type, char *out, size_t cap);

/* Typed getters: 1 found and valid, 0 absent (or empty), -1 present but invalid. */
int params_int64(const struct params *p, const char *name, int64_t *out);
int params_bool(const struct params *p, const char *name, bool *out);

struct cJSON;
/* A JSON number that is an integer within +-2^53 (Telegram ids have at most 52 significant
 * bits); false for anything else, including inf and NaN. */
bool json_int64(const struct cJSON *v, int64_t *out);

/* Strict decimal int64 (optional sign, optional surrounding spaces). */
bool parse_int64(const char *s, int64_t *out);

#endif
