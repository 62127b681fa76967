/* test_params.c -- request parameter decoding (params.c): urlencoded, JSON, multipart, caps. */
#include "params.h"
#include "test.h"

static const char *ERR_UNSET = "(unset)";

TEST(urlencoded_decodes_plus_and_percent)
{
    struct params p;
    char err[100];
    params_init(&p);
    const char *s = "chat_id=42&text=a+b%20c%26d&empty=&flag&bad=%zz%4&chat_id=43";
    ASSERT_EQ(params_parse_urlencoded(&p, s, strlen(s), err, sizeof err), 0);
    ASSERT_STREQ(params_str(&p, "chat_id"), "42"); /* the first occurrence wins */
    ASSERT_STREQ(params_str(&p, "text"), "a b c&d");
    ASSERT_STREQ(params_str(&p, "empty"), "");
    ASSERT_STREQ(params_str(&p, "flag"), "");
    ASSERT_STREQ(params_str(&p, "bad"), "%zz%4");
    int64_t v;
    ASSERT_EQ(params_int64(&p, "chat_id", &v), 1);
    ASSERT_EQ(v, 42);
    ASSERT_EQ(params_int64(&p, "text", &v), -1);
    ASSERT_EQ(params_int64(&p, "missing", &v), 0);
    params_free(&p);
}

TEST(urlencoded_caps_the_count)
{
    struct params p;
    char err[100] = "";
    params_init(&p);
    char buf[PARAMS_MAX * 12 + 100];
    size_t n = 0;
    for (int i = 0; i <= PARAMS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "k%d=v&", i);
    ASSERT_EQ(params_parse_urlencoded(&p, buf, n, err, sizeof err), -1);
    ASSERT_STREQ(err, "too many parameters");
    params_free(&p);
}

TEST(json_keeps_non_strings_as_json_text)
{
    struct params p;
    char err[100];
    params_init(&p);
    const char *s = "{\"chat_id\":-1001234567890,\"text\":\"hi\",\"reply_markup\":{\"inline_keyboard\":"
                    "[[{\"text\":\"a\",\"callback_data\":\"b\"}]]},\"ok\":true,\"n\":null}";
    ASSERT_EQ(params_parse_json(&p, s, strlen(s), err, sizeof err), 0);
    ASSERT_STREQ(params_str(&p, "chat_id"), "-1001234567890");
    ASSERT_STREQ(params_str(&p, "text"), "hi");
    ASSERT_CONTAINS(params_str(&p, "reply_markup"), "\"callback_data\":\"b\"");
    ASSERT_STREQ(params_str(&p, "ok"), "true");
    ASSERT_TRUE(params_find(&p, "n") == NULL);
    bool b;
    ASSERT_EQ(params_bool(&p, "ok", &b), 1);
    ASSERT_TRUE(b);
    params_free(&p);
    params_init(&p);
    ASSERT_EQ(params_parse_json(&p, "[1]", 3, err, sizeof err), -1);
    ASSERT_STREQ(err, "can't parse JSON object");
    ASSERT_EQ(params_parse_json(&p, "{\"a\":", 5, err, sizeof err), -1);
    params_free(&p);
}

TEST(multipart_fields_files_and_binary)
{
    struct params p;
    char err[100] = "";
    params_init(&p);
    const char body[] = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n"
                        "42\r\n--XyZ\r\ncontent-disposition: form-data; name=\"document\"; "
                        "filename=\"a \\\"q\\\".pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
                        "%PDF\0\r\n--X\r\n--XyZ--\r\nepilogue";
    ASSERT_EQ(params_parse_multipart(&p, body, sizeof body - 1, "XyZ", err, sizeof err), 0);
    ASSERT_STREQ(params_str(&p, "chat_id"), "42");
    const struct param *d = params_find(&p, "document");
    ASSERT_TRUE(d != NULL);
    ASSERT_STREQ(d->filename, "a \"q\".pdf");
    ASSERT_STREQ(d->ctype, "application/pdf");
    ASSERT_EQ(d->len, 10);
    ASSERT_TRUE(memcmp(d->value, "%PDF\0\r\n--X", 10) == 0);
    ASSERT_TRUE(params_str(&p, "document") == NULL); /* a file is not a plain field */
    params_free(&p);
}

TEST(multipart_malformed)
{
    static const char *const bad[] = {
        "",
        "--b",
        "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nno end",
        "--b\r\nContent-Disposition: form-data; name=\"x\"",
        "--bX\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct params p;
        char err[100] = "";
        params_init(&p);
        ASSERT_EQ(params_parse_multipart(&p, bad[i], strlen(bad[i]), "b", err, sizeof err), -1);
        ASSERT_STREQ(err, "can't parse multipart/form-data request");
        params_free(&p);
    }
}

TEST(boundary_from_content_type)
{
    char b[80];
    ASSERT_TRUE(params_boundary("multipart/form-data; boundary=abc", b, sizeof b));
    ASSERT_STREQ(b, "abc");
    ASSERT_TRUE(params_boundary("Multipart/Form-Data; charset=x; boundary=\"a b\"", b, sizeof b));
    ASSERT_STREQ(b, "a b");
    ASSERT_FALSE(params_boundary("multipart/form-data", b, sizeof b));
    ASSERT_FALSE(params_boundary("text/plain; boundary=x", b, sizeof b));
    char longb[200];
    snprintf(longb, sizeof longb, "multipart/form-data; boundary=%071d", 0);
    ASSERT_FALSE(params_boundary(longb, b, sizeof b));
}

TEST(body_dispatch_by_content_type)
{
    struct params p;
    char err[100] = "";
    params_init(&p);
    ASSERT_EQ(params_parse_body(&p, "text/plain", "a=b", 3, err, sizeof err), 0);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(params_parse_body(&p, "application/json; charset=utf-8", "{\"a\":\"b\"}", 9, err,
                                sizeof err),
              0);
    ASSERT_STREQ(params_str(&p, "a"), "b");
    ASSERT_EQ(params_parse_body(&p, "multipart/form-data", "x", 1, err, sizeof err), -1);
    ASSERT_STREQ(err, "wrong multipart boundary");
    params_free(&p);
    (void)ERR_UNSET;
}

TEST(int64_parsing)
{
    int64_t v;
    ASSERT_TRUE(parse_int64("-1001234567890", &v));
    ASSERT_EQ(v, -1001234567890LL);
    ASSERT_TRUE(parse_int64(" 7 ", &v));
    ASSERT_FALSE(parse_int64("7x", &v));
    ASSERT_FALSE(parse_int64("", &v));
    ASSERT_FALSE(parse_int64("99999999999999999999", &v));
    ASSERT_FALSE(parse_int64("1.5", &v));
}
