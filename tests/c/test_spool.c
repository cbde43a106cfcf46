/* The durable spool: what a process acknowledged (cmev_notify returned)
 * outlives it. Processes are killed with SIGKILL at random points while
 * the receiver is up, down, or taking a fast stream; another process
 * adopts the ring left behind, and every event is accounted for: delivered
 * events of a round are 0..m with nothing acknowledged missing, repeats
 * are at most one sendmmsg batch, the ring is gone. Adopters are killed
 * too. Then damaged rings (a record half-written or reserved and never
 * begun, truncated files, garbage), hostile spool directories (missing
 * parent, open to others, another user's, a full file system, a full
 * ring), pid reuse, permissions, normal operation, adoption in steps,
 * short-lived processes and fork.
 *
 * The process running a case never starts a thread while it forks
 * producers and adopters (GCC 12's libasan is not fork-safe with threads):
 * it receives by polling its socket between waits. Children report through
 * a MAP_SHARED page. */
#include "rig.h"

#include <dirent.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define ROUNDS 100
#define MAX_SEQ 10000
/* Tags: a round's events, then its adopter's marker, then the other cases. */
#define MARK_TAG(round) (ROUNDS + (round))
#define TAG0 (2 * ROUNDS)
#define TAGS (TAG0 + 64)
#define RCVBUF (8 * 1024 * 1024)
/* Datagrams per sendmmsg batch: the most a killed sender can have sent
 * without living to mark them done. */
#define BATCH 64

/* The ring file's layout (src/journal.rs, src/mark.rs). */
#define RING_HEADER 64
#define RING_WRITING 0xC3E70001u
#define RING_COMMITTED 0xC3E70002u
#define RING_DONE 0xC3E70003u
#define RING_PAD 0xC3E70004u

/* ---- what children report ---- */

#define LINES 32
struct shared {
    atomic_int started, acked; /* the producer: events begun, events acknowledged */
    atomic_int unspooled;      /* the producer's CMEV_COUNTER_UNSPOOLED */
    atomic_int go;             /* the parent lets a waiting child go on */
    atomic_int acked2, pid2;   /* a producer's forked child: acknowledged, its pid */
    atomic_int finished;       /* the adopter recorded its counters */
    uint64_t flush_left;
    uint64_t cnt[CMEV_COUNTER_COUNT];
    atomic_int nlines;
    char lines[LINES][400];
};
static struct shared *sh;

static void sh_reset(void)
{
    memset(sh, 0, sizeof(*sh));
}

/* The library's syslog lines, from whichever process, kept in order. */
void syslog(int priority, const char *format, ...)
{
    va_list ap;
    int i;
    char line[400];
    (void)priority;
    if (!sh) return;
    va_start(ap, format);
    vsnprintf(line, sizeof(line), format, ap);
    va_end(ap);
    /* emit() fills the uri alone: not the spool's business */
    if (strstr(line, "sent without expected parameters")) return;
    i = atomic_fetch_add(&sh->nlines, 1);
    if (i < LINES) memcpy(sh->lines[i], line, sizeof(line));
}

/* The first line with `needle`, "" if none. */
static const char *line_with(const char *needle)
{
    int i, all = atomic_load(&sh->nlines);
    for (i = 0; i < all && i < LINES; i++)
        if (strstr(sh->lines[i], needle)) return sh->lines[i];
    return "";
}

static int lines_with(const char *needle)
{
    int i, n = 0, all = atomic_load(&sh->nlines);
    for (i = 0; i < all && i < LINES; i++) n += strstr(sh->lines[i], needle) != NULL;
    return n;
}

static void print_lines(void)
{
    int i, all = atomic_load(&sh->nlines);
    for (i = 0; i < all && i < LINES; i++) printf("    log: %s\n", sh->lines[i]);
}

static void record_counters(void)
{
    cmev_counters c;
    cmev_counters_get(&c);
    memcpy(sh->cnt, c.values, sizeof(sh->cnt));
}

/* ---- the receiver, polled by the case's process (no thread) ---- */

static struct rx *R; /* static: reachable for LeakSanitizer in every child */

static void rx_up(void)
{
    if (R->fd < 0) rx_bind(R, RCVBUF);
}

/* Nothing bound at the socket path. */
static void rx_down(void)
{
    if (R->fd < 0) return;
    unlink(path);
    rx_drain(R, R->fd);
    close(R->fd);
    R->fd = -1;
}

/* Receive for `ms` milliseconds (or just wait, when down). */
static void pump(double ms)
{
    double end = now_ms() + ms;
    for (;;) {
        double left = end - now_ms();
        struct pollfd p = { R->fd, POLLIN, 0 };
        if (R->fd >= 0) {
            rx_drain(R, R->fd);
            if (left <= 0) break;
            poll(&p, 1, left < 1 ? 1 : (int)left);
        } else {
            if (left <= 0) break;
            usleep(left < 1000 ? 1000 : (useconds_t)(left * 1000 > 2000 ? 2000 : left * 1000));
        }
    }
}

/* Receive until `pid` exits (SIGKILLed after `ms`), then until quiet;
 * returns its wait status. */
static int pump_until_exit(pid_t pid, int ms)
{
    double end = now_ms() + ms * slow;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (now_ms() > end) {
            printf("    child %d still running after %d ms: killed\n", (int)pid, ms);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        pump(2);
    }
    if (R->fd >= 0) {
        int quiet = 0;
        while (quiet < 4) {
            if (rx_drain(R, R->fd)) quiet = 0;
            else quiet++;
            usleep(2000);
        }
    }
    return st;
}

static int exited_ok(int st)
{
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 1;
    if (WIFSIGNALED(st)) printf("    child killed by signal %d\n", WTERMSIG(st));
    else printf("    child exited with %d\n", WEXITSTATUS(st));
    return 0;
}

static unsigned char seen(int tag, int seq)
{
    return R->seen[(size_t)tag * MAX_SEQ + (size_t)seq];
}

/* Highest seq delivered of `tag` (-1: none); counts distinct ones and
 * repeats, and whether 0..highest are all there. */
struct got {
    int max, distinct, dupes, gaps;
};

static struct got delivered(int tag)
{
    struct got g = { -1, 0, 0, 0 };
    int i;
    for (i = 0; i < MAX_SEQ; i++) {
        unsigned char s = seen(tag, i);
        if (!s) continue;
        g.max = i;
        g.distinct++;
        g.dupes += s - 1;
    }
    g.gaps = g.max + 1 - g.distinct;
    return g;
}

/* ---- the spool directory and ring files ---- */

struct dir_list {
    int rings, bad, tmp, other;
    char ring[512]; /* the last *.ring */
};

static struct dir_list list_dir(const char *d)
{
    struct dir_list l;
    struct dirent *de;
    DIR *dd = opendir(d);
    memset(&l, 0, sizeof(l));
    while (dd && (de = readdir(dd))) {
        size_t n = strlen(de->d_name);
        /* .scan: when the directory was last searched for dead rings */
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".scan"))
            continue;
        if (n > 5 && !strcmp(de->d_name + n - 5, ".ring")) {
            l.rings++;
            snprintf(l.ring, sizeof(l.ring), "%s/%s", d, de->d_name);
        } else if (n > 4 && !strcmp(de->d_name + n - 4, ".bad")) {
            l.bad++;
        } else if (n > 4 && !strcmp(de->d_name + n - 4, ".new")) {
            l.tmp++;
        } else {
            l.other++;
        }
    }
    if (dd) closedir(dd);
    return l;
}

/* Name what is left in `d` (when a check found something left). */
static void print_dir(const char *d)
{
    struct dirent *de;
    DIR *dd = opendir(d);
    while (dd && (de = readdir(dd)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, ".scan"))
            printf("    left in %s: %s\n", d, de->d_name);
    if (dd) closedir(dd);
}

/* What a ring file holds, read as the library lays it out. */
struct ring_info {
    int ok; /* a ring: magic, version and size match */
    uint32_t cap, pid;
    uint32_t head, used;
    int committed, writing, done, pad, broken;
    long first_committed; /* offset in the file of the oldest COMMITTED record's tag */
    int first_seq;        /* its event's seq, -1 if not found */
    long nth_committed;   /* the same for the middle one */
    int nth_seq;
    long last_committed;  /* and for the newest */
    int last_seq;
};

static int payload_seq(const unsigned char *p, size_t len)
{
    const unsigned char *q = memmem(p, len, "imap://h/t", 10);
    int tag, seq;
    char buf[40];
    size_t n;
    if (!q) return -1;
    n = (size_t)(p + len - q) < sizeof(buf) - 1 ? (size_t)(p + len - q) : sizeof(buf) - 1;
    memcpy(buf, q, n);
    buf[n] = '\0';
    return sscanf(buf, "imap://h/t%d/%d", &tag, &seq) == 2 ? seq : -1;
}

static struct ring_info ring_read(const char *file)
{
    struct ring_info ri;
    struct stat st;
    unsigned char *b = NULL;
    uint64_t word;
    uint32_t off, left;
    int fd = open(file, O_RDONLY), n = 0, pass;
    memset(&ri, 0, sizeof(ri));
    ri.first_committed = ri.nth_committed = ri.last_committed = -1;
    ri.first_seq = ri.nth_seq = ri.last_seq = -1;
    if (fd < 0 || fstat(fd, &st) || st.st_size < RING_HEADER) goto out;
    b = malloc((size_t)st.st_size);
    if (read(fd, b, (size_t)st.st_size) != st.st_size) goto out;
    memcpy(&ri.cap, b + 12, 4);
    memcpy(&ri.pid, b + 16, 4);
    memcpy(&word, b + 32, 8);
    ri.head = (uint32_t)(word >> 32);
    ri.used = (uint32_t)word;
    if (memcmp(b, "cmevring", 8) || b[8] != 1 || RING_HEADER + (off_t)ri.cap != st.st_size
        || ri.head > ri.cap || ri.used > ri.cap)
        goto out;
    ri.ok = 1;
    /* count first, then find the oldest, the middle and the newest
     * COMMITTED record */
    for (pass = 0; pass < 2; pass++) {
        off = (ri.head + ri.cap - ri.used) % (ri.cap ? ri.cap : 1);
        left = ri.used;
        n = 0;
        while (left > 0) {
            uint32_t tag, len;
            memcpy(&tag, b + RING_HEADER + off, 4);
            memcpy(&len, b + RING_HEADER + off + 4, 4);
            if (len < 8 || len % 8 || len > left || off + len > ri.cap
                || (tag != RING_WRITING && tag != RING_COMMITTED && tag != RING_DONE && tag != RING_PAD)) {
                if (pass == 0) ri.broken = 1;
                break;
            }
            if (pass == 0) {
                ri.committed += tag == RING_COMMITTED;
                ri.writing += tag == RING_WRITING;
                ri.done += tag == RING_DONE;
                ri.pad += tag == RING_PAD;
            } else if (tag == RING_COMMITTED) {
                int seq = payload_seq(b + RING_HEADER + off + 8, len - 8);
                if (n == 0) {
                    ri.first_committed = RING_HEADER + off;
                    ri.first_seq = seq;
                }
                if (n == ri.committed / 2) {
                    ri.nth_committed = RING_HEADER + off;
                    ri.nth_seq = seq;
                }
                ri.last_committed = RING_HEADER + off;
                ri.last_seq = seq;
                n++;
            }
            left -= len;
            off = (off + len) % ri.cap;
        }
    }
out:
    free(b);
    if (fd >= 0) close(fd);
    return ri;
}

/* Make the temporary files in `d` an hour old. */
static void age_temporary_files(const char *d)
{
    struct timespec old[2];
    struct dirent *de;
    DIR *dd = opendir(d);
    clock_gettime(CLOCK_REALTIME, &old[0]);
    old[0].tv_sec -= 3600;
    old[1] = old[0];
    while (dd && (de = readdir(dd))) {
        size_t n = strlen(de->d_name);
        if (n > 4 && !strcmp(de->d_name + n - 4, ".new"))
            CHECK_EQ_INT(utimensat(dirfd(dd), de->d_name, old, 0), 0);
    }
    if (dd) closedir(dd);
}

static void put_tag(const char *file, long at, uint32_t tag)
{
    int fd = open(file, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, &tag, 4, at) == 4);
    if (fd >= 0) close(fd);
}

/* ---- the processes of a round ---- */

/* event_spool_size of producers and adopters, when not the default. */
static const char *spool_size;

/* Configure as a Cyrus service with its spool in `spool`. */
static void setup_spool(const char *spool)
{
    setup(path);
    config("event_spool_dir", spool);
    if (spool_size) config("event_spool_size", spool_size);
}

/* Emit (tag, 0 .. n-1), publishing each number before and after
 * cmev_notify; then wait to be killed. */
static void producer(const char *spool, int tag, int n, int pace_us)
{
    int i;
    setup_spool(spool);
    for (i = 0; i < n; i++) {
        atomic_store(&sh->started, i + 1);
        emit(tag, i);
        atomic_store(&sh->unspooled, (int)counter(CMEV_COUNTER_UNSPOOLED));
        atomic_store(&sh->acked, i + 1);
        if (pace_us) usleep((useconds_t)pace_us);
    }
    for (;;) pause();
}

static pid_t fork_producer(const char *spool, int tag, int n, int pace_us)
{
    pid_t p;
    fflush(NULL);
    p = fork();
    if (p == 0) producer(spool, tag, n, pace_us);
    return p;
}

/* A producer that acknowledged all `n` (receiver down: they stay in its
 * ring), killed; returns its ring's path in `ring` ("" if none). */
static void dead_producer(const char *spool, int tag, int n, char *ring, size_t size)
{
    double end = now_ms() + 10000 * slow;
    pid_t p;
    struct dir_list l;
    sh_reset();
    p = fork_producer(spool, tag, n, 0);
    while (atomic_load(&sh->acked) < n && now_ms() < end) usleep(1000);
    CHECK_EQ_INT(atomic_load(&sh->acked), n);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    l = list_dir(spool);
    CHECK_EQ_INT(l.rings, 1);
    snprintf(ring, size, "%s", l.rings == 1 ? l.ring : "");
}

/* event_queue_size of the adopters, when not the default. */
static const char *adopter_queue;

/* The adopter: emits one marker (its sender starts and adopts), waits
 * until it holds the only ring or `wait_ms` pass, emits `own` events of
 * its own after the marker, flushes and reports. When `hold`, it waits
 * for sh->go first (the parent renames a ring after the adopter's pid). */
static void adopter(const char *spool, int mark_tag, int mark_seq, int own, int hold, int wait_ms)
{
    double end;
    int i;
    while (hold && !atomic_load(&sh->go)) usleep(1000);
    setup_spool(spool);
    if (adopter_queue) config("event_queue_size", adopter_queue);
    emit(mark_tag, mark_seq);
    end = now_ms() + wait_ms * slow;
    while (list_dir(spool).rings > 1 && now_ms() < end) usleep(2000);
    for (i = 1; i <= own; i++) emit(mark_tag, mark_seq + i);
    sh->flush_left = cmev_flush(T(10000));
    record_counters();
    atomic_store(&sh->finished, 1);
    exit(0); /* the exit hook removes the adopter's own ring */
}

static pid_t fork_adopter(const char *spool, int mark_tag, int mark_seq, int own, int hold)
{
    pid_t p;
    fflush(NULL);
    p = fork();
    if (p == 0) adopter(spool, mark_tag, mark_seq, own, hold, 10000);
    return p;
}

/* Fork an adopter and receive until it is done; checks that it ended well. */
static void adopt(const char *spool, int mark_tag, int mark_seq, int own)
{
    pid_t a;
    rx_up();
    atomic_store(&sh->finished, 0);
    a = fork_adopter(spool, mark_tag, mark_seq, own, 0);
    CHECK(exited_ok(pump_until_exit(a, 30000)));
    CHECK(atomic_load(&sh->finished));
    CHECK_EQ_INT(sh->flush_left, 0);
}

/* ---- 1. kill rounds ---- */

enum mode { UP, DOWN, FAST };
static const char *const mode_name[] = { "receiver up", "receiver down", "receiver up, fast producer" };

struct totals {
    long rounds, produced, acked, delivered, dupes, left, adopted, lost, unbegun, bad_rings, stale_tmp;
    int max_dupes;
};

static unsigned rnd_state;

static unsigned rnd(unsigned below)
{
    return (unsigned)rand_r(&rnd_state) % below;
}

static void kill_round(int round, enum mode m, struct totals *t)
{
    char spool[160];
    const int n = m == UP ? 3000 : MAX_SEQ;
    double end = now_ms() + 5000 * slow;
    struct ring_info ri;
    struct dir_list l;
    struct got g;
    int acked, started;
    pid_t c;

    snprintf(spool, sizeof(spool), "%s/r%d", dir, round);
    sh_reset();
    if (m == DOWN) rx_down();
    else rx_up();
    c = fork_producer(spool, round, n, m == UP ? 20 : 0);
    /* a third of the kills may land while it makes its ring (its first
     * event), the others once it has one */
    while ((round % 3 ? atomic_load(&sh->acked) : atomic_load(&sh->started)) < 1 && now_ms() < end)
        pump(0.2);
    pump(rnd(5000) / 1000.0); /* 0 to 5 ms into its stream */
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    acked = atomic_load(&sh->acked);
    started = atomic_load(&sh->started);

    l = list_dir(spool);
    memset(&ri, 0, sizeof(ri));
    if (l.rings == 1) ri = ring_read(l.ring);
    /* the child's ring, perhaps broken at its end (ri.broken: killed after
     * reserving its newest record's bytes, before writing their head) */
    CHECK(l.rings <= 1);
    CHECK(l.rings == 0 || (ri.ok && ri.pid == (uint32_t)c));
    if (acked > 0) CHECK_EQ_INT(l.rings, 1); /* acknowledged: it had a ring */
    if (l.tmp) {
        /* killed while making its ring: an adopter removes it once old */
        t->stale_tmp += l.tmp;
        age_temporary_files(spool);
    }

    adopt(spool, MARK_TAG(round), 0, 0);

    g = delivered(round);
    CHECK_EQ_INT(g.gaps, 0);
    CHECK(g.max >= acked - 1);
    CHECK(g.max <= started - 1);
    CHECK(g.dupes <= BATCH);
    CHECK_EQ_INT(seen(MARK_TAG(round), 0), 1);
    l = list_dir(spool);
    CHECK_EQ_INT(l.rings, 0);
    CHECK_EQ_INT(l.bad, 0);
    CHECK_EQ_INT(l.tmp, 0);
    if (ri.committed > 0) CHECK(sh->cnt[CMEV_COUNTER_ADOPTED] > 0);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], ri.committed);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_SPOOL_LOST], ri.writing + ri.broken);
    CHECK(ri.writing + ri.broken <= 1);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_UNSPOOLED], 0);
    CHECK_EQ_INT(atomic_load(&sh->unspooled), 0); /* each acknowledged event was spooled */
    if (g.gaps || g.max < acked - 1 || g.dupes > BATCH || l.rings || l.bad) {
        printf("    round %d (%s): started %d, acked %d, delivered 0..%d with %d gaps, %d dupes; "
               "ring: %d committed, %d writing; left %d rings, %d bad\n",
               round, mode_name[m], started, acked, g.max, g.gaps, g.dupes, ri.committed,
               ri.writing, l.rings, l.bad);
        print_lines();
    }
    t->rounds++;
    t->produced += started;
    t->acked += acked;
    t->delivered += g.distinct;
    t->dupes += g.dupes;
    t->left += ri.committed;
    t->adopted += (long)sh->cnt[CMEV_COUNTER_ADOPTED];
    t->lost += (long)sh->cnt[CMEV_COUNTER_SPOOL_LOST];
    t->unbegun += ri.broken;
    t->bad_rings += l.bad;
    if (g.dupes > t->max_dupes) t->max_dupes = g.dupes;
}

static void print_totals(const char *what, const struct totals *t)
{
    printf("    %s: %ld rounds, %ld events produced, %ld acknowledged, %ld delivered, "
           "%ld duplicates (max %d in a round); %ld left in dead rings, %ld adopted, "
           "%ld lost half-written (%ld of them never begun), %ld rings set aside, "
           "%ld abandoned temporary rings removed\n",
           what, t->rounds, t->produced, t->acked, t->delivered, t->dupes, t->max_dupes, t->left,
           t->adopted, t->lost, t->unbegun, t->bad_rings, t->stale_tmp);
}

static void kill_rounds(void)
{
    struct totals all, per[3];
    const char *seed = getenv("CMEV_SPOOL_SEED");
    int round;
    memset(&all, 0, sizeof(all));
    memset(per, 0, sizeof(per));
    rnd_state = seed ? (unsigned)atoi(seed) : (unsigned)time(NULL);
    printf("    seed %u (CMEV_SPOOL_SEED)\n", rnd_state);
    /* Room for all a round produces: the default 1 MB holds about 5,800
     * of these events, which a fast producer outruns (then unspooled and
     * counted, and lost with the process: not what is tested here). */
    spool_size = "4096";
    R = rx_new(TAGS, MAX_SEQ);
    for (round = 0; round < ROUNDS; round++) {
        enum mode m = round * 3 / ROUNDS; /* 34 up, 33 down, 33 fast */
        kill_round(round, m, &per[m]);
    }
    for (round = 0; round < 3; round++) {
        struct totals *p = &per[round];
        print_totals(mode_name[round], p);
        all.rounds += p->rounds;
        all.produced += p->produced;
        all.acked += p->acked;
        all.delivered += p->delivered;
        all.dupes += p->dupes;
        all.left += p->left;
        all.adopted += p->adopted;
        all.lost += p->lost;
        all.unbegun += p->unbegun;
        all.bad_rings += p->bad_rings;
        all.stale_tmp += p->stale_tmp;
        if (p->max_dupes > all.max_dupes) all.max_dupes = p->max_dupes;
    }
    print_totals("total", &all);
    CHECK_EQ_INT(atomic_load(&R->bad), 0);
    CHECK_EQ_INT(atomic_load(&R->wrong_pid), 0);
    rx_down();
    rx_free(R);
}

/* ---- 1b. the adopter killed too ---- */

#define CHAIN_ROUNDS 10

static void adopter_killed(void)
{
    const char *seed = getenv("CMEV_SPOOL_SEED");
    long events = 0, by_second = 0, dupes = 0, lost = 0;
    int round, max_dupes = 0;
    const int n = 3000;
    rnd_state = (seed ? (unsigned)atoi(seed) : (unsigned)time(NULL)) + 1;
    R = rx_new(TAGS, MAX_SEQ);
    spool_size = "4096";
    for (round = 0; round < CHAIN_ROUNDS; round++) {
        char spool[160], ring[512];
        int tag = TAG0 + round, mark = TAG0 + 20 + round;
        struct dir_list l;
        struct got g;
        pid_t a1, a2;
        snprintf(spool, sizeof(spool), "%s/chain%d", dir, round);
        rx_down();
        dead_producer(spool, tag, n, ring, sizeof(ring));
        rx_up();
        sh_reset();
        a1 = fork_adopter(spool, mark, 0, 0, 0);
        pump(rnd(20000) / 1000.0); /* 0 to 20 ms into its adoption */
        kill(a1, SIGKILL);
        waitpid(a1, NULL, 0);
        sh_reset();
        a2 = fork_adopter(spool, mark, 1, 0, 0);
        CHECK(exited_ok(pump_until_exit(a2, 30000)));
        g = delivered(tag);
        CHECK_EQ_INT(g.distinct, n);
        CHECK_EQ_INT(g.gaps, 0);
        /* a batch the first adopter sent and did not live to mark, and
         * the record it was copying */
        CHECK(g.dupes <= BATCH + 1);
        CHECK_EQ_INT(seen(mark, 1), 1);
        /* the copy the first adopter was writing when killed: its original
         * was not yet marked done in the dead ring, so nothing is lost */
        CHECK(sh->cnt[CMEV_COUNTER_SPOOL_LOST] <= 1);
        lost += (long)sh->cnt[CMEV_COUNTER_SPOOL_LOST];
        l = list_dir(spool);
        CHECK_EQ_INT(l.rings + l.bad, 0);
        events += n;
        by_second += (long)sh->cnt[CMEV_COUNTER_ADOPTED];
        dupes += g.dupes;
        if (g.dupes > max_dupes) max_dupes = g.dupes;
    }
    printf("    %d rounds: %ld events, all delivered; the second adopter took over %ld "
           "(%ld copies half-written by the first); %ld duplicates (max %d in a round)\n",
           CHAIN_ROUNDS, events, by_second, lost, dupes, max_dupes);
    CHECK_EQ_INT(atomic_load(&R->bad), 0);
    rx_down();
    rx_free(R);
}

/* ---- 2. a record half-written, or reserved and never begun, when its
 * process died ---- */

enum damage {
    OLDEST_WRITING, /* its writer was killed while writing it */
    MIDDLE_WRITING,
    MIDDLE_UNBEGUN, /* reserved, killed before its head: later ones finished */
    NEWEST_UNBEGUN,
};
static const char *const damage_name[] = {
    "the oldest record left WRITING",
    "a middle record left WRITING",
    "a middle record reserved, its head never written",
    "the newest record reserved, its head never written",
};

static void half_written_one(int tag, enum damage d)
{
    char spool[160], ring[512];
    struct ring_info ri;
    struct got g;
    int missing, i;
    long at;
    const int n = 50;
    snprintf(spool, sizeof(spool), "%s/half%d", dir, tag);
    rx_down();
    dead_producer(spool, tag, n, ring, sizeof(ring));
    ri = ring_read(ring);
    CHECK(ri.ok && !ri.broken);
    CHECK_EQ_INT(ri.committed, n);
    missing = d == OLDEST_WRITING ? ri.first_seq : d == NEWEST_UNBEGUN ? ri.last_seq : ri.nth_seq;
    at = d == OLDEST_WRITING ? ri.first_committed : d == NEWEST_UNBEGUN ? ri.last_committed : ri.nth_committed;
    CHECK(missing >= 0 && missing < n);
    if (d == OLDEST_WRITING || d == MIDDLE_WRITING) {
        put_tag(ring, at, RING_WRITING);
        ri = ring_read(ring);
        CHECK_EQ_INT(ri.writing, 1);
        CHECK_EQ_INT(ri.committed, n - 1);
    } else {
        put_tag(ring, at, 0);
        put_tag(ring, at + 4, 0);
        ri = ring_read(ring);
        CHECK(ri.broken);
    }

    sh_reset();
    adopt(spool, tag + 1, 0, 0);
    g = delivered(tag);
    for (i = 0; i < n; i++) CHECK_EQ_INT(seen(tag, i), i != missing);
    CHECK_EQ_INT(g.distinct, n - 1);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_SPOOL_LOST], 1);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], n - 1);
    CHECK_EQ_INT(lines_with("(1 unreadable, lost;"), 1);
    CHECK_EQ_INT(lines_with("is not a readable"), 0);
    CHECK_EQ_INT(list_dir(spool).rings + list_dir(spool).bad, 0);
    printf("    %s (seq %d): %d of %d delivered, spool lost %llu\n", damage_name[d], missing,
           g.distinct, n, (unsigned long long)sh->cnt[CMEV_COUNTER_SPOOL_LOST]);
    if (failures) print_lines();
}

static void half_written(void)
{
    int d;
    R = rx_new(TAGS, MAX_SEQ);
    for (d = OLDEST_WRITING; d <= NEWEST_UNBEGUN; d++) half_written_one(TAG0 + 2 * d, d);
    printf("    log: %s\n", line_with("(1 unreadable, lost;"));
    rx_down();
    rx_free(R);
}

/* ---- 3. hostile spools, pid reuse, permissions, normal operation ---- */

/* A process using the library: `threads` threads (0: the main one) each
 * emit (tag + t, 0 .. n-1), released together; with `hold`, it waits for
 * sh->go before it flushes (the receiver comes up meanwhile). It flushes,
 * reports its counters and exits through the exit hook. */
struct user {
    const char *spool, *size;
    int tag, n, threads, hold;
};

static const struct user *the_user;
static pthread_barrier_t user_start;

static void *user_thread(void *arg)
{
    long t = (long)arg;
    int i;
    pthread_barrier_wait(&user_start);
    for (i = 0; i < the_user->n; i++) emit(the_user->tag + (int)t, i);
    return NULL;
}

static void user(const struct user *u)
{
    pthread_t th[8];
    long t;
    int i;
    the_user = u;
    setup_spool(u->spool);
    if (u->size) config("event_spool_size", u->size);
    if (u->threads) {
        config("event_queue_overflow", "block");
        config("event_queue_block_timeout", "60000");
    }
    if (u->threads) {
        pthread_barrier_init(&user_start, NULL, (unsigned)u->threads);
        for (t = 0; t < u->threads; t++) pthread_create(&th[t], NULL, user_thread, (void *)t);
        for (t = 0; t < u->threads; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&user_start);
    } else {
        for (i = 0; i < u->n; i++) emit(u->tag, i);
    }
    atomic_store(&sh->acked, u->n);
    while (u->hold && !atomic_load(&sh->go)) usleep(1000);
    sh->flush_left = cmev_flush(T(20000));
    record_counters();
    atomic_store(&sh->finished, 1);
    exit(0);
}

/* Run `u` in a child while receiving; true if it ended well. */
static int run_user(const struct user *u)
{
    pid_t p;
    int ok;
    sh_reset();
    fflush(NULL);
    p = fork();
    if (p == 0) user(u);
    if (u->hold) {
        double end = now_ms() + 20000 * slow;
        while (atomic_load(&sh->acked) < u->n && now_ms() < end) usleep(1000);
        rx_up();
        atomic_store(&sh->go, 1);
    }
    ok = exited_ok(pump_until_exit(p, 60000));
    CHECK(ok);
    CHECK(atomic_load(&sh->finished));
    CHECK_EQ_INT(sh->flush_left, 0);
    return ok;
}

/* Every event of (tag, 0 .. n-1) arrived exactly once. */
static void check_all_once(int tag, int n)
{
    struct got g = delivered(tag);
    CHECK_EQ_INT(g.distinct, n);
    CHECK_EQ_INT(g.max, n - 1);
    CHECK_EQ_INT(g.dupes, 0);
}

static void open_receiver(void)
{
    R = rx_new(TAGS, MAX_SEQ);
    rx_up();
}

static void close_receiver(void)
{
    CHECK_EQ_INT(atomic_load(&R->bad), 0);
    rx_down();
    rx_free(R);
}

/* A spool that cannot be had: `why` is logged once, the events go out
 * unspooled. */
static void refused(const char *spool, int tag, const char *why)
{
    struct user u = { spool, NULL, tag, 100, 0, 0 };
    run_user(&u);
    check_all_once(tag, 100);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_UNSPOOLED], 100);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_SENT], 100);
    CHECK_EQ_INT(lines_with("mboxevent: event spool"), 1);
    CHECK_EQ_INT(lines_with(why), 1);
    if (lines_with(why) != 1) print_lines();
    else printf("    log: %s\n", line_with(why));
}

static void hostile_dirs(void)
{
    char spool[160];
    int fd;
    open_receiver();

    /* (a) its parent is missing: not made, one line */
    snprintf(spool, sizeof(spool), "%s/missing/spool", dir);
    refused(spool, TAG0, "cannot be made: No such file or directory");
    CHECK(access(spool, F_OK) != 0);

    /* (b) open to others: refused, the line names the mode */
    snprintf(spool, sizeof(spool), "%s/open", dir);
    CHECK_EQ_INT(mkdir(spool, 0700), 0);
    CHECK_EQ_INT(chmod(spool, 0777), 0);
    refused(spool, TAG0 + 1, "is writable by group or others (mode 777)");
    CHECK_EQ_INT(list_dir(spool).rings + list_dir(spool).tmp, 0);
    CHECK_EQ_INT(chmod(spool, 0730), 0);
    refused(spool, TAG0 + 2, "(mode 730)");

    /* another user's directory, and a file where the directory should be */
    snprintf(spool, sizeof(spool), "%s/theirs", dir);
    CHECK_EQ_INT(mkdir(spool, 0700), 0);
    CHECK_EQ_INT(chown(spool, 65534, 65534), 0);
    refused(spool, TAG0 + 3, "belongs to uid 65534, not to this process's 0");
    snprintf(spool, sizeof(spool), "%s/file", dir);
    fd = open(spool, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    close(fd);
    refused(spool, TAG0 + 4, "is not a directory");
    close_receiver();
}

static void full_spool(void)
{
    char mnt[160], spool[200];
    struct dir_list l;
    open_receiver();

    /* (c) a file system with less room than the ring */
    snprintf(mnt, sizeof(mnt), "%s/tmpfs", dir);
    CHECK_EQ_INT(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700") != 0) {
        printf("    SKIP a spool on a full file system: cannot mount a tmpfs (%s)\n", strerror(errno));
    } else {
        snprintf(spool, sizeof(spool), "%s/spool", mnt);
        refused(spool, TAG0, "has no room for a ring of 1048640 bytes: No space left on device");
        l = list_dir(spool);
        CHECK_EQ_INT(l.rings + l.tmp + l.bad + l.other, 0); /* the attempt left nothing */
        umount2(mnt, MNT_DETACH);
    }

    /* a ring that fills up while the receiver is away: what does not fit
     * is kept in memory, counted, logged once; all is sent when it comes */
    {
        struct user u = { NULL, "4", TAG0 + 1, 300, 0, 1 };
        snprintf(spool, sizeof(spool), "%s/small", dir);
        u.spool = spool;
        rx_down();
        run_user(&u);
        check_all_once(TAG0 + 1, 300);
        CHECK(sh->cnt[CMEV_COUNTER_UNSPOOLED] > 0 && sh->cnt[CMEV_COUNTER_UNSPOOLED] < 300);
        CHECK_EQ_INT(lines_with("has no room for an event of"), 1);
        CHECK_EQ_INT(lines_with("of 4096 bytes in use): events that do not fit are kept in memory only"), 1);
        CHECK_EQ_INT(atomic_load(&sh->nlines), 1);
        printf("    a ring of 4 KB, receiver away: %llu of 300 events unspooled; log: %s\n",
               (unsigned long long)sh->cnt[CMEV_COUNTER_UNSPOOLED], line_with("has no room for an event of"));
        CHECK_EQ_INT(list_dir(spool).rings, 0);
    }
    close_receiver();
}

/* (d) rings that are not rings: set aside as *.bad, counted, logged; the
 * adopter goes on with its own events. */
static void damaged_rings(void)
{
    char spool[160], ring[4][512];
    struct stat st;
    struct dir_list l;
    unsigned char junk[4096];
    int fd, i;
    open_receiver();
    snprintf(spool, sizeof(spool), "%s/damaged", dir);
    CHECK_EQ_INT(mkdir(spool, 0700), 0);
    rx_down();
    for (i = 0; i < 3; i++) {
        /* each in a directory of its own, or the next would adopt it */
        char own[200], dead[512];
        snprintf(own, sizeof(own), "%s%d", spool, i);
        dead_producer(own, TAG0 + i, 20, dead, sizeof(dead));
        CHECK(ring_read(dead).ok);
        snprintf(ring[i], sizeof(ring[i]), "%s/%s", spool, strrchr(dead, '/') + 1);
        CHECK_EQ_INT(rename(dead, ring[i]), 0);
    }
    /* cut in half */
    CHECK_EQ_INT(stat(ring[0], &st), 0);
    CHECK_EQ_INT(truncate(ring[0], st.st_size / 2), 0);
    /* garbage from the first byte */
    for (i = 0; i < (int)sizeof(junk); i++) junk[i] = (unsigned char)rnd(256);
    fd = open(ring[1], O_WRONLY);
    for (i = 0; fd >= 0 && i < st.st_size / (off_t)sizeof(junk); i++)
        CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
    close(fd);
    /* its header intact, its records garbage */
    fd = open(ring[2], O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, junk, sizeof(junk), RING_HEADER) == (ssize_t)sizeof(junk));
    close(fd);
    /* empty */
    snprintf(ring[3], sizeof(ring[3]), "%s/99999-1.ring", spool);
    fd = open(ring[3], O_CREAT | O_WRONLY, 0600);
    close(fd);
    CHECK_EQ_INT(list_dir(spool).rings, 4);

    sh_reset();
    adopt(spool, TAG0 + 3, 0, 20);
    check_all_once(TAG0 + 3, 21);
    for (i = 0; i < 3; i++) CHECK_EQ_INT(delivered(TAG0 + i).distinct, 0);
    l = list_dir(spool);
    CHECK_EQ_INT(l.rings, 0);
    CHECK_EQ_INT(l.bad, 3);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_SPOOL_LOST], 4);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], 0);
    CHECK_EQ_INT(lines_with("is not a readable event spool ring"), 3);
    CHECK_EQ_INT(lines_with("its size does not match its header"), 1);
    CHECK_EQ_INT(lines_with("not a ring of this version"), 1);
    CHECK_EQ_INT(lines_with("empty file"), 1);
    /* records that are all garbage read as one gap: counted, the ring gone */
    CHECK_EQ_INT(lines_with("took over 0 events"), 1);
    CHECK_EQ_INT(lines_with("(1 unreadable, lost;"), 1);
    printf("    4 damaged rings: %d set aside, spool lost %llu, the adopter's own 21 delivered\n",
           l.bad, (unsigned long long)sh->cnt[CMEV_COUNTER_SPOOL_LOST]);
    printf("    log: %s\n", line_with("not a ring of this version"));
    if (failures) print_lines();
    close_receiver();
}

/* (e) a dead process's ring named with the adopter's own pid is another's;
 * a living process's ring is left alone. */
static void pid_reuse(void)
{
    char spool[160], ring[512], renamed[512];
    pid_t a, live;
    double end;
    open_receiver();
    snprintf(spool, sizeof(spool), "%s/reuse", dir);
    rx_down();
    dead_producer(spool, TAG0, 20, ring, sizeof(ring));
    rx_up();
    sh_reset();
    a = fork_adopter(spool, TAG0 + 1, 0, 0, 1);
    snprintf(renamed, sizeof(renamed), "%s/%d-1.ring", spool, (int)a);
    CHECK_EQ_INT(rename(ring, renamed), 0);
    atomic_store(&sh->go, 1);
    CHECK(exited_ok(pump_until_exit(a, 30000)));
    check_all_once(TAG0, 20);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], 20);
    CHECK_EQ_INT(list_dir(spool).rings, 0);
    printf("    a dead ring named %d-1.ring: adopted %llu by process %d\n", (int)a,
           (unsigned long long)sh->cnt[CMEV_COUNTER_ADOPTED], (int)a);

    /* a producer that lives, receiver away: its ring stays its own */
    snprintf(spool, sizeof(spool), "%s/live", dir);
    rx_down();
    sh_reset();
    live = fork_producer(spool, TAG0 + 2, 20, 0);
    end = now_ms() + 10000 * slow;
    while (atomic_load(&sh->acked) < 20 && now_ms() < end) usleep(1000);
    rx_up();
    {
        /* the adopter waits only briefly: the other ring never goes */
        pid_t p;
        fflush(NULL);
        p = fork();
        if (p == 0) adopter(spool, TAG0 + 3, 0, 0, 0, 300);
        CHECK(exited_ok(pump_until_exit(p, 30000)));
    }
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], 0);
    CHECK_EQ_INT(list_dir(spool).rings, 1);
    /* the living producer sends its own now that the receiver is back */
    end = now_ms() + 5000 * slow;
    while (delivered(TAG0 + 2).distinct < 20 && now_ms() < end) pump(5);
    check_all_once(TAG0 + 2, 20);
    kill(live, SIGKILL);
    waitpid(live, NULL, 0);
    close_receiver();
}

/* (f) the ring is the user's alone, and so is a directory the library makes
 * (even with umask 0). */
static void permissions(void)
{
    char spool[160], ring[512];
    struct stat st;
    pid_t p;
    double end;
    R = rx_new(TAGS, MAX_SEQ);
    snprintf(spool, sizeof(spool), "%s/perm", dir);
    sh_reset();
    fflush(NULL);
    p = fork();
    if (p == 0) {
        umask(0);
        producer(spool, TAG0, 5, 0);
    }
    end = now_ms() + 10000 * slow;
    while (atomic_load(&sh->acked) < 5 && now_ms() < end) usleep(1000);
    CHECK_EQ_INT(stat(spool, &st), 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK_EQ_INT(st.st_mode & 07777, 0700);
    printf("    spool directory made with mode %o\n", st.st_mode & 07777);
    snprintf(ring, sizeof(ring), "%s", list_dir(spool).ring);
    CHECK_EQ_INT(stat(ring, &st), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ_INT(st.st_mode & 07777, 0600);
    CHECK_EQ_INT(st.st_uid, geteuid());
    CHECK_EQ_INT(st.st_size, RING_HEADER + 1024 * 1024);
    printf("    ring %s: mode %o, %lld bytes\n", strrchr(ring, '/') + 1, st.st_mode & 07777,
           (long long)st.st_size);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    rx_free(R);
}

/* (g) nobody dies: no duplicates, and the ring goes with its process */
static void normal_operation(void)
{
    char spool[160];
    struct dir_list l;
    int t;
    open_receiver();
    {
        struct user u = { NULL, "8192", TAG0, MAX_SEQ, 0, 0 };
        snprintf(spool, sizeof(spool), "%s/normal1", dir);
        u.spool = spool;
        run_user(&u);
        check_all_once(TAG0, MAX_SEQ);
    }
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_SENT], MAX_SEQ);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_UNSPOOLED], 0);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], 0);
    CHECK_EQ_INT(atomic_load(&sh->nlines), 0);
    l = list_dir(spool);
    CHECK_EQ_INT(l.rings + l.tmp + l.bad + l.other, 0);
    if (l.rings + l.tmp + l.bad + l.other) print_dir(spool);
    printf("    1 thread: %d sent, %d duplicates; spool left with %d files\n",
           delivered(TAG0).distinct, delivered(TAG0).dupes, l.rings + l.tmp + l.bad + l.other);
    {
        /* room in the queue and the ring for all, so that none is dropped
         * or unspooled while the receiver (this process, polling) lags */
        struct user u = { NULL, "8192", TAG0 + 1, MAX_SEQ / 4, 4, 0 };
        snprintf(spool, sizeof(spool), "%s/normal4", dir);
        u.spool = spool;
        run_user(&u);
        for (t = 0; t < 4; t++) check_all_once(TAG0 + 1 + t, MAX_SEQ / 4);
    }
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_SENT], MAX_SEQ);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_UNSPOOLED], 0);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], 0);
    CHECK_EQ_INT(atomic_load(&sh->nlines), 0);
    l = list_dir(spool);
    CHECK_EQ_INT(l.rings + l.tmp + l.bad + l.other, 0);
    if (l.rings + l.tmp + l.bad + l.other) print_dir(spool);
    printf("    4 threads: %ld sent, %ld duplicates; spool left with %d files\n",
           (long)sh->cnt[CMEV_COUNTER_SENT], atomic_load(&R->dupes), l.rings + l.tmp + l.bad + l.other);
    if (failures) print_lines();
    close_receiver();
}

/* (h) a dead ring bigger than half the adopter's queue is taken in steps */
static void adoption_in_steps(void)
{
    char spool[160], ring[512];
    const int n = 3000;
    open_receiver();
    snprintf(spool, sizeof(spool), "%s/steps", dir);
    rx_down();
    dead_producer(spool, TAG0, n, ring, sizeof(ring));
    sh_reset();
    adopter_queue = "64";
    adopt(spool, TAG0 + 1, 0, 0);
    check_all_once(TAG0, n);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_ADOPTED], n);
    CHECK_EQ_INT(sh->cnt[CMEV_COUNTER_DROPPED_OVERFLOW], 0);
    CHECK_EQ_INT(list_dir(spool).rings, 0);
    printf("    %d events into a queue of 64: %llu adopted, %d delivered\n", n,
           (unsigned long long)sh->cnt[CMEV_COUNTER_ADOPTED], delivered(TAG0).distinct);
    close_receiver();
}

/* (i) short-lived processes: each flushes, then exits while its sender
 * may still be freeing the ring; none leaves its ring behind. */
static void short_lives(void)
{
    char spool[160];
    const int procs = 50, n = 20;
    int i, left = 0, kept = 0;
    open_receiver();
    snprintf(spool, sizeof(spool), "%s/short", dir);
    for (i = 0; i < procs; i++) {
        struct user u = { spool, NULL, TAG0 + i % 8, n, 0, 0 };
        struct dir_list l;
        run_user(&u);
        l = list_dir(spool);
        if (l.rings + l.bad + l.tmp) print_dir(spool);
        left += l.rings + l.bad + l.tmp;
        kept += lines_with("for another process to send");
    }
    CHECK_EQ_INT(left, 0);
    CHECK_EQ_INT(kept, 0);
    for (i = 0; i < 8; i++) CHECK_EQ_INT(delivered(TAG0 + i).distinct, n);
    printf("    %d processes of %d events: %d files left behind\n", procs, n, left);
    close_receiver();
}

/* (j) fork: a child closes its copy of the parent's ring, so that the
 * parent's lock dies with the parent, while the child lives on. */
static void fork_leaves_the_lock_with_the_parent(void)
{
#ifdef __SANITIZE_ADDRESS__
    /* The producer forks while its sender thread runs: GCC 12's libasan
     * is not fork-safe with threads (see test_delivery's fork_once). */
    printf("    skipped under ASan (libasan's allocator is not fork-safe with threads)\n");
    return;
#endif
    char spool[160];
    double end;
    pid_t p, a;
    int i;
    open_receiver();
    snprintf(spool, sizeof(spool), "%s/fork", dir);
    rx_down();
    sh_reset();
    fflush(NULL);
    p = fork();
    if (p == 0) {
        setup_spool(spool);
        for (i = 0; i < 20; i++) emit(TAG0, i);
        if (fork() == 0) {
            for (i = 0; i < 20; i++) emit(TAG0 + 1, i);
            atomic_store(&sh->pid2, getpid());
            atomic_store(&sh->acked2, 20);
            for (;;) pause();
        }
        atomic_store(&sh->acked, 20);
        for (;;) pause();
    }
    end = now_ms() + 10000 * slow;
    while ((atomic_load(&sh->acked) < 20 || atomic_load(&sh->acked2) < 20) && now_ms() < end)
        usleep(1000);
    CHECK_EQ_INT(list_dir(spool).rings, 2);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    rx_up();
    fflush(NULL);
    a = fork();
    if (a == 0) adopter(spool, TAG0 + 2, 0, 0, 0, 500);
    CHECK(exited_ok(pump_until_exit(a, 30000)));
    /* the adopter took the parent's ring, or the child did (its sender
     * looked when it started, which may have been after the kill) */
    CHECK(sh->cnt[CMEV_COUNTER_ADOPTED] == 20 || sh->cnt[CMEV_COUNTER_ADOPTED] == 0);
    check_all_once(TAG0, 20);
    CHECK_EQ_INT(list_dir(spool).rings, 1);
    CHECK(ring_read(list_dir(spool).ring).pid == (uint32_t)atomic_load(&sh->pid2)); /* the child's */
    end = now_ms() + 5000 * slow;
    while (delivered(TAG0 + 1).distinct < 20 && now_ms() < end) pump(5);
    check_all_once(TAG0 + 1, 20);
    printf("    the parent killed, its child alive: the parent's 20 adopted by %s, the child's "
           "ring left to it\n",
           sh->cnt[CMEV_COUNTER_ADOPTED] ? "the adopter" : delivered(TAG0).distinct ? "the child" : "nobody");
    if (atomic_load(&sh->pid2) > 0) kill(atomic_load(&sh->pid2), SIGKILL);
    close_receiver();
}

static const struct test_case cases[] = {
    { "1. kill rounds: acknowledged events survive SIGKILL", kill_rounds, 300, NULL },
    { "1b. the adopter killed too", adopter_killed, 120, NULL },
    { "2. a record half-written, or never begun, when its process died", half_written, 60, NULL },
    { "3a-b. spool directories refused", hostile_dirs, 60, NULL },
    { "3c. a full file system, a full ring", full_spool, 60, NULL },
    { "3d. truncated, garbage and empty rings", damaged_rings, 60, NULL },
    { "3e. pid reuse; a living owner's ring", pid_reuse, 60, NULL },
    { "3f. permissions", permissions, 60, NULL },
    { "3g. normal operation: no duplicates, the ring removed at exit", normal_operation, 120, NULL },
    { "3h. a dead ring bigger than half the queue, adopted in steps", adoption_in_steps, 60, NULL },
    { "3i. short-lived processes leave no ring", short_lives, 120, NULL },
    { "3j. fork: the parent's ring is adopted while its child lives", fork_leaves_the_lock_with_the_parent, 60, NULL },
};

int main(void)
{
    double t0 = suite_start("cmev-spool");
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
    sh = NULL; /* remove_test_dir's system() runs a shell: no logging into freed state */
    return suite_end("test_spool", t0);
}
