//! The event model: Cyrus 3.6.1's event types and parameters, with the bit
//! values, numbering, JSON names and kinds of `imap/mboxevent.h`, and the
//! in-memory event the Cyrus adapter fills before `notify`.

use crate::seqset::SeqSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

/// Text bytes of the last event (bounded where it is used).
static TEXT_HINT: AtomicUsize = AtomicUsize::new(0);
/// Parameters of a MessageNew with the usual extra ones.
const PARAMS_HINT: usize = 24;

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
    /// MessageNew and MessageAppend: their UID goes into the uri, not uidset.
    pub const NEW_OR_APPEND: u32 = T::MessageNew as u32 | T::MessageAppend as u32;
}

/// Every type that can stand alone, in bit order.
pub const ALL_TYPES: [EventType; 25] = {
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
    ]
};

/// Number of per-type table slots (`EventType::slot`).
pub const TYPE_SLOTS: usize = 28;

/// Every type an event can have, including Cancelled and MessageNew|Calendar.
pub const ALL_TYPES_AND_COMBINATIONS: [EventType; 27] = {
    let mut a = [EventType::Cancelled; 27];
    let mut i = 0;
    while i < ALL_TYPES.len() {
        a[i] = ALL_TYPES[i];
        i += 1;
    }
    a[25] = EventType::MessageNewCalendar;
    a[26] = EventType::Calendar;
    a
};

impl EventType {
    /// A distinct index 0..TYPE_SLOTS for per-type tables.
    pub fn slot(self) -> usize {
        match self {
            EventType::Cancelled => 26,
            EventType::MessageNewCalendar => 27,
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
        }
    }

    /// Index 0..25 of the type's bit, for per-type tables (log-once masks).
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

/// Event parameters with the numbering of Cyrus 3.6.1's `enum event_param`;
/// output order is this order.
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
}

/// Number of parameters; `MessageContent` is the last one.
pub const PARAM_COUNT: usize = 71;

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
];

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
}

/// A string in an event's text buffer, by byte offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A JSON value owned by the caller's JSON library (jansson in Cyrus),
/// written by the caller's own dump function when the event is rendered, on
/// whichever thread renders it, and released once, when the last copy goes.
pub struct ForeignJson {
    obj: *mut libc::c_void,
    dump: DumpFn,
    release: ReleaseFn,
}

/// Appends `len` bytes to the sink `ctx`; returns 0 on success. The same
/// signature as jansson's `json_dump_callback_t`.
#[allow(non_camel_case_types)]
pub type cmev_json_write_fn = Option<
    unsafe extern "C" fn(
        buf: *const libc::c_char,
        len: usize,
        ctx: *mut libc::c_void,
    ) -> libc::c_int,
>;
/// Writes the JSON text of `obj` through `write(…, ctx)`; returns 0 on
/// success.
#[allow(non_camel_case_types)]
pub type cmev_json_dump_fn = Option<
    unsafe extern "C" fn(
        obj: *const libc::c_void,
        write: cmev_json_write_fn,
        ctx: *mut libc::c_void,
    ) -> libc::c_int,
>;
/// Gives back the reference to `obj` that the library was handed.
#[allow(non_camel_case_types)]
pub type cmev_json_release_fn = Option<unsafe extern "C" fn(obj: *mut libc::c_void)>;

pub type DumpFn = <cmev_json_dump_fn as Unwrapped>::Fn;
pub type ReleaseFn = <cmev_json_release_fn as Unwrapped>::Fn;

/// The function pointer inside an optional (nullable) one.
pub trait Unwrapped {
    type Fn;
}
impl<F> Unwrapped for Option<F> {
    type Fn = F;
}

// SAFETY: the C caller hands the object over with the promise (documented on
// cmev_event_set_json_object) that dump and release may run on any thread
// and that nobody changes the object meanwhile.
unsafe impl Send for ForeignJson {}
unsafe impl Sync for ForeignJson {}

impl ForeignJson {
    /// # Safety
    /// `obj` stays valid until `release(obj)`, which this calls exactly once.
    pub unsafe fn new(obj: *mut libc::c_void, dump: DumpFn, release: ReleaseFn) -> ForeignJson {
        ForeignJson { obj, dump, release }
    }

    /// The object's JSON text as its dump function writes it; `None` if the
    /// dump fails or writes something that is not UTF-8.
    pub fn text(&self) -> Option<String> {
        unsafe extern "C" fn append(
            buf: *const libc::c_char,
            len: usize,
            ctx: *mut libc::c_void,
        ) -> libc::c_int {
            if len > 0 && buf.is_null() {
                return -1;
            }
            // SAFETY: ctx is the Vec passed below; buf is valid for len bytes.
            unsafe {
                let out = &mut *ctx.cast::<Vec<u8>>();
                if len > 0 {
                    out.extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), len));
                }
            }
            0
        }
        let mut out: Vec<u8> = Vec::with_capacity(512);
        // SAFETY: obj is live until release; the sink outlives the call.
        let rc = unsafe { (self.dump)(self.obj, Some(append), (&mut out as *mut Vec<u8>).cast()) };
        if rc != 0 {
            return None;
        }
        String::from_utf8(out).ok()
    }
}

impl Drop for ForeignJson {
    fn drop(&mut self) {
        // SAFETY: the single release promised in `new`.
        unsafe { (self.release)(self.obj) };
    }
}

impl std::fmt::Debug for ForeignJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForeignJson({:p})", self.obj)
    }
}

/// A filled parameter value. Strings live in the event's text buffer and
/// are valid UTF-8 by construction: the setters replace invalid bytes with
/// U+FFFD, where stock jansson would drop the key.
#[derive(Clone, Debug)]
pub enum Value {
    Int(u64),
    Str(Span),
    /// The strings `list[start..end]` of the body, as a JSON array.
    List(Span),
    /// Valid JSON text as given; rendered compactly, the way jansson writes it.
    Json(Span),
    /// A JSON value still in the caller's hands, dumped when rendered.
    Foreign(std::sync::Arc<ForeignJson>),
    /// Filled but not written: stock fills aclRights with NULL for DELETEACL,
    /// which jansson then leaves out.
    Absent,
    /// The event's creation time, written as configured when rendered.
    Time(SystemTime),
}

/// Everything of an event that lives on the heap, in a few buffers that are
/// reused from event to event: one text buffer for every string instead of
/// an allocation per parameter, so building an event costs no allocation
/// once the buffers have grown to size.
#[derive(Clone, Debug, Default)]
pub struct Body {
    /// Values of the filled parameters in the order they were filled; few
    /// are filled, so a short vector beats a 71-slot table of values here.
    /// Change only through `set` and `unset`, which keep `at` and `filled`
    /// in step.
    values: Vec<Value>,
    /// Where each filled parameter's value is in `values`, by parameter
    /// number. Read only for the bits of `filled`, so never cleared.
    at: Slots,
    /// The filled parameters as a bitmask by number: rendering walks it, so
    /// they come out in parameter order without sorting.
    filled: u128,
    pub text: String,
    /// Strings of `Value::List`s.
    pub list: Vec<Span>,
    /// The midset while it is collected.
    pub msgids: Vec<Span>,
    pub flags: Vec<Span>,
    pub uids: SeqSet,
    pub old_uids: SeqSet,
}

impl Body {
    /// Whether `s` equals one of `spans`, ASCII case ignored or not.
    pub fn contains(&self, spans: &[Span], s: Span, ignore_case: bool) -> bool {
        let s = self.str(s);
        spans.iter().any(|x| {
            let x = self.str(*x);
            if ignore_case {
                x.eq_ignore_ascii_case(s)
            } else {
                x == s
            }
        })
    }

    /// Forget the text after `len` bytes (a string just pushed and not kept).
    pub fn truncate(&mut self, len: usize) {
        self.text.truncate(len);
    }

    /// Append copies of the strings at `spans`, `sep` between them.
    pub fn join(&mut self, spans: &[Span], sep: char) -> Span {
        let start = self.text.len();
        for (i, s) in spans.iter().enumerate() {
            if i > 0 {
                self.text.push(sep);
            }
            // SAFETY: a span covers whole characters of the text, so copying
            // it to the end keeps the buffer valid UTF-8.
            unsafe { self.text.as_mut_vec().extend_from_within(s.start..s.end) };
        }
        Span {
            start,
            end: self.text.len(),
        }
    }

    /// Append a string to the text buffer.
    pub fn push(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len(),
        }
    }

    /// Append bytes, invalid UTF-8 replaced by U+FFFD, without a temporary.
    pub fn push_lossy(&mut self, bytes: &[u8]) -> Span {
        if let Ok(s) = std::str::from_utf8(bytes) {
            return self.push(s);
        }
        let start = self.text.len();
        for chunk in bytes.utf8_chunks() {
            self.text.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                self.text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        Span {
            start,
            end: self.text.len(),
        }
    }

    pub fn str(&self, s: Span) -> &str {
        &self.text[s.start..s.end]
    }

    /// The strings of a `Value::List`.
    pub fn strs(&self, l: Span) -> impl Iterator<Item = &str> {
        self.list[l.start..l.end].iter().map(|s| self.str(*s))
    }

    pub fn get(&self, p: Param) -> Option<&Value> {
        if self.filled & bit(p) == 0 {
            return None;
        }
        Some(&self.values[self.at.0[p as usize] as usize])
    }

    /// The filled parameters in parameter order, the order stock writes.
    pub fn params(&self) -> impl Iterator<Item = (Param, &Value)> {
        let mut bits = self.filled;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let n = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some((ALL_PARAMS[n], &self.values[self.at.0[n] as usize]))
        })
    }

    pub fn filled_mask(&self) -> u128 {
        self.filled
    }

    /// The text of a filled string parameter.
    pub fn get_str(&self, p: Param) -> Option<&str> {
        match self.get(p) {
            Some(Value::Str(s)) => Some(self.str(*s)),
            _ => None,
        }
    }

    /// Fill `p`, replacing an earlier value as stock's FILL_* macros do.
    // Inlined so that the value is built where it is stored: passed out of
    // line, it was written to the stack in 8-byte halves and read back in
    // 16, a store-forwarding stall that made this a tenth of a FlagsSet's
    // cost on the caller's thread (perf annotate).
    #[inline(always)]
    pub fn set(&mut self, p: Param, v: Value) {
        if self.filled & bit(p) == 0 {
            self.filled |= bit(p);
            // at most PARAM_COUNT values, so the position fits
            self.at.0[p as usize] = self.values.len() as u8;
            self.values.push(v);
        } else {
            self.values[self.at.0[p as usize] as usize] = v;
        }
    }

    /// Fill a string parameter with a copy of `s`.
    pub fn set_str(&mut self, p: Param, s: &str) {
        let span = self.push(s);
        self.set(p, Value::Str(span));
    }

    /// Fill a string parameter with a copy of `bytes`, invalid UTF-8 as
    /// U+FFFD.
    pub fn set_lossy(&mut self, p: Param, bytes: &[u8]) {
        let span = self.push_lossy(bytes);
        self.set(p, Value::Str(span));
    }

    pub fn unset(&mut self, p: Param) {
        if self.filled & bit(p) == 0 {
            return;
        }
        self.filled &= !bit(p);
        let i = self.at.0[p as usize];
        self.values.swap_remove(i as usize);
        // the value that was last now sits at i
        let last = self.values.len() as u8;
        let mut bits = self.filled;
        while bits != 0 {
            let q = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if self.at.0[q] == last {
                self.at.0[q] = i;
                break;
            }
        }
    }

    /// Empty, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.values.clear();
        self.filled = 0;
        self.text.clear();
        self.list.clear();
        self.msgids.clear();
        self.flags.clear();
        self.uids.clear();
        self.old_uids.clear();
    }

    /// A new body with room for a typical event: about what the last event
    /// needed, so filling it does not grow it step by step.
    pub fn sized_like_recent() -> Body {
        let last = TEXT_HINT.load(Ordering::Relaxed);
        let text = (last + last / 4).clamp(256, 16 * 1024);
        Body {
            values: Vec::with_capacity(PARAMS_HINT),
            text: String::with_capacity(text),
            ..Body::default()
        }
    }

    /// Remember how much text this event needed, for `sized_like_recent`.
    pub fn note_size(&self) {
        TEXT_HINT.store(self.text.len(), Ordering::Relaxed);
    }

    /// Start loading what rendering reads, before it is read. A body is
    /// filled on the caller's core and rendered on the sender's, where each
    /// of its lines is otherwise a miss in turn: three quarters of
    /// rendering's samples (perf) waited on the first loads of `values`, `at`
    /// and `text`. Prefetched ahead, the sender's CPU per event in the
    /// throughput bench fell from 3.2 to 2.5-2.6 µs (A/B).
    pub fn prefetch(&self) {
        prefetch(
            self.values.as_ptr().cast(),
            std::mem::size_of_val(&self.values[..]),
        );
        prefetch(self.text.as_ptr(), self.text.len().min(PREFETCH_MAX));
        prefetch(
            self.list.as_ptr().cast(),
            std::mem::size_of_val(&self.list[..]),
        );
    }

    /// Start loading the body itself (its vectors' pointers and lengths,
    /// `at`, `filled`), which `prefetch` then reads.
    pub fn prefetch_header(&self) {
        prefetch((self as *const Body).cast(), std::mem::size_of::<Body>());
    }

    /// Heap bytes held, for deciding whether a body is worth keeping.
    pub fn capacity_bytes(&self) -> usize {
        self.text.capacity()
            + self.values.capacity() * std::mem::size_of::<Value>()
            + (self.list.capacity() + self.msgids.capacity() + self.flags.capacity())
                * std::mem::size_of::<Span>()
            + self.uids.capacity_bytes()
            + self.old_uids.capacity_bytes()
    }
}

/// Text bytes prefetched ahead of rendering: a large messageContent is
/// streamed by the hardware's own prefetcher once rendering walks it.
const PREFETCH_MAX: usize = 2048;

/// Ask the CPU to bring the `len` bytes at `p` into its caches; a hint
/// only, which reads nothing and cannot fault.
fn prefetch(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for off in (0..len).step_by(64) {
        // SAFETY: prefetching is defined for any address; nothing is read.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                p.wrapping_add(off).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// A position in `Body::values` per parameter number.
#[derive(Clone, Copy, Debug)]
struct Slots([u8; PARAM_COUNT]);

impl Default for Slots {
    fn default() -> Slots {
        Slots([0; PARAM_COUNT])
    }
}

fn bit(p: Param) -> u128 {
    1u128 << p as u32
}

/// One event as the adapter builds it between `new` and `notify`.
#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    /// The configuration in force when the event was created.
    pub cfg: std::sync::Arc<crate::config::Config>,
    pub body: Box<Body>,
    /// UIDs moved into the uri of a MessageNew/MessageAppend; they still count
    /// for the "modseq only with exactly one message" rule.
    pub uids_in_uri: u64,
    pub created: SystemTime,
}

impl Event {
    pub fn new(kind: EventType, cfg: std::sync::Arc<crate::config::Config>) -> Event {
        Event::with_body(kind, cfg, Box::default())
    }

    /// An event reusing an emptied body's buffers.
    pub fn with_body(
        kind: EventType,
        cfg: std::sync::Arc<crate::config::Config>,
        body: Box<Body>,
    ) -> Event {
        Event {
            kind,
            cfg,
            body,
            uids_in_uri: 0,
            created: SystemTime::now(),
        }
    }

    pub fn get(&self, p: Param) -> Option<&Value> {
        self.body.get(p)
    }

    pub fn has(&self, p: Param) -> bool {
        self.get(p).is_some()
    }

    #[inline(always)] // for Body::set's reason
    pub fn set(&mut self, p: Param, v: Value) {
        self.body.set(p, v);
    }

    pub fn unset(&mut self, p: Param) {
        self.body.unset(p);
    }

    /// The filled parameters as a bitmask by number.
    pub fn filled_mask(&self) -> u128 {
        self.body.filled_mask()
    }

    /// How many messages the event refers to.
    pub fn message_count(&self) -> u64 {
        self.body.uids.count() + self.uids_in_uri
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
        assert_eq!(ALL_PARAMS[PARAM_COUNT - 1], Param::MessageContent);
        assert_eq!(Param::from_index(71), None);
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
        assert_eq!(EventType::from_bits(1 << 26), None);
        assert_eq!(EventType::MailboxUnsubscribe.name(), "MailboxUnSubscribe");
    }

    #[test]
    fn body_keeps_values_by_parameter_through_set_and_unset() {
        let mut b = Body::default();
        let fill = [
            Param::Uri,
            Param::Pid,
            Param::Modseq,
            Param::User,
            Param::Service,
        ];
        for (i, p) in fill.iter().enumerate() {
            b.set(*p, Value::Int(i as u64));
        }
        b.set(Param::Pid, Value::Int(10));
        // the first and the last filled go, so a value moves into each hole
        b.unset(Param::Uri);
        b.unset(Param::Service);
        b.unset(Param::Uri);
        let got: Vec<_> = b
            .params()
            .map(|(p, v)| match v {
                Value::Int(n) => (p, *n),
                _ => unreachable!(),
            })
            .collect();
        let mut want = vec![(Param::Pid, 10), (Param::Modseq, 2), (Param::User, 3)];
        want.sort_by_key(|(p, _)| *p);
        assert_eq!(got, want);
        assert!(b.get(Param::Uri).is_none() && b.get(Param::Service).is_none());
        assert!(matches!(b.get(Param::User), Some(Value::Int(3))));
        b.set(Param::Uri, Value::Int(7));
        assert!(matches!(b.get(Param::Uri), Some(Value::Int(7))));
        assert!(matches!(b.get(Param::Modseq), Some(Value::Int(2))));
        assert_eq!(b.params().count(), 4);
    }
}
