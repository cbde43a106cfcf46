/* What a second thread costs the calls of imapd's or lmtpd's own thread.
 *
 * The kernel skips reference counting and the file position lock for a
 * file table with one user; a thread sharing the table takes that away from
 * every fstat, read, write and fcntl of the process. The library's sender
 * keeps a table of its own. What no table can avoid is glibc's
 * multi-threaded mode, on for good once a second thread exists: every
 * cancellable call (open, close, read, write, fcntl F_SETLKW...) is wrapped
 * in two atomic updates of the thread's cancellation state, and malloc
 * takes the arena lock whenever its per-thread cache misses (blocks
 * beyond 1 KB always do). Three processes, measured in turn (A/B/C, nine
 * rounds), each on the same single core:
 *
 *   alone:   no other thread
 *   shared:  an idle pthread sharing the table, as any thread does
 *   sender:  the library's sender started (one event sent), then idle
 *
 * ns per call, median of the rounds (min-max), and the ratio to alone.
 *
 * usage: fdtable RESULTS_DIR
 */
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cyrus_mboxevent.h"

enum cond { ALONE, SHARED, SENDER, CONDS };
static const char *const cond_name[CONDS] = { "no other thread", "an idle thread sharing the file table",
                                              "the library's sender started" };
enum call { FSTAT, PREAD, READ_SEEK, LOCK, OPEN_CLOSE, MALLOC, CALLS };
static const char *const call_name[CALLS] = { "fstat", "pread 64 B", "read 64 B + lseek", "fcntl lock + unlock",
                                              "open + close", "malloc + free 4 KB" };

#define ROUNDS 9
#define REPS 200000

static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;) pause();
    return NULL;
}

/* The receiver is a bound socket read by nobody, not common.h's drain: its
 * thread would be a second one sharing the table, the very thing measured. */
static void start_sender(void)
{
    char p[100];
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sun;
    cmev_event *e;
    snprintf(p, sizeof(p), "/tmp/cmev-fdtable-%d.sock", (int)getpid());
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, p, strlen(p) + 1);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun))) perror("bind");
    cmev_config_set("event_notifier", "log", NULL, 0);
    cmev_config_set("notifysocket", p, NULL, 0);
    e = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    cmev_event_set_mailbox_uri(e, "imap://h/fdtable");
    cmev_notify(&e, 1);
    cmev_event_free(e);
    cmev_flush(5000);
    usleep(20000); /* past the sender's nap: asleep, as between commands */
    close(fd);
    unlink(p);
}

/* ns per call of each kind, in this process as it is */
static void measure(double *ns)
{
    char path[100], buf[4096] = { 0 };
    struct stat st;
    struct flock fl;
    uint64_t t0;
    int fd, i;
    snprintf(path, sizeof(path), "/tmp/cmev-fdtable-%d.dat", (int)getpid());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) abort();
    lseek(fd, 0, SEEK_SET);
    t0 = now_ns();
    for (i = 0; i < REPS; i++) fstat(fd, &st);
    ns[FSTAT] = (double)(now_ns() - t0) / REPS;
    t0 = now_ns();
    for (i = 0; i < REPS; i++)
        if (pread(fd, buf, 64, 0) != 64) abort();
    ns[PREAD] = (double)(now_ns() - t0) / REPS;
    t0 = now_ns();
    for (i = 0; i < REPS; i++) {
        if (read(fd, buf, 64) != 64) abort();
        lseek(fd, 0, SEEK_SET);
    }
    ns[READ_SEEK] = (double)(now_ns() - t0) / REPS;
    memset(&fl, 0, sizeof(fl));
    t0 = now_ns();
    for (i = 0; i < REPS; i++) {
        fl.l_type = F_WRLCK;
        fcntl(fd, F_SETLKW, &fl);
        fl.l_type = F_UNLCK;
        fcntl(fd, F_SETLK, &fl);
    }
    ns[LOCK] = (double)(now_ns() - t0) / REPS;
    close(fd);
    t0 = now_ns();
    for (i = 0; i < REPS; i++) {
        if ((fd = open(path, O_RDONLY)) < 0) abort();
        close(fd);
    }
    ns[OPEN_CLOSE] = (double)(now_ns() - t0) / REPS;
    t0 = now_ns();
    for (i = 0; i < REPS; i++) {
        /* volatile: the compiler may not drop the pair */
        char *volatile p = malloc(4096);
        p[0] = (char)i;
        free(p);
    }
    ns[MALLOC] = (double)(now_ns() - t0) / REPS;
    unlink(path);
}

/* One process under one condition; its figures come back through a pipe */
static void run(enum cond c, double *ns)
{
    int fds[2];
    pid_t p;
    if (pipe(fds)) abort();
    p = fork();
    if (p == 0) {
        pthread_t th;
        if (c == SHARED) pthread_create(&th, NULL, idle_thread, NULL);
        if (c == SENDER) start_sender();
        measure(ns);
        if (write(fds[1], ns, CALLS * sizeof(double)) != (ssize_t)(CALLS * sizeof(double))) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], ns, CALLS * sizeof(double)) != (ssize_t)(CALLS * sizeof(double))) abort();
    waitpid(p, NULL, 0);
    close(fds[0]);
}

int main(int argc, char **argv)
{
    double ns[CONDS][ROUNDS][CALLS];
    struct spread s[CONDS][CALLS];
    char out[512];
    cpu_set_t one;
    FILE *md;
    int c, r, k;
    if (argc < 2) {
        fprintf(stderr, "usage: %s RESULTS_DIR\n", argv[0]);
        return 2;
    }
    CPU_ZERO(&one);
    CPU_SET(sysconf(_SC_NPROCESSORS_ONLN) - 1, &one);
    sched_setaffinity(0, sizeof(one), &one); /* as Cyrus in realcyrus.py */
    for (r = 0; r < ROUNDS; r++)
        for (c = 0; c < CONDS; c++) run((enum cond)((c + r) % CONDS), ns[(c + r) % CONDS][r]);
    for (c = 0; c < CONDS; c++)
        for (k = 0; k < CALLS; k++) {
            double v[ROUNDS];
            for (r = 0; r < ROUNDS; r++) v[r] = ns[c][r][k];
            s[c][k] = spread_of(v, ROUNDS);
        }
    snprintf(out, sizeof(out), "%s/fdtable.md", argv[1]);
    if (!(md = fopen(out, "w"))) {
        perror(out);
        return 2;
    }
    fprintf(md, "### What a second thread costs the calls of Cyrus's own thread\n\n"
                "ns per call on one core, median of %d rounds (min–max); in brackets the ratio to a process "
                "with no other thread. A thread sharing the file table makes the kernel count references "
                "and lock the file position on every call; the sender has a table of its own. Any second "
                "thread puts glibc in multi-threaded mode: open, close, read and fcntl F_SETLKW update the "
                "thread's cancellation state twice each, malloc beyond its per-thread cache takes a lock.\n\n",
            ROUNDS);
    fprintf(md, "| process |");
    for (k = 0; k < CALLS; k++) fprintf(md, " %s |", call_name[k]);
    fprintf(md, "\n|---|");
    for (k = 0; k < CALLS; k++) fprintf(md, "---|");
    fprintf(md, "\n");
    for (c = 0; c < CONDS; c++) {
        fprintf(md, "| %s |", cond_name[c]);
        for (k = 0; k < CALLS; k++)
            fprintf(md, " %.0f (%.0f–%.0f) [%.2f×] |", s[c][k].median, s[c][k].min, s[c][k].max,
                    s[c][k].median / s[ALONE][k].median);
        fprintf(md, "\n");
    }
    fclose(md);
    printf("fdtable: results in %s\n", out);
    return 0;
}
