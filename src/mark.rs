//! The spool record of a queued event, marked done when the event is done
//! with: sent, or dropped and counted. It is dropped with the event's body,
//! or when the body is emptied for reuse, so that no path that finishes an
//! event can forget its record.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A record's tag: being written, written whole, done with, or padding at
/// the end of the ring. Distinct words, so that a tag overwritten with
/// anything else is recognised as garbage.
pub(crate) const WRITING: u32 = 0xC3E7_0001;
pub(crate) const COMMITTED: u32 = 0xC3E7_0002;
pub(crate) const DONE: u32 = 0xC3E7_0003;
pub(crate) const PAD: u32 = 0xC3E7_0004;

/// Points at a record's tag in the process's spool mapping, which is never
/// unmapped, so the pointer stays valid for the life of the process; with
/// the event's number in the process (a record rewritten keeps it).
#[derive(Debug, Default)]
pub struct DoneMark {
    tag: Option<NonNull<AtomicU32>>,
    seq: u64,
}

// SAFETY: the tag is an atomic in memory that lives as long as the process.
unsafe impl Send for DoneMark {}
unsafe impl Sync for DoneMark {}

impl DoneMark {
    /// # Safety
    /// `tag` lives for the rest of the process and belongs to one record,
    /// whose only mark this is.
    pub unsafe fn new(tag: NonNull<AtomicU32>, seq: u64) -> DoneMark {
        DoneMark {
            tag: Some(tag),
            seq,
        }
    }

    /// Whether the event has a record in the spool.
    pub fn is_set(&self) -> bool {
        self.tag.is_some()
    }

    /// The event's number among those this process spooled.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// A copy of a body (FlagsSet split in two) is another event: the record
/// stays the original's.
impl Clone for DoneMark {
    fn clone(&self) -> DoneMark {
        DoneMark::default()
    }
}

impl Drop for DoneMark {
    fn drop(&mut self) {
        if let Some(tag) = self.tag {
            // Release: whoever frees the record's space after seeing DONE
            // sees everything this thread did with the event before.
            // SAFETY: valid for the life of the process (see `new`).
            unsafe { tag.as_ref() }.store(DONE, Ordering::Release);
        }
    }
}
