/*
 * dc_proc: this process's id without a system call.
 *
 * glibc no longer caches getpid(), and the request path asks "am I still the
 * process that opened this handle?" on every request (a forked child must not
 * use its parent's segment, thread or connection). The id is read once and
 * refreshed by a pthread_atfork child handler.
 */
#ifndef DC_PROC_H
#define DC_PROC_H

#include <sys/types.h>

pid_t dc_proc_pid(void);

/* Lowers the calling thread's scheduling priority to nice 10 (Linux: a
 * thread's own nice value): for background work (shipping events) that
 * should take the CPU the requests leave, not share it with them. Cannot be
 * undone without privileges, so only for threads that do nothing else. */
void dc_proc_background_thread(void);

#endif
