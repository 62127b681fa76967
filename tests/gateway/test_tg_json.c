/* test_tg_json.c -- gateway/tg_json.c: updates (valid and malformed), envelopes (429,
 * migrate_to_chat_id, HTML error pages), getUpdates batches and the request builders. */
#include "test.h"
#include "tg_json.h"

#include <stdint.h>

static struct tg_update U;
static char err[256];

static int parse(const char *s)
{
    return tg_json_parse_update(s, strlen(s), &U, err, sizeof err);
}

TEST(private_text_message)
{
    ASSERT_EQ(parse("{\"update_id\":1001,\"message\":{\"message_id\":7,\"date\":1,"
                    "\"chat\":{\"id\":12345678901,\"type\":\"private\"},"
                    "\"from\":{\"id\":12345678901,\"is_bot\":false,\"first_name\":\"A\"},"
                    "\"text\":\"/start\"}}"),
              0);
    ASSERT_EQ(U.update_id, 1001);
    ASSERT_EQ(U.kind, TG_UPD_MESSAGE);
    ASSERT_EQ(U.chat_id, 12345678901LL); /* > 2^32 */
    ASSERT_EQ(U.chat_type, TG_CHAT_PRIVATE);
    ASSERT_EQ(U.user_id, 12345678901LL);
    ASSERT_EQ(U.message_id, 7);
    ASSERT_STREQ(U.text, "/start");
}

TEST(supergroup_ids_and_unicode_escapes)
{
    ASSERT_EQ(parse("{\"update_id\":5,\"message\":{\"message_id\":1,"
                    "\"chat\":{\"id\":-1001234567890123,\"type\":\"supergroup\"},"
                    "\"from\":{\"id\":9,\"is_bot\":false},"
                    "\"text\":\"caf\\u00e9 \\ud83d\\ude00\"}}"),
              0);
    ASSERT_EQ(U.chat_id, -1001234567890123LL);
    ASSERT_EQ(U.chat_type, TG_CHAT_SUPERGROUP);
    ASSERT_STREQ(U.text, "caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(callback_query)
{
    ASSERT_EQ(parse("{\"update_id\":9,\"callback_query\":{\"id\":\"4382bfdwdsb323b2d9\","
                    "\"from\":{\"id\":77,\"is_bot\":false},\"data\":\"n:abc:2\","
                    "\"message\":{\"message_id\":55,\"chat\":{\"id\":77,\"type\":\"private\"}}}}"),
              0);
    ASSERT_EQ(U.kind, TG_UPD_CALLBACK_QUERY);
    ASSERT_STREQ(U.callback_id, "4382bfdwdsb323b2d9");
    ASSERT_STREQ(U.data, "n:abc:2");
    ASSERT_EQ(U.message_id, 55);
    ASSERT_EQ(U.chat_id, 77);
    ASSERT_EQ(U.user_id, 77);
}

TEST(other_update_kinds_are_valid_without_chat)
{
    ASSERT_EQ(parse("{\"update_id\":10,\"poll\":{\"id\":\"x\"}}"), 0);
    ASSERT_EQ(U.kind, TG_UPD_OTHER);
    ASSERT_EQ(U.chat_id, 0);
    ASSERT_EQ(parse("{\"update_id\":11,\"my_chat_member\":{\"chat\":{\"id\":3,\"type\":"
                    "\"private\"},\"from\":{\"id\":3},\"date\":1,\"new_chat_member\":"
                    "{\"status\":\"kicked\",\"user\":{\"id\":1}}}}"),
              0);
    ASSERT_EQ(U.kind, TG_UPD_MY_CHAT_MEMBER);
    ASSERT_STREQ(U.status, "kicked");
}

TEST(malformed_updates_are_rejected_with_their_id)
{
    const char *cases[] = {
        "not json",
        "[]",
        "{\"message\":{}}",       /* no update_id */
        "{\"update_id\":\"12\"}", /* update_id a string */
        "{\"update_id\":1.5}",    /* not an integer */
        "{\"update_id\":1e300}",  /* out of range */
        "{\"update_id\":-3}",
        "{\"update_id\":12,\"message\":\"x\"}",              /* message not an object */
        "{\"update_id\":12,\"message\":{\"message_id\":1}}", /* no chat */
        "{\"update_id\":12,\"message\":{\"message_id\":1,\"chat\":{\"id\":1,\"type\":\"x\"}}}",
        "{\"update_id\":12,\"message\":{\"message_id\":1,\"chat\":{\"id\":\"1\",\"type\":"
        "\"private\"}}}",
        "{\"update_id\":12,\"message\":{\"message_id\":1,\"chat\":{\"id\":1,\"type\":"
        "\"private\"},\"text\":5}}",
        "{\"update_id\":12,\"message\":{\"message_id\":1,\"chat\":{\"id\":1,\"type\":"
        "\"private\"},\"from\":{\"id\":1,\"is_bot\":\"no\"}}}",
        "{\"update_id\":12,\"callback_query\":{\"id\":\"q\",\"data\":\"x\"}}", /* no from */
        "{\"update_id\":12,\"callback_query\":{\"id\":\"q\",\"from\":{\"id\":1},\"data\":"
        "\"01234567890123456789012345678901234567890123456789012345678901234\"}}", /* 65 */
        "{\"update_id\":12,\"callback_query\":{\"id\":\"\",\"from\":{\"id\":1}}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parse(cases[i]) != -1)
            FAIL_("case %zu accepted: %s", i, cases[i]);
        if (i >= 7 && U.update_id != 12)
            FAIL_("case %zu lost its update_id (%lld)", i, (long long)U.update_id);
        if (!err[0])
            FAIL_("case %zu has no error text", i);
    }
}

TEST(text_over_the_cap_is_rejected_not_cut)
{
    static char buf[40000];
    int n = snprintf(buf, sizeof buf,
                     "{\"update_id\":1,\"message\":{\"message_id\":1,\"chat\":"
                     "{\"id\":1,\"type\":\"private\"},\"text\":\"");
    memset(buf + n, 'a', TG_TEXT_MAX + 1);
    n += TG_TEXT_MAX + 1;
    snprintf(buf + n, sizeof buf - (size_t)n, "\"}}");
    ASSERT_EQ(parse(buf), -1);
    ASSERT_CONTAINS(err, "text too long");
}

TEST(envelope_429_and_migrate)
{
    struct tg_envelope env;
    const char *b = "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry "
                    "after 35\",\"parameters\":{\"retry_after\":35}}";
    ASSERT_EQ(tg_json_parse_envelope(b, strlen(b), &env, err, sizeof err), 0);
    ASSERT_FALSE(env.ok);
    ASSERT_EQ(env.error_code, 429);
    ASSERT_EQ(env.retry_after_s, 35);
    ASSERT_CONTAINS(env.description, "Too Many Requests");
    b = "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was upgraded "
        "to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":-1001234567890}}";
    ASSERT_EQ(tg_json_parse_envelope(b, strlen(b), &env, err, sizeof err), 0);
    ASSERT_EQ(env.migrate_to_chat_id, -1001234567890LL);
}

TEST(envelope_results)
{
    struct tg_envelope env;
    const char *b = "{\"ok\":true,\"result\":{\"message_id\":99,\"chat\":{\"id\":1,\"type\":"
                    "\"private\"},\"document\":{\"file_id\":\"BQACAgIAAxk\",\"file_name\":"
                    "\"a.pdf\"}}}";
    ASSERT_EQ(tg_json_parse_envelope(b, strlen(b), &env, err, sizeof err), 0);
    ASSERT_TRUE(env.ok);
    ASSERT_EQ(env.message_id, 99);
    ASSERT_STREQ(env.file_id, "BQACAgIAAxk");
    b = "{\"ok\":true,\"result\":{\"id\":123456,\"is_bot\":true,\"username\":\"eng_bot\"}}";
    ASSERT_EQ(tg_json_parse_envelope(b, strlen(b), &env, err, sizeof err), 0);
    ASSERT_EQ(env.user_id, 123456);
    ASSERT_STREQ(env.username, "eng_bot");
    b = "{\"ok\":true,\"result\":true}";
    ASSERT_EQ(tg_json_parse_envelope(b, strlen(b), &env, err, sizeof err), 0);
    ASSERT_TRUE(env.ok);
}

TEST(envelope_not_json)
{
    struct tg_envelope env;
    const char *b = "<html><body>502 Bad Gateway</body></html>";
    ASSERT_EQ(tg_json_parse_envelope(b, strlen(b), &env, err, sizeof err), -1);
    b = "{\"result\":1}";
    ASSERT_EQ(tg_json_parse_envelope(b, strlen(b), &env, err, sizeof err), -1);
}

struct seen {
    int good, bad;
    int64_t ids[8];
};

static void on_update(void *ud, int rc, const struct tg_update *u, const char *e)
{
    struct seen *s = ud;
    if (s->good + s->bad < 8)
        s->ids[s->good + s->bad] = u->update_id;
    if (rc == 0)
        s->good++;
    else
        s->bad++;
}

TEST(get_updates_batch_skips_malformed_elements)
{
    static struct tg_update scratch;
    struct tg_envelope env;
    struct seen s = {0};
    const char *b =
        "{\"ok\":true,\"result\":[{\"update_id\":1,\"message\":{\"message_id\":1,\"chat\":{\"id\":"
        "1,\"type\":\"private\"},\"text\":\"a\"}},{\"update_id\":2,\"message\":7},{\"update_id\":"
        "3,\"callback_query\":{\"id\":\"c\",\"from\":{\"id\":1},\"data\":\"x\"}}]}";
    ASSERT_EQ(tg_json_parse_updates(b, strlen(b), &env, on_update, &s, &scratch, err, sizeof err),
              3);
    ASSERT_EQ(s.good, 2);
    ASSERT_EQ(s.bad, 1);
    ASSERT_EQ(s.ids[0], 1);
    ASSERT_EQ(s.ids[1], 2);
    ASSERT_EQ(s.ids[2], 3);
    b = "{\"ok\":false,\"error_code\":409,\"description\":\"Conflict: terminated by other "
        "getUpdates request\"}";
    ASSERT_EQ(tg_json_parse_updates(b, strlen(b), &env, on_update, &s, &scratch, err, sizeof err),
              -1);
    ASSERT_EQ(env.error_code, 409);
}

TEST(message_builder_keeps_64bit_ids_exact_and_escapes)
{
    struct tg_keyboard kb = {0};
    ASSERT_TRUE(tg_kb_add(&kb, true, "\xF0\x9F\x93\x81 a\"b", "n:abc:0"));
    ASSERT_TRUE(tg_kb_add(&kb, false, "Next", "n:abc:1"));
    char data65[66];
    memset(data65, 'x', 65);
    data65[65] = '\0';
    ASSERT_FALSE(tg_kb_add(&kb, true, "bad", data65));
    ASSERT_FALSE(tg_kb_add(&kb, true, "bad", ""));
    char *s = tg_json_message(-1001234567890123LL, 0, "a <b>", "HTML", &kb);
    ASSERT_CONTAINS(s, "\"chat_id\":-1001234567890123");
    ASSERT_CONTAINS(s, "\"text\":\"a <b>\"");
    ASSERT_CONTAINS(s, "\"parse_mode\":\"HTML\"");
    ASSERT_CONTAINS(s, "\"inline_keyboard\":[[{\"text\":\"\xF0\x9F\x93\x81 a\\\"b\","
                       "\"callback_data\":\"n:abc:0\"},{\"text\":\"Next\",\"callback_data\":"
                       "\"n:abc:1\"}]]");
    ASSERT_EQ(tg_json_chat_id(s, strlen(s)), -1001234567890123LL);
    char *m = tg_json_with_chat_id(s, strlen(s), -1009999999999LL);
    ASSERT_EQ(tg_json_chat_id(m, strlen(m)), -1009999999999LL);
    ASSERT_CONTAINS(m, "inline_keyboard");
    free(m);
    free(s);
    s = tg_json_message(5, 77, "edited", NULL, NULL);
    ASSERT_CONTAINS(s, "\"message_id\":77");
    ASSERT_TRUE(strstr(s, "parse_mode") == NULL);
    free(s);
}

TEST(doc_job_round_trip)
{
    struct tg_doc_job j = {.chat_id = 12345678901LL, .size = 5000000000ULL};
    snprintf(j.id, sizeof j.id, "f1a2b3");
    snprintf(j.path, sizeof j.path, "plans/a & b.pdf");
    snprintf(j.name, sizeof j.name, "a & b.pdf");
    char *s = tg_json_doc_job(&j);
    struct tg_doc_job k;
    ASSERT_EQ(tg_json_parse_doc_job(s, strlen(s), &k, err, sizeof err), 0);
    ASSERT_EQ(k.chat_id, j.chat_id);
    ASSERT_EQ(k.size, j.size);
    ASSERT_STREQ(k.path, j.path);
    ASSERT_STREQ(k.name, j.name);
    ASSERT_STREQ(k.caption, "");
    free(s);
    ASSERT_EQ(tg_json_parse_doc_job("{}", 2, &k, err, sizeof err), -1);
}

TEST(request_builders)
{
    char *s = tg_json_get_updates(1002, 100, 25);
    ASSERT_CONTAINS(s, "\"offset\":1002");
    ASSERT_CONTAINS(s, "\"timeout\":25");
    ASSERT_CONTAINS(s, "callback_query");
    free(s);
    s = tg_json_answer_callback("qid", "Sending…", false);
    ASSERT_CONTAINS(s, "\"callback_query_id\":\"qid\"");
    free(s);
    s = tg_json_set_webhook("https://x/y", "sek", 40);
    ASSERT_CONTAINS(s, "\"secret_token\":\"sek\"");
    ASSERT_CONTAINS(s, "\"drop_pending_updates\":false");
    free(s);
    s = tg_json_send_document_by_id(3, "FID", "<b>x</b>", "HTML");
    ASSERT_CONTAINS(s, "\"document\":\"FID\"");
    free(s);
}
