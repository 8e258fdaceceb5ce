/*
 * The assignment stores against real backends: memory, every apr_dbm type
 * this apr-util offers on real files in a temporary directory, and Redis on a
 * real redis-server this suite starts on a free loopback port (fork/exec,
 * stopped by PID). Each backend runs the same contract (round trip, merge,
 * ids of any bytes, limits), then its own cases: DBM written by several
 * processes at once and corrupt files; Redis in the decision-api's exact
 * layout both ways, prefix, ACL user + SELECT, garbage fields, Redis stopped,
 * stalled and restarted. The Flagship settings → URI mapping is checked too.
 * If redis-server is not installed the Redis cases say so and pass.
 */
#include "dc_test.h"

#include "dc_log.h"
#include "dc_store.h"

#include <apr_dbm.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static apr_pool_t *pool;
static char tmpdir[64];

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    if (!d) {
        unlink(path);
        return;
    }
    while ((e = readdir(d))) {
        char sub[512];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        rm_rf(sub);
    }
    closedir(d);
    rmdir(path);
}

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    strcpy(tmpdir, "/tmp/dcstore-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    rm_rf(tmpdir);
    apr_pool_destroy(pool);
}

static dc_store_t *open_ok(const char *uri)
{
    char err[512] = "";
    dc_store_t *s = dc_store_open(pool, uri, err, sizeof(err));

    ck_assert_msg(s != NULL, "open %s: %s", uri, err);
    return s;
}

static dc_assignments_t one(const char *vg, const char *v, int activated)
{
    dc_assignments_t a;

    memset(&a, 0, sizeof(a));
    dc_assignments_set(pool, &a, vg, strlen(vg), v, strlen(v), activated);
    return a;
}

static void expect_assignment(const dc_assignments_t *a, const char *vg, const char *v,
                              int activated)
{
    const dc_assignment_t *x = dc_assignments_find(a, vg, strlen(vg));

    ck_assert_msg(x != NULL, "no assignment for %s", vg);
    ck_assert_int_eq(x->variation_id_len, strlen(v));
    ck_assert_mem_eq(x->variation_id, v, strlen(v));
    ck_assert_int_eq(x->activated, activated);
}

/*
 * The contract every backend keeps. env_scoped: keys include the environment
 * (memory, dbm; the decision-api's Redis layout has none). max_id: the longest
 * id the backend can keep (sdbm's pages are ~1 KB).
 */
static void store_contract(dc_store_t *s, int env_scoped, size_t max_id)
{
    dc_assignments_t a, out;
    const char *detail = NULL;
    char *long_id;

    a = one("vg1", "v1", 0);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_NOT_FOUND);
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1000), DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    ck_assert_int_eq(out.n, 1);
    expect_assignment(&out, "vg1", "v1", 0);
    ck_assert_int_eq(out.ts_ms, 1000);

    /* merge: other groups stay, the same group is replaced */
    a = one("vg2", "v2", 1);
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 2000), DC_STORE_OK);
    a = one("vg1", "v1b", 1);
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 3000), DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    ck_assert_int_eq(out.n, 2);
    expect_assignment(&out, "vg1", "v1b", 1);
    expect_assignment(&out, "vg2", "v2", 1);
    ck_assert_int_eq(out.ts_ms, 3000);

    /* ids of any bytes are distinct keys: NUL, quotes, CRLF, a Redis command */
    {
        static const char *const ids[] = {"a\0b", "a\0c", "a", "a\r\nFLUSHALL\r\n", "\"x\"",
                                          "env.vis", ".vis"};
        static const size_t lens[] = {3, 3, 1, 14, 3, 7, 4};

        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
            char v[8];

            snprintf(v, sizeof(v), "v%zu", i);
            a = one("vg", v, 0);
            ck_assert_int_eq(dc_store_save(s, pool, "env", ids[i], lens[i], &a, 1), DC_STORE_OK);
        }
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
            char v[8];

            snprintf(v, sizeof(v), "v%zu", i);
            ck_assert_int_eq(dc_store_load(s, pool, "env", ids[i], lens[i], &out), DC_STORE_OK);
            ck_assert_int_eq(out.n, 1);
            expect_assignment(&out, "vg", v, 0);
        }
        ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
        ck_assert_int_eq(out.n, 2);
    }
    if (env_scoped) {
        ck_assert_int_eq(dc_store_load(s, pool, "other", "vis", 3, &out), DC_STORE_NOT_FOUND);
        a = one("vg1", "other", 0);
        ck_assert_int_eq(dc_store_save(s, pool, "other", "vis", 3, &a, 1), DC_STORE_OK);
        ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
        expect_assignment(&out, "vg1", "v1b", 1);
    }

    /* the longest id kept, and one over the common limit is never stored */
    long_id = apr_palloc(pool, DC_STORE_MAX_ID_LEN + 1);
    memset(long_id, 'L', DC_STORE_MAX_ID_LEN + 1);
    a = one("vg", "long", 0);
    ck_assert_int_eq(dc_store_save(s, pool, "env", long_id, max_id, &a, 1), DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", long_id, max_id, &out), DC_STORE_OK);
    ck_assert_int_eq(dc_store_save(s, pool, "env", long_id, DC_STORE_MAX_ID_LEN + 1, &a, 1),
                     DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", long_id, DC_STORE_MAX_ID_LEN + 1, &out),
                     DC_STORE_NOT_FOUND);

    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_OK);
    ck_assert_ptr_nonnull(detail);
}

/* The registry and the query parser every backend's options go through. */
START_TEST(registry_and_options)
{
    dc_store_option_t *o;
    char err[200] = "";
    static const char *const schemes[][2] = {
        {"none", "none"}, {"memory?max_entries=5", "memory"}, {"dbm:/x?y", "dbm"},
        {"redis://h:1/0", "redis"}, {"rediss://h", "rediss"}, {"dynamo://t", "dynamo"},
        {"plugin:/a.so?k=v", "plugin"},
    };

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        const dc_store_backend_t *b = dc_store_backend_of(schemes[i][0]);

        ck_assert_ptr_nonnull(b);
        ck_assert_str_eq(b->scheme, schemes[i][1]);
    }
    ck_assert_ptr_null(dc_store_backend_of("memcached://h"));
    ck_assert_ptr_null(dc_store_backend_of("nonex"));
    ck_assert_ptr_null(dc_store_backend_of(""));
    ck_assert_str_eq(dc_store_usage(pool), "use none, memory, dbm:PATH, redis://host:port[/db], "
                                           "rediss://host:port[/db], dynamo://TABLE or "
                                           "plugin:/path/to/store.so");

    ck_assert_int_eq(dc_store_parse_query(pool, "a=1&b=x%26y%3Dz&&c=", &o, err, sizeof(err)), 3);
    ck_assert_str_eq(o[0].key, "a");
    ck_assert_str_eq(o[0].value, "1");
    ck_assert_str_eq(o[1].value, "x&y=z");
    ck_assert_str_eq(o[2].key, "c");
    ck_assert_str_eq(o[2].value, "");
    ck_assert_int_eq(dc_store_parse_query(pool, "", &o, err, sizeof(err)), 0);
    ck_assert_int_eq(dc_store_parse_query(pool, "flag", &o, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "option \"flag\" needs a name and a value"));
    ck_assert_int_eq(dc_store_parse_query(pool, "=v", &o, err, sizeof(err)), -1);
    ck_assert_int_eq(dc_store_parse_query(pool, "k=%zz", &o, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "bad %-escape"));
    ck_assert_int_eq(dc_store_parse_query(pool, "k=%00", &o, err, sizeof(err)), -1);
    ck_assert_int_eq(dc_store_parse_query(pool, "k=%4", &o, err, sizeof(err)), -1);

    /* a plugin store: every problem a message, nothing opened */
    ck_assert_ptr_null(dc_store_open(pool, "plugin:", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "give the shared object's path"));
    ck_assert_ptr_null(dc_store_open(pool, "plugin:/nonexistent/x.so?a=1", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "store plugin /nonexistent/x.so: cannot load it"));
    ck_assert_ptr_null(dc_store_open(pool, "plugin:/x.so?a", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "needs a name and a value"));
}
END_TEST

/* The outage piece shared by redis://, dynamo:// and the plugin wrapper. */
START_TEST(outage_window_probe_and_queue)
{
    dc_store_outage_t o;
    apr_time_t t = apr_time_from_sec(1000);
    dc_store_pending_t *list, *e;
    size_t n;

    memset(&o, 0, sizeof(o));
    o.max_backoff = apr_time_from_msec(300);
    ck_assert_int_eq(dc_store_outage_may_try(&o, t), 1);
    ck_assert_int_eq(dc_store_outage_fail(&o, t, "down: %d", 1), 1);
    ck_assert_str_eq(o.error, "down: 1");
    ck_assert_int_eq(dc_store_outage_may_try(&o, t + DC_STORE_MIN_BACKOFF - 1), 0);
    /* the window ends: one caller probes, the next one skips */
    ck_assert_int_eq(dc_store_outage_may_try(&o, t + DC_STORE_MIN_BACKOFF), 1);
    ck_assert_int_eq(dc_store_outage_may_try(&o, t + DC_STORE_MIN_BACKOFF + 1), 0);
    {
        char d[64];

        dc_store_outage_describe(&o, t + DC_STORE_MIN_BACKOFF, d, sizeof(d));
        ck_assert_str_eq(d, "down: 1; next try in 100 ms");
        dc_store_outage_describe(&o, t + 10 * DC_STORE_MIN_BACKOFF, d, sizeof(d));
        ck_assert_str_eq(d, "down: 1; next try in 0 ms");
    }
    /* the window doubles up to max_backoff */
    ck_assert_int_eq(dc_store_outage_fail(&o, t, "x"), 0);
    ck_assert_int_eq(o.backoff, 2 * DC_STORE_MIN_BACKOFF);
    dc_store_outage_fail(&o, t, "x");
    ck_assert_int_eq(o.backoff, apr_time_from_msec(300));
    /* the queue: bounded by entries, in order, taken in batches, requeued in front */
    for (int i = 0; i < DC_STORE_MAX_PENDING; i++) {
        char b[16];
        int len = snprintf(b, sizeof(b), "%d", i);

        ck_assert_int_eq(dc_store_outage_queue(&o, dc_store_pending_new(b, (size_t)len, i)), 0);
    }
    e = dc_store_pending_new("late", 4, 0);
    ck_assert_int_eq(dc_store_outage_queue(&o, e), -1);
    free(e);
    ck_assert_int_eq(dc_store_outage_queue(&o, NULL), -1);
    ck_assert_uint_eq(o.pending_dropped, 2);
    list = dc_store_outage_take(&o, 2, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(list->data, "0");
    ck_assert_str_eq(list->next->data, "1");
    ck_assert_ptr_null(list->next->next);
    dc_store_outage_requeue(&o, list);
    ck_assert_uint_eq(o.n_pending, DC_STORE_MAX_PENDING);
    list = dc_store_outage_take(&o, 0, &n);
    ck_assert_uint_eq(n, DC_STORE_MAX_PENDING);
    ck_assert_str_eq(list->data, "0");
    ck_assert_ptr_null(o.pending);
    ck_assert_uint_eq(o.pending_bytes, 0);
    dc_store_pending_free(list);
    /* bounded by bytes too */
    e = dc_store_pending_new(NULL, DC_STORE_MAX_PENDING_BYTES + 1, 0);
    ck_assert_int_eq(dc_store_outage_queue(&o, e), -1);
    free(e);
    ck_assert_int_eq(dc_store_outage_queue(&o, dc_store_pending_new("a", 1, 0)), 0);
    dc_store_outage_drop_queue(&o);
    ck_assert_uint_eq(o.n_pending, 0);
    ck_assert_int_eq(dc_store_outage_ok(&o), 1);
    ck_assert_int_eq(dc_store_outage_ok(&o), 0);
    ck_assert_int_eq(dc_store_outage_may_try(&o, t), 1);
}
END_TEST

START_TEST(memory_contract)
{
    dc_store_t *s = open_ok("memory?max_entries=1000");

    store_contract(s, 1, DC_STORE_MAX_ID_LEN);
    dc_store_close(s);
}
END_TEST

/* ---- DBM ---- */

static const char *const dbm_types[] = {"default", "gdbm", "sdbm", "db"};
#define N_DBM_TYPES (sizeof(dbm_types) / sizeof(dbm_types[0]))

/* Whether this apr-util has the type (Debian: sdbm built in, gdbm and db as drivers). */
static int dbm_type_available(const char *type)
{
    apr_dbm_t *db;
    const char *path = apr_psprintf(pool, "%s/probe-%s", tmpdir, type);

    if (apr_dbm_open_ex(&db, type, path, APR_DBM_RWCREATE, APR_FPROT_OS_DEFAULT, pool) !=
        APR_SUCCESS) {
        fprintf(stderr, "check_store: DBM type %s not available here, not tested\n", type);
        return 0;
    }
    apr_dbm_close(db);
    return 1;
}

static const char *dbm_uri(const char *type, const char *name)
{
    return apr_psprintf(pool, "dbm:%s:%s/%s", type, tmpdir, name);
}

START_TEST(dbm_contract)
{
    const char *type = dbm_types[_i];
    dc_store_t *s;
    dc_assignments_t a, out;

    if (!dbm_type_available(type))
        return;
    s = open_ok(dbm_uri(type, "contract"));
    store_contract(s, 1, strcmp(type, "sdbm") == 0 ? 200 : DC_STORE_MAX_ID_LEN);

    /* an environment id with the key separator could collide: refused, not stored */
    a = one("vg", "v", 0);
    ck_assert_int_eq(dc_store_save(s, pool, "e.x", "vis", 3, &a, 1), DC_STORE_UNAVAILABLE);
    ck_assert_int_eq(dc_store_load(s, pool, "e.x", "vis", 3, &out), DC_STORE_UNAVAILABLE);
    dc_store_close(s);

    /* the data is in the file: a second store on it sees it */
    s = open_ok(dbm_uri(type, "contract"));
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    expect_assignment(&out, "vg2", "v2", 1);
    dc_store_close(s);
}
END_TEST

START_TEST(dbm_bad_uris)
{
    char err[512];

    ck_assert_ptr_null(dc_store_open(pool, "dbm:", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "path is missing"));
    ck_assert_ptr_null(dc_store_open(pool, "dbm:gdbm:", err, sizeof(err)));
    ck_assert_ptr_null(
        dc_store_open(pool, apr_psprintf(pool, "dbm:%s/no/such/dir/f", tmpdir), err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "lock file"));
}
END_TEST

/* Children write their own ids and fields of one shared id at the same time. */
#define DBM_WRITERS 4
static void dbm_writer(dc_store_t *s, int child, int n_own, int n_shared)
{
    if (child % 2)
        dc_store_child_init(s, pool); /* the others rely on the store noticing the new pid */
    for (int i = 0; i < n_own || i < n_shared; i++) {
        char id[32], vg[32], v[32];
        dc_assignments_t a;

        snprintf(v, sizeof(v), "v-%d-%d", child, i);
        if (i < n_own) {
            snprintf(id, sizeof(id), "own-%d-%d", child, i);
            a = one("vg", v, i % 2);
            if (dc_store_save(s, pool, "env", id, strlen(id), &a, i) != DC_STORE_OK)
                _exit(10);
        }
        if (i < n_shared) {
            snprintf(vg, sizeof(vg), "vg-%d-%d", child, i);
            a = one(vg, v, 1);
            if (dc_store_save(s, pool, "env", "shared", 6, &a, i) != DC_STORE_OK)
                _exit(11);
        }
    }
    _exit(0);
}

START_TEST(dbm_concurrent_processes)
{
    const char *type = dbm_types[_i];
    /* sdbm keeps a record in one ~1 KB page: fewer fields in the shared record */
    int n_own = 100, n_shared = strcmp(type, "sdbm") == 0 ? 3 : 40;
    pid_t pids[DBM_WRITERS];
    dc_assignments_t out;
    dc_store_t *s;

    if (!dbm_type_available(type))
        return;
    s = open_ok(dbm_uri(type, "shared"));
    for (int c = 0; c < DBM_WRITERS; c++) {
        pids[c] = fork();
        ck_assert_int_ge(pids[c], 0);
        if (pids[c] == 0)
            dbm_writer(s, c, n_own, n_shared);
    }
    for (int c = 0; c < DBM_WRITERS; c++) {
        int status;

        ck_assert_int_eq(waitpid(pids[c], &status, 0), pids[c]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "%s writer %d failed (status %d)", type, c, status);
    }
    for (int c = 0; c < DBM_WRITERS; c++) {
        for (int i = 0; i < n_own; i++) {
            char id[32], v[32];

            snprintf(id, sizeof(id), "own-%d-%d", c, i);
            snprintf(v, sizeof(v), "v-%d-%d", c, i);
            ck_assert_int_eq(dc_store_load(s, pool, "env", id, strlen(id), &out), DC_STORE_OK);
            expect_assignment(&out, "vg", v, i % 2);
        }
    }
    /* a lost update in the read-modify-write would drop fields here */
    ck_assert_int_eq(dc_store_load(s, pool, "env", "shared", 6, &out), DC_STORE_OK);
    ck_assert_int_eq(out.n, DBM_WRITERS * n_shared);
    dc_store_close(s);
}
END_TEST

/*
 * A process that keeps its handle open sees what another process wrote since:
 * this process loads many records (Berkeley DB caches their pages in its
 * handle), a child rewrites every one of them and adds more (pages split),
 * then this process must read the child's values, twice over.
 */
#define DBM_CROSS_IDS 300
static void dbm_rewrite_all(dc_store_t *s, int round)
{
    for (int i = 0; i < DBM_CROSS_IDS * 2; i++) {
        char id[32], v[32];
        dc_assignments_t a;

        snprintf(id, sizeof(id), "cross-%d", i);
        snprintf(v, sizeof(v), "r%d-%d", round, i);
        a = one("vg", v, round % 2);
        if (dc_store_save(s, pool, "env", id, strlen(id), &a, round) != DC_STORE_OK)
            _exit(10);
    }
    _exit(0);
}

START_TEST(dbm_other_process_writes_seen)
{
    const char *type = dbm_types[_i];
    dc_assignments_t out;
    dc_store_t *s;

    if (!dbm_type_available(type))
        return;
    s = open_ok(dbm_uri(type, "cross"));
    for (int i = 0; i < DBM_CROSS_IDS; i++) {
        char id[32];
        dc_assignments_t a = one("vg", "initial", 0);

        snprintf(id, sizeof(id), "cross-%d", i);
        ck_assert_int_eq(dc_store_save(s, pool, "env", id, strlen(id), &a, 1), DC_STORE_OK);
    }
    for (int round = 1; round <= 2; round++) {
        pid_t pid;
        int status;

        for (int i = 0; i < DBM_CROSS_IDS; i++) { /* fills this process's handle */
            char id[32];

            snprintf(id, sizeof(id), "cross-%d", i);
            ck_assert_int_eq(dc_store_load(s, pool, "env", id, strlen(id), &out), DC_STORE_OK);
        }
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
            dbm_rewrite_all(s, round);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s writer failed (%d)",
                      type, status);
        for (int i = 0; i < DBM_CROSS_IDS * 2; i++) {
            char id[32], v[32];

            snprintf(id, sizeof(id), "cross-%d", i);
            snprintf(v, sizeof(v), "r%d-%d", round, i);
            ck_assert_msg(dc_store_load(s, pool, "env", id, strlen(id), &out) == DC_STORE_OK,
                          "%s round %d: %s not found", type, round, id);
            expect_assignment(&out, "vg", v, round % 2);
        }
    }
    dc_store_close(s);
}
END_TEST

static int open_descriptors(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;

    ck_assert_ptr_nonnull(dir);
    while (readdir(dir))
        n++;
    closedir(dir);
    return n;
}

/* Each save makes this process's kept handle stale and the next load reopens it:
 * many rounds must not leave descriptors (or memory, for LeakSanitizer) behind. */
START_TEST(dbm_reopen_leaks_nothing)
{
    const char *type = dbm_types[_i];
    dc_assignments_t a = one("vg", "v", 0), out;
    dc_store_t *s;
    int before;

    if (!dbm_type_available(type))
        return;
    s = open_ok(dbm_uri(type, "reopen"));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    before = open_descriptors();
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, i), DC_STORE_OK);
        ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    }
    ck_assert_int_le(open_descriptors(), before);
    dc_store_close(s);
}
END_TEST

static void write_garbage(const char *path)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 8192; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
}

START_TEST(dbm_corrupt_file_bypassed)
{
    const char *type = dbm_types[_i];
    const char *path = apr_psprintf(pool, "%s/corrupt", tmpdir), *used1, *used2, *detail;
    dc_assignments_t a = one("vg", "v", 0), out;
    dc_store_status_e st;
    dc_store_t *s;
    char err[512];

    if (!dbm_type_available(type))
        return;
    ck_assert_int_eq(apr_dbm_get_usednames_ex(pool, type, path, &used1, &used2), APR_SUCCESS);
    write_garbage(used1);
    if (used2)
        write_garbage(used2);

    /* opens (degraded) rather than stopping the server; never crashes, never "OK" garbage */
    s = dc_store_open(pool, apr_psprintf(pool, "dbm:%s:%s", type, path), err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    for (int round = 0; round < 3; round++) {
        st = dc_store_load(s, pool, "env", "vis", 3, &out);
        ck_assert_msg(st == DC_STORE_UNAVAILABLE || st == DC_STORE_NOT_FOUND, "load %d", st);
        dc_store_save(s, pool, "env", "vis", 3, &a, 1);
    }
    if (strcmp(type, "sdbm") != 0) {
        /* gdbm and Berkeley DB check their header: the store says why it is degraded */
        ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_DEGRADED);
        ck_assert_ptr_nonnull(strstr(detail, path));
    }

    /* the operator removes the file: the store recovers by itself */
    unlink(used1);
    if (used2)
        unlink(used2);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_NOT_FOUND);
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_OK);
    dc_store_close(s);
}
END_TEST

/* What a program writing the file outside the store must do (doc/stores.md): add 1 to the
 * change counter, the 8 bytes at the start of PATH.lock, so processes with a kept
 * handle reopen it. */
static void announce_external_write(const char *path)
{
    uint64_t generation = 0;
    int fd = open(apr_pstrcat(pool, path, ".lock", NULL), O_RDWR);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(pread(fd, &generation, sizeof(generation), 0), 0);
    generation++;
    ck_assert_int_eq(pwrite(fd, &generation, sizeof(generation), 0), sizeof(generation));
    close(fd);
}

START_TEST(dbm_garbage_record_ignored)
{
    const char *type = dbm_types[_i];
    const char *path = apr_psprintf(pool, "%s/records", tmpdir);
    static const char *const garbage[] = {"", "{", "null", "{\"Assignments\":[]}",
                                          "{\"Assignments\":{\"vg\":{\"VariationID\":7}}}",
                                          "\xff\xfe\x00\x01"};
    dc_assignments_t a = one("vg", "fresh", 1), out;
    dc_store_t *s;

    if (!dbm_type_available(type))
        return;
    s = open_ok(apr_psprintf(pool, "dbm:%s:%s", type, path));
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        apr_dbm_t *db;
        apr_datum_t k = {"env.vis", 7}, v = {(char *)garbage[i], i == 5 ? 4 : strlen(garbage[i])};

        ck_assert_int_eq(apr_dbm_open_ex(&db, type, path, APR_DBM_READWRITE,
                                         APR_FPROT_OS_DEFAULT, pool),
                         APR_SUCCESS);
        ck_assert_int_eq(apr_dbm_store(db, k, v), APR_SUCCESS);
        apr_dbm_close(db);
        announce_external_write(path);
        ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_NOT_FOUND);
        /* the next save replaces the bad record */
        ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
        ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
        expect_assignment(&out, "vg", "fresh", 1);
    }
    dc_store_close(s);
}
END_TEST

/* ---- Redis ---- */

typedef struct {
    pid_t pid;
    int port;
    char dir[128];
} redis_server_t;

static redis_server_t srv;
static int have_redis;

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static redisContext *raw_connect(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c && !c->err) {
        redisSetTimeout(c, tv);
        return c;
    }
    if (c)
        redisFree(c);
    return NULL;
}

static void redis_start(redis_server_t *r)
{
    char port[16], log[200];
    apr_time_t deadline;

    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    r->pid = fork();
    ck_assert_int_ge(r->pid, 0);
    if (r->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--dir", r->dir, (char *)NULL);
        _exit(127);
    }
    deadline = apr_time_now() + apr_time_from_sec(10);
    for (;;) {
        redisContext *c = raw_connect(r->port);

        if (c) {
            redisReply *reply = redisCommand(c, "PING");
            int ok = reply && reply->type == REDIS_REPLY_STATUS;

            if (reply)
                freeReplyObject(reply);
            redisFree(c);
            if (ok)
                return;
        }
        ck_assert_msg(apr_time_now() < deadline, "redis-server did not start on port %d (see %s)",
                      r->port, log);
        ck_assert_msg(waitpid(r->pid, NULL, WNOHANG) == 0, "redis-server exited (see %s)", log);
        apr_sleep(apr_time_from_msec(20));
    }
}

static void redis_stop(redis_server_t *r)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(10);

    if (r->pid <= 0)
        return;
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGTERM);
    while (waitpid(r->pid, NULL, WNOHANG) == 0) {
        if (apr_time_now() > deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
            break;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    r->pid = 0;
}

static int redis_installed(void)
{
    const char *path = getenv("PATH");
    char *copy, *dir, *save = NULL;

    if (!path)
        return 0;
    copy = apr_pstrdup(pool, path);
    for (dir = apr_strtok(copy, ":", &save); dir; dir = apr_strtok(NULL, ":", &save))
        if (access(apr_pstrcat(pool, dir, "/redis-server", NULL), X_OK) == 0)
            return 1;
    return 0;
}

static void redis_setup(void)
{
    setup();
    have_redis = redis_installed();
    if (!have_redis) {
        fprintf(stderr, "check_store: redis-server is not installed: Redis cases skipped\n");
        return;
    }
    memset(&srv, 0, sizeof(srv));
    srv.port = free_port();
    snprintf(srv.dir, sizeof(srv.dir), "%s", tmpdir);
    redis_start(&srv);
}

static void redis_teardown(void)
{
    if (have_redis)
        redis_stop(&srv);
    teardown();
}

/* A raw command on a fresh admin connection; the reply is the caller's to free. */
static redisReply *raw(const char *auth, int db, const char *fmt, ...)
{
    redisContext *c = raw_connect(srv.port);
    redisReply *reply;
    va_list ap;

    ck_assert_ptr_nonnull(c);
    if (auth) {
        reply = redisCommand(c, "AUTH %s", auth);
        ck_assert_ptr_nonnull(reply);
        freeReplyObject(reply);
    }
    if (db) {
        reply = redisCommand(c, "SELECT %d", db);
        ck_assert_ptr_nonnull(reply);
        freeReplyObject(reply);
    }
    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(reply);
    redisFree(c);
    return reply;
}

static long long raw_int(const char *fmt, const char *arg)
{
    redisReply *reply = raw(NULL, 0, fmt, arg);
    long long v;

    ck_assert_int_eq(reply->type, REDIS_REPLY_INTEGER);
    v = reply->integer;
    freeReplyObject(reply);
    return v;
}

static const char *redis_uri(const char *extra)
{
    return apr_psprintf(pool, "redis://127.0.0.1:%d%s", srv.port, extra ? extra : "");
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!have_redis)                                                                           \
            return;                                                                                \
    } while (0)

START_TEST(redis_contract)
{
    dc_store_t *s;

    NEED_REDIS();
    s = open_ok(redis_uri("/0"));
    store_contract(s, 0, DC_STORE_MAX_ID_LEN);
    /* no environment in the key, and the CRLF id did not run FLUSHALL */
    ck_assert_int_eq(raw_int("EXISTS %s", "vis"), 1);
    ck_assert_int_eq(raw_int("EXISTS %s", "env.vis"), 1);
    dc_store_close(s);
}
END_TEST

START_TEST(redis_decision_api_layout)
{
    dc_store_t *s;
    dc_assignments_t a, out;
    redisReply *reply;
    long long ttl;
    int seen_vg = 0, seen_old = 0, seen_ts = 0;

    NEED_REDIS();
    s = open_ok(redis_uri(""));
    /* written the way the decision-api writes it */
    freeReplyObject(raw(NULL, 0, "HSET %s %s %s %s %s %s %s", "visitor-1", "vg_a",
                        "{\"VariationID\":\"va\",\"Activated\":true}", "vg_b",
                        "{\"VariationID\":\"vb\",\"Activated\":false}", "ts", "1700000000123"));
    ck_assert_int_eq(dc_store_load(s, pool, "env", "visitor-1", 9, &out), DC_STORE_OK);
    ck_assert_int_eq(out.n, 2);
    expect_assignment(&out, "vg_a", "va", 1);
    expect_assignment(&out, "vg_b", "vb", 0);
    ck_assert_int_eq(out.ts_ms, 1700000000123LL);

    /* and read back the way it reads it: exact field values, ts in ms, TTL 90 days */
    a = one("vg_c", "vc", 1);
    ck_assert_int_eq(dc_store_save(s, pool, "env", "visitor-1", 9, &a, 1700000999000LL),
                     DC_STORE_OK);
    reply = raw(NULL, 0, "HGETALL %s", "visitor-1");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(reply->elements, 8);
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const char *f = reply->element[i]->str, *v = reply->element[i + 1]->str;

        if (strcmp(f, "vg_c") == 0)
            seen_vg = strcmp(v, "{\"VariationID\":\"vc\",\"Activated\":true}") == 0;
        else if (strcmp(f, "vg_a") == 0)
            seen_old = strcmp(v, "{\"VariationID\":\"va\",\"Activated\":true}") == 0;
        else if (strcmp(f, "ts") == 0)
            seen_ts = strcmp(v, "1700000999000") == 0;
    }
    freeReplyObject(reply);
    ck_assert(seen_vg && seen_old && seen_ts);
    ttl = raw_int("TTL %s", "visitor-1");
    ck_assert_int_le(ttl, 7776000);
    ck_assert_int_gt(ttl, 7776000 - 60);
    dc_store_close(s);

    /* ttl option; ttl=0 keeps the hash without expiry */
    s = open_ok(redis_uri("?ttl=60"));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "visitor-2", 9, &a, 1), DC_STORE_OK);
    ttl = raw_int("TTL %s", "visitor-2");
    ck_assert_int_le(ttl, 60);
    ck_assert_int_gt(ttl, 0);
    dc_store_close(s);
    s = open_ok(redis_uri("?ttl=0"));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "visitor-3", 9, &a, 1), DC_STORE_OK);
    ck_assert_int_eq(raw_int("TTL %s", "visitor-3"), -1);
    dc_store_close(s);
}
END_TEST

START_TEST(redis_prefix)
{
    dc_store_t *s1, *s2;
    dc_assignments_t a = one("vg", "v", 0), out;

    NEED_REDIS();
    s1 = open_ok(redis_uri("?prefix=env1%3A"));
    s2 = open_ok(redis_uri("?prefix=env2:"));
    ck_assert_str_eq(s1->prefix, "env1:");
    ck_assert_int_eq(dc_store_save(s1, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
    ck_assert_int_eq(raw_int("EXISTS %s", "env1:vis"), 1);
    ck_assert_int_eq(raw_int("EXISTS %s", "vis"), 0);
    ck_assert_int_eq(dc_store_load(s2, pool, "env", "vis", 3, &out), DC_STORE_NOT_FOUND);
    ck_assert_int_eq(dc_store_load(s1, pool, "env", "vis", 3, &out), DC_STORE_OK);
    dc_store_close(s1);
    dc_store_close(s2);
}
END_TEST

START_TEST(redis_acl_user_and_select)
{
    dc_store_t *s;
    dc_assignments_t a = one("vg", "v", 0), out;
    const char *detail;
    redisReply *reply;

    NEED_REDIS();
    freeReplyObject(raw(NULL, 0, "ACL SETUSER alice on >s3cr@t:x ~* +@all"));
    /* from now on the default user needs a password too, so only a real AUTH gets in */
    freeReplyObject(raw(NULL, 0, "CONFIG SET requirepass adminpw"));

    s = open_ok(redis_uri("/5"));
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_UNAVAILABLE);
    dc_store_close(s);

    s = open_ok(apr_psprintf(pool, "redis://alice:s3cr%%40t%%3Ax@127.0.0.1:%d/5", srv.port));
    ck_assert_ptr_null(strstr(s->uri, "s3cr"));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    dc_store_close(s);
    reply = raw("adminpw", 5, "EXISTS %s", "vis");
    ck_assert_int_eq(reply->integer, 1);
    freeReplyObject(reply);
    reply = raw("adminpw", 0, "EXISTS %s", "vis");
    ck_assert_int_eq(reply->integer, 0);
    freeReplyObject(reply);

    /* a wrong password: unavailable, degraded, and the detail names AUTH but no secret */
    s = open_ok(apr_psprintf(pool, "redis://alice:wrong-secret@127.0.0.1:%d/5", srv.port));
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_UNAVAILABLE);
    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_DEGRADED);
    ck_assert_ptr_nonnull(strstr(detail, "AUTH"));
    ck_assert_ptr_null(strstr(detail, "wrong-secret"));
    dc_store_close(s);
}
END_TEST

static int log_lines_10333;

static void count_sink(void *baton, dc_log_level_e level, const char *msg)
{
    if (strstr(msg, "DC10333"))
        log_lines_10333++;
}

START_TEST(redis_garbage_ignored)
{
    dc_store_t *s;
    dc_assignments_t out;
    redisContext *c;
    redisReply *reply;

    NEED_REDIS();
    s = open_ok(redis_uri(""));
    freeReplyObject(raw(NULL, 0, "HSET %s %s %s %s %s %s %s %s %s %s %s", "g", "vg1", "not json",
                        "vg2", "{\"VariationID\":5}", "vg3",
                        "{\"VariationID\":\"ok\",\"Activated\":true}", "ts", "12abc", "vg4",
                        "{\"VariationID\":\"\"}"));
    dc_log_set_sink(count_sink, NULL, DC_LOG_WARN);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(dc_store_load(s, pool, "env", "g", 1, &out), DC_STORE_OK);
        ck_assert_int_eq(out.n, 1);
        expect_assignment(&out, "vg3", "ok", 1);
        ck_assert_int_eq(out.ts_ms, 0);
    }
    ck_assert_int_eq(log_lines_10333, 1); /* logged, but not once per load */
    dc_log_set_sink(NULL, NULL, DC_LOG_ERROR);

    /* not a hash at all */
    freeReplyObject(raw(NULL, 0, "SET %s %s", "str", "{\"vg\":1}"));
    ck_assert_int_eq(dc_store_load(s, pool, "env", "str", 3, &out), DC_STORE_NOT_FOUND);
    freeReplyObject(raw(NULL, 0, "RPUSH %s %s", "list", "x"));
    ck_assert_int_eq(dc_store_load(s, pool, "env", "list", 4, &out), DC_STORE_NOT_FOUND);

    /* more fields than a record may hold: bounded */
    c = raw_connect(srv.port);
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < DC_STORE_MAX_ASSIGNMENTS + 200; i++)
        redisAppendCommand(c, "HSET big vg%d {\"VariationID\":\"v\"}", i);
    for (int i = 0; i < DC_STORE_MAX_ASSIGNMENTS + 200; i++) {
        ck_assert_int_eq(redisGetReply(c, (void **)&reply), REDIS_OK);
        freeReplyObject(reply);
    }
    redisFree(c);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "big", 3, &out), DC_STORE_OK);
    ck_assert_int_eq(out.n, DC_STORE_MAX_ASSIGNMENTS);
    dc_store_close(s);
}
END_TEST

START_TEST(redis_down_then_back)
{
    dc_store_t *s;
    dc_assignments_t a = one("vg", "v", 0), out;
    const char *detail;
    apr_time_t start, deadline;
    dc_store_status_e st;

    NEED_REDIS();
    s = open_ok(redis_uri("?max_backoff_ms=300"));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
    redis_stop(&srv);

    /* every call answers at once: the first sees the broken connection, the rest back off */
    start = apr_time_now();
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_UNAVAILABLE);
        ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_UNAVAILABLE);
    }
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(1));
    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_DEGRADED);
    ck_assert_ptr_nonnull(strstr(detail, "next try"));

    /* Redis comes back on the same port: the store reconnects by itself */
    redis_start(&srv);
    deadline = apr_time_now() + apr_time_from_sec(10);
    while ((st = dc_store_save(s, pool, "env", "vis", 3, &a, 2)) != DC_STORE_OK) {
        ck_assert_int_eq(st, DC_STORE_UNAVAILABLE);
        ck_assert_msg(apr_time_now() < deadline, "no reconnect after Redis restarted");
        apr_sleep(apr_time_from_msec(20));
    }
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_OK);
    dc_store_close(s);
}
END_TEST

static int log_lines_10330;

static void outage_sink(void *baton, dc_log_level_e level, const char *msg)
{
    if (strstr(msg, "DC10330"))
        log_lines_10330++;
}

/* Redis closes idle clients after "timeout" seconds: a pooled connection it closed is
 * replaced without calling it an outage. */
START_TEST(redis_idle_connection_closed_by_server)
{
    dc_store_t *s;
    dc_assignments_t a = one("vg", "v", 0), out;
    const char *detail;
    redisReply *reply;

    NEED_REDIS();
    freeReplyObject(raw(NULL, 0, "CONFIG SET timeout 1"));
    s = open_ok(redis_uri(""));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    apr_sleep(apr_time_from_msec(2500));
    reply = raw(NULL, 0, "INFO clients");
    ck_assert_ptr_nonnull(strstr(reply->str, "connected_clients:1\r\n")); /* only this one */
    freeReplyObject(reply);
    dc_log_set_sink(outage_sink, NULL, DC_LOG_WARN);
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_OK);
    apr_sleep(apr_time_from_msec(2500));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 2), DC_STORE_OK);
    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_OK);
    ck_assert_int_eq(log_lines_10330, 0);
    dc_log_set_sink(NULL, NULL, DC_LOG_ERROR);
    dc_store_close(s);
}
END_TEST

/* Saves made while Redis was down reach it when it is back, without overwriting what it has. */
START_TEST(redis_outage_saves_replayed)
{
    dc_store_t *s;
    dc_assignments_t a, out;
    apr_time_t deadline;
    redisReply *reply;

    NEED_REDIS();
    s = open_ok(redis_uri("?max_backoff_ms=200&prefix=p:"));
    a = one("vg", "v", 0);
    ck_assert_int_eq(dc_store_save(s, pool, "env", "warm", 4, &a, 1), DC_STORE_OK);
    redis_stop(&srv);
    for (int i = 0; i < 5; i++) {
        char id[32];

        snprintf(id, sizeof(id), "down-%d", i);
        a = one("vg_new", "x", i % 2);
        ck_assert_int_eq(dc_store_save(s, pool, "env", id, strlen(id), &a, 100 + i),
                         DC_STORE_UNAVAILABLE);
    }
    memset(&a, 0, sizeof(a));
    dc_assignments_set(pool, &a, "vg_old", 6, "stale", 5, 0);
    dc_assignments_set(pool, &a, "vg_more", 7, "m", 1, 1);
    ck_assert_int_eq(dc_store_save(s, pool, "env", "down-0", 6, &a, 200), DC_STORE_UNAVAILABLE);

    redis_start(&srv);
    /* meanwhile another server saved a newer assignment for down-0 */
    freeReplyObject(raw(NULL, 0, "HSET %s %s %s", "p:down-0", "vg_old",
                        "{\"VariationID\":\"newer\",\"Activated\":true}"));
    deadline = apr_time_now() + apr_time_from_sec(10);
    while (dc_store_load(s, pool, "env", "nobody", 6, &out) == DC_STORE_UNAVAILABLE) {
        ck_assert_msg(apr_time_now() < deadline, "no reconnect after Redis restarted");
        apr_sleep(apr_time_from_msec(20));
    }
    for (int i = 0; i < 5; i++) {
        char id[32];

        snprintf(id, sizeof(id), "down-%d", i);
        ck_assert_int_eq(dc_store_load(s, pool, "env", id, strlen(id), &out), DC_STORE_OK);
        expect_assignment(&out, "vg_new", "x", i % 2);
        if (i)
            ck_assert_int_eq(out.ts_ms, 100 + i);
    }
    ck_assert_int_eq(dc_store_load(s, pool, "env", "down-0", 6, &out), DC_STORE_OK);
    expect_assignment(&out, "vg_old", "newer", 1); /* kept, not replaced by the replay */
    expect_assignment(&out, "vg_more", "m", 1);
    reply = raw(NULL, 0, "TTL %s", "p:down-3");
    ck_assert_int_gt(reply->integer, 7776000 - 60);
    freeReplyObject(reply);
    dc_store_close(s);
}
END_TEST

START_TEST(redis_stalled_is_bounded)
{
    dc_store_t *s;
    dc_assignments_t a = one("vg", "v", 0), out;
    apr_time_t start;

    NEED_REDIS();
    s = open_ok(redis_uri("?timeout_ms=50"));
    ck_assert_int_eq(dc_store_save(s, pool, "env", "vis", 3, &a, 1), DC_STORE_OK);
    /* a stopped process still completes TCP handshakes but never answers */
    kill(srv.pid, SIGSTOP);
    start = apr_time_now();
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_UNAVAILABLE);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_UNAVAILABLE);
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(1));
    dc_store_close(s);

    /* a fresh store: the connect succeeds, the command times out */
    s = open_ok(redis_uri("?timeout_ms=50"));
    start = apr_time_now();
    ck_assert_int_eq(dc_store_load(s, pool, "env", "vis", 3, &out), DC_STORE_UNAVAILABLE);
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(1));
    kill(srv.pid, SIGCONT);
    dc_store_close(s);
}
END_TEST

/* ---- the client-side cache (CLIENT TRACKING) ---- */

static long long hgetall_calls(void)
{
    redisReply *reply = raw(NULL, 0, "INFO commandstats");
    const char *at = strstr(reply->str, "cmdstat_hgetall:calls=");
    long long n = at ? atoll(at + strlen("cmdstat_hgetall:calls=")) : 0;

    freeReplyObject(reply);
    return n;
}

static void raw_set_variation(const char *key, const char *variation)
{
    freeReplyObject(raw(NULL, 0, "HSET %s %s %s", key, "vg",
                        apr_psprintf(pool, "{\"VariationID\":\"%s\",\"Activated\":false}",
                                     variation)));
}

/* Loads id until it holds variation (Redis's message may trail the write's
 * reply by microseconds), at most 2 s. Returns the loads it took. */
static int load_until(dc_store_t *s, const char *id, const char *variation)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(2);

    for (int loads = 1;; loads++) {
        dc_assignments_t out;
        const dc_assignment_t *a;

        memset(&out, 0, sizeof(out));
        if (dc_store_load(s, pool, "env", id, strlen(id), &out) == DC_STORE_OK &&
            (a = dc_assignments_find(&out, "vg", 2)) && a->variation_id_len == strlen(variation) &&
            memcmp(a->variation_id, variation, a->variation_id_len) == 0)
            return loads;
        ck_assert_msg(apr_time_now() < deadline, "%s never showed variation %s", id, variation);
        apr_sleep(apr_time_from_msec(1));
    }
}

static void load_times(dc_store_t *s, const char *id, const char *variation, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(load_until(s, id, variation), 1);
}

START_TEST(redis_client_cache_serves_returning_visitors)
{
    dc_store_t *s;
    dc_assignments_t a = one("vg", "mine", 0), out;
    const char *detail;
    long long calls;

    NEED_REDIS();
    s = open_ok(redis_uri(""));
    raw_set_variation("cv", "A");
    freeReplyObject(raw(NULL, 0, "CONFIG RESETSTAT"));
    /* the first two loads ask Redis without tracking (a CGI process stops there); the
     * second subscribes, the third turns tracking on, and from then on nothing is asked */
    load_times(s, "cv", "A", 20);
    ck_assert_int_eq(hgetall_calls(), 3);
    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_OK);
    ck_assert_msg(strstr(detail, "client-side cache on, 17 of 18 loads"), "%s", detail);

    /* another server changes the visitor: the next loads see it, then hit again */
    raw_set_variation("cv", "B");
    load_until(s, "cv", "B");
    calls = hgetall_calls();
    load_times(s, "cv", "B", 10);
    ck_assert_int_eq(hgetall_calls(), calls);

    /* its own save is seen by the very next load */
    ck_assert_int_eq(dc_store_save(s, pool, "env", "cv", 2, &a, 5), DC_STORE_OK);
    ck_assert_int_eq(load_until(s, "cv", "mine"), 1);

    /* a visitor Redis does not have is cached as such, until it appears */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(dc_store_load(s, pool, "env", "nobody", 6, &out), DC_STORE_NOT_FOUND);
    calls = hgetall_calls();
    ck_assert_int_eq(dc_store_load(s, pool, "env", "nobody", 6, &out), DC_STORE_NOT_FOUND);
    ck_assert_int_eq(hgetall_calls(), calls);
    raw_set_variation("nobody", "C");
    load_until(s, "nobody", "C");

    /* FLUSHALL: everything goes */
    load_times(s, "cv", "mine", 2);
    freeReplyObject(raw(NULL, 0, "FLUSHALL"));
    {
        apr_time_t deadline = apr_time_now() + apr_time_from_sec(2);

        while (dc_store_load(s, pool, "env", "cv", 2, &out) != DC_STORE_NOT_FOUND) {
            ck_assert_msg(apr_time_now() < deadline, "FLUSHALL did not empty the cache");
            apr_sleep(apr_time_from_msec(1));
        }
    }
    dc_store_close(s);

    /* client_cache=0: every load asks Redis */
    s = open_ok(redis_uri("?client_cache=0"));
    raw_set_variation("cv", "A");
    calls = hgetall_calls();
    load_times(s, "cv", "A", 10);
    ck_assert_int_eq(hgetall_calls(), calls + 10);
    dc_store_close(s);
}
END_TEST

/* Redis tracks a key for the connection that read it and forgets that connection
 * when it closes: losing a data connection or the subscription drops the cache. */
START_TEST(redis_client_cache_connection_loss)
{
    static const char *const kills[] = {"CLIENT KILL TYPE normal", "CLIENT KILL TYPE pubsub"};
    dc_store_t *s;

    NEED_REDIS();
    s = open_ok(redis_uri(""));
    for (int k = 0; k < 2; k++) {
        long long calls;

        raw_set_variation("lost", "A");
        load_until(s, "lost", "A");
        load_times(s, "lost", "A", 5);
        calls = hgetall_calls();
        load_times(s, "lost", "A", 5);
        ck_assert_int_eq(hgetall_calls(), calls); /* cached */

        freeReplyObject(raw(NULL, 0, kills[k]));
        /* Redis will not say that this changed: nothing tracks "lost" any more */
        raw_set_variation("lost", "B");
        load_until(s, "lost", "B");
        /* and the cache comes back by itself (a subscription is retried after 100 ms) */
        apr_sleep(apr_time_from_msec(150));
        load_times(s, "lost", "B", 10);
        calls = hgetall_calls();
        load_times(s, "lost", "B", 5);
        ck_assert_int_eq(hgetall_calls(), calls);
    }
    dc_store_close(s);
}
END_TEST

static int log_lines_10338;

static void refusal_sink(void *baton, dc_log_level_e level, const char *msg)
{
    if (strstr(msg, "DC10338"))
        log_lines_10338++;
}

/* A Redis that refuses CLIENT (an ACL here; a proxy or a renamed command elsewhere): one
 * warning, and every load asks Redis. */
START_TEST(redis_client_cache_refused)
{
    dc_store_t *s;
    const char *detail;
    long long calls;

    NEED_REDIS();
    freeReplyObject(raw(NULL, 0, "ACL SETUSER bob on >pw ~* +@all -client"));
    s = open_ok(apr_psprintf(pool, "redis://bob:pw@127.0.0.1:%d", srv.port));
    raw_set_variation("r", "A");
    dc_log_set_sink(refusal_sink, NULL, DC_LOG_WARN);
    calls = hgetall_calls();
    load_times(s, "r", "A", 10);
    ck_assert_int_eq(hgetall_calls(), calls + 10);
    ck_assert_int_eq(log_lines_10338, 1);
    dc_log_set_sink(NULL, NULL, DC_LOG_ERROR);
    ck_assert_int_eq(dc_store_health(s, &detail), DC_STORE_HEALTH_OK);
    ck_assert_msg(strstr(detail, "client-side cache off: CLIENT ID"), "%s", detail);
    dc_store_close(s);
}
END_TEST

#define REDIS_THREADS 8
#define REDIS_OPS 150
static dc_store_t *threads_store;

static void *redis_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    apr_pool_t *p;
    intptr_t failures = 0;

    apr_pool_create(&p, NULL);
    for (int i = 0; i < REDIS_OPS; i++) {
        char id[32], vg[32], v[32];
        dc_assignments_t a, out;

        snprintf(id, sizeof(id), "t%d-%d", t, i);
        snprintf(vg, sizeof(vg), "vg-%d-%d", t, i);
        snprintf(v, sizeof(v), "v-%d-%d", t, i);
        memset(&a, 0, sizeof(a));
        dc_assignments_set(p, &a, vg, strlen(vg), v, strlen(v), 1);
        if (dc_store_save(threads_store, p, "env", id, strlen(id), &a, i) != DC_STORE_OK ||
            dc_store_save(threads_store, p, "env", "shared", 6, &a, i) != DC_STORE_OK ||
            dc_store_load(threads_store, p, "env", id, strlen(id), &out) != DC_STORE_OK ||
            !dc_assignments_find(&out, vg, strlen(vg)))
            failures++;
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    return (void *)failures;
}

START_TEST(redis_many_threads)
{
    pthread_t th[REDIS_THREADS];
    dc_assignments_t out;

    NEED_REDIS();
    threads_store = open_ok(redis_uri("?timeout_ms=2000"));
    for (int t = 0; t < REDIS_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, redis_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < REDIS_THREADS; t++) {
        void *failures;

        pthread_join(th[t], &failures);
        ck_assert_int_eq((intptr_t)failures, 0);
    }
    ck_assert_int_eq(dc_store_load(threads_store, pool, "env", "shared", 6, &out), DC_STORE_OK);
    ck_assert_int_eq(out.n, REDIS_THREADS * REDIS_OPS > DC_STORE_MAX_ASSIGNMENTS
                                ? DC_STORE_MAX_ASSIGNMENTS
                                : REDIS_THREADS * REDIS_OPS);
    dc_store_close(threads_store);
}
END_TEST

/* Threads of one process on one DBM file (the in-process mutex's job). */
START_TEST(dbm_many_threads)
{
    const char *type = dbm_types[_i];
    pthread_t th[REDIS_THREADS];
    dc_assignments_t out;

    if (!dbm_type_available(type))
        return;
    threads_store = open_ok(dbm_uri(type, "threads"));
    for (int t = 0; t < REDIS_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, redis_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < REDIS_THREADS; t++) {
        void *failures;

        pthread_join(th[t], &failures);
        /* sdbm cannot hold the big shared record: only its saves may fail */
        if (strcmp(type, "sdbm") != 0)
            ck_assert_int_eq((intptr_t)failures, 0);
    }
    if (strcmp(type, "sdbm") != 0) {
        ck_assert_int_eq(dc_store_load(threads_store, pool, "env", "shared", 6, &out),
                         DC_STORE_OK);
        ck_assert_int_eq(out.n, REDIS_THREADS * REDIS_OPS > DC_STORE_MAX_ASSIGNMENTS
                                    ? DC_STORE_MAX_ASSIGNMENTS
                                    : REDIS_THREADS * REDIS_OPS);
    }
    for (int t = 0; t < REDIS_THREADS; t++)
        for (int i = 0; i < REDIS_OPS; i += 7) {
            char id[32];

            snprintf(id, sizeof(id), "t%d-%d", t, i);
            ck_assert_int_eq(dc_store_load(threads_store, pool, "env", id, strlen(id), &out),
                             DC_STORE_OK);
        }
    dc_store_close(threads_store);
}
END_TEST

START_TEST(redis_uris)
{
    static const char *const bad[] = {
        "redis://",           "redis://:6379",           "redis://h:0",
        "redis://h:99999",    "redis://h:1/x",           "redis://h:1?bogus=1",
        "redis://user@h:1",   "redis://h:1?timeout_ms=0", "redis://h:1?ttl=-1",
        "redis://:@h:1",      "redis://u:p%zz@h",        "redis://u:p%00@h",
        "redis://[::1:6379",  "redis://h:1?prefix",      "redis://h:1/2/3",
    };
    char err[512];
    dc_store_t *s;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(dc_store_open(pool, bad[i], err, sizeof(err)) == NULL, "accepted %s",
                      bad[i]);
        ck_assert_msg(err[0] != '\0', "no message for %s", bad[i]);
    }
    s = open_ok("redis://:pw@[::1]:6390/2?prefix=a%2Fb&timeout_ms=20&ttl=100");
    ck_assert_str_eq(s->prefix, "a/b");
    ck_assert_ptr_null(strstr(s->uri, "pw"));
    ck_assert_ptr_nonnull(strstr(s->uri, "[::1]:6390/2"));
    s = open_ok("redis://localhost");
    ck_assert_ptr_nonnull(strstr(s->uri, "localhost:6379/0"));
#ifndef DC_HAVE_HIREDIS_SSL
    ck_assert_ptr_null(dc_store_open(pool, "rediss://h:6380", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "TLS"));
#endif
}
END_TEST

/* ---- Flagship settings ---- */

static const char *table_get(void *baton, const char *name)
{
    const char *const *kv = baton;

    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static const char *uri_of(const char *const *kv, char *err, size_t len)
{
    return dc_store_uri_from_flagship(pool, table_get, (void *)kv, err, len);
}

/* A mistyped URI is echoed in the error, but never its password. */
START_TEST(unknown_uri_masked)
{
    char err[512];

    ck_assert_ptr_null(dc_store_open(pool, "rediss//app:s3cret@cache:6379", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "unknown store"));
    ck_assert_ptr_null(strstr(err, "s3cret"));
    ck_assert_ptr_null(dc_store_open(pool, "redis+tls://app:p%40ss@word@cache/0", err,
                                     sizeof(err)));
    ck_assert_msg(strstr(err, "redis+tls://app:***@cache/0") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "word"));
    ck_assert_str_eq(dc_store_uri_masked(pool, "dbm:/var/lib/x"), "dbm:/var/lib/x");
    ck_assert_str_eq(dc_store_uri_masked(pool, "x://h/p@q:r"), "***@q:r");
    ck_assert_str_eq(dc_store_uri_masked(pool, "redis://u:pa/ss@h"), "***@h");
}
END_TEST

START_TEST(flagship_settings)
{
    static const char *const none[] = {NULL};
    static const char *const memory[] = {"CACHE_TYPE", "memory", NULL};
    static const char *const local[] = {"CACHE_TYPE", "local", NULL};
    static const char *const local_path[] = {"CACHE_TYPE", "local", "CACHE_OPTIONS_DBPATH",
                                             "/var/lib/x/cache", NULL};
    static const char *const redis_default[] = {"CACHE_TYPE", "redis", NULL};
    static const char *const redis_full[] = {"CACHE_TYPE", "redis", "CACHE_OPTIONS_REDISHOST",
                                             "10.0.0.5:6380", "CACHE_OPTIONS_REDISUSERNAME",
                                             "app user", "CACHE_OPTIONS_REDISPASSWORD",
                                             "p@ss:w/rd%", "CACHE_OPTIONS_REDISDB", "3",
                                             "CACHE_OPTIONS_REDISTTL", "1h30m",
                                             "CACHE_OPTIONS_REDISTLS", "false", NULL};
    static const char *const redis_tls[] = {"CACHE_TYPE", "redis", "CACHE_OPTIONS_REDISTLS",
                                            "true", NULL};
    static const char *const dynamo[] = {"CACHE_TYPE", "dynamo", "CACHE_OPTIONS_DYNAMOGETTIMEOUT",
                                         "2s", NULL};
    static const char *const bad_ttl[] = {"CACHE_TYPE", "redis", "CACHE_OPTIONS_REDISTTL",
                                          "7776000", NULL};
    static const char *const bad_db[] = {"CACHE_TYPE", "redis", "CACHE_OPTIONS_REDISDB", "-1",
                                         NULL};
    static const char *const bad_tls[] = {"CACHE_TYPE", "redis", "CACHE_OPTIONS_REDISTLS", "yes",
                                          NULL};
    char err[256];
    const char *uri;
    dc_store_t *s;

    ck_assert_str_eq(uri_of(none, err, sizeof(err)), "none");
    ck_assert_str_eq(uri_of(memory, err, sizeof(err)), "memory");
    ck_assert_str_eq(uri_of(local, err, sizeof(err)), "dbm:cache_data");
    ck_assert_str_eq(uri_of(local_path, err, sizeof(err)), "dbm:/var/lib/x/cache");
    {
        const char *local_dir[] = {"CACHE_TYPE", "local", "CACHE_OPTIONS_DBPATH", tmpdir, NULL};

        ck_assert_str_eq(uri_of(local_dir, err, sizeof(err)),
                         apr_pstrcat(pool, "dbm:", tmpdir, "/decision-assignments", NULL));
        open_ok(uri_of(local_dir, err, sizeof(err)));
    }
    ck_assert_str_eq(uri_of(redis_default, err, sizeof(err)),
                     "redis://localhost:6379/0?ttl=7776000");
    uri = uri_of(redis_full, err, sizeof(err));
    ck_assert_str_eq(uri, "redis://app%20user:p%40ss%3Aw%2Frd%25@10.0.0.5:6380/3?ttl=5400");
    ck_assert_str_eq(uri_of(redis_tls, err, sizeof(err)), "rediss://localhost:6379/0?ttl=7776000");
    ck_assert_str_eq(uri_of(dynamo, err, sizeof(err)),
                     "dynamo://visitor-assignments?pk_field=id&pk_separator=.&get_timeout_ms=2000");
    ck_assert_ptr_null(uri_of(bad_ttl, err, sizeof(err)));
    ck_assert_ptr_null(uri_of(bad_db, err, sizeof(err)));
    ck_assert_ptr_null(uri_of(bad_tls, err, sizeof(err)));

    /* the escaped URI opens, and the password does not show in the store's URI */
    s = open_ok(uri);
    ck_assert_str_eq(s->uri, "redis://app user:***@10.0.0.5:6380/3?ttl=5400");

    ck_assert_int_eq(dc_store_parse_go_duration_s("2160h"), 7776000);
    ck_assert_int_eq(dc_store_parse_go_duration_s("1.5h"), 5400);
    ck_assert_int_eq(dc_store_parse_go_duration_s("90s"), 90);
    ck_assert_int_eq(dc_store_parse_go_duration_s("500ms"), 1);
    ck_assert_int_eq(dc_store_parse_go_duration_s("1m0.5s"), 61);
    ck_assert_int_eq(dc_store_parse_go_duration_s("0"), 0);
    ck_assert_int_eq(dc_store_parse_go_duration_s("12"), -1);
    ck_assert_int_eq(dc_store_parse_go_duration_s("h"), -1);
    ck_assert_int_eq(dc_store_parse_go_duration_s("-1h"), -1);
    ck_assert_int_eq(dc_store_parse_go_duration_s("1x"), -1);
    ck_assert_int_eq(dc_store_parse_go_duration_s(""), -1);
}
END_TEST

/* Every truncation and byte corruption of a real record, decoded from an exact-size heap copy so
 * the sanitizer sees any read past the end. */
START_TEST(record_codec_survives_garbage)
{
    dc_assignments_t a, out;
    size_t len, flen;
    char *rec, *field;

    memset(&a, 0, sizeof(a));
    dc_assignments_set(pool, &a, "vg1", 3, "v\"1", 3, 1);
    dc_assignments_set(pool, &a, "vg\xc3\xa9", 4, "v2", 2, 0);
    a.ts_ms = 1700000000000LL;
    rec = dc_assignments_encode(pool, &a, &len);
    ck_assert_int_eq(dc_assignments_decode(pool, rec, len, &out), 0);
    ck_assert_int_eq(out.n, 2);
    expect_assignment(&out, "vg1", "v\"1", 1);
    ck_assert_int_eq(out.ts_ms, a.ts_ms);
    field = dc_assignment_encode_field(pool, &a.items[0], &flen);
    ck_assert_str_eq(field, "{\"VariationID\":\"v\\\"1\",\"Activated\":true}");

    for (size_t cut = 0; cut <= len; cut++) {
        char *copy = malloc(cut ? cut : 1);

        memcpy(copy, rec, cut);
        dc_assignments_decode(pool, copy, cut, &out);
        ck_assert_int_le(out.n, DC_STORE_MAX_ASSIGNMENTS);
        for (int flip = 0; flip < 256 && cut == len; flip += 37)
            for (size_t at = 0; at < len; at++) {
                char saved = copy[at];
                dc_assignment_t one_out;

                copy[at] = (char)(saved ^ (flip | 1));
                if (dc_assignments_decode(pool, copy, len, &out) == 0)
                    for (size_t i = 0; i < out.n; i++)
                        ck_assert_int_le(out.items[i].variation_id_len, DC_STORE_MAX_FIELD_LEN);
                dc_assignment_decode_field(pool, "vg", 2, copy, len, &one_out);
                copy[at] = saved;
            }
        free(copy);
    }
}
END_TEST

/* The record reader has a fast path for what dc_assignments_encode writes and falls back on jansson
 * for anything else: a leading space sends the same text down the jansson path, and both must give
 * the same answer for a canonical record and every truncation and corruption of it. */
static void expect_same_decoding(const char *rec, size_t len)
{
    char *spaced = malloc(len + 1);
    dc_assignments_t fast, slow;
    int rc_fast, rc_slow;

    spaced[0] = ' ';
    memcpy(spaced + 1, rec, len);
    rc_fast = dc_assignments_decode(pool, rec, len, &fast);
    rc_slow = dc_assignments_decode(pool, spaced, len + 1, &slow);
    free(spaced);
    ck_assert_msg(rc_fast == rc_slow, "%.*s: %d (fast) != %d (jansson)", (int)len, rec, rc_fast,
                  rc_slow);
    if (rc_fast != 0)
        return;
    ck_assert_int_eq(fast.n, slow.n);
    ck_assert(fast.ts_ms == slow.ts_ms);
    for (size_t i = 0; i < fast.n; i++)
        expect_assignment(&slow, fast.items[i].vg_id, fast.items[i].variation_id,
                          fast.items[i].activated);
}

/* A view (hashed past 16 entries) answers as the plain list functions do, from a few
 * entries to many, duplicates and replacements included; a long record round-trips. */
START_TEST(assignments_view_agrees_with_the_list)
{
    dc_assignments_t plain = {0}, viewed = {0}, merged = {0}, decoded;
    dc_assignments_view_t v;
    char id[32], var[32], dup[48];
    unsigned x = 12345;
    char *text;
    size_t len;

    dc_assignments_view_init(pool, &v, &viewed, 0);
    ck_assert_ptr_null(v.slots); /* short: scanned */
    for (int i = 0; i < 1500; i++) {
        x = x * 1103515245u + 12345u;
        snprintf(id, sizeof(id), "vg%u", (x >> 8) % 400); /* repeats: replacements */
        snprintf(var, sizeof(var), "v%d", i);
        dc_assignments_set(pool, &plain, id, strlen(id), var, strlen(var), i % 3 == 0);
        dc_assignments_view_set(pool, &v, id, strlen(id), var, strlen(var), i % 3 == 0);
        ck_assert_uint_eq(viewed.n, plain.n);
    }
    ck_assert_ptr_nonnull(v.slots);
    ck_assert_uint_gt(plain.n, 300);
    for (size_t i = 0; i < plain.n; i++) {
        const dc_assignment_t *a = &plain.items[i], *b = &viewed.items[i];

        ck_assert_str_eq(a->vg_id, b->vg_id);
        ck_assert_str_eq(a->variation_id, b->variation_id);
        ck_assert_int_eq(a->activated, b->activated);
        ck_assert_ptr_eq(dc_assignments_view_find(&v, a->vg_id, a->vg_id_len), b);
    }
    ck_assert_ptr_null(dc_assignments_view_find(&v, "vg400", 5));
    ck_assert_ptr_null(dc_assignments_view_find(&v, "vg4", 2)); /* a prefix of ids */

    /* a list with a duplicate (a plugin may return one): the first is found, as by the scan */
    snprintf(dup, sizeof(dup), "%s", plain.items[7].vg_id);
    dc_assignment_put(pool, dc_assignments_append(pool, &plain, dup, strlen(dup)), "late", 4, 1);
    dc_assignments_view_init(pool, &v, &plain, 0);
    ck_assert_ptr_eq(dc_assignments_view_find(&v, dup, strlen(dup)), &plain.items[7]);

    /* merge and the record codec over many entries */
    dc_assignments_merge(pool, &merged, &viewed, 42);
    ck_assert_uint_eq(merged.n, viewed.n);
    text = dc_assignments_encode(pool, &merged, &len);
    ck_assert_int_eq(dc_assignments_decode(pool, text, len, &decoded), 0);
    ck_assert_uint_eq(decoded.n, merged.n);
    ck_assert_int_eq(decoded.ts_ms, 42);
    for (size_t i = 0; i < decoded.n; i++)
        ck_assert_str_eq(decoded.items[i].variation_id,
                         dc_assignments_find(&merged, decoded.items[i].vg_id,
                                             decoded.items[i].vg_id_len)->variation_id);
}
END_TEST

START_TEST(record_fast_reader_agrees_with_jansson)
{
    static const char *const samples[] = {
        "{\"Timestamp\":0,\"Assignments\":{}}",
        "{\"Timestamp\":-12,\"Assignments\":{\"a\":{\"VariationID\":\"b\",\"Activated\":false}}}",
        "{\"Timestamp\":01,\"Assignments\":{}}",
        "{\"Timestamp\":1e3,\"Assignments\":{}}",
        "{\"Timestamp\":1.5,\"Assignments\":{}}",
        "{\"Timestamp\":123456789012345678901,\"Assignments\":{}}",
        "{\"Timestamp\":1,\"Assignments\":{}} ",
        "{\"Timestamp\":1,\"Assignments\":{}}x",
        "{\"Timestamp\":1,\"Assignments\":{\"a\":{\"VariationID\":\"b\",\"Activated\":true},"
        "\"a\":{\"VariationID\":\"c\",\"Activated\":true}}}",
        "{\"Timestamp\":1,\"Assignments\":{\"\":{\"VariationID\":\"b\",\"Activated\":true}}}",
        "{\"Timestamp\":1,\"Assignments\":{\"a\":{\"VariationID\":\"\",\"Activated\":true}}}",
        "{\"Timestamp\":1,\"Assignments\":{\"a\":{\"VariationID\":\"b\",\"Activated\":true}},\"x\":1}",
    };
    dc_assignments_t a;
    size_t len;
    char *rec;

    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        expect_same_decoding(samples[i], strlen(samples[i]));
    memset(&a, 0, sizeof(a));
    dc_assignments_set(pool, &a, "vg_ab", 5, "v_ab_red", 8, 1);
    dc_assignments_set(pool, &a, "vg_vip", 6, "v_vip", 5, 0);
    dc_assignments_set(pool, &a, "vg_0", 4, "v0", 2, 0);
    a.ts_ms = 1700000000123LL;
    rec = dc_assignments_encode(pool, &a, &len);
    expect_same_decoding(rec, len);
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = malloc(cut ? cut : 1);

        memcpy(copy, rec, cut);
        expect_same_decoding(copy, cut);
        free(copy);
    }
    for (int flip = 1; flip < 256; flip += 18) {
        char *copy = malloc(len);

        for (size_t at = 0; at < len; at++) {
            memcpy(copy, rec, len);
            copy[at] = (char)(copy[at] ^ flip);
            expect_same_decoding(copy, len);
        }
        free(copy);
    }
    /* one Redis hash field, the same way */
    rec = dc_assignment_encode_field(pool, &a.items[0], &len);
    for (int flip = 0; flip < 256; flip += 17) {
        char *copy = malloc(len + 1);

        for (size_t at = 0; at < len; at++) {
            dc_assignment_t fast, slow;
            int rc_fast, rc_slow;

            copy[0] = ' ';
            memcpy(copy + 1, rec, len);
            copy[1 + at] = (char)(copy[1 + at] ^ flip);
            rc_fast = dc_assignment_decode_field(pool, "vg", 2, copy + 1, len, &fast);
            rc_slow = dc_assignment_decode_field(pool, "vg", 2, copy, len + 1, &slow);
            ck_assert_int_eq(rc_fast, rc_slow);
            if (rc_fast == 0) {
                ck_assert_int_eq(fast.variation_id_len, slow.variation_id_len);
                ck_assert_mem_eq(fast.variation_id, slow.variation_id, fast.variation_id_len);
                ck_assert_int_eq(fast.activated, slow.activated);
            }
        }
        free(copy);
    }
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("memory and dbm");
    TCase *tr = tcase_create("redis");

    /* the cases provoke warnings on purpose; DC_TEST_LOG=1 shows them */
    dc_log_set_sink(NULL, NULL, getenv("DC_TEST_LOG") ? DC_LOG_WARN : DC_LOG_ERROR);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, record_codec_survives_garbage);
    tcase_add_test(tc, record_fast_reader_agrees_with_jansson);
    tcase_add_test(tc, assignments_view_agrees_with_the_list);
    tcase_add_test(tc, registry_and_options);
    tcase_add_test(tc, outage_window_probe_and_queue);
    tcase_add_test(tc, memory_contract);
    tcase_add_loop_test(tc, dbm_contract, 0, N_DBM_TYPES);
    tcase_add_test(tc, dbm_bad_uris);
    tcase_add_loop_test(tc, dbm_concurrent_processes, 0, N_DBM_TYPES);
    tcase_add_loop_test(tc, dbm_other_process_writes_seen, 0, N_DBM_TYPES);
    tcase_add_loop_test(tc, dbm_reopen_leaks_nothing, 0, N_DBM_TYPES);
    tcase_add_loop_test(tc, dbm_corrupt_file_bypassed, 0, N_DBM_TYPES);
    tcase_add_loop_test(tc, dbm_garbage_record_ignored, 0, N_DBM_TYPES);
    tcase_add_loop_test(tc, dbm_many_threads, 0, N_DBM_TYPES);
    tcase_add_test(tc, redis_uris);
    tcase_add_test(tc, flagship_settings);
    tcase_add_test(tc, unknown_uri_masked);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tr, redis_setup, redis_teardown);
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, redis_contract);
    tcase_add_test(tr, redis_decision_api_layout);
    tcase_add_test(tr, redis_prefix);
    tcase_add_test(tr, redis_acl_user_and_select);
    tcase_add_test(tr, redis_garbage_ignored);
    tcase_add_test(tr, redis_down_then_back);
    tcase_add_test(tr, redis_stalled_is_bounded);
    tcase_add_test(tr, redis_outage_saves_replayed);
    tcase_add_test(tr, redis_idle_connection_closed_by_server);
    tcase_add_test(tr, redis_many_threads);
    tcase_add_test(tr, redis_client_cache_serves_returning_visitors);
    tcase_add_test(tr, redis_client_cache_connection_loss);
    tcase_add_test(tr, redis_client_cache_refused);
    suite_add_tcase(s, tr);
    return s;
}

DC_TEST_MAIN(store_suite)
