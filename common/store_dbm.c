/*
 * The DBM store: sticky assignments in one apr_dbm file shared by every
 * process and thread of a server (httpd children, decision-fcgi threads).
 *
 * URI: dbm:PATH or dbm:TYPE:PATH, TYPE one of default, gdbm, sdbm, db (the
 * names apr_dbm_open_ex() takes; which ones exist depends on how apr-util was
 * built: Debian ships sdbm built in and gdbm/db as loadable drivers).
 *
 * Key: prefix + env_id + "." + id, the key the Flagship decision-api's local
 * cache uses. The key stays unambiguous for ids of any bytes because the only
 * separator is the first "." after the prefix: environment ids containing a
 * "." or a NUL are refused (Flagship's are [a-z0-9]), so two different
 * (env_id, id) pairs can never make the same key. apr_dbm keys are counted
 * byte strings, so NUL and any other byte in a visitor id is kept as is.
 * Value: the shared record (dc_assignments_encode), the same as the memory
 * store's.
 *
 * Concurrency. apr_dbm (and gdbm, Berkeley DB without an environment, sdbm)
 * is not safe for concurrent writers, and a DBM handle caches pages, so a
 * handle kept open would not see other processes' writes. Every operation
 * therefore opens the file, works and closes it, under two locks:
 *   - apr_file_lock on a sidecar file PATH.lock, shared for a load and
 *     exclusive for a save's read-modify-write, between processes;
 *   - a thread mutex within the process, because the file lock does not
 *     separate threads: apr_file_lock is flock() on Debian's APR (a lock of
 *     the open file description) and fcntl() elsewhere (a lock of the
 *     process); either way two threads of one process would share it.
 * With flock(), a descriptor inherited over fork() shares its lock with the
 * parent and every sibling, so each process must lock through a descriptor
 * of its own: child_init reopens it, and so does the first operation in a
 * process whose pid differs from the opener's (for callers that fork without
 * calling child_init). A lock wait is as long as the other processes' DBM
 * operations on a local file (a process that dies releases its lock). A wait
 * with a timeout (non-blocking tries and naps) was tried and rejected: under
 * contention the sleepers starve behind processes that re-lock at once, and
 * every timeout is a returning visitor decided without their assignment.
 * Keep the file on a local file system.
 *
 * Failures. A file that cannot be opened (corrupt, unreadable, driver
 * missing) makes the operation return DC_STORE_UNAVAILABLE, and the engine
 * decides from the hash alone; it is logged once per streak of failures and
 * once when the store recovers, and health() reports it. A record that does
 * not decode is logged (once per streak) and treated as absent; the next save
 * for that id replaces it.
 *
 * Cost: an open/close of the DBM file per operation (a few system calls and
 * page-cache reads), plus two uncontended locks.
 */
#include "dc_store.h"
#include "dc_log.h"

#include <apr_dbm.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Bigger records are garbage: DC_STORE_MAX_ASSIGNMENTS entries of bounded fields fit well below. */
#define DBM_MAX_RECORD (4 * 1024 * 1024)
#define DBM_FILE_PERMS                                                                             \
    (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD | APR_FPROT_GWRITE)

typedef struct {
    const char *type;
    const char *path;
    const char *lock_path;
    apr_pool_t *pool;        /* the store's lifetime */
    apr_file_t *lock_file;
    pid_t lock_pid;          /* the process that opened lock_file */
    apr_thread_mutex_t *mutex;
    /* Under mutex: */
    int failing;             /* the last operation could not use the file */
    int garbage_logged;      /* a bad record was logged and no good one decoded since */
    dc_store_log_limit_t too_big_log;
    char error[200];         /* why it failed, for health() */
} dbm_store_t;

static const char *const dbm_types[] = {"default", "gdbm", "sdbm", "db"};

static void note_failure(dbm_store_t *d, const char *what, apr_status_t rv, const char *extra)
{
    char msg[120];

    /* DBM libraries answer with codes of their own (Berkeley DB's are negative) */
    if (rv > 0 && rv < APR_OS_START_ERROR)
        apr_strerror(rv, msg, sizeof(msg));
    else
        snprintf(msg, sizeof(msg), "not a readable %s DBM file (corrupt, another format or no "
                                   "permission)", d->type);
    snprintf(d->error, sizeof(d->error), "%s: %s%s%s", what, msg, extra ? ": " : "",
             extra ? extra : "");
    if (!d->failing)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10300) "store dbm:%s:%s: %s; decisions use the hash alone until it "
                              "works again (check the file and its permissions)",
               d->type, d->path, d->error);
    d->failing = 1;
}

static void note_success(dbm_store_t *d)
{
    if (d->failing)
        dc_log(DC_LOG_INFO, DCLOGNO(10301) "store dbm:%s:%s: working again", d->type, d->path);
    d->failing = 0;
}

/* Read and write: an fcntl() shared lock needs a descriptor open for reading. */
static apr_status_t open_lock_file(dbm_store_t *d)
{
    apr_status_t rv;

    if (d->lock_file)
        apr_file_close(d->lock_file);
    d->lock_file = NULL;
    rv = apr_file_open(&d->lock_file, d->lock_path,
                       APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_BINARY,
                       DBM_FILE_PERMS, d->pool);
    if (rv != APR_SUCCESS)
        d->lock_file = NULL;
    d->lock_pid = getpid();
    return rv;
}

/* Takes both locks; on failure nothing is held. */
static apr_status_t lock_store(dbm_store_t *d, int type)
{
    apr_status_t rv = APR_SUCCESS;

    apr_thread_mutex_lock(d->mutex);
    if (d->lock_pid != getpid())
        rv = open_lock_file(d); /* forked without child_init */
    if (rv == APR_SUCCESS)
        rv = d->lock_file ? apr_file_lock(d->lock_file, type) : APR_EBADF;
    if (rv != APR_SUCCESS) {
        note_failure(d, "cannot lock", rv, d->lock_path);
        apr_thread_mutex_unlock(d->mutex);
    }
    return rv;
}

static void unlock_store(dbm_store_t *d)
{
    apr_file_unlock(d->lock_file);
    apr_thread_mutex_unlock(d->mutex);
}

static int dbm_file_exists(dbm_store_t *d, apr_pool_t *p)
{
    const char *used1 = NULL, *used2 = NULL;
    apr_finfo_t fi;

    if (apr_dbm_get_usednames_ex(p, d->type, d->path, &used1, &used2) != APR_SUCCESS || !used1)
        return 1; /* unknown: do not treat the failure as "no file yet" */
    return apr_stat(&fi, used1, APR_FINFO_TYPE, p) == APR_SUCCESS;
}

static char *make_key(apr_pool_t *p, const dc_store_t *s, const char *env_id, const char *id,
                      size_t id_len, size_t *len)
{
    size_t plen = strlen(s->prefix), elen = strlen(env_id);
    char *key;

    if (memchr(env_id, '.', elen))
        return NULL;
    key = apr_palloc(p, plen + elen + 1 + id_len);
    memcpy(key, s->prefix, plen);
    memcpy(key + plen, env_id, elen);
    key[plen + elen] = '.';
    memcpy(key + plen + elen + 1, id, id_len);
    *len = plen + elen + 1 + id_len;
    return key;
}

/* Reads the raw record of key from an open file into p; NULL when absent. */
static char *fetch_record(apr_pool_t *p, apr_dbm_t *db, char *key, size_t key_len,
                          size_t *len, apr_status_t *rv)
{
    apr_datum_t k = {key, key_len}, v = {NULL, 0};
    char *copy;

    *rv = apr_dbm_fetch(db, k, &v);
    if (*rv != APR_SUCCESS || !v.dptr)
        return NULL;
    if (v.dsize > DBM_MAX_RECORD) {
        apr_dbm_freedatum(db, v);
        *len = 0;
        return apr_pstrdup(p, ""); /* decodes as garbage */
    }
    copy = apr_pmemdup(p, v.dptr, v.dsize);
    *len = v.dsize;
    apr_dbm_freedatum(db, v);
    return copy;
}

static int decode_record(dbm_store_t *d, apr_pool_t *p, const char *data, size_t len,
                         dc_assignments_t *out)
{
    if (dc_assignments_decode(p, data, len, out) == 0) {
        d->garbage_logged = 0;
        return 0;
    }
    if (!d->garbage_logged)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10302) "store dbm:%s:%s: a record of %zu bytes is not an assignment "
                              "record; ignored (it is replaced on the next save for that id)",
               d->type, d->path, len);
    d->garbage_logged = 1;
    memset(out, 0, sizeof(*out));
    return -1;
}

static dc_store_status_e dbm_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                  const char *id, size_t id_len, dc_assignments_t *out)
{
    dbm_store_t *d = s->impl;
    size_t key_len, len = 0;
    char *key = make_key(p, s, env_id, id, id_len, &key_len), *data = NULL;
    apr_dbm_t *db;
    apr_status_t rv;
    dc_store_status_e status;

    if (!key)
        return DC_STORE_UNAVAILABLE;
    if (lock_store(d, APR_FLOCK_SHARED) != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    rv = apr_dbm_open_ex(&db, d->type, d->path, APR_DBM_READONLY, DBM_FILE_PERMS, p);
    if (rv != APR_SUCCESS) {
        if (!dbm_file_exists(d, p)) {
            status = DC_STORE_NOT_FOUND; /* removed since: the next save creates it again */
            note_success(d);
        } else {
            note_failure(d, "cannot open", rv, NULL);
            status = DC_STORE_UNAVAILABLE;
        }
        unlock_store(d);
        return status;
    }
    data = fetch_record(p, db, key, key_len, &len, &rv);
    apr_dbm_close(db);
    note_success(d);
    if (!data) {
        unlock_store(d);
        return DC_STORE_NOT_FOUND;
    }
    status = decode_record(d, p, data, len, out) == 0 && out->n > 0 ? DC_STORE_OK
                                                                   : DC_STORE_NOT_FOUND;
    unlock_store(d);
    return status;
}

static dc_store_status_e dbm_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                  const char *id, size_t id_len, const dc_assignments_t *changes,
                                  int64_t now_ms)
{
    dbm_store_t *d = s->impl;
    size_t key_len, len = 0, value_len;
    char *key = make_key(p, s, env_id, id, id_len, &key_len), *data;
    dc_assignments_t merged;
    apr_datum_t k, v;
    apr_dbm_t *db;
    apr_status_t rv;

    if (!key) {
        dc_log(DC_LOG_DEBUG, DCLOGNO(10303) "store dbm: environment id with a \".\" not stored");
        return DC_STORE_UNAVAILABLE;
    }
    if (lock_store(d, APR_FLOCK_EXCLUSIVE) != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    rv = apr_dbm_open_ex(&db, d->type, d->path, APR_DBM_RWCREATE, DBM_FILE_PERMS, p);
    if (rv != APR_SUCCESS) {
        note_failure(d, "cannot open for writing", rv, NULL);
        unlock_store(d);
        return DC_STORE_UNAVAILABLE;
    }
    memset(&merged, 0, sizeof(merged));
    data = fetch_record(p, db, key, key_len, &len, &rv);
    if (data)
        decode_record(d, p, data, len, &merged);
    for (size_t i = 0; i < changes->n; i++) {
        if (merged.n >= DC_STORE_MAX_ASSIGNMENTS &&
            !dc_assignments_find(&merged, changes->items[i].vg_id, changes->items[i].vg_id_len))
            continue;
        dc_assignments_set(p, &merged, changes->items[i].vg_id, changes->items[i].vg_id_len,
                           changes->items[i].variation_id, changes->items[i].variation_id_len,
                           changes->items[i].activated);
    }
    merged.ts_ms = now_ms;
    k.dptr = key;
    k.dsize = key_len;
    v.dptr = dc_assignments_encode(p, &merged, &value_len);
    v.dsize = value_len;
    rv = apr_dbm_store(db, k, v);
    if (rv != APR_SUCCESS) {
        char why[120];

        apr_dbm_geterror(db, NULL, why, sizeof(why));
        apr_dbm_close(db);
        /* sdbm refuses a key + value over about 1000 bytes: that record cannot be kept, but
         * the file is fine, so this is not a failure streak. */
        dc_store_log_limited(&d->too_big_log, DC_LOG_WARN,
                             DCLOGNO(10304) "store dbm:%s:%s: record of %zu + %zu bytes not "
                                            "stored: %s",
                             d->type, d->path, key_len, value_len, why);
        unlock_store(d);
        return DC_STORE_UNAVAILABLE;
    }
    apr_dbm_close(db);
    note_success(d);
    unlock_store(d);
    return DC_STORE_OK;
}

static dc_store_health_e dbm_health(dc_store_t *s, const char **detail)
{
    static _Thread_local char buf[300];
    dbm_store_t *d = s->impl;
    int failing;

    apr_thread_mutex_lock(d->mutex);
    failing = d->failing;
    if (failing)
        snprintf(buf, sizeof(buf), "dbm %s file %s: %s", d->type, d->path, d->error);
    else
        snprintf(buf, sizeof(buf), "dbm %s file %s", d->type, d->path);
    apr_thread_mutex_unlock(d->mutex);
    *detail = buf;
    return failing ? DC_STORE_HEALTH_DEGRADED : DC_STORE_HEALTH_OK;
}

/* The parent must not be using the store while it forks (httpd's parent serves no
 * requests), so the mutex is free here. The new descriptor lives in the store's pool,
 * which is this process's copy. */
static void dbm_child_init(dc_store_t *s, apr_pool_t *pchild)
{
    dbm_store_t *d = s->impl;
    apr_status_t rv;

    (void)pchild;
    apr_thread_mutex_lock(d->mutex);
    rv = open_lock_file(d);
    if (rv != APR_SUCCESS)
        note_failure(d, "cannot open the lock file", rv, d->lock_path);
    apr_thread_mutex_unlock(d->mutex);
}

static void dbm_close(dc_store_t *s)
{
    dbm_store_t *d = s->impl;

    if (d && d->lock_file) {
        apr_file_close(d->lock_file);
        d->lock_file = NULL;
    }
}

const dc_store_provider_t dc_store_dbm_provider = {
    .name = "dbm",
    .load = dbm_load,
    .save = dbm_save,
    .health = dbm_health,
    .child_init = dbm_child_init,
    .close = dbm_close,
};

int dc_store_dbm_open(dc_store_t *s, apr_pool_t *p, const char *spec, char *err, size_t err_len)
{
    dbm_store_t *d = apr_pcalloc(p, sizeof(*d));
    const char *type = "default", *path = spec, *colon = strchr(spec, ':');
    const char *used1, *used2;
    apr_dbm_t *db;
    apr_status_t rv;
    char msg[120];

    if (colon) {
        for (size_t i = 0; i < sizeof(dbm_types) / sizeof(dbm_types[0]); i++)
            if ((size_t)(colon - spec) == strlen(dbm_types[i]) &&
                strncmp(spec, dbm_types[i], colon - spec) == 0) {
                type = dbm_types[i];
                path = colon + 1;
            }
    }
    if (!*path) {
        snprintf(err, err_len, "store \"dbm:%s\": the file path is missing (dbm:[TYPE:]PATH)",
                 spec);
        return -1;
    }
    if (apr_dbm_get_usednames_ex(p, type, path, &used1, &used2) != APR_SUCCESS) {
        snprintf(err, err_len, "store \"dbm:%s\": DBM type %s is not supported by this apr-util",
                 spec, type);
        return -1;
    }
    d->type = type;
    d->path = apr_pstrdup(p, path);
    d->lock_path = apr_pstrcat(p, path, ".lock", NULL);
    d->pool = p;
    if (apr_thread_mutex_create(&d->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        snprintf(err, err_len, "store \"dbm:%s\": cannot create a mutex", spec);
        return -1;
    }
    rv = open_lock_file(d);
    if (rv != APR_SUCCESS) {
        snprintf(err, err_len, "store \"dbm:%s\": cannot create the lock file %s: %s", spec,
                 d->lock_path, apr_strerror(rv, msg, sizeof(msg)));
        return -1;
    }
    s->provider = &dc_store_dbm_provider;
    s->impl = d;
    s->prefix = "";

    /* Create the file now so a wrong directory or a missing driver shows at start; a file
     * that exists but does not open (corrupt) only degrades the store. */
    if (lock_store(d, APR_FLOCK_EXCLUSIVE) != APR_SUCCESS)
        return 0;
    rv = apr_dbm_open_ex(&db, type, path, APR_DBM_RWCREATE, DBM_FILE_PERMS, p);
    if (rv == APR_SUCCESS) {
        apr_dbm_close(db);
    } else if (!dbm_file_exists(d, p)) {
        unlock_store(d);
        apr_file_close(d->lock_file);
        d->lock_file = NULL;
        snprintf(err, err_len, "store \"dbm:%s\": cannot create a %s DBM file at %s: %s", spec,
                 type, path, apr_strerror(rv, msg, sizeof(msg)));
        return -1;
    } else {
        note_failure(d, "cannot open", rv, NULL);
    }
    unlock_store(d);
    return 0;
}
