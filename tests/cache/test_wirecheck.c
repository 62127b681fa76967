/* test_wirecheck.c -- cache-svc/wirecheck.c: a NUL byte inside a string field is found on
 * the wire (top level and nested), bytes fields and clean requests pass. */
#include "engbot/cache/v1/cache.pb-c.h"
#include "test.h"
#include "wirecheck.h"

TEST(nul_in_a_top_level_string)
{
    /* ResolveRequest{path: "a.pdf\0../../etc/passwd"}: field 2, wire type 2. */
    static const uint8_t msg[] = {0x12, 22,  'a', '.', 'p', 'd', 'f', 0,   '.', '.', '/', '.',
                                  '.',  '/', 'e', 't', 'c', '/', 'p', 'a', 's', 's', 'w', 'd'};
    const char *field;
    ASSERT_TRUE(wire_string_has_nul(&engbot__cache__v1__resolve_request__descriptor, msg,
                                    sizeof msg, &field));
    ASSERT_STREQ(field, "path");
    /* protobuf-c would have handed the handler "a.pdf". */
    Engbot__Cache__V1__ResolveRequest *rq =
        engbot__cache__v1__resolve_request__unpack(NULL, sizeof msg, msg);
    ASSERT_TRUE(rq != NULL);
    ASSERT_STREQ(rq->path, "a.pdf");
    engbot__cache__v1__resolve_request__free_unpacked(rq, NULL);
}

TEST(nul_in_a_nested_string)
{
    /* PutFileIdRequest{key: FileKey{bot_id: 1, path: "a\0b"}, file_id: "x"} */
    static const uint8_t msg[] = {0x0a, 7, 0x08, 0x01, 0x12, 3, 'a', 0, 'b', 0x12, 1, 'x'};
    const char *field;
    ASSERT_TRUE(wire_string_has_nul(&engbot__cache__v1__put_file_id_request__descriptor, msg,
                                    sizeof msg, &field));
    ASSERT_STREQ(field, "path");
}

TEST(clean_requests_and_bytes_fields_pass)
{
    Engbot__Cache__V1__ListFolderRequest rq = ENGBOT__CACHE__V1__LIST_FOLDER_REQUEST__INIT;
    rq.path = "Mechanical/Drawings";
    rq.page_size = 50;
    uint8_t buf[128];
    size_t n = engbot__cache__v1__list_folder_request__pack(&rq, buf);
    const char *field;
    ASSERT_FALSE(
        wire_string_has_nul(&engbot__cache__v1__list_folder_request__descriptor, buf, n, &field));
    /* ReadFileResponse.data is bytes: NULs are data there. */
    static const uint8_t resp[] = {0x1a, 3, 0, 0, 0};
    ASSERT_FALSE(wire_string_has_nul(&engbot__cache__v1__read_file_response__descriptor, resp,
                                     sizeof resp, &field));
    ASSERT_FALSE(
        wire_string_has_nul(&engbot__cache__v1__resolve_request__descriptor, NULL, 0, &field));
    /* Malformed input is not this check's business (and must not crash). */
    static const uint8_t bad[] = {0x12, 200, 'a'};
    ASSERT_FALSE(wire_string_has_nul(&engbot__cache__v1__resolve_request__descriptor, bad,
                                     sizeof bad, &field));
}
