/* LD_PRELOAD library for benches/threadtax.py: gives stock's lmtpd and
 * imapd a second thread that does nothing, to measure what its mere
 * existence costs Cyrus's own thread.
 *
 *   CMEV_IDLE_THREAD=shared  the thread shares the process's file table,
 *                            as every pthread does
 *   CMEV_IDLE_THREAD=own     the thread takes a table of its own first, as
 *                            the library's sender does
 *
 * Other processes (master, tools) and an unset variable: nothing happens
 * (threadtax.py preloads it without the variable for its baselines: the
 * preload alone changes a process's figures).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"

static int own_table;

static void *idle(void *arg)
{
    int i;
    (void)arg;
    if (own_table && close_range(0, ~0U, CLOSE_RANGE_UNSHARE) == 0)
        for (i = 0; i < 3; i++) open("/dev/null", O_RDWR);
    for (;;) pause();
    return NULL;
}

__attribute__((constructor)) static void start(void)
{
    const char *mode = getenv("CMEV_IDLE_THREAD");
    sigset_t all, old;
    pthread_t th;
    if (!mode || !is_service()) return;
    own_table = !strcmp(mode, "own");
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_create(&th, NULL, idle, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
