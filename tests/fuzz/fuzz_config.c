/* libFuzzer target: any bytes as a bucketing file. Parse or reject, never crash or leak. */
#include "dc_config.h"

#include <apr_general.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialised;
    dc_config_t *cfg;
    dc_config_error_t err;

    if (!initialised) {
        apr_initialize();
        initialised = 1;
    }
    if (dc_config_parse((const char *)data, size, &cfg, &err) == 0)
        dc_config_unref(cfg);
    return 0;
}
