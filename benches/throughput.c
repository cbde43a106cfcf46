/* Throughput and memory.
 *
 *   ours:  1,000,000 events through cmev_notify into a recvmmsg receiver
 *   limit: the same datagrams, pre-built, sent with sendmmsg (batches of 64)
 *          on one persistent connected socket to the same receiver; per
 *          run the faster of two ways of meeting a full receiver: blocking
 *          in sendmmsg, or a non-blocking call and poll() as ours does
 *          (which is faster depends on the host: on one, blocking reached
 *          only 200 k/s where ours reached 320 k/s)
 *
 * Interleaved A/B/A/B; events per second, median (min-max), and the ratio.
 * First with the threads where the scheduler puts them, then with each of
 * ours given a core to itself in turn (the other two sharing one, the
 * limit's two threads a core each), which shows what placement on two
 * cores does: the rate where the scheduler puts them moves between these.
 * Then the memory an event holds while queued (receiver absent).
 *
 * usage: throughput RESULTS_DIR
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "cyrus_mboxevent.h"

#define N 1000000L

static struct drain rx;
static char sample[4096];
static size_t sample_len;

static void event(uint32_t i)
{
    cmev_event *e = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(e, i);
    cmev_event_set_string(e, CMEV_PARAM_CMU_SESSION_ID, "cyrus-rig.test-1795890802-26456-2-7683099421600314520");
    cmev_event_add_msgid(e, "<rig-6@example.org>");
    cmev_event_set_uint(e, CMEV_PARAM_MESSAGE_SIZE, 534);
    cmev_event_set_string(e, CMEV_PARAM_ENVELOPE,
                          "(\"Tue, 02 Jan 2024 03:04:06 +0000\" \"lmtp with msgid\" ((\"Sender 6\" NIL \"sender6\" \"example.org\")) NIL NIL NIL NIL NIL NIL \"<rig-6@example.org>\")");
    cmev_event_set_mailbox_uri(e, "imap://cyrus-rig.test/user/alice;UIDVALIDITY=1795890796");
    cmev_event_set_string(e, CMEV_PARAM_MBTYPE, "e");
    cmev_event_set_string(e, CMEV_PARAM_MAILBOX_ACL, "alice\tlrswipkxtecdan\t");
    cmev_event_set_uint(e, CMEV_PARAM_UIDNEXT, i + 1);
    cmev_event_set_uint(e, CMEV_PARAM_MESSAGES, i);
    cmev_event_set_access(e, NULL, NULL, "alice");
    cmev_event_set_string(e, CMEV_PARAM_MAILBOX_ID, "eqdz638vvqbk0hal0j8219n9");
    cmev_notify(&e, 1);
    cmev_event_free(e);
}

/* CPU time of this process's threads, by role: the thread calling
 * cmev_notify (or sendmmsg, for the limit), the library's sender, the
 * receiver. From /proc/self/task/N/schedstat (ns on CPU). */
enum role { PRODUCER, SENDER, RECEIVER, ROLES };
struct cpu {
    double ns[ROLES];
};

/* Each thread of this process: its tid and role, by its name. */
static void each_thread(void (*fn)(int tid, enum role role, void *ctx), void *ctx)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[300], name[32] = "";
        FILE *f;
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof(p), "/proc/self/task/%s/comm", e->d_name);
        if ((f = fopen(p, "r"))) {
            if (!fgets(name, sizeof(name), f)) name[0] = '\0';
            fclose(f);
        }
        fn(atoi(e->d_name), !strncmp(name, "mboxevent-send", 14) ? SENDER
                            : !strncmp(name, "drain", 5)         ? RECEIVER
                                                                  : PRODUCER, ctx);
    }
    if (d) closedir(d);
}

static void add_cpu(int tid, enum role role, void *ctx)
{
    struct cpu *c = ctx;
    char p[300];
    unsigned long long ns = 0;
    FILE *f;
    snprintf(p, sizeof(p), "/proc/self/task/%d/schedstat", tid);
    if ((f = fopen(p, "r"))) {
        if (fscanf(f, "%llu", &ns) != 1) ns = 0;
        fclose(f);
    }
    c->ns[role] += (double)ns;
}

static struct cpu cpu_now(void)
{
    struct cpu c = { { 0 } };
    each_thread(add_cpu, &c);
    return c;
}

/* The role that has CPU 1 to itself while the others share CPU 0, or -1:
 * every thread may run anywhere. The limit has no sender: its producer and
 * receiver get a core each whichever role ours leaves alone. */
static int alone = -1;

struct placement {
    int alone, cores;
};

static void place_thread(int tid, enum role role, void *ctx)
{
    const struct placement *p = ctx;
    cpu_set_t set;
    int cpu;
    CPU_ZERO(&set);
    if (p->alone >= 0) CPU_SET(role == (enum role)p->alone ? 1 : 0, &set);
    else for (cpu = 0; cpu < p->cores; cpu++) CPU_SET(cpu, &set);
    if (sched_setaffinity(tid, sizeof(set), &set)) perror("sched_setaffinity");
}

static void place(int who)
{
    struct placement p = { who, (int)sysconf(_SC_NPROCESSORS_ONLN) };
    each_thread(place_thread, &p);
}

static int limit_alone(void)
{
    return alone < 0 ? -1 : RECEIVER;
}

/* µs of CPU per event of each role between two snapshots */
static void cpu_per_event(struct cpu a, struct cpu b, long events, double *out)
{
    int k;
    for (k = 0; k < ROLES; k++) out[k] = (b.ns[k] - a.ns[k]) / 1e3 / (double)events;
}

static double ours_cpu[4][ROLES], limit_cpu[4][ROLES];

static double run_ours(double *cpu)
{
    long before = atomic_load(&rx.received);
    struct cpu c0;
    place(alone);
    c0 = cpu_now();
    uint64_t t0 = now_ns();
    uint32_t i;
    double rate;
    for (i = 1; i <= N; i++) event(i);
    cmev_flush(120000);
    wait_received(&rx, before + N, 120000);
    rate = (double)(atomic_load(&rx.received) - before) / ((double)(now_ns() - t0) / 1e9);
    cpu_per_event(c0, cpu_now(), N, cpu);
    return rate;
}

static double run_limit_with(double *cpu, int nonblocking)
{
    struct cpu c0;
    double rate;
    struct mmsghdr msgs[64];
    struct iovec iov;
    struct sockaddr_un sun;
    long before = atomic_load(&rx.received), sent = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0), i;
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    uint64_t t0;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, rx.path, sizeof(rx.path));
    place(limit_alone());
    c0 = cpu_now();
    /* connected, as ours is: the path is not resolved per datagram */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) perror("connect");
    iov.iov_base = sample;
    iov.iov_len = sample_len;
    for (i = 0; i < 64; i++) {
        memset(&msgs[i], 0, sizeof(msgs[i]));
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    t0 = now_ns();
    while (sent < N) {
        int n = sendmmsg(fd, msgs, (unsigned)(N - sent < 64 ? N - sent : 64), nonblocking ? MSG_DONTWAIT : 0);
        if (n > 0) sent += n;
        else if (nonblocking && errno == EAGAIN) poll(&pfd, 1, 1000);
    }
    wait_received(&rx, before + N, 120000);
    close(fd);
    rate = (double)(atomic_load(&rx.received) - before) / ((double)(now_ns() - t0) / 1e9);
    cpu_per_event(c0, cpu_now(), N, cpu);
    return rate;
}

/* The faster of the two disciplines, and its CPU; counts the non-blocking wins */
static int limit_nonblocking_wins, limit_runs;

static double run_limit(double *cpu)
{
    double other[ROLES];
    double blocking = run_limit_with(cpu, 0), nonblocking = run_limit_with(other, 1);
    limit_runs++;
    if (blocking >= nonblocking) return blocking;
    limit_nonblocking_wins++;
    memcpy(cpu, other, sizeof(other));
    return nonblocking;
}

/* Median over the runs of one role's µs per event */
static double cpu_median(double runs[4][ROLES], int role)
{
    double v[4];
    int r;
    for (r = 0; r < 4; r++) v[r] = runs[r][role];
    return spread_of(v, 4).median;
}

/* Events per second these CPU costs allow on `cores` cores: no thread can
 * go faster than its own cost, and all of them share the cores; placed,
 * the thread alone has a core and the others share one. */
static double cpu_bound(const double *us, int cores, int who)
{
    double total = 0, worst = 0;
    int k;
    if (who >= 0) {
        for (k = 0; k < ROLES; k++)
            if (k != who) total += us[k];
        return 1e6 / (total > us[who] ? total : us[who]);
    }
    for (k = 0; k < ROLES; k++) {
        total += us[k];
        if (us[k] > worst) worst = us[k];
    }
    total /= cores;
    return 1e6 / (total > worst ? total : worst);
}

struct result {
    struct spread ours, limit;
    double o[ROLES], l[ROLES]; /* CPU µs per event, medians */
};

/* A B A B of ours and the limit, placed as `alone` says */
static struct result compare(void)
{
    double ours[4], limit[4];
    struct result res;
    int r, k;
    for (r = 0; r < 2; r++) {
        ours[2 * r] = run_ours(ours_cpu[2 * r]);
        limit[2 * r] = run_limit(limit_cpu[2 * r]);
        ours[2 * r + 1] = run_ours(ours_cpu[2 * r + 1]);
        limit[2 * r + 1] = run_limit(limit_cpu[2 * r + 1]);
    }
    res.ours = spread_of(ours, 4);
    res.limit = spread_of(limit, 4);
    for (k = 0; k < ROLES; k++) {
        res.o[k] = cpu_median(ours_cpu, k);
        res.l[k] = cpu_median(limit_cpu, k);
    }
    return res;
}

static void unplaced_tables(FILE *md, const struct result *x, int cores)
{
    const double *o = x->o, *l = x->l;
    fprintf(md, "| path | events/s, median of 4 (min–max) |\n|---|---|\n");
    fprintf(md, "| ours (cmev_notify → queue → sender → sendmmsg) | %.0f (%.0f–%.0f) |\n",
            x->ours.median, x->ours.min, x->ours.max);
    fprintf(md, "| limit (pre-built datagrams, sendmmsg ×64, one connected socket, the faster of blocking and non-blocking + poll) | %.0f (%.0f–%.0f) |\n",
            x->limit.median, x->limit.min, x->limit.max);
    fprintf(md, "| **ours / limit** | **%.0f%%** |\n\n", 100.0 * x->ours.median / x->limit.median);
    fprintf(md, "Where the time goes: CPU µs per event of each thread (median of 4), and the rate "
                "those costs allow on this machine's %d cores (no thread faster than its own cost, "
                "all sharing the cores):\n\n", cores);
    fprintf(md, "| path | producer | sender | receiver | total | allows events/s | achieved |\n"
                "|---|---|---|---|---|---|---|\n");
    fprintf(md, "| ours (producer: cmev_* calls; sender: render + sendmmsg) | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f%% of that |\n",
            o[PRODUCER], o[SENDER], o[RECEIVER], o[PRODUCER] + o[SENDER] + o[RECEIVER],
            cpu_bound(o, cores, -1), 100.0 * x->ours.median / cpu_bound(o, cores, -1));
    fprintf(md, "| limit (producer: sendmmsg of ready datagrams) | %.2f | – | %.2f | %.2f | %.0f | %.0f%% of that |\n\n",
            l[PRODUCER], l[RECEIVER], l[PRODUCER] + l[RECEIVER], cpu_bound(l, cores, -1),
            100.0 * x->limit.median / cpu_bound(l, cores, -1));
}

/* Ours with each of its three threads given a core to itself in turn: where
 * the scheduler puts them, the rate moves between these. */
static void placed_table(FILE *md, const struct result *unplaced)
{
    static const char *const names[ROLES] = { "producer", "sender", "receiver" };
    static const int order[ROLES] = { RECEIVER, SENDER, PRODUCER };
    struct result x[ROLES]; /* by the role alone */
    int i;
    for (i = 0; i < ROLES; i++) {
        alone = order[i];
        x[alone] = compare();
    }
    fprintf(md, "Threads placed: one of ours has CPU 1 to itself, the other two share CPU 0; the "
                "limit's producer and receiver have a core each. CPU µs per event of ours, median of 4, "
                "and the rate those costs allow so placed:\n\n");
    fprintf(md, "| CPU 1 to itself | ours events/s (min–max) | limit events/s (min–max) | **ours / limit** "
                "| producer | sender | receiver | allows events/s | achieved |\n"
                "|---|---|---|---|---|---|---|---|---|\n");
    for (i = 0; i < ROLES; i++) {
        const struct result *r = &x[order[i]];
        double allows = cpu_bound(r->o, 2, order[i]);
        fprintf(md, "| the %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | **%.0f%%** | %.2f | %.2f | %.2f | %.0f | %.0f%% of that |\n",
                names[order[i]], r->ours.median, r->ours.min, r->ours.max, r->limit.median,
                r->limit.min, r->limit.max, 100.0 * r->ours.median / r->limit.median,
                r->o[PRODUCER], r->o[SENDER], r->o[RECEIVER], allows, 100.0 * r->ours.median / allows);
    }
    /* With the producer alone, the sender and the receiver share a core: a
     * sender that only made the limit's own sendmmsg calls would still be
     * bound by the two together. */
    {
        double floor_us = unplaced->l[PRODUCER] + x[PRODUCER].o[RECEIVER];
        fprintf(md, "\nWith the producer alone the sender shares a core with the receiver: a sender whose "
                    "whole cost were the limit's own `sendmmsg` (%.2f µs per event, unplaced) beside that "
                    "receiver (%.2f µs) would allow %.0f events/s, **%.0f%% of the limit** where the "
                    "scheduler puts its threads.\n\n",
                unplaced->l[PRODUCER], x[PRODUCER].o[RECEIVER], 1e6 / floor_us,
                100.0 * 1e6 / floor_us / unplaced->limit.median);
    }
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* RSS growth of a fresh child that queues `n` events nobody receives */
static long queued_memory_kb(long n)
{
    int fds[2];
    long kb = -1;
    pid_t p;
    if (pipe(fds)) return -1;
    p = fork();
    if (p == 0) {
        long before, after;
        uint32_t i;
        cmev_config_set("event_notifier", "log", NULL, 0);
        cmev_config_set("event_extra_params", "timestamp service messageSize messages uidnext vnd.cmu.midset vnd.cmu.envelope vnd.cmu.sessionId", NULL, 0);
        cmev_config_set("notifysocket", "/tmp/cmev-nobody-listens/notify", NULL, 0);
        cmev_config_set("event_queue_size", "262144", NULL, 0);
        before = rss_kb();
        for (i = 0; i < (uint32_t)n; i++) event(i);
        after = rss_kb() - before;
        if (write(fds[1], &after, sizeof(after)) != (ssize_t)sizeof(after)) _exit(1);
        _exit(0); /* the queued events are meant to be lost here */
    }
    if (read(fds[0], &kb, sizeof(kb)) != (ssize_t)sizeof(kb)) kb = -1;
    waitpid(p, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    return kb;
}

int main(int argc, char **argv)
{
    char path[100], out[512];
    long held_kb, queued = 200000;
    FILE *md;
    if (argc < 2) {
        fprintf(stderr, "usage: %s RESULTS_DIR\n", argv[0]);
        return 2;
    }
    held_kb = queued_memory_kb(queued);
    snprintf(path, sizeof(path), "/tmp/cmev-tput-%d.sock", (int)getpid());
    drain_start(&rx, path);
    cmev_config_set("event_notifier", "log", NULL, 0);
    cmev_config_set("event_extra_params", "timestamp service messageSize messages uidnext vnd.cmu.midset vnd.cmu.envelope vnd.cmu.sessionId", NULL, 0);
    cmev_config_set("servername", "cyrus-rig.test", NULL, 0);
    cmev_config_set("service", "lmtpunix", NULL, 0);
    cmev_config_set("notifysocket", path, NULL, 0);
    cmev_config_set("event_queue_overflow", "block", NULL, 0);
    cmev_config_set("event_queue_block_timeout", "60000", NULL, 0);
    cmev_config_set("event_queue_size", "262144", NULL, 0);

    /* one of our datagrams, byte for byte, for the limit run */
    {
        int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        struct sockaddr_un sun;
        char p2[100];
        struct timeval tv = { 2, 0 };
        snprintf(p2, sizeof(p2), "/tmp/cmev-tput-sample-%d.sock", (int)getpid());
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, p2, strlen(p2) + 1);
        bind(fd, (struct sockaddr *)&sun, sizeof(sun));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        cmev_config_set("notifysocket", p2, NULL, 0);
        event(123456);
        cmev_flush(5000);
        sample_len = (size_t)recv(fd, sample, sizeof(sample), 0);
        close(fd);
        unlink(p2);
        cmev_config_set("notifysocket", path, NULL, 0);
    }

    snprintf(out, sizeof(out), "%s/throughput.md", argv[1]);
    md = fopen(out, "w");
    if (!md) {
        perror(out);
        return 2;
    }
    fprintf(md, "### Throughput: %ld events of %zu bytes end to end into a recvmmsg receiver\n\n", N, sample_len);
    fprintf(md, "Threads where the scheduler puts them:\n\n");
    {
        int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
        struct result unplaced = compare();
        unplaced_tables(md, &unplaced, cores);
        if (cores >= 2) placed_table(md, &unplaced);
    }
    drain_stop(&rx);
    fprintf(md, "The limit's send discipline: of its %d runs, non-blocking + poll was the faster in %d, "
            "blocking in the others.\n\n", limit_runs, limit_nonblocking_wins);
    fprintf(md, "### Memory while the receiver is absent\n\n");
    fprintf(md, "A fresh process queues %ld events while nothing listens (queue of 262,144): "
            "RSS +%ld KiB, **%.0f bytes per queued event**, ring included (its datagram: %zu bytes).\n",
            queued, held_kb, (double)held_kb * 1024.0 / (double)queued, sample_len);
    fclose(md);
    printf("throughput: results in %s\n", out);
    return 0;
}
