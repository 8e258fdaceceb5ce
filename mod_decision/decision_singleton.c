/*
 * The module's background work, run by one child for the whole server (the
 * config poll, the event shipper, the OpenTelemetry metrics exporter), and
 * per-child chores; another child takes over when the elected one exits.
 *
 * mod_watchdog's singletons elect their child with an APR process mutex held
 * by its watchdog thread. With the mechanism Debian's httpd uses by default
 * (APR_USE_PROC_PTHREAD_SERIALIZE), no other child took it over in some runs
 * once its holder exited: none ran the callbacks again (a prefork server with
 * MaxConnectionsPerChild stopped polling its config, shipping its events and
 * exporting its metrics at its poller's first exit, one run in two; with
 * `Mutex fcntl:... watchdog-callback` it moved every time). So the election
 * is the module's own: one mod_watchdog callback in every child (not a
 * singleton) claims a word of shared memory with its pid when the word is 0
 * or names a process that is gone, runs the tasks with mod_watchdog's
 * states while it holds it (STARTING once elected, RUNNING every interval,
 * STOPPING as it exits) and clears it as its child exits. Every-child tasks run in every child.
 */
#include "mod_decision.h"

#include "dc_log.h"

#include "http_log.h"
#include "mod_watchdog.h"

#include <apr_shm.h>
#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

APLOG_USE_MODULE(decision);

typedef struct task task_t;
struct task {
    ap_watchdog_callback_fn_t *fn;
    void *data;
    apr_interval_time_t interval;
    apr_time_t due;
    int every_child;
    task_t *next;
};

/* Set in the parent at each post_config, inherited by the children. */
static task_t *tasks;
static volatile apr_uint32_t *owner; /* the elected child's pid, 0: none */
static apr_interval_time_t tick_interval;
static server_rec *main_server;
static int elected; /* this child's */

const char *decision_singleton_create(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv = apr_shm_create(&shm, sizeof(*owner) + 64, NULL, pconf);

    if (rv != APR_SUCCESS)
        return apr_psprintf(pconf, "cannot create the shared memory of mod_decision's "
                                   "background work (%pm)", &rv);
    /* released with pconf; the restart's children get the next one */
    owner = (volatile apr_uint32_t *)(((uintptr_t)apr_shm_baseaddr_get(shm) + 63) &
                                      ~(uintptr_t)63);
    *owner = 0;
    tasks = NULL;
    tick_interval = apr_time_from_sec(1);
    main_server = s;
    return NULL;
}

static void add(apr_pool_t *pconf, apr_interval_time_t interval, ap_watchdog_callback_fn_t *fn,
                void *data, int every_child)
{
    task_t *t = apr_pcalloc(pconf, sizeof(*t));

    t->fn = fn;
    t->data = data;
    t->interval = interval;
    t->every_child = every_child;
    t->next = tasks;
    tasks = t;
    if (interval < tick_interval)
        tick_interval = interval;
}

void decision_singleton_register(apr_pool_t *pconf, apr_interval_time_t interval,
                                 ap_watchdog_callback_fn_t *fn, void *data)
{
    add(pconf, interval, fn, data, 0);
}

void decision_every_child_register(apr_pool_t *pconf, apr_interval_time_t interval,
                                   ap_watchdog_callback_fn_t *fn, void *data)
{
    add(pconf, interval, fn, data, 1);
}

static int process_exists(apr_uint32_t pid)
{
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Whether this child holds the word now (it may have just taken it). */
static int hold(void)
{
    apr_uint32_t me = (apr_uint32_t)getpid();
    apr_uint32_t was = __atomic_load_n(owner, __ATOMIC_ACQUIRE);

    if (was == me)
        return 1;
    if (was != 0 && process_exists(was))
        return 0;
    return __atomic_compare_exchange_n(owner, &was, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static void run(int state, int every_child, apr_time_t now, apr_pool_t *p)
{
    for (task_t *t = tasks; t; t = t->next) {
        if (t->every_child != every_child)
            continue;
        if (state == AP_WATCHDOG_STATE_RUNNING && now < t->due)
            continue;
        t->fn(state, t->data, p);
        t->due = now + t->interval;
    }
}

static apr_status_t tick(int state, void *data, apr_pool_t *p)
{
    apr_uint32_t me = (apr_uint32_t)getpid();
    apr_time_t now = apr_time_now();

    (void)data;
    if (state == AP_WATCHDOG_STATE_STOPPING) {
        run(state, 1, now, p);
        if (elected) {
            run(state, 0, now, p);
            elected = 0;
            __atomic_compare_exchange_n(owner, &me, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
        }
        return APR_SUCCESS;
    }
    if (state == AP_WATCHDOG_STATE_RUNNING)
        run(state, 1, now, p);
    if (!elected) {
        if (!hold())
            return APR_SUCCESS;
        elected = 1;
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, main_server,
                     DCLOGNO(10449) "this child runs mod_decision's background work");
        run(AP_WATCHDOG_STATE_STARTING, 0, now, p);
        return APR_SUCCESS;
    }
    run(AP_WATCHDOG_STATE_RUNNING, 0, now, p);
    return APR_SUCCESS; /* mod_watchdog stops calling a callback that fails */
}

const char *decision_singleton_start(apr_pool_t *pconf)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_callback =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    ap_watchdog_t *wd;
    apr_status_t rv;

    if (!tasks)
        return NULL;
    if (!get_instance || !register_callback)
        return "mod_decision needs mod_watchdog for its background work "
               "(LoadModule watchdog_module)";
    rv = get_instance(&wd, DECISION_WATCHDOG_NAME, 0, 0, pconf);
    if (rv == APR_SUCCESS)
        rv = register_callback(wd, tick_interval, NULL, tick);
    return rv == APR_SUCCESS ? NULL
                             : apr_psprintf(pconf, "cannot register mod_decision's background "
                                                   "work with mod_watchdog (%pm)", &rv);
}
