/* test_text.c -- UTF-16 lengths, UTF-8 validation and the parse modes (text.c). */
#include "test.h"
#include "text.h"

static struct text_parsed P;
static char E[300];

static int parse(const char *mode, const char *s)
{
    text_parsed_free(&P);
    E[0] = '\0';
    return text_parse(mode, s, strlen(s), &P, E, sizeof E);
}

TEST(utf16_length)
{
    ASSERT_EQ(text_utf16_len("abc", 3), 3);
    ASSERT_EQ(text_utf16_len("\xc3\xa9", 2), 1);          /* é */
    ASSERT_EQ(text_utf16_len("\xe2\x82\xac", 3), 1);      /* € */
    ASSERT_EQ(text_utf16_len("\xf0\x9f\x98\x80", 4), 2);  /* 😀: a surrogate pair */
}

TEST(utf8_validation)
{
    ASSERT_TRUE(text_utf8_valid("h\xc3\xa9\xf0\x9f\x98\x80", 7));
    ASSERT_FALSE(text_utf8_valid("\xff", 1));
    ASSERT_FALSE(text_utf8_valid("\xc3", 1));             /* truncated */
    ASSERT_FALSE(text_utf8_valid("\xc0\xaf", 2));         /* overlong */
    ASSERT_FALSE(text_utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    ASSERT_FALSE(text_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
}

TEST(html_entities_and_offsets)
{
    ASSERT_EQ(parse("HTML", "<b>B</b> &lt;x&gt; &amp; &quot;q&quot; &#128512; <a href=\"http://e.org/?a=1&amp;b=2\">l</a>"), 0);
    ASSERT_STREQ(P.plain, "B <x> & \"q\" \xf0\x9f\x98\x80 l");
    ASSERT_EQ(P.nents, 2);
    ASSERT_STREQ(P.ents[0].type, "bold");
    ASSERT_EQ(P.ents[0].offset, 0);
    ASSERT_EQ(P.ents[0].length, 1);
    ASSERT_STREQ(P.ents[1].type, "text_link");
    ASSERT_EQ(P.ents[1].offset, 15); /* the emoji counts 2 */
    ASSERT_STREQ(P.ents[1].url, "http://e.org/?a=1&b=2");
    ASSERT_EQ(parse("html", "a &unknown; b & c"), 0);
    ASSERT_STREQ(P.plain, "a &unknown; b & c");
    ASSERT_EQ(parse("HTML", "<pre><code class=\"language-c\">x</code></pre><span class=\"tg-spoiler\">s</span>"), 0);
    ASSERT_STREQ(P.ents[0].type, "code");
    ASSERT_STREQ(P.ents[1].type, "pre");
    ASSERT_STREQ(P.ents[1].language, "c");
    ASSERT_STREQ(P.ents[2].type, "spoiler");
}

TEST(html_errors)
{
    ASSERT_EQ(parse("HTML", "<b>x"), -1);
    ASSERT_STREQ(E, "can't parse entities: Can't find end tag corresponding to start tag \"b\"");
    ASSERT_EQ(parse("HTML", "x</b>"), -1);
    ASSERT_STREQ(E, "can't parse entities: Unexpected end tag at byte offset 1");
    ASSERT_EQ(parse("HTML", "<b><i>x</b></i>"), -1);
    ASSERT_STREQ(E, "can't parse entities: Unmatched end tag at byte offset 7, expected \"</i>\", "
                    "found \"</b>\"");
    ASSERT_EQ(parse("HTML", "a<script>"), -1);
    ASSERT_STREQ(E, "can't parse entities: Unsupported start tag \"script\" at byte offset 1");
    ASSERT_EQ(parse("HTML", "a <b"), -1);
    ASSERT_STREQ(E, "can't parse entities: Unclosed start tag at byte offset 2");
    ASSERT_EQ(parse("HTML", "<span>x</span>"), -1);
    ASSERT_EQ(parse("HTML", "1 < 2"), -1);
    char deep[2000] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "<b>");
    ASSERT_EQ(parse("HTML", deep), -1);
    ASSERT_CONTAINS(E, "too deep");
}

TEST(markdown_v2)
{
    ASSERT_EQ(parse("MarkdownV2", "*bold* _it_ __u__ ~s~ ||sp|| `c\\`` [l](http://x.org/a\\)b) 1\\.5"), 0);
    ASSERT_STREQ(P.plain, "bold it u s sp c` l 1.5");
    ASSERT_EQ(P.nents, 7);
    ASSERT_STREQ(P.ents[5].type, "code");
    ASSERT_STREQ(P.ents[6].url, "http://x.org/a)b");
    ASSERT_EQ(parse("MarkdownV2", "a.b"), -1);
    ASSERT_STREQ(E, "can't parse entities: Character '.' is reserved and must be escaped with the "
                    "preceding '\\'");
    ASSERT_EQ(parse("MarkdownV2", "*bold"), -1);
    ASSERT_STREQ(E, "can't parse entities: Can't find end of Bold entity at byte offset 0");
    ASSERT_EQ(parse("MarkdownV2", "```c\nint x;\n```"), 0);
    ASSERT_STREQ(P.plain, "int x;\n");
    ASSERT_STREQ(P.ents[0].type, "pre");
}

TEST(markdown_legacy)
{
    ASSERT_EQ(parse("Markdown", "*b* _i_ `c` [t](http://u) a\\_b"), 0);
    ASSERT_STREQ(P.plain, "b i c t a_b");
    ASSERT_EQ(P.nents, 4);
    ASSERT_EQ(parse("Markdown", "file_name.pdf"), -1);
    ASSERT_STREQ(E, "can't parse entities: Can't find end of the entity starting at byte offset 4");
}

TEST(plain_and_unsupported_modes)
{
    ASSERT_EQ(parse(NULL, "<b>as is</b>"), 0);
    ASSERT_STREQ(P.plain, "<b>as is</b>");
    ASSERT_EQ(parse("BBCode", "x"), -1);
    ASSERT_STREQ(E, "unsupported parse_mode");
    text_parsed_free(&P);
}

TEST(bot_commands)
{
    ASSERT_EQ(text_command_len("/start", 6), 6);
    ASSERT_EQ(text_command_len("/get pump.pdf", 13), 4);
    ASSERT_EQ(text_command_len("/start@engbot_bot x", 19), 17);
    ASSERT_EQ(text_command_len("/", 1), 0);
    ASSERT_EQ(text_command_len("hello /start", 12), 0);
    ASSERT_EQ(text_command_len("/a-b", 4), 0);
}
