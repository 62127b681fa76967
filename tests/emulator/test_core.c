/* test_core.c -- the emulator's small building blocks: SHA-256 (sha256.c), the ordered hash map
 * (hmap.c) and reply_markup checks (markup.c). */
#include "hmap.h"
#include "markup.h"
#include "sha256.h"
#include "test.h"

#include <cjson/cJSON.h>

TEST(sha256_vectors)
{
    char h[65];
    sha256_hex("", 0, h);
    ASSERT_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, h);
    ASSERT_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), h);
    ASSERT_STREQ(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* Fed in odd pieces: the same digest. */
    static char mil[1000000];
    memset(mil, 'a', sizeof mil);
    struct sha256 s;
    uint8_t d[32];
    sha256_init(&s);
    for (size_t off = 0; off < sizeof mil; off += 777)
        sha256_update(&s, mil + off, sizeof mil - off < 777 ? sizeof mil - off : 777);
    sha256_final(&s, d);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    ASSERT_STREQ(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static int freed;
static void count_free(void *p)
{
    freed++;
    free(p);
}

TEST(hmap_order_replace_evict)
{
    struct hmap m;
    hmap_init(&m, count_free);
    for (int i = 0; i < 1000; i++) {
        int *v = malloc(sizeof *v);
        *v = i;
        hmap_puti(&m, i, v);
    }
    ASSERT_EQ(m.n, 1000);
    ASSERT_EQ(*(int *)hmap_geti(&m, 777), 777);
    int *nv = malloc(sizeof *nv);
    *nv = -1;
    hmap_puti(&m, 0, nv); /* replaced in place: 0 stays the oldest */
    ASSERT_EQ(freed, 1);
    ASSERT_STREQ(m.oldest->key, "0");
    ASSERT_TRUE(hmap_del_oldest(&m));
    ASSERT_STREQ(m.oldest->key, "1");
    ASSERT_TRUE(hmap_del(&m, "500"));
    ASSERT_FALSE(hmap_del(&m, "500"));
    ASSERT_TRUE(hmap_geti(&m, 500) == NULL);
    ASSERT_EQ(m.n, 998);
    hmap_clear(&m);
    ASSERT_EQ(freed, 1001);
    ASSERT_EQ(m.n, 0);
    ASSERT_TRUE(hmap_get(&m, "1") == NULL);
}

static const char *check(const char *json)
{
    static char err[300];
    err[0] = '\0';
    cJSON *m = markup_parse(json, strlen(json), err, sizeof err);
    cJSON_Delete(m);
    return m ? "ok" : err;
}

TEST(markup_limits)
{
    ASSERT_STREQ(check("{\"inline_keyboard\":[[{\"text\":\"a\",\"callback_data\":\"0123456789012345678901234567890123456789012345678901234567890123\"}]]}"), "ok");
    ASSERT_STREQ(check("{\"inline_keyboard\":[[{\"text\":\"a\",\"callback_data\":\"01234567890123456789012345678901234567890123456789012345678901234\"}]]}"), "BUTTON_DATA_INVALID");
    ASSERT_STREQ(check("{\"inline_keyboard\":[[{\"text\":\" \",\"callback_data\":\"x\"}]]}"), "BUTTON_TEXT_INVALID");
    ASSERT_STREQ(check("{\"inline_keyboard\":[[{\"text\":\"a\",\"url\":\"javascript:x\"}]]}"),
                 "inline keyboard button URL 'javascript:x' is invalid: Wrong HTTP URL");
    ASSERT_STREQ(check("{\"inline_keyboard\":[[{\"text\":\"a\",\"url\":\"https://x\",\"callback_data\":\"y\"}]]}"),
                 "can't parse inline keyboard button: exactly one of the optional fields must be used");
    ASSERT_STREQ(check("{\"keyboard\":[[\"a\"]]}"), "ok");
    ASSERT_STREQ(check("{\"remove_keyboard\":true}"), "ok");
    ASSERT_STREQ(check("{}"), "can't find field \"inline_keyboard\"");
    ASSERT_STREQ(check("[]"), "can't parse reply keyboard markup JSON object");
    ASSERT_STREQ(check("{\"inline_keyboard\":[[1]]}"),
                 "can't parse inline keyboard button: InlineKeyboardButton must be an Object");
}
