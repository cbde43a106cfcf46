/* The panic boundary, proven with real panics: built against the library
 * compiled with `--features fault-injection`, where CMEV_FAULT_PANIC=<name>
 * makes the first call of that C function panic inside its guard.
 *
 * For every extern "C" function, in a child process of its own (the
 * variable is read once per process): the panicking call returns its
 * documented fallback (CMEV_ERROR_PANIC, NULL, 0 or false; true for
 * cmev_mailbox_enabled, which fails open) and changes nothing; a syslog line
 * naming the function is attempted (syslog is interposed here to see it);
 * the process carries on; and later calls, including of the same function,
 * work: an event is built, sent and received afterwards. */
#include "rig.h"

#include <stdatomic.h>

#include <stdarg.h>
#include <syslog.h>

/* The library's syslog calls land here (the executable's definition
 * interposes libc's for the shared library). */
static char logged[16384];
static size_t logged_len;

void syslog(int priority, const char *format, ...)
{
    va_list ap;
    int n;
    (void)priority;
    if (logged_len >= sizeof(logged) - 2) return;
    va_start(ap, format);
    n = vsnprintf(logged + logged_len, sizeof(logged) - 1 - logged_len, format, ap);
    va_end(ap);
    if (n > 0) logged_len += strlen(logged + logged_len);
    logged[logged_len++] = '\n';
    logged[logged_len] = '\0';
}

static struct listener L;

/* After the panic: a whole event goes out and arrives, as if nothing had
 * happened. */
static void later_calls_work(const char *tag)
{
    char uri[128], buf[4096];
    cmev_event *ev;
    ssize_t n;
    setup(L.path);
    snprintf(uri, sizeof(uri), "imap://h/after/%s", tag);
    ev = mailbox_event(uri);
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    n = listener_recv(&L, buf, sizeof(buf));
    CHECK(n > 0 && strstr(datagram_json(buf, n), uri) != NULL);
}

/* ---- one scenario per function: the first call panics ---- */

static void s_config_set(void)
{
    char err[256] = "untouched";
    cmev_config_reset();
    CHECK_EQ_INT(cmev_config_set("event_notifier", "log", err, sizeof(err)), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_enabled_types(), 0); /* nothing changed: events still off */
    CHECK_EQ_INT(cmev_config_set("event_notifier", "log", err, sizeof(err)), 0);
    CHECK(cmev_enabled_types() != 0);
}

static void s_enabled_types(void)
{
    setup(L.path);
    CHECK_EQ_INT(cmev_enabled_types(), 0);
    CHECK_EQ_INT(cmev_enabled_types(), CMEV_EVENT_TYPE_MAILBOX_CREATE | CMEV_EVENT_TYPE_MAILBOX_DELETE
                 | CMEV_EVENT_TYPE_MAILBOX_RENAME | CMEV_EVENT_TYPE_ACL_CHANGE | CMEV_EVENT_TYPE_MAILBOX_MODSEQ);
}

static void s_config_reset(void)
{
    config("event_notifier", "log");
    cmev_config_reset(); /* panics: the configuration stays */
    CHECK(cmev_enabled_types() != 0);
    cmev_config_reset();
    CHECK_EQ_INT(cmev_enabled_types(), 0);
}

static void s_event_new(void)
{
    cmev_event *ev;
    setup(L.path);
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE) == NULL);
    ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK(ev != NULL);
    cmev_event_free(ev);
}

static void s_event_free(void)
{
    cmev_event *a, *b;
    setup(L.path);
    a = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    b = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    cmev_event_free(a); /* panics: the event is left alone (leaked), not half-freed */
    CHECK_EQ_INT(cmev_event_get_type(a), CMEV_EVENT_TYPE_MAILBOX_CREATE);
    cmev_event_free(b);
    cmev_event_free(a);
}

static void s_event_get_type(void)
{
    cmev_event *ev;
    setup(L.path);
    ev = mailbox_event("imap://h/x");
    CHECK_EQ_INT(cmev_event_get_type(ev), 0);
    CHECK_EQ_INT(cmev_event_get_type(ev), CMEV_EVENT_TYPE_MAILBOX_CREATE);
    cmev_event_free(ev);
}

static void s_event_set_type(void)
{
    cmev_event *ev;
    setup(L.path);
    ev = mailbox_event("imap://h/x");
    CHECK_EQ_INT(cmev_event_set_type(ev, CMEV_EVENT_TYPE_CANCELLED), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_event_get_type(ev), CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK_EQ_INT(cmev_event_set_type(ev, CMEV_EVENT_TYPE_MAILBOX_DELETE), 0);
    CHECK_EQ_INT(cmev_event_get_type(ev), CMEV_EVENT_TYPE_MAILBOX_DELETE);
    cmev_event_free(ev);
}

static void s_expected(void)
{
    setup(L.path);
    CHECK(!cmev_expected(CMEV_EVENT_TYPE_MAILBOX_CREATE, CMEV_PARAM_URI));
    CHECK(cmev_expected(CMEV_EVENT_TYPE_MAILBOX_CREATE, CMEV_PARAM_URI));
}

static void s_event_has(void)
{
    cmev_event *ev;
    setup(L.path);
    ev = mailbox_event("imap://h/x");
    CHECK(!cmev_event_has(ev, CMEV_PARAM_URI));
    CHECK(cmev_event_has(ev, CMEV_PARAM_URI));
    cmev_event_free(ev);
}

/* A setter that panics leaves the parameter unset; the retry sets it. */
#define SETTER_SCENARIO(fn, param, call)                       \
    static void s_##fn(void)                                   \
    {                                                          \
        cmev_event *ev;                                        \
        setup(L.path);                                         \
        ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);   \
        CHECK_EQ_INT(call, CMEV_ERROR_PANIC);                  \
        CHECK(!cmev_event_has(ev, param));                     \
        CHECK_EQ_INT(call, 0);                                 \
        CHECK(cmev_event_has(ev, param));                      \
        cmev_event_free(ev);                                   \
    }

static const char *const two[] = { "a", "b" };
SETTER_SCENARIO(event_set_string, CMEV_PARAM_URI, cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/x"))
SETTER_SCENARIO(event_set_bytes, CMEV_PARAM_URI, cmev_event_set_bytes(ev, CMEV_PARAM_URI, "imap", 4))
SETTER_SCENARIO(event_set_uint, CMEV_PARAM_MODSEQ, cmev_event_set_uint(ev, CMEV_PARAM_MODSEQ, 7))
SETTER_SCENARIO(event_set_json, CMEV_PARAM_JMAP_STATES, cmev_event_set_json(ev, CMEV_PARAM_JMAP_STATES, "{}"))
SETTER_SCENARIO(event_set_strings, CMEV_PARAM_MIDSET, cmev_event_set_strings(ev, CMEV_PARAM_MIDSET, two, 2))
SETTER_SCENARIO(event_set_mailbox_uri, CMEV_PARAM_URI, cmev_event_set_mailbox_uri(ev, "imap://h/x"))

/* A JSON object handed over is released exactly once even when the call
 * panics (by the unwinding), and again once for the retry's object. */
static atomic_int json_releases;
static int count_dump(const void *obj, cmev_json_write_fn write, void *ctx)
{
    (void)obj;
    return write("{}", 2, ctx);
}
static void count_release(void *obj)
{
    (void)obj;
    atomic_fetch_add(&json_releases, 1);
}
static void s_event_set_json_object(void)
{
    static char obj;
    cmev_event *ev;
    setup(L.path);
    ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_STATES, &obj, count_dump, count_release),
                 CMEV_ERROR_PANIC);
    CHECK(!cmev_event_has(ev, CMEV_PARAM_JMAP_STATES));
    CHECK_EQ_INT(atomic_load(&json_releases), 1);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_STATES, &obj, count_dump, count_release), 0);
    CHECK(cmev_event_has(ev, CMEV_PARAM_JMAP_STATES));
    cmev_event_free(ev);
    CHECK_EQ_INT(atomic_load(&json_releases), 2);
}

/* Functions whose effect shows only in the JSON: the panicking call adds
 * nothing, the retry adds once. */
static void expect_json(cmev_event *ev, const char *want, const char *not_want)
{
    char buf[4096];
    ssize_t n;
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    n = listener_recv(&L, buf, sizeof(buf));
    CHECK(n > 0);
    if (n > 0) {
        const char *j = datagram_json(buf, n);
        checks++;
        if (!strstr(j, want) || (not_want && strstr(j, not_want))) {
            failures++;
            fprintf(stderr, "got %s\n  want %s%s%s\n", j, want, not_want ? " without " : "", not_want ? not_want : "");
        }
    }
}

static cmev_event *expunge_event(void)
{
    cmev_event *ev;
    setup(L.path);
    config("event_groups", "message flags");
    config("event_extra_params", "vnd.cmu.midset");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE);
    CHECK(ev != NULL);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/INBOX");
    return ev;
}

static void s_event_add_uid(void)
{
    cmev_event *ev = expunge_event();
    CHECK_EQ_INT(cmev_event_add_uid(ev, 5), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_event_add_uid(ev, 7), 0);
    expect_json(ev, "\"uidset\":\"7\"", NULL);
}

static void s_event_add_old_uid(void)
{
    cmev_event *ev = expunge_event();
    cmev_event_add_uid(ev, 1);
    CHECK_EQ_INT(cmev_event_add_old_uid(ev, 5), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_event_add_old_uid(ev, 7), 0);
    expect_json(ev, "\"vnd.cmu.oldUidset\":\"7\"", NULL);
}

static void s_event_add_msgid(void)
{
    cmev_event *ev = expunge_event();
    cmev_event_add_uid(ev, 1);
    CHECK_EQ_INT(cmev_event_add_msgid(ev, "<a@x>"), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_event_add_msgid(ev, "<b@x>"), 0);
    expect_json(ev, "\"vnd.cmu.midset\":[\"<b@x>\"]", NULL);
}

static void s_event_add_flag(void)
{
    cmev_event *ev = expunge_event();
    cmev_event_set_type(ev, CMEV_EVENT_TYPE_FLAGS_SET);
    cmev_event_add_uid(ev, 1);
    CHECK_EQ_INT(cmev_event_add_flag(ev, "$A"), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_event_add_flag(ev, "$B"), 0);
    expect_json(ev, "\"flagNames\":\"$B\"", NULL);
}

static void s_event_add_flags(void)
{
    const char *a[] = { "$A" }, *b[] = { "$B" };
    cmev_event *ev = expunge_event();
    cmev_event_set_type(ev, CMEV_EVENT_TYPE_FLAGS_SET);
    cmev_event_add_uid(ev, 1);
    CHECK_EQ_INT(cmev_event_add_flags(ev, a, 1), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_event_add_flags(ev, b, 1), 0);
    expect_json(ev, "\"flagNames\":\"$B\"", NULL);
}

static void s_event_set_access(void)
{
    cmev_event *ev = expunge_event();
    cmev_event_add_uid(ev, 1);
    CHECK_EQ_INT(cmev_event_set_access(ev, NULL, NULL, "alice"), CMEV_ERROR_PANIC);
    CHECK(!cmev_event_has(ev, CMEV_PARAM_USER));
    CHECK_EQ_INT(cmev_event_set_access(ev, NULL, NULL, "bob"), 0);
    expect_json(ev, "\"user\":\"bob\"", "alice");
}

static void s_event_set_acl(void)
{
    cmev_event *ev;
    setup(L.path);
    ev = mailbox_event("imap://h/x");
    cmev_event_set_type(ev, CMEV_EVENT_TYPE_ACL_CHANGE);
    CHECK_EQ_INT(cmev_event_set_acl(ev, "alice", "lrs"), CMEV_ERROR_PANIC);
    CHECK(!cmev_event_has(ev, CMEV_PARAM_ACL_SUBJECT));
    CHECK_EQ_INT(cmev_event_set_acl(ev, "bob", "lr"), 0);
    expect_json(ev, "\"aclSubject\":\"bob\",\"aclRights\":\"lr\"", "alice");
}

/* A MessageNew that carries messageContent */
static cmev_event *content_event(void)
{
    setup_content(L.path);
    return message_event(1);
}

static void s_event_set_content(void)
{
    cmev_event *ev = content_event();
    CHECK_EQ_INT(cmev_event_set_content(ev, "first", 5, 0), CMEV_ERROR_PANIC);
    CHECK(!cmev_event_has(ev, CMEV_PARAM_MESSAGE_CONTENT));
    CHECK_EQ_INT(cmev_event_set_content(ev, "second", 6, 0), 0);
    expect_json(ev, "\"messageContent\":\"second\"", "first");
}

static void s_event_content_wanted(void)
{
    size_t wanted = 0, mb = 1u << 20;
    cmev_event *ev = content_event();
    /* fails safe: the whole message, so no content is lost */
    CHECK(cmev_event_content_wanted(ev, mb, 100, &wanted));
    CHECK_EQ_INT(wanted, mb);
    CHECK(cmev_event_content_wanted(ev, mb, 100, &wanted));
    CHECK(wanted < mb);
    cmev_event_free(ev);
}

static void s_mailbox_enabled(void)
{
    setup(L.path);
    config("event_exclude_specialuse", "\\Junk");
    CHECK(cmev_mailbox_enabled(false, "\\Junk")); /* fails open: events still flow */
    CHECK(!cmev_mailbox_enabled(false, "\\Junk"));
}

static void s_mailbox_needs(void)
{
    setup(L.path);
    config("event_exclude_specialuse", "");
    /* fails safe: the caller looks everything up */
    CHECK_EQ_INT(cmev_mailbox_needs(), CMEV_MAILBOX_NEEDS_USER_INBOX | CMEV_MAILBOX_NEEDS_SPECIALUSE);
    CHECK_EQ_INT(cmev_mailbox_needs(), 0);
}

static void s_notify(void)
{
    char buf[4096];
    cmev_event *ev;
    ssize_t n;
    setup(L.path);
    ev = mailbox_event("imap://h/first");
    CHECK_EQ_INT(cmev_notify(&ev, 1), CMEV_ERROR_PANIC);
    CHECK_EQ_INT(cmev_flush(2000), 0);
    CHECK(listener_empty(&L)); /* nothing sent, the event untouched */
    CHECK(cmev_event_has(ev, CMEV_PARAM_URI));
    CHECK_EQ_INT(counter(CMEV_COUNTER_NOTIFIED), 0);
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0); /* the same event again: sent once */
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    n = listener_recv(&L, buf, sizeof(buf));
    CHECK(n > 0 && strstr(datagram_json(buf, n), "imap://h/first") != NULL);
    CHECK(listener_empty(&L));
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 1);
}

static void s_set_client_id(void)
{
    cmev_event *ev;
    setup(L.path);
    config("event_extra_params", "vnd.fastmail.clientId");
    cmev_set_client_id("first"); /* panics: not set */
    ev = mailbox_event("imap://h/x");
    expect_json(ev, "\"vnd.fastmail.clientId\":\"\"", "first");
    cmev_set_client_id("second");
    ev = mailbox_event("imap://h/x");
    expect_json(ev, "\"vnd.fastmail.clientId\":\"second\"", NULL);
    cmev_set_client_id(NULL);
}

static void s_set_cyrus_series(void)
{
    cmev_event *ev;
    setup(L.path);
    /* panics: the numbering stays the library's own, where 43 is userId */
    CHECK_EQ_INT(cmev_set_cyrus_series(CMEV_CYRUS_3_10), CMEV_ERROR_PANIC);
    config("event_groups", "calendar mailbox");
    ev = cmev_event_new(CMEV_EVENT_TYPE_CALENDAR_ALARM);
    CHECK_EQ_INT(cmev_event_set_string(ev, 43, "v"), 0);
    expect_json(ev, "\"userId\":\"v\"", NULL);
    CHECK_EQ_INT(cmev_set_cyrus_series(CMEV_CYRUS_3_10), 0);
    ev = cmev_event_new(CMEV_EVENT_TYPE_CALENDAR_ALARM);
    CHECK_EQ_INT(cmev_event_set_string(ev, 43, "v"), 0);
    expect_json(ev, "\"alertId\":\"v\"", NULL);
    CHECK_EQ_INT(cmev_set_cyrus_series(CMEV_CYRUS_OWN), 0);
}

static void s_event_type_from_name(void)
{
    CHECK_EQ_INT(cmev_event_type_from_name("FlagsSet"), 0); /* panics: 0 */
    CHECK_EQ_INT(cmev_event_type_from_name("FlagsSet"), CMEV_EVENT_TYPE_FLAGS_SET);
}

static int calls;
static void count_cb(const char *json, size_t len, void *rock)
{
    (void)json;
    (void)len;
    (void)rock;
    calls++;
}

static void s_set_notify_callback(void)
{
    cmev_event *ev;
    setup(L.path);
    cmev_set_notify_callback(count_cb, NULL); /* panics: not registered */
    ev = mailbox_event("imap://h/x");
    cmev_notify(&ev, 1);
    cmev_event_free(ev);
    CHECK_EQ_INT(calls, 0);
    cmev_set_notify_callback(count_cb, NULL);
    ev = mailbox_event("imap://h/x");
    cmev_notify(&ev, 1);
    cmev_event_free(ev);
    CHECK_EQ_INT(calls, 1);
    cmev_set_notify_callback(NULL, NULL);
    CHECK_EQ_INT(cmev_flush(5000), 0);
    while (!listener_empty(&L)) {
        char buf[4096];
        listener_recv(&L, buf, sizeof(buf));
    }
}

static void s_flush(void)
{
    cmev_event *ev;
    char buf[4096];
    setup(L.path);
    ev = mailbox_event("imap://h/x");
    cmev_notify(&ev, 1);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(5000), 0); /* panics: the fallback is 0 */
    CHECK_EQ_INT(cmev_flush(5000), 0);
    CHECK(listener_recv(&L, buf, sizeof(buf)) > 0);
}

static void s_counters_get(void)
{
    cmev_counters c;
    int i;
    memset(&c, 0xab, sizeof(c));
    CHECK_EQ_INT(cmev_counters_get(&c), CMEV_ERROR_PANIC);
    for (i = 0; i < CMEV_COUNTER_COUNT; i++) CHECK(c.values[i] == 0xababababababababull);
    CHECK_EQ_INT(cmev_counters_get(&c), 0);
    CHECK_EQ_INT(c.values[CMEV_COUNTER_SENT], 0);
}

static void no_fault(void)
{
    setup(L.path);
}

struct scenario {
    const char *function;
    void (*run)(void);
};

static const struct scenario scenarios[] = {
    { "cmev_config_set", s_config_set },
    { "cmev_enabled_types", s_enabled_types },
    { "cmev_config_reset", s_config_reset },
    { "cmev_event_new", s_event_new },
    { "cmev_event_free", s_event_free },
    { "cmev_event_get_type", s_event_get_type },
    { "cmev_event_set_type", s_event_set_type },
    { "cmev_expected", s_expected },
    { "cmev_event_has", s_event_has },
    { "cmev_event_set_string", s_event_set_string },
    { "cmev_event_set_bytes", s_event_set_bytes },
    { "cmev_event_set_uint", s_event_set_uint },
    { "cmev_event_set_json", s_event_set_json },
    { "cmev_event_set_json_object", s_event_set_json_object },
    { "cmev_event_set_strings", s_event_set_strings },
    { "cmev_event_add_uid", s_event_add_uid },
    { "cmev_event_add_old_uid", s_event_add_old_uid },
    { "cmev_event_add_msgid", s_event_add_msgid },
    { "cmev_event_add_flag", s_event_add_flag },
    { "cmev_event_add_flags", s_event_add_flags },
    { "cmev_event_set_access", s_event_set_access },
    { "cmev_event_set_acl", s_event_set_acl },
    { "cmev_event_set_mailbox_uri", s_event_set_mailbox_uri },
    { "cmev_event_set_content", s_event_set_content },
    { "cmev_event_content_wanted", s_event_content_wanted },
    { "cmev_mailbox_enabled", s_mailbox_enabled },
    { "cmev_mailbox_needs", s_mailbox_needs },
    { "cmev_notify", s_notify },
    { "cmev_set_client_id", s_set_client_id },
    { "cmev_set_notify_callback", s_set_notify_callback },
    { "cmev_set_cyrus_series", s_set_cyrus_series },
    { "cmev_event_type_from_name", s_event_type_from_name },
    { "cmev_flush", s_flush },
    { "cmev_counters_get", s_counters_get },
};

/* Did the captured stderr of the child show the panic itself? */
static int file_contains(const char *file, const char *needle)
{
    static char text[65536];
    size_t n;
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

static char errfile[] = "/tmp/cmev-panic-XXXXXX";

/* In the case's child: the first call of the scenario's function panics. */
static void panic_case(void)
{
    const struct scenario *s = this_case->arg;
    char want[256];
    int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0) _exit(99);
    close(fd);
    if (s->function) setenv("CMEV_FAULT_PANIC", s->function, 1);
    listener_open(&L);
    s->run();
    snprintf(want, sizeof(want), "mboxevent: internal error in %s; call ignored\n", s->function ? s->function : "");
    checks++;
    if ((strstr(logged, want) != NULL) != (s->function != NULL)) {
        failures++;
        fprintf(stderr, "syslog lines: %s(want %s)\n", logged, want);
    }
    if (s->function) {
        snprintf(want, sizeof(want), "fault injection: %s", s->function);
        checks++;
        if (!file_contains(errfile, want)) {
            failures++;
            fprintf(stderr, "%s did not panic (is this the fault-injection build?)\n", s->function);
        }
    }
    later_calls_work(s->function ? s->function : "none");
    listener_close(&L);
}

/* The child's stderr went to errfile: show it for a case that failed. */
static void run(const struct scenario *s)
{
    const struct test_case tc = { s->function ? s->function : "(no fault)", panic_case, 30, s };
    struct child c = start_case(&tc);
    if (!finish_case(&c) && file_contains(errfile, "")) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "sed 's/^/    | /' %s >&2", errfile);
        if (system(cmd) != 0) perror("system");
    }
}

/* Every function the header declares has its scenario here. */
static void every_function_covered(void)
{
    char line[512];
    FILE *h = fopen("include/cyrus_mboxevent.h", "r");
    if (!h) {
        printf("  (include/cyrus_mboxevent.h not found: coverage of the API not checked)\n");
        return;
    }
    while (fgets(line, sizeof(line), h)) {
        char name[64];
        const char *p = line;
        size_t i, n = 0, found = 0;
        if (line[0] == ' ' || line[0] == '*' || line[0] == '/' || line[0] == '#') continue;
        while ((p = strstr(p, "cmev_")) != NULL) {
            for (n = 0; n < sizeof(name) - 1 && (p[n] == '_' || (p[n] >= 'a' && p[n] <= 'z')); n++) name[n] = p[n];
            name[n] = '\0';
            if (p[n] == '(') break;
            p += n;
        }
        if (!p) continue;
        for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) found |= strcmp(scenarios[i].function, name) == 0;
        checks++;
        if (!found) {
            failures++;
            printf("  %s: no panic scenario\n", name);
        }
    }
    fclose(h);
}

int main(void)
{
    size_t i;
    int fd = mkstemp(errfile);
    static const struct scenario none = { NULL, no_fault };
    if (fd < 0) return 2;
    close(fd);
    every_function_covered();
    run(&none);
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) run(&scenarios[i]);
    unlink(errfile);
    return report("test_panic");
}
