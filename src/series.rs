//! The parameter numbering of each Cyrus series. Cyrus's code fills
//! parameters by the numbers of its own `enum event_param`, which each
//! series renumbers (3.8 inserted parameters in the middle), and the Cyrus
//! adapter passes those numbers through; it says once which series it
//! speaks (`cmev_set_cyrus_series`), and the numbers are read through that
//! series' table. Without one, numbers are the library's own (`Param`),
//! which are 3.6.1's for the parameters 3.6.1 has. Adding a series is
//! adding its table.

use crate::catalogue::{Param, ALL_PARAMS, OUTPUT_ORDER, PARAM_COUNT};
use std::sync::atomic::{AtomicU32, Ordering};

/// A Cyrus series, as `major << 8 | minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// The library's own numbering (`cmev_param`).
    Own,
    Cyrus3_6,
    Cyrus3_10,
    Cyrus3_12,
}

/// Cyrus 3.6's `enum event_param`: the library's first 71.
const CYRUS_3_6: &[Param] = ALL_PARAMS.split_at(71).0;
/// Cyrus 3.12's `enum event_param` (all of 3.8's, 3.10's and 3.12's
/// additions) is the output order itself, until a later series inserts more.
const CYRUS_3_12: &[Param] = &OUTPUT_ORDER;
/// Cyrus 3.10's: 3.12's without `vnd.cmu.visibleUsers`.
const CYRUS_3_10: &[Param] = &without(Param::VisibleUsers);

/// The output order without `p`.
const fn without(p: Param) -> [Param; PARAM_COUNT - 1] {
    let mut a = [Param::Timestamp; PARAM_COUNT - 1];
    let (mut i, mut j) = (0, 0);
    while i < PARAM_COUNT {
        if OUTPUT_ORDER[i] as u32 != p as u32 {
            a[j] = OUTPUT_ORDER[i];
            j += 1;
        }
        i += 1;
    }
    a
}

impl Series {
    /// The series with C value `v` (`CMEV_CYRUS_*`).
    pub fn from_c(v: u32) -> Option<Series> {
        match v {
            0 => Some(Series::Own),
            0x0306 => Some(Series::Cyrus3_6),
            0x030a => Some(Series::Cyrus3_10),
            0x030c => Some(Series::Cyrus3_12),
            _ => None,
        }
    }

    fn to_c(self) -> u32 {
        match self {
            Series::Own => 0,
            Series::Cyrus3_6 => 0x0306,
            Series::Cyrus3_10 => 0x030a,
            Series::Cyrus3_12 => 0x030c,
        }
    }

    /// The series' parameters in the order of its enum.
    pub fn params(self) -> &'static [Param] {
        match self {
            Series::Own => &ALL_PARAMS,
            Series::Cyrus3_6 => CYRUS_3_6,
            Series::Cyrus3_10 => CYRUS_3_10,
            Series::Cyrus3_12 => CYRUS_3_12,
        }
    }
}

/// The series the process's adapter speaks.
static CURRENT: AtomicU32 = AtomicU32::new(0);

pub fn set(s: Series) {
    CURRENT.store(s.to_c(), Ordering::Relaxed);
}

pub fn current() -> Series {
    Series::from_c(CURRENT.load(Ordering::Relaxed)).unwrap_or(Series::Own)
}

/// The parameter numbered `n` in the current series.
pub fn param(n: u32) -> Option<Param> {
    current().params().get(n as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cyrus's `event_template` names, in its enum order, copied from each
    /// series' imap/mboxevent.c.
    const NAMES_3_10: &str = "timestamp service serverAddress clientAddress oldMailboxID \
        vnd.cmu.oldUidset mailboxID uri modseq diskQuota diskUsed maxMessages messages \
        vnd.cmu.unseenMessages uidnext uidset vnd.cmu.midset flagNames pid aclSubject aclRights \
        user messageSize vnd.cmu.mbtype serverFQDN vnd.cmu.mailboxACL vnd.cmu.davFilename \
        vnd.cmu.davUid vnd.cmu.envelope vnd.cmu.sessionId bodyStructure vnd.fastmail.clientId \
        vnd.fastmail.sessionId vnd.fastmail.convExists vnd.fastmail.convUnseen vnd.fastmail.cid \
        vnd.fastmail.counters vnd.cmu.emailid vnd.cmu.threadid vnd.fastmail.jmapEmail \
        vnd.fastmail.jmapStates alarmTime alarmRecipients alertId userId calendarId calendarName \
        calendarColor calendarOwner uid recurrenceId calendarEventId action summary description \
        location timezone start end allDay attendeeNames attendeeEmails attendeeStatus organizer \
        apsVersion apsAccountId apsDeviceToken apsSubtopic mailboxes apsTopic apsDeviceToken \
        mailboxUser mailboxUniqueId expiry userId count messageContent";

    /// 3.12 inserted one parameter into 3.10's enum.
    fn names_3_12() -> Vec<&'static str> {
        let mut v: Vec<_> = NAMES_3_10.split_whitespace().collect();
        let acl = v.iter().position(|n| *n == "vnd.cmu.mailboxACL").unwrap();
        v.insert(acl + 1, "vnd.cmu.visibleUsers");
        v
    }

    fn names(s: Series) -> Vec<&'static str> {
        s.params().iter().map(|p| p.json_name()).collect()
    }

    #[test]
    fn each_series_numbers_as_its_cyrus() {
        let want: Vec<_> = NAMES_3_10.split_whitespace().collect();
        assert_eq!(names(Series::Cyrus3_10), want);
        assert_eq!(names(Series::Cyrus3_12), names_3_12());
        assert_eq!(Series::Cyrus3_12.params().len(), 78);
        let added = [
            "alertId",
            "calendarOwner",
            "recurrenceId",
            "calendarEventId",
        ];
        let mut v36: Vec<_> = want
            .iter()
            .copied()
            .filter(|n| !added.contains(n))
            .collect();
        // 3.10's second userId and count are MessagesUnscheduled's.
        v36.retain(|n| *n != "count");
        let last_user = v36.iter().rposition(|n| *n == "userId").unwrap();
        v36.remove(last_user);
        assert_eq!(names(Series::Cyrus3_6), v36);
        assert_eq!(Series::Cyrus3_6.params().len(), 71);
        assert_eq!(Series::Cyrus3_10.params().len(), 77);
    }

    #[test]
    fn numbers_follow_the_series_set() {
        set(Series::Cyrus3_10);
        assert_eq!(param(43), Some(Param::CalendarAlertId));
        assert_eq!(param(76), Some(Param::MessageContent));
        set(Series::Cyrus3_12);
        assert_eq!(param(26), Some(Param::VisibleUsers));
        assert_eq!(param(27), Some(Param::DavFilename));
        assert_eq!(param(77), Some(Param::MessageContent));
        set(Series::Cyrus3_10);
        assert_eq!(param(77), None);
        set(Series::Cyrus3_6);
        assert_eq!(param(43), Some(Param::CalendarUserId));
        assert_eq!(param(70), Some(Param::MessageContent));
        assert_eq!(param(71), None);
        set(Series::Own);
        assert_eq!(param(71), Some(Param::CalendarAlertId));
        assert_eq!(Series::from_c(0x030a), Some(Series::Cyrus3_10));
        assert_eq!(Series::from_c(0x030c), Some(Series::Cyrus3_12));
        assert_eq!(Series::from_c(0x0307), None);
    }
}
