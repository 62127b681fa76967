/* search.c -- ranked word search over the catalogue (cat_search).
 *
 * DESIGN: a linear scan of every entry with a bounded top-k (100k entries in a few ms, see the
 * benchmarks), which keeps memory per entry small instead of holding a word index; matching is
 * ASCII case-insensitive without copying the paths. */
#include "catalogue_internal.h"

#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* ---- search -----------------------------------------------------------------------------------
 */

struct query {
    char w[CAT_MAX_WORDS][CAT_MAX_QUERY + 1];
    size_t wl[CAT_MAX_WORDS];
    int nw;
    char joined[CAT_MAX_QUERY + 1]; /* the words joined by one space */
    size_t jl;
};

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* First position >= from of needle (lower case) in hay, ASCII case-insensitive; -1 if none. */
static long ci_find(const char *hay, size_t hl, const char *needle, size_t nl, size_t from)
{
    if (nl > hl)
        return -1;
    for (size_t i = from; i + nl <= hl; i++) {
        if (lower((unsigned char)hay[i]) != (unsigned char)needle[0])
            continue;
        size_t j = 1;
        while (j < nl && lower((unsigned char)hay[i + j]) == (unsigned char)needle[j])
            j++;
        if (j == nl)
            return (long)i;
    }
    return -1;
}

static bool is_boundary(char ch)
{
    return strchr(" _-.()[]+,&'", ch) != NULL;
}

/* The score of one entry, or -1 when a word matches neither its name nor its folder path.
 * Per word: the whole name stem 50, the start of the name 30, the start of a word in the name
 * 20, inside the name 10, only in the folder path 3; plus 100 when the query is the name or
 * its stem. */
static int score_entry(const struct ent *e, const struct query *q)
{
    const char *name = ent_name(e);
    size_t nlen = strlen(name);
    size_t stem = nlen;
    if (e->kind == CAT_FILE) {
        const char *dot = strrchr(name, '.');
        if (dot && dot != name)
            stem = (size_t)(dot - name);
    }
    int score = 0;
    for (int i = 0; i < q->nw; i++) {
        int best = -1;
        for (long p = ci_find(name, nlen, q->w[i], q->wl[i], 0); p >= 0;
             p = ci_find(name, nlen, q->w[i], q->wl[i], (size_t)p + 1)) {
            int s = p == 0                     ? (q->wl[i] == stem || q->wl[i] == nlen ? 50 : 30)
                    : is_boundary(name[p - 1]) ? 20
                                               : 10;
            if (s > best)
                best = s;
            if (best == 50)
                break;
        }
        if (best < 0) {
            if (ci_find(e->path, e->name_off, q->w[i], q->wl[i], 0) < 0)
                return -1;
            best = 3;
        }
        score += best;
    }
    if ((q->jl == stem && ci_find(name, stem, q->joined, q->jl, 0) == 0) ||
        (q->jl == nlen && ci_find(name, nlen, q->joined, q->jl, 0) == 0))
        score += 100;
    return score;
}

struct hit {
    uint32_t slot;
    int score;
};

static bool better(const struct cat *c, const struct hit *a, const struct hit *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    const struct ent *x = &c->e[a->slot], *y = &c->e[b->slot];
    if (x->depth != y->depth)
        return x->depth < y->depth;
    int r = cat_name_cmp(ent_name(x), ent_name(y));
    if (r)
        return r < 0;
    return strcmp(x->path, y->path) < 0;
}

static bool parse_query(const char *query, struct query *q)
{
    size_t len = strlen(query);
    if (len > CAT_MAX_QUERY)
        return false;
    q->nw = 0;
    q->jl = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && (query[i] == ' ' || query[i] == '\t'))
            i++;
        if (i >= len)
            break;
        if (q->nw == CAT_MAX_WORDS)
            return false;
        size_t n = 0;
        while (i < len && query[i] != ' ' && query[i] != '\t')
            q->w[q->nw][n++] = (char)lower((unsigned char)query[i++]);
        q->w[q->nw][n] = '\0';
        q->wl[q->nw] = n;
        if (q->jl)
            q->joined[q->jl++] = ' ';
        memcpy(q->joined + q->jl, q->w[q->nw], n);
        q->jl += n;
        q->nw++;
    }
    q->joined[q->jl] = '\0';
    return q->nw > 0;
}

long cat_search(const struct cat *c, const char *query, bool files_only, uint32_t *out, size_t cap)
{
    struct query *q = xmalloc(sizeof *q);
    if (!parse_query(query, q)) {
        free(q);
        return -1;
    }
    struct hit *top = xmalloc((cap ? cap : 1) * sizeof *top);
    size_t ntop = 0;
    long total = 0;
    for (uint32_t s = 0; s < c->nslots; s++) {
        const struct ent *e = &c->e[s];
        if (!e->kind || s == c->root || (files_only && e->kind != CAT_FILE))
            continue;
        int sc = score_entry(e, q);
        if (sc < 0)
            continue;
        total++;
        struct hit h = {s, sc};
        if (ntop == cap && (cap == 0 || !better(c, &h, &top[cap - 1])))
            continue;
        size_t i = ntop < cap ? ntop++ : cap - 1;
        while (i > 0 && better(c, &h, &top[i - 1])) {
            top[i] = top[i - 1];
            i--;
        }
        top[i] = h;
    }
    for (size_t i = 0; i < ntop; i++)
        out[i] = top[i].slot;
    free(top);
    free(q);
    return total;
}
