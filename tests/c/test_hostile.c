/* Hostile input, each with the outcome it must have: NULL everywhere,
 * unknown ids, invalid UTF-8, embedded NUL, 100 MB of content, a million
 * UIDs, extreme integers, every invalid option value, socket paths that are
 * too long / a file / a directory / missing / forbidden, dlist peers that
 * answer garbage, never stop talking, never answer or hang up, and a
 * datagram receiver that stops reading. For every one: no crash, no hang
 * (each case runs in a child with an alarm), the documented counter moves,
 * and enqueued = sent + dropped (+ still queued) exactly. */
#include "rig.h"

#include <grp.h>

static struct listener L;
static char got[1 << 20];
static ssize_t got_len;

static void open_listener(void)
{
    listener_open(&L);
}

/* Notify one event in sync mode and return its JSON as received (NULL if
 * nothing came). */
static const char *send_one(cmev_event *ev)
{
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    return got_len > 0 ? datagram_json(got, got_len) : NULL;
}

#define CHECK_CONTAINS(hay, needle)                                                 \
    do {                                                                            \
        const char *h_ = (hay);                                                     \
        checks++;                                                                   \
        if (!h_ || !strstr(h_, (needle))) {                                         \
            failures++;                                                             \
            fprintf(stderr, "%s:%d: %.300s\n  does not contain %.300s\n", __FILE__, \
                    __LINE__, h_ ? h_ : "(nothing)", (needle));                     \
        }                                                                           \
    } while (0)

#define CHECK_LACKS(hay, needle)                                                    \
    do {                                                                            \
        const char *h_ = (hay);                                                     \
        checks++;                                                                   \
        if (!h_ || strstr(h_, (needle))) {                                          \
            failures++;                                                             \
            fprintf(stderr, "%s:%d: %.300s\n  contains %.300s\n", __FILE__,         \
                    __LINE__, h_ ? h_ : "(nothing)", (needle));                     \
        }                                                                           \
    } while (0)

static void sync_profile(void)
{
    setup(L.path);
    config("event_delivery", "sync");
}

/* ------------------------------------------------------------------ */
/* NULL for every pointer argument not already covered by test_api.    */

static void null_pointers(void)
{
    char err[64];
    const char *nulls[] = { NULL, NULL };
    cmev_event *ev, *queue[3];
    open_listener();
    sync_profile();

    CHECK_EQ_INT(cmev_config_set(NULL, NULL, NULL, 0), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_config_set(NULL, "x", err, sizeof(err)), CMEV_ERROR_NULL);
    CHECK(strlen(err) > 0); /* the reason, even for NULL */
    CHECK_EQ_INT(cmev_config_set("servername", "h", NULL, 100), 0); /* NULL errbuf: len ignored */
    memset(err, 'x', sizeof(err));
    CHECK_EQ_INT(cmev_config_set("event_bogus", "1", err, 0), CMEV_ERROR_UNKNOWN_OPTION);
    CHECK(err[0] == 'x'); /* errlen 0: nothing written */
    CHECK_EQ_INT(cmev_config_set("event_bogus", "1", err, 1), CMEV_ERROR_UNKNOWN_OPTION);
    CHECK(err[0] == '\0' && err[1] == 'x'); /* errlen 1: just the NUL */

    ev = mailbox_event("imap://h/x");
    CHECK_EQ_INT(cmev_event_set_bytes(ev, CMEV_PARAM_USER, NULL, 0), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_strings(ev, CMEV_PARAM_CALENDAR_ALARM_RECIPIENTS, NULL, 0), 0);
    CHECK_EQ_INT(cmev_event_set_strings(ev, CMEV_PARAM_APS_MAILBOXES, nulls, 2), 0);
    CHECK_EQ_INT(cmev_event_add_flags(ev, NULL, 0), 0);
    CHECK_EQ_INT(cmev_event_add_flags(ev, NULL, 5), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_flags(ev, nulls, 2), 0);
    CHECK_EQ_INT(cmev_event_set_content(ev, NULL, 0, 0), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_content(ev, "", 0, 0), 0);
    CHECK(!cmev_event_content_wanted(ev, 10, 0, NULL));
    CHECK(!cmev_event_content_wanted(ev, 10, (size_t)-1, NULL));
    CHECK_EQ_INT(cmev_event_set_access(ev, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(cmev_event_set_acl(ev, "s", NULL), 0);
    CHECK(!cmev_event_has(NULL, 9999));
    CHECK(!cmev_expected(0, 0));
    CHECK(cmev_mailbox_enabled(false, NULL));
    cmev_set_notify_callback(NULL, (void *)1);
    cmev_set_client_id(NULL);

    /* a queue of NULLs, and NULLs around a real event */
    queue[0] = queue[1] = queue[2] = NULL;
    CHECK_EQ_INT(cmev_notify(queue, 3), 0);
    CHECK(listener_empty(&L));
    CHECK_EQ_INT(counter(CMEV_COUNTER_NOTIFIED), 0);
    queue[1] = ev;
    CHECK_EQ_INT(cmev_notify(queue, 3), 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    {
        const char *j = got_len > 0 ? datagram_json(got, got_len) : NULL;
        CHECK_CONTAINS(j, "\"aclSubject\":\"s\",");
        CHECK_LACKS(j, "aclRights");
        CHECK_CONTAINS(j, "\"alarmRecipients\":[]");
        CHECK_CONTAINS(j, "\"mailboxes\":[]");
    }
    CHECK_EQ_INT(cmev_flush(0), 0);
    CHECK_ACCOUNTING(0);
    listener_close(&L);
}

/* ------------------------------------------------------------------ */
/* Unknown event types and parameters.                                 */

static void unknown_ids(void)
{
    static const uint32_t bad_types[] = { 3, 1u << 21, 1u << 27, 1u << 28, 1u << 31, 0xffffffffu, 0x0a, 0x7ffffff };
    static const uint32_t bad_params[] = { 78, 79, 127, 128, 1000, 0x80000000u, 0xffffffffu };
    const char *one[] = { "x" };
    cmev_event *ev;
    size_t i;
    open_listener();
    sync_profile();

    CHECK(cmev_event_new(0) == NULL); /* Cancelled: nothing to create */
    ev = mailbox_event("imap://h/x");
    for (i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        CHECK(cmev_event_new(bad_types[i]) == NULL);
        CHECK(!cmev_expected(bad_types[i], CMEV_PARAM_URI));
        CHECK_EQ_INT(cmev_event_set_type(ev, bad_types[i]), CMEV_ERROR_UNKNOWN_TYPE);
        CHECK_EQ_INT(cmev_event_get_type(ev), CMEV_EVENT_TYPE_MAILBOX_CREATE);
    }
    for (i = 0; i < sizeof(bad_params) / sizeof(bad_params[0]); i++) {
        uint32_t p = bad_params[i];
        CHECK_EQ_INT(cmev_event_set_string(ev, p, "x"), CMEV_ERROR_UNKNOWN_PARAM);
        CHECK_EQ_INT(cmev_event_set_bytes(ev, p, "x", 1), CMEV_ERROR_UNKNOWN_PARAM);
        CHECK_EQ_INT(cmev_event_set_uint(ev, p, 1), CMEV_ERROR_UNKNOWN_PARAM);
        CHECK_EQ_INT(cmev_event_set_json(ev, p, "{}"), CMEV_ERROR_UNKNOWN_PARAM);
        CHECK_EQ_INT(cmev_event_set_strings(ev, p, one, 1), CMEV_ERROR_UNKNOWN_PARAM);
        CHECK(!cmev_event_has(ev, p));
        CHECK(!cmev_expected(CMEV_EVENT_TYPE_MAILBOX_CREATE, p));
    }
    /* the event is intact after all that */
    CHECK_CONTAINS(send_one(ev), "{\"event\":\"MailboxCreate\",\"uri\":\"imap://h/x\",\"pid\":");

    /* cancelled (type 0): not sent, not counted as a notification */
    ev = mailbox_event("imap://h/x");
    CHECK_EQ_INT(cmev_event_set_type(ev, CMEV_EVENT_TYPE_CANCELLED), 0);
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK(listener_empty(&L));

    /* switched to a type whose group is off: counted as unsent, not enqueued */
    ev = mailbox_event("imap://h/x");
    CHECK_EQ_INT(cmev_event_set_type(ev, CMEV_EVENT_TYPE_LOGIN), 0);
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK(listener_empty(&L));
    CHECK_EQ_INT(counter(CMEV_COUNTER_UNSENT_GROUP_OFF), 1);
    CHECK_EQ_INT(counter(CMEV_COUNTER_ENQUEUED), 1);
    CHECK_ACCOUNTING(0);
    listener_close(&L);
}

/* ------------------------------------------------------------------ */
/* Invalid UTF-8: kept, each bad sequence as U+FFFD (maximal subparts,   */
/* as Rust's from_utf8_lossy and the WHATWG decoder do).                */

#define FFFD "\xef\xbf\xbd"

static void invalid_utf8(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "\x80", FFFD },                               /* lone continuation */
        { "\xc0\x80", FFFD FFFD },                      /* overlong NUL */
        { "\xed\xa0\x80", FFFD FFFD FFFD },             /* UTF-16 surrogate */
        { "a\xe2\x82", "a" FFFD },                      /* truncated at the end */
        { "\xe2\x82z", FFFD "z" },                      /* truncated in the middle */
        { "\xf5\x80", FFFD FFFD },                      /* beyond U+10FFFF */
        { "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD },    /* U+110000 */
        { "\xff\xfe", FFFD FFFD },
        { "caf\xe9 cr\xe8me", "caf" FFFD " cr" FFFD "me" }, /* Latin-1 */
        { "\xe2\x82\xac ok", "\xe2\x82\xac ok" },          /* valid stays valid */
    };
    char want[256];
    size_t i;
    const char *j;
    cmev_event *ev;
    open_listener();
    sync_profile();
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ev = mailbox_event("imap://h/x");
        CHECK_EQ_INT(cmev_event_set_string(ev, CMEV_PARAM_USER, cases[i].in), 0);
        snprintf(want, sizeof(want), "\"user\":\"%s\"", cases[i].out);
        CHECK_CONTAINS(send_one(ev), want);
    }
    /* everywhere strings enter: flags, msgids, ACL, access, uri, options */
    config("event_groups", "message flags mailbox");
    config("event_extra_params", "vnd.cmu.midset clientAddress");
    config("servername", "h\xff");
    ev = cmev_event_new(CMEV_EVENT_TYPE_FLAGS_SET);
    cmev_event_add_uid(ev, 1);
    cmev_event_set_mailbox_uri(ev, "imap://h/\xc3");
    cmev_event_add_flag(ev, "$\xfe");
    cmev_event_set_access(ev, NULL, NULL, "u\x80");
    j = send_one(ev);
    CHECK_CONTAINS(j, "\"uri\":\"imap://h/" FFFD "\"");
    CHECK_CONTAINS(j, "\"flagNames\":\"$" FFFD "\"");
    CHECK_CONTAINS(j, "\"user\":\"u" FFFD "\"");
    CHECK_CONTAINS(j, "\"serverFQDN\":\"h" FFFD "\"");
    config("event_groups", "access");
    ev = cmev_event_new(CMEV_EVENT_TYPE_LOGIN);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h");
    cmev_event_set_access(ev, "\xff;\xff", "10.0.0.1\xff;99", "u");
    j = send_one(ev);
    CHECK_CONTAINS(j, "\"serverDomain\":\"" FFFD "\",\"clientIP\"");
    CHECK_CONTAINS(j, "\"clientIP\":\"10.0.0.1" FFFD "\",\"clientPort\":99");
    config("event_groups", "message flags mailbox");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE);
    cmev_event_add_uid(ev, 1);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/x");
    cmev_event_add_msgid(ev, "<\xff@x>");
    CHECK_CONTAINS(send_one(ev), "\"vnd.cmu.midset\":[\"<" FFFD "@x>\"]");
    /* JSON text with a bad byte inside a string: repaired, then valid */
    config("event_groups", "mailbox");
    ev = mailbox_event("imap://h/x");
    CHECK_EQ_INT(cmev_event_set_json(ev, CMEV_PARAM_JMAP_STATES, "{\"a\":\"\xff\"}"), 0);
    CHECK_CONTAINS(send_one(ev), "\"vnd.fastmail.jmapStates\":{\"a\":\"" FFFD "\"}");
    /* the notifier method (first datagram field) */
    config("servername", "h");
    config("event_notifier", "l\xffg");
    ev = mailbox_event("imap://h/x");
    send_one(ev);
    CHECK(got_len > 6 && memcmp(got, "l" FFFD "g\0EVENT", 11) == 0);
    CHECK_ACCOUNTING(0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 15);
    listener_close(&L);
}

/* ------------------------------------------------------------------ */
/* Embedded NUL: kept as \u0000 when the length is given; a C string   */
/* ends at it.                                                          */

static void embedded_nul(void)
{
    static char msg[100000];
    cmev_event *ev;
    const char *j;
    open_listener();
    sync_profile();
    ev = mailbox_event("imap://h/x");
    CHECK_EQ_INT(cmev_event_set_bytes(ev, CMEV_PARAM_USER, "a\0b\0", 4), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, CMEV_PARAM_MAILBOX_ID, "c\0d"), 0);
    j = send_one(ev);
    CHECK_CONTAINS(j, "\"user\":\"a\\u0000b\\u0000\"");
    CHECK_CONTAINS(j, "\"mailboxID\":\"c\"");
    /* 100 kB of NULs as content: 600 kB escaped, cut between escapes */
    config("event_groups", "message");
    config("event_extra_params", "messageContent");
    config("event_content_inclusion_mode", "message");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(ev, 1);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    CHECK_EQ_INT(cmev_event_set_content(ev, msg, sizeof(msg), 10), 0);
    j = send_one(ev);
    CHECK(got_len > 10000 && got_len <= 65536);
    CHECK(got_len > 12 && memcmp(got + got_len - 9, "\\u0000\"}", 9) == 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_CONTENT_CUT), 1);
    CHECK_ACCOUNTING(0);
    listener_close(&L);
}

/* ------------------------------------------------------------------ */
/* 100 MB of messageContent.                                           */

static void huge_content(void)
{
    size_t huge = 100u << 20;
    char *big = malloc(huge);
    cmev_event *ev;
    double t;
    open_listener();
    setup(L.path); /* queued */
    config("event_groups", "message");
    config("event_extra_params", "messageContent");
    config("event_content_inclusion_mode", "message");
    CHECK(big != NULL);
    if (!big) return;
    memset(big, 0xff, huge); /* invalid UTF-8 too: 300 MB once repaired */

    t = now_ms();
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(ev, 1);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    CHECK_EQ_INT(cmev_event_set_content(ev, big, huge, 100), 0);
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(T(30000)), 0);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK(got_len > 1000 && got_len <= 65536);
    CHECK(got_len > 6 && memcmp(got + got_len - 6, FFFD "\"}", 6) == 0); /* whole characters */
    CHECK_EQ_INT(counter(CMEV_COUNTER_CONTENT_CUT), 1);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 1);
    printf("    100 MB content: %.0f ms to a %zd-byte datagram\n", now_ms() - t, got_len);

    /* standard mode with a size limit: left out entirely, not cut */
    config("event_content_inclusion_mode", "standard");
    config("event_content_size", "1000");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(ev, 2);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    CHECK_EQ_INT(cmev_event_set_content(ev, big, huge, (size_t)-1), 0); /* header_size past the end */
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(T(10000)), 0);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK_LACKS(got_len > 0 ? datagram_json(got, got_len) : NULL, "messageContent");
    CHECK_EQ_INT(counter(CMEV_COUNTER_CONTENT_CUT), 1);

    /* the same 100 MB in sync mode, on the caller's thread */
    config("event_content_inclusion_mode", "body");
    config("event_content_size", "0");
    config("event_delivery", "sync");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(ev, 3);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    CHECK_EQ_INT(cmev_event_set_content(ev, big, huge, 100), 0);
    free(big);
    CHECK(send_one(ev) != NULL);
    CHECK(got_len > 1000 && got_len <= 65536);
    CHECK_EQ_INT(counter(CMEV_COUNTER_CONTENT_CUT), 2);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 3);
    CHECK_ACCOUNTING(0);
    listener_close(&L);
}

/* ------------------------------------------------------------------ */
/* A million UIDs in one event.                                        */

static char *expected_uidset;
static atomic_int uidset_ok, callback_calls;

static void check_uidset_cb(const char *json, size_t len, void *rock)
{
    const char *u = strstr(json, "\"uidset\":\"");
    size_t n = strlen(expected_uidset);
    (void)rock;
    atomic_fetch_add(&callback_calls, 1);
    if (strlen(json) == len && u && strncmp(u + 10, expected_uidset, n) == 0 && u[10 + n] == '"')
        atomic_fetch_add(&uidset_ok, 1);
}

/* "1,3,5,...,1999999": 6.9 MB */
static char *alternating_uidset(int n)
{
    char *s = malloc((size_t)n * 9 + 1), *p = s;
    int i;
    for (i = 0; i < n; i++) p += sprintf(p, i ? ",%d" : "%d", 2 * i + 1);
    return s;
}

static void million_uids(void)
{
    const int n = 1000000;
    cmev_event *ev;
    const char *j;
    int i;
    open_listener();
    setup(L.path);
    config("event_groups", "message");
    config("event_extra_params", "modseq");

    /* consecutive: one range, a small event, sent */
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/INBOX");
    cmev_event_set_uint(ev, CMEV_PARAM_MODSEQ, 9);
    for (i = 1; i <= n; i++) cmev_event_add_uid(ev, (uint32_t)i);
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(T(10000)), 0);
    got_len = listener_recv(&L, got, sizeof(got));
    j = got_len > 0 ? datagram_json(got, got_len) : NULL;
    CHECK_CONTAINS(j, "\"uidset\":\"1:1000000\"");
    CHECK_LACKS(j, "modseq"); /* RFC 5423: only about one message */

    /* alternating: 6.9 MB of uidset, exact (seen whole by the callback),
     * too big for any datagram: dropped and counted */
    expected_uidset = alternating_uidset(n);
    cmev_set_notify_callback(check_uidset_cb, NULL);
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/INBOX");
    for (i = 0; i < n; i++) cmev_event_add_uid(ev, (uint32_t)(2 * i + 1));
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(T(10000)), 0);
    CHECK_EQ_INT(atomic_load(&callback_calls), 1);
    CHECK_EQ_INT(atomic_load(&uidset_ok), 1);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_TOO_BIG), 1);
    CHECK(listener_empty(&L));
    cmev_set_notify_callback(NULL, NULL);

    /* MessageNew: the first UID goes into the uri, the rest are counted */
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    for (i = 0; i < n; i++) cmev_event_add_uid(ev, (uint32_t)(2 * i + 1));
    cmev_event_set_uint(ev, CMEV_PARAM_MODSEQ, 9);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(T(10000)), 0);
    got_len = listener_recv(&L, got, sizeof(got));
    j = got_len > 0 ? datagram_json(got, got_len) : NULL;
    CHECK_CONTAINS(j, "\"uri\":\"imap://h/INBOX/;UID=1\"");
    CHECK_LACKS(j, "uidset");
    CHECK_LACKS(j, "modseq");
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 2);
    CHECK_ACCOUNTING(0);
    listener_close(&L);
}

/* The same 6.9 MB uidset to a dlist listener, where no datagram limit
 * applies: delivered whole. */
static void million_uids_dlist(void)
{
    const int n = 1000000;
    char *want;
    cmev_event *ev;
    struct dl *d;
    int i;
    setup_dlist();
    config("event_groups", "message");
    d = dl_start(DL_OK, NULL, 0, 16);
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_COPY);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/INBOX");
    cmev_event_set_string(ev, CMEV_PARAM_OLD_MAILBOX_ID, "imap://h/Old");
    for (i = 0; i < n; i++) {
        cmev_event_add_uid(ev, (uint32_t)(2 * i + 1));
        cmev_event_add_old_uid(ev, (uint32_t)(2 * i + 1));
    }
    CHECK_EQ_INT(cmev_notify(&ev, 1), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(T(20000)), 0);
    CHECK_EQ_INT(atomic_load(&d->requests), 1);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 1);
    want = alternating_uidset(n);
    {
        size_t wl = strlen(want) + 32;
        char *u = malloc(wl), *o = malloc(wl);
        snprintf(u, wl, "\"uidset\":\"%s\"", want);
        snprintf(o, wl, "\"vnd.cmu.oldUidset\":\"%s\"", want);
        CHECK(d->last && strstr(d->last, u) && strstr(d->last, o));
        free(u);
        free(o);
    }
    free(want);
    CHECK_ACCOUNTING(0);
    dl_stop(d);
}

/* ------------------------------------------------------------------ */
/* Extreme integers.                                                   */

static void extreme_integers(void)
{
    cmev_event *ev;
    const char *j;
    char err[256];
    double t;
    open_listener();
    sync_profile();
    config("event_groups", "message quota");
    config("event_extra_params", "modseq messages uidnext");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/INBOX");
    cmev_event_add_uid(ev, UINT32_MAX);
    CHECK_EQ_INT(cmev_event_set_uint(ev, CMEV_PARAM_MODSEQ, UINT64_MAX), 0);
    CHECK_EQ_INT(cmev_event_set_uint(ev, CMEV_PARAM_MESSAGES, 1ull << 63), 0);
    CHECK_EQ_INT(cmev_event_set_uint(ev, CMEV_PARAM_UIDNEXT, INT64_MAX), 0);
    j = send_one(ev);
    CHECK_CONTAINS(j, "\"modseq\":-1,");
    CHECK_CONTAINS(j, "\"messages\":-9223372036854775808,");
    CHECK_CONTAINS(j, "\"uidnext\":9223372036854775807,");
    CHECK_CONTAINS(j, "\"uidset\":\"*\"");
    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_CHANGE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/user/u");
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_STORAGE, UINT64_MAX);
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_MESSAGES, UINT64_MAX - 1);
    j = send_one(ev);
    CHECK_CONTAINS(j, "\"diskQuota\":-1,");
    CHECK_CONTAINS(j, "\"maxMessages\":-2,");
    /* the largest values the options take */
    CHECK_EQ_INT(cmev_config_set("event_content_size", "18446744073709551615", err, sizeof(err)), 0);
    CHECK_EQ_INT(cmev_config_set("event_queue_size", "4194304", err, sizeof(err)), 0);
    CHECK_EQ_INT(cmev_config_set("event_flush_timeout", "600000", err, sizeof(err)), 0);
    /* an unbounded flush with nothing queued returns at once */
    t = now_ms();
    CHECK_EQ_INT(cmev_flush(UINT32_MAX), 0);
    CHECK(now_ms() - t < T(100));
    CHECK_ACCOUNTING(0);
    listener_close(&L);
}

/* JSON text that parses but could not be written back (a number beyond
 * double, nesting deeper than the writer's parser takes): either refused
 * with CMEV_ERROR_INVALID_JSON (as jansson's json_loads refuses it in
 * stock) or written as given, never silently replaced. */
static void unrenderable_json(void)
{
    static char deep[1024];
    const char *texts[] = { "1e400", "{\"n\":-1e999}", deep };
    size_t i;
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    open_listener();
    sync_profile();
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        cmev_event *ev = mailbox_event("imap://h/x");
        int r = cmev_event_set_json(ev, CMEV_PARAM_JMAP_STATES, texts[i]);
        const char *j = send_one(ev);
        checks++;
        if (!(r == CMEV_ERROR_INVALID_JSON || (r == 0 && j && !strstr(j, "\"vnd.fastmail.jmapStates\":null")))) {
            failures++;
            fprintf(stderr, "set_json(%.20s...) returned %d and the event carries %s\n", texts[i], r,
                    j && strstr(j, "jmapStates\":null") ? "\"vnd.fastmail.jmapStates\":null" : "(see datagram)");
        }
    }
    CHECK_ACCOUNTING(0);
    listener_close(&L);
}

/* ------------------------------------------------------------------ */
/* Every invalid option value: CMEV_ERROR_INVALID_VALUE, a message      */
/* naming option and value, the option back at its default.             */

static uint32_t default_types;
static unsigned long default_expected;

/* A fingerprint of cmev_expected for every type and parameter. */
static unsigned long expected_fingerprint(void)
{
    static const uint32_t types[] = {
        1u << 0, 1u << 1, 1u << 2, 1u << 3, 1u << 4, 1u << 5, 1u << 6, 1u << 7, 1u << 8, 1u << 9,
        1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15, 1u << 16, 1u << 17, 1u << 18,
        1u << 19, 1u << 20, (1u << 3) | (1u << 21), 1u << 22, 1u << 23, 1u << 24, 1u << 25,
    };
    unsigned long h = 1469598103u;
    size_t t;
    uint32_t p;
    for (t = 0; t < sizeof(types) / sizeof(types[0]); t++)
        for (p = 0; p < CMEV_PARAM_COUNT; p++) h = (h ^ (unsigned long)cmev_expected(types[t], p)) * 16777619u;
    return h;
}

static const char *content_json(const char *mode, const char *size, const char *msg, size_t header)
{
    cmev_event *ev;
    config("event_groups", "message");
    config("event_extra_params", "messageContent timestamp");
    if (mode) config("event_content_inclusion_mode", mode);
    if (size) config("event_content_size", size);
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(ev, 1);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    cmev_event_set_content(ev, msg, strlen(msg), header);
    return send_one(ev);
}

/* Whether the option behaves as its default now. */
static int behaves_as_default(const char *option)
{
    static char big[64 * 1024 + 1];
    const char *msg = "Subject: hi\r\n\r\nbody text", *j;
    if (!strcmp(option, "event_groups")) return cmev_enabled_types() == default_types;
    if (!strcmp(option, "event_extra_params")) return expected_fingerprint() == default_expected;
    if (!strcmp(option, "event_content_inclusion_mode")) /* standard: over the size, left out */
        return (j = content_json(NULL, "4", msg, 15)) && !strstr(j, "messageContent");
    if (!strcmp(option, "event_content_size")) /* 0: no limit */
        return (j = content_json("message", NULL, msg, 15))
            && strstr(j, "\"messageContent\":\"Subject: hi\\r\\n\\r\\nbody text\"");
    if (!strcmp(option, "event_timestamp_format")) /* iso8601: ...T... */
        return (j = content_json(NULL, NULL, msg, 15)) && (j = strstr(j, "\"timestamp\":\"")) && j[23] == 'T';
    if (!strcmp(option, "event_max_datagram_size")) { /* 0: stock's rule, > 20,000 on Linux */
        memset(big, 'x', sizeof(big) - 1);
        return content_json("message", "0", big, 10) && got_len > 20000;
    }
    return -1;
}

struct bad_option {
    const char *option, *before; /* a valid non-default value set first */
    const char *bad[8];
};

static const struct bad_option bad_options[] = {
    { "event_groups", "access", { "message bogus", "MESSAGE", "message,mailbox", "\xff", NULL } },
    { "event_extra_params", "service", { "timestamp nope", "Timestamp", "uidset", "\xff", NULL } },
    { "event_content_inclusion_mode", "body", { "full", "", "Standard", "standard extra", NULL } },
    { "event_content_size", "4", { "", "-1", "12x", "1KB", "0x10", "18446744073709551616", "lots", NULL } },
    { "event_timestamp_format", "epoch", { "unix", "", "ISO8601", NULL } },
    { "event_max_datagram_size", "2000", { "10", "63", "65537", "-1", "x", "99999999999999999999", NULL } },
    { "event_delivery", "sync", { "async", "", "SYNC", NULL } },
    { "event_queue_size", "16", { "8", "15", "4194305", "0", "-1", "lots", NULL } },
    { "event_queue_overflow", "block", { "drop", "", "block-forever", NULL } },
    { "event_queue_block_timeout", "5", { "-5", "60001", "x", NULL } },
    { "event_queue_max_age", "1", { "0", "86401", "x", NULL } },
    { "event_flush_timeout", "10", { "-1", "600001", "soon", NULL } },
    { "event_dlist_timeout", "100", { "0", "600001", "x", NULL } },
};

static void invalid_options(void)
{
    char err[512], shown[64];
    size_t i, k;
    open_listener();
    cmev_config_reset();
    config("event_notifier", "log");
    default_types = cmev_enabled_types();
    default_expected = expected_fingerprint();
    for (i = 0; i < sizeof(bad_options) / sizeof(bad_options[0]); i++) {
        const struct bad_option *o = &bad_options[i];
        for (k = 0; o->bad[k]; k++) {
            int r, d;
            sync_profile();
            config("servername", "kept");
            config(o->option, o->before);
            r = cmev_config_set(o->option, o->bad[k], err, sizeof(err));
            CHECK_EQ_INT(r, CMEV_ERROR_INVALID_VALUE);
            snprintf(shown, sizeof(shown), "'%s'", strcmp(o->bad[k], "\xff") ? o->bad[k] : FFFD);
            checks++;
            if (!strstr(err, o->option) || !strstr(err, shown)) {
                failures++;
                fprintf(stderr, "%s=%s: message does not name both: %s\n", o->option, o->bad[k], err);
            }
            d = behaves_as_default(o->option);
            checks++;
            if (d == 0) {
                failures++;
                fprintf(stderr, "%s after '%s' is not at its default\n", o->option, o->bad[k]);
            }
            if (d == 1) { /* the rest of the configuration untouched */
                cmev_event *ev;
                config("event_groups", "mailbox");
                ev = mailbox_event("imap://h/x");
                CHECK_CONTAINS(send_one(ev), "\"serverFQDN\":\"kept\"");
            }
        }
    }
    /* options that take any string have no invalid value */
    CHECK_EQ_INT(cmev_config_set("event_notifier", "\xff\x01 x", err, sizeof(err)), 0);
    CHECK_EQ_INT(cmev_config_set("event_exclude_flags", "\\Seen \xff", err, sizeof(err)), 0);
    CHECK_EQ_INT(cmev_config_set("event_exclude_specialuse", "", err, sizeof(err)), 0);
    CHECK_EQ_INT(cmev_config_set("servername", "\t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cmev_config_set("service", "", err, sizeof(err)), 0);
    CHECK_EQ_INT(cmev_config_set("configdirectory", "", err, sizeof(err)), 0);
    listener_close(&L);
}

/* Options whose default shows only over time or in the queue: one child
 * each, run side by side. `absent` is a path nobody listens on. */
static char absent[160];

static void default_delivery(void)
{
    setup(absent);
    config("event_delivery", "sync");
    CHECK_EQ_INT(cmev_config_set("event_delivery", "async", NULL, 0), CMEV_ERROR_INVALID_VALUE);
    emit(0, 0);
    /* queued (the default): kept for the absent receiver, not dropped */
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), 0);
    CHECK_EQ_INT(cmev_flush(T(50)), 1);
    CHECK_ACCOUNTING(1);
}

static void default_queue_size(void)
{
    int i;
    uint64_t o;
    setup(absent);
    config("event_queue_size", "16");
    CHECK_EQ_INT(cmev_config_set("event_queue_size", "8", NULL, 0), CMEV_ERROR_INVALID_VALUE);
    config("event_queue_overflow", "drop-newest");
    for (i = 0; i < 20000; i++) emit(0, i);
    o = counter(CMEV_COUNTER_DROPPED_OVERFLOW);
    /* 16384 in the ring, up to 1024 taken out by the sender */
    CHECK(o <= 20000 - 16384 && o >= 20000 - 16384 - 1024);
    CHECK_EQ_INT(counter(CMEV_COUNTER_QUEUE_HIGH_WATER), 16384);
    CHECK_ACCOUNTING(cmev_flush(0));
}

static void default_overflow(void)
{
    struct rx *r = rx_new(1, 200);
    int i;
    setup(absent);
    config("notifysocket", path);
    unlink(path);
    config("event_queue_size", "16");
    config("event_queue_overflow", "block");
    CHECK_EQ_INT(cmev_config_set("event_queue_overflow", "drop", NULL, 0), CMEV_ERROR_INVALID_VALUE);
    for (i = 0; i < 200; i++) {
        double t = now_ms();
        emit(0, i);
        CHECK(now_ms() - t < T(50)); /* drop-oldest never waits */
    }
    rx_start(r, 0);
    CHECK_EQ_INT(cmev_flush(T(10000)), 0);
    CHECK(rx_wait_total(r, 200 - (long)counter(CMEV_COUNTER_DROPPED_OVERFLOW), 5000));
    CHECK(counter(CMEV_COUNTER_DROPPED_OVERFLOW) > 0);
    CHECK_EQ_INT(rx_count_seen(r, 0, 200), 200 - (long)counter(CMEV_COUNTER_DROPPED_OVERFLOW));
    CHECK(r->seen[199] == 1); /* the newest kept */
    CHECK_EQ_INT(atomic_load(&r->dupes), 0);
    CHECK_ACCOUNTING(0);
    rx_stop(r);
    rx_free(r);
}

static void default_block_timeout(void)
{
    double worst = 0;
    int i;
    setup(absent);
    config("event_queue_size", "16");
    config("event_queue_overflow", "block");
    config("event_queue_block_timeout", "5");
    CHECK_EQ_INT(cmev_config_set("event_queue_block_timeout", "-5", NULL, 0), CMEV_ERROR_INVALID_VALUE);
    /* once the sender backs off for longer than the block timeout, a
     * notify on the full queue waits exactly that long, then drops */
    for (i = 0; i < 5000 && counter(CMEV_COUNTER_DROPPED_OVERFLOW) == 0; i++) {
        worst = now_ms();
        emit(0, i);
        worst = now_ms() - worst;
    }
    CHECK(worst >= 90 && worst < T(1000)); /* 100 ms, the default */
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_OVERFLOW), 1);
    CHECK_ACCOUNTING(cmev_flush(0));
}

static void default_max_age(void)
{
    int i;
    setup(absent);
    config("event_queue_max_age", "1");
    CHECK_EQ_INT(cmev_config_set("event_queue_max_age", "0", NULL, 0), CMEV_ERROR_INVALID_VALUE);
    for (i = 0; i < 5; i++) emit(0, i);
    usleep(1600000);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_EXPIRED), 0); /* 300 s, not 1 */
    CHECK_EQ_INT(cmev_flush(0), 5);
    CHECK_ACCOUNTING(5);
}

static void default_flush_timeout(void)
{
    double t = now_ms();
    int st;
    pid_t p = fork();
    if (p == 0) {
        setup(absent);
        config("event_flush_timeout", "10");
        cmev_config_set("event_flush_timeout", "soon", NULL, 0);
        emit(0, 0);
        exit(0); /* the atexit flush waits event_flush_timeout */
    }
    waitpid(p, &st, 0);
    t = now_ms() - t;
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(t >= 1900 && t < T(6000)); /* 2000 ms, the default */
}

static void default_dlist_timeout(void)
{
    struct dl *d = dl_start(DL_NO_READ, NULL, 0, 16);
    double t = now_ms();
    setup_dlist();
    config("event_dlist_timeout", "100");
    CHECK_EQ_INT(cmev_config_set("event_dlist_timeout", "0", NULL, 0), CMEV_ERROR_INVALID_VALUE);
    emit(0, 0);
    CHECK_EQ_INT(cmev_flush(T(10000)), 0);
    t = now_ms() - t;
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_TIMEOUT), 1);
    CHECK(t >= 4900 && t < T(8000)); /* 5000 ms, the default */
    CHECK_ACCOUNTING(0);
    dl_stop(d);
}

/* ------------------------------------------------------------------ */
/* notifysocket paths: too long, a file, a directory, missing,          */
/* forbidden.                                                           */

static char long_ok[160], long_bad[160];

static void long_paths(void)
{
    struct listener l;
    char dest[200];
    int fd;
    /* 107 bytes, the most sun_path holds: works */
    fd = bind_dgram(long_ok, 0);
    setup(long_ok);
    emit(0, 0);
    CHECK_EQ_INT(cmev_flush(T(5000)), 0);
    strcpy(l.path, long_ok);
    l.fd = fd;
    CHECK(listener_recv(&l, got, sizeof(got)) > 0);
    close(fd);
    unlink(long_ok);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 1);

    /* 108 bytes: refused (stock would cut it and send elsewhere), counted,
     * with an errno as the README promises */
    config("notifysocket", long_bad);
    emit(0, 1);
    CHECK_EQ_INT(cmev_flush(T(5000)), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), 1);
    CHECK_EQ_INT(counter(CMEV_COUNTER_LAST_ERRNO), ENAMETOOLONG);
    config("event_delivery", "sync");
    emit(0, 2);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), 2);
    /* the default path built from a long configdirectory */
    config("event_delivery", "queued");
    config("notifysocket", "");
    snprintf(dest, sizeof(dest), "%.*s", (int)(strlen(long_bad) - strlen("/socket/notify")), long_bad);
    config("configdirectory", dest);
    emit(0, 3);
    CHECK_EQ_INT(cmev_flush(T(5000)), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), 3);
    /* dlist: too long, or empty */
    snprintf(dest, sizeof(dest), "dlist:%s", long_bad);
    config("notifysocket", dest);
    emit(0, 4);
    config("notifysocket", "dlist:");
    emit(0, 5);
    CHECK_EQ_INT(cmev_flush(T(5000)), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_ERROR), 2);
    CHECK_ACCOUNTING(0);
}

enum kind { MISSING, REGULAR_FILE, DIRECTORY, FORBIDDEN_SOCKET, FORBIDDEN_DIR };

/* Make `p` (under the test directory) what the case wants; returns the fd
 * of a socket to keep open, or -1. */
static int make_path(enum kind k, char *p, size_t size, const char *name)
{
    char sub[160];
    int fd = -1;
    snprintf(p, size, "%s/%s", dir, name);
    switch (k) {
    case MISSING:
        break;
    case REGULAR_FILE:
        fd = open(p, O_CREAT | O_WRONLY, 0666);
        close(fd);
        fd = -1;
        break;
    case DIRECTORY:
        mkdir(p, 0777);
        break;
    case FORBIDDEN_SOCKET:
        fd = bind_dgram(p, 0);
        chmod(p, 0600);
        break;
    case FORBIDDEN_DIR:
        snprintf(sub, sizeof(sub), "%s/%s", dir, name);
        mkdir(sub, 0700);
        snprintf(p, size, "%s/notify", sub);
        fd = bind_dgram(p, 0);
        chmod(p, 0666);
        break;
    }
    return fd;
}

static void become_nobody(void)
{
    if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
        perror("setuid nobody");
        exit(2);
    }
}

/* What each kind of bad path must give: queued mode keeps events for an
 * absent receiver (ENOENT, ECONNREFUSED) until max age, and drops at once
 * what can never work (EACCES); sync mode drops at once, with the errno. */
struct bad_path {
    enum kind kind;
    int dlist;
};

static void bad_path_case(void)
{
    const struct bad_path *bp = this_case->arg;
    enum kind k = bp->kind;
    int dlist = bp->dlist;
    char p[200], dest[220], name[32];
    int expect_errno = k == MISSING ? ENOENT : (k == FORBIDDEN_SOCKET || k == FORBIDDEN_DIR) ? EACCES : ECONNREFUSED;
    int absent_like = expect_errno != EACCES;
    int fd, i;
    snprintf(name, sizeof(name), "k%d-%d", (int)k, dlist);
    fd = make_path(k, p, sizeof(p), name);
    if (k == FORBIDDEN_SOCKET || k == FORBIDDEN_DIR) become_nobody();
    snprintf(dest, sizeof(dest), "%s%s", dlist ? "dlist:" : "", p);

    /* queued */
    setup(dest);
    config("event_queue_max_age", "1");
    for (i = 0; i < 5; i++) emit(0, i);
    if (absent_like) {
        usleep(300000);
        CHECK(counter(CMEV_COUNTER_RETRIED) > 0);
        CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_EXPIRED), 0);
        CHECK_EQ_INT(cmev_flush(T(4000)), 0);
        CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_EXPIRED), 5);
    } else {
        CHECK_EQ_INT(cmev_flush(T(4000)), 0);
        CHECK_EQ_INT(counter(dlist ? CMEV_COUNTER_DROPPED_DLIST_ERROR : CMEV_COUNTER_DROPPED_SEND_ERROR), 5);
        CHECK_EQ_INT(counter(CMEV_COUNTER_LAST_ERRNO), expect_errno);
    }
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT), 0);
    CHECK_ACCOUNTING(0);

    /* sync: dropped at once, counted, with the errno for datagrams */
    config("event_delivery", "sync");
    emit(0, 5);
    if (dlist) {
        CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_ERROR), absent_like ? 1 : 6);
    } else {
        CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), absent_like ? 1 : 6);
        CHECK_EQ_INT(counter(CMEV_COUNTER_LAST_ERRNO), expect_errno);
    }
    CHECK_ACCOUNTING(0);
    if (fd >= 0) close(fd);
}

/* Each kind of path, for datagrams and for dlist. */
static void run_bad_paths(void)
{
    static const char *const what[] = {
        [MISSING] = "missing",
        [REGULAR_FILE] = "a regular file",
        [DIRECTORY] = "a directory",
        [FORBIDDEN_SOCKET] = "forbidden (nobody, 0600 socket)",
        [FORBIDDEN_DIR] = "forbidden (nobody, 0700 directory)",
    };
    enum { KINDS = sizeof(what) / sizeof(what[0]) };
    char names[2 * KINDS][64];
    struct bad_path args[2 * KINDS];
    struct test_case cases[2 * KINDS];
    int i;
    for (i = 0; i < 2 * KINDS; i++) {
        args[i].kind = (enum kind)(i % KINDS);
        args[i].dlist = i >= KINDS;
        snprintf(names[i], sizeof(names[i]), "%s%s", args[i].dlist ? "dlist: " : "notifysocket ", what[i % KINDS]);
        cases[i] = (struct test_case){ names[i], bad_path_case, 30, &args[i] };
    }
    run_side_by_side(cases, 2 * KINDS, 2 * KINDS);
}

/* ------------------------------------------------------------------ */
/* dlist peers that misbehave.                                          */

struct peer {
    enum dl_mode mode;
    const char *answer;
    size_t len;
    cmev_counter expect;
    int sync, big, events;
};

static void dlist_peer_case(void)
{
    const struct peer *pc = this_case->arg;
    struct dl *d = dl_start(pc->mode, pc->answer, pc->len, 16);
    double worst = 0, t0 = now_ms();
    char *content = NULL, timeout[16];
    int i;
    setup_dlist();
    /* scaled like the bounds below, so that a caller that waited for the
     * peer stays distinguishable from one that does not on a slow run */
    snprintf(timeout, sizeof(timeout), "%u", T(300));
    config("event_dlist_timeout", timeout);
    if (pc->sync) config("event_delivery", "sync");
    if (pc->big) { /* 4 MB: more than any socket buffer takes without reading */
        content = malloc(4u << 20);
        memset(content, 'c', 4u << 20);
        config("event_groups", "message mailbox");
        config("event_extra_params", "messageContent");
    }
    for (i = 0; i < pc->events; i++) {
        double t = now_ms();
        if (pc->big) {
            cmev_event *ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
            cmev_event_add_uid(ev, (uint32_t)i + 1);
            cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
            cmev_event_set_content(ev, content, 4u << 20, 10);
            cmev_notify(&ev, 1);
            cmev_event_free(ev);
        } else {
            emit(0, i);
        }
        keep_worst(&worst, t);
    }
    if (!pc->sync) CHECK(worst < T(100)); /* the caller never waits for the peer */
    else CHECK(worst < T(300) + T(200)); /* sync: bounded by event_dlist_timeout */
    CHECK_EQ_INT(cmev_flush(T(10000)), 0);
    CHECK_EQ_INT(counter(pc->expect), pc->events);
    t0 = now_ms() - t0;
    CHECK(t0 < T(pc->events * (300 + 200) + 1000)); /* each exchange within its timeout */
    if (t0 >= T(pc->events * (300 + 200) + 1000) || worst >= T(300) + T(200))
        fprintf(stderr, "    %d exchange(s) with event_dlist_timeout %s ms took %.0f ms, the longest notify %.0f ms\n",
                pc->events, timeout, t0, worst);
    CHECK_ACCOUNTING(0);
    free(content);
    dl_stop(d);
}

static void dlist_never_accepts(void)
{
    struct sockaddr_un sun;
    int l = socket(AF_UNIX, SOCK_STREAM, 0), hog = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    double t = now_ms();
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    unlink(path);
    /* a backlog of 0, taken by one connection nobody accepts */
    CHECK(bind(l, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(l, 0) == 0);
    CHECK(connect(hog, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    setup_dlist();
    config("event_dlist_timeout", "200");
    emit(0, 0);
    emit(0, 1);
    CHECK_EQ_INT(cmev_flush(T(5000)), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_DLIST_TIMEOUT), 2);
    CHECK(now_ms() - t < T(2000));
    CHECK_ACCOUNTING(0);
    close(hog);
    close(l);
    unlink(path);
}

/* ------------------------------------------------------------------ */
/* A datagram receiver that stops reading (tiny SO_RCVBUF, never reads). */

/* n events to it with `options` (name, value, ..., NULL) on top of setup(),
 * stopping once two sends have failed (sync mode drops at once); returns
 * the longest notify. *fd is the receiver: it stays bound, unread, until
 * the case closes it. */
static double stall(int *fd, int n, const char *const *options)
{
    double worst = 0;
    int i;
    *fd = bind_dgram(path, 1);
    setup(path);
    for (; *options; options += 2) config(options[0], options[1]);
    for (i = 0; i < n && counter(CMEV_COUNTER_DROPPED_SEND_ERROR) < 2; i++) emit_timed(0, i, &worst);
    return worst;
}

static void stalled_queued(void)
{
    static const char *const options[] = { "event_queue_max_age", "1", NULL };
    int fd;
    CHECK(stall(&fd, 200, options) < T(50));
    CHECK_EQ_INT(cmev_flush(T(5000)), 0);
    CHECK(counter(CMEV_COUNTER_SENT) > 0 && counter(CMEV_COUNTER_SENT) < 200);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT) + counter(CMEV_COUNTER_DROPPED_EXPIRED), 200);
    CHECK(counter(CMEV_COUNTER_RETRIED) > 0);
    printf("    stalled receiver, queued: %llu sent (what its queue took), %llu expired, %llu retries\n",
           (unsigned long long)counter(CMEV_COUNTER_SENT), (unsigned long long)counter(CMEV_COUNTER_DROPPED_EXPIRED),
           (unsigned long long)counter(CMEV_COUNTER_RETRIED));
    CHECK_ACCOUNTING(0);
    close(fd);
}

static void stalled_sync(void)
{
    static const char *const options[] = { "event_delivery", "sync", NULL };
    int fd;
    double worst = stall(&fd, 100, options);
    CHECK(counter(CMEV_COUNTER_SENT) > 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), 2);
    CHECK_EQ_INT(counter(CMEV_COUNTER_LAST_ERRNO), EAGAIN);
    CHECK(worst >= 400 && worst < T(1500)); /* bounded by the 500 ms send timeout */
    CHECK_ACCOUNTING(0);
    close(fd);
}

static void stalled_block(void)
{
    static const char *const options[] = {
        "event_queue_size", "16", "event_queue_overflow", "block", "event_queue_block_timeout", "50",
        "event_queue_max_age", "1", NULL,
    };
    int fd;
    CHECK(stall(&fd, 600, options) < T(50 + 200)); /* never longer than the block timeout */
    CHECK_EQ_INT(cmev_flush(T(5000)), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_SENT) + counter(CMEV_COUNTER_DROPPED_EXPIRED)
                 + counter(CMEV_COUNTER_DROPPED_OVERFLOW), 600);
    CHECK_ACCOUNTING(0);
    close(fd);
}

/* ------------------------------------------------------------------ */

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct test_case first[] = {
    { "NULL for every pointer", null_pointers, 30, NULL },
    { "unknown event types and parameters", unknown_ids, 30, NULL },
    { "invalid UTF-8 everywhere strings enter", invalid_utf8, 30, NULL },
    { "embedded NUL", embedded_nul, 30, NULL },
    { "100 MB messageContent", huge_content, 120, NULL },
    { "1,000,000 UIDs in one event", million_uids, 120, NULL },
    { "1,000,000 UIDs to a dlist listener", million_uids_dlist, 120, NULL },
    { "u64::MAX and other extreme integers", extreme_integers, 30, NULL },
    { "JSON values that cannot be written back", unrenderable_json, 30, NULL },
    { "every invalid option value (fast observers)", invalid_options, 60, NULL },
}, slow_defaults[] = {
    { "bad event_delivery -> queued", default_delivery, 30, NULL },
    { "bad event_queue_size -> 16384", default_queue_size, 30, NULL },
    { "bad event_queue_overflow -> drop-oldest", default_overflow, 30, NULL },
    { "bad event_queue_block_timeout -> 100 ms", default_block_timeout, 30, NULL },
    { "bad event_queue_max_age -> 300 s", default_max_age, 30, NULL },
    { "bad event_flush_timeout -> 2000 ms", default_flush_timeout, 30, NULL },
    { "bad event_dlist_timeout -> 5000 ms", default_dlist_timeout, 30, NULL },
}, long_path[] = {
    { "notifysocket longer than sun_path", long_paths, 30, NULL },
};

#define PEER(name, ...) { name, dlist_peer_case, 30, &(const struct peer){ __VA_ARGS__ } }
static const struct test_case peers[] = {
    PEER("dlist peer answers OK (control)", DL_OK, NULL, 0, CMEV_COUNTER_SENT, 0, 0, 3),
    PEER("dlist peer answers OK then more", DL_ANSWER, "OK\r\nNO\r\n", 8, CMEV_COUNTER_SENT, 0, 0, 3),
    PEER("dlist peer answers control bytes", DL_ANSWER, "\x01\x02garbage\r\n", 11, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer answers NO", DL_ANSWER, "NO %(ERROR failed)\r\n", 20, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer answers an empty line", DL_ANSWER, "\r\n", 2, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer answers NUL bytes", DL_ANSWER, "OK\0\0\r\n", 6, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer answers OK without CRLF, closes", DL_ANSWER, "OK", 2, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer closes at once", DL_CLOSE_EARLY, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer reads, closes without answer", DL_READ_CLOSE, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer sends forever, never CRLF", DL_FLOOD, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_ERROR, 0, 0, 3),
    PEER("dlist peer trickles, never CRLF", DL_TRICKLE, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_TIMEOUT, 0, 0, 3),
    PEER("dlist peer never reads a 4 MB event", DL_NO_READ, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_TIMEOUT, 0, 1, 3),
    PEER("dlist peer closes at once, 4 MB event, sync", DL_CLOSE_EARLY, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_ERROR, 1, 1, 3),
    PEER("dlist peer floods, sync", DL_FLOOD, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_ERROR, 1, 0, 3),
    PEER("dlist peer never reads a 4 MB event, sync", DL_NO_READ, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_TIMEOUT, 1, 1, 3),
    PEER("dlist peer reads a 4 MB event slowly", DL_SLOW_READ, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_TIMEOUT, 0, 1, 1),
    PEER("dlist peer reads a 4 MB event slowly, sync", DL_SLOW_READ, NULL, 0, CMEV_COUNTER_DROPPED_DLIST_TIMEOUT, 1, 1, 1),
};

static const struct test_case last[] = {
    { "dlist peer never accepts (backlog full)", dlist_never_accepts, 30, NULL },
    { "datagram receiver stalls, queued", stalled_queued, 30, NULL },
    { "datagram receiver stalls, sync", stalled_sync, 30, NULL },
    { "datagram receiver stalls, block policy", stalled_block, 30, NULL },
};

int main(void)
{
    double t0 = suite_start("cmev-hostile");
    snprintf(absent, sizeof(absent), "%s/nobody-listens", dir);
    /* 107 and 108 bytes */
    snprintf(long_ok, sizeof(long_ok), "%s/%0*d", dir, (int)(107 - strlen(dir) - 1), 0);
    snprintf(long_bad, sizeof(long_bad), "%s/%0*d", dir, (int)(108 - strlen(dir) - 1), 0);

    run_cases(first, N(first));
    run_side_by_side(slow_defaults, N(slow_defaults), N(slow_defaults));
    run_cases(long_path, N(long_path));
    run_bad_paths();
    run_side_by_side(peers, N(peers), 8);
    run_cases(last, N(last));
    return suite_end("test_hostile", t0);
}
