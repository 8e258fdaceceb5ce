/* MurmurHash3 and bucketing, against spec/vectors.json bit for bit. */
#include "dc_test.h"

#include "dc_config.h"
#include "dc_engine.h"
#include "dc_hash.h"

#include <string.h>

START_TEST(murmur_vectors)
{
    json_t *v = dc_test_vectors(), *list = json_object_get(v, "murmur3_x86_32_seed0"), *item;
    size_t i;

    ck_assert_uint_gt(json_array_size(list), 10);
    json_array_foreach(list, i, item)
    {
        const char *in = json_string_value(json_object_get(item, "input"));
        size_t len = json_string_length(json_object_get(item, "input"));
        json_int_t want = json_integer_value(json_object_get(item, "utf8_hash"));
        json_int_t mod = json_integer_value(json_object_get(item, "mod100"));

        ck_assert_msg(dc_murmur3_32(in, len, 0) == (uint32_t)want, "hash of \"%s\"", in);
        ck_assert_uint_eq(dc_bucket(in, len), (unsigned)mod);
    }
    json_decref(v);
}
END_TEST

START_TEST(murmur_standard)
{
    ck_assert_uint_eq(dc_murmur3_32("", 0, 0), 0);
    ck_assert_uint_eq(dc_murmur3_32("hello", 5, 0), 0x248bfa47u);
    ck_assert_uint_eq(dc_murmur3_32("The quick brown fox jumps over the lazy dog", 43, 0),
                      0x2e4ff723u);
}
END_TEST

/* A key premixed once gives, after prefixes of every length (every alignment,
 * in any order), what hashing the concatenation gives; so do keys too long to premix. */
START_TEST(bucket_after_key)
{
    char buf[2 * DC_HASH_KEY_MAX + 40];

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)('a' + (i * 7 + i / 13) % 26);
    for (size_t key_len = 0; key_len <= DC_HASH_KEY_MAX + 9; key_len++) {
        dc_hash_key_t key;
        const char *k = buf + 40;

        dc_hash_key_init(&key, k, key_len);
        for (size_t round = 0; round < 2; round++)
            for (size_t n = 0; n < 24; n++) {
                size_t plen = round ? 23 - n : n; /* alignments in both orders */
                dc_hash_state_t prefix = {0};

                dc_hash_feed(&prefix, buf, plen);
                ck_assert_uint_eq(dc_bucket_after_key(&prefix, &key),
                                  dc_bucket2(buf, plen, k, key_len));
            }
    }
}
END_TEST

/* dc_bucket2 hashes a + b as one stream: every split point must agree. */
START_TEST(bucket2_every_split)
{
    const char *s = "vg_abvisitor-123456789";
    size_t len = strlen(s);

    for (size_t cut = 0; cut <= len; cut++) {
        dc_hash_state_t prefix = {0};

        ck_assert_uint_eq(dc_bucket2(s, cut, s + cut, len - cut), dc_bucket(s, len));
        /* a snapshot's saved state after the group id, then the visitor's part */
        dc_hash_feed(&prefix, s, cut);
        ck_assert_uint_eq(dc_bucket_after(&prefix, s + cut, len - cut), dc_bucket(s, len));
        /* fed in three pieces */
        if (cut > 0) {
            dc_hash_state_t st = {0};

            dc_hash_feed(&st, s, cut - 1);
            dc_hash_feed(&st, s + cut - 1, 1);
            dc_hash_feed(&st, s + cut, len - cut);
            ck_assert_uint_eq(dc_hash_bucket(&st), dc_bucket(s, len));
        }
    }
}
END_TEST

START_TEST(sample_vg_ab_buckets)
{
    static const struct {
        const char *visitor;
        unsigned bucket;
    } want[] = {{"visitor-1", 7}, {"visitor-2", 17}, {"visitor-3", 89}, {"visitor-4", 21},
                {"visitor-5", 50}, {"visitor-6", 12}, {"bob", 70},      {"v1", 87},
                {"alice", 63},    {"v2", 25}};

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_uint_eq(dc_bucket2("vg_ab", 5, want[i].visitor, strlen(want[i].visitor)),
                          want[i].bucket);
}
END_TEST

START_TEST(bucket_range_vectors)
{
    json_t *v = dc_test_vectors(), *list = json_object_get(v, "bucket_ranges"), *item;
    size_t i;

    json_array_foreach(list, i, item)
    {
        const char *vid = json_string_value(json_object_get(item, "visitor_id"));
        json_t *ranges = json_object_get(item, "ranges"), *r;
        dc_bucket_range_t br[8];
        dc_campaign_t c;
        size_t j;

        memset(&c, 0, sizeof(c));
        json_array_foreach(ranges, j, r)
        {
            br[j].from = json_number_value(json_array_get(r, 0));
            br[j].to = json_number_value(json_array_get(r, 1));
        }
        c.ranges = br;
        c.n_ranges = json_array_size(ranges);
        ck_assert_int_eq(dc_in_bucket_ranges(&c, dc_bucket(vid, strlen(vid))),
                         json_is_true(json_object_get(item, "in_bucket")));
    }
    json_decref(v);
}
END_TEST

/* Allocation vectors: bucket of vg + (visitor or base64 decision group), cumulative walk. */
START_TEST(allocation_vectors)
{
    json_t *v = dc_test_vectors(), *list = json_object_get(v, "allocation"), *item;
    apr_pool_t *p;
    size_t i;

    apr_pool_create(&p, NULL);
    ck_assert_uint_gt(json_array_size(list), 5);
    json_array_foreach(list, i, item)
    {
        const char *vg = json_string_value(json_object_get(item, "vg_id"));
        const char *vid = json_string_value(json_object_get(item, "visitor_id"));
        json_t *dg = json_object_get(item, "decision_group");
        json_t *vars = json_object_get(item, "variations"), *pair;
        json_t *expect = json_object_get(item, "expect");
        dc_variation_t variations[16];
        dc_variation_group_t group;
        const dc_variation_t *got;
        const char *key = vid;
        size_t key_len = strlen(vid), j;
        unsigned z;

        if (json_is_string(dg))
            key = dc_base64(p, json_string_value(dg), json_string_length(dg), &key_len);
        memset(&group, 0, sizeof(group));
        memset(variations, 0, sizeof(variations));
        json_array_foreach(vars, j, pair)
        {
            variations[j].id = json_string_value(json_array_get(pair, 0));
            variations[j].id_len = strlen(variations[j].id);
            variations[j].allocation = json_number_value(json_array_get(pair, 1));
        }
        group.id = vg;
        group.id_len = strlen(vg);
        group.variations = variations;
        group.n_variations = json_array_size(vars);
        z = dc_bucket2(vg, strlen(vg), key, key_len);
        if (json_is_integer(json_object_get(item, "bucket")))
            ck_assert_uint_eq(z, (unsigned)json_integer_value(json_object_get(item, "bucket")));
        got = dc_allocate(&group, z);
        if (json_is_null(expect))
            ck_assert_msg(got == NULL, "vector %zu: expected untracked", i);
        else
            ck_assert_msg(got && strcmp(got->id, json_string_value(expect)) == 0,
                          "vector %zu: expected %s", i, json_string_value(expect));
    }
    apr_pool_destroy(p);
    json_decref(v);
}
END_TEST

START_TEST(allocation_edges)
{
    dc_variation_t v[3];
    dc_variation_group_t g;

    memset(&g, 0, sizeof(g));
    memset(v, 0, sizeof(v));
    g.id = "g";
    g.id_len = 1;
    g.variations = v;
    v[0].id = "a";
    v[1].id = "b";
    v[2].id = "c";

    /* one variation at 100 %: always it */
    g.n_variations = 1;
    v[0].allocation = 100;
    for (unsigned z = 0; z < 100; z++)
        ck_assert_ptr_eq(dc_allocate(&g, z), &v[0]);
    /* 0 % everywhere: everyone untracked */
    v[0].allocation = 0;
    for (unsigned z = 0; z < 100; z++)
        ck_assert_ptr_null(dc_allocate(&g, z));
    /* 0 % then 100 %: the 0 % variation never wins */
    g.n_variations = 2;
    v[1].allocation = 100;
    for (unsigned z = 0; z < 100; z++)
        ck_assert_ptr_eq(dc_allocate(&g, z), &v[1]);
    /* sums below 100: buckets past the sum are untracked, the boundary is exclusive */
    v[0].allocation = 20;
    v[1].allocation = 20;
    ck_assert_ptr_eq(dc_allocate(&g, 19), &v[0]);
    ck_assert_ptr_eq(dc_allocate(&g, 20), &v[1]);
    ck_assert_ptr_eq(dc_allocate(&g, 39), &v[1]);
    ck_assert_ptr_null(dc_allocate(&g, 40));
    ck_assert_ptr_null(dc_allocate(&g, 99));
    /* 50/50: bucket 50 goes to the second (visitor-5 of the spec) */
    v[0].allocation = 50;
    v[1].allocation = 50;
    ck_assert_ptr_eq(dc_allocate(&g, 49), &v[0]);
    ck_assert_ptr_eq(dc_allocate(&g, 50), &v[1]);
    /* three variations summing to 100 */
    g.n_variations = 3;
    v[0].allocation = 33;
    v[1].allocation = 33;
    v[2].allocation = 34;
    ck_assert_ptr_eq(dc_allocate(&g, 65), &v[1]);
    ck_assert_ptr_eq(dc_allocate(&g, 66), &v[2]);
    ck_assert_ptr_eq(dc_allocate(&g, 99), &v[2]);
}
END_TEST

static Suite *hash_suite(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, murmur_vectors);
    tcase_add_test(tc, murmur_standard);
    tcase_add_test(tc, bucket2_every_split);
    tcase_add_test(tc, bucket_after_key);
    tcase_add_test(tc, sample_vg_ab_buckets);
    tcase_add_test(tc, bucket_range_vectors);
    tcase_add_test(tc, allocation_vectors);
    tcase_add_test(tc, allocation_edges);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(hash_suite)
