/*
 * dc_spool on a real directory: the record framing read back, torn and
 * corrupt records skipped, rotation by size and age, the disk bound (refuse
 * and drop-oldest), adoption of a killed process's open segment, and several
 * forked processes with several threads each appending at once (every record
 * intact, none lost, every id unique).
 */
#include "dc_shipper.h"
#include "dc_proc.h"
#include "dc_spool.h"
#include "dc_test.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static apr_pool_t *pool;
static char dir[64];

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    strcpy(dir, "/tmp/dc-check-spool-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128], target[512];
    DIR *d = opendir(dir);
    struct dirent *e;

    /* the rings of spools a test left open (or a child killed) */
    while (d && (e = readdir(d)) != NULL) {
        ssize_t n;

        if (strncmp(e->d_name, "ring-", 5) != 0)
            continue;
        n = readlink(apr_pstrcat(pool, dir, "/", e->d_name, NULL), target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            unlink(target);
        }
    }
    if (d)
        closedir(d);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    apr_pool_destroy(pool);
}

static dc_spool_t *open_spool(const char *spec)
{
    dc_spool_options_t o;
    char err[256] = "";
    dc_spool_t *s;

    dc_spool_options_default(&o);
    o.dir = dir;
    ck_assert_msg(dc_spool_options_parse(&o, spec, err, sizeof(err)) == 0, "%s", err);
    s = dc_spool_open(pool, &o, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

static dc_hit_t make_hit(apr_pool_t *p, const char *key, int64_t received, int64_t qt_base)
{
    dc_hit_t h;

    h.json = apr_psprintf(p, "{\"t\":\"CAMPAIGN\",\"k\":\"%s\"}", key);
    h.json_len = strlen(h.json);
    h.received_ms = received;
    h.qt_base = qt_base;
    return h;
}

static int append_keys(dc_spool_t *s, const char *prefix, int n_hits)
{
    dc_hit_t hits[8];
    apr_pool_t *p;
    int rc;

    apr_pool_create(&p, pool);
    for (int i = 0; i < n_hits; i++)
        hits[i] = make_hit(p, apr_psprintf(p, "%s/%d", prefix, i), 1000 + i, i * 10);
    rc = dc_spool_append(s, p, hits, (size_t)n_hits);
    apr_pool_destroy(p);
    return rc;
}

/* Everything the ready segments hold: key -> hit count, ids unique. */
typedef struct {
    apr_hash_t *keys;
    apr_hash_t *ids;
    size_t records, hits, duplicate_ids;
    apr_pool_t *p;
} readback_t;

static int on_record(void *baton, apr_off_t offset, apr_off_t end, const dc_spool_hit_t *hits,
                     size_t n)
{
    readback_t *r = baton;

    r->records++;
    for (size_t i = 0; i < n; i++) {
        const char *id = apr_pstrmemdup(r->p, hits[i].id, hits[i].id_len);
        const char *json = apr_pstrmemdup(r->p, hits[i].json, hits[i].json_len);
        const char *k = strstr(json, "\"k\":\"");
        int *count;

        ck_assert_ptr_nonnull(k);
        k = apr_pstrndup(r->p, k + 5, strcspn(k + 5, "\""));
        if (apr_hash_get(r->ids, id, APR_HASH_KEY_STRING))
            r->duplicate_ids++;
        apr_hash_set(r->ids, id, APR_HASH_KEY_STRING, id);
        count = apr_hash_get(r->keys, k, APR_HASH_KEY_STRING);
        if (!count) {
            count = apr_pcalloc(r->p, sizeof(*count));
            apr_hash_set(r->keys, k, APR_HASH_KEY_STRING, count);
        }
        (*count)++;
        r->hits++;
    }
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = apr_palloc(pool, (size_t)n + 1);
    ck_assert_int_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return data;
}

static size_t read_back(readback_t *r, size_t *skipped_total)
{
    const char **names;
    size_t n, skipped;

    memset(r, 0, sizeof(*r));
    r->p = pool;
    r->keys = apr_hash_make(pool);
    r->ids = apr_hash_make(pool);
    if (skipped_total)
        *skipped_total = 0;
    ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *data = slurp(apr_pstrcat(pool, dir, "/", names[i], NULL), &len);

        dc_spool_parse(data, len, names[i], pool, on_record, r, &skipped);
        if (skipped_total)
            *skipped_total += skipped;
    }
    return n;
}

static int count_suffix(const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), m = strlen(suffix);

        if (l >= m && strcmp(e->d_name + l - m, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static apr_off_t dir_bytes(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    apr_off_t total = 0;

    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "seg-", 4) == 0 &&
            stat(apr_pstrcat(pool, dir, "/", e->d_name, NULL), &st) == 0)
            total += st.st_size;
    closedir(d);
    return total;
}

START_TEST(crc32_is_ieee)
{
    ck_assert_uint_eq(dc_spool_crc32("123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(dc_spool_crc32("", 0), 0);
    /* DC2 records: CRC-32C (RFC 3720's check value), hardware or table alike */
    ck_assert_uint_eq(dc_spool_crc32c("123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(dc_spool_crc32c("", 0), 0);
    ck_assert_uint_eq(dc_spool_crc32c_portable("123456789", 9), 0xE3069283u);
    for (size_t n = 0; n <= 40; n++) /* every tail length after 8-byte steps */
        ck_assert_uint_eq(dc_spool_crc32c("the quick brown fox jumps over the lazy dog", n),
                          dc_spool_crc32c_portable("the quick brown fox jumps over the lazy dog", n));
}
END_TEST

START_TEST(options_parse)
{
    dc_spool_options_t o;
    char err[256];

    dc_spool_options_default(&o);
    ck_assert_int_eq(o.on_full, DC_SPOOL_FULL_REFUSE);
    ck_assert_int_eq(o.fsync, DC_SPOOL_FSYNC_INTERVAL);
    ck_assert_int_eq(dc_spool_options_parse(&o, "fsync=always,segment-bytes=64k,max-bytes=2m,"
                                                "on-full=drop-oldest,segment-age=250ms",
                                            err, sizeof(err)),
                     0);
    ck_assert_int_eq(o.fsync, DC_SPOOL_FSYNC_ALWAYS);
    ck_assert_int_eq(o.segment_max_bytes, 64 * 1024);
    ck_assert_int_eq(o.max_bytes, 2 * 1024 * 1024);
    ck_assert_int_eq(o.on_full, DC_SPOOL_FULL_DROP_OLDEST);
    ck_assert_int_eq(o.segment_max_age, apr_time_from_msec(250));
    ck_assert_int_eq(dc_spool_options_parse(&o, "fsync=20ms", err, sizeof(err)), 0);
    ck_assert_int_eq(o.fsync_interval, apr_time_from_msec(20));
    ck_assert_int_eq(dc_spool_options_parse(&o, "fsync=sometimes", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "fsync"));
    ck_assert_int_eq(dc_spool_options_parse(&o, "colour=blue", err, sizeof(err)), -1);
    ck_assert_int_eq(dc_spool_options_parse(&o, "max-bytes=-1", err, sizeof(err)), -1);
    ck_assert_int_eq(dc_spool_options_parse(&o, "on-full", err, sizeof(err)), -1);
    ck_assert_int_eq(o.write_pwrite, 0);
    ck_assert_int_eq(dc_spool_options_parse(&o, "write=pwrite", err, sizeof(err)), 0);
    ck_assert_int_eq(o.write_pwrite, 1);
    ck_assert_int_eq(dc_spool_options_parse(&o, "write=map", err, sizeof(err)), 0);
    ck_assert_int_eq(o.write_pwrite, 0);
    ck_assert_int_eq(dc_spool_options_parse(&o, "write=mmap", err, sizeof(err)), -1);
}
END_TEST

/* Loop tests run once with the mapped segment (the default) and once with a
 * pwrite per record (write=pwrite, and where a segment cannot be mapped). */
START_TEST(records_read_back_exactly)
{
    dc_spool_t *s = open_spool(_i ? "fsync=always,write=pwrite" : "fsync=always");
    readback_t r;
    const char **names;
    size_t n, len;
    char *data;
    dc_spool_stats_t st;

    ck_assert_int_eq(append_keys(s, "a", 1), 0);
    ck_assert_int_eq(append_keys(s, "b", 2), 0);
    ck_assert_int_eq(append_keys(s, "c", 3), 0);
    ck_assert_int_eq(dc_spool_append(s, pool, NULL, 0), 0); /* nothing to write */
    ck_assert_int_eq(count_suffix(".open"), 1);
    dc_spool_stats(s, &st);
    ck_assert_uint_eq(st.accepted, 3);
    ck_assert_uint_eq(st.accepted_hits, 6);
    ck_assert_uint_eq(st.depth_records, 3);
    dc_spool_close(s);
    ck_assert_int_eq(count_suffix(".open"), 0);
    apr_sleep(apr_time_from_msec(30));
    dc_spool_stats(s, &st);
    ck_assert_uint_eq(st.segments, 1);
    ck_assert_uint_eq(st.depth_records, 3); /* now from the .ready name */
    ck_assert_int_ge(st.oldest_age, apr_time_from_msec(30));
    ck_assert_int_lt(st.oldest_age, apr_time_from_sec(30));
    ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(names[0], "-n3.ready"));

    ck_assert_uint_eq(read_back(&r, NULL), 1);
    ck_assert_uint_eq(r.records, 3);
    ck_assert_uint_eq(r.hits, 6);
    ck_assert_uint_eq(r.duplicate_ids, 0);
    ck_assert_ptr_nonnull(apr_hash_get(r.keys, "c/2", APR_HASH_KEY_STRING));

    /* The bytes: one framed line per record, hit JSON verbatim. */
    data = slurp(apr_pstrcat(pool, dir, "/", names[0], NULL), &len);
    ck_assert_int_eq(strncmp(data, "DC2 ", 4), 0);
    ck_assert_ptr_nonnull(strstr(data, " 1000 0 26 {\"t\":\"CAMPAIGN\",\"k\":\"a/0\"}\n"));
    ck_assert_ptr_nonnull(strstr(data, " 1002 20 26 {\"t\":\"CAMPAIGN\",\"k\":\"c/2\"}\n"));
}
END_TEST

/* A record larger than a quarter of the ring takes the segment path, and is counted; the
 * hits of a record that share their time have it written once each all the same. */
START_TEST(ring_overflows_counted_and_times_shared)
{
    dc_spool_t *s = open_spool("ring-bytes=64k"); /* fsync=interval: a ring */
    char *big = apr_palloc(pool, 20001), *all = "";
    dc_hit_t hits[3];
    dc_spool_stats_t st;
    readback_t r;
    const char **names;
    size_t n, len;

    memset(big, 'x', 20000);
    big[20000] = '\0';
    hits[0] = make_hit(pool, big, 1000, 0);
    hits[1] = make_hit(pool, "b", 1000, 0);
    hits[2] = make_hit(pool, "c", 999, 5);
    /* over 16 KiB: the sink says it took the slow way; then into the ring */
    ck_assert_int_eq(dc_spool_sink(s, pool, hits, 3), 1);
    ck_assert_int_eq(dc_spool_sink(s, pool, hits + 1, 2), 0);
    dc_spool_stats(s, &st);
    ck_assert_uint_eq(st.accepted, 2);
    ck_assert_uint_eq(st.accepted_hits, 5);
    ck_assert_uint_eq(st.ring_overflows, 1);
    dc_spool_close(s);

    read_back(&r, NULL);
    ck_assert_uint_eq(r.records, 2);
    ck_assert_uint_eq(r.hits, 5);
    ck_assert_uint_eq(r.duplicate_ids, 0);
    ck_assert_int_eq(*(int *)apr_hash_get(r.keys, "b", APR_HASH_KEY_STRING), 2);
    ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);
    for (size_t i = 0; i < n; i++)
        all = apr_pstrcat(pool, all, slurp(apr_pstrcat(pool, dir, "/", names[i], NULL), &len),
                          NULL);
    ck_assert_ptr_nonnull(strstr(all, ".0 1000 0 20023 {"));
    ck_assert_ptr_nonnull(strstr(all, ".1 1000 0 24 {\"t\":\"CAMPAIGN\",\"k\":\"b\"} "));
    ck_assert_ptr_nonnull(strstr(all, ".2 999 5 24 {\"t\":\"CAMPAIGN\",\"k\":\"c\"}\n"));
    ck_assert_ptr_nonnull(strstr(all, ".0 1000 0 24 {\"t\":\"CAMPAIGN\",\"k\":\"b\"} "));
    ck_assert_ptr_nonnull(strstr(all, ".1 999 5 24 {\"t\":\"CAMPAIGN\",\"k\":\"c\"}\n"));
}
END_TEST

static int count_records(void *baton, apr_off_t offset, apr_off_t end,
                         const dc_spool_hit_t *hits, size_t n)
{
    (void)offset, (void)end, (void)hits, (void)n;
    (*(uint64_t *)baton)++;
    return 0;
}

START_TEST(torn_and_corrupt_records_are_skipped)
{
    dc_spool_t *s = open_spool("fsync=never");
    const char **names;
    size_t n, len, skipped;
    char *path, *data, *second;
    readback_t r;
    FILE *f;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(append_keys(s, apr_psprintf(pool, "r%d", i), 2), 0);
    dc_spool_close(s);
    ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);
    path = apr_pstrcat(pool, dir, "/", names[0], NULL);

    /* Flip a byte inside the second record's payload (its crc no longer
     * matches), and leave half a record at the end, as a crash would. */
    data = slurp(path, &len);
    second = strchr(data, '\n') + 1;
    second[40] ^= 0x01;
    f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fputs("DC1 000000ff 12345678 1 some-id 1 0 200 {\"t\":\"CAM", f);
    fclose(f);

    read_back(&r, &skipped);
    ck_assert_uint_eq(skipped, 2);
    ck_assert_uint_eq(r.records, 4);
    ck_assert_ptr_null(apr_hash_get(r.keys, "r1/0", APR_HASH_KEY_STRING));
    ck_assert_ptr_nonnull(apr_hash_get(r.keys, "r4/1", APR_HASH_KEY_STRING));

    /* A writer killed between reserving its range and writing it leaves zeros
     * between intact records (and at the end): the records after the hole are
     * read. */
    {
        const char *hit = "{\"t\":\"EVENT\",\"ea\":\"x\"}";
        const char *payload = apr_psprintf(pool, "1 id.0.0 1 0 %u %s", (unsigned)strlen(hit), hit);
        char *rec = apr_psprintf(pool, "DC1 %08x %08x %s\n", (unsigned)strlen(payload),
                                 (unsigned)dc_spool_crc32(payload, strlen(payload)), payload);
        size_t rlen = strlen(rec), hlen = 2 * rlen + 40;
        char *holed = apr_pcalloc(pool, hlen);
        uint64_t records = 0;

        memcpy(holed, rec, rlen);               /* a record, 30 zeros, */
        memcpy(holed + rlen + 30, rec, rlen);   /* a record, 10 zeros */
        dc_spool_parse(holed, hlen, "holed", pool, count_records, &records, &skipped);
        ck_assert_uint_eq(records, 2);
        ck_assert_uint_eq(skipped, 2);
    }

    /* Garbage alone, and a header whose length runs past the end. */
    dc_spool_parse("hello\nworld\n", 12, "garbage", pool, NULL, NULL, &skipped);
    ck_assert_uint_eq(skipped, 1);
    dc_spool_parse("DC1 7fffffff 00000000 x\n", 24, "long", pool, NULL, NULL, &skipped);
    ck_assert_uint_eq(skipped, 1);
}
END_TEST

START_TEST(rotation_by_size_and_age)
{
    static const char *const modes[] = {"write=map", "write=pwrite", "write=ring"};
    dc_spool_t *s = open_spool(apr_pstrcat(pool, "segment-bytes=600,segment-age=100ms,",
                                           modes[_i], NULL));
    readback_t r;

    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(append_keys(s, apr_psprintf(pool, "s%d", i), 2), 0);
    if (_i == 2)
        dc_spool_tick(s); /* the ring written out (the background thread may have begun) */
    /* ~190 bytes a record: a segment holds 4 of them (the 4th crosses 600). */
    ck_assert_int_eq(count_suffix(".ready"), 5);
    ck_assert_int_eq(count_suffix(".open"), 0);
    ck_assert_int_eq(append_keys(s, "late", 1), 0);
    if (_i == 2)
        dc_spool_tick(s);
    ck_assert_int_eq(count_suffix(".open"), 1);
    dc_spool_tick(s); /* too young */
    ck_assert_int_eq(count_suffix(".open"), 1);
    /* Nobody calls anything: the background thread closes the old segment. */
    apr_sleep(apr_time_from_msec(300));
    ck_assert_int_eq(count_suffix(".open"), 0);
    ck_assert_int_eq(count_suffix(".ready"), 6);
    read_back(&r, NULL);
    ck_assert_uint_eq(r.records, 21);
    ck_assert_uint_eq(r.duplicate_ids, 0);
    dc_spool_close(s);
    ck_assert_int_eq(count_suffix(".ready"), 6); /* nothing open, nothing new */
}
END_TEST

START_TEST(bound_refuses_and_counts)
{
    dc_spool_t *s = open_spool("max-bytes=2k,segment-bytes=500");
    dc_spool_stats_t st;
    int accepted = 0, refused = 0;

    for (int i = 0; i < 40; i++) {
        if (append_keys(s, apr_psprintf(pool, "b%d", i), 2) == 0)
            accepted++;
        else
            refused++;
    }
    ck_assert_int_gt(accepted, 5);
    ck_assert_int_gt(refused, 20);
    ck_assert_int_le(dir_bytes(), 2048);
    dc_spool_stats(s, &st);
    ck_assert_uint_eq(st.accepted, (uint64_t)accepted);
    ck_assert_uint_eq(st.refused, (uint64_t)refused);
    ck_assert_uint_eq(st.refused_hits, (uint64_t)refused * 2);
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert_uint_le(st.depth_bytes, 2048);
    ck_assert_uint_eq(st.depth_records, (uint64_t)accepted);
    dc_spool_close(s);
}
END_TEST

/* The pages' figures (dc_shipper_spool_figures, both front ends): degraded
 * while the spool refuses now or deliveries are failing, not for a past
 * refusal nor for a shipper that is merely retrying. */
START_TEST(figures_degraded_while_refusing_or_failing)
{
    dc_spool_t *s = open_spool("max-bytes=2k,segment-bytes=500");
    dc_metrics_extra_t x;
    dc_shipper_stats_t ship;
    dc_spool_stats_t st;
    int refused = 0;
    char cmd[128];

    for (int i = 0; i < 40 && !refused; i++)
        refused = append_keys(s, apr_psprintf(pool, "f%d", i), 2) < 0;
    ck_assert(refused);
    dc_spool_stats(s, &st);
    ck_assert_int_eq(st.refusing, 1);
    memset(&x, 0, sizeof(x));
    dc_shipper_spool_figures(s, NULL, &x);
    ck_assert_int_eq(x.has_spool, 1);
    ck_assert_int_eq(x.spool.degraded, 1);
    ck_assert_uint_eq(x.spool.pending_records, st.depth_records);
    ck_assert_uint_eq(x.spool.pending_bytes, (uint64_t)st.depth_bytes);
    ck_assert(x.spool.oldest_unsent > 0 && x.spool.oldest_unsent <= apr_time_now());

    /* room again (as after a delivery); the spool rescans within a second */
    snprintf(cmd, sizeof(cmd), "rm -f %s/seg-*.ready", dir);
    ck_assert_int_eq(system(cmd), 0);
    apr_sleep(apr_time_from_msec(1100));
    ck_assert_int_eq(append_keys(s, "again", 2), 0);
    memset(&x, 0, sizeof(x));
    dc_shipper_spool_figures(s, NULL, &x);
    ck_assert_int_eq(x.spool.degraded, 0);

    memset(&ship, 0, sizeof(ship));
    ship.state = DC_SHIPPER_RETRYING;
    ship.hits_sent = 7;
    ship.retries = 3;
    ship.dead_letter_hits = 2;
    strcpy(ship.last_error, "HTTP 503");
    memset(&x, 0, sizeof(x));
    dc_shipper_spool_figures(s, &ship, &x);
    ck_assert_int_eq(x.spool.degraded, 0);
    ck_assert_uint_eq(x.spool.delivered, 7);
    ck_assert_uint_eq(x.spool.retried, 3);
    ck_assert_uint_eq(x.spool.dead_lettered, 2);
    ck_assert_str_eq(x.spool.last_error, "HTTP 503");
    ship.state = DC_SHIPPER_FAILING;
    dc_shipper_spool_figures(s, &ship, &x);
    ck_assert_int_eq(x.spool.degraded, 1);

    memset(&x, 0, sizeof(x));
    dc_shipper_spool_figures(NULL, &ship, &x); /* no spool: nothing to show */
    ck_assert_int_eq(x.has_spool, 0);
    dc_spool_close(s);
}
END_TEST

START_TEST(bound_drops_oldest_and_counts)
{
    dc_spool_t *s = open_spool("max-bytes=2k,segment-bytes=500,on-full=drop-oldest");
    dc_spool_stats_t st;
    readback_t r;

    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(append_keys(s, apr_psprintf(pool, "d%d", i), 2), 0);
    /* the open segment's file is allocated ahead of its records until it closes */
    dc_spool_close(s);
    ck_assert_int_le(dir_bytes(), 2048);
    {
        const char **names;
        size_t n, len;

        ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);
        for (size_t i = 0; i < n; i++) { /* each ends with its last record */
            char *data = slurp(apr_pstrcat(pool, dir, "/", names[i], NULL), &len);

            ck_assert_uint_gt(len, 0);
            ck_assert_int_eq(data[len - 1], '\n');
        }
    }
    dc_spool_stats(s, &st);
    ck_assert_uint_eq(st.accepted, 40);
    ck_assert_uint_eq(st.refused, 0);
    ck_assert_uint_gt(st.dropped_segments, 0);
    read_back(&r, NULL);
    /* What is left plus what was dropped is everything, and the newest survive. */
    ck_assert_uint_eq(r.records + st.dropped, 40);
    ck_assert_ptr_nonnull(apr_hash_get(r.keys, "d39/1", APR_HASH_KEY_STRING));
    ck_assert_ptr_null(apr_hash_get(r.keys, "d0/0", APR_HASH_KEY_STRING));
}
END_TEST

/* The path of the one ring linked from the spool directory, or NULL. */
static const char *ring_of_spool(const char **link)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    const char *found = NULL;
    char target[512];

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "ring-", 5) == 0) {
            const char *l = apr_pstrcat(pool, dir, "/", e->d_name, NULL);
            ssize_t n = readlink(l, target, sizeof(target) - 1);

            ck_assert_ptr_null(found);
            ck_assert_int_gt(n, 0);
            target[n] = '\0';
            found = apr_pstrdup(pool, target);
            if (link)
                *link = l;
        }
    }
    closedir(d);
    return found;
}

/* A process killed with records in its ring (and in its open segment): the
 * ring is saved as a ready segment, nothing lost, nothing twice. _i = 1 and
 * 2: the kill came during the ring's write into the segment, after it (the
 * records must not come twice) or in the middle (they come from the ring). */
START_TEST(dead_process_ring_is_saved)
{
    pid_t child = fork();
    int status;
    readback_t r;
    const char *ring, *link, **names;
    size_t skipped, n;
    struct stat st;

    ck_assert_int_ge(child, 0);
    if (child == 0) {
        dc_spool_t *s = open_spool("fsync=never,segment-age=3600s");

        for (int i = 0; i < 5; i++)
            if (append_keys(s, apr_psprintf(pool, "k%d", i), 1) != 0)
                _exit(3);
        dc_spool_tick(s); /* into the segment */
        for (int i = 5; i < 8; i++)
            if (append_keys(s, apr_psprintf(pool, "k%d", i), 1) != 0)
                _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert_int_eq(count_suffix(".open"), 1);
    ring = ring_of_spool(&link);
    ck_assert_ptr_nonnull(ring);
    ck_assert_int_eq(strncmp(ring, DC_SPOOL_DEFAULT_RING_DIR "/", strlen(DC_SPOOL_DEFAULT_RING_DIR) + 1), 0);

    if (_i > 0) {
        /* Rewind the ring to before its write into the segment: the five
         * records back at its start, the tail at 0, the intent set. The
         * header: magic[8], size, head, tail, intent_len, intent_tail,
         * intent_offset (8 bytes each), intent_stem[64]. */
        DIR *d = opendir(dir);
        struct dirent *e;
        const char *seg = NULL;
        char *data;
        size_t len;
        uint64_t zero = 0, seg_len;
        int64_t offset = 0;
        int fd = open(ring, O_RDWR);
        char stem[64] = "";

        while ((e = readdir(d)) != NULL)
            if (strstr(e->d_name, ".open"))
                seg = apr_pstrcat(pool, dir, "/", e->d_name, NULL);
        closedir(d);
        ck_assert_ptr_nonnull(seg);
        data = slurp(seg, &len);
        seg_len = len;
        snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(strrchr(seg, '/') + 5) - 5),
                 strrchr(seg, '/') + 5);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pwrite(fd, data, len, 4096), (ssize_t)len);
        ck_assert_int_eq(pwrite(fd, &zero, 8, 24), 8);          /* tail */
        ck_assert_int_eq(pwrite(fd, &seg_len, 8, 32), 8);       /* intent_len */
        ck_assert_int_eq(pwrite(fd, &seg_len, 8, 40), 8);       /* intent_tail */
        ck_assert_int_eq(pwrite(fd, &offset, 8, 48), 8);        /* intent_offset */
        ck_assert_int_eq(pwrite(fd, stem, sizeof(stem), 56), (ssize_t)sizeof(stem));
        close(fd);
        if (_i == 2)
            ck_assert_int_eq(truncate(seg, (off_t)len / 2), 0);
    }

    ck_assert_int_ge(dc_spool_adopt_dead(dir, pool), 1);
    ck_assert_int_eq(count_suffix(".open"), 0);
    ck_assert_int_eq(count_suffix(".link"), 0);
    ck_assert_int_ne(stat(ring, &st), 0); /* the ring file is gone too */
    read_back(&r, &skipped);
    ck_assert_uint_eq(r.records, 8);
    ck_assert_uint_eq(r.duplicate_ids, 0);
    ck_assert_uint_eq(skipped, 0);
    for (int i = 0; i < 8; i++) {
        int *count = apr_hash_get(r.keys, apr_psprintf(pool, "k%d/0", i), APR_HASH_KEY_STRING);

        ck_assert_msg(count && *count == 1, "k%d", i);
    }
    ck_assert_int_eq(dc_spool_adopt_dead(dir, pool), 0);
    ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);

    /* A live process's ring is left alone, and removed at its close once
     * written out. */
    {
        dc_spool_t *s = open_spool(NULL);

        ck_assert_int_eq(append_keys(s, "live", 1), 0);
        ck_assert_int_eq(dc_spool_adopt_dead(dir, pool), 0);
        ck_assert_ptr_nonnull(ring = ring_of_spool(NULL));
        dc_spool_close(s);
        ck_assert_ptr_null(ring_of_spool(NULL));
        ck_assert_int_ne(stat(ring, &st), 0);
        read_back(&r, NULL);
        ck_assert_uint_eq(r.records, 9);
    }
}
END_TEST

START_TEST(dead_process_segment_is_adopted)
{
    pid_t child = fork();
    int status;
    readback_t r;
    const char **names;
    size_t n, skipped;
    DIR *d;
    struct dirent *e;

    ck_assert_int_ge(child, 0);
    if (child == 0) {
        dc_spool_t *s = open_spool("fsync=never,write=map");

        for (int i = 0; i < 5; i++)
            if (append_keys(s, apr_psprintf(pool, "k%d", i), 1) != 0)
                _exit(3);
        raise(SIGKILL); /* no close: the segment stays .open */
        _exit(4);
    }
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert_int_eq(count_suffix(".open"), 1);

    /* The kill came in the middle of a copy: half a record after the last
     * one, then the zeros the file was allocated with (cut at adoption). */
    d = opendir(dir);
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".open")) {
            const char *path = apr_pstrcat(pool, dir, "/", e->d_name, NULL);
            size_t len, end;
            char *data = slurp(path, &len);
            int fd = open(path, O_WRONLY);

            ck_assert_uint_gt(len, 0);
            for (end = len; end > 0 && data[end - 1] == '\0'; end--)
                ;
            ck_assert_int_eq(pwrite(fd, "DC1 00000100 0000", 17, (off_t)end), 17);
            close(fd);
        }
    }
    closedir(d);

    ck_assert_int_eq(dc_spool_adopt_dead(dir, pool), 1);
    ck_assert_int_eq(count_suffix(".open"), 0);
    ck_assert_int_eq(dc_spool_list_ready(dir, pool, &names, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(names[0], "-n5.ready"));
    {
        /* cut after the torn record: the allocated zeros are gone */
        size_t len;
        char *data = slurp(apr_pstrcat(pool, dir, "/", names[0], NULL), &len);

        ck_assert_uint_gt(len, 17);
        ck_assert_int_eq(memcmp(data + len - 17, "DC1 00000100 0000", 17), 0);
    }
    read_back(&r, &skipped);
    ck_assert_uint_eq(r.records, 5);
    ck_assert_uint_eq(skipped, 1);
    ck_assert_int_eq(dc_spool_adopt_dead(dir, pool), 0);

    /* A live process's open segment is left alone. */
    {
        dc_spool_t *s = open_spool("write=map");

        ck_assert_int_eq(append_keys(s, "live", 1), 0);
        ck_assert_int_eq(dc_spool_adopt_dead(dir, pool), 0);
        ck_assert_int_eq(count_suffix(".open"), 1);
        dc_spool_close(s);
    }
}
END_TEST

#define PROCS 4
#define THREADS 4
#define RECORDS 300

typedef struct {
    dc_spool_t *spool;
    int proc, thread, failed;
} writer_t;

static void *APR_THREAD_FUNC writer(apr_thread_t *t, void *data)
{
    writer_t *w = data;
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    for (int i = 0; i < RECORDS; i++) {
        dc_hit_t hits[2];

        hits[0] = make_hit(p, apr_psprintf(p, "p%d-t%d-r%d-a", w->proc, w->thread, i), i, 0);
        hits[1] = make_hit(p, apr_psprintf(p, "p%d-t%d-r%d-b", w->proc, w->thread, i), i, 5);
        if (dc_spool_append(w->spool, p, hits, 2) != 0)
            w->failed++;
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    /* A plain return, not apr_thread_exit (pthread_exit): its unwinding
     * trips AddressSanitizer in threads of forked processes; the thread's
     * pool goes with its parent. */
    return NULL;
}

/* _i: the ring; the mapped segment; a ring small enough to be full at times
 * (those records go to the segment by the request path, side by side with
 * the ring's write-out). */
START_TEST(concurrent_processes_and_threads_lose_nothing)
{
    static const char *const modes[] = {"", ",write=map", ",ring-bytes=64k"};
    pid_t children[PROCS];
    readback_t r;
    size_t skipped, segments;

    for (int c = 0; c < PROCS; c++) {
        children[c] = fork();
        ck_assert_int_ge(children[c], 0);
        if (children[c] == 0) {
            dc_spool_t *s = open_spool(apr_pstrcat(pool, "segment-bytes=16k,fsync=5ms", modes[_i],
                                                   NULL));
            apr_thread_t *threads[THREADS];
            writer_t w[THREADS];
            apr_status_t rv;
            int failed = 0;

            for (int t = 0; t < THREADS; t++) {
                w[t] = (writer_t){s, c, t, 0};
                if (apr_thread_create(&threads[t], NULL, writer, &w[t], pool) != APR_SUCCESS)
                    _exit(5);
            }
            for (int t = 0; t < THREADS; t++) {
                apr_thread_join(&rv, threads[t]);
                failed += w[t].failed;
            }
            dc_spool_close(s);
            _exit(failed ? 6 : 0);
        }
    }
    for (int c = 0; c < PROCS; c++) {
        int status;

        ck_assert_int_eq(waitpid(children[c], &status, 0), children[c]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", c);
    }
    ck_assert_int_eq(count_suffix(".open"), 0);
    segments = read_back(&r, &skipped);
    ck_assert_uint_gt(segments, PROCS); /* each rotated several times */
    ck_assert_uint_eq(skipped, 0);
    ck_assert_uint_eq(r.records, PROCS * THREADS * RECORDS);
    ck_assert_uint_eq(r.hits, PROCS * THREADS * RECORDS * 2);
    ck_assert_uint_eq(r.duplicate_ids, 0);
    ck_assert_uint_eq(apr_hash_count(r.keys), PROCS * THREADS * RECORDS * 2);
    for (int c = 0; c < PROCS; c++)
        for (int t = 0; t < THREADS; t++)
            for (int i = 0; i < RECORDS; i += 37) {
                int *count = apr_hash_get(
                    r.keys, apr_psprintf(pool, "p%d-t%d-r%d-b", c, t, i), APR_HASH_KEY_STRING);

                ck_assert_ptr_nonnull(count);
                ck_assert_int_eq(*count, 1);
            }
}
END_TEST

START_TEST(file_in_the_way_fails_at_open)
{
    dc_spool_options_t o;
    char err[256] = "";
    const char *path = apr_pstrcat(pool, dir, "/not-a-dir", NULL);
    FILE *f = fopen(path, "w");

    fclose(f);
    dc_spool_options_default(&o);
    o.dir = path;
    ck_assert_ptr_null(dc_spool_open(pool, &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "not-a-dir"));
}
END_TEST

/* dc_proc: the pid without a system call follows forks; a background thread
 * alone is niced. */
START_TEST(proc_pid_follows_fork)
{
    pid_t child;
    int status;

    ck_assert_int_eq(dc_proc_pid(), getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(dc_proc_pid() == getpid() && dc_proc_pid() != getppid() ? 0 : 1);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(dc_proc_pid(), getpid());
}
END_TEST

static void *background(void *arg)
{
    dc_proc_background_thread();
    errno = 0;
    *(int *)arg = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    return NULL;
}

START_TEST(background_thread_alone_is_niced)
{
    int before = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), in_thread = -100;
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, background, &in_thread), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(in_thread, before > 10 ? before : 10);
    ck_assert_int_eq(getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), before);
}
END_TEST

static Suite *spool_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("spool");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, crc32_is_ieee);
    tcase_add_test(tc, options_parse);
    tcase_add_loop_test(tc, records_read_back_exactly, 0, 2);
    tcase_add_test(tc, torn_and_corrupt_records_are_skipped);
    tcase_add_test(tc, ring_overflows_counted_and_times_shared);
    tcase_add_loop_test(tc, rotation_by_size_and_age, 0, 3);
    tcase_add_test(tc, bound_refuses_and_counts);
    tcase_add_test(tc, bound_drops_oldest_and_counts);
    tcase_add_test(tc, figures_degraded_while_refusing_or_failing);
    tcase_add_test(tc, dead_process_segment_is_adopted);
    tcase_add_loop_test(tc, dead_process_ring_is_saved, 0, 3);
    tcase_add_loop_test(tc, concurrent_processes_and_threads_lose_nothing, 0, 3);
    tcase_add_test(tc, file_in_the_way_fails_at_open);
    tcase_add_test(tc, proc_pid_follows_fork);
    tcase_add_test(tc, background_thread_alone_is_niced);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(spool_suite)
