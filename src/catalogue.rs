//! The catalogue of Cyrus's events, 3.6.1 to 3.10: the event types and
//! parameters with the bit values, JSON names and kinds of `imap/mboxevent.h`
//! and `mboxevent.c`. Facts to match, nothing to decide. Parameters keep
//! the numbers of 3.6.1 and later ones are numbered after them, so that the
//! C ABI only grows; their output order is Cyrus's (`OUTPUT_ORDER`), and
//! each Cyrus series' own numbering is mapped in `series`.

/// RFC 5423 event types, with the bit values of Cyrus's `enum event_type`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Cancelled = 0,
    MessageAppend = 1 << 0,
    MessageExpire = 1 << 1,
    MessageExpunge = 1 << 2,
    MessageNew = 1 << 3,
    MessageCopy = 1 << 4,
    MessageMove = 1 << 5,
    QuotaExceed = 1 << 6,
    QuotaWithin = 1 << 7,
    QuotaChange = 1 << 8,
    MessageRead = 1 << 9,
    MessageTrash = 1 << 10,
    FlagsSet = 1 << 11,
    FlagsClear = 1 << 12,
    Login = 1 << 13,
    Logout = 1 << 14,
    MailboxCreate = 1 << 15,
    MailboxDelete = 1 << 16,
    MailboxRename = 1 << 17,
    MailboxSubscribe = 1 << 18,
    MailboxUnsubscribe = 1 << 19,
    AclChange = 1 << 20,
    /// Only ever seen OR-ed with `MessageNew` (a calendar resource arrived).
    Calendar = 1 << 21,
    /// `MessageNew | Calendar`: written as "MessageNew", but the calendar bit
    /// makes vnd.cmu.davFilename and vnd.cmu.davUid expected.
    MessageNewCalendar = (1 << 3) | (1 << 21),
    CalendarAlarm = 1 << 22,
    ApplePushService = 1 << 23,
    ApplePushServiceDav = 1 << 24,
    MailboxModseq = 1 << 25,
    /// Cyrus 3.8 on (caldav_alarm.c: scheduled sends that failed).
    MessagesUnscheduled = 1 << 26,
}

/// Bit masks of related event types (`MESSAGE_EVENTS` etc. in mboxevent.c).
pub mod mask {
    use super::EventType as T;
    pub const MESSAGE: u32 = T::MessageAppend as u32
        | T::MessageExpire as u32
        | T::MessageExpunge as u32
        | T::MessageNew as u32
        | T::MessageCopy as u32
        | T::MessageMove as u32;
    pub const FLAGS: u32 =
        T::FlagsSet as u32 | T::FlagsClear as u32 | T::MessageRead as u32 | T::MessageTrash as u32;
    pub const MAILBOX: u32 = T::MailboxCreate as u32
        | T::MailboxDelete as u32
        | T::MailboxRename as u32
        | T::AclChange as u32
        | T::MailboxModseq as u32;
    pub const SUBSCRIPTION: u32 = T::MailboxSubscribe as u32 | T::MailboxUnsubscribe as u32;
    pub const QUOTA: u32 = T::QuotaExceed as u32 | T::QuotaWithin as u32 | T::QuotaChange as u32;
    pub const ACCESS: u32 = T::Login as u32 | T::Logout as u32 | T::AclChange as u32;
    pub const CALENDAR: u32 = T::CalendarAlarm as u32;
    pub const APPLEPUSHSERVICE: u32 = T::ApplePushService as u32 | T::ApplePushServiceDav as u32;
    pub const JMAP: u32 = T::MessagesUnscheduled as u32;
    /// MessageNew and MessageAppend: their UID goes into the uri, not uidset.
    pub const NEW_OR_APPEND: u32 = T::MessageNew as u32 | T::MessageAppend as u32;
}

/// Every type that can stand alone, in bit order.
pub const ALL_TYPES: [EventType; 26] = {
    use EventType::*;
    [
        MessageAppend,
        MessageExpire,
        MessageExpunge,
        MessageNew,
        MessageCopy,
        MessageMove,
        QuotaExceed,
        QuotaWithin,
        QuotaChange,
        MessageRead,
        MessageTrash,
        FlagsSet,
        FlagsClear,
        Login,
        Logout,
        MailboxCreate,
        MailboxDelete,
        MailboxRename,
        MailboxSubscribe,
        MailboxUnsubscribe,
        AclChange,
        CalendarAlarm,
        ApplePushService,
        ApplePushServiceDav,
        MailboxModseq,
        MessagesUnscheduled,
    ]
};

/// Number of per-type table slots (`EventType::slot`).
pub const TYPE_SLOTS: usize = 29;

/// Every type an event can have, including Cancelled and MessageNew|Calendar.
pub const ALL_TYPES_AND_COMBINATIONS: [EventType; 28] = {
    let mut a = [EventType::Cancelled; 28];
    let mut i = 0;
    while i < ALL_TYPES.len() {
        a[i] = ALL_TYPES[i];
        i += 1;
    }
    a[26] = EventType::MessageNewCalendar;
    a[27] = EventType::Calendar;
    a
};

impl EventType {
    /// A distinct index 0..TYPE_SLOTS for per-type tables.
    pub fn slot(self) -> usize {
        match self {
            EventType::Cancelled => 27,
            EventType::MessageNewCalendar => 28,
            t => t.bit_index() as usize,
        }
    }

    /// The type for a C value: one known bit, or `MessageNew|Calendar`.
    pub fn from_bits(bits: u32) -> Option<EventType> {
        if bits == 0 {
            return Some(EventType::Cancelled);
        }
        if bits == EventType::MessageNewCalendar as u32 {
            return Some(EventType::MessageNewCalendar);
        }
        ALL_TYPES.iter().copied().find(|t| *t as u32 == bits)
    }

    pub fn bits(self) -> u32 {
        self as u32
    }

    pub fn is_in(self, mask: u32) -> bool {
        self as u32 & mask != 0
    }

    /// The `"event"` value stock writes.
    pub fn name(self) -> &'static str {
        use EventType::*;
        match self {
            Cancelled => "Cancelled",
            MessageAppend => "MessageAppend",
            MessageExpire => "MessageExpire",
            MessageExpunge => "MessageExpunge",
            MessageNew | MessageNewCalendar | Calendar => "MessageNew",
            MessageCopy => "vnd.cmu.MessageCopy",
            MessageMove => "vnd.cmu.MessageMove",
            QuotaExceed => "QuotaExceed",
            QuotaWithin => "QuotaWithin",
            QuotaChange => "QuotaChange",
            MessageRead => "MessageRead",
            MessageTrash => "MessageTrash",
            FlagsSet => "FlagsSet",
            FlagsClear => "FlagsClear",
            Login => "Login",
            Logout => "Logout",
            MailboxCreate => "MailboxCreate",
            MailboxDelete => "MailboxDelete",
            MailboxRename => "MailboxRename",
            MailboxSubscribe => "MailboxSubscribe",
            MailboxUnsubscribe => "MailboxUnSubscribe",
            AclChange => "AclChange",
            CalendarAlarm => "CalendarAlarm",
            ApplePushService => "ApplePushService",
            ApplePushServiceDav => "ApplePushServiceDAV",
            MailboxModseq => "MailboxModseq",
            MessagesUnscheduled => "MessagesUnscheduled",
        }
    }

    /// The type stock's `name_to_mboxevent()` (3.10) finds for `name`,
    /// ASCII case ignored: every name it writes, and "CalendarEventNew".
    pub fn from_name(name: &str) -> Option<EventType> {
        if name.eq_ignore_ascii_case("CalendarEventNew") {
            return Some(EventType::Calendar);
        }
        if name.eq_ignore_ascii_case("Cancelled") {
            return Some(EventType::Cancelled);
        }
        ALL_TYPES
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Index 0..26 of the type's bit, for per-type tables (log-once masks).
    pub fn bit_index(self) -> u32 {
        (self as u32).trailing_zeros().min(31)
    }
}

/// How a parameter is written in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Str,
    Array,
    Json,
    /// `"ip;port"` written as two keys (serverDomain/serverPort, clientIP/clientPort).
    Address(&'static str, &'static str),
}

/// Event parameters: 0-70 with the numbering of Cyrus 3.6.1's `enum
/// event_param`, later ones after them in the order the series added them;
/// output order is `OUTPUT_ORDER`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    Timestamp = 0,
    Service = 1,
    ServerAddress = 2,
    ClientAddress = 3,
    OldMailboxId = 4,
    OldUidset = 5,
    MailboxId = 6,
    Uri = 7,
    Modseq = 8,
    QuotaStorage = 9,
    DiskUsed = 10,
    QuotaMessages = 11,
    Messages = 12,
    UnseenMessages = 13,
    Uidnext = 14,
    Uidset = 15,
    Midset = 16,
    FlagNames = 17,
    Pid = 18,
    AclSubject = 19,
    AclRights = 20,
    User = 21,
    MessageSize = 22,
    Mbtype = 23,
    ServerFqdn = 24,
    MailboxAcl = 25,
    DavFilename = 26,
    DavUid = 27,
    Envelope = 28,
    CmuSessionId = 29,
    BodyStructure = 30,
    ClientId = 31,
    FastmailSessionId = 32,
    ConvExists = 33,
    ConvUnseen = 34,
    MessageCid = 35,
    Counters = 36,
    MessageEmailId = 37,
    MessageThreadId = 38,
    JmapEmail = 39,
    JmapStates = 40,
    CalendarAlarmTime = 41,
    CalendarAlarmRecipients = 42,
    CalendarUserId = 43,
    CalendarCalendarId = 44,
    CalendarCalendarName = 45,
    CalendarCalendarColor = 46,
    CalendarUid = 47,
    CalendarAction = 48,
    CalendarSummary = 49,
    CalendarDescription = 50,
    CalendarLocation = 51,
    CalendarTimezone = 52,
    CalendarStart = 53,
    CalendarEnd = 54,
    CalendarAllDay = 55,
    CalendarAttendeeNames = 56,
    CalendarAttendeeEmails = 57,
    CalendarAttendeeStatus = 58,
    CalendarOrganizer = 59,
    ApsVersion = 60,
    ApsAccountId = 61,
    ApsDeviceToken = 62,
    ApsSubtopic = 63,
    ApsMailboxes = 64,
    ApsDavTopic = 65,
    ApsDavDeviceToken = 66,
    ApsDavMailboxUser = 67,
    ApsDavMailboxUniqueId = 68,
    ApsDavExpiry = 69,
    MessageContent = 70,
    /// Cyrus 3.8 on: calendar alarms.
    CalendarAlertId = 71,
    CalendarCalendarOwner = 72,
    CalendarRecurrenceId = 73,
    CalendarEventId = 74,
    /// Cyrus 3.8 on: MessagesUnscheduled.
    UnscheduledUserId = 75,
    UnscheduledCount = 76,
    /// Cyrus 3.12 on: the users who may read a mailbox.
    VisibleUsers = 77,
}

/// Number of parameters.
pub const PARAM_COUNT: usize = 78;

/// JSON key and kind of every parameter, indexed by its number.
const PARAM_TABLE: [(Param, &str, Kind); PARAM_COUNT] = [
    (Param::Timestamp, "timestamp", Kind::Str),
    (Param::Service, "service", Kind::Str),
    (
        Param::ServerAddress,
        "serverAddress",
        Kind::Address("serverDomain", "serverPort"),
    ),
    (
        Param::ClientAddress,
        "clientAddress",
        Kind::Address("clientIP", "clientPort"),
    ),
    (Param::OldMailboxId, "oldMailboxID", Kind::Str),
    (Param::OldUidset, "vnd.cmu.oldUidset", Kind::Str),
    (Param::MailboxId, "mailboxID", Kind::Str),
    (Param::Uri, "uri", Kind::Str),
    (Param::Modseq, "modseq", Kind::Int),
    (Param::QuotaStorage, "diskQuota", Kind::Int),
    (Param::DiskUsed, "diskUsed", Kind::Int),
    (Param::QuotaMessages, "maxMessages", Kind::Int),
    (Param::Messages, "messages", Kind::Int),
    (Param::UnseenMessages, "vnd.cmu.unseenMessages", Kind::Int),
    (Param::Uidnext, "uidnext", Kind::Int),
    (Param::Uidset, "uidset", Kind::Str),
    (Param::Midset, "vnd.cmu.midset", Kind::Array),
    (Param::FlagNames, "flagNames", Kind::Str),
    (Param::Pid, "pid", Kind::Int),
    (Param::AclSubject, "aclSubject", Kind::Str),
    (Param::AclRights, "aclRights", Kind::Str),
    (Param::User, "user", Kind::Str),
    (Param::MessageSize, "messageSize", Kind::Int),
    (Param::Mbtype, "vnd.cmu.mbtype", Kind::Str),
    (Param::ServerFqdn, "serverFQDN", Kind::Str),
    (Param::MailboxAcl, "vnd.cmu.mailboxACL", Kind::Str),
    (Param::DavFilename, "vnd.cmu.davFilename", Kind::Str),
    (Param::DavUid, "vnd.cmu.davUid", Kind::Str),
    (Param::Envelope, "vnd.cmu.envelope", Kind::Str),
    (Param::CmuSessionId, "vnd.cmu.sessionId", Kind::Str),
    (Param::BodyStructure, "bodyStructure", Kind::Str),
    (Param::ClientId, "vnd.fastmail.clientId", Kind::Str),
    (
        Param::FastmailSessionId,
        "vnd.fastmail.sessionId",
        Kind::Str,
    ),
    (Param::ConvExists, "vnd.fastmail.convExists", Kind::Int),
    (Param::ConvUnseen, "vnd.fastmail.convUnseen", Kind::Int),
    (Param::MessageCid, "vnd.fastmail.cid", Kind::Str),
    (Param::Counters, "vnd.fastmail.counters", Kind::Str),
    (Param::MessageEmailId, "vnd.cmu.emailid", Kind::Str),
    (Param::MessageThreadId, "vnd.cmu.threadid", Kind::Str),
    (Param::JmapEmail, "vnd.fastmail.jmapEmail", Kind::Json),
    (Param::JmapStates, "vnd.fastmail.jmapStates", Kind::Json),
    (Param::CalendarAlarmTime, "alarmTime", Kind::Str),
    (
        Param::CalendarAlarmRecipients,
        "alarmRecipients",
        Kind::Array,
    ),
    (Param::CalendarUserId, "userId", Kind::Str),
    (Param::CalendarCalendarId, "calendarId", Kind::Str),
    (Param::CalendarCalendarName, "calendarName", Kind::Str),
    (Param::CalendarCalendarColor, "calendarColor", Kind::Str),
    (Param::CalendarUid, "uid", Kind::Str),
    (Param::CalendarAction, "action", Kind::Str),
    (Param::CalendarSummary, "summary", Kind::Str),
    (Param::CalendarDescription, "description", Kind::Str),
    (Param::CalendarLocation, "location", Kind::Str),
    (Param::CalendarTimezone, "timezone", Kind::Str),
    (Param::CalendarStart, "start", Kind::Str),
    (Param::CalendarEnd, "end", Kind::Str),
    (Param::CalendarAllDay, "allDay", Kind::Int),
    (Param::CalendarAttendeeNames, "attendeeNames", Kind::Array),
    (Param::CalendarAttendeeEmails, "attendeeEmails", Kind::Array),
    (Param::CalendarAttendeeStatus, "attendeeStatus", Kind::Array),
    (Param::CalendarOrganizer, "organizer", Kind::Str),
    (Param::ApsVersion, "apsVersion", Kind::Int),
    (Param::ApsAccountId, "apsAccountId", Kind::Str),
    (Param::ApsDeviceToken, "apsDeviceToken", Kind::Str),
    (Param::ApsSubtopic, "apsSubtopic", Kind::Str),
    (Param::ApsMailboxes, "mailboxes", Kind::Array),
    (Param::ApsDavTopic, "apsTopic", Kind::Str),
    (Param::ApsDavDeviceToken, "apsDeviceToken", Kind::Str),
    (Param::ApsDavMailboxUser, "mailboxUser", Kind::Str),
    (Param::ApsDavMailboxUniqueId, "mailboxUniqueId", Kind::Str),
    (Param::ApsDavExpiry, "expiry", Kind::Int),
    (Param::MessageContent, "messageContent", Kind::Str),
    (Param::CalendarAlertId, "alertId", Kind::Str),
    (Param::CalendarCalendarOwner, "calendarOwner", Kind::Str),
    (Param::CalendarRecurrenceId, "recurrenceId", Kind::Str),
    (Param::CalendarEventId, "calendarEventId", Kind::Str),
    (Param::UnscheduledUserId, "userId", Kind::Str),
    (Param::UnscheduledCount, "count", Kind::Int),
    (Param::VisibleUsers, "vnd.cmu.visibleUsers", Kind::Str),
];

/// The order stock writes parameters in: its `enum event_param`, the
/// parameters of every series merged (each series only inserts, so one
/// order serves all; messageContent stays last).
pub const OUTPUT_ORDER: [Param; PARAM_COUNT] = {
    use Param::*;
    [
        Timestamp,
        Service,
        ServerAddress,
        ClientAddress,
        OldMailboxId,
        OldUidset,
        MailboxId,
        Uri,
        Modseq,
        QuotaStorage,
        DiskUsed,
        QuotaMessages,
        Messages,
        UnseenMessages,
        Uidnext,
        Uidset,
        Midset,
        FlagNames,
        Pid,
        AclSubject,
        AclRights,
        User,
        MessageSize,
        Mbtype,
        ServerFqdn,
        MailboxAcl,
        VisibleUsers,
        DavFilename,
        DavUid,
        Envelope,
        CmuSessionId,
        BodyStructure,
        ClientId,
        FastmailSessionId,
        ConvExists,
        ConvUnseen,
        MessageCid,
        Counters,
        MessageEmailId,
        MessageThreadId,
        JmapEmail,
        JmapStates,
        CalendarAlarmTime,
        CalendarAlarmRecipients,
        CalendarAlertId,
        CalendarUserId,
        CalendarCalendarId,
        CalendarCalendarName,
        CalendarCalendarColor,
        CalendarCalendarOwner,
        CalendarUid,
        CalendarRecurrenceId,
        CalendarEventId,
        CalendarAction,
        CalendarSummary,
        CalendarDescription,
        CalendarLocation,
        CalendarTimezone,
        CalendarStart,
        CalendarEnd,
        CalendarAllDay,
        CalendarAttendeeNames,
        CalendarAttendeeEmails,
        CalendarAttendeeStatus,
        CalendarOrganizer,
        ApsVersion,
        ApsAccountId,
        ApsDeviceToken,
        ApsSubtopic,
        ApsMailboxes,
        ApsDavTopic,
        ApsDavDeviceToken,
        ApsDavMailboxUser,
        ApsDavMailboxUniqueId,
        ApsDavExpiry,
        UnscheduledUserId,
        UnscheduledCount,
        MessageContent,
    ]
};

/// Each parameter's position in `OUTPUT_ORDER`, by number.
const RANK: [u8; PARAM_COUNT] = {
    let mut r = [0u8; PARAM_COUNT];
    let mut i = 0;
    while i < PARAM_COUNT {
        r[OUTPUT_ORDER[i] as usize] = i as u8;
        i += 1;
    }
    r
};

/// Every parameter, indexed by its number.
pub const ALL_PARAMS: [Param; PARAM_COUNT] = {
    let mut a = [Param::Timestamp; PARAM_COUNT];
    let mut i = 0;
    while i < PARAM_COUNT {
        a[i] = PARAM_TABLE[i].0;
        i += 1;
    }
    a
};

impl Param {
    pub fn from_index(n: u32) -> Option<Param> {
        ALL_PARAMS.get(n as usize).copied()
    }

    /// The JSON key stock writes.
    pub fn json_name(self) -> &'static str {
        PARAM_TABLE[self as usize].1
    }

    pub fn kind(self) -> Kind {
        PARAM_TABLE[self as usize].2
    }

    /// Its position in the output (`OUTPUT_ORDER`).
    pub fn rank(self) -> u32 {
        RANK[self as usize].into()
    }

    /// Its bit in sets of parameters (`u128` masks), by output rank:
    /// walking a set's bits gives its parameters in the order stock writes.
    pub fn bit(self) -> u128 {
        1u128 << self.rank()
    }

    /// The parameter of bit `n` of a set.
    pub fn at_rank(n: u32) -> Option<Param> {
        OUTPUT_ORDER.get(n as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_numbered_in_order() {
        for (i, p) in ALL_PARAMS.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        assert_eq!(Param::from_index(PARAM_COUNT as u32), None);
    }

    #[test]
    fn output_order_has_every_parameter_once_and_content_last() {
        let mut seen = [false; PARAM_COUNT];
        for (i, p) in OUTPUT_ORDER.iter().enumerate() {
            assert!(!seen[*p as usize], "{p:?} twice");
            seen[*p as usize] = true;
            assert_eq!(p.rank() as usize, i);
        }
        assert_eq!(OUTPUT_ORDER[PARAM_COUNT - 1], Param::MessageContent);
        // 3.6.1's parameters keep their relative order.
        let old: Vec<_> = OUTPUT_ORDER.iter().filter(|p| (**p as u32) < 71).collect();
        assert!(old.windows(2).all(|w| *w[0] < *w[1]));
    }

    #[test]
    fn names_find_types_as_name_to_mboxevent_does() {
        for t in ALL_TYPES {
            assert_eq!(
                EventType::from_name(&t.name().to_ascii_uppercase()),
                Some(t)
            );
        }
        assert_eq!(
            EventType::from_name("calendareventnew"),
            Some(EventType::Calendar)
        );
        assert_eq!(
            EventType::from_name("Cancelled"),
            Some(EventType::Cancelled)
        );
        assert_eq!(EventType::from_name("MessageNews"), None);
    }

    #[test]
    fn types_round_trip_their_bits() {
        for t in ALL_TYPES {
            assert_eq!(EventType::from_bits(t.bits()), Some(t));
        }
        assert_eq!(
            EventType::from_bits(8 | (1 << 21)),
            Some(EventType::MessageNewCalendar)
        );
        assert_eq!(EventType::from_bits(1 << 21), None);
        assert_eq!(EventType::from_bits(3), None);
        assert_eq!(EventType::from_bits(1 << 27), None);
        assert_eq!(EventType::MailboxUnsubscribe.name(), "MailboxUnSubscribe");
    }
}
