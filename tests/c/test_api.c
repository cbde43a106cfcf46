/* The C ABI driven the way the Cyrus adapter drives it: every event type,
 * every option, exact datagram bytes, and hostile input. */
#include "harness.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

static struct listener L;
static char got[1 << 20];
static ssize_t got_len;
static int pid;

/* Reset to a deterministic profile: all groups, no extra parameters. */
static void base_config(void)
{
    cmev_config_reset();
    config("event_notifier", "log");
    config("event_groups", "message quota flags access mailbox subscription calendar applepushservice");
    config("event_extra_params", "");
    config("servername", "h");
    config("service", "imap");
    config("notifysocket", L.path);
}

/* Notify one event, free it, and compare the datagram with `json` (the
 * envelope is checked too). "%d" in json stands for our pid. */
static void expect_one(cmev_event *ev, const char *json_fmt)
{
    char want[8192], json[8192];
    size_t wl;

    snprintf(json, sizeof(json), json_fmt, pid);
    wl = (size_t)snprintf(want, sizeof(want), "log%cEVENT%c%c%c%c0%c%s", 0, 0, 0, 0, 0, 0, json) + 1;
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    checks++;
    if (got_len != (ssize_t)wl || memcmp(got, want, wl) != 0) {
        failures++;
        fprintf(stderr, "datagram mismatch\n  want: %s\n  got:  %s\n", json,
                got_len > 0 ? datagram_json(got, got_len) : "(nothing)");
    }
}

static void expect_nothing(void)
{
    checks++;
    if (!listener_empty(&L)) {
        failures++;
        got_len = listener_recv(&L, got, sizeof(got));
        fprintf(stderr, "unexpected datagram: %s\n", datagram_json(got, got_len));
    }
}

static cmev_event *mailbox_event(uint32_t type)
{
    cmev_event *ev = cmev_event_new(type);
    CHECK(ev != NULL);
    cmev_event_set_string(ev, CMEV_PARAM_MAILBOX_ID, "abc");
    cmev_event_set_mailbox_uri(ev, "imap://h/user/u/Box;UIDVALIDITY=7");
    cmev_event_set_string(ev, CMEV_PARAM_MBTYPE, "e");
    cmev_event_set_string(ev, CMEV_PARAM_MAILBOX_ACL, "u\tlrs\t");
    cmev_event_set_access(ev, NULL, NULL, "u");
    return ev;
}

static cmev_event *message_event(uint32_t type, const uint32_t *uids, int n)
{
    cmev_event *ev = cmev_event_new(type);
    int i;
    CHECK(ev != NULL);
    for (i = 0; i < n; i++) cmev_event_add_uid(ev, uids[i]);
    cmev_event_set_mailbox_uri(ev, "imap://h/user/u;UIDVALIDITY=7");
    cmev_event_set_access(ev, NULL, NULL, "u");
    return ev;
}

#define MBX_TAIL "\"pid\":%d,\"user\":\"u\",\"vnd.cmu.mbtype\":\"e\",\"serverFQDN\":\"h\",\"vnd.cmu.mailboxACL\":\"u\\tlrs\\t\"}"
#define MBX_TAIL_VISIBLE(users) "\"pid\":%d,\"user\":\"u\",\"vnd.cmu.mbtype\":\"e\",\"serverFQDN\":\"h\",\"vnd.cmu.mailboxACL\":\"u\\tlrs\\t\",\"vnd.cmu.visibleUsers\":\"" users "\"}"
#define MBX_HEAD "\"mailboxID\":\"abc\",\"uri\":\"imap://h/user/u/Box;UIDVALIDITY=7\","

static void test_mailbox_events(void)
{
    cmev_event *ev;
    base_config();
    expect_one(mailbox_event(CMEV_EVENT_TYPE_MAILBOX_CREATE), "{\"event\":\"MailboxCreate\"," MBX_HEAD MBX_TAIL);
    expect_one(mailbox_event(CMEV_EVENT_TYPE_MAILBOX_DELETE), "{\"event\":\"MailboxDelete\"," MBX_HEAD MBX_TAIL);
    expect_one(mailbox_event(CMEV_EVENT_TYPE_MAILBOX_MODSEQ), "{\"event\":\"MailboxModseq\"," MBX_HEAD MBX_TAIL);

    ev = mailbox_event(CMEV_EVENT_TYPE_MAILBOX_RENAME);
    cmev_event_set_string(ev, CMEV_PARAM_OLD_MAILBOX_ID, "imap://h/user/u/Old;UIDVALIDITY=6");
    expect_one(ev, "{\"event\":\"MailboxRename\",\"oldMailboxID\":\"imap://h/user/u/Old;UIDVALIDITY=6\"," MBX_HEAD MBX_TAIL);

    ev = mailbox_event(CMEV_EVENT_TYPE_ACL_CHANGE);
    cmev_event_set_acl(ev, "bob", "lrs");
    expect_one(ev, "{\"event\":\"AclChange\"," MBX_HEAD
               "\"pid\":%d,\"aclSubject\":\"bob\",\"aclRights\":\"lrs\",\"user\":\"u\",\"vnd.cmu.mbtype\":\"e\",\"serverFQDN\":\"h\",\"vnd.cmu.mailboxACL\":\"u\\tlrs\\t\"}");
    ev = mailbox_event(CMEV_EVENT_TYPE_ACL_CHANGE);
    cmev_event_set_acl(ev, "bob", NULL); /* DELETEACL: no aclRights, not incomplete */
    {
        uint64_t before = counter(CMEV_COUNTER_INCOMPLETE);
        expect_one(ev, "{\"event\":\"AclChange\"," MBX_HEAD
                   "\"pid\":%d,\"aclSubject\":\"bob\",\"user\":\"u\",\"vnd.cmu.mbtype\":\"e\",\"serverFQDN\":\"h\",\"vnd.cmu.mailboxACL\":\"u\\tlrs\\t\"}");
        CHECK_EQ_INT(counter(CMEV_COUNTER_INCOMPLETE), before);
    }

    ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_SUBSCRIBE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/user/u/Box");
    cmev_event_set_access(ev, NULL, NULL, "u");
    expect_one(ev, "{\"event\":\"MailboxSubscribe\",\"uri\":\"imap://h/user/u/Box\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_UNSUBSCRIBE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/user/u/Box");
    cmev_event_set_access(ev, NULL, NULL, "u");
    expect_one(ev, "{\"event\":\"MailboxUnSubscribe\",\"uri\":\"imap://h/user/u/Box\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
}

static void test_message_events(void)
{
    static const uint32_t one[] = { 5 }, two[] = { 1, 2 }, mixed[] = { 1, 2, 3, 5, 9, 8 };
    cmev_event *ev;
    base_config();

    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_NEW, one, 1);
    expect_one(ev, "{\"event\":\"MessageNew\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7/;UID=5\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_APPEND, two, 2);
    expect_one(ev, "{\"event\":\"MessageAppend\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7/;UID=1\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_NEW_CALENDAR, one, 1);
    expect_one(ev, "{\"event\":\"MessageNew\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7/;UID=5\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");

    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, mixed, 6);
    expect_one(ev, "{\"event\":\"MessageExpunge\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"1:3,5,9,8\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPIRE, one, 1);
    expect_one(ev, "{\"event\":\"MessageExpire\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"5\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");

    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_COPY, two, 2);
    cmev_event_set_string(ev, CMEV_PARAM_OLD_MAILBOX_ID, "imap://h/user/u/A;UIDVALIDITY=3");
    cmev_event_add_old_uid(ev, 4);
    cmev_event_add_old_uid(ev, 6);
    expect_one(ev, "{\"event\":\"vnd.cmu.MessageCopy\",\"oldMailboxID\":\"imap://h/user/u/A;UIDVALIDITY=3\",\"vnd.cmu.oldUidset\":\"4,6\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"1:2\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_MOVE, one, 1);
    cmev_event_set_string(ev, CMEV_PARAM_OLD_MAILBOX_ID, "imap://h/user/u/A;UIDVALIDITY=3");
    cmev_event_add_old_uid(ev, 9);
    expect_one(ev, "{\"event\":\"vnd.cmu.MessageMove\",\"oldMailboxID\":\"imap://h/user/u/A;UIDVALIDITY=3\",\"vnd.cmu.oldUidset\":\"9\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"5\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");

    /* no UID: nothing to report */
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, NULL, 0);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    /* MessageNew without uri */
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(ev, 1);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    expect_nothing();
}

static void test_flag_events(void)
{
    static const uint32_t u7[] = { 7 }, u4[] = { 4 };
    const char *mixed[] = { "\\Deleted", "\\Seen", "$Label4" };
    const char *answered[] = { "\\Answered" };
    const char *seen[] = { "\\Seen" };
    cmev_event *ev, *q[2];
    int i;
    base_config();

    ev = message_event(CMEV_EVENT_TYPE_FLAGS_SET, u7, 1);
    cmev_event_add_flags(ev, mixed, 3);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    {
        static const char *const want[] = {
            "{\"event\":\"MessageTrash\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"7\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}",
            "{\"event\":\"MessageRead\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"7\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}",
            "{\"event\":\"FlagsSet\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"7\",\"flagNames\":\"$Label4\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}",
        };
        for (i = 0; i < 3; i++) {
            char w[1024];
            snprintf(w, sizeof(w), want[i], pid);
            got_len = listener_recv(&L, got, sizeof(got));
            CHECK(got_len > 0 && strcmp(datagram_json(got, got_len), w) == 0);
        }
    }

    /* FlagsClear with \Seen overtakes the FlagsSet queued before it */
    q[0] = message_event(CMEV_EVENT_TYPE_FLAGS_SET, u4, 1);
    cmev_event_add_flags(q[0], answered, 1);
    q[1] = message_event(CMEV_EVENT_TYPE_FLAGS_CLEAR, u4, 1);
    cmev_event_add_flags(q[1], seen, 1);
    CHECK(cmev_notify(q, 2) == 0);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK(got_len > 0 && strstr(datagram_json(got, got_len), "\"event\":\"FlagsClear\"") != NULL);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK(got_len > 0 && strstr(datagram_json(got, got_len), "\"event\":\"FlagsSet\"") != NULL);
    cmev_event_free(q[0]);
    cmev_event_free(q[1]);
    /* the same event twice in one queue is refused */
    q[0] = q[1] = message_event(CMEV_EVENT_TYPE_FLAGS_SET, u4, 1);
    CHECK_EQ_INT(cmev_notify(q, 2), CMEV_ERROR_INVALID_VALUE);
    cmev_event_free(q[0]);

    /* exclude flags: a STORE of only excluded flags sends nothing */
    config("event_exclude_flags", "\\seen $junk");
    ev = message_event(CMEV_EVENT_TYPE_FLAGS_SET, u4, 1);
    {
        const char *f[] = { "\\Seen", "$Junk" };
        cmev_event_add_flags(ev, f, 2);
    }
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    expect_nothing();
    /* the single-flag form ignores event_exclude_flags, as stock */
    ev = message_event(CMEV_EVENT_TYPE_FLAGS_CLEAR, u4, 1);
    cmev_event_add_flag(ev, "$Junk");
    cmev_event_add_flag(ev, "$JUNK");
    expect_one(ev, "{\"event\":\"FlagsClear\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"uidset\":\"4\",\"flagNames\":\"$Junk\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
}

static void test_access_quota_calendar_aps(void)
{
    cmev_event *ev;
    const char *recipients[] = { "a@x", "b@x" };
    base_config();

    ev = cmev_event_new(CMEV_EVENT_TYPE_LOGIN);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h");
    cmev_event_set_access(ev, "127.0.0.1;143", "127.0.0.1;5555", "u");
    expect_one(ev, "{\"event\":\"Login\",\"serverDomain\":\"127.0.0.1\",\"serverPort\":143,\"uri\":\"imap://h\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    config("event_extra_params", "clientAddress");
    ev = cmev_event_new(CMEV_EVENT_TYPE_LOGOUT);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h");
    cmev_event_set_access(ev, "[::1]", "10.1.1.1;5555", "u"); /* no ';': no port, no crash */
    expect_one(ev, "{\"event\":\"Logout\",\"serverDomain\":\"[::1]\",\"clientIP\":\"10.1.1.1\",\"clientPort\":5555,\"uri\":\"imap://h\",\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    ev = cmev_event_new(CMEV_EVENT_TYPE_LOGOUT);
    cmev_event_set_access(ev, "127.0.0.1;143", NULL, NULL); /* never logged in */
    CHECK_EQ_INT(cmev_event_get_type(ev), CMEV_EVENT_TYPE_CANCELLED);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    expect_nothing();
    config("event_extra_params", "");

    /* quota: limits of the resource concerned, the -1 sentinel kept */
    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_EXCEED);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/user/u");
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_MESSAGES, 10);
    cmev_event_set_uint(ev, CMEV_PARAM_MESSAGES, 11);
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_STORAGE, 100);
    cmev_event_set_uint(ev, CMEV_PARAM_DISK_USED, 101);
    expect_one(ev, "{\"event\":\"QuotaExceed\",\"uri\":\"imap://h/user/u\",\"diskQuota\":100,\"diskUsed\":101,\"maxMessages\":10,\"messages\":11,\"pid\":%d,\"serverFQDN\":\"h\"}");
    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_WITHIN);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/user/u");
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_STORAGE, 100);
    cmev_event_set_uint(ev, CMEV_PARAM_DISK_USED, 20);
    expect_one(ev, "{\"event\":\"QuotaWithin\",\"uri\":\"imap://h/user/u\",\"diskQuota\":100,\"diskUsed\":20,\"pid\":%d,\"serverFQDN\":\"h\"}");
    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_CHANGE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/user/u");
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_MESSAGES, UINT64_MAX);
    cmev_event_set_access(ev, NULL, NULL, "u");
    expect_one(ev, "{\"event\":\"QuotaChange\",\"uri\":\"imap://h/user/u\",\"maxMessages\":-1,\"pid\":%d,\"user\":\"u\",\"serverFQDN\":\"h\"}");
    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_CHANGE); /* no limit at all: skipped */
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://h/user/u");
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    expect_nothing();

    ev = cmev_event_new(CMEV_EVENT_TYPE_CALENDAR_ALARM);
    cmev_event_set_string(ev, CMEV_PARAM_CALENDAR_ALARM_TIME, "20261128T100000Z");
    cmev_event_set_strings(ev, CMEV_PARAM_CALENDAR_ALARM_RECIPIENTS, recipients, 2);
    cmev_event_set_string(ev, CMEV_PARAM_CALENDAR_SUMMARY, "Lunch \"today\"");
    cmev_event_set_uint(ev, CMEV_PARAM_CALENDAR_ALL_DAY, 0);
    expect_one(ev, "{\"event\":\"CalendarAlarm\",\"pid\":%d,\"serverFQDN\":\"h\",\"alarmTime\":\"20261128T100000Z\",\"alarmRecipients\":[\"a@x\",\"b@x\"],\"summary\":\"Lunch \\\"today\\\"\",\"allDay\":0}");

    ev = cmev_event_new(CMEV_EVENT_TYPE_APPLE_PUSH_SERVICE);
    cmev_event_set_uint(ev, CMEV_PARAM_APS_VERSION, 2);
    cmev_event_set_string(ev, CMEV_PARAM_APS_ACCOUNT_ID, "acc");
    cmev_event_set_string(ev, CMEV_PARAM_APS_DEVICE_TOKEN, "tok");
    cmev_event_set_string(ev, CMEV_PARAM_APS_SUBTOPIC, "com.apple.mobilemail");
    cmev_event_set_strings(ev, CMEV_PARAM_APS_MAILBOXES, recipients, 2);
    cmev_event_set_string(ev, CMEV_PARAM_USER, "u");
    expect_one(ev, "{\"event\":\"ApplePushService\",\"pid\":%d,\"user\":\"u\",\"apsVersion\":2,\"apsAccountId\":\"acc\",\"apsDeviceToken\":\"tok\",\"apsSubtopic\":\"com.apple.mobilemail\",\"mailboxes\":[\"a@x\",\"b@x\"]}");

    ev = cmev_event_new(CMEV_EVENT_TYPE_APPLE_PUSH_SERVICE_DAV);
    cmev_event_set_string(ev, CMEV_PARAM_APS_DAV_TOPIC, "t");
    cmev_event_set_string(ev, CMEV_PARAM_APS_DAV_DEVICE_TOKEN, "d");
    cmev_event_set_string(ev, CMEV_PARAM_USER, "u");
    cmev_event_set_string(ev, CMEV_PARAM_APS_DAV_MAILBOX_USER, "u");
    cmev_event_set_string(ev, CMEV_PARAM_APS_DAV_MAILBOX_UNIQUE_ID, "id");
    cmev_event_set_string(ev, CMEV_PARAM_MBTYPE, "c");
    cmev_event_set_uint(ev, CMEV_PARAM_APS_DAV_EXPIRY, 3600);
    expect_one(ev, "{\"event\":\"ApplePushServiceDAV\",\"pid\":%d,\"user\":\"u\",\"vnd.cmu.mbtype\":\"c\",\"apsTopic\":\"t\",\"apsDeviceToken\":\"d\",\"mailboxUser\":\"u\",\"mailboxUniqueId\":\"id\",\"expiry\":3600}");
}

/* Each event type has its name and a send path; the tests above cover
 * them all, this asserts the header constants agree with Cyrus. */
static void test_type_values(void)
{
    CHECK_EQ_INT(CMEV_EVENT_TYPE_MAILBOX_MODSEQ, 1 << 25);
    CHECK_EQ_INT(CMEV_EVENT_TYPE_ACL_CHANGE, 1 << 20);
    CHECK_EQ_INT(CMEV_EVENT_TYPE_MESSAGES_UNSCHEDULED, 1 << 26);
    CHECK_EQ_INT(CMEV_PARAM_MESSAGE_CONTENT, 70);
    CHECK_EQ_INT(CMEV_PARAM_COUNT, 78);
    CHECK_EQ_INT(CMEV_PARAM_SERVER_FQDN, 24);
    CHECK_EQ_INT(CMEV_PARAM_APS_DAV_EXPIRY, 69);
}

static void test_options(void)
{
    char err[256];
    cmev_event *ev;
    static const uint32_t u1[] = { 1 };

    /* event_notifier: unset means no events at all */
    cmev_config_reset();
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW) == NULL);
    CHECK_EQ_INT(cmev_enabled_types(), 0);
    config("event_notifier", "log");
    CHECK(cmev_enabled_types() & CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK(!(cmev_enabled_types() & CMEV_EVENT_TYPE_LOGIN));
    base_config();
    config("event_notifier", "mailto");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, u1, 1);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK(got_len > 7 && memcmp(got, "mailto\0EVENT\0", 13) == 0);

    /* event_groups: the default is message mailbox */
    cmev_config_reset();
    config("event_notifier", "log");
    config("notifysocket", L.path);
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_FLAGS_SET) == NULL);
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_LOGIN) == NULL);
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_QUOTA_CHANGE) == NULL);
    ev = cmev_event_new(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK(ev != NULL);
    cmev_event_free(ev);
    config("event_groups", "access");
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW) == NULL);
    ev = cmev_event_new(CMEV_EVENT_TYPE_ACL_CHANGE);
    CHECK(ev != NULL);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_config_set("event_groups", "message bogus", err, sizeof(err)), CMEV_ERROR_INVALID_VALUE);
    CHECK(strstr(err, "event_groups") && strstr(err, "bogus"));
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_LOGIN) == NULL); /* back to the default */

    /* event_extra_params and the library-filled parameters */
    base_config();
    config("event_extra_params", "service timestamp vnd.fastmail.clientId");
    cmev_set_client_id("cli");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, u1, 1);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    {
        const char *j = got_len > 0 ? datagram_json(got, got_len) : "";
        /* "timestamp":"YYYY-MM-DDTHH:MM:SS.mmm" then Z or +hh:mm */
        CHECK(strncmp(j, "{\"event\":\"MessageExpunge\",\"timestamp\":\"20", 41) == 0);
        CHECK(j[49] == 'T' && j[58] == '.');
        CHECK(strstr(j, "\",\"service\":\"imap\",\"uri\"") != NULL);
        CHECK(strstr(j, "\"vnd.fastmail.clientId\":\"cli\"}") != NULL);
    }
    cmev_set_client_id(NULL);
    config("event_timestamp_format", "epoch");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, u1, 1);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    {
        const char *j = got_len > 0 ? datagram_json(got, got_len) : "";
        const char *t = strstr(j, "\"timestamp\":\"");
        char *end = NULL;
        CHECK(t != NULL);
        if (t) {
            double secs = strtod(t + 13, &end);
            CHECK(secs > 1.7e9 && end && end[-4] == '.' && *end == '"');
        }
        CHECK(strstr(j, "\"vnd.fastmail.clientId\":\"\"") != NULL);
    }
    CHECK_EQ_INT(cmev_config_set("event_extra_params", "timestamp nope", err, sizeof(err)), CMEV_ERROR_INVALID_VALUE);
    CHECK(strstr(err, "nope") != NULL);
    CHECK(cmev_expected(CMEV_EVENT_TYPE_MESSAGE_NEW, CMEV_PARAM_TIMESTAMP));
    CHECK(!cmev_expected(CMEV_EVENT_TYPE_MESSAGE_NEW, CMEV_PARAM_SERVICE));
    CHECK_EQ_INT(cmev_config_set("event_timestamp_format", "unix", err, sizeof(err)), CMEV_ERROR_INVALID_VALUE);

    /* event_exclude_specialuse, and what deciding it needs looked up */
    base_config();
    CHECK_EQ_INT(cmev_mailbox_needs(), CMEV_MAILBOX_NEEDS_SPECIALUSE);
    CHECK(!cmev_mailbox_enabled(false, "\\Junk"));
    CHECK(cmev_mailbox_enabled(false, "\\junk")); /* exact case, as stock */
    CHECK(cmev_mailbox_enabled(false, NULL));
    config("event_exclude_specialuse", "\\Sent \\Trash");
    CHECK(!cmev_mailbox_enabled(true, "\\Archive \\Trash"));
    CHECK(cmev_mailbox_enabled(true, "\\Junk"));
    config("event_exclude_specialuse", "all");
    CHECK_EQ_INT(cmev_mailbox_needs(), CMEV_MAILBOX_NEEDS_USER_INBOX | CMEV_MAILBOX_NEEDS_SPECIALUSE);
    CHECK(!cmev_mailbox_enabled(false, NULL));
    CHECK(cmev_mailbox_enabled(true, NULL));
    config("event_exclude_specialuse", "\\Sent ALL");
    CHECK_EQ_INT(cmev_mailbox_needs(), CMEV_MAILBOX_NEEDS_USER_INBOX | CMEV_MAILBOX_NEEDS_SPECIALUSE);
    CHECK(!cmev_mailbox_enabled(true, "\\Sent"));
    config("event_exclude_specialuse", "");
    CHECK_EQ_INT(cmev_mailbox_needs(), 0);
    CHECK(cmev_mailbox_enabled(false, "\\Junk"));

    /* unknown option */
    CHECK_EQ_INT(cmev_config_set("event_frobnicate", "1", err, sizeof(err)), CMEV_ERROR_UNKNOWN_OPTION);
    CHECK(strstr(err, "event_frobnicate") != NULL);
    /* error text is cut to the buffer, NUL-terminated */
    CHECK_EQ_INT(cmev_config_set("event_content_size", "lots", err, 8), CMEV_ERROR_INVALID_VALUE);
    CHECK(strlen(err) == 7);

    /* configdirectory gives the default socket path */
    {
        struct listener d;
        char sockdir[96];
        struct sockaddr_un sun;
        struct timeval tv = { 2, 0 };
        static const uint32_t u2[] = { 2 };

        strcpy(d.dir, "/tmp/cmev-cfgdir-XXXXXX");
        CHECK(mkdtemp(d.dir) != NULL);
        snprintf(sockdir, sizeof(sockdir), "%s/socket", d.dir);
        CHECK(mkdir(sockdir, 0700) == 0);
        snprintf(d.path, sizeof(d.path), "%s/notify", sockdir);
        d.fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        strcpy(sun.sun_path, d.path);
        CHECK(bind(d.fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
        setsockopt(d.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        base_config();
        config("notifysocket", "");
        config("configdirectory", d.dir);
        ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, u2, 1);
        CHECK(cmev_notify(&ev, 1) == 0);
        cmev_event_free(ev);
        got_len = listener_recv(&d, got, sizeof(got));
        CHECK(got_len > 0 && strstr(datagram_json(got, got_len), "\"uidset\":\"2\"") != NULL);
        close(d.fd);
        unlink(d.path);
        rmdir(sockdir);
        rmdir(d.dir);
    }
}

static cmev_event *content_event(const char *msg, size_t header_size)
{
    static const uint32_t u1[] = { 1 };
    cmev_event *ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    cmev_event_add_uid(ev, u1[0]);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    CHECK(cmev_event_set_content(ev, msg, strlen(msg), header_size) == 0);
    return ev;
}

#define CONTENT_HEAD "{\"event\":\"MessageNew\",\"uri\":\"imap://h/INBOX/;UID=1\",\"pid\":%d,\"serverFQDN\":\"h\""

static void test_content_modes(void)
{
    const char *msg = "Subject: hi\r\n\r\nbody text";  /* header 15 bytes, body 9 */
    base_config();
    config("event_extra_params", "messageContent");

    config("event_content_inclusion_mode", "standard");
    expect_one(content_event(msg, 15), CONTENT_HEAD ",\"messageContent\":\"Subject: hi\\r\\n\\r\\nbody text\"}");
    config("event_content_size", "10");
    expect_one(content_event(msg, 15), CONTENT_HEAD "}"); /* too big for standard: left out */
    config("event_content_inclusion_mode", "message");
    expect_one(content_event(msg, 15), CONTENT_HEAD ",\"messageContent\":\"Subject: h\"}");
    config("event_content_inclusion_mode", "header");
    expect_one(content_event(msg, 15), CONTENT_HEAD ",\"messageContent\":\"Subject: h\"}");
    config("event_content_size", "4");
    config("event_content_inclusion_mode", "body");
    expect_one(content_event(msg, 15), CONTENT_HEAD ",\"messageContent\":\"body\"}");
    config("event_content_inclusion_mode", "headerbody");
    expect_one(content_event(msg, 15), CONTENT_HEAD ",\"messageContent\":\"Subject: hi\\r\\n\\r\\nbody\"}");
    config("event_content_size", "0");
    expect_one(content_event(msg, 15), CONTENT_HEAD ",\"messageContent\":\"Subject: hi\\r\\n\\r\\nbody text\"}");
    /* header_size beyond the message is clamped */
    config("event_content_inclusion_mode", "body");
    expect_one(content_event(msg, 1000), CONTENT_HEAD ",\"messageContent\":\"\"}");
}

/* What of a message the adapter needs to read */
static void test_content_wanted(void)
{
    size_t wanted = 7, mb = 1u << 20;
    cmev_event *ev;
    base_config();
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK(!cmev_event_content_wanted(ev, mb, 100, &wanted)); /* not expected */
    CHECK_EQ_INT(wanted, 0);
    cmev_event_free(ev);

    config("event_extra_params", "messageContent");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    /* a datagram carries at most 64 KB of it */
    CHECK(cmev_event_content_wanted(ev, mb, 100, &wanted));
    CHECK(wanted > 65536 && wanted < 65600);
    CHECK(cmev_event_content_wanted(ev, 3000, 100, &wanted));
    CHECK_EQ_INT(wanted, 3000);
    CHECK(cmev_event_content_wanted(ev, 0, 0, &wanted)); /* an empty message: empty content */
    CHECK_EQ_INT(wanted, 0);
    cmev_event_free(ev);

    /* standard mode leaves out a message over event_content_size: nothing to read */
    config("event_content_size", "5000");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK(!cmev_event_content_wanted(ev, 5001, 100, &wanted));
    CHECK(cmev_event_content_wanted(ev, 5000, 100, &wanted));
    CHECK_EQ_INT(wanted, 5000);
    cmev_event_free(ev);
    config("event_content_inclusion_mode", "body");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK(cmev_event_content_wanted(ev, mb, 100, &wanted));
    CHECK_EQ_INT(wanted, 100 + 5000);
    cmev_event_free(ev);

    /* dlist: carries the whole message */
    config("event_content_size", "0");
    config("notifysocket", "dlist:/tmp/cmev-nobody/dlist");
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK(cmev_event_content_wanted(ev, mb, 100, &wanted));
    CHECK_EQ_INT(wanted, mb);
    cmev_event_free(ev);
}

static void test_datagram_limit(void)
{
    size_t big = 64 * 1024;
    char *msg = malloc(big + 1);
    cmev_event *ev;
    uint64_t cut, toobig;

    memset(msg, 'x', big);
    msg[big] = '\0';
    base_config();
    config("event_extra_params", "messageContent");
    config("event_max_datagram_size", "2000");
    cut = counter(CMEV_COUNTER_CONTENT_CUT);
    ev = content_event(msg, 10);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK_EQ_INT(got_len, 2000);
    CHECK(got_len > 0 && memcmp(got + got_len - 3, "\"}", 3) == 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_CONTENT_CUT), cut + 1);

    /* cannot fit even without content: dropped and counted */
    config("event_max_datagram_size", "64");
    toobig = counter(CMEV_COUNTER_DROPPED_TOO_BIG);
    ev = content_event(msg, 10);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(2000), 0);
    expect_nothing();
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_TOO_BIG), toobig + 1);

    /* the stock limit from SO_SNDBUF: 21,267 bytes with Linux defaults */
    config("event_max_datagram_size", "0");
    ev = content_event(msg, 10);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK(got_len > 20000 && got_len <= 65536);
    free(msg);
}

static void count_cb(const char *json, size_t len, void *rock)
{
    int *n = rock;
    if (strlen(json) == len && strstr(json, ",\"@type\":\"notify\"}")) (*n)++;
}

static void longest_cb(const char *json, size_t len, void *rock)
{
    size_t *longest = rock;
    (void)json;
    if (len > *longest) *longest = len;
}

static void test_callback(void)
{
    static const uint32_t u1[] = { 1 };
    size_t big = 100000, longest = 0;
    char *msg = malloc(big + 1);
    int calls = 0;
    cmev_event *ev;

    /* a datagram keeps no more of messageContent than it can carry; the
     * callback gets it whole */
    CHECK(msg != NULL);
    if (msg) {
        memset(msg, 'm', big);
        msg[big] = '\0';
        base_config();
        config("event_extra_params", "messageContent");
        config("event_max_datagram_size", "65536");
        cmev_set_notify_callback(longest_cb, &longest);
        ev = content_event(msg, 10);
        CHECK(cmev_notify(&ev, 1) == 0);
        cmev_event_free(ev);
        cmev_set_notify_callback(NULL, NULL);
        CHECK(longest > big);
        got_len = listener_recv(&L, got, sizeof(got));
        CHECK_EQ_INT(got_len, 65536);
        free(msg);
    }

    base_config();
    config("event_groups", "mailbox");
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE) == NULL);
    cmev_set_notify_callback(count_cb, &calls);
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, u1, 1); /* built for the callback */
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    expect_nothing(); /* group off: not sent */
    CHECK_EQ_INT(calls, 1);
    cmev_set_notify_callback(NULL, NULL);
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE) == NULL);
}

/* Cyrus 3.6's, 3.10's and 3.12's numberings of the same parameters: each
 * series' numbers land on the right keys, written in stock's order. */
static void test_series(void)
{
    static const uint32_t u1[] = { 1 };
    cmev_event *ev;

    base_config();
    config("event_groups", "calendar jmap");
    CHECK_EQ_INT(cmev_set_cyrus_series(0x307), CMEV_ERROR_UNKNOWN_SERIES);
    /* 43: userId in 3.6, alertId in 3.10 (3.8 inserted it) */
    CHECK_EQ_INT(cmev_set_cyrus_series(CMEV_CYRUS_3_6), 0);
    ev = cmev_event_new(CMEV_EVENT_TYPE_CALENDAR_ALARM);
    CHECK_EQ_INT(cmev_event_set_string(ev, 43, "u1"), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, 44, "c1"), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, 74, "x"), CMEV_ERROR_UNKNOWN_PARAM);
    expect_one(ev, "{\"event\":\"CalendarAlarm\",\"pid\":%d,\"serverFQDN\":\"h\",\"userId\":\"u1\",\"calendarId\":\"c1\"}");
    CHECK_EQ_INT(cmev_set_cyrus_series(CMEV_CYRUS_3_10), 0);
    ev = cmev_event_new(CMEV_EVENT_TYPE_CALENDAR_ALARM);
    CHECK_EQ_INT(cmev_event_set_string(ev, 44, "u1"), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, 43, "a1"), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, 48, "o1"), 0);
    expect_one(ev, "{\"event\":\"CalendarAlarm\",\"pid\":%d,\"serverFQDN\":\"h\",\"alertId\":\"a1\",\"userId\":\"u1\",\"calendarOwner\":\"o1\"}");
    /* MessagesUnscheduled (3.8): userId 74 and count 75, before
     * messageContent (76) */
    ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGES_UNSCHEDULED);
    CHECK(ev != NULL);
    CHECK_EQ_INT(cmev_event_set_uint(ev, 75, 3), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, 74, "alice"), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, 76, "m"), 0);
    CHECK(cmev_expected(CMEV_EVENT_TYPE_MESSAGES_UNSCHEDULED, 74));
    CHECK(!cmev_expected(CMEV_EVENT_TYPE_MESSAGES_UNSCHEDULED, 7));
    expect_one(ev, "{\"event\":\"MessagesUnscheduled\",\"pid\":%d,\"userId\":\"alice\",\"count\":3,\"messageContent\":\"m\"}");
    config("event_groups", "mailbox message");
    ev = mailbox_event(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK_EQ_INT(cmev_event_set_string(ev, 77, "m"), CMEV_ERROR_UNKNOWN_PARAM);
    cmev_event_free(ev);
    /* 3.12 inserted vnd.cmu.visibleUsers (26) after vnd.cmu.mailboxACL (25),
     * so 3.10's davFilename (26) is 27 and messageContent is 77; the key is
     * written only when event_extra_params asks for it. */
    CHECK_EQ_INT(cmev_set_cyrus_series(CMEV_CYRUS_3_12), 0);
    CHECK(!cmev_expected(CMEV_EVENT_TYPE_MAILBOX_CREATE, 26)); /* the adapter sets none */
    config("event_extra_params", "vnd.cmu.visibleUsers");
    ev = mailbox_event(CMEV_EVENT_TYPE_MAILBOX_CREATE);
    CHECK_EQ_INT(cmev_event_set_string(ev, 26, "alice\tbob"), 0);
    CHECK_EQ_INT(cmev_event_set_string(ev, 27, "f.ics"), 0); /* written if set, as stock does */
    expect_one(ev, "{\"event\":\"MailboxCreate\"," MBX_HEAD MBX_TAIL_VISIBLE("alice\\tbob\",\"vnd.cmu.davFilename\":\"f.ics"));
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_NEW, u1, 1);
    CHECK_EQ_INT(cmev_event_set_string(ev, 77, "m"), 0);
    CHECK(!cmev_expected(CMEV_EVENT_TYPE_MESSAGE_NEW, 26));
    CHECK(cmev_expected(CMEV_EVENT_TYPE_MAILBOX_DELETE, 26));
    cmev_event_free(ev);
    config("event_extra_params", "");
    CHECK_EQ_INT(cmev_set_cyrus_series(CMEV_CYRUS_OWN), 0);
    CHECK_EQ_INT(CMEV_CYRUS_3_6_PARAM_COUNT, 71);
    CHECK_EQ_INT(CMEV_CYRUS_3_10_PARAM_COUNT, 77);
    CHECK_EQ_INT(CMEV_CYRUS_3_12_PARAM_COUNT, 78);
    /* name_to_mboxevent() of 3.10 */
    CHECK_EQ_INT(cmev_event_type_from_name("messagesunscheduled"), CMEV_EVENT_TYPE_MESSAGES_UNSCHEDULED);
    CHECK_EQ_INT(cmev_event_type_from_name("vnd.cmu.MessageCopy"), CMEV_EVENT_TYPE_MESSAGE_COPY);
    CHECK_EQ_INT(cmev_event_type_from_name("CalendarEventNew"), CMEV_EVENT_TYPE_CALENDAR);
    CHECK_EQ_INT(cmev_event_type_from_name("MailboxUnSubscribe"), CMEV_EVENT_TYPE_MAILBOX_UNSUBSCRIBE);
    CHECK_EQ_INT(cmev_event_type_from_name("nope"), 0);
    CHECK_EQ_INT(cmev_event_type_from_name(NULL), 0);
}

/* Cyrus 3.10 feeds IMAP IDLE and NOTIFY through the callback whether
 * event_notifier is set or not: events are built for it, nothing is sent. */
static void test_callback_without_notifier(void)
{
    static const uint32_t u1[] = { 1 };
    size_t longest = 0;
    cmev_event *ev;

    base_config();
    config("event_notifier", "");
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW) == NULL);
    cmev_set_notify_callback(longest_cb, &longest);
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_NEW, u1, 1);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    CHECK(longest > 0);
    CHECK(cmev_event_new(CMEV_EVENT_TYPE_LOGIN) == NULL); /* not the callback's */
    CHECK_EQ_INT(cmev_flush(2000), 0);
    expect_nothing();
    cmev_set_notify_callback(NULL, NULL);
}

static void test_bad_input(void)
{
    static const uint32_t u1[] = { 1 };
    cmev_event *ev;
    cmev_counters c;
    const char *withnull[] = { "ok", NULL, "fine" };
    size_t huge = 100u * 1024 * 1024;
    char *big;
    base_config();

    /* NULL everywhere */
    CHECK_EQ_INT(cmev_config_set(NULL, "x", NULL, 0), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_config_set("servername", NULL, NULL, 0), CMEV_ERROR_NULL);
    cmev_event_free(NULL);
    CHECK_EQ_INT(cmev_event_get_type(NULL), 0);
    CHECK_EQ_INT(cmev_event_set_type(NULL, CMEV_EVENT_TYPE_LOGIN), CMEV_ERROR_NULL);
    CHECK(!cmev_event_has(NULL, CMEV_PARAM_URI));
    CHECK_EQ_INT(cmev_event_set_string(NULL, CMEV_PARAM_URI, "x"), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_bytes(NULL, CMEV_PARAM_URI, "x", 1), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_uint(NULL, CMEV_PARAM_MODSEQ, 1), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_json(NULL, CMEV_PARAM_JMAP_EMAIL, "{}"), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_strings(NULL, CMEV_PARAM_MIDSET, NULL, 0), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_uid(NULL, 1), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_old_uid(NULL, 1), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_msgid(NULL, "x"), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_flag(NULL, "x"), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_flags(NULL, NULL, 0), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_access(NULL, NULL, NULL, NULL), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_acl(NULL, "a", "b"), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_mailbox_uri(NULL, "x"), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_content(NULL, "x", 1, 0), CMEV_ERROR_NULL);
    {
        size_t wanted = 7;
        CHECK(!cmev_event_content_wanted(NULL, 10, 0, &wanted));
        CHECK_EQ_INT(wanted, 0);
    }
    CHECK_EQ_INT(cmev_notify(NULL, 0), 0);
    CHECK_EQ_INT(cmev_notify(NULL, 3), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_counters_get(NULL), CMEV_ERROR_NULL);
    CHECK(cmev_mailbox_enabled(true, NULL));
    cmev_set_client_id(NULL);

    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, u1, 1);
    CHECK_EQ_INT(cmev_event_set_string(ev, CMEV_PARAM_URI, NULL), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_bytes(ev, CMEV_PARAM_URI, NULL, 3), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_json(ev, CMEV_PARAM_JMAP_EMAIL, NULL), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_strings(ev, CMEV_PARAM_MIDSET, NULL, 2), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_acl(ev, NULL, "x"), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_flag(ev, NULL), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_mailbox_uri(ev, NULL), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_content(ev, NULL, 5, 0), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_add_msgid(ev, NULL), 0); /* NULL = no Message-ID */
    /* flags added to any event are written, as stock does */
    CHECK_EQ_INT(cmev_event_add_flags(ev, withnull, 3), 0);

    /* unknown ids and wrong kinds */
    CHECK(cmev_event_new(3) == NULL);
    CHECK(cmev_event_new(1u << 27) == NULL);
    CHECK(cmev_event_new(0xffffffffu) == NULL);
    CHECK(!cmev_expected(3, CMEV_PARAM_URI));
    CHECK(!cmev_expected(CMEV_EVENT_TYPE_LOGIN, CMEV_PARAM_COUNT));
    CHECK_EQ_INT(cmev_event_set_type(ev, 12345), CMEV_ERROR_UNKNOWN_TYPE);
    CHECK_EQ_INT(cmev_event_get_type(ev), CMEV_EVENT_TYPE_MESSAGE_EXPUNGE);
    CHECK_EQ_INT(cmev_event_set_string(ev, CMEV_PARAM_COUNT, "x"), CMEV_ERROR_UNKNOWN_PARAM);
    CHECK_EQ_INT(cmev_event_set_string(ev, 0xffffffffu, "x"), CMEV_ERROR_UNKNOWN_PARAM);
    CHECK_EQ_INT(cmev_event_set_string(ev, CMEV_PARAM_MODSEQ, "x"), CMEV_ERROR_WRONG_KIND);
    CHECK_EQ_INT(cmev_event_set_uint(ev, CMEV_PARAM_URI, 1), CMEV_ERROR_WRONG_KIND);
    CHECK_EQ_INT(cmev_event_set_json(ev, CMEV_PARAM_JMAP_EMAIL, "{\"a\":"), CMEV_ERROR_INVALID_JSON);
    CHECK_EQ_INT(cmev_event_set_json(ev, CMEV_PARAM_URI, "{}"), CMEV_ERROR_WRONG_KIND);
    CHECK_EQ_INT(cmev_event_set_strings(ev, CMEV_PARAM_URI, withnull, 1), CMEV_ERROR_WRONG_KIND);

    /* invalid UTF-8 kept with U+FFFD, embedded NUL kept as \u0000, -1 and u64::MAX */
    CHECK_EQ_INT(cmev_event_set_string(ev, CMEV_PARAM_USER, "caf\xe9"), 0);
    CHECK_EQ_INT(cmev_event_set_bytes(ev, CMEV_PARAM_MAILBOX_ID, "a\0b", 3), 0);
    CHECK_EQ_INT(cmev_event_set_uint(ev, CMEV_PARAM_MESSAGES, (uint64_t)-1), 0);
    CHECK_EQ_INT(cmev_event_set_uint(ev, CMEV_PARAM_UIDNEXT, UINT64_MAX - 1), 0);
    cmev_event_add_uid(ev, UINT32_MAX);
    CHECK(cmev_event_has(ev, CMEV_PARAM_USER));
    expect_one(ev, "{\"event\":\"MessageExpunge\",\"mailboxID\":\"a\\u0000b\",\"uri\":\"imap://h/user/u;UIDVALIDITY=7\",\"messages\":-1,\"uidnext\":-2,\"uidset\":\"1,*\",\"flagNames\":\"ok fine\",\"pid\":%d,\"user\":\"caf\xef\xbf\xbd\",\"serverFQDN\":\"h\"}");

    /* 100 MB of content: accepted, cut to the datagram, valid JSON */
    config("event_extra_params", "messageContent");
    big = malloc(huge);
    CHECK(big != NULL);
    if (big) {
        memset(big, '"', huge);
        ev = cmev_event_new(CMEV_EVENT_TYPE_MESSAGE_NEW);
        cmev_event_add_uid(ev, 1);
        cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
        CHECK_EQ_INT(cmev_event_set_content(ev, big, huge, 100), 0);
        free(big);
        CHECK(cmev_notify(&ev, 1) == 0);
        cmev_event_free(ev);
        CHECK_EQ_INT(cmev_flush(10000), 0);
        got_len = listener_recv(&L, got, sizeof(got));
        CHECK(got_len > 1000);
        /* an escaped quote is never split: content ends with \" pairs */
        CHECK(got_len > 5 && memcmp(got + got_len - 5, "\\\"\"}", 5) == 0);
    }

    /* a socket path longer than sun_path: refused, counted, never fatal */
    config("notifysocket", "/tmp/a-path-far-too-long-for-sun_path/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/notify");
    ev = message_event(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, u1, 1);
    CHECK(cmev_counters_get(&c) == 0);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(cmev_flush(2000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_DROPPED_SEND_ERROR), c.values[CMEV_COUNTER_DROPPED_SEND_ERROR] + 1);
}

/* A JSON value of "the caller's JSON library": its text, written in two
 * pieces, and how often it was released (from whichever thread). */
struct fake_json {
    const char *text;
    int fail;
    atomic_int released;
};

static int fake_dump(const void *obj, cmev_json_write_fn write, void *ctx)
{
    const struct fake_json *f = obj;
    size_t half = strlen(f->text) / 2;
    if (f->fail) return -1;
    if (write(f->text, half, ctx) || write(f->text + half, strlen(f->text) - half, ctx)) return -1;
    return 0;
}

static void fake_release(void *obj)
{
    atomic_fetch_add(&((struct fake_json *)obj)->released, 1);
}

static cmev_event *new_with_uri(uint32_t type)
{
    cmev_event *ev = cmev_event_new(type);
    CHECK(ev != NULL);
    cmev_event_add_uid(ev, 3);
    cmev_event_set_mailbox_uri(ev, "imap://h/INBOX");
    return ev;
}

static void test_json_object(void)
{
    struct fake_json ok = { "{ \"id\" : \"M1\", \"to\":[{\"name\":\"A \\\"q\\\"\"}], \"n\":null}", 0, 0 };
    struct fake_json failing = { "{}", 1, 0 }, invalid = { "{\"a\":", 0, 0 };
    struct fake_json first = { "[1]", 0, 0 }, unsent = { "2", 0, 0 }, split = { "{\"s\":1}", 0, 0 };
    struct fake_json spare = { "{}", 0, 0 };
    const char *flags[] = { "\\Seen", "\\Deleted", "$X" };
    uint64_t left_out;
    cmev_event *ev;
    int i;

    base_config();
    config("event_extra_params", "vnd.fastmail.jmapEmail vnd.fastmail.jmapStates");

    /* dumped when sent, written compactly, released once */
    ev = new_with_uri(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_EMAIL, &ok, fake_dump, fake_release), 0);
    CHECK_EQ_INT(atomic_load(&ok.released), 0);
    expect_one(ev, "{\"event\":\"MessageNew\",\"uri\":\"imap://h/INBOX/;UID=3\",\"pid\":%d,\"serverFQDN\":\"h\",\"vnd.fastmail.jmapEmail\":{\"id\":\"M1\",\"to\":[{\"name\":\"A \\\"q\\\"\"}],\"n\":null}}");
    CHECK_EQ_INT(cmev_flush(2000), 0); /* released once sent */
    CHECK_EQ_INT(atomic_load(&ok.released), 1);

    /* a failing dump or invalid text: the event goes without it, counted */
    left_out = counter(CMEV_COUNTER_JSON_LEFT_OUT);
    ev = new_with_uri(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_EMAIL, &failing, fake_dump, fake_release), 0);
    expect_one(ev, "{\"event\":\"MessageNew\",\"uri\":\"imap://h/INBOX/;UID=3\",\"pid\":%d,\"serverFQDN\":\"h\"}");
    ev = new_with_uri(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_STATES, &invalid, fake_dump, fake_release), 0);
    expect_one(ev, "{\"event\":\"MessageNew\",\"uri\":\"imap://h/INBOX/;UID=3\",\"pid\":%d,\"serverFQDN\":\"h\"}");
    CHECK_EQ_INT(cmev_flush(2000), 0);
    CHECK_EQ_INT(counter(CMEV_COUNTER_JSON_LEFT_OUT), left_out + 2);
    CHECK_EQ_INT(atomic_load(&failing.released), 1);
    CHECK_EQ_INT(atomic_load(&invalid.released), 1);

    /* every error releases it at once, except when there is nothing to
     * release with (NULL release or object) */
    CHECK_EQ_INT(cmev_event_set_json_object(NULL, CMEV_PARAM_JMAP_EMAIL, &spare, fake_dump, fake_release), CMEV_ERROR_NULL);
    ev = new_with_uri(CMEV_EVENT_TYPE_MESSAGE_NEW);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_URI, &spare, fake_dump, fake_release), CMEV_ERROR_WRONG_KIND);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, 999, &spare, fake_dump, fake_release), CMEV_ERROR_UNKNOWN_PARAM);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_EMAIL, &spare, NULL, fake_release), CMEV_ERROR_NULL);
    CHECK_EQ_INT(atomic_load(&spare.released), 4);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_EMAIL, &spare, fake_dump, NULL), CMEV_ERROR_NULL);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_EMAIL, NULL, fake_dump, fake_release), CMEV_ERROR_NULL);
    CHECK_EQ_INT(atomic_load(&spare.released), 4);

    /* replaced: the first goes at once; freed unsent: released by the free */
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_EMAIL, &first, fake_dump, fake_release), 0);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_EMAIL, &unsent, fake_dump, fake_release), 0);
    CHECK_EQ_INT(atomic_load(&first.released), 1);
    CHECK_EQ_INT(atomic_load(&unsent.released), 0);
    cmev_event_free(ev);
    CHECK_EQ_INT(atomic_load(&unsent.released), 1);

    /* a FlagsSet split into three notifications: each carries it, one release */
    ev = message_event(CMEV_EVENT_TYPE_FLAGS_SET, (const uint32_t[]){ 4 }, 1);
    cmev_event_add_flags(ev, flags, 3);
    CHECK_EQ_INT(cmev_event_set_json_object(ev, CMEV_PARAM_JMAP_STATES, &split, fake_dump, fake_release), 0);
    CHECK(cmev_notify(&ev, 1) == 0);
    cmev_event_free(ev);
    for (i = 0; i < 3; i++) {
        got_len = listener_recv(&L, got, sizeof(got));
        CHECK(got_len > 0 && strstr(datagram_json(got, got_len), ",\"vnd.fastmail.jmapStates\":{\"s\":1}}") != NULL);
    }
    CHECK_EQ_INT(cmev_flush(2000), 0);
    CHECK_EQ_INT(atomic_load(&split.released), 1);
}

/* With event_delivery: sync, a forked child's events carry its own pid, not
 * the parent's it inherited: the fork hooks come with the first event in
 * every delivery mode. Run first, before any event is queued, since the
 * queue installed them anyway. */
static void test_sync_fork_pid(void)
{
    char want[128];
    pid_t child;
    int st;
    base_config();
    config("event_delivery", "sync");
    expect_one(mailbox_event(CMEV_EVENT_TYPE_MAILBOX_CREATE), "{\"event\":\"MailboxCreate\"," MBX_HEAD MBX_TAIL);
    fflush(NULL);
    child = fork();
    if (child == 0) {
        cmev_event *ev = mailbox_event(CMEV_EVENT_TYPE_MAILBOX_DELETE);
        _exit(cmev_notify(&ev, 1) == 0 ? 0 : 1);
    }
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    got_len = listener_recv(&L, got, sizeof(got));
    CHECK(got_len > 0);
    snprintf(want, sizeof(want), "\"pid\":%d,", (int)child);
    CHECK(got_len > 0 && strstr(datagram_json(got, got_len), want) != NULL);
    config("event_delivery", "queued");
}

int main(void)
{
    pid = (int)getpid();
    listener_open(&L);
    test_sync_fork_pid();
    test_type_values();
    test_mailbox_events();
    test_message_events();
    test_flag_events();
    test_access_quota_calendar_aps();
    test_options();
    test_content_modes();
    test_datagram_limit();
    test_content_wanted();
    test_callback();
    test_series();
    test_callback_without_notifier();
    test_bad_input();
    test_json_object();
    listener_close(&L);
    cmev_config_reset();
    return report("test_api");
}
