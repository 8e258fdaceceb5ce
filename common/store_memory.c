/*
 * The in-process memory store: a bounded hash table with LRU eviction.
 *
 * Keys are "env_id" NUL "id" (a NUL cannot occur in an environment id, so two
 * different pairs never make the same key, whatever bytes the visitor id
 * holds). Values are the encoded record (dc_assignments_encode), so memory,
 * dbm and the shared-memory store of the httpd module keep the same logical
 * record. One mutex guards the table: load and save are a hash lookup and a
 * memcpy under it, short next to the rest of a request.
 *
 * Cost: O(1) average per operation; max_entries bounds memory at roughly
 * max_entries * (key + record + 64) bytes. The least recently used record is
 * evicted when a new one would exceed the bound.
 */
#include "dc_store.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry entry_t;
struct entry {
    entry_t *next_in_bucket;
    entry_t *lru_prev, *lru_next; /* most recent at head */
    uint32_t hash;
    size_t key_len;
    char *value;
    size_t value_len;
    char key[];
};

typedef struct {
    apr_thread_mutex_t *lock;
    entry_t **buckets;
    size_t n_buckets; /* power of two */
    size_t n_entries;
    size_t max_entries;
    entry_t *lru_head, *lru_tail;
    size_t evictions;
} memory_store_t;

static uint32_t key_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static apr_status_t memory_cleanup(void *data)
{
    memory_store_t *m = data;

    for (entry_t *e = m->lru_head, *next; e; e = next) {
        next = e->lru_next;
        free(e->value);
        free(e);
    }
    free(m->buckets);
    m->buckets = NULL;
    m->lru_head = m->lru_tail = NULL;
    m->n_entries = 0;
    return APR_SUCCESS;
}

static void *dc_store_memory_create(apr_pool_t *p, size_t max_entries)
{
    memory_store_t *m = apr_pcalloc(p, sizeof(*m));
    size_t n = 64;

    while (n < max_entries && n < ((size_t)1 << 30))
        n <<= 1;
    m->buckets = calloc(n, sizeof(*m->buckets));
    if (!m->buckets)
        return NULL;
    m->n_buckets = n;
    m->max_entries = max_entries;
    if (apr_thread_mutex_create(&m->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        free(m->buckets);
        return NULL;
    }
    apr_pool_cleanup_register(p, m, memory_cleanup, apr_pool_cleanup_null);
    return m;
}

static entry_t **find_slot(memory_store_t *m, const char *key, size_t len, uint32_t h)
{
    entry_t **slot = &m->buckets[h & (m->n_buckets - 1)];

    while (*slot && !((*slot)->hash == h && (*slot)->key_len == len &&
                      memcmp((*slot)->key, key, len) == 0))
        slot = &(*slot)->next_in_bucket;
    return slot;
}

static void lru_unlink(memory_store_t *m, entry_t *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        m->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        m->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(memory_store_t *m, entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = m->lru_head;
    if (m->lru_head)
        m->lru_head->lru_prev = e;
    m->lru_head = e;
    if (!m->lru_tail)
        m->lru_tail = e;
}

static void evict_one(memory_store_t *m)
{
    entry_t *victim = m->lru_tail;
    entry_t **slot;

    if (!victim)
        return;
    slot = find_slot(m, victim->key, victim->key_len, victim->hash);
    *slot = victim->next_in_bucket;
    lru_unlink(m, victim);
    free(victim->value);
    free(victim);
    m->n_entries--;
    m->evictions++;
}

static dc_store_status_e memory_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                     const char *id, size_t id_len, dc_assignments_t *out)
{
    memory_store_t *m = s->impl;
    size_t key_len, value_len = 0;
    char *key = dc_store_memory_key(p, env_id, id, id_len, &key_len);
    uint32_t h = key_hash(key, key_len);
    char *copy = NULL;
    entry_t *e;

    apr_thread_mutex_lock(m->lock);
    e = *find_slot(m, key, key_len, h);
    if (e) {
        lru_unlink(m, e);
        lru_push_front(m, e);
        copy = apr_pmemdup(p, e->value, e->value_len);
        value_len = e->value_len;
    }
    apr_thread_mutex_unlock(m->lock);
    if (!copy)
        return DC_STORE_NOT_FOUND;
    return dc_assignments_decode(p, copy, value_len, out) == 0 ? DC_STORE_OK : DC_STORE_NOT_FOUND;
}

static dc_store_status_e memory_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                     const char *id, size_t id_len, const dc_assignments_t *changes,
                                     int64_t now_ms)
{
    memory_store_t *m = s->impl;
    size_t key_len, value_len;
    char *key = dc_store_memory_key(p, env_id, id, id_len, &key_len);
    uint32_t h = key_hash(key, key_len);
    dc_assignments_t merged;
    entry_t **slot, *e;
    char *value, *encoded;
    dc_store_status_e rc = DC_STORE_OK;

    apr_thread_mutex_lock(m->lock);
    slot = find_slot(m, key, key_len, h);
    e = *slot;
    memset(&merged, 0, sizeof(merged));
    if (e && dc_assignments_decode(p, e->value, e->value_len, &merged) < 0)
        memset(&merged, 0, sizeof(merged));
    dc_assignments_merge(p, &merged, changes, now_ms);
    encoded = dc_assignments_encode(p, &merged, &value_len);
    value = malloc(value_len);
    if (!value) {
        rc = DC_STORE_UNAVAILABLE;
        goto out;
    }
    memcpy(value, encoded, value_len);
    if (e) {
        free(e->value);
        e->value = value;
        e->value_len = value_len;
        lru_unlink(m, e);
        lru_push_front(m, e);
        goto out;
    }
    if (m->n_entries >= m->max_entries) {
        evict_one(m);
        slot = find_slot(m, key, key_len, h); /* eviction may have changed the chain */
    }
    e = malloc(sizeof(*e) + key_len);
    if (!e) {
        free(value);
        rc = DC_STORE_UNAVAILABLE;
        goto out;
    }
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    e->hash = h;
    e->value = value;
    e->value_len = value_len;
    e->next_in_bucket = NULL;
    *slot = e;
    lru_push_front(m, e);
    m->n_entries++;
out:
    apr_thread_mutex_unlock(m->lock);
    return rc;
}

static dc_store_health_e memory_health(dc_store_t *s, const char **detail)
{
    *detail = "in-process memory";
    return DC_STORE_HEALTH_OK;
}

/* memory[?max_entries=N] (default 100000 records; other options are the httpd
 * module's shared-memory store's and ignored here). */
static int memory_open(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *args, char *err,
                       size_t err_len)
{
    const char *v = dc_store_option(args, "max_entries");
    size_t max_entries = 100000;

    if (v) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);

        if (end == v || *end || n == 0 || *v == '-') {
            snprintf(err, err_len, "store \"%s\": max_entries must be a positive number",
                     s->uri);
            return -1;
        }
        max_entries = (size_t)n;
    }
    s->impl = dc_store_memory_create(p, max_entries);
    if (!s->impl) {
        snprintf(err, err_len, "store \"%s\": cannot create the memory store", s->uri);
        return -1;
    }
    return 0;
}

const dc_store_provider_t dc_store_memory_provider = {
    .name = "memory", .open = memory_open, .load = memory_load, .save = memory_save,
    .health = memory_health,
};
