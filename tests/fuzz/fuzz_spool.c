/* libFuzzer target: any bytes as a spool segment (a damaged disk, a torn
 * write). Every record handed out must lie inside the input and be framed as
 * promised; never crash or leak. */
#include "dc_log.h"
#include "dc_spool.h"

#include <apr_general.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    const char *data;
    size_t len;
} span_t;

static int check_record(void *baton, apr_off_t offset, apr_off_t end, const dc_spool_hit_t *hits,
                        size_t n)
{
    const span_t *in = baton;

    if (offset < 0 || end <= offset || (size_t)end > in->len || in->data[end - 1] != '\n' || !n)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (hits[i].json < in->data + offset || hits[i].json + hits[i].json_len > in->data + end ||
            hits[i].json[0] != '{' || hits[i].json[hits[i].json_len - 1] != '}' ||
            hits[i].id_len == 0)
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static apr_pool_t *pool;
    apr_pool_t *p;
    span_t in = {(const char *)data, size};
    size_t skipped;

    if (!pool) {
        apr_initialize();
        apr_pool_create(&pool, NULL);
        dc_log_set_sink(NULL, NULL, DC_LOG_ERROR); /* the skip warnings are expected */
    }
    apr_pool_create(&p, pool);
    dc_spool_parse(in.data, in.len, "fuzz", p, check_record, &in, &skipped);
    apr_pool_destroy(p);
    return 0;
}
