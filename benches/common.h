/* Shared by the benchmark programs: timing, statistics, a draining
 * receiver, and the symbols a Cyrus program supplies to Debian's libcyrus. */
#ifndef CMEV_BENCH_COMMON_H
#define CMEV_BENCH_COMMON_H

#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile of sorted samples. */
static inline double pct(const uint64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)sorted[i];
}

/* Median, min and max of repeated measurements. */
struct spread {
    double median, min, max;
};

static inline struct spread spread_of(double *v, int n)
{
    struct spread s;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    s.min = v[0];
    s.max = v[n - 1];
    return s;
}

/* A datagram socket bound at `path`, drained by a thread, counting. */
struct drain {
    int fd;
    pthread_t th;
    atomic_long received;
    atomic_int stop;
    char path[108];
    /* while set, the last datagram received is kept in `last` */
    atomic_int capture;
    size_t last_len;
    char last[65536 + 64];
};

static void *drain_loop(void *arg)
{
    struct drain *d = arg;
    struct mmsghdr msgs[64];
    struct iovec iov[64];
    static char bufs[64][65536 + 64];
    struct timespec tmo = { 0, 100000000 };
    int i;
    for (i = 0; i < 64; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof(bufs[i]);
        memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (!atomic_load(&d->stop)) {
        int n = recvmmsg(d->fd, msgs, 64, MSG_WAITFORONE, &tmo);
        if (n > 0 && atomic_load(&d->capture)) {
            d->last_len = msgs[n - 1].msg_len;
            memcpy(d->last, bufs[n - 1], d->last_len);
        }
        if (n > 0) atomic_fetch_add(&d->received, n);
    }
    return NULL;
}

static inline void drain_start(struct drain *d, const char *path)
{
    struct sockaddr_un sun;
    int rcvbuf = 16 * 1024 * 1024;
    struct timeval tv = { 0, 100000 };
    memset(d, 0, sizeof(*d));
    if (strlen(path) >= sizeof(d->path)) {
        fprintf(stderr, "socket path too long: %s\n", path);
        exit(2);
    }
    memcpy(d->path, path, strlen(path) + 1);
    unlink(path);
    d->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, d->path, sizeof(d->path));
    if (bind(d->fd, (struct sockaddr *)&sun, sizeof(sun))) {
        perror(path);
        exit(2);
    }
    setsockopt(d->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    pthread_create(&d->th, NULL, drain_loop, d);
    pthread_setname_np(d->th, "drain");
}

static inline void drain_stop(struct drain *d)
{
    atomic_store(&d->stop, 1);
    pthread_join(d->th, NULL);
    close(d->fd);
    unlink(d->path);
}

static inline void wait_received(struct drain *d, long n, int timeout_ms)
{
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (atomic_load(&d->received) < n && now_ns() < end) usleep(100);
}

#endif /* CMEV_BENCH_COMMON_H */
