//! The `timestamp` parameter: the event's creation time, written at notify
//! time as stock does (ISO 8601 local time with milliseconds, `Z` for a zero
//! UTC offset), or as epoch seconds with milliseconds when configured.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};
use time::{OffsetDateTime, UtcOffset};

/// `event_timestamp_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampFormat {
    Iso8601,
    Epoch,
}

/// Append the timestamp. The sender writes many per second: the text of
/// the current second is kept per thread and only the milliseconds change.
pub fn write(out: &mut String, t: SystemTime, fmt: TimestampFormat) {
    let (secs, millis) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(e) => {
            // Before 1970: floor to the second below, as timeval does.
            let d = e.duration();
            let ms = d.subsec_millis();
            (
                -(d.as_secs() as i64) - i64::from(ms > 0),
                (1000 - ms) % 1000,
            )
        }
    };
    if fmt == TimestampFormat::Epoch {
        let _ = write!(out, "{secs}.{millis:03}");
        return;
    }
    SECOND.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != Some(secs) {
            // "YYYY-MM-DDTHH:MM:SS.mmm<offset>": the milliseconds are at 20..23
            let whole = iso8601(secs, 0, local_offset(secs));
            *c = (Some(secs), whole);
        }
        let (head, tail) = c.1.split_at(20);
        out.push_str(head);
        let _ = write!(out, "{millis:03}");
        out.push_str(&tail[3..]);
    });
}

pub fn iso8601(secs: i64, millis: u32, gmtoff: i32) -> String {
    let offset = UtcOffset::from_whole_seconds(gmtoff).unwrap_or(UtcOffset::UTC);
    let dt = OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        millis
    );
    // Stock prints whole minutes of the offset, sign first, or Z.
    let minutes = gmtoff.unsigned_abs() / 60;
    if minutes == 0 {
        s.push('Z');
    } else {
        let sign = if gmtoff < 0 { '-' } else { '+' };
        s.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    s
}

/// Offsets only change on quarter-hour boundaries, so one lookup per thread
/// and quarter hour is enough; `localtime_r` takes a global lock in glibc.
const OFFSET_BUCKET: i64 = 900;

thread_local! {
    static CACHED: Cell<Option<(i64, i32)>> = const { Cell::new(None) };
    /// The ISO 8601 text of the last second written by this thread.
    static SECOND: RefCell<(Option<i64>, String)> = const { RefCell::new((None, String::new())) };
}

fn local_offset(secs: i64) -> i32 {
    let bucket = secs.div_euclid(OFFSET_BUCKET);
    CACHED.with(|c| match c.get() {
        Some((b, off)) if b == bucket => off,
        _ => {
            let off = lookup_offset(secs);
            c.set(Some((bucket, off)));
            off
        }
    })
}

fn lookup_offset(secs: i64) -> i32 {
    let t = secs as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: both pointers are valid for the call; localtime_r writes only tm.
    let ok = unsafe { !libc::localtime_r(&t, tm.as_mut_ptr()).is_null() };
    if ok {
        // SAFETY: localtime_r succeeded, so tm is initialised.
        unsafe { tm.assume_init() }.tm_gmtoff as i32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn format(t: SystemTime, fmt: TimestampFormat) -> String {
        let mut s = String::new();
        write(&mut s, t, fmt);
        s
    }

    #[test]
    fn iso8601_like_stock() {
        // 2026-11-28T18:33:15.544Z, the first golden Login.
        assert_eq!(iso8601(1_795_890_795, 544, 0), "2026-11-28T18:33:15.544Z");
        assert_eq!(
            iso8601(1_795_890_795, 5, 3600),
            "2026-11-28T19:33:15.005+01:00"
        );
        assert_eq!(
            iso8601(1_795_890_795, 999, -(5 * 3600 + 30 * 60)),
            "2026-11-28T13:03:15.999-05:30"
        );
        assert_eq!(iso8601(0, 0, 0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn epoch_format() {
        let t = UNIX_EPOCH + Duration::from_millis(1_321_982_376_849);
        assert_eq!(format(t, TimestampFormat::Epoch), "1321982376.849");
        let t = UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(format(t, TimestampFormat::Epoch), "5.000");
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(format(t, TimestampFormat::Epoch), "-2.500");
    }

    #[test]
    fn local_format_matches_offset_of_the_day() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_890_795_544);
        let s = format(t, TimestampFormat::Iso8601);
        assert_eq!(s, iso8601(1_795_890_795, 544, lookup_offset(1_795_890_795)));
        assert_eq!(s.len(), if s.ends_with('Z') { 24 } else { 29 });
    }
}
