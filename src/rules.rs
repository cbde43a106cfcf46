//! Which parameters an event of a given type carries: the "expected" table of
//! stock 3.6.1. The adapter asks before it extracts anything costly, the
//! library asks before it fills its own parameters, and `notify` asks to find
//! events that go out incomplete.

use crate::catalogue::{mask, EventType, Param};

/// Words of `event_extra_params`, in the bit order of stock's BITFIELD.
pub const EXTRA_NAMES: [&str; 30] = [
    "bodyStructure",
    "clientAddress",
    "diskUsed",
    "flagNames",
    "messageContent",
    "messageSize",
    "messages",
    "modseq",
    "service",
    "timestamp",
    "uidnext",
    "vnd.cmu.midset",
    "vnd.cmu.unseenMessages",
    "vnd.cmu.envelope",
    "vnd.cmu.sessionId",
    "vnd.cmu.mailboxACL",
    "vnd.cmu.mbtype",
    "vnd.cmu.davFilename",
    "vnd.cmu.davUid",
    "vnd.fastmail.clientId",
    "vnd.fastmail.sessionId",
    "vnd.fastmail.convExists",
    "vnd.fastmail.convUnseen",
    "vnd.fastmail.cid",
    "vnd.fastmail.counters",
    "vnd.fastmail.jmapEmail",
    "vnd.fastmail.jmapStates",
    "vnd.cmu.emailid",
    "vnd.cmu.threadid",
    "vnd.cmu.visibleUsers",
];

/// One bit per word of `event_extra_params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Extra {
    BodyStructure = 0,
    ClientAddress,
    DiskUsed,
    FlagNames,
    MessageContent,
    MessageSize,
    Messages,
    Modseq,
    Service,
    Timestamp,
    Uidnext,
    Midset,
    UnseenMessages,
    Envelope,
    CmuSessionId,
    MailboxAcl,
    Mbtype,
    DavFilename,
    DavUid,
    ClientId,
    FastmailSessionId,
    ConvExists,
    ConvUnseen,
    Cid,
    Counters,
    JmapEmail,
    JmapStates,
    EmailId,
    ThreadId,
    VisibleUsers,
}

/// The words of `event_extra_params` that are set, one bit per `Extra`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extras(pub u32);

impl Extras {
    pub fn has(self, e: Extra) -> bool {
        self.0 & (1 << e as u32) != 0
    }
}

/// Whether events of type `t` carry parameter `p` (stock's
/// `mboxevent_expected_param`).
pub fn expected(t: EventType, p: Param, extras: Extras) -> bool {
    use EventType as T;
    use Param as P;
    let x = |e: Extra| extras.has(e);
    let is = |m: u32| t.is_in(m);

    match t {
        T::CalendarAlarm => return is_calendar_param(p) || p == P::ServerFqdn,
        T::MessagesUnscheduled => return matches!(p, P::UnscheduledUserId | P::UnscheduledCount),
        T::ApplePushService => {
            return matches!(
                p,
                P::ApsVersion
                    | P::ApsAccountId
                    | P::ApsDeviceToken
                    | P::ApsSubtopic
                    | P::ApsMailboxes
                    | P::User
            )
        }
        T::ApplePushServiceDav => {
            return matches!(
                p,
                P::ApsDavTopic
                    | P::ApsDavDeviceToken
                    | P::ApsDavMailboxUser
                    | P::ApsDavMailboxUniqueId
                    | P::ApsDavExpiry
                    | P::User
            )
        }
        _ => {}
    }

    let new_or_append = is(mask::NEW_OR_APPEND);
    // Parameters that describe messages: carried by message and flag events
    // when the operator asked for them.
    let message_param = |on: bool| on && is(mask::MESSAGE | mask::FLAGS);

    match p {
        P::BodyStructure => x(Extra::BodyStructure) && new_or_append,
        P::ClientAddress => x(Extra::ClientAddress) && is(T::Login as u32 | T::Logout as u32),
        P::QuotaStorage | P::QuotaMessages => is(mask::QUOTA),
        P::DiskUsed => {
            is(T::QuotaExceed as u32 | T::QuotaWithin as u32)
                || (x(Extra::DiskUsed) && t == T::QuotaChange)
        }
        P::Envelope => x(Extra::Envelope) && new_or_append,
        P::FlagNames => {
            is(T::FlagsSet as u32 | T::FlagsClear as u32) || (x(Extra::FlagNames) && new_or_append)
        }
        P::ClientId => x(Extra::ClientId),
        P::FastmailSessionId => x(Extra::FastmailSessionId),
        P::MailboxId | P::Mbtype | P::MailboxAcl => is(mask::MAILBOX),
        // Stock 3.12 expects it on every mailbox event but never fills it;
        // only the option brings it, so events without it stay stock's.
        P::VisibleUsers => x(Extra::VisibleUsers) && is(mask::MAILBOX),
        P::MessageContent => x(Extra::MessageContent) && new_or_append,
        P::MessageSize => x(Extra::MessageSize) && new_or_append,
        P::DavFilename => x(Extra::DavFilename) && is(T::Calendar as u32),
        P::DavUid => x(Extra::DavUid) && is(T::Calendar as u32),
        P::MessageCid => x(Extra::Cid) && new_or_append,
        P::MessageEmailId => x(Extra::EmailId) && new_or_append,
        P::MessageThreadId => x(Extra::ThreadId) && new_or_append,
        P::JmapEmail => x(Extra::JmapEmail) && new_or_append,
        P::JmapStates => x(Extra::JmapStates),
        P::Messages => {
            is(T::QuotaExceed as u32 | T::QuotaWithin as u32) || message_param(x(Extra::Messages))
        }
        P::Modseq => message_param(x(Extra::Modseq)),
        P::OldMailboxId => {
            is(T::MessageCopy as u32 | T::MessageMove as u32 | T::MailboxRename as u32)
        }
        P::ServerAddress => is(T::Login as u32 | T::Logout as u32),
        P::Service => x(Extra::Service),
        P::Timestamp => x(Extra::Timestamp),
        P::AclSubject | P::AclRights => t == T::AclChange,
        P::Uidnext => message_param(x(Extra::Uidnext)),
        P::Uidset => message_param(!new_or_append),
        P::Uri | P::Pid | P::ServerFqdn => true,
        P::User => is(mask::MESSAGE
            | mask::FLAGS
            | mask::MAILBOX
            | mask::SUBSCRIPTION
            | T::Login as u32
            | T::Logout as u32
            | T::QuotaChange as u32),
        P::Midset => message_param(x(Extra::Midset)),
        P::CmuSessionId => x(Extra::CmuSessionId),
        P::UnseenMessages => message_param(x(Extra::UnseenMessages)),
        P::ConvExists => x(Extra::ConvExists),
        P::ConvUnseen => x(Extra::ConvUnseen),
        P::Counters => x(Extra::Counters),
        P::OldUidset => is(T::MessageCopy as u32 | T::MessageMove as u32),
        _ => false,
    }
}

fn is_calendar_param(p: Param) -> bool {
    (Param::CalendarAlarmTime as u32..=Param::CalendarOrganizer as u32).contains(&(p as u32))
}

/// Expected parameters an event may legitimately lack (stock's
/// `filled_params` exceptions): flagNames on MessageNew/MessageAppend,
/// messageContent when standard mode left a big message out, modseq when the
/// event covers more than one message. Also, where stock aborted instead: a
/// quota event about one resource lacks the other resource's fields.
/// `standard_content`: event_content_inclusion_mode is `standard`;
/// `filled`: the event's filled parameters by number; `messages`: how many
/// messages it covers.
pub fn may_be_missing(
    t: EventType,
    p: Param,
    standard_content: bool,
    filled: u128,
    messages: u64,
) -> bool {
    let has = |q: Param| filled & q.bit() != 0;
    match p {
        Param::FlagNames => t.is_in(mask::NEW_OR_APPEND),
        Param::MessageContent => standard_content,
        Param::Modseq => messages > 1,
        Param::QuotaStorage | Param::DiskUsed => t.is_in(mask::QUOTA) && has(Param::QuotaMessages),
        Param::QuotaMessages | Param::Messages => t.is_in(mask::QUOTA) && has(Param::QuotaStorage),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{ALL_PARAMS, ALL_TYPES};

    /// Stock's default event_extra_params: `timestamp`.
    const DEFAULT: Extras = Extras(1 << Extra::Timestamp as u32);

    fn all() -> Extras {
        Extras((1 << EXTRA_NAMES.len()) - 1)
    }

    fn expected_keys(t: EventType, c: Extras) -> Vec<&'static str> {
        ALL_PARAMS
            .iter()
            .filter(|p| expected(t, **p, c))
            .map(|p| p.json_name())
            .collect()
    }

    #[test]
    fn default_config() {
        let c = DEFAULT;
        assert_eq!(
            expected_keys(EventType::MessageNew, c),
            ["timestamp", "uri", "pid", "user", "serverFQDN"]
        );
        assert_eq!(
            expected_keys(EventType::FlagsSet, c),
            [
                "timestamp",
                "uri",
                "uidset",
                "flagNames",
                "pid",
                "user",
                "serverFQDN"
            ]
        );
        assert_eq!(
            expected_keys(EventType::MailboxCreate, c),
            [
                "timestamp",
                "mailboxID",
                "uri",
                "pid",
                "user",
                "vnd.cmu.mbtype",
                "serverFQDN",
                "vnd.cmu.mailboxACL"
            ]
        );
        assert_eq!(
            expected_keys(EventType::QuotaExceed, c),
            [
                "timestamp",
                "uri",
                "diskQuota",
                "diskUsed",
                "maxMessages",
                "messages",
                "pid",
                "serverFQDN"
            ]
        );
        assert_eq!(
            expected_keys(EventType::Login, c),
            [
                "timestamp",
                "serverAddress",
                "uri",
                "pid",
                "user",
                "serverFQDN"
            ]
        );
    }

    #[test]
    fn all_extras() {
        let c = all();
        let k = expected_keys(EventType::MessageCopy, c);
        assert_eq!(
            k,
            [
                "timestamp",
                "service",
                "oldMailboxID",
                "vnd.cmu.oldUidset",
                "uri",
                "modseq",
                "messages",
                "vnd.cmu.unseenMessages",
                "uidnext",
                "uidset",
                "vnd.cmu.midset",
                "pid",
                "user",
                "serverFQDN",
                "vnd.cmu.sessionId",
                "vnd.fastmail.clientId",
                "vnd.fastmail.sessionId",
                "vnd.fastmail.convExists",
                "vnd.fastmail.convUnseen",
                "vnd.fastmail.counters",
                "vnd.fastmail.jmapStates"
            ]
        );
        assert!(expected(EventType::Login, Param::ClientAddress, c));
        assert!(expected(EventType::QuotaChange, Param::DiskUsed, c));
        assert!(expected(EventType::MessageAppend, Param::MessageContent, c));
        assert!(!expected(EventType::MessageAppend, Param::Uidset, c));
        assert!(!expected(
            EventType::MessageExpunge,
            Param::MessageContent,
            c
        ));
        assert!(expected(EventType::CalendarAlarm, Param::ServerFqdn, c));
        assert!(!expected(EventType::CalendarAlarm, Param::Uri, c));
        assert!(expected(
            EventType::ApplePushServiceDav,
            Param::ApsDavExpiry,
            c
        ));
        assert!(!expected(
            EventType::ApplePushServiceDav,
            Param::ApsDeviceToken,
            c
        ));
    }

    #[test]
    fn visible_users_only_when_asked_and_only_on_mailbox_events() {
        let asked = Extras(DEFAULT.0 | 1 << Extra::VisibleUsers as u32);
        for t in ALL_TYPES {
            assert!(!expected(t, Param::VisibleUsers, DEFAULT), "{t:?}");
            assert_eq!(
                expected(t, Param::VisibleUsers, asked),
                t.is_in(mask::MAILBOX),
                "{t:?}"
            );
        }
        assert_eq!(
            expected_keys(EventType::AclChange, asked)[7..],
            [
                "vnd.cmu.mbtype",
                "serverFQDN",
                "vnd.cmu.mailboxACL",
                "vnd.cmu.visibleUsers"
            ]
        );
    }

    #[test]
    fn every_type_expects_uri_pid_fqdn_except_fixed_sets() {
        let c = DEFAULT;
        for t in ALL_TYPES {
            let fixed = matches!(
                t,
                EventType::CalendarAlarm
                    | EventType::ApplePushService
                    | EventType::ApplePushServiceDav
                    | EventType::MessagesUnscheduled
            );
            assert_eq!(expected(t, Param::Uri, c), !fixed, "{t:?}");
            assert_eq!(expected(t, Param::Pid, c), !fixed, "{t:?}");
        }
    }
}
