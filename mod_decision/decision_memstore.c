/*
 * The httpd "memory" assignment store: one dc_table (common/dc_table.h) in
 * APR shared memory, so every child of every MPM sees the same sticky
 * assignments, behind the dc_store_provider_t vtable like any other backend.
 *
 * The segment is anonymous shared memory made in post_config by the parent
 * (inherited by every child) from pconf, so a restart or graceful restart
 * leaks none; its contents belong to one configuration generation. Loads,
 * the request path, take no lock at all (dc_table's readers are lock-free);
 * saves take a global mutex whose mechanism the operator picks with
 * `Mutex ... decision-store`, so that a read-modify-write of one visitor by
 * two children keeps both changes.
 *
 * Keys: "env_id" NUL "id" (the NUL keeps ("a", "b\0c") and ("a\0b", "c")
 * apart). Values are the shared record codec of dc_store.h, so the record is
 * the same as in the other stores. Bounded: `memory?size=BYTES` (default 1
 * MiB) or `memory?max_entries=N` (N index entries, 512 bytes of segment
 * each); the oldest records are overwritten when the segment is full.
 */
#include "mod_decision.h"

#include "dc_log.h"
#include "dc_store.h"
#include "dc_table.h"

#include "http_log.h"
#include "util_mutex.h"

#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <string.h>

APLOG_USE_MODULE(decision);

#define MEMSTORE_MUTEX "decision-store"
#define MEMSTORE_KEY "mod_decision:memstore"
#define MEMSTORE_DEFAULT_SIZE (1024 * 1024)
#define MEMSTORE_MIN_SIZE (64 * 1024)
#define MEMSTORE_MAX_SIZE ((apr_size_t)1 << 30)
#define MEMSTORE_BYTES_PER_ENTRY 512
/* a record this size is read into the stack; larger ones into the pool */
#define MEMSTORE_FIRST_READ 4096

typedef struct {
    dc_table_t table;
    apr_global_mutex_t *mutex;
    server_rec *s;
    apr_size_t size, entries;
    const char *detail;
    int child_ready;
} shared_store_t;

void decision_memstore_register_mutex(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, MEMSTORE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static const char *parse_size(apr_pool_t *p, const char *uri, apr_size_t *size,
                              apr_size_t *entries)
{
    const char *q = strchr(uri, '?');

    *size = MEMSTORE_DEFAULT_SIZE;
    *entries = 0; /* dc_table's default for the size */
    if (strcmp(uri, "memory") != 0 && strncmp(uri, "memory?", 7) != 0)
        return apr_psprintf(p, "\"%s\" is not a memory store URI", uri);
    if (!q)
        return NULL;
    for (char *tok, *state, *opts = apr_pstrdup(p, q + 1);
         (tok = apr_strtok(opts, "&", &state)) != NULL; opts = NULL) {
        char *eq = strchr(tok, '='), *end;
        apr_int64_t n;

        if (!eq)
            return apr_psprintf(p, "store \"%s\": option \"%s\" needs a value", uri, tok);
        *eq++ = '\0';
        n = apr_strtoi64(eq, &end, 10);
        if (*eq == '\0' || *end != '\0' || n <= 0)
            return apr_psprintf(p, "store \"%s\": %s must be a positive number", uri, tok);
        if (strcmp(tok, "size") == 0)
            *size = (apr_size_t)n;
        else if (strcmp(tok, "max_entries") == 0) {
            *size = n > (apr_int64_t)(MEMSTORE_MAX_SIZE / MEMSTORE_BYTES_PER_ENTRY)
                        ? MEMSTORE_MAX_SIZE
                        : (apr_size_t)n * MEMSTORE_BYTES_PER_ENTRY;
            *entries = *size / MEMSTORE_BYTES_PER_ENTRY;
        }
        else
            return apr_psprintf(p, "store \"%s\": unknown option \"%s\" (size, max_entries)",
                                uri, tok);
    }
    if (*size < MEMSTORE_MIN_SIZE || *size > MEMSTORE_MAX_SIZE)
        return apr_psprintf(p, "store \"%s\": size must be between %d and %" APR_SIZE_T_FMT
                               " bytes", uri, MEMSTORE_MIN_SIZE,
                            MEMSTORE_MAX_SIZE);
    return NULL;
}

const char *decision_memstore_check_uri(apr_pool_t *p, const char *uri)
{
    apr_size_t size, entries;

    return parse_size(p, uri, &size, &entries);
}

/* The record of key decoded into out: 1, or 0 when there is none (or it is unreadable). */
static int read_record(shared_store_t *st, apr_pool_t *p, const char *key, size_t key_len,
                       dc_assignments_t *out)
{
    char first[MEMSTORE_FIRST_READ], *data = first;
    size_t len = 0;
    int rc = dc_table_get(&st->table, key, key_len, first, sizeof(first), &len);

    if (rc < 0) {
        data = apr_palloc(p, len);
        rc = dc_table_get(&st->table, key, key_len, data, len, &len);
    }
    if (rc != 1)
        return 0;
    if (dc_assignments_decode(p, data, len, out) < 0) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, st->s,
                     DCLOGNO(10440) "memory store: an unreadable record is ignored");
        return 0;
    }
    return 1;
}

static dc_store_status_e memstore_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                       const char *id, size_t id_len, dc_assignments_t *out)
{
    shared_store_t *st = s->impl;
    size_t key_len;
    char *key = dc_store_memory_key(p, env_id, id, id_len, &key_len);

    return read_record(st, p, key, key_len, out) ? DC_STORE_OK : DC_STORE_NOT_FOUND;
}

static dc_store_status_e memstore_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                       const char *id, size_t id_len,
                                       const dc_assignments_t *changes, int64_t now_ms)
{
    shared_store_t *st = s->impl;
    size_t key_len, encoded_len;
    char *key = dc_store_memory_key(p, env_id, id, id_len, &key_len), *encoded;
    dc_assignments_t merged;
    int rc;

    if (apr_global_mutex_lock(st->mutex) != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    /* Read-modify-write under one lock: two children saving different
     * variation groups of one visitor must both be kept. */
    if (!read_record(st, p, key, key_len, &merged))
        memset(&merged, 0, sizeof(merged));
    dc_assignments_merge(p, &merged, changes, now_ms);
    encoded = dc_assignments_encode(p, &merged, &encoded_len);
    rc = dc_table_put(&st->table, key, key_len, encoded, encoded_len);
    apr_global_mutex_unlock(st->mutex);
    if (rc < 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, st->s,
                     DCLOGNO(10441) "memory store: a record of %" APR_SIZE_T_FMT
                                    " bytes is over the %" APR_UINT64_T_FMT
                                    "-byte limit of a segment this size, not saved",
                     encoded_len + key_len, st->table.max_record);
        return DC_STORE_UNAVAILABLE;
    }
    return DC_STORE_OK;
}

static dc_store_health_e memstore_health(dc_store_t *s, const char **detail)
{
    *detail = ((shared_store_t *)s->impl)->detail;
    return DC_STORE_HEALTH_OK;
}

static void memstore_child_init(dc_store_t *s, apr_pool_t *pchild)
{
    shared_store_t *st = s->impl;
    apr_status_t rv;

    if (st->child_ready)
        return; /* several services share the one store */
    rv = apr_global_mutex_child_init(&st->mutex, apr_global_mutex_lockfile(st->mutex), pchild);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, st->s,
                     DCLOGNO(10443) "memory store: cannot attach the decision-store mutex in "
                                    "this child");
    st->child_ready = 1;
}

static const dc_store_provider_t memstore_provider = {
    .name = "shm", /* counted apart from the in-process memory store (dc_metrics) */
    .load = memstore_load,
    .save = memstore_save,
    .health = memstore_health,
    .child_init = memstore_child_init,
};

dc_store_t *decision_memstore_open(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                   const char *uri, char *err, size_t err_len)
{
    shared_store_t *st = NULL;
    apr_size_t size, entries;
    apr_shm_t *shm;
    dc_store_t *store;
    const char *msg;
    apr_status_t rv;

    if ((msg = parse_size(ptemp, uri, &size, &entries)) != NULL) {
        apr_cpystrn(err, msg, err_len);
        return NULL;
    }
    /* One segment per configuration generation for the whole server: every
     * service (vhost) keys its records by environment id. */
    apr_pool_userdata_get((void **)&st, MEMSTORE_KEY, pconf);
    if (!st) {
        st = apr_pcalloc(pconf, sizeof(*st));
        st->s = s;
        st->size = size;
        /* anonymous: inherited by the children, removed with pconf */
        rv = apr_shm_create(&shm, size, NULL, pconf);
        if (rv != APR_SUCCESS) {
            apr_snprintf(err, err_len, "memory store: cannot set up %" APR_SIZE_T_FMT
                                       " bytes of shared memory (%pm)", size, &rv);
            return NULL;
        }
        if (dc_table_init(&st->table, apr_shm_baseaddr_get(shm), apr_shm_size_get(shm),
                          entries) < 0) {
            apr_snprintf(err, err_len, "memory store: %" APR_SIZE_T_FMT " bytes are too few "
                                       "for %" APR_SIZE_T_FMT " entries", size, entries);
            return NULL;
        }
        st->entries = dc_table_entries(&st->table);
        rv = ap_global_mutex_create(&st->mutex, NULL, MEMSTORE_MUTEX, NULL, s, pconf, 0);
        if (rv != APR_SUCCESS) {
            apr_snprintf(err, err_len, "memory store: cannot create the %s mutex (%pm)",
                         MEMSTORE_MUTEX, &rv);
            return NULL;
        }
        st->detail = apr_psprintf(pconf, "shared memory: %" APR_SIZE_T_FMT " bytes, %"
                                         APR_SIZE_T_FMT " entries, not kept across restarts",
                                  size, st->entries);
        apr_pool_userdata_set(st, MEMSTORE_KEY, apr_pool_cleanup_null, pconf);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     DCLOGNO(10444) "memory store: %s, for all children", st->detail);
    } else if (size != st->size) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     DCLOGNO(10445) "DecisionStore %s: the server's memory store is already "
                                    "%" APR_SIZE_T_FMT " bytes; one segment serves every vhost",
                     uri, st->size);
    }
    store = apr_pcalloc(pconf, sizeof(*store));
    store->provider = &memstore_provider;
    store->impl = st;
    store->uri = apr_pstrdup(pconf, uri);
    store->prefix = "";
    return store;
}
