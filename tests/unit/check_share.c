/* Snapshots parsed once into shared memory (dc_share.h): what a slot holds, the
 * publication a reference is taken on, slots given back, the cases that fall back to
 * a private parse, and a child process serving what its parent published. */
#include "dc_test.h"

#include "dc_config.h"
#include "dc_share.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static apr_pool_t *pool;
static char *sample;
static size_t sample_len;

static void setup(void)
{
    FILE *f = fopen(DC_SAMPLE_BUCKETING, "rb");

    apr_pool_create(&pool, NULL);
    ck_assert_ptr_nonnull(f);
    sample = apr_palloc(pool, 1 << 20);
    sample_len = fread(sample, 1, 1 << 20, f);
    fclose(f);
    ck_assert_uint_gt(sample_len, 100);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static dc_share_t *share(size_t slot_bytes)
{
    char err[256];
    dc_share_t *sh = dc_share_create(pool, slot_bytes, err, sizeof(err));

    ck_assert_msg(sh != NULL, "%s", err);
    return sh;
}

static int inside(const dc_config_t *cfg, const void *p)
{
    return (const char *)p >= (const char *)cfg &&
           (const char *)p < (const char *)cfg + cfg->block_used;
}

START_TEST(a_slot_holds_the_whole_snapshot)
{
    dc_share_t *sh = share(4u << 20);
    dc_config_t *shared, *own;
    dc_config_error_t err;

    ck_assert_int_eq(dc_share_parse(sh, 1, sample, sample_len, &shared, &err), 0);
    ck_assert_int_eq(dc_config_parse(sample, sample_len, &own, &err), 0);
    ck_assert_ptr_null(shared->pool);
    ck_assert_uint_eq(shared->refs, 1);
    ck_assert_uint_gt(shared->block_used, sizeof(*shared));
    ck_assert_str_eq(shared->digest, own->digest);
    ck_assert_uint_eq(shared->n_campaigns, own->n_campaigns);
    ck_assert(inside(shared, shared->campaigns) && inside(shared, shared->index));
    for (size_t c = 0; c < own->n_campaigns; c++) {
        const dc_campaign_t *a = &shared->campaigns[c], *b = &own->campaigns[c];

        ck_assert(inside(shared, a->id));
        ck_assert_str_eq(a->id, b->id);
        ck_assert_uint_eq(a->n_groups, b->n_groups);
        for (size_t g = 0; g < a->n_groups; g++) {
            const dc_variation_group_t *ga = &a->groups[g], *gb = &b->groups[g];

            for (size_t t = 0; t < ga->n_groups; t++)
                for (size_t i = 0; i < ga->groups[t].n_targetings; i++) {
                    const dc_targeting_t *ta = &ga->groups[t].targetings[i];

                    ck_assert(inside(shared, ta->key));
                    ck_assert(ta->value.kind != DC_KIND_STRING || inside(shared, ta->value.folded));
                }
            ck_assert_uint_eq(ga->n_variations, gb->n_variations);
            for (size_t v = 0; v < ga->n_variations; v++)
                for (int x = 0; x < 2; x++) {
                    ck_assert(inside(shared, ga->variations[v].campaign_json[x]));
                    ck_assert_str_eq(ga->variations[v].campaign_json[x],
                                     gb->variations[v].campaign_json[x]);
                }
        }
    }
    dc_config_unref(own);
    dc_config_unref(shared);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 0);
}
END_TEST

START_TEST(a_reference_is_taken_on_the_publication_asked_for)
{
    dc_share_t *sh = share(4u << 20);
    dc_config_t *first, *second, *got;
    dc_config_error_t err;

    ck_assert_ptr_null(dc_share_acquire(sh, 1)); /* nothing published yet */
    ck_assert_int_eq(dc_share_parse(sh, 1, sample, sample_len, &first, &err), 0);
    dc_share_publish(sh, first);
    ck_assert_uint_eq(first->refs, 2); /* the caller's and the share's */
    got = dc_share_acquire(sh, 1);
    ck_assert_ptr_eq(got, first);
    ck_assert_uint_eq(first->refs, 3);
    ck_assert_ptr_null(dc_share_acquire(sh, 2)); /* not published: the caller parses */
    ck_assert_uint_eq(first->refs, 3);
    dc_config_unref(got);

    ck_assert_int_eq(dc_share_parse(sh, 2, sample, sample_len, &second, &err), 0);
    dc_share_publish(sh, second);
    ck_assert_uint_eq(first->refs, 1); /* the share let go of it; its holder has not */
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 2);
    ck_assert_ptr_null(dc_share_acquire(sh, 1));
    dc_config_unref(first);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 1); /* the last reference gave it back */
    got = dc_share_acquire(sh, 2);
    ck_assert_ptr_eq(got, second);
    dc_config_unref(got);
    dc_config_unref(second);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 1); /* the share's */
    dc_share_publish(sh, NULL);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 0);
    ck_assert_ptr_null(dc_share_acquire(sh, 2));
}
END_TEST

START_TEST(a_private_snapshot_is_not_published)
{
    dc_share_t *sh = share(4u << 20);
    dc_config_t *shared, *own;
    dc_config_error_t err;

    ck_assert_int_eq(dc_share_parse(sh, 1, sample, sample_len, &shared, &err), 0);
    dc_share_publish(sh, shared);
    ck_assert_int_eq(dc_config_parse(sample, sample_len, &own, &err), 0);
    dc_share_publish(sh, own); /* withdraws the shared one */
    ck_assert_uint_eq(own->refs, 1);
    ck_assert_ptr_null(dc_share_acquire(sh, 1));
    dc_config_unref(own);
    dc_config_unref(shared);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 0);
}
END_TEST

START_TEST(what_cannot_be_shared_is_said)
{
    dc_share_t *sh = share(4u << 20), *tiny = share(4096);
    dc_config_t *held[DC_SHARE_SLOTS], *cfg;
    dc_config_error_t err;

    for (unsigned i = 0; i < DC_SHARE_SLOTS; i++)
        ck_assert_int_eq(dc_share_parse(sh, i + 1, sample, sample_len, &held[i], &err), 0);
    ck_assert_int_eq(dc_share_parse(sh, 9, sample, sample_len, &cfg, &err), 1);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err.text, "all 4 shared slots") != NULL, "%s", err.text);
    dc_config_unref(held[2]);
    ck_assert_int_eq(dc_share_parse(sh, 9, sample, sample_len, &held[2], &err), 0);
    for (unsigned i = 0; i < DC_SHARE_SLOTS; i++)
        dc_config_unref(held[i]);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 0);

    /* the snapshot does not fit: nothing points outside the slot, it is given back */
    ck_assert_int_eq(dc_share_parse(tiny, 1, sample, sample_len, &cfg, &err), 1);
    ck_assert_msg(strstr(err.text, "needs more than 4096 bytes") != NULL, "%s", err.text);
    ck_assert_uint_eq(dc_share_slots_in_use(tiny), 0);
    /* an invalid file is an error, whatever the room */
    ck_assert_int_eq(dc_share_parse(sh, 1, "{\"campaigns\":[", 14, &cfg, &err), -1);
    ck_assert_msg(strstr(err.text, "invalid JSON") != NULL, "%s", err.text);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 0);
}
END_TEST

START_TEST(a_child_serves_what_its_parent_published_after_the_fork)
{
    dc_share_t *sh = share(4u << 20);
    dc_config_t *cfg;
    dc_config_error_t err;
    int go[2], status;
    pid_t pid;
    char digest[17];

    ck_assert_int_eq(pipe(go), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dc_config_t *got;
        int ok;

        close(go[1]);
        ok = read(go[0], digest, sizeof(digest)) == (ssize_t)sizeof(digest);
        got = ok ? dc_share_acquire(sh, 7) : NULL;
        ok = got && strcmp(got->digest, digest) == 0 && got->n_campaigns > 0 && got->refs == 3;
        if (got)
            dc_config_unref(got);
        _exit(ok ? 0 : 1);
    }
    close(go[0]);
    ck_assert_int_eq(dc_share_parse(sh, 7, sample, sample_len, &cfg, &err), 0);
    dc_share_publish(sh, cfg);
    memcpy(digest, cfg->digest, sizeof(digest));
    ck_assert_int_eq(write(go[1], digest, sizeof(digest)), (ssize_t)sizeof(digest));
    close(go[1]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(cfg->refs, 2); /* the child gave its reference back */
    dc_share_publish(sh, NULL);
    dc_config_unref(cfg);
    ck_assert_uint_eq(dc_share_slots_in_use(sh), 0);
}
END_TEST

static Suite *share_suite(void)
{
    Suite *s = suite_create("share");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_slot_holds_the_whole_snapshot);
    tcase_add_test(tc, a_reference_is_taken_on_the_publication_asked_for);
    tcase_add_test(tc, a_private_snapshot_is_not_published);
    tcase_add_test(tc, what_cannot_be_shared_is_said);
    tcase_add_test(tc, a_child_serves_what_its_parent_published_after_the_fork);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(share_suite)
