/*
 * dc_shipper's library API against the real stand-in collector
 * (tests/standin.py on a free loopback port, steered over its /_standin/
 * control paths, stopped by PID): run_once results and figures, backoff
 * that sends nothing before its time, the failing state, the deadline,
 * dead letters, the thread (ticks and rotates its process's spool, flushes
 * at stop), the file sink's rotation, and settings refused at creation.
 */
#include "dc_shipper.h"
#include "dc_test.h"

#include <apr_strings.h>
#include <curl/curl.h>
#include <dirent.h>
#include <string.h>

static dc_test_standin_t standin;
static char collect_url[80];
static char dir[64];
static apr_pool_t *pool;

/* One control request; the JSON answer (NULL for 204). */
static json_t *control(const char *method, const char *path, const char *body)
{
    char *out = dc_test_standin_control(&standin, method, path, body, body ? strlen(body) : 0);
    json_t *doc = NULL;

    if (out) {
        doc = json_loads(out, 0, NULL);
        free(out);
    }
    return doc;
}

static size_t json_count(const char *path)
{
    json_t *doc = control("GET", path, NULL);
    size_t n = json_array_size(doc);

    json_decref(doc);
    return n;
}

static size_t hits_received(void)
{
    return json_count("/_standin/hits");
}

static size_t collector_requests(void)
{
    return json_count("/_standin/collector-requests");
}

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    strcpy(dir, "/tmp/dc-check-shipper-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    dc_test_standin_start(&standin);
    snprintf(collect_url, sizeof(collect_url), "%s/collect", standin.base_url);
}

static void teardown(void)
{
    char cmd[128];

    dc_test_standin_stop(&standin);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    apr_pool_destroy(pool);
}

static dc_spool_t *spool_with(int records, int hits_each, const char *spec)
{
    dc_spool_options_t o;
    char err[256] = "";
    dc_spool_t *s;

    dc_spool_options_default(&o);
    o.dir = dir;
    ck_assert_int_eq(dc_spool_options_parse(&o, spec, err, sizeof(err)), 0);
    s = dc_spool_open(pool, &o, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    for (int r = 0; r < records; r++) {
        dc_hit_t hits[16];

        for (int i = 0; i < hits_each; i++) {
            hits[i].json = apr_psprintf(pool, "{\"t\":\"CAMPAIGN\",\"vid\":\"r%d-%d\"}", r, i);
            hits[i].json_len = strlen(hits[i].json);
            hits[i].received_ms = apr_time_as_msec(apr_time_now());
            hits[i].qt_base = 0;
        }
        ck_assert_int_eq(dc_spool_append(s, pool, hits, (size_t)hits_each), 0);
    }
    return s;
}

static dc_shipper_t *shipper(const char *collector, size_t batch_hits)
{
    dc_shipper_options_t o;
    char err[256] = "";
    dc_shipper_t *sh;

    dc_shipper_options_default(&o);
    o.spool_dir = dir;
    o.collector = collector;
    o.batch_max_hits = batch_hits;
    o.backoff_min = apr_time_from_msec(200);
    o.backoff_max = apr_time_from_msec(400);
    o.interval = apr_time_from_msec(50);
    o.timeout_ms = 3000;
    sh = dc_shipper_create(pool, &o, err, sizeof(err));
    ck_assert_msg(sh != NULL, "%s", err);
    return sh;
}

static int ready_segments(void)
{
    const char **names;
    size_t n;

    ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);
    return (int)n;
}

static apr_time_t far(void)
{
    return apr_time_now() + apr_time_from_sec(20);
}

START_TEST(delivers_and_counts)
{
    dc_spool_t *s = spool_with(3, 4, NULL);
    dc_shipper_t *sh;
    dc_shipper_stats_t st;
    apr_time_t before = apr_time_now();

    dc_spool_close(s);
    /* the progress of a segment that drop-oldest deleted: cleaned up */
    fclose(fopen(apr_pstrcat(pool, dir, "/seg-0000000000001-1-0-deadbeef.progress", NULL), "w"));
    sh = shipper(collect_url, 5);
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_DONE);
    ck_assert_int_ne(access(apr_pstrcat(pool, dir, "/seg-0000000000001-1-0-deadbeef.progress",
                                        NULL),
                            F_OK),
                     0);
    dc_shipper_stats(sh, &st);
    ck_assert_int_eq(st.state, DC_SHIPPER_OK);
    ck_assert_uint_eq(st.batches_sent, 3); /* 12 hits in fives */
    ck_assert_uint_eq(st.hits_sent, 12);
    ck_assert_uint_eq(st.segments_done, 1);
    ck_assert_uint_eq(st.retries, 0);
    ck_assert_int_ge(st.last_success, before);
    ck_assert_uint_eq(hits_received(), 12);
    ck_assert_int_eq(ready_segments(), 0);
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_IDLE);
    dc_shipper_destroy(sh);
}
END_TEST

START_TEST(backoff_sends_nothing_before_its_time)
{
    dc_spool_t *s = spool_with(2, 2, NULL);
    dc_shipper_t *sh;
    dc_shipper_stats_t st;

    dc_spool_close(s);
    control("POST", "/_standin/collector", "{\"script\":[503]}");
    sh = shipper(collect_url, 50);
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_BACKOFF);
    dc_shipper_stats(sh, &st);
    ck_assert_int_eq(st.state, DC_SHIPPER_RETRYING);
    ck_assert_uint_eq(st.retries, 1);
    ck_assert_int_gt(st.next_attempt, apr_time_now());
    ck_assert_int_le(st.next_attempt, apr_time_now() + apr_time_from_msec(400));
    ck_assert_ptr_nonnull(strstr(st.last_error, "HTTP 503"));
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_BACKOFF);
    ck_assert_uint_eq(collector_requests(), 1);
    ck_assert_int_eq(ready_segments(), 1);
    apr_sleep(st.next_attempt - apr_time_now() + apr_time_from_msec(20));
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_DONE);
    dc_shipper_stats(sh, &st);
    ck_assert_int_eq(st.state, DC_SHIPPER_OK);
    ck_assert_uint_eq(hits_received(), 4);
    ck_assert_int_eq(ready_segments(), 0);
    dc_shipper_destroy(sh);
}
END_TEST

START_TEST(failing_after_five_in_a_row_then_ok)
{
    dc_spool_t *s = spool_with(1, 1, NULL);
    dc_shipper_t *sh;
    dc_shipper_stats_t st;

    dc_spool_close(s);
    control("POST", "/_standin/collector", "{\"script\":[500,502,429,408,500,500]}");
    sh = shipper(collect_url, 50);
    for (int i = 1; i <= 5; i++) {
        ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_BACKOFF);
        dc_shipper_stats(sh, &st);
        ck_assert_int_eq(st.state, i < 5 ? DC_SHIPPER_RETRYING : DC_SHIPPER_FAILING);
        apr_sleep(st.next_attempt - apr_time_now() + apr_time_from_msec(10));
    }
    ck_assert_int_eq(dc_shipper_flush(sh, far()), 0);
    dc_shipper_stats(sh, &st);
    ck_assert_int_eq(st.state, DC_SHIPPER_OK);
    ck_assert_uint_eq(st.retries, 6);
    ck_assert_uint_eq(hits_received(), 1);
    dc_shipper_destroy(sh);
}
END_TEST

START_TEST(deadline_stops_between_batches)
{
    dc_spool_t *s = spool_with(4, 1, NULL);
    dc_shipper_t *sh;

    dc_spool_close(s);
    sh = shipper(collect_url, 1);
    ck_assert_int_eq(dc_shipper_run_once(sh, apr_time_now()), DC_SHIP_MORE);
    ck_assert_uint_eq(collector_requests(), 0);
    ck_assert_int_eq(dc_shipper_flush(sh, apr_time_now()), -1);
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_DONE);
    ck_assert_uint_eq(collector_requests(), 4);
    dc_shipper_destroy(sh);
}
END_TEST

START_TEST(rejected_batch_is_a_dead_letter)
{
    dc_spool_t *s = spool_with(2, 1, NULL);
    dc_shipper_t *sh;
    dc_shipper_stats_t st;
    FILE *f;
    char line[4096];
    int lines = 0;
    DIR *d;
    struct dirent *e;
    char *path = NULL;

    dc_spool_close(s);
    control("POST", "/_standin/collector", "{\"script\":[404]}");
    sh = shipper(collect_url, 1);
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_DONE);
    dc_shipper_stats(sh, &st);
    ck_assert_uint_eq(st.dead_letters, 1);
    ck_assert_uint_eq(st.dead_letter_hits, 1);
    ck_assert_uint_eq(st.hits_sent, 1);
    ck_assert_uint_eq(st.retries, 0);
    ck_assert_uint_eq(collector_requests(), 2);
    d = opendir(apr_pstrcat(pool, dir, "/dead-letter", NULL));
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".jsonl"))
            path = apr_pstrcat(pool, dir, "/dead-letter/", e->d_name, NULL);
    closedir(d);
    ck_assert_ptr_nonnull(path);
    f = fopen(path, "r");
    while (fgets(line, sizeof(line), f)) {
        json_t *doc = json_loads(line, 0, NULL);

        ck_assert_ptr_nonnull(doc);
        ck_assert_str_eq(json_string_value(json_object_get(doc, "t")), "BATCH");
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_array_get(json_object_get(doc, "h"), 0), "vid")),
                         "r0-0");
        json_decref(doc);
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, 1);
    dc_shipper_destroy(sh);
}
END_TEST

START_TEST(thread_ticks_its_spool_and_flushes_at_stop)
{
    dc_spool_t *s = spool_with(2, 3, "segment-age=150ms");
    dc_shipper_t *sh = shipper(collect_url, 50);
    int waited;

    /* Nobody closes the segment by hand: the spool's tick does once it is
     * old (on a loaded machine that may already have happened here). */
    ck_assert_int_eq(dc_shipper_start(sh, s), 0);
    for (waited = 0; waited < 5000 && hits_received() < 6; waited += 50)
        apr_sleep(apr_time_from_msec(50));
    ck_assert_uint_eq(hits_received(), 6);

    /* Appended just before stop: the stop rotates and flushes. */
    {
        const char *json = "{\"t\":\"CAMPAIGN\",\"vid\":\"last\"}";
        dc_hit_t h = {json, strlen(json), 0, 0};

        ck_assert_int_eq(dc_spool_append(s, pool, &h, 1), 0);
    }
    dc_shipper_stop(sh, apr_time_from_sec(5));
    ck_assert_uint_eq(hits_received(), 7);
    ck_assert_int_eq(ready_segments(), 0);
    dc_spool_close(s);
    dc_shipper_destroy(sh);
}
END_TEST

START_TEST(file_sink_rotates_by_size)
{
    dc_spool_t *s = spool_with(6, 1, NULL);
    dc_shipper_options_t o;
    dc_shipper_t *sh;
    char err[256] = "";
    const char *out = apr_pstrcat(pool, dir, "/out", NULL);
    DIR *d;
    struct dirent *e;
    int files = 0;

    dc_spool_close(s);
    dc_shipper_options_default(&o);
    o.spool_dir = dir;
    o.collector = apr_pstrcat(pool, "file:", out, NULL);
    o.batch_max_hits = 1;
    o.file_rotate_bytes = 100; /* a batch line is ~150 bytes: one per file */
    sh = dc_shipper_create(pool, &o, err, sizeof(err));
    ck_assert_msg(sh != NULL, "%s", err);
    ck_assert_int_eq(dc_shipper_run_once(sh, far()), DC_SHIP_DONE);
    d = opendir(out);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        files += strncmp(e->d_name, "events-", 7) == 0;
    closedir(d);
    ck_assert_int_eq(files, 6);
    ck_assert_uint_eq(collector_requests(), 0);
    dc_shipper_destroy(sh);
}
END_TEST

START_TEST(bad_settings_are_refused)
{
    dc_shipper_options_t o;
    char err[256];

    dc_shipper_options_default(&o);
    o.spool_dir = dir;
    o.collector = "gopher://example.com";
    ck_assert_ptr_null(dc_shipper_create(pool, &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "gopher://example.com"));
    o.collector = collect_url;
    o.batch_max_hits = 501;
    ck_assert_ptr_null(dc_shipper_create(pool, &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "501"));
    o.batch_max_hits = 0;
    o.spool_dir = NULL;
    ck_assert_ptr_null(dc_shipper_create(pool, &o, err, sizeof(err)));
}
END_TEST

static Suite *shipper_suite(void)
{
    Suite *s = suite_create("shipper");
    TCase *tc = tcase_create("shipper");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, delivers_and_counts);
    tcase_add_test(tc, backoff_sends_nothing_before_its_time);
    tcase_add_test(tc, failing_after_five_in_a_row_then_ok);
    tcase_add_test(tc, deadline_stops_between_batches);
    tcase_add_test(tc, rejected_batch_is_a_dead_letter);
    tcase_add_test(tc, thread_ticks_its_spool_and_flushes_at_stop);
    tcase_add_test(tc, file_sink_rotates_by_size);
    tcase_add_test(tc, bad_settings_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(shipper_suite)
