/* test_text.c -- gateway/text.c: UTF-16 counting, splitting at good boundaries (never inside a
 * surrogate pair, a tag or an entity), HTML escaping and truncation. */
#include "test.h"
#include "text.h"

struct parts {
    int n;
    char p[64][8192];
    size_t len[64];
};

static int collect(void *ud, const char *part, size_t len, int index)
{
    struct parts *ps = ud;
    if (ps->n >= 64 || len >= sizeof ps->p[0])
        return -1;
    memcpy(ps->p[ps->n], part, len);
    ps->p[ps->n][len] = '\0';
    ps->len[ps->n] = len;
    ps->n++;
    return 0;
}

static struct parts P;

TEST(utf8_validation)
{
    ASSERT_TRUE(text_utf8_valid("hello", 5));
    ASSERT_TRUE(text_utf8_valid("\xF0\x9F\x98\x80", 4));  /* U+1F600 */
    ASSERT_FALSE(text_utf8_valid("\xF0\x9F\x98", 3));     /* truncated */
    ASSERT_FALSE(text_utf8_valid("\xED\xA0\x80", 3));     /* a UTF-16 surrogate in UTF-8 */
    ASSERT_FALSE(text_utf8_valid("\xC0\xAF", 2));         /* overlong '/' */
    ASSERT_FALSE(text_utf8_valid("\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
}

TEST(utf16_units)
{
    ASSERT_EQ(text_utf16_units("abc", 3), 3);
    ASSERT_EQ(text_utf16_units("\xC3\xA9", 2), 1);         /* é */
    ASSERT_EQ(text_utf16_units("\xE2\x82\xAC", 3), 1);     /* € */
    ASSERT_EQ(text_utf16_units("\xF0\x9F\x98\x80", 4), 2); /* 😀 is a surrogate pair */
}

TEST(short_text_is_one_part_and_empty_is_none)
{
    P.n = 0;
    ASSERT_EQ(text_split("hi", 2, 4096, false, collect, &P), 1);
    ASSERT_STREQ(P.p[0], "hi");
    P.n = 0;
    ASSERT_EQ(text_split("", 0, 4096, false, collect, &P), 0);
}

TEST(splits_at_newline_in_second_half)
{
    /* 10 units max: "aaaaaa\nbbbbbb" -> "aaaaaa", "bbbbbb" */
    P.n = 0;
    const char *s = "aaaaaa\nbbbbbb";
    ASSERT_EQ(text_split(s, strlen(s), 10, false, collect, &P), 2);
    ASSERT_STREQ(P.p[0], "aaaaaa");
    ASSERT_STREQ(P.p[1], "bbbbbb");
}

TEST(prefers_space_when_no_newline)
{
    P.n = 0;
    const char *s = "one two three four";
    ASSERT_EQ(text_split(s, strlen(s), 10, false, collect, &P), 2);
    ASSERT_STREQ(P.p[0], "one two");
    ASSERT_STREQ(P.p[1], "three four");
}

TEST(hard_cut_without_boundaries)
{
    P.n = 0;
    char s[25];
    memset(s, 'x', 24);
    s[24] = '\0';
    ASSERT_EQ(text_split(s, 24, 10, false, collect, &P), 3);
    ASSERT_EQ(P.len[0], 10);
    ASSERT_EQ(P.len[1], 10);
    ASSERT_EQ(P.len[2], 4);
}

TEST(never_splits_a_surrogate_pair)
{
    /* 3 emoji = 6 units; max 5 units: the cut must come after the second emoji (4 units). */
    P.n = 0;
    const char *s = "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80";
    ASSERT_EQ(text_split(s, strlen(s), 5, false, collect, &P), 2);
    ASSERT_EQ(P.len[0], 8);
    ASSERT_EQ(P.len[1], 4);
    ASSERT_TRUE(text_utf8_valid(P.p[0], P.len[0]));
    ASSERT_TRUE(text_utf8_valid(P.p[1], P.len[1]));
}

TEST(long_text_parts_respect_the_4096_unit_limit)
{
    /* 3000 emoji (6000 units) plus ASCII lines: every part <= 4096 units, all bytes kept. */
    static char s[40000];
    size_t o = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(s + o, "\xF0\x9F\x93\x84", 4);
        o += 4;
        if (i % 50 == 49)
            s[o++] = '\n';
    }
    s[o] = '\0';
    P.n = 0;
    int n = text_split(s, o, TEXT_MAX_UNITS, false, collect, &P);
    ASSERT_EQ(n, 2);
    size_t total_units = 0;
    for (int i = 0; i < n; i++) {
        size_t u = text_utf16_units(P.p[i], P.len[i]);
        ASSERT_TRUE(u <= TEXT_MAX_UNITS);
        ASSERT_TRUE(text_utf8_valid(P.p[i], P.len[i]));
        total_units += u;
    }
    /* Only the newline at the cut was dropped. */
    ASSERT_EQ(total_units + 1, text_utf16_units(s, o));
}

TEST(html_never_cut_inside_tag_or_entity)
{
    P.n = 0;
    const char *s = "ab&amp;cd<b>xyz</b>";
    /* With 6 units a naive cut would land inside "&amp;" */
    int n = text_split(s, strlen(s), 6, true, collect, &P);
    ASSERT_TRUE(n > 1);
    for (int i = 0; i < n; i++) {
        const char *amp = strchr(P.p[i], '&');
        if (amp)
            ASSERT_TRUE(strstr(P.p[i], "&amp;") != NULL);
        const char *lt = strchr(P.p[i], '<');
        if (lt)
            ASSERT_TRUE(strchr(lt, '>') != NULL);
    }
}

TEST(html_escape_any_file_name)
{
    char out[128];
    ASSERT_EQ(text_html_escape("a<b>&\"c\".pdf", out, sizeof out), 32);
    ASSERT_STREQ(out, "a&lt;b&gt;&amp;&quot;c&quot;.pdf");
    ASSERT_EQ(text_html_escape("plain.dwg", out, sizeof out), 9);
    ASSERT_STREQ(out, "plain.dwg");
    /* Too small: cut at a whole escape, never half of one, and report the needed size. */
    ASSERT_EQ(text_html_escape("<<<<", out, 10), 16);
    ASSERT_STREQ(out, "&lt;&lt;");
    /* Non-ASCII stays whole. */
    ASSERT_EQ(text_html_escape("\xC3\xA9<", out, 4), 6);
    ASSERT_STREQ(out, "\xC3\xA9");
}

TEST(truncate_keeps_characters_whole)
{
    char out[64];
    text_truncate("short", 10, out, sizeof out);
    ASSERT_STREQ(out, "short");
    text_truncate("abcdefghijkl", 8, out, sizeof out);
    ASSERT_STREQ(out, "abcde\xE2\x80\xA6");
    text_truncate("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 6, out, sizeof out); /* éééé */
    ASSERT_STREQ(out, "\xC3\xA9\xE2\x80\xA6");
    ASSERT_TRUE(text_utf8_valid(out, strlen(out)));
}
