/*
 * dc_arena: where a config snapshot's memory comes from while it is parsed.
 *
 * Either the snapshot's own APR pool (a process's private snapshot), or a
 * fixed block of memory, filled from its start (a slot of memory that every
 * process of a server maps at the same address: dc_share.h). A block that
 * turns out too small does not stop the parse: what does not fit goes to an
 * overflow pool, the arena remembers it, and the caller throws the result
 * away (dc_arena_overflowed) instead of sharing pointers into one process's
 * heap.
 */
#ifndef DC_ARENA_H
#define DC_ARENA_H

#include <apr_pools.h>
#include <stddef.h>

typedef struct {
    apr_pool_t *pool;     /* the snapshot's pool; NULL: the block below */
    char *next, *end;     /* the block's free part */
    apr_pool_t *overflow; /* made when the block is full, destroyed by dc_arena_finish */
} dc_arena_t;

void dc_arena_init_pool(dc_arena_t *a, apr_pool_t *pool);
void dc_arena_init_block(dc_arena_t *a, void *block, size_t size);

/* Aligned for any type, like apr_palloc. Never NULL (an APR pool aborts when
 * out of memory). */
void *dc_arena_alloc(dc_arena_t *a, size_t n);
void *dc_arena_calloc(dc_arena_t *a, size_t n);
/* A NUL-terminated copy of n bytes. */
char *dc_arena_strndup(dc_arena_t *a, const char *s, size_t n);
char *dc_arena_strdup(dc_arena_t *a, const char *s);
void *dc_arena_memdup(dc_arena_t *a, const void *s, size_t n);

/* Bytes of the block used so far. */
size_t dc_arena_used(const dc_arena_t *a, const void *block);
/* Whether anything went to the overflow pool. */
int dc_arena_overflowed(const dc_arena_t *a);
/* Destroys the overflow pool, if any. */
void dc_arena_finish(dc_arena_t *a);

#endif
