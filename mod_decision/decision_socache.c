/*
 * The httpd "memory" assignment store: one ap_socache (shmcb) instance in
 * shared memory, so every child of every MPM sees the same sticky
 * assignments, behind the dc_store_provider_t vtable like any other backend.
 *
 * Set up the way httpd's own mod_authn_socache does: the provider is looked
 * up by name, created and initialised in post_config in the parent (so the
 * segment is inherited by every child), destroyed by a pconf cleanup (so a
 * restart or graceful restart leaks no segment), and guarded by a global
 * mutex whose mechanism the operator picks with `Mutex ... decision-store`
 * (shmcb is not safe for concurrent use across processes).
 *
 * Keys: 4 bytes of MurmurHash3 of the record key, then "env_id" NUL "id".
 * shmcb picks its sub-cache from the first key byte, so raw hash bytes spread
 * records over every sub-cache where a readable prefix would cluster them. The
 * NUL keeps ("a", "b\0c") and ("a\0b", "c") apart. Values are the shared record
 * codec of dc_store.h, so the record is the same as in the other stores.
 *
 * Bounded: shmcb evicts the oldest records when its segment is full (size is
 * `memory?size=BYTES`, default 1 MiB); a record never exceeds
 * DECISION_SOCACHE_MAX_RECORD. Its contents do not survive a restart or a
 * graceful restart: the segment belongs to one configuration generation.
 */
#include "mod_decision.h"

#include "dc_hash.h"
#include "dc_log.h"
#include "dc_store.h"

#include "ap_provider.h"
#include "ap_socache.h"
#include "http_log.h"
#include "util_mutex.h"

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <string.h>

APLOG_USE_MODULE(decision);

#define DECISION_STORE_MUTEX "decision-store"
#define DECISION_SOCACHE_KEY "mod_decision:socache"
#define DECISION_SOCACHE_DEFAULT_SIZE (1024 * 1024)
#define DECISION_SOCACHE_MIN_SIZE (64 * 1024)
#define DECISION_SOCACHE_MAX_SIZE ((apr_size_t)1 << 30)
#define DECISION_SOCACHE_MAX_RECORD (64 * 1024)
#define DECISION_SOCACHE_FIRST_READ 4096
#define DECISION_SOCACHE_TTL apr_time_from_sec(90 * 24 * 3600)
/* shmcb's own bookkeeping per record, to turn max_entries into a size */
#define DECISION_SOCACHE_BYTES_PER_ENTRY 512

typedef struct {
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;
    server_rec *s;
    apr_size_t size;
    int child_ready;
} shared_store_t;

void decision_socache_register_mutex(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, DECISION_STORE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

int decision_socache_is_available(void)
{
    return ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb", AP_SOCACHE_PROVIDER_VERSION) !=
           NULL;
}

static const char *parse_size(apr_pool_t *p, const char *uri, apr_size_t *size)
{
    const char *q = strchr(uri, '?');

    *size = DECISION_SOCACHE_DEFAULT_SIZE;
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
        else if (strcmp(tok, "max_entries") == 0)
            *size = n > (apr_int64_t)(DECISION_SOCACHE_MAX_SIZE / DECISION_SOCACHE_BYTES_PER_ENTRY)
                        ? DECISION_SOCACHE_MAX_SIZE
                        : (apr_size_t)n * DECISION_SOCACHE_BYTES_PER_ENTRY;
        else
            return apr_psprintf(p, "store \"%s\": unknown option \"%s\" (size, max_entries)",
                                uri, tok);
    }
    if (*size < DECISION_SOCACHE_MIN_SIZE || *size > DECISION_SOCACHE_MAX_SIZE)
        return apr_psprintf(p, "store \"%s\": size must be between %d and %" APR_SIZE_T_FMT
                               " bytes", uri, DECISION_SOCACHE_MIN_SIZE,
                            DECISION_SOCACHE_MAX_SIZE);
    return NULL;
}

const char *decision_socache_check_uri(apr_pool_t *p, const char *uri)
{
    apr_size_t size;

    return parse_size(p, uri, &size);
}

static unsigned char *make_key(apr_pool_t *p, const char *env_id, const char *id, size_t id_len,
                               unsigned *key_len)
{
    size_t elen = strlen(env_id), rlen = elen + 1 + id_len;
    unsigned char *key = apr_palloc(p, 4 + rlen);
    uint32_t h;

    memcpy(key + 4, env_id, elen);
    key[4 + elen] = '\0';
    memcpy(key + 4 + elen + 1, id, id_len);
    h = dc_murmur3_32(key + 4, rlen, 0);
    memcpy(key, &h, 4);
    *key_len = (unsigned)(4 + rlen);
    return key;
}

/* Reads the record under the mutex (held by the caller). */
static apr_status_t retrieve(shared_store_t *st, apr_pool_t *p, const unsigned char *key,
                             unsigned key_len, char **data, unsigned *len)
{
    unsigned cap = DECISION_SOCACHE_FIRST_READ;
    apr_status_t rv;

    for (;;) {
        unsigned char *buf = apr_palloc(p, cap);

        *len = cap;
        rv = st->provider->retrieve(st->instance, st->s, key, key_len, buf, len, p);
        if (rv == APR_SUCCESS) {
            *data = (char *)buf;
            return rv;
        }
        if (rv != APR_ENOSPC || cap >= DECISION_SOCACHE_MAX_RECORD)
            return rv;
        cap = DECISION_SOCACHE_MAX_RECORD;
    }
}

static dc_store_status_e socache_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                      const char *id, size_t id_len, dc_assignments_t *out)
{
    shared_store_t *st = s->impl;
    unsigned key_len, len = 0;
    unsigned char *key = make_key(p, env_id, id, id_len, &key_len);
    char *data = NULL;
    apr_status_t rv;

    if (apr_global_mutex_lock(st->mutex) != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    rv = retrieve(st, p, key, key_len, &data, &len);
    apr_global_mutex_unlock(st->mutex);
    if (rv == APR_NOTFOUND)
        return DC_STORE_NOT_FOUND;
    if (rv != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    if (dc_assignments_decode(p, data, len, out) < 0) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, st->s,
                     DCLOGNO(10440) "memory store: an unreadable record is ignored");
        return DC_STORE_NOT_FOUND;
    }
    return DC_STORE_OK;
}

static dc_store_status_e socache_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                      const char *id, size_t id_len,
                                      const dc_assignments_t *changes, int64_t now_ms)
{
    shared_store_t *st = s->impl;
    unsigned key_len, len = 0;
    unsigned char *key = make_key(p, env_id, id, id_len, &key_len);
    dc_assignments_t merged;
    char *data = NULL, *encoded;
    size_t encoded_len;
    apr_status_t rv;

    memset(&merged, 0, sizeof(merged));
    if (apr_global_mutex_lock(st->mutex) != APR_SUCCESS)
        return DC_STORE_UNAVAILABLE;
    /* Read-modify-write under one lock: two children saving different
     * variation groups of one visitor must both be kept. */
    if (retrieve(st, p, key, key_len, &data, &len) != APR_SUCCESS ||
        dc_assignments_decode(p, data, len, &merged) < 0)
        memset(&merged, 0, sizeof(merged));
    dc_assignments_merge(p, &merged, changes, now_ms);
    encoded = dc_assignments_encode(p, &merged, &encoded_len);
    if (encoded_len > DECISION_SOCACHE_MAX_RECORD) {
        apr_global_mutex_unlock(st->mutex);
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, st->s,
                     DCLOGNO(10441) "memory store: a record of %" APR_SIZE_T_FMT
                                    " bytes is over the %d-byte limit, not saved",
                     encoded_len, DECISION_SOCACHE_MAX_RECORD);
        return DC_STORE_UNAVAILABLE;
    }
    rv = st->provider->store(st->instance, st->s, key, key_len,
                             apr_time_now() + DECISION_SOCACHE_TTL, (unsigned char *)encoded,
                             (unsigned)encoded_len, p);
    apr_global_mutex_unlock(st->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, st->s,
                     DCLOGNO(10442) "memory store: shmcb refused a record of %" APR_SIZE_T_FMT
                                    " bytes",
                     encoded_len);
        return DC_STORE_UNAVAILABLE;
    }
    return DC_STORE_OK;
}

static dc_store_health_e socache_health(dc_store_t *s, const char **detail)
{
    *detail = "shared memory (shmcb), not kept across restarts";
    return DC_STORE_HEALTH_OK;
}

static void socache_child_init(dc_store_t *s, apr_pool_t *pchild)
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

static const dc_store_provider_t socache_provider = {
    .name = "socache", /* counted apart from the in-process memory store (dc_metrics) */
    .load = socache_load,
    .save = socache_save,
    .health = socache_health,
    .child_init = socache_child_init,
};

static apr_status_t destroy_shared_store(void *data)
{
    shared_store_t *st = data;

    if (st->instance)
        st->provider->destroy(st->instance, st->s);
    st->instance = NULL;
    return APR_SUCCESS;
}

dc_store_t *decision_socache_open(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                  const char *uri, char *err, size_t err_len)
{
    shared_store_t *st = NULL;
    struct ap_socache_hints hints = {.avg_id_len = 48, .avg_obj_size = 200,
                                     .expiry_interval = apr_time_from_sec(600)};
    dc_store_t *store;
    const char *msg, *arg;
    apr_size_t size;
    apr_status_t rv;

    if ((msg = parse_size(ptemp, uri, &size)) != NULL) {
        apr_cpystrn(err, msg, err_len);
        return NULL;
    }
    /* One segment per configuration generation for the whole server: every
     * service (vhost) keys its records by environment id. */
    apr_pool_userdata_get((void **)&st, DECISION_SOCACHE_KEY, pconf);
    if (!st) {
        st = apr_pcalloc(pconf, sizeof(*st));
        st->s = s;
        st->size = size;
        st->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb",
                                          AP_SOCACHE_PROVIDER_VERSION);
        if (!st->provider) {
            apr_cpystrn(err, "DecisionStore memory needs mod_socache_shmcb "
                             "(LoadModule socache_shmcb_module)", err_len);
            return NULL;
        }
        /* shmcb's argument is "file(size)"; it uses anonymous shared memory
         * and falls back on the named file only where that is unavailable. */
        arg = apr_psprintf(ptemp, "%s(%" APR_SIZE_T_FMT ")",
                           ap_runtime_dir_relative(ptemp, "decision-store.shm"), size);
        if ((msg = st->provider->create(&st->instance, arg, ptemp, pconf)) != NULL) {
            apr_snprintf(err, err_len, "memory store: %s", msg);
            return NULL;
        }
        rv = ap_global_mutex_create(&st->mutex, NULL, DECISION_STORE_MUTEX, NULL, s, pconf, 0);
        if (rv != APR_SUCCESS) {
            apr_snprintf(err, err_len, "memory store: cannot create the %s mutex (%pm)",
                         DECISION_STORE_MUTEX, &rv);
            return NULL;
        }
        rv = st->provider->init(st->instance, "mod_decision", &hints, s, pconf);
        if (rv != APR_SUCCESS) {
            apr_snprintf(err, err_len, "memory store: cannot set up %" APR_SIZE_T_FMT
                                       " bytes of shared memory (%pm)", size, &rv);
            return NULL;
        }
        apr_pool_cleanup_register(pconf, st, destroy_shared_store, apr_pool_cleanup_null);
        apr_pool_userdata_set(st, DECISION_SOCACHE_KEY, apr_pool_cleanup_null, pconf);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     DCLOGNO(10444) "memory store: %" APR_SIZE_T_FMT
                                    " bytes of shared memory for all children (not kept "
                                    "across restarts)", size);
    } else if (size != st->size) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     DCLOGNO(10445) "DecisionStore %s: the server's memory store is already "
                                    "%" APR_SIZE_T_FMT " bytes; one segment serves every vhost",
                     uri, st->size);
    }
    store = apr_pcalloc(pconf, sizeof(*store));
    store->provider = &socache_provider;
    store->impl = st;
    store->uri = apr_pstrdup(pconf, uri);
    store->prefix = "";
    return store;
}
