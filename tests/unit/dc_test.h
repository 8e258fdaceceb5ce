/*
 * Shared bits of the Check suites: APR set-up, reading the spec fixtures,
 * and a main() that runs one suite.
 */
#ifndef DC_TEST_H
#define DC_TEST_H

#include <apr_general.h>
#include <apr_pools.h>
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static inline json_t *dc_test_load_json(const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);

    if (!root) {
        fprintf(stderr, "cannot load %s: %s (line %d)\n", path, err.text, err.line);
        abort();
    }
    return root;
}

static inline json_t *dc_test_vectors(void)
{
    return dc_test_load_json(DC_FIXTURES "/vectors.json");
}

#define DC_TEST_MAIN(suite_fn)                                                                     \
    int main(void)                                                                                 \
    {                                                                                              \
        SRunner *sr;                                                                               \
        int failed;                                                                                \
                                                                                                   \
        apr_initialize();                                                                          \
        sr = srunner_create(suite_fn());                                                           \
        srunner_run_all(sr, CK_NORMAL);                                                            \
        failed = srunner_ntests_failed(sr);                                                        \
        srunner_free(sr);                                                                          \
        apr_terminate();                                                                           \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                                          \
    }

#endif
