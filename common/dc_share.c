#include "dc_share.h"

#include <apr_shm.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { SLOT_FREE = 0, SLOT_BUSY = 1 };

struct dc_share {
    char *slots;          /* page-aligned */
    size_t slot_bytes;    /* a multiple of the page size */
    size_t page;
    volatile uint32_t published; /* slot + 1, 0: none */
    volatile uint32_t state[DC_SHARE_SLOTS];
};

static char *slot_at(const dc_share_t *sh, unsigned i)
{
    return sh->slots + (size_t)i * sh->slot_bytes;
}

static unsigned slot_of(const dc_share_t *sh, const dc_config_t *cfg)
{
    return (unsigned)(((const char *)cfg - sh->slots) / sh->slot_bytes);
}

/* Gives a slot's pages back and frees it. MADV_REMOVE frees the shared
 * memory itself (MADV_DONTNEED would only unmap it here); later reads of the
 * slot see zeros. */
static void give_back(dc_share_t *sh, unsigned i, size_t used)
{
#ifdef MADV_REMOVE
    size_t len = (used + sh->page - 1) & ~(sh->page - 1);

    if (len)
        madvise(slot_at(sh, i), len, MADV_REMOVE);
#else
    (void)used;
#endif
    __atomic_store_n(&sh->state[i], SLOT_FREE, __ATOMIC_RELEASE);
}

static void release(dc_config_t *cfg)
{
    dc_share_t *sh = cfg->release_baton;

    give_back(sh, slot_of(sh, cfg), cfg->block_used);
}

dc_share_t *dc_share_create(apr_pool_t *p, size_t slot_bytes, char *err, size_t err_len)
{
    long page = sysconf(_SC_PAGESIZE);
    apr_shm_t *shm;
    apr_status_t rv;
    dc_share_t *sh;
    uintptr_t base;
    size_t size;

    if (page <= 0)
        page = 4096;
    slot_bytes = (slot_bytes + (size_t)page - 1) & ~((size_t)page - 1);
    /* a page to align the start (APR keeps a header there), one for the
     * counters, then the slots */
    size = 2 * (size_t)page + DC_SHARE_SLOTS * slot_bytes;
    /* Anonymous: inherited by every child at the same address; pages cost
     * memory only once written, and until given back. */
    if ((rv = apr_shm_create(&shm, size, NULL, p)) != APR_SUCCESS) {
        char buf[120];

        snprintf(err, err_len, "cannot map %zu bytes of shared memory: %s", size,
                 apr_strerror(rv, buf, sizeof(buf)));
        return NULL;
    }
    base = ((uintptr_t)apr_shm_baseaddr_get(shm) + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    sh = (dc_share_t *)base;
    memset(sh, 0, sizeof(*sh));
    sh->slots = (char *)base + page;
    sh->slot_bytes = slot_bytes;
    sh->page = (size_t)page;
    return sh;
}

int dc_share_parse(dc_share_t *sh, uint32_t tag, const char *data, size_t len,
                   dc_config_t **out, dc_config_error_t *err)
{
    unsigned i;
    int rc;

    *out = NULL;
    for (i = 0; i < DC_SHARE_SLOTS; i++) {
        uint32_t expected = SLOT_FREE;

        if (__atomic_compare_exchange_n(&sh->state[i], &expected, SLOT_BUSY, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            break;
    }
    if (i == DC_SHARE_SLOTS) {
        memset(err, 0, sizeof(*err));
        snprintf(err->text, sizeof(err->text),
                 "all %d shared slots hold snapshots some process still serves", DC_SHARE_SLOTS);
        return 1;
    }
    rc = dc_config_parse_block(data, len, slot_at(sh, i), sh->slot_bytes, out, err);
    if (rc != 0) {
        give_back(sh, i, sh->slot_bytes); /* what the parse touched, at most */
        return rc;
    }
    (*out)->release = release;
    (*out)->release_baton = sh;
    (*out)->tag = tag;
    /* the snapshot is complete before anyone can count a reference to it */
    __atomic_store_n(&(*out)->refs, 1, __ATOMIC_RELEASE);
    return 0;
}

void dc_share_publish(dc_share_t *sh, dc_config_t *cfg)
{
    uint32_t was;

    if (cfg && cfg->release_baton != sh)
        cfg = NULL; /* a process's own snapshot: nothing to share */
    if (cfg)
        dc_config_ref(cfg);
    was = __atomic_exchange_n(&sh->published, cfg ? slot_of(sh, cfg) + 1 : 0, __ATOMIC_ACQ_REL);
    if (was)
        dc_config_unref((dc_config_t *)slot_at(sh, was - 1));
}

/* A reference, unless the count already reached 0 (released, or being reused). */
static int ref_if_live(dc_config_t *cfg)
{
    uint32_t refs = __atomic_load_n(&cfg->refs, __ATOMIC_ACQUIRE);

    do {
        if (refs == 0)
            return 0;
    } while (!__atomic_compare_exchange_n(&cfg->refs, &refs, refs + 1, 1, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    return 1;
}

dc_config_t *dc_share_acquire(dc_share_t *sh, uint32_t tag)
{
    uint32_t at = __atomic_load_n(&sh->published, __ATOMIC_ACQUIRE);
    dc_config_t *cfg;

    if (!at)
        return NULL;
    cfg = (dc_config_t *)slot_at(sh, at - 1);
    if (!ref_if_live(cfg))
        return NULL;
    if (__atomic_load_n(&cfg->tag, __ATOMIC_ACQUIRE) != tag) {
        dc_config_unref(cfg); /* another publication, or the slot's next one */
        return NULL;
    }
    return cfg;
}

unsigned dc_share_slots_in_use(const dc_share_t *sh)
{
    unsigned n = 0;

    for (unsigned i = 0; i < DC_SHARE_SLOTS; i++)
        n += __atomic_load_n(&sh->state[i], __ATOMIC_ACQUIRE) != SLOT_FREE;
    return n;
}
