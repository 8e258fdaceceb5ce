/*
 * dc_slot: the current config snapshot of a service, swapped atomically.
 *
 * Readers (every request) take a reference without a lock: load the pointer,
 * increment its count, and check the pointer did not change meanwhile. A
 * publisher swaps the pointer and retires the old snapshot; retired
 * snapshots are released only after a grace period (a reader sits between
 * its load and its increment for nanoseconds; we wait at least a second), so
 * a reader never touches freed memory: by the next publish, or by the first
 * reader after the grace period (then that request pays for the release,
 * once per swap), so that a process does not hold two big snapshots between
 * swaps. Publishes happen once per poll interval at most, so the retired list
 * stays tiny.
 */
#ifndef DC_SLOT_H
#define DC_SLOT_H

#include "dc_config.h"

#include <apr_thread_mutex.h>
#include <apr_time.h>

typedef struct dc_retired dc_retired_t;

typedef struct {
    dc_config_t *current; /* read and swapped with __atomic builtins */
    apr_thread_mutex_t *publish_lock; /* publishers only */
    dc_retired_t *retired;
    volatile apr_uint32_t generation; /* bumped on each publish */
    apr_time_t published_at;
} dc_slot_t;

int dc_slot_init(dc_slot_t *slot, apr_pool_t *p);
/* A new reference to the current snapshot, or NULL when none is loaded. Also
 * releases the retired snapshots whose grace period is over. */
dc_config_t *dc_slot_acquire(dc_slot_t *slot);
/* Makes cfg current (the slot takes the caller's reference). */
void dc_slot_publish(dc_slot_t *slot, dc_config_t *cfg);
/* Releases everything (at shutdown, when no reader is left). */
void dc_slot_clear(dc_slot_t *slot);

#endif
