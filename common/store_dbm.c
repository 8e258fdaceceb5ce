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
 * is not safe for concurrent writers, so every operation runs under two locks:
 *   - apr_file_lock on a sidecar file PATH.lock, shared for a load and
 *     exclusive for a save's read-modify-write, between processes;
 *   - a thread mutex within the process, because the file lock does not
 *     separate threads: apr_file_lock is flock() on Debian's APR (a lock of
 *     the open file description) and fcntl() elsewhere (a lock of the
 *     process); either way two threads of one process would share it. The
 *     mutex also guards the process's kept DBM handle (below), which no DBM
 *     library lets two threads use at once.
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
 * Handles. Opening a DBM file costs 12-35 us; a lookup on an open handle
 * about 1 us. How long a handle may stay open depends on the library:
 *   - Berkeley DB (type db, and default on Debian) takes no lock of its own
 *     but caches pages in the handle, so a handle kept open goes stale when
 *     another process writes. Each process keeps one read-only handle and
 *     reopens it only when the file changed: the first 8 bytes of PATH.lock
 *     hold a generation counter that every save bumps under the exclusive
 *     lock, and a load reads it (one pread) under the shared lock; a kept
 *     handle opened at the same generation is fresh. A save opens its own
 *     read-write handle and closes it, because Berkeley DB writes its cached
 *     pages (and syncs them) only on close, and apr_dbm has no sync call.
 *   - sdbm, through apr_dbm, locks its files for as long as a handle is open
 *     (blocking: a kept handle would stall every other process's writer), so
 *     the store uses apr-util's sdbm API directly, on the same files, with
 *     APR_FOPEN_SHARELOCK: sdbm then locks per call and drops its one-page
 *     cache at each lock, so one read-write handle per process stays right
 *     whatever other processes write.
 *   - gdbm locks its file for as long as a handle is open and refuses (does
 *     not wait for) a writer while any reader is open, so a kept handle in
 *     one process would make every other process's saves fail: gdbm files
 *     are opened and closed by every operation.
 * A kept handle is also dropped when the file it reads is no longer the one
 * at PATH (removed or replaced by the operator: one stat() per operation),
 * when an operation on it fails, and in a new process.
 * "default" is resolved to one of these at open (Debian's is Berkeley DB).
 *
 * Failures. A file that cannot be opened (corrupt, unreadable, driver
 * missing) makes the operation return DC_STORE_UNAVAILABLE, and the engine
 * decides from the hash alone; it is logged once per streak of failures and
 * once when the store recovers, and health() reports it. A record that does
 * not decode is logged (once per streak) and treated as absent; the next save
 * for that id replaces it.
 *
 * Cache. Each process keeps what it read and wrote (a dc_table of 4 MiB, FIFO), each
 * record tagged with the change counter at the time: while the counter has not moved
 * (no process saved), a load is one pread of it and a lock-free lookup, with no mutex,
 * file lock or DBM call. Any save, here or in another process (or a program that bumps
 * the counter as doc/stores.md says), makes every older tag miss. A file removed or replaced
 * by hand is therefore noticed at the next save, not at the next load.
 *
 * Cost per load with a fresh kept handle: the mutex, flock() twice, one
 * pread and one stat, and the lookup in cached pages (2-3 us). sdbm loads
 * skip PATH.lock (sdbm's own shared lock, taken by every fetch, excludes a
 * save's store, which runs under PATH.lock): the mutex, one stat, and sdbm's
 * flock, fstat and two page reads. A save with Berkeley DB or gdbm pays an open and
 * the library's sync on close (0.4-1.5 ms on a disk): these types suit
 * durable stores at modest rates of new visitors.
 */
#include "dc_store.h"
#include "dc_log.h"
#include "dc_table.h"

#include <apr_dbm.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_portable.h>
#include <apr_sdbm.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each process's cache of what it read and wrote (see load_cached). */
#define DBM_CACHE_BYTES (4 * 1024 * 1024)
#define DBM_CACHE_FIRST_READ 4096

/* Bigger records are garbage: DC_STORE_MAX_ASSIGNMENTS entries of bounded fields fit well below. */
#define DBM_MAX_RECORD (4 * 1024 * 1024)
#define DBM_FILE_PERMS                                                                             \
    (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD | APR_FPROT_GWRITE)

typedef enum {
    HANDLE_PER_OPERATION, /* gdbm, or a default type not recognised */
    HANDLE_KEPT_BY_GENERATION, /* Berkeley DB */
    HANDLE_SDBM_SHARELOCK /* sdbm */
} handle_policy_e;

typedef struct {
    const char *type;
    const char *path;
    const char *lock_path;
    const char *data_file;   /* the file whose identity a kept handle checks */
    handle_policy_e policy;
    apr_pool_t *pool;        /* the store's lifetime */
    apr_file_t *lock_file;
    pid_t lock_pid;          /* the process that opened lock_file */
    apr_thread_mutex_t *mutex;
    /* Under mutex: */
    apr_pool_t *handle_pool; /* holds the kept handle; cleared to close it */
    apr_dbm_t *kept_dbm;     /* Berkeley DB, read-only */
    apr_sdbm_t *kept_sdbm;   /* sdbm, read-write */
    apr_uint64_t kept_generation;
    pid_t kept_pid;
    dev_t kept_dev;
    ino_t kept_ino;
    int failing;             /* the last operation could not use the file */
    int garbage_logged;      /* a bad record was logged and no good one decoded since */
    dc_store_log_limit_t too_big_log;
    dc_store_log_limit_t generation_log;
    char error[200];         /* why it failed, for health() */
    /* What this process read or wrote, each record tagged with the change counter it was
     * read at: lock-free to read, one writer at a time (cache_lock). A fork's copy stays
     * right, as its tags do. */
    dc_table_t cache;
    void *cache_block;       /* NULL: no cache */
    apr_thread_mutex_t *cache_lock;
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

/* Read and write: an fcntl() shared lock needs a descriptor open for reading, and
 * the generation counter is written through it. */
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
    __atomic_store_n(&d->lock_pid, getpid(), __ATOMIC_RELEASE); /* load_cached reads it */
    return rv;
}

/* Closes the kept handle (apr_dbm registers no pool cleanup for Berkeley DB: only a
 * close frees its memory and descriptor). In a new process the handle is the
 * parent's copy: closing it is safe (read-only Berkeley DB pages, sdbm writes
 * through) and frees it. */
static void drop_kept_handle(dbm_store_t *d)
{
    if (d->kept_dbm)
        apr_dbm_close(d->kept_dbm);
    if (d->kept_sdbm)
        apr_sdbm_close(d->kept_sdbm);
    if (d->kept_dbm || d->kept_sdbm)
        apr_pool_clear(d->handle_pool);
    d->kept_dbm = NULL;
    d->kept_sdbm = NULL;
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

/* A load of sdbm needs the mutex only: apr_sdbm_fetch takes sdbm's own shared lock,
 * which a save's apr_sdbm_store (under PATH.lock) excludes. */
static apr_status_t lock_for_load(dbm_store_t *d)
{
    if (d->policy != HANDLE_SDBM_SHARELOCK)
        return lock_store(d, APR_FLOCK_SHARED);
    apr_thread_mutex_lock(d->mutex);
    return APR_SUCCESS;
}

static void unlock_after_load(dbm_store_t *d)
{
    if (d->policy != HANDLE_SDBM_SHARELOCK)
        unlock_store(d);
    else
        apr_thread_mutex_unlock(d->mutex);
}

/* The generation counter: 8 bytes at the start of PATH.lock (an empty file is
 * generation 0). Read under either lock, bumped under the exclusive one. */
static int read_generation(dbm_store_t *d, apr_uint64_t *generation)
{
    apr_os_file_t fd;
    ssize_t n;

    *generation = 0;
    if (apr_os_file_get(&fd, d->lock_file) != APR_SUCCESS)
        return -1;
    n = pread(fd, generation, sizeof(*generation), 0);
    if (n == 0)
        return 0;
    return n == (ssize_t)sizeof(*generation) ? 0 : -1;
}

static void bump_generation(dbm_store_t *d)
{
    apr_uint64_t generation;
    apr_os_file_t fd;

    if (read_generation(d, &generation) == 0 &&
        apr_os_file_get(&fd, d->lock_file) == APR_SUCCESS) {
        generation++;
        if (pwrite(fd, &generation, sizeof(generation), 0) == (ssize_t)sizeof(generation))
            return;
    }
    /* Other processes may keep reading what their handles cached before this save. */
    drop_kept_handle(d);
    dc_store_log_limited(&d->generation_log, DC_LOG_WARN,
                         DCLOGNO(10350) "store dbm:%s:%s: cannot update the change counter in "
                                        "%s (%s): other processes may not see this save until "
                                        "they reopen the file",
                         d->type, d->path, d->lock_path, strerror(errno));
}

static int data_file_identity(dbm_store_t *d, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (stat(d->data_file, &st) != 0)
        return -1;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

/* Whether the kept handle may serve: not when another process wrote (Berkeley DB),
 * the file at PATH is another one, or this is a new process. */
static int kept_handle_is_fresh(dbm_store_t *d, apr_uint64_t generation)
{
    dev_t dev;
    ino_t ino;

    if ((!d->kept_dbm && !d->kept_sdbm) || d->kept_pid != getpid())
        return 0;
    if (d->policy == HANDLE_KEPT_BY_GENERATION && d->kept_generation != generation)
        return 0;
    return data_file_identity(d, &dev, &ino) == 0 && dev == d->kept_dev && ino == d->kept_ino;
}

/* Makes the kept handle fresh, reopening it when needed. */
static apr_status_t open_kept_handle(dbm_store_t *d)
{
    apr_uint64_t generation;
    apr_status_t rv;

    if (d->policy != HANDLE_KEPT_BY_GENERATION)
        generation = 0; /* sdbm reads through */
    else if (read_generation(d, &generation) < 0)
        generation = ~(apr_uint64_t)0; /* unreadable: never matches, reopen each time */
    if (kept_handle_is_fresh(d, generation))
        return APR_SUCCESS;
    drop_kept_handle(d);
    if (d->policy == HANDLE_SDBM_SHARELOCK)
        rv = apr_sdbm_open(&d->kept_sdbm, d->path,
                           APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_CREATE |
                               APR_FOPEN_SHARELOCK,
                           DBM_FILE_PERMS, d->handle_pool);
    else
        rv = apr_dbm_open_ex(&d->kept_dbm, d->type, d->path, APR_DBM_READONLY, DBM_FILE_PERMS,
                             d->handle_pool);
    if (rv != APR_SUCCESS) {
        /* nothing to close; what the failed open allocated goes too */
        d->kept_dbm = NULL;
        d->kept_sdbm = NULL;
        apr_pool_clear(d->handle_pool);
        return rv;
    }
    if (data_file_identity(d, &d->kept_dev, &d->kept_ino) < 0) {
        drop_kept_handle(d);
        return APR_ENOENT;
    }
    d->kept_generation = generation;
    d->kept_pid = getpid();
    return APR_SUCCESS;
}

static int dbm_file_exists(dbm_store_t *d)
{
    struct stat st;

    return stat(d->data_file, &st) == 0;
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

/* Reads the raw record of key into p, from db or (db NULL) the kept sdbm handle;
 * NULL when absent or unreadable (*rv says which). */
static char *fetch_record(apr_pool_t *p, dbm_store_t *d, apr_dbm_t *db, char *key,
                          size_t key_len, size_t *len, apr_status_t *rv)
{
    const char *data;
    size_t size;
    char *copy;

    if (db) {
        apr_datum_t k = {key, key_len}, v = {NULL, 0};

        *rv = apr_dbm_fetch(db, k, &v);
        if (*rv != APR_SUCCESS || !v.dptr)
            return NULL;
        data = v.dptr;
        size = v.dsize;
        copy = size > DBM_MAX_RECORD ? NULL : apr_pmemdup(p, data, size);
        apr_dbm_freedatum(db, v);
    } else {
        apr_sdbm_datum_t k = {key, (int)key_len}, v = {NULL, 0};

        *rv = apr_sdbm_fetch(d->kept_sdbm, &v, k);
        if (*rv != APR_SUCCESS || !v.dptr || v.dsize < 0)
            return NULL;
        size = (size_t)v.dsize;
        copy = size > DBM_MAX_RECORD ? NULL : apr_pmemdup(p, v.dptr, size);
    }
    if (!copy) {
        *len = 0;
        return apr_pstrdup(p, ""); /* decodes as garbage */
    }
    *len = size;
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

/* Opens the file for one load: the kept handle, or (gdbm) a handle of p's lifetime
 * in *db. Returns DC_STORE_OK with a handle, or the status to answer. */
static dc_store_status_e open_for_load(dbm_store_t *d, apr_pool_t *p, apr_dbm_t **db)
{
    apr_status_t rv;

    *db = NULL;
    if (d->policy == HANDLE_PER_OPERATION)
        rv = apr_dbm_open_ex(db, d->type, d->path, APR_DBM_READONLY, DBM_FILE_PERMS, p);
    else if ((rv = open_kept_handle(d)) == APR_SUCCESS)
        *db = d->kept_dbm; /* NULL for sdbm: fetch_record uses kept_sdbm */
    if (rv == APR_SUCCESS)
        return DC_STORE_OK;
    if (!dbm_file_exists(d)) {
        note_success(d); /* removed since: the next save creates it again */
        return DC_STORE_NOT_FOUND;
    }
    note_failure(d, "cannot open", rv, NULL);
    return DC_STORE_UNAVAILABLE;
}

/* Records that key held record (NULL: none) when the change counter was generation. */
static void cache_put(dbm_store_t *d, apr_pool_t *p, const char *key, size_t key_len,
                      apr_uint64_t generation, const char *record, size_t len)
{
    char *value;

    if (!d->cache_block || len > DC_TABLE_MAX_RECORD)
        return;
    value = apr_palloc(p, sizeof(generation) + len);
    memcpy(value, &generation, sizeof(generation));
    if (len)
        memcpy(value + sizeof(generation), record, len);
    apr_thread_mutex_lock(d->cache_lock);
    dc_table_put(&d->cache, key, key_len, value, sizeof(generation) + len);
    apr_thread_mutex_unlock(d->cache_lock);
}

/* A load without the mutex, the file lock or the DBM library: what this process read or
 * wrote for key, when the change counter has not moved since (no process saved since: a
 * save anywhere bumps it). One pread of the counter. 1 with *status set, 0 to read the
 * file. */
static int load_cached(dbm_store_t *d, apr_pool_t *p, const char *key, size_t key_len,
                       dc_store_status_e *status, dc_assignments_t *out)
{
    char first[DBM_CACHE_FIRST_READ], *value = first;
    apr_uint64_t generation, tagged;
    size_t len = 0;
    int rc;

    if (!d->cache_block || __atomic_load_n(&d->lock_pid, __ATOMIC_ACQUIRE) != getpid() ||
        read_generation(d, &generation) < 0)
        return 0;
    rc = dc_table_get(&d->cache, key, key_len, first, sizeof(first), &len);
    if (rc < 0) {
        value = apr_palloc(p, len);
        rc = dc_table_get(&d->cache, key, key_len, value, len, &len);
    }
    if (rc != 1 || len < sizeof(tagged))
        return 0;
    memcpy(&tagged, value, sizeof(tagged));
    if (tagged != generation)
        return 0;
    if (len == sizeof(tagged)) {
        *status = DC_STORE_NOT_FOUND;
        return 1;
    }
    if (dc_assignments_decode(p, value + sizeof(tagged), len - sizeof(tagged), out) < 0 ||
        out->n == 0) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    *status = DC_STORE_OK;
    return 1;
}

static dc_store_status_e dbm_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                  const char *id, size_t id_len, dc_assignments_t *out)
{
    dbm_store_t *d = s->impl;
    size_t key_len, len = 0;
    char *key = make_key(p, s, env_id, id, id_len, &key_len), *data = NULL;
    apr_dbm_t *db;
    apr_status_t rv;
    apr_uint64_t generation;
    dc_store_status_e status;
    int cacheable;

    if (!key)
        return DC_STORE_UNAVAILABLE;
    if (load_cached(d, p, key, key_len, &status, out))
        return status;
    if (lock_for_load(d) != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    /* before the fetch: a save that lands in between then only makes the tag old */
    cacheable = read_generation(d, &generation) == 0;
    status = open_for_load(d, p, &db);
    if (status != DC_STORE_OK) {
        unlock_after_load(d);
        return status;
    }
    data = fetch_record(p, d, db, key, key_len, &len, &rv);
    if (d->policy == HANDLE_PER_OPERATION)
        apr_dbm_close(db);
    else if (rv != APR_SUCCESS)
        drop_kept_handle(d); /* a bad page (sdbm) or a read error: start afresh next time */
    note_success(d);
    if (!data) {
        unlock_after_load(d);
        if (cacheable && rv == APR_SUCCESS)
            cache_put(d, p, key, key_len, generation, NULL, 0);
        return DC_STORE_NOT_FOUND;
    }
    status = decode_record(d, p, data, len, out) == 0 && out->n > 0 ? DC_STORE_OK
                                                                   : DC_STORE_NOT_FOUND;
    unlock_after_load(d);
    if (cacheable)
        cache_put(d, p, key, key_len, generation, status == DC_STORE_OK ? data : NULL,
                  status == DC_STORE_OK ? len : 0);
    return status;
}

/* Writes value under key through db or (db NULL) the kept sdbm handle; fills why on
 * failure. */
static apr_status_t store_record(dbm_store_t *d, apr_dbm_t *db, char *key, size_t key_len,
                                 char *value, size_t value_len, char *why, size_t why_len)
{
    apr_status_t rv;

    if (db) {
        apr_datum_t k = {key, key_len}, v = {value, value_len};

        rv = apr_dbm_store(db, k, v);
        if (rv != APR_SUCCESS)
            apr_dbm_geterror(db, NULL, why, why_len);
    } else {
        apr_sdbm_datum_t k = {key, (int)key_len}, v = {value, (int)value_len};

        rv = apr_sdbm_store(d->kept_sdbm, k, v, APR_SDBM_REPLACE);
        if (rv != APR_SUCCESS)
            apr_strerror(rv, why, why_len);
    }
    return rv;
}

static dc_store_status_e dbm_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                  const char *id, size_t id_len, const dc_assignments_t *changes,
                                  int64_t now_ms)
{
    dbm_store_t *d = s->impl;
    size_t key_len, len = 0, value_len;
    char *key = make_key(p, s, env_id, id, id_len, &key_len), *data, *value, why[120];
    dc_assignments_t merged;
    apr_dbm_t *db = NULL;
    apr_status_t rv;

    if (!key) {
        dc_log(DC_LOG_DEBUG, DCLOGNO(10303) "store dbm: environment id with a \".\" not stored");
        return DC_STORE_UNAVAILABLE;
    }
    if (lock_store(d, APR_FLOCK_EXCLUSIVE) != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    if (d->policy == HANDLE_SDBM_SHARELOCK) {
        rv = open_kept_handle(d);
    } else {
        drop_kept_handle(d); /* stale once this save is written */
        rv = apr_dbm_open_ex(&db, d->type, d->path, APR_DBM_RWCREATE, DBM_FILE_PERMS, p);
    }
    if (rv != APR_SUCCESS) {
        note_failure(d, "cannot open for writing", rv, NULL);
        unlock_store(d);
        return DC_STORE_UNAVAILABLE;
    }
    memset(&merged, 0, sizeof(merged));
    data = fetch_record(p, d, db, key, key_len, &len, &rv);
    if (data)
        decode_record(d, p, data, len, &merged);
    dc_assignments_merge(p, &merged, changes, now_ms);
    value = dc_assignments_encode(p, &merged, &value_len);
    rv = store_record(d, db, key, key_len, value, value_len, why, sizeof(why));
    if (db)
        apr_dbm_close(db); /* Berkeley DB and gdbm write their pages here */
    bump_generation(d);
    if (rv != APR_SUCCESS) {
        /* sdbm refuses a key + value over about 1000 bytes: that record cannot be kept, but
         * the file is fine, so this is not a failure streak. */
        dc_store_log_limited(&d->too_big_log, DC_LOG_WARN,
                             DCLOGNO(10304) "store dbm:%s:%s: record of %zu + %zu bytes not "
                                            "stored: %s",
                             d->type, d->path, key_len, value_len, why);
        unlock_store(d);
        return DC_STORE_UNAVAILABLE;
    }
    note_success(d);
    {
        apr_uint64_t generation;

        if (read_generation(d, &generation) == 0)
            cache_put(d, p, key, key_len, generation, value, value_len);
    }
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
    drop_kept_handle(d);
    rv = open_lock_file(d);
    if (rv != APR_SUCCESS)
        note_failure(d, "cannot open the lock file", rv, d->lock_path);
    apr_thread_mutex_unlock(d->mutex);
}

static void dbm_close(dc_store_t *s)
{
    dbm_store_t *d = s->impl;

    if (!d)
        return;
    drop_kept_handle(d);
    if (d->lock_file) {
        apr_file_close(d->lock_file);
        d->lock_file = NULL;
    }
}

static apr_status_t destroy_handle_pool(void *data)
{
    dbm_store_t *d = data;

    drop_kept_handle(d);
    apr_pool_destroy(d->handle_pool);
    free(d->cache_block);
    d->cache_block = NULL;
    return APR_SUCCESS;
}

const dc_store_provider_t dc_store_dbm_provider = {
    .name = "dbm",
    .load = dbm_load,
    .save = dbm_save,
    .health = dbm_health,
    .child_init = dbm_child_init,
    .close = dbm_close,
};

/* What "default" is in this apr-util (the file exists): a Berkeley DB file opens as
 * "db"; two files (.dir, .pag) are sdbm's; anything else is handled per operation. */
static handle_policy_e policy_of(dbm_store_t *d, const char *used2, apr_pool_t *p)
{
    apr_dbm_t *probe;

    if (strcmp(d->type, "db") == 0)
        return HANDLE_KEPT_BY_GENERATION;
    if (strcmp(d->type, "sdbm") == 0)
        return HANDLE_SDBM_SHARELOCK;
    if (strcmp(d->type, "default") != 0)
        return HANDLE_PER_OPERATION;
    if (used2)
        return HANDLE_SDBM_SHARELOCK;
    if (apr_dbm_open_ex(&probe, "db", d->path, APR_DBM_READONLY, DBM_FILE_PERMS, p) ==
        APR_SUCCESS) {
        apr_dbm_close(probe);
        return HANDLE_KEPT_BY_GENERATION;
    }
    return HANDLE_PER_OPERATION;
}

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
    if (apr_dbm_get_usednames_ex(p, type, path, &used1, &used2) != APR_SUCCESS || !used1) {
        snprintf(err, err_len, "store \"dbm:%s\": DBM type %s is not supported by this apr-util",
                 spec, type);
        return -1;
    }
    d->type = type;
    d->path = apr_pstrdup(p, path);
    d->lock_path = apr_pstrcat(p, path, ".lock", NULL);
    d->data_file = apr_pstrdup(p, used1);
    d->pool = p;
    d->policy = HANDLE_PER_OPERATION;
    if (apr_thread_mutex_create(&d->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS ||
        apr_pool_create_unmanaged_ex(&d->handle_pool, NULL, NULL) != APR_SUCCESS) {
        snprintf(err, err_len, "store \"dbm:%s\": cannot create a mutex", spec);
        return -1;
    }
    if (apr_thread_mutex_create(&d->cache_lock, APR_THREAD_MUTEX_DEFAULT, p) == APR_SUCCESS &&
        (d->cache_block = malloc(DBM_CACHE_BYTES)) != NULL &&
        dc_table_init(&d->cache, d->cache_block, DBM_CACHE_BYTES, 0) < 0) {
        free(d->cache_block);
        d->cache_block = NULL; /* then every load reads the file */
    }
    apr_pool_cleanup_register(p, d, destroy_handle_pool, apr_pool_cleanup_null);
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
        d->policy = policy_of(d, used2, p);
        bump_generation(d); /* the file may be new */
    } else if (!dbm_file_exists(d)) {
        unlock_store(d);
        apr_file_close(d->lock_file);
        d->lock_file = NULL;
        snprintf(err, err_len, "store \"dbm:%s\": cannot create a %s DBM file at %s: %s", spec,
                 type, path, apr_strerror(rv, msg, sizeof(msg)));
        return -1;
    } else {
        /* corrupt: the type's own policy, or per operation until "default" is known */
        d->policy = strcmp(type, "default") == 0 ? HANDLE_PER_OPERATION : policy_of(d, used2, p);
        note_failure(d, "cannot open", rv, NULL);
    }
    unlock_store(d);
    return 0;
}
