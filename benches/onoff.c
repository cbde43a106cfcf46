/* LD_PRELOAD library for benches/lowrate.py: switches the events of a real
 * lmtpd or imapd off and on, command by command, so that their cost is
 * measured within one process (two processes alike in every way differ by
 * more than a command's events cost). The first byte of the file CMEV_ONOFF
 * names, read at every event, chooses:
 *
 *   o  off: mboxevent_new() returns NULL, as stock's does for an event
 *      type that is not enabled, so Cyrus gathers nothing
 *   r  the build's own events (stock's notify(), or the library as shipped)
 *
 * Works the same in the stock and the patched build. CMEV_ONOFF unset (or a
 * process that is neither lmtpd nor imapd: the master, Cyrus's tools and the
 * listener inherit the preload too): the build's own events always.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct mboxevent;

static const volatile char *mode;
static struct mboxevent *(*real_new)(int);

static void die(const char *what)
{
    fprintf(stderr, "onoff.so: %s: %s\n", what, strerror(errno));
    abort();
}

/* Whether this process is one that serves the bench's commands. */
static int is_service(void)
{
    char name[32] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (!f) return 0;
    if (!fgets(name, sizeof(name), f)) name[0] = '\0';
    fclose(f);
    return !strcmp(name, "lmtpd\n") || !strcmp(name, "imapd\n");
}

__attribute__((constructor)) static void init(void)
{
    const char *control = getenv("CMEV_ONOFF");
    void *map;
    int fd;

    real_new = (struct mboxevent *(*)(int))dlsym(RTLD_NEXT, "mboxevent_new");
    if (!control || !is_service()) return;
    if ((fd = open(control, O_RDONLY | O_CLOEXEC)) < 0) die(control);
    /* mapped, so that the bench's writes are seen without a system call */
    map = mmap(NULL, 1, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) die(control);
    mode = map;
}

/* enum event_type is an int. */
struct mboxevent *mboxevent_new(int type)
{
    if (mode && *mode == 'o') return NULL;
    return real_new(type);
}
