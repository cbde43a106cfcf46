/* Shared helpers for the C tests: a datagram listener bound at the
 * library's notifysocket, and small assertion macros. */
#ifndef CMEV_TEST_HARNESS_H
#define CMEV_TEST_HARNESS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cyrus_mboxevent.h"

static int failures;
static int checks;

#define CHECK(cond)                                                        \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                 \
    do {                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                \
        checks++;                                                          \
        if (a_ != b_) {                                                    \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n",          \
                    __FILE__, __LINE__, #a, a_, b_);                       \
        }                                                                  \
    } while (0)

struct listener {
    int fd;
    char dir[64];
    char path[128];
};

static inline void listener_open(struct listener *l)
{
    struct sockaddr_un sun;
    struct timeval tv = { 2, 0 };
    int rcvbuf = 4 * 1024 * 1024;

    strcpy(l->dir, "/tmp/cmev-test-XXXXXX");
    if (!mkdtemp(l->dir)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
    l->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, l->path);
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        perror("bind");
        exit(2);
    }
    setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
}

static inline void listener_close(struct listener *l)
{
    close(l->fd);
    unlink(l->path);
    rmdir(l->dir);
}

/* Receive one datagram into buf (NUL-terminated past its end); returns its
 * length, or -1 when nothing came within the timeout. */
static inline ssize_t listener_recv(struct listener *l, char *buf, size_t size)
{
    ssize_t n = recv(l->fd, buf, size - 1, 0);
    if (n >= 0) buf[n] = '\0';
    return n;
}

/* Nothing further is waiting (short timeout). */
static inline int listener_empty(struct listener *l)
{
    char buf[16];
    ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The JSON inside a notifyd datagram: the 7th NUL-separated field. */
static inline const char *datagram_json(const char *buf, ssize_t len)
{
    const char *p = buf;
    int field;
    for (field = 0; field < 6; field++) {
        p = memchr(p, '\0', (size_t)(len - (p - buf)));
        if (!p) return NULL;
        p++;
    }
    return p;
}

static inline void config(const char *option, const char *value)
{
    char err[256];
    if (cmev_config_set(option, value, err, sizeof(err)) != 0) {
        fprintf(stderr, "config %s=%s: %s\n", option, value, err);
        failures++;
    }
}

static inline uint64_t counter(cmev_counter which)
{
    cmev_counters c;
    if (cmev_counters_get(&c)) return UINT64_MAX;
    return c.values[which];
}

static inline int report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, checks - failures, failures);
    return failures ? 1 : 0;
}

#endif /* CMEV_TEST_HARNESS_H */
