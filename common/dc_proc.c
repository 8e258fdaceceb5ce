#include "dc_proc.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static pid_t cached_pid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void after_fork(void)
{
    __atomic_store_n(&cached_pid, getpid(), __ATOMIC_RELAXED);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, after_fork);
    __atomic_store_n(&cached_pid, getpid(), __ATOMIC_RELAXED);
}

pid_t dc_proc_pid(void)
{
    pid_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);

    if (pid)
        return pid;
    /* First call: registering the handler before reading the id, so a fork
     * racing with this call still ends with the child's own id. */
    pthread_once(&atfork_once, register_atfork);
    return __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
}

void dc_proc_background_thread(void)
{
#if defined(__linux__) && defined(SYS_gettid)
    /* On Linux, PRIO_PROCESS with a thread id is that thread alone. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
#endif
}
