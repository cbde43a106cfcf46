/* Shared by the libraries benches preload into a Cyrus sandbox
 * (idlethread.c, floor.c). Kept apart from common.h, whose symbols would
 * take the place of Cyrus's own in a preloaded library. */
#ifndef CMEV_BENCH_PRELOAD_H
#define CMEV_BENCH_PRELOAD_H

#include <stdio.h>
#include <string.h>

/* Whether this process is one that serves the bench's commands: the master,
 * Cyrus's tools and the listener inherit the preload too. */
static inline int is_service(void)
{
    char name[32] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (!f) return 0;
    if (!fgets(name, sizeof(name), f)) name[0] = '\0';
    fclose(f);
    return !strcmp(name, "lmtpd\n") || !strcmp(name, "imapd\n");
}

#endif
