/*
 * dc_table: the lock-free-read table behind httpd's shared "memory" store.
 * Readers in other processes must never see a torn or foreign value while a
 * writer rewrites, evicts and wraps the ring under them, and no bytes written
 * into the block can send a reader outside it.
 */
#include "dc_table.h"
#include "dc_test.h"

#include <pthread.h>
#include <sys/mman.h>

static void *map_block(size_t size)
{
    void *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ck_assert_ptr_ne(b, MAP_FAILED);
    return b;
}

static int get_str(const dc_table_t *t, const char *key, char *buf, size_t cap)
{
    size_t len = 0;
    int rc = dc_table_get(t, key, strlen(key), buf, cap - 1, &len);

    buf[rc == 1 ? len : 0] = '\0';
    return rc;
}

static int put_str(dc_table_t *t, const char *key, const char *value)
{
    return dc_table_put(t, key, strlen(key), value, strlen(value));
}

START_TEST(put_get_replace_and_limits)
{
    size_t size = 256 * 1024;
    void *block = map_block(size);
    char buf[256], big[70000];
    dc_table_t t;
    size_t len;

    ck_assert_int_eq(dc_table_init(&t, block, 4096, 0), -1); /* no room for a ring */
    ck_assert_int_eq(dc_table_init(&t, block, size, 100), 0);
    ck_assert_uint_eq(dc_table_entries(&t), 128);
    ck_assert_int_eq(get_str(&t, "a", buf, sizeof(buf)), 0);
    ck_assert_int_eq(put_str(&t, "a", "one"), 0);
    ck_assert_int_eq(put_str(&t, "b", "two"), 0);
    ck_assert_int_eq(get_str(&t, "a", buf, sizeof(buf)), 1);
    ck_assert_str_eq(buf, "one");
    ck_assert_int_eq(put_str(&t, "a", "uno"), 0);
    ck_assert_int_eq(get_str(&t, "a", buf, sizeof(buf)), 1);
    ck_assert_str_eq(buf, "uno");
    ck_assert_int_eq(get_str(&t, "b", buf, sizeof(buf)), 1);
    ck_assert_str_eq(buf, "two");
    /* keys that differ only after a NUL, or by length, are different keys */
    ck_assert_int_eq(dc_table_put(&t, "a\0b", 3, "x", 1), 0);
    ck_assert_int_eq(get_str(&t, "a", buf, sizeof(buf)), 1);
    ck_assert_str_eq(buf, "uno");
    ck_assert_int_eq(dc_table_put(&t, "", 0, "empty", 5), 0);
    ck_assert_int_eq(dc_table_get(&t, "", 0, buf, sizeof(buf), &len), 1);
    ck_assert_uint_eq(len, 5);
    /* too small a buffer says how much is needed */
    ck_assert_int_eq(dc_table_get(&t, "b", 1, buf, 2, &len), -1);
    ck_assert_uint_eq(len, 3);
    /* a record over a quarter of the ring (or 64 KiB) is refused */
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(dc_table_put(&t, "big", 3, big, t.max_record), -1);
    ck_assert_int_eq(dc_table_put(&t, "big", 3, big, t.max_record - 7), 0);
    ck_assert_int_eq(get_str(&t, "b", buf, sizeof(buf)), 1);
    munmap(block, size);
}
END_TEST

/* Many more keys than the ring holds: the newest are found with their own values, the oldest are
 * gone, nothing is ever found with another key's value. */
START_TEST(eviction_is_oldest_first_and_never_wrong)
{
    size_t size = 64 * 1024;
    void *block = map_block(size);
    dc_table_t t;
    char key[32], value[64], buf[128];
    int found_old = 0, found_new = 0;

    ck_assert_int_eq(dc_table_init(&t, block, size, 0), 0);
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "visitor-%d", i);
        snprintf(value, sizeof(value), "value-of-%d-%0*d", i, i % 30, 0);
        ck_assert_int_eq(put_str(&t, key, value), 0);
    }
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "visitor-%d", i);
        snprintf(value, sizeof(value), "value-of-%d-%0*d", i, i % 30, 0);
        if (get_str(&t, key, buf, sizeof(buf)) == 1) {
            ck_assert_str_eq(buf, value);
            if (i < 10000)
                found_old++;
            else if (i >= 19900)
                found_new++;
        }
    }
    ck_assert_int_eq(found_old, 0);
    ck_assert_int_ge(found_new, 90); /* the last 100, but for index collisions in a full window */
    munmap(block, size);
}
END_TEST

/* Values carry their key and a checksum, so a reader can tell a torn or foreign one. */
static void make_value(char *value, size_t cap, int key, unsigned version)
{
    unsigned sum = 0;
    int n = snprintf(value, cap, "%d:%u:%.*s", key, version, (int)(version % 200),
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");

    for (int i = 0; i < n; i++)
        sum = sum * 31 + (unsigned char)value[i];
    snprintf(value + n, cap - (size_t)n, "#%08x", sum);
}

static int value_is_whole(const char *value, size_t len, int key)
{
    char expect[512];
    int k;
    unsigned version;

    if (sscanf(value, "%d:%u:", &k, &version) != 2 || k != key)
        return 0;
    make_value(expect, sizeof(expect), key, version);
    return strlen(expect) == len && memcmp(expect, value, len) == 0;
}

typedef struct {
    pthread_mutex_t lock; /* process-shared: the writers' lock */
    volatile int stop;
} shared_t;

#define N_KEYS 200

static void writer(dc_table_t *t, shared_t *sh, unsigned seed)
{
    char key[16], value[512];

    for (unsigned v = 1; !sh->stop; v++) {
        int k = (int)(rand_r(&seed) % N_KEYS);

        snprintf(key, sizeof(key), "k%d", k);
        make_value(value, sizeof(value), k, v);
        pthread_mutex_lock(&sh->lock);
        dc_table_put(t, key, strlen(key), value, strlen(value));
        pthread_mutex_unlock(&sh->lock);
    }
}

static int reader(const dc_table_t *t, shared_t *sh, unsigned seed)
{
    char key[16], value[512];
    long found = 0;

    while (!sh->stop) {
        int k = (int)(rand_r(&seed) % N_KEYS);
        size_t len = 0;
        int rc;

        snprintf(key, sizeof(key), "k%d", k);
        rc = dc_table_get(t, key, strlen(key), value, sizeof(value), &len);
        if (rc == 1 && !value_is_whole(value, len, k))
            return 1;
        found += rc == 1;
    }
    return found > 0 ? 0 : 2;
}

START_TEST(readers_in_other_processes_never_see_a_torn_value)
{
    /* the smallest ring, so that it wraps over records while readers copy them */
    size_t size = 20 * 1024;
    void *block = map_block(size);
    shared_t *sh = map_block(sizeof(shared_t));
    pthread_mutexattr_t attr;
    pid_t pids[6];
    dc_table_t t;

    ck_assert_int_eq(dc_table_init(&t, block, size, 16), 0);
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&sh->lock, &attr);
    for (int i = 0; i < 6; i++) {
        if ((pids[i] = fork()) == 0) {
            if (i < 2) {
                writer(&t, sh, (unsigned)i + 1);
                _exit(0);
            }
            _exit(reader(&t, sh, (unsigned)i + 100));
        }
        ck_assert_int_gt(pids[i], 0);
    }
    usleep(1500 * 1000);
    sh->stop = 1;
    for (int i = 0; i < 6; i++) {
        int status;

        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "process %d: status %d (1 = a torn or foreign value, 2 = found nothing)", i,
                      status);
    }
    munmap(sh, sizeof(shared_t));
    munmap(block, size);
}
END_TEST

/* Garbage over the whole block (another process's bug, a stray write): reads stay inside it and
 * writes start over. */
START_TEST(garbage_in_the_block_stays_inside_it)
{
    size_t size = 64 * 1024;
    unsigned char *block = map_block(size + 4096);
    unsigned seed = 7;
    char buf[512];
    dc_table_t t;

    ck_assert_int_eq(dc_table_init(&t, block, size, 0), 0);
    for (int round = 0; round < 50; round++) {
        char key[16];

        for (size_t i = 0; i < size; i++)
            block[i] = (unsigned char)(round % 3 == 0 ? (size_t)rand_r(&seed) : round % 3 == 1 ? 0xffu : i);
        for (int k = 0; k < 200; k++) {
            size_t len;

            snprintf(key, sizeof(key), "k%d", k);
            dc_table_get(&t, key, strlen(key), buf, sizeof(buf), &len);
        }
        ck_assert_int_eq(put_str(&t, "after", "garbage"), 0);
    }
    munmap(block, size + 4096);
}
END_TEST

static Suite *table_suite(void)
{
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("table");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, put_get_replace_and_limits);
    tcase_add_test(tc, eviction_is_oldest_first_and_never_wrong);
    tcase_add_test(tc, readers_in_other_processes_never_see_a_torn_value);
    tcase_add_test(tc, garbage_in_the_block_stays_inside_it);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(table_suite)
