/*
 * A minimal assignment store plugin: records in an in-process hash table.
 * (A real one talks to a server; see stores/memcached/ and doc/store-plugins.md.)
 *
 *   cc -shared -fPIC -o store_example.so store_example.c \
 *      $(pkg-config --cflags decision-store-plugin)
 *   decision-fcgi eval --store plugin:$PWD/store_example.so?buckets=4096 ...
 */
#include <decision/store_plugin.h>

#include <apr_strings.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    size_t key_len, rec_len;
    char *key, *rec; /* env_id NUL id; the record as host->assignments_encode wrote it */
} entry_t;

typedef struct {
    const dc_store_host_t *host;
    pthread_mutex_t lock;
    size_t n_buckets;
    entry_t **buckets;
} map_t;

static entry_t **find(map_t *m, const char *key, size_t len)
{
    size_t h = 5381;

    for (size_t i = 0; i < len; i++)
        h = h * 33 + (unsigned char)key[i];
    entry_t **e = &m->buckets[h % m->n_buckets];
    while (*e && !((*e)->key_len == len && memcmp((*e)->key, key, len) == 0))
        e = &(*e)->next;
    return e;
}

static char *make_key(apr_pool_t *p, const char *env_id, const char *id, size_t id_len,
                      size_t *len)
{
    size_t env_len = strlen(env_id);
    char *key = apr_palloc(p, env_len + 1 + id_len);

    memcpy(key, env_id, env_len + 1);
    memcpy(key + env_len + 1, id, id_len);
    *len = env_len + 1 + id_len;
    return key;
}

static int example_open(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *args,
                        char *err, size_t err_len)
{
    map_t *m = apr_pcalloc(p, sizeof(*m));

    m->host = args->host;
    m->n_buckets = 1024;
    for (size_t i = 0; i < args->n_options; i++) {
        if (strcmp(args->options[i].key, "buckets") == 0 && atol(args->options[i].value) > 0) {
            m->n_buckets = (size_t)atol(args->options[i].value);
        } else {
            snprintf(err, err_len, "unknown option or bad value \"%s\" (buckets=N)",
                     args->options[i].key);
            return -1;
        }
    }
    m->buckets = apr_pcalloc(p, m->n_buckets * sizeof(*m->buckets));
    pthread_mutex_init(&m->lock, NULL);
    s->impl = m;
    return 0;
}

static dc_store_status_e example_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                      const char *id, size_t id_len, dc_assignments_t *out)
{
    map_t *m = s->impl;
    size_t len, rec_len = 0;
    char *key = make_key(p, env_id, id, id_len, &len), *rec = NULL;
    entry_t *e;

    pthread_mutex_lock(&m->lock);
    if ((e = *find(m, key, len)) != NULL && e->rec)
        rec = apr_pmemdup(p, e->rec, rec_len = e->rec_len);
    pthread_mutex_unlock(&m->lock);
    if (!rec || m->host->assignments_decode(p, rec, rec_len, out) < 0)
        return DC_STORE_NOT_FOUND;
    return DC_STORE_OK;
}

static dc_store_status_e example_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                      const char *id, size_t id_len,
                                      const dc_assignments_t *changes, int64_t now_ms)
{
    map_t *m = s->impl;
    dc_assignments_t record = {0};
    size_t len, rec_len;
    char *key = make_key(p, env_id, id, id_len, &len), *rec;
    entry_t **slot, *e;

    pthread_mutex_lock(&m->lock); /* the read-modify-write under one lock */
    slot = find(m, key, len);
    if (*slot)
        m->host->assignments_decode(p, (*slot)->rec, (*slot)->rec_len, &record);
    m->host->assignments_merge(p, &record, changes, now_ms);
    rec = m->host->assignments_encode(p, &record, &rec_len);
    if (!(e = *slot) && (e = calloc(1, sizeof(*e))) != NULL &&
        (e->key = malloc(len)) != NULL) {
        memcpy(e->key, key, len);
        e->key_len = len;
        *slot = e;
    }
    if (e && e->key && (e->rec = realloc(e->rec, rec_len)) != NULL) {
        memcpy(e->rec, rec, rec_len);
        e->rec_len = rec_len;
    }
    pthread_mutex_unlock(&m->lock);
    return e && e->rec ? DC_STORE_OK : DC_STORE_UNAVAILABLE;
}

static void example_close(dc_store_t *s)
{
    map_t *m = s->impl;

    for (size_t i = 0; i < m->n_buckets; i++)
        for (entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e->rec);
            free(e);
        }
    pthread_mutex_destroy(&m->lock);
}

static const dc_store_provider_t example_provider = {
    .name = "example",
    .open = example_open,
    .load = example_load,
    .save = example_save,
    .close = example_close,
};

DC_STORE_PLUGIN_EXPORT const dc_store_plugin_t decision_store_plugin = {
    .abi_version = DC_STORE_PLUGIN_ABI,
    .version = "1.0",
    .provider = &example_provider,
};
