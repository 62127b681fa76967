/* fidrec.c -- encoding and strict decoding of file_id store records. */
#include "fidrec.h"
#include "pathsafe.h"

#include <stdio.h>
#include <string.h>

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    *p++ = (uint8_t)v;
    *p++ = (uint8_t)(v >> 8);
    return p;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

bool fidrec_id_ok(const char *id, size_t len)
{
    if (len == 0 || len > FIDREC_MAX_ID)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

size_t fidrec_encode(const struct fidrec *r, uint8_t *buf)
{
    uint8_t *p = buf;
    *p++ = (uint8_t)r->op;
    if (r->op == FIDREC_GEN)
        return (size_t)(put_u64(p, r->gen) - buf);
    p = put_u64(p, (uint64_t)r->bot_id);
    if (r->op == FIDREC_PUT) {
        p = put_u64(p, r->size);
        p = put_u64(p, (uint64_t)r->mtime_ms);
    }
    p = put_u16(p, (uint16_t)r->path_len);
    memcpy(p, r->path, r->path_len);
    p += r->path_len;
    if (r->op == FIDREC_PUT) {
        p = put_u16(p, (uint16_t)r->id_len);
        memcpy(p, r->file_id, r->id_len);
        p += r->id_len;
    }
    return (size_t)(p - buf);
}

/* A cursor that refuses to run past the end. */
struct cur {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t take_u64(struct cur *c)
{
    if (c->end - c->p < 8) {
        c->bad = true;
        return 0;
    }
    uint64_t v = get_u64(c->p);
    c->p += 8;
    return v;
}

static const char *take_str(struct cur *c, size_t *len)
{
    if (c->end - c->p < 2) {
        c->bad = true;
        return NULL;
    }
    size_t n = (size_t)c->p[0] | ((size_t)c->p[1] << 8);
    c->p += 2;
    if ((size_t)(c->end - c->p) < n) {
        c->bad = true;
        return NULL;
    }
    const char *s = (const char *)c->p;
    c->p += n;
    *len = n;
    return s;
}

int fidrec_decode(const uint8_t *buf, size_t len, struct fidrec *r, char *why, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (len < 1) {
        snprintf(why, cap, "empty record");
        return -1;
    }
    struct cur c = {buf + 1, buf + len, false};
    r->op = (enum fidrec_op)buf[0];
    switch (buf[0]) {
    case FIDREC_GEN:
        r->gen = take_u64(&c);
        break;
    case FIDREC_PUT:
    case FIDREC_DROP:
        r->bot_id = (int64_t)take_u64(&c);
        if (buf[0] == FIDREC_PUT) {
            r->size = take_u64(&c);
            r->mtime_ms = (int64_t)take_u64(&c);
        }
        r->path = take_str(&c, &r->path_len);
        if (buf[0] == FIDREC_PUT && !c.bad)
            r->file_id = take_str(&c, &r->id_len);
        break;
    default:
        return 0; /* a newer record type: ignored */
    }
    if (c.bad) {
        snprintf(why, cap, "record type %u is truncated", buf[0]);
        return -1;
    }
    if (r->op == FIDREC_GEN)
        return 1;
    struct ps_err e;
    if (r->bot_id <= 0) {
        snprintf(why, cap, "bot_id %lld is not positive", (long long)r->bot_id);
        return -1;
    }
    if (r->path_len == 0 || !ps_check_path(r->path, r->path_len, &e)) {
        snprintf(why, cap, "path refused: %s", r->path_len ? e.msg : "empty");
        return -1;
    }
    if (r->op == FIDREC_PUT && !fidrec_id_ok(r->file_id, r->id_len)) {
        snprintf(why, cap, "file_id is not 1..%d characters of [A-Za-z0-9_-]", FIDREC_MAX_ID);
        return -1;
    }
    return 1;
}
