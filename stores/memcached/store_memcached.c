/*
 * The memcached store, a store plugin (decision/store_plugin.h) built with the
 * tree when configure finds libmemcached, and installed next to the module:
 *
 *   DecisionStore plugin:/usr/lib/mod_decision/store_memcached.so?servers=10.0.0.5:11211
 *
 * options: servers (host:port[,host:port...], default 127.0.0.1:11211; keys
 * are spread over them by libmemcached's consistent hashing), ttl (seconds,
 * default 7776000 = 90 days, 0 = no expiry), timeout_ms (connect and each
 * read or write, default 50), prefix (key prefix, default none).
 *
 * Records. One item per (environment, id), holding the record in the format
 * of the memory and DBM stores (host->assignments_encode), so a record moved
 * between them reads the same. The key is prefix + env + "/" + id with every
 * byte outside [A-Za-z0-9._~-] %-escaped (memcached's text protocol allows
 * no spaces or control characters in a key); when that is longer than
 * memcached's 250 bytes, prefix + "#" + the SHA-1 of env NUL id in hex.
 * A save is a read-modify-write made safe by memcached's CAS: gets, merge,
 * cas (or add for a new record), retried when another writer came between.
 * memcached treats an expiry over 30 days as a Unix time, so a longer ttl is
 * sent as now + ttl.
 *
 * Connections. A memcached_st is not thread-safe: a thread takes a clone of
 * the configured one from a pool of idle clones under a mutex (held only for
 * the pop/push), or makes one, and gives it back after its call. A clone that
 * saw an error is freed instead (its connection state is unknown), so the
 * next call connects afresh. open() connects nowhere, so httpd's parent holds
 * no connection when it forks; child_init forgets whatever the parent pooled
 * without closing it (the parent's sockets are not the child's to close).
 *
 * Outages are the server's business (backoff, replay, metrics): a call that
 * fails answers DC_STORE_UNAVAILABLE at most timeout_ms (per round trip)
 * later, and health() says what libmemcached reported.
 */
#include <decision/store_plugin.h>

#include <apr_sha1.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MC_DEFAULT_SERVERS "127.0.0.1:11211"
#define MC_DEFAULT_TTL_S 7776000L
#define MC_DEFAULT_TIMEOUT_MS 50
#define MC_MAX_KEY 250
#define MC_MAX_IDLE 256
#define MC_CAS_ATTEMPTS 5
#define MC_RELATIVE_TTL_MAX (30L * 86400) /* memcached: above, an expiry is a Unix time */

typedef struct idle idle_t;
struct idle {
    idle_t *next;
    memcached_st *mc;
};

typedef struct {
    const dc_store_host_t *host;
    memcached_st *master; /* configured, never used for I/O: cloned per connection */
    const char *servers;
    const char *prefix;
    size_t prefix_len;
    long ttl_s;
    apr_thread_mutex_t *mutex;
    /* Under mutex: */
    idle_t *idle;
    size_t n_idle;
    pid_t pid;
    int failing;
    char error[160];
} mc_store_t;

static const char unreserved[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";

static char *escape_into(char *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c && strchr(unreserved, c)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    return o;
}

static char *make_key(apr_pool_t *p, const mc_store_t *m, const char *env_id, const char *id,
                      size_t id_len, size_t *len)
{
    size_t env_len = strlen(env_id);
    char *key = apr_palloc(p, m->prefix_len + 3 * (env_len + id_len) + 2), *o = key;

    memcpy(o, m->prefix, m->prefix_len);
    o = escape_into(o + m->prefix_len, env_id, env_len);
    *o++ = '/';
    o = escape_into(o, id, id_len);
    if ((size_t)(o - key) > MC_MAX_KEY) {
        static const char hex[] = "0123456789abcdef";
        unsigned char digest[APR_SHA1_DIGESTSIZE];
        apr_sha1_ctx_t ctx;

        apr_sha1_init(&ctx);
        apr_sha1_update_binary(&ctx, (const unsigned char *)env_id, (unsigned)env_len + 1);
        apr_sha1_update_binary(&ctx, (const unsigned char *)id, (unsigned)id_len);
        apr_sha1_final(digest, &ctx);
        o = key + m->prefix_len;
        *o++ = '#';
        for (int i = 0; i < APR_SHA1_DIGESTSIZE; i++) {
            *o++ = hex[digest[i] >> 4];
            *o++ = hex[digest[i] & 15];
        }
    }
    *len = (size_t)(o - key);
    return key;
}

static memcached_st *acquire(mc_store_t *m)
{
    memcached_st *mc = NULL;
    idle_t *i = NULL;

    apr_thread_mutex_lock(m->mutex);
    if (m->pid != getpid()) { /* forked without child_init: forget the parent's */
        m->idle = NULL;
        m->n_idle = 0;
        m->pid = getpid();
    }
    if ((i = m->idle) != NULL) {
        m->idle = i->next;
        m->n_idle--;
        mc = i->mc;
    } else {
        mc = memcached_clone(NULL, m->master);
    }
    apr_thread_mutex_unlock(m->mutex);
    free(i);
    return mc;
}

/* ok: the call went through (a clone that failed is freed, not pooled). */
static void release(mc_store_t *m, memcached_st *mc, int ok)
{
    idle_t *i = ok ? malloc(sizeof(*i)) : NULL;

    if (i) {
        apr_thread_mutex_lock(m->mutex);
        if (m->n_idle < MC_MAX_IDLE && m->pid == getpid()) {
            i->mc = mc;
            i->next = m->idle;
            m->idle = i;
            m->n_idle++;
            mc = NULL;
            i = NULL;
        }
        m->failing = 0;
        apr_thread_mutex_unlock(m->mutex);
    }
    free(i);
    if (mc)
        memcached_free(mc);
}

static void failed(mc_store_t *m, memcached_st *mc, const char *what, memcached_return_t rc)
{
    apr_thread_mutex_lock(m->mutex);
    snprintf(m->error, sizeof(m->error), "%s: %s", what,
             mc ? memcached_last_error_message(mc) : memcached_strerror(NULL, rc));
    m->failing = 1;
    apr_thread_mutex_unlock(m->mutex);
    if (mc)
        memcached_free(mc);
}

/* The record of key and its CAS; MEMCACHED_NOTFOUND when there is none. */
static memcached_return_t fetch(memcached_st *mc, apr_pool_t *p, const char *key, size_t key_len,
                                char **value, size_t *value_len, uint64_t *cas)
{
    const char *keys[1] = {key};
    size_t lens[1] = {key_len};
    memcached_return_t rc = memcached_mget(mc, keys, lens, 1), frc;
    memcached_result_st *result;

    if (rc != MEMCACHED_SUCCESS)
        return rc;
    rc = MEMCACHED_NOTFOUND;
    while ((result = memcached_fetch_result(mc, NULL, &frc)) != NULL) {
        if (rc == MEMCACHED_NOTFOUND) {
            *value_len = memcached_result_length(result);
            *value = apr_pmemdup(p, memcached_result_value(result), *value_len);
            *cas = memcached_result_cas(result);
            rc = MEMCACHED_SUCCESS;
        }
        memcached_result_free(result);
    }
    if (frc != MEMCACHED_END && frc != MEMCACHED_SUCCESS && frc != MEMCACHED_NOTFOUND)
        return frc;
    return rc;
}

static dc_store_status_e mc_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                 const char *id, size_t id_len, dc_assignments_t *out)
{
    mc_store_t *m = s->impl;
    size_t key_len, value_len = 0;
    char *key = make_key(p, m, env_id, id, id_len, &key_len), *value = NULL;
    memcached_st *mc = acquire(m);
    memcached_return_t rc;
    uint64_t cas;

    if (!mc) {
        failed(m, NULL, "get", MEMCACHED_MEMORY_ALLOCATION_FAILURE);
        return DC_STORE_UNAVAILABLE;
    }
    rc = fetch(mc, p, key, key_len, &value, &value_len, &cas);
    if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) {
        failed(m, mc, "get", rc);
        return DC_STORE_UNAVAILABLE;
    }
    release(m, mc, 1);
    if (rc == MEMCACHED_NOTFOUND)
        return DC_STORE_NOT_FOUND;
    if (m->host->assignments_decode(p, value, value_len, out) < 0) {
        m->host->log(DC_STORE_LOG_WARN,
                     "store memcached %s: the item of a %zu-byte key is not an assignment "
                     "record; ignored",
                     m->servers, key_len);
        memset(out, 0, sizeof(*out));
        return DC_STORE_NOT_FOUND;
    }
    return out->n ? DC_STORE_OK : DC_STORE_NOT_FOUND;
}

static dc_store_status_e mc_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                 const char *id, size_t id_len, const dc_assignments_t *changes,
                                 int64_t now_ms)
{
    mc_store_t *m = s->impl;
    size_t key_len;
    char *key = make_key(p, m, env_id, id, id_len, &key_len);
    time_t expiry = m->ttl_s > MC_RELATIVE_TTL_MAX ? time(NULL) + m->ttl_s : m->ttl_s;
    memcached_st *mc = acquire(m);
    memcached_return_t rc = MEMCACHED_SUCCESS;

    if (!mc) {
        failed(m, NULL, "set", MEMCACHED_MEMORY_ALLOCATION_FAILURE);
        return DC_STORE_UNAVAILABLE;
    }
    for (int attempt = 0; attempt < MC_CAS_ATTEMPTS; attempt++) {
        dc_assignments_t record;
        char *value = NULL, *rec;
        size_t value_len = 0, rec_len;
        uint64_t cas = 0;

        memset(&record, 0, sizeof(record));
        rc = fetch(mc, p, key, key_len, &value, &value_len, &cas);
        if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND)
            break;
        if (rc == MEMCACHED_SUCCESS &&
            m->host->assignments_decode(p, value, value_len, &record) < 0)
            memset(&record, 0, sizeof(record)); /* garbage: replaced */
        m->host->assignments_merge(p, &record, changes, now_ms);
        rec = m->host->assignments_encode(p, &record, &rec_len);
        if (rc == MEMCACHED_SUCCESS)
            rc = memcached_cas(mc, key, key_len, rec, rec_len, expiry, 0, cas);
        else
            rc = memcached_add(mc, key, key_len, rec, rec_len, expiry, 0);
        if (rc != MEMCACHED_DATA_EXISTS && rc != MEMCACHED_NOTSTORED &&
            rc != MEMCACHED_NOTFOUND)
            break; /* stored, or an error; else another writer came between: again */
    }
    if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_STORED) {
        release(m, mc, 1);
        return DC_STORE_OK;
    }
    if (rc == MEMCACHED_DATA_EXISTS || rc == MEMCACHED_NOTSTORED || rc == MEMCACHED_NOTFOUND) {
        release(m, mc, 1);
        m->host->log(DC_STORE_LOG_WARN,
                     "store memcached %s: a record changed under %d saves in a row; this one "
                     "was not written",
                     m->servers, MC_CAS_ATTEMPTS);
        return DC_STORE_UNAVAILABLE;
    }
    failed(m, mc, "set", rc);
    return DC_STORE_UNAVAILABLE;
}

static dc_store_health_e mc_health(dc_store_t *s, const char **detail)
{
    static _Thread_local char buf[300];
    mc_store_t *m = s->impl;
    int failing;

    apr_thread_mutex_lock(m->mutex);
    failing = m->failing;
    if (failing)
        snprintf(buf, sizeof(buf), "memcached %s: %s", m->servers, m->error);
    else
        snprintf(buf, sizeof(buf), "memcached %s: ok", m->servers);
    apr_thread_mutex_unlock(m->mutex);
    *detail = buf;
    return failing ? DC_STORE_HEALTH_DEGRADED : DC_STORE_HEALTH_OK;
}

static void mc_child_init(dc_store_t *s, apr_pool_t *pchild)
{
    mc_store_t *m = s->impl;

    (void)pchild;
    m->idle = NULL; /* the parent's clones: not ours to close (none in httpd's parent) */
    m->n_idle = 0;
    m->pid = getpid();
}

static void mc_close(dc_store_t *s)
{
    mc_store_t *m = s->impl;

    while (m->idle) {
        idle_t *i = m->idle;

        m->idle = i->next;
        if (m->pid == getpid())
            memcached_free(i->mc);
        free(i);
    }
    m->n_idle = 0;
    memcached_free(m->master);
    m->master = NULL;
}

static int parse_long(const char *v, long min, long max, long *out)
{
    char *end;
    long n;

    if (!*v || *v == '-' || *v == '+')
        return -1;
    n = strtol(v, &end, 10);
    if (*end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

static int mc_open(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *args, char *err,
                   size_t err_len)
{
    mc_store_t *m = apr_pcalloc(p, sizeof(*m));
    long timeout_ms = MC_DEFAULT_TIMEOUT_MS;
    memcached_server_list_st list;
    memcached_return_t rc;

    m->host = args->host;
    m->servers = MC_DEFAULT_SERVERS;
    m->prefix = "";
    m->ttl_s = MC_DEFAULT_TTL_S;
    for (size_t i = 0; i < args->n_options; i++) {
        const char *k = args->options[i].key, *v = args->options[i].value;
        int bad = 0;

        if (strcmp(k, "servers") == 0)
            bad = !*(m->servers = v) || strlen(v) > 1024;
        else if (strcmp(k, "ttl") == 0)
            bad = parse_long(v, 0, 100L * 366 * 86400, &m->ttl_s);
        else if (strcmp(k, "timeout_ms") == 0)
            bad = parse_long(v, 1, 60000, &timeout_ms);
        else if (strcmp(k, "prefix") == 0)
            bad = strlen(m->prefix = v) > 64 || strpbrk(v, " \t\r\n") != NULL;
        else {
            snprintf(err, err_len, "unknown option \"%.40s\" (servers, ttl, timeout_ms, prefix)",
                     k);
            return -1;
        }
        if (bad) {
            snprintf(err, err_len, "bad value for option \"%s\"", k);
            return -1;
        }
    }
    m->prefix_len = strlen(m->prefix);
    list = memcached_servers_parse(m->servers);
    if (!list) {
        snprintf(err, err_len, "servers \"%.200s\": expected host:port[,host:port...]",
                 m->servers);
        return -1;
    }
    m->master = memcached_create(NULL);
    if (!m->master) {
        memcached_server_list_free(list);
        snprintf(err, err_len, "cannot create a libmemcached handle");
        return -1;
    }
    rc = memcached_server_push(m->master, list);
    memcached_server_list_free(list);
    if (rc != MEMCACHED_SUCCESS) {
        snprintf(err, err_len, "servers \"%.200s\": %s", m->servers,
                 memcached_strerror(m->master, rc));
        memcached_free(m->master);
        return -1;
    }
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_NO_BLOCK, 1);
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, (uint64_t)timeout_ms);
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, (uint64_t)timeout_ms);
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, (uint64_t)timeout_ms * 1000);
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_SND_TIMEOUT, (uint64_t)timeout_ms * 1000);
    memcached_behavior_set(m->master, MEMCACHED_BEHAVIOR_DISTRIBUTION,
                           MEMCACHED_DISTRIBUTION_CONSISTENT);
    if (apr_thread_mutex_create(&m->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        memcached_free(m->master);
        snprintf(err, err_len, "cannot create a mutex");
        return -1;
    }
    m->pid = getpid();
    m->servers = apr_pstrdup(p, m->servers);
    s->impl = m;
    s->prefix = m->prefix;
    return 0;
}

static const dc_store_provider_t memcached_provider = {
    .name = "memcached",
    .open = mc_open,
    .load = mc_load,
    .save = mc_save,
    .health = mc_health,
    .child_init = mc_child_init,
    .close = mc_close,
};

DC_STORE_PLUGIN_EXPORT const dc_store_plugin_t decision_store_plugin = {
    .abi_version = DC_STORE_PLUGIN_ABI,
    .version = PACKAGE_VERSION,
    .provider = &memcached_provider,
};
