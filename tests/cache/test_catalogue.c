/* test_catalogue.c -- cache-svc/catalogue.c and catid.c: ids (SipHash vectors, format,
 * stability, collisions), listing order and paging, lookups, ranked search, limits and
 * memory accounting. */
#include "catalogue.h"
#include "test.h"

/* Builds a folder's listing from "name" (file) and "name/" (folder) strings. */
static int sync(struct cat *c, const char *path, const char *const *names, size_t n,
                struct cat_delta *d)
{
    struct cat_item items[64];
    char buf[64][128];
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[i], sizeof buf[i], "%s", names[i]);
        size_t l = strlen(buf[i]);
        bool folder = l && buf[i][l - 1] == '/';
        if (folder)
            buf[i][l - 1] = '\0';
        items[i] = (struct cat_item){buf[i], folder ? CAT_FOLDER : CAT_FILE, 100 + i, 1000};
    }
    struct cat_delta local = {0};
    cat_wrlock(c);
    int rc = cat_sync_folder(c, path, items, n, NULL, NULL, d ? d : &local);
    cat_unlock(c);
    return rc;
}

#define SYNC(c, path, ...)                                                                         \
    sync((c), (path), (const char *const[]){__VA_ARGS__},                                          \
         sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *), NULL)

static const char *id_of(struct cat *c, const char *path, char *out)
{
    cat_rdlock(c);
    uint32_t s = cat_by_path(c, path);
    out[0] = '\0';
    if (s != CAT_NONE) {
        struct cat_info in;
        cat_get(c, s, &in);
        strcpy(out, in.id);
    }
    cat_unlock(c);
    return out;
}

TEST(siphash_reference_vectors)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* From the SipHash paper and its reference implementation (vectors.h). */
    ASSERT_EQ(siphash24(key, msg, 0), (long long)0x726fdb47dd0e0e31ULL);
    ASSERT_EQ(siphash24(key, msg, 15), (long long)0xa129ca6149be45e5ULL);
}

TEST(id_format_and_parse)
{
    char id[CATID_LEN + 1];
    uint64_t h = catid_hash("Mechanical/Drawings/Bracket-A100.dxf", 36, 0);
    ASSERT_TRUE(h < (1ULL << CATID_BITS));
    catid_format(h, id);
    ASSERT_EQ(strlen(id), CATID_LEN);
    ASSERT_TRUE(CATID_LEN <= 16); /* fits Telegram's 64-byte callback data with room */
    ASSERT_EQ(strspn(id, "0123456789abcdefghjkmnpqrstvwxyz"), CATID_LEN);
    uint64_t back;
    ASSERT_TRUE(catid_parse(id, strlen(id), &back));
    ASSERT_EQ(back, h);
    char upper[CATID_LEN + 1];
    for (int i = 0; i <= CATID_LEN; i++)
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'z' ? id[i] - 32 : id[i]);
    ASSERT_TRUE(catid_parse(upper, CATID_LEN, &back));
    ASSERT_EQ(back, h);
    ASSERT_FALSE(catid_parse("0123456789a", 11, &back));   /* short */
    ASSERT_FALSE(catid_parse("0123456789abc", 13, &back)); /* long */
    ASSERT_FALSE(catid_parse("0123456789ai", 12, &back));  /* 'i' is not in the alphabet */
    ASSERT_FALSE(catid_parse("0123456789a/", 12, &back));
}

TEST(id_is_stable_across_catalogues_and_readds)
{
    struct cat *a = cat_new(NULL), *b = cat_new(NULL);
    SYNC(a, "", "Standards/", "x.pdf");
    SYNC(a, "Standards", "ISO-2768.pdf");
    /* Another process, another order of arrival. */
    SYNC(b, "", "x.pdf", "Standards/");
    SYNC(b, "Standards", "ISO-2768.pdf");
    char i1[16], i2[16];
    ASSERT_STREQ(id_of(a, "Standards/ISO-2768.pdf", i1), id_of(b, "Standards/ISO-2768.pdf", i2));
    ASSERT_STREQ(id_of(a, "Standards", i1), id_of(b, "Standards", i2));
    ASSERT_STREQ(id_of(a, "", i1), id_of(b, "", i2));
    /* Removed and added again: the same id. */
    id_of(a, "x.pdf", i1);
    SYNC(a, "", "Standards/");
    ASSERT_STREQ(id_of(a, "x.pdf", i2), "");
    SYNC(a, "", "Standards/", "x.pdf");
    ASSERT_STREQ(id_of(a, "x.pdf", i2), i1);
    /* A rename is a new path, so a new id. */
    SYNC(a, "", "Standards/", "y.pdf");
    ASSERT_NE(strcmp(id_of(a, "y.pdf", i2), i1), 0);
    cat_free(a);
    cat_free(b);
}

TEST(id_collisions_are_resolved_deterministically)
{
    /* 4-bit ids: 16 values for 12 entries forces collisions. */
    struct cat_opts o = {.id_bits = 4};
    struct cat *a = cat_new(&o), *b = cat_new(&o);
    const char *names[] = {"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "fa"};
    sync(a, "", names, 11, NULL);
    sync(b, "", names, 11, NULL);
    char seen[12][16];
    for (int i = 0; i < 11; i++) {
        id_of(a, names[i], seen[i]);
        ASSERT_TRUE(seen[i][0] != '\0');
        for (int j = 0; j < i; j++)
            ASSERT_NE(strcmp(seen[i], seen[j]), 0);
        char other[16];
        ASSERT_STREQ(id_of(b, names[i], other), seen[i]);
        cat_rdlock(a);
        uint32_t s = cat_by_id(a, seen[i], strlen(seen[i]));
        ASSERT_STREQ(cat_path(a, s), names[i]);
        cat_unlock(a);
    }
    cat_free(a);
    cat_free(b);
}

TEST(listing_is_folders_first_in_natural_name_order)
{
    struct cat *c = cat_new(NULL);
    SYNC(c, "", "b.pdf", "Zeta/", "Flange Rev 10.dxf", "alpha/", "Flange Rev 2.dxf", "A.pdf");
    uint32_t s[8];
    cat_rdlock(c);
    size_t n = cat_list(c, cat_root(c), 0, 8, s);
    ASSERT_EQ(n, 6);
    ASSERT_STREQ(cat_path(c, s[0]), "alpha");
    ASSERT_STREQ(cat_path(c, s[1]), "Zeta");
    ASSERT_STREQ(cat_path(c, s[2]), "A.pdf");
    ASSERT_STREQ(cat_path(c, s[3]), "b.pdf");
    ASSERT_STREQ(cat_path(c, s[4]), "Flange Rev 2.dxf");
    ASSERT_STREQ(cat_path(c, s[5]), "Flange Rev 10.dxf");
    cat_unlock(c);
    ASSERT_TRUE(cat_name_cmp("Rev 9", "Rev 10") < 0);
    ASSERT_TRUE(cat_name_cmp("rev 010", "Rev 9") > 0);
    ASSERT_TRUE(cat_name_cmp("abc", "ABD") < 0);
    ASSERT_EQ(cat_name_cmp("File", "file"), 0);
    cat_free(c);
}

TEST(paging_slices_the_sorted_listing)
{
    struct cat *c = cat_new(NULL);
    const char *names[45];
    char buf[45][16];
    for (int i = 0; i < 45; i++) {
        snprintf(buf[i], sizeof buf[i], "f%02d.pdf", 44 - i);
        names[i] = buf[i];
    }
    sync(c, "", names, 45, NULL);
    uint32_t s[20];
    cat_rdlock(c);
    ASSERT_EQ(cat_list(c, cat_root(c), 0, 20, s), 45);
    ASSERT_STREQ(cat_path(c, s[0]), "f00.pdf");
    ASSERT_STREQ(cat_path(c, s[19]), "f19.pdf");
    memset(s, 0xff, sizeof s);
    cat_list(c, cat_root(c), 40, 20, s);
    ASSERT_STREQ(cat_path(c, s[0]), "f40.pdf");
    ASSERT_STREQ(cat_path(c, s[4]), "f44.pdf");
    ASSERT_EQ(s[5], CAT_NONE); /* only 5 on the last page */
    cat_unlock(c);
    cat_free(c);
}

TEST(lookups_by_path_id_and_name)
{
    struct cat *c = cat_new(NULL);
    SYNC(c, "", "Datasheets/", "Bearing-6204.pdf");
    SYNC(c, "Datasheets", "Archive/", "bearing-6204.PDF", "Motor.pdf");
    SYNC(c, "Datasheets/Archive", "Bearing-6204.pdf");
    cat_rdlock(c);
    uint32_t s = cat_by_path(c, "Datasheets/Motor.pdf");
    ASSERT_TRUE(s != CAT_NONE);
    struct cat_info in;
    cat_get(c, s, &in);
    ASSERT_STREQ(in.name, "Motor.pdf");
    ASSERT_STREQ(in.content_type, "application/pdf");
    ASSERT_EQ(in.kind, CAT_FILE);
    uint32_t p = cat_by_path(c, "Datasheets");
    struct cat_info pin;
    cat_get(c, p, &pin);
    ASSERT_STREQ(in.parent_id, pin.id);
    ASSERT_EQ(pin.child_count, 3);
    ASSERT_EQ(cat_by_id(c, in.id, strlen(in.id)), s);
    ASSERT_EQ(cat_by_id(c, "zzzzzzzzzzzz", 12), CAT_NONE);
    ASSERT_EQ(cat_by_path(c, "Datasheets/motor.pdf"), CAT_NONE); /* paths are exact */
    uint32_t out[8];
    ASSERT_EQ(cat_by_name(c, "BEARING-6204.pdf", out, 8), 3); /* names are case-insensitive */
    ASSERT_STREQ(cat_path(c, out[0]), "Bearing-6204.pdf");    /* in path order */
    ASSERT_STREQ(cat_path(c, out[1]), "Datasheets/Archive/Bearing-6204.pdf");
    ASSERT_STREQ(cat_path(c, out[2]), "Datasheets/bearing-6204.PDF");
    ASSERT_EQ(cat_by_name(c, "Datasheets", out, 8), 0); /* folders are not resolved by name */
    ASSERT_EQ(cat_by_name(c, "Motor.pdf", out, 8), 1);
    cat_unlock(c);
    cat_free(c);
}

static void search_paths(struct cat *c, const char *q, bool files_only, char out[][64], size_t *n,
                         long *total)
{
    uint32_t s[16];
    cat_rdlock(c);
    *total = cat_search(c, q, files_only, s, 16);
    *n = *total > 16 ? 16 : (*total < 0 ? 0 : (size_t)*total);
    for (size_t i = 0; i < *n; i++)
        snprintf(out[i], 64, "%s", cat_path(c, s[i]));
    cat_unlock(c);
}

TEST(search_ranks_name_matches_above_path_matches)
{
    struct cat *c = cat_new(NULL);
    SYNC(c, "", "Bearings/", "bearing.pdf", "Bearing-6204.pdf", "Old Bearing list.csv",
         "Ballbearing.pdf", "Shaft.dxf");
    SYNC(c, "Bearings", "readme.txt");
    char r[16][64];
    size_t n;
    long total;
    search_paths(c, "bearing", false, r, &n, &total);
    ASSERT_EQ(total, 6);
    ASSERT_STREQ(r[0], "bearing.pdf");          /* the whole name stem */
    ASSERT_STREQ(r[1], "Bearing-6204.pdf");     /* the start of the name */
    ASSERT_STREQ(r[2], "Bearings");             /* same score, later in name order */
    ASSERT_STREQ(r[3], "Old Bearing list.csv"); /* the start of a word */
    ASSERT_STREQ(r[4], "Ballbearing.pdf");      /* inside a word */
    ASSERT_STREQ(r[5], "Bearings/readme.txt");  /* only the folder matches */
    /* Case-insensitive. */
    search_paths(c, "BEARING", false, r, &n, &total);
    ASSERT_EQ(total, 6);
    ASSERT_STREQ(r[0], "bearing.pdf");
    /* files_only drops the folder. */
    search_paths(c, "bearing", true, r, &n, &total);
    ASSERT_EQ(total, 5);
    ASSERT_STREQ(r[2], "Old Bearing list.csv");
    cat_free(c);
}

TEST(search_needs_every_word)
{
    struct cat *c = cat_new(NULL);
    SYNC(c, "", "Datasheets/", "Bearing-6204.pdf", "Bearing-6205.pdf", "Motor 6204.pdf");
    SYNC(c, "Datasheets", "Motor-M90.pdf");
    char r[16][64];
    size_t n;
    long total;
    search_paths(c, "bearing 6204", false, r, &n, &total);
    ASSERT_EQ(total, 1);
    ASSERT_STREQ(r[0], "Bearing-6204.pdf");
    search_paths(c, "  datasheets   motor ", false, r, &n, &total); /* folder word + name word */
    ASSERT_EQ(total, 1);
    ASSERT_STREQ(r[0], "Datasheets/Motor-M90.pdf");
    search_paths(c, "nothing", false, r, &n, &total);
    ASSERT_EQ(total, 0);
    search_paths(c, "   ", false, r, &n, &total);
    ASSERT_EQ(total, -1);
    search_paths(c, "a b c d e f g h i", false, r, &n, &total); /* 9 words */
    ASSERT_EQ(total, -1);
    cat_free(c);
}

TEST(search_limit_keeps_the_best)
{
    struct cat *c = cat_new(NULL);
    const char *names[40];
    char buf[40][32];
    for (int i = 0; i < 40; i++) {
        snprintf(buf[i], sizeof buf[i], i == 33 ? "part.pdf" : "spare part %02d.pdf", i);
        names[i] = buf[i];
    }
    sync(c, "", names, 40, NULL);
    uint32_t s[3];
    cat_rdlock(c);
    ASSERT_EQ(cat_search(c, "part", true, s, 3), 40);
    ASSERT_STREQ(cat_path(c, s[0]), "part.pdf");
    ASSERT_STREQ(cat_path(c, s[1]), "spare part 00.pdf");
    ASSERT_STREQ(cat_path(c, s[2]), "spare part 01.pdf");
    cat_unlock(c);
    cat_free(c);
}

static void on_folder(void *ud, const char *path, bool added)
{
    int *counts = ud;
    counts[added ? 0 : 1]++;
    (void)path;
}

TEST(sync_reports_added_removed_changed_and_subtrees)
{
    struct cat *c = cat_new(NULL);
    struct cat_delta d = {0};
    const char *top[] = {"A/", "f.pdf"};
    ASSERT_EQ(sync(c, "", top, 2, &d), 0);
    ASSERT_EQ(d.added, 2);
    const char *inner[] = {"B/", "g.pdf", "h.pdf"};
    sync(c, "A", inner, 3, NULL);
    const char *deeper[] = {"i.pdf"};
    sync(c, "A/B", deeper, 1, NULL);
    /* Same listing, one size changed. */
    struct cat_item items[2] = {{"A", CAT_FOLDER, 0, 1000}, {"f.pdf", CAT_FILE, 999, 1000}};
    memset(&d, 0, sizeof d);
    cat_wrlock(c);
    cat_sync_folder(c, "", items, 2, NULL, NULL, &d);
    cat_unlock(c);
    ASSERT_EQ(d.added, 0);
    ASSERT_EQ(d.changed, 1);
    ASSERT_EQ(d.removed, 0);
    /* A goes: its whole subtree with it (A, B, g, h, i). */
    int counts[2] = {0, 0};
    struct cat_item only_f[1] = {{"f.pdf", CAT_FILE, 999, 1000}};
    memset(&d, 0, sizeof d);
    cat_wrlock(c);
    cat_sync_folder(c, "", only_f, 1, on_folder, counts, &d);
    cat_unlock(c);
    ASSERT_EQ(d.removed, 5);
    ASSERT_EQ(counts[1], 2); /* folders A and A/B reported */
    cat_rdlock(c);
    ASSERT_EQ(cat_by_path(c, "A/B/i.pdf"), CAT_NONE);
    struct cat_stats st;
    cat_stats(c, &st);
    ASSERT_EQ(st.entries, 2); /* root and f.pdf */
    cat_unlock(c);
    /* A file turned folder is removed and added. */
    struct cat_item as_dir[1] = {{"f.pdf", CAT_FOLDER, 0, 1000}};
    memset(&d, 0, sizeof d);
    cat_wrlock(c);
    cat_sync_folder(c, "", as_dir, 1, NULL, NULL, &d);
    ASSERT_EQ(cat_kind_of(c, cat_by_path(c, "f.pdf")), CAT_FOLDER);
    cat_unlock(c);
    ASSERT_EQ(d.removed, 1);
    ASSERT_EQ(d.added, 1);
    ASSERT_EQ(sync(c, "nope", top, 2, NULL), -1);
    cat_free(c);
}

TEST(max_entries_leaves_the_rest_out)
{
    struct cat_opts o = {.max_entries = 5};
    struct cat *c = cat_new(&o);
    struct cat_delta d = {0};
    const char *names[] = {"a", "b", "c", "d", "e", "f", "g"};
    sync(c, "", names, 7, &d);
    ASSERT_EQ(d.added, 4); /* the root is the fifth */
    ASSERT_EQ(d.dropped, 3);
    struct cat_stats st;
    cat_rdlock(c);
    cat_stats(c, &st);
    cat_unlock(c);
    ASSERT_EQ(st.entries, 5);
    ASSERT_EQ(st.dropped, 3);
    cat_free(c);
}

TEST(remove_and_existence_stamps)
{
    struct cat *c = cat_new(NULL);
    SYNC(c, "", "A/", "x.pdf");
    SYNC(c, "A", "y.pdf");
    cat_wrlock(c);
    uint32_t y = cat_by_path(c, "A/y.pdf"), a = cat_by_path(c, "A");
    cat_set_checked(c, y, 1234);
    ASSERT_EQ(cat_checked(c, y), 1234);
    cat_forget_checks(c, a);
    ASSERT_EQ(cat_checked(c, y), 0);
    ASSERT_TRUE(cat_set_stat(c, y, 5, 6));
    ASSERT_FALSE(cat_set_stat(c, y, 5, 6));
    struct cat_delta d = {0};
    cat_remove(c, a, NULL, NULL, &d);
    ASSERT_EQ(d.removed, 2);
    ASSERT_EQ(cat_by_path(c, "A/y.pdf"), CAT_NONE);
    uint32_t out[4];
    ASSERT_EQ(cat_list(c, cat_root(c), 0, 4, out), 1);
    cat_remove(c, cat_root(c), NULL, NULL, &d); /* never the root */
    ASSERT_TRUE(cat_by_path(c, "") != CAT_NONE);
    cat_unlock(c);
    cat_free(c);
}

TEST(memory_per_entry_is_small)
{
    struct cat *c = cat_new(NULL);
    static char buf[10000][24];
    struct cat_item *items = malloc(10000 * sizeof *items);
    for (int i = 0; i < 10000; i++) {
        snprintf(buf[i], sizeof buf[i], "drawing-%05d.pdf", i);
        items[i] = (struct cat_item){buf[i], CAT_FILE, 1000, 1};
    }
    struct cat_delta d = {0};
    cat_wrlock(c);
    cat_sync_folder(c, "", items, 10000, NULL, NULL, &d);
    struct cat_stats st;
    cat_stats(c, &st);
    cat_unlock(c);
    free(items);
    ASSERT_EQ(st.files, 10000);
    printf("    index bytes per entry: %zu\n", st.bytes / st.entries);
    ASSERT_TRUE(st.bytes / st.entries < 256);
    cat_free(c);
}
