/* make demo: one event of each type through the library into a listener
 * bound at notifysocket, printed as the listener receives them. */
#include "../tests/c/harness.h"

static struct listener L;

static void drain(void)
{
    char buf[65536];
    ssize_t n;
    while (!listener_empty(&L) && (n = listener_recv(&L, buf, sizeof(buf))) > 0)
        printf("%s\n", datagram_json(buf, n));
}

static void send_one(cmev_event *ev)
{
    cmev_notify(&ev, 1);
    cmev_event_free(ev);
    usleep(20000);
    drain();
}

static cmev_event *in_mailbox(uint32_t type, const char *uri, uint32_t uid)
{
    cmev_event *ev = cmev_event_new(type);
    if (uid) cmev_event_add_uid(ev, uid);
    cmev_event_set_mailbox_uri(ev, uri);
    cmev_event_set_access(ev, NULL, NULL, "alice");
    cmev_event_add_msgid(ev, "<demo@example.org>");
    return ev;
}

int main(void)
{
    const char *inbox = "imap://demo.test/user/alice;UIDVALIDITY=1700000000";
    const char *flags[] = { "\\Seen", "\\Deleted", "$Important" };
    const char *recipients[] = { "alice@example.org" };
    cmev_event *ev;

    listener_open(&L);
    config("event_notifier", "log");
    config("event_groups", "message quota flags access mailbox subscription calendar applepushservice");
    config("event_extra_params", "timestamp service vnd.cmu.midset messageContent");
    config("servername", "demo.test");
    config("service", "imap");
    config("notifysocket", L.path);
    printf("# listener bound at %s; one event of each type:\n", L.path);

    ev = cmev_event_new(CMEV_EVENT_TYPE_LOGIN);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://demo.test");
    cmev_event_set_access(ev, "127.0.0.1;143", "127.0.0.1;50123", "alice");
    send_one(ev);

    ev = in_mailbox(CMEV_EVENT_TYPE_MAILBOX_CREATE, "imap://demo.test/user/alice/Work;UIDVALIDITY=1700000001", 0);
    cmev_event_set_string(ev, CMEV_PARAM_MAILBOX_ID, "a1b2c3");
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MAILBOX_RENAME, "imap://demo.test/user/alice/Jobs;UIDVALIDITY=1700000001", 0);
    cmev_event_set_string(ev, CMEV_PARAM_OLD_MAILBOX_ID, "imap://demo.test/user/alice/Work;UIDVALIDITY=1700000001");
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MAILBOX_SUBSCRIBE, "imap://demo.test/user/alice/Jobs", 0);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MAILBOX_UNSUBSCRIBE, "imap://demo.test/user/alice/Jobs", 0);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_ACL_CHANGE, "imap://demo.test/user/alice/Jobs;UIDVALIDITY=1700000001", 0);
    cmev_event_set_acl(ev, "bob", "lrs");
    send_one(ev);

    ev = in_mailbox(CMEV_EVENT_TYPE_MESSAGE_NEW, inbox, 1);
    cmev_event_set_content(ev, "Subject: hello\r\n\r\nHi Alice!\r\n", 29, 18);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MESSAGE_APPEND, inbox, 2);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_FLAGS_SET, inbox, 1);
    cmev_event_add_flags(ev, flags, 3); /* split into MessageTrash, MessageRead, FlagsSet */
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_FLAGS_CLEAR, inbox, 1);
    cmev_event_add_flags(ev, flags + 2, 1);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MESSAGE_COPY, "imap://demo.test/user/alice/Jobs;UIDVALIDITY=1700000001", 1);
    cmev_event_set_string(ev, CMEV_PARAM_OLD_MAILBOX_ID, inbox);
    cmev_event_add_old_uid(ev, 1);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MESSAGE_MOVE, "imap://demo.test/user/alice/Jobs;UIDVALIDITY=1700000001", 2);
    cmev_event_set_string(ev, CMEV_PARAM_OLD_MAILBOX_ID, inbox);
    cmev_event_add_old_uid(ev, 2);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MESSAGE_EXPUNGE, inbox, 2);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MESSAGE_EXPIRE, inbox, 1);
    send_one(ev);
    ev = in_mailbox(CMEV_EVENT_TYPE_MAILBOX_MODSEQ, inbox, 0);
    send_one(ev);

    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_EXCEED);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://demo.test/user/alice");
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_STORAGE, 1024);
    cmev_event_set_uint(ev, CMEV_PARAM_DISK_USED, 1030);
    send_one(ev);
    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_WITHIN);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://demo.test/user/alice");
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_STORAGE, 1024);
    cmev_event_set_uint(ev, CMEV_PARAM_DISK_USED, 900);
    send_one(ev);
    ev = cmev_event_new(CMEV_EVENT_TYPE_QUOTA_CHANGE);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://demo.test/user/alice");
    cmev_event_set_uint(ev, CMEV_PARAM_QUOTA_MESSAGES, UINT64_MAX); /* unlimited: -1 */
    cmev_event_set_access(ev, NULL, NULL, "alice");
    send_one(ev);

    ev = cmev_event_new(CMEV_EVENT_TYPE_CALENDAR_ALARM);
    cmev_event_set_string(ev, CMEV_PARAM_CALENDAR_ALARM_TIME, "20261128T100000Z");
    cmev_event_set_strings(ev, CMEV_PARAM_CALENDAR_ALARM_RECIPIENTS, recipients, 1);
    cmev_event_set_string(ev, CMEV_PARAM_CALENDAR_SUMMARY, "Stand-up");
    send_one(ev);
    ev = cmev_event_new(CMEV_EVENT_TYPE_APPLE_PUSH_SERVICE);
    cmev_event_set_uint(ev, CMEV_PARAM_APS_VERSION, 2);
    cmev_event_set_string(ev, CMEV_PARAM_APS_ACCOUNT_ID, "acct");
    cmev_event_set_string(ev, CMEV_PARAM_APS_DEVICE_TOKEN, "token");
    cmev_event_set_string(ev, CMEV_PARAM_APS_SUBTOPIC, "com.apple.mobilemail");
    cmev_event_set_string(ev, CMEV_PARAM_USER, "alice");
    send_one(ev);
    ev = cmev_event_new(CMEV_EVENT_TYPE_APPLE_PUSH_SERVICE_DAV);
    cmev_event_set_string(ev, CMEV_PARAM_APS_DAV_TOPIC, "topic");
    cmev_event_set_string(ev, CMEV_PARAM_APS_DAV_DEVICE_TOKEN, "token");
    cmev_event_set_string(ev, CMEV_PARAM_USER, "alice");
    cmev_event_set_uint(ev, CMEV_PARAM_APS_DAV_EXPIRY, 86400);
    send_one(ev);

    ev = cmev_event_new(CMEV_EVENT_TYPE_LOGOUT);
    cmev_event_set_string(ev, CMEV_PARAM_URI, "imap://demo.test");
    cmev_event_set_access(ev, "127.0.0.1;143", "127.0.0.1;50123", "alice");
    send_one(ev);

    printf("# sent %llu notifications\n", (unsigned long long)counter(CMEV_COUNTER_SENT));
    listener_close(&L);
    return failures ? 1 : 0;
}
