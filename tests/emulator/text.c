/* text.c -- UTF-16 lengths and Telegram's parse modes (see text.h). */
#include "text.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool text_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

size_t text_utf16_len(const char *s, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80)
            u += c >= 0xF0 ? 2 : 1;
    }
    return u;
}

bool text_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i]))
            return false;
    return true;
}

size_t text_command_len(const char *s, size_t n)
{
    if (n < 2 || s[0] != '/')
        return 0;
    size_t i = 1;
    while (i < n && i <= 64 && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
    if (i == 1)
        return 0;
    if (i < n && s[i] == '@') {
        size_t j = i + 1;
        while (j < n && j - i <= 32 && (isalnum((unsigned char)s[j]) || s[j] == '_'))
            j++;
        if (j - i - 1 >= 3)
            i = j;
    }
    if (i < n && !strchr(" \t\r\n", s[i]))
        return 0;
    return i;
}

/* ---- an output buffer that counts UTF-16 units ---- */

struct out {
    char *p;
    size_t n, cap, u16;
    struct text_entity *ents;
    size_t nents, ecap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->n + n + 1 > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        while (nc < o->n + n + 1)
            nc *= 2;
        char *p = realloc(o->p, nc);
        if (!p)
            abort();
        o->p = p;
        o->cap = nc;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
    o->u16 += text_utf16_len(s, n);
}

static void put_cp(struct out *o, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put(o, b, n);
}

/* Adds an entity [start, current) unless it is empty. Takes ownership of url/lang. */
static int add_entity(struct out *o, const char *type, size_t start, char *url, char *lang,
                      char *err, size_t cap)
{
    if (o->u16 == start) {
        free(url);
        free(lang);
        return 0;
    }
    if (o->nents == TEXT_MAX_ENTITIES) {
        free(url);
        free(lang);
        snprintf(err, cap, "can't parse entities: too many entities");
        return -1;
    }
    if (o->nents == o->ecap) {
        size_t nc = o->ecap ? o->ecap * 2 : 8;
        struct text_entity *e = realloc(o->ents, nc * sizeof *e);
        if (!e)
            abort();
        o->ents = e;
        o->ecap = nc;
    }
    o->ents[o->nents++] = (struct text_entity){type, start, o->u16 - start, url, lang};
    return 0;
}

static void out_free(struct out *o)
{
    for (size_t i = 0; i < o->nents; i++) {
        free(o->ents[i].url);
        free(o->ents[i].language);
    }
    free(o->ents);
    free(o->p);
}

void text_parsed_free(struct text_parsed *p)
{
    struct out o = {.p = p->plain, .ents = p->ents, .nents = p->nents};
    out_free(&o);
    memset(p, 0, sizeof *p);
}

/* ---- HTML ---- */

struct open_tag {
    char name[24];
    const char *type;
    size_t start;
    char *url, *lang;
};

static const char *html_type(const char *name)
{
    static const struct {
        const char *tag, *type;
    } map[] = {
        {"b", "bold"},          {"strong", "bold"},         {"i", "italic"},
        {"em", "italic"},       {"u", "underline"},         {"ins", "underline"},
        {"s", "strikethrough"}, {"strike", "strikethrough"}, {"del", "strikethrough"},
        {"span", "spoiler"},    {"tg-spoiler", "spoiler"},  {"a", "text_link"},
        {"code", "code"},       {"pre", "pre"},             {"blockquote", "blockquote"},
        {"tg-emoji", "custom_emoji"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].tag, name) == 0)
            return map[i].type;
    return NULL;
}

/* Parses the attributes of a start tag in s[i..end) and returns the value of attribute
 * `want` (malloc'd; entities &quot; &amp; &lt; &gt; decoded), or NULL. */
static char *html_attr(const char *s, size_t i, size_t end, const char *want)
{
    char *found = NULL;
    while (i < end) {
        while (i < end && isspace((unsigned char)s[i]))
            i++;
        size_t ns = i;
        while (i < end && !isspace((unsigned char)s[i]) && s[i] != '=')
            i++;
        size_t nl = i - ns;
        if (nl == 0) {
            i++;
            continue;
        }
        const char *vs = NULL;
        size_t vl = 0;
        while (i < end && isspace((unsigned char)s[i]))
            i++;
        if (i < end && s[i] == '=') {
            i++;
            while (i < end && isspace((unsigned char)s[i]))
                i++;
            if (i < end && (s[i] == '"' || s[i] == '\'')) {
                char q = s[i++];
                vs = s + i;
                while (i < end && s[i] != q)
                    i++;
                vl = (size_t)(s + i - vs);
                i++;
            } else {
                vs = s + i;
                while (i < end && !isspace((unsigned char)s[i]))
                    i++;
                vl = (size_t)(s + i - vs);
            }
        }
        if (!found && nl == strlen(want) && strncasecmp(s + ns, want, nl) == 0) {
            found = malloc(vl + 1);
            if (!found)
                abort();
            size_t o = 0;
            for (size_t k = 0; k < vl; k++) {
                static const struct {
                    const char *e;
                    char c;
                } ents[] = {{"&quot;", '"'}, {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}};
                bool done = false;
                for (size_t m = 0; m < 4 && !done; m++) {
                    size_t el = strlen(ents[m].e);
                    if (vl - k >= el && memcmp(vs + k, ents[m].e, el) == 0) {
                        found[o++] = ents[m].c;
                        k += el - 1;
                        done = true;
                    }
                }
                if (!done)
                    found[o++] = vs[k];
            }
            found[o] = '\0';
        }
    }
    return found;
}

/* Decodes an HTML entity at s[i] ('&'); returns its length and the code point, or 0. */
static size_t html_entity(const char *s, size_t i, size_t n, uint32_t *cp)
{
    static const struct {
        const char *name;
        uint32_t cp;
    } named[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}};
    size_t j = i + 1;
    while (j < n && j - i < 12 && s[j] != ';' && (isalnum((unsigned char)s[j]) || s[j] == '#'))
        j++;
    if (j >= n || s[j] != ';' || j == i + 1)
        return 0;
    const char *b = s + i + 1;
    size_t bl = j - i - 1;
    if (b[0] == '#') {
        uint32_t v = 0;
        size_t k = 1;
        int base = 10;
        if (bl > 1 && (b[1] == 'x' || b[1] == 'X')) {
            base = 16;
            k = 2;
        }
        if (k >= bl)
            return 0;
        for (; k < bl; k++) {
            int d = isdigit((unsigned char)b[k]) ? b[k] - '0'
                    : base == 16 && isxdigit((unsigned char)b[k])
                        ? tolower((unsigned char)b[k]) - 'a' + 10
                        : -1;
            if (d < 0)
                return 0;
            v = v * (uint32_t)base + (uint32_t)d;
            if (v > 0x10FFFF)
                return 0;
        }
        if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        *cp = v;
        return j - i + 1;
    }
    for (size_t m = 0; m < sizeof named / sizeof named[0]; m++)
        if (strlen(named[m].name) == bl && memcmp(named[m].name, b, bl) == 0) {
            *cp = named[m].cp;
            return j - i + 1;
        }
    return 0;
}

static int parse_html(const char *s, size_t n, struct out *o, char *err, size_t cap)
{
    struct open_tag st[TEXT_MAX_DEPTH];
    int depth = 0, rc = -1;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '&') {
            uint32_t cp;
            size_t el = html_entity(s, i, n, &cp);
            if (el) {
                put_cp(o, cp);
                i += el;
            } else {
                put(o, "&", 1);
                i++;
            }
            continue;
        }
        if (c != '<') {
            size_t j = i;
            while (j < n && s[j] != '<' && s[j] != '&')
                j++;
            put(o, s + i, j - i);
            i = j;
            continue;
        }
        size_t tag_at = i;
        const char *gt = memchr(s + i, '>', n - i);
        if (i + 1 < n && s[i + 1] == '/') {
            if (!gt) {
                snprintf(err, cap, "can't parse entities: Unclosed end tag at byte offset %zu",
                         tag_at);
                goto out;
            }
            size_t ns = i + 2, ne = ns;
            while (ne < (size_t)(gt - s) && !isspace((unsigned char)s[ne]))
                ne++;
            char name[24];
            size_t nl = ne - ns < sizeof name - 1 ? ne - ns : sizeof name - 1;
            for (size_t k = 0; k < nl; k++)
                name[k] = (char)tolower((unsigned char)s[ns + k]);
            name[nl] = '\0';
            if (depth == 0) {
                snprintf(err, cap, "can't parse entities: Unexpected end tag at byte offset %zu",
                         tag_at);
                goto out;
            }
            struct open_tag *t = &st[depth - 1];
            if (strcmp(t->name, name) != 0) {
                snprintf(err, cap,
                         "can't parse entities: Unmatched end tag at byte offset %zu, expected "
                         "\"</%s>\", found \"</%s>\"",
                         tag_at, t->name, name);
                goto out;
            }
            depth--;
            const char *type = t->type;
            char *url = t->url, *lang = t->lang;
            t->url = t->lang = NULL;
            if (strcmp(type, "text_link") == 0 && !url) {
                type = NULL; /* <a> without href: plain text */
            } else if (strcmp(type, "text_link") == 0 && strncmp(url, "tg://user?id=", 13) == 0) {
                type = "text_mention";
            }
            if (type && add_entity(o, type, t->start, url, lang, err, cap) < 0)
                goto out;
            if (!type) {
                free(url);
                free(lang);
            }
            i = (size_t)(gt - s) + 1;
            continue;
        }
        if (!gt) {
            snprintf(err, cap, "can't parse entities: Unclosed start tag at byte offset %zu",
                     tag_at);
            goto out;
        }
        size_t ns = i + 1, ne = ns;
        size_t gend = (size_t)(gt - s);
        while (ne < gend && !isspace((unsigned char)s[ne]) && s[ne] != '/')
            ne++;
        char name[24];
        size_t nl = ne - ns;
        if (nl == 0 || nl >= sizeof name) {
            snprintf(err, cap,
                     "can't parse entities: Unsupported start tag \"%.*s\" at byte offset %zu",
                     (int)(nl > 16 ? 16 : nl), s + ns, tag_at);
            goto out;
        }
        for (size_t k = 0; k < nl; k++)
            name[k] = (char)tolower((unsigned char)s[ns + k]);
        name[nl] = '\0';
        const char *type = html_type(name);
        if (!type) {
            snprintf(err, cap,
                     "can't parse entities: Unsupported start tag \"%s\" at byte offset %zu", name,
                     tag_at);
            goto out;
        }
        if (depth == TEXT_MAX_DEPTH) {
            snprintf(err, cap, "can't parse entities: too deep nesting at byte offset %zu",
                     tag_at);
            goto out;
        }
        char *url = NULL, *lang = NULL;
        if (strcmp(name, "a") == 0) {
            url = html_attr(s, ne, gend, "href");
        } else if (strcmp(name, "span") == 0) {
            char *cls = html_attr(s, ne, gend, "class");
            bool ok = cls && strcmp(cls, "tg-spoiler") == 0;
            free(cls);
            if (!ok) {
                snprintf(err, cap,
                         "can't parse entities: Tag \"span\" must have class \"tg-spoiler\" at "
                         "byte offset %zu",
                         tag_at);
                goto out;
            }
        } else if (strcmp(name, "code") == 0) {
            char *cls = html_attr(s, ne, gend, "class");
            if (cls && strncmp(cls, "language-", 9) == 0 && depth > 0 &&
                strcmp(st[depth - 1].name, "pre") == 0 && !st[depth - 1].lang)
                st[depth - 1].lang = strdup(cls + 9);
            free(cls);
        } else if (strcmp(name, "blockquote") == 0) {
            char *ex = html_attr(s, ne, gend, "expandable");
            if (ex)
                type = "expandable_blockquote";
            free(ex);
        }
        struct open_tag *t = &st[depth++];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->type = type;
        t->start = o->u16;
        t->url = url;
        t->lang = lang;
        i = gend + 1;
    }
    if (depth > 0) {
        snprintf(err, cap,
                 "can't parse entities: Can't find end tag corresponding to start tag \"%s\"",
                 st[depth - 1].name);
        goto out;
    }
    rc = 0;
out:
    for (int k = 0; k < depth; k++) {
        free(st[k].url);
        free(st[k].lang);
    }
    return rc;
}

/* ---- MarkdownV2 ---- */

struct md_open {
    const char *type, *name; /* entity type, td-style name for errors */
    size_t start, at;        /* UTF-16 start, byte offset of the opening delimiter */
};

static int parse_markdown_v2(const char *s, size_t n, struct out *o, char *err, size_t cap)
{
    static const char reserved[] = "_*[]()~`>#+-=|{}.!";
    struct md_open st[TEXT_MAX_DEPTH];
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        bool in_code = depth > 0 && (strcmp(st[depth - 1].type, "code") == 0 ||
                                     strcmp(st[depth - 1].type, "pre") == 0);
        if (c == '\\' && i + 1 < n && s[i + 1] > 0 && s[i + 1] <= 126) {
            put(o, s + i + 1, 1);
            i += 2;
            continue;
        }
        if (in_code && c != '`') {
            put(o, s + i, 1);
            i++;
            continue;
        }
        if (c == '>' && (i == 0 || s[i - 1] == '\n')) {
            i++; /* a blockquote line: the marker is not part of the text */
            continue;
        }
        if (c == ']' && depth > 0 && strcmp(st[depth - 1].type, "text_link") == 0) {
            if (i + 1 >= n || s[i + 1] != '(') {
                snprintf(err, cap, "can't parse entities: Can't find end of a URL at byte offset %zu",
                         i);
                return -1;
            }
            size_t us = i + 2, ue = us;
            while (ue < n && s[ue] != ')') {
                if (s[ue] == '\\' && ue + 1 < n)
                    ue++;
                ue++;
            }
            if (ue >= n) {
                snprintf(err, cap, "can't parse entities: Can't find end of a URL at byte offset %zu",
                         us);
                return -1;
            }
            char *url = malloc(ue - us + 1);
            if (!url)
                abort();
            size_t ul = 0;
            for (size_t k = us; k < ue; k++) {
                if (s[k] == '\\' && k + 1 < ue)
                    k++;
                url[ul++] = s[k];
            }
            url[ul] = '\0';
            depth--;
            if (add_entity(o, strncmp(url, "tg://user?id=", 13) == 0 ? "text_mention" : "text_link",
                           st[depth].start, url, NULL, err, cap) < 0)
                return -1;
            i = ue + 1;
            continue;
        }
        const char *type = NULL, *name = NULL;
        size_t dl = 1;
        switch (c) {
        case '*': type = "bold", name = "Bold"; break;
        case '~': type = "strikethrough", name = "Strikethrough"; break;
        case '_':
            if (i + 1 < n && s[i + 1] == '_')
                type = "underline", name = "Underline", dl = 2;
            else
                type = "italic", name = "Italic";
            break;
        case '|':
            if (i + 1 < n && s[i + 1] == '|')
                type = "spoiler", name = "Spoiler", dl = 2;
            break;
        case '`':
            if (i + 2 < n && s[i + 1] == '`' && s[i + 2] == '`')
                type = "pre", name = "Pre", dl = 3;
            else
                type = "code", name = "Code";
            break;
        case '[': type = "text_link", name = "TextUrl"; break;
        default: break;
        }
        if (!type) {
            if (strchr(reserved, c) && c) {
                snprintf(err, cap,
                         "can't parse entities: Character '%c' is reserved and must be escaped "
                         "with the preceding '\\'",
                         c);
                return -1;
            }
            put(o, s + i, 1);
            i++;
            continue;
        }
        if (depth > 0 && strcmp(st[depth - 1].type, type) == 0 && strcmp(type, "text_link") != 0) {
            depth--;
            if (add_entity(o, type, st[depth].start, NULL, NULL, err, cap) < 0)
                return -1;
            i += dl;
            continue;
        }
        if (in_code) { /* a lone '`' inside pre */
            put(o, s + i, 1);
            i++;
            continue;
        }
        for (int k = 0; k < depth; k++)
            if (strcmp(st[k].type, type) == 0) {
                snprintf(err, cap,
                         "can't parse entities: Can't find end of %s entity at byte offset %zu",
                         st[k].name, st[k].at);
                return -1;
            }
        if (depth == TEXT_MAX_DEPTH) {
            snprintf(err, cap, "can't parse entities: too deep nesting at byte offset %zu", i);
            return -1;
        }
        st[depth++] = (struct md_open){type, name, o->u16, i};
        i += dl;
        if (strcmp(type, "pre") == 0) { /* an optional language up to the end of the line */
            size_t le = i;
            while (le < n && s[le] != '\n' && !isspace((unsigned char)s[le]) && s[le] != '`')
                le++;
            if (le < n && s[le] == '\n')
                i = le + 1;
        }
    }
    if (depth > 0) {
        snprintf(err, cap, "can't parse entities: Can't find end of %s entity at byte offset %zu",
                 st[depth - 1].name, st[depth - 1].at);
        return -1;
    }
    return 0;
}

/* ---- legacy Markdown ---- */

static int parse_markdown(const char *s, size_t n, struct out *o, char *err, size_t cap)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && strchr("_*`[", s[i + 1]) && s[i + 1]) {
            put(o, s + i + 1, 1);
            i += 2;
            continue;
        }
        if (!c || !strchr("_*`[", c)) {
            put(o, s + i, 1);
            i++;
            continue;
        }
        size_t begin = i;
        if (c == '[') {
            const char *close = memchr(s + i + 1, ']', n - i - 1);
            if (!close || (size_t)(close - s) + 1 >= n || close[1] != '(') {
                snprintf(err, cap,
                         "can't parse entities: Can't find end of the entity starting at byte "
                         "offset %zu",
                         begin);
                return -1;
            }
            const char *ue = memchr(close + 2, ')', (size_t)(s + n - close - 2));
            if (!ue) {
                snprintf(err, cap,
                         "can't parse entities: Can't find end of the entity starting at byte "
                         "offset %zu",
                         begin);
                return -1;
            }
            size_t start = o->u16;
            put(o, s + i + 1, (size_t)(close - s - i - 1));
            char *url = strndup(close + 2, (size_t)(ue - close - 2));
            if (!url)
                abort();
            if (add_entity(o, "text_link", start, url, NULL, err, cap) < 0)
                return -1;
            i = (size_t)(ue - s) + 1;
            continue;
        }
        const char *type = c == '*' ? "bold" : c == '_' ? "italic" : "code";
        size_t dl = 1;
        if (c == '`' && i + 2 < n && s[i + 1] == '`' && s[i + 2] == '`') {
            type = "pre";
            dl = 3;
        }
        size_t j = i + dl;
        size_t start = o->u16;
        bool closed = false;
        while (j < n) {
            if (dl == 3 ? (j + 2 < n && memcmp(s + j, "```", 3) == 0) : s[j] == c) {
                closed = true;
                break;
            }
            if (c != '`' && s[j] == '\\' && j + 1 < n && s[j + 1] == c) {
                put(o, s + j + 1, 1);
                j += 2;
                continue;
            }
            put(o, s + j, 1);
            j++;
        }
        if (!closed) {
            snprintf(err, cap,
                     "can't parse entities: Can't find end of the entity starting at byte offset "
                     "%zu",
                     begin);
            return -1;
        }
        if (add_entity(o, type, start, NULL, NULL, err, cap) < 0)
            return -1;
        i = j + dl;
    }
    return 0;
}

int text_parse(const char *mode, const char *s, size_t n, struct text_parsed *res, char *err,
               size_t cap)
{
    memset(res, 0, sizeof *res);
    struct out o = {0};
    int rc;
    put(&o, "", 0);
    if (!mode || !*mode) {
        put(&o, s, n);
        rc = 0;
    } else if (strcasecmp(mode, "HTML") == 0) {
        rc = parse_html(s, n, &o, err, cap);
    } else if (strcasecmp(mode, "MarkdownV2") == 0) {
        rc = parse_markdown_v2(s, n, &o, err, cap);
    } else if (strcasecmp(mode, "Markdown") == 0) {
        rc = parse_markdown(s, n, &o, err, cap);
    } else {
        snprintf(err, cap, "unsupported parse_mode");
        rc = -1;
    }
    if (rc < 0) {
        out_free(&o);
        return -1;
    }
    res->plain = o.p;
    res->plain_len = o.n;
    res->ents = o.ents;
    res->nents = o.nents;
    return 0;
}
