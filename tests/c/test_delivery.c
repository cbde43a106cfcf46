/* The delivery engine under the conditions a Cyrus server meets: receivers
 * that come late, restart, stall or answer garbage; exit, signals, fork and
 * many threads. Every event carries (tag, seq) in its uri, so loss and
 * duplication are counted, not guessed. Each scenario runs in a forked
 * child, which starts with an engine of its own. */
#include "rig.h"

#include <dirent.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/stat.h>

#define MAX_TAGS 16
#define MAX_SEQ 100000

/* Room for everything these scenarios send while the receiver is slow. */
#define RCVBUF (8 * 1024 * 1024)

/* A receiver for every tag and sequence number these scenarios use, its
 * socket bound but not yet read (rx_run). */
static struct rx *rx_bound(int delay_us)
{
    struct rx *r = rx_new(MAX_TAGS, MAX_SEQ);
    r->delay_us = delay_us;
    rx_bind(r, RCVBUF);
    return r;
}

static struct rx *rx_open(int delay_us)
{
    struct rx *r = rx_bound(delay_us);
    rx_run(r);
    return r;
}

static void rx_close(struct rx *r)
{
    rx_stop(r);
    rx_free(r);
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
    r = rx_open(0);
    CHECK_EQ_INT(cmev_flush(10000), 0);
    CHECK(rx_wait_total(r, 300, 5000));
    CHECK_EQ_INT(rx_count_seen(r, 0, 300), 300);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_EQ_INT(atomic_load(&r->out_of_order), 0);
    CHECK_EQ_INT(atomic_load(&r->bad), 0);
    CHECK(counter(CMEV_COUNTER_RETRIED) > 0);
    rx_close(r);
}

static void restart_within_room(void)
{
    struct rx *r = rx_open(0);
    int i;
    setup(path);
    for (i = 0; i < 500; i++) emit(1, i);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    rx_stop(r);
    for (i = 500; i < 1000; i++) emit(1, i); /* nobody listens */
    usleep(100000);
    rx_start(r, RCVBUF);
    CHECK_EQ_INT(cmev_flush(10000), 0);
    CHECK(rx_wait_total(r, 1000, 5000));
    CHECK_EQ_INT(rx_count_seen(r, 1, 1000), 1000);
    CHECK_EQ_INT(atomic_load(&r->out_of_order), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_OVERFLOW), 0);
    rx_close(r);
}

static void restart_beyond_room(void)
{
    struct rx *r = rx_open(0);
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
    rx_start(r, RCVBUF);
    CHECK_EQ_INT(cmev_flush(10000), 0);
    usleep(100000);
    delivered = atomic_load(&r->total);
    dropped = (long)counter(CMEV_COUNTER_DROPPED_OVERFLOW);
    CHECK(dropped > 0);
    CHECK_EQ_INT(delivered + dropped, n);
    CHECK_EQ_INT(rx_count_seen(r, 2, n), delivered);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_QUEUE_HIGH_WATER), 16);
    rx_close(r);
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
    r = rx_open(0);
    CHECK_EQ_INT(cmev_flush(3000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_EXPIRED), 20);
    CHECK_EQ_INT(atomic_load(&r->total), 0);
    rx_close(r);
}

static void slow_receiver_blocks_boundedly(void)
{
    struct rx *r = rx_open(500); /* 0.5 ms per datagram */
    double worst = 0;
    const int n = 3000; /* more than the ring and the sender's pending list hold */
    int i;
    setup(path);
    config("event_queue_size", "16");
    config("event_queue_overflow", "block");
    config("event_queue_block_timeout", "5");
    for (i = 0; i < n; i++) emit_timed(4, i, &worst);
    /* loose sanity bound; latency figures belong to the benchmarks */
    CHECK(worst < 5 + 250);
    CHECK_EQ_INT(cmev_flush(20000), 0);
    usleep(100000);
    CHECK_EQ_INT(atomic_load(&r->total) + (long)counter(CMEV_COUNTER_DROPPED_OVERFLOW), n);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    printf("  slow receiver: worst notify %.1f ms, %ld delivered, %llu dropped\n", worst,
           atomic_load(&r->total), (unsigned long long)counter(CMEV_COUNTER_DROPPED_OVERFLOW));
    rx_close(r);
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
    struct rx *r = rx_bound(0); /* its thread only after the fork: rx_bind */
    pid_t p;
    int st, i;
    fflush(NULL);
    p = fork();
    if (p == 0) {
        /* The parent's receiver: the child lets go of its copy, which
         * LeakSanitizer would otherwise find at the child's exit whenever
         * no register happens to still point at it. */
        close(r->fd);
        rx_free(r);
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
    rx_run(r);
    waitpid(p, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(rx_wait_total(r, 2000, 5000));
    CHECK_EQ_INT(rx_count_seen(r, tag, 2000), 2000);
    rx_close(r);
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
#ifdef __SANITIZE_ADDRESS__
    /* The child forks while its parent's sender thread renders (allocates):
     * GCC 12's libasan takes no lock on its allocator around fork(), so the
     * grandchild's sender can block forever on a size-class lock held by a
     * thread it lacks (seen here). glibc's malloc has fork handlers: the
     * plain build runs this, as for the fork storm in test_faults. */
    printf("    skipped under ASan (libasan's allocator is not fork-safe with threads)\n");
    return;
#endif

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
    r = rx_open(0);
    waitpid(a, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(rx_wait_total(r, 100, 5000));
    CHECK_EQ_INT(rx_count_seen(r, 8, 50), 50);
    CHECK_EQ_INT(rx_count_seen(r, 9, 50), 50);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    rx_close(r);
    close(ready[0]);
    close(ready[1]);
}

static int per_thread;

static void many_threads(void)
{
    struct rx *r = rx_open(0);
    struct producers p = { 8, per_thread, 8, { 0 } };
    int t;
    double t0 = now_ms();
    setup(path);
    config("event_queue_overflow", "block");
    config("event_queue_block_timeout", "60000");
    producers_start(&p, produce);
    producers_join(&p);
    CHECK_EQ_INT(cmev_flush(60000), 0);
    CHECK(rx_wait_total(r, 8L * per_thread, 30000));
    printf("  8 threads: received %ld (bad %ld, dupes %ld), counters: sent %llu, dropped %llu, retried %llu\n",
           atomic_load(&r->total), atomic_load(&r->bad), atomic_load(&r->dupes),
           (unsigned long long)counter(CMEV_COUNTER_SENT), (unsigned long long)counter(CMEV_COUNTER_DROPPED_OVERFLOW),
           (unsigned long long)counter(CMEV_COUNTER_RETRIED));
    for (t = 0; t < 8; t++) CHECK_EQ_INT(rx_count_seen(r, t + 8, per_thread), per_thread);
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_EQ_INT(atomic_load(&r->bad), 0);
    CHECK_EQ_INT(atomic_load(&r->out_of_order), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 8L * per_thread);
    printf("  8 threads x %d events: %.0f ms\n", per_thread, now_ms() - t0);
    rx_close(r);
}

/* ---- dlist: stream listeners that answer OK, never, or garbage ---- */

static void dlist_cases(void)
{
    struct dl *d;
    uint64_t sent, tmo, err;
    double worst = 0;
    int i;

    setup_dlist();
    config("event_dlist_timeout", "200");

    d = dl_start(DL_OK, NULL, 0, 16);
    sent = counter(CMEV_COUNTER_SENT);
    for (i = 0; i < 10; i++) emit(10, i);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), sent + 10);
    CHECK_EQ_INT(atomic_load(&d->requests), 10);
    CHECK(d->last && strstr(d->last, "+}\r\n{\"event\":\"MailboxModseq\",\"uri\":\"imap://h/t10/9\""));
    dl_stop(d);

    /* a peer that never reads still takes a small request: the reply is what times out */
    d = dl_start(DL_NO_READ, NULL, 0, 16);
    tmo = counter(CMEV_COUNTER_DROPPED_DLIST_TIMEOUT);
    for (i = 0; i < 3; i++) emit_timed(11, i, &worst);
    CHECK(worst < 50); /* the caller never waits for the listener */
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_TIMEOUT), tmo + 3);
    dl_stop(d);

    d = dl_start(DL_ANSWER, "\x01\x02garbage\r\n", 11, 16);
    err = counter(CMEV_COUNTER_DROPPED_DLIST_ERROR);
    for (i = 0; i < 4; i++) emit(12, i);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_ERROR), err + 4);
    dl_stop(d);

    /* sync mode talks dlist on the caller's thread, still bounded */
    config("event_delivery", "sync");
    d = dl_start(DL_ANSWER, "OK\r\n", 4, 16);
    sent = counter(CMEV_COUNTER_SENT);
    emit(13, 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), sent + 1);
    dl_stop(d);
}

static void sync_mode(void)
{
    struct rx *r = rx_open(0);
    int i;
    setup(path);
    config("event_delivery", "sync");
    for (i = 0; i < 100; i++) emit(11, i);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 100); /* sent before notify returned */
    CHECK(rx_wait_total(r, 100, 2000));
    rx_close(r);
}

/* The library's syslog lines land here (the executable's definition comes
 * first), counted by the thread that wrote them while a case watches. */
static pthread_t watched;
static atomic_int watching, logged_by_others, logged_drops;

void syslog(int priority, const char *format, ...)
{
    char line[512];
    va_list ap;
    (void)priority;
    va_start(ap, format);
    vsnprintf(line, sizeof(line), format, ap);
    va_end(ap);
    if (!atomic_load(&watching)) return;
    if (!pthread_equal(pthread_self(), watched)) atomic_fetch_add(&logged_by_others, 1);
    if (strstr(line, "events dropped since the last report")) atomic_fetch_add(&logged_drops, 1);
}

/* The sender thread's id (by its name), 0 if none */
static int sender_tid(void)
{
    char name[300], line[64];
    struct dirent *de;
    DIR *tasks = opendir("/proc/self/task");
    FILE *f;
    int tid = 0;
    while (tasks && (de = readdir(tasks))) {
        if (de->d_name[0] == '.') continue;
        snprintf(name, sizeof(name), "/proc/self/task/%s/comm", de->d_name);
        if (!(f = fopen(name, "r"))) continue;
        if (fgets(line, sizeof(line), f) && !strcmp(line, "mboxevent-send\n")) tid = atoi(de->d_name);
        fclose(f);
    }
    if (tasks) closedir(tasks);
    return tid;
}

/* The value after `key` on a thread's line of /proc/self/task/TID/status;
 * false if the file or the line is missing. */
static bool task_status(int tid, const char *key, char *value, size_t size)
{
    char name[300], line[256];
    bool found = false;
    FILE *f;
    snprintf(name, sizeof(name), "/proc/self/task/%d/status", tid);
    if (!(f = fopen(name, "r"))) return false;
    while (!found && fgets(line, sizeof(line), f))
        if (!strncmp(line, key, strlen(key))) {
            snprintf(value, size, "%s", line + strlen(key));
            found = true;
        }
    fclose(f);
    return found;
}

/* The sender is a batch thread that blocks every signal: Cyrus's signals
 * stay with Cyrus's threads, and waking it never preempts the caller. */
static void sender_thread(void)
{
    struct rx *r = rx_open(0);
    char value[64];
    const int cyrus_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE,
                                  SIGALRM, SIGTERM, SIGCHLD };
    unsigned long long blocked;
    size_t i;
    int tid;
    setup(path);
    emit(15, 0);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK((tid = sender_tid()) > 0);
    CHECK_EQ_INT(sched_getscheduler(tid), SCHED_BATCH);
    CHECK(task_status(tid, "SigBlk:", value, sizeof(value)));
    blocked = strtoull(value, NULL, 16);
    for (i = 0; i < sizeof(cyrus_signals) / sizeof(cyrus_signals[0]); i++)
        CHECK(blocked & (1ULL << (cyrus_signals[i] - 1)));
    CHECK(rx_wait_total(r, 1, 2000));
    rx_close(r);
}

/* The sender keeps its descriptors in a file table of its own (sharing
 * one slows every file call of Cyrus's thread), holding none of the
 * process's: a connection Cyrus closes is closed. syslog's descriptor is
 * the process's, so the sender's lines are written by the caller's thread. */
static void sender_files(void)
{
    char dir[64], entry[400], target[256], mine[2][64];
    struct pollfd pfd;
    struct dirent *de;
    struct stat st;
    DIR *fds;
    char byte;
    int pair[2], i, tid, foreign = 0, entries = 0;
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    for (i = 0; i < 2; i++) {
        CHECK_EQ_INT(fstat(pair[i], &st), 0);
        snprintf(mine[i], sizeof(mine[i]), "socket:[%lu]", (unsigned long)st.st_ino);
    }
    watched = pthread_self();
    atomic_store(&watching, 1);
    setup(path);
    config("event_max_datagram_size", "64"); /* the event is dropped, by the sender */
    emit(15, 0);
    usleep(200000); /* the sender drops it and reports the drop meanwhile */
    CHECK((tid = sender_tid()) > 0);
    snprintf(dir, sizeof(dir), "/proc/self/task/%d/fd", tid);
    CHECK((fds = opendir(dir)) != NULL);
    while (fds && (de = readdir(fds))) {
        ssize_t n;
        if (de->d_name[0] == '.') continue;
        entries++;
        snprintf(entry, sizeof(entry), "%s/%s", dir, de->d_name);
        n = readlink(entry, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        /* its own: /dev/null, its sockets, and the spool's files (.scan) */
        if (!strcmp(target, mine[0]) || !strcmp(target, mine[1]) ||
            (strcmp(target, "/dev/null") && strncmp(target, "socket:", 7) &&
             strncmp(target, spool, strlen(spool)))) {
            printf("    the sender's table holds %s -> %s\n", de->d_name, target);
            foreign++;
        }
    }
    if (fds) closedir(fds);
    CHECK(entries >= 3); /* 0-2 on /dev/null */
    CHECK_EQ_INT(foreign, 0);
    close(pair[0]);
    pfd.fd = pair[1];
    pfd.events = POLLIN;
    CHECK_EQ_INT(poll(&pfd, 1, 2000), 1);
    CHECK_EQ_INT((int)read(pair[1], &byte, 1), 0); /* end of file: nobody else holds it */
    close(pair[1]);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_TOO_BIG), 1);
    CHECK_EQ_INT(atomic_load(&logged_drops), 1);
    CHECK_EQ_INT(atomic_load(&logged_by_others), 0);
    atomic_store(&watching, 0);
}

/* Times the sender went to sleep (its voluntary context switches). */
static long sender_sleeps(int tid)
{
    char value[64];
    return task_status(tid, "voluntary_ctxt_switches:", value, sizeof(value)) ? atol(value) : -1;
}

/* An event after a quiet spell wakes the sender once, and it sleeps again
 * at once: a nap after it would be a second wake-up that finds nothing.
 * Events that keep coming wake it about once per nap, not once each. */
static void sender_wakeups(void)
{
    struct rx *r = rx_open(0);
    long before, isolated, stream;
    int tid, i;
    setup(path);
    emit(15, 0);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK((tid = sender_tid()) > 0);
    usleep(50000); /* past any nap: asleep */
    before = sender_sleeps(tid);
    emit(15, 1);
    usleep(50000);
    isolated = sender_sleeps(tid) - before;
    if (isolated != 1) printf("    an isolated event: the sender slept %ld times\n", isolated);
    CHECK(isolated == 1);
    before = sender_sleeps(tid);
    for (i = 2; i < 102; i++) {
        emit(15, i);
        usleep(1000);
    }
    usleep(50000);
    stream = sender_sleeps(tid) - before;
    if (stream > 40) printf("    100 events 1 ms apart: the sender slept %ld times\n", stream);
    CHECK(stream <= 40); /* about one per 10 ms nap; 100 if woken for each */
    CHECK(rx_wait_total(r, 102, 2000));
    rx_close(r);
}

/* Resident anonymous memory of the process, in KiB. */
static long rss_anon_kb(void)
{
    char value[64];
    return task_status(getpid(), "RssAnon:", value, sizeof(value)) ? atol(value) : -1;
}

/* The queue's memory follows what it holds, not event_queue_size: a
 * process that queues its first events with room for four million does
 * not set that room up (a ring allocated whole wrote 300 MB here, and
 * 1.2 MB at the default size in every imapd and lmtpd). */
static void queue_memory_follows_contents(void)
{
    struct rx *r = rx_open(0);
    long before, grown;
    int i;
    setup(path);
    config("event_queue_size", "4194304");
    before = rss_anon_kb();
    for (i = 0; i < 100; i++) emit(6, i);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    grown = rss_anon_kb() - before;
    if (grown >= 8192) printf("    100 events into a queue of 4194304: RssAnon +%ld KiB\n", grown);
    CHECK(before > 0 && grown < 8192);
    CHECK(rx_wait_total(r, 100, 2000));
    rx_close(r);
}

/* Large events are not kept for reuse once sent: what they held goes back
 * to the allocator, and from it to the system (malloc_trim). Kept, 300
 * events with 30 KB of content each, queued while the listener was away,
 * held 10 MB for the rest of the process's life. Not under ASan, whose
 * allocator keeps freed memory in quarantine. */
#ifndef __SANITIZE_ADDRESS__
static void large_events_are_not_kept(void)
{
    static char content[30000];
    struct rx *r;
    long before, kept;
    int i;
    setup_content(path);
    memset(content, 'a', sizeof(content));
    before = rss_anon_kb();
    for (i = 0; i < 300; i++) {
        cmev_event *ev = message_event((uint32_t)i + 1);
        CHECK_EQ_INT(cmev_event_set_content(ev, content, sizeof(content), 100), 0);
        cmev_notify(&ev, 1);
        cmev_event_free(ev);
    }
    r = rx_open(0); /* only drains them: it checks MailboxModseq events */
    CHECK_EQ_INT(cmev_flush(20000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 300);
    malloc_trim(0);
    kept = rss_anon_kb() - before;
    if (kept >= 4096) printf("    after 300 events of 30 KB, sent: RssAnon +%ld KiB\n", kept);
    CHECK(kept < 4096);
    rx_close(r);
}
#endif

/* A stream into the smallest queue: the napping sender must be woken
 * when 8 events wait (4 ms here), not after its 10 ms nap (20 events). */
static void small_queue_stream(void)
{
    struct rx *r = rx_open(0);
    int i;
    setup(path);
    config("event_queue_size", "16");
    for (i = 0; i < 5; i++) { /* a stream: the sender naps */
        emit(7, i);
        usleep(1000);
    }
    for (i = 5; i < 105; i++) {
        emit(7, i);
        usleep(500);
    }
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_OVERFLOW), 0);
    CHECK(rx_wait_total(r, 105, 2000));
    CHECK_EQ_INT(rx_count_seen(r, 7, 105), 105);
    rx_close(r);
}

static const struct test_case cases[] = {
    { "receiver absent at start, then present", absent_then_present, 60, NULL },
    { "receiver restarted, queue has room", restart_within_room, 60, NULL },
    { "receiver restarted, queue overflows", restart_beyond_room, 60, NULL },
    { "receiver absent past max age", expire_after_max_age, 60, NULL },
    { "slow receiver, block policy", slow_receiver_blocks_boundedly, 60, NULL },
    { "exit, signal + shut_down, explicit flush", exits, 60, NULL },
    { "fork: queued before fork, sent once", fork_once, 60, NULL },
    { "8 producer threads", many_threads, 600, NULL },
    { "dlist listeners", dlist_cases, 60, NULL },
    { "sync mode", sync_mode, 60, NULL },
    { "sender: batch thread, signals blocked", sender_thread, 60, NULL },
    { "sender: a file table of its own, its log lines relayed", sender_files, 60, NULL },
    { "sender: sleeps after an isolated event, naps in a stream", sender_wakeups, 60, NULL },
    { "sender: a stream into the smallest queue wakes it before it fills", small_queue_stream, 60, NULL },
    { "queue: memory follows what it holds, not its size", queue_memory_follows_contents, 60, NULL },
#ifndef __SANITIZE_ADDRESS__
    { "queue: large events are not kept once sent", large_events_are_not_kept, 60, NULL },
#endif
};

int main(void)
{
    const char *scale = getenv("CMEV_TEST_PER_THREAD");
    double t0 = suite_start("cmev-deliv");
    per_thread = scale ? atoi(scale) : 100000;
    if (per_thread < 1 || per_thread > MAX_SEQ) per_thread = MAX_SEQ;
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
    return suite_end("test_delivery", t0);
}
