/* Faults around a busy sender, each event carrying (tag, seq) so that loss
 * and duplication are counted, not guessed:
 *  (a) the receiver killed and restarted every 50 ms during a run of
 *      1,000,000 events from 8 producer threads;
 *  (b) EAGAIN storms: a receiver with the smallest SO_RCVBUF reading slowly;
 *  (c) SIGTERM, SIGHUP and SIGCHLD (handlers installed, no SA_RESTART, as
 *      Cyrus does) raining on the process while the sender is busy, in
 *      queued and in sync mode;
 *  (d) fork storms: children forked while events flow emit their own and exit.
 * After each: delivered + counted drops = produced exactly, no duplicates,
 * order kept per producer.
 *
 * CMEV_FAULTS_SCALE (default 1) scales the event counts, e.g. 0.2 for the
 * ASan+UBSan build. */
#include "rig.h"

#include <poll.h>

static double scale = 1.0;

static int scaled(int n)
{
    int v = (int)(n * scale);
    return v < 100 ? 100 : v;
}

/* delivered + dropped = produced, exactly; nothing twice, nothing garbled,
 * order kept per producer. */
static void check_exact(struct rx *r, int tags, int per_tag, long produced, const char *what)
{
    cmev_counters c;
    long delivered, dropped, seen = 0;
    int t;
    CHECK_EQ_INT(cmev_flush(T(60000)), 0);
    usleep(20000);
    cmev_counters_get(&c);
    delivered = atomic_load(&r->total);
    dropped = (long)dropped_total(&c);
    for (t = 0; t < tags; t++) seen += rx_count_seen(r, t, per_tag);
    CHECK_EQ_INT(delivered + dropped, produced);
    CHECK_EQ_INT(seen, delivered);
    CHECK_EQ_INT((long)c.values[CMEV_COUNTER_SENT], delivered);
    CHECK_EQ_INT((long)c.values[CMEV_COUNTER_ENQUEUED], produced);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_EQ_INT(atomic_load(&r->bad), 0);
    CHECK_EQ_INT(atomic_load(&r->out_of_order), 0);
    CHECK_ACCOUNTING(0);
    printf("    %s: %ld produced, %ld delivered, %ld dropped (overflow %llu, expired %llu, send error %llu), "
           "%llu retries, last errno %llu\n", what, produced, delivered, dropped,
           (unsigned long long)c.values[CMEV_COUNTER_DROPPED_OVERFLOW],
           (unsigned long long)c.values[CMEV_COUNTER_DROPPED_EXPIRED],
           (unsigned long long)c.values[CMEV_COUNTER_DROPPED_SEND_ERROR],
           (unsigned long long)c.values[CMEV_COUNTER_RETRIED], (unsigned long long)c.values[CMEV_COUNTER_LAST_ERRNO]);
}

/* ------------------------------------------------------------------ */
/* (a) The receiver killed and restarted every 50 ms.                  */
/*                                                                      */
/* A restart unlinks the path and binds a new socket there after a      */
/* random 0-5 ms outage. The old socket is not closed at once: a        */
/* datagram the kernel accepted just before the unlink is still read    */
/* (closing would destroy it, and the library rightly counted it sent). */
/* Old sockets are drained and closed after a second.                    */

struct chaos_rx {
    struct rx *r;
    pthread_t th;
    atomic_int stop;
    atomic_long restarts;
    int period_ms;
};

#define OLD_MAX 64

static void *chaos_loop(void *arg)
{
    struct chaos_rx *c = arg;
    struct rx *r = c->r;
    struct pollfd pf[OLD_MAX + 1];
    double retire[OLD_MAX + 1];
    int nfd = 1, i;
    double next = now_ms() + c->period_ms;
    unsigned seed = 7;
    pf[0].fd = bind_dgram(path, 8 * 1024 * 1024);
    pf[0].events = POLLIN;
    while (!atomic_load(&c->stop)) {
        /* Oldest socket first, the current one (pf[0]) last: a sender
         * moves on to a new socket only after the old one's path is gone,
         * so whatever an older socket holds was sent earlier. */
        if (poll(pf, (nfds_t)nfd, 5) > 0) {
            for (i = 1; i <= nfd; i++)
                if (pf[i % nfd].revents & POLLIN) rx_drain(r, pf[i % nfd].fd);
        }
        if (now_ms() >= next && nfd <= OLD_MAX) { /* kill and restart */
            unlink(path);
            retire[nfd] = now_ms() + 1000;
            pf[nfd] = pf[0];
            nfd++;
            usleep(rand_r(&seed) % 5000);
            pf[0].fd = bind_dgram(path, 8 * 1024 * 1024);
            atomic_fetch_add(&c->restarts, 1);
            next = now_ms() + c->period_ms;
        }
        for (i = 1; i < nfd; i++) { /* retire old sockets after a final read */
            if (now_ms() < retire[i]) continue;
            rx_drain(r, pf[i].fd);
            close(pf[i].fd);
            memmove(&pf[i], &pf[i + 1], sizeof(pf[0]) * (size_t)(nfd - i - 1));
            memmove(&retire[i], &retire[i + 1], sizeof(retire[0]) * (size_t)(nfd - i - 1));
            nfd--;
            i--;
        }
    }
    /* the end: read everything left, oldest first, then close all */
    for (i = 1; i <= nfd; i++) {
        rx_drain(r, pf[i % nfd].fd);
        close(pf[i % nfd].fd);
    }
    unlink(path);
    return NULL;
}

/* A run of (a) or (b): the overflow policy and how many events (scaled). */
struct load {
    const char *policy;
    int events;
};

static void policy_profile(const char *policy)
{
    setup(path);
    config("event_queue_overflow", policy);
    if (!strcmp(policy, "block")) config("event_queue_block_timeout", "60000");
}

/* block may lose nothing at all */
static void check_policy(const char *policy)
{
    if (!strcmp(policy, "block")) CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_OVERFLOW), 0);
}

static void restarts(void)
{
    const struct load *l = this_case->arg;
    struct producers p = { 8, scaled(l->events) / 8, 0, { 0 } };
    struct rx *r = rx_new(8, p.per_thread);
    struct chaos_rx c = { r, 0, 0, 0, 50 };
    double t0 = now_ms();
    char what[128];
    policy_profile(l->policy);
    pthread_create(&c.th, NULL, chaos_loop, &c);
    usleep(10000);
    producers_start(&p, produce);
    producers_join(&p);
    CHECK_EQ_INT(cmev_flush(T(60000)), 0);
    usleep(50000);
    atomic_store(&c.stop, 1);
    pthread_join(c.th, NULL);
    snprintf(what, sizeof(what), "%s, %ld restarts, %.1f s", l->policy, atomic_load(&c.restarts),
             (now_ms() - t0) / 1000);
    check_exact(r, 8, p.per_thread, 8L * p.per_thread, what);
    CHECK(atomic_load(&c.restarts) >= 5);
    check_policy(l->policy);
    rx_free(r);
}

/* ------------------------------------------------------------------ */
/* (b) EAGAIN storms: the smallest receive buffer, a slow reader.       */

static void storm(void)
{
    const struct load *l = this_case->arg;
    int n = scaled(l->events);
    struct producers p = { 1, n, 0, { 0 } };
    struct rx *r = rx_new(1, n);
    char what[64];
    r->delay_us = 20;
    rx_start(r, 1); /* SO_RCVBUFFORCE 1: the kernel's minimum */
    policy_profile(l->policy);
    config("event_queue_size", "1024");
    producers_start(&p, produce);
    producers_join(&p);
    snprintf(what, sizeof(what), "slow receiver, %s", l->policy);
    check_exact(r, 1, n, n, what);
    CHECK(counter(CMEV_COUNTER_RETRIED) > 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), 0); /* busy is never an error */
    check_policy(l->policy);
    rx_stop(r);
    rx_free(r);
}

/* ------------------------------------------------------------------ */
/* (c) Signals while the sender is busy.                                */

static const int rain[] = { SIGTERM, SIGHUP, SIGCHLD };

static void rain_mask(int how)
{
    sigset_t set;
    int i;
    sigemptyset(&set);
    for (i = 0; i < 3; i++) sigaddset(&set, rain[i]);
    pthread_sigmask(how, &set, NULL);
}

/* A producer that takes the signals: the other threads block them, so
 * kill() must interrupt the threads calling the library (in Cyrus, the
 * only thread). */
static void *produce_signalled(void *arg)
{
    rain_mask(SIG_UNBLOCK);
    return produce(arg);
}

static atomic_long signals_seen;

static void on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&signals_seen, 1);
}

static atomic_int signaller_stop;

static void *signaller(void *arg)
{
    unsigned i = 0;
    (void)arg;
    while (!atomic_load(&signaller_stop)) {
        kill(getpid(), rain[i++ % 3]);
        usleep(50);
    }
    return NULL;
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: system calls see EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
}

struct rain_load {
    const char *delivery;
    int threads, events, rx_delay_us;
};

static void signals(void)
{
    const struct rain_load *l = this_case->arg;
    int threads = l->threads, per_thread = scaled(l->events);
    struct producers p = { threads, per_thread, 0, { 0 } };
    struct rx *r = rx_new(threads, per_thread);
    pthread_t sig;
    char what[96];
    install_handlers();
    rain_mask(SIG_BLOCK); /* inherited by the receiver and the signaller */
    r->delay_us = l->rx_delay_us;
    rx_start(r, 1);
    setup(path);
    config("event_delivery", l->delivery);
    config("event_queue_size", "64"); /* full often: producers wait in the library */
    config("event_queue_overflow", "block");
    config("event_queue_block_timeout", "60000");
    atomic_store(&signaller_stop, 0);
    pthread_create(&sig, NULL, signaller, NULL);
    producers_start(&p, produce_signalled);
    producers_join(&p);
    CHECK_EQ_INT(cmev_flush(T(60000)), 0);
    atomic_store(&signaller_stop, 1);
    pthread_join(sig, NULL);
    rain_mask(SIG_UNBLOCK);
    snprintf(what, sizeof(what), "%s under %ld signals", l->delivery, atomic_load(&signals_seen));
    check_exact(r, threads, per_thread, (long)threads * per_thread, what);
    CHECK(atomic_load(&signals_seen) > 20); /* they did arrive */
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), 0); /* no EINTR-caused drop */
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_OVERFLOW), 0);
    rx_stop(r);
    rx_free(r);
}

/* ------------------------------------------------------------------ */
/* (d) Fork storms.                                                     */

#define FORKS 100

static int child_events;
static pid_t child_pid[FORKS];
static atomic_int forks_failed;

static void *forker(void *arg)
{
    int k;
    (void)arg;
    for (k = 0; k < FORKS; k++) {
        pid_t p;
        fflush(NULL);
        p = fork();
        if (p == 0) {
            int i, ok;
            for (i = 0; i < child_events; i++) emit(2 + k, i);
            ok = cmev_flush(T(10000)) == 0 && counter(CMEV_COUNTER_ENQUEUED) == (uint64_t)child_events
                && counter(CMEV_COUNTER_SENT) == (uint64_t)child_events;
#ifdef __SANITIZE_ADDRESS__
            /* LeakSanitizer would report the parent's queue, which a child
             * forgets on purpose (it may be mid-push in another thread). */
            _exit(ok ? 0 : 1);
#else
            exit(ok ? 0 : 1); /* the atexit flush has nothing left to do */
#endif
        }
        child_pid[k] = p;
        usleep(2000);
    }
    for (k = 0; k < FORKS; k++) {
        int st;
        waitpid(child_pid[k], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) atomic_fetch_add(&forks_failed, 1);
    }
    return NULL;
}

static void fork_storm(void)
{
#ifdef __SANITIZE_ADDRESS__
    /* GCC 12's libasan takes no lock on its allocator around fork(): a
     * child forked while another thread is inside malloc can deadlock in
     * its first malloc (seen here). glibc's malloc has fork handlers, so
     * the plain build runs this; under ASan it would test libasan. */
    printf("    skipped under ASan (libasan's allocator is not fork-safe with threads)\n");
    return;
#endif

    struct producers p = { 2, scaled(50000), 0, { 0 } };
    struct rx *r;
    pthread_t f;
    long want;
    int k;
    child_events = 200;
    r = rx_new(3 + FORKS, p.per_thread > child_events ? p.per_thread : child_events);
    rx_start(r, 8 * 1024 * 1024);
    setup(path);
    config("event_queue_overflow", "block");
    config("event_queue_block_timeout", "60000");
    emit(2 + FORKS, 0); /* the parent's queue exists before the first fork */
    producers_start(&p, produce);
    pthread_create(&f, NULL, forker, NULL);
    producers_join(&p);
    pthread_join(f, NULL);
    CHECK_EQ_INT(cmev_flush(T(60000)), 0);
    want = 2L * p.per_thread + FORKS * (long)child_events + 1;
    CHECK(rx_wait_total(r, want, 20000));
    CHECK_EQ_INT(atomic_load(&forks_failed), 0);
    CHECK_EQ_INT(rx_count_seen(r, 0, p.per_thread), p.per_thread);
    CHECK_EQ_INT(rx_count_seen(r, 1, p.per_thread), p.per_thread);
    CHECK_EQ_INT(rx_count_seen(r, 2 + FORKS, 1), 1);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    for (k = 0; k < FORKS; k++) {
        CHECK_EQ_INT(rx_count_seen(r, 2 + k, child_events), child_events);
        CHECK_EQ_INT(r->pid[2 + k], child_pid[k]);
    }
    CHECK_EQ_INT(r->pid[0], getpid());
    CHECK_EQ_INT(atomic_load(&r->wrong_pid), 0);
    CHECK_EQ_INT(atomic_load(&r->bad), 0);
    /* the parent's own events: sent once, by the parent */
    CHECK_EQ_INT((long)counter(CMEV_COUNTER_SENT), 2L * p.per_thread + 1);
    CHECK_ACCOUNTING(0);
    printf("    fork storm: %d children x %d events while 2 threads sent %d each: %ld received, %ld duplicate\n",
           FORKS, child_events, p.per_thread, atomic_load(&r->total), atomic_load(&r->dupes));
    rx_stop(r);
    rx_free(r);
}

static const struct test_case cases[] = {
    /* block: producers wait for room, so the run lasts long enough for many
     * restarts, and nothing may be lost at all */
    { "(a) receiver restarted every 50 ms, 8 threads, block", restarts, 100, &(const struct load){ "block", 1000000 } },
    /* drop-oldest: producers never wait; what the restarts cost is dropped
     * and counted */
    { "(a) receiver restarted every 50 ms, 8 threads, drop-oldest", restarts, 100,
      &(const struct load){ "drop-oldest", 1000000 } },
    { "(b) EAGAIN storm, slow reader, block", storm, 100, &(const struct load){ "block", 30000 } },
    { "(b) EAGAIN storm, slow reader, drop-oldest", storm, 100, &(const struct load){ "drop-oldest", 30000 } },
    /* queued, a receiver slow enough that the queue fills: producers wait
     * (block policy) while signals arrive */
    { "(c) SIGTERM/SIGHUP/SIGCHLD rain, queued", signals, 100, &(const struct rain_load){ "queued", 4, 10000, 5 } },
    /* sync mode sends on the signalled threads themselves; a slow receiver
     * keeps them blocked in sendmmsg, where a signal interrupts */
    { "(c) SIGTERM/SIGHUP/SIGCHLD rain, sync", signals, 100, &(const struct rain_load){ "sync", 2, 5000, 20 } },
    { "(d) fork storm", fork_storm, 100, NULL },
};

int main(void)
{
    const char *s = getenv("CMEV_FAULTS_SCALE");
    double t0 = suite_start("cmev-faults");
    if (s && atof(s) > 0) scale = atof(s);
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
    return suite_end("test_faults", t0);
}
