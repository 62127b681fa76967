/* text.c -- UTF-8/UTF-16 accounting, splitting at good boundaries and HTML escaping.
 *
 * Why UTF-16: Telegram counts the 4096-character message limit in UTF-16 code units (an emoji
 * outside the BMP costs 2), so counting bytes or code points would split too late. */
#include "text.h"

#include <stdint.h>
#include <string.h>

/* Length of the UTF-8 sequence at s (1..4) when it is well formed within len, else 0. *cp gets
 * the code point. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

bool text_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

/* Advances over one character; malformed bytes count as one unit each so that the functions
 * stay total on any input. */
static size_t step(const unsigned char *p, size_t left, size_t *units)
{
    uint32_t cp;
    size_t n = utf8_seq(p, left, &cp);
    if (!n) {
        *units = 1;
        return 1;
    }
    *units = cp >= 0x10000 ? 2 : 1;
    return n;
}

size_t text_utf16_units(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, total = 0;
    while (i < len) {
        size_t u;
        i += step(p + i, len - i, &u);
        total += u;
    }
    return total;
}

int text_split(const char *s, size_t len, size_t max_units, bool html, text_part_fn *fn, void *ud)
{
    const unsigned char *p = (const unsigned char *)s;
    int index = 0;
    size_t start = 0;
    if (max_units < 2)
        max_units = 2; /* room for one surrogate pair */
    while (start < len) {
        size_t i = start, units = 0;
        /* Best cuts seen so far in this part: byte offsets where the next part would start
         * (the separator is dropped for newline and space cuts). */
        size_t nl_cut = 0, nl_units = 0, sp_cut = 0, sp_units = 0, cp_cut = 0;
        bool in_tag = false, in_ent = false;
        while (i < len) {
            size_t u, n = step(p + i, len - i, &u);
            if (units + u > max_units)
                break;
            bool safe = !(html && (in_tag || in_ent)); /* a cut before p[i] is allowed */
            if (safe && i > start) {
                cp_cut = i;
                if (p[i] == '\n')
                    nl_cut = i, nl_units = units;
                else if (p[i] == ' ')
                    sp_cut = i, sp_units = units;
            }
            if (html) {
                if (p[i] == '<')
                    in_tag = true;
                else if (p[i] == '>')
                    in_tag = false;
                else if (p[i] == '&' && !in_tag)
                    in_ent = true;
                else if (p[i] == ';' || p[i] == ' ' || p[i] == '\n')
                    in_ent = false;
            }
            units += u;
            i += n;
        }
        if (i < len && i > start && !(html && (in_tag || in_ent))) {
            /* The character that did not fit starts the next part: a boundary too. */
            cp_cut = i;
            if (p[i] == '\n')
                nl_cut = i, nl_units = units;
            else if (p[i] == ' ')
                sp_cut = i, sp_units = units;
        }
        /* Preference: a newline in the second half, a space in the second half, then any
         * newline, any space, any character boundary. The separator at a cut is dropped. */
        size_t cut, next, half = max_units / 2;
        if (i >= len)
            cut = next = len; /* the rest fits */
        else if (nl_cut && nl_units >= half)
            cut = nl_cut, next = nl_cut + 1;
        else if (sp_cut && sp_units >= half)
            cut = sp_cut, next = sp_cut + 1;
        else if (nl_cut)
            cut = nl_cut, next = nl_cut + 1;
        else if (sp_cut)
            cut = sp_cut, next = sp_cut + 1;
        else if (cp_cut)
            cut = next = cp_cut;
        else
            cut = next = i > start ? i : start + 1; /* a tag longer than a part: cut anyway */
        /* A part made only of the separators between two cuts is not worth sending. */
        if (cut > start) {
            int rc = fn(ud, s + start, cut - start, index);
            if (rc)
                return rc;
            index++;
        }
        start = next;
    }
    return index;
}

size_t text_html_escape(const char *in, char *out, size_t cap)
{
    size_t need = 0, o = 0;
    bool full = cap == 0;
    for (const char *c = in; *c; c++) {
        const char *rep = NULL;
        switch (*c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        default:
            break;
        }
        size_t l = rep ? strlen(rep) : 1;
        need += l;
        if (full)
            continue;
        /* Keep whole characters: a UTF-8 lead byte needs room for its whole sequence. */
        size_t want = l;
        if (!rep && ((unsigned char)*c & 0xC0) == 0xC0) {
            unsigned char b = (unsigned char)*c;
            want = (b & 0xF0) == 0xF0 ? 4 : (b & 0xE0) == 0xE0 ? 3 : 2;
        }
        if (o + want + 1 > cap) {
            full = true;
            continue;
        }
        if (rep) {
            memcpy(out + o, rep, l);
            o += l;
        } else {
            out[o++] = *c;
        }
    }
    if (cap)
        out[o] = '\0';
    return need;
}

void text_truncate(const char *in, size_t max_bytes, char *out, size_t cap)
{
    static const char ell[] = "\xE2\x80\xA6"; /* … */
    size_t len = strlen(in);
    if (cap == 0)
        return;
    if (max_bytes >= cap)
        max_bytes = cap - 1;
    if (len <= max_bytes) {
        memcpy(out, in, len + 1);
        return;
    }
    size_t keep = max_bytes >= 3 ? max_bytes - 3 : 0;
    while (keep > 0 && ((unsigned char)in[keep] & 0xC0) == 0x80)
        keep--; /* back to a character boundary */
    memcpy(out, in, keep);
    if (max_bytes >= 3) {
        memcpy(out + keep, ell, 3);
        keep += 3;
    }
    out[keep] = '\0';
}
