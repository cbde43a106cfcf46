/* LD_PRELOAD library for benches/floor.py: the events' cost in a real
 * lmtpd or imapd, mode against mode within one process (two processes
 * alike in every way differ by more than what is measured here), and the
 * least any event library could cost there. The first byte of the file
 * CMEV_FLOOR names, read at every call, chooses what events do:
 *
 *   o  off: mboxevent_new() returns NULL, as stock's does for an event
 *      type that is not enabled, so Cyrus gathers nothing (stock or patched)
 *   r  the build's own events (stock's notify(), or the library as shipped)
 *   y  patched: the library told event_delivery: sync, rendering and
 *      sending each event on Cyrus's thread
 *   s  patched: the adapter gathers every parameter and the library builds
 *      every event; then each event that is not cancelled becomes one
 *      send() of a datagram framed once, as stock frames an event, from the
 *      JSON in CMEV_FLOOR_EVENT (a real event's), on a socket connected
 *      once to the configured notifysocket: the kernel's part of delivering
 *      it, nothing rendered, on Cyrus's thread
 *   n  patched: the same, but nothing is sent at all
 *
 * CMEV_FLOOR unset (or a process that is neither lmtpd nor imapd): the
 * build's own events always.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cyrus_mboxevent.h"
#include "preload.h"

struct mboxevent;

static const volatile char *mode;
static char delivery = 'r';
static struct mboxevent *(*real_new)(int);
static int (*real_notify)(cmev_event *const *, size_t);
static int (*real_config_set)(const char *, const char *, char *, size_t);
static uint32_t (*type_of)(const cmev_event *);
static char datagram[65536];
static size_t datagram_len;
static int sock = -1;
static char notifysocket[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void die(const char *what)
{
    fprintf(stderr, "floor.so: %s: %s\n", what, strerror(errno));
    abort();
}

static void prepare_send(void)
{
    static const char header[] = "log\0EVENT\0\0\0\0" "0";
    const char *json = getenv("CMEV_FLOOR_EVENT");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };

    if (!json || !notifysocket[0] || sizeof(header) + strlen(json) + 1 > sizeof(datagram)) {
        errno = EINVAL;
        die("CMEV_FLOOR_EVENT and a notifysocket are needed");
    }
    /* header's own NUL ends the option count */
    memcpy(datagram, header, sizeof(header));
    datagram_len = sizeof(header);
    memcpy(datagram + datagram_len, json, strlen(json) + 1);
    datagram_len += strlen(json) + 1;
    memcpy(sun.sun_path, notifysocket, sizeof(notifysocket));
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&sun, sizeof(sun)) < 0) die(notifysocket);
}

__attribute__((constructor)) static void init(void)
{
    const char *control = getenv("CMEV_FLOOR");
    void *map;
    int fd;

    real_new = (struct mboxevent *(*)(int))dlsym(RTLD_NEXT, "mboxevent_new");
    real_notify = (int (*)(cmev_event *const *, size_t))dlsym(RTLD_NEXT, "cmev_notify");
    real_config_set = (int (*)(const char *, const char *, char *, size_t))dlsym(RTLD_NEXT, "cmev_config_set");
    type_of = (uint32_t (*)(const cmev_event *))dlsym(RTLD_DEFAULT, "cmev_event_get_type");
    if (!control || !is_service()) return;
    if ((fd = open(control, O_RDONLY | O_CLOEXEC)) < 0) die(control);
    /* mapped, so that the bench's writes are seen without a system call */
    map = mmap(NULL, 1, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) die(control);
    mode = map;
}

int cmev_config_set(const char *option, const char *value, char *errbuf, size_t errlen)
{
    if (option && value && !strcmp(option, "notifysocket") && strlen(value) < sizeof(notifysocket))
        strcpy(notifysocket, value);
    return real_config_set(option, value, errbuf, errlen);
}

/* enum event_type is an int. Events take the library's configuration when
 * they are created: the delivery mode is switched here. */
struct mboxevent *mboxevent_new(int type)
{
    char m = mode ? *mode : 'r';
    char err[256];

    if (m == 'o') return NULL;
    if ((m == 'y' || m == 'r') && m != delivery && real_config_set) {
        if (real_config_set("event_delivery", m == 'y' ? "sync" : "queued", err, sizeof(err))) {
            errno = EINVAL;
            die(err);
        }
        delivery = m;
    }
    return real_new(type);
}

int cmev_notify(cmev_event *const *events, size_t count)
{
    size_t i;

    switch (mode ? *mode : 'r') {
    case 'n':
        return 0;
    case 's':
        /* Opened at the first events, as a library opens its socket:
         * Cyrus's daemons close descriptors they do not know of. */
        if (sock < 0) prepare_send();
        for (i = 0; i < count; i++)
            if (events[i] && type_of(events[i]))
                send(sock, datagram, datagram_len, 0);
        return 0;
    default:  /* r, y */
        return real_notify(events, count);
    }
}
