/* params.c -- decoding Bot API request parameters (see params.h). */
#include "params.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void params_init(struct params *p)
{
    memset(p, 0, sizeof *p);
}

void params_free(struct params *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].name);
        free(p->v[i].value);
        free(p->v[i].filename);
        free(p->v[i].ctype);
    }
    free(p->v);
    params_init(p);
}

static const struct param *findn(const struct params *p, const char *name, size_t nlen)
{
    for (size_t i = 0; i < p->n; i++)
        if (strlen(p->v[i].name) == nlen && memcmp(p->v[i].name, name, nlen) == 0)
            return &p->v[i];
    return NULL;
}

const struct param *params_find(const struct params *p, const char *name)
{
    return findn(p, name, strlen(name));
}

const char *params_str(const struct params *p, const char *name)
{
    const struct param *v = params_find(p, name);
    return v && !v->filename ? v->value : NULL;
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        abort();
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int params_add(struct params *p, const char *name, size_t nlen, const char *value, size_t vlen,
               const char *filename, const char *ctype)
{
    if (findn(p, name, nlen))
        return 0;
    if (p->n == PARAMS_MAX)
        return -1;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 8;
        struct param *v = realloc(p->v, nc * sizeof *v);
        if (!v)
            abort();
        p->v = v;
        p->cap = nc;
    }
    struct param *e = &p->v[p->n++];
    e->name = dupn(name, nlen);
    e->value = dupn(value, vlen);
    e->len = vlen;
    e->filename = filename ? strdup(filename) : NULL;
    e->ctype = ctype ? strdup(ctype) : NULL;
    return 0;
}

/* ---- application/x-www-form-urlencoded ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX and '+' in place of a copy; returns the decoded length. A '%' not followed by
 * two hex digits stays literal (as browsers and Telegram treat it). */
static size_t urldecode(char *d, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            d[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
                   hexval(s[i + 2]) >= 0) {
            d[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    return o;
}

int params_parse_urlencoded(struct params *p, const char *s, size_t len, char *err, size_t cap)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(s + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
            const char *v = eq ? eq + 1 : s + j;
            size_t vlen = eq ? (size_t)(s + j - v) : 0;
            if (klen > PARAM_NAME_MAX * 3) {
                snprintf(err, cap, "parameter name is too long");
                return -1;
            }
            char *k = malloc(klen + 1), *val = malloc(vlen + 1);
            if (!k || !val)
                abort();
            size_t kn = urldecode(k, s + i, klen);
            size_t vn = urldecode(val, v, vlen);
            int rc = 0;
            if (kn > 0 && kn <= PARAM_NAME_MAX && !memchr(k, '\0', kn))
                rc = params_add(p, k, kn, val, vn, NULL, NULL);
            free(k);
            free(val);
            if (rc < 0) {
                snprintf(err, cap, "too many parameters");
                return -1;
            }
        }
        i = j + 1;
    }
    return 0;
}

/* ---- application/json ---- */

int params_parse_json(struct params *p, const char *s, size_t len, char *err, size_t cap)
{
    cJSON *root = cJSON_ParseWithLength(s, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, cap, "can't parse JSON object");
        return -1;
    }
    int rc = 0;
    for (cJSON *it = root->child; it; it = it->next) {
        if (!it->string || cJSON_IsNull(it))
            continue;
        size_t nlen = strlen(it->string);
        if (nlen == 0 || nlen > PARAM_NAME_MAX)
            continue;
        if (cJSON_IsString(it)) {
            rc = params_add(p, it->string, nlen, it->valuestring, strlen(it->valuestring), NULL,
                            NULL);
        } else {
            char *txt = cJSON_PrintUnformatted(it);
            if (!txt)
                abort();
            rc = params_add(p, it->string, nlen, txt, strlen(txt), NULL, NULL);
            free(txt);
        }
        if (rc < 0) {
            snprintf(err, cap, "too many parameters");
            break;
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- multipart/form-data ---- */

bool params_boundary(const char *ct, char *out, size_t cap)
{
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return false;
    const char *b = strcasestr(ct, "boundary=");
    if (!b)
        return false;
    b += 9;
    size_t n = 0;
    if (*b == '"') {
        b++;
        while (b[n] && b[n] != '"')
            n++;
    } else {
        while (b[n] && b[n] != ';' && b[n] != ' ' && b[n] != '\t')
            n++;
    }
    /* RFC 2046: 1 to 70 characters. */
    if (n == 0 || n > 70 || n + 1 > cap)
        return false;
    memcpy(out, b, n);
    out[n] = '\0';
    return true;
}

/* Finds the value of parameter `key` in a header like `form-data; name="x"; filename="y"`.
 * Quoted values may contain backslash escapes. Returns a malloc'd string or NULL. */
static char *header_param(const char *h, size_t hlen, const char *key)
{
    size_t klen = strlen(key);
    size_t i = 0;
    while (i < hlen) {
        /* Move to the next ';'-separated item, minding quotes. */
        while (i < hlen && h[i] != ';') {
            if (h[i] == '"') {
                i++;
                while (i < hlen && h[i] != '"') {
                    if (h[i] == '\\' && i + 1 < hlen)
                        i++;
                    i++;
                }
            }
            i++;
        }
        if (i >= hlen)
            break;
        i++; /* ';' */
        while (i < hlen && (h[i] == ' ' || h[i] == '\t'))
            i++;
        if (hlen - i > klen && strncasecmp(h + i, key, klen) == 0 && h[i + klen] == '=') {
            i += klen + 1;
            char *out = malloc(hlen - i + 1);
            if (!out)
                abort();
            size_t o = 0;
            if (i < hlen && h[i] == '"') {
                i++;
                while (i < hlen && h[i] != '"') {
                    if (h[i] == '\\' && i + 1 < hlen)
                        i++;
                    out[o++] = h[i++];
                }
            } else {
                while (i < hlen && h[i] != ';' && h[i] != ' ' && h[i] != '\t')
                    out[o++] = h[i++];
            }
            out[o] = '\0';
            return out;
        }
    }
    return NULL;
}

static char *trimmed(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    return dupn(s, n);
}

int params_parse_multipart(struct params *p, const char *body, size_t len, const char *boundary,
                           char *err, size_t cap)
{
    char delim[80];
    int dl = snprintf(delim, sizeof delim, "--%s", boundary);
    if (dl <= 2 || (size_t)dl >= sizeof delim) {
        snprintf(err, cap, "wrong multipart boundary");
        return -1;
    }
    size_t dlen = (size_t)dl;
    /* The first delimiter: at the start, or after a preamble line. */
    const char *pos = NULL;
    if (len >= dlen && memcmp(body, delim, dlen) == 0) {
        pos = body;
    } else {
        char crdelim[84];
        snprintf(crdelim, sizeof crdelim, "\r\n%s", delim);
        const char *f = memmem(body, len, crdelim, dlen + 2);
        pos = f ? f + 2 : NULL;
    }
    if (!pos) {
        snprintf(err, cap, "can't parse multipart/form-data request");
        return -1;
    }
    const char *end = body + len;
    char crdelim[84];
    snprintf(crdelim, sizeof crdelim, "\r\n%s", delim);
    pos += dlen;
    for (;;) {
        if (end - pos >= 2 && pos[0] == '-' && pos[1] == '-')
            return 0; /* the closing delimiter; an epilogue is ignored */
        while (pos < end && (*pos == ' ' || *pos == '\t'))
            pos++;
        if (end - pos < 2 || pos[0] != '\r' || pos[1] != '\n')
            break;
        pos += 2;
        /* Headers up to an empty line. */
        const char *hend = NULL;
        size_t avail = (size_t)(end - pos);
        if (avail >= 2 && pos[0] == '\r' && pos[1] == '\n')
            hend = pos;
        else {
            const char *f = memmem(pos, avail, "\r\n\r\n", 4);
            hend = f ? f + 2 : NULL;
        }
        if (!hend || hend - pos > PARAM_HEADER_MAX)
            break;
        char *name = NULL, *filename = NULL, *ctype = NULL;
        for (const char *l = pos; l < hend;) {
            const char *le = memmem(l, (size_t)(hend - l), "\r\n", 2);
            if (!le)
                le = hend;
            size_t ll = (size_t)(le - l);
            const char *colon = memchr(l, ':', ll);
            if (colon) {
                size_t hn = (size_t)(colon - l);
                const char *hv = colon + 1;
                size_t hvl = (size_t)(le - hv);
                if (hn == 19 && strncasecmp(l, "Content-Disposition", 19) == 0 && !name) {
                    /* A second Content-Disposition (the first had no name) replaces it. */
                    name = header_param(hv, hvl, "name");
                    free(filename);
                    filename = header_param(hv, hvl, "filename");
                } else if (hn == 12 && strncasecmp(l, "Content-Type", 12) == 0 && !ctype) {
                    ctype = trimmed(hv, hvl);
                }
            }
            l = le + 2;
        }
        const char *data = hend + 2;
        if (data > end) {
            free(name);
            free(filename);
            free(ctype);
            break;
        }
        const char *next = memmem(data, (size_t)(end - data), crdelim, dlen + 2);
        if (!next) {
            free(name);
            free(filename);
            free(ctype);
            break;
        }
        int rc = 0;
        size_t nlen = name ? strlen(name) : 0;
        if (nlen > 0 && nlen <= PARAM_NAME_MAX)
            rc = params_add(p, name, nlen, data, (size_t)(next - data), filename, ctype);
        free(name);
        free(filename);
        free(ctype);
        if (rc < 0) {
            snprintf(err, cap, "too many parameters");
            return -1;
        }
        pos = next + 2 + dlen;
    }
    snprintf(err, cap, "can't parse multipart/form-data request");
    return -1;
}

int params_parse_body(struct params *p, const char *ct, const char *body, size_t len, char *err,
                      size_t cap)
{
    if (!ct || len == 0)
        return 0;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) == 0)
        return params_parse_json(p, body, len, err, cap);
    if (strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        return params_parse_urlencoded(p, body, len, err, cap);
    if (strncasecmp(ct, "multipart/form-data", 19) == 0) {
        char b[80];
        if (!params_boundary(ct, b, sizeof b)) {
            snprintf(err, cap, "wrong multipart boundary");
            return -1;
        }
        return params_parse_multipart(p, body, len, b, err, cap);
    }
    return 0;
}

/* ---- typed getters ---- */

bool parse_int64(const char *s, int64_t *out)
{
    if (!s)
        return false;
    while (*s == ' ')
        s++;
    const char *d = s;
    if (*d == '-' || *d == '+')
        d++;
    if (!isdigit((unsigned char)*d))
        return false;
    errno = 0;
    char *e;
    long long v = strtoll(s, &e, 10);
    while (*e == ' ')
        e++;
    if (errno || *e)
        return false;
    *out = v;
    return true;
}

bool json_int64(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
        return false;
    *out = (int64_t)d;
    return true;
}

int params_int64(const struct params *p, const char *name, int64_t *out)
{
    const char *s = params_str(p, name);
    if (!s || !*s)
        return 0;
    return parse_int64(s, out) ? 1 : -1;
}

int params_bool(const struct params *p, const char *name, bool *out)
{
    const char *s = params_str(p, name);
    if (!s || !*s)
        return 0;
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = true;
        return 1;
    }
    if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return 1;
    }
    return -1;
}
