/* Hot path: what the IMAP/LMTP process pays per event.
 *
 *   ours:  the adapter's calls into libcyrus_mboxevent, cmev_notify, free
 *   stock: what stock mboxevent.c does: jansson builds the same object,
 *          json_dumps, then Debian's libcyrus_imap notify() (a socket per
 *          event, sendto)
 *
 * Same events (the `all` golden's MessageNew key set, and a FlagsSet), same
 * receiver, interleaved A/B/A/B over several rounds; medians with min-max.
 * Then the cost growth of ours with messageContent size and UID count.
 *
 * usage: hotpath RESULTS_DIR
 *        hotpath RESULTS_DIR profile CASE N   (CASE: see profile())
 *        (just N calls of one case, for perf record; HOTPATH_RUN=20000 makes
 *        them the burst case, default runs of 64)
 */
#include "common.h"

#include <jansson.h>
#include <semaphore.h>
#include <sys/time.h>

#include "cyrus_mboxevent.h"

/* Debian's libcyrus, called as stock mboxevent.c calls it */
extern void config_read(const char *alt_config, const int config_need_data);
extern const char *config_ident;
extern void notify(const char *method, const char *class, const char *priority,
                   const char *user, const char *mailbox, int nopt,
                   const char **options, const char *message, const char *fname);

/* what a Cyrus program supplies to its libraries */
void fatal(const char *s, int code);
void fatal(const char *s, int code)
{
    fprintf(stderr, "fatal: %s\n", s);
    exit(code);
}
void *cyrus_mutex_alloc(void);
void *cyrus_mutex_alloc(void) { return (void *)1; }
int cyrus_mutex_lock(void *m);
int cyrus_mutex_lock(void *m) { (void)m; return 0; }
int cyrus_mutex_unlock(void *m);
int cyrus_mutex_unlock(void *m) { (void)m; return 0; }
void cyrus_mutex_free(void *m);
void cyrus_mutex_free(void *m) { (void)m; }

static const char *SESSION = "cyrus-rig.test-1795890802-26456-2-7683099421600314520";
static const char *ENVELOPE =
    "(\"Tue, 02 Jan 2024 03:04:06 +0000\" \"lmtp with msgid\" ((\"Sender 6\" NIL \"sender6\" \"example.org\")) "
    "((\"Sender 6\" NIL \"sender6\" \"example.org\")) ((\"Sender 6\" NIL \"sender6\" \"example.org\")) "
    "((\"Alice\" NIL \"alice\" \"example.org\")) NIL NIL NIL \"<rig-6@example.org>\")";
static const char *BODYSTRUCTURE =
    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 20 1 NIL NIL NIL NIL)";

/* jmapEmail as stock's jmap_email() packs it. Cyrus packs a new object
 * for every event on its own thread just before handing it on, so both paths
 * get such an object, packed just before each timed call (the packing is the
 * same work in either): ours hands it to the library, whose
 * sender releases it; stock's frees it with the event. One object shared by
 * every event instead timed a cache line bouncing between the caller's
 * json_incref and the sender's json_decref, which no real event pays. */
static json_t *jmap_email(void)
{
    return json_pack("{s:s s:s s:s s:s s:[{s:s s:s}] s:[{s:s s:s}] s:[{s:s s:s}] s:[{s:s s:s}] s:n s:n s:n s:[s]}",
                     "id", "M745f127e9a8ab33ed6beeb9f", "threadId", "NIL",
                     "sentAt", "2024-01-02T03:04:06Z", "subject", "lmtp with msgid",
                     "from", "name", "Sender 6", "email", "sender6@example.org",
                     "sender", "name", "Sender 6", "email", "sender6@example.org",
                     "replyTo", "name", "Sender 6", "email", "sender6@example.org",
                     "to", "name", "Alice", "email", "alice@example.org",
                     "cc", "bcc", "inReplyTo", "messageId", "rig-6@example.org");
}

static size_t content_size;
static const char *content;
/* UIDs in a FlagsSet: the golden's 4:6 unless growth says otherwise */
static int nuids = 3;
/* What becomes of a jmapEmail object packed before each timed event */
enum jmap {
    JMAP_NONE,
    JMAP_IN_EVENT,        /* the event takes it (ours: the sender releases it) */
    JMAP_FREED_HERE,      /* control: not in the event; this thread releases a
                           * run's objects after the run */
    JMAP_FREED_ELSEWHERE, /* control: the same, released by another thread */
};
#define JMAP_KEPT(m) ((m) == JMAP_FREED_HERE || (m) == JMAP_FREED_ELSEWHERE)
static enum jmap with_jmap = JMAP_IN_EVENT;
static json_t *jmap_packed;

/* the object packed for the next timed call; packed here for calls outside
 * timed runs */
static json_t *jmap_take(void)
{
    json_t *j = jmap_packed ? jmap_packed : jmap_email();
    jmap_packed = NULL;
    return j;
}

/* ---- ours: the adapter's calls ---- */

static int dump_json(const void *obj, cmev_json_write_fn write, void *ctx)
{
    return json_dump_callback(obj, write, ctx, JSON_PRESERVE_ORDER | JSON_COMPACT);
}

static void release_json(void *obj)
{
    json_decref(obj);
}

static void ours_new(void)
{
    cmev_event *e = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_set_string(e, CMEV_PARAM_CMU_SESSION_ID, SESSION);
    cmev_event_set_string(e, CMEV_PARAM_FASTMAIL_SESSION_ID, SESSION);
    cmev_event_set_uint(e, CMEV_PARAM_MODSEQ, 7);
    cmev_event_add_uid(e, 6);
    cmev_event_add_msgid(e, "<rig-6@example.org>");
    cmev_event_set_uint(e, CMEV_PARAM_MESSAGE_SIZE, 534);
    cmev_event_set_string(e, CMEV_PARAM_MESSAGE_CID, "NIL");
    cmev_event_set_string(e, CMEV_PARAM_MESSAGE_EMAIL_ID, "M745f127e9a8ab33ed6beeb9f");
    cmev_event_set_string(e, CMEV_PARAM_MESSAGE_THREAD_ID, "NIL");
    if (content) cmev_event_set_content(e, content, content_size, content_size / 10);
    if (with_jmap == JMAP_IN_EVENT) /* as the adapter does: dumped later, by the sender */
        cmev_event_set_json_object(e, CMEV_PARAM_JMAP_EMAIL, jmap_take(), dump_json,
                                   release_json);
    cmev_event_set_bytes(e, CMEV_PARAM_ENVELOPE, ENVELOPE, strlen(ENVELOPE));
    cmev_event_set_bytes(e, CMEV_PARAM_BODY_STRUCTURE, BODYSTRUCTURE, strlen(BODYSTRUCTURE));
    cmev_event_set_mailbox_uri(e, "imap://cyrus-rig.test/user/alice;UIDVALIDITY=1795890796");
    cmev_event_set_string(e, CMEV_PARAM_MBTYPE, "e");
    cmev_event_set_string(e, CMEV_PARAM_MAILBOX_ACL, "alice\tlrswipkxtecdan\t");
    cmev_event_set_uint(e, CMEV_PARAM_UIDNEXT, 7);
    cmev_event_set_uint(e, CMEV_PARAM_MESSAGES, 6);
    cmev_event_set_access(e, NULL, NULL, "alice");
    cmev_event_set_string(e, CMEV_PARAM_MAILBOX_ID, "eqdz638vvqbk0hal0j8219n9");
    cmev_event_set_uint(e, CMEV_PARAM_UNSEEN_MESSAGES, 5);
    cmev_notify(&e, 1);
    cmev_event_free(e);
}

/* as the adapter extracts each message: modseq (kept by the library for a
 * single message only), UID, Message-ID */
static void ours_flags(void)
{
    static const char *flags[] = { "\\Flagged", "$Label1" };
    static const char *msgids[] = { NULL, "<rig-5@example.org>", "<rig-6@example.org>" };
    cmev_event *e = cmev_event_new(CMEV_EVENT_TYPE_FLAGS_SET);
    int i;
    cmev_event_set_string(e, CMEV_PARAM_CMU_SESSION_ID, SESSION);
    cmev_event_set_string(e, CMEV_PARAM_FASTMAIL_SESSION_ID, SESSION);
    cmev_event_add_flags(e, flags, 2);
    for (i = 0; i < nuids; i++) {
        cmev_event_set_uint(e, CMEV_PARAM_MODSEQ, 9 + (uint64_t)i);
        cmev_event_add_uid(e, 4 + (uint32_t)i);
        cmev_event_add_msgid(e, msgids[i < 3 ? i : 1 + i % 2]);
    }
    cmev_event_set_mailbox_uri(e, "imap://cyrus-rig.test/user/alice;UIDVALIDITY=1795890796");
    cmev_event_set_string(e, CMEV_PARAM_MBTYPE, "e");
    cmev_event_set_string(e, CMEV_PARAM_MAILBOX_ACL, "alice\tlrswipkxtecdan\t");
    cmev_event_set_uint(e, CMEV_PARAM_UIDNEXT, 8);
    cmev_event_set_uint(e, CMEV_PARAM_MESSAGES, 7);
    cmev_event_set_access(e, NULL, NULL, "alice");
    cmev_event_set_string(e, CMEV_PARAM_MAILBOX_ID, "eqdz638vvqbk0hal0j8219n9");
    cmev_event_set_uint(e, CMEV_PARAM_UNSEEN_MESSAGES, 4);
    cmev_notify(&e, 1);
    cmev_event_free(e);
}

/* ---- stock: jansson + notify() ---- */

static char stamp[32];

static void stock_send(json_t *o)
{
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    notify("log", "EVENT", NULL, NULL, NULL, 0, NULL, text, NULL);
    free(text);
    json_decref(o);
}

static void stock_timestamp(void)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + 19, sizeof(stamp) - 19, ".%03dZ", (int)(tv.tv_usec / 1000) % 1000);
}

static void stock_new(void)
{
    json_t *o = json_object();
    stock_timestamp();
    json_object_set_new(o, "event", json_string("MessageNew"));
    json_object_set_new(o, "timestamp", json_string(stamp));
    json_object_set_new(o, "service", json_string("lmtpunix"));
    json_object_set_new(o, "mailboxID", json_string("eqdz638vvqbk0hal0j8219n9"));
    json_object_set_new(o, "uri", json_string("imap://cyrus-rig.test/user/alice;UIDVALIDITY=1795890796/;UID=6"));
    json_object_set_new(o, "modseq", json_integer(7));
    json_object_set_new(o, "messages", json_integer(6));
    json_object_set_new(o, "vnd.cmu.unseenMessages", json_integer(5));
    json_object_set_new(o, "uidnext", json_integer(7));
    json_object_set_new(o, "vnd.cmu.midset", json_pack("[s]", "<rig-6@example.org>"));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "user", json_string("alice"));
    json_object_set_new(o, "messageSize", json_integer(534));
    json_object_set_new(o, "vnd.cmu.mbtype", json_string("e"));
    json_object_set_new(o, "serverFQDN", json_string("cyrus-rig.test"));
    json_object_set_new(o, "vnd.cmu.mailboxACL", json_string("alice\tlrswipkxtecdan\t"));
    json_object_set_new(o, "vnd.cmu.envelope", json_string(ENVELOPE));
    json_object_set_new(o, "vnd.cmu.sessionId", json_string(SESSION));
    json_object_set_new(o, "bodyStructure", json_string(BODYSTRUCTURE));
    json_object_set_new(o, "vnd.fastmail.clientId", json_string(""));
    json_object_set_new(o, "vnd.fastmail.sessionId", json_string(SESSION));
    json_object_set_new(o, "vnd.fastmail.cid", json_string("NIL"));
    json_object_set_new(o, "vnd.cmu.emailid", json_string("M745f127e9a8ab33ed6beeb9f"));
    json_object_set_new(o, "vnd.cmu.threadid", json_string("NIL"));
    if (with_jmap == JMAP_IN_EVENT)
        json_object_set_new(o, "vnd.fastmail.jmapEmail", jmap_take());
    stock_send(o);
}

static void stock_flags(void)
{
    json_t *o = json_object();
    stock_timestamp();
    json_object_set_new(o, "event", json_string("FlagsSet"));
    json_object_set_new(o, "timestamp", json_string(stamp));
    /* one process, one service, as in Cyrus */
    json_object_set_new(o, "service", json_string("lmtpunix"));
    json_object_set_new(o, "mailboxID", json_string("eqdz638vvqbk0hal0j8219n9"));
    json_object_set_new(o, "uri", json_string("imap://cyrus-rig.test/user/alice;UIDVALIDITY=1795890796"));
    json_object_set_new(o, "messages", json_integer(7));
    json_object_set_new(o, "vnd.cmu.unseenMessages", json_integer(4));
    json_object_set_new(o, "uidnext", json_integer(8));
    json_object_set_new(o, "uidset", json_string("4:6"));
    json_object_set_new(o, "vnd.cmu.midset", json_pack("[sss]", "NIL", "<rig-5@example.org>", "<rig-6@example.org>"));
    json_object_set_new(o, "flagNames", json_string("\\Flagged $Label1"));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "user", json_string("alice"));
    json_object_set_new(o, "vnd.cmu.mbtype", json_string("e"));
    json_object_set_new(o, "serverFQDN", json_string("cyrus-rig.test"));
    json_object_set_new(o, "vnd.cmu.mailboxACL", json_string("alice\tlrswipkxtecdan\t"));
    json_object_set_new(o, "vnd.cmu.sessionId", json_string(SESSION));
    json_object_set_new(o, "vnd.fastmail.clientId", json_string(""));
    json_object_set_new(o, "vnd.fastmail.sessionId", json_string(SESSION));
    stock_send(o);
}

/* ---- measurement ---- */

static struct drain rx;

/* Events are timed in runs of `run` back-to-back calls; between runs, out
 * of the timed region, the queue drains and the receiver catches up. */
static int run = 64;

/* The control's objects of one run, and the thread that may release them */
static json_t **kept;
static int nkept;
static sem_t release_go, release_done;

static void release_kept(void)
{
    while (nkept > 0) json_decref(kept[--nkept]);
}

static void *releaser(void *arg)
{
    (void)arg;
    for (;;) {
        sem_wait(&release_go);
        release_kept();
        sem_post(&release_done);
    }
    return NULL;
}

static void settle(long expected)
{
    if (with_jmap == JMAP_FREED_ELSEWHERE) {
        sem_post(&release_go);
        sem_wait(&release_done);
    }
    release_kept();
    cmev_flush(60000);
    wait_received(&rx, expected, 10000);
    /* single events: past the sender's nap (10 ms, NAP in src/sender.rs),
     * so that it sleeps and the next event has to wake it */
    if (run == 1) usleep(13000);
}

static void batch(void (*op)(void), int n, double *p50, double *p99)
{
    uint64_t *t = malloc(sizeof(uint64_t) * (size_t)n);
    int i;
    long before = atomic_load(&rx.received);
    if (JMAP_KEPT(with_jmap)) kept = realloc(kept, sizeof(*kept) * (size_t)run);
    for (i = 0; i < n; i++) {
        uint64_t a;
        if (with_jmap == JMAP_IN_EVENT) jmap_packed = jmap_email();
        if (JMAP_KEPT(with_jmap)) kept[nkept++] = jmap_email();
        a = now_ns();
        op();
        t[i] = now_ns() - a;
        if ((i + 1) % run == 0) settle(before + i + 1);
    }
    settle(before + n);
    qsort(t, (size_t)n, sizeof(uint64_t), cmp_u64);
    *p50 = pct(t, (size_t)n, 0.50);
    *p99 = pct(t, (size_t)n, 0.99);
    free(t);
}

#define ROUNDS 5

/* One table row: side A's and side B's medians (min-max), ratios B / A */
static void row(FILE *out, const char *what, double *o50, double *o99, double *s50, double *s99)
{
    struct spread a50 = spread_of(o50, 2 * ROUNDS), a99 = spread_of(o99, 2 * ROUNDS);
    struct spread b50 = spread_of(s50, 2 * ROUNDS), b99 = spread_of(s99, 2 * ROUNDS);
    fprintf(out, "| %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | **%.1f×** | %.1f× |\n",
            what, a50.median, a50.min, a50.max, a99.median, a99.min, a99.max,
            b50.median, b50.min, b50.max, b99.median, b99.min, b99.max,
            b50.median / a50.median, b99.median / a99.median);
    fflush(out);
}

/* A B A B, each side with its own jmapEmail objects; ratios B / A */
static void compare_modes(FILE *out, const char *what, void (*a)(void), enum jmap a_jmap,
                          void (*b)(void), enum jmap b_jmap, int n)
{
    double o50[2 * ROUNDS], o99[2 * ROUNDS], s50[2 * ROUNDS], s99[2 * ROUNDS];
    int k;
    for (k = 0; k < 2 * ROUNDS; k++) {
        with_jmap = a_jmap;
        batch(a, n, &o50[k], &o99[k]);
        with_jmap = b_jmap;
        batch(b, n, &s50[k], &s99[k]);
    }
    row(out, what, o50, o99, s50, s99);
}

/* A B A B: `op` without the spool, then with it (the option set between
 * batches, untimed); ratios with / without */
static void compare_spool(FILE *out, const char *what, void (*op)(void), int n)
{
    double o50[2 * ROUNDS], o99[2 * ROUNDS], s50[2 * ROUNDS], s99[2 * ROUNDS];
    int k;
    for (k = 0; k < 2 * ROUNDS; k++) {
        cmev_config_set("event_spool_size", "0", NULL, 0);
        batch(op, n, &o50[k], &o99[k]);
        cmev_config_set("event_spool_size", "65536", NULL, 0);
        batch(op, n, &s50[k], &s99[k]);
    }
    row(out, what, o50, o99, s50, s99);
}

static void compare(FILE *out, const char *what, void (*ours)(void), void (*stock)(void), int n)
{
    compare_modes(out, what, ours, with_jmap, stock, with_jmap, n);
}

/* The timestamp, the only part that may differ between the two paths */
static void mask_timestamp(char *d, size_t len)
{
    static const char key[] = "\"timestamp\":\"";
    char *t = memmem(d, len, key, sizeof(key) - 1);
    if (t) {
        t += sizeof(key) - 1;
        while (t < d + len && *t != '"') *t++ = 'X';
    }
}

/* Like with like: both paths must send the same datagram, timestamp aside. */
static void check_same(const char *what, void (*ours)(void), void (*stock)(void))
{
    static char first[sizeof(rx.last)];
    size_t first_len;
    long before = atomic_load(&rx.received);
    atomic_store(&rx.capture, 1);
    ours();
    settle(before + 1);
    first_len = rx.last_len;
    memcpy(first, rx.last, first_len);
    stock();
    settle(before + 2);
    atomic_store(&rx.capture, 0);
    mask_timestamp(first, first_len);
    mask_timestamp(rx.last, rx.last_len);
    if (first_len != rx.last_len || memcmp(first, rx.last, first_len)) {
        size_t i;
        for (i = 0; i < first_len; i++) first[i] = first[i] ? first[i] : '|';
        for (i = 0; i < rx.last_len; i++) rx.last[i] = rx.last[i] ? rx.last[i] : '|';
        fprintf(stderr, "hotpath: %s: the two paths send different datagrams\nours:  %.*s\nstock: %.*s\n", what,
                (int)first_len, first, (int)rx.last_len, rx.last);
        exit(1);
    }
}

static void growth(FILE *md, FILE *csv, void (*op)(void), const char *series, const char *label, long x,
                   int n)
{
    double v50[ROUNDS], v99[ROUNDS];
    struct spread s50, s99;
    int r;
    for (r = 0; r < ROUNDS; r++)
        batch(op, n, &v50[r], &v99[r]);
    s50 = spread_of(v50, ROUNDS);
    s99 = spread_of(v99, ROUNDS);
    fprintf(md, "| %s | %s | %.0f (%.0f–%.0f) | %.0f | %.2f |\n", series, label, s50.median, s50.min,
            s50.max, s99.median, s50.median / (double)(x ? x : 1));
    fprintf(csv, "%s,%ld,%.0f,%.0f\n", series, x, s50.median, s99.median);
    fflush(md);
}

static int profile(const char *what, int n)
{
    static const struct {
        const char *name;
        void (*op)(void);
        enum jmap jmap;
    } cases[] = {
        { "new", ours_new, JMAP_NONE },
        { "new-jmap", ours_new, JMAP_IN_EVENT },
        { "new-freed-here", ours_new, JMAP_FREED_HERE },
        { "new-freed-elsewhere", ours_new, JMAP_FREED_ELSEWHERE },
        { "flags", ours_flags, JMAP_NONE },
        { "stock-new", stock_new, JMAP_NONE },
        { "stock-flags", stock_flags, JMAP_NONE },
    };
    size_t c;
    double p50, p99;
    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        if (strcmp(cases[c].name, what)) continue;
        with_jmap = cases[c].jmap;
        if (getenv("HOTPATH_RUN")) run = atoi(getenv("HOTPATH_RUN"));
        while (n > 0) {
            batch(cases[c].op, n < 20000 ? n : 20000, &p50, &p99);
            printf("%s: p50 %.0f ns, p99 %.0f ns\n", what, p50, p99);
            n -= 20000;
        }
        drain_stop(&rx);
        return 0;
    }
    fprintf(stderr, "profile: unknown case %s\n", what);
    return 2;
}

int main(int argc, char **argv)
{
    char path[100], mdpath[512], csvpath[512], confpath[512];
    static char big[1 << 20];
    static const long sizes[] = { 0, 1024, 65536, 1 << 20 };
    static const long uid_counts[] = { 1, 1000, 100000 };
    FILE *md, *csv;
    size_t i;
    pthread_t releaser_thread;
    if (argc < 2) {
        fprintf(stderr, "usage: %s RESULTS_DIR\n", argv[0]);
        return 2;
    }
    snprintf(path, sizeof(path), "/tmp/cmev-bench-%d.sock", (int)getpid());
    drain_start(&rx, path);
    sem_init(&release_go, 0, 0);
    sem_init(&release_done, 0, 0);
    pthread_create(&releaser_thread, NULL, releaser, NULL);
    /* stock's notify() reads notifysocket from imapd.conf, like imapd */
    snprintf(confpath, sizeof(confpath), "%s/stock-imapd.conf", argv[1]);
    md = fopen(confpath, "w");
    if (!md) {
        perror(confpath);
        return 2;
    }
    fprintf(md, "configdirectory: %s\nnotifysocket: %s\n", argv[1], path);
    fclose(md);
    config_ident = "imap";
    config_read(confpath, 0);

    cmev_config_set("event_notifier", "log", NULL, 0);
    cmev_config_set("event_groups", "message quota flags access mailbox subscription calendar applepushservice", NULL, 0);
    cmev_config_set("event_extra_params",
                    "bodyStructure clientAddress diskUsed flagNames messageContent messageSize messages modseq "
                    "service timestamp uidnext vnd.cmu.midset vnd.cmu.unseenMessages vnd.cmu.envelope "
                    "vnd.cmu.sessionId vnd.cmu.mailboxACL vnd.cmu.mbtype vnd.cmu.davFilename vnd.cmu.davUid "
                    "vnd.fastmail.clientId vnd.fastmail.sessionId vnd.fastmail.cid vnd.fastmail.jmapEmail "
                    "vnd.cmu.emailid vnd.cmu.threadid",
                    NULL, 0);
    cmev_config_set("servername", "cyrus-rig.test", NULL, 0);
    cmev_config_set("service", "lmtpunix", NULL, 0);
    cmev_config_set("notifysocket", path, NULL, 0);
    cmev_config_set("event_queue_size", "1048576", NULL, 0);
    cmev_config_set("event_max_datagram_size", "65536", NULL, 0);
    /* the spool under the results directory, as under Cyrus's configdirectory */
    cmev_config_set("configdirectory", argv[1], NULL, 0);
    cmev_config_set("event_spool_size", "65536", NULL, 0); /* the burst row stays durable */

    snprintf(mdpath, sizeof(mdpath), "%s/hotpath.md", argv[1]);
    snprintf(csvpath, sizeof(csvpath), "%s/growth.csv", argv[1]);
    md = fopen(mdpath, "w");
    csv = fopen(csvpath, "w");
    if (!md || !csv) {
        perror(argv[1]);
        return 2;
    }

    if (argc == 5 && !strcmp(argv[2], "profile")) return profile(argv[3], atoi(argv[4]));
    check_same("MessageNew", ours_new, stock_new);
    check_same("FlagsSet", ours_flags, stock_flags);
    /* warm up both paths */
    for (i = 0; i < 2000; i++) {
        ours_new();
        stock_new();
    }
    cmev_flush(10000);

    fprintf(md, "### Hot path: ns per event, median of %d batches of 20,000 (min–max)\n\n", 2 * ROUNDS);
    fprintf(md, "Events in runs of %d back-to-back calls; between runs (untimed) the queue drains and "
                "the receiver catches up, as between the commands of a real imapd or lmtpd, which "
                "emit a few events per command.\n\n", run);
    fprintf(md, "| event | ours p50 | ours p99 | stock p50 | stock p99 | p50 ratio | p99 ratio |\n|---|---|---|---|---|---|---|\n");
    compare(md, "MessageNew (`all` key set)", ours_new, stock_new, 20000);
    with_jmap = JMAP_NONE;
    compare(md, "MessageNew (`all` key set but jmapEmail)", ours_new, stock_new, 20000);
    compare(md, "FlagsSet", ours_flags, stock_flags, 20000);
    /* what copying each queued event into the spool costs: batches with
     * and without it, alternated */
    fprintf(md, "\nThe spool's cost: ours with and without it (`event_spool_size: 0`), batches "
                "alternated (ratio: with / without):\n\n");
    fprintf(md, "| event | without p50 | without p99 | with p50 | with p99 | p50 ratio | p99 ratio |\n|---|---|---|---|---|---|---|\n");
    with_jmap = JMAP_IN_EVENT;
    compare_spool(md, "MessageNew (`all` key set)", ours_new, 20000);
    with_jmap = JMAP_NONE;
    compare_spool(md, "FlagsSet", ours_flags, 20000);
    /* a burst the sender cannot keep up with: the queue grows, so every
     * event needs fresh memory instead of a reused body */
    run = 20000;
    fprintf(md, "\nA burst of 20,000 back-to-back events, sender behind (fresh memory per queued event):\n\n");
    fprintf(md, "| event | ours p50 | ours p99 | stock p50 | stock p99 | p50 ratio | p99 ratio |\n|---|---|---|---|---|---|---|\n");
    compare(md, "FlagsSet, burst", ours_flags, stock_flags, 20000);
    /* one event per command, the sender asleep each time: every event pays
     * the wake-up (one futex call) */
    run = 1;
    fprintf(md, "\nOne event at a time, the sender asleep before each (every event wakes it):\n\n");
    fprintf(md, "| event | ours p50 | ours p99 | stock p50 | stock p99 | p50 ratio | p99 ratio |\n|---|---|---|---|---|---|---|\n");
    compare(md, "FlagsSet, isolated", ours_flags, stock_flags, 500);
    run = 64;

    fprintf(md, "\nControl: MessageNew (`all` key set but jmapEmail), a jmapEmail object packed before "
                "each event but not given to it; a run's objects released after the run by another "
                "thread, as our sender releases those of the first row, or by the caller (ratios: caller "
                "/ elsewhere):\n\n");
    fprintf(md, "| event | elsewhere p50 | elsewhere p99 | caller p50 | caller p99 | p50 ratio | p99 ratio |\n|---|---|---|---|---|---|---|\n");
    compare_modes(md, "MessageNew, objects released elsewhere / by the caller", ours_new,
                  JMAP_FREED_ELSEWHERE, ours_new, JMAP_FREED_HERE, 20000);
    with_jmap = JMAP_NONE;

    fprintf(md, "\n### Cost growth (ours): ns per event\n\n| series | size | p50 (min–max) | p99 | p50 per unit |\n|---|---|---|---|---|\n");
    fprintf(csv, "series,x,p50_ns,p99_ns\n");
    memset(big, 'x', sizeof(big));
    content = big;
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char label[32];
        content_size = (size_t)sizes[i];
        snprintf(label, sizeof(label), "%ld B", sizes[i]);
        growth(md, csv, ours_new, "messageContent", label, sizes[i], sizes[i] >= 65536 ? 400 : 4000);
    }
    content = NULL;
    for (i = 0; i < sizeof(uid_counts) / sizeof(uid_counts[0]); i++) {
        char label[32];
        nuids = (int)uid_counts[i];
        snprintf(label, sizeof(label), "%ld UIDs", uid_counts[i]);
        growth(md, csv, ours_flags, "uids", label, uid_counts[i], uid_counts[i] >= 100000 ? 20 : 2000);
    }
    nuids = 3;

    fclose(md);
    fclose(csv);
    drain_stop(&rx);
    printf("hotpath: results in %s and %s\n", mdpath, csvpath);
    return 0;
}
