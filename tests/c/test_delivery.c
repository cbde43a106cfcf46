/* The delivery engine under the conditions a Cyrus server meets: receivers
 * that come late, restart, stall or answer garbage; exit, signals, fork and
 * many threads. Every event carries (tag, seq) in its uri, so loss and
 * duplication are counted, not guessed. Scenarios that need a fresh queue
 * run in a forked child, which starts with an engine of its own. */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_TAGS 16
#define MAX_SEQ 100000

static char dir[64], path[128];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void setup(const char *dest)
{
    cmev_config_reset();
    config("event_notifier", "log");
    config("event_groups", "mailbox");
    config("event_extra_params", "");
    config("servername", "h");
    config("notifysocket", dest);
}

static void emit(int tag, int seq)
{
    char uri[64];
    cmev_event *ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_MODSEQ);
    snprintf(uri, sizeof(uri), "imap://h/t%d/%d", tag, seq);
    cmev_event_set_string(ev, CMEV_PARAM_URI, uri);
    cmev_notify(&ev, 1);
    cmev_event_free(ev);
}

/* ---- a datagram receiver thread that checks every byte ---- */

struct rx {
    int fd;
    pthread_t th;
    atomic_int stop;
    atomic_long total, dupes, bad, out_of_order;
    int delay_us;
    unsigned char seen[MAX_TAGS][MAX_SEQ];
    int last[MAX_TAGS];
};

static void *rx_loop(void *arg)
{
    struct rx *r = arg;
    char buf[4096], want[512];
    while (!atomic_load(&r->stop)) {
        ssize_t n = recv(r->fd, buf, sizeof(buf) - 1, 0);
        int tag, seq, pid, wl;
        const char *j;
        if (n <= 0) continue;
        buf[n] = '\0';
        j = datagram_json(buf, n);
        if (!j || sscanf(j, "{\"event\":\"MailboxModseq\",\"uri\":\"imap://h/t%d/%d\",\"pid\":%d", &tag, &seq, &pid) != 3
            || tag < 0 || tag >= MAX_TAGS || seq < 0 || seq >= MAX_SEQ) {
            atomic_fetch_add(&r->bad, 1);
            continue;
        }
        wl = snprintf(want, sizeof(want), "log%cEVENT%c%c%c%c0%c{\"event\":\"MailboxModseq\",\"uri\":\"imap://h/t%d/%d\",\"pid\":%d,\"serverFQDN\":\"h\"}",
                      0, 0, 0, 0, 0, 0, tag, seq, pid) + 1;
        if (wl != n || memcmp(want, buf, (size_t)n) != 0) atomic_fetch_add(&r->bad, 1);
        if (r->seen[tag][seq]++) atomic_fetch_add(&r->dupes, 1);
        if (seq < r->last[tag]) atomic_fetch_add(&r->out_of_order, 1);
        r->last[tag] = seq;
        atomic_fetch_add(&r->total, 1);
        if (r->delay_us) usleep((useconds_t)r->delay_us);
    }
    return NULL;
}

static int bind_at(const char *p)
{
    struct sockaddr_un sun;
    struct timeval tv = { 0, 100000 };
    int rcvbuf = 8 * 1024 * 1024;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, p);
    unlink(p);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        perror("bind");
        exit(2);
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    return fd;
}

static struct rx *rx_start(int delay_us)
{
    struct rx *r = calloc(1, sizeof(*r));
    r->fd = bind_at(path);
    r->delay_us = delay_us;
    pthread_create(&r->th, NULL, rx_loop, r);
    return r;
}

/* Stop receiving and remove the socket: the receiver is gone. */
static void rx_stop(struct rx *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    close(r->fd);
    unlink(path);
}

/* Bind again and go on counting into the same tables. */
static void rx_restart(struct rx *r)
{
    atomic_store(&r->stop, 0);
    r->fd = bind_at(path);
    pthread_create(&r->th, NULL, rx_loop, r);
}

static int wait_total(struct rx *r, long want, int ms)
{
    double end = now_ms() + ms;
    while (atomic_load(&r->total) < want && now_ms() < end) usleep(1000);
    usleep(50000); /* anything extra would show up now */
    return atomic_load(&r->total) == want;
}

static long count_seen(struct rx *r, int tag, int n)
{
    long c = 0;
    int i;
    for (i = 0; i < n; i++) c += r->seen[tag][i] == 1;
    return c;
}

/* Run fn in a forked child with a fresh queue; its exit code is the count
 * of failed checks. */
static void in_child(const char *name, void (*fn)(void))
{
    pid_t p;
    int st = 0;
    fflush(NULL);
    p = fork();
    if (p == 0) {
        fn();
        fflush(NULL);
        _exit(failures ? 1 : 0);
    }
    waitpid(p, &st, 0);
    checks++;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        failures++;
        fprintf(stderr, "%s: child failed (status %d)\n", name, st);
    } else {
        printf("  %s: ok\n", name);
    }
}

/* ---- scenarios ---- */

static void absent_then_present(void)
{
    struct rx *r;
    int i;
    setup(path);
    unlink(path);
    for (i = 0; i < 300; i++) emit(0, i);
    usleep(200000); /* the sender retries meanwhile */
    r = rx_start(0);
    CHECK_EQ_INT(cmev_flush(10000), 0);
    CHECK(wait_total(r, 300, 5000));
    CHECK_EQ_INT(count_seen(r, 0, 300), 300);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_EQ_INT(atomic_load(&r->out_of_order), 0);
    CHECK_EQ_INT(atomic_load(&r->bad), 0);
    CHECK(counter(CMEV_COUNTER_RETRIED) > 0);
    rx_stop(r);
}

static void restart_within_room(void)
{
    struct rx *r = rx_start(0);
    int i;
    setup(path);
    for (i = 0; i < 500; i++) emit(1, i);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    rx_stop(r);
    for (i = 500; i < 1000; i++) emit(1, i); /* nobody listens */
    usleep(100000);
    rx_restart(r);
    CHECK_EQ_INT(cmev_flush(10000), 0);
    CHECK(wait_total(r, 1000, 5000));
    CHECK_EQ_INT(count_seen(r, 1, 1000), 1000);
    CHECK_EQ_INT(atomic_load(&r->out_of_order), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_OVERFLOW), 0);
    rx_stop(r);
}

static void restart_beyond_room(void)
{
    struct rx *r = rx_start(0);
    const int n = 5000;
    long delivered, dropped;
    int i;
    setup(path);
    config("event_queue_size", "16");
    emit(2, 0);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    rx_stop(r);
    for (i = 1; i < n; i++) emit(2, i);
    usleep(100000);
    rx_restart(r);
    CHECK_EQ_INT(cmev_flush(10000), 0);
    usleep(100000);
    delivered = atomic_load(&r->total);
    dropped = (long)counter(CMEV_COUNTER_DROPPED_OVERFLOW);
    CHECK(dropped > 0);
    CHECK_EQ_INT(delivered + dropped, n);
    CHECK_EQ_INT(count_seen(r, 2, n), delivered);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_QUEUE_HIGH_WATER), 16);
    rx_stop(r);
}

static void expire_after_max_age(void)
{
    struct rx *r;
    int i;
    setup(path);
    config("event_queue_max_age", "1");
    unlink(path);
    for (i = 0; i < 20; i++) emit(3, i);
    usleep(2500000);
    r = rx_start(0);
    CHECK_EQ_INT(cmev_flush(3000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_EXPIRED), 20);
    CHECK_EQ_INT(atomic_load(&r->total), 0);
    rx_stop(r);
}

static void slow_receiver_blocks_boundedly(void)
{
    struct rx *r = rx_start(500); /* 0.5 ms per datagram */
    double worst = 0;
    const int n = 3000; /* more than the ring and the sender's pending list hold */
    int i;
    setup(path);
    config("event_queue_size", "16");
    config("event_queue_overflow", "block");
    config("event_queue_block_timeout", "5");
    for (i = 0; i < n; i++) {
        double t = now_ms();
        emit(4, i);
        t = now_ms() - t;
        if (t > worst) worst = t;
    }
    /* loose sanity bound; latency figures belong to the benchmarks */
    CHECK(worst < 5 + 250);
    CHECK_EQ_INT(cmev_flush(20000), 0);
    usleep(100000);
    CHECK_EQ_INT(atomic_load(&r->total) + (long)counter(CMEV_COUNTER_DROPPED_OVERFLOW), n);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    printf("  slow receiver: worst notify %.1f ms, %ld delivered, %llu dropped\n", worst,
           atomic_load(&r->total), (unsigned long long)counter(CMEV_COUNTER_DROPPED_OVERFLOW));
    rx_stop(r);
}

/* Exit paths: the receiver lives in the parent, the child emits and leaves. */
static volatile sig_atomic_t got_term;
static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

/* Cyrus's shut_down: called from the main loop once a signal was seen. */
static void shut_down(void)
{
    exit(0);
}

static void run_exit_case(int how, int tag)
{
    struct rx *r = rx_start(0);
    pid_t p;
    int st, i;
    fflush(NULL);
    p = fork();
    if (p == 0) {
        setup(path);
        for (i = 0; i < 2000; i++) emit(tag, i);
        if (how == 0) exit(0); /* plain exit: the atexit flush */
        if (how == 1) {         /* signal, then shut_down() from the loop */
            signal(SIGTERM, on_term);
            raise(SIGTERM);
            while (!got_term) usleep(1000);
            shut_down();
        }
        cmev_flush(10000); /* explicit flush, then leave without atexit */
        _exit(0);
    }
    waitpid(p, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(wait_total(r, 2000, 5000));
    CHECK_EQ_INT(count_seen(r, tag, 2000), 2000);
    rx_stop(r);
    free(r);
}

static void exits(void)
{
    run_exit_case(0, 5);
    run_exit_case(1, 6);
    run_exit_case(2, 7);
}

/* An event queued before fork() is sent once, by the parent; the child
 * sends its own. */
static void fork_once(void)
{
    int ready[2];
    pid_t a;
    struct rx *r;
    char c;
    int st, i;
    unlink(path);
    if (pipe(ready)) exit(2);
    fflush(NULL);
    a = fork();
    if (a == 0) {
        pid_t b;
        setup(path);
        for (i = 0; i < 50; i++) emit(8, i); /* receiver absent: stays queued */
        b = fork();
        if (b == 0) {
            for (i = 0; i < 50; i++) emit(9, i);
            if (write(ready[1], "b", 1) != 1) _exit(3);
            _exit(cmev_flush(10000) == 0 ? 0 : 4);
        }
        if (write(ready[1], "a", 1) != 1) _exit(3);
        i = cmev_flush(10000) == 0 ? 0 : 4;
        waitpid(b, &st, 0);
        _exit(i || !WIFEXITED(st) ? 5 : WEXITSTATUS(st));
    }
    CHECK(read(ready[0], &c, 1) == 1 && read(ready[0], &c, 1) == 1);
    r = rx_start(0);
    waitpid(a, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(wait_total(r, 100, 5000));
    CHECK_EQ_INT(count_seen(r, 8, 50), 50);
    CHECK_EQ_INT(count_seen(r, 9, 50), 50);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    rx_stop(r);
    free(r);
    close(ready[0]);
    close(ready[1]);
}

static int per_thread;

static void *producer(void *arg)
{
    int tag = (int)(long)arg, i;
    for (i = 0; i < per_thread; i++) emit(tag, i);
    return NULL;
}

static void many_threads(void)
{
    struct rx *r = rx_start(0);
    pthread_t th[8];
    long t;
    double t0 = now_ms();
    setup(path);
    config("event_queue_overflow", "block");
    config("event_queue_block_timeout", "60000");
    for (t = 0; t < 8; t++) pthread_create(&th[t], NULL, producer, (void *)(t + 8));
    for (t = 0; t < 8; t++) pthread_join(th[t], NULL);
    CHECK_EQ_INT(cmev_flush(60000), 0);
    CHECK(wait_total(r, 8L * per_thread, 30000));
    printf("  8 threads: received %ld (bad %ld, dupes %ld), counters: sent %llu, dropped %llu, retried %llu\n",
           atomic_load(&r->total), atomic_load(&r->bad), atomic_load(&r->dupes),
           (unsigned long long)counter(CMEV_COUNTER_SENT), (unsigned long long)counter(CMEV_COUNTER_DROPPED_OVERFLOW),
           (unsigned long long)counter(CMEV_COUNTER_RETRIED));
    for (t = 0; t < 8; t++) CHECK_EQ_INT(count_seen(r, (int)t + 8, per_thread), per_thread);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_EQ_INT(atomic_load(&r->bad), 0);
    CHECK_EQ_INT(atomic_load(&r->out_of_order), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 8L * per_thread);
    printf("  8 threads x %d events: %.0f ms\n", per_thread, now_ms() - t0);
    rx_stop(r);
}

/* ---- dlist: stream listeners that answer OK, never, or garbage ---- */

struct dl {
    int fd;
    pthread_t th;
    const char *answer; /* NULL: never answer */
    atomic_int got, stop;
};

static void *dl_loop(void *arg)
{
    struct dl *d = arg;
    while (!atomic_load(&d->stop)) {
        char buf[8192];
        size_t have = 0;
        int c = accept(d->fd, NULL, NULL);
        if (c < 0) continue;
        while (have < sizeof(buf) - 1) {
            ssize_t n = read(c, buf + have, sizeof(buf) - 1 - have);
            if (n <= 0) break;
            have += (size_t)n;
            buf[have] = '\0';
            if (strstr(buf, " FILEPATH NIL)\r\n")) break;
        }
        if (strncmp(buf, "NOTIFY %(METHOD log CLASS EVENT PRIORITY NIL USER NIL MAILBOX NIL OPTIONS () MESSAGE {", 86) == 0
            && strstr(buf, "+}\r\n{\"event\":\"MailboxModseq\""))
            atomic_fetch_add(&d->got, 1);
        if (d->answer) {
            if (write(c, d->answer, strlen(d->answer)) < 0) perror("write");
            close(c);
        } else {
            while (!atomic_load(&d->stop)) usleep(10000); /* stall */
            close(c);
        }
    }
    return NULL;
}

static struct dl *dl_start(const char *answer)
{
    struct dl *d = calloc(1, sizeof(*d));
    struct sockaddr_un sun;
    struct timeval tv = { 0, 100000 };
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    unlink(path);
    d->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(d->fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(d->fd, 16)) {
        perror("dlist listen");
        exit(2);
    }
    setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    d->answer = answer;
    pthread_create(&d->th, NULL, dl_loop, d);
    return d;
}

static void dl_stop(struct dl *d)
{
    atomic_store(&d->stop, 1);
    pthread_join(d->th, NULL);
    close(d->fd);
    unlink(path);
    free(d);
}

static void dlist_cases(void)
{
    char dest[160];
    struct dl *d;
    uint64_t sent, tmo, err;
    double worst = 0;
    int i;

    snprintf(dest, sizeof(dest), "dlist:%s", path);
    setup(dest);
    config("event_dlist_timeout", "200");

    d = dl_start("OK %()\r\n");
    sent = counter(CMEV_COUNTER_SENT);
    for (i = 0; i < 10; i++) emit(10, i);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), sent + 10);
    CHECK_EQ_INT(atomic_load(&d->got), 10);
    dl_stop(d);

    d = dl_start(NULL);
    tmo = counter(CMEV_COUNTER_DROPPED_DLIST_TIMEOUT);
    for (i = 0; i < 3; i++) {
        double t = now_ms();
        emit(11, i);
        t = now_ms() - t;
        if (t > worst) worst = t;
    }
    CHECK(worst < 50); /* the caller never waits for the listener */
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_TIMEOUT), tmo + 3);
    dl_stop(d);

    d = dl_start("\x01\x02garbage\r\n");
    err = counter(CMEV_COUNTER_DROPPED_DLIST_ERROR);
    for (i = 0; i < 4; i++) emit(12, i);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_ERROR), err + 4);
    dl_stop(d);

    /* sync mode talks dlist on the caller's thread, still bounded */
    config("event_delivery", "sync");
    d = dl_start("OK\r\n");
    sent = counter(CMEV_COUNTER_SENT);
    emit(13, 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), sent + 1);
    dl_stop(d);
}

static void sync_mode(void)
{
    struct rx *r = rx_start(0);
    int i;
    setup(path);
    config("event_delivery", "sync");
    for (i = 0; i < 100; i++) emit(14, i);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 100); /* sent before notify returned */
    CHECK(wait_total(r, 100, 2000));
    rx_stop(r);
}

int main(void)
{
    const char *scale = getenv("CMEV_TEST_PER_THREAD");
    per_thread = scale ? atoi(scale) : 100000;
    if (per_thread < 1 || per_thread > MAX_SEQ) per_thread = MAX_SEQ;
    strcpy(dir, "/tmp/cmev-deliv-XXXXXX");
    if (!mkdtemp(dir)) return 2;
    snprintf(path, sizeof(path), "%s/notify", dir);

    in_child("receiver absent at start, then present", absent_then_present);
    in_child("receiver restarted, queue has room", restart_within_room);
    in_child("receiver restarted, queue overflows", restart_beyond_room);
    in_child("receiver absent past max age", expire_after_max_age);
    in_child("slow receiver, block policy", slow_receiver_blocks_boundedly);
    exits();
    printf("  exit, signal + shut_down, explicit flush: checked\n");
    fork_once();
    printf("  fork: checked\n");
    in_child("8 producer threads", many_threads);
    in_child("dlist listeners", dlist_cases);
    in_child("sync mode", sync_mode);

    rmdir(dir);
    return report("test_delivery");
}
