/* The rig the delivery, hardening and panic tests share: cases run in
 * forked children with a hang guard, exact accounting of the counters,
 * producer threads, a datagram receiver thread that checks every byte and
 * counts (tag, seq) pairs, and a scriptable dlist peer. */
#ifndef CMEV_TEST_RIG_H
#define CMEV_TEST_RIG_H

#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char dir[64], path[128], spool[96];

/* CMEV_TEST_SLOW=N multiplies every upper time bound and timeout (for runs
 * under valgrind); lower bounds, which measure the library's own timeouts,
 * stay. */
static double slow = 1.0;
#define T(ms) ((uint32_t)((ms) * slow))

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void make_test_dir(const char *prefix)
{
    const char *sl = getenv("CMEV_TEST_SLOW");
    if (sl && atof(sl) >= 1) slow = atof(sl);
    snprintf(dir, sizeof(dir), "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(2);
    }
    chmod(dir, 0755); /* cases run as nobody too */
    snprintf(path, sizeof(path), "%s/notify", dir);
}

static inline void remove_test_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* The profile every case starts from: mailbox events only, no extras. */
static inline void setup(const char *dest)
{
    cmev_config_reset();
    config("event_notifier", "log");
    config("event_groups", "mailbox");
    config("event_extra_params", "");
    config("servername", "h");
    config("notifysocket", dest);
    /* A spool of the case's own, under the test directory: a case that
     * leaves events unsent (its listener absent) must not hand them to the
     * next case, as a dead Cyrus process hands them to a live one. */
    snprintf(spool, sizeof(spool), "%s/spool.%d", dir, (int)getpid());
    config("event_spool_dir", spool);
}

/* The same profile, sending to a dlist peer at `path`. */
static inline void setup_dlist(void)
{
    char dest[160];
    snprintf(dest, sizeof(dest), "dlist:%s", path);
    setup(dest);
}

/* One MailboxModseq event carrying (tag, seq) in its uri. */
static inline void emit(int tag, int seq)
{
    char uri[64];
    cmev_event *ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_MODSEQ);
    snprintf(uri, sizeof(uri), "imap://h/t%d/%d", tag, seq);
    cmev_event_set_string(ev, CMEV_PARAM_URI, uri);
    cmev_notify(&ev, 1);
    cmev_event_free(ev);
}

/* The longest a caller has waited in the library so far. */
static inline void keep_worst(double *worst, double since)
{
    double t = now_ms() - since;
    if (t > *worst) *worst = t;
}

static inline void emit_timed(int tag, int seq, double *worst)
{
    double t = now_ms();
    emit(tag, seq);
    keep_worst(worst, t);
}

static inline cmev_event *mailbox_event(const char *uri)
{
    cmev_event *ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK(ev != NULL);
    cmev_event_set_string(ev, CMEV_PARAM_URI, uri);
    return ev;
}

/* The message group with messageContent, sending to `dest`. */
static inline void setup_content(const char *dest)
{
    setup(dest);
    config("event_groups", "message");
    config("event_extra_params", "messageContent");
}

/* A MessageNew for UID `uid` of INBOX, its content not set yet. */
static inline cmev_event *message_event(uint32_t uid)
{
    cmev_event *ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK(ev != NULL);
    cmev_event_add_uid(ev, uid);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    return ev;
}

static inline uint64_t dropped_total(const cmev_counters *c)
{
    return c->values[CMEV_COUNTER_DROPPED_OVERFLOW] + c->values[CMEV_COUNTER_DROPPED_EXPIRED]
        + c->values[CMEV_COUNTER_DROPPED_TOO_BIG] + c->values[CMEV_COUNTER_DROPPED_DLIST_TIMEOUT]
        + c->values[CMEV_COUNTER_DROPPED_DLIST_ERROR] + c->values[CMEV_COUNTER_DROPPED_SEND_ERROR];
}

/* enqueued = sent + dropped + still queued, exactly. Call at rest (after a
 * flush that returned `still`, or in sync mode). */
#define CHECK_ACCOUNTING(still)                                                          \
    do {                                                                                 \
        cmev_counters c_;                                                                \
        uint64_t s_ = (uint64_t)(still);                                                 \
        checks++;                                                                        \
        if (cmev_counters_get(&c_) != 0                                                  \
            || c_.values[CMEV_COUNTER_ENQUEUED] != c_.values[CMEV_COUNTER_SENT] + dropped_total(&c_) + s_) { \
            failures++;                                                                  \
            fprintf(stderr, "%s:%d: enqueued %llu != sent %llu + dropped %llu + queued %llu\n", \
                    __FILE__, __LINE__, (unsigned long long)c_.values[CMEV_COUNTER_ENQUEUED], \
                    (unsigned long long)c_.values[CMEV_COUNTER_SENT],                    \
                    (unsigned long long)dropped_total(&c_), (unsigned long long)s_);     \
        }                                                                                \
    } while (0)

/* ---- cases in forked children ---- */

struct test_case {
    const char *name;
    void (*fn)(void);
    unsigned timeout_s;
    const void *arg; /* the case's parameters, read as this_case->arg */
};

/* In a case's child: the case it runs. */
static const struct test_case *this_case;

struct child {
    const char *name;
    pid_t pid;
    int fd;
    double t0;
};

/* Start a case in a child with a fresh library state (a forked child gets
 * its own queue and zeroed counters); a case that hangs is killed by
 * alarm(). */
static inline struct child start_case(const struct test_case *tc)
{
    struct child c = { tc->name, 0, -1, now_ms() };
    const char *only = getenv("CMEV_TEST_ONLY"); /* a substring of case names */
    int fds[2];
    if (only && !strstr(tc->name, only)) {
        c.pid = -1;
        return c;
    }
    fflush(NULL);
    if (pipe(fds)) exit(2);
    c.pid = fork();
    if (c.pid == 0) {
        int tally[2];
        close(fds[0]);
        setpgid(0, 0); /* its own group: whatever it forks is cleaned up with it */
        checks = failures = 0;
        this_case = tc;
        alarm((unsigned)(tc->timeout_s * slow));
        tc->fn();
        tally[0] = checks;
        tally[1] = failures;
        if (write(fds[1], tally, sizeof(tally)) != (ssize_t)sizeof(tally)) _exit(3);
        fflush(NULL);
        _exit(failures ? 1 : 0);
    }
    close(fds[1]);
    c.fd = fds[0];
    return c;
}

/* Collect a case's checks; returns 0 when it failed. */
static inline int finish_case(struct child *c)
{
    int tally[2] = { 0, 0 }, st = 0;
    ssize_t n;
    if (c->pid < 0) return 1; /* not selected */
    waitpid(c->pid, &st, 0);
    /* the tally was written before the child exited; a grandchild still
     * holding the pipe must not make this wait */
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    n = read(c->fd, tally, sizeof(tally));
    close(c->fd);
    kill(-c->pid, SIGKILL); /* stragglers of a failed case */
    checks += (n == (ssize_t)sizeof(tally) ? tally[0] : 0) + 1;
    failures += n == (ssize_t)sizeof(tally) ? tally[1] : 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (n != (ssize_t)sizeof(tally) || !tally[1]) failures++;
        if (WIFSIGNALED(st))
            printf("  %s: FAILED, killed by signal %d%s\n", c->name, WTERMSIG(st),
                   WTERMSIG(st) == SIGALRM ? " (hang)" : "");
        else
            printf("  %s: FAILED\n", c->name);
        return 0;
    }
    printf("  %s: ok (%.0f ms)\n", c->name, now_ms() - c->t0);
    return 1;
}

static inline void run_cases(const struct test_case *cases, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        struct child c = start_case(&cases[i]);
        finish_case(&c);
    }
}

/* Cases that spend their time waiting on the library's timeouts run
 * `width` at a time, each at a socket path of its own under the test
 * directory. */
static inline void run_side_by_side(const struct test_case *cases, size_t n, size_t width)
{
    struct child kids[16];
    size_t i, k;
    if (width > sizeof(kids) / sizeof(kids[0])) width = sizeof(kids) / sizeof(kids[0]);
    for (i = 0; i < n; i += width) {
        for (k = 0; k < width && i + k < n; k++) {
            snprintf(path, sizeof(path), "%s/case%zu-%zu", dir, i, k);
            kids[k] = start_case(&cases[i + k]);
        }
        for (k = 0; k < width && i + k < n; k++) finish_case(&kids[k]);
    }
    snprintf(path, sizeof(path), "%s/notify", dir);
}

static inline double suite_start(const char *prefix)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    make_test_dir(prefix);
    return now_ms();
}

static inline int suite_end(const char *name, double t0)
{
    remove_test_dir();
    printf("  (%.1f s)\n", (now_ms() - t0) / 1000);
    return report(name);
}

/* ---- sockets ---- */

static inline int bind_dgram(const char *p, int rcvbuf)
{
    struct sockaddr_un sun;
    struct timeval tv = { 0, 100000 };
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, p);
    unlink(p);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        perror("bind");
        exit(2);
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* ---- a receiver thread checking every datagram byte for byte ---- */

struct rx {
    int fd;
    pthread_t th;
    atomic_int stop;
    atomic_long total, dupes, bad, out_of_order;
    int delay_us;  /* per datagram: a slow receiver */
    int tags, max_seq;
    unsigned char *seen; /* [tags][max_seq] */
    int *last;           /* per tag */
    int *pid;            /* per tag: the pid its events carried */
    atomic_long wrong_pid;
};

static inline void rx_take(struct rx *r, const char *buf, ssize_t n)
{
    char want[512];
    int tag, seq, pid, wl;
    const char *j = datagram_json(buf, n);
    if (!j || sscanf(j, "{\"event\":\"MailboxModseq\",\"uri\":\"imap://h/t%d/%d\",\"pid\":%d", &tag, &seq, &pid) != 3
        || tag < 0 || tag >= r->tags || seq < 0 || seq >= r->max_seq) {
        atomic_fetch_add(&r->bad, 1);
        return;
    }
    wl = snprintf(want, sizeof(want),
                  "log%cEVENT%c%c%c%c0%c{\"event\":\"MailboxModseq\",\"uri\":\"imap://h/t%d/%d\",\"pid\":%d,\"serverFQDN\":\"h\"}",
                  0, 0, 0, 0, 0, 0, tag, seq, pid) + 1;
    if (wl != n || memcmp(want, buf, (size_t)n) != 0) atomic_fetch_add(&r->bad, 1);
    if (r->seen[(size_t)tag * (size_t)r->max_seq + (size_t)seq]++) atomic_fetch_add(&r->dupes, 1);
    if (seq < r->last[tag]) atomic_fetch_add(&r->out_of_order, 1);
    r->last[tag] = seq;
    if (r->pid[tag] == 0) r->pid[tag] = pid;
    else if (r->pid[tag] != pid) atomic_fetch_add(&r->wrong_pid, 1);
    atomic_fetch_add(&r->total, 1);
}

/* Take whatever is waiting on fd; returns how many datagrams. */
static inline int rx_drain(struct rx *r, int fd)
{
    char buf[4096];
    ssize_t n;
    int got = 0;
    while ((n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        rx_take(r, buf, n);
        got++;
    }
    return got;
}

static inline void *rx_loop(void *arg)
{
    struct rx *r = arg;
    char buf[4096];
    while (!atomic_load(&r->stop)) {
        ssize_t n = recv(r->fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0) continue;
        buf[n] = '\0';
        rx_take(r, buf, n);
        if (r->delay_us) usleep((useconds_t)r->delay_us);
    }
    return NULL;
}

static inline struct rx *rx_new(int tags, int max_seq)
{
    struct rx *r = calloc(1, sizeof(*r));
    r->tags = tags;
    r->max_seq = max_seq;
    r->seen = calloc((size_t)tags * (size_t)max_seq, 1);
    r->last = calloc((size_t)tags, sizeof(int));
    r->pid = calloc((size_t)tags, sizeof(int));
    r->fd = -1;
    return r;
}

/* The receiver's socket, bound; rx_run starts reading it. Apart for a test
 * that forks in between: a thread starting while its process forks can
 * leave libasan's allocator locked in the child (no fork handlers in GCC
 * 12's libasan), which then hangs at its first allocation. */
static inline void rx_bind(struct rx *r, int rcvbuf)
{
    atomic_store(&r->stop, 0);
    r->fd = bind_dgram(path, rcvbuf);
}

static inline void rx_run(struct rx *r)
{
    pthread_create(&r->th, NULL, rx_loop, r);
}

static inline void rx_start(struct rx *r, int rcvbuf)
{
    rx_bind(r, rcvbuf);
    rx_run(r);
}

/* The receiver goes away gracefully: the path first (new sends find nobody
 * and are kept by the library), then whatever the kernel had already
 * accepted is read, then the socket closes. Only then does every datagram
 * the library counted as sent reach the counts. */
static inline void rx_stop(struct rx *r)
{
    int quiet = 0;
    unlink(path);
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    while (quiet < 3) { /* a send that resolved the path just before unlink */
        if (rx_drain(r, r->fd)) {
            quiet = 0;
        } else {
            quiet++;
            usleep(500);
        }
    }
    close(r->fd);
    r->fd = -1;
}

static inline void rx_free(struct rx *r)
{
    free(r->seen);
    free(r->last);
    free(r->pid);
    free(r);
}

static inline int rx_wait_total(struct rx *r, long want, int ms)
{
    double end = now_ms() + ms * slow;
    while (atomic_load(&r->total) < want && now_ms() < end) usleep(1000);
    usleep(20000); /* anything extra would show up now */
    return atomic_load(&r->total) == want;
}

static inline long rx_count_seen(struct rx *r, int tag, int n)
{
    long c = 0;
    int i;
    for (i = 0; i < n; i++) c += r->seen[(size_t)tag * (size_t)r->max_seq + (size_t)i] == 1;
    return c;
}

/* ---- producer threads: thread t emits (tag0 + t, 0 .. per_thread-1) ---- */

struct producers {
    int threads, per_thread, tag0;
    pthread_t th[16];
};

static int producer_count;

static inline void *produce(void *arg)
{
    long tag = (long)arg;
    int i;
    for (i = 0; i < producer_count; i++) emit((int)tag, i);
    return NULL;
}

static inline void producers_start(struct producers *p, void *(*fn)(void *))
{
    long t;
    producer_count = p->per_thread;
    for (t = 0; t < p->threads; t++) pthread_create(&p->th[t], NULL, fn, (void *)(t + p->tag0));
}

static inline void producers_join(struct producers *p)
{
    int t;
    for (t = 0; t < p->threads; t++) pthread_join(p->th[t], NULL);
}

/* ---- a dlist peer with a script ---- */

enum dl_mode {
    DL_OK,          /* read the request, answer OK */
    DL_ANSWER,      /* read the request, answer `answer` (any bytes), close */
    DL_CLOSE_EARLY, /* accept and close at once, without reading */
    DL_READ_CLOSE,  /* read the request, close without answering */
    DL_FLOOD,       /* read the request, then send bytes forever, never CRLF */
    DL_TRICKLE,     /* read the request, then a byte every 20 ms, never CRLF */
    DL_NO_READ,     /* accept, never read, never answer */
    DL_SLOW_READ,   /* read 128 kB every 200 ms: always some progress, never done in time */
};

struct dl {
    int fd;
    pthread_t th;
    enum dl_mode mode;
    const char *answer;
    size_t answer_len;
    atomic_int stop, accepted;
    atomic_int requests; /* complete NOTIFY requests framed as stock frames them */
    char *last;          /* the last of them, for inspection */
    size_t last_len;
};

#define DL_HEAD "NOTIFY %(METHOD log CLASS EVENT PRIORITY NIL USER NIL MAILBOX NIL OPTIONS () MESSAGE {"

static inline size_t dl_read_request(int c, char **out)
{
    size_t cap = 1 << 16, have = 0;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t n;
        if (have + 1 >= cap) buf = realloc(buf, cap *= 2);
        n = read(c, buf + have, cap - 1 - have);
        if (n <= 0) break;
        have += (size_t)n;
        buf[have] = '\0';
        if (have >= 16 && memcmp(buf + have - 16, " FILEPATH NIL)\r\n", 16) == 0) break;
    }
    *out = buf;
    return have;
}

static inline void *dl_loop(void *arg)
{
    struct dl *d = arg;
    while (!atomic_load(&d->stop)) {
        char *req = NULL;
        size_t len = 0;
        int c = accept(d->fd, NULL, NULL);
        if (c < 0) continue;
        atomic_fetch_add(&d->accepted, 1);
        if (d->mode == DL_CLOSE_EARLY) {
            close(c);
            continue;
        }
        if (d->mode == DL_SLOW_READ) {
            static char sink[128 * 1024];
            while (!atomic_load(&d->stop) && read(c, sink, sizeof(sink)) > 0) usleep(200000);
            close(c);
            continue;
        }
        if (d->mode == DL_NO_READ) {
            while (!atomic_load(&d->stop)) usleep(5000);
            close(c);
            continue;
        }
        len = dl_read_request(c, &req);
        if (len > sizeof(DL_HEAD) + 16 && memcmp(req, DL_HEAD, sizeof(DL_HEAD) - 1) == 0
            && memcmp(req + len - 16, " FILEPATH NIL)\r\n", 16) == 0) {
            atomic_fetch_add(&d->requests, 1);
            free(d->last);
            d->last = req;
            d->last_len = len;
            req = NULL;
        }
        free(req);
        switch (d->mode) {
        case DL_OK:
            if (write(c, "OK %()\r\n", 8) < 0) perror("dlist write");
            break;
        case DL_ANSWER:
            if (write(c, d->answer, d->answer_len) < 0) perror("dlist write");
            break;
        case DL_FLOOD: {
            static const char junk[1024] = { 'A' };
            while (!atomic_load(&d->stop) && send(c, junk, sizeof(junk), MSG_NOSIGNAL) > 0) {}
            break;
        }
        case DL_TRICKLE:
            while (!atomic_load(&d->stop) && send(c, "A", 1, MSG_NOSIGNAL) == 1) usleep(20000);
            break;
        default:
            break;
        }
        close(c);
    }
    return NULL;
}

static inline struct dl *dl_start(enum dl_mode mode, const char *answer, size_t answer_len, int backlog)
{
    struct dl *d = calloc(1, sizeof(*d));
    struct sockaddr_un sun;
    struct timeval tv = { 0, 50000 };
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    unlink(path);
    d->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(d->fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(d->fd, backlog)) {
        perror("dlist listen");
        exit(2);
    }
    setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    d->mode = mode;
    d->answer = answer;
    d->answer_len = answer_len;
    pthread_create(&d->th, NULL, dl_loop, d);
    return d;
}

static inline void dl_stop(struct dl *d)
{
    atomic_store(&d->stop, 1);
    pthread_join(d->th, NULL);
    close(d->fd);
    unlink(path);
    free(d->last);
    free(d);
}

#endif /* CMEV_TEST_RIG_H */
