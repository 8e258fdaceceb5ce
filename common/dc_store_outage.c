/*
 * The outage state shared by the out-of-process stores (dc_store.h): the
 * backoff window and the bounded queue of saves to replay.
 */
#include "dc_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dc_store_outage_may_try(dc_store_outage_t *o, apr_time_t now)
{
    if (!o->failing)
        return 1;
    if (now < o->retry_at)
        return 0;
    o->retry_at = now + o->backoff; /* this caller probes; the others keep skipping */
    return 1;
}

int dc_store_outage_fail(dc_store_outage_t *o, apr_time_t now, const char *fmt, ...)
{
    int first = !o->failing;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(o->error, sizeof(o->error), fmt, ap);
    va_end(ap);
    if (first)
        o->backoff = DC_STORE_MIN_BACKOFF;
    else
        o->backoff = o->backoff * 2 > o->max_backoff ? o->max_backoff : o->backoff * 2;
    o->retry_at = now + o->backoff;
    o->failing = 1;
    return first;
}

void dc_store_outage_describe(const dc_store_outage_t *o, apr_time_t now, char *buf, size_t len)
{
    /* the error cut so the window always shows */
    snprintf(buf, len, "%.*s; next try in %lld ms", (int)(len > 48 ? len - 48 : 0), o->error,
             o->retry_at > now ? (long long)apr_time_as_msec(o->retry_at - now) : 0LL);
}

int dc_store_outage_ok(dc_store_outage_t *o)
{
    int was = o->failing;

    o->failing = 0;
    o->backoff = 0;
    return was;
}

dc_store_pending_t *dc_store_pending_new(const void *data, size_t len, int n)
{
    dc_store_pending_t *e = malloc(sizeof(*e) + len + 1);

    if (e) {
        e->next = NULL;
        e->n = n;
        e->len = len;
        if (data)
            memcpy(e->data, data, len);
        e->data[len] = '\0';
    }
    return e;
}

void dc_store_pending_free(dc_store_pending_t *list)
{
    while (list) {
        dc_store_pending_t *next = list->next;

        free(list);
        list = next;
    }
}

int dc_store_outage_queue(dc_store_outage_t *o, dc_store_pending_t *e)
{
    if (!e || o->n_pending >= DC_STORE_MAX_PENDING ||
        o->pending_bytes + e->len > DC_STORE_MAX_PENDING_BYTES) {
        o->pending_dropped++;
        return -1;
    }
    e->next = NULL;
    if (o->pending_tail)
        o->pending_tail->next = e;
    else
        o->pending = e;
    o->pending_tail = e;
    o->n_pending++;
    o->pending_bytes += e->len;
    return 0;
}

dc_store_pending_t *dc_store_outage_take(dc_store_outage_t *o, size_t max, size_t *n)
{
    dc_store_pending_t *list = o->pending, *last = NULL, *e = list;
    size_t taken = 0;

    while (e && (max == 0 || taken < max)) {
        o->pending_bytes -= e->len;
        taken++;
        last = e;
        e = e->next;
    }
    if (last)
        last->next = NULL;
    o->pending = e;
    if (!e)
        o->pending_tail = NULL;
    o->n_pending -= taken;
    *n = taken;
    return taken ? list : NULL;
}

void dc_store_outage_requeue(dc_store_outage_t *o, dc_store_pending_t *list)
{
    dc_store_pending_t *last = NULL;

    for (dc_store_pending_t *e = list; e; e = e->next) {
        o->n_pending++;
        o->pending_bytes += e->len;
        last = e;
    }
    if (!last)
        return;
    last->next = o->pending;
    if (!o->pending)
        o->pending_tail = last;
    o->pending = list;
}

void dc_store_outage_drop_queue(dc_store_outage_t *o)
{
    dc_store_pending_free(o->pending);
    o->pending = o->pending_tail = NULL;
    o->n_pending = o->pending_bytes = 0;
}
