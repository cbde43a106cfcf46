//! An event's contents in a few buffers reused from event to event: one
//! text buffer for every string instead of an allocation per parameter, so
//! building an event costs no allocation once the buffers have grown to size.

use crate::catalogue::{Param, OUTPUT_ORDER, PARAM_COUNT};
use crate::foreign::ForeignJson;
use crate::mark::DoneMark;
use crate::seqset::SeqSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// Text bytes of the last event (bounded where it is used).
static TEXT_HINT: AtomicUsize = AtomicUsize::new(0);
/// Parameters of a MessageNew with the usual extra ones.
const PARAMS_HINT: usize = 24;

/// A string in an event's text buffer, by byte offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
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
    Foreign(Arc<ForeignJson>),
    /// Filled but not written: stock fills aclRights with NULL for DELETEACL,
    /// which jansson then leaves out.
    Absent,
    /// The event's creation time, written as configured when rendered.
    Time(SystemTime),
}

/// Everything of an event that lives on the heap.
#[derive(Clone, Debug, Default)]
pub struct Body {
    /// Values of the filled parameters in the order they were filled; few
    /// are filled, so a short vector beats a table of every parameter here.
    /// Change only through `set` and `unset`, which keep `at` and `filled`
    /// in step.
    values: Vec<Value>,
    /// Where each filled parameter's value is in `values`, by parameter
    /// number. Read only for the bits of `filled`, so never cleared.
    at: Slots,
    /// The filled parameters as a set (`Param::bit`): rendering walks it, so
    /// they come out in output order without sorting.
    filled: u128,
    pub text: String,
    /// Strings of `Value::List`s.
    pub list: Vec<Span>,
    /// The midset while it is collected.
    pub msgids: Vec<Span>,
    pub flags: Vec<Span>,
    pub uids: SeqSet,
    pub old_uids: SeqSet,
    /// The event's record in the process's spool, once queued; marked done
    /// when the body is emptied or dropped.
    pub spooled: DoneMark,
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
            let p = OUTPUT_ORDER[bits.trailing_zeros() as usize];
            bits &= bits - 1;
            Some((p, &self.values[self.at.0[p as usize] as usize]))
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
    // line, it was written to the stack in halves and read back whole, a
    // store-forwarding stall on the caller's thread.
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
        self.spooled = DoneMark::default();
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
    /// of its lines is otherwise a cache miss in turn, paid one after the
    /// other by rendering.
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
    p.bit()
}

#[cfg(test)]
mod tests {
    use super::*;

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
