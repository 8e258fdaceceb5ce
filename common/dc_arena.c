#include "dc_arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN ((size_t)alignof(max_align_t))

void dc_arena_init_pool(dc_arena_t *a, apr_pool_t *pool)
{
    memset(a, 0, sizeof(*a));
    a->pool = pool;
}

void dc_arena_init_block(dc_arena_t *a, void *block, size_t size)
{
    memset(a, 0, sizeof(*a));
    a->next = block;
    a->end = (char *)block + size;
}

void *dc_arena_alloc(dc_arena_t *a, size_t n)
{
    uintptr_t at;
    size_t room;

    if (a->pool)
        return apr_palloc(a->pool, n);
    at = ((uintptr_t)a->next + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
    room = at <= (uintptr_t)a->end ? (size_t)((uintptr_t)a->end - at) : 0;
    if (n <= room) {
        a->next = (char *)at + n;
        return (void *)at;
    }
    if (!a->overflow && apr_pool_create(&a->overflow, NULL) != APR_SUCCESS)
        abort();
    return apr_palloc(a->overflow, n);
}

void *dc_arena_calloc(dc_arena_t *a, size_t n)
{
    return memset(dc_arena_alloc(a, n), 0, n);
}

char *dc_arena_strndup(dc_arena_t *a, const char *s, size_t n)
{
    char *out = dc_arena_alloc(a, n + 1);

    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

char *dc_arena_strdup(dc_arena_t *a, const char *s)
{
    return dc_arena_strndup(a, s, strlen(s));
}

void *dc_arena_memdup(dc_arena_t *a, const void *s, size_t n)
{
    void *out = dc_arena_alloc(a, n ? n : 1);

    if (n)
        memcpy(out, s, n);
    return out;
}

size_t dc_arena_used(const dc_arena_t *a, const void *block)
{
    return a->pool ? 0 : (size_t)(a->next - (const char *)block);
}

int dc_arena_overflowed(const dc_arena_t *a)
{
    return a->overflow != NULL;
}

void dc_arena_finish(dc_arena_t *a)
{
    if (a->overflow)
        apr_pool_destroy(a->overflow);
    a->overflow = NULL;
}
